/* cert/bundle.c — import files: PKCS#12, PEM, or a DER certificate. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include <custody/cert.h>

#define MAX_FILE (1024 * 1024)	/* longest import file read       */
#define MAX_NESTING 4		/* safeContentsBag inside another */

/*
 * The file chooses how much work opening it costs: every PKCS#12 MAC and
 * every password-based encryption (PKCS#12 PBE, PKCS#5 PBES1, PBES2 with
 * PBKDF2) names its own iteration count, which OpenSSL spends in hashing
 * before it can tell a wrong password from a right one.  A count of 2^31
 * keeps it busy for many minutes.  Counts are checked before
 * OpenSSL sees them (CUSTODY_BUNDLE_MAX_ITER, cert.h); the budget bounds a
 * file of many safes.  scrypt's cost is counted as N*r*p, which its time
 * follows (OpenSSL caps its memory, not its time).  The fuzzing build takes
 * a lower cap, so that an input the fuzzer makes never costs seconds.
 */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define MAX_ITER 100000
#else
#define MAX_ITER CUSTODY_BUNDLE_MAX_ITER
#endif
#define MAX_ITER_TOTAL (3 * (int64_t)MAX_ITER)	/* MAC, certificates, key */

#define PASSWORD_HINT \
	"give the password with --password-source (file:, env:, fd:, prompt)"

/* What a file held, before the leaf is chosen. */
struct found {
	const char *name;	/* the path, or "the file"              */
	const char *password;	/* as the caller gave it (may be NULL)  */
	EVP_PKEY *key;		/* the first private key                */
	int n_keys;
	STACK_OF(X509) *certs;	/* every certificate, in file order     */
	int64_t iter_total;	/* iteration counts met, all summed     */
	int over_limit;		/* an iteration count was refused       */
	char algs[64];		/* its encryptions: "RC2-40 / 3DES"     */
	char mac[32];		/* its MAC: "SHA-1 MAC", or empty       */
	int unsupported;	/* a decryption lacked its algorithm    */
	/* The private library context with OpenSSL's legacy provider that
	 * decrypts this one file, when its default context cannot. */
	OSSL_LIB_CTX *libctx;
	OSSL_PROVIDER *legacy, *deflt;
};

static void
found_reset(struct found *f)
{
	EVP_PKEY_free(f->key);
	f->key = NULL;
	f->n_keys = 0;
	while (sk_X509_num(f->certs) > 0)
		X509_free(sk_X509_pop(f->certs));
}

/* Takes ownership of pkey. */
static void
add_key(struct found *f, EVP_PKEY *pkey)
{
	f->n_keys++;
	if (f->key == NULL)
		f->key = pkey;
	else
		EVP_PKEY_free(pkey);
}

/* Takes ownership of x. */
static int
add_cert(struct found *f, X509 *x, custody_err *err)
{
	if (sk_X509_push(f->certs, x) <= 0) {
		X509_free(x);
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot read %s: out of memory", f->name);
	}
	return CUSTODY_OK;
}

static int
password_error(const struct found *f, custody_err *err)
{
	ERR_clear_error();
	if (f->password == NULL) {
		custody_err_set(err, CUSTODY_EPASSWORD,
				"missing password for %s: it is encrypted",
				f->name);
		custody_err_hint(err, PASSWORD_HINT);
	} else {
		custody_err_set(err, CUSTODY_EPASSWORD,
				"wrong password for %s", f->name);
		custody_err_hint(err, "check the password the source gives (a "
				 "password file's trailing newline is not part "
				 "of it)");
	}
	return CUSTODY_EPASSWORD;
}

/* Whether OpenSSL's error queue says an algorithm is unavailable (rather
 * than that a decryption came out wrong). */
static int
unsupported_algorithm(void)
{
	unsigned long e;

	while ((e = ERR_peek_error()) != 0) {
		int reason = ERR_GET_REASON(e);

		if (reason == ERR_R_UNSUPPORTED ||
		    (ERR_GET_LIB(e) == ERR_LIB_EVP &&
		     (reason == ERR_R_FETCH_FAILED ||
		      reason == EVP_R_UNSUPPORTED_ALGORITHM ||
		      reason == EVP_R_UNSUPPORTED_CIPHER ||
		      reason == EVP_R_UNKNOWN_CIPHER ||
		      reason == EVP_R_UNKNOWN_PBE_ALGORITHM ||
		      reason == EVP_R_UNSUPPORTED_KEY_DERIVATION_FUNCTION ||
		      reason == EVP_R_UNSUPPORTED_PRF)))
			return 1;
		ERR_get_error();
	}
	return 0;
}

/* A decryption under the password failed: an algorithm OpenSSL lacks is
 * EFAIL, anything else a wrong (or missing) password. */
static int
decrypt_error(struct found *f, custody_err *err)
{
	unsigned long last = ERR_peek_last_error();
	char reason[256] = "";

	if (last != 0)
		ERR_error_string_n(last, reason, sizeof(reason));
	if (unsupported_algorithm()) {
		ERR_clear_error();
		f->unsupported = 1;
		custody_err_set(err, CUSTODY_EFAIL,
				"cannot decrypt %s: it is encrypted with an "
				"algorithm this OpenSSL does not provide (%s)",
				f->name, reason);
		custody_err_hint(err, "re-export the file with AES-256-CBC "
				 "and PBKDF2 (openssl pkcs12 -export, or "
				 "AES256-SHA256 on Windows)");
		return CUSTODY_EFAIL;
	}
	return password_error(f, err);
}

/* Takes a PKCS#8 private key info (not freed here). */
static int
add_p8(struct found *f, const PKCS8_PRIV_KEY_INFO *p8, custody_err *err)
{
	EVP_PKEY *pkey = p8 != NULL ? EVP_PKCS82PKEY(p8) : NULL;

	if (pkey == NULL)
		return custody_err_openssl(err, CUSTODY_EFAIL,
					   "cannot read the private key in %s",
					   f->name);
	add_key(f, pkey);
	return CUSTODY_OK;
}

/* ---------------------------------------------------------------- iterations */

/* The value of an ASN.1 INTEGER count; INT64_MAX when it does not fit. */
static int64_t
count_value(const ASN1_INTEGER *a)
{
	int64_t v = 0;

	if (a == NULL)
		return 1;	/* absent: the default count, one */
	if (ASN1_INTEGER_get_int64(&v, a) != 1) {
		ERR_clear_error();
		return INT64_MAX;
	}
	return v;
}

/* a * b, INT64_MAX when it overflows (counts are never negative here). */
static int64_t
count_mul(int64_t a, int64_t b)
{
	if (a <= 0 || b <= 0)
		return a < b ? a : b;
	return a > INT64_MAX / b ? INT64_MAX : a * b;
}

/* A short name of the PKCS#12 or PKCS#5 v1 encryption nid (NULL: none). */
static const char *
pbe1_name(int nid)
{
	switch (nid) {
	case NID_pbe_WithSHA1And40BitRC2_CBC:
		return "RC2-40";
	case NID_pbe_WithSHA1And128BitRC2_CBC:
		return "RC2-128";
	case NID_pbe_WithSHA1And3_Key_TripleDES_CBC:
		return "3DES";
	case NID_pbe_WithSHA1And2_Key_TripleDES_CBC:
		return "2-key 3DES";
	case NID_pbe_WithSHA1And40BitRC4:
		return "RC4-40";
	case NID_pbe_WithSHA1And128BitRC4:
		return "RC4-128";
	case NID_pbeWithMD2AndDES_CBC:
	case NID_pbeWithMD5AndDES_CBC:
	case NID_pbeWithSHA1AndDES_CBC:
		return "DES";
	case NID_pbeWithMD2AndRC2_CBC:
	case NID_pbeWithMD5AndRC2_CBC:
	case NID_pbeWithSHA1AndRC2_CBC:
		return "RC2-64";
	default:
		return NULL;
	}
}

/* The work that the password-based encryption alg asks for in *count: the
 * iteration count of a PKCS#12 PBE, a PKCS#5 PBES1 or PBES2 with PBKDF2,
 * N*r*p for PBES2 with scrypt; its cipher's short name in *name.  0 when
 * alg is none of them or its parameters do not decode (OpenSSL then
 * refuses it on its own). */
static int
pbe_count(const X509_ALGOR *alg, int64_t *count, const char **kind,
	  const char **name)
{
	int nid, found = 0;
	PBEPARAM *pbe = NULL;
	PBE2PARAM *pbe2 = NULL;
	PBKDF2PARAM *kdf = NULL;
	SCRYPT_PARAMS *sc = NULL;

	if (alg == NULL || alg->algorithm == NULL)
		return 0;
	nid = OBJ_obj2nid(alg->algorithm);
	*kind = "iteration count";
	*name = pbe1_name(nid);
	if (nid == NID_pbes2) {
		pbe2 = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM),
						 alg->parameter);
		if (pbe2 == NULL || pbe2->keyfunc == NULL)
			goto out;
		if (pbe2->encryption != NULL)
			*name = OBJ_nid2sn(OBJ_obj2nid(
				pbe2->encryption->algorithm));
		nid = OBJ_obj2nid(pbe2->keyfunc->algorithm);
		if (nid == NID_id_pbkdf2) {
			kdf = ASN1_TYPE_unpack_sequence(
				ASN1_ITEM_rptr(PBKDF2PARAM),
				pbe2->keyfunc->parameter);
			if (kdf == NULL || kdf->iter == NULL)
				goto out;
			*count = count_value(kdf->iter);
			found = 1;
		} else if (nid == NID_id_scrypt) {
			sc = ASN1_TYPE_unpack_sequence(
				ASN1_ITEM_rptr(SCRYPT_PARAMS),
				pbe2->keyfunc->parameter);
			if (sc == NULL || sc->costParameter == NULL ||
			    sc->blockSize == NULL ||
			    sc->parallelizationParameter == NULL)
				goto out;
			*count = count_mul(count_mul(
				count_value(sc->costParameter),
				count_value(sc->blockSize)),
				count_value(sc->parallelizationParameter));
			*kind = "scrypt cost (N*r*p)";
			found = 1;
		}
	} else if (EVP_PBE_find(EVP_PBE_TYPE_OUTER, nid, NULL, NULL, NULL)) {
		pbe = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBEPARAM),
						alg->parameter);
		if (pbe == NULL || pbe->iter == NULL)
			goto out;
		*count = count_value(pbe->iter);
		found = 1;
	}
out:
	PBEPARAM_free(pbe);
	SCRYPT_PARAMS_free(sc);
	PBKDF2PARAM_free(kdf);
	PBE2PARAM_free(pbe2);
	ERR_clear_error();
	return found;
}

/* Refuses a count over MAX_ITER, or one that brings the file's sum over
 * MAX_ITER_TOTAL; what is "PKCS#12 MAC" or the like. */
static int
count_check(struct found *f, const char *what, const char *kind,
	    int64_t count, int add, custody_err *err)
{
	if (count > MAX_ITER) {
		f->over_limit = 1;
		custody_err_set(err, CUSTODY_EFAIL,
				"cannot read %s: %s %s %lld is over the limit "
				"%d", f->name, what, kind, (long long)count,
				MAX_ITER);
	} else if (add && count > 0 &&
		   (f->iter_total += count) > MAX_ITER_TOTAL) {
		f->over_limit = 1;
		custody_err_set(err, CUSTODY_EFAIL,
				"cannot read %s: its iteration counts add up "
				"to %lld, over the limit %lld", f->name,
				(long long)f->iter_total,
				(long long)MAX_ITER_TOTAL);
	} else {
		return CUSTODY_OK;
	}
	custody_err_hint(err, "no exporter needs that many (Windows uses "
			 "2000, OpenSSL 2048): re-export the file");
	return CUSTODY_EFAIL;
}

/* Adds name to the file's list of encryptions, once. */
static void
note_alg(struct found *f, const char *name)
{
	size_t n = strlen(f->algs);
	const char *p = f->algs;

	if (name == NULL || name[0] == '\0' || strcmp(name, "UNDEF") == 0)
		return;
	for (; p != NULL && *p != '\0'; p = strstr(p, " / ")) {
		if (p != f->algs)
			p += 3;
		if (strncmp(p, name, strlen(name)) == 0 &&
		    (p[strlen(name)] == '\0' || p[strlen(name)] == ' '))
			return;
	}
	snprintf(f->algs + n, sizeof(f->algs) - n, "%s%s", n > 0 ? " / " : "",
		 name);
}

/* count_check for the password-based encryption alg, before it is used;
 * add: its count goes into the file's sum.  Notes its name. */
static int
pbe_check(struct found *f, const char *what, const X509_ALGOR *alg, int add,
	  custody_err *err)
{
	int64_t count = 0;
	const char *kind = NULL, *name = NULL;

	if (!pbe_count(alg, &count, &kind, &name))
		return CUSTODY_OK;
	note_alg(f, name);
	return count_check(f, what, kind, count, add, err);
}

/* ---------------------------------------------------------------- PKCS#12 */

#define SKEY_WHAT "PKCS#12 private key encryption"
#define SAFE_WHAT "PKCS#12 encryption"

/* The encryption of a shrouded key bag. */
static const X509_ALGOR *
skey_algor(const PKCS12_SAFEBAG *bag)
{
	const X509_SIG *sig = PKCS12_SAFEBAG_get0_pkcs8(bag);
	const X509_ALGOR *alg = NULL;

	if (sig != NULL)
		X509_SIG_get0(sig, &alg, NULL);
	return alg;
}

/* Reads the bags; hidden: they were inside an encrypted safe, which
 * p12_scan could not look into. */
static int
p12_bags(const STACK_OF(PKCS12_SAFEBAG) *bags, const char *pass, int depth,
	 int hidden, struct found *f, custody_err *err)
{
	int r = CUSTODY_OK, i;
	const PKCS12_SAFEBAG *bag;
	PKCS8_PRIV_KEY_INFO *p8;
	X509 *x;

	for (i = 0; r == CUSTODY_OK && i < sk_PKCS12_SAFEBAG_num(bags); i++) {
		bag = sk_PKCS12_SAFEBAG_value(bags, i);
		switch (PKCS12_SAFEBAG_get_nid(bag)) {
		case NID_keyBag:
			r = add_p8(f, PKCS12_SAFEBAG_get0_p8inf(bag), err);
			break;
		case NID_pkcs8ShroudedKeyBag:
			r = pbe_check(f, SKEY_WHAT, skey_algor(bag), hidden,
				      err);
			if (r != CUSTODY_OK)
				break;
			p8 = PKCS12_decrypt_skey_ex(bag, pass, -1, f->libctx,
						    NULL);
			if (p8 == NULL) {
				r = decrypt_error(f, err);
				break;
			}
			r = add_p8(f, p8, err);
			PKCS8_PRIV_KEY_INFO_free(p8);
			break;
		case NID_certBag:
			if (PKCS12_SAFEBAG_get_bag_nid(bag) != NID_x509Certificate)
				break;
			x = PKCS12_SAFEBAG_get1_cert(bag);
			if (x == NULL) {
				r = custody_err_openssl(err, CUSTODY_EFAIL,
							"cannot read a "
							"certificate in %s",
							f->name);
				break;
			}
			r = add_cert(f, x, err);
			break;
		case NID_safeContentsBag:
			if (depth >= MAX_NESTING) {
				r = custody_err_set(err, CUSTODY_EFAIL,
						    "cannot read %s: its bags "
						    "are nested too deeply",
						    f->name);
				break;
			}
			r = p12_bags(PKCS12_SAFEBAG_get0_safes(bag), pass,
				     depth + 1, hidden, f, err);
			break;
		default:	/* CRLs, secrets: not ours */
			break;
		}
	}
	return r;
}

/* The encryption of an encrypted safe (NULL when it is broken). */
static const X509_ALGOR *
safe_algor(const PKCS7 *p7)
{
	if (p7->d.encrypted == NULL || p7->d.encrypted->enc_data == NULL)
		return NULL;
	return p7->d.encrypted->enc_data->algorithm;
}

/* PKCS12_unpack_p7encdata in f's library context (OpenSSL 3.0 has no
 * public way to give it one). */
static STACK_OF(PKCS12_SAFEBAG) *
unpack_encrypted(const PKCS7 *p7, const char *pass, const struct found *f)
{
	const X509_ALGOR *alg = safe_algor(p7);

	if (alg == NULL || p7->d.encrypted->enc_data->enc_data == NULL) {
		ERR_raise(ERR_LIB_PKCS12, PKCS12_R_DECODE_ERROR);
		return NULL;
	}
	return PKCS12_item_decrypt_d2i_ex(alg, ASN1_ITEM_rptr(PKCS12_SAFEBAGS),
					  pass, -1,
					  p7->d.encrypted->enc_data->enc_data,
					  1, f->libctx, NULL);
}

static int
scan_bags(const STACK_OF(PKCS12_SAFEBAG) *bags, int depth, struct found *f,
	  custody_err *err)
{
	int r = CUSTODY_OK, i;
	const PKCS12_SAFEBAG *bag;

	for (i = 0; r == CUSTODY_OK && i < sk_PKCS12_SAFEBAG_num(bags); i++) {
		bag = sk_PKCS12_SAFEBAG_value(bags, i);
		if (PKCS12_SAFEBAG_get_nid(bag) == NID_pkcs8ShroudedKeyBag)
			r = pbe_check(f, SKEY_WHAT, skey_algor(bag), 1, err);
		else if (PKCS12_SAFEBAG_get_nid(bag) == NID_safeContentsBag &&
			 depth < MAX_NESTING)
			r = scan_bags(PKCS12_SAFEBAG_get0_safes(bag),
				      depth + 1, f, err);
	}
	return r;
}

/* "SHA-1 MAC" and the like, for the note on legacy files. */
static void
mac_name(const X509_ALGOR *macalg, struct found *f)
{
	const ASN1_OBJECT *oid = NULL;
	int nid;

	if (macalg == NULL)
		return;
	X509_ALGOR_get0(&oid, NULL, NULL, macalg);
	nid = OBJ_obj2nid(oid);
	snprintf(f->mac, sizeof(f->mac), "%s MAC",
		 nid == NID_sha1 ? "SHA-1" : nid == NID_md5 ? "MD5"
		 : nid != NID_undef ? OBJ_nid2sn(nid) : "unknown");
}

/* Every iteration count p12 shows before anything is decrypted: its MAC's,
 * its encrypted safes', the shrouded keys' of its plain safes.  What does
 * not decode is left for the reading to report. */
static int
p12_scan(PKCS12 *p12, struct found *f, custody_err *err)
{
	int r = CUSTODY_OK, i;
	const ASN1_INTEGER *iter = NULL;
	const X509_ALGOR *macalg = NULL;
	STACK_OF(PKCS7) *safes = NULL;
	STACK_OF(PKCS12_SAFEBAG) *bags;
	PKCS7 *p7;

	if (PKCS12_mac_present(p12)) {
		PKCS12_get0_mac(NULL, &macalg, NULL, &iter, p12);
		mac_name(macalg, f);
		r = count_check(f, "PKCS#12 MAC", "iteration count",
				count_value(iter), 1, err);
		if (r != CUSTODY_OK)
			goto out;
	}
	safes = PKCS12_unpack_authsafes(p12);
	for (i = 0; r == CUSTODY_OK && i < sk_PKCS7_num(safes); i++) {
		p7 = sk_PKCS7_value(safes, i);
		if (PKCS7_type_is_encrypted(p7)) {
			r = pbe_check(f, SAFE_WHAT, safe_algor(p7), 1, err);
		} else if (PKCS7_type_is_data(p7)) {
			bags = PKCS12_unpack_p7data(p7);
			r = scan_bags(bags, 0, f, err);
			sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
		}
	}
out:
	sk_PKCS7_pop_free(safes, PKCS7_free);
	ERR_clear_error();
	return r;
}

static int
broken_p12(const struct found *f, custody_err *err)
{
	return custody_err_openssl(err, CUSTODY_EFAIL,
				   "cannot read %s: broken PKCS#12 contents",
				   f->name);
}

/* Reads every key and certificate of p12, decrypting with pass. */
static int
p12_contents(PKCS12 *p12, const char *pass, struct found *f, custody_err *err)
{
	int r = CUSTODY_EFAIL, i;
	STACK_OF(PKCS7) *safes = NULL;
	STACK_OF(PKCS12_SAFEBAG) *bags = NULL;
	PKCS7 *p7;

	safes = PKCS12_unpack_authsafes(p12);
	if (safes == NULL) {
		r = broken_p12(f, err);
		goto out;
	}
	for (i = 0; i < sk_PKCS7_num(safes); i++) {
		p7 = sk_PKCS7_value(safes, i);
		if (PKCS7_type_is_data(p7)) {
			bags = PKCS12_unpack_p7data(p7);
			if (bags == NULL) {
				r = broken_p12(f, err);
				goto out;
			}
		} else if (PKCS7_type_is_encrypted(p7)) {
			r = pbe_check(f, SAFE_WHAT, safe_algor(p7), 0, err);
			if (r != CUSTODY_OK)
				goto out;
			bags = unpack_encrypted(p7, pass, f);
			if (bags == NULL) {
				r = decrypt_error(f, err);
				goto out;
			}
		} else {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot read %s: PKCS#12 contents "
					    "encrypted to a public key are not "
					    "supported", f->name);
			goto out;
		}
		r = p12_bags(bags, pass, 0, PKCS7_type_is_encrypted(p7), f,
			     err);
		sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
		bags = NULL;
		if (r != CUSTODY_OK)
			goto out;
	}
	r = CUSTODY_OK;
out:
	sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
	sk_PKCS7_pop_free(safes, PKCS7_free);
	return r;
}

static void
legacy_free(struct found *f)
{
	OSSL_PROVIDER_unload(f->deflt);
	OSSL_PROVIDER_unload(f->legacy);
	OSSL_LIB_CTX_free(f->libctx);
	f->deflt = f->legacy = NULL;
	f->libctx = NULL;
}

/* A library context of f's own with OpenSSL's "legacy" and "default"
 * providers (the default context is left as it is). */
static int
legacy_context(struct found *f, custody_err *err)
{
	char reason[256] = "out of memory";
	const char *data = NULL, *p;
	int flags = 0;
	unsigned long e;

	ERR_clear_error();
	if ((f->libctx = OSSL_LIB_CTX_new()) != NULL &&
	    (f->legacy = OSSL_PROVIDER_load(f->libctx, "legacy")) != NULL &&
	    (f->deflt = OSSL_PROVIDER_load(f->libctx, "default")) != NULL)
		return CUSTODY_OK;
	/* The first error says why: "filename(PATH): PATH: cannot open
	 * shared object file: No such file or directory". */
	if ((e = ERR_peek_error_data(&data, &flags)) != 0) {
		if (data != NULL && (flags & ERR_TXT_STRING) && data[0] != '\0')
			snprintf(reason, sizeof(reason), "%s",
				 strncmp(data, "filename(", 9) == 0 &&
				 (p = strstr(data, "): ")) != NULL ? p + 3
								    : data);
		else if (ERR_reason_error_string(e) != NULL)
			snprintf(reason, sizeof(reason), "%s",
				 ERR_reason_error_string(e));
	}
	ERR_clear_error();
	legacy_free(f);
	custody_err_set(err, CUSTODY_EFAIL,
			"cannot decrypt %s: it is protected with legacy "
			"encryption (%s) and OpenSSL's legacy provider cannot "
			"be loaded (%s)", f->name, f->algs, reason);
	custody_err_hint(err, "install OpenSSL's legacy provider (legacy.so "
			 "in OPENSSL_MODULES or `openssl version -m`), or "
			 "re-export the file with AES-256-CBC and PBKDF2");
	return CUSTODY_EFAIL;
}

/*
 * p12_contents; when an algorithm is missing from OpenSSL's default
 * library context (RC2 of older Windows exports: OpenSSL 3 moved it to
 * the legacy provider), again in a private context with the legacy
 * provider, kept for this file only.  Nothing else changes: the password,
 * the MAC and what is done with the contents are checked as before.
 */
static int
p12_open(PKCS12 *p12, const char *pass, struct found *f, custody_err *err)
{
	int r;

	f->unsupported = 0;
	r = p12_contents(p12, pass, f, err);
	if (r == CUSTODY_OK || !f->unsupported || f->libctx != NULL)
		return r;
	found_reset(f);
	if ((r = legacy_context(f, err)) != CUSTODY_OK)
		return r;
	custody_err_clear(err);
	return p12_contents(p12, pass, f, err);
}

/* 1: the MAC verifies under pass; 0: it does not; -1: it cannot be
 * computed (unknown digest, broken MAC data). */
static int
mac_check(PKCS12 *p12, const char *pass, int passlen)
{
	ERR_clear_error();
	if (PKCS12_verify_mac(p12, pass, passlen) == 1)
		return 1;
	return ERR_peek_error() == 0 ? 0 : -1;
}

/* The MAC does not verify.  Usually the password is wrong; but when the
 * contents decrypt under it, the file is damaged instead. */
static int
mac_mismatch(PKCS12 *p12, struct found *f, custody_err *err)
{
	int r = CUSTODY_EFAIL, opened = 0;
	const char *pw = f->password;
	custody_err e;

	custody_err_clear(&e);
	if (pw != NULL && pw[0] != '\0') {
		opened = p12_open(p12, pw, f, &e) == CUSTODY_OK;
	} else {
		opened = p12_open(p12, NULL, f, &e) == CUSTODY_OK;
		found_reset(f);
		opened = opened || (!f->over_limit &&
				    p12_open(p12, "", f, &e) == CUSTODY_OK);
	}
	found_reset(f);
	ERR_clear_error();
	if (f->over_limit) {	/* a count inside, as bad as a wrong MAC */
		if (err != NULL)
			*err = e;
		r = e.code;
	} else if (opened)
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read %s: it is corrupted (its "
				    "integrity check fails)", f->name);
	else
		r = password_error(f, err);
	return r;
}

static int
parse_p12(PKCS12 *p12, struct found *f, custody_err *err)
{
	int r = CUSTODY_EFAIL, m, i;
	const char *pw = f->password;
	const char *pass = NULL;
	const char *tries[2];
	int n_tries = 0;

	if ((r = p12_scan(p12, f, err)) != CUSTODY_OK)
		goto out;
	if (PKCS12_mac_present(p12)) {
		if (pw == NULL || pw[0] == '\0') {
			if ((m = mac_check(p12, NULL, 0)) == 0 &&
			    (m = mac_check(p12, "", 0)) == 1)
				pass = "";
		} else {
			m = mac_check(p12, pw, -1);
			pass = pw;
		}
		if (m < 0) {
			r = custody_err_openssl(err, CUSTODY_EFAIL,
						"cannot check the integrity of "
						"%s", f->name);
			goto out;
		}
		if (m == 0) {
			r = mac_mismatch(p12, f, err);
			goto out;
		}
		r = p12_open(p12, pass, f, err);
		goto out;
	}
	/* No MAC: only decryption tells whether the password is right. */
	if (pw == NULL || pw[0] == '\0') {
		tries[n_tries++] = NULL;
		tries[n_tries++] = "";
	} else {
		tries[n_tries++] = pw;
	}
	for (i = 0; i < n_tries; i++) {
		found_reset(f);
		r = p12_open(p12, tries[i], f, err);
		if (r != CUSTODY_EPASSWORD)
			break;
	}
out:
	return r;
}

/* ---------------------------------------------------------------- PEM */

static int
give_password(char *buf, int size, int rwflag, void *u)
{
	const char *pw = u;
	size_t n;

	(void)rwflag;
	if (pw == NULL)
		return -1;
	n = strlen(pw);
	if (n > (size_t)size)
		return -1;
	memcpy(buf, pw, n);
	return (int)n;
}

static int
pem_encrypted_pkcs8(const unsigned char *body, long len, struct found *f,
		    custody_err *err)
{
	int r = CUSTODY_EFAIL;
	const unsigned char *p = body;
	X509_SIG *sig = NULL;
	const X509_ALGOR *alg = NULL;
	PKCS8_PRIV_KEY_INFO *p8 = NULL;

	if (f->password == NULL) {
		r = password_error(f, err);
		goto out;
	}
	sig = d2i_X509_SIG(NULL, &p, len);
	if (sig == NULL) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot read the encrypted private key "
					"in %s", f->name);
		goto out;
	}
	X509_SIG_get0(sig, &alg, NULL);
	if ((r = pbe_check(f, "PKCS#8 private key encryption", alg, 1,
			   err)) != CUSTODY_OK)
		goto out;
	ERR_clear_error();
	p8 = PKCS8_decrypt(sig, f->password, (int)strlen(f->password));
	if (p8 == NULL) {
		r = decrypt_error(f, err);
		goto out;
	}
	r = add_p8(f, p8, err);
out:
	PKCS8_PRIV_KEY_INFO_free(p8);
	X509_SIG_free(sig);
	return r;
}

static int
pem_plain_pkcs8(const unsigned char *body, long len, struct found *f,
		custody_err *err)
{
	int r;
	const unsigned char *p = body;
	PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, len);

	if (p8 == NULL)
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot read the private key in %s",
					f->name);
	else
		r = add_p8(f, p8, err);
	PKCS8_PRIV_KEY_INFO_free(p8);
	return r;
}

/* "RSA PRIVATE KEY" and its kin, maybe encrypted with a DEK-Info header.
 * Decrypts body in place. */
static int
pem_traditional(int type, const char *header, unsigned char *body,
		long *len, struct found *f, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	EVP_CIPHER_INFO cipher;
	const unsigned char *p;
	EVP_PKEY *pkey = NULL;

	if (PEM_get_EVP_CIPHER_INFO((char *)header, &cipher) != 1) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot read the private key in %s: "
					"bad encryption header", f->name);
		goto out;
	}
	if (cipher.cipher != NULL) {
		if (f->password == NULL) {
			r = password_error(f, err);
			goto out;
		}
		ERR_clear_error();
		if (PEM_do_header(&cipher, body, len, give_password,
				  (void *)f->password) != 1) {
			r = decrypt_error(f, err);
			goto out;
		}
	}
	p = body;
	pkey = d2i_PrivateKey(type, NULL, &p, *len);
	if (pkey == NULL) {
		/* Decrypting under a wrong password may come out "right". */
		r = cipher.cipher != NULL
			    ? password_error(f, err)
			    : custody_err_openssl(err, CUSTODY_EFAIL,
						  "cannot read the private key "
						  "in %s", f->name);
		goto out;
	}
	add_key(f, pkey);
	r = CUSTODY_OK;
out:
	return r;
}

static int
pem_certificate(const char *name, const unsigned char *body, long len,
		struct found *f, custody_err *err)
{
	const unsigned char *p = body;
	X509 *x;

	if (strcmp(name, PEM_STRING_X509_TRUSTED) == 0)
		x = d2i_X509_AUX(NULL, &p, len);
	else
		x = d2i_X509(NULL, &p, len);
	if (x == NULL)
		return custody_err_openssl(err, CUSTODY_EFAIL,
					   "cannot read a certificate in %s",
					   f->name);
	return add_cert(f, x, err);
}

static int
pem_block(const char *name, const char *header, unsigned char *body,
	  long *len, struct found *f, custody_err *err)
{
	if (strcmp(name, PEM_STRING_X509) == 0 ||
	    strcmp(name, PEM_STRING_X509_OLD) == 0 ||
	    strcmp(name, PEM_STRING_X509_TRUSTED) == 0)
		return pem_certificate(name, body, *len, f, err);
	if (strcmp(name, PEM_STRING_PKCS8INF) == 0)
		return pem_plain_pkcs8(body, *len, f, err);
	if (strcmp(name, PEM_STRING_PKCS8) == 0)
		return pem_encrypted_pkcs8(body, *len, f, err);
	if (strcmp(name, PEM_STRING_RSA) == 0)
		return pem_traditional(EVP_PKEY_RSA, header, body, len, f, err);
	if (strcmp(name, PEM_STRING_ECPRIVATEKEY) == 0)
		return pem_traditional(EVP_PKEY_EC, header, body, len, f, err);
	if (strcmp(name, PEM_STRING_DSA) == 0)
		return pem_traditional(EVP_PKEY_DSA, header, body, len, f, err);
	return CUSTODY_OK;	/* parameters, requests, CRLs: not ours */
}

/* How many lines start with "-----BEGIN", counting a last line that is
 * the start of one (a file cut inside it). */
static size_t
begin_lines(const unsigned char *data, size_t len)
{
	static const char begin[] = "-----BEGIN";
	size_t i, n = 0, cmp, blen = sizeof(begin) - 1;

	for (i = 0; i < len; i++) {
		if (i > 0 && data[i - 1] != '\n')
			continue;
		cmp = len - i < blen ? len - i : blen;
		if (memcmp(data + i, begin, cmp) == 0)
			n++;
	}
	return n;
}

static int
parse_pem(const unsigned char *data, size_t len, struct found *f,
	  custody_err *err)
{
	int r = CUSTODY_EFAIL;
	BIO *in = NULL;
	char *name = NULL, *header = NULL;
	unsigned char *body = NULL;
	long blen = 0, alloc_len = 0;
	unsigned long e;
	size_t n_blocks = 0;

	in = BIO_new_mem_buf(data, (int)len);
	if (in == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read %s: out of memory", f->name);
		goto out;
	}
	for (;; n_blocks++) {
		ERR_clear_error();
		if (PEM_read_bio_ex(in, &name, &header, &body, &blen,
				    PEM_FLAG_SECURE | PEM_FLAG_EAY_COMPATIBLE)
		    != 1) {
			e = ERR_peek_last_error();
			if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
			    ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
				break;
			r = custody_err_openssl(err, CUSTODY_EFAIL,
						"cannot read %s: broken PEM "
						"block", f->name);
			goto out;
		}
		alloc_len = blen;
		r = pem_block(name, header, body, &blen, f, err);
		OPENSSL_secure_free(name);
		OPENSSL_secure_free(header);
		OPENSSL_secure_clear_free(body, (size_t)alloc_len);
		name = header = NULL;
		body = NULL;
		if (r != CUSTODY_OK)
			goto out;
	}
	ERR_clear_error();
	/* A BEGIN line the reader skipped is a block cut short. */
	if (begin_lines(data, len) > n_blocks) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read %s: broken PEM block: a "
				    "BEGIN line is cut short", f->name);
		goto out;
	}
	r = CUSTODY_OK;
out:
	OPENSSL_secure_free(name);
	OPENSSL_secure_free(header);
	OPENSSL_secure_clear_free(body, (size_t)alloc_len);
	BIO_free(in);
	return r;
}

/* ---------------------------------------------------------------- parse */

/* Total length that a DER SEQUENCE at data declares (header included),
 * or 0 when data does not start like one. */
static size_t
der_declared_len(const unsigned char *data, size_t len)
{
	size_t n, hdr, i, body = 0;

	if (len < 2 || data[0] != 0x30)
		return 0;
	if (data[1] < 0x80)
		return 2 + (size_t)data[1];
	n = data[1] & 0x7f;
	if (n == 0 || n > 4)
		return 0;
	hdr = 2 + n;
	if (len < hdr)
		return hdr;	/* cut inside the length itself */
	for (i = 0; i < n; i++)
		body = body << 8 | data[2 + i];
	return hdr + body;
}

static int
parse_der_certificate(const unsigned char *data, size_t len, struct found *f,
		      custody_err *err)
{
	const unsigned char *p = data;
	size_t declared;
	X509 *x;

	ERR_clear_error();
	x = d2i_X509(NULL, &p, (long)len);
	if (x != NULL && p == data + len)
		return add_cert(f, x, err);
	X509_free(x);
	ERR_clear_error();
	declared = der_declared_len(data, len);
	if (declared > len)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot read %s: it is truncated (%zu "
				       "of %zu bytes)", f->name, len, declared);
	return custody_err_set(err, CUSTODY_EFAIL,
			       "cannot read %s: not a PKCS#12, PEM or DER "
			       "certificate file", f->name);
}

/* Index of the certificate the key belongs to, -1 when none, -2 when
 * several different ones do. */
static int
leaf_index(const struct found *f)
{
	int i, leaf = -1;
	X509 *x;

	for (i = 0; i < sk_X509_num(f->certs); i++) {
		x = sk_X509_value(f->certs, i);
		if (EVP_PKEY_eq(X509_get0_pubkey(x), f->key) != 1)
			continue;
		if (leaf < 0)
			leaf = i;
		else if (X509_cmp(x, sk_X509_value(f->certs, leaf)) != 0)
			leaf = -2;
	}
	ERR_clear_error();
	return leaf;
}

/* Whether x is already in the stack (the same certificate twice). */
static int
listed(STACK_OF(X509) *st, X509 *x)
{
	int i;

	for (i = 0; i < sk_X509_num(st); i++)
		if (X509_cmp(sk_X509_value(st, i), x) == 0)
			return 1;
	return 0;
}

static int
select_leaf(struct found *f, custody_bundle *out, custody_err *err)
{
	int r = CUSTODY_EFAIL, n = sk_X509_num(f->certs), leaf = 0, i;
	X509 *x;

	if (f->n_keys > 1) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read %s: it holds %d private keys "
				    "(import one key at a time)", f->name,
				    f->n_keys);
		goto out;
	}
	if (n == 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read %s: it holds no certificate",
				    f->name);
		goto out;
	}
	if (f->key != NULL) {
		leaf = leaf_index(f);
		if (leaf == -1) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot use %s: the private key "
					    "does not match the certificate",
					    f->name);
			goto out;
		}
		if (leaf == -2) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot use %s: several different "
					    "certificates match its private "
					    "key", f->name);
			goto out;
		}
	} else if (n > 1) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot pick a certificate in %s: it holds "
				    "%d certificates and no private key",
				    f->name, n);
		goto out;
	}
	out->chain = sk_X509_new_null();
	if (out->chain == NULL)
		goto oom;
	out->cert = sk_X509_value(f->certs, leaf);
	X509_up_ref(out->cert);
	for (i = 0; i < n; i++) {
		x = sk_X509_value(f->certs, i);
		if (X509_cmp(x, out->cert) == 0 || listed(out->chain, x))
			continue;
		if (sk_X509_push(out->chain, x) <= 0)
			goto oom;
		X509_up_ref(x);
	}
	out->key = f->key;
	f->key = NULL;
	r = CUSTODY_OK;
	goto out;
oom:
	r = custody_err_set(err, CUSTODY_EFAIL, "cannot read %s: out of memory",
			    f->name);
out:
	return r;
}

static int
contains(const unsigned char *data, size_t len, const char *s)
{
	size_t n = strlen(s), i;

	for (i = 0; i + n <= len; i++)
		if (memcmp(data + i, s, n) == 0)
			return 1;
	return 0;
}

void
custody_bundle_free(custody_bundle *b)
{
	if (b == NULL)
		return;
	EVP_PKEY_free(b->key);
	X509_free(b->cert);
	sk_X509_pop_free(b->chain, X509_free);
	memset(b, 0, sizeof(*b));
}

/* Starts f for the file called name: no key, no certificate yet. */
static int
found_init(struct found *f, const char *name, const char *password,
	   custody_err *err)
{
	memset(f, 0, sizeof(*f));
	f->name = name;
	f->password = password;
	if ((f->certs = sk_X509_new_null()) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot read %s: out of memory", name);
	return CUSTODY_OK;
}

static void
found_free(struct found *f)
{
	found_reset(f);
	sk_X509_free(f->certs);
	f->certs = NULL;
	legacy_free(f);
}

/* Whether data can be a file at all: not empty, not too large. */
static int
check_size(const unsigned char *data, size_t len, const char *name,
	   custody_err *err)
{
	if (data == NULL || len == 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot read %s: it is empty", name);
	if (len > INT_MAX)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot read %s: it is too large", name);
	return CUSTODY_OK;
}

/* What a PKCS#12, PEM or DER certificate file holds, into f. */
static int
read_contents(const unsigned char *data, size_t len, struct found *f,
	      PKCS12 **p12, custody_err *err)
{
	const unsigned char *p = data;
	int r;

	if ((r = check_size(data, len, f->name, err)) != CUSTODY_OK)
		return r;
	ERR_clear_error();
	if (contains(data, len, "-----BEGIN"))
		return parse_pem(data, len, f, err);
	if ((*p12 = d2i_PKCS12(NULL, &p, (long)len)) != NULL)
		return parse_p12(*p12, f, err);
	return parse_der_certificate(data, len, f, err);
}

/* What a file only the legacy provider could open was protected with. */
static void
legacy_note(const struct found *f, custody_bundle *out)
{
	if (f->libctx != NULL)
		snprintf(out->legacy, sizeof(out->legacy), "%s%s%s", f->algs,
			 f->algs[0] != '\0' && f->mac[0] != '\0' ? ", " : "",
			 f->mac);
}

/* ------------------------------------------------------- a separate key */

/* A DER private key: PKCS#8 (PrivateKeyInfo, or EncryptedPrivateKeyInfo
 * under the password), or the traditional RSA or EC form. */
static int
parse_der_key(const unsigned char *data, size_t len, struct found *f,
	      custody_err *err)
{
	const unsigned char *p = data;
	PKCS8_PRIV_KEY_INFO *p8;
	X509_SIG *sig;
	EVP_PKEY *pkey;
	int r;

	ERR_clear_error();
	if ((p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len)) != NULL &&
	    p == data + len) {
		r = add_p8(f, p8, err);
		PKCS8_PRIV_KEY_INFO_free(p8);
		return r;
	}
	PKCS8_PRIV_KEY_INFO_free(p8);
	p = data;
	if ((sig = d2i_X509_SIG(NULL, &p, (long)len)) != NULL && p == data + len) {
		X509_SIG_free(sig);
		return pem_encrypted_pkcs8(data, (long)len, f, err);
	}
	X509_SIG_free(sig);
	p = data;
	if ((pkey = d2i_AutoPrivateKey(NULL, &p, (long)len)) != NULL &&
	    p == data + len) {
		add_key(f, pkey);
		return CUSTODY_OK;
	}
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return custody_err_set(err, CUSTODY_EFAIL,
			       "cannot read %s: not a PEM or DER private key",
			       f->name);
}

/* The key file's one private key, into f (which holds the certificates
 * of the other file): a key file brings no certificate of its own, so
 * that the certificate imported is the one --path names. */
static int
read_key_file(const unsigned char *data, size_t len, struct found *f,
	      custody_err *err)
{
	int certs = sk_X509_num(f->certs), r;

	if ((r = check_size(data, len, f->name, err)) != CUSTODY_OK)
		return r;
	ERR_clear_error();
	if (contains(data, len, "-----BEGIN"))
		r = parse_pem(data, len, f, err);
	else
		r = parse_der_key(data, len, f, err);
	if (r != CUSTODY_OK)
		return r;
	if (f->n_keys == 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot read %s: it holds no private key",
				       f->name);
	if (f->n_keys > 1)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot read %s: it holds %d private "
				       "keys (import one key at a time)",
				       f->name, f->n_keys);
	if (sk_X509_num(f->certs) != certs)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot use %s as the key file: it holds "
				       "certificates (give them in the "
				       "certificate file)", f->name);
	return CUSTODY_OK;
}

/* The key file beside the certificate file (certificates only) read into
 * f: the key must belong to one of the certificates, which is the leaf. */
static int
add_key_file(struct found *f, const unsigned char *kdata, size_t klen,
	     const char *key_name, custody_err *err)
{
	const char *name = f->name;
	int r;

	if (f->n_keys > 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot use %s with a separate key file: it "
				    "holds a private key itself", name);
		custody_err_hint(err, "give the certificate file alone, or "
				 "leave the key file out");
		return r;
	}
	f->name = key_name;
	r = read_key_file(kdata, klen, f, err);
	f->name = name;
	if (r != CUSTODY_OK)
		return r;
	if (sk_X509_num(f->certs) > 0 && leaf_index(f) == -1)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot use %s: the private key does not "
				       "match the certificate in %s", key_name,
				       name);
	return CUSTODY_OK;
}

/* The bundle of one file (PKCS#12, PEM or DER), with the private key
 * from a file of its own when key_name is given. */
static int
parse_named(const unsigned char *data, size_t len, const char *password,
	    const char *name, const unsigned char *kdata, size_t klen,
	    const char *key_name, custody_bundle *out, custody_err *err)
{
	int r;
	struct found f;
	PKCS12 *p12 = NULL;

	memset(out, 0, sizeof(*out));
	if ((r = found_init(&f, name, password, err)) != CUSTODY_OK ||
	    (r = read_contents(data, len, &f, &p12, err)) != CUSTODY_OK ||
	    (key_name != NULL &&
	     (r = add_key_file(&f, kdata, klen, key_name, err)) != CUSTODY_OK))
		goto out;
	if ((r = select_leaf(&f, out, err)) == CUSTODY_OK)
		legacy_note(&f, out);
out:
	if (r != CUSTODY_OK)
		custody_bundle_free(out);
	PKCS12_free(p12);
	found_free(&f);
	ERR_clear_error();
	return r;
}

int
custody_bundle_parse(const unsigned char *data, size_t len,
		     const char *password, custody_bundle *out,
		     custody_err *err)
{
	return parse_named(data, len, password, "the file", NULL, 0, NULL, out,
			   err);
}

/* Room for n bytes of an import file, which may hold a private key in
 * clear (PEM): OpenSSL's secure heap when it has one with room, else the
 * ordinary heap.  OPENSSL_secure_clear_free cleanses and frees either. */
static unsigned char *
file_alloc(size_t n)
{
	unsigned char *p;

	ERR_set_mark();
	if ((p = OPENSSL_secure_malloc(n)) == NULL)
		p = OPENSSL_malloc(n);
	ERR_pop_to_mark();
	return p;
}

/* Grows *buf (of *cap bytes, len used) to at least want bytes. */
static int
file_grow(unsigned char **buf, size_t *cap, size_t len, size_t want)
{
	unsigned char *p;

	if ((p = file_alloc(want)) == NULL)
		return -1;
	if (len > 0)
		memcpy(p, *buf, len);
	OPENSSL_secure_clear_free(*buf, *cap);
	*buf = p;
	*cap = want;
	return 0;
}

/* Reads path whole (at most MAX_FILE bytes) into *buf (*cap bytes, *len
 * used; the caller frees it with OPENSSL_secure_clear_free, whatever the
 * outcome). */
static int
read_file(const char *path, unsigned char **buf, size_t *len, size_t *cap,
	  custody_err *err)
{
	struct stat st;
	ssize_t n;
	int r = CUSTODY_EFAIL, fd;

	/* O_NONBLOCK: open() of a FIFO without a writer would wait forever;
	 * then the reads block again (no writer reads as end of file). */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd >= 0)
		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	if (fd < 0)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot read %s: %s",
				       path, strerror(errno));
	/* A regular file's size, one byte more (to see it end); else
	 * (a pipe, a FIFO) 16 KiB, doubled as it fills. */
	*cap = 16384;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
		*cap = (size_t)st.st_size < MAX_FILE ? (size_t)st.st_size + 1
						     : MAX_FILE + 1;
	if ((*buf = file_alloc(*cap)) == NULL) {
		*cap = 0;
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read %s: out of memory", path);
		goto out;
	}
	/* Read to the end: a pipe or a FIFO has no size to ask for. */
	while (*len <= MAX_FILE) {
		if (*len == *cap &&
		    file_grow(buf, cap, *len, *cap * 2 < MAX_FILE + 1 ?
						   *cap * 2 : MAX_FILE + 1) != 0) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot read %s: out of memory",
					    path);
			goto out;
		}
		n = read(fd, *buf + *len, *cap - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot read %s: %s", path,
					    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		*len += (size_t)n;
	}
	if (*len > MAX_FILE) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read %s: it is larger than 1 MiB",
				    path);
		goto out;
	}
	r = CUSTODY_OK;
out:
	close(fd);
	return r;
}

int
custody_bundle_load_file(const char *path, const char *password,
			 custody_bundle *out, custody_err *err)
{
	return custody_bundle_load_files(path, NULL, password, out, err);
}

int
custody_bundle_load_files(const char *path, const char *key_path,
			  const char *password, custody_bundle *out,
			  custody_err *err)
{
	unsigned char *buf = NULL, *kbuf = NULL;
	size_t len = 0, cap = 0, klen = 0, kcap = 0;
	int r = CUSTODY_EFAIL;

	memset(out, 0, sizeof(*out));
	if (path == NULL || path[0] == '\0' ||
	    (key_path != NULL && key_path[0] == '\0')) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read the import file: no path given");
		goto out;
	}
	if ((r = read_file(path, &buf, &len, &cap, err)) != CUSTODY_OK ||
	    (key_path != NULL &&
	     (r = read_file(key_path, &kbuf, &klen, &kcap, err)) != CUSTODY_OK))
		goto out;
	r = parse_named(buf, len, password, path, kbuf, klen, key_path, out, err);
out:
	OPENSSL_secure_clear_free(buf, cap);
	OPENSSL_secure_clear_free(kbuf, kcap);
	return r;
}
