/* sign/metadata.c — JWK Set and server-to-server metadata documents from
 * certificate records (see custody/metadata.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <custody/base64.h>
#include <custody/cert.h>
#include <custody/jws.h>
#include <custody/metadata.h>

enum doc_format { DOC_JWKS, DOC_S2S };

static json_t *
b64url_string(const unsigned char *in, size_t len)
{
	char *text = custody_base64_encode(in, len, CUSTODY_BASE64URL);
	json_t *s = text != NULL ? json_string(text) : NULL;

	free(text);
	return s;
}

/* A big-endian integer as base64url, left-padded to pad bytes (0: as
 * short as it is, at least one byte). */
static json_t *
bn_json(const BIGNUM *bn, int pad)
{
	unsigned char *buf;
	int len = pad > 0 ? pad : BN_num_bytes(bn);
	json_t *s = NULL;

	if (len == 0)
		len = 1;
	if ((buf = malloc((size_t)len)) == NULL)
		return NULL;
	if (BN_bn2binpad(bn, buf, len) == len)
		s = b64url_string(buf, (size_t)len);
	free(buf);
	return s;
}

/* The curves a JWK names: custody's algorithm, crv, coordinate size. */
static const struct {
	const char *algo, *crv;
	int size;
} jwk_curves[] = {
	{ "EC-P256", "P-256", 32 },
	{ "EC-P384", "P-384", 48 },
	{ "EC-P521", "P-521", 66 },
};

/* Adds the key members of pub (kty, alg, n/e or crv/x/y) to jwk. */
static int
add_key_members(json_t *jwk, EVP_PKEY *pub, const char *thumbprint,
		custody_err *err)
{
	char algo[32];
	BIGNUM *a = NULL, *b = NULL;
	const char *kty, *param_a, *param_b, *crv = NULL;
	int size = 0, alg, r = CUSTODY_EFAIL;
	size_t i;

	custody_pkey_algorithm(pub, algo, sizeof(algo));
	if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA) {
		kty = "RSA";
		param_a = OSSL_PKEY_PARAM_RSA_N;
		param_b = OSSL_PKEY_PARAM_RSA_E;
	} else if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC) {
		for (i = 0; i < sizeof(jwk_curves) / sizeof(jwk_curves[0]); i++)
			if (strcmp(algo, jwk_curves[i].algo) == 0) {
				crv = jwk_curves[i].crv;
				size = jwk_curves[i].size;
			}
		if (crv == NULL) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "certificate %s: its %s key has no JWK form (P-256, P-384, P-521 only)",
					    thumbprint, algo);
			goto out;
		}
		kty = "EC";
		param_a = OSSL_PKEY_PARAM_EC_PUB_X;
		param_b = OSSL_PKEY_PARAM_EC_PUB_Y;
	} else {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "certificate %s: its %s key has no JWK form (RSA and EC only)",
				    thumbprint, algo);
		goto out;
	}
	if (EVP_PKEY_get_bn_param(pub, param_a, &a) != 1 ||
	    EVP_PKEY_get_bn_param(pub, param_b, &b) != 1) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"certificate %s: cannot read its %s key", thumbprint,
					kty);
		goto out;
	}
	json_object_set_new(jwk, "kty", json_string(kty));
	json_object_set_new(jwk, "use", json_string("sig"));
	/* kid and x5t come next; the caller adds them in this order. */
	r = CUSTODY_OK;
	alg = custody_jws_default_alg(algo);
	json_object_set_new(jwk, "kid", json_null());
	json_object_set_new(jwk, "x5t", json_null());
	json_object_set_new(jwk, "x5t#S256", json_null());
	if (alg != CUSTODY_JWS_ALG_NONE)
		json_object_set_new(jwk, "alg", json_string(custody_jws_alg_name(alg)));
	if (crv == NULL) {
		if (json_object_set_new(jwk, "n", bn_json(a, 0)) != 0 ||
		    json_object_set_new(jwk, "e", bn_json(b, 0)) != 0)
			r = custody_err_set(err, CUSTODY_EFAIL, "JWK: out of memory");
	} else {
		if (json_object_set_new(jwk, "crv", json_string(crv)) != 0 ||
		    json_object_set_new(jwk, "x", bn_json(a, size)) != 0 ||
		    json_object_set_new(jwk, "y", bn_json(b, size)) != 0)
			r = custody_err_set(err, CUSTODY_EFAIL, "JWK: out of memory");
	}
out:
	BN_free(a);
	BN_free(b);
	return r;
}

/* Fills e, an entry of the document, for rec; x5t is its base64url
 * SHA-1.  e belongs to the document already. */
static int
fill_entry(enum doc_format format, const custody_cert_record *rec,
	   const char *x5t, json_t *e, custody_err *err)
{
	unsigned char sha256[SHA256_DIGEST_LENGTH];
	const unsigned char *p = rec->der;
	X509 *x = NULL;
	char *b64 = NULL;
	int r = CUSTODY_EFAIL;

	b64 = custody_base64_encode(rec->der, rec->der_len, CUSTODY_BASE64);
	if (b64 == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL, "metadata: out of memory");
		goto out;
	}
	if (format == DOC_S2S) {
		if (json_object_update_new(e, json_pack("{s:s, s:{s:s}, s:{s:s, s:s}}",
				"usage", "signing", "keyinfo", "x5t", x5t, "keyvalue",
				"type", "x509Certificate", "value", b64)) != 0) {
			r = custody_err_set(err, CUSTODY_EFAIL, "metadata: out of memory");
			goto out;
		}
		r = CUSTODY_OK;
		goto out;
	}
	x = d2i_X509(NULL, &p, (long)rec->der_len);
	if (x == NULL || p != rec->der + rec->der_len || X509_get0_pubkey(x) == NULL) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"certificate %s: its DER is not a certificate",
					rec->thumbprint);
		goto out;
	}
	if ((r = add_key_members(e, X509_get0_pubkey(x), rec->thumbprint, err)) != CUSTODY_OK)
		goto out;
	SHA256(rec->der, rec->der_len, sha256);
	/* Setting an existing member keeps its place in the order. */
	if (json_object_set_new(e, "kid", json_string(x5t)) != 0 ||
	    json_object_set_new(e, "x5t", json_string(x5t)) != 0 ||
	    json_object_set_new(e, "x5t#S256", b64url_string(sha256, sizeof(sha256))) != 0 ||
	    json_object_set_new(e, "x5c", json_pack("[s]", b64)) != 0)
		r = custody_err_set(err, CUSTODY_EFAIL, "metadata: out of memory");
out:
	X509_free(x);
	free(b64);
	return r;
}

/* The members before "keys" of a server-to-server document from its
 * [metadata TYPE] section, in the order Exchange and Lync publish them. */
static int
add_trust_head(json_t *doc, const custody_metadata_conf *conf)
{
	char issuer[2 * CUSTODY_METADATA_NAME + 1], audience[2 * CUSTODY_METADATA_NAME + 3];
	json_t *audiences;
	int i, bad = 0;

	snprintf(issuer, sizeof(issuer), "%s@%s", conf->service_name, conf->realm);
	if (conf->id[0] != '\0')
		bad |= json_object_set_new(doc, "id", json_string(conf->id));
	bad |= json_object_set_new(doc, "version", json_string("1.0"));
	bad |= json_object_set_new(doc, "name", json_string(conf->name[0] != '\0' ?
							    conf->name : conf->service_name));
	bad |= json_object_set_new(doc, "realm", json_string(conf->realm));
	bad |= json_object_set_new(doc, "serviceName", json_string(conf->service_name));
	bad |= json_object_set_new(doc, "issuer", json_string(issuer));
	bad |= json_object_set_new(doc, "allowedAudiences", audiences = json_array());
	if (bad != 0 || audiences == NULL)
		return -1;
	/* By default the service on any of its hosts in the realm: the
	 * audience principal/host@realm with the host left open. */
	snprintf(audience, sizeof(audience), "%s/*@%s", conf->service_name, conf->realm);
	if (conf->n_audiences == 0)
		return json_array_append_new(audiences, json_string(audience));
	for (i = 0; i < conf->n_audiences; i++)
		bad |= json_array_append_new(audiences, json_string(conf->audiences[i]));
	return bad;
}

/* "endpoints": where the document itself is (usage metadata) and where
 * tokens are issued (usage issuance), as given; an empty list when
 * neither is. */
static int
add_trust_endpoints(json_t *doc, const custody_metadata_conf *conf)
{
	json_t *endpoints = json_array();
	int bad = json_object_set_new(doc, "endpoints", endpoints);

	if (bad != 0 || endpoints == NULL)
		return -1;
	if (conf->metadata_url[0] != '\0')
		bad |= json_array_append_new(endpoints, json_pack("{s:s, s:s, s:s}",
				"location", conf->metadata_url, "protocol", "OAuth2",
				"usage", "metadata"));
	if (conf->issuance_url[0] != '\0')
		bad |= json_array_append_new(endpoints, json_pack("{s:s, s:s, s:s}",
				"location", conf->issuance_url, "protocol", "OAuth2",
				"usage", "issuance"));
	return bad;
}

static int
document(enum doc_format format, const custody_metadata_conf *conf,
	 const custody_cert_record *certs, size_t n, char **json, custody_err *err)
{
	unsigned char sha1[SHA_DIGEST_LENGTH];
	char (*seen)[CUSTODY_JWS_X5T_SIZE] = NULL;
	json_t *doc = NULL, *keys, *e;
	char *b64;
	size_t i, j, n_seen = 0;
	int r = CUSTODY_EFAIL;

	*json = NULL;
	doc = json_object();
	seen = calloc(n > 0 ? n : 1, sizeof(*seen));
	if (doc == NULL || seen == NULL || (conf != NULL && add_trust_head(doc, conf) != 0) ||
	    json_object_set_new(doc, "keys", json_array()) != 0 ||
	    json_object_get(doc, "keys") == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL, "metadata: out of memory");
		goto out;
	}
	keys = json_object_get(doc, "keys");
	for (i = 0; i < n; i++) {
		if (certs[i].der == NULL || certs[i].der_len == 0) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "certificate %s: the record holds no DER",
					    certs[i].thumbprint);
			goto out;
		}
		SHA1(certs[i].der, certs[i].der_len, sha1);
		if ((b64 = custody_base64url_encode(sha1, sizeof(sha1))) == NULL) {
			r = custody_err_set(err, CUSTODY_EFAIL, "metadata: out of memory");
			goto out;
		}
		memcpy(seen[n_seen], b64, CUSTODY_JWS_X5T_SIZE);
		free(b64);
		for (j = 0; j < n_seen; j++)
			if (strcmp(seen[j], seen[n_seen]) == 0)
				break;
		if (j < n_seen)
			continue;	/* listed already */
		/* The array holds the entry from here on (even if it fails). */
		if (json_array_append_new(keys, e = json_object()) != 0) {
			r = custody_err_set(err, CUSTODY_EFAIL, "metadata: out of memory");
			goto out;
		}
		if ((r = fill_entry(format, &certs[i], seen[n_seen], e, err)) != CUSTODY_OK)
			goto out;
		n_seen++;
	}
	if (conf != NULL && add_trust_endpoints(doc, conf) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL, "metadata: out of memory");
		goto out;
	}
	r = CUSTODY_OK;
	if ((*json = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) == NULL)
		r = custody_err_set(err, CUSTODY_EFAIL, "metadata: cannot write the JSON");
out:
	json_decref(doc);
	free(seen);
	return r;
}

int
custody_metadata_jwks(const custody_cert_record *certs, size_t n, char **json,
		      custody_err *err)
{
	return document(DOC_JWKS, NULL, certs, n, json, err);
}

int
custody_metadata_s2s(const custody_cert_record *certs, size_t n, char **json,
		     custody_err *err)
{
	return document(DOC_S2S, NULL, certs, n, json, err);
}

int
custody_metadata_s2s_trust(const custody_metadata_conf *conf,
			   const custody_cert_record *certs, size_t n, char **json,
			   custody_err *err)
{
	return document(DOC_S2S, conf, certs, n, json, err);
}
