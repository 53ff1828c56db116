/*
 * agent/http.c — the agent's read-only metadata server (see
 * custody/agent_http.h), on libmicrohttpd: MHD parses HTTP and polls the
 * connections in its own thread; this file decides what each request
 * gets.  Every answer is built at the request from the signers the agent
 * signs with, under one mutex that a reload takes too.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/sha.h>

#include <custody/agent_http.h>
#include <custody/assign.h>
#include <custody/log.h>
#include <custody/metadata.h>
#include <custody/policy.h>
#include <custody/records.h>

#define LISTEN_MAX 64			/* "[v6 address]:port" */
#define REQUEST_MEMORY (16 * 1024)	/* headers of a request, at most */

/* A type the server publishes: its [metadata] section and its signer. */
struct served {
	char type[CUSTODY_NAME_MAX + 1];
	int has_conf;
	custody_metadata_conf conf;
	custody_signer *signer;		/* opened at the first request */
};

/* What a reload replaces. */
struct settings {
	struct served types[CUSTODY_METADATA_MAX];	/* types[0]: the default */
	int n_types;
	int max_age;
	custody_ctx *ctx;
};

/* What the daemon was started with: a change needs another daemon. */
struct limits {
	char listen[LISTEN_MAX];
	unsigned max_connections, per_ip, timeout;
};

struct custody_agent_http {
	struct MHD_Daemon *daemon;	/* owns the listening socket */
	unsigned port;
	struct limits limits;
	pthread_mutex_t lock;		/* settings and signers */
	struct settings s;
	char last_failure[sizeof(((custody_err *)0)->msg)];	/* logged once, until another */
};

enum document { DOC_NONE, DOC_S2S, DOC_JWKS };

/* ------------------------------------------------------------ settings */

static int
settings_from(const custody_config *cfg, custody_ctx *ctx, struct settings *s,
	      custody_err *err)
{
	char names[CUSTODY_METADATA_MAX][CUSTODY_NAME_MAX + 1];
	const custody_metadata_conf *conf;
	int n, i;

	memset(s, 0, sizeof(*s));
	if ((n = custody_config_http_types(cfg, names, err)) < 0)
		return CUSTODY_EUSAGE;
	for (i = 0; i < n; i++) {
		memcpy(s->types[i].type, names[i], sizeof(names[i]));
		if ((conf = custody_config_metadata(cfg, names[i])) != NULL) {
			s->types[i].conf = *conf;
			s->types[i].has_conf = 1;
		}
	}
	s->n_types = n;
	s->max_age = cfg->http_max_age >= 0 ? cfg->http_max_age : CUSTODY_HTTP_MAX_AGE;
	s->ctx = ctx;
	return CUSTODY_OK;
}

static void
settings_close(struct settings *s)
{
	int i;

	for (i = 0; i < s->n_types; i++) {
		custody_signer_close(s->types[i].signer);
		s->types[i].signer = NULL;
	}
}

/* Signers of `old` that `next` serves too, on the same ctx, move over. */
static void
settings_keep_signers(struct settings *next, struct settings *old)
{
	int i, j;

	if (next->ctx != old->ctx)
		return;
	for (i = 0; i < next->n_types; i++)
		for (j = 0; j < old->n_types; j++)
			if (strcmp(next->types[i].type, old->types[j].type) == 0) {
				next->types[i].signer = old->types[j].signer;
				old->types[j].signer = NULL;
			}
}

/* ------------------------------------------------------------ listening */

/* "ADDRESS:PORT" (the form config checked) into sa. */
static int
parse_listen(const char *text, struct sockaddr_storage *sa, socklen_t *len, int *v6)
{
	char host[LISTEN_MAX];
	const char *colon = strrchr(text, ':');
	struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
	size_t n;
	long port;

	memset(sa, 0, sizeof(*sa));
	if (colon == NULL || (n = (size_t)(colon - text)) >= sizeof(host) || n < 1)
		return -1;
	*v6 = text[0] == '[';
	if (*v6 && (n < 3 || text[n - 1] != ']'))
		return -1;
	memcpy(host, text + *v6, n - 2 * (size_t)*v6);
	host[n - 2 * (size_t)*v6] = '\0';
	port = strtol(colon + 1, NULL, 10);
	if (port < 1 || port > 65535)
		return -1;
	if (*v6) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return inet_pton(AF_INET6, host, &in6->sin6_addr) == 1 ? 0 : -1;
	}
	in4->sin_family = AF_INET;
	in4->sin_port = htons((uint16_t)port);
	*len = sizeof(*in4);
	return inet_pton(AF_INET, host, &in4->sin_addr) == 1 ? 0 : -1;
}

static int
is_loopback(const struct sockaddr_storage *sa)
{
	const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

	if (sa->ss_family == AF_INET)
		return (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
}

static void
limits_from(const custody_config *cfg, struct limits *l)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int v6;

	memset(l, 0, sizeof(*l));
	snprintf(l->listen, sizeof(l->listen), "%s", cfg->http_listen);
	l->max_connections = cfg->http_max_connections > 0 ?
			     (unsigned)cfg->http_max_connections : CUSTODY_HTTP_MAX_CONNECTIONS;
	l->timeout = cfg->http_timeout > 0 ? (unsigned)cfg->http_timeout : CUSTODY_HTTP_TIMEOUT;
	/* Behind a reverse proxy on loopback, every request comes from the
	 * proxy: a limit per address below the total would only bite it. */
	l->per_ip = l->max_connections / 4 > 0 ? l->max_connections / 4 : 1;
	if (parse_listen(l->listen, &sa, &len, &v6) == 0 && is_loopback(&sa))
		l->per_ip = l->max_connections;
}

/* A listening socket on the address, with the reason when there is none. */
static int
open_listener(const char *listen_at, int *fd, unsigned *port, custody_err *err)
{
	struct sockaddr_storage sa, bound;
	socklen_t len, blen = sizeof(bound);
	int v6, one = 1;

	if (parse_listen(listen_at, &sa, &len, &v6) != 0)
		return custody_err_set(err, CUSTODY_EUSAGE, "http-listen '%s': not ADDRESS:PORT",
				       listen_at);
	if ((*fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot listen on %s: %s", listen_at,
				       strerror(errno));
	(void)setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (v6)
		(void)setsockopt(*fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(*fd, (struct sockaddr *)&sa, len) != 0 || listen(*fd, 64) != 0 ||
	    getsockname(*fd, (struct sockaddr *)&bound, &blen) != 0) {
		custody_err_set(err, CUSTODY_EFAIL, "cannot listen on %s: %s", listen_at,
				strerror(errno));
		close(*fd);
		*fd = -1;
		return CUSTODY_EFAIL;
	}
	*port = ntohs(bound.ss_family == AF_INET ?
		      ((struct sockaddr_in *)&bound)->sin_port :
		      ((struct sockaddr_in6 *)&bound)->sin6_port);
	return CUSTODY_OK;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version,
			      const char *upload_data, size_t *upload_data_size,
			      void **req_cls);

/* A daemon of srv on fd (which it takes), with srv's limits. */
static struct MHD_Daemon *
start_daemon(struct custody_agent_http *srv, int fd)
{
	return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC,
				0, NULL, NULL, answer, srv,
				MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
				MHD_OPTION_CONNECTION_LIMIT, srv->limits.max_connections,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, srv->limits.per_ip,
				MHD_OPTION_CONNECTION_TIMEOUT, srv->limits.timeout,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)REQUEST_MEMORY,
				MHD_OPTION_END);
}

/* ------------------------------------------------------------ documents */

/* The certificates a relying party must trust now: current, pending,
 * previous (those assigned).  ENOTFOUND when there is none. */
static int
collect(custody_signer *signer, const char *type, custody_cert_record recs[3], size_t *n,
	custody_err *err)
{
	static const int order[] = {CUSTODY_SLOT_CURRENT, CUSTODY_SLOT_PENDING,
				    CUSTODY_SLOT_PREVIOUS};
	size_t i;
	int r;

	for (i = 0; i < 3; i++) {
		memset(&recs[*n], 0, sizeof(recs[*n]));
		r = custody_signer_slot_cert(signer, 0, order[i], &recs[*n], err);
		if (r == CUSTODY_OK)
			(*n)++;
		else if (r != CUSTODY_ENOTFOUND)
			return r;
	}
	if (*n == 0)
		return custody_err_set(err, CUSTODY_ENOTFOUND, "no certificate is assigned for "
				       "type %s", type);
	return CUSTODY_OK;
}

/* The document for one served type, into *body; the HTTP status. */
static unsigned
build(struct custody_agent_http *srv, struct served *t, enum document doc, char **body,
      custody_err *err)
{
	custody_cert_record recs[3];
	size_t n = 0;
	int r;

	if (t->signer == NULL &&
	    (r = custody_signer_open(srv->s.ctx, t->type, NULL, &t->signer, err)) != CUSTODY_OK)
		return r == CUSTODY_ENOTFOUND ? MHD_HTTP_NOT_FOUND : MHD_HTTP_SERVICE_UNAVAILABLE;
	if ((r = collect(t->signer, t->type, recs, &n, err)) == CUSTODY_OK) {
		if (doc == DOC_JWKS)
			r = custody_metadata_jwks(recs, n, body, err);
		else
			r = custody_metadata_s2s_trust(t->has_conf ? &t->conf : NULL, recs, n,
						       body, err);
	}
	while (n > 0)
		custody_cert_record_clear(&recs[--n]);
	if (r == CUSTODY_OK)
		return MHD_HTTP_OK;
	return r == CUSTODY_ENOTFOUND ? MHD_HTTP_NOT_FOUND : MHD_HTTP_SERVICE_UNAVAILABLE;
}

/* The served type ?type= names (any case), the default without one;
 * NULL when it names none the server publishes. */
static struct served *
served_type(struct settings *s, const char *given)
{
	char type[CUSTODY_NAME_MAX + 1];
	int i;

	if (given == NULL)
		return &s->types[0];
	if (custody_type_canonical(given, type, NULL, NULL) != CUSTODY_OK)
		return NULL;
	for (i = 0; i < s->n_types; i++)
		if (strcmp(s->types[i].type, type) == 0)
			return &s->types[i];
	return NULL;
}

/* A failure worth an operator's look (the store or token unreadable),
 * logged when it differs from the last one. */
static void
note_failure(struct custody_agent_http *srv, const custody_err *err)
{
	if (strcmp(srv->last_failure, err->msg) == 0)
		return;
	snprintf(srv->last_failure, sizeof(srv->last_failure), "%s", err->msg);
	custody_warn("metadata server: %s", err->msg);
}

/* ------------------------------------------------------------ answers */

/* The ETag of a body: a strong tag, the first 128 bits of its SHA-256. */
static void
etag_of(const char *body, char tag[35])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	int i;

	SHA256((const unsigned char *)body, strlen(body), md);
	tag[0] = '"';
	for (i = 0; i < 16; i++)
		snprintf(tag + 1 + 2 * i, 3, "%02x", md[i]);
	tag[33] = '"';
	tag[34] = '\0';
}

/* Whether an If-None-Match list ("a", W/"b", *) holds tag. */
static int
etag_matches(const char *list, const char *tag)
{
	size_t len = strlen(tag), n;
	const char *p = list;

	while (p != NULL && *p != '\0') {
		p += strspn(p, " \t,");
		if (*p == '*')
			return 1;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		n = strcspn(p, " \t,");
		if (n == len && strncmp(p, tag, len) == 0)
			return 1;
		p += n;
	}
	return 0;
}

static enum MHD_Result
send_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* 200 with body (taken) or 304, with the caching headers. */
static enum MHD_Result
send_document(struct MHD_Connection *conn, char *body, int max_age)
{
	struct MHD_Response *resp;
	const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						      MHD_HTTP_HEADER_IF_NONE_MATCH);
	char tag[35], cache[64];
	unsigned status = MHD_HTTP_OK;
	enum MHD_Result ret;
	size_t len = strlen(body);

	etag_of(body, tag);
	if (inm != NULL && etag_matches(inm, tag)) {
		free(body);
		status = MHD_HTTP_NOT_MODIFIED;
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	} else {
		body[len] = '\n';	/* the NUL's place: a text file ends a line */
		resp = MHD_create_response_from_buffer(len + 1, body, MHD_RESPMEM_MUST_FREE);
		if (resp == NULL)
			free(body);
	}
	if (resp == NULL)
		return MHD_NO;
	snprintf(cache, sizeof(cache), "public, max-age=%d", max_age);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, tag);
	if (status == MHD_HTTP_OK) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
		MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	}
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum document
document_at(const char *url)
{
	if (strcmp(url, "/metadata/json/1") == 0)
		return DOC_S2S;
	if (strcmp(url, "/jwks.json") == 0 || strcmp(url, "/.well-known/jwks.json") == 0)
		return DOC_JWKS;
	return DOC_NONE;
}

/* MHD calls this once a request's headers are in (and again per piece of
 * a body, which never comes: the answer is queued at the first call, and
 * MHD closes a connection whose body was not read). */
static enum MHD_Result
answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
       const char *version, const char *upload_data, size_t *upload_data_size,
       void **req_cls)
{
	struct custody_agent_http *srv = cls;
	enum document doc = document_at(url);
	struct served *t;
	custody_err err = {0};
	char *body = NULL;
	unsigned status;
	int max_age;

	(void)version, (void)upload_data, (void)upload_data_size, (void)req_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return send_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET or HEAD only\n");
	if (doc == DOC_NONE)
		return send_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
	pthread_mutex_lock(&srv->lock);
	t = served_type(&srv->s, MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "type"));
	status = t == NULL ? MHD_HTTP_NOT_FOUND : build(srv, t, doc, &body, &err);
	max_age = srv->s.max_age;
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		note_failure(srv, &err);
	else if (status == MHD_HTTP_OK)
		srv->last_failure[0] = '\0';
	pthread_mutex_unlock(&srv->lock);
	if (status == MHD_HTTP_OK)
		return send_document(conn, body, max_age);
	free(body);
	if (status == MHD_HTTP_NOT_FOUND)
		return send_text(conn, status, t == NULL ? "type not published here\n" :
				 "no certificate is assigned for this type\n");
	return send_text(conn, status, "the metadata cannot be read now\n");
}

/* ------------------------------------------------------------ the API */

int
custody_agent_http_start(const custody_config *cfg, custody_ctx *ctx,
			 custody_agent_http **out, custody_err *err)
{
	struct custody_agent_http *srv;
	int r, fd = -1;

	*out = NULL;
	if (cfg->http_listen == NULL)
		return CUSTODY_OK;
	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "metadata server: out of memory");
	pthread_mutex_init(&srv->lock, NULL);
	limits_from(cfg, &srv->limits);
	if ((r = settings_from(cfg, ctx, &srv->s, err)) != CUSTODY_OK ||
	    (r = open_listener(srv->limits.listen, &fd, &srv->port, err)) != CUSTODY_OK)
		goto fail;
	if ((srv->daemon = start_daemon(srv, fd)) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL, "cannot start the metadata server on %s",
				    srv->limits.listen);
		close(fd);
		goto fail;
	}
	*out = srv;
	return CUSTODY_OK;
fail:
	pthread_mutex_destroy(&srv->lock);
	free(srv);
	return r;
}

unsigned
custody_agent_http_port(const custody_agent_http *srv)
{
	return srv != NULL ? srv->port : 0;
}

void
custody_agent_http_stop(custody_agent_http *srv)
{
	if (srv == NULL)
		return;
	MHD_stop_daemon(srv->daemon);	/* joins its thread; closes fd */
	settings_close(&srv->s);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}

/* Another daemon for new limits: on the same address, the listening
 * socket passes from the old daemon to the new (no connection refused
 * meanwhile); on another, the new address is listened on first. */
static int
restart_daemon(struct custody_agent_http *srv, const struct limits *next, custody_err *err)
{
	struct MHD_Daemon *old = srv->daemon;
	struct limits was = srv->limits;
	unsigned port = srv->port;
	int fd, r;

	if (strcmp(next->listen, srv->limits.listen) == 0) {
		if ((fd = MHD_quiesce_daemon(old)) < 0)
			return custody_err_set(err, CUSTODY_EFAIL, "metadata server: cannot "
					       "hand over %s", next->listen);
	} else if ((r = open_listener(next->listen, &fd, &port, err)) != CUSTODY_OK) {
		return r;
	}
	srv->limits = *next;
	if ((srv->daemon = start_daemon(srv, fd)) != NULL) {
		srv->port = port;
		MHD_stop_daemon(old);
		return CUSTODY_OK;
	}
	r = custody_err_set(err, CUSTODY_EFAIL, "cannot start the metadata server on %s",
			    next->listen);
	srv->limits = was;
	if (strcmp(next->listen, was.listen) != 0) {
		close(fd);
		srv->daemon = old;
		return r;
	}
	/* The old daemon was quiesced (it accepts no more): the socket goes
	 * to a daemon with the old limits. */
	if ((srv->daemon = start_daemon(srv, fd)) == NULL) {
		srv->daemon = old;
		close(fd);
		custody_warn("metadata server: %s no longer accepts connections",
			     was.listen);
		return r;
	}
	MHD_stop_daemon(old);
	return r;
}

int
custody_agent_http_reload(custody_agent_http **srvp, const custody_config *cfg,
			  custody_ctx *ctx, custody_err *err)
{
	struct custody_agent_http *srv = *srvp;
	struct settings next;
	struct limits limits;
	int r;

	if (srv == NULL)
		return custody_agent_http_start(cfg, ctx, srvp, err);
	if (cfg->http_listen == NULL) {
		custody_agent_http_stop(srv);
		*srvp = NULL;
		return CUSTODY_OK;
	}
	if ((r = settings_from(cfg, ctx, &next, err)) != CUSTODY_OK)
		return r;
	limits_from(cfg, &limits);
	if (memcmp(&limits, &srv->limits, sizeof(limits)) != 0 &&
	    (r = restart_daemon(srv, &limits, err)) != CUSTODY_OK)
		return r;
	pthread_mutex_lock(&srv->lock);
	settings_keep_signers(&next, &srv->s);
	settings_close(&srv->s);
	srv->s = next;
	pthread_mutex_unlock(&srv->lock);
	return CUSTODY_OK;
}

const custody_agent_http_table custody_agent_http_functions = {
	custody_agent_http_start,
	custody_agent_http_reload,
	custody_agent_http_port,
	custody_agent_http_stop,
};
