#!/usr/bin/env bash
# custody delete: a renewal on the same key (certificate B imported alone
# onto the key of A) keeps the key when A goes; the key goes with the last
# certificate that uses it; refusals (A assigned; the key of an assigned
# certificate); --force; --dry-run changes nothing; one audit entry per
# object destroyed; a token that refuses C_DestroyObject changes nothing.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" <<<"$out"; }
tp_of_pem() { openssl x509 -noout -fingerprint -sha1 | sed 's/.*=//; s/://g'; }
not() { ! "$@"; }

# One key K (in a shell variable only), two certificates on it: renA.p12
# (certificate A + K) and renB.crt (certificate B alone, a renewal).
key=$(openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null)
certA=$(openssl req -x509 -key <(printf '%s\n' "$key") -subj "/O=custody test/CN=ren.custody.test" \
	-addext "subjectAltName=DNS:ren.custody.test" -days 365 2>/dev/null)
openssl pkcs12 -export -inkey <(printf '%s\n' "$key") -in <(printf '%s\n' "$certA") \
	-name ren.custody.test -passout pass: -out "$T/renA.p12"
openssl req -x509 -key <(printf '%s\n' "$key") -subj "/O=custody test/CN=ren.custody.test" \
	-addext "subjectAltName=DNS:ren.custody.test" -days 400 -out "$T/renB.crt" 2>/dev/null
unset key
A=$(tp_of_pem <<<"$certA")
B=$(tp_of_pem <"$T/renB.crt")
check "A and B are two certificates" [ -n "$A" ] && [ "$A" != "$B" ]
make_p12 solo solo.custody.test 365
S=$(thumbprint_of_p12 solo)

run import --path "$T/renA.p12"
check "import renA.pfx (A + key K)" [ "$rc" -eq 0 ]
n_ab=$(count_objects)
files_ab=$(object_files)
run import --path "$T/renB.crt"
check "import renB.crt (B alone, on the key already there)" [ "$rc" -eq 0 ]
check "…adds one object, the certificate" [ "$(count_objects)" -eq $((n_ab + 1)) ]
# The token keeps one file per object (lib.sh): the new one is B's certificate object.
B_file=$(comm -13 <(printf '%s\n' "$files_ab") <(object_files))
check "…one new object file, B's certificate" [ "$(grep -c . <<<"$B_file")" -eq 1 ]
run list -o json
K=$(py "print([c['key_id'] for c in d if c['thumbprint'] == '$A'][0])")
check "B has A's key id" [ "$(py "print([c['key_id'] for c in d if c['thumbprint'] == '$B'][0])")" = "$K" ]
run import --path "$T/solo.p12"
run set -t WebServicesInternal --thumbprint "$B"
check "B is current WebServicesInternal" [ "$rc" -eq 0 ]

# --- --dry-run: says what would go, changes nothing ---
before=$(state)
run delete --thumbprint "$A" --dry-run
check "delete A --dry-run exits 0" [ "$rc" -eq 0 ]
check "…would destroy A's certificate" grep -q "would destroy certificate $A (key id $K)" <<<"$err"
check "…says the key stays, used by B" grep -q "its key (key id $K) stays: $B uses it" <<<"$err"
check "…would destroy no key" not grep -q "would destroy private key" <<<"$err"
check "…token and store unchanged" [ "$(state)" = "$before" ]

# --- the renewal: A goes, its key stays for B ---
n=$(count_objects)
run delete --thumbprint "$A"
check "delete A (B on the same key assigned) exits 0" [ "$rc" -eq 0 ]
check "…saying the key stays" \
	grep -qx "removed certificate $A; its key (key id $K) stays: $B uses it" <<<"$err"
check "…one object went: A's certificate" [ "$(count_objects)" -eq $((n - 1)) ]
run list -o json
check "list: A is gone" [ "$(py "print(sum(c['thumbprint'] == '$A' for c in d))")" = 0 ]
check "list: B keeps its private key and its assignment" \
	[ "$(py "c=[c for c in d if c['thumbprint'] == '$B'][0]; print(c['has_private_key'], c['assigned_as'])")" = \
	"True ['WebServicesInternal/node1:current']" ]
run test -t WebServicesInternal
check "custody test -t WebServicesInternal is OK" [ "$rc" -eq 0 ]
echo "data to sign" >"$T/data"
run sign -t WebServicesInternal --in "$T/data" --out "$T/b.sig"
check "B still signs" [ "$rc" -eq 0 ]
check "…verified with B's public key" \
	openssl dgst -sha256 -verify <(openssl x509 -pubkey -noout -in "$T/renB.crt") \
	-signature "$T/b.sig" "$T/data"
run audit -o json
check "audit: one delete entry, A's certificate object" \
	[ "$(py "print([(e['thumbprint'], e['detail'].split(',')[0]) for e in d if e['action'] == 'delete'])")" = \
	"[('$A', 'certificate object')]" ]
check "…which says the key stays" \
	[ "$(py "print([e['detail'] for e in d if e['action'] == 'delete'][0].endswith('the key stays: $B uses it'))")" = True ]

# --- A assigned: refused without --force; --force clears A, the key stays ---
run import --path "$T/renA.p12"
check "re-import A: its certificate comes back on key K" [ "$rc" -eq 0 ]
run set -t WebServicesInternal --thumbprint "$A"
before=$(state)
run delete --thumbprint "$A"
check "delete of an assigned A is refused (exit 1)" [ "$rc" -eq 1 ]
check "…naming the assignment" \
	grep -q "custody: delete: certificate $A is assigned as WebServicesInternal/node1:current" <<<"$err"
check "…nothing changed" [ "$(state)" = "$before" ]
run delete --thumbprint "$A" --force --dry-run
check "delete --force --dry-run exits 0" [ "$rc" -eq 0 ]
check "…would clear A's slot" grep -q "would clear WebServicesInternal/node1" <<<"$err"
check "…nothing changed" [ "$(state)" = "$before" ]
n=$(count_objects)
run delete --thumbprint "$A" --force -o json
check "delete --force of an assigned A exits 0" [ "$rc" -eq 0 ]
check "…clears A's slot and keeps the key for B" \
	grep -qx "removed certificate $A; its key (key id $K) stays: $B uses it; its assignments were cleared" <<<"$err"
check "…one object went" [ "$(count_objects)" -eq $((n - 1)) ]
check "…-o json: what went (dry_run false): the certificate, and A's slot cleared" \
	[ "$(py 'print(d["command"], d["dry_run"], [o["object"] for o in d["deleted"]], [(c["slot"], c["old_thumbprint"], c["new_thumbprint"]) for c in d["changes"] if c["old_thumbprint"] == "'"$A"'"])')" = "delete False ['certificate'] [('current', '$A', None)]" ]
run get -t WebServicesInternal -o json
check "…B stays previous, nothing current" \
	[ "$(py 'print(d[0]["current"], d[0]["previous"]["thumbprint"])')" = "None $B" ]

# --- the key of an assigned certificate never goes, even with --force ---
# The token holds A (and K) alone: B's certificate object is set aside
# (its object file moved out, as on a token restored from a backup older
# than B), while the store still says B, on K, is assigned.  Deleting A
# would take K, which B's assignment uses.
run import --path "$T/renA.p12"
run set -t WebServicesInternal --thumbprint "$B"
check "B is current again" [ "$rc" -eq 0 ]
set_aside "$B_file"
run list -o json
check "the token holds A, not B" \
	[ "$(py "print(sorted(c['thumbprint'] for c in d if c['key_id'] == '$K'))")" = "['$A']" ]
before=$(state)
for force in "" --force; do
	run delete --thumbprint "$A" $force
	check "delete A ${force:-without --force} where K would go but B (on K) is assigned: exit 1" [ "$rc" -eq 1 ]
	check "…naming B's assignment" \
		grep -q "custody: delete: the key of certificate $A (key id $K) is in use: certificate $B on the same key is assigned as WebServicesInternal/node1:current" <<<"$err"
	check "…nothing changed" [ "$(state)" = "$before" ]
done
put_back "$B_file"
run list -o json
check "B's certificate object back: A and B on K" \
	[ "$(py "print(sorted(c['thumbprint'] for c in d if c['key_id'] == '$K'))")" = "$(python3 -c "print(sorted(['$A', '$B']))")" ]

# --- the last certificate on a key: every object goes, one audit entry each ---
run delete --thumbprint "$S" --dry-run
KS=$(sed -n 's/.*would destroy certificate [0-9A-F]* (key id \([0-9a-f]*\)).*/\1/p' <<<"$err")
check "solo --dry-run lists the certificate, the public and the private key" \
	[ "$(grep -c "would destroy \(certificate $S\|public key\|private key\) (key id $KS)" <<<"$err")" -eq 3 ]
n=$(count_objects)
run delete --thumbprint "$S"
check "delete solo exits 0" [ "$rc" -eq 0 ]
check "…destroys the certificate and its key" \
	grep -q "destroyed certificate $S and its key (key id $KS)" <<<"$err"
check "…three objects went" [ "$(count_objects)" -eq $((n - 3)) ]
run audit -o json
check "audit: certificate object, public key, private key of solo" \
	[ "$(py "print([e['detail'].split(',')[0] for e in d if e['action'] == 'delete' and e['thumbprint'] == '$S'])")" = \
	"['certificate object', 'public key', 'private key']" ]
check "…each with the key id" \
	[ "$(py "print(all('key id $KS' in e['detail'] for e in d if e['action'] == 'delete' and e['thumbprint'] == '$S'))")" = True ]
run audit --verify
check "the audit log verifies" [ "$rc" -eq 0 ]

# --- a token that refuses C_DestroyObject: exit 1 naming the object, nothing changed ---
SHIM=${TOP_BUILDDIR:-}/tests/fault/.libs/p11shim.so
if [ -f "$SHIM" ]; then
	make_p12 solo2 solo2.custody.test 365
	S2=$(thumbprint_of_p12 solo2)
	"$CUSTODY_BIN" -q import --path "$T/solo2.p12" >/dev/null
	before=$(state)
	# Which C_DestroyObject call destroys the certificate object: the
	# store's writes come first, and each integrity tag they make destroys
	# the session key it wrapped (the call right after C_WrapKey).  A
	# rehearsal on a copy of the token and the store traces the calls; the
	# first C_DestroyObject that does not follow a C_WrapKey is the one.
	cert_destroy_at() { # THUMBPRINT
		rehearse env FAULT_TARGET="$CUSTODY_MODULE" FAULT_FUNC=C_DestroyObject \
			FAULT_TRACE="$T/rehearsal/trace" CUSTODY_MODULE="$SHIM" \
			"$CUSTODY_BIN" -q delete --thumbprint "$1" >/dev/null 2>&1 &&
			awk '$2 == "C_DestroyObject" && prev != "C_WrapKey" { print $1; exit } { prev = $2 }' \
				"$T/rehearsal/trace"
		rm -rf "$T/rehearsal"
	}
	for victim in "$S2" "$A"; do
		at=$(cert_destroy_at "$victim")
		check "the rehearsal of deleting $victim finds its certificate object's C_DestroyObject" \
			grep -qx '[1-9][0-9]*' <<<"$at"
		out=$(FAULT_TARGET=$CUSTODY_MODULE FAULT_FUNC=C_DestroyObject FAULT_AT=$at \
			CUSTODY_MODULE=$SHIM "$CUSTODY_BIN" delete --thumbprint "$victim" 2>"$T/stderr")
		rc=$?
		err=$(cat "$T/stderr")
		check "C_DestroyObject refused deleting $victim: exit 1" [ "$rc" -eq 1 ]
		check "…naming the certificate object" \
			grep -q "custody: delete: certificate $victim: cannot destroy the certificate object (key id [0-9a-f]*) on token test" <<<"$err"
		check "…nothing changed" [ "$(state)" = "$before" ]
	done
else
	ok "# SKIP the fault shim is not built"
fi

# --- usage ---
run delete --thumbprint "$B" --frobnicate
check "an unknown option: exit 2" [ "$rc" -eq 2 ]
run delete --dry-run
check "no --thumbprint: exit 2" [ "$rc" -eq 2 ]

done_testing
