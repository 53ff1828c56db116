#!/usr/bin/env bash
# Crash safety: `custody import` (a PKCS#12 assigned over a current
# certificate) killed with SIGKILL at random moments.  The window is
# learned from timed clean runs; each run restores the same starting
# state, starts the import, kills it after a random delay within the
# window, and then:
#   - the store names nothing the token lacks, every assignment names a
#     stored certificate, the audit log verifies (checkstate; objects only
#     the token holds, such as a key whose certificate was not written
#     yet, are allowed as leftovers);
#   - no file of the token or the store holds the private key in clear
#     (32 bytes of its private exponent are looked for);
#   - the same import again exits 0 and leaves everything consistent, with
#     the assignment made.  Allowed after it: "torn" objects (checkstate:
#     an object without CKA_ID, the shell SoftHSM writes before the
#     template when its C_CreateObject is killed), which nothing completes
#     and nothing uses; they are counted and reported.
# CRASH_RUNS runs (default 50; 200 under make stress).
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/fault/lib.sh"
setup_fault_token
started=$(now_ms)
runs=${CRASH_RUNS:-$([ "$STRESS" = 1 ] && echo 200 || echo 50)}
export P12_PASSWORD=crash-secret

make_p12 old old.crash.test 300
make_p12 new new.crash.test 300 rsa:2048 P12_PASSWORD
run import --path "$T/old.p12" -t OAuthTokenIssuer -i global
old=$out
check "the base import exits 0" [ "$rc" -eq 0 ]
new=$(thumbprint_of_p12 new P12_PASSWORD)
# 32 bytes from the middle of the private exponent, in hex (a pipe only).
d_window=$(openssl pkcs12 -in "$T/new.p12" -nocerts -nodes -passin env:P12_PASSWORD 2>/dev/null |
	openssl rsa -noout -text 2>/dev/null |
	sed -n '/^privateExponent:/,/^prime1:/p' | sed '1d;$d' | tr -d ' :\n' | cut -c 101-164)
check "the private exponent could be read for the scan" [ ${#d_window} -eq 64 ]
in_clear() { # — the files holding the window, if any
	local f
	for f in "$T/custody.db" "$T/custody.db-wal" $(find "$T/tokens" -type f); do
		[ -f "$f" ] || continue
		if od -An -v -tx1 "$f" | tr -d ' \n' | grep -q "$d_window"; then echo "$f"; fi
	done
}
save_state base
args=(import --path "$T/new.p12" --password-source env:P12_PASSWORD -t OAuthTokenIssuer -i global)

effect_ok() {
	local j
	j=$("$CUSTODY_BIN" get -t OAuthTokenIssuer -i global -o json 2>/dev/null)
	python3 -c '
import json, sys
a = json.load(sys.stdin)[0]
sys.exit(0 if a["current"]["thumbprint"] == sys.argv[1] and
         a["previous"]["thumbprint"] == sys.argv[2] else 1)' "$new" "$old" <<<"$j"
}

# start_import — the import in the background ($pid), counting its calls.
start_import() {
	rm -f "$T/count"
	FAULT_COUNT_FILE="$T/count" "$CUSTODY_BIN" "${args[@]}" >/dev/null 2>"$T/crash.err" &
	pid=$!
}
# until_token — waits until the import made its first PKCS#11 call.
until_token() {
	while [ ! -s "$T/count" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.001; done
}

# The windows, from three clean runs: the whole run, and the part after
# the first PKCS#11 call (parsing the PKCS#12 comes first and takes most
# of the time; odd runs are killed anywhere, even runs in the token part).
window=0 token_window=0
for _ in 1 2 3; do
	restore_state base
	t0=$(now_ms)
	start_import
	until_token
	t1=$(now_ms)
	wait "$pid"
	t2=$(now_ms)
	[ $((t2 - t0)) -gt "$window" ] && window=$((t2 - t0))
	[ $((t2 - t1)) -gt "$token_window" ] && token_window=$((t2 - t1))
done
calls=$(cat "$T/count")
echo "# windows: ${window} ms the whole import, ${token_window} ms from its first PKCS#11" \
	"call; $calls calls in a clean run; $runs runs"

finished=0 killed=0 leftovers=0 torn=0 points=()
for ((i = 1; i <= runs; i++)); do
	restore_state base
	start_import
	if [ $((i % 2)) -eq 1 ]; then
		delay=$((RANDOM % (window + 1)))
		from="the start"
	else
		delay=$((RANDOM % (token_window + 1)))
		from="its first PKCS#11 call"
		until_token
	fi
	sleep "$(awk -v ms="$delay" 'BEGIN { printf "%.3f", ms / 1000 }')"
	kill -9 "$pid" 2>/dev/null
	{ wait "$pid"; } 2>/dev/null
	status=$?
	made=$(cat "$T/count" 2>/dev/null)
	if [ "$status" -eq 137 ]; then
		killed=$((killed + 1))
		what="killed ${delay} ms after $from, after call ${made:-0} of $calls"
		points+=("${made:-0}")
	else
		finished=$((finished + 1))
		what="finished (exit $status) before the kill at ${delay} ms"
	fi
	checkstate --leftovers-ok
	after=$check_rc check_after=$check_out
	clear=$(in_clear)
	if [ "$after" -ne 0 ] && [ "$after" -ne 3 ] || [ -n "$clear" ]; then
		rc=$status err=$(cat "$T/crash.err")
		report_failure "run $i: $what: the state is inconsistent${clear:+ (the key in clear: $clear)}"
		continue
	fi
	[ "$after" -eq 3 ] && leftovers=$((leftovers + 1))
	run "${args[@]}"
	again=$rc
	checkstate --torn-ok
	if [ "$again" -eq 0 ] && { [ "$check_rc" -eq 0 ] || [ "$check_rc" -eq 3 ]; } && effect_ok; then
		[ "$check_rc" -eq 3 ] && torn=$((torn + 1))
		ok "run $i: $what: $([ "$after" -eq 3 ] && echo "leftovers only" || echo consistent); again: done, consistent$([ "$check_rc" -eq 3 ] && echo " but for a torn object")"
	else
		report_failure "run $i: $what; the import again: exit $again (after the kill: $check_after)"
	fi
done
echo "# $runs runs: $killed killed ($leftovers left leftovers, $torn of them a torn SoftHSM" \
	"object), $finished finished first;" \
	"$(($(now_ms) - started)) ms"
echo "# killed after call (how many runs): $(printf '%s\n' "${points[@]}" | sort -n | uniq -c |
	awk '{ printf "%s(%s) ", $2, $1 }')"
done_testing
