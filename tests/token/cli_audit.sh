#!/usr/bin/env bash
# custody audit: every change leaves one hash-chained entry, written in the
# same transaction as the change; --verify finds edits, removals, reordering
# and a cut tail.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" <<<"$out"; }
db="$T/custody.db"

make_p12 a a.custody.test 365
make_p12 b b.custody.test 365
A=$(thumbprint_of_p12 a); B=$(thumbprint_of_p12 b)

"$CUSTODY_BIN" -q import --path "$T/a.p12" -t OAuthTokenIssuer >/dev/null
"$CUSTODY_BIN" -q import --path "$T/b.p12" >/dev/null
"$CUSTODY_BIN" -q import --path "$T/b.p12" >/dev/null     # creates nothing: no entry
soon=$(date -u -d '+3 seconds' +%Y-%m-%dT%H:%M:%SZ)
"$CUSTODY_BIN" -q set -t OAuthTokenIssuer --thumbprint "$B" --roll --effective-date "$soon" 2>/dev/null
"$CUSTODY_BIN" -q set -t Default --thumbprint "$A"
"$CUSTODY_BIN" -q set -t Default --thumbprint "$A" --dry-run 2>/dev/null
"$CUSTODY_BIN" -q remove -t Default --force
# (An EC key, or RSA on a token that cannot make EC keys: openCryptoki.)
reqkey=ec:p256
token_can ec || reqkey=rsa:2048
"$CUSTODY_BIN" -q request --subject CN=req.custody.test --key "$reqkey" --csr "$T/req.csr" >/dev/null

run audit -o json
check "audit -o json exits 0" [ "$rc" -eq 0 ]
check "one entry per change, in order: import, set, import, roll, set, remove, request" \
	[ "$(py 'print(" ".join(e["action"] for e in d))')" = "import set import roll set remove request" ]
check "the import entry names the thumbprint and the key id" \
	py 'e=d[0]; assert e["thumbprint"]=="'"$A"'" and "key id" in e["detail"]'
check "the roll entry names the new and the current certificate and the instant" \
	py 'e=d[3]; assert e["thumbprint"]=="'"$B"'" and e["previous_thumbprint"]=="'"$A"'" and "'"$soon"'" in e["detail"]'
check "entries carry node, actor and type/identity" \
	py 'e=d[1]; assert e["node"]=="node1" and e["actor"] and e["type"]=="OAuthTokenIssuer" and e["identity"]=="global"'
check "each entry holds the hash of the one before" \
	py 'assert all(d[i]["prev_hash"]==d[i-1]["hash"] for i in range(1,len(d))) and d[0]["prev_hash"]=="0"*64'
SUDO_USER=alice "$CUSTODY_BIN" -q set -t Default --thumbprint "$B"
run audit -o json
check "the actor is SUDO_USER when present" py 'assert d[-1]["actor"]=="alice"'

# A roll that came due is recorded once, by the first command that writes
# with the token after its instant (get shows it resolved, writes nothing).
sleep 4
run get -t OAuthTokenIssuer -o thumbprint
check "after its instant the rolled certificate is current" [ "$out" = "$B" ]
run audit -o json
check "get records nothing" [ "$(py 'print(sum(1 for e in d if e["action"]=="roll-effective"))')" = 0 ]
"$CUSTODY_BIN" -q set -t OAuthTokenIssuer --thumbprint "$B"
"$CUSTODY_BIN" -q set -t OAuthTokenIssuer --thumbprint "$B"
run audit -o json
check "the roll taking effect is recorded exactly once" \
	[ "$(py 'print(sum(1 for e in d if e["action"]=="roll-effective"))')" = 1 ]
run audit
check "the table shows one line per entry" [ "$(wc -l <<<"$out")" -eq "$(sqlite3 "$db" 'select count(*) from audit')" ]
run audit --since "$(date -u -d '+1 day' +%Y-%m-%d)" -o json
check "--since in the future shows nothing" [ "$(py 'print(len(d))')" = 0 ]

run audit --verify
check "--verify of an intact log exits 0" [ "$rc" -eq 0 ]
check "…and says how many entries" grep -q "audit log verified: [0-9]* entries" <<<"$out$err"

# Tampering, each on a copy of the store.
tamper() { # SQL — applied to a fresh copy; sets $out/$err/$rc of audit --verify
	cp "$db" "$T/tampered.db"
	sqlite3 "$T/tampered.db" "$(sqlite3 "$T/tampered.db" "select 'drop trigger ' || name || ';' from sqlite_master where type='trigger'") $1"
	run audit --verify --store "sqlite:$T/tampered.db"
}
tamper "update audit set actor='mallory' where seq=2;"
check "an edited entry: exit 1 naming entry 2" grep -q "^1:.*audit entry 2 .*was edited" <<<"$rc:$err"
tamper "delete from audit where seq=3;"
check "a removed entry: exit 1 naming entry 3" grep -q "^1:.*entry 3 was removed" <<<"$rc:$err"
tamper "update audit set seq=100 where seq=2; update audit set seq=2 where seq=3; update audit set seq=3 where seq=100;"
check "reordered entries: exit 1" grep -Eq "^1:.*(out of order|was edited|removed)" <<<"$rc:$err"
last=$(sqlite3 "$db" 'select max(seq) from audit')
tamper "delete from audit where seq=$last;"
check "a cut tail: exit 1 naming the truncation" grep -q "^1:.*truncated" <<<"$rc:$err"

# A change that fails writes no entry.
n=$(sqlite3 "$db" 'select count(*) from audit')
"$CUSTODY_BIN" -q set -t OAuthTokenIssuer --thumbprint "$A" --roll --effective-date 2020-01-01 2>/dev/null
check "a refused change appends nothing" [ "$(sqlite3 "$db" 'select count(*) from audit')" -eq "$n" ]
if ! token_can ec; then
	# What the token cannot do is refused before anything is written.
	before=$(state)
	run request --subject CN=ec.custody.test --key ec:p256 --csr "$T/ec.csr"
	check "a request the token cannot do (EC): exit 1, one line naming the token and what it lacks" \
		[ "$rc" -eq 1 -a "$err" = "custody: request: token test cannot generate EC-P256 keys: it has no CKM_EC_KEY_PAIR_GEN" ]
	check "…appends nothing, and the token and the store are as they were" \
		[ "$(sqlite3 "$db" 'select count(*) from audit')" -eq "$n" -a "$(state)" = "$before" -a ! -e "$T/ec.csr" ]
fi
check "the audit table refuses plain edits (append-only)" \
	bash -c "! sqlite3 '$db' \"update audit set actor='x' where seq=1\" 2>/dev/null"

done_testing
