/*
 * signature.c — signatures with a key object, made in the token through
 * libcustody's signer (custody_signer_sign_pinned): RSA PKCS#1 v1.5,
 * RSA-PSS and ECDSA, with SHA-256, SHA-384 or SHA-512.
 *
 * digest_sign_init/update/final hash in software and sign the digest;
 * sign_init/sign take the digest itself (its length must be the digest's:
 * for RSA the digest must be set, as PKCS#1 v1.5 signs a DigestInfo that
 * names it; for ECDSA a 32, 48 or 64-byte input names its digest).
 *
 * PSS: the token signs with MGF1 of the message digest and a salt of the
 * digest's length (what TLS 1.3 requires).  A salt length of "digest"
 * (RSA_PSS_SALTLEN_DIGEST), the digest's length in bytes, or none set
 * signs so; "max" and "auto" (which mean the largest salt when signing),
 * any other length, or an MGF1 digest other than the message digest are
 * refused: never a signature other than the one asked for.
 *
 * What the key cannot do (PSS with an EC key, a digest of the wrong
 * length, a digest other than SHA-2 256/384/512, padding other than
 * PKCS#1 v1.5 and PSS) is an error, raised with one entry.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "providers/internal.h"

struct sig_ctx {
	struct prov_ctx *prov;
	struct prov_key *key;
	int rsa;		/* the RSA algorithm (else ECDSA)          */
	int pad;		/* RSA_PKCS1_PADDING or RSA_PKCS1_PSS_PADDING */
	int md_nid;		/* 0: not set                              */
	int mgf1_nid;		/* 0: the message digest                   */
	int saltlen;		/* RSA_PSS_SALTLEN_DIGEST or a length      */
	const EVP_MD *md;	/* for digest_sign: the provider's (prov_digest) */
	EVP_MD_CTX *mdctx;
};

static OSSL_FUNC_signature_newctx_fn sig_rsa_newctx;
static OSSL_FUNC_signature_newctx_fn sig_ec_newctx;
static OSSL_FUNC_signature_freectx_fn sig_freectx;
static OSSL_FUNC_signature_dupctx_fn sig_dupctx;
static OSSL_FUNC_signature_sign_init_fn sig_sign_init;
static OSSL_FUNC_signature_sign_fn sig_sign;
static OSSL_FUNC_signature_digest_sign_init_fn sig_digest_sign_init;
static OSSL_FUNC_signature_digest_sign_update_fn sig_digest_sign_update;
static OSSL_FUNC_signature_digest_sign_final_fn sig_digest_sign_final;
static OSSL_FUNC_signature_get_ctx_params_fn sig_get_ctx_params;
static OSSL_FUNC_signature_gettable_ctx_params_fn sig_rsa_gettable_ctx_params;
static OSSL_FUNC_signature_gettable_ctx_params_fn sig_ec_gettable_ctx_params;
static OSSL_FUNC_signature_set_ctx_params_fn sig_set_ctx_params;
static OSSL_FUNC_signature_settable_ctx_params_fn sig_rsa_settable_ctx_params;
static OSSL_FUNC_signature_settable_ctx_params_fn sig_ec_settable_ctx_params;

/* A request the key cannot do: one error entry. */
#define refuse(sc, func, ...) \
	prov_raise_msg((sc)->prov, (func), PROV_R_BAD_SIGNATURE_REQUEST, \
		       __VA_ARGS__)

static void *
newctx(void *provctx, int rsa)
{
	struct sig_ctx *sc = calloc(1, sizeof(*sc));

	if (sc == NULL)
		return NULL;
	sc->prov = provctx;
	sc->rsa = rsa;
	sc->pad = RSA_PKCS1_PADDING;
	sc->saltlen = RSA_PSS_SALTLEN_DIGEST;
	return sc;
}

static void *
sig_rsa_newctx(void *provctx, const char *propq)
{
	(void)propq;
	return newctx(provctx, 1);
}

static void *
sig_ec_newctx(void *provctx, const char *propq)
{
	(void)propq;
	return newctx(provctx, 0);
}

static void
sig_freectx(void *ctx)
{
	struct sig_ctx *sc = ctx;

	if (sc == NULL)
		return;
	prov_key_free(sc->key);
	EVP_MD_CTX_free(sc->mdctx);
	free(sc);
}

static void *
sig_dupctx(void *ctx)
{
	const struct sig_ctx *sc = ctx;
	struct sig_ctx *d = malloc(sizeof(*d));

	if (d == NULL)
		return NULL;
	*d = *sc;
	d->mdctx = NULL;
	if (d->key != NULL)
		prov_key_up(d->key);
	if (sc->mdctx != NULL &&
	    ((d->mdctx = EVP_MD_CTX_new()) == NULL ||
	     !EVP_MD_CTX_copy_ex(d->mdctx, sc->mdctx))) {
		sig_freectx(d);
		return NULL;
	}
	return d;
}

/* The SHA-2 digests the signer takes; 0 for another. */
static int
supported_nid(int nid)
{
	return nid == NID_sha256 || nid == NID_sha384 || nid == NID_sha512 ?
	       nid : 0;
}

/* The names OpenSSL and its programs give the three digests. */
static const struct {
	const char *name;
	int nid;
} digest_names[] = {
	{"SHA256", NID_sha256}, {"SHA2-256", NID_sha256}, {"SHA-256", NID_sha256},
	{"SHA384", NID_sha384}, {"SHA2-384", NID_sha384}, {"SHA-384", NID_sha384},
	{"SHA512", NID_sha512}, {"SHA2-512", NID_sha512}, {"SHA-512", NID_sha512},
};

static int
nid_of_name(const char *name)
{
	EVP_MD *md;
	size_t i;
	int nid;

	for (i = 0; i < sizeof(digest_names) / sizeof(digest_names[0]); i++)
		if (strcasecmp(name, digest_names[i].name) == 0)
			return digest_names[i].nid;
	/* Any other name (an OID, an alias): what OpenSSL knows it as. */
	md = EVP_MD_fetch(NULL, name, NULL);
	nid = md != NULL ? EVP_MD_get_type(md) : NID_undef;
	EVP_MD_free(md);
	return nid;
}

static int
set_digest(struct sig_ctx *sc, const char *name, const char *func)
{
	int nid = nid_of_name(name);

	if (supported_nid(nid) == 0) {
		refuse(sc, func, "cannot sign with digest %s: the token signs "
		       "SHA-256, SHA-384 or SHA-512 digests", name);
		return 0;
	}
	sc->md_nid = nid;
	return 1;
}

/* Padding mode as an int or as OpenSSL's names. */
static int
set_pad(struct sig_ctx *sc, const OSSL_PARAM *p)
{
	const char *s = NULL;
	int mode = 0;

	if (p->data_type == OSSL_PARAM_UTF8_STRING) {
		if (!OSSL_PARAM_get_utf8_string_ptr(p, &s))
			return 0;
		mode = strcmp(s, OSSL_PKEY_RSA_PAD_MODE_PKCSV15) == 0 ?
		       RSA_PKCS1_PADDING :
		       strcmp(s, OSSL_PKEY_RSA_PAD_MODE_PSS) == 0 ?
		       RSA_PKCS1_PSS_PADDING : -1;
	} else if (!OSSL_PARAM_get_int(p, &mode)) {
		return 0;
	}
	if (mode != RSA_PKCS1_PADDING && mode != RSA_PKCS1_PSS_PADDING) {
		if (s != NULL)
			refuse(sc, "set_ctx_params", "padding %s is not "
			       "supported: PKCS#1 v1.5 (pkcs1) or PSS (pss)", s);
		else
			refuse(sc, "set_ctx_params", "padding mode %d is not "
			       "supported: PKCS#1 v1.5 (1) or PSS (6)", mode);
		return 0;
	}
	sc->pad = mode;
	return 1;
}

/* A decimal length, the whole string. */
static int
parse_length(const char *s, int *out)
{
	char *end = NULL;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 1024)
		return 0;
	*out = (int)v;
	return 1;
}

/* Salt length as an int or as OpenSSL's names. */
static int
set_saltlen(struct sig_ctx *sc, const OSSL_PARAM *p)
{
	const char *s = NULL;
	int len = 0;

	if (p->data_type == OSSL_PARAM_UTF8_STRING) {
		if (!OSSL_PARAM_get_utf8_string_ptr(p, &s))
			return 0;
		if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST) == 0 ||
		    strcmp(s, "-1") == 0)
			len = RSA_PSS_SALTLEN_DIGEST;
		else if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_MAX) == 0)
			len = RSA_PSS_SALTLEN_MAX;
		else if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO) == 0)
			len = RSA_PSS_SALTLEN_AUTO;
		else if (!parse_length(s, &len)) {
			refuse(sc, "set_ctx_params", "PSS salt length \"%s\" "
			       "is not a number, digest, max or auto", s);
			return 0;
		}
	} else if (!OSSL_PARAM_get_int(p, &len)) {
		return 0;
	}
	if (len < RSA_PSS_SALTLEN_DIGEST) {
		refuse(sc, "set_ctx_params", "PSS salt length %s is not "
		       "supported: the token's salt is the digest's length "
		       "(digest)", len == RSA_PSS_SALTLEN_MAX ? "max" :
		       len == RSA_PSS_SALTLEN_AUTO ? "auto" : "(special)");
		return 0;
	}
	sc->saltlen = len;	/* a number: checked against the digest */
	return 1;
}

static int
sig_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
	struct sig_ctx *sc = ctx;
	const OSSL_PARAM *p;
	const char *name;

	if (params == NULL)
		return 1;
	p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST);
	if (p != NULL && (!OSSL_PARAM_get_utf8_string_ptr(p, &name) ||
			  !set_digest(sc, name, "set_ctx_params")))
		return 0;
	if (!sc->rsa)
		return 1;
	p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
	if (p != NULL && !set_pad(sc, p))
		return 0;
	p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN);
	if (p != NULL && !set_saltlen(sc, p))
		return 0;
	p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST);
	if (p != NULL) {
		int nid;

		if (!OSSL_PARAM_get_utf8_string_ptr(p, &name))
			return 0;
		if (supported_nid(nid = nid_of_name(name)) == 0) {
			refuse(sc, "set_ctx_params", "MGF1 digest %s is not "
			       "supported: MGF1 uses the message digest", name);
			return 0;
		}
		sc->mgf1_nid = nid;
	}
	return 1;
}

static const OSSL_PARAM *
sig_rsa_settable_ctx_params(void *ctx, void *provctx)
{
	static const OSSL_PARAM table[] = {
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
		OSSL_PARAM_END,
	};

	(void)ctx;
	(void)provctx;
	return table;
}

static const OSSL_PARAM *
sig_ec_settable_ctx_params(void *ctx, void *provctx)
{
	static const OSSL_PARAM table[] = {
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
		OSSL_PARAM_END,
	};

	(void)ctx;
	(void)provctx;
	return table;
}

/* ---- AlgorithmIdentifier (X509_sign, CMS, req -x509 ask for it) --------- */

/* The RSASSA-PSS parameters of the signature the token makes. */
static ASN1_STRING *
pss_params(int md_nid)
{
	RSA_PSS_PARAMS *pss = RSA_PSS_PARAMS_new();
	X509_ALGOR *mgf1_md = X509_ALGOR_new();
	const EVP_MD *md = EVP_get_digestbynid(md_nid);
	ASN1_STRING *out = NULL;

	if (pss == NULL || mgf1_md == NULL || md == NULL)
		goto out;
	if ((pss->hashAlgorithm = X509_ALGOR_new()) == NULL ||
	    (pss->maskGenAlgorithm = X509_ALGOR_new()) == NULL ||
	    (pss->saltLength = ASN1_INTEGER_new()) == NULL ||
	    !ASN1_INTEGER_set(pss->saltLength, EVP_MD_get_size(md)))
		goto out;
	X509_ALGOR_set_md(pss->hashAlgorithm, md);
	X509_ALGOR_set_md(mgf1_md, md);
	{
		ASN1_STRING *mgf1_param =
			ASN1_item_pack(mgf1_md, ASN1_ITEM_rptr(X509_ALGOR), NULL);

		if (mgf1_param == NULL)
			goto out;
		if (!X509_ALGOR_set0(pss->maskGenAlgorithm,
				     OBJ_nid2obj(NID_mgf1), V_ASN1_SEQUENCE,
				     mgf1_param)) {
			ASN1_STRING_free(mgf1_param);
			goto out;
		}
	}
	out = ASN1_item_pack(pss, ASN1_ITEM_rptr(RSA_PSS_PARAMS), NULL);
out:
	X509_ALGOR_free(mgf1_md);
	RSA_PSS_PARAMS_free(pss);
	return out;
}

/* DER of the AlgorithmIdentifier for the ctx's scheme; -1 when unknown. */
static int
algorithm_id(const struct sig_ctx *sc, unsigned char **der)
{
	X509_ALGOR *alg = X509_ALGOR_new();
	ASN1_STRING *params = NULL;
	int sig_nid = NID_undef, len = -1;

	*der = NULL;
	if (alg == NULL || sc->md_nid == 0)
		goto out;
	if (sc->rsa && sc->pad == RSA_PKCS1_PSS_PADDING) {
		if ((params = pss_params(sc->md_nid)) == NULL ||
		    !X509_ALGOR_set0(alg, OBJ_nid2obj(NID_rsassaPss),
				     V_ASN1_SEQUENCE, params))
			goto out;
		params = NULL;
	} else {
		if (!OBJ_find_sigid_by_algs(&sig_nid, sc->md_nid,
					    sc->rsa ? NID_rsaEncryption
						    : NID_X9_62_id_ecPublicKey) ||
		    !X509_ALGOR_set0(alg, OBJ_nid2obj(sig_nid),
				     sc->rsa ? V_ASN1_NULL : V_ASN1_UNDEF,
				     NULL))
			goto out;
	}
	len = i2d_X509_ALGOR(alg, der);
out:
	ASN1_STRING_free(params);
	X509_ALGOR_free(alg);
	return len;
}

static int
sig_get_ctx_params(void *ctx, OSSL_PARAM params[])
{
	struct sig_ctx *sc = ctx;
	unsigned char *der = NULL;
	OSSL_PARAM *p;
	int len, ok = 1;

	p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID);
	if (p != NULL) {
		len = algorithm_id(sc, &der);
		ok = len > 0 && OSSL_PARAM_set_octet_string(p, der, (size_t)len);
		OPENSSL_free(der);
		if (!ok)
			return 0;
	}
	p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST);
	if (p != NULL && sc->md_nid != 0 &&
	    !OSSL_PARAM_set_utf8_string(p, OBJ_nid2sn(sc->md_nid)))
		return 0;
	if (!sc->rsa)
		return 1;
	p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
	if (p != NULL && !(p->data_type == OSSL_PARAM_INTEGER ?
			   OSSL_PARAM_set_int(p, sc->pad) :
			   OSSL_PARAM_set_utf8_string(p,
				sc->pad == RSA_PKCS1_PSS_PADDING ?
				OSSL_PKEY_RSA_PAD_MODE_PSS :
				OSSL_PKEY_RSA_PAD_MODE_PKCSV15)))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN);
	if (p != NULL && !(p->data_type == OSSL_PARAM_INTEGER ?
			   OSSL_PARAM_set_int(p, sc->saltlen) :
			   OSSL_PARAM_set_utf8_string(p,
				OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST)))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST);
	if (p != NULL && sc->md_nid != 0 &&
	    !OSSL_PARAM_set_utf8_string(p, OBJ_nid2sn(sc->mgf1_nid != 0 ?
						      sc->mgf1_nid :
						      sc->md_nid)))
		return 0;
	return 1;
}

static const OSSL_PARAM *
sig_rsa_gettable_ctx_params(void *ctx, void *provctx)
{
	static const OSSL_PARAM table[] = {
		OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID,
					NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
		OSSL_PARAM_END,
	};

	(void)ctx;
	(void)provctx;
	return table;
}

static const OSSL_PARAM *
sig_ec_gettable_ctx_params(void *ctx, void *provctx)
{
	static const OSSL_PARAM table[] = {
		OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID,
					NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
		OSSL_PARAM_END,
	};

	(void)ctx;
	(void)provctx;
	return table;
}

/* ---- signing ---------------------------------------------------------------- */

static int
attach_key(struct sig_ctx *sc, void *provkey, const char *func)
{
	struct prov_key *key = provkey;

	if (key == NULL && sc->key != NULL)
		return 1;	/* a new operation with the same key */
	if (key == NULL) {
		refuse(sc, func, "cannot sign: no key");
		return 0;
	}
	if (key->is_rsa != sc->rsa) {
		refuse(sc, func, "cannot sign: %s", sc->rsa ?
		       "an RSA signature (PKCS#1 or PSS) needs an RSA key" :
		       "an ECDSA signature needs an EC key");
		return 0;
	}
	prov_key_up(key);
	prov_key_free(sc->key);
	sc->key = key;
	return 1;
}

static int
sig_sign_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
	struct sig_ctx *sc = ctx;

	if (!attach_key(sc, provkey, "sign_init"))
		return 0;
	return sig_set_ctx_params(sc, params);
}

/* The scheme of the ctx for a digest of md_len bytes, refused when the
 * token would make another signature than the one asked for. */
static int
check_request(struct sig_ctx *sc, size_t md_len, int *md_nid,
	      enum custody_sig_scheme *scheme)
{
	int nid = sc->md_nid;

	if (nid == 0 && !sc->rsa)
		nid = md_len == 32 ? NID_sha256 : md_len == 48 ? NID_sha384 :
		      md_len == 64 ? NID_sha512 : 0;
	if (nid == 0) {
		refuse(sc, "sign", "%s", sc->rsa ?
		       "cannot sign: no digest set (give one, e.g. -pkeyopt "
		       "digest:sha256): an RSA signature names its digest" :
		       "cannot sign: the input is not a SHA-256, SHA-384 or "
		       "SHA-512 digest");
		return 0;
	}
	if ((size_t)EVP_MD_get_size(EVP_get_digestbynid(nid)) != md_len) {
		refuse(sc, "sign", "cannot sign: the input is not a %s digest "
		       "(wrong length)", OBJ_nid2sn(nid));
		return 0;
	}
	*md_nid = nid;
	*scheme = !sc->rsa ? CUSTODY_SIG_ECDSA_DER :
		  sc->pad == RSA_PKCS1_PSS_PADDING ? CUSTODY_SIG_RSA_PSS :
		  CUSTODY_SIG_RSA_PKCS1;
	if (*scheme != CUSTODY_SIG_RSA_PSS)
		return 1;
	if (sc->mgf1_nid != 0 && sc->mgf1_nid != nid) {
		refuse(sc, "sign", "cannot sign: MGF1 with %s: the token's PSS "
		       "uses MGF1 of the message digest", OBJ_nid2sn(sc->mgf1_nid));
		return 0;
	}
	if (sc->saltlen != RSA_PSS_SALTLEN_DIGEST &&
	    (size_t)sc->saltlen != md_len) {
		refuse(sc, "sign", "cannot sign: a PSS salt of %d bytes: the "
		       "token's salt is the digest's length (%zu)", sc->saltlen,
		       md_len);
		return 0;
	}
	return 1;
}

/* Signs md into sig (room: sigsize). */
static int
sign_digest(struct sig_ctx *sc, unsigned char *sig, size_t *siglen,
	    size_t sigsize, const unsigned char *md, size_t md_len)
{
	enum custody_sig_scheme scheme = CUSTODY_SIG_AUTO;
	unsigned char *out = NULL;
	size_t out_len = 0;
	custody_err err;
	int nid = 0, ok = 0;

	custody_err_clear(&err);
	if (!check_request(sc, md_len, &nid, &scheme))
		return 0;
	if (prov_key_sign_digest(sc->key, scheme, nid, md, md_len, &out,
				 &out_len, &err) != CUSTODY_OK) {
		prov_raise(sc->prov, "sign", &err);
		return 0;
	}
	if (out_len > sigsize) {
		refuse(sc, "sign", "cannot sign: the output buffer is too small");
		goto out;
	}
	memcpy(sig, out, out_len);
	*siglen = out_len;
	ok = 1;
out:
	free(out);
	return ok;
}

static int
sig_sign(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize,
	 const unsigned char *tbs, size_t tbslen)
{
	struct sig_ctx *sc = ctx;

	if (sc->key == NULL)
		return 0;
	if (sig == NULL) {
		*siglen = (size_t)sc->key->max_sig;
		return 1;
	}
	return sign_digest(sc, sig, siglen, sigsize, tbs, tbslen);
}

static int
sig_digest_sign_init(void *ctx, const char *mdname, void *provkey,
		     const OSSL_PARAM params[])
{
	struct sig_ctx *sc = ctx;

	if (!attach_key(sc, provkey, "digest_sign_init"))
		return 0;
	if (!set_digest(sc, mdname != NULL && mdname[0] != '\0' ? mdname :
			"SHA256", "digest_sign_init") ||
	    !sig_set_ctx_params(sc, params))
		return 0;
	sc->md = prov_digest(sc->prov, sc->md_nid);
	if (sc->mdctx == NULL)
		sc->mdctx = EVP_MD_CTX_new();
	return sc->md != NULL && sc->mdctx != NULL &&
	       EVP_DigestInit_ex(sc->mdctx, sc->md, NULL) == 1;
}

static int
sig_digest_sign_update(void *ctx, const unsigned char *data, size_t datalen)
{
	struct sig_ctx *sc = ctx;

	return sc->mdctx != NULL &&
	       EVP_DigestUpdate(sc->mdctx, data, datalen) == 1;
}

static int
sig_digest_sign_final(void *ctx, unsigned char *sig, size_t *siglen,
		      size_t sigsize)
{
	struct sig_ctx *sc = ctx;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	int ok;

	if (sc->key == NULL || sc->mdctx == NULL)
		return 0;
	if (sig == NULL) {	/* the size only: the digest goes on */
		*siglen = (size_t)sc->key->max_sig;
		return 1;
	}
	if (EVP_DigestFinal_ex(sc->mdctx, md, &md_len) != 1)
		return 0;
	/* The digest that was computed is the one the signature names. */
	sc->md_nid = EVP_MD_get_type(sc->md);
	ok = sign_digest(sc, sig, siglen, sigsize, md, md_len);
	OPENSSL_cleanse(md, sizeof(md));
	return ok;
}

#define SIGNATURE_COMMON \
	{OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))sig_freectx}, \
	{OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))sig_dupctx}, \
	{OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))sig_sign_init}, \
	{OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))sig_sign}, \
	{OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, \
	 (void (*)(void))sig_digest_sign_init}, \
	{OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, \
	 (void (*)(void))sig_digest_sign_update}, \
	{OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, \
	 (void (*)(void))sig_digest_sign_final}, \
	{OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, \
	 (void (*)(void))sig_get_ctx_params}, \
	{OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, \
	 (void (*)(void))sig_set_ctx_params}

const OSSL_DISPATCH prov_rsa_signature_functions[] = {
	{OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))sig_rsa_newctx},
	SIGNATURE_COMMON,
	{OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS,
	 (void (*)(void))sig_rsa_gettable_ctx_params},
	{OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS,
	 (void (*)(void))sig_rsa_settable_ctx_params},
	{0, NULL},
};

const OSSL_DISPATCH prov_ec_signature_functions[] = {
	{OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))sig_ec_newctx},
	SIGNATURE_COMMON,
	{OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS,
	 (void (*)(void))sig_ec_gettable_ctx_params},
	{OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS,
	 (void (*)(void))sig_ec_settable_ctx_params},
	{0, NULL},
};
