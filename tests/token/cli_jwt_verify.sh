#!/usr/bin/env bash
# What `custody jwt verify` checks besides the signature and exp/nbf
# (issue 10, point 6c).
#
# The attacks: a token that names a far exp, signed while the certificate
# was valid (or by a key whose certificate is not valid yet), is accepted
# after the certificate expired (before it began); and a token made for
# another relying party, or by another issuer, is accepted because the
# verifier could not say which audience and issuer it expects.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token jwtv

make_p12 a jwtv.custody.test 30
"$CUSTODY_BIN" -q import --path "$T/a.p12" -t OAuthTokenIssuer -i global >/dev/null ||
	{ echo "Bail out! cannot import the test certificate"; exit 1; }
"$CUSTODY_BIN" get -t OAuthTokenIssuer -o pem >"$T/a.pem"
# The certificate's validity, as ISO 8601 instants one day outside it.
after=$(date -u -d "$(openssl x509 -in "$T/a.pem" -noout -enddate | cut -d= -f2) + 1 day" +%Y-%m-%dT%H:%M:%SZ)
before=$(date -u -d "$(openssl x509 -in "$T/a.pem" -noout -startdate | cut -d= -f2) - 1 day" +%Y-%m-%dT%H:%M:%SZ)

# A token that says it is good from 1970 to 2100.
run jwt issue --claims '{"sub":"s","aud":"partner","iss":"https://sts.contoso.example","iat":0,"nbf":0,"exp":4102444800}'
[ "$rc" -eq 0 ] || { echo "Bail out! cannot issue a token: $err"; exit 1; }
tok=$out

run jwt verify "$tok"
check "the token verifies while its certificate is valid" [ "$rc" -eq 0 ]
run jwt verify --at "$after" "$tok"
if [ "$rc" -eq 1 ] && grep -q "the certificate that signed the token, .* expired at" <<<"$err"; then
	ok "a token is refused once the certificate that signed it has expired"
else
	not_ok "a token is refused once the certificate that signed it has expired" \
		"verify at $after: exit $rc" "stderr: $err"
fi
run jwt verify --at "$before" "$tok"
if [ "$rc" -eq 1 ] && grep -q "is not valid before" <<<"$err"; then
	ok "a token is refused before the certificate that signed it is valid"
else
	not_ok "a token is refused before the certificate that signed it is valid" \
		"verify at $before: exit $rc" "stderr: $err"
fi

# Audience and issuer, when asked for.
run jwt verify --aud partner --iss https://sts.contoso.example "$tok"
check "--aud and --iss accept the token made for them" [ "$rc" -eq 0 ]
run jwt verify --aud someone-else "$tok"
if [ "$rc" -eq 1 ] && grep -q "token is for audience partner, not someone-else" <<<"$err"; then
	ok "a token for another audience is refused with --aud"
else
	not_ok "a token for another audience is refused with --aud" "exit $rc" "stderr: $err"
fi
run jwt verify --iss https://evil.example "$tok"
if [ "$rc" -eq 1 ] && grep -q "token was issued by https://sts.contoso.example, not https://evil.example" <<<"$err"; then
	ok "a token of another issuer is refused with --iss"
else
	not_ok "a token of another issuer is refused with --iss" "exit $rc" "stderr: $err"
fi
run jwt issue --claims '{"sub":"s"}'
run jwt verify --aud partner "$out"
check "a token without aud is refused with --aud" \
	[ "$rc" -eq 1 -a -n "$(grep 'token has no aud claim' <<<"$err")" ]
run jwt issue --aud partner --claims '{}'
check "--aud is for verify (issue takes aud in --claims)" [ "$rc" -eq 2 ]
done_testing
