#!/usr/bin/env bash
# custody set / remove / delete: current, previous and pending through the
# command line, --at previews (refused for writes), --dry-run, --from-type, concurrency, config.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" <<<"$out"; }

for n in a b c; do make_p12 "$n" "$n.custody.test" 365; done
A=$(thumbprint_of_p12 a); B=$(thumbprint_of_p12 b); C=$(thumbprint_of_p12 c)
for n in a b c; do "$CUSTODY_BIN" -q import --path "$T/$n.p12" >/dev/null; done

run set -t OAuthTokenIssuer --thumbprint "$A"
check "set A as OAuthTokenIssuer (identity defaults to global)" [ "$rc" -eq 0 ]
run get -t OAuthTokenIssuer -o json
check "A is current at global" [ "$(py 'print(d[0]["identity"], d[0]["current"]["thumbprint"])')" = "global $A" ]

# A prefix, in lower case with colons, names B.
prefix=$(echo "${B:0:10}" | tr A-F a-f | sed 's/../&:/g; s/:$//')
run set -t oauthtokenissuer --thumbprint "$prefix" --force
check "set B by a lower-case prefix with colons" [ "$rc" -eq 0 ]
run get -t OAuthTokenIssuer -o json
check "B current, A previous" [ "$(py 'print(d[0]["current"]["thumbprint"], d[0]["previous"]["thumbprint"])')" = "$B $A" ]

run set -t OAuthTokenIssuer --thumbprint "$B"
check "setting the current certificate again is a no-op exiting 0" [ "$rc" -eq 0 ]
check "…and says so" grep -q "already current" <<<"$err"

# A roll at an effective date; --at previews both sides of the instant.
eff=$(date -u -d '+3 days' +%Y-%m-%dT%H:%M:%SZ)
before_eff=$(date -u -d "$eff -1 second" +%Y-%m-%dT%H:%M:%SZ)	# from eff: one clock reading
before=$(state)
run set -t OAuthTokenIssuer --thumbprint "$C" --roll --effective-date "$eff" --dry-run
check "--dry-run exits 0 and changes nothing" [ "$rc" -eq 0 -a "$(state)" = "$before" ]
check "--dry-run says what would change" grep -q "would change" <<<"$err"
run set -t OAuthTokenIssuer --thumbprint "$C" --roll --effective-date "$eff"
check "roll C at $eff" [ "$rc" -eq 0 ]
run get -t OAuthTokenIssuer -o json
check "C is pending with its effective date" [ "$(py 'print(d[0]["pending"]["thumbprint"], d[0]["pending"]["effective_date"])')" = "$C $eff" ]
check "B is still current before the date" [ "$(py 'print(d[0]["current"]["thumbprint"])')" = "$B" ]
run get -t OAuthTokenIssuer -o thumbprint --at "$before_eff"
check "one second before the instant B is current" [ "$out" = "$B" ]
run get -t OAuthTokenIssuer -o json --at "$eff"
check "at the instant C is current and B previous" [ "$(py 'print(d[0]["current"]["thumbprint"], d[0]["previous"]["thumbprint"], d[0]["pending"])')" = "$C $B None" ]

# A set without --roll cancels the pending roll and says so.
run set -t OAuthTokenIssuer --thumbprint "$A" --force
check "set while a roll is pending exits 0" [ "$rc" -eq 0 ]
check "…and says the pending roll is cancelled" grep -q "pending roll to $C is cancelled" <<<"$err"
run get -t OAuthTokenIssuer -o json
check "A current, B previous, nothing pending" [ "$(py 'print(d[0]["current"]["thumbprint"], d[0]["previous"]["thumbprint"], d[0]["pending"])')" = "$A $B None" ]

# --from-type: Default takes OAuthTokenIssuer's current certificate, at this node.
run set -t Default --from-type OAuthTokenIssuer
check "set -t Default --from-type OAuthTokenIssuer" [ "$rc" -eq 0 ]
run get -t Default -o json
check "Default at node1 holds A" [ "$(py 'print(d[0]["identity"], d[0]["current"]["thumbprint"])')" = "node1 $A" ]

# remove: previous inside the overlap window needs --force; pending; current.
before=$(state)
run remove -t OAuthTokenIssuer --previous
check "removing the previous inside the overlap window is refused (exit 1)" [ "$rc" -eq 1 ]
check "…naming the window" grep -q "overlap window" <<<"$err"
check "…and nothing changed" [ "$(state)" = "$before" ]
run remove -t OAuthTokenIssuer --previous --at "$(date -u -d '+2 days' +%Y-%m-%d)"
check "remove refuses --at (exit 2): it writes at the real time" [ "$rc" -eq 2 ]
check "…saying so" grep -q "custody: remove: --at is for reading: remove writes, and writes at the real time" <<<"$err"
check "…and nothing changed" [ "$(state)" = "$before" ]
run remove -t OAuthTokenIssuer --previous --force
check "with --force, previous can be removed inside the window" [ "$rc" -eq 0 ]
run get -t OAuthTokenIssuer -o json
check "previous is gone" [ "$(py 'print(d[0]["previous"])')" = "None" ]
run set -t OAuthTokenIssuer --thumbprint "$C" --roll --effective-date "$eff"
run remove -t OAuthTokenIssuer --pending
check "remove --pending" [ "$rc" -eq 0 ]
run get -t OAuthTokenIssuer -o json
check "pending is gone, A still current" [ "$(py 'print(d[0]["current"]["thumbprint"], d[0]["pending"])')" = "$A None" ]
run remove -t OAuthTokenIssuer --pending
check "removing an empty slot exits 3" [ "$rc" -eq 3 ]

# delete: refused while assigned; --force clears the assignment too.
before=$(state)
run delete --thumbprint "$A"
check "delete of an assigned certificate is refused (exit 1)" [ "$rc" -eq 1 ]
check "…naming the assignment" grep -q "is assigned as" <<<"$err"
check "…and nothing changed" [ "$(state)" = "$before" ]
n=$(count_objects)
run delete --thumbprint "$C"
check "delete of an unassigned certificate exits 0" [ "$rc" -eq 0 ]
check "…and destroys its certificate, private and public key" [ "$(count_objects)" -eq $((n - 3)) ]
run delete --thumbprint "$A" --force
check "delete --force of an assigned certificate exits 0" [ "$rc" -eq 0 ]
run get -t OAuthTokenIssuer -o thumbprint
check "…and no assignment names it any more (exit 3)" [ "$rc" -eq 3 ]
check "…with the contract's message" grep -q "no certificate is assigned for type OAuthTokenIssuer (identity global)" <<<"$err"

# Global options after the command; config file < environment < command line.
cat >"$T/custody.conf" <<CONF
[token]
module = $CUSTODY_MODULE
label = test
pin-source = file:$T/user.pin
[store]
url = sqlite:$T/other.db
[node]
name = fromconfig
CONF
run get -o json -c "$T/custody.conf"
check "the environment's store wins over the config file's" \
	[ "$rc" -eq 0 -a ! -f "$T/other.db" ]	# the file's store does not exist: it would be exit 1
run --store "sqlite:$T/cli.db" get -c "$T/custody.conf" -o json
check "the command line's store wins over the environment's" grep -q "no store at $T/cli.db" <<<"$err"
( unset CUSTODY_STORE CUSTODY_NODE CUSTODY_MODULE CUSTODY_TOKEN CUSTODY_PIN_SOURCE
  "$CUSTODY_BIN" -c "$T/custody.conf" -q set -t Default --thumbprint "$B" >/dev/null 2>&1 )
check "values come from the config file when nothing else gives them" \
	bash -c "sqlite3 '$T/other.db' 'select identity from assignments' | grep -qx fromconfig"
printf '[token]\nmodul = x\n' >"$T/bad.conf"
run get -c "$T/bad.conf"
check "an unknown config key is a usage error naming it" grep -q "^2:.*modul" <<<"$rc:$err"

# Two concurrent sets of different certificates on one assignment: each
# either wins or exits 1 with "assignment changed concurrently"; none is lost.
make_p12 d d.custody.test 365
D=$(thumbprint_of_p12 d)
"$CUSTODY_BIN" -q import --path "$T/d.p12" >/dev/null
( "$CUSTODY_BIN" -q set -t WebServicesInternal --thumbprint "$B" >/dev/null 2>"$T/c1"; echo $? >"$T/r1" ) &
( "$CUSTODY_BIN" -q set -t WebServicesInternal --thumbprint "$D" >/dev/null 2>"$T/c2"; echo $? >"$T/r2" ) &
wait
r1=$(cat "$T/r1"); r2=$(cat "$T/r2")
outcome_ok() {
	for i in 1 2; do
		r=$(cat "$T/r$i")
		[ "$r" = 0 ] && continue
		[ "$r" = 1 ] && grep -q "assignment changed concurrently" "$T/c$i" && continue
		return 1
	done
}
check "two concurrent sets: each wins or reports the concurrent change" outcome_ok
run get -t WebServicesInternal -o json
if [ "$r1" = 0 ] && [ "$r2" = 0 ]; then
	check "both won in turn: one is current, the other previous" \
		py 'c=d[0]["current"]["thumbprint"]; p=d[0]["previous"]["thumbprint"]; assert {c,p}=={"'"$B"'","'"$D"'"}'
else
	check "one won: the winner is current" \
		py 'assert d[0]["current"]["thumbprint"] in ("'"$B"'","'"$D"'")'
fi

done_testing
