#!/usr/bin/env bash
# Installs what is missing, builds, runs every test, and ends with the line
# "N passed, N failed".  Exit status 0 only when nothing failed.
#
#   scripts/test.sh            # everything
#   TESTS="tests/unit/test_assign" scripts/test.sh   # a subset (automake TESTS)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
# Debian's tools first, the ones scripts/install-deps.sh installs (the
# sanitizer and valgrind passes run outside make check's environment): a
# version manager's python3 shim earlier in PATH costs ~300 ms a start.
PATH=/usr/bin:$PATH
export PATH

started=$SECONDS
scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }
if ! scripts/build.sh; then
	echo "build failed"
	echo "0 passed, 1 failed"
	exit 1
fi

cd build
pg_dir=""
ock_dir=""
stop_servers() {
	[ -z "$pg_dir" ] || "$top/scripts/test-postgres.sh" stop "$pg_dir" >/dev/null 2>&1
	[ -z "$ock_dir" ] || "$top/scripts/test-opencryptoki.sh" stop "$ock_dir" >/dev/null 2>&1
}
trap stop_servers EXIT
# One PostgreSQL server for the whole run, on a socket in a temporary
# directory, stopped on exit; without one the PostgreSQL tests are skipped.
if [ -z "${CUSTODY_TEST_PG_URL:-}" ] && pg_dir=$(mktemp -d /tmp/custody-pg.XXXXXX); then
	if "$top/scripts/test-postgres.sh" start "$pg_dir" >pg-test.log 2>&1; then
		eval "$("$top/scripts/test-postgres.sh" env "$pg_dir")"
	else
		echo "no PostgreSQL test server (build/pg-test.log): its tests are skipped"
	fi
fi
# openCryptoki's software token for the tests/ock/*.ock tests: its daemon
# started for the run (or one already running used as it is) and stopped
# on exit; without it those tests are skipped.  Not for a subset without
# them.
case ${TESTS-tests/ock/} in
*tests/ock/*)
	if [ -z "${CUSTODY_TEST_OCK_DIR:-}" ] && ock_dir=$(mktemp -d /tmp/custody-ock.XXXXXX); then
		if "$top/scripts/test-opencryptoki.sh" start "$ock_dir" >ock-test.log 2>&1; then
			export CUSTODY_TEST_OCK_DIR=$ock_dir
		else
			echo "no openCryptoki software token ($(tail -1 ock-test.log | sed 's/^test-opencryptoki: //')): its tests are skipped"
		fi
	fi
	;;
esac
# Stale results would be counted again: start clean.
find tests -name '*.trs' -delete 2>/dev/null
rm -f test-suite.log
echo "set-up and build: $((SECONDS - started)) s"
# The builds of the passes after make check (./build-asan, the Debian
# packages) start now, at the lowest priority: they take the CPU the tests
# leave idle (a test waiting for a server, a lock, a child), and those
# passes find them done or nearly.  Not for a subset.
asan_early="" package_early=""
if [ -z "${TESTS:-}" ] && [ "${SANITIZERS:-1}" != 0 ]; then
	nice -n 19 "$top/scripts/test-sanitizers.sh" build >/dev/null 2>&1 &
	asan_early=$!
fi
if [ -z "${TESTS:-}" ] && [ "${RELEASE:-1}" != 0 ] && [ "${PACKAGE_REUSE:-0}" != 1 ]; then
	nice -n 19 "$top/scripts/test-package.sh" build >/dev/null 2>&1 &
	package_early=$!
fi
checked=$SECONDS
make -s -j"$(nproc)" check ${TESTS:+TESTS="$TESTS"} > check.out 2>&1
check_rc=$?
cat check.out
echo "make check: $((SECONDS - checked)) s"
# The sanitizer (ASan + UBSan in ./build-asan) and valgrind passes: their
# results land in build/tests/sanitizers/ and are counted below.  Not for
# a subset (TESTS=...); SANITIZERS=0 skips them.
if [ -z "${TESTS:-}" ] && [ "${SANITIZERS:-1}" != 0 ]; then
	# (its own build again: nothing left to do when the early one built)
	waited=$SECONDS
	wait "$asan_early"
	echo "the early build of build-asan: $((SECONDS - waited)) s more after make check"
	"$top/scripts/test-sanitizers.sh" 2>&1 | tee sanitizers.out
fi
# The release checks (make distcheck; the Debian packages built, checked
# by lintian, installed, used and purged): their results land in
# build/tests/release/ and are counted below.  Not for a subset; RELEASE=0
# skips them.
if [ -z "${TESTS:-}" ] && [ "${RELEASE:-1}" != 0 ]; then
	if [ -n "$package_early" ]; then
		waited=$SECONDS
		wait "$package_early"
		echo "the early build of the Debian packages: $((SECONDS - waited)) s more"
		export PACKAGE_PREBUILT=1
	fi
	"$top/scripts/test-package.sh" 2>&1 | tee release.out
fi

# One result line per test case (TAP: one per Criterion test or script check).
passed=$(cat $(find tests -name '*.trs') /dev/null | grep -Ec '^:test-result: (PASS|XFAIL)')
failed=$(cat $(find tests -name '*.trs') /dev/null | grep -Ec '^:test-result: (FAIL|XPASS|ERROR)')
skipped=$(cat $(find tests -name '*.trs') /dev/null | grep -Ec '^:test-result: SKIP')

if [ "$check_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	# make itself failed (a test program that did not build, say).
	failed=1
fi
if [ "$failed" -ne 0 ] && [ -f test-suite.log ]; then
	echo "---- failures (build/test-suite.log) ----"
	grep -E '^(not ok|FAIL|ERROR)' test-suite.log | head -50
fi
echo "the whole run: $((SECONDS - started)) s"
if [ "$skipped" -ne 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
