#!/usr/bin/env bash
# run-bench.sh — custody's signing benchmarks with their baselines.
#
# Usage:  make bench                     (in a configured build directory)
#    or:  CUSTODY_BIN=BUILD/custody BENCH_BINDIR=BUILD/tests/bench \
#         bash SRC/tests/bench/run-bench.sh
#
# Makes one throwaway SoftHSM token (scripts/softhsm-token.sh), imports an
# RSA-2048 and an EC P-256 key + certificate with `custody import` (the key
# goes from `openssl req` to custody through a pipe, never into a file) as
# the custom types BenchRSA and BenchEC, then measures, all in this run and
# on this token, in signatures per second:
#
#   openssl_memory           OpenSSL, key in memory: the software ceiling
#   raw                      C_SignInit/C_Sign loop, one logged-in session: the baseline
#   raw_2threads             the same on 2 threads (extra: what 2 threads can give here)
#   library                  the custody signer, 1 thread       (slot: bench_library.c)
#   library_2threads         the custody signer, 2 threads      (slot: bench_library.c)
#   provider                 EVP_DigestSign through the provider custody (providers/custody.so,
#                            the key loaded with OSSL_STORE from custody:TYPE)
#   engine                   EVP_DigestSign through engines/custody.so (while the ENGINE API exists)
#   cli_per_process          one `custody sign` process per signature        (slot)
#   raw_per_process          one raw_sign_once process per signature: the floor
#   pkcs11_tool_per_process  one `pkcs11-tool --sign` process per signature
#   cli_per_process_agent    one `custody sign` process per signature through the agent
#                            (CUSTODY_AGENT: the launcher's own path, no libcrypto)
#   agent                    one client signing in a loop through the agent (bench_agent.c)
#   agent_8clients           8 such clients at once, each its own connection
#   raw_over_socket          the raw loop in another process, asked over a Unix socket (a
#                            thread there per client, blocking reads): any agent's floor here
#   raw_over_socket_8clients the same with 8 clients at once
#
# The agent paths sign through one `custody agent --foreground` on the
# bench token, started here (its allow list: this user, for both types)
# and stopped at the end; they are n/a when custody has no agent command.
#
# Every path is checked once (its signature verifies with the certificate)
# before it is timed.  The machine is shared and its load drifts, so the
# paths of one key kind are measured in BENCH_ROUNDS interleaved rounds
# (raw, library, engine, ... raw, library, engine, ...); a path's rate is
# all its signatures over all its time, and the table shows how far the
# rounds spread.  It prints the table with the ratios and their targets
# (format-results.py) and writes the JSON results.  A path not built yet
# is null in the JSON and "n/a" in the table; a path that is built but
# fails is null and "FAILED", and the script exits 1 after writing.
#
# Environment: BENCH_SECONDS (2: time per in-process path, over all rounds),
# BENCH_PROCESSES (100: processes per per-process path, over all rounds),
# BENCH_ROUNDS (4), BENCH_PATHS (the paths to measure, by name: all of them
# when unset), BENCH_RESULTS (default: tests/bench/results.json in the
# source tree), SOFTHSM_MODULE, BENCH_ENGINES_DIR (the build's engines/),
# BENCH_PROVIDERS_DIR (the build's providers/).
#
# Filling a slot: library — write the three signer_* functions of
# bench_library.c; engine — nothing, it runs when the build has
# engines/custody.so (configure builds it while OpenSSL has the ENGINE
# API); provider — the same with providers/custody.so; cli — nothing, it runs once
# `custody sign --help` exits 0.  See path_command below.
set -u -o pipefail

: "${CUSTODY_BIN:?CUSTODY_BIN must name the custody binary}"
: "${BENCH_BINDIR:?BENCH_BINDIR must name the directory of the bench programs}"
here=$(cd "$(dirname "$0")" && pwd)
TOP_SRCDIR=${TOP_SRCDIR:-$(cd "$here/../.." && pwd)}
seconds=${BENCH_SECONDS:-2}
processes=${BENCH_PROCESSES:-100}
rounds=${BENCH_ROUNDS:-4}
results=${BENCH_RESULTS:-$TOP_SRCDIR/tests/bench/results.json}
engines_dir=${BENCH_ENGINES_DIR:-$(dirname "$CUSTODY_BIN")/engines}
providers_dir=${BENCH_PROVIDERS_DIR:-$(dirname "$CUSTODY_BIN")/providers}
kinds=(rsa2048 ec_p256)
paths=(openssl_memory raw raw_2threads library library_2threads provider engine
	cli_per_process raw_per_process pkcs11_tool_per_process
	cli_per_process_agent agent agent_8clients raw_over_socket raw_over_socket_8clients)
if [ -n "${BENCH_PATHS:-}" ]; then
	read -r -a chosen <<<"$BENCH_PATHS"
	for path in "${chosen[@]}"; do
		[[ " ${paths[*]} " == *" $path "* ]] || die "BENCH_PATHS: no path $path (paths: ${paths[*]})"
	done
	paths=("${chosen[@]}")
fi

die() {
	echo "run-bench: $*" >&2
	exit 1
}

for tool in openssl python3 pkcs11-tool; do
	command -v "$tool" >/dev/null || die "$tool is not installed"
done
for prog in bench_raw raw_sign_once bench_spawn; do
	[ -x "$BENCH_BINDIR/$prog" ] || die "$BENCH_BINDIR/$prog is not built: run make bench"
done
[[ $rounds =~ ^[1-9][0-9]?$ ]] || die "BENCH_ROUNDS must be 1 to 99"
if ! [[ $processes =~ ^[1-9][0-9]*$ ]] || [ "$processes" -lt "$rounds" ]; then
	die "BENCH_PROCESSES must be a whole number of at least BENCH_ROUNDS"
fi
round_seconds=$(awk -v s="$seconds" -v r="$rounds" 'BEGIN { if (s + 0 <= 0) exit 1; print s / r }') ||
	die "BENCH_SECONDS must be a positive number"
round_processes=$((processes / rounds))

T=$(mktemp -d "${TMPDIR:-/tmp}/custody-bench.XXXXXX")
agent_pid=""
stop_agent() {
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
	agent_pid=""
}
trap 'stop_agent; rm -rf "$T"' EXIT
umask 077
mkdir -p "$T/log" "$T/lock"

# --------------------------------------------------------------- the token
export CUSTODY_LOCK_DIR=$T/lock
exports=$("$TOP_SRCDIR/scripts/softhsm-token.sh" "$T/token" bench) ||
	die "cannot make the throwaway SoftHSM token"
eval "$exports"
unset CUSTODY_SO_PIN_SOURCE
# BenchRSA and BenchEC are custom types: a config that declares them
# (custody refuses to assign an undeclared type), read by every path.
printf '[types]\ncustom = BenchRSA BenchEC\n' >"$T/custody.conf"
# The store in a directory of its own, as /var/lib/custody is: a signer
# that has signed a while watches that directory for changes (inotify),
# and asks the database at each signature for a second after any file
# there changed; this script's own files change between measurements.
mkdir -p "$T/store"
export CUSTODY_STORE="sqlite:$T/store/custody.db" CUSTODY_NODE=bench CUSTODY_CONFIG=$T/custody.conf
module=$CUSTODY_MODULE
token=$CUSTODY_TOKEN
pin_file=$T/token/user.pin

# custody as installed: the libtool wrapper script of an uninstalled build
# would add a shell start to every process, which is not custody's cost.
custody=$CUSTODY_BIN
custody_env=()
if grep -q 'temporary wrapper script for' "$CUSTODY_BIN"; then
	custody=$(dirname "$CUSTODY_BIN")/.libs/$(basename "$CUSTODY_BIN")
	custody_env=(env "LD_LIBRARY_PATH=$(dirname "$CUSTODY_BIN")/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
	[ -x "$custody" ] || die "cannot find the binary behind the libtool wrapper $CUSTODY_BIN"
fi

declare -A type=([rsa2048]=BenchRSA [ec_p256]=BenchEC)
declare -A key_id
for k in "${kinds[@]}"; do
	newkey=(-newkey rsa:2048)
	[ "$k" = ec_p256 ] && newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
	# Key and certificate are made in memory before custody starts:
	# custody takes "now" when it starts, and refuses a certificate made
	# after that ("not valid until" the next second) while it waits on a
	# pipe.  The key then reaches custody through a pipe, never a file.
	pem=$(openssl req -x509 "${newkey[@]}" -noenc -keyout - -out - -days 30 \
		-subj "/O=custody bench/CN=bench-$k.custody.test" 2>/dev/null) ||
		die "cannot make the $k key"
	printf '%s\n' "$pem" |
		"$CUSTODY_BIN" -q import --path /dev/stdin -t "${type[$k]}" >/dev/null 2>"$T/log/import.$k" ||
		die "cannot import the $k key: $(cat "$T/log/import.$k")"
	unset pem
	if ! "$CUSTODY_BIN" get -t "${type[$k]}" -o pem >"$T/$k.crt" 2>>"$T/log/import.$k" ||
		! openssl x509 -in "$T/$k.crt" -pubkey -noout >"$T/$k.pub"; then
		die "cannot read back the $k certificate: $(cat "$T/log/import.$k")"
	fi
	key_id[$k]=$("$CUSTODY_BIN" get -t "${type[$k]}" -o json |
		python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["current"]["key_id"])') ||
		die "cannot read the key id of the $k key"
done

# The agent: `custody agent --foreground` on this token, its PIN from the
# token's PIN source like every path; [agent] listen and the allow lists in
# the configuration every path reads (no path but the agent paths is told
# of the socket: CUSTODY_AGENT is set for those alone).
agent_sock=""
if "$CUSTODY_BIN" agent --help >/dev/null 2>&1; then
	printf '[agent]\nlisten = %s\n[allow BenchRSA]\nusers = %s\n[allow BenchEC]\nusers = %s\n' \
		"$T/agent.sock" "$(id -un)" "$(id -un)" >>"$T/custody.conf"
	"${custody_env[@]}" "$custody" agent --foreground >"$T/log/agent" 2>&1 &
	agent_pid=$!
	for _ in $(seq 1 100); do
		if "${custody_env[@]}" "$custody" agent --status --listen "$T/agent.sock" >/dev/null 2>&1; then
			agent_sock=$T/agent.sock
			break
		fi
		kill -0 "$agent_pid" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$agent_sock" ] || die "custody agent did not start: $(cat "$T/log/agent")"
fi

# What the per-process signers sign, and its SHA-256 (pkcs11-tool's -m
# ECDSA signs its input as it is: SoftHSM has no CKM_ECDSA_SHA256).
head -c 64 /dev/urandom >"$T/msg.bin"
openssl dgst -sha256 -binary "$T/msg.bin" >"$T/msg.sha256"

# ------------------------------------------------------------ the paths
# The engine's name for a key: the certificate type (custody(1), OPENSSL ENGINE).  If the
# engine wants a pkcs11: URI instead, use `custody get -t TYPE -o uri`.
engine_key() { echo "${type[$1]}"; }

engine_dir=""
for d in "$engines_dir/.libs" "$engines_dir"; do
	if [ -f "$d/custody.so" ] && [ -x "$BENCH_BINDIR/bench_engine" ]; then
		engine_dir=$d
		break
	fi
done
# The provider's name for a key: the URI custody:TYPE (custody-provider(7)).
provider_dir=""
for d in "$providers_dir/.libs" "$providers_dir"; do
	if [ -f "$d/custody.so" ] && [ -x "$BENCH_BINDIR/bench_provider" ]; then
		provider_dir=$d
		break
	fi
done

# pkcs11-tool takes the PIN as --pin VALUE or --pin env:VAR (OpenSC's env:
# form, checked on this machine: a wrong value in the variable gives
# CKR_PIN_INCORRECT).  The env: form keeps the PIN off every argv; the
# variable is set for the pkcs11-tool runs only, from the throwaway
# token's PIN file (see run_command).
pkcs11_tool_args() { # KIND — sets P11 to pkcs11-tool's arguments (no --output-file)
	local k=$1
	if [ "$k" = rsa2048 ]; then
		P11=(-m SHA256-RSA-PKCS --input-file "$T/msg.bin")
	else
		P11=(-m ECDSA --input-file "$T/msg.sha256" --signature-format openssl)
	fi
	P11=(pkcs11-tool --module "$module" --token-label "$token" --login
		--pin env:BENCH_PKCS11_PIN --sign --id "${key_id[$k]}" "${P11[@]}")
}

# path_command KIND PATH — sets CMD to the command that measures PATH for
# one round and prints "RATE COUNT SECONDS"; returns 1 when PATH is not
# built (n/a).  A new path is one more case here and in `paths`.
path_command() {
	local k=$1 path=$2
	local raw=(--module "$module" --token "$token" --pin-file "$pin_file" --id "${key_id[$k]}")
	local spawn=("$BENCH_BINDIR/bench_spawn" --label "$path $k" --count "$round_processes" --)
	case $path in
	openssl_memory)
		CMD=("$BENCH_BINDIR/bench_raw" --mode openssl --kind "$k" --seconds "$round_seconds") ;;
	raw)
		CMD=("$BENCH_BINDIR/bench_raw" --mode raw --kind "$k" "${raw[@]}" --seconds "$round_seconds") ;;
	raw_2threads)
		CMD=("$BENCH_BINDIR/bench_raw" --mode raw --kind "$k" "${raw[@]}" --threads 2
			--seconds "$round_seconds") ;;
	raw_over_socket | raw_over_socket_8clients)
		CMD=("$BENCH_BINDIR/bench_raw" --mode socket --kind "$k" "${raw[@]}"
			--threads "$([ "$path" = raw_over_socket ] && echo 1 || echo 8)"
			--seconds "$round_seconds") ;;
	library | library_2threads) # SLOT: bench_library exits 77 until it is written
		[ -x "$BENCH_BINDIR/bench_library" ] || return 1
		CMD=("$BENCH_BINDIR/bench_library" --kind "$k" --type "${type[$k]}" --cert "$T/$k.crt"
			--threads "$([ "$path" = library ] && echo 1 || echo 2)" --seconds "$round_seconds") ;;
	provider) # runs when the build has providers/custody.so
		[ -n "$provider_dir" ] || return 1
		CMD=(env "OPENSSL_MODULES=$provider_dir" "$BENCH_BINDIR/bench_provider" --kind "$k"
			--uri "custody:${type[$k]}" --cert "$T/$k.crt" --seconds "$round_seconds") ;;
	engine) # runs when the build has engines/custody.so
		[ -n "$engine_dir" ] || return 1
		CMD=(env "OPENSSL_ENGINES=$engine_dir" "$BENCH_BINDIR/bench_engine" --kind "$k"
			--key "$(engine_key "$k")" --cert "$T/$k.crt" --seconds "$round_seconds") ;;
	cli_per_process) # SLOT: runs once `custody sign --help` exits 0
		"${custody_env[@]}" "$custody" sign --help >/dev/null 2>&1 || return 1
		CMD=("${custody_env[@]}" "${spawn[@]}" "$custody" sign -t "${type[$k]}" --in "$T/msg.bin") ;;
	raw_per_process)
		CMD=("${spawn[@]}" "$BENCH_BINDIR/raw_sign_once" "${raw[@]}" --kind "$k" --in "$T/msg.bin") ;;
	pkcs11_tool_per_process)
		pkcs11_tool_args "$k"
		CMD=("${spawn[@]}" "${P11[@]}" --output-file "$T/$k.p11.sig") ;;
	cli_per_process_agent) # the launcher alone: CUSTODY_AGENT is set
		[ -n "$agent_sock" ] || return 1
		CMD=(env "CUSTODY_AGENT=$agent_sock" "${custody_env[@]}" "${spawn[@]}" "$custody"
			sign -t "${type[$k]}" --in "$T/msg.bin") ;;
	agent | agent_8clients)
		[ -n "$agent_sock" ] && [ -x "$BENCH_BINDIR/bench_agent" ] || return 1
		CMD=(env "CUSTODY_AGENT=$agent_sock" "$BENCH_BINDIR/bench_agent" --kind "$k"
			--type "${type[$k]}" --cert "$T/$k.crt"
			--threads "$([ "$path" = agent ] && echo 1 || echo 8)" --seconds "$round_seconds") ;;
	*)
		die "unknown path $path" ;;
	esac
	return 0
}

# check_command KIND PATH — sets CMD to a command that writes one signature
# of msg.bin on stdout (per-process paths only: in-process programs verify
# their own last signature).
check_command() {
	local k=$1 path=$2
	case $path in
	cli_per_process)
		CMD=("${custody_env[@]}" "$custody" sign -t "${type[$k]}" --in "$T/msg.bin") ;;
	cli_per_process_agent)
		CMD=(env "CUSTODY_AGENT=$agent_sock" "${custody_env[@]}" "$custody"
			sign -t "${type[$k]}" --in "$T/msg.bin") ;;
	raw_per_process)
		CMD=("$BENCH_BINDIR/raw_sign_once" --module "$module" --token "$token"
			--pin-file "$pin_file" --id "${key_id[$k]}" --kind "$k" --in "$T/msg.bin") ;;
	pkcs11_tool_per_process)
		pkcs11_tool_args "$k"
		CMD=("${P11[@]}" --output-file /dev/stdout) ;;
	*)
		CMD=() ;;
	esac
}

# run_command PATH LOG — runs CMD, stdout to this function's stdout.
run_command() {
	local path=$1 log=$2
	if [ "$path" = pkcs11_tool_per_process ]; then
		BENCH_PKCS11_PIN=$(<"$pin_file") "${CMD[@]}" 2>>"$log"
	else
		"${CMD[@]}" 2>>"$log"
	fi
}

# ------------------------------------------------------------- measuring
: >"$T/results.tsv"
declare -A state	# "" (measuring), n/a, FAILED
failures=0

record() { # KIND PATH ROUND VALUE... — one line for format-results.py
	local IFS=$'\t'
	echo "$*" >>"$T/results.tsv"
}
fail() { # KIND PATH LOG WHY
	state[$1.$2]=FAILED
	record "$1" "$2" 0 FAILED
	failures=$((failures + 1))
	echo "run-bench: $1 $2 FAILED: $4" >&2
	sed 's/^/    /' "$3" >&2
}

# Before timing: is the path built, and does its signature verify?
prepare() { # KIND PATH
	local k=$1 path=$2 log=$T/log/$1.$2
	: >"$log"
	if ! path_command "$k" "$path"; then
		state[$k.$path]=n/a
		record "$k" "$path" 0 n/a
		return
	fi
	state[$k.$path]=""
	check_command "$k" "$path"
	[ ${#CMD[@]} -gt 0 ] || return
	if ! run_command "$path" "$log" >"$T/$k.$path.sig"; then
		fail "$k" "$path" "$log" "its check signature failed"
	elif ! openssl dgst -sha256 -verify "$T/$k.pub" -signature "$T/$k.$path.sig" \
		"$T/msg.bin" >/dev/null 2>>"$log"; then
		fail "$k" "$path" "$log" "its signature does not verify with the certificate"
	fi
}

measure() { # KIND PATH ROUND
	local k=$1 path=$2 round=$3 log=$T/log/$1.$2 out rc rate count secs
	[ -z "${state[$k.$path]}" ] || return
	path_command "$k" "$path" || return
	cpu_before=$(agent_cpu_ticks)
	out=$(run_command "$path" "$log")
	rc=$?
	cpu_ticks=$(($(agent_cpu_ticks) - cpu_before))
	if [ "$rc" -eq 77 ] && [ "$round" -eq 1 ] && [[ $path == library* ]]; then
		state[$k.$path]=n/a	# bench_library's slot is not written yet
		record "$k" "$path" 0 n/a
	elif [ "$rc" -eq 0 ] && [[ $out =~ ^[0-9.]+\ [0-9]+\ [0-9.]+$ ]]; then
		read -r rate count secs <<<"$out"
		record "$k" "$path" "$round" "$rate" "$count" "$secs"
		if [[ $path == *agent* ]]; then
			agent_cpu[$k.$path]=$((${agent_cpu[$k.$path]:-0} + cpu_ticks))
			agent_count[$k.$path]=$((${agent_count[$k.$path]:-0} + count))
		fi
	else
		fail "$k" "$path" "$log" "exit status $rc in round $round"
	fi
}

# The agent's CPU time (user + system, in clock ticks) so far: what a
# signature through it costs the agent, besides what it costs the client.
declare -A agent_cpu agent_count
agent_cpu_ticks() {
	local stat
	if [ -n "$agent_pid" ] && stat=$(cat "/proc/$agent_pid/stat" 2>/dev/null); then
		stat=${stat##*) }
		read -r -a f <<<"$stat"
		echo $((f[11] + f[12]))
	else
		echo 0
	fi
}

load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo unknown)
started=$(date +%s)
for k in "${kinds[@]}"; do
	for path in "${paths[@]}"; do
		prepare "$k" "$path"
	done
	for ((round = 1; round <= rounds; round++)); do
		echo "run-bench: $k round $round of $rounds" >&2
		for path in "${paths[@]}"; do
			measure "$k" "$path" "$round"
		done
	done
done

mkdir -p "$(dirname "$results")"
python3 "$here/format-results.py" --tsv "$T/results.tsv" --json "$results" \
	--seconds "$seconds" --processes "$processes" --rounds "$rounds" \
	--load "$load" --cpus "$(nproc 2>/dev/null || echo '?')" ||
	die "cannot format the results"
hz=$(getconf CLK_TCK)
for key in "${!agent_cpu[@]}"; do
	[ "${agent_count[$key]:-0}" -gt 0 ] &&
		echo "run-bench: ${key/./ }: the agent's CPU $((agent_cpu[$key] * 1000000 / hz / agent_count[$key])) µs a signature" >&2
done
echo "run-bench: $(($(date +%s) - started)) s of measuring; results in $results" >&2
[ "$failures" -eq 0 ] || die "$failures path(s) failed (see above)"
