#!/usr/bin/env bash
# custody request under faults.  The key pair is generated inside the
# token, then signed through libp11 (which loads the same shim, so its
# calls are walked too).  Every visited call fails in turn: the command
# exits 1 and removes what it made (key pair, certificate, request file)
# or, where the call was not needed, succeeds; the same request again
# succeeds.  Then every visited call aborts the process: the store never
# names what the token lacks.  make check visits every
# ${FAULT_REQUEST_K:-3}rd call (and the last); make stress every call.
#
# An abort between the key generation and the store write leaves a key
# pair that nothing names (checkstate reports it as a leftover), and its
# label stays taken: custody tidy --yes removes it (the crash walk of the
# self-signed request does so after every abort that left the request
# undone, then runs it again).  The CSR request is walked every k-th call.
#
# Left out: a failing C_OpenSession of libp11's (the calls after the
# second C_Initialize are libp11's).  libp11 0.4.12's pkcs11_get_session
# then waits on a condition variable for a session to come free, which in
# a single-threaded process never happens: the command hangs (measured;
# it is libp11's bug, custody cannot reach into it).
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/fault/lib.sh"
setup_fault_token
started=$(now_ms)
k=${FAULT_REQUEST_K:-3}

make_p12 a a.fault.test 300
run import --path "$T/a.p12" -t Default
check "the base import exits 0" [ "$rc" -eq 0 ]
save_state base

walk_skip() {
	local libp11_from
	libp11_from=$(awk '$2 == "C_Initialize" { if (++n == 2) { print $1; exit } }' "$T/clean.trace")
	if [ "$2" = C_OpenSession ] && [ -n "$libp11_from" ] && [ "$1" -gt "$libp11_from" ]; then
		skip_reason="libp11 0.4.12 hangs when its C_OpenSession fails"
		return 0
	fi
	return 1
}

# 1. Self-signed, assigned as WebServicesInternal.
effect_ok() {
	local cur subj
	cur=$("$CUSTODY_BIN" get -t WebServicesInternal -i node1 -o json 2>/dev/null |
		python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["current"]["subject"])' 2>/dev/null)
	[ "$cur" = "CN=ss.fault.test" ] && return 0
	why="WebServicesInternal/node1 is current=$cur"
	return 1
}
walk_unchanged() {
	return 0
}
walk request base fail "$k" -- request --subject CN=ss.fault.test --key ec:p256 --label ss \
	--self-signed --days 30 -t WebServicesInternal
n_ss=$walk_count
# Every k-th call boundary (every one in make stress), and torn writes
# inside every object-creating call.  What a user does after
# the crash: when the request did not take effect, custody tidy --yes
# (which removes the key pair it left, freeing its label), then the same
# request again.
crash_again() {
	if effect_ok; then
		rc=0
		return
	fi
	run_fault -- tidy --yes
	[ "$rc" -eq 0 ] || return
	run_fault -- "$@"
}
crash_k=$k crash_walk request base -- request --subject CN=ss.fault.test --key ec:p256 --label ss \
	--self-signed --days 30 -t WebServicesInternal
crash_again() { run_fault -- "$@"; }

# 2. A CSR: the request file exists exactly when the command succeeded.
csr=$T/out.csr
walk_reset() {
	rm -f "$csr"
}
walk_unchanged() {
	[ ! -e "$csr" ] && return 0
	why="exit 1 but $csr was left behind"
	return 1
}
effect_ok() {
	if openssl req -in "$csr" -noout -verify 2>/dev/null &&
		openssl req -in "$csr" -noout -subject 2>/dev/null | grep -q 'CN *= *csr.fault.test'; then
		return 0
	fi
	why="$csr is not a request for CN=csr.fault.test whose signature verifies"
	return 1
}
walk request base fail "$k" -- request --subject CN=csr.fault.test --key ec:p256 --label csr \
	--csr "$csr"
n_csr=$walk_count
walk_again_after_abort=0
walk request base abort "$k" -- request --subject CN=csr.fault.test --key ec:p256 --label csr \
	--csr "$csr"

# After an abort in the middle (at the key generation's first use by
# libp11), the token still serves: a request under a fresh label succeeds
# and everything the store names is there.
restore_state base
walk_reset
n=$(awk '$2 == "C_SignInit" { print $1; exit }' "$T/clean.trace")
run_fault FAULT_AT="$n" FAULT_ABORT=1 -- request --subject CN=csr.fault.test --key ec:p256 \
	--label csr --csr "$csr"
check "abort at the request's first C_SignInit (call $n): exit 134" [ "$rc" -eq 134 ]
checkstate --leftovers-ok
check "…leaves the key pair as a leftover only (checkstate exit 3)" [ "$check_rc" -eq 3 ]
rm -f "$csr"
run request --subject CN=csr.fault.test --key ec:p256 --label csr2 --csr "$csr"
check "…and a request under another label succeeds" [ "$rc" -eq 0 ]
checkstate --leftovers-ok
check "…with the store consistent" [ "$check_rc" -eq 3 ]

echo "# calls: self-signed $n_ss, CSR $n_csr; every ${k}th visited (stress: $STRESS);" \
	"$(($(now_ms) - started)) ms"
done_testing
