#!/usr/bin/env bash
# opencryptoki.sh tests/ock/NAME.ock — the log compiler of the .ock tests (Makefile.am,
# OCK_TESTS): runs the CLI test NAME.sh of this directory on openCryptoki's
# software token (CUSTODY_TEST_TOKEN=opencryptoki, see lib.sh).  NAME.ock
# itself is a stub made by make; NAME.sh is the test.
set -u
[ $# -eq 1 ] || {
	echo "usage: $0 tests/ock/NAME.ock" >&2
	exit 2
}
name=$(basename "$1" .ock)
here=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/token
[ -f "$here/$name.sh" ] || {
	echo "Bail out! no test $here/$name.sh"
	exit 1
}
CUSTODY_TEST_TOKEN=opencryptoki exec bash "$here/$name.sh"
