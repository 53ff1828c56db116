#!/usr/bin/env bash
# Every bad input of the contract: the exit status, one "custody: CMD: ..."
# line, and a token and store exactly as they were.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token

export P12_PASSWORD=right-password WRONG_PASSWORD=wrong-password
make_p12 good good.custody.test 365 rsa:2048 P12_PASSWORD
GOOD=$(thumbprint_of_p12 good P12_PASSWORD)
"$CUSTODY_BIN" -q import --path "$T/good.p12" --password-source env:P12_PASSWORD \
	-t OAuthTokenIssuer >/dev/null

# expect_error STATUS PATTERN DESCRIPTION -- ARGS...
# Runs custody ARGS; checks the status, that stderr's first line is
# "custody: <command>: ..." matching PATTERN, that stderr has at most a
# hint line besides, and that the token and the store did not change.
# Leaves how long custody ran in $run_ms.
expect_error() {
	local want=$1 pattern=$2 what=$3
	shift 4
	local before lines first t0
	before=$(state)
	t0=${EPOCHREALTIME/./}
	run "$@"
	run_ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
	first=$(grep -v '^custody: warning:' <<<"$err" | head -1)
	lines=$(grep -vc '^custody: warning:' <<<"$err")
	if [ "$rc" -ne "$want" ]; then
		not_ok "$what: exit $want" "exit was $rc" "stderr: $err"
	elif ! grep -Eq "^custody: [a-z-]+: .*$pattern" <<<"$first"; then
		not_ok "$what: message matches /$pattern/" "stderr: $err"
	elif [ "$lines" -gt 2 ]; then
		not_ok "$what: one line (and a hint at most)" "stderr: $err"
	elif [ "$(state)" != "$before" ]; then
		not_ok "$what: token and store unchanged"
	else
		ok "$what (exit $want, \"${first:0:90}\")"
	fi
}

# --- files ---
expect_error 1 "wrong password" "PKCS#12 with a wrong password" -- \
	import --path "$T/good.p12" --password-source env:WRONG_PASSWORD
# No password source and no terminal to ask on: a usage error.
expect_error 2 "missing password" "PKCS#12 without its password" -- \
	import --path "$T/good.p12"
head -c 700 "$T/good.p12" >"$T/truncated.p12"
expect_error 1 "." "truncated PKCS#12" -- \
	import --path "$T/truncated.p12" --password-source env:P12_PASSWORD
cp "$T/good.p12" "$T/corrupt.p12"
printf '\xff\xff\xff\xff' | dd of="$T/corrupt.p12" bs=1 seek=1200 conv=notrunc 2>/dev/null
expect_error 1 "." "corrupted PKCS#12" -- \
	import --path "$T/corrupt.p12" --password-source env:P12_PASSWORD
head -c 3000 /dev/urandom >"$T/garbage.bin"
expect_error 1 "not a PKCS#12, PEM or DER" "random bytes" -- import --path "$T/garbage.bin"
expect_error 1 "No such file" "missing file" -- import --path "$T/nonexistent.p12"

# Iteration counts a file asks for, far over any exporter's: refused before
# OpenSSL spends them (50,000,000 would take it half a minute or more).
# That the refusal comes first is shown by the order, not by a clock: with
# a wrong password the error is still the iteration count (the MAC, which
# would spend them, is never checked).  How long it took is printed, not
# asserted (timings belong in make bench; under valgrind they differ).
# The files are made with small counts, then edited
# (tests/token/p12iter.py): making them with the huge counts costs as much.
iterations() { # NAME P12ITER-ARGS... — $T/NAME.p12 from good.p12 (a MAC, 2048 iterations)
	local name=$1
	shift
	python3 "$TOP_SRCDIR/tests/token/p12iter.py" "$@" <"$T/good.p12" >"$T/$name.p12"
}
expect_quick_error() { # SECONDS PATTERN DESCRIPTION -- ARGS...: expect_error, and the time
	shift
	expect_error 1 "$@"
	echo "# refused in $run_ms ms"
}
iterations mac-iter --mac 50000000
expect_quick_error 1 "PKCS#12 MAC iteration count 50000000 is over the limit 10000000" \
	"PKCS#12 whose MAC asks for 50,000,000 iterations" -- \
	import --path "$T/mac-iter.p12" --password-source env:P12_PASSWORD
expect_quick_error 1 "PKCS#12 MAC iteration count 50000000 is over the limit" \
	"…the same without a password" -- import --path "$T/mac-iter.p12"
expect_quick_error 1 "PKCS#12 MAC iteration count 50000000 is over the limit" \
	"…the same with a wrong password: the count is refused before the MAC is checked" -- \
	import --path "$T/mac-iter.p12" --password-source env:WRONG_PASSWORD
iterations pbe-iter --pbe 50000000
expect_quick_error 1 "PKCS#12 encryption iteration count 50000000 is over the limit 10000000" \
	"PKCS#12 whose PBKDF2 asks for 50,000,000 iterations (before its MAC is checked)" -- \
	import --path "$T/pbe-iter.p12" --password-source env:P12_PASSWORD
# (The key first: openssl reads -inkey and -in from the one pipe.)
{
	openssl pkcs12 -in "$T/good.p12" -passin env:P12_PASSWORD -nocerts -noenc
	openssl pkcs12 -in "$T/good.p12" -passin env:P12_PASSWORD -nokeys
} 2>/dev/null | openssl pkcs12 -export -nomac -certpbe NONE -passout env:P12_PASSWORD \
	-out "$T/key-only-pbe.p12"
python3 "$TOP_SRCDIR/tests/token/p12iter.py" --pbe 4294967296 <"$T/key-only-pbe.p12" >"$T/skey-iter.p12"
expect_quick_error 1 "PKCS#12 private key encryption iteration count 4294967296 is over the limit" \
	"PKCS#12 without a MAC whose key asks for 2^32 iterations" -- \
	import --path "$T/skey-iter.p12" --password-source env:P12_PASSWORD

# A key that does not match the certificate (both through a pipe).
mismatch() {
	openssl req -x509 -newkey rsa:2048 -noenc -keyout /dev/null -subj /CN=mismatch -days 30 2>/dev/null
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null
}
before=$(state)
out=$(mismatch | "$CUSTODY_BIN" import --path /dev/stdin 2>"$T/stderr"); rc=$?; err=$(cat "$T/stderr")
if [ "$rc" -eq 1 ] && grep -q "^custody: import: .*does not match" <<<"$err" && [ "$(state)" = "$before" ]; then
	ok "a key that does not match the certificate (exit 1, \"$err\")"
else
	not_ok "a key that does not match the certificate" "exit $rc" "stderr: $err"
fi

# --- policy ---
make_p12 small small.custody.test 30 rsa:1024
expect_error 1 "1024 bits" "RSA-1024 (the message names the size)" -- import --path "$T/small.p12"
make_p12 k1 k1.custody.test 30 ec:secp256k1
expect_error 1 "secp256k1" "an unlisted curve" -- import --path "$T/k1.p12"
openssl req -x509 -newkey dsa:<(openssl dsaparam 2048 2>/dev/null) -noenc -keyout - -out - \
	-subj /CN=dsa.custody.test -days 30 2>/dev/null |
	openssl pkcs12 -export -passout pass: -out "$T/dsa.p12" 2>/dev/null
expect_error 1 "DSA" "a DSA key" -- import --path "$T/dsa.p12"
make_p12 short short.custody.test 1
expect_error 2 "--at is for reading: import writes" "import with --at (it writes at the real time)" -- \
	import --path "$T/short.p12" -t Default --at "$(date -u -d '+3 days' +%Y-%m-%d)"
"$CUSTODY_BIN" -q import --path "$T/short.p12" >/dev/null
expect_error 1 "expired" "a certificate already expired when assigned (set --dry-run --at)" -- \
	set -t Default --thumbprint "$(thumbprint_of_p12 short)" --dry-run --at "$(date -u -d '+3 days' +%Y-%m-%d)"
make_p12 node node.custody.test 30
expect_error 1 "global" "OAuthTokenIssuer at a node identity" -- \
	import --path "$T/node.p12" -t OAuthTokenIssuer -i node1
expect_error 1 "global" "set OAuthTokenIssuer at a node identity" -- \
	set -t OAuthTokenIssuer -i node7 --thumbprint "$GOOD"

# --- usage ---
expect_error 2 "--roll needs --effective-date" "--roll without a date" -- \
	set -t OAuthTokenIssuer --thumbprint "$GOOD" --roll
expect_error 2 "--effective-date needs --roll" "a date without --roll" -- \
	set -t OAuthTokenIssuer --thumbprint "$GOOD" --effective-date 2031-01-01
expect_error 1 "not in the future" "a roll date in the past" -- \
	set -t OAuthTokenIssuer --thumbprint "$GOOD" --roll --effective-date 2020-01-01
expect_error 2 "YYYY-MM-DD" "a non-ISO date" -- \
	set -t OAuthTokenIssuer --thumbprint "$GOOD" --roll --effective-date 01/02/2031
expect_error 2 "YYYY-MM-DD" "a non-ISO --at" -- get --at tomorrow
expect_error 2 "unknown option" "an unknown option" -- get --frobnicate
expect_error 2 "type" "an invalid type name" -- get -t "no spaces"
expect_error 2 "." "a thumbprint prefix shorter than 8 digits" -- set -t Default --thumbprint ABC
expect_error 3 "no certificate with thumbprint" "an unknown thumbprint" -- \
	set -t Default --thumbprint 0123456789ABCDEF
expect_error 3 "no certificate is assigned for type WebServicesExternal" "get of an unassigned type" -- \
	get -t WebServicesExternal
expect_error 2 "invalid secret source" "a PIN given as a value is refused" -- \
	list --pin-source 12345678

# --- token ---
expect_error 2 "module" "no module configured" -- list --module ""
expect_error 1 "cannot load PKCS#11 module" "a missing module" -- list --module "$T/nonexistent.so"
expect_error 1 "no token labelled nosuch" "a missing token" -- list --token nosuch
# A PIN of a length the token does not take (SoftHSM 4 to 255 characters,
# openCryptoki 4 to 8) is refused before any login: C_Login would spend
# one of the PIN's tries on it.  The token's own records (its files that
# are no object: the failed-login counters among them) stay as they were;
# a wrong PIN of a length it takes is tried, and changes them.
token_records() {
	comm -23 <(token_files | sort) <(object_files) | tr '\n' '\0' | xargs -0r sha256sum
}
pin_of_length() { head -c "$1" /dev/zero | tr '\0' 7; }
min_pin=$("$CUSTODY_BIN" token -o json | jq -r .min_pin)
max_pin=$("$CUSTODY_BIN" token -o json | jq -r .max_pin)
records=$(token_records)
pin_of_length $((max_pin + 1)) >"$T/long.pin"
expect_error 1 "token test: the PIN has $((max_pin + 1)) characters, the token takes $min_pin to $max_pin\$" \
	"a PIN longer than the token takes ($max_pin)" -- list --pin-source "file:$T/long.pin"
pin_of_length $((min_pin - 1)) >"$T/short.pin"
expect_error 1 "token test: the PIN has $((min_pin - 1)) characters, the token takes $min_pin to $max_pin\$" \
	"a PIN shorter than the token takes ($min_pin)" -- list --pin-source "file:$T/short.pin"
check "…neither was tried: the token's own records are as they were" [ "$(token_records)" = "$records" ]
# 12 hex digits, or as many as the token takes.
openssl rand -hex $(((max_pin < 12 ? max_pin : 12) / 2)) >"$T/wrong.pin"
expect_error 1 "rejected the PIN" "a wrong PIN ($(($(wc -c <"$T/wrong.pin") - 1)) characters)" -- \
	list --pin-source "file:$T/wrong.pin"
check "…was tried: the token's own records changed" [ "$(token_records)" != "$records" ]
check "the wrong PIN was not retried: the right one still works after it" \
	"$CUSTODY_BIN" -q list -o json

done_testing
