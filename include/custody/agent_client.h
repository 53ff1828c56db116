/*
 * custody/agent_client.h — a client's connection to custody's agent
 * (`custody agent`) over its Unix socket: one request, one response, in
 * the frames of custody/agent_wire.h.
 *
 * This module uses the C library only (no OpenSSL, no token, no store),
 * so that the short-lived `custody sign` path that links it starts fast.
 *
 * A connection is used by one thread at a time (a caller with threads
 * keeps one per thread, or a pool).  It remembers its path: when the agent
 * closed the connection (it restarted, or closed an idle connection), the
 * next call connects again once before it reports an error.
 */
#ifndef CUSTODY_AGENT_CLIENT_H
#define CUSTODY_AGENT_CLIENT_H

#include <custody/agent_wire.h>
#include <custody/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct custody_agent_conn custody_agent_conn;

#define CUSTODY_AGENT_TIMEOUT_MS 30000	/* default: a whole exchange */

/*
 * Connects to the agent's socket at path.  timeout_ms (0: the default)
 * bounds the connect and, later, each call's whole exchange.  EFAIL
 * "cannot reach the custody agent at PATH: WHY" (with a hint in the
 * message: is `custody agent` running? may this user use its socket?).
 */
int custody_agent_connect(const char *path, int timeout_ms,
			  custody_agent_conn **out, custody_err *err);

/* NULL is accepted. */
void custody_agent_close(custody_agent_conn *c);

/*
 * Sends req and reads one response into *resp (which it overwrites
 * without freeing; the caller custody_agent_msg_clear()s it).  An ERROR
 * response is returned as its code, its message in err as "the custody
 * agent refused: MESSAGE" / "the custody agent: MESSAGE", and *resp left
 * cleared.  A response of another kind than the request's, a malformed
 * frame, a timeout or a lost connection is EFAIL and closes the
 * connection (the next call connects again).
 */
int custody_agent_call(custody_agent_conn *c, const custody_agent_msg *req,
		       custody_agent_msg *resp, custody_err *err);

/* The path this connection was opened with. */
const char *custody_agent_conn_path(const custody_agent_conn *c);

#ifdef __cplusplus
}
#endif
#endif
