#!/usr/bin/env bash
# ock_login.sh — STRESS_SECONDS (5 here, 30 under `make stress`) of new
# signers on openCryptoki's software token, several at once: three loops,
# each starting the provider's test signer again and again, which loads
# the key, signs, then forks three children that each initialise the
# module, log in and sign.  TAP.
#
# openCryptoki 3.8.1 rewrites its token data file on every C_Login and
# lets go of its own lock before the data is flushed; a C_Initialize that
# reads the file meanwhile loses the token for the life of its process
# ("no token labelled ..."): measured, one run in ten to fifteen of
# these without the turns.  custody's signers take turns for
# C_Initialize and C_Login (the token lock's .login file).  Checks: zero
# failed runs, every signature verifies, the token and store unchanged.
# Skipped without an openCryptoki daemon (scripts/test-opencryptoki.sh).
export CUSTODY_TEST_TOKEN=opencryptoki
top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top/tests/token/lib.sh"
seconds=${STRESS_SECONDS:-5}
build=${TOP_BUILDDIR:-$(dirname "$CUSTODY_BIN")}
signer_bin=$build/tests/token/provider_sign
if [ ! -f "$build/providers/.libs/custody.so" ] || [ ! -x "$signer_bin" ]; then
	echo "Bail out! not built: $build/providers/.libs/custody.so or $signer_bin"
	exit 1
fi
export OPENSSL_MODULES=$build/providers/.libs
unset OPENSSL_CONF
setup_token

import_signer rsa:2048
before=$(state)
deadline=$(($(date +%s) + seconds))

# Each loop writes one line per run to its log: "ok" or "error ...".
runner() {
	local log=$1 i=0 rc f
	while [ "$(date +%s)" -lt "$deadline" ]; do
		i=$((i + 1))
		rm -f "$log".out.*
		"$signer_bin" custody:Default "$T/data" "$log.out" fork 3 2>"$log.stderr"
		rc=$?
		for f in parent child0 child1 child2; do
			[ "$rc" -eq 0 ] || break
			openssl dgst -sha256 -verify "$T/signer.pub" -signature "$log.out.$f" \
				"$T/data" >/dev/null 2>>"$log.stderr" || rc=-1
		done
		if [ "$rc" -eq 0 ]; then
			echo ok >>"$log"
		else
			{ echo "error run $i: exit $rc (-1: a signature does not verify)"
				sed 's/^/  /' "$log.stderr"; } >>"$log"
		fi
	done
}

start=$(date +%s.%N)
for n in 1 2 3; do runner "$T/run$n" & done
wait
end=$(date +%s.%N)
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
oks=$(cat "$T"/run[123] | grep -c '^ok')
errors=$(cat "$T"/run[123] | grep -c '^error')
echo "# $secs s: $oks runs of 4 processes each, $errors failed"
if [ "$errors" -eq 0 ] && [ "$oks" -gt 0 ]; then
	ok "$oks runs (each a signer and 3 forked children, 3 runs at once): zero failed, every signature verifies"
else
	not_ok "zero failed runs ($errors of $((oks + errors)))" \
		"$(cat "$T"/run[123] | grep -v '^ok' | head -20)"
fi
check "the token and the store are unchanged" [ "$(state)" = "$before" ]
done_testing
