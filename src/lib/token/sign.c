/*
 * token/sign.c — signing with a private key on the token, and the
 * sign/verify challenge that proves a key belongs to a certificate.
 *
 * The portable way, which every token supports: the digest is computed in
 * software; RSA keys sign a DER DigestInfo with CKM_RSA_PKCS (PKCS#1
 * v1.5), EC keys sign the digest with CKM_ECDSA (SoftHSM 2.6.1 has no
 * CKM_ECDSA_SHA256) and the token's raw r || s is turned into the DER
 * ECDSA-Sig-Value that OpenSSL and X.509 expect.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <custody/cert.h>
#include <custody/hexfmt.h>
#include <custody/token.h>

#include "token/internal.h"

#define KEY_ID_MAX 64		/* bytes of a CKA_ID we accept as hex    */
#define CHALLENGE_LEN 32	/* random bytes signed by verify_key     */

static int
key_type(custody_token *tok, CK_OBJECT_HANDLE key, const char *key_id,
	 CK_KEY_TYPE *out, custody_err *err)
{
	CK_ATTRIBUTE a = {CKA_KEY_TYPE, out, sizeof(*out)};
	CK_RV rv;

	rv = tok->f->C_GetAttributeValue(tok->session, key, &a, 1);
	if (rv != CKR_OK)
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot read the key type of private key "
				    "%s on token %s", key_id, tok->label);
	return CUSTODY_OK;
}

/* Bytes of the order of the curve named by DER ECParameters; 0 (the
 * OpenSSL error left queued) when it names none. */
static size_t
order_len_of(const unsigned char *params, size_t len)
{
	const unsigned char *p = params;
	EC_GROUP *group = d2i_ECPKParameters(NULL, &p, (long)len);
	int bits = group != NULL ? EC_GROUP_order_bits(group) : 0;

	EC_GROUP_free(group);
	return bits > 0 ? ((size_t)bits + 7) / 8 : 0;
}

/* Bytes of the EC key's group order: a longer digest is cut to it
 * (FIPS 186-4: the leftmost bits), since CKM_ECDSA may refuse it. */
static int
ec_order_bytes(custody_token *tok, CK_OBJECT_HANDLE key, const char *key_id,
	       size_t *out, custody_err *err)
{
	unsigned char *params = NULL;
	size_t len = 0;
	int r;

	if ((r = token_get_attr(tok, key, CKA_EC_PARAMS, &params, &len, err)) !=
	    CUSTODY_OK) {
		custody_err_prefix(err, "cannot sign with private key %s",
				   key_id);
		goto out;
	}
	if ((*out = order_len_of(params, len)) == 0)
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot sign with private key %s on "
					"token %s: its curve is unknown",
					key_id, tok->label);
out:
	free(params);
	return r;
}

/* DER DigestInfo { algorithm, digest } for PKCS#1 v1.5 (OPENSSL_malloc'ed). */
static int
digest_info(int nid, const unsigned char *md, size_t md_len,
	    unsigned char **out, size_t *out_len, custody_err *err)
{
	X509_SIG *di = X509_SIG_new();
	X509_ALGOR *alg = NULL;
	ASN1_OCTET_STRING *digest = NULL;
	unsigned char *der = NULL;
	int len, r = CUSTODY_EFAIL;

	if (di == NULL)
		goto fail;
	X509_SIG_getm(di, &alg, &digest);
	if (!X509_ALGOR_set0(alg, OBJ_nid2obj(nid), V_ASN1_NULL, NULL) ||
	    !ASN1_OCTET_STRING_set(digest, md, (int)md_len) ||
	    (len = i2d_X509_SIG(di, &der)) <= 0)
		goto fail;
	*out = der;
	*out_len = (size_t)len;
	r = CUSTODY_OK;
	goto out;
fail:
	r = custody_err_openssl(err, CUSTODY_EFAIL,
				"cannot encode the DigestInfo to sign");
out:
	X509_SIG_free(di);
	return r;
}

/* The token's raw r || s as a DER ECDSA-Sig-Value (malloc'ed). */
static int
ecdsa_der(const unsigned char *raw, size_t raw_len, const char *key_id,
	  unsigned char **out, size_t *out_len, custody_err *err)
{
	unsigned char *der;
	size_t len = 0;

	if (raw_len == 0 || raw_len % 2 != 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot sign with private key %s: the "
				       "token returned an ECDSA signature of "
				       "odd length %zu", key_id, raw_len);
	if ((der = malloc(raw_len + 9)) == NULL ||
	    (len = custody_ecdsa_raw_to_der(raw, raw_len, der)) == 0) {
		free(der);
		return custody_err_openssl(err, CUSTODY_EFAIL,
					   "cannot encode the ECDSA signature "
					   "of private key %s", key_id);
	}
	*out = der;
	*out_len = len;
	return CUSTODY_OK;
}

/* C_SignInit + C_Sign (length query, then the signature; malloc'ed). */
static int
token_sign_raw(custody_token *tok, CK_OBJECT_HANDLE key, CK_MECHANISM_TYPE m,
	       const char *key_id, const unsigned char *in, size_t in_len,
	       unsigned char **out, size_t *out_len, custody_err *err)
{
	CK_MECHANISM mech = {m, NULL, 0};
	CK_ULONG len = 0;
	unsigned char *buf = NULL;
	int active = 0, r = CUSTODY_EFAIL;
	CK_RV rv;

	rv = tok->f->C_SignInit(tok->session, &mech, key);
	if (rv != CKR_OK)
		goto fail;
	active = 1;
	rv = tok->f->C_Sign(tok->session, (CK_BYTE *)in, in_len, NULL, &len);
	if (rv != CKR_OK)
		goto fail;
	if (len == 0) {
		/* What a half-made key object answers (SoftHSM: one whose
		 * key material was never written). */
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot sign with private key %s on token "
				    "%s: the token gives its signatures no "
				    "length (a damaged key object)", key_id,
				    tok->label);
		goto out;
	}
	if ((buf = malloc(len)) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot sign with private key %s on token "
				    "%s: out of memory", key_id, tok->label);
		err->ckr = CKR_HOST_MEMORY;
		goto out;
	}
	rv = tok->f->C_Sign(tok->session, (CK_BYTE *)in, in_len, buf, &len);
	/* C_Sign ends the operation unless it says the buffer is too small. */
	active = rv == CKR_BUFFER_TOO_SMALL;
	if (rv != CKR_OK)
		goto fail;
	*out = buf;
	buf = NULL;
	*out_len = len;
	r = CUSTODY_OK;
	goto out;
fail:
	active = active && rv == CKR_BUFFER_TOO_SMALL;
	r = token_err_rv(err, CUSTODY_EFAIL, rv,
			 "cannot sign with private key %s on token %s",
			 key_id, tok->label);
out:
	if (active) {
		/* Ends an operation left open after the length query. */
		unsigned char scratch[4096];
		CK_ULONG n = sizeof(scratch);

		tok->f->C_Sign(tok->session, (CK_BYTE *)in, in_len, scratch,
			       &n);
	}
	free(buf);
	return r;
}

int
custody_token_sign(custody_token *tok, const char *key_id, int digest_nid,
		   const unsigned char *data, size_t len, unsigned char **sig,
		   size_t *sig_len, custody_err *err)
{
	const EVP_MD *md = NULL;
	unsigned char digest[EVP_MAX_MD_SIZE], *di = NULL, *raw = NULL;
	unsigned int md_len = 0;
	size_t di_len = 0, raw_len = 0, order = 0;
	CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
	CK_KEY_TYPE kt = (CK_KEY_TYPE)-1;
	int r = CUSTODY_EFAIL;

	*sig = NULL;
	*sig_len = 0;
	if (digest_nid != NID_sha256 && digest_nid != NID_sha384 &&
	    digest_nid != NID_sha512) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot sign with private key %s: digest %s "
				    "is not supported (SHA-256, SHA-384 or "
				    "SHA-512)", key_id != NULL ? key_id : "",
				    OBJ_nid2sn(digest_nid) != NULL
					    ? OBJ_nid2sn(digest_nid) : "?");
		goto out;
	}
	if ((r = token_find_private_key(tok, key_id, "sign", &key, err)) !=
	    CUSTODY_OK ||
	    (r = key_type(tok, key, key_id, &kt, err)) != CUSTODY_OK)
		goto out;
	md = EVP_get_digestbynid(digest_nid);
	if (md == NULL ||
	    !EVP_Digest(data, len, digest, &md_len, md, NULL)) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot sign with private key %s: the "
					"digest failed", key_id);
		goto out;
	}
	switch (kt) {
	case CKK_RSA:
		if ((r = digest_info(digest_nid, digest, md_len, &di, &di_len,
				     err)) != CUSTODY_OK ||
		    (r = token_sign_raw(tok, key, CKM_RSA_PKCS, key_id, di,
					di_len, sig, sig_len, err)) !=
		    CUSTODY_OK)
			goto out;
		break;
	case CKK_EC:
		if ((r = ec_order_bytes(tok, key, key_id, &order, err)) !=
		    CUSTODY_OK)
			goto out;
		if ((r = token_sign_raw(tok, key, CKM_ECDSA, key_id, digest,
					md_len < order ? md_len : order, &raw,
					&raw_len, err)) != CUSTODY_OK ||
		    (r = ecdsa_der(raw, raw_len, key_id, sig, sig_len, err)) !=
		    CUSTODY_OK)
			goto out;
		break;
	default:
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot sign with private key %s on token "
				    "%s: key type 0x%lx is neither RSA nor EC",
				    key_id, tok->label, (unsigned long)kt);
		goto out;
	}
	r = CUSTODY_OK;
out:
	OPENSSL_free(di);
	free(raw);
	return r;
}

/* The certificate's SHA-1 thumbprint, upper-case hex ("?" if it fails). */
static void
thumbprint_of(X509 *cert, char out[CUSTODY_THUMBPRINT_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (cert != NULL && X509_digest(cert, EVP_sha1(), md, &len) &&
	    len * 2 == CUSTODY_THUMBPRINT_HEX)
		custody_hex_encode(md, len, out, 1);
	else
		strcpy(out, "?");
}

int
custody_token_verify_key(custody_token *tok, const char *key_id, X509 *cert,
			 custody_err *err)
{
	unsigned char challenge[CHALLENGE_LEN], *sig = NULL;
	size_t sig_len = 0;
	char tp[CUSTODY_THUMBPRINT_HEX + 1];
	EVP_PKEY *pub = cert != NULL ? X509_get0_pubkey(cert) : NULL;
	EVP_MD_CTX *ctx = NULL;
	int r = CUSTODY_EFAIL;

	thumbprint_of(cert, tp);
	if (pub == NULL) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot check private key %s against "
					"certificate %s: its public key cannot "
					"be read", key_id, tp);
		goto out;
	}
	if (RAND_bytes(challenge, sizeof(challenge)) != 1) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot check private key %s: no "
					"random challenge", key_id);
		goto out;
	}
	if ((r = custody_token_sign(tok, key_id, NID_sha256, challenge,
				    sizeof(challenge), &sig, &sig_len, err)) !=
	    CUSTODY_OK)
		goto out;
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) != 1) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot check private key %s against "
					"certificate %s", key_id, tp);
		goto out;
	}
	/* 0 is a wrong signature, < 0 one that does not even parse for this
	 * key type (an RSA signature checked with an EC key): both mean the
	 * key is not the certificate's. */
	if (EVP_DigestVerify(ctx, sig, sig_len, challenge,
			     sizeof(challenge)) != 1) {
		ERR_clear_error();
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "the private key with id %s does not match "
				    "certificate %s", key_id, tp);
	}
out:
	EVP_MD_CTX_free(ctx);
	free(sig);
	return r;
}

int
custody_token_err_is_key_fault(const custody_err *e)
{
	if (e == NULL || e->code != CUSTODY_EFAIL)
		return 0;
	switch (e->ckr) {
	case CKR_OK:			/* a wrong or empty signature */
	case CKR_GENERAL_ERROR:
	case CKR_FUNCTION_FAILED:
	case CKR_ATTRIBUTE_SENSITIVE:
	case CKR_ATTRIBUTE_TYPE_INVALID:
	case CKR_ATTRIBUTE_VALUE_INVALID:
	case CKR_DATA_INVALID:
	case CKR_DATA_LEN_RANGE:
	case CKR_KEY_HANDLE_INVALID:
	case CKR_KEY_SIZE_RANGE:
	case CKR_KEY_TYPE_INCONSISTENT:
	case CKR_KEY_FUNCTION_NOT_PERMITTED:
	case CKR_MECHANISM_INVALID:
	case CKR_MECHANISM_PARAM_INVALID:
	case CKR_OBJECT_HANDLE_INVALID:
	case CKR_TEMPLATE_INCOMPLETE:
	case CKR_TEMPLATE_INCONSISTENT:
		return 1;
	default:
		return 0;
	}
}

/* ------------------------------------- signing in the caller's session */

/*
 * What the signer (sign/signer.c) uses: sessions of its own, keys found once
 * and kept, one C_SignInit + C_Sign per signature without allocating.
 */

/* The DER DigestInfo prefixes of RFC 8017 §9.2, note 1. */
static const unsigned char di_sha256[] = {
	0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
	0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
};
static const unsigned char di_sha384[] = {
	0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
	0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30,
};
static const unsigned char di_sha512[] = {
	0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
	0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40,
};

int
token_session_open(custody_token *tok, CK_SESSION_HANDLE *s, custody_err *err)
{
	CK_RV rv;

	rv = tok->f->C_OpenSession(tok->slot, CKF_SERIAL_SESSION, NULL, NULL,
				   s);
	if (rv != CKR_OK)
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot open a session on token %s",
				    tok->label);
	return CUSTODY_OK;
}

void
token_session_close(custody_token *tok, CK_SESSION_HANDLE s)
{
	tok->f->C_CloseSession(s);
}

CK_SESSION_HANDLE
token_handle_session(const custody_token *tok)
{
	return tok->session;
}

int
token_key_find(custody_token *tok, CK_SESSION_HANDLE s, const char *key_id,
	       struct token_key *out, custody_err *err)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	unsigned char id[KEY_ID_MAX], params[256];
	size_t id_len;
	CK_ATTRIBUTE t[] = {
		{CKA_CLASS, &cls, sizeof(cls)},
		{CKA_ID, id, 0},
	};
	/* One call for all: an RSA key has no CKA_EC_PARAMS and an EC key
	 * no CKA_MODULUS (CKR_ATTRIBUTE_TYPE_INVALID, the others filled). */
	CK_ATTRIBUTE a[] = {
		{CKA_KEY_TYPE, &out->type, sizeof(out->type)},
		{CKA_MODULUS, NULL, 0},
		{CKA_EC_PARAMS, params, sizeof(params)},
	};
	CK_ULONG n = 0;
	CK_RV rv;
	int active = 0, r = CUSTODY_EFAIL;

	memset(out, 0, sizeof(*out));
	if ((r = token_key_id_decode(key_id, id, sizeof(id), &id_len, err)) !=
	    CUSTODY_OK)
		goto out;
	t[1].ulValueLen = id_len;
	rv = tok->f->C_FindObjectsInit(s, t, 2);
	if (rv == CKR_OPERATION_ACTIVE) {
		/* A search whose C_FindObjectsFinal failed is still open in
		 * this session: end it, then search once more. */
		tok->f->C_FindObjectsFinal(s);
		rv = tok->f->C_FindObjectsInit(s, t, 2);
	}
	if (rv != CKR_OK)
		goto fail;
	active = 1;
	rv = tok->f->C_FindObjects(s, &out->handle, 1, &n);
	if (rv != CKR_OK)
		goto fail;
	if (n == 0) {
		r = token_err_no_private_key(tok, key_id, err);
		goto out;
	}
	rv = tok->f->C_GetAttributeValue(s, out->handle, a, 3);
	if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID &&
	    rv != CKR_ATTRIBUTE_SENSITIVE)
		goto fail;
	if (a[0].ulValueLen != sizeof(out->type))
		out->type = (CK_KEY_TYPE)-1;
	switch (out->type) {
	case CKK_RSA:
		if (a[1].ulValueLen != CK_UNAVAILABLE_INFORMATION)
			out->sig_len = a[1].ulValueLen;
		break;
	case CKK_EC:
		if (a[2].ulValueLen != CK_UNAVAILABLE_INFORMATION) {
			out->order_len = order_len_of(params, a[2].ulValueLen);
			ERR_clear_error();
		}
		if (out->order_len == 0) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot sign with private key %s on "
					    "token %s: its curve is unknown",
					    key_id, tok->label);
			goto out;
		}
		out->sig_len = 2 * out->order_len;
		break;
	default:
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot sign with private key %s on token "
				    "%s: key type 0x%lx is neither RSA nor EC",
				    key_id, tok->label,
				    (unsigned long)out->type);
		goto out;
	}
	if (out->sig_len == 0 || out->sig_len > 1024) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot sign with private key %s on token "
				    "%s: it reports a size of %zu bytes", key_id,
				    tok->label, out->sig_len);
		goto out;
	}
	r = CUSTODY_OK;
	goto out;
fail:
	r = token_err_rv(err, CUSTODY_EFAIL, rv,
			 "cannot find private key %s on token %s", key_id,
			 tok->label);
out:
	if (active)
		tok->f->C_FindObjectsFinal(s);
	if (r != CUSTODY_OK)
		memset(out, 0, sizeof(*out));
	return r;
}

static const unsigned char *
digest_info_prefix(int nid, size_t *len)
{
	switch (nid) {
	case NID_sha256:
		*len = sizeof(di_sha256);
		return di_sha256;
	case NID_sha384:
		*len = sizeof(di_sha384);
		return di_sha384;
	case NID_sha512:
		*len = sizeof(di_sha512);
		return di_sha512;
	default:
		*len = 0;
		return NULL;
	}
}

/* PSS parameters of the digest: hash, MGF1 with the same hash, salt of
 * the digest's length (what RFC 7518 PS256... and TLS 1.3 expect). */
static int
pss_params(int nid, size_t md_len, CK_RSA_PKCS_PSS_PARAMS *p)
{
	switch (nid) {
	case NID_sha256:
		p->hashAlg = CKM_SHA256;
		p->mgf = CKG_MGF1_SHA256;
		break;
	case NID_sha384:
		p->hashAlg = CKM_SHA384;
		p->mgf = CKG_MGF1_SHA384;
		break;
	case NID_sha512:
		p->hashAlg = CKM_SHA512;
		p->mgf = CKG_MGF1_SHA512;
		break;
	default:
		return -1;
	}
	p->sLen = md_len;
	return 0;
}

/* Ends a signing operation left active on session s (its signature is
 * discarded). */
static void
end_sign_operation(custody_token *tok, CK_SESSION_HANDLE s, CK_BYTE *in, CK_ULONG in_len)
{
	unsigned char scratch[4096];
	CK_ULONG n = sizeof(scratch);

	tok->f->C_Sign(s, in, in_len, scratch, &n);
	OPENSSL_cleanse(scratch, sizeof(scratch));
}

int
token_sign_digest(custody_token *tok, CK_SESSION_HANDLE s,
		  const struct token_key *key, const char *key_id,
		  enum token_mech mech, int digest_nid,
		  const unsigned char *md, size_t md_len, unsigned char *sig,
		  size_t *sig_len, CK_RV *rv_out, custody_err *err)
{
	CK_RSA_PKCS_PSS_PARAMS pss;
	CK_MECHANISM m = {CKM_RSA_PKCS, NULL, 0};
	unsigned char in[19 + EVP_MAX_MD_SIZE];
	const unsigned char *prefix;
	size_t in_len = 0, plen = 0;
	CK_ULONG len = key->sig_len;
	CK_RV rv = CKR_OK;
	int r = CUSTODY_EFAIL;

	*sig_len = 0;
	if (md_len > EVP_MAX_MD_SIZE) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot sign with private key %s: a digest "
				    "of %zu bytes is too long", key_id, md_len);
		goto out;
	}
	switch (mech) {
	case TOKEN_MECH_RSA_PKCS:
		if ((prefix = digest_info_prefix(digest_nid, &plen)) == NULL ||
		    plen == 0 || prefix[plen - 1] != md_len)
			goto bad_digest;
		memcpy(in, prefix, plen);
		memcpy(in + plen, md, md_len);
		in_len = plen + md_len;
		break;
	case TOKEN_MECH_RSA_PSS:
		if (pss_params(digest_nid, md_len, &pss) != 0)
			goto bad_digest;
		m.mechanism = CKM_RSA_PKCS_PSS;
		m.pParameter = &pss;
		m.ulParameterLen = sizeof(pss);
		memcpy(in, md, md_len);
		in_len = md_len;
		break;
	case TOKEN_MECH_ECDSA:
		m.mechanism = CKM_ECDSA;
		in_len = md_len < key->order_len ? md_len : key->order_len;
		memcpy(in, md, in_len);
		break;
	}
	rv = tok->f->C_SignInit(s, &m, key->handle);
	if (rv == CKR_OPERATION_ACTIVE) {
		/* A signature that failed left its operation open on this
		 * pooled session (a token that did not end it, as PKCS#11
		 * says it must): finish it, discarded, and start ours once
		 * more, so that one fault does not spoil the session. */
		end_sign_operation(tok, s, in, in_len);
		rv = tok->f->C_SignInit(s, &m, key->handle);
	}
	if (rv == CKR_OK)
		rv = tok->f->C_Sign(s, in, in_len, sig, &len);
	if (rv == CKR_BUFFER_TOO_SMALL)
		end_sign_operation(tok, s, in, in_len);	/* still active */
	if (rv != CKR_OK) {
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot sign with private key %s on token %s",
				 key_id, tok->label);
		goto out;
	}
	*sig_len = len;
	r = CUSTODY_OK;
	goto out;
bad_digest:
	r = custody_err_set(err, CUSTODY_EUSAGE,
			    "cannot sign with private key %s: digest %s of %zu "
			    "bytes is not supported (SHA-256, SHA-384 or "
			    "SHA-512)", key_id,
			    OBJ_nid2sn(digest_nid) != NULL
				    ? OBJ_nid2sn(digest_nid) : "?", md_len);
out:
	if (rv_out != NULL)
		*rv_out = rv;
	return r;
}
