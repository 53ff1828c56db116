#!/usr/bin/env bash
# The cluster's trust against a store writer and a member's PIN holder: each
# attack is run as the attacker would, and must fail with one clear line and
# nothing changed (token objects and store rows compared byte for byte).
#
#   - a store writer replaces the cluster authority before a node enrolls;
#   - a store writer forges a whole admission: a KEK of their own wrapped to
#     the node's transport key, the store's key check value and KEK check
#     set to match it, signed by an authority key of their own;
#   - the same without a signature;
#   - a node whose row says "enrolled" but carries a KEK wrap;
#   - re-admission without the security officer;
#   - a trusted transport key left on the admitting token after admit.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"

for n in node1 node2 node3; do
	setup_node "$n" "sqlite:$T/custody.db"
done
db=$T/custody.db
q() { sqlite3 "$db" "$1"; }
# state — the three tokens and the store, as one fingerprint.
state() {
	{
		find "$T"/node?/tokens -type f -name '*.object' ! -name 'token.object' -print0 |
			sort -z | xargs -0r sha256sum
		sqlite3 "$db" .dump
	} | sha256sum | cut -d' ' -f1
}
# one_line — the error is one line (after the narration, custody's own line).
one_line() { [ "$(grep -c '^custody: ' <<<"$err")" -eq 1 ]; }

on node1 kek create
check "node1 makes the KEK and the cluster authority" [ "$rc" -eq 0 ]
on node1 kek authority
authority=$out
real_spki=$(q "SELECT value FROM cluster_meta WHERE name='authority_spki'")

# ----------------------------------------- 1. the store names another authority
# The attacker's keys stay in memory (a shell variable, pipes), as every
# private key in these tests.
evil_key=$(openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null)
evil_spki=$(openssl pkey -in <(printf '%s\n' "$evil_key") -pubout -outform DER |
	xxd -p -c 256 | tr a-f A-F)
q "UPDATE cluster_meta SET value='$evil_spki' WHERE name='authority_spki'"
before=$(state)
on node3 node enroll --authority "$authority"
check "enroll refuses a store whose authority is not the confirmed one (exit 1)" [ "$rc" -eq 1 ]
check "…in one line naming both" bash -c 'grep -q "the store'"'"'s cluster authority is .*, not the '"$authority"' you confirmed: nothing pinned" <<<"$0"' "$err"
check "…one line" one_line
check "…and nothing changed" [ "$(state)" = "$before" ]
on node3 node enroll
check "without a confirmation, enroll refuses too (exit 2)" [ "$rc" -eq 2 ]
check "…and nothing changed" [ "$(state)" = "$before" ]
q "UPDATE cluster_meta SET value='$real_spki' WHERE name='authority_spki'"

on node2 node enroll --authority "$authority"
check "node2 enrolls, pinning the real authority" [ "$rc" -eq 0 ]
fp2=$(enroll_fp)
on node3 node enroll --authority "$authority"
check "node3 enrolls" [ "$rc" -eq 0 ]

# A pinned node later finds another authority in the store: refused.
q "UPDATE cluster_meta SET value='$evil_spki' WHERE name='authority_spki'"
before=$(state)
on node2 node enroll --authority "$authority"
check "enroll again refuses a store whose authority is not the pinned one" \
	bash -c '[ '"$rc"' -eq 1 ] && grep -q "but token node2 has '"$authority"' pinned" <<<"$0"' "$err"
check "…and nothing changed" [ "$(state)" = "$before" ]
q "UPDATE cluster_meta SET value='$real_spki' WHERE name='authority_spki'"
cp "$db" "$T/enrolled.db"

# ----------------------------------------- 2. a forged admission
# The attacker's KEK, wrapped (RSA-OAEP, SHA-1) to node2's transport key
# from the store, its key check value and 64-bit check (AES key wrap of
# sixteen zero bytes), the store rewritten to match.
kek=$(openssl rand -hex 32)
q "SELECT hex(transport_spki) FROM nodes WHERE name='node2'" | xxd -r -p >"$T/node2.spki"
printf '%s' "$kek" | xxd -r -p |
	openssl pkeyutl -encrypt -pubin -keyform DER -inkey "$T/node2.spki" \
		-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -out "$T/forged.wrap"
check=$(head -c 16 /dev/zero | openssl enc -id-aes256-wrap -K "$kek" -iv A6A6A6A6A6A6A6A6 |
	head -c 8 | xxd -p | tr a-f A-F)
admission() { # the bytes an authority signs (cluster/admission.c)
	printf 'custody-admission-v1\nnode node2\ntransport-spki-sha256 %s\nkek-wrap-sha256 %s\nkek-check %s\n' \
		"$(sha256sum <"$T/node2.spki" | cut -c1-64)" \
		"$(sha256sum <"$T/forged.wrap" | cut -c1-64)" "$check"
}
admission | openssl dgst -sha256 -sign <(printf '%s\n' "$evil_key") -out "$T/forged.sig"
forge() { # STATE SIG-HEX-OR-NULL
	q "UPDATE cluster_meta SET value='${check:0:6}' WHERE name='kek_kcv';
	   UPDATE cluster_meta SET value='$evil_spki' WHERE name='authority_spki';
	   UPDATE nodes SET state='$1', kek_wrap=x'$(xxd -p -c 1000 <"$T/forged.wrap")',
	     kek_check='$check', admission_sig=$2, admitted_by='node1' WHERE name='node2'"
}
forge admitted "x'$(xxd -p -c 1000 <"$T/forged.sig")'"
before=$(state)
on node2 node join
check "join refuses an admission signed by another authority (exit 1)" [ "$rc" -eq 1 ]
check "…in one line: not signed by the pinned authority, nothing unwrapped" \
	grep -q "is not signed by the cluster authority this node pinned ($authority), for this node's transport key: nothing unwrapped" <<<"$err"
check "…one line" one_line
check "…and nothing changed (no KEK on node2)" [ "$(state)" = "$before" ]

cp "$T/enrolled.db" "$db"
forge admitted NULL
before=$(state)
on node2 node join
check "join refuses an admission without a signature (exit 1)" \
	bash -c '[ '"$rc"' -eq 1 ] && grep -q "the admission of node node2 is not signed by the cluster authority: nothing unwrapped" <<<"$0"' "$err"
check "…and nothing changed" [ "$(state)" = "$before" ]

cp "$T/enrolled.db" "$db"
forge enrolled "x'$(xxd -p -c 1000 <"$T/forged.sig")'"
before=$(state)
on node2 node join
check "a node the store says is enrolled cannot join, whatever its row holds" \
	bash -c '[ '"$rc"' -eq 1 ] && grep -q "node node2 is not admitted (the store says it is enrolled)" <<<"$0"' "$err"
check "…and nothing changed" [ "$(state)" = "$before" ]
cp "$T/enrolled.db" "$db"

# ----------------------------------------- 3. a swapped transport key
# The store writer puts a transport key of their own in node2's row: the
# KEK would be wrapped to it.  The SO confirmed node2's real fingerprint.
q "UPDATE nodes SET transport_spki=x'$(openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 2>/dev/null |
	openssl pkey -pubout -outform DER |
	xxd -p -c 1000)' WHERE name='node2'"
before=$(state)
on node1 node admit node2 --fingerprint "$fp2" --so-pin-source "file:$T/node1/so.pin"
check "admit refuses a transport key that is not the confirmed one (exit 1)" \
	bash -c '[ '"$rc"' -eq 1 ] && grep -q "not the '"$fp2"' you confirmed: nothing written" <<<"$0"' "$err"
check "…one line" one_line
check "…and nothing changed (no KEK wrapped for the attacker)" [ "$(state)" = "$before" ]
cp "$T/enrolled.db" "$db"

# ----------------------------------------- 4. admission takes the SO, every time
on node1 node admit node2 --fingerprint "$fp2" --so-pin-source "file:$T/node1/so.pin"
check "the security officer admits node2" [ "$rc" -eq 0 ]
node1_pin=$(cat "$T/node1/user.pin")
objects=$(node_env node1 pkcs11-tool --module "$SOFTHSM_MODULE" --token-label node1 \
	--login --pin "$node1_pin" --list-objects 2>/dev/null)
check "no trusted transport key is left on node1's token" \
	bash -c '! grep -q "custody-admitted" <<<"$0"' "$objects"
before=$(state)
on node1 node admit node2 --fingerprint "$fp2" --so-pin-source ""
check "admitting again without an SO PIN source is refused (exit 2)" [ "$rc" -eq 2 ]
printf '%s' 99999999 >"$T/wrong.pin"
[ "$(cat "$T/node1/so.pin")" != 99999999 ] || printf '%s' 11111111 >"$T/wrong.pin"
on node1 node admit node2 --fingerprint "$fp2" --so-pin-source "file:$T/wrong.pin"
check "admitting again with a wrong SO PIN is refused (exit 1)" \
	bash -c '[ '"$rc"' -eq 1 ] && grep -q "as security officer: the token rejected the PIN" <<<"$0"' "$err"
check "…and nothing changed" [ "$(state)" = "$before" ]

# The real admission: node2 joins and proves the KEK; the forged pieces
# left nothing behind.
on node2 node join --kcv "0000000000000000"
check "join refuses a KEK check the operator did not confirm (exit 1)" \
	bash -c '[ '"$rc"' -eq 1 ] && grep -q "not the 0000000000000000 you gave: nothing unwrapped" <<<"$0"' "$err"
admitted_check=$(q "SELECT kek_check FROM nodes WHERE name='node2'")
on node2 node join --kcv "$admitted_check"
check "node2 joins with the signed admission and the confirmed check" [ "$rc" -eq 0 ]
check "…narrating the verified signature" \
	grep -q "the admission is signed by the cluster authority $authority for this node's transport key" <<<"$err"
check "…and the KEK's 64-bit check" grep -q "has the admitted 64-bit check $admitted_check" <<<"$err"
check "the store keeps no wrapped KEK and no signature once it joined" \
	[ "$(q "SELECT count(*) FROM nodes WHERE name='node2' AND kek_wrap IS NULL AND admission_sig IS NULL AND state='joined'")" -eq 1 ]
objects=$(node_env node2 pkcs11-tool --module "$SOFTHSM_MODULE" --token-label node2 \
	--login --pin "$(cat "$T/node2/user.pin")" --list-objects 2>/dev/null)
check "node2's transport key is gone: the admission cannot be unwrapped again" \
	bash -c '! grep -q "custody-transport" <<<"$0"' "$objects"

# ----------------------------------------- 5. confirmations at a terminal
if command -v expect >/dev/null; then
	EXP="$TOP_SRCDIR/tests/token/wizard.exp"
	# at NODE NAME ARGS... <<STEPS — custody ARGS as NODE through a
	# pseudo-terminal, as STEPS say (tests/token/wizard.exp).
	at() {
		local node=$1 name=$2
		shift 2
		cat >"$T/$name.steps"
		node_env "$node" expect -f "$EXP" "$T/$name.steps" "$CUSTODY_BIN" "$@" \
			>"$T/$name.log" 2>&1
		rc=$?
		out=$(tr -d '\r' <"$T/$name.log")
		err=$out
	}
	setup_node node4 "sqlite:$T/custody.db"
	before=$(state)
	at node4 enroll-no node enroll <<STEPS
? $authority
? if it is the same: 
> no
STEPS
	check "enroll at a terminal shows the store's authority; a no refuses (exit 2)" [ "$rc" -eq 2 ]
	check "…and nothing changed" [ "$(state)" = "$before" ]
	at node4 enroll-yes node enroll <<STEPS
? if it is the same: 
> yes
STEPS
	check "…a yes pins it and enrolls" \
		bash -c '[ '"$rc"' -eq 0 ] && grep -q "pinning the cluster authority" <<<"$0"' "$out"
	fp4=$(enroll_fp)
	at node1 admit-typed node admit node4 --so-pin-source "file:$T/node1/so.pin" <<STEPS
? $fp4
? if it is the same: 
> ${fp4,,}
STEPS
	check "admit at a terminal takes the fingerprint typed (any case)" [ "$rc" -eq 0 ]
	check4=$(q "SELECT kek_check FROM nodes WHERE name='node4'")
	at node4 join-yes node join <<STEPS
? $check4
? if it is the same: 
> yes
STEPS
	check "join at a terminal shows the admitted KEK check; yes joins" \
		bash -c '[ '"$rc"' -eq 0 ] && [ "$(sqlite3 "$1" "SELECT state FROM nodes WHERE name='"'node4'"'")" = joined ]' "$out" "$db"
fi
done_testing
