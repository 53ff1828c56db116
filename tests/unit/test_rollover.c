/* test_rollover.c — what a [rollover TYPE] policy says is due, decided
 * without a token or a store (custody_rollover_decide). */
#include "config.h"

#include <string.h>

#include <criterion/criterion.h>

#include <custody/rollover.h>

#define DAY INT64_C(86400)
#define T0 INT64_C(1800000000)		/* the current certificate's notBefore */
#define NOT_AFTER (T0 + 90 * DAY)	/* valid 90 days                       */
#define CURRENT "1111111111111111111111111111111111111111"
#define PENDING "2222222222222222222222222222222222222222"

static custody_rollover_policy policy;
static custody_assignment assignment;

static void
setup(void)
{
	memset(&policy, 0, sizeof(policy));
	snprintf(policy.type, sizeof(policy.type), "OAuthTokenIssuer");
	policy.enabled = 1;
	policy.generate_before = 20 * DAY;
	policy.promote_before = 15 * DAY;
	policy.replicable = -1;
	memset(&assignment, 0, sizeof(assignment));
	snprintf(assignment.type, sizeof(assignment.type), "OAuthTokenIssuer");
	snprintf(assignment.identity, sizeof(assignment.identity), "global");
	snprintf(assignment.current.thumbprint, sizeof(assignment.current.thumbprint), CURRENT);
	assignment.current.effective = T0;
}

TestSuite(rollover, .init = setup);

/* The decision at now, with the request that waits (NULL: none), and a
 * roll that came due: rolled (it took effect), or held for missing. */
static custody_rollover_decision
decide_with(int64_t now, const char *waiting, int rolled, int held, const char *missing)
{
	custody_rollover_facts f;
	custody_rollover_decision d;

	memset(&f, 0, sizeof(f));
	f.policy = &policy;
	f.assignment = &assignment;
	f.current_not_after = assignment.current.thumbprint[0] != '\0' ? NOT_AFTER : 0;
	f.waiting_key_id = waiting;
	f.now = now;
	f.overlap = DAY;
	f.rolled = rolled;
	f.held = held;
	f.missing = missing;
	custody_rollover_decide(&f, &d);
	return d;
}

static custody_rollover_decision
decide_at(int64_t now, const char *waiting)
{
	return decide_with(now, waiting, 0, 0, NULL);
}

Test(rollover, nothing_before_generate_before)
{
	custody_rollover_decision d = decide_at(T0 + 10 * DAY, NULL);

	cr_assert_eq(d.due, CUSTODY_ROLLOVER_NOTHING);
	cr_assert_eq(d.generate_at, NOT_AFTER - 20 * DAY);
	cr_assert(strstr(d.why, "not due") != NULL, "%s", d.why);
	d = decide_at(NOT_AFTER - 20 * DAY - 1, NULL);
	cr_assert_eq(d.due, CUSTODY_ROLLOVER_NOTHING, "one second early");
}

Test(rollover, generate_from_generate_before_effective_at_promote_before)
{
	custody_rollover_decision d = decide_at(NOT_AFTER - 20 * DAY, NULL);

	cr_assert_eq(d.due, CUSTODY_ROLLOVER_GENERATE, "%s", d.why);
	cr_assert_eq(d.effective, NOT_AFTER - 15 * DAY);
	d = decide_at(T0 + 71 * DAY, NULL);
	cr_assert_eq(d.due, CUSTODY_ROLLOVER_GENERATE);
	cr_assert_eq(d.effective, NOT_AFTER - 15 * DAY);
}

Test(rollover, late_run_leaves_overlap_but_never_passes_not_after)
{
	/* Past the promotion threshold: the overlap from now, not the past. */
	custody_rollover_decision d = decide_at(NOT_AFTER - 14 * DAY, NULL);

	cr_assert_eq(d.due, CUSTODY_ROLLOVER_GENERATE);
	cr_assert_eq(d.effective, NOT_AFTER - 13 * DAY);
	/* Less than the overlap left: at the current certificate's end. */
	d = decide_at(NOT_AFTER - 3600, NULL);
	cr_assert_eq(d.effective, NOT_AFTER);
	/* Expired already: the overlap from now. */
	d = decide_at(NOT_AFTER + DAY, NULL);
	cr_assert_eq(d.due, CUSTODY_ROLLOVER_GENERATE);
	cr_assert_eq(d.effective, NOT_AFTER + 2 * DAY);
}

Test(rollover, nothing_when_pending_waiting_disabled_or_no_current)
{
	custody_rollover_decision d;

	snprintf(assignment.pending.thumbprint, sizeof(assignment.pending.thumbprint), PENDING);
	assignment.pending.effective = NOT_AFTER - 15 * DAY;
	d = decide_at(T0 + 71 * DAY, NULL);
	cr_assert_eq(d.due, CUSTODY_ROLLOVER_NOTHING);
	cr_assert(strstr(d.why, "successor " PENDING " is pending") != NULL, "%s", d.why);
	assignment.pending.thumbprint[0] = '\0';

	d = decide_at(T0 + 71 * DAY, "00112233445566778899aabbccddeeff00112233");
	cr_assert_eq(d.due, CUSTODY_ROLLOVER_NOTHING);
	cr_assert(strstr(d.why, "waits for its certificate") != NULL, "%s", d.why);
	cr_assert_eq(decide_at(T0 + 71 * DAY, "").due, CUSTODY_ROLLOVER_GENERATE);

	policy.enabled = 0;
	cr_assert_eq(decide_at(T0 + 71 * DAY, NULL).due, CUSTODY_ROLLOVER_NOTHING);
	policy.enabled = 1;

	assignment.current.thumbprint[0] = '\0';
	d = decide_at(T0 + 71 * DAY, NULL);
	cr_assert_eq(d.due, CUSTODY_ROLLOVER_NOTHING);
	cr_assert(strstr(d.why, "no current certificate") != NULL, "%s", d.why);
}

Test(rollover, the_successor_is_published_min_publish_before_it_takes_effect)
{
	custody_rollover_decision d;

	policy.min_publish = 2 * DAY;
	/* Generated at day 74: promote-before would say day 75, too soon. */
	d = decide_at(NOT_AFTER - 16 * DAY, NULL);
	cr_assert_eq(d.due, CUSTODY_ROLLOVER_GENERATE);
	cr_assert_eq(d.effective, NOT_AFTER - 14 * DAY);
	/* On time: promote-before stands. */
	cr_assert_eq(decide_at(NOT_AFTER - 20 * DAY, NULL).effective, NOT_AFTER - 15 * DAY);
	/* Never past the current certificate's end while it is ahead. */
	cr_assert_eq(decide_at(NOT_AFTER - DAY, NULL).effective, NOT_AFTER);
}

static custody_rollover_decision
decide_roll_at(int64_t now, int rolled, int held, const char *missing)
{
	return decide_with(now, NULL, rolled, held, missing);
}

Test(rollover, a_roll_that_took_effect_is_recorded_one_held_back_is_said)
{
	custody_rollover_decision d;

	d = decide_roll_at(T0 + 10 * DAY, 1, 0, NULL);
	cr_assert(d.record_roll && !d.held);
	cr_assert(strstr(d.roll_why, "the roll to " CURRENT " took effect") != NULL, "%s",
		  d.roll_why);
	snprintf(assignment.pending.thumbprint, sizeof(assignment.pending.thumbprint), PENDING);
	assignment.pending.effective = T0 + 5 * DAY;
	d = decide_roll_at(T0 + 10 * DAY, 0, 1, "node2, node3");
	cr_assert(!d.record_roll && d.held);
	cr_assert(strstr(d.roll_why, "waits for node2, node3") != NULL, "%s", d.roll_why);
	cr_assert_eq(d.due, CUSTODY_ROLLOVER_NOTHING, "a successor is pending already");
	d = decide_roll_at(T0 + 10 * DAY, 0, 0, NULL);
	cr_assert(!d.record_roll && !d.held && d.roll_why[0] == '\0');
}

Test(rollover, the_previous_is_retired_keep_previous_after_the_roll)
{
	custody_rollover_decision d;

	policy.keep_previous = 10 * DAY;
	d = decide_roll_at(T0 + 5 * DAY, 0, 0, NULL);
	cr_assert(!d.retire && d.retire_at == 0, "no previous, nothing to retire");
	snprintf(assignment.previous.thumbprint, sizeof(assignment.previous.thumbprint),
		 PENDING);
	assignment.previous.effective = T0 - 90 * DAY;
	d = decide_roll_at(T0 + 10 * DAY - 1, 0, 0, NULL);
	cr_assert(!d.retire);
	cr_assert_eq(d.retire_at, T0 + 10 * DAY);
	cr_assert(strstr(d.retire_why, "stays until") != NULL, "%s", d.retire_why);
	d = decide_roll_at(T0 + 10 * DAY, 0, 0, NULL);
	cr_assert(d.retire);
	cr_assert(strstr(d.retire_why, "is retired") != NULL, "%s", d.retire_why);
	/* Never inside the overlap window (remove --previous's rule). */
	policy.keep_previous = 3600;
	cr_assert_eq(decide_roll_at(T0 + 3600, 0, 0, NULL).retire_at, T0 + DAY);
	/* A disabled policy retires nothing. */
	policy.enabled = 0;
	cr_assert(!decide_roll_at(T0 + 99 * DAY, 0, 0, NULL).retire);
}
