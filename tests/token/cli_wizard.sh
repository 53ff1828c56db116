#!/usr/bin/env bash
# custody wizard, driven through a pseudo-terminal by expect
# (tests/token/wizard.exp): a full assignment, going back, bad answers,
# cancel, Ctrl-C, Ctrl-D, a roll at a date, a refused plan, no terminal.
# Then the bash completion file (scripts/bash-completion/custody).
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
command -v expect >/dev/null ||
	{ echo "1..0 # SKIP expect is not installed (scripts/install-deps.sh installs it)"; exit 0; }
setup_token
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" <<<"$out"; }

EXP="$TOP_SRCDIR/tests/token/wizard.exp"
COMPLETION="$TOP_SRCDIR/scripts/bash-completion/custody"

# wizard NAME [ARGS...] <<STEPS — runs `custody wizard ARGS` under expect
# as STEPS say (see wizard.exp); leaves $wrc and the transcript in $log
# (and in $out, so that a failed check shows it).
wizard() {
	local name=$1
	shift
	cat >"$T/$name.steps"
	expect -f "$EXP" "$T/$name.steps" "$CUSTODY_BIN" wizard "$@" >"$T/$name.log" 2>&1
	wrc=$?
	log=$(tr -d '\r' <"$T/$name.log")
	out=$log
	err=""
}
# number THUMBPRINT — the certificate's number in the wizard's list: the
# token's order, certificates with their private key only.
number() {
	"$CUSTODY_BIN" list -o json | python3 -c '
import json, sys
keyed = [c["thumbprint"] for c in json.load(sys.stdin) if c["has_private_key"]]
print(keyed.index(sys.argv[1]) + 1)' "$1"
}
has() { grep -qF -- "$1" <<<"$log"; }
count() { grep -cF -- "$1" <<<"$log"; }

for n in a b c; do make_p12 "$n" "$n.custody.test" 365; done
make_p12 short short.custody.test 1
A=$(thumbprint_of_p12 a); B=$(thumbprint_of_p12 b); C=$(thumbprint_of_p12 c)
S=$(thumbprint_of_p12 short)
for n in a b c short; do "$CUSTODY_BIN" -q import --path "$T/$n.p12" >/dev/null; done
nA=$(number "$A"); nB=$(number "$B"); nC=$(number "$C"); nS=$(number "$S")

# --- no terminal ---
before=$(state)
run_in /dev/null wizard
check "without a terminal the wizard exits 2" [ "$rc" -eq 2 ]
check "…saying it needs a terminal" grep -q "custody: wizard: the wizard needs a terminal" <<<"$err"
check "…and pointing to custody set" grep -q "hint: .*custody set" <<<"$err"
check "…and nothing changed" [ "$(state)" = "$before" ]

# --- a full run: OAuthTokenIssuer at global gets A ---
run set -t OAuthTokenIssuer --thumbprint "$A" --dry-run
dry=$(grep '^  current' <<<"$err" | sed 's/ from .*//')
wizard full <<EOF
? 4) OAuthTokenIssuer
? Type [1-
> 4
? OAuthTokenIssuer is assigned at global only
? Certificate [1-
> $nA
? When [1-
> 1
? Apply? [y/N
> y
? Done.
EOF
check "a full run exits 0" [ "$wrc" -eq 0 ]
check "…the summary shows set --dry-run's line ($dry)" has "$dry from "
check "…the result shows A as current" grep -qE "^Thumbprint +: $A" <<<"$log"
run get -t OAuthTokenIssuer -o json
check "…and custody get shows A current at global" \
	[ "$(py 'print(d[0]["identity"], d[0]["current"]["thumbprint"])')" = "global $A" ]

# --- back from the certificate step to the type step, another type ---
wizard back <<EOF
? Type [1-
> 4
? Certificate [1-
> b
? Step 1 of 5
? Type [1-
> 1
? Identity [1-
> 1
? Certificate [1-
> $nB
? When [1-
> 1
? Apply?
> yes
? Done.
EOF
check "going back and choosing Default instead exits 0" [ "$wrc" -eq 0 ]
check "…the type step was shown twice" [ "$(count "Step 1 of 5")" -eq 2 ]
run get -t Default -i node1 -o thumbprint
check "…Default at this node holds B" [ "$out" = "$B" ]
run get -t OAuthTokenIssuer -o thumbprint
check "…OAuthTokenIssuer still holds A" [ "$out" = "$A" ]

# --- the step lists show what is assigned now ---
wizard lists <<EOF
? Type [1-
> 1
? Identity [1-
> q
? cancelled, nothing changed
EOF
check "the type list shows OAuthTokenIssuer's current certificate" has "global: current $A"
check "the identity list shows this node's current certificate of Default" \
	grep -qE "node1 .*this node: current $B" <<<"$log"

# --- answers that are not listed are asked again; cancel at the summary ---
before=$(state)
wizard invalid <<EOF
? Type [1-10
> 0
? please answer with a number from 1 to 10, b to go back or q to cancel
> abc
? please answer with a number from 1 to 10
> 4
? Certificate [1-
> 99
? please answer with a number from 1 to 4, b to go back or q to cancel
> $nB
? When [1-2
> 3
? please answer with a number from 1 to 2
> 1
? Apply?
> maybe
? please answer y to apply, n or q to cancel, or b to go back
> cancel
? cancelled, nothing changed
EOF
check "bad answers, then cancel at the summary: exit 0" [ "$wrc" -eq 0 ]
check "…every bad answer was asked again (4 times with numbers)" \
	[ "$(count "please answer with a number")" -eq 4 ]
check "…the summary was shown" has "OAuthTokenIssuer/global will change:"
check "…and nothing changed" [ "$(state)" = "$before" ]

wizard no <<EOF
? Type [1-
> 4
? Certificate [1-
> $nB
? When [1-
> 1
? Apply? [y/N
>
? cancelled, nothing changed
EOF
check "Enter at Apply? [y/N] cancels (exit 0) and changes nothing" \
	[ "$wrc" -eq 0 -a "$(state)" = "$before" ]

# --- Ctrl-C and Ctrl-D ---
wizard ctrlc <<EOF
? Type [1-
> 4
? Certificate [1-
^C
? interrupted, nothing changed
EOF
check "Ctrl-C at the certificate step ends with status 130" [ "$wrc" -eq 130 ]
check "…and nothing changed" [ "$(state)" = "$before" ]
wizard ctrld <<EOF
? Type [1-
> 4
? Certificate [1-
> $nB
? When [1-
^D
? cancelled, nothing changed
EOF
check "Ctrl-D (end of input) cancels: exit 0, nothing changed" \
	[ "$wrc" -eq 0 -a "$(state)" = "$before" ]

# --- a roll at a date ---
eff=$(date -u -d '+3 days' +%Y-%m-%dT%H:%M:%SZ)
wizard roll <<EOF
? Type [1-
> 4
? Certificate [1-
> $nC
? When [1-
> 2
? Effective date
> tomorrow
? invalid time 'tomorrow'
? Effective date
> 2001-01-01
? the effective date must be in the future
? Effective date
> b
? When [1-
> 2
? Effective date
> $eff
? Apply?
> y
? Done.
EOF
check "a roll at $eff exits 0" [ "$wrc" -eq 0 ]
check "…a bad date names the accepted forms" has "YYYY-MM-DD"
check "…the date question shows the time now, in UTC" \
	grep -qE "^It is now [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z \(UTC\)\.$" <<<"$log"
check "…back from the date went to the when step" [ "$(count "Step 4 of 5")" -eq 2 ]
check "…the summary shows the pending line" has "  pending : (none) -> $C from $eff"
check "…the result shows C pending" grep -qE "^PendingThumbprint +: $C" <<<"$log"
run get -t OAuthTokenIssuer -o json
check "…custody get shows C pending at $eff and A still current" \
	[ "$(py 'print(d[0]["pending"]["thumbprint"], d[0]["pending"]["effective_date"], d[0]["current"]["thumbprint"])')" = "$C $eff $A" ]

# --- a plan the rules refuse is said, and the step asked again ---
before=$(state)
later=$(date -u -d '+2 days' +%Y-%m-%dT%H:%M:%SZ)
wizard expired <<EOF
? Type [1-
> 2
? Identity [1-
> 2
? Certificate [1-
> $nS
? When [1-
> 2
? Effective date
> $later
? this cannot be done: at the effective date: certificate
? Effective date
> q
? cancelled, nothing changed
EOF
check "a certificate expired at the effective date is refused, then cancel: exit 0" [ "$wrc" -eq 0 ]
check "…saying it expired" has "expired on"
check "…and nothing changed" [ "$(state)" = "$before" ]

# --- bash completion ---
# complete_line LINE — what bash would offer at the end of LINE; a leading
# "custody" stands for the built binary, whose --help the completion reads.
complete_line() {
	bash --norc --noprofile -c '
		. "$1" || exit 1
		complete -p custody >/dev/null || exit 1
		COMP_LINE=$2
		COMP_POINT=${#COMP_LINE}
		read -r -a COMP_WORDS <<<"$COMP_LINE"
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		_custody custody "${COMP_WORDS[COMP_CWORD]}" ""
		printf "%s\n" "${COMPREPLY[@]}"' _ "$COMPLETION" "${1/#custody/$CUSTODY_BIN}"
}
offers() { # LINE EXPECTED... — the completions are exactly EXPECTED
	local got want
	got=$(complete_line "$1" | sort | tr '\n' ' ')
	want=$(printf '%s\n' "${@:2}" | sort | tr '\n' ' ')
	out=$got
	err="wanted: $want"
	[ "$got" = "$want" ]
}
check "completion: custody se<TAB> offers seal and set" offers "custody se" seal set
check "completion: custody get -t OAuth<TAB> offers OAuthTokenIssuer" offers "custody get -t OAuth" OAuthTokenIssuer
check "completion: type names in any case (--from-type oauth)" offers "custody set --from-type oauth" OAuthTokenIssuer
check "completion: command options (custody set --dr)" offers "custody set --dr" --dry-run
check "completion: custody delete --<TAB> includes --dry-run" \
	grep -qx -- "--dry-run" <(complete_line "custody delete --")
check "completion: custody delete --dr<TAB> offers --dry-run" offers "custody delete --dr" --dry-run
check "completion: output formats after -o" offers "custody get -o j" json
check "completion: PIN sources after --password-source" offers "custody import --password-source f" file: fd:
check "completion: a file after --pin-source file:" offers "custody --pin-source file:$T/user.p" "$T/user.pin"
check "completion: a file after --path" offers "custody import --path $T/sho" "$T/short.p12"
check "completion: the command after global options with values" offers "custody --at 2030-01-01 wiz" wizard

done_testing
