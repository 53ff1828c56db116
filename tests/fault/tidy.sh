#!/usr/bin/env bash
# custody tidy: what interrupted custody work leaves on the token, found
# through the notes of intent and removed only when nothing in the store
# names it; another application's objects are never listed.
#   1. an import aborted before its certificate object: a key pair that
#      nothing names — listed (table and JSON), --dry-run changes nothing,
#      --yes destroys it with an audit entry, the import again works;
#   2. a request aborted after its key pair took its key id: listed with
#      the note of its temporary id, both go;
#   3. an import aborted after its store commit, before its note went: the
#      certificate record names the key: kept, only the note goes;
#   4. a CSR request aborted before its note went: the pending CSR (audit
#      log) names the key: kept;
#   5. a token that refuses C_DestroyObject: exit 1 naming the object,
#      token and store unchanged;
# and through all of it another application's key pairs, certificate and
# data object (made with pkcs11-tool, one of them under custody's key id
# convention) are never listed and never touched.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/fault/lib.sh"
if ! "$CUSTODY_BIN" tidy --help >/dev/null 2>&1; then
	echo "1..0 # SKIP this custody has no tidy command"
	exit 0
fi
if ! command -v pkcs11-tool >/dev/null; then
	echo "1..0 # SKIP pkcs11-tool (opensc) is not installed"
	exit 0
fi
setup_fault_token
TEST_PIN=$(cat "${CUSTODY_PIN_SOURCE#file:}")
export TEST_PIN
p11() { # pkcs11-tool on the real module, logged in (PIN from the environment)
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$CUSTODY_TOKEN" --login \
		--pin env:TEST_PIN "$@" 2>/dev/null
}
others() { # the other application's objects as pkcs11-tool lists them, in order
	# (pkcs11-tool numbers data objects in listing order: custody's notes
	# shift the numbers, not the objects)
	p11 --list-objects | sed 's/^Data object [0-9]*/Data object/' | python3 -c '
import sys
blocks, cur = [], []
for line in sys.stdin:
    if line[:1] not in (" ", "\t") and cur:
        blocks.append("".join(cur)); cur = []
    cur.append(line)
blocks.append("".join(cur))
print("".join(sorted(b for b in blocks if "other-app" in b)), end="")'
}

# Another application's objects: an RSA key pair with an id of its own,
# an EC key pair whose id is the SHA-1 of its public key (custody's and
# GnuTLS's convention), a certificate and a data object.
p11 --keypairgen --key-type rsa:2048 --id 0a0b0c --label other-app-rsa >/dev/null
check "another application made an RSA key pair" [ $? -eq 0 ]
p11 --keypairgen --key-type EC:prime256v1 --id 01 --label other-app-ec >/dev/null
ecpub=$(p11 --read-object --type pubkey --id 01 | openssl pkey -pubin -inform DER -outform DER 2>/dev/null |
	openssl asn1parse -inform DER -strparse 23 -noout -out /dev/stdout 2>/dev/null | openssl dgst -sha1 -r | cut -d' ' -f1)
p11 --set-id "$ecpub" --id 01 --type privkey >/dev/null
p11 --set-id "$ecpub" --id 01 --type pubkey >/dev/null
openssl req -x509 -newkey rsa:2048 -noenc -keyout /dev/null -subj /CN=other-app -days 30 \
	-outform DER -out "$T/other.der" 2>/dev/null
p11 --write-object "$T/other.der" --type cert --id 0a0b0c --label other-app-cert >/dev/null
p11 --write-object "$T/other.der" --type cert --id "$ecpub" --label other-app-cert-ec >/dev/null
printf 'not custody' >"$T/other.data"
p11 --write-object "$T/other.data" --type data --label other-app-data >/dev/null
others_before=$(others | sha256sum)
same_others() {
	others >"$T/others.now"
	[ "$(sha256sum <"$T/others.now")" = "$others_before" ] && return 0
	diff "$T/others.before" "$T/others.now" | sed 's/^/# /'
	return 1
}
others > "$T/others.before"
check "…an EC key pair under the SHA-1 of its public key, two certificates and a data object" \
	[ "$(others | grep -c '^[A-Z]')" -eq 7 ]
checkstate
check "checkstate: the token is consistent with the other application's objects on it" [ "$check_rc" -eq 0 ]

run tidy
check "a token with only another application's objects: tidy exits 0" [ "$rc" -eq 0 ]
check "…and lists nothing" [ -z "$out" ]
check "…saying there are no notes" grep -q ": 0 note(s)" <<<"$err"

# 1. An import aborted before its certificate object.
make_p12 one one.tidy.test 100
restore_point() { save_state "$1"; }
save_state clean
count_calls import --path "$T/one.p12" >/dev/null
restore_state clean
last_create=$(own_call C_CreateObject last)
run_fault FAULT_AT="$last_create" FAULT_ABORT=1 -- import --path "$T/one.p12"
check "import aborted at its last C_CreateObject (call $last_create, the certificate)" [ "$rc" -eq 134 ]
checkstate --leftovers-ok
check "…leaves a key pair that nothing names (checkstate: leftovers)" [ "$check_rc" -eq 3 ]
key_one=$(openssl pkcs12 -in "$T/one.p12" -passin env:EMPTY_PASSWORD -nokeys -clcerts 2>/dev/null |
	openssl x509 -noout -pubkey | openssl asn1parse -strparse 19 -noout -out /dev/stdout 2>/dev/null |
	openssl dgst -sha1 -r | cut -d' ' -f1)
before=$(state)
run tidy
check "tidy (the default is --dry-run) exits 0" [ "$rc" -eq 0 ]
check "…listing the key pair it would destroy" \
	grep -q "^$key_one  would destroy 1 private key(s), 1 public key(s), 0 certificate(s)$" <<<"$out"
check "…and only it" [ "$(wc -l <<<"$out")" -eq 1 ]
check "…saying nothing was changed" grep -q "nothing was changed (--dry-run)" <<<"$err"
check "…and nothing was" [ "$(state)" = "$before" ]
run tidy --dry-run -o json
check "tidy -o json: one item, action destroy, the counts" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
i = d["items"]
assert d["done"] is False and len(i) == 1, d
assert i[0]["key_id"] == sys.argv[2] and i[0]["action"] == "destroy", i
assert (i[0]["private_keys"], i[0]["public_keys"], i[0]["certificates"]) == (1, 1, 0), i
assert i[0]["named_by"] is None, i' "$out" "$key_one"
check "…changing nothing either" [ "$(state)" = "$before" ]
run tidy --yes --dry-run
check "--yes with --dry-run is a usage error" [ "$rc" -eq 2 ]
run tidy --yes
check "tidy --yes exits 0" [ "$rc" -eq 0 ]
check "…saying what it destroyed" grep -q "^$key_one  destroyed 1 private key(s), 1 public key(s)" <<<"$out"
checkstate
check "…and the token and the store are consistent again (no leftovers)" [ "$check_rc" -eq 0 ]
check "…one audit entry 'tidy' names the key id" \
	[ "$(sqlite3 "$T/custody.db" "SELECT count(*) FROM audit WHERE action = 'tidy' AND detail LIKE '%$key_one%'")" -eq 1 ]
run audit --verify
check "…the audit log verifies" [ "$rc" -eq 0 ]
check "…and another application's objects are all there, unchanged" same_others
run tidy
check "a second tidy finds nothing" [ -z "$out" ]
run import --path "$T/one.p12"
check "the import again works" [ "$rc" -eq 0 ]
run tidy
check "…and leaves no note behind" grep -q ": 0 note(s)" <<<"$err"

# 2. A request aborted after its key pair took its key id (the second
# C_SetAttributeValue), before its CSR.
save_state requested
count_calls request --subject CN=req.tidy.test --key ec:p256 --csr "$T/req.csr" >/dev/null
rm -f "$T/req.csr"
restore_state requested
second_set=$(awk '$2 == "C_SetAttributeValue" { if (++k == 2) { print $1; exit } }' "$T/clean.trace")
run_fault FAULT_AT="$second_set" FAULT_ABORT_AFTER=1 -- request --subject CN=req.tidy.test --key ec:p256 --csr "$T/req.csr"
check "request aborted right after its key pair took its key id" [ "$rc" -eq 134 ]
run tidy -o json
check "tidy lists the key pair and the note of its temporary id" python3 -c '
import json, sys
i = json.loads(sys.argv[1])["items"]
d = [x for x in i if x["action"] == "destroy"]
n = [x for x in i if x["action"] == "note-only"]
assert len(i) == 2 and len(d) == 1 and len(n) == 1, i
assert (d[0]["private_keys"], d[0]["public_keys"]) == (1, 1), d
assert bytes.fromhex(n[0]["key_id"]).startswith(b"custody-keygen:"), n' "$out"
run tidy --yes
check "tidy --yes removes both" [ "$rc" -eq 0 ]
checkstate
check "…consistent, no leftovers" [ "$check_rc" -eq 0 ]
check "…and another application's objects are all there" same_others

# 3. An import aborted after its store commit, before its note went: the
# certificate record names the key.
make_p12 two two.tidy.test 100
save_state named
count_calls import --path "$T/two.p12" >/dev/null
restore_state named
last_destroy=$(own_call C_DestroyObject last)
run_fault FAULT_AT="$last_destroy" FAULT_ABORT=1 -- import --path "$T/two.p12"
check "import aborted at its last C_DestroyObject (the note)" [ "$rc" -eq 134 ]
two=$(thumbprint_of_p12 two)
run tidy
check "tidy keeps the key: the certificate record names it" \
	grep -q "keep: the certificate record $two names it (only its note goes)" <<<"$out"
run tidy --yes
run list -o json
check "tidy --yes removes the note only: the key and certificate stay" python3 -c '
import json, sys
c = [x for x in json.loads(sys.argv[1]) if x["thumbprint"] == sys.argv[2]]
assert c and c[0]["has_private_key"], c' "$out" "$two"
run tidy
check "…and the note is gone" grep -q ": 0 note(s)" <<<"$err"

# 4. A CSR request aborted before its note went: the pending CSR names
# the key.
save_state csr
count_calls request --subject CN=csr.tidy.test --key ec:p256 --csr "$T/csr.csr" >/dev/null
rm -f "$T/csr.csr"
restore_state csr
last_destroy=$(own_call C_DestroyObject last)
run_fault FAULT_AT="$last_destroy" FAULT_ABORT=1 -- request --subject CN=csr.tidy.test --key ec:p256 \
	--csr "$T/csr.csr"
check "request --csr aborted at its last C_DestroyObject (the note)" [ "$rc" -eq 134 ]
check "…after it wrote its CSR" [ -s "$T/csr.csr" ]
run tidy
check "tidy keeps the key of the pending CSR" grep -q "keep: a pending certificate request" <<<"$out"
check "…and destroys nothing" bash -c '! grep -q "would destroy" <<<"$1"' _ "$out"

# 5. A token that refuses C_DestroyObject during tidy --yes.
restore_state clean
run_fault FAULT_AT="$last_create" FAULT_ABORT=1 -- import --path "$T/one.p12"
# A store in use: its integrity KEK is made (by a whole import), so that
# tidy's first C_DestroyObject of its own is the leftover's.
"$CUSTODY_BIN" -q import --path "$T/two.p12" >/dev/null
save_state torn
count_calls tidy --yes >/dev/null
restore_state torn
first_destroy=$(own_call C_DestroyObject first)
before=$(state)
run_fault FAULT_AT="$first_destroy" -- tidy --yes
check "C_DestroyObject refused: tidy --yes exits 1" [ "$rc" -eq 1 ]
check "…naming the object" grep -q "cannot destroy the certificate\|cannot destroy the public key (key id $key_one)" <<<"$err"
check "…with the token and the store unchanged" [ "$(state)" = "$before" ]
check "…and another application's objects are all there" same_others
done_testing
