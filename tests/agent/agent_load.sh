#!/usr/bin/env bash
# The agent under load: 64 clients sign through one agent for
# STRESS_SECONDS (3 in make check, 30 in make stress), each fetching its
# certificate first and verifying every signature with its public key
# (agent_load), RSA and EC at once; no failure, and the agent still
# answers after.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token
trap 'stop_agent; rm -rf "$T"' EXIT
LOAD=${TOP_BUILDDIR:?}/tests/agent/agent_load
SOCK=$T/agent.sock
seconds=${STRESS_SECONDS:-3}
[ "${FAULT_STRESS:-}" = 1 ] || seconds=3
apid=
stop_agent() { [ -z "$apid" ] || { kill -TERM "$apid" 2>/dev/null; wait "$apid" 2>/dev/null; apid=; }; }

if token_can ec-sign; then ekey=ec:prime256v1; else ekey=rsa:2048; fi
make_p12 r r.custody.test 30
make_p12 e e.custody.test 30 "$ekey"
"$CUSTODY_BIN" -q import --path "$T/r.p12" -t OAuthTokenIssuer >/dev/null
"$CUSTODY_BIN" -q import --path "$T/e.p12" -t Default >/dev/null
printf '[agent]\nlisten = %s\n[allow OAuthTokenIssuer]\nusers = root\n[allow Default]\nusers = root\n' \
	"$SOCK" >"$T/agent.conf"
export CUSTODY_CONFIG=$T/agent.conf
"$CUSTODY_BIN" agent --foreground 2>"$T/agent.log" &
apid=$!
for i in $(seq 200); do [ -S "$SOCK" ] && break; sleep 0.05; done

"$LOAD" --socket "$SOCK" --type OAuthTokenIssuer --clients 32 --seconds "$seconds" >"$T/rsa" 2>&1 &
rsa=$!
"$LOAD" --socket "$SOCK" --type Default --clients 32 --seconds "$seconds" >"$T/ec" 2>&1
ec_rc=$?
wait "$rsa"
rsa_rc=$?
sed 's/^/# RSA: /' "$T/rsa"
sed 's/^/# Default: /' "$T/ec"
check "32 clients signing with RSA for ${seconds}s: every signature verified" test "$rsa_rc" = 0
check "32 clients signing with Default's key for ${seconds}s: every signature verified" test "$ec_rc" = 0
"$LOAD" --socket "$SOCK" --type Default --count 1 >/dev/null 2>&1
check "the agent still serves after the load" test $? = 0
stop_agent
done_testing
