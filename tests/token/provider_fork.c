/*
 * provider_fork.c — a process that loads a key of the provider "custody"
 * and then forks keeps signing in its children, as Apache httpd's and
 * nginx's workers do (handles that do not survive fork are
 * pkcs11-provider's most reported bug).
 *
 *   provider_fork URI CERT-PEM [CHILDREN]
 *
 * Loads the providers "custody" and "default" (OPENSSL_MODULES names the
 * directory of custody.so), opens URI ("custody:WebServicesInternal")
 * with OSSL_STORE and takes its private key — the standard OpenSSL API
 * only, as any program would.  Then:
 *   - the parent signs a message (EVP_DigestSign, SHA-256) and verifies
 *     the signature with CERT-PEM's public key;
 *   - it forks CHILDREN (default 3) children, which each sign twice with
 *     the key loaded before the fork, verify both signatures, and exit
 *     normally (exit(), so OpenSSL's exit handlers run in them too);
 *   - the parent waits for every child, then signs and verifies again.
 * One line per step on stdout ("child 2: signature 1 verifies").  Exit 0
 * when every signature of every process verified and every child exited
 * 0; 1 otherwise (what failed on stderr, with OpenSSL's errors); 2 for
 * bad usage.  Driven by tests/token/cli_provider_clients.sh.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/store.h>
#include <openssl/x509.h>

#define MAX_CHILDREN 16

static const unsigned char message[] =
	"custody provider_fork: a message signed before and after fork";

static int
fail(const char *who, const char *what)
{
	fprintf(stderr, "provider_fork: %s: %s\n", who, what);
	ERR_print_errors_fp(stderr);
	return -1;
}

/* The first private key the store gives for uri (NULL: none, said why). */
static EVP_PKEY *
load_private_key(const char *uri)
{
	OSSL_STORE_CTX *store;
	OSSL_STORE_INFO *info;
	EVP_PKEY *pkey = NULL;

	store = OSSL_STORE_open_ex(uri, NULL, NULL, NULL, NULL, NULL, NULL,
				   NULL);
	if (store == NULL) {
		fail("parent", "OSSL_STORE_open_ex failed");
		return NULL;
	}
	while (pkey == NULL && !OSSL_STORE_eof(store)) {
		info = OSSL_STORE_load(store);
		if (info == NULL) {
			if (OSSL_STORE_error(store))
				break;
			continue;
		}
		if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
			pkey = OSSL_STORE_INFO_get1_PKEY(info);
		OSSL_STORE_INFO_free(info);
	}
	OSSL_STORE_close(store);
	if (pkey == NULL)
		fail("parent", "the store gave no private key");
	return pkey;
}

static EVP_PKEY *
load_cert_pubkey(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *cert = NULL;
	EVP_PKEY *pub = NULL;

	if (f == NULL) {
		fprintf(stderr, "provider_fork: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (cert == NULL || (pub = X509_get_pubkey(cert)) == NULL)
		fail("parent", "cannot read the certificate's public key");
	X509_free(cert);
	return pub;
}

/* Signs the message with key, then verifies the signature with pub.
 * 0 when it verifies. */
static int
sign_and_verify(const char *who, int n, EVP_PKEY *key, EVP_PKEY *pub)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *sig = NULL;
	size_t len = 0;
	int r = -1;

	if (md == NULL ||
	    EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key,
				  NULL) != 1 ||
	    EVP_DigestSign(md, NULL, &len, message, sizeof(message)) != 1 ||
	    (sig = OPENSSL_malloc(len)) == NULL ||
	    EVP_DigestSign(md, sig, &len, message, sizeof(message)) != 1) {
		fail(who, "EVP_DigestSign failed");
		goto out;
	}
	if (EVP_MD_CTX_reset(md) != 1 ||
	    EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, pub,
				    NULL) != 1 ||
	    EVP_DigestVerify(md, sig, len, message, sizeof(message)) != 1) {
		fail(who, "the signature does not verify with the certificate");
		goto out;
	}
	printf("%s: signature %d verifies (%zu bytes)\n", who, n, len);
	fflush(stdout);
	r = 0;
out:
	OPENSSL_free(sig);
	EVP_MD_CTX_free(md);
	return r;
}

static void
child(int i, EVP_PKEY *key, EVP_PKEY *pub)
{
	char who[32];
	int failed = 0;

	snprintf(who, sizeof(who), "child %d", i);
	failed |= sign_and_verify(who, 1, key, pub) != 0;
	failed |= sign_and_verify(who, 2, key, pub) != 0;
	EVP_PKEY_free(key);
	EVP_PKEY_free(pub);
	exit(failed ? 1 : 0);
}

/* Forks n children and waits for them; the number that failed. */
static int
fork_children(int n, EVP_PKEY *key, EVP_PKEY *pub)
{
	pid_t pids[MAX_CHILDREN];
	int i, status, failed = 0;

	for (i = 0; i < n; i++) {
		fflush(stdout);
		fflush(stderr);
		pids[i] = fork();
		if (pids[i] < 0) {
			fprintf(stderr, "provider_fork: fork: %s\n", strerror(errno));
			failed += n - i;
			break;
		}
		if (pids[i] == 0)
			child(i + 1, key, pub);
	}
	n = i;
	for (i = 0; i < n; i++) {
		if (waitpid(pids[i], &status, 0) < 0) {
			failed++;
		} else if (WIFSIGNALED(status)) {
			fprintf(stderr, "provider_fork: child %d: killed by signal %d\n",
				i + 1, WTERMSIG(status));
			failed++;
		} else if (WEXITSTATUS(status) != 0) {
			fprintf(stderr, "provider_fork: child %d: exit %d\n", i + 1,
				WEXITSTATUS(status));
			failed++;
		} else {
			printf("child %d: exit 0\n", i + 1);
		}
	}
	return failed;
}

int
main(int argc, char **argv)
{
	OSSL_PROVIDER *custody = NULL, *dflt = NULL;
	EVP_PKEY *key = NULL, *pub = NULL;
	int children = 3, r = 1;

	if (argc < 3 || argc > 4 ||
	    (argc == 4 && ((children = atoi(argv[3])) < 1 ||
			   children > MAX_CHILDREN))) {
		fprintf(stderr, "usage: provider_fork URI CERT-PEM [CHILDREN 1-%d]\n",
			MAX_CHILDREN);
		return 2;
	}
	if ((custody = OSSL_PROVIDER_load(NULL, "custody")) == NULL ||
	    (dflt = OSSL_PROVIDER_load(NULL, "default")) == NULL) {
		fail("parent", "cannot load the providers custody and default");
		goto out;
	}
	if ((pub = load_cert_pubkey(argv[2])) == NULL ||
	    (key = load_private_key(argv[1])) == NULL)
		goto out;
	if (sign_and_verify("parent", 1, key, pub) != 0)
		goto out;
	if (fork_children(children, key, pub) != 0)
		goto out;
	if (sign_and_verify("parent", 2, key, pub) != 0)
		goto out;
	r = 0;
out:
	EVP_PKEY_free(key);
	EVP_PKEY_free(pub);
	OSSL_PROVIDER_unload(dflt);
	OSSL_PROVIDER_unload(custody);
	return r;
}
