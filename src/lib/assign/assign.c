/* assign/assign.c — the assignment state machine (see custody/assign.h).
 *
 * Pure: no I/O, no clock.  Each operation works on a copy of `in` and
 * writes `out` only when it succeeds, so `in` and `out` may be the same
 * object and a refused operation leaves `out` untouched.
 */
#include "config.h"

#include <string.h>
#include <time.h>

#include <custody/assign.h>
#include <custody/error.h>

#define TIME_TEXT 21		/* "YYYY-MM-DDTHH:MM:SSZ" + NUL */

/* The UTC form the command shows; the digits of t when gmtime fails. */
static const char *
format_time(int64_t t, char buf[TIME_TEXT])
{
	struct tm tm;
	time_t tt = (time_t)t;

	if ((int64_t)tt != t || gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, TIME_TEXT, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		/* Out of range for struct tm: say it in seconds. */
		size_t i = TIME_TEXT - 1;
		uint64_t v = t < 0 ? (uint64_t)0 - (uint64_t)t : (uint64_t)t;

		buf[i] = '\0';
		do {
			buf[--i] = (char)('0' + v % 10);
			v /= 10;
		} while (v != 0 && i > 1);
		if (t < 0)
			buf[--i] = '-';
		return buf + i;
	}
	return buf;
}

static void
slot_clear(custody_slot *s)
{
	memset(s, 0, sizeof(*s));
}

static int
slot_empty(const custody_slot *s)
{
	return s->thumbprint[0] == '\0';
}

static int
slot_holds(const custody_slot *s, const char *thumbprint)
{
	return !slot_empty(s) && strcmp(s->thumbprint, thumbprint) == 0;
}

static void
slot_fill(custody_slot *s, const char *thumbprint, int64_t effective)
{
	slot_clear(s);
	memcpy(s->thumbprint, thumbprint, strlen(thumbprint));
	s->effective = effective;
}

/* The end of an operation: out is the new assignment a, or, refused
 * (r not OK), as in was. */
static int
finish(int r, const custody_assignment *in, const custody_assignment *a,
       custody_assignment *out)
{
	if (r == CUSTODY_OK)
		*out = *a;
	else if (out != in)
		*out = *in;
	return r;
}

static void
outcome_init(custody_assign_outcome *outcome)
{
	if (outcome != NULL)
		memset(outcome, 0, sizeof(*outcome));
}

static void
outcome_note(char dst[CUSTODY_THUMBPRINT_HEX + 1], const char *thumbprint)
{
	memset(dst, 0, CUSTODY_THUMBPRINT_HEX + 1);
	memcpy(dst, thumbprint, strnlen(thumbprint, CUSTODY_THUMBPRINT_HEX));
}

static int
check_thumbprint(const char *thumbprint, custody_err *err)
{
	size_t len;

	if (thumbprint == NULL || thumbprint[0] == '\0')
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "no certificate given: a thumbprint is required");
	len = strnlen(thumbprint, CUSTODY_THUMBPRINT_HEX + 1);
	if (len > CUSTODY_THUMBPRINT_HEX)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "bad thumbprint %.48s...: longer than %d hex digits",
				       thumbprint, CUSTODY_THUMBPRINT_HEX);
	return CUSTODY_OK;
}

/* The instant the overlap window of the previous certificate ends. */
static int64_t
window_end(int64_t start, int64_t overlap)
{
	if (overlap > 0 && start > INT64_MAX - overlap)
		return INT64_MAX;
	return start + overlap;
}

/* The old current moves to previous (keeping the instant it became
 * current); with no current, previous stays as it was. */
static void
make_current(custody_assignment *a, const char *thumbprint, int64_t effective)
{
	if (!slot_empty(&a->current))
		a->previous = a->current;
	slot_fill(&a->current, thumbprint, effective);
}

const char *
custody_slot_label(enum custody_slot_name slot)
{
	switch (slot) {
	case CUSTODY_SLOT_CURRENT:
		return "current";
	case CUSTODY_SLOT_PREVIOUS:
		return "previous";
	case CUSTODY_SLOT_PENDING:
		return "pending";
	case CUSTODY_SLOT_NONE:
	default:
		return "";
	}
}

int
custody_assign_is_empty(const custody_assignment *a)
{
	return slot_empty(&a->current) && slot_empty(&a->previous) &&
	       slot_empty(&a->pending);
}

enum custody_slot_name
custody_assign_find(const custody_assignment *a, const char *thumbprint)
{
	if (thumbprint == NULL || thumbprint[0] == '\0')
		return CUSTODY_SLOT_NONE;
	if (slot_holds(&a->current, thumbprint))
		return CUSTODY_SLOT_CURRENT;
	if (slot_holds(&a->previous, thumbprint))
		return CUSTODY_SLOT_PREVIOUS;
	if (slot_holds(&a->pending, thumbprint))
		return CUSTODY_SLOT_PENDING;
	return CUSTODY_SLOT_NONE;
}

int
custody_assign_resolve(const custody_assignment *in, int64_t now,
		       custody_assignment *out)
{
	custody_assignment a = *in;
	int rolled = 0;

	if (!slot_empty(&a.pending) && a.pending.effective <= now && !a.hold_pending) {
		custody_slot due = a.pending;

		slot_clear(&a.pending);
		if (slot_holds(&a.current, due.thumbprint)) {
			/* Already current: only the schedule goes. */
		} else {
			make_current(&a, due.thumbprint, due.effective);
		}
		rolled = 1;
	}
	*out = a;
	return rolled;
}

int
custody_assign_pending_needs(const custody_assignment *a, const char *node)
{
	if (a == NULL || node == NULL || slot_empty(&a->pending))
		return 0;
	return strcmp(a->identity, CUSTODY_SCOPE_GLOBAL) == 0 ||
	       strcmp(a->identity, node) == 0;
}

int
custody_assign_set(const custody_assignment *in, const char *thumbprint,
		   int64_t now, custody_assignment *out,
		   custody_assign_outcome *outcome, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	custody_assignment a;
	int rolled;

	outcome_init(outcome);
	if ((r = check_thumbprint(thumbprint, err)) != CUSTODY_OK)
		goto out;
	rolled = custody_assign_resolve(in, now, &a);
	if (outcome != NULL)
		outcome->rolled = rolled;
	if (slot_holds(&a.current, thumbprint)) {
		if (outcome != NULL)
			outcome->noop = 1;
	} else {
		/* A pending roll to this very certificate is brought forward,
		 * not cancelled. */
		if (!slot_empty(&a.pending) &&
		    strcmp(a.pending.thumbprint, thumbprint) != 0 &&
		    outcome != NULL)
			outcome_note(outcome->cancelled_pending,
				     a.pending.thumbprint);
		slot_clear(&a.pending);
		make_current(&a, thumbprint, now);
	}
	r = CUSTODY_OK;
out:
	return finish(r, in, &a, out);
}

int
custody_assign_roll(const custody_assignment *in, const char *thumbprint,
		    int64_t effective, int64_t now, custody_assignment *out,
		    custody_assign_outcome *outcome, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	custody_assignment a;
	char when[TIME_TEXT];
	int rolled;

	outcome_init(outcome);
	if ((r = check_thumbprint(thumbprint, err)) != CUSTODY_OK)
		goto out;
	if (effective <= now) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "effective date %s is not in the future",
				    format_time(effective, when));
		goto out;
	}
	rolled = custody_assign_resolve(in, now, &a);
	if (slot_holds(&a.current, thumbprint)) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot roll to certificate %s: it is already "
				    "the current certificate for type %s (identity %s)",
				    thumbprint, a.type, a.identity);
		goto out;
	}
	if (outcome != NULL) {
		outcome->rolled = rolled;
		if (slot_holds(&a.pending, thumbprint) &&
		    a.pending.effective == effective)
			outcome->noop = 1;
		else if (!slot_empty(&a.pending))
			outcome_note(outcome->replaced_pending,
				     a.pending.thumbprint);
	}
	slot_fill(&a.pending, thumbprint, effective);
	r = CUSTODY_OK;
out:
	return finish(r, in, &a, out);
}

int
custody_assign_remove(const custody_assignment *in,
		      enum custody_slot_name slot, int64_t now,
		      int64_t overlap, int force, custody_assignment *out,
		      custody_assign_outcome *outcome, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	custody_assignment a;
	custody_slot *s = NULL;
	char when[TIME_TEXT];
	int rolled;

	outcome_init(outcome);
	rolled = custody_assign_resolve(in, now, &a);
	switch (slot) {
	case CUSTODY_SLOT_CURRENT:
		s = &a.current;
		break;
	case CUSTODY_SLOT_PREVIOUS:
		s = &a.previous;
		break;
	case CUSTODY_SLOT_PENDING:
		s = &a.pending;
		break;
	case CUSTODY_SLOT_NONE:
	default:
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot remove a certificate: no slot named "
				    "(current, previous or pending)");
		goto out;
	}
	if (slot_empty(s)) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "no %s certificate is assigned for type %s "
				    "(identity %s)", custody_slot_label(slot),
				    a.type, a.identity);
		goto out;
	}
	/* The window counts from the instant the previous certificate
	 * stopped being current, which is when the current one started. */
	if (slot == CUSTODY_SLOT_PREVIOUS && !force &&
	    !slot_empty(&a.current) && overlap > 0 &&
	    now < window_end(a.current.effective, overlap)) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "previous certificate %s is still inside its "
				    "overlap window until %s",
				    a.previous.thumbprint,
				    format_time(window_end(a.current.effective,
							   overlap), when));
		custody_err_hint(err, "use --force to remove it anyway");
		goto out;
	}
	slot_clear(s);
	if (outcome != NULL)
		outcome->rolled = rolled;
	r = CUSTODY_OK;
out:
	return finish(r, in, &a, out);
}
