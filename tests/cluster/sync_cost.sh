#!/usr/bin/env bash
# sync_cost.sh — what a node's sync costs the store stays flat: a sync
# with nothing to do sends the same number of statements (counted by the
# store layer, printed by `sync -v`) with 10 or 100 nodes in the cluster
# and with 10 or $KEYS keys (30: a site declares at most 32 types of its
# own, each with one global key in line), and
# `status` answers for 10 or 100 nodes in the same number of statements.
# Two real nodes (a SoftHSM token each); the other members are rows in
# the store with their reports, as real members leave them.
top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TOP_SRCDIR=$top
. "$top/tests/token/lib.sh"
KEYS=${KEYS:-30}

. "$top/tests/cluster/lib.sh"

# ------------------------------------------------------------ the store
cleanup() {
	pg_store_drop
	rm -rf "$T"
}
trap cleanup EXIT
pg_store cost

# ------------------------------------------------------------ two nodes
types=$(seq -f "C%g" 1 "$KEYS" | paste -sd, | sed 's/,/, /g')
printf '[types]\ncustom = %s\n' "$types" >"$T/types.conf"
for n in node1 node2; do
	setup_node "$n" "$store"
	echo "export CUSTODY_CONFIG=$T/types.conf" >>"$T/$n/env"
done
on node1 kek create
on node1 kek authority
authority=$out
on node2 node enroll --authority "$authority"
on node1 node admit node2 --fingerprint "$(enroll_fp)"
on node2 node join
check "node2 joins node1's cluster" [ "$rc" -eq 0 ]

# import_keys FROM TO [unassigned] — keys FROM..TO (EC P-256),
# replicable, each the global key of its type (or of none).
import_keys() {
	local i failed=0 assign
	for i in $(seq "$1" "$2"); do
		assign=(-t "C$i" -i global)
		[ "${3:-}" = unassigned ] && assign=()
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc \
			-keyout - -out - -days 30 -subj "/CN=k$i.cost.custody.test" 2>/dev/null |
			on node1 import --path /dev/stdin --replicable "${assign[@]}"
		[ "$rc" -eq 0 ] || failed=1
	done
	return "$failed"
}
# simulate_members FROM TO — members simN (joined) that report holding
# every key of a global assignment.
simulate_members() {
	q "INSERT INTO nodes (name, state, version, joined_at, last_sync)
	   SELECT 'sim' || lpad(i::text, 4, '0'), 'joined', 1, 1,
	          extract(epoch FROM now())::bigint + 60 FROM generate_series($1, $2) i;
	   INSERT INTO node_reports (node, thumbprint, held, detail, time)
	   SELECT 'sim' || lpad(i::text, 4, '0'), current_thumbprint, true, 'held', 1
	   FROM generate_series($1, $2) i, assignments" >/dev/null
}
# statements CMD... — the statements node2's custody CMD -v sent (in $n).
statements() {
	on node2 "$@" -v
	n=$(sed -n 's/.*: \([0-9]*\) statements to the store$/\1/p' <<<"$err" | tail -1)
	[ -n "$n" ] || n=unknown
}

check "node1 imports 10 keys, each the global key of a type" import_keys 1 10
on node2 sync
check "node2's first sync unwraps the 10" [ "$(grep -c ' unwrapped$' <<<"$out")" = 10 ]
on node1 sync
simulate_members 3 10
statements sync
check "a sync with nothing to do, 10 keys, 10 nodes: counted ($n statements)" [ "$n" -gt 0 ]
sync_10_10=$n
check "…and it exits 0 holding the 10" \
	bash -c '[ "$1" -eq 0 ] && grep -q "holds 10 of 10 keys (0 unwrapped" <<<"$2"' - "$rc" "$err"
reports=$(q "SELECT md5(string_agg(node || thumbprint || held || detail || time, ',' ORDER BY node, thumbprint)) FROM node_reports")
statements sync
check "…a second one sends the same number ($sync_10_10)" [ "$n" = "$sync_10_10" ]
check "…and rewrites no report (they say the same)" \
	[ "$(q "SELECT md5(string_agg(node || thumbprint || held || detail || time, ',' ORDER BY node, thumbprint)) FROM node_reports")" = "$reports" ]
statements status
status_10=$n
check "status of 10 nodes: counted ($status_10 statements), all in line" \
	[ "$rc" -eq 0 ] && [ "$n" -gt 0 ]

simulate_members 11 100
check "100 nodes: status lists them all" [ "$(q "SELECT count(*) FROM nodes")" = 100 ]
statements sync
check "a sync with nothing to do, 10 keys, 100 nodes: the same count ($n = $sync_10_10)" \
	[ "$n" = "$sync_10_10" ]
statements status
check "status of 100 nodes: the same count as of 10 ($n = $status_10)" [ "$n" = "$status_10" ]

check "node1 imports $((KEYS - 10)) more keys" import_keys 11 "$KEYS"
generation=$(q "SELECT value FROM cluster_meta WHERE name = 'generation'")
on node2 sync
check "node2's sync unwraps them" [ "$(grep -c ' unwrapped$' <<<"$out")" = $((KEYS - 10)) ]
check "…appending its audit entry" \
	[ "$(q "SELECT action FROM audit ORDER BY seq DESC LIMIT 1")" = sync ]
# Else every node's sync would wake every other node's watcher: N x N
# wake-ups a change (measured: 100 nodes took 8 s a round).
check "…which moves no generation: no watcher wakes for a node's sync" \
	[ "$(q "SELECT value FROM cluster_meta WHERE name = 'generation'")" = "$generation" ]
statements sync
check "a sync with nothing to do, $KEYS keys, 100 nodes: the same count ($n = $sync_10_10)" \
	[ "$n" = "$sync_10_10" ]
check "…holding the $KEYS" grep -q "holds $KEYS of $KEYS keys (0 unwrapped" <<<"$err"
audit=$(q "SELECT seq FROM audit_head")
statements sync
check "…and it appends nothing to the audit log" [ "$(q "SELECT seq FROM audit_head")" = "$audit" ]

# Keys the store keeps that no assignment names, up to
# SYNC_COST_STORE_KEYS in all (make bench-sync-cost: 200; make check
# leaves them out: importing them takes minutes on SoftHSM).  A sync
# reads the rows of its own keys only (custody_store_list_certs_of).
store_keys=${SYNC_COST_STORE_KEYS:-0}
if [ "$store_keys" -gt "$KEYS" ]; then
	check "node1 imports $((store_keys - KEYS)) keys that no assignment names" \
		import_keys $((KEYS + 1)) "$store_keys" unassigned
	statements sync
	check "a sync with nothing to do, $store_keys keys in the store ($KEYS assigned), 100 nodes: the same count ($n = $sync_10_10)" \
		[ "$n" = "$sync_10_10" ]
	check "…holding the $KEYS" grep -q "holds $KEYS of $KEYS keys (0 unwrapped" <<<"$err"
	check "…the store holds $store_keys certificates and packages" \
		[ "$(q "SELECT (SELECT count(*) FROM certificates) || ' ' || (SELECT count(*) FROM packages)")" = "$store_keys $store_keys" ]
fi

done_testing
