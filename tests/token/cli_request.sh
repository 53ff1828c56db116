#!/usr/bin/env bash
# custody request: key pairs generated inside the token; a CSR signed by the
# token's key (RSA-2048, EC P-256, EC P-384) that a test CA signs and that
# `import` then attaches to the key; a self-signed certificate, assigned;
# bad input that leaves the token, the store and the files as they were.
# A token without EC (openCryptoki 3.8.1) refuses each EC request up front
# in one line, writing nothing; where EC is only the key at hand (-o json,
# the policy checks) an RSA key stands in.  A token that cannot be a
# cluster member refuses --replicable the same way.
# (The key attributes — sensitive, never extractable, local — are checked
# by tests/token/test_request, since pkcs11-tool takes a PIN only on argv.)
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token

py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" <<<"$out"; }

# key_id_of_csr FILE — SHA-1 of the subjectPublicKey BIT STRING contents
# (without the unused-bits byte), computed with openssl alone.  The BIT
# STRING is the last element of the SubjectPublicKeyInfo.
key_id_of_csr() {
	local len
	openssl req -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER >"$T/spki.der"
	len=$(openssl asn1parse -inform DER -in "$T/spki.der" | awk '/BIT STRING/ { sub(/.* l= */, ""); sub(/ .*/, ""); print; exit }')
	tail -c $((len - 1)) "$T/spki.der" | sha1sum | cut -d' ' -f1
}

# A test CA whose key is only ever on disk encrypted.
export CA_PASSWORD=ca-password-for-tests
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 \
	-pass env:CA_PASSWORD -out "$T/ca.key" 2>/dev/null
openssl req -x509 -new -key "$T/ca.key" -passin env:CA_PASSWORD -subj "/CN=custody test CA" \
	-days 30 -out "$T/ca.pem" 2>/dev/null
ca_sign() { # CSR OUT
	openssl x509 -req -in "$1" -CA "$T/ca.pem" -CAkey "$T/ca.key" -passin env:CA_PASSWORD \
		-copy_extensions copy -days 30 -set_serial "0x$(openssl rand -hex 8)" -out "$2" 2>/dev/null
}
check "the test CA's key is encrypted on disk" grep -q "BEGIN ENCRYPTED PRIVATE KEY" "$T/ca.key"

# --- one CSR per key kind, signed by the CA, imported onto its key ---
n_objects=0
csr_round() { # KEYSPEC NAME SIGALG
	local spec=$1 name=$2 sigalg=$3 csr=$T/$2.csr kid cert
	local subject="CN=$name.custody.test,OU=Servers,O=custody test"
	run request --subject "$subject" --san "DNS:$name.custody.test,DNS:alt-$name.custody.test" \
		--key "$spec" --csr "$csr"
	kid=$out
	check "$spec: request --csr exits 0 and prints a 40-digit key id" \
		grep -Eqx '[0-9a-f]{40}' <<<"$kid"
	check "$spec: the ceremony is narrated on stderr" \
		grep -q "^generating an ${4:?} key pair on token test" <<<"$err"
	check "$spec: …and the file written" grep -qx "wrote request $csr (PEM)" <<<"$err"
	n_objects=$((n_objects + 2))
	check "$spec: a private and a public key were created, nothing else" \
		[ "$(count_objects)" -eq "$n_objects" ]
	# OpenSSL 3.0's `req -verify` exits 0 even when the signature is bad:
	# its verdict line is what counts.
	check "$spec: the CSR's signature verifies (openssl req -verify)" \
		grep -qx "Certificate request self-signature verify OK" \
		<<<"$(openssl req -in "$csr" -noout -verify 2>&1)"
	check "$spec: the CSR's subject is the one given" \
		[ "$(openssl req -in "$csr" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')" = "$subject" ]
	check "$spec: the CSR requests the SANs given" \
		grep -q "DNS:$name.custody.test, DNS:alt-$name.custody.test" \
		<<<"$(openssl req -in "$csr" -noout -text)"
	check "$spec: the CSR is signed with $sigalg" \
		grep -q "Signature Algorithm: $sigalg" <<<"$(openssl req -in "$csr" -noout -text)"
	check "$spec: the CSR's public key has the printed key id" [ "$(key_id_of_csr "$csr")" = "$kid" ]

	cert=$T/$name.pem
	ca_sign "$csr" "$cert"
	run import --path "$cert"
	check "$spec: import of the CA-issued certificate exits 0" [ "$rc" -eq 0 ]
	n_objects=$((n_objects + 1))
	check "$spec: …and creates the certificate only (no new private key)" \
		[ "$(count_objects)" -eq "$n_objects" ]
	check "$spec: …attached to the generated key" grep -q "certificate only" <<<"$err"
	run list -o json
	check "$spec: list shows it with its private key, under the CSR's key id" \
		py 'c=[x for x in d if x["subject"]=="'"$subject"'"][0]; assert c["has_private_key"] is True, c; assert c["key_id"]=="'"$kid"'", c'
}
# refused WHAT MESSAGE FILE ARGS... — what the token lacks is refused up
# front: exit 1, MESSAGE the one line on stderr, nothing on stdout, the
# token and the store as they were, FILE (the request asked for) not made.
refused() { refused_up_front "$1" "$2" --file "$3" run "${@:4}"; }

csr_round rsa:2048 rsa2048 sha256WithRSAEncryption RSA-2048
if token_can ec; then
	csr_round ec:p256 ecp256 ecdsa-with-SHA256 EC-P256
	csr_round ec:p384 ecp384 ecdsa-with-SHA384 EC-P384
else
	for bits in 256 384; do
		refused "ec:p$bits on a token without EC" \
			"custody: request: token test cannot generate EC-P$bits keys: it has no CKM_EC_KEY_PAIR_GEN" \
			"$T/ecp$bits.csr" request --subject "CN=ecp$bits.custody.test,OU=Servers,O=custody test" \
			--san "DNS:ecp$bits.custody.test" --key "ec:p$bits" --csr "$T/ecp$bits.csr"
	done
	refused "ec:p256 --self-signed -t on a token without EC" \
		"custody: request: token test cannot generate EC-P256 keys: it has no CKM_EC_KEY_PAIR_GEN" "" \
		request --subject CN=ecself.custody.test --key ec:p256 --self-signed --days 30 -t Default
fi

# -o json for a request (EC where the token has it, else RSA).
if token_can ec; then
	spec=ec:p256 alg=EC-P256
else
	spec=rsa:2048 alg=RSA-2048
	refused "request -o json, ec:p256 on a token without EC" \
		"custody: request: token test cannot generate EC-P256 keys: it has no CKM_EC_KEY_PAIR_GEN" \
		"$T/json.csr" request --subject "CN=json.custody.test" --key ec:p256 --csr "$T/json.csr" -o json
fi
run request --subject "CN=json.custody.test" --key "$spec" --csr "$T/json.csr" -o json
check "request -o json gives key id, algorithm, label, file and key URI" \
	py 'assert len(d["key_id"])==40 and d["key_algorithm"]=="'"$alg"'" and d["label"]=="json.custody.test" and d["csr"]=="'"$T/json.csr"'" and d["key_uri"].startswith("pkcs11:token=test;")'
n_objects=$((n_objects + 2))

# --- self-signed, assigned ---
run request --subject "CN=sts.custody.test,O=custody test" --san DNS:sts.custody.test \
	--key rsa:2048 --label "sts signing" --self-signed --days 90 -t OAuthTokenIssuer
thumb=$out
check "request --self-signed -t exits 0" [ "$rc" -eq 0 ]
check "…and prints the thumbprint" grep -Eqx '[0-9A-F]{40}' <<<"$thumb"
n_objects=$((n_objects + 3))
check "…key pair and certificate on the token" [ "$(count_objects)" -eq "$n_objects" ]
check "…the assignment narrated" grep -q "^OAuthTokenIssuer/global: changed" <<<"$err"
run get -t OAuthTokenIssuer -o thumbprint
check "get shows it as the current OAuthTokenIssuer certificate" [ "$out" = "$thumb" ]
run get -t OAuthTokenIssuer -o pem
printf '%s\n' "$out" >"$T/self.pem"
check "openssl verify -CAfile accepts the self-signed certificate" \
	grep -qx "$T/self.pem: OK" <<<"$(openssl verify -CAfile "$T/self.pem" "$T/self.pem" 2>&1)"
check "its validity is 90 days" \
	[ $(( $(date -d "$(openssl x509 -in "$T/self.pem" -noout -enddate | cut -d= -f2)" +%s) - \
	     $(date -d "$(openssl x509 -in "$T/self.pem" -noout -startdate | cut -d= -f2)" +%s) )) -eq $((90 * 86400 + 300)) ]
run get -t OAuthTokenIssuer -o json
check "get -o json: subject, SAN, algorithm" \
	py 'c=d[0]["current"]; assert c["subject"]=="CN=sts.custody.test,O=custody test" and c["alt_names"]==["DNS:sts.custody.test"] and c["key_algorithm"]=="RSA-2048", c'
kid=$(py 'print(d[0]["current"]["key_id"])')
check "its subject key identifier is the key id" \
	grep -qi "$(sed 's/../&:/g; s/:$//' <<<"$kid")" <<<"$(openssl x509 -in "$T/self.pem" -noout -ext subjectKeyIdentifier)"
exts=$(openssl x509 -in "$T/self.pem" -noout -ext keyUsage,basicConstraints | tr -s ' \n' ' ')
check "its key usage is digitalSignature only, and it is no CA" \
	[ "$exts" = "X509v3 Key Usage: critical Digital Signature X509v3 Basic Constraints: critical CA:FALSE " ]
run list
check "list: the label given, HasPrivateKey True, assigned" \
	grep -A5 "^Thumbprint *: $thumb" <<<"$out" | grep -q "^HasPrivateKey *: True"
check "…labelled as asked" grep -Eq '^Label +: sts signing$' <<<"$out"

# The subject in OpenSSL's slash form, and --replicable (a cluster
# member's: a token without AES key wrap refuses it, and the /-form
# subject is then asked for without it).
if token_can ec; then spec=ec:p256; else spec=rsa:2048; fi
if token_can cluster; then
	run request --subject "/O=custody test/CN=repl.custody.test" --key "$spec" --replicable \
		--self-signed --days 30
	check "--replicable and a /-form subject are accepted" [ "$rc" -eq 0 ]
	# Trusted wrap where the token can hold a trusted private KEK; SoftHSM
	# cannot (measured by custody's probe), and the narration says so.
	check "…the key is made extractable, and the narration says how" \
		grep -Eq "extractable (only under trusted wrap|\(the token cannot hold a trusted KEK\))" <<<"$err"
else
	refused "--replicable on a token that cannot be a cluster member" \
		"custody: request: token test cannot make replicable keys: it has no CKM_AES_KEY_WRAP_PAD for wrapping and unwrapping" "" \
		request --subject "/O=custody test/CN=repl.custody.test" --key "$spec" --replicable \
		--self-signed --days 30
	run request --subject "/O=custody test/CN=repl.custody.test" --key "$spec" --self-signed --days 30
	check "a /-form subject is accepted" [ "$rc" -eq 0 ]
fi
run list -o json
check "…subject stored in RFC 4514 order" \
	py 'assert any(x["subject"]=="CN=repl.custody.test,O=custody test" for x in d)'
n_objects=$((n_objects + 3))

# --- bad input: exit status, one line, nothing changed, no file left ---
# expect_error STATUS PATTERN DESCRIPTION -- ARGS...
expect_error() {
	local want=$1 pattern=$2 what=$3
	shift 4
	local before first lines
	before=$(state)
	run "$@"
	# Narration lines aside, stderr holds the one error line and a hint.
	first=$(grep '^custody: ' <<<"$err" | head -1)
	lines=$(grep -Ec '^(custody|hint): ' <<<"$err")
	if [ "$rc" -ne "$want" ]; then
		not_ok "$what: exit $want" "exit was $rc" "stderr: $err"
	elif ! grep -Eq "^custody: request: .*$pattern" <<<"$first"; then
		not_ok "$what: message matches /$pattern/" "stderr: $err"
	elif [ "$lines" -gt 2 ]; then
		not_ok "$what: one line (and a hint at most)" "stderr: $err"
	elif [ "$(state)" != "$before" ] || [ "$(count_objects)" -ne "$n_objects" ]; then
		not_ok "$what: token and store unchanged"
	else
		ok "$what (exit $want, \"${first:0:90}\")"
	fi
}

expect_error 1 "unknown key spec rsa:1024: expected rsa:2048, rsa:3072, rsa:4096, ec:p256 or ec:p384" \
	"unknown key spec" -- request --subject CN=bad.custody.test --key rsa:1024 --csr "$T/bad1.csr"
check "…no request file was created" [ ! -e "$T/bad1.csr" ]

printf 'precious\n' >"$T/exists.csr"
expect_error 1 "cannot create $T/exists.csr: File exists" "existing --csr file" -- \
	request --subject CN=bad.custody.test --csr "$T/exists.csr"
check "…the existing file is untouched" [ "$(cat "$T/exists.csr")" = precious ]

expect_error 1 "label rsa2048.custody.test is already on token test" "label already on the token (default label: the CN)" -- \
	request --subject CN=rsa2048.custody.test --csr "$T/bad2.csr"
check "…no request file is left behind" [ ! -e "$T/bad2.csr" ]
expect_error 1 "label sts signing is already on token test" "label already on the token (--label)" -- \
	request --subject CN=new.custody.test --label "sts signing" --self-signed --days 5

printf '00000000\n' >"$T/wrong.pin"
expect_error 1 "PIN" "wrong PIN" -- \
	request --subject CN=pin.custody.test --csr "$T/bad3.csr" --pin-source "file:$T/wrong.pin"
check "…no request file is left behind" [ ! -e "$T/bad3.csr" ]

# Refused by the policy after the key pair was generated: it goes again.
# (EC where the token has it, else RSA.)
if token_can ec; then spec=ec:p256; else spec=rsa:2048; fi
printf '[policy]\nsip-domain = custody.example\n' >"$T/sip.conf"
expect_error 1 "certificate CN=other.custody.test is not for SIP domain custody.example" \
	"outside policy.sip-domain (checked after generation)" -- \
	request -c "$T/sip.conf" --subject CN=other.custody.test --key "$spec" --csr "$T/bad4.csr"
check "…the generated key pair was removed again (said so)" grep -q "removed the key pair .* again" <<<"$err"
check "…no request file is left behind" [ ! -e "$T/bad4.csr" ]
run request -c "$T/sip.conf" --subject CN=in.custody.example --key "$spec" --csr "$T/sip.csr"
check "inside policy.sip-domain the request is made" [ "$rc" -eq 0 -a -s "$T/sip.csr" ]
n_objects=$((n_objects + 2))
printf '[policy]\nmin-rsa-bits = 3072\n' >"$T/rsa.conf"
expect_error 1 "RSA-2048 is refused by the policy" "RSA below policy.min-rsa-bits (checked before)" -- \
	request -c "$T/rsa.conf" --subject CN=small.custody.test --key rsa:2048 --csr "$T/bad5.csr"

expect_error 2 "--subject DN is required" "no --subject" -- request --csr "$T/bad6.csr"
expect_error 2 "exactly one of --csr FILE and --self-signed" "both --csr and --self-signed" -- \
	request --subject CN=x --csr "$T/bad6.csr" --self-signed --days 3
expect_error 2 "--self-signed needs --days" "--self-signed without --days" -- \
	request --subject CN=x --self-signed
expect_error 2 "go with --self-signed" "-t with --csr" -- \
	request --subject CN=x --csr "$T/bad6.csr" -t Default
expect_error 2 "unknown attribute type XX" "unknown DN attribute" -- \
	request --subject "XX=1,CN=x" --csr "$T/bad6.csr"
expect_error 2 "is not DNS:NAME" "bad SAN" -- \
	request --subject CN=x --san "DNS:a.test,mail:b" --csr "$T/bad6.csr"
expect_error 1 "can only be assigned at identity global" "OAuthTokenIssuer at a node identity" -- \
	request --subject CN=x --self-signed --days 3 -t OAuthTokenIssuer -i node1
check "no usage error left a request file" [ ! -e "$T/bad6.csr" ]

done_testing
