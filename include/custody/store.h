/*
 * custody/store.h — the store: certificate facts (public parts only),
 * assignments and the audit log.  One interface, several backends: "sqlite:PATH" (embedded
 * default); "postgresql://..." (cluster, a later backend).
 *
 * Concurrency: a change is read → decided → written with
 * custody_store_put_assignment(), which succeeds only if the stored row
 * still has the version that was read (optimistic concurrency); otherwise
 * it fails with CUSTODY_ECONFLICT and writes nothing.  Writes happen
 * between custody_store_begin() and custody_store_commit(); any error
 * before commit must be followed by custody_store_rollback().
 *
 * Memory: records returned through out-pointers belong to the caller
 * (free with custody_cert_record_clear / custody_cert_records_free /
 * custody_audit_entry_clear / custody_audit_entries_free / free).
 */
#ifndef CUSTODY_STORE_H
#define CUSTODY_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <custody/error.h>
#include <custody/records.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct custody_store custody_store;

/* Opens the store named by url for a command that writes, and brings its
 * schema to the current version; a store that does not exist yet is made
 * (a SQLite file mode 0600, never its directory: a missing directory is
 * an error) and custody_store_made() says so.  An unknown scheme is
 * EUSAGE naming the accepted forms. */
int custody_store_open(const char *url, custody_store **out, custody_err *err);

/* The same for a command that only reads: a store that does not exist
 * (no SQLite file, or a database without custody's schema) is EFAIL,
 * saying how a store is made; nothing is created. */
int custody_store_open_existing(const char *url, custody_store **out,
				custody_err *err);

/* 1 when the custody_store_open that returned st made the store. */
int custody_store_made(const custody_store *st);

/* Closes st after a command that failed: a store this open made, and
 * that nothing has written to since (this process or another), is
 * removed again, so that a refused first write leaves no store.  A
 * connection of another process that opened it meanwhile finds it gone
 * at its next write (EFAIL "... was removed ...": run again).  A
 * PostgreSQL database keeps the schema made in it.  NULL is accepted. */
void custody_store_close_failed(custody_store *st);

/* The store as messages name it: its path, or its host and database
 * (never a user or password). */
const char *custody_store_where(const custody_store *st);
void custody_store_close(custody_store *st);

/* The schema version this build writes. */
int custody_store_schema_version(void);

/* One write transaction (SQLite: BEGIN IMMEDIATE, waiting up to 10 s for
 * another writer). */
int custody_store_begin(custody_store *st, custody_err *err);
int custody_store_commit(custody_store *st, custody_err *err);
void custody_store_rollback(custody_store *st);

/* ENOTFOUND when (type, identity) has no stored assignment.
 * Type and identity are matched case-insensitively. */
int custody_store_get_assignment(custody_store *st, const char *type,
				 const char *identity, custody_assignment *out,
				 custody_err *err);

/* All assignments, ordered by type then identity ("global" first). */
int custody_store_list_assignments(custody_store *st, custody_assignment **out,
				   size_t *n, custody_err *err);

/*
 * Writes a->{current,previous,pending} if the stored version still equals
 * a->version (0 = "there is no row yet").  On success a->version is the new
 * version.  A record whose three slots are all empty deletes the row.
 * ECONFLICT ("assignment changed concurrently") when the version differs.
 */
int custody_store_put_assignment(custody_store *st, custody_assignment *a,
				 custody_err *err);

/* Inserts the certificate, or updates key_uri and label of the one with
 * the same thumbprint. */
int custody_store_put_cert(custody_store *st, const custody_cert_record *rec,
			   custody_err *err);

/* ENOTFOUND when there is no certificate with that exact thumbprint
 * (40 upper-case hex digits). */
int custody_store_get_cert(custody_store *st, const char *thumbprint,
			   custody_cert_record *out, custody_err *err);

/* All certificates, ordered by not_after then thumbprint. */
int custody_store_list_certs(custody_store *st, custody_cert_record **out,
			     size_t *n, custody_err *err);
/* The certificates of these thumbprints that the store holds (none for
 * n_thumbprints 0), in the same order, in one query whatever else the
 * store holds: what a sync reads.  EUSAGE on a malformed thumbprint. */
int custody_store_list_certs_of(custody_store *st,
				const char *const *thumbprints,
				size_t n_thumbprints,
				custody_cert_record **out, size_t *n,
				custody_err *err);

/* ENOTFOUND when absent. */
int custody_store_delete_cert(custody_store *st, const char *thumbprint,
			      custody_err *err);

/*
 * *changed = 1 when the store may have changed since the previous call on
 * this handle (a commit by any connection or process; the first call
 * says 1), else 0.  For a long-lived reader that keeps what it read (the
 * signer asks before every signature): a "maybe" costs the caller one
 * re-read, a "no" is exact.  SQLite asks the database (PRAGMA
 * data_version, about 1.7 µs) at the first 64 calls; from then on it
 * watches the database's directory (inotify) and asks only within a
 * second of a write there, so that a quiet store costs one read() that
 * finds nothing (0.3 µs).  Without inotify every call asks the database.
 */
/*
 * Integrity tags.  Every row that decides trust — certificates,
 * assignments, packages, nodes past enrollment — carries a tag that only
 * a holder of the token's KEK makes: the tagger (custody/integrity.h
 * attaches the token's) tags each row as it is written, and the getters
 * of assignments, certificates and packages check it when a tagger is
 * attached, failing with EFAIL "the store's <kind> record <name> fails its
 * integrity check".  A store created at schema 5 is tagged from its first
 * row; an older one is marked tagged by custody_store_tags_enable (the
 * `custody tag` ceremony), and until then every check fails.
 *
 * The tagger: digest is the SHA-256 of the row's canonical form; for_write
 * is 1 when the tag will be stored (a tagger may then create its key).
 */
struct custody_package_record;
struct custody_node_record;

typedef int (*custody_store_tag_fn)(void *ctx,
				    const unsigned char digest[CUSTODY_TAG_INPUT_LEN],
				    int for_write, char tag[CUSTODY_TAG_HEX + 1],
				    custody_err *err);
/* Replaces the tagger (fn NULL: none); free_ctx (may be NULL) is called
 * on ctx when it is replaced or the store closes. */
void custody_store_set_tagger(custody_store *st, custody_store_tag_fn fn,
			      void *ctx, void (*free_ctx)(void *ctx));
/* Tells the tagger how each write transaction ended (after the commit or
 * rollback): what it made for a transaction that did not commit, it may
 * undo.  Cleared by custody_store_set_tagger. */
void custody_store_set_tagger_tx_end(custody_store *st,
				     void (*tx_end)(void *ctx, int committed));
int custody_store_has_tagger(const custody_store *st);
/* *on = 1 when the store's rows carry tags (the row_tags mark). */
int custody_store_tags_on(custody_store *st, int *on, custody_err *err);
/* Marks the store tagged (inside a write transaction). */
int custody_store_tags_enable(custody_store *st, custody_err *err);

/* OK when the row's tag is genuine; EFAIL naming it otherwise (no tag, a
 * wrong one, a store not tagged yet, no tagger). */
int custody_store_check_cert(custody_store *st, const custody_cert_record *rec,
			     custody_err *err);
int custody_store_check_assignment(custody_store *st,
				   const custody_assignment *a,
				   custody_err *err);
int custody_store_check_package(custody_store *st,
				const struct custody_package_record *rec,
				custody_err *err);
int custody_store_check_node(custody_store *st,
			     const struct custody_node_record *rec,
			     custody_err *err);
/* Tags a row as it is (the `custody tag` ceremony), in a transaction. */
int custody_store_retag_cert(custody_store *st, const custody_cert_record *rec,
			     custody_err *err);
int custody_store_retag_assignment(custody_store *st,
				   const custody_assignment *a,
				   custody_err *err);
int custody_store_retag_package(custody_store *st,
				const struct custody_package_record *rec,
				custody_err *err);
int custody_store_retag_node(custody_store *st,
			     const struct custody_node_record *rec,
			     custody_err *err);
/* The tag of the audit log's head (seq, hash); see custody/audit.h. */
int custody_store_tag_audit_head(custody_store *st, int64_t seq,
				 const char *hash, int for_write,
				 char tag[CUSTODY_TAG_HEX + 1], custody_err *err);
/* 1 when two tags are the same (constant time). */
int custody_store_tags_same(const char *a, const char *b);

int custody_store_changed(custody_store *st, int *changed, custody_err *err);

/*
 * Waits until the store may have changed or timeout_ms milliseconds have
 * passed (0: does not wait), whichever comes first: *changed = 1 for a
 * change (a "maybe", as custody_store_changed says it), 0 when the time
 * ran out or a signal interrupted the wait (so that a caller's signal
 * handler is heard at once).  For a process that reacts to changes
 * (`custody sync --watch`).  PostgreSQL: LISTEN custody_changes, then
 * poll() on the connection's socket, so that a NOTIFY wakes the caller
 * as soon as it arrives (commits of this handle included); a lost
 * connection is made again (*changed = 1: read everything again) or is
 * EFAIL "store unreachable", and the next call tries again.  SQLite (no
 * notifications): asks custody_store_changed every 100 ms.  The first
 * call on a handle says 1 at once.  EUSAGE inside a write transaction.
 */
int custody_store_wait_change(custody_store *st, int timeout_ms, int *changed,
			      custody_err *err);

/*
 * The store's generation: a number that every committed change members
 * follow moves (an assignment, a certificate, a package or a cluster fact
 * written or deleted; not a node's report, its last_sync or an audit entry
 * alone), in the same transaction as the change.  0 for a store never
 * changed.  A reader that kept the generation it last acted on knows,
 * with one query, whether anything it follows changed since, whatever
 * notifications it missed (a dropped connection, a failover): different
 * means "read again" (it may go down too: a promoted standby that had not
 * received the last commits).
 */
int custody_store_generation(custody_store *st, int64_t *generation,
			     custody_err *err);

/*
 * A read snapshot for many reads that must agree (PostgreSQL: one
 * REPEATABLE READ transaction; SQLite: one read transaction), in which the
 * integrity tags are read once, in one query, rather than one query per
 * record checked: what lets a sync read every record it needs in a
 * constant number of queries.  No write inside it (EUSAGE); end it with
 * custody_store_snapshot_end (custody_store_close does too).
 */
int custody_store_snapshot_begin(custody_store *st, custody_err *err);
void custody_store_snapshot_end(custody_store *st);

/* The statements this handle sent to its store so far (each a round trip,
 * transaction control included; SQLite: each statement run), for
 * measuring what an operation costs (`custody sync -v` prints it). */
unsigned long custody_store_statements(const custody_store *st);

/* ------------------------------------------------------------ cluster
 *
 * Schema version 4: what custody/cluster.h keeps in the store.  Nothing
 * here is secret in clear: a node's transport key is public, the KEK wrap
 * and the packages are ciphertext (RSA-OAEP and AES key wrap under keys
 * that live only in tokens).  Node names are case-sensitive, as on the
 * tokens.
 */

#define CUSTODY_STORE_KCV_HEX 6	/* a key check value: 6 upper-case hex */

/* One node of the cluster.  state: "enrolled" (transport key recorded),
 * "admitted" (the KEK is wrapped for it: kek_wrap), "joined" (it holds the
 * KEK; its kek_wrap is gone).  The node that made the KEK is "joined" and
 * has no transport key.  Byte strings are malloc'ed (NULL when absent). */
typedef struct custody_node_record {
	char name[CUSTODY_NAME_MAX + 1];
	char state[16];
	unsigned char *transport_spki;	/* DER SubjectPublicKeyInfo       */
	size_t transport_spki_len;
	unsigned char *kek_wrap;	/* the KEK wrapped for this node  */
	size_t kek_wrap_len;
	char admitted_by[CUSTODY_NAME_MAX + 1];	/* "" until admitted      */
	char kek_check[17];		/* the wrapped KEK's 64-bit check (16
					 * hex), "" until admitted          */
	unsigned char *admission_sig;	/* the cluster authority's signature
					 * over the admission (cluster.h)   */
	size_t admission_sig_len;
	int64_t enrolled_at, admitted_at, joined_at;	/* 0: not yet       */
	int64_t last_sync;		/* 0: never synced                  */
	int64_t version;		/* store row version; 0 = never stored */
} custody_node_record;

void custody_node_record_clear(custody_node_record *rec);
void custody_node_records_free(custody_node_record *recs, size_t n);

/* Writes rec if the stored version still equals rec->version (0: there
 * must be no row yet); rec->version is then the new one.  ECONFLICT
 * ("node N changed concurrently") otherwise.  state must be one of the
 * three; name a node name ([A-Za-z0-9._-], 1..64). */
int custody_store_put_node(custody_store *st, custody_node_record *rec,
			   custody_err *err);
/* ENOTFOUND "node N is not in store S" when absent. */
int custody_store_get_node(custody_store *st, const char *name,
			   custody_node_record *out, custody_err *err);
/* Every node, ordered by name. */
int custody_store_list_nodes(custody_store *st, custody_node_record **out,
			     size_t *n, custody_err *err);

/* The package of one private key: wrapped (CKM_AES_KEY_WRAP_PAD) under
 * the KEK whose key check value is kcv, by node, at created_at. */
typedef struct custody_package_record {
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	char key_id[CUSTODY_KEY_ID_HEX + 1];
	unsigned char *wrapped;		/* malloc'ed                       */
	size_t wrapped_len;
	char kcv[CUSTODY_STORE_KCV_HEX + 1];
	int64_t created_at;
	char node[CUSTODY_NAME_MAX + 1];
} custody_package_record;

void custody_package_record_clear(custody_package_record *rec);
void custody_package_records_free(custody_package_record *recs, size_t n);

/* Inserts the package of rec->thumbprint, or replaces the one there. */
int custody_store_put_package(custody_store *st,
			      const custody_package_record *rec,
			      custody_err *err);
/* ENOTFOUND "no package for certificate T in store S" when absent. */
int custody_store_get_package(custody_store *st, const char *thumbprint,
			      custody_package_record *out, custody_err *err);
/* Every package, ordered by thumbprint. */
int custody_store_list_packages(custody_store *st,
				custody_package_record **out, size_t *n,
				custody_err *err);
/* The packages of these thumbprints, as custody_store_list_certs_of. */
int custody_store_list_packages_of(custody_store *st,
				   const char *const *thumbprints,
				   size_t n_thumbprints,
				   custody_package_record **out, size_t *n,
				   custody_err *err);
/* ENOTFOUND when absent. */
int custody_store_delete_package(custody_store *st, const char *thumbprint,
				 custody_err *err);

/* What one node reported about one key at its last sync.  No heap
 * memory: free() a list. */
typedef struct custody_report_record {
	char node[CUSTODY_NAME_MAX + 1];
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	int held;			/* the key is on its token, verified */
	char detail[256];		/* "" or why it is not held          */
	int64_t time;
} custody_report_record;

/* Inserts or replaces the report of (node, thumbprint). */
int custody_store_put_report(custody_store *st,
			     const custody_report_record *rec,
			     custody_err *err);
/* The reports of node (NULL: of every node), ordered by node then
 * thumbprint; *out malloc'ed (free()). */
int custody_store_list_reports(custody_store *st, const char *node,
			       custody_report_record **out, size_t *n,
			       custody_err *err);

/*
 * The gate of a roll, the one rule the store's reads of assignments
 * follow (custody_assignment.hold_pending): of the members that have
 * joined, *needed must hold the key of a's pending certificate
 * (custody_assign_pending_needs) before it takes effect, and *missing of
 * them do not report holding it — their names, ", "-separated, into
 * names (cut at size; NULL: not wanted).  Both 0 when nothing is pending
 * or there is no cluster.
 */
int custody_store_roll_gate(custody_store *st, const custody_assignment *a,
			    size_t *needed, size_t *missing, char *names, size_t size,
			    custody_err *err);

/* Cluster facts by name ("kek_kcv", "kek_node", "kek_created_at"): short
 * printable text.  get: ENOTFOUND when unset; value gets at most size-1
 * bytes (EFAIL when it does not fit).  put: replace = 0 refuses a name
 * already set (ECONFLICT "... is already set in store S"). */
int custody_store_get_meta(custody_store *st, const char *name, char *value,
			   size_t size, custody_err *err);
int custody_store_put_meta(custody_store *st, const char *name,
			   const char *value, int replace, custody_err *err);

/* ------------------------------------------------------------ audit log */

#define CUSTODY_AUDIT_HASH_HEX 64	/* SHA-256, lower-case hex          */
#define CUSTODY_AUDIT_ACTOR_MAX 64	/* longest actor (login name)       */
#define CUSTODY_AUDIT_ACTION_MAX 31	/* longest action ("set", "roll")   */

/*
 * One entry of the append-only audit log, as the store keeps it.  The
 * chain (prev_hash, hash) is computed by custody/audit.h; the store only
 * keeps it.  Every char array is NUL-terminated; "" means "none" (an
 * action without a type, a thumbprint, ...).  detail is malloc'ed free
 * text or NULL: records returned by the store own it, free it with
 * custody_audit_entry_clear() / custody_audit_entries_free().
 */
typedef struct custody_audit_entry {
	int64_t seq;		/* 1, 2, 3, ... in the order appended    */
	int64_t time;		/* seconds since the epoch, UTC          */
	char node[CUSTODY_NAME_MAX + 1];
	char actor[CUSTODY_AUDIT_ACTOR_MAX + 1];
	char action[CUSTODY_AUDIT_ACTION_MAX + 1];
	char type[CUSTODY_NAME_MAX + 1];
	char identity[CUSTODY_NAME_MAX + 1];
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	char previous_thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	char *detail;
	char prev_hash[CUSTODY_AUDIT_HASH_HEX + 1];
	char hash[CUSTODY_AUDIT_HASH_HEX + 1];
} custody_audit_entry;

/* Frees detail and zeroes the record (not the struct itself). */
void custody_audit_entry_clear(custody_audit_entry *e);
/* Clears each of n records, then frees the array. */
void custody_audit_entries_free(custody_audit_entry *e, size_t n);

/*
 * Appends e exactly as given (seq, prev_hash and hash included) and moves
 * the log's head (the seq and hash of its newest entry, kept in a row of
 * its own) to it, in the caller's write transaction: EUSAGE outside one.
 * ECONFLICT ("audit log changed concurrently") when e->seq is taken or
 * the head is not (e->seq - 1, e->prev_hash).  Use custody_audit_append()
 * rather than this: it computes the chain.
 */
int custody_store_append_audit(custody_store *st, const custody_audit_entry *e,
			       custody_err *err);

/* The entry with the highest seq; ENOTFOUND when the log is empty. */
int custody_store_last_audit(custody_store *st, custody_audit_entry *out,
			     custody_err *err);

/*
 * The newest entry (highest seq) whose action, type, identity and
 * thumbprint each equal the argument given, exactly ("" matches an entry
 * that names none); a NULL argument matches any.  One query that the
 * store answers from the newest entry backwards: the log is not read
 * into memory.  ENOTFOUND when no entry matches; EUSAGE for an argument
 * longer than its field.  Reads only: the chain is not verified here
 * (custody/audit.h does that).
 */
int custody_store_find_audit(custody_store *st, const char *action,
			     const char *type, const char *identity,
			     const char *thumbprint, custody_audit_entry *out,
			     custody_err *err);

/*
 * The newest entry (highest seq) whose action is one of actions (a NULL-
 * terminated list of action names, at most 16) and, unless thumbprint is
 * NULL, that names thumbprint: one query, answered by the store from the
 * newest entry backwards.  ENOTFOUND when none; EUSAGE for an empty list,
 * a name that is no action (empty, too long, or with a comma) or a
 * thumbprint longer than its field.  Reads only, as
 * custody_store_find_audit.
 */
int custody_store_newest_audit_of(custody_store *st,
				  const char *const *actions,
				  const char *thumbprint,
				  custody_audit_entry *out, custody_err *err);

/* The entries with time >= since (0: all), ordered by seq. */
int custody_store_list_audit(custody_store *st, int64_t since,
			     custody_audit_entry **out, size_t *n,
			     custody_err *err);

/* The head: seq and hash of the newest entry appended (0 and 64 zeros
 * for an empty log).  ENOTFOUND when the head row itself is gone (which
 * only tampering does). */
int custody_store_audit_head(custody_store *st, int64_t *seq,
			     char hash[CUSTODY_AUDIT_HASH_HEX + 1],
			     custody_err *err);

#ifdef __cplusplus
}
#endif
#endif
