/*
 * token/authority.c — the cluster authority key and a node's pin of it.
 *
 * The authority is an EC P-256 key pair that `kek create` makes beside the
 * KEK on the first member's token: its private half signs every admission
 * (the KEK wrapped for a node, with the node's name, transport key and the
 * KEK's check value), never leaves that token and cannot be copied.  A
 * node that enrolls pins the authority's public key on its own token (a
 * private, unmodifiable data object), after the operator confirmed its
 * fingerprint, and `node join` accepts only an admission that this pinned
 * key verifies.  So a store writer cannot hand a node a KEK of their own.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <custody/cert.h>
#include <custody/hexfmt.h>
#include <custody/log.h>
#include <custody/token.h>

#include "token/internal.h"

static CK_BBOOL yes = CK_TRUE;
static CK_BBOOL no = CK_FALSE;
static char authority_id[] = CUSTODY_AUTHORITY_ID;

#define AUTHORITY_ID_LEN (sizeof(authority_id) - 1)
#define BOOL_ATTR(type, v) {(type), (v) ? &yes : &no, sizeof(CK_BBOOL)}

/* The object of class cls with the authority's CKA_ID (or, for the pin,
 * its CKA_APPLICATION), or CK_INVALID_HANDLE. */
static int
find_one(custody_token *tok, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *h,
	 custody_err *err)
{
	CK_ATTRIBUTE t[] = {
		{CKA_CLASS, &cls, sizeof(cls)},
		{cls == CKO_DATA ? CKA_APPLICATION : CKA_ID, authority_id,
		 AUTHORITY_ID_LEN},
	};
	CK_OBJECT_HANDLE *found = NULL;
	size_t n = 0;
	int r;

	*h = CK_INVALID_HANDLE;
	if ((r = token_find(tok, t, NELEM(t), &found, &n, err)) == CUSTODY_OK &&
	    n > 0)
		*h = found[0];
	free(found);
	return r;
}

/* The authority's two halves (either may be CK_INVALID_HANDLE), for a
 * logged-in user about to WHAT. */
static int
find_pair(custody_token *tok, const char *what, CK_OBJECT_HANDLE *priv,
	  CK_OBJECT_HANDLE *pub, custody_err *err)
{
	int r;

	if ((r = token_require_login(tok, what, err)) == CUSTODY_OK &&
	    (r = find_one(tok, CKO_PRIVATE_KEY, priv, err)) == CUSTODY_OK)
		r = find_one(tok, CKO_PUBLIC_KEY, pub, err);
	return r;
}

int
custody_token_authority_public(custody_token *tok, unsigned char **spki,
			       size_t *spki_len, custody_err *err)
{
	CK_OBJECT_HANDLE priv, pub;
	int r;

	*spki = NULL;
	*spki_len = 0;
	if ((r = find_pair(tok, "look for the cluster authority key", &priv,
			   &pub, err)) != CUSTODY_OK)
		return r;
	if (priv == CK_INVALID_HANDLE || pub == CK_INVALID_HANDLE)
		return custody_err_set(err, CUSTODY_ENOTFOUND,
				       "token %s holds no cluster authority key",
				       tok->label);
	return token_public_spki(tok, pub, "ec:p256",
				 "cluster authority's public key", spki,
				 spki_len, err);
}

/* The authority key pair signs admissions (its public half verifies
 * them) and does nothing else. */
static const struct token_flag authority_public_flags[] = {
	{CKA_TOKEN, 1}, {CKA_PRIVATE, 0}, {CKA_VERIFY, 1}, {CKA_ENCRYPT, 0},
	{CKA_WRAP, 0}, {CKA_DERIVE, 0},
};

static const struct token_flag authority_private_flags[] = {
	{CKA_TOKEN, 1}, {CKA_PRIVATE, 1}, {CKA_SENSITIVE, 1},
	{CKA_EXTRACTABLE, 0}, {CKA_SIGN, 1}, {CKA_SIGN_RECOVER, 0},
	{CKA_DECRYPT, 0}, {CKA_UNWRAP, 0}, {CKA_DERIVE, 0},
};

int
custody_token_authority_create(custody_token *tok, unsigned char **spki,
			       size_t *spki_len, custody_err *err)
{
	/* DER OID 1.2.840.10045.3.1.7 (prime256v1). */
	static unsigned char p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
				       0x3d, 0x03, 0x01, 0x07};
	struct token_tmpl pub_tmpl, priv_tmpl;
	CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
	CK_RV rv;
	int r;

	*spki = NULL;
	*spki_len = 0;
	token_tmpl_init(&pub_tmpl);
	token_tmpl_init(&priv_tmpl);
	if ((r = token_require_login(tok, "create the cluster authority key",
				     err)) != CUSTODY_OK ||
	    (r = token_require_mech(tok, CKM_EC_KEY_PAIR_GEN,
				    CKF_GENERATE_KEY_PAIR,
				    "create the cluster authority key (EC "
				    "P-256)", err)) != CUSTODY_OK ||
	    (r = token_require_mech(tok, CKM_ECDSA, CKF_SIGN,
				    "sign admissions (ECDSA)", err)) !=
	    CUSTODY_OK ||
	    (r = find_one(tok, CKO_PRIVATE_KEY, &priv, err)) != CUSTODY_OK)
		goto out;
	if (priv != CK_INVALID_HANDLE) {
		priv = CK_INVALID_HANDLE;
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot create the cluster authority key: "
				    "token %s already holds one", tok->label);
		goto out;
	}
	custody_step("generating the cluster authority key (EC P-256) on token "
		     "%s (serial %s): it signs admissions, never leaves the "
		     "token and cannot be copied", tok->label, tok->serial);
	token_tmpl_ulong(&pub_tmpl, CKA_CLASS, CKO_PUBLIC_KEY);
	token_tmpl_ulong(&pub_tmpl, CKA_KEY_TYPE, CKK_EC);
	token_tmpl_flags(&pub_tmpl, authority_public_flags,
			 NELEM(authority_public_flags));
	token_tmpl_add(&pub_tmpl, CKA_EC_PARAMS, p256, sizeof(p256));
	token_tmpl_add(&pub_tmpl, CKA_ID, authority_id, AUTHORITY_ID_LEN);
	token_tmpl_add(&pub_tmpl, CKA_LABEL, authority_id, AUTHORITY_ID_LEN);
	token_tmpl_ulong(&priv_tmpl, CKA_CLASS, CKO_PRIVATE_KEY);
	token_tmpl_ulong(&priv_tmpl, CKA_KEY_TYPE, CKK_EC);
	token_tmpl_flags(&priv_tmpl, authority_private_flags,
			 NELEM(authority_private_flags));
	token_tmpl_add(&priv_tmpl, CKA_ID, authority_id, AUTHORITY_ID_LEN);
	token_tmpl_add(&priv_tmpl, CKA_LABEL, authority_id, AUTHORITY_ID_LEN);
	token_tmpl_optional_bool(tok, &priv_tmpl, TOKEN_ATTR_COPYABLE, 0);
	if ((r = token_tmpl_check(&pub_tmpl, tok,
				  "cluster authority public key", err)) !=
	    CUSTODY_OK ||
	    (r = token_tmpl_check(&priv_tmpl, tok, "cluster authority key",
				  err)) != CUSTODY_OK)
		goto out;
	rv = tok->f->C_GenerateKeyPair(tok->session, &gen, pub_tmpl.a,
				       pub_tmpl.n, priv_tmpl.a, priv_tmpl.n,
				       &pub, &priv);
	if (rv != CKR_OK) {
		pub = priv = CK_INVALID_HANDLE;
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot generate the cluster authority key on "
				 "token %s", tok->label);
		goto out;
	}
	if ((r = token_check_attrs(tok, priv, "cluster authority key",
				   &priv_tmpl, 1, err)) == CUSTODY_OK)
		r = token_public_spki(tok, pub, "ec:p256",
				      "cluster authority's public key", spki,
				      spki_len, err);
out:
	if (r != CUSTODY_OK && priv != CK_INVALID_HANDLE) {
		token_found_forget_all();
		tok->f->C_DestroyObject(tok->session, priv);
		tok->f->C_DestroyObject(tok->session, pub);
	}
	token_tmpl_free(&pub_tmpl);
	token_tmpl_free(&priv_tmpl);
	return r;
}

int
custody_token_authority_destroy(custody_token *tok, custody_err *err)
{
	CK_OBJECT_HANDLE priv, pub;
	CK_RV rv = CKR_OK;
	int r;

	if ((r = find_pair(tok, "destroy the cluster authority key", &priv,
			   &pub, err)) != CUSTODY_OK)
		return r;
	token_found_forget_all();
	if (priv != CK_INVALID_HANDLE)
		rv = tok->f->C_DestroyObject(tok->session, priv);
	if (rv == CKR_OK && pub != CK_INVALID_HANDLE)
		rv = tok->f->C_DestroyObject(tok->session, pub);
	if (rv != CKR_OK)
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot destroy the cluster authority key "
				    "on token %s", tok->label);
	return CUSTODY_OK;
}

int
custody_token_authority_sign(custody_token *tok, const unsigned char *msg,
			     size_t msg_len, unsigned char **sig,
			     size_t *sig_len, custody_err *err)
{
	char hex_id[2 * AUTHORITY_ID_LEN + 1];
	unsigned char md[32], raw[2 * 66 + 16], der[2 * 66 + 16 + 9];
	size_t raw_len = sizeof(raw), der_len;
	struct token_key key;
	CK_RV rv;
	int r;

	*sig = NULL;
	*sig_len = 0;
	custody_hex_encode((const unsigned char *)authority_id,
			   AUTHORITY_ID_LEN, hex_id, 0);
	if ((r = token_require_login(tok, "sign with the cluster authority "
				     "key", err)) != CUSTODY_OK)
		return r;
	r = token_key_find(tok, tok->session, hex_id, &key, err);
	if (r == CUSTODY_ENOTFOUND)
		return custody_err_set(err, CUSTODY_ENOTFOUND,
				       "token %s holds no cluster authority key",
				       tok->label);
	if (r != CUSTODY_OK)
		return r;
	if (key.type != CKK_EC || TOKEN_SIG_ROOM(&key) > sizeof(raw))
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the cluster authority key on token %s is "
				       "not an EC key", tok->label);
	if (EVP_Digest(msg, msg_len, md, NULL, EVP_sha256(), NULL) != 1)
		return custody_err_openssl(err, CUSTODY_EFAIL,
					   "cannot hash what the cluster "
					   "authority signs");
	if ((r = token_sign_digest(tok, tok->session, &key, hex_id,
				   TOKEN_MECH_ECDSA, NID_sha256, md, sizeof(md),
				   raw, &raw_len, &rv, err)) != CUSTODY_OK)
		return r;
	if ((der_len = custody_ecdsa_raw_to_der(raw, raw_len, der)) == 0 ||
	    (*sig = malloc(der_len)) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot encode the cluster authority's "
				       "signature");
	memcpy(*sig, der, der_len);
	*sig_len = der_len;
	return CUSTODY_OK;
}

/* ------------------------------------------------------------- the pin */

int
custody_token_authority_pinned(custody_token *tok, unsigned char **spki,
			       size_t *spki_len, custody_err *err)
{
	CK_OBJECT_HANDLE h;
	int r;

	*spki = NULL;
	*spki_len = 0;
	if ((r = token_require_login(tok, "read the pinned cluster authority",
				     err)) != CUSTODY_OK ||
	    (r = find_one(tok, CKO_DATA, &h, err)) != CUSTODY_OK)
		return r;
	if (h == CK_INVALID_HANDLE)
		return custody_err_set(err, CUSTODY_ENOTFOUND,
				       "token %s has no cluster authority "
				       "pinned", tok->label);
	return token_get_attr(tok, h, CKA_VALUE, spki, spki_len, err);
}

int
custody_token_authority_pin(custody_token *tok, const unsigned char *spki,
			    size_t spki_len, custody_err *err)
{
	static CK_OBJECT_CLASS data = CKO_DATA;
	static char label[] = "custody cluster authority (pinned)";
	CK_ATTRIBUTE t[] = {
		{CKA_CLASS, &data, sizeof(data)},
		BOOL_ATTR(CKA_TOKEN, 1),
		BOOL_ATTR(CKA_PRIVATE, 1),
		BOOL_ATTR(CKA_MODIFIABLE, 0),
		{CKA_APPLICATION, authority_id, AUTHORITY_ID_LEN},
		{CKA_LABEL, label, sizeof(label) - 1},
		{CKA_VALUE, (void *)spki, spki_len},
	};
	struct token_tmpl tmpl;
	CK_OBJECT_HANDLE h;
	CK_RV rv;
	int r;

	token_tmpl_init(&tmpl);
	if ((r = token_require_login(tok, "pin the cluster authority", err)) !=
	    CUSTODY_OK ||
	    (r = find_one(tok, CKO_DATA, &h, err)) != CUSTODY_OK)
		goto out;
	if (h != CK_INVALID_HANDLE) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot pin the cluster authority: token "
				    "%s already has one pinned", tok->label);
		goto out;
	}
	token_tmpl_add_all(&tmpl, t, NELEM(t));
	token_tmpl_optional_bool(tok, &tmpl, TOKEN_ATTR_COPYABLE, 0);
	if ((r = token_tmpl_check(&tmpl, tok, "pinned cluster authority",
				  err)) != CUSTODY_OK)
		goto out;
	rv = tok->f->C_CreateObject(tok->session, tmpl.a, tmpl.n, &h);
	if (rv != CKR_OK)
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot pin the cluster authority on token "
				 "%s", tok->label);
out:
	token_tmpl_free(&tmpl);
	return r;
}

int
custody_token_authority_unpin(custody_token *tok, custody_err *err)
{
	CK_OBJECT_HANDLE h;
	CK_RV rv;
	int r;

	if ((r = token_require_login(tok, "remove the pinned cluster authority",
				     err)) != CUSTODY_OK ||
	    (r = find_one(tok, CKO_DATA, &h, err)) != CUSTODY_OK ||
	    h == CK_INVALID_HANDLE)
		return r;
	token_found_forget_all();
	rv = tok->f->C_DestroyObject(tok->session, h);
	if (rv != CKR_OK)
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot remove the pinned cluster authority "
				    "from token %s", tok->label);
	return CUSTODY_OK;
}
