#!/usr/bin/env bash
# custody request under faults.  The key pair is generated inside the
# token and the request or certificate signed there, all through custody's
# own calls in the one session it opened.  Every visited call fails in
# turn: the command exits 1 and removes what it made (key pair,
# certificate, request file) or, where the call was not needed, succeeds;
# the same request again succeeds.  Then every visited call aborts the
# process: the store never names what the token lacks.  make check visits
# every ${FAULT_REQUEST_K:-3}rd call (and the last); make stress every call.
#
# An abort between the key generation and the store write leaves a key
# pair that nothing names (checkstate reports it as a leftover), and its
# label stays taken: custody tidy --yes removes it (the crash walk of the
# self-signed request does so after every abort that left the request
# undone, then runs it again).  The CSR request is walked every k-th call.
#
# No other PKCS#11 library takes part: the module is initialised once and
# one session is opened, and a token that refuses every further session
# (what made libp11 0.4.12, which request once signed through, wait
# forever) does not stop a request.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/fault/lib.sh"
setup_fault_token
started=$(now_ms)
k=${FAULT_REQUEST_K:-3}

make_p12 a a.fault.test 300
run import --path "$T/a.p12" -t Default
check "the base import exits 0" [ "$rc" -eq 0 ]
save_state base

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

# After an abort in the middle (at the first signature with the key just
# generated), the token still serves: a request under a fresh label succeeds
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

# 3. Custody's own signing only.  The clean runs initialise the module
# once and open one session: nothing else loads it.  And with every
# C_OpenSession after the first refused (FAULT_PERSIST), both kinds of
# request still finish, and in time (libp11 0.4.12 waited forever for a
# session to come free).  RSA here, EC above.
made() { # KIND — the request's effect, as a user sees it
	if [ "$1" = csr ]; then
		grep -qx "Certificate request self-signature verify OK" \
			<<<"$(openssl req -in "$csr" -noout -verify 2>&1)"
	else
		grep -Eqx '[0-9A-F]{40}' <<<"$out" &&
			[ "$("$CUSTODY_BIN" get -t WebServicesInternal -i node1 -o thumbprint)" = "$out" ]
	fi
}
for kind in self-signed csr; do
	restore_state base
	walk_reset
	if [ $kind = csr ]; then
		args=(request --subject CN=csr.fault.test --key rsa:2048 --label csr --csr "$csr")
	else
		args=(request --subject CN=ss.fault.test --key rsa:2048 --label ss --self-signed
			--days 30 -t WebServicesInternal)
	fi
	count_calls "${args[@]}" >/dev/null
	check "$kind: the clean run initialises the module once (C_Initialize)" \
		[ "$(grep -c ' C_Initialize ' "$T/clean.trace")" -eq 1 ]
	check "$kind: …and opens one session (C_OpenSession)" \
		[ "$(grep -c ' C_OpenSession ' "$T/clean.trace")" -eq 1 ]
	restore_state base
	walk_reset
	FAULT_TIMEOUT=30 run_fault FAULT_FUNC=C_OpenSession FAULT_AT=2 FAULT_PERSIST=1 -- "${args[@]}"
	check "$kind: every further C_OpenSession refused: exit 0, not a hang (timeout 30 s)" \
		[ "$rc" -eq 0 ]
	check "…and the request took effect" made $kind
	checkstate
	check "…token and store consistent" [ "$check_rc" -eq 0 ]
done

echo "# calls: self-signed $n_ss, CSR $n_csr; every ${k}th visited (stress: $STRESS);" \
	"$(($(now_ms) - started)) ms"
done_testing
