/* store/audit.c — the hash-chained audit log (see custody/audit.h): the
 * canonical encoding and its SHA-256, appending after the head, and
 * verification that names the first broken entry. */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <custody/audit.h>
#include <custody/error.h>
#include <custody/hexfmt.h>
#include <custody/store.h>
#include <custody/timefmt.h>

#include "store/records.h"

#define ENCODING_TAG "custody-audit-v1"
#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
#define DESCRIBE_MAX 256
#define PWBUF_MAX (1024 * 1024)

/* ------------------------------------------------------------ the hash */

static int
put_u64(EVP_MD_CTX *ctx, uint64_t v)
{
	unsigned char b[8];
	int i;

	for (i = 7; i >= 0; i--) {
		b[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
	return EVP_DigestUpdate(ctx, b, sizeof(b));
}

/* An 8-byte length, then the bytes: no two field lists encode alike. */
static int
put_text(EVP_MD_CTX *ctx, const char *text)
{
	size_t len = strlen(text);

	return put_u64(ctx, (uint64_t)len) &&
	       (len == 0 || EVP_DigestUpdate(ctx, text, len));
}

/* The hash of e as if its seq were seq. */
static int
hash_as(const custody_audit_entry *e, int64_t seq,
	char out[CUSTODY_AUDIT_HASH_HEX + 1], custody_err *err)
{
	int r = CUSTODY_EFAIL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[32];
	unsigned int md_len = 0;
	unsigned char present = e->detail != NULL;

	if (ctx == NULL || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
	    !put_text(ctx, ENCODING_TAG) ||
	    !put_u64(ctx, (uint64_t)seq) ||
	    !put_u64(ctx, (uint64_t)e->time) ||
	    !put_text(ctx, e->node) ||
	    !put_text(ctx, e->actor) ||
	    !put_text(ctx, e->action) ||
	    !put_text(ctx, e->type) ||
	    !put_text(ctx, e->identity) ||
	    !put_text(ctx, e->thumbprint) ||
	    !put_text(ctx, e->previous_thumbprint) ||
	    !EVP_DigestUpdate(ctx, &present, 1) ||
	    (present && !put_text(ctx, e->detail)) ||
	    !put_text(ctx, e->prev_hash) ||
	    !EVP_DigestFinal_ex(ctx, md, &md_len) || md_len != sizeof(md)) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot hash audit entry %lld",
					(long long)e->seq);
		goto out;
	}
	custody_hex_encode(md, sizeof(md), out, 0);
	r = CUSTODY_OK;
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

int
custody_audit_hash(const custody_audit_entry *e,
		   char out[CUSTODY_AUDIT_HASH_HEX + 1], custody_err *err)
{
	if (e == NULL || out == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot hash an audit entry: no entry");
	return hash_as(e, e->seq, out, err);
}

/* ------------------------------------------------------------ words */

static void
copy_printable(char *dst, size_t size, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < size && src[i] != '\0'; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	if (size > 0)
		dst[i] = '\0';
}

char *
custody_audit_describe(const custody_audit_entry *e, char *buf, size_t size)
{
	char t[CUSTODY_TIME_TEXT];
	char text[DESCRIBE_MAX * 2];

	if (buf == NULL || size == 0)
		return buf;
	if (e->type[0] != '\0')
		snprintf(text, sizeof(text), "%s %.*s %s/%s",
			 custody_time_format(e->time, t), CUSTODY_AUDIT_ACTION_MAX,
			 e->action, e->type, e->identity);
	else if (e->thumbprint[0] != '\0')
		snprintf(text, sizeof(text), "%s %.*s %s",
			 custody_time_format(e->time, t), CUSTODY_AUDIT_ACTION_MAX,
			 e->action, e->thumbprint);
	else
		snprintf(text, sizeof(text), "%s %.*s",
			 custody_time_format(e->time, t), CUSTODY_AUDIT_ACTION_MAX,
			 e->action);
	copy_printable(buf, size, text);
	return buf;
}

/* A name is usable when it fits, is not empty and shows no control
 * character (a newline in an actor would forge a line of the log). */
static int
usable_name(const char *name, size_t size)
{
	size_t i, len;

	if (name == NULL || name[0] == '\0')
		return 0;
	len = strlen(name);
	if (len >= size)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return 0;
	return 1;
}

/* The login name of the real uid into buf; 0 when it has one. */
static int
login_name(char *buf, size_t size)
{
	int r = -1;
	struct passwd pw, *found = NULL;
	long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t len = hint > 0 ? (size_t)hint : 4096;
	char *pwbuf = NULL;
	int rc;

	for (;;) {
		char *grown = realloc(pwbuf, len);

		if (grown == NULL)
			goto out;
		pwbuf = grown;
		rc = getpwuid_r(getuid(), &pw, pwbuf, len, &found);
		if (rc != ERANGE || len >= PWBUF_MAX)
			break;
		len *= 2;
	}
	if (rc != 0 || found == NULL || !usable_name(pw.pw_name, size))
		goto out;
	snprintf(buf, size, "%s", pw.pw_name);
	r = 0;
out:
	free(pwbuf);
	return r;
}

char *
custody_audit_actor(char *buf, size_t size)
{
	const char *sudo_user = secure_getenv("SUDO_USER");

	if (buf == NULL || size == 0)
		return buf;
	if (usable_name(sudo_user, size))
		snprintf(buf, size, "%s", sudo_user);
	else if (login_name(buf, size) != 0)
		snprintf(buf, size, "uid %lu", (unsigned long)getuid());
	return buf;
}

/* ------------------------------------------------------------ append */

static int
valid_action(const char *action)
{
	size_t i;

	if (action[0] < 'a' || action[0] > 'z')
		return 0;
	for (i = 1; action[i] != '\0'; i++)
		if (!((action[i] >= 'a' && action[i] <= 'z') ||
		      (action[i] >= '0' && action[i] <= '9') || action[i] == '-'))
			return 0;
	return 1;
}

static int
valid_thumbprint(const char *t)
{
	size_t i;

	if (t[0] == '\0')
		return 1;
	for (i = 0; t[i] != '\0'; i++)
		if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'A' && t[i] <= 'F')))
			return 0;
	return i == CUSTODY_THUMBPRINT_HEX;
}

static int
check_draft(const custody_audit_entry *d, custody_err *err)
{
	int r;

	if ((r = store_check_audit_fields(d, 0, err)) != CUSTODY_OK)
		return r;
	if (d->node[0] == '\0')
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot append to the audit log: the entry "
				       "names no node");
	if (!valid_action(d->action))
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot append to the audit log: bad action "
				       "\"%s\" (lower-case letters, digits and '-')",
				       d->action);
	if (!valid_thumbprint(d->thumbprint) ||
	    !valid_thumbprint(d->previous_thumbprint))
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot append to the audit log: a thumbprint "
				       "is not 40 upper-case hex digits");
	return CUSTODY_OK;
}

/* ------------------------------------------------------------ the tag */

/*
 * The audit log's head carries an integrity tag (custody/store.h), kept
 * as the store fact "audit_tag" = "SEQ TAG": the tag of entry SEQ's seq
 * and hash, moved by every append of a writer that holds the store's KEK.
 * A node that enrolls holds none yet: its entry is appended untagged, and
 * only such entries may stand between the tagged entry and the head.
 * Whoever rewrites the chain without the KEK cannot make the tag anew.
 */
#define AUDIT_TAG_META STORE_META_AUDIT_TAG

static int is_genuine_as(const custody_audit_entry *e, int64_t seq,
			 int *genuine, custody_err *err);

/* The entries a node that holds no KEK yet appends. */
static int
written_before_membership(const custody_audit_entry *e)
{
	return strcmp(e->action, CUSTODY_AUDIT_NODE_ENROLL) == 0;
}

/* *seq 0 when the store records no tag. */
static int
read_tag(custody_store *st, int64_t *seq, char tag[CUSTODY_TAG_HEX + 1],
	 custody_err *err)
{
	char v[64];
	long long n = 0;
	int used = 0, r;

	*seq = 0;
	tag[0] = '\0';
	r = custody_store_get_meta(st, AUDIT_TAG_META, v, sizeof(v), err);
	if (r == CUSTODY_ENOTFOUND)
		return CUSTODY_OK;
	if (r != CUSTODY_OK)
		return r;
	if (sscanf(v, "%lld %32[0-9a-f]%n", &n, tag, &used) != 2 ||
	    v[used] != '\0' || n < 1 || strlen(tag) != CUSTODY_TAG_HEX) {
		tag[0] = '\0';
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the audit log's integrity tag is "
				       "damaged: the store was changed outside "
				       "custody");
	}
	*seq = n;
	return CUSTODY_OK;
}

static int
tag_matches(custody_store *st, int64_t seq, const char *hash,
	    const char *stored, custody_err *err)
{
	char want[CUSTODY_TAG_HEX + 1];
	int r = custody_store_tag_audit_head(st, seq, hash, 0, want, err);

	if (r != CUSTODY_OK)
		return r;
	if (!custody_store_tags_same(stored, want))
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the audit log fails its integrity check "
				       "at entry %lld: it was rewritten outside "
				       "custody", (long long)seq);
	return CUSTODY_OK;
}

/* The tagged entry lies before the head: every entry after it must be
 * chained to it and be one that a node without the KEK appended. */
static int
check_gap(custody_store *st, int64_t tag_seq, const char *tag,
	  int64_t head_seq, custody_err *err)
{
	custody_audit_entry *e = NULL;
	size_t n = 0, i, at = 0;
	int r, genuine = 0, found = 0;

	if ((r = custody_store_list_audit(st, 0, &e, &n, err)) != CUSTODY_OK)
		goto out;
	for (i = 0; i < n && !found; i++)
		if (e[i].seq == tag_seq) {
			at = i;
			found = 1;
		}
	if (!found) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "the audit log fails its integrity check: "
				    "its tagged entry %lld is gone",
				    (long long)tag_seq);
		goto out;
	}
	if ((r = tag_matches(st, tag_seq, e[at].hash, tag, err)) != CUSTODY_OK)
		goto out;
	for (i = at + 1; i < n; i++) {
		if ((r = is_genuine_as(&e[i], e[i].seq, &genuine, err)) !=
		    CUSTODY_OK)
			goto out;
		if (!genuine || e[i].seq != e[i - 1].seq + 1 ||
		    strcmp(e[i].prev_hash, e[i - 1].hash) != 0 ||
		    !written_before_membership(&e[i])) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "the audit log fails its integrity "
					    "check at entry %lld: after its "
					    "tagged entry %lld stands what no "
					    "member wrote", (long long)e[i].seq,
					    (long long)tag_seq);
			goto out;
		}
	}
	if (e[n - 1].seq != head_seq)
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "the audit log fails its integrity check: "
				    "its head is not its last entry");
out:
	custody_audit_entries_free(e, n);
	return r;
}

int
custody_audit_check_tag(custody_store *st, int64_t head_seq,
			const char *head_hash, custody_err *err)
{
	char tag[CUSTODY_TAG_HEX + 1];
	int64_t tag_seq = 0;
	int on = 0, r;

	if ((r = read_tag(st, &tag_seq, tag, err)) != CUSTODY_OK)
		return r;
	if (tag_seq == 0) {
		if (head_seq == 0)
			return CUSTODY_OK;
		if ((r = custody_store_tags_on(st, &on, err)) != CUSTODY_OK)
			return r;
		if (!on)
			return custody_err_set(err, CUSTODY_EFAIL,
					       "the audit log carries no "
					       "integrity tag yet (written "
					       "before custody tagged it)");
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the audit log carries no integrity tag: "
				       "the store was changed outside custody");
	}
	if (tag_seq > head_seq)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the audit log fails its integrity check: "
				       "its head (entry %lld) is older than its "
				       "tagged entry %lld: entries were cut",
				       (long long)head_seq, (long long)tag_seq);
	if (tag_seq == head_seq)
		return tag_matches(st, head_seq, head_hash, tag, err);
	return check_gap(st, tag_seq, tag, head_seq, err);
}

int
custody_audit_tag_head(custody_store *st, int64_t seq, const char *hash,
		       custody_err *err)
{
	char tag[CUSTODY_TAG_HEX + 1], v[64];
	int r;

	if ((r = custody_store_tag_audit_head(st, seq, hash, 1, tag, err)) !=
	    CUSTODY_OK)
		return r;
	snprintf(v, sizeof(v), "%lld %s", (long long)seq, tag);
	return custody_store_put_meta(st, AUDIT_TAG_META, v, 1, err);
}

/* Before an append: the log must be genuine, and the appender able to tag
 * the new head.  *tag_after = 0 for a node without the KEK enrolling. */
static int
check_before_append(custody_store *st, const custody_audit_entry *e,
		    int64_t head_seq, const char *head_hash, int *tag_after,
		    custody_err *err)
{
	int on = 0, r;

	*tag_after = 0;
	if (!custody_store_has_tagger(st)) {
		if ((r = custody_store_tags_on(st, &on, err)) != CUSTODY_OK)
			return r;
		if (on && !written_before_membership(e))
			return custody_err_set(err, CUSTODY_EFAIL,
					       "cannot append to the audit log: "
					       "its head carries an integrity "
					       "tag, and no token is open to "
					       "move it");
		return CUSTODY_OK;
	}
	if ((r = custody_store_tags_on(st, &on, err)) != CUSTODY_OK)
		return r;
	r = on ? custody_audit_check_tag(st, head_seq, head_hash, err)
	       : CUSTODY_OK;
	if (r == CUSTODY_ENOTFOUND && written_before_membership(e))
		return CUSTODY_OK;	/* no KEK here yet */
	if (r != CUSTODY_OK)
		return r;
	*tag_after = 1;
	return CUSTODY_OK;
}

int
custody_audit_append(custody_store *st, const custody_audit_entry *draft,
		     custody_err *err)
{
	int r = CUSTODY_EFAIL;
	custody_audit_entry e;
	int64_t head_seq = 0;
	char head[CUSTODY_AUDIT_HASH_HEX + 1];
	int tag_after = 0;

	memset(&e, 0, sizeof(e));
	if ((r = check_draft(draft, err)) != CUSTODY_OK)
		return r;
	e = *draft;
	e.time = draft->time != 0 ? draft->time : (int64_t)time(NULL);
	if (e.actor[0] == '\0')
		custody_audit_actor(e.actor, sizeof(e.actor));
	r = custody_store_audit_head(st, &head_seq, head, err);
	if (r == CUSTODY_ENOTFOUND ||
	    (r == CUSTODY_OK && (strlen(head) != CUSTODY_AUDIT_HASH_HEX ||
				 head_seq < 0))) {
		custody_err_set(err, CUSTODY_EFAIL,
				"cannot append to the audit log: its head is %s "
				"(the store was edited outside custody)",
				r == CUSTODY_ENOTFOUND ? "missing" : "damaged");
		custody_err_hint(err, "custody audit --verify says what else changed");
		return CUSTODY_EFAIL;
	}
	if (r != CUSTODY_OK)
		return r;
	/* After the head, not after the last row: a cut tail stays a gap
	 * that --verify reports, instead of being papered over. */
	e.seq = head_seq + 1;
	memcpy(e.prev_hash, head, sizeof(e.prev_hash));
	if ((r = hash_as(&e, e.seq, e.hash, err)) != CUSTODY_OK ||
	    (r = check_before_append(st, &e, head_seq, head, &tag_after,
				     err)) != CUSTODY_OK ||
	    (r = custody_store_append_audit(st, &e, err)) != CUSTODY_OK)
		return r;
	if (tag_after) {
		r = custody_audit_tag_head(st, e.seq, e.hash, err);
		if (r == CUSTODY_ENOTFOUND && written_before_membership(&e))
			r = CUSTODY_OK;	/* no KEK here yet */
	}
	return r;
}

/* ------------------------------------------------------------ verify */

static int
is_genuine_as(const custody_audit_entry *e, int64_t seq, int *genuine,
	      custody_err *err)
{
	char h[CUSTODY_AUDIT_HASH_HEX + 1];
	int r = hash_as(e, seq, h, err);

	*genuine = r == CUSTODY_OK && e->hash[0] != '\0' && strcmp(h, e->hash) == 0;
	return r;
}

/* The index of an entry that is genuine as entry seq but is not at its
 * place `from`: stored under another seq, or after other entries; or n. */
static int
find_moved(const custody_audit_entry *e, size_t n, size_t from, int64_t seq,
	   size_t *found, custody_err *err)
{
	int r = CUSTODY_OK;
	size_t k;
	int genuine = 0;

	*found = n;
	for (k = from; k < n; k++) {
		if (k == from && e[k].seq == seq)
			continue;
		if ((r = is_genuine_as(&e[k], seq, &genuine, err)) != CUSTODY_OK)
			break;
		if (genuine) {
			*found = k;
			break;
		}
	}
	return r;
}

/* The message for the break found at index i (expected: its seq, and
 * what it should chain to). */
static int
report_break(const custody_audit_entry *e, size_t n, size_t i, int64_t expected,
	     int self_ok, size_t *first_bad, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	char what[DESCRIBE_MAX], before[DESCRIBE_MAX];
	size_t k = n;

	if ((r = find_moved(e, n, i, expected, &k, err)) != CUSTODY_OK)
		return r;
	r = CUSTODY_EFAIL;
	if (k < n && e[k].seq != expected) {
		*first_bad = i;
		custody_err_set(err, CUSTODY_EFAIL, "audit entry %lld (%s) is out of "
				"order: it is stored as entry %lld", (long long)expected,
				custody_audit_describe(&e[k], what, sizeof(what)),
				(long long)e[k].seq);
		return r;
	}
	if (k < n) {
		/* k > i: the right entry, listed after others. */
		*first_bad = i;
		custody_err_set(err, CUSTODY_EFAIL, "audit entry %lld (%s) is out of "
				"order: it comes after entry %lld", (long long)expected,
				custody_audit_describe(&e[k], what, sizeof(what)),
				(long long)e[k - 1].seq);
		return r;
	}
	*first_bad = i;
	custody_audit_describe(&e[i], what, sizeof(what));
	if (e[i].seq > expected) {
		char gone[64];
		char where[64];

		if (e[i].seq == expected + 1)
			snprintf(gone, sizeof(gone), "audit entry %lld was",
				 (long long)expected);
		else
			snprintf(gone, sizeof(gone), "audit entries %lld to %lld were",
				 (long long)expected, (long long)e[i].seq - 1);
		if (expected == 1)
			snprintf(where, sizeof(where), "the log starts at entry %lld",
				 (long long)e[i].seq);
		else
			snprintf(where, sizeof(where), "entry %lld", (long long)e[i].seq);
		if (expected == 1)
			custody_err_set(err, CUSTODY_EFAIL, "%s removed: %s (%s)",
					gone, where, what);
		else
			custody_err_set(err, CUSTODY_EFAIL, "%s removed: %s (%s) "
					"follows entry %lld", gone, where, what,
					(long long)expected - 1);
	} else if (e[i].seq < expected)
		custody_err_set(err, CUSTODY_EFAIL, "audit entry %lld (%s) is out of "
				"order: it follows entry %lld", (long long)e[i].seq,
				what, (long long)expected - 1);
	else if (!self_ok || i == 0)
		custody_err_set(err, CUSTODY_EFAIL, "audit entry %lld (%s) was edited",
				(long long)e[i].seq, what);
	else {
		/* Both hashes hold but the link does not: the entry before
		 * was edited and its hash recomputed. */
		*first_bad = i - 1;
		custody_err_set(err, CUSTODY_EFAIL, "audit entry %lld (%s) was "
				"edited: its hash was recomputed, entry %lld recorded "
				"another", (long long)e[i - 1].seq,
				custody_audit_describe(&e[i - 1], before, sizeof(before)),
				(long long)e[i].seq);
	}
	return r;
}

int
custody_audit_verify(const custody_audit_entry *e, size_t n, size_t *first_bad,
		     custody_err *err)
{
	int r = CUSTODY_EFAIL;
	const char *link = ZERO_HASH;
	int64_t expected = 1;
	size_t i, bad = 0;
	int self_ok = 0;

	if (e == NULL && n > 0) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot verify the audit log: no entries");
		goto out;
	}
	for (i = 0; i < n; i++, expected++) {
		if ((r = is_genuine_as(&e[i], e[i].seq, &self_ok, err)) != CUSTODY_OK)
			goto out;
		if (e[i].seq != expected || !self_ok ||
		    strcmp(e[i].prev_hash, link) != 0) {
			r = report_break(e, n, i, expected, self_ok, &bad, err);
			goto out;
		}
		link = e[i].hash;
	}
	r = CUSTODY_OK;
out:
	if (first_bad != NULL)
		*first_bad = r == CUSTODY_OK ? n : bad;
	return r;
}

/* The log against its head: a cut tail, an entry added past the head, or
 * a last entry edited with its hash recomputed. */
static int
check_head(const custody_audit_entry *e, size_t n, int64_t head_seq,
	   const char *head, custody_err *err)
{
	int64_t last_seq = n > 0 ? e[n - 1].seq : 0;
	const char *last_hash = n > 0 ? e[n - 1].hash : ZERO_HASH;
	char what[DESCRIBE_MAX];
	size_t i;

	if (head_seq > last_seq && n == 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the log was truncated: all its entries are "
				       "gone, the head records entry %lld",
				       (long long)head_seq);
	if (head_seq > last_seq)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the log was truncated after entry %lld (%s): "
				       "the head records entry %lld",
				       (long long)last_seq,
				       custody_audit_describe(&e[n - 1], what,
							      sizeof(what)),
				       (long long)head_seq);
	if (head_seq < last_seq) {
		for (i = 0; i < n && e[i].seq <= head_seq; i++)
			;
		return custody_err_set(err, CUSTODY_EFAIL,
				       "audit entry %lld (%s) was added outside "
				       "custody: the head records entry %lld",
				       (long long)e[i].seq,
				       custody_audit_describe(&e[i], what, sizeof(what)),
				       (long long)head_seq);
	}
	if (strcmp(head, last_hash) != 0) {
		if (n == 0)
			return custody_err_set(err, CUSTODY_EFAIL,
					       "the audit head was edited: the log "
					       "is empty but the head is not");
		return custody_err_set(err, CUSTODY_EFAIL,
				       "audit entry %lld (%s) does not match the "
				       "head: the entry (its hash recomputed) or "
				       "the head was edited", (long long)last_seq,
				       custody_audit_describe(&e[n - 1], what,
							      sizeof(what)));
	}
	return CUSTODY_OK;
}

int
custody_audit_verify_store(custody_store *st, size_t *n,
			   char head[CUSTODY_AUDIT_HASH_HEX + 1], custody_err *err)
{
	int r = CUSTODY_EFAIL;
	custody_audit_entry *e = NULL;
	size_t count = 0;
	int64_t head_seq = 0;
	char head_hash[CUSTODY_AUDIT_HASH_HEX + 1] = "";
	int in_tx = 0, tagged = 0;
	int head_r;

	/* One transaction: an append between the two reads would look
	 * like a cut tail or an entry added outside custody. */
	if ((r = custody_store_begin(st, err)) != CUSTODY_OK)
		goto out;
	in_tx = 1;
	if ((r = custody_store_list_audit(st, 0, &e, &count, err)) != CUSTODY_OK)
		goto out;
	head_r = custody_store_audit_head(st, &head_seq, head_hash, err);
	custody_store_rollback(st);
	in_tx = 0;
	if (head_r != CUSTODY_OK && head_r != CUSTODY_ENOTFOUND) {
		r = head_r;
		goto out;
	}
	if ((r = custody_audit_verify(e, count, NULL, err)) != CUSTODY_OK)
		goto out;
	if (head_r == CUSTODY_ENOTFOUND) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "the audit head is missing: the store was edited "
				    "outside custody");
		goto out;
	}
	if ((r = check_head(e, count, head_seq, head_hash, err)) != CUSTODY_OK)
		goto out;
	/* The head's integrity tag, where the token can check it and the
	 * store has tags (one written before them waits for `custody tag`). */
	if (custody_store_has_tagger(st) &&
	    ((r = custody_store_tags_on(st, &tagged, err)) != CUSTODY_OK ||
	     (tagged && (r = custody_audit_check_tag(st, head_seq, head_hash,
						     err)) != CUSTODY_OK)))
		goto out;
	if (n != NULL)
		*n = count;
	if (head != NULL)
		memcpy(head, head_hash, sizeof(head_hash));
	r = CUSTODY_OK;
out:
	if (in_tx)
		custody_store_rollback(st);
	custody_audit_entries_free(e, count);
	return r;
}
