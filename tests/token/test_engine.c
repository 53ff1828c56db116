/*
 * test_engine.c — the OpenSSL engine "custody" (engines/custody.so, over
 * custody/keyref.h) loaded into this process as an application loads it,
 * against a throwaway SoftHSM token and SQLite store per test (Criterion
 * runs tests in parallel processes).
 *
 * The engine is the build tree's: $TOP_BUILDDIR/engines/.libs/custody.so
 * (make check sets TOP_BUILDDIR), else engines/.libs/custody.so from the
 * current directory.
 */
#include "config.h"

/* ENGINE is deprecated in OpenSSL 3: it is what is tested. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <limits.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <custody/assign.h>
#include <custody/cert.h>
#include <custody/integrity.h>
#include <custody/store.h>
#include <custody/token.h>

#include "token/softhsm_fixture.h"
#include "unit/testcerts.h"

static struct softhsm_fixture fx;
static char store_url[PATH_MAX + 32];
static char pin_source[PATH_MAX + 32];

static void
setup(void)
{
	softhsm_fixture_setup(&fx, "engine test");
	snprintf(store_url, sizeof(store_url), "sqlite:%s/custody.db", fx.dir);
	snprintf(pin_source, sizeof(pin_source), "file:%s", fx.user_pin_file);
	/* What the `custody` command reads, as tests/token/lib.sh sets it. */
	setenv("CUSTODY_CONFIG", "", 1);
	setenv("CUSTODY_MODULE", fx.module, 1);
	setenv("CUSTODY_TOKEN", fx.label, 1);
	setenv("CUSTODY_PIN_SOURCE", pin_source, 1);
	setenv("CUSTODY_STORE", store_url, 1);
	setenv("CUSTODY_NODE", "node1", 1);
	unsetenv("CUSTODY_SO_PIN_SOURCE");
}

static void
teardown(void)
{
	softhsm_fixture_teardown(&fx);
}

TestSuite(engine, .init = setup, .fini = teardown);

static const unsigned char msg[] = "the engine signs this message";

/* ------------------------------------------------------------ helpers */

/* The engine from the build tree, initialised. */
static ENGINE *
engine_load(void)
{
	const char *top = getenv("TOP_BUILDDIR");
	char path[PATH_MAX];
	ENGINE *e;

	snprintf(path, sizeof(path), "%s%sengines/.libs/custody.so",
		 top != NULL ? top : "", top != NULL ? "/" : "");
	cr_assert_not_null(e = ENGINE_by_id("dynamic"));
	cr_assert(ENGINE_ctrl_cmd_string(e, "SO_PATH", path, 0),
		  "cannot load %s", path);
	cr_assert(ENGINE_ctrl_cmd_string(e, "ID", "custody", 0));
	cr_assert(ENGINE_ctrl_cmd_string(e, "LOAD", NULL, 0),
		  "cannot bind the engine in %s", path);
	cr_assert_str_eq(ENGINE_get_id(e), "custody");
	cr_assert_eq(ENGINE_init(e), 1);
	return e;
}

static void
engine_unload(ENGINE *e)
{
	ENGINE_finish(e);
	ENGINE_free(e);
}

static int
collect(const char *str, size_t len, void *u)
{
	char *buf = u;
	size_t used = strlen(buf);

	if (used + len + 1 < 8192) {
		memcpy(buf + used, str, len);
		buf[used + len] = '\0';
	}
	return 1;
}

/* OpenSSL's error queue as text (and emptied); static buffer. */
static const char *
errors(void)
{
	static char buf[8192];

	buf[0] = '\0';
	ERR_print_errors_cb(collect, buf);
	return buf;
}

/* A key and its self-signed certificate, put on the token. */
struct pair {
	EVP_PKEY *key;
	X509 *cert;
};

static void
make_pairs(struct pair *p, const char *const *specs, size_t n)
{
	custody_token *tok = softhsm_fixture_open(&fx);
	custody_token_import_result res;
	custody_err err = {0};
	char cn[32];
	size_t i;

	for (i = 0; i < n; i++) {
		snprintf(cn, sizeof(cn), "pair%zu.custody.test", i);
		p[i].key = testcert_key(specs[i]);
		p[i].cert = testcert_self_signed(p[i].key, cn, NULL, 0, 30);
		cr_assert_eq(custody_token_import(tok, p[i].key, p[i].cert, NULL,
						  NULL, 0, &res, &err),
			     CUSTODY_OK, "import: %s", err.msg);
	}
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

/* Makes cert current for (type, identity) in the store, as `custody set`
 * does (the certificate recorded first). */
static void
assign(const char *type, const char *identity, X509 *cert)
{
	custody_token *tok = NULL;
	custody_store *st = NULL;
	custody_cert_record rec;
	custody_assignment a;
	custody_assign_outcome oc;
	custody_err err = {0};
	int r;

	cr_assert_eq(custody_store_open(store_url, &st, &err), CUSTODY_OK,
		     "%s", err.msg);
	/* The token tags what is written (custody/integrity.h). */
	tok = softhsm_fixture_open(&fx);
	cr_assert_eq(custody_integrity_attach(st, tok, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_cert_record_from_x509(cert, &rec, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_put_cert(st, &rec, &err), CUSTODY_OK,
		     "%s", err.msg);
	r = custody_store_get_assignment(st, type, identity, &a, &err);
	if (r == CUSTODY_ENOTFOUND) {
		memset(&a, 0, sizeof(a));
		snprintf(a.type, sizeof(a.type), "%s", type);
		snprintf(a.identity, sizeof(a.identity), "%s", identity);
	} else {
		cr_assert_eq(r, CUSTODY_OK, "%s", err.msg);
	}
	cr_assert_eq(custody_assign_set(&a, rec.thumbprint,
					(int64_t)time(NULL), &a, &oc, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_put_assignment(st, &a, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK, "%s",
		     err.msg);
	custody_cert_record_clear(&rec);
	custody_store_close(st);
	custody_token_close(tok);
}

/* A signature of msg (SHA-256) made with pkey; malloc'ed by OpenSSL. */
static unsigned char *
sign(EVP_PKEY *pkey, size_t *len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char *sig;

	cr_assert_eq(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey),
		     1, "%s", errors());
	cr_assert_eq(EVP_DigestSign(ctx, NULL, len, msg, sizeof(msg)), 1);
	sig = OPENSSL_malloc(*len);
	cr_assert_eq(EVP_DigestSign(ctx, sig, len, msg, sizeof(msg)), 1,
		     "%s", errors());
	EVP_MD_CTX_free(ctx);
	return sig;
}

static int
verifies(X509 *cert, const unsigned char *sig, size_t len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	cr_assert_eq(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL,
					  X509_get0_pubkey(cert)), 1);
	ok = EVP_DigestVerify(ctx, sig, len, msg, sizeof(msg)) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

/* Signs with pkey and checks the signature with cert (and not with
 * other, when given). */
static void
assert_signs_as(EVP_PKEY *pkey, X509 *cert, X509 *other)
{
	unsigned char *sig;
	size_t len = 0;

	sig = sign(pkey, &len);
	cr_assert(verifies(cert, sig, len),
		  "the signature does not verify with the certificate");
	if (other != NULL)
		cr_assert(!verifies(other, sig, len),
			  "the signature verifies with another certificate");
	OPENSSL_free(sig);
}

struct load_cert_params {
	const char *name;
	X509 *cert;
};

/* ------------------------------------------------------------ tests */

Test(engine, rsa_and_ec_keys_sign_in_the_token)
{
	static const char *const specs[] = {"rsa:2048", "ec:p256"};
	struct pair p[2];
	EVP_PKEY *rsa, *ec;
	ENGINE *e;

	make_pairs(p, specs, 2);
	assign("OAuthTokenIssuer", "global", p[0].cert);
	assign("WebServicesInternal", "global", p[1].cert);
	e = engine_load();
	rsa = ENGINE_load_private_key(e, "OAuthTokenIssuer", NULL, NULL);
	cr_assert_not_null(rsa, "%s", errors());
	ec = ENGINE_load_private_key(e, "WebServicesInternal", NULL, NULL);
	cr_assert_not_null(ec, "%s", errors());
	cr_assert_eq(EVP_PKEY_get_base_id(rsa), EVP_PKEY_RSA);
	cr_assert_eq(EVP_PKEY_get_bits(rsa), 2048);
	cr_assert_eq(EVP_PKEY_get_base_id(ec), EVP_PKEY_EC);
	assert_signs_as(rsa, p[0].cert, NULL);
	assert_signs_as(ec, p[1].cert, NULL);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	engine_unload(e);
	free_pairs(p, 2);
}

Test(engine, load_cert_ctrl_and_public_key_need_no_pin)
{
	static const char *const specs[] = {"ec:p256"};
	struct load_cert_params parms = {"WebServicesInternal", NULL};
	struct pair p[1];
	EVP_PKEY *pub;
	ENGINE *e;

	make_pairs(p, specs, 1);
	assign("WebServicesInternal", "global", p[0].cert);
	unsetenv("CUSTODY_PIN_SOURCE");
	unsetenv("CUSTODY_MODULE");
	e = engine_load();
	cr_assert_eq(ENGINE_ctrl_cmd(e, "LOAD_CERT_CTRL", 0, &parms, NULL, 0),
		     1, "%s", errors());
	cr_assert_not_null(parms.cert);
	cr_assert_eq(X509_cmp(parms.cert, p[0].cert), 0,
		     "LOAD_CERT_CTRL gave another certificate");
	pub = ENGINE_load_public_key(e, "WebServicesInternal", NULL, NULL);
	cr_assert_not_null(pub, "%s", errors());
	cr_assert_eq(EVP_PKEY_eq(pub, X509_get0_pubkey(p[0].cert)), 1);
	X509_free(parms.cert);
	EVP_PKEY_free(pub);
	engine_unload(e);
	free_pairs(p, 1);
}

Test(engine, every_load_resolves_anew_and_old_keys_stay_valid)
{
	static const char *const specs[] = {"rsa:2048", "ec:p256"};
	struct load_cert_params parms = {"OAuthTokenIssuer", NULL};
	struct pair p[2];
	EVP_PKEY *first, *second;
	ENGINE *e;

	make_pairs(p, specs, 2);
	assign("OAuthTokenIssuer", "global", p[0].cert);
	e = engine_load();
	first = ENGINE_load_private_key(e, "OAuthTokenIssuer", NULL, NULL);
	cr_assert_not_null(first, "%s", errors());
	assert_signs_as(first, p[0].cert, p[1].cert);

	/* `custody set` in another process changes the store only. */
	assign("OAuthTokenIssuer", "global", p[1].cert);
	second = ENGINE_load_private_key(e, "OAuthTokenIssuer", NULL, NULL);
	cr_assert_not_null(second, "%s", errors());
	assert_signs_as(second, p[1].cert, p[0].cert);
	cr_assert_eq(ENGINE_ctrl_cmd(e, "LOAD_CERT_CTRL", 0, &parms, NULL, 0),
		     1, "%s", errors());
	cr_assert_eq(X509_cmp(parms.cert, p[1].cert), 0,
		     "LOAD_CERT_CTRL did not give the new certificate");
	/* The key loaded first still signs, with the old key. */
	assert_signs_as(first, p[0].cert, p[1].cert);
	X509_free(parms.cert);
	EVP_PKEY_free(first);
	EVP_PKEY_free(second);
	engine_unload(e);
	free_pairs(p, 2);
}

Test(engine, node_assignment_wins_over_global_and_identity_names_one)
{
	static const char *const specs[] = {"ec:p256", "ec:p256"};
	struct pair p[2];
	EVP_PKEY *mine, *global;
	ENGINE *e;

	make_pairs(p, specs, 2);
	assign("Default", "global", p[0].cert);
	assign("Default", "node1", p[1].cert);
	e = engine_load();
	mine = ENGINE_load_private_key(e, "Default", NULL, NULL);
	cr_assert_not_null(mine, "%s", errors());
	global = ENGINE_load_private_key(e, "default@GLOBAL", NULL, NULL);
	cr_assert_not_null(global, "%s", errors());
	assert_signs_as(mine, p[1].cert, p[0].cert);
	assert_signs_as(global, p[0].cert, p[1].cert);
	EVP_PKEY_free(mine);
	EVP_PKEY_free(global);
	engine_unload(e);
	free_pairs(p, 2);
}

Test(engine, unknown_type_and_bad_names_are_errors_naming_them)
{
	ENGINE *e = engine_load();
	custody_store *st = NULL;
	custody_err err = {0};
	const char *text;
	char db[PATH_MAX + 16];
	struct stat sb;

	/* No store yet: the engine reads, and a read makes none. */
	cr_assert_null(ENGINE_load_private_key(e, "NoSuchType", NULL, NULL));
	text = errors();
	cr_assert(strstr(text, "no store at") != NULL, "%s", text);
	snprintf(db, sizeof(db), "%s/custody.db", fx.dir);
	cr_assert_neq(stat(db, &sb), 0, "the engine made %s", db);
	/* An empty store (a write made it): nothing is assigned in it. */
	cr_assert_eq(custody_store_open(store_url, &st, &err), CUSTODY_OK, "%s", err.msg);
	custody_store_close(st);
	cr_assert_null(ENGINE_load_private_key(e, "NoSuchType", NULL, NULL));
	text = errors();
	cr_assert(strstr(text, "cannot load the private key of NoSuchType: "
			 "no certificate is assigned for type NoSuchType "
			 "(identity node1 or global)") != NULL, "%s", text);
	cr_assert_null(ENGINE_load_private_key(e, "NoSuchType@node2", NULL,
					       NULL));
	text = errors();
	cr_assert(strstr(text, "no certificate is assigned for type "
			 "NoSuchType (identity node2)") != NULL, "%s", text);
	cr_assert_null(ENGINE_load_private_key(e, "pkcs11:id=%01", NULL,
					       NULL));
	text = errors();
	cr_assert(strstr(text, "cannot load the private key of pkcs11:id=%01: "
			 "invalid type name 'pkcs11:id=%01'") != NULL, "%s",
		  text);
	cr_assert_null(ENGINE_load_public_key(e, "Default@no body", NULL,
					      NULL));
	text = errors();
	cr_assert(strstr(text, "cannot load the certificate of Default@no "
			 "body: invalid identity 'no body'") != NULL, "%s",
		  text);
	engine_unload(e);
}

Test(engine, no_pin_source_is_an_error_not_a_prompt)
{
	static const char *const specs[] = {"rsa:2048"};
	struct pair p[1];
	const char *text;
	EVP_PKEY *k;
	ENGINE *e;

	make_pairs(p, specs, 1);
	assign("OAuthTokenIssuer", "global", p[0].cert);
	unsetenv("CUSTODY_PIN_SOURCE");
	e = engine_load();
	cr_assert_null(ENGINE_load_private_key(e, "OAuthTokenIssuer", NULL,
					       NULL));
	text = errors();
	cr_assert(strstr(text, "cannot load the private key of "
			 "OAuthTokenIssuer: no PIN source configured (set "
			 "CUSTODY_PIN_SOURCE=") != NULL, "%s", text);
	/* The PIN_SOURCE control command supplies it. */
	cr_assert_eq(ENGINE_ctrl_cmd_string(e, "PIN_SOURCE", pin_source, 0), 1,
		     "%s", errors());
	k = ENGINE_load_private_key(e, "OAuthTokenIssuer", NULL, NULL);
	cr_assert_not_null(k, "%s", errors());
	assert_signs_as(k, p[0].cert, NULL);
	EVP_PKEY_free(k);
	engine_unload(e);
	free_pairs(p, 1);
}

Test(engine, wrong_pin_is_an_error_naming_the_refusal)
{
	static const char *const specs[] = {"ec:p256"};
	char bad[PATH_MAX + 64], path[PATH_MAX + 32];
	struct pair p[1];
	const char *text;
	ENGINE *e;

	make_pairs(p, specs, 1);
	assign("Default", "node1", p[0].cert);
	snprintf(path, sizeof(path), "%s/bad.pin", fx.dir);
	testcert_write_file(path, "00000000", 8);
	snprintf(bad, sizeof(bad), "file:%s", path);
	setenv("CUSTODY_PIN_SOURCE", bad, 1);
	e = engine_load();
	cr_assert_null(ENGINE_load_private_key(e, "Default", NULL, NULL));
	text = errors();
	cr_assert(strstr(text, "cannot load the private key of Default: ") !=
		  NULL && strstr(text, "the token rejected the PIN") != NULL,
		  "%s", text);
	engine_unload(e);
	free_pairs(p, 1);
}

Test(engine, control_commands_win_over_the_environment)
{
	static const char *const specs[] = {"ec:p256"};
	char conf[PATH_MAX + 32], text[PATH_MAX + 64];
	struct pair p[1];
	EVP_PKEY *k;
	ENGINE *e;

	make_pairs(p, specs, 1);
	assign("Default", "node7", p[0].cert);
	/* The environment names a store and node that do not have it. */
	setenv("CUSTODY_STORE", "sqlite:/nonexistent/custody/x.db", 1);
	setenv("CUSTODY_NODE", "node1", 1);
	snprintf(conf, sizeof(conf), "%s/custody.conf", fx.dir);
	snprintf(text, sizeof(text), "[store]\nurl = %s\n", store_url);
	testcert_write_file(conf, text, strlen(text));
	e = engine_load();
	cr_assert_eq(ENGINE_ctrl_cmd_string(e, "NODE", "node7", 0), 1);
	cr_assert_eq(ENGINE_ctrl_cmd_string(e, "STORE", store_url, 0), 1);
	k = ENGINE_load_private_key(e, "Default", NULL, NULL);
	cr_assert_not_null(k, "%s", errors());
	assert_signs_as(k, p[0].cert, NULL);
	EVP_PKEY_free(k);
	/* A bad value is refused when it is set, naming what is wrong. */
	cr_assert_eq(ENGINE_ctrl_cmd_string(e, "PIN_SOURCE", "pin:1234", 0), 0);
	cr_assert(strstr(errors(), "pin-source: ") != NULL);
	cr_assert_eq(ENGINE_ctrl_cmd_string(e, "STORE", "mysql://x", 0), 0);
	cr_assert(strstr(errors(), "invalid url 'mysql://x'") != NULL);
	/* The open token cannot be swapped under the loaded keys. */
	cr_assert_eq(ENGINE_ctrl_cmd_string(e, "TOKEN", "other", 0), 0);
	cr_assert(strstr(errors(), "cannot change the token: token engine "
			 "test is open") != NULL);
	engine_unload(e);
	free_pairs(p, 1);
}

Test(engine, config_file_is_read_as_the_command_reads_it)
{
	static const char *const specs[] = {"rsa:2048"};
	char conf[PATH_MAX + 32], text[4 * PATH_MAX + 256];
	struct pair p[1];
	EVP_PKEY *k;
	ENGINE *e;

	make_pairs(p, specs, 1);
	assign("OAuthTokenIssuer", "global", p[0].cert);
	snprintf(conf, sizeof(conf), "%s/custody.conf", fx.dir);
	snprintf(text, sizeof(text),
		 "[token]\nmodule = %s\nlabel = %s\npin-source = %s\n"
		 "[store]\nurl = %s\n[node]\nname = node1\n",
		 fx.module, fx.label, pin_source, store_url);
	testcert_write_file(conf, text, strlen(text));
	unsetenv("CUSTODY_MODULE");
	unsetenv("CUSTODY_TOKEN");
	unsetenv("CUSTODY_PIN_SOURCE");
	unsetenv("CUSTODY_STORE");
	unsetenv("CUSTODY_NODE");
	setenv("CUSTODY_CONFIG", conf, 1);
	e = engine_load();
	k = ENGINE_load_private_key(e, "OAuthTokenIssuer", NULL, NULL);
	cr_assert_not_null(k, "%s", errors());
	assert_signs_as(k, p[0].cert, NULL);
	EVP_PKEY_free(k);
	engine_unload(e);
	/* A broken file is an error naming the file and line. */
	testcert_write_file(conf, "[token]\nflavour = x\n", 20);
	e = engine_load();
	cr_assert_null(ENGINE_load_private_key(e, "OAuthTokenIssuer", NULL,
					       NULL));
	cr_assert(strstr(errors(), "custody.conf:2: unknown key 'flavour' in "
			 "section [token]") != NULL);
	engine_unload(e);
	free_pairs(p, 1);
}

Test(engine, key_missing_from_the_token_leaves_loaded_keys_working)
{
	static const char *const specs[] = {"ec:p256"};
	struct pair p[1];
	EVP_PKEY *k, *elsewhere_key;
	X509 *elsewhere;
	const char *text;
	ENGINE *e;

	make_pairs(p, specs, 1);
	assign("Default", "node1", p[0].cert);
	/* A certificate assigned in the store whose key is on no token. */
	elsewhere_key = testcert_key("ec:p256");
	elsewhere = testcert_self_signed(elsewhere_key, "elsewhere", NULL, 0,
					 30);
	assign("WebServicesExternal", "node1", elsewhere);
	e = engine_load();
	k = ENGINE_load_private_key(e, "Default", NULL, NULL);
	cr_assert_not_null(k, "%s", errors());
	cr_assert_null(ENGINE_load_private_key(e, "WebServicesExternal", NULL,
					       NULL));
	text = errors();
	cr_assert(strstr(text, "cannot load the private key of "
			 "WebServicesExternal: no private key with key id ") !=
		  NULL && strstr(text, " on token engine test") != NULL,
		  "%s", text);
	/* The key loaded before still signs in its session. */
	assert_signs_as(k, p[0].cert, NULL);
	EVP_PKEY_free(k);
	engine_unload(e);
	X509_free(elsewhere);
	EVP_PKEY_free(elsewhere_key);
	free_pairs(p, 1);
}
