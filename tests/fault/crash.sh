#!/usr/bin/env bash
# Crash safety of `custody import` (a PKCS#12 assigned over a current
# certificate).  crash_walk (lib.sh) aborts it at every interruption point
# once — before each PKCS#11 call, after the last, and inside every object
# write, before each write of SoftHSM to its files (torn objects on
# purpose) — from the same starting state every time, and then:
#   - the store names nothing the token lacks, every assignment names a
#     stored certificate, the audit log verifies (checkstate; objects only
#     the token holds, such as a key whose certificate was not written
#     yet, are allowed as leftovers);
#   - no file of the token or the store holds the private key in clear
#     (32 bytes of its private exponent are looked for);
#   - the same import again exits 0 and leaves everything consistent, with
#     the assignment made.  Allowed after it: "torn" objects (checkstate:
#     an object without CKA_ID, the shell SoftHSM writes before the
#     template when its C_CreateObject is killed), which nothing completes
#     and nothing uses.
# Under make stress (FAULT_STRESS=1) random-timing kill -9 runs follow
# (CRASH_RUNS, default 200).
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/fault/lib.sh"
setup_fault_token
export P12_PASSWORD=crash-secret

make_p12 old old.crash.test 300
make_p12 new new.crash.test 300 rsa:2048 P12_PASSWORD
run import --path "$T/old.p12" -t OAuthTokenIssuer -i global
old=$out
check "the base import exits 0" [ "$rc" -eq 0 ]
new=$(thumbprint_of_p12 new P12_PASSWORD)
# 32 bytes from the middle of the private exponent, in hex (a pipe only).
d_window=$(openssl pkcs12 -in "$T/new.p12" -nocerts -nodes -passin env:P12_PASSWORD 2>/dev/null |
	openssl rsa -noout -text 2>/dev/null |
	sed -n '/^privateExponent:/,/^prime1:/p' | sed '1d;$d' | tr -d ' :\n' | cut -c 101-164)
check "the private exponent could be read for the scan" [ ${#d_window} -eq 64 ]
in_clear() { # — the files holding the window, if any
	local f
	for f in "$T/custody.db" "$T/custody.db-wal" $(find "$T/tokens" -type f); do
		[ -f "$f" ] || continue
		if od -An -v -tx1 "$f" | tr -d ' \n' | grep -q "$d_window"; then echo "$f"; fi
	done
}
save_state base
args=(import --path "$T/new.p12" --password-source env:P12_PASSWORD -t OAuthTokenIssuer -i global --force)

effect_ok() {
	local j
	j=$("$CUSTODY_BIN" get -t OAuthTokenIssuer -i global -o json 2>/dev/null)
	python3 -c '
import json, sys
a = json.load(sys.stdin)[0]
sys.exit(0 if a["current"]["thumbprint"] == sys.argv[1] and
         a["previous"]["thumbprint"] == sys.argv[2] else 1)' "$new" "$old" <<<"$j"
}

# The deterministic walk: interruption points once each (crash_walk in
# lib.sh: call boundaries, and inside object writes, before writes of
# SoftHSM to its files).  After each abort, besides checkstate:
# no file holds the private key in clear.
crash_check() {
	local clear
	clear=$(in_clear)
	[ -z "$clear" ] && return 0
	why="the key in clear: $clear"
	return 1
}
started=$(now_ms)
# Every 2nd call boundary in make check (the writes inside each torn all
# the same), every one in make stress.
crash_k=${FAULT_CRASH_K:-2} crash_walk import base -- "${args[@]}"
echo "# $crash_points interruption points; after $crash_repaired of them the import again" \
	"completed what was left; $(($(now_ms) - started)) ms"

# make stress: random-timing kills as well (the walk above is the check).
[ "$STRESS" = 1 ] && crash_random import base "${CRASH_RUNS:-200}" -- "${args[@]}"
done_testing
