#!/usr/bin/env bash
# node_faults.sh — one node of a cluster in trouble, the others not: four
# nodes (a SoftHSM token each) on one PostgreSQL store; one node at a time
# talks to its token through the fault shim (tests/fault/p11shim.c), which
# makes one PKCS#11 call fail, or kills the process at a chosen call:
#   1. a full token: the unwrap of the new key fails CKR_DEVICE_MEMORY;
#   2. a read-only token: the unwrap fails CKR_TOKEN_WRITE_PROTECTED, and
#      a token whose sessions cannot be opened (CKR_TOKEN_WRITE_PROTECTED
#      from every C_OpenSession) is refused up front;
#   3. a package that fails to unwrap on that node only
#      (CKR_WRAPPED_KEY_INVALID);
#   4. two watchers (`sync --watch`) killed during a round: one by SIGKILL
#      just before its unwrap, one aborted right after it (the key on its
#      token, never checked nor reported).
# Cases 1-3: that node's sync exits 1 in one line naming the key and the
# cause (the refusal up front: the cause); its token is as it was and
# consistent (checkstate); the other nodes sync the key; `custody status`
# (table and -o json, whose "problems" carry the node's reason) shows that
# node alone not holding it; `custody test` on that node is CRITICAL and
# says why (UNKNOWN while its token cannot be opened), on another the key
# is OK and the cluster line is a WARNING naming the node and its reason.
# Then the node, without the fault, catches up.  Case 4: the third watcher
# syncs the key; status shows the killed two stale, their tokens pass
# checkstate (the unwrapped key the one leftover), test names them, and
# restarted they catch up, leaving nothing over.
# The standby promoted twice and a URL naming only standbys: failover.sh.
top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TOP_SRCDIR=$top
. "$top/tests/token/lib.sh"
. "$top/tests/cluster/lib.sh"

: "${TOP_BUILDDIR:=$top}"
SHIM=$TOP_BUILDDIR/tests/fault/.libs/p11shim.so
CHECKSTATE=$TOP_BUILDDIR/tests/fault/checkstate
if [ ! -f "$SHIM" ] || [ ! -x "$CHECKSTATE" ]; then
	echo "1..0 # SKIP the fault shim or checkstate is not built (make check builds them)"
	exit 0
fi
unset FAULT_AT FAULT_FUNC FAULT_RV FAULT_ABORT FAULT_ABORT_AFTER FAULT_PERSIST \
	FAULT_EXEC FAULT_COUNT_FILE FAULT_TRACE FAULT_PIN_FLAGS FAULT_TEAR

pg_store_with_watchers node_faults

# ------------------------------------------------------------ helpers
nodes=(node1 node2 node3 node4)
for n in "${nodes[@]}"; do
	setup_node "$n" "$store"
done
# The real module of the nodes (the shim forwards to it).
export FAULT_TARGET
FAULT_TARGET=$(node_env node1 printenv CUSTODY_MODULE)

# new_key NAME CN — an RSA-2048 key and self-signed certificate, PEM, in
# the shell variable NAME (memory only); its thumbprint in tp_NAME.
new_key() {
	local -n dst=$1
	local -n tp=tp_$1
	dst=$(openssl req -x509 -newkey rsa:2048 -noenc -keyout - -out - -days 30 \
		-subj "/O=custody node faults test/CN=$2" 2>/dev/null)
	tp=$(printf '%s\n' "$dst" | openssl x509 -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
}
# import_current PEM-VAR — node1 imports the key (replicable, packaged)
# and makes it OAuthTokenIssuer's current certificate.
import_current() {
	local -n src=$1
	printf '%s\n' "$src" | on node1 import --path /dev/stdin --replicable \
		-t OAuthTokenIssuer --force
}
# faulty NODE VAR=VALUE... -- ARGS... — custody ARGS as NODE through the
# shim with those FAULT_* variables; $out, $err, $rc.
faulty() {
	local name=$1 env=()
	shift
	while [ "$1" != -- ]; do
		env+=("$1")
		shift
	done
	shift
	out=$(. "$T/$name/env" && export CUSTODY_MODULE=$SHIM &&
		env "${env[@]}" FAULT_TRACE="$T/$name/trace" timeout -s KILL 60 \
			"$CUSTODY_BIN" "$@" 2>"$T/stderr")
	rc=$?
	err=$(cat "$T/stderr")
}
# token_state NODE — a fingerprint of NODE's token objects.
token_state() {
	find "$T/$1/tokens" -type f -name '*.object' ! -name 'token.object' -print0 |
		sort -z | xargs -0r sha256sum | sha256sum | cut -d' ' -f1
}
# consistent NODE [--leftovers-ok] — checkstate on NODE's token, through
# SoftHSM itself (never the shim): $check_out, $check_rc.
consistent() {
	local name=$1
	shift
	check_out=$(node_env "$name" "$CHECKSTATE" --module "$FAULT_TARGET" "$@" 2>&1)
	check_rc=$?
	[ "$check_rc" -eq 0 ] || [ "$check_rc" -eq 3 ]
}
# one_line CMD WORD... — stderr has one error line "custody: CMD: ..."
# (beside the command's narration and a hint) and it holds every WORD.
one_line() {
	local cmd=$1 line w
	shift
	[ "$(grep -c "^custody: $cmd: " <<<"$err")" -eq 1 ] || return 1
	line=$(grep "^custody: $cmd: " <<<"$err")
	for w in "$@"; do
		grep -qF -- "$w" <<<"$line" || return 1
	done
}
# status_json — node1's `status -o json` into $out ($rc its exit).
status_json() { on node1 status -o json; }
# holds NODE — the OAuthTokenIssuer thumbprint NODE holds, by status JSON.
holds() { py "print([n['holds']['OAuthTokenIssuer'] for n in d['nodes'] if n['node'] == '$1'][0])"; }
# problem_of NODE THUMBPRINT — the reason in NODE's "problems" for it.
problem_of() {
	py "print(*[p['message'] for n in d['nodes'] if n['node'] == '$1'
	            for p in n.get('problems', []) if p['thumbprint'] == '$2'])"
}
# in_line_except NODE THUMBPRINT — every other node holds THUMBPRINT, NODE
# does not (status -o json in $out).
in_line_except() {
	[ "$(py "print(sorted((n['node'], n['holds']['OAuthTokenIssuer'] == '$2')
	                        for n in d['nodes']))")" = \
	  "$(python3 -c "print(sorted((n, n != '$1') for n in '${nodes[*]}'.split()))")" ]
}
# test_line NODE CHECK — the line of `custody test` (run as NODE, $out)
# for that check.
test_line() { grep -E "^[A-Z]+ OAuthTokenIssuer/global: " <<<"$out" | grep -F "$2" | head -1; }

# ------------------------------------------------------------ the cluster
on node1 kek create
on node1 kek authority
authority=$out
for n in node2 node3 node4; do
	on "$n" node enroll --authority "$authority"
	on node1 node admit "$n" --fingerprint "$(enroll_fp)"
	on "$n" node join
done
check "the ceremony: node2, node3 and node4 joined" [ "$rc" -eq 0 ]
new_key A a.faults.custody.test
import_current A
check "node1: import A (replicable) as OAuthTokenIssuer" [ "$rc" -eq 0 ]
for n in node2 node3 node4; do
	on "$n" sync
done
on node1 sync
status_json
check "every node holds A: status exit 0" [ "$rc:$(holds node4)" = "0:$tp_A" ]

# refused_sync CASE NODE KEY CAUSE NAMED FAULT... — KEY becomes current;
# NODE syncs with FAULT... and fails in one line naming CAUSE (and the key
# when NAMED is 1), leaving its token as it was and consistent.
refused_sync() {
	local case=$1 name=$2 key=$3 cause=$4 named=$5 before
	local -n tp_key=tp_$key
	shift 5
	import_current "$key"
	check "$case: node1 imports $key as OAuthTokenIssuer (exit 0)" [ "$rc" -eq 0 ]
	before=$(token_state "$name")
	faulty "$name" "$@" -- sync
	check "$case: $name's sync exits 1" [ "$rc" -eq 1 ]
	if [ "$named" = 1 ]; then
		check "$case: …in one line naming the key and the cause" \
			one_line sync "$tp_key" "$cause"
	else
		check "$case: …refused up front, in one line naming the cause" \
			one_line sync "$cause"
	fi
	check "$case: $name's token is as it was" [ "$(token_state "$name")" = "$before" ]
	check "$case: …and consistent with the store (checkstate)" consistent "$name"
}
# others_sync CASE NODE — every other node syncs (exit 0).
others_sync() {
	local case=$1 name=$2 n good=0
	for n in "${nodes[@]}"; do
		[ "$n" = "$name" ] && continue
		on "$n" sync
		[ "$rc" -eq 0 ] && good=$((good + 1))
	done
	check "$case: the three other nodes sync it (exit 0)" [ "$good" -eq 3 ]
}
# reported CASE NODE KEY CAUSE — status and test say NODE does not hold
# KEY, and why; test on another node finds its own key OK.
reported() {
	local case=$1 name=$2 key=$3 cause=$4 n=${others_of[$2]}
	local -n tp_key=tp_$key
	local tp=$tp_key
	status_json
	check "$case: status -o json: exit 1, $name alone does not hold $key" \
		eval '[ "$rc" -eq 1 ] && in_line_except "$name" "$tp"'
	check "$case: …its problems carry the cause" \
		grep -qF "$cause" <<<"$(problem_of "$name" "$tp")"
	on node1 status
	check "$case: status (table): exit 1, a line naming $name, $key and the cause" \
		eval '[ "$rc" -eq 1 ] && grep -q "^$name: ${tp:0:8} not held: .*$cause" <<<"$out" &&
		      grep -q "^custody: status: .*$name" <<<"$err"'
	on "$name" test -t OAuthTokenIssuer
	check "$case: test on $name: CRITICAL (exit 2), the key is not on its token" \
		eval '[ "$rc" -eq 2 ] && test_line "$name" "is not on token" | grep -q ^CRITICAL'
	check "$case: …and its cluster line says why" \
		eval 'test_line "$name" "$cause" | grep -q "^CRITICAL .*last sync"'
	on "$n" test -t OAuthTokenIssuer
	check "$case: test on $n: its key OK, the cluster line names $name (WARNING)" \
		eval 'test_line "$n" "signs and verifies" | grep -q ^OK &&
		      test_line "$n" "$name" | grep -q "^WARNING.*$cause"'
}
# caught_up CASE NODE KEY — NODE, without the fault, syncs KEY, and every
# node holds it.
caught_up() {
	local case=$1 name=$2 key=$3
	local -n tp_key=tp_$key
	on "$name" sync
	check "$case: $name without the fault syncs $key (exit 0)" [ "$rc" -eq 0 ]
	status_json
	check "$case: status: every node holds $key again (exit 0)" \
		eval '[ "$rc" -eq 0 ] && in_line_except nobody "$tp_key"'
}
declare -A others_of=([node2]=node3 [node3]=node4 [node4]=node2)

# fault_round CASE NODE KEY CAUSE FAULT... — the whole round for a fault
# of the key's unwrap.
fault_round() {
	local case=$1 name=$2 key=$3 cause=$4
	shift 4
	refused_sync "$case" "$name" "$key" "$cause" 1 "$@"
	others_sync "$case" "$name"
	reported "$case" "$name" "$key" "$cause"
	caught_up "$case" "$name" "$key"
}

# ------------------------------------------------------------ 1. a full token
new_key B b.faults.custody.test
fault_round "full token" node2 B "CKR_DEVICE_MEMORY (the token's memory is full)" \
	FAULT_FUNC=C_UnwrapKey FAULT_AT=1 FAULT_RV=0x31

# ------------------------------------------------------------ 2. a read-only token
new_key C c.faults.custody.test
fault_round "read-only token" node3 C "CKR_TOKEN_WRITE_PROTECTED (the token is write-protected" \
	FAULT_FUNC=C_UnwrapKey FAULT_AT=1 FAULT_RV=0xE2
# No read-write session at all: refused before anything is read or
# written on the token, and said to the store all the same.
new_key D d.faults.custody.test
ro=(FAULT_FUNC=C_OpenSession FAULT_AT=1 FAULT_PERSIST=1 FAULT_RV=0xE2)
why="cannot open a session on token node3: CKR_TOKEN_WRITE_PROTECTED"
refused_sync "read-only session" node3 D "$why" 0 "${ro[@]}"
others_sync "read-only session" node3
faulty node3 "${ro[@]}" -- test -t OAuthTokenIssuer
check "read-only session: test on node3 with it: UNKNOWN (exit 3), saying why" \
	eval '[ "$rc" -eq 3 ] && grep -qF "$why" <<<"$out$err"'
reported "read-only session" node3 D "$why"
caught_up "read-only session" node3 D

# ------------------------------------------------------------ 3. a package that fails to unwrap
new_key E e.faults.custody.test
fault_round "package fails to unwrap" node4 E "CKR_WRAPPED_KEY_INVALID" \
	FAULT_FUNC=C_UnwrapKey FAULT_AT=1 FAULT_RV=0x110

# ------------------------------------------------------------ 4. watchers killed in a round
# start_watch NODE [VAR=VALUE...] — `sync --watch -o json` as NODE (through
# the shim with those FAULT_* variables), its JSON lines in
# $T/NODE/watch.out; its pid in watch_pid[NODE].
declare -A watch_pid
start_watch() {
	local name=$1
	shift
	: >"$T/$name/watch.out"
	(
		. "$T/$name/env"
		export CUSTODY_MODULE=$SHIM
		exec env "$@" FAULT_TRACE="$T/$name/trace" "$CUSTODY_BIN" sync --watch \
			--interval 300 -o json >"$T/$name/watch.out" 2>"$T/$name/watch.err"
	) &
	watch_pid[$name]=$!
	pids+=($!)
}
watch_syncs() { grep -c '"node"' "$T/$1/watch.out"; }
has_synced() { [ "$(watch_syncs "$1")" -ge 1 ]; }
gone() { ! kill -0 "${watch_pid[$1]}" 2>/dev/null; }
# ended NODE — the watcher's exit status (it has ended).
ended() {
	wait "${watch_pid[$1]}"
	echo $?
}

# node2 watches as it should; node3's watcher is aborted right after the
# token unwrapped the new key (its work done, never checked nor
# reported); node4's is killed with SIGKILL just before its unwrap.
start_watch node2
start_watch node3 FAULT_FUNC=C_UnwrapKey FAULT_AT=1 FAULT_ABORT_AFTER=1
start_watch node4 FAULT_FUNC=C_UnwrapKey FAULT_AT=1 'FAULT_EXEC=kill -KILL $PPID'
for n in node2 node3 node4; do
	check "killed: $n's watcher syncs at start (E held)" wait_until 30 holds_current "$n" "$tp_E"
done
new_key F f.faults.custody.test
import_current F
check "killed: node1 imports F as OAuthTokenIssuer during the round (exit 0)" [ "$rc" -eq 0 ]
check "killed: node2's watcher syncs F" wait_until 30 holds_current node2 "$tp_F"
check "killed: node3's watcher dies in its unwrap (SIGABRT)" \
	eval 'wait_until 30 gone node3 && [ "$(ended node3)" -eq 134 ]'
check "killed: node4's watcher dies before its unwrap (SIGKILL)" \
	eval 'wait_until 30 gone node4 && [ "$(ended node4)" -eq 137 ]'
check "killed: node3's watcher died right after the module carried out its unwrap" \
	eval 'tail -1 "$T/node3/trace" | grep -q "C_UnwrapKey 0x0 ABORT-AFTER"'
on node1 sync
status_json
check "killed: status -o json: exit 1, node2 holds F, node3 and node4 do not and are stale" \
	eval '[ "$rc" -eq 1 ] &&
	      [ "$(py "print(sorted((n[\"node\"], n[\"holds\"][\"OAuthTokenIssuer\"] == \"$tp_F\",
	                             n[\"verdict\"]) for n in d[\"nodes\"]))")" = \
	        "[('"'"'node1'"'"', True, '"'"'ok'"'"'), ('"'"'node2'"'"', True, '"'"'ok'"'"'), ('"'"'node3'"'"', False, '"'"'stale'"'"'), ('"'"'node4'"'"', False, '"'"'stale'"'"')]" ]'
on node1 status
check "killed: status (table) names node3 and node4 as stale" \
	grep -q "node3 (stale), node4 (stale)" <<<"$err"
check "killed: node3's token is consistent, F's unwrapped key its one leftover (checkstate)" \
	eval 'consistent node3 --leftovers-ok && [ "$check_rc" -eq 3 ] &&
	      [ "$(grep -c "^leftover: " <<<"$check_out")" -eq 1 ] &&
	      grep -q "^leftover: private key $(q "SELECT key_id FROM certificates WHERE thumbprint = '"'$tp_F'"'") " <<<"$check_out"'
check "killed: node4's token is consistent, nothing left over (checkstate)" \
	eval 'consistent node4 && [ "$check_rc" -eq 0 ]'
on node4 test -t OAuthTokenIssuer
check "killed: test on node4: CRITICAL (exit 2), F is not on its token" \
	eval '[ "$rc" -eq 2 ] && test_line node4 "is not on token" | grep -q ^CRITICAL'
check "killed: …and its cluster line: it has not reported F" \
	eval 'test_line node4 "has not reported" | grep -q ^WARNING'
on node2 test -t OAuthTokenIssuer
check "killed: test on node2: its key OK, the cluster line names node3 and node4 (WARNING)" \
	eval 'test_line node2 "signs and verifies" | grep -q ^OK &&
	      test_line node2 "2 of 4 joined nodes do not hold it" | grep -q "^WARNING.*node3.*node4"'
for n in node3 node4; do
	start_watch "$n"
	check "killed: $n's watcher, restarted, catches up on F" wait_until 30 holds_current "$n" "$tp_F"
done
status_json
check "killed: status: every node holds F (exit 0)" \
	eval '[ "$rc" -eq 0 ] && in_line_except nobody "$tp_F"'
check "killed: node3's token is consistent, no leftover (checkstate)" \
	eval 'consistent node3 && [ "$check_rc" -eq 0 ]'

done_testing
