#!/usr/bin/env bash
# run-fuzz.sh — builds the libFuzzer harnesses of tests/fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined) and runs each on a copy of its seed
# corpus for a given time.  Exits non-zero when any harness crashes, leaks,
# times out or breaks a promise of the API, after naming the inputs that did
# (the artifacts) and showing the sanitizer's report.
#
#   tests/fuzz/run-fuzz.sh [--tap] [--seconds N] [--build-dir DIR] [NAME...]
#
#   NAME          harnesses to run (default: every tests/fuzz/fuzz_NAME.c)
#   --seconds N   time per harness (default $FUZZ_SECONDS, else 60)
#   --tap         TAP output, one line per harness (the test suite's form);
#                 "1..0 # SKIP" when clang or its libFuzzer runtime is
#                 missing
#   --build-dir   where objects, harnesses, working corpora, logs and
#                 artifacts go (default $FUZZ_BUILD_DIR, else
#                 $TOP_BUILDDIR/tests/fuzz/build, else
#                 ${TMPDIR:-/tmp}/custody-fuzz-UID); never the source tree
#
# Environment: FUZZ_CC (default clang), FUZZ_TIMEOUT (seconds one input may
# take, default 10), FUZZ_JOBS (parallel compiles, default nproc).
#
# The library is compiled here, from src/lib/MODULE/*.c, with clang and coverage
# instrumentation: the autotools build (gcc) is left alone.  The seed
# corpora in tests/fuzz/corpus/NAME/ are copied before each run, so what
# the fuzzer finds never lands in the source tree.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd -P)
top=$(cd "$here/../.." && pwd -P)

# Library modules the harnesses reach (and those these depend on).
LIB_SOURCES="util/error util/error_openssl util/log assign/records util/hexfmt util/base64
	util/timefmt cert/thumbprint sign/jws cert/cert cert/bundle cert/policy
	cert/types cert/typename cert/keyspec util/similar config/config config/publish util/secret util/file
	cluster/package cert/dn agent/wire config/agent_keys config/sections config/path"
# Test helpers linked into every harness (keys and certificates in memory).
TEST_SOURCES="tests/unit/testcerts.c"

tap=0
seconds=${FUZZ_SECONDS:-60}
build=${FUZZ_BUILD_DIR:-}
names=()
while [ $# -gt 0 ]; do
	case "$1" in
	--tap) tap=1 ;;
	--seconds) seconds=${2:?--seconds needs a number}; shift ;;
	--seconds=*) seconds=${1#--seconds=} ;;
	--build-dir) build=${2:?--build-dir needs a directory}; shift ;;
	--build-dir=*) build=${1#--build-dir=} ;;
	-h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "run-fuzz: unknown option $1" >&2; exit 2 ;;
	*) names+=("$1") ;;
	esac
	shift
done
case "$seconds" in
''|*[!0-9]*|0) echo "run-fuzz: --seconds wants a whole number above 0, not '$seconds'" >&2; exit 2 ;;
esac

if [ -z "$build" ]; then
	if [ -n "${TOP_BUILDDIR:-}" ] && [ "$(cd "$TOP_BUILDDIR" && pwd)" != "$top" ]; then
		build=$TOP_BUILDDIR/tests/fuzz/build
	else
		build=${TMPDIR:-/tmp}/custody-fuzz-$(id -u)
	fi
fi
build=$(realpath -m "$build")
case "$build/" in
"$top"/build/*|"$top"/build-*/*|"$top"/_build/*) ;;	# a build tree beside the sources (_build: make distcheck)
"$top"/*) echo "run-fuzz: $build is inside the source tree: give another --build-dir" >&2; exit 2 ;;
esac
mkdir -p "$build" || exit 1

say() { if [ "$tap" = 1 ]; then sed 's/^/# /'; else cat; fi; }

if [ ${#names[@]} -eq 0 ]; then
	for f in "$here"/fuzz_*.c; do
		n=${f##*/fuzz_}
		names+=("${n%.c}")
	done
fi
for n in "${names[@]}"; do
	if [ ! -f "$here/fuzz_$n.c" ]; then
		echo "run-fuzz: no harness $n (tests/fuzz/fuzz_$n.c)" >&2
		exit 2
	fi
done

# ---------------------------------------------------------------- toolchain
cc=${FUZZ_CC:-clang}
probe_dir=$build/probe
mkdir -p "$probe_dir"
: > "$probe_dir/log"
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
	> "$probe_dir/probe.c"
if ! command -v "$cc" >/dev/null 2>&1 ||
   ! "$cc" -fsanitize=fuzzer,address,undefined "$probe_dir/probe.c" \
	-o "$probe_dir/probe" >"$probe_dir/log" 2>&1; then
	why="$cc with its libFuzzer runtime is not installed (Debian: clang libclang-rt-14-dev; scripts/install-deps.sh)"
	if [ "$tap" = 1 ]; then
		echo "1..0 # SKIP $why"
		exit 0
	fi
	echo "run-fuzz: $why" >&2
	sed 's/^/  /' "$probe_dir/log" >&2
	exit 1
fi

# ---------------------------------------------------------------- build
exec 9>"$build/.lock"
flock 9 2>/dev/null || true	# one run per build directory at a time

if ! deps_cflags=$(pkg-config --cflags libcrypto jansson inih) ||
   ! deps_libs=$(pkg-config --libs libcrypto jansson inih); then
	echo "run-fuzz: pkg-config cannot find libcrypto, jansson or inih" >&2
	exit 1
fi
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION (libFuzzer's convention): the
# library lowers its cap on iteration counts (src/lib/cert/bundle.c), so
# that no input costs seconds of PBKDF2.
cflags="-std=c11 -g -O1 $san -Wall -Wextra -Wshadow -Wstrict-prototypes -Wpointer-arith"
cflags="$cflags -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION"
cppflags="-I$build/include -I$top/include -I$top/src/lib -I$top/tests -I$here $deps_cflags"

mkdir -p "$build/include" "$build/obj" "$build/bin"
# The autotools config.h lives in the other build; the sources need only
# what AC_USE_SYSTEM_EXTENSIONS gives on Linux.
config_h='/* config.h of the fuzz build (tests/fuzz/run-fuzz.sh). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#define PACKAGE "custody"'
[ "$(cat "$build/include/config.h" 2>/dev/null)" = "$config_h" ] ||
	printf '%s\n' "$config_h" > "$build/include/config.h"
# Objects are built again when the compiler or its flags change.
flags_now=$(printf '%s\n' "$cc" "$cflags" "$cppflags")
[ "$(cat "$build/flags" 2>/dev/null)" = "$flags_now" ] ||
	printf '%s\n' "$flags_now" > "$build/flags"

headers=$(ls "$top"/include/custody/*.h "$top"/src/lib/*/*.h "$here"/*.h \
	"$top"/tests/unit/testcerts.h "$build/flags" "$build/include/config.h" 2>/dev/null)

# stale OBJ SRC: whether OBJ must be built again.
stale() {
	local h
	[ -f "$1" ] && [ ! "$2" -nt "$1" ] || return 0
	for h in $headers; do
		[ "$h" -nt "$1" ] && return 0
	done
	return 1
}

jobs_max=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
compile_failed=0
running=0
# compile SRC OBJ EXTRA_FLAGS: in the background, up to jobs_max at once.
compile() {
	local src=$1 obj=$2 extra=$3
	stale "$obj" "$src" || return 0
	if [ "$running" -ge "$jobs_max" ]; then
		wait -n || compile_failed=1
		running=$((running - 1))
	fi
	# shellcheck disable=SC2086
	( $cc $cflags $extra $cppflags -c "$src" -o "$obj.tmp" \
		> "$obj.log" 2>&1 && mv "$obj.tmp" "$obj" ) &
	running=$((running + 1))
}

lib_objs=()
for m in $LIB_SOURCES; do
	compile "$top/src/lib/$m.c" "$build/obj/${m//\//_}.o" "-fsanitize=fuzzer-no-link"
	lib_objs+=("$build/obj/${m//\//_}.o")
done
for s in $TEST_SOURCES; do
	o=$build/obj/$(basename "$s" .c).o
	compile "$top/$s" "$o" ""
	lib_objs+=("$o")
done
for n in "${names[@]}"; do
	compile "$here/fuzz_$n.c" "$build/obj/fuzz_$n.o" "-fsanitize=fuzzer"
done
while [ "$running" -gt 0 ]; do
	wait -n || compile_failed=1
	running=$((running - 1))
done

build_errors() {
	local log
	for log in "$build"/obj/*.log; do
		[ -s "$log" ] && { echo "${log##*/}:"; cat "$log"; }
	done
}
link_failed=0
if [ "$compile_failed" = 0 ]; then
	for n in "${names[@]}"; do
		bin=$build/bin/fuzz_$n
		newest=$(ls -t "${lib_objs[@]}" "$build/obj/fuzz_$n.o" | head -1)
		[ -x "$bin" ] && [ ! "$newest" -nt "$bin" ] && continue
		# shellcheck disable=SC2086
		if ! $cc $cflags -fsanitize=fuzzer "$build/obj/fuzz_$n.o" \
			"${lib_objs[@]}" $deps_libs -o "$bin" \
			> "$build/obj/link-$n.log" 2>&1; then
			link_failed=1
		fi
	done
fi
if [ "$compile_failed" = 1 ] || [ "$link_failed" = 1 ]; then
	if [ "$tap" = 1 ]; then
		echo "1..1"
		echo "not ok 1 - build the fuzz harnesses with $cc (see below)"
	else
		echo "run-fuzz: cannot build the fuzz harnesses:" >&2
	fi
	build_errors | say >&2
	exit 1
fi
# Warnings are shown, not fatal (the autotools build is the strict one).
build_errors | say

# ---------------------------------------------------------------- run
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1"
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && command -v llvm-symbolizer >/dev/null; then
	ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer)
	export ASAN_SYMBOLIZER_PATH
fi

# libFuzzer stops once more than max_total_time whole seconds have passed
# (60 runs for 61 s): ask for one less.
max_time=$((seconds > 1 ? seconds - 1 : 1))

[ "$tap" = 1 ] && echo "1..${#names[@]}"
failed=0
i=0
summary=()
for n in "${names[@]}"; do
	i=$((i + 1))
	run=$build/run/$n
	rm -rf "$run"
	mkdir -p "$run/corpus" "$run/artifacts"
	seeds=0
	seed_bytes=0
	if [ -d "$here/corpus/$n" ]; then
		cp -p "$here/corpus/$n"/* "$run/corpus/" 2>/dev/null
		seeds=$(find "$run/corpus" -type f | wc -l)
		seed_bytes=$(cat "$run/corpus"/* 2>/dev/null | wc -c)
	fi
	[ "$tap" = 1 ] || echo "== fuzz_$n: $seconds s on $seeds seeds ($seed_bytes bytes)"
	"$build/bin/fuzz_$n" -max_total_time="$max_time" \
		-timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$run/artifacts/" \
		"$run/corpus" > "$run/log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run/log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$run/log" | tail -1)
	last=$(grep -E '^#[0-9]+' "$run/log" | grep 'cov:' | tail -1)
	cov=$(printf '%s' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(printf '%s' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(printf '%s' "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
	took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$run/log" | tail -1)
	facts="${took:-$seconds} s, ${runs:-?} runs (${rate:-?}/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?} (seeds $seeds, $seed_bytes bytes)"
	artifacts=$(find "$run/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' \
		-o -name 'timeout-*' -o -name 'oom-*' \) | sort)
	if [ "$rc" -eq 0 ] && [ -z "$artifacts" ]; then
		if [ "$tap" = 1 ]; then
			echo "ok $i - fuzz $n: $facts"
		else
			echo "   ok: $facts"
		fi
		summary+=("ok      $n: $facts")
		continue
	fi
	failed=$((failed + 1))
	kind=$(printf '%s\n' "$artifacts" | sed -n '1s,.*/\([a-z]*\)-.*,\1,p')
	if [ "$tap" = 1 ]; then
		echo "not ok $i - fuzz $n: ${kind:-exit status $rc} after ${runs:-?} runs"
	else
		echo "   FAILED: ${kind:-exit status $rc} after ${runs:-?} runs"
	fi
	{
		echo "log: $run/log"
		for a in $artifacts; do
			echo "artifact: $a ($(wc -c < "$a") bytes)"
			echo "  replay: $build/bin/fuzz_$n $a"
		done
		# The sanitizer's report (or the broken promise) and its stack.
		sed -n '/broken promise\|^==[0-9]*==\|runtime error\|^==.*ERROR\|ERROR: libFuzzer/,/^SUMMARY\|^MS: \|^artifact_prefix/p' \
			"$run/log" | head -60
	} | say
	summary+=("FAILED  $n: ${kind:-exit status $rc} after ${runs:-?} runs; artifacts: $(echo $artifacts)")
done

if [ "$tap" = 0 ]; then
	echo
	echo "fuzzing summary ($build):"
	printf '  %s\n' "${summary[@]}"
fi
[ "$failed" -eq 0 ]
