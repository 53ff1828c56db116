#!/usr/bin/env bash
# custody import / get / list: every import format, what the token and the
# store hold afterwards, and the output formats of `get`.  The PEM
# imports are of EC keys (P-256, P-384); on a token that cannot sign with
# EC (openCryptoki 3.8.1) those are refused up front, and the same PEM
# forms are imported with RSA keys there.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token

# refused WHAT MESSAGE COMMAND... — what the token lacks is refused up
# front: COMMAND (run, or pem_import) exits 1 with MESSAGE the one line on
# stderr and nothing on stdout, the token and the store as they were.
refused() { refused_up_front "$@"; }

export P12_PASSWORD=correct-horse-battery
make_p12 issuer oauth.custody.test 365 rsa:2048 P12_PASSWORD
want=$(thumbprint_of_p12 issuer P12_PASSWORD)

# PKCS#12 with a password, assigned at once.
run import --path "$T/issuer.p12" --password-source env:P12_PASSWORD -t OAuthTokenIssuer -i global
check "import of a PKCS#12 exits 0" [ "$rc" -eq 0 ]
check "import prints the SHA-1 thumbprint ($want)" [ "$out" = "$want" ]
check "import created a private key, a public key and a certificate" [ "$(count_objects)" -eq 3 ]

# get reads the store only: no PIN source, no module.
run get -t OAuthTokenIssuer -o thumbprint --pin-source "file:$T/does-not-exist" --module /nonexistent.so
check "get -o thumbprint needs no token and prints the thumbprint" [ "$rc" -eq 0 -a "$out" = "$want" ]
run get -t OAuthTokenIssuer
for field in Type Identity Thumbprint Sha256 Subject Issuer SerialNumber NotBefore NotAfter \
	AlternativeNames KeyAlgorithm KeyUri EffectiveDate PreviousThumbprint PreviousNotBefore \
	PreviousNotAfter PendingThumbprint PendingEffectiveDate; do
	if ! grep -Eq "^$field +: " <<<"$out"; then missing_field=$field; fi
done
check "get table shows every field of the contract" [ -z "${missing_field:-}" ]
check "get table shows the type and identity" grep -Eq '^Identity +: global$' <<<"$out"
check "get table shows the key algorithm" grep -Eq '^KeyAlgorithm +: RSA-2048$' <<<"$out"
check "get table shows the SAN" grep -Eq '^AlternativeNames +: DNS:oauth.custody.test$' <<<"$out"

run get -o json
check "get -o json is a JSON array with one assignment" [ "$(jq length <<<"$out" 2>/dev/null || python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' <<<"$out")" = 1 ]
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" <<<"$out"; }
check "json: type and identity" [ "$(py 'print(d[0]["type"], d[0]["identity"])')" = "OAuthTokenIssuer global" ]
check "json: current thumbprint" [ "$(py 'print(d[0]["current"]["thumbprint"])')" = "$want" ]
check "json: key algorithm and 40-digit key id" [ "$(py 'c=d[0]["current"]; print(c["key_algorithm"], len(c["key_id"]))')" = "RSA-2048 40" ]
check "json: key_uri is a pkcs11 URI naming the id" py 'c=d[0]["current"]; assert c["key_uri"].startswith("pkcs11:") and "id=%" in c["key_uri"] and "type=private" in c["key_uri"]'
check "json: previous and pending are null" [ "$(py 'print(d[0]["previous"], d[0]["pending"])')" = "None None" ]
check "json: sha256 is 64 hex digits" py 'import re; assert re.fullmatch("[0-9A-F]{64}", d[0]["current"]["sha256"])'

run get -t OAuthTokenIssuer -o pem
pem_fp=$(openssl x509 -noout -fingerprint -sha1 <<<"$out" | sed 's/.*=//; s/://g')
check "get -o pem prints the certificate itself" [ "$pem_fp" = "$want" ]
run get -t OAuthTokenIssuer -o uri
check "get -o uri prints the key's pkcs11 URI" grep -q '^pkcs11:token=test;' <<<"$out"

# The key on the token: private, sensitive, never extractable; same id as the certificate.
run list -o json
check "list -o json shows the certificate with its private key" \
	py 'c=[x for x in d if x["thumbprint"]=="'"$want"'"][0]; assert c["has_private_key"] is True; assert c["assigned_as"]==["OAuthTokenIssuer/global:current"]'
run list
check "list table shows HasPrivateKey True" grep -Eq '^HasPrivateKey +: True$' <<<"$out"

# Importing the same file again creates nothing new and succeeds.
before=$(state)
run import --path "$T/issuer.p12" --password-source env:P12_PASSWORD
check "re-import exits 0 with the same thumbprint" [ "$rc" -eq 0 -a "$out" = "$want" ]
check "re-import says nothing was created" grep -q "nothing created" <<<"$err"
check "re-import leaves the token's objects as they were" [ "$(count_objects)" -eq 3 ]

# PKCS#12 without a password.
make_p12 nopass nopass.custody.test 30
run import --path "$T/nopass.p12"
check "PKCS#12 without a password imports" [ "$rc" -eq 0 -a "$out" = "$(thumbprint_of_p12 nopass)" ]

# PEM: certificate + plain PKCS#8 key, through a pipe (never a file).
# pem_import NEWKEY-ARGS... — openssl makes them into custody import
# --path /dev/stdin; leaves $out, $err and $rc, and the certificate's
# thumbprint in $T/pem.thumb.
pem_import() {
	out=$(openssl req -x509 "$@" -noenc -keyout - -out - \
		-subj "/CN=pem.custody.test" -days 30 2>/dev/null |
		tee >(openssl x509 -noout -fingerprint -sha1 | sed 's/.*=//; s/://g' >"$T/pem.thumb") |
		"$CUSTODY_BIN" import --path /dev/stdin 2>"$T/stderr")
	rc=$?
	sleep 0.2
	err=$(cat "$T/stderr")
}
if token_can ec-sign; then
	pem_key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) pem_alg=EC-P256 pem_desc="EC P-256" pem_k=EC
else
	refused "PEM with a plain EC P-256 key through a pipe, on a token that cannot sign with EC" \
		"custody: import: token test cannot sign with EC-P256 keys: it has no CKM_ECDSA for signing" \
		pem_import -newkey ec -pkeyopt ec_paramgen_curve:P-256
	pem_key=(-newkey rsa:2048) pem_alg=RSA-2048 pem_desc="RSA-2048" pem_k=RSA
fi
pem_import "${pem_key[@]}"
pem_thumb=$out
check "PEM with a plain key through a pipe imports ($pem_desc)" [ "$rc" -eq 0 -a "$pem_thumb" = "$(cat "$T/pem.thumb")" ]
run get -o json
run list -o json
check "the $pem_k key is listed with its private key" \
	py 'c=[x for x in d if x["thumbprint"]=="'"$pem_thumb"'"][0]; assert c["has_private_key"] and c["key_algorithm"]=="'"$pem_alg"'"'

# PEM with an encrypted PKCS#8 key (the encrypted key may sit in a file).
export KEY_PASSWORD=pkcs8-secret
enc_pem() { # NAME GENPKEY-ARGS... — $T/NAME.pem: certificate + encrypted key ($T/NAME.key)
	local name=$1
	shift
	openssl genpkey "$@" -aes-256-cbc -pass env:KEY_PASSWORD -out "$T/$name.key" 2>/dev/null
	openssl req -x509 -key "$T/$name.key" -passin env:KEY_PASSWORD -subj "/CN=$name.custody.test" -days 30 \
		-out "$T/$name.crt" 2>/dev/null
	cat "$T/$name.crt" "$T/$name.key" >"$T/$name.pem"
}
if token_can ec-sign; then
	enc_key=(-algorithm EC -pkeyopt ec_paramgen_curve:P-384) enc_desc="EC P-384"
else
	enc_pem ec384 -algorithm EC -pkeyopt ec_paramgen_curve:P-384
	refused "PEM with an encrypted EC P-384 key, on a token that cannot sign with EC" \
		"custody: import: token test cannot sign with EC-P384 keys: it has no CKM_ECDSA for signing" \
		run import --path "$T/ec384.pem" --password-source env:KEY_PASSWORD
	enc_key=(-algorithm RSA -pkeyopt rsa_keygen_bits:3072) enc_desc="RSA-3072"
fi
enc_pem enc "${enc_key[@]}"
run import --path "$T/enc.pem" --password-source env:KEY_PASSWORD
enc_thumb=$(openssl x509 -in "$T/enc.crt" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
check "PEM with an encrypted PKCS#8 key imports ($enc_desc)" [ "$rc" -eq 0 -a "$out" = "$enc_thumb" ]

# A certificate alone, for a key already on the token (a CA-issued certificate
# arriving for the key of enc.pem).
openssl req -x509 -key "$T/enc.key" -passin env:KEY_PASSWORD -subj "/CN=renewed.custody.test" -days 60 \
	-out "$T/renewed.crt" 2>/dev/null
n_before=$(count_objects)
run import --path "$T/renewed.crt"
check "certificate-only import onto the existing key exits 0" [ "$rc" -eq 0 ]
check "certificate-only import created exactly one object" [ "$(count_objects)" -eq $((n_before + 1)) ]
run list -o json
check "the new certificate shares the key's id and has its private key" \
	py 'a=[x for x in d if x["subject"].endswith("CN=renewed.custody.test")][0]; b=[x for x in d if x["subject"].endswith("CN=enc.custody.test")][0]; assert a["key_id"]==b["key_id"] and a["has_private_key"]'

# A DER certificate alone whose key is not on the token: refused, nothing changed.
openssl req -x509 -newkey rsa:2048 -noenc -keyout /dev/null -subj "/CN=orphan" -days 30 -outform DER \
	-out "$T/orphan.der" 2>/dev/null
before=$(state)
run import --path "$T/orphan.der"
check "certificate whose key is not on the token: exit 1" [ "$rc" -eq 1 ]
check "…with one line naming the missing key id" grep -Eq '^custody: import: .*key id [0-9a-f]{40}' <<<"$err"
check "…and nothing changed" [ "$(state)" = "$before" ]

# No plaintext private key anywhere: not in the store, not in the token's
# files (SoftHSM and openCryptoki encrypt private objects).  32 bytes from the middle of the
# RSA private exponent are looked for, in hex, in every file; the key is read
# from the PKCS#12 through a pipe and held in a shell variable only.
d_window=$(openssl pkcs12 -in "$T/issuer.p12" -nocerts -nodes -passin env:P12_PASSWORD 2>/dev/null |
	openssl rsa -noout -text 2>/dev/null |
	sed -n '/^privateExponent:/,/^prime1:/p' | sed '1d;$d' | tr -d ' :\n' | cut -c 101-164)
check "the private exponent could be read for the scan" [ ${#d_window} -eq 64 ]
found=""
for f in "$T/custody.db" "$T"/custody.db-wal $(token_files); do
	[ -f "$f" ] || continue
	if od -An -v -tx1 "$f" | tr -d ' \n' | grep -q "$d_window"; then found="$found $f"; fi
done
check "no file of the store or the token holds the private key in clear" [ -z "$found" ]
check "the store holds no PEM private key" \
	bash -c "! sqlite3 '$T/custody.db' .dump | grep -q -- '-----BEGIN [A-Z ]*PRIVATE KEY-----'"

done_testing
