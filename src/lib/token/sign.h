/*
 * token/sign.h — signing in sessions of the caller's (token/sign.c): what
 * the signer (sign/signer.c) needs of the token module to keep a pool of
 * sessions and a cache of key handles, and sign many times in parallel
 * with one C_SignInit and one C_Sign each.
 *
 * Not installed; the token module's other internals are token/internal.h.
 */
#ifndef CUSTODY_TOKEN_SIGN_H
#define CUSTODY_TOKEN_SIGN_H

#include <stddef.h>

#include <p11-kit/pkcs11.h>

#include <custody/error.h>
#include <custody/token.h>

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
/* The session tok opened for itself (logged in with tok), which a pool of
 * sessions may use as its first. */
CK_SESSION_HANDLE token_handle_session(const custody_token *tok);

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

#endif
