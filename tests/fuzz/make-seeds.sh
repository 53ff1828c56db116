#!/usr/bin/env bash
# make-seeds.sh — writes the seed corpora of tests/fuzz/corpus/ again.
#
# Run it by hand when a parser learns a new form; the seeds are committed
# (small files).  Custody rules hold here too: private keys travel through
# pipes or sit in a temporary directory encrypted, and the only keys in
# the corpora are encrypted (PKCS#12 and PKCS#8 under the password "fuzz",
# which fuzz_bundle_password.c knows).  Encryption and MAC use one
# iteration, so the fuzzer spends its time in the parser, not in PBKDF2.
# Passwords reach openssl through the environment, never argv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export FUZZPW=fuzz EMPTY=

ossl() { openssl "$@" 2>/dev/null; }

# An encrypted PKCS#8 key (the plaintext key exists only in the pipe).
key() {	# ALGORITHM-OPTIONS... > encrypted PEM
	ossl genpkey "$@" | ossl pkcs8 -topk8 -v2 aes-256-cbc -iter 1 \
		-passout env:FUZZPW
}

key -algorithm EC -pkeyopt ec_paramgen_curve:P-256 > "$tmp/ca.key"
key -algorithm EC -pkeyopt ec_paramgen_curve:P-256 > "$tmp/leaf.key"
key -algorithm RSA -pkeyopt rsa_keygen_bits:1024 > "$tmp/rsa.key"

ossl req -x509 -new -key "$tmp/ca.key" -passin env:FUZZPW -days 3650 \
	-subj "/CN=Fuzz CA/O=Contoso" -out "$tmp/ca.pem"
ossl req -new -key "$tmp/leaf.key" -passin env:FUZZPW -utf8 \
	-subj "/CN=Zoë fuzz.example/O=Contoso ☃/C=NL" -out "$tmp/leaf.csr"
printf '%s\n' 'subjectAltName=DNS:fuzz.example,DNS:*.fuzz.example,IP:192.0.2.1,IP:2001:db8::1,email:a@fuzz.example,URI:https://fuzz.example/' \
	'keyUsage=digitalSignature' > "$tmp/ext"
ossl x509 -req -in "$tmp/leaf.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
	-passin env:FUZZPW -days 3650 -set_serial 0x0123456789abcdef \
	-extfile "$tmp/ext" -out "$tmp/leaf.pem"
ossl req -x509 -new -key "$tmp/rsa.key" -passin env:FUZZPW -days 3650 \
	-subj "/CN=rsa.fuzz.example" -out "$tmp/rsa.pem"

rm -rf "$out/bundle" "$out/bundle_password"
mkdir -p "$out/bundle" "$out/bundle_password"

# ---- certificates alone
ossl x509 -in "$tmp/leaf.pem" -out "$out/bundle/leaf.pem"
ossl x509 -in "$tmp/leaf.pem" -outform DER -out "$out/bundle/leaf.der"
ossl x509 -in "$tmp/rsa.pem" -outform DER -out "$out/bundle/rsa.der"
cat "$tmp/leaf.pem" "$tmp/ca.pem" > "$out/bundle/chain.pem"
ossl x509 -in "$tmp/leaf.pem" -trustout -addtrust serverAuth \
	-out "$out/bundle/trusted.pem"
ossl pkcs12 -export -nokeys -in "$out/bundle/chain.pem" -certpbe NONE \
	-nomac -passout env:EMPTY -out "$out/bundle/certs-only.p12"
ossl pkcs12 -export -nokeys -in "$tmp/leaf.pem" -certpbe AES-256-CBC -iter 1 \
	-nomaciter -passout env:EMPTY -out "$out/bundle/one-cert.p12"
# A traditional encrypted key header around random bytes (not a key): the
# DEK-Info parser and the decryption failure.
{
	echo "-----BEGIN EC PRIVATE KEY-----"
	echo "Proc-Type: 4,ENCRYPTED"
	echo "DEK-Info: AES-128-CBC,$(ossl rand -hex 16 | tr a-f A-F)"
	echo
	ossl rand -base64 48
	echo "-----END EC PRIVATE KEY-----"
	cat "$tmp/leaf.pem"
} > "$out/bundle/traditional-header.pem"

# ---- encrypted keys (password "fuzz")
p12() {	# OUT ARGS...
	local o=$1
	shift
	ossl pkcs12 -export -passin env:FUZZPW -passout env:FUZZPW -iter 1 \
		-nomaciter "$@" -out "$o"
}
p12 "$out/bundle_password/ec-aes.p12" -inkey "$tmp/leaf.key" -in "$tmp/leaf.pem" \
	-keypbe AES-256-CBC -certpbe AES-256-CBC -macalg sha256 -name leaf
p12 "$out/bundle_password/ec-chain-3des.p12" -inkey "$tmp/leaf.key" \
	-in "$out/bundle/chain.pem" -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES \
	-macalg sha1
# As older Windows servers export: RC2-40 certificates (read with OpenSSL's
# legacy provider in a library context of their own), 3DES key, SHA-1 MAC.
p12 "$out/bundle_password/ec-legacy-rc2.p12" -inkey "$tmp/leaf.key" -in "$tmp/leaf.pem" \
	-legacy -name leaf
p12 "$out/bundle_password/rsa-nomac.p12" -inkey "$tmp/rsa.key" -in "$tmp/rsa.pem" \
	-keypbe AES-128-CBC -certpbe NONE -nomac
# Iteration counts far over the limit, refused before any is spent: the
# seed above with its MAC's count, then its encryptions', set to 50,000,000
# (tests/token/p12iter.py edits the DER; openssl would spend them).
python3 "$here/../token/p12iter.py" --mac 50000000 \
	< "$out/bundle_password/ec-aes.p12" > "$out/bundle_password/mac-iter-huge.p12"
python3 "$here/../token/p12iter.py" --pbe 50000000 \
	< "$out/bundle_password/ec-aes.p12" > "$out/bundle_password/pbe-iter-huge.p12"
{ cat "$tmp/leaf.pem"; cat "$tmp/leaf.key"; } > "$out/bundle_password/ec-pkcs8.pem"
{ cat "$tmp/rsa.key"; cat "$tmp/rsa.pem" "$tmp/ca.pem"; } \
	> "$out/bundle_password/rsa-pkcs8-chain.pem"
cp "$out/bundle/leaf.pem" "$out/bundle_password/"
# The same files without the password: the EPASSWORD paths.
cp "$out/bundle_password/ec-aes.p12" "$out/bundle_password/ec-pkcs8.pem" \
	"$out/bundle/"
cp "$out/bundle/certs-only.p12" "$out/bundle/traditional-header.pem" \
	"$out/bundle_password/"

# Guard: no plaintext private key in any seed.
if grep -rlE -- '-----BEGIN (RSA |EC |DSA |)PRIVATE KEY-----' "$out" |
   xargs -r grep -L 'Proc-Type: 4,ENCRYPTED' | grep .; then
	echo "make-seeds: a plaintext private key reached the corpus" >&2
	exit 1
fi

# ---- text parsers
seed() {	# DIR NAME TEXT (written as is, no newline added)
	mkdir -p "$out/$1"
	printf '%s' "$3" > "$out/$1/$2"
}
rm -rf "$out/time" "$out/thumbprint" "$out/secret_source" "$out/base64url" \
	"$out/config" "$out/jws" "$out/dn" "$out/san"
seed time date "2031-02-28"
seed time utc "2024-02-29T23:59:59Z"
seed time minutes "2024-06-01T08:30Z"
seed time offset "2024-06-01T08:30:15+05:30"
seed time negative "0000-01-01T00:00-14:00"
seed time max "9999-12-31T23:59:59+14:00"
seed time bad-day "2031-02-30"

seed thumbprint sha1 "0123456789ABCDEF000000000000000000001111"
seed thumbprint colons "01:23:45:67:89:ab:cd:ef"
seed thumbprint prefix-subjects $'0123456789abcdef\nCN=a\nCN=Zo\xc3\xab\nCN=\xf0\x9f\x94\x91'
seed thumbprint sha256 "FEDCBA98000000000000000000000000000000000000000000000000000099996"
seed thumbprint unique "a1b2 c3d4 e5f6"
seed thumbprint dup "0123456789ABCDEF000000000000000000000000"

seed secret_source file "file:/etc/custody/user.pin"
seed secret_source env "env:CUSTODY_PIN"
seed secret_source fd "fd:3"
seed secret_source prompt "prompt"
seed secret_source bad "pass:1234"

# dn: custody request --subject (fuzz_dn.c); san: --san (fuzz_san.c).
seed dn rfc4514 "CN=sts.example.com,O=Example,C=US"
seed dn slash "/C=US/O=Example/CN=sts.example.com"
seed dn escapes 'CN=a\,b\+c\\d\"e\;f\<g\>h\=i,O=\#x\ '
seed dn hex-escapes 'CN=Zo\C3\AB \E2\98\83\0A,OU=a\2cb'
seed dn utf8 $'CN=Zo\xc3\xab \xe2\x98\x83,O=Contoso \xf0\x9f\x94\x91,L=\xe6\x9d\xb1\xe4\xba\xac'
seed dn multi-valued "CN=a+UID=7,O=x+OU=y+L=z,C=NL"
seed dn multi-valued-slash '/DC=org/DC=example/UID=123+CN=John Doe'
seed dn hex-values "CN=#0c03616263,O=#130141,OU=#1e0400e90041"
seed dn oids "2.5.4.3=x,2.5.4.10=y,emailAddress=a@b.test,serialNumber=42"
seed dn spaces "  CN =  a b  , O= x "
seed dn lone-hash '/O=\,/O=\#'
seed dn bad-hex "CN=#0c0361"
seed dn bad-escape 'CN=x,O=a\'
seed dn bad-type "XX=1,CN=x"
seed dn bad-country "C=USA,CN=x"
seed san all "DNS:a.test,DNS:*.a.test,IP:192.0.2.1,IP:2001:db8::1,email:a@b.test,URI:https://x.test/p"
seed san dns "DNS:sts.custody.test"
seed san ipv6 "IP:::1,IP:fe80::1:2:3:4"
seed san colon "DNS:a:b,URI:urn:x:y"
seed san bad-kind "DNS:a.test,mail:b"
seed san bad-ip "IP:999.1.1.1"
seed san copy "email:copy"

seed base64url empty ""
seed base64url one "QQ"
seed base64url two "QUI"
seed base64url three "QUJD"
seed base64url header "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"
seed base64url bad-bits "QR"

seed config full $'[token]\nmodule = /usr/lib/softhsm/libsofthsm2.so\nlabel = issuer\npin-source = file:/etc/custody/user.pin\nso-pin-source = env:SO_PIN\nlock-dir = /run/custody\nlock-timeout = 30\n\n[store]\nurl = sqlite:/var/lib/custody/custody.db\n\n[node]\nname = fe01\n\n[policy]\nmin-rsa-bits = 3072\nec-curves = p256,p384\nsip-domain = contoso.example\noverlap = 24h\nwarn-days = 30\n'
seed config uri $'; comment\n# comment\n[token]\nuri = pkcs11:token=issuer;manufacturer=SoftHSM\n[store]\nurl = postgresql://custody@db/custody\n'
seed config indented $'[node]\nname = a\n  b\n'
seed config unknown $'[token]\nmodul = x\n[other]\n'
seed config policy $'\xef\xbb\xbf[policy]\noverlap = 90m\nsip-domain =\nec-curves = p521\nmin-rsa-bits = 2048\n'
seed config errors $'[store]\nurl = mysql://x\n[node]\nname = global\n[token]\nlock-timeout = 99999999999\n'

# jws: first byte = mode (see fuzz_jws.c), then the token or the texts.
mkdir -p "$out/jws"
printf '\000%s' "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsIng1dCI6IkFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQSJ9.eyJleHAiOjE4MDAwMDAwMDB9.c2ln" > "$out/jws/raw-unknown-x5t"
printf '@%s' "eyJhbGciOiJub25lIn0.eyJleHAiOjF9." > "$out/jws/raw-none"
printf '\001{"alg":"RS256","typ":"JWT","x5t":"@X5T@","kid":"@X5T@"}\n{"iss":"custody","aud":"x","exp":1800000000,"nbf":1600000000,"iat":1600000000}' > "$out/jws/rs256"
printf '\002{"alg":"PS256","x5t":"@X5T@"}\n{"exp":1700000030}' > "$out/jws/ps256-skew"
printf '\003{"alg":"ES256","typ":"jwt","x5t":"@X5T@"}\n{"exp":1800000000,"nbf":1700000100}' > "$out/jws/es256-not-yet"
printf '\013{"alg":"ES256","x5t":"@X5T@"}\n{"exp":1800000000}' > "$out/jws/es256-p384"
printf '\005{"alg":"RS256","x5t":"@X5T@"}\n{"exp":1800000000}' > "$out/jws/rs256-bad-sig"
printf '\001{"alg":"RS256","x5t":"@X5T@","crit":["b64"]}\n{"exp":1e300}' > "$out/jws/crit"
printf '\001{"alg":"RS256","x5t":"@X5T@"}\n{"exp":1800000000,"exp":1}' > "$out/jws/repeated"
printf '\041{"alg":"RS256","x5t":"@X5T@"}\n{"exp":"soon"}' > "$out/jws/exp-string"

# agent_wire: one valid frame of each kind (custody/agent_wire.h), the
# certificates those of the bundle seeds, as DER.
rm -rf "$out/agent_wire"
mkdir -p "$out/agent_wire"
ossl x509 -in "$tmp/leaf.pem" -outform DER -out "$tmp/leaf.der"
ossl x509 -in "$tmp/ca.pem" -outform DER -out "$tmp/ca.der"
python3 - "$out/agent_wire" "$tmp/leaf.der" "$tmp/ca.der" <<'PY'
import struct, sys
out, leaf, ca = sys.argv[1], open(sys.argv[2], 'rb').read(), open(sys.argv[3], 'rb').read()
TP, TP2 = '0123456789ABCDEF0123456789ABCDEF01234567', 'FEDCBA9876543210FEDCBA9876543210FEDCBA98'
def field(tag, v):
    v = v.encode() if isinstance(v, str) else v
    return bytes([tag]) + struct.pack('>H', len(v)) + v
def seed(name, kind, *fields):
    body = bytes([1, kind]) + b''.join(fields)
    open(out + '/' + name, 'wb').write(struct.pack('>I', len(body)) + body)
entry = lambda t, i, tp, w: field(15, field(1, t) + field(2, i) + field(8, tp) + field(3, w))
seed('sign-request', 1, field(1, 'OAuthTokenIssuer'), field(4, b'\2'), field(5, b'\1'), field(6, bytes(range(32))))
seed('sign-request-full', 1, field(6, bytes(48)), field(5, b'\2'), field(4, b'\3'), field(3, 'previous'),
     field(2, 'fe01.contoso.example'), field(1, 'WebServicesInternal'))
seed('sign-response', 2, field(7, bytes([0xa5]) * 256), field(8, TP))
seed('cert-request', 3, field(1, 'Default'), field(2, 'global'), field(3, 'pending'))
seed('cert-response', 4, field(8, TP), field(9, leaf), field(10, ca))
seed('jwt-request', 5, field(1, 'OAuthTokenIssuer'), field(2, 'global'),
     field(11, '{"aud":"00000002-0000-0ff1-ce00-000000000000",\n\t"nameid":"Zo\u00eb","nbf":1}'),
     field(12, struct.pack('>I', 3600)), field(13, 'PS256'))
seed('jwt-response', 6, field(14, 'eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln'))
seed('list-request', 7)
seed('list-response', 8, entry('OAuthTokenIssuer', 'global', TP, 'current'), entry('Custom_1', 'fe01', TP2, 'pending'))
seed('error', 9, field(16, struct.pack('>I', 3)), field(17, 'no certificate is assigned for type Default \u2014 see custody list'))
PY

echo "seeds written to $out:"
for d in "$out"/*/; do
	printf '  %-16s %3d files %7d bytes\n' "$(basename "$d")" \
		"$(find "$d" -type f | wc -l)" "$(cat "$d"/* | wc -c)"
done
