#!/usr/bin/env bash
# custody in five minutes, on a throwaway SoftHSM token under ./demo/:
# installs what is missing, builds, creates the token, makes a demo PKCS#12,
# imports it as the global OAuthTokenIssuer certificate, stages a second
# certificate to roll in two days, and shows the assignment.
#
# Idempotent: each run starts a fresh ./demo/ (the old one is removed).
# Nothing here writes a plaintext private key to disk: keys travel from
# openssl to an encrypted PKCS#12 through a pipe, and the PKCS#12 files are
# deleted once imported.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

say() { printf '\n==> %s\n' "$*" >&2; }

say "checking build dependencies"
scripts/install-deps.sh
say "building custody"
scripts/build.sh
custody="$top/build/custody"

module=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do
	[ -f "$m" ] && module=$m && break
done
[ -n "$module" ] || { echo "quickstart: SoftHSM2 module not found" >&2; exit 1; }

demo="$top/demo"
say "creating a throwaway SoftHSM token in $demo"
rm -rf "$demo"
mkdir -p "$demo/lock"
chmod 700 "$demo"
umask 077
export CUSTODY_LOCK_DIR="$demo/lock" CUSTODY_BIN="$custody" SOFTHSM_MODULE="$module"
eval "$(scripts/softhsm-token.sh "$demo" custody-demo)"
cat > "$demo/custody.conf" <<CONF
[token]
module = $module
label = custody-demo
pin-source = file:$demo/user.pin
lock-dir = $demo/lock

[store]
url = sqlite:$demo/custody.db

[node]
name = node1
CONF
cat > "$demo/env.sh" <<ENV
# . demo/env.sh — then run custody commands against the demo token
export SOFTHSM2_CONF=$demo/softhsm2.conf
export CUSTODY_CONFIG=$demo/custody.conf
export PATH=$top/build:\$PATH
ENV
# From here on the config file says it all.
unset CUSTODY_MODULE CUSTODY_TOKEN CUSTODY_PIN_SOURCE CUSTODY_SO_PIN_SOURCE CUSTODY_LOCK_DIR \
	CUSTODY_STORE CUSTODY_NODE
export CUSTODY_CONFIG="$demo/custody.conf"

# A PKCS#12 like the one a CA hands out: key and certificate made by openssl,
# the key passed to `openssl pkcs12` through a pipe, never written in clear.
export CUSTODY_DEMO_P12_PASSWORD
CUSTODY_DEMO_P12_PASSWORD=$(openssl rand -base64 18)
make_p12() { # NAME CN DAYS
	openssl req -x509 -newkey rsa:2048 -noenc -keyout - -out - \
		-subj "/O=custody demo/CN=$2" -addext "subjectAltName=DNS:$2" \
		-days "$3" 2>/dev/null |
		openssl pkcs12 -export -name "$2" \
			-passout env:CUSTODY_DEMO_P12_PASSWORD -out "$demo/$1.p12"
}

say "making a demo PKCS#12 (RSA-2048) and importing it as the global OAuthTokenIssuer"
make_p12 issuer-2026 oauth.custody.example 365
"$custody" import --path "$demo/issuer-2026.p12" --password-source env:CUSTODY_DEMO_P12_PASSWORD \
	-t OAuthTokenIssuer -i global
rm -f "$demo/issuer-2026.p12"

effective=$(date -u -d '+2 days' +%Y-%m-%dT%H:%M:%SZ)
say "staging its successor to become current at $effective (--roll)"
make_p12 issuer-2027 oauth.custody.example 730
"$custody" import --path "$demo/issuer-2027.p12" --password-source env:CUSTODY_DEMO_P12_PASSWORD \
	-t OAuthTokenIssuer -i global --roll --effective-date "$effective"
rm -f "$demo/issuer-2027.p12"
unset CUSTODY_DEMO_P12_PASSWORD

say "custody get (the assignment now)"
"$custody" get
say "custody get --at $effective (after the roll: the old certificate is previous)"
"$custody" get -t OAuthTokenIssuer --at "$effective" -o json
say "custody list (what the token holds)"
"$custody" list

cat >&2 <<DONE

Done. To keep going with the demo token:
    . demo/env.sh
    custody get -t OAuthTokenIssuer -o thumbprint
    custody --help
DONE
