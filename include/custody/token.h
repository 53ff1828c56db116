/*
 * custody/token.h — the only module that talks PKCS#11.
 *
 * The module (.so) is loaded with dlopen and driven through its
 * CK_FUNCTION_LIST.  Every key attribute is set explicitly (tokens'
 * defaults differ): a private key is created with CKA_TOKEN, CKA_PRIVATE,
 * CKA_SENSITIVE, CKA_SIGN true and CKA_EXTRACTABLE false — or, when
 * `replicable`, CKA_EXTRACTABLE true together with CKA_WRAP_WITH_TRUSTED
 * true where the token can hold a trusted private KEK (measured once per
 * token; SoftHSM 2.6.1 cannot, and there a replicable key is made without
 * it, else it could never be wrapped).  A key and its certificate share one CKA_ID: the key id of
 * cert.h.
 *
 * Serialisation: custody_token_open() takes an advisory lock (flock) on a
 * lock file named after the module and the token set it serves (for
 * SoftHSM, SOFTHSM2_CONF), before C_Initialize, so that no two custody
 * processes touch one token at once; custody_token_close() releases it.
 * Signers take it shared instead (spec->shared, see "sharing the token").
 *
 * The token lock: one lock file per token in the lock directory, the
 * same for every user.  A directory custody makes is mode 1777
 * (/run/lock/custody) or 0700 (one configured), set explicitly; any lock
 * directory must belong to root or to this user, and be sticky when
 * others may write to it, else EFAIL (there is no per-user fallback).
 * Lock files are mode 0660 in the lock directory's group, so that a user
 * outside it cannot open one, and so cannot hold the lock.
 *
 * PIN counter: custody_token_login() refuses to log in when the token says
 * CKF_USER_PIN_LOCKED or CKF_USER_PIN_FINAL_TRY, and never retries a PIN
 * the token rejected.
 *
 * All functions of one custody_token must be called from one thread at a
 * time.  Memory returned through out-pointers belongs to the caller.
 */
#ifndef CUSTODY_TOKEN_H
#define CUSTODY_TOKEN_H

#include <stddef.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <custody/cert.h>
#include <custody/error.h>
#include <custody/records.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct custody_token custody_token;

typedef struct custody_token_spec {
	const char *module;	/* path of the PKCS#11 module (required)   */
	const char *label;	/* token label, or NULL                    */
	const char *uri;	/* "pkcs11:token=...;serial=..." or NULL   */
	const char *lock_dir;	/* NULL: $CUSTODY_LOCK_DIR, else
				   /run/lock/custody (no other fallback):
				   see "the token lock" below               */
	int lock_timeout;	/* seconds to wait for the lock; <0: 30     */
	int shared;		/* take the lock shared (signers), see the
				   "sharing the token" section below        */
} custody_token_spec;

/*
 * Loads the module, takes the token lock, initialises the module, finds
 * the one token that matches label/uri (with neither: the only token with
 * a token present; several → EFAIL listing their labels) and opens a R/W
 * session.  Errors name what is missing: the module file, the token
 * ("no token labelled X; tokens present: a, b"), the lock ("token is busy:
 * another custody process holds LOCKFILE").
 * With both uri and label, the URI's token= wins; label is used when the
 * URI names no token.  A URI carrying pin-value is EUSAGE.  Handles of one
 * process share the lock and the module initialisation.
 */
int custody_token_open(const custody_token_spec *spec, custody_token **out,
		       custody_err *err);

/* Logs out (if logged in), closes the session, finalises the module,
 * releases the lock, unloads the module.  NULL is accepted. */
void custody_token_close(custody_token *tok);

/*
 * The token lock alone, exclusive, as custody_token_open takes it (from
 * spec: module, lock_dir, lock_timeout; shared is ignored), without
 * loading the module.  For a caller about to hold a secret, such as a
 * private key decrypted from a file, that must not hold it while it
 * waits for another process: take the lock, then decrypt, then open the
 * token.  A custody_token_open of the same process and token then shares
 * this lock instead of waiting; the lock is let go when the last holder
 * (this handle or a token handle) lets go.  Errors as custody_token_open's
 * ("token is busy: another custody process holds LOCKFILE").  Release
 * accepts NULL.
 */
typedef struct custody_token_lock custody_token_lock;
int custody_token_lock_take(const custody_token_spec *spec,
			    custody_token_lock **out, custody_err *err);
void custody_token_lock_release(custody_token_lock *lock);

/* The token's label and serial (blank-padding removed). */
const char *custody_token_label(const custody_token *tok);
const char *custody_token_serial(const custody_token *tok);

/*
 * User login with the PIN (pin_len bytes).  CKR_USER_ALREADY_LOGGED_IN is
 * success.  Refused without calling C_Login when the token reports the
 * user PIN locked, final try, or not initialised (EPIN).  A PIN the token
 * rejects is EPIN ("the token rejected the PIN"), with a hint when the
 * token now says count low / final try; it is never retried.
 */
int custody_token_login(custody_token *tok, const char *pin, size_t pin_len,
			custody_err *err);

/* One certificate on the token (CKO_CERTIFICATE, CKC_X_509). */
typedef struct custody_token_cert {
	unsigned char *der;
	size_t der_len;
	char key_id[CUSTODY_KEY_ID_HEX + 1];	/* CKA_ID, lower-case hex  */
	char *label;				/* CKA_LABEL or NULL      */
	int has_private_key;	/* a CKO_PRIVATE_KEY with the same CKA_ID;
				   -1 when not logged in (the token hides
				   private keys until the user logs in)   */
} custody_token_cert;

/* Every X.509 certificate on the token, in handle order. */
int custody_token_list_certs(custody_token *tok, custody_token_cert **out,
			     size_t *n, custody_err *err);
void custody_token_certs_free(custody_token_cert *certs, size_t n);

/* *present = 1 when a private key with this key id (hex) is on the token.
 * This, custody_token_import, custody_token_delete and
 * custody_token_key_attrs need a logged-in session: without one they are
 * EFAIL "cannot ... on token L: not logged in ..." (a token without
 * CKF_LOGIN_REQUIRED needs none).  A malformed key id is EUSAGE. */
int custody_token_has_private_key(custody_token *tok, const char *key_id,
				  int *present, custody_err *err);

#define CUSTODY_TOKEN_CHAIN_MAX 16	/* CA certificates an undo can name */
typedef struct custody_token_import_result {
	int created_key;	/* a private key object was created        */
	int created_cert;	/* the certificate object was created      */
	int created_chain;	/* how many CA certificates were created   */
	char key_id[CUSTODY_KEY_ID_HEX + 1];
	/* The key ids of the first CUSTODY_TOKEN_CHAIN_MAX CA certificates
	 * created (each under its own key id): what an undo destroys. */
	char chain_key_ids[CUSTODY_TOKEN_CHAIN_MAX][CUSTODY_KEY_ID_HEX + 1];
} custody_token_import_result;

/*
 * Puts key (may be NULL) and cert, and the chain certificates (may be
 * NULL), on the token under one key id, labelled `label` (NULL: the
 * subject CN; CA certificates keep their own CN).
 *
 * - key NULL: a private key with the certificate's key id must already be
 *   on the token (else EFAIL "no private key with key id X on token L").
 * - An object already present (same CKA_ID and class; for certificates the
 *   same CKA_VALUE) is not created again.  Importing the same file twice
 *   creates nothing the second time.
 * - RSA and EC (P-256/384/521) private keys; other kinds are EFAIL.
 *   A public key object is created beside the private key.
 * - All or nothing: when any object cannot be created, the objects this
 *   call created are destroyed again before returning the error.
 * - Attribute buffers that held private key material are cleansed.
 */
int custody_token_import(custody_token *tok, EVP_PKEY *key, X509 *cert,
			 STACK_OF(X509) *chain, const char *label,
			 int replicable, custody_token_import_result *res,
			 custody_err *err);

/* Destroys the certificate(s), private key and public key with this key id.
 * ENOTFOUND when there is none. */
int custody_token_delete(custody_token *tok, const char *key_id,
			 custody_err *err);

/*
 * Notes of intent.  Before custody creates key objects under a key id
 * (import, request, the unwrap of sync and import --package) it leaves a
 * note on the token itself: a private data object (CKO_DATA,
 * CKA_APPLICATION "custody-intent", CKA_VALUE the key id).  It removes
 * the note once the store records the key, or once it has undone what it
 * created.  A note still there names objects that an interrupted custody
 * process was making: the proof `custody tidy` needs before it lists
 * anything.  Only the token's user can write a note; the store cannot
 * forge one.  Key ids are hex of up to CUSTODY_TOKEN_ID_MAX bytes.
 */
#define CUSTODY_TOKEN_ID_MAX 64
int custody_token_intent_add(custody_token *tok, const char *key_id,
			     custody_err *err);
/* Removes every note of this key id (OK when there is none). */
int custody_token_intent_clear(custody_token *tok, const char *key_id,
			       custody_err *err);
/* custody_token_intent_clear at the end of a change that succeeded: a note
 * that cannot be removed is a warning, not a failure (tidy removes it). */
void custody_token_intent_done(custody_token *tok, const char *key_id);
/* The key ids that notes name, each once (malloc'ed array). */
int custody_token_intent_list(custody_token *tok,
			      char (**key_ids)[2 * CUSTODY_TOKEN_ID_MAX + 1],
			      size_t *n, custody_err *err);

/* What the token holds under one key id (CKA_ID). */
typedef struct custody_token_key_objects {
	size_t certificates;	/* CKO_CERTIFICATE objects */
	size_t public_keys;	/* CKO_PUBLIC_KEY objects  */
	size_t private_keys;	/* CKO_PRIVATE_KEY objects */
} custody_token_key_objects;

/* Counts the objects of each class with this key id (hex). */
int custody_token_count_key_objects(custody_token *tok, const char *key_id,
				    custody_token_key_objects *out,
				    custody_err *err);

/*
 * Destroys the one certificate whose key id is key_id and whose CKA_VALUE
 * is der (every such object, should the token hold it twice); other
 * certificates and the keys with that key id stay.  ENOTFOUND when there
 * is none; EFAIL "cannot destroy the certificate object (key id K) on
 * token L: CKR_..." when the token refuses.
 */
int custody_token_delete_cert(custody_token *tok, const char *key_id,
			      const unsigned char *der, size_t der_len,
			      custody_err *err);

/*
 * Destroys the public key object(s), then the private key, with this key
 * id, and counts them in *destroyed (may be NULL).  Refused (EFAIL, nothing
 * destroyed) while a certificate with that key id is still on the token:
 * a key is never destroyed under a certificate that uses it.  ENOTFOUND
 * when there is no key.  When the token refuses an object, the objects
 * destroyed before it are counted in *destroyed.
 */
int custody_token_delete_key(custody_token *tok, const char *key_id,
			     custody_token_key_objects *destroyed,
			     custody_err *err);

/* RFC 7512 URI of the private key with this key id and label:
 * "pkcs11:token=L;serial=S;id=%01%02...;object=LABEL;type=private"
 * (label may be NULL).  malloc'ed. */
char *custody_token_key_uri(const custody_token *tok, const char *key_id,
			    const char *label);

/* The attributes of a private key, as the token reports them
 * (-1 = the token would not say). */
typedef struct custody_key_attrs {
	int token, private_, sensitive, extractable, sign;
	int always_sensitive, never_extractable, local;
	int wrap_with_trusted;
	unsigned long key_type;	/* CKK_RSA, CKK_EC, ... */
} custody_key_attrs;

/* ENOTFOUND when no private key has this key id. */
int custody_token_key_attrs(custody_token *tok, const char *key_id,
			    custody_key_attrs *out, custody_err *err);

/*
 * Initialises a fresh token (a ceremony step, for SoftHSM and test tokens):
 * finds the first slot whose token is present but not initialised,
 * C_InitToken with so_pin and `label`, then logs in as SO and sets the
 * user PIN (C_InitPIN).  spec->label/uri are ignored; the lock is taken
 * as for custody_token_open.  EFAIL when a token with that label already
 * exists or no free slot is left.
 */
int custody_token_init(const custody_token_spec *spec, const char *label,
		       const char *so_pin, size_t so_pin_len,
		       const char *user_pin, size_t user_pin_len,
		       custody_err *err);

/* ---- signing (token/sign.c) ---------------------------------------- */

/*
 * Signs data with the private key of this key id (hex), in the token's
 * open session (needs a logged-in user).  digest_nid is NID_sha256,
 * NID_sha384 or NID_sha512 (anything else is EUSAGE).  The digest is
 * computed here; RSA keys give a PKCS#1 v1.5 signature (CKM_RSA_PKCS on
 * the DigestInfo), EC keys an ECDSA signature (CKM_ECDSA on the digest,
 * cut to the curve's order) returned DER-encoded (ECDSA-Sig-Value), so
 * that EVP_DigestVerify and X.509 accept both as they are.
 * *sig is malloc'ed (free()).  ENOTFOUND "no private key with key id X on
 * token L" when there is none; a malformed key id is EUSAGE.
 */
int custody_token_sign(custody_token *tok, const char *key_id, int digest_nid,
		       const unsigned char *data, size_t len,
		       unsigned char **sig, size_t *sig_len, custody_err *err);

/*
 * Proves that the private key with this key id is the key of cert: signs
 * 32 random bytes with it (SHA-256) and verifies the signature with the
 * certificate's public key.  EFAIL "the private key with id X does not
 * match certificate T" (T = the certificate's thumbprint) when it does
 * not; errors of custody_token_sign (ENOTFOUND: no such key) as they are.
 */
int custody_token_verify_key(custody_token *tok, const char *key_id,
			     X509 *cert, custody_err *err);

/*
 * Checks kept by a handle that stays open (`sync --watch` between syncs).
 * With keep 1, a key this handle has proved against a certificate
 * (custody_token_remember_checked, after custody_token_verify_key and
 * the certificate object's import) counts as proved while both objects
 * answer to the handles they had with the same class and key id (the
 * certificate object with the same value): custody_token_key_checked
 * says so with two attribute reads, without a search or a signature.
 * An object destroyed, or replaced by another with the same key id,
 * answers no more: the key is checked again in full.  keep 0 (the
 * default) takes nothing as proved and remembers nothing; what was
 * remembered stays for the next keep 1.  A periodic sync checks in full.
 */
void custody_token_keep_checks(custody_token *tok, int keep);
/* *checked = 1 when key_id counts as proved against cert (above). */
int custody_token_key_checked(custody_token *tok, const char *key_id,
			      X509 *cert, int *checked, custody_err *err);
/* Remembers key_id as proved against cert (nothing unless keep is 1):
 * its private key and the certificate object with cert's value. */
int custody_token_remember_checked(custody_token *tok, const char *key_id,
				   X509 *cert, custody_err *err);

/*
 * Whether a failed custody_token_verify_key was the key object's fault —
 * it cannot sign (a half-made object left by an interrupted unwrap or
 * import, an attribute missing or refused), or it signs for another
 * public key — rather than the token's (device, session, login, a busy
 * or cancelled operation, out of memory on the host), after which the
 * object may well be sound.  ENOTFOUND (no key at all) is not a fault of
 * a key.
 */
int custody_token_err_is_key_fault(const custody_err *e);

/* Destroys the private key(s) with this key id, and nothing else (their
 * certificates and public keys stay); *n receives how many went.  For
 * repairing a key that failed its check: the caller proves first that
 * the key is its own and can be made again. */
int custody_token_destroy_private_key(custody_token *tok, const char *key_id,
				      size_t *n, custody_err *err);

/* ---- key pairs made inside the token (token/keygen.c, token/evp.c) --- */

/* *used = 1 when an object on the token (any class) is labelled `label`.
 * Needs a logged-in session, as private objects are hidden otherwise. */
int custody_token_label_used(custody_token *tok, const char *label,
			     int *used, custody_err *err);

/*
 * Generates a key pair inside the token (C_GenerateKeyPair); the private
 * key never exists anywhere else.  Private key: CKA_TOKEN, CKA_PRIVATE,
 * CKA_SENSITIVE, CKA_SIGN true; CKA_SIGN_RECOVER, CKA_DECRYPT,
 * CKA_UNWRAP, CKA_DERIVE false; CKA_EXTRACTABLE false — or, when
 * `replicable`, true — and CKA_WRAP_WITH_TRUSTED true (for a replicable
 * key only where the token can hold a trusted private KEK, as import
 * does).
 * Public key: CKA_TOKEN, CKA_VERIFY true, CKA_PRIVATE and the other
 * usages false.  Both are labelled `label` (required, 1..255 bytes; EFAIL
 * "label L is already on token T" when an object has it) and carry
 * CKA_SUBJECT when subject is given, and CKA_ID = the key id of the public
 * key (cert.h), written in hex to key_id.  *pub (may be NULL) receives the
 * public key as a software EVP_PKEY (caller frees), to build a request or
 * certificate and to check signatures.  Needs a logged-in user.  All or
 * nothing: when any step after the generation fails, both objects are
 * destroyed again.  The steps are narrated (custody_step).
 */
int custody_token_generate(custody_token *tok, const custody_keyspec *spec,
			   const char *label, X509_NAME *subject,
			   int replicable,
			   char key_id[CUSTODY_KEY_ID_HEX + 1],
			   EVP_PKEY **pub, custody_err *err);

/*
 * The public key object with this key id (hex) as a software EVP_PKEY
 * (caller frees): RSA, or EC on a named curve.  ENOTFOUND "no public key
 * with key id K on token L" when there is none; a malformed key id is
 * EUSAGE.  For a request made again for a key already on the token.
 */
int custody_token_public_key(custody_token *tok, const char *key_id,
			     EVP_PKEY **out, custody_err *err);

/*
 * A private key of the token as an OpenSSL EVP_PKEY (through libp11), so
 * that OpenSSL can sign with it (X509_REQ_sign, X509_sign,
 * EVP_DigestSign): the private-key operation runs in the token.
 *
 * libp11 loads the same module file as tok, so both share one module
 * instance and tok's login (login is per process): tok must be open and
 * logged in, and stay so while the key is used.  ENOTFOUND when no
 * private key has this key id; a malformed key id is EUSAGE.
 *
 * The EVP_PKEY belongs to the custody_token_evp: never free it, never
 * EVP_PKEY_dup it (libp11 0.4.12 crashes later).
 *
 * custody_token_evp_close() frees it and libp11's context, and never
 * finalises the module (tok owns its initialisation).  libp11 0.4.12
 * closes EVERY session of the slot in this process when it lets go of it
 * (C_CloseAllSessions), which also logs the process out: afterwards tok
 * has a fresh session and is logged out (log in again to use private
 * objects); other custody handles on the same token lose their sessions.
 * So close it after the last use of tok's private objects, and before
 * custody_token_close(tok).  NULL is accepted.
 */
typedef struct custody_token_evp custody_token_evp;

int custody_token_evp_open(custody_token *tok, const char *key_id,
			   custody_token_evp **out, custody_err *err);
EVP_PKEY *custody_token_evp_pkey(const custody_token_evp *evp);
void custody_token_evp_close(custody_token_evp *evp);

/* ---- sharing the token with signers (token/lock.c) ------------------ */

/*
 * A handle opened with spec->shared takes the token lock SHARED: several
 * shared holders (signers, which only read the token) work at once, while
 * an exclusive holder (every other handle: import, delete, request, ...)
 * waits for all of them, and they for it.  A writer that waits announces
 * itself (a second lock file, the "gate", held exclusively while it
 * waits), so that new shared holders queue behind it instead of starving
 * it.  Within one process, a shared handle and exclusive handles exclude
 * each other as two processes would: close an exclusive handle before a
 * shared one of the same process needs the lock (shared handles of one
 * process hold the lock side by side).  Shared holders initialise the
 * module and log in one at a time (a third lock file, ".login"): a token
 * may write its own files on C_Login (openCryptoki 3.8.1 does, and a
 * C_Initialize elsewhere meanwhile can lose the token), while signing
 * only reads.
 *
 * A long-lived shared holder lets go of the lock whenever it is idle or a
 * writer waits, and takes it again before its next use of the token:
 *
 * custody_token_unlock() releases the shared lock; the handle must not
 * touch the token until custody_token_relock() succeeded.  relock waits up
 * to spec->lock_timeout (EFAIL "token is busy: ..." as open says).  An
 * exclusive handle may do the same when no other handle of the process
 * shares its lock (EUSAGE otherwise): a long-lived writer that keeps its
 * session and login between uses (sync --watch).  What the handle found
 * on the token before it let go (the KEK's handle) is looked for again
 * after relock.  custody_token_lock_wanted()
 * is 1 when a writer waits for the lock (two flock calls; no waiting).
 * The caller serialises these three with every other use of the handle.
 */
int custody_token_unlock(custody_token *tok, custody_err *err);
int custody_token_relock(custody_token *tok, custody_err *err);
int custody_token_lock_wanted(custody_token *tok);

/* ---- what the token can do (token/caps.c) -------------------------- */

/*
 * Refusals made before anything is written, from what the token says of
 * itself (C_GetMechanismList / C_GetMechanismInfo, asked once per token
 * and process).  Each is CUSTODY_OK, or EFAIL in one line naming the token
 * and what it lacks ("token T cannot generate EC-P256 keys: it has no
 * CKM_EC_KEY_PAIR_GEN"); EFAIL too when the token cannot say.
 *
 * custody_token_require_key: keys of pkey_type (EVP_PKEY_RSA or
 * EVP_PKEY_EC; other kinds pass, for the caller to refuse) and bits, to verb ("generate": key pair generation within
 * the token's key sizes, and signing; "import", anything else: signing).
 *
 * custody_token_require_cluster: what a cluster member needs, to WHAT
 * ("create the cluster KEK", "join the cluster", "replicate keys"): AES
 * key generation, CKM_AES_KEY_WRAP_PAD and CKM_RSA_PKCS_OAEP to wrap and
 * unwrap, CKM_AES_KEY_WRAP, RSA key pairs, and CKA_UNWRAP_TEMPLATE.
 */
int custody_token_require_key(custody_token *tok, int pkey_type, int bits,
			      const char *verb, custody_err *err);
int custody_token_require_cluster(custody_token *tok, const char *what,
				  custody_err *err);

/* What custody_token_describe found: one key algorithm. */
typedef struct {
	int generate;		/* a key pair can be generated inside     */
	int sign;		/* keys of it can sign (imported or not) */
	unsigned long min_bits, max_bits;	/* as the token says; 0..0
						 * when it gives none   */
} custody_token_key_caps;

#define CUSTODY_TOKEN_ATTRS 4

/* What a token is and can do, as custody uses it (`custody token`). */
typedef struct {
	char label[33], manufacturer[33], model[17], serial[17];
	unsigned long flags;	/* CK_TOKEN_INFO flags (PIN state and all) */
	unsigned long min_pin, max_pin;
	custody_token_key_caps rsa, ec;
	int rsa_pss;		/* RSA-PSS signatures                      */
	int cluster;		/* can be a cluster member                  */
	char cluster_why[256];	/* when not: the first thing it lacks       */
	int trusted_kek;	/* 1/0: can hold a trusted private KEK; -1
				 * not asked (no cluster member)            */
	const char *tag_mech;	/* what its KEK computes integrity tags
				 * with, or NULL: it cannot keep them      */
	const char *attr_name[CUSTODY_TOKEN_ATTRS];
	int attr_known[CUSTODY_TOKEN_ATTRS];	/* 1 kept, -1 refused, 0 not
						 * asked (not logged in)    */
} custody_token_caps;

/* Fills out from the token itself: C_GetTokenInfo, the mechanism list,
 * and session-object probes of the optional attributes (logged in, or
 * those are 0).  Writes nothing to the token.  EFAIL when the token or
 * its mechanism list cannot be read. */
int custody_token_describe(custody_token *tok, custody_token_caps *out,
			   custody_err *err);

/* What the PKCS#11 module says of itself (C_GetInfo): `custody -v
 * --version`, and a bug report's first line. */
typedef struct {
	char description[33];	/* libraryDescription, blanks trimmed */
	char manufacturer[33];	/* manufacturerID, blanks trimmed     */
	unsigned version_major, version_minor;	/* libraryVersion    */
	unsigned cryptoki_major, cryptoki_minor;	/* cryptokiVersion   */
} custody_token_module_info;

/* Fills out from the module of the open token tok.  EFAIL when the module
 * cannot say (C_GetInfo failed). */
int custody_token_module_describe(custody_token *tok,
				  custody_token_module_info *out,
				  custody_err *err);

/* The key check value of the cluster KEK, 6 upper-case hex digits (see
 * custody/cluster.h). */
#define CUSTODY_KCV_HEX 6

#ifdef __cplusplus
}
#endif
#endif
