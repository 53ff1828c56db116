/* agent/client.c — one connection to custody's agent: a whole frame out,
 * a whole frame back, every wait bounded by one deadline per call (see
 * custody/agent_client.h).  The C library only: the fast `custody sign`
 * links this without OpenSSL.
 *
 * A call is two system calls when the answer comes whole, as it does: a
 * send, and a recv that blocks until the answer (the socket's own
 * timeouts, set once at connect, bound both).  Only a long or cut-up
 * answer takes more, read with poll() against the call's deadline. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <custody/agent_client.h>

struct custody_agent_conn {
	int fd;			/* -1: closed, connect again on the next call */
	int timeout_ms;
	int answered;		/* this fd has carried a whole exchange */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	unsigned char buf[CUSTODY_AGENT_FRAME_BUF];
};

/* ---------------------------------------------------------------- time */

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes: 0 ready,
 * ETIMEDOUT, or another errno. */
static int
wait_ready(int fd, short events, long long deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	long long left;
	int n;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0)
			return ETIMEDOUT;
		n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0)
			return 0;	/* readable, writable, or HUP/ERR: the
					 * next read or write says which */
		if (n < 0 && errno != EINTR)
			return errno;
	}
}

/* ---------------------------------------------------------------- connect */

/* The hint that goes with a connect error: what the user can check. */
static const char *
connect_hint(int e)
{
	switch (e) {
	case EACCES:
	case EPERM:
		return " (this user may not use the agent's socket: "
		       "see its socket-group)";
	case ENOENT:
	case ECONNREFUSED:
	case ENOTDIR:
		return " (is `custody agent` running?)";
	case EAGAIN:
		return " (the agent is not accepting connections)";
	default:
		return "";
	}
}

static int
connect_fail(const char *path, int e, custody_err *err)
{
	if (e == ETIMEDOUT || e == EAGAIN || e == EWOULDBLOCK)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot reach the custody agent at %s: "
				       "timed out%s", path, connect_hint(EAGAIN));
	return custody_err_set(err, CUSTODY_EFAIL,
			       "cannot reach the custody agent at %s: %s%s",
			       path, strerror(e), connect_hint(e));
}

/* Opens c->fd, a blocking socket whose every send and recv waits at
 * most timeout_ms (SO_SNDTIMEO, SO_RCVTIMEO).  The connect itself: a
 * Unix socket's connect waits only while the agent's backlog is full, and
 * SO_SNDTIMEO bounds that wait. */
static int
conn_open(custody_agent_conn *c, custody_err *err)
{
	struct sockaddr_un sa;
	struct timeval tv;
	int fd, e;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, c->path, strlen(c->path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return connect_fail(c->path, errno, err);
	tv.tv_sec = c->timeout_ms / 1000;
	tv.tv_usec = (c->timeout_ms % 1000) * 1000;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
		goto fail;
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		/* An interrupted Unix connect has not started: try again. */
		if (errno != EINTR)
			goto fail;
	}
	c->fd = fd;
	c->answered = 0;
	return CUSTODY_OK;
fail:
	e = errno;
	close(fd);
	return connect_fail(c->path, e, err);
}

static void
conn_drop(custody_agent_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

int
custody_agent_connect(const char *path, int timeout_ms,
		      custody_agent_conn **out, custody_err *err)
{
	custody_agent_conn *c;
	size_t n;
	int r;

	*out = NULL;
	if (path == NULL || path[0] == '\0')
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot reach the custody agent: "
				       "no socket path given");
	n = strlen(path);
	if (n >= sizeof(c->path))
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot reach the custody agent at %s: "
				       "the path is too long (%zu bytes, at "
				       "most %zu)", path, n,
				       sizeof(c->path) - 1);
	if (timeout_ms < 0)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "agent timeout %d ms: not a duration",
				       timeout_ms);
	c = malloc(sizeof(*c));
	if (c == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "out of memory");
	c->fd = -1;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : CUSTODY_AGENT_TIMEOUT_MS;
	memcpy(c->path, path, n + 1);
	r = conn_open(c, err);
	if (r != CUSTODY_OK) {
		free(c);
		return r;
	}
	*out = c;
	return CUSTODY_OK;
}

void
custody_agent_close(custody_agent_conn *c)
{
	if (c == NULL)
		return;
	conn_drop(c);
	/* c->buf holds nothing: every call cleanses what it used. */
	free(c);
}

const char *
custody_agent_conn_path(const custody_agent_conn *c)
{
	return c->path;
}

/* ---------------------------------------------------------------- I/O */

/* Results of a transfer, beside 0 (done) and an errno. */
enum {
	IO_CLOSED = -1,		/* the agent closed before a byte came */
	IO_CUT = -2,		/* the agent closed in the middle of a frame */
	IO_BAD_FRAME = -3,	/* a length prefix out of bounds (err is set) */
};

/* Sends the whole frame, waiting while the socket is full (a request
 * goes out at once: the socket holds far more than a frame). */
static int
send_all(int fd, const unsigned char *p, size_t n, long long deadline)
{
	ssize_t w;
	int e;

	while (n > 0) {
		w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return errno == EPIPE || errno == ECONNRESET ?
			    IO_CLOSED : errno;
		if ((e = wait_ready(fd, POLLOUT, deadline)) != 0)
			return e;
	}
	return 0;
}

/* Reads exactly n bytes; *got counts what arrived (for IO_CLOSED). */
static int
recv_all(int fd, unsigned char *p, size_t n, long long deadline,
	 size_t *got)
{
	ssize_t r;
	int e;

	while (n > 0) {
		r = recv(fd, p, n, MSG_DONTWAIT);
		if (r > 0) {
			p += r;
			n -= (size_t)r;
			*got += (size_t)r;
			continue;
		}
		if (r == 0 || errno == ECONNRESET)
			return *got == 0 ? IO_CLOSED : IO_CUT;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return errno;
		if ((e = wait_ready(fd, POLLIN, deadline)) != 0)
			return e;
	}
	return 0;
}

static int
io_fail(custody_agent_conn *c, int r, const char *doing, custody_err *err)
{
	conn_drop(c);
	if (r == ETIMEDOUT)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the custody agent at %s did not answer "
				       "within %d ms", c->path, c->timeout_ms);
	if (r == IO_CLOSED || r == IO_CUT)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the custody agent at %s closed the "
				       "connection%s", c->path,
				       r == IO_CUT ? " in the middle of a "
				       "response" : " without an answer");
	return custody_err_set(err, CUSTODY_EFAIL,
			       "cannot %s the custody agent at %s: %s",
			       doing, c->path, strerror(r));
}

/* Waits for the answer and takes what has come of it, at most max bytes,
 * in one read: an answer usually arrives whole, so this is often all.
 * The recv blocks: the socket's SO_RCVTIMEO (the call's timeout) ends
 * the wait, and after an interruption the rest of it is polled for. */
static int
recv_first(int fd, unsigned char *p, size_t max, long long deadline,
	   int timeout_ms, size_t *got)
{
	ssize_t r;
	int e, flags = 0;

	/* A send that had to wait took some of the call's time: poll for
	 * what is left of it instead of blocking for the whole timeout. */
	if (deadline - now_ms() < timeout_ms - 1)
		flags = MSG_DONTWAIT;

	for (;;) {
		r = recv(fd, p, max, flags);
		if (r > 0) {
			*got = (size_t)r;
			return 0;
		}
		if (r == 0 || errno == ECONNRESET)
			return IO_CLOSED;
		if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			return errno;
		if (errno != EINTR && now_ms() >= deadline)
			return ETIMEDOUT;
		flags = MSG_DONTWAIT;
		if ((e = wait_ready(fd, POLLIN, deadline)) != 0)
			return e;
	}
}

/* Sends the frame in c->buf[0..len) and reads the response frame into
 * c->buf; *total its size.  Returns 0, or an io result (see above).
 * System calls: send and recv (more only for a long answer).  A
 * connection the agent closed while it was idle shows here as
 * IO_CLOSED with nothing received: the caller tries once more. */
static int
exchange(custody_agent_conn *c, size_t len, size_t *total, int *sent,
	 custody_err *err)
{
	long long deadline = now_ms() + c->timeout_ms;
	size_t got = 0;
	int r;

	*sent = 0;
	if ((r = send_all(c->fd, c->buf, len, deadline)) != 0)
		return r;
	*sent = 1;
	if ((r = recv_first(c->fd, c->buf, sizeof(c->buf), deadline, c->timeout_ms, &got)) != 0 ||
	    (got < 4 && (r = recv_all(c->fd, c->buf + got, 4 - got, deadline, &got)) != 0))
		return r;
	if (custody_agent_wire_frame_length(c->buf, total, err) != CUSTODY_OK)
		return IO_BAD_FRAME;
	if (got > *total) {
		explicit_bzero(c->buf, got);
		custody_err_set(err, CUSTODY_EFAIL, "%zu bytes after the answer",
				got - *total);
		return IO_BAD_FRAME;
	}
	return recv_all(c->fd, c->buf + got, *total - got, deadline, &got);
}

/* ---------------------------------------------------------------- call */

static enum custody_agent_kind
response_kind(enum custody_agent_kind request)
{
	switch (request) {
	case CUSTODY_AGENT_SIGN_REQUEST:
	case CUSTODY_AGENT_CERT_REQUEST:
	case CUSTODY_AGENT_JWT_REQUEST:
	case CUSTODY_AGENT_LIST_REQUEST:
		return (enum custody_agent_kind)(request + 1);
	default:
		return 0;
	}
}

/* The decoded response: the expected kind, or an ERROR turned into its
 * code and message. */
static int
take_response(custody_agent_conn *c, enum custody_agent_kind want,
	      custody_agent_msg *resp, custody_err *err)
{
	int code;

	if (resp->kind == want)
		return CUSTODY_OK;
	if (resp->kind == CUSTODY_AGENT_ERROR) {
		code = resp->u.error.code;
		custody_err_set(err, code, "the custody agent: %s",
				resp->u.error.message);
		custody_agent_msg_clear(resp);
		return code;
	}
	conn_drop(c);
	custody_err_set(err, CUSTODY_EFAIL,
			"the custody agent at %s answered a %s with a %s",
			c->path, custody_agent_kind_name(want - 1),
			custody_agent_kind_name(resp->kind));
	custody_agent_msg_clear(resp);
	return CUSTODY_EFAIL;
}

int
custody_agent_call(custody_agent_conn *c, const custody_agent_msg *req,
		   custody_agent_msg *resp, custody_err *err)
{
	enum custody_agent_kind want = response_kind(req->kind);
	size_t len = sizeof(c->buf), total = 0;
	int r, sent = 0;

	resp->kind = 0;	/* nothing to free until an answer is decoded */
	if (want == 0)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot send a %s to the custody agent: "
				       "not a request",
				       custody_agent_kind_name(req->kind));
	r = custody_agent_wire_encode(req, c->buf, sizeof(c->buf), &len, err);
	if (r != CUSTODY_OK)
		goto out;
	for (;;) {
		if (c->fd < 0 && (r = conn_open(c, err)) != CUSTODY_OK)
			goto out;
		r = exchange(c, len, &total, &sent, err);
		/* A connection that served before and that the agent has
		 * closed meanwhile (an idle timeout, a restart): once more on
		 * a new one.  Only when no byte of an answer came (the frame
		 * in c->buf is then still the request), and never on a new
		 * connection, so a request the agent drops is not resent. */
		if (r == IO_CLOSED && c->answered) {
			conn_drop(c);
			continue;
		}
		break;
	}
	if (r == IO_BAD_FRAME) {
		conn_drop(c);
		custody_err_prefix(err, "the custody agent at %s", c->path);
		r = CUSTODY_EFAIL;
		goto out;
	}
	if (r != 0) {
		r = io_fail(c, r, sent ? "read from" : "write to", err);
		goto out;
	}
	if ((r = custody_agent_wire_decode(c->buf, total, resp, err))
	    != CUSTODY_OK) {
		conn_drop(c);
		custody_err_prefix(err, "the custody agent at %s", c->path);
		goto out;
	}
	c->answered = 1;
	r = take_response(c, want, resp, err);
out:
	/* The digest, the signature: no longer than needed. */
	explicit_bzero(c->buf, len > total ? len : total);
	return r;
}
