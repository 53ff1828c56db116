#!/bin/sh
# valgrind-custody.sh ARGS... — runs this build's custody under valgrind
# memcheck: CUSTODY_BIN for the valgrind pass of scripts/test-sanitizers.sh.
#
# Any memory error or definitely lost block makes the exit status 99 (so a
# test that checks the status fails) and prints valgrind's report on
# stderr; with VALGRIND_REPORTS=DIR the report is also kept there, one
# file per process that had one.  Leaks in third-party libraries are
# suppressed by tests/valgrind.supp (each entry says what it is).
# TOP_BUILDDIR: the build tree (custody, and its .libs with custody-cli.so
# and libcustody).
top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${TOP_BUILDDIR:?TOP_BUILDDIR must name the build tree}
log=$(mktemp "${TMPDIR:-/tmp}/valgrind-custody.XXXXXX") || exit 98
LD_LIBRARY_PATH="$build/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
	valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	--show-leak-kinds=definite --num-callers=30 \
	--suppressions="$top/tests/valgrind.supp" --log-file="$log" \
	"$build/custody" "$@"
rc=$?
# OpenSSL's secure heap (custody_harden_process) calls mlock2, which this
# valgrind does not know; OpenSSL then falls back to mlock.  Valgrind's
# five-line notice of it is no finding.
awk '/^--[0-9]+-- WARNING: unhandled amd64-linux syscall: 325$/ { skip = 4; next }
	skip > 0 && /^--[0-9]+-- / { skip--; next } { skip = 0; print }' "$log" >"$log.kept" &&
	mv "$log.kept" "$log"
if [ -s "$log" ]; then
	cat "$log" >&2
	if [ -n "${VALGRIND_REPORTS:-}" ] && mkdir -p "$VALGRIND_REPORTS"; then
		{ echo "custody $*"; cat "$log"; } >"$VALGRIND_REPORTS/custody.$$"
	fi
fi
rm -f "$log"
exit "$rc"
