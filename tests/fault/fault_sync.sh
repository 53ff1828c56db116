#!/usr/bin/env bash
# The cluster under faults: two nodes, each with a token of its own (its
# own SOFTHSM2_CONF and lock directory), sharing one SQLite store.  Three
# walks, each over every k-th PKCS#11 call (FAULT_SYNC_K, default 3; every
# call under make stress), failing it and then aborting the process there:
#   1. `node join` on node2 (unwrap the KEK, check its KCV, record it);
#   2. `import --replicable -t OAuthTokenIssuer` on node1, which packages
#      the key under the KEK into the store;
#   3. `sync` on node2, which unwraps the package, checks the key against
#      its certificate and reports it held (its aborts: crash_sync.sh).
# The join is also walked by crash_walk (lib.sh): aborted at every k-th
# call boundary and inside its object writes, torn unwraps of the KEK
# included.
# After each fault: checkstate (the node's token against the store: no
# package without its certificate or under another KEK, no KEK with
# another KCV, no key reported held that the token lacks, and the rest of
# its rules), exit 1 leaving both tokens and the store as they were (sync:
# both tokens as they were and checkstate content; sync records what the
# node holds, its last sync and an audit entry even when it refuses a key,
# by design), and the same command again succeeds.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/fault/lib.sh"
if ! "$CUSTODY_BIN" sync --help >/dev/null 2>&1 || ! "$CUSTODY_BIN" node --help >/dev/null 2>&1; then
	echo "1..0 # SKIP this custody has no sync / node commands"
	exit 0
fi
started=$(now_ms)
k=${FAULT_SYNC_K:-3}
store="sqlite:$T/custody.db"
for n in node1 node2; do
	setup_node "$n" "$store"
done

# as_node NAME — this shell becomes node NAME, talking through the shim.
as_node() {
	. "$T/$1/env"
	export CUSTODY_MODULE=$SHIM
}
# Both nodes' tokens and the store are the state.
save_state() {
	rm -rf "$T/saved.$1"
	mkdir -p "$T/saved.$1"
	cp -a "$T/node1/tokens" "$T/saved.$1/node1.tokens"
	cp -a "$T/node2/tokens" "$T/saved.$1/node2.tokens"
	cp -a "$T/custody.db" "$T/saved.$1/custody.db"
}
restore_state() {
	rm -rf "$T/node1/tokens" "$T/node2/tokens" "$T"/custody.db*
	cp -a "$T/saved.$1/node1.tokens" "$T/node1/tokens"
	cp -a "$T/saved.$1/node2.tokens" "$T/node2/tokens"
	cp -a "$T/saved.$1/custody.db" "$T/custody.db"
}
# state — the objects of both tokens, and the store (not the store when
# $tokens_only is 1).
tokens_only=0
state() {
	{
		find "$T/node1/tokens" "$T/node2/tokens" -type f -name '*.object' \
			! -name 'token.object' -print0 | sort -z | xargs -0r sha256sum
		[ "$tokens_only" -eq 1 ] || sqlite3 "$T/custody.db" .dump
	} | sha256sum | cut -d' ' -f1
}
status_of() { # NODE FIELD — from `custody status -o json`
	"$CUSTODY_BIN" status -o json 2>/dev/null | python3 -c '
import json, sys
for n in json.load(sys.stdin)["nodes"]:
    if n["node"] == sys.argv[1]:
        print(n[sys.argv[2]])' "$1" "$2"
}

on node1 kek create
check "node1: kek create" [ "$rc" -eq 0 ]
on node1 kek authority
on node2 node enroll --authority "$out"
check "node2: node enroll" [ "$rc" -eq 0 ]
on node1 node admit node2 --fingerprint "$(enroll_fp)"
check "node1: node admit node2" [ "$rc" -eq 0 ]
save_state admitted

# 1. node join on node2.
as_node node2
effect_ok() {
	local st
	st=$(status_of node2 state)
	[ "$st" = joined ] && return 0
	why="node2 is $st, not joined"
	return 1
}
walk node admitted fail "$k" -- node join
n_join=$walk_count
# The join's crash walk: every k-th call boundary (all in make stress),
# and torn writes inside its object writes, the KEK's unwrap included: a
# KEK object that cannot wrap is destroyed and unwrapped again.
crash_k=$k crash_walk node admitted -- node join

# 2. import --replicable on node1, which packages the key.
restore_state admitted
run node join
check "node2: node join" [ "$rc" -eq 0 ]
save_state joined
key=$(openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null)
openssl req -x509 -key <(printf '%s\n' "$key") -subj "/O=custody test/CN=rep.fault.test" \
	-days 200 -out "$T/rep.crt" 2>/dev/null
openssl pkcs12 -export -inkey <(printf '%s\n' "$key") -in "$T/rep.crt" -passout pass: \
	-out "$T/rep.p12"
unset key
rep=$(openssl x509 -in "$T/rep.crt" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
as_node node1
effect_ok() {
	local cur pkgs
	cur=$("$CUSTODY_BIN" get -t OAuthTokenIssuer -i global -o thumbprint 2>/dev/null)
	pkgs=$(sqlite3 "$T/custody.db" "SELECT count(*) FROM packages WHERE thumbprint = '$rep'")
	[ "$cur" = "$rep" ] && [ "$pkgs" = 1 ] && return 0
	why="OAuthTokenIssuer/global is $cur, $pkgs packages of $rep"
	return 1
}
walk import joined fail "$k" -- import --path "$T/rep.p12" --replicable -t OAuthTokenIssuer
n_pkg=$walk_count
walk import joined abort "$k" -- import --path "$T/rep.p12" --replicable -t OAuthTokenIssuer

# 3. sync on node2.
restore_state joined
run import --path "$T/rep.p12" --replicable -t OAuthTokenIssuer
check "node1: import --replicable (packaged)" [ "$rc" -eq 0 ]
save_state packaged
as_node node2
tokens_only=1
walk_unchanged() {
	checkstate
	[ "$check_rc" -eq 0 ] && return 0
	why="sync failed and left the store inconsistent"
	return 1
}
effect_ok() {
	local held
	held=$("$CUSTODY_BIN" list -o json 2>/dev/null | python3 -c '
import json, sys
c = [x for x in json.load(sys.stdin) if x["thumbprint"] == sys.argv[1]]
print(bool(c and c[0]["has_private_key"]))' "$rep")
	[ "$held" = True ] && return 0
	why="node2's token does not hold the key of $rep"
	return 1
}
walk sync packaged fail "$k" -- sync
n_sync=$walk_count
# (sync's aborts: every interruption point in crash_sync.sh)

echo "# calls: node join $n_join, import --replicable with packaging $n_pkg, sync $n_sync;" \
	"every ${k}th visited (stress: $STRESS); $(($(now_ms) - started)) ms"
done_testing
