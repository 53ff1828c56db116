#!/usr/bin/env bash
# custody kek create under faults, on a store that one node already used:
# its rows are tagged by the token's own KEK, which kek create adopts as
# the cluster's, then makes the cluster authority beside it and records
# both.  Every PKCS#11 call fails in turn: after a failure the token and
# the store are as they were (the authority made in this run is gone
# again), and the same kek create succeeds.  make check takes every
# ${FAULT_KEK_K:-2}nd call (and the last one); make stress every call.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/fault/lib.sh"
setup_fault_token
started=$(now_ms)
k=${FAULT_KEK_K:-2}

make_p12 a a.fault.test 300
run import --path "$T/a.p12"
check "import exits 0 (the store's rows are tagged by this token's KEK)" [ "$rc" -eq 0 ]
tagged=$(sqlite3 "$T/custody.db" "SELECT value FROM cluster_meta WHERE name = 'tag_kek_kcv'")
check "…the store names the tagging KEK" [ -n "$tagged" ]
save_state base

effect_ok() {
	local kcv
	kcv=$(sqlite3 "$T/custody.db" "SELECT value FROM cluster_meta WHERE name = 'kek_kcv'")
	[ -n "$kcv" ] && [ "${kcv^^}" = "${tagged^^}" ] && return 0
	why="the store's cluster KEK is '$kcv', the tagging one $tagged"
	return 1
}
walk kek base fail "$k" -- kek create
n_kek=$walk_count

echo "# calls: kek create $n_kek; every ${k}th visited (stress: $STRESS);" \
	"$(($(now_ms) - started)) ms"
done_testing
