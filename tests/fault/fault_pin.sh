#!/usr/bin/env bash
# PIN safety through the shim, which counts C_Login and can make
# C_GetTokenInfo report the PIN flags a real token would:
#  - a token that says "final try" or "locked" is never logged into: no
#    C_Login at all, exit 1 with the reason, nothing changed;
#  - a wrong PIN is presented exactly once per process (never retried),
#    exit 1 "the token rejected the PIN";
#  - "count low" alone does not stop a right PIN.
# For every command that logs in; and for the security officer's PIN of
# `node admit` (so-final-try / so-locked: no SO login; a wrong SO PIN:
# one SO login), when this custody has the cluster commands.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/fault/lib.sh"
setup_fault_token

make_p12 a a.fault.test 300
make_p12 b b.fault.test 300
run import --path "$T/a.p12" -t Default
check "the base import exits 0" [ "$rc" -eq 0 ]
tp_a=$out
tp_b=$(thumbprint_of_p12 b)
printf 'data to sign\n' >"$T/data"
# A wrong PIN: the right one with its last digit changed.
right=$(cat "$T/user.pin")
last=${right: -1}
printf '%s%s' "${right%?}" "$(((last + 1) % 10))" >"$T/wrong.pin"
unset right last

# logins [USER|SO] — how many C_Login calls reached the token.
logins() { grep -c " C_Login/${1:-}" "$T/trace"; }

# NAME ARGS... — the commands that log in, as each is checked below.
commands=(
	"import|import --path $T/b.p12"
	"set|set -t WebServicesInternal --thumbprint $tp_a"
	"list|list"
	"delete|delete --thumbprint $tp_a --force"
	"request|request --subject CN=pin.fault.test --key ec:p256 --self-signed --days 30"
	"sign|sign -t Default --in $T/data --out $T/sig"
)
if "$CUSTODY_BIN" sync --help >/dev/null 2>&1; then
	commands+=("sync|sync")
fi

before=$(state)
for entry in "${commands[@]}"; do
	name=${entry%%|*}
	read -r -a args <<<"${entry#*|}"
	for flags in final-try locked final-try,count-low; do
		run_fault FAULT_PIN_FLAGS="$flags" -- "${args[@]}"
		case $flags in
		locked) reason="the user PIN is locked" ;;
		*) reason="one more wrong PIN locks it" ;;
		esac
		check "$name, token says $flags: exit 1" [ "$rc" -eq 1 ]
		check "$name, token says $flags: no C_Login at all" [ "$(logins)" -eq 0 ]
		check "$name, token says $flags: the error says why" \
			grep -q "^custody: $name: cannot log in to token test: .*$reason" <<<"$err"
	done
	run_fault -- --pin-source "file:$T/wrong.pin" "${args[@]}"
	check "$name, wrong PIN: exit 1" [ "$rc" -eq 1 ]
	check "$name, wrong PIN: the error says 'the token rejected the PIN'" \
		grep -q "^custody: $name: .*the token rejected the PIN" <<<"$err"
	check "$name, wrong PIN: exactly one C_Login ($(logins))" [ "$(logins)" -eq 1 ]
done
rm -f "$T/sig"
check "nothing changed on the token or in the store" [ "$(state)" = "$before" ]

# A wrong PIN leaves the token saying "count low": the next run with the
# right PIN still logs in (once) and works.
run_fault FAULT_PIN_FLAGS=count-low -- list -o json
check "count low alone: the right PIN works for list" [ "$rc" -eq 0 ]
check "count low alone: one C_Login" [ "$(logins)" -eq 1 ]
run_fault FAULT_PIN_FLAGS=count-low -- set -t WebServicesInternal --thumbprint "$tp_a"
check "count low alone: set works" [ "$rc" -eq 0 ]
checkstate
check "…and the state is consistent" [ "$check_rc" -eq 0 ]

# The SO PIN of node admit: this token makes the KEK, node2 (a token of its
# own, the same store) enrolls, and this token admits it.
if "$CUSTODY_BIN" node --help >/dev/null 2>&1; then
	run kek create
	check "kek create exits 0" [ "$rc" -eq 0 ]
	setup_node node2 "$CUSTODY_STORE"
	run kek authority
	on node2 node enroll --authority "$out"
	fp2=$(enroll_fp)
	check "node2 enrolls" [ "$rc" -eq 0 ]
	before=$(state)
	for flags in so-final-try so-locked; do
		run_fault FAULT_PIN_FLAGS="$flags" -- --so-pin-source "file:$T/so.pin" node admit node2 --fingerprint "$fp2"
		check "node admit, token says $flags: exit 1" [ "$rc" -eq 1 ]
		check "node admit, token says $flags: no SO login ($(logins SO))" [ "$(logins SO)" -eq 0 ]
		check "node admit, token says $flags: the error names the SO PIN" \
			grep -q "^custody: node: .*security officer" <<<"$err"
	done
	run_fault -- --so-pin-source "file:$T/wrong.pin" node admit node2 --fingerprint "$fp2"
	check "node admit, wrong SO PIN: exit 1" [ "$rc" -eq 1 ]
	check "node admit, wrong SO PIN: the token rejected it" \
		grep -q "^custody: node: .*rejected the PIN" <<<"$err"
	check "node admit, wrong SO PIN: exactly one SO login ($(logins SO))" [ "$(logins SO)" -eq 1 ]
	check "node admit refused: nothing changed" [ "$(state)" = "$before" ]
	run_fault -- --so-pin-source "file:$T/so.pin" node admit node2 --fingerprint "$fp2"
	check "node admit with the right SO PIN then works" [ "$rc" -eq 0 ]
fi
done_testing
