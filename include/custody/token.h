/*
 * custody/token.h — the only module that talks PKCS#11.
 *
 * The module (.so) is loaded with dlopen and driven through its
 * CK_FUNCTION_LIST.  Every key attribute is set explicitly (tokens'
 * defaults differ): a private key is created with CKA_TOKEN, CKA_PRIVATE,
 * CKA_SENSITIVE, CKA_SIGN true and CKA_EXTRACTABLE false — or, when
 * `replicable`, CKA_EXTRACTABLE true together with CKA_WRAP_WITH_TRUSTED
 * true.  A key and its certificate share one CKA_ID: the key id of
 * cert.h.
 *
 * Serialisation: custody_token_open() takes an advisory lock (flock) on a
 * lock file named after the module and the token set it serves (for
 * SoftHSM, SOFTHSM2_CONF), before C_Initialize, so that no two custody
 * processes touch one token at once; custody_token_close() releases it.
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
	const char *lock_dir;	/* NULL: $CUSTODY_LOCK_DIR, /run/lock/custody
				   when writable, else /tmp/custody-UID     */
	int lock_timeout;	/* seconds to wait for the lock; <0: 30     */
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

typedef struct custody_token_import_result {
	int created_key;	/* a private key object was created        */
	int created_cert;	/* the certificate object was created      */
	int created_chain;	/* how many CA certificates were created   */
	char key_id[CUSTODY_KEY_ID_HEX + 1];
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

#ifdef __cplusplus
}
#endif
#endif
