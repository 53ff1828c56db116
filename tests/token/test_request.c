/*
 * test_request.c — key pairs generated inside the token, and signing with
 * them: certificates and requests through custody's own calls
 * (custody_token_sign_req, custody_token_sign_cert: what `custody request`
 * uses), and OpenSSL's own signing through libp11 (custody_token_evp_*:
 * what the engine uses).
 *
 * Every test gets its own token directory (.init/.fini).  The attributes
 * are read back as the token reports them; objects are counted with raw
 * PKCS#11 through token/internal.h.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <custody/cert.h>
#include <custody/hexfmt.h>
#include <custody/token.h>
#include <custody/token_x509.h>

#include "../src/lib/token/internal.h"
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
	 * token can hold a trusted private KEK (token/wrap.c's probe):
	 * SoftHSM 2.6.1 cannot, and the key could never be wrapped. */
	cr_assert_eq(token_probe_trusted_private_kek(tok, &trusted, &err),
		     CUSTODY_OK);
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

/* ---------------------------------------- signing through custody's own calls */

static X509_NAME *
cn_name(const char *cn)
{
	X509_NAME *name = X509_NAME_new();

	cr_assert_not_null(name);
	cr_assert_eq(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
						(const unsigned char *)cn, -1,
						-1, 0), 1);
	return name;
}

static X509_REQ *
unsigned_req(EVP_PKEY *pub)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = cn_name("req.test");

	cr_assert_not_null(req);
	cr_assert_eq(X509_REQ_set_subject_name(req, name), 1);
	cr_assert_eq(X509_REQ_set_pubkey(req, pub), 1);
	X509_NAME_free(name);
	return req;
}

/* A certificate as `custody request --self-signed` builds it (v3 with
 * extensions), or a bare v1 one. */
static X509 *
unsigned_cert(EVP_PKEY *pub, int v3)
{
	X509 *x = X509_new();
	X509_NAME *name = cn_name("cert.test");
	X509_EXTENSION *e;
	const char *const ext[][2] = {
		{"subjectAltName", "DNS:cert.test,DNS:alt.cert.test"},
		{"keyUsage", "critical,digitalSignature"},
		{"basicConstraints", "critical,CA:FALSE"},
	};
	size_t i;

	cr_assert_not_null(x);
	cr_assert_eq(X509_set_version(x, v3 ? X509_VERSION_3 : X509_VERSION_1), 1);
	cr_assert_eq(ASN1_INTEGER_set(X509_get_serialNumber(x), 0x1234567), 1);
	cr_assert_eq(X509_set_subject_name(x, name), 1);
	cr_assert_eq(X509_set_issuer_name(x, name), 1);
	cr_assert_not_null(X509_gmtime_adj(X509_getm_notBefore(x), -300));
	cr_assert_not_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 30));
	cr_assert_eq(X509_set_pubkey(x, pub), 1);
	for (i = 0; v3 && i < sizeof(ext) / sizeof(ext[0]); i++) {
		e = X509V3_EXT_conf(NULL, NULL, ext[i][0], ext[i][1]);
		cr_assert_not_null(e, "%s", ext[i][0]);
		cr_assert_eq(X509_add_ext(x, e, -1), 1);
		X509_EXTENSION_free(e);
	}
	X509_NAME_free(name);
	return x;
}

/* The fields a signature must not change, as DER (what X509_cmp would
 * not tell: it compares the whole certificate, signature included). */
static void
assert_same_fields(X509 *a, X509 *b)
{
	unsigned char *da = NULL, *db = NULL;
	int la, lb;

	cr_assert_eq(X509_get_version(a), X509_get_version(b));
	cr_assert_eq(ASN1_INTEGER_cmp(X509_get0_serialNumber(a),
				      X509_get0_serialNumber(b)), 0);
	cr_assert_eq(X509_NAME_cmp(X509_get_subject_name(a),
				   X509_get_subject_name(b)), 0);
	cr_assert_eq(X509_NAME_cmp(X509_get_issuer_name(a),
				   X509_get_issuer_name(b)), 0);
	cr_assert_eq(ASN1_TIME_compare(X509_get0_notBefore(a),
				       X509_get0_notBefore(b)), 0);
	cr_assert_eq(ASN1_TIME_compare(X509_get0_notAfter(a),
				       X509_get0_notAfter(b)), 0);
	cr_assert_eq(EVP_PKEY_eq(X509_get0_pubkey(a), X509_get0_pubkey(b)), 1);
	cr_assert_eq(X509_get_ext_count(a), X509_get_ext_count(b));
	la = i2d_X509_EXTENSIONS(X509_get0_extensions(a), &da);
	lb = i2d_X509_EXTENSIONS(X509_get0_extensions(b), &db);
	cr_assert(la == lb && (la <= 0 || memcmp(da, db, (size_t)la) == 0),
		  "the extensions are kept");
	OPENSSL_free(da);
	OPENSSL_free(db);
}

/*
 * A request and a certificate signed in the token verify with the
 * generated public key, carry the algorithm of the key type and digest
 * (the same inside and outside a certificate), keep their fields, create
 * nothing on the token and leave the handle's session as it was.
 */
static void
own_signing(const char *spec_text, int digest_nid, int want_nid)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_keyspec spec;
	custody_err err = {0};
	char id[CUSTODY_KEY_ID_HEX + 1];
	EVP_PKEY *pub = NULL;
	X509_REQ *req;
	X509 *x, *before, *given;
	const X509_ALGOR *outer = NULL;
	const ASN1_BIT_STRING *sig = NULL;
	CK_SESSION_HANDLE session;
	size_t objects;
	int present = 0, v3;

	parse_spec(spec_text, &spec);
	cr_assert_eq(custody_token_generate(tok, &spec, "own", NULL, 0, id, &pub,
					    &err), CUSTODY_OK, "%s", err.msg);
	custody_token_intent_done(tok, id);
	objects = count_class(tok, -1);
	session = tok->session;

	req = unsigned_req(pub);
	cr_assert_eq(custody_token_sign_req(tok, id, digest_nid, pub, req, &err),
		     CUSTODY_OK, "%s: %s", spec_text, err.msg);
	cr_assert_eq(X509_REQ_verify(req, pub), 1);
	cr_assert_eq(X509_REQ_get_signature_nid(req), want_nid);
	X509_REQ_free(req);

	for (v3 = 1; v3 >= 0; v3--) {
		x = given = unsigned_cert(pub, v3);
		before = unsigned_cert(pub, v3);
		/* Made at two instants: a second may tick between them. */
		cr_assert_eq(X509_set1_notBefore(before, X509_get0_notBefore(x)), 1);
		cr_assert_eq(X509_set1_notAfter(before, X509_get0_notAfter(x)), 1);
		cr_assert_eq(custody_token_sign_cert(tok, id, digest_nid, pub, &x,
						     &err), CUSTODY_OK, "%s: %s",
			     spec_text, err.msg);
		cr_assert_neq(x, given, "a new certificate replaces the one given");
		cr_assert_eq(X509_verify(x, pub), 1);
		cr_assert_eq(X509_get_signature_nid(x), want_nid);
		X509_get0_signature(&sig, &outer, x);
		cr_assert_eq(X509_ALGOR_cmp(outer, X509_get0_tbs_sigalg(x)), 0,
			     "the algorithm inside and outside are one");
		assert_same_fields(x, before);
		X509_free(before);
		X509_free(x);
	}
	cr_assert_eq(count_class(tok, -1), objects, "nothing was created");
	cr_assert_eq(tok->session, session, "the same session");
	cr_assert_eq(custody_token_has_private_key(tok, id, &present, &err),
		     CUSTODY_OK, "still logged in: %s", err.msg);
	cr_assert_eq(present, 1);
	EVP_PKEY_free(pub);
	custody_token_close(tok);
}

Test(request, own_signing_rsa2048_pkcs1_sha256)
{
	own_signing("rsa:2048", NID_sha256, NID_sha256WithRSAEncryption);
}

Test(request, own_signing_rsa3072_pkcs1_sha512)
{
	own_signing("rsa:3072", NID_sha512, NID_sha512WithRSAEncryption);
}

Test(request, own_signing_ec_p256_ecdsa_sha256)
{
	own_signing("ec:p256", NID_sha256, NID_ecdsa_with_SHA256);
}

Test(request, own_signing_ec_p384_ecdsa_sha384)
{
	own_signing("ec:p384", NID_sha384, NID_ecdsa_with_SHA384);
}

/* The certificate is what OpenSSL would have made with the key in memory:
 * the same signed part, byte for byte (ECDSA signatures differ). */
Test(request, own_signing_encodes_as_openssl_does)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_keyspec spec;
	custody_err err = {0};
	char id[CUSTODY_KEY_ID_HEX + 1];
	EVP_PKEY *pub = NULL, *soft = EVP_EC_gen("P-256");
	X509 *x, *ref;
	unsigned char *a = NULL, *b = NULL;
	int la, lb;

	parse_spec("ec:p256", &spec);
	cr_assert_eq(custody_token_generate(tok, &spec, "enc", NULL, 0, id, &pub,
					    &err), CUSTODY_OK, "%s", err.msg);
	x = unsigned_cert(pub, 1);
	ref = unsigned_cert(pub, 1);
	cr_assert_eq(X509_set1_notBefore(ref, X509_get0_notBefore(x)), 1);
	cr_assert_eq(X509_set1_notAfter(ref, X509_get0_notAfter(x)), 1);
	cr_assert_not_null(soft);
	/* A software key of the same type only sets the algorithm fields. */
	cr_assert_gt(X509_sign(ref, soft, EVP_sha256()), 0);
	cr_assert_eq(custody_token_sign_cert(tok, id, NID_sha256, pub, &x, &err),
		     CUSTODY_OK, "%s", err.msg);
	la = i2d_re_X509_tbs(x, &a);
	lb = i2d_re_X509_tbs(ref, &b);
	cr_assert(la > 0 && la == lb && memcmp(a, b, (size_t)la) == 0,
		  "the signed parts are the same bytes");
	OPENSSL_free(a);
	OPENSSL_free(b);
	X509_free(ref);
	X509_free(x);
	EVP_PKEY_free(soft);
	EVP_PKEY_free(pub);
	custody_token_close(tok);
}

/* Every refusal leaves the certificate given as it was and the token
 * without a new object. */
Test(request, own_signing_refusals)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_token_spec s = softhsm_fixture_spec(&fx);
	custody_token *out = NULL;
	custody_keyspec spec;
	custody_err err = {0};
	char id[CUSTODY_KEY_ID_HEX + 1], other[CUSTODY_KEY_ID_HEX + 1];
	EVP_PKEY *pub = NULL, *other_pub = NULL;
	X509 *x, *given;
	X509_REQ *req;
	size_t objects;

	parse_spec("ec:p256", &spec);
	cr_assert_eq(custody_token_generate(tok, &spec, "a", NULL, 0, id, &pub,
					    &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_token_generate(tok, &spec, "b", NULL, 0, other,
					    &other_pub, &err), CUSTODY_OK, "%s",
		     err.msg);
	objects = count_class(tok, -1);
	x = given = unsigned_cert(pub, 1);

	cr_assert_eq(custody_token_sign_cert(tok, "00112233445566778899aabbccddeeff00112233",
					     NID_sha256, pub, &x, &err),
		     CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no private key with key id "
			 "00112233445566778899aabbccddeeff00112233 on token custody "
			 "request");
	cr_assert_eq(custody_token_sign_cert(tok, "xyz", NID_sha256, pub, &x, &err),
		     CUSTODY_EUSAGE);
	cr_assert_eq(custody_token_sign_cert(tok, id, NID_sha1, pub, &x, &err),
		     CUSTODY_EUSAGE);
	cr_assert(strstr(err.msg, "digest SHA1 is not supported") != NULL, "%s",
		  err.msg);
	/* The key of another key id: the signature does not verify. */
	cr_assert_eq(custody_token_sign_cert(tok, other, NID_sha256, pub, &x, &err),
		     CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "does not verify with the public key expected") !=
		  NULL, "%s", err.msg);
	cr_assert_eq(x, given, "the certificate given stays");
	req = unsigned_req(pub);
	cr_assert_eq(custody_token_sign_req(tok, other, NID_sha256, pub, req, &err),
		     CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "does not verify with the public key expected") !=
		  NULL, "%s", err.msg);
	cr_assert_neq(X509_REQ_verify(req, pub), 1);
	ERR_clear_error();
	cr_assert_eq(count_class(tok, -1), objects, "nothing was created");

	/* A handle that is not logged in signs neither. */
	custody_token_close(tok);
	cr_assert_eq(custody_token_open(&s, &out, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_token_sign_cert(out, id, NID_sha256, pub, &x, &err),
		     CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "not logged in") != NULL, "%s", err.msg);
	cr_assert_eq(custody_token_sign_req(out, id, NID_sha256, pub, req, &err),
		     CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "not logged in") != NULL, "%s", err.msg);
	cr_assert_eq(x, given);
	custody_token_close(out);
	X509_REQ_free(req);
	X509_free(x);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(other_pub);
}
