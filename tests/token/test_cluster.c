/*
 * test_cluster.c — the cluster library (custody/cluster.h) on throwaway
 * SoftHSM tokens: four tokens per test in one token directory ("node1",
 * "node2", "node3" and "rogue", a token of another cluster) and one SQLite
 * store, so that one process can play every node.  The ceremony, the
 * global rule, replication by sync (RSA and EC), bad packages refused
 * while the rest carries on, seal, status, and the package file format
 * (suite "package": its strict parser, without a token).
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <custody/audit.h>
#include <custody/cert.h>
#include <custody/cluster.h>
#include <custody/integrity.h>
#include <custody/store.h>
#include <custody/token.h>

#include "../src/lib/token/wrap.h"
#include "token/softhsm_fixture.h"
#include "unit/pgtest.h"
#include "unit/testcerts.h"

static struct softhsm_fixture f1, f2, f3, fr;
static char url[PATH_MAX + 32];

static void
setup(void)
{
	softhsm_fixture_setup(&f1, "node1");
	softhsm_fixture_add_token(&f1, &f2, "node2");
	softhsm_fixture_add_token(&f1, &f3, "node3");
	softhsm_fixture_add_token(&f1, &fr, "rogue");
	snprintf(url, sizeof(url), "sqlite:%s/custody.db", f1.dir);
}

static void
teardown(void)
{
	softhsm_fixture_teardown(&fr);
	softhsm_fixture_teardown(&f3);
	softhsm_fixture_teardown(&f2);
	softhsm_fixture_teardown(&f1);
}

TestSuite(cluster, .init = setup, .fini = teardown, .timeout = 120);

/* The same on PostgreSQL (a schema of its own per test), when
 * CUSTODY_TEST_PG_URL names a server; skipped otherwise. */
static char schema[64];

static void
pg_setup(void)
{
	setup();
	if (pgtest_base_url() != NULL)
		pgtest_create(url, sizeof(url), schema);
}

static void
pg_teardown(void)
{
	if (pgtest_base_url() != NULL)
		pgtest_drop(schema);
	teardown();
}

TestSuite(cluster_pg, .init = pg_setup, .fini = pg_teardown, .timeout = 120);

/* BOTH(name) { body }: cluster::name on SQLite, cluster_pg::name on
 * PostgreSQL. */
#define BOTH(name) \
	static void name##_body(void); \
	Test(cluster, name) { name##_body(); } \
	Test(cluster_pg, name) \
	{ \
		if (pgtest_base_url() == NULL) \
			cr_skip_test(PGTEST_SKIPPED); \
		name##_body(); \
	} \
	static void name##_body(void)

/* ---------------------------------------------------------- helpers */

static custody_store *
store_open(void)
{
	custody_store *st = NULL;
	custody_err err = {0};

	cr_assert_eq(custody_store_open(url, &st, &err), CUSTODY_OK, "%s", err.msg);
	return st;
}

static int
has(const char *haystack, const char *needle)
{
	return strstr(haystack, needle) != NULL;
}

static void
node_get(custody_store *st, const char *name, custody_node_record *rec)
{
	custody_err err = {0};

	cr_assert_eq(custody_store_get_node(st, name, rec, &err), CUSTODY_OK, "%s",
		     err.msg);
}

static void
kcv_of(custody_token *tok, char kcv[CUSTODY_KCV_HEX + 1])
{
	custody_err err = {0};

	cr_assert_eq(custody_token_kek_kcv(tok, kcv, &err), CUSTODY_OK, "%s", err.msg);
}

/* The fingerprint of node's transport key in the store, as the SO who
 * compared it with what enroll printed would confirm it (a static
 * buffer: one call per expression). */
static const char *
confirmed_fp(custody_store *st, const char *node)
{
	static char fp[CUSTODY_CLUSTER_FP_SIZE];
	custody_node_record rec;
	custody_err err = {0};

	fp[0] = '\0';
	memset(&rec, 0, sizeof(rec));
	if (custody_store_get_node(st, node, &rec, &err) == CUSTODY_OK &&
	    rec.transport_spki != NULL)
		custody_cluster_fingerprint(rec.transport_spki,
					    rec.transport_spki_len, fp);
	custody_node_record_clear(&rec);
	return fp;
}

/* node enroll with the store's authority confirmed, as an operator who
 * compared it would. */
static int
enroll(custody_token *t, custody_store *st, const char *node,
       custody_err *err)
{
	char fp[CUSTODY_CLUSTER_FP_SIZE];
	int held = 0;

	cr_assert_eq(custody_cluster_authority(NULL, st, node, 0, fp, &held, err),
		     CUSTODY_OK, "%s", err->msg);
	return custody_cluster_node_enroll(t, st, node, fp, err);
}

/* The whole ceremony, asserting only that each step works. */
static void
ceremony(custody_token *t1, custody_token *t2, custody_token *t3,
	 custody_store *st)
{
	custody_err err = {0};

	cr_assert_eq(custody_cluster_kek_create(t1, st, "node1", NULL, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(enroll(t2, st, "node2", &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(custody_cluster_node_admit(t1, st, "node1", "node2", confirmed_fp(st, "node2"), f1.so_pin,
						strlen(f1.so_pin), f1.user_pin,
						strlen(f1.user_pin), &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_cluster_node_join(t2, st, "node2", NULL, &err), CUSTODY_OK,
		     "%s", err.msg);
	if (t3 == NULL)
		return;
	cr_assert_eq(enroll(t3, st, "node3", &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(custody_cluster_node_admit(t1, st, "node1", "node3", confirmed_fp(st, "node3"), f1.so_pin,
						strlen(f1.so_pin), f1.user_pin,
						strlen(f1.user_pin), &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_cluster_node_join(t3, st, "node3", NULL, &err), CUSTODY_OK,
		     "%s", err.msg);
}

/* A key and certificate made in memory, on a token as replicable, in the
 * store, assigned at global as `type`, and packaged under the KEK. */
struct key {
	EVP_PKEY *key;
	X509 *cert;
	custody_cert_record rec;
};

static void
key_make(struct key *k, const char *spec, const char *cn)
{
	custody_err err = {0};

	memset(k, 0, sizeof(*k));
	k->key = testcert_key(spec);
	k->cert = testcert_self_signed(k->key, cn, NULL, -60, 30);
	cr_assert_eq(custody_cert_record_from_x509(k->cert, &k->rec, &err), CUSTODY_OK,
		     "%s", err.msg);
}

static void
key_free(struct key *k)
{
	EVP_PKEY_free(k->key);
	X509_free(k->cert);
	custody_cert_record_clear(&k->rec);
}

static void
assign_global(custody_store *st, const char *type, const char *thumbprint)
{
	custody_assignment a;
	custody_err err = {0};

	memset(&a, 0, sizeof(a));
	snprintf(a.type, sizeof(a.type), "%s", type);
	snprintf(a.identity, sizeof(a.identity), "global");
	snprintf(a.current.thumbprint, sizeof(a.current.thumbprint), "%s", thumbprint);
	a.current.effective = (int64_t)time(NULL) - 10;
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_put_assignment(st, &a, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK, "%s", err.msg);
}

static void
key_publish(custody_token *tok, custody_store *st, struct key *k, const char *type)
{
	custody_token_import_result res;
	custody_err err = {0};

	cr_assert_eq(custody_token_import(tok, k->key, k->cert, NULL, NULL, 1, &res, &err),
		     CUSTODY_OK, "%s", err.msg);
	/* The token tags what is written (custody/integrity.h). */
	cr_assert_eq(custody_integrity_attach(st, tok, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_put_cert(st, &k->rec, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_cluster_package_key(tok, st, "node1", k->rec.thumbprint, &err),
		     CUSTODY_OK, "%s", err.msg);
	if (type != NULL)
		assign_global(st, type, k->rec.thumbprint);
	custody_integrity_detach(st);
}

/* The token signs with the key of k, and the certificate verifies it. */
static void
signs_for(custody_token *tok, struct key *k)
{
	static const unsigned char data[] = "custody cluster test";
	unsigned char *sig = NULL;
	size_t sig_len = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	custody_err err = {0};

	cr_assert_eq(custody_token_sign(tok, k->rec.key_id, NID_sha256, data, sizeof(data),
					&sig, &sig_len, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_not_null(md);
	cr_assert_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
					  X509_get0_pubkey(k->cert)), 1);
	cr_assert_eq(EVP_DigestVerify(md, sig, sig_len, data, sizeof(data)), 1,
		     "the signature of the replicated key verifies");
	EVP_MD_CTX_free(md);
	free(sig);
}

static const custody_sync_item *
item(const custody_sync_result *res, const char *thumbprint)
{
	size_t i;

	for (i = 0; i < res->n; i++)
		if (strcmp(res->items[i].thumbprint, thumbprint) == 0)
			return &res->items[i];
	cr_assert_fail("no sync item for %s", thumbprint);
	return NULL;
}

static int
holds_key(custody_token *tok, const char *key_id)
{
	custody_err err = {0};
	int present = -1;

	cr_assert_eq(custody_token_has_private_key(tok, key_id, &present, &err),
		     CUSTODY_OK, "%s", err.msg);
	return present;
}

/* ---------------------------------------------------------- ceremony */

BOTH(ceremony_on_three_tokens)
{
	custody_token *t1 = softhsm_fixture_open(&f1);
	custody_token *t2 = softhsm_fixture_open(&f2);
	custody_token *t3 = softhsm_fixture_open(&f3);
	custody_store *st = store_open();
	custody_node_record rec;
	custody_err err = {0};
	char kcv1[7], kcv2[7], kcv3[7], skcv[7], tkcv[7];
	unsigned char *spki = NULL;
	size_t spki_len = 0, n = 0;
	int64_t version;

	cr_assert_eq(custody_cluster_kek_create(t1, st, "node1", NULL, &err), CUSTODY_OK,
		     "%s", err.msg);
	kcv_of(t1, kcv1);
	cr_assert_eq(custody_cluster_kek_state(t1, st, skcv, tkcv, &err), CUSTODY_OK);
	cr_assert_str_eq(skcv, kcv1, "the store records the KEK's key check value");
	cr_assert_str_eq(tkcv, kcv1);
	node_get(st, "node1", &rec);
	cr_assert_str_eq(rec.state, "joined", "the KEK's node is the first member");
	cr_assert_null(rec.transport_spki);
	custody_node_record_clear(&rec);
	cr_assert_eq(custody_cluster_kek_create(t2, st, "node2", NULL, &err), CUSTODY_EFAIL);
	cr_assert(has(err.msg, "the cluster already has one (key check value"), "%s", err.msg);
	cr_assert_eq(custody_cluster_kek_state(t2, NULL, skcv, tkcv, &err), CUSTODY_OK);
	cr_assert_str_eq(tkcv, "", "the refused kek create made nothing on node2");

	cr_assert_eq(enroll(t2, st, "node2", &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(enroll(t3, st, "node3", &err), CUSTODY_OK,
		     "%s", err.msg);
	node_get(st, "node2", &rec);
	cr_assert_str_eq(rec.state, "enrolled");
	cr_assert_eq(custody_token_transport_public(t2, "node2", &spki, &spki_len, &err),
		     CUSTODY_OK);
	cr_assert_eq(rec.transport_spki_len, spki_len);
	cr_assert_eq(memcmp(rec.transport_spki, spki, spki_len), 0,
		     "the store holds node2's transport public key");
	version = rec.version;
	custody_node_record_clear(&rec);
	free(spki);
	cr_assert_eq(enroll(t2, st, "node2", &err), CUSTODY_OK);
	node_get(st, "node2", &rec);
	cr_assert_eq(rec.version, version, "enrolling again with the same key changes nothing");
	custody_node_record_clear(&rec);

	/* Not admitted: no join. */
	cr_assert_eq(custody_cluster_node_join(t2, st, "node2", NULL, &err), CUSTODY_EFAIL);
	cr_assert(has(err.msg, "node node2 is not admitted"), "%s", err.msg);
	cr_assert_eq(custody_cluster_kek_state(t2, NULL, skcv, tkcv, &err), CUSTODY_OK);
	cr_assert_str_eq(tkcv, "");

	/* A wrong SO PIN: EPIN, nothing changed, the user logged in again. */
	cr_assert_eq(custody_cluster_node_admit(t1, st, "node1", "node2", confirmed_fp(st, "node2"), "0000000", 7,
						f1.user_pin, strlen(f1.user_pin), &err),
		     CUSTODY_EPIN, "%s", err.msg);
	cr_assert(has(err.msg, "as security officer: the token rejected the PIN"), "%s",
		  err.msg);
	node_get(st, "node2", &rec);
	cr_assert_str_eq(rec.state, "enrolled");
	cr_assert_null(rec.kek_wrap);
	cr_assert_eq(rec.version, version);
	custody_node_record_clear(&rec);
	kcv_of(t1, skcv);
	cr_assert_str_eq(skcv, kcv1, "node1's user is logged in again");
	cr_assert_eq(custody_cluster_node_admit(t1, st, "node1", "node9", confirmed_fp(st, "node9"), f1.so_pin,
						strlen(f1.so_pin), f1.user_pin,
						strlen(f1.user_pin), &err), CUSTODY_EFAIL);
	cr_assert(has(err.msg, "cannot admit node node9: it has not enrolled"), "%s", err.msg);

	cr_assert_eq(custody_cluster_node_admit(t1, st, "node1", "node2", confirmed_fp(st, "node2"), f1.so_pin,
						strlen(f1.so_pin), f1.user_pin,
						strlen(f1.user_pin), &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_cluster_node_admit(t1, st, "node1", "node3", confirmed_fp(st, "node3"), f1.so_pin,
						strlen(f1.so_pin), f1.user_pin,
						strlen(f1.user_pin), &err), CUSTODY_OK, "%s", err.msg);
	node_get(st, "node3", &rec);
	cr_assert_str_eq(rec.state, "admitted");
	cr_assert_str_eq(rec.admitted_by, "node1");
	cr_assert_eq(rec.kek_wrap_len, 384, "RSA-OAEP under a 3072-bit key");
	custody_node_record_clear(&rec);

	cr_assert_eq(custody_cluster_node_join(t2, st, "node2", NULL, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_cluster_node_join(t3, st, "node3", NULL, &err), CUSTODY_OK, "%s", err.msg);
	kcv_of(t2, kcv2);
	kcv_of(t3, kcv3);
	cr_assert_str_eq(kcv2, kcv1, "the same KEK on node2");
	cr_assert_str_eq(kcv3, kcv1, "the same KEK on node3");
	node_get(st, "node2", &rec);
	cr_assert_str_eq(rec.state, "joined");
	cr_assert_null(rec.kek_wrap, "the wrapped KEK is deleted from the store after join");
	cr_assert_gt(rec.joined_at, 0);
	custody_node_record_clear(&rec);
	cr_assert_eq(custody_token_transport_public(t2, "node2", &spki, &spki_len, &err),
		     CUSTODY_ENOTFOUND, "the transport key is destroyed after join");
	cr_assert_eq(custody_cluster_node_join(t2, st, "node2", NULL, &err), CUSTODY_OK,
		     "joining again changes nothing: %s", err.msg);
	cr_assert_eq(custody_audit_verify_store(st, &n, NULL, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(n, 7, "kek-create, 2 enroll, 2 admit, 2 join: got %zu", n);
	custody_store_close(st);
	custody_token_close(t3);
	custody_token_close(t2);
	custody_token_close(t1);
}

Test(cluster, global_needs_a_replicable_key_once_there_are_two_nodes)
{
	custody_token *t1 = softhsm_fixture_open(&f1);
	custody_token *t2 = softhsm_fixture_open(&f2);
	custody_store *st = store_open();
	struct key k, plain;
	custody_err err = {0};

	key_make(&k, "rsa:2048", "issuer.example");
	key_make(&plain, "rsa:2048", "plain.example");
	cr_assert_eq(custody_cluster_check_global(st, "global", plain.rec.thumbprint, 0, &err),
		     CUSTODY_OK, "no cluster: anything goes");
	cr_assert_eq(custody_cluster_kek_create(t1, st, "node1", NULL, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_cluster_check_global(st, "global", plain.rec.thumbprint, 0, &err),
		     CUSTODY_OK, "one node: anything goes");
	cr_assert_eq(enroll(t2, st, "node2", &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_cluster_node_admit(t1, st, "node1", "node2", confirmed_fp(st, "node2"), f1.so_pin,
						strlen(f1.so_pin), f1.user_pin,
						strlen(f1.user_pin), &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_cluster_node_join(t2, st, "node2", NULL, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_cluster_check_global(st, "global", plain.rec.thumbprint, 0, &err),
		     CUSTODY_EFAIL);
	cr_assert(has(err.msg, "at global: the cluster has 2 nodes and its key is not "
		      "replicable"), "%s", err.msg);
	cr_assert_eq(custody_cluster_check_global(st, "node1", plain.rec.thumbprint, 0, &err),
		     CUSTODY_OK, "a node's own identity is fine");
	cr_assert_eq(custody_cluster_check_global(st, "GLOBAL", plain.rec.thumbprint, 1, &err),
		     CUSTODY_OK, "the caller packages it");
	key_publish(t1, st, &k, NULL);
	cr_assert_eq(custody_cluster_check_global(st, "global", k.rec.thumbprint, 0, &err),
		     CUSTODY_OK, "%s", err.msg);
	key_free(&k);
	key_free(&plain);
	custody_store_close(st);
	custody_token_close(t2);
	custody_token_close(t1);
}

/* ---------------------------------------------------------- replication */

/* Replaces the wrapped key of thumbprint's package in the store, as a
 * member holding the KEK would (tok tags it): what sync refuses here is
 * the package itself, not a row changed outside custody. */
static void
package_set(custody_token *tok, custody_store *st, const char *thumbprint,
	    const unsigned char *w, size_t len)
{
	custody_package_record pkg;
	custody_err err = {0};

	cr_assert_eq(custody_integrity_attach(st, tok, &err), CUSTODY_OK, "%s", err.msg);

	cr_assert_eq(custody_store_get_package(st, thumbprint, &pkg, &err), CUSTODY_OK,
		     "%s", err.msg);
	free(pkg.wrapped);
	pkg.wrapped = malloc(len);
	cr_assert_not_null(pkg.wrapped);
	memcpy(pkg.wrapped, w, len);
	pkg.wrapped_len = len;
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK);
	cr_assert_eq(custody_store_put_package(st, &pkg, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK);
	custody_package_record_clear(&pkg);
	custody_integrity_detach(st);
}

BOTH(sync_replicates_rsa_and_ec_and_refuses_bad_packages)
{
	custody_token *t1 = softhsm_fixture_open(&f1);
	custody_token *t2 = softhsm_fixture_open(&f2);
	custody_token *t3 = softhsm_fixture_open(&f3);
	custody_token *tr = softhsm_fixture_open(&fr);
	custody_store *st = store_open();
	custody_sync_result res;
	custody_key_attrs at;
	custody_package_record good;
	custody_report_record *reps = NULL;
	custody_node_status *ns = NULL;
	struct key rsa, ec, bad[4];
	static const char *const names[4] = {"tampered", "truncated", "otherkek", "mismatch"};
	custody_err err = {0};
	unsigned char *w = NULL, *rogue = NULL;
	size_t w_len = 0, rogue_len = 0, i, j, n = 0;
	char kcv[7];
	int all_ok = 1;

	ceremony(t1, t2, t3, st);
	key_make(&rsa, "rsa:2048", "issuer.example");
	key_make(&ec, "ec:p256", "ec.example");
	key_publish(t1, st, &rsa, "OAuthTokenIssuer");
	key_publish(t1, st, &ec, "Default");

	/* node2: both unwrapped, sensitive, not extractable, signing. */
	cr_assert_eq(custody_cluster_sync(t2, st, "node2", (int64_t)time(NULL), &res, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(res.n, 2);
	cr_assert_eq(res.refused, 0, "%s", res.items[0].problem);
	cr_assert(item(&res, rsa.rec.thumbprint)->unwrapped && item(&res, rsa.rec.thumbprint)->held);
	cr_assert(item(&res, ec.rec.thumbprint)->unwrapped && item(&res, ec.rec.thumbprint)->held);
	cr_assert_str_eq(item(&res, rsa.rec.thumbprint)->type, "OAuthTokenIssuer");
	cr_assert_str_eq(item(&res, rsa.rec.thumbprint)->slot, "current");
	custody_sync_result_clear(&res);
	for (i = 0; i < 2; i++) {
		struct key *k = i == 0 ? &rsa : &ec;

		cr_assert_eq(custody_token_key_attrs(t2, k->rec.key_id, &at, &err), CUSTODY_OK);
		cr_assert_eq(at.sensitive, 1);
		cr_assert_eq(at.extractable, 0, "an unwrapped key is never extractable");
		cr_assert_eq(at.private_, 1);
		signs_for(t2, k);
	}
	cr_assert_eq(custody_cluster_sync(t2, st, "node2", (int64_t)time(NULL), &res, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert(!item(&res, rsa.rec.thumbprint)->unwrapped && item(&res, rsa.rec.thumbprint)->held,
		  "a second sync finds it held");
	custody_sync_result_clear(&res);

	/* Status: node2 is in line, node1 and node3 have not reported. */
	cr_assert_eq(custody_cluster_status(st, (int64_t)time(NULL), &ns, &n, &all_ok, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(n, 3);
	cr_assert_eq(all_ok, 0);
	cr_assert_str_eq(ns[1].node, "node2");
	cr_assert(!ns[1].stale && !ns[1].differs, "%s", ns[1].detail);
	cr_assert(ns[0].stale && ns[2].stale);
	free(ns);

	/* Four bad packages beside the good ones. */
	for (i = 0; i < 4; i++) {
		char cn[64], type[32];

		snprintf(cn, sizeof(cn), "%s.example", names[i]);
		snprintf(type, sizeof(type), "Bad%s", names[i]);
		key_make(&bad[i], "rsa:2048", cn);
		key_publish(t1, st, &bad[i], type);
	}
	cr_assert_eq(custody_store_get_package(st, bad[0].rec.thumbprint, &good, &err), CUSTODY_OK);
	good.wrapped[good.wrapped_len / 2] ^= 0x01;
	package_set(t1, st, bad[0].rec.thumbprint, good.wrapped, good.wrapped_len);
	package_set(t1, st, bad[1].rec.thumbprint, good.wrapped, 24);
	custody_package_record_clear(&good);
	/* The same key, wrapped under the KEK of another cluster. */
	{
		custody_token_import_result ir;
		char rkcv[7];

		cr_assert_eq(custody_token_kek_create(tr, rkcv, &err), CUSTODY_OK, "%s", err.msg);
		cr_assert_eq(custody_token_import(tr, bad[2].key, bad[2].cert, NULL, NULL, 1, &ir,
						  &err), CUSTODY_OK, "%s", err.msg);
		cr_assert_eq(custody_token_wrap_private_key(tr, bad[2].rec.key_id, &rogue,
							    &rogue_len, &err), CUSTODY_OK, "%s",
			     err.msg);
		package_set(t1, st, bad[2].rec.thumbprint, rogue, rogue_len);
	}
	/* Another key's package under the certificate of this one. */
	cr_assert_eq(custody_store_get_package(st, rsa.rec.thumbprint, &good, &err), CUSTODY_OK);
	package_set(t1, st, bad[3].rec.thumbprint, good.wrapped, good.wrapped_len);
	custody_package_record_clear(&good);

	cr_assert_eq(custody_cluster_sync(t3, st, "node3", (int64_t)time(NULL), &res, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(res.n, 6);
	cr_assert_eq(res.refused, 4, "the four bad packages are refused");
	cr_assert(item(&res, rsa.rec.thumbprint)->held, "%s", item(&res, rsa.rec.thumbprint)->problem);
	cr_assert(item(&res, ec.rec.thumbprint)->held, "the rest carries on");
	for (i = 0; i < 4; i++) {
		const custody_sync_item *it = item(&res, bad[i].rec.thumbprint);

		cr_assert(!it->held && !it->unwrapped);
		cr_assert(has(it->problem, "package refused, nothing unwrapped"), "%s: %s",
			  names[i], it->problem);
		cr_assert_eq(holds_key(t3, bad[i].rec.key_id), 0, "%s left a key", names[i]);
	}
	cr_assert(has(item(&res, bad[3].rec.thumbprint)->problem, "does not match certificate"),
		  "%s", item(&res, bad[3].rec.thumbprint)->problem);
	custody_sync_result_clear(&res);
	cr_assert_eq(custody_store_list_reports(st, "node3", &reps, &n, &err), CUSTODY_OK);
	cr_assert_eq(n, 6);
	for (i = 0, j = 0; i < n; i++)
		j += reps[i].held;
	cr_assert_eq(j, 2, "node3 reports the two keys it holds, and the four it does not");
	free(reps);

	/* Seal: refused until node1 reports too, then not extractable. */
	cr_assert_eq(custody_cluster_seal(t1, st, "node1", rsa.rec.thumbprint, 0, &err),
		     CUSTODY_EFAIL);
	cr_assert(has(err.msg, "node(s) node1 do not report holding its key"), "%s", err.msg);
	cr_assert_eq(custody_token_key_attrs(t1, rsa.rec.key_id, &at, &err), CUSTODY_OK);
	cr_assert_eq(at.extractable, 1, "the refused seal changed nothing");
	cr_assert_eq(custody_cluster_sync(t1, st, "node1", (int64_t)time(NULL), &res, &err),
		     CUSTODY_OK, "%s", err.msg);
	custody_sync_result_clear(&res);
	cr_assert_eq(custody_cluster_seal(t1, st, "node1", rsa.rec.thumbprint, 0, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_token_key_attrs(t1, rsa.rec.key_id, &at, &err), CUSTODY_OK);
	cr_assert_eq(at.extractable, 0, "sealed");
	cr_assert_eq(custody_token_wrap_private_key(t1, rsa.rec.key_id, &w, &w_len, &err),
		     CUSTODY_EFAIL);
	cr_assert(has(err.msg, "CKR_KEY_UNEXTRACTABLE"), "%s", err.msg);
	kcv_of(t1, kcv);
	cr_assert_eq(custody_audit_verify_store(st, NULL, NULL, &err), CUSTODY_OK, "%s", err.msg);

	for (i = 0; i < 4; i++)
		key_free(&bad[i]);
	key_free(&rsa);
	key_free(&ec);
	free(rogue);
	custody_store_close(st);
	custody_token_close(tr);
	custody_token_close(t3);
	custody_token_close(t2);
	custody_token_close(t1);
}

Test(cluster, a_node_without_the_kek_refuses_every_key)
{
	custody_token *t1 = softhsm_fixture_open(&f1);
	custody_token *t3 = softhsm_fixture_open(&f3);
	custody_store *st = store_open();
	custody_sync_result res;
	struct key k;
	custody_err err = {0};

	cr_assert_eq(custody_cluster_kek_create(t1, st, "node1", NULL, &err), CUSTODY_OK, "%s", err.msg);
	key_make(&k, "ec:p256", "ec.example");
	key_publish(t1, st, &k, "OAuthTokenIssuer");
	cr_assert_eq(enroll(t3, st, "node3", &err), CUSTODY_OK, "%s", err.msg);
	/* It cannot check what the store says (the integrity tags need the
	 * KEK): the sync refuses as a whole, and unwraps nothing. */
	cr_assert_neq(custody_cluster_sync(t3, st, "node3", (int64_t)time(NULL), &res, &err),
		      CUSTODY_OK);
	cr_assert(has(err.msg, "token node3 holds no KEK"), "%s", err.msg);
	cr_assert_eq(holds_key(t3, k.rec.key_id), 0);
	key_free(&k);
	custody_store_close(st);
	custody_token_close(t3);
	custody_token_close(t1);
}

Test(cluster, export_and_unwrap_a_package_by_hand)
{
	custody_token *t1 = softhsm_fixture_open(&f1);
	custody_token *t2 = softhsm_fixture_open(&f2);
	custody_store *st = store_open();
	custody_package pkg, back;
	custody_key_attrs at;
	struct key k;
	custody_err err = {0};
	char *text = NULL;
	size_t len = 0;

	ceremony(t1, t2, NULL, st);
	key_make(&k, "rsa:2048", "moved.example");
	key_publish(t1, st, &k, NULL);
	cr_assert_eq(custody_cluster_export(t1, st, "node1", k.rec.thumbprint, &pkg, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_str_eq(pkg.key_id, k.rec.key_id);
	cr_assert_eq(custody_package_format(&pkg, &text, &len, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert(!has(text, "PRIVATE KEY"));
	cr_assert_eq(custody_package_parse((unsigned char *)text, len, &back, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(back.wrapped_len, pkg.wrapped_len);
	cr_assert_eq(memcmp(back.wrapped, pkg.wrapped, pkg.wrapped_len), 0);
	cr_assert_eq(custody_cluster_unwrap_package(t2, &back, NULL, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(custody_token_key_attrs(t2, k.rec.key_id, &at, &err), CUSTODY_OK);
	cr_assert_eq(at.extractable, 0);
	signs_for(t2, &k);
	cr_assert_eq(custody_cluster_unwrap_package(t2, &back, NULL, &err), CUSTODY_EFAIL);
	cr_assert(has(err.msg, "already on token node2"), "%s", err.msg);
	/* Labelled with another KEK's check value: refused before any unwrap. */
	snprintf(back.kcv, sizeof(back.kcv), "%s", strcmp(back.kcv, "000000") ? "000000" : "111111");
	cr_assert_eq(custody_cluster_unwrap_package(t1, &back, NULL, &err), CUSTODY_EFAIL);
	cr_assert(has(err.msg, "it was wrapped under another KEK (key check value"), "%s", err.msg);
	free(text);
	custody_package_clear(&pkg);
	custody_package_clear(&back);
	key_free(&k);
	custody_store_close(st);
	custody_token_close(t2);
	custody_token_close(t1);
}

/* ---------------------------------------------------------- the package file */

TestSuite(package);

/* A well-formed package text for a fresh certificate; the caller frees. */
static char *
sample(custody_package *pkg, X509 **cert_out)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *cert = testcert_self_signed(key, "pkg.example", NULL, -60, 30);
	custody_cert_record rec;
	custody_err err = {0};
	unsigned char *der = NULL;
	char *text = NULL;
	size_t len = 0;
	int der_len;

	cr_assert_eq(custody_cert_record_from_x509(cert, &rec, &err), CUSTODY_OK);
	memset(pkg, 0, sizeof(*pkg));
	snprintf(pkg->thumbprint, sizeof(pkg->thumbprint), "%s", rec.thumbprint);
	snprintf(pkg->key_id, sizeof(pkg->key_id), "%s", rec.key_id);
	snprintf(pkg->kcv, sizeof(pkg->kcv), "A1B2C3");
	pkg->wrapped_len = 80;
	pkg->wrapped = malloc(80);
	cr_assert_not_null(pkg->wrapped);
	cr_assert_eq(RAND_bytes(pkg->wrapped, 80), 1);
	der_len = i2d_X509(cert, &der);
	cr_assert_gt(der_len, 0);
	pkg->cert_der = malloc((size_t)der_len);
	memcpy(pkg->cert_der, der, (size_t)der_len);
	pkg->cert_der_len = (size_t)der_len;
	OPENSSL_free(der);
	cr_assert_eq(custody_package_format(pkg, &text, &len, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(strlen(text), len);
	custody_cert_record_clear(&rec);
	EVP_PKEY_free(key);
	if (cert_out != NULL)
		*cert_out = cert;
	else
		X509_free(cert);
	return text;
}

/* Replaces the first `from` in text by `to` (must be there). */
static char *
edit(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	size_t len = strlen(text) - strlen(from) + strlen(to) + 1;
	char *out = malloc(len);

	cr_assert_not_null(at, "no '%s' in the sample", from);
	cr_assert_not_null(out);
	snprintf(out, len, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
	return out;
}

static void
refused(const char *text, size_t len, const char *why)
{
	custody_package pkg;
	custody_err err = {0};

	cr_assert_eq(custody_package_parse((const unsigned char *)text, len, &pkg, &err),
		     CUSTODY_EFAIL, "accepted: %.200s", text);
	cr_assert(has(err.msg, "bad key package"), "%s", err.msg);
	cr_assert(has(err.msg, why), "want '%s' in: %s", why, err.msg);
	cr_assert_null(pkg.wrapped, "a refused package leaves nothing allocated");
}

Test(package, round_trip)
{
	custody_package pkg, back;
	custody_err err = {0};
	char *text = sample(&pkg, NULL);

	cr_assert_eq(custody_package_parse((unsigned char *)text, strlen(text), &back, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_str_eq(back.thumbprint, pkg.thumbprint);
	cr_assert_str_eq(back.key_id, pkg.key_id);
	cr_assert_str_eq(back.kcv, "A1B2C3");
	cr_assert_eq(back.wrapped_len, 80);
	cr_assert_eq(memcmp(back.wrapped, pkg.wrapped, 80), 0);
	cr_assert_eq(back.cert_der_len, pkg.cert_der_len);
	cr_assert(has(text, "\"format\": \"custody-key-package\""), "%s", text);
	custody_package_clear(&back);
	custody_package_clear(&pkg);
	free(text);
}

Test(package, strict_about_every_field)
{
	custody_package pkg;
	char *text = sample(&pkg, NULL), *bad, kid[48], lower[48];
	size_t i;

	/* Truncated anywhere: never accepted. */
	for (i = 0; i < strlen(text) - 2; i += 7)
		refused(text, i, "");
	refused(text, 0, "it is empty");
	bad = edit(text, "\"version\": 1", "\"version\": 2");
	refused(bad, strlen(bad), "\"version\" is not 1");
	free(bad);
	bad = edit(text, "\"version\": 1", "\"version\": 1, \"extra\": 0");
	refused(bad, strlen(bad), "it has 9 members");
	free(bad);
	bad = edit(text, "\"version\": 1", "\"version\": 1, \"version\": 1");
	refused(bad, strlen(bad), "not JSON");
	free(bad);
	bad = edit(text, "\"format\": \"custody-key-package\"", "\"formats\": \"custody-key-package\"");
	refused(bad, strlen(bad), "member \"format\" is missing");
	free(bad);
	bad = edit(text, "CKM_AES_KEY_WRAP_PAD", "CKM_AES_KEY_WRAP");
	refused(bad, strlen(bad), "\"wrapping\"");
	free(bad);
	bad = edit(text, "\"A1B2C3\"", "\"a1b2c3\"");
	refused(bad, strlen(bad), "\"kcv\" is not 6 upper-case hex digits");
	free(bad);
	for (i = 0; pkg.thumbprint[i] != '\0'; i++)
		lower[i] = (char)(pkg.thumbprint[i] >= 'A' ? pkg.thumbprint[i] + 32 : pkg.thumbprint[i]);
	lower[i] = '\0';
	bad = edit(text, pkg.thumbprint, lower);
	refused(bad, strlen(bad), "\"thumbprint\" is not 40 upper-case hex digits");
	free(bad);
	bad = edit(text, pkg.thumbprint, "0000000000000000000000000000000000000000");
	refused(bad, strlen(bad), "is not that of its certificate");
	free(bad);
	snprintf(kid, sizeof(kid), "%s", pkg.key_id);
	kid[0] = kid[0] == 'a' ? 'b' : 'a';
	bad = edit(text, pkg.key_id, kid);
	refused(bad, strlen(bad), "its key id");
	free(bad);
	bad = edit(text, "\"wrapped_key\": \"", "\"wrapped_key\": \"\\n");
	refused(bad, strlen(bad), "\"wrapped_key\" is not canonical base64");
	free(bad);
	bad = edit(text, "\"wrapped_key\": \"", "\"wrapped_key\": \"AAAA");
	refused(bad, strlen(bad), "not a multiple of 8");
	free(bad);
	bad = edit(text, "\"certificate\": \"", "\"certificate\": \"AAAA");
	refused(bad, strlen(bad), "not one DER X.509 certificate");
	free(bad);
	bad = edit(text, "\"A1B2C3\"", "\"A1B2C3\\u0000\"");
	refused(bad, strlen(bad), "not JSON");
	free(bad);
	bad = edit(text, "}", "} []");
	refused(bad, strlen(bad), "not JSON");
	free(bad);
	refused("[1, 2]", 6, "not a JSON object");
	custody_package_clear(&pkg);
	free(text);
}

Test(package, base64_must_be_canonical)
{
	custody_package pkg;
	char *text = sample(&pkg, NULL), *bad;
	const char *w = strstr(text, "\"wrapped_key\": \"") + 16;
	char b64[128], alt[128];
	size_t n = strcspn(w, "\"");

	/* 80 bytes: 108 characters ending in "=": its last digit carries two
	 * unused bits, which must be zero. */
	cr_assert_eq(n, 108);
	memcpy(b64, w, n);
	b64[n] = '\0';
	cr_assert_eq(b64[107], '=');
	snprintf(alt, sizeof(alt), "%s", b64);
	alt[106] = alt[106] == 'A' ? 'B' : (char)(alt[106] ^ 0x01);
	bad = edit(text, b64, alt);
	refused(bad, strlen(bad), "canonical base64");
	free(bad);
	snprintf(alt, sizeof(alt), "%.104s=AAA", b64);
	bad = edit(text, b64, alt);
	refused(bad, strlen(bad), "canonical base64");
	free(bad);
	snprintf(alt, sizeof(alt), "%.104s-_AA", b64);
	bad = edit(text, b64, alt);
	refused(bad, strlen(bad), "canonical base64");
	free(bad);
	custody_package_clear(&pkg);
	free(text);
}
