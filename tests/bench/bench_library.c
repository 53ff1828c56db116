/*
 * bench_library.c — the custody signer library, in process, 1 or N threads.
 *
 *   bench_library --kind rsa2048|ec_p256 --type TYPE --cert PEM
 *		   [--threads N] [--seconds S]
 *
 * Opens the signer once (token, store and PIN source come from custody's
 * configuration, which run-bench.sh exports as CUSTODY_* variables), then
 * N threads share it and sign the bench message with the current key of
 * TYPE until S seconds have passed; the last signature is verified with
 * the certificate PEM.  Prints "RATE COUNT SECONDS" on stdout (bench.h).
 *
 * The signer: custody_ctx_new + custody_signer_open once, shared by the
 * threads (custody/signer.h: thread-safe, a pool of sessions); each
 * signature is custody_signer_sign with SHA-256, the scheme following the
 * key (PKCS#1 v1.5 bytes or a DER ECDSA-Sig-Value, as `custody sign`).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/obj_mac.h>

#include <custody/config.h>
#include <custody/signer.h>

#include "bench.h"

#define WARMUP 20

struct worker {
	void *signer;		/* shared by every thread */
	const char *type;
	unsigned char sig[BENCH_MAX_SIG];
	size_t sig_len;
};

struct library {
	custody_ctx *ctx;
	custody_signer *signer;
};

/* Opens the signer for o->name from custody's configuration (the
 * CUSTODY_* variables); -1 (after bench_fail) on failure, 0 on success. */
static int
signer_open(const struct bench_signer_opts *o, void **signer)
{
	custody_config cfg;
	custody_ctx_options copts;
	custody_err err;
	struct library *lib;
	int r = -1;

	*signer = NULL;
	custody_config_init(&cfg);
	memset(&copts, 0, sizeof(copts));
	copts.sessions = (int)o->threads;
	if ((lib = calloc(1, sizeof(*lib))) == NULL) {
		bench_fail("out of memory");
		goto out;
	}
	if (custody_config_apply_env(&cfg, &err) != CUSTODY_OK ||
	    custody_ctx_new_with(&cfg, NULL, &copts, &lib->ctx, &err) != CUSTODY_OK ||
	    custody_signer_open(lib->ctx, o->name, NULL, &lib->signer, &err) != CUSTODY_OK) {
		bench_fail("custody signer: %s", err.msg);
		goto out;
	}
	*signer = lib;
	lib = NULL;
	r = 0;
out:
	if (lib != NULL) {
		custody_signer_close(lib->signer);
		custody_ctx_free(lib->ctx);
		free(lib);
	}
	custody_config_clear(&cfg);
	return r;
}

/* One signature of msg with the current key into sig (BENCH_MAX_SIG
 * bytes); 0 or -1 (after bench_fail).  Called from several threads at
 * once with the same signer. */
static int
signer_sign(void *signer, const char *type, const unsigned char *msg,
	    size_t msg_len, unsigned char *sig, size_t *sig_len)
{
	struct library *lib = signer;
	unsigned char *out = NULL;
	size_t n = 0;
	custody_err err;

	(void)type;
	*sig_len = 0;
	if (custody_signer_sign(lib->signer, 0, CUSTODY_SIG_AUTO, NID_sha256, msg, msg_len, 0,
				&out, &n, NULL, &err) != CUSTODY_OK)
		return bench_fail("custody signer: %s", err.msg);
	if (n > BENCH_MAX_SIG) {
		free(out);
		return bench_fail("signature of %zu bytes is too long", n);
	}
	memcpy(sig, out, n);
	*sig_len = n;
	free(out);
	return 0;
}

/* Closes what signer_open opened (NULL accepted). */
static void
signer_close(void *signer)
{
	struct library *lib = signer;

	if (lib == NULL)
		return;
	custody_signer_close(lib->signer);
	custody_ctx_free(lib->ctx);
	free(lib);
}

static int
sign_library(void *ctx)
{
	struct worker *w = ctx;

	return signer_sign(w->signer, w->type, bench_message, sizeof(bench_message),
			   w->sig, &w->sig_len);
}

static int
run(const struct bench_signer_opts *o)
{
	struct worker w[BENCH_MAX_THREADS];
	void *ctx[BENCH_MAX_THREADS];
	void *signer = NULL;
	unsigned long count = 0;
	double elapsed = 0;
	long i;
	int r;

	memset(w, 0, sizeof(w));
	if ((r = signer_open(o, &signer)) != 0)
		goto out;
	r = -1;
	for (i = 0; i < o->threads; i++) {
		w[i].signer = signer;
		w[i].type = o->name;
		ctx[i] = &w[i];
	}
	if (bench_run(sign_library, ctx, (int)o->threads, WARMUP, o->seconds,
		      &count, &elapsed) != 0 ||
	    bench_verify_pem(o->kind, o->cert, bench_message, sizeof(bench_message),
			     w[0].sig, w[0].sig_len) != 0)
		goto out;
	bench_report("library", o->kind, (int)o->threads, count, elapsed);
	r = 0;
out:
	signer_close(signer);
	return r;
}

int
main(int argc, char **argv)
{
	struct bench_signer_opts o;
	int r;

	bench_progname = "bench_library";
	if (bench_parse_signer_opts(argc, argv, "type", &o) != 0)
		return 2;
	r = run(&o);
	return r == 0 ? 0 : r == BENCH_SKIP ? BENCH_SKIP : 1;
}
