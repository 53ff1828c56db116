#!/usr/bin/env bash
# fuzz-short.sh — the test suite's fuzzing: every harness of tests/fuzz/
# for FUZZ_SHORT_SECONDS (default 2) on its seed corpus, one TAP line per
# harness; "1..0 # SKIP" when clang's libFuzzer runtime is missing.  The
# long run is `make fuzz` (tests/fuzz/run-fuzz.sh, 60 s each).
exec bash "$(dirname "$0")/run-fuzz.sh" --tap --seconds "${FUZZ_SHORT_SECONDS:-2}"
