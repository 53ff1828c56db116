#!/usr/bin/env bash
# Crash safety of `custody sync`: node2 of a two-node cluster (a token
# each, one SQLite store) syncs a replicated key (unwrap under the KEK,
# check against the certificate, report) and is killed with SIGKILL at a
# random moment within the window learned from timed clean runs.  After
# each kill (from the same starting state every time):
#   - checkstate on node2: nothing reported held that the token lacks, no
#     package torn, the KEK's KCV the store's, the audit log whole; token
#     leftovers allowed;
#   - `custody sync` again exits 0, node2 holds the key, and everything is
#     consistent (torn SoftHSM objects allowed and counted, see crash.sh).
# CRASH_RUNS runs (default 50; 200 under make stress).
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/fault/lib.sh"
if ! "$CUSTODY_BIN" sync --help >/dev/null 2>&1 || ! "$CUSTODY_BIN" node --help >/dev/null 2>&1; then
	echo "1..0 # SKIP this custody has no sync / node commands"
	exit 0
fi
started=$(now_ms)
runs=${CRASH_RUNS:-$([ "$STRESS" = 1 ] && echo 200 || echo 50)}
for n in node1 node2; do
	setup_node "$n" "sqlite:$T/custody.db"
done
save_state() {
	rm -rf "$T/saved.$1"
	mkdir -p "$T/saved.$1"
	cp -a "$T/node2/tokens" "$T/saved.$1/node2.tokens"
	cp -a "$T/custody.db" "$T/saved.$1/custody.db"
}
restore_state() {
	rm -rf "$T/node2/tokens" "$T"/custody.db*
	cp -a "$T/saved.$1/node2.tokens" "$T/node2/tokens"
	cp -a "$T/saved.$1/custody.db" "$T/custody.db"
}

on node1 kek create
on node2 node enroll
on node1 node admit node2
on node2 node join
check "the ceremony: node2 joined" [ "$rc" -eq 0 ]
key=$(openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null)
openssl req -x509 -key <(printf '%s\n' "$key") -subj "/O=custody test/CN=rep.crash.test" \
	-days 200 -out "$T/rep.crt" 2>/dev/null
openssl pkcs12 -export -inkey <(printf '%s\n' "$key") -in "$T/rep.crt" -passout pass: \
	-out "$T/rep.p12"
unset key
rep=$(openssl x509 -in "$T/rep.crt" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
on node1 import --path "$T/rep.p12" --replicable -t OAuthTokenIssuer
check "node1: import --replicable, packaged" [ "$rc" -eq 0 ]
save_state base
. "$T/node2/env"

holds() {
	"$CUSTODY_BIN" list -o json 2>/dev/null | python3 -c '
import json, sys
c = [x for x in json.load(sys.stdin) if x["thumbprint"] == sys.argv[1]]
sys.exit(0 if c and c[0]["has_private_key"] else 1)' "$rep"
}
start_sync() {
	rm -f "$T/count"
	CUSTODY_MODULE=$SHIM FAULT_COUNT_FILE="$T/count" "$CUSTODY_BIN" sync >/dev/null 2>"$T/crash.err" &
	pid=$!
}

window=0
for _ in 1 2 3; do
	restore_state base
	t0=$(now_ms)
	start_sync
	wait "$pid"
	t=$(($(now_ms) - t0))
	[ "$t" -gt "$window" ] && window=$t
done
calls=$(cat "$T/count")
check "a clean sync brings the key to node2" holds
echo "# window ${window} ms, $calls PKCS#11 calls in a clean sync; $runs runs"

finished=0 killed=0 leftovers=0 torn=0 points=()
for ((i = 1; i <= runs; i++)); do
	restore_state base
	start_sync
	delay=$((RANDOM % (window + 1)))
	sleep "$(awk -v ms="$delay" 'BEGIN { printf "%.3f", ms / 1000 }')"
	kill -9 "$pid" 2>/dev/null
	{ wait "$pid"; } 2>/dev/null
	status=$?
	made=$(cat "$T/count" 2>/dev/null)
	if [ "$status" -eq 137 ]; then
		killed=$((killed + 1))
		what="killed after ${delay} ms, after call ${made:-0} of $calls"
		points+=("${made:-0}")
	else
		finished=$((finished + 1))
		what="finished (exit $status) before the kill at ${delay} ms"
	fi
	checkstate --leftovers-ok
	after=$check_rc check_after=$check_out
	if [ "$after" -ne 0 ] && [ "$after" -ne 3 ]; then
		rc=$status err=$(cat "$T/crash.err")
		report_failure "run $i: $what: the state is inconsistent"
		continue
	fi
	[ "$after" -eq 3 ] && leftovers=$((leftovers + 1))
	run sync
	again=$rc
	checkstate --torn-ok
	if [ "$again" -eq 0 ] && { [ "$check_rc" -eq 0 ] || [ "$check_rc" -eq 3 ]; } && holds; then
		[ "$check_rc" -eq 3 ] && torn=$((torn + 1))
		ok "run $i: $what: $([ "$after" -eq 3 ] && echo "leftovers only" || echo consistent); sync again: holds the key, consistent$([ "$check_rc" -eq 3 ] && echo " but for a torn object")"
	else
		report_failure "run $i: $what; sync again: exit $again (after the kill: $check_after)"
	fi
done
echo "# $runs runs: $killed killed ($leftovers left leftovers, $torn a torn SoftHSM object)," \
	"$finished finished first; $(($(now_ms) - started)) ms"
echo "# killed after call (how many runs): $(printf '%s\n' "${points[@]}" | sort -n | uniq -c |
	awk '{ printf "%s(%s) ", $2, $1 }')"
done_testing
