#!/usr/bin/env bash
# custody metadata: the JWK Set and the server-to-server document list
# current, pending (as soon as it is staged) and previous, with x5t values
# that openssl computes the same.  It opens the token (with the PIN
# source the test sets) to check the integrity tags of what it publishes.
# A is RSA, B EC P-256; on a token that cannot sign with EC (openCryptoki
# 3.8.1) B is RSA too, and an EC key's import is refused up front there.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token
py() { python3 -c "import json,sys,base64,hashlib; d=json.load(sys.stdin); $1" <<<"$out"; }

# DER of the certificate in NAME.p12; its x5t (base64url SHA-1, unpadded).
der_of_p12() {
	openssl pkcs12 -in "$T/$1.p12" -passin env:EMPTY_PASSWORD -nokeys -clcerts 2>/dev/null |
		openssl x509 -outform DER
}
x5t_of_p12() {
	der_of_p12 "$1" | openssl dgst -sha1 -binary | basenc --base64url | tr -d '=\n'
}
meta() {
	run metadata "$@"
}
# refused WHAT MESSAGE ARGS... — what the token lacks is refused up front:
# exit 1, MESSAGE the one line on stderr, nothing on stdout, the token and
# the store as they were.
refused() { refused_up_front "$1" "$2" run "${@:3}"; }

if token_can ec-sign; then
	bkey=ec:P-256 bjwk=sig/EC/ES256 bdesc="EC P-256 with ES256"
else
	bkey=rsa:2048 bjwk=sig/RSA/RS256 bdesc="B's RSA with RS256 too"
fi
make_p12 a a.custody.test 365
make_p12 b b.custody.test 365 "$bkey"
A=$(thumbprint_of_p12 a); B=$(thumbprint_of_p12 b)
XA=$(x5t_of_p12 a); XB=$(x5t_of_p12 b)
for n in a b; do "$CUSTODY_BIN" -q import --path "$T/$n.p12" >/dev/null; done
if ! token_can ec-sign; then
	make_p12 ec ec.custody.test 365 ec:P-256
	refused "an EC P-256 key on a token that cannot sign with EC" \
		"custody: import: token test cannot sign with EC-P256 keys: it has no CKM_ECDSA for signing" \
		import --path "$T/ec.p12"
fi

# Nothing assigned yet.
meta
check "nothing assigned: exit 3" [ "$rc" -eq 3 ]
check "…with the contract's message" \
	grep -q "^custody: metadata: no certificate is assigned for type OAuthTokenIssuer (identity global)$" <<<"$err"
check "…and nothing on stdout" [ -z "$out" ]

# A current, B staged to roll in three days.
eff=$(date -u -d '+3 days' +%Y-%m-%dT%H:%M:%SZ)
"$CUSTODY_BIN" -q set -t OAuthTokenIssuer --thumbprint "$A" >/dev/null 2>&1
"$CUSTODY_BIN" -q set -t OAuthTokenIssuer --thumbprint "$B" --roll --effective-date "$eff" >/dev/null 2>&1

before=$(state)
meta
check "metadata (jwks by default) exits 0" [ "$rc" -eq 0 ]
check "…writes nothing on stderr" [ -z "$err" ]
check "…and changes nothing" [ "$(state)" = "$before" ]
check "jwks: current then pending" [ "$(py 'print(" ".join(k["x5t"] for k in d["keys"]))')" = "$XA $XB" ]
check "jwks: kid is the x5t" py 'assert all(k["kid"] == k["x5t"] for k in d["keys"])'
check "jwks: use sig, RSA with RS256, $bdesc" \
	[ "$(py 'print(" ".join(k["use"]+"/"+k["kty"]+"/"+k["alg"] for k in d["keys"]))')" = "sig/RSA/RS256 $bjwk" ]
if token_can ec-sign; then
	check "jwks: the EC key is on P-256 with 32-byte x and y" \
		py 'k=d["keys"][1]; u=lambda s: base64.urlsafe_b64decode(s+"="*(-len(s)%4)); assert k["crv"]=="P-256" and len(u(k["x"]))==32 and len(u(k["y"]))==32'
else
	check "jwks: B's n is its certificate's modulus" \
		[ "$(py 'k=d["keys"][1]; u=lambda s: base64.urlsafe_b64decode(s+"="*(-len(s)%4)); print(u(k["n"]).hex().upper())')" = \
		  "$(der_of_p12 b | openssl x509 -inform DER -noout -modulus | sed 's/^Modulus=//')" ]
fi
check "jwks: x5c holds the certificate's DER (standard base64)" \
	[ "$(py 'print(hashlib.sha1(base64.b64decode(d["keys"][0]["x5c"][0], validate=True)).hexdigest().upper())')" = "$A" ]
modulus=$(der_of_p12 a | openssl x509 -inform DER -noout -modulus | sed 's/^Modulus=//')
check "jwks: n is the certificate's modulus and e is 65537" \
	[ "$(py 'k=d["keys"][0]; u=lambda s: base64.urlsafe_b64decode(s+"="*(-len(s)%4)); print(u(k["n"]).hex().upper(), int.from_bytes(u(k["e"]), "big"))')" = "$modulus 65537" ]
check "jwks: no padding or standard-base64 characters in url-safe members" \
	py 'assert not any(c in k[m] for k in d["keys"] for m in ("kid","x5t","n","e","x","y") if m in k for c in "=+/")'

meta --format s2s
check "s2s exits 0" [ "$rc" -eq 0 ]
check "s2s: keyinfo.x5t of current then pending" \
	[ "$(py 'print(" ".join(k["keyinfo"]["x5t"] for k in d["keys"]))')" = "$XA $XB" ]
check "s2s: usage signing and keyvalue type x509Certificate" \
	py 'assert all(k["usage"]=="signing" and k["keyvalue"]["type"]=="x509Certificate" and set(k)=={"usage","keyinfo","keyvalue"} for k in d["keys"])'
check "s2s: keyvalue.value is the base64 DER of each certificate" \
	[ "$(py 'print(" ".join(hashlib.sha1(base64.b64decode(k["keyvalue"]["value"], validate=True)).hexdigest().upper() for k in d["keys"]))')" = "$A $B" ]

check "s2s without [metadata TYPE]: keys only, no invented issuer" \
	py 'assert list(d) == ["keys"]'
check "…and a note says why" \
	grep -q "^custody: metadata: note: no \[metadata OAuthTokenIssuer\] section in the configuration: the document lists the keys only" <<<"$err"

# With [metadata TYPE]: the trust fields a partner configures a trust from.
cat >"$T/meta.conf" <<'EOF'
[metadata OAuthTokenIssuer]
realm = 6a1c2f5e-7b7d-4e57-9c2b-0d8f1e0a9b11
service-name = 00000004-0000-0ff1-ce00-000000000000
name = Custody
metadata-url = https://sts.custody.test/metadata/json/1
EOF
CUSTODY_CONFIG="$T/meta.conf" meta --format s2s
check "s2s with [metadata OAuthTokenIssuer] exits 0, nothing on stderr" [ "$rc" -eq 0 -a -z "$err" ]
check "s2s: the members in the order Exchange publishes them" \
	[ "$(py 'print(" ".join(d))')" = "version name realm serviceName issuer allowedAudiences keys endpoints" ]
check "s2s: version 1.0, the configured name, realm and serviceName" \
	py 'assert (d["version"], d["name"], d["realm"], d["serviceName"]) == ("1.0", "Custody", "6a1c2f5e-7b7d-4e57-9c2b-0d8f1e0a9b11", "00000004-0000-0ff1-ce00-000000000000")'
# A partner's reading: issuer = serviceName@realm, every key's x5t is the
# base64url SHA-1 of the certificate in keyvalue.value.
check "s2s as a partner reads it: issuer is serviceName@realm" \
	py 'assert d["issuer"] == d["serviceName"] + "@" + d["realm"]'
check "s2s as a partner reads it: every keyinfo.x5t is the SHA-1 of its certificate" \
	py 'u=lambda b: base64.urlsafe_b64encode(b).decode().rstrip("="); assert d["keys"] and all(k["keyinfo"]["x5t"] == u(hashlib.sha1(base64.b64decode(k["keyvalue"]["value"], validate=True)).digest()) for k in d["keys"])'
check "s2s: allowedAudiences defaults to the service on any host of the realm" \
	py 'assert d["allowedAudiences"] == [d["serviceName"] + "/*@" + d["realm"]]'
check "s2s: the endpoint where the document is (OAuth2, metadata)" \
	py 'assert d["endpoints"] == [{"location": "https://sts.custody.test/metadata/json/1", "protocol": "OAuth2", "usage": "metadata"}]'
check "s2s: the keys are still current then pending" \
	[ "$(py 'print(" ".join(k["keyinfo"]["x5t"] for k in d["keys"]))')" = "$XA $XB" ]
py 'print(d["keys"][0]["keyvalue"]["value"])' | base64 -d >"$T/key0.der"
check "s2s: the published certificate parses, and is A" \
	[ "$(openssl x509 -inform DER -in "$T/key0.der" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')" = "$A" ]
CUSTODY_CONFIG="$T/meta.conf" meta
check "jwks is unchanged by [metadata TYPE]" py 'assert list(d) == ["keys"] and d["keys"][0]["kid"] == "'"$XA"'"'
printf '%s\n' '[metadata OAuthTokenIssuer]' 'audiences = a@r, b/*@r' 'id = _custody' \
	'realm = r' 'service-name = s' 'issuance-url = https://sts.custody.test/tokens/OAuth/2' >"$T/meta2.conf"
CUSTODY_CONFIG="$T/meta2.conf" meta -o s2s
check "s2s: the configured id first, audiences as given, an issuance endpoint" \
	py 'assert list(d)[0] == "id" and d["id"] == "_custody" and d["name"] == "s" and d["issuer"] == "s@r" and d["allowedAudiences"] == ["a@r", "b/*@r"] and d["endpoints"] == [{"location": "https://sts.custody.test/tokens/OAuth/2", "protocol": "OAuth2", "usage": "issuance"}]'
printf '%s\n' '[metadata OAuthTokenIssuer]' 'realm = contoso.com' 'service-name = sts@evil' >"$T/bad.conf"
CUSTODY_CONFIG="$T/bad.conf" meta --format s2s
check "a service name that would make another issuer: exit 2" [ "$rc" -eq 2 -a -z "$out" ]
check "…naming the file and line" \
	grep -qF "$T/bad.conf:3: invalid service-name 'sts@evil': the issuer is service-name@realm" <<<"$err"
printf '%s\n' '[metadata OAuthTokenIssuer]' 'service-name = s' >"$T/bad.conf"
CUSTODY_CONFIG="$T/bad.conf" meta --format s2s
check "a section without a realm: exit 2, naming it" \
	eval '[ "$rc" -eq 2 ] && grep -qF "$T/bad.conf:2: [metadata OAuthTokenIssuer]: realm is missing" <<<"$err"'

# At the roll instant B is current and A previous; pending is empty.
meta --at "$eff" -t oauthtokenissuer
check "after the roll: current then previous" [ "$rc" -eq 0 -a "$(py 'print(" ".join(k["x5t"] for k in d["keys"]))')" = "$XB $XA" ]
meta --at "$(date -u -d "@$(($(date -u -d "$eff" +%s) - 1))" +%Y-%m-%dT%H:%M:%SZ)" --format s2s
check "one second before: still current then pending" [ "$(py 'print(" ".join(k["keyinfo"]["x5t"] for k in d["keys"]))')" = "$XA $XB" ]

# A type assigned at this node's identity.
"$CUSTODY_BIN" -q set -t Default --thumbprint "$B" >/dev/null 2>&1
meta -t Default
check "-t Default: this node's assignment" [ "$rc" -eq 0 -a "$(py 'print(" ".join(k["x5t"] for k in d["keys"]))')" = "$XB" ]

# Unassigned type, bad format, bad output, bad type.
meta -t WebServicesExternal
check "unassigned type: exit 3" [ "$rc" -eq 3 ]
check "…naming the type" grep -q "^custody: metadata: no certificate is assigned for type WebServicesExternal (identity " <<<"$err"
meta --format xml
check "unknown --format: exit 2" [ "$rc" -eq 2 ]
check "…naming the accepted formats" grep -q "unknown metadata format 'xml': use jwks or s2s" <<<"$err"
meta -o pem
check "-o pem does not apply: exit 2" [ "$rc" -eq 2 ]
meta -t 'no such type!'
check "a bad type name: exit 2" [ "$rc" -eq 2 ]
run metadata --help
check "--help exits 0" [ "$rc" -eq 0 ]
check "…and shows the synopsis" grep -qF "custody metadata [-t TYPE] [--format jwks|s2s]" <<<"$out"

done_testing
