#!/usr/bin/env bash
# custody set under faults: every PKCS#11 call of `set` (it opens the
# token and lists its certificates to find the one named) fails in turn,
# then aborts the process in turn.  set writes only the store: after a
# fault the assignment is either unchanged or fully changed, never half,
# and the same set again succeeds.  Three kinds: set now, a roll, and
# --from-type.  make check takes every ${FAULT_SET_K:-3}rd call of each
# walk (and the last one); make stress every call.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/fault/lib.sh"
setup_fault_token
started=$(now_ms)
k=${FAULT_SET_K:-3}

make_p12 a a.fault.test 300
make_p12 b b.fault.test 300 ec:P-256
make_p12 c c.fault.test 300
for x in a b c; do
	run import --path "$T/$x.p12"
	check "import of $x exits 0" [ "$rc" -eq 0 ]
	eval "tp_$x=\$out"
done
run set -t Default --thumbprint "$tp_a"
check "Default/node1 is set to a" [ "$rc" -eq 0 ]
save_state base

slots() { # TYPE IDENTITY — "CURRENT PREVIOUS PENDING" thumbprints ("None" when empty)
	"$CUSTODY_BIN" get -t "$1" -i "$2" -o json 2>/dev/null | python3 -c '
import json, sys
a = json.load(sys.stdin)[0]
print(*[a[s]["thumbprint"] if a[s] else "None" for s in ("current", "previous", "pending")])'
}

# 1. set now: b becomes current, a previous.
effect_ok() {
	local cur prev pend
	read -r cur prev pend <<<"$(slots Default node1)"
	[ "$cur" = "$tp_b" ] && [ "$prev" = "$tp_a" ] && return 0
	why="Default/node1 is current=$cur previous=$prev"
	return 1
}
walk set base fail "$k" -- set -t Default --thumbprint "$tp_b"
n_set=$walk_count s_set=$walk_steps
walk set base abort "$k" -- set -t Default --thumbprint "$tp_b"

# 2. a roll: c pending at a date in the future.
when=$(date -u -d '+30 days' +%Y-%m-%dT00:00:00Z)
effect_ok() {
	local cur prev pend
	read -r cur prev pend <<<"$(slots Default node1)"
	[ "$cur" = "$tp_a" ] && [ "$pend" = "$tp_c" ] && return 0
	why="Default/node1 is current=$cur pending=$pend"
	return 1
}
walk set base fail "$k" -- set -t Default --thumbprint "$tp_c" --roll --effective-date "$when"
n_roll=$walk_count
walk set base abort "$k" -- set -t Default --thumbprint "$tp_c" --roll --effective-date "$when"

# 3. --from-type: WebServicesInternal takes Default's current.
effect_ok() {
	local cur
	cur=$("$CUSTODY_BIN" get -t WebServicesInternal -i node1 -o thumbprint 2>/dev/null)
	[ "$cur" = "$tp_a" ] && return 0
	why="WebServicesInternal/node1 is $cur"
	return 1
}
walk set base fail "$k" -- set -t WebServicesInternal --from-type Default
n_from=$walk_count
walk set base abort "$k" -- set -t WebServicesInternal --from-type Default

echo "# calls: set $n_set, roll $n_roll, --from-type $n_from; every ${k}th visited" \
	"(stress: $STRESS); $(($(now_ms) - started)) ms"
done_testing
