/*
 * bench_provider.c — EVP_DigestSign through the OpenSSL 3 provider
 * "custody".
 *
 *   bench_provider --kind rsa2048|ec_p256 --uri custody:TYPE --cert PEM
 *		    [--threads N] [--seconds S]
 *
 * Loads the providers "custody" (found through $OPENSSL_MODULES, which
 * run-bench.sh points at the build's providers/.libs) and "default", then
 * opens the URI with OSSL_STORE and takes its private key, as an OpenSSL
 * program does with `-key custody:TYPE` (the provider reads the token,
 * store and PIN source from custody's own configuration, which
 * run-bench.sh exports as CUSTODY_* variables).  Each signature is
 * EVP_DigestSignInit_ex + EVP_DigestSign (SHA-256) of the bench message,
 * as an application signs; the last one is verified with the certificate
 * PEM.  Prints "RATE COUNT SECONDS" on stdout (bench.h).
 *
 * Exit 77 when the provider cannot be loaded (not built): the driver then
 * reports null, never a number.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/store.h>

#include "bench.h"

/* The first private key the store gives for uri, or NULL (said why). */
static EVP_PKEY *
load_key(const char *uri)
{
	OSSL_STORE_CTX *store;
	OSSL_STORE_INFO *info;
	EVP_PKEY *pkey = NULL;

	store = OSSL_STORE_open_ex(uri, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	if (store == NULL)
		goto out;
	while (pkey == NULL && !OSSL_STORE_eof(store)) {
		if ((info = OSSL_STORE_load(store)) == NULL) {
			if (OSSL_STORE_error(store))
				break;
			continue;
		}
		if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
			pkey = OSSL_STORE_INFO_get1_PKEY(info);
		OSSL_STORE_INFO_free(info);
	}
	OSSL_STORE_close(store);
out:
	if (pkey == NULL) {
		bench_fail("the provider custody cannot load the key %s", uri);
		ERR_print_errors_fp(stderr);
	}
	return pkey;
}

static int
run(const struct bench_signer_opts *o)
{
	OSSL_PROVIDER *custody = NULL, *dflt = NULL;
	EVP_PKEY *pkey = NULL;
	int r = -1;

	if ((custody = OSSL_PROVIDER_load(NULL, "custody")) == NULL) {
		bench_fail("the provider custody is not available (not built?)");
		ERR_print_errors_fp(stderr);
		r = BENCH_SKIP;
		goto out;
	}
	if ((dflt = OSSL_PROVIDER_load(NULL, "default")) == NULL) {
		bench_fail("cannot load OpenSSL's default provider");
		goto out;
	}
	if ((pkey = load_key(o->name)) != NULL)
		r = bench_evp_sign("provider", pkey, BENCH_MD_BY_NAME, o);
out:
	EVP_PKEY_free(pkey);
	OSSL_PROVIDER_unload(dflt);
	OSSL_PROVIDER_unload(custody);
	return r;
}

int
main(int argc, char **argv)
{
	struct bench_signer_opts o;
	int r;

	bench_progname = "bench_provider";
	if (bench_parse_signer_opts(argc, argv, "uri", &o) != 0)
		return 2;
	r = run(&o);
	return r == 0 ? 0 : r == BENCH_SKIP ? BENCH_SKIP : 1;
}
