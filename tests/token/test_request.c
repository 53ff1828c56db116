/*
 * test_request.c — key pairs generated inside the token, and signing with
 * them through libp11 (custody_token_generate, custody_token_evp_*).
 *
 * Every test gets its own token directory (.init/.fini).  The attributes
 * are read back as the token reports them; objects are counted with raw
 * PKCS#11 through token_internal.h.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <custody/cert.h>
#include <custody/hexfmt.h>
#include <custody/token.h>

#include "../src/lib/token_internal.h"
#include "token/softhsm_fixture.h"

static struct softhsm_fixture fx;

static void
setup(void)
{
	softhsm_fixture_setup(&fx, "custody request");
}

static void
teardown(void)
{
	softhsm_fixture_teardown(&fx);
}

TestSuite(request, .init = setup, .fini = teardown);

/* ---------------------------------------------------------- helpers */

/* Objects of one class (or all, cls = -1) the session can see. */
static size_t
count_class(custody_token *tok, long cls)
{
	CK_OBJECT_CLASS c = (CK_OBJECT_CLASS)cls;
	CK_ATTRIBUTE t = {CKA_CLASS, &c, sizeof(c)};
	CK_OBJECT_HANDLE h[64];
	CK_ULONG got = 0;
	size_t total = 0;

	cr_assert_eq(tok->f->C_FindObjectsInit(tok->session, cls < 0 ? NULL : &t,
					       cls < 0 ? 0 : 1), CKR_OK);
	do {
		cr_assert_eq(tok->f->C_FindObjects(tok->session, h, 64, &got),
			     CKR_OK);
		total += got;
	} while (got == 64);
	tok->f->C_FindObjectsFinal(tok->session);
	return total;
}

/* The key id computed here, independently of the library: SHA-1 of the
 * subjectPublicKey BIT STRING of the key's SubjectPublicKeyInfo. */
static void
expected_key_id(EVP_PKEY *pkey, char hex[CUSTODY_KEY_ID_HEX + 1])
{
	X509_PUBKEY *xpk = NULL;
	const unsigned char *bits = NULL;
	int len = 0;
	unsigned char md[SHA_DIGEST_LENGTH];

	cr_assert_eq(X509_PUBKEY_set(&xpk, pkey), 1);
	cr_assert_eq(X509_PUBKEY_get0_param(NULL, &bits, &len, NULL, xpk), 1);
	SHA1(bits, (size_t)len, md);
	custody_hex_encode(md, sizeof(md), hex, 0);
	X509_PUBKEY_free(xpk);
}

static void
parse_spec(const char *text, custody_keyspec *spec)
{
	custody_err err = {0};

	cr_assert_eq(custody_keyspec_parse(text, spec, &err), CUSTODY_OK,
		     "%s: %s", text, err.msg);
}

/* Generates and checks what every generated pair must be. */
static void
generate_and_check(const char *spec_text, const char *alg, int replicable)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_keyspec spec;
	custody_key_attrs a;
	custody_err err = {0};
	char id[CUSTODY_KEY_ID_HEX + 1] = "", want[CUSTODY_KEY_ID_HEX + 1];
	char got_alg[32];
	EVP_PKEY *pub = NULL;
	int trusted = -1;

	parse_spec(spec_text, &spec);
	cr_assert_eq(custody_token_generate(tok, &spec, "gen", NULL, replicable,
					    id, &pub, &err), CUSTODY_OK,
		     "generate %s: %s", spec_text, err.msg);
	cr_assert_not_null(pub);
	custody_pkey_algorithm(pub, got_alg, sizeof(got_alg));
	cr_assert_str_eq(got_alg, alg);
	expected_key_id(pub, want);
	cr_assert_str_eq(id, want, "CKA_ID is the key id of the public key");
	cr_assert_eq(count_class(tok, CKO_PRIVATE_KEY), 1);
	cr_assert_eq(count_class(tok, CKO_PUBLIC_KEY), 1);
	/* And the note of intent of the key id, until the caller has
	 * recorded the key (the one of the temporary id is gone). */
	cr_assert_eq(count_class(tok, CKO_DATA), 1);
	cr_assert_eq(count_class(tok, -1), 3);
	custody_token_intent_done(tok, id);
	cr_assert_eq(count_class(tok, -1), 2);

	cr_assert_eq(custody_token_key_attrs(tok, id, &a, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(a.token, 1);
	cr_assert_eq(a.private_, 1);
	cr_assert_eq(a.sensitive, 1);
	cr_assert_eq(a.always_sensitive, 1);
	cr_assert_eq(a.sign, 1);
	cr_assert_eq(a.local, 1, "the token reports the key generated inside");
	/* A replicable key insists on a trusted wrapping key only where the
	 * token can hold a trusted private KEK (token_wrap.c's probe):
	 * SoftHSM 2.6.1 cannot, and the key could never be wrapped. */
	cr_assert_eq(custody_token_probe_trusted_private_kek(tok, &trusted,
							     &err), CUSTODY_OK);
	cr_assert_eq(a.wrap_with_trusted, replicable ? trusted : 1);
	cr_assert_eq(a.extractable, replicable);
	cr_assert_eq(a.never_extractable, !replicable);
	cr_assert_eq(a.key_type,
		     strncmp(alg, "RSA", 3) == 0 ? CKK_RSA : CKK_EC);
	EVP_PKEY_free(pub);
	custody_token_close(tok);
}

/* ------------------------------------------------------------ key spec */

Test(request, keyspec_parse_known_and_unknown)
{
	custody_keyspec s;
	custody_err err = {0};

	parse_spec("rsa:3072", &s);
	cr_assert_eq(s.type, EVP_PKEY_RSA);
	cr_assert_eq(s.bits, 3072);
	cr_assert_str_eq(s.name, "RSA-3072");
	parse_spec("EC:P-384", &s);
	cr_assert_eq(s.type, EVP_PKEY_EC);
	cr_assert_eq(s.curve_nid, NID_secp384r1);
	cr_assert_str_eq(s.name, "EC-P384");
	parse_spec("ec:p256", &s);
	cr_assert_eq(s.curve_nid, NID_X9_62_prime256v1);

	cr_assert_eq(custody_keyspec_parse("rsa:1024", &s, &err), CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "unknown key spec rsa:1024: expected rsa:2048, "
			 "rsa:3072, rsa:4096, ec:p256 or ec:p384");
	cr_assert_eq(custody_keyspec_parse("ec:p521", &s, &err), CUSTODY_EUSAGE);
	cr_assert_eq(custody_keyspec_parse("dsa:2048", &s, &err), CUSTODY_EUSAGE);
	cr_assert_eq(custody_keyspec_parse("", &s, &err), CUSTODY_EUSAGE);
	cr_assert_eq(custody_keyspec_parse(NULL, &s, &err), CUSTODY_EUSAGE);
}

/* ---------------------------------------------------------- generation */

Test(request, rsa2048_is_sensitive_never_extractable_local)
{
	generate_and_check("rsa:2048", "RSA-2048", 0);
}

Test(request, ec_p256_is_sensitive_never_extractable_local)
{
	generate_and_check("ec:p256", "EC-P256", 0);
}

Test(request, ec_p384_is_sensitive_never_extractable_local)
{
	generate_and_check("ec:p384", "EC-P384", 0);
}

Test(request, rsa3072_generates)
{
	generate_and_check("rsa:3072", "RSA-3072", 0);
}

Test(request, replicable_is_extractable_under_trusted_wrap_only)
{
	generate_and_check("ec:p256", "EC-P256", 1);
}

Test(request, label_and_subject_on_both_objects)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_keyspec spec;
	custody_err err = {0};
	char id[CUSTODY_KEY_ID_HEX + 1];
	X509_NAME *name = X509_NAME_new();
	unsigned char *der = NULL, *v = NULL;
	int der_len;
	size_t len, used_n = 0;
	CK_OBJECT_CLASS cls;
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}};
	CK_OBJECT_HANDLE *h = NULL;
	int used = -1;

	cr_assert_not_null(name);
	cr_assert_eq(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
						(const unsigned char *)"sts.example.test",
						-1, -1, 0), 1);
	der_len = i2d_X509_NAME(name, &der);
	parse_spec("ec:p256", &spec);
	cr_assert_eq(custody_token_label_used(tok, "sts key", &used, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(used, 0);
	cr_assert_eq(custody_token_generate(tok, &spec, "sts key", name, 0, id,
					    NULL, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_token_label_used(tok, "sts key", &used, &err),
		     CUSTODY_OK);
	cr_assert_eq(used, 1);
	for (cls = CKO_PUBLIC_KEY; cls <= CKO_PRIVATE_KEY; cls++) {
		cr_assert_eq(token_find(tok, t, 1, &h, &used_n, &err), CUSTODY_OK);
		cr_assert_eq(used_n, 1);
		cr_assert_eq(token_get_attr(tok, h[0], CKA_LABEL, &v, &len, &err),
			     CUSTODY_OK);
		cr_assert_eq(len, 7);
		cr_assert_eq(memcmp(v, "sts key", 7), 0);
		free(v);
		cr_assert_eq(token_get_attr(tok, h[0], CKA_SUBJECT, &v, &len, &err),
			     CUSTODY_OK);
		cr_assert_eq(len, (size_t)der_len);
		cr_assert_eq(memcmp(v, der, len), 0);
		free(v);
		free(h);
		h = NULL;
	}
	OPENSSL_free(der);
	X509_NAME_free(name);
	custody_token_close(tok);
}

Test(request, label_in_use_is_refused_and_nothing_is_created)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_keyspec spec;
	custody_err err = {0};
	char id[CUSTODY_KEY_ID_HEX + 1];
	EVP_PKEY *pub = (EVP_PKEY *)&err;	/* must be reset to NULL */

	parse_spec("ec:p256", &spec);
	cr_assert_eq(custody_token_generate(tok, &spec, "taken", NULL, 0, id,
					    NULL, &err), CUSTODY_OK, "%s", err.msg);
	custody_token_intent_done(tok, id);
	cr_assert_eq(count_class(tok, -1), 2);
	cr_assert_eq(custody_token_generate(tok, &spec, "taken", NULL, 0, id,
					    &pub, &err), CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "label taken is already on token custody request");
	cr_assert_null(pub);
	cr_assert_eq(count_class(tok, -1), 2, "nothing was created");
	custody_token_close(tok);
}

Test(request, not_logged_in_is_refused)
{
	custody_token_spec s = softhsm_fixture_spec(&fx);
	custody_token *tok = NULL;
	custody_keyspec spec;
	custody_err err = {0};
	char id[CUSTODY_KEY_ID_HEX + 1];

	cr_assert_eq(custody_token_open(&s, &tok, &err), CUSTODY_OK, "%s", err.msg);
	parse_spec("ec:p256", &spec);
	cr_assert_eq(custody_token_generate(tok, &spec, "x", NULL, 0, id, NULL,
					    &err), CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "cannot generate a key pair on token custody "
			 "request: not logged in") != NULL, "%s", err.msg);
	custody_token_close(tok);
}

Test(request, bad_label_is_usage_error)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_keyspec spec;
	custody_err err = {0};
	char id[CUSTODY_KEY_ID_HEX + 1];

	parse_spec("ec:p256", &spec);
	cr_assert_eq(custody_token_generate(tok, &spec, "", NULL, 0, id, NULL,
					    &err), CUSTODY_EUSAGE);
	cr_assert_eq(custody_token_generate(tok, &spec, NULL, NULL, 0, id, NULL,
					    &err), CUSTODY_EUSAGE);
	cr_assert_eq(count_class(tok, -1), 0);
	custody_token_close(tok);
}

/* ------------------------------------------------ signing through libp11 */

/* A CSR signed by the token's key verifies with the generated public key. */
static void
csr_through_libp11(const char *spec_text)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_token_evp *evp = NULL;
	custody_keyspec spec;
	custody_err err = {0};
	char id[CUSTODY_KEY_ID_HEX + 1];
	EVP_PKEY *pub = NULL;
	X509_REQ *req = X509_REQ_new();
	int present = 0;

	parse_spec(spec_text, &spec);
	cr_assert_eq(custody_token_generate(tok, &spec, "csr", NULL, 0, id, &pub,
					    &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_token_evp_open(tok, id, &evp, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_not_null(custody_token_evp_pkey(evp));
	cr_assert_eq(EVP_PKEY_eq(custody_token_evp_pkey(evp), pub), 1,
		     "libp11's key has the generated public key");
	cr_assert_eq(X509_REQ_set_pubkey(req, pub), 1);
	cr_assert_eq(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req),
						"CN", MBSTRING_UTF8,
						(const unsigned char *)"csr.test",
						-1, -1, 0), 1);
	cr_assert_gt(X509_REQ_sign(req, custody_token_evp_pkey(evp),
				   EVP_sha256()), 0);
	cr_assert_eq(X509_REQ_verify(req, pub), 1);
	/* While libp11 holds the key, tok's session is still logged in. */
	cr_assert_eq(custody_token_has_private_key(tok, id, &present, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(present, 1);
	custody_token_evp_close(evp);

	/* libp11 0.4.12 closed every session of the slot: tok has a new one,
	 * logged out, and can log in again. */
	cr_assert_eq(custody_token_has_private_key(tok, id, &present, &err),
		     CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "not logged in") != NULL, "%s", err.msg);
	cr_assert_eq(custody_token_login(tok, fx.user_pin, strlen(fx.user_pin),
					 &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_token_has_private_key(tok, id, &present, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(present, 1);
	X509_REQ_free(req);
	EVP_PKEY_free(pub);
	custody_token_close(tok);
}

Test(request, rsa_csr_signed_in_the_token_verifies)
{
	csr_through_libp11("rsa:2048");
}

Test(request, ec_csr_signed_in_the_token_verifies)
{
	csr_through_libp11("ec:p384");
}

Test(request, evp_unknown_key_is_not_found)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_token_evp *evp = (custody_token_evp *)&fx;
	custody_err err = {0};

	cr_assert_eq(custody_token_evp_open(tok, "00112233445566778899aabbccddeeff00112233",
					    &evp, &err), CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no private key with key id "
			 "00112233445566778899aabbccddeeff00112233 on token custody "
			 "request");
	cr_assert_null(evp);
	cr_assert_eq(custody_token_evp_open(tok, "xyz", &evp, &err), CUSTODY_EUSAGE);
	custody_token_close(tok);
}
