/*
 * bench_engine.c — EVP_DigestSign through the OpenSSL engine "custody".
 *
 *   bench_engine --kind rsa2048|ec_p256 --key KEY --cert PEM
 *		  [--threads N] [--seconds S]
 *
 * ENGINE_by_id("custody") (found through $OPENSSL_ENGINES, which
 * run-bench.sh points at the build's engines), ENGINE_init, then
 * ENGINE_load_private_key(KEY) — KEY is what the engine accepts as a key
 * name (custody(1), OPENSSL ENGINE: a certificate type resolves to its current key; the
 * engine reads the token, store and PIN source from custody's own
 * configuration, which run-bench.sh exports as CUSTODY_* variables).  Each
 * signature is EVP_DigestSignInit + EVP_DigestSign (SHA-256) of the bench
 * message, as an application signs; the last one is verified with the
 * certificate PEM.  Prints "RATE COUNT SECONDS" on stdout (bench.h).
 *
 * Exit 77 when the engine cannot be loaded (not built yet): the driver
 * then reports null, never a number.
 */
#include "config.h"

/* ENGINE is deprecated in OpenSSL 3; it is the path being measured. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "bench.h"

static int
run(const struct bench_signer_opts *o)
{
	ENGINE *e = NULL;
	EVP_PKEY *pkey = NULL;
	int inited = 0, r = -1;

	if ((e = ENGINE_by_id("custody")) == NULL) {
		bench_fail("the engine custody is not available (not built yet?)");
		ERR_print_errors_fp(stderr);
		r = BENCH_SKIP;
		goto out;
	}
	if (ENGINE_init(e) != 1) {
		bench_fail("cannot initialise the engine custody");
		ERR_print_errors_fp(stderr);
		goto out;
	}
	inited = 1;
	if ((pkey = ENGINE_load_private_key(e, o->name, NULL, NULL)) == NULL) {
		bench_fail("the engine custody cannot load the key %s", o->name);
		ERR_print_errors_fp(stderr);
		goto out;
	}
	r = bench_evp_sign("engine", pkey, BENCH_MD_LEGACY, o);
out:
	EVP_PKEY_free(pkey);
	if (inited)
		ENGINE_finish(e);
	ENGINE_free(e);
	return r;
}

int
main(int argc, char **argv)
{
	struct bench_signer_opts o;
	int r;

	bench_progname = "bench_engine";
	if (bench_parse_signer_opts(argc, argv, "key", &o) != 0)
		return 2;
	r = run(&o);
	return r == 0 ? 0 : r == BENCH_SKIP ? BENCH_SKIP : 1;
}
