# tests/cluster/lib.sh — what the cluster tests share, sourced after
# tests/token/lib.sh: this build's PostgreSQL store module, and a store of
# the test's own: a schema in the run's test server when
# CUSTODY_TEST_PG_URL is set (scripts/test.sh starts one for the run),
# else a private server (scripts/test-postgres.sh) stopped at the end.
# Without PostgreSQL the calling script is skipped.  py CODE runs
# python3 CODE with d, the JSON of $out.
shopt -s lastpipe
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" <<<"$out"; }

# The PostgreSQL store module of this build, when the tests did not say.
if [ -z "${CUSTODY_MODULE_DIR:-}" ] && [ -n "${TOP_BUILDDIR:-}" ] &&
	[ -d "$TOP_BUILDDIR/.libs" ]; then
	export CUSTODY_MODULE_DIR=$TOP_BUILDDIR/.libs
fi

schema=""
pgdir=""
dump_args=()
# pg_store PREFIX — $store: the URL of a store of this test's own (a
# schema named PREFIX_PID_TIME, or a private server); $dump_args: what
# pg_dump needs to see only it.  Skips the test without PostgreSQL.
pg_store() {
	if [ -n "${CUSTODY_TEST_PG_URL:-}" ]; then
		schema="$1_$$_$(date +%s)"
		psql "$CUSTODY_TEST_PG_URL" -qAtc "CREATE SCHEMA $schema" >/dev/null ||
			{ echo "Bail out! cannot create schema $schema on $CUSTODY_TEST_PG_URL"; exit 1; }
		case $CUSTODY_TEST_PG_URL in
		*\?*) store="$CUSTODY_TEST_PG_URL&options=-csearch_path%3D$schema" ;;
		*) store="$CUSTODY_TEST_PG_URL?options=-csearch_path%3D$schema" ;;
		esac
		dump_args=(-n "$schema")
		return
	fi
	# A socket path has at most 107 bytes: a short directory of its own.
	pgdir=$(mktemp -d /tmp/custody-pg.XXXXXX)
	"$TOP_SRCDIR/scripts/test-postgres.sh" start "$pgdir" >"$T/pg.out" 2>&1
	case $? in
	0) ;;
	77)
		echo "1..0 # SKIP no PostgreSQL server installed"
		exit 0
		;;
	*)
		echo "Bail out! cannot start a PostgreSQL server: $(tail -3 "$T/pg.out")"
		exit 1
		;;
	esac
	store=$("$TOP_SRCDIR/scripts/test-postgres.sh" env "$pgdir" |
		sed -n "s/^export CUSTODY_TEST_PG_URL='\(.*\)'$/\1/p")
}
# pg_store_drop — the schema dropped, or the private server stopped.
pg_store_drop() {
	if [ -n "$schema" ]; then
		psql "$CUSTODY_TEST_PG_URL" -qAtc "DROP SCHEMA IF EXISTS $schema CASCADE" \
			>/dev/null 2>&1
	fi
	[ -n "$pgdir" ] && "$TOP_SRCDIR/scripts/test-postgres.sh" stop "$pgdir" >/dev/null 2>&1
}
q() { psql "$store" -qAtc "$1" 2>&1; }

# pg_store_with_watchers PREFIX — pg_store PREFIX, and at exit the
# background processes in $pids (the watchers) stopped before the store
# is dropped and $T removed.
pids=()
stop_all_and_drop() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null
	done
	pg_store_drop
	rm -rf "$T"
}
pg_store_with_watchers() {
	trap stop_all_and_drop EXIT
	pg_store "$1"
}
# wait_until SECONDS COMMAND... — runs COMMAND every 50 ms until it succeeds.
wait_until() {
	local deadline=$(($(date +%s%N) / 1000000 + $1 * 1000))
	shift
	until "$@" >/dev/null 2>&1; do
		[ $(($(date +%s%N) / 1000000)) -lt "$deadline" ] || return 1
		sleep 0.05
	done
}
# holds_current NODE THUMBPRINT — NODE's watcher ($T/NODE/watch.out)
# printed a sync in which the current OAuthTokenIssuer key is THUMBPRINT,
# held.
holds_current() {
	python3 - "$T/$1/watch.out" "$2" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    for it in d["items"]:
        if (it["type"], it["slot"], it["thumbprint"], it["held"]) == \
                ("OAuthTokenIssuer", "current", sys.argv[2], True):
            sys.exit(0)
sys.exit(1)
PY
}
