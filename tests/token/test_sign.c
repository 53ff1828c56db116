/*
 * test_sign.c — custody_token_sign and custody_token_verify_key against
 * throwaway SoftHSM tokens (one per test: Criterion runs tests in
 * parallel processes).
 *
 * RSA PKCS#1 v1.5 is deterministic, so the token's signature must equal
 * OpenSSL's with the same key in memory, byte for byte; ECDSA signatures
 * are random, so they must verify with the certificate's key through
 * EVP_DigestVerify as they come (DER).
 */
#include "config.h"

#include <string.h>

#include <criterion/criterion.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <custody/hexfmt.h>
#include <custody/token.h>

#include "../src/lib/token/internal.h"
#include "token/softhsm_fixture.h"
#include "unit/testcerts.h"

static struct softhsm_fixture fx;

static void
setup(void)
{
	softhsm_fixture_setup(&fx, "custody test");
}

static void
teardown(void)
{
	softhsm_fixture_teardown(&fx);
}

TestSuite(sign, .init = setup, .fini = teardown);

static const unsigned char msg[] = "custody signs this message";

/* A key and its self-signed certificate, imported onto the token. */
struct keypair {
	EVP_PKEY *key;
	X509 *cert;
	char key_id[CUSTODY_KEY_ID_HEX + 1];
};

static void
import_pair(custody_token *tok, struct keypair *kp, const char *spec,
	    const char *cn)
{
	custody_token_import_result res;
	custody_err err = {0};

	kp->key = testcert_key(spec);
	kp->cert = testcert_self_signed(kp->key, cn, NULL, 0, 30);
	memset(&res, 0, sizeof(res));
	cr_assert_eq(custody_token_import(tok, kp->key, kp->cert, NULL, NULL, 0,
					  &res, &err), CUSTODY_OK,
		     "import: %s", err.msg);
	memcpy(kp->key_id, res.key_id, sizeof(kp->key_id));
}

static void
free_pair(struct keypair *kp)
{
	X509_free(kp->cert);
	EVP_PKEY_free(kp->key);
}

static void
thumbprint(X509 *x, char out[CUSTODY_THUMBPRINT_HEX + 1])
{
	unsigned char md[20];
	unsigned int len = 0;

	cr_assert_eq(X509_digest(x, EVP_sha1(), md, &len), 1);
	custody_hex_encode(md, len, out, 1);
}

static int
verifies(X509 *cert, const EVP_MD *md, const unsigned char *sig, size_t sig_len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	cr_assert_eq(EVP_DigestVerifyInit(ctx, NULL, md, NULL,
					  X509_get0_pubkey(cert)), 1);
	ok = EVP_DigestVerify(ctx, sig, sig_len, msg, sizeof(msg)) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* The software signature with the in-memory key (malloc'ed by OpenSSL). */
static unsigned char *
software_sign(EVP_PKEY *key, const EVP_MD *md, size_t *len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char *sig;

	cr_assert_eq(EVP_DigestSignInit(ctx, NULL, md, NULL, key), 1);
	cr_assert_eq(EVP_DigestSign(ctx, NULL, len, msg, sizeof(msg)), 1);
	sig = OPENSSL_malloc(*len);
	cr_assert_eq(EVP_DigestSign(ctx, sig, len, msg, sizeof(msg)), 1);
	EVP_MD_CTX_free(ctx);
	return sig;
}

/* ------------------------------------------- a wrapped function list */

static CK_FUNCTION_LIST wrapped, *real;
static CK_MECHANISM_TYPE last_mechanism;
static CK_ULONG last_sign_input_len;
static CK_RV fail_sign_with;

static CK_RV
w_sign_init(CK_SESSION_HANDLE s, CK_MECHANISM *m, CK_OBJECT_HANDLE k)
{
	last_mechanism = m->mechanism;
	return real->C_SignInit(s, m, k);
}

static CK_RV
w_sign(CK_SESSION_HANDLE s, CK_BYTE *in, CK_ULONG in_len, CK_BYTE *out,
       CK_ULONG *out_len)
{
	last_sign_input_len = in_len;
	if (fail_sign_with != CKR_OK && out != NULL) {
		/* As a token does: an error ends the operation. */
		real->C_Sign(s, in, in_len, out, out_len);
		return fail_sign_with;
	}
	return real->C_Sign(s, in, in_len, out, out_len);
}

static void
wrap(custody_token *tok)
{
	real = tok->f;
	wrapped = *real;
	wrapped.C_SignInit = w_sign_init;
	wrapped.C_Sign = w_sign;
	tok->f = &wrapped;
}

static void
unwrap(custody_token *tok)
{
	tok->f = real;
}

/* ---------------------------------------------------------------- RSA */

static void
rsa_equals_software(int nid, const EVP_MD *md)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	struct keypair kp;
	custody_err err = {0};
	unsigned char *sig = NULL, *expect;
	size_t sig_len = 0, expect_len = 0;

	import_pair(tok, &kp, "rsa:2048", "rsa.custody.test");
	wrap(tok);
	cr_assert_eq(custody_token_sign(tok, kp.key_id, nid, msg, sizeof(msg),
					&sig, &sig_len, &err), CUSTODY_OK,
		     "sign: %s", err.msg);
	unwrap(tok);
	cr_assert_eq(last_mechanism, CKM_RSA_PKCS,
		     "the portable mechanism signs a DigestInfo");
	expect = software_sign(kp.key, md, &expect_len);
	cr_assert_eq(sig_len, 256);
	cr_assert_eq(sig_len, expect_len);
	cr_assert_arr_eq(sig, expect, sig_len,
			 "the token's signature differs from OpenSSL's");
	cr_assert(verifies(kp.cert, md, sig, sig_len));
	OPENSSL_free(expect);
	free(sig);
	free_pair(&kp);
	custody_token_close(tok);
}

Test(sign, rsa_sha256_equals_openssl)
{
	rsa_equals_software(NID_sha256, EVP_sha256());
}

Test(sign, rsa_sha384_equals_openssl)
{
	rsa_equals_software(NID_sha384, EVP_sha384());
}

Test(sign, rsa_sha512_equals_openssl)
{
	rsa_equals_software(NID_sha512, EVP_sha512());
}

/* ----------------------------------------------------------------- EC */

static void
ec_verifies(const char *spec, int nid, const EVP_MD *md, size_t order_bytes)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	struct keypair kp;
	custody_err err = {0};
	unsigned char *sig = NULL, *again = NULL;
	const unsigned char *p;
	size_t sig_len = 0;
	ECDSA_SIG *es;
	int again_len;

	import_pair(tok, &kp, spec, "ec.custody.test");
	wrap(tok);
	cr_assert_eq(custody_token_sign(tok, kp.key_id, nid, msg, sizeof(msg),
					&sig, &sig_len, &err), CUSTODY_OK,
		     "sign: %s", err.msg);
	unwrap(tok);
	cr_assert_eq(last_mechanism, CKM_ECDSA);
	/* The digest, cut to the order's length when it is longer. */
	cr_assert_eq(last_sign_input_len,
		     (CK_ULONG)(EVP_MD_get_size(md) < (int)order_bytes
				? (size_t)EVP_MD_get_size(md) : order_bytes));
	/* A DER ECDSA-Sig-Value, exactly (no trailing bytes). */
	p = sig;
	es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
	cr_assert_not_null(es, "the signature is not a DER ECDSA-Sig-Value");
	cr_assert_eq((size_t)(p - sig), sig_len);
	again_len = i2d_ECDSA_SIG(es, &again);
	cr_assert_eq((size_t)again_len, sig_len);
	cr_assert_arr_eq(again, sig, sig_len);
	cr_assert(verifies(kp.cert, md, sig, sig_len),
		  "the token's ECDSA signature does not verify");
	ECDSA_SIG_free(es);
	OPENSSL_free(again);
	free(sig);
	free_pair(&kp);
	custody_token_close(tok);
}

Test(sign, ec_p256_sha256_verifies)
{
	ec_verifies("ec:p256", NID_sha256, EVP_sha256(), 32);
}

Test(sign, ec_p256_sha512_is_cut_to_the_order_and_verifies)
{
	ec_verifies("ec:p256", NID_sha512, EVP_sha512(), 32);
}

Test(sign, ec_p384_sha256_verifies)
{
	ec_verifies("ec:p384", NID_sha256, EVP_sha256(), 48);
}

Test(sign, ec_p521_sha512_verifies)
{
	ec_verifies("ec:p521", NID_sha512, EVP_sha512(), 66);
}

/* -------------------------------------------------------------- errors */

Test(sign, unsupported_digest_is_a_usage_error)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	struct keypair kp;
	custody_err err = {0};
	unsigned char *sig = (unsigned char *)"x";
	size_t sig_len = 7;
	char expect[256];

	import_pair(tok, &kp, "rsa:2048", "rsa.custody.test");
	wrap(tok);
	last_mechanism = (CK_MECHANISM_TYPE)-1;
	cr_assert_eq(custody_token_sign(tok, kp.key_id, NID_sha1, msg, sizeof(msg),
					&sig, &sig_len, &err), CUSTODY_EUSAGE);
	unwrap(tok);
	cr_assert_eq(last_mechanism, (CK_MECHANISM_TYPE)-1, "nothing was signed");
	cr_assert_null(sig);
	cr_assert_eq(sig_len, 0);
	snprintf(expect, sizeof(expect), "cannot sign with private key %s: digest "
		 "SHA1 is not supported (SHA-256, SHA-384 or SHA-512)", kp.key_id);
	cr_assert_str_eq(err.msg, expect);
	free_pair(&kp);
	custody_token_close(tok);
}

Test(sign, missing_key_is_not_found)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	static const char id[] = "00112233445566778899aabbccddeeff00112233";
	custody_err err = {0};
	unsigned char *sig = NULL;
	size_t sig_len = 0;

	cr_assert_eq(custody_token_sign(tok, id, NID_sha256, msg, sizeof(msg),
					&sig, &sig_len, &err), CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no private key with key id "
			 "00112233445566778899aabbccddeeff00112233 on token "
			 "custody test");
	cr_assert_null(sig);
	custody_token_close(tok);
}

Test(sign, malformed_key_id_is_a_usage_error)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_err err = {0};
	unsigned char *sig = NULL;
	size_t sig_len = 0;

	cr_assert_eq(custody_token_sign(tok, "12x4", NID_sha256, msg, sizeof(msg),
					&sig, &sig_len, &err), CUSTODY_EUSAGE);
	cr_assert(strstr(err.msg, "invalid key id 12x4") == err.msg, "%s", err.msg);
	custody_token_close(tok);
}

Test(sign, not_logged_in_is_refused)
{
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_token *tok = NULL;
	custody_err err = {0};
	unsigned char *sig = NULL;
	size_t sig_len = 0;

	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_token_sign(tok, "0011", NID_sha256, msg, sizeof(msg),
					&sig, &sig_len, &err), CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "cannot sign on token custody test: not logged in")
		  == err.msg, "%s", err.msg);
	cr_assert_null(sig);
	custody_token_close(tok);
}

Test(sign, token_failure_names_the_key_and_the_reason)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	struct keypair kp;
	custody_err err = {0};
	unsigned char *sig = NULL;
	size_t sig_len = 0;
	char expect[256];

	import_pair(tok, &kp, "ec:p256", "ec.custody.test");
	wrap(tok);
	fail_sign_with = CKR_DEVICE_ERROR;
	cr_assert_eq(custody_token_sign(tok, kp.key_id, NID_sha256, msg, sizeof(msg),
					&sig, &sig_len, &err), CUSTODY_EFAIL);
	fail_sign_with = CKR_OK;
	snprintf(expect, sizeof(expect), "cannot sign with private key %s on token "
		 "custody test: CKR_DEVICE_ERROR", kp.key_id);
	cr_assert_str_eq(err.msg, expect);
	cr_assert_null(sig);
	/* The session is usable again: the next signature works. */
	cr_assert_eq(custody_token_sign(tok, kp.key_id, NID_sha256, msg, sizeof(msg),
					&sig, &sig_len, &err), CUSTODY_OK, "%s", err.msg);
	unwrap(tok);
	cr_assert(verifies(kp.cert, EVP_sha256(), sig, sig_len));
	free(sig);
	free_pair(&kp);
	custody_token_close(tok);
}

/* --------------------------------------------------------- verify_key */

Test(sign, verify_key_accepts_the_matching_key)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	struct keypair rsa, ec;
	custody_err err = {0};

	import_pair(tok, &rsa, "rsa:2048", "rsa.custody.test");
	import_pair(tok, &ec, "ec:p384", "ec.custody.test");
	cr_assert_eq(custody_token_verify_key(tok, rsa.key_id, rsa.cert, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_token_verify_key(tok, ec.key_id, ec.cert, &err),
		     CUSTODY_OK, "%s", err.msg);
	free_pair(&rsa);
	free_pair(&ec);
	custody_token_close(tok);
}

static void
assert_mismatch(custody_token *tok, const struct keypair *key_of,
		const struct keypair *cert_of)
{
	custody_err err = {0};
	char tp[CUSTODY_THUMBPRINT_HEX + 1], expect[256];

	thumbprint(cert_of->cert, tp);
	snprintf(expect, sizeof(expect), "the private key with id %s does not "
		 "match certificate %s", key_of->key_id, tp);
	cr_assert_eq(custody_token_verify_key(tok, key_of->key_id, cert_of->cert,
					      &err), CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, expect);
}

Test(sign, verify_key_refuses_another_certificate)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	struct keypair a, b, ec;

	import_pair(tok, &a, "rsa:2048", "a.custody.test");
	import_pair(tok, &b, "rsa:2048", "b.custody.test");
	import_pair(tok, &ec, "ec:p256", "ec.custody.test");
	assert_mismatch(tok, &a, &b);	/* same type, other key          */
	assert_mismatch(tok, &ec, &a);	/* an ECDSA signature, RSA cert  */
	assert_mismatch(tok, &a, &ec);	/* an RSA signature, EC cert     */
	free_pair(&a);
	free_pair(&b);
	free_pair(&ec);
	custody_token_close(tok);
}

Test(sign, verify_key_of_a_missing_key_is_not_found)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *cert = testcert_self_signed(key, "absent.custody.test", NULL, 0, 30);
	custody_err err = {0};

	cr_assert_eq(custody_token_verify_key(tok, "0a0b0c0d", cert, &err),
		     CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no private key with key id 0a0b0c0d on token "
			 "custody test");
	X509_free(cert);
	EVP_PKEY_free(key);
	custody_token_close(tok);
}
