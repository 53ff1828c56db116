#!/usr/bin/env bash
# custody import under faults: the PKCS#11 calls of three imports fail in
# turn (CKR_DEVICE_ERROR), then abort the process in turn — every 2nd call
# and the last in make check, every call in make stress.  After each,
# token and store agree, and the same import again succeeds.
#   1. a PKCS#12 with its CA certificate, assigned as OAuthTokenIssuer
#      over a current one (key, public key, certificate, CA certificate,
#      store, assignment, audit);
#   2. a --replicable PKCS#12 assigned as Default (the trusted-KEK probe);
#   3. a certificate alone for a key already on the token.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/fault/lib.sh"
setup_fault_token
started=$(now_ms)
# make check visits every 2nd call of each walk (and the last one); make
# stress (FAULT_STRESS=1) every one.
k=${FAULT_IMPORT_K:-2}
export P12_PASSWORD=fault-import-secret

# A CA and a leaf it signs; the keys live in shell variables and reach
# openssl through pipes only.
ca_key=$(openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null)
openssl req -x509 -key <(printf '%s\n' "$ca_key") -subj "/O=custody test/CN=Fault CA" \
	-days 365 -out "$T/ca.crt" 2>/dev/null
leaf_key=$(openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null)
openssl req -new -key <(printf '%s\n' "$leaf_key") -subj "/O=custody test/CN=issuer.fault.test" \
	-addext "subjectAltName=DNS:issuer.fault.test" 2>/dev/null |
	openssl x509 -req -CA "$T/ca.crt" -CAkey <(printf '%s\n' "$ca_key") -days 200 \
		-copy_extensions copy -out "$T/leaf.crt" 2>/dev/null
openssl pkcs12 -export -inkey <(printf '%s\n' "$leaf_key") -in "$T/leaf.crt" \
	-certfile "$T/ca.crt" -name issuer -passout env:P12_PASSWORD -out "$T/new.p12"
# A renewed certificate for the leaf's key (the CA re-issues it).
openssl req -new -key <(printf '%s\n' "$leaf_key") -subj "/O=custody test/CN=renewed.fault.test" \
	2>/dev/null |
	openssl x509 -req -CA "$T/ca.crt" -CAkey <(printf '%s\n' "$ca_key") -days 100 \
		-out "$T/renewed.crt" 2>/dev/null
unset ca_key leaf_key
new=$(openssl x509 -in "$T/leaf.crt" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
renewed=$(openssl x509 -in "$T/renewed.crt" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
make_p12 old old.fault.test 300
make_p12 rep rep.fault.test 300 ec:P-256

# The base: the old certificate is the current OAuthTokenIssuer.
run import --path "$T/old.p12" -t OAuthTokenIssuer -i global
old=$out
check "the base import exits 0" [ "$rc" -eq 0 ]
save_state base

assigned() { # TYPE IDENTITY — the current thumbprint
	"$CUSTODY_BIN" get -t "$1" -i "$2" -o thumbprint 2>/dev/null
}

# 1. PKCS#12 + chain + assignment.
effect_ok() {
	local cur prev
	cur=$(assigned OAuthTokenIssuer global)
	prev=$("$CUSTODY_BIN" get -t OAuthTokenIssuer -i global -o json 2>/dev/null |
		python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["previous"]["thumbprint"])' 2>/dev/null)
	[ "$cur" = "$new" ] && [ "$prev" = "$old" ] && return 0
	why="OAuthTokenIssuer/global is current=$cur previous=$prev, not $new / $old"
	return 1
}
walk import base fail "$k" -- import --path "$T/new.p12" --password-source env:P12_PASSWORD \
	-t OAuthTokenIssuer -i global --force
n_chain=$walk_count
walk import base abort "$k" -- import --path "$T/new.p12" --password-source env:P12_PASSWORD \
	-t OAuthTokenIssuer -i global --force

# 2. A replicable key (the token is probed for a trusted private KEK).
effect_ok() {
	local cur want
	want=$(thumbprint_of_p12 rep)
	cur=$(assigned Default node1)
	[ "$cur" = "$want" ] && return 0
	why="Default/node1 is $cur, not $want"
	return 1
}
walk import base fail "$k" -- import --path "$T/rep.p12" --replicable -t Default
n_rep=$walk_count
walk import base abort "$k" -- import --path "$T/rep.p12" --replicable -t Default

# 3. A certificate alone, for a key already on the token.
restore_state base
run import --path "$T/new.p12" --password-source env:P12_PASSWORD
check "the key of the renewed certificate is imported" [ "$rc" -eq 0 ]
save_state withkey
effect_ok() {
	if "$CUSTODY_BIN" list -o json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
c = [x for x in d if x["thumbprint"] == sys.argv[1]]
sys.exit(0 if c and c[0]["has_private_key"] else 1)' "$renewed"; then
		return 0
	fi
	why="the renewed certificate is not listed with its private key"
	return 1
}
walk import withkey fail "$k" -- import --path "$T/renewed.crt"
n_alone=$walk_count
walk import withkey abort "$k" -- import --path "$T/renewed.crt"

echo "# calls walked: PKCS#12 with chain and assignment $n_chain, replicable $n_rep," \
	"certificate alone $n_alone (each failed, then aborted); every ${k}th visited" \
	"(stress: $STRESS); $(($(now_ms) - started)) ms"
done_testing
