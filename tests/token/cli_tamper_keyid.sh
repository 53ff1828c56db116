#!/usr/bin/env bash
# The store can lie (a writer of the store who holds no PIN): the record of
# the OAuthTokenIssuer certificate is given the key id of the
# WebServicesInternal key.  custody checks every record against the
# certificate it holds before it uses its key id, and the record's
# integrity tag, made with the token's KEK, no longer holds: sign, jwt
# issue, jwt verify, metadata and the engine refuse with one line naming
# the record
# (and sign nothing); test and status report it; sync neither checks,
# destroys nor unwraps by it (with the package's key id changed too, sync
# once destroyed the WebServicesInternal key as its own debris).  The
# token and the store stay as they were; the record put back, all works.
#
# On a token that cannot be a cluster member (openCryptoki's software
# token: no AES key wrap) there is no cluster: `kek create` is refused in
# one line, and the store is one without a cluster, whose own KEK (made
# at its first write) tags its rows.  sync and status still check the
# global assignments' keys against this token, so every check stands but
# the package's key id: such a store keeps no packages.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token
db=$T/custody.db
q() { sqlite3 "$db" "$1"; }
not() { ! "$@"; }
verifies() { # CERT-PEM SIGNATURE FILE
	openssl dgst -sha256 -verify <(openssl x509 -pubkey -noout <<<"$1") -signature "$2" "$3" \
		>/dev/null 2>&1
}

make_p12 oauth oauth.custody.test 365
make_p12 wsi wsi.custody.test 365
if token_can cluster; then
	# A cluster of one node, so that sync and status have work to do.
	run kek create
	check "kek create" [ "$rc" -eq 0 ]
	run import --path "$T/oauth.p12" --replicable -t OAuthTokenIssuer
	check "import the OAuthTokenIssuer certificate (replicable)" [ "$rc" -eq 0 ]
else
	run kek create
	check "kek create: refused in one line, this token cannot be a cluster member" \
		[ "$rc" -eq 1 -a "$err" = "custody: kek: token $(token_label) cannot create the cluster KEK: it has no CKM_AES_KEY_WRAP_PAD for wrapping and unwrapping" ]
	check "…nothing on the token" [ "$(count_objects)" -eq 0 ]
	run import --path "$T/oauth.p12" -t OAuthTokenIssuer
	check "import the OAuthTokenIssuer certificate" [ "$rc" -eq 0 ]
fi
run import --path "$T/wsi.p12" -t WebServicesInternal
check "import the WebServicesInternal certificate" [ "$rc" -eq 0 ]
O=$(thumbprint_of_p12 oauth)
W=$(thumbprint_of_p12 wsi)
KO=$(q "SELECT key_id FROM certificates WHERE thumbprint='$O'")
KW=$(q "SELECT key_id FROM certificates WHERE thumbprint='$W'")
check "two certificates, two key ids" [ -n "$KO" -a -n "$KW" -a "$KO" != "$KW" ]
OPEM=$("$CUSTODY_BIN" get -t OAuthTokenIssuer -o pem)
WPEM=$("$CUSTODY_BIN" get -t WebServicesInternal -o pem)
echo "data to sign" >"$T/data"

run sign -t OAuthTokenIssuer --in "$T/data" --out "$T/good.sig"
check "before: sign -t OAuthTokenIssuer signs with its own key" verifies "$OPEM" "$T/good.sig" "$T/data"
run jwt issue -t OAuthTokenIssuer --claims '{"sub":"before"}'
jwt=$out
check "before: jwt issue exits 0" [ "$rc" -eq 0 -a -n "$jwt" ]
run sync
check "before: sync holds the key" [ "$rc" -eq 0 ]
run status
check "before: status is in line" [ "$rc" -eq 0 ]

# ---- the attack: the certificate's record names the other key
q "UPDATE certificates SET key_id='$KW' WHERE thumbprint='$O'"
# The record's integrity tag no longer holds: every command that reads it
# says so before it uses the key id.
line="the store's certificate record $O fails its integrity check: it was changed outside custody"
hint="hint: nothing was used; find who writes the store directly"
before=$(state)

run sign -t OAuthTokenIssuer --in "$T/data" --out "$T/bad.sig"
check "sign: exit 1" [ "$rc" -eq 1 ]
check "…one line naming the record, then the hint" \
	[ "$err" = "custody: sign: $line"$'\n'"$hint" ]
check "…and no signature" [ ! -e "$T/bad.sig" ]
"$CUSTODY_BIN" sign -t OAuthTokenIssuer --in "$T/data" >"$T/bad-stdout.sig" 2>/dev/null
check "…not on standard output either" [ ! -s "$T/bad-stdout.sig" ]

run jwt issue -t OAuthTokenIssuer --claims '{"sub":"after"}'
check "jwt issue: exit 1, no token" [ "$rc" -eq 1 -a -z "$out" ]
check "…the same line" [ "$(head -1 <<<"$err")" = "custody: jwt: $line" ]
run jwt verify -t OAuthTokenIssuer "$jwt"
check "jwt verify of a token made before: exit 1" [ "$rc" -eq 1 -a -z "$out" ]
check "…naming the record" [ "$(head -1 <<<"$err")" = "custody: jwt: $line" ]
run metadata -t OAuthTokenIssuer
check "metadata: exit 1, nothing published" [ "$rc" -eq 1 -a -z "$out" ]
check "…naming the record" [ "$(head -1 <<<"$err")" = "custody: metadata: $line" ]

run test -t OAuthTokenIssuer
check "test: exit 2 (CRITICAL)" [ "$rc" -eq 2 ]
check "…a CRITICAL line naming the record" grep -qxF "CRITICAL OAuthTokenIssuer/global: $line" <<<"$out"
check "…and no challenge signed with the key it names" not grep -q "signs and verifies\|does not match certificate" <<<"$out"
run test -t WebServicesInternal
check "test of the other type is not troubled: exit 0" [ "$rc" -eq 0 ]

run status
check "status: exit 1" [ "$rc" -eq 1 ]
check "…a line under the table" grep -qxF "(store) OAuthTokenIssuer/global current: $line" <<<"$out"
check "…and the error names it" [ "$(head -1 <<<"$err")" = "custody: status: OAuthTokenIssuer/global current: $line" ]
run status -o json
check "status -o json: store_faults names it, ok is false" \
	[ "$(python3 -c 'import json,sys; d=json.load(sys.stdin); f=d["store_faults"]; print(len(f), f[0]["type"], f[0]["slot"], f[0]["thumbprint"], f[0]["message"] == sys.argv[1], d["ok"])' "$line" <<<"$out")" = \
	"1 OAuthTokenIssuer current $O True False" ]

engines_dir=${TOP_BUILDDIR:-$(dirname "$CUSTODY_BIN")}/engines/.libs
if [ -f "$engines_dir/custody.so" ]; then
	openssl dgst -sha256 -binary "$T/data" >"$T/digest"
	eout=$(env -u OPENSSL_CONF OPENSSL_ENGINES="$engines_dir" openssl pkeyutl -engine custody \
		-keyform engine -inkey OAuthTokenIssuer -sign -in "$T/digest" -out "$T/engine.sig" 2>&1)
	erc=$?
	check "the engine: openssl pkeyutl fails" [ "$erc" -ne 0 ]
	check "…with the line" grep -qF "cannot load the private key of OAuthTokenIssuer: certificate $O, current for type OAuthTokenIssuer: $line" <<<"$eout"
	check "…and no signature" [ ! -s "$T/engine.sig" ]
else
	ok "# SKIP the engine is not built"
fi
check "all of this changed nothing on the token or in the store" [ "$(state)" = "$before" ]

# ---- sync: the package names the other key as well.  Without the check
# sync found "its" key failing the challenge, took it for the debris of an
# interrupted unwrap, and destroyed it: the WebServicesInternal key.
if token_can cluster; then
	q "UPDATE packages SET key_id='$KW' WHERE thumbprint='$O'"
else
	check "a store without a cluster keeps no package to change" \
		[ "$(q "SELECT count(*) FROM packages")" -eq 0 ]
fi
tok=$(token_state)
run sync
check "sync: exit 1" [ "$rc" -eq 1 ]
check "…refusing the key by the record" \
	grep -qxF "custody: sync: 1 of 1 keys are not held on this node: OAuthTokenIssuer current $O: $line" <<<"$err"
check "…nothing destroyed or unwrapped: the token is as it was" [ "$(token_state)" = "$tok" ]
run sign -t WebServicesInternal --in "$T/data" --out "$T/wsi.sig"
check "…the WebServicesInternal key still signs" verifies "$WPEM" "$T/wsi.sig" "$T/data"

# ---- the record put back: custody signs again, with the right key
q "UPDATE certificates SET key_id='$KO' WHERE thumbprint='$O'; UPDATE packages SET key_id='$KO' WHERE thumbprint='$O'"
run sign -t OAuthTokenIssuer --in "$T/data" --out "$T/again.sig"
check "the record put back: sign exits 0" [ "$rc" -eq 0 ]
check "…with the OAuthTokenIssuer key" verifies "$OPEM" "$T/again.sig" "$T/data"
run test -t OAuthTokenIssuer
check "…and test finds nothing CRITICAL" not grep -q "^CRITICAL" <<<"$out"

done_testing
