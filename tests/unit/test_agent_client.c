/* test_agent_client.c — a client's connection to the agent against a
 * scripted peer: a thread that listens on a Unix socket in a temporary
 * directory, reads each request with the codec, and answers as its script
 * says (whole, byte by byte, not at all, cut short, of the wrong kind, an
 * ERROR), so each path of custody_agent_call meets its case. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <custody/agent_client.h>

#define TP "0123456789ABCDEF0123456789ABCDEF01234567"

enum answer {
	ANSWER_WHOLE,		/* a sign response in one write */
	ANSWER_BYTES,		/* the same, one byte per write */
	ANSWER_CLOSE,		/* read the request, close without a word */
	ANSWER_STALL,		/* read the request, say nothing until closed */
	ANSWER_WRONG_KIND,	/* a list response to a sign request */
	ANSWER_ERROR,		/* an ERROR: ENOTFOUND and a message */
	ANSWER_HALF,		/* half a response frame, then close */
	ANSWER_HUGE,		/* a length prefix over the maximum */
	ANSWER_WHOLE_THEN_CLOSE,/* a sign response, then close (idle close) */
};

/* The peer: it serves one connection per script entry, in order. */
struct peer {
	char dir[64];
	char path[128];
	int lfd;
	enum answer script[4];
	int n_script;
	int requests;		/* sign requests it read, whole and valid */
	pthread_t thread;
};

static int
read_exact(int fd, unsigned char *p, size_t n)
{
	ssize_t r;

	while (n > 0) {
		r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void
write_exact(int fd, const unsigned char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Reads one request frame; 0 and a checked sign request, or -1. */
static int
peer_read_request(struct peer *p, int fd)
{
	static unsigned char buf[CUSTODY_AGENT_FRAME_BUF];
	custody_agent_msg m;
	custody_err err;
	size_t total;

	if (read_exact(fd, buf, 4) != 0 ||
	    custody_agent_wire_frame_length(buf, &total, &err) != CUSTODY_OK ||
	    read_exact(fd, buf + 4, total - 4) != 0 ||
	    custody_agent_wire_decode(buf, total, &m, &err) != CUSTODY_OK)
		return -1;
	if (m.kind == CUSTODY_AGENT_SIGN_REQUEST &&
	    strcmp(m.u.sign_request.type, "WebServicesInternal") == 0 &&
	    m.u.sign_request.digest_len == 32)
		p->requests++;
	custody_agent_msg_clear(&m);
	return 0;
}

static size_t
peer_encode(enum answer a, unsigned char *buf)
{
	custody_agent_msg m;
	custody_err err;
	size_t len = 0;

	memset(&m, 0, sizeof(m));
	if (a == ANSWER_ERROR) {
		m.kind = CUSTODY_AGENT_ERROR;
		m.u.error.code = CUSTODY_ENOTFOUND;
		strcpy(m.u.error.message,
		       "nothing is assigned to type WebServicesInternal");
	} else if (a == ANSWER_WRONG_KIND) {
		m.kind = CUSTODY_AGENT_LIST_RESPONSE;
	} else {
		m.kind = CUSTODY_AGENT_SIGN_RESPONSE;
		strcpy(m.u.sign_response.identity, "global");
		m.u.sign_response.scheme = CUSTODY_AGENT_RSA_PKCS1;
		m.u.sign_response.signature_len = 256;
		memset(m.u.sign_response.signature, 0x5a, 256);
		strcpy(m.u.sign_response.thumbprint, TP);
	}
	cr_assert_eq(custody_agent_wire_encode(&m, buf, CUSTODY_AGENT_FRAME_BUF,
					       &len, &err), CUSTODY_OK,
		     "%s", err.msg);
	return len;
}

/* Waits for the client to close its end. */
static void
drain(int fd)
{
	unsigned char b[256];

	while (read(fd, b, sizeof(b)) > 0)
		;
}

static void
peer_answer(struct peer *p, int fd, enum answer a)
{
	static unsigned char buf[CUSTODY_AGENT_FRAME_BUF];
	static const unsigned char huge[4] = {0x7f, 0xff, 0xff, 0xff};
	size_t len, i;

	if (peer_read_request(p, fd) != 0)
		return;
	switch (a) {
	case ANSWER_CLOSE:
		return;
	case ANSWER_STALL:
		drain(fd);
		return;
	case ANSWER_HUGE:
		write_exact(fd, huge, sizeof(huge));
		drain(fd);
		return;
	default:
		break;
	}
	len = peer_encode(a, buf);
	if (a == ANSWER_HALF)
		len /= 2;
	if (a == ANSWER_BYTES)
		for (i = 0; i < len; i++)
			write_exact(fd, buf + i, 1);
	else
		write_exact(fd, buf, len);
	if (a == ANSWER_ERROR || a == ANSWER_WHOLE || a == ANSWER_BYTES) {
		/* The connection stays for the next request. */
		if (peer_read_request(p, fd) == 0) {
			len = peer_encode(ANSWER_WHOLE, buf);
			write_exact(fd, buf, len);
			drain(fd);
		}
	}
}

static void *
peer_main(void *arg)
{
	struct peer *p = arg;
	int i, fd;

	for (i = 0; i < p->n_script; i++) {
		fd = accept(p->lfd, NULL, NULL);
		if (fd < 0)
			break;
		peer_answer(p, fd, p->script[i]);
		close(fd);
	}
	return NULL;
}

static struct peer *
peer_start(int n, const enum answer *script)
{
	struct peer *p = calloc(1, sizeof(*p));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	cr_assert_not_null(p);
	strcpy(p->dir, "/tmp/custody-agent-client-XXXXXX");
	cr_assert_not_null(mkdtemp(p->dir));
	snprintf(p->path, sizeof(p->path), "%s/agent.sock", p->dir);
	strcpy(sa.sun_path, p->path);
	p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(p->lfd, 0);
	cr_assert_eq(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(p->lfd, 8), 0);
	memcpy(p->script, script, (size_t)n * sizeof(*script));
	p->n_script = n;
	cr_assert_eq(pthread_create(&p->thread, NULL, peer_main, p), 0);
	return p;
}

/* Joins the peer (the client has closed by now) and removes its files;
 * returns the number of sign requests it read. */
static int
peer_stop(struct peer *p)
{
	int requests;

	shutdown(p->lfd, SHUT_RDWR);
	pthread_join(p->thread, NULL);
	close(p->lfd);
	unlink(p->path);
	rmdir(p->dir);
	requests = p->requests;
	free(p);
	return requests;
}

static void
sign_request(custody_agent_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->kind = CUSTODY_AGENT_SIGN_REQUEST;
	strcpy(m->u.sign_request.type, "WebServicesInternal");
	m->u.sign_request.hash = CUSTODY_AGENT_SHA256;
	m->u.sign_request.digest_len = 32;
	memset(m->u.sign_request.digest, 0x11, 32);
}

/* One call on c: its status, the response checked when it is OK. */
static int
call(custody_agent_conn *c, custody_err *err)
{
	custody_agent_msg req, resp;
	int r;

	sign_request(&req);
	custody_err_clear(err);
	r = custody_agent_call(c, &req, &resp, err);
	if (r == CUSTODY_OK) {
		cr_assert_eq(resp.kind, CUSTODY_AGENT_SIGN_RESPONSE);
		cr_assert_eq(resp.u.sign_response.signature_len, 256);
		cr_assert_eq(resp.u.sign_response.signature[255], 0x5a);
		cr_assert_str_eq(resp.u.sign_response.thumbprint, TP);
		cr_assert_str_eq(resp.u.sign_response.identity, "global");
	} else {
		cr_assert_eq(resp.kind, 0, "a failed call leaves resp cleared");
	}
	custody_agent_msg_clear(&resp);
	return r;
}

static custody_agent_conn *
connect_ok(struct peer *p, int timeout_ms)
{
	custody_agent_conn *c = NULL;
	custody_err err;

	cr_assert_eq(custody_agent_connect(p->path, timeout_ms, &c, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_str_eq(custody_agent_conn_path(c), p->path);
	return c;
}

/* ---------------------------------------------------------------- tests */

Test(agent_client, whole_and_byte_by_byte_answers_on_one_connection)
{
	static const enum answer s[] = {ANSWER_BYTES};
	struct peer *p = peer_start(1, s);
	custody_agent_conn *c = connect_ok(p, 0);
	custody_err err;

	cr_assert_eq(call(c, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(call(c, &err), CUSTODY_OK, "%s", err.msg);
	custody_agent_close(c);
	cr_assert_eq(peer_stop(p), 2);
}

Test(agent_client, an_error_response_is_its_code_and_message)
{
	static const enum answer s[] = {ANSWER_ERROR};
	struct peer *p = peer_start(1, s);
	custody_agent_conn *c = connect_ok(p, 0);
	custody_err err;

	cr_assert_eq(call(c, &err), CUSTODY_ENOTFOUND);
	cr_assert_eq(err.code, CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "the custody agent: nothing is assigned to "
			 "type WebServicesInternal");
	/* An ERROR is an answer: the connection stays and serves on. */
	cr_assert_eq(call(c, &err), CUSTODY_OK, "%s", err.msg);
	custody_agent_close(c);
	peer_stop(p);
}

Test(agent_client, a_peer_that_closes_then_a_new_connection)
{
	static const enum answer s[] = {ANSWER_CLOSE, ANSWER_WHOLE};
	struct peer *p = peer_start(2, s);
	custody_agent_conn *c = connect_ok(p, 0);
	custody_err err;
	char want[512];

	cr_assert_eq(call(c, &err), CUSTODY_EFAIL);
	snprintf(want, sizeof(want), "the custody agent at %s closed the "
		 "connection without an answer", p->path);
	cr_assert_str_eq(err.msg, want);
	/* The next call connects again. */
	cr_assert_eq(call(c, &err), CUSTODY_OK, "%s", err.msg);
	custody_agent_close(c);
	/* Two requests: the one the peer dropped was not sent again. */
	cr_assert_eq(peer_stop(p), 2);
}

Test(agent_client, an_idle_connection_the_agent_closed_is_replaced_once)
{
	static const enum answer s[] = {ANSWER_WHOLE_THEN_CLOSE, ANSWER_WHOLE};
	struct peer *p = peer_start(2, s);
	custody_agent_conn *c = connect_ok(p, 0);
	custody_err err;

	cr_assert_eq(call(c, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(call(c, &err), CUSTODY_OK, "%s", err.msg);
	custody_agent_close(c);
	cr_assert_eq(peer_stop(p), 2);
}

Test(agent_client, a_stalled_peer_times_out)
{
	static const enum answer s[] = {ANSWER_STALL};
	struct peer *p = peer_start(1, s);
	custody_agent_conn *c = connect_ok(p, 200);
	custody_err err;
	char want[512];

	cr_assert_eq(call(c, &err), CUSTODY_EFAIL);
	snprintf(want, sizeof(want), "the custody agent at %s did not answer "
		 "within 200 ms", p->path);
	cr_assert_str_eq(err.msg, want);
	custody_agent_close(c);		/* releases the stalled peer */
	peer_stop(p);
}

Test(agent_client, a_response_of_the_wrong_kind)
{
	static const enum answer s[] = {ANSWER_WRONG_KIND};
	struct peer *p = peer_start(1, s);
	custody_agent_conn *c = connect_ok(p, 0);
	custody_err err;
	char want[512];

	cr_assert_eq(call(c, &err), CUSTODY_EFAIL);
	snprintf(want, sizeof(want), "the custody agent at %s answered a %s "
		 "with a %s", p->path,
		 custody_agent_kind_name(CUSTODY_AGENT_SIGN_REQUEST),
		 custody_agent_kind_name(CUSTODY_AGENT_LIST_RESPONSE));
	cr_assert_str_eq(err.msg, want);
	custody_agent_close(c);
	peer_stop(p);
}

Test(agent_client, half_a_response_then_close)
{
	static const enum answer s[] = {ANSWER_HALF};
	struct peer *p = peer_start(1, s);
	custody_agent_conn *c = connect_ok(p, 0);
	custody_err err;

	cr_assert_eq(call(c, &err), CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "closed the connection in the middle of a "
			 "response") != NULL, "%s", err.msg);
	custody_agent_close(c);
	peer_stop(p);
}

Test(agent_client, a_length_prefix_over_the_maximum)
{
	static const enum answer s[] = {ANSWER_HUGE};
	struct peer *p = peer_start(1, s);
	custody_agent_conn *c = connect_ok(p, 0);
	custody_err err;
	char want[512];

	cr_assert_eq(call(c, &err), CUSTODY_EFAIL);
	snprintf(want, sizeof(want), "the custody agent at %s: agent frame",
		 p->path);
	cr_assert(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
	custody_agent_close(c);
	peer_stop(p);
}

Test(agent_client, no_agent_there)
{
	custody_agent_conn *c = NULL;
	custody_err err;

	cr_assert_eq(custody_agent_connect("/nonexistent/agent.sock", 0, &c,
					   &err), CUSTODY_EFAIL);
	cr_assert_null(c);
	cr_assert_str_eq(err.msg, "cannot reach the custody agent at "
			 "/nonexistent/agent.sock: No such file or directory "
			 "(is `custody agent` running?)");
}

Test(agent_client, a_socket_this_user_may_not_use)
{
	static const enum answer s[] = {ANSWER_WHOLE};
	struct peer *p;
	custody_agent_conn *c = NULL;
	custody_err err;
	char want[512];

	if (geteuid() == 0)
		cr_skip_test("root may connect to any socket");
	p = peer_start(1, s);
	cr_assert_eq(chmod(p->path, 0), 0);
	cr_assert_eq(custody_agent_connect(p->path, 0, &c, &err),
		     CUSTODY_EFAIL);
	snprintf(want, sizeof(want), "cannot reach the custody agent at %s: "
		 "Permission denied (this user may not use the agent's "
		 "socket: see its socket-group)", p->path);
	cr_assert_str_eq(err.msg, want);
	peer_stop(p);
}

Test(agent_client, a_path_too_long_for_a_socket)
{
	custody_agent_conn *c = NULL;
	custody_err err;
	char path[200];

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	cr_assert_eq(custody_agent_connect(path, 0, &c, &err), CUSTODY_EUSAGE);
	cr_assert(strstr(err.msg, "the path is too long (199 bytes, at most "
			 "107)") != NULL, "%s", err.msg);
}
