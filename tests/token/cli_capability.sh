#!/usr/bin/env bash
# What a token can do, asked of the token: `custody token`, and the
# refusals made up front from it.  Tokens that lack a mechanism, cannot
# list theirs, lie about one, or do not honour an attribute are SoftHSM
# behind the fault shim (tests/fault/p11shim.c: FAULT_HIDE_MECH,
# FAULT_IGNORE_ATTR, FAULT_FUNC/FAULT_AT), which forwards everything else.
# Each refusal: exit 1, one line naming the token and what it lacks, the
# token and the store unchanged.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token cap
declare_types EcSigner

SHIM=${TOP_BUILDDIR:-}/tests/fault/.libs/p11shim.so
if [ ! -f "$SHIM" ]; then
	echo "1..0 # SKIP the fault shim is not built (make check builds it)"
	exit 0
fi
real_module=$CUSTODY_MODULE

# shim ENV... -- ARGS... — custody through the shim, with ENV set.
shim() {
	local envs=()
	while [ "$1" != "--" ]; do envs+=("$1"); shift; done
	shift
	out=$(env "${envs[@]}" FAULT_TARGET="$real_module" CUSTODY_MODULE="$SHIM" \
		"$CUSTODY_BIN" "$@" 2>"$T/stderr")
	rc=$?
	err=$(cat "$T/stderr")
}
one_line() { [ "$(grep -cv '^ *hint:' <<<"$err")" -eq 1 ]; }

# The store exists from here on (its first write, an import, makes it):
# "unchanged" below is its rows and the token's objects.
make_p12 z z.custody.test 365
"$CUSTODY_BIN" -q import --path "$T/z.p12" >/dev/null 2>&1
run list
# --- custody token on SoftHSM ---
run token
check "custody token names the token, its maker and serial" \
	grep -q "^token  *: cap$" <<<"$out"
check "custody token: RSA and EC generated and used for signing" \
	[ "$(grep -c '^\(rsa\|ec\)  *: generate yes, sign yes' <<<"$out")" -eq 2 ]
check "custody token: SoftHSM can be a cluster member and tags with AES key wrap" \
	[ "$(grep -c '^cluster member  *: yes$\|^integrity tags  *: CKM_AES_KEY_WRAP$' <<<"$out")" -eq 2 ]
run token -o json
check "custody token -o json: the fields of the contract" \
	[ "$(jq -c '[.label, .manufacturer, .rsa.generate, .ec.sign, .cluster_member,
		    .integrity_tags, .attributes.CKA_COPYABLE, (.pin_flags | length)]' <<<"$out")" = \
	  '["cap","SoftHSM project",true,true,true,"CKM_AES_KEY_WRAP",true,0]' ]
before=$(state)
check "custody token writes nothing" [ "$before" = "$(state)" ]

# --- a token without EC key generation (0x1040 CKM_EC_KEY_PAIR_GEN) ---
before=$(state)
shim FAULT_HIDE_MECH=0x1040 -- token -o json
check "custody token says when EC keys cannot be generated" \
	[ "$(jq -c '[.ec.generate, .ec.sign, .rsa.generate]' <<<"$out")" = '[false,true,true]' ]
shim FAULT_HIDE_MECH=0x1040 -- request --key ec:p256 --subject CN=ec.custody.test --csr "$T/ec.csr"
check "request ec:p256 on a token without EC generation: exit 1, one line" \
	[ "$rc" -eq 1 -a "$(grep -c 'token cap cannot generate EC-P256 keys: it has no CKM_EC_KEY_PAIR_GEN' <<<"$err")" -eq 1 ]
check "... one line only" one_line
check "... token and store unchanged, no CSR file" [ "$before" = "$(state)" -a ! -e "$T/ec.csr" ]

# --- a token that cannot sign with EC keys (0x1041 CKM_ECDSA) ---
make_p12 ecimp ecimp.custody.test 30 ec:P-256
shim FAULT_HIDE_MECH=0x1041 -- import --path "$T/ecimp.p12"
check "import of an EC key on a token without ECDSA: exit 1, one line naming what it lacks" \
	[ "$rc" -eq 1 -a "$(grep -c 'token cap cannot sign with EC-P256 keys: it has no CKM_ECDSA for signing' <<<"$err")" -eq 1 ]
check "... token and store unchanged" [ "$before" = "$(state)" ]

# --- a token without AES key wrap with padding (0x210A): no cluster ---
make_p12 rep rep.custody.test 30
shim FAULT_HIDE_MECH=0x210a -- kek create
check "kek create on a token without CKM_AES_KEY_WRAP_PAD: exit 1, one line" \
	[ "$rc" -eq 1 -a "$(grep -c 'token cap cannot create the cluster KEK: it has no CKM_AES_KEY_WRAP_PAD for wrapping and unwrapping' <<<"$err")" -eq 1 ]
check "... token and store unchanged" [ "$before" = "$(state)" ]
shim FAULT_HIDE_MECH=0x210a -- import --replicable --path "$T/rep.p12"
check "import --replicable on it: exit 1, one line" \
	[ "$rc" -eq 1 -a "$(grep -c 'token cap cannot import replicable keys: it has no CKM_AES_KEY_WRAP_PAD' <<<"$err")" -eq 1 ]
check "... token and store unchanged" [ "$before" = "$(state)" ]
shim FAULT_HIDE_MECH=0x210a -- token -o json
check "custody token: not a cluster member, and why" \
	[ "$(jq -r '[.cluster_member, .cluster_lacks] | @tsv' <<<"$out")" = \
	  "$(printf 'false\ttoken cap cannot be a cluster member: it has no CKM_AES_KEY_WRAP_PAD for wrapping and unwrapping')" ]

# --- a token whose mechanism list cannot be read ---
shim FAULT_FUNC=C_GetMechanismList FAULT_AT=1 FAULT_PERSIST=1 -- request --key rsa:2048 \
	--subject CN=nolist.custody.test --csr "$T/nolist.csr"
check "request on a token that cannot list its mechanisms: exit 1, one line" \
	[ "$rc" -eq 1 -a "$(grep -c 'cannot read the mechanisms of token cap: CKR_DEVICE_ERROR' <<<"$err")" -eq 1 ]
check "... token and store unchanged" [ "$before" = "$(state)" -a ! -e "$T/nolist.csr" ]

# --- a token that lists a mechanism and then refuses it ---
shim FAULT_FUNC=C_GenerateKeyPair FAULT_AT=1 FAULT_RV=0x70 -- request --key rsa:2048 \
	--subject CN=liar.custody.test --csr "$T/liar.csr"
check "request on a token that refuses a mechanism it listed: exit 1, the token's answer" \
	[ "$rc" -eq 1 -a "$(grep -c 'cannot generate RSA-2048 key pair on token cap: CKR_MECHANISM_INVALID' <<<"$err")" -eq 1 ]
check "... token and store unchanged" [ "$before" = "$(state)" -a ! -e "$T/liar.csr" ]

# --- a token that does not honour CKA_SENSITIVE (0x103) ---
shim FAULT_IGNORE_ATTR=0x103 -- request --key rsa:2048 --subject CN=lax.custody.test --csr "$T/lax.csr"
check "request on a token that ignores CKA_SENSITIVE: refused naming the attribute" \
	[ "$rc" -eq 1 -a "$(grep -c 'token cap did not honour CKA_SENSITIVE on the private key (asked true, holds false): refused' <<<"$err")" -eq 1 ]
check "... the key is destroyed again: token and store unchanged" [ "$before" = "$(state)" ]
make_p12 lax lax.custody.test 30
shim FAULT_IGNORE_ATTR=0x103 -- import --path "$T/lax.p12"
check "import on it: refused naming the attribute" \
	[ "$rc" -eq 1 -a "$(grep -c 'token cap did not honour CKA_SENSITIVE on the private key' <<<"$err")" -eq 1 ]
check "... token and store unchanged" [ "$before" = "$(state)" ]

# --- and without the shim everything works as before ---
run import --path "$T/lax.p12" -t Default
check "the same import on the token itself works" [ "$rc" -eq 0 ]

# --- custody test on a token that cannot sign with an assigned key ---
run import --path "$T/ecimp.p12" -t EcSigner
check "an EC key imported and assigned on the token itself" [ "$rc" -eq 0 ]
shim FAULT_HIDE_MECH=0x1041 -- test -t EcSigner
check "custody test: CRITICAL when the token cannot sign with the assigned key's kind" \
	[ "$rc" -eq 2 -a "$(grep -c '^CRITICAL .*token cap cannot sign with EC-P256 keys: it has no CKM_ECDSA' <<<"$out")" -eq 1 ]
run test -t EcSigner
check "... and the key signs on the token itself (a 30-day certificate: a WARNING at most)" \
	[ "$rc" -le 1 -a "$(grep -c '^CRITICAL' <<<"$out")" -eq 0 -a \
	  "$(grep -c 'signs and verifies' <<<"$out")" -eq 1 ]

done_testing
