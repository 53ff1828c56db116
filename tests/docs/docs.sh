#!/usr/bin/env bash
# The documents an administrator reads agree with the program and stay
# inside the repository: every environment variable custody reads is in
# custody(1), ENVIRONMENT; both man pages specify the cluster's
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
	grep -rhoE '(secure_)?getenv\("[A-Z_0-9]+"\)' src engines |
		sed -E 's/.*"([A-Z_0-9]+)".*/\1/'
	# the settings the environment gives (config.c's table of variables)
	grep -hoE '\{"CUSTODY_[A-Z_]+", "' src/lib/config/config.c |
		sed -E 's/\{"([A-Z_]+)".*/\1/'
} | sort -u)
check "the sources read environment variables (the scan found them)" [ -n "$vars" ]
for v in $vars; do
	check "custody(1) ENVIRONMENT names $v" grep -q "$v" <<<"$env_section"
done

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
for word in 'module =' 'group `custody`' 'sslmode=verify-full' 'dynamic_path' '/etc/custody' 'OPENSSL_CONF='; do
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
