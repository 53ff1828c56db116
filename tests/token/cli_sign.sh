#!/usr/bin/env bash
# custody sign: raw signatures that openssl verifies with the current
# certificate (RSA PKCS#1 v1.5 and ECDSA DER), --digest, standard input and
# output, --out never overwrites, a roll and a set take effect, nothing
# assigned (exit 3), a key missing from this node's token (exit 1 naming
# the key id), usage errors (exit 2); signing changes nothing.  Default's
# keys are EC P-256; on a token that cannot sign with EC (openCryptoki
# 3.8.1) the import of an EC key is refused up front in one line, nothing
# written, and Default's keys are RSA-2048 there, for the same checks.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token

pub_of() { # TYPE [ARGS...] — the current certificate's public key, PEM
	"$CUSTODY_BIN" get -t "$@" -o pem | openssl x509 -pubkey -noout
}
# verifies DIGEST TYPE SIG FILE [GET-ARGS...] — openssl checks SIG of FILE
# with the public key of TYPE's current certificate.
verifies() {
	local dgst=$1 type=$2 sig=$3 file=$4
	shift 4
	openssl dgst "-$dgst" -verify <(pub_of "$type" "$@") -signature "$sig" "$file" >/dev/null 2>&1
}
not() { ! "$@"; }
key_id_of() { # TYPE — the current certificate's key id
	"$CUSTODY_BIN" get -t "$1" -o json |
		python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["current"]["key_id"])'
}

# refused WHAT MESSAGE ARGS... — what the token lacks is refused up front:
# exit 1, MESSAGE the one line on stderr, nothing on stdout, the token and
# the store as they were.
refused() { refused_up_front "$1" "$2" run "${@:3}"; }

# Default's keys (DK, DALG; named DKD in the checks): EC where the token
# signs with EC, else RSA.
if token_can ec-sign; then
	DK=EC DKD=EC DALG=EC-P256 dspec=ec:prime256v1
else
	DK=RSA DKD="RSA (Default's key)" DALG=RSA-2048 dspec=rsa:2048
fi
make_p12 r r.custody.test 30
make_p12 e e.custody.test 30 "$dspec"
make_p12 e2 e2.custody.test 30 "$dspec"
E2=$(thumbprint_of_p12 e2)
"$CUSTODY_BIN" -q import --path "$T/r.p12" -t OAuthTokenIssuer >/dev/null
if ! token_can ec-sign; then
	make_p12 ec ec.custody.test 30 ec:prime256v1
	refused "an EC P-256 key on a token that cannot sign with EC" \
		"custody: import: token test cannot sign with EC-P256 keys: it has no CKM_ECDSA for signing" \
		import --path "$T/ec.p12" -t Default
fi
"$CUSTODY_BIN" -q import --path "$T/e.p12" -t Default >/dev/null
# The token keeps one file per object (lib.sh): the files this import adds are E2's.
files=$(object_files)
"$CUSTODY_BIN" -q import --path "$T/e2.p12" >/dev/null
E2_files=$(comm -13 <(printf '%s\n' "$files") <(object_files))
head -c 100000 /dev/urandom >"$T/data"

# RSA, to a new file.
before=$(state)
run sign -t OAuthTokenIssuer --in "$T/data" --out "$T/rsa.sig"
check "RSA: exit 0" [ "$rc" -eq 0 ]
check "…nothing on stdout or stderr" [ -z "$out" -a -z "$err" ]
check "…a 256-byte signature" [ "$(stat -c %s "$T/rsa.sig")" -eq 256 ]
check "…in a new file, mode 0600 under umask 077" [ "$(stat -c %a "$T/rsa.sig")" = 600 ]
(umask 022 && "$CUSTODY_BIN" sign -t OAuthTokenIssuer --in "$T/data" --out "$T/rsa022.sig")
check "…and 0644 under umask 022 (a signature is public)" [ "$(stat -c %a "$T/rsa022.sig")" = 644 ]
check "…that openssl verifies with the current certificate (SHA-256)" \
	verifies sha256 OAuthTokenIssuer "$T/rsa.sig" "$T/data"
check "…and not for other data" not verifies sha256 OAuthTokenIssuer "$T/rsa.sig" "$T/user.pin"
check "…and is PKCS#1 v1.5 (deterministic: the same bytes again)" \
	cmp -s "$T/rsa.sig" <("$CUSTODY_BIN" sign -t oauthtokenissuer --in "$T/data")
check "signing changed nothing on the token or in the store" [ "$(state)" = "$before" ]

# Default (EC, or RSA on a token without EC), standard input to standard output.
"$CUSTODY_BIN" sign -t Default <"$T/data" >"$T/ec.sig" 2>"$T/stderr"
rc=$?
check "$DKD from stdin to stdout: exit 0" [ "$rc" -eq 0 ]
if [ "$DK" = EC ]; then
	check "…a DER ECDSA-Sig-Value" [ "$(head -c 1 "$T/ec.sig" | od -An -tx1 | tr -d ' ')" = 30 ]
else
	check "…a 256-byte signature" [ "$(stat -c %s "$T/ec.sig")" -eq 256 ]
fi
check "…that openssl verifies (SHA-256)" verifies sha256 Default "$T/ec.sig" "$T/data"

# --digest sha384 and sha512.
for d in sha384 sha512; do
	run sign -t Default --in "$T/data" --out "$T/ec.$d.sig" --digest "$d"
	check "$DKD --digest $d: exit 0" [ "$rc" -eq 0 ]
	check "…openssl verifies it with -$d" verifies "$d" Default "$T/ec.$d.sig" "$T/data"
	check "…and not with -sha256" not verifies sha256 Default "$T/ec.$d.sig" "$T/data"
	run sign -t OAuthTokenIssuer --in "$T/data" --out "$T/rsa.$d.sig" --digest "$d"
	check "RSA --digest $d verifies" verifies "$d" OAuthTokenIssuer "$T/rsa.$d.sig" "$T/data"
done

# An empty input is signed too.
: >"$T/empty"
run sign -t Default --in "$T/empty" --out "$T/empty.sig"
check "an empty file is signed: exit 0" [ "$rc" -eq 0 ]
check "…and verifies" verifies sha256 Default "$T/empty.sig" "$T/empty"

# --out never overwrites.
printf 'keep me' >"$T/existing"
run sign -t Default --in "$T/data" --out "$T/existing"
check "--out an existing file: exit 1" [ "$rc" -eq 1 ]
check "…saying it is never overwritten" \
	[ "$err" = "custody: sign: cannot create $T/existing: it exists (an existing file is never overwritten)" ]
check "…and the file is as it was" [ "$(cat "$T/existing")" = "keep me" ]
ln -s "$T/nowhere" "$T/dangling"
run sign -t Default --in "$T/data" --out "$T/dangling"
check "--out a dangling symbolic link: exit 1, nothing created" [ "$rc" -eq 1 -a ! -e "$T/nowhere" ]

# A set takes effect at the next signature; a roll at its instant (--at).
"$CUSTODY_BIN" -q set -t Default --thumbprint "$E2" 2>/dev/null
run sign -t Default --in "$T/data" --out "$T/ec2.sig"
check "after a set: exit 0" [ "$rc" -eq 0 ]
check "…signed by the new certificate" verifies sha256 Default "$T/ec2.sig" "$T/data"
run -v sign -t Default --in "$T/data" --out "$T/ec2v.sig"
check "-v names the certificate that signed" grep -q "^custody: signed with $E2 (key [0-9a-f]*, $DALG, Default/node1)$" <<<"$err"
"$CUSTODY_BIN" -q set -t OAuthTokenIssuer --thumbprint "$E2" --roll \
	--effective-date "$(date -u -d '+2 days' +%Y-%m-%dT%H:%M:%SZ)" 2>/dev/null
run sign -t OAuthTokenIssuer --in "$T/data" --out "$T/before-roll.sig"
check "before the roll's instant: the old RSA key signs" verifies sha256 OAuthTokenIssuer "$T/before-roll.sig" "$T/data"
at=$(date -u -d '+3 days' +%Y-%m-%d)
run sign -t OAuthTokenIssuer --at "$at" --in "$T/data" --out "$T/after-roll.sig"
check "--at after the roll's instant: exit 0" [ "$rc" -eq 0 ]
check "…the new $DK key signs" verifies sha256 OAuthTokenIssuer "$T/after-roll.sig" "$T/data" --at "$at"
check "…which is not the old key" not verifies sha256 OAuthTokenIssuer "$T/after-roll.sig" "$T/data"

# Nothing assigned: exit 3, nothing read, nothing written.
run sign -t WebServicesExternal --in "$T/data" --out "$T/none.sig"
check "a type with nothing assigned: exit 3" [ "$rc" -eq 3 ]
check "…saying so" [ "$err" = "custody: sign: no certificate is assigned for type WebServicesExternal (identity global)" ]
check "…and no signature file" [ ! -e "$T/none.sig" ]
run sign -t Default -i node2 --in "$T/data"
check "-i an identity with nothing assigned: exit 3" [ "$rc" -eq 3 ]
check "…naming it" grep -q "(identity node2)" <<<"$err"
run sign -t NoSuchType </dev/null
check "an unknown type: exit 3" [ "$rc" -eq 3 ]

# A key missing from this node's token: E2's objects set aside (their
# files moved out of the token), as on a node whose token lacks them.  (A
# second token cannot stand in: it holds no KEK to check the store's rows.)
KE=$(key_id_of Default)
check "E2's import added its objects" [ -n "$E2_files" ]
set_aside "$E2_files"
run sign -t Default --in "$T/data" --out "$T/other.sig"
check "the key is not on this node's token: exit 1" [ "$rc" -eq 1 ]
check "…naming the key id" grep -qx "custody: sign: no private key with key id $KE on token test" <<<"$err"
check "…with a hint naming the certificate" grep -q "^hint: certificate $E2 is current for Default" <<<"$err"
check "…and no signature file" [ ! -e "$T/other.sig" ]
put_back "$E2_files"
run sign -t Default --in "$T/data" --out "$T/back.sig"
check "E2's objects back: sign exits 0" [ "$rc" -eq 0 ]

# Usage errors: exit 2.
run sign --in "$T/data"
check "no -t: exit 2" [ "$rc" -eq 2 ]
run sign -t Default --digest md5 --in "$T/data"
check "--digest md5: exit 2" [ "$rc" -eq 2 ]
check "…naming the accepted digests" grep -q "unknown digest 'md5': use sha256, sha384 or sha512" <<<"$err"
run sign -t 'bad type!' --in "$T/data"
check "a malformed type name: exit 2" [ "$rc" -eq 2 ]
run sign -t Default -o json --in "$T/data"
check "-o json: exit 2" [ "$rc" -eq 2 ]
run sign -t Default --in "$T/no-such-file"
check "an input that cannot be read: exit 1" [ "$rc" -eq 1 ]
check "…naming it" grep -q "cannot open $T/no-such-file: No such file or directory" <<<"$err"
run sign --help
check "--help: exit 0" [ "$rc" -eq 0 ]
check "…with the synopsis" grep -q "^custody sign -t TYPE " <<<"$out"

# The PIN comes from its source only, and a wrong one is refused once.
printf '%s' 99999999 >"$T/wrong.pin"
run sign -t Default --pin-source "file:$T/wrong.pin" --in "$T/data"
check "a PIN the token refuses: exit 1" [ "$rc" -eq 1 ]
check "…saying so" grep -q "rejected the PIN" <<<"$err"

done_testing
