/*
 * agent/server_socket.c — the agent's listening sockets: those systemd
 * passes (socket activation, sd_listen_fds), else a Unix socket the agent
 * makes at its path, with its mode and group set before it listens (the
 * umask keeps it owner-only in between, so it is never wider).  A stale
 * socket file is removed only when nothing answers on it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "agent/server.h"

const char *
custody_agent_listen_path(const custody_config *cfg, const char *given)
{
	if (given != NULL && given[0] != '\0')
		return given;
	if (cfg != NULL && cfg->agent.listen[0] != '\0')
		return cfg->agent.listen;
	return CUSTODY_AGENT_LISTEN;
}

/* What sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) says. */
static int
is_listening_unix(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int type = 0, listening = 0;
	socklen_t ilen = sizeof(int);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ilen) != 0 || type != SOCK_STREAM)
		return 0;
	ilen = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen) != 0 || !listening)
		return 0;
	return getsockname(fd, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_UNIX;
}

static int
from_systemd(struct agent *a, custody_err *err)
{
	int n = agent_sd_listen_fds(), i, fd;

	if (n <= 0)
		return 0;
	if (n > AGENT_LISTEN_MAX) {
		custody_err_set(err, CUSTODY_EUSAGE, "systemd passed %d sockets: the agent "
				"takes at most %d", n, AGENT_LISTEN_MAX);
		return -1;
	}
	for (i = 0; i < n; i++) {
		fd = SD_LISTEN_FDS_START + i;
		if (!is_listening_unix(fd)) {
			custody_err_set(err, CUSTODY_EUSAGE, "systemd passed descriptor %d, "
					"not a listening Unix stream socket", fd);
			return -1;
		}
		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		a->listen[a->n_listen].kind = WATCH_LISTEN;
		a->listen[a->n_listen++].fd = fd;
	}
	a->from_systemd = 1;
	return n;
}

/* A socket file at path that nothing answers on is removed; one that
 * answers is another agent (EFAIL); anything else there is left alone. */
static int
clear_stale(const char *path, const struct sockaddr_un *sun, custody_err *err)
{
	struct stat st;
	int fd, answered;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? CUSTODY_OK :
		       custody_err_set(err, CUSTODY_EFAIL, "cannot use %s: %s", path,
				       strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return custody_err_set(err, CUSTODY_EFAIL, "cannot listen on %s: it exists "
				       "and is not a socket", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return custody_err_set(err, CUSTODY_EFAIL, "socket: %s", strerror(errno));
	answered = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	if (answered)
		return custody_err_set(err, CUSTODY_EFAIL, "another agent answers on %s",
				       path);
	if (unlink(path) != 0 && errno != ENOENT)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot remove the stale socket "
				       "%s: %s", path, strerror(errno));
	return CUSTODY_OK;
}

static int
socket_group(const struct agent *a, gid_t *gid, custody_err *err)
{
	char buf[16384];
	struct group gr, *grp = NULL;
	const char *name = a->cfg.agent.socket_group;

	*gid = (gid_t)-1;
	if (name[0] == '\0')
		return CUSTODY_OK;
	if (getgrnam_r(name, &gr, buf, sizeof(buf), &grp) != 0 || grp == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE, "[agent] socket-group: no group "
				       "named '%s' on this system", name);
	*gid = grp->gr_gid;
	return CUSTODY_OK;
}

/* bind, chown, chmod, listen: the file is 0600 until its group and mode
 * are set. */
static int
make_socket(struct agent *a, const char *path, const struct sockaddr_un *sun, gid_t gid,
	    mode_t mode, custody_err *err)
{
	struct stat st;
	mode_t old;
	int fd, r;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return custody_err_set(err, CUSTODY_EFAIL, "socket: %s", strerror(errno));
	old = umask(0177);
	r = bind(fd, (const struct sockaddr *)sun, sizeof(*sun));
	umask(old);
	if (r != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL, "cannot listen on %s: %s", path,
				    strerror(errno));
		close(fd);
		return r;
	}
	if ((gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) != 0) || chmod(path, mode) != 0 ||
	    lstat(path, &st) != 0 || listen(fd, 128) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL, "cannot set up the socket %s: %s", path,
				    strerror(errno));
		close(fd);
		unlink(path);
		return r;
	}
	snprintf(a->path, sizeof(a->path), "%s", path);
	a->path_dev = st.st_dev;
	a->path_ino = st.st_ino;
	a->listen[0].kind = WATCH_LISTEN;
	a->listen[0].fd = fd;
	a->n_listen = 1;
	return CUSTODY_OK;
}

int
agent_sockets_open(struct agent *a, custody_err *err)
{
	const char *path = custody_agent_listen_path(&a->cfg, a->opts.listen);
	struct sockaddr_un sun;
	mode_t mode;
	gid_t gid;
	int r, n;

	/* A --listen given on the command line wins over systemd's. */
	if (a->opts.listen == NULL && (n = from_systemd(a, err)) != 0)
		return n < 0 ? err->code : CUSTODY_OK;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (path[0] != '/' || strlen(path) >= sizeof(sun.sun_path))
		return custody_err_set(err, CUSTODY_EUSAGE, "invalid socket path '%s': an "
				       "absolute path of at most %zu bytes", path,
				       sizeof(sun.sun_path) - 1);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	mode = (mode_t)(a->cfg.agent.socket_mode >= 0 ? a->cfg.agent.socket_mode
						      : CUSTODY_AGENT_SOCKET_MODE);
	if ((r = socket_group(a, &gid, err)) != CUSTODY_OK ||
	    (r = clear_stale(path, &sun, err)) != CUSTODY_OK)
		return r;
	return make_socket(a, path, &sun, gid, mode, err);
}

void
agent_sockets_close(struct agent *a)
{
	struct stat st;
	size_t i;

	for (i = 0; i < a->n_listen; i++)
		close(a->listen[i].fd);
	a->n_listen = 0;
	/* Only the socket this agent made (a new agent may have taken the
	 * path meanwhile). */
	if (a->path[0] != '\0' && lstat(a->path, &st) == 0 && st.st_dev == a->path_dev &&
	    st.st_ino == a->path_ino)
		unlink(a->path);
	a->path[0] = '\0';
}
