/*
 * agent_load — clients of `custody agent` over the wire codec directly:
 * each of N threads connects, fetches the type's certificate (a CERT
 * request), then signs random messages' SHA-256 digests for S seconds
 * (or C requests each) and verifies EVERY signature with the
 * certificate's public key (EVP_DigestVerify over the message).
 *
 *   agent_load --socket PATH --type T [--identity I] [--clients N]
 *              [--seconds S | --count C] [--which current|previous|pending]
 *              [--verify no]    (timing the agent alone: no verification)
 *
 * Prints "signatures=K failures=F clients=N seconds=S per_second=R" and
 * the signing thumbprint of the last response.  Exit 0: every signature
 * verified (and at least one made); 1: a signature did not verify, or
 * the exchange failed; 3: the agent answered ERROR (its code and message
 * on stderr).
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <custody/agent_wire.h>

static const char *sock_path, *type_name, *identity = "";
static int n_clients = 1, seconds = 0, count = 0, verify = 1;
static enum custody_agent_which which = CUSTODY_AGENT_CURRENT;
static atomic_long signatures, failures;
static atomic_int refused;
static char last_thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
static pthread_mutex_t print_mx = PTHREAD_MUTEX_INITIALIZER;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
connect_agent(void)
{
	struct sockaddr_un sun;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		fprintf(stderr, "agent_load: cannot connect to %s: %s\n", sock_path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int
read_exact(int fd, unsigned char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = read(fd, p, len)) <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One exchange: 0 ok, 3 an ERROR answer (printed), 1 anything else. */
static int
call(int fd, unsigned char *buf, const custody_agent_msg *req, custody_agent_msg *resp)
{
	custody_err err;
	size_t len = 0, total = 0;

	if (custody_agent_wire_encode(req, buf, CUSTODY_AGENT_FRAME_BUF, &len, &err) != 0) {
		fprintf(stderr, "agent_load: %s\n", err.msg);
		return 1;
	}
	if (send(fd, buf, len, MSG_NOSIGNAL) != (ssize_t)len || read_exact(fd, buf, 4) != 0 ||
	    custody_agent_wire_frame_length(buf, &total, &err) != 0 ||
	    read_exact(fd, buf + 4, total - 4) != 0 ||
	    custody_agent_wire_decode(buf, total, resp, &err) != 0) {
		fprintf(stderr, "agent_load: the exchange failed (%s)\n",
			errno != 0 ? strerror(errno) : "bad frame");
		return 1;
	}
	if (resp->kind == CUSTODY_AGENT_ERROR) {
		pthread_mutex_lock(&print_mx);
		fprintf(stderr, "agent_load: error %d: %s\n", resp->u.error.code,
			resp->u.error.message);
		pthread_mutex_unlock(&print_mx);
		atomic_store(&refused, 1);
		return 3;
	}
	return 0;
}

static EVP_PKEY *
fetch_key(int fd, unsigned char *buf, custody_agent_msg *req, custody_agent_msg *resp)
{
	const unsigned char *p;
	X509 *x;
	EVP_PKEY *pk;

	memset(req, 0, sizeof(*req));
	req->kind = CUSTODY_AGENT_CERT_REQUEST;
	snprintf(req->u.cert_request.type, sizeof(req->u.cert_request.type), "%s", type_name);
	snprintf(req->u.cert_request.identity, sizeof(req->u.cert_request.identity), "%s", identity);
	req->u.cert_request.which = which;
	if (call(fd, buf, req, resp) != 0 || resp->kind != CUSTODY_AGENT_CERT_RESPONSE)
		return NULL;
	p = resp->u.cert_response.certificate;
	x = d2i_X509(NULL, &p, (long)resp->u.cert_response.certificate_len);
	custody_agent_msg_clear(resp);
	if (x == NULL)
		return NULL;
	pk = X509_get_pubkey(x);
	X509_free(x);
	return pk;
}

/* Signs one random message's digest and verifies the signature. */
static int
sign_once(int fd, unsigned char *buf, custody_agent_msg *req, custody_agent_msg *resp,
	  EVP_PKEY *pk)
{
	unsigned char msg[64];
	unsigned int dlen = 0;
	EVP_MD_CTX *md;
	int r, ok;

	memset(req, 0, sizeof(*req));
	req->kind = CUSTODY_AGENT_SIGN_REQUEST;
	snprintf(req->u.sign_request.type, sizeof(req->u.sign_request.type), "%s", type_name);
	snprintf(req->u.sign_request.identity, sizeof(req->u.sign_request.identity), "%s",
		 identity);
	req->u.sign_request.which = which;
	req->u.sign_request.hash = CUSTODY_AGENT_SHA256;
	RAND_bytes(msg, sizeof(msg));
	EVP_Digest(msg, sizeof(msg), req->u.sign_request.digest, &dlen, EVP_sha256(), NULL);
	req->u.sign_request.digest_len = dlen;
	if ((r = call(fd, buf, req, resp)) != 0)
		return r;
	if (resp->kind != CUSTODY_AGENT_SIGN_RESPONSE)
		return 1;
	if (!verify) {
		custody_agent_msg_clear(resp);
		return 0;
	}
	md = EVP_MD_CTX_new();
	ok = md != NULL && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk) == 1 &&
	     EVP_DigestVerify(md, resp->u.sign_response.signature,
			      resp->u.sign_response.signature_len, msg, sizeof(msg)) == 1;
	EVP_MD_CTX_free(md);
	pthread_mutex_lock(&print_mx);
	memcpy(last_thumbprint, resp->u.sign_response.thumbprint, sizeof(last_thumbprint));
	pthread_mutex_unlock(&print_mx);
	custody_agent_msg_clear(resp);
	return ok ? 0 : 1;
}

static void *
client(void *arg)
{
	double end = now_s() + seconds;
	unsigned char *buf = malloc(CUSTODY_AGENT_FRAME_BUF);
	custody_agent_msg *req = calloc(1, sizeof(*req)), *resp = calloc(1, sizeof(*resp));
	EVP_PKEY *pk = NULL;
	int fd = connect_agent(), i, r;

	(void)arg;
	if (fd < 0 || buf == NULL || req == NULL || resp == NULL ||
	    (pk = fetch_key(fd, buf, req, resp)) == NULL) {
		atomic_fetch_add(&failures, 1);
		goto out;
	}
	for (i = 0; count > 0 ? i < count : now_s() < end; i++) {
		if ((r = sign_once(fd, buf, req, resp, pk)) != 0) {
			atomic_fetch_add(&failures, 1);
			if (r == 3 || count > 0)
				break;
			continue;
		}
		atomic_fetch_add(&signatures, 1);
	}
out:
	EVP_PKEY_free(pk);
	if (fd >= 0)
		close(fd);
	free(buf);
	free(req);
	free(resp);
	return NULL;
}

static void
usage(void)
{
	fprintf(stderr, "usage: agent_load --socket PATH --type T [--identity I] [--clients N] "
		"[--seconds S | --count C] [--which current|previous|pending] [--verify no]\n");
	exit(2);
}

static void
parse(int argc, char **argv)
{
	int i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--socket") == 0) sock_path = argv[i + 1];
		else if (strcmp(argv[i], "--type") == 0) type_name = argv[i + 1];
		else if (strcmp(argv[i], "--identity") == 0) identity = argv[i + 1];
		else if (strcmp(argv[i], "--clients") == 0) n_clients = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--seconds") == 0) seconds = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--count") == 0) count = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--verify") == 0) verify = strcmp(argv[i + 1], "no") != 0;
		else if (strcmp(argv[i], "--which") == 0)
			which = strcmp(argv[i + 1], "previous") == 0 ? CUSTODY_AGENT_PREVIOUS :
				strcmp(argv[i + 1], "pending") == 0 ? CUSTODY_AGENT_PENDING :
				CUSTODY_AGENT_CURRENT;
		else usage();
	}
	if (i != argc || sock_path == NULL || type_name == NULL || n_clients < 1 ||
	    n_clients > 1024 || (seconds <= 0 && count <= 0))
		usage();
}

int
main(int argc, char **argv)
{
	pthread_t *threads;
	double start, took;
	int i;

	parse(argc, argv);
	if ((threads = calloc((size_t)n_clients, sizeof(*threads))) == NULL)
		return 1;
	start = now_s();
	for (i = 0; i < n_clients; i++)
		if (pthread_create(&threads[i], NULL, client, NULL) != 0)
			return 1;
	for (i = 0; i < n_clients; i++)
		pthread_join(threads[i], NULL);
	took = now_s() - start;
	printf("signatures=%ld failures=%ld clients=%d seconds=%.2f per_second=%.0f\n",
	       atomic_load(&signatures), atomic_load(&failures), n_clients, took,
	       took > 0 ? (double)atomic_load(&signatures) / took : 0.0);
	if (last_thumbprint[0] != '\0')
		printf("thumbprint=%s\n", last_thumbprint);
	free(threads);
	if (atomic_load(&refused))
		return 3;
	return atomic_load(&failures) == 0 && atomic_load(&signatures) > 0 ? 0 : 1;
}
