/* testcerts.c — keys and certificates made in memory for tests. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>

#include "unit/testcerts.h"

static void
die(const char *what)
{
	fprintf(stderr, "testcerts: %s failed\n", what);
	ERR_print_errors_fp(stderr);
	abort();
}

EVP_PKEY *
testcert_key(const char *spec)
{
	EVP_PKEY *pkey = NULL;

	if (strncmp(spec, "rsa:", 4) == 0) {
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)atoi(spec + 4));
	} else if (strcmp(spec, "ec:p256") == 0) {
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	} else if (strcmp(spec, "ec:p384") == 0) {
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	} else if (strcmp(spec, "ec:p521") == 0) {
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
	} else if (strcmp(spec, "ec:secp256k1") == 0) {
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
	} else if (strcmp(spec, "ed25519") == 0) {
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	} else if (strncmp(spec, "dsa:", 4) == 0) {
		EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "DSA", NULL);
		EVP_PKEY *params = NULL;
		EVP_PKEY_CTX *kctx = NULL;

		if (pctx == NULL || EVP_PKEY_paramgen_init(pctx) <= 0 ||
		    EVP_PKEY_CTX_set_dsa_paramgen_bits(pctx, atoi(spec + 4)) <= 0 ||
		    EVP_PKEY_paramgen(pctx, &params) <= 0)
			die("DSA paramgen");
		kctx = EVP_PKEY_CTX_new(params, NULL);
		if (kctx == NULL || EVP_PKEY_keygen_init(kctx) <= 0 ||
		    EVP_PKEY_keygen(kctx, &pkey) <= 0)
			die("DSA keygen");
		EVP_PKEY_CTX_free(kctx);
		EVP_PKEY_free(params);
		EVP_PKEY_CTX_free(pctx);
	}
	if (pkey == NULL)
		die(spec);
	return pkey;
}

static X509 *
make_cert(EVP_PKEY *key, const char *cn, const char *const *dns, long from_s,
	  long days, X509 *ca, EVP_PKEY *ca_key)
{
	X509 *x = X509_new();
	X509_NAME *name;
	ASN1_INTEGER *serial;
	unsigned char rnd[16];
	BIGNUM *bn;
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	const EVP_MD *md;

	if (x == NULL || X509_set_version(x, 2) != 1)
		die("X509_new");
	/* Random positive serial, as CAs make them. */
	for (size_t i = 0; i < sizeof(rnd); i++)
		rnd[i] = (unsigned char)(rand() & 0xff);
	rnd[0] &= 0x7f;
	rnd[0] |= 0x10;
	bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
	serial = BN_to_ASN1_INTEGER(bn, NULL);
	X509_set_serialNumber(x, serial);
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	X509_gmtime_adj(X509_getm_notBefore(x), from_s);
	X509_gmtime_adj(X509_getm_notAfter(x), from_s + days * 86400L);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
				   (const unsigned char *)"custody tests", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, ca != NULL ? X509_get_subject_name(ca) : name);
	if (X509_set_pubkey(x, key) != 1)
		die("X509_set_pubkey");
	X509V3_set_ctx(&v3, ca != NULL ? ca : x, x, NULL, NULL, 0);
	if (dns != NULL && dns[0] != NULL) {
		char san[1024] = "";

		for (size_t i = 0; dns[i] != NULL; i++) {
			if (i > 0)
				strncat(san, ",", sizeof(san) - strlen(san) - 1);
			strncat(san, "DNS:", sizeof(san) - strlen(san) - 1);
			strncat(san, dns[i], sizeof(san) - strlen(san) - 1);
		}
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
		if (ext == NULL)
			die("subjectAltName");
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
				  ca == NULL && dns == NULL ? "critical,CA:TRUE"
							    : "critical,CA:FALSE");
	if (ext == NULL)
		die("basicConstraints");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	md = EVP_PKEY_get_id(ca_key != NULL ? ca_key : key) == EVP_PKEY_ED25519
		     ? NULL
		     : EVP_sha256();
	if (X509_sign(x, ca_key != NULL ? ca_key : key, md) <= 0)
		die("X509_sign");
	return x;
}

X509 *
testcert_self_signed(EVP_PKEY *key, const char *cn, const char *const *dns,
		     long from_s, long days)
{
	return make_cert(key, cn, dns, from_s, days, NULL, NULL);
}

X509 *
testcert_issued(EVP_PKEY *key, const char *cn, X509 *ca, EVP_PKEY *ca_key,
		long days)
{
	static const char *const none[] = {NULL};

	return make_cert(key, cn, none, 0, days, ca, ca_key);
}

unsigned char *
testcert_pkcs12(EVP_PKEY *key, X509 *cert, STACK_OF(X509) *chain,
		const char *password, size_t *len)
{
	PKCS12 *p12;
	unsigned char *der = NULL, *p;
	int n;

	p12 = PKCS12_create(password != NULL && password[0] != '\0' ? password : NULL,
			    "custody test", key, cert, chain,
			    NID_aes_256_cbc, NID_aes_256_cbc, 0, 0, 0);
	if (p12 == NULL)
		die("PKCS12_create");
	n = i2d_PKCS12(p12, NULL);
	if (n <= 0 || (der = malloc((size_t)n)) == NULL)
		die("i2d_PKCS12");
	p = der;
	i2d_PKCS12(p12, &p);
	PKCS12_free(p12);
	*len = (size_t)n;
	return der;
}

char *
testcert_pem(EVP_PKEY *key, X509 *cert, const char *password)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	if (bio == NULL || PEM_write_bio_X509(bio, cert) != 1)
		die("PEM_write_bio_X509");
	if (key != NULL &&
	    PEM_write_bio_PKCS8PrivateKey(bio, key,
					  password != NULL ? EVP_aes_256_cbc() : NULL,
					  password, password != NULL ? (int)strlen(password) : 0,
					  NULL, NULL) != 1)
		die("PEM_write_bio_PKCS8PrivateKey");
	n = BIO_get_mem_data(bio, &data);
	out = malloc((size_t)n + 1);
	if (out == NULL)
		die("malloc");
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	BIO_free(bio);
	return out;
}

void
testcert_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) != 0)
		die(path);
}
