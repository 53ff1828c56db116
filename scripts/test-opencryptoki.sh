#!/usr/bin/env bash
# openCryptoki's software token (slot daemon pkcsslotd) for the tests.
#
#   scripts/test-opencryptoki.sh start [DIR]       # a daemon with a software token slot; idempotent
#   scripts/test-opencryptoki.sh reset LABEL PINDIR # a fresh token labelled LABEL; PINs in
#                                                   # PINDIR/user.pin and PINDIR/so.pin (0600)
#   scripts/test-opencryptoki.sh env [PINDIR]       # prints the export lines a test evals
#   scripts/test-opencryptoki.sh stop [DIR]         # stops what start started, puts the config back
#   scripts/test-opencryptoki.sh status [DIR]       # exit 0 when a software token is there
#   scripts/test-opencryptoki.sh lock               # prints the path of the turn lock
#
# openCryptoki 3.8.1 has one daemon per machine: its configuration path
# (/etc/opencryptoki/opencryptoki.conf), its token directories
# (/var/lib/opencryptoki/TOKNAME) and the shared memory through which the
# library finds the slots are compiled in; neither pkcsslotd nor the
# library takes another path from the command line or the environment
# (PKCS_APP_STORE, read by the token library, leaves the token's data
# store unset in 3.8.1).  So there is one software token for the machine,
# and tests take turns on it: whatever uses the token holds the lock
# (flock on the file `lock` prints; CUSTODY_TEST_OCK_LOCK) meanwhile, and
# tests/token/lib.sh holds it for the whole of a test script.  status,
# env and reset use the token too (pkcsconf initialises it): while tests
# may run, call them with the lock held.
#
# start: when a daemon already runs and offers a software token, it is
# used as it is (and stop leaves it running).  Otherwise start saves the
# machine's configuration in DIR, writes one with the software slot alone
# (slot 3, token directory /var/lib/opencryptoki/custody-test, so the
# machine's own software token is never touched), and starts the daemon;
# stop stops that daemon, removes the token directory and its shared
# memory, and puts the configuration back.  Starting needs root.
#
# reset wipes the software token of the running daemon (its files and its
# shared memory; nothing may use the token meanwhile) and initialises it:
# the factory SO PIN, then random 8-digit SO and user PINs.  pkcsconf reads
# every PIN from its standard input: no PIN is on any command line.
#
# DIR (default $CUSTODY_TEST_OCK_DIR, else /tmp/custody-ock-UID) holds
# what start made: the saved configuration, the daemon's pid, its log.
# Exit status: 0 done, 1 failed, 2 usage, 77 openCryptoki is not installed.
set -euo pipefail

cmd=${1:-}
case $cmd in
start | stop | status) dir=${2:-} ;;
reset) [ $# -eq 3 ] && [ -n "${2// /}" ] && [ -n "$3" ] || cmd=usage ;;
env) [ $# -le 2 ] || cmd=usage ;;
lock) [ $# -eq 1 ] || cmd=usage ;;
*) cmd=usage ;;
esac
if [ "$cmd" = usage ]; then
	echo "usage: $0 start|stop|status [DIR] | reset LABEL PINDIR | env [PINDIR] | lock" >&2
	exit 2
fi
dir=${dir:-${CUSTODY_TEST_OCK_DIR:-${TMPDIR:-/tmp}/custody-ock-$(id -u)}}

conf=/etc/opencryptoki/opencryptoki.conf
statedir=/var/lib/opencryptoki
lockdir=/var/lock/opencryptoki
pidfile=/var/run/pkcsslotd.pid
daemon=/usr/sbin/pkcsslotd
module=${OCK_MODULE:-/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so}
ourslot=3
ourtok=custody-test
factory_so_pin=87654321
lock=${CUSTODY_TEST_OCK_LOCK:-/run/lock/custody-opencryptoki.lock}
[ -d /run/lock ] || lock=${TMPDIR:-/tmp}/custody-opencryptoki.lock

die() {
	echo "test-opencryptoki: $*" >&2
	exit 1
}

# daemon_pid — the pid of the running pkcsslotd, whoever started it.
daemon_pid() {
	local pid=""
	[ -r "$pidfile" ] && pid=$(head -1 "$pidfile" 2>/dev/null || true)
	if [ -z "$pid" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != pkcsslotd ]; then
		pid=$(pidof -s pkcsslotd 2>/dev/null || true)
	fi
	[ -n "$pid" ] && echo "$pid"
}

# sw_slot — the slot of the software token ("IBM SoftTok"), from the daemon
# (awk reads all of pkcsconf's output: no SIGPIPE under pipefail).
sw_slot() {
	pkcsconf -t 2>/dev/null | awk '
		/^Token #[0-9]+ Info:/ { n = $2; sub(/^#/, "", n) }
		!found && /^[ \t]*Model: IBM SoftTok/ { print n; found = 1 }
		END { exit !found }'
}

# conf_tokname FILE SLOT — the tokname of SLOT in an opencryptoki.conf.
conf_tokname() {
	awk -v want="$2" '
		{ sub(/#.*/, ""); gsub(/[{}=]/, " "); for (i = 1; i <= NF; i++) w[++n] = $i }
		END {
			for (i = 1; i <= n; i++) {
				if (w[i] == "slot") { cur = w[++i]; continue }
				if (cur == want && w[i] == "tokname") { print w[i + 1]; exit }
			}
		}' "$1"
}

# tokdir SLOT — the directory of SLOT's token: the one start wrote, else
# what the configuration says (no tokname: the package's swtok).
tokdir() {
	local name=""
	if [ -f "$dir/pid" ] && [ "$(daemon_pid)" = "$(cat "$dir/pid")" ]; then
		name=$ourtok
	elif [ -r "$conf" ]; then
		name=$(conf_tokname "$conf" "$1")
	fi
	echo "$statedir/${name:-swtok}"
}

running() {
	[ -n "$(daemon_pid)" ] && sw_slot >/dev/null
}

# without_inherited_fds COMMAND... — runs COMMAND with only descriptors
# 0, 1 and 2 open.
without_inherited_fds() {
	(
		for fd in /proc/$BASHPID/fd/*; do
			fd=${fd##*/}
			[ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null
		done
		exec "$@"
	)
}

start() {
	local pid
	if running; then
		return 0
	fi
	if pid=$(daemon_pid); then
		die "pkcsslotd (pid $pid) runs without a software token slot: stop it, or add a slot with stdll = libpkcs11_sw.so to $conf"
	fi
	[ "$(id -u)" -eq 0 ] || die "starting pkcsslotd needs root (or start it yourself with a software token slot)"
	getent group pkcs11 >/dev/null || die "no pkcs11 group (reinstall the opencryptoki package)"
	mkdir -p "$dir"
	chmod 0700 "$dir"
	# The machine's configuration, once (a second start keeps the first copy).
	if [ ! -e "$dir/saved.conf" ] && [ ! -e "$dir/no.conf" ]; then
		if [ -e "$conf" ]; then
			cp -p "$conf" "$dir/saved.conf"
		else
			: >"$dir/no.conf"
		fi
	fi
	mkdir -p "$(dirname "$conf")"
	cat >"$conf.custody-test" <<CONF
# Written by custody's scripts/test-opencryptoki.sh for a test run; the
# machine's own configuration is back when the run stops.
version opencryptoki-3.1

slot $ourslot
{
stdll = libpkcs11_sw.so
tokname = $ourtok
}
CONF
	chmod 0644 "$conf.custody-test"
	mv -f "$conf.custody-test" "$conf"
	# pkcsslotd forks into the background once its slots are set up.  It
	# gets no descriptor of ours but its log: one inherited from a caller
	# that holds the turn lock (flock) would keep the lock held for as
	# long as the daemon runs.
	if ! without_inherited_fds "$daemon" >"$dir/log" 2>&1; then
		put_back_conf
		die "pkcsslotd did not start: $(tail -1 "$dir/log")"
	fi
	for _ in $(seq 50); do
		pid=$(daemon_pid) && sw_slot >/dev/null && break
		pid=""
		sleep 0.1
	done
	[ -n "$pid" ] || {
		put_back_conf
		die "pkcsslotd started but offers no software token (log: $dir/log)"
	}
	echo "$pid" >"$dir/pid"
}

put_back_conf() {
	if [ -e "$dir/saved.conf" ]; then
		cp -p "$dir/saved.conf" "$conf"
		rm -f "$dir/saved.conf"
	elif [ -e "$dir/no.conf" ]; then
		rm -f "$conf" "$dir/no.conf"
	fi
}

stop() {
	local pid
	if [ -f "$dir/pid" ]; then
		pid=$(cat "$dir/pid")
		if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = pkcsslotd ]; then
			kill -TERM "$pid" 2>/dev/null || true
			for _ in $(seq 50); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			if kill -0 "$pid" 2>/dev/null; then
				kill -KILL "$pid" 2>/dev/null || true
				sleep 0.2
			fi
			kill -0 "$pid" 2>/dev/null && die "pkcsslotd (pid $pid) did not stop"
		fi
		# What the token of this run left: its files, locks, shared memory.
		rm -rf "${statedir:?}/$ourtok" "${lockdir:?}/$ourtok"
		rm -f "/dev/shm/$(shm_name "$statedir/$ourtok")" "$dir/pid"
	fi
	put_back_conf
	rm -f "$dir/log"
	rmdir "$dir" 2>/dev/null || true
}

# shm_name TOKDIR — the token's shared memory in /dev/shm (the library
# names it after the token directory, slashes made dots).
shm_name() {
	local p=${1#/}
	echo "${p//\//.}"
}

# 8 random decimal digits, unbiased.
new_pin() {
	local pin=""
	while [ ${#pin} -lt 8 ]; do
		pin=$pin$(head -c 64 /dev/urandom | tr -dc 0-9 | head -c $((8 - ${#pin})))
	done
	printf '%s' "$pin"
}

# pkcsconf_in SLOT OPTION LINE... — pkcsconf with its prompts (PINs,
# label) answered on standard input, one LINE each.
pkcsconf_in() {
	local slot=$1 opt=$2 out why
	shift 2
	if ! out=$(printf '%s\n' "$@" | pkcsconf "$opt" -c "$slot" 2>&1); then
		why=$(sed 's/\(Re-e\|E\)nter [^:]*: *//g; /^ *$/d' <<<"$out" | tail -1)
		die "pkcsconf $opt on slot $slot failed: ${why:-no reason given}"
	fi
}

reset() {
	local label=$1 pindir=$2 slot tok so user
	running || die "no software token: run $0 start"
	slot=$(sw_slot)
	tok=$(tokdir "$slot")
	[ -d "$tok" ] || die "no token directory $tok for slot $slot"
	[ -w "$tok" ] || die "cannot write $tok (root or the pkcs11 group)"
	mkdir -p "$pindir"
	umask 077
	so=$(new_pin)
	user=$(new_pin)
	# Nothing of the old token stays: its objects, its PINs and master
	# keys, and the shared memory that caches its object list.
	rm -rf "${tok:?}"/*
	mkdir -m 0770 "$tok/TOK_OBJ"
	chgrp pkcs11 "$tok/TOK_OBJ" 2>/dev/null || true
	rm -f "/dev/shm/$(shm_name "$tok")"
	pkcsconf_in "$slot" -I "$factory_so_pin" "$label"
	pkcsconf_in "$slot" -P "$factory_so_pin" "$so" "$so"
	pkcsconf_in "$slot" -u "$so" "$user" "$user"
	printf '%s' "$so" >"$pindir/so.pin"
	printf '%s' "$user" >"$pindir/user.pin"
	chmod 0600 "$pindir/so.pin" "$pindir/user.pin"
}

env_lines() {
	local pindir=${1:-} slot tok label
	running || die "no software token: run $0 start"
	slot=$(sw_slot)
	tok=$(tokdir "$slot")
	label=$(pkcsconf -t -c "$slot" 2>/dev/null | sed -n 's/^[ \t]*Label: *//p' | sed 's/ *$//' | head -1)
	printf 'export CUSTODY_TEST_OCK_DIR=%q\n' "$dir"
	printf 'export CUSTODY_TEST_OCK_SLOT=%q\n' "$slot"
	printf 'export CUSTODY_TEST_OCK_TOKDIR=%q\n' "$tok"
	printf 'export CUSTODY_TEST_OCK_LOCK=%q\n' "$lock"
	printf 'export CUSTODY_MODULE=%q\n' "$module"
	printf 'export CUSTODY_TOKEN=%q\n' "$label"
	if [ -n "$pindir" ]; then
		pindir=$(cd "$pindir" && pwd)
		printf 'export CUSTODY_PIN_SOURCE=%q\n' "file:$pindir/user.pin"
		printf 'export CUSTODY_SO_PIN_SOURCE=%q\n' "file:$pindir/so.pin"
	fi
}

if [ "$cmd" = lock ]; then
	echo "$lock"
	exit 0
fi
if [ ! -x "$daemon" ] || ! command -v pkcsconf >/dev/null || [ ! -f "$module" ]; then
	[ "$cmd" = stop ] && exit 0
	echo "test-opencryptoki: openCryptoki is not installed (pkcsslotd, pkcsconf, $module)" >&2
	exit 77
fi
case $cmd in
start) start ;;
stop) stop ;;
status)
	if ! running; then
		if pid=$(daemon_pid); then
			echo "test-opencryptoki: pkcsslotd (pid $pid) offers no software token" >&2
		else
			echo "test-opencryptoki: pkcsslotd is not running" >&2
		fi
		exit 1
	fi
	;;
reset) reset "$2" "$3" ;;
env) env_lines "${2:-}" ;;
esac
