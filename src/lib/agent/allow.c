/*
 * agent/allow.c — [allow TYPE] users and groups, resolved to ids when the
 * configuration is loaded, and the check of a peer against them.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <custody/log.h>

#include "agent/server.h"

#define NAME_SEPARATORS ", \t"

/* getpwnam_r / getgrnam_r: 1 found (id in *id), 0 not found. */
static int
lookup_id(const char *name, int group, unsigned *id)
{
	char buf[16384];
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;

	if (group) {
		if (getgrnam_r(name, &gr, buf, sizeof(buf), &grp) != 0 || grp == NULL)
			return 0;
		*id = (unsigned)grp->gr_gid;
	} else {
		if (getpwnam_r(name, &pw, buf, sizeof(buf), &pwp) != 0 || pwp == NULL)
			return 0;
		*id = (unsigned)pwp->pw_uid;
	}
	return 1;
}

/* The ids of the names in text into a malloc'ed array (uid_t and gid_t
 * are both unsigned int on Linux). */
static int
resolve_names(const custody_allow_policy *p, int group, int strict,
	      unsigned **ids, size_t *n, custody_err *err)
{
	const char *text = group ? p->groups : p->users, *s = text;
	char name[256];
	unsigned *grown;
	size_t len;
	unsigned id;

	*ids = NULL;
	*n = 0;
	while (*(s += strspn(s, NAME_SEPARATORS)) != '\0') {
		len = strcspn(s, NAME_SEPARATORS);
		snprintf(name, sizeof(name), "%.*s", (int)(len < sizeof(name) ? len : sizeof(name) - 1), s);
		s += len;
		if (!lookup_id(name, group, &id)) {
			if (strict) {
				custody_err_set(err, CUSTODY_EUSAGE, "[allow %s] %s: no %s "
						"named '%s' on this system", p->type,
						group ? "groups" : "users",
						group ? "group" : "user", name);
				return custody_err_hint(err, "make the %s, or take it out of "
							"[allow %s] in the configuration",
							group ? "group" : "user", p->type);
			}
			custody_warn("[allow %s] %s: no %s named '%s': left out", p->type,
				     group ? "groups" : "users", group ? "group" : "user", name);
			continue;
		}
		if ((grown = realloc(*ids, (*n + 1) * sizeof(**ids))) == NULL)
			return custody_err_set(err, CUSTODY_EFAIL, "out of memory");
		*ids = grown;
		(*ids)[(*n)++] = id;
	}
	return CUSTODY_OK;
}

void
agent_allow_free(struct agent_allow *a)
{
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < a->n; i++) {
		free(a->types[i].uids);
		free(a->types[i].gids);
	}
	free(a->types);
	free(a);
}

int
agent_allow_build(const custody_config *cfg, int strict, struct agent_allow **out,
		  custody_err *err)
{
	struct agent_allow *a = calloc(1, sizeof(*a));
	struct agent_allow_type *t;
	size_t i;
	int r = CUSTODY_OK;

	*out = NULL;
	if (a == NULL || (cfg->n_allow > 0 &&
			  (a->types = calloc(cfg->n_allow, sizeof(*a->types))) == NULL)) {
		agent_allow_free(a);
		return custody_err_set(err, CUSTODY_EFAIL, "out of memory");
	}
	for (i = 0; i < cfg->n_allow && r == CUSTODY_OK; i++) {
		t = &a->types[a->n++];
		memcpy(t->type, cfg->allow[i].type, sizeof(t->type));
		r = resolve_names(&cfg->allow[i], 0, strict, (unsigned **)&t->uids, &t->n_uids, err);
		if (r == CUSTODY_OK)
			r = resolve_names(&cfg->allow[i], 1, strict, (unsigned **)&t->gids,
					  &t->n_gids, err);
	}
	if (r != CUSTODY_OK) {
		agent_allow_free(a);
		return r;
	}
	*out = a;
	return CUSTODY_OK;
}

static int
has_gid(const struct agent_allow_type *t, gid_t gid)
{
	size_t i;

	for (i = 0; i < t->n_gids; i++)
		if (t->gids[i] == gid)
			return 1;
	return 0;
}

int
agent_allow_permits(const struct agent_allow *a, const char *type,
		    const struct agent_peer *p)
{
	const struct agent_allow_type *t = NULL;
	size_t i;

	for (i = 0; a != NULL && i < a->n; i++)
		if (strcmp(a->types[i].type, type) == 0) {
			t = &a->types[i];
			break;
		}
	if (t == NULL)
		return 0;
	for (i = 0; i < t->n_uids; i++)
		if (t->uids[i] == p->uid)
			return 1;
	if (has_gid(t, p->gid))
		return 1;
	for (i = 0; i < p->n_groups; i++)
		if (has_gid(t, p->groups[i]))
			return 1;
	return 0;
}
