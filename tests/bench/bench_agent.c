/*
 * bench_agent.c — signatures through custody's agent, in process, from N
 * clients at once.
 *
 *   bench_agent --kind rsa2048|ec_p256 --type TYPE --cert PEM
 *		 [--threads N] [--seconds S]
 *
 * The agent is the one $CUSTODY_AGENT names (as every custody client
 * finds it).  Each thread is one client: its own connection
 * (custody/agent_client.h), and per signature the SHA-256 of the bench
 * message (in software, as the raw loop does) and one sign request for
 * the current key of TYPE, the scheme left to the key (PKCS#1 v1.5, or a
 * DER ECDSA-Sig-Value).  The last signature is verified with the
 * certificate PEM.  Prints "RATE COUNT SECONDS" on stdout (bench.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include <custody/agent_client.h>

#include "bench.h"

#define WARMUP 20

struct client {
	custody_agent_conn *conn;
	custody_agent_msg req;
	custody_agent_msg resp;
	unsigned char sig[BENCH_MAX_SIG];
	size_t sig_len;
};

static int
sign_agent(void *ctx)
{
	struct client *c = ctx;
	custody_agent_sign_request *sr = &c->req.u.sign_request;
	unsigned int md_len = 0;
	custody_err err;

	if (EVP_Digest(bench_message, sizeof(bench_message), sr->digest,
		       &md_len, EVP_sha256(), NULL) != 1)
		return bench_fail("cannot hash the message");
	sr->digest_len = md_len;
	if (custody_agent_call(c->conn, &c->req, &c->resp, &err) != CUSTODY_OK)
		return bench_fail("%s", err.msg);
	c->sig_len = c->resp.u.sign_response.signature_len;
	if (c->sig_len > sizeof(c->sig)) {
		custody_agent_msg_clear(&c->resp);
		return bench_fail("signature of %zu bytes is too long", c->sig_len);
	}
	memcpy(c->sig, c->resp.u.sign_response.signature, c->sig_len);
	custody_agent_msg_clear(&c->resp);
	return 0;
}

static int
client_open(struct client *c, const char *path, const char *type)
{
	custody_err err;

	memset(c, 0, sizeof(*c));
	c->req.kind = CUSTODY_AGENT_SIGN_REQUEST;
	if (strlen(type) >= sizeof(c->req.u.sign_request.type))
		return bench_fail("type name too long");
	strcpy(c->req.u.sign_request.type, type);
	c->req.u.sign_request.hash = CUSTODY_AGENT_SHA256;
	if (custody_agent_connect(path, 0, &c->conn, &err) != CUSTODY_OK)
		return bench_fail("%s", err.msg);
	return 0;
}

static int
run(const struct bench_signer_opts *o, const char *path)
{
	struct client *c;
	void *ctx[BENCH_MAX_THREADS];
	unsigned long count = 0;
	double elapsed = 0;
	long i, opened = 0;
	int r = -1;

	if ((c = calloc((size_t)o->threads, sizeof(*c))) == NULL)
		return bench_fail("out of memory");
	for (i = 0; i < o->threads; i++, opened++) {
		if (client_open(&c[i], path, o->name) != 0)
			goto out;
		ctx[i] = &c[i];
	}
	if (bench_run(sign_agent, ctx, (int)o->threads, WARMUP, o->seconds,
		      &count, &elapsed) != 0 ||
	    bench_verify_pem(o->kind, o->cert, bench_message,
			     sizeof(bench_message), c[0].sig, c[0].sig_len) != 0)
		goto out;
	bench_report("agent", o->kind, (int)o->threads, count, elapsed);
	r = 0;
out:
	for (i = 0; i < opened; i++)
		custody_agent_close(c[i].conn);
	free(c);
	return r;
}

int
main(int argc, char **argv)
{
	struct bench_signer_opts o;
	const char *path = getenv("CUSTODY_AGENT");

	bench_progname = "bench_agent";
	if (bench_parse_signer_opts(argc, argv, "type", &o) != 0)
		return 2;
	if (path == NULL || path[0] == '\0') {
		bench_fail("CUSTODY_AGENT must name the agent's socket");
		return 2;
	}
	return run(&o, path) == 0 ? 0 : 1;
}
