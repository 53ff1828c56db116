/*
 * test_signer.c — the library signer (custody/signer.h) against a
 * throwaway SoftHSM token and SQLite store per test (Criterion runs tests
 * in parallel processes).
 *
 * Every signature is checked the way a relying party would: with the
 * public key of the certificate that should have made it (RSA PKCS#1 v1.5
 * is deterministic, so it must also equal OpenSSL's signature with the
 * key in memory, byte for byte).  Changes of the assignment go through the
 * store API and the assign state machine, as `custody set` makes them,
 * on a store connection of their own.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <custody/assign.h>
#include <custody/cert.h>
#include <custody/config.h>
#include <custody/hexfmt.h>
#include <custody/integrity.h>
#include <custody/signer.h>
#include <custody/store.h>
#include <custody/token.h>

#include "token/softhsm_fixture.h"
#include "unit/testcerts.h"

#define T0 ((int64_t)1900000000)	/* a fixed "now" (2030-03-17) */

static struct softhsm_fixture fx;
static char store_url[PATH_MAX + 32];

static const unsigned char msg[] = "custody signs this with the current key";

/* A key and its certificate: on the token, in the store. */
struct pair {
	EVP_PKEY *key;
	X509 *cert;
	char key_id[CUSTODY_KEY_ID_HEX + 1];
	char tp[CUSTODY_THUMBPRINT_HEX + 1];
};

static void
setup(void)
{
	softhsm_fixture_setup(&fx, "sig");
	snprintf(store_url, sizeof(store_url), "sqlite:%s/custody.db", fx.dir);
}

static void
teardown(void)
{
	softhsm_fixture_teardown(&fx);
}

TestSuite(signer, .init = setup, .fini = teardown, .timeout = 120);

static custody_store *
store_open(void)
{
	custody_store *st = NULL;
	custody_err err = {0};

	cr_assert_eq(custody_store_open(store_url, &st, &err), CUSTODY_OK,
		     "store: %s", err.msg);
	return st;
}

/* The store with the fixture token attached: it tags what the test
 * writes (custody/integrity.h).  Close the store, then *tok. */
static custody_store *
store_open_tagged(custody_token **tok)
{
	custody_store *st = store_open();
	custody_err err = {0};

	*tok = softhsm_fixture_open(&fx);
	cr_assert_eq(custody_integrity_attach(st, *tok, &err), CUSTODY_OK, "%s", err.msg);
	return st;
}

/* Makes n pairs of the given key specs, imports them onto the token with
 * one exclusive handle (closed again: signers need the lock) and records
 * their certificates in the store. */
static void
make_pairs(struct pair *p, const char *const *specs, size_t n)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_store *st = store_open();
	custody_token_import_result res;
	custody_cert_record rec;
	custody_err err = {0};
	char cn[32];
	size_t i;

	cr_assert_eq(custody_integrity_attach(st, tok, &err), CUSTODY_OK, "%s", err.msg);

	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK, "%s", err.msg);
	for (i = 0; i < n; i++) {
		snprintf(cn, sizeof(cn), "k%zu.custody.test", i);
		p[i].key = testcert_key(specs[i]);
		p[i].cert = testcert_self_signed(p[i].key, cn, NULL, -3600, 30);
		memset(&res, 0, sizeof(res));
		cr_assert_eq(custody_token_import(tok, p[i].key, p[i].cert, NULL,
						  NULL, 0, &res, &err),
			     CUSTODY_OK, "import: %s", err.msg);
		memcpy(p[i].key_id, res.key_id, sizeof(p[i].key_id));
		memset(&rec, 0, sizeof(rec));
		cr_assert_eq(custody_cert_record_from_x509(p[i].cert, &rec, &err),
			     CUSTODY_OK, "%s", err.msg);
		cr_assert_str_eq(rec.key_id, p[i].key_id);
		memcpy(p[i].tp, rec.thumbprint, sizeof(p[i].tp));
		cr_assert_eq(custody_store_put_cert(st, &rec, &err), CUSTODY_OK,
			     "%s", err.msg);
		custody_cert_record_clear(&rec);
	}
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK, "%s", err.msg);
	custody_store_close(st);
	custody_token_close(tok);
}

static void
free_pairs(struct pair *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		X509_free(p[i].cert);
		EVP_PKEY_free(p[i].key);
	}
}

/* `custody set` (roll_at 0) or `set --roll --effective-date roll_at`,
 * at `now`, through the store API on a connection of its own. */
static void
assign(const char *type, const char *identity, const char *tp, int64_t now,
       int64_t roll_at)
{
	custody_token *tok = NULL;
	custody_store *st = store_open_tagged(&tok);
	custody_assignment a;
	custody_assign_outcome oc;
	custody_err err = {0};
	int r;

	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK, "%s", err.msg);
	memset(&a, 0, sizeof(a));
	r = custody_store_get_assignment(st, type, identity, &a, &err);
	if (r == CUSTODY_ENOTFOUND) {
		memset(&a, 0, sizeof(a));
		snprintf(a.type, sizeof(a.type), "%s", type);
		snprintf(a.identity, sizeof(a.identity), "%s", identity);
	} else {
		cr_assert_eq(r, CUSTODY_OK, "%s", err.msg);
	}
	if (roll_at == 0)
		r = custody_assign_set(&a, tp, now, &a, &oc, &err);
	else
		r = custody_assign_roll(&a, tp, roll_at, now, &a, &oc, &err);
	cr_assert_eq(r, CUSTODY_OK, "assign: %s", err.msg);
	cr_assert_eq(custody_store_put_assignment(st, &a, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK, "%s", err.msg);
	custody_store_close(st);
	custody_token_close(tok);
}

/* The whole assignment goes (as removing its last slot does). */
static void
unassign(const char *type, const char *identity)
{
	custody_token *tok = NULL;
	custody_store *st = store_open_tagged(&tok);
	custody_assignment a;
	custody_err err = {0};

	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_get_assignment(st, type, identity, &a, &err),
		     CUSTODY_OK, "%s", err.msg);
	memset(&a.current, 0, sizeof(a.current));
	memset(&a.previous, 0, sizeof(a.previous));
	memset(&a.pending, 0, sizeof(a.pending));
	cr_assert_eq(custody_store_put_assignment(st, &a, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK, "%s", err.msg);
	custody_store_close(st);
	custody_token_close(tok);
}

static custody_ctx *
ctx_open(const char *pin_file, const custody_ctx_options *opt)
{
	custody_config cfg;
	custody_ctx *ctx = NULL;
	custody_err err = {0};
	char src[PATH_MAX + 8];

	custody_config_init(&cfg);
	snprintf(src, sizeof(src), "file:%s",
		 pin_file != NULL ? pin_file : fx.user_pin_file);
	cr_assert_eq(custody_config_set(&cfg, "token", "module", fx.module,
					&err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_config_set(&cfg, "token", "label", fx.label,
					&err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_config_set(&cfg, "token", "pin-source", src,
					&err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_config_set(&cfg, "store", "url", store_url, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_ctx_new_with(&cfg, "node1", opt, &ctx, &err),
		     CUSTODY_OK, "ctx: %s", err.msg);
	custody_config_clear(&cfg);	/* the ctx keeps copies */
	return ctx;
}

static custody_signer *
signer_open(custody_ctx *ctx, const char *type, const char *identity)
{
	custody_signer *sg = NULL;
	custody_err err = {0};

	cr_assert_eq(custody_signer_open(ctx, type, identity, &sg, &err),
		     CUSTODY_OK, "signer: %s", err.msg);
	return sg;
}

static const EVP_MD *
md_of(int nid)
{
	return nid == NID_sha384 ? EVP_sha384()
	       : nid == NID_sha512 ? EVP_sha512() : EVP_sha256();
}

/* A raw r || s as the DER OpenSSL verifies (malloc'ed). */
static unsigned char *
raw_to_der(const unsigned char *rs, size_t len, size_t *der_len)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(rs, (int)(len / 2), NULL);
	BIGNUM *s = BN_bin2bn(rs + len / 2, (int)(len / 2), NULL);
	unsigned char *der = NULL;
	int n;

	cr_assert(es != NULL && r != NULL && s != NULL &&
		  ECDSA_SIG_set0(es, r, s));
	n = i2d_ECDSA_SIG(es, &der);
	cr_assert_gt(n, 0);
	ECDSA_SIG_free(es);
	*der_len = (size_t)n;
	return der;
}

/* 1 when sig (as scheme) of data verifies with cert's public key. */
static int
verifies(X509 *cert, enum custody_sig_scheme scheme, int nid,
	 const unsigned char *data, size_t len, const unsigned char *sig,
	 size_t sig_len)
{
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL;
	int ok;

	if (scheme == CUSTODY_SIG_ECDSA_RAW) {
		der = raw_to_der(sig, sig_len, &sig_len);
		sig = der;
	}
	cr_assert_eq(EVP_DigestVerifyInit(mctx, &pctx, md_of(nid), NULL,
					  X509_get0_pubkey(cert)), 1);
	if (scheme == CUSTODY_SIG_RSA_PSS) {
		cr_assert_eq(EVP_PKEY_CTX_set_rsa_padding(pctx,
							  RSA_PKCS1_PSS_PADDING), 1);
		cr_assert_eq(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
							      RSA_PSS_SALTLEN_DIGEST), 1);
		cr_assert_eq(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md_of(nid)), 1);
	}
	ok = EVP_DigestVerify(mctx, sig, sig_len, data, len) == 1;
	EVP_MD_CTX_free(mctx);
	OPENSSL_free(der);
	return ok;
}

/* One signature of msg; asserts success. */
static void
sign_ok(custody_signer *sg, int64_t now, enum custody_sig_scheme scheme,
	int nid, unsigned char **sig, size_t *len, custody_signature_info *info)
{
	custody_err err = {0};

	cr_assert_eq(custody_signer_sign(sg, now, scheme, nid, msg, sizeof(msg),
					 0, sig, len, info, &err),
		     CUSTODY_OK, "sign: %s", err.msg);
	cr_assert_not_null(*sig);
}

/* ------------------------------------------------------ mechanisms */

Test(signer, rsa_pkcs1_equals_openssl_and_verifies)
{
	static const char *const specs[] = {"rsa:2048"};
	static const int nids[] = {NID_sha256, NID_sha384, NID_sha512};
	struct pair p[1];
	custody_ctx *ctx;
	custody_signer *sg;
	custody_signature_info info;
	unsigned char *sig = NULL, expected[512];
	size_t len = 0, elen;
	EVP_MD_CTX *mctx;
	size_t i;

	make_pairs(p, specs, 1);
	assign("WebServicesInternal", "node1", p[0].tp, T0, 0);
	ctx = ctx_open(NULL, NULL);
	sg = signer_open(ctx, "webservicesinternal", NULL);
	for (i = 0; i < 3; i++) {
		sign_ok(sg, T0, CUSTODY_SIG_AUTO, nids[i], &sig, &len, &info);
		cr_assert_eq(len, 256);
		cr_assert(verifies(p[0].cert, CUSTODY_SIG_RSA_PKCS1, nids[i], msg,
				   sizeof(msg), sig, len), "digest %d", nids[i]);
		mctx = EVP_MD_CTX_new();
		elen = sizeof(expected);
		cr_assert_eq(EVP_DigestSignInit(mctx, NULL, md_of(nids[i]), NULL,
						p[0].key), 1);
		cr_assert_eq(EVP_DigestSign(mctx, expected, &elen, msg,
					    sizeof(msg)), 1);
		EVP_MD_CTX_free(mctx);
		cr_assert_eq(elen, len);
		cr_assert_arr_eq(sig, expected, len, "not OpenSSL's signature");
		cr_assert_str_eq(info.thumbprint, p[0].tp);
		cr_assert_str_eq(info.key_id, p[0].key_id);
		cr_assert_str_eq(info.key_algorithm, "RSA-2048");
		cr_assert_str_eq(info.identity, "node1");
		cr_assert_eq(info.scheme, CUSTODY_SIG_RSA_PKCS1);
		cr_assert_eq(info.digest_nid, nids[i]);
		free(sig);
	}
	custody_signer_close(sg);
	custody_ctx_free(ctx);
	free_pairs(p, 1);
}

Test(signer, rsa_pss_verifies)
{
	static const char *const specs[] = {"rsa:2048"};
	static const int nids[] = {NID_sha256, NID_sha384, NID_sha512};
	struct pair p[1];
	custody_ctx *ctx;
	custody_signer *sg;
	custody_signature_info info;
	unsigned char *sig = NULL, *sig2 = NULL;
	size_t len = 0, len2 = 0, i;

	make_pairs(p, specs, 1);
	assign("OAuthTokenIssuer", "global", p[0].tp, T0, 0);
	ctx = ctx_open(NULL, NULL);
	sg = signer_open(ctx, "OAuthTokenIssuer", "global");
	for (i = 0; i < 3; i++) {
		sign_ok(sg, T0, CUSTODY_SIG_RSA_PSS, nids[i], &sig, &len, &info);
		cr_assert_eq(info.scheme, CUSTODY_SIG_RSA_PSS);
		cr_assert(verifies(p[0].cert, CUSTODY_SIG_RSA_PSS, nids[i], msg,
				   sizeof(msg), sig, len), "digest %d", nids[i]);
		/* Not PKCS#1 v1.5 in disguise. */
		cr_assert_not(verifies(p[0].cert, CUSTODY_SIG_RSA_PKCS1, nids[i],
				       msg, sizeof(msg), sig, len));
		/* Salted: two signatures differ. */
		sign_ok(sg, T0, CUSTODY_SIG_RSA_PSS, nids[i], &sig2, &len2, NULL);
		cr_assert(len == len2 && memcmp(sig, sig2, len) != 0);
		free(sig);
		free(sig2);
	}
	custody_signer_close(sg);
	custody_ctx_free(ctx);
	free_pairs(p, 1);
}

Test(signer, ecdsa_der_and_raw_verify)
{
	static const char *const specs[] = {"ec:p256", "ec:p384"};
	struct pair p[2];
	custody_ctx *ctx;
	custody_signer *sg256, *sg384;
	custody_signature_info info;
	unsigned char *sig = NULL;
	size_t len = 0;
	int i;

	make_pairs(p, specs, 2);
	assign("Default", "node1", p[0].tp, T0, 0);
	assign("XmppServer", "node1", p[1].tp, T0, 0);
	ctx = ctx_open(NULL, NULL);
	sg256 = signer_open(ctx, "Default", NULL);
	sg384 = signer_open(ctx, "XmppServer", NULL);
	for (i = 0; i < 20; i++) {	/* DER lengths vary with r and s */
		sign_ok(sg256, T0, CUSTODY_SIG_AUTO, NID_sha256, &sig, &len, &info);
		cr_assert_eq(info.scheme, CUSTODY_SIG_ECDSA_DER);
		cr_assert_str_eq(info.key_algorithm, "EC-P256");
		cr_assert_eq(sig[0], 0x30, "not DER");
		cr_assert(verifies(p[0].cert, CUSTODY_SIG_ECDSA_DER, NID_sha256,
				   msg, sizeof(msg), sig, len));
		free(sig);
		sign_ok(sg256, T0, CUSTODY_SIG_ECDSA_RAW, NID_sha256, &sig, &len,
			&info);
		cr_assert_eq(len, 64, "raw r || s of P-256 is 64 bytes");
		cr_assert_eq(info.scheme, CUSTODY_SIG_ECDSA_RAW);
		cr_assert(verifies(p[0].cert, CUSTODY_SIG_ECDSA_RAW, NID_sha256,
				   msg, sizeof(msg), sig, len));
		free(sig);
	}
	/* A digest longer than the order (SHA-512 on P-384) is cut to it. */
	sign_ok(sg384, T0, CUSTODY_SIG_ECDSA_DER, NID_sha512, &sig, &len, &info);
	cr_assert(verifies(p[1].cert, CUSTODY_SIG_ECDSA_DER, NID_sha512, msg,
			   sizeof(msg), sig, len));
	free(sig);
	sign_ok(sg384, T0, CUSTODY_SIG_ECDSA_RAW, NID_sha384, &sig, &len, &info);
	cr_assert_eq(len, 96);
	cr_assert(verifies(p[1].cert, CUSTODY_SIG_ECDSA_RAW, NID_sha384, msg,
			   sizeof(msg), sig, len));
	free(sig);
	custody_signer_close(sg256);
	custody_signer_close(sg384);
	custody_ctx_free(ctx);
	free_pairs(p, 2);
}

Test(signer, signs_a_digest_and_checks_its_length)
{
	static const char *const specs[] = {"ec:p256"};
	struct pair p[1];
	custody_ctx *ctx;
	custody_signer *sg;
	custody_err err = {0};
	unsigned char md[SHA384_DIGEST_LENGTH], *sig = NULL;
	size_t len = 0;

	make_pairs(p, specs, 1);
	assign("Default", "global", p[0].tp, T0, 0);
	ctx = ctx_open(NULL, NULL);
	sg = signer_open(ctx, "Default", NULL);
	SHA384(msg, sizeof(msg), md);
	cr_assert_eq(custody_signer_sign(sg, T0, CUSTODY_SIG_AUTO, NID_sha384, md,
					 sizeof(md), 1, &sig, &len, NULL, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert(verifies(p[0].cert, CUSTODY_SIG_ECDSA_DER, NID_sha384, msg,
			   sizeof(msg), sig, len));
	free(sig);
	cr_assert_eq(custody_signer_sign(sg, T0, CUSTODY_SIG_AUTO, NID_sha256, md,
					 sizeof(md), 1, &sig, &len, NULL, &err),
		     CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "cannot sign: a SHA-256 digest is 32 bytes, not 48");
	cr_assert_null(sig);
	cr_assert_eq(custody_signer_sign(sg, T0, CUSTODY_SIG_AUTO, NID_sha1, msg,
					 sizeof(msg), 0, &sig, &len, NULL, &err),
		     CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "cannot sign: digest SHA1 is not supported "
			 "(SHA-256, SHA-384 or SHA-512)");
	/* PSS needs an RSA key: refused, nothing signed. */
	cr_assert_eq(custody_signer_sign(sg, T0, CUSTODY_SIG_RSA_PSS, NID_sha256,
					 msg, sizeof(msg), 0, &sig, &len, NULL,
					 &err), CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "it is an EC key, and scheme RSA-PSS needs an "
			 "RSA key") != NULL, "%s", err.msg);
	cr_assert_null(sig);
	custody_signer_close(sg);
	custody_ctx_free(ctx);
	free_pairs(p, 1);
}

/* ------------------------------------------------------- resolution */

Test(signer, set_takes_effect_at_the_next_signature)
{
	static const char *const specs[] = {"ec:p256", "rsa:2048", "ec:p256"};
	struct pair p[3];
	custody_ctx *ctx;
	custody_signer *sg;
	custody_signature_info info;
	custody_cert_record cur;
	custody_err err = {0};
	unsigned char *sig = NULL;
	size_t len = 0;
	int i;

	make_pairs(p, specs, 3);
	assign("OAuthTokenIssuer", "global", p[0].tp, T0, 0);
	ctx = ctx_open(NULL, NULL);
	sg = signer_open(ctx, "OAuthTokenIssuer", NULL);
	sign_ok(sg, T0, CUSTODY_SIG_AUTO, NID_sha256, &sig, &len, &info);
	cr_assert_str_eq(info.thumbprint, p[0].tp);
	cr_assert(verifies(p[0].cert, CUSTODY_SIG_ECDSA_DER, NID_sha256, msg,
			   sizeof(msg), sig, len));
	free(sig);
	/* custody set, from another connection: an RSA key now (AUTO
	 * follows the key's type). */
	assign("OAuthTokenIssuer", "global", p[1].tp, T0 + 10, 0);
	sign_ok(sg, T0 + 11, CUSTODY_SIG_AUTO, NID_sha256, &sig, &len, &info);
	cr_assert_str_eq(info.thumbprint, p[1].tp, "the set did not take effect");
	cr_assert_str_eq(info.key_id, p[1].key_id);
	cr_assert_eq(info.scheme, CUSTODY_SIG_RSA_PKCS1);
	cr_assert(verifies(p[1].cert, CUSTODY_SIG_RSA_PKCS1, NID_sha256, msg,
			   sizeof(msg), sig, len));
	free(sig);
	cr_assert_eq(custody_signer_current(sg, T0 + 11, &cur, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_str_eq(cur.thumbprint, p[1].tp);
	cr_assert_str_eq(cur.key_id, p[1].key_id);
	custody_cert_record_clear(&cur);
	/* Many sets, each seen by the very next signature (past the store's
	 * first 64 looks, when it starts watching its files). */
	for (i = 0; i < 80; i++) {
		int k = i % 2 == 0 ? 2 : 0;

		assign("OAuthTokenIssuer", "global", p[k].tp, T0 + 20 + i, 0);
		sign_ok(sg, T0 + 20 + i, CUSTODY_SIG_AUTO, NID_sha256, &sig, &len,
			&info);
		cr_assert_str_eq(info.thumbprint, p[k].tp, "set %d not seen", i);
		cr_assert(verifies(p[k].cert, CUSTODY_SIG_ECDSA_DER, NID_sha256,
				   msg, sizeof(msg), sig, len), "set %d", i);
		free(sig);
	}
	custody_signer_close(sg);
	custody_ctx_free(ctx);
	free_pairs(p, 3);
}

Test(signer, roll_takes_effect_at_its_instant)
{
	static const char *const specs[] = {"ec:p256", "ec:p256"};
	struct pair p[2];
	custody_ctx *ctx;
	custody_signer *sg;
	custody_signature_info info;
	custody_cert_record cur;
	custody_err err = {0};
	unsigned char *sig = NULL;
	size_t len = 0;

	make_pairs(p, specs, 2);
	assign("OAuthTokenIssuer", "global", p[0].tp, T0, 0);
	assign("OAuthTokenIssuer", "global", p[1].tp, T0, T0 + 1);
	ctx = ctx_open(NULL, NULL);
	sg = signer_open(ctx, "OAuthTokenIssuer", NULL);
	sign_ok(sg, T0, CUSTODY_SIG_AUTO, NID_sha256, &sig, &len, &info);
	cr_assert_str_eq(info.thumbprint, p[0].tp, "before the instant: old key");
	cr_assert(verifies(p[0].cert, CUSTODY_SIG_ECDSA_DER, NID_sha256, msg,
			   sizeof(msg), sig, len));
	free(sig);
	sign_ok(sg, T0 + 1, CUSTODY_SIG_AUTO, NID_sha256, &sig, &len, &info);
	cr_assert_str_eq(info.thumbprint, p[1].tp, "at the instant: new key");
	cr_assert(verifies(p[1].cert, CUSTODY_SIG_ECDSA_DER, NID_sha256, msg,
			   sizeof(msg), sig, len));
	cr_assert_not(verifies(p[0].cert, CUSTODY_SIG_ECDSA_DER, NID_sha256,
			       msg, sizeof(msg), sig, len));
	free(sig);
	/* The record is data: asking about the past again gives the old key. */
	sign_ok(sg, T0 + 1 - 1, CUSTODY_SIG_AUTO, NID_sha256, &sig, &len, &info);
	cr_assert_str_eq(info.thumbprint, p[0].tp);
	free(sig);
	cr_assert_eq(custody_signer_current(sg, T0 + 1, &cur, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_str_eq(cur.thumbprint, p[1].tp);
	custody_cert_record_clear(&cur);
	custody_signer_close(sg);
	custody_ctx_free(ctx);
	free_pairs(p, 2);
}

Test(signer, node_assignment_wins_over_global)
{
	static const char *const specs[] = {"ec:p256", "ec:p256"};
	struct pair p[2];
	custody_ctx *ctx;
	custody_signer *mine, *global;
	custody_signature_info info;
	unsigned char *sig = NULL;
	size_t len = 0;

	make_pairs(p, specs, 2);
	assign("Default", "global", p[0].tp, T0, 0);
	assign("Default", "node1", p[1].tp, T0, 0);
	ctx = ctx_open(NULL, NULL);
	cr_assert_str_eq(custody_ctx_node(ctx), "node1");
	mine = signer_open(ctx, "Default", NULL);
	global = signer_open(ctx, "Default", "GLOBAL");
	sign_ok(mine, T0, CUSTODY_SIG_AUTO, NID_sha256, &sig, &len, &info);
	cr_assert_str_eq(info.thumbprint, p[1].tp);
	cr_assert_str_eq(info.identity, "node1");
	free(sig);
	sign_ok(global, T0, CUSTODY_SIG_AUTO, NID_sha256, &sig, &len, &info);
	cr_assert_str_eq(info.thumbprint, p[0].tp);
	cr_assert_str_eq(info.identity, "global");
	free(sig);
	/* The node's assignment goes: this node falls back to global. */
	unassign("Default", "node1");
	sign_ok(mine, T0, CUSTODY_SIG_AUTO, NID_sha256, &sig, &len, &info);
	cr_assert_str_eq(info.thumbprint, p[0].tp);
	cr_assert_str_eq(info.identity, "global");
	cr_assert(verifies(p[0].cert, CUSTODY_SIG_ECDSA_DER, NID_sha256, msg,
			   sizeof(msg), sig, len));
	free(sig);
	custody_signer_close(mine);
	custody_signer_close(global);
	custody_ctx_free(ctx);
	free_pairs(p, 2);
}

Test(signer, nothing_assigned_is_enotfound)
{
	static const char *const specs[] = {"ec:p256", "ec:p256"};
	struct pair p[2];
	custody_ctx *ctx;
	custody_signer *sg = NULL;
	custody_err err = {0};
	unsigned char *sig = NULL;
	size_t len = 0;

	make_pairs(p, specs, 2);
	ctx = ctx_open(NULL, NULL);
	cr_assert_eq(custody_signer_open(ctx, "Default", NULL, &sg, &err),
		     CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no certificate is assigned for type Default "
			 "(identity global)");
	cr_assert_null(sg);
	cr_assert_eq(custody_signer_open(ctx, "Default", "node7", &sg, &err),
		     CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no certificate is assigned for type Default "
			 "(identity node7)");
	cr_assert_eq(custody_signer_open(ctx, "no such type!", NULL, &sg, &err),
		     CUSTODY_EUSAGE);
	/* Removed after the signer was opened: the next signature sees it. */
	assign("Default", "global", p[0].tp, T0, 0);
	sg = signer_open(ctx, "Default", NULL);
	unassign("Default", "global");
	cr_assert_eq(custody_signer_sign(sg, T0, CUSTODY_SIG_AUTO, NID_sha256,
					 msg, sizeof(msg), 0, &sig, &len, NULL,
					 &err), CUSTODY_ENOTFOUND,
		     "a removed assignment still signs: %s", err.msg);
	cr_assert_str_eq(err.msg, "no certificate is assigned for type Default "
			 "(identity global)");
	cr_assert_null(sig);
	cr_assert_eq(len, 0);
	custody_signer_close(sg);
	custody_ctx_free(ctx);
	free_pairs(p, 2);
}

/* ---------------------------------------------------------- the token */

Test(signer, key_deleted_from_the_token_is_efail_naming_it)
{
	static const char *const specs[] = {"ec:p256", "ec:p256"};
	struct pair p[2];
	custody_ctx *ctx;
	custody_signer *sg;
	custody_token *tok;
	custody_signature_info info;
	custody_err err = {0};
	unsigned char *sig = NULL;
	size_t len = 0;
	char expected[256];

	make_pairs(p, specs, 2);
	assign("Default", "global", p[0].tp, T0, 0);
	ctx = ctx_open(NULL, NULL);
	sg = signer_open(ctx, "Default", NULL);
	sign_ok(sg, T0, CUSTODY_SIG_AUTO, NID_sha256, &sig, &len, &info);
	free(sig);
	/* An exclusive handle of this process waits for the signer's lease
	 * (let go when idle), deletes the key, and closes. */
	tok = softhsm_fixture_open(&fx);
	cr_assert_eq(custody_token_delete(tok, p[0].key_id, &err), CUSTODY_OK,
		     "%s", err.msg);
	custody_token_close(tok);
	cr_assert_eq(custody_signer_sign(sg, T0, CUSTODY_SIG_AUTO, NID_sha256,
					 msg, sizeof(msg), 0, &sig, &len, NULL,
					 &err), CUSTODY_EFAIL);
	snprintf(expected, sizeof(expected),
		 "no private key with key id %s on token sig", p[0].key_id);
	cr_assert_str_eq(err.msg, expected);
	cr_assert(strstr(err.hint, p[0].tp) != NULL, "hint: %s", err.hint);
	cr_assert_null(sig);
	/* The other key still signs, in the same ctx. */
	assign("Default", "global", p[1].tp, T0 + 5, 0);
	sign_ok(sg, T0 + 5, CUSTODY_SIG_AUTO, NID_sha256, &sig, &len, &info);
	cr_assert_str_eq(info.thumbprint, p[1].tp);
	cr_assert(verifies(p[1].cert, CUSTODY_SIG_ECDSA_DER, NID_sha256, msg,
			   sizeof(msg), sig, len));
	free(sig);
	custody_signer_close(sg);
	custody_ctx_free(ctx);
	free_pairs(p, 2);
}

Test(signer, a_refused_pin_is_never_tried_again)
{
	static const char *const specs[] = {"ec:p256"};
	struct pair p[1];
	custody_ctx *ctx;
	custody_signer *sg;
	custody_err err = {0}, again = {0};
	unsigned char *sig = NULL;
	size_t len = 0;
	char wrong[PATH_MAX + 16];
	FILE *f;

	make_pairs(p, specs, 1);
	assign("Default", "global", p[0].tp, T0, 0);
	snprintf(wrong, sizeof(wrong), "%s/wrong.pin", fx.dir);
	cr_assert_not_null(f = fopen(wrong, "w"));
	fputs(strcmp(fx.user_pin, "00000000") != 0 ? "00000000" : "11111111", f);
	fclose(f);
	ctx = ctx_open(wrong, NULL);
	/* The signer checks the store's record with the token (its integrity
	 * tag) as it opens: the refused PIN shows there. */
	cr_assert_eq(custody_signer_open(ctx, "Default", NULL, &sg, &err), CUSTODY_EPIN);
	cr_assert_str_eq(err.msg, "cannot log in to token sig: the token "
			 "rejected the PIN");
	/* The right PIN in the file now: still refused, the PIN is not read
	 * (nor tried) again. */
	cr_assert_not_null(f = fopen(wrong, "w"));
	fputs(fx.user_pin, f);
	fclose(f);
	cr_assert_eq(custody_signer_open(ctx, "Default", NULL, &sg, &again), CUSTODY_EPIN);
	cr_assert_str_eq(again.msg, err.msg);
	(void)sig;
	(void)len;
	custody_ctx_free(ctx);
	free_pairs(p, 1);
}

/* --------------------------------------------------------- threads */

#define THREADS 4
#define PER_THREAD 200

struct worker {
	custody_signer *sg;
	int rsa;
	unsigned char *sigs[PER_THREAD];
	size_t lens[PER_THREAD];
	char tps[PER_THREAD][CUSTODY_THUMBPRINT_HEX + 1];
	int failed;
	char why[1024];
};

static void *
work(void *arg)
{
	struct worker *w = arg;
	custody_signature_info info;
	custody_err err = {0};
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		if (custody_signer_sign(w->sg, T0, CUSTODY_SIG_AUTO, NID_sha256,
					msg, sizeof(msg), 0, &w->sigs[i],
					&w->lens[i], &info, &err) != CUSTODY_OK) {
			w->failed = i + 1;
			snprintf(w->why, sizeof(w->why), "%s", err.msg);
			break;
		}
		memcpy(w->tps[i], info.thumbprint, sizeof(w->tps[i]));
	}
	return NULL;
}

Test(signer, four_threads_sign_at_once)
{
	static const char *const specs[] = {"ec:p256", "rsa:2048"};
	struct pair p[2];
	custody_ctx_options opt = {2, 0};	/* fewer sessions than threads */
	custody_ctx *ctx;
	custody_signer *ec, *rsa;
	struct worker *w = calloc(THREADS, sizeof(*w));
	pthread_t th[THREADS];
	int i, j;

	cr_assert_not_null(w);
	make_pairs(p, specs, 2);
	assign("Default", "global", p[0].tp, T0, 0);
	assign("OAuthTokenIssuer", "global", p[1].tp, T0, 0);
	ctx = ctx_open(NULL, &opt);
	ec = signer_open(ctx, "Default", NULL);
	rsa = signer_open(ctx, "OAuthTokenIssuer", NULL);
	for (i = 0; i < THREADS; i++) {
		w[i].sg = i % 2 == 0 ? ec : rsa;
		w[i].rsa = i % 2;
		cr_assert_eq(pthread_create(&th[i], NULL, work, &w[i]), 0);
	}
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < THREADS; i++) {
		struct pair *k = &p[w[i].rsa];

		cr_assert_eq(w[i].failed, 0, "thread %d, signature %d: %s", i,
			     w[i].failed, w[i].why);
		for (j = 0; j < PER_THREAD; j++) {
			cr_assert_str_eq(w[i].tps[j], k->tp);
			cr_assert(verifies(k->cert, w[i].rsa ? CUSTODY_SIG_RSA_PKCS1
							     : CUSTODY_SIG_ECDSA_DER,
					   NID_sha256, msg, sizeof(msg),
					   w[i].sigs[j], w[i].lens[j]),
				  "thread %d, signature %d does not verify", i, j);
			free(w[i].sigs[j]);
		}
	}
	custody_signer_close(ec);
	custody_signer_close(rsa);
	custody_ctx_free(ctx);
	free_pairs(p, 2);
	free(w);
}

/* ------------------------------------------------------------ the lock */

/* The lock file of fx's token set and its gate, as token/lock.c names
 * them. */
static void
lock_paths(char *lock, char *gate, size_t size)
{
	char module[PATH_MAX], text[2 * PATH_MAX + 2], hex[65];
	unsigned char md[SHA256_DIGEST_LENGTH];

	cr_assert_not_null(realpath(fx.module, module));
	snprintf(text, sizeof(text), "%s\n%s", module, fx.conf);
	SHA256((unsigned char *)text, strlen(text), md);
	custody_hex_encode(md, sizeof(md), hex, 0);
	snprintf(lock, size, "%s/token-%.16s.lock", fx.lock_dir, hex);
	snprintf(gate, size, "%s/token-%.16s.gate", fx.lock_dir, hex);
}

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A child process that plays a writer the way token/lock.c does (the gate
 * exclusively, then the lock exclusively, polled every 50 ms), holds the
 * lock for hold_ms, and reports on the pipe how long it waited (ms). */
static pid_t
writer_child(const char *lock, const char *gate, int hold_ms, int out)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int g = open(gate, O_RDONLY | O_CREAT, 0644);
		int l = open(lock, O_RDONLY | O_CREAT, 0644);
		double t0 = now_s();
		int waited;

		if (g < 0 || l < 0 || flock(g, LOCK_EX) != 0)
			_exit(1);
		while (flock(l, LOCK_EX | LOCK_NB) != 0) {
			if (now_s() - t0 > 10)
				_exit(2);
			usleep(50000);
		}
		close(g);
		waited = (int)((now_s() - t0) * 1000);
		if (write(out, &waited, sizeof(waited)) != sizeof(waited))
			_exit(3);
		usleep((useconds_t)hold_ms * 1000);
		_exit(0);
	}
	return pid;
}

struct busy {
	custody_signer *sg;
	volatile int stop;
	int count, failed;
	char why[1024];
};

static void *
sign_until_stopped(void *arg)
{
	struct busy *b = arg;
	custody_err err = {0};
	unsigned char *sig;
	size_t len;

	while (!b->stop) {
		if (custody_signer_sign(b->sg, T0, CUSTODY_SIG_AUTO, NID_sha256,
					msg, sizeof(msg), 0, &sig, &len, NULL,
					&err) != CUSTODY_OK) {
			b->failed = 1;
			snprintf(b->why, sizeof(b->why), "%s", err.msg);
			break;
		}
		free(sig);
		b->count++;
	}
	return NULL;
}

Test(signer, busy_signers_let_a_writer_in_and_wait_for_it)
{
	static const char *const specs[] = {"ec:p256"};
	struct pair p[1];
	custody_ctx *ctx;
	struct busy b[2];
	pthread_t th[2];
	char lock[PATH_MAX + 64], gate[PATH_MAX + 64];
	int fds[2], waited = -1, status, before, i;
	pid_t pid;

	make_pairs(p, specs, 1);
	assign("Default", "global", p[0].tp, T0, 0);
	lock_paths(lock, gate, sizeof(lock));
	ctx = ctx_open(NULL, NULL);
	memset(b, 0, sizeof(b));
	for (i = 0; i < 2; i++) {
		b[i].sg = signer_open(ctx, "Default", NULL);
		cr_assert_eq(pthread_create(&th[i], NULL, sign_until_stopped,
					    &b[i]), 0);
	}
	usleep(200000);		/* signing hard, the lease held */
	cr_assert(b[0].count > 0 && b[1].count > 0, "%s %s", b[0].why, b[1].why);
	cr_assert_eq(pipe(fds), 0);
	pid = writer_child(lock, gate, 500, fds[1]);
	cr_assert_eq(read(fds[0], &waited, sizeof(waited)), sizeof(waited));
	cr_assert_lt(waited, 1000, "the writer waited %d ms for busy signers",
		     waited);
	/* While the writer holds the lock, nobody signs. */
	usleep(100000);
	before = b[0].count + b[1].count;
	usleep(250000);
	cr_assert_eq(b[0].count + b[1].count, before,
		     "signatures went on while a writer held the lock");
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* And after it, they go on. */
	usleep(200000);
	cr_assert_gt(b[0].count + b[1].count, before);
	for (i = 0; i < 2; i++) {
		b[i].stop = 1;
		pthread_join(th[i], NULL);
		cr_assert_eq(b[i].failed, 0, "%s", b[i].why);
		custody_signer_close(b[i].sg);
	}
	custody_ctx_free(ctx);
	free_pairs(p, 1);
}

Test(signer, an_idle_signer_holds_no_lock)
{
	static const char *const specs[] = {"ec:p256"};
	struct pair p[1];
	custody_ctx *ctx;
	custody_signer *sg;
	custody_signature_info info;
	unsigned char *sig = NULL;
	size_t len = 0;
	char lock[PATH_MAX + 64], gate[PATH_MAX + 64];
	int fd;

	make_pairs(p, specs, 1);
	assign("Default", "global", p[0].tp, T0, 0);
	lock_paths(lock, gate, sizeof(lock));
	ctx = ctx_open(NULL, NULL);
	sg = signer_open(ctx, "Default", NULL);
	sign_ok(sg, T0, CUSTODY_SIG_AUTO, NID_sha256, &sig, &len, &info);
	free(sig);
	fd = open(lock, O_RDONLY);
	cr_assert_geq(fd, 0, "%s: %s", lock, strerror(errno));
	cr_assert_neq(flock(fd, LOCK_EX | LOCK_NB), 0,
		      "the lock is free right after a signature");
	usleep(100000);		/* idle for more than a lease tick */
	cr_assert_eq(flock(fd, LOCK_EX | LOCK_NB), 0,
		     "an idle signer still holds the token lock");
	flock(fd, LOCK_UN);
	close(fd);
	/* It takes the lock again for the next signature. */
	sign_ok(sg, T0, CUSTODY_SIG_AUTO, NID_sha256, &sig, &len, &info);
	cr_assert(verifies(p[0].cert, CUSTODY_SIG_ECDSA_DER, NID_sha256, msg,
			   sizeof(msg), sig, len));
	free(sig);
	custody_signer_close(sg);
	custody_ctx_free(ctx);
	free_pairs(p, 1);
}

/* A child process that holds the login turn (the lock file's ".login"
 * sibling) exclusively, says so on the pipe, and lets go after hold_ms. */
static pid_t
turn_holder_child(const char *lock, int hold_ms, int out)
{
	char turn[PATH_MAX + 64];
	pid_t pid;

	snprintf(turn, sizeof(turn), "%.*s.login", (int)(strlen(lock) - 5),
		 lock);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int fd = open(turn, O_RDONLY | O_CREAT, 0644);
		char c = 'h';

		if (fd < 0 || flock(fd, LOCK_EX) != 0)
			_exit(1);
		if (write(out, &c, 1) != 1)
			_exit(3);
		usleep((useconds_t)hold_ms * 1000);
		_exit(0);
	}
	return pid;
}

/* Signers initialise the module and log in one at a time (openCryptoki
 * 3.8.1 rewrites its token data on every login, and a C_Initialize that
 * reads it meanwhile loses the token): a new signer waits for the turn,
 * while one that already works goes on signing. */
Test(signer, new_signers_take_turns_to_log_in)
{
	static const char *const specs[] = {"ec:p256"};
	enum { HOLD_MS = 600 };
	struct pair p[1];
	custody_ctx *ctx, *ctx2;
	custody_signer *sg2;
	custody_signature_info info;
	struct busy b;
	pthread_t th;
	unsigned char *sig = NULL;
	size_t len = 0;
	char lock[PATH_MAX + 64], gate[PATH_MAX + 64], c;
	int fds[2], status, during;
	double t0, waited;
	pid_t pid;

	make_pairs(p, specs, 1);
	assign("Default", "global", p[0].tp, T0, 0);
	lock_paths(lock, gate, sizeof(lock));
	ctx = ctx_open(NULL, NULL);
	memset(&b, 0, sizeof(b));
	b.sg = signer_open(ctx, "Default", NULL);
	sign_ok(b.sg, T0, CUSTODY_SIG_AUTO, NID_sha256, &sig, &len, &info);
	free(sig);
	cr_assert_eq(pipe(fds), 0);
	pid = turn_holder_child(lock, HOLD_MS, fds[1]);
	cr_assert_eq(read(fds[0], &c, 1), 1);
	t0 = now_s();
	cr_assert_eq(pthread_create(&th, NULL, sign_until_stopped, &b), 0);
	usleep(150000);
	during = b.count;	/* signatures made while the turn is held */
	/* A second signer (its own context: a module initialisation and a
	 * login of its own) waits for the turn. */
	ctx2 = ctx_open(NULL, NULL);
	sg2 = signer_open(ctx2, "Default", NULL);
	sign_ok(sg2, T0, CUSTODY_SIG_AUTO, NID_sha256, &sig, &len, &info);
	waited = (now_s() - t0) * 1000;
	cr_assert(verifies(p[0].cert, CUSTODY_SIG_ECDSA_DER, NID_sha256, msg,
			   sizeof(msg), sig, len));
	free(sig);
	b.stop = 1;
	pthread_join(th, NULL);
	cr_assert_eq(b.failed, 0, "%s", b.why);
	cr_assert_geq(waited, HOLD_MS / 2,
		      "a new signer signed %.0f ms into another's login turn",
		      waited);
	cr_assert_gt(during, 0, "a signer that had logged in stopped during "
		     "another's login turn");
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(fds[0]);
	close(fds[1]);
	custody_signer_close(sg2);
	custody_ctx_free(ctx2);
	custody_signer_close(b.sg);
	custody_ctx_free(ctx);
	free_pairs(p, 1);
}

/* ------------------------------------------------------ pinned keys */

/* A key pinned to its certificate (an OpenSSL provider's key object)
 * keeps signing with that certificate's key after a set; the slots of the
 * assignment name the certificates the set moved. */
Test(signer, pinned_signs_with_its_certificate_after_a_set)
{
	static const char *const specs[] = {"ec:p256", "rsa:2048"};
	static const char unknown[] = "0123456789ABCDEF0123456789ABCDEF01234567";
	struct pair p[2];
	custody_ctx *ctx;
	custody_signer *sg;
	custody_signature_info info;
	custody_cert_record rec;
	custody_err err = {0};
	unsigned char md[32], *sig = NULL;
	size_t len = 0;

	make_pairs(p, specs, 2);
	assign("OAuthTokenIssuer", "global", p[0].tp, T0, 0);
	ctx = ctx_open(NULL, NULL);
	sg = signer_open(ctx, "OAuthTokenIssuer", NULL);
	assign("OAuthTokenIssuer", "global", p[1].tp, T0 + 10, 0);
	SHA256(msg, sizeof(msg), md);
	cr_assert_eq(custody_signer_sign_pinned(sg, p[0].tp, CUSTODY_SIG_AUTO,
						NID_sha256, md, sizeof(md), 1,
						&sig, &len, &info, &err),
		     CUSTODY_OK, "pinned: %s", err.msg);
	cr_assert_str_eq(info.thumbprint, p[0].tp, "not the pinned certificate");
	cr_assert_eq(info.scheme, CUSTODY_SIG_ECDSA_DER);
	cr_assert(verifies(p[0].cert, CUSTODY_SIG_ECDSA_DER, NID_sha256, msg,
			   sizeof(msg), sig, len));
	free(sig);
	/* A scheme the pinned key cannot do: refused, nothing signed. */
	cr_assert_eq(custody_signer_sign_pinned(sg, p[0].tp, CUSTODY_SIG_RSA_PSS,
						NID_sha256, md, sizeof(md), 1,
						&sig, &len, NULL, &err),
		     CUSTODY_EFAIL);
	cr_assert_null(sig);
	/* A certificate the store does not have: refused. */
	cr_assert_eq(custody_signer_sign_pinned(sg, unknown, CUSTODY_SIG_AUTO,
						NID_sha256, md, sizeof(md), 1,
						&sig, &len, NULL, &err),
		     CUSTODY_EFAIL);
	cr_assert_null(sig);
	cr_assert_eq(custody_signer_sign_pinned(sg, "ABC", CUSTODY_SIG_AUTO,
						NID_sha256, md, sizeof(md), 1,
						&sig, &len, NULL, &err),
		     CUSTODY_EUSAGE);
	/* The slots after the set. */
	cr_assert_eq(custody_signer_slot_cert(sg, T0 + 11, CUSTODY_SLOT_CURRENT,
					      &rec, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_str_eq(rec.thumbprint, p[1].tp);
	custody_cert_record_clear(&rec);
	cr_assert_eq(custody_signer_slot_cert(sg, T0 + 11, CUSTODY_SLOT_PREVIOUS,
					      &rec, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_str_eq(rec.thumbprint, p[0].tp);
	cr_assert_str_eq(rec.key_id, p[0].key_id);
	custody_cert_record_clear(&rec);
	cr_assert_eq(custody_signer_slot_cert(sg, T0 + 11, CUSTODY_SLOT_PENDING,
					      &rec, &err), CUSTODY_ENOTFOUND);
	cr_assert(strstr(err.msg, "no pending certificate") != NULL, "%s", err.msg);
	custody_signer_close(sg);
	custody_ctx_free(ctx);
	free_pairs(p, 2);
}
