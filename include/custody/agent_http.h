/*
 * custody/agent_http.h — the agent's read-only metadata server: what
 * relying parties fetch to trust the keys a custody agent signs with,
 * over HTTP, on an address for a reverse proxy (loopback by default).
 *
 *   GET|HEAD /metadata/json/1         the server-to-server document
 *                                     (custody/metadata.h, with the trust
 *                                     fields of [metadata TYPE])
 *   GET|HEAD /jwks.json               the JWK Set
 *   GET|HEAD /.well-known/jwks.json   the same
 *   ?type=T                           another type of [agent] http-types
 *                                     (default: the first one)
 *
 * Configuration ([agent] in custody.conf): http-listen ADDRESS:PORT
 * (unset: no server), http-types, http-max-age (Cache-Control, default
 * 300 s: keys roll), http-max-connections (64), http-timeout (10 s).
 *
 * Each answer is made from the signer the agent signs with (a signer per
 * type, opened at the first request for it, on the agent's ctx) at the
 * request's instant: current, pending (as soon as it is staged) and
 * previous certificates, each checked as a signature would check it.  So
 * a `custody set`, a staged roll or a roll's instant shows at the next
 * request.  Only certificates (public) are ever served; the server reads
 * no request body, lists no directory, answers 404 to any other path, 405
 * (Allow: GET, HEAD) to any other method, 304 to an If-None-Match that
 * holds the current ETag (a hash of the body), 404 for a type nothing is
 * assigned to and 503 when the store or token cannot be read now.
 *
 * libmicrohttpd runs the server in a thread of its own (one thread polls
 * every connection: a slow client holds no other); connections are
 * limited in number (in all and per client address: the same number
 * when listening on loopback, where the proxy is the only client; a
 * quarter of it otherwise; past the limit a connection waits in the
 * listen queue) and closed after http-timeout idle.
 *
 * The server's thread inherits the caller's signal mask: start it once
 * the signals the agent handles (SIGHUP, SIGTERM...) are blocked, or one
 * may be delivered to that thread.
 *
 * The server is a module of its own, custody-agent-http.so (with
 * libmicrohttpd, which brings GnuTLS), never linked into libcustody: the
 * agent loads it (util/module.h) when http-listen is set, and takes these
 * functions from its table custody_agent_http_functions.
 */
#ifndef CUSTODY_AGENT_HTTP_H
#define CUSTODY_AGENT_HTTP_H

#include <custody/config.h>
#include <custody/error.h>
#include <custody/signer.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct custody_agent_http custody_agent_http;

/*
 * Starts the server cfg describes, answering from ctx (which must outlive
 * the server: stop it before custody_ctx_free).  cfg is copied (what the
 * server needs of it).  When cfg has no http-listen, *out is NULL and
 * CUSTODY_OK is returned: nothing to serve.  EUSAGE for a bad http-types
 * or [metadata] section; EFAIL when the address cannot be listened on
 * (naming it).
 */
int custody_agent_http_start(const custody_config *cfg, custody_ctx *ctx,
			     custody_agent_http **out, custody_err *err);

/*
 * Takes a new configuration (SIGHUP) and ctx (the same or a new one):
 * types, [metadata] sections, max-age and limits apply to the next
 * request; a new http-listen address is listened on before the old one
 * is closed; no http-listen any more stops the server (*srv becomes
 * NULL); a server that was off (*srv NULL) starts.  On error the server
 * keeps serving as it was and err says why.  Signers opened on the old
 * ctx are closed here: the old ctx may be freed when this returns.
 */
int custody_agent_http_reload(custody_agent_http **srv, const custody_config *cfg,
			      custody_ctx *ctx, custody_err *err);

/* The TCP port listened on (0 for NULL). */
unsigned custody_agent_http_port(const custody_agent_http *srv);

/* Stops listening, closes the connections (after the answer in progress)
 * and the signers.  NULL is accepted. */
void custody_agent_http_stop(custody_agent_http *srv);

/* The module's one exported symbol: its functions, for the agent. */
#define CUSTODY_AGENT_HTTP_MODULE "custody-agent-http.so"
#define CUSTODY_AGENT_HTTP_SYMBOL "custody_agent_http_functions"

typedef struct custody_agent_http_table {
	int (*start)(const custody_config *cfg, custody_ctx *ctx,
		     custody_agent_http **out, custody_err *err);
	int (*reload)(custody_agent_http **srv, const custody_config *cfg,
		      custody_ctx *ctx, custody_err *err);
	unsigned (*port)(const custody_agent_http *srv);
	void (*stop)(custody_agent_http *srv);
} custody_agent_http_table;

extern const custody_agent_http_table custody_agent_http_functions;

#ifdef __cplusplus
}
#endif
#endif
