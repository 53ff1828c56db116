/*
 * keymgmt.c — the provider's key objects: RSA and EC keys held by
 * reference (the private key stays in the token), pinned to the
 * certificate they were resolved to, and the OSSL_KEYMGMT functions that
 * let OpenSSL match them with their certificate.
 *
 * What OpenSSL gets of a key: its public half (exported as OSSL_PARAMs:
 * n and e for RSA, group name and encoded point for EC, from the
 * certificate), its size and default digest.  Export of private parts is
 * refused; there is no import and no generation, so OpenSSL never hands
 * this provider a software key: a key it did not load is the default
 * provider's.  X509_check_private_key (s_server, SSL_CTX_check_private_key)
 * works through EVP_PKEY_eq, which exports our public half to the
 * certificate key's manager and matches there.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/x509.h>

#include <custody/assign.h>
#include <custody/cert.h>

#include "providers/internal.h"

/* ---- the key object ------------------------------------------------------ */

void
prov_key_up(struct prov_key *key)
{
	__atomic_add_fetch(&key->refs, 1, __ATOMIC_RELAXED);
}

void
prov_key_free(struct prov_key *key)
{
	if (key == NULL || __atomic_sub_fetch(&key->refs, 1,
					      __ATOMIC_ACQ_REL) != 0)
		return;
	custody_signer_close(key->signer);
	EVP_PKEY_free(key->pub);
	pthread_mutex_destroy(&key->mx);
	free(key);
}

int
prov_key_sign_digest(struct prov_key *key, enum custody_sig_scheme scheme,
		     int digest_nid, const unsigned char *md, size_t md_len,
		     unsigned char **sig, size_t *sig_len, custody_err *err)
{
	custody_signer *sg = NULL;
	int r;

	/* What the library and the PKCS#11 module leave on OpenSSL's error
	 * queue (SoftHSM's engine probes) is not ours to report: err is. */
	ERR_set_mark();
	if ((r = prov_key_signer(key, &sg, err)) == CUSTODY_OK)
		r = custody_signer_sign_pinned(sg, key->thumbprint, scheme,
					       digest_nid, md, md_len, 1, sig,
					       sig_len, NULL, err);
	ERR_pop_to_mark();
	/* Even a failed signature may have loaded the module. */
	prov_token_opened(key->prov);
	return r;
}

/* One test signature in the token, verified with the certificate's public
 * key: the key is on the token and is the certificate's. */
static int
probe(struct prov_key *key, custody_err *err)
{
	static const unsigned char text[] = "custody provider load check";
	unsigned char md[32], *sig = NULL;
	size_t sig_len = 0;
	EVP_PKEY_CTX *vc = NULL;
	int r;

	SHA256(text, sizeof(text) - 1, md);
	if ((r = prov_key_sign_digest(key, CUSTODY_SIG_AUTO, NID_sha256, md,
				      sizeof(md), &sig, &sig_len, err)) !=
	    CUSTODY_OK)
		goto out;
	vc = EVP_PKEY_CTX_new_from_pkey(key->prov->libctx, key->pub,
					PROV_SOFTWARE_PROPQ);
	if (vc == NULL || EVP_PKEY_verify_init(vc) <= 0 ||
	    EVP_PKEY_CTX_set_signature_md(vc, EVP_sha256()) <= 0 ||
	    EVP_PKEY_verify(vc, sig, sig_len, md, sizeof(md)) != 1) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"the token's key %s does not sign for "
					"certificate %s", key->key_id,
					key->thumbprint);
		goto out;
	}
	r = CUSTODY_OK;
out:
	EVP_PKEY_CTX_free(vc);
	free(sig);
	return r;
}

/* The key object's facts from the checked certificate x. */
static int
key_from_cert(struct prov_key *key, const custody_cert_record *rec, X509 *x,
	      custody_err *err)
{
	memcpy(key->thumbprint, rec->thumbprint, sizeof(key->thumbprint));
	memcpy(key->key_id, rec->key_id, sizeof(key->key_id));
	if ((key->pub = X509_get_pubkey(x)) == NULL)
		return custody_err_openssl(err, CUSTODY_EFAIL,
					   "cannot read the public key of "
					   "certificate %s", rec->thumbprint);
	if (EVP_PKEY_is_a(key->pub, "RSA")) {
		key->is_rsa = 1;
	} else if (!EVP_PKEY_is_a(key->pub, "EC")) {
		return custody_err_set(err, CUSTODY_EFAIL,
				       "certificate %s: its key is neither RSA "
				       "nor EC (%s)", rec->thumbprint,
				       EVP_PKEY_get0_type_name(key->pub));
	}
	key->bits = EVP_PKEY_get_bits(key->pub);
	key->security_bits = EVP_PKEY_get_security_bits(key->pub);
	key->max_sig = EVP_PKEY_get_size(key->pub);
	return CUSTODY_OK;
}

static int
copy_der(const custody_cert_record *rec, unsigned char **der, size_t *len,
	 custody_err *err)
{
	if ((*der = malloc(rec->der_len)) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot load a certificate: out of "
				       "memory");
	memcpy(*der, rec->der, rec->der_len);
	*len = rec->der_len;
	return CUSTODY_OK;
}

int
prov_key_resolve(struct prov_ctx *prov, const char *type,
		 const char *identity, int which,
		 struct prov_key **out, unsigned char **cert_der,
		 size_t *cert_len, custody_err *err)
{
	struct prov_key *key = NULL;
	custody_signer *sg = NULL;
	custody_cert_record rec;
	unsigned long gen = 0;
	X509 *x = NULL;
	int r = CUSTODY_EFAIL;

	*out = NULL;
	*cert_der = NULL;
	*cert_len = 0;
	memset(&rec, 0, sizeof(rec));
	ERR_set_mark();	/* as prov_key_sign_digest */
	if ((key = calloc(1, sizeof(*key))) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot load a key: out of memory");
		goto out;
	}
	key->refs = 1;
	key->prov = prov;
	pthread_mutex_init(&key->mx, NULL);
	snprintf(key->type, sizeof(key->type), "%s", type);
	snprintf(key->identity, sizeof(key->identity), "%s", identity);
	if ((r = prov_signer_open(prov, type, identity, &sg, &gen, err)) !=
	    CUSTODY_OK ||
	    (r = custody_signer_slot_cert(sg, 0, which, &rec, err)) !=
	    CUSTODY_OK ||
	    (r = custody_cert_record_check(&rec, &x, err)) != CUSTODY_OK ||
	    (r = key_from_cert(key, &rec, x, err)) != CUSTODY_OK ||
	    (r = copy_der(&rec, cert_der, cert_len, err)) != CUSTODY_OK)
		goto out;
	key->signer = sg;
	key->signer_generation = gen;
	sg = NULL;
	if ((r = probe(key, err)) != CUSTODY_OK)
		goto out;
	*out = key;
	key = NULL;
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK) {
		free(*cert_der);
		*cert_der = NULL;
		*cert_len = 0;
	}
	custody_signer_close(sg);
	prov_key_free(key);
	X509_free(x);
	custody_cert_record_clear(&rec);
	ERR_pop_to_mark();
	prov_token_opened(prov);
	return r;
}

/* ---- OSSL_KEYMGMT ------------------------------------------------------ */

static OSSL_FUNC_keymgmt_load_fn km_load;
static OSSL_FUNC_keymgmt_free_fn km_free;
static OSSL_FUNC_keymgmt_has_fn km_has;
static OSSL_FUNC_keymgmt_match_fn km_match;
static OSSL_FUNC_keymgmt_export_fn km_export;
static OSSL_FUNC_keymgmt_export_types_fn km_rsa_export_types;
static OSSL_FUNC_keymgmt_export_types_fn km_ec_export_types;
static OSSL_FUNC_keymgmt_get_params_fn km_get_params;
static OSSL_FUNC_keymgmt_gettable_params_fn km_rsa_gettable_params;
static OSSL_FUNC_keymgmt_gettable_params_fn km_ec_gettable_params;
static OSSL_FUNC_keymgmt_query_operation_name_fn km_rsa_operation_name;
static OSSL_FUNC_keymgmt_query_operation_name_fn km_ec_operation_name;
static OSSL_FUNC_keymgmt_dup_fn km_dup;

/* The store passes a key object's address as its reference. */
static void *
km_load(const void *reference, size_t reference_sz)
{
	struct prov_key *key;

	if (reference == NULL || reference_sz != sizeof(key))
		return NULL;
	memcpy(&key, reference, sizeof(key));
	prov_key_up(key);
	return key;
}

static void
km_free(void *keydata)
{
	prov_key_free(keydata);
}

/* A key object always has both halves: the public one from the
 * certificate, the private one in the token. */
static int
km_has(const void *keydata, int selection)
{
	(void)selection;
	return keydata != NULL;
}

static int
km_match(const void *a, const void *b, int selection)
{
	const struct prov_key *ka = a, *kb = b;

	(void)selection;
	if (ka == NULL || kb == NULL)
		return 0;
	if (strcmp(ka->key_id, kb->key_id) == 0)
		return 1;
	return EVP_PKEY_eq(ka->pub, kb->pub) == 1;
}

/* The public half only (and the domain parameters, for EC). */
static int
km_export(void *keydata, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
	struct prov_key *key = keydata;
	OSSL_PARAM *params = NULL;
	int ok;

	if (key == NULL || (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0)
		return 0;	/* never: OpenSSL then asks for less */
	if (EVP_PKEY_todata(key->pub, EVP_PKEY_PUBLIC_KEY, &params) != 1)
		return 0;
	ok = cb(params, cbarg);
	OSSL_PARAM_free(params);
	return ok;
}

static const OSSL_PARAM *
km_rsa_export_types(int selection)
{
	static const OSSL_PARAM types[] = {
		OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
		OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
		OSSL_PARAM_END,
	};

	return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 ? NULL
								  : types;
}

static const OSSL_PARAM *
km_ec_export_types(int selection)
{
	static const OSSL_PARAM types[] = {
		OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
		OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
		OSSL_PARAM_END,
	};

	return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 ? NULL
								  : types;
}

static int
km_get_params(void *keydata, OSSL_PARAM params[])
{
	struct prov_key *key = keydata;
	OSSL_PARAM *p;

	if (key == NULL)
		return 0;
	/* The public half's own parameters (n, e, group, point...). */
	if (EVP_PKEY_get_params(key->pub, params) != 1)
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_BITS)) != NULL &&
	    !OSSL_PARAM_set_int(p, key->bits))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_SECURITY_BITS)) !=
	    NULL && !OSSL_PARAM_set_int(p, key->security_bits))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_MAX_SIZE)) != NULL &&
	    !OSSL_PARAM_set_int(p, key->max_sig))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_DEFAULT_DIGEST)) !=
	    NULL && !OSSL_PARAM_set_utf8_string(p, "SHA256"))
		return 0;
	return 1;
}

#define COMMON_GETTABLE \
	OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL), \
	OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL), \
	OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL), \
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0)

static const OSSL_PARAM *
km_rsa_gettable_params(void *provctx)
{
	static const OSSL_PARAM table[] = {
		COMMON_GETTABLE,
		OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
		OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
		OSSL_PARAM_END,
	};

	(void)provctx;
	return table;
}

static const OSSL_PARAM *
km_ec_gettable_params(void *provctx)
{
	static const OSSL_PARAM table[] = {
		COMMON_GETTABLE,
		OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
		OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
		OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
					NULL, 0),
		OSSL_PARAM_END,
	};

	(void)provctx;
	return table;
}

static const char *
km_rsa_operation_name(int operation_id)
{
	return operation_id == OSSL_OP_SIGNATURE ? "RSA" : NULL;
}

static const char *
km_ec_operation_name(int operation_id)
{
	return operation_id == OSSL_OP_SIGNATURE ? "ECDSA" : NULL;
}

/* A key object does not change: a copy is another reference. */
static void *
km_dup(const void *keydata, int selection)
{
	struct prov_key *key = (struct prov_key *)keydata;

	(void)selection;
	if (key != NULL)
		prov_key_up(key);
	return key;
}

#define KEYMGMT_COMMON \
	{OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))km_load}, \
	{OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))km_free}, \
	{OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))km_has}, \
	{OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))km_match}, \
	{OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))km_export}, \
	{OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))km_get_params}, \
	{OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))km_dup}

const OSSL_DISPATCH prov_rsa_keymgmt_functions[] = {
	KEYMGMT_COMMON,
	{OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))km_rsa_export_types},
	{OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS,
	 (void (*)(void))km_rsa_gettable_params},
	{OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME,
	 (void (*)(void))km_rsa_operation_name},
	{0, NULL},
};

const OSSL_DISPATCH prov_ec_keymgmt_functions[] = {
	KEYMGMT_COMMON,
	{OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))km_ec_export_types},
	{OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS,
	 (void (*)(void))km_ec_gettable_params},
	{OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME,
	 (void (*)(void))km_ec_operation_name},
	{0, NULL},
};
