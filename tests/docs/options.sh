#!/usr/bin/env bash
# Every option a command takes (its table in src/cli/cmd_NAME.c) is in what
# `custody NAME --help` prints and in that command's entry of custody(1);
# `custody help NAME` prints the same as `custody NAME --help`.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}

commands=$("$CUSTODY_BIN" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { exit }')
check "custody --help lists the commands" [ -n "$commands" ]
MANWIDTH=1000 man -l "$top/man/custody.1" 2>/dev/null | col -bx >"$T/man.txt"
check "custody(1) renders" [ -s "$T/man.txt" ]

for cmd in $commands; do
	src=$top/src/cli/cmd_${cmd//-/_}.c
	# A command whose name is not its file's (export-package is
	# cmd_export): the function its entry in main.c's table names.
	if [ ! -f "$src" ]; then
		fn=$(grep -oE "\{\"$cmd\", cmd_[a-z_]+" "$top/src/cli/main.c" | sed 's/.*, //')
		[ -n "$fn" ] && src=$top/src/cli/$fn.c
	fi
	[ -f "$src" ] || { not_ok "$cmd: its source $src"; continue; }
	"$CUSTODY_BIN" "$cmd" --help >"$T/help" 2>&1
	"$CUSTODY_BIN" help "$cmd" >"$T/help2" 2>&1
	check "custody help $cmd prints what $cmd --help prints" cmp -s "$T/help" "$T/help2"
	# The entries of custody(1) that document the command: a tag line
	# naming it (first word, or "custody NAME" of a subsection), and the
	# lines indented under it.
	python3 - "$cmd" "$T/man.txt" >"$T/manblock" <<'PY'
import re, sys
cmd, path = sys.argv[1], sys.argv[2]
lines = open(path).read().split("\n")
head = re.compile(r"^( {3}custody | {7}(custody )?)" + re.escape(cmd) + r"( |$)")
i = 0
while i < len(lines):
    if head.match(lines[i]):
        indent = len(lines[i]) - len(lines[i].lstrip())
        print(lines[i])
        i += 1
        while i < len(lines) and (lines[i].strip() == "" or
                                  len(lines[i]) - len(lines[i].lstrip()) > indent):
            print(lines[i])
            i += 1
        continue
    i += 1
PY
	check "$cmd has an entry in custody(1)" [ -s "$T/manblock" ]
	# name<TAB>short letter (or -) of each option in the command's tables.
	{
		grep -oE "CLI_OPT(_TEXT|_FLAG|_LIST)?\(\"[a-z0-9-]+\", *('.'|[A-Z_]+|required_argument|no_argument)" "$src" |
			sed -E "s/^[A-Z_]+\(\"([a-z0-9-]+)\", *(.*)$/\1\t\2/"
		if grep -q 'CHANGE_OPTIONS(' "$src"; then
			printf "type\t't'\nidentity\t'i'\neffective-date\t-\nroll\t-\n"
		fi
	} | sort -u >"$T/opts"
	while IFS=$'\t' read -r name short; do
		forms=("--$name")
		# A short form: a letter, or a constant the source defines as one.
		if [[ $short =~ ^[A-Z_]+$ ]]; then
			short=$(grep -oE "\b$short *= *'.'" "$src" | grep -oE "'.'" | head -1)
		fi
		[[ $short == \'?\' ]] && forms+=("-${short:1:1}")
		in_help=0 in_man=0
		for f in "${forms[@]}"; do
			grep -qE -- "(^|[^a-z-])$f([^a-z-]|$)" "$T/help" && in_help=1
			grep -qE -- "(^|[^a-z-])$f([^a-z-]|$)" "$T/manblock" && in_man=1
		done
		check "$cmd --help names ${forms[*]}" [ "$in_help" -eq 1 ]
		check "custody(1) names ${forms[*]} under $cmd" [ "$in_man" -eq 1 ]
	done <"$T/opts"
done
done_testing
