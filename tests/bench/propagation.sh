#!/usr/bin/env bash
# propagation.sh — how long a `custody set` takes to reach every node.
#
# Usage:  make bench-propagation      (also the last step of `make bench`)
#    or:  CUSTODY_BIN=BUILD/custody CUSTODY_MODULE_DIR=BUILD/.libs \
#         bash SRC/tests/bench/propagation.sh
#
# For 3 and for 10 nodes (BENCH_PROPAGATION_NODES="3 10"): one SoftHSM
# token directory per node, one private PostgreSQL server (a schema per
# cluster size), the ceremony (kek create, node enroll / admit / join),
# then `custody sync --watch -o json` on every node.  Each round imports
# nothing: the keys were imported (replicable, packaged) on node1 before
# the watchers started, so a round is one `custody set -t OAuthTokenIssuer
# --thumbprint K` on node1; the round's time runs from just before that
# process starts until the last node has reported K held — the end of the
# sync in which the node unwrapped K, checked it against its certificate
# and wrote its report to the store, as its watcher's JSON line says
# (time_ms; the nodes share this machine's clock).  Target: under 1 s.
#
# Then the store's side alone (BENCH_STORE_SIDE_NODES, default 1000):
# tests/bench/store_side holds that many connections as nodes that hold
# every key already (LISTEN, one query round per wake, a report; no
# token, no unwrap), and a round runs from before the set until the last
# of them has written its report.  The server runs with max_connections
# of BENCH_STORE_SIDE_NODES + 100 for it.  Target: under 3 s.
#
# Each size also says what a change cost in CPU (from /proc/PID/schedstat,
# summed over the rounds, divided by rounds and nodes): node_cpu_ms, a
# node's `sync --watch` (its wake, query round, token work and report);
# server_cpu_ms, the PostgreSQL server's processes (the watchers'
# backends, the postmaster; not the set's own backend, gone by then).
#
# Prints a table and merges {"propagation": {"nodes3_ms": {"median",
# "max", "rounds", "set_ms", "node_cpu_ms", "server_cpu_ms"},
# "nodes10_ms": {...}, "store_side1000_ms":
# {...}}} into the results file,
# keeping its other keys.  Without PostgreSQL the values are null and the
# script says so (exit 0); a failed measurement exits 1.
#
# Environment: BENCH_PROPAGATION_ROUNDS (5), BENCH_PROPAGATION_NODES
# ("3 10"), BENCH_RESULTS (default tests/bench/results.json in the source
# tree), SOFTHSM_MODULE, CUSTODY_MODULE_DIR (the PostgreSQL store module).
set -u -o pipefail
shopt -s lastpipe

: "${CUSTODY_BIN:?CUSTODY_BIN must name the custody binary}"
here=$(cd "$(dirname "$0")" && pwd)
TOP_SRCDIR=${TOP_SRCDIR:-$(cd "$here/../.." && pwd)}
export TOP_SRCDIR
rounds=${BENCH_PROPAGATION_ROUNDS:-5}
sizes=${BENCH_PROPAGATION_NODES:-3 10 30 100}
side=${BENCH_STORE_SIDE_NODES:-1000}
bindir=${BENCH_BINDIR:-$TOP_SRCDIR/build/tests/bench}
results=${BENCH_RESULTS:-$TOP_SRCDIR/tests/bench/results.json}
[[ $rounds =~ ^[1-9][0-9]?$ ]] || { echo "propagation: BENCH_PROPAGATION_ROUNDS must be 1 to 99" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/custody-prop.XXXXXX")
pgdir=$(mktemp -d /tmp/custody-pg.XXXXXX)	# short: a socket path
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	"$TOP_SRCDIR/scripts/test-postgres.sh" stop "$pgdir" >/dev/null 2>&1
	rm -rf "$T" "$pgdir"
}
trap cleanup EXIT
umask 077

die() {
	echo "propagation: $*" >&2
	exit 1
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Writes "propagation" into the results file, keeping the rest.
write_results() { # JSON-OBJECT
	python3 - "$results" "$1" <<'PY'
import json, os, sys
path, prop = sys.argv[1], json.loads(sys.argv[2])
data = {}
if os.path.exists(path):
    with open(path) as f:
        data = json.load(f)
data["propagation"] = prop
with open(path, "w") as f:
    json.dump(data, f, indent=2)
    f.write("\n")
PY
}

# A connection a node (a watcher, or a simulated node), and a descriptor
# each here for the simulated ones.
most=$side
for size in $sizes; do [ "$size" -gt "$most" ] && most=$size; done
export CUSTODY_TEST_PG_MAX_CONNECTIONS=$((most + 100))
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((side + 256)) ] ||
	ulimit -n $((side + 256)) 2>/dev/null || true
"$TOP_SRCDIR/scripts/test-postgres.sh" start "$pgdir" >"$T/pg.out" 2>&1
case $? in
0) ;;
77)
	echo "propagation: no PostgreSQL server installed: not measured" >&2
	mkdir -p "$(dirname "$results")"
	write_results '{"nodes3_ms": null, "nodes10_ms": null, "nodes30_ms": null, "nodes100_ms": null}'
	exit 0
	;;
*) die "cannot start a PostgreSQL server: $(tail -3 "$T/pg.out")" ;;
esac
base_url=$("$TOP_SRCDIR/scripts/test-postgres.sh" env "$pgdir" |
	sed -n "s/^export CUSTODY_TEST_PG_URL='\(.*\)'$/\1/p")

# A node: its own token directory, lock directory and environment file.
setup_node() { # DIR NAME STORE
	local dir=$1 name=$2 store=$3 exports
	mkdir -p "$dir/lock"
	exports=$("$TOP_SRCDIR/scripts/softhsm-token.sh" "$dir" "$name") ||
		die "cannot initialise the token of $name"
	{
		echo "$exports"
		printf 'export CUSTODY_NODE=%q CUSTODY_STORE=%q CUSTODY_LOCK_DIR=%q CUSTODY_CONFIG=""\n' \
			"$name" "$store" "$dir/lock"
	} >"$dir/env"
}
on() { # DIR ARGS... — custody as that node; dies on failure
	local dir=$1
	shift
	(. "$dir/env" && "$CUSTODY_BIN" -q "$@") >"$T/out" 2>"$T/err" ||
		die "custody $* ($(basename "$dir")) failed: $(cat "$T/err")"
}
# import_key DIR N — a fresh RSA-2048 key (memory, then a pipe) imported
# replicable on node DIR (which packages it); prints its thumbprint.
import_key() {
	local dir=$1 n=$2 pem tp
	pem=$(openssl req -x509 -newkey rsa:2048 -noenc -keyout - -out - -days 30 \
		-subj "/O=custody bench/CN=prop-$n.custody.test" 2>/dev/null) || die "openssl req failed"
	tp=$(printf '%s\n' "$pem" | openssl x509 -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
	printf '%s\n' "$pem" | on "$dir" import --path /dev/stdin --replicable
	unset pem
	[ "$(psql "$store" -qAtc "SELECT count(*) FROM packages WHERE thumbprint = '$tp'")" = 1 ] ||
		die "import --replicable made no package of $tp"
	echo "$tp"
}
# all_reported [--slot SLOT] SINCE_MS THUMBPRINT DIR... — prints the
# latest time_ms at which a node's watcher reported THUMBPRINT in SLOT
# (current unless said) and held (after SINCE_MS), when every node has;
# else fails.
all_reported() {
	local slot=current
	[ "$1" = --slot ] && { slot=$2; shift 2; }
	python3 - "$slot" "$@" <<'PY'
import json, sys
slot, since, tp, dirs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
last = 0
for d in dirs:
    t = None
    with open(d + "/watch.out") as f:
        for line in f:
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if o["time_ms"] < since:
                continue
            if any(i["thumbprint"] == tp and i["slot"] == slot and i["held"] and i["type"] == "OAuthTokenIssuer"
                   for i in o["items"]):
                t = o["time_ms"]
                break
    if t is None:
        sys.exit(1)
    last = max(last, t)
print(last)
PY
}

# CPU time (µs) of processes, from /proc/PID/schedstat (ns on CPU, not
# clock ticks); a process gone counts 0.
cpu_us() { # PID...
	local p s=0 ns
	for p in "$@"; do
		read -r ns _ <"/proc/$p/schedstat" 2>/dev/null || continue
		s=$((s + ns / 1000))
	done
	echo "$s"
}
# The server's processes: the postmaster and its children (the backends
# of the watchers, which live as long as their connections).
server_pids() {
	local pm
	pm=$(head -1 "$pgdir/data/postmaster.pid" 2>/dev/null) || return 0
	echo "$pm" $(pgrep -P "$pm")
}

# measure_rolls NODES — a roll as Lync makes one, on the watchers of
# measure (keys[rounds + 1 ..] unused so far): the next key set pending
# (--roll) with an effective date a few seconds ahead.  Every node
# unwraps it while it is pending (its watcher woken by the set); at the
# effective instant each watcher wakes on its own clock, follows the roll
# (the first to come records it) and reports the key current: a change
# whose key every node already holds.  A round runs from the effective
# instant until the last node has reported the key current and held.
# Sets roll_times, roll_node_ms, roll_server_ms (CPU from when every node
# held the key pending until a second after the last report).
roll_times=()
measure_rolls() {
	local size=$1 r tp eff lead done_ms deadline
	local w0 s0 w=0 s=0
	roll_times=()
	lead=$((2 + size / 25))	# seconds: time for every node to unwrap
	for ((r = 1; r <= rounds; r++)); do
		sleep 1
		tp=${keys[$((rounds + r))]}
		eff=$(($(date +%s) + lead + 1))
		on "${dirs[0]}" set -t OAuthTokenIssuer --thumbprint "$tp" --roll \
			--effective-date "$(date -u -d "@$eff" +%Y-%m-%dT%H:%M:%SZ)"
		until all_reported --slot pending 0 "$tp" "${dirs[@]}" >/dev/null; do
			[ "$(now_ms)" -lt $((eff * 1000 - 200)) ] ||
				die "$size nodes, roll $r: not every node held $tp ahead of its effective date ($lead s)"
			sleep 0.05
		done
		w0=$(cpu_us "${pids[@]}")
		s0=$(cpu_us $(server_pids))
		deadline=$((eff * 1000 + 30000))
		until done_ms=$(all_reported $((eff * 1000)) "$tp" "${dirs[@]}"); do
			[ "$(now_ms)" -lt "$deadline" ] || die "$size nodes, roll $r: not every node reported $tp current in 30 s"
			sleep 0.02
		done
		sleep 1
		w=$((w + $(cpu_us "${pids[@]}") - w0))
		s=$((s + $(cpu_us $(server_pids)) - s0))
		roll_times+=($((done_ms - eff * 1000)))
		echo "propagation: $size nodes, roll $r: $((done_ms - eff * 1000)) ms from its effective instant" >&2
	done
	roll_node_ms=$(python3 -c 'import sys; print(round(int(sys.argv[1]) / 1000 / int(sys.argv[2]), 2))' \
		"$w" $((rounds * size)))
	roll_server_ms=$(python3 -c 'import sys; print(round(int(sys.argv[1]) / 1000 / int(sys.argv[2]), 2))' \
		"$s" $((rounds * size)))
	echo "propagation: $size nodes: CPU a roll, each node's sync --watch $roll_node_ms ms, the server $roll_server_ms ms a node" >&2
}

declare -A got
measure() { # NODES — sets got[NODES] to the JSON object of this size
	local size=$1 schema="prop$1" i r dir tp t0 t1 done_ms deadline
	local -a dirs keys times sets
	psql "$base_url" -qAtc "CREATE SCHEMA $schema" >/dev/null || die "cannot create schema $schema"
	store="$base_url&options=-csearch_path%3D$schema"
	for ((i = 1; i <= size; i++)); do
		dirs+=("$T/n$size/node$i")
		setup_node "$T/n$size/node$i" "node$i" "$store"
	done
	echo "propagation: $size nodes: ceremony" >&2
	on "${dirs[0]}" kek create
	on "${dirs[0]}" kek authority
	authority=$(cat "$T/out")
	for ((i = 1; i < size; i++)); do
		# -q keeps the narration (and its fingerprint line) quiet:
		# the JSON answer carries the fingerprint.
		on "${dirs[$i]}" node enroll --authority "$authority" -o json
		fp=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["fingerprint"])' <"$T/out")
		on "${dirs[0]}" node admit "node$((i + 1))" --fingerprint "$fp"
	done
	for ((i = 1; i < size; i++)); do on "${dirs[$i]}" node join; done
	for ((r = 0; r <= 2 * rounds; r++)); do
		tp=$(import_key "${dirs[0]}" "$size-$r")
		[ -n "$tp" ] || die "$size nodes: cannot import key $r"
		keys+=("$tp")
	done
	on "${dirs[0]}" set -t OAuthTokenIssuer --thumbprint "${keys[0]}"
	for dir in "${dirs[@]}"; do
		(
			. "$dir/env"
			exec "$CUSTODY_BIN" -q sync --watch -o json >"$dir/watch.out" 2>"$dir/watch.err"
		) &
		pids+=($!)
	done
	deadline=$(($(now_ms) + 60000))
	until all_reported 0 "${keys[0]}" "${dirs[@]}" >/dev/null; do
		[ "$(now_ms)" -lt "$deadline" ] || die "$size nodes: the watchers did not report the first key in 60 s"
		sleep 0.1
	done
	# What a round costs each node (its watcher) and the server (the
	# watchers' backends; the set's backend is gone when read: not in).
	sleep 1
	local w0 s0 w1 s1 node_ms server_ms
	w0=$(cpu_us "${pids[@]}")
	s0=$(cpu_us $(server_pids))
	for ((r = 1; r <= rounds; r++)); do
		sleep 1	# let every node settle
		tp=${keys[$r]}
		t0=$(now_ms)
		on "${dirs[0]}" set -t OAuthTokenIssuer --thumbprint "$tp" --force
		t1=$(now_ms)
		deadline=$((t0 + 30000))
		until done_ms=$(all_reported "$t0" "$tp" "${dirs[@]}"); do
			[ "$(now_ms)" -lt "$deadline" ] || die "$size nodes, round $r: not every node reported $tp in 30 s"
			sleep 0.02
		done
		times+=($((done_ms - t0)))
		sets+=($((t1 - t0)))
		echo "propagation: $size nodes, round $r: $((done_ms - t0)) ms (set itself: $((t1 - t0)) ms)" >&2
	done
	sleep 1	# the last sync's report written (and an idle second, as before each round)
	w1=$(cpu_us "${pids[@]}")
	s1=$(cpu_us $(server_pids))
	measure_rolls "$size"
	# The store agrees with what the watchers said.
	[ "$(psql "$store" -qAtc "SELECT count(DISTINCT node) FROM node_reports WHERE thumbprint = '$tp' AND held")" = "$size" ] ||
		die "$size nodes: the store's reports do not show every node holding $tp"
	for i in "${!pids[@]}"; do kill -TERM "${pids[$i]}" 2>/dev/null; done
	for i in "${!pids[@]}"; do wait "${pids[$i]}" 2>/dev/null; done
	pids=()
	node_ms=$(python3 -c 'import sys; print(round(int(sys.argv[1]) / 1000 / int(sys.argv[2]), 2))' \
		$((w1 - w0)) $((rounds * size)))
	server_ms=$(python3 -c 'import sys; print(round(int(sys.argv[1]) / 1000 / int(sys.argv[2]), 2))' \
		$((s1 - s0)) $((rounds * size)))
	echo "propagation: $size nodes: CPU a change, each node's sync --watch $node_ms ms, the server $server_ms ms a node" >&2
	got[$size]=$(python3 -c '
import json, statistics, sys
t = [int(x) for x in sys.argv[1].split()]
s = [int(x) for x in sys.argv[2].split()]
print(json.dumps({"median": statistics.median(t), "max": max(t), "rounds": len(t),
                  "set_ms": statistics.median(s),
                  "node_cpu_ms": float(sys.argv[3]), "server_cpu_ms": float(sys.argv[4])}))' \
		"${times[*]}" "${sets[*]}" "$node_ms" "$server_ms")
	got[$size]=$(python3 -c '
import json, statistics, sys
o = json.loads(sys.argv[1])
t = [int(x) for x in sys.argv[2].split()]
o["roll"] = {"median": statistics.median(t), "max": max(t), "rounds": len(t),
             "node_cpu_ms": float(sys.argv[3]), "server_cpu_ms": float(sys.argv[4])}
print(json.dumps(o))' "${got[$size]}" "${roll_times[*]}" "$roll_node_ms" "$roll_server_ms")
}

# measure_store_side NODES — got[side] from store_side with NODES nodes
# and one real node that makes the changes.
measure_store_side() {
	local n=$1 schema=side dir="$T/side/node1" r tp t0 line keys=() times=() sets=() t1
	psql "$base_url" -qAtc "CREATE SCHEMA $schema" >/dev/null || die "cannot create schema $schema"
	store="$base_url&options=-csearch_path%3D$schema"
	setup_node "$dir" node1 "$store"
	on "$dir" kek create
	for ((r = 0; r <= rounds; r++)); do keys+=("$(import_key "$dir" "side-$r")"); done
	on "$dir" set -t OAuthTokenIssuer --thumbprint "${keys[0]}"
	[ -x "$bindir/store_side" ] || die "no $bindir/store_side (make tests/bench/store_side)"
	echo "propagation: store side: $n simulated nodes connecting" >&2
	coproc SIDE { "$bindir/store_side" "$store" "$n" 2>"$T/side.err"; }
	pids+=($SIDE_PID)
	read -r -t 300 line <&"${SIDE[0]}" && [ "$line" = ready ] ||
		die "store side: the $n simulated nodes did not start: $(tail -3 "$T/side.err")"
	for ((r = 1; r <= rounds; r++)); do
		sleep 1
		tp=${keys[$r]}
		t0=$(now_ms)
		on "$dir" set -t OAuthTokenIssuer --thumbprint "$tp" --force
		t1=$(now_ms)
		read -r -t 60 line <&"${SIDE[0]}" || die "store side, round $r: not every node reported in 60 s"
		[ "${line% *}" = "reported $tp" ] || die "store side, round $r: unexpected: $line"
		times+=($((${line##* } - t0)))
		sets+=($((t1 - t0)))
		echo "propagation: store side, $n nodes, round $r: $((${line##* } - t0)) ms (set itself: $((t1 - t0)) ms)" >&2
	done
	line=$(psql "$store" -qAtc "SELECT count(*) FROM node_reports WHERE thumbprint = '$tp' AND held AND node LIKE 'sim%'")
	[ "$line" = "$n" ] || die "store side: the store's reports show $line of $n nodes holding $tp"
	exec {SIDE[1]}>&-
	got[side]=$(python3 -c '
import json, statistics, sys
t = [int(x) for x in sys.argv[1].split()]
s = [int(x) for x in sys.argv[2].split()]
print(json.dumps({"median": statistics.median(t), "max": max(t), "rounds": len(t),
                  "set_ms": statistics.median(s), "nodes": int(sys.argv[3])}))' "${times[*]}" "${sets[*]}" "$n")
}

for size in $sizes; do
	measure "$size"
done
[ "$side" -gt 0 ] && measure_store_side "$side"
prop="{"
sep=""
for size in $sizes; do
	prop="$prop$sep\"nodes${size}_ms\": ${got[$size]}"
	sep=", "
done
[ "$side" -gt 0 ] && prop="$prop$sep\"store_side${side}_ms\": ${got[side]}"
prop="$prop}"
mkdir -p "$(dirname "$results")"
write_results "$prop" || die "cannot write $results"
python3 - "$prop" <<'PY'
import json, sys
p = json.loads(sys.argv[1])
print("propagation: custody set on node1 -> every node reported (target: median < 1000 ms; store side < 3000 ms)")
print("  set: a key new to the nodes (each unwraps it); roll: a roll at its effective instant (each holds the key)")
fmt = "%-20s %10s %10s %8s %10s %12s %14s %13s %10s %14s %14s"
print(fmt % ("nodes", "set median", "set max", "rounds", "verdict", "node CPU ms", "server CPU ms",
             "roll median", "roll max", "roll node CPU", "roll server"))
for k, v in p.items():
    if k.startswith("store_side"):
        n, limit = k[len("store_side"):-len("_ms")] + " (store side)", 3000
    else:
        n, limit = k[len("nodes"):-len("_ms")], 1000
    roll = v.get("roll", {})
    print(fmt % (n, v["median"], v["max"], v["rounds"], "ok" if v["median"] < limit else "OVER",
                 v.get("node_cpu_ms", "-"), v.get("server_cpu_ms", "-"), roll.get("median", "-"),
                 roll.get("max", "-"), roll.get("node_cpu_ms", "-"), roll.get("server_cpu_ms", "-")))
PY
echo "propagation: results in $results" >&2
