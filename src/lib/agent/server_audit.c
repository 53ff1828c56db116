/*
 * agent/server_audit.c — refusals in the audit log, rate-limited so that
 * a client looping refused requests cannot flood it: at most one entry
 * per (uid, type) a minute, and CUSTODY_AGENT_AUDIT_BURST entries a
 * minute in all.  What is not written is counted, and the next entry
 * written says how many.  The log line of each refusal is the caller's
 * (custody/log.h, which the operator's journal rate-limits itself).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <custody/agent.h>
#include <custody/audit.h>
#include <custody/log.h>
#include <custody/signer.h>

#include "agent/server.h"

#define RECENT 256	/* (uid, type) pairs remembered */

struct recent {
	uid_t uid;
	char type[CUSTODY_NAME_MAX + 1];
	int64_t last;	/* when an entry was last written for it */
};

struct agent_audit {
	pthread_mutex_t mx;
	custody_ctx *ctx;	/* its store, its token for the tags */
	char node[CUSTODY_NAME_MAX + 1];
	struct recent recent[RECENT];
	size_t next;
	int64_t window;		/* the minute counted, its start */
	int in_window;
	unsigned long unwritten;
};

int
agent_audit_new(custody_ctx *ctx, struct agent_audit **out, custody_err *err)
{
	struct agent_audit *au = calloc(1, sizeof(*au));

	if (au == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "out of memory");
	au->ctx = ctx;
	pthread_mutex_init(&au->mx, NULL);
	snprintf(au->node, sizeof(au->node), "%s", custody_ctx_node(ctx));
	*out = au;
	return CUSTODY_OK;
}

void
agent_audit_free(struct agent_audit *au)
{
	if (au == NULL)
		return;
	if (au->unwritten > 0)
		custody_warn("agent: %lu refusals were not written to the audit log "
			     "(rate limit)", au->unwritten);
	pthread_mutex_destroy(&au->mx);
	free(au);
}

/* 1 when an entry may be written now for (uid, type); remembers it. */
static int
within_rate(struct agent_audit *au, uid_t uid, const char *type, int64_t now)
{
	size_t i;

	if (now - au->window >= 60) {
		au->window = now;
		au->in_window = 0;
	}
	if (au->in_window >= CUSTODY_AGENT_AUDIT_BURST)
		return 0;
	for (i = 0; i < RECENT; i++)
		if (au->recent[i].last != 0 && au->recent[i].uid == uid &&
		    strcmp(au->recent[i].type, type) == 0) {
			if (now - au->recent[i].last < 60)
				return 0;
			au->recent[i].last = now;
			au->in_window++;
			return 1;
		}
	au->recent[au->next].uid = uid;
	snprintf(au->recent[au->next].type, sizeof(au->recent[0].type), "%s", type);
	au->recent[au->next].last = now;
	au->next = (au->next + 1) % RECENT;
	au->in_window++;
	return 1;
}

void
agent_audit_refusal(struct agent_audit *au, const struct agent_peer *p, const char *user,
		    const char *type, const char *identity)
{
	custody_audit_entry draft;
	char detail[256];
	custody_err err;
	int64_t now = (int64_t)time(NULL);

	pthread_mutex_lock(&au->mx);
	if (!within_rate(au, p->uid, type, now)) {
		au->unwritten++;
		pthread_mutex_unlock(&au->mx);
		return;
	}
	memset(&draft, 0, sizeof(draft));
	snprintf(draft.node, sizeof(draft.node), "%s", au->node);
	snprintf(draft.actor, sizeof(draft.actor), "%s", user);
	snprintf(draft.action, sizeof(draft.action), "%s", CUSTODY_AUDIT_AGENT_REFUSED);
	snprintf(draft.type, sizeof(draft.type), "%s", type);
	snprintf(draft.identity, sizeof(draft.identity), "%s", identity);
	snprintf(detail, sizeof(detail), "uid %u gid %u pid %ld may not use the type "
		 "through the agent; %lu earlier refusals not written (rate limit)",
		 (unsigned)p->uid, (unsigned)p->gid, (long)p->pid, au->unwritten);
	draft.detail = detail;
	if (custody_ctx_audit_append(au->ctx, &draft, &err) == CUSTODY_OK)
		au->unwritten = 0;
	else
		custody_warn("agent: cannot write a refusal to the audit log: %s", err.msg);
	pthread_mutex_unlock(&au->mx);
}
