#!/usr/bin/env bash
# The launcher's `custody sign` through the agent (src/cli/fast_sign.c)
# against the full command's (the library signer through the agent), on
# the same requests: the same signature bytes (RSA PKCS#1 v1.5 is
# deterministic; ECDSA: both verify), the same stderr and the same exit
# status, for successes (stdout, --out, sha384/sha512, a type spelt in
# lower case, -i global) and failures (a type this user may not use,
# nothing assigned, an input that cannot be read, an existing --out, no
# agent at the socket).  The full command is reached with an option the
# launcher does not take (--store, the value the environment already
# gives); LD_DEBUG shows which ran: the fast path loads neither libcrypto
# nor the command module.  Also: the agent named by [agent] socket of the
# configuration file alone, and --agent none (the full command).
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"

setup_token
me=$(id -un)
sock=$T/agent.sock
nowhere="sqlite:$T/nowhere/custody.db"

if ! "$CUSTODY_BIN" agent --help >/dev/null 2>&1; then
	ok "# SKIP custody agent is not built"
	done_testing
	exit 0
fi
if token_can ec-sign; then WK=EC wspec=ec:prime256v1; else WK=RSA wspec=rsa:2048; fi
make_p12 oauth oauth.custody.test 30 rsa:2048
make_p12 web localhost 30 "$wspec"
make_p12 other other.custody.test 30 rsa:2048
"$CUSTODY_BIN" -q import --path "$T/oauth.p12" -t OAuthTokenIssuer >/dev/null
"$CUSTODY_BIN" -q import --path "$T/web.p12" -t WebServicesInternal -i global >/dev/null
"$CUSTODY_BIN" -q import --path "$T/other.p12" -t Default -i global >/dev/null
"$CUSTODY_BIN" get -t OAuthTokenIssuer -o pem | openssl x509 -pubkey -noout >"$T/oauth.pub"
"$CUSTODY_BIN" get -t WebServicesInternal -o pem | openssl x509 -pubkey -noout >"$T/web.pub"
head -c 5000 /dev/urandom >"$T/data"

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

# fast NAME ARGS... / full NAME ARGS... — custody ARGS in a process with
# no module, token, PIN source or store: only the agent (CUSTODY_AGENT).
# stdout in $T/NAME.out, stderr in $T/NAME.err, the status in $T/NAME.rc,
# what the loader mapped in $T/NAME.ld.
client_run() {
	local name=$1
	shift
	env -u CUSTODY_MODULE -u CUSTODY_TOKEN -u CUSTODY_PIN_SOURCE -u SOFTHSM2_CONF \
		-u CUSTODY_CONFIG CUSTODY_STORE="$nowhere" CUSTODY_AGENT="${AGENT-$sock}" \
		LD_DEBUG=files LD_DEBUG_OUTPUT="$T/$name.ld" \
		"$CUSTODY_BIN" "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null
	echo $? >"$T/$name.rc"
	cat "$T/$name.ld".* >"$T/$name.ld" 2>/dev/null
	rm -f "$T/$name.ld".*
}
fast() { client_run "$@"; }
full() { local name=$1; shift; client_run "$name" --store "$nowhere" "$@"; }
took_fast() { ! grep -Eq 'file=[^ ]*(libcrypto|custody-cli)' "$T/$1.ld"; }
took_full() { grep -q 'file=[^ ]*custody-cli\.so' "$T/$1.ld"; }
same() { # A B — the same stdout, stderr and status
	cmp -s "$T/$1.out" "$T/$2.out" && cmp -s "$T/$1.err" "$T/$2.err" &&
		cmp -s "$T/$1.rc" "$T/$2.rc"
}
status_of() { cat "$T/$1.rc"; }
sig_verifies() { # PUBKEY SIG [DIGEST] — a signature of $T/data
	openssl dgst "-${3:-sha256}" -verify "$1" -signature "$2" "$T/data" >/dev/null 2>&1
}
# compare NAME DESCRIPTION STATUS ARGS... — fast and full on ARGS: the
# same output, errors and status STATUS, each by its own path.
compare() {
	local name=$1 what=$2 want=$3
	shift 3
	fast "$name-fast" "$@"
	full "$name-full" "$@"
	check "$what: the fast path took it" took_fast "$name-fast"
	check "…the full command took the other" took_full "$name-full"
	check "…exit $want" [ "$(status_of "$name-fast")" -eq "$want" ]
	check "…the same output, errors and status" same "$name-fast" "$name-full"
	if ! same "$name-fast" "$name-full"; then
		printf '# fast (exit %s): %s\n' "$(status_of "$name-fast")" "$(cat "$T/$name-fast.err")"
		printf '# full (exit %s): %s\n' "$(status_of "$name-full")" "$(cat "$T/$name-full.err")"
	fi
}

if start_agent; then
	ok "custody agent --foreground starts and serves"
else
	not_ok "custody agent --foreground starts and serves" "$(cat "$T/agent.log")"
	done_testing
	exit 1
fi
before=$(state)

# ---- what signs
compare rsa "RSA, signature to standard output" 0 sign -t OAuthTokenIssuer --in "$T/data"
check "…and it verifies with the certificate" sig_verifies "$T/oauth.pub" "$T/rsa-fast.out"
check "…stderr empty" [ ! -s "$T/rsa-fast.err" ]
compare sha384 "--digest sha384" 0 sign -t OAuthTokenIssuer --in "$T/data" --digest sha384
check "…and it verifies as SHA-384" sig_verifies "$T/oauth.pub" "$T/sha384-fast.out" sha384
compare sha512 "--digest=sha512, -tTYPE, --in=FILE" 0 sign -tOAuthTokenIssuer --in="$T/data" --digest=sha512
check "…and it verifies as SHA-512" sig_verifies "$T/oauth.pub" "$T/sha512-fast.out" sha512
compare lower "the type in lower case, -i global, -q" 0 -q sign -t oauthtokenissuer -i global --in "$T/data"
check "…the same signature as the type's own spelling" cmp -s "$T/lower-fast.out" "$T/rsa-fast.out"

fast web-fast sign -t WebServicesInternal --in "$T/data" --out "$T/web-fast.sig"
full web-full sign -t WebServicesInternal --in "$T/data" --out "$T/web-full.sig"
check "the $WK key: fast path, exit 0" eval 'took_fast web-fast && [ "$(status_of web-fast)" -eq 0 ]'
check "…the full command, exit 0" eval 'took_full web-full && [ "$(status_of web-full)" -eq 0 ]'
check "…both signatures verify with the certificate" eval \
	'sig_verifies "$T/web.pub" "$T/web-fast.sig" && sig_verifies "$T/web.pub" "$T/web-full.sig"'
check "…nothing on stdout or stderr" eval \
	'[ ! -s "$T/web-fast.out" ] && [ ! -s "$T/web-fast.err" ] && same web-fast web-full'
check "…the two --out files have one mode" \
	[ "$(stat -c %a "$T/web-fast.sig")" = "$(stat -c %a "$T/web-full.sig")" ]
check "signing changed nothing on the token or in the store" [ "$(state)" = "$before" ]

# ---- what fails
compare exists "an existing --out" 1 sign -t OAuthTokenIssuer --in "$T/data" --out "$T/web-fast.sig"
compare refused "a type this user may not use" 1 sign -t Default --in "$T/data"
check "…the agent's refusal" grep -q "^custody: sign: the custody agent.*Default" "$T/refused-fast.err"
compare unassigned "a type with nothing assigned" 3 sign -t XmppServer --in "$T/data"
compare noinput "an input that cannot be read" 1 sign -t OAuthTokenIssuer --in "$T/missing"
check "…says so" grep -qF "custody: sign: cannot open $T/missing: No such file or directory" "$T/noinput-fast.err"
compare noinput-refused "…and a refused type: the refusal comes first" 1 sign -t Default --in "$T/missing"
AGENT=$T/nothing.sock compare noagent "no agent at the socket" 1 sign -t OAuthTokenIssuer --in "$T/data"
check "…says where it looked" grep -qF "cannot reach the custody agent at $T/nothing.sock: No such file or directory" "$T/noagent-fast.err"

# ---- which agent
cat >"$T/client.conf" <<EOF
[agent]
socket = $sock
EOF
AGENT= fast conf sign -c "$T/client.conf" -t OAuthTokenIssuer --in "$T/data"
check "[agent] socket of the configuration file alone: the fast path signs" eval \
	'took_fast conf && [ "$(status_of conf)" -eq 0 ] && cmp -s "$T/conf.out" "$T/rsa-fast.out"'
fast none --agent none sign -t OAuthTokenIssuer --in "$T/data"
check "--agent none: the full command (no PIN source here: its error)" eval \
	'took_full none && [ "$(status_of none)" -ne 0 ]'
fast verbose -v sign -t OAuthTokenIssuer --in "$T/data"
check "-v: the full command, which names the certificate" eval \
	'took_full verbose && grep -q "signed with" "$T/verbose.err"'
fast usage sign --in "$T/data"
check "no -t: the full command's usage error, exit 2" eval \
	'took_full usage && [ "$(status_of usage)" -eq 2 ] && grep -q "^custody: sign: -t TYPE is required" "$T/usage.err"'

done_testing
