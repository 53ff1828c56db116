/*
 * test_token.c — the token module against throwaway SoftHSM tokens.
 *
 * Every test gets its own token directory (.init/.fini), since Criterion
 * runs tests in parallel processes.  PINs come from the fixture struct.
 * A few tests reach the raw PKCS#11 functions through token/internal.h:
 * to count objects, to sign with an imported key, and to put a counting
 * (or failing) wrapper in front of C_Login / C_GetTokenInfo /
 * C_CreateObject.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <custody/hexfmt.h>
#include <custody/log.h>
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

TestSuite(token, .init = setup, .fini = teardown);

/* ---------------------------------------------------------- helpers */

/* The key id computed here, independently of the library: SHA-1 of the
 * certificate's subjectPublicKey BIT STRING contents, lower-case hex. */
static void
expected_key_id(X509 *x, char hex[CUSTODY_KEY_ID_HEX + 1])
{
	const ASN1_BIT_STRING *bits = X509_get0_pubkey_bitstr(x);
	unsigned char md[SHA_DIGEST_LENGTH];

	SHA1(ASN1_STRING_get0_data(bits), (size_t)ASN1_STRING_length(bits), md);
	custody_hex_encode(md, sizeof(md), hex, 0);
}

/* Every object the logged-in session can see, counted with raw PKCS#11. */
static size_t
count_objects(custody_token *tok)
{
	CK_OBJECT_HANDLE h[256];
	CK_ULONG got = 0;
	size_t total = 0;

	cr_assert_eq(tok->f->C_FindObjectsInit(tok->session, NULL, 0), CKR_OK);
	do {
		cr_assert_eq(tok->f->C_FindObjects(tok->session, h, 256, &got),
			     CKR_OK);
		total += got;
	} while (got == 256);
	tok->f->C_FindObjectsFinal(tok->session);
	return total;
}

/* The one object of class cls with this hex key id. */
static CK_OBJECT_HANDLE
find_one(custody_token *tok, CK_OBJECT_CLASS cls, const char *key_id)
{
	unsigned char id[20];
	CK_ATTRIBUTE t[] = {
		{CKA_CLASS, &cls, sizeof(cls)},
		{CKA_ID, id, sizeof(id)},
	};
	CK_OBJECT_HANDLE h[2];
	CK_ULONG got = 0;

	cr_assert_eq(custody_hex_decode(key_id, id, sizeof(id)), 20);
	cr_assert_eq(tok->f->C_FindObjectsInit(tok->session, t, 2), CKR_OK);
	cr_assert_eq(tok->f->C_FindObjects(tok->session, h, 2, &got), CKR_OK);
	tok->f->C_FindObjectsFinal(tok->session);
	cr_assert_eq(got, 1, "expected one object of class %lu with id %s, "
		     "found %lu", (unsigned long)cls, key_id, (unsigned long)got);
	return h[0];
}

static CK_BBOOL
get_bool(custody_token *tok, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type)
{
	CK_BBOOL b = 2;
	CK_ATTRIBUTE a = {type, &b, sizeof(b)};

	cr_assert_eq(tok->f->C_GetAttributeValue(tok->session, h, &a, 1), CKR_OK);
	return b;
}

/* Signs a message with the token's private key (raw C_Sign) and checks
 * the signature with the certificate's public key in OpenSSL: the key
 * material on the token is the key of the certificate. */
static void
sign_and_verify(custody_token *tok, const char *key_id, X509 *cert)
{
	static const unsigned char msg[] = "custody signs this";
	EVP_PKEY *pub = X509_get0_pubkey(cert);
	int is_ec = EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC;
	CK_MECHANISM mech = {is_ec ? CKM_ECDSA : CKM_SHA256_RSA_PKCS, NULL, 0};
	CK_OBJECT_HANDLE key = find_one(tok, CKO_PRIVATE_KEY, key_id);
	unsigned char md[32], sig[1024], der[1024], *p = der;
	CK_ULONG sig_len = sizeof(sig);
	const unsigned char *to_verify = sig;
	size_t verify_len;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	SHA256(msg, sizeof(msg), md);
	cr_assert_eq(tok->f->C_SignInit(tok->session, &mech, key), CKR_OK);
	if (is_ec)
		cr_assert_eq(tok->f->C_Sign(tok->session, md, sizeof(md), sig,
					    &sig_len), CKR_OK);
	else
		cr_assert_eq(tok->f->C_Sign(tok->session, (unsigned char *)msg,
					    sizeof(msg), sig, &sig_len), CKR_OK);
	verify_len = sig_len;
	if (is_ec) {	/* r || s to DER */
		ECDSA_SIG *es = ECDSA_SIG_new();
		size_t half = sig_len / 2;

		ECDSA_SIG_set0(es, BN_bin2bn(sig, (int)half, NULL),
			       BN_bin2bn(sig + half, (int)half, NULL));
		verify_len = (size_t)i2d_ECDSA_SIG(es, &p);
		to_verify = der;
		ECDSA_SIG_free(es);
	}
	cr_assert_eq(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub), 1);
	cr_assert_eq(EVP_DigestVerify(ctx, to_verify, verify_len, msg,
				      sizeof(msg)), 1,
		     "the token's signature does not verify with the "
		     "certificate");
	EVP_MD_CTX_free(ctx);
}

/* A CA (EC P-256) and a leaf of key type spec issued by it. */
struct pki {
	EVP_PKEY *ca_key, *key;
	X509 *ca, *leaf;
	STACK_OF(X509) *chain;
};

static void
make_pki(struct pki *p, const char *spec, const char *cn)
{
	p->ca_key = testcert_key("ec:p256");
	p->ca = testcert_self_signed(p->ca_key, "custody test CA", NULL, 0, 365);
	p->key = testcert_key(spec);
	p->leaf = testcert_issued(p->key, cn, p->ca, p->ca_key, 90);
	p->chain = sk_X509_new_null();
	sk_X509_push(p->chain, p->ca);
}

static void
free_pki(struct pki *p)
{
	sk_X509_free(p->chain);
	X509_free(p->leaf);
	X509_free(p->ca);
	EVP_PKEY_free(p->key);
	EVP_PKEY_free(p->ca_key);
}

static const custody_token_cert *
cert_with_id(const custody_token_cert *certs, size_t n, const char *key_id)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(certs[i].key_id, key_id) == 0)
			return &certs[i];
	}
	cr_assert_fail("no certificate with key id %s on the token", key_id);
	return NULL;
}

static void
assert_der(const custody_token_cert *c, X509 *x)
{
	unsigned char *der = NULL;
	int len = i2d_X509(x, &der);

	cr_assert_eq(c->der_len, (size_t)len);
	cr_assert_arr_eq(c->der, der, (size_t)len);
	OPENSSL_free(der);
}

/* ------------------------------------------- a wrapped function list */

static CK_FUNCTION_LIST wrapped, *real;
static int login_calls, create_calls, fail_create_at, sign_calls, find_calls;
static CK_FLAGS extra_flags;

static CK_RV
w_login(CK_SESSION_HANDLE s, CK_USER_TYPE u, CK_UTF8CHAR *pin, CK_ULONG len)
{
	login_calls++;
	return real->C_Login(s, u, pin, len);
}

static CK_RV
w_get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO *info)
{
	CK_RV rv = real->C_GetTokenInfo(slot, info);

	info->flags |= extra_flags;
	return rv;
}

static CK_RV
w_create(CK_SESSION_HANDLE s, CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_HANDLE *h)
{
	if (++create_calls == fail_create_at)
		return CKR_DEVICE_MEMORY;
	return real->C_CreateObject(s, t, n, h);
}

static CK_RV
w_sign_init(CK_SESSION_HANDLE s, CK_MECHANISM *m, CK_OBJECT_HANDLE key)
{
	sign_calls++;
	return real->C_SignInit(s, m, key);
}

static CK_RV
w_find_init(CK_SESSION_HANDLE s, CK_ATTRIBUTE *t, CK_ULONG n)
{
	find_calls++;
	return real->C_FindObjectsInit(s, t, n);
}

static void
wrap(custody_token *tok)
{
	real = tok->f;
	wrapped = *real;
	wrapped.C_Login = w_login;
	wrapped.C_GetTokenInfo = w_get_token_info;
	wrapped.C_CreateObject = w_create;
	wrapped.C_SignInit = w_sign_init;
	wrapped.C_FindObjectsInit = w_find_init;
	tok->f = &wrapped;
}

static void
unwrap(custody_token *tok)
{
	tok->f = real;
}

/* ------------------------------------------------------ open / find */

Test(token, open_by_label)
{
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_token *tok = NULL;
	custody_err err = {0};

	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_str_eq(custody_token_label(tok), "custody test");
	cr_assert_eq(strlen(custody_token_serial(tok)), 16,
		     "serial '%s' is not trimmed", custody_token_serial(tok));
	custody_token_close(tok);
}

Test(token, open_the_only_token_without_label)
{
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_token *tok = NULL;
	custody_err err = {0};

	spec.label = NULL;
	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_str_eq(custody_token_label(tok), "custody test");
	custody_token_close(tok);
}

Test(token, open_by_uri)
{
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_token *tok = NULL;
	custody_err err = {0};
	char serial[17], uri[256];

	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_OK);
	snprintf(serial, sizeof(serial), "%s", custody_token_serial(tok));
	custody_token_close(tok);

	/* Percent-encoded label, object/type ignored for token selection;
	 * the label in the spec is overridden by token= of the URI. */
	snprintf(uri, sizeof(uri), "pkcs11:token=custody%%20test;serial=%s;"
		 "manufacturer=SoftHSM%%20project;object=x;type=private", serial);
	spec.label = "some other label";
	spec.uri = uri;
	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_str_eq(custody_token_label(tok), "custody test");
	cr_assert_str_eq(custody_token_serial(tok), serial);
	custody_token_close(tok);

	spec.uri = "pkcs11:serial=0000000000000000";
	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_EFAIL);
	cr_assert_null(tok);
	cr_assert_str_eq(err.msg, "no token matching token=some other label, "
			 "serial=0000000000000000; tokens present: custody test");
}

Test(token, uri_with_pin_value_is_refused)
{
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_token *tok = NULL;
	custody_err err = {0};
	const char *uris[] = {
		"pkcs11:token=custody%20test?pin-value=12345678",
		"pkcs11:token=custody%20test;pin-value=12345678",
	};

	for (size_t i = 0; i < 2; i++) {
		spec.uri = uris[i];
		cr_assert_eq(custody_token_open(&spec, &tok, &err),
			     CUSTODY_EUSAGE, "%s accepted", uris[i]);
		cr_assert_null(tok);
		cr_assert_not_null(strstr(err.msg, "pin-value is not accepted"),
				   "%s", err.msg);
		cr_assert_null(strstr(err.msg, "12345678"), "PIN echoed: %s",
			       err.msg);
	}
	spec.uri = "pkcs11:token=custody%2";
	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "invalid PKCS#11 URI: bad percent-encoding "
			 "in attribute token");
}

Test(token, wrong_label_lists_tokens_present)
{
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_token *tok = NULL;
	custody_err err = {0};

	spec.label = "nope";
	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_EFAIL);
	cr_assert_null(tok);
	cr_assert_str_eq(err.msg, "no token labelled nope; tokens present: "
			 "custody test");
}

Test(token, missing_module)
{
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_token *tok = NULL;
	custody_err err = {0};
	const char *prefix = "cannot load PKCS#11 module /nonexistent/libnope.so: ";

	spec.module = "/nonexistent/libnope.so";
	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_EFAIL);
	cr_assert_null(tok);
	cr_assert_eq(strncmp(err.msg, prefix, strlen(prefix)), 0, "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "No such file"), "%s", err.msg);
}

Test(token, init_refuses_an_existing_label)
{
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_token *tok = NULL;
	custody_err err = {0};
	char expected[128];

	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_OK);
	snprintf(expected, sizeof(expected), "cannot initialise token custody "
		 "test: a token with that label exists (serial %s)",
		 custody_token_serial(tok));
	custody_token_close(tok);
	cr_assert_eq(custody_token_init(&spec, "custody test", "87654321", 8,
					"12345678", 8, &err), CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, expected);

	/* A second label works, and both are then listed. */
	cr_assert_eq(custody_token_init(&spec, "second", "87654321", 8,
					"12345678", 8, &err), CUSTODY_OK, "%s",
		     err.msg);
	spec.label = "nope";
	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_EFAIL);
	cr_assert(strcmp(err.msg, "no token labelled nope; tokens present: "
			 "custody test, second") == 0 ||
		  strcmp(err.msg, "no token labelled nope; tokens present: "
			 "second, custody test") == 0, "%s", err.msg);
	spec.label = NULL;
	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_EFAIL);
	cr_assert_not_null(strstr(err.msg, "several tokens present: "), "%s",
			   err.msg);
}

/* ------------------------------------------------------------ login */

Test(token, login_with_the_right_pin)
{
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_token *tok = NULL;
	custody_err err = {0};
	int present = -1;

	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_OK);
	cr_assert_eq(custody_token_has_private_key(tok, "00", &present, &err),
		     CUSTODY_EFAIL, "a private key search before login");
	cr_assert_not_null(strstr(err.msg, "not logged in"), "%s", err.msg);
	cr_assert_eq(custody_token_login(tok, fx.user_pin, strlen(fx.user_pin),
					 &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_token_has_private_key(tok, "00", &present, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(present, 0);
	custody_token_close(tok);
}

Test(token, wrong_pin_is_tried_once)
{
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_token *tok = NULL;
	custody_err err = {0};
	char wrong[9];
	CK_TOKEN_INFO ti;

	snprintf(wrong, sizeof(wrong), "%s", fx.user_pin);
	wrong[0] = wrong[0] == '9' ? '0' : (char)(wrong[0] + 1);
	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_OK);
	wrap(tok);
	login_calls = 0;
	cr_assert_eq(custody_token_login(tok, wrong, strlen(wrong), &err),
		     CUSTODY_EPIN);
	cr_assert_eq(login_calls, 1, "C_Login called %d times", login_calls);
	cr_assert_str_eq(err.msg, "cannot log in to token custody test: the "
			 "token rejected the PIN");
	/* SoftHSM now says count low, and the hint says so. */
	cr_assert_eq(real->C_GetTokenInfo(tok->slot, &ti), CKR_OK);
	cr_assert(ti.flags & CKF_USER_PIN_COUNT_LOW);
	cr_assert_str_eq(err.hint, "the token says few tries are left before "
			 "the PIN locks");
	/* The right PIN still works: one more call. */
	cr_assert_eq(custody_token_login(tok, fx.user_pin, strlen(fx.user_pin),
					 &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(login_calls, 2);
	unwrap(tok);
	custody_token_close(tok);
}

Test(token, login_refused_without_c_login_when_the_token_says_so)
{
	static const struct {
		CK_FLAGS flags;
		const char *msg;
	} cases[] = {
		{CKF_USER_PIN_FINAL_TRY, "cannot log in to token custody test: "
		 "the token says one more wrong PIN locks it"},
		{CKF_USER_PIN_LOCKED, "cannot log in to token custody test: the "
		 "user PIN is locked"},
	};
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_token *tok = NULL;
	custody_err err = {0};

	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_OK);
	wrap(tok);
	for (size_t i = 0; i < 2; i++) {
		login_calls = 0;
		extra_flags = cases[i].flags;
		cr_assert_eq(custody_token_login(tok, fx.user_pin,
						 strlen(fx.user_pin), &err),
			     CUSTODY_EPIN);
		cr_assert_str_eq(err.msg, cases[i].msg);
		cr_assert_eq(login_calls, 0, "C_Login was called");
	}
	extra_flags = 0;
	unwrap(tok);
	custody_token_close(tok);
}

Test(token, login_refused_when_the_user_pin_is_not_set)
{
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_token *tok = NULL;
	custody_err err = {0};
	CK_SLOT_ID slots[8];
	CK_ULONG n = 8;
	CK_TOKEN_INFO ti;
	unsigned char label[32];
	CK_SLOT_ID free_slot = (CK_SLOT_ID)-1;

	/* A token initialised by the SO whose user PIN was never set. */
	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_OK);
	cr_assert_eq(tok->f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	for (CK_ULONG i = 0; i < n; i++) {
		cr_assert_eq(tok->f->C_GetTokenInfo(slots[i], &ti), CKR_OK);
		if (!(ti.flags & CKF_TOKEN_INITIALIZED))
			free_slot = slots[i];
	}
	cr_assert_neq(free_slot, (CK_SLOT_ID)-1);
	memset(label, ' ', sizeof(label));
	memcpy(label, "no user pin", 11);
	cr_assert_eq(tok->f->C_InitToken(free_slot, (CK_UTF8CHAR *)fx.so_pin,
					 strlen(fx.so_pin), label), CKR_OK);
	custody_token_close(tok);

	spec.label = "no user pin";
	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_OK, "%s",
		     err.msg);
	wrap(tok);
	login_calls = 0;
	cr_assert_eq(custody_token_login(tok, fx.user_pin, strlen(fx.user_pin),
					 &err), CUSTODY_EPIN);
	cr_assert_str_eq(err.msg, "cannot log in to token no user pin: the user "
			 "PIN is not initialised");
	cr_assert_eq(login_calls, 0);
	unwrap(tok);
	custody_token_close(tok);
}

Test(token, two_handles_in_one_process)
{
	custody_token *a = softhsm_fixture_open(&fx);
	custody_token *b = softhsm_fixture_open(&fx);
	struct pki p;
	custody_err err = {0};
	char id[CUSTODY_KEY_ID_HEX + 1];
	int present = 0;

	/* Both took the one lock of this process; closing the first keeps
	 * the second logged in. */
	make_pki(&p, "ec:p256", "two handles");
	expected_key_id(p.leaf, id);
	cr_assert_eq(custody_token_import(a, p.key, p.leaf, NULL, NULL, 0, NULL,
					  &err), CUSTODY_OK, "%s", err.msg);
	custody_token_close(a);
	cr_assert_eq(custody_token_has_private_key(b, id, &present, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(present, 1);
	custody_token_close(b);
	free_pki(&p);
}

/* ------------------------------------------------------ kept checks */

/* A key proved (signed with, the signature verified with its certificate)
 * and its certificate object remembered: what a watcher does between
 * syncs. */
static void
prove_and_remember(custody_token *tok, const char *id, X509 *cert)
{
	custody_token_import_result res;
	custody_err err = {0};

	cr_assert_eq(custody_token_verify_key(tok, id, cert, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(custody_token_import(tok, NULL, cert, NULL, NULL, 0, &res,
					  &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_token_remember_checked(tok, id, cert, &err),
		     CUSTODY_OK, "%s", err.msg);
}

static int
key_checked(custody_token *tok, const char *id, X509 *cert)
{
	custody_err err = {0};
	int checked = -1;

	cr_assert_eq(custody_token_key_checked(tok, id, cert, &checked, &err),
		     CUSTODY_OK, "%s", err.msg);
	return checked;
}

/* The lock let go and taken again, as between two syncs: what was found
 * while it was held is forgotten. */
static void
between_syncs(custody_token *tok)
{
	custody_err err = {0};

	cr_assert_eq(custody_token_unlock(tok, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_token_relock(tok, &err), CUSTODY_OK, "%s", err.msg);
}

Test(token, a_kept_check_needs_no_search_nor_signature_while_its_objects_stay)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_err err = {0};
	char id[CUSTODY_KEY_ID_HEX + 1];
	struct pki p;

	make_pki(&p, "ec:p256", "kept.example");
	expected_key_id(p.leaf, id);
	cr_assert_eq(custody_token_import(tok, p.key, p.leaf, NULL, NULL, 0, NULL,
					  &err), CUSTODY_OK, "%s", err.msg);
	wrap(tok);
	/* Off (the default): nothing is remembered, nothing taken as proved. */
	prove_and_remember(tok, id, p.leaf);
	cr_assert_eq(key_checked(tok, id, p.leaf), 0);

	custody_token_keep_checks(tok, 1);
	cr_assert_eq(key_checked(tok, id, p.leaf), 0, "proved before keep");
	prove_and_remember(tok, id, p.leaf);
	between_syncs(tok);
	sign_calls = find_calls = 0;
	cr_assert_eq(key_checked(tok, id, p.leaf), 1);
	cr_assert_eq(sign_calls, 0, "a kept check signed");
	cr_assert_eq(find_calls, 0, "a kept check searched the token");
	/* Not for another certificate of the same key (a renewal). */
	X509 *renewed = testcert_issued(p.key, "kept.example", p.ca, p.ca_key, 30);
	cr_assert_eq(key_checked(tok, id, renewed), 0);
	X509_free(renewed);

	/* Off again (a periodic sync): proved in full; kept for the next. */
	custody_token_keep_checks(tok, 0);
	cr_assert_eq(key_checked(tok, id, p.leaf), 0);
	custody_token_keep_checks(tok, 1);
	cr_assert_eq(key_checked(tok, id, p.leaf), 1);
	unwrap(tok);
	custody_token_close(tok);
	free_pki(&p);
}

/* Someone with the user PIN moves the key id of the proved key to another
 * key (CKA_ID can be changed, the key material cannot): the kept check no
 * longer answers, and the full check finds the key that does not match. */
Test(token, a_key_id_moved_to_another_key_is_proved_again_and_refused)
{
	custody_token *tok = softhsm_fixture_open(&fx), *other;
	CK_ATTRIBUTE moved_away = {CKA_ID, (CK_BYTE *)"\xff\xfe", 2};
	CK_ATTRIBUTE moved_in = {CKA_ID, NULL, 0};
	unsigned char raw[20];
	custody_err err = {0};
	char id[CUSTODY_KEY_ID_HEX + 1], id_b[CUSTODY_KEY_ID_HEX + 1];
	struct pki a, b;

	make_pki(&a, "ec:p256", "a.example");
	make_pki(&b, "ec:p256", "b.example");
	expected_key_id(a.leaf, id);
	expected_key_id(b.leaf, id_b);
	cr_assert_eq(custody_token_import(tok, a.key, a.leaf, NULL, NULL, 0, NULL,
					  &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_token_import(tok, b.key, b.leaf, NULL, NULL, 0, NULL,
					  &err), CUSTODY_OK, "%s", err.msg);
	custody_token_keep_checks(tok, 1);
	prove_and_remember(tok, id, a.leaf);
	between_syncs(tok);
	cr_assert_eq(key_checked(tok, id, a.leaf), 1);

	other = softhsm_fixture_open(&fx);
	for (size_t i = 0; i < sizeof(raw); i++)
		sscanf(id + 2 * i, "%2hhx", &raw[i]);
	moved_in.pValue = raw;
	moved_in.ulValueLen = sizeof(raw);
	cr_assert_eq(other->f->C_SetAttributeValue(other->session,
		     find_one(other, CKO_PRIVATE_KEY, id), &moved_away, 1), CKR_OK);
	cr_assert_eq(other->f->C_SetAttributeValue(other->session,
		     find_one(other, CKO_PRIVATE_KEY, id_b), &moved_in, 1), CKR_OK);
	custody_token_close(other);
	between_syncs(tok);

	cr_assert_eq(key_checked(tok, id, a.leaf), 0);
	cr_assert_eq(custody_token_verify_key(tok, id, a.leaf, &err), CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "does not match certificate") != NULL, "%s",
		  err.msg);
	custody_token_close(tok);
	free_pki(&a);
	free_pki(&b);
}

/* ----------------------------------------------------------- import */

static void
import_with_chain(const char *spec_str, unsigned long key_type)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_token_import_result res;
	custody_token_cert *certs = NULL;
	custody_key_attrs attrs;
	custody_err err = {0};
	char id[CUSTODY_KEY_ID_HEX + 1], ca_id[CUSTODY_KEY_ID_HEX + 1];
	const custody_token_cert *c;
	CK_OBJECT_HANDLE pub;
	size_t n = 0;
	struct pki p;

	make_pki(&p, spec_str, "leaf.example");
	expected_key_id(p.leaf, id);
	expected_key_id(p.ca, ca_id);
	cr_assert_eq(custody_token_import(tok, p.key, p.leaf, p.chain, NULL, 0,
					  &res, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(res.created_key, 1);
	cr_assert_eq(res.created_cert, 1);
	cr_assert_eq(res.created_chain, 1);
	cr_assert_str_eq(res.key_id, id);
	/* private key, public key, certificate, CA certificate */
	cr_assert_eq(count_objects(tok), 4);

	cr_assert_eq(custody_token_list_certs(tok, &certs, &n, &err), CUSTODY_OK);
	cr_assert_eq(n, 2);
	c = cert_with_id(certs, n, id);
	cr_assert_eq(c->has_private_key, 1);
	cr_assert_str_eq(c->label, "leaf.example");
	assert_der(c, p.leaf);
	c = cert_with_id(certs, n, ca_id);
	cr_assert_eq(c->has_private_key, 0);
	cr_assert_str_eq(c->label, "custody test CA");
	assert_der(c, p.ca);
	custody_token_certs_free(certs, n);

	cr_assert_eq(custody_token_key_attrs(tok, id, &attrs, &err), CUSTODY_OK);
	cr_assert_eq(attrs.token, 1);
	cr_assert_eq(attrs.private_, 1);
	cr_assert_eq(attrs.sensitive, 1);
	cr_assert_eq(attrs.extractable, 0);
	cr_assert_eq(attrs.sign, 1);
	cr_assert_eq(attrs.key_type, key_type);
	cr_assert_eq(get_bool(tok, find_one(tok, CKO_PRIVATE_KEY, id),
			      CKA_DECRYPT), CK_FALSE);
	cr_assert_eq(get_bool(tok, find_one(tok, CKO_PRIVATE_KEY, id),
			      CKA_DERIVE), CK_FALSE);
	pub = find_one(tok, CKO_PUBLIC_KEY, id);
	cr_assert_eq(get_bool(tok, pub, CKA_VERIFY), CK_TRUE);
	cr_assert_eq(get_bool(tok, pub, CKA_PRIVATE), CK_FALSE);
	sign_and_verify(tok, id, p.leaf);
	custody_token_close(tok);
	free_pki(&p);
}

Test(token, import_rsa2048_with_chain)
{
	import_with_chain("rsa:2048", CKK_RSA);
}

Test(token, import_ec_p256_with_chain)
{
	import_with_chain("ec:p256", CKK_EC);
}

Test(token, import_ec_p384_with_chain)
{
	import_with_chain("ec:p384", CKK_EC);
}

Test(token, import_ec_p521)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_err err = {0};
	char id[CUSTODY_KEY_ID_HEX + 1];
	struct pki p;

	make_pki(&p, "ec:p521", "p521.example");
	expected_key_id(p.leaf, id);
	cr_assert_eq(custody_token_import(tok, p.key, p.leaf, NULL, "my label",
					  0, NULL, &err), CUSTODY_OK, "%s",
		     err.msg);
	sign_and_verify(tok, id, p.leaf);
	custody_token_close(tok);
	free_pki(&p);
}

Test(token, import_replicable)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_key_attrs attrs;
	custody_err err = {0};
	int trusted = -1;
	char id[CUSTODY_KEY_ID_HEX + 1];
	struct pki p;

	make_pki(&p, "rsa:2048", "replicable.example");
	expected_key_id(p.leaf, id);
	cr_assert_eq(custody_token_import(tok, p.key, p.leaf, NULL, NULL, 1,
					  NULL, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_token_key_attrs(tok, id, &attrs, &err), CUSTODY_OK);
	cr_assert_eq(attrs.private_, 1);
	cr_assert_eq(attrs.sensitive, 1);
	cr_assert_eq(attrs.extractable, 1);
	/* CKA_WRAP_WITH_TRUSTED only where the token can hold a trusted
	 * private KEK (token/wrap.c's probe): SoftHSM 2.6.1 cannot, and a
	 * trusted-only key could then never be wrapped under the KEK. */
	cr_assert_eq(token_probe_trusted_private_kek(tok, &trusted, &err),
		     CUSTODY_OK);
	cr_assert_eq(attrs.wrap_with_trusted, trusted);
	cr_assert_eq(attrs.sign, 1);
	custody_token_close(tok);
	free_pki(&p);
}

Test(token, reimport_creates_nothing)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_token_import_result res;
	custody_err err = {0};
	struct pki p;

	make_pki(&p, "ec:p256", "again.example");
	cr_assert_eq(custody_token_import(tok, p.key, p.leaf, p.chain, NULL, 0,
					  &res, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(count_objects(tok), 4);
	cr_assert_eq(custody_token_import(tok, p.key, p.leaf, p.chain, NULL, 0,
					  &res, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(res.created_key, 0);
	cr_assert_eq(res.created_cert, 0);
	cr_assert_eq(res.created_chain, 0);
	cr_assert_eq(count_objects(tok), 4);
	/* The certificate alone, again: nothing either. */
	cr_assert_eq(custody_token_import(tok, NULL, p.leaf, NULL, NULL, 0,
					  &res, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(res.created_cert, 0);
	cr_assert_eq(count_objects(tok), 4);
	custody_token_close(tok);
	free_pki(&p);
}

Test(token, certificate_alone_onto_its_key)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_token_import_result res;
	custody_token_cert *certs = NULL;
	custody_err err = {0};
	char id[CUSTODY_KEY_ID_HEX + 1];
	X509 *renewed;
	size_t n = 0;
	struct pki p;

	make_pki(&p, "rsa:2048", "renew.example");
	expected_key_id(p.leaf, id);
	cr_assert_eq(custody_token_import(tok, p.key, p.leaf, NULL, NULL, 0,
					  &res, &err), CUSTODY_OK, "%s", err.msg);
	/* A renewed certificate for the same key, without the key. */
	renewed = testcert_issued(p.key, "renew.example", p.ca, p.ca_key, 365);
	cr_assert_eq(custody_token_import(tok, NULL, renewed, NULL, "renewed",
					  0, &res, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(res.created_key, 0);
	cr_assert_eq(res.created_cert, 1);
	cr_assert_str_eq(res.key_id, id);
	cr_assert_eq(count_objects(tok), 4);
	cr_assert_eq(custody_token_list_certs(tok, &certs, &n, &err), CUSTODY_OK);
	cr_assert_eq(n, 2);
	for (size_t i = 0; i < n; i++) {
		cr_assert_str_eq(certs[i].key_id, id);
		cr_assert_eq(certs[i].has_private_key, 1);
	}
	custody_token_certs_free(certs, n);
	X509_free(renewed);
	custody_token_close(tok);
	free_pki(&p);
}

Test(token, certificate_alone_without_its_key_fails)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_err err = {0};
	char id[CUSTODY_KEY_ID_HEX + 1], expected[200];
	struct pki p;

	make_pki(&p, "ec:p256", "orphan.example");
	expected_key_id(p.leaf, id);
	cr_assert_eq(custody_token_import(tok, NULL, p.leaf, p.chain, NULL, 0,
					  NULL, &err), CUSTODY_EFAIL);
	snprintf(expected, sizeof(expected),
		 "no private key with key id %s on token custody test", id);
	cr_assert_str_eq(err.msg, expected);
	cr_assert_eq(count_objects(tok), 0);
	custody_token_close(tok);
	free_pki(&p);
}

Test(token, unsupported_keys_create_nothing)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_err err = {0};
	EVP_PKEY *ed = testcert_key("ed25519"), *k1 = testcert_key("ec:secp256k1");
	X509 *ed_cert = testcert_self_signed(ed, "ed.example", NULL, 0, 30);
	X509 *k1_cert = testcert_self_signed(k1, "k1.example", NULL, 0, 30);

	cr_assert_eq(custody_token_import(tok, ed, ed_cert, NULL, NULL, 0, NULL,
					  &err), CUSTODY_EFAIL);
	cr_assert_not_null(strstr(err.msg, "ED25519 keys are not supported"),
			   "%s", err.msg);
	cr_assert_eq(count_objects(tok), 0);
	cr_assert_eq(custody_token_import(tok, k1, k1_cert, NULL, NULL, 0, NULL,
					  &err), CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "cannot import the private key: EC curve "
			 "secp256k1 is not supported (P-256, P-384, P-521 are)");
	cr_assert_eq(count_objects(tok), 0);
	X509_free(ed_cert);
	X509_free(k1_cert);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(k1);
	custody_token_close(tok);
}

Test(token, key_that_does_not_match_creates_nothing)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_err err = {0};
	struct pki p;

	make_pki(&p, "ec:p256", "mismatch.example");
	cr_assert_eq(custody_token_import(tok, p.ca_key, p.leaf, NULL, NULL, 0,
					  NULL, &err), CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "cannot import: the private key does not "
			 "match the certificate");
	cr_assert_eq(count_objects(tok), 0);
	custody_token_close(tok);
	free_pki(&p);
}

Test(token, all_or_nothing_when_a_later_object_fails)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_err err = {0};
	struct pki p;

	make_pki(&p, "rsa:2048", "fail.example");
	wrap(tok);
	/* Calls: 1 private key, 2 public key, 3 certificate, 4 CA cert. */
	for (int at = 2; at <= 4; at++) {
		create_calls = 0;
		fail_create_at = at;
		cr_assert_eq(custody_token_import(tok, p.key, p.leaf, p.chain,
						  NULL, 0, NULL, &err),
			     CUSTODY_EFAIL, "failing call %d", at);
		cr_assert_eq(create_calls, at);
		cr_assert_not_null(strstr(err.msg, ": CKR_DEVICE_MEMORY"), "%s",
				   err.msg);
		cr_assert_eq(count_objects(tok), 0,
			     "objects left after call %d failed", at);
	}
	fail_create_at = 0;
	unwrap(tok);
	custody_token_close(tok);
	free_pki(&p);
}

Test(token, not_logged_in_import_creates_nothing)
{
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_token *tok = NULL;
	custody_err err = {0};
	struct pki p;

	make_pki(&p, "ec:p256", "nologin.example");
	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_OK);
	cr_assert_eq(custody_token_import(tok, p.key, p.leaf, p.chain, NULL, 0,
					  NULL, &err), CUSTODY_EFAIL);
	cr_assert_eq(strncmp(err.msg, "cannot import on token custody test: not "
			     "logged in", 45), 0, "%s", err.msg);
	cr_assert_eq(custody_token_login(tok, fx.user_pin, strlen(fx.user_pin),
					 &err), CUSTODY_OK);
	cr_assert_eq(count_objects(tok), 0);
	custody_token_close(tok);
	free_pki(&p);
}

/* ----------------------------------------------------------- delete */

Test(token, delete_removes_key_public_key_and_certificate)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_token_cert *certs = NULL;
	custody_key_attrs attrs;
	custody_err err = {0};
	char id[CUSTODY_KEY_ID_HEX + 1], ca_id[CUSTODY_KEY_ID_HEX + 1];
	int present = 1;
	size_t n = 0;
	struct pki p;

	make_pki(&p, "rsa:2048", "delete.example");
	expected_key_id(p.leaf, id);
	expected_key_id(p.ca, ca_id);
	cr_assert_eq(custody_token_import(tok, p.key, p.leaf, p.chain, NULL, 0,
					  NULL, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(count_objects(tok), 4);
	cr_assert_eq(custody_token_delete(tok, id, &err), CUSTODY_OK, "%s",
		     err.msg);
	/* The CA certificate (another key id) stays. */
	cr_assert_eq(count_objects(tok), 1);
	cr_assert_eq(custody_token_list_certs(tok, &certs, &n, &err), CUSTODY_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(certs[0].key_id, ca_id);
	custody_token_certs_free(certs, n);
	cr_assert_eq(custody_token_has_private_key(tok, id, &present, &err),
		     CUSTODY_OK);
	cr_assert_eq(present, 0);
	cr_assert_eq(custody_token_delete(tok, id, &err), CUSTODY_ENOTFOUND);
	cr_assert_eq(custody_token_key_attrs(tok, id, &attrs, &err),
		     CUSTODY_ENOTFOUND);
	cr_assert_eq(custody_token_delete(tok, "xyz", &err), CUSTODY_EUSAGE);
	custody_token_close(tok);
	free_pki(&p);
}

/* -------------------------------------------------------------- URI */

Test(token, key_uri)
{
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_token *tok = softhsm_fixture_open(&fx), *again = NULL;
	custody_err err = {0};
	char expected[256], *uri;

	snprintf(expected, sizeof(expected),
		 "pkcs11:token=custody%%20test;serial=%s;id=%%01%%ab%%ff;"
		 "object=my%%20key%%2Fv1;type=private", custody_token_serial(tok));
	uri = custody_token_key_uri(tok, "01abff", "my key/v1");
	cr_assert_str_eq(uri, expected);
	free(uri);
	uri = custody_token_key_uri(tok, "01", NULL);
	cr_assert_not_null(strstr(uri, ";id=%01;type=private"), "%s", uri);
	cr_assert_null(custody_token_key_uri(tok, "0g", NULL));
	custody_token_close(tok);

	/* The URI names the token again. */
	spec.label = NULL;
	spec.uri = uri;
	cr_assert_eq(custody_token_open(&spec, &again, &err), CUSTODY_OK, "%s",
		     err.msg);
	custody_token_close(again);
	free(uri);
}

/* ------------------------------------------------------------- lock */

/* The lock file's name, computed here from its definition. */
static void
expected_lock_path(char *out, size_t size)
{
	char module[PATH_MAX], text[2 * PATH_MAX + 2], hex[65];
	unsigned char md[SHA256_DIGEST_LENGTH];

	cr_assert_not_null(realpath(fx.module, module));
	snprintf(text, sizeof(text), "%s\n%s", module, fx.conf);
	SHA256((unsigned char *)text, strlen(text), md);
	custody_hex_encode(md, sizeof(md), hex, 0);
	snprintf(out, size, "%s/token-%.16s.lock", fx.lock_dir, hex);
}

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

Test(token, lock_timeout_names_the_lock_file)
{
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_token *tok = NULL;
	custody_err err = {0};
	char path[2 * PATH_MAX], expected[3 * PATH_MAX];
	double t0;
	int fd;

	expected_lock_path(path, sizeof(path));
	/* The fixture's custody_token_init made it. */
	fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0, "no lock file %s", path);
	cr_assert_eq(flock(fd, LOCK_EX), 0);
	spec.lock_timeout = 1;
	t0 = now_s();
	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_EFAIL);
	cr_assert_geq(now_s() - t0, 1.0);
	cr_assert_lt(now_s() - t0, 5.0);
	snprintf(expected, sizeof(expected),
		 "token is busy: another custody process holds %s", path);
	cr_assert_str_eq(err.msg, expected);
	cr_assert_null(tok);
	close(fd);
	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_OK, "%s",
		     err.msg);
	custody_token_close(tok);
}

/* Whether another open file description could take the lock now. */
static int
lock_free_for_others(const char *path)
{
	int fd = open(path, O_RDONLY), free_now;

	cr_assert_geq(fd, 0, "no lock file %s", path);
	free_now = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	return free_now;
}

Test(token, an_exclusive_handle_lets_go_of_its_lock_and_takes_it_again)
{
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_token *tok = NULL, *second = NULL;
	custody_err err = {0};
	char path[2 * PATH_MAX];
	int present = -1;

	expected_lock_path(path, sizeof(path));
	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(custody_token_login(tok, fx.user_pin, strlen(fx.user_pin), &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_not(lock_free_for_others(path), "the open handle holds it");
	cr_assert_eq(custody_token_unlock(tok, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert(lock_free_for_others(path), "let go: others may take it");
	cr_assert_eq(custody_token_relock(tok, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_not(lock_free_for_others(path), "taken again");
	/* Still logged in: a search for private keys needs it. */
	cr_assert_eq(custody_token_has_private_key(tok, "0102", &present, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(present, 0);
	/* A second handle of the process shares the lock: not let go. */
	cr_assert_eq(custody_token_open(&spec, &second, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(custody_token_unlock(tok, &err), CUSTODY_EUSAGE);
	cr_assert_not(lock_free_for_others(path));
	custody_token_close(second);
	/* Closed while let go: nothing is held after. */
	cr_assert_eq(custody_token_unlock(tok, &err), CUSTODY_OK, "%s", err.msg);
	custody_token_close(tok);
	cr_assert(lock_free_for_others(path));
}

static char step_lines[4096];

static void
capture(enum custody_log_level level, const char *line, void *ctx)
{
	(void)ctx;
	if (level == CUSTODY_LOG_STEP) {
		strncat(step_lines, line, sizeof(step_lines) - strlen(step_lines) - 2);
		strcat(step_lines, "\n");
	}
}

Test(token, waits_for_the_lock_and_says_so)
{
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_token *tok = NULL;
	custody_err err = {0};
	char path[2 * PATH_MAX];
	int ready[2], status;
	double t0;
	pid_t pid;
	char c;

	expected_lock_path(path, sizeof(path));
	cr_assert_eq(pipe(ready), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {		/* holds the lock for 1.5 s */
		int fd = open(path, O_RDONLY);

		if (fd < 0 || flock(fd, LOCK_EX) != 0)
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		usleep(1500000);
		_exit(0);
	}
	cr_assert_eq(read(ready[0], &c, 1), 1);
	custody_log_set_handler(capture, NULL);
	t0 = now_s();
	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_geq(now_s() - t0, 1.0, "did not wait for the lock");
	custody_log_set_handler(NULL, NULL);
	cr_assert_not_null(strstr(step_lines, "waiting for the token lock "),
			   "no narration: %s", step_lines);
	custody_token_close(tok);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

#define PER_CHILD 4

/* A child: PER_CHILD imports, each in its own open/login/close. */
static int
child_imports(EVP_PKEY **keys, X509 **certs)
{
	custody_token_spec spec = softhsm_fixture_spec(&fx);
	custody_err err = {0};

	for (int i = 0; i < PER_CHILD; i++) {
		custody_token *tok = NULL;
		custody_token_import_result res;

		if (custody_token_open(&spec, &tok, &err) != CUSTODY_OK ||
		    custody_token_login(tok, fx.user_pin, strlen(fx.user_pin),
					&err) != CUSTODY_OK ||
		    custody_token_import(tok, keys[i], certs[i], NULL, NULL, 0,
					 &res, &err) != CUSTODY_OK ||
		    !res.created_key || !res.created_cert) {
			fprintf(stderr, "child %d: %s\n", (int)getpid(), err.msg);
			custody_token_close(tok);
			return 1;
		}
		custody_token_close(tok);
	}
	return 0;
}

Test(token, two_processes_import_at_once)
{
	EVP_PKEY *keys[2][PER_CHILD];
	X509 *certs[2][PER_CHILD];
	custody_token_cert *listed = NULL;
	custody_err err = {0};
	custody_token *tok;
	char id[CUSTODY_KEY_ID_HEX + 1], cn[32];
	struct dirent *de;
	size_t n = 0, object_files = 0;
	pid_t pids[2];
	int status;
	DIR *d;

	for (int c = 0; c < 2; c++) {
		for (int i = 0; i < PER_CHILD; i++) {
			snprintf(cn, sizeof(cn), "child%d-%d", c, i);
			keys[c][i] = testcert_key("ec:p256");
			certs[c][i] = testcert_self_signed(keys[c][i], cn, NULL,
							   0, 30);
		}
	}
	for (int c = 0; c < 2; c++) {
		pids[c] = fork();
		cr_assert_geq(pids[c], 0);
		if (pids[c] == 0)
			_exit(child_imports(keys[c], certs[c]));
	}
	for (int c = 0; c < 2; c++) {
		cr_assert_eq(waitpid(pids[c], &status, 0), pids[c]);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			  "child %d failed", c);
	}
	tok = softhsm_fixture_open(&fx);
	cr_assert_eq(custody_token_list_certs(tok, &listed, &n, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(n, 2 * PER_CHILD);
	for (int c = 0; c < 2; c++) {
		for (int i = 0; i < PER_CHILD; i++) {
			const custody_token_cert *l;

			expected_key_id(certs[c][i], id);
			l = cert_with_id(listed, n, id);
			cr_assert_eq(l->has_private_key, 1);
			assert_der(l, certs[c][i]);
			EVP_PKEY_free(keys[c][i]);
			X509_free(certs[c][i]);
		}
	}
	custody_token_certs_free(listed, n);
	cr_assert_eq(count_objects(tok), 3 * 2 * PER_CHILD);
	custody_token_close(tok);

	/* On disk: one file per object (plus the token's own), none left
	 * behind half-written. */
	d = opendir(fx.tokens);
	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL) {
		DIR *sub;
		char path[2 * PATH_MAX];
		struct dirent *e;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", fx.tokens, de->d_name);
		sub = opendir(path);
		cr_assert_not_null(sub);
		while ((e = readdir(sub)) != NULL) {
			cr_assert_null(strcasestr(e->d_name, "corrupt"), "%s",
				       e->d_name);
			if (strstr(e->d_name, ".object") != NULL &&
			    strcmp(e->d_name, "token.object") != 0)
				object_files++;
		}
		closedir(sub);
	}
	closedir(d);
	cr_assert_eq(object_files, 3 * 2 * PER_CHILD);
}
