#!/usr/bin/env bash
# custody import --path CERT --key KEY: a certificate and its private key in
# two files (PEM or DER key, PKCS#8 encrypted or not, the traditional
# forms), a key that is not the certificate's refused with nothing
# written, a repeated --path refused; then -o on the commands a script
# reads: json [] for an empty answer, metadata -o jwks|s2s (--format its
# alias).  Plaintext keys reach custody through pipes only; the encrypted
# ones may sit in files.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token

export KEY_PASSWORD=two-files-secret
echo -n "$KEY_PASSWORD" >"$T/key.pass"
thumb() { openssl x509 -in "$1" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g'; }
# pair NAME GENPKEY-ARGS... — $T/NAME.key (encrypted PKCS#8 PEM) and its
# self-signed certificate $T/NAME.crt.
pair() {
	local name=$1
	shift
	openssl genpkey "$@" -aes-256-cbc -pass env:KEY_PASSWORD -out "$T/$name.key" 2>/dev/null
	openssl req -x509 -key "$T/$name.key" -passin env:KEY_PASSWORD \
		-subj "/CN=$name.custody.test" -addext "subjectAltName=DNS:$name.custody.test" \
		-days 30 -out "$T/$name.crt" 2>/dev/null
}
# plain NAME [OPENSSL-PKEY-ARGS...] — the key of NAME in clear, on stdout
# (for a pipe).
plain() {
	local name=$1
	shift
	openssl pkey -in "$T/$name.key" -passin env:KEY_PASSWORD "$@"
}
# trad NAME rsa|ec [-outform DER] — the key of NAME in clear in its
# traditional form (PKCS#1, SEC 1), on stdout.
trad() {
	local name=$1 kind=$2
	shift 2
	openssl "$kind" -in "$T/$name.key" -passin env:KEY_PASSWORD "$@" 2>/dev/null
}
# jqt FILTER — $out passes jq -e FILTER.
jqt() { jq -e "$1" <<<"$out" >/dev/null; }
# has_key THUMBPRINT ALG — list shows it with its private key.
has_key() {
	run list -o json
	jq -e --arg t "$1" --arg a "$2" \
		'[.[] | select(.thumbprint == $t and .has_private_key and .key_algorithm == $a)] | length == 1' \
		<<<"$out" >/dev/null
}
# refused_unchanged WHAT RC MESSAGE ARGS... — custody ARGS exits RC with
# MESSAGE the first line on stderr, nothing on stdout, token and store
# as they were.
refused_unchanged() {
	local what=$1 want_rc=$2 msg=$3 before
	shift 3
	before=$(state)
	run "$@"
	if [ "$rc" -ne "$want_rc" ]; then
		not_ok "$what: exit $want_rc" "exit was $rc" "stderr: $err"
	elif [ "$(head -1 <<<"$err")" != "$msg" ]; then
		not_ok "$what: \"$msg\"" "stderr: $err"
	elif [ -n "$out" ]; then
		not_ok "$what: nothing on stdout" "stdout: $out"
	elif [ "$(state)" != "$before" ]; then
		not_ok "$what: token and store unchanged"
	else
		ok "$what: refused (exit $want_rc), token and store unchanged"
	fi
}

if token_can ec-sign; then ec=1; else ec=0; fi

# --- -o json on empty answers: [] with the command's usual exit status.
# The store is made by a write (an import, then a delete that leaves the
# token and the assignments empty).
pair first -algorithm RSA -pkeyopt rsa_keygen_bits:2048
"$CUSTODY_BIN" -q import --path "$T/first.crt" --key <(plain first) >/dev/null 2>&1
"$CUSTODY_BIN" -q delete --thumbprint "$(thumb "$T/first.crt")" >/dev/null 2>&1
check "an import and a delete made the store and left the token empty" \
	[ -f "$T/custody.db" -a "$(count_objects)" -eq 0 ]
# empty_json WHAT RC ARGS... — custody ARGS -o json exits RC printing [].
empty_json() {
	local what=$1 want_rc=$2
	shift 2
	run "$@" -o json
	check "$what -o json on an empty answer: [] (exit $want_rc)" \
		[ "$rc" -eq "$want_rc" -a "$(jq -c . <<<"$out" 2>/dev/null)" = "[]" ]
}
empty_json "list" 0 list
empty_json "get" 0 get
empty_json "get -t Default" 3 get -t Default
empty_json "audit --since (a future time)" 0 audit --since 2099-01-01T00:00:00Z
empty_json "node list" 0 node list
run status -o json
check "status -o json with no node: nodes [] (exit 1, as status without a node)" \
	[ "$rc" -eq 1 -a "$(jq -c .nodes <<<"$out" 2>/dev/null)" = "[]" ]
run node list
check "node list (table) with no node: exit 0, nothing on stdout, said on stderr" \
	[ "$rc" -eq 0 -a -z "$out" ] && grep -q "no node has enrolled" <<<"$err"
CUSTODY_STORE="sqlite:$T/none.db" run node list -o json
check "node list reads: it makes no store" [ "$rc" -ne 0 -a ! -e "$T/none.db" ]
run node list -o pem
check "node list -o pem: exit 2" [ "$rc" -eq 2 ]

# RSA: certificate PEM, key plain PKCS#8 PEM through a pipe.
pair rsa -algorithm RSA -pkeyopt rsa_keygen_bits:2048
run import --path "$T/rsa.crt" --key <(plain rsa)
check "RSA certificate + plain PKCS#8 PEM key import" [ "$rc" -eq 0 -a "$out" = "$(thumb "$T/rsa.crt")" ]
check "the RSA key is on the token with its certificate" has_key "$(thumb "$T/rsa.crt")" RSA-2048
check "import created a private key, a public key and a certificate" [ "$(count_objects)" -eq 3 ]
run list -o json
check "the key of a separate file is as a PKCS#12's: key_uri names it, label the CN" \
	jqt '(.[0].key_uri | startswith("pkcs11:") and contains("type=private"))
		and .[0].label == "rsa.custody.test"'

# The same key again, as it came: nothing new, exit 0.
run import --path "$T/rsa.crt" --key <(plain rsa)
check "importing the same certificate and key again succeeds" [ "$rc" -eq 0 ]
check "...and creates nothing new" [ "$(count_objects)" -eq 3 ]

# Encrypted PKCS#8 PEM key in a file, its password in a file.
pair enc -algorithm RSA -pkeyopt rsa_keygen_bits:3072
run import --path "$T/enc.crt" --key "$T/enc.key" --password-source "file:$T/key.pass"
check "certificate + encrypted PKCS#8 PEM key with --password-source file:" \
	[ "$rc" -eq 0 -a "$out" = "$(thumb "$T/enc.crt")" ]
check "the RSA-3072 key is on the token" has_key "$(thumb "$T/enc.crt")" RSA-3072

# Without the password: a usage error off a terminal (exit 2), nothing written.
pair nopw -algorithm RSA -pkeyopt rsa_keygen_bits:2048
refused_unchanged "an encrypted key without --password-source" 2 \
	"custody: import: missing password for $T/nopw.key: it is encrypted" \
	import --path "$T/nopw.crt" --key "$T/nopw.key" </dev/null
echo -n wrong >"$T/wrong.pass"
refused_unchanged "an encrypted key under a wrong password" 1 \
	"custody: import: wrong password for $T/nopw.key" \
	import --path "$T/nopw.crt" --key "$T/nopw.key" --password-source "file:$T/wrong.pass"

# DER keys: encrypted PKCS#8 (a file), plain PKCS#8 and traditional RSA (pipes).
pair der -algorithm RSA -pkeyopt rsa_keygen_bits:2048
openssl pkcs8 -topk8 -in "$T/der.key" -passin env:KEY_PASSWORD -v2 aes-256-cbc \
	-passout env:KEY_PASSWORD -outform DER -out "$T/der.p8" 2>/dev/null
run import --path "$T/der.crt" --key "$T/der.p8" --password-source env:KEY_PASSWORD
check "certificate + encrypted PKCS#8 DER key" [ "$rc" -eq 0 -a "$out" = "$(thumb "$T/der.crt")" ]
pair derplain -algorithm RSA -pkeyopt rsa_keygen_bits:2048
run import --path "$T/derplain.crt" --key <(plain derplain -outform DER)
check "certificate + plain PKCS#8 DER key through a pipe" \
	[ "$rc" -eq 0 -a "$out" = "$(thumb "$T/derplain.crt")" ]
pair trad -algorithm RSA -pkeyopt rsa_keygen_bits:2048
run import --path "$T/trad.crt" --key <(trad trad rsa -traditional -outform DER)
check "certificate + traditional RSA DER key through a pipe" \
	[ "$rc" -eq 0 -a "$out" = "$(thumb "$T/trad.crt")" ]
pair tradpem -algorithm RSA -pkeyopt rsa_keygen_bits:2048
openssl x509 -in "$T/tradpem.crt" -outform DER -out "$T/tradpem.der"
run import --path "$T/tradpem.der" --key <(trad tradpem rsa -traditional)
check "DER certificate + traditional RSA PEM key" [ "$rc" -eq 0 -a "$out" = "$(thumb "$T/tradpem.crt")" ]

# EC: P-256 plain PEM, P-384 encrypted PEM (refused up front on a token
# that cannot sign with EC).
pair ec256 -algorithm EC -pkeyopt ec_paramgen_curve:P-256
pair ec384 -algorithm EC -pkeyopt ec_paramgen_curve:P-384
if [ "$ec" = 1 ]; then
	run import --path "$T/ec256.crt" --key <(plain ec256)
	check "EC P-256 certificate + plain PEM key" [ "$rc" -eq 0 -a "$out" = "$(thumb "$T/ec256.crt")" ]
	check "the EC-P256 key is on the token" has_key "$(thumb "$T/ec256.crt")" EC-P256
	run import --path "$T/ec384.crt" --key "$T/ec384.key" --password-source env:KEY_PASSWORD
	check "EC P-384 certificate + encrypted PKCS#8 PEM key" \
		[ "$rc" -eq 0 -a "$out" = "$(thumb "$T/ec384.crt")" ]
	check "the EC-P384 key is on the token" has_key "$(thumb "$T/ec384.crt")" EC-P384
	run import --path "$T/ec384.crt" --key <(trad ec384 ec -outform DER)
	check "EC traditional DER key (already there: nothing new)" [ "$rc" -eq 0 ]
else
	refused_unchanged "EC P-256 key on a token that cannot sign with EC" 1 \
		"custody: import: token $(token_label) cannot sign with EC-P256 keys: it has no CKM_ECDSA for signing" \
		import --path "$T/ec256.crt" --key <(plain ec256)
fi

# A key that is not the certificate's: one line, nothing written.
pair other -algorithm RSA -pkeyopt rsa_keygen_bits:2048
refused_unchanged "a key that does not match the certificate" 1 \
	"custody: import: cannot use $T/enc.key: the private key does not match the certificate in $T/other.crt" \
	import --path "$T/other.crt" --key "$T/enc.key" --password-source env:KEY_PASSWORD
check "...in one line" [ "$(wc -l <<<"$err")" -eq 1 ]
if [ "$ec" = 1 ]; then
	refused_unchanged "an EC key for an RSA certificate" 1 \
		"custody: import: cannot use /dev/stdin: the private key does not match the certificate in $T/other.crt" \
		import --path "$T/other.crt" --key /dev/stdin < <(plain ec256)
fi

# What --key refuses: a certificate file that holds a key, a key file
# that holds a certificate or no key, --key without --path.
cat "$T/other.crt" "$T/other.key" >"$T/other.pem"
refused_unchanged "a certificate file that holds a private key too" 1 \
	"custody: import: cannot use $T/other.pem with a separate key file: it holds a private key itself" \
	import --path "$T/other.pem" --key "$T/other.key" --password-source env:KEY_PASSWORD
refused_unchanged "a key file that holds a certificate" 1 \
	"custody: import: cannot use $T/other.pem as the key file: it holds certificates (give them in the certificate file)" \
	import --path "$T/other.crt" --key "$T/other.pem" --password-source env:KEY_PASSWORD
refused_unchanged "a key file that holds no key" 1 \
	"custody: import: cannot read $T/rsa.crt: it holds no private key" \
	import --path "$T/other.crt" --key "$T/rsa.crt"
head -c 100 /dev/urandom >"$T/junk"
refused_unchanged "a key file that is neither PEM nor DER" 1 \
	"custody: import: cannot read $T/junk: not a PEM or DER private key" \
	import --path "$T/other.crt" --key "$T/junk"
refused_unchanged "--key without --path" 2 \
	"custody: import: --key FILE goes with --path FILE (the certificate)" \
	import --package "$T/rsa.crt" --key "$T/other.key"
refused_unchanged "--key to a missing file" 1 \
	"custody: import: cannot read $T/missing.key: No such file or directory" \
	import --path "$T/other.crt" --key "$T/missing.key"

# A repeated --path (or --key) is refused, not the last one taken.
refused_unchanged "a repeated --path" 2 \
	"custody: import: --path is given twice ('$T/other.crt', then '$T/rsa.crt'): import one certificate at a time" \
	import --path "$T/other.crt" --path "$T/rsa.crt"
refused_unchanged "a repeated --key" 2 \
	"custody: import: --key is given twice ('$T/other.key', then '$T/enc.key'): import one certificate at a time" \
	import --path "$T/other.crt" --key "$T/other.key" --key "$T/enc.key" --password-source env:KEY_PASSWORD

# A certificate alone whose key the token lacks: the hint names --key.
before=$(state)
run import --path "$T/other.crt"
check "a certificate alone, its key not on the token: exit 1, nothing written" \
	[ "$rc" -eq 1 -a -z "$out" -a "$(state)" = "$before" ]
check "...\"no private key with key id\"" grep -q '^custody: import: no private key with key id [0-9a-f]* on token' <<<"$err"
check "the hint names --key" grep -q '^hint: .*--key FILE' <<<"$err"

# --- metadata -o jwks|s2s, --format its alias.
run import --path "$T/rsa.crt" --key <(plain rsa) -t OAuthTokenIssuer
check "import --key -t OAuthTokenIssuer assigns it" [ "$rc" -eq 0 ]
run metadata
jwks=$out
check "metadata (default) is a JWK Set naming the certificate" \
	[ "$rc" -eq 0 -a "$(jq -r '.keys | length' <<<"$jwks")" = 1 ]
run metadata -o jwks
check "metadata -o jwks prints the same" [ "$rc" -eq 0 -a "$out" = "$jwks" ]
run metadata -o json
check "metadata -o json prints the same" [ "$rc" -eq 0 -a "$out" = "$jwks" ]
run metadata --format s2s
s2s=$out
check "metadata --format s2s is the server-to-server document" \
	[ "$rc" -eq 0 -a "$(jq -r '.keys[0].usage' <<<"$s2s")" = signing ]
run metadata -o s2s
check "metadata -o s2s prints what --format s2s prints" [ "$rc" -eq 0 -a "$out" = "$s2s" ]
run metadata --output s2s --format s2s
check "-o s2s with --format s2s agree" [ "$rc" -eq 0 -a "$out" = "$s2s" ]
run metadata -o json --format s2s
check "-o json with --format s2s: the s2s document" [ "$rc" -eq 0 -a "$out" = "$s2s" ]
run metadata -o s2s --format jwks
check "-o s2s with --format jwks disagree: exit 2, nothing printed" \
	[ "$rc" -eq 2 -a -z "$out" ] && grep -q "^custody: metadata: --format jwks and -o s2s disagree" <<<"$err"
run get -o s2s
check "get -o s2s does not apply: exit 2" \
	[ "$rc" -eq 2 ] && grep -q "^custody: get: output format s2s does not apply to get" <<<"$err"
run get -o xml
check "an unknown -o names the formats, jwks and s2s among them" \
	[ "$rc" -eq 2 ] && grep -q "unknown output format 'xml': use .*jwks or s2s" <<<"$err"

# --- node list and node enroll -o json, once there is a cluster.
if token_can cluster; then
	run kek create
	check "kek create makes this node the first member" [ "$rc" -eq 0 ]
	run kek authority
	authority=$out
	run node list -o json
	check "node list -o json: node1, joined" \
		jqt 'length == 1 and .[0].node == "node1" and .[0].state == "joined" and .[0].joined_at != null'
	softhsm_beside node2 "$CUSTODY_STORE"
	on node2 node enroll --authority "$authority" -o json
	check "node enroll -o json: {node, state enrolled, fingerprint}" \
		jqt '.node == "node2" and .state == "enrolled" and (.fingerprint | test("^([0-9A-F]{2}:){15}[0-9A-F]{2}$"))'
	check "...the fingerprint enroll narrated" \
		[ "$(jq -r .fingerprint <<<"$out")" = "$(enroll_fp)" ]
	run node list -o json
	check "node list -o json: node2 enrolled, not yet admitted" \
		jqt 'length == 2 and .[1].node == "node2" and .[1].state == "enrolled" and .[1].admitted_at == null'
	run node list
	check "node list (table): a block per node" [ "$(grep -c '^Node ' <<<"$out")" -eq 2 ]
fi

done_testing
