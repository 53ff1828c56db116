/* test_agent_signer.c — the library signer with an agent configured,
 * against a fake agent (threads on a Unix socket that answer with the
 * codec and sign with a software key): what the wire carries (scheme,
 * hash, the digest of the data, the pinned thumbprint), what a signature's
 * info says without asking again, the agent's error codes kept, --at
 * refused before anything is sent, and at most options.sessions
 * connections however many threads sign. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <custody/agent_wire.h>
#include <custody/cert.h>
#include <custody/config.h>
#include <custody/keyref.h>
#include <custody/signer.h>

#include "unit/testcerts.h"

struct fake {
	char dir[64], path[128];
	int lfd;
	pthread_t thread;
	/* [0]: RSA-2048 (every type), [1]: EC P-256 (type EcType) */
	EVP_PKEY *keys[2];
	unsigned char *ders[2];
	size_t der_lens[2];
	char thumbprints[2][CUSTODY_THUMBPRINT_HEX + 1];
	pthread_mutex_t mx;
	int cert_requests, sign_requests, conns_now, conns_max;
	custody_agent_sign_request last;
};

static struct fake F;
/* The RSA key's, which most tests use. */
#define KEY F.keys[0]
#define DER F.ders[0]
#define DER_LEN F.der_lens[0]
#define THUMBPRINT F.thumbprints[0]

static int
key_of_type(const char *type)
{
	return strcmp(type, "EcType") == 0;
}

static int
read_exact(int fd, unsigned char *p, size_t n)
{
	ssize_t r;

	while (n > 0) {
		if ((r = read(fd, p, n)) < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void
send_msg(int fd, const custody_agent_msg *m)
{
	static __thread unsigned char buf[CUSTODY_AGENT_FRAME_BUF];
	size_t len = 0, off = 0;
	ssize_t w;

	if (custody_agent_wire_encode(m, buf, sizeof(buf), &len, NULL) != CUSTODY_OK)
		return;
	while (off < len && (w = send(fd, buf + off, len - off, MSG_NOSIGNAL)) > 0)
		off += (size_t)w;
}

static void
error_msg(custody_agent_msg *m, int code, const char *text)
{
	memset(m, 0, sizeof(*m));
	m->kind = CUSTODY_AGENT_ERROR;
	m->u.error.code = code;
	snprintf(m->u.error.message, sizeof(m->u.error.message), "%s", text);
}

static void
answer_cert(const custody_agent_cert_request *q, custody_agent_msg *m)
{
	pthread_mutex_lock(&F.mx);
	F.cert_requests++;
	pthread_mutex_unlock(&F.mx);
	if (strcmp(q->type, "Gone") == 0) {
		error_msg(m, CUSTODY_ENOTFOUND, "no certificate is assigned for type Gone");
		return;
	}
	if (strcmp(q->type, "Refused") == 0) {
		error_msg(m, CUSTODY_EFAIL, "user tester may not use type Refused");
		return;
	}
	memset(m, 0, sizeof(*m));
	m->kind = CUSTODY_AGENT_CERT_RESPONSE;
	memcpy(m->u.cert_response.certificate, F.ders[key_of_type(q->type)],
	       F.der_lens[key_of_type(q->type)]);
	m->u.cert_response.certificate_len = F.der_lens[key_of_type(q->type)];
	memcpy(m->u.cert_response.thumbprint, F.thumbprints[key_of_type(q->type)],
	       sizeof(F.thumbprints[0]));
}

/* An ECDSA DER signature as r || s of 32 bytes each; its length or 0. */
static size_t
der_to_raw(unsigned char *sig, size_t len)
{
	const unsigned char *p = sig;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
	size_t n = 0;

	if (es != NULL && BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32) == 32 &&
	    BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32) == 32)
		n = 64;
	ECDSA_SIG_free(es);
	return n;
}

static void
answer_sign(const custody_agent_sign_request *q, custody_agent_msg *m)
{
	int k = key_of_type(q->type);
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(F.keys[k], NULL);
	const EVP_MD *md = q->hash == CUSTODY_AGENT_SHA384 ? EVP_sha384() :
			   q->hash == CUSTODY_AGENT_SHA512 ? EVP_sha512() : EVP_sha256();
	int pss = q->scheme == CUSTODY_AGENT_RSA_PSS;
	size_t len = CUSTODY_AGENT_SIGNATURE_MAX;
	unsigned char sig[CUSTODY_AGENT_SIGNATURE_MAX];

	pthread_mutex_lock(&F.mx);
	F.sign_requests++;
	F.last = *q;
	pthread_mutex_unlock(&F.mx);
	if (k == 1) {
		if (pc == NULL || EVP_PKEY_sign_init(pc) != 1 ||
		    EVP_PKEY_sign(pc, sig, &len, q->digest, q->digest_len) != 1 ||
		    (q->scheme == CUSTODY_AGENT_ECDSA_RAW && (len = der_to_raw(sig, len)) == 0)) {
			error_msg(m, CUSTODY_EFAIL, "the fake agent cannot sign");
			EVP_PKEY_CTX_free(pc);
			return;
		}
		EVP_PKEY_CTX_free(pc);
		memset(m, 0, sizeof(*m));
		m->kind = CUSTODY_AGENT_SIGN_RESPONSE;
		snprintf(m->u.sign_response.identity, sizeof(m->u.sign_response.identity), "global");
		m->u.sign_response.scheme = q->scheme == CUSTODY_AGENT_ECDSA_RAW ?
					    CUSTODY_AGENT_ECDSA_RAW : CUSTODY_AGENT_ECDSA;
		memcpy(m->u.sign_response.signature, sig, len);
		m->u.sign_response.signature_len = len;
		memcpy(m->u.sign_response.thumbprint, F.thumbprints[1], sizeof(F.thumbprints[1]));
		return;
	}
	if (pc == NULL || EVP_PKEY_sign_init(pc) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pc, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) != 1 ||
	    (pss && EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) != 1) ||
	    EVP_PKEY_CTX_set_signature_md(pc, md) != 1 ||
	    EVP_PKEY_sign(pc, sig, &len, q->digest, q->digest_len) != 1) {
		error_msg(m, CUSTODY_EFAIL, "the fake agent cannot sign");
		EVP_PKEY_CTX_free(pc);
		return;
	}
	EVP_PKEY_CTX_free(pc);
	memset(m, 0, sizeof(*m));
	m->kind = CUSTODY_AGENT_SIGN_RESPONSE;
	snprintf(m->u.sign_response.identity, sizeof(m->u.sign_response.identity), "global");
	m->u.sign_response.scheme = pss ? CUSTODY_AGENT_RSA_PSS : CUSTODY_AGENT_RSA_PKCS1;
	memcpy(m->u.sign_response.signature, sig, len);
	m->u.sign_response.signature_len = len;
	memcpy(m->u.sign_response.thumbprint, THUMBPRINT, sizeof(THUMBPRINT));
	usleep(1000);	/* long enough for the threads to overlap */
}

static void *
serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	static __thread unsigned char buf[CUSTODY_AGENT_FRAME_BUF];
	static __thread custody_agent_msg req, resp;
	size_t total;

	pthread_mutex_lock(&F.mx);
	if (++F.conns_now > F.conns_max)
		F.conns_max = F.conns_now;
	pthread_mutex_unlock(&F.mx);
	while (read_exact(fd, buf, 4) == 0 &&
	       custody_agent_wire_frame_length(buf, &total, NULL) == CUSTODY_OK &&
	       read_exact(fd, buf + 4, total - 4) == 0 &&
	       custody_agent_wire_decode(buf, total, &req, NULL) == CUSTODY_OK) {
		if (req.kind == CUSTODY_AGENT_CERT_REQUEST)
			answer_cert(&req.u.cert_request, &resp);
		else if (req.kind == CUSTODY_AGENT_SIGN_REQUEST)
			answer_sign(&req.u.sign_request, &resp);
		else
			error_msg(&resp, CUSTODY_EFAIL, "unexpected request");
		send_msg(fd, &resp);
		custody_agent_msg_clear(&req);
	}
	pthread_mutex_lock(&F.mx);
	F.conns_now--;
	pthread_mutex_unlock(&F.mx);
	close(fd);
	return NULL;
}

static void *
accept_loop(void *arg)
{
	pthread_t t;
	int fd;

	(void)arg;
	while ((fd = accept(F.lfd, NULL, NULL)) >= 0) {
		if (pthread_create(&t, NULL, serve_conn, (void *)(intptr_t)fd) == 0)
			pthread_detach(t);
		else
			close(fd);
	}
	return NULL;
}

static void
fake_start(void)
{
	struct sockaddr_un sa;
	custody_cert_record rec;
	X509 *x;
	unsigned char *p;
	int k;

	memset(&F, 0, sizeof(F));
	pthread_mutex_init(&F.mx, NULL);
	for (k = 0; k < 2; k++) {
		F.keys[k] = testcert_key(k == 0 ? "rsa:2048" : "ec:p256");
		x = testcert_self_signed(F.keys[k], "agent.test", NULL, -60, 30);
		F.der_lens[k] = (size_t)i2d_X509(x, NULL);
		F.ders[k] = p = malloc(F.der_lens[k]);
		i2d_X509(x, &p);
		X509_free(x);
		cr_assert_eq(custody_cert_record_from_der(F.ders[k], F.der_lens[k], &rec, NULL),
			     CUSTODY_OK);
		memcpy(F.thumbprints[k], rec.thumbprint, sizeof(F.thumbprints[k]));
		custody_cert_record_clear(&rec);
	}
	snprintf(F.dir, sizeof(F.dir), "/tmp/custody-agent-signer.XXXXXX");
	cr_assert_not_null(mkdtemp(F.dir));
	snprintf(F.path, sizeof(F.path), "%s/agent.sock", F.dir);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, F.path, strlen(F.path) + 1);	/* < 108 bytes */
	cr_assert_geq(F.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), 0);
	cr_assert_eq(bind(F.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(F.lfd, 64), 0);
	cr_assert_eq(pthread_create(&F.thread, NULL, accept_loop, NULL), 0);
}

static void
fake_stop(void)
{
	shutdown(F.lfd, SHUT_RDWR);
	close(F.lfd);
	pthread_join(F.thread, NULL);
	unlink(F.path);
	rmdir(F.dir);
	EVP_PKEY_free(F.keys[0]);
	EVP_PKEY_free(F.keys[1]);
	free(F.ders[0]);
	free(F.ders[1]);
}

TestSuite(agent_signer, .init = fake_start, .fini = fake_stop);

/* A ctx with only the agent configured: no module, PIN source or store. */
static custody_ctx *
agent_ctx(int sessions)
{
	custody_ctx_options opt = {.sessions = sessions};
	custody_config cfg;
	custody_ctx *ctx = NULL;
	custody_err err;

	custody_config_init(&cfg);
	cr_assert_eq(custody_config_set(&cfg, "agent", "socket", F.path, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(custody_config_set(&cfg, "store", "url", "sqlite:/nonexistent/custody.db",
					&err), CUSTODY_OK);
	cr_assert_eq(custody_ctx_new_with(&cfg, "node1", &opt, &ctx, &err), CUSTODY_OK, "%s",
		     err.msg);
	custody_config_clear(&cfg);
	return ctx;
}

static int
verifies(const unsigned char *data, size_t len, const unsigned char *sig, size_t sig_len,
	 int pss)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pc = NULL;
	int ok;

	ok = EVP_DigestVerifyInit(m, &pc, EVP_sha256(), NULL, KEY) == 1 &&
	     (!pss || (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1 &&
		       EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) == 1)) &&
	     EVP_DigestVerify(m, sig, sig_len, data, len) == 1;
	EVP_MD_CTX_free(m);
	return ok;
}

Test(agent_signer, signs_the_data_digest_and_reports_the_certificate)
{
	static const unsigned char data[] = "what the agent signs";
	custody_ctx *ctx = agent_ctx(2);
	custody_signer *sg = NULL;
	custody_signature_info info;
	custody_cert_record rec;
	unsigned char md[32], *sig = NULL;
	size_t sig_len = 0;
	custody_err err;

	cr_assert_eq(custody_signer_open(ctx, "Default", NULL, &sg, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_expect_eq(F.cert_requests, 1, "open asks for the certificate once");
	cr_assert_eq(custody_signer_sign(sg, 0, CUSTODY_SIG_AUTO, NID_sha256, data, sizeof(data), 0,
					 &sig, &sig_len, &info, &err), CUSTODY_OK, "%s", err.msg);
	cr_expect(verifies(data, sizeof(data), sig, sig_len, 0));
	SHA256(data, sizeof(data), md);
	cr_expect_eq(F.last.hash, CUSTODY_AGENT_SHA256);
	cr_expect_eq(F.last.scheme, CUSTODY_AGENT_SCHEME_AUTO, "AUTO is left to the agent");
	cr_expect(F.last.digest_len == 32 && memcmp(F.last.digest, md, 32) == 0,
		  "the digest of the data is what goes to the agent");
	cr_expect_str_eq(F.last.type, "Default");
	cr_expect_str_eq(F.last.thumbprint, "");
	cr_assert_eq(custody_cert_record_from_der(DER, DER_LEN, &rec, NULL), CUSTODY_OK);
	cr_expect_str_eq(info.thumbprint, rec.thumbprint);
	cr_expect_str_eq(info.key_id, rec.key_id);
	cr_expect_str_eq(info.key_algorithm, "RSA-2048");
	cr_expect_str_eq(info.identity, "global");
	cr_expect_eq(info.scheme, CUSTODY_SIG_RSA_PKCS1);
	cr_expect_eq(F.cert_requests, 1, "the info came from the certificate fetched at open");
	cr_expect_eq(custody_ctx_token_is_open(ctx), 0);
	free(sig);

	/* PSS and a pinned certificate go on the wire as such. */
	cr_assert_eq(custody_signer_sign_pinned(sg, rec.thumbprint, CUSTODY_SIG_RSA_PSS, NID_sha256,
						data, sizeof(data), 0, &sig, &sig_len, &info, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_expect_eq(F.last.scheme, CUSTODY_AGENT_RSA_PSS);
	cr_expect_str_eq(F.last.thumbprint, rec.thumbprint);
	cr_expect(verifies(data, sizeof(data), sig, sig_len, 1));
	cr_expect_str_eq(info.identity, "", "a pinned signature names no assignment");
	cr_expect_eq(info.scheme, CUSTODY_SIG_RSA_PSS);
	free(sig);
	custody_cert_record_clear(&rec);

	cr_assert_eq(custody_signer_current(sg, 0, &rec, &err), CUSTODY_OK, "%s", err.msg);
	cr_expect_str_eq(rec.thumbprint, THUMBPRINT);
	cr_expect_eq(rec.der_len, DER_LEN);
	custody_cert_record_clear(&rec);
	custody_signer_close(sg);
	custody_ctx_free(ctx);
}

Test(agent_signer, at_a_given_time_is_a_usage_error_before_any_request)
{
	static const unsigned char data[] = "x";
	custody_ctx *ctx = agent_ctx(1);
	custody_signer *sg = NULL;
	custody_cert_record rec;
	unsigned char *sig = NULL;
	size_t sig_len = 0;
	custody_err err;

	cr_assert_eq(custody_signer_open(ctx, "Default", NULL, &sg, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_expect_eq(custody_signer_sign(sg, 1700000000, CUSTODY_SIG_AUTO, NID_sha256, data, 1, 0,
					 &sig, &sig_len, NULL, &err), CUSTODY_EUSAGE);
	cr_expect_str_eq(err.msg, "the agent signs at the present time; --at needs the token "
		      "(--agent none)");
	cr_expect_null(sig);
	cr_expect_eq(custody_signer_current(sg, 1700000000, &rec, &err), CUSTODY_EUSAGE);
	cr_expect_eq(F.sign_requests, 0);
	cr_expect_eq(F.cert_requests, 1);
	custody_signer_close(sg);
	custody_ctx_free(ctx);
}

Test(agent_signer, the_agents_errors_keep_their_codes)
{
	custody_ctx *ctx = agent_ctx(1);
	custody_signer *sg = NULL;
	custody_err err;

	cr_expect_eq(custody_signer_open(ctx, "Gone", NULL, &sg, &err), CUSTODY_ENOTFOUND);
	cr_expect(strstr(err.msg, "no certificate is assigned for type Gone") != NULL, "%s",
		  err.msg);
	cr_expect_null(sg);
	cr_expect_eq(custody_signer_open(ctx, "Refused", NULL, &sg, &err), CUSTODY_EFAIL);
	cr_expect(strstr(err.msg, "may not use type Refused") != NULL, "%s", err.msg);
	custody_ctx_free(ctx);
}

Test(agent_signer, an_agent_not_there_is_said_at_open)
{
	custody_config cfg;
	custody_ctx *ctx = NULL;
	custody_signer *sg = NULL;
	custody_err err;
	char path[160];

	snprintf(path, sizeof(path), "%s/none.sock", F.dir);
	custody_config_init(&cfg);
	cr_assert_eq(custody_config_set(&cfg, "agent", "socket", path, &err), CUSTODY_OK);
	cr_assert_eq(custody_ctx_new(&cfg, "node1", &ctx, &err), CUSTODY_OK, "%s", err.msg);
	cr_expect_eq(custody_signer_open(ctx, "Default", NULL, &sg, &err), CUSTODY_EFAIL);
	cr_expect(strstr(err.msg, "cannot reach the custody agent at ") != NULL, "%s", err.msg);
	custody_ctx_free(ctx);
	custody_config_clear(&cfg);
}

struct worker {
	custody_signer *sg;
	int failures;
};

static void *
sign_many(void *arg)
{
	struct worker *w = arg;
	unsigned char data[16], *sig = NULL;
	size_t sig_len = 0;
	int i;

	for (i = 0; i < 10; i++) {
		memset(data, i, sizeof(data));
		if (custody_signer_sign(w->sg, 0, CUSTODY_SIG_RSA_PKCS1, NID_sha256, data,
					sizeof(data), 0, &sig, &sig_len, NULL, NULL) != CUSTODY_OK ||
		    !verifies(data, sizeof(data), sig, sig_len, 0))
			w->failures++;
		free(sig);
		sig = NULL;
	}
	return NULL;
}

Test(agent_signer, threads_share_at_most_sessions_connections)
{
	custody_ctx *ctx = agent_ctx(2);
	custody_signer *sg = NULL;
	struct worker w[6];
	pthread_t t[6];
	int i, failures = 0;
	custody_err err;

	cr_assert_eq(custody_signer_open(ctx, "Default", NULL, &sg, &err), CUSTODY_OK, "%s",
		     err.msg);
	for (i = 0; i < 6; i++) {
		w[i].sg = sg;
		w[i].failures = 0;
		cr_assert_eq(pthread_create(&t[i], NULL, sign_many, &w[i]), 0);
	}
	for (i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		failures += w[i].failures;
	}
	cr_expect_eq(failures, 0);
	cr_expect_eq(F.sign_requests, 60);
	cr_expect_leq(F.conns_max, 2, "%d connections at once", F.conns_max);
	cr_expect_eq(F.conns_max, 2, "the threads overlapped");
	custody_signer_close(sg);
	custody_ctx_free(ctx);
}

/* The engine's keys (custody/keyref.h) with an agent: the certificate and
 * signatures from the agent, through OpenSSL's own API. */
static void
keyref_signs(const char *name, int k, const char *md_name)
{
	static const unsigned char data[] = "signed through an engine key";
	custody_keyref *kr = NULL;
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	unsigned char sig[512];
	size_t sig_len = sizeof(sig);
	custody_err err;

	setenv("CUSTODY_CONFIG", "", 1);
	setenv("CUSTODY_AGENT", F.path, 1);
	setenv("CUSTODY_STORE", "sqlite:/nonexistent/custody.db", 1);
	unsetenv("CUSTODY_PIN_SOURCE");
	unsetenv("CUSTODY_MODULE");
	cr_assert_eq(custody_keyref_new(&kr, &err), CUSTODY_OK);
	cr_assert_eq(custody_keyref_load_key(kr, name, &pkey, &cert, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_expect_eq(X509_cmp(cert, cert), 0);
	cr_expect_eq(EVP_PKEY_eq(pkey, F.keys[k]), 1, "the public half is the certificate's");
	cr_expect_eq(custody_keyref_token_is_open(kr), 0);
	cr_assert_eq(EVP_DigestSignInit(m, NULL, EVP_get_digestbyname(md_name), NULL, pkey), 1);
	cr_assert_eq(EVP_DigestSign(m, sig, &sig_len, data, sizeof(data)), 1);
	EVP_MD_CTX_free(m);
	m = EVP_MD_CTX_new();
	cr_expect_eq(EVP_DigestVerifyInit(m, NULL, EVP_get_digestbyname(md_name), NULL,
					  F.keys[k]), 1);
	cr_expect_eq(EVP_DigestVerify(m, sig, sig_len, data, sizeof(data)), 1,
		     "the agent's signature verifies with the certificate's key");
	cr_expect_str_eq(F.last.thumbprint, F.thumbprints[k], "pinned to the certificate");
	EVP_MD_CTX_free(m);
	EVP_PKEY_free(pkey);
	X509_free(cert);
	custody_keyref_free(kr);
	unsetenv("CUSTODY_AGENT");
}

Test(agent_signer, engine_keys_sign_through_the_agent)
{
	keyref_signs("Default", 0, "SHA256");
	cr_expect_eq(F.last.scheme, CUSTODY_AGENT_RSA_PKCS1);
	keyref_signs("Default", 0, "SHA384");
	cr_expect_eq(F.last.hash, CUSTODY_AGENT_SHA384);
	keyref_signs("EcType", 1, "SHA256");
	cr_expect_eq(F.last.scheme, CUSTODY_AGENT_ECDSA_RAW);
}
