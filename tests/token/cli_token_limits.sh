#!/usr/bin/env bash
# What the test token cannot do is refused up front; what it can do works.
# Runs on SoftHSM (which can do all of it) and on openCryptoki's software
# token (no EC, no AES key wrap: no cluster).  Each refusal: exit 1, one
# line naming the token and what it lacks, the token's object count and
# the store unchanged.  The single-node work (import, request, set, roll,
# sign, jwt, test) on an RSA key works on both, integrity tags included.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token limits
label=$(token_label)

# refused WHAT PATTERN — the last run was refused in one line matching
# PATTERN, and nothing changed since $before / $objects.
refused() {
	check "$1: exit 1, one line naming token $label and what it lacks" \
		[ "$rc" -eq 1 -a "$(grep -c "token $label $2" <<<"$err")" -eq 1 -a \
		  "$(grep -vc '^\(hint:\|request for\|importing\)' <<<"$err")" -eq 1 ]
	check "$1: the token's objects and the store unchanged" \
		[ "$(count_objects)" -eq "$objects" -a "$(state)" = "$before" ]
}

run token -o json
check "custody token describes the token" [ "$rc" -eq 0 -a "$(jq -r .label <<<"$out")" = "$label" ]

# --- the single-node work on an RSA key, integrity tags and all ---
make_p12 oauth oauth.custody.test 365 rsa:2048
run import --path "$T/oauth.p12" -t OAuthTokenIssuer -i global
check "import of an RSA PKCS#12, assigned" [ "$rc" -eq 0 ]
first=$(thumbprint_of_p12 oauth)
run request --subject "CN=next.custody.test" --key rsa:2048 --self-signed --days 365
check "request rsa:2048 --self-signed" [ "$rc" -eq 0 ]
next=$(tr -d '\n' <<<"$out" | grep -o '[0-9A-F]\{40\}' | head -1)
run set -t OAuthTokenIssuer -i global --thumbprint "$next" \
	--effective-date "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)" --roll
check "set --roll stages the next certificate" [ "$rc" -eq 0 ]
run get -t OAuthTokenIssuer -o json
check "get: current and pending as set" \
	[ "$(jq -r '.[0].current.thumbprint + " " + .[0].pending.thumbprint' <<<"$out")" = "$first $next" ]
echo -n "payload" >"$T/in"
run sign -t OAuthTokenIssuer --in "$T/in" --out "$T/sig"
openssl pkcs12 -in "$T/oauth.p12" -passin pass: -nokeys -clcerts 2>/dev/null |
	openssl x509 -pubkey -noout >"$T/oauth.pub"
check "sign: the signature verifies with the certificate's key" \
	[ "$rc" -eq 0 ] && openssl dgst -sha256 -verify "$T/oauth.pub" -signature "$T/sig" "$T/in" >/dev/null
run jwt issue --claims '{"sub":"limits"}'
tok=$out
run jwt verify "$tok"
check "jwt issue and verify" [ "$rc" -eq 0 ]
run test -t OAuthTokenIssuer
check "test: no CRITICAL" [ "$rc" -le 1 -a "$(grep -c '^CRITICAL' <<<"$out")" -eq 0 ]
run tag
check "the store's integrity tags all hold (custody tag checks them)" [ "$rc" -eq 0 ]
if [ -f "$T/custody.db" ]; then
	sqlite3 "$T/custody.db" "update assignments set current_effective = current_effective + 1" 2>/dev/null
	run sign -t OAuthTokenIssuer --in "$T/in" --out "$T/sig2"
	check "a row changed outside custody is refused (its tag fails)" \
		[ "$rc" -ne 0 -a ! -s "$T/sig2" ] && grep -qi "integrity" <<<"$err"
	sqlite3 "$T/custody.db" "update assignments set current_effective = current_effective - 1" 2>/dev/null
fi

# --- EC keys ---
before=$(state)
objects=$(count_objects)
make_p12 ec ec.custody.test 365 ec:P-256
if token_can ec; then
	run request --subject "CN=ec.custody.test" --key ec:p256 --csr "$T/ec.csr"
	check "request ec:p256 works where the token has EC" [ "$rc" -eq 0 -a -s "$T/ec.csr" ]
	run import --path "$T/ec.p12"
	check "import of an EC PKCS#12 works where the token has EC" [ "$rc" -eq 0 ]
else
	run request --subject "CN=ec.custody.test" --key ec:p256 --csr "$T/ec.csr"
	refused "request ec:p256" "cannot generate EC-P256 keys: it has no CKM_EC_KEY_PAIR_GEN"
	check "... and no CSR file" [ ! -e "$T/ec.csr" ]
	run import --path "$T/ec.p12"
	refused "import of an EC PKCS#12" "cannot sign with EC-P256 keys: it has no CKM_ECDSA for signing"
fi

# --- the cluster: kek create, --replicable ---
before=$(state)
objects=$(count_objects)
make_p12 rep rep.custody.test 365
if token_can cluster; then
	run kek create
	check "kek create works where the token can be a cluster member" [ "$rc" -eq 0 ]
	run import --replicable --path "$T/rep.p12"
	check "import --replicable works there" [ "$rc" -eq 0 ]
else
	run kek create
	refused "kek create" "cannot create the cluster KEK: it has no CKM_AES_KEY_WRAP_PAD"
	run import --replicable --path "$T/rep.p12"
	refused "import --replicable" "cannot import replicable keys: it has no CKM_AES_KEY_WRAP_PAD"
	run request --replicable --subject "CN=rep2.custody.test" --key rsa:2048 --csr "$T/rep2.csr"
	refused "request --replicable" "cannot make replicable keys: it has no CKM_AES_KEY_WRAP_PAD"
	check "... and no CSR file" [ ! -e "$T/rep2.csr" ]
fi

done_testing
