#!/usr/bin/env bash
# The store can lie (a writer of the store who holds no PIN): a key
# deleted with `custody delete --force` must not come back when its rows
# are put back.  delete takes the key package (the private key wrapped
# under the cluster KEK) out of the store with the certificate's record,
# in the same transaction, with an audit entry; put back the certificate
# and its assignment, sync has nothing to unwrap; put back a copy of the
# package too, sync refuses it, since the audit log says the certificate
# was deleted.  Neither token changes.  A real import of the certificate
# afterwards brings it back as usual.  Two nodes (SoftHSM tokens node1 and
# node2 in one token directory) on one SQLite store.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"

setup_tokens node1 node2
db=$T/custody.db

on() { # NODE ARGS... — custody as NODE, on NODE's token
	local node=$1
	shift
	CUSTODY_TOKEN=$node CUSTODY_NODE=$node run "$@"
}
q() { sqlite3 "$db" "$1"; }
# rows TABLE WHERE — the rows as INSERT statements, as a store writer
# would keep a copy of them.
rows() { sqlite3 "$db" ".mode insert $1" "SELECT * FROM $1 WHERE $2"; }
# records — the store's certificates, assignments and packages (what sync
# must not change; it writes its reports and an audit entry).
records() {
	for t in certificates assignments packages; do sqlite3 "$db" ".dump $t"; done | sha256sum
}

on node1 kek create
check "kek create on node1" [ "$rc" -eq 0 ]
kcv=$out
on node1 kek authority
on node2 node enroll --authority "$out"
on node1 node admit node2 --fingerprint "$(enroll_fp)" --so-pin-source "file:$T/so.pin"
on node2 node join
check "node2 joins the cluster" [ "$rc" -eq 0 -a "$out" = "$kcv" ]

make_p12 issuer oauth.custody.test 365
on node1 import --path "$T/issuer.p12" --replicable -t OAuthTokenIssuer
O=$out
check "import --replicable of the OAuthTokenIssuer key on node1" [ "$rc" -eq 0 -a ${#O} -eq 40 ]
K=$(q "SELECT key_id FROM certificates WHERE thumbprint='$O'")
check "…its package is in the store" [ "$(q "SELECT count(*) FROM packages WHERE thumbprint='$O'")" -eq 1 ]
# The store writer keeps a copy of the rows now.
cert_rows=$(rows certificates "thumbprint='$O'")
assignment_rows=$(rows assignments "type='OAuthTokenIssuer'")
package_rows=$(rows packages "thumbprint='$O'")

# ---- delete takes the package with it
before=$(state)
on node1 delete --thumbprint "$O" --force --dry-run
check "delete --dry-run says the package would go" \
	grep -qF "  would delete its key package (key id $K, wrapped under KEK $kcv on node node1) in the store" <<<"$err"
check "…and changes nothing" [ "$(state)" = "$before" ]
on node1 delete --thumbprint "$O" --force
check "delete --force exits 0" [ "$rc" -eq 0 ]
check "…saying the package went" \
	grep -qx "destroyed certificate $O and its key (key id $K) on token node1; its assignments were cleared; its key package was deleted from the store" <<<"$err"
check "…no package is left in the store" [ "$(q "SELECT count(*) FROM packages")" -eq 0 ]
check "…and the audit log says so" \
	[ "$(q "SELECT count(*) FROM audit WHERE action='delete' AND thumbprint='$O' AND detail='key package (key id $K, wrapped under KEK $kcv on node node1) in the store'")" -eq 1 ]
run audit --verify
check "…in a log whose chain holds" [ "$rc" -eq 0 ]
# The operator's backup of the assignment as delete left it (tagged).
backup_rows=$(rows assignments "type='OAuthTokenIssuer'")

# ---- the attack: the certificate and its assignment put back
sqlite3 "$db" "$cert_rows" "$assignment_rows"
run get -t OAuthTokenIssuer -o thumbprint
check "the rows are back: the store assigns it again" [ "$out" = "$O" ]
# refused WHAT WHY-ERE — on each node, sync exits 1 with one line saying
# why the key is not held, and the node cannot sign with it; neither token
# changes, nor what the store holds (sync only writes its reports).
refused() {
	local n tokens recs
	tokens=$(token_state)
	recs=$(records)
	for n in node1 node2; do
		on "$n" sync
		check "$1: sync on $n exits 1" [ "$rc" -eq 1 ]
		check "…one line: $1" grep -qE "^custody: sync: $2$" <<<"$err"
		on "$n" sign -t OAuthTokenIssuer --in "$T/data" --out "$T/$n.sig"
		check "…$n cannot sign with it" [ "$rc" -eq 1 -a ! -e "$T/$n.sig" ]
	done
	check "…neither token changed" [ "$(token_state)" = "$tokens" ]
	check "…nor the certificates, assignments and packages of the store" [ "$(records)" = "$recs" ]
}
echo data >"$T/data"
# The rows put back carry no tag that holds (delete --force cleared the
# assignment, and its tag went with the row or no longer matches it):
# sync refuses the row itself.  (An extended regular expression.)
tampered="the store's assignment record oauthtokenissuer/global (fails its integrity check: it was changed|carries no integrity tag: it was written) outside custody"
refused "the assignment put back fails its integrity check" "$tampered"

# ---- and a copy of the package put back as well
sqlite3 "$db" "$package_rows"
seq=$(q "SELECT max(seq) FROM audit WHERE action='delete' AND thumbprint='$O'")
refused "with the package put back too, the assignment still fails its integrity check" "$tampered"

# ---- the way back: the forged assignment is not built on, even by a
# real import; restored from the backup, import it again (the audit log
# says it came back)
recs=$(records)
on node1 import --path "$T/issuer.p12" --replicable -t OAuthTokenIssuer
check "import -t onto the forged assignment: exit 1" [ "$rc" -eq 1 ]
check "…saying the row fails its integrity check" grep -qxE "custody: import: $tampered" <<<"$err"
check "…and the store's records unchanged" [ "$(records)" = "$recs" ]
sqlite3 "$db" "DELETE FROM assignments WHERE type='OAuthTokenIssuer'" "$backup_rows"
on node1 import --path "$T/issuer.p12" --replicable -t OAuthTokenIssuer
check "a real import of the certificate on node1" [ "$rc" -eq 0 -a "$out" = "$O" ]
on node2 sync
check "…and node2's sync exits 0" [ "$rc" -eq 0 ]
check "…having unwrapped the key" grep -q "^OAuthTokenIssuer *current *$O unwrapped$" <<<"$out"
on node2 sign -t OAuthTokenIssuer --in "$T/data" --out "$T/back.sig"
check "…and node2 signs with it" openssl dgst -sha256 -verify \
	<(openssl pkcs12 -in "$T/issuer.p12" -passin pass: -nokeys -clcerts 2>/dev/null | openssl x509 -pubkey -noout) \
	-signature "$T/back.sig" -out /dev/null "$T/data"

done_testing
