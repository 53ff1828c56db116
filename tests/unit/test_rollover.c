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

/* The decision at now, with the request that waits (NULL: none). */
static custody_rollover_decision
decide_at(int64_t now, const char *waiting)
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
	custody_rollover_decide(&f, &d);
	return d;
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
