#!/usr/bin/env bash
# custody rollover on one clock (--at, days from now): a certificate valid
# 90 days with [rollover OAuthTokenIssuer] generate-before 20d and
# promote-before 15d — at day 10 nothing is due; the dry run at day 71
# says what it would make and writes nothing; at day 71 the successor is
# generated in the token (not extractable), stored, staged pending for day
# 75; a second run makes nothing; get at day 76 shows it current.  A bad
# policy is refused with its file and line.  CSR mode writes the request
# into csr-dir, once.  Concurrency: a lease held elsewhere makes a run
# stand back, an expired one is taken over, and two runs at once make one
# successor (SQLite, and PostgreSQL when CUSTODY_TEST_PG_URL is set).
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" <<<"$out"; }
top=${TOP_SRCDIR:-$(dirname "$0")/../..}

day() { date -u -d "+$1 days" +%Y-%m-%dT%H:%M:%SZ; }
# bytes — the token's object files and the store's file as they are.
bytes() {
	{
		object_files | xargs -r sha256sum
		[ -f "$T/custody.db" ] && sha256sum "$T/custody.db"
	} | sha256sum | cut -d' ' -f1
}

cat >"$T/roll.conf" <<EOF
[types]
custom = Partner Racer
[rollover OAuthTokenIssuer]
enabled = yes
generate-before = 20d
promote-before = 15d
validity = 90
[rollover Partner]
enabled = yes
mode = csr
csr-dir = $T/csr
[rollover Racer]
enabled = yes
EOF
export CUSTODY_CONFIG=$T/roll.conf
mkdir "$T/csr"

# --- no store: a store URL that names nothing is an error (the timer
# shows it), and rollover makes no store ---
run rollover
check "rollover without a store fails (exit 1), saying so" \
	bash -c '[ '"$rc"' -eq 1 ] && grep -q "no store at" <<<"$0"' "$err"
check "…and makes none" [ ! -e "$T/custody.db" ]
printf '[rollover Default]\nenabled = no\n' >"$T/off.conf"
run -c "$T/off.conf" rollover
check "no enabled policy: rollover exits 0, nothing to do, without a store" \
	bash -c '[ '"$rc"' -eq 0 ] && grep -q "no enabled \[rollover TYPE\] policy: nothing to do" <<<"$0"' "$err"

run request --subject "CN=sts.custody.test,O=custody test" --san DNS:sts.custody.test \
	--self-signed --days 90 -t OAuthTokenIssuer
check "a 90-day self-signed certificate is current" [ "$rc" -eq 0 ]
first=$out
n0=$(count_objects)

# --- day 10: not due ---
b0=$(bytes)
run rollover --at "$(day 10)"
check "day 10: rollover exits 0" [ "$rc" -eq 0 ]
check "…says nothing is due yet" grep -q "OAuthTokenIssuer/global: not due" <<<"$err"
check "…and writes nothing" [ "$(bytes)" = "$b0" ]

# --- day 71: the dry run says, writes nothing ---
run rollover --at "$(day 71)" --dry-run -o json
check "day 71 dry run exits 0" [ "$rc" -eq 0 ]
check "…its plan says a key pair and a successor would be made" \
	py 'assert d["dry_run"] is True; x=[o["object"] for o in d["created"]]; assert "key_pair" in x and "certificate" in x, x; c=d["changes"][0]; assert c["slot"]=="pending" and c["type"]=="OAuthTokenIssuer", c'
check "…decided to generate" \
	py 'x=[o for o in d["decisions"] if o["type"]=="OAuthTokenIssuer"][0]; assert x["decision"]=="generate", x'
check "…and wrote nothing (store and token bytes)" [ "$(bytes)" = "$b0" ]

# --- day 71: the successor ---
run rollover --at "$(day 71)" -o json
check "day 71: rollover exits 0" [ "$rc" -eq 0 ]
check "…narrates the lease and the ceremony" \
	bash -c 'grep -q "taking the store.s rollover lease" <<<"$0" && grep -q "generating an RSA-2048 key pair on token test" <<<"$0" && grep -q "staged .* as the pending certificate of OAuthTokenIssuer/global" <<<"$0"' "$err"
second=$(py 'print([o for o in d["created"] if o["object"]=="certificate"][0]["thumbprint"])')
check "…made a certificate other than the current one" \
	bash -c '[ -n "$0" ] && [ "$0" != "$1" ]' "$second" "$first"
check "…its key generated in the token, not extractable" \
	py 'k=[o for o in d["created"] if o["object"]=="key_pair"][0]; assert k["extractable"] is False and k["replicable"] is False, k'
check "…a key pair and a certificate more on the token" [ "$(count_objects)" -eq $((n0 + 3)) ]
effective=$(py 'print(d["changes"][0]["effective"])')
want=$(date -u -d "@$(( $(date -u -d "$(day 90)" +%s) - 15 * 86400 ))" +%Y-%m-%d)
check "…staged pending at notAfter - promote-before (day 75)" \
	grep -q "^$want" <<<"$effective"
run get -t OAuthTokenIssuer --at "$(day 71)" -o json
check "get at day 71: the successor is pending" \
	py 'a=d[0] if isinstance(d,list) else d; s=json.dumps(a); assert "'"$second"'" in s, s'
run audit -o json
check "the audit log names the rollover's key and its roll" \
	py 'e=[x for x in d if x["action"]=="request" and "by rollover" in (x.get("detail") or "")]; assert e and e[-1]["type"]=="OAuthTokenIssuer", e; r=[x for x in d if x["action"]=="roll" and x["thumbprint"]=="'"$second"'"]; assert r, d[-3:]'

# --- a second run finds the pending successor ---
b1=$(bytes)
run rollover --at "$(day 71)"
check "a second run exits 0" [ "$rc" -eq 0 ]
check "…finds the successor pending" grep -q "successor $second is pending" <<<"$err"
check "…and writes nothing" [ "$(bytes)" = "$b1" ]

# --- after the promotion date ---
run get -t OAuthTokenIssuer --at "$(day 76)" -o thumbprint
check "get at day 76: the successor is current" [ "$out" = "$second" ]
openssl_cert() { "$CUSTODY_BIN" get -t OAuthTokenIssuer --at "$(day 76)" -o pem 2>/dev/null; }
check "the successor keeps the subject of the one it follows" \
	grep -q "CN *= *sts.custody.test" <<<"$(openssl_cert | openssl x509 -noout -subject)"
check "…and its SANs" grep -q "DNS:sts.custody.test" <<<"$(openssl_cert | openssl x509 -noout -ext subjectAltName)"

# --- bad policies: refused with file and line, nothing written ---
b2=$(bytes)
printf '[rollover OAuthTokenIssuer]\nenabled = yes\ngenerate-before = 10d\npromote-before = 10d\n' >"$T/bad1.conf"
run -c "$T/bad1.conf" rollover
check "promote-before >= generate-before is refused (exit 2)" [ "$rc" -eq 2 ]
check "…naming the file and the line" grep -q "bad1.conf:4: \[rollover OAuthTokenIssuer\]: promote-before" <<<"$err"
printf '[rollover OAuthTokenIssuer]\nenabled = yes\nkeyspec = rsa:2048\n' >"$T/bad2.conf"
run -c "$T/bad2.conf" rollover
check "an unknown key is refused (exit 2)" [ "$rc" -eq 2 ]
check "…naming the file, the line and the key" grep -q "bad2.conf:3: unknown key 'keyspec'" <<<"$err"
printf '[rollover NoSuchType]\nenabled = yes\n' >"$T/bad3.conf"
run -c "$T/bad3.conf" rollover
check "an unknown type is refused with its line" \
	bash -c '[ '"$rc"' -eq 2 ] && grep -q "bad3.conf:2: \[rollover NoSuchType\]" <<<"$0"' "$err"
printf '[rollover OAuthTokenIssuer]\nenabled = yes\nmode = csr\n' >"$T/bad4.conf"
run -c "$T/bad4.conf" rollover
check "csr mode without csr-dir is refused" \
	bash -c '[ '"$rc"' -eq 2 ] && grep -q "bad4.conf:2: .*needs csr-dir" <<<"$0"' "$err"
check "…and the refusals wrote nothing" [ "$(bytes)" = "$b2" ]

# --- csr mode: the request written once ---
run request --subject "CN=partner.custody.test" --self-signed --days 90 -t Partner -i global
check "a 90-day Partner certificate is current" [ "$rc" -eq 0 ]
run rollover -t Partner --at "$(day 71)" -o json
check "csr mode: rollover exits 0" [ "$rc" -eq 0 ]
csr=$(ls "$T/csr"/*.csr 2>/dev/null)
check "…one request file in csr-dir, named TYPE-IDENTITY-TIME.csr" \
	bash -c '[ "$(wc -l <<<"$0")" -eq 1 ] && grep -Eq "/Partner-global-[0-9]{8}T[0-9]{6}Z\.csr$" <<<"$0"' "$csr"
check "…its signature verifies" grep -qx "Certificate request self-signature verify OK" \
	<<<"$(openssl req -in "$csr" -noout -verify 2>&1)"
check "…for the subject of the current certificate" \
	grep -q "CN *= *partner.custody.test" <<<"$(openssl req -in "$csr" -noout -subject)"
check "…and nothing is staged" py 'assert d["changes"]==[], d'
b3=$(bytes)
run rollover -t Partner --at "$(day 72)"
check "a second csr-mode run makes no second request" \
	bash -c '[ '"$rc"' -eq 0 ] && grep -q "waits for its certificate" <<<"$0"' "$err"
check "…and writes nothing" [ "$(bytes)" = "$b3" ]
check "…no second file in csr-dir" [ "$(ls "$T/csr" | wc -l)" -eq 1 ]

# The CA's certificate for the request: its import stages it.
issued=$(ca_issue "$csr" "$T/partner2.pem")
run import --path "$T/partner2.pem" -o json
check "the import of the issued certificate exits 0" [ "$rc" -eq 0 ]
check "…says it answers the rollover request" \
	grep -q "answers the rollover request of Partner/global: it is staged" <<<"$err"
run get -t Partner -i global -o json
check "…and stages it as Partner/global's pending certificate at day 75" \
	py 'a=d[0] if isinstance(d,list) else d; s=json.dumps(a); assert "'"$issued"'" in s and "'"$want"'" in s, s'
run rollover -t Partner --at "$(day 72)"
check "…after which rollover finds it pending" grep -q "successor $issued is pending" <<<"$err"

# --- the lease ---
run request --subject "CN=racer.custody.test" --self-signed --days 90 -t Racer -i global
check "a 90-day Racer certificate is current" [ "$rc" -eq 0 ]
until=$(( $(date +%s) + 600 ))
sqlite3 "$T/custody.db" "INSERT OR REPLACE INTO cluster_meta (name, value) VALUES ('rollover_lease', 'node9 4242 $until')"
b4=$(bytes)
run rollover -t Racer --at "$(day 71)"
check "a lease held by another run: rollover exits 0" [ "$rc" -eq 0 ]
check "…says who holds it" grep -q "another rollover (node node9, process 4242) holds the store's rollover lease" <<<"$err"
check "…and makes nothing" [ "$(bytes)" = "$b4" ]
sqlite3 "$T/custody.db" "UPDATE cluster_meta SET value = 'node9 4242 $(( $(date +%s) - 1 ))' WHERE name = 'rollover_lease'"

# Two runs at once, one successor.
n1=$(count_objects)
"$CUSTODY_BIN" rollover -t Racer --at "$(day 71)" >"$T/r1.out" 2>"$T/r1.err" &
p1=$!
"$CUSTODY_BIN" rollover -t Racer --at "$(day 71)" >"$T/r2.out" 2>"$T/r2.err" &
p2=$!
wait "$p1"; rc1=$?
wait "$p2"; rc2=$?
check "two concurrent runs (an expired lease taken over) both exit 0" [ "$rc1" -eq 0 -a "$rc2" -eq 0 ]
check "…one key pair and one certificate made in all" [ "$(count_objects)" -eq $((n1 + 3)) ]
run get -t Racer -i global --at "$(day 71)" -o json
check "…one successor staged" py 's=json.dumps(d); assert s.count("pending")>=1, s'
check "…the other run found it pending (or stood back)" \
	grep -Eq "is pending|holds the store's rollover lease" "$T/r1.err" "$T/r2.err"
check "the lease was let go" \
	grep -q "^node1 [0-9]* 0$" <<<"$(sqlite3 "$T/custody.db" "SELECT value FROM cluster_meta WHERE name = 'rollover_lease'")"
# A store writer's lease for a century would stop every rollover: a lease
# that claims longer than any run takes is not honoured.
sqlite3 "$T/custody.db" "UPDATE cluster_meta SET value = 'node9 4242 $(( $(date +%s) + 100 * 366 * 86400 ))' WHERE name = 'rollover_lease'"
run rollover -t Racer --at "$(day 76)" -o json
check "a lease held for a century: rollover exits 0" [ "$rc" -eq 0 ]
check "…warns that it is not honoured" \
	grep -q "the store's rollover lease (node node9, process 4242) says it is held until .*: longer than a run may hold it, not honoured" <<<"$err"
check "…and records the roll that came due" py 'assert d["decisions"][0]["roll_recorded"] is True, d'

# --- PostgreSQL: the same race on a store of its own ---
if [ -n "${CUSTODY_TEST_PG_URL:-}" ]; then
	schema="roll_$$_$(date +%s)"
	with_schema() {
		case $1 in
		*\?*) echo "$1&options=-csearch_path%3D$2" ;;
		*) echo "$1?options=-csearch_path%3D$2" ;;
		esac
	}
	trap 'psql "$CUSTODY_TEST_PG_URL" -qAtc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1; rm -rf "$T"' EXIT
	psql "$CUSTODY_TEST_PG_URL" -qAtc "CREATE SCHEMA $schema" >/dev/null ||
		{ echo "Bail out! cannot create schema $schema"; exit 1; }
	export CUSTODY_STORE=$(with_schema "$CUSTODY_TEST_PG_URL" "$schema")
	run request --subject "CN=pg.custody.test" --self-signed --days 90 -t Racer -i global
	check "PostgreSQL: a 90-day Racer certificate is current" [ "$rc" -eq 0 ]
	# A key that holds the label the successor would take already (a run
	# on another store that shares this token, in the same second): the
	# successor takes the next free one.
	at=$(day 71)
	taken=Racer-global-$(date -u -d "$at" +%Y%m%dT%H%M%SZ)
	"$CUSTODY_BIN" -q request --subject "CN=squatter.custody.test" --self-signed --days 1 \
		--label "$taken" >/dev/null 2>&1
	n2=$(count_objects)
	"$CUSTODY_BIN" rollover -t Racer --at "$at" >"$T/p1.out" 2>"$T/p1.err" &
	p1=$!
	"$CUSTODY_BIN" rollover -t Racer --at "$at" >"$T/p2.out" 2>"$T/p2.err" &
	p2=$!
	wait "$p1"; rc1=$?
	wait "$p2"; rc2=$?
	check "PostgreSQL: two concurrent runs both exit 0" [ "$rc1" -eq 0 -a "$rc2" -eq 0 ]
	check "…one key pair and one certificate made in all" [ "$(count_objects)" -eq $((n2 + 3)) ]
	pending=$(psql "$CUSTODY_STORE" -qAtc "SELECT count(*) FROM assignments WHERE type = 'Racer' AND pending_thumbprint IS NOT NULL AND pending_thumbprint <> ''" 2>&1)
	check "…one successor staged" [ "$pending" = 1 ]
	check "…its key under the next free label, $taken-2" \
		grep -q -- "$taken-2" <<<"$("$CUSTODY_BIN" list 2>&1)"
	check "…the other run found it pending (or stood back)" \
		grep -Eq "is pending|holds the store's rollover lease" "$T/p1.err" "$T/p2.err"
else
	echo "# PostgreSQL part skipped: CUSTODY_TEST_PG_URL is not set"
fi

# Which way each race went (the runs that stood back), for the log; the
# whole of each run's stderr when a race check failed.
for f in "$T"/r[12].err "$T"/p[12].err; do [ -f "$f" ] && grep -E "is pending|holds the store" "$f" | sed "s/^/# $(basename "$f"): /"; done
if [ "$tap_failed" -gt 0 ]; then
	for f in "$T"/r[12].err "$T"/p[12].err; do [ -f "$f" ] && sed "s/^/# $(basename "$f") | /" "$f"; done
fi
done_testing
