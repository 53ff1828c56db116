# lib.sh — sourced by the CLI tests (tests/token/cli_*.sh).
#
# Each test script gets its own throwaway SoftHSM token directory, store
# and lock directory under one temporary directory, removed on exit; it
# reports in TAP (one "ok N - ..." line per check).  PINs live in files
# (pin-source file:), never on a command line.  Plaintext test keys reach
# custody through pipes only.
set -u

: "${CUSTODY_BIN:?CUSTODY_BIN must name the custody binary}"
: "${SOFTHSM_MODULE:=/usr/lib/softhsm/libsofthsm2.so}"

T=$(mktemp -d "${TMPDIR:-/tmp}/custody-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
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
	for line in "$@"; do printf '# %s\n' "$line"; done
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
	exports=$("${TOP_SRCDIR:?}/scripts/softhsm-token.sh" "$T" "$label") ||
		{ echo "Bail out! cannot initialise a SoftHSM token"; exit 1; }
	eval "$exports"
	export CUSTODY_STORE="sqlite:$T/custody.db"
	export CUSTODY_NODE=node1
	export CUSTODY_CONFIG=""
	unset CUSTODY_SO_PIN_SOURCE
}

# token_objects — a checksum per object of the tokens in $T/tokens, byte
# for byte (SoftHSM keeps one file per object); the tokens' own flags files
# are left out (a failed login changes their counters).
token_objects() {
	find "$T/tokens" -type f -name '*.object' ! -name 'token.object' -print0 |
		sort -z | xargs -0r sha256sum
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
	n=$(find "$T/tokens" -type f -name '*.object' ! -name 'token.object' | wc -l)
	if [ -f "$T/custody.db" ]; then
		kek=$(sqlite3 "$T/custody.db" "select count(*) from cluster_meta where name = 'tag_kek_kcv'" 2>/dev/null || echo 0)
	fi
	echo $((n - kek))
}

# --- making test certificates (keys never touch the disk in clear) ---

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
	local name=$1 store=$2 exports
	mkdir -p "$T/$name/lock"
	exports=$("${TOP_SRCDIR:?}/scripts/softhsm-token.sh" "$T/$name" "$name") ||
		{ echo "Bail out! cannot initialise the SoftHSM token of $name"; exit 1; }
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
