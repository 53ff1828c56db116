#!/usr/bin/env bash
# cluster.sh — three nodes, each with a SoftHSM token directory of its own
# (its own SOFTHSM2_CONF and lock directory, as on three machines), sharing
# one PostgreSQL store: the KEK ceremony, replication of a key by `sync`,
# signing on a member node verified with the certificate, `sync --watch`
# on every node and a roll that every node sees at its instant, `status`
# failing for a stopped node and for a node that cannot reach the store,
# and a scan of the store for private key material.
#
# The store: a schema of its own in the test server when
# CUSTODY_TEST_PG_URL is set (scripts/test.sh starts one for the run),
# else a private server (scripts/test-postgres.sh) stopped at the end;
# without PostgreSQL the script is skipped.  Keys are made in memory and
# reach custody through pipes only; PINs come from files (and reach
# pkcs11-tool through its env: form), never from an argv.
top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TOP_SRCDIR=$top
. "$top/tests/token/lib.sh"
. "$top/tests/cluster/lib.sh"

# ------------------------------------------------------------ the store
pg_store_with_watchers cluster

# ------------------------------------------------------------ helpers
nodes=(node1 node2 node3)
for n in "${nodes[@]}"; do
	setup_node "$n" "$store"
done
module=$(node_env node1 printenv CUSTODY_MODULE)

# new_key VAR CN — an RSA-2048 key and self-signed certificate, PEM, in
# the shell variable VAR (memory only).
new_key() {
	local -n dst=$1
	dst=$(openssl req -x509 -newkey rsa:2048 -noenc -keyout - -out - -days 30 \
		-subj "/O=custody cluster test/CN=$2" -addext "subjectAltName=DNS:$2" 2>/dev/null)
}
# thumbprint_of PEM-VAR — SHA-1 thumbprint of the certificate in it.
thumbprint_of() {
	local -n src=$1
	printf '%s\n' "$src" | openssl x509 -noout -fingerprint -sha1 | sed 's/.*=//; s/://g'
}
# import_replicable NODE PEM-VAR [ARGS...] — custody import of the key
# and certificate through a pipe, replicable (import packages it).
import_replicable() {
	local name=$1
	local -n src=$2
	shift 2
	printf '%s\n' "$src" | on "$name" import --path /dev/stdin --replicable "$@"
}
# key_id_of THUMBPRINT — the key id, as the store records it.
key_id_of() { q "SELECT key_id FROM certificates WHERE thumbprint = '$1'"; }
# cert_of NODE THUMBPRINT FILE — the certificate as the store has it, PEM.
cert_of() {
	q "SELECT encode(der, 'base64') FROM certificates WHERE thumbprint = '$2'" |
		tr -d '\n' | base64 -d | openssl x509 -inform DER -out "$3"
}
# sign_verify NODE THUMBPRINT — `custody sign` on NODE verifies with the
# certificate THUMBPRINT (and the signature is new).
sign_verify() {
	local name=$1 tp=$2
	rm -f "$T/sig.$name"
	on "$name" sign -t OAuthTokenIssuer --in "$T/msg" --out "$T/sig.$name"
	[ "$rc" -eq 0 ] || return 1
	cert_of "$name" "$tp" "$T/cert.$tp.pem" &&
		openssl x509 -in "$T/cert.$tp.pem" -pubkey -noout >"$T/pub.$tp.pem" &&
		openssl dgst -sha256 -verify "$T/pub.$tp.pem" -signature "$T/sig.$name" \
			"$T/msg" >/dev/null 2>&1
}
# p11 NODE ARGS... — pkcs11-tool on NODE's token, logged in with its PIN
# (OpenSC's --pin env:VAR form: the PIN is on no argv).
p11() {
	local name=$1
	shift
	(
		. "$T/$name/env"
		P11_PIN=$(<"$T/$name/user.pin") pkcs11-tool --module "$CUSTODY_MODULE" \
			--token-label "$name" --login --pin env:P11_PIN "$@"
	)
}
# token_state NODE — a fingerprint of NODE's token objects.
token_state() {
	find "$T/$1/tokens" -type f -name '*.object' ! -name 'token.object' -print0 |
		sort -z | xargs -0r sha256sum | sha256sum | cut -d' ' -f1
}

# start_watch NODE [ARGS...] — `custody sync --watch -o json` as NODE in
# the background: JSON lines in $T/NODE/watch.out.
declare -A watch_pid
start_watch() {
	local name=$1
	shift
	: >"$T/$name/watch.out"
	(
		. "$T/$name/env"
		exec "$CUSTODY_BIN" sync --watch -o json "$@" \
			>"$T/$name/watch.out" 2>"$T/$name/watch.err"
	) &
	watch_pid[$name]=$!
	pids+=($!)
}
# stop_watch NODE — SIGTERM; leaves its exit status in $rc.
stop_watch() {
	local p=${watch_pid[$1]}
	kill -TERM "$p" 2>/dev/null
	wait "$p"
	rc=$?
}
# watch_saw NODE TYPE SLOT THUMBPRINT [SINCE_MS] — NODE's watcher printed a
# sync (at or after SINCE_MS) in which TYPE's SLOT is THUMBPRINT, held.
watch_saw() {
	python3 - "$T/$1/watch.out" "$2" "$3" "$4" "${5:-0}" <<'PY'
import json, sys
path, typ, slot, tp, since = sys.argv[1:6]
with open(path) as f:
    for line in f:
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if d["time_ms"] < int(since):
            continue
        for it in d["items"]:
            if (it["type"], it["slot"], it["thumbprint"]) == (typ, slot, tp) and it["held"]:
                print(d["time_ms"])
                sys.exit(0)
sys.exit(1)
PY
}
head -c 100 /dev/urandom >"$T/msg"

# ------------------------------------------------------------ usage
on node1 sync --interval 0
check "sync --interval 0 is a usage error" [ "$rc" -eq 2 ]
check "…naming the accepted range" grep -q "from 1 to 86400" <<<"$err"
on node1 sync --watch --interval 12x
check "sync --interval 12x is a usage error" [ "$rc" -eq 2 ]
on node1 sync -o pem
check "sync -o pem is a usage error" [ "$rc" -eq 2 ]
on node1 sync --at 2031-01-01
check "sync refuses --at (it records rolls for every node)" grep -q "^2:.*--at is for reading: sync writes" <<<"$rc:$err"
on node1 status node2
check "status takes no operand" [ "$rc" -eq 2 ]
on node1 sync --watch --pin-source fd:0 </dev/null
check "sync --watch refuses a PIN source that can be read only once" \
	grep -q "^2:.*can be read only once" <<<"$rc:$err"
on node1 status
check "status of a store nothing was written to exits 1" [ "$rc" -eq 1 ]
check "…saying there is no store there yet (a read makes none)" grep -q "no store at" <<<"$err"

# ------------------------------------------------------------ the ceremony
on node1 kek create
check "node1: kek create" [ "$rc" -eq 0 ]
on node1 kek authority
authority=$out
for n in node2 node3; do
	on "$n" node enroll --authority "$authority"
	check "$n: node enroll" [ "$rc" -eq 0 ]
	declare "fp_$n=$(enroll_fp)"
done
for n in node2 node3; do
	fp_var=fp_$n
	on node1 node admit "$n" --fingerprint "${!fp_var}"
	check "node1 admits $n (SO PIN from its file)" [ "$rc" -eq 0 ]
done
for n in node2 node3; do
	on "$n" node join
	check "$n: node join" [ "$rc" -eq 0 ]
done
on node1 status -o json
check "status lists the three nodes, joined" \
	[ "$(py 'print(" ".join(n["node"] + ":" + n["state"] for n in d["nodes"]))')" = \
	"node1:joined node2:joined node3:joined" ]

# ------------------------------------------------------------ replication
new_key keyA a.cluster.custody.test
A=$(thumbprint_of keyA)
import_replicable node1 keyA -t OAuthTokenIssuer
check "node1: import A (replicable) as OAuthTokenIssuer" [ "$rc" -eq 0 ]
check "the store holds A's package" [ "$(q "SELECT count(*) FROM packages WHERE thumbprint = '$A'")" = 1 ]
kidA=$(key_id_of "$A")

before=$(token_state node2)
on node2 sync
check "node2: sync exits 0" [ "$rc" -eq 0 ]
check "…and says it unwrapped A as current OAuthTokenIssuer" \
	grep -Eq "^OAuthTokenIssuer +current +$A unwrapped" <<<"$out"
check "node2's token changed" [ "$(token_state node2)" != "$before" ]
on node3 sync -o json
check "node3: sync -o json exits 0" [ "$rc" -eq 0 ]
check "…with A unwrapped and held, nothing refused" \
	[ "$(py 'print([(i["thumbprint"], i["unwrapped"], i["held"]) for i in d["items"]], d["refused"], d["ok"])')" = \
	"[('$A', True, True)] 0 True" ]
before=$(token_state node2)
on node2 sync
check "a second sync on node2 exits 0 and unwraps nothing (A held)" \
	grep -Eq "^0:OAuthTokenIssuer +current +$A held$" <<<"$rc:$out"
check "…and leaves its token as it was (idempotent)" [ "$(token_state node2)" = "$before" ]
p11 node2 --list-objects --type privkey --id "$kidA" >"$T/attrs" 2>&1
check "node2 holds A's private key: sensitive" grep -Eq "Access: +sensitive" "$T/attrs"
check "…and not extractable" bash -c "grep -q 'Access:' '$T/attrs' && ! grep -Eq 'Access: +(extractable|.*, extractable)' '$T/attrs'"
check "node2 signs with A; the signature verifies with A's certificate" sign_verify node2 "$A"
check "node3 signs with A; the signature verifies with A's certificate" sign_verify node3 "$A"
on node1 sync
check "node1 (which imported A) syncs too" [ "$rc" -eq 0 ]
on node2 status
check "status: every node holds A: exit 0" [ "$rc" -eq 0 ]
check "…a row per node with A's short thumbprint and ok" \
	[ "$(grep -Ec "^node[123] +joined .* ${A:0:8} +ok$" <<<"$out")" = 3 ]
on node2 status -o json
check "status -o json: ok, every node holds A, not stale, no lag unknown" \
	[ "$(py 'print(d["ok"], sorted(set((n["holds"]["OAuthTokenIssuer"], n["stale"], n["differs"], n["lag_seconds"] is not None) for n in d["nodes"])))')" = \
	"True [('$A', False, False, True)]" ]

# ------------------------------------------------------------ --watch and a roll
for n in "${nodes[@]}"; do
	start_watch "$n" --interval 30
done
for n in "${nodes[@]}"; do
	check "$n: sync --watch reports A at start" wait_until 20 watch_saw "$n" OAuthTokenIssuer current "$A"
done
# Its token stays open between syncs, its lock let go: another process
# takes the lock at once (no custody command waits for the watcher).
lock_free() { # NODE
	local f
	for f in "$T/$1"/lock/token-*.lock; do
		flock -n -x "$f" true || return 1
	done
}
check "node2's watcher, between syncs, holds no token lock" lock_free node2
new_key keyB b.cluster.custody.test
B=$(thumbprint_of keyB)
import_replicable node1 keyB
check "node1: import B (replicable)" [ "$rc" -eq 0 ]
instant=$(($(date +%s) + 8))
on node1 set -t OAuthTokenIssuer --thumbprint "$B" --roll \
	--effective-date "$(date -u -d "@$instant" +%Y-%m-%dT%H:%M:%SZ)"
check "node1: roll to B in 8 s" [ "$rc" -eq 0 ]
for n in "${nodes[@]}"; do
	check "$n: its watcher unwraps B as pending before the instant" \
		wait_until 6 watch_saw "$n" OAuthTokenIssuer pending "$B"
done
if [ "$(date +%s)" -lt $((instant - 1)) ]; then
	check "node2 still signs with A before the instant" sign_verify node2 "$A"
else
	ok "node2 still signs with A before the instant # SKIP the machine was too slow"
fi
while [ "$(date +%s)" -lt "$instant" ]; do sleep 0.1; done
for n in "${nodes[@]}"; do
	check "$n: its watcher reports B current within 3 s of the instant (interval 30 s)" \
		wait_until 4 watch_saw "$n" OAuthTokenIssuer current "$B" $((instant * 1000))
done
# The first node to come records the roll; that record wakes the others,
# which had followed the roll at the instant already: they read the
# record (a wake), and do not sync again.
sleep 1
syncs_since() { # NODE SINCE_MS — how many syncs NODE's watcher printed since
	python3 - "$T/$1/watch.out" "$2" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1]):
    try:
        n += json.loads(line)["time_ms"] >= int(sys.argv[2])
    except ValueError:
        pass
print(n)
PY
}
for n in "${nodes[@]}"; do
	check "$n: its watcher synced once for the roll" \
		[ "$(syncs_since "$n" $((instant * 1000)))" = 1 ]
done
for n in "${nodes[@]}"; do
	on "$n" get -t OAuthTokenIssuer -o thumbprint
	check "$n: get says B is current" [ "$out" = "$B" ]
	check "$n signs with B after the instant; it verifies with B's certificate" sign_verify "$n" "$B"
done
on node1 audit -o json
check "the roll came due once in the audit log, however many nodes saw it" \
	[ "$(py 'print(sum(1 for e in d if e["action"] == "roll-effective"))')" = 1 ]
all_hold_previous_A() {
	local n
	for n in "${nodes[@]}"; do
		watch_saw "$n" OAuthTokenIssuer previous "$A" $((instant * 1000)) >/dev/null || return 1
	done
}
check "…and every node's watcher holds A as previous" all_hold_previous_A
on node1 status
check "status after the roll: exit 0" [ "$rc" -eq 0 ]

# ------------------------------------------------------------ a stopped node
stop_watch node3
check "SIGTERM ends node3's sync --watch with exit 0" [ "$rc" -eq 0 ]
check "…saying it stopped" grep -q "sync --watch: stopped" "$T/node3/watch.err"
new_key keyC c.cluster.custody.test
C=$(thumbprint_of keyC)
import_replicable node1 keyC
set_ms=$(($(date +%s%N) / 1000000))
on node1 set -t OAuthTokenIssuer --thumbprint "$C" --force
check "node1: set C now" [ "$rc" -eq 0 ]
for n in node1 node2; do
	check "$n: its watcher reports C current" \
		wait_until 5 watch_saw "$n" OAuthTokenIssuer current "$C" "$set_ms"
done
on node1 status
check "status with node3 stopped: exit 1" [ "$rc" -eq 1 ]
check "…naming node3 alone" grep -Eq "1 of 3 nodes are not in line with the store: node3 \((stale|differs)\)" <<<"$err"
check "…and its row is not ok" grep -Eq "^node3 .* (stale|differs)$" <<<"$out"
on node1 status -o json
check "status -o json: ok false, node3 holds B and is stale or differs, the others hold C" \
	[ "$(py 'print(d["ok"], [(n["node"], n["holds"]["OAuthTokenIssuer"], n["stale"] or n["differs"]) for n in d["nodes"]])')" = \
	"False [('node1', '$C', False), ('node2', '$C', False), ('node3', '$B', True)]" ]
on node3 sync
check "node3: a one-shot sync catches up" [ "$rc" -eq 0 ]
on node1 status
check "status: exit 0 again" [ "$rc" -eq 0 ]

# ------------------------------------------------------------ a roll no watcher saw come due
# With no watcher running, a roll's instant passes and the store still
# says pending: the next sync records the roll and follows it in the
# same run (it once read the assignment before recording the roll, found
# its own record a change made while it read, and failed).
stop_watch node1
stop_watch node2
new_key keyD d.cluster.custody.test
D=$(thumbprint_of keyD)
import_replicable node1 keyD
instant=$(($(date +%s) + 3))
on node1 set -t OAuthTokenIssuer --thumbprint "$D" --roll \
	--effective-date "$(date -u -d "@$instant" +%Y-%m-%dT%H:%M:%SZ)"
check "node1: roll to D in 3 s, no watcher running" [ "$rc" -eq 0 ]
# (A roll waits until every node holds its key.)
for n in "${nodes[@]}"; do
	on "$n" sync -o json
	check "$n: a sync before the instant holds D as pending" \
		[ "$(py 'print([(i["slot"], i["held"]) for i in d["items"] if i["thumbprint"] == "'"$D"'"])')" = "[('pending', True)]" ]
done
while [ "$(date +%s)" -lt "$instant" ]; do sleep 0.1; done
check "the store still says D is pending after the instant" \
	[ "$(q "SELECT pending_thumbprint FROM assignments WHERE type = 'OAuthTokenIssuer'")" = "$D" ]
on node3 sync -o json
check "node3: the first sync after the instant exits 0" [ "$rc" -eq 0 ]
check "…records the roll and reports D current and held in the same run" \
	[ "$(py 'print([(i["slot"], i["held"]) for i in d["items"] if i["thumbprint"] == "'"$D"'"])')" = "[('current', True)]" ]
check "…saying it took effect, without a word of a conflict" \
	eval 'grep -q "the roll of OAuthTokenIssuer/global to $D took effect" <<<"$err" && ! grep -qi "changed\|conflict\|again" <<<"$err"'
check "the store says D is current" \
	[ "$(q "SELECT current_thumbprint FROM assignments WHERE type = 'OAuthTokenIssuer'")" = "$D" ]
since=$(($(date +%s%N) / 1000000))
start_watch node1 --interval 30
start_watch node2 --interval 30
for n in node1 node2; do
	check "$n: its watcher, started again, reports D current" \
		wait_until 10 watch_saw "$n" OAuthTokenIssuer current "$D" "$since"
done

# ------------------------------------------------------------ the store unreachable
gone="postgresql:///custody_test?host=$T/no-server"
before=$(token_state node3)
on node3 sync --store "$gone"
check "node3: sync with the store unreachable exits 1" [ "$rc" -eq 1 ]
check "…saying so in one line" grep -q "^custody: sync: .*store unreachable" <<<"$err"
check "…and leaves the token as it was" [ "$(token_state node3)" = "$before" ]
kidC=$(key_id_of "$C")
p11 node3 --sign --mechanism SHA256-RSA-PKCS --id "$kidC" --input-file "$T/msg" \
	--output-file "$T/sig.raw" >/dev/null 2>&1
cert_of node3 "$C" "$T/c.pem" && openssl x509 -in "$T/c.pem" -pubkey -noout >"$T/c.pub"
check "node3's token still signs with C (verified with C's certificate)" \
	openssl dgst -sha256 -verify "$T/c.pub" -signature "$T/sig.raw" "$T/msg"
start_watch node3 --store "$gone" --interval 2
sleep 3
check "sync --watch with the store unreachable keeps running" kill -0 "${watch_pid[node3]}"
check "…logging the failure once while it lasts" \
	[ "$(grep -c "store unreachable" "$T/node3/watch.err")" = 1 ]
on node1 set -t OAuthTokenIssuer --thumbprint "$B" --force
check "node1: set B again while node3 cannot reach the store" [ "$rc" -eq 0 ]
check "node2 reports B current" wait_until 5 watch_saw node2 OAuthTokenIssuer current "$B" \
	$(($(date +%s%N) / 1000000 - 3000))
on node1 status -o json
check "status says node3 is stale (or differs) and the cluster is not ok" \
	[ "$(py 'print(d["ok"], [n["node"] for n in d["nodes"] if n["stale"] or n["differs"]])')" = "False ['node3']" ]
stop_watch node3
check "SIGTERM ends it with exit 0 even while the store is unreachable" [ "$rc" -eq 0 ]

# ------------------------------------------------------------ a scan of the store
if [ -n "$pgdir" ]; then
	pg_dump -d "$store" --data-only >"$T/dump.sql" 2>"$T/dump.err"
else
	pg_dump -d "$CUSTODY_TEST_PG_URL" --data-only "${dump_args[@]}" >"$T/dump.sql" 2>"$T/dump.err"
fi
check "pg_dump of the store" [ -s "$T/dump.sql" ]
check "the store holds a package per replicated key (ciphertext only)" \
	[ "$(q 'SELECT count(*) FROM packages')" = 4 ]
# The secret numbers of each key (primes, private exponent) as hex and as
# base64 at every alignment, and its public modulus as the control that
# the scan finds what is there (in the certificates).  They reach python
# through a pipe.
scan() {
	local -n k
	for k in keyA keyB keyC keyD; do
		printf '%s\n' "$k" | openssl rsa -noout -text 2>/dev/null
		echo "--END--"
	done | python3 -c '
import base64, re, sys
dump = open(sys.argv[1], "rb").read().lower()
text = sys.stdin.read()
found_public = found_secret = 0
for block in text.split("--END--")[:-1]:
    fields = {}
    for m in re.finditer(r"^(\w+):\s*\n((?:\s+[0-9a-f:]+\n)+)", block, re.M):
        fields[m.group(1)] = bytes.fromhex(re.sub(r"[^0-9a-f]", "", m.group(2))).lstrip(b"\0")
    def seen(b):
        if b.hex().encode() in dump:
            return True
        for s in range(3):
            part = b[s:s + (len(b) - s) // 3 * 3]
            if base64.b64encode(part).lower() in dump:
                return True
        return False
    found_public += seen(fields["modulus"])
    found_secret += sum(seen(fields[f]) for f in ("privateExponent", "prime1", "prime2", "exponent1", "exponent2", "coefficient"))
print(found_public, found_secret, b"private key-----" in dump)
' "$T/dump.sql"
}
result=$(scan)
check "the scan finds each key's public modulus (in its certificate)" [ "${result%% *}" = 4 ]
check "…and no private number of any key, and no PEM private key" [ "${result#* }" = "0 False" ]

# ------------------------------------------------------------ the systemd units
units=$top/scripts/systemd
check "custody-sync.service runs sync --watch" grep -q "^ExecStart=/usr/bin/custody sync --watch$" "$units/custody-sync.service"
check "custody-sync.timer starts the one-shot service" grep -q "^Unit=custody-sync-once.service$" "$units/custody-sync.timer"
for u in custody-sync.service custody-sync-once.service; do
	check "$u is hardened" bash -c "grep -q '^NoNewPrivileges=yes' '$units/$u' &&
		grep -q '^ProtectSystem=strict' '$units/$u' && grep -q '^PrivateTmp=yes' '$units/$u' &&
		grep -q '^ReadWritePaths=/run/lock' '$units/$u' && grep -q '^CapabilityBoundingSet=$' '$units/$u'"
done
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$T/units"
	for u in custody-sync.service custody-sync-once.service custody-sync.timer; do
		sed -e "s#/usr/bin/custody#$CUSTODY_BIN#" -e '/^Documentation=/d' "$units/$u" >"$T/units/$u"
	done
	SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$T/units/custody-sync.service" \
		"$T/units/custody-sync-once.service" "$T/units/custody-sync.timer" >"$T/verify" 2>&1
	if [ ! -s "$T/verify" ]; then
		ok "systemd-analyze verify accepts the units"
	else
		not_ok "systemd-analyze verify accepts the units" "$(cat "$T/verify")"
	fi
else
	ok "systemd-analyze verify accepts the units # SKIP systemd-analyze is not installed"
fi

# ------------------------------------------------------------ a store without nodes
# Last: its import adds objects to node1's token.
make_p12 plain plain.cluster.custody.test 365
on node1 --store "sqlite:$T/plain.db" import --path "$T/plain.p12"
check "a store of one node, no cluster: import exits 0" [ "$rc" -eq 0 ]
on node1 --store "sqlite:$T/plain.db" status
check "status of a store without nodes exits 1" [ "$rc" -eq 1 ]
check "…saying no node has enrolled" grep -q "no node has enrolled" <<<"$err"

done_testing
