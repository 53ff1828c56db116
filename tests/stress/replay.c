/*
 * replay.c — replays the audit log of one assignment through the
 * assignment rules (custody/assign.h) and compares the result with what
 * `custody get -o json` printed.  For tests/stress/concurrency.sh.
 *
 *   replay STORE-URL TYPE IDENTITY GET-JSON-FILE
 *
 * Entries of TYPE/IDENTITY are applied in seq order at their own time:
 * "set" (custody_assign_set), "roll" (custody_assign_roll at the instant
 * its detail names), "remove" (the slot its detail names, forced), and
 * "roll-effective" (the roll its detail dates comes due).  Each entry is
 * also checked against the state it was decided on: a set or roll names
 * the current certificate it replaced, a remove the certificate it took
 * away; a writer that decided on a stale state (a lost update) shows as
 * a mismatch there.  The final state must equal the stored one: the
 * thumbprints of the three slots and the pending instant exactly, the
 * instants of current and previous within TOLERANCE seconds (a change is
 * decided a moment before its entry is written).
 *
 * Prints "replayed N entries (S set, R roll, M remove, E roll-effective)"
 * and exits 0; on a mismatch says what differs on stderr and exits 1;
 * exits 2 when it cannot run.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include <custody/assign.h>
#include <custody/audit.h>
#include <custody/store.h>
#include <custody/timefmt.h>

#define TOLERANCE 5

struct counts {
	size_t set, roll, remove, effective;
};

/* The instant written after `marker` in an entry's detail. */
static int
detail_time(const custody_audit_entry *e, const char *marker, int64_t *out)
{
	char text[CUSTODY_TIME_TEXT];
	const char *p;

	if (e->detail == NULL || (p = strstr(e->detail, marker)) == NULL)
		return -1;
	p += strlen(marker);
	if (strlen(p) < CUSTODY_TIME_TEXT - 1)
		return -1;
	memcpy(text, p, CUSTODY_TIME_TEXT - 1);
	text[CUSTODY_TIME_TEXT - 1] = '\0';
	return custody_time_parse(text, out, NULL) == CUSTODY_OK ? 0 : -1;
}

/* The thumbprint written after `marker` in the detail, or "". */
static void
detail_thumbprint(const custody_audit_entry *e, const char *marker,
		  char out[CUSTODY_THUMBPRINT_HEX + 1])
{
	const char *p;

	out[0] = '\0';
	if (e->detail == NULL || (p = strstr(e->detail, marker)) == NULL)
		return;
	snprintf(out, CUSTODY_THUMBPRINT_HEX + 1, "%s", p + strlen(marker));
}

static int
mismatch(const custody_audit_entry *e, const char *what, const char *want,
	 const char *got)
{
	fprintf(stderr, "replay: audit entry %lld (%s): %s: the entry says '%s', "
		"the replay has '%s'\n", (long long)e->seq, e->action, what, want, got);
	return -1;
}

/* Applies one entry to *a; -1 (and a message) when it does not fit. */
static int
apply(custody_assignment *a, const custody_audit_entry *e, struct counts *n)
{
	custody_assignment now;
	custody_assign_outcome outcome;
	custody_err err;
	char note[CUSTODY_THUMBPRINT_HEX + 1];
	int64_t when;
	enum custody_slot_name slot;
	const char *removed;

	custody_assign_resolve(a, e->time, &now);
	if (strcmp(e->action, CUSTODY_AUDIT_SET) == 0) {
		n->set++;
		if (strcmp(e->previous_thumbprint, now.current.thumbprint) != 0)
			return mismatch(e, "current before the set", e->previous_thumbprint,
					now.current.thumbprint);
		if (custody_assign_set(a, e->thumbprint, e->time, a, &outcome, &err) != CUSTODY_OK)
			return mismatch(e, "set", "accepted", err.msg);
		if (outcome.noop)
			return mismatch(e, "set", "a change", "nothing to change");
		detail_thumbprint(e, "cancels pending ", note);
		if (strcmp(note, outcome.cancelled_pending) != 0)
			return mismatch(e, "cancelled pending", note, outcome.cancelled_pending);
	} else if (strcmp(e->action, CUSTODY_AUDIT_ROLL) == 0) {
		n->roll++;
		if (detail_time(e, "becomes current at ", &when) != 0)
			return mismatch(e, "detail", "becomes current at TIME",
					e->detail != NULL ? e->detail : "");
		if (strcmp(e->previous_thumbprint, now.current.thumbprint) != 0)
			return mismatch(e, "current before the roll", e->previous_thumbprint,
					now.current.thumbprint);
		if (custody_assign_roll(a, e->thumbprint, when, e->time, a, &outcome,
					&err) != CUSTODY_OK)
			return mismatch(e, "roll", "accepted", err.msg);
		detail_thumbprint(e, "replaces pending ", note);
		if (strcmp(note, outcome.replaced_pending) != 0)
			return mismatch(e, "replaced pending", note, outcome.replaced_pending);
	} else if (strcmp(e->action, CUSTODY_AUDIT_REMOVE) == 0) {
		n->remove++;
		if (e->detail != NULL && strcmp(e->detail, "previous") == 0) {
			slot = CUSTODY_SLOT_PREVIOUS;
			removed = now.previous.thumbprint;
		} else if (e->detail != NULL && strcmp(e->detail, "pending") == 0) {
			slot = CUSTODY_SLOT_PENDING;
			removed = now.pending.thumbprint;
		} else if (e->detail != NULL && strcmp(e->detail, "current") == 0) {
			slot = CUSTODY_SLOT_CURRENT;
			removed = now.current.thumbprint;
		} else {
			return mismatch(e, "detail", "current, previous or pending",
					e->detail != NULL ? e->detail : "");
		}
		if (strcmp(e->thumbprint, removed) != 0)
			return mismatch(e, "the certificate removed", e->thumbprint, removed);
		if (custody_assign_remove(a, slot, e->time, 0, 1, a, &outcome,
					  &err) != CUSTODY_OK)
			return mismatch(e, "remove", "accepted", err.msg);
	} else if (strcmp(e->action, CUSTODY_AUDIT_ROLL_EFFECTIVE) == 0) {
		n->effective++;
		if (detail_time(e, "took effect at ", &when) != 0)
			return mismatch(e, "detail", "took effect at TIME",
					e->detail != NULL ? e->detail : "");
		if (!custody_assign_resolve(a, when, a))
			return mismatch(e, "a roll due", "one", "none");
		if (strcmp(a->current.thumbprint, e->thumbprint) != 0)
			return mismatch(e, "current after the roll", e->thumbprint,
					a->current.thumbprint);
	}
	return 0;
}

/* The slot `name` of the stored assignment (JSON null: empty). */
static int
json_slot(json_t *assignment, const char *name, custody_slot *out)
{
	json_t *slot = json_object_get(assignment, name);
	const char *tp, *date;

	memset(out, 0, sizeof(*out));
	if (slot == NULL || json_is_null(slot))
		return 0;
	tp = json_string_value(json_object_get(slot, "thumbprint"));
	date = json_string_value(json_object_get(slot, "effective_date"));
	if (tp == NULL || date == NULL ||
	    custody_time_parse(date, &out->effective, NULL) != CUSTODY_OK)
		return -1;
	snprintf(out->thumbprint, sizeof(out->thumbprint), "%s", tp);
	return 0;
}

static int
compare_slot(const char *name, const custody_slot *want, const custody_slot *got,
	     int64_t tolerance)
{
	char a[CUSTODY_TIME_TEXT], b[CUSTODY_TIME_TEXT];
	int64_t d = want->effective - got->effective;

	if (strcmp(want->thumbprint, got->thumbprint) != 0) {
		fprintf(stderr, "replay: %s: the replay has '%s', the store '%s'\n", name,
			want->thumbprint, got->thumbprint);
		return -1;
	}
	if (want->thumbprint[0] != '\0' && (d > tolerance || d < -tolerance)) {
		fprintf(stderr, "replay: %s %s: the replay has it from %s, the store from %s\n",
			name, want->thumbprint, custody_time_format(want->effective, a),
			custody_time_format(got->effective, b));
		return -1;
	}
	return 0;
}

/* The assignment TYPE/IDENTITY of the get -o json array (NULL: none). */
static json_t *
find_assignment(json_t *all, const char *type, const char *identity)
{
	size_t i;
	json_t *a;

	json_array_foreach(all, i, a) {
		const char *t = json_string_value(json_object_get(a, "type"));
		const char *id = json_string_value(json_object_get(a, "identity"));

		if (t != NULL && id != NULL && strcasecmp(t, type) == 0 &&
		    strcasecmp(id, identity) == 0)
			return a;
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	custody_store *st = NULL;
	custody_audit_entry *log = NULL;
	custody_assignment a, stored;
	struct counts n = {0, 0, 0, 0};
	custody_err err;
	json_error_t jerr;
	json_t *all = NULL, *got;
	size_t count = 0, i;
	int rc = 2;

	memset(&jerr, 0, sizeof(jerr));
	if (argc != 5) {
		fprintf(stderr, "usage: replay STORE-URL TYPE IDENTITY GET-JSON-FILE\n");
		return 2;
	}
	if ((all = json_load_file(argv[4], 0, &jerr)) == NULL || !json_is_array(all)) {
		fprintf(stderr, "replay: cannot read %s: %s\n", argv[4], jerr.text);
		goto out;
	}
	if (custody_store_open(argv[1], &st, &err) != CUSTODY_OK ||
	    custody_store_list_audit(st, 0, &log, &count, &err) != CUSTODY_OK) {
		fprintf(stderr, "replay: %s\n", err.msg);
		goto out;
	}
	memset(&a, 0, sizeof(a));
	snprintf(a.type, sizeof(a.type), "%s", argv[2]);
	snprintf(a.identity, sizeof(a.identity), "%s", argv[3]);
	rc = 1;
	for (i = 0; i < count; i++) {
		if (strcasecmp(log[i].type, argv[2]) != 0 ||
		    strcasecmp(log[i].identity, argv[3]) != 0)
			continue;
		if (apply(&a, &log[i], &n) != 0)
			goto out;
	}
	/* get resolves at its own instant: so does the replay. */
	memset(&stored, 0, sizeof(stored));
	if ((got = find_assignment(all, argv[2], argv[3])) != NULL &&
	    (json_slot(got, "current", &stored.current) != 0 ||
	     json_slot(got, "previous", &stored.previous) != 0 ||
	     json_slot(got, "pending", &stored.pending) != 0)) {
		fprintf(stderr, "replay: %s: an assignment without thumbprint or "
			"effective_date\n", argv[4]);
		goto out;
	}
	if (compare_slot("current", &a.current, &stored.current, TOLERANCE) != 0 ||
	    compare_slot("previous", &a.previous, &stored.previous, TOLERANCE) != 0 ||
	    compare_slot("pending", &a.pending, &stored.pending, 0) != 0)
		goto out;
	printf("replayed %zu entries (%zu set, %zu roll, %zu remove, %zu roll-effective)\n",
	       n.set + n.roll + n.remove + n.effective, n.set, n.roll, n.remove,
	       n.effective);
	rc = 0;
out:
	custody_audit_entries_free(log, count);
	custody_store_close(st);
	json_decref(all);
	return rc;
}
