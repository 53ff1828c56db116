#!/usr/bin/env bash
# Installs the Debian 12 packages custody needs to build, test and run.
# Installs only what is missing; needs root (or sudo) when something is.
set -euo pipefail

packages=(
	gcc make autoconf automake libtool pkg-config
	openssl libssl-dev libp11-dev libp11-kit-dev libengine-pkcs11-openssl
	libsqlite3-dev sqlite3 libpq-dev postgresql libjansson-dev libinih-dev libcriterion-dev libsystemd-dev
	nettle-dev
	# the agent's metadata server (src/lib/agent/http.c); curl drives its tests
	libmicrohttpd-dev curl
	softhsm2 opensc python3 jq expect
	# openCryptoki's software token, the second token the CLI tests run on
	# (scripts/test-opencryptoki.sh)
	opencryptoki
	# the valgrind pass of scripts/test-sanitizers.sh
	valgrind
	# the Debian packages (debian/, scripts/test-package.sh): their build,
	# lintian, and systemd's .pc file and sysusers/tmpfiles at install
	dpkg-dev debhelper lintian systemd
	# libFuzzer harnesses (tests/fuzz): clang and its fuzzer/sanitizer runtime
	clang libclang-rt-14-dev
)

# One dpkg-query for them all (scripts/test.sh runs this first, every
# time): the packages installed, then the missing ones are the others.
installed=" $({ dpkg-query -W -f='${db:Status-Status} ${Package}\n' "${packages[@]}" 2>/dev/null || :; } |
	awk '$1 == "installed" { printf "%s ", $2 }')"
missing=()
for p in "${packages[@]}"; do
	case $installed in *" $p "*) ;; *) missing+=("$p") ;; esac
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "install-deps: need root to install ${missing[*]}" >&2; exit 1; }
	sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >&2
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
