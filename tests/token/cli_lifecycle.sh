#!/usr/bin/env bash
# A certificate's whole life on one clock (--at, days from now), on a
# SQLite store and, when CUSTODY_TEST_PG_URL is set, on PostgreSQL: a
# certificate valid 90 days with [rollover OAuthTokenIssuer]
# generate-before 20d, promote-before 15d, keep-previous 10d —
#   day 20 test OK; day 31 test WARNING (no successor, 59 days left);
#   day 70 rollover: the successor generated in the token (not
#   extractable), staged for day 75, published in the metadata, the
#   post-stage hook run once with the type, identity and thumbprints;
#   a roll sooner than min-publish refused with the earliest safe instant;
#   day 74 the old one still current, day 76 the new one;
#   day 76 rollover records the roll, its post-roll hook fails: logged in
#   the audit log, the roll stands, not run again;
#   day 80 the previous still published; day 84 kept; day 86 retired
#   (its key stays on the token).
# Then two nodes (SoftHSM tokens of their own, one store): a node that has
# not synced the successor holds the roll back at its effective date —
# get keeps the old certificate, rollover and test name the node — until
# it syncs.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" <<<"$out"; }
day() { date -u -d "+$1 days" +%Y-%m-%dT%H:%M:%SZ; }
# bytes — the token's object files and the SQLite store's file as they are.
bytes() {
	{
		object_files | xargs -r sha256sum
		[ -f "$T/custody.db" ] && sha256sum "$T/custody.db"
	} | sha256sum | cut -d' ' -f1
}
audit_count() { # ACTION THUMBPRINT — entries of ACTION for THUMBPRINT
	local o
	o=$("$CUSTODY_BIN" audit -o json 2>/dev/null)
	python3 -c 'import json,sys; d=json.loads(sys.argv[3]); print(sum(1 for e in d if e["action"]==sys.argv[1] and e["thumbprint"]==sys.argv[2]))' \
		"$1" "$2" "$o"
}

# The hooks: post-stage writes what it was given and reads the metadata
# (a hook may call custody: the token is not held while it runs);
# post-roll fails, saying so.
cat >"$T/stage-hook" <<'EOF'
#!/bin/sh
{
	echo "hook=$CUSTODY_HOOK type=$CUSTODY_TYPE identity=$CUSTODY_IDENTITY"
	echo "thumbprint=$CUSTODY_THUMBPRINT previous=$CUSTODY_PREVIOUS_THUMBPRINT"
	echo "effective=$CUSTODY_EFFECTIVE"
	echo "pin=${PIN_FOR_HOOK_TEST:-unset}"
} >>"$HOOK_LOG"
# Its own PIN source: the hook is not given the one of rollover (env:).
"$CUSTODY_BIN" --pin-source "file:$PIN_COPY" metadata -t "$CUSTODY_TYPE" \
	>"$HOOK_LOG.metadata" 2>&1
echo "metadata refreshed"
EOF
printf '#!/bin/sh\necho "partner refresh failed: 503" >&2\nexit 3\n' >"$T/roll-hook"
chmod +x "$T/stage-hook" "$T/roll-hook"
export HOOK_LOG=$T/hook.log CUSTODY_BIN PIN_COPY=$T/pin-copy

write_config() { # FILE
	cat >"$1" <<EOF
[rollover OAuthTokenIssuer]
enabled = yes
generate-before = 20d
promote-before = 15d
validity = 90
keep-previous = 10d
post-stage = $T/stage-hook
post-roll = $T/roll-hook
EOF
}
write_config "$T/life.conf"
export CUSTODY_CONFIG=$T/life.conf

# life STORE-NAME — the life cycle on the store CUSTODY_STORE names.
life() {
	local s=$1 first second effective want b0 n0
	: >"$HOOK_LOG"
	run request --subject "CN=sts.custody.test,O=custody test" --san DNS:sts.custody.test \
		--self-signed --days 90 --label "sts-$s" -t OAuthTokenIssuer
	check "$s: a 90-day self-signed certificate is current" [ "$rc" -eq 0 ]
	first=$out

	run test -t OAuthTokenIssuer --at "$(day 20)"
	check "$s: day 20: test exits 0 (70 days left)" [ "$rc" -eq 0 ]
	run test -t OAuthTokenIssuer --at "$(day 31)"
	check "$s: day 31: test WARNING (exit 1): 59 days left, no successor" \
		bash -c '[ '"$rc"' -eq 1 ] && grep -q "^WARNING OAuthTokenIssuer/global: .*no successor" <<<"$0"' "$out"

	# --- day 70: the successor, staged and published ---
	n0=$(count_objects)
	run rollover --at "$(day 70)" -o json
	check "$s: day 70: rollover exits 0" [ "$rc" -eq 0 ]
	second=$(py 'print([o for o in d["created"] if o["object"]=="certificate"][0]["thumbprint"])')
	check "$s: …made a successor" bash -c '[ -n "$0" ] && [ "$0" != "$1" ]' "$second" "$first"
	check "$s: …its key generated in the token, not extractable" \
		py 'k=[o for o in d["created"] if o["object"]=="key_pair"][0]; assert k["extractable"] is False, k'
	check "$s: …a key pair and a certificate more on the token" \
		[ "$(count_objects)" -eq $((n0 + 3)) ]
	effective=$(py 'print(d["changes"][0]["effective"])')
	want=$(date -u -d "@$(($(date -u -d "$(day 90)" +%s) - 15 * 86400))" +%Y-%m-%d)
	check "$s: …staged for notAfter - promote-before (day 75)" grep -q "^$want" <<<"$effective"
	check "$s: …the post-stage hook ran, with the type, identity and thumbprints" \
		grep -q "hook=post-stage type=OAuthTokenIssuer identity=global" "$HOOK_LOG"
	check "$s: …for the successor, after the current" \
		grep -q "thumbprint=$second previous=$first" "$HOOK_LOG"
	check "$s: …without the PIN's variable" grep -q "^pin=unset$" "$HOOK_LOG"
	check "$s: …and it read the metadata (custody runs inside a hook)" \
		grep -q '"keys"' "$HOOK_LOG.metadata"
	check "$s: …its outcome in the audit log" \
		bash -c 'grep -q "post-stage exited 0: metadata refreshed" <<<"$("$CUSTODY_BIN" audit 2>/dev/null)"'
	run metadata -t OAuthTokenIssuer -o json
	check "$s: the metadata publishes the successor from the moment it is staged" \
		py 'import base64,binascii; k=[binascii.hexlify(base64.urlsafe_b64decode(x["x5t"]+"==")).decode().upper() for x in d["keys"]]; assert "'"$second"'" in k and "'"$first"'" in k, k'
	run rollover --at "$(day 70)"
	check "$s: a second run at day 70 exits 0, the successor pending" \
		bash -c '[ '"$rc"' -eq 0 ] && grep -q "successor '"$second"' is pending" <<<"$0"' "$err"
	check "$s: …and the post-stage hook ran once" \
		[ "$(grep -c "hook=post-stage" "$HOOK_LOG")" -eq 1 ]
	run test -t OAuthTokenIssuer --at "$(day 70)"
	check "$s: day 70: test exits 0 with the successor staged" \
		bash -c '[ '"$rc"' -eq 0 ] && grep -q "successor '"$second"' staged" <<<"$0"' "$out"

	# --- a roll sooner than min-publish: refused, nothing written ---
	b0=$(bytes)
	run set -t OAuthTokenIssuer --thumbprint "$second" --roll \
		--effective-date "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)"
	check "$s: a roll 1 hour ahead is refused (exit 1)" [ "$rc" -eq 1 ]
	check "$s: …with the earliest safe instant" \
		grep -q "too soon: the earliest safe instant is .*published for 48h" <<<"$err"
	check "$s: …and writes nothing" [ "$(bytes)" = "$b0" ]

	# --- the promotion ---
	run get -t OAuthTokenIssuer --at "$(day 74)" -o thumbprint
	check "$s: day 74: the first certificate is still current" [ "$out" = "$first" ]
	run get -t OAuthTokenIssuer --at "$(day 76)" -o thumbprint
	check "$s: day 76: the successor is current" [ "$out" = "$second" ]
	run rollover --at "$(day 76)" -o json
	check "$s: day 76: rollover exits 0 though its post-roll hook fails" [ "$rc" -eq 0 ]
	check "$s: …records the roll" py 'x=d["decisions"][0]; assert x["roll_recorded"] is True, x'
	check "$s: …warns that the hook failed and the roll stands" \
		grep -q "post-roll exited 3: partner refresh failed: 503 (the roll stands)" <<<"$err"
	check "$s: …the hook's outcome in the audit log" \
		bash -c 'grep -q "post-roll exited 3: partner refresh failed: 503" <<<"$("$CUSTODY_BIN" audit 2>/dev/null)"'
	run get -t OAuthTokenIssuer -o thumbprint
	check "$s: …the roll stands (the stored record names the successor current)" \
		[ "$out" = "$second" ]
	check "$s: …the roll is recorded once" [ "$(audit_count roll-effective "$second")" -eq 1 ]
	run rollover --at "$(day 77)"
	check "$s: a later run does not run the failed hook again" \
		[ "$(audit_count post-roll "$second")" -eq 2 ]

	# --- the previous: kept, then retired ---
	run metadata -t OAuthTokenIssuer -o json --at "$(day 80)"
	check "$s: day 80: the previous is still published" \
		py 'import base64,binascii; k=[binascii.hexlify(base64.urlsafe_b64decode(x["x5t"]+"==")).decode().upper() for x in d["keys"]]; assert "'"$first"'" in k, k'
	run rollover --at "$(day 84)"
	check "$s: day 84: the previous stays (kept until day 85)" \
		bash -c '[ '"$rc"' -eq 0 ] && grep -q "previous certificate '"$first"' stays until" <<<"$0"' "$err"
	run get -t OAuthTokenIssuer --at "$(day 84)" -o json
	check "$s: …get shows it previous" grep -q "$first" <<<"$out"
	run rollover --at "$(day 86)" -o json
	check "$s: day 86: rollover retires the previous" \
		py 'x=d["decisions"][0]; assert x["retired"]=="'"$first"'", x'
	run get -t OAuthTokenIssuer --at "$(day 86)" -o json
	check "$s: …get no longer shows it" bash -c '! grep -q "$0" <<<"$1"' "$first" "$out"
	run metadata -t OAuthTokenIssuer -o json --at "$(day 86)"
	check "$s: …nor does the metadata" \
		py 'import base64,binascii; k=[binascii.hexlify(base64.urlsafe_b64decode(x["x5t"]+"==")).decode().upper() for x in d["keys"]]; assert "'"$first"'" not in k and "'"$second"'" in k, k'
	run list -o json
	check "$s: …its key is still on the token (custody delete removes it)" \
		bash -c 'grep -q "$0" <<<"$1"' "$first" "$out"
	check "$s: …the retirement is in the audit log" [ "$(audit_count remove "$first")" -eq 1 ]
}

# The PIN from an environment variable: the hooks must not see it.
cp "${CUSTODY_PIN_SOURCE#file:}" "$T/pin-copy" ||
	{ echo "Bail out! the test token's PIN is not in a file"; exit 1; }
export PIN_FOR_HOOK_TEST=$(cat "$T/pin-copy")
export CUSTODY_PIN_SOURCE=env:PIN_FOR_HOOK_TEST
life sqlite

if [ -n "${CUSTODY_TEST_PG_URL:-}" ]; then
	schema="life_$$_$(date +%s)"
	trap 'psql "$CUSTODY_TEST_PG_URL" -qAtc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1; rm -rf "$T"' EXIT
	psql "$CUSTODY_TEST_PG_URL" -qAtc "CREATE SCHEMA $schema" >/dev/null ||
		{ echo "Bail out! cannot create schema $schema"; exit 1; }
	case $CUSTODY_TEST_PG_URL in
	*\?*) export CUSTODY_STORE="$CUSTODY_TEST_PG_URL&options=-csearch_path%3D$schema" ;;
	*) export CUSTODY_STORE="$CUSTODY_TEST_PG_URL?options=-csearch_path%3D$schema" ;;
	esac
	bytes() { psql "$CUSTODY_STORE" -qAtc "SELECT * FROM assignments, audit_head ORDER BY 1" | sha256sum; }
	life postgresql
else
	echo "# PostgreSQL part skipped: CUSTODY_TEST_PG_URL is not set"
fi

# --- two nodes: a node without the successor's key holds the roll back ---
if [ "${CUSTODY_TEST_TOKEN:-softhsm}" != opencryptoki ]; then
	for n in node1 node2; do
		setup_node "$n" "sqlite:$T/two.db"
	done
	write_config "$T/two.conf"
	sed -i '/^post-/d' "$T/two.conf"
	on node1 kek create
	check "two nodes: node1 makes the KEK" [ "$rc" -eq 0 ]
	on node1 kek authority
	authority=$out
	on node2 node enroll --authority "$authority"
	fp=$(enroll_fp)
	on node1 node admit node2 --fingerprint "$fp"
	on node2 node join
	check "…node2 joins" [ "$rc" -eq 0 ]
	on node1 -c "$T/two.conf" request --subject "CN=two.custody.test" --self-signed \
		--days 90 --replicable -t OAuthTokenIssuer
	check "…a replicable 90-day certificate is current" [ "$rc" -eq 0 ]
	A=$out
	on node2 sync
	check "…node2 syncs it" [ "$rc" -eq 0 ]
	on node1 -c "$T/two.conf" rollover --at "$(day 70)" -o json
	check "day 70: node1's rollover stages a successor" [ "$rc" -eq 0 ]
	B=$(py 'print([o for o in d["created"] if o["object"]=="certificate"][0]["thumbprint"])')
	for n in node1 node2; do
		on "$n" get -t OAuthTokenIssuer --at "$(day 76)" -o thumbprint
		check "day 76, node2 not synced: $n still sees the first certificate current" \
			[ "$out" = "$A" ]
	done
	on node1 -c "$T/two.conf" test -t OAuthTokenIssuer --at "$(day 76)"
	check "…test is CRITICAL (exit 2), naming node2" \
		bash -c '[ '"$rc"' -eq 2 ] && grep -q "^CRITICAL OAuthTokenIssuer/global: .*node2" <<<"$0"' "$out"
	on node1 -c "$T/two.conf" rollover --at "$(day 76)"
	check "…rollover exits 0 and says the roll waits for node2" \
		bash -c '[ '"$rc"' -eq 0 ] && grep -q "waits for node2" <<<"$0"' "$err"
	check "…and records no roll" \
		[ "$(sqlite3 "$T/two.db" "SELECT count(*) FROM audit WHERE action = 'roll-effective'")" = 0 ]
	on node2 sync
	check "node2 syncs the successor" [ "$rc" -eq 0 ]
	for n in node1 node2; do
		on "$n" get -t OAuthTokenIssuer --at "$(day 76)" -o thumbprint
		check "day 76, every node holds it: $n sees the successor current" [ "$out" = "$B" ]
	done
	on node1 -c "$T/two.conf" test -t OAuthTokenIssuer --at "$(day 76)"
	check "…and test no longer names node2" bash -c '! grep -q "node2" <<<"$0"' "$out"
else
	echo "# two-node part skipped: openCryptoki has one software token"
fi

done_testing
