#!/usr/bin/env bash
# failover.sh — the cluster's store fails over: a PostgreSQL primary and
# a streaming hot standby on loopback (both started here as the server's
# user, the standby made by pg_basebackup -R), three nodes with a
# multi-host URL (host a,b with target_session_attrs=read-write: libpq's
# own failover).  Walked deterministically, without timing luck:
#   - a write on the standby alone, or through a URL naming only the
#     standby, fails with exit 1 and says why; nothing is written;
#     `status` through that URL fails in one line (exit 1), `test` is
#     UNKNOWN (exit 3) in one line;
#   - a watcher whose connection a server restart dropped while it could
#     not listen (stopped) catches up on the change it was not notified
#     of, by the store's generation (its periodic sync is 5 minutes off);
#   - a `set` held inside its transaction (a row lock this test takes on
#     the audit head) when the primary stops fails with exit 1, leaves
#     nothing half-written, and succeeds when repeated on the promoted
#     standby; a `set` that returned 0 just before the stop is on it;
#   - every watcher reconnects (with backoff and jitter) and syncs what
#     was set on the new primary; the audit chain verifies there; a
#     second promote is refused and changes nothing: status is ok, and
#     test's cluster line says every node holds the key.
top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TOP_SRCDIR=$top
. "$top/tests/token/lib.sh"
. "$top/tests/cluster/lib.sh"

# ------------------------------------------------------------ two servers
pgbin=""
for d in "$(pg_config --bindir 2>/dev/null || true)" \
	$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
	if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_basebackup" ]; then
		pgbin=$d
		break
	fi
done
if [ -z "$pgbin" ]; then
	echo "1..0 # SKIP no PostgreSQL server installed (initdb, pg_basebackup)"
	exit 0
fi
# PostgreSQL refuses to run as root: the servers run as "postgres" then,
# and the database user is root (a plain role owning the database).
if [ "$(id -u)" -eq 0 ]; then
	owner=postgres
	as_server() { runuser -u postgres -- "$@"; }
else
	owner=$(id -un)
	as_server() { "$@"; }
fi
dbuser=$(id -un)
# A socket path has at most 107 bytes: a short directory.
pgdir=$(mktemp -d /tmp/custody-fo.XXXXXX)
chmod 0755 "$pgdir"
pids=()
cleanup() {
	local p s
	for p in "${pids[@]}"; do
		kill -CONT "$p" 2>/dev/null
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null
	done
	for s in a b; do
		[ -f "$pgdir/$s/postmaster.pid" ] &&
			as_server "$pgbin/pg_ctl" -D "$pgdir/$s" -m immediate -w stop >/dev/null 2>&1
	done
	rm -rf "$pgdir" "$T"
}
trap cleanup EXIT

port_a=$(free_port)
port_b=$(free_port)
while [ "$port_b" = "$port_a" ]; do port_b=$(free_port); done
# pg SERVER ARGS... — pg_ctl on server a or b.
pg() {
	local s=$1
	shift
	as_server "$pgbin/pg_ctl" -D "$pgdir/$s" -l "$pgdir/$s.log" -w -t 60 "$@"
}
server_opts() { # PORT
	echo "-p $1 -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off" \
		"-c full_page_writes=off -c max_connections=100 -c wal_level=replica" \
		"-c hot_standby=on"
}
touch "$pgdir/a.log" "$pgdir/b.log"
chown "$owner" "$pgdir" "$pgdir/a.log" "$pgdir/b.log"
if ! as_server "$pgbin/initdb" -D "$pgdir/a" -A trust -U postgres --no-sync -E UTF8 \
	--locale=C >"$pgdir/initdb.log" 2>&1 ||
	! pg a -o "$(server_opts "$port_a")" start >/dev/null; then
	echo "Bail out! cannot start the primary: $(tail -3 "$pgdir/initdb.log" "$pgdir/a.log")"
	exit 1
fi
admin() { # PORT SQL — as the server's superuser
	psql -h 127.0.0.1 -p "$1" -U postgres -d postgres -qAtc "$2" 2>&1
}
[ "$dbuser" = postgres ] || admin "$port_a" "CREATE ROLE \"$dbuser\" LOGIN" >/dev/null
admin "$port_a" "CREATE DATABASE custody_test OWNER \"$dbuser\"" >/dev/null
if ! as_server "$pgbin/pg_basebackup" -h 127.0.0.1 -p "$port_a" -U postgres \
	-D "$pgdir/b" -R -X stream -c fast --no-sync >"$pgdir/basebackup.log" 2>&1 ||
	! pg b -o "$(server_opts "$port_b")" start >/dev/null; then
	echo "Bail out! cannot start the standby: $(tail -3 "$pgdir/basebackup.log" "$pgdir/b.log")"
	exit 1
fi
url_a="postgresql://127.0.0.1:$port_a/custody_test"
url_b="postgresql://127.0.0.1:$port_b/custody_test"
store="postgresql://127.0.0.1:$port_a,127.0.0.1:$port_b/custody_test?target_session_attrs=read-write"
qa() { psql "$url_a" -qAtc "$1" 2>&1; }
qb() { psql "$url_b" -qAtc "$1" 2>&1; }
# caught_up — the standby has replayed everything the primary wrote.
caught_up() {
	local lsn
	lsn=$(admin "$port_a" "SELECT pg_current_wal_lsn()")
	[ "$(admin "$port_b" "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ]
}

# ------------------------------------------------------------ helpers
new_key() { # VAR CN — a key and self-signed certificate, PEM, in memory
	local -n dst=$1
	dst=$(openssl req -x509 -newkey rsa:2048 -noenc -keyout - -out - -days 30 \
		-subj "/O=custody failover test/CN=$2" 2>/dev/null)
}
thumbprint_of() {
	local -n src=$1
	printf '%s\n' "$src" | openssl x509 -noout -fingerprint -sha1 | sed 's/.*=//; s/://g'
}
import_replicable() { # NODE PEM-VAR [ARGS...]
	local name=$1
	local -n src=$2
	shift 2
	printf '%s\n' "$src" | on "$name" import --path /dev/stdin --replicable "$@"
}
declare -A watch_pid
start_watch() { # NODE — sync --watch -o json, every 300 s besides changes
	local name=$1
	: >"$T/$name/watch.out"
	(
		. "$T/$name/env"
		exec "$CUSTODY_BIN" sync --watch --interval 300 -o json \
			>"$T/$name/watch.out" 2>"$T/$name/watch.err"
	) &
	watch_pid[$name]=$!
	pids+=($!)
}
watch_syncs() { grep -c '"node"' "$T/$1/watch.out"; }
current_on() { # QUERY-FN — the current OAuthTokenIssuer thumbprint in that server
	"$1" "SELECT current_thumbprint FROM assignments WHERE type = 'OAuthTokenIssuer'"
}

# ------------------------------------------------------------ the cluster
nodes=(node1 node2 node3)
for n in "${nodes[@]}"; do
	setup_node "$n" "$store"
done
on node1 kek create
check "node1: kek create through the multi-host URL" [ "$rc" -eq 0 ]
on node1 kek authority
authority=$out
for n in node2 node3; do
	on "$n" node enroll --authority "$authority"
	fp=$(enroll_fp)
	on node1 node admit "$n" --fingerprint "$fp"
	on "$n" node join
	check "$n: enrolled, admitted, joined" [ "$rc" -eq 0 ]
done
new_key keyA a.failover.custody.test
A=$(thumbprint_of keyA)
import_replicable node1 keyA -t OAuthTokenIssuer
check "node1: import A (replicable) as OAuthTokenIssuer" [ "$rc" -eq 0 ]
new_key keyB b.failover.custody.test
B=$(thumbprint_of keyB)
import_replicable node1 keyB
new_key keyC c.failover.custody.test
C=$(thumbprint_of keyC)
import_replicable node1 keyC
new_key keyD d.failover.custody.test
D=$(thumbprint_of keyD)
import_replicable node1 keyD
check "node1: import B, C and D (replicable)" [ "$rc" -eq 0 ]
check "the standby replays the primary" wait_until 20 caught_up
check "…and holds A as current" [ "$(current_on qb)" = "$A" ]

# ------------------------------------------------------------ the standby refuses writes
head_before=$(qa "SELECT seq || hash FROM audit_head")
on node1 --store "$url_b" set -t OAuthTokenIssuer --force --thumbprint "$B"
check "set on the standby alone: exit 1" [ "$rc" -eq 1 ]
check "…saying the store is a read-only standby and nothing was written" \
	grep -q "read-only (a standby server): nothing was written" <<<"$err"
on node1 --store "$url_b?target_session_attrs=read-write" set -t OAuthTokenIssuer --force --thumbprint "$B"
check "set through a URL naming only the standby (read-write wanted): exit 1" [ "$rc" -eq 1 ]
check "…saying no server it names accepts writes" grep -q "no server it names accepts writes" <<<"$err"
on node1 --store "$url_b?target_session_attrs=read-write" status
check "status through that URL fails too (exit 1), naming the cause" \
	grep -q "^1:.*accepts writes" <<<"$rc:$err"
check "…in one line" [ "$(grep -c "^custody: status: .*accepts writes" <<<"$err")" = 1 ]
on node1 --store "$url_b?target_session_attrs=read-write" test -t OAuthTokenIssuer
check "test through that URL: UNKNOWN (exit 3), one line naming the cause" \
	eval '[ "$rc" -eq 3 ] && [ "$(grep -c "accepts writes" <<<"$out$err")" = 1 ]'
check "nothing was written: the primary's audit head and assignment are as they were" \
	[ "$(qa "SELECT seq || hash FROM audit_head")$(current_on qa)" = "$head_before$A" ]

# ------------------------------------------------------------ watchers
start_watch node2
start_watch node3
for n in node2 node3; do
	check "$n: its watcher holds A" wait_until 30 holds_current "$n" "$A"
done

# A watcher that cannot listen (stopped) while a restart drops its
# connection misses the notification of the change made meanwhile.
syncs3=$(watch_syncs node3)
kill -STOP "${watch_pid[node3]}"
pg a -m fast restart >/dev/null
check "the primary restarts" [ "$?" -eq 0 ]
on node1 set -t OAuthTokenIssuer --force --thumbprint "$B"
check "node1: set B while node3's watcher is down (exit 0)" [ "$rc" -eq 0 ]
check "node2's watcher, reconnected, syncs B" wait_until 30 holds_current node2 "$B"
check "node3's watcher printed nothing while stopped" [ "$(watch_syncs node3)" = "$syncs3" ]
kill -CONT "${watch_pid[node3]}"
check "node3's watcher, back, catches up on B (no notification: the generation)" \
	wait_until 30 holds_current node3 "$B"
generation=$(qa "SELECT value FROM cluster_meta WHERE name = 'generation'")
check "the store's generation counts the changes (a positive number)" \
	[ "${generation:-0}" -gt 0 ]

# ------------------------------------------------------------ a set in flight at the failover
check "the standby has B" wait_until 20 caught_up
# Hold the audit head: a `set` waits there inside its transaction, after
# its assignment update.
coproc HOLD { psql "$url_a" -qAt 2>&1; }
pids+=($HOLD_PID)
echo "BEGIN; SELECT 'held' FROM audit_head FOR UPDATE;" >&"${HOLD[1]}"
read -r -t 20 held <&"${HOLD[0]}"
check "the test holds the audit head's row lock" [ "${held:-}" = held ]
(
	. "$T/node1/env"
	"$CUSTODY_BIN" set -t OAuthTokenIssuer --force --thumbprint "$C" >"$T/set.out" 2>"$T/set.err"
	echo $? >"$T/set.rc"
) &
set_pid=$!
pids+=($set_pid)
waiting() {
	[ "$(admin "$port_a" "SELECT count(*) FROM pg_stat_activity WHERE datname = 'custody_test' AND wait_event_type = 'Lock'")" -ge 1 ]
}
check "the set waits inside its transaction" wait_until 20 waiting
pg a -m fast stop >/dev/null
wait "$set_pid"
check "the set in flight when the primary stopped: exit 1" [ "$(cat "$T/set.rc")" = 1 ]
check "…saying the store went away" grep -q "store unreachable" "$T/set.err"
pg b promote >/dev/null
check "the standby is promoted" [ "$(qb "SELECT pg_is_in_recovery()")" = f ]
check "nothing of the failed set is on the new primary: B is current" [ "$(current_on qb)" = "$B" ]
on node1 audit --verify
check "the audit chain verifies on the new primary" [ "$rc" -eq 0 ]
on node1 set -t OAuthTokenIssuer --force --thumbprint "$C"
check "the set, repeated, succeeds on the new primary (exit 0)" [ "$rc" -eq 0 ]
for n in node2 node3; do
	check "$n: its watcher reconnects and syncs C" wait_until 30 holds_current "$n" "$C"
done
on node1 audit --verify
check "the audit chain still verifies" [ "$rc" -eq 0 ]

# ------------------------------------------------------------ promoted twice
pg b promote >"$T/promote2" 2>&1
check "a second promote is refused (the server is no standby)" [ "$?" -ne 0 ]
on node1 set -t OAuthTokenIssuer --force --thumbprint "$D"
check "…and changes nothing: set D succeeds" [ "$rc" -eq 0 ]
for n in node2 node3; do
	check "$n: its watcher syncs D" wait_until 30 holds_current "$n" "$D"
done
on node1 sync
on node1 status -o json
check "status: every node holds D, none stale" \
	[ "$(py 'print(d["ok"], sorted(set((n["holds"]["OAuthTokenIssuer"], n["stale"]) for n in d["nodes"])))')" = \
	"True [('$D', False)]" ]
on node2 test -t OAuthTokenIssuer
check "test on node2: nothing CRITICAL, its cluster line OK: D held by all 3 joined nodes" \
	eval '[ "$rc" -le 1 ] && ! grep -q ^CRITICAL <<<"$out" &&
	      grep -q "^OK OAuthTokenIssuer/global: held by all 3 joined nodes" <<<"$out"'
on node1 audit --verify
check "the audit chain verifies at the end" [ "$rc" -eq 0 ]

done_testing
