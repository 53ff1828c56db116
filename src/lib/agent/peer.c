/*
 * agent/peer.c — who a connection's client is: SO_PEERCRED (pid, uid,
 * gid at connect) and SO_PEERGROUPS (its supplementary groups then).
 */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "agent/server.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

_Static_assert(sizeof(uid_t) == sizeof(unsigned) && sizeof(gid_t) == sizeof(unsigned),
	       "ids are unsigned int");

static int
read_groups(int fd, struct agent_peer *p, custody_err *err)
{
	socklen_t len = 32 * sizeof(gid_t);
	gid_t *groups = NULL;
	int tries;

	/* ERANGE says how much is needed; the groups may not change (they
	 * are the client's at connect), so the second try fits. */
	for (tries = 0; tries < 2; tries++) {
		free(groups);
		if ((groups = malloc(len > 0 ? len : sizeof(gid_t))) == NULL)
			return custody_err_set(err, CUSTODY_EFAIL, "out of memory");
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
			p->groups = groups;
			p->n_groups = len / sizeof(gid_t);
			return CUSTODY_OK;
		}
		if (errno != ERANGE)
			break;
	}
	free(groups);
	return custody_err_set(err, CUSTODY_EFAIL, "cannot read the client's groups: %s",
			       strerror(errno));
}

int
agent_peer_read(int fd, struct agent_peer *p, custody_err *err)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	memset(p, 0, sizeof(*p));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred))
		return custody_err_set(err, CUSTODY_EFAIL, "cannot read the client's "
				       "credentials: %s", strerror(errno));
	p->pid = cred.pid;
	p->uid = cred.uid;
	p->gid = cred.gid;
	return read_groups(fd, p, err);
}

void
agent_peer_clear(struct agent_peer *p)
{
	free(p->groups);
	memset(p, 0, sizeof(*p));
}

void
agent_peer_user(uid_t uid, char *out, size_t size)
{
	char buf[16384];
	struct passwd pw, *pwp = NULL;

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &pwp) == 0 && pwp != NULL)
		snprintf(out, size, "%s", pwp->pw_name);
	else
		snprintf(out, size, "uid %u", (unsigned)uid);
}
