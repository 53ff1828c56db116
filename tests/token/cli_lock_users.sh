#!/usr/bin/env bash
# The token lock and other users (issue 10, point 5).
#
# The attack ("the blocked lock"): custody's lock files sat in a
# directory every user can reach, readable by everyone (mode 0644 under
# the usual umask), so any user could open one and flock it, and every
# custody process of that token waited, then failed "token is busy".
# Also: a user who could not use /run/lock/custody fell back to a lock of
# its own (/tmp/custody-UID), so two users of one token did not exclude
# each other.  Checked here: another user cannot hold custody's lock, so
# cannot stall it; lock directories that others could tamper with are
# refused; custody run by another user names the one lock of the token.
#
# Needs root (to be the other user's victim) and setpriv.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null || ! command -v flock >/dev/null; then
	echo "1..0 # SKIP needs root, setpriv and flock"
	exit 0
fi
setup_token locks
NOBODY=$(id -u nobody 2>/dev/null || echo 65534)
NOGROUP=$(id -g nobody 2>/dev/null || echo 65534)
as_nobody() { setpriv --reuid="$NOBODY" --regid="$NOGROUP" --clear-groups "$@"; }

# Directories the other user can reach, in B; the lock directory L as
# /run/lock is: every user may enter it and make files in it, sticky.
# The usual umask (the attack needs no unusual one).
B=$(mktemp -d /tmp/custody-lockdirs.XXXXXX)
holder=
trap '[ -n "$holder" ] && kill "$holder" 2>/dev/null; rm -rf "$T" "$B"' EXIT
chmod 0755 "$B"
L=$B/lock
mkdir "$L" && chmod 1777 "$L"
export CUSTODY_LOCK_DIR=$L
umask 022
printf '[token]\nlock-timeout = 2\n' >"$T/wait2.conf"

# The store the lists below read (a read never makes one): its first write.
make_p12 z z.custody.test 365
"$CUSTODY_BIN" -q import --path "$T/z.p12" -t Default -i global >/dev/null 2>&1
run list
lockfile=$(ls "$L"/token-*.lock 2>/dev/null | head -1)
gatefile=${lockfile%.lock}.gate
loginfile=${lockfile%.lock}.login
[ -n "$lockfile" ] || { echo "Bail out! custody made no lock file in $L: $err"; exit 1; }
# A signer takes the login turn (the third file).
printf 'data' >"$T/data"
run sign -t Default --in "$T/data" --out "$T/z.sig"
[ "$rc" -eq 0 ] && [ -f "$loginfile" ] ||
	{ echo "Bail out! a signature made no login turn file $loginfile (exit $rc): $err"; exit 1; }

# 1. Another user cannot flock the lock file, nor its gate, nor its login turn.
if as_nobody flock -n -x "$lockfile" true 2>/dev/null; then
	not_ok "another user cannot hold the token lock" \
		"nobody took flock on $lockfile ($(stat -c '%A %U:%G' "$lockfile"))"
else
	ok "another user cannot hold the token lock"
fi
if as_nobody flock -n -x "$gatefile" true 2>/dev/null; then
	not_ok "another user cannot hold the token lock's gate" \
		"nobody took flock on $gatefile ($(stat -c '%A %U:%G' "$gatefile"))"
else
	ok "another user cannot hold the token lock's gate"
fi
if as_nobody flock -n -x "$loginfile" true 2>/dev/null; then
	not_ok "another user cannot hold the token's login turn" \
		"nobody took flock on $loginfile ($(stat -c '%A %U:%G' "$loginfile"))"
else
	ok "another user cannot hold the token's login turn"
fi
check "lock files are mode 0660 (not cut or widened by the umask)" \
	test "$(stat -c '%a' "$lockfile" "$gatefile" "$loginfile" | xargs)" = "660 660 660"

# 2. The blocked lock: another user tries to hold it; custody still runs.
as_nobody flock -x "$lockfile" sleep 30 2>/dev/null &
holder=$!
sleep 0.5
run list -c "$T/wait2.conf"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
holder=
if [ "$rc" -eq 0 ]; then
	ok "another user cannot stall custody by holding its lock"
else
	not_ok "another user cannot stall custody by holding its lock" "exit $rc" "stderr: $err"
fi

# 3. Lock directories others could tamper with are refused, naming why.
mkdir "$B/open" && chmod 0777 "$B/open"
CUSTODY_LOCK_DIR=$B/open run list
if [ "$rc" -eq 1 ] && grep -q "not sticky" <<<"$err"; then
	ok "a lock directory anyone may write to without the sticky bit is refused"
else
	not_ok "a lock directory anyone may write to without the sticky bit is refused" \
		"exit $rc" "stderr: $err"
fi
mkdir "$B/theirs" && chown "$NOBODY:$NOGROUP" "$B/theirs" && chmod 1777 "$B/theirs"
CUSTODY_LOCK_DIR=$B/theirs run list
if [ "$rc" -eq 1 ] && grep -q "belongs to uid $NOBODY" <<<"$err"; then
	ok "a lock directory of another user is refused"
else
	not_ok "a lock directory of another user is refused" "exit $rc" "stderr: $err"
fi
# A lock file someone else made first in a directory everyone writes to.
name=$(basename "$lockfile")
mkdir "$B/first" && chmod 1777 "$B/first"
as_nobody touch "$B/first/$name"
CUSTODY_LOCK_DIR=$B/first run list
if [ "$rc" -eq 1 ] && grep -q "belongs to uid $NOBODY" <<<"$err"; then
	ok "a lock file another user made first is refused"
else
	not_ok "a lock file another user made first is refused" "exit $rc" "stderr: $err"
fi
# Lock files an older custody left: open to every user (0644), or closed
# to the token's group (0600 under umask 077).  custody, as their owner,
# makes them 0660 in the directory's group.
mkdir "$B/old" && chmod 1777 "$B/old"
(umask 022 && : >"$B/old/$name" && : >"$B/old/${name%.lock}.gate")
chmod 0600 "$B/old/${name%.lock}.gate"
CUSTODY_LOCK_DIR=$B/old run list
if [ "$rc" -eq 0 ] && ! as_nobody flock -n -x "$B/old/$name" true 2>/dev/null &&
	[ "$(stat -c '%a' "$B/old/$name" "$B/old/${name%.lock}.gate" | xargs)" = "660 660" ]; then
	ok "lock files an older custody left open (0644) or closed (0600) are made 0660"
else
	not_ok "lock files an older custody left open (0644) or closed (0600) are made 0660" \
		"exit $rc; $(stat -c '%n %a %U:%G' "$B/old/$name" "$B/old/${name%.lock}.gate")" \
		"stderr: $err"
fi
# A directory custody makes: its mode is set, not left to the umask (one
# that takes the owner's write permission too).
(umask 0277 && CUSTODY_LOCK_DIR=$T/made "$CUSTODY_BIN" list >/dev/null 2>&1)
check "a lock directory custody makes gets its mode explicitly (0700 when configured)" \
	test "$(stat -c '%a' "$T/made" 2>/dev/null)" = 700

# 4. One lock per token, whatever the user: custody run by another user
# (with the default lock directory) names /run/lock/custody, and makes no
# lock of its own elsewhere.  Only where that directory exists already
# (this test makes nothing there).
if [ -d /run/lock/custody ] && [ ! -L /run/lock/custody ]; then
	N=$(mktemp -d /tmp/custody-nobody.XXXXXX)
	chown "$NOBODY:$NOGROUP" "$N"
	fallback=/tmp/custody-$NOBODY/$name
	had_fallback=0 had_run=0
	[ -e "$fallback" ] && had_fallback=1
	[ -e "/run/lock/custody/$name" ] && had_run=1
	# A store of its own to read (a copy of this test's).
	sqlite3 "$T/custody.db" ".backup '$N/custody.db'"
	chown "$NOBODY:$NOGROUP" "$N/custody.db"
	nobody_err=$(env -u CUSTODY_LOCK_DIR CUSTODY_STORE="sqlite:$N/custody.db" \
		CUSTODY_PIN_SOURCE=env:NO_PIN \
		LD_LIBRARY_PATH="${TOP_BUILDDIR:?}/.libs" \
		setpriv --reuid="$NOBODY" --regid="$NOGROUP" --clear-groups \
		"$TOP_BUILDDIR/custody" list 2>&1 >/dev/null)
	if [ "$had_fallback" -eq 0 ] && [ -e "$fallback" ]; then
		not_ok "custody run by another user takes the token's one lock" \
			"it took a lock of its own: $fallback" "stderr: $nobody_err"
		rm -f "$fallback" "${fallback%.lock}.gate"
		rmdir "/tmp/custody-$NOBODY" 2>/dev/null
	elif grep -q "/tmp/custody-" <<<"$nobody_err"; then
		not_ok "custody run by another user takes the token's one lock" "stderr: $nobody_err"
	else
		ok "custody run by another user takes the token's one lock"
	fi
	rm -rf "$N"
	# A lock file it may have made there (a name of this test's token only).
	[ "$had_run" -eq 0 ] && rm -f "/run/lock/custody/$name" "/run/lock/custody/${name%.lock}.gate"
else
	tap_n=$((tap_n + 1))
	echo "ok $tap_n - custody run by another user takes the token's one lock # SKIP no /run/lock/custody"
fi
done_testing
