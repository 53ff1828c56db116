/* test_assign.c — the assignment state machine: every transition of
 * set / roll / remove / resolve, and what a refused one leaves behind. */
#include "config.h"

#include <string.h>

#include <criterion/criterion.h>

#include <custody/assign.h>
#include <custody/error.h>

#define A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
#define C "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
#define D "DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD"

#define NOW ((int64_t)1767225600)	/* 2026-01-01T00:00:00Z */
#define HOUR ((int64_t)3600)
#define DAY (24 * HOUR)

static custody_assignment
make(const char *current, int64_t cur_eff, const char *previous,
     int64_t prev_eff, const char *pending, int64_t pend_eff)
{
	custody_assignment a;

	memset(&a, 0, sizeof(a));
	strcpy(a.type, "OAuthTokenIssuer");
	strcpy(a.identity, "global");
	a.version = 7;
	if (current != NULL) {
		strcpy(a.current.thumbprint, current);
		a.current.effective = cur_eff;
	}
	if (previous != NULL) {
		strcpy(a.previous.thumbprint, previous);
		a.previous.effective = prev_eff;
	}
	if (pending != NULL) {
		strcpy(a.pending.thumbprint, pending);
		a.pending.effective = pend_eff;
	}
	return a;
}

static void
assert_slot(const custody_slot *s, const char *thumbprint, int64_t effective)
{
	if (thumbprint == NULL) {
		cr_assert_str_empty(s->thumbprint);
		cr_assert_eq(s->effective, 0);
	} else {
		cr_assert_str_eq(s->thumbprint, thumbprint);
		cr_assert_eq(s->effective, effective, "effective %lld, want %lld",
			     (long long)s->effective, (long long)effective);
	}
}

static void
assert_same(const custody_assignment *x, const custody_assignment *y)
{
	cr_assert_eq(memcmp(x, y, sizeof(*x)), 0, "the record changed");
}

static void
assert_names_kept(const custody_assignment *a)
{
	cr_assert_str_eq(a->type, "OAuthTokenIssuer");
	cr_assert_str_eq(a->identity, "global");
	cr_assert_eq(a->version, 7);
}

/* ---------------------------------------------------------------- set */

Test(assign_set, on_empty_becomes_current)
{
	custody_assignment in = make(NULL, 0, NULL, 0, NULL, 0), out;
	custody_assign_outcome oc;
	custody_err err;

	cr_assert_eq(custody_assign_set(&in, A, NOW, &out, &oc, &err), CUSTODY_OK);
	assert_slot(&out.current, A, NOW);
	assert_slot(&out.previous, NULL, 0);
	assert_slot(&out.pending, NULL, 0);
	assert_names_kept(&out);
	cr_assert_eq(oc.noop, 0);
	cr_assert_eq(oc.rolled, 0);
	cr_assert_str_empty(oc.cancelled_pending);
	cr_assert_str_empty(oc.replaced_pending);
}

Test(assign_set, replacing_current_moves_it_to_previous_with_its_date)
{
	custody_assignment in = make(A, NOW - 30 * DAY, NULL, 0, NULL, 0), out;
	custody_assign_outcome oc;
	custody_err err;

	cr_assert_eq(custody_assign_set(&in, B, NOW, &out, &oc, &err), CUSTODY_OK);
	assert_slot(&out.current, B, NOW);
	assert_slot(&out.previous, A, NOW - 30 * DAY);
	assert_slot(&out.pending, NULL, 0);
	assert_names_kept(&out);
	cr_assert_eq(oc.noop, 0);
}

Test(assign_set, replacing_current_drops_the_old_previous)
{
	custody_assignment in = make(A, NOW - DAY, D, NOW - 9 * DAY, NULL, 0), out;
	custody_err err;

	cr_assert_eq(custody_assign_set(&in, B, NOW, &out, NULL, &err), CUSTODY_OK);
	assert_slot(&out.current, B, NOW);
	assert_slot(&out.previous, A, NOW - DAY);
	cr_assert_eq(custody_assign_find(&out, D), CUSTODY_SLOT_NONE);
}

Test(assign_set, without_current_keeps_previous)
{
	custody_assignment in = make(NULL, 0, D, NOW - 9 * DAY, NULL, 0), out;
	custody_err err;

	cr_assert_eq(custody_assign_set(&in, B, NOW, &out, NULL, &err), CUSTODY_OK);
	assert_slot(&out.current, B, NOW);
	assert_slot(&out.previous, D, NOW - 9 * DAY);
}

Test(assign_set, of_the_current_is_a_noop)
{
	custody_assignment in = make(A, NOW - DAY, D, NOW - 9 * DAY, C, NOW + DAY);
	custody_assignment out;
	custody_assign_outcome oc;
	custody_err err;

	cr_assert_eq(custody_assign_set(&in, A, NOW, &out, &oc, &err), CUSTODY_OK);
	cr_assert_eq(oc.noop, 1);
	cr_assert_eq(oc.rolled, 0);
	cr_assert_str_empty(oc.cancelled_pending);
	assert_same(&out, &in);
}

Test(assign_set, cancels_a_pending_roll_and_says_so)
{
	custody_assignment in = make(A, NOW - DAY, NULL, 0, C, NOW + DAY), out;
	custody_assign_outcome oc;
	custody_err err;

	cr_assert_eq(custody_assign_set(&in, B, NOW, &out, &oc, &err), CUSTODY_OK);
	cr_assert_str_eq(oc.cancelled_pending, C);
	cr_assert_str_empty(oc.replaced_pending);
	assert_slot(&out.current, B, NOW);
	assert_slot(&out.previous, A, NOW - DAY);
	assert_slot(&out.pending, NULL, 0);
}

Test(assign_set, of_the_pending_brings_the_roll_forward)
{
	custody_assignment in = make(A, NOW - DAY, NULL, 0, C, NOW + DAY), out;
	custody_assign_outcome oc;
	custody_err err;

	cr_assert_eq(custody_assign_set(&in, C, NOW, &out, &oc, &err), CUSTODY_OK);
	cr_assert_str_empty(oc.cancelled_pending, "not cancelled: it is current now");
	assert_slot(&out.current, C, NOW);
	assert_slot(&out.previous, A, NOW - DAY);
	assert_slot(&out.pending, NULL, 0);
}

Test(assign_set, of_the_previous_swaps_them)
{
	custody_assignment in = make(A, NOW - DAY, D, NOW - 9 * DAY, NULL, 0), out;
	custody_err err;

	cr_assert_eq(custody_assign_set(&in, D, NOW, &out, NULL, &err), CUSTODY_OK);
	assert_slot(&out.current, D, NOW);
	assert_slot(&out.previous, A, NOW - DAY);
}

Test(assign_set, in_place)
{
	custody_assignment a = make(A, NOW - DAY, NULL, 0, NULL, 0);
	custody_err err;

	cr_assert_eq(custody_assign_set(&a, B, NOW, &a, NULL, &err), CUSTODY_OK);
	assert_slot(&a.current, B, NOW);
	assert_slot(&a.previous, A, NOW - DAY);
	assert_names_kept(&a);
}

Test(assign_set, after_a_due_roll_resolves_first)
{
	/* The roll to B came due an hour ago: B became previous when C is set. */
	custody_assignment in = make(A, NOW - 9 * DAY, NULL, 0, B, NOW - HOUR), out;
	custody_assign_outcome oc;
	custody_err err;

	cr_assert_eq(custody_assign_set(&in, C, NOW, &out, &oc, &err), CUSTODY_OK);
	cr_assert_eq(oc.rolled, 1);
	cr_assert_str_empty(oc.cancelled_pending, "B was current, not pending");
	assert_slot(&out.current, C, NOW);
	assert_slot(&out.previous, B, NOW - HOUR);
	assert_slot(&out.pending, NULL, 0);
}

Test(assign_set, refuses_an_empty_or_overlong_thumbprint)
{
	custody_assignment in = make(A, NOW - DAY, NULL, 0, NULL, 0);
	custody_assignment out = in;
	custody_err err;

	cr_assert_eq(custody_assign_set(&in, "", NOW, &out, NULL, &err), CUSTODY_EUSAGE);
	cr_assert_eq(err.code, CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "no certificate given: a thumbprint is required");
	assert_same(&out, &in);
	cr_assert_eq(custody_assign_set(&in, A "00", NOW, &out, NULL, &err),
		     CUSTODY_EUSAGE);
	cr_assert(strstr(err.msg, "longer than 40 hex digits") != NULL, "%s", err.msg);
	assert_same(&out, &in);
}

/* ---------------------------------------------------------------- roll */

Test(assign_roll, stages_pending)
{
	custody_assignment in = make(A, NOW - DAY, D, NOW - 9 * DAY, NULL, 0), out;
	custody_assign_outcome oc;
	custody_err err;

	cr_assert_eq(custody_assign_roll(&in, B, NOW + DAY, NOW, &out, &oc, &err),
		     CUSTODY_OK);
	assert_slot(&out.current, A, NOW - DAY);
	assert_slot(&out.previous, D, NOW - 9 * DAY);
	assert_slot(&out.pending, B, NOW + DAY);
	assert_names_kept(&out);
	cr_assert_eq(oc.noop, 0);
	cr_assert_eq(oc.rolled, 0);
	cr_assert_str_empty(oc.replaced_pending);
}

Test(assign_roll, effective_now_is_refused_and_nothing_changes)
{
	custody_assignment in = make(A, NOW - DAY, NULL, 0, C, NOW + DAY);
	custody_assignment out = in;
	custody_assignment before = in;
	custody_err err;

	cr_assert_eq(custody_assign_roll(&in, B, NOW, NOW, &out, NULL, &err),
		     CUSTODY_EFAIL);
	cr_assert_eq(err.code, CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg,
			 "effective date 2026-01-01T00:00:00Z is not in the future");
	assert_same(&out, &before);
	assert_same(&in, &before);
}

Test(assign_roll, effective_in_the_past_is_refused_in_place)
{
	custody_assignment a = make(A, NOW - DAY, NULL, 0, NULL, 0);
	custody_assignment before = a;
	custody_err err;

	cr_assert_eq(custody_assign_roll(&a, B, NOW - 90, NOW, &a, NULL, &err),
		     CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg,
			 "effective date 2025-12-31T23:58:30Z is not in the future");
	assert_same(&a, &before);
}

Test(assign_roll, of_the_current_is_refused)
{
	custody_assignment in = make(A, NOW - DAY, NULL, 0, NULL, 0);
	custody_assignment out = in;
	custody_err err;

	cr_assert_eq(custody_assign_roll(&in, A, NOW + DAY, NOW, &out, NULL, &err),
		     CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "cannot roll to certificate " A ": it is already "
			 "the current certificate for type OAuthTokenIssuer "
			 "(identity global)");
	assert_same(&out, &in);
}

Test(assign_roll, of_what_became_current_by_a_due_roll_is_refused)
{
	custody_assignment in = make(A, NOW - DAY, NULL, 0, B, NOW - HOUR);
	custody_assignment out = in;
	custody_err err;

	cr_assert_eq(custody_assign_roll(&in, B, NOW + DAY, NOW, &out, NULL, &err),
		     CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "already the current certificate") != NULL);
	assert_same(&out, &in);
}

Test(assign_roll, replaces_an_existing_pending)
{
	custody_assignment in = make(A, NOW - DAY, NULL, 0, C, NOW + DAY), out;
	custody_assign_outcome oc;
	custody_err err;

	cr_assert_eq(custody_assign_roll(&in, D, NOW + 2 * DAY, NOW, &out, &oc, &err),
		     CUSTODY_OK);
	cr_assert_str_eq(oc.replaced_pending, C);
	cr_assert_str_empty(oc.cancelled_pending);
	assert_slot(&out.current, A, NOW - DAY);
	assert_slot(&out.pending, D, NOW + 2 * DAY);
}

Test(assign_roll, same_pending_same_date_is_a_noop)
{
	custody_assignment in = make(A, NOW - DAY, NULL, 0, C, NOW + DAY), out;
	custody_assign_outcome oc;
	custody_err err;

	cr_assert_eq(custody_assign_roll(&in, C, NOW + DAY, NOW, &out, &oc, &err),
		     CUSTODY_OK);
	cr_assert_eq(oc.noop, 1);
	cr_assert_str_empty(oc.replaced_pending);
	assert_same(&out, &in);
}

Test(assign_roll, on_an_empty_assignment_then_due)
{
	custody_assignment in = make(NULL, 0, NULL, 0, NULL, 0), staged, due;
	custody_err err;

	cr_assert_eq(custody_assign_roll(&in, B, NOW + DAY, NOW, &staged, NULL, &err),
		     CUSTODY_OK);
	assert_slot(&staged.pending, B, NOW + DAY);
	cr_assert_eq(custody_assign_resolve(&staged, NOW + DAY, &due), 1);
	assert_slot(&due.current, B, NOW + DAY);
	assert_slot(&due.previous, NULL, 0);
	assert_slot(&due.pending, NULL, 0);
}

/* ---------------------------------------------------------------- resolve */

Test(assign_resolve, before_the_effective_instant_nothing_changes)
{
	custody_assignment in = make(A, NOW - DAY, D, NOW - 9 * DAY, B, NOW + DAY);
	custody_assignment out;

	cr_assert_eq(custody_assign_resolve(&in, NOW + DAY - 1, &out), 0);
	assert_same(&out, &in);
}

Test(assign_resolve, exactly_at_the_effective_instant_it_rolls)
{
	custody_assignment in = make(A, NOW - DAY, D, NOW - 9 * DAY, B, NOW + DAY);
	custody_assignment out;

	cr_assert_eq(custody_assign_resolve(&in, NOW + DAY, &out), 1);
	assert_slot(&out.current, B, NOW + DAY);
	assert_slot(&out.previous, A, NOW - DAY);
	assert_slot(&out.pending, NULL, 0);
	assert_names_kept(&out);
}

Test(assign_resolve, after_the_effective_instant_keeps_the_roll_instant)
{
	custody_assignment a = make(A, NOW - DAY, NULL, 0, B, NOW + DAY);
	custody_assignment again;

	cr_assert_eq(custody_assign_resolve(&a, NOW + 40 * DAY, &a), 1);
	assert_slot(&a.current, B, NOW + DAY);
	assert_slot(&a.previous, A, NOW - DAY);
	assert_slot(&a.pending, NULL, 0);
	/* Resolving again changes nothing. */
	cr_assert_eq(custody_assign_resolve(&a, NOW + 41 * DAY, &again), 0);
	assert_same(&again, &a);
}

Test(assign_resolve, without_pending_is_identity)
{
	custody_assignment in = make(A, NOW - DAY, D, NOW - 9 * DAY, NULL, 0), out;

	cr_assert_eq(custody_assign_resolve(&in, NOW + 999 * DAY, &out), 0);
	assert_same(&out, &in);
}

Test(assign_resolve, a_held_roll_waits_whatever_its_date)
{
	custody_assignment in = make(A, NOW - DAY, D, NOW - 9 * DAY, B, NOW + DAY), out;

	in.hold_pending = 1;
	cr_assert_eq(custody_assign_resolve(&in, NOW + 30 * DAY, &out), 0);
	assert_same(&out, &in);
}

Test(assign_resolve, set_and_roll_resolve_with_the_hold)
{
	custody_assignment in = make(A, NOW - DAY, NULL, 0, B, NOW + DAY), out;
	custody_assign_outcome oc;
	custody_err err;

	in.hold_pending = 1;
	/* A roll to another certificate replaces the held one: B never
	 * became current. */
	cr_assert_eq(custody_assign_roll(&in, C, NOW + 9 * DAY, NOW + 2 * DAY, &out, &oc, &err),
		     CUSTODY_OK, "%s", err.msg);
	assert_slot(&out.current, A, NOW - DAY);
	assert_slot(&out.pending, C, NOW + 9 * DAY);
	cr_assert_str_eq(oc.replaced_pending, B);
	cr_assert_eq(oc.rolled, 0);
}

Test(assign_pending, needs_every_member_for_global_the_member_for_its_own)
{
	custody_assignment a = make(A, NOW, NULL, 0, B, NOW + DAY);

	cr_assert(custody_assign_pending_needs(&a, "node1"));
	cr_assert(custody_assign_pending_needs(&a, "node2"));
	strcpy(a.identity, "node2");
	cr_assert(!custody_assign_pending_needs(&a, "node1"));
	cr_assert(custody_assign_pending_needs(&a, "node2"));
	a.pending.thumbprint[0] = '\0';
	cr_assert(!custody_assign_pending_needs(&a, "node2"), "nothing pending");
	cr_assert(!custody_assign_pending_needs(NULL, "node2"));
}

/* ---------------------------------------------------------------- remove */

Test(assign_remove, current_leaves_previous_and_pending)
{
	custody_assignment in = make(A, NOW - DAY, D, NOW - 9 * DAY, C, NOW + DAY);
	custody_assignment out;
	custody_err err;

	cr_assert_eq(custody_assign_remove(&in, CUSTODY_SLOT_CURRENT, NOW, DAY, 0,
					   &out, NULL, &err), CUSTODY_OK);
	assert_slot(&out.current, NULL, 0);
	assert_slot(&out.previous, D, NOW - 9 * DAY);
	assert_slot(&out.pending, C, NOW + DAY);
	assert_names_kept(&out);
}

Test(assign_remove, pending)
{
	custody_assignment in = make(A, NOW - DAY, NULL, 0, C, NOW + DAY), out;
	custody_err err;

	cr_assert_eq(custody_assign_remove(&in, CUSTODY_SLOT_PENDING, NOW, DAY, 0,
					   &out, NULL, &err), CUSTODY_OK);
	assert_slot(&out.current, A, NOW - DAY);
	assert_slot(&out.pending, NULL, 0);
	cr_assert_eq(custody_assign_is_empty(&out), 0);
}

Test(assign_remove, previous_after_the_window)
{
	custody_assignment in = make(A, NOW - 2 * DAY, D, NOW - 9 * DAY, NULL, 0), out;
	custody_err err;

	cr_assert_eq(custody_assign_remove(&in, CUSTODY_SLOT_PREVIOUS, NOW, DAY, 0,
					   &out, NULL, &err), CUSTODY_OK);
	assert_slot(&out.previous, NULL, 0);
	assert_slot(&out.current, A, NOW - 2 * DAY);
}

Test(assign_remove, previous_when_the_window_just_ended)
{
	custody_assignment in = make(A, NOW - DAY, D, NOW - 9 * DAY, NULL, 0), out;
	custody_err err;

	cr_assert_eq(custody_assign_remove(&in, CUSTODY_SLOT_PREVIOUS, NOW, DAY, 0,
					   &out, NULL, &err), CUSTODY_OK);
	assert_slot(&out.previous, NULL, 0);
}

Test(assign_remove, previous_inside_the_window_needs_force)
{
	custody_assignment in = make(A, NOW - HOUR, D, NOW - 9 * DAY, NULL, 0);
	custody_assignment out = in;
	custody_err err;

	cr_assert_eq(custody_assign_remove(&in, CUSTODY_SLOT_PREVIOUS, NOW, DAY, 0,
					   &out, NULL, &err), CUSTODY_EFAIL);
	cr_assert_eq(err.code, CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "previous certificate " D " is still inside its "
			 "overlap window until 2026-01-01T23:00:00Z");
	cr_assert_str_eq(err.hint, "use --force to remove it anyway");
	assert_same(&out, &in);
}

Test(assign_remove, previous_inside_the_window_with_force)
{
	custody_assignment in = make(A, NOW - HOUR, D, NOW - 9 * DAY, NULL, 0), out;
	custody_err err;

	cr_assert_eq(custody_assign_remove(&in, CUSTODY_SLOT_PREVIOUS, NOW, DAY, 1,
					   &out, NULL, &err), CUSTODY_OK);
	assert_slot(&out.previous, NULL, 0);
	assert_slot(&out.current, A, NOW - HOUR);
}

Test(assign_remove, window_counts_from_a_lazy_roll)
{
	/* The roll to B happened at NOW - 2 h by resolution: A is previous
	 * and protected until NOW + 22 h. */
	custody_assignment in = make(A, NOW - 9 * DAY, NULL, 0, B, NOW - 2 * HOUR);
	custody_assignment out = in;
	custody_assign_outcome oc;
	custody_err err;

	cr_assert_eq(custody_assign_remove(&in, CUSTODY_SLOT_PREVIOUS, NOW, DAY, 0,
					   &out, &oc, &err), CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "previous certificate " A " is still inside its "
			 "overlap window until 2026-01-01T22:00:00Z");
	assert_same(&out, &in);
	cr_assert_eq(custody_assign_remove(&in, CUSTODY_SLOT_PREVIOUS,
					   NOW + 22 * HOUR, DAY, 0, &out, &oc,
					   &err), CUSTODY_OK);
	cr_assert_eq(oc.rolled, 1);
	assert_slot(&out.current, B, NOW - 2 * HOUR);
	assert_slot(&out.previous, NULL, 0);
	assert_slot(&out.pending, NULL, 0);
}

Test(assign_remove, empty_slots_are_not_found)
{
	custody_assignment in = make(A, NOW - DAY, NULL, 0, NULL, 0);
	custody_assignment out = in;
	custody_err err;

	cr_assert_eq(custody_assign_remove(&in, CUSTODY_SLOT_PREVIOUS, NOW, DAY, 1,
					   &out, NULL, &err), CUSTODY_ENOTFOUND);
	cr_assert_eq(err.code, CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no previous certificate is assigned for type "
			 "OAuthTokenIssuer (identity global)");
	assert_same(&out, &in);
	cr_assert_eq(custody_assign_remove(&in, CUSTODY_SLOT_PENDING, NOW, DAY, 0,
					   &out, NULL, &err), CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no pending certificate is assigned for type "
			 "OAuthTokenIssuer (identity global)");
	in = make(NULL, 0, NULL, 0, NULL, 0);
	cr_assert_eq(custody_assign_remove(&in, CUSTODY_SLOT_CURRENT, NOW, DAY, 0,
					   &out, NULL, &err), CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no current certificate is assigned for type "
			 "OAuthTokenIssuer (identity global)");
	assert_same(&out, &in);
}

Test(assign_remove, no_slot_is_a_usage_error)
{
	custody_assignment in = make(A, NOW - DAY, NULL, 0, NULL, 0), out = in;
	custody_err err;

	cr_assert_eq(custody_assign_remove(&in, CUSTODY_SLOT_NONE, NOW, DAY, 0,
					   &out, NULL, &err), CUSTODY_EUSAGE);
	assert_same(&out, &in);
}

Test(assign_remove, all_three_leaves_an_empty_record)
{
	custody_assignment a = make(A, NOW - 3 * DAY, D, NOW - 9 * DAY, C, NOW + DAY);
	custody_err err;

	cr_assert_eq(custody_assign_is_empty(&a), 0);
	cr_assert_eq(custody_assign_remove(&a, CUSTODY_SLOT_PENDING, NOW, DAY, 0,
					   &a, NULL, &err), CUSTODY_OK);
	cr_assert_eq(custody_assign_remove(&a, CUSTODY_SLOT_PREVIOUS, NOW, DAY, 0,
					   &a, NULL, &err), CUSTODY_OK);
	cr_assert_eq(custody_assign_remove(&a, CUSTODY_SLOT_CURRENT, NOW, DAY, 0,
					   &a, NULL, &err), CUSTODY_OK);
	cr_assert_eq(custody_assign_is_empty(&a), 1);
	assert_names_kept(&a);
}

/* ---------------------------------------------------------------- find */

Test(assign_find, names_the_slot)
{
	custody_assignment a = make(A, NOW - DAY, D, NOW - 9 * DAY, C, NOW + DAY);

	cr_assert_eq(custody_assign_find(&a, A), CUSTODY_SLOT_CURRENT);
	cr_assert_eq(custody_assign_find(&a, D), CUSTODY_SLOT_PREVIOUS);
	cr_assert_eq(custody_assign_find(&a, C), CUSTODY_SLOT_PENDING);
	cr_assert_eq(custody_assign_find(&a, B), CUSTODY_SLOT_NONE);
	cr_assert_eq(custody_assign_find(&a, ""), CUSTODY_SLOT_NONE);
	cr_assert_eq(custody_assign_find(&a, NULL), CUSTODY_SLOT_NONE);
	/* Exact match only: a prefix is not the certificate. */
	cr_assert_eq(custody_assign_find(&a, "AAAAAAAA"), CUSTODY_SLOT_NONE);
}

Test(assign_find, current_first)
{
	custody_assignment a = make(A, NOW - DAY, A, NOW - 9 * DAY, NULL, 0);

	cr_assert_eq(custody_assign_find(&a, A), CUSTODY_SLOT_CURRENT);
}

Test(assign_find, labels)
{
	custody_assignment empty = make(NULL, 0, NULL, 0, NULL, 0);

	cr_assert_str_eq(custody_slot_label(CUSTODY_SLOT_CURRENT), "current");
	cr_assert_str_eq(custody_slot_label(CUSTODY_SLOT_PREVIOUS), "previous");
	cr_assert_str_eq(custody_slot_label(CUSTODY_SLOT_PENDING), "pending");
	cr_assert_str_eq(custody_slot_label(CUSTODY_SLOT_NONE), "");
	cr_assert_eq(custody_assign_is_empty(&empty), 1);
	cr_assert_eq(custody_assign_find(&empty, A), CUSTODY_SLOT_NONE);
}
