#!/usr/bin/env bash
# Every write previewable, the dangerous ones guarded: --dry-run on import,
# set, remove, delete, export and tidy prints the plan (text on stderr; with
# -o json an object on stdout with "dry_run": true) and writes nothing (the
# store's rows and the token's bytes unchanged); a dry run is refused as
# the command would be.  Removing a current certificate, replacing a
# pending roll and an immediate set of OAuthTokenIssuer need --force
# without a terminal (exit 2, one line saying what would break, nothing
# written).
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" <<<"$out"; }
# bytes — the token's object files and the store's file, hashed as they
# are (not SoftHSM's token.object: every login rewrites its flags, a
# read's too).
bytes() {
	{
		object_files | xargs -r sha256sum
		[ -f "$T/custody.db" ] && sha256sum "$T/custody.db"
	} | sha256sum | cut -d' ' -f1
}
snap() { s0=$(state); b0=$(bytes); }
# on_tty INPUT ARGS... — custody on a pseudo-terminal (its standard input,
# output and error), INPUT typed once it asks; prints what it printed,
# exits with its status.
on_tty() {
	python3 - "$@" <<'PY'
import os, pty, select, sys
typed, args = sys.argv[1].encode(), sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(os.environ["CUSTODY_BIN"], [os.environ["CUSTODY_BIN"]] + args)
seen, sent = b"", False
while select.select([fd], [], [], 20)[0]:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    seen += data
    if not sent and b"type yes to go on" in seen:
        os.write(fd, typed + b"\n")
        sent = True
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
PY
}
unchanged() { [ "$(state)" = "$s0" ] && [ "$(bytes)" = "$b0" ]; }
# refused_alike WHAT ARGS... — the write ARGS is refused, and ARGS
# --dry-run is refused with the same exit status.
refused_alike() {
	local what=$1 real
	shift
	run "$@"
	real=$rc
	run "$@" --dry-run
	check "$what: refused ($real), and its dry run alike" [ "$real" -ne 0 -a "$rc" -eq "$real" ]
}
soon=$(date -u -d '+10 days' +%Y-%m-%dT%H:%M:%SZ)
later=$(date -u -d '+20 days' +%Y-%m-%dT%H:%M:%SZ)

make_p12 a a.custody.test 365
make_p12 b b.custody.test 365
make_p12 c c.custody.test 365
A=$(thumbprint_of_p12 a)
B=$(thumbprint_of_p12 b)
C=$(thumbprint_of_p12 c)
db=${CUSTODY_STORE#sqlite:}

# ------------------------------------------------------------ import
snap
run import --path "$T/a.p12" --dry-run
check "import --dry-run with no store: refused" [ "$rc" -ne 0 ]
check "…and made no store, nothing on the token" [ ! -e "$db" ]
check "…token bytes unchanged" unchanged
run import --path "$T/a.p12"
check "import (the first write): exit 0" [ "$rc" -eq 0 ]

snap
run import --path "$T/b.p12" -t OAuthTokenIssuer --dry-run -o json
check "import -t --dry-run -o json: exit 0" [ "$rc" -eq 0 ]
check "…command import, dry_run true" [ "$(py 'print(d["command"], d["dry_run"])')" = "import True" ]
check "…creates the certificate and its private key on the token" \
	[ "$(py 'print(" ".join(o["object"] for o in d["created"] if o["where"] == "token"))')" = "certificate private_key" ]
check "…the certificate's thumbprint" \
	[ "$(py 'print([o.get("thumbprint") for o in d["created"]][0])')" = "$B" ]
check "…and the change: OAuthTokenIssuer/global current none -> B" \
	[ "$(py 'c=d["changes"][0]; print(c["type"], c["identity"], c["slot"], c["old_thumbprint"], c["new_thumbprint"])')" = "OAuthTokenIssuer global current None $B" ]
check "…nothing written" unchanged
run import --path "$T/b.p12" -t OAuthTokenIssuer --dry-run
check "import --dry-run (text): exit 0, nothing on stdout" [ "$rc" -eq 0 -a -z "$out" ]
check "…says what it would create" grep -q "would create certificate $B" <<<"$err"
check "…and the change" grep -q "would change (dry run, nothing written)" <<<"$err"
check "…nothing written" unchanged
run import --path "$T/b.p12" -t OAuthTokenIssuer --roll --dry-run
check "import --roll without --effective-date --dry-run: exit 2 as without --dry-run" [ "$rc" -eq 2 ]
check "…nothing written" unchanged
for p in b c; do "$CUSTODY_BIN" -q import --path "$T/$p.p12" >/dev/null || not_ok "import $p"; done

# ------------------------------------------------------------ set
run set -t OAuthTokenIssuer --thumbprint "$A"
check "the first set of OAuthTokenIssuer (nothing current) needs no --force" [ "$rc" -eq 0 ]
snap
run set -t OAuthTokenIssuer --thumbprint "$B" -o json
check "set -o json without --dry-run, replacing the signing certificate: the guard refuses (exit 2)" [ "$rc" -eq 2 ]
run set -t OAuthTokenIssuer --thumbprint "$B" --dry-run -o json
check "set --dry-run -o json: exit 0" [ "$rc" -eq 0 ]
check "…the plan: current A -> B, previous -> A" \
	[ "$(py 'print(sorted((c["slot"], c["old_thumbprint"], c["new_thumbprint"]) for c in d["changes"]))')" = "[('current', '$A', '$B'), ('previous', None, '$A')]" ]
check "…each change has its effective date" py 'assert all(c["effective"] for c in d["changes"])'
check "…warns that the signing key changes at once" py 'assert any("signs every token" in w for w in d["warnings"])'
check "…nothing written" unchanged
run set -t OAuthTokenIssuer --thumbprint "$B" </dev/null
check "an immediate set of OAuthTokenIssuer without a terminal: exit 2" [ "$rc" -eq 2 ]
check "…one line saying what would break" \
	grep -q "^custody: set: OAuthTokenIssuer/global's current certificate $A signs every token: .*--force" <<<"$err"
check "…nothing written" unchanged
# import -t is the same change, guarded the same way.
make_p12 d d.custody.test 365
D=$(thumbprint_of_p12 d)
run import --path "$T/d.p12" -t OAuthTokenIssuer --dry-run -o json
check "import -t over the current OAuthTokenIssuer --dry-run: the plan warns" \
	[ "$rc" -eq 0 -a "$(py 'print(any("signs every token" in w for w in d["warnings"]))')" = True ]
run import --path "$T/d.p12" -t OAuthTokenIssuer </dev/null
check "import -t over the current OAuthTokenIssuer without a terminal: exit 2" [ "$rc" -eq 2 ]
check "…one line saying what would break" \
	grep -q "^custody: import: OAuthTokenIssuer/global's current certificate $A signs every token: .*--force" <<<"$err"
check "…nothing written (no certificate, no key on the token)" unchanged
run import --path "$T/d.p12" -t OAuthTokenIssuer --roll --effective-date "$(date -u -d '+2 days' +%Y-%m-%dT%H:%M:%SZ)"
check "import -t --roll (staged, not at once) needs no --force" [ "$rc" -eq 0 -a "$out" = "$D" ]
run remove -t OAuthTokenIssuer --pending
check "…(the staged roll removed again)" [ "$rc" -eq 0 ]
snap
run set -t OAuthTokenIssuer --thumbprint "$B" --force -o json
check "set --force: exit 0" [ "$rc" -eq 0 ]
check "…-o json: what was done, as the plan's data (dry_run false, current A -> B)" \
	[ "$(py 'print(d["command"], d["dry_run"], [(c["slot"], c["old_thumbprint"], c["new_thumbprint"]) for c in d["changes"] if c["slot"] == "current"])')" = "set False [('current', '$A', '$B')]" ]
check "…B is current" [ "$("$CUSTODY_BIN" get -t OAuthTokenIssuer -o thumbprint 2>/dev/null)" = "$B" ]

run set -t OAuthTokenIssuer --thumbprint "$A" --roll --effective-date "$soon"
check "a roll (no pending one) needs no --force" [ "$rc" -eq 0 ]
snap
run set -t OAuthTokenIssuer --thumbprint "$C" --roll --effective-date "$later" --dry-run -o json
check "set --roll replacing a pending roll, --dry-run: exit 0" [ "$rc" -eq 0 ]
check "…the plan: pending A -> C" \
	[ "$(py 'print([(c["slot"], c["old_thumbprint"], c["new_thumbprint"]) for c in d["changes"]])')" = "[('pending', '$A', '$C')]" ]
check "…warns of the replaced roll" py 'assert any("has a roll to '"$A"' pending" in w for w in d["warnings"])'
check "…nothing written" unchanged
run set -t OAuthTokenIssuer --thumbprint "$C" --roll --effective-date "$later" </dev/null
check "set --roll replacing a pending roll without a terminal: exit 2" [ "$rc" -eq 2 ]
check "…says so, and --force" grep -q "has a roll to $A pending for .*--force to replace it anyway" <<<"$err"
check "…nothing written" unchanged
run set -t OAuthTokenIssuer --thumbprint "$C" --roll --effective-date "$later" --force
check "…with --force: exit 0" [ "$rc" -eq 0 ]

# ------------------------------------------------------------ remove
snap
run remove -t OAuthTokenIssuer --dry-run -o json
check "remove --dry-run -o json (the current one): exit 0" [ "$rc" -eq 0 ]
check "…command remove, dry_run true" [ "$(py 'print(d["command"], d["dry_run"])')" = "remove True" ]
check "…the plan: current B -> none" \
	[ "$(py 'print([(c["slot"], c["old_thumbprint"], c["new_thumbprint"]) for c in d["changes"]])')" = "[('current', '$B', None)]" ]
check "…warns that token issuing stops" py 'assert any("stops token issuing" in w for w in d["warnings"])'
check "…nothing written" unchanged
run remove -t OAuthTokenIssuer --dry-run
check "remove --dry-run (text): exit 0, says it would remove" \
	[ "$rc" -eq 0 -a -n "$(grep 'would remove the current certificate' <<<"$err")" ]
check "…nothing written" unchanged
run remove -t OAuthTokenIssuer </dev/null
check "remove of the current OAuthTokenIssuer without a terminal: exit 2" [ "$rc" -eq 2 ]
check "…one line: what would break" \
	grep -q "^custody: remove: OAuthTokenIssuer/global's current certificate $B signs every token: removing it stops token issuing on every node; --force to remove it anyway$" <<<"$err"
check "…nothing written" unchanged
run remove -t OAuthTokenIssuer --pending --dry-run -o json
check "remove --pending --dry-run: exit 0, no warning" [ "$rc" -eq 0 -a "$(py 'print(len(d["warnings"]))')" = 0 ]
check "…nothing written" unchanged

"$CUSTODY_BIN" -q set -t Default --thumbprint "$A" || not_ok "set Default"
snap
run remove -t Default </dev/null
check "remove of another type's current certificate: exit 2 too" [ "$rc" -eq 2 ]
check "…says what would break" grep -q "Default/node1's current certificate $A is in use: .*--force" <<<"$err"
check "…nothing written" unchanged
run remove -t Default --force -o json
check "remove --force: exit 0" [ "$rc" -eq 0 ]
check "…-o json: what was removed (dry_run false, current A -> none)" \
	[ "$(py 'print(d["command"], d["dry_run"], [(c["old_thumbprint"], c["new_thumbprint"]) for c in d["changes"] if c["slot"] == "current"])')" = "remove False [('$A', None)]" ]

"$CUSTODY_BIN" -q set -t Default --thumbprint "$A" || not_ok "set Default again"
"$CUSTODY_BIN" -q set -t Default --thumbprint "$B" || not_ok "set Default to B"
snap
refused_alike "remove --previous inside the overlap" remove -t Default --previous
check "…nothing written" unchanged

# On a terminal custody asks; only "yes" goes on.
snap
out=$(on_tty no remove -t Default)
rc=$?
check "remove of a current certificate on a terminal asks" grep -q "type yes to go on" <<<"$out"
check "…answered no: exit 2, nothing written" [ "$rc" -eq 2 ]
check "…nothing written" unchanged
out=$(on_tty yes remove -t Default)
rc=$?
check "…answered yes: exit 0" [ "$rc" -eq 0 ]
check "…and Default has no current certificate" \
	[ -z "$("$CUSTODY_BIN" get -t Default -o thumbprint 2>/dev/null)" ]

# ------------------------------------------------------------ delete
snap
run delete --thumbprint "$C" --dry-run -o json
real_err=$err
run delete --thumbprint "$C"
check "delete of a pending certificate: the dry run is refused as the delete is" [ "$rc" -eq 1 ]
check "…nothing written" unchanged
run delete --thumbprint "$C" --force --dry-run -o json
check "delete --force --dry-run -o json: exit 0" [ "$rc" -eq 0 ]
check "…deletes the certificate and its keys from the token" \
	[ "$(py 'print(" ".join(sorted(o["object"] for o in d["deleted"])))')" = "certificate private_key public_key" ]
check "…clears the pending slot" \
	[ "$(py 'print([(c["slot"], c["old_thumbprint"], c["new_thumbprint"]) for c in d["changes"]])')" = "[('pending', '$C', None)]" ]
check "…nothing written" unchanged

# ------------------------------------------------------------ tidy
run tidy -o json
check "tidy -o json (a dry run by default): dry_run true" [ "$rc" -eq 0 -a "$(py 'print(d["command"], d["dry_run"])')" = "tidy True" ]
check "…nothing written" unchanged

# ------------------------------------------------------------ export
touch "$T/exists.pkg"
refused_alike "export to an existing file" export --thumbprint "$A" --out "$T/exists.pkg"
run export --thumbprint "$A" --out "$T/new.pkg" --dry-run
real=$rc
check "export --dry-run: no file made" [ ! -e "$T/new.pkg" ]
check "…nothing written" unchanged
run export --thumbprint "$A" --out "$T/new.pkg"
check "…refused the same way as export when there is nothing to wrap it under ($real)" [ "$rc" -eq "$real" ]
rm -f "$T/new.pkg"


# ------------------------------------------------------------ request
snap
run request --subject "CN=dry.custody.test,O=custody test" --key rsa:3072 --csr "$T/dry.csr" --dry-run -o json
check "request --csr --dry-run -o json: exit 0" [ "$rc" -eq 0 ]
check "…the plan: a key pair on the token and the request file" \
	[ "$(py 'print(d["command"], d["dry_run"], [(o["object"], o["where"]) for o in d["created"]])')" = "request True [('key_pair', 'token'), ('csr_file', '$T/dry.csr')]" ]
check "…no request file made" [ ! -e "$T/dry.csr" ]
check "…no key generated, nothing written" unchanged
touch "$T/exists.csr"
refused_alike "request to an existing file" request --subject "CN=dry.custody.test" --csr "$T/exists.csr"
check "…with exit 1" [ "$rc" -eq 1 ]
check "…nothing written" unchanged
refused_alike "request of a key spec refused" request --subject "CN=dry.custody.test" --key rsa:1024 --csr "$T/dry.csr"
check "…nothing written" unchanged
run request --subject "CN=self.custody.test" --self-signed --days 30 -t Default -i global --dry-run -o json
check "request --self-signed -t --dry-run -o json: a certificate, its record and the change" \
	[ "$rc" -eq 0 -a "$(py 'print([o["object"] for o in d["created"]], [(c["type"], c["identity"], c["slot"]) for c in d["changes"]])')" = "['key_pair', 'certificate', 'certificate_record'] [('Default', 'global', 'current')]" ]
check "…nothing written" unchanged
run request --key-id "$(py 'print("0"*40)' <<<'{}')" --subject "CN=x" --csr "$T/dry.csr" --dry-run
check "request --key-id of no key --dry-run: refused as request is (exit 1)" [ "$rc" -eq 1 -a ! -e "$T/dry.csr" ]
check "…nothing written" unchanged

done_testing
