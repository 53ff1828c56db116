/*
 * provider_sign.c — signs with a key of the OpenSSL provider "custody" as
 * a server does: load once, then sign, from threads or from children
 * forked after the load.  For tests/token/cli_provider.sh.
 *
 *   provider_sign URI DATA OUT-PREFIX [fork N | threads N | pause 1]
 *
 * Loads URI's private key through OSSL_STORE (providers "default" and
 * "custody", from OPENSSL_MODULES), signs DATA with EVP_DigestSign
 * (SHA-256) in this process into OUT-PREFIX.parent, then:
 *   fork N     forks N children, each signing into OUT-PREFIX.child<i>
 *              (the key object crosses fork: the provider must log in
 *              again in the child);
 *   threads N  N threads sign at once, 20 times each, into
 *              OUT-PREFIX.thread<i> (the last signature of each);
 *   pause 1    prints "loaded", waits for a line on standard input, then
 *              signs again into OUT-PREFIX.after (a long-lived key object
 *              across a change made meanwhile).
 * Exit 0 when every signature was made; the caller verifies them.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/store.h>

static EVP_PKEY *key;
static unsigned char data[65536];
static size_t data_len;
static const char *prefix;

static EVP_PKEY *
load_key(const char *uri)
{
	OSSL_STORE_CTX *st = OSSL_STORE_open(uri, NULL, NULL, NULL, NULL);
	OSSL_STORE_INFO *info;
	EVP_PKEY *pkey = NULL;

	if (st == NULL || !OSSL_STORE_expect(st, OSSL_STORE_INFO_PKEY))
		goto out;
	while (pkey == NULL && !OSSL_STORE_eof(st)) {
		if ((info = OSSL_STORE_load(st)) == NULL)
			break;
		if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
			pkey = OSSL_STORE_INFO_get1_PKEY(info);
		OSSL_STORE_INFO_free(info);
	}
out:
	OSSL_STORE_close(st);
	return pkey;
}

/* Signs data into PREFIX.SUFFIX; 0 on success. */
static int
sign_to(const char *suffix)
{
	unsigned char sig[1024];
	size_t sig_len = sizeof(sig);
	char path[4096];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	FILE *f;
	int r = 1;

	if (md == NULL ||
	    EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key,
				  NULL) != 1 ||
	    EVP_DigestSign(md, sig, &sig_len, data, data_len) != 1)
		goto out;
	snprintf(path, sizeof(path), "%s.%s", prefix, suffix);
	if ((f = fopen(path, "wb")) == NULL)
		goto out;
	r = fwrite(sig, 1, sig_len, f) != sig_len;
	r |= fclose(f) != 0;
out:
	if (r != 0)
		ERR_print_errors_fp(stderr);
	EVP_MD_CTX_free(md);
	return r;
}

static void *
thread_main(void *arg)
{
	char suffix[32];
	int i, failed = 0;

	snprintf(suffix, sizeof(suffix), "thread%d", (int)(size_t)arg);
	for (i = 0; i < 20; i++)
		failed |= sign_to(suffix);
	return failed ? (void *)1 : NULL;
}

static int
run_threads(int n)
{
	pthread_t t[64];
	void *ret;
	int i, failed = 0;

	for (i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, thread_main, (void *)(size_t)i) != 0)
			return 1;
	for (i = 0; i < n; i++) {
		pthread_join(t[i], &ret);
		failed |= ret != NULL;
	}
	return failed;
}

/* Forks all the children first: they sign at once. */
static int
run_children(int n)
{
	char suffix[32];
	pid_t pids[64];
	int i, status, failed = 0;

	fflush(NULL);	/* nothing buffered is written twice */
	for (i = 0; i < n; i++) {
		if ((pids[i] = fork()) < 0)
			return 1;
		if (pids[i] == 0) {
			snprintf(suffix, sizeof(suffix), "child%d", i);
			/* exit, not _exit: a worker ends so, and the exit
			 * handlers close the child's sessions (openCryptoki
			 * counts them machine-wide). */
			exit(sign_to(suffix));
		}
	}
	for (i = 0; i < n; i++) {
		if (waitpid(pids[i], &status, 0) != pids[i] ||
		    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed = 1;
	}
	return failed;
}

static int
pause_then_sign(void)
{
	char line[64];

	printf("loaded\n");
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 1;
	return sign_to("after");
}

int
main(int argc, char **argv)
{
	FILE *f;
	int n = 0, r;

	if (argc != 4 && argc != 6) {
		fprintf(stderr, "usage: provider_sign URI DATA OUT-PREFIX "
			"[fork N | threads N | pause 1]\n");
		return 2;
	}
	prefix = argv[3];
	if ((f = fopen(argv[2], "rb")) == NULL)
		return 2;
	data_len = fread(data, 1, sizeof(data), f);
	if (!feof(f) || ferror(f)) {
		fprintf(stderr, "provider_sign: %s: more than %zu bytes\n",
			argv[2], sizeof(data));
		fclose(f);
		return 2;
	}
	fclose(f);
	if (argc == 6 && ((n = atoi(argv[5])) < 1 || n > 64))
		return 2;
	if (OSSL_PROVIDER_load(NULL, "default") == NULL ||
	    OSSL_PROVIDER_load(NULL, "custody") == NULL ||
	    (key = load_key(argv[1])) == NULL) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	if ((r = sign_to("parent")) != 0)
		return r;
	if (argc == 6 && strcmp(argv[4], "fork") == 0)
		r = run_children(n);
	else if (argc == 6 && strcmp(argv[4], "threads") == 0)
		r = run_threads(n);
	else if (argc == 6 && strcmp(argv[4], "pause") == 0)
		r = pause_then_sign();
	else if (argc == 6)
		r = 2;
	EVP_PKEY_free(key);
	return r;
}
