# lib.sh — sourced by the fault-injection tests (tests/fault/*.sh), on top
# of tests/token/lib.sh (its throwaway token, store and TAP helpers).
#
# custody runs with CUSTODY_MODULE = the shim (tests/fault/p11shim.c),
# which forwards every call to SoftHSM and, as the FAULT_* variables say,
# fails or aborts at the N-th one.  checkstate (tests/fault/checkstate.c)
# reads the token through SoftHSM itself, never through the shim.
#
# A walk: snapshot the token and the store (save_state), learn how many
# PKCS#11 calls the command makes (count_calls), then for each N restore
# the snapshot, run the command with the fault at call N, and check.
#
# FAULT_STRESS=1 (make stress) walks every call and runs the long loops at
# full length; unset (make check) the slower walks take every k-th call.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"

: "${TOP_BUILDDIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
SHIM=$TOP_BUILDDIR/tests/fault/.libs/p11shim.so
CHECKSTATE=$TOP_BUILDDIR/tests/fault/checkstate
if [ ! -f "$SHIM" ] || [ ! -x "$CHECKSTATE" ]; then
	echo "1..0 # SKIP the fault shim or checkstate is not built (make check builds them)"
	exit 0
fi
STRESS=${FAULT_STRESS:-0}
[ "$STRESS" = 1 ] || STRESS=0
export FAULT_TARGET=$SOFTHSM_MODULE
unset FAULT_AT FAULT_FUNC FAULT_RV FAULT_ABORT FAULT_PERSIST FAULT_EXEC \
	FAULT_COUNT_FILE FAULT_TRACE FAULT_PIN_FLAGS

# setup_fault_token [LABEL] — setup_token, then custody talks to the shim.
setup_fault_token() {
	setup_token "$@"
	export CUSTODY_MODULE=$SHIM
}

# save_state NAME / restore_state NAME — the token's files and the store,
# copied as they are (no custody process may be running).
save_state() {
	rm -rf "$T/saved.$1"
	mkdir -p "$T/saved.$1"
	cp -a "$T/tokens" "$T/saved.$1/tokens"
	[ -f "$T/custody.db" ] && cp -a "$T/custody.db" "$T/saved.$1/custody.db"
	return 0
}
restore_state() {
	rm -rf "$T/tokens" "$T/custody.db" "$T/custody.db-wal" "$T/custody.db-shm"
	cp -a "$T/saved.$1/tokens" "$T/tokens"
	[ -f "$T/saved.$1/custody.db" ] && cp -a "$T/saved.$1/custody.db" "$T/custody.db"
	return 0
}

# run_fault VAR=VALUE... -- ARGS... — runs custody with those FAULT_*
# variables (and $input on standard input when set), leaving $out, $err,
# $rc.  Every call is traced into $T/trace.
run_fault() {
	local env=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		env+=("$1")
		shift
	done
	shift
	: >"$T/trace"
	# A command that hangs is killed (exit 124), not waited for forever.
	out=$(env "${env[@]}" FAULT_TRACE="$T/trace" timeout -s KILL "${FAULT_TIMEOUT:-60}" \
		"$CUSTODY_BIN" "$@" <"${input:-/dev/null}" 2>"$T/stderr")
	rc=$?
	[ "$rc" -eq 137 ] && rc=124
	err=$(cat "$T/stderr")
}

# count_calls ARGS... — how many PKCS#11 calls `custody ARGS` makes (it
# runs it once, without a fault: restore the state afterwards).  Leaves
# the trace of that run in $T/clean.trace.
count_calls() {
	rm -f "$T/count"
	run_fault FAULT_COUNT_FILE="$T/count" -- "$@"
	cp "$T/trace" "$T/clean.trace"
	if [ "$rc" -ne 0 ] || [ ! -s "$T/count" ]; then
		echo "Bail out! the clean run of custody $* failed (exit $rc): $err"
		exit 1
	fi
	cat "$T/count"
}

# own_call FUNC first|last — the first or last call of FUNC in the clean
# run that is the command's own, not part of an integrity tag (a tag makes
# a session key, wraps it under the KEK and destroys it: a C_CreateObject
# followed by C_WrapKey, a C_DestroyObject right after one).
own_call() {
	awk -v f="$1" -v which="$2" '
		{ fn[NR] = $2; id[NR] = $1 }
		END {
			for (i = 1; i <= NR; i++) {
				if (fn[i] != f) continue
				if (f == "C_CreateObject" && fn[i + 1] == "C_WrapKey") continue
				if (f == "C_DestroyObject" && fn[i - 1] == "C_WrapKey") continue
				n = id[i]
				if (which == "first") break
			}
			print n
		}' "$T/clean.trace"
}

# call_name N — the function of the N-th call of the clean run.
call_name() {
	awk -v n="$1" '$1 == n { print $2; exit }' "$T/clean.trace"
}

# checkstate [--leftovers-ok] — checkstate's verdict in $check_out and
# $check_rc (0 consistent, 3 leftovers only, 1 inconsistent, 2 unreadable).
checkstate() {
	check_out=$("$CHECKSTATE" --module "$SOFTHSM_MODULE" "$@" 2>&1)
	check_rc=$?
}

# walk_steps COUNT K — the call numbers a walk visits: every one under
# FAULT_STRESS=1 (or when K is 1), else 1, 1+K, 1+2K, ... and always the
# last one.
walk_steps() {
	local count=$1 k=$2 n
	[ "$STRESS" = 1 ] && k=1
	for ((n = 1; n <= count; n += k)); do echo "$n"; done
	[ $(((count - 1) % k)) -eq 0 ] || echo "$count"
}

# one_line_error CMD — stderr is "custody: CMD: WHAT: WHY" (then an
# optional hint line) and nothing else but the command's narration.
one_line_error() {
	grep -Eq "^custody: $1: .+" <<<"$err"
}

# report_failure DESCRIPTION — not_ok with what a reader needs.
report_failure() {
	not_ok "$1" "exit $rc" "stderr: $err" "checkstate ($check_rc): $check_out" \
		"trace tail: $(tail -3 "$T/trace" 2>/dev/null | tr '\n' ';')"
}

# elapsed_ms — milliseconds since the epoch.
now_ms() {
	date +%s%3N
}

# walk NAME BASE MODE K -- ARGS... — the fault walk of `custody ARGS`
# from the saved state BASE: for each call N that walk_steps gives (out of
# count_calls), restore BASE and run with the fault at call N, MODE
# "fail" (the call returns ${FAULT_RV:-CKR_DEVICE_ERROR}) or "abort" (the
# process aborts there).  Then:
#   fail, exit 1:  one "custody: CMD: ..." line and token and store exactly
#                  as in BASE;
#   fail, exit 0:  (a call the command may do without, such as C_Logout)
#                  consistent and the command's effect is there;
#   abort:         the store refers to nothing the token lacks and the
#                  audit log verifies; the token may hold leftovers;
# and every time the command was not carried out, the same command again
# (no fault) exits 0, leaves everything consistent, and has its effect.
# The script defines effect_ok, which checks that effect (and sets $why
# when it is missing); it may redefine walk_reset (run after each
# restore: remove what the command writes outside token and store) and
# walk_unchanged (more proof that an exit 1 changed nothing, setting $why).
# NAME is the command's name in error lines.  Each
# visited call is one TAP line.  Leaves $walk_count (calls of a clean run)
# and $walk_steps (calls visited).
walk_reset() { :; }
walk_unchanged() { return 0; }
# walk_skip N FUNCTION — 0 (with $skip_reason) to leave call N out.
walk_skip() { return 1; }
# 0: after an abort, the command is not run again (see fault_request.sh).
walk_again_after_abort=1
walk() {
	local name=$1 base=$2 mode=$3 k=$4 n fn base_fp desc good again
	shift 5
	restore_state "$base"
	walk_reset
	walk_count=$(count_calls "$@")
	walk_steps=0
	restore_state "$base"
	base_fp=$(state)
	for n in $(walk_steps "$walk_count" "$k"); do
		walk_steps=$((walk_steps + 1))
		fn=$(call_name "$n")
		if walk_skip "$n" "$fn"; then
			echo "ok $((tap_n += 1)) - $name: call $n of $walk_count ($fn) # SKIP $skip_reason"
			continue
		fi
		restore_state "$base"
		walk_reset
		check_out="" check_rc=""
		why=""
		good=0
		if [ "$mode" = abort ]; then
			run_fault FAULT_AT="$n" FAULT_ABORT=1 -- "$@"
			desc="$name: abort at call $n of $walk_count ($fn)"
			if [ "$rc" -eq 134 ]; then
				checkstate --leftovers-ok
				if [ "$check_rc" -eq 0 ] || [ "$check_rc" -eq 3 ]; then
					good=1
					[ "$check_rc" -eq 3 ] && desc="$desc: leftovers only" ||
						desc="$desc: consistent"
				fi
			else
				why="expected the abort (exit 134)"
			fi
		else
			run_fault FAULT_AT="$n" -- "$@"
			desc="$name: call $n of $walk_count ($fn) fails"
			if [ "$rc" -eq 1 ]; then
				if ! one_line_error "$name"; then
					why="no 'custody: $name: ...' line"
				elif [ "$(state)" != "$base_fp" ]; then
					why="exit 1 but the token or the store changed"
				elif ! walk_unchanged; then
					:
				else
					good=1
					desc="$desc: exit 1, nothing changed"
				fi
			elif [ "$rc" -eq 0 ]; then
				checkstate
				if [ "$check_rc" -eq 0 ] && effect_ok; then
					good=1
					desc="$desc: done anyway, consistent"
				fi
			else
				why="exit $rc$([ "$rc" -eq 124 ] && echo " (it hung, killed after ${FAULT_TIMEOUT:-60} s)")"
			fi
		fi
		# The same command again, without a fault.
		if [ "$good" -eq 1 ] && [ "$rc" -ne 0 ] &&
			{ [ "$mode" != abort ] || [ "$walk_again_after_abort" -eq 1 ]; }; then
			run_fault -- "$@"
			again=$rc
			checkstate
			if [ "$again" -ne 0 ]; then
				good=0
				why="the command again: exit $again"
			elif [ "$check_rc" -ne 0 ] || ! effect_ok; then
				good=0
				why="after the command again: ${why:-inconsistent}"
			else
				desc="$desc; again: done, consistent"
			fi
		fi
		if [ "$good" -eq 1 ]; then
			ok "$desc"
		else
			report_failure "$desc: $why"
		fi
	done
}

# crash_walk NAME BASE -- ARGS... — the crash walk of `custody ARGS` from
# the saved state BASE: every interruption point once, none left to the
# timing of a kill.  The process is aborted
#   - before each of its PKCS#11 calls, and after its last one
#     (FAULT_ABORT, FAULT_ABORT_AFTER): every call boundary;
#   - inside each call that writes token objects (C_CreateObject,
#     C_UnwrapKey, C_GenerateKeyPair, C_GenerateKey, C_CopyObject,
#     C_SetAttributeValue, C_DestroyObject), before each write of the
#     module to its files (FAULT_TEAR with tear.so): the torn objects a
#     power cut leaves, made on purpose.
# After each abort: checkstate --leftovers-ok is consistent or leftovers
# only (the store names nothing the token lacks), crash_check holds (a
# script's own check, setting $why), and the same command again
# (crash_again_args, default ARGS) exits 0, leaves everything consistent
# (torn shells without CKA_ID allowed: checkstate --torn-ok) and has its
# effect (effect_ok).  A script may redefine crash_again ARGS... (what a
# user does after the crash; default: the same command, leaving $rc).
# crash_k=K (default 1) visits every K-th call boundary only (every one
# under make stress); the writes inside are torn all the same.
# Each point is one TAP line.  Leaves $crash_points (points visited) and
# $crash_repaired (points after which the command again had to repair or
# complete what the abort left).
TEAR=$TOP_BUILDDIR/tests/fault/.libs/tear.so
crash_check() { return 0; }
crash_again() { run_fault -- "$@"; }
crash_writes="C_CreateObject C_UnwrapKey C_GenerateKeyPair C_GenerateKey C_CopyObject C_SetAttributeValue C_DestroyObject"
crash_walk() {
	local name=$1 base=$2 n k fn count writes
	shift 3
	[ -f "$TEAR" ] || { echo "Bail out! $TEAR is not built"; exit 1; }
	crash_base_name=$base
	restore_state "$base"
	walk_reset
	count=$(count_calls "$@")
	crash_points=0 crash_repaired=0
	for n in $(walk_steps "$count" "${crash_k:-1}") after; do
		if [ "$n" = after ]; then
			crash_point "$name: abort after call $count of $count ($(call_name "$count"))" \
				"$@" -- FAULT_AT="$count" FAULT_ABORT_AFTER=1
			continue
		fi
		fn=$(call_name "$n")
		crash_point "$name: abort at call $n of $count ($fn)" "$@" -- FAULT_AT="$n" FAULT_ABORT=1
		case " $crash_writes " in *" $fn "*) ;; *) continue ;; esac
		writes=$(call_writes "$n" "$@")
		for k in $(tear_steps "$writes"); do
			crash_point "$name: torn inside call $n of $count ($fn), before its write $k of $writes" \
				"$@" -- FAULT_AT="$n" FAULT_TEAR="$k" LD_PRELOAD="$TEAR"
		done
	done
}
# call_writes N ARGS... — how many times call N of `custody ARGS` writes
# to the token's object files (a run that arms the tear past them all;
# the state is restored afterwards).
call_writes() {
	local n=$1
	shift
	restore_state "$crash_base_name"
	walk_reset
	run_fault FAULT_AT="$n" FAULT_TEAR=1000000 LD_PRELOAD="$TEAR" -- "$@"
	restore_state "$crash_base_name"
	awk '$3 == "TEAR-NOT-REACHED" { print $4; exit }' "$T/trace"
}
# tear_steps M — the writes to tear a call at: every one under
# FAULT_STRESS=1; else the first, the middle one, and the last 4 (where
# the object becomes whole: a key object with its CKA_ID but no key
# values comes from there).
tear_steps() {
	local m=${1:-0} k
	[ "$m" -gt 0 ] || return 0
	for ((k = 1; k <= m; k++)); do
		if [ "$STRESS" = 1 ] || [ "$k" -eq 1 ] || [ "$k" -eq $(((m + 1) / 2)) ] ||
			[ "$k" -gt $((m - 4)) ]; then
			echo "$k"
		fi
	done
}
# crash_point DESCRIPTION ARGS... -- FAULT_VARS... — one point of the
# walk, one TAP line.
crash_point() {
	local desc=$1 args=() again after
	shift
	while [ "$1" != -- ]; do
		args+=("$1")
		shift
	done
	shift
	restore_state "$crash_base_name"
	walk_reset
	check_out="" check_rc="" why=""
	run_fault "$@" -- "${args[@]}"
	crash_points=$((crash_points + 1))
	if [ "$rc" -ne 134 ]; then
		report_failure "$desc: expected the abort (exit 134)"
		return
	fi
	checkstate --leftovers-ok
	if [ "$check_rc" -ne 0 ] && [ "$check_rc" -ne 3 ]; then
		report_failure "$desc: the state after the abort is inconsistent"
		return
	fi
	after=$check_rc
	if ! crash_check; then
		report_failure "$desc: $why"
		return
	fi
	crash_again "${args[@]}"
	again=$rc
	checkstate --torn-ok
	if [ "$again" -ne 0 ]; then
		report_failure "$desc: the command again: exit $again"
	elif [ "$check_rc" -ne 0 ] && [ "$check_rc" -ne 3 ]; then
		report_failure "$desc: after the command again: inconsistent"
	elif ! effect_ok; then
		report_failure "$desc: after the command again: ${why:-no effect}"
	else
		[ "$after" -eq 3 ] && crash_repaired=$((crash_repaired + 1))
		ok "$desc: $([ "$after" -eq 3 ] && echo "leftovers" || echo consistent); again: done, consistent"
	fi
}

# crash_random NAME BASE RUNS -- ARGS... — make stress only: `custody
# ARGS` from the saved state BASE, killed with SIGKILL after a random delay
# within the time of a clean run, RUNS times; after each kill the same
# checks as crash_walk's (checkstate, crash_check, crash_again, effect_ok).
# The timing varies from run to run: make check relies on crash_walk.
crash_random() {
	local name=$1 base=$2 runs=$3 window=0 t0 i delay pid again
	shift 4
	for _ in 1 2 3; do
		restore_state "$base"
		walk_reset
		t0=$(now_ms)
		"$CUSTODY_BIN" "$@" >/dev/null 2>&1
		[ $(($(now_ms) - t0)) -gt "$window" ] && window=$(($(now_ms) - t0))
	done
	for ((i = 1; i <= runs; i++)); do
		restore_state "$base"
		walk_reset
		"$CUSTODY_BIN" "$@" >/dev/null 2>"$T/crash.err" &
		pid=$!
		delay=$((RANDOM % (window + 1)))
		sleep "$(awk -v ms="$delay" 'BEGIN { printf "%.3f", ms / 1000 }')"
		kill -9 "$pid" 2>/dev/null
		{ wait "$pid"; } 2>/dev/null
		rc=$? err=$(cat "$T/crash.err") why=""
		checkstate --leftovers-ok
		if { [ "$check_rc" -ne 0 ] && [ "$check_rc" -ne 3 ]; } || ! crash_check; then
			report_failure "$name: random run $i, killed at ${delay} ms: inconsistent ${why}"
			continue
		fi
		crash_again "$@"
		again=$rc
		checkstate --torn-ok
		if [ "$again" -eq 0 ] && { [ "$check_rc" -eq 0 ] || [ "$check_rc" -eq 3 ]; } && effect_ok; then
			ok "$name: random run $i, killed at ${delay} ms; again: done, consistent"
		else
			report_failure "$name: random run $i, killed at ${delay} ms; again: exit $again ${why}"
		fi
	done
}
