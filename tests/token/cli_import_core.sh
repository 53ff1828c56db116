#!/usr/bin/env bash
# Secrets in memory (issue 10, point 4): a custody import that waits for
# the token lock, killed so that it dumps core, leaves no core and no
# private key in one; it waits for the lock before it decrypts the file
# (a wrong password is only found once the lock is free); and the
# process refuses core files (RLIMIT_CORE 0) whatever the shell allowed.
#
# The attack: another process holds the token (a long sync, a stuck
# import); `custody import` of a PKCS#12 waits up to 30 s for the lock;
# whoever can make it dump core (SIGQUIT, SIGABRT, a crash) reads the
# private key from the core file.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
for tool in flock python3; do
	if ! command -v "$tool" >/dev/null; then
		echo "1..0 # SKIP $tool is missing"
		exit 0
	fi
done
setup_token core
holder=
trap '[ -n "$holder" ] && kill "$holder" 2>/dev/null; rm -rf "$T"' EXIT

export P12_PASSWORD=core-dump-test WRONG_PASSWORD=not-the-password
make_p12 victim victim.custody.test 30 rsa:2048 P12_PASSWORD

# The key's first prime, hex, from the file (through pipes only).
prime=$(openssl pkcs12 -in "$T/victim.p12" -passin env:P12_PASSWORD -nocerts -noenc 2>/dev/null |
	openssl pkey -text -noout 2>/dev/null |
	awk '/^prime1:/ { on = 1; next } /^[a-z]/ { on = 0 } on' | tr -d ' :\n')
[ ${#prime} -ge 200 ] || { echo "Bail out! cannot read the test key's prime"; exit 1; }

# The token lock file (made by a first use of the token).
run token
lockfile=$(ls "$CUSTODY_LOCK_DIR"/token-*.lock 2>/dev/null | head -1)
[ -n "$lockfile" ] || { echo "Bail out! no token lock file in $CUSTODY_LOCK_DIR"; exit 1; }

# hold_lock — another process holds the token lock (until killed).
hold_lock() {
	flock -x "$lockfile" sleep 60 &
	holder=$!
	sleep 0.3
}
release_lock() {
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	holder=
}

# A config that waits 3 s for the lock (the environment still names the
# token, the store and the PIN).
printf '[token]\nlock-timeout = 3\n' >"$T/wait3.conf"

# --- 1. The lock before the decryption: with the lock held, a wrong
# password is not found (nothing is decrypted) until the lock is free.
before=$(state)
hold_lock
run import --path "$T/victim.p12" --password-source env:WRONG_PASSWORD -c "$T/wait3.conf"
release_lock
if [ "$rc" -eq 1 ] && grep -q "token is busy" <<<"$err"; then
	ok "import waits for the token lock before it decrypts the file"
else
	not_ok "import waits for the token lock before it decrypts the file" \
		"exit $rc; the password was tried while another process held the token" \
		"stderr: $err"
fi
check "a refused import changed nothing" test "$(state)" = "$before"

# --- 2. The core dump of an import waiting for the lock.
pattern=$(cat /proc/sys/kernel/core_pattern 2>/dev/null)
mkdir "$T/cores"
hold_lock
(
	cd "$T/cores" || exit 1
	ulimit -c unlimited 2>/dev/null
	exec "$CUSTODY_BIN" import --path "$T/victim.p12" --password-source env:P12_PASSWORD \
		-c "$T/wait3.conf" 2>"$T/import.err"
) &
victim=$!
waited=0
while ! grep -q "waiting for the token lock" "$T/import.err" 2>/dev/null && [ $waited -lt 50 ]; do
	sleep 0.1
	waited=$((waited + 1))
done
limits=$(grep -i '^Max core file size' "/proc/$victim/limits" 2>/dev/null)
{
	kill -ABRT "$victim"
	wait "$victim"
} 2>/dev/null	# (no "Aborted" from the shell)
release_lock

# RLIMIT_CORE, as any user sees it in /proc/PID/limits: 0, soft and hard.
if [[ $limits =~ ^Max\ core\ file\ size\ +0\ +0\  ]]; then
	ok "a custody process refuses core files (RLIMIT_CORE 0 0) though the shell allowed them"
else
	not_ok "a custody process refuses core files (RLIMIT_CORE 0 0) though the shell allowed them" \
		"/proc/PID/limits: ${limits:-(process gone before it was read)}"
fi

case $pattern in
'|'* | '')
	for what in "the core of an import waiting for the token lock holds no private key" \
		"an import killed with SIGABRT leaves no core file"; do
		tap_n=$((tap_n + 1))
		echo "ok $tap_n - $what # SKIP cores go to '${pattern:-?}', not to a file"
	done
	;;
*)
	cores=$(find "$T/cores" -type f | wc -l)
	# The key's prime as it is in memory: big-endian bytes, or a BIGNUM's
	# little-endian words (the bytes reversed).
	found=$(PRIME=$prime python3 - "$T/cores" <<'EOF'
import os, sys
p = bytes.fromhex(os.environ["PRIME"].lstrip("0") or "0")
chunk = p[8:40]
hits = 0
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        data = open(os.path.join(root, f), "rb").read()
        if chunk in data or chunk[::-1] in data:
            hits += 1
print(hits)
EOF
)
	if [ "$found" = 0 ]; then
		ok "the core of an import waiting for the token lock holds no private key"
	else
		not_ok "the core of an import waiting for the token lock holds no private key" \
			"the key's prime is in $found core file(s) of custody import"
	fi
	if [ "$cores" -eq 0 ]; then
		ok "an import killed with SIGABRT leaves no core file"
	else
		not_ok "an import killed with SIGABRT leaves no core file" \
			"$cores core file(s) in the import's directory (core_pattern '$pattern')"
	fi
	;;
esac
done_testing
