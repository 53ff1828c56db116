#!/usr/bin/env bash
# An administrator's mistakes, caught (issue 13): a mistyped type is refused
# with "did you mean", custom types are declared in custody.conf, -t takes a
# list (one transaction); a read never creates a store, a store in a missing
# directory is an error for every command, the first write says it made the
# store; thumbprints as Windows copies them; times without a zone, with
# ±HHMM, and bare dates; `custody help CMD`, "did you mean" for a command,
# `[]` for an empty JSON answer.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" <<<"$out"; }
store_rows() { # — the store's assignments, one line each (type identity current)
	"$CUSTODY_BIN" get -o json 2>/dev/null | python3 -c '
import json,sys
for a in json.load(sys.stdin):
    print(a["type"], a["identity"], (a.get("current") or {}).get("thumbprint"))'
}

# ------------------------------------------------------------ reads never create
db=${CUSTODY_STORE#sqlite:}
run get
check "get with no store: exit 1" [ "$rc" -eq 1 ]
check "…names the store's path" grep -qF "$db" <<<"$err"
check "…and how to make one" grep -q "custody import" <<<"$err"
check "…and made no file" [ ! -e "$db" ]
for args in "list" "test" "metadata" "audit" "status" "get -t OAuthTokenIssuer -o thumbprint"; do
	run $args
	check "$args with no store: exit 1 (or a monitoring UNKNOWN), no file made" \
		[ "$rc" -ne 0 -a "$rc" -ne 2 -a ! -e "$db" ]
done
for args in "get" "set -t OAuthTokenIssuer --thumbprint 0123456789ABCDEF"; do
	CUSTODY_STORE="sqlite:$T/missing/x.db" run $args
	check "$args, the store's directory missing: exit 1" [ "$rc" -eq 1 ]
	check "…says the directory does not exist" grep -q "$T/missing.*does not exist\|does not exist.*$T/missing" <<<"$err"
	check "…and made no directory" [ ! -e "$T/missing" ]
done

make_p12 a a.custody.test 365
make_p12 b b.custody.test 365
# A first write that is refused leaves no store (nor its -wal, -shm).
for args in "set -t OAuthTokenIssuer --thumbprint 0123456789ABCDEF0123456789ABCDEF01234567" \
	"remove -t OAuthTokenIssuer" "import --path $T/missing.p12"; do
	run $args
	check "$args, refused as the first write: exit ≠ 0" [ "$rc" -ne 0 ]
	check "…leaves no store file" bash -c '! ls "$1"* >/dev/null 2>&1' _ "$db"
	check "…and does not say it made one" bash -c '! grep -q "made the store" <<<"$1"' _ "$err"
done
A=$(thumbprint_of_p12 a)
B=$(thumbprint_of_p12 b)
run import --path "$T/a.p12"
check "the first write (import) makes the store: exit 0" [ "$rc" -eq 0 ]
check "…and says so" grep -q "made the store.*$db\|created.*$db" <<<"$err"
run import --path "$T/b.p12"
check "the second write does not say it again" \
	bash -c '! grep -q "made the store" <<<"$1"' _ "$err"
run get -o json
check "an empty store: get -o json prints [] and exits 0" [ "$rc" -eq 0 -a "$(py 'print(d)')" = "[]" ]
run get -t OAuthTokenIssuer -o json
check "nothing assigned for the type: -o json prints [] (exit 3)" [ "$rc" -eq 3 -a "$(py 'print(d)')" = "[]" ]

# ------------------------------------------------------------ import warns
make_p12 soon soon.custody.test 10
run import --path "$T/soon.p12"
check "a certificate valid for 10 more days imports: exit 0" [ "$rc" -eq 0 ]
check "…with a warning that it expires, and when" \
	grep -Eq "warning: certificate $(thumbprint_of_p12 soon) expires on .*, in (9|10) day\(s\) \(policy warn-days 30\)" <<<"$err"	# 10 within its first second
run import --path "$T/a.p12"
check "importing a certificate valid for a year warns of nothing" bash -c '! grep -q warning <<<"$1"' _ "$err"

# ------------------------------------------------------------ types
before=$(state)
run set -t OAuthTokenIssuers --thumbprint "$A"
check "set -t OAuthTokenIssuers (a typo): exit 2" [ "$rc" -eq 2 ]
check "…did you mean OAuthTokenIssuer?" grep -q "did you mean OAuthTokenIssuer?" <<<"$err"
check "…nothing written" [ "$(state)" = "$before" ]
run set -t Webservicesinternl --thumbprint "$A"
check "a near miss in another case: did you mean WebServicesInternal?" \
	[ "$rc" -eq 2 -a -n "$(grep 'did you mean WebServicesInternal?' <<<"$err")" ]
run set -t Frobnicator --thumbprint "$A"
check "an undeclared custom type: exit 2" [ "$rc" -eq 2 ]
check "…says how to declare it" grep -q "\[types\]" <<<"$err"

cat >"$T/custody.conf" <<CONF
[types]
custom = PartnerSigning, Frobnicator
CONF
export CUSTODY_CONFIG="$T/custody.conf"
run set -t Frobnicator --thumbprint "$A"
check "a custom type declared in custody.conf: set exits 0" [ "$rc" -eq 0 ]
run set -t PartnerSignin --thumbprint "$A"
check "a near miss of a declared custom type: did you mean PartnerSigning?" \
	[ "$rc" -eq 2 -a -n "$(grep 'did you mean PartnerSigning?' <<<"$err")" ]

before=$(state)
run set -t OAuthTokenIssuer,WebServicesInternal,Nope --thumbprint "$A"
check "-t A,B,C with one unknown type: exit 2, nothing written" [ "$rc" -eq 2 -a "$(state)" = "$before" ]
before=$(state)
run import --path "$T/a.p12" -t Default,WebServicesInternal
check "import -t A,B: exit 2 (import assigns one type), nothing written" \
	[ "$rc" -eq 2 -a "$(state)" = "$before" -a -n "$(grep 'assigns one type' <<<"$err")" ]
run set -t OAuthTokenIssuer,WebServicesInternal -t Default --thumbprint "$A"
check "-t A,B and -t C: exit 0" [ "$rc" -eq 0 ]
run get -o json
check "…all three assigned" [ "$(py 'print(sorted(a["type"] for a in d if (a.get("current") or {}).get("thumbprint")=="'"$A"'"))')" = "['Default', 'Frobnicator', 'OAuthTokenIssuer', 'WebServicesInternal']" ]
run audit -o json
check "…in one transaction: the audit entries of the three share one time" \
	[ "$(py 'import collections; c=collections.Counter(e["time"] for e in d if e["action"]=="set"); print(max(c.values()))')" -ge 3 ]

# ------------------------------------------------------------ input as pasted
lrm=$'\u200e' bom=$'\ufeff' nbsp=$'\u00a0'
spaced=$(sed 's/../&'"$nbsp"'/g' <<<"$B")
for pasted in "$lrm$B" "$bom$B" "$spaced" "$lrm$(sed 's/../& /g' <<<"$B")"; do
	run set -t WebServicesExternal --thumbprint "$pasted" --dry-run
	check "a thumbprint as pasted ($(printf %q "${pasted:0:8}")…) is accepted" [ "$rc" -eq 0 ]
done

run get --at 2026-12-09T05:00
check "a time without a zone: exit 2" [ "$rc" -eq 2 ]
check "…says the zone is missing and how to give it" grep -q "no time zone.*Z.*HH:MM" <<<"$err"
run get -t OAuthTokenIssuer -o thumbprint --at 2099-12-09T05:00+0100
check "±HHMM is accepted" [ "$rc" -eq 0 -a "$out" = "$A" ]
run get -t OAuthTokenIssuer --at 2099-12-09
check "a bare date: exit 0" [ "$rc" -eq 0 ]
check "…says the instant it means, in UTC" grep -q "2099-12-09T00:00:00Z" <<<"$err"

# ------------------------------------------------------------ help
run help get
check "custody help get: exit 0" [ "$rc" -eq 0 ]
help_get=$out
run get --help
check "…prints what get --help prints" [ "$out" = "$help_get" ]
run gett
check "an unknown command: exit 2" [ "$rc" -eq 2 ]
check "…did you mean get?" grep -q "did you mean get?" <<<"$err"
check "…in at most three lines" [ "$(wc -l <<<"$err")" -le 3 ]
for args in "init-token --label x" "tag" "wizard"; do
	run $args -o json </dev/null
	check "$args -o json: refused, it speaks to a person (exit 2)" \
		[ "$rc" -eq 2 -a -n "$(grep "output format json does not apply" <<<"$err")" ]
done

done_testing
