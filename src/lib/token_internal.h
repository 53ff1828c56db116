/*
 * token_internal.h — what token.c, token_lock.c and token_import.c share.
 *
 * Not installed.  Tests in tests/token/ include it to reach the raw
 * CK_FUNCTION_LIST and session of an open token (to count objects, or to
 * put a counting wrapper in front of C_Login).
 */
#ifndef CUSTODY_TOKEN_INTERNAL_H
#define CUSTODY_TOKEN_INTERNAL_H

#include <stddef.h>

#include <p11-kit/pkcs11.h>
#include <openssl/evp.h>

#include <custody/error.h>
#include <custody/token.h>

/* One advisory lock file held by this process (token_lock.c). */
struct token_lock;

/* One loaded and initialised module, shared by the handles of this
 * process that use it (token.c). */
struct token_module;

struct custody_token {
	void *dl;		/* dlopen handle                           */
	struct token_module *mod;
	struct custody_token *mod_next;	/* the module's other handles      */
	CK_FUNCTION_LIST *f;	/* the module's functions (tests may wrap) */
	struct token_lock *lock;
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE session;
	int have_session;
	int logged_in;		/* our C_Login succeeded: C_Logout on close */
	char label[33];
	char serial[17];
	int copyable_known;	/* 0: not probed; 1: the token honours
				 * CKA_COPYABLE; -1: it does not know it   */
};

/* token_lock.c ------------------------------------------------------- */

/*
 * Takes the cross-process lock for module (a path) and the token set that
 * $SOFTHSM2_CONF selects: flock(LOCK_EX) on
 * LOCKDIR/token-<16 hex of SHA-256(realpath(module) "\n" $SOFTHSM2_CONF)>.lock,
 * polled every 50 ms up to spec->lock_timeout seconds.  Handles of one
 * process share one lock (counted).  EFAIL "token is busy: another custody
 * process holds LOCKFILE" on timeout.
 */
int token_lock_acquire(const custody_token_spec *spec,
		       struct token_lock **out, custody_err *err);
void token_lock_release(struct token_lock *lock);

/* Shared locks (spec->shared) only, EUSAGE otherwise: let go of the lock
 * and take it again (as custody_token_unlock / relock), and whether a
 * writer waits for it (custody_token_lock_wanted). */
int token_lock_unlock(struct token_lock *lock, custody_err *err);
int token_lock_relock(struct token_lock *lock, custody_err *err);
int token_lock_wanted(struct token_lock *lock);

/* token_intent.c ----------------------------------------------------- */

/* The notes of intent (custody/token.h) of a raw CKA_ID. */
int token_intent_add_raw(custody_token *tok, const unsigned char *id,
			 size_t id_len, custody_err *err);
int token_intent_clear_raw(custody_token *tok, const unsigned char *id,
			   size_t id_len, custody_err *err);

/* token_keygen.c ----------------------------------------------------- */

/* The public key object pub (of spec's type and curve) as a software
 * EVP_PKEY. */
int token_read_public(custody_token *tok, CK_OBJECT_HANDLE pub,
		      const custody_keyspec *spec, EVP_PKEY **out,
		      custody_err *err);

/* token.c ------------------------------------------------------------ */

/* "CKR_PIN_INCORRECT", ... or NULL when the code has no name here. */
const char *token_rv_name(CK_RV rv);

/* As custody_err_set, then appends ": CKR_NAME" (or ": CKR 0x%08lx"). */
int token_err_rv(custody_err *err, int code, CK_RV rv, const char *fmt, ...)
	CUSTODY_PRINTF(4, 5);

/* Every object matching the template, malloc'ed in *out (NULL when none). */
int token_find(custody_token *tok, CK_ATTRIBUTE *tmpl, CK_ULONG n,
	       CK_OBJECT_HANDLE **out, size_t *count, custody_err *err);

/* One attribute's value, malloc'ed (a NUL is added past the end so text
 * attributes can be read as strings).  *len = value length. */
int token_get_attr(custody_token *tok, CK_OBJECT_HANDLE obj,
		   CK_ATTRIBUTE_TYPE type, unsigned char **out, size_t *len,
		   custody_err *err);

/* CUSTODY_OK when the session is logged in as user (or the token needs no
 * login); else EFAIL "cannot WHAT on token L: not logged in ...". */
int token_require_login(custody_token *tok, const char *what,
			custody_err *err);

/* Whether the token knows CKA_COPYABLE (PKCS#11 2.40): probed once per
 * handle with a session object.  Every key custody creates carries
 * CKA_COPYABLE false where the token knows it, so that C_CopyObject
 * cannot make a copy with other attributes (a key without its unwrap
 * template, say). */
int token_knows_copyable(custody_token *tok);

/* The length for tok of a template of n entries whose last one is
 * CKA_COPYABLE: n, or n - 1 where the token does not know it. */
CK_ULONG token_copyable_tail(custody_token *tok, CK_ULONG n);

/* Hex key id (even length, 2..128 digits) to bytes; EUSAGE otherwise. */
int token_key_id_decode(const char *hex, unsigned char *id, size_t max,
			size_t *len, custody_err *err);

/* token_sign.c: signing in a session of the caller's (the signer's pool) */

/* A private key found for signing, with what signing needs to know. */
struct token_key {
	CK_OBJECT_HANDLE handle;
	CK_KEY_TYPE type;	/* CKK_RSA or CKK_EC                       */
	size_t sig_len;		/* RSA: modulus bytes; EC: 2 × order bytes */
	size_t order_len;	/* EC: bytes of the group order            */
};

/* How token_sign_digest signs. */
enum token_mech {
	TOKEN_MECH_RSA_PKCS = 0,	/* CKM_RSA_PKCS over the DigestInfo */
	TOKEN_MECH_RSA_PSS,		/* CKM_RSA_PKCS_PSS, MGF1 and salt
					   of the digest's hash and length  */
	TOKEN_MECH_ECDSA,		/* CKM_ECDSA: raw r || s            */
};

/* Room token_sign_digest needs for key: sig_len plus a DER wrapping. */
#define TOKEN_SIG_ROOM(key) ((key)->sig_len + 16)

/* Another session on tok's token (read-only; the application's login
 * covers it), and its end. */
int token_session_open(custody_token *tok, CK_SESSION_HANDLE *s,
		       custody_err *err);
void token_session_close(custody_token *tok, CK_SESSION_HANDLE s);

/* The private key with this key id, found in session s (the first, if
 * several).  ENOTFOUND "no private key with key id X on token L"; EFAIL
 * when it is neither RSA nor EC or its size cannot be read. */
int token_key_find(custody_token *tok, CK_SESSION_HANDLE s,
		   const char *key_id, struct token_key *out,
		   custody_err *err);

/*
 * Signs the digest md (md_len bytes of digest_nid: NID_sha256, sha384 or
 * sha512) with key in session s, into sig (at least TOKEN_SIG_ROOM(key)
 * bytes): one C_SignInit and one C_Sign, no allocation.  ECDSA digests
 * longer than the group order are cut to it.  *rv is the token's answer
 * (CKR_OK, or e.g. CKR_KEY_HANDLE_INVALID when the key is gone).
 */
int token_sign_digest(custody_token *tok, CK_SESSION_HANDLE s,
		      const struct token_key *key, const char *key_id,
		      enum token_mech mech, int digest_nid,
		      const unsigned char *md, size_t md_len,
		      unsigned char *sig, size_t *sig_len, CK_RV *rv,
		      custody_err *err);

/* The DER ECDSA-Sig-Value of raw r || s (rs_len even, at most 132) into
 * out (rs_len + 9 bytes); returns its length, 0 when rs_len is bad. */
size_t token_ecdsa_der(const unsigned char *rs, size_t rs_len,
		       unsigned char *out);

#endif
