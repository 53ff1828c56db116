/* test_resolve.c — the one resolver of what applies on this node: which
 * assignment (this node's, else the global one) and what is current in
 * it at a time.  (This node's name and the config file: test_config.c.) */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <custody/assign.h>
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

/* What each test works with (every test runs in a process of its own). */
static struct fake_store st;
static custody_assignment a;
static custody_err err;

/* A row of type Default in st: current since an hour before NOW, and a
 * roll to pending at pending_at (NULL: an empty slot). */
static custody_assignment *
add_row(const char *identity, const char *current, const char *pending,
	int64_t pending_at)
{
	custody_assignment *row = &st.rows[st.n_rows++];

	memset(row, 0, sizeof(*row));
	snprintf(row->type, sizeof(row->type), "Default");
	snprintf(row->identity, sizeof(row->identity), "%s", identity);
	if (current != NULL) {
		snprintf(row->current.thumbprint,
			 sizeof(row->current.thumbprint), "%s", current);
		row->current.effective = NOW - HOUR;
	}
	if (pending != NULL) {
		snprintf(row->pending.thumbprint,
			 sizeof(row->pending.thumbprint), "%s", pending);
		row->pending.effective = pending_at;
	}
	return row;
}

/* The reader of custody_assign_lookup over a fake_store. */
static int
fake_read(void *source, const char *type, const char *identity,
	  custody_assignment *out, custody_err *e)
{
	struct fake_store *store = source;
	size_t i;

	cr_assert_lt(store->n_reads, 4, "read more than four times");
	snprintf(store->reads[store->n_reads++], CUSTODY_NAME_MAX + 1, "%s",
		 identity);
	if (store->failing != NULL && strcmp(identity, store->failing) == 0)
		return custody_err_set(e, CUSTODY_EFAIL,
				       "integrity tag of %s does not hold",
				       identity);
	for (i = 0; i < store->n_rows; i++) {
		if (strcmp(store->rows[i].type, type) == 0 &&
		    strcmp(store->rows[i].identity, identity) == 0) {
			*out = store->rows[i];
			return CUSTODY_OK;
		}
	}
	return custody_err_set(e, CUSTODY_ENOTFOUND, "not in the fake store");
}

/* custody_assign_lookup of type Default in st into a, its reads counted
 * anew. */
static int
lookup(const char *identity, const char *node)
{
	st.n_reads = 0;
	return custody_assign_lookup("Default", identity, node, fake_read, &st,
				     &a, &err);
}

/* The last lookup read first, then second (NULL: nothing more). */
static void
assert_reads(const char *first, const char *second)
{
	cr_assert_eq(st.n_reads, second != NULL ? 2u : 1u, "%zu reads",
		     st.n_reads);
	cr_assert_str_eq(st.reads[0], first);
	if (second != NULL)
		cr_assert_str_eq(st.reads[1], second);
}

/* ------------------------------------------------------- which record */

Test(lookup, this_nodes_assignment_wins_over_the_global_one)
{
	add_row(CUSTODY_SCOPE_GLOBAL, A, NULL, 0);
	add_row("node1", B, NULL, 0);
	cr_assert_eq(lookup(NULL, "node1"), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_str_eq(a.identity, "node1");
	cr_assert_str_eq(a.current.thumbprint, B);
	assert_reads("node1", NULL);
}

Test(lookup, without_one_at_this_node_the_global_one_applies)
{
	add_row(CUSTODY_SCOPE_GLOBAL, A, NULL, 0);
	add_row("node2", B, NULL, 0);
	cr_assert_eq(lookup("", "node1"), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_str_eq(a.identity, "global");
	cr_assert_str_eq(a.current.thumbprint, A);
	assert_reads("node1", "global");
}

Test(lookup, a_node_record_with_nothing_current_yet_still_applies)
{
	custody_assignment now;

	/* Only a roll staged at this node: it applies, not the global one
	 * (before its instant nothing is current here). */
	add_row(CUSTODY_SCOPE_GLOBAL, A, NULL, 0);
	add_row("node1", NULL, B, NOW + HOUR);
	cr_assert_eq(lookup(NULL, "node1"), CUSTODY_OK);
	cr_assert_str_eq(a.identity, "node1");
	assert_reads("node1", NULL);
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
	add_row(CUSTODY_SCOPE_GLOBAL, A, NULL, 0);
	cr_assert_eq(lookup("node2", "node1"), CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no certificate is assigned for type Default "
			 "(identity node2)");
	assert_reads("node2", NULL);
	cr_assert_str_eq(a.type, "Default");
	cr_assert_str_eq(a.identity, "node2");
	cr_assert(custody_assign_is_empty(&a));

	cr_assert_eq(lookup(CUSTODY_SCOPE_GLOBAL, "node1"), CUSTODY_OK);
	cr_assert_str_eq(a.current.thumbprint, A);
	assert_reads("global", NULL);
}

Test(lookup, nothing_anywhere_names_the_global_identity_last_looked_at)
{
	add_row("node2", A, NULL, 0);
	cr_assert_eq(lookup(NULL, "node1"), CUSTODY_ENOTFOUND);
	cr_assert_eq(err.code, CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no certificate is assigned for type Default "
			 "(identity global)");
	assert_reads("node1", "global");
	/* An empty record of what was looked at last, for a signer that
	 * remembers the assignment is gone. */
	cr_assert_str_eq(a.type, "Default");
	cr_assert_str_eq(a.identity, "global");
	cr_assert(custody_assign_is_empty(&a));
	cr_assert_eq(a.version, 0);
}

Test(lookup, a_record_that_cannot_be_read_is_not_passed_over)
{
	add_row(CUSTODY_SCOPE_GLOBAL, A, NULL, 0);
	add_row("node1", B, NULL, 0);
	st.failing = "node1";
	cr_assert_eq(lookup(NULL, "node1"), CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "integrity tag of node1 does not hold");
	assert_reads("node1", NULL);
}

Test(lookup, a_node_named_global_or_no_node_reads_global_once)
{
	add_row(CUSTODY_SCOPE_GLOBAL, A, NULL, 0);
	cr_assert_eq(lookup(NULL, CUSTODY_SCOPE_GLOBAL), CUSTODY_OK);
	assert_reads("global", NULL);
	cr_assert_eq(lookup(NULL, NULL), CUSTODY_OK);
	assert_reads("global", NULL);
}

/* ------------------------------------------------- what is current at t */

Test(current_at, a_due_roll_is_current)
{
	custody_assignment now;

	add_row(CUSTODY_SCOPE_GLOBAL, A, B, NOW);
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
	custody_assignment now;

	add_row(CUSTODY_SCOPE_GLOBAL, NULL, NULL, 0);
	cr_assert_eq(custody_assign_current_at(&st.rows[0], NOW, &now, &err),
		     CUSTODY_ENOTFOUND);
	cr_assert_eq(err.code, CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no certificate is assigned for type Default "
			 "(identity global)");
}

/* One rule for a node's name, for the store, the token and the cluster. */
Test(node_name, one_to_64_of_letters_digits_dot_underscore_hyphen)
{
	char longest[CUSTODY_NAME_MAX + 2];

	cr_assert(custody_node_name_valid("node1"));
	cr_assert(custody_node_name_valid("Fe01.pool_a-2"));
	memset(longest, 'n', CUSTODY_NAME_MAX);
	longest[CUSTODY_NAME_MAX] = '\0';
	cr_assert(custody_node_name_valid(longest));
	longest[CUSTODY_NAME_MAX] = 'n';
	longest[CUSTODY_NAME_MAX + 1] = '\0';
	cr_assert_not(custody_node_name_valid(longest), "65 characters");
	cr_assert_not(custody_node_name_valid(""));
	cr_assert_not(custody_node_name_valid(NULL));
	cr_assert_not(custody_node_name_valid("node 1"));
	cr_assert_not(custody_node_name_valid("node/1"));
	cr_assert_not(custody_node_name_valid("n\xc3\xb6de"));
}
