/* test_metadata.c — JWK Set and server-to-server metadata documents
 * (custody/metadata.h): every published key is rebuilt from the document
 * and compared with the certificate's key. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <custody/cert.h>
#include <custody/metadata.h>
#include "unit/testcerts.h"

/* ---------------------------------------------------------------- helpers */

struct ident {
	EVP_PKEY *key;
	X509 *cert;
	custody_cert_record rec;
};

static void
make_ident(struct ident *id, const char *spec, const char *cn)
{
	custody_err err;

	id->key = testcert_key(spec);
	id->cert = testcert_self_signed(id->key, cn, NULL, -60, 30);
	cr_assert_eq(custody_cert_record_from_x509(id->cert, &id->rec, &err), CUSTODY_OK, "%s", err.msg);
}

static void
free_ident(struct ident *id)
{
	custody_cert_record_clear(&id->rec);
	X509_free(id->cert);
	EVP_PKEY_free(id->key);
}

/* Decoding written here with OpenSSL's base64, independent of the code
 * under test.  url: base64url without padding; else standard base64. */
static unsigned char *
decode(const char *in, int url, size_t *len)
{
	size_t n = strlen(in), i, pad = url ? (4 - n % 4) % 4 : 0;
	char *std = malloc(n + pad + 1);
	unsigned char *out = malloc(n + 4);
	int got;

	cr_assert(std != NULL && out != NULL);
	for (i = 0; i < n; i++) {
		std[i] = in[i];
		if (url) {
			cr_assert(in[i] != '+' && in[i] != '/' && in[i] != '=', "not base64url: %s", in);
			std[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
		}
	}
	memset(std + n, '=', pad);
	std[n + pad] = '\0';
	got = EVP_DecodeBlock(out, (unsigned char *)std, (int)(n + pad));
	cr_assert_geq(got, 0, "bad base64: %s", in);
	/* EVP_DecodeBlock counts padding as zero bytes. */
	if (n + pad >= 2 && std[n + pad - 1] == '=')
		got--;
	if (n + pad >= 2 && std[n + pad - 2] == '=')
		got--;
	*len = (size_t)got;
	free(std);
	return out;
}

static unsigned char *
member_bytes(json_t *o, const char *name, int url, size_t *len)
{
	json_t *v = json_object_get(o, name);

	cr_assert(json_is_string(v), "member %s is missing", name);
	return decode(json_string_value(v), url, len);
}

static json_t *
load(const char *text)
{
	json_error_t jerr;
	json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

	cr_assert_not_null(doc, "not JSON: %s\n%s", jerr.text, text);
	return doc;
}

/* The public key a JWK describes, rebuilt with OpenSSL. */
static EVP_PKEY *
jwk_to_pkey(json_t *jwk)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *pkey = NULL;
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	unsigned char *a, *b, point[1 + 2 * 66];
	size_t alen, blen;
	BIGNUM *n = NULL, *e = NULL;

	cr_assert_not_null(kty);
	if (strcmp(kty, "RSA") == 0) {
		a = member_bytes(jwk, "n", 1, &alen);
		b = member_bytes(jwk, "e", 1, &blen);
		cr_assert_neq(a[0], 0, "n has a leading zero byte");
		n = BN_bin2bn(a, (int)alen, NULL);
		e = BN_bin2bn(b, (int)blen, NULL);
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	} else {
		const char *crv = json_string_value(json_object_get(jwk, "crv"));
		const char *group = strcmp(crv, "P-256") == 0 ? "prime256v1"
				  : strcmp(crv, "P-384") == 0 ? "secp384r1" : "secp521r1";

		cr_assert_str_eq(kty, "EC");
		a = member_bytes(jwk, "x", 1, &alen);
		b = member_bytes(jwk, "y", 1, &blen);
		cr_assert_eq(alen, blen);
		point[0] = 0x04;
		memcpy(point + 1, a, alen);
		memcpy(point + 1 + alen, b, blen);
		OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
		OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + alen + blen);
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	}
	params = OSSL_PARAM_BLD_to_param(bld);
	cr_assert_eq(EVP_PKEY_fromdata_init(ctx), 1);
	cr_assert_eq(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params), 1);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(n);
	BN_free(e);
	free(a);
	free(b);
	return pkey;
}

static char *
ref_x5t(const custody_cert_record *rec, int sha256)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char *out = malloc(64);
	size_t len = sha256 ? SHA256_DIGEST_LENGTH : SHA_DIGEST_LENGTH, i, o = 0;

	if (sha256)
		SHA256(rec->der, rec->der_len, md);
	else
		SHA1(rec->der, rec->der_len, md);
	EVP_EncodeBlock((unsigned char *)out, md, (int)len);
	for (i = 0; out[i] != '\0' && out[i] != '='; i++)
		out[o++] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	out[o] = '\0';
	return out;
}

/* Checks one JWK against the certificate it should publish. */
static void
check_jwk(json_t *jwk, const struct ident *id, const char *kty, const char *alg,
	  size_t coord_len)
{
	char *x5t = ref_x5t(&id->rec, 0), *x5t256 = ref_x5t(&id->rec, 1);
	json_t *x5c = json_object_get(jwk, "x5c");
	unsigned char *der;
	size_t len;
	EVP_PKEY *rebuilt;

	cr_assert_str_eq(json_string_value(json_object_get(jwk, "kty")), kty);
	cr_assert_str_eq(json_string_value(json_object_get(jwk, "use")), "sig");
	cr_assert_str_eq(json_string_value(json_object_get(jwk, "x5t")), x5t);
	cr_assert_str_eq(json_string_value(json_object_get(jwk, "kid")), x5t);
	cr_assert_str_eq(json_string_value(json_object_get(jwk, "x5t#S256")), x5t256);
	if (alg != NULL)
		cr_assert_str_eq(json_string_value(json_object_get(jwk, "alg")), alg);
	else
		cr_assert_null(json_object_get(jwk, "alg"));
	/* x5c: one standard-base64 DER certificate, exactly the record's. */
	cr_assert(json_is_array(x5c) && json_array_size(x5c) == 1);
	cr_assert_null(strchr(json_string_value(json_array_get(x5c, 0)), '-'));
	der = decode(json_string_value(json_array_get(x5c, 0)), 0, &len);
	cr_assert_eq(len, id->rec.der_len);
	cr_assert_eq(memcmp(der, id->rec.der, len), 0);
	free(der);
	if (coord_len != 0) {
		unsigned char *x = member_bytes(jwk, "x", 1, &len);

		cr_assert_eq(len, coord_len, "x is %zu bytes, want %zu", len, coord_len);
		free(x);
	}
	/* The published key is the certificate's key. */
	rebuilt = jwk_to_pkey(jwk);
	cr_assert_eq(EVP_PKEY_eq(rebuilt, id->key), 1, "the JWK is not the certificate's key");
	EVP_PKEY_free(rebuilt);
	free(x5t);
	free(x5t256);
}

/* ---------------------------------------------------------------- JWKS */

Test(jwks, rsa_and_ec_keys_decode_back_to_the_certificates)
{
	struct ident rsa, p256, p384, p521;
	custody_cert_record recs[4];
	custody_err err;
	char *text = NULL;
	json_t *doc, *keys;

	make_ident(&rsa, "rsa:2048", "rsa.custody.test");
	make_ident(&p256, "ec:p256", "p256.custody.test");
	make_ident(&p384, "ec:p384", "p384.custody.test");
	make_ident(&p521, "ec:p521", "p521.custody.test");
	recs[0] = rsa.rec;
	recs[1] = p256.rec;
	recs[2] = p384.rec;
	recs[3] = p521.rec;
	cr_assert_eq(custody_metadata_jwks(recs, 4, &text, &err), CUSTODY_OK, "%s", err.msg);
	doc = load(text);
	keys = json_object_get(doc, "keys");
	cr_assert_eq(json_object_size(doc), 1);
	cr_assert_eq(json_array_size(keys), 4);
	check_jwk(json_array_get(keys, 0), &rsa, "RSA", "RS256", 0);
	check_jwk(json_array_get(keys, 1), &p256, "EC", "ES256", 32);
	check_jwk(json_array_get(keys, 2), &p384, "EC", NULL, 48);
	check_jwk(json_array_get(keys, 3), &p521, "EC", NULL, 66);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(keys, 0), "e")), "AQAB");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(keys, 1), "crv")), "P-256");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(keys, 3), "crv")), "P-521");
	json_decref(doc);
	free(text);
	free_ident(&rsa);
	free_ident(&p256);
	free_ident(&p384);
	free_ident(&p521);
}

Test(jwks, order_is_kept_and_a_repeated_certificate_is_listed_once)
{
	struct ident a, b;
	custody_cert_record recs[3];
	custody_err err;
	char *text = NULL, *xa, *xb;
	json_t *doc, *keys;

	make_ident(&a, "ec:p256", "a.custody.test");
	make_ident(&b, "rsa:2048", "b.custody.test");
	recs[0] = b.rec;
	recs[1] = a.rec;
	recs[2] = b.rec;
	cr_assert_eq(custody_metadata_jwks(recs, 3, &text, &err), CUSTODY_OK, "%s", err.msg);
	doc = load(text);
	keys = json_object_get(doc, "keys");
	xa = ref_x5t(&a.rec, 0);
	xb = ref_x5t(&b.rec, 0);
	cr_assert_eq(json_array_size(keys), 2);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(keys, 0), "kid")), xb);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(keys, 1), "kid")), xa);
	json_decref(doc);
	free(text);
	free(xa);
	free(xb);
	free_ident(&a);
	free_ident(&b);
}

Test(jwks, empty_set)
{
	char *text = NULL;
	custody_err err;
	json_t *doc;

	cr_assert_eq(custody_metadata_jwks(NULL, 0, &text, &err), CUSTODY_OK);
	doc = load(text);
	cr_assert(json_is_array(json_object_get(doc, "keys")));
	cr_assert_eq(json_array_size(json_object_get(doc, "keys")), 0);
	json_decref(doc);
	free(text);
}

Test(jwks, refusals)
{
	struct ident ed, rsa;
	custody_cert_record bare;
	custody_err err;
	char *text = (char *)"untouched", want[128];

	make_ident(&ed, "ed25519", "ed.custody.test");
	cr_assert_eq(custody_metadata_jwks(&ed.rec, 1, &text, &err), CUSTODY_EFAIL);
	cr_assert_null(text);
	snprintf(want, sizeof(want), "certificate %s: its ED25519 key has no JWK form", ed.rec.thumbprint);
	cr_assert(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
	/* The s2s document publishes the certificate whatever its key. */
	cr_assert_eq(custody_metadata_s2s(&ed.rec, 1, &text, &err), CUSTODY_OK, "%s", err.msg);
	free(text);

	make_ident(&rsa, "rsa:2048", "rsa.custody.test");
	bare = rsa.rec;
	bare.der = NULL;
	bare.der_len = 0;
	cr_assert_eq(custody_metadata_jwks(&bare, 1, &text, &err), CUSTODY_EFAIL);
	snprintf(want, sizeof(want), "certificate %s: the record holds no DER", rsa.rec.thumbprint);
	cr_assert_str_eq(err.msg, want);
	cr_assert_eq(custody_metadata_s2s(&bare, 1, &text, &err), CUSTODY_EFAIL);
	/* A record whose DER is not a certificate. */
	bare.der = (unsigned char *)"\x30\x03\x02\x01\x01";
	bare.der_len = 5;
	cr_assert_eq(custody_metadata_jwks(&bare, 1, &text, &err), CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "is not a certificate") != NULL, "%s", err.msg);
	free_ident(&ed);
	free_ident(&rsa);
}

/* ---------------------------------------------------------------- s2s */

Test(s2s, the_contract_shape)
{
	struct ident a, b;
	custody_cert_record recs[2];
	custody_err err;
	char *text = NULL, *x5t;
	json_t *doc, *keys, *k, *kv;
	unsigned char *der;
	size_t len;

	make_ident(&a, "rsa:2048", "a.custody.test");
	make_ident(&b, "ec:p256", "b.custody.test");
	recs[0] = a.rec;
	recs[1] = b.rec;
	cr_assert_eq(custody_metadata_s2s(recs, 2, &text, &err), CUSTODY_OK, "%s", err.msg);
	doc = load(text);
	keys = json_object_get(doc, "keys");
	cr_assert_eq(json_array_size(keys), 2);
	for (size_t i = 0; i < 2; i++) {
		k = json_array_get(keys, i);
		cr_assert_eq(json_object_size(k), 3);
		cr_assert_str_eq(json_string_value(json_object_get(k, "usage")), "signing");
		x5t = ref_x5t(&recs[i], 0);
		cr_assert_eq(json_object_size(json_object_get(k, "keyinfo")), 1);
		cr_assert_str_eq(json_string_value(json_object_get(json_object_get(k, "keyinfo"), "x5t")), x5t);
		kv = json_object_get(k, "keyvalue");
		cr_assert_eq(json_object_size(kv), 2);
		cr_assert_str_eq(json_string_value(json_object_get(kv, "type")), "x509Certificate");
		der = member_bytes(kv, "value", 0, &len);
		cr_assert_eq(len, recs[i].der_len);
		cr_assert_eq(memcmp(der, recs[i].der, len), 0);
		free(der);
		free(x5t);
	}
	json_decref(doc);
	free(text);
	free_ident(&a);
	free_ident(&b);
}

/* With a [metadata TYPE] section: the trust members around the keys, in
 * Exchange's order; an empty conf value takes its default. */
Test(s2s, trust_fields_from_the_section)
{
	custody_metadata_conf conf;
	struct ident a;
	custody_err err;
	char *text = NULL, *x5t;
	json_t *doc, *v;
	const char *key;
	const char *order[] = {"version", "name", "realm", "serviceName", "issuer",
			       "allowedAudiences", "keys", "endpoints"};
	size_t i = 0;

	make_ident(&a, "rsa:2048", "a.custody.test");
	memset(&conf, 0, sizeof(conf));
	strcpy(conf.type, "OAuthTokenIssuer");
	strcpy(conf.realm, "contoso.example");
	strcpy(conf.service_name, "00000004-0000-0ff1-ce00-000000000000");
	cr_assert_eq(custody_metadata_s2s_trust(&conf, &a.rec, 1, &text, &err), CUSTODY_OK,
		     "%s", err.msg);
	doc = load(text);
	json_object_foreach(doc, key, v) {
		cr_assert_lt(i, 8, "an extra member %s", key);
		cr_assert_str_eq(key, order[i++]);
	}
	cr_assert_eq(i, 8);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "version")), "1.0");
	cr_assert_str_eq(json_string_value(json_object_get(doc, "name")),
			 "00000004-0000-0ff1-ce00-000000000000");
	cr_assert_str_eq(json_string_value(json_object_get(doc, "issuer")),
			 "00000004-0000-0ff1-ce00-000000000000@contoso.example");
	v = json_object_get(doc, "allowedAudiences");
	cr_assert_eq(json_array_size(v), 1);
	cr_assert_str_eq(json_string_value(json_array_get(v, 0)),
			 "00000004-0000-0ff1-ce00-000000000000/*@contoso.example");
	cr_assert_eq(json_array_size(json_object_get(doc, "endpoints")), 0);
	x5t = ref_x5t(&a.rec, 0);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(
		json_object_get(doc, "keys"), 0), "keyinfo"), "x5t")), x5t);
	free(x5t);
	json_decref(doc);
	free(text);

	/* Every value given: id first, audiences as given, both endpoints. */
	strcpy(conf.id, "_custody");
	strcpy(conf.name, "Custody");
	strcpy(conf.audiences[0], "a@contoso.example");
	strcpy(conf.audiences[1], "b/host@contoso.example");
	conf.n_audiences = 2;
	strcpy(conf.metadata_url, "https://sts.contoso.example/metadata/json/1");
	strcpy(conf.issuance_url, "https://sts.contoso.example/tokens/OAuth/2");
	cr_assert_eq(custody_metadata_s2s_trust(&conf, &a.rec, 1, &text, &err), CUSTODY_OK,
		     "%s", err.msg);
	doc = load(text);
	cr_assert_str_eq(json_object_iter_key(json_object_iter(doc)), "id");
	cr_assert_str_eq(json_string_value(json_object_get(doc, "name")), "Custody");
	v = json_object_get(doc, "allowedAudiences");
	cr_assert_eq(json_array_size(v), 2);
	cr_assert_str_eq(json_string_value(json_array_get(v, 1)), "b/host@contoso.example");
	v = json_object_get(doc, "endpoints");
	cr_assert_eq(json_array_size(v), 2);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(v, 0), "usage")),
			 "metadata");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(v, 1), "location")),
			 "https://sts.contoso.example/tokens/OAuth/2");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(v, 1), "protocol")),
			 "OAuth2");
	json_decref(doc);
	free(text);

	/* No section: keys only, as custody_metadata_s2s. */
	cr_assert_eq(custody_metadata_s2s_trust(NULL, &a.rec, 1, &text, &err), CUSTODY_OK);
	doc = load(text);
	cr_assert_eq(json_object_size(doc), 1);
	cr_assert_not_null(json_object_get(doc, "keys"));
	json_decref(doc);
	free(text);
	free_ident(&a);
}
