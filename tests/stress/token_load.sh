#!/usr/bin/env bash
# token_load.sh — STRESS_SECONDS (5 here, 30 under `make stress`) of
# concurrent import + list + sign (+ sync, when this custody has it) on
# one SoftHSM token, each a loop of custody processes.  TAP.
#
# SoftHSM's file backend corrupts objects when two processes touch one
# token at once (measured with SoftHSM 2.6.1: 39 corrupt object files in
# 20 s without a lock); custody's per-token lock must make that
# impossible.  Checks: zero failed commands; every signature verifies
# with the certificate; at the end the token holds exactly the objects
# the imports made, every one readable (`custody list` shows every
# certificate imported, each with its private key), and no file of the
# token directory is left corrupt or half-written.
top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top/tests/token/lib.sh"
seconds=${STRESS_SECONDS:-5}
setup_token load

# The signing certificate, assigned Default/global; what one import
# creates on the token is counted on it.
objects_empty=$(count_objects)
import_signer ec:prime256v1
objects_before=$(count_objects)
objects_per_import=$((objects_before - objects_empty))

have_sync=0
if "$CUSTODY_BIN" sync --help >/dev/null 2>&1; then
	have_sync=1
fi
deadline=$(($(date +%s) + seconds))

# Each loop writes one line per command to its log: "ok" or "error ...".
fail() { # LOG WHAT STATUS — records a failed command with its stderr
	{ echo "error $2: exit $3"; sed 's/^/  /' "$1.stderr"; } >>"$1"
}
importer() {
	local log=$1 i=0 rc
	while [ "$(date +%s)" -lt "$deadline" ]; do
		i=$((i + 1))
		# The key reaches custody through a pipe only.
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc \
			-keyout - -out - -subj "/CN=load$i.custody.test" -days 30 2>/dev/null |
			"$CUSTODY_BIN" -q import --path /dev/stdin --label "load$i" \
				>>"$log.thumbprints" 2>"$log.stderr"
		rc=${PIPESTATUS[1]}
		if [ "$rc" -eq 0 ]; then
			echo ok >>"$log"
		else
			fail "$log" "import load$i" "$rc"
		fi
	done
}
lister() {
	local log=$1 rc
	while [ "$(date +%s)" -lt "$deadline" ]; do
		"$CUSTODY_BIN" list -o json >"$log.json" 2>"$log.stderr"
		rc=$?
		if [ "$rc" -eq 0 ] &&
			jq -e 'type == "array" and length > 0 and all(.[]; .has_private_key)' \
				"$log.json" >/dev/null 2>>"$log.stderr"; then
			echo ok >>"$log"
		else
			fail "$log" list "$rc (or a listing without every private key)"
		fi
	done
}
signer() {
	local log=$1 i=0 rc
	while [ "$(date +%s)" -lt "$deadline" ]; do
		i=$((i + 1))
		rm -f "$log.sig"
		"$CUSTODY_BIN" sign -t Default -i global --in "$T/data" --out "$log.sig" \
			2>"$log.stderr"
		rc=$?
		if [ "$rc" -eq 0 ] &&
			openssl dgst -sha256 -verify "$T/signer.pub" -signature "$log.sig" "$T/data" \
				>>"$log.stderr" 2>&1; then
			echo ok >>"$log"
		else
			fail "$log" "sign $i" "$rc (0: the signature does not verify)"
		fi
	done
}
syncer() {
	local log=$1 rc
	while [ "$(date +%s)" -lt "$deadline" ]; do
		"$CUSTODY_BIN" sync >/dev/null 2>"$log.stderr"
		rc=$?
		if [ "$rc" -eq 0 ]; then
			echo ok >>"$log"
		else
			fail "$log" sync "$rc"
		fi
	done
}

start=$(date +%s.%N)
importer "$T/import" &
lister "$T/list" &
signer "$T/sign" &
[ "$have_sync" -eq 1 ] && syncer "$T/sync" &
wait
end=$(date +%s.%N)
touch "$T/import" "$T/list" "$T/sign" "$T/sync"
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
count() { grep -c "^$2" "$T/$1"; }
echo "# $secs s on one token: $(count import ok) imports, $(count list ok) lists," \
	"$(count sign ok) signatures, $(count sync ok) syncs" \
	"$([ "$have_sync" -eq 1 ] || echo "(no custody sync)"); errors:" \
	"$(cat "$T/import" "$T/list" "$T/sign" "$T/sync" | grep -c '^error')"

for what in import list sign sync; do
	if [ "$what" = sync ] && [ "$have_sync" -eq 0 ]; then
		tap_n=$((tap_n + 1))
		echo "ok $tap_n - sync # SKIP this custody has no sync command"
		continue
	fi
	errors=$(count "$what" error)
	done_n=$(count "$what" ok)
	if [ "$errors" -eq 0 ] && [ "$done_n" -gt 0 ]; then
		ok "$what: $done_n commands, zero errors"
	else
		not_ok "$what: zero errors ($errors of $((errors + done_n)))" \
			"$(grep -v '^ok' "$T/$what" | head -20)"
	fi
done

imports=$(count import ok)
run list -o json
listed=$(jq 'length' <<<"$out" 2>/dev/null)
check "every certificate imported is listed ($listed = $imports + 1)" \
	[ "$rc/$listed" = "0/$((imports + 1))" ]
listing=$out
out=""	# check's diagnostics need not repeat the whole listing
all_have_keys() { jq -e 'all(.[]; .has_private_key)' <<<"$listing" >/dev/null; }
check "every listed certificate has its private key" all_have_keys
check "the token holds exactly the objects imported ($(count_objects) files, $objects_per_import per import)" \
	[ "$(count_objects)" -eq $((objects_before + imports * objects_per_import)) ]
# SoftHSM keeps one NAME.object per object (and an empty NAME.lock
# beside it): a corrupt or half-written object file is one that is empty.
corrupt=$(find "$T/tokens" -type f \( -iname '*corrupt*' -o \( -name '*.object' -size 0 \) \) | wc -l)
check "no corrupt or empty object file in the token directory ($corrupt)" [ "$corrupt" -eq 0 ]
while read -r tp; do
	[ -n "$tp" ] || continue
	jq -e --arg tp "$tp" 'any(.[]; .thumbprint == $tp)' <<<"$listing" >/dev/null ||
		missing="${missing:-} $tp"
done <"$T/import.thumbprints"
check "every thumbprint an import printed is on the token" [ -z "${missing:-}" ]
done_testing
