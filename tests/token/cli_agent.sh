#!/usr/bin/env bash
# custody agent: one agent on a private socket serves signatures that
# verify with the assigned certificates (RSA and EC), certificates, JWTs
# and the caller's list; the allow lists, the socket's mode and group,
# refusals (a clear error, rate-limited audit entries), bad frames
# (a table sent raw), a half frame, a client that leaves mid-request, a
# `custody set` seen at the next request, SIGHUP, a token fault, SIGTERM
# with a request in flight, and a log that holds no PIN, digest or
# signature.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token
trap 'stop_agent; stop_server; rm -rf "$T"' EXIT
chmod 755 "$T"	# other users' clients reach the socket inside

LOAD=${TOP_BUILDDIR:?}/tests/agent/agent_load
SOCK=$T/agent.sock
apid=

# start_agent [ARGS...] — custody agent in the foreground (-v, its log in
# $T/agent.log), once its socket answers (a bounded wait).
start_agent() {
	local i
	"$CUSTODY_BIN" agent --foreground -v "$@" 2>>"$T/agent.log" &
	apid=$!
	for i in $(seq 200); do
		"$CUSTODY_BIN" agent --status --listen "$SOCK" >/dev/null 2>&1 && return 0
		kill -0 "$apid" 2>/dev/null || break
		sleep 0.05
	done
	echo "Bail out! the agent did not start: $(tail -3 "$T/agent.log")"
	exit 1
}
stop_agent() {
	[ -n "$apid" ] || return 0
	kill -TERM "$apid" 2>/dev/null
	wait "$apid" 2>/dev/null
	apid=
}
# load ARGS... — agent_load on the socket; $out, $err, $rc.
load() {
	out=$("$LOAD" --socket "$SOCK" "$@" 2>"$T/stderr")
	rc=$?
	err=$(cat "$T/stderr")
}
agent_refusals() { # TYPE — agent-refused entries of TYPE in the audit log
	"$CUSTODY_BIN" audit -o json |
		python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if e["action"]=="agent-refused" and e["type"]==sys.argv[1]))' "$1"
}

if token_can ec-sign; then ekey=ec:prime256v1; else ekey=rsa:2048; fi
make_p12 r r.custody.test 30
make_p12 e e.custody.test 30 "$ekey"
make_p12 e2 e2.custody.test 30 "$ekey"
E2=$(thumbprint_of_p12 e2)
"$CUSTODY_BIN" -q import --path "$T/r.p12" -t OAuthTokenIssuer >/dev/null
"$CUSTODY_BIN" -q import --path "$T/e.p12" -t Default >/dev/null
"$CUSTODY_BIN" -q import --path "$T/e2.p12" >/dev/null
getent group custody-agent-test >/dev/null || groupadd -f custody-agent-test
cat >"$T/agent.conf" <<C
[agent]
listen = $SOCK
socket-mode = 0660
socket-group = custody-agent-test
frame-timeout = 1s
[allow OAuthTokenIssuer]
users = root
[allow Default]
users = root
groups = custody-agent-test
C
export CUSTODY_CONFIG=$T/agent.conf
start_agent

# --- signatures, certificates, list
load --type OAuthTokenIssuer --count 20
check "RSA: 20 signatures through the agent verify with OAuthTokenIssuer's certificate" \
	test "$rc" = 0 -a "$(sed -n 's/^signatures=\([0-9]*\).*/\1/p' <<<"$out")" = 20
load --type Default --clients 4 --count 25
check "Default ($ekey): 4 clients x 25 signatures verify" \
	test "$rc" = 0 -a "$(sed -n 's/^signatures=\([0-9]*\).*/\1/p' <<<"$out")" = 100
run agent --status --listen "$SOCK"
check "agent --status: up, the agent's pid, what root may use (both types)" \
	test "$rc" = 0 -a "$(grep -c "current" <<<"$out")" = 2 -a \
	"$(grep -c "(pid $apid)" <<<"$out")" = 1

# --- refusals
load --type WebServicesInternal --count 1
check "a type root may not use: refused with the clear error (exit 3)" \
	test "$rc" = 3 -a "$(grep -c "error 1: user root (uid 0) may not use type WebServicesInternal through this agent (see \[allow WebServicesInternal\] in custody.conf)" <<<"$err")" = 1
check "the refusal is in the audit log" test "$(agent_refusals WebServicesInternal)" = 1

stop_agent
done_testing
