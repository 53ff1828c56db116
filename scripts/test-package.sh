#!/usr/bin/env bash
# The release checks of scripts/test.sh: make distcheck, and the Debian
# packages built, checked by lintian, installed, used and purged.
#
#   scripts/test-package.sh [distcheck|package|all|build]     (default: all)
#
# build: the packages built as package does first, nothing checked (see
#   PACKAGE_PREBUILT below).
# distcheck: `make distcheck` in ./build (configured already), the inner
#   make check running DISTCHECK_TESTS only (default below: the options
#   against the manual, --version and the provider's test), building
#   DISTCHECK_PROGRAMS only of the test programs: the whole
#   suite has run once already in scripts/test.sh; what distcheck adds is
#   that the tarball builds, installs under its prefix and uninstalls.
# package: copies the source tree (git's files) to ./build-deb, builds it
#   with dpkg-buildpackage -us -uc -b and DEB_BUILD_OPTIONS="nocheck
#   parallel=2 noddebs", runs lintian on the .changes (no error allowed),
#   then, as root only (else those checks are skipped), installs the
#   packages with apt-get (Debian's dependencies), runs custody --version,
#   --help, a quickstart (a private SoftHSM token: import a PKCS#12, set,
#   sign, verify with openssl), openssl with the installed provider and
#   engine, and purges them: every file dpkg listed is gone, and so is
#   what the packages made (/run/lock/custody, an empty /etc/custody),
#   while what the administrator put in /var/lib/custody is kept.  The
#   user custody and the group custody-agent stay (debian/custody.postrm
#   says why).
#
# Results are TAP, turned into .trs files by build-aux/tap-driver.sh under
# build/tests/release/, which scripts/test.sh counts with the others.
# Exit status 0 when nothing failed.  Environment: BUILD (./build),
# DEB_DIR (./build-deb), DISTCHECK_TESTS, PACKAGE_INSTALL=0 (build and
# lintian only: on a machine whose own custody, /run/lock/custody among
# it, must not be touched while other runs use it), PACKAGE_REUSE=1 (the
# packages already in DEB_DIR, not built again), PACKAGE_PREBUILT=1 (the
# packages `build` made, and its verdict: DEB_DIR/build.rc).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
deb_dir=${DEB_DIR:-$top/build-deb}
: "${DISTCHECK_TESTS:=tests/docs/options.sh tests/token/cli_version.sh tests/token/cli_provider.sh}"
# The test programs those tests need (make check builds no other).
: "${DISTCHECK_PROGRAMS:=tests/token/provider_sign}"
packages=(custody libcustody0 libcustody-dev custody-openssl custody-store-postgresql)

# ---------------------------------------------------------------- TAP
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; }
# check NAME COMMAND... — one TAP line: COMMAND's status.
check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
# show FILE — its last lines as TAP comments, for a failure's log.
show() { tail -n "${2:-30}" "$1" | sed 's/^/# /'; }
finish() {
	echo "1..$n"
	[ "$fails" -eq 0 ]
}

# ---------------------------------------------------------------- distcheck
tap_distcheck() {
	local log=$build/distcheck.log start=$SECONDS
	# -O0 -g0: the tarball is what is checked here, not the code
	# generated (the packages and the suite build it optimised).
	if make -s -j"$(nproc)" -C "$build" distcheck TESTS="$DISTCHECK_TESTS" \
		check_PROGRAMS="$DISTCHECK_PROGRAMS" DISTCHECK_CONFIGURE_FLAGS="CFLAGS='-O0 -g0'" \
		>"$log" 2>&1; then
		ok "make distcheck (inner make check: $DISTCHECK_TESTS)"
		echo "# make distcheck: $((SECONDS - start)) s"
	else
		not_ok "make distcheck (build/distcheck.log)"
		show "$log" 40
	fi
	finish
}

# ---------------------------------------------------------------- package
version=$(sed -n '1s/^custody (\([^)]*\)).*/\1/p' "$top/debian/changelog")
upstream=${version%-*}
arch=$(dpkg --print-architecture)

build_packages() {
	local src=$deb_dir/custody-$upstream start=$SECONDS
	rm -rf "$deb_dir"
	mkdir -p "$src"
	# The tree as git knows it (tracked and new files, nothing ignored):
	# no build directory, no generated file of the developer's.
	(cd "$top" && git ls-files -z -co --exclude-standard) |
		(cd "$top" && xargs -0 cp --parents -t "$src") || return 1
	(cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=2 noddebs" \
		dpkg-buildpackage -us -uc -b >"$deb_dir/build.log" 2>&1) || return 1
	echo "# package build: $((SECONDS - start)) s"
}

debs() {
	local p
	for p in "${packages[@]}"; do echo "$deb_dir/${p}_${version}_$arch.deb"; done
}

run_lintian() {
	local changes=$deb_dir/custody_${version}_$arch.changes start=$SECONDS rc
	lintian --fail-on error --display-info "$changes" >"$deb_dir/lintian.log" 2>&1
	rc=$?
	echo "# lintian: $((SECONDS - start)) s, $(grep -c '^E: ' "$deb_dir/lintian.log") errors," \
		"$(grep -c '^W: ' "$deb_dir/lintian.log") warnings"
	grep -E '^(E|W): ' "$deb_dir/lintian.log" | sed 's/^/# /'
	return $rc
}

# The Depends of package P.
depends_of() { dpkg-deb -f "$deb_dir/${1}_${version}_$arch.deb" Depends; }

# A private SoftHSM token under $T and a configuration naming it, as the
# quickstart makes them, for the installed custody.
T=""
make_token() {
	T=$(mktemp -d /tmp/custody-pkg.XXXXXX)
	mkdir -p "$T/lock"
	chmod 700 "$T"
	CUSTODY_BIN=/usr/bin/custody "$top/scripts/softhsm-token.sh" "$T" pkg-test >"$T/env" || return 1
	# shellcheck disable=SC1091
	. "$T/env"
	cat >"$T/custody.conf" <<EOF
[token]
module = $CUSTODY_MODULE
label = pkg-test
pin-source = file:$T/user.pin
lock-dir = $T/lock

[store]
url = sqlite:$T/custody.db

[node]
name = node1
EOF
	unset CUSTODY_MODULE CUSTODY_TOKEN CUSTODY_PIN_SOURCE CUSTODY_SO_PIN_SOURCE CUSTODY_LOCK_DIR
	export CUSTODY_CONFIG=$T/custody.conf
}

# A PKCS#12 made by openssl, its key passed through a pipe only.
make_p12() {
	export PKG_P12_PASSWORD
	PKG_P12_PASSWORD=$(openssl rand -hex 16)
	openssl req -x509 -newkey rsa:2048 -noenc -keyout - -out - -subj "/CN=$2" -days 30 2>/dev/null |
		openssl pkcs12 -export -name "$2" -passout env:PKG_P12_PASSWORD -out "$1"
}

quickstart() {
	local tp
	make_p12 "$T/issuer.p12" oauth.pkg.test || return 1
	custody -q import --path "$T/issuer.p12" --password-source env:PKG_P12_PASSWORD \
		>/dev/null 2>"$T/err" || { cat "$T/err"; return 1; }
	tp=$(openssl pkcs12 -in "$T/issuer.p12" -passin env:PKG_P12_PASSWORD -nokeys -clcerts 2>/dev/null |
		openssl x509 -noout -fingerprint -sha256 | sed 's/.*=//; s/://g')
	custody -q set -t OAuthTokenIssuer -i global --thumbprint "$tp" >/dev/null 2>"$T/err" ||
		{ cat "$T/err"; return 1; }
	custody get -t OAuthTokenIssuer -o pem >"$T/issuer.crt" &&
		openssl x509 -in "$T/issuer.crt" -pubkey -noout >"$T/issuer.pub" &&
		head -c 5000 /dev/urandom >"$T/data" &&
		custody sign -t OAuthTokenIssuer --in "$T/data" --out "$T/data.sig" &&
		openssl dgst -sha256 -verify "$T/issuer.pub" -signature "$T/data.sig" "$T/data" >/dev/null
}

# openssl with the installed provider (no OPENSSL_MODULES: its modulesdir).
provider_signs() {
	env -u OPENSSL_MODULES -u OPENSSL_CONF openssl dgst -sha256 -provider custody \
		-provider default -sign custody:OAuthTokenIssuer -out "$T/p.sig" "$T/data" 2>"$T/err" ||
		{ cat "$T/err"; return 1; }
	openssl dgst -sha256 -verify "$T/issuer.pub" -signature "$T/p.sig" "$T/data" >/dev/null
}

engine_signs() {
	env -u OPENSSL_ENGINES -u OPENSSL_CONF openssl dgst -sha256 -engine custody -keyform engine \
		-sign OAuthTokenIssuer -out "$T/e.sig" "$T/data" >/dev/null 2>"$T/err" ||
		{ cat "$T/err"; return 1; }
	openssl dgst -sha256 -verify "$T/issuer.pub" -signature "$T/e.sig" "$T/data" >/dev/null
}

# The PostgreSQL module loads (the connection itself is refused: no server).
pg_module_loads() {
	local out
	out=$(custody --store 'postgresql://custody@127.0.0.1:1/none?connect_timeout=2' list 2>&1)
	echo "$out" | sed 's/^/# /'
	echo "$out" | grep -q 'store unreachable: connection to server'
}

mode_of() { stat -c '%a %U:%G' "$1" 2>/dev/null; }

# Every path dpkg listed that is not a directory, and every directory only
# these packages own, must be gone.
left_after_purge() {
	local path left=0
	while IFS= read -r path; do
		# A directory another package owns stays, of course.
		if { [ -d "$path" ] && ! dpkg -S "$path" >/dev/null 2>&1; } ||
			{ [ ! -d "$path" ] && { [ -e "$path" ] || [ -L "$path" ]; }; }; then
			echo "# left: $path"
			left=1
		fi
	done <"$deb_dir/installed.list"
	return $left
}

installed_checks() {
	local out
	out=$(custody --version 2>&1)
	check "custody --version: custody $upstream, OpenSSL and SQLite" \
		eval '[ "$(echo "$out" | head -1)" = "custody $upstream" ] && echo "$out" | grep -q "^OpenSSL 3" && echo "$out" | grep -q "^SQLite 3"'
	check "custody --help: the usage and every command" \
		eval 'custody --help | grep -q "^usage: custody" && custody --help | grep -q "^  sign "'
	check "the user custody (home /var/lib/custody) and the group custody-agent" \
		eval 'getent passwd custody | grep -q ":/var/lib/custody:" && getent group custody-agent >/dev/null'
	check "/var/lib/custody is 0750 custody:custody" [ "$(mode_of /var/lib/custody)" = "750 custody:custody" ]
	check "/etc/custody is 0750 root:custody" [ "$(mode_of /etc/custody)" = "750 root:custody" ]
	check "no PIN file shipped, nothing in /etc/custody" \
		eval '! grep -qi "pin" "$deb_dir/installed.list" && [ -z "$(ls -A /etc/custody)" ]'
	check "/run/lock/custody is 1770 root:custody (tmpfiles)" \
		[ "$(mode_of /run/lock/custody)" = "1770 root:custody" ]
	check "the units installed, none enabled" \
		eval '[ -f "$(pkg-config --variable=systemdsystemunitdir systemd)/custody-agent.socket" ] &&
			! ls /etc/systemd/system/*/custody* >/dev/null 2>&1'
	check "custody does not depend on libpq (custody-store-postgresql does)" \
		eval '! depends_of custody | grep -q libpq && depends_of custody-store-postgresql | grep -q libpq'
	if ! make_token; then
		not_ok "a private SoftHSM token for the installed custody"
		return
	fi
	out=$(custody -v --version 2>&1)
	check "custody -v --version: the token's PKCS#11 module (SoftHSM)" \
		eval 'echo "$out" | grep -q "^PKCS#11 module .*SoftHSM"'
	check "quickstart: import a PKCS#12, set, sign, the signature verifies" quickstart
	check "openssl dgst -sign custody:OAuthTokenIssuer -provider custody: verifies" provider_signs
	check "openssl dgst -engine custody -keyform engine -sign: verifies" engine_signs
	check "the PostgreSQL store module loads (then no server answers)" pg_module_loads
}

purge_checks() {
	local out
	# The administrator's data in /var/lib/custody: kept by the purge.
	echo "kept" >/var/lib/custody/admin-data
	out=$(apt-get purge -y -q "${packages[@]}" 2>&1)
	check "apt-get purge" [ $? -eq 0 ]
	check "…every file the packages installed is gone" left_after_purge
	check "…and /etc/custody (empty) and /run/lock/custody" \
		eval '[ ! -e /etc/custody ] && [ ! -e /run/lock/custody ]'
	check "…the administrator's file in /var/lib/custody is kept, and said" \
		eval '[ "$(cat /var/lib/custody/admin-data 2>/dev/null)" = kept ] && echo "$out" | grep -q "/var/lib/custody is not empty"'
	rm -rf /var/lib/custody
	check "…no package of custody is left (dpkg)" \
		eval '! dpkg-query -W -f="\${Status}\n" "${packages[@]}" 2>/dev/null | grep -qv "not-installed"'
}

# install_use_purge — the packages installed, tried and purged (root).
install_use_purge() {
	local start=$SECONDS
	apt-get purge -y -q "${packages[@]}" >/dev/null 2>&1
	if ! apt-get install -y -q --no-install-recommends $(debs) >"$deb_dir/install.log" 2>&1; then
		not_ok "apt-get install ./*.deb (build-deb/install.log)"
		show "$deb_dir/install.log"
		return
	fi
	ok "apt-get install ./*.deb ($((SECONDS - start)) s)"
	dpkg -L "${packages[@]}" | sort -u | grep -vx '/\.' >"$deb_dir/installed.list"
	installed_checks
	[ -n "$T" ] && rm -rf "$T"
	start=$SECONDS
	purge_checks
	echo "# purge and its checks: $((SECONDS - start)) s"
}

tap_package() {
	local start=$SECONDS lintian_pid
	if [ "${PACKAGE_REUSE:-0}" = 1 ] && [ -f "$deb_dir/custody_${version}_$arch.changes" ]; then
		echo "# the packages of the last build, again (PACKAGE_REUSE=1)"
	elif [ "${PACKAGE_PREBUILT:-0}" = 1 ] && [ -f "$deb_dir/build.rc" ]; then
		# Built by `$0 build` (scripts/test.sh runs it beside make check).
		cat "$deb_dir/build.out"
		if [ "$(cat "$deb_dir/build.rc")" != 0 ]; then
			not_ok "dpkg-buildpackage -us -uc -b (build-deb/build.log)"
			show "$deb_dir/build.log" 40
			finish
			return
		fi
	elif ! build_packages; then
		not_ok "dpkg-buildpackage -us -uc -b (build-deb/build.log)"
		show "$deb_dir/build.log" 40
		finish
		return
	fi
	ok "dpkg-buildpackage -us -uc -b: $(debs | xargs -n1 basename | tr '\n' ' ')"
	# lintian reads the .deb files only: it runs beside the install.
	run_lintian >"$deb_dir/lintian.tap" 2>&1 &
	lintian_pid=$!
	if [ "$(id -u)" -ne 0 ] || [ "${PACKAGE_INSTALL:-1}" = 0 ]; then
		skip "install, use and purge" "not root, or PACKAGE_INSTALL=0"
	else
		install_use_purge
	fi
	wait "$lintian_pid"
	check "lintian: no error" [ $? -eq 0 ]
	cat "$deb_dir/lintian.tap"
	echo "# package build, lintian, install, use and purge: $((SECONDS - start)) s"
	finish
}

# ---------------------------------------------------------------- driver
results=$build/tests/release
driver=$top/build-aux/tap-driver.sh
failed=0

# tap NAME MODE — runs this script's MODE (TAP on stdout) through the TAP
# driver into $results/NAME.{log,trs}.
tap() {
	mkdir -p "$results"
	env AM_TAP_AWK=awk bash "$driver" --test-name "$1" --log-file "$results/$1.log" \
		--trs-file "$results/$1.trs" --color-tests no --enable-hard-errors yes \
		--expect-failure no -- bash "$0" "tap-$2" >/dev/null 2>&1
	if grep -Eq '^:test-result: (FAIL|XPASS|ERROR)' "$results/$1.trs"; then
		failed=1
		echo "FAIL: $1 (build/tests/release/$1.log)"
		grep -E '^(not ok|Bail out)' "$results/$1.log" | head -10
	else
		echo "PASS: $1 ($(grep -c '^:test-result: PASS' "$results/$1.trs") checks)"
	fi
	grep -E '^# .*: [0-9]+ s' "$results/$1.log"
	! grep -Eq '^:test-result: (FAIL|XPASS|ERROR)' "$results/$1.trs"
}

case ${1:-all} in
build)
	# The packages built, nothing checked (no result): scripts/test.sh
	# starts this beside make check, at the lowest priority, and then runs
	# `all` with PACKAGE_PREBUILT=1, which takes these packages and this
	# build's status (build-deb/build.rc) and output (build-deb/build.out).
	build_packages >"$build/package-build.out" 2>&1
	rc=$?
	mkdir -p "$deb_dir"
	sed 's/^# package build: /# package build (beside make check, at the lowest priority): /' \
		"$build/package-build.out" >"$deb_dir/build.out"
	rm -f "$build/package-build.out"
	echo "$rc" >"$deb_dir/build.rc"
	exit "$rc"
	;;
tap-distcheck) tap_distcheck; exit $? ;;
tap-package) tap_package; exit $? ;;
distcheck) tap distcheck distcheck ;;
package) tap package package ;;
all)
	# Side by side: each has long stretches on one core (configure,
	# autoreconf, the install and purge, lintian) that the other's
	# compilation fills.  They share nothing: distcheck's tests run its
	# own build (CUSTODY_BIN, OPENSSL_MODULES, LD_LIBRARY_PATH) on tokens
	# and lock directories of their own.
	start=$SECONDS
	tap package package >"$build/package.out" 2>&1 &
	package_pid=$!
	tap distcheck distcheck
	wait "$package_pid" || failed=1
	cat "$build/package.out"
	echo "# release checks: $((SECONDS - start)) s"
	;;
*)
	echo "usage: $0 [distcheck|package|all|build]" >&2
	exit 2
	;;
esac
exit $failed
