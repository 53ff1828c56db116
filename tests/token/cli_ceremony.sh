#!/usr/bin/env bash
# The cluster key ceremony and replication through the custody command, on
# three SoftHSM tokens (node1, node2, node3) in one token directory and one
# SQLite store: kek create, node enroll / admit / join (the SO PIN from a
# file, never argv), replicable imports and requests packaged into the
# store, sync, bad packages refused while the rest carries on, seal,
# export / import --package, and a scan for private key bytes.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"

setup_tokens node1 node2 node3
db=$T/custody.db

# on NODE ARGS... — custody as NODE, on NODE's token.
on() {
	local node=$1
	shift
	CUSTODY_TOKEN=$node CUSTODY_NODE=$node run "$@"
}
q() { sqlite3 "$db" "$1"; }
py_store() { python3 - "$db" "$@"; }

# ---------------------------------------------------------------- ceremony
on node1 kek create
kcv=$out
check "kek create exits 0 and prints a 6-digit key check value" \
	bash -c '[ '"$rc"' -eq 0 ] && [[ "'"$kcv"'" =~ ^[0-9A-F]{6}$ ]]'
check "kek create narrates its steps" grep -q "step 1/3: creating the cluster KEK" <<<"$err"
check "…and the key check value it made" grep -q "key check value $kcv" <<<"$err"
check "…and the cluster authority beside it" grep -q "step 2/3: creating the cluster authority key" <<<"$err"
create_err=$err
check "the store records the KEK's key check value" [ "$(q "SELECT value FROM cluster_meta WHERE name='kek_kcv'")" = "$kcv" ]
check "…and the authority's public key (an EC P-256 SPKI)" \
	[ "$(q "SELECT length(value) FROM cluster_meta WHERE name='authority_spki'")" -eq 182 ]
on node1 kek authority
authority=$out
check "kek authority prints the authority's fingerprint" \
	bash -c '[ '"$rc"' -eq 0 ] && [[ "'"$authority"'" =~ ^([0-9A-F]{2}:){15}[0-9A-F]{2}$ ]]'
check "…the one kek create narrated" grep -q "cluster authority fingerprint $authority" <<<"$create_err"
check "…and says its key is on this token" grep -q "its private key is on this token" <<<"$err"
on node1 kek authority -o json
check "kek authority -o json: the fingerprint, held here" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d == {"authority_fingerprint": sys.argv[2], "held_here": True}, d' "$out" "$authority"
check "node1 is the first member" [ "$(q "SELECT state FROM nodes WHERE name='node1'")" = joined ]
before=$(state)
on node2 kek create
check "a second kek create is refused (exit 1)" [ "$rc" -eq 1 ]
check "…saying the cluster has one" grep -q "already has one (key check value $kcv, made on node node1)" <<<"$err"
check "…and nothing changed" [ "$(state)" = "$before" ]

before=$(state)
on node2 node enroll
check "enroll without a confirmed authority is a usage error (exit 2)" [ "$rc" -eq 2 ]
check "…naming the store's authority" grep -q "confirm the cluster authority's fingerprint first (the store says $authority)" <<<"$err"
check "…and nothing changed" [ "$(state)" = "$before" ]
on node2 node enroll --authority "00:${authority:3}"
check "enroll with another fingerprint is refused (exit 1)" [ "$rc" -eq 1 ]
check "…saying so" grep -q "the store's cluster authority is $authority, not the" <<<"$err"
check "…and nothing changed" [ "$(state)" = "$before" ]
on node2 node enroll --authority "sha256:$(tr -d : <<<"${authority,,}")"
check "node2 enrolls (the fingerprint in any case, with or without colons)" [ "$rc" -eq 0 -a "$out" = node2 ]
check "…pinning the authority on its token" grep -q "pinning the cluster authority $authority on token node2" <<<"$err"
fp2=$(sed -n 's/.*SHA-256 fingerprint \([0-9A-F:]*\).*/\1/p' <<<"$err" | head -1)
check "enroll prints the transport key's fingerprint" [ ${#fp2} -eq 47 ]
on node3 node enroll --authority "$authority"
check "node3 enrolls" [ "$rc" -eq 0 ]
fp3=$(enroll_fp)
check "both are enrolled, with their transport public keys" \
	[ "$(q "SELECT count(*) FROM nodes WHERE state='enrolled' AND length(transport_spki) > 400")" -eq 2 ]

before=$(state)
on node2 node join
check "a node not admitted cannot join (exit 1)" [ "$rc" -eq 1 ]
check "…saying it is not admitted" grep -q "node node2 is not admitted" <<<"$err"
check "…and nothing changed" [ "$(state)" = "$before" ]

on node1 node admit node2
check "node admit without an SO PIN source exits 1" [ "$rc" -eq 1 ]
check "…saying it needs the security officer's PIN" grep -q "no security officer PIN source" <<<"$err"
check "…and nothing changed" [ "$(state)" = "$before" ]
printf '%s' 99999999 >"$T/wrong.pin"
[ "$(cat "$T/so.pin")" != 99999999 ] || printf '%s' 11111111 >"$T/wrong.pin"
on node1 node admit node2 --fingerprint "$fp2" --so-pin-source "file:$T/wrong.pin"
check "node admit with a wrong SO PIN exits 1" [ "$rc" -eq 1 ]
check "…saying the token rejected it" grep -q "as security officer: the token rejected the PIN" <<<"$err"
check "…and nothing changed" [ "$(state)" = "$before" ]
on node1 node admit node4 --so-pin-source "file:$T/so.pin"
check "a node that never enrolled cannot be admitted" bash -c '[ '"$rc"' -eq 1 ] && grep -q "node node4: it has not enrolled" <<<"$0"' "$err"

on node1 node admit node2 --so-pin-source "file:$T/so.pin"
check "admit without a confirmed fingerprint is a usage error (exit 2)" [ "$rc" -eq 2 ]
check "…naming the store's" grep -q "confirm its transport key's fingerprint first (the store says $fp2)" <<<"$err"
check "…and nothing changed" [ "$(state)" = "$before" ]
on node1 node admit node2 --fingerprint "$fp3" --so-pin-source "file:$T/so.pin"
check "admit with another node's fingerprint is refused (exit 1)" [ "$rc" -eq 1 ]
check "…saying so" grep -q "has fingerprint $fp2, not the $fp3 you confirmed: nothing written" <<<"$err"
check "…and nothing changed" [ "$(state)" = "$before" ]
on node1 node admit node2 --fingerprint "$fp2" --so-pin-source "file:$T/so.pin"
check "the security officer admits node2" [ "$rc" -eq 0 -a "$out" = node2 ]
check "admit shows the fingerprint enroll printed" grep -q "fingerprint $fp2" <<<"$err"
check "admit narrates the SO step, the wrap and the signature" \
	bash -c 'grep -q "security officer: making the transport key of node node2 a trusted wrapping key on token node1 (serial [0-9a-f]*), for this session only" <<<"$0" && grep -q "wrapping the KEK on token node1 for node node2" <<<"$0" && grep -q "step 2/3: the cluster authority ($1) signs the admission" <<<"$0"' "$err" "$authority"
on node1 node admit node3 --fingerprint "$fp3" --so-pin-source "file:$T/so.pin"
check "the security officer admits node3" [ "$rc" -eq 0 ]
check "the store holds the KEK wrapped for both" \
	[ "$(q "SELECT count(*) FROM nodes WHERE state='admitted' AND length(kek_wrap) = 384 AND admitted_by='node1'")" -eq 2 ]

on node2 node join
check "node2 joins, and prints the cluster's key check value" [ "$rc" -eq 0 -a "$out" = "$kcv" ]
check "…destroying its transport key" grep -q "destroyed the transport key pair of node node2" <<<"$err"
on node3 node join
check "node3 joins with the same key check value" [ "$rc" -eq 0 -a "$out" = "$kcv" ]
check "every node is a member, and no wrapped KEK is left in the store" \
	[ "$(q "SELECT count(*) FROM nodes WHERE state='joined' AND kek_wrap IS NULL")" -eq 3 ]
on node3 node join
check "joining again changes nothing" bash -c '[ '"$rc"' -eq 0 ] && grep -q "already joined" <<<"$0"' "$err"

# ---------------------------------------------------------------- packaging
make_p12 plain plain.custody.test 30
make_p12 issuer oauth.custody.test 30 rsa:2048
before=$(state)
on node1 import --path "$T/plain.p12" -t OAuthTokenIssuer -i global
check "a key that is not replicable cannot be assigned at global in a cluster of 3 (exit 1)" [ "$rc" -eq 1 ]
check "…and the reason is given" grep -q "the cluster has 3 nodes and its key is not replicable" <<<"$err"
check "…and nothing changed" [ "$(state)" = "$before" ]
on node1 import --path "$T/plain.p12" -t Default -i node1
check "…while it can be assigned at the node's own identity" [ "$rc" -eq 0 ]

on node1 import --path "$T/issuer.p12" --replicable -t OAuthTokenIssuer -i global
issuer=$out
check "import --replicable of an RSA key at global exits 0" [ "$rc" -eq 0 -a ${#issuer} -eq 40 ]
check "…and its package is in the store under the KEK" \
	[ "$(q "SELECT count(*) FROM packages WHERE thumbprint='$issuer' AND kcv='$kcv' AND node='node1' AND length(wrapped) > 1000")" -eq 1 ]
on node1 request --subject CN=ec.custody.test --key ec:p256 --replicable --self-signed --days 30 -t Default -i global
ec=$out
check "request --replicable of an EC key at global exits 0" [ "$rc" -eq 0 -a ${#ec} -eq 40 ]
check "…and its package is in the store" [ "$(q "SELECT count(*) FROM packages WHERE thumbprint='$ec' AND kcv='$kcv'")" -eq 1 ]
# The node that imported and generated the keys holds them: it is in line
# at once, without a sync of its own; the others are not.
on node1 status -o json
node_state() { # NODE — "stale differs detail" of NODE in $out
	python3 -c '
import json, sys
for n in json.load(sys.stdin)["nodes"]:
    if n["node"] == sys.argv[1]:
        print(n["stale"], n["differs"], n["detail"])' "$1" <<<"$out"
}
check "status: node1, which imported and generated the keys, is in line ($(node_state node1))" \
	grep -q '^False False holds all' <<<"$(node_state node1)"
check "…node2, which has not synced, is stale ($(node_state node2))" grep -q '^True ' <<<"$(node_state node2)"
check "…and node1 reports both keys held, as imported and generated" \
	[ "$(q "SELECT group_concat(detail, ',') FROM (SELECT detail FROM node_reports WHERE node='node1' AND thumbprint IN ('$issuer', '$ec') AND held = 1 ORDER BY detail)")" = "generated,imported" ]

# ---------------------------------------------------------------- sync
on node2 sync
check "sync on node2 exits 0" [ "$rc" -eq 0 ]
check "…and unwraps both keys" [ "$(grep -c ' unwrapped$' <<<"$out")" -eq 2 ]
echo "payload for node2" >"$T/data"
on node2 sign -t OAuthTokenIssuer --in "$T/data" --out "$T/sig2"
check "node2 signs with the replicated RSA key" [ "$rc" -eq 0 ]
on node2 get -t OAuthTokenIssuer -o pem
printf '%s\n' "$out" >"$T/issuer.pem"
check "…and the signature verifies with the certificate" \
	bash -c "openssl x509 -in '$T/issuer.pem' -pubkey -noout >'$T/issuer.pub' && openssl dgst -sha256 -verify '$T/issuer.pub' -signature '$T/sig2' '$T/data' >/dev/null"
on node2 sign -t Default -i global --in "$T/data" --out "$T/sig2ec"
on node2 get -t Default -i global -o pem
printf '%s\n' "$out" >"$T/ec.pem"
check "node2 signs with the replicated EC key and it verifies" \
	bash -c "openssl x509 -in '$T/ec.pem' -pubkey -noout >'$T/ec.pub' && openssl dgst -sha256 -verify '$T/ec.pub' -signature '$T/sig2ec' '$T/data' >/dev/null"
on node2 sync
check "a second sync unwraps nothing and holds both" [ "$rc" -eq 0 -a "$(grep -c ' held' <<<"$out")" -eq 2 ]

# ---------------------------------------------------------------- seal
before=$(state)
on node1 seal --thumbprint "${issuer:0:10}" --dry-run
check "seal --dry-run is refused as seal is while node3 does not report the key (exit 1)" [ "$rc" -eq 1 ]
check "…nothing written" [ "$(state)" = "$before" ]
on node1 seal --thumbprint "${issuer:0:10}"
check "seal is refused while node3 does not report the key (exit 1)" [ "$rc" -eq 1 ]
check "…naming it" grep -q "node(s) node3 do not report holding its key" <<<"$err"

# ---------------------------------------------------------------- bad packages
# Four more replicable keys at global; then the store's packages are
# damaged: one tampered, one cut, one replaced by the same key wrapped
# under another KEK, one swapped for another key's package.
printf '[types]\ncustom = Badtampered, Badtruncated, Badotherkek, Badmismatch\n' >"$T/types.conf"
for n in tampered truncated otherkek mismatch; do
	make_p12 "$n" "$n.custody.test" 30
	on node1 import -c "$T/types.conf" --path "$T/$n.p12" --replicable -t "Bad$n" -i global
	eval "tp_$n=$out"
done
check "four more replicable keys are packaged" [ "$(q "SELECT count(*) FROM packages")" -eq 6 ]
# The same key as otherkek under a KEK of another cluster (token node3 is
# reused with a store of its own: a second KEK cannot go on it, so a
# fourth token is made).
"${TOP_SRCDIR:?}/scripts/softhsm-token.sh" "$T" rogue >/dev/null
CUSTODY_STORE="sqlite:$T/rogue.db" on rogue kek create
CUSTODY_STORE="sqlite:$T/rogue.db" on rogue import --path "$T/otherkek.p12" --replicable
check "a rogue cluster packages the same key under its own KEK" \
	[ "$(sqlite3 "$T/rogue.db" "SELECT count(*) FROM packages WHERE thumbprint='$tp_otherkek'")" -eq 1 ]
py_store "$T/rogue.db" "$tp_tampered" "$tp_truncated" "$tp_otherkek" "$tp_mismatch" "$issuer" <<'PY'
import sqlite3, sys
db, rogue, tampered, truncated, otherkek, mismatch, issuer = sys.argv[1:]
c = sqlite3.connect(db)
get = lambda con, t: con.execute("SELECT wrapped FROM packages WHERE thumbprint=?", (t,)).fetchone()[0]
w = bytearray(get(c, tampered)); w[len(w) // 2] ^= 0x01
c.execute("UPDATE packages SET wrapped=? WHERE thumbprint=?", (bytes(w), tampered))
c.execute("UPDATE packages SET wrapped=? WHERE thumbprint=?", (get(c, truncated)[:40], truncated))
c.execute("UPDATE packages SET wrapped=? WHERE thumbprint=?", (get(sqlite3.connect(rogue), otherkek), otherkek))
c.execute("UPDATE packages SET wrapped=? WHERE thumbprint=?", (get(c, issuer), mismatch))
c.commit()
PY
objects_before=$(count_objects)
on node3 sync
check "sync on node3 with four bad packages exits 1" [ "$rc" -eq 1 ]
check "…and still unwraps the two good keys" [ "$(grep -cE '^[^ ]+ +current +[0-9A-F]+ unwrapped$' <<<"$out")" -eq 2 ]
# The packages were changed in the store, outside custody: each fails its
# integrity check before anything is unwrapped from it.
for n in tampered truncated otherkek mismatch; do
	eval "tp=\$tp_$n"
	check "…refusing the $n package" grep -Eq "Bad$n .*$tp refused: the store's package record $tp fails its integrity check: it was changed outside custody, nothing unwrapped$" <<<"$out"
	rep=$(q "SELECT held || ' ' || detail FROM node_reports WHERE node='node3' AND thumbprint='$tp'")
	check "…and reporting it to the store as not held: ${rep:0:60}" \
		grep -q "^0 the store's package record $tp fails its integrity check: it was changed outside custody" <<<"$rep"
done
# Two keys unwrapped: each a private key, a public key and a certificate.
check "…and nothing of the bad ones is left on node3's token (6 objects more, not more)" \
	[ "$(count_objects)" -eq $((objects_before + 6)) ]
on node3 list -o json
check "node3 lists exactly the two good certificates" \
	python3 -c 'import json,sys; d=json.loads(sys.argv[1]); t=sorted(x["thumbprint"] for x in d); assert t==sorted(sys.argv[2:]), t' "$out" "$issuer" "$ec"

# ---------------------------------------------------------------- seal, again
on node1 sync
before=$(state)
on node1 seal --thumbprint "$issuer" --dry-run -o json
check "seal --dry-run -o json: exit 0, the plan turns CKA_EXTRACTABLE off" \
	[ "$rc" -eq 0 -a "$(python3 -c 'import json,sys; d=json.load(sys.stdin); m=d["modified"][0]; print(d["dry_run"], m["attribute"], m["value"])' <<<"$out")" = "True CKA_EXTRACTABLE False" ]
check "…nothing written (the key stays extractable, no audit entry)" [ "$(state)" = "$before" ]
on node1 seal --thumbprint "$issuer" -o json
check "once node1, node2 and node3 report the key, seal exits 0" [ "$rc" -eq 0 ]
check "…-o json: what was done (dry_run false, CKA_EXTRACTABLE off for its key)" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["command"] == "seal" and d["dry_run"] is False, d
m = d["modified"][0]
assert m["thumbprint"] == sys.argv[2] and m["attribute"] == "CKA_EXTRACTABLE" and m["value"] is False, m' "$out" "$issuer"
check "…and narrates that every member holds it" grep -q "node node3: holds it" <<<"$err"
check "…and the audit log says so" [ "$(q "SELECT count(*) FROM audit WHERE action='seal' AND thumbprint='$issuer'")" -eq 1 ]

# ---------------------------------------------------------------- export / import --package
make_p12 moved moved.custody.test 30
on node1 import --path "$T/moved.p12" --replicable
moved=$out
on node1 export --thumbprint "$moved" --out "$T/moved.pkg" -o json
check "export writes the package to a new file" [ "$rc" -eq 0 -a -s "$T/moved.pkg" ]
check "…-o json: the file it made and the KEK (dry_run false)" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
c = d["created"][0]
assert d["command"] == "export" and d["dry_run"] is False, d
assert (c["object"], c["where"], c["thumbprint"], c["kcv"]) == ("package_file", sys.argv[2], sys.argv[3], sys.argv[4]), c' "$out" "$T/moved.pkg" "$moved" "$kcv"
check "…readable by its owner only" [ "$(stat -c %a "$T/moved.pkg")" = 600 ]
check "…in the documented format" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert sorted(d) == sorted(["format", "version", "thumbprint", "key_id", "kcv", "wrapping", "wrapped_key", "certificate"]), d.keys()
assert d["format"] == "custody-key-package" and d["version"] == 1 and d["thumbprint"] == sys.argv[2] and d["kcv"] == sys.argv[3]
assert d["wrapping"] == "CKM_AES_KEY_WRAP_PAD"' "$T/moved.pkg" "$moved" "$kcv"
check "…and holds no PEM private key" bash -c "! grep -q 'PRIVATE KEY' '$T/moved.pkg'"
cp "$T/moved.pkg" "$T/moved.copy"
on node1 export --thumbprint "$moved" --out "$T/moved.pkg"
check "export never overwrites a file (exit 1)" bash -c '[ '"$rc"' -eq 1 ] && cmp -s "$0" "$1"' "$T/moved.pkg" "$T/moved.copy"
head -c 300 "$T/moved.pkg" >"$T/cut.pkg"
python3 - "$T/moved.pkg" "$T/tampered.pkg" "$T/forged.pkg" <<'PY'
import base64, json, sys
d = json.load(open(sys.argv[1]))
w = bytearray(base64.b64decode(d["wrapped_key"])); w[8] ^= 0x80
t = dict(d, wrapped_key=base64.b64encode(bytes(w)).decode())
json.dump(t, open(sys.argv[2], "w"))
f = dict(d, thumbprint="0" * 40)
json.dump(f, open(sys.argv[3], "w"))
PY
before=$(state)
on node2 import --package "$T/cut.pkg"
check "a truncated package file is refused (exit 1)" bash -c '[ '"$rc"' -eq 1 ] && grep -q "bad key package" <<<"$0"' "$err"
on node2 import --package "$T/forged.pkg"
check "a package whose thumbprint is not its certificate's is refused" bash -c '[ '"$rc"' -eq 1 ] && grep -q "is not that of its certificate" <<<"$0"' "$err"
on node2 import --package "$T/tampered.pkg"
check "a tampered package is refused by the unwrap (exit 1)" bash -c '[ '"$rc"' -eq 1 ] && grep -q "cannot unwrap the package" <<<"$0"' "$err"
check "…and none of the three changed anything" [ "$(state)" = "$before" ]
on node2 import --package "$T/moved.pkg"
check "import --package of the exported file exits 0 and prints the thumbprint" [ "$rc" -eq 0 -a "$out" = "$moved" ]
on node2 list -o json
check "…and the key is on node2's token with its certificate" \
	python3 -c 'import json,sys; d=json.loads(sys.argv[1]); c=[x for x in d if x["thumbprint"]==sys.argv[2]]; assert c and c[0]["has_private_key"] is True' "$out" "$moved"
on node2 import --package "$T/moved.pkg"
check "importing it again creates nothing" bash -c '[ '"$rc"' -eq 0 ] && grep -q "already on token" <<<"$0"' "$err"

# A sealed key can no longer be wrapped on its token: without the store's
# package, export must fail with the token's refusal.
py_store "$issuer" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.execute("DELETE FROM packages WHERE thumbprint=?", (sys.argv[2],)); c.commit()
PY
on node1 export --thumbprint "$issuer" --out "$T/sealed.pkg"
check "the sealed key is not extractable any more (CKR_KEY_UNEXTRACTABLE)" \
	bash -c '[ '"$rc"' -eq 1 ] && grep -q CKR_KEY_UNEXTRACTABLE <<<"$0"' "$err"
check "…and the refused export left no file" [ ! -e "$T/sealed.pkg" ]

# ---------------------------------------------------------------- no key in clear
d_window=$(openssl pkcs12 -in "$T/issuer.p12" -nocerts -nodes -passin pass: 2>/dev/null |
	openssl rsa -noout -text 2>/dev/null |
	sed -n '/^privateExponent:/,/^prime1:/p' | sed '1d;$d' | tr -d ' :\n' | cut -c 101-164)
check "the private exponent could be read for the scan" [ ${#d_window} -eq 64 ]
found=""
for f in "$db" "$db-wal" "$T"/*.pkg $(find "$T/tokens" -type f); do
	[ -f "$f" ] || continue
	if od -An -v -tx1 "$f" | tr -d ' \n' | grep -q "$d_window"; then found="$found $f"; fi
done
check "no file of the store, the packages or the tokens holds the private key in clear" [ -z "$found" ]
check "the store holds no PEM private key" bash -c "! sqlite3 '$db' .dump | grep -q -- '-----BEGIN [A-Z ]*PRIVATE KEY-----'"
on node1 audit --verify
check "the audit log of the whole ceremony verifies" [ "$rc" -eq 0 ]
for a in kek-create node-enroll node-admit node-join sync seal export; do
	check "…and has its $a entries" [ "$(q "SELECT count(*) FROM audit WHERE action='$a'")" -ge 1 ]
done

done_testing
