/*
 * custody/cluster.h — one issuer identity on every node: the KEK ceremony,
 * replication of private keys as packages wrapped under the cluster KEK,
 * and each node's sync and reports.
 *
 * Trust model (measured on SoftHSM 2.6.1; see the token module's wrap
 * section): the KEK (AES-256) lives only inside tokens — private,
 * sensitive, extractable only under trusted wrap.  It travels to a new
 * node only wrapped (RSA-OAEP) under that node's transport public key,
 * which the security officer made a trusted object on the sending token
 * (`node admit`): without the SO nobody can send the KEK anywhere.  A
 * replicable private key travels as a package: CKM_AES_KEY_WRAP_PAD under
 * the KEK, with its certificate and key id.  Each node's sync unwraps it
 * as sensitive and never extractable and checks it against its
 * certificate (sign + verify) before reporting it held.  Nothing secret is
 * ever in the store in clear: KEK wraps and packages are ciphertext.
 *
 * Every function that changes the store does so in one transaction of its
 * own, with an audit entry ("kek-create", "node-enroll", "node-admit",
 * "node-join", "package", "sync", "seal", "roll-effective") and leaves
 * token and store unchanged when it fails.  The caller passes an open,
 * logged-in token and an open store; functions that need the SO PIN take
 * it as an argument (from a PIN source, cleansed by the caller).
 * Every step narrates itself through custody/log.h (custody_step): what
 * it is about to do and what it did.
 */
#ifndef CUSTODY_CLUSTER_H
#define CUSTODY_CLUSTER_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/x509.h>
#include <custody/error.h>
#include <custody/records.h>
#include <custody/store.h>
#include <custody/token.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- ceremony ---- */

/* "AB:CD:…" fingerprints (the first 16 bytes of SHA-256 of a public key,
 * DER SubjectPublicKeyInfo), for people to compare between nodes: room
 * for one and its NUL. */
#define CUSTODY_CLUSTER_FP_SIZE 64
void custody_cluster_fingerprint(const unsigned char *spki, size_t len,
				 char out[CUSTODY_CLUSTER_FP_SIZE]);
/* fp is what the operator typed: case, colons, blanks and a "SHA256:"
 * prefix do not matter. */
int custody_cluster_fingerprint_matches(const char *fp, const char *typed);

/* `kek create`: the cluster KEK on this token, and the cluster authority
 * key beside it (custody/token.h); the KEK's key check value and the
 * authority's public key go to the store.  EFAIL when the store already
 * records a KEK (a cluster has one) or the token already holds one.
 * kcv (may be NULL): the key check value recorded, once it is committed. */
int custody_cluster_kek_create(custody_token *tok, custody_store *st,
			       const char *node,
			       char kcv[CUSTODY_KCV_HEX + 1], custody_err *err);

/* `kek authority`: the fingerprint of the cluster authority the store
 * names (fp), and whether tok holds its private key (*held; tok may be
 * NULL).  A store that names none (a cluster made by an earlier custody):
 * with create, the authority is made on tok, which must hold the
 * cluster's KEK, and recorded (audit "authority-create"); without,
 * ENOTFOUND. */
int custody_cluster_authority(custody_token *tok, custody_store *st,
			      const char *node, int create,
			      char fp[CUSTODY_CLUSTER_FP_SIZE], int *held,
			      custody_err *err);

/* `node enroll`: pins the cluster authority on this token — the store's,
 * once the operator confirmed its fingerprint (authority_fp; NULL when
 * the token has it pinned already: EUSAGE otherwise, naming it) — then
 * makes this node's RSA-3072 transport key pair; the public half and the
 * node name go to the store as a pending node.  Enrolling again with the
 * same key changes nothing.  A store whose authority is not the pinned
 * one, or not the one confirmed, is EFAIL and nothing is written. */
int custody_cluster_node_enroll(custody_token *tok, custody_store *st,
				const char *node, const char *authority_fp,
				custody_err *err);

/* `node admit NODE` on the member that holds the KEK and the cluster
 * authority, once the operator confirmed the fingerprint of NODE's
 * transport key (confirmed_fp, compared with what enroll printed on NODE;
 * NULL is EUSAGE naming the store's, another is EFAIL, nothing written):
 * the SO makes NODE's transport public key (from the store) a
 * trusted wrapping key for this session only, the user wraps the KEK for
 * it (RSA-OAEP), and the authority signs the admission (node name,
 * transport key, wrapped KEK, 64-bit KEK check) into the store.  Every
 * admission, a repeated one too, takes the SO PIN.  tok must be open; it
 * is logged in as user again on return.  EFAIL when NODE has not
 * enrolled or this token does not hold the authority; EPIN on a refused
 * SO PIN. */
int custody_cluster_node_admit(custody_token *tok, custody_store *st,
			       const char *this_node, const char *node,
			       const char *confirmed_fp,
			       const char *so_pin, size_t so_pin_len,
			       const char *user_pin, size_t user_pin_len,
			       custody_err *err);

/* `node join`: accepts only an admission in the "admitted" state that the
 * authority pinned at enroll signed for this node's own transport key;
 * then unwraps the KEK into this token and proves it: its 64-bit check
 * must be the signed one (and confirmed_check, when the operator typed
 * one).  EFAIL "node N is not admitted" when there is no admission;
 * EFAIL, nothing unwrapped, when the signature or a check fails. */
int custody_cluster_node_join(custody_token *tok, custody_store *st,
			      const char *node, const char *confirmed_check,
			      custody_err *err);

/* ---- replication ---- */

/* Wraps the private key of key_id (replicable, on this token) under the
 * KEK and stores the package (with the certificate's thumbprint). */
int custody_cluster_package_key(custody_token *tok, custody_store *st,
				const char *node, const char *thumbprint,
				custody_err *err);

/* The outcome of one key in a sync. */
typedef struct custody_sync_item {
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	char type[CUSTODY_NAME_MAX + 1];
	char slot[16];		/* "current", "previous", "pending" */
	int held;		/* the key is on the token and verified  */
	int unwrapped;		/* this sync unwrapped it                */
	int repaired;		/* a key object with its id failed its
				 * check and was destroyed, then the key
				 * unwrapped again (repair says why)     */
	char problem[256];	/* "" or why the key is not held         */
	char repair[256];	/* "" or what the repair destroyed, why  */
	char key_id[CUSTODY_KEY_ID_HEX + 1];	/* of the key unwrapped */
} custody_sync_item;

typedef struct custody_sync_result {
	custody_sync_item *items;
	size_t n;
	int refused;		/* how many keys could not be made held  */
} custody_sync_result;

void custody_sync_result_clear(custody_sync_result *res);

/*
 * `sync`: for every global assignment (current, previous, pending) makes
 * sure this token holds the key and the certificate: unwraps missing keys
 * from their packages, checks each against its certificate, records rolls
 * that came due, and reports to the store what this node holds and when.
 * A bad package (tampered, truncated, another KEK, key not matching its
 * certificate) is refused and reported; the others carry on.  Idempotent
 * and safe to interrupt.  Returns OK when it could run (res->refused says
 * what it could not do); EFAIL when the store or token cannot be used.
 */
int custody_cluster_sync(custody_token *tok, custody_store *st,
			 const char *node, int64_t now,
			 custody_sync_result *res, custody_err *err);

/* `seal --thumbprint X`: once every node reports the key held, turns its
 * CKA_EXTRACTABLE off on this token.  EFAIL naming the nodes that do not
 * hold it yet (force skips that check). */
int custody_cluster_seal(custody_token *tok, custody_store *st,
			 const char *node, const char *thumbprint, int force,
			 custody_err *err);
/* Its checks alone (seal --dry-run): refused as the seal would be,
 * nothing written. */
int custody_cluster_seal_check(custody_token *tok, custody_store *st,
			       const char *node, const char *thumbprint,
			       int force, custody_err *err);

/* ---- status ---- */

typedef struct custody_node_status {
	char node[CUSTODY_NAME_MAX + 1];
	char state[16];		/* "enrolled", "admitted", "joined"     */
	int64_t last_sync;	/* 0: never                             */
	int stale;		/* no report since the last change      */
	int differs;		/* holds other keys than the store says */
	char detail[256];
} custody_node_status;

/* Nodes and what each holds against what the store assigns.
 * *all_ok is 0 when any node differs or is stale. */
int custody_cluster_status(custody_store *st, int64_t now,
			   custody_node_status **out, size_t *n, int *all_ok,
			   custody_err *err);

/* A node whose sync could not run (its token could not be opened or used)
 * says why: every key of a global assignment (current, pending) it has
 * not reported held is reported not held, with why as the report's detail
 * (cluster/problem.c).  Its held reports and its last sync are left as
 * they are; a report that already says the same is not written again. */
int custody_cluster_report_problem(custody_store *st, const char *node,
				   int64_t now, const char *why, custody_err *err);

/* ---- additions for the commands (cluster/cluster.c) ---- */

/* The KEK as the store and this token know it: key check values, "" when
 * the store records no KEK / the token holds none (tok may be NULL). */
int custody_cluster_kek_state(custody_token *tok, custody_store *st,
			      char store_kcv[CUSTODY_KCV_HEX + 1],
			      char token_kcv[CUSTODY_KCV_HEX + 1],
			      custody_err *err);

/* Inside the caller's write transaction: wraps the private key key_id
 * under this token's KEK (which must be the cluster's, by key check value)
 * and puts the package of certificate `thumbprint` into the store.  No
 * audit entry (the caller's change has one).  EFAIL when the store records
 * no KEK, the token holds another one or none, or the key is not
 * extractable. */
int custody_cluster_package_put(custody_token *tok, custody_store *st,
				const char *node, const char *thumbprint,
				const char *key_id, custody_err *err);

/*
 * In the caller's transaction: this node holds the key of certificate
 * `thumbprint` on its token, because it has just imported, generated or
 * unwrapped it; its report says so (detail: how), as a sync's would, so
 * that `status` shows the node that made a change in line with it.
 * Nothing is written for a node the store does not know as a member (no
 * cluster, or not enrolled).
 */
int custody_cluster_report_held(custody_store *st, const char *node,
				const char *thumbprint, const char *detail,
				custody_err *err);

/* The rule of issue 5: a key that is not replicable cannot be assigned at
 * `global` while the cluster has more than one node.  OK for any other
 * identity, for a cluster of at most one node, when the store holds a
 * package for thumbprint, or when will_package (the caller packages it in
 * the same transaction).  Otherwise EFAIL "cannot assign T at global: the
 * cluster has N nodes and its key is not replicable (no package in the
 * store)" with a hint. */
int custody_cluster_check_global(custody_store *st, const char *identity,
				 const char *thumbprint, int will_package,
				 custody_err *err);

/*
 * A package moved by hand (`export` / `import --package`): one private
 * key wrapped under the KEK, never plaintext.  The file is one JSON
 * object, UTF-8, at most CUSTODY_PACKAGE_MAX bytes, with exactly these
 * members (any other, a duplicate or a missing one is refused):
 *   "format":      "custody-key-package"
 *   "version":     1
 *   "thumbprint":  SHA-1 of the certificate's DER, 40 upper-case hex
 *   "key_id":      the certificate's key id (cert.h), 40 lower-case hex
 *   "kcv":         key check value of the KEK it is wrapped under, 6 upper-case hex
 *   "wrapping":    "CKM_AES_KEY_WRAP_PAD"
 *   "wrapped_key": the wrapped private key (PKCS#8 inside), base64
 *                  (RFC 4648, padded, no line breaks), 16 to 16384 bytes,
 *                  a multiple of 8
 *   "certificate": the certificate's DER, base64 as above
 * The parser checks every field's form and that thumbprint and key_id are
 * those of the certificate; it never touches a token.  The unwrap (with
 * the KEK) is what shows that the key is genuine and matches.
 */
#define CUSTODY_PACKAGE_MAX (128 * 1024)
#define CUSTODY_PACKAGE_FORMAT "custody-key-package"

typedef struct custody_package {
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	char key_id[CUSTODY_KEY_ID_HEX + 1];
	char kcv[CUSTODY_KCV_HEX + 1];
	unsigned char *wrapped;		/* malloc'ed */
	size_t wrapped_len;
	unsigned char *cert_der;	/* malloc'ed */
	size_t cert_der_len;
} custody_package;

/* Frees and zeroes. NULL is accepted. */
void custody_package_clear(custody_package *pkg);

/* Strict: EFAIL "bad key package: WHY" for anything but the form above;
 * out is then cleared.  buf need not be NUL-terminated. */
int custody_package_parse(const unsigned char *buf, size_t len,
			  custody_package *out, custody_err *err);

/* The file text of pkg (malloc'ed, ends with a newline). */
int custody_package_format(const custody_package *pkg, char **out,
			   size_t *len, custody_err *err);

/* `export --thumbprint X` (X: 40 upper-case hex): the package of a key,
 * from the store when it has one, else wrapped now under this token's
 * KEK.  Audit entry "export". */
int custody_cluster_export(custody_token *tok, custody_store *st,
			   const char *node, const char *thumbprint,
			   custody_package *out, custody_err *err);
/* Export's checks alone (export-package --dry-run): refused as the
 * export would be (no package in the store and no KEK on the token, a key
 * that cannot be wrapped), nothing wrapped or written; *in_store: the
 * store's package would go as it is. */
int custody_cluster_export_check(custody_token *tok, custody_store *st,
				 const char *thumbprint, int *in_store,
				 custody_err *err);

/* `import --package`: checks that this token holds the KEK the package
 * names (EFAIL "... was wrapped under another KEK (key check value X);
 * token L holds Y") and unwraps it with its certificate as
 * custody_token_unwrap_private_key does (all or nothing). Token only. */
int custody_cluster_unwrap_package(custody_token *tok,
				   const custody_package *pkg,
				   const char *label, custody_err *err);

#ifdef __cplusplus
}
#endif
#endif
