# lib.sh — sourced by the CLI tests (tests/token/cli_*.sh).
#
# Each test script gets its own throwaway SoftHSM token directory, store
# and lock directory under one temporary directory, removed on exit; it
# reports in TAP (one "ok N - ..." line per check).  PINs live in files
# (pin-source file:), never on a command line.  Plaintext test keys reach
# custody through pipes only.
#
# CUSTODY_TEST_TOKEN=opencryptoki (default softhsm) runs a single-token
# test on openCryptoki's software token instead (tests/token/opencryptoki.sh,
# the .ock tests of `make check`): setup_token takes the machine's one
# software token for the rest of the script (a lock, CUSTODY_TEST_OCK_LOCK:
# such tests take turns) and resets it (scripts/test-opencryptoki.sh); the
# test is skipped when no openCryptoki daemon offers a software token.  The
# helpers that look at the token's objects (object_files, token_objects,
# count_objects, set_aside, rehearse...) mean the same on both tokens.
set -u

: "${CUSTODY_BIN:?CUSTODY_BIN must name the custody binary}"
: "${SOFTHSM_MODULE:=/usr/lib/softhsm/libsofthsm2.so}"
: "${CUSTODY_TEST_TOKEN:=softhsm}"
case $CUSTODY_TEST_TOKEN in
softhsm | opencryptoki) ;;
*)
	echo "Bail out! CUSTODY_TEST_TOKEN=$CUSTODY_TEST_TOKEN: softhsm or opencryptoki"
	exit 1
	;;
esac

T=$(mktemp -d "${TMPDIR:-/tmp}/custody-test.XXXXXX")
# stop_server: a TLS server a test started (start_tls_server below).
trap 'agent_stop; stop_server; rm -rf "$T"' EXIT
umask 077

tap_n=0
tap_failed=0

ok() { # DESCRIPTION — pass
	tap_n=$((tap_n + 1))
	echo "ok $tap_n - $*"
}
not_ok() { # DESCRIPTION [DETAIL...] — fail
	local line
	tap_n=$((tap_n + 1))
	tap_failed=$((tap_failed + 1))
	echo "not ok $tap_n - $1"
	shift
	for line in "$@"; do printf '%s\n' "$line" | sed 's/^/# /'; done
}
check() { # DESCRIPTION COMMAND... — ok when COMMAND succeeds
	local d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d" "command failed: $*" "stdout: ${out:-}" "stderr: ${err:-}"; fi
}
done_testing() {
	echo "1..$tap_n"
	[ "$tap_failed" -eq 0 ]
}

# import_signer SPEC — a certificate of key SPEC (rsa:2048, ec:prime256v1)
# imported and assigned Default/global; its public key in $T/signer.pub,
# 4 KiB of data to sign in $T/data.  Bails out when it cannot.
import_signer() {
	make_p12 signer signer.custody.test 365 "$1"
	"$CUSTODY_BIN" -q import --path "$T/signer.p12" -t Default -i global >/dev/null ||
		{ echo "Bail out! cannot import the signing certificate"; exit 1; }
	"$CUSTODY_BIN" get -t Default -i global -o pem | openssl x509 -pubkey -noout >"$T/signer.pub" ||
		{ echo "Bail out! cannot read the signing certificate back"; exit 1; }
	head -c 4096 /dev/urandom >"$T/data"
}

# run ARGS... — runs custody, leaving $out, $err and $rc.
run() {
	out=$("$CUSTODY_BIN" "$@" 2>"$T/stderr")
	rc=$?
	err=$(cat "$T/stderr")
}
# run_in INPUT-FILE ARGS... — the same with standard input from a file.
run_in() {
	local input=$1
	shift
	out=$("$CUSTODY_BIN" "$@" <"$input" 2>"$T/stderr")
	rc=$?
	err=$(cat "$T/stderr")
}

# setup_token [LABEL] — a fresh token and store; exports what custody reads.
setup_token() {
	local label=${1:-test}
	local exports
	mkdir -p "$T/lock"
	export CUSTODY_LOCK_DIR="$T/lock"
	if [ "$CUSTODY_TEST_TOKEN" = opencryptoki ]; then
		ock_token "$label"
	else
		exports=$("${TOP_SRCDIR:?}/scripts/softhsm-token.sh" "$T" "$label") ||
			{ echo "Bail out! cannot initialise a SoftHSM token"; exit 1; }
		eval "$exports"
	fi
	export CUSTODY_STORE="sqlite:$T/custody.db"
	export CUSTODY_NODE=node1
	export CUSTODY_CONFIG=""
	unset CUSTODY_SO_PIN_SOURCE
}

# declare_types NAME... — $T/types.conf declares these custom types
# ([types] custom: a command that assigns takes no other), exported as
# CUSTODY_CONFIG; the environment still gives everything else.
declare_types() {
	printf '[types]\ncustom = %s\n' "$*" >"$T/types.conf"
	export CUSTODY_CONFIG="$T/types.conf"
}

# ock_token LABEL — openCryptoki's software token, reset and labelled
# LABEL, its PINs in $T/user.pin and $T/so.pin; held (the lock of
# scripts/test-opencryptoki.sh) until the script exits.  No software
# token: the whole script is skipped.
ock_token() {
	local ock=${TOP_SRCDIR:?}/scripts/test-opencryptoki.sh why exports lock
	# Our turn first: even asking the daemon about the token (pkcsconf)
	# initialises the token, which must not meet another test's reset.
	lock=$("$ock" lock)
	exec {ock_lock_fd}>>"$lock" || { echo "Bail out! cannot open $lock"; exit 1; }
	flock -w "${CUSTODY_TEST_OCK_WAIT:-3600}" "$ock_lock_fd" ||
		{ echo "Bail out! the openCryptoki token stayed busy (lock $lock)"; exit 1; }
	if ! why=$("$ock" status 2>&1); then
		why=$(tail -1 <<<"$why" | sed 's/^test-opencryptoki: //')
		echo "1..0 # SKIP no openCryptoki software token${why:+: $why} (scripts/test-opencryptoki.sh start)"
		exit 0
	fi
	"$ock" reset "$1" "$T" >&2 || { echo "Bail out! cannot reset the openCryptoki token"; exit 1; }
	exports=$("$ock" env "$T") || { echo "Bail out! scripts/test-opencryptoki.sh env failed"; exit 1; }
	eval "$exports"
}

# --- the token's objects, the same on SoftHSM and openCryptoki ---
# Both keep one file per token object: SoftHSM in $T/tokens (*.object;
# its token.object is the token's flags), openCryptoki in the token
# directory's TOK_OBJ, named in its index TOK_OBJ/OBJ.IDX.  Neither
# rewrites an object's file unless the object changes (logging in,
# finding, signing leave them as they were).

# object_files — the files of the token's objects, one per object, sorted.
object_files() {
	local d n
	if [ "$CUSTODY_TEST_TOKEN" = opencryptoki ]; then
		d=$CUSTODY_TEST_OCK_TOKDIR/TOK_OBJ
		[ -f "$d/OBJ.IDX" ] || return 0
		while read -r n; do
			[ -n "$n" ] && [ -f "$d/$n" ] && echo "$d/$n"
		done <"$d/OBJ.IDX" | sort
	else
		find "$T/tokens" -type f -name '*.object' ! -name 'token.object' | sort
	fi
}
# token_files — every file the token keeps (objects, index, PIN and
# master key records, openCryptoki's shared memory), for scans.
token_files() {
	local shm
	if [ "$CUSTODY_TEST_TOKEN" = opencryptoki ]; then
		find "$CUSTODY_TEST_OCK_TOKDIR" -type f
		shm=${CUSTODY_TEST_OCK_TOKDIR#/}
		shm=/dev/shm/${shm//\//.}
		[ -f "$shm" ] && echo "$shm"
	else
		find "$T/tokens" -type f
	fi
	return 0
}
# ock_forget — drops openCryptoki's shared memory for the token (its
# cache of the object list, rebuilt from the files by the next process):
# after objects' files were moved, as no process uses the token then.
ock_forget() {
	local shm=${CUSTODY_TEST_OCK_TOKDIR#/}
	rm -f "/dev/shm/${shm//\//.}"
}
# set_aside FILE... — takes these objects out of the token (their files
# moved aside), as on a token restored from a backup older than them;
# put_back FILE... puts them back.  Arguments are split on blanks, so a
# list of object_files lines may be given as one argument.
set_aside() {
	local f idx
	# shellcheck disable=SC2048  # split on blanks on purpose
	for f in $*; do
		mv "$f" "$f.aside" || return 1
		if [ "$CUSTODY_TEST_TOKEN" = opencryptoki ]; then
			idx=$(dirname "$f")/OBJ.IDX
			grep -vxF "$(basename "$f")" "$idx" >"$idx.aside" || true
			cat "$idx.aside" >"$idx"
			rm -f "$idx.aside"
		fi
	done
	[ "$CUSTODY_TEST_TOKEN" = opencryptoki ] && ock_forget
	return 0
}
put_back() {
	local f idx
	# shellcheck disable=SC2048  # split on blanks on purpose
	for f in $*; do
		mv "$f.aside" "$f" || return 1
		if [ "$CUSTODY_TEST_TOKEN" = opencryptoki ]; then
			idx=$(dirname "$f")/OBJ.IDX
			grep -qxF "$(basename "$f")" "$idx" || basename "$f" >>"$idx"
		fi
	done
	[ "$CUSTODY_TEST_TOKEN" = opencryptoki ] && ock_forget
	return 0
}
# rehearse COMMAND... — runs COMMAND on a copy of the token and of the
# store (CUSTODY_STORE sqlite:$T/rehearsal/custody.db): whatever it does,
# the token and the store stay as they were.  SoftHSM: a copy of the
# token directory, with a SOFTHSM2_CONF of its own; openCryptoki (one
# token directory per machine): the token's files saved beforehand and
# restored afterwards.
rehearse() {
	local rc
	rm -rf "$T/rehearsal"
	mkdir "$T/rehearsal"
	[ ! -f "$T/custody.db" ] || cp -a "$T/custody.db" "$T/rehearsal/"
	if [ "$CUSTODY_TEST_TOKEN" = opencryptoki ]; then
		cp -a "$CUSTODY_TEST_OCK_TOKDIR" "$T/rehearsal/token"
		CUSTODY_STORE=sqlite:$T/rehearsal/custody.db "$@"
		rc=$?
		rm -rf "${CUSTODY_TEST_OCK_TOKDIR:?}"/*
		cp -a "$T/rehearsal/token/." "$CUSTODY_TEST_OCK_TOKDIR/"
		ock_forget
	else
		cp -a "$T/tokens" "$T/rehearsal/"
		sed "s|^directories.tokendir = .*|directories.tokendir = $T/rehearsal/tokens|" \
			"$SOFTHSM2_CONF" >"$T/rehearsal/softhsm2.conf"
		SOFTHSM2_CONF=$T/rehearsal/softhsm2.conf CUSTODY_STORE=sqlite:$T/rehearsal/custody.db "$@"
		rc=$?
	fi
	return $rc
}

# token_objects — a checksum per object of the token, byte for byte; the
# token's own records are left out (a failed login changes their counters).
token_objects() {
	object_files | tr '\n' '\0' | xargs -0r sha256sum
}
# token_state — a fingerprint of the token's objects alone (for commands
# that write the store by design, as sync writes its reports).
token_state() {
	token_objects | sha256sum | cut -d' ' -f1
}
# state — a fingerprint of the token's objects and the store's rows: equal
# before and after means nothing was changed.
state() {
	{
		token_objects
		if [ -f "$T/custody.db" ]; then
			sqlite3 "$T/custody.db" .dump 2>/dev/null
		fi
	} | sha256sum | cut -d' ' -f1
}
# count_objects — how many objects the token holds, besides the KEK that
# tags the rows of a store without a cluster (made by the first command
# that writes the store, and recorded there).
count_objects() {
	local n kek=0
	n=$(object_files | wc -l)
	if [ -f "$T/custody.db" ]; then
		kek=$(sqlite3 "$T/custody.db" "select count(*) from cluster_meta where name = 'tag_kek_kcv'" 2>/dev/null || echo 0)
	fi
	echo $((n - kek))
}

# token_can WHAT — whether the test token can: ec (generate and sign with
# EC keys), ec-sign (sign with imported EC keys), cluster (be a cluster
# member: kek create, node join, --replicable), pss (RSA-PSS).  Asked of
# the token through `custody token`, once per script.
token_can() {
	if [ ! -s "$T/token-caps.json" ]; then
		"$CUSTODY_BIN" token -o json >"$T/token-caps.json" 2>/dev/null ||
			{ echo "Bail out! custody token cannot describe the test token"; exit 1; }
	fi
	case $1 in
	ec) jq -e '.ec.generate and .ec.sign' "$T/token-caps.json" >/dev/null ;;
	ec-sign) jq -e '.ec.sign' "$T/token-caps.json" >/dev/null ;;
	cluster) jq -e '.cluster_member' "$T/token-caps.json" >/dev/null ;;
	pss) jq -e '.rsa_pss' "$T/token-caps.json" >/dev/null ;;
	*) echo "Bail out! token_can: unknown capability $1"; exit 1 ;;
	esac
}
# refused_up_front WHAT MESSAGE [--file PATH] COMMAND... — what the token
# lacks is refused up front: COMMAND (run ..., or a function that sets out,
# err and rc as run does) exits 1 with MESSAGE the one line on stderr and
# nothing on stdout, the token and the store as they were (and no PATH).
refused_up_front() {
	local what=$1 msg=$2 file="" before
	shift 2
	if [ "$1" = --file ]; then
		file=$2
		shift 2
	fi
	before=$(state)
	"$@"
	if [ "$rc" -ne 1 ]; then
		not_ok "$what: exit 1" "exit was $rc" "stderr: $err"
	elif [ "$err" != "$msg" ]; then
		not_ok "$what: the one line \"$msg\"" "stderr: $err"
	elif [ -n "$out" ]; then
		not_ok "$what: nothing on stdout" "stdout: $out"
	elif [ "$(state)" != "$before" ]; then
		not_ok "$what: token and store unchanged"
	elif [ -n "$file" ] && [ -e "$file" ]; then
		not_ok "$what: no file $file"
	else
		ok "$what: refused (exit 1, \"$msg\"), token and store unchanged"
	fi
}
# token_label — the test token's label (as custody's messages name it).
token_label() {
	printf '%s\n' "$CUSTODY_TOKEN"
}

# only_softhsm WHAT — skips the script on openCryptoki, which has one
# software token per machine, when the test needs WHAT.
only_softhsm() {
	if [ "$CUSTODY_TEST_TOKEN" = opencryptoki ]; then
		echo "1..0 # SKIP openCryptoki has one software token, this test needs $1"
		exit 0
	fi
}

# --- making test certificates (keys never touch the disk in clear) ---

# ca_issue CSR OUT — the certificate a test CA ($T/ca.pem, made at the first
# call, its key encrypted under $CA_PASSWORD) issues for the request CSR,
# valid 120 days with the request's extensions, into OUT; prints its SHA-1
# thumbprint.
ca_issue() {
	export CA_PASSWORD=${CA_PASSWORD:-ca-password-for-tests}
	if [ ! -f "$T/ca.pem" ]; then
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 \
			-pass env:CA_PASSWORD -out "$T/ca.key" 2>/dev/null
		openssl req -x509 -new -key "$T/ca.key" -passin env:CA_PASSWORD \
			-subj "/CN=custody test CA" -days 400 -out "$T/ca.pem" 2>/dev/null
	fi
	openssl x509 -req -in "$1" -CA "$T/ca.pem" -CAkey "$T/ca.key" -passin env:CA_PASSWORD \
		-copy_extensions copy -days 120 -set_serial "0x$(openssl rand -hex 8)" \
		-out "$2" 2>/dev/null
	openssl x509 -in "$2" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g'
}

# make_p12 NAME CN DAYS [KEYSPEC] [PASSWORD-ENV] — $T/NAME.p12 (encrypted
# under the password in the named environment variable, or without one).
make_p12() {
	local name=$1 cn=$2 days=$3 key=${4:-rsa:2048} penv=${5:-}
	local newkey=(-newkey "$key")
	case $key in
	ec:*) newkey=(-newkey ec -pkeyopt "ec_paramgen_curve:${key#ec:}") ;;
	esac
	if [ -n "$penv" ]; then
		openssl req -x509 "${newkey[@]}" -noenc -keyout - -out - -subj "/O=custody test/CN=$cn" \
			-addext "subjectAltName=DNS:$cn" -days "$days" 2>/dev/null |
			openssl pkcs12 -export -name "$cn" -passout "env:$penv" -out "$T/$name.p12"
	else
		openssl req -x509 "${newkey[@]}" -noenc -keyout - -out - -subj "/O=custody test/CN=$cn" \
			-addext "subjectAltName=DNS:$cn" -days "$days" 2>/dev/null |
			openssl pkcs12 -export -name "$cn" -passout pass: -out "$T/$name.p12"
	fi
}

# thumbprint_of_p12 NAME PASSWORD-ENV — SHA-1 of the certificate, as openssl sees it.
thumbprint_of_p12() {
	openssl pkcs12 -in "$T/$1.p12" -passin "env:${2:-EMPTY_PASSWORD}" -nokeys -clcerts 2>/dev/null |
		openssl x509 -noout -fingerprint -sha1 | sed 's/.*=//; s/://g'
}
export EMPTY_PASSWORD=""

# setup_tokens LABEL... — one SoftHSM token per label in $T (one token
# directory, one user PIN and one SO PIN for all), their environment in
# $T/LABEL.env, and one SQLite store; the first token's environment is
# exported.  `custody --token LABEL` (CUSTODY_TOKEN) picks another.
setup_tokens() {
	local n
	only_softhsm "several tokens"
	mkdir -p "$T/lock"
	export CUSTODY_LOCK_DIR="$T/lock"
	for n in "$@"; do
		"${TOP_SRCDIR:?}/scripts/softhsm-token.sh" "$T" "$n" >"$T/$n.env" ||
			{ echo "Bail out! cannot initialise SoftHSM token $n"; exit 1; }
	done
	eval "$(cat "$T/$1.env")"
	unset CUSTODY_SO_PIN_SOURCE
	export CUSTODY_STORE="sqlite:$T/custody.db"
	export CUSTODY_CONFIG=""
}

# --- cluster nodes (tests/cluster, tests/bench): one token each ---

# setup_node NAME STORE-URL — node NAME with a SoftHSM token of its own in
# $T/NAME (its own SOFTHSM2_CONF and lock directory, as on a machine of
# its own) on the shared store; its environment goes to $T/NAME/env, read
# by `on` and `node_env`.
setup_node() {
	only_softhsm "a token per node"
	softhsm_beside "$@"
}

# softhsm_beside NAME STORE-URL — a SoftHSM token NAME of its own in
# $T/NAME (its own SOFTHSM2_CONF, PINs and lock directory) beside the test
# token, on either test token: a second token where the test token is
# openCryptoki's one (an attacker's token, with a store of its own).  Its
# environment goes to $T/NAME/env, as setup_node's: `on NAME` and
# `node_env NAME` run there.
softhsm_beside() {
	local name=$1 store=$2 exports
	mkdir -p "$T/$name/lock"
	exports=$("${TOP_SRCDIR:?}/scripts/softhsm-token.sh" "$T/$name" "$name") ||
		{ echo "Bail out! cannot initialise the SoftHSM token $name"; exit 1; }
	{
		echo "$exports"
		printf 'export CUSTODY_NODE=%q\n' "$name"
		printf 'export CUSTODY_STORE=%q\n' "$store"
		printf 'export CUSTODY_LOCK_DIR=%q\n' "$T/$name/lock"
		echo 'export CUSTODY_CONFIG=""'
	} >"$T/$name/env"
}

# on NAME ARGS... — runs custody as node NAME, leaving $out, $err and $rc
# (standard input passes through: with `shopt -s lastpipe`, a pipe into
# `on` keeps them).
on() {
	local name=$1
	shift
	out=$(. "$T/$name/env" && "$CUSTODY_BIN" "$@" 2>"$T/stderr")
	rc=$?
	err=$(cat "$T/stderr")
}

# enroll_fp — the transport key fingerprint that the node enroll just run
# printed (in $err), for node admit --fingerprint.
enroll_fp() {
	sed -n 's/.*SHA-256 fingerprint \([0-9A-F:]*\).*/\1/p' <<<"$err" | head -1
}

# node_env NAME COMMAND... — runs any command in node NAME's environment.
node_env() {
	local name=$1
	shift
	(. "$T/$name/env" && "$@")
}

# --- openssl on loopback (the engine's and the provider's tests) ---

# osl ARGS... — runs openssl, leaving $out, $err and $rc (as run does).
osl() {
	out=$(openssl "$@" 2>"$T/stderr")
	rc=$?
	err=$(cat "$T/stderr")
}
pubkey_of() { openssl x509 -in "$1" -pubkey -noout; }
verifies() { # PUBKEY-PEM SIGNATURE [PKEYUTL-OPTIONS...] — the signature of $T/digest verifies
	openssl pkeyutl -verify -pubin -inkey "$1" -in "$T/digest" -sigfile "$2" "${@:3}" >/dev/null 2>&1
}
self_signed_verifies() { openssl verify -CAfile "$1" "$1" >/dev/null 2>&1; }
csr_verifies() { openssl req -in "$1" -verify -noout >/dev/null 2>&1; }
# free_port — a loopback TCP port nothing listens on.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
agent_pid=""
# agent_start CONF SOCK — `custody -c CONF agent --foreground` in the
# background ($agent_pid, its output added to $T/agent.log), once it
# answers on SOCK (at most 10 s); 1 when it does not.
agent_start() {
	local conf=$1 sock=$2 i
	"$CUSTODY_BIN" -c "$conf" agent --foreground >>"$T/agent.log" 2>&1 &
	agent_pid=$!
	for i in $(seq 1 100); do
		[ -S "$sock" ] && "$CUSTODY_BIN" agent --status --listen "$sock" >/dev/null 2>&1 && return 0
		kill -0 "$agent_pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
agent_stop() {
	[ -n "$agent_pid" ] || return 0
	kill "$agent_pid" 2>/dev/null
	wait "$agent_pid" 2>/dev/null
	agent_pid=""
}
server_pid=""
stop_server() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null
		wait "$server_pid" 2>/dev/null
		server_pid=""
	fi
}
# start_tls_server [env ENV-ARGS... --] S_SERVER-OPTIONS... — `openssl
# s_server` with these options (its key and certificate; run under env
# with ENV-ARGS when given) on a free loopback port ($port), answering
# with its -www page, in the background ($server_pid, its output in
# $T/server.log); waits (at most 10 s) until it accepts.
start_tls_server() {
	local pre=()
	if [ "${1:-}" = env ]; then
		while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
			pre+=("$1")
			shift
		done
		shift
	fi
	port=$(free_port)
	"${pre[@]}" openssl s_server "$@" -accept "127.0.0.1:$port" -www \
		>"$T/server.log" 2>&1 </dev/null &
	server_pid=$!
	for _ in $(seq 100); do
		if grep -q '^ACCEPT' "$T/server.log" 2>/dev/null; then return 0; fi
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}
# handshake CAFILE [S_CLIENT-OPTIONS...] — one TLS handshake with the
# server on $port (10 s at most), verifying it with CAFILE; $out holds
# s_client's -brief lines (Protocol version, Signature type, ...).
handshake() {
	local ca=$1
	shift
	out=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$port" -brief \
		-verify_return_error -CAfile "$ca" "$@" 2>&1)
	rc=$?
}
