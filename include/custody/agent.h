/*
 * custody/agent.h — `custody agent`: one process that logs into the
 * token once, keeps the signer's session pool, and serves sign, cert,
 * JWT and list requests (custody/agent_wire.h) on a Unix socket to the
 * local users its [allow TYPE] lists name.
 *
 * Design (man custody-agent(8) says it for operators):
 *
 * - One custody_ctx (custody/signer.h) for the whole agent, and one
 *   custody_signer per (type, identity) asked for, opened at its first
 *   request and kept: every request resolves the assignment anew (the
 *   signer re-reads the store when it changed), so a roll or `custody
 *   set` takes effect at the next request.  The agent never signs
 *   through another agent: its copy of the configuration has no
 *   agent.socket.
 *
 * - Threads: N workers (agent.workers, default the session pool's size)
 *   wait in epoll_wait on one epoll set holding the listening sockets, a
 *   signalfd and every connection (EPOLLONESHOT).  The worker that wakes
 *   reads what is there without blocking; once a whole frame is in, the
 *   same worker decodes, authorises, signs and writes the response, then
 *   re-arms the connection: no hand-off between threads per request.  A
 *   connection reads into a 512-byte buffer of its own; a larger frame's
 *   buffer is allocated only once its 4-byte prefix was checked (at most
 *   CUSTODY_AGENT_FRAME_BUF), and freed when the frame is served.  The
 *   calling thread does the housekeeping (4 times a second): a started
 *   frame not whole within frame-timeout, or a connection idle for
 *   idle-timeout, is shut down (the worker that then wakes closes it).
 *   A client that sends half a frame never holds a worker; a response
 *   write that cannot finish within frame-timeout closes the connection.
 *
 * - Who: SO_PEERCRED (uid, gid, pid) and SO_PEERGROUPS (the groups the
 *   client had when it connected), taken at accept.  A request for type T
 *   is served when the uid is among [allow T] users, or the gid or one of
 *   the supplementary groups among [allow T] groups; nobody else (root is
 *   not special).  A refusal is CUSTODY_EFAIL "user U (uid N) may not use
 *   type T through this agent (see [allow T] in custody.conf)", logged,
 *   and written to the audit log ("agent-refused") at most once per
 *   (uid, type) a minute and CUSTODY_AGENT_AUDIT_BURST times a minute in
 *   all; the next entry written says how many were not.
 *
 * - Signals: SIGHUP reloads (opts->reload) the allow lists and the
 *   [agent] timeouts (the token and the store stay: restart for those);
 *   a bad configuration at reload keeps the old one.  SIGTERM and SIGINT
 *   stop accepting, let the requests in flight finish, and return OK.
 */
#ifndef CUSTODY_AGENT_H
#define CUSTODY_AGENT_H

#include <custody/config.h>
#include <custody/error.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CUSTODY_AUDIT_AGENT_REFUSED "agent-refused"
#define CUSTODY_AGENT_AUDIT_BURST 20	/* refusals audited a minute, in all */

/* Settles the configuration again, as at start (SIGHUP): fills *out
 * (initialised by the caller) or fails with err set. */
typedef int (*custody_agent_reload_fn)(void *ctx, custody_config *out,
				       custody_err *err);

typedef struct custody_agent_options {
	const char *listen;	/* NULL: agent.listen, then
				   CUSTODY_AGENT_LISTEN (unless systemd
				   passes sockets: sd_listen_fds)       */
	const char *node;	/* NULL: node.name, then the host name  */
	int verbose;		/* log each request (never its values)  */
	custody_agent_reload_fn reload;	/* NULL: SIGHUP re-reads nothing */
	void *reload_ctx;
} custody_agent_options;

/*
 * Serves until SIGTERM or SIGINT.  Blocks SIGHUP, SIGTERM, SIGINT (and
 * ignores SIGPIPE) in the calling thread before it starts any thread.
 * Lines go to custody/log.h (start, stop, reload, refusals; with verbose
 * each request's kind, type and outcome); never a PIN, digest, claims,
 * signature or token.  Errors at start: EUSAGE for a bad [agent] or
 * [allow] (a name that does not resolve), EFAIL when the socket cannot
 * be made (another agent answers on it), the errors of custody_ctx_new.
 */
int custody_agent_serve(const custody_config *cfg,
			const custody_agent_options *opts, custody_err *err);

/* The socket the agent listens on for cfg and an optional override. */
const char *custody_agent_listen_path(const custody_config *cfg,
				      const char *given);

#ifdef __cplusplus
}
#endif
#endif
