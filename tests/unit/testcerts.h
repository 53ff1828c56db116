/*
 * testcerts.h — keys, certificates and PKCS#12 files made in memory for
 * tests (nothing is read from fixtures on disk, so no private key ever
 * sits in the repository).  Every function aborts the test process on an
 * OpenSSL failure: a test helper that fails silently hides bugs.
 */
#ifndef CUSTODY_TESTCERTS_H
#define CUSTODY_TESTCERTS_H

#include <stddef.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

/* "rsa:2048", "rsa:1024", "ec:p256", "ec:p384", "ec:p521",
 * "ec:secp256k1", "dsa:2048", "ed25519". */
EVP_PKEY *testcert_key(const char *spec);

/* Self-signed certificate for key with subject CN=cn, DNS SANs from the
 * NULL-terminated list dns (may be NULL), valid from now+from_s seconds for
 * `days` days (from_s may be negative). */
X509 *testcert_self_signed(EVP_PKEY *key, const char *cn, const char *const *dns,
			   long from_s, long days);

/* A certificate for key (subject CN=cn) issued by ca/ca_key. */
X509 *testcert_issued(EVP_PKEY *key, const char *cn, X509 *ca, EVP_PKEY *ca_key,
		      long days);

/* PKCS#12 (AES-256-CBC, PBKDF2) of key + cert + chain (may be NULL) with
 * password (NULL or "" = no password); malloc'ed DER, length in *len. */
unsigned char *testcert_pkcs12(EVP_PKEY *key, X509 *cert,
			       STACK_OF(X509) *chain, const char *password,
			       size_t *len);

/* PEM text: certificate followed by the private key (PKCS#8, encrypted
 * with AES-256-CBC when password is non-NULL).  malloc'ed, NUL-terminated. */
char *testcert_pem(EVP_PKEY *key, X509 *cert, const char *password);

/* Writes len bytes to path (mode 0600); aborts on failure.  Never give it
 * plaintext private key material: custody rules hold in tests too (a
 * plaintext key reaches a process through a pipe, never through a file). */
void testcert_write_file(const char *path, const void *data, size_t len);

#endif
