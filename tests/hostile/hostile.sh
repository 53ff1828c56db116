#!/usr/bin/env bash
# hostile.sh — runs every bad input of tests/hostile/table.tsv against
# custody on a throwaway token and store, in TAP, one check per row.
#
# Each row must: exit with the status the row says (1, 2 or 3), print
# exactly one stderr line starting "custody:" that matches the row's regex
# (warnings aside; hints and usage text may follow it), print nothing on
# stdout, not crash (a status under 128), not hang (HOSTILE_TIMEOUT
# seconds, default 20), and leave the token's objects, the store's rows
# and the files of the test's directory exactly as they were.
#
# CUSTODY_BIN may be a wrapper (tests/valgrind-custody.sh): its own
# failures then show as a wrong exit status.  HOSTILE_TABLE names another
# table; HOSTILE_ONLY=REGEX runs the rows whose id matches.
top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top/tests/token/lib.sh"
table=${HOSTILE_TABLE:-$top/tests/hostile/table.tsv}
limit=${HOSTILE_TIMEOUT:-20}

[ -r "$table" ] || { echo "Bail out! cannot read $table"; exit 1; }
command -v timeout >/dev/null || { echo "Bail out! timeout(1) is missing"; exit 1; }
setup_token hostile

# ---------------------------------------------------------------- fixtures
export P12_PASSWORD=right-password WRONG_PASSWORD=wrong-password
unset CUSTODY_HOSTILE_UNSET
make_p12 good good.custody.test 365 rsa:2048 P12_PASSWORD
GOOD=$(thumbprint_of_p12 good P12_PASSWORD)
make_p12 other other.custody.test 365 ec:prime256v1
OTHER=$(thumbprint_of_p12 other)
make_p12 small small.custody.test 30 rsa:1024
head -c 700 "$T/good.p12" >"$T/truncated.p12"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -keyout /dev/null \
	-subj /CN=certonly.custody.test -days 30 -out "$T/certonly.pem" 2>/dev/null
head -c 3000 /dev/urandom >"$T/garbage.bin"
: >"$T/empty"
mkfifo "$T/fifo"
openssl rand -hex 6 >"$T/wrong.pin"
{
	"$CUSTODY_BIN" -q import --path "$T/good.p12" --password-source env:P12_PASSWORD \
		-t OAuthTokenIssuer -i global &&
		"$CUSTODY_BIN" -q import --path "$T/other.p12"
} >/dev/null || { echo "Bail out! cannot import the fixtures"; exit 1; }

# Config files, one fault each.
printf '[token]\nfrobnicate = 1\n' >"$T/unknown-key.conf"
printf 'module = /x.so\n' >"$T/no-section.conf"
printf '[bogus]\nkey = 1\n' >"$T/unknown-section.conf"
printf '[token\nlabel = x\n' >"$T/syntax.conf"
{ printf '[token]\nlabel = '; head -c 20000 /dev/zero | tr '\0' a; printf '\n'; } >"$T/long-line.conf"
printf '[policy]\nmin-rsa-bits = lots\n' >"$T/bad-policy.conf"
printf '[store]\nurl = mysql://x\n' >"$T/bad-url.conf"

# JWTs: one good, then tampered, unsigned and huge ones.
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
JWT=$("$CUSTODY_BIN" jwt issue -t OAuthTokenIssuer --claims '{"sub":"hostile"}' 2>/dev/null)
case $JWT in
*.*.*) ;;
*) echo "Bail out! cannot issue the fixture JWT"; exit 1 ;;
esac
IFS=. read -r jwt_h _ jwt_s <<<"$JWT"
JWT_TAMPERED="$jwt_h.$(printf '{"sub":"mallory","exp":4102444800}' | b64url).$jwt_s"
JWT_NONE="$(printf '{"alg":"none","typ":"JWT"}' | b64url).$(printf '{"sub":"x"}' | b64url)."
JWT_HUGE="$jwt_h.$(head -c 70000 /dev/zero | tr '\0' A).$jwt_s"

placeholders=(
	"@T@=$T" "@TOKEN@=$CUSTODY_TOKEN" "@GOOD@=$GOOD" "@OTHER@=$OTHER"
	"@GOODP12@=$T/good.p12" "@TRUNCP12@=$T/truncated.p12" "@SMALLP12@=$T/small.p12"
	"@CERTONLY@=$T/certonly.pem" "@GARBAGE@=$T/garbage.bin" "@EMPTY@=$T/empty"
	"@FIFO@=$T/fifo" "@WRONGPIN@=$T/wrong.pin"
	"@CONF_UNKNOWN_KEY@=$T/unknown-key.conf" "@CONF_NO_SECTION@=$T/no-section.conf"
	"@CONF_UNKNOWN_SECTION@=$T/unknown-section.conf" "@CONF_SYNTAX@=$T/syntax.conf"
	"@CONF_LONG_LINE@=$T/long-line.conf" "@CONF_BAD_POLICY@=$T/bad-policy.conf"
	"@CONF_BAD_URL@=$T/bad-url.conf"
	"@JWT_TAMPERED@=$JWT_TAMPERED" "@JWT_NONE@=$JWT_NONE" "@JWT_HUGE@=$JWT_HUGE"
	"@JWT@=$JWT" "@LONG@=$(head -c 5000 /dev/zero | tr '\0' a)"
)
fill() { # COMMAND — the command line with every placeholder filled, quoted
	local line=$1 p key value
	for p in "${placeholders[@]}"; do
		key=${p%%=*}
		value=${p#*=}
		line=${line//"$key"/$(printf '%q' "$value")}
	done
	printf '%s' "$line"
}

# Everything a bad input must not change: token objects and store rows
# (lib.sh), and the files of the test's directory (the runner's scratch
# directory, the lock directory and SQLite's journal files aside).
R=$T/run
mkdir -p "$R"
snapshot() {
	state
	find "$T" -path "$R" -prune -o -path "$T/lock" -prune -o -path "$T/tokens" -prune -o \
		-name 'custody.db*' -prune -o -printf '%P %y %s\n' | LC_ALL=C sort | sha256sum
}

# The command under test: the runner's environment, no hang.
custody() { timeout -k 5 "$limit" "$CUSTODY_BIN" "$@"; }

# needs SPEC — 0 when this custody has what the row needs.
needs() {
	case $1 in
	'' | -) return 0 ;;
	cmd:*) "$CUSTODY_BIN" "${1#cmd:}" --help >/dev/null 2>&1 ;;
	opt:*:*)
		local spec=${1#opt:}
		"$CUSTODY_BIN" "${spec%%:*}" --help 2>&1 | grep -q -e "${spec#*:}"
		;;
	*) return 1 ;;
	esac
}

rows=0
run_row() { # ID COMMAND STATUS REGEX NEEDS
	local id=$1 cmd=$2 want=$3 regex=$4 need=$5 before after rc lines first
	rows=$((rows + 1))
	if ! needs "$need"; then
		tap_n=$((tap_n + 1))
		case $need in
		cmd:*) echo "ok $tap_n - $id # SKIP custody has no command ${need#cmd:}" ;;
		*) echo "ok $tap_n - $id # SKIP custody ${need#opt:} is not there" ;;
		esac
		return
	fi
	case $want in
	1 | 2 | 3) ;;
	*)
		not_ok "$id: the table wants exit $want (only 1, 2 or 3 are bad-input statuses)"
		return
		;;
	esac
	before=$(snapshot)
	(eval "$(fill "$cmd")") </dev/null >"$R/stdout" 2>"$R/stderr"
	rc=$?
	after=$(snapshot)
	lines=$(grep '^custody:' "$R/stderr" | grep -vc '^custody: warning:')
	first=$(grep '^custody:' "$R/stderr" | grep -v '^custody: warning:' | head -1)
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		not_ok "$id: no hang" "still running after $limit s: $cmd"
	elif [ "$rc" -ge 128 ]; then
		not_ok "$id: no crash" "killed by signal $((rc - 128)): $cmd" \
			"stderr: $(head -c 2000 "$R/stderr")"
	elif [ "$rc" -ne "$want" ]; then
		not_ok "$id: exit $want" "exit was $rc: $cmd" "stderr: $(head -c 2000 "$R/stderr")"
	elif [ "$lines" -ne 1 ]; then
		not_ok "$id: one custody: line" "$lines lines: $cmd" "stderr: $(head -c 2000 "$R/stderr")"
	elif ! grep -Eq -e "$regex" <<<"$first"; then
		not_ok "$id: message matches /$regex/" "$cmd" "stderr: $(head -c 2000 "$R/stderr")"
	elif [ -s "$R/stdout" ]; then
		not_ok "$id: nothing on stdout" "$cmd" "stdout: $(head -c 500 "$R/stdout")"
	elif [ "$after" != "$before" ]; then
		not_ok "$id: token, store and files unchanged" "$cmd"
	else
		ok "$id (exit $rc, \"${first:0:100}\")"
	fi
}

while IFS=$'\t' read -r id cmd want regex need; do
	case $id in '' | '#'*) continue ;; esac
	if [ -n "${HOSTILE_ONLY:-}" ] && ! grep -Eq -e "$HOSTILE_ONLY" <<<"$id"; then
		continue
	fi
	run_row "$id" "$cmd" "$want" "$regex" "${need:-}"
done <"$table"

# The table keeps its promise of breadth (a filtered run excepted).
if [ -z "${HOSTILE_ONLY:-}" ]; then
	check "the table has at least 40 bad inputs ($rows)" [ "$rows" -ge 40 ]
fi
list_quietly() { "$CUSTODY_BIN" -q list -o json >/dev/null; }
check "the right PIN still works after the bad ones (none was retried or locked)" list_quietly
done_testing
