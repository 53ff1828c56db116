/* agent/server.h — what the agent's modules share (not installed). */
#ifndef CUSTODY_AGENT_SERVER_H
#define CUSTODY_AGENT_SERVER_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include <custody/agent_http.h>
#include <custody/config.h>
#include <custody/error.h>
#include <custody/store.h>

/* Who is at the other end of a connection, as the kernel says it at
 * accept (SO_PEERCRED, SO_PEERGROUPS). */
struct agent_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t *groups;		/* malloc'ed, n_groups of them */
	size_t n_groups;
};

int agent_peer_read(int fd, struct agent_peer *p, custody_err *err);
void agent_peer_clear(struct agent_peer *p);
/* The user's name, or "uid N" when it has none. */
void agent_peer_user(uid_t uid, char *out, size_t size);

/* [allow TYPE] lists resolved to ids. */
struct agent_allow_type {
	char type[CUSTODY_NAME_MAX + 1];
	uid_t *uids;
	size_t n_uids;
	gid_t *gids;
	size_t n_gids;
};

struct agent_allow {
	struct agent_allow_type *types;
	size_t n;
};

/* strict (at start): a name that does not resolve is EUSAGE; else (at
 * reload) a warning, and the name is left out. */
int agent_allow_build(const custody_config *cfg, int strict,
		      struct agent_allow **out, custody_err *err);
void agent_allow_free(struct agent_allow *a);
/* 1 when the peer may use type (canonical). */
int agent_allow_permits(const struct agent_allow *a, const char *type,
			const struct agent_peer *p);

/* The audit log of refusals, rate-limited. */
struct agent_audit;

struct custody_ctx;
int agent_audit_new(struct custody_ctx *ctx, struct agent_audit **out,
		    custody_err *err);
void agent_audit_free(struct agent_audit *au);
/* Records a refusal (or counts it, when over the rate). */
void agent_audit_refusal(struct agent_audit *au, const struct agent_peer *p,
			 const char *user, const char *type,
			 const char *identity);

/* ------------------------------------------------------------ the agent */

#include <stdatomic.h>
#include <custody/agent.h>
#include <custody/agent_wire.h>
#include <custody/signer.h>

enum agent_watch_kind { WATCH_LISTEN, WATCH_SIGNAL, WATCH_STOP, WATCH_CONN };

/* What an epoll event points at (a connection starts with one). */
struct agent_watch {
	enum agent_watch_kind kind;
	int fd;
};

#define AGENT_SMALL_FRAME 512	/* a connection's own buffer: most frames */
#define AGENT_LISTEN_MAX 8

struct agent_conn {
	struct agent_watch w;
	struct agent_peer peer;
	unsigned char small[AGENT_SMALL_FRAME];
	unsigned char *buf;	/* small, or a malloc'ed whole frame */
	size_t cap, have;	/* buf's size, bytes in it */
	size_t total;		/* the frame's size once its prefix is in; 0 */
	_Atomic int64_t frame_deadline;	/* ms (monotonic); 0: no frame begun */
	_Atomic int64_t idle_deadline;	/* ms; 0: serving a request */
	int shut;		/* housekeeping shut it down (under conns_mx) */
	struct agent_conn *prev, *next;
};

struct agent_signer_slot {
	char type[CUSTODY_NAME_MAX + 1];
	char identity[CUSTODY_NAME_MAX + 1];	/* "": this node, then global */
	custody_signer *signer;
};

#define AGENT_SIGNERS_MAX 256

struct agent {
	custody_config cfg;	/* a copy: agent.socket cleared */
	custody_agent_options opts;
	custody_ctx *ctx;
	char node[CUSTODY_NAME_MAX + 1];
	int epfd, sigfd, stopfd;
	struct agent_watch sig_w, stop_w;
	struct agent_watch listen[AGENT_LISTEN_MAX];
	size_t n_listen;
	int from_systemd;
	char path[CUSTODY_AGENT_PATH_MAX];	/* the socket made ("": none) */
	dev_t path_dev;
	ino_t path_ino;
	int n_workers;
	pthread_t *workers;
	atomic_int stopping;

	pthread_rwlock_t settings_lock;	/* allow and the limits */
	struct agent_allow *allow;
	int64_t frame_timeout_ms, idle_timeout_ms;
	int max_connections;

	pthread_mutex_t conns_mx;
	struct agent_conn *conns;
	int n_conns;

	pthread_rwlock_t signers_lock;
	struct agent_signer_slot signers[AGENT_SIGNERS_MAX];
	size_t n_signers;

	struct agent_audit *audit;
	/* The metadata server (custody/agent_http.h), when http-listen is set:
	 * the module's functions once loaded, and the server. */
	const custody_agent_http_table *http_fn;
	custody_agent_http *http;
};

/* One worker's scratch: the messages and the response frame. */
struct agent_worker {
	struct agent *agent;
	custody_agent_msg req, resp;
	unsigned char out[CUSTODY_AGENT_FRAME_BUF];
	size_t out_len;
	int out_secret;		/* out holds a token: cleansed once sent */
};

/* Decodes frame, serves it, and leaves the response frame in w->out. */
void agent_serve_frame(struct agent_worker *w, struct agent_conn *c,
		       const unsigned char *frame, size_t len);
/* An ERROR frame of code and message into w->out. */
void agent_error_frame(struct agent_worker *w, int code, const char *message);
/* Opens the signer of each allowed type (its assignment read, the token
 * opened and logged into where the store's tags need it): a PIN or store
 * problem shows at start, and the first client does not wait for it. */
void agent_signers_warm(struct agent *a);
/* Closes every signer (at the end). */
void agent_signers_close(struct agent *a);

/* libsystemd, loaded when first needed (server_systemd.c). */
int agent_sd_listen_fds(void);
void agent_sd_notify(const char *fmt, ...) CUSTODY_PRINTF(1, 2);

/* The listening sockets: systemd's (sd_listen_fds), else the path made. */
int agent_sockets_open(struct agent *a, custody_err *err);
void agent_sockets_close(struct agent *a);

#endif
