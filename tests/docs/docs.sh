#!/usr/bin/env bash
# The documents an administrator reads agree with the program and stay
# inside the repository: every environment variable custody reads is in
# custody(1), ENVIRONMENT; custody-provider(7) describes the URI form, every
# parameter the provider reads and the example configuration it names,
# and custody(1) and the README lead with the provider; both man pages
# specify the cluster's
# postgresql:// store with sslmode=verify-full; the README's first screen
# has the exit statuses and points to its Production section; no file of
# the repository cites a file outside it.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}

# The section of a man page from .SH NAME to the next .SH.
man_section() { # FILE NAME
	awk -v want=".SH $2" '$0 == want { on = 1; next } /^\.SH / { on = 0 } on' "$1"
}

# ------------------------------------------------------------ environment
env_section=$(man_section "$top/man/custody.1" ENVIRONMENT)
vars=$(cd "$top" && {
	grep -rhoE '(secure_)?getenv\("[A-Z_0-9]+"\)' src engines providers 2>/dev/null |
		sed -E 's/.*"([A-Z_0-9]+)".*/\1/'
	# the settings the environment gives (config.c's table of variables)
	grep -hoE '\{"CUSTODY_[A-Z_]+", "' src/lib/config/config.c |
		sed -E 's/\{"([A-Z_]+)".*/\1/'
} | sort -u)
check "the sources read environment variables (the scan found them)" [ -n "$vars" ]
for v in $vars; do
	check "custody(1) ENVIRONMENT names $v" grep -q "$v" <<<"$env_section"
done

# ------------------------------------------------------------ the provider
page=$top/man/custody-provider.7
check "custody-provider(7) is installed with the other man pages" \
	grep -q 'man/custody-provider\.7' "$top/Makefile.am"
MANWIDTH=1000 man -l "$page" 2>/dev/null | col -bx >"$T/provider.txt"
check "custody-provider(7) renders" [ -s "$T/provider.txt" ]
for form in 'custody:TYPE' 'custody:TYPE@IDENTITY' '?which=SLOT' 'previous' 'pending' \
	'pinned' 'fork' 'modulesdir' '-provider custody -provider default' 'OPENSSL_CONF'; do
	check "custody-provider(7) describes $form" grep -qF -- "$form" "$T/provider.txt"
done
params=$(cat "$top"/providers/*.c 2>/dev/null |
	grep -oE '\{"[a-z_]+", CUSTODY_KEYREF_[A-Z_]+\}' | sed -E 's/\{"([a-z_]+)".*/\1/' | sort -u)
check "the provider's parameters are found in providers/*.c" [ -n "$params" ]
conf_section=$(man_section "$page" CONFIGURATION)
for p in $params; do
	check "custody-provider(7) CONFIGURATION names the parameter $p" \
		grep -qx ".B $p" <<<"$conf_section"
done
for v in CUSTODY_CONFIG CUSTODY_MODULE CUSTODY_TOKEN CUSTODY_PIN_SOURCE CUSTODY_STORE CUSTODY_NODE \
	OPENSSL_MODULES; do
	check "custody-provider(7) ENVIRONMENT names $v" grep -q "$v" <<<"$(man_section "$page" ENVIRONMENT)"
done
examples=$(grep -oE 'providers/[a-z-]+\.cnf\.example' "$T/provider.txt" | sort -u)
check "custody-provider(7) names the example configuration" [ -n "$examples" ]
for f in $examples; do
	check "…$f is in the repository" [ -f "$top/$f" ]
done
check "custody(1) describes the provider before the engine" eval \
	'[ "$(grep -nx ".SH OPENSSL PROVIDER" "$top/man/custody.1" | cut -d: -f1)" -lt \
	"$(grep -nx ".SH OPENSSL ENGINE" "$top/man/custody.1" | cut -d: -f1)" ]'
check "custody(1) refers to custody-provider(7)" grep -qF 'custody\-provider (7)' "$top/man/custody.1"

# ------------------------------------------------------------ the store
for page in man/custody.1 man/custody.conf.5; do
	check "$page specifies a postgresql:// store" grep -q 'postgresql://' "$top/$page"
	check "$page asks for sslmode=verify-full" grep -q 'sslmode=verify\\-full' "$top/$page"
done
check "custody(1) says the nodes of a cluster share one store" \
	grep -q 'nodes of a cluster share' "$top/man/custody.1"

# ------------------------------------------------------------ README
first_screen=$(head -n 40 "$top/README.md")
check "the README's first screen has the exit statuses" grep -q '^## Exit statuses' <<<"$first_screen"
check "…and points to the Production section" grep -q '(#production)' <<<"$first_screen"
check "the README has a Production section" grep -q '^## Production$' "$top/README.md"
exit_section=$(man_section "$top/man/custody.1" "EXIT STATUS")
for status in $(grep -oE '^\.B [0-9]+$' <<<"$exit_section" | awk '{print $2}'); do
	check "exit status $status of custody(1) is in the README's table" \
		grep -q "^| \`$status\` |" "$top/README.md"
done
prod=$(awk '/^## Production$/ { on = 1; next } /^## / { on = 0 } on' "$top/README.md")
for word in 'module =' 'group `custody`' 'sslmode=verify-full' 'dynamic_path' '/etc/custody' 'OPENSSL_CONF=' \
	'modulesdir' 'ossl-modules/custody.so' 'openssl-custody-provider.cnf'; do
	check "Production covers: $word" grep -qF "$word" <<<"$prod"
done

# ------------------------------------------------------------ inside
# The names of the developers' own notes, which a release does not carry
# (spelled in pieces, so that this file does not cite them itself).
outside="\.\./shared|DESIGN\.md|pkcs11-fa""cts|spec/cl""i\.md|STYLE\.md"
if [ -d "$top/.git" ] && command -v git >/dev/null; then
	files=$(git -C "$top" ls-files)
else
	files=$(cd "$top" && find . -path ./build -prune -o -path './build-*' -prune -o -type f -print)
fi
cites=$(cd "$top" && grep -lE "$outside" $files 2>/dev/null)
check "no file of the repository cites a file outside it" [ -z "$cites" ]
[ -z "$cites" ] || printf '# cites: %s\n' $cites

done_testing
