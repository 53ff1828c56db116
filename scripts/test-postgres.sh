#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests, on a Unix socket in a
# temporary directory (no TCP), trust authentication on that socket only.
#
#   scripts/test-postgres.sh start [DIR]   # initdb (once) and start; idempotent
#   scripts/test-postgres.sh env [DIR]     # prints: export CUSTODY_TEST_PG_URL=...
#   scripts/test-postgres.sh stop [DIR]    # stops it and removes what start made
#   scripts/test-postgres.sh status [DIR]  # exit 0 when it runs
#
# DIR (default $CUSTODY_TEST_PG_DIR, else /tmp/custody-pg-UID) holds data/,
# sock/ and log; keep it short: a socket path has at most 107 bytes.
# PostgreSQL refuses to run as root: as root the server runs as the
# "postgres" user, and the database user of the tests is root, a plain
# role (not a superuser) owning the test database custody_test.
# CUSTODY_TEST_PG_MAX_CONNECTIONS (default 200) sets the server's
# max_connections (the propagation benchmark's 1,000 simulated nodes).
# Exit status: 0 done, 1 failed, 77 no PostgreSQL server installed.
set -euo pipefail

cmd=${1:-}
dir=${2:-${CUSTODY_TEST_PG_DIR:-${TMPDIR:-/tmp}/custody-pg-$(id -u)}}
db=custody_test
data="$dir/data"
sock="$dir/sock"
log="$dir/log"

die() { echo "test-postgres: $*" >&2; exit 1; }

bindir() {
	local d
	for d in "$(pg_config --bindir 2>/dev/null || true)" \
		$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

# as_server CMD... — runs CMD as the server's user.
as_server() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

running() {
	[ -f "$data/PG_VERSION" ] && as_server "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

start() {
	local owner user
	if running; then
		return 0
	fi
	mkdir -p "$dir"
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 || die "no postgres user (install the postgresql package)"
		owner=postgres
		user=root
	else
		owner=$(id -un)
		user=$owner
	fi
	# The server's user must reach the socket directory and own its data.
	chmod 0755 "$dir"
	mkdir -p "$sock"
	chown "$owner" "$sock"
	chmod 0755 "$sock"
	if [ ! -f "$data/PG_VERSION" ]; then
		rm -rf "$data"
		mkdir -m 0700 "$data"
		chown "$owner" "$data"
		as_server "$bin/initdb" -D "$data" -A trust -U postgres --no-sync \
			-E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; die "initdb failed"; }
	fi
	touch "$log"
	chown "$owner" "$log"
	as_server "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
		-o "-k $sock -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=${CUSTODY_TEST_PG_MAX_CONNECTIONS:-200}" \
		start >/dev/null || { tail -20 "$log" >&2; die "the server did not start"; }
	if [ "$user" != postgres ] &&
		[ "$("$bin/psql" -h "$sock" -U postgres -d postgres -Atc \
			"SELECT count(*) FROM pg_roles WHERE rolname = '$user'")" = 0 ]; then
		"$bin/createuser" -h "$sock" -U postgres "$user" || die "createuser $user failed"
	fi
	if [ "$("$bin/psql" -h "$sock" -U postgres -d postgres -Atc \
		"SELECT count(*) FROM pg_database WHERE datname = '$db'")" = 0 ]; then
		"$bin/createdb" -h "$sock" -U postgres -O "$user" "$db" || die "createdb $db failed"
	fi
}

stop() {
	local pid
	if [ -f "$data/postmaster.pid" ]; then
		as_server "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
		# Still there: no mercy for a test server.
		if [ -f "$data/postmaster.pid" ]; then
			pid=$(head -1 "$data/postmaster.pid")
			if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
				kill -QUIT "$pid" 2>/dev/null || true
				sleep 1
				kill -KILL "$pid" 2>/dev/null || true
			fi
		fi
	fi
	if [ -f "$data/postmaster.pid" ] && pid=$(head -1 "$data/postmaster.pid") &&
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		die "the server (pid $pid) did not stop"
	fi
	rm -rf "$data" "$sock" "$log" "$dir/initdb.log"
	rmdir "$dir" 2>/dev/null || true
}

case $cmd in
start | stop | env | status) ;;
*)
	echo "usage: $0 start|stop|env|status [DIR]" >&2
	exit 2
	;;
esac
if ! bin=$(bindir); then
	[ "$cmd" = stop ] && exit 0
	echo "test-postgres: no PostgreSQL server installed (initdb, pg_ctl)" >&2
	exit 77
fi
case $cmd in
start) start ;;
stop) stop ;;
status) running ;;
env)
	running || die "no server runs in $dir (scripts/test-postgres.sh start $dir)"
	echo "export CUSTODY_TEST_PG_URL='postgresql:///$db?host=$sock'"
	echo "export CUSTODY_TEST_PG_DIR='$dir'"
	;;
esac
