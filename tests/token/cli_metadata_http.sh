#!/usr/bin/env bash
# The agent's metadata server (src/lib/agent/http.c) over HTTP, with curl:
# the server-to-server document read as a partner reads it, the JWK Set,
# ETag / If-None-Match, Cache-Control, HEAD, 405, 404, a staged roll and a
# `custody set` seen at the next request, a reload (SIGHUP), connection
# limits and timeouts.  The server runs alone (tests/agent/http_serve: a
# ctx from the configuration, the server on [agent] http-listen), as the
# agent runs it.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
command -v curl >/dev/null || { echo "1..0 # SKIP curl is not installed"; exit 0; }
setup_token
SERVE=${TOP_BUILDDIR:?}/tests/agent/http_serve

py() { python3 -c "import json,sys,base64,hashlib; d=json.load(sys.stdin); $1" <"$T/body"; }
x5t_of_p12() {
	openssl pkcs12 -in "$T/$1.p12" -passin env:EMPTY_PASSWORD -nokeys -clcerts 2>/dev/null |
		openssl x509 -outform DER | openssl dgst -sha1 -binary | basenc --base64url | tr -d '=\n'
}
# get [CURL-OPTIONS...] PATH — the answer's status ($code), headers
# ($T/headers, lower-case names) and body ($T/body).
get() {
	local path=${*: -1}
	rm -f "$T/body"
	code=$(curl -sS --max-time 10 -o "$T/body" -D "$T/headers.raw" -w '%{http_code}' \
		"${@:1:$#-1}" "http://127.0.0.1:$port$path" 2>"$T/curl.err")
	tr -d '\r' <"$T/headers.raw" | sed 's/^\([^:]*\):/\L\1:/' >"$T/headers"
}
header() { sed -n "s/^$1: //p" "$T/headers"; }
# serve — starts the server on $T/agent.conf, waits (10 s at most) until
# it says it listens.
serve() {
	: >"$T/serve.out"
	CUSTODY_CONFIG="$T/agent.conf" "$SERVE" >"$T/serve.out" 2>"$T/serve.err" &
	server_pid=$!
	for _ in $(seq 100); do
		grep -q '^listening ' "$T/serve.out" && return 0
		kill -0 "$server_pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
# wait_for WHAT FILE [N] — until FILE has N (1) lines starting with WHAT
# (10 s at most).
wait_for() {
	for _ in $(seq 100); do
		[ "$(grep -c "^$1" "$2")" -ge "${3:-1}" ] && return 0
		sleep 0.1
	done
	return 1
}

if token_can ec-sign; then bkey=ec:P-256; else bkey=rsa:2048; fi
make_p12 a a.custody.test 365
make_p12 b b.custody.test 365 "$bkey"
A=$(thumbprint_of_p12 a); B=$(thumbprint_of_p12 b)
XA=$(x5t_of_p12 a); XB=$(x5t_of_p12 b)
for n in a b; do "$CUSTODY_BIN" -q import --path "$T/$n.p12" >/dev/null; done
"$CUSTODY_BIN" -q set -t OAuthTokenIssuer --thumbprint "$A" >/dev/null 2>&1

port=$(free_port)
realm=6a1c2f5e-7b7d-4e57-9c2b-0d8f1e0a9b11
service=00000004-0000-0ff1-ce00-000000000000
write_conf() { # MAX-AGE REALM [MORE-[agent]-LINES...]
	{
		printf '%s\n' '[agent]' "http-listen = 127.0.0.1:$port" "http-max-age = $1" \
			'http-types = OAuthTokenIssuer, Default' "${@:3}" \
			'[metadata OAuthTokenIssuer]' "realm = $2" "service-name = $service" \
			"metadata-url = https://sts.custody.test/metadata/json/1"
	} >"$T/agent.conf"
}
write_conf 60 "$realm"
check "the server starts and listens on the configured port" serve
check "…the port it says" grep -qx "listening $port" "$T/serve.out"

# The S2S document, as a partner reads it.
get /metadata/json/1
check "GET /metadata/json/1: 200" [ "$code" = 200 ]
check "…Content-Type application/json" [ "$(header content-type)" = application/json ]
check "…Cache-Control public with the configured max-age" [ "$(header cache-control)" = "public, max-age=60" ]
etag1=$(header etag)
check "…a strong ETag" grep -qE '^"[0-9a-f]{32}"$' <<<"$etag1"
check "…issuer is serviceName@realm" py 'assert d["issuer"] == d["serviceName"] + "@" + d["realm"] == "'"$service@$realm"'"'
check "…every keyinfo.x5t is the base64url SHA-1 of its certificate" \
	py 'u=lambda b: base64.urlsafe_b64encode(b).decode().rstrip("="); assert d["keys"] and all(k["keyinfo"]["x5t"] == u(hashlib.sha1(base64.b64decode(k["keyvalue"]["value"], validate=True)).digest()) for k in d["keys"])'
check "…allowedAudiences present" py 'assert d["allowedAudiences"] == ["'"$service/*@$realm"'"]'
check "…the current key only (nothing staged)" [ "$(py 'print(" ".join(k["keyinfo"]["x5t"] for k in d["keys"]))')" = "$XA" ]
py 'print(d["keys"][0]["keyvalue"]["value"])' | base64 -d >"$T/cert.der"
check "…its certificate parses and is A" \
	[ "$(openssl x509 -inform DER -in "$T/cert.der" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')" = "$A" ]
check "…the same document custody metadata prints" \
	[ "$(CUSTODY_CONFIG="$T/agent.conf" "$CUSTODY_BIN" metadata --format s2s 2>/dev/null)" = "$(cat "$T/body")" ]

# The JWK Set at both paths.
get /jwks.json
check "GET /jwks.json: 200, kid = x5t of A" \
	eval '[ "$code" = 200 ] && py "assert [(k[\"kid\"], k[\"x5t\"]) for k in d[\"keys\"]] == [(\"$XA\", \"$XA\")]"'
check "…public members only (no private key member)" \
	py 'assert not any(m in k for k in d["keys"] for m in ("d","p","q","dp","dq","qi"))'
cp "$T/body" "$T/jwks1"
get /.well-known/jwks.json
check "GET /.well-known/jwks.json: the same set" eval '[ "$code" = 200 ] && cmp -s "$T/body" "$T/jwks1"'
check "…another ETag than the S2S document's" [ "$(header etag)" != "$etag1" ]

# ETag and If-None-Match.
get -H "If-None-Match: $etag1" /metadata/json/1
check "If-None-Match with the ETag: 304" [ "$code" = 304 ]
check "…no body" [ ! -s "$T/body" ]
check "…the ETag and Cache-Control again" eval '[ "$(header etag)" = "$etag1" ] && [ "$(header cache-control)" = "public, max-age=60" ]'
get -H "If-None-Match: \"0000\", W/$etag1" /metadata/json/1
check "If-None-Match listing it (weak form): 304" [ "$code" = 304 ]
get -H 'If-None-Match: "00000000000000000000000000000000"' /metadata/json/1
check "If-None-Match with another tag: 200 and the document" eval '[ "$code" = 200 ] && [ -s "$T/body" ]'

# HEAD: the headers of GET, no body (curl -I writes the headers where
# the body would go).
get /metadata/json/1
size=$(stat -c %s "$T/body")
get -I /metadata/json/1
check "HEAD: 200 with the same ETag" eval '[ "$code" = 200 ] && [ "$(header etag)" = "$etag1" ]'
check "…the length of the document" [ "$(header content-length)" = "$size" ]
check "…and no body" eval '! grep -q "{" "$T/body"'

# Other methods, other paths, other types.
get -X POST --data-binary 'x=1' /metadata/json/1
check "POST: 405" [ "$code" = 405 ]
check "…Allow: GET, HEAD" [ "$(header allow)" = "GET, HEAD" ]
get -X PUT /jwks.json
check "PUT: 405" [ "$code" = 405 ]
get -X DELETE /nothing
check "DELETE elsewhere: 405" [ "$code" = 405 ]
for p in / /metadata /metadata/json /metadata/json/2 /metadata/json/1/ /jwks /index.html \
	/metadata/json/1/../../etc/passwd; do
	get --path-as-is "$p"
	check "GET $p: 404" [ "$code" = 404 ]
done
get "/metadata/json/1?type=WebServicesInternal"
check "a type not in http-types: 404" eval '[ "$code" = 404 ] && grep -q "not published here" "$T/body"'
get "/metadata/json/1?type=default"
check "a served type nothing is assigned to: 404" eval '[ "$code" = 404 ] && grep -q "no certificate is assigned" "$T/body"'

# A staged roll shows at the next request: the document and its ETag change.
eff=$(date -u -d '+3 days' +%Y-%m-%dT%H:%M:%SZ)
"$CUSTODY_BIN" -q set -t OAuthTokenIssuer --thumbprint "$B" --roll --effective-date "$eff" >/dev/null 2>&1
get -H "If-None-Match: $etag1" /metadata/json/1
check "after a staged roll: the old ETag gets 200" [ "$code" = 200 ]
etag2=$(header etag)
check "…a new ETag" eval '[ -n "$etag2" ] && [ "$etag2" != "$etag1" ]'
check "…current then pending" [ "$(py 'print(" ".join(k["keyinfo"]["x5t"] for k in d["keys"]))')" = "$XA $XB" ]
get /jwks.json
check "…the JWK Set lists the pending key too" [ "$(py 'print(" ".join(k["kid"] for k in d["keys"]))')" = "$XA $XB" ]

# custody set on another served type: published at the next request, with
# keys only there (no [metadata Default] section).
"$CUSTODY_BIN" -q set -t Default --thumbprint "$B" >/dev/null 2>&1
get "/metadata/json/1?type=Default"
check "?type=Default after custody set: 200, keys only" \
	eval '[ "$code" = 200 ] && py "assert list(d) == [\"keys\"] and d[\"keys\"][0][\"keyinfo\"][\"x5t\"] == \"$XB\""'

# Reload (SIGHUP): max-age and the realm change at the next request.
write_conf 30 contoso.com
kill -HUP "$server_pid"
check "SIGHUP: the server reloads" wait_for "reloaded $port" "$T/serve.out"
get /metadata/json/1
check "…the new max-age" [ "$(header cache-control)" = "public, max-age=30" ]
check "…the new issuer" py 'assert d["issuer"] == "'"$service"'@contoso.com"'
check "…and a new ETag" [ "$(header etag)" != "$etag2" ]
printf '%s\n' '[agent]' "http-listen = 127.0.0.1:$port" 'http-types = NoSuchType' >"$T/agent.conf"
kill -HUP "$server_pid"
check "a bad configuration at reload is refused, naming it" wait_for "http_serve: reload: .*NoSuchType" "$T/serve.err"
get /metadata/json/1
check "…and the server serves on as it was" eval '[ "$code" = 200 ] && py "assert d[\"realm\"] == \"contoso.com\""'

# Connections: past the limit none is served until some close; one held
# half-way does not hold the others, and the idle timeout closes it.
write_conf 30 contoso.com 'http-max-connections = 3' 'http-timeout = 30s'
kill -HUP "$server_pid"
check "SIGHUP with new limits: reloaded on the same port" wait_for "reloaded $port" "$T/serve.out" 2
python3 - "$port" "$T/release" >"$T/hold.out" 2>&1 <<'EOF' &
import os, socket, sys, time
held = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(3)]
print("held", flush=True)
for _ in range(300):
    if os.path.exists(sys.argv[2]):
        break
    time.sleep(0.1)
EOF
hold=$!
wait_for held "$T/hold.out"
# (MHD leaves a connection past the limit in the listen queue.)
get --max-time 2 /metadata/json/1
check "past http-max-connections: not served while they are held" [ "$code" = 000 ]
touch "$T/release"
wait "$hold"
for _ in $(seq 50); do get /metadata/json/1; [ "$code" = 200 ] && break; sleep 0.1; done
check "…served again once they close" [ "$code" = 200 ]

write_conf 30 contoso.com 'http-timeout = 2s'
kill -HUP "$server_pid"
wait_for "reloaded $port" "$T/serve.out" 3
python3 - "$port" >"$T/slow.out" 2>&1 <<'EOF' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /metadata/json/1 HTTP/1.1\r\nHost: x\r\n")   # never finished
print("held", flush=True)
s.settimeout(15)
print("closed" if s.recv(1) == b"" else "answered", flush=True)
EOF
slow=$!
wait_for held "$T/slow.out"
get /metadata/json/1
check "a client that sends half a request holds no other" [ "$code" = 200 ]
wait "$slow"
check "…the server closes it after http-timeout, unanswered" grep -qx closed "$T/slow.out"

# Another server on the port in use: refused, saying why.
CUSTODY_CONFIG="$T/agent.conf" timeout 10 "$SERVE" >/dev/null 2>"$T/second.err" </dev/null
rc=$?
check "a port in use: exit 1" [ "$rc" -eq 1 ]
check "…naming the address and the reason" \
	grep -q "^http_serve: cannot listen on 127.0.0.1:$port: Address already in use$" "$T/second.err"

# Reload onto another address (IPv6 loopback, when this host has it): the
# new one is listened on, the old one closed.
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
	port6=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0)); print(s.getsockname()[1])')
	sed -i "s/^http-listen = .*/http-listen = [::1]:$port6/" "$T/agent.conf"
	kill -HUP "$server_pid"
	check "SIGHUP with another address: reloaded there" wait_for "reloaded $port6" "$T/serve.out"
	code=$(curl -sS -g --max-time 10 -o "$T/body" -w '%{http_code}' "http://[::1]:$port6/jwks.json" 2>/dev/null)
	check "…served on [::1]:$port6" eval '[ "$code" = 200 ] && py "assert d[\"keys\"]"'
	get --max-time 2 /jwks.json
	check "…and no longer on 127.0.0.1:$port" [ "$code" = 000 ]
fi

kill -TERM "$server_pid"
wait "$server_pid"
rc=$?
server_pid=""
check "SIGTERM: the server stops, exit 0" [ "$rc" -eq 0 ]
check "…and warned of nothing" eval '! grep -q warning "$T/serve.err"'

# The same server in `custody agent` (its module loaded because http-listen
# is set): the document a partner fetches from the agent itself.
write_conf 60 "$realm" "listen = $T/agent.sock"
CUSTODY_CONFIG="$T/agent.conf" "$CUSTODY_BIN" agent --foreground -v 2>"$T/agent.log" &
agent_pid=$!
check "custody agent with http-listen serves the metadata" \
	wait_for ".*agent: metadata over HTTP on 127.0.0.1:$port" "$T/agent.log"
get /metadata/json/1
check "…GET /metadata/json/1 from the agent: 200, issuer serviceName@realm, x5t of A" \
	eval '[ "$code" = 200 ] && py "assert d[\"issuer\"] == \"$service@$realm\"; assert d[\"keys\"][0][\"keyinfo\"][\"x5t\"] == \"$XA\""'
kill -TERM "$agent_pid"
wait "$agent_pid"
check "…the agent stops on SIGTERM, exit 0" [ $? -eq 0 ]

done_testing
