/*
 * agent/server.c — `custody agent`'s event loop (custody/agent.h): N
 * workers in epoll_wait on one epoll set, each connection armed
 * EPOLLIN|EPOLLONESHOT, so that the worker that wakes owns it until it
 * re-arms it: it reads what is there, and when a frame is whole it
 * serves it and writes the response itself.  The calling thread keeps
 * house: late frames, idle connections.  Signals come through a signalfd
 * in the same epoll set.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <custody/log.h>

#include "agent/server.h"
#include "util/module.h"

#define HOUSEKEEPING_MS 250

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
arm(struct agent *a, struct agent_watch *w, int op)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
	ev.data.ptr = w;
	return epoll_ctl(a->epfd, op, w->fd, &ev);
}

/* ------------------------------------------------------------ connections */

static void
conn_close(struct agent *a, struct agent_conn *c)
{
	pthread_mutex_lock(&a->conns_mx);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		a->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	a->n_conns--;
	pthread_mutex_unlock(&a->conns_mx);
	close(c->w.fd);
	if (c->buf != c->small)
		free(c->buf);
	agent_peer_clear(&c->peer);
	free(c);
}

static int64_t
frame_timeout(struct agent *a)
{
	int64_t t;

	pthread_rwlock_rdlock(&a->settings_lock);
	t = a->frame_timeout_ms;
	pthread_rwlock_unlock(&a->settings_lock);
	return t;
}

static void
idle_from_now(struct agent *a, struct agent_conn *c)
{
	int64_t idle;

	pthread_rwlock_rdlock(&a->settings_lock);
	idle = a->idle_timeout_ms;
	pthread_rwlock_unlock(&a->settings_lock);
	atomic_store(&c->idle_deadline, now_ms() + idle);
}

/* Writes the whole response; a client that does not read it within
 * frame-timeout loses the connection (0: written, -1: close it). */
static int
send_all(struct agent *a, int fd, const unsigned char *p, size_t len)
{
	int64_t deadline = 0, left;
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	ssize_t n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			return -1;
		if (deadline == 0)
			deadline = now_ms() + frame_timeout(a);
		if ((left = deadline - now_ms()) <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return -1;
	}
	return 0;
}

/* What reading left: a whole frame, nothing more for now, or the end. */
enum got { GOT_FRAME, GOT_AGAIN, GOT_CLOSED, GOT_BAD_PREFIX };

/* Once the prefix is in: the frame's size, and a buffer for it when the
 * connection's own is too small. */
static enum got
size_frame(struct agent_conn *c, custody_err *err)
{
	size_t total;

	if (custody_agent_wire_frame_length(c->buf, &total, err) != CUSTODY_OK)
		return GOT_BAD_PREFIX;
	c->total = total;
	if (total > c->cap) {
		unsigned char *big = malloc(total);

		if (big == NULL) {
			custody_err_set(err, CUSTODY_EFAIL, "out of memory");
			return GOT_BAD_PREFIX;
		}
		memcpy(big, c->buf, c->have);
		c->buf = big;
		c->cap = total;
	}
	return GOT_FRAME;
}

/* Reads until a frame is whole, or the socket has no more for now.  A
 * read shorter than asked took all there was: no second read to hear
 * EAGAIN (re-arming the connection asks the kernel instead). */
static enum got
read_frame(struct agent *a, struct agent_conn *c, custody_err *err)
{
	size_t want;
	ssize_t n;
	int drained = 0;

	for (;;) {
		if (c->total == 0 && c->have >= 4 && size_frame(c, err) != GOT_FRAME)
			return GOT_BAD_PREFIX;
		if (c->total != 0 && c->have >= c->total)
			return GOT_FRAME;
		if (drained)
			return GOT_AGAIN;
		/* Into a frame's own buffer: that frame's bytes only. */
		want = c->buf == c->small ? c->cap - c->have : c->total - c->have;
		n = recv(c->w.fd, c->buf + c->have, want, MSG_DONTWAIT);
		if (n == 0)
			return GOT_CLOSED;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return GOT_CLOSED;
			break;
		}
		if (c->have == 0 && atomic_load(&c->frame_deadline) == 0)
			atomic_store(&c->frame_deadline, now_ms() + frame_timeout(a));
		c->have += (size_t)n;
		drained = (size_t)n < want;
	}
	return GOT_AGAIN;
}

/* The frame served: what followed it in the small buffer moves up. */
static void
frame_done(struct agent_conn *c)
{
	if (c->buf != c->small) {
		free(c->buf);
		c->buf = c->small;
		c->cap = sizeof(c->small);
		c->have = 0;
	} else {
		memmove(c->small, c->small + c->total, c->have - c->total);
		c->have -= c->total;
	}
	c->total = 0;
	atomic_store(&c->frame_deadline, 0);
}

/* A connection is readable (or hung up): serve every whole frame there,
 * then re-arm it, or close it. */
static void
on_conn(struct agent_worker *w, struct agent_conn *c)
{
	struct agent *a = w->agent;
	custody_err err;
	enum got got;

	for (;;) {
		got = read_frame(a, c, &err);
		if (got == GOT_AGAIN) {
			if (c->have > 0 && atomic_load(&c->frame_deadline) == 0)
				atomic_store(&c->frame_deadline, now_ms() + frame_timeout(a));
			if (arm(a, &c->w, EPOLL_CTL_MOD) == 0)
				return;
			break;
		}
		if (got == GOT_BAD_PREFIX) {
			agent_error_frame(w, CUSTODY_EFAIL, err.msg);
			(void)send(c->w.fd, w->out, w->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
			break;
		}
		if (got == GOT_CLOSED)
			break;
		/* Serving: neither clock runs (a slow token is not a slow
		 * client). */
		atomic_store(&c->frame_deadline, 0);
		atomic_store(&c->idle_deadline, 0);
		agent_serve_frame(w, c, c->buf, c->total);
		frame_done(c);
		got = w->out_len > 0 && send_all(a, c->w.fd, w->out, w->out_len) == 0 ? GOT_FRAME
										 : GOT_CLOSED;
		if (w->out_secret)
			OPENSSL_cleanse(w->out, w->out_len);
		if (got == GOT_CLOSED)
			break;
		idle_from_now(a, c);
		/* Nothing left over: wait for the next request in epoll
		 * (no read that would only say EAGAIN). */
		if (c->have == 0) {
			if (arm(a, &c->w, EPOLL_CTL_MOD) == 0)
				return;
			break;
		}
	}
	conn_close(a, c);
}

/* A pre-made ERROR frame for a connection over max-connections. */
static void
refuse_busy(struct agent_worker *w, int fd, int max)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "the agent has %d connections, its max-connections: "
		 "try again later", max);
	agent_error_frame(w, CUSTODY_EFAIL, msg);
	(void)send(fd, w->out, w->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static void
accept_one(struct agent_worker *w, int fd)
{
	struct agent *a = w->agent;
	struct agent_conn *c;
	custody_err err;
	int max;

	pthread_rwlock_rdlock(&a->settings_lock);
	max = a->max_connections;
	pthread_rwlock_unlock(&a->settings_lock);
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->w.kind = WATCH_CONN;
	c->w.fd = fd;
	c->buf = c->small;
	c->cap = sizeof(c->small);
	if (agent_peer_read(fd, &c->peer, &err) != CUSTODY_OK) {
		custody_warn("agent: %s", err.msg);
		close(fd);
		free(c);
		return;
	}
	pthread_mutex_lock(&a->conns_mx);
	if (a->n_conns >= max) {
		pthread_mutex_unlock(&a->conns_mx);
		agent_peer_clear(&c->peer);
		free(c);
		refuse_busy(w, fd, max);
		return;
	}
	c->next = a->conns;
	if (a->conns != NULL)
		a->conns->prev = c;
	a->conns = c;
	a->n_conns++;
	pthread_mutex_unlock(&a->conns_mx);
	idle_from_now(a, c);
	if (arm(a, &c->w, EPOLL_CTL_ADD) != 0)
		conn_close(a, c);
}

static void
on_listen(struct agent_worker *w, struct agent_watch *lw)
{
	int fd;

	while (!atomic_load(&w->agent->stopping) &&
	       (fd = accept4(lw->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
		accept_one(w, fd);
	if (!atomic_load(&w->agent->stopping))
		(void)arm(w->agent, lw, EPOLL_CTL_MOD);
}

/* ------------------------------------------------------------ signals */

static void
apply_settings(struct agent *a, const custody_config *cfg)
{
	const custody_agent_settings *s = &cfg->agent;

	a->frame_timeout_ms = 1000 * (s->frame_timeout > 0 ? s->frame_timeout
							    : CUSTODY_AGENT_FRAME_TIMEOUT);
	a->idle_timeout_ms = 1000 * (s->idle_timeout > 0 ? s->idle_timeout
							  : CUSTODY_AGENT_IDLE_TIMEOUT);
	a->max_connections = s->max_connections > 0 ? s->max_connections
						    : CUSTODY_AGENT_MAX_CONNECTIONS;
}

/* ------------------------------------------------------------ metadata server */

/* Starts, moves or stops the metadata server as cfg says (http-listen),
 * loading its module the first time it is needed. */
static int
http_apply(struct agent *a, const custody_config *cfg, custody_err *err)
{
	const void *fn;
	int r;

	if (a->http_fn == NULL) {
		if (cfg->http_listen == NULL)
			return CUSTODY_OK;
		if ((r = custody_module_symbol(CUSTODY_AGENT_HTTP_MODULE,
					       CUSTODY_AGENT_HTTP_SYMBOL,
					       "the agent's metadata server module",
					       &fn, err)) != CUSTODY_OK)
			return r;
		a->http_fn = fn;
	}
	if ((r = a->http_fn->reload(&a->http, cfg, a->ctx, err)) != CUSTODY_OK)
		return r;
	if (a->http != NULL)
		custody_step("agent: metadata over HTTP on %s (port %u)", cfg->http_listen,
			     a->http_fn->port(a->http));
	return CUSTODY_OK;
}

static void
http_stop(struct agent *a)
{
	if (a->http_fn != NULL && a->http != NULL)
		a->http_fn->stop(a->http);
	a->http = NULL;
}

static void
reload(struct agent *a)
{
	custody_config cfg;
	struct agent_allow *allow = NULL, *old;
	custody_err err;

	custody_config_init(&cfg);
	agent_sd_notify("RELOADING=1");
	if (a->opts.reload == NULL) {
		custody_step("agent: SIGHUP: no configuration to reload");
	} else if (a->opts.reload(a->opts.reload_ctx, &cfg, &err) != CUSTODY_OK ||
		   agent_allow_build(&cfg, 0, &allow, &err) != CUSTODY_OK ||
		   http_apply(a, &cfg, &err) != CUSTODY_OK) {
		custody_warn("agent: reload failed, the configuration stays as it was: %s",
			     err.msg);
		agent_allow_free(allow);
	} else {
		pthread_rwlock_wrlock(&a->settings_lock);
		old = a->allow;
		a->allow = allow;
		apply_settings(a, &cfg);
		pthread_rwlock_unlock(&a->settings_lock);
		agent_allow_free(old);
		custody_step("agent: reloaded: %zu [allow] sections", allow->n);
	}
	custody_config_clear(&cfg);
	agent_sd_notify("READY=1");
}

static void
stop(struct agent *a)
{
	uint64_t one = 1;
	size_t i;

	if (atomic_exchange(&a->stopping, 1))
		return;
	agent_sd_notify("STOPPING=1");
	custody_step("agent: stopping: the requests in flight finish");
	for (i = 0; i < a->n_listen; i++)
		(void)epoll_ctl(a->epfd, EPOLL_CTL_DEL, a->listen[i].fd, NULL);
	(void)!write(a->stopfd, &one, sizeof(one));
}

static void
on_signal(struct agent *a)
{
	struct signalfd_siginfo si;

	while (read(a->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP)
			reload(a);
		else
			stop(a);
	}
	(void)arm(a, &a->sig_w, EPOLL_CTL_MOD);
}

/* ------------------------------------------------------------ workers */

static void *
worker_main(void *arg)
{
	struct agent_worker *w = arg;
	struct agent *a = w->agent;
	struct epoll_event ev;
	struct agent_watch *wt;
	int n;

	while (!atomic_load(&a->stopping)) {
		/* One event at a time: ready connections spread over the
		 * workers instead of queueing behind one. */
		n = epoll_wait(a->epfd, &ev, 1, -1);
		if (n <= 0)
			continue;
		wt = ev.data.ptr;
		switch (wt->kind) {
		case WATCH_CONN: on_conn(w, (struct agent_conn *)wt); break;
		case WATCH_LISTEN: on_listen(w, wt); break;
		case WATCH_SIGNAL: on_signal(a); break;
		case WATCH_STOP: break;
		}
	}
	return NULL;
}

/* Shuts down the connections whose frame or idle time is up; the worker
 * that wakes on them closes them. */
static void
housekeeping(struct agent *a)
{
	int64_t now = now_ms(), fd_line, idle;
	struct agent_conn *c;

	pthread_mutex_lock(&a->conns_mx);
	for (c = a->conns; c != NULL; c = c->next) {
		fd_line = atomic_load(&c->frame_deadline);
		idle = atomic_load(&c->idle_deadline);
		if (c->shut || !((fd_line != 0 && now > fd_line) ||
				 (fd_line == 0 && idle != 0 && now > idle)))
			continue;
		c->shut = 1;
		if (a->opts.verbose)
			custody_debug("agent: pid %ld: connection closed (%s)", (long)c->peer.pid,
				      fd_line != 0 ? "frame-timeout" : "idle-timeout");
		shutdown(c->w.fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&a->conns_mx);
}

/* ------------------------------------------------------------ start, stop */

/* Four per CPU, 4 to 16: a worker waits while the token signs (an HSM's
 * own time, a software token's file locks and reads), and more workers
 * than CPUs keep the CPUs and the token busy.  Measured with SoftHSM on
 * 2 CPUs and 8 clients: 8 workers sign 10-20% more than 2. */
static int
default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 4 : n > 4 ? 16 : 4 * (int)n;
}

/* The epoll set, the signalfd (signals blocked first: every thread
 * started after inherits the mask) and the stop eventfd. */
static int
events_open(struct agent *a, custody_err *err)
{
	sigset_t set;
	size_t i;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
	    (a->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (a->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
	    (a->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot set up the agent's "
				       "events: %s", strerror(errno));
	a->sig_w.kind = WATCH_SIGNAL;
	a->sig_w.fd = a->sigfd;
	a->stop_w.kind = WATCH_STOP;
	a->stop_w.fd = a->stopfd;
	{
		/* Level-triggered: every worker sees it and leaves. */
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &a->stop_w};

		if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->stopfd, &ev) != 0 ||
		    arm(a, &a->sig_w, EPOLL_CTL_ADD) != 0)
			return custody_err_set(err, CUSTODY_EFAIL, "epoll_ctl: %s",
					       strerror(errno));
	}
	for (i = 0; i < a->n_listen; i++)
		if (arm(a, &a->listen[i], EPOLL_CTL_ADD) != 0)
			return custody_err_set(err, CUSTODY_EFAIL, "epoll_ctl: %s",
					       strerror(errno));
	return CUSTODY_OK;
}

static void
agent_free(struct agent *a)
{
	struct agent_conn *c;

	while ((c = a->conns) != NULL)
		conn_close(a, c);
	agent_sockets_close(a);
	http_stop(a);
	agent_signers_close(a);
	agent_audit_free(a->audit);
	custody_ctx_free(a->ctx);
	agent_allow_free(a->allow);
	if (a->epfd >= 0)
		close(a->epfd);
	if (a->sigfd >= 0)
		close(a->sigfd);
	if (a->stopfd >= 0)
		close(a->stopfd);
	pthread_rwlock_destroy(&a->settings_lock);
	pthread_rwlock_destroy(&a->signers_lock);
	pthread_mutex_destroy(&a->conns_mx);
	custody_config_clear(&a->cfg);
	free(a);
}

/* The copy of the configuration, its allow lists, the ctx, the audit. */
static int
agent_new(const custody_config *cfg, const custody_agent_options *opts, struct agent **out,
	  custody_err *err)
{
	custody_ctx_options copts = {0, 0};
	struct agent *a = calloc(1, sizeof(*a));
	int r;

	*out = NULL;
	if (a == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "out of memory");
	a->epfd = a->sigfd = a->stopfd = -1;
	a->opts = *opts;
	pthread_rwlock_init(&a->settings_lock, NULL);
	pthread_rwlock_init(&a->signers_lock, NULL);
	pthread_mutex_init(&a->conns_mx, NULL);
	custody_config_init(&a->cfg);
	*out = a;
	/* The agent signs itself: never through an agent. */
	if ((r = custody_config_copy(&a->cfg, cfg, err)) != CUSTODY_OK)
		return r;
	a->cfg.agent.socket[0] = '\0';
	cfg = &a->cfg;
	a->n_workers = cfg->agent.workers > 0 ? cfg->agent.workers : default_workers();
	copts.sessions = a->n_workers;
	apply_settings(a, cfg);
	if ((r = agent_allow_build(cfg, 1, &a->allow, err)) != CUSTODY_OK ||
	    (r = custody_ctx_new_with(cfg, opts->node, &copts, &a->ctx, err)) != CUSTODY_OK)
		return r;
	snprintf(a->node, sizeof(a->node), "%s", custody_ctx_node(a->ctx));
	return agent_audit_new(a->ctx, &a->audit, err);
}

static int
start_workers(struct agent *a, struct agent_worker **workers, custody_err *err)
{
	int i;

	if ((*workers = calloc((size_t)a->n_workers, sizeof(**workers))) == NULL ||
	    (a->workers = calloc((size_t)a->n_workers, sizeof(*a->workers))) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "out of memory");
	for (i = 0; i < a->n_workers; i++) {
		(*workers)[i].agent = a;
		if (pthread_create(&a->workers[i], NULL, worker_main, &(*workers)[i]) != 0) {
			a->n_workers = i;
			stop(a);
			return custody_err_set(err, CUSTODY_EFAIL, "cannot start the agent's "
					       "workers: %s", strerror(errno));
		}
	}
	return CUSTODY_OK;
}

int
custody_agent_serve(const custody_config *cfg, const custody_agent_options *opts,
		    custody_err *err)
{
	static const custody_agent_options none;
	struct agent_worker *workers = NULL;
	struct agent *a = NULL;
	struct pollfd pfd;
	int r, i;

	if ((r = agent_new(cfg, opts != NULL ? opts : &none, &a, err)) != CUSTODY_OK ||
	    (r = agent_sockets_open(a, err)) != CUSTODY_OK ||
	    (r = events_open(a, err)) != CUSTODY_OK ||
	    /* after events_open: the server's thread inherits the blocked
	     * signals, so none of them is delivered there */
	    (r = http_apply(a, &a->cfg, err)) != CUSTODY_OK)
		goto out;
	agent_signers_warm(a);
	r = start_workers(a, &workers, err);
	if (r == CUSTODY_OK) {
		custody_step("agent: serving on %s (%d workers, node %s)",
			     a->from_systemd ? "the sockets systemd passed"
					     : custody_agent_listen_path(&a->cfg, a->opts.listen),
			     a->n_workers, a->node);
		agent_sd_notify("READY=1\nSTATUS=serving, %d workers\nMAINPID=%lu", a->n_workers,
			   (unsigned long)getpid());
	}
	pfd.fd = a->stopfd;
	pfd.events = POLLIN;
	while (r == CUSTODY_OK && !atomic_load(&a->stopping)) {
		if (poll(&pfd, 1, HOUSEKEEPING_MS) == 0)
			housekeeping(a);
	}
	for (i = 0; a->workers != NULL && i < a->n_workers; i++)
		pthread_join(a->workers[i], NULL);
	if (r == CUSTODY_OK)
		custody_step("agent: stopped");
out:
	if (workers != NULL) {
		for (i = 0; a != NULL && i < a->n_workers; i++)
			custody_agent_msg_clear(&workers[i].req);
		OPENSSL_cleanse(workers, (size_t)(a != NULL ? a->n_workers : 0) * sizeof(*workers));
	}
	free(workers);
	if (a != NULL) {
		free(a->workers);
		agent_free(a);
	}
	return r;
}
