#!/usr/bin/env bash
# custody test's rollover checks on one clock (--at, days from now), with
# [rollover OAuthTokenIssuer] generate-before 20d, promote-before 15d and
# the default min-publish (48h): a certificate valid 90 days is OK at day
# 20, a WARNING at day 31 (59 days left, no successor), CRITICAL at day 77;
# once rollover stages its successor (day 70) the successor and published
# lines are OK; a roll forced sooner than min-publish is a published
# WARNING, and one that takes effect after the current certificate expires
# a successor WARNING (a gap).  CSR mode: the request waiting for its
# certificate is a WARNING, CRITICAL past the promotion date, and nothing
# once the certificate is imported.  A cluster of two nodes (a SoftHSM
# token each, a store of their own): a pending key that node B has not
# synced is a rollout WARNING before its effective date and CRITICAL naming
# B after it, while the old certificate stays current (the roll waits);
# after B's sync, OK, and the new one is current.  Exit statuses asserted
# each time.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" <<<"$out"; }

day() { date -u -d "+$1 days" +%Y-%m-%dT%H:%M:%SZ; }
# of CHECK — "RESULT message" of each line of check CHECK, from the JSON
# of the last `run test ... -o json`.
of() {
	python3 -c 'import json,sys
for o in json.load(sys.stdin):
    if o["check"] == sys.argv[1]:
        print(o["result"], o["message"])' "$1" <<<"$out"
}
# not_ok_lines — the checks of the last JSON run that are not OK, "CHECK RESULT".
not_ok_lines() {
	python3 -c 'import json,sys
for o in json.load(sys.stdin):
    if o["result"] != "OK":
        print(o["check"], o["result"])' <<<"$out"
}
# test_oauth DAY [ARGS...] — custody test of OAuthTokenIssuer at DAY, as JSON.
test_oauth() {
	local at=$1
	shift
	run test -t OAuthTokenIssuer --at "$(day "$at")" -o json "$@"
}
# not_after TYPE — the notAfter of TYPE's current certificate at global,
# as custody writes times.
not_after() {
	"$CUSTODY_BIN" get -t "$1" -i global -o json 2>/dev/null |
		python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[0]["current"]["not_after"])'
}

cat >"$T/roll.conf" <<EOF
[types]
custom = Partner
[rollover OAuthTokenIssuer]
enabled = yes
generate-before = 20d
promote-before = 15d
validity = 90
[rollover Partner]
enabled = yes
generate-before = 20d
promote-before = 15d
mode = csr
csr-dir = $T/csr
EOF
export CUSTODY_CONFIG=$T/roll.conf
mkdir "$T/csr"

# ---------------------------------------------------------------- successor
run request --subject "CN=sts.custody.test,O=custody test" --self-signed --days 90 -t OAuthTokenIssuer
first=$out
check "a 90-day self-signed OAuthTokenIssuer certificate is current" [ "$rc" -eq 0 -a ${#first} -eq 40 ]
na=$(not_after OAuthTokenIssuer)
check "…its notAfter read back" grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' <<<"$na"

test_oauth 20
check "day 20 (70 days left): exit 0" [ "$rc" -eq 0 ]
check "…no successor needed yet" \
	grep -Eqx "OK certificate expires in (69|70) days \($na\), not within 60 days: no successor is needed yet" <<<"$(of successor)"
check "…and nothing else to say: no pending, published or csr line" \
	[ -z "$(of pending)$(of published)$(of rollout)$(of csr)" ]

test_oauth 31
check "day 31 (59 days left), no successor staged: exit 1" [ "$rc" -eq 1 ]
check "…a successor WARNING" \
	grep -Eqx "WARNING certificate expires in (58|59) days \($na\) and no successor is staged" <<<"$(of successor)"
check "…the only line that is not OK (expiry warns at 30 days)" [ "$(not_ok_lines)" = "successor WARNING" ]

test_oauth 77
check "day 77 (13 days left), no successor staged: exit 2" [ "$rc" -eq 2 ]
check "…a successor CRITICAL" \
	grep -Eqx "CRITICAL certificate expires in (12|13) days \($na\) and no successor is staged" <<<"$(of successor)"
run test -t OAuthTokenIssuer --at "$(day 77)"
check "…the same in the table: exit 2, its line" \
	bash -c '[ '"$rc"' -eq 2 ] && grep -Eqx "CRITICAL OAuthTokenIssuer/global: certificate expires in (12|13) days \\($1\\) and no successor is staged" <<<"$0"' "$out" "$na"
run test -t OAuthTokenIssuer --at "$(day 77)" --successor-critical-days 10
check "--successor-critical-days 10 at day 77: the successor line is a WARNING (exit 1)" \
	bash -c '[ '"$rc"' -eq 1 ] && grep -Eq "^WARNING OAuthTokenIssuer/global: certificate expires in (12|13) days .* and no successor is staged$" <<<"$0"' "$out"

# rollover stages the successor at day 70, for day 75.
run rollover --at "$(day 70)" -t OAuthTokenIssuer -o json
check "day 70: rollover stages a successor (exit 0)" [ "$rc" -eq 0 ]
second=$(py 'print([o for o in d["created"] if o["object"]=="certificate"][0]["thumbprint"])')
effective=$(py 'print(d["changes"][0]["effective"])')
check "…staged for day 75" [ "${effective%T*}" = "$(date -u -d "@$(( $(date -u -d "$na" +%s) - 15 * 86400 ))" +%Y-%m-%d)" ]
run audit -o json
staged=$(py 'print([x for x in d if x["action"]=="roll" and x["thumbprint"]=="'"$second"'"][-1]["time"])')
test_oauth 70
check "day 70, the successor staged: exit 0 (it takes over before the expiry)" [ "$rc" -eq 0 ]
check "…the successor line OK, naming it and its date" [ "$(of successor)" = "OK successor $second staged for $effective" ]
check "…published long enough before it takes effect" \
	grep -Eqx "OK pending $second takes effect $effective, (74|75) days after it was published \($staged\); min-publish is 48h" <<<"$(of published)"
check "…the expiry line OK, saying the successor takes over" \
	grep -q "^OK certificate expires in .*; its successor takes over before" <<<"$(of expiry)"
check "…every line OK, and no cluster, no rollout line" [ -z "$(not_ok_lines)" -a -z "$(of rollout)" ]
test_oauth 76
check "day 76: the successor is current, all OK (exit 0)" [ "$rc" -eq 0 -a -z "$(not_ok_lines)" ]
check "…its assigned line names it" grep -q "^OK certificate $second " <<<"$(of assigned)"

# A roll sooner than min-publish: refused, then forced; test warns.
run request --subject "CN=early.custody.test" --self-signed --days 90
early=$out
check "another certificate, unassigned" [ "$rc" -eq 0 -a ${#early} -eq 40 ]
soon=$(date -u -d "@$(( $(date +%s) + 3 * 3600 ))" +%Y-%m-%dT%H:%M:%SZ)
run set -t OAuthTokenIssuer --thumbprint "$early" --roll --effective-date "$soon"
check "a roll 3 hours from now is refused (min-publish 48h): exit 1" \
	bash -c '[ '"$rc"' -eq 1 ] && grep -q "too soon" <<<"$0"' "$err"
run set -t OAuthTokenIssuer --thumbprint "$early" --roll --effective-date "$soon" --force
check "…and staged with --force" [ "$rc" -eq 0 ]
run test -t OAuthTokenIssuer -o json
check "a roll forced sooner than min-publish: exit 1" [ "$rc" -eq 1 ]
check "…a published WARNING: only hours after it was published" \
	grep -Eqx "WARNING pending $early takes effect $soon, only (2h59m[0-9]+s|3h) after it was published \([0-9T:-]+Z\); min-publish is 48h" <<<"$(of published)"
check "…the only line that is not OK" [ "$(not_ok_lines)" = "published WARNING" ]
check "…while the successor line is OK (it takes over before the current one expires)" \
	[ "$(of successor)" = "OK successor $early staged for $soon" ]

# A successor that takes effect after the current certificate expires.
run request --subject "CN=late.custody.test" --self-signed --days 200
late=$out
check "a 200-day certificate, unassigned" [ "$rc" -eq 0 -a ${#late} -eq 40 ]
gap=$(day 95)
# (--force: it replaces the pending roll staged above.)
run set -t OAuthTokenIssuer --thumbprint "$late" --roll --effective-date "$gap" --force
check "…staged for day 95, after day 90's expiry" [ "$rc" -eq 0 ]
run test -t OAuthTokenIssuer -o json
check "a successor after the current certificate expires: exit 1" [ "$rc" -eq 1 ]
check "…a successor WARNING: the gap" \
	[ "$(of successor)" = "WARNING successor $late takes effect at $gap, after the current certificate expires ($na): a gap in which no valid certificate signs" ]

# ---------------------------------------------------------------- csr
run request --subject "CN=partner.custody.test" --self-signed --days 90 -t Partner -i global
partner=$out
check "a 90-day Partner certificate is current" [ "$rc" -eq 0 -a ${#partner} -eq 40 ]
promote=$(date -u -d "@$(( $(date -u -d "$(not_after Partner)" +%s) - 15 * 86400 ))" +%Y-%m-%dT%H:%M:%SZ)
run test -t Partner --at "$(day 71)" -o json
check "day 71, no request yet: no csr line" [ -z "$(of csr)" ]
run rollover -t Partner --at "$(day 71)" -o json
check "csr mode: rollover writes the request (exit 0)" [ "$rc" -eq 0 ]
kid=$(py 'print([o for o in d["created"] if o["object"]=="csr_file"][0]["key_id"])')
csr=$(ls "$T/csr"/*.csr)
check "…one request file" [ -f "$csr" -a ${#kid} -eq 40 ]
run test -t Partner --at "$(day 71)" -o json
check "day 71, the request waits: exit 1" [ "$rc" -eq 1 ]
check "…a csr WARNING: import it before the promotion date" \
	[ "$(of csr)" = "WARNING the request $kid (rollover of Partner) waits for its certificate (import it before $promote)" ]
check "…and the successor WARNING (19 days left, nothing staged)" \
	grep -q "^WARNING certificate expires in 1[89] days .* and no successor is staged$" <<<"$(of successor)"
run test -t Partner --at "$(day 77)"
check "day 77, past the promotion date: exit 2" [ "$rc" -eq 2 ]
check "…a csr CRITICAL line" grep -qx "CRITICAL Partner/global: the certificate for request $kid (rollover of Partner) has not been imported and the promotion date $promote has passed" <<<"$out"

# The CA's certificate for the request: its import stages it, and the
# request no longer waits.
issued=$(ca_issue "$csr" "$T/partner2.pem")
run import --path "$T/partner2.pem"
check "the issued certificate imports, staged (exit 0)" [ "$rc" -eq 0 ]
run test -t Partner --at "$(day 72)" -o json
check "day 72, the successor staged: no csr line" [ -z "$(of csr)" ]
check "…the successor line OK" grep -q "^OK successor $issued staged for " <<<"$(of successor)"

# ---------------------------------------------------------------- rollout
# Two nodes, a SoftHSM token each, on a store of their own (no [rollover]
# policy there: rolls without min-publish).
if [ "$CUSTODY_TEST_TOKEN" = opencryptoki ]; then
	echo "# the cluster part runs on SoftHSM tokens alone: skipped on openCryptoki"
	done_testing
	exit
fi
cstore="sqlite:$T/cluster.db"
softhsm_beside nodeA "$cstore"
softhsm_beside nodeB "$cstore"
on nodeA kek create
check "nodeA creates the cluster KEK" [ "$rc" -eq 0 ]
on nodeA kek authority
authority=$out
on nodeB node enroll --authority "$authority"
check "nodeB enrolls" [ "$rc" -eq 0 ]
fp=$(enroll_fp)
on nodeA node admit nodeB --fingerprint "$fp" --so-pin-source "file:$T/nodeA/so.pin"
check "nodeA's security officer admits it" [ "$rc" -eq 0 ]
on nodeB node join
check "nodeB joins" [ "$rc" -eq 0 ]
on nodeA request --subject "CN=c1.custody.test" --replicable --self-signed --days 90 -t OAuthTokenIssuer
c1=$out
check "a replicable certificate current at global" [ "$rc" -eq 0 -a ${#c1} -eq 40 ]
on nodeB sync
check "nodeB syncs its key" [ "$rc" -eq 0 ]
on nodeA request --subject "CN=c2.custody.test" --replicable --self-signed --days 90
c2=$out
check "its successor, replicable" [ "$rc" -eq 0 -a ${#c2} -eq 40 ]
eff=$(day 5)
on nodeA set -t OAuthTokenIssuer --thumbprint "$c2" --roll --effective-date "$eff"
check "…staged for day 5" [ "$rc" -eq 0 ]

on nodeA test -t OAuthTokenIssuer -o json
check "before its date, nodeB without the successor's key: exit 1" [ "$rc" -eq 1 ]
check "…a rollout WARNING naming nodeB" \
	[ "$(of rollout)" = "WARNING pending $c2 (effective $eff) is not yet on nodeB (custody sync there)" ]
check "…the only line that is not OK" [ "$(not_ok_lines)" = "rollout WARNING" ]
on nodeA test -t OAuthTokenIssuer --at "$(day 6)"
check "after its date: exit 2" [ "$rc" -eq 2 ]
check "…a rollout CRITICAL: the roll waits for nodeB" \
	grep -qx "CRITICAL OAuthTokenIssuer/global: roll to $c2 was due $eff and waits for nodeB: it does not hold its key (custody sync there)" <<<"$out"
check "…while c1 stays current" grep -q "^OK OAuthTokenIssuer/global: certificate $c1 " <<<"$out"
on nodeA get -t OAuthTokenIssuer --at "$(day 6)" -o thumbprint
check "get after the effective date: the old certificate is still current (the roll waits)" [ "$rc" -eq 0 -a "$out" = "$c1" ]
on nodeB test -t OAuthTokenIssuer --at "$(day 6)"
check "nodeB's own test says the same: exit 2, naming itself" \
	bash -c '[ '"$rc"' -eq 2 ] && grep -q "waits for nodeB: it does not hold its key" <<<"$0"' "$out"

on nodeB sync
check "nodeB syncs the successor's key" [ "$rc" -eq 0 ]
on nodeA test -t OAuthTokenIssuer -o json
check "once every node holds it: exit 0" [ "$rc" -eq 0 -a -z "$(not_ok_lines)" ]
check "…the rollout line OK, counting both nodes" [ "$(of rollout)" = "OK pending $c2 is on every node (2)" ]
on nodeA test -t OAuthTokenIssuer --at "$(day 6)"
check "after the effective date: exit 0, c2 current" \
	bash -c '[ '"$rc"' -eq 0 ] && grep -q "^OK OAuthTokenIssuer/global: certificate $1 " <<<"$0"' "$out" "$c2"
on nodeA get -t OAuthTokenIssuer --at "$(day 6)" -o thumbprint
check "get after the effective date: the new certificate is current" [ "$rc" -eq 0 -a "$out" = "$c2" ]

done_testing
