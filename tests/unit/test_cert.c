/* test_cert.c — X.509 facts and import-file parsing (custody/cert.h). */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include <custody/cert.h>
#include "unit/testcerts.h"

/* ---------------------------------------------------------------- helpers */

/* Hex written here, not with custody/hexfmt.h, so the expected values are
 * computed independently of the code under test. */
static void
hex(const unsigned char *in, size_t len, char *out, int upper)
{
	static const char lo[] = "0123456789abcdef", up[] = "0123456789ABCDEF";
	const char *d = upper ? up : lo;

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = d[in[i] >> 4];
		out[2 * i + 1] = d[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static unsigned char *
der_of(X509 *x, size_t *len)
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);

	cr_assert_gt(n, 0);
	*len = (size_t)n;
	return der;
}

/* Re-signs x after a change made by the test. */
static void
resign(X509 *x, EVP_PKEY *key)
{
	cr_assert_gt(X509_sign(x, key, EVP_sha256()), 0);
}

static void
add_san(X509 *x, EVP_PKEY *key, const char *san)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	cr_assert_not_null(ext);
	cr_assert_eq(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
	resign(x, key);
}

static void
set_serial(X509 *x, EVP_PKEY *key, const char *hexval)
{
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai;

	cr_assert_gt(BN_hex2bn(&bn, hexval), 0);
	ai = BN_to_ASN1_INTEGER(bn, NULL);
	cr_assert_not_null(ai);
	cr_assert_eq(X509_set_serialNumber(x, ai), 1);
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	resign(x, key);
}

static void
expected_key_id(X509 *x, char out[41])
{
	const ASN1_BIT_STRING *bits = X509_get0_pubkey_bitstr(x);
	unsigned char md[SHA_DIGEST_LENGTH];

	SHA1(ASN1_STRING_get0_data(bits), (size_t)ASN1_STRING_length(bits), md);
	hex(md, sizeof(md), out, 0);
}

static X509 *
self_signed(EVP_PKEY *key, const char *cn)
{
	static const char *const none[] = {NULL};

	return testcert_self_signed(key, cn, none, 0, 30);
}

static char *
concat(const char *a, const char *b, const char *c)
{
	size_t n = strlen(a) + strlen(b) + (c != NULL ? strlen(c) : 0) + 1;
	char *out = malloc(n);

	cr_assert_not_null(out);
	snprintf(out, n, "%s%s%s", a, b, c != NULL ? c : "");
	return out;
}

static char *
pem_cert(X509 *x)
{
	return testcert_pem(NULL, x, NULL);
}

/* PEM of the key alone (PKCS#8, encrypted when password is non-NULL). */
static char *
pem_key(EVP_PKEY *key, const char *password)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	cr_assert_not_null(bio);
	cr_assert_eq(PEM_write_bio_PKCS8PrivateKey(
			     bio, key, password != NULL ? EVP_aes_256_cbc() : NULL,
			     password, password != NULL ? (int)strlen(password) : 0,
			     NULL, NULL), 1);
	n = BIO_get_mem_data(bio, &data);
	out = malloc((size_t)n + 1);
	cr_assert_not_null(out);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	BIO_free(bio);
	return out;
}

/* Traditional ("RSA PRIVATE KEY") PEM, encrypted with a DEK-Info header
 * when password is non-NULL. */
static char *
pem_traditional_key(EVP_PKEY *key, const char *password)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	cr_assert_not_null(bio);
	cr_assert_eq(PEM_write_bio_PrivateKey_traditional(
			     bio, key, password != NULL ? EVP_aes_128_cbc() : NULL,
			     (unsigned char *)password,
			     password != NULL ? (int)strlen(password) : 0,
			     NULL, NULL), 1);
	n = BIO_get_mem_data(bio, &data);
	out = malloc((size_t)n + 1);
	cr_assert_not_null(out);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	BIO_free(bio);
	return out;
}

static int
parse_text(const char *text, const char *password, custody_bundle *b,
	   custody_err *err)
{
	return custody_bundle_parse((const unsigned char *)text, strlen(text),
				    password, b, err);
}

static void
assert_empty(const custody_bundle *b)
{
	cr_assert_null(b->key);
	cr_assert_null(b->cert);
	cr_assert_null(b->chain);
}

static void
assert_bundle(const custody_bundle *b, EVP_PKEY *key, X509 *cert,
	      int n_chain)
{
	if (key != NULL) {
		cr_assert_not_null(b->key);
		cr_assert_eq(EVP_PKEY_eq(b->key, key), 1);
	} else {
		cr_assert_null(b->key);
	}
	cr_assert_not_null(b->cert);
	cr_assert_eq(X509_cmp(b->cert, cert), 0);
	cr_assert_not_null(b->chain);
	cr_assert_eq(sk_X509_num(b->chain), n_chain);
}

static void
assert_error(int r, const custody_err *err, int code, const char *msg)
{
	cr_assert_eq(r, code, "code %d, expected %d (%s)", r, code, err->msg);
	cr_assert_eq(err->code, code);
	cr_assert_str_eq(err->msg, msg);
}

/* A CA and a leaf it issued, with their keys. */
struct chain {
	EVP_PKEY *ca_key, *key;
	X509 *ca, *leaf;
};

static void
make_chain(struct chain *c)
{
	c->ca_key = testcert_key("ec:p256");
	c->ca = testcert_self_signed(c->ca_key, "Test CA", NULL, 0, 365);
	c->key = testcert_key("ec:p256");
	c->leaf = testcert_issued(c->key, "leaf.example", c->ca, c->ca_key, 30);
}

static void
free_chain(struct chain *c)
{
	X509_free(c->ca);
	X509_free(c->leaf);
	EVP_PKEY_free(c->ca_key);
	EVP_PKEY_free(c->key);
}

/* ---------------------------------------------------------------- records */

Test(cert_record, facts_of_an_rsa_certificate)
{
	static const char *const dns[] = {"host.example", "alt.example", NULL};
	EVP_PKEY *key = testcert_key("rsa:2048");
	time_t before = time(NULL);
	X509 *x = testcert_self_signed(key, "host.example", dns, 0, 30);
	time_t after = time(NULL);
	custody_cert_record rec;
	custody_err err;
	unsigned char md[SHA256_DIGEST_LENGTH], *der;
	const ASN1_INTEGER *serial = X509_get0_serialNumber(x);
	char want[65], want_id[41];
	size_t len;

	der = der_of(x, &len);
	cr_assert_eq(custody_cert_record_from_x509(x, &rec, &err), CUSTODY_OK,
		     "%s", err.msg);

	SHA1(der, len, md);
	hex(md, SHA_DIGEST_LENGTH, want, 1);
	cr_assert_str_eq(rec.thumbprint, want);
	SHA256(der, len, md);
	hex(md, SHA256_DIGEST_LENGTH, want, 1);
	cr_assert_str_eq(rec.sha256, want);
	cr_assert_eq(rec.der_len, len);
	cr_assert_eq(memcmp(rec.der, der, len), 0);

	cr_assert_str_eq(rec.subject, "CN=host.example,O=custody tests");
	cr_assert_str_eq(rec.issuer, "CN=host.example,O=custody tests");
	/* testcerts makes 16-byte positive serials with no leading zero. */
	cr_assert_eq(ASN1_STRING_length(serial), 16);
	hex(ASN1_STRING_get0_data(serial), 16, want, 1);
	cr_assert_str_eq(rec.serial, want);

	cr_assert_geq(rec.not_before, (int64_t)before);
	cr_assert_leq(rec.not_before, (int64_t)after);
	cr_assert_eq(rec.not_after - rec.not_before, 30 * 86400);

	cr_assert_eq(rec.n_alt_names, 2);
	cr_assert_str_eq(rec.alt_names[0], "DNS:host.example");
	cr_assert_str_eq(rec.alt_names[1], "DNS:alt.example");
	cr_assert_str_eq(rec.key_algorithm, "RSA-2048");
	expected_key_id(x, want_id);
	cr_assert_str_eq(rec.key_id, want_id);
	cr_assert_null(rec.key_uri);
	cr_assert_null(rec.label);

	custody_cert_record_clear(&rec);
	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(cert_record, issuer_differs_from_subject_for_an_issued_certificate)
{
	struct chain c;
	custody_cert_record rec;

	make_chain(&c);
	cr_assert_eq(custody_cert_record_from_x509(c.leaf, &rec, NULL),
		     CUSTODY_OK);
	cr_assert_str_eq(rec.subject, "CN=leaf.example,O=custody tests");
	cr_assert_str_eq(rec.issuer, "CN=Test CA,O=custody tests");
	cr_assert_eq(rec.n_alt_names, 0);
	cr_assert_null(rec.alt_names);
	custody_cert_record_clear(&rec);
	free_chain(&c);
}

Test(cert_record, every_kind_of_alternative_name)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = testcert_self_signed(key, "a.example", NULL, 0, 30);
	custody_cert_record rec;

	add_san(x, key, "DNS:a.example,IP:10.0.0.1,IP:2001:db8::1,"
		"URI:https://a.example/x,email:ops@a.example");
	cr_assert_eq(custody_cert_record_from_x509(x, &rec, NULL), CUSTODY_OK);
	cr_assert_eq(rec.n_alt_names, 5);
	cr_assert_str_eq(rec.alt_names[0], "DNS:a.example");
	cr_assert_str_eq(rec.alt_names[1], "IP:10.0.0.1");
	cr_assert_str_eq(rec.alt_names[2], "IP:2001:db8::1");
	cr_assert_str_eq(rec.alt_names[3], "URI:https://a.example/x");
	cr_assert_str_eq(rec.alt_names[4], "email:ops@a.example");
	custody_cert_record_clear(&rec);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(cert_record, validity_is_exact_unix_seconds_for_utc_and_generalized_time)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "t.example");
	custody_cert_record rec;

	/* 2020-01-01T00:00:00Z as UTCTime, 2051-01-01T00:00:00Z as
	 * GeneralizedTime (years from 2050 on must be). */
	cr_assert_eq(ASN1_TIME_set_string_X509(X509_getm_notBefore(x),
					       "200101000000Z"), 1);
	cr_assert_eq(ASN1_TIME_set_string_X509(X509_getm_notAfter(x),
					       "20510101000000Z"), 1);
	resign(x, key);
	cr_assert_eq(custody_cert_record_from_x509(x, &rec, NULL), CUSTODY_OK);
	cr_assert_eq(rec.not_before, INT64_C(1577836800));
	cr_assert_eq(rec.not_after, INT64_C(2556144000));
	custody_cert_record_clear(&rec);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(cert_record, serial_is_upper_case_hex_of_whole_bytes)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "s.example");
	custody_cert_record rec;
	static const struct {
		const char *set, *shown;
	} cases[] = {
		{"0A", "0A"},			/* one byte, leading zero nibble */
		{"80", "80"},			/* DER adds a 00 byte: not shown */
		{"1234abcd", "1234ABCD"},
		{"0102030405060708090A0B0C0D0E0F10", "0102030405060708090A0B0C0D0E0F10"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		set_serial(x, key, cases[i].set);
		cr_assert_eq(custody_cert_record_from_x509(x, &rec, NULL),
			     CUSTODY_OK);
		cr_assert_str_eq(rec.serial, cases[i].shown);
		custody_cert_record_clear(&rec);
	}
	X509_free(x);
	EVP_PKEY_free(key);
}

struct alg_case {
	char spec[16];
	char shown[16];
};

ParameterizedTestParameters(cert_record, key_algorithm)
{
	static struct alg_case cases[] = {
		{"rsa:2048", "RSA-2048"},
		{"rsa:3072", "RSA-3072"},
		{"ec:p256", "EC-P256"},
		{"ec:p384", "EC-P384"},
		{"ec:p521", "EC-P521"},
		{"ec:secp256k1", "EC-secp256k1"},
		{"ed25519", "ED25519"},
		{"dsa:2048", "DSA-2048"},
	};

	return cr_make_param_array(struct alg_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct alg_case *c, cert_record, key_algorithm)
{
	EVP_PKEY *key = testcert_key(c->spec);
	X509 *x = self_signed(key, "k.example");
	custody_cert_record rec;
	char buf[32];

	custody_pkey_algorithm(key, buf, sizeof(buf));
	cr_assert_str_eq(buf, c->shown);
	cr_assert_eq(custody_cert_record_from_x509(x, &rec, NULL), CUSTODY_OK);
	cr_assert_str_eq(rec.key_algorithm, c->shown);
	custody_cert_record_clear(&rec);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(cert_record, algorithm_text_is_cut_to_the_buffer)
{
	EVP_PKEY *key = testcert_key("ec:p384");
	char buf[5] = "xxxx";

	custody_pkey_algorithm(key, buf, sizeof(buf));
	cr_assert_str_eq(buf, "EC-P");
	EVP_PKEY_free(key);
}

Test(cert_record, from_der_matches_from_x509_and_refuses_trailing_bytes)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "d.example");
	custody_cert_record a, b;
	custody_err err;
	unsigned char *der, *longer;
	size_t len;

	der = der_of(x, &len);
	cr_assert_eq(custody_cert_record_from_x509(x, &a, NULL), CUSTODY_OK);
	cr_assert_eq(custody_cert_record_from_der(der, len, &b, &err),
		     CUSTODY_OK);
	cr_assert_str_eq(a.thumbprint, b.thumbprint);
	cr_assert_str_eq(a.subject, b.subject);
	cr_assert_str_eq(a.key_id, b.key_id);
	custody_cert_record_clear(&b);

	longer = malloc(len + 1);
	memcpy(longer, der, len);
	longer[len] = 0;
	assert_error(custody_cert_record_from_der(longer, len + 1, &b, &err),
		     &err, CUSTODY_EFAIL,
		     "cannot read the certificate: 1 bytes follow the DER "
		     "certificate");
	cr_assert_null(b.subject);
	cr_assert_null(b.der);
	cr_assert_eq(custody_cert_record_from_der(der, len - 1, &b, &err),
		     CUSTODY_EFAIL);
	cr_assert_eq(strncmp(err.msg, "cannot read the certificate: not DER "
			     "X.509", 41), 0, "%s", err.msg);
	cr_assert_eq(custody_cert_record_from_der(der, 0, &b, &err),
		     CUSTODY_EFAIL);

	custody_cert_record_clear(&a);
	free(longer);
	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(cert_record, der_to_pem_round_trips)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "p.example"), *back;
	unsigned char *der;
	size_t len;
	char *pem, *want = pem_cert(x);
	BIO *bio;

	der = der_of(x, &len);
	pem = custody_cert_der_to_pem(der, len);
	cr_assert_not_null(pem);
	cr_assert_str_eq(pem, want);
	bio = BIO_new_mem_buf(pem, -1);
	back = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	cr_assert_not_null(back);
	cr_assert_eq(X509_cmp(back, x), 0);
	cr_assert_null(custody_cert_der_to_pem(der, 0));

	BIO_free(bio);
	X509_free(back);
	free(pem);
	free(want);
	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(key);
}

/* ---------------------------------------------------------------- key id */

static void
check_key_id(const char *spec)
{
	EVP_PKEY *key = testcert_key(spec), *other = testcert_key(spec);
	X509 *x = self_signed(key, "id.example");
	unsigned char from_cert[20], from_key[20], from_pub[20], from_other[20];
	unsigned char want[20];
	const ASN1_BIT_STRING *bits = X509_get0_pubkey_bitstr(x);
	custody_err err;

	SHA1(ASN1_STRING_get0_data(bits), (size_t)ASN1_STRING_length(bits),
	     want);
	cr_assert_eq(custody_cert_key_id(x, from_cert, &err), CUSTODY_OK);
	cr_assert_eq(custody_pkey_key_id(key, from_key, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(custody_pkey_key_id(X509_get0_pubkey(x), from_pub, &err),
		     CUSTODY_OK);
	cr_assert_eq(custody_pkey_key_id(other, from_other, &err), CUSTODY_OK);
	cr_assert_eq(memcmp(from_cert, want, 20), 0);
	cr_assert_eq(memcmp(from_key, want, 20), 0);
	cr_assert_eq(memcmp(from_pub, want, 20), 0);
	cr_assert_neq(memcmp(from_other, want, 20), 0);
	X509_free(x);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

Test(key_id, rsa_key_id_is_sha1_of_the_bit_string_from_cert_and_key)
{
	check_key_id("rsa:2048");
}

Test(key_id, ec_key_id_is_sha1_of_the_bit_string_from_cert_and_key)
{
	check_key_id("ec:p256");
	check_key_id("ec:p521");
}

Test(key_id, null_key_is_an_error)
{
	unsigned char id[20];
	custody_err err;

	cr_assert_eq(custody_pkey_key_id(NULL, id, &err), CUSTODY_EFAIL);
	cr_assert_eq(strncmp(err.msg, "cannot compute the key id", 25), 0);
	cr_assert_eq(custody_cert_key_id(NULL, id, &err), CUSTODY_EFAIL);
}

/* ------------------------------------------------- a record against its DER */

/* The check reads the key id from the DER's structure: it must be the one
 * custody_cert_key_id computes, for every kind of key and a v1 certificate
 * (no version field) too. */
Test(record_check, its_key_id_is_custody_cert_key_id_for_every_kind_of_key)
{
	static const char *const specs[] = {"rsa:2048", "ec:p256", "ec:p384", "ec:p521",
					    "ed25519"};
	custody_cert_record rec;
	custody_err err;
	X509 *got;

	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		for (int v1 = 0; v1 < 2; v1++) {
			EVP_PKEY *key = testcert_key(specs[i]);
			X509 *x = self_signed(key, "k.example");

			if (v1) {
				cr_assert_eq(X509_set_version(x, X509_VERSION_1), 1);
				cr_assert_gt(X509_sign(x, key, EVP_PKEY_get_id(key) == EVP_PKEY_ED25519
							       ? NULL : EVP_sha256()), 0);
			}
			cr_assert_eq(custody_cert_record_from_x509(x, &rec, NULL), CUSTODY_OK);
			cr_assert_eq(custody_cert_record_check(&rec, NULL, &err), CUSTODY_OK,
				     "%s%s: %s", specs[i], v1 ? " v1" : "", err.msg);
			cr_assert_eq(custody_cert_record_check(&rec, &got, &err), CUSTODY_OK);
			X509_free(got);
			custody_cert_record_clear(&rec);
			X509_free(x);
			EVP_PKEY_free(key);
		}
	}
}

Test(record_check, a_record_matches_its_certificate_or_names_what_differs)
{
	EVP_PKEY *key = testcert_key("ec:p256"), *other_key = testcert_key("rsa:2048");
	X509 *x = self_signed(key, "r.example"), *other = self_signed(other_key, "o.example");
	X509 *got = NULL;
	custody_cert_record rec, rec_other;
	custody_err err;
	char want[512];

	cr_assert_eq(custody_cert_record_from_x509(x, &rec, NULL), CUSTODY_OK);
	cr_assert_eq(custody_cert_record_from_x509(other, &rec_other, NULL), CUSTODY_OK);
	cr_assert_eq(custody_cert_record_check(&rec, &got, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_not_null(got);
	cr_assert_eq(X509_cmp(got, x), 0);
	X509_free(got);
	cr_assert_eq(custody_cert_record_check(&rec, NULL, &err), CUSTODY_OK);

	/* Another certificate's key id: the store was changed. */
	snprintf(want, sizeof(want), "the store's record of certificate %s: its key id "
		 "%s is not that of its certificate (%s)", rec.thumbprint, rec_other.key_id,
		 rec.key_id);
	memcpy(rec.key_id, rec_other.key_id, sizeof(rec.key_id));
	got = (X509 *)1;
	assert_error(custody_cert_record_check(&rec, &got, &err), &err, CUSTODY_EFAIL, want);
	cr_assert_null(got);
	cr_assert_str_eq(err.hint, "the store was changed outside custody: restore it "
			 "from a backup, and find out who changed it");
	/* No key id at all. */
	rec.key_id[0] = '\0';
	cr_assert_eq(custody_cert_record_check(&rec, NULL, &err), CUSTODY_EFAIL);
	cr_assert_not_null(strstr(err.msg, "its key id (none) is not that of its certificate"),
			   "%s", err.msg);
	memcpy(rec.key_id, rec_other.key_id, sizeof(rec.key_id));
	cr_assert_eq(custody_cert_der_check(rec.der, rec.der_len, rec.thumbprint,
					    rec.key_id, NULL, NULL), CUSTODY_EFAIL);

	/* Another certificate's DER under this thumbprint (key id and all). */
	custody_cert_record_clear(&rec);
	cr_assert_eq(custody_cert_record_from_x509(x, &rec, NULL), CUSTODY_OK);
	free(rec.der);
	rec.der = malloc(rec_other.der_len);
	memcpy(rec.der, rec_other.der, rec_other.der_len);
	rec.der_len = rec_other.der_len;
	memcpy(rec.key_id, rec_other.key_id, sizeof(rec.key_id));
	snprintf(want, sizeof(want), "the store's record of certificate %s: its thumbprint "
		 "%s is not that of its certificate (%s)", rec.thumbprint, rec.thumbprint,
		 rec_other.thumbprint);
	assert_error(custody_cert_record_check(&rec, NULL, &err), &err, CUSTODY_EFAIL, want);

	/* A DER that does not parse, or has bytes after it. */
	rec.der_len--;
	snprintf(want, sizeof(want), "the store's record of certificate %s: its "
		 "certificate is not one DER X.509 certificate", rec.thumbprint);
	assert_error(custody_cert_record_check(&rec, NULL, &err), &err, CUSTODY_EFAIL, want);
	rec.der_len = 0;
	assert_error(custody_cert_record_check(&rec, NULL, &err), &err, CUSTODY_EFAIL, want);

	custody_cert_record_clear(&rec);
	custody_cert_record_clear(&rec_other);
	X509_free(x);
	X509_free(other);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other_key);
}

/* ---------------------------------------------------------------- PKCS#12 */

Test(bundle_p12, with_password_gives_key_leaf_and_chain)
{
	struct chain c;
	STACK_OF(X509) *ca = sk_X509_new_null();
	unsigned char *p12;
	size_t len;
	custody_bundle b;
	custody_err err;

	make_chain(&c);
	sk_X509_push(ca, c.ca);
	p12 = testcert_pkcs12(c.key, c.leaf, ca, "s3cret pass", &len);
	cr_assert_eq(custody_bundle_parse(p12, len, "s3cret pass", &b, &err),
		     CUSTODY_OK, "%s", err.msg);
	assert_bundle(&b, c.key, c.leaf, 1);
	cr_assert_eq(X509_cmp(sk_X509_value(b.chain, 0), c.ca), 0);
	custody_bundle_free(&b);
	assert_empty(&b);
	free(p12);
	sk_X509_free(ca);
	free_chain(&c);
}

Test(bundle_p12, without_password_opens_with_null_and_empty)
{
	EVP_PKEY *key = testcert_key("rsa:2048");
	X509 *x = self_signed(key, "np.example");
	unsigned char *p12;
	size_t len;
	custody_bundle b;
	custody_err err;

	p12 = testcert_pkcs12(key, x, NULL, NULL, &len);
	cr_assert_eq(custody_bundle_parse(p12, len, NULL, &b, &err), CUSTODY_OK,
		     "%s", err.msg);
	assert_bundle(&b, key, x, 0);
	custody_bundle_free(&b);
	cr_assert_eq(custody_bundle_parse(p12, len, "", &b, &err), CUSTODY_OK,
		     "%s", err.msg);
	assert_bundle(&b, key, x, 0);
	custody_bundle_free(&b);
	free(p12);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(bundle_p12, wrong_password_is_epassword_with_hint)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "wp.example");
	unsigned char *p12;
	size_t len;
	custody_bundle b;
	custody_err err;

	p12 = testcert_pkcs12(key, x, NULL, "right", &len);
	assert_error(custody_bundle_parse(p12, len, "wrong", &b, &err), &err,
		     CUSTODY_EPASSWORD, "wrong password for the file");
	/* A password was given: the hint is not to give one. */
	cr_assert_str_eq(err.hint, "check the password the source gives (a "
			 "password file's trailing newline is not part of it)");
	assert_empty(&b);
	assert_error(custody_bundle_parse(p12, len, "", &b, &err), &err,
		     CUSTODY_EPASSWORD, "wrong password for the file");
	free(p12);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(bundle_p12, missing_password_is_epassword)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "mp.example");
	unsigned char *p12;
	size_t len;
	custody_bundle b;
	custody_err err;

	p12 = testcert_pkcs12(key, x, NULL, "right", &len);
	assert_error(custody_bundle_parse(p12, len, NULL, &b, &err), &err,
		     CUSTODY_EPASSWORD,
		     "missing password for the file: it is encrypted");
	cr_assert_str_eq(err.hint, "give the password with --password-source "
			 "(file:, env:, fd:, prompt)");
	assert_empty(&b);
	free(p12);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(bundle_p12, without_mac_the_password_is_checked_by_decryption)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "nomac.example");
	PKCS12 *p12 = PKCS12_create("right", "nomac", key, x, NULL,
				    NID_aes_256_cbc, NID_aes_256_cbc, 0, -1, 0);
	unsigned char *der = NULL;
	int len;
	custody_bundle b;
	custody_err err;

	cr_assert_not_null(p12);
	cr_assert_eq(PKCS12_mac_present(p12), 0);
	len = i2d_PKCS12(p12, &der);
	cr_assert_gt(len, 0);
	cr_assert_eq(custody_bundle_parse(der, (size_t)len, "right", &b, &err),
		     CUSTODY_OK, "%s", err.msg);
	assert_bundle(&b, key, x, 0);
	custody_bundle_free(&b);
	assert_error(custody_bundle_parse(der, (size_t)len, "wrong", &b, &err),
		     &err, CUSTODY_EPASSWORD, "wrong password for the file");
	assert_error(custody_bundle_parse(der, (size_t)len, NULL, &b, &err),
		     &err, CUSTODY_EPASSWORD,
		     "missing password for the file: it is encrypted");
	OPENSSL_free(der);
	PKCS12_free(p12);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(bundle_p12, every_truncation_is_an_error)
{
	EVP_PKEY *key = testcert_key("rsa:2048");
	X509 *x = self_signed(key, "cut.example");
	unsigned char *p12, *copy;
	size_t len, cut;
	custody_bundle b;
	custody_err err;
	int r;

	p12 = testcert_pkcs12(key, x, NULL, "pw", &len);
	for (cut = 0; cut < len; cut++) {
		/* A fresh buffer of exactly cut bytes, so that reading past
		 * it would be caught by valgrind or ASan. */
		copy = malloc(cut > 0 ? cut : 1);
		memcpy(copy, p12, cut);
		err.msg[0] = '\0';
		r = custody_bundle_parse(copy, cut, "pw", &b, &err);
		cr_assert_eq(r, CUSTODY_EFAIL, "cut at %zu of %zu: %d %s", cut,
			     len, r, err.msg);
		cr_assert_neq(err.msg[0], '\0');
		assert_empty(&b);
		free(copy);
	}
	free(p12);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(bundle_p12, truncation_is_named)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "cut.example");
	unsigned char *p12;
	size_t len;
	custody_bundle b;
	custody_err err;
	char want[128];

	p12 = testcert_pkcs12(key, x, NULL, "pw", &len);
	snprintf(want, sizeof(want),
		 "cannot read the file: it is truncated (%zu of %zu bytes)",
		 len / 2, len);
	assert_error(custody_bundle_parse(p12, len / 2, "pw", &b, &err), &err,
		     CUSTODY_EFAIL, want);
	free(p12);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(bundle_p12, a_flipped_byte_is_never_accepted_silently)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "flip.example");
	unsigned char *p12;
	size_t len, i;
	custody_bundle b;
	custody_err err;
	int r, accepted = 0;

	p12 = testcert_pkcs12(key, x, NULL, "pw", &len);
	for (i = 0; i < len; i++) {
		p12[i] ^= 0x01;
		r = custody_bundle_parse(p12, len, "pw", &b, &err);
		p12[i] ^= 0x01;
		if (r == CUSTODY_OK) {
			/* No check covers two bytes: the version number
			 * and the NULL parameters of the MAC's digest
			 * algorithm.  The contents must come out intact. */
			accepted++;
			assert_bundle(&b, key, x, 0);
			custody_bundle_free(&b);
			continue;
		}
		cr_assert(r == CUSTODY_EFAIL || r == CUSTODY_EPASSWORD,
			  "flip at %zu: %d %s", i, r, err.msg);
		cr_assert_neq(err.msg[0], '\0');
		assert_empty(&b);
	}
	cr_assert_leq(accepted, 2, "%d flips accepted", accepted);
	free(p12);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(bundle_p12, a_damaged_mac_is_corruption_not_a_wrong_password)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "mac.example");
	unsigned char *p12, *at = NULL;
	const unsigned char *p;
	const ASN1_OCTET_STRING *mac = NULL;
	PKCS12 *parsed;
	size_t len, i;
	custody_bundle b;
	custody_err err;

	p12 = testcert_pkcs12(key, x, NULL, "pw", &len);
	p = p12;
	parsed = d2i_PKCS12(NULL, &p, (long)len);
	cr_assert_not_null(parsed);
	PKCS12_get0_mac(&mac, NULL, NULL, NULL, parsed);
	cr_assert_not_null(mac);
	for (i = 0; i + (size_t)ASN1_STRING_length(mac) <= len; i++)
		if (memcmp(p12 + i, ASN1_STRING_get0_data(mac),
			   (size_t)ASN1_STRING_length(mac)) == 0)
			at = p12 + i;
	cr_assert_not_null(at);
	at[3] ^= 0x40;
	assert_error(custody_bundle_parse(p12, len, "pw", &b, &err), &err,
		     CUSTODY_EFAIL, "cannot read the file: it is corrupted (its "
		     "integrity check fails)");
	assert_empty(&b);
	/* Under a wrong password the same file is a wrong password. */
	assert_error(custody_bundle_parse(p12, len, "wrong", &b, &err), &err,
		     CUSTODY_EPASSWORD, "wrong password for the file");
	PKCS12_free(parsed);
	free(p12);
	X509_free(x);
	EVP_PKEY_free(key);
}

/* What older Windows servers export: RC2-40 for the certificates, 3DES for
 * the key, a SHA-1 MAC; made in a library context of the test's own (NULL
 * without the legacy provider: the test is skipped). */
static unsigned char *
legacy_p12(EVP_PKEY *key, X509 *x, STACK_OF(X509) *chain, int cert_nid,
	   size_t *len)
{
	OSSL_LIB_CTX *lc = OSSL_LIB_CTX_new();
	OSSL_PROVIDER *legacy = OSSL_PROVIDER_load(lc, "legacy");
	OSSL_PROVIDER *deflt = OSSL_PROVIDER_load(lc, "default");
	unsigned char *der = NULL;
	PKCS12 *p12;
	int n;

	if (legacy == NULL)
		cr_skip_test("the OpenSSL legacy provider is not installed");
	p12 = PKCS12_create_ex("pw", "legacy", key, x, chain,
			       NID_pbe_WithSHA1And3_Key_TripleDES_CBC, cert_nid,
			       2048, -1, 0, lc, NULL);
	cr_assert_not_null(p12);
	cr_assert_eq(PKCS12_set_mac(p12, "pw", -1, NULL, 0, 2048, EVP_sha1()),
		     1);
	n = i2d_PKCS12(p12, &der);
	cr_assert_gt(n, 0);
	*len = (size_t)n;
	PKCS12_free(p12);
	OSSL_PROVIDER_unload(deflt);
	OSSL_PROVIDER_unload(legacy);
	OSSL_LIB_CTX_free(lc);
	return der;
}

Test(bundle_p12, legacy_rc2_encryption_is_read_in_a_private_context)
{
	struct chain c;
	STACK_OF(X509) *chain = sk_X509_new_null();
	unsigned char *der;
	size_t len;
	custody_bundle b;
	custody_err err;

	make_chain(&c);
	cr_assert_gt(sk_X509_push(chain, c.ca), 0);
	der = legacy_p12(c.key, c.leaf, chain, NID_pbe_WithSHA1And40BitRC2_CBC,
			 &len);
	cr_assert_eq(custody_bundle_parse(der, len, "pw", &b, &err),
		     CUSTODY_OK, "%s", err.msg);
	assert_bundle(&b, c.key, c.leaf, 1);
	cr_assert_str_eq(b.legacy, "RC2-40 / 3DES, SHA-1 MAC");
	custody_bundle_free(&b);
	cr_assert_eq(b.legacy[0], '\0');
	/* The default context never got the legacy provider. */
	cr_assert_eq(OSSL_PROVIDER_available(NULL, "legacy"), 0);
	/* The password is checked as for any file. */
	assert_error(custody_bundle_parse(der, len, "wrong", &b, &err), &err,
		     CUSTODY_EPASSWORD, "wrong password for the file");
	assert_empty(&b);
	assert_error(custody_bundle_parse(der, len, NULL, &b, &err), &err,
		     CUSTODY_EPASSWORD,
		     "missing password for the file: it is encrypted");
	assert_empty(&b);
	OPENSSL_free(der);
	/* 3DES alone (newer Windows exports) needs no legacy provider. */
	der = legacy_p12(c.key, c.leaf, NULL,
			 NID_pbe_WithSHA1And3_Key_TripleDES_CBC, &len);
	cr_assert_eq(custody_bundle_parse(der, len, "pw", &b, &err),
		     CUSTODY_OK, "%s", err.msg);
	assert_bundle(&b, c.key, c.leaf, 0);
	cr_assert_str_eq(b.legacy, "");
	custody_bundle_free(&b);
	OPENSSL_free(der);
	sk_X509_free(chain);
	free_chain(&c);
}

Test(bundle_p12, legacy_encryption_without_the_legacy_provider_is_named)
{
	EVP_PKEY *key = testcert_key("rsa:2048");
	X509 *x = self_signed(key, "rc2.example");
	unsigned char *der;
	size_t len;
	custody_bundle b;
	custody_err err;

	der = legacy_p12(key, x, NULL, NID_pbe_WithSHA1And40BitRC2_CBC, &len);
	/* Where OpenSSL looks for provider modules: nowhere. */
	cr_assert_eq(setenv("OPENSSL_MODULES", "/nonexistent", 1), 0);
	cr_assert_eq(custody_bundle_parse(der, len, "pw", &b, &err),
		     CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "cannot decrypt the file: it is protected "
			 "with legacy encryption (RC2-40 / 3DES) and "
			 "OpenSSL's legacy provider cannot be loaded "
			 "(/nonexistent/legacy.so: cannot open shared object "
			 "file: No such file or directory)");
	cr_assert_str_eq(err.hint, "install OpenSSL's legacy provider "
			 "(legacy.so in OPENSSL_MODULES or `openssl version "
			 "-m`), or re-export the file with AES-256-CBC and "
			 "PBKDF2");
	assert_empty(&b);
	/* A wrong password is still a wrong password. */
	assert_error(custody_bundle_parse(der, len, "wrong", &b, &err), &err,
		     CUSTODY_EPASSWORD, "wrong password for the file");
	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(key);
}

/* ---------------------------------------------------------------- iterations */

/* Gives alg the PBES2 / PBKDF2 parameters with count (nothing is derived). */
static void
set_pbkdf2(X509_ALGOR *alg, int count)
{
	X509_ALGOR *n = PKCS5_pbe2_set_iv(EVP_aes_256_cbc(), count, NULL, 0,
					  NULL, NID_hmacWithSHA256);

	cr_assert_not_null(n);
	cr_assert_eq(X509_ALGOR_copy(alg, n), 1);
	X509_ALGOR_free(n);
}

/* A PKCS#12 of key and x (AES-256, two iterations everywhere, a MAC that
 * verifies under "pw") whose counts are then set without spending them:
 * the MAC's to mac, the encrypted safe's to safe, the shrouded key's to
 * skey (0: left at two), with the encrypted safe there 1 + extra times. */
static unsigned char *
p12_with_counts(EVP_PKEY *key, X509 *x, int mac, int safe, int skey,
		int extra, size_t *len)
{
	PKCS12 *p12 = PKCS12_create_ex("pw", "counts", key, x, NULL,
				       NID_aes_256_cbc, NID_aes_256_cbc, 2, -1,
				       0, NULL, NULL);
	STACK_OF(PKCS7) *safes;
	STACK_OF(PKCS12_SAFEBAG) *bags;
	const ASN1_INTEGER *iter = NULL;
	X509_ALGOR *alg;
	PKCS7 *p7, *enc = NULL;
	unsigned char *der = NULL;
	int i, n;

	cr_assert_not_null(p12);
	safes = PKCS12_unpack_authsafes(p12);
	cr_assert_not_null(safes);
	for (i = 0; i < sk_PKCS7_num(safes); i++) {
		p7 = sk_PKCS7_value(safes, i);
		if (PKCS7_type_is_encrypted(p7)) {
			if (safe > 0)
				set_pbkdf2(p7->d.encrypted->enc_data->algorithm,
					   safe);
			enc = p7;
		} else if (skey > 0) {
			bags = PKCS12_unpack_p7data(p7);
			cr_assert_not_null(bags);
			X509_SIG_getm((X509_SIG *)PKCS12_SAFEBAG_get0_pkcs8(
					      sk_PKCS12_SAFEBAG_value(bags, 0)),
				      &alg, NULL);
			set_pbkdf2(alg, skey);
			PKCS7_free(p7);
			p7 = PKCS12_pack_p7data(bags);
			cr_assert_not_null(p7);
			sk_PKCS7_set(safes, i, p7);
			sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
		}
	}
	cr_assert_not_null(enc);
	for (i = 0; i < extra; i++)
		cr_assert_gt(sk_PKCS7_push(safes, PKCS7_dup(enc)), 0);
	cr_assert_eq(PKCS12_pack_authsafes(p12, safes), 1);
	sk_PKCS7_pop_free(safes, PKCS7_free);
	cr_assert_eq(PKCS12_set_mac(p12, "pw", -1, NULL, 0, 2, NULL), 1);
	if (mac > 0) {
		PKCS12_get0_mac(NULL, NULL, NULL, &iter, p12);
		cr_assert_not_null(iter);
		cr_assert_eq(ASN1_INTEGER_set((ASN1_INTEGER *)iter, mac), 1);
	}
	n = i2d_PKCS12(p12, &der);
	cr_assert_gt(n, 0);
	PKCS12_free(p12);
	*len = (size_t)n;
	return der;
}

/* Parses p12 under "pw" (and under no password): refused with msg, in
 * well under a second (a count of 50,000,000 would take OpenSSL half a
 * minute or more). */
static void
assert_refused_at_once(unsigned char *p12, size_t len, const char *msg)
{
	custody_bundle b;
	custody_err err;

	assert_error(custody_bundle_parse(p12, len, "pw", &b, &err), &err,
		     CUSTODY_EFAIL, msg);
	cr_assert_str_eq(err.hint, "no exporter needs that many (Windows "
			 "uses 2000, OpenSSL 2048): re-export the file");
	assert_empty(&b);
	assert_error(custody_bundle_parse(p12, len, NULL, &b, &err), &err,
		     CUSTODY_EFAIL, msg);
	assert_empty(&b);
	OPENSSL_free(p12);
}

Test(bundle_p12, iteration_counts_over_the_limit_are_refused_before_use)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "iter.example");
	unsigned char *p12;
	size_t len;
	custody_bundle b;
	custody_err err;

	cr_assert_eq(CUSTODY_BUNDLE_MAX_ITER, 10000000);
	/* The file as made opens: the edits alone are refused. */
	p12 = p12_with_counts(key, x, 0, 0, 0, 0, &len);
	cr_assert_eq(custody_bundle_parse(p12, len, "pw", &b, &err),
		     CUSTODY_OK, "%s", err.msg);
	assert_bundle(&b, key, x, 0);
	custody_bundle_free(&b);
	OPENSSL_free(p12);

	p12 = p12_with_counts(key, x, 50000000, 0, 0, 0, &len);
	assert_refused_at_once(p12, len, "cannot read the file: PKCS#12 MAC "
			       "iteration count 50000000 is over the limit "
			       "10000000");
	p12 = p12_with_counts(key, x, 10000001, 0, 0, 0, &len);
	assert_refused_at_once(p12, len, "cannot read the file: PKCS#12 MAC "
			       "iteration count 10000001 is over the limit "
			       "10000000");
	p12 = p12_with_counts(key, x, 0, 50000000, 0, 0, &len);
	assert_refused_at_once(p12, len, "cannot read the file: PKCS#12 "
			       "encryption iteration count 50000000 is over "
			       "the limit 10000000");
	p12 = p12_with_counts(key, x, 0, 0, 2147483647, 0, &len);
	assert_refused_at_once(p12, len, "cannot read the file: PKCS#12 "
			       "private key encryption iteration count "
			       "2147483647 is over the limit 10000000");
	/* Counts under the limit that add up to too much: a MAC and four
	 * safes of 9,000,000 each, and the key's 2. */
	p12 = p12_with_counts(key, x, 9000000, 9000000, 0, 3, &len);
	assert_refused_at_once(p12, len, "cannot read the file: its iteration "
			       "counts add up to 36000002, over the limit "
			       "30000000");
	X509_free(x);
	EVP_PKEY_free(key);
}

/* An encrypted PKCS#8 PEM key whose encryption is then set to alg. */
static char *
pem_with_pbe(EVP_PKEY *key, X509 *x, X509_ALGOR *alg)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
	X509_SIG *sig;
	X509_ALGOR *a;
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	cr_assert_not_null(p8);
	sig = PKCS8_encrypt(-1, EVP_aes_256_cbc(), "pw", 2, NULL, 0, 2, p8);
	cr_assert_not_null(sig);
	X509_SIG_getm(sig, &a, NULL);
	cr_assert_eq(X509_ALGOR_copy(a, alg), 1);
	cr_assert_eq(PEM_write_bio_X509(bio, x), 1);
	cr_assert_eq(PEM_write_bio_PKCS8(bio, sig), 1);
	n = BIO_get_mem_data(bio, &data);
	out = malloc((size_t)n + 1);
	cr_assert_not_null(out);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	BIO_free(bio);
	X509_SIG_free(sig);
	PKCS8_PRIV_KEY_INFO_free(p8);
	X509_ALGOR_free(alg);
	return out;
}

Test(bundle_pem, pkcs8_iteration_counts_over_the_limit_are_refused)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "iter.example");
	char *pem;
	custody_bundle b;
	custody_err err;

	pem = pem_with_pbe(key, x, PKCS5_pbe2_set_iv(EVP_aes_256_cbc(),
						      50000000, NULL, 0, NULL,
						      NID_hmacWithSHA256));
	assert_error(parse_text(pem, "pw", &b, &err), &err, CUSTODY_EFAIL,
		     "cannot read the file: PKCS#8 private key encryption "
		     "iteration count 50000000 is over the limit 10000000");
	assert_empty(&b);
	free(pem);
	/* scrypt: N=16384, r=8 fit OpenSSL's 32 MiB; p=100 would make it
	 * derive 100 times over. */
	pem = pem_with_pbe(key, x, PKCS5_pbe2_set_scrypt(EVP_aes_256_cbc(),
							  NULL, 0, NULL, 16384,
							  8, 100));
	assert_error(parse_text(pem, "pw", &b, &err), &err, CUSTODY_EFAIL,
		     "cannot read the file: PKCS#8 private key encryption "
		     "scrypt cost (N*r*p) 13107200 is over the limit 10000000");
	assert_empty(&b);
	free(pem);
	X509_free(x);
	EVP_PKEY_free(key);
}

/* ---------------------------------------------------------------- PEM */

Test(bundle_pem, certificate_and_plain_pkcs8_key)
{
	EVP_PKEY *key = testcert_key("rsa:2048");
	X509 *x = self_signed(key, "pem.example");
	char *pem = testcert_pem(key, x, NULL);
	custody_bundle b;
	custody_err err;

	cr_assert_eq(parse_text(pem, NULL, &b, &err), CUSTODY_OK, "%s", err.msg);
	assert_bundle(&b, key, x, 0);
	custody_bundle_free(&b);
	/* A password given for a plain key is not needed and harmless. */
	cr_assert_eq(parse_text(pem, "unused", &b, &err), CUSTODY_OK);
	assert_bundle(&b, key, x, 0);
	custody_bundle_free(&b);
	OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(bundle_pem, encrypted_pkcs8_right_wrong_and_missing_password)
{
	EVP_PKEY *key = testcert_key("ec:p384");
	X509 *x = self_signed(key, "enc.example");
	char *pem = testcert_pem(key, x, "pem pass");
	custody_bundle b;
	custody_err err;

	cr_assert_eq(parse_text(pem, "pem pass", &b, &err), CUSTODY_OK, "%s",
		     err.msg);
	assert_bundle(&b, key, x, 0);
	custody_bundle_free(&b);
	assert_error(parse_text(pem, "not it", &b, &err), &err,
		     CUSTODY_EPASSWORD, "wrong password for the file");
	assert_empty(&b);
	assert_error(parse_text(pem, NULL, &b, &err), &err, CUSTODY_EPASSWORD,
		     "missing password for the file: it is encrypted");
	cr_assert_str_eq(err.hint, "give the password with --password-source "
			 "(file:, env:, fd:, prompt)");
	assert_empty(&b);
	free(pem);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(bundle_pem, traditional_keys_plain_and_encrypted)
{
	EVP_PKEY *rsa = testcert_key("rsa:2048"), *ec = testcert_key("ec:p256");
	X509 *xr = self_signed(rsa, "rsa.example"), *xe = self_signed(ec, "ec.example");
	char *cr = pem_cert(xr), *ce = pem_cert(xe);
	char *kr = pem_traditional_key(rsa, NULL);
	char *ke = pem_traditional_key(ec, "trad pass");
	char *a = concat(cr, kr, NULL), *e = concat(ke, ce, NULL);
	custody_bundle b;
	custody_err err;

	cr_assert_neq(strstr(kr, "-----BEGIN RSA PRIVATE KEY-----"), NULL);
	cr_assert_neq(strstr(ke, "Proc-Type: 4,ENCRYPTED"), NULL);
	cr_assert_eq(parse_text(a, NULL, &b, &err), CUSTODY_OK, "%s", err.msg);
	assert_bundle(&b, rsa, xr, 0);
	custody_bundle_free(&b);
	cr_assert_eq(parse_text(e, "trad pass", &b, &err), CUSTODY_OK, "%s",
		     err.msg);
	assert_bundle(&b, ec, xe, 0);
	custody_bundle_free(&b);
	assert_error(parse_text(e, "bad pass", &b, &err), &err,
		     CUSTODY_EPASSWORD, "wrong password for the file");
	assert_error(parse_text(e, NULL, &b, &err), &err, CUSTODY_EPASSWORD,
		     "missing password for the file: it is encrypted");
	free(a);
	free(e);
	free(cr);
	free(ce);
	free(kr);
	free(ke);
	X509_free(xr);
	X509_free(xe);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
}

Test(bundle_pem, chain_in_any_order_gives_the_leaf_of_the_key)
{
	struct chain c;
	char *leaf, *ca, *key, *orders[3];
	custody_bundle b;
	custody_err err;

	make_chain(&c);
	leaf = pem_cert(c.leaf);
	ca = pem_cert(c.ca);
	key = pem_key(c.key, NULL);
	orders[0] = concat(ca, leaf, key);
	orders[1] = concat(key, ca, leaf);
	orders[2] = concat(leaf, key, ca);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(parse_text(orders[i], NULL, &b, &err), CUSTODY_OK,
			     "order %d: %s", i, err.msg);
		assert_bundle(&b, c.key, c.leaf, 1);
		cr_assert_eq(X509_cmp(sk_X509_value(b.chain, 0), c.ca), 0);
		custody_bundle_free(&b);
		free(orders[i]);
	}
	free(leaf);
	free(ca);
	free(key);
	free_chain(&c);
}

Test(bundle_pem, the_same_certificate_twice_is_one)
{
	struct chain c;
	char *leaf, *ca, *key, *text, *twice;
	custody_bundle b;

	make_chain(&c);
	leaf = pem_cert(c.leaf);
	ca = pem_cert(c.ca);
	key = pem_key(c.key, NULL);
	text = concat(leaf, ca, leaf);
	twice = concat(text, ca, key);
	cr_assert_eq(parse_text(twice, NULL, &b, NULL), CUSTODY_OK);
	assert_bundle(&b, c.key, c.leaf, 1);
	custody_bundle_free(&b);
	free(text);
	free(twice);
	free(leaf);
	free(ca);
	free(key);
	free_chain(&c);
}

Test(bundle_pem, text_around_blocks_and_other_blocks_are_ignored)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "bag.example");
	char *cert = pem_cert(x), *k = pem_key(key, NULL), *text;
	custody_bundle b;
	custody_err err;
	const char *params = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n"
			     "-----END EC PARAMETERS-----\n";
	char head[256];

	snprintf(head, sizeof(head), "Bag Attributes\n    friendlyName: x\n%s",
		 params);
	text = concat(head, cert, k);
	cr_assert_eq(parse_text(text, NULL, &b, &err), CUSTODY_OK, "%s", err.msg);
	assert_bundle(&b, key, x, 0);
	custody_bundle_free(&b);
	free(text);
	free(cert);
	free(k);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(bundle_pem, certificate_alone)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "alone.example");
	char *pem = pem_cert(x);
	custody_bundle b;
	custody_err err;

	cr_assert_eq(parse_text(pem, NULL, &b, &err), CUSTODY_OK, "%s", err.msg);
	assert_bundle(&b, NULL, x, 0);
	custody_bundle_free(&b);
	free(pem);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(bundle_pem, several_certificates_without_a_key_is_an_error)
{
	struct chain c;
	char *leaf, *ca, *text;
	custody_bundle b;
	custody_err err;

	make_chain(&c);
	leaf = pem_cert(c.leaf);
	ca = pem_cert(c.ca);
	text = concat(leaf, ca, NULL);
	assert_error(parse_text(text, NULL, &b, &err), &err, CUSTODY_EFAIL,
		     "cannot pick a certificate in the file: it holds 2 "
		     "certificates and no private key");
	assert_empty(&b);
	free(text);
	free(leaf);
	free(ca);
	free_chain(&c);
}

Test(bundle_pem, key_not_matching_the_certificate)
{
	EVP_PKEY *key = testcert_key("ec:p256"), *other = testcert_key("ec:p256");
	X509 *x = self_signed(key, "mismatch.example");
	char *pem = testcert_pem(other, x, NULL);
	custody_bundle b;
	custody_err err;

	assert_error(parse_text(pem, NULL, &b, &err), &err, CUSTODY_EFAIL,
		     "cannot use the file: the private key does not match the "
		     "certificate");
	assert_empty(&b);
	free(pem);
	X509_free(x);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

Test(bundle_pem, two_private_keys)
{
	EVP_PKEY *key = testcert_key("ec:p256"), *other = testcert_key("ec:p256");
	X509 *x = self_signed(key, "two.example");
	char *pem = testcert_pem(key, x, NULL), *k2 = pem_key(other, NULL);
	char *text = concat(pem, k2, NULL);
	custody_bundle b;
	custody_err err;

	assert_error(parse_text(text, NULL, &b, &err), &err, CUSTODY_EFAIL,
		     "cannot read the file: it holds 2 private keys (import one "
		     "key at a time)");
	assert_empty(&b);
	free(text);
	free(pem);
	free(k2);
	X509_free(x);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

Test(bundle_pem, key_without_certificate)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	char *k = pem_key(key, NULL);
	custody_bundle b;
	custody_err err;

	assert_error(parse_text(k, NULL, &b, &err), &err, CUSTODY_EFAIL,
		     "cannot read the file: it holds no certificate");
	assert_empty(&b);
	free(k);
	EVP_PKEY_free(key);
}

Test(bundle_pem, broken_blocks)
{
	custody_bundle b;
	custody_err err;
	static const char *const broken[] = {
		"-----BEGIN CERTIFICATE-----\nnot*base64!\n-----END CERTIFICATE-----\n",
		"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"-----BEGIN CERTIFICATE-----\nMIIB\n",
		"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"-----BEGIN",
		"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
	};

	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		err.msg[0] = '\0';
		cr_assert_eq(parse_text(broken[i], NULL, &b, &err), CUSTODY_EFAIL,
			     "case %zu", i);
		cr_assert_eq(strncmp(err.msg, "cannot read ", 12), 0,
			     "case %zu: %s", i, err.msg);
		assert_empty(&b);
	}
}

Test(bundle_pem, every_truncation_of_an_encrypted_pem_is_an_error)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "cutpem.example");
	char *pem = testcert_pem(key, x, "pw");
	size_t len = strlen(pem), cut, cert_end;
	custody_bundle b;
	custody_err err;
	int r;

	cert_end = (size_t)(strstr(pem, "-----END CERTIFICATE-----") - pem) + 25;
	for (cut = 0; cut < len; cut++) {
		unsigned char *copy = malloc(cut > 0 ? cut : 1);

		memcpy(copy, pem, cut);
		r = custody_bundle_parse(copy, cut, "pw", &b, &err);
		free(copy);
		if (cut == cert_end || cut == cert_end + 1) {
			/* Exactly the certificate: a certificate alone. */
			cr_assert_eq(r, CUSTODY_OK, "cut at %zu: %s", cut,
				     err.msg);
			assert_bundle(&b, NULL, x, 0);
			custody_bundle_free(&b);
		} else if (cut == len - 1) {
			/* Only the last newline is missing. */
			cr_assert_eq(r, CUSTODY_OK, "cut at %zu: %s", cut,
				     err.msg);
			assert_bundle(&b, key, x, 0);
			custody_bundle_free(&b);
		} else {
			cr_assert_neq(r, CUSTODY_OK, "cut at %zu of %zu", cut,
				      len);
			assert_empty(&b);
		}
	}
	free(pem);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(bundle_pem, a_begin_line_cut_short_is_an_error)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "cutbegin.example");
	char *cert = pem_cert(x);
	char *text = concat(cert, "-----BEGIN ENCRYPTED PRI", NULL);
	char *text2 = concat(cert, "-----BE", NULL);
	custody_bundle b;
	custody_err err;

	assert_error(parse_text(text, "pw", &b, &err), &err, CUSTODY_EFAIL,
		     "cannot read the file: broken PEM block: a BEGIN line is "
		     "cut short");
	assert_error(parse_text(text2, "pw", &b, &err), &err, CUSTODY_EFAIL,
		     "cannot read the file: broken PEM block: a BEGIN line is "
		     "cut short");
	assert_empty(&b);
	free(text);
	free(text2);
	free(cert);
	X509_free(x);
	EVP_PKEY_free(key);
}

/* ---------------------------------------------------------------- DER, junk */

Test(bundle_der, certificate_alone)
{
	EVP_PKEY *key = testcert_key("rsa:2048");
	X509 *x = self_signed(key, "der.example");
	unsigned char *der;
	size_t len;
	custody_bundle b;
	custody_err err;

	der = der_of(x, &len);
	cr_assert_eq(custody_bundle_parse(der, len, NULL, &b, &err), CUSTODY_OK,
		     "%s", err.msg);
	assert_bundle(&b, NULL, x, 0);
	custody_bundle_free(&b);
	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(bundle_junk, garbage_and_empty_input)
{
	unsigned char junk[512];
	custody_bundle b;
	custody_err err;

	srand(7);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(rand() & 0xff);
	junk[0] = 0x04;	/* not a SEQUENCE */
	assert_error(custody_bundle_parse(junk, sizeof(junk), NULL, &b, &err),
		     &err, CUSTODY_EFAIL,
		     "cannot read the file: not a PKCS#12, PEM or DER "
		     "certificate file");
	assert_empty(&b);
	assert_error(parse_text("hello, world\n", "pw", &b, &err), &err,
		     CUSTODY_EFAIL,
		     "cannot read the file: not a PKCS#12, PEM or DER "
		     "certificate file");
	assert_error(custody_bundle_parse((const unsigned char *)"", 0, NULL,
					  &b, &err), &err, CUSTODY_EFAIL,
		     "cannot read the file: it is empty");
	assert_error(custody_bundle_parse(NULL, 0, NULL, &b, &err), &err,
		     CUSTODY_EFAIL, "cannot read the file: it is empty");
	assert_empty(&b);
	custody_bundle_free(&b);	/* freeing an empty bundle is fine */
	custody_bundle_free(NULL);
}

/* ---------------------------------------------------------------- files */

/* Writes data into a pipe from a child process, in three pieces with
 * pauses between them; returns the read end. */
static int
pipe_from_child(const char *data, size_t len, pid_t *child)
{
	int fds[2];
	size_t third = len / 3, off = 0;

	cr_assert_eq(pipe(fds), 0);
	*child = fork();
	cr_assert_neq(*child, -1);
	if (*child == 0) {
		close(fds[0]);
		for (int i = 0; i < 3; i++) {
			size_t n = i < 2 ? third : len - off;

			if (write(fds[1], data + off, n) != (ssize_t)n)
				_exit(1);
			off += n;
			usleep(50000);
		}
		_exit(0);
	}
	close(fds[1]);
	return fds[0];
}

Test(bundle_file, plaintext_key_through_a_pipe)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "pipe.example");
	char *pem = testcert_pem(key, x, NULL), path[32];
	custody_bundle b;
	custody_err err;
	pid_t child;
	int fd, status;

	fd = pipe_from_child(pem, strlen(pem), &child);
	snprintf(path, sizeof(path), "/dev/fd/%d", fd);
	cr_assert_eq(custody_bundle_load_file(path, NULL, &b, &err), CUSTODY_OK,
		     "%s", err.msg);
	assert_bundle(&b, key, x, 0);
	custody_bundle_free(&b);
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(fd);
	OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(bundle_file, pkcs12_file_names_the_path_in_errors)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = self_signed(key, "file.example");
	unsigned char *p12;
	size_t len;
	char dir[] = "/tmp/custody-test-cert-XXXXXX", path[64], want[128];
	custody_bundle b;
	custody_err err;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a.p12", dir);
	p12 = testcert_pkcs12(key, x, NULL, "file pw", &len);
	testcert_write_file(path, p12, len);	/* encrypted: fine on disk */
	cr_assert_eq(custody_bundle_load_file(path, "file pw", &b, &err),
		     CUSTODY_OK, "%s", err.msg);
	assert_bundle(&b, key, x, 0);
	custody_bundle_free(&b);
	snprintf(want, sizeof(want), "wrong password for %s", path);
	assert_error(custody_bundle_load_file(path, "nope", &b, &err), &err,
		     CUSTODY_EPASSWORD, want);
	assert_empty(&b);
	unlink(path);
	rmdir(dir);
	free(p12);
	X509_free(x);
	EVP_PKEY_free(key);
}

/* The DER of key as an encrypted PKCS#8 (AES-256-CBC under pw) and of x
 * as PEM, each into a file of dir. */
static void
write_cert_and_key(const char *dir, const char *name, X509 *x, EVP_PKEY *key,
		   const char *pw)
{
	char path[96];
	BIO *mem = BIO_new(BIO_s_mem());
	char *data;
	long len;

	cr_assert_not_null(mem);
	cr_assert_eq(PEM_write_bio_X509(mem, x), 1);
	len = BIO_get_mem_data(mem, &data);
	snprintf(path, sizeof(path), "%s/%s.crt", dir, name);
	testcert_write_file(path, data, (size_t)len);
	BIO_reset(mem);
	cr_assert_eq(i2d_PKCS8PrivateKey_bio(mem, key, EVP_aes_256_cbc(), NULL, 0,
					     NULL, (void *)pw), 1);
	len = BIO_get_mem_data(mem, &data);
	snprintf(path, sizeof(path), "%s/%s.p8", dir, name);
	testcert_write_file(path, data, (size_t)len);	/* encrypted */
	BIO_free(mem);
}

Test(bundle_file, a_separate_key_file_must_match_the_certificate)
{
	EVP_PKEY *key = testcert_key("ec:p256"), *other = testcert_key("rsa:2048");
	X509 *x = self_signed(key, "two.example"), *y = self_signed(other, "other.example");
	char dir[] = "/tmp/custody-test-cert-XXXXXX", crt[96], p8[96], ocrt[96], op8[96];
	char want[320];
	custody_bundle b;
	custody_err err;

	cr_assert_not_null(mkdtemp(dir));
	write_cert_and_key(dir, "a", x, key, "key pw");
	write_cert_and_key(dir, "b", y, other, "key pw");
	snprintf(crt, sizeof(crt), "%s/a.crt", dir);
	snprintf(p8, sizeof(p8), "%s/a.p8", dir);
	snprintf(ocrt, sizeof(ocrt), "%s/b.crt", dir);
	snprintf(op8, sizeof(op8), "%s/b.p8", dir);
	cr_assert_eq(custody_bundle_load_files(crt, p8, "key pw", &b, &err), CUSTODY_OK,
		     "%s", err.msg);
	assert_bundle(&b, key, x, 0);
	custody_bundle_free(&b);
	/* No key file: the certificate alone. */
	cr_assert_eq(custody_bundle_load_files(crt, NULL, NULL, &b, &err), CUSTODY_OK,
		     "%s", err.msg);
	assert_bundle(&b, NULL, x, 0);
	custody_bundle_free(&b);
	snprintf(want, sizeof(want), "wrong password for %s", p8);
	assert_error(custody_bundle_load_files(crt, p8, "nope", &b, &err), &err,
		     CUSTODY_EPASSWORD, want);
	assert_empty(&b);
	snprintf(want, sizeof(want), "missing password for %s: it is encrypted", p8);
	assert_error(custody_bundle_load_files(crt, p8, NULL, &b, &err), &err,
		     CUSTODY_EPASSWORD, want);
	snprintf(want, sizeof(want), "cannot use %s: the private key does not match the "
		 "certificate in %s", op8, crt);
	assert_error(custody_bundle_load_files(crt, op8, "key pw", &b, &err), &err,
		     CUSTODY_EFAIL, want);
	assert_empty(&b);
	snprintf(want, sizeof(want), "cannot read %s: it holds no private key", ocrt);
	assert_error(custody_bundle_load_files(crt, ocrt, "key pw", &b, &err), &err,
		     CUSTODY_EFAIL, want);
	unlink(crt);
	unlink(p8);
	unlink(ocrt);
	unlink(op8);
	rmdir(dir);
	X509_free(x);
	X509_free(y);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

Test(bundle_file, missing_path_directory_and_oversized_file)
{
	char dir[] = "/tmp/custody-test-cert-XXXXXX", path[64], want[128];
	custody_bundle b;
	custody_err err;
	unsigned char *zeros;
	size_t big = 1024 * 1024 + 1;

	assert_error(custody_bundle_load_file("/nonexistent/x.p12", NULL, &b,
					      &err), &err, CUSTODY_EFAIL,
		     "cannot read /nonexistent/x.p12: No such file or "
		     "directory");
	assert_empty(&b);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(want, sizeof(want), "cannot read %s: Is a directory", dir);
	assert_error(custody_bundle_load_file(dir, NULL, &b, &err), &err,
		     CUSTODY_EFAIL, want);
	snprintf(path, sizeof(path), "%s/big", dir);
	zeros = calloc(1, big);
	testcert_write_file(path, zeros, big);
	snprintf(want, sizeof(want), "cannot read %s: it is larger than 1 MiB",
		 path);
	assert_error(custody_bundle_load_file(path, NULL, &b, &err), &err,
		     CUSTODY_EFAIL, want);
	/* Exactly 1 MiB is read, and then refused for what it is. */
	testcert_write_file(path, zeros, big - 1);
	snprintf(want, sizeof(want), "cannot read %s: not a PKCS#12, PEM or "
		 "DER certificate file", path);
	assert_error(custody_bundle_load_file(path, NULL, &b, &err), &err,
		     CUSTODY_EFAIL, want);
	unlink(path);
	rmdir(dir);
	free(zeros);
}
