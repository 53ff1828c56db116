/* store/store.c — the store interface (see custody/store.h): checks arguments,
 * keeps track of the write transaction and hands each call to the store
 * core (store/core.c), which runs it on the backend chosen by the URL (see
 * store/backend.h). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <custody/assign.h>
#include <custody/clock.h>
#include <custody/error.h>
#include <custody/hexfmt.h>
#include <custody/log.h>
#include <custody/store.h>

#include "store/core.h"
#include "util/module.h"
#include "store/records.h"

#define ACCEPTED_FORMS "sqlite:PATH or postgresql://[USER@]HOST[:PORT]/DBNAME"

struct custody_store {
	struct store_core core;	/* the backend and its connection */
	int in_transaction;
	custody_store_tag_fn tag_fn;	/* NULL until a token is attached */
	void *tag_ctx;
	void (*tag_free)(void *ctx);
	void (*tag_tx_end)(void *ctx, int committed);
	int tags_on;			/* the row_tags mark was seen */
	int made;			/* this open made the store */
	/* The open write transaction changed what members follow (an
	 * assignment, a certificate, a package, a cluster fact): its commit
	 * moves the generation. */
	int followed_change;
	/* custody_store_snapshot_begin: a read snapshot is open, and the
	 * integrity tags it holds are read once (sorted, for bsearch). */
	int in_snapshot;
	struct cached_tag *tags;
	size_t n_tags, tags_cap;
};

struct cached_tag {
	char kind[32];
	char name[2 * CUSTODY_NAME_MAX + 2];
	char tag[CUSTODY_TAG_HEX + 1];
};

static int
has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ------------------------------------------------- the PostgreSQL module */

/* Loaded once, kept for the life of the process; a failed load is tried
 * again at the next postgresql:// URL. */
static pthread_mutex_t pg_module_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct custody_store_backend *pg_module_backend;

/* The backend table of the PostgreSQL module (util/module.h). */
static int
load_pg_backend(const struct custody_store_backend **backend, custody_err *err)
{
	const void *symbol;
	const struct custody_store_backend *table;
	int r = CUSTODY_OK;

	pthread_mutex_lock(&pg_module_lock);
	if (pg_module_backend == NULL) {
		r = custody_module_symbol(CUSTODY_STORE_PG_MODULE, CUSTODY_STORE_PG_SYMBOL,
					  "the PostgreSQL store module", &symbol, err);
		table = symbol;
		if (r == CUSTODY_OK && (table->name == NULL ||
					strcmp(table->name, "postgresql") != 0 ||
					table->open == NULL))
			r = custody_err_set(err, CUSTODY_EFAIL, "the PostgreSQL store "
					    "module is not usable: %s is not a "
					    "PostgreSQL backend", CUSTODY_STORE_PG_SYMBOL);
		if (r == CUSTODY_OK)
			pg_module_backend = table;
	}
	*backend = pg_module_backend;
	pthread_mutex_unlock(&pg_module_lock);
	return r;
}

/* Which backend serves url, and the part of the URL it is given.  Only the
 * scheme of an unknown URL is quoted: the rest may hold a password. */
static int
choose_backend(const char *url, const struct custody_store_backend **backend,
	       const char **location, custody_err *err)
{
	int r = CUSTODY_EUSAGE;
	size_t scheme_len;

	if (url == NULL || url[0] == '\0')
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "no store URL given: use " ACCEPTED_FORMS);
	if (has_prefix(url, "sqlite:")) {
		if (has_prefix(url, "sqlite://") || url[7] == '\0')
			return custody_err_set(err, CUSTODY_EUSAGE,
					       "bad store URL \"%s\": use sqlite:PATH "
					       "(for example sqlite:/var/lib/custody/custody.db)",
					       url);
		*backend = &custody_store_sqlite_backend;
		*location = url + 7;
		return CUSTODY_OK;
	}
	if (has_prefix(url, "postgresql://") || has_prefix(url, "postgres://")) {
		/* libpq takes the whole URL. */
		if ((r = load_pg_backend(backend, err)) != CUSTODY_OK)
			return r;
		*location = url;
		return CUSTODY_OK;
	}
	scheme_len = strcspn(url, ":");
	if (url[scheme_len] == ':')
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "unknown store URL scheme \"%.*s\": use "
				    ACCEPTED_FORMS,
				    scheme_len > 32 ? 32 : (int)scheme_len, url);
	else
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "bad store URL \"%s\": use " ACCEPTED_FORMS,
				    url);
	return r;
}

/* A name fits when it is non-empty and at most CUSTODY_NAME_MAX long. */
static int
check_name(const char *what, const char *name, size_t size, custody_err *err)
{
	size_t len;

	if (name == NULL || name[0] == '\0')
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "bad assignment: the %s is empty", what);
	len = strnlen(name, size);
	if (len > CUSTODY_NAME_MAX || len == size)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "bad assignment: the %s is longer than %d "
				       "characters", what, CUSTODY_NAME_MAX);
	return CUSTODY_OK;
}

static int
check_slot(const char *what, const custody_slot *s, custody_err *err)
{
	if (strnlen(s->thumbprint, sizeof(s->thumbprint)) == sizeof(s->thumbprint))
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "bad assignment: the %s thumbprint is not "
				       "terminated", what);
	return CUSTODY_OK;
}

/* 1..64 of [A-Za-z0-9._-], as the token's node names. */
static int
check_node_name(const char *name, size_t size, custody_err *err)
{
	/* Terminated within its field, then a node's name. */
	if (name != NULL && strnlen(name, size) < size && custody_node_name_valid(name))
		return CUSTODY_OK;
	return custody_err_set(err, CUSTODY_EUSAGE,
			       "invalid node name: expected 1 to %d of "
			       "A-Z a-z 0-9 . _ -", CUSTODY_NAME_MAX);
}

static int
check_store(custody_store *st, const void *p, const char *what,
	    custody_err *err)
{
	if (st == NULL || p == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot %s: no store or no record", what);
	return CUSTODY_OK;
}

static int
check_writable(custody_store *st, const char *what, custody_err *err)
{
	if (st == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot %s: no store is open", what);
	if (!st->in_transaction)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot %s: no write transaction is open "
				       "(custody_store_begin comes first)", what);
	return CUSTODY_OK;
}

static int
check_thumbprint(const char *thumbprint, custody_err *err)
{
	if (thumbprint == NULL || thumbprint[0] == '\0')
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "no thumbprint given");
	return CUSTODY_OK;
}

/* -------------------------------------------------------- integrity tags */

/*
 * A row that decides trust, reduced to what its tag covers: its kind, the
 * name it is found by, and the SHA-256 of "custody-row-tag-v1", the kind
 * and every field that matters, each length-prefixed (NULL as "").
 */
struct row {
	const char *kind;
	char name[2 * CUSTODY_NAME_MAX + 2];
	unsigned char digest[CUSTODY_TAG_INPUT_LEN];
	int untagged;		/* a row no member wrote (an enrolled node) */
};

#define TAGS_META "row_tags"
#define TAGS_VERSION "v1"

static int
digest_add(EVP_MD_CTX *md, const void *p, size_t len)
{
	unsigned char n[8];
	uint64_t v = len;
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		n[i] = (unsigned char)(v & 0xff);
	return EVP_DigestUpdate(md, n, sizeof(n)) == 1 &&
	       (len == 0 || EVP_DigestUpdate(md, p, len) == 1);
}

static int
digest_str(EVP_MD_CTX *md, const char *s)
{
	return digest_add(md, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

static int
digest_i64(EVP_MD_CTX *md, int64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	return digest_str(md, buf);
}

/* Lower case: the store finds types and identities whatever their case. */
static int
digest_folded(EVP_MD_CTX *md, const char *s)
{
	char buf[CUSTODY_NAME_MAX + 1];
	size_t i;

	for (i = 0; s[i] != '\0' && i < CUSTODY_NAME_MAX; i++)
		buf[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
	buf[i] = '\0';
	return digest_str(md, buf);
}

static EVP_MD_CTX *
row_begin(struct row *row, const char *kind)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	memset(row, 0, sizeof(*row));
	row->kind = kind;
	if (md != NULL && (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
			   !digest_str(md, "custody-row-tag-v1") ||
			   !digest_str(md, kind))) {
		EVP_MD_CTX_free(md);
		md = NULL;
	}
	return md;
}

static int
row_end(EVP_MD_CTX *md, int ok, struct row *row, custody_err *err)
{
	unsigned int len = 0;

	ok = md != NULL && ok &&
	     EVP_DigestFinal_ex(md, row->digest, &len) == 1 &&
	     len == sizeof(row->digest);
	EVP_MD_CTX_free(md);
	if (!ok)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot digest the %s record %s for its "
				       "integrity tag", row->kind, row->name);
	return CUSTODY_OK;
}

static int
row_of_cert(const custody_cert_record *c, struct row *row, custody_err *err)
{
	EVP_MD_CTX *md = row_begin(row, "certificate");
	int ok = md != NULL;
	size_t i;

	snprintf(row->name, sizeof(row->name), "%s", c->thumbprint);
	ok = ok && digest_str(md, c->thumbprint) && digest_str(md, c->sha256) &&
	     digest_str(md, c->subject) && digest_str(md, c->issuer) &&
	     digest_str(md, c->serial) && digest_i64(md, c->not_before) &&
	     digest_i64(md, c->not_after) &&
	     digest_i64(md, (int64_t)c->n_alt_names);
	for (i = 0; ok && i < c->n_alt_names; i++)
		ok = digest_str(md, c->alt_names[i]);
	ok = ok && digest_str(md, c->key_algorithm) &&
	     digest_str(md, c->key_id) && digest_str(md, c->key_uri) &&
	     digest_str(md, c->label) && digest_add(md, c->der, c->der_len);
	return row_end(md, ok, row, err);
}

static int
digest_slot(EVP_MD_CTX *md, const custody_slot *s)
{
	return digest_str(md, s->thumbprint) && digest_i64(md, s->effective);
}

static int
row_of_assignment(const custody_assignment *a, struct row *row,
		  custody_err *err)
{
	EVP_MD_CTX *md = row_begin(row, "assignment");
	size_t i;

	snprintf(row->name, sizeof(row->name), "%s/%s", a->type, a->identity);
	for (i = 0; row->name[i] != '\0'; i++)
		if (row->name[i] >= 'A' && row->name[i] <= 'Z')
			row->name[i] = (char)(row->name[i] + 32);
	return row_end(md, md != NULL && digest_folded(md, a->type) &&
		       digest_folded(md, a->identity) &&
		       digest_slot(md, &a->current) &&
		       digest_slot(md, &a->previous) &&
		       digest_slot(md, &a->pending), row, err);
}

static int
row_of_package(const custody_package_record *p, struct row *row,
	       custody_err *err)
{
	EVP_MD_CTX *md = row_begin(row, "package");

	snprintf(row->name, sizeof(row->name), "%s", p->thumbprint);
	return row_end(md, md != NULL && digest_str(md, p->thumbprint) &&
		       digest_str(md, p->key_id) &&
		       digest_add(md, p->wrapped, p->wrapped_len) &&
		       digest_str(md, p->kcv) &&
		       digest_i64(md, p->created_at) &&
		       digest_str(md, p->node), row, err);
}

static int
row_of_node(const custody_node_record *n, struct row *row, custody_err *err)
{
	EVP_MD_CTX *md = row_begin(row, "node");

	snprintf(row->name, sizeof(row->name), "%s", n->name);
	/* An enrolled node holds no KEK yet: its row is what the operator
	 * confirms at admit (the transport key's fingerprint). */
	row->untagged = strcmp(n->state, "enrolled") == 0;
	return row_end(md, md != NULL && digest_str(md, n->name) &&
		       digest_str(md, n->state) &&
		       digest_add(md, n->transport_spki,
				  n->transport_spki_len) &&
		       digest_add(md, n->kek_wrap, n->kek_wrap_len) &&
		       digest_str(md, n->admitted_by) &&
		       digest_str(md, n->kek_check) &&
		       digest_add(md, n->admission_sig,
				  n->admission_sig_len) &&
		       digest_i64(md, n->enrolled_at) &&
		       digest_i64(md, n->admitted_at) &&
		       digest_i64(md, n->joined_at), row, err);
}

static int
row_of_audit_head(int64_t seq, const char *hash, struct row *row,
		  custody_err *err)
{
	EVP_MD_CTX *md = row_begin(row, "audit");

	snprintf(row->name, sizeof(row->name), "%lld", (long long)seq);
	return row_end(md, md != NULL && digest_i64(md, seq) &&
		       digest_str(md, hash), row, err);
}

void
custody_store_set_tagger(custody_store *st, custody_store_tag_fn fn, void *ctx,
			 void (*free_ctx)(void *ctx))
{
	if (st == NULL)
		return;
	if (st->tag_free != NULL)
		st->tag_free(st->tag_ctx);
	st->tag_fn = fn;
	st->tag_ctx = ctx;
	st->tag_free = free_ctx;
	st->tag_tx_end = NULL;
}

void
custody_store_set_tagger_tx_end(custody_store *st,
				void (*tx_end)(void *ctx, int committed))
{
	if (st != NULL)
		st->tag_tx_end = tx_end;
}

/* The tagger hears how each write transaction ended. */
static void
tell_tx_end(custody_store *st, int committed)
{
	if (st->tag_tx_end != NULL)
		st->tag_tx_end(st->tag_ctx, committed);
}

int
custody_store_has_tagger(const custody_store *st)
{
	return st != NULL && st->tag_fn != NULL;
}

int
custody_store_tags_on(custody_store *st, int *on, custody_err *err)
{
	char v[16];
	int r;

	*on = 0;
	if (st == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot read the store: none is open");
	if (st->tags_on) {
		*on = 1;
		return CUSTODY_OK;
	}
	r = store_core_get_meta(&st->core, TAGS_META, v, sizeof(v), err);
	if (r == CUSTODY_ENOTFOUND)
		return CUSTODY_OK;
	if (r != CUSTODY_OK)
		return r;
	st->tags_on = *on = 1;
	return CUSTODY_OK;
}

/* The tag of a row whose digest is made: the tagger's, for writing. */
static int
make_tag(custody_store *st, const struct row *row, int for_write,
	 char tag[CUSTODY_TAG_HEX + 1], custody_err *err)
{
	int r = st->tag_fn(st->tag_ctx, row->digest, for_write, tag, err);

	/* A refused PIN says so itself, first: it is not about the row. */
	if (r != CUSTODY_OK && r != CUSTODY_EPIN)
		custody_err_prefix(err, "cannot %s the integrity tag of the %s "
				   "record %s", for_write ? "make" : "check",
				   row->kind, row->name);
	return r;
}

/* Tags a row just written (or removes a stale tag where none is due). */
static int
tag_written(custody_store *st, const struct row *row, custody_err *err)
{
	char tag[CUSTODY_TAG_HEX + 1];
	int on = 0, r;

	if (row->untagged)
		return store_core_put_tag(&st->core, row->kind, row->name,
					  NULL, err);
	if (st->tag_fn == NULL) {
		if ((r = custody_store_tags_on(st, &on, err)) != CUSTODY_OK)
			return r;
		if (on) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot save the %s record %s: the "
					    "store's rows carry integrity tags, "
					    "and no token is open to make one",
					    row->kind, row->name);
			custody_err_hint(err, "a program writes the store "
					 "through custody_integrity_attach");
			return r;
		}
		return store_core_put_tag(&st->core, row->kind, row->name,
					  NULL, err);
	}
	if ((r = make_tag(st, row, 1, tag, err)) != CUSTODY_OK)
		return r;
	return store_core_put_tag(&st->core, row->kind, row->name, tag, err);
}

/* Constant-time comparison of two tags. */
static int
same_tag(const char *a, const char *b)
{
	return strlen(a) == CUSTODY_TAG_HEX && strlen(b) == CUSTODY_TAG_HEX &&
	       CRYPTO_memcmp(a, b, CUSTODY_TAG_HEX) == 0;
}

static int
compare_tags(const void *a, const void *b)
{
	const struct cached_tag *x = a, *y = b;
	int c = strcmp(x->kind, y->kind);

	return c != 0 ? c : strcmp(x->name, y->name);
}

/* The tag of row as the snapshot read it; ENOTFOUND when it has none. */
static int
cached_tag(custody_store *st, const struct row *row,
	   char stored[CUSTODY_TAG_HEX + 1])
{
	struct cached_tag key;
	const struct cached_tag *hit;

	memset(&key, 0, sizeof(key));
	snprintf(key.kind, sizeof(key.kind), "%s", row->kind);
	snprintf(key.name, sizeof(key.name), "%s", row->name);
	hit = bsearch(&key, st->tags, st->n_tags, sizeof(*st->tags), compare_tags);
	if (hit == NULL)
		return CUSTODY_ENOTFOUND;
	memcpy(stored, hit->tag, CUSTODY_TAG_HEX + 1);
	return CUSTODY_OK;
}

static int
keep_tag(void *arg, const char *kind, const char *name, const char *tag,
	 custody_err *err)
{
	custody_store *st = arg;
	struct cached_tag *grown;
	size_t cap;

	if (st->n_tags == st->tags_cap) {
		cap = st->tags_cap > 0 ? st->tags_cap * 2 : 64;
		if ((grown = realloc(st->tags, cap * sizeof(*grown))) == NULL)
			return custody_err_set(err, CUSTODY_EFAIL, "cannot read the "
					       "integrity tags: out of memory");
		st->tags = grown;
		st->tags_cap = cap;
	}
	snprintf(st->tags[st->n_tags].kind, sizeof(st->tags->kind), "%s", kind);
	snprintf(st->tags[st->n_tags].name, sizeof(st->tags->name), "%s", name);
	snprintf(st->tags[st->n_tags].tag, sizeof(st->tags->tag), "%s", tag);
	st->n_tags++;
	return CUSTODY_OK;
}

static void
drop_tags(custody_store *st)
{
	free(st->tags);
	st->tags = NULL;
	st->n_tags = st->tags_cap = 0;
}

/* EFAIL naming the row when its tag is missing or wrong. */
static int
check_row(custody_store *st, const struct row *row, custody_err *err)
{
	char stored[CUSTODY_TAG_HEX + 1], want[CUSTODY_TAG_HEX + 1];
	int on = 0, r;

	if (row->untagged)
		return CUSTODY_OK;
	if ((r = custody_store_tags_on(st, &on, err)) != CUSTODY_OK)
		return r;
	if (!on) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "the store's rows carry no integrity tags "
				    "yet (written before custody tagged them): "
				    "the %s record %s cannot be trusted",
				    row->kind, row->name);
		custody_err_hint(err, "an operator checks and tags them once: "
				 "custody tag");
		return r;
	}
	if (st->tag_fn == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot check the %s record %s: no token "
				       "is open to check its integrity tag",
				       row->kind, row->name);
	r = st->in_snapshot ? cached_tag(st, row, stored) :
		store_core_get_tag(&st->core, row->kind, row->name, stored, err);
	if (r == CUSTODY_ENOTFOUND) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "the store's %s record %s carries no "
				    "integrity tag: it was written outside "
				    "custody", row->kind, row->name);
		custody_err_hint(err, "nothing custody wrote is missing its tag: "
				 "find who writes the store directly");
		return r;
	}
	if (r != CUSTODY_OK || (r = make_tag(st, row, 0, want, err)) != CUSTODY_OK)
		return r;
	if (!same_tag(stored, want)) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "the store's %s record %s fails its integrity "
				    "check: it was changed outside custody",
				    row->kind, row->name);
		custody_err_hint(err, "nothing was used; find who writes the "
				 "store directly");
		return r;
	}
	return CUSTODY_OK;
}

/* Reads check where a token is attached: a store whose tags are gone
 * (its row_tags mark deleted, as a writer without the KEK can) is refused
 * as one written before tags, until `custody tag` vouches for it. */
static int
check_read(custody_store *st, const struct row *row, custody_err *err)
{
	if (st->tag_fn == NULL)
		return CUSTODY_OK;
	return check_row(st, row, err);
}

/* The row of rec's key as the store holds it now: its digest, for telling
 * a row changed while it was read (its row and tag are two reads outside
 * a transaction) from one that fails its tag. */
static int
fetch_cert(custody_store *st, const custody_cert_record *rec, struct row *row,
	   custody_err *err)
{
	custody_cert_record now;
	int r;

	memset(&now, 0, sizeof(now));
	if ((r = store_core_get_cert(&st->core, rec->thumbprint, &now,
				     err)) == CUSTODY_OK)
		r = row_of_cert(&now, row, err);
	custody_cert_record_clear(&now);
	return r;
}

static int
fetch_assignment(custody_store *st, const custody_assignment *rec,
		 struct row *row, custody_err *err)
{
	custody_assignment now;
	int r;

	memset(&now, 0, sizeof(now));
	if ((r = store_core_get_assignment(&st->core, rec->type,
					   rec->identity, &now, err)) ==
	    CUSTODY_OK)
		r = row_of_assignment(&now, row, err);
	return r;
}

static int
fetch_package(custody_store *st, const custody_package_record *rec,
	      struct row *row, custody_err *err)
{
	custody_package_record now;
	int r;

	memset(&now, 0, sizeof(now));
	if ((r = store_core_get_package(&st->core, rec->thumbprint, &now,
					err)) == CUSTODY_OK)
		r = row_of_package(&now, row, err);
	custody_package_record_clear(&now);
	return r;
}

static int
fetch_node(custody_store *st, const custody_node_record *rec, struct row *row,
	   custody_err *err)
{
	custody_node_record now;
	int r;

	memset(&now, 0, sizeof(now));
	if ((r = store_core_get_node(&st->core, rec->name, &now, err)) ==
	    CUSTODY_OK)
		r = row_of_node(&now, row, err);
	custody_node_record_clear(&now);
	return r;
}

/* check_row, once more when it failed outside a transaction: ECONFLICT
 * when the row changed meanwhile (a concurrent writer, not a forgery). */
static int
check_row_again(custody_store *st, const struct row *row, int r,
		int fetched, const struct row *fresh, custody_err *err)
{
	/* Inside a transaction too: PostgreSQL's read committed shows each
	 * statement what committed before it. */
	if (r != CUSTODY_EFAIL || st->tag_fn == NULL || fetched != CUSTODY_OK)
		return r;
	if (CRYPTO_memcmp(fresh->digest, row->digest, sizeof(row->digest)) != 0)
		return custody_err_set(err, CUSTODY_ECONFLICT,
				       "the store's %s record %s changed while "
				       "it was read: read it again", row->kind,
				       row->name);
	return check_row(st, row, err);
}

#define ROW_FUNCTIONS(name, type, row_of)				\
	static int							\
	tag_##name(custody_store *st, const type *rec, custody_err *err)	\
	{								\
		struct row row;						\
		int r = row_of(rec, &row, err);				\
									\
		return r != CUSTODY_OK ? r : tag_written(st, &row, err);	\
	}								\
	static int __attribute__((unused))				\
	check_##name##_on_read(custody_store *st, const type *rec,	\
			       custody_err *err)			\
	{								\
		struct row row;						\
		int r = row_of(rec, &row, err);				\
									\
		return r != CUSTODY_OK ? r : check_read(st, &row, err);	\
	}								\
	int								\
	custody_store_check_##name(custody_store *st, const type *rec,	\
				   custody_err *err)			\
	{								\
		struct row row;						\
		int r;							\
									\
		if (st == NULL || rec == NULL)				\
			return custody_err_set(err, CUSTODY_EUSAGE,	\
					       "cannot check a record: no "	\
					       "store or no record");	\
		if ((r = row_of(rec, &row, err)) != CUSTODY_OK)		\
			return r;					\
		if ((r = check_row(st, &row, err)) == CUSTODY_EFAIL) {	\
			struct row fresh;				\
			int fetched = fetch_##name(st, rec, &fresh, NULL);	\
									\
			r = check_row_again(st, &row, r, fetched, &fresh,	\
					    err);			\
		}							\
		return r;						\
	}								\
	int								\
	custody_store_retag_##name(custody_store *st, const type *rec,	\
				   custody_err *err)			\
	{								\
		int r;							\
									\
		if ((r = check_writable(st, "tag a record", err)) !=	\
		    CUSTODY_OK)						\
			return r;					\
		if (st->tag_fn == NULL)					\
			return custody_err_set(err, CUSTODY_EUSAGE,	\
					       "cannot tag a record: no "	\
					       "token is attached");	\
		return tag_##name(st, rec, err);			\
	}

ROW_FUNCTIONS(cert, custody_cert_record, row_of_cert)
ROW_FUNCTIONS(assignment, custody_assignment, row_of_assignment)
ROW_FUNCTIONS(package, custody_package_record, row_of_package)
ROW_FUNCTIONS(node, custody_node_record, row_of_node)

/* A row just written is tagged as the store now holds it (a backend may
 * keep some fields of an older row: put_cert updates the key URI and the
 * label alone). */
#define TAG_STORED(name, type)						\
	static int							\
	tag_stored_##name(custody_store *st, const type *rec,		\
			  custody_err *err)				\
	{								\
		struct row row;						\
		int r = fetch_##name(st, rec, &row, err);		\
									\
		return r != CUSTODY_OK ? r : tag_written(st, &row, err);	\
	}

TAG_STORED(cert, custody_cert_record)
TAG_STORED(node, custody_node_record)
TAG_STORED(package, custody_package_record)

/* The same for an assignment, whose empty record deletes the row: its
 * tag goes with it. */
static int
tag_stored_assignment(custody_store *st, const custody_assignment *a,
		      custody_err *err)
{
	struct row row;
	int r = fetch_assignment(st, a, &row, err);

	if (r == CUSTODY_OK)
		return tag_written(st, &row, err);
	if (r == CUSTODY_ENOTFOUND &&
	    (r = row_of_assignment(a, &row, err)) == CUSTODY_OK)
		r = store_core_put_tag(&st->core, row.kind, row.name, NULL,
				       err);
	return r;
}

/* Before an assignment is replaced: the row it replaces must be genuine,
 * or a change would pass the forged parts on under a fresh tag. */
static int
check_before_overwrite(custody_store *st, const custody_assignment *a,
		       custody_err *err)
{
	custody_assignment old;
	int r;

	if (st->tag_fn == NULL)
		return CUSTODY_OK;
	memset(&old, 0, sizeof(old));
	r = store_core_get_assignment(&st->core, a->type, a->identity, &old,
				      err);
	if (r == CUSTODY_ENOTFOUND)
		return CUSTODY_OK;
	if (r != CUSTODY_OK)
		return r;
	/* A row changed between its read and its tag's (a concurrent
	 * writer under read committed) is a conflict, as a stale version. */
	return custody_store_check_assignment(st, &old, err);
}

int
custody_store_tag_audit_head(custody_store *st, int64_t seq, const char *hash,
			     int for_write, char tag[CUSTODY_TAG_HEX + 1],
			     custody_err *err)
{
	struct row row;
	int r;

	if (st == NULL || hash == NULL || tag == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot tag the audit log: no store or "
				       "no head");
	if (st->tag_fn == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot %s the audit log's integrity tag: "
				       "no token is open",
				       for_write ? "make" : "check");
	if ((r = row_of_audit_head(seq, hash, &row, err)) != CUSTODY_OK)
		return r;
	return make_tag(st, &row, for_write, tag, err);
}

int
custody_store_tags_enable(custody_store *st, custody_err *err)
{
	int r;

	if ((r = check_writable(st, "mark the store as tagged", err)) !=
	    CUSTODY_OK ||
	    (r = store_core_put_meta(&st->core, TAGS_META, TAGS_VERSION, 1,
				     err)) != CUSTODY_OK)
		return r;
	st->tags_on = 1;
	return CUSTODY_OK;
}

int
custody_store_tags_same(const char *a, const char *b)
{
	return a != NULL && b != NULL && same_tag(a, b);
}

int
custody_store_schema_version(void)
{
	return CUSTODY_STORE_SCHEMA_VERSION;
}

static int
open_store(const char *url, int create, custody_store **out, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	const struct custody_store_backend *backend = NULL;
	const char *location = NULL;
	custody_store *st = NULL;

	if (out == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot open the store: nowhere to put it");
		goto out;
	}
	*out = NULL;
	if ((r = choose_backend(url, &backend, &location, err)) != CUSTODY_OK)
		goto out;
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot open the store: out of memory");
		goto out;
	}
	st->core.backend = backend;
	if ((r = backend->open(location, create, &st->core.conn, err)) != CUSTODY_OK) {
		if (r == CUSTODY_ENOTFOUND)
			r = store_core_no_store(location, err);
		goto out;
	}
	if ((r = store_core_migrate(&st->core, create, &st->made, err)) !=
	    CUSTODY_OK) {
		backend->close(st->core.conn);
		goto out;
	}
	*out = st;
	st = NULL;
	r = CUSTODY_OK;
out:
	free(st);
	return r;
}

int
custody_store_open(const char *url, custody_store **out, custody_err *err)
{
	return open_store(url, 1, out, err);
}

int
custody_store_open_existing(const char *url, custody_store **out,
			    custody_err *err)
{
	return open_store(url, 0, out, err);
}

int
custody_store_made(const custody_store *st)
{
	return st != NULL && st->made;
}

const char *
custody_store_where(const custody_store *st)
{
	return st != NULL ? st->core.backend->where(st->core.conn) : "(none)";
}

int
custody_store_begin(custody_store *st, custody_err *err)
{
	int r;

	if (st == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot begin a transaction: no store is "
				       "open");
	if (st->in_transaction || st->in_snapshot)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot begin a transaction: one is "
				       "already open");
	if ((r = st->core.backend->begin(st->core.conn, err)) == CUSTODY_OK)
		st->in_transaction = 1;
	st->followed_change = 0;
	return r;
}

int
custody_store_snapshot_begin(custody_store *st, custody_err *err)
{
	int on = 0, r;

	if (st == NULL || st->in_transaction || st->in_snapshot)
		return custody_err_set(err, CUSTODY_EUSAGE, "cannot begin a read "
				       "snapshot: no store, or a transaction is "
				       "open");
	if ((r = st->core.backend->begin_read(st->core.conn, err)) != CUSTODY_OK)
		return r;
	st->in_snapshot = 1;
	/* The tags only where reads check them (a token is attached). */
	if (st->tag_fn != NULL &&
	    ((r = custody_store_tags_on(st, &on, err)) != CUSTODY_OK ||
	     (on && (r = store_core_list_tags(&st->core, keep_tag, st, err)) !=
	      CUSTODY_OK))) {
		custody_store_snapshot_end(st);
		return r;
	}
	if (st->n_tags > 1)
		qsort(st->tags, st->n_tags, sizeof(*st->tags), compare_tags);
	return CUSTODY_OK;
}

void
custody_store_snapshot_end(custody_store *st)
{
	if (st == NULL || !st->in_snapshot)
		return;
	st->in_snapshot = 0;
	st->core.backend->rollback(st->core.conn);
	drop_tags(st);
}

int
custody_store_commit(custody_store *st, custody_err *err)
{
	int r;

	if ((r = check_writable(st, "commit", err)) != CUSTODY_OK)
		return r;
	/* The generation moves with the change it counts, as the last
	 * statement: its row lock is held only for the commit.  Not in a
	 * transaction a failed statement aborted: its commit says so. */
	if (st->followed_change &&
	    !(st->core.backend->aborted != NULL && st->core.backend->aborted(st->core.conn)) &&
	    (r = store_core_bump_generation(&st->core, err)) != CUSTODY_OK) {
		custody_store_rollback(st);
		return r;
	}
	/* Committed or rolled back: either way the transaction is over. */
	st->in_transaction = 0;
	st->followed_change = 0;
	r = st->core.backend->commit(st->core.conn, err);
	tell_tx_end(st, r == CUSTODY_OK);
	return r;
}

void
custody_store_rollback(custody_store *st)
{
	if (st == NULL || !st->in_transaction)
		return;
	st->in_transaction = 0;
	st->followed_change = 0;
	st->core.backend->rollback(st->core.conn);
	tell_tx_end(st, 0);
}

void
custody_store_close(custody_store *st)
{
	if (st == NULL)
		return;
	custody_store_rollback(st);
	custody_store_snapshot_end(st);
	custody_store_set_tagger(st, NULL, NULL, NULL);
	st->core.backend->close(st->core.conn);
	free(st);
}

void
custody_store_close_failed(custody_store *st)
{
	custody_err ignored;

	if (st == NULL)
		return;
	memset(&ignored, 0, sizeof(ignored));
	custody_store_rollback(st);
	if (st->made &&
	    store_core_unmake(&st->core, &ignored) != CUSTODY_OK)
		custody_debug("store %s stays: %s", custody_store_where(st),
			      ignored.msg);
	custody_store_close(st);
}

/* Row and tag are two reads: outside a transaction of the caller's they
 * are made in one snapshot, so a change committed between them cannot
 * look like a forgery.  *began says whether read_end has one to end. */
static int
read_begin(custody_store *st, int *began, custody_err *err)
{
	int r;

	*began = 0;
	if (st->in_transaction || st->in_snapshot || st->tag_fn == NULL)
		return CUSTODY_OK;
	if ((r = st->core.backend->begin_read(st->core.conn, err)) == CUSTODY_OK)
		*began = 1;
	return r;
}

static void
read_end(custody_store *st, int began)
{
	if (began)
		st->core.backend->rollback(st->core.conn);
}

/* custody/store.h's lists: *out and *n are reset once there is a store
 * and somewhere to put them; a filter of text names a node. */
static int
list_records(custody_store *st, enum store_list list,
	     const struct store_value *filter, void **out, size_t *n,
	     const char *what, custody_err *err)
{
	int r;

	if (st == NULL || out == NULL || n == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot %s: no store or no list", what);
	*out = NULL;
	*n = 0;
	if (filter != NULL && filter->kind == STORE_TEXT &&
	    (r = check_node_name(filter->text, CUSTODY_NAME_MAX + 2, err)) !=
		    CUSTODY_OK)
		return r;
	return store_core_list(&st->core, list, filter, out, n, err);
}

/* The gate of a roll over nodes and reports already read: how many
 * members that have joined must hold the key of a's pending certificate
 * (custody_assign_pending_needs), and how many of them do not report
 * holding it, their names ", "-separated into names (NULL: not wanted). */
static void
gate_count(const custody_assignment *a, const custody_node_record *nodes, size_t n_nodes,
	   const custody_report_record *reports, size_t n_reports, size_t *needed,
	   size_t *missing, char *names, size_t size)
{
	size_t i, k, used = 0;
	int held;

	*needed = *missing = 0;
	if (names != NULL && size > 0)
		names[0] = '\0';
	for (i = 0; i < n_nodes; i++) {
		if (strcmp(nodes[i].state, "joined") != 0 ||
		    !custody_assign_pending_needs(a, nodes[i].name))
			continue;
		(*needed)++;
		for (k = 0, held = 0; k < n_reports && !held; k++)
			held = reports[k].held && strcmp(reports[k].node, nodes[i].name) == 0 &&
			       strcmp(reports[k].thumbprint, a->pending.thumbprint) == 0;
		if (held)
			continue;
		if (names != NULL && used < size)
			used += (size_t)snprintf(names + used, size - used, "%s%s",
						 *missing > 0 ? ", " : "", nodes[i].name);
		(*missing)++;
	}
}

/* Every node and every node's reports, for the gate. */
static int
gate_read(custody_store *st, custody_node_record **nodes, size_t *n_nodes,
	  custody_report_record **reports, size_t *n_reports, custody_err *err)
{
	/* The reports' statement takes a node, NULL for every node's: a
	 * backend with typed parameters (PostgreSQL) needs that value bound. */
	struct store_value every_node = { .kind = STORE_NULL };
	int r;

	*nodes = NULL;
	*reports = NULL;
	*n_nodes = *n_reports = 0;
	if ((r = store_core_list(&st->core, STORE_LIST_NODES, NULL, (void **)nodes, n_nodes,
				 err)) != CUSTODY_OK)
		return r;
	return store_core_list(&st->core, STORE_LIST_REPORTS, &every_node, (void **)reports,
			       n_reports, err);
}

/* Each assignment with a pending certificate is held back (hold_pending)
 * while a member that must hold its key does not report holding it.  What
 * cannot be read holds every roll back: a roll never takes effect on
 * facts the store could not give. */
static void
annotate_holds(custody_store *st, custody_assignment *a, size_t n)
{
	custody_node_record *nodes = NULL;
	custody_report_record *reports = NULL;
	size_t n_nodes = 0, n_reports = 0, i, needed, missing;
	int pending = 0, read_ok;
	custody_err ignored;

	for (i = 0; i < n; i++) {
		a[i].hold_pending = 0;
		pending |= a[i].pending.thumbprint[0] != '\0';
	}
	if (!pending)
		return;
	read_ok = gate_read(st, &nodes, &n_nodes, &reports, &n_reports, &ignored) == CUSTODY_OK;
	for (i = 0; i < n; i++) {
		if (a[i].pending.thumbprint[0] == '\0')
			continue;
		gate_count(&a[i], nodes, n_nodes, reports, n_reports, &needed, &missing, NULL, 0);
		a[i].hold_pending = !read_ok || missing > 0;
	}
	custody_node_records_free(nodes, n_nodes);
	free(reports);
}

int
custody_store_roll_gate(custody_store *st, const custody_assignment *a, size_t *needed,
			size_t *missing, char *names, size_t size, custody_err *err)
{
	custody_node_record *nodes = NULL;
	custody_report_record *reports = NULL;
	size_t n_nodes = 0, n_reports = 0;
	int r;

	*needed = *missing = 0;
	if (names != NULL && size > 0)
		names[0] = '\0';
	if ((r = check_store(st, a, "read the gate of a roll", err)) != CUSTODY_OK ||
	    a->pending.thumbprint[0] == '\0')
		return r;
	if ((r = gate_read(st, &nodes, &n_nodes, &reports, &n_reports, err)) == CUSTODY_OK)
		gate_count(a, nodes, n_nodes, reports, n_reports, needed, missing, names, size);
	custody_node_records_free(nodes, n_nodes);
	free(reports);
	return r;
}

int
custody_store_get_assignment(custody_store *st, const char *type,
			     const char *identity, custody_assignment *out,
			     custody_err *err)
{
	int r = CUSTODY_EFAIL, began = 0;

	if ((r = check_store(st, out, "read an assignment", err)) != CUSTODY_OK)
		return r;
	if ((r = check_name("type", type, CUSTODY_NAME_MAX + 1, err)) != CUSTODY_OK ||
	    (r = check_name("identity", identity, CUSTODY_NAME_MAX + 1, err)) !=
		    CUSTODY_OK)
		return r;
	if ((r = read_begin(st, &began, err)) != CUSTODY_OK)
		return r;
	if ((r = store_core_get_assignment(&st->core, type, identity, out,
					   err)) == CUSTODY_OK)
		r = check_assignment_on_read(st, out, err);
	if (r == CUSTODY_OK)
		annotate_holds(st, out, 1);
	read_end(st, began);
	return r;
}

int
custody_store_list_assignments(custody_store *st, custody_assignment **out,
			       size_t *n, custody_err *err)
{
	int r = list_records(st, STORE_LIST_ASSIGNMENTS, NULL, (void **)out, n,
			     "list assignments", err);

	if (r == CUSTODY_OK)
		annotate_holds(st, *out, *n);
	return r;
}

int
custody_store_put_assignment(custody_store *st, custody_assignment *a,
			     custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_writable(st, "save the assignment", err)) != CUSTODY_OK)
		return r;
	if (a == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot save the assignment: no record");
	if ((r = check_name("type", a->type, sizeof(a->type), err)) != CUSTODY_OK ||
	    (r = check_name("identity", a->identity, sizeof(a->identity), err)) !=
		    CUSTODY_OK ||
	    (r = check_slot("current", &a->current, err)) != CUSTODY_OK ||
	    (r = check_slot("previous", &a->previous, err)) != CUSTODY_OK ||
	    (r = check_slot("pending", &a->pending, err)) != CUSTODY_OK)
		return r;
	if (a->version < 0)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "bad assignment: negative version %lld",
				       (long long)a->version);
	if ((r = check_before_overwrite(st, a, err)) != CUSTODY_OK)
		return r;
	if ((r = store_core_put_assignment(&st->core, a, err)) != CUSTODY_OK)
		return r;
	st->followed_change = 1;
	r = tag_stored_assignment(st, a, err);
	return r;
}

int
custody_store_put_cert(custody_store *st, const custody_cert_record *rec,
		       custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_writable(st, "save the certificate", err)) != CUSTODY_OK)
		return r;
	if (rec == NULL || rec->thumbprint[0] == '\0' || rec->sha256[0] == '\0' ||
	    rec->der == NULL || rec->der_len == 0 ||
	    (rec->n_alt_names > 0 && rec->alt_names == NULL))
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot save the certificate: the record lacks "
				       "its thumbprint, fingerprint or DER");
	if (strnlen(rec->thumbprint, sizeof(rec->thumbprint)) == sizeof(rec->thumbprint) ||
	    strnlen(rec->sha256, sizeof(rec->sha256)) == sizeof(rec->sha256) ||
	    strnlen(rec->key_algorithm, sizeof(rec->key_algorithm)) ==
		    sizeof(rec->key_algorithm) ||
	    strnlen(rec->key_id, sizeof(rec->key_id)) == sizeof(rec->key_id))
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot save the certificate: a field of the "
				       "record is not terminated");
	if ((r = store_core_put_cert(&st->core, rec, err)) != CUSTODY_OK)
		return r;
	st->followed_change = 1;
	r = tag_stored_cert(st, rec, err);
	return r;
}

int
custody_store_get_cert(custody_store *st, const char *thumbprint,
		       custody_cert_record *out, custody_err *err)
{
	int r = CUSTODY_EFAIL, began = 0;

	if ((r = check_store(st, out, "read a certificate", err)) != CUSTODY_OK ||
	    (r = check_thumbprint(thumbprint, err)) != CUSTODY_OK)
		return r;
	if ((r = read_begin(st, &began, err)) != CUSTODY_OK)
		return r;
	if ((r = store_core_get_cert(&st->core, thumbprint, out, err)) ==
	    CUSTODY_OK &&
	    (r = check_cert_on_read(st, out, err)) != CUSTODY_OK)
		custody_cert_record_clear(out);
	read_end(st, began);
	return r;
}

int
custody_store_list_certs(custody_store *st, custody_cert_record **out,
			 size_t *n, custody_err *err)
{
	return list_records(st, STORE_LIST_CERTS, NULL, (void **)out, n,
			    "list certificates", err);
}

/* 40 upper-case hex digits. */
static int
thumbprint_form(const char *t)
{
	size_t i;

	if (t == NULL || strnlen(t, CUSTODY_THUMBPRINT_HEX + 1) !=
	    CUSTODY_THUMBPRINT_HEX)
		return 0;
	for (i = 0; i < CUSTODY_THUMBPRINT_HEX; i++)
		if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'A' && t[i] <= 'F')))
			return 0;
	return 1;
}

/*
 * The rows of list (a *_OF list) whose thumbprints are in tps, in one
 * query whatever the store holds besides: the filter is the thumbprints
 * joined by commas (each of 40 hex digits, so none holds a comma).
 */
static int
list_of(custody_store *st, enum store_list list, const char *const *tps,
	size_t n_tps, void **out, size_t *n, const char *what,
	custody_err *err)
{
	struct store_value filter = { .kind = STORE_TEXT };
	size_t i, len = 0;
	char *joined;
	int r;

	if (st == NULL || out == NULL || n == NULL || (tps == NULL && n_tps > 0))
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot %s: no store or no list", what);
	*out = NULL;
	*n = 0;
	for (i = 0; i < n_tps; i++) {
		if (!thumbprint_form(tps[i]))
			return custody_err_set(err, CUSTODY_EUSAGE, "cannot %s: "
					       "bad thumbprint: expected 40 "
					       "upper-case hex digits", what);
		len += CUSTODY_THUMBPRINT_HEX + 1;
	}
	if (n_tps == 0)
		return CUSTODY_OK;
	if ((joined = calloc(1, len)) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot %s: out of "
				       "memory", what);
	for (i = 0; i < n_tps; i++) {
		if (i > 0)
			strcat(joined, ",");
		strcat(joined, tps[i]);
	}
	filter.text = joined;
	r = store_core_list(&st->core, list, &filter, out, n, err);
	free(joined);
	return r;
}

int
custody_store_list_certs_of(custody_store *st, const char *const *thumbprints,
			    size_t n_thumbprints, custody_cert_record **out,
			    size_t *n, custody_err *err)
{
	return list_of(st, STORE_LIST_CERTS_OF, thumbprints, n_thumbprints,
		       (void **)out, n, "list certificates", err);
}

int
custody_store_delete_cert(custody_store *st, const char *thumbprint,
			  custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_writable(st, "delete the certificate", err)) != CUSTODY_OK)
		return r;
	if ((r = check_thumbprint(thumbprint, err)) != CUSTODY_OK)
		return r;
	if ((r = store_core_delete_cert(&st->core, thumbprint, err)) !=
	    CUSTODY_OK)
		return r;
	st->followed_change = 1;
	r = store_core_put_tag(&st->core, "certificate", thumbprint, NULL,
			       err);
	return r;
}


/* ------------------------------------------------------------ audit log */

/* The audit actions of a change members follow (what `custody status`
 * judges staleness by): notified on the change channel; the others (a
 * sync's, a repair's, a ceremony's) notify nobody (store/core.c notify). */
static int
is_followed_action(const char *action)
{
	static const char *const followed[] = {
		"set", "roll", "roll-effective", "remove", "package", "import",
		"delete", NULL,
	};
	size_t i;

	for (i = 0; followed[i] != NULL; i++)
		if (strcmp(action, followed[i]) == 0)
			return 1;
	return 0;
}

static int
check_audit_entry(const custody_audit_entry *e, custody_err *err)
{
	int r;

	if ((r = store_check_audit_fields(e, 1, err)) != CUSTODY_OK)
		return r;
	if (e->seq < 1 || e->action[0] == '\0' ||
	    strlen(e->prev_hash) != CUSTODY_AUDIT_HASH_HEX ||
	    strlen(e->hash) != CUSTODY_AUDIT_HASH_HEX)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot append to the audit log: the entry "
				       "lacks its seq, action or hashes");
	return CUSTODY_OK;
}

int
custody_store_append_audit(custody_store *st, const custody_audit_entry *e,
			   custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_writable(st, "append to the audit log", err)) != CUSTODY_OK ||
	    (r = check_audit_entry(e, err)) != CUSTODY_OK)
		return r;
	st->core.audit_is_report = !is_followed_action(e->action);
	r = store_core_append_audit(&st->core, e, err);
	st->core.audit_is_report = 0;
	return r;
}

int
custody_store_last_audit(custody_store *st, custody_audit_entry *out,
			 custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_store(st, out, "read the audit log", err)) != CUSTODY_OK)
		return r;
	memset(out, 0, sizeof(*out));
	r = store_core_last_audit(&st->core, out, err);
	return r;
}

/* A filter value that no entry's field could hold (longer than the
 * field) is a caller's mistake, not "no entry". */
static int
check_audit_filter(const char *what, const char *value, size_t max,
		   custody_err *err)
{
	if (value == NULL || strnlen(value, max + 1) <= max)
		return CUSTODY_OK;
	return custody_err_set(err, CUSTODY_EUSAGE,
			       "cannot search the audit log: the %s is longer "
			       "than %zu characters", what, max);
}

int
custody_store_find_audit(custody_store *st, const char *action,
			 const char *type, const char *identity,
			 const char *thumbprint, custody_audit_entry *out,
			 custody_err *err)
{
	int r;

	if ((r = check_store(st, out, "search the audit log", err)) != CUSTODY_OK ||
	    (r = check_audit_filter("action", action, CUSTODY_AUDIT_ACTION_MAX,
				    err)) != CUSTODY_OK ||
	    (r = check_audit_filter("type", type, CUSTODY_NAME_MAX, err)) != CUSTODY_OK ||
	    (r = check_audit_filter("identity", identity, CUSTODY_NAME_MAX,
				    err)) != CUSTODY_OK ||
	    (r = check_audit_filter("thumbprint", thumbprint,
				    CUSTODY_THUMBPRINT_HEX, err)) != CUSTODY_OK)
		return r;
	memset(out, 0, sizeof(*out));
	return store_core_find_audit(&st->core, action, type, identity,
				     thumbprint, out, err);
}

int
custody_store_newest_audit_of(custody_store *st, const char *const *actions,
			      const char *thumbprint, custody_audit_entry *out,
			      custody_err *err)
{
	/* Room for every action custody appends, each at its longest. */
	char list[16 * (CUSTODY_AUDIT_ACTION_MAX + 1)];
	size_t len = 0, n, i;
	int r;

	if ((r = check_store(st, out, "search the audit log", err)) != CUSTODY_OK ||
	    (r = check_audit_filter("thumbprint", thumbprint,
				    CUSTODY_THUMBPRINT_HEX, err)) != CUSTODY_OK)
		return r;
	if (actions == NULL || actions[0] == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE, "cannot search the "
				       "audit log: no action given");
	for (i = 0; actions[i] != NULL; i++) {
		n = strlen(actions[i]);
		if (n == 0 || n > CUSTODY_AUDIT_ACTION_MAX ||
		    strchr(actions[i], ',') != NULL)
			return custody_err_set(err, CUSTODY_EUSAGE, "cannot search "
					       "the audit log: '%.*s' is not an "
					       "action", CUSTODY_AUDIT_ACTION_MAX,
					       actions[i]);
		if (len + n + 2 > sizeof(list))
			return custody_err_set(err, CUSTODY_EUSAGE, "cannot search "
					       "the audit log: more actions than "
					       "it has");
		if (len > 0)
			list[len++] = ',';
		memcpy(list + len, actions[i], n);
		len += n;
	}
	list[len] = '\0';
	memset(out, 0, sizeof(*out));
	return store_core_newest_audit_of(&st->core, list, thumbprint, out, err);
}

int
custody_store_list_audit(custody_store *st, int64_t since,
			 custody_audit_entry **out, size_t *n, custody_err *err)
{
	struct store_value filter = { .kind = STORE_INT, .integer = since };

	return list_records(st, STORE_LIST_AUDIT, &filter, (void **)out, n,
			    "read the audit log", err);
}

int
custody_store_audit_head(custody_store *st, int64_t *seq,
			 char hash[CUSTODY_AUDIT_HASH_HEX + 1], custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_store(st, seq, "read the audit head", err)) != CUSTODY_OK ||
	    (r = check_store(st, hash, "read the audit head", err)) != CUSTODY_OK)
		return r;
	*seq = 0;
	hash[0] = '\0';
	r = store_core_audit_head(&st->core, seq, hash, err);
	return r;
}

int
custody_store_changed(custody_store *st, int *changed, custody_err *err)
{
	if (st == NULL || changed == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot watch the store: no store or no "
				       "answer");
	*changed = 1;
	if (st->core.backend->changed == NULL)
		return CUSTODY_OK;
	return st->core.backend->changed(st->core.conn, changed, err);
}

/* Between two questions of a backend without notifications. */
#define WAIT_POLL_MS 100

/* Asks changed() every WAIT_POLL_MS until it says 1 or the time is up;
 * a signal ends the wait early (*changed = 0). */
static int
poll_changes(custody_store *st, int timeout_ms, int *changed, custody_err *err)
{
	int64_t deadline = custody_monotonic_ms() + timeout_ms;
	struct timespec pause;
	int64_t left;
	int r = CUSTODY_EFAIL;

	for (;;) {
		if ((r = custody_store_changed(st, changed, err)) != CUSTODY_OK ||
		    *changed)
			return r;
		left = deadline - custody_monotonic_ms();
		if (left <= 0)
			return r;
		if (left > WAIT_POLL_MS)
			left = WAIT_POLL_MS;
		pause.tv_sec = 0;
		pause.tv_nsec = (long)left * 1000000L;
		if (nanosleep(&pause, NULL) != 0 && errno == EINTR)
			return r;
	}
	return r;
}

int
custody_store_wait_change(custody_store *st, int timeout_ms, int *changed,
			  custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if (st == NULL || changed == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot wait for changes of the store: no "
				       "store or no answer");
	*changed = 0;
	if (st->in_transaction)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot wait for changes of the store inside "
				       "a write transaction");
	if (timeout_ms < 0)
		timeout_ms = 0;
	if (st->core.backend->wait_change != NULL)
		r = st->core.backend->wait_change(st->core.conn, timeout_ms,
						  changed, err);
	else
		r = poll_changes(st, timeout_ms, changed, err);
	return r;
}

/* ------------------------------------------------------------ cluster */

#define TERMINATED(field) (strnlen((field), sizeof(field)) < sizeof(field))

/* Exactly n hex digits of one case, terminated within size. */
static int
fixed_hex(const char *s, size_t size, size_t n, int upper)
{
	return custody_hex_is_exact(s, strnlen(s, size), n, upper);
}

int
custody_store_put_node(custody_store *st, custody_node_record *rec,
		       custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_writable(st, "save the node", err)) != CUSTODY_OK ||
	    (r = check_store(st, rec, "save the node", err)) != CUSTODY_OK ||
	    (r = check_node_name(rec->name, sizeof(rec->name), err)) != CUSTODY_OK)
		return r;
	if (strcmp(rec->state, "enrolled") != 0 &&
	    strcmp(rec->state, "admitted") != 0 &&
	    strcmp(rec->state, "joined") != 0)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot save node %s: its state must be "
				       "enrolled, admitted or joined", rec->name);
	if (!TERMINATED(rec->admitted_by) || rec->version < 0 ||
	    (rec->transport_spki == NULL) != (rec->transport_spki_len == 0) ||
	    (rec->kek_wrap == NULL) != (rec->kek_wrap_len == 0) ||
	    rec->transport_spki_len > (size_t)INT32_MAX ||
	    rec->kek_wrap_len > (size_t)INT32_MAX)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot save node %s: the record is malformed",
				       rec->name);
	if ((r = store_core_put_node(&st->core, rec, err)) != CUSTODY_OK)
		return r;
	r = tag_stored_node(st, rec, err);
	return r;
}

int
custody_store_get_node(custody_store *st, const char *name,
		       custody_node_record *out, custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_store(st, out, "read a node", err)) != CUSTODY_OK ||
	    (r = check_node_name(name, CUSTODY_NAME_MAX + 2, err)) != CUSTODY_OK)
		return r;
	memset(out, 0, sizeof(*out));
	r = store_core_get_node(&st->core, name, out, err);
	return r;
}

int
custody_store_list_nodes(custody_store *st, custody_node_record **out,
			 size_t *n, custody_err *err)
{
	return list_records(st, STORE_LIST_NODES, NULL, (void **)out, n,
			    "list the nodes", err);
}

int
custody_store_put_package(custody_store *st, const custody_package_record *rec,
			  custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_writable(st, "save the package", err)) != CUSTODY_OK ||
	    (r = check_store(st, rec, "save the package", err)) != CUSTODY_OK)
		return r;
	if (!fixed_hex(rec->thumbprint, sizeof(rec->thumbprint),
		       CUSTODY_THUMBPRINT_HEX, 1) ||
	    !fixed_hex(rec->key_id, sizeof(rec->key_id), CUSTODY_KEY_ID_HEX, 0) ||
	    !fixed_hex(rec->kcv, sizeof(rec->kcv), CUSTODY_STORE_KCV_HEX, 1) ||
	    rec->wrapped == NULL || rec->wrapped_len == 0 ||
	    rec->wrapped_len > (size_t)INT32_MAX)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot save the package: it needs a thumbprint "
				       "(40 upper-case hex), a key id (40 lower-case "
				       "hex), a key check value (6 upper-case hex) and "
				       "the wrapped key");
	if ((r = check_node_name(rec->node, sizeof(rec->node), err)) != CUSTODY_OK)
		return r;
	if ((r = store_core_put_package(&st->core, rec, err)) != CUSTODY_OK)
		return r;
	st->followed_change = 1;
	r = tag_stored_package(st, rec, err);
	return r;
}

int
custody_store_get_package(custody_store *st, const char *thumbprint,
			  custody_package_record *out, custody_err *err)
{
	int r = CUSTODY_EFAIL, began = 0;

	if ((r = check_store(st, out, "read a package", err)) != CUSTODY_OK ||
	    (r = check_thumbprint(thumbprint, err)) != CUSTODY_OK)
		return r;
	memset(out, 0, sizeof(*out));
	if ((r = read_begin(st, &began, err)) != CUSTODY_OK)
		return r;
	if ((r = store_core_get_package(&st->core, thumbprint, out, err)) ==
	    CUSTODY_OK &&
	    (r = check_package_on_read(st, out, err)) != CUSTODY_OK)
		custody_package_record_clear(out);
	read_end(st, began);
	return r;
}

int
custody_store_list_packages(custody_store *st, custody_package_record **out,
			    size_t *n, custody_err *err)
{
	return list_records(st, STORE_LIST_PACKAGES, NULL, (void **)out, n,
			    "list the packages", err);
}

int
custody_store_list_packages_of(custody_store *st,
			       const char *const *thumbprints,
			       size_t n_thumbprints,
			       custody_package_record **out, size_t *n,
			       custody_err *err)
{
	return list_of(st, STORE_LIST_PACKAGES_OF, thumbprints, n_thumbprints,
		       (void **)out, n, "list packages", err);
}

int
custody_store_delete_package(custody_store *st, const char *thumbprint,
			     custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_writable(st, "delete the package", err)) != CUSTODY_OK ||
	    (r = check_thumbprint(thumbprint, err)) != CUSTODY_OK)
		return r;
	if ((r = store_core_delete_package(&st->core, thumbprint, err)) !=
	    CUSTODY_OK)
		return r;
	st->followed_change = 1;
	r = store_core_put_tag(&st->core, "package", thumbprint, NULL, err);
	return r;
}

int
custody_store_put_report(custody_store *st, const custody_report_record *rec,
			 custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_writable(st, "save the report", err)) != CUSTODY_OK ||
	    (r = check_store(st, rec, "save the report", err)) != CUSTODY_OK ||
	    (r = check_node_name(rec->node, sizeof(rec->node), err)) != CUSTODY_OK)
		return r;
	if (!fixed_hex(rec->thumbprint, sizeof(rec->thumbprint),
		       CUSTODY_THUMBPRINT_HEX, 1) || !TERMINATED(rec->detail))
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot save the report of node %s: it needs "
				       "a thumbprint (40 upper-case hex) and a "
				       "terminated detail", rec->node);
	r = store_core_put_report(&st->core, rec, err);
	return r;
}

int
custody_store_list_reports(custody_store *st, const char *node,
			   custody_report_record **out, size_t *n,
			   custody_err *err)
{
	struct store_value filter = { .kind = STORE_TEXT, .text = node };

	if (node == NULL)
		filter.kind = STORE_NULL;
	return list_records(st, STORE_LIST_REPORTS, &filter, (void **)out, n,
			    "list the reports", err);
}

/* A meta name: [a-z_]{1,32}; a value: printable ASCII, at most 255. */
static int
check_meta(const char *name, const char *value, custody_err *err)
{
	size_t i, len;

	len = name != NULL ? strnlen(name, 33) : 0;
	if (len == 0 || len > 32)
		goto bad;
	for (i = 0; i < len; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || name[i] == '_'))
			goto bad;
	if (value == NULL)
		return CUSTODY_OK;
	len = strnlen(value, 256);
	if (len == 256)
		goto bad;
	for (i = 0; i < len; i++)
		if (value[i] < 0x20 || value[i] > 0x7e)
			goto bad;
	return CUSTODY_OK;
bad:
	return custody_err_set(err, CUSTODY_EUSAGE,
			       "bad cluster fact: a name is 1 to 32 of a-z _, a "
			       "value at most 255 printable characters");
}

int
custody_store_get_meta(custody_store *st, const char *name, char *value,
		       size_t size, custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_store(st, value, "read a cluster fact", err)) != CUSTODY_OK ||
	    (r = check_meta(name, NULL, err)) != CUSTODY_OK)
		return r;
	if (size == 0)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot read cluster fact %s: no room", name);
	value[0] = '\0';
	r = store_core_get_meta(&st->core, name, value, size, err);
	return r;
}

int
custody_store_put_meta(custody_store *st, const char *name, const char *value,
		       int replace, custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_writable(st, "save a cluster fact", err)) != CUSTODY_OK ||
	    (r = check_store(st, value, "save a cluster fact", err)) != CUSTODY_OK ||
	    (r = check_meta(name, value, err)) != CUSTODY_OK)
		return r;
	/* The audit log's tag moves with every entry, a sync's too: the
	 * entry's append says whether members follow it, not its tag (else
	 * every node's sync would wake every other node). */
	st->core.meta_is_report = strcmp(name, STORE_META_AUDIT_TAG) == 0;
	if ((r = store_core_put_meta(&st->core, name, value, replace, err)) ==
	    CUSTODY_OK && !st->core.meta_is_report)
		st->followed_change = 1;
	st->core.meta_is_report = 0;
	return r;
}

int
custody_store_generation(custody_store *st, int64_t *generation,
			 custody_err *err)
{
	if (st == NULL || generation == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot read the generation: no store or "
				       "no result");
	return store_core_generation(&st->core, generation, err);
}

unsigned long
custody_store_statements(const custody_store *st)
{
	if (st == NULL || st->core.backend->statements == NULL)
		return 0;
	return st->core.backend->statements(st->core.conn);
}
