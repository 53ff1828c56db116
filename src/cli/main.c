/*
 * main.c — the `custody` command: global options, the one dispatch table,
 * and the one place where an error becomes text and an exit status.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <custody/log.h>
#include <custody/secret.h>

#include "cli.h"

const struct command cli_commands[] = {
	{"get", cmd_get, CLI_AT_READS, "show assignments (Get-CsCertificate)",
	 "custody get [-t TYPE] [-i IDENTITY] [-o table|json|thumbprint|pem|uri]\n"
	 "\n"
	 "Shows assignments from the store: every one without -t; with -t, the one\n"
	 "that applies on this node (its own identity if the type is assigned there,\n"
	 "else global); with -i, exactly that identity. Needs no token and no PIN.\n"
	 "\n"
	 "  -t, --type TYPE          certificate type (OAuthTokenIssuer, Default, ...)\n"
	 "  -i, --identity IDENTITY  global or a node name\n"},
	{"import", cmd_import, CLI_AT_WRITES, "import a PKCS#12, PEM or certificate onto the token (Import-CsCertificate)",
	 "custody import --path FILE [--password-source SRC] [--label LABEL] [--replicable]\n"
	 "               [-t TYPE [-i IDENTITY] [--roll --effective-date TIME]]\n"
	 "custody import --package FILE [--label LABEL] [-t TYPE ...]\n"
	 "\n"
	 "Creates the private key and the certificate (and the chain's CA certificates)\n"
	 "on the token under one key id, records the certificate in the store, and\n"
	 "prints its thumbprint. Everything is checked before anything is written.\n"
	 "\n"
	 "  --path FILE               PKCS#12 (.pfx/.p12), PEM (certificate + key), or a\n"
	 "                            certificate alone whose key is already on the token\n"
	 "  --password-source SRC     file:PATH, env:VAR, fd:N or prompt\n"
	 "  --label LABEL             CKA_LABEL (default: the subject CN)\n"
	 "  --replicable              extractable (only under trusted wrap where the token\n"
	 "                            can hold a trusted KEK); on a cluster member its\n"
	 "                            package (wrapped under the KEK) goes to the store\n"
	 "  --package FILE            a key package from custody export: unwrapped under\n"
	 "                            this token's KEK (sensitive, never extractable)\n"
	 "  -t, --type TYPE           also assign it, as `custody set` does\n"
	 "  -i, --identity IDENTITY   where to assign it\n"
	 "  --roll --effective-date TIME   stage it to become current at TIME\n"},
	{"set", cmd_set, CLI_AT_PREVIEWS, "assign a certificate to a type (Set-CsCertificate)",
	 "custody set -t TYPE (--thumbprint X | --from-type OTHER) [-i IDENTITY]\n"
	 "            [--roll --effective-date TIME] [--dry-run]\n"
	 "\n"
	 "Without --roll the certificate becomes current now and the old current\n"
	 "becomes previous (a pending roll is cancelled). With --roll it becomes\n"
	 "pending and turns current at TIME on every node.\n"
	 "\n"
	 "  -t, --type TYPE           certificate type\n"
	 "  --thumbprint X            SHA-1 thumbprint, SHA-256 fingerprint or a unique\n"
	 "                            prefix of at least 8 hex digits\n"
	 "  --from-type OTHER         the current certificate of another type\n"
	 "  -i, --identity IDENTITY   global or a node name\n"
	 "  --roll --effective-date TIME   stage a roll\n"
	 "  --dry-run                 print what would change, change nothing; the\n"
	 "                            one write that takes --at TIME (a preview at TIME)\n"},
	{"list", cmd_list, CLI_AT_READS, "list the certificates on the token",
	 "custody list [-o table|json]\n"
	 "\n"
	 "Certificates on the token with their key, key id and assignments.\n"},
	{"remove", cmd_remove, CLI_AT_WRITES, "remove a certificate from an assignment (Remove-CsCertificate)",
	 "custody remove -t TYPE [-i IDENTITY] [--previous | --pending] [--force]\n"
	 "\n"
	 "Removes the current (default), previous or pending certificate from an\n"
	 "assignment. Token objects stay. A previous certificate inside its overlap\n"
	 "window needs --force.\n"},
	{"delete", cmd_delete, CLI_AT_WRITES, "destroy a certificate, and its key when no other certificate uses it",
	 "custody delete --thumbprint X [--force] [--dry-run]\n"
	 "\n"
	 "Destroys the certificate on the token, and its key (private and public key\n"
	 "objects) when no other certificate on the token has its key id; when one\n"
	 "has (a renewal on the same key), the key stays and says which certificate\n"
	 "uses it. Refused while an assignment refers to the certificate, unless\n"
	 "--force (which also clears those slots). A key that would go while an\n"
	 "assignment names another certificate on it is refused, even with --force.\n"
	 "Its key package (cluster) leaves the store with it. Each object destroyed,\n"
	 "and the package, gets its own audit entry.\n"
	 "\n"
	 "  --thumbprint X            SHA-1 thumbprint, SHA-256 fingerprint or a unique\n"
	 "                            prefix of at least 8 hex digits\n"
	 "  --force                   also clear the assignment slots that name X\n"
	 "  --dry-run                 print each object and slot that would go, change\n"
	 "                            nothing\n"},
	{"request", cmd_request, CLI_AT_WRITES, "generate a key pair inside the token: a CSR or a self-signed certificate (Request-CsCertificate)",
	 "custody request --subject DN [--san DNS:a,DNS:b,...] [--key SPEC] [--label L]\n"
	 "                [--replicable] (--csr FILE | --self-signed --days N\n"
	 "                [-t TYPE [-i IDENTITY] [--roll --effective-date TIME]])\n"
	 "\n"
	 "Generates the key pair inside the token (never outside; not extractable),\n"
	 "then writes a PKCS#10 request signed by it to a new FILE, or creates a\n"
	 "self-signed certificate on the token and records it (optionally assigned).\n"
	 "Import the CA-issued certificate later with `custody import --path CERT`.\n"
	 "Prints the key id (--csr) or the certificate's thumbprint (--self-signed).\n"
	 "\n"
	 "  --subject DN              \"CN=sts.example.com,O=Example\" (or \"/O=Example/CN=...\")\n"
	 "  --san LIST                DNS:NAME, IP:ADDRESS, email:ADDRESS, URI:URI, comma-separated\n"
	 "  --key SPEC                rsa:2048 (default), rsa:3072, rsa:4096, ec:p256, ec:p384\n"
	 "  --label L                 CKA_LABEL (default: the subject CN); must be new on the token\n"
	 "  --replicable              extractable only under trusted wrap (for the cluster)\n"
	 "  --csr FILE                write the request there (an existing file is never overwritten)\n"
	 "  --self-signed --days N    make a self-signed certificate valid for N days\n"
	 "  -t, --type TYPE           also assign it, as `custody set` does\n"
	 "  -i, --identity IDENTITY   where to assign it\n"
	 "  --roll --effective-date TIME   stage it to become current at TIME\n"},
	{"metadata", cmd_metadata, CLI_AT_READS, "publish the verification keys of a type (JWKS or S2S metadata)",
	 "custody metadata [-t TYPE] [--format jwks|s2s]\n"
	 "\n"
	 "Prints the certificates a relying party must trust for TYPE (default\n"
	 "OAuthTokenIssuer): current, pending (published as soon as it is staged) and\n"
	 "previous, as a JWK Set (RFC 7517: kid, x5t, x5c) or as the server-to-server\n"
	 "metadata document (keys[].usage, keyinfo.x5t, keyvalue). kid = x5t = the\n"
	 "base64url SHA-1 thumbprint. Opens the token (user PIN) to check the\n"
	 "integrity tags of the records it publishes.\n"
	 "\n"
	 "  -t, --type TYPE          certificate type (default OAuthTokenIssuer)\n"
	 "  --format jwks|s2s        document format (default jwks)\n"},
	{"init-token", cmd_init_token, CLI_AT_WRITES, "initialise a fresh token (SoftHSM, test tokens)",
	 "custody init-token --label LABEL --so-pin-source SRC --pin-source SRC\n"
	 "\n"
	 "Initialises the first uninitialised token of the module with LABEL, the\n"
	 "security officer PIN and the user PIN, both read from their sources.\n"},
	{"test", cmd_test, CLI_AT_READS, "check the assigned certificates and keys (Test-CsCertificateConfiguration)",
	 "custody test [-t TYPE] [--warn-days N] [-o table|json]\n"
	 "\n"
	 "Checks every assignment at global and at this node's identity (with -t, those\n"
	 "of TYPE): something is current; its private key is on this node's token and\n"
	 "signs what its certificate verifies; key size and SIP domain policy; valid now;\n"
	 "expiry within N days; a pending certificate valid at its effective date; the\n"
	 "previous certificate's key. One line per check: OK|WARNING|CRITICAL\n"
	 "TYPE/IDENTITY: WHAT. Exit status as monitoring plugins: 0 OK, 1 WARNING,\n"
	 "2 CRITICAL, 3 UNKNOWN (the checks could not run, or a usage error).\n"
	 "\n"
	 "  -t, --type TYPE          only this type\n"
	 "  --warn-days N            WARNING when a certificate expires within N days\n"
	 "                           (default policy.warn-days, 30)\n"},
	{"wizard", cmd_wizard, CLI_AT_WRITES, "assign a certificate step by step, in a terminal",
	 "custody wizard\n"
	 "\n"
	 "The Deployment Wizard's certificate assignment: choose the type (with what\n"
	 "is assigned now), the identity where the type allows a choice, a certificate\n"
	 "from the token, now or a roll at a date; read the summary (as set --dry-run\n"
	 "prints it), confirm, see the result. At every question a number chooses,\n"
	 "b goes back one step, q cancels (exit 0, nothing changed); Ctrl-C exits 130\n"
	 "and changes nothing. The store is written only after the confirmation.\n"
	 "Needs a terminal on standard input and output (else exit 2: use set).\n"},
	{"sign", cmd_sign, CLI_AT_READS, "sign a file with the current key of a type (raw signature out)",
	 "custody sign -t TYPE [-i IDENTITY] [--in FILE] [--out FILE] [--digest sha256|sha384|sha512]\n"
	 "\n"
	 "Signs FILE (default: standard input) with the private key of the certificate\n"
	 "current for TYPE (at --at TIME, or now) and writes the raw signature: RSA\n"
	 "PKCS#1 v1.5 bytes, or a DER ECDSA-Sig-Value, as `openssl dgst -sign` makes\n"
	 "them. Check one with:\n"
	 "  openssl dgst -sha256 -verify <(custody get -t TYPE -o pem | openssl x509 -pubkey -noout) \\\n"
	 "    -signature SIG FILE\n"
	 "Exit 3 when nothing is assigned for TYPE; 1 when its key is not on the token.\n"
	 "\n"
	 "  -t, --type TYPE          certificate type\n"
	 "  -i, --identity IDENTITY  global or a node name (default: this node's, else global)\n"
	 "  --in FILE                what to sign (default: standard input)\n"
	 "  --out FILE               where the signature goes, a new file (default:\n"
	 "                           standard output); an existing file is never overwritten\n"
	 "  --digest NAME            sha256 (default), sha384 or sha512\n"},
	{"audit", cmd_audit, CLI_AT_READS, "show or verify the hash-chained audit log",
	 "custody audit [--since TIME] [--verify] [-o table|json]\n"
	 "\n"
	 "Shows the append-only audit log, one line per change:\n"
	 "TIME NODE ACTOR ACTION TYPE/IDENTITY THUMBPRINT [<- PREVIOUS] DETAIL.\n"
	 "Entries are hash-chained and the store keeps the head (the newest hash);\n"
	 "--verify checks every entry, the chain and the head, prints\n"
	 "\"audit log verified: N entries, head HASH\", or exits 1 naming the first\n"
	 "entry that was edited, removed or reordered, or where the log was cut.\n"
	 "Whoever can write the store can rewrite the whole chain: keep the head\n"
	 "printed by --verify somewhere else and compare it later.\n"
	 "\n"
	 "  --since TIME             only entries at or after TIME (ISO 8601)\n"
	 "  --verify                 check the whole chain and the head\n"},
	{"jwt", cmd_jwt, CLI_AT_READS, "issue or verify a JWT signed with the current key of a type",
	 "custody jwt issue [-t TYPE] --claims JSON|@FILE [--lifetime SECONDS] [--alg RS256|PS256|ES256]\n"
	 "custody jwt verify [-t TYPE] [--skew SECONDS] [--aud AUDIENCE] [--iss ISSUER] TOKEN|-\n"
	 "\n"
	 "issue signs a compact JWS with the current key of TYPE (default\n"
	 "OAuthTokenIssuer) on the token; its header carries x5t and kid (the\n"
	 "base64url SHA-1 thumbprint). iat, nbf and exp (now + lifetime, default\n"
	 "3600 s) are added unless the claims hold them. The algorithm follows the\n"
	 "key: RS256 for RSA, ES256 for EC P-256; --alg PS256 for RSA-PSS.\n"
	 "verify checks what the store says with the token (its integrity tags)\n"
	 "and accepts a token signed by the current or\n"
	 "the previous certificate (a pending one once it is current), checks\n"
	 "exp and nbf with a skew (default 60 s), that the certificate which signed\n"
	 "is within its validity period now, aud and iss when asked to, and prints\n"
	 "the claims.\n"
	 "\n"
	 "  -t, --type TYPE       certificate type\n"
	 "  --claims JSON|@FILE   the claims, a JSON object (@- reads standard input)\n"
	 "  --lifetime SECONDS    exp = now + SECONDS when the claims have no exp\n"
	 "  --alg ALG             RS256, PS256 or ES256\n"
	 "  --skew SECONDS        clock skew allowed for exp and nbf\n"
	 "  --aud AUDIENCE        verify: the aud claim must be AUDIENCE (or an array\n"
	 "                        holding it)\n"
	 "  --iss ISSUER          verify: the iss claim must be ISSUER\n"},
	{"tidy", cmd_tidy, CLI_AT_WRITES, "list (and with --yes destroy) what interrupted custody work left on the token",
	 "custody tidy [--dry-run | --yes] [-o table|json]\n"
	 "\n"
	 "Before custody creates key objects (import, request, import --package) it\n"
	 "leaves a note of intent on the token, and removes it once the store records\n"
	 "the key. A note still there names objects that an interrupted process was\n"
	 "making. tidy lists, for each note, the objects of its key id: when nothing in\n"
	 "the store names the key id (no certificate record, package, assignment or\n"
	 "pending CSR) they would be destroyed; otherwise they stay and only the note\n"
	 "goes. Objects without a note (another application's, custody's finished\n"
	 "ones, torn objects without CKA_ID) are never listed. One audit entry \"tidy\"\n"
	 "per key id whose objects go.\n"
	 "\n"
	 "  --dry-run                 list only (the default)\n"
	 "  --yes                     destroy what is listed\n"},
	{"sync", cmd_sync, CLI_AT_WRITES, "bring this node's token in line with the store (cluster)",
	 "custody sync [--watch [--interval SECONDS]] [-o table|json]\n"
	 "\n"
	 "For every global assignment (current, previous, pending) makes sure this\n"
	 "node's token holds the key and the certificate: unwraps a missing key from\n"
	 "its package under the cluster KEK (sensitive, never extractable), checks\n"
	 "each key against its certificate (sign + verify), records rolls that came\n"
	 "due, and reports to the store what this node holds. Idempotent and safe to\n"
	 "interrupt. It follows the clock (--at is refused). One line per key:\n"
	 "TYPE SLOT THUMBPRINT held|unwrapped|repaired|refused. A key object with the\n"
	 "key id of an assigned certificate that fails the check (what an interrupted\n"
	 "sync can leave) is destroyed and unwrapped again when the store holds its\n"
	 "package, and said so (audit entry \"repair\"); without a package it is kept\n"
	 "and named.\n"
	 "Exit 1 when the store or the token cannot be used or a key is not held\n"
	 "(the token keeps what it holds: the node goes on signing with it).\n"
	 "\n"
	 "With --watch it stays up: it syncs on every change of the store\n"
	 "(PostgreSQL LISTEN/NOTIFY; SQLite is asked every 100 ms), at the instant of\n"
	 "each pending roll, and every SECONDS (default 30). The token is opened for\n"
	 "a sync only. A store or token it cannot use is logged and tried again with\n"
	 "growing pauses; SIGTERM or SIGINT end it (exit 0). -o json prints one JSON\n"
	 "object per sync (one line each with --watch). The PIN source must be\n"
	 "file: or env: with --watch: the PIN is read again for every sync.\n"
	 "\n"
	 "  --watch                  keep running and react to changes\n"
	 "  --interval SECONDS       sync at least this often with --watch (1..86400)\n"},
	{"status", cmd_status, CLI_AT_READS, "the cluster's nodes against the store: held keys, last sync, lag",
	 "custody status [-o table|json]\n"
	 "\n"
	 "One row per node: its state (enrolled, admitted, joined), last sync, lag\n"
	 "(now - last report), for every type assigned at global the thumbprint it\n"
	 "holds (first 8 hex digits; the row (store) shows what the store assigns),\n"
	 "and ok, stale (no report since the last change) or differs (it holds other\n"
	 "keys than the store says). -o json: {\"nodes\":[{\"node\",\"state\",\n"
	 "\"last_sync\",\"lag_seconds\",\"stale\",\"differs\",\"holds\":{\"TYPE\":\n"
	 "\"THUMBPRINT\"}}],\"ok\":BOOL}. Opens the token (user PIN) to check the\n"
	 "integrity tags of the global assignments and their certificates.\n"
	 "A record of a certificate the global assignments name that does not match\n"
	 "its certificate (another key id: the store was changed) gets a line under\n"
	 "the table (\"store_faults\" in JSON). Exit 1 when there is one, when any\n"
	 "node differs or is stale, or no node has enrolled.\n"},
	{"kek", cmd_kek, CLI_AT_WRITES, "create the cluster key-encryption key on this token (ceremony)",
	 "custody kek create\n"
	 "custody kek authority\n"
	 "\n"
	 "create: the first step of the cluster key ceremony, on the first node:\n"
	 "generates the cluster KEK (AES-256) inside this node's token (private,\n"
	 "sensitive, wrap and unwrap only, not copyable, extractable only under a\n"
	 "trusted key) and the cluster authority key beside it (EC P-256, sign only,\n"
	 "never extractable), records the KEK's key check value and the authority's\n"
	 "public key in the store and this node as the first member, and prints the\n"
	 "key check value. Refused when the store records a KEK already. Every step is\n"
	 "narrated on stderr: keep (and sign) the transcript.\n"
	 "authority: prints the cluster authority's fingerprint, which every enrolling\n"
	 "node confirms; in a cluster made by an earlier custody it creates the\n"
	 "authority on this token, which must hold the KEK.\n"},
	{"node", cmd_node, CLI_AT_WRITES, "enroll, admit or join a node of the cluster (ceremony)",
	 "custody node enroll [--authority FINGERPRINT]\n"
	 "custody node admit NODE --so-pin-source SRC [--fingerprint FP]\n"
	 "custody node join [--kcv CHECK]\n"
	 "\n"
	 "enroll (on the new node): pins the cluster authority on its token once you\n"
	 "confirmed its fingerprint (--authority, compared with custody kek authority\n"
	 "on the member that holds it, or typed at a terminal); then makes its\n"
	 "RSA-3072 transport key pair in its token (the private half unwrap-only,\n"
	 "never extractable) and records the public half in the store; prints its\n"
	 "SHA-256 fingerprint on stderr.\n"
	 "admit (on the member that holds the authority, by the security officer):\n"
	 "confirm the fingerprint of NODE's transport key (--fingerprint, the one\n"
	 "enroll printed there, or typed at a terminal). The SO PIN (from\n"
	 "--so-pin-source, never the command line) makes NODE's transport key a\n"
	 "trusted wrapping key for this session only; the KEK is wrapped for it\n"
	 "(RSA-OAEP) and the authority signs the admission into the store. Every\n"
	 "admission takes the SO PIN. Without an SO PIN source, or with a PIN the\n"
	 "token refuses: exit 1, nothing changed.\n"
	 "join (on the new node): checks the admission's signature against the pinned\n"
	 "authority, unwraps the KEK into its token and proves its 64-bit check (the\n"
	 "signed one; --kcv, or a confirmation at a terminal); then deletes the\n"
	 "wrapped KEK from the store and destroys the transport key pair. A node not\n"
	 "admitted, or whose admission does not verify, cannot join.\n"
	 "\n"
	 "  --authority FINGERPRINT  the cluster authority you compared (enroll only)\n"
	 "  --kcv CHECK              the KEK check node admit printed (join only)\n"
	 "  --fingerprint FP         NODE's transport key as enroll printed it (admit)\n"
	 "  --so-pin-source SRC      file:PATH, env:VAR, fd:N or prompt (admit only)\n"},
	{"seal", cmd_seal, CLI_AT_WRITES, "turn a replicated key's extractable flag off once every node holds it",
	 "custody seal --thumbprint X [--force]\n"
	 "\n"
	 "Once every member of the cluster reports holding the key of X (custody sync\n"
	 "on each), turns CKA_EXTRACTABLE off for it on this token: irreversible, and\n"
	 "no token keeps an exportable copy. Refused, naming the nodes, while one\n"
	 "does not report it; --force skips that check (they can then still unwrap\n"
	 "the package already in the store).\n"},
	{"token", cmd_token, CLI_AT_READS, "what the token is and what custody can do with it",
	 "custody token [-o table|json]\n"
	 "\n"
	 "Asks the token (logged in as user) what it is and can do, as custody uses\n"
	 "it: label, manufacturer, model, serial and PIN state; for RSA and EC keys\n"
	 "whether it generates them, signs with them, and its key sizes; RSA-PSS;\n"
	 "whether it can be a cluster member (AES key wrap with padding, RSA-OAEP,\n"
	 "CKA_UNWRAP_TEMPLATE; if not, the first thing it lacks) and hold a trusted\n"
	 "KEK; the mechanism its KEK computes integrity tags with; and which optional\n"
	 "attributes it keeps (CKA_COPYABLE, CKA_DESTROYABLE, CKA_WRAP_WITH_TRUSTED,\n"
	 "CKA_UNWRAP_TEMPLATE). What it lacks, custody refuses up front in one line.\n"
	 "Writes nothing: its probes are session objects. -o json: {\"label\",\n"
	 "\"manufacturer\", \"model\", \"serial\", \"login_required\", \"pin_flags\":[],\n"
	 "\"min_pin\", \"max_pin\", \"rsa\":{\"generate\",\"sign\",\"min_bits\",\"max_bits\"},\n"
	 "\"rsa_pss\", \"ec\":{...}, \"cluster_member\", \"cluster_lacks\", \"trusted_kek\",\n"
	 "\"integrity_tags\", \"attributes\":{\"CKA_COPYABLE\":BOOL,...}}.\n"},
	{"tag", cmd_tag, CLI_AT_WRITES, "check the store's integrity tags, or tag a store written before them (ceremony)",
	 "custody tag [--yes]\n"
	 "\n"
	 "Every certificate, assignment, package and admitted node in the store, and\n"
	 "the audit log's head, carries an integrity tag made with the token's KEK: a\n"
	 "row changed outside custody is refused where it would be used. A store\n"
	 "written by an earlier custody has none: this lists every row, checks the\n"
	 "audit chain and, once you confirm (--yes, or yes typed at a terminal), tags\n"
	 "them all in one transaction. Confirm only rows you know. On a store tagged\n"
	 "already it checks every row instead (exit 1 naming those that fail) and\n"
	 "never tags anything anew.\n"
	 "\n"
	 "  --yes    confirm without a terminal (scripts that listed the rows)\n"},
	{"export", cmd_export, CLI_AT_WRITES, "write one key's wrapped package to a new file (never plaintext)",
	 "custody export --thumbprint X --out FILE\n"
	 "\n"
	 "Writes the package of X's private key, wrapped under the cluster KEK\n"
	 "(CKM_AES_KEY_WRAP_PAD), with its certificate and key id, to FILE (a new\n"
	 "file, mode 0600: an existing one is never overwritten). A member imports it\n"
	 "with custody import --package FILE. The package is the store's when it has\n"
	 "one, else wrapped now on this token (the key must be replicable).\n"},
	{NULL, NULL, CLI_AT_READS, NULL, NULL},
};

const struct command *
cli_find_command(const char *name)
{
	const struct command *c;

	for (c = cli_commands; c->name != NULL; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static void
print_main_usage(FILE *f)
{
	const struct command *c;

	fprintf(f, "usage: custody [global options] COMMAND [options]\n\ncommands:\n");
	for (c = cli_commands; c->name != NULL; c++)
		fprintf(f, "  %-11s %s\n", c->name, c->summary);
	fprintf(f,
		"\nglobal options (also accepted after COMMAND):\n"
		"  -c, --config FILE      config file (default " CUSTODY_DEFAULT_CONFIG ")\n"
		"  --module PATH          PKCS#11 module\n"
		"  --token LABEL|URI      token label or pkcs11: URI (also --token-uri)\n"
		"  --pin-source SRC       user PIN: file:PATH, env:VAR, fd:N or prompt\n"
		"  --so-pin-source SRC    security officer PIN, same forms\n"
		"  --store URL            sqlite:PATH (default " CUSTODY_DEFAULT_STORE ")\n"
		"  --node NAME            this node's name (default: host name)\n"
		"  --at TIME              read as if now were TIME (ISO 8601); commands that\n"
		"                         write refuse it (set --dry-run, a preview, takes it)\n"
		"  -o, --output FMT       table, json, thumbprint, pem, uri\n"
		"  -q, --quiet            no narration\n"
		"  -v, --verbose          more narration\n"
		"  --version, -h, --help\n"
		"\n`custody COMMAND --help` describes one command; man custody has it all.\n");
}

static void
log_to_stderr(enum custody_log_level level, const char *line, void *ctx)
{
	const struct cli *cli = ctx;

	switch (level) {
	case CUSTODY_LOG_WARN:
		fprintf(stderr, "custody: warning: %s\n", out_safe(line));
		break;
	case CUSTODY_LOG_STEP:
		if (!cli->quiet)
			fprintf(stderr, "%s\n", out_safe(line));
		break;
	case CUSTODY_LOG_DEBUG:
		if (cli->verbose)
			fprintf(stderr, "custody: %s\n", out_safe(line));
		break;
	}
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {CLI_GLOBAL_LONGOPTS, {NULL, 0, NULL, 0}};
	struct cli cli;
	const struct command *command;
	int c, r, status = -1;

	memset(&cli, 0, sizeof(cli));
	/* Before anything is read: no core dump, no ptrace by the same user,
	 * and OpenSSL's secure heap for PINs, passwords and key values. */
	if (custody_harden_process(&cli.err) != CUSTODY_OK) {
		fprintf(stderr, "custody: %s\n", out_safe(cli.err.msg));
		out_release();
		return custody_err_exit_status(cli.err.code);
	}
	custody_config_init(&cli.cfg);
	custody_log_set_handler(log_to_stderr, &cli);
	cli.cmd = "custody";

	/* Global options before the command name; "+" stops at the name. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+" CLI_GLOBAL_SHORTOPTS, options, NULL)) != -1) {
		switch (c) {
		case 'h':
			print_main_usage(stdout);
			return 0;
		case OPT_VERSION:
			printf("custody %s\n", PACKAGE_VERSION);
			return 0;
		case 'c': cli.args.config = optarg; break;
		case OPT_MODULE: cli.args.module = optarg; break;
		case OPT_TOKEN: cli.args.token = optarg; break;
		case OPT_PIN_SOURCE: cli.args.pin_source = optarg; break;
		case OPT_SO_PIN_SOURCE: cli.args.so_pin_source = optarg; break;
		case OPT_STORE: cli.args.store = optarg; break;
		case OPT_NODE: cli.args.node = optarg; break;
		case OPT_AT: cli.args.at = optarg; break;
		case 'o': cli.args.output = optarg; break;
		case 'q': cli.quiet = 1; break;
		case 'v': cli.verbose++; break;
		default:
			fprintf(stderr, "custody: unknown or incomplete option '%s'\n",
				out_safe(argv[optind - 1]));
			print_main_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		print_main_usage(stderr);
		return 2;
	}
	command = cli_find_command(argv[optind]);
	if (command == NULL) {
		fprintf(stderr, "custody: unknown command '%s'\n", out_safe(argv[optind]));
		print_main_usage(stderr);
		return 2;
	}
	cli.cmd = command->name;
	r = command->run(&cli, argc - optind, argv + optind);
	if (r <= CLI_EXIT(0)) {
		/* The command chose its exit status (custody test: 0 OK,
		 * 1 WARNING, 2 CRITICAL, 3 UNKNOWN); an error it left in
		 * cli.err is printed as usual. */
		status = CLI_EXIT(0) - r;
		r = cli.err.code;
	}
	if (r < 0) {
		r = CUSTODY_OK;	/* --help */
	} else if (r != CUSTODY_OK) {
		/* Messages may carry store, token or certificate text. */
		fprintf(stderr, "custody: %s: %s\n", cli.cmd,
			cli.err.msg[0] != '\0' ? out_safe(cli.err.msg) : "failed");
		if (cli.err.hint[0] != '\0')
			fprintf(stderr, "hint: %s\n", out_safe(cli.err.hint));
		if (r == CUSTODY_EUSAGE && cli.err.hint[0] == '\0')
			fprintf(stderr, "see: custody %s --help\n", cli.cmd);
	}
	if (cli.token != NULL)
		cli_close_token(&cli);
	if (cli.store != NULL)
		custody_store_close(cli.store);
	custody_config_clear(&cli.cfg);
	OPENSSL_cleanse(&cli.err, sizeof(cli.err));
	out_release();
	return status >= 0 ? status : custody_err_exit_status(r);
}
