#!/usr/bin/env bash
# What a Lync administrator reaches for: the public certificate of any
# thumbprint as PEM or DER (list --thumbprint X -o pem|der); key pairs
# waiting for their CA listed (key only, CSR pending); a new request for a
# key already on the token (request --key-id K --csr); the wizard offering
# declared custom types and cancelling a pending roll; the wrapped package
# command named export-package, export kept as its alias.  Every refusal
# leaves the token and the store as they were.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token
declare_types MyRole
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" <<<"$out"; }
EXP="$TOP_SRCDIR/tests/token/wizard.exp"

# refused WHAT RC COMMAND... — custody COMMAND exits RC, prints nothing on
# stdout, and leaves the token and the store as they were.
refused() {
	local what=$1 want=$2 before
	shift 2
	before=$(state)
	run "$@"
	check "$what: exit $want" [ "$rc" -eq "$want" ]
	check "…nothing on stdout" [ -z "$out" ]
	check "…token and store unchanged" [ "$(state)" = "$before" ]
}

make_p12 a a.custody.test 365
make_p12 b b.custody.test 365
A=$(thumbprint_of_p12 a)
B=$(thumbprint_of_p12 b)
cert_of() { # NAME FORM — the certificate of NAME.p12 as openssl writes it
	openssl pkcs12 -in "$T/$1.p12" -passin env:EMPTY_PASSWORD -nokeys -clcerts 2>/dev/null |
		openssl x509 -outform "$2"
}
"$CUSTODY_BIN" -q import --path "$T/a.p12" -t Default >/dev/null
"$CUSTODY_BIN" -q import --path "$T/b.p12" >/dev/null
roll_at=$(date -u -d "+30 days" +%Y-%m-%dT00:00:00Z)
"$CUSTODY_BIN" -q set -t Default --thumbprint "$B" --roll --effective-date "$roll_at"
run get -t Default -o json
check "setup: A current, B pending for Default" \
	[ "$(py 'print(d[0]["current"]["thumbprint"], d[0]["pending"]["thumbprint"])')" = "$A $B" ]

# ---------------------------------------------------------------- -o pem, -o der
before=$(state)
run list --thumbprint "$B" -o pem
check "list --thumbprint B -o pem (the pending certificate): exit 0" [ "$rc" -eq 0 ]
check "…prints B's certificate, PEM" [ "$out" = "$(cert_of b PEM)" ]
sha256=$(cert_of a DER | sha256sum | cut -c1-64)
run list --thumbprint "$sha256" -o pem
check "a SHA-256 fingerprint names A (the current one)" [ "$rc" -eq 0 -a "$out" = "$(cert_of a PEM)" ]
prefix=$(tr 'A-F' 'a-f' <<<"${A:0:12}" | sed 's/../&:/g; s/:$//')
run list --thumbprint "$prefix" -o pem
check "a lower-case prefix with colons ($prefix) names A" [ "$rc" -eq 0 -a "$out" = "$(cert_of a PEM)" ]
"$CUSTODY_BIN" list --thumbprint "$A" -o der >"$T/a.der" 2>"$T/stderr"
check "list --thumbprint A -o der > FILE: exit 0" [ $? -eq 0 ]
check "…the file is A's certificate in DER" cmp -s "$T/a.der" <(cert_of a DER)
run list -o pem
check "list -o pem alone: the token's certificates, one bundle of two" \
	[ "$rc" -eq 0 -a "$(grep -c -- '-----BEGIN CERTIFICATE-----' <<<"$out")" -eq 2 ]
check "…A's and B's" bash -c 'grep -qF "$1" <<<"$3" && grep -qF "$2" <<<"$3"' _ \
	"$(cert_of a PEM | sed -n 2p)" "$(cert_of b PEM | sed -n 2p)" "$out"
check "reading certificates changed nothing" [ "$(state)" = "$before" ]

# A certificate the store knows and this token does not hold: another
# token on the same store finds it.
softhsm_beside other "$CUSTODY_STORE"
on other list --thumbprint "$B" -o pem
check "a token without B finds B's certificate in the store" [ "$rc" -eq 0 -a "$out" = "$(cert_of b PEM)" ]
on other list -o pem
check "…while its own bundle is empty" [ "$rc" -eq 0 -a -z "$out" ]

refused "-o der without --thumbprint" 2 list -o der
check "…says it writes one certificate" grep -q "give --thumbprint X" <<<"$err"
refused "--thumbprint with the table" 2 list --thumbprint "$A"
refused "a thumbprint that is not hex" 2 list --thumbprint not-a-thumbprint -o pem
refused "an unknown thumbprint" 3 list --thumbprint 0123456789ABCDEF -o pem
check "…names it" grep -q "no certificate with thumbprint" <<<"$err"
refused "-o thumbprint does not apply to list" 2 list -o thumbprint
if command -v expect >/dev/null; then
	printf '? standard output is a terminal\n' >"$T/der.steps"
	before=$(state)
	expect -f "$EXP" "$T/der.steps" "$CUSTODY_BIN" list --thumbprint "$A" -o der >"$T/der.log" 2>&1
	check "-o der to a terminal: exit 2, nothing written" [ $? -eq 2 -a "$(state)" = "$before" ]
	check "…and no DER on the terminal" bash -c '! grep -q "BEGIN\|a.custody.test" "$1"' _ "$T/der.log"
else
	ok "# SKIP -o der to a terminal (expect is not installed)"
fi

# ---------------------------------------------------------------- key only
run request --subject "CN=pending.custody.test" --csr "$T/pending.csr"
K=$out
check "request --csr: exit 0, a key id" grep -Eqx '[0-9a-f]{40}' <<<"$K"
before=$(state)
run list
check "list shows the key without a certificate" [ "$rc" -eq 0 ]
check "…marked key only (CSR pending)" grep -qE "^Status +: key only \(CSR pending\)" <<<"$out"
check "…with its key id" grep -qE "^KeyId +: $K" <<<"$out"
check "…and the certificates still listed" grep -qE "^Thumbprint +: $A" <<<"$out"
run list -o json
check "list -o json: the key is an entry of kind key, thumbprint null" \
	[ "$(py 'print([(e["kind"], e["thumbprint"], e["has_private_key"]) for e in d if e["key_id"] == "'"$K"'"])')" = "[('key', None, True)]" ]
check "…the certificates keep their fields, kind certificate" \
	[ "$(py 'print(" ".join(sorted(e["thumbprint"] for e in d if e["kind"] == "certificate")))')" = "$(printf '%s\n' "$A" "$B" | sort | paste -sd' ')" ]
check "…and the key's algorithm and URI" \
	py 'e=[e for e in d if e["kind"]=="key"][0]; assert e["key_algorithm"]=="RSA-2048" and e["key_uri"].startswith("pkcs11:")'
check "listing changed nothing" [ "$(state)" = "$before" ]
# The CA signs, the certificate is imported: the key is no longer alone.
export CA_PASSWORD=ca-password-for-tests
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 \
	-pass env:CA_PASSWORD -out "$T/ca.key" 2>/dev/null
openssl req -x509 -new -key "$T/ca.key" -passin env:CA_PASSWORD -subj "/CN=custody test CA" \
	-days 30 -out "$T/ca.pem" 2>/dev/null
openssl x509 -req -in "$T/pending.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -passin env:CA_PASSWORD \
	-copy_extensions copy -days 30 -set_serial 0x1234 -out "$T/pending.pem" 2>/dev/null
"$CUSTODY_BIN" -q import --path "$T/pending.pem" >/dev/null
run list -o json
check "once its certificate is imported the key is no longer key only" \
	[ "$(py 'print([e["kind"] for e in d if e["key_id"] == "'"$K"'"])')" = "['certificate']" ]

# ---------------------------------------------------------------- request --key-id
n_before=$(count_objects)
run request --key-id "$K" --subject "CN=pending.custody.test,O=renewed" --csr "$T/renew.csr"
check "request --key-id K --csr: exit 0, prints K" [ "$rc" -eq 0 -a "$out" = "$K" ]
check "…no key generated, no object made" [ "$(count_objects)" -eq "$n_before" ]
check "…the request verifies" grep -qx "Certificate request self-signature verify OK" \
	<<<"$(openssl req -in "$T/renew.csr" -noout -verify 2>&1)"
check "…its public key is the key's (the old certificate's)" \
	[ "$(openssl req -in "$T/renew.csr" -noout -pubkey)" = "$(openssl x509 -in "$T/pending.pem" -noout -pubkey)" ]
check "…its subject is the new one" \
	grep -q "O=renewed" <<<"$(openssl req -in "$T/renew.csr" -noout -subject -nameopt RFC2253)"
run audit
check "…the audit log says a new CSR for the key" grep -q "new CSR for key id $K" <<<"$out"
KA=$("$CUSTODY_BIN" list -o json | python3 -c '
import json, sys
print([e["key_id"] for e in json.load(sys.stdin) if e["thumbprint"] == sys.argv[1]][0])' "$A")
run request --key-id "$KA" --csr "$T/renew-a.csr"
check "request --key-id K --csr without --subject: exit 0" [ "$rc" -eq 0 -a "$out" = "$KA" ]
subject_of() { openssl "$1" -in "$2" -noout -subject -nameopt RFC2253 | sed 's/^subject=//'; }
check "…asks for the subject of the key's certificate" \
	[ "$(subject_of req "$T/renew-a.csr")" = "$(cert_of a PEM | openssl x509 -noout -subject -nameopt RFC2253 | sed 's/^subject=//')" ]
check "…and its SANs" grep -q "DNS:a.custody.test" <<<"$(openssl req -in "$T/renew-a.csr" -noout -text)"
run request --subject "CN=alone.custody.test" --csr "$T/alone.csr"
K2=$out
refused "--key-id without --subject for a key that has no certificate" 1 \
	request --key-id "$K2" --csr "$T/alone2.csr"
check "…says to give the names" grep -q "hint: give them: --subject DN" <<<"$err"
check "…and no request file" [ ! -e "$T/alone2.csr" ]
refused "--key-id of a key that is not on the token" 1 \
	request --key-id 0000000000000000000000000000000000000000 --subject CN=x --csr "$T/none.csr"
check "…in one line naming the key id" \
	[ "$(wc -l <<<"$err")" -eq 1 ] && grep -q "no private key with key id 0000000000000000000000000000000000000000" <<<"$err"
check "…and no request file" [ ! -e "$T/none.csr" ]
refused "--key-id that is not a key id" 1 request --key-id "zz$K" --subject CN=x --csr "$T/zz.csr"
check "…says what a key id is" grep -q "expected 40 hex digits" <<<"$err"
refused "--key-id with --self-signed" 2 request --key-id "$K" --subject CN=x --self-signed --days 3
refused "--key-id with --key" 2 request --key-id "$K" --subject CN=x --key ec:p256 --csr "$T/k.csr"
check "…and no request file" [ ! -e "$T/k.csr" ]
touch "$T/exists.csr"
refused "--key-id onto an existing file" 1 request --key-id "$K" --subject CN=x --csr "$T/exists.csr"
check "…the file left as it was (empty)" [ ! -s "$T/exists.csr" ]

# ---------------------------------------------------------------- export-package
run export-package --help
help_new=$out
run export --help
check "export --help prints what export-package --help prints" [ "$out" = "$help_new" ]
run --help
check "custody --help lists export-package" grep -qE "^  export-package +" <<<"$out"
check "…and export, its first name" grep -qE "^  export +the same as export-package" <<<"$out"
refused "export-package without --out" 2 export-package --thumbprint "$A"
refused "export without --out: the same" 2 export --thumbprint "$A"
refused "export-package of a key that is not replicable" 1 export-package --thumbprint "$A" --out "$T/a.pkg"
msg_new=${err//export-package/export}
check "…no file" [ ! -e "$T/a.pkg" ]
refused "export of the same: the same refusal" 1 export --thumbprint "$A" --out "$T/a.pkg"
check "…word for word" [ "$err" = "$msg_new" ]

# ---------------------------------------------------------------- the wizard
if command -v expect >/dev/null; then
	wizard() { # NAME <<STEPS
		cat >"$T/$1.steps"
		expect -f "$EXP" "$T/$1.steps" "$CUSTODY_BIN" wizard >"$T/$1.log" 2>&1
		wrc=$?
		log=$(tr -d '\r' <"$T/$1.log")
		out=$log
	}
	keyed=$("$CUSTODY_BIN" list -o json | python3 -c '
import json, sys
print(sum(1 for c in json.load(sys.stdin) if c["thumbprint"] and c["has_private_key"]))')
	before=$(state)
	wizard types <<EOF
? 11) MyRole
? Type [1-11
> 11
? Identity [1-
> q
? cancelled, nothing changed
EOF
	check "the wizard offers the declared custom type MyRole (11th)" [ "$wrc" -eq 0 ]
	check "…and changed nothing" [ "$(state)" = "$before" ]
	cancel=$((keyed + 1))
	wizard cancel <<EOF
? Type [1-
> 1
? Identity [1-
> 1
? $cancel) cancel the pending roll to $B
? Certificate [1-$cancel
> $cancel
? pending: $B
? Apply?
> y
? Done.
EOF
	check "cancelling the pending roll in the wizard: exit 0" [ "$wrc" -eq 0 ]
	check "…the summary says A stays current" grep -qF "current: $A stays" <<<"$log"
	run get -t Default -o json
	check "…custody get: A current, nothing pending" \
		[ "$(py 'print(d[0]["current"]["thumbprint"], d[0]["pending"])')" = "$A None" ]
	run audit
	check "…the audit log has the remove" grep -qE "remove.*Default" <<<"$out"
	wizard nocancel <<EOF
? Type [1-
> 1
? Identity [1-
> 1
? Certificate [1-$keyed,
> q
? cancelled, nothing changed
EOF
	check "with nothing pending the wizard offers no cancel" \
		bash -c '[ "$1" -eq 0 ] && ! grep -q "cancel the pending roll" <<<"$2"' _ "$wrc" "$log"
else
	ok "# SKIP the wizard (expect is not installed)"
fi
done_testing
