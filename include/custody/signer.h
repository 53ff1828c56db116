/*
 * custody/signer.h — signing with the current key of a certificate type,
 * from a long-lived process (a service, the OpenSSL engine) or from
 * `custody sign`.
 *
 * A custody_ctx is what an application opens once: the configuration
 * (token, PIN source, store, node name), one module instance with one
 * login, a pool of sessions and the store connection.  A custody_signer
 * is one (type, identity) of a ctx: it finds, at each signature's `now`,
 * which certificate is current, and signs with that certificate's key on
 * the token, so that a roll (at its effective instant) or a `custody
 * set` / `custody remove` takes effect at the next signature, without
 * reopening anything.
 *
 * Decisions (measured on the 2-core machine of the benchmarks):
 *
 * - Resolution.  The signer keeps the stored assignment record and the
 *   facts (key id, algorithm) of the certificates it names.  The record
 *   holds the pending slot and its instant, so custody_assign_resolve() at
 *   `now` makes a roll exact to the second without reading the store.
 *   Before each signature the signer asks custody_store_changed(): on
 *   SQLite, PRAGMA data_version (1.7 µs) for the first 64 signatures, then
 *   an inotify watch of the store's directory, so that a quiet store costs
 *   one read() that finds nothing (0.27 µs); only after a write there is
 *   the database asked again and, when it moved, the assignment re-read.
 *   A `set` committed before a signature starts is seen by that
 *   signature.  Per signature the signer adds about 1 µs to a raw
 *   C_SignInit + C_Sign loop (EC P-256: 47.1 against 46.1 µs of CPU).
 *
 * - Keys.  A key id maps to the token's object handle (and its type and
 *   size) in a cache of the ctx; a key is looked for (by CKA_CLASS
 *   private key and CKA_ID, nothing else) the first time it is needed,
 *   and again when the token says the handle is no longer valid.  A key
 *   that is not on the token is EFAIL naming the key id.
 *
 * - Which key is the certificate's.  The store is not trusted: a key id
 *   is used only after the store's record was checked against the
 *   certificate it holds (custody_cert_record_check: the key id is the
 *   SHA-1 of the certificate's public key, the thumbprint the SHA-1 of
 *   its DER), once per certificate and signer, when its facts are first
 *   read (then kept: no cost per signature).  custody puts a key on a
 *   token only under the key id of its own public key (import and unwrap
 *   check the key against the certificate first, request computes it
 *   from the key it made), so the key found is the certificate's.  A
 *   record whose key id was changed (the key of another certificate) is
 *   refused: nothing is signed.
 *
 * - Token lock.  custody_token_open() serialises custody processes with
 *   an exclusive lock.  The ctx opens its token with the lock SHARED
 *   (custody/token.h, "sharing the token"): signers share it, and an
 *   import, delete or request waits only for the signatures in flight.
 *   The ctx holds the shared lock as a lease, with no system call per
 *   signature: a lease thread looks every 20 ms and lets go of the lock
 *   when no signature started since its last look (idle) or when a writer
 *   waits (custody_token_lock_wanted: the writer's gate); the next
 *   signature takes it again (3 flock calls, under 1 µs).  A writer thus
 *   waits at most about 20 ms plus the signatures in flight plus its own
 *   50 ms poll (measured: `custody import` beside two threads signing
 *   flat out took 8 ms longer than beside an idle signer).  With options.one_shot (short-lived programs such as
 *   `custody sign`) the shared lock is held from the first use to
 *   custody_ctx_free(), no thread is started, and each signer reads its
 *   assignment once, at custody_signer_open().
 *
 * - Sessions.  A pool of read-only sessions (options.sessions; default
 *   one per CPU, at least 2) on one module instance, each used by one
 *   thread at a time (a mutex and a condition variable; a thread waits
 *   only when every session is busy).  Login is per application: the one
 *   C_Login of the ctx covers them all.
 *
 * - Mechanisms (the portable way, as custody_token_sign): the digest is
 *   computed in software; RSA PKCS#1 v1.5 is CKM_RSA_PKCS over the DER
 *   DigestInfo, RSA-PSS is CKM_RSA_PKCS_PSS with MGF1 of the digest's hash
 *   and a salt of the digest's length, ECDSA is CKM_ECDSA over the digest
 *   (cut to the curve's order).  Signatures: RSA as the raw bytes; ECDSA as
 *   a DER ECDSA-Sig-Value (what X.509, CMS and `openssl dgst -verify`
 *   take) or as raw r || s (what JWS takes).
 *
 * - The PIN is read from cfg->pin_source once, when the token is first
 *   opened (the first signer that finds its assignment), and cleansed
 *   right after the login.
 *
 * - Agent.  When cfg names an agent socket (custody_config_agent_socket:
 *   agent.socket, CUSTODY_AGENT, --agent; the agent itself sets it to
 *   "none" for its own ctx), the
 *   ctx opens neither token nor store and reads no PIN: each call is one
 *   request to `custody agent` over its Unix socket (custody/agent_client.h),
 *   which resolves the assignment at that request (so a roll or a `custody
 *   set` is seen at the next signature, as above) and checks its allow
 *   list for this process's user.  The ctx keeps a pool of connections,
 *   one per concurrent caller (at most options.sessions; a thread waits
 *   when every one is busy), and the facts of the certificates the agent
 *   named.  custody_signer_open asks for the current certificate, so that
 *   ENOTFOUND, a refusal ("the custody agent refused: ...") or an agent
 *   that cannot be reached (EFAIL "cannot reach the custody agent at
 *   PATH: ...") surface there.  The digest is computed here; the agent
 *   signs it.  Cost: one round trip on the socket per signature (and one
 *   per certificate read), against none with the token in the process;
 *   the agent, not this process, needs the PIN, the module and the store.
 *   The agent signs at the present time only: `now` (and custody_signer_
 *   current's and _slot_cert's) must be 0 or the clock (within 2 s),
 *   else EUSAGE "the agent signs at the present time; --at needs the
 *   token (--agent none)".  The
 *   agent's errors keep their codes (ENOTFOUND: nothing assigned).
 *   custody_ctx_token_is_open is 0.  A signature's info takes the key id
 *   and algorithm from the certificate the agent sent (empty when a roll
 *   since then took it out of every slot).
 *
 * Threads: custody_signer_sign() and custody_signer_current() may be
 * called from any number of threads at once, on one signer or on several
 * signers of one ctx.  custody_signer_open() may run alongside them.
 * custody_signer_close() and custody_ctx_free() must not run while
 * another call uses that signer / ctx.  Within one process, a ctx and an
 * open exclusive custody_token of the same token exclude each other as
 * two processes would: close such a handle before signing.  After fork()
 * a ctx is not usable in the child (PKCS#11 sessions do not survive it).
 *
 * Memory: the ctx copies what it needs from cfg (cfg may be freed after
 * custody_ctx_new).  Every signer of a ctx must be closed before the ctx
 * is freed.  Signatures and records returned through out-pointers belong
 * to the caller (free(), custody_cert_record_clear()).
 */
#ifndef CUSTODY_SIGNER_H
#define CUSTODY_SIGNER_H

#include <stddef.h>
#include <stdint.h>
#include <custody/config.h>
#include <custody/error.h>
#include <custody/records.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct custody_ctx custody_ctx;
typedef struct custody_signer custody_signer;

typedef struct custody_ctx_options {
	int sessions;	/* sessions in the pool; 0: one per CPU, at
			   least 2, at most 16                        */
	int one_shot;	/* a short-lived program: hold the shared token
			   lock from the first use to custody_ctx_free
			   (no lease thread), read each assignment once
			   (changes after custody_signer_open are not
			   seen)                                      */
} custody_ctx_options;

/*
 * A ctx for cfg (token.module, token.label / token.uri, token.pin-source,
 * token.lock-dir / lock-timeout, store.url — default
 * CUSTODY_DEFAULT_STORE) and this node's name (node: NULL takes
 * cfg->node_name, then the host name).  Nothing is opened yet: the store
 * at the first custody_signer_open(), the token when a signer first needs
 * a key.  EUSAGE now when the PIN source or the node name is malformed;
 * EUSAGE "no PKCS#11 module configured" / "no PIN source configured" when
 * the token is first needed.  options may be NULL (the defaults).
 */
int custody_ctx_new(const custody_config *cfg, const char *node,
		    custody_ctx **out, custody_err *err);
int custody_ctx_new_with(const custody_config *cfg, const char *node,
			 const custody_ctx_options *options,
			 custody_ctx **out, custody_err *err);

/* Stops the lease thread, closes the sessions, logs out, closes the token
 * and the store.  NULL is accepted. */
void custody_ctx_free(custody_ctx *ctx);

/* 1 when the ctx has opened its token (so loaded the PKCS#11 module):
 * from then on custody_ctx_free talks to the module.  A store read may
 * open it too (to check integrity tags). */
int custody_ctx_token_is_open(custody_ctx *ctx);

/* This ctx's node name (canonical). */
const char *custody_ctx_node(const custody_ctx *ctx);

/*
 * A signer for type at identity.  identity NULL: this node's identity
 * when the type is assigned there, else the global one
 * (custody_assign_lookup, as `custody get -t` looks it up; the choice is
 * made again when the store changes).  Type
 * and identity are checked (EUSAGE) and the assignment read now:
 * ENOTFOUND "no certificate is assigned for type T (identity I)" when
 * there is none.  A record whose current slot is empty now (a pending
 * roll only) is accepted: signing before its instant is ENOTFOUND.
 */
int custody_signer_open(custody_ctx *ctx, const char *type,
			const char *identity, custody_signer **out,
			custody_err *err);

/* NULL is accepted. */
void custody_signer_close(custody_signer *signer);

enum custody_sig_scheme {
	CUSTODY_SIG_AUTO = 0,	/* RSA: PKCS#1 v1.5; EC: ECDSA DER        */
	CUSTODY_SIG_RSA_PKCS1,
	CUSTODY_SIG_RSA_PSS,
	CUSTODY_SIG_ECDSA_DER,	/* ECDSA-Sig-Value (X.509, openssl dgst)   */
	CUSTODY_SIG_ECDSA_RAW,	/* r || s, each the size of the order (JWS) */
};

/* What a signature was made with. */
typedef struct custody_signature_info {
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];	/* the certificate */
	char key_id[CUSTODY_KEY_ID_HEX + 1];
	char key_algorithm[16];	/* "RSA-2048", "EC-P256", ...            */
	char identity[CUSTODY_NAME_MAX + 1];	/* where it was assigned   */
	enum custody_sig_scheme scheme;	/* the one used (never AUTO)      */
	int digest_nid;
} custody_signature_info;

/*
 * Signs with the key of the certificate current at `now` (0: the clock).
 * digest_nid: NID_sha256, NID_sha384 or NID_sha512.  With is_digest, data
 * is the digest itself (len must be the digest's length); else it is
 * hashed here.  A scheme that does not fit the current key (PSS with an
 * EC key) is EFAIL, as the key may change with a roll: AUTO follows it.
 * *sig is malloc'ed (free()); info may be NULL.
 *
 * Errors: ENOTFOUND "no certificate is assigned for type T (identity I)"
 * when nothing is current at now; EFAIL "no private key with key id X on
 * token L" when the current certificate's key is not on the token (the
 * certificate named in the hint); EFAIL "cannot sign for T: the store's
 * record of certificate X: its key id A is not that of its certificate
 * (B)" when the store's record does not match its certificate (nothing is
 * signed); EUSAGE for a bad digest or length; the errors of the token,
 * its lock, the PIN and the store.
 */
int custody_signer_sign(custody_signer *signer, int64_t now,
			enum custody_sig_scheme scheme, int digest_nid,
			const unsigned char *data, size_t len, int is_digest,
			unsigned char **sig, size_t *sig_len,
			custody_signature_info *info, custody_err *err);

/* The certificate that signs at `now` (0: the clock), from the store,
 * checked as custody_signer_sign checks it: out is the caller's
 * (custody_cert_record_clear).  ENOTFOUND and the record's EFAIL as
 * custody_signer_sign. */
int custody_signer_current(custody_signer *signer, int64_t now,
			   custody_cert_record *out, custody_err *err);

/*
 * The certificate in one slot of the signer's assignment resolved at
 * `now` (0: the clock): which is CUSTODY_SLOT_CURRENT, _PREVIOUS or
 * _PENDING (custody/assign.h's enum custody_slot_name, as an int).  From
 * the store, checked as custody_signer_sign checks it; out is the
 * caller's (custody_cert_record_clear).  ENOTFOUND "no previous
 * certificate is assigned for type T" (or current, pending) when the
 * slot is empty; EUSAGE for another slot.
 */
int custody_signer_slot_cert(custody_signer *signer, int64_t now, int which,
			     custody_cert_record *out, custody_err *err);

/*
 * As custody_signer_sign, but with the key of one certificate, named by
 * its thumbprint, whatever the assignment says now: for a key object that
 * must stay with the certificate it was loaded with (an OpenSSL
 * provider's key: a TLS server's key and certificate change together).
 * The store's record of that certificate is checked against the
 * certificate as custody_signer_sign checks it (key id = SHA-1 of its
 * public key); it signs as long as that record is in the store and its
 * key on the token.  info->identity is "".  Errors as
 * custody_signer_sign, and EFAIL when the store has no such certificate.
 */
int custody_signer_sign_pinned(custody_signer *signer, const char *thumbprint,
			       enum custody_sig_scheme scheme, int digest_nid,
			       const unsigned char *data, size_t len,
			       int is_digest, unsigned char **sig,
			       size_t *sig_len, custody_signature_info *info,
			       custody_err *err);

/*
 * The signer's assignment resolved at `now` (0: the clock): its identity
 * (where it was found) and its three slots.  When nothing is current (a
 * pending roll only) the record as stored.  ENOTFOUND "no certificate is
 * assigned for type T" when every slot is empty.
 */
int custody_signer_assignment(custody_signer *signer, int64_t now,
			      custody_assignment *out, custody_err *err);

/*
 * A JWT (custody/jws.h) signed with the key current at `now` (0: the
 * clock), as `custody jwt issue` and the agent issue it: alg
 * (CUSTODY_JWS_RS256...; 0: by the key, custody_jws_default_alg), x5t and
 * kid of the current certificate, lifetime in seconds (0:
 * CUSTODY_JWT_DEFAULT_LIFETIME) when the claims carry no exp.  The
 * signature is checked with the certificate's public key before the
 * token is returned (*token malloc'ed).  thumbprint (may be NULL) gets
 * the signing certificate's, *alg_used (may be NULL) the alg.  EFAIL "a K
 * key has no JWS algorithm here" for a key without one; ECONFLICT when
 * the assignment changed between the header and the signature; the
 * errors of custody_jws_issue and custody_signer_sign.
 */
#define CUSTODY_JWT_DEFAULT_LIFETIME 3600
int custody_signer_issue_jwt(custody_signer *signer, int64_t now,
			     const char *claims_json, int64_t lifetime, int alg,
			     char **token,
			     char thumbprint[CUSTODY_THUMBPRINT_HEX + 1],
			     int *alg_used, custody_err *err);

/*
 * Appends one entry to the audit log of the ctx's store (custody/audit.h,
 * custody_audit_append in a transaction of its own), tagged with the
 * ctx's token where the store carries integrity tags: for a long-lived
 * signer that records what it refused (the agent).  The tag waits for the
 * signatures in flight.  Errors of the store and of custody_audit_append.
 */
struct custody_audit_entry;
int custody_ctx_audit_append(custody_ctx *ctx,
			     const struct custody_audit_entry *draft,
			     custody_err *err);

/* "RSA-PKCS1", "RSA-PSS", "ECDSA-DER", "ECDSA-RAW", "AUTO". */
const char *custody_sig_scheme_name(enum custody_sig_scheme scheme);

#ifdef __cplusplus
}
#endif
#endif
