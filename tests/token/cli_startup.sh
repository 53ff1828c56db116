#!/usr/bin/env bash
# What a custody process loads: libcustody and custody(1) do not link
# libpq (the PostgreSQL store is the module custody-store-pg.so, loaded on
# the first postgresql:// URL from $CUSTODY_MODULE_DIR, else the installed
# pkglibdir); `custody sign` loads neither the module nor libpq, and skips
# OpenSSL's configuration file unless OPENSSL_CONF names one.  A missing or
# foreign module is exit 1 with its path and the loader's reason, the
# URL's password never shown.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token

: "${TOP_BUILDDIR:?TOP_BUILDDIR must name the build directory}"
modules=${CUSTODY_MODULE_DIR:-$TOP_BUILDDIR/.libs}
# The binary behind the libtool wrapper of an uninstalled build, run as
# installed (no wrapper shell) with this build's libcustody.
bin=$CUSTODY_BIN
if grep -q 'temporary wrapper script for' "$CUSTODY_BIN"; then
	bin=$(dirname "$CUSTODY_BIN")/.libs/$(basename "$CUSTODY_BIN")
fi
libpath="$TOP_BUILDDIR/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
libs_of() { # FILE — every library the loader maps for it, one per line
	LD_LIBRARY_PATH=$libpath ldd "$1" | awk '{print $1}'
}
not() { ! "$@"; }
verifies() { # — $T/r.sig is a signature of $T/data by the key of $T/r.pub
	openssl dgst -sha256 -verify "$T/r.pub" -signature "$T/r.sig" "$T/data" >/dev/null 2>&1
}
# traced [ENV=VALUE...] ARGS... — custody ARGS under strace, the files it
# opened in $T/trace; $rc is custody's exit status.
traced() {
	local envs=()
	while [[ ${1:-} == *=* ]]; do envs+=("$1"); shift; done
	env -u OPENSSL_CONF "${envs[@]}" LD_LIBRARY_PATH="$libpath" \
		strace -f -qq -e trace=open,openat -o "$T/trace" "$bin" "$@" >/dev/null 2>"$T/stderr"
	rc=$?
	err=$(cat "$T/stderr")
}

# ------------------------------------------------------------ linking
check "the PostgreSQL module is built" [ -f "$modules/custody-store-pg.so" ]
check "libcustody does not need libpq" \
	not grep -q '^libpq\.' <<<"$(libs_of "$TOP_BUILDDIR/.libs/libcustody.so")"
check "custody does not need libpq" not grep -q '^libpq\.' <<<"$(libs_of "$bin")"
check "…nor gssapi, ldap or gnutls" \
	not grep -Eq '^lib(gssapi|ldap|gnutls)' <<<"$(libs_of "$bin")"
# custody is the launcher: `custody sign` through an agent must start
# fast, so it links neither libcrypto nor libcustody; the full command is
# the module custody-cli.so.
check "the launcher links neither libcrypto, libp11, sqlite nor libcustody" \
	not grep -Eq '^lib(crypto|p11|sqlite3|custody)\.' <<<"$(libs_of "$bin")"
check "the command module does not need libpq" \
	not grep -q '^libpq\.' <<<"$(libs_of "$modules/custody-cli.so")"
check "…nor gssapi, ldap or gnutls" \
	not grep -Eq '^lib(gssapi|ldap|gnutls)' <<<"$(libs_of "$modules/custody-cli.so")"
check "the command module exports its entry and nothing else" \
	[ "$(nm -D --defined-only "$modules/custody-cli.so" | awk 'NF == 3 {print $3}')" = \
	custody_cli_main ]
check "the module needs libpq" grep -q '^libpq\.' <<<"$(libs_of "$modules/custody-store-pg.so")"
check "the module exports its backend table and nothing else" \
	[ "$(nm -D --defined-only "$modules/custody-store-pg.so" | awk 'NF == 3 {print $3}')" = \
	custody_store_pg_backend ]

# ------------------------------------------------------------ sign
make_p12 r r.custody.test 30
"$CUSTODY_BIN" -q import --path "$T/r.p12" -t OAuthTokenIssuer >/dev/null
head -c 1000 /dev/urandom >"$T/data"
"$CUSTODY_BIN" get -t OAuthTokenIssuer -o pem | openssl x509 -pubkey -noout >"$T/r.pub"

LD_DEBUG=files LD_LIBRARY_PATH=$libpath \
	"$bin" sign -t OAuthTokenIssuer --in "$T/data" --out "$T/r.sig" 2>"$T/ld"
rc=$?
err=$(grep -v 'file=' "$T/ld")
check "sign: exit 0" [ "$rc" -eq 0 ]
check "…the signature verifies" verifies
check "…the loader mapped libcustody, then the PKCS#11 module" \
	grep -q "file=[^ ]*libcustody\.so.*file=$SOFTHSM_MODULE" <<<"$(tr '\n' ' ' <"$T/ld")"
check "…but not libpq nor the PostgreSQL module" \
	not grep -Eq 'file=(libpq|.*custody-store-pg)' "$T/ld"

if command -v strace >/dev/null; then
	conf=$(openssl version -d | sed 's/^OPENSSLDIR: "\(.*\)"$/\1/')/openssl.cnf
	rm -f "$T/r.sig"
	traced sign -t OAuthTokenIssuer --in "$T/data" --out "$T/r.sig"
	check "sign under strace: exit 0" [ "$rc" -eq 0 ]
	check "…the signature verifies" verifies
	# The system's OpenSSL configuration (FIPS, crypto policy) applies to
	# sign as to every command: 0.3 ms a process is not worth bypassing it.
	check "…OpenSSL's configuration file was read" grep -q "\"$conf\"" "$T/trace"
	cp "$conf" "$T/openssl.cnf"
	rm -f "$T/r.sig"
	traced OPENSSL_CONF="$T/openssl.cnf" sign -t OAuthTokenIssuer --in "$T/data" --out "$T/r.sig"
	check "sign with OPENSSL_CONF set: exit 0" [ "$rc" -eq 0 ]
	check "…the signature verifies" verifies
	check "…the file it names was read" grep -q "\"$T/openssl.cnf\"" "$T/trace"
	traced request --subject CN=startup.custody.test --key ec:p256 --csr "$T/r.csr"
	check "request (libp11, OpenSSL's default configuration): exit 0" [ "$rc" -eq 0 ]
	check "…OpenSSL's configuration file was read" grep -q "\"$conf\"" "$T/trace"
else
	ok "# SKIP strace is not installed"
fi

# ------------------------------------------------------------ the module
before=$(state)
url="postgresql://custody:s3cret-pw@/custody?host=$T/nosock"
mkdir -p "$T/nomodule" "$T/nosock"
CUSTODY_MODULE_DIR=$T/nomodule run --store "$url" get
check "a module directory without the module: exit 1" [ "$rc" -eq 1 ]
check "…naming its path and the loader's reason" [ "$(head -1 <<<"$err")" = \
	"custody: get: the PostgreSQL store module is not installed: $T/nomodule/custody-store-pg.so: cannot open shared object file: No such file or directory" ]
check "…a hint naming CUSTODY_MODULE_DIR" grep -q '^hint: .*CUSTODY_MODULE_DIR' <<<"$err"
check "…and not the password of the URL" not grep -q 's3cret-pw' <<<"$err"

mkdir -p "$T/foreign"
ln -s "$(LD_LIBRARY_PATH=$libpath ldd "$modules/custody-cli.so" | awk '$1 ~ /^libjansson/ {print $3}')" \
	"$T/foreign/custody-store-pg.so"
CUSTODY_MODULE_DIR=$T/foreign run --store "$url" get
check "another library in its place: exit 1" [ "$rc" -eq 1 ]
check "…not usable: its path, then the loader's reason" grep -q \
	"^custody: get: the PostgreSQL store module is not usable: $T/foreign/custody-store-pg.so: .*undefined symbol: custody_store_pg_backend\$" \
	<<<"$err"

# The module of this build serves the URL: with no server on the socket
# directory, the error is the module's own.
nourl="postgresql:///custody?host=$T/nosock"
run --store "$nourl" get
check "the module loads: no server there is \"store unreachable\", exit 1" \
	[ "$rc" -eq 1 ]
check "…said by the module" \
	grep -q "^custody: get: cannot open store $nourl: store unreachable: " <<<"$err"
run --store "$url" get
check "…with a password in the URL: exit 1" [ "$rc" -eq 1 ]
check "…the password not shown" not grep -q 's3cret-pw' <<<"$err"
check "nothing changed on the token or in the store" [ "$(state)" = "$before" ]

done_testing
