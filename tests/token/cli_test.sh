#!/usr/bin/env bash
# custody test (Test-CsCertificateConfiguration): one line per check, the
# monitoring-plugin exit statuses (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN),
# -o json, --warn-days, --successor-warn-days and --successor-critical-days,
# --at, pending and previous certificates, a key
# missing from this node's token, a token or store that cannot be used.
# Default's certificate S has an EC P-256 key; on a token that cannot sign
# with EC (openCryptoki 3.8.1) an RSA-2048 one, and there an EC key's
# import is refused up front.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" <<<"$out"; }
# Every stdout line is one check: "RESULT TYPE/IDENTITY: WHAT".
one_line_per_check() { ! grep -Evq '^(OK|WARNING|CRITICAL|UNKNOWN) [^ /]+/[^ :]+: .+$' <<<"$out"; }
all_ok() { [ -n "$out" ] && ! grep -vq '^OK ' <<<"$out"; }
# refused WHAT MESSAGE ARGS... — what the token lacks is refused up front:
# exit 1, MESSAGE the one line on stderr, nothing on stdout, the token and
# the store as they were.
refused() { refused_up_front "$1" "$2" run "${@:3}"; }

if token_can ec-sign; then
	skey=ec:prime256v1 SK=EC SALG=EC-P256 swhat=curve
else
	skey=rsa:2048 SK=RSA SALG=RSA-2048 swhat=size
fi
make_p12 a a.custody.test 365
make_p12 b b.custody.test 365
make_p12 s s.custody.test 10 "$skey"
A=$(thumbprint_of_p12 a); B=$(thumbprint_of_p12 b); S=$(thumbprint_of_p12 s)
key_id_of() { "$CUSTODY_BIN" get -t "$1" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["current"]["key_id"])'; }

# No store yet: UNKNOWN, and the check makes none.
run test
check "no store yet is UNKNOWN: exit 3" [ "$rc" -eq 3 ]
check "…saying there is no store" grep -q "^UNKNOWN \*/\*: no store at $T/custody.db" <<<"$out"
check "…and made none" [ ! -e "$T/custody.db" ]

# The token keeps one file per object (lib.sh): the files an import adds are the
# objects of what it imported.  The first write to the store makes the KEK
# that tags its rows (one more object): an unassigned certificate takes it,
# so that A's import adds A's objects alone.
make_p12 z z.custody.test 365
"$CUSTODY_BIN" -q import --path "$T/z.p12" >/dev/null
files=$(object_files)

# Nothing assigned yet.
run test
check "nothing assigned at all (no -t) is UNKNOWN: exit 3" [ "$rc" -eq 3 ]
check "…saying there is nothing to check" grep -qx "UNKNOWN \*/node1: nothing is assigned at identity node1 or global: nothing to check" <<<"$out"
"$CUSTODY_BIN" -q import --path "$T/a.p12" -t OAuthTokenIssuer >/dev/null
A_files=$(comm -13 <(printf '%s\n' "$files") <(object_files))
KA=$(key_id_of OAuthTokenIssuer)

before=$(state)
run test
check "all good: exit 0" [ "$rc" -eq 0 ]
check "…every line OK" all_ok
check "…one line per check, nothing else on stdout" one_line_per_check
check "…nothing on stderr" [ -z "$err" ]
check "…the certificate is current" grep -qx "OK OAuthTokenIssuer/global: certificate $A (CN=a.custody.test,O=custody test) is current" <<<"$out"
check "…its key signs and verifies" grep -qx "OK OAuthTokenIssuer/global: private key $KA on token test signs and verifies" <<<"$out"
check "…it meets the policy" grep -qx "OK OAuthTokenIssuer/global: RSA-2048 meets the policy" <<<"$out"
check "…it is valid now" grep -q "^OK OAuthTokenIssuer/global: certificate is valid from .* until " <<<"$out"
check "…it does not expire within 30 days" grep -q "^OK OAuthTokenIssuer/global: certificate expires in 36[45] days (.*), not within 30 days$" <<<"$out"
check "…nor within 60: no successor is needed yet" grep -q "^OK OAuthTokenIssuer/global: certificate expires in 36[45] days (.*), not within 60 days: no successor is needed yet$" <<<"$out"
check "…and changed nothing on the token or in the store" [ "$(state)" = "$before" ]

run test -o json
check "-o json: exit 0" [ "$rc" -eq 0 ]
check "-o json: objects with check, result, type, identity, message" \
	py 'assert all({"check","result","type","identity","message"} <= set(o) for o in d), d'
check "-o json: the checks are assigned, key, policy, valid, expiry, successor" \
	py 'assert [o["check"] for o in d] == ["assigned","key","policy","valid","expiry","successor"], d'
check "-o json: all OK for OAuthTokenIssuer/global" \
	py 'assert all((o["result"],o["type"],o["identity"]) == ("OK","OAuthTokenIssuer","global") for o in d), d'
check "-o json: the key line names the key id" \
	py 'assert d[1]["message"] == "private key '"$KA"' on token test signs and verifies", d'

run test -t Default
check "nothing assigned for an asked type is CRITICAL: exit 2" [ "$rc" -eq 2 ]
check "…in one line naming both identities" [ "$out" = "CRITICAL Default/node1: no certificate is assigned for type Default (identity node1 or global)" ]

# Expiry within warn-days (a 10-day certificate, at this node).
if ! token_can ec-sign; then
	make_p12 ec ec.custody.test 10 ec:prime256v1
	refused "an EC P-256 key on a token that cannot sign with EC" \
		"custody: import: token test cannot sign with EC-P256 keys: it has no CKM_ECDSA for signing" \
		import --path "$T/ec.p12" -t Default
fi
"$CUSTODY_BIN" -q import --path "$T/s.p12" -t Default >/dev/null
run test -t Default
check "a certificate expiring within 14 days with no successor staged is CRITICAL: exit 2" [ "$rc" -eq 2 ]
check "…saying so" grep -Eq "^CRITICAL Default/node1: certificate expires in (9|10) days \([0-9T:-]+Z\) and no successor is staged$" <<<"$out"
check "…and expiring within 30 days is a WARNING, saying when" grep -Eq "^WARNING Default/node1: certificate expires in (9|10) days \([0-9T:-]+Z\)$" <<<"$out"
check "…its other checks are OK" [ "$(grep -c '^OK Default/node1: ' <<<"$out")" -eq 4 ]
check "…including the $SK key's sign/verify challenge" grep -q "^OK Default/node1: private key [0-9a-f]* on token test signs and verifies$" <<<"$out"
check "…and its $swhat" grep -qx "OK Default/node1: $SALG meets the policy" <<<"$out"
run test
check "without -t the worst result wins: exit 2" [ "$rc" -eq 2 ]
check "…and both assignments are checked" [ "$(grep -c ' OAuthTokenIssuer/global: ' <<<"$out")" -eq 6 -a "$(grep -c ' Default/node1: ' <<<"$out")" -eq 6 ]
run test -t Default --warn-days 5 --successor-critical-days 5
check "--warn-days 5 --successor-critical-days 5: exit 1" [ "$rc" -eq 1 ]
check "…the one WARNING: no successor within 60 days" \
	[ "$(grep -v '^OK ' <<<"$out" | grep -Ec '^WARNING Default/node1: certificate expires in (9|10) days \([0-9T:-]+Z\) and no successor is staged$')" -eq 1 -a "$(grep -vc '^OK ' <<<"$out")" -eq 1 ]
run test -t Default --warn-days 5 --successor-critical-days 5 --successor-warn-days 5
check "--warn-days 5 --successor-warn-days 5 --successor-critical-days 5: exit 0" [ "$rc" -eq 0 ]
check "…every line OK" all_ok
printf '[policy]\nwarn-days = 5\nsuccessor-warn-days = 5\nsuccessor-critical-days = 5\n' >"$T/warn.conf"
run test -t Default -c "$T/warn.conf"
check "policy.warn-days, successor-warn-days and successor-critical-days from the config file are the defaults: exit 0" [ "$rc" -eq 0 ]
run test -t Default --node node2
check "another node does not see node1's assignment: CRITICAL" [ "$rc" -eq 2 ]

# --at past the expiry.
run test --at "$(date -u -d '+400 days' +%Y-%m-%d)"
check "--at past the expiry: CRITICAL, exit 2" [ "$rc" -eq 2 ]
check "…saying it expired" grep -q "^CRITICAL OAuthTokenIssuer/global: certificate CN=a.custody.test,O=custody test expired on " <<<"$out"
check "…and no expiry-window line for an expired certificate" [ "$(grep -c ' expires in ' <<<"$out")" -eq 0 ]

# A pending roll, valid at its effective date.
files=$(object_files)
"$CUSTODY_BIN" -q import --path "$T/b.p12" >/dev/null
B_files=$(comm -13 <(printf '%s\n' "$files") <(object_files))
eff=$(date -u -d '+3 days' +%Y-%m-%dT%H:%M:%SZ)
"$CUSTODY_BIN" -q set -t OAuthTokenIssuer --thumbprint "$B" --roll --effective-date "$eff" 2>/dev/null
run test -t OAuthTokenIssuer
check "a pending certificate valid at its date: exit 0" [ "$rc" -eq 0 ]
check "…with a pending line" grep -q "^OK OAuthTokenIssuer/global: pending certificate $B becomes current at $eff and is valid then (until .*)$" <<<"$out"
check "…and B as A's successor" grep -qx "OK OAuthTokenIssuer/global: successor $B staged for $eff" <<<"$out"
check "…and its key checked" grep -q "^OK OAuthTokenIssuer/global: private key [0-9a-f]* of the pending certificate on token test signs and verifies$" <<<"$out"

# At the effective date B is current and A previous: the previous key is checked.
run test -t OAuthTokenIssuer --at "$eff"
check "at the effective date: exit 0" [ "$rc" -eq 0 ]
check "…B is current" grep -q "^OK OAuthTokenIssuer/global: certificate $B " <<<"$out"
check "…A's key, as previous, is checked" grep -qx "OK OAuthTokenIssuer/global: private key $KA of the previous certificate on token test signs and verifies" <<<"$out"

# This node's keys set aside (A's and B's object files moved out of the
# token): as if custody ran on a node whose token lacks them.
check "A's and B's imports added their objects" [ -n "$A_files" ] && [ -n "$B_files" ]
set_aside "$A_files"
set_aside "$B_files"
run test -t OAuthTokenIssuer
check "the current key is not on this node's token: CRITICAL, exit 2" [ "$rc" -eq 2 ]
check "…saying so" grep -qx "CRITICAL OAuthTokenIssuer/global: private key $KA is not on token test" <<<"$out"
check "…the missing pending key is CRITICAL too" grep -q "^CRITICAL OAuthTokenIssuer/global: private key [0-9a-f]* of the pending certificate is not on token test$" <<<"$out"
put_back "$B_files"
run test -t OAuthTokenIssuer --at "$eff"
check "only the previous key missing is a WARNING: exit 1" [ "$rc" -eq 1 ]
check "…saying verifiers need only its certificate" grep -qx "WARNING OAuthTokenIssuer/global: private key $KA of the previous certificate is not on token test (verifiers need only its certificate; a roll back to it would fail)" <<<"$out"
check "…while the current key signs and verifies there" grep -q "^OK OAuthTokenIssuer/global: private key [0-9a-f]* on token test signs and verifies$" <<<"$out"
put_back "$A_files"
run test -t OAuthTokenIssuer --at "$eff"
check "A's objects back: exit 0" [ "$rc" -eq 0 ]

# A pending certificate that has expired by its effective date.  custody
# set refuses to stage one; a store changed elsewhere could hold one, but
# that row fails its integrity check, which is what custody test reports
# (CRITICAL, one line), and it checks nothing the row names.
late=$(( $(date -u +%s) + 40 * 86400 ))
sqlite3 "$T/custody.db" "update assignments set current_thumbprint = '$B', pending_thumbprint = '$S', pending_effective = $late where type = 'Default' and identity = 'node1'"
run test -t Default
check "an assignment changed in the store outside custody: CRITICAL, exit 2" [ "$rc" -eq 2 ]
check "…in one line, saying so" [ "$out" = "CRITICAL Default/node1: the store's assignment record default/node1 fails its integrity check: it was changed outside custody" ]

# The checks cannot run: UNKNOWN, exit 3, the reason on stdout and stderr.
run test --module "$T/no-such-module.so"
check "token module missing: UNKNOWN, exit 3" [ "$rc" -eq 3 ]
check "…one UNKNOWN line on stdout" grep -qx "UNKNOWN \*/\*: cannot load PKCS#11 module $T/no-such-module.so: .*" <<<"$out"
check "…and the error on stderr" grep -q "^custody: test: cannot load PKCS#11 module" <<<"$err"
run test -o json --module "$T/no-such-module.so"
check "-o json: the UNKNOWN object" py 'assert len(d) == 1 and d[0]["result"] == "UNKNOWN" and d[0]["check"] == "run", d'
printf '%s' 99999999 >"$T/wrong.pin"
run test --pin-source "file:$T/wrong.pin"
check "a PIN the token refuses: UNKNOWN, exit 3" [ "$rc" -eq 3 ]
check "…naming the refusal" grep -q "^UNKNOWN \*/\*: .*rejected the PIN" <<<"$out"
# A PIN longer than the token takes is refused before any login.
max_pin=$("$CUSTODY_BIN" token -o json | jq -r .max_pin)
head -c $((max_pin + 1)) /dev/zero | tr '\0' 9 >"$T/long.pin"
run test --pin-source "file:$T/long.pin"
check "a PIN longer than the token takes ($max_pin): UNKNOWN, exit 3, saying so" \
	grep -q "^3:UNKNOWN \*/\*: cannot log in to token test: the PIN has $((max_pin + 1)) characters, the token takes [0-9]* to $max_pin$" <<<"$rc:$out"
run test --store "sqlite:$T/user.pin/sub/custody.db"
check "a store that cannot be opened: UNKNOWN, exit 3" [ "$rc" -eq 3 ]
run test --warn-days -1
check "a usage error is UNKNOWN too: exit 3" [ "$rc" -eq 3 ]
check "…naming the option" grep -q "warn-days -1" <<<"$err"
run test --successor-critical-days 2w
check "--successor-critical-days 2w: a usage error, exit 3, naming the option" \
	bash -c '[ '"$rc"' -eq 3 ] && grep -q -- "--successor-critical-days 2w: expected a number of days" <<<"$0"' "$err"
run test -o pem
check "an output format test has no use for: exit 3" [ "$rc" -eq 3 ]
run test --help
check "--help exits 0" [ "$rc" -eq 0 ]
check "…and shows the synopsis" grep -q "^custody test \[-t TYPE\] \[--warn-days N\]" <<<"$out"

done_testing
