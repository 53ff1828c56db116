#!/usr/bin/env bash
# concurrency.sh — STRESS_WORKERS processes (8) × STRESS_OPS (15 here,
# 50 under `make stress`) random set / roll / remove on one assignment
# (Default/global), on SQLite and, when CUSTODY_TEST_PG_URL is set, on
# PostgreSQL (a schema of its own).  TAP.
#
# Every operation must end as a change, a no-op ("nothing to change"), a
# refusal the contract names ("assignment changed concurrently", a roll to
# the current certificate) or "nothing found" (exit 3: removing an empty
# slot); anything else (a lock timeout, "database is locked", a crash) is
# an error.  Then: the audit chain verifies; the audit log holds one
# entry per change reported (no change lost, none recorded twice); and
# the replay of the log through the assignment rules (tests/stress/replay)
# equals the stored assignment (`custody get -o json`).
top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top/tests/token/lib.sh"
workers=${STRESS_WORKERS:-8}
ops=${STRESS_OPS:-15}
replay=${TOP_BUILDDIR:-$top/build}/tests/stress/replay
[ -x "$replay" ] || { echo "Bail out! $replay is not built (make tests/stress/replay)"; exit 1; }
setup_token stress

# Four certificates, valid ten years; roll instants 100 to 300 days ahead
# (none comes due during the run: each change is decided on a resolved
# state that its audit entry's instant reproduces).
tps=()
for i in 1 2 3 4; do
	make_p12 "c$i" "c$i.stress.custody.test" 3650 ec:prime256v1
	tps+=("$(thumbprint_of_p12 "c$i")")
done
dates=()
for d in 100 200 300; do dates+=("$(date -u -d "+$d days" +%Y-%m-%dT00:00:00Z)"); done

# worker N LOG — ops random operations; one line per operation in LOG:
# "OP STATUS CLASS", and the stderr of every error in LOG.err.
worker() {
	local id=$1 log=$2 k op tp rc class
	local -a args
	RANDOM=$((id * 7919 + $$))
	for ((k = 0; k < ops; k++)); do
		tp=${tps[RANDOM % 4]}
		case $((RANDOM % 10)) in
		0 | 1 | 2 | 3)
			op=set
			args=(set -t Default -i global --thumbprint "$tp")
			;;
		4 | 5 | 6)
			op=roll
			# --force: a roll may replace another's pending one
			args=(set -t Default -i global --thumbprint "$tp" --roll
				--effective-date "${dates[RANDOM % 3]}" --force)
			;;
		*)
			case $((RANDOM % 3)) in
			0) op=remove-current args=(remove -t Default -i global --force) ;;
			1) op=remove-previous args=(remove -t Default -i global --previous --force) ;;
			*) op=remove-pending args=(remove -t Default -i global --pending --force) ;;
			esac
			;;
		esac
		"$CUSTODY_BIN" "${args[@]}" >/dev/null 2>"$log.stderr"
		rc=$?
		if [ "$rc" -eq 0 ] && grep -Eq ': changed$|: removed the ' "$log.stderr"; then
			class=change
		elif [ "$rc" -eq 0 ] && grep -q 'nothing to change' "$log.stderr"; then
			class=noop
		elif [ "$rc" -eq 1 ] && grep -q 'assignment changed concurrently' "$log.stderr"; then
			class=conflict
		elif [ "$rc" -eq 1 ] && grep -q 'it is already the current certificate' "$log.stderr"; then
			class=refused
		elif [ "$rc" -eq 3 ] && grep -Eq 'no (current |previous |pending )?certificate is assigned' "$log.stderr"; then
			class=empty
		else
			class=error
			{ echo "$op exit $rc: ${args[*]}"; cat "$log.stderr"; } >>"$log.err"
		fi
		echo "$op $rc $class" >>"$log"
	done
}

# run_backend NAME — the whole check on the store in $CUSTODY_STORE.
run_backend() {
	local name=$1 w start end secs changes entries n_err summary i
	local dir="$T/$name"
	mkdir -p "$dir"
	for i in 1 2 3 4; do
		"$CUSTODY_BIN" -q import --path "$T/c$i.p12" >/dev/null ||
			{ not_ok "$name: import the certificates"; return; }
	done
	start=$(date +%s.%N)
	for ((w = 0; w < workers; w++)); do
		worker "$w" "$dir/w$w" &
	done
	wait
	end=$(date +%s.%N)
	secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
	cat "$dir"/w? "$dir"/w?? 2>/dev/null >"$dir/all"
	summary=$(awk '{ n[$3]++ } END { printf "%d change, %d no-op, %d conflict, %d refused, %d empty, %d error",
		n["change"], n["noop"], n["conflict"], n["refused"], n["empty"], n["error"] }' "$dir/all")
	echo "# $name: $workers processes x $ops operations in $secs s: $summary"
	n_err=$(grep -c ' error$' "$dir/all")
	if [ "$(wc -l <"$dir/all")" -eq $((workers * ops)) ] && [ "$n_err" -eq 0 ]; then
		ok "$name: $((workers * ops)) operations, every one a change, a no-op or a refusal the contract names"
	else
		not_ok "$name: every operation ends as the contract says" "$summary" \
			"$(cat "$dir"/w*.err 2>/dev/null | head -20)"
	fi
	changes=$(grep -c ' change$' "$dir/all")
	check "$name: some operations changed the assignment ($changes)" [ "$changes" -gt 0 ]

	run audit --verify
	check "$name: the audit chain verifies ($out)" [ "$rc" -eq 0 ]
	run audit -o json
	entries=$(python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sum(1 for e in d if e["type"] == "Default" and e["identity"] == "global"
          and e["action"] in ("set", "roll", "remove")))' <<<"$out")
	check "$name: one audit entry per change reported, none lost ($entries entries, $changes changes)" \
		[ "$entries" = "$changes" ]

	run get -o json
	printf '%s\n' "$out" >"$dir/get.json"
	if [ "$rc" -eq 0 ] && "$replay" "$CUSTODY_STORE" Default global "$dir/get.json" \
		>"$dir/replay.out" 2>"$dir/replay.err"; then
		ok "$name: the replay of the audit log equals the stored assignment ($(cat "$dir/replay.out"))"
	else
		not_ok "$name: the replay of the audit log equals the stored assignment" \
			"get exit $rc" "$(cat "$dir/replay.err")"
	fi
}

export CUSTODY_STORE="sqlite:$T/custody.db"
run_backend sqlite

if [ -n "${CUSTODY_TEST_PG_URL:-}" ]; then
	schema="stress_$$_$(date +%s)"
	case $CUSTODY_TEST_PG_URL in
	*\?*) pg_url="$CUSTODY_TEST_PG_URL&options=-csearch_path%3D$schema" ;;
	*) pg_url="$CUSTODY_TEST_PG_URL?options=-csearch_path%3D$schema" ;;
	esac
	trap 'psql "$CUSTODY_TEST_PG_URL" -qAtc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1; rm -rf "$T"' EXIT
	if psql "$CUSTODY_TEST_PG_URL" -qAtc "CREATE SCHEMA $schema" >/dev/null; then
		export CUSTODY_STORE=$pg_url
		run_backend postgresql
	else
		not_ok "postgresql: create schema $schema on $CUSTODY_TEST_PG_URL"
	fi
else
	tap_n=$((tap_n + 1))
	echo "ok $tap_n - postgresql # SKIP no PostgreSQL (CUSTODY_TEST_PG_URL is not set)"
fi
done_testing
