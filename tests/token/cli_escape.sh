#!/usr/bin/env bash
# Control characters from certificates and the store never reach the
# terminal raw (issue 10, point 6b).
#
# The attack: a certificate whose subject CN (and so the default label)
# holds ESC ] 0 ; ... BEL (retitle the terminal), ESC [ ... (colours,
# cursor moves, erase), CR and LF (forge a line of output: "OK", a
# thumbprint), or the C1 CSI (U+009B); or a store writer who names a node
# so.  Whoever reads `custody list`, `get`, `test`, `status`, `audit` or
# an error message in a terminal runs those sequences.  Every table line
# and message must show them escaped (\xHH); JSON stays JSON.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token escape

# ("\/": a slash inside -subj's CN.)  The key is EC P-256, or RSA-2048
# on a token that cannot sign with EC (openCryptoki 3.8.1): what is
# checked is the certificate's text, not its key.
CN=$'evil\e]0;pwned\a\e[2J\r\nOK OAuthTokenIssuer\\/global: forged\xc2\x9b31m'
newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
token_can ec-sign || newkey=(-newkey rsa:2048)
openssl req -x509 "${newkey[@]}" -noenc -keyout - -out - \
	-subj "/O=custody test/CN=$CN" -days 30 2>/dev/null |
	openssl pkcs12 -export -name escape -passout pass: -out "$T/escape.p12"

# raw_controls FILE — the control bytes in FILE, other than newline (which
# ends custody's own lines), as hex; empty when there are none.
raw_controls() {
	LC_ALL=C od -An -tx1 -v "$1" | tr ' ' '\n' | grep -E '^(0[0-9]|1[0-9a-f]|7f)$' |
		grep -v '^0a$' | sort -u | tr '\n' ' '
	# C1 controls as UTF-8: c2 80..c2 9f
	LC_ALL=C od -An -tx1 -v "$1" | tr -s ' \n' '  ' | grep -Eo 'c2 [89][0-9a-f]' | sort -u | tr '\n' ' '
}
# clean DESCRIPTION ARGS... — custody ARGS prints no raw control byte on
# stdout or stderr, and no line of its output starts with the forged text.
clean() {
	local d=$1 bad
	shift
	"$CUSTODY_BIN" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	bad="$(raw_controls "$T/out")$(raw_controls "$T/err")"
	if [ -n "${bad// /}" ]; then
		not_ok "$d" "raw control bytes ($bad) from: custody $*" \
			"stdout: $(od -c "$T/out" | head -5)" "stderr: $(od -c "$T/err" | head -5)"
	elif grep -q '^OK OAuthTokenIssuer/global: forged' "$T/out" "$T/err"; then
		not_ok "$d" "a forged line in the output of: custody $*"
	else
		ok "$d"
	fi
}

clean "import narrates without raw control characters" \
	import --path "$T/escape.p12" -t OAuthTokenIssuer -i global
[ "$rc" -eq 0 ] || { echo "Bail out! cannot import the test certificate: $(cat "$T/err")"; exit 1; }
clean "list shows the label (the subject CN) escaped" list
clean "get shows the subject escaped" get -t OAuthTokenIssuer
clean "test shows the subject escaped" test
clean "audit shows the entries escaped" audit
# JSON is escaped by jansson: no raw byte either, and still JSON.
clean "list -o json has no raw control characters" list -o json
check "list -o json is still JSON" python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/out"

# A store writer names a node with the same text, and a report with it.
NODE=$'node\e]0;pwned\a\r\nOK forged\xc2\x9b'
if sqlite3 "$T/custody.db" "INSERT INTO nodes (name, state, version) VALUES ('$NODE', 'joined', 1);" 2>/dev/null; then
	clean "status shows a node name from the store escaped" status
else
	not_ok "status shows a node name from the store escaped" "cannot write the store"
fi
# An error message built from the user's input and the store.
clean "an error message is escaped" get -t OAuthTokenIssuer -i "$NODE"
done_testing
