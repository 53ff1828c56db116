/*
 * custody/cert.h — certificates and the files they arrive in.
 *
 * Reads X.509 facts (thumbprint, SHA-256, names, validity, SANs, key
 * algorithm, key id) and loads import files: PKCS#12, PEM (certificates and
 * a private key, plain or encrypted PKCS#8 or traditional), or a
 * certificate alone (PEM or DER).  Depends on OpenSSL only.
 *
 * Key id: SHA-1 of the certificate's subjectPublicKey BIT STRING contents
 * (RFC 5280 §4.2.1.2 method 1) — the CKA_ID of the key and certificate on
 * every token.
 */
#ifndef CUSTODY_CERT_H
#define CUSTODY_CERT_H

#include <stddef.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <custody/error.h>
#include <custody/records.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Fills every member of out except key_uri and label (left NULL) from x.
 * out is overwritten (not freed first). */
int custody_cert_record_from_x509(X509 *x, custody_cert_record *out,
				  custody_err *err);

/* As above from DER bytes. */
int custody_cert_record_from_der(const unsigned char *der, size_t len,
				 custody_cert_record *out, custody_err *err);

/* The key id (20 bytes) of the certificate's public key. */
int custody_cert_key_id(X509 *x, unsigned char id[20], custody_err *err);

/* The same from a public (or private) key. */
int custody_pkey_key_id(EVP_PKEY *pkey, unsigned char id[20],
			custody_err *err);

/*
 * Checks a certificate against what is said of it elsewhere (a store's
 * record, a key package): der (len bytes) is one DER X.509 certificate,
 * its SHA-1 thumbprint is thumbprint (upper-case hex) and its public
 * key's id is key_id (lower-case hex).  *out (out may be NULL) is then
 * the parsed certificate, the caller's (X509_free); without out no key
 * is decoded (cheap enough for a short-lived signer).  EFAIL naming the
 * first that differs, in words a caller prefixes with what "it" is:
 *   "its certificate is not one DER X.509 certificate"
 *   "its thumbprint T is not that of its certificate (U)"
 *   "its key id A is not that of its certificate (B)"
 */
int custody_cert_der_check(const unsigned char *der, size_t len,
			   const char *thumbprint, const char *key_id,
			   X509 **out, custody_err *err);

/*
 * A store's record of a certificate checked against the certificate it
 * holds, as custody_cert_der_check (rec->der, rec->thumbprint,
 * rec->key_id).  The store is not trusted: whoever can write it must not
 * be able to name another certificate's key id for this one and so make
 * custody use that key.  Every reader that acts on a record's key id
 * (signing, sync, the `custody test` challenge) checks it first.  EFAIL
 * "the store's record of certificate T: its key id A is not that of its
 * certificate (B)" (or its thumbprint, or a DER that does not parse),
 * with a hint.
 */
int custody_cert_record_check(const custody_cert_record *rec, X509 **out,
			      custody_err *err);

/* "RSA-2048", "EC-P256", "EC-P384", "EC-P521", "EC-<curve>", "DSA-1024",
 * "ED25519"...; writes at most size bytes. */
void custody_pkey_algorithm(EVP_PKEY *pkey, char *buf, size_t size);

/*
 * The CNs of a name, one after the other: the first CN after position
 * *pos (-1: from the start), whose position *pos becomes.  1: *utf8 holds
 * its text as UTF-8 (malloc'ed, NUL-terminated) and *len its length — a
 * CN may hold a NUL of its own, so compare *len before using *utf8 as a
 * string; 0: no further CN; -1: a CN that is not text, or no memory
 * (*utf8 NULL; the next call goes on after it).
 */
int custody_name_next_cn(const X509_NAME *name, int *pos, char **utf8,
			 size_t *len);

/* The subject's first CN as UTF-8 (malloc'ed; up to a NUL it may hold),
 * or NULL when it has none, it is empty or not text, or no memory.  What
 * custody labels a key and its certificate with when given no label. */
char *custody_cert_subject_cn(const X509 *x);

/* x's notBefore and notAfter, in seconds since the epoch: 0, or -1 when
 * either cannot be read. */
int custody_cert_validity(const X509 *x, int64_t *not_before,
			  int64_t *not_after);

/* What an import file held.  key is NULL for a certificate alone.  chain
 * holds the other certificates of the file (never NULL after a successful
 * load; may be empty).  legacy is empty, or, for a PKCS#12 that only
 * OpenSSL's legacy provider could decrypt (RC2-40, as older Windows
 * servers export), the protection it had: "RC2-40 / 3DES, SHA-1 MAC". */
typedef struct custody_bundle {
	EVP_PKEY *key;
	X509 *cert;
	STACK_OF(X509) *chain;
	char legacy[128];
} custody_bundle;

/*
 * The highest iteration count an import file may name, for its PKCS#12 MAC
 * or any password-based encryption in it (PBKDF2 iterations; for scrypt,
 * N*r*p); the counts of one file may add up to three times as much.  Real
 * exporters use 2000 (Windows), 2048 (OpenSSL), 10000 (Java) and at most a
 * few 100000 (PBKDF2 under the OWASP advice of 2023: 600000), so 10,000,000
 * refuses nothing genuine; at the cap one decryption takes seconds, where
 * a count of 2^31 (as a hostile file may name) would take many minutes.
 */
#define CUSTODY_BUNDLE_MAX_ITER 10000000

/*
 * Parses an import file held in memory.  password may be NULL (no
 * password given); for PKCS#12 an empty and a NULL password are both tried.
 * Errors:
 *   EPASSWORD  — the file is encrypted and the password is missing or wrong
 *                ("wrong password or missing --password-source" style);
 *   EFAIL      — not a PKCS#12/PEM/DER file, truncated, corrupted, no
 *                certificate, more than one key, or the private key does
 *                not match any certificate ("the private key does not
 *                match the certificate"), or an iteration count over
 *                CUSTODY_BUNDLE_MAX_ITER ("PKCS#12 MAC iteration count N
 *                is over the limit L": refused before any is spent).
 * With a key, the certificate is the one that matches it; the rest go to
 * chain.  Without a key, a file with exactly one certificate gives it, a
 * file with several is EFAIL.
 * A PKCS#12 whose encryption the default library context lacks is read
 * again in a private one with OpenSSL's "legacy" provider (never loaded
 * into the default context), freed before returning; EFAIL when that
 * provider is not installed.  out->legacy then says so.
 */
int custody_bundle_parse(const unsigned char *data, size_t len,
			 const char *password, custody_bundle *out,
			 custody_err *err);

/* Reads path (at most 1 MiB) and parses it as above.  The file's bytes are
 * held in OpenSSL's secure heap when the process has one with room (see
 * custody_harden_process in secret.h), and cleansed before returning. */
int custody_bundle_load_file(const char *path, const char *password,
			     custody_bundle *out, custody_err *err);

/*
 * The same, with the private key in a file of its own (key_path; NULL: as
 * custody_bundle_load_file): PEM or DER, PKCS#8 (encrypted under password,
 * or not) or the traditional RSA and EC forms.  path then holds the
 * certificate (and CA certificates) and no private key; key_path one
 * private key and no certificate.  EFAIL "cannot use KEY: the private key
 * does not match the certificate in PATH" when the key belongs to none of
 * them; EPASSWORD as above, naming the key file.
 */
int custody_bundle_load_files(const char *path, const char *key_path,
			      const char *password, custody_bundle *out,
			      custody_err *err);

void custody_bundle_free(custody_bundle *b);

/* PEM text of a DER certificate, malloc'ed, NUL-terminated. */
char *custody_cert_der_to_pem(const unsigned char *der, size_t len);

/* The DER ECDSA-Sig-Value of raw r || s (what PKCS#11 and JWS give; rs_len
 * even, at most 132) into out (rs_len + 9 bytes); returns its length, 0
 * when rs_len is not one. */
size_t custody_ecdsa_raw_to_der(const unsigned char *rs, size_t rs_len,
				unsigned char *out);

/* ---- kinds of key pair (cert/keyspec.c) ---------------------------- */

/* A kind of key pair a token can generate (custody_token_generate). */
typedef struct custody_keyspec {
	int type;		/* EVP_PKEY_RSA or EVP_PKEY_EC             */
	int bits;		/* RSA: 2048, 3072, 4096; EC: 256, 384     */
	int curve_nid;		/* EC: NID_X9_62_prime256v1, NID_secp384r1 */
	char name[16];		/* "RSA-2048", "EC-P256", ... (as cert.h)  */
} custody_keyspec;

/* "rsa:2048", "rsa:3072", "rsa:4096", "ec:p256", "ec:p384" (any case;
 * "ec:P-256" and "ec:prime256v1" too).  Anything else is EUSAGE naming
 * the accepted forms. */
int custody_keyspec_parse(const char *text, custody_keyspec *out,
			  custody_err *err);

/* ---- names as people write them (cert/dn.c) ------------------------- */

/* Attributes (TYPE=VALUE pairs) a DN may hold. */
#define CUSTODY_DN_MAX_ATTRIBUTES 32

/*
 * A DN as custody shows it (RFC 4514: most specific RDN first,
 * "CN=sts.example.com,O=Example,C=US") or in OpenSSL's /-form (most
 * general first, "/C=US/O=Example/CN=sts.example.com").  In both, an
 * unescaped '+' joins one more attribute to the same RDN (multi-valued
 * RDN: "CN=a+UID=7,O=x"); a value is UTF-8 text with RFC 4514 escapes
 * ("\," "\+" "\\" ... for the character, "\C3\A9" for bytes), leading and
 * trailing unescaped spaces dropped, or '#' and the hex of a BER-encoded
 * string ("CN=#0c03616263"; a '#' alone is the character).  A type is
 * a name OpenSSL knows (CN, O, OU, C, L, ST, emailAddress, UID, DC, ...)
 * or a dotted OID of one.  On success *out is a new name (the caller
 * frees it).  EUSAGE: not
 * TYPE=VALUE, an empty type or value, an unknown type, a value too long
 * (511 bytes) or not valid for its type (C is two letters), a NUL byte,
 * more than CUSTODY_DN_MAX_ATTRIBUTES attributes.
 */
int custody_dn_parse(const char *text, X509_NAME **out, custody_err *err);

/* The name in RFC 4514 form, UTF-8 unescaped ("CN=Zoë,O=x"), cut to size
 * bytes; "" when it cannot be printed.  custody_dn_parse reads it back
 * into an equal name. */
void custody_dn_text(const X509_NAME *name, char *buf, size_t size);

/* The first CN of the name in UTF-8; "" when there is none or it does
 * not fit size bytes. */
void custody_dn_common_name(const X509_NAME *name, char *buf, size_t size);

/*
 * Subject alternative names, comma-separated: DNS:NAME, IP:ADDRESS (v4
 * or v6), email:ADDRESS, URI:URI; none empty, no spaces or control
 * characters.  On success *out is a new subjectAltName extension (not
 * critical) holding one name per item, in order (the caller frees it).
 */
int custody_san_parse(const char *text, X509_EXTENSION **out, custody_err *err);

#ifdef __cplusplus
}
#endif
#endif
