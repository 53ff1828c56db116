/*
 * token/x509.c — a certificate or a PKCS#10 request signed by a private
 * key of the token (custody/token_x509.h), with token/sign.c's signing in
 * the handle's own session: no libp11, no second session.
 *
 * A request has setters for its signature in OpenSSL 3.0
 * (X509_REQ_set1_signature_algo, X509_REQ_set0_signature).  A certificate
 * has none, and its signed part cannot even be encoded before the
 * signature algorithm inside it is set (an empty algorithm identifier is
 * "illegal zero content").  So a certificate is assembled as DER, every
 * field encoded by OpenSSL's own i2d functions (RFC 5280, 4.1):
 *
 *   TBSCertificate ::= SEQUENCE { [0] version, serialNumber, signature,
 *       issuer, validity, subject, subjectPublicKeyInfo, [3] extensions }
 *   Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
 *       signatureValue BIT STRING }
 *
 * with the same algorithm in `signature` and `signatureAlgorithm`, then
 * parsed with d2i_X509.  OpenSSL's re-encoding of the parsed certificate's
 * signed part must be the very bytes that were signed, and the result
 * must verify with the signer's public key, before it replaces the
 * caller's certificate.
 */
#include "config.h"

#include <limits.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <custody/cert.h>
#include <custody/token.h>
#include <custody/token_x509.h>

#include "token/internal.h"

/* TOKEN_SIG_ROOM of the largest key token_key_find accepts (1024 bytes). */
#define SIG_MAX (1024 + 16)

/* ------------------------------------------------------------ signing */

/* One signature in the making. */
struct token_signing {
	custody_token *tok;
	const char *key_id;
	const char *what;	/* "the certificate", ... for messages     */
	int digest_nid;
	EVP_PKEY *pub;		/* the signer's public key: the check      */
	struct token_key key;
	enum token_mech mech;
	X509_ALGOR *alg;	/* the signature algorithm                 */
	unsigned char sig[SIG_MAX];	/* as X.509 holds it (ECDSA: DER)  */
	size_t sig_len;
};

static void
signing_init(struct token_signing *s, custody_token *tok, const char *key_id,
	     int digest_nid, EVP_PKEY *pub, const char *what)
{
	memset(s, 0, sizeof(*s));
	s->tok = tok;
	s->key_id = key_id != NULL ? key_id : "";
	s->digest_nid = digest_nid;
	s->pub = pub;
	s->what = what;
}

static void
signing_end(struct token_signing *s)
{
	X509_ALGOR_free(s->alg);
	s->alg = NULL;
}

/* The arguments, the key in tok's session, and the signature algorithm
 * that follows from its type and the digest. */
static int
signing_begin(struct token_signing *s, custody_err *err)
{
	int pkey_nid, sig_nid = NID_undef, r;

	if (s->digest_nid != NID_sha256 && s->digest_nid != NID_sha384 &&
	    s->digest_nid != NID_sha512)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot sign %s with private key %s: digest "
				       "%s is not supported (SHA-256, SHA-384 or "
				       "SHA-512)", s->what, s->key_id,
				       OBJ_nid2sn(s->digest_nid) != NULL
					       ? OBJ_nid2sn(s->digest_nid) : "?");
	if (s->tok == NULL || s->pub == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot sign %s with private key %s: no "
				       "token or no public key to check the "
				       "signature with", s->what, s->key_id);
	if ((r = token_require_login(s->tok, "sign", err)) != CUSTODY_OK ||
	    (r = token_key_find(s->tok, s->tok->session, s->key_id, &s->key,
				err)) != CUSTODY_OK)
		return r;
	/* token_key_find accepts RSA and EC keys only. */
	if (s->key.type == CKK_RSA) {
		s->mech = TOKEN_MECH_RSA_PKCS;
		pkey_nid = NID_rsaEncryption;
	} else {
		s->mech = TOKEN_MECH_ECDSA;
		pkey_nid = NID_X9_62_id_ecPublicKey;
	}
	if (TOKEN_SIG_ROOM(&s->key) > sizeof(s->sig))
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot sign %s with private key %s on token "
				       "%s: its signatures of %zu bytes are too long",
				       s->what, s->key_id, s->tok->label,
				       s->key.sig_len);
	/* RFC 4055 / RFC 5758: NULL parameters for RSA, none for ECDSA. */
	if (OBJ_find_sigid_by_algs(&sig_nid, s->digest_nid, pkey_nid) != 1 ||
	    (s->alg = X509_ALGOR_new()) == NULL ||
	    X509_ALGOR_set0(s->alg, OBJ_nid2obj(sig_nid),
			    s->key.type == CKK_RSA ? V_ASN1_NULL : V_ASN1_UNDEF,
			    NULL) != 1)
		return custody_err_openssl(err, CUSTODY_EFAIL,
					   "cannot sign %s with private key %s: "
					   "no signature algorithm for it",
					   s->what, s->key_id);
	return CUSTODY_OK;
}

/* tbs hashed here, signed in the token, checked with the public key. */
static int
signing_sign(struct token_signing *s, const unsigned char *tbs, size_t tbs_len,
	     custody_err *err)
{
	const EVP_MD *md = EVP_get_digestbynid(s->digest_nid);
	unsigned char digest[EVP_MAX_MD_SIZE], raw[SIG_MAX];
	unsigned int md_len = 0;
	size_t raw_len = 0;
	EVP_MD_CTX *ctx = NULL;
	int r = CUSTODY_EFAIL;

	if (md == NULL || EVP_Digest(tbs, tbs_len, digest, &md_len, md, NULL) != 1) {
		r = custody_err_openssl(err, CUSTODY_EFAIL, "cannot hash %s to sign",
					s->what);
		goto out;
	}
	if ((r = token_sign_digest(s->tok, s->tok->session, &s->key, s->key_id,
				   s->mech, s->digest_nid, digest, md_len, raw,
				   &raw_len, NULL, err)) != CUSTODY_OK)
		goto out;
	if (s->mech == TOKEN_MECH_ECDSA) {
		s->sig_len = custody_ecdsa_raw_to_der(raw, raw_len, s->sig);
	} else if (raw_len <= sizeof(s->sig)) {
		memcpy(s->sig, raw, raw_len);
		s->sig_len = raw_len;
	}
	if (s->sig_len == 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot sign %s with private key %s on token "
				    "%s: the token returned a signature of %zu "
				    "bytes", s->what, s->key_id, s->tok->label,
				    raw_len);
		goto out;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(ctx, NULL, md, NULL, s->pub) != 1) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot check the signature of %s", s->what);
		goto out;
	}
	/* 0: a wrong signature; < 0: one that does not even parse for the
	 * public key's type.  Either way not the key expected. */
	if (EVP_DigestVerify(ctx, s->sig, s->sig_len, tbs, tbs_len) != 1) {
		ERR_clear_error();
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "the signature of %s made with private key %s "
				    "on token %s does not verify with the public "
				    "key expected", s->what, s->key_id,
				    s->tok->label);
		goto out;
	}
	r = CUSTODY_OK;
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

/* ---------------------------------------------------------------- DER */

#define PARTS_MAX 10

/* The DER elements of one constructed element's content, in order. */
struct der_parts {
	unsigned char *part[PARTS_MAX];	/* OPENSSL_malloc'ed                */
	int len[PARTS_MAX];
	int n;
	int failed;		/* an element could not be encoded        */
};

static void
parts_free(struct der_parts *d)
{
	int i;

	for (i = 0; i < d->n; i++)
		OPENSSL_free(d->part[i]);
	memset(d, 0, sizeof(*d));
}

/* Takes one element as an i2d function gives it (len, buf): the parts
 * own buf from now on. */
static void
parts_take(struct der_parts *d, int len, unsigned char *buf)
{
	if (len <= 0 || buf == NULL || d->n >= PARTS_MAX) {
		OPENSSL_free(buf);
		d->failed = 1;
		return;
	}
	d->part[d->n] = buf;
	d->len[d->n++] = len;
}

/* The element obj as fn (an i2d function) encodes it, taken into d. */
#define PARTS_I2D(d, fn, obj)                                   \
	do {                                                    \
		unsigned char *buf_ = NULL;                     \
		int len_ = fn((obj), &buf_);                    \
								\
		parts_take((d), len_, buf_);                    \
	} while (0)

/* The parts as the content of one constructed element (tag, xclass):
 * its DER, OPENSSL_malloc'ed, and its length; -1 when anything failed. */
static int
parts_wrap(const struct der_parts *d, int tag, int xclass, unsigned char **out)
{
	long content = 0;
	unsigned char *der, *p;
	int i, total;

	*out = NULL;
	if (d->failed)
		return -1;
	for (i = 0; i < d->n; i++) {
		content += d->len[i];
		if (content > INT_MAX / 2)
			return -1;
	}
	total = ASN1_object_size(1, (int)content, tag);
	if (total <= 0 || (der = OPENSSL_malloc((size_t)total)) == NULL)
		return -1;
	p = der;
	ASN1_put_object(&p, 1, (int)content, tag, xclass);
	for (i = 0; i < d->n; i++) {
		memcpy(p, d->part[i], (size_t)d->len[i]);
		p += d->len[i];
	}
	*out = der;
	return total;
}

/* The elements of sub as the content of one constructed element (tag,
 * xclass), taken into d; sub is emptied. */
static void
parts_take_wrapped(struct der_parts *d, int tag, int xclass,
		   struct der_parts *sub)
{
	unsigned char *der = NULL;
	int len = parts_wrap(sub, tag, xclass, &der);

	parts_free(sub);
	parts_take(d, len, der);
}

/* The signature as a BIT STRING with no unused bits, taken into d. */
static void
parts_take_signature(struct der_parts *d, const struct token_signing *s)
{
	int content = (int)s->sig_len + 1;
	int total = ASN1_object_size(0, content, V_ASN1_BIT_STRING);
	unsigned char *der = NULL, *p;

	if (total > 0 && (der = OPENSSL_malloc((size_t)total)) != NULL) {
		p = der;
		ASN1_put_object(&p, 0, content, V_ASN1_BIT_STRING,
				V_ASN1_UNIVERSAL);
		*p++ = 0;	/* unused bits */
		memcpy(p, s->sig, s->sig_len);
	}
	parts_take(d, der != NULL ? total : -1, der);
}

/* ------------------------------------------------------------ request */

int
custody_token_sign_req(custody_token *tok, const char *key_id, int digest_nid,
		       EVP_PKEY *pub, X509_REQ *req, custody_err *err)
{
	struct token_signing s;
	struct der_parts bits = {0};
	unsigned char *tbs = NULL;
	const unsigned char *p;
	ASN1_BIT_STRING *sig = NULL;
	int tbs_len, r = CUSTODY_EFAIL;

	signing_init(&s, tok, key_id, digest_nid, pub, "the certificate request");
	if (req == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot sign a certificate request: none given");
		goto out;
	}
	if ((r = signing_begin(&s, err)) != CUSTODY_OK)
		goto out;
	if ((tbs_len = i2d_re_X509_REQ_tbs(req, &tbs)) <= 0) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot encode the certificate request to "
					"sign");
		goto out;
	}
	if ((r = signing_sign(&s, tbs, (size_t)tbs_len, err)) != CUSTODY_OK)
		goto out;
	parts_take_signature(&bits, &s);
	if (!bits.failed) {
		p = bits.part[0];
		sig = d2i_ASN1_BIT_STRING(NULL, &p, bits.len[0]);
	}
	if (sig == NULL || X509_REQ_set1_signature_algo(req, s.alg) != 1) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot put the signature in the "
					"certificate request");
		goto out;
	}
	X509_REQ_set0_signature(req, sig);
	sig = NULL;
	if (X509_REQ_verify(req, pub) != 1) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"the signed certificate request does not "
					"verify with the public key expected");
		goto out;
	}
	r = CUSTODY_OK;
out:
	ASN1_BIT_STRING_free(sig);
	parts_free(&bits);
	OPENSSL_free(tbs);
	signing_end(&s);
	return r;
}

/* -------------------------------------------------------- certificate */

/* The DER TBSCertificate of x with the signature algorithm alg, taken
 * into cert as its first element. */
static int
cert_tbs(X509 *x, const X509_ALGOR *alg, struct der_parts *cert,
	 custody_err *err)
{
	struct der_parts d = {0}, sub = {0};
	const ASN1_BIT_STRING *issuer_uid = NULL, *subject_uid = NULL;
	const STACK_OF(X509_EXTENSION) *exts = X509_get0_extensions(x);
	long version = X509_get_version(x);
	ASN1_INTEGER *v = NULL;
	unsigned char *tbs = NULL;
	int len, r = CUSTODY_EFAIL;

	X509_get0_uids(x, &issuer_uid, &subject_uid);
	if (issuer_uid != NULL || subject_uid != NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot sign the certificate: it has unique "
				    "identifiers");
		goto out;
	}
	/* version: DEFAULT v1, so absent for v1. */
	if (version != X509_VERSION_1) {
		if ((v = ASN1_INTEGER_new()) == NULL ||
		    ASN1_INTEGER_set(v, version) != 1)
			sub.failed = 1;
		else
			PARTS_I2D(&sub, i2d_ASN1_INTEGER, v);
		parts_take_wrapped(&d, 0, V_ASN1_CONTEXT_SPECIFIC, &sub);
	}
	PARTS_I2D(&d, i2d_ASN1_INTEGER, X509_get0_serialNumber(x));
	PARTS_I2D(&d, i2d_X509_ALGOR, alg);
	PARTS_I2D(&d, i2d_X509_NAME, X509_get_issuer_name(x));
	PARTS_I2D(&sub, i2d_ASN1_TIME, X509_get0_notBefore(x));
	PARTS_I2D(&sub, i2d_ASN1_TIME, X509_get0_notAfter(x));
	parts_take_wrapped(&d, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &sub);
	PARTS_I2D(&d, i2d_X509_NAME, X509_get_subject_name(x));
	PARTS_I2D(&d, i2d_X509_PUBKEY, X509_get_X509_PUBKEY(x));
	/* extensions: absent when there are none (RFC 5280: SIZE (1..MAX)). */
	if (exts != NULL && sk_X509_EXTENSION_num(exts) > 0) {
		PARTS_I2D(&sub, i2d_X509_EXTENSIONS, exts);
		parts_take_wrapped(&d, 3, V_ASN1_CONTEXT_SPECIFIC, &sub);
	}
	if ((len = parts_wrap(&d, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &tbs)) <= 0) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot encode the certificate to sign");
		goto out;
	}
	parts_take(cert, len, tbs);
	r = cert->failed ? custody_err_set(err, CUSTODY_EFAIL,
					   "cannot encode the certificate to sign")
			 : CUSTODY_OK;
out:
	ASN1_INTEGER_free(v);
	parts_free(&sub);
	parts_free(&d);
	return r;
}

/* x, parsed from what was signed, encodes its fields as they were signed
 * (tbs): nothing in the certificate reads otherwise than the signature
 * covers. */
static int
encodes_as_signed(X509 *x, const unsigned char *tbs, int tbs_len,
		  custody_err *err)
{
	unsigned char *again = NULL;
	int r = CUSTODY_OK;

	if (i2d_re_X509_tbs(x, &again) != tbs_len ||
	    memcmp(again, tbs, (size_t)tbs_len) != 0) {
		ERR_clear_error();
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot make the signed certificate: its "
				    "fields encode otherwise than they were "
				    "signed");
	}
	OPENSSL_free(again);
	return r;
}

/* The signed certificate: cert (its tbs) with the algorithm and the
 * signature, parsed again. */
static int
cert_assemble(const struct token_signing *s, struct der_parts *cert, X509 **out,
	      custody_err *err)
{
	const unsigned char *tbs = cert->part[0], *p;
	unsigned char *der = NULL;
	int tbs_len = cert->len[0], len, r = CUSTODY_EFAIL;
	X509 *x = NULL;

	*out = NULL;
	PARTS_I2D(cert, i2d_X509_ALGOR, s->alg);
	parts_take_signature(cert, s);
	if ((len = parts_wrap(cert, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &der)) <= 0) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot encode the signed certificate");
		goto out;
	}
	p = der;
	if ((x = d2i_X509(NULL, &p, len)) == NULL || p != der + len) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot decode the signed certificate");
		goto out;
	}
	if ((r = encodes_as_signed(x, tbs, tbs_len, err)) != CUSTODY_OK)
		goto out;
	*out = x;
	x = NULL;
out:
	X509_free(x);
	OPENSSL_free(der);
	return r;
}

int
custody_token_sign_cert(custody_token *tok, const char *key_id, int digest_nid,
			EVP_PKEY *pub, X509 **cert, custody_err *err)
{
	struct token_signing s;
	struct der_parts whole = {0};	/* tbs, algorithm, signature */
	X509 *x = NULL;
	int r = CUSTODY_EFAIL;

	signing_init(&s, tok, key_id, digest_nid, pub, "the certificate");
	if (cert == NULL || *cert == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot sign a certificate: none given");
		goto out;
	}
	if ((r = signing_begin(&s, err)) != CUSTODY_OK ||
	    (r = cert_tbs(*cert, s.alg, &whole, err)) != CUSTODY_OK ||
	    (r = signing_sign(&s, whole.part[0], (size_t)whole.len[0], err)) !=
	    CUSTODY_OK ||
	    (r = cert_assemble(&s, &whole, &x, err)) != CUSTODY_OK)
		goto out;
	if (X509_verify(x, pub) != 1) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"the signed certificate does not verify "
					"with the public key expected");
		goto out;
	}
	X509_free(*cert);
	*cert = x;
	x = NULL;
	r = CUSTODY_OK;
out:
	X509_free(x);
	parts_free(&whole);
	signing_end(&s);
	return r;
}
