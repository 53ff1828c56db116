/* test_resolve.c — the one resolver of what applies on this node: which
 * assignment (this node's, else the global one), what is current in it
 * at a time, this node's name, the config file and the store URL. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <custody/assign.h>
#include <custody/config.h>
#include <custody/error.h>

#define A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
#define NOW ((int64_t)1767225600)	/* 2026-01-01T00:00:00Z */
#define HOUR ((int64_t)3600)

/* ---------------------------------------------------- a store in memory */

struct fake_store {
	custody_assignment rows[4];
	size_t n_rows;
	const char *failing;	/* reading this identity fails (EFAIL) */
	char reads[4][CUSTODY_NAME_MAX + 1];	/* identities read, in order */
	size_t n_reads;
};

static void
add_row(struct fake_store *st, const char *identity, const char *current,
	const char *pending, int64_t pending_at)
{
	custody_assignment *a = &st->rows[st->n_rows++];

	memset(a, 0, sizeof(*a));
	snprintf(a->type, sizeof(a->type), "Default");
	snprintf(a->identity, sizeof(a->identity), "%s", identity);
	if (current != NULL) {
		snprintf(a->current.thumbprint, sizeof(a->current.thumbprint),
			 "%s", current);
		a->current.effective = NOW - HOUR;
	}
	if (pending != NULL) {
		snprintf(a->pending.thumbprint, sizeof(a->pending.thumbprint),
			 "%s", pending);
		a->pending.effective = pending_at;
	}
}

static int
fake_read(void *source, const char *type, const char *identity,
	  custody_assignment *out, custody_err *err)
{
	struct fake_store *st = source;
	size_t i;

	cr_assert_lt(st->n_reads, 4, "read more than four times");
	snprintf(st->reads[st->n_reads++], CUSTODY_NAME_MAX + 1, "%s", identity);
	if (st->failing != NULL && strcmp(identity, st->failing) == 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "integrity tag of %s does not hold",
				       identity);
	for (i = 0; i < st->n_rows; i++) {
		if (strcmp(st->rows[i].type, type) == 0 &&
		    strcmp(st->rows[i].identity, identity) == 0) {
			*out = st->rows[i];
			return CUSTODY_OK;
		}
	}
	return custody_err_set(err, CUSTODY_ENOTFOUND, "not in the fake store");
}

static void
assert_reads(const struct fake_store *st, const char *first,
	     const char *second)
{
	cr_assert_eq(st->n_reads, second != NULL ? 2u : 1u, "%zu reads",
		     st->n_reads);
	cr_assert_str_eq(st->reads[0], first);
	if (second != NULL)
		cr_assert_str_eq(st->reads[1], second);
}

/* ------------------------------------------------------- which record */

Test(lookup, this_nodes_assignment_wins_over_the_global_one)
{
	struct fake_store st = {0};
	custody_assignment a;
	custody_err err = {0};

	add_row(&st, CUSTODY_SCOPE_GLOBAL, A, NULL, 0);
	add_row(&st, "node1", B, NULL, 0);
	cr_assert_eq(custody_assign_lookup("Default", NULL, "node1", fake_read,
					   &st, &a, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_str_eq(a.identity, "node1");
	cr_assert_str_eq(a.current.thumbprint, B);
	assert_reads(&st, "node1", NULL);
}

Test(lookup, without_one_at_this_node_the_global_one_applies)
{
	struct fake_store st = {0};
	custody_assignment a;
	custody_err err = {0};

	add_row(&st, CUSTODY_SCOPE_GLOBAL, A, NULL, 0);
	add_row(&st, "node2", B, NULL, 0);
	cr_assert_eq(custody_assign_lookup("Default", "", "node1", fake_read,
					   &st, &a, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_str_eq(a.identity, "global");
	cr_assert_str_eq(a.current.thumbprint, A);
	assert_reads(&st, "node1", "global");
}

Test(lookup, a_node_record_with_nothing_current_yet_still_applies)
{
	struct fake_store st = {0};
	custody_assignment a, now;
	custody_err err = {0};

	/* Only a roll staged at this node: it applies, not the global one
	 * (before its instant nothing is current here). */
	add_row(&st, CUSTODY_SCOPE_GLOBAL, A, NULL, 0);
	add_row(&st, "node1", NULL, B, NOW + HOUR);
	cr_assert_eq(custody_assign_lookup("Default", NULL, "node1", fake_read,
					   &st, &a, &err), CUSTODY_OK);
	cr_assert_str_eq(a.identity, "node1");
	assert_reads(&st, "node1", NULL);
	cr_assert_eq(custody_assign_current_at(&a, NOW, &now, &err),
		     CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no certificate is assigned for type Default "
			 "(identity node1)");
	cr_assert_eq(custody_assign_current_at(&a, NOW + HOUR, &now, &err),
		     CUSTODY_OK);
	cr_assert_str_eq(now.current.thumbprint, B);
	cr_assert_eq(now.current.effective, NOW + HOUR);
}

Test(lookup, a_given_identity_is_the_only_one_read)
{
	struct fake_store st = {0};
	custody_assignment a;
	custody_err err = {0};

	add_row(&st, CUSTODY_SCOPE_GLOBAL, A, NULL, 0);
	cr_assert_eq(custody_assign_lookup("Default", "node2", "node1",
					   fake_read, &st, &a, &err),
		     CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no certificate is assigned for type Default "
			 "(identity node2)");
	assert_reads(&st, "node2", NULL);
	cr_assert_str_eq(a.type, "Default");
	cr_assert_str_eq(a.identity, "node2");
	cr_assert(custody_assign_is_empty(&a));

	st.n_reads = 0;
	cr_assert_eq(custody_assign_lookup("Default", CUSTODY_SCOPE_GLOBAL,
					   "node1", fake_read, &st, &a, &err),
		     CUSTODY_OK);
	cr_assert_str_eq(a.current.thumbprint, A);
	assert_reads(&st, "global", NULL);
}

Test(lookup, nothing_anywhere_names_the_global_identity_last_looked_at)
{
	struct fake_store st = {0};
	custody_assignment a;
	custody_err err = {0};

	add_row(&st, "node2", A, NULL, 0);
	cr_assert_eq(custody_assign_lookup("Default", NULL, "node1", fake_read,
					   &st, &a, &err), CUSTODY_ENOTFOUND);
	cr_assert_eq(err.code, CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no certificate is assigned for type Default "
			 "(identity global)");
	assert_reads(&st, "node1", "global");
	/* An empty record of what was looked at last, for a signer that
	 * remembers the assignment is gone. */
	cr_assert_str_eq(a.type, "Default");
	cr_assert_str_eq(a.identity, "global");
	cr_assert(custody_assign_is_empty(&a));
	cr_assert_eq(a.version, 0);
}

Test(lookup, a_record_that_cannot_be_read_is_not_passed_over)
{
	struct fake_store st = {0};
	custody_assignment a;
	custody_err err = {0};

	add_row(&st, CUSTODY_SCOPE_GLOBAL, A, NULL, 0);
	add_row(&st, "node1", B, NULL, 0);
	st.failing = "node1";
	cr_assert_eq(custody_assign_lookup("Default", NULL, "node1", fake_read,
					   &st, &a, &err), CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "integrity tag of node1 does not hold");
	assert_reads(&st, "node1", NULL);
}

Test(lookup, a_node_named_global_or_no_node_reads_global_once)
{
	struct fake_store st = {0};
	custody_assignment a;
	custody_err err = {0};

	add_row(&st, CUSTODY_SCOPE_GLOBAL, A, NULL, 0);
	cr_assert_eq(custody_assign_lookup("Default", NULL, CUSTODY_SCOPE_GLOBAL,
					   fake_read, &st, &a, &err),
		     CUSTODY_OK);
	assert_reads(&st, "global", NULL);
	st.n_reads = 0;
	cr_assert_eq(custody_assign_lookup("Default", NULL, NULL, fake_read,
					   &st, &a, &err), CUSTODY_OK);
	assert_reads(&st, "global", NULL);
}

/* ------------------------------------------------- what is current at t */

Test(current_at, a_due_roll_is_current)
{
	struct fake_store st = {0};
	custody_assignment now;
	custody_err err = {0};

	add_row(&st, CUSTODY_SCOPE_GLOBAL, A, B, NOW);
	cr_assert_eq(custody_assign_current_at(&st.rows[0], NOW - 1, &now,
					       &err), CUSTODY_OK);
	cr_assert_str_eq(now.current.thumbprint, A);
	cr_assert_str_eq(now.pending.thumbprint, B);
	cr_assert_eq(custody_assign_current_at(&st.rows[0], NOW, &now, &err),
		     CUSTODY_OK);
	cr_assert_str_eq(now.current.thumbprint, B);
	cr_assert_str_eq(now.previous.thumbprint, A);
	cr_assert_str_empty(now.pending.thumbprint);
}

Test(current_at, nothing_current_names_the_type_and_identity)
{
	struct fake_store st = {0};
	custody_assignment now;
	custody_err err = {0};

	add_row(&st, CUSTODY_SCOPE_GLOBAL, NULL, NULL, 0);
	cr_assert_eq(custody_assign_current_at(&st.rows[0], NOW, &now, &err),
		     CUSTODY_ENOTFOUND);
	cr_assert_eq(err.code, CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no certificate is assigned for type Default "
			 "(identity global)");
}

/* --------------------------------------------------------- node name */

Test(node_name, the_configured_name_is_taken_canonical)
{
	char node[CUSTODY_NAME_MAX + 1];
	custody_err err = {0};

	cr_assert_eq(custody_config_node_name("node-7.a_b", node, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_str_eq(node, "node-7.a_b");
	cr_assert_eq(custody_config_node_name("GLOBAL", node, &err),
		     CUSTODY_OK);
	cr_assert_str_eq(node, "global");
}

Test(node_name, a_bad_configured_name_is_refused_naming_it)
{
	char node[CUSTODY_NAME_MAX + 1];
	custody_err err = {0};

	cr_assert_eq(custody_config_node_name("no body", node, &err),
		     CUSTODY_EUSAGE);
	cr_assert_eq(strncmp(err.msg, "node name: invalid identity 'no body'",
			     strlen("node name: invalid identity 'no body'")),
		     0, "%s", err.msg);
	cr_assert_eq(custody_config_node_name("no body", node, NULL),
		     CUSTODY_EUSAGE);
}

Test(node_name, without_one_the_host_name_up_to_its_first_dot)
{
	char node[CUSTODY_NAME_MAX + 1], host[256], want[256], *dot;
	custody_err err = {0};

	cr_assert_eq(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	snprintf(want, sizeof(want), "%s", host);
	if ((dot = strchr(want, '.')) != NULL)
		*dot = '\0';
	cr_assert_eq(custody_config_node_name(NULL, node, &err), CUSTODY_OK);
	if (strlen(want) <= CUSTODY_NAME_MAX && want[0] != '\0')
		cr_assert_str_eq(node, want);
	else
		cr_assert_str_eq(node, "localhost");
}

/* ------------------------------------------------ config file and store */

static char dir[64];
static char conf[128];

static void
make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/custody-test-resolve-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s/custody.conf", dir);
	unsetenv("CUSTODY_CONFIG");
	unsetenv("CUSTODY_STORE");
	unsetenv("CUSTODY_NODE");
}

static void
remove_dir(void)
{
	unlink(conf);
	rmdir(dir);
}

TestSuite(settle, .init = make_dir, .fini = remove_dir);

static void
write_conf(const char *text)
{
	FILE *f = fopen(conf, "w");

	cr_assert_not_null(f);
	cr_assert_geq(fputs(text, f), 0);
	cr_assert_eq(fclose(f), 0);
}

Test(settle, the_path_given_then_the_environment_then_the_default)
{
	const char *fallback = access(CUSTODY_DEFAULT_CONFIG, F_OK) == 0
				       ? CUSTODY_DEFAULT_CONFIG : NULL;

	cr_assert_str_eq(custody_config_path("/x/given.conf"), "/x/given.conf");
	cr_assert_null(custody_config_path(""), "\"\" is none");
	cr_assert_eq(custody_config_path(NULL), fallback);
	setenv("CUSTODY_CONFIG", "/x/env.conf", 1);
	cr_assert_str_eq(custody_config_path(NULL), "/x/env.conf");
	cr_assert_str_eq(custody_config_path("/x/given.conf"), "/x/given.conf");
	setenv("CUSTODY_CONFIG", "", 1);
	cr_assert_null(custody_config_path(NULL), "an empty CUSTODY_CONFIG is none");
}

Test(settle, the_file_then_the_environment_over_it)
{
	custody_config cfg;
	custody_err err = {0};

	write_conf("[store]\nurl = sqlite:/x/file.db\n[node]\nname = node1\n");
	custody_config_init(&cfg);
	setenv("CUSTODY_STORE", "sqlite:/x/env.db", 1);
	cr_assert_eq(custody_config_settle(&cfg, conf, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_str_eq(custody_config_store_url(&cfg), "sqlite:/x/env.db");
	cr_assert_str_eq(cfg.node_name, "node1");
	custody_config_clear(&cfg);

	setenv("CUSTODY_CONFIG", conf, 1);
	unsetenv("CUSTODY_STORE");
	custody_config_init(&cfg);
	cr_assert_eq(custody_config_settle(&cfg, NULL, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_str_eq(custody_config_store_url(&cfg), "sqlite:/x/file.db");
	custody_config_clear(&cfg);
}

Test(settle, no_file_leaves_the_defaults_and_a_missing_one_is_an_error)
{
	custody_config cfg;
	custody_err err = {0};

	custody_config_init(&cfg);
	cr_assert_eq(custody_config_settle(&cfg, "", &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_str_eq(custody_config_store_url(&cfg), CUSTODY_DEFAULT_STORE);
	cr_assert_null(cfg.node_name);
	cr_assert_neq(custody_config_settle(&cfg, "/nonexistent/custody.conf",
					    &err), CUSTODY_OK);
	custody_config_clear(&cfg);
}
