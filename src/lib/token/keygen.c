/*
 * token/keygen.c — key pairs generated inside the token.
 *
 * The pair is generated under a temporary, random CKA_ID; the public key
 * is read back, its key id computed (cert.h) and written as CKA_ID on both
 * objects.  When anything fails after C_GenerateKeyPair, both objects are
 * destroyed again, so a failed generation leaves the token as it was.
 * Every attribute of both templates is set explicitly.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <custody/cert.h>
#include <custody/hexfmt.h>
#include <custody/log.h>
#include <custody/token.h>

#include "token/internal.h"

#define TEMP_ID_PREFIX "custody-keygen:"
#define TEMP_ID_RANDOM 16

/* --------------------------------------------------------------- label */

int
custody_token_label_used(custody_token *tok, const char *label, int *used,
			 custody_err *err)
{
	CK_ATTRIBUTE t[] = {{CKA_LABEL, (void *)label, 0}};
	CK_OBJECT_HANDLE *h = NULL;
	size_t n = 0;
	int r;

	*used = 0;
	if (label == NULL || label[0] == '\0')
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot look for a label: it is empty");
	if ((r = token_require_login(tok, "look for labels", err)) !=
	    CUSTODY_OK)
		return r;
	t[0].ulValueLen = strlen(label);
	r = token_find(tok, t, 1, &h, &n, err);
	*used = n > 0;
	free(h);
	return r;
}

/* ----------------------------------------------------------- templates */

/* What one generation holds: both templates and the mechanism. */
struct keygen {
	unsigned char temp_id[sizeof(TEMP_ID_PREFIX) - 1 + TEMP_ID_RANDOM];
	struct token_tmpl priv, pub;
	CK_MECHANISM mech;
};

/* DER (from an i2d call, len its result) into the public template, and
 * the private one when both; der is freed.  0 when the encoding failed. */
static int
add_der(struct keygen *g, CK_ATTRIBUTE_TYPE type, unsigned char *der,
	int len, int both)
{
	if (len <= 0 || der == NULL) {
		OPENSSL_free(der);
		return 0;
	}
	token_tmpl_add(&g->pub, type, der, (size_t)len);
	if (both)
		token_tmpl_add(&g->priv, type, der, (size_t)len);
	OPENSSL_free(der);
	return 1;
}

static int
build_templates(custody_token *tok, struct keygen *g,
		const custody_keyspec *spec, const char *label,
		X509_NAME *subject, int replicable, custody_err *err)
{
	static const unsigned char f4[] = {0x01, 0x00, 0x01};	/* 65537 */
	struct token_tmpl *pr = &g->priv, *pu = &g->pub;
	CK_KEY_TYPE kt = spec->type == EVP_PKEY_RSA ? CKK_RSA : CKK_EC;
	unsigned char *der = NULL;
	int len, r;

	token_tmpl_init(pr);
	token_tmpl_init(pu);
	memcpy(g->temp_id, TEMP_ID_PREFIX, sizeof(TEMP_ID_PREFIX) - 1);
	if (RAND_bytes(g->temp_id + sizeof(TEMP_ID_PREFIX) - 1,
		       TEMP_ID_RANDOM) != 1)
		return custody_err_openssl(err, CUSTODY_EFAIL,
					   "cannot generate a key pair: no "
					   "random bytes for a temporary id");

	token_tmpl_signing_private(tok, pr, kt, g->temp_id, sizeof(g->temp_id),
				   label, replicable);
	token_tmpl_signing_public(pu, kt, g->temp_id, sizeof(g->temp_id), label);

	if (subject != NULL) {
		len = i2d_X509_NAME(subject, &der);
		if (!add_der(g, CKA_SUBJECT, der, len, 1))
			return custody_err_openssl(err, CUSTODY_EFAIL,
						   "cannot generate a key "
						   "pair: cannot encode the "
						   "subject");
		der = NULL;
	}
	if (spec->type == EVP_PKEY_RSA) {
		g->mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		token_tmpl_ulong(pu, CKA_MODULUS_BITS, (CK_ULONG)spec->bits);
		token_tmpl_add(pu, CKA_PUBLIC_EXPONENT, f4, sizeof(f4));
	} else {
		g->mech.mechanism = CKM_EC_KEY_PAIR_GEN;
		len = i2d_ASN1_OBJECT(OBJ_nid2obj(spec->curve_nid), &der);
		if (!add_der(g, CKA_EC_PARAMS, der, len, 0))
			return custody_err_openssl(err, CUSTODY_EFAIL,
						   "cannot generate a key "
						   "pair: cannot encode the "
						   "curve");
	}
	if ((r = token_tmpl_check(pr, tok, "private key", err)) != CUSTODY_OK ||
	    (r = token_tmpl_check(pu, tok, "public key", err)) != CUSTODY_OK)
		return r;
	return CUSTODY_OK;
}

static void
keygen_clear(struct keygen *g)
{
	token_tmpl_free(&g->priv);
	token_tmpl_free(&g->pub);
	memset(g, 0, sizeof(*g));
}

/* ------------------------------------------------------ the public key */

static int
unreadable(custody_err *err)
{
	return custody_err_openssl(err, CUSTODY_EFAIL,
				   "cannot read the generated public key");
}

static int
rsa_public(custody_token *tok, CK_OBJECT_HANDLE pub, OSSL_PARAM_BLD *bld,
	   BIGNUM **n, BIGNUM **e, custody_err *err)
{
	unsigned char *mod = NULL, *exp = NULL;
	size_t mod_len = 0, exp_len = 0;
	int r;

	if ((r = token_get_attr(tok, pub, CKA_MODULUS, &mod, &mod_len, err)) !=
	    CUSTODY_OK ||
	    (r = token_get_attr(tok, pub, CKA_PUBLIC_EXPONENT, &exp, &exp_len,
				err)) != CUSTODY_OK)
		goto out;
	if ((*n = BN_bin2bn(mod, (int)mod_len, NULL)) == NULL ||
	    (*e = BN_bin2bn(exp, (int)exp_len, NULL)) == NULL ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, *n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, *e) != 1)
		r = unreadable(err);
out:
	free(mod);
	free(exp);
	return r;
}

/* CKA_EC_POINT is a DER OCTET STRING holding the point (PKCS#11 v2.40);
 * a few tokens give the bare point: both are accepted. */
static int
ec_public(custody_token *tok, CK_OBJECT_HANDLE pub, int nid,
	  OSSL_PARAM_BLD *bld, unsigned char **point, custody_err *err)
{
	unsigned char *raw = NULL;
	const unsigned char *p;
	size_t raw_len = 0;
	ASN1_OCTET_STRING *os = NULL;
	int r;

	if ((r = token_get_attr(tok, pub, CKA_EC_POINT, &raw, &raw_len, err)) !=
	    CUSTODY_OK)
		goto out;
	p = raw;
	os = d2i_ASN1_OCTET_STRING(NULL, &p, (long)raw_len);
	if (os != NULL && p == raw + raw_len) {
		*point = OPENSSL_memdup(ASN1_STRING_get0_data(os),
					(size_t)ASN1_STRING_length(os));
		raw_len = (size_t)ASN1_STRING_length(os);
	} else {
		*point = OPENSSL_memdup(raw, raw_len);
	}
	ERR_clear_error();
	if (*point == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
					    OBJ_nid2sn(nid), 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
					     *point, raw_len) != 1)
		r = unreadable(err);
out:
	ASN1_OCTET_STRING_free(os);
	free(raw);
	return r;
}

int
token_read_public(custody_token *tok, CK_OBJECT_HANDLE pub,
		  const custody_keyspec *spec, EVP_PKEY **out,
		  custody_err *err)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	BIGNUM *n = NULL, *e = NULL;
	unsigned char *point = NULL;
	int r = CUSTODY_EFAIL;

	*out = NULL;
	if (bld == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read the generated public key: out "
				    "of memory");
		goto out;
	}
	if (spec->type == EVP_PKEY_RSA)
		r = rsa_public(tok, pub, bld, &n, &e, err);
	else
		r = ec_public(tok, pub, spec->curve_nid, bld, &point, err);
	if (r != CUSTODY_OK)
		goto out;
	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, spec->type == EVP_PKEY_RSA
							  ? "RSA" : "EC",
					      NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1)
		r = unreadable(err);
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	OPENSSL_free(point);
	return r;
}

int
token_public_spki(custody_token *tok, CK_OBJECT_HANDLE pub,
		  const char *keyspec, const char *what, unsigned char **spki,
		  size_t *len, custody_err *err)
{
	custody_keyspec spec;
	EVP_PKEY *pkey = NULL;
	unsigned char *der = NULL, *p;
	int n, r;

	if ((r = custody_keyspec_parse(keyspec, &spec, err)) != CUSTODY_OK ||
	    (r = token_read_public(tok, pub, &spec, &pkey, err)) != CUSTODY_OK)
		goto out;
	if ((n = i2d_PUBKEY(pkey, NULL)) <= 0 ||
	    (der = malloc((size_t)n)) == NULL) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot encode the %s", what);
		goto out;
	}
	p = der;
	i2d_PUBKEY(pkey, &p);
	*spki = der;
	*len = (size_t)n;
out:
	EVP_PKEY_free(pkey);
	return r;
}

/* The token made what was asked: the algorithm and size of the public key. */
static int
check_public(EVP_PKEY *pkey, const custody_keyspec *spec, custody_err *err)
{
	char alg[32];

	custody_pkey_algorithm(pkey, alg, sizeof(alg));
	if (strcmp(alg, spec->name) != 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the token generated a %s key pair when "
				       "%s was asked for", alg, spec->name);
	return CUSTODY_OK;
}

/* ---------------------------------------------------------- generation */

static int
set_id(custody_token *tok, CK_OBJECT_HANDLE h, const unsigned char *id,
       size_t len, const char *what, custody_err *err)
{
	CK_ATTRIBUTE a = {CKA_ID, (void *)id, len};
	CK_RV rv;

	rv = tok->f->C_SetAttributeValue(tok->session, h, &a, 1);
	if (rv != CKR_OK)
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot set the key id of the generated "
				    "%s on token %s", what, tok->label);
	return CUSTODY_OK;
}

static void
destroy_pair(custody_token *tok, CK_OBJECT_HANDLE priv, CK_OBJECT_HANDLE pub)
{
	token_destroy_object(tok, pub, "generated public key");
	token_destroy_object(tok, priv, "generated private key");
	custody_step("removed the generated key pair from token %s again",
		     tok->label);
}

static int
check_inputs(custody_token *tok, const custody_keyspec *spec,
	     const char *label, int replicable, custody_err *err)
{
	int used = 0, r;

	if (spec == NULL || (spec->type != EVP_PKEY_RSA &&
			     spec->type != EVP_PKEY_EC))
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot generate a key pair: no valid "
				       "key spec given");
	if (label == NULL || label[0] == '\0' || strlen(label) > 255)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot generate a key pair: the label "
				       "must be 1 to 255 bytes");
	if ((r = custody_token_require_key(tok, spec->type, spec->bits,
					   "generate", err)) != CUSTODY_OK ||
	    (replicable &&
	     (r = custody_token_require_cluster(tok, "make replicable keys",
						err)) != CUSTODY_OK))
		return r;
	if ((r = token_require_login(tok, "generate a key pair", err)) !=
	    CUSTODY_OK ||
	    (r = custody_token_label_used(tok, label, &used, err)) !=
	    CUSTODY_OK)
		return r;
	if (used) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "label %s is already on token %s", label,
				    tok->label);
		custody_err_hint(err, "choose another one with --label");
	}
	return r;
}

int
custody_token_generate(custody_token *tok, const custody_keyspec *spec,
		       const char *label, X509_NAME *subject, int replicable,
		       char key_id[CUSTODY_KEY_ID_HEX + 1], EVP_PKEY **pub,
		       custody_err *err)
{
	struct keygen g;
	CK_OBJECT_HANDLE hpriv = CK_INVALID_HANDLE, hpub = CK_INVALID_HANDLE;
	EVP_PKEY *pkey = NULL;
	unsigned char id[20];
	char hex[CUSTODY_KEY_ID_HEX + 1];
	custody_err e;
	CK_RV rv;
	int trusted_wrap = 1, noted_temp = 0, noted_id = 0, r;

	memset(&g, 0, sizeof(g));
	if (pub != NULL)
		*pub = NULL;
	if ((r = check_inputs(tok, spec, label, replicable, err)) != CUSTODY_OK ||
	    (r = build_templates(tok, &g, spec, label, subject, replicable,
				 err)) != CUSTODY_OK)
		goto out;
	if (replicable &&
	    (r = token_tmpl_trusted_wrap(tok, &g.priv, &trusted_wrap, err)) !=
	    CUSTODY_OK)
		goto out;
	custody_step("generating an %s key pair on token %s (serial %s), %s",
		     spec->name, tok->label, tok->serial,
		     !replicable ? "never extractable"
		     : trusted_wrap ? "extractable only under trusted wrap"
				    : "extractable (the token cannot hold a "
				      "trusted KEK)");
	/* The notes of intent: the temporary id now, the key id before the
	 * pair takes it; the caller removes the key id's once it is recorded. */
	if ((r = token_intent_add_raw(tok, g.temp_id, sizeof(g.temp_id),
				      err)) != CUSTODY_OK)
		goto out;
	noted_temp = 1;
	rv = tok->f->C_GenerateKeyPair(tok->session, &g.mech, g.pub.a, g.pub.n,
				       g.priv.a, g.priv.n, &hpub, &hpriv);
	if (rv != CKR_OK) {
		hpub = hpriv = CK_INVALID_HANDLE;
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot generate %s key pair on token %s",
				 spec->name, tok->label);
		goto undo;
	}
	/* From here on, a failure removes the pair again. */
	if ((r = token_check_attrs(tok, hpriv, "private key", &g.priv, 1,
				   err)) != CUSTODY_OK ||
	    (r = token_read_public(tok, hpub, spec, &pkey, err)) != CUSTODY_OK ||
	    (r = check_public(pkey, spec, err)) != CUSTODY_OK ||
	    (r = custody_pkey_key_id(pkey, id, err)) != CUSTODY_OK)
		goto undo;
	custody_hex_encode(id, sizeof(id), hex, 0);
	if ((r = token_intent_add_raw(tok, id, sizeof(id), err)) != CUSTODY_OK)
		goto undo;
	noted_id = 1;
	if ((r = set_id(tok, hpub, id, sizeof(id), "public key", err)) !=
	    CUSTODY_OK ||
	    (r = set_id(tok, hpriv, id, sizeof(id), "private key", err)) !=
	    CUSTODY_OK)
		goto undo;
	if (token_intent_clear_raw(tok, g.temp_id, sizeof(g.temp_id), &e) !=
	    CUSTODY_OK)
		custody_warn("%s (custody tidy removes it)", e.msg);
	custody_step("generated the key pair on token %s: key id %s, label %s",
		     tok->label, hex, label);
	memcpy(key_id, hex, sizeof(hex));
	if (pub != NULL) {
		*pub = pkey;
		pkey = NULL;
	}
	r = CUSTODY_OK;
	goto out;
undo:
	destroy_pair(tok, hpriv, hpub);
	if ((noted_id && token_intent_clear_raw(tok, id, sizeof(id), &e) !=
	     CUSTODY_OK) ||
	    (noted_temp && token_intent_clear_raw(tok, g.temp_id,
						  sizeof(g.temp_id), &e) !=
	     CUSTODY_OK))
		custody_warn("%s (custody tidy removes it)", e.msg);
out:
	EVP_PKEY_free(pkey);
	keygen_clear(&g);
	return r;
}

/* ------------------------------------------- the public key of a key id */

/* The one public key object with this raw CKA_ID; ENOTFOUND when none. */
static int
find_public(custody_token *tok, const char *key_id, CK_OBJECT_HANDLE *h,
	    custody_err *err)
{
	unsigned char id[CUSTODY_TOKEN_ID_MAX];
	size_t id_len = 0;
	int r;

	if ((r = token_key_id_decode(key_id, id, sizeof(id), &id_len, err)) !=
	    CUSTODY_OK ||
	    (r = token_find_by_id(tok, CKO_PUBLIC_KEY, id, id_len, h, err)) !=
	    CUSTODY_OK)
		return r;
	if (*h == CK_INVALID_HANDLE)
		return custody_err_set(err, CUSTODY_ENOTFOUND,
				       "no public key with key id %s on token %s",
				       key_id, tok->label);
	return CUSTODY_OK;
}

/* The key spec of a public key object: its type, and an EC key's curve
 * (CKA_EC_PARAMS, a named curve). */
static int
public_spec(custody_token *tok, CK_OBJECT_HANDLE h, const char *key_id,
	    custody_keyspec *spec, custody_err *err)
{
	CK_KEY_TYPE kt = (CK_KEY_TYPE)-1;
	CK_ATTRIBUTE a = {CKA_KEY_TYPE, &kt, sizeof(kt)};
	unsigned char *params = NULL;
	const unsigned char *p;
	ASN1_OBJECT *curve = NULL;
	size_t len = 0;
	int r;

	memset(spec, 0, sizeof(*spec));
	if (tok->f->C_GetAttributeValue(tok->session, h, &a, 1) != CKR_OK ||
	    (kt != CKK_RSA && kt != CKK_EC))
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the public key %s on token %s is "
				       "neither RSA nor EC", key_id, tok->label);
	if (kt == CKK_RSA) {
		spec->type = EVP_PKEY_RSA;
		return CUSTODY_OK;
	}
	spec->type = EVP_PKEY_EC;
	if ((r = token_get_attr(tok, h, CKA_EC_PARAMS, &params, &len, err)) !=
	    CUSTODY_OK)
		return r;
	p = params;
	curve = d2i_ASN1_OBJECT(NULL, &p, (long)len);
	spec->curve_nid = curve != NULL ? OBJ_obj2nid(curve) : NID_undef;
	ASN1_OBJECT_free(curve);
	free(params);
	ERR_clear_error();
	if (spec->curve_nid == NID_undef)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the public key %s on token %s is on a "
				       "curve custody does not know", key_id,
				       tok->label);
	return CUSTODY_OK;
}

int
custody_token_public_key(custody_token *tok, const char *key_id,
			 EVP_PKEY **out, custody_err *err)
{
	custody_keyspec spec;
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	int r;

	*out = NULL;
	if ((r = find_public(tok, key_id, &h, err)) != CUSTODY_OK ||
	    (r = public_spec(tok, h, key_id, &spec, err)) != CUSTODY_OK)
		return r;
	return token_read_public(tok, h, &spec, out, err);
}
