#!/usr/bin/env bash
# custody jwt issue / verify: RS256, PS256 and ES256 tokens signed on the
# token, checked independently with openssl where it can, accepted across a
# roll, and every bad token refused with its reason.  On a token that
# cannot sign with EC (openCryptoki 3.8.1) the EC key's import is refused
# up front instead of ES256 being checked, and the other type whose token
# OAuthTokenIssuer must refuse has an RSA key.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token
declare_types JwtEc JwtRsa

b64url_decode() { # stdin → bytes
	local s
	s=$(tr -- '-_' '+/')
	while [ $(( ${#s} % 4 )) -ne 0 ]; do s="$s="; done
	printf '%s' "$s" | openssl base64 -d -A
}
b64url() { openssl base64 -A | tr -- '+/' '-_' | tr -d '='; }
x5t_of() { # PEM on stdin → base64url SHA-1 of the DER
	openssl x509 -outform DER | openssl dgst -sha1 -binary | b64url
}
# refused WHAT MESSAGE ARGS... — what the token lacks is refused up front:
# exit 1, MESSAGE the one line on stderr, nothing on stdout, the token and
# the store as they were.
refused() { refused_up_front "$1" "$2" run "${@:3}"; }

make_p12 a a.custody.test 365
make_p12 b b.custody.test 365
make_p12 ec ec.custody.test 365 ec:P-256
A=$(thumbprint_of_p12 a); B=$(thumbprint_of_p12 b)
# OTHER: a type whose tokens OAuthTokenIssuer must refuse (JwtEc, or
# JwtRsa with a third RSA key on a token without EC).
if token_can ec-sign; then
	OTHER=JwtEc other=ec
else
	make_p12 rsa rsa.custody.test 365
	OTHER=JwtRsa other=rsa
fi
for n in a b "$other"; do "$CUSTODY_BIN" -q import --path "$T/$n.p12" >/dev/null; done
"$CUSTODY_BIN" -q set -t OAuthTokenIssuer --thumbprint "$A"
"$CUSTODY_BIN" -q set -t "$OTHER" -i global --thumbprint "$(thumbprint_of_p12 "$other")"
"$CUSTODY_BIN" get -t OAuthTokenIssuer -o pem >"$T/a.pem"

# RS256, checked with openssl alone.
run jwt issue -t OAuthTokenIssuer --claims '{"iss":"custody","aud":"partner"}' --lifetime 600
check "jwt issue exits 0 and prints one compact token" [ "$rc" -eq 0 -a "$(tr -cd . <<<"$out" | wc -c)" -eq 2 ]
tok=$out
header=$(cut -d. -f1 <<<"$tok" | b64url_decode)
check "header: alg RS256, typ JWT, x5t = base64url SHA-1 of the certificate" \
	python3 -c "import json,sys; h=json.loads(sys.argv[1]); assert h['alg']=='RS256' and h['typ']=='JWT' and h['x5t']==sys.argv[2] and h['kid']==sys.argv[2]" \
	"$header" "$(x5t_of <"$T/a.pem")"
claims=$(cut -d. -f2 <<<"$tok" | b64url_decode)
check "claims keep iss and aud and gain iat, nbf and exp = iat + 600" \
	python3 -c "import json,sys; c=json.loads(sys.argv[1]); assert c['iss']=='custody' and c['aud']=='partner' and c['exp']-c['iat']==600 and c['nbf']==c['iat']" "$claims"
printf '%s' "${tok%.*}" >"$T/input"
cut -d. -f3 <<<"$tok" | b64url_decode >"$T/sig"
openssl x509 -in "$T/a.pem" -pubkey -noout >"$T/a.pub"
check "openssl verifies the RS256 signature with the certificate's key" \
	openssl dgst -sha256 -verify "$T/a.pub" -signature "$T/sig" "$T/input"
run jwt verify "$tok"
check "jwt verify accepts it and prints the claims" grep -q '^0:.*"aud": "partner"' <<<"$rc:$(tr -d '\n' <<<"$out")"
run jwt verify -o json "$tok"
check "jwt verify -o json prints the claims as one JSON line" \
	[ "$rc" -eq 0 -a "$(jq -c '[.iss, .aud]' <<<"$out")" = '["custody","partner"]' -a "$(wc -l <<<"$out")" -eq 1 ]

# PS256, checked with openssl (PSS, salt = digest length).
run jwt issue --alg PS256 --claims '{"sub":"pss"}'
printf '%s' "${out%.*}" >"$T/input"
cut -d. -f3 <<<"$out" | b64url_decode >"$T/sig"
check "openssl verifies the PS256 signature" \
	openssl dgst -sha256 -verify "$T/a.pub" -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
	-signature "$T/sig" "$T/input"
run jwt verify - <<<"$out"
check "jwt verify reads the token from standard input" [ "$rc" -eq 0 ]

# ES256 (raw r||s), with an EC P-256 key; a token that cannot sign with
# EC refuses the key.
if token_can ec-sign; then
	run jwt issue -t JwtEc --claims '{"sub":"ec"}'
	check "ES256 for an EC P-256 key" python3 -c "import json,sys; assert json.loads(sys.argv[1])['alg']=='ES256'" \
		"$(cut -d. -f1 <<<"$out" | b64url_decode)"
	check "the ES256 signature is 64 bytes (r || s)" [ "$(cut -d. -f3 <<<"$out" | b64url_decode | wc -c)" -eq 64 ]
	run jwt verify -t JwtEc "$out"
	check "jwt verify accepts the ES256 token" [ "$rc" -eq 0 ]
else
	refused "an EC P-256 key for ES256 on a token that cannot sign with EC" \
		"custody: import: token test cannot sign with EC-P256 keys: it has no CKM_ECDSA for signing" \
		import --path "$T/ec.p12" -t JwtEc -i global
fi

# Across a roll: a token of the old key stays valid while it is previous.
eff=$(date -u -d '+2 days' +%Y-%m-%dT%H:%M:%SZ)
after=$(date -u -d '+2 days +10 minutes' +%Y-%m-%dT%H:%M:%SZ)
"$CUSTODY_BIN" -q set -t OAuthTokenIssuer --thumbprint "$B" --roll --effective-date "$eff" 2>/dev/null
run jwt issue --claims '{"sub":"old"}' --lifetime 259200
old=$out
run jwt verify --at "$after" "$old"
check "after the roll a token of the previous certificate verifies" grep -q "^0:.*signed by the previous" <<<"$rc:$err"
run jwt issue --at "$after" --claims '{"sub":"new"}'
new=$out
check "after the roll tokens are signed by the new certificate" \
	python3 -c "import json,sys; assert json.loads(sys.argv[1])['x5t']==sys.argv[2]" \
	"$(cut -d. -f1 <<<"$new" | b64url_decode)" "$("$CUSTODY_BIN" get -t OAuthTokenIssuer --at "$after" -o pem | x5t_of)"
run jwt verify "$new"
check "before the roll the pending certificate's token is refused (unknown x5t)" grep -q "^1:.*x5t" <<<"$rc:$err"

# Bad tokens: exit 1 with the reason.
expect_bad() { # DESCRIPTION PATTERN TOKEN [ARGS...]
	local d=$1 p=$2 t=$3
	shift 3
	run jwt verify "$@" "$t"
	check "$d" grep -Eiq "^1:custody: jwt: .*($p)" <<<"$rc:$err"
}
sig=${tok##*.}
flipped=${tok%.*}.$( [ "${sig:0:1}" = A ] && echo B || echo A )${sig:1}
expect_bad "a wrong signature" "signature" "$flipped"
expect_bad "a malformed token" "malformed|three" "not-a-token"
expect_bad "bad base64" "base64" "${tok%%.*}.!!!.${sig}"
# A day later to the second (a bare date is 00:00 UTC: within the token's
# hour after 23:00).
expect_bad "an expired token" "expired" "$tok" --at "$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)"
run jwt issue --claims "{\"nbf\": $(( $(date +%s) + 7200 ))}"
expect_bad "a token not yet valid" "not yet valid" "$out"
none_header=$(printf '{"alg":"none","typ":"JWT","x5t":"%s"}' "$(x5t_of <"$T/a.pem")" | b64url)
expect_bad "alg none" "none" "$none_header.${tok#*.}"
es_header=$(printf '{"alg":"ES256","typ":"JWT","x5t":"%s"}' "$(x5t_of <"$T/a.pem")" | b64url)
expect_bad "an algorithm that does not match the key" "does not match" "$es_header.${tok#*.}"
run jwt issue -t "$OTHER" --claims '{"sub":"other"}'
expect_bad "a certificate that is not OAuthTokenIssuer's (unknown x5t)" "x5t" "$out"

run jwt issue --claims '[1,2]'
check "claims that are not a JSON object: exit 2" grep -q "^2:.*not a JSON object" <<<"$rc:$err"
run jwt issue --claims 'not json'
check "claims that are not JSON: exit 2" [ "$rc" -eq 2 ]
run jwt issue -t WebServicesExternal --claims '{}'
check "nothing assigned: exit 3" [ "$rc" -eq 3 ]

done_testing
