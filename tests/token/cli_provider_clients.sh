#!/usr/bin/env bash
# Real OpenSSL clients sign through the provider "custody", with keys named
# custody:TYPE: `openssl pkeyutl` and `dgst`, `req -new -x509` (the
# self-signed certificate verifies), `cms -sign` then `cms -verify` (RSA
# PKCS#1 v1.5, RSA-PSS, ECDSA), and TLS 1.3 and 1.2 on loopback from
# `openssl s_server -key custody:T -cert custody:T` (key and certificate
# both loaded through the provider) to curl --cacert (the server's public
# key pinned) and s_client -verify_return_error; once with `-provider
# custody -provider default` (OPENSSL_MODULES: the build tree's
# providers/.libs), once through the shipped per-process openssl.cnf
# example (OPENSSL_CONF, no -provider option, the PIN source from the
# file).  A program that loads a key and forks keeps signing in its
# children (provider_fork).  After `custody set` the next load signs with
# the new key; a server that loaded its key before keeps its certificate
# and its key together (the key stays pinned to the certificate it
# resolved).  WebServicesInternal's key is EC P-256, RSA-2048 on a token
# that cannot sign with EC (openCryptoki 3.8.1).
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"

builddir=${TOP_BUILDDIR:-$(dirname "$CUSTODY_BIN")}
prov_dir=$builddir/providers/.libs
fork_prog=$builddir/tests/token/provider_fork
if [ ! -f "$prov_dir/custody.so" ]; then
	echo "Bail out! the provider is not built: $prov_dir/custody.so"
	exit 1
fi
if [ ! -x "$fork_prog" ]; then
	echo "Bail out! tests/token/provider_fork is not built (make check builds it)"
	exit 1
fi
cnf_example=$TOP_SRCDIR/providers/openssl-custody-provider.cnf.example
unset OPENSSL_CONF OPENSSL_ENGINES
export OPENSSL_MODULES=$prov_dir
setup_token

# The way the openssl commands get the provider: PRE (environment) and P
# (options) of `po`; use_options / use_cnf switch between the two ways.
use_options() {
	how="-provider custody -provider default"
	PRE=(env "OPENSSL_MODULES=$prov_dir")
	P=(-provider custody -provider default)
}
use_cnf() {
	how="OPENSSL_CONF=the example cnf"
	PRE=(env -u CUSTODY_PIN_SOURCE -u OPENSSL_MODULES "OPENSSL_CONF=$T/openssl.cnf")
	P=()
}
# po COMMAND ARGS... — openssl COMMAND with the provider, leaving $out,
# $err and $rc.
po() {
	local cmd=$1
	shift
	out=$("${PRE[@]}" openssl "$cmd" "${P[@]}" "$@" 2>"$T/stderr")
	rc=$?
	err=$(cat "$T/stderr")
}
use_options

# WebServicesInternal's key: EC where the token signs with EC, else RSA
# (the signature type of TLS 1.3 that goes with it).
if token_can ec-sign; then
	WK=EC wsig=ECDSA wspec=ec:prime256v1
else
	WK=RSA wsig=RSA-PSS wspec=rsa:2048
fi
make_p12 oauth oauth.custody.test 30 rsa:2048
make_p12 oauth2 oauth2.custody.test 30 rsa:2048
make_p12 web localhost 30 "$wspec"
make_p12 web2 localhost 30 "$wspec"
"$CUSTODY_BIN" -q import --path "$T/oauth.p12" -t OAuthTokenIssuer >/dev/null
"$CUSTODY_BIN" -q import --path "$T/web.p12" -t WebServicesInternal -i global >/dev/null
"$CUSTODY_BIN" get -t OAuthTokenIssuer -o pem >"$T/oauth.crt"
"$CUSTODY_BIN" get -t WebServicesInternal -o pem >"$T/web.crt"
pubkey_of "$T/oauth.crt" >"$T/oauth.pub"
pubkey_of "$T/web.crt" >"$T/web.pub"
head -c 32 /dev/urandom >"$T/digest"
printf 'a message for CMS, signed in the token\n' >"$T/msg"
before=$(state)

# ---- the store gives the certificate; pkeyutl and dgst sign
fingerprint() { openssl x509 -noout -fingerprint -sha256 "$@"; }
po x509 -in custody:OAuthTokenIssuer -noout -fingerprint -sha256
check "x509 -in custody:OAuthTokenIssuer: the assigned certificate" \
	[ "$rc" -eq 0 -a "$out" = "$(fingerprint -in "$T/oauth.crt")" ]
po pkeyutl -sign -inkey custody:OAuthTokenIssuer -pkeyopt digest:sha256 \
	-in "$T/digest" -out "$T/rsa.sig"
check "pkeyutl -sign -inkey custody:OAuthTokenIssuer: exit 0" [ "$rc" -eq 0 ]
check "…a signature that verifies with the certificate's public key" \
	verifies "$T/oauth.pub" "$T/rsa.sig" -pkeyopt digest:sha256
check "…and not with another key" eval '! verifies "$T/web.pub" "$T/rsa.sig" -pkeyopt digest:sha256'
for t in OAuthTokenIssuer WebServicesInternal; do
	pub=$T/oauth.pub
	[ "$t" = WebServicesInternal ] && pub=$T/web.pub
	po dgst -sha256 -sign "custody:$t" -out "$T/dgst.sig" "$T/msg"
	check "dgst -sha256 -sign custody:$t: exit 0" [ "$rc" -eq 0 ]
	check "…and openssl dgst -verify accepts it with the certificate's key" \
		eval 'openssl dgst -sha256 -verify "$pub" -signature "$T/dgst.sig" "$T/msg" >/dev/null 2>&1'
done

# ---- the clients, once per way of loading the provider
# cms_round NAME TYPE CERT [CMS-SIGN-OPTIONS...] — cms -sign with the
# provider's key, then cms -verify (no provider) against the certificate.
cms_round() {
	local name=$1 type=$2 cert=$3
	shift 3
	po cms -sign -signer "$cert" -inkey "custody:$type" -in "$T/msg" -binary -nodetach \
		-outform DER -out "$T/$name.cms" "$@"
	check "[$how] cms -sign $name with custody:$type: exit 0" [ "$rc" -eq 0 ]
	rm -f "$T/$name.content"
	openssl cms -verify -inform DER -in "$T/$name.cms" -CAfile "$cert" \
		-out "$T/$name.content" 2>"$T/$name.verify" >/dev/null
	check "…cms -verify succeeds against the certificate, the content intact" \
		cmp -s "$T/msg" "$T/$name.content"
}
pin_of() { # CERT — curl's --pinnedpubkey value for the certificate's key
	pubkey_of "$1" | openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64
}
# fetch HOST CERT [CURL-OPTIONS...] — GET https://HOST/ from the server
# (HOST resolved to 127.0.0.1) with curl, trusting CERT and pinning its
# public key; $out holds s_server's -www page.
fetch() {
	local host=$1 cert=$2
	shift 2
	out=$(timeout 10 curl -sS --resolve "$host:$port:127.0.0.1" --cacert "$cert" \
		--pinnedpubkey "sha256//$(pin_of "$cert")" "$@" "https://$host:$port/" 2>&1)
	rc=$?
}
serve() { # TYPE — s_server with TYPE's key and certificate, both custody:TYPE
	start_tls_server "${PRE[@]}" -- "${P[@]}" -key "custody:$1" -cert "custody:$1"
}
# tls_round TYPE CERT HOST SIG — TLS 1.3 and 1.2 with TYPE's key and
# certificate (CERT, made out to HOST); SIG is the TLS 1.3 signature type
# s_client reports.
tls_round() {
	local type=$1 cert=$2 host=$3 sig=$4
	if ! serve "$type"; then
		not_ok "[$how] s_server -key custody:$type -cert custody:$type starts" "$(cat "$T/server.log")"
		stop_server
		return
	fi
	ok "[$how] s_server -key custody:$type -cert custody:$type starts"
	if command -v curl >/dev/null; then
		fetch "$host" "$cert" --tlsv1.3
		check "…curl --cacert, its key pinned: TLS 1.3 completes" \
			eval '[ "$rc" -eq 0 ] && grep -q "Protocol  : TLSv1.3" <<<"$out"'
		fetch "$host" "$cert" --tlsv1.2 --tls-max 1.2
		check "…curl --tls-max 1.2: TLS 1.2 completes" \
			eval '[ "$rc" -eq 0 ] && grep -q "Protocol  : TLSv1.2" <<<"$out"'
	fi
	handshake "$cert"
	check "…s_client -verify_return_error: TLSv1.3, $sig, the certificate verified" eval \
		'[ "$rc" -eq 0 ] && grep -qx "Protocol version: TLSv1.3" <<<"$out" &&
		grep -qx "Signature type: $sig" <<<"$out" && grep -qx "Verification: OK" <<<"$out"'
	if [ "$sig" = RSA-PSS ]; then
		handshake "$cert" -tls1_2 -sigalgs RSA+SHA256
		check "…TLS 1.2 with a PKCS#1 v1.5 signature (-sigalgs RSA+SHA256)" eval \
			'[ "$rc" -eq 0 ] && grep -qx "Protocol version: TLSv1.2" <<<"$out" &&
			grep -qx "Signature type: RSA" <<<"$out"'
	else
		handshake "$cert" -tls1_2
		check "…TLS 1.2 with an ECDSA suite" eval \
			'[ "$rc" -eq 0 ] && grep -q "^Ciphersuite: ECDHE-ECDSA-" <<<"$out"'
	fi
	handshake "$T/other.crt"
	check "…a client that trusts another certificate refuses the server" [ "$rc" -ne 0 ]
	stop_server
}
clients() {
	po req -new -x509 -key custody:OAuthTokenIssuer -subj /CN=self -days 1 -out "$T/self.crt"
	check "[$how] req -new -x509 -key custody:OAuthTokenIssuer: exit 0" [ "$rc" -eq 0 ]
	check "…its public key is the token certificate's" \
		[ "$(pubkey_of "$T/self.crt" 2>&1)" = "$(cat "$T/oauth.pub")" ]
	check "…and the self-signed certificate verifies" self_signed_verifies "$T/self.crt"
	po req -new -key custody:WebServicesInternal -subj /CN=csr -out "$T/web.csr"
	check "[$how] req -new (a CSR) with the $WK key: its signature verifies" \
		eval '[ "$rc" -eq 0 ] && csr_verifies "$T/web.csr"'
	cms_round pkcs1 OAuthTokenIssuer "$T/oauth.crt"
	if token_can pss; then
		cms_round pss OAuthTokenIssuer "$T/oauth.crt" -keyopt rsa_padding_mode:pss
		check "…an RSA-PSS SignerInfo" eval \
			'openssl cms -cmsout -print -inform DER -in "$T/pss.cms" 2>/dev/null | grep -q "rsassaPss"'
	fi
	cms_round web WebServicesInternal "$T/web.crt"
	tls_round WebServicesInternal "$T/web.crt" localhost "$wsig"
	tls_round OAuthTokenIssuer "$T/oauth.crt" oauth.custody.test RSA-PSS
}
openssl req -x509 -newkey rsa:2048 -noenc -keyout /dev/null -out "$T/other.crt" \
	-subj "/CN=localhost" -days 1 2>/dev/null
use_options
clients

# The shipped per-process configuration: the module's path and the PIN
# source set in a copy of it, the rest from the CUSTODY_* environment.
if [ ! -s "$cnf_example" ]; then
	not_ok "the provider's openssl.cnf example is $cnf_example"
else
	sed -E -e "s|^#? *module *=.*|module = $prov_dir/custody.so|" \
		-e "s|^#? *pin_source *=.*|pin_source = $CUSTODY_PIN_SOURCE|" \
		"$cnf_example" >"$T/openssl.cnf"
	check "the copy of the example names the build's provider and the test's PIN source" \
		eval 'grep -qx "module = $prov_dir/custody.so" "$T/openssl.cnf" &&
		grep -qx "pin_source = $CUSTODY_PIN_SOURCE" "$T/openssl.cnf"'
	use_cnf
	clients
	use_options
fi
check "the clients changed nothing on the token or in the store" [ "$(state)" = "$before" ]

# ---- fork after load
out=$("$fork_prog" custody:WebServicesInternal "$T/web.crt" 3 2>"$T/fork.err")
rc=$?
check "provider_fork: a key loaded before fork signs in 3 children and in the parent (exit 0)" \
	[ "$rc" -eq 0 ] || printf '# %s\n' "$out" "$(cat "$T/fork.err")"
check "…every child signed twice and its signatures verified" \
	[ "$(grep -c '^child [123]: signature [12] verifies' <<<"$out")" -eq 6 ]
check "…and the parent signed before and after" \
	eval 'grep -q "^parent: signature 1 verifies" <<<"$out" && grep -q "^parent: signature 2 verifies" <<<"$out"'
out=$("$fork_prog" custody:OAuthTokenIssuer "$T/oauth.crt" 3 2>"$T/fork.err")
check "provider_fork with the RSA key: exit 0" [ "$?" -eq 0 ] || printf '# %s\n' "$out" "$(cat "$T/fork.err")"

# ---- a roll under a running server: the key stays with its certificate
if serve WebServicesInternal; then
	new=$("$CUSTODY_BIN" -q import --path "$T/web2.p12")
	run -q set -t WebServicesInternal -i global --thumbprint "$new" --force
	check "custody set makes another WebServicesInternal certificate current while s_server runs" [ "$rc" -eq 0 ]
	"$CUSTODY_BIN" get -t WebServicesInternal -o pem >"$T/web2.crt"
	handshake "$T/web.crt"
	check "…the running server still presents the certificate it loaded, and signs with its key" \
		eval '[ "$rc" -eq 0 ] && grep -qx "Verification: OK" <<<"$out"'
	stop_server
	if serve WebServicesInternal; then
		handshake "$T/web2.crt"
		check "a server started after the set presents the new certificate and signs with its key" \
			eval '[ "$rc" -eq 0 ] && grep -qx "Verification: OK" <<<"$out"'
		handshake "$T/web.crt"
		check "…and a client that trusts only the old certificate refuses it" [ "$rc" -ne 0 ]
	else
		not_ok "s_server starts after the set" "$(cat "$T/server.log")"
	fi
	stop_server
else
	not_ok "s_server starts before the set" "$(cat "$T/server.log")"
fi

# ---- after `custody set`, the next load signs with the new key
new=$("$CUSTODY_BIN" -q import --path "$T/oauth2.p12")
run -q set -t OAuthTokenIssuer --thumbprint "$new" --force
check "custody set makes another OAuthTokenIssuer certificate current" [ "$rc" -eq 0 ]
"$CUSTODY_BIN" get -t OAuthTokenIssuer -o pem >"$T/oauth2.crt"
pubkey_of "$T/oauth2.crt" >"$T/oauth2.pub"
po pkeyutl -sign -inkey custody:OAuthTokenIssuer -pkeyopt digest:sha256 \
	-in "$T/digest" -out "$T/rsa2.sig"
check "the next pkeyutl signs: exit 0" [ "$rc" -eq 0 ]
check "…with the new key: verifies with the new certificate" \
	verifies "$T/oauth2.pub" "$T/rsa2.sig" -pkeyopt digest:sha256
check "…and not with the old one" eval '! verifies "$T/oauth.pub" "$T/rsa2.sig" -pkeyopt digest:sha256'
po req -new -x509 -key custody:OAuthTokenIssuer -subj /CN=self2 -days 1 -out "$T/self2.crt"
check "req -new -x509 after the set: the new certificate's key, and it verifies" \
	eval '[ "$rc" -eq 0 ] && [ "$(pubkey_of "$T/self2.crt")" = "$(cat "$T/oauth2.pub")" ] && self_signed_verifies "$T/self2.crt"'
po x509 -in 'custody:OAuthTokenIssuer?which=previous' -noout -fingerprint -sha256
check "custody:OAuthTokenIssuer?which=previous: the certificate that was current" \
	[ "$rc" -eq 0 -a "$out" = "$(fingerprint -in "$T/oauth.crt")" ]

# ---- a client's own error path: one error, no crash, no server
before=$(state)
po s_server -key custody:NoSuchType -cert custody:NoSuchType -accept "127.0.0.1:$(free_port)" -www
check "s_server with custody:NoSuchType exits 1-127 (no crash) before it listens" \
	eval '[ "$rc" -gt 0 ] && [ "$rc" -lt 128 ] && ! grep -q "^ACCEPT" <<<"$out"'
check "…naming the type that has nothing assigned" grep -q "NoSuchType" <<<"$err"
check "…and changed nothing on the token or in the store" [ "$(state)" = "$before" ]

done_testing
