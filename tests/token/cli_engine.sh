#!/usr/bin/env bash
# The OpenSSL engine "custody" driven by the openssl command, as a user
# drives it: pkeyutl signs with a certificate type's key, req makes a
# self-signed certificate with it, s_server serves TLS 1.3 and 1.2 with it
# to s_client on loopback; a per-process openssl.cnf (the shipped example)
# configures it; after `custody set` the next process signs with the new
# key; without a PIN source (or a terminal to prompt on) it fails with our
# error, never a crash.  The engine is the build tree's
# ($TOP_BUILDDIR/engines/.libs/custody.so, through OPENSSL_ENGINES).
# WebServicesInternal's key is EC P-256; on a token that cannot sign with
# EC (openCryptoki 3.8.1) the import of an EC key is refused up front in
# one line, nothing written, and that key is RSA-2048 there, for the same
# checks (a second key, a CSR, TLS 1.3 and 1.2 through the engine).
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"

engines_dir=${TOP_BUILDDIR:-$(dirname "$CUSTODY_BIN")}/engines/.libs
if [ ! -f "$engines_dir/custody.so" ]; then
	echo "Bail out! the engine is not built: $engines_dir/custody.so"
	exit 1
fi
export OPENSSL_ENGINES=$engines_dir
unset OPENSSL_CONF
setup_token

# start_server KEY CERT — s_server with the engine's KEY (lib.sh's
# start_tls_server: on $port, in the background).
start_server() {
	start_tls_server -engine custody -keyform engine -key "$1" -cert "$2"
}

# refused WHAT MESSAGE ARGS... — what the token lacks is refused up front:
# exit 1, MESSAGE the one line on stderr, nothing on stdout, the token and
# the store as they were.
refused() { refused_up_front "$1" "$2" run "${@:3}"; }

# WebServicesInternal's key: EC where the token signs with EC, else RSA
# (WK; the signature type of TLS 1.3 and the TLS 1.2 suites that go with it).
# shellcheck disable=SC2034  # wsuite is read by the eval'd TLS 1.2 check
if token_can ec-sign; then
	WK=EC wsig=ECDSA wsuite=ECDHE-ECDSA- wsuiten=an\ ECDSA wspec=ec:prime256v1
else
	WK=RSA wsig=RSA-PSS wsuite=ECDHE-RSA- wsuiten=an\ RSA wspec=rsa:2048
fi
make_p12 oauth oauth.custody.test 30 rsa:2048
make_p12 oauth2 oauth2.custody.test 30 rsa:2048
make_p12 web localhost 30 "$wspec"
"$CUSTODY_BIN" -q import --path "$T/oauth.p12" -t OAuthTokenIssuer >/dev/null
if ! token_can ec-sign; then
	make_p12 webec localhost 30 ec:prime256v1
	refused "an EC P-256 key on a token that cannot sign with EC" \
		"custody: import: token test cannot sign with EC-P256 keys: it has no CKM_ECDSA for signing" \
		import --path "$T/webec.p12" -t WebServicesInternal -i global
fi
"$CUSTODY_BIN" -q import --path "$T/web.p12" -t WebServicesInternal -i global >/dev/null
"$CUSTODY_BIN" get -t OAuthTokenIssuer -o pem >"$T/oauth.crt"
"$CUSTODY_BIN" get -t WebServicesInternal -o pem >"$T/web.crt"
pubkey_of "$T/oauth.crt" >"$T/oauth.pub"
pubkey_of "$T/web.crt" >"$T/web.pub"
head -c 32 /dev/urandom >"$T/digest"
before=$(state)

# ---- pkeyutl
osl pkeyutl -engine custody -keyform engine -inkey OAuthTokenIssuer -sign \
	-in "$T/digest" -out "$T/rsa.sig"
check "pkeyutl signs with OAuthTokenIssuer's key: exit 0" [ "$rc" -eq 0 ]
check "…a 256-byte RSA-2048 signature" [ "$(stat -c %s "$T/rsa.sig" 2>/dev/null)" = 256 ]
check "…that verifies with the certificate's public key" verifies "$T/oauth.pub" "$T/rsa.sig"
check "…and not with another key" eval '! verifies "$T/web.pub" "$T/rsa.sig"'
osl pkeyutl -engine custody -keyform engine -inkey WebServicesInternal@global -sign \
	-in "$T/digest" -out "$T/ec.sig"
check "pkeyutl signs with WebServicesInternal@global's $WK key: exit 0" [ "$rc" -eq 0 ]
if [ "$WK" = EC ]; then
	check "…and the ECDSA signature verifies with its certificate" verifies "$T/web.pub" "$T/ec.sig"
else
	check "…and the RSA signature verifies with its certificate" verifies "$T/web.pub" "$T/ec.sig"
	check "…and not with OAuthTokenIssuer's key" eval '! verifies "$T/oauth.pub" "$T/ec.sig"'
fi
osl pkeyutl -engine custody -keyform engine -inkey WebServicesInternal -pubin -keyform engine \
	-verify -in "$T/digest" -sigfile "$T/ec.sig"
check "the engine's public key (ENGINE_load_public_key) verifies it too" \
	[ "$rc" -eq 0 -a "$out" = "Signature Verified Successfully" ]

# ---- req -new -x509
osl req -engine custody -keyform engine -key OAuthTokenIssuer -new -x509 -subj /CN=x \
	-days 1 -out "$T/self.crt"
check "req -new -x509 with the engine's key: exit 0" [ "$rc" -eq 0 ]
check "…its public key is the token certificate's" [ "$(pubkey_of "$T/self.crt")" = "$(cat "$T/oauth.pub")" ]
check "…and its signature verifies" self_signed_verifies "$T/self.crt"
osl req -engine custody -keyform engine -key WebServicesInternal -new -subj /CN=y -out "$T/y.csr"
check "req -new (a CSR) with the $WK key: exit 0" [ "$rc" -eq 0 ]
check "…and the CSR's signature verifies" csr_verifies "$T/y.csr"

# ---- TLS on loopback
if start_server WebServicesInternal "$T/web.crt"; then
	ok "s_server starts with the engine's $WK key (-keyform engine)"
	handshake "$T/web.crt"
	check "TLS 1.3 handshake with s_client: exit 0" [ "$rc" -eq 0 ]
	check "…TLSv1.3, $wsig, the certificate verified" eval \
		'grep -qx "Protocol version: TLSv1.3" <<<"$out" && grep -qx "Signature type: $wsig" <<<"$out" && grep -qx "Verification: OK" <<<"$out"'
	handshake "$T/web.crt" -tls1_2
	check "TLS 1.2 handshake with s_client -tls1_2: exit 0" [ "$rc" -eq 0 ]
	check "…TLSv1.2 with $wsuiten suite, the certificate verified" eval \
		'grep -qx "Protocol version: TLSv1.2" <<<"$out" && grep -q "^Ciphersuite: $wsuite" <<<"$out" && grep -qx "Verification: OK" <<<"$out"'
	# While the server holds a key it holds the token (and its lock).
	printf '[token]\nlock-timeout = 1\n' >"$T/short-lock.conf"
	run -c "$T/short-lock.conf" list
	check "…meanwhile other custody commands find the token busy" \
		eval '[ "$rc" -ne 0 ] && grep -q "token is busy" <<<"$err"'
	handshake "$T/oauth.crt"
	check "a client that trusts another certificate refuses the server" [ "$rc" -ne 0 ]
else
	not_ok "s_server starts with the engine's $WK key (-keyform engine)" "$(cat "$T/server.log")"
fi
stop_server
if start_server OAuthTokenIssuer "$T/oauth.crt"; then
	handshake "$T/oauth.crt"
	check "TLS 1.3 with the RSA key (RSA-PSS in the token): exit 0" [ "$rc" -eq 0 ]
	check "…TLSv1.3, RSA-PSS, the certificate verified" eval \
		'grep -qx "Protocol version: TLSv1.3" <<<"$out" && grep -qx "Signature type: RSA-PSS" <<<"$out" && grep -qx "Verification: OK" <<<"$out"'
else
	not_ok "s_server starts with the engine's RSA key" "$(cat "$T/server.log")"
fi
stop_server

# ---- a per-process openssl.cnf: the shipped example
sed -e "s|^dynamic_path = .*|dynamic_path = $engines_dir/custody.so|" \
	-e "s|^PIN_SOURCE = .*|PIN_SOURCE = $CUSTODY_PIN_SOURCE|" \
	"$TOP_SRCDIR/engines/openssl-custody.cnf.example" >"$T/openssl.cnf"
(
	unset CUSTODY_PIN_SOURCE OPENSSL_ENGINES
	export OPENSSL_CONF=$T/openssl.cnf
	openssl pkeyutl -engine custody -keyform engine -inkey OAuthTokenIssuer -sign \
		-in "$T/digest" -out "$T/cnf.sig" 2>"$T/cnf.err"
)
rc=$?
check "OPENSSL_CONF=the example cnf (PIN_SOURCE, dynamic_path): pkeyutl signs" [ "$rc" -eq 0 ]
check "…and the signature verifies" verifies "$T/oauth.pub" "$T/cnf.sig"
osl engine -vvv custody
lists_commands() {
	local c
	for c in CONFIG MODULE TOKEN PIN_SOURCE STORE NODE; do
		grep -q "^ *$c: " <<<"$out" || return 1
	done
}
check "openssl engine lists the control commands" lists_commands
check "signing, TLS and the cnf changed nothing on the token or in the store" [ "$(state)" = "$before" ]

# ---- after `custody set`, a fresh load uses the new key
new=$("$CUSTODY_BIN" -q import --path "$T/oauth2.p12")
old_pub=$T/oauth.pub
run -q set -t OAuthTokenIssuer --thumbprint "$new" --force
check "custody set makes another certificate current" [ "$rc" -eq 0 ]
"$CUSTODY_BIN" get -t OAuthTokenIssuer -o pem >"$T/oauth2.crt"
pubkey_of "$T/oauth2.crt" >"$T/oauth2.pub"
osl pkeyutl -engine custody -keyform engine -inkey OAuthTokenIssuer -sign \
	-in "$T/digest" -out "$T/rsa2.sig"
check "a fresh pkeyutl signs after the change: exit 0" [ "$rc" -eq 0 ]
check "…with the new key: verifies with the new certificate" verifies "$T/oauth2.pub" "$T/rsa2.sig"
check "…and not with the old one" eval '! verifies "$old_pub" "$T/rsa2.sig"'
before=$(state)

# ---- errors: ours, never a crash
osl pkeyutl -engine custody -keyform engine -inkey NoSuchType -sign -in "$T/digest" -out "$T/x.sig"
check "an unknown type: openssl fails (exit 1-127, no crash)" [ "$rc" -gt 0 -a "$rc" -lt 128 ]
check "…with our error naming it" grep -q "cannot load the private key of NoSuchType: no certificate is assigned for type NoSuchType (identity node1 or global)" <<<"$err"
out=$(env -u CUSTODY_PIN_SOURCE setsid -w openssl pkeyutl -engine custody -keyform engine \
	-inkey OAuthTokenIssuer -sign -in "$T/digest" -out "$T/x.sig" </dev/null 2>&1)
rc=$?
check "no PIN source and no terminal: openssl fails (exit 1-127, no crash)" [ "$rc" -gt 0 -a "$rc" -lt 128 ]
check "…with our error and its hint" grep -q "cannot load the private key of OAuthTokenIssuer: no PIN source configured (set CUSTODY_PIN_SOURCE=" <<<"$out"
out=$(CUSTODY_PIN_SOURCE=prompt setsid -w openssl pkeyutl -engine custody -keyform engine \
	-inkey OAuthTokenIssuer -sign -in "$T/digest" -out "$T/x.sig" </dev/null 2>&1)
rc=$?
check "PIN source prompt without a terminal: openssl fails (exit 1-127, no crash)" [ "$rc" -gt 0 -a "$rc" -lt 128 ]
check "…saying there is no terminal" grep -q "cannot load the private key of OAuthTokenIssuer: cannot prompt for the PIN: no terminal" <<<"$out"
check "…and no signature was written" [ ! -s "$T/x.sig" ]
check "the engine changed nothing on the token or in the store" [ "$(state)" = "$before" ]
run list
check "…and left the token free for custody: list exits 0" [ "$rc" -eq 0 ]

done_testing
