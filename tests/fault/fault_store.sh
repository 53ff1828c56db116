#!/usr/bin/env bash
# Store faults in the middle of a command.  The shim's FAULT_EXEC runs a
# command at a chosen PKCS#11 call (here: import's first C_CreateObject,
# after the store was opened and before the token is written; for set, its
# first call, after the store was opened), so the store fails between the
# token write and the store write.  After each: exit 1, the token and the
# store as before, and once the store is back the same command succeeds.
#
# SQLite: the store lives on a private tmpfs of 1 MiB mounted under the
# test's directory (measured here, as root: mounting a tmpfs works;
# chmod does not stop root; chattr +i does not exist on tmpfs; a remount
# read-only is refused with EBUSY while SQLite holds the file open for
# writing).  So:
#   - full: the file system is filled (dd until ENOSPC) mid-command;
#   - read-only: the file system is remounted read-only before the
#     command (measured: SQLite then cannot open the store at all, so the
#     command stops before it touches the token).
# Without the right to mount, these are skipped.
#
# PostgreSQL: a private server (scripts/test-postgres.sh, never the shared
# one of CUSTODY_TEST_PG_URL: other tests use it at the same time) is shut
# down with `pg_ctl stop -m fast` mid-command (every connection is cut),
# then started again.  Not `-m immediate`: the test server runs with
# synchronous_commit=off, and measured, an immediate stop then loses the
# commits of the last fraction of a second (the base import before it), a
# property of that setting and not of custody.  Skipped when no
# PostgreSQL server is installed.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/fault/lib.sh"
setup_fault_token
started=$(now_ms)
fs=$T/storefs
pgdir=""
cleanup() {
	mountpoint -q "$fs" 2>/dev/null && umount "$fs"
	[ -n "$pgdir" ] && "$TOP_SRCDIR/scripts/test-postgres.sh" stop "$pgdir" >/dev/null 2>&1 &&
		rm -rf "$pgdir"
	rm -rf "$T"
}
trap cleanup EXIT

make_p12 a a.fault.test 300
make_p12 b b.fault.test 300
make_p12 c c.fault.test 300

# store_fp — what custody reads from the store: assignments and audit log.
store_fp() {
	{ "$CUSTODY_BIN" get -o json; "$CUSTODY_BIN" audit; } >"$T/store.now" 2>&1
	sha256sum <"$T/store.now" | cut -d' ' -f1
}

# store_fault KIND SETUP EXEC RECOVER -- ARGS... — runs custody ARGS with
# SETUP done before it and EXEC (if any) at its first C_CreateObject (import)
# or first call (others); checks exit 1 and nothing changed; then RECOVER
# and the same command again.
store_fault() {
	local kind=$1 setup=$2 exec=$3 recover=$4 at=() tfp sfp
	shift 5
	tfp=$(token_state)
	sfp=$(store_fp)
	cp "$T/store.now" "$T/store.before"
	if [ "$1" = import ]; then at=(FAULT_FUNC=C_CreateObject FAULT_AT=1); else at=(FAULT_AT=1); fi
	eval "$setup"
	if [ -n "$exec" ]; then
		run_fault "${at[@]}" FAULT_EXEC="$exec" -- "$@"
	else
		run_fault -- "$@"
	fi
	local first_rc=$rc first_err=$err
	check "$kind, $1: exit 1" [ "$rc" -eq 1 ]
	check "$kind, $1: one line says the store failed" one_line_error "$1"
	eval "$recover"
	check "$kind, $1: the token is as before" [ "$(token_state)" = "$tfp" ]
	check "$kind, $1: the store is as before" [ "$(store_fp)" = "$sfp" ]
	cmp -s "$T/store.before" "$T/store.now" ||
		sed "s/^/# now: /" "$T/store.now" | head -5
	rc=$first_rc err=$first_err
	run "$@"
	check "$kind, $1 again once the store is back: exit 0" [ "$rc" -eq 0 ]
	checkstate
	check "$kind, $1 again: consistent" [ "$check_rc" -eq 0 ]
	echo "# $kind, $1: the failure read: $(grep '^custody:' <<<"$first_err" | head -1)"
}

# ---- SQLite on a small file system
mkdir -p "$fs"
if mount -t tmpfs -o size=1m,mode=0700 tmpfs "$fs" 2>/dev/null; then
	export CUSTODY_STORE="sqlite:$fs/custody.db"
	run import --path "$T/a.p12" -t Default
	check "sqlite on tmpfs: the base import exits 0" [ "$rc" -eq 0 ]
	tp_a=$out

	fill="dd if=/dev/zero of='$fs/filler' bs=4k status=none 2>/dev/null; sync"
	unfill="rm -f '$fs/filler'"
	store_fault "full file system" "" "$fill" "$unfill" -- \
		import --path "$T/b.p12" -t WebServicesInternal
	store_fault "full file system" "" "$fill" "$unfill" -- \
		set -t OAuthTokenIssuer -i global --thumbprint "$tp_a" --force

	ro="mount -o remount,ro '$fs'"
	rw="mount -o remount,rw '$fs'"
	# The store file is kept; so must its directory be read-only from the start.
	store_fault "read-only file system" "$ro" "" "$rw" -- \
		import --path "$T/b.p12" -t XmppServer
	store_fault "read-only file system" "$ro" "" "$rw" -- \
		set -t Internal --thumbprint "$tp_a"
	umount "$fs"
else
	echo "ok $((tap_n += 1)) - sqlite on a small file system # SKIP cannot mount a tmpfs here"
fi

# ---- PostgreSQL stopped mid-command
pg_bin=""
for d in "$(pg_config --bindir 2>/dev/null)" $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
	if [ -n "$d" ] && [ -x "$d/pg_ctl" ]; then pg_bin=$d; break; fi
done
pgdir=$(mktemp -d "${TMPDIR:-/tmp}/custody-fpg.XXXXXX")
chmod 755 "$pgdir"
if [ -n "$pg_bin" ] && "$TOP_SRCDIR/scripts/test-postgres.sh" start "$pgdir" >"$T/pg.log" 2>&1; then
	eval "$("$TOP_SRCDIR/scripts/test-postgres.sh" env "$pgdir")"
	export CUSTODY_STORE=$CUSTODY_TEST_PG_URL
	as_pg=()
	[ "$(id -u)" -eq 0 ] && as_pg=(runuser -u postgres --)
	stop="${as_pg[*]} '$pg_bin/pg_ctl' -D '$pgdir/data' stop -m fast -w >/dev/null"
	restart="'$TOP_SRCDIR/scripts/test-postgres.sh' start '$pgdir' >/dev/null 2>&1"
	run import --path "$T/a.p12" -t Default
	check "postgresql: the base import exits 0" [ "$rc" -eq 0 ]
	tp_a=$out
	store_fault "postgresql stopped" "" "$stop" "$restart" -- \
		import --path "$T/c.p12" -t WebServicesInternal
	store_fault "postgresql stopped" "" "$stop" "$restart" -- \
		set -t OAuthTokenIssuer -i global --thumbprint "$tp_a" --force
	# Stopped before the command: refused before the token is touched.
	make_p12 d d.fault.test 300
	store_fault "postgresql down" "$stop" "" "$restart" -- \
		import --path "$T/d.p12" -t XmppServer
else
	echo "ok $((tap_n += 1)) - postgresql stopped mid-command # SKIP no PostgreSQL server here"
fi
echo "# $(($(now_ms) - started)) ms"
done_testing
