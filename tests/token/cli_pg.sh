#!/usr/bin/env bash
# custody on a PostgreSQL store: import, set, get, audit and --verify
# through the command line, on a schema of its own in the test server
# (CUSTODY_TEST_PG_URL, see scripts/test-postgres.sh); then a private
# server of its own is stopped under custody: "store unreachable".
if [ -z "${CUSTODY_TEST_PG_URL:-}" ]; then
	echo "1..0 # SKIP no PostgreSQL (CUSTODY_TEST_PG_URL is not set)"
	exit 0
fi
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" <<<"$out"; }
top=${TOP_SRCDIR:-$(dirname "$0")/../..}

# with_schema BASE-URL SCHEMA — the store URL whose tables live in SCHEMA.
with_schema() {
	case $1 in
	*\?*) echo "$1&options=-csearch_path%3D$2" ;;
	*) echo "$1?options=-csearch_path%3D$2" ;;
	esac
}
schema="cli_$$_$(date +%s)"
pgdir=""
cleanup() {
	psql "$CUSTODY_TEST_PG_URL" -qAtc "DROP SCHEMA IF EXISTS $schema CASCADE" \
		>/dev/null 2>&1
	[ -n "$pgdir" ] && "$top/scripts/test-postgres.sh" stop "$pgdir" >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT
psql "$CUSTODY_TEST_PG_URL" -qAtc "CREATE SCHEMA $schema" >/dev/null ||
	{ echo "Bail out! cannot create schema $schema on $CUSTODY_TEST_PG_URL"; exit 1; }
export CUSTODY_STORE=$(with_schema "$CUSTODY_TEST_PG_URL" "$schema")
q() { psql "$CUSTODY_STORE" -qAtc "$1" 2>&1; }

make_p12 a a.custody.test 365
make_p12 b b.custody.test 365
A=$(thumbprint_of_p12 a); B=$(thumbprint_of_p12 b)

run import --path "$T/a.p12" -t OAuthTokenIssuer
check "import A into the PostgreSQL store and assign it" [ "$rc" -eq 0 ]
run import --path "$T/b.p12"
check "import B" [ "$rc" -eq 0 ]
check "the certificates are rows of the test's schema" [ "$(q 'SELECT count(*) FROM certificates')" = 2 ]
run set -t Default --thumbprint "$B"
check "set B as Default" [ "$rc" -eq 0 ]
run get -t Default -o thumbprint
check "get reads B back" [ "$out" = "$B" ]
run get -t oauthtokenissuer -o thumbprint
check "get matches the type case-insensitively" [ "$out" = "$A" ]
run set -t Default --thumbprint "$A"
run get -t Default -o json
check "A current, B previous" [ "$(py 'print(d[0]["current"]["thumbprint"], d[0]["previous"]["thumbprint"])')" = "$A $B" ]
run audit -o json
check "one entry per change, in order: import (-t: and set), import, set, set" \
	[ "$(py 'print(" ".join(e["action"] for e in d))')" = "import set import set set" ]
check "the audit log holds as many rows as custody lists" \
	[ "$(py 'print(len(d))')" = "$(q 'SELECT count(*) FROM audit')" ]
check "the head records the last entry" [ "$(q 'SELECT seq FROM audit_head')" = "$(py 'print(d[-1]["seq"])')" ]
run audit --verify
check "audit --verify of an intact log exits 0" [ "$rc" -eq 0 ]
check "…and says how many entries" grep -q "audit log verified: [0-9]* entries" <<<"$out$err"

check "the audit table refuses plain edits (append-only)" \
	bash -c "! psql '$CUSTODY_STORE' -qAtc \"UPDATE audit SET actor = 'x' WHERE seq = 1\" 2>/dev/null"
q "DROP TRIGGER audit_no_update ON audit; UPDATE audit SET actor = 'mallory' WHERE seq = 2" >/dev/null
run audit --verify
check "an edited entry: exit 1 naming entry 2" grep -q "^1:.*audit entry 2 .*was edited" <<<"$rc:$err"
check "no message shows a user or a password" bash -c "! grep -q '@' <<<\"\$1\"" _ "$out$err"

# A server that goes away.  A private one: the shared server serves the
# other tests running meanwhile.
pgdir=$(mktemp -d "${TMPDIR:-/tmp}/custody-pg.XXXXXX")
if ! "$top/scripts/test-postgres.sh" start "$pgdir" >"$T/pg.out" 2>&1; then
	not_ok "start a private PostgreSQL server" "$(cat "$T/pg.out")"
	done_testing
	exit
fi
eval "$("$top/scripts/test-postgres.sh" env "$pgdir")"
export CUSTODY_STORE=$CUSTODY_TEST_PG_URL
run import --path "$T/a.p12" -t Default
check "import into the private server" [ "$rc" -eq 0 ]
"$top/scripts/test-postgres.sh" stop "$pgdir"
check "the private server is stopped and its directory gone" [ ! -e "$pgdir" ]
run get -t Default -o thumbprint
check "get with the server gone exits 1" [ "$rc" -eq 1 ]
check "…saying the store is unreachable" grep -q "store unreachable: " <<<"$err"
check "…in one line of the form WHAT: WHY" \
	grep -q "^custody: get: cannot open store postgresql:///custody_test?host=$pgdir/sock: store unreachable: " <<<"$err"
run set -t Default --thumbprint "$B"
check "set with the server gone exits 1" [ "$rc" -eq 1 ]
pgdir=""

done_testing
