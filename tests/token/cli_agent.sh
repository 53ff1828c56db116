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
RAW=${TOP_SRCDIR:?}/tests/agent/raw_frames.py
# A python3 that another user may run (not one under root's home).
SYS_PY=$(PATH=/usr/local/bin:/usr/bin:/bin command -v python3)
SOCK=$T/agent.sock
apid=

not_in() { ! grep -qiF -- "$1" "$2"; } # TEXT FILE
# start_agent [ARGS...] — custody agent in the foreground (-v, its log in
# $T/agent.log), once its socket answers (a bounded wait).
start_agent() {
	local i
	if [ -n "${ACTIVATE:-}" ]; then
		# systemd's socket activation: the socket is made first and
		# passed (LISTEN_FDS); the agent starts at the first connection.
		# It passes on only the variables it is told (-E).
		local keep=() v
		for v in $(compgen -e | grep -E '^(CUSTODY_|SOFTHSM|FAULT_|LD_LIBRARY_PATH$|[A-Z]*SAN_OPTIONS$)'); do
			keep+=(-E "$v")
		done
		systemd-socket-activate -l "$SOCK" "${keep[@]}" "$CUSTODY_BIN" agent --foreground -v "$@" \
			2>>"$T/agent.log" &
	else
		"$CUSTODY_BIN" agent --foreground -v "$@" 2>>"$T/agent.log" &
	fi
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
# as_nobody [--groups G] COMMAND... — COMMAND as the user nobody, with no
# supplementary group or with G.
as_nobody() {
	local groups=(--clear-groups)
	if [ "$1" = --groups ]; then groups=(--groups "$(getent group "$2" | cut -d: -f3)"); shift 2; fi
	setpriv --reuid nobody --regid nogroup "${groups[@]}" "$@"
}
signed_count() { sed -n 's/^signatures=\([0-9]*\).*/\1/p' <<<"$out"; }
agent_refusals() { # TYPE — agent-refused entries of TYPE in the audit log
	"$CUSTODY_BIN" audit -o json |
		python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if e["action"]=="agent-refused" and e["type"]==sys.argv[1]))' "$1"
}

if token_can ec-sign; then ekey=ec:prime256v1; else ekey=rsa:2048; fi
make_p12 r r.custody.test 30
make_p12 e e.custody.test 30 "$ekey"
make_p12 e2 e2.custody.test 30 "$ekey"
E=$(thumbprint_of_p12 e)
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
workers = 2
[allow OAuthTokenIssuer]
users = root
[allow Default]
users = root
groups = custody-agent-test
C
chmod 644 "$T/agent.conf"	# no secret in it; other users' custody reads it
export CUSTODY_CONFIG=$T/agent.conf
start_agent

# --- signatures, certificates, list
load --type OAuthTokenIssuer --count 20
check "RSA: 20 signatures through the agent verify with OAuthTokenIssuer's certificate" \
	test "$rc" = 0 -a "$(sed -n 's/^signatures=\([0-9]*\).*/\1/p' <<<"$out")" = 20
load --type Default --clients 4 --count 25
check "Default ($ekey): 4 clients x 25 signatures verify" \
	test "$rc" = 0 -a "$(sed -n 's/^signatures=\([0-9]*\).*/\1/p' <<<"$out")" = 100
# An idle agent sleeps: its threads' context switches over 2 s, after the
# token's lease is let go (20 ms idle), are its housekeeping's 4 a second,
# not the lease thread's 50.
wakeups() { cat /proc/"$apid"/task/*/status | awk '/ctxt_switches/ { n += $2 } END { print n }'; }
sleep 0.2
before=$(wakeups)
sleep 2
woke=$(($(wakeups) - before))
check "an idle agent wakes at most 16 times in 2 s ($woke)" test "$woke" -le 16
run agent --status --listen "$SOCK"
check "agent --status: up, the agent's pid, what root may use (both types)" \
	test "$rc" = 0 -a "$(grep -c "current" <<<"$out")" = 2 -a \
	"$(grep -c "(pid $apid)" <<<"$out")" = 1

run agent --foreground
check "a second agent on the same socket: refused, another agent answers there (exit 1)" \
	test "$rc" = 1 -a "$err" = "custody: agent: another agent answers on $SOCK"
printf '[agent]\nlisten = %s\n[allow Default]\nusers = root, no-such-user-here\n' "$T/other.sock" >"$T/bad.conf"
run -c "$T/bad.conf" agent --foreground
check "an [allow] name that does not resolve stops the agent at start (exit 2, the name)" \
	test "$rc" = 2 -a "$(head -1 <<<"$err")" = "custody: agent: [allow Default] users: no user named 'no-such-user-here' on this system" -a ! -e "$T/other.sock"
run test -t Default
check "custody test: an agent line, up (its pid)" \
	grep -q "^OK \*/\*: custody agent is up at $SOCK (pid $apid)" <<<"$out"

# --- a JWT, issued as custody jwt issue issues it
out=$(python3 "$RAW" jwt "$SOCK" OAuthTokenIssuer '{"aud":"https://partner.example","sub":"svc"}' 600)
token=$out
run jwt verify -t OAuthTokenIssuer --aud https://partner.example "$token"
check "a JWT from the agent verifies with OAuthTokenIssuer's certificate (custody jwt verify)" \
	test "$rc" = 0
check "...RS256 by the RSA key, x5t and kid, as jwt issue makes them" \
	python3 -c 'import base64,json,sys; p=sys.argv[1].split(".")[0]; h=json.loads(base64.urlsafe_b64decode(p+"="*(-len(p)%4))); sys.exit(not (h["alg"]=="RS256" and h["x5t"]==h["kid"]))' "$token"
pad=$(head -c 3000 /dev/zero | tr '\0' x)
out=$(python3 "$RAW" jwt "$SOCK" OAuthTokenIssuer "{\"aud\":\"p\",\"pad\":\"$pad\"}")
run jwt verify -t OAuthTokenIssuer --aud p "$out"
check "a JWT request of 3 KiB (a frame larger than a connection's own buffer)" test "$rc" = 0
out=$(python3 "$RAW" pipeline "$SOCK" Default 10)
check "10 sign requests in one write: 10 answers, in order" test "$out" = "answered 10 of 10"
out=$(python3 "$RAW" jwt "$SOCK" OAuthTokenIssuer '{"a":1,"a":2}')
check "a JWT request with repeated claims: refused" grep -q "^error" <<<"$out"

# --- refusals
load --type WebServicesInternal --count 1
check "a type root may not use: refused with the clear error (exit 3)" \
	test "$rc" = 3 -a "$(grep -c "error 1: user root (uid 0) may not use type WebServicesInternal through this agent (see \[allow WebServicesInternal\] in custody.conf)" <<<"$err")" = 1
check "the refusal is in the audit log" test "$(agent_refusals WebServicesInternal)" = 1

if [ "$CUSTODY_TEST_TOKEN" = opencryptoki ]; then
	# openCryptoki: the sign path above; the rest is the agent's own.
	stop_agent
	done_testing
	exit
fi

# --- the socket: its mode and group; who may connect, who may use what
check "the socket is mode 0660, group custody-agent-test (as configured)" \
	test "$(stat -c '%a %G %F' "$SOCK")" = "660 custody-agent-test socket"
out=$(as_nobody "$LOAD" --socket "$SOCK" --type Default --count 1 2>&1)
check "a client outside the socket's group cannot connect (EACCES)" \
	grep -q "cannot connect to $SOCK: Permission denied" <<<"$out"
out=$(as_nobody --groups custody-agent-test "$LOAD" --socket "$SOCK" --type Default --count 3 2>&1)
check "nobody in the group custody-agent-test: signs with Default ([allow Default] groups)" \
	test "$(signed_count)" = 3
out=$(as_nobody --groups custody-agent-test "$LOAD" --socket "$SOCK" --type OAuthTokenIssuer --count 1 2>&1)
check "nobody may not use OAuthTokenIssuer: the clear error" \
	grep -q "error 1: user nobody (uid $(id -u nobody)) may not use type OAuthTokenIssuer through this agent (see \[allow OAuthTokenIssuer\] in custody.conf)" <<<"$out"
out=$(as_nobody --groups custody-agent-test "$CUSTODY_BIN" agent --status --listen "$SOCK" 2>&1)
check "agent --status as nobody lists Default only" \
	test "$(grep -c current <<<"$out")" = 1 -a "$(grep -c '^Default' <<<"$out")" = 1

# --- a loop of refusals does not flood the audit log
out=$(as_nobody --groups custody-agent-test "$SYS_PY" "$RAW" flood "$SOCK" 300 OAuthTokenIssuer)
check "300 refused requests in a loop: each answered ERROR" test "$out" = 300
check "...and with the refusal before them, one audit entry (one per user and type a minute)" \
	test "$(agent_refusals OAuthTokenIssuer)" = 1
types=$(for i in $(seq 40); do printf 'Flood%d ' "$i"; done)
out=$(python3 "$RAW" flood "$SOCK" 400 $types)
total=$("$CUSTODY_BIN" audit -o json | python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if e["action"]=="agent-refused"))')
check "400 refusals over 40 types: 400 errors, at most 20 audit entries a minute in all ($total)" \
	test "$out" = 400 -a "$total" -le 20 -a "$total" -ge 3
check "the agent says how many refusals it did not write" \
	grep -q "refused user root (uid 0, pid [0-9]*): type Flood40" "$T/agent.log"

# --- bad frames
python3 "$RAW" table "$SOCK" >"$T/table" 2>&1
check "every bad frame of the table: an ERROR frame or a closed connection" test $? = 0
sed 's/^/# /' "$T/table"
check "...a bad length prefix is refused before anything is read" \
	grep -q "^length prefix over the maximum: error 1: agent frame:" "$T/table"
check "...a digest of the wrong length: one clear error" \
	grep -q "^a digest of the wrong length: error 1: agent frame:" "$T/table"
python3 "$RAW" leave "$SOCK" Default
load --type Default --count 5
check "after the table and clients that left mid-request, the agent serves" test "$(signed_count)" = 5

# --- half a frame never holds a worker; it is closed after frame-timeout
out=$(python3 "$RAW" half "$SOCK" 4)
check "4 half frames (2 workers): another client is answered meanwhile" \
	grep -q "list answered: True, half frames still open then: 4 of 4" <<<"$out"
secs=$(sed -n 's/^closed after //p' <<<"$out")
check "...and each half frame is closed after frame-timeout (1s: $secs s)" \
	python3 -c "import sys; sys.exit(not (0.9 <= $secs < 4))"
check "...closed, not answered" test "$(grep -c '^half frame: closed' <<<"$out")" = 4

# --- a set takes effect at the next request
"$CUSTODY_BIN" -q set -t Default --thumbprint "$E2" >/dev/null
load --type Default --count 1
check "custody set: the next signature is by the new key (and verifies with it)" \
	test "$rc" = 0 -a "$(sed -n 's/^thumbprint=//p' <<<"$out")" = "$E2"
load --type Default --which previous --count 2
check "which=previous: signatures by the previous key verify with the previous certificate" \
	test "$rc" = 0 -a "$(sed -n 's/^thumbprint=//p' <<<"$out")" = "$E"
out=$(python3 "$RAW" sign "$SOCK" Default "$E")
check "a request naming the previous certificate's thumbprint: signed with its key" \
	grep -q "thumbprint=$E\$" <<<"$out"
R=$(thumbprint_of_p12 r)
out=$(python3 "$RAW" sign "$SOCK" Default "$R")
check "a thumbprint in none of the type's slots: refused" \
	grep -q "^error 3: the certificate asked for is in no slot of type Default's assignment" <<<"$out"

# --- SIGHUP: a changed allow list; a bad file keeps the old one
sed -i 's/^users = root$/users = root, nobody/' "$T/agent.conf"
kill -HUP "$apid"
for i in $(seq 100); do
	out=$(as_nobody --groups custody-agent-test "$LOAD" --socket "$SOCK" --type OAuthTokenIssuer --count 1 2>&1) && break
	sleep 0.05
done
check "SIGHUP: nobody, added to [allow OAuthTokenIssuer], signs with it" test "$(signed_count)" = 1
cp "$T/agent.conf" "$T/agent.conf.good"
printf '[allow Default]\nusers = no-such-user-here\n[bogus]\n' >>"$T/agent.conf"
kill -HUP "$apid"
for i in $(seq 100); do grep -q "reload failed" "$T/agent.log" && break; sleep 0.05; done
check "SIGHUP with a bad file: the agent says why and keeps the old configuration" \
	grep -q "agent: reload failed, the configuration stays as it was: .*unknown section \[bogus\]" "$T/agent.log"
out=$(as_nobody --groups custody-agent-test "$LOAD" --socket "$SOCK" --type OAuthTokenIssuer --count 1 2>&1)
check "...nobody still signs with OAuthTokenIssuer" test "$(signed_count)" = 1
# max-connections and idle-timeout, by a reload too
sed -i 's/^\[agent\]$/[agent]\nmax-connections = 3\nidle-timeout = 1s/' "$T/agent.conf.good"
sed -i 's/^users = root, nobody$/users = root, nobody, no-such-user-here/' "$T/agent.conf.good"
cp "$T/agent.conf.good" "$T/agent.conf"
reloads=$(grep -c "agent: reloaded" "$T/agent.log")
kill -HUP "$apid"
for i in $(seq 100); do
	[ "$(grep -c "agent: reloaded" "$T/agent.log")" -gt "$reloads" ] && break
	sleep 0.05
done
out=$(python3 "$RAW" crowd "$SOCK" 3)
check "max-connections 3: a fourth connection gets an ERROR frame" \
	grep -q "^one more: error 1: the agent has 3 connections, its max-connections: try again later" <<<"$out"
secs=$(sed -n 's/^idle closed after //p' <<<"$out")
check "idle-timeout 1s: idle connections are closed ($secs s)" \
	python3 -c "import sys; sys.exit(not (0.9 <= $secs < 4))"
check "a reload with a user name that does not resolve: a warning, the name left out" \
	grep -q "warning: \[allow OAuthTokenIssuer\] users: no user named 'no-such-user-here': left out" "$T/agent.log"
out=$(as_nobody --groups custody-agent-test "$LOAD" --socket "$SOCK" --type OAuthTokenIssuer --count 1 2>&1)
check "...and the other names of the list still hold" test "$(signed_count)" = 1
sed -i '/^max-connections = 3$/d; /^idle-timeout = 1s$/d; s/, no-such-user-here$//' "$T/agent.conf.good"
cp "$T/agent.conf.good" "$T/agent.conf"
kill -HUP "$apid"

# --- the log holds no PIN, digest or signature
out=$(python3 "$RAW" sign "$SOCK" OAuthTokenIssuer)
digest=$(sed -n 's/^digest=\([0-9a-f]*\) .*/\1/p' <<<"$out")
sig=$(sed -n 's/.*signature=\([0-9a-f]*\) .*/\1/p' <<<"$out")
check "a raw sign request: a digest and a signature to look for" test -n "$digest" -a -n "$sig"
stop_agent
check "SIGTERM: the agent exits 0 and removes its socket" test ! -e "$SOCK"
run test -t Default
check "custody test: the agent line says down (CRITICAL, exit 2)" \
	test "$rc" = 2 -a -n "$(grep "^CRITICAL \*/\*: custody agent is down at $SOCK: No such file or directory" <<<"$out")"
pin=$(cat "${CUSTODY_PIN_SOURCE#file:}")
check "the agent's log (-v) holds no PIN" not_in "$pin" "$T/agent.log"
check "...no digest (hex, either case)" not_in "$digest" "$T/agent.log"
check "...no signature (hex, either case)" not_in "${sig:0:32}" "$T/agent.log"
check "...but a line per request" test "$(grep -c ': sign request: served' "$T/agent.log")" -ge 100

# --- a token fault: the client gets an error, the next request succeeds
SHIM=$TOP_BUILDDIR/tests/fault/.libs/p11shim.so
real_module=$CUSTODY_MODULE
if command -v systemd-socket-activate >/dev/null; then act=1; else act=; fi
ACTIVATE=$act CUSTODY_MODULE=$SHIM FAULT_TARGET=$real_module FAULT_FUNC=C_Sign FAULT_AT=1 start_agent
if [ -n "$act" ]; then
	check "socket activation: the agent serves on the socket systemd's tool passed" \
		grep -q "agent: serving on the sockets systemd passed" "$T/agent.log"
fi
load --type Default --count 1
check "a token fault (C_Sign fails): the client gets an error" \
	test "$rc" = 3 -a -n "$(grep 'error 1: ' <<<"$err")"
load --type Default --count 3
check "...and the next requests succeed" test "$rc" = 0 -a "$(signed_count)" = 3

# --- the agent killed: a clear error meanwhile; restarted, it serves again
kill -KILL "$apid"
wait "$apid" 2>/dev/null
apid=
load --type Default --count 1
check "the agent killed (-9): a client gets a clear error" \
	grep -q "cannot connect to $SOCK: Connection refused" <<<"$err"
check "...and its socket file stays behind" test -S "$SOCK"

# --- SIGTERM with a request in flight (the token takes 1.5 s over it): it
# completes, then the agent exits 0
CUSTODY_MODULE=$SHIM FAULT_TARGET=$real_module FAULT_FUNC=C_Sign FAULT_AT=1 \
	FAULT_EXEC='sleep 1.5; kill -TERM $PPID; sleep 0.2' start_agent
check "a new agent takes over the stale socket (nothing answered there)" test -S "$SOCK"
load --type Default --count 1
check "SIGTERM during a signature of 1.5 s (over frame-timeout: a slow token is not a slow client): answered, and it verifies" \
	test "$rc" = 0
wait "$apid"
arc=$?
apid=
check "...and the agent exits 0" test "$arc" = 0
check "...having said it stops" grep -q "agent: stopping: the requests in flight finish" "$T/agent.log"
done_testing
