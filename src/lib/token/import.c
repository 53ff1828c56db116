/*
 * token/import.c — putting a private key, its certificate and the chain
 * on the token under one key id.
 *
 * Every template is built, and every input checked, before the first
 * object is created; the objects this call creates are destroyed again
 * when a later one fails.  Template values are private copies: those that
 * hold private key material live in OpenSSL's secure heap when the
 * process has one (custody_harden_process), as do the BIGNUM copies they
 * are made from, and are cleansed when freed.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <custody/cert.h>
#include <custody/hexfmt.h>
#include <custody/log.h>
#include <custody/token.h>

#include "token/internal.h"


/* What one import call writes: templates first, objects later. */
struct plan {
	unsigned char id[20];
	char id_hex[CUSTODY_KEY_ID_HEX + 1];
	struct token_tmpl priv, pub, cert;
	struct token_tmpl *chain;	/* one per CA certificate to consider */
	const unsigned char **chain_der;
	size_t *chain_der_len;
	size_t n_chain;
	CK_OBJECT_HANDLE *created;	/* in creation order */
	size_t n_created;
};

/* DER of an X509_NAME / ASN1_INTEGER / ... into the template. */
#define TMPL_DER(t, type, i2d, obj)                                          \
	do {                                                                 \
		unsigned char *der_ = NULL;                                  \
		int len_ = i2d((obj), &der_);                                \
		if (len_ <= 0)                                               \
			(t)->broken = "cannot encode a value";               \
		else                                                         \
			token_tmpl_add((t), (type), der_, (size_t)len_);     \
		OPENSSL_free(der_);                                          \
	} while (0)

/* ------------------------------------------------------ key templates */

static void
key_common(custody_token *tok, struct token_tmpl *priv, struct token_tmpl *pub,
	   CK_KEY_TYPE kt, const struct plan *p, const char *label, X509 *cert,
	   int replicable)
{
	token_tmpl_signing_private(tok, priv, kt, p->id, sizeof(p->id), label,
				   replicable);
	TMPL_DER(priv, CKA_SUBJECT, i2d_X509_NAME, X509_get_subject_name(cert));
	token_tmpl_signing_public(pub, kt, p->id, sizeof(p->id), label);
	TMPL_DER(pub, CKA_SUBJECT, i2d_X509_NAME, X509_get_subject_name(cert));
}

static int
rsa_templates(EVP_PKEY *key, struct token_tmpl *priv, struct token_tmpl *pub,
	      custody_err *err)
{
	static const struct {
		const char *param;
		CK_ATTRIBUTE_TYPE type;
		int secret;
	} parts[] = {
		{OSSL_PKEY_PARAM_RSA_N, CKA_MODULUS, 0},
		{OSSL_PKEY_PARAM_RSA_E, CKA_PUBLIC_EXPONENT, 0},
		{OSSL_PKEY_PARAM_RSA_D, CKA_PRIVATE_EXPONENT, 1},
		{OSSL_PKEY_PARAM_RSA_FACTOR1, CKA_PRIME_1, 1},
		{OSSL_PKEY_PARAM_RSA_FACTOR2, CKA_PRIME_2, 1},
		{OSSL_PKEY_PARAM_RSA_EXPONENT1, CKA_EXPONENT_1, 1},
		{OSSL_PKEY_PARAM_RSA_EXPONENT2, CKA_EXPONENT_2, 1},
		{OSSL_PKEY_PARAM_RSA_COEFFICIENT1, CKA_COEFFICIENT, 1},
	};
	BIGNUM *bn = NULL;
	size_t i;
	int r = CUSTODY_EFAIL;

	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_FACTOR3, &bn) == 1) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot import the private key: multi-prime "
				    "RSA keys are not supported");
		goto out;
	}
	for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		/* A BIGNUM given is filled, not replaced: a secret one is
		 * made in the secure heap. */
		if (parts[i].secret && (bn = BN_secure_new()) == NULL) {
			r = custody_err_openssl(err, CUSTODY_EFAIL,
						"cannot import the private key");
			goto out;
		}
		if (EVP_PKEY_get_bn_param(key, parts[i].param, &bn) != 1) {
			r = custody_err_openssl(err, CUSTODY_EFAIL,
						"cannot import the private key: "
						"cannot read its %s",
						parts[i].param);
			goto out;
		}
		token_tmpl_bn(priv, parts[i].type, bn, parts[i].secret);
		if (!parts[i].secret)
			token_tmpl_bn(pub, parts[i].type, bn, 0);
		BN_clear_free(bn);
		bn = NULL;
	}
	r = CUSTODY_OK;
out:
	BN_clear_free(bn);
	ERR_clear_error();
	return r;
}

/* The uncompressed point (04 || X || Y) of an EC key, whatever form the
 * key keeps it in. */
static int
ec_point(EVP_PKEY *key, int nid, size_t fs, unsigned char *out,
	 custody_err *err)
{
	unsigned char enc[1 + 2 * 66];
	size_t len = 0;
	EC_GROUP *group = NULL;
	EC_POINT *pt = NULL;
	int r = CUSTODY_EFAIL;

	if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, enc,
					    sizeof(enc), &len) != 1 ||
	    (group = EC_GROUP_new_by_curve_name(nid)) == NULL ||
	    (pt = EC_POINT_new(group)) == NULL ||
	    EC_POINT_oct2point(group, pt, enc, len, NULL) != 1 ||
	    EC_POINT_point2oct(group, pt, POINT_CONVERSION_UNCOMPRESSED, out,
			       1 + 2 * fs, NULL) != 1 + 2 * fs) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot import the private key: cannot "
					"read its public point");
		goto out;
	}
	r = CUSTODY_OK;
out:
	EC_POINT_free(pt);
	EC_GROUP_free(group);
	return r;
}

static int
ec_templates(EVP_PKEY *key, struct token_tmpl *priv, struct token_tmpl *pub,
	     custody_err *err)
{
	char group[64] = "";
	unsigned char point[1 + 2 * 66], *scalar = NULL;
	ASN1_OCTET_STRING *os = NULL;
	BIGNUM *bn = NULL;
	size_t fs = 0;
	int nid = NID_undef, r = CUSTODY_EFAIL;

	if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME,
					   group, sizeof(group), NULL) == 1) {
		nid = OBJ_sn2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
	}
	switch (nid) {
	case NID_X9_62_prime256v1:
		fs = 32;
		break;
	case NID_secp384r1:
		fs = 48;
		break;
	case NID_secp521r1:
		fs = 66;
		break;
	default:
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot import the private key: EC curve "
				    "%s is not supported (P-256, P-384, P-521 "
				    "are)", group[0] != '\0' ? group : "(unnamed)");
		goto out;
	}
	if ((r = ec_point(key, nid, fs, point, err)) != CUSTODY_OK)
		goto out;
	if ((bn = BN_secure_new()) == NULL ||
	    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &bn) != 1 ||
	    (scalar = token_secret_alloc(fs)) == NULL ||
	    BN_bn2binpad(bn, scalar, (int)fs) != (int)fs) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot import the private key: cannot "
					"read its private value");
		goto out;
	}
	TMPL_DER(priv, CKA_EC_PARAMS, i2d_ASN1_OBJECT, OBJ_nid2obj(nid));
	token_tmpl_add_secret(priv, CKA_VALUE, scalar, fs);
	TMPL_DER(pub, CKA_EC_PARAMS, i2d_ASN1_OBJECT, OBJ_nid2obj(nid));
	if ((os = ASN1_OCTET_STRING_new()) == NULL ||
	    ASN1_OCTET_STRING_set(os, point, (int)(1 + 2 * fs)) != 1) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot import the private key");
		goto out;
	}
	TMPL_DER(pub, CKA_EC_POINT, i2d_ASN1_OCTET_STRING, os);
	r = CUSTODY_OK;
out:
	ASN1_OCTET_STRING_free(os);
	BN_clear_free(bn);
	OPENSSL_secure_clear_free(scalar, fs);
	return r;
}

static int
key_templates(custody_token *tok, EVP_PKEY *key, X509 *cert,
	      const char *label, int replicable, struct plan *p,
	      custody_err *err)
{
	char alg[32];
	int r = CUSTODY_EFAIL;

	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_RSA:
		key_common(tok, &p->priv, &p->pub, CKK_RSA, p, label, cert,
			   replicable);
		r = rsa_templates(key, &p->priv, &p->pub, err);
		break;
	case EVP_PKEY_EC:
		key_common(tok, &p->priv, &p->pub, CKK_EC, p, label, cert,
			   replicable);
		r = ec_templates(key, &p->priv, &p->pub, err);
		break;
	default:
		custody_pkey_algorithm(key, alg, sizeof(alg));
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot import the private key: %s keys are "
				    "not supported (RSA and EC P-256, P-384, "
				    "P-521 are)", alg);
		break;
	}
	return r;
}

static void
cert_template(struct token_tmpl *t, X509 *x, const unsigned char *id,
	      const char *label)
{
	token_tmpl_ulong(t, CKA_CLASS, CKO_CERTIFICATE);
	token_tmpl_ulong(t, CKA_CERTIFICATE_TYPE, CKC_X_509);
	token_tmpl_bool(t, CKA_TOKEN, 1);
	token_tmpl_bool(t, CKA_PRIVATE, 0);
	TMPL_DER(t, CKA_VALUE, i2d_X509, x);
	TMPL_DER(t, CKA_SUBJECT, i2d_X509_NAME, X509_get_subject_name(x));
	TMPL_DER(t, CKA_ISSUER, i2d_X509_NAME, X509_get_issuer_name(x));
	TMPL_DER(t, CKA_SERIAL_NUMBER, i2d_ASN1_INTEGER,
		 X509_get0_serialNumber(x));
	token_tmpl_add(t, CKA_ID, id, 20);
	token_tmpl_add(t, CKA_LABEL, label, strlen(label));
}

/* Templates of the CA certificates (each under its own key id, labelled
 * with its own CN); the leaf itself, if the chain repeats it, is left out. */
static int
chain_templates(STACK_OF(X509) *chain, X509 *cert, struct plan *p,
		custody_err *err)
{
	int n = chain != NULL ? sk_X509_num(chain) : 0, i;
	unsigned char id[20];
	char hex[CUSTODY_KEY_ID_HEX + 1], *cn = NULL;
	int r = CUSTODY_OK;

	if (n == 0)
		return r;
	if ((p->chain = calloc((size_t)n, sizeof(*p->chain))) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot import the chain: out of memory");
	for (i = 0; i < n; i++) {
		X509 *x = sk_X509_value(chain, i);

		if (X509_cmp(x, cert) == 0)
			continue;
		if ((r = custody_cert_key_id(x, id, err)) != CUSTODY_OK)
			return r;
		custody_hex_encode(id, sizeof(id), hex, 0);
		cn = custody_cert_subject_cn(x);
		cert_template(&p->chain[p->n_chain], x, id,
			      cn != NULL ? cn : hex);
		free(cn);
		cn = NULL;
		if (p->chain[p->n_chain].broken != NULL) {
			p->n_chain++;
			return custody_err_set(err, CUSTODY_EFAIL,
					       "cannot import the chain: out of "
					       "memory");
		}
		p->n_chain++;
	}
	return r;
}

static void
plan_free(struct plan *p)
{
	size_t i;

	token_tmpl_free(&p->priv);
	token_tmpl_free(&p->pub);
	token_tmpl_free(&p->cert);
	for (i = 0; i < p->n_chain; i++)
		token_tmpl_free(&p->chain[i]);
	free(p->chain);
	free(p->created);
	memset(p, 0, sizeof(*p));
}

/* ------------------------------------------------------ token writes */

/* The first object matching class and one more attribute; 0 when none. */
static int
find_by(custody_token *tok, CK_OBJECT_CLASS cls, const CK_ATTRIBUTE *a,
	CK_OBJECT_HANDLE *found, custody_err *err)
{
	CK_ATTRIBUTE t[2] = {{CKA_CLASS, &cls, sizeof(cls)}, *a};
	CK_OBJECT_HANDLE *h = NULL;
	size_t n = 0;
	int r;

	*found = CK_INVALID_HANDLE;
	r = token_find(tok, t, 2, &h, &n, err);
	if (r == CUSTODY_OK && n > 0)
		*found = h[0];
	free(h);
	return r;
}

static int
create(custody_token *tok, struct plan *p, struct token_tmpl *t, const char *what,
       custody_err *err)
{
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_RV rv;

	rv = tok->f->C_CreateObject(tok->session, t->a, t->n, &h);
	if (rv != CKR_OK) {
		token_err_rv(err, CUSTODY_EFAIL, rv,
			     "cannot create the %s on token %s", what,
			     tok->label);
		/* Tokens that take no private key from outside answer with
		 * one of these (only trying tells). */
		if (t == &p->priv &&
		    (rv == CKR_TEMPLATE_INCONSISTENT ||
		     rv == CKR_ATTRIBUTE_VALUE_INVALID ||
		     rv == CKR_ATTRIBUTE_READ_ONLY ||
		     rv == CKR_FUNCTION_NOT_SUPPORTED ||
		     rv == CKR_KEY_TYPE_INCONSISTENT))
			custody_err_hint(err, "the token may not accept private "
					 "keys made elsewhere: custody request "
					 "generates the key inside it");
		return CUSTODY_EFAIL;
	}
	p->created[p->n_created++] = h;
	custody_debug("created the %s with key id %s on token %s", what,
		      p->id_hex, tok->label);
	return CUSTODY_OK;
}

/* All or nothing: what this call created goes again, newest first. */
static void
roll_back(custody_token *tok, struct plan *p)
{
	while (p->n_created > 0)
		token_destroy_object(tok, p->created[--p->n_created],
				     "object this import created");
}

/* The key was there already: say so when it will not replicate. */
static void
check_existing_key(custody_token *tok, const struct plan *p,
		   CK_OBJECT_HANDLE h, int replicable)
{
	unsigned char *v = NULL;
	size_t len = 0;

	if (replicable &&
	    token_get_attr(tok, h, CKA_EXTRACTABLE, &v, &len, NULL) ==
		    CUSTODY_OK &&
	    len == sizeof(CK_BBOOL) && !*(CK_BBOOL *)v)
		custody_warn("the private key with key id %s is already on "
			     "token %s and is not extractable: it stays so, "
			     "and cannot be replicated", p->id_hex, tok->label);
	free(v);
}

static int
write_key(custody_token *tok, struct plan *p, int replicable,
	  custody_token_import_result *res, custody_err *err)
{
	const CK_ATTRIBUTE *id = token_tmpl_get(&p->priv, CKA_ID);
	CK_OBJECT_HANDLE h;
	int r;

	if ((r = find_by(tok, CKO_PRIVATE_KEY, id, &h, err)) != CUSTODY_OK)
		return r;
	if (h == CK_INVALID_HANDLE) {
		if ((r = create(tok, p, &p->priv, "private key", err)) !=
		    CUSTODY_OK ||
		    (r = token_check_attrs(tok, p->created[p->n_created - 1],
					   "private key", &p->priv, 0, err)) !=
		    CUSTODY_OK)
			return r;
		res->created_key = 1;
	} else {
		check_existing_key(tok, p, h, replicable);
	}
	if ((r = find_by(tok, CKO_PUBLIC_KEY, id, &h, err)) != CUSTODY_OK)
		return r;
	if (h == CK_INVALID_HANDLE)
		r = create(tok, p, &p->pub, "public key", err);
	return r;
}

/* Creates the certificate of t unless the same DER is there; *created. */
/* The template's CKA_ID, lower-case hex ("" without one). */
static void
tmpl_id_hex(const struct token_tmpl *t, char hex[CUSTODY_KEY_ID_HEX + 1])
{
	CK_ULONG i;

	hex[0] = '\0';
	for (i = 0; i < t->n; i++)
		if (t->a[i].type == CKA_ID && t->a[i].ulValueLen * 2 <=
		    CUSTODY_KEY_ID_HEX)
			custody_hex_encode(t->a[i].pValue, t->a[i].ulValueLen,
					   hex, 0);
}

/* The certificate object of t, found or made (its handle in *obj). */
static int
write_cert(custody_token *tok, struct plan *p, struct token_tmpl *t,
	   const char *what, int *created, CK_OBJECT_HANDLE *obj,
	   custody_err *err)
{
	int r;

	*created = 0;
	if ((r = find_by(tok, CKO_CERTIFICATE, token_tmpl_get(t, CKA_VALUE), obj,
			 err)) != CUSTODY_OK ||
	    *obj != CK_INVALID_HANDLE)
		return r;
	if ((r = create(tok, p, t, what, err)) == CUSTODY_OK) {
		*created = 1;
		*obj = p->created[p->n_created - 1];
	}
	return r;
}

static int
write_objects(custody_token *tok, struct plan *p, int have_key,
	      int replicable, custody_token_import_result *res,
	      custody_err *err)
{
	CK_OBJECT_HANDLE h;
	size_t i;
	int created, r;

	if (have_key) {
		if ((r = write_key(tok, p, replicable, res, err)) != CUSTODY_OK)
			return r;
	} else {
		if ((r = token_find_by_id(tok, CKO_PRIVATE_KEY, p->id,
					  sizeof(p->id), &h, err)) != CUSTODY_OK)
			return r;
		if (h == CK_INVALID_HANDLE) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "no private key with key id %s on "
					    "token %s", p->id_hex, tok->label);
			custody_err_hint(err, "import the certificate together "
					 "with its private key (PKCS#12 or "
					 "PEM)");
			return r;
		}
	}
	if ((r = write_cert(tok, p, &p->cert, "certificate", &created,
			    &tok->last_cert, err)) != CUSTODY_OK)
		return r;
	res->created_cert = created;
	for (i = 0; i < p->n_chain; i++) {
		if ((r = write_cert(tok, p, &p->chain[i], "CA certificate",
				    &created, &h, err)) != CUSTODY_OK)
			return r;
		if (created && res->created_chain < CUSTODY_TOKEN_CHAIN_MAX)
			tmpl_id_hex(&p->chain[i],
				    res->chain_key_ids[res->created_chain]);
		res->created_chain += created;
	}
	return CUSTODY_OK;
}

int
custody_token_import(custody_token *tok, EVP_PKEY *key, X509 *cert,
		     STACK_OF(X509) *chain, const char *label,
		     int replicable, custody_token_import_result *res,
		     custody_err *err)
{
	struct plan p;
	custody_token_import_result result;
	char *cn = NULL;
	int r = CUSTODY_EFAIL;

	memset(&p, 0, sizeof(p));
	memset(&result, 0, sizeof(result));
	if (res != NULL)
		memset(res, 0, sizeof(*res));
	if (cert == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot import: no certificate given");
		goto out;
	}
	if ((r = custody_cert_key_id(cert, p.id, err)) != CUSTODY_OK)
		goto out;
	custody_hex_encode(p.id, sizeof(p.id), p.id_hex, 0);
	memcpy(result.key_id, p.id_hex, sizeof(result.key_id));
	if (label == NULL || label[0] == '\0')
		label = (cn = custody_cert_subject_cn(cert)) != NULL ? cn : p.id_hex;
	if (key != NULL && X509_check_private_key(cert, key) != 1) {
		ERR_clear_error();
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot import: the private key does not "
				    "match the certificate");
		goto out;
	}
	if ((r = token_require_login(tok, "import", err)) != CUSTODY_OK ||
	    (key != NULL && replicable &&
	     (r = custody_token_require_cluster(tok, "import replicable keys",
						err)) != CUSTODY_OK))
		goto out;
	if (key != NULL &&
	    ((r = custody_token_require_key(tok, EVP_PKEY_get_base_id(key),
					    EVP_PKEY_get_bits(key), "import",
					    err)) != CUSTODY_OK ||
	     (r = key_templates(tok, key, cert, label, replicable, &p, err)) !=
	     CUSTODY_OK))
		goto out;
	cert_template(&p.cert, cert, p.id, label);
	if ((r = chain_templates(chain, cert, &p, err)) != CUSTODY_OK)
		goto out;
	if ((r = token_tmpl_check(&p.priv, tok, "private key", err)) !=
	    CUSTODY_OK ||
	    (r = token_tmpl_check(&p.pub, tok, "public key", err)) !=
	    CUSTODY_OK ||
	    (r = token_tmpl_check(&p.cert, tok, "certificate", err)) !=
	    CUSTODY_OK)
		goto out;
	if ((p.created = calloc(3 + p.n_chain, sizeof(*p.created))) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot import: out of memory");
		goto out;
	}
	if (key != NULL && replicable &&
	    (r = token_tmpl_trusted_wrap(tok, &p.priv, NULL, err)) != CUSTODY_OK)
		goto out;
	r = write_objects(tok, &p, key != NULL, replicable, &result, err);
	if (r != CUSTODY_OK) {
		roll_back(tok, &p);
		goto out;
	}
	if (res != NULL)
		*res = result;
	custody_debug("import of key id %s on token %s: %zu objects created",
		      p.id_hex, tok->label, p.n_created);
	r = CUSTODY_OK;
out:
	free(cn);
	plan_free(&p);
	return r;
}
