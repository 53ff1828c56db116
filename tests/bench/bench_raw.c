/*
 * bench_raw.c — the two in-process baselines of `make bench`.
 *
 *   bench_raw --mode openssl --kind rsa2048|ec_p256 [--threads N] [--seconds S]
 *	OpenSSL signing with a key made in memory, the software ceiling:
 *	SHA-256, then EVP_PKEY_sign on a context set up once per thread.
 *
 *   bench_raw --mode raw --kind K --module SO --token LABEL
 *	     --pin-file FILE --id HEX [--threads N] [--seconds S]
 *	A plain C_SignInit/C_Sign loop, the baseline: one logged-in session
 *	per thread, the key found once; SHA-256 in software, then
 *	CKM_RSA_PKCS over the DigestInfo or CKM_ECDSA over the digest, as
 *	custody and libp11 sign.  The last signature is verified with the
 *	token's certificate of the same key id.
 *
 *   bench_raw --mode socket --kind K --module SO --token LABEL
 *	     --pin-file FILE --id HEX [--threads N] [--seconds S]
 *	The same loop in another process, asked over a Unix socket: the
 *	floor of any agent on this machine.  A child process logs in and
 *	serves each client thread on its own socket with a thread of its
 *	own (blocking reads, no event loop: the fewest system calls a
 *	request can take); a client sends what the token signs (the
 *	DigestInfo, or the digest) and waits for the signature.  The child
 *	verifies the last signature of its first thread, as raw does.
 *
 * Prints "RATE COUNT SECONDS" on stdout (bench.h); details on stderr.
 * The PIN is read from FILE, never from argv.
 */
#include "config.h"

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "bench.h"

#define WARMUP 20
#define MAX_ID 64

struct opts {
	const char *mode;
	const char *module;
	const char *token;
	const char *pin_file;
	const char *id;
	enum bench_kind kind;
	int have_kind;
	long threads;
	double seconds;
};

struct worker {
	enum bench_kind kind;
	EVP_PKEY_CTX *pctx;		/* openssl */
	struct bench_p11 *p11;		/* raw     */
	CK_SESSION_HANDLE session;
	CK_OBJECT_HANDLE key;
	unsigned char sig[BENCH_MAX_SIG];
	size_t sig_len;
	int fd;				/* socket: this thread's socket */
};

static int
sign_openssl(void *ctx)
{
	struct worker *w = ctx;
	unsigned char md[32];
	unsigned int md_len = 0;

	w->sig_len = sizeof(w->sig);
	if (EVP_Digest(bench_message, sizeof(bench_message), md, &md_len, EVP_sha256(), NULL) != 1 ||
	    EVP_PKEY_sign(w->pctx, w->sig, &w->sig_len, md, md_len) != 1)
		return bench_fail("cannot sign in memory: EVP_PKEY_sign failed");
	return 0;
}

static int
sign_raw(void *ctx)
{
	struct worker *w = ctx;

	return bench_p11_sign(w->p11, w->session, w->key, w->kind, bench_message,
			      sizeof(bench_message), w->sig, &w->sig_len);
}

static int
run_openssl(const struct opts *o, struct worker *w, void **ctx)
{
	EVP_PKEY *key = NULL;
	EVP_MD_CTX *md = NULL;
	unsigned long count = 0;
	double elapsed = 0;
	long i;
	int r = -1;

	key = o->kind == BENCH_RSA2048 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
				       : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (key == NULL) {
		bench_fail("cannot make a %s key in memory", bench_kind_name(o->kind));
		goto out;
	}
	for (i = 0; i < o->threads; i++) {
		w[i].kind = o->kind;
		if ((w[i].pctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL)) == NULL ||
		    EVP_PKEY_sign_init(w[i].pctx) != 1 ||
		    (o->kind == BENCH_RSA2048 &&
		     EVP_PKEY_CTX_set_rsa_padding(w[i].pctx, RSA_PKCS1_PADDING) != 1) ||
		    EVP_PKEY_CTX_set_signature_md(w[i].pctx, EVP_sha256()) != 1) {
			bench_fail("cannot set up signing in memory");
			goto out;
		}
		ctx[i] = &w[i];
	}
	if (bench_run(sign_openssl, ctx, (int)o->threads, WARMUP, o->seconds,
		      &count, &elapsed) != 0)
		goto out;
	/* The loop made real signatures: the last one verifies. */
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestVerify(md, w[0].sig, w[0].sig_len, bench_message, sizeof(bench_message)) != 1) {
		bench_fail("the in-memory %s signature does not verify", bench_kind_name(o->kind));
		goto out;
	}
	bench_report("openssl_memory", o->kind, (int)o->threads, count, elapsed);
	r = 0;
out:
	for (i = 0; i < o->threads; i++)
		EVP_PKEY_CTX_free(w[i].pctx);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	return r;
}

/* The last signature of thread 1 against the certificate with the key's id. */
static int
verify_raw(struct bench_p11 *p, const struct worker *w, const unsigned char *id,
	   size_t id_len)
{
	CK_OBJECT_HANDLE cert;
	unsigned char *der = NULL, sig[BENCH_MAX_SIG];
	size_t der_len = 0, sig_len = w->sig_len;
	int r = -1;

	if (bench_p11_find(p, w->session, CKO_CERTIFICATE, id, id_len, &cert) != 0 ||
	    bench_p11_value(p, w->session, cert, &der, &der_len) != 0)
		goto out;
	if (w->kind == BENCH_EC_P256) {
		if (bench_ecdsa_der(w->sig, w->sig_len, sig, sizeof(sig), &sig_len) != 0)
			goto out;
	} else {
		memcpy(sig, w->sig, w->sig_len);
	}
	if (bench_verify(w->kind, der, der_len, bench_message, sizeof(bench_message), sig, sig_len) != 0)
		goto out;
	r = 0;
out:
	free(der);
	return r;
}

/* Opens the token, a session per thread, logs in and finds the key of
 * --id: every worker ready to sign.  id: the decoded --id. */
static int
open_workers(const struct opts *o, struct bench_p11 *p, struct worker *w,
	     unsigned char id[MAX_ID], size_t *id_len)
{
	CK_OBJECT_HANDLE key;
	long i;

	if (bench_hex_decode(o->id, id, MAX_ID, id_len) != 0 ||
	    bench_p11_open(p, o->module, o->token) != 0)
		return -1;
	for (i = 0; i < o->threads; i++) {
		w[i].kind = o->kind;
		w[i].p11 = p;
		if (bench_p11_session(p, &w[i].session) != 0)
			return -1;
	}
	/* Login is per application: one login serves every session. */
	if (bench_p11_login(p, w[0].session, o->pin_file) != 0 ||
	    bench_p11_find(p, w[0].session, CKO_PRIVATE_KEY, id, *id_len, &key) != 0)
		return -1;
	for (i = 0; i < o->threads; i++)
		w[i].key = key;
	return 0;
}

static int
run_raw(const struct opts *o, struct worker *w, void **ctx)
{
	struct bench_p11 p;
	unsigned char id[MAX_ID];
	size_t id_len = 0;
	unsigned long count = 0;
	double elapsed = 0;
	long i;
	int r = -1;

	memset(&p, 0, sizeof(p));
	if (o->module == NULL || o->token == NULL || o->pin_file == NULL || o->id == NULL) {
		bench_fail("--mode raw needs --module, --token, --pin-file and --id");
		goto out;
	}
	if (open_workers(o, &p, w, id, &id_len) != 0)
		goto out;
	for (i = 0; i < o->threads; i++)
		ctx[i] = &w[i];
	if (bench_run(sign_raw, ctx, (int)o->threads, WARMUP, o->seconds,
		      &count, &elapsed) != 0 ||
	    verify_raw(&p, &w[0], id, id_len) != 0)
		goto out;
	bench_report("raw", o->kind, (int)o->threads, count, elapsed);
	r = 0;
out:
	bench_p11_close(&p);
	return r;
}

/* ------------------------------------------------------------ socket */

/* Reads exactly n bytes: 0, or -1 at the end or an error. */
static int
read_exactly(int fd, unsigned char *p, size_t n)
{
	ssize_t r;

	while (n > 0) {
		if ((r = recv(fd, p, n, 0)) <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* A client: what the token signs, one length byte before it; the answer
 * is two length bytes (big-endian) and the signature. */
static int
sign_socket(void *ctx)
{
	struct worker *w = ctx;
	unsigned char req[1 + 64], len[2];
	size_t in_len;

	if (bench_sign_input(w->kind, bench_message, sizeof(bench_message), req + 1,
			     sizeof(req) - 1, &in_len) != 0)
		return -1;
	req[0] = (unsigned char)in_len;
	if (send(w->fd, req, 1 + in_len, MSG_NOSIGNAL) != (ssize_t)(1 + in_len) ||
	    read_exactly(w->fd, len, 2) != 0 || (size_t)(len[0] << 8 | len[1]) > sizeof(w->sig) ||
	    read_exactly(w->fd, w->sig, (size_t)(len[0] << 8 | len[1])) != 0)
		return bench_fail("the signing process stopped answering");
	w->sig_len = (size_t)(len[0] << 8 | len[1]);
	return 0;
}

/* A thread of the signing process: one client's requests until it
 * closes its socket. */
static void *
serve_socket(void *arg)
{
	struct worker *w = arg;
	CK_MECHANISM mech = {w->kind == BENCH_RSA2048 ? CKM_RSA_PKCS : CKM_ECDSA, NULL, 0};
	unsigned char in[64], out[2 + BENCH_MAX_SIG], len;
	CK_ULONG n;

	while (read_exactly(w->fd, &len, 1) == 0 && len <= sizeof(in) &&
	       read_exactly(w->fd, in, len) == 0) {
		n = BENCH_MAX_SIG;
		if (w->p11->f->C_SignInit(w->session, &mech, w->key) != CKR_OK ||
		    w->p11->f->C_Sign(w->session, in, len, out + 2, &n) != CKR_OK) {
			bench_fail("the signing process cannot sign");
			break;
		}
		out[0] = (unsigned char)(n >> 8);
		out[1] = (unsigned char)n;
		memcpy(w->sig, out + 2, n);
		w->sig_len = n;
		if (send(w->fd, out, 2 + n, MSG_NOSIGNAL) != (ssize_t)(2 + n))
			break;
	}
	close(w->fd);
	return NULL;
}

/* The signing process: logs in, serves every socket, verifies. */
static int
signing_process(const struct opts *o, struct worker *w)
{
	struct bench_p11 p;
	pthread_t t[BENCH_MAX_THREADS];
	unsigned char id[MAX_ID];
	size_t id_len = 0;
	long i, started = 0;
	int r = -1;

	memset(&p, 0, sizeof(p));
	if (open_workers(o, &p, w, id, &id_len) != 0)
		goto out;
	for (i = 0; i < o->threads; i++, started++) {
		if (pthread_create(&t[i], NULL, serve_socket, &w[i]) != 0) {
			bench_fail("cannot start a serving thread");
			goto out;
		}
	}
	r = 0;
out:
	for (i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	if (r == 0 && verify_raw(&p, &w[0], id, id_len) != 0)
		r = -1;
	bench_p11_close(&p);
	return r;
}

static int
run_socket(const struct opts *o, struct worker *w, void **ctx)
{
	int pair[2], theirs[BENCH_MAX_THREADS], status;
	unsigned long count = 0;
	double elapsed = 0;
	pid_t child;
	long i;
	int r;

	if (o->module == NULL || o->token == NULL || o->pin_file == NULL || o->id == NULL)
		return bench_fail("--mode socket needs --module, --token, --pin-file and --id");
	for (i = 0; i < o->threads; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
			return bench_fail("cannot make a socket pair");
		w[i].kind = o->kind;
		w[i].fd = pair[0];
		ctx[i] = &w[i];
		theirs[i] = pair[1];
	}
	/* The child uses the token, this process only its sockets. */
	if ((child = fork()) < 0)
		return bench_fail("cannot fork the signing process");
	if (child == 0) {
		for (i = 0; i < o->threads; i++) {
			close(w[i].fd);
			w[i].fd = theirs[i];
		}
		_exit(signing_process(o, w) == 0 ? 0 : 1);
	}
	for (i = 0; i < o->threads; i++)
		close(theirs[i]);
	r = bench_run(sign_socket, ctx, (int)o->threads, WARMUP, o->seconds, &count, &elapsed);
	for (i = 0; i < o->threads; i++)
		close(w[i].fd);	/* the child's threads end, it verifies */
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		return bench_fail("the signing process failed");
	if (r != 0)
		return -1;
	bench_report("raw_over_socket", o->kind, (int)o->threads, count, elapsed);
	return 0;
}

static int
parse(int argc, char **argv, struct opts *o)
{
	static const struct option options[] = {
		{"mode", required_argument, NULL, 'm'},
		{"kind", required_argument, NULL, 'k'},
		{"module", required_argument, NULL, 'M'},
		{"token", required_argument, NULL, 'T'},
		{"pin-file", required_argument, NULL, 'P'},
		{"id", required_argument, NULL, 'i'},
		{"threads", required_argument, NULL, 'n'},
		{"seconds", required_argument, NULL, 's'},
		{NULL, 0, NULL, 0},
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->threads = 1;
	o->seconds = 2.0;
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case 'm': o->mode = optarg; break;
		case 'k':
			if (bench_kind_parse(optarg, &o->kind) != 0)
				return -1;
			o->have_kind = 1;
			break;
		case 'M': o->module = optarg; break;
		case 'T': o->token = optarg; break;
		case 'P': o->pin_file = optarg; break;
		case 'i': o->id = optarg; break;
		case 'n':
			if (bench_parse_count(optarg, BENCH_MAX_THREADS, &o->threads) != 0)
				return -1;
			break;
		case 's':
			if (bench_parse_seconds(optarg, &o->seconds) != 0)
				return -1;
			break;
		default:
			return -1;
		}
	}
	if (optind != argc || o->mode == NULL || !o->have_kind)
		return bench_fail("usage: bench_raw --mode openssl|raw|socket --kind rsa2048|ec_p256 "
				  "[--module SO --token LABEL --pin-file FILE --id HEX] "
				  "[--threads N] [--seconds S]");
	if (strcmp(o->mode, "openssl") != 0 && strcmp(o->mode, "raw") != 0 &&
	    strcmp(o->mode, "socket") != 0)
		return bench_fail("unknown mode %s: expected openssl, raw or socket", o->mode);
	return 0;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct worker w[BENCH_MAX_THREADS];
	void *ctx[BENCH_MAX_THREADS];
	int r;

	bench_progname = "bench_raw";
	memset(w, 0, sizeof(w));
	if (parse(argc, argv, &o) != 0)
		return 2;
	if (strcmp(o.mode, "openssl") == 0)
		r = run_openssl(&o, w, ctx);
	else if (strcmp(o.mode, "socket") == 0)
		r = run_socket(&o, w, ctx);
	else
		r = run_raw(&o, w, ctx);
	return r == 0 ? 0 : 1;
}
