#!/usr/bin/env bash
# The sanitizer and valgrind passes of scripts/test.sh.
#
#   scripts/test-sanitizers.sh [asan|valgrind|all|build]     (default: all)
#
# build: configures and builds build-asan (as asan below does first),
#   runs nothing and leaves no result; exit status 0 when it built.
# asan: configures a second build tree, build-asan, with
#   --enable-sanitizers (AddressSanitizer + UndefinedBehaviorSanitizer),
#   builds it, and runs the unit and token Criterion tests once
#   ($(UNIT_TESTS) $(TOKEN_TESTS) of Makefile.am), then the hostile-input
#   table (tests/hostile/hostile.sh) and the agent's test
#   (tests/token/cli_agent.sh) with the ASan-built custody, so that
#   every error path of the command is leak-checked too.  LeakSanitizer
#   is on (ASAN_OPTIONS=detect_leaks=1) with tests/lsan.supp (leaks of
#   third-party libraries only, each documented there); UBSan halts on
#   the first error.  Criterion hides its test workers' stderr and does
#   not fail a test whose worker exits non-zero after it passed, so every
#   sanitizer report of any process is written to a log directory
#   (log_path) instead, and each report found there is a failed check.
# valgrind: runs CLI test scripts (VALGRIND_TESTS, default below: bad
#   input, import, set/roll/remove and jwt issue/verify, 128 checks, the
#   most custody paths that fit the time budget: memcheck makes custody
#   about ten times slower) against ./build with CUSTODY_BIN =
#   tests/valgrind-custody.sh: a memory error or a definitely lost block
#   in any custody process fails the test that ran it.
#
# Results are TAP, turned into .trs files by build-aux/tap-driver.sh under
# build/tests/sanitizers/, which scripts/test.sh counts with the others.
# Exit status 0 when nothing failed.  Environment: BUILD (./build, built
# already), ASAN_BUILD (./build-asan), VALGRIND_TESTS, CUSTODY_TEST_PG_URL
# (passed on to the tests).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
asan_build=${ASAN_BUILD:-$top/build-asan}
what=${1:-all}
# Longest first (about 76, 73, 66 and 45 s under memcheck on 2 cores).
: "${VALGRIND_TESTS:=tests/token/cli_jwt.sh tests/token/cli_assign.sh tests/token/cli_bad_input.sh tests/token/cli_import.sh}"

results=$build/tests/sanitizers
# build leaves the results of the last run alone.
if [ "$what" != build ]; then
	rm -rf "$results"
	mkdir -p "$results"
fi
driver=$top/build-aux/tap-driver.sh
failed=0

# tap NAME COMMAND... — runs COMMAND (TAP on stdout) through the TAP driver
# into $results/NAME.{log,trs}.
tap() {
	local name=$1
	shift
	mkdir -p "$(dirname "$results/$name")"
	env AM_TAP_AWK=awk bash "$driver" --test-name "$name" --log-file "$results/$name.log" \
		--trs-file "$results/$name.trs" --color-tests no --enable-hard-errors yes \
		--expect-failure no -- "$@" >/dev/null 2>&1
	if grep -Eq '^:test-result: (FAIL|XPASS|ERROR)' "$results/$name.trs"; then
		failed=1
		echo "FAIL: $name (build/tests/sanitizers/$name.log)"
		grep -E '^(not ok|Bail out)' "$results/$name.log" | head -10
	else
		echo "PASS: $name ($(grep -c '^:test-result: PASS' "$results/$name.trs") checks)"
	fi
}
# tap_fail NAME WHAT — one failed check, for what could not even run.
tap_fail() {
	mkdir -p "$(dirname "$results/$1")"
	printf '1..1\nnot ok 1 - %s\n' "$2" >"$results/$1.tap.txt"
	tap "$1" cat "$results/$1.tap.txt"
}

# make_var DIR NAME... — the values of make variables of DIR's Makefile.
make_var() {
	local dir=$1
	shift
	make -s --no-print-directory -C "$dir" -f Makefile -f - print-vars <<EOF
print-vars:
	@echo $(printf '$(%s) ' "$@")
EOF
}

# asan_build OUT — configures build-asan (once) and builds it, the test
# programs too, its output in OUT; status 2 when configure failed, 1 when
# the build did.
asan_build() {
	local out=$1
	mkdir -p "$asan_build"
	: >"$out"
	if ! { [ -f "$asan_build/Makefile" ] && [ "$asan_build/config.status" -nt "$top/configure" ]; } &&
		! (cd "$asan_build" && "$top/configure" -q --enable-sanitizers) >>"$out" 2>&1; then
		return 2
	fi
	make -s -j"$(nproc)" -C "$asan_build" all >>"$out" 2>&1 &&
		make -s -j"$(nproc)" -C "$asan_build" check TESTS= >>"$out" 2>&1 || return 1
}

asan_pass() {
	local logs=$asan_build/sanitizer-logs tests f n=0 first
	echo "sanitizers: building $asan_build (--enable-sanitizers)"
	asan_build "$results/asan-build.out"
	case $? in
	2)
		tap_fail asan/build "configure --enable-sanitizers (build/tests/sanitizers/asan-build.out)"
		return
		;;
	1)
		tap_fail asan/build "build with --enable-sanitizers (build/tests/sanitizers/asan-build.out)"
		return
		;;
	esac
	# cli_agent.sh: the agent under every attack of its test (bad frames,
	# half frames, floods, faults, SIGTERM), leak-checked at its exit.
	tests="$(make_var "$asan_build" UNIT_TESTS TOKEN_TESTS) tests/hostile/hostile.sh tests/token/cli_agent.sh"
	rm -rf "$logs"
	mkdir -p "$logs"
	find "$asan_build/tests" -name '*.trs' -delete 2>/dev/null
	echo "sanitizers: running $(wc -w <<<"$tests") programs under ASan + UBSan"
	# halt_on_error: UBSan stops at the first error; log_path: every report
	# of every process, Criterion's workers included, lands in $logs.
	ASAN_OPTIONS="detect_leaks=1:log_path=$logs/asan:log_exe_name=1:abort_on_error=0" \
		LSAN_OPTIONS="suppressions=$top/tests/lsan.supp:print_suppressions=0" \
		UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan:suppressions=$top/tests/ubsan.supp" \
		make -s -j"$(nproc)" -C "$asan_build" check TESTS="$tests" >"$results/asan-check.out" 2>&1
	for f in $tests; do
		f=${f%.sh}	# automake's names: tests/x/y.sh gives tests/x/y.trs
		if [ -f "$asan_build/$f.trs" ]; then
			mkdir -p "$(dirname "$results/asan/$f")"
			cp "$asan_build/$f.trs" "$results/asan/$f.trs"
			cp "$asan_build/$f.log" "$results/asan/$f.log" 2>/dev/null
			if grep -Eq '^:test-result: (FAIL|XPASS|ERROR)' "$asan_build/$f.trs"; then
				failed=1
				echo "FAIL: asan/$f (build/tests/sanitizers/asan/$f.log)"
				grep -E '^(not ok|Bail out)' "$asan_build/$f.log" | head -10
			else
				echo "PASS: asan/$f ($(grep -c '^:test-result: PASS' "$asan_build/$f.trs") checks)"
			fi
		else
			tap_fail "asan/$f" "$f did not run under the sanitizers (build/tests/sanitizers/asan-check.out)"
		fi
	done
	# One check per report; one passing check when there is none.
	reports() {
		local i=0 f
		for f in "$logs"/*; do
			[ -f "$f" ] || continue
			i=$((i + 1))
			first=$(grep -m1 -E 'ERROR: [A-Za-z]+Sanitizer|runtime error' "$f")
			echo "not ok $i - sanitizer report ${f##*/}: ${first:-see the file}"
			sed 's/^/# /' "$f" | head -40
		done
		if [ "$i" -eq 0 ]; then
			echo "ok 1 - no sanitizer report from any process of the $(wc -w <<<"$tests") programs"
			i=1
		fi
		echo "1..$i"
	}
	mkdir -p "$results/asan"
	reports >"$results/asan/reports.tap.txt"
	tap asan/reports cat "$results/asan/reports.tap.txt"
	[ -n "$(ls -A "$logs")" ] && cp -r "$logs" "$results/asan-reports"
}

valgrind_pass() {
	local t name
	if ! command -v valgrind >/dev/null; then
		for t in $VALGRIND_TESTS; do
			name=valgrind/$(basename "$t" .sh)
			mkdir -p "$results/valgrind"
			printf ':test-result: SKIP\n' >"$results/$name.trs"
			echo "SKIP: $name (valgrind is not installed)"
		done
		return
	fi
	echo "valgrind: $(wc -w <<<"$VALGRIND_TESTS") CLI test scripts, custody under memcheck"
	export CUSTODY_BIN="$top/tests/valgrind-custody.sh"
	export TOP_SRCDIR="$top" TOP_BUILDDIR="$build" CUSTODY_MODULE_DIR="$build/.libs"
	export VALGRIND_REPORTS="$results/valgrind-reports"
	SOFTHSM_MODULE=$(make_var "$build" SOFTHSM_MODULE)
	export SOFTHSM_MODULE
	# Two at a time: memcheck makes custody about ten times slower.  The
	# next one starts as soon as either ends (wait -n).
	local running=0
	for t in $VALGRIND_TESTS; do
		if [ "$running" -ge "$(nproc)" ]; then
			wait -n
			running=$((running - 1))
		fi
		tap "valgrind/$(basename "$t" .sh)" bash "$top/$t" &
		running=$((running + 1))
	done
	wait
}

# timed NAME FUNCTION — runs FUNCTION and says how long it took.
timed() {
	local start=$SECONDS
	"$2"
	echo "$1: $((SECONDS - start)) s"
}
case $what in
build)
	# build-asan built, nothing run: scripts/test.sh starts this beside
	# make check, at the lowest priority, and the asan pass then finds the
	# tree built.  Its output: build-asan/build.out.
	asan_build "$asan_build/build.out"
	exit
	;;
asan) timed "sanitizer pass" asan_pass ;;
valgrind) timed "valgrind pass" valgrind_pass ;;
all)
	timed "sanitizer pass" asan_pass
	timed "valgrind pass" valgrind_pass
	;;
*)
	echo "usage: $0 [asan|valgrind|all|build]" >&2
	exit 2
	;;
esac
# The verdict of every check above (the valgrind runs ran in subshells).
if cat $(find "$results" -name '*.trs') /dev/null | grep -Eq '^:test-result: (FAIL|XPASS|ERROR)'; then
	failed=1
fi
exit "$failed"
