#!/usr/bin/env bash
# softhsm-token.sh DIR LABEL — a throwaway SoftHSM token under DIR.
#
# Creates DIR/softhsm2.conf (file backend, tokens in DIR/tokens), random
# 8-digit user and SO PINs in DIR/user.pin and DIR/so.pin (mode 0600), and
# a token labelled LABEL; then prints `export ...` lines for eval:
#
#   eval "$(scripts/softhsm-token.sh /tmp/t1 node1)"
#
# Running it again with the same DIR and LABEL changes nothing and prints
# the same lines.  PINs are never printed; custody reads them from the files
# (CUSTODY_PIN_SOURCE=file:DIR/user.pin).  The token is initialised by
# `custody init-token`, so custody must be built (CUSTODY_BIN or ./build).
set -eu

usage() {
	echo "usage: $0 DIR LABEL" >&2
	exit 2
}

[ $# -eq 2 ] || usage
dir=$1
label=$2
[ -n "${label// /}" ] || usage

module=${SOFTHSM_MODULE:-}
if [ -z "$module" ]; then
	for m in /usr/lib/softhsm/libsofthsm2.so \
		/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
		/usr/local/lib/softhsm/libsofthsm2.so; do
		if [ -f "$m" ]; then
			module=$m
			break
		fi
	done
fi
if [ -z "$module" ] || [ ! -f "$module" ]; then
	echo "$0: cannot find the SoftHSM module: set SOFTHSM_MODULE" >&2
	exit 1
fi
custody=${CUSTODY_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/custody}
[ -x "$custody" ] || {
	echo "$0: custody is not built: run scripts/build.sh (or set CUSTODY_BIN)" >&2
	exit 1
}
command -v softhsm2-util >/dev/null || {
	echo "$0: softhsm2-util is not installed" >&2
	exit 1
}

umask 077
mkdir -p "$dir/tokens"
dir=$(cd "$dir" && pwd)
conf=$dir/softhsm2.conf

if [ ! -f "$conf" ]; then
	cat >"$conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
CONF
fi

# 8 random decimal digits, unbiased.
new_pin() {
	local pin=""
	while [ ${#pin} -lt 8 ]; do
		pin=$pin$(head -c 64 /dev/urandom | tr -dc 0-9 | head -c $((8 - ${#pin})))
	done
	printf '%s' "$pin"
}

for f in user.pin so.pin; do
	if [ ! -s "$dir/$f" ]; then
		new_pin >"$dir/$f"
		chmod 600 "$dir/$f"
	fi
done

export SOFTHSM2_CONF=$conf
# Labels are shown blank-padded to 32 bytes.
if ! softhsm2-util --show-slots 2>/dev/null |
	sed -n 's/^ *Label: *//p' | sed 's/ *$//' | grep -Fxq -- "$label"; then
	# custody reads both PINs from their files: no PIN on any command line.
	"$custody" -q init-token --module "$module" --label "$label" \
		--so-pin-source "file:$dir/so.pin" --pin-source "file:$dir/user.pin" >&2
fi

printf 'export SOFTHSM2_CONF=%q\n' "$conf"
printf 'export CUSTODY_MODULE=%q\n' "$module"
printf 'export CUSTODY_TOKEN=%q\n' "$label"
printf 'export CUSTODY_PIN_SOURCE=%q\n' "file:$dir/user.pin"
printf 'export CUSTODY_SO_PIN_SOURCE=%q\n' "file:$dir/so.pin"
