#!/usr/bin/env bash
# The clients of custody's agent, as a service user drives them: one
# `custody agent --foreground` holds the token (PIN, module, store), and
# processes that have none of these sign through its socket (CUSTODY_AGENT):
# `custody sign` (RSA and EC, verified with the certificate), `custody jwt
# issue` (checked by `custody jwt verify` with the token's environment, its
# x5t the certificate's, the same token as one issued with the token), the
# OpenSSL provider (PKCS#1 v1.5, PSS, ECDSA) and the engine; a `custody
# set` between two signatures, a type the caller may not use (exit 1, the
# agent's refusal), a type with nothing assigned (exit 3), --agent none
# without a PIN source (the usual error), --at (a usage error), the agent
# killed (kill -9: "cannot reach the custody agent at PATH", exit 1) and
# started again (signing works again).  On openCryptoki (tests/ock/) the
# basic sign path only.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"

build=${TOP_BUILDDIR:-$(dirname "$CUSTODY_BIN")}
setup_token
me=$(id -un)
sock=$T/agent.sock
full=1
[ "$CUSTODY_TEST_TOKEN" = opencryptoki ] && full=0

if token_can ec-sign; then WK=EC wspec=ec:prime256v1; else WK=RSA wspec=rsa:2048; fi
make_p12 oauth oauth.custody.test 30 rsa:2048
make_p12 oauth2 oauth2.custody.test 30 rsa:2048
make_p12 web localhost 30 "$wspec"
make_p12 other other.custody.test 30 rsa:2048
"$CUSTODY_BIN" -q import --path "$T/oauth.p12" -t OAuthTokenIssuer >/dev/null
"$CUSTODY_BIN" -q import --path "$T/web.p12" -t WebServicesInternal -i global >/dev/null
"$CUSTODY_BIN" -q import --path "$T/other.p12" -t Default -i global >/dev/null
new=$("$CUSTODY_BIN" -q import --path "$T/oauth2.p12")
"$CUSTODY_BIN" get -t OAuthTokenIssuer -o pem >"$T/oauth.crt"
"$CUSTODY_BIN" get -t WebServicesInternal -o pem >"$T/web.crt"
pubkey_of "$T/oauth.crt" >"$T/oauth.pub"
pubkey_of "$T/web.crt" >"$T/web.pub"
head -c 10000 /dev/urandom >"$T/data"

# The agent: this user may use OAuthTokenIssuer, WebServicesInternal and
# XmppServer (nothing assigned), not Default.
cat >"$T/agent.conf" <<EOF
[agent]
listen = $sock
[allow OAuthTokenIssuer]
users = $me
[allow WebServicesInternal]
users = $me
[allow XmppServer]
users = $me
EOF
start_agent() { agent_start "$T/agent.conf" "$sock"; }
stop_agent() { agent_stop; }

# client ARGS... — a process with no module, no token, no PIN source and a
# store that does not exist: only the agent (CUSTODY_AGENT).
client() {
	env -u CUSTODY_MODULE -u CUSTODY_TOKEN -u CUSTODY_PIN_SOURCE -u SOFTHSM2_CONF \
		CUSTODY_STORE="sqlite:$T/nowhere/custody.db" CUSTODY_AGENT="$sock" "$@"
}
crun() {
	out=$(client "$CUSTODY_BIN" "$@" 2>"$T/stderr" </dev/null)
	rc=$?
	err=$(cat "$T/stderr")
}
dgst_verifies() { # PUBKEY-PEM SIGNATURE [SIGOPT...] — $T/data's SHA-256 signature verifies
	local pub=$1 sig=$2 o opts=()
	shift 2
	for o in "$@"; do opts+=(-sigopt "$o"); done
	openssl dgst -sha256 -verify "$pub" -signature "$sig" "${opts[@]}" "$T/data" >/dev/null 2>&1
}
all_verify() { # PUBKEY-PEM SIGNATURE... — each verifies
	local pub=$1 sig
	shift
	for sig in "$@"; do dgst_verifies "$pub" "$sig" || return 1; done
}

if start_agent; then
	ok "custody agent --foreground starts and serves"
	cpus=$(nproc)
	workers=$((4 * cpus < 4 ? 4 : 4 * cpus > 16 ? 16 : 4 * cpus))
	check "…with four workers a CPU by default ($workers on $cpus CPUs)" \
		grep -q "serving on $sock ($workers workers" "$T/agent.log"
else
	not_ok "custody agent --foreground starts and serves" "$(cat "$T/agent.log")"
	done_testing
	exit 1
fi
before=$(state)

# ---- custody sign
crun sign -t OAuthTokenIssuer --in "$T/data" --out "$T/rsa.sig"
check "custody sign through the agent (no PIN, module or store): exit 0" [ "$rc" -eq 0 ]
check "…the RSA signature verifies with the certificate" dgst_verifies "$T/oauth.pub" "$T/rsa.sig"
crun sign -t WebServicesInternal --in "$T/data" --out "$T/web.sig"
check "custody sign of the $WK key through the agent: exit 0" [ "$rc" -eq 0 ]
check "…and verifies with its certificate" dgst_verifies "$T/web.pub" "$T/web.sig"
crun -v sign -t OAuthTokenIssuer --in "$T/data" --out "$T/rsa-v.sig"
check "…-v names the certificate that signed" grep -q "signed with $(openssl x509 -in "$T/oauth.crt" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')" <<<"$err"

if [ "$full" = 1 ]; then
	# ---- custody jwt issue
	b64url() { openssl base64 -A | tr -- '+/' '-_' | tr -d '='; }
	b64url_decode() {
		local s
		s=$(tr -- '-_' '+/' <<<"$1")
		while [ $((${#s} % 4)) -ne 0 ]; do s="$s="; done
		printf '%s' "$s" | openssl base64 -d -A
	}
	now=$(date +%s)
	claims="{\"iss\":\"custody\",\"aud\":\"partner\",\"iat\":$now,\"nbf\":$now,\"exp\":$((now + 600))}"
	crun jwt issue -t OAuthTokenIssuer --claims "$claims"
	check "jwt issue through the agent: exit 0" [ "$rc" -eq 0 ]
	tok=$out
	run jwt verify -t OAuthTokenIssuer "$tok"
	check "…custody jwt verify (with the token) accepts it" [ "$rc" -eq 0 ]
	x5t=$(openssl x509 -in "$T/oauth.crt" -outform DER | openssl dgst -sha1 -binary | b64url)
	check "…its x5t is the certificate's" python3 -c \
		"import json,sys; assert json.loads(sys.argv[1])['x5t']==sys.argv[2]" \
		"$(b64url_decode "$(cut -d. -f1 <<<"$tok")")" "$x5t"
	run -q jwt issue -t OAuthTokenIssuer --claims "$claims"
	check "…the very token that jwt issue with the token makes (RS256)" [ "$rc" -eq 0 -a "$out" = "$tok" ]
	# A service user may not read the host's custody.conf (the agent's, with
	# the token's settings): with CUSTODY_AGENT it is left unread, unless
	# named with -c.  (Root without the capabilities that read any file.)
	printf '[token]\nlabel = hidden\n' >"$T/hidden.conf"
	chmod 000 "$T/hidden.conf"
	noread=(setpriv --bounding-set -dac_override,-dac_read_search)
	out=$(client env CUSTODY_CONFIG="$T/hidden.conf" "${noread[@]}" "$CUSTODY_BIN" jwt issue \
		-t OAuthTokenIssuer --claims "$claims" 2>"$T/stderr")
	check "jwt issue through the agent with a custody.conf it may not read: the same token" \
		[ "$?" -eq 0 -a "$out" = "$tok" ]
	out=$(client "${noread[@]}" "$CUSTODY_BIN" -c "$T/hidden.conf" jwt issue \
		-t OAuthTokenIssuer --claims "$claims" 2>&1)
	check "…named with -c, it is read, and refused" \
		grep -q "^custody: jwt: cannot read config $T/hidden.conf: Permission denied" <<<"$out"
	if [ "$WK" = EC ]; then
		crun jwt issue -t WebServicesInternal --claims '{"aud":"partner"}'
		check "jwt issue with the EC key through the agent: ES256, exit 0" [ "$rc" -eq 0 ]
		etok=$out
		run jwt verify -t WebServicesInternal "$etok"
		check "…custody jwt verify accepts the ES256 token (r || s from the agent)" [ "$rc" -eq 0 ]
	fi

	# ---- the OpenSSL provider
	if [ -f "$build/providers/.libs/custody.so" ]; then
		P=(-provider-path "$build/providers/.libs" -provider custody -provider default)
		client openssl dgst "${P[@]}" -sha256 -sign custody:OAuthTokenIssuer -out "$T/p-rsa.sig" \
			"$T/data" 2>"$T/p.err" </dev/null
		check "openssl dgst with the provider through the agent: RSA signs" [ $? -eq 0 ]
		check "…and verifies with the certificate" dgst_verifies "$T/oauth.pub" "$T/p-rsa.sig"
		client openssl dgst "${P[@]}" -sha256 -sign custody:OAuthTokenIssuer -sigopt rsa_padding_mode:pss \
			-out "$T/p-pss.sig" "$T/data" 2>"$T/p.err" </dev/null
		check "…RSA-PSS through the agent signs" [ $? -eq 0 ]
		check "…and verifies" dgst_verifies "$T/oauth.pub" "$T/p-pss.sig" rsa_padding_mode:pss
		client openssl dgst "${P[@]}" -sha256 -sign custody:WebServicesInternal -out "$T/p-web.sig" \
			"$T/data" 2>"$T/p.err" </dev/null
		check "…the $WK key signs" [ $? -eq 0 ]
		check "…and verifies with its certificate" dgst_verifies "$T/web.pub" "$T/p-web.sig"
		client openssl x509 "${P[@]}" -in custody:WebServicesInternal -noout -fingerprint -sha256 \
			>"$T/p-fp" 2>"$T/p.err" </dev/null
		check "…a certificate load comes from the agent too (no store here)" \
			[ "$(cat "$T/p-fp")" = "$(openssl x509 -in "$T/web.crt" -noout -fingerprint -sha256)" ]
		# A server's pattern: load once, then sign from threads (the
		# connection pool) and from children forked after the load (new
		# connections in each child).
		ps=$build/tests/token/provider_sign
		client env OPENSSL_MODULES="$build/providers/.libs" "$ps" custody:OAuthTokenIssuer \
			"$T/data" "$T/th" threads 4 2>"$T/p.err" </dev/null
		check "provider_sign: 4 threads sign at once through the agent" [ $? -eq 0 ]
		check "…every thread's signature verifies" all_verify "$T/oauth.pub" "$T"/th.thread0 "$T"/th.thread1 "$T"/th.thread2 "$T"/th.thread3
		client env OPENSSL_MODULES="$build/providers/.libs" "$ps" custody:WebServicesInternal \
			"$T/data" "$T/fk" fork 3 2>"$T/p.err" </dev/null
		check "provider_sign: children forked after the load sign through the agent" [ $? -eq 0 ]
		check "…the parent's and every child's signature verify" all_verify "$T/web.pub" "$T"/fk.parent "$T"/fk.child0 "$T"/fk.child1 "$T"/fk.child2
	fi

	# ---- the OpenSSL engine
	if [ -f "$build/engines/.libs/custody.so" ]; then
		client env OPENSSL_ENGINES="$build/engines/.libs" openssl dgst -engine custody -keyform engine \
			-sha256 -sign OAuthTokenIssuer -out "$T/e-rsa.sig" "$T/data" >/dev/null 2>"$T/e.err" </dev/null
		check "openssl dgst with the engine through the agent: RSA signs" [ $? -eq 0 ]
		check "…and verifies with the certificate" dgst_verifies "$T/oauth.pub" "$T/e-rsa.sig"
		client env OPENSSL_ENGINES="$build/engines/.libs" openssl dgst -engine custody -keyform engine \
			-sha256 -sign WebServicesInternal -out "$T/e-web.sig" "$T/data" >/dev/null 2>"$T/e.err" </dev/null
		check "…the $WK key signs" [ $? -eq 0 ]
		check "…and verifies with its certificate" dgst_verifies "$T/web.pub" "$T/e-web.sig"
		client env OPENSSL_ENGINES="$build/engines/.libs" openssl dgst -engine custody -keyform engine \
			-sha256 -sign OAuthTokenIssuer -sigopt rsa_padding_mode:pss -out "$T/e-pss.sig" "$T/data" \
			>/dev/null 2>"$T/e.err" </dev/null
		rc=$?
		check "RSA-PSS through the engine and the agent: refused (exit 1-127, no crash)" \
			[ "$rc" -gt 0 -a "$rc" -lt 128 ]
		check "…saying the agent signs digests, not padded blocks" grep -q "custody agent: it signs a digest" "$T/e.err"
	fi
fi
check "signing through the agent changed nothing on the token or in the store" [ "$(state)" = "$before" ]

# ---- a change between two signatures: the next one is the new key's
run -q set -t OAuthTokenIssuer --thumbprint "$new" --force
check "custody set makes another certificate current" [ "$rc" -eq 0 ]
"$CUSTODY_BIN" get -t OAuthTokenIssuer -o pem | openssl x509 -pubkey -noout >"$T/oauth2.pub"
crun sign -t OAuthTokenIssuer --in "$T/data" --out "$T/rsa2.sig"
check "the next custody sign through the agent: exit 0" [ "$rc" -eq 0 ]
check "…signed with the new key" dgst_verifies "$T/oauth2.pub" "$T/rsa2.sig"
check "…not the old one" eval '! dgst_verifies "$T/oauth.pub" "$T/rsa2.sig"'

# ---- refusals and errors
crun sign -t Default --in "$T/data" --out "$T/x.sig"
check "a type this user may not use: exit 1" [ "$rc" -eq 1 ]
check "…with the agent's refusal, one line" eval '[ "$(wc -l <<<"$err")" -eq 1 ] && grep -q "the custody agent.*may not use type Default" <<<"$err"'
check "…and no signature" [ ! -e "$T/x.sig" ]
crun sign -t XmppServer --in "$T/data" --out "$T/x.sig"
check "a type with nothing assigned: exit 3" [ "$rc" -eq 3 ]
check "…saying so" grep -q "no certificate is assigned for type XmppServer" <<<"$err"
crun --at 2030-01-01T00:00:00Z sign -t OAuthTokenIssuer --in "$T/data" --out "$T/x.sig"
check "--at with an agent: a usage error (exit 2)" [ "$rc" -eq 2 ]
check "…that says why" grep -q "the agent signs at the present time; --at needs the token (--agent none)" <<<"$err"
out=$(env -u CUSTODY_PIN_SOURCE CUSTODY_AGENT="$sock" "$CUSTODY_BIN" --agent none sign -t OAuthTokenIssuer \
	--in "$T/data" --out "$T/x.sig" 2>&1 </dev/null)
rc=$?
check "--agent none without a PIN source: exit 2" [ "$rc" -eq 2 ]
check "…the usual no PIN source error" grep -q "no PIN source configured" <<<"$out"

# ---- the agent killed, then started again
kill -9 "$agent_pid"
wait "$agent_pid" 2>/dev/null
agent_pid=""
crun sign -t OAuthTokenIssuer --in "$T/data" --out "$T/x.sig"
check "the agent killed: custody sign exits 1" [ "$rc" -eq 1 ]
check "…saying it cannot reach the agent at its path" grep -qF "cannot reach the custody agent at $sock: " <<<"$err"
if start_agent; then
	ok "the agent starts again"
	crun sign -t OAuthTokenIssuer --in "$T/data" --out "$T/rsa3.sig"
	check "…and custody sign through it works again" [ "$rc" -eq 0 ]
	check "…its signature verifies" dgst_verifies "$T/oauth2.pub" "$T/rsa3.sig"
else
	not_ok "the agent starts again" "$(tail -5 "$T/agent.log")"
fi

done_testing
