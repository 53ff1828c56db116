#!/usr/bin/env bash
# custody --version: custody's version and the OpenSSL and SQLite it runs
# with, through the launcher and the full command alike; with -v the
# configured token's PKCS#11 module, opened without a login (no PIN source
# needed); a module that cannot be loaded is one error line and exit 1.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token version

want=$(sed -n 's/^AC_INIT(\[custody\], \[\([^]]*\)\].*/\1/p' "$TOP_SRCDIR/configure.ac")
run --version
check "--version: exit 0, first line 'custody $want'" \
	eval '[ "$rc" -eq 0 ] && [ "$(head -1 <<<"$out")" = "custody $want" ]'
library=$(openssl version | sed -n 's/.*(Library: \(.*\))$/\1/p')
[ -n "$library" ] || library=$(openssl version)
check "…the OpenSSL it runs with, as openssl(1) names its library" \
	grep -qxF "$library" <<<"$out"
check "…the SQLite it runs with" grep -qx "SQLite 3\.[0-9.]*\( (built with .*)\)\?" <<<"$out"
check "…and nothing of a token (no -v): three lines" [ "$(wc -l <<<"$out")" -eq 3 ]
run list --version
check "custody list --version: the same, no listing" [ "$rc" -eq 0 -a "$(head -1 <<<"$out")" = "custody $want" ]

run -v --version
check "-v --version: the module's description and version (C_GetInfo)" \
	eval '[ "$rc" -eq 0 ] && grep -q "^PKCS#11 module $CUSTODY_MODULE: .* [0-9]*\.[0-9]* (.*), Cryptoki [0-9]\.[0-9]*$" <<<"$out"'
check "…and the token opened: its label" grep -qx "token version, serial .*" <<<"$out"
out=$(env -u CUSTODY_PIN_SOURCE "$CUSTODY_BIN" --version -v 2>&1)
check "…no login: no PIN source needed (-v after --version counts too)" grep -q "^PKCS#11 module " <<<"$out"
out=$(env -u CUSTODY_MODULE "$CUSTODY_BIN" -v --version 2>&1)
check "no module configured: said, exit 0" grep -qx "PKCS#11 module: none configured" <<<"$out"
run -v --version --module "$T/no-such-module.so"
check "a module that cannot be loaded: exit 1, one error line naming it" \
	eval '[ "$rc" -eq 1 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && grep -q "cannot load PKCS#11 module $T/no-such-module.so" <<<"$err"'
done_testing
