#!/usr/bin/env bash
# --at is for reading: every command that writes (the store, the token or a
# file) refuses it with exit 2 and changes nothing, before or after the
# command name; set --dry-run (a preview) takes it; the reads keep it.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" <<<"$out"; }
not() { ! "$@"; }

make_p12 a a.custody.test 365
make_p12 b b.custody.test 365
A=$(thumbprint_of_p12 a); B=$(thumbprint_of_p12 b)
for n in a b; do "$CUSTODY_BIN" -q import --path "$T/$n.p12" >/dev/null; done
"$CUSTODY_BIN" -q set -t WebServicesInternal --thumbprint "$A"
at=$(date -u -d '-1 day' +%Y-%m-%dT%H:%MZ)
eff=$(date -u -d '-1 day +10 minutes' +%Y-%m-%dT%H:%MZ)
later=$(date -u -d '+3 days' +%Y-%m-%dT%H:%MZ)

# refused CMD ARGS... — custody ARGS --at $at, and custody --at $at ARGS:
# exit 2, the one message, nothing changed (nor a file made).
refused() {
	local cmd=$1 before where
	before=$(state)
	for where in after before; do
		if [ "$where" = after ]; then run "$@" --at "$at"; else run --at "$at" "$@"; fi
		if [ "$rc" -ne 2 ]; then
			not_ok "$cmd --at ($where the command): exit 2" "exit was $rc" "stderr: $err"
		elif ! grep -q "^custody: $cmd: --at is for reading: $cmd writes, and writes at the real time$" <<<"$err"; then
			not_ok "$cmd --at ($where the command): the message" "stderr: $err"
		elif [ "$(state)" != "$before" ] || [ -e "$T/out.file" ]; then
			not_ok "$cmd --at ($where the command): nothing changed"
		else
			ok "$cmd --at ($where the command) is refused: exit 2, nothing changed"
		fi
	done
}

refused import --path "$T/b.p12"
refused import --path "$T/b.p12" -t WebServicesInternal
refused import --package "$T/out.file"
refused set -t WebServicesInternal --thumbprint "$B" --roll --effective-date "$eff"
refused set -t WebServicesInternal --thumbprint "$B"
refused remove -t WebServicesInternal
refused delete --thumbprint "$B"
refused delete --thumbprint "$B" --dry-run
refused seal --thumbprint "$A"
refused request --subject CN=at.custody.test --self-signed --days 30
refused request --subject CN=at.custody.test --csr "$T/out.file"
refused export --thumbprint "$A" --out "$T/out.file"
refused kek create
refused node enroll
refused node join
refused init-token --label fresh --so-pin-source "file:$T/so.pin" --pin-source "file:$T/user.pin"
refused wizard
refused sync
run set -t WebServicesInternal --thumbprint "$B" --at "$at"
check "…a refused set hints at --dry-run" grep -q "^hint: set --dry-run previews the change at --at TIME" <<<"$err"

# The brief's case: a roll staged in the past is impossible now.
run get -t WebServicesInternal -o json
check "after all that, A is current with nothing pending" \
	[ "$(py 'print(d[0]["current"]["thumbprint"], d[0]["pending"])')" = "$A None" ]

# set --dry-run is a preview: it takes --at and writes nothing.
before=$(state)
run set -t WebServicesInternal --thumbprint "$B" --dry-run --at "$later"
check "set --dry-run --at exits 0" [ "$rc" -eq 0 ]
check "…shows the change" grep -q "would change (dry run, nothing written)" <<<"$err"
check "…nothing changed" [ "$(state)" = "$before" ]
run --at "$later" set -t WebServicesInternal --thumbprint "$B" --roll --effective-date "$(date -u -d '+4 days' +%Y-%m-%dT%H:%MZ)" --dry-run
check "set --roll --dry-run with --at before the command exits 0" [ "$rc" -eq 0 ]
check "…nothing changed" [ "$(state)" = "$before" ]

# The reads keep --at.
for args in "get -t WebServicesInternal" "list" "test -t WebServicesInternal" \
	"metadata -t WebServicesInternal" "audit" "sign -t WebServicesInternal --in $T/a.p12 --out $T/sig.$RANDOM"; do
	# shellcheck disable=SC2086
	run $args --at "$later"
	check "$args --at: exit 0" [ "$rc" -eq 0 ]
done
run status --at "$later"
check "status --at is not a usage error" [ "$rc" -ne 2 ]
check "…nor refused for --at" not grep -q "is for reading" <<<"$err"
check "reads changed nothing" [ "$(state)" = "$before" ]

done_testing
