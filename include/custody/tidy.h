/*
 * custody/tidy.h — what interrupted custody processes left on a token,
 * found and (when asked) removed.
 *
 * An import, a request or an import --package that is killed between its
 * token writes and its store commit leaves objects that nothing refers
 * to: a key pair without its certificate record, a key generated for a
 * request that never wrote its CSR.  Before such writes custody leaves a
 * note of intent on the token (custody/token.h); a note is the proof that
 * custody made the objects of its key id.  custody_tidy_plan lists, for
 * every note, the objects of its key id, and decides:
 *   - nothing in the store names the key id (no certificate record, no
 *     package, no assignment of a certificate with it, no pending CSR in
 *     the audit log): the objects and the note go;
 *   - something names it: the objects stay, only the note goes.
 * Objects without a note — another application's, custody's own finished
 * ones, torn shells without CKA_ID — are never listed.  The cluster's own
 * keys (KEK, transport keys) carry no note and are never touched.
 */
#ifndef CUSTODY_TIDY_H
#define CUSTODY_TIDY_H

#include <stddef.h>

#include <custody/error.h>
#include <custody/store.h>
#include <custody/token.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct custody_tidy_item {
	char key_id[2 * CUSTODY_TOKEN_ID_MAX + 1];
	custody_token_key_objects objects;	/* what the token holds */
	int named;		/* the store names it: objects stay      */
	char named_by[192];	/* "" or what names it                    */
} custody_tidy_item;

typedef struct custody_tidy_plan {
	custody_tidy_item *items;
	size_t n;
} custody_tidy_plan;

void custody_tidy_plan_clear(custody_tidy_plan *plan);

/* Reads the notes of tok and the store (no change): the plan. */
int custody_tidy_plan_make(custody_token *tok, custody_store *st,
			   custody_tidy_plan *plan, custody_err *err);

/*
 * Carries the plan out, item by item: for one not named, destroys its
 * objects (certificates, public and private keys of its key id) and then
 * its note; for a named one, the note alone.  Each item whose objects go
 * has its audit entry "tidy" (node, key id, what went) in a store
 * transaction that commits only when the token did its part: a token that
 * refuses is EFAIL naming the object, with that item's entry not written
 * (the items before it are done, each with its entry).
 */
int custody_tidy_apply(custody_token *tok, custody_store *st,
		       const char *node, const custody_tidy_plan *plan,
		       custody_err *err);

#ifdef __cplusplus
}
#endif
#endif
