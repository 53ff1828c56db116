/*
 * token/internal.h — what token/token.c, token/lock.c and token/import.c share.
 *
 * Not installed.  Tests in tests/token/ include it to reach the raw
 * CK_FUNCTION_LIST and session of an open token (to count objects, or to
 * put a counting wrapper in front of C_Login).
 */
#ifndef CUSTODY_TOKEN_INTERNAL_H
#define CUSTODY_TOKEN_INTERNAL_H

#include <stddef.h>

#include <p11-kit/pkcs11.h>
#include <openssl/bn.h>
#include <openssl/evp.h>

#include <custody/error.h>
#ifndef NELEM
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#endif
#include <custody/records.h>
#include <custody/token.h>
#include "token/sign.h"
#include "token/wrap.h"

/* One advisory lock file held by this process (token/lock.c). */
struct token_lock;

/* One loaded and initialised module, shared by the handles of this
 * process that use it (token/token.c). */
struct token_module;

#define TOKEN_FOUND_MAX 8
#define TOKEN_FOUND_ID_MAX 64
#define TOKEN_CHECKED_MAX 8
#define TOKEN_TAGS_MAX 32

/* The slot a small ring of max entries fills next (the oldest once it is
 * full): *n counts the filled ones, *next is where the next one goes. */
static inline size_t
token_ring_slot(size_t *next, size_t *n, size_t max)
{
	size_t slot = *next;

	*next = (*next + 1) % max;
	if (*n < max)
		(*n)++;
	return slot;
}

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
	struct token_caps *caps;	/* what it can do (token/caps.c)   */
	/* Objects found by class and key id while the lock has been held
	 * (token_find_by_id): a sync or a write asks for the same few a
	 * dozen times, and each search walks every object of the token. */
	struct token_found {
		CK_OBJECT_CLASS cls;
		unsigned char id[TOKEN_FOUND_ID_MAX];
		size_t id_len;
		CK_OBJECT_HANDLE h;
	} found[TOKEN_FOUND_MAX];
	size_t n_found, next_found;
	unsigned long found_epoch;	/* token_found_epoch when filled */
	CK_OBJECT_HANDLE kcv_of;	/* the KEK whose KCV kek_kcv is  */
	char kek_kcv[CUSTODY_KCV_HEX + 1];
	/* Keys checked against their certificates, with the objects
	 * checked, kept across the lock's let-goes (token/checked.c). */
	int keep_checks;
	struct token_checked {
		unsigned char id[TOKEN_FOUND_ID_MAX];
		size_t id_len;
		unsigned char cert_sha256[32];
		CK_OBJECT_HANDLE priv, cert;
	} checked[TOKEN_CHECKED_MAX];
	size_t n_checked, next_checked;
	/* The certificate object the last import found or made. */
	CK_OBJECT_HANDLE last_cert;
	/* The KEK, kept across the lock's let-goes with keep_checks, and
	 * the integrity tags it computed (a deterministic function of the
	 * KEK and the digest: the same rows are read at every sync). */
	CK_OBJECT_HANDLE kept_kek;
	struct token_tag {
		unsigned char digest[CUSTODY_TAG_INPUT_LEN];
		char tag[CUSTODY_TAG_HEX + 1];
	} tags[TOKEN_TAGS_MAX];
	size_t n_tags, next_tag;
};

/* token/lock.c ------------------------------------------------------- */

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
/* The login turn (lock.c): a shared holder takes it around C_Initialize
 * and C_Login, which other shared holders may not run meanwhile; waits up
 * to spec->lock_timeout (EFAIL "token is busy: ..."); nothing to take for
 * an exclusive holder. */
int token_lock_turn_take(struct token_lock *lock, custody_err *err);
void token_lock_turn_give(struct token_lock *lock);

/* token/intent.c ----------------------------------------------------- */

/* The notes of intent (custody/token.h) of a raw CKA_ID. */
int token_intent_add_raw(custody_token *tok, const unsigned char *id,
			 size_t id_len, custody_err *err);
int token_intent_clear_raw(custody_token *tok, const unsigned char *id,
			   size_t id_len, custody_err *err);

/* token/keygen.c ----------------------------------------------------- */

/* The public key object pub (of spec's type and curve) as a software
 * EVP_PKEY. */
int token_read_public(custody_token *tok, CK_OBJECT_HANDLE pub,
		      const custody_keyspec *spec, EVP_PKEY **out,
		      custody_err *err);
/* The same as a DER SubjectPublicKeyInfo, malloc'ed, of a key of keyspec
 * (custody_keyspec_parse: "rsa:3072", "ec:p256"); EFAIL "cannot encode the
 * WHAT" when OpenSSL cannot. */
int token_public_spki(custody_token *tok, CK_OBJECT_HANDLE pub,
		      const char *keyspec, const char *what,
		      unsigned char **spki, size_t *len, custody_err *err);

/* token/token.c ------------------------------------------------------------ */

/* A blank-padded PKCS#11 text field (len bytes) as a C string in out
 * (len + 1 bytes). */
void token_trim_field(const unsigned char *field, size_t len, char *out);

/* CUSTODY_OK, or EUSAGE "cannot WHAT: no PKCS#11 module given" when spec
 * names no module. */
int token_spec_need_module(const custody_token_spec *spec, const char *what,
			   custody_err *err);

/* "CKR_PIN_INCORRECT", ... or NULL when the code has no name here. */
const char *token_rv_name(CK_RV rv);
/* token_rv_name, or "error" for a code without a name. */
const char *token_rv_text(CK_RV rv);

/* As custody_err_set, then appends ": CKR_NAME" (or ": CKR 0x%08lx"). */
int token_err_rv(custody_err *err, int code, CK_RV rv, const char *fmt, ...)
	CUSTODY_PRINTF(4, 5);

/* Every object matching the template, malloc'ed in *out (NULL when none). */
int token_find(custody_token *tok, CK_ATTRIBUTE *tmpl, CK_ULONG n,
	       CK_OBJECT_HANDLE **out, size_t *count, custody_err *err);
/* The first object matching the template, or CK_INVALID_HANDLE. */
int token_find_first(custody_token *tok, CK_ATTRIBUTE *tmpl, CK_ULONG n,
		     CK_OBJECT_HANDLE *found, custody_err *err);
/* The first object of class cls with this raw CKA_ID, or CK_INVALID_HANDLE. */
int token_find_by_id(custody_token *tok, CK_OBJECT_CLASS cls,
		     const unsigned char *id, size_t id_len,
		     CK_OBJECT_HANDLE *found, custody_err *err);

/* One attribute's value, malloc'ed (a NUL is added past the end so text
 * attributes can be read as strings).  *len = value length. */
int token_get_attr(custody_token *tok, CK_OBJECT_HANDLE obj,
		   CK_ATTRIBUTE_TYPE type, unsigned char **out, size_t *len,
		   custody_err *err);

/* A CK_BBOOL attribute as 1 or 0 in *out. */
int token_get_bool(custody_token *tok, CK_OBJECT_HANDLE h,
		   CK_ATTRIBUTE_TYPE type, int *out, custody_err *err);

/* The private and public key objects with key id id (CK_INVALID_HANDLE
 * for a half not there), in one search by CKA_ID alone. */
int token_find_key_pair(custody_token *tok, const unsigned char *id,
			size_t id_len, CK_OBJECT_HANDLE *priv,
			CK_OBJECT_HANDLE *pub, custody_err *err);

/*
 * What token_find_by_id found stays valid while the lock is held and no
 * object of the token is destroyed: every destroy but that of a
 * temporary object (made and destroyed by one function, never found)
 * calls token_found_forget_all, which all handles of this process see;
 * letting go of the lock forgets the handle's (token_found_forget).
 */
void token_found_forget_all(void);
void token_found_forget(custody_token *tok);
/* 1 and *h when what token_find_by_id found (cls, id) is kept. */
int token_found_lookup(custody_token *tok, CK_OBJECT_CLASS cls,
		       const unsigned char *id, size_t id_len,
		       CK_OBJECT_HANDLE *h);
/* An object this handle made, found from now on without a search. */
void token_found_remember(custody_token *tok, CK_OBJECT_CLASS cls,
			  const unsigned char *id, size_t id_len,
			  CK_OBJECT_HANDLE h);
/* token/checked.c: 1 when h answers with class cls and key id id (an
 * object kept across the lock's let-goes is still the one it was). */
int token_answers(custody_token *tok, CK_OBJECT_HANDLE h, CK_OBJECT_CLASS cls,
		  const unsigned char *id, size_t id_len);
/* C_DestroyObject of a session object made for one computation. */
void token_destroy_temporary(custody_token *tok, CK_OBJECT_HANDLE h,
			     const char *what);
/* C_DestroyObject of h (nothing for CK_INVALID_HANDLE), for undoing: a
 * refusal is a warning naming WHAT, "cannot remove the WHAT from token L
 * again: CKR_...". */
void token_destroy_object(custody_token *tok, CK_OBJECT_HANDLE h,
			  const char *what);

/* C_WrapKey of key under wrapping with mech, the length asked first;
 * *out malloc'ed.  *rv the token's answer; EFAIL (err untouched) unless
 * CKR_OK: the caller words the error. */
int token_wrap_key(custody_token *tok, CK_MECHANISM *mech,
		   CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key,
		   unsigned char **out, size_t *out_len, CK_RV *rv);

/* CUSTODY_OK when the session is logged in as user (or the token needs no
 * login); else EFAIL "cannot WHAT on token L: not logged in ...". */
int token_require_login(custody_token *tok, const char *what,
			custody_err *err);


/* Hex key id (even length, 2..128 digits) to bytes; EUSAGE otherwise. */
int token_key_id_decode(const char *hex, unsigned char *id, size_t max,
			size_t *len, custody_err *err);

/* token_key_id_decode, then token_require_login(WHAT): the start of every
 * call that acts on the objects of one key id. */
int token_key_id_login(custody_token *tok, const char *key_id,
		       const char *what, unsigned char *id, size_t max,
		       size_t *len, custody_err *err);

/* ENOTFOUND "no private key with key id KEY_ID on token LABEL". */
int token_err_no_private_key(const custody_token *tok, const char *key_id,
			     custody_err *err);

/* token/token.c: the one private key with this hex key id, after
 * token_require_login(WHAT): ENOTFOUND "no private key with key id ..."
 * when there is none. */
int token_find_private_key(custody_token *tok, const char *key_id,
			   const char *what, CK_OBJECT_HANDLE *key,
			   custody_err *err);

/* token/caps.c: what the token can do ------------------------------- */

/* The optional attributes custody sets where the token knows them. */
enum token_attr {
	TOKEN_ATTR_COPYABLE,		/* false on every key custody makes,
					 * so C_CopyObject cannot make a copy
					 * with other attributes            */
	TOKEN_ATTR_DESTROYABLE,
	TOKEN_ATTR_WRAP_WITH_TRUSTED,	/* on keys that may leave wrapped  */
	TOKEN_ATTR_UNWRAP_TEMPLATE,	/* on the KEK and transport keys   */
	TOKEN_ATTR_N
};

CK_ATTRIBUTE_TYPE token_attr_type(enum token_attr attr);
const char *token_attr_name(enum token_attr attr);

/* Whether the token accepts attr in a template and keeps its value: asked
 * once per token and process with a session object (token/caps.c). */
int token_knows_attr(custody_token *tok, enum token_attr attr);
/* 1 knows, -1 does not, 0 cannot tell now (the probe failed for another
 * reason than the attribute: not logged in, say). */
int token_attr_known(custody_token *tok, enum token_attr attr);

/* "CKM_AES_KEY_WRAP_PAD", ...; "a mechanism" for one custody never uses. */
const char *token_mech_name(CK_MECHANISM_TYPE m);

/* 1 when the token lists m and m's flags hold every flag of need, 0 when
 * not, -1 (err set) when the mechanism list cannot be read.  *info is m's
 * C_GetMechanismInfo (zero when not listed). */
int token_mech_info(custody_token *tok, CK_MECHANISM_TYPE m, CK_FLAGS need,
		    CK_MECHANISM_INFO *info, custody_err *err);
/* token_mech_info == 1, errors counting as no. */
int token_has_mech(custody_token *tok, CK_MECHANISM_TYPE m, CK_FLAGS need);

/* CUSTODY_OK when the token has m with need; else EFAIL "token L cannot
 * WHAT: it has no CKM_X for signing". */
int token_require_mech(custody_token *tok, CK_MECHANISM_TYPE m, CK_FLAGS need,
		       const char *what, custody_err *err);
/* The same, and bits within m's key sizes. */
int token_require_key_bits(custody_token *tok, CK_MECHANISM_TYPE m,
			   CK_FLAGS need, unsigned long bits, const char *what,
			   custody_err *err);

/* The module's own function list (what identifies it in the process,
 * whatever a test put in tok->f). */
const void *token_module_functions(const custody_token *tok);

/* The mechanism under which the token's KEK computes check values and
 * integrity tags (token/wrap.c): CKM_AES_KEY_WRAP, or where the token has
 * none, CKM_AES_CBC with a zero IV over whole blocks (a deterministic
 * keyed permutation of the block chain all the same); EFAIL when it has
 * neither for wrapping. */
int token_kek_mech(custody_token *tok, CK_MECHANISM_TYPE *m,
		   custody_err *err);

/*
 * Measures whether the user can make a private secret key that the token
 * treats as trusted for wrapping (CKA_TRUSTED), by generating one as a
 * session object (never stored) and wrapping a CKA_WRAP_WITH_TRUSTED
 * session key under it; both are destroyed again.  *supported = 1 when
 * both work, 0 when the token refuses (SoftHSM 2.6.1: CKA_TRUSTED is
 * CKR_ATTRIBUTE_READ_ONLY for the user, and the security officer cannot
 * make private objects).  Other failures are EFAIL.
 *
 * It decides the replicable keys' CKA_WRAP_WITH_TRUSTED (import and
 * generate): where it is 0, a replicable key with CKA_WRAP_WITH_TRUSTED
 * could never be wrapped under the (private, untrusted) KEK, so it is
 * made without it — and, until sealed, any holder of the user PIN can
 * then wrap it under a key of their own.  Seal replicated keys.
 */
int token_probe_trusted_private_kek(custody_token *tok, int *supported,
				    custody_err *err);

/* token/template.c: the one template builder ------------------------- */

#define TOKEN_TMPL_MAX 40

/* A template whose values it owns (copies; secret ones in the secure heap,
 * cleansed).  An attribute that does not fit, or whose copy fails, breaks
 * the template: token_tmpl_check says so, and it is never sent shorter. */
struct token_tmpl {
	CK_ATTRIBUTE a[TOKEN_TMPL_MAX];
	unsigned char secret[TOKEN_TMPL_MAX];
	CK_ULONG n;
	const char *broken;	/* why it cannot be used, or NULL */
};

/* Room for key material: the secure heap when there is one with room, else
 * the ordinary heap (OPENSSL_secure_clear_free frees either). */
void *token_secret_alloc(size_t len);

void token_tmpl_init(struct token_tmpl *t);
void token_tmpl_add(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type,
		    const void *v, size_t len);
/* Each of a[0..n) (values copied: a may be a static template). */
void token_tmpl_add_all(struct token_tmpl *t, const CK_ATTRIBUTE *a,
			CK_ULONG n);
void token_tmpl_add_secret(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type,
			   const void *v, size_t len);
void token_tmpl_bool(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type, int v);
/* One CK_BBOOL attribute of a table of them (token_tmpl_flags). */
struct token_flag {
	CK_ATTRIBUTE_TYPE type;
	int on;
};
/* token_tmpl_bool of each of f[0..n), in order. */
void token_tmpl_flags(struct token_tmpl *t, const struct token_flag *f,
		      size_t n);
void token_tmpl_ulong(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type,
		      CK_ULONG v);
void token_tmpl_text(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type,
		     const char *s);
/* A big integer, big-endian. */
void token_tmpl_bn(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type,
		   const BIGNUM *bn, int secret);
/* attr = v only where the token knows attr (token_attr_known); a token
 * that cannot tell breaks the template: an attribute custody's promise
 * rests on is never left out by chance. */
void token_tmpl_optional_bool(custody_token *tok, struct token_tmpl *t,
			      enum token_attr attr, int v);
/* An attribute whose value is the template inner (CKA_UNWRAP_TEMPLATE):
 * inner must outlive t's use. */
void token_tmpl_nested(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type,
		       const struct token_tmpl *inner);
/* The entry of type, or NULL; set_bool sets (or adds) a CK_BBOOL. */
CK_ATTRIBUTE *token_tmpl_get(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type);
void token_tmpl_set_bool(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type, int v);
void token_tmpl_drop(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type);
/* CUSTODY_OK, or EFAIL "cannot build the template of the WHAT for token
 * L: too many attributes". */
int token_tmpl_check(const struct token_tmpl *t, const custody_token *tok,
		     const char *what, custody_err *err);
void token_tmpl_free(struct token_tmpl *t);

/* The templates of a signing key custody keeps (import, generation,
 * unwrap): every attribute set; the private key sensitive, sign only,
 * extractable only when asked (a replicable key), CKA_WRAP_WITH_TRUSTED
 * true and CKA_COPYABLE false where the token knows them.  The caller adds
 * the key's values, CKA_SUBJECT and what its mechanism needs. */
void token_tmpl_signing_private(custody_token *tok, struct token_tmpl *t,
				CK_KEY_TYPE kt, const void *id, size_t id_len,
				const char *label, int extractable);
void token_tmpl_signing_public(struct token_tmpl *t, CK_KEY_TYPE kt,
			       const void *id, size_t id_len,
			       const char *label);

/* A replicable key's private template priv keeps CKA_WRAP_WITH_TRUSTED
 * (when it asks for it) only where the token can hold a trusted private
 * KEK to wrap it under: on SoftHSM 2.6.1, which cannot, such a key could
 * never be wrapped at all.  *trusted (may be NULL): what priv now asks. */
int token_tmpl_trusted_wrap(custody_token *tok, struct token_tmpl *priv,
			    int *trusted, custody_err *err);

/*
 * Reads back what custody's promises rest on from the key h made with
 * template t: CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, CKA_EXTRACTABLE,
 * CKA_WRAP_WITH_TRUSTED and CKA_COPYABLE as t asked (those t names), and
 * for a key generated or unwrapped (generated = 1) CKA_NEVER_EXTRACTABLE
 * and CKA_ALWAYS_SENSITIVE true where t asked for a sensitive key that is
 * not extractable.  EFAIL "token T did not honour CKA_X on the WHAT (asked
 * true, holds false): refused"; the caller destroys the object.
 */
int token_check_attrs(custody_token *tok, CK_OBJECT_HANDLE h,
		     const char *what, struct token_tmpl *t, int generated,
		     custody_err *err);

/* token/sign.c: signing in the signer's sessions: token/sign.h */

#endif
