#!/usr/bin/env bash
# The OpenSSL 3 provider "custody" driven by the openssl command, as a user
# drives it: custody:TYPE URIs give the certificate, the public key and the
# private key; pkeyutl and dgst sign with RSA PKCS#1 v1.5, RSA-PSS and
# ECDSA in the token, and the signatures verify with the certificate; the
# shipped openssl.cnf example configures it per process; a key object stays
# with the certificate it loaded across `custody set` while the next load
# gets the new one; a process that loads and then forks signs in its
# children, and threads sign at once; software keys stay the default
# provider's.  Bad input (an unknown or unassigned type, a bad query, a key
# not on the token, no PIN source, a request the key cannot do) fails with
# one error entry carrying custody's message: no crash, no prompt, no
# partial output, nothing changed.  The provider is the build tree's
# ($TOP_BUILDDIR/providers/.libs/custody.so, through OPENSSL_MODULES).
# WebServicesInternal's key is EC P-256; on a token that cannot sign with
# EC (openCryptoki 3.8.1) it is RSA-2048 there, for the same checks.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"

build=${TOP_BUILDDIR:-$(dirname "$CUSTODY_BIN")}
modules_dir=$build/providers/.libs
signer=$build/tests/token/provider_sign
if [ ! -f "$modules_dir/custody.so" ] || [ ! -x "$signer" ]; then
	echo "Bail out! not built: $modules_dir/custody.so or $signer"
	exit 1
fi
export OPENSSL_MODULES=$modules_dir
unset OPENSSL_CONF
setup_token
P=(-provider custody -provider default)

# osl ARGS... — runs openssl with both providers, leaving $out, $err, $rc.
osl() {
	out=$(openssl "$1" "${P[@]}" "${@:2}" 2>"$T/stderr" </dev/null)
	rc=$?
	err=$(cat "$T/stderr")
}
fingerprint_of() { openssl x509 -in "$1" -noout -fingerprint -sha256; }
verifies() { # PUBKEY-PEM SIGNATURE [PKEYOPT...] — the digest's signature verifies
	local pub=$1 sig=$2 o opts=()
	shift 2
	for o in "$@"; do opts+=(-pkeyopt "$o"); done
	openssl pkeyutl -verify -pubin -inkey "$pub" -in "$T/digest" -sigfile "$sig" \
		"${opts[@]}" >/dev/null 2>&1
}
dgst_verifies() { # PUBKEY-PEM SIGNATURE DIGEST [SIGOPT...] — $T/data's signature verifies
	local pub=$1 sig=$2 md=$3 o opts=()
	shift 3
	for o in "$@"; do opts+=(-sigopt "$o"); done
	openssl dgst "-$md" -verify "$pub" -signature "$sig" "${opts[@]}" "$T/data" >/dev/null 2>&1
}
# one_error — the command failed (exit 1-127: no crash) with exactly one
# error entry of the custody provider, carrying MESSAGE (a fixed string).
one_error() {
	[ "$rc" -gt 0 ] && [ "$rc" -lt 128 ] &&
		[ "$(grep -c ':error:' <<<"$err")" -eq 1 ] &&
		grep -q ':error:[0-9A-F]*:custody:' <<<"$err" &&
		grep -qF "$1" <<<"$err"
}

if token_can ec-sign; then
	WK=EC wspec=ec:prime256v1
else
	WK=RSA wspec=rsa:2048
fi
make_p12 oauth oauth.custody.test 30 rsa:2048
make_p12 oauth2 oauth2.custody.test 30 rsa:2048
make_p12 web localhost 30 "$wspec"
make_p12 gone gone.custody.test 30 rsa:2048
"$CUSTODY_BIN" -q import --path "$T/oauth.p12" -t OAuthTokenIssuer >/dev/null
"$CUSTODY_BIN" -q import --path "$T/web.p12" -t WebServicesInternal -i global >/dev/null
"$CUSTODY_BIN" get -t OAuthTokenIssuer -o pem >"$T/oauth.crt"
"$CUSTODY_BIN" get -t WebServicesInternal -o pem >"$T/web.crt"
pubkey_of "$T/oauth.crt" >"$T/oauth.pub"
pubkey_of "$T/web.crt" >"$T/web.pub"
head -c 32 /dev/urandom >"$T/digest"
head -c 20 /dev/urandom >"$T/short"
head -c 10000 /dev/urandom >"$T/data"
before=$(state)

# ---- the store: certificate, public key
osl x509 -in custody:OAuthTokenIssuer -out "$T/x.crt"
check "openssl x509 -in custody:OAuthTokenIssuer: exit 0" [ "$rc" -eq 0 ]
check "…the assigned certificate" [ "$(fingerprint_of "$T/x.crt")" = "$(fingerprint_of "$T/oauth.crt")" ]
out=$(env -u CUSTODY_PIN_SOURCE setsid -w openssl x509 "${P[@]}" -in custody:OAuthTokenIssuer \
	-noout -fingerprint -sha256 </dev/null 2>"$T/stderr")
rc=$?
check "…read from the store alone: no PIN source needed" \
	[ "$rc" -eq 0 -a "$out" = "$(fingerprint_of "$T/oauth.crt")" ]
osl x509 -in custody:WebServicesInternal@global -out "$T/xw.crt"
check "custody:WebServicesInternal@global: the global assignment's certificate" \
	[ "$(fingerprint_of "$T/xw.crt")" = "$(fingerprint_of "$T/web.crt")" ]
osl pkey -pubin -in custody:WebServicesInternal -pubout
check "openssl pkey -pubin -in custody:WebServicesInternal: the certificate's public key" \
	[ "$rc" -eq 0 -a "$out" = "$(cat "$T/web.pub")" ]
osl pkey -in custody:OAuthTokenIssuer -pubout
check "the private key's public half (keymgmt export) is the certificate's" \
	[ "$rc" -eq 0 -a "$out" = "$(cat "$T/oauth.pub")" ]
osl pkey -in custody:OAuthTokenIssuer -out "$T/leak.pem"
check "exporting the private key is refused (exit 1, nothing written)" \
	eval '[ "$rc" -ne 0 ] && ! grep -q "PRIVATE KEY" "$T/leak.pem" 2>/dev/null'

# ---- pkeyutl: a digest signed in the token
osl pkeyutl -sign -inkey custody:OAuthTokenIssuer -in "$T/digest" -out "$T/rsa.sig" \
	-pkeyopt digest:sha256
check "pkeyutl -sign, RSA PKCS#1 v1.5 (digest sha256): exit 0" [ "$rc" -eq 0 ]
check "…a 256-byte signature that verifies with the certificate" \
	eval '[ "$(stat -c %s "$T/rsa.sig")" = 256 ] && verifies "$T/oauth.pub" "$T/rsa.sig" digest:sha256'
check "…and not with another key" eval '! verifies "$T/web.pub" "$T/rsa.sig" digest:sha256'
osl pkeyutl -sign -inkey custody:OAuthTokenIssuer -in "$T/digest" -out "$T/pss.sig" \
	-pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss
check "pkeyutl -sign, RSA-PSS: exit 0" [ "$rc" -eq 0 ]
check "…verifies with a salt of the digest's length (32)" \
	verifies "$T/oauth.pub" "$T/pss.sig" digest:sha256 rsa_padding_mode:pss rsa_pss_saltlen:32
if [ "$WK" = EC ]; then
	osl pkeyutl -sign -inkey custody:WebServicesInternal -in "$T/digest" -out "$T/ec.sig"
	check "pkeyutl -sign, ECDSA (no digest named: a 32-byte input): exit 0" [ "$rc" -eq 0 ]
	check "…the signature verifies with the certificate" verifies "$T/web.pub" "$T/ec.sig"
else
	osl pkeyutl -sign -inkey custody:WebServicesInternal -in "$T/digest" -out "$T/ec.sig" \
		-pkeyopt digest:sha256
	check "pkeyutl -sign with the RSA key: exit 0" [ "$rc" -eq 0 ]
	check "…the signature verifies with the certificate" verifies "$T/web.pub" "$T/ec.sig" digest:sha256
fi

# ---- dgst: digest_sign (hashed in software, signed in the token)
osl dgst -sha256 -sign custody:OAuthTokenIssuer -out "$T/d1.sig" "$T/data"
check "dgst -sha256 -sign, RSA PKCS#1 v1.5: verifies" \
	eval '[ "$rc" -eq 0 ] && dgst_verifies "$T/oauth.pub" "$T/d1.sig" sha256'
osl dgst -sha384 -sign custody:OAuthTokenIssuer -sigopt rsa_padding_mode:pss -out "$T/d2.sig" "$T/data"
check "dgst -sha384 -sign, RSA-PSS: verifies with salt 48" \
	eval '[ "$rc" -eq 0 ] && dgst_verifies "$T/oauth.pub" "$T/d2.sig" sha384 rsa_padding_mode:pss rsa_pss_saltlen:48'
osl dgst -sha512 -sign custody:OAuthTokenIssuer -sigopt rsa_padding_mode:pss \
	-sigopt rsa_pss_saltlen:digest -out "$T/d3.sig" "$T/data"
check "dgst -sha512, RSA-PSS with rsa_pss_saltlen:digest: verifies with salt 64" \
	eval '[ "$rc" -eq 0 ] && dgst_verifies "$T/oauth.pub" "$T/d3.sig" sha512 rsa_padding_mode:pss rsa_pss_saltlen:64'
osl dgst -sha256 -sign custody:WebServicesInternal -out "$T/d4.sig" "$T/data"
check "dgst -sha256 -sign with the $WK key: verifies" \
	eval '[ "$rc" -eq 0 ] && dgst_verifies "$T/web.pub" "$T/d4.sig" sha256'

# ---- X509_sign (the signature's AlgorithmIdentifier comes from the provider)
osl req -new -x509 -key custody:OAuthTokenIssuer -subj /CN=x -days 1 -sigopt rsa_padding_mode:pss \
	-sha256 -out "$T/self.crt"
check "req -new -x509 with RSA-PSS: exit 0" [ "$rc" -eq 0 ]
check "…an RSASSA-PSS certificate whose signature verifies" \
	eval 'openssl x509 -in "$T/self.crt" -noout -text | grep -q "Signature Algorithm: rsassaPss" &&
		openssl verify -CAfile "$T/self.crt" "$T/self.crt" >/dev/null 2>&1'
osl req -new -x509 -key custody:WebServicesInternal -subj /CN=y -days 1 -out "$T/selfw.crt"
check "req -new -x509 with the $WK key: its signature verifies" \
	eval '[ "$rc" -eq 0 ] && openssl verify -CAfile "$T/selfw.crt" "$T/selfw.crt" >/dev/null 2>&1'

# ---- requests the key cannot do: an error, never a wrong signature
osl pkeyutl -sign -inkey custody:OAuthTokenIssuer -in "$T/digest" -out "$T/n1.sig"
check "RSA without a digest set: refused" one_error "no digest set"
osl pkeyutl -sign -inkey custody:OAuthTokenIssuer -in "$T/short" -out "$T/n2.sig" -pkeyopt digest:sha256
check "a 20-byte input as a SHA-256 digest: refused" one_error "not a SHA256 digest (wrong length)"
osl pkeyutl -sign -inkey custody:WebServicesInternal -in "$T/short" -out "$T/n3.sig"
if [ "$WK" = EC ]; then
	check "an ECDSA input that is no SHA-2 digest: refused" one_error "not a SHA-256, SHA-384 or SHA-512 digest"
	osl pkeyutl -sign -inkey custody:WebServicesInternal -in "$T/digest" -out "$T/n4.sig" \
		-pkeyopt rsa_padding_mode:pss
	check "PSS with the EC key: refused (exit 1-127)" [ "$rc" -gt 0 -a "$rc" -lt 128 ]
fi
osl dgst -sha256 -sign custody:OAuthTokenIssuer -sigopt rsa_padding_mode:pss \
	-sigopt rsa_pss_saltlen:max -out "$T/n5.sig" "$T/data"
check "PSS with the largest salt: refused" one_error "PSS salt length max is not supported"
osl dgst -sha256 -sign custody:OAuthTokenIssuer -sigopt rsa_padding_mode:pss \
	-sigopt rsa_pss_saltlen:20 -out "$T/n7.sig" "$T/data"
check "PSS with SHA-256 and a 20-byte salt: refused" one_error "a PSS salt of 20 bytes"
osl dgst -sha1 -sign custody:OAuthTokenIssuer -out "$T/n6.sig" "$T/data"
check "SHA-1: refused" one_error "cannot sign with digest sha1"
check "…and none of them wrote a signature" \
	eval '! [ -s "$T/n1.sig" ] && ! [ -s "$T/n2.sig" ] && ! [ -s "$T/n3.sig" ] && ! [ -s "$T/n5.sig" ] && ! [ -s "$T/n6.sig" ] && ! [ -s "$T/n7.sig" ]'

# ---- software keys stay the default provider's
osl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/soft.key"
check "beside custody, genpkey makes a software EC key" [ "$rc" -eq 0 ]
osl dgst -sha256 -sign "$T/soft.key" -out "$T/soft.sig" "$T/data"
check "…that signs (default provider), and verifies" \
	eval '[ "$rc" -eq 0 ] && openssl dgst -sha256 -verify <(openssl pkey -in "$T/soft.key" -pubout) -signature "$T/soft.sig" "$T/data" >/dev/null 2>&1'

# ---- TLS 1.2 with an ECDHE share beside a key of ours (the default provider
# keeps generating the software keys TLS needs)
start_tls_server "${P[@]}" -key custody:WebServicesInternal -cert custody:WebServicesInternal
trap 'stop_server; rm -rf "$T"' EXIT
for v in -tls1_2 -tls1_3; do
	handshake "$T/web.crt" -groups P-256 "$v"
	check "s_server with the $WK key, s_client $v with a P-256 share: verified handshake" \
		eval '[ "$rc" -eq 0 ] && grep -qx "Verification: OK" <<<"$out" && grep -q "^Server Temp Key: ECDH, prime256v1" <<<"$out"'
done
stop_server

# ---- threads, fork
"$signer" custody:OAuthTokenIssuer "$T/data" "$T/th" threads 4 2>"$T/stderr"
rc=$?
all_verify() { # PUBKEY FILE... — every signature verifies (dgst -sha256)
	local pub=$1 f
	shift
	for f in "$@"; do dgst_verifies "$pub" "$f" sha256 || return 1; done
}
check "4 threads sign at once with one key object: exit 0" [ "$rc" -eq 0 ]
check "…and their signatures verify" all_verify "$T/oauth.pub" "$T"/th.thread0 "$T"/th.thread1 "$T"/th.thread2 "$T"/th.thread3
"$signer" custody:WebServicesInternal "$T/data" "$T/fk" fork 3 2>"$T/stderr"
rc=$?
check "load, then fork 3 children that sign: exit 0" [ "$rc" -eq 0 ]
check "…the parent's and every child's signature verify" all_verify "$T/web.pub" "$T"/fk.parent "$T"/fk.child0 "$T"/fk.child1 "$T"/fk.child2

# ---- a per-process openssl.cnf: the shipped example
sed -e "s|^pin_source = .*|pin_source = $CUSTODY_PIN_SOURCE|" \
	"$TOP_SRCDIR/providers/openssl-custody-provider.cnf.example" >"$T/openssl.cnf"
(
	unset CUSTODY_PIN_SOURCE
	export OPENSSL_CONF=$T/openssl.cnf
	openssl dgst -sha256 -sign custody:OAuthTokenIssuer -out "$T/cnf.sig" "$T/data" 2>"$T/cnf.err"
)
rc=$?
check "OPENSSL_CONF=the example cnf (pin_source): dgst signs without -provider" [ "$rc" -eq 0 ]
check "…and the signature verifies" dgst_verifies "$T/oauth.pub" "$T/cnf.sig" sha256
check "signing, threads, fork and the cnf changed nothing on the token or in the store" [ "$(state)" = "$before" ]

# ---- bad input: one error entry, ours; no crash, no prompt
bad() { # URI MESSAGE DESCRIPTION
	out=$(setsid -w openssl pkeyutl "${P[@]}" -sign -inkey "$1" -in "$T/digest" -out "$T/bad.sig" \
		-pkeyopt digest:sha256 </dev/null 2>"$T/stderr")
	rc=$?
	err=$(cat "$T/stderr")
	check "$3" one_error "$2"
	check "…no signature written" [ ! -s "$T/bad.sig" ]
}
bad custody:NoSuchType "no certificate is assigned for type NoSuchType (identity node1 or global)" \
	"a type with nothing assigned: one error naming it"
bad custody:OAuthTokenIssuer@node9 "no certificate is assigned for type OAuthTokenIssuer (identity node9)" \
	"an identity with nothing assigned: one error"
bad 'custody:OAuthTokenIssuer?which=previous' "no previous certificate is assigned for type OAuthTokenIssuer" \
	"?which=previous with no previous certificate: one error"
bad 'custody:OAuthTokenIssuer?which=latest' 'bad value "latest" of which: give current, previous or pending' \
	"?which= with a bad value: one error"
bad 'custody:OAuthTokenIssuer?mode=x' 'unknown query "mode=x"' "an unknown query: one error"
bad 'custody://OAuthTokenIssuer' 'the form is custody:TYPE[@IDENTITY][?which=current|previous|pending]' \
	"custody:// (an unknown body): one error"
bad 'custody:Bad!Type' "invalid type name 'Bad!Type'" "a malformed type: one error"
bad 'custody:' "no key reference given" "an empty name: one error"
out=$(env -u CUSTODY_PIN_SOURCE setsid -w openssl pkeyutl "${P[@]}" -sign -inkey custody:OAuthTokenIssuer \
	-in "$T/digest" -out "$T/bad.sig" -pkeyopt digest:sha256 </dev/null 2>"$T/stderr")
rc=$?
err=$(cat "$T/stderr")
check "no PIN source and no terminal: one error with its hint" one_error "no PIN source configured (give --pin-source"
out=$(CUSTODY_PIN_SOURCE=prompt setsid -w openssl pkeyutl "${P[@]}" -sign -inkey custody:OAuthTokenIssuer \
	-in "$T/digest" -out "$T/bad.sig" -pkeyopt digest:sha256 </dev/null 2>"$T/stderr")
rc=$?
err=$(cat "$T/stderr")
check "PIN source prompt without a terminal: one error, no prompt" one_error "cannot prompt for the PIN: no terminal"
check "bad input changed nothing on the token or in the store" [ "$(state)" = "$before" ]

# A certificate whose key is not on this node's token.
files=$(object_files)
"$CUSTODY_BIN" -q import --path "$T/gone.p12" -t Default >/dev/null
gone_files=$(comm -13 <(printf '%s\n' "$files") <(object_files))
gone_id=$("$CUSTODY_BIN" get -t Default -o json |
	python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["current"]["key_id"])')
set_aside "$gone_files"
bad custody:Default "no private key with key id $gone_id on token" "a certificate whose key is not on the token: one error"
osl x509 -in custody:Default -noout
check "…while its certificate still loads" [ "$rc" -eq 0 ]
put_back "$gone_files"

# ---- across `custody set`: a key object keeps its certificate; the next load gets the new one
mkfifo "$T/go"
"$signer" custody:OAuthTokenIssuer "$T/data" "$T/long" pause 1 <"$T/go" >"$T/long.out" 2>"$T/long.err" &
long_pid=$!
exec 3>"$T/go"
for _ in $(seq 100); do grep -q loaded "$T/long.out" 2>/dev/null && break; sleep 0.1; done
new=$("$CUSTODY_BIN" -q import --path "$T/oauth2.p12")
run -q set -t OAuthTokenIssuer --thumbprint "$new" --force
check "custody set makes another certificate current" [ "$rc" -eq 0 ]
echo go >&3
exec 3>&-
wait "$long_pid"
rc=$?
"$CUSTODY_BIN" get -t OAuthTokenIssuer -o pem >"$T/oauth2.crt"
pubkey_of "$T/oauth2.crt" >"$T/oauth2.pub"
check "a key object loaded before the set signs after it: exit 0" [ "$rc" -eq 0 ]
check "…still with the key of the certificate it loaded (pinned)" all_verify "$T/oauth.pub" "$T/long.parent" "$T/long.after"
osl dgst -sha256 -sign custody:OAuthTokenIssuer -out "$T/new.sig" "$T/data"
check "a new load signs with the new certificate's key" \
	eval '[ "$rc" -eq 0 ] && dgst_verifies "$T/oauth2.pub" "$T/new.sig" sha256 && ! dgst_verifies "$T/oauth.pub" "$T/new.sig" sha256'
osl x509 -in 'custody:OAuthTokenIssuer?which=previous' -out "$T/prev.crt"
check "custody:OAuthTokenIssuer?which=previous is the certificate before the set" \
	eval '[ "$rc" -eq 0 ] && [ "$(fingerprint_of "$T/prev.crt")" = "$(fingerprint_of "$T/oauth.crt")" ]'
osl dgst -sha256 -sign 'custody:OAuthTokenIssuer?which=previous' -out "$T/prev.sig" "$T/data"
check "…and its key signs" eval '[ "$rc" -eq 0 ] && dgst_verifies "$T/oauth.pub" "$T/prev.sig" sha256'

done_testing
