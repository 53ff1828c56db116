#!/usr/bin/env bash
# Crash safety of `custody sync`: node2 of a two-node cluster (a token
# each, one SQLite store) syncs a replicated key (unwrap under the KEK,
# check against the certificate, report).  crash_walk (lib.sh) aborts it
# at every interruption point once — before each PKCS#11 call, after the
# last, and inside the unwrap and every other object write, before each
# write of SoftHSM to its files (torn objects on purpose) — and after
# each:
#   - checkstate on node2: nothing reported held that the token lacks, no
#     package torn, the KEK's KCV the store's, the audit log whole; token
#     leftovers allowed;
#   - `custody sync` again exits 0, node2 holds the key, and everything is
#     consistent: a key object that the abort left half made is destroyed
#     and unwrapped again (the repair), with its audit entry.
# Then a torn key is checked as a user would meet it: sync says what it
# repaired, the audit log has the entry, the key signs.  And a key object
# that fails its check but that custody cannot prove it made (no package)
# is never destroyed.
# Under make stress (FAULT_STRESS=1) the old random-timing kill -9 runs
# follow (CRASH_RUNS, default 200).
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/fault/lib.sh"
if ! "$CUSTODY_BIN" sync --help >/dev/null 2>&1 || ! "$CUSTODY_BIN" node --help >/dev/null 2>&1; then
	echo "1..0 # SKIP this custody has no sync / node commands"
	exit 0
fi
started=$(now_ms)
for n in node1 node2; do
	setup_node "$n" "sqlite:$T/custody.db"
done
save_state() {
	rm -rf "$T/saved.$1"
	mkdir -p "$T/saved.$1"
	cp -a "$T/node2/tokens" "$T/saved.$1/node2.tokens"
	cp -a "$T/custody.db" "$T/saved.$1/custody.db"
}
restore_state() {
	rm -rf "$T/node2/tokens" "$T"/custody.db*
	cp -a "$T/saved.$1/node2.tokens" "$T/node2/tokens"
	cp -a "$T/saved.$1/custody.db" "$T/custody.db"
}

on node1 kek create
on node1 kek authority
on node2 node enroll --authority "$out"
on node1 node admit node2 --fingerprint "$(enroll_fp)"
on node2 node join
check "the ceremony: node2 joined" [ "$rc" -eq 0 ]
key=$(openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null)
openssl req -x509 -key <(printf '%s\n' "$key") -subj "/O=custody test/CN=rep.crash.test" \
	-days 200 -out "$T/rep.crt" 2>/dev/null
openssl pkcs12 -export -inkey <(printf '%s\n' "$key") -in "$T/rep.crt" -passout pass: \
	-out "$T/rep.p12"
unset key
rep=$(openssl x509 -in "$T/rep.crt" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
# The key id: SHA-1 of the subjectPublicKey BIT STRING's contents.
key_id=$(openssl x509 -in "$T/rep.crt" -noout -pubkey | openssl asn1parse -strparse 19 -noout -out /dev/stdout 2>/dev/null |
	openssl dgst -sha1 -r | cut -d' ' -f1)
on node1 import --path "$T/rep.p12" --replicable -t OAuthTokenIssuer
check "node1: import --replicable, packaged" [ "$rc" -eq 0 ]
save_state base
. "$T/node2/env"
export CUSTODY_MODULE=$SHIM

# The effect of a sync: node2 reported the key held (checkstate has
# checked that the token holds every key node2 reported held).
effect_ok() {
	[ "$(sqlite3 "$T/custody.db" "SELECT held FROM node_reports WHERE node = 'node2' AND thumbprint = '$rep'")" = 1 ] &&
		return 0
	why="node2 does not report the key of $rep held"
	return 1
}
# What every user would check after a sync: the key signs, and the
# signature verifies with the certificate.
signs() {
	printf 'crash walk' >"$T/data"
	"$CUSTODY_BIN" sign -t OAuthTokenIssuer --in "$T/data" --out "$T/data.sig" 2>/dev/null &&
		openssl dgst -sha256 -verify <(openssl x509 -in "$T/rep.crt" -noout -pubkey) \
			-signature "$T/data.sig" "$T/data" >/dev/null 2>&1
}

crash_walk sync base -- sync
echo "# $crash_points interruption points; after $crash_repaired of them sync again" \
	"completed or repaired what was left; $(($(now_ms) - started)) ms"

# A torn key as a user meets it: the unwrap torn at its last write to
# the object file, so a private key object with the certificate's key id
# is there, but cannot sign.
restore_state base
count=$(count_calls sync)
unwrap=$(awk '$2 == "C_UnwrapKey" { print $1; exit }' "$T/clean.trace")
restore_state base
crash_base_name=base
writes=$(call_writes "$unwrap" sync)
check "the unwrap (call $unwrap of $count) writes the key object in $writes steps" [ "$writes" -ge 1 ]
torn_key=0
for ((k = writes; k >= 1; k--)); do
	restore_state base
	run_fault FAULT_AT="$unwrap" FAULT_TEAR="$k" LD_PRELOAD="$TEAR" -- sync
	save_state torn
	CUSTODY_MODULE=$SOFTHSM_MODULE run test -t OAuthTokenIssuer -o json
	if grep -q 'does not match\|cannot sign\|damaged key object' <<<"$out$err"; then
		torn_key=$k
		break
	fi
done
check "a kill inside the unwrap (at write $torn_key) leaves a key object with the id that cannot sign" \
	[ "$torn_key" -ge 1 ]
if [ "$torn_key" -ge 1 ]; then
	audit_before=$(sqlite3 "$T/custody.db" "SELECT count(*) FROM audit WHERE action = 'repair'")
	run sync
	check "sync repairs it: exit 0" [ "$rc" -eq 0 ]
	check "sync says what it destroyed and why, in one line" \
		[ "$(grep -c "failed its check (.*): destroyed, unwrapping it again from its package" <<<"$err")" -eq 1 ]
	check "sync's table marks the key repaired" grep -q "$rep repaired" <<<"$out"
	audit_after=$(sqlite3 "$T/custody.db" "SELECT count(*) FROM audit WHERE action = 'repair'")
	check "one audit entry 'repair' names the key" [ $((audit_after - audit_before)) -eq 1 ]
	run audit --verify
	check "the audit log verifies" [ "$rc" -eq 0 ]
	checkstate
	check "the token and the store are consistent (checkstate: $check_out)" [ "$check_rc" -eq 0 ]
	check "the key signs, and the signature verifies with the certificate" signs
	run sync
	check "a second sync has nothing to repair" [ "$rc" -eq 0 ]
	check "... and says nothing of a repair" bash -c '! grep -q destroyed <<<"$1"' _ "$err"

	# The same torn key without a package in the store: custody cannot
	# prove that it made it, so it destroys nothing and names the object.
	restore_state torn
	sqlite3 "$T/custody.db" "DELETE FROM packages WHERE thumbprint = '$rep'"
	before=$(state)
	run sync
	check "no package: sync exits 1" [ "$rc" -eq 1 ]
	check "... naming the object and why it is kept" \
		grep -q "key $key_id on token node2 fails its check, and custody cannot prove that it made it: not destroyed" <<<"$err"
	tokens_now=$(find "$T/node2/tokens" -name '*.object' ! -name token.object | sort | xargs sha256sum)
	tokens_torn=$(cd "$T/saved.torn/node2.tokens" && find . -name '*.object' ! -name token.object | sort |
		xargs sha256sum | sed "s|\./|$T/node2/tokens/|")
	check "... and the token keeps every object as it was" [ "$tokens_now" = "$tokens_torn" ]
fi

# A token that refuses to destroy the torn key: exit 1 naming the object,
# nothing else changed.
if [ "$torn_key" -ge 1 ]; then
	restore_state torn
	tokens_torn=$(find "$T/node2/tokens" -name '*.object' ! -name token.object | sort | xargs sha256sum)
	# The repair's C_DestroyObject: the first one after the key's failed
	# check (C_Sign); sync destroys scratch objects of its own before (for
	# the key check value) and after (a probe for CKA_COPYABLE).
	run_fault FAULT_FUNC=C_DestroyObject -- sync
	# (An integrity tag's C_DestroyObject, right after its C_WrapKey, is
	# not the repair's.)
	nth=$(awk '$2 ~ /^C_Sign/ { armed = 1 } armed && $2 == "C_DestroyObject" && $1 != "-" && prev != "C_WrapKey" { print $1; exit } { prev = $2 }' "$T/trace")
	restore_state torn
	run_fault FAULT_FUNC=C_DestroyObject FAULT_AT="$nth" -- sync
	check "C_DestroyObject refused: sync exits 1" [ "$rc" -eq 1 ]
	check "... naming the object" \
		grep -q "cannot destroy the private key (key id $key_id) on token node2: CKR_DEVICE_ERROR" <<<"$err"
	tokens_now=$(find "$T/node2/tokens" -name '*.object' ! -name token.object | sort | xargs sha256sum)
	check "... and the token keeps every object" [ "$tokens_now" = "$tokens_torn" ]
fi

# make stress: random-timing kills as well (the walk above is the check).
[ "$STRESS" = 1 ] && crash_random sync base "${CRASH_RUNS:-200}" -- sync
done_testing
