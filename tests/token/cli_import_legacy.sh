#!/usr/bin/env bash
# custody import of PKCS#12 files as older Windows servers export them
# (`openssl pkcs12 -export -legacy`: certificates under RC2-40, the key
# under 3DES, a SHA-1 MAC), which OpenSSL 3 reads only with its legacy
# provider: imported with a note, the key as safe on the token as any
# other; a wrong password, or no legacy provider, changes nothing.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
if ! openssl list -providers -provider legacy >/dev/null 2>&1; then
	echo "1..0 # SKIP OpenSSL's legacy provider is not installed"
	exit 0
fi
setup_token

export P12_PASSWORD=windows-2008-export WRONG_PASSWORD=not-the-password KEY_PASSWORD=ca-secret
NOTE_RE='^custody: import: note: .* is protected with legacy encryption \(RC2-40 / 3DES, SHA-1 MAC\); re-protect exports with AES-256$'

# legacy_p12 NAME CN KEYSPEC [CHAIN-PEM] — $T/NAME.p12, made as
# make_p12 does (the key only in the pipe) but with -legacy.
legacy_p12() {
	local name=$1 cn=$2 key=$3 chain=${4:-}
	local newkey=(-newkey "$key") certfile=()
	case $key in
	ec:*) newkey=(-newkey ec -pkeyopt "ec_paramgen_curve:${key#ec:}") ;;
	esac
	[ -n "$chain" ] && certfile=(-certfile "$chain")
	openssl req -x509 "${newkey[@]}" -noenc -keyout - -out - -subj "/O=custody test/CN=$cn" \
		-addext "subjectAltName=DNS:$cn" -days 30 2>/dev/null |
		openssl pkcs12 -export -legacy -name "$cn" "${certfile[@]}" \
			-passout env:P12_PASSWORD -out "$T/$name.p12"
}

# access_of KEY-ID — the "Access:" line pkcs11-tool shows for the private
# key (the PIN goes through its environment, not its command line).
access_of() {
	CHECK_PIN=$(cat "${CUSTODY_PIN_SOURCE#file:}") pkcs11-tool --module "$CUSTODY_MODULE" \
		--token-label "$CUSTODY_TOKEN" --login --pin env:CHECK_PIN -O --type privkey \
		2>/dev/null | awk -v id="$1" '
			/^Private Key Object/ { this = 0 }
			$1 == "ID:" { this = ($2 == id) }
			this && $1 == "Access:" { sub(/^ *Access: */, ""); print }'
}
key_id_of() { # THUMBPRINT
	"$CUSTODY_BIN" list -o json 2>/dev/null |
		python3 -c 'import json,sys; print([c["key_id"] for c in json.load(sys.stdin) if c["thumbprint"]==sys.argv[1]][0])' "$1"
}

# A modern import first: what the token's attributes look like.
make_p12 modern modern.custody.test 30 rsa:2048 P12_PASSWORD
run import --path "$T/modern.p12" --password-source env:P12_PASSWORD
check "a modern PKCS#12 imports, without a note" \
	bash -c '[ "$0" -eq 0 ] && ! grep -q "note:" <<<"$1"' "$rc" "$err"
modern_thumb=$out

# RSA key, no chain.
legacy_p12 rsa rsa-legacy.custody.test rsa:2048
check "openssl -legacy made RC2-40 / 3DES with a SHA-1 MAC" bash -c \
	'openssl pkcs12 -in "$0" -info -noout -passin env:P12_PASSWORD -legacy 2>&1 |
	 grep -q "pbeWithSHA1And40BitRC2-CBC" &&
	 openssl pkcs12 -in "$0" -info -noout -passin env:P12_PASSWORD -legacy 2>&1 |
	 grep -q "MAC: sha1"' "$T/rsa.p12"
want=$(openssl pkcs12 -legacy -in "$T/rsa.p12" -passin env:P12_PASSWORD -nokeys -clcerts 2>/dev/null |
	openssl x509 -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
n_before=$(count_objects)
before=$(state)
run import --path "$T/rsa.p12" --password-source env:WRONG_PASSWORD
check "legacy PKCS#12 with a wrong password: exit 1, \"wrong password\"" \
	bash -c '[ "$0" -eq 1 ] && grep -q "^custody: import: wrong password for " <<<"$1"' "$rc" "$err"
check "…and nothing changed" [ "$(state)" = "$before" ]
run import --path "$T/rsa.p12"
check "legacy PKCS#12 without its password (no terminal to ask on): exit 2, nothing changed" \
	bash -c '[ "$0" -eq 2 ] && grep -q "missing password" <<<"$1"' "$rc" "$err"
check "…and nothing changed" [ "$(state)" = "$before" ]
OPENSSL_MODULES=$T/no-modules run import --path "$T/rsa.p12" --password-source env:P12_PASSWORD
check "without the legacy provider (OPENSSL_MODULES elsewhere): exit 1, one line and a hint" \
	bash -c '[ "$0" -eq 1 ] && [ "$(wc -l <<<"$1")" -eq 2 ] &&
	 grep -q "^custody: import: cannot decrypt .*: it is protected with legacy encryption (RC2-40 / 3DES) and OpenSSL.s legacy provider cannot be loaded (.*legacy.so: cannot open shared object file" <<<"$1"' "$rc" "$err"
check "…and nothing changed" [ "$(state)" = "$before" ]

run import --path "$T/rsa.p12" --password-source env:P12_PASSWORD -t OAuthTokenIssuer -i global
check "legacy PKCS#12 (RSA) imports: exit 0, its thumbprint ($want)" [ "$rc" -eq 0 -a "$out" = "$want" ]
check "…with the note on its legacy encryption" grep -Eq "$NOTE_RE" <<<"$err"
check "…a private key, a public key and a certificate created" [ "$(count_objects)" -eq $((n_before + 3)) ]
run get -t OAuthTokenIssuer -o thumbprint
check "…and assigned" [ "$out" = "$want" ]
run -q import --path "$T/rsa.p12" --password-source env:P12_PASSWORD
check "the note is printed with --quiet too (a re-import: exit 0)" \
	bash -c '[ "$0" -eq 0 ] && grep -Eq "$2" <<<"$1"' "$rc" "$err" "$NOTE_RE"

if command -v pkcs11-tool >/dev/null; then
	modern_access=$(access_of "$(key_id_of "$modern_thumb")")
	rsa_access=$(access_of "$(key_id_of "$want")")
	check "the key is sensitive and not extractable ($rsa_access)" \
		bash -c 'grep -qw sensitive <<<"$0" && ! sed "s/never extractable//" <<<"$0" | grep -q extractable' "$rsa_access"
	check "…as the modern import's key ($modern_access)" [ -n "$rsa_access" -a "$rsa_access" = "$modern_access" ]
else
	ok "# SKIP pkcs11-tool is not installed: key attributes"
fi

# EC key, with its CA in the file (the CA's key sits in a file encrypted).
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes-256-cbc -pass env:KEY_PASSWORD \
	-out "$T/ca.key" 2>/dev/null
openssl req -x509 -key "$T/ca.key" -passin env:KEY_PASSWORD -subj "/O=custody test/CN=Legacy CA" \
	-days 30 -out "$T/ca.crt" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes-256-cbc -pass env:KEY_PASSWORD \
	-out "$T/leaf.key" 2>/dev/null
openssl req -new -key "$T/leaf.key" -passin env:KEY_PASSWORD -subj "/O=custody test/CN=ec-legacy.custody.test" \
	2>/dev/null | openssl x509 -req -CA "$T/ca.crt" -CAkey "$T/ca.key" -passin env:KEY_PASSWORD \
	-days 30 -out "$T/leaf.crt" 2>/dev/null
openssl pkcs12 -export -legacy -inkey "$T/leaf.key" -passin env:KEY_PASSWORD -in "$T/leaf.crt" \
	-certfile "$T/ca.crt" -passout env:P12_PASSWORD -out "$T/ec-chain.p12" 2>/dev/null
ec_want=$(openssl x509 -in "$T/leaf.crt" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
n_before=$(count_objects)
run import --path "$T/ec-chain.p12" --password-source env:P12_PASSWORD
check "legacy PKCS#12 (EC P-256 with its CA) imports: exit 0, the leaf's thumbprint" \
	[ "$rc" -eq 0 -a "$out" = "$ec_want" ]
check "…with the note" grep -Eq "$NOTE_RE" <<<"$err"
check "…key, public key, certificate and the CA certificate created" \
	[ "$(count_objects)" -eq $((n_before + 4)) ]
run list -o json
check "…listed as EC-P256 with its private key" \
	python3 -c 'import json,sys; c=[x for x in json.loads(sys.argv[1]) if x["thumbprint"]==sys.argv[2]][0]; assert c["has_private_key"] and c["key_algorithm"]=="EC-P256"' \
	"$out" "$ec_want"
if command -v pkcs11-tool >/dev/null; then
	ec_access=$(access_of "$(key_id_of "$ec_want")")
	check "…its key sensitive and not extractable, as the modern import's ($ec_access)" \
		[ -n "$ec_access" -a "$ec_access" = "$modern_access" ]
else
	ok "# SKIP pkcs11-tool is not installed: key attributes"
fi

# An EC key alone, without a chain.
legacy_p12 ec ec-nochain.custody.test ec:P-384
run import --path "$T/ec.p12" --password-source env:P12_PASSWORD
check "legacy PKCS#12 (EC P-384, no chain) imports with the note" \
	bash -c '[ "$0" -eq 0 ] && grep -Eq "$2" <<<"$1"' "$rc" "$err" "$NOTE_RE"

done_testing
