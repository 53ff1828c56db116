/*
 * fast_sign.c — `custody sign` through the agent, in the launcher: the C
 * library, nettle (SHA-2), inih and the agent's client only, so that a
 * process per signature starts in about the time of an empty program
 * (libcrypto alone costs ~1.5 ms to load, the full command ~4 ms more).
 *
 * It takes a command line only when it is sure the full command would do
 * the same with it: the command is sign, every option is one it knows,
 * given once, with a value the full command accepts, and an agent is
 * configured.  Anything else (another command, --at, -o, -v, --node, a
 * usage error, a configuration it cannot read) is the full command's,
 * which then prints its own usage error.  What it prints and its exit
 * status are the full command's: sigout.c, escape.c and error.c are the
 * same code.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <ini.h>
#include <nettle/sha2.h>

#include <custody/agent_client.h>
#include <custody/config.h>
#include <custody/policy.h>

#include "escape.h"
#include "launch.h"
#include "sigout.h"

/* The options the fast path knows; a second occurrence of any is doubt. */
struct fast_opts {
	const char *config, *agent;
	const char *type, *identity, *in, *out, *digest;
	int quiet;
};

/* One option: its names and where its value goes (NULL: a flag). */
struct fast_opt {
	char short_name;	/* 0: long only */
	const char *long_name;
	size_t at;		/* offset of the const char * in fast_opts */
	int global;		/* also before the command name */
};

#define AT(m) offsetof(struct fast_opts, m)
#define FLAG ((size_t)-1)

static const struct fast_opt fast_options[] = {
	{'c', "config", AT(config), 1},
	{0, "agent", AT(agent), 1},
	{'q', "quiet", FLAG, 1},
	{'t', "type", AT(type), 0},
	{'i', "identity", AT(identity), 0},
	{0, "in", AT(in), 0},
	{0, "out", AT(out), 0},
	{0, "digest", AT(digest), 0},
};

#define N_FAST_OPTIONS (sizeof(fast_options) / sizeof(fast_options[0]))

/* Stores an option's value; 0 when it was given before (doubt). */
static int
take(struct fast_opts *o, const struct fast_opt *d, const char *value)
{
	const char **slot;

	if (d->at == FLAG) {
		o->quiet = 1;
		return 1;
	}
	slot = (const char **)(void *)((char *)o + d->at);
	if (*slot != NULL)
		return 0;
	*slot = value;
	return 1;
}

/*
 * One argument at argv[*i] as an option the fast path knows (the
 * command's own only when after_command): 1 taken (*i past its value),
 * 0 not one it is sure of.
 */
static int
parse_option(struct fast_opts *o, int argc, char **argv, int *i,
	     int after_command)
{
	const char *a = argv[*i], *eq, *value;
	const struct fast_opt *d = NULL;
	size_t k, len;

	if (a[0] != '-' || a[1] == '\0' || strcmp(a, "--") == 0)
		return 0;
	for (k = 0; k < N_FAST_OPTIONS && d == NULL; k++) {
		if (!fast_options[k].global && !after_command)
			continue;
		if (a[1] != '-' && a[1] == fast_options[k].short_name)
			d = &fast_options[k];
		if (a[1] == '-') {
			eq = strchr(a + 2, '=');
			len = eq != NULL ? (size_t)(eq - a - 2) : strlen(a + 2);
			if (strlen(fast_options[k].long_name) == len &&
			    strncmp(a + 2, fast_options[k].long_name, len) == 0)
				d = &fast_options[k];
		}
	}
	if (d == NULL)
		return 0;
	if (d->at == FLAG)	/* -q alone, not -qt...; no --quiet=x */
		return strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0 ?
		    take(o, d, NULL) : 0;
	if (a[1] != '-' && a[2] != '\0')
		value = a + 2;			/* -tTYPE */
	else if (a[1] == '-' && strchr(a, '=') != NULL)
		value = strchr(a, '=') + 1;	/* --type=TYPE */
	else if (*i + 1 < argc)
		value = argv[++*i];		/* -t TYPE, --type TYPE */
	else
		return 0;
	return take(o, d, value);
}

/* The command line, when it is `custody [G...] sign [S or G...]` with
 * options the fast path knows only. */
static int
parse_command_line(int argc, char **argv, struct fast_opts *o)
{
	int i = 1, seen_sign = 0;

	memset(o, 0, sizeof(*o));
	for (; i < argc; i++) {
		if (!seen_sign && strcmp(argv[i], "sign") == 0) {
			seen_sign = 1;
			continue;
		}
		if (!parse_option(o, argc, argv, &i, seen_sign))
			return 0;
	}
	return seen_sign;
}

/* ---------------------------------------------------------------- agent */

/* sun_path's 108 bytes, the NUL included (as config.c checks). */
#define AGENT_SOCKET_PATH_MAX 107

struct agent_key {
	char *socket;
	int count;
};

static int
agent_key(void *user, const char *section, const char *name,
	  const char *value)
{
	struct agent_key *k = user;

	if (strcmp(section, "agent") != 0 || strcmp(name, "socket") != 0)
		return 1;
	k->count++;
	free(k->socket);
	k->socket = strdup(value);
	return k->socket != NULL;
}

/*
 * The agent's socket as the full command would choose it: --agent, else
 * $CUSTODY_AGENT (unless empty), else [agent] socket of the configuration
 * file.  NULL for none ("none" or nothing) and for any doubt: a file it
 * cannot read or parse, the key given twice, a value the full command
 * refuses (not an absolute path that fits a socket address).  The caller
 * frees it.
 */
static char *
agent_socket(const struct fast_opts *o)
{
	struct agent_key k = {NULL, 0};
	const char *chosen = o->agent, *path;
	FILE *f;

	if (chosen == NULL && (chosen = secure_getenv("CUSTODY_AGENT")) != NULL &&
	    chosen[0] == '\0')
		chosen = NULL;
	if (chosen == NULL) {
		if ((path = custody_config_path(o->config)) == NULL ||
		    (f = fopen(path, "re")) == NULL)
			return NULL;
		if (ini_parse_file(f, agent_key, &k) != 0 || k.count != 1) {
			free(k.socket);
			k.socket = NULL;
		}
		fclose(f);
	} else {
		k.socket = strdup(chosen);
	}
	if (k.socket != NULL &&
	    (k.socket[0] != '/' || strlen(k.socket) > AGENT_SOCKET_PATH_MAX)) {
		free(k.socket);	/* "none", or the full command's error */
		k.socket = NULL;
	}
	return k.socket;
}

/* ---------------------------------------------------------------- digest */

struct hasher {
	enum custody_agent_hash hash;
	union {
		struct sha256_ctx s256;
		struct sha512_ctx s512;	/* SHA-384 too */
	} u;
};

static int
hasher_init(struct hasher *h, const char *name)
{
	if (name == NULL || strcmp(name, "sha256") == 0) {
		h->hash = CUSTODY_AGENT_SHA256;
		sha256_init(&h->u.s256);
	} else if (strcmp(name, "sha384") == 0) {
		h->hash = CUSTODY_AGENT_SHA384;
		sha384_init(&h->u.s512);
	} else if (strcmp(name, "sha512") == 0) {
		h->hash = CUSTODY_AGENT_SHA512;
		sha512_init(&h->u.s512);
	} else {
		return 0;
	}
	return 1;
}

static int
hash_piece(void *ctx, const unsigned char *piece, size_t len,
	   custody_err *err)
{
	struct hasher *h = ctx;

	(void)err;
	if (h->hash == CUSTODY_AGENT_SHA256)
		sha256_update(&h->u.s256, len, piece);
	else
		sha512_update(&h->u.s512, len, piece);
	return CUSTODY_OK;
}

static size_t
hasher_final(struct hasher *h, unsigned char *out)
{
	switch (h->hash) {
	case CUSTODY_AGENT_SHA384:
		sha384_digest(&h->u.s512, SHA384_DIGEST_SIZE, out);
		return SHA384_DIGEST_SIZE;
	case CUSTODY_AGENT_SHA512:
		sha512_digest(&h->u.s512, SHA512_DIGEST_SIZE, out);
		return SHA512_DIGEST_SIZE;
	default:
		sha256_digest(&h->u.s256, SHA256_DIGEST_SIZE, out);
		return SHA256_DIGEST_SIZE;
	}
}

/* ---------------------------------------------------------------- sign */

/* What the full command does first (its checks of the options), passed:
 * the request, ready for the digest. */
static int
prepare(const struct fast_opts *o, struct hasher *h,
	custody_agent_sign_request *req)
{
	if (o->type == NULL || !hasher_init(h, o->digest) ||
	    custody_type_canonical(o->type, req->type, NULL, NULL) !=
	    CUSTODY_OK)
		return 0;
	if (o->identity != NULL &&
	    custody_identity_canonical(o->identity, req->identity, NULL) !=
	    CUSTODY_OK)
		return 0;
	req->which = CUSTODY_AGENT_CURRENT;
	req->scheme = CUSTODY_AGENT_SCHEME_AUTO;
	req->hash = h->hash;
	return 1;
}

/* The certificate of sr's type in slot which: the agent's status. */
static int
ask_cert(custody_agent_conn *conn, const custody_agent_sign_request *sr,
	 enum custody_agent_which which, custody_err *err)
{
	custody_agent_msg req, resp;
	int r;

	memset(&req, 0, sizeof(req));
	req.kind = CUSTODY_AGENT_CERT_REQUEST;
	memcpy(req.u.cert_request.type, sr->type, sizeof(sr->type));
	memcpy(req.u.cert_request.identity, sr->identity, sizeof(sr->identity));
	req.u.cert_request.which = which;
	r = custody_agent_call(conn, &req, &resp, err);
	custody_agent_msg_clear(&resp);
	return r;
}

/*
 * The input could not be read (status r, err set).  The full command
 * asks the agent for the certificate before it reads (a refusal, nothing
 * assigned: said first, a pending one alone accepted); it is asked here
 * only now, so that the usual signature costs one exchange, and what the
 * agent says wins as it would there.
 */
static int
agent_error_first(custody_agent_conn *conn,
		  const custody_agent_sign_request *sr, int r, custody_err *err)
{
	custody_err agent_err;
	int a;

	custody_err_clear(&agent_err);
	a = ask_cert(conn, sr, CUSTODY_AGENT_CURRENT, &agent_err);
	if (a == CUSTODY_ENOTFOUND &&
	    ask_cert(conn, sr, CUSTODY_AGENT_PENDING, NULL) == CUSTODY_OK)
		a = CUSTODY_OK;
	if (a == CUSTODY_OK)
		return r;
	*err = agent_err;
	return a;
}

/* Signs through the agent at socket; the status, err set on failure. */
static int
sign_through(const char *socket, const struct fast_opts *o,
	     struct hasher *h, custody_agent_msg *req, custody_err *err)
{
	custody_agent_conn *conn = NULL;
	custody_agent_msg resp;
	custody_agent_sign_request *sr = &req->u.sign_request;
	int r;

	memset(&resp, 0, sizeof(resp));
	if ((r = sig_refuse_existing(o->out, err)) != CUSTODY_OK ||
	    (r = custody_agent_connect(socket, 0, &conn, err)) != CUSTODY_OK)
		goto out;
	if ((r = sig_read_input(o->in, hash_piece, h, err)) != CUSTODY_OK) {
		r = agent_error_first(conn, sr, r, err);
		goto out;
	}
	sr->digest_len = hasher_final(h, sr->digest);
	if ((r = custody_agent_call(conn, req, &resp, err)) != CUSTODY_OK)
		goto out;
	r = sig_write(o->out, resp.u.sign_response.signature,
		      resp.u.sign_response.signature_len, err);
out:
	custody_agent_close(conn);
	custody_agent_msg_clear(&resp);
	return r;
}

int
fast_sign(int argc, char **argv, int *status)
{
	struct fast_opts o;
	struct hasher h;
	custody_agent_msg req;
	custody_err err;
	struct rlimit no_core = {0, 0};
	char *socket;
	int r;

	memset(&req, 0, sizeof(req));
	req.kind = CUSTODY_AGENT_SIGN_REQUEST;
	if (!parse_command_line(argc, argv, &o) ||
	    !prepare(&o, &h, &req.u.sign_request) ||
	    (socket = agent_socket(&o)) == NULL)
		return 0;
	/* As the full command: what it reads is nobody's to dump. */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	(void)setrlimit(RLIMIT_CORE, &no_core);
	custody_err_clear(&err);
	r = sign_through(socket, &o, &h, &req, &err);
	if (r != CUSTODY_OK) {
		err.code = r;
		out_report_error("sign", &err);
	}
	free(socket);
	explicit_bzero(&h, sizeof(h));
	custody_agent_msg_clear(&req);
	out_release();
	*status = custody_err_exit_status(r);
	return 1;
}
