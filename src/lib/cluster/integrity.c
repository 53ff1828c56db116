/* cluster/integrity.c — the store's tagger, keyed by the token's KEK (see
 * custody/integrity.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <custody/error.h>
#include <custody/integrity.h>
#include <custody/log.h>

#include "cluster/internal.h"
#include "token/wrap.h"

struct integrity {
	custody_store *st;
	custody_token *tok;	/* the token; or lent by borrow for a tag: */
	custody_integrity_borrow_fn borrow;
	custody_integrity_return_fn give_back;
	void *arg;
	int ready;		/* the token's KEK is the store's */
	int made_kek;		/* created in the open transaction */
};

int
custody_integrity_store_kcv(custody_store *st, char kcv[CUSTODY_KCV_HEX + 1],
			    custody_err *err)
{
	int r;

	kcv[0] = '\0';
	r = custody_store_get_meta(st, CLUSTER_META_KCV, kcv,
				   CUSTODY_KCV_HEX + 1, err);
	if (r == CUSTODY_ENOTFOUND)
		r = custody_store_get_meta(st, CLUSTER_META_TAG_KCV, kcv,
					   CUSTODY_KCV_HEX + 1, err);
	if (r == CUSTODY_ENOTFOUND) {
		kcv[0] = '\0';
		r = CUSTODY_OK;
	}
	return r;
}

/* A store without a cluster, written for the first time by this token:
 * its KEK (made now when it has none) becomes the store's tag key. */
static int
adopt_kek(struct integrity *ig, int present, char have[CUSTODY_KCV_HEX + 1],
	  custody_err *err)
{
	int r;

	if (!present) {
		custody_step("creating this store's integrity key on token %s: "
			     "a KEK (AES-256) that never leaves the token and "
			     "tags every row custody writes",
			     custody_token_label(ig->tok));
		if ((r = custody_token_kek_create(ig->tok, have, err)) !=
		    CUSTODY_OK)
			return r;
		ig->made_kek = 1;
	} else if ((r = custody_token_kek_kcv(ig->tok, have, err)) !=
		   CUSTODY_OK) {
		return r;
	}
	return custody_store_put_meta(ig->st, CLUSTER_META_TAG_KCV, have, 0,
				      err);
}

/* The token's KEK is the one that tags the store, or EFAIL/ENOTFOUND. */
static int
resolve(struct integrity *ig, int for_write, custody_err *err)
{
	char want[CUSTODY_KCV_HEX + 1], have[CUSTODY_KCV_HEX + 1];
	const char *label = custody_token_label(ig->tok);
	int present = 0, r;

	if ((r = custody_integrity_store_kcv(ig->st, want, err)) != CUSTODY_OK ||
	    (r = custody_token_kek_present(ig->tok, &present, err)) !=
	    CUSTODY_OK)
		return r;
	if (want[0] == '\0') {
		if (!for_write) {
			r = custody_err_set(err, CUSTODY_ENOTFOUND,
					    "the store records no key that "
					    "tags its rows");
			custody_err_hint(err, "the first command that writes "
					 "the store with a token makes it");
			return r;
		}
		return adopt_kek(ig, present, have, err);
	}
	if (!present) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "token %s holds no KEK, and the store's rows "
				    "are tagged by the KEK with key check value "
				    "%s", label, want);
		custody_err_hint(err, "use the token that holds it, or join the "
				 "cluster: custody node enroll, node admit, "
				 "node join");
		return r;
	}
	if ((r = custody_token_kek_kcv(ig->tok, have, err)) != CUSTODY_OK)
		return r;
	if (strcasecmp(want, have) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "token %s holds the KEK with key check "
				    "value %s, but the store's rows are tagged "
				    "by the one with %s", label, have, want);
		custody_err_hint(err, "use the token (or the cluster) that "
				 "wrote this store");
		return r;
	}
	return CUSTODY_OK;
}

static int
tag(void *ctx, const unsigned char digest[CUSTODY_TAG_INPUT_LEN],
    int for_write, char out[CUSTODY_TAG_HEX + 1], custody_err *err)
{
	struct integrity *ig = ctx;
	int r = CUSTODY_EFAIL;

	out[0] = '\0';
	if (ig->borrow != NULL && (ig->tok = ig->borrow(ig->arg, err)) == NULL)
		return err != NULL && err->code != CUSTODY_OK ? err->code
							      : CUSTODY_EFAIL;
	if (!ig->ready && (r = resolve(ig, for_write, err)) == CUSTODY_OK)
		ig->ready = 1;
	if (ig->ready)
		r = custody_token_kek_tag(ig->tok, digest, out, err);
	if (ig->borrow != NULL) {
		ig->give_back(ig->arg);
		ig->tok = NULL;
	}
	return r;
}

/* A KEK made for a transaction that did not commit goes again: the store
 * does not record it, and a failed command leaves the token as it was. */
static void
tx_end(void *ctx, int committed)
{
	struct integrity *ig = ctx;
	custody_token *tok;
	custody_err e;

	if (!ig->made_kek)
		return;
	ig->made_kek = 0;
	if (committed)
		return;
	ig->ready = 0;
	memset(&e, 0, sizeof(e));
	tok = ig->borrow != NULL ? ig->borrow(ig->arg, &e) : ig->tok;
	if (tok == NULL || custody_token_kek_destroy(tok, &e) != CUSTODY_OK)
		custody_warn("cannot remove the store's new integrity key from "
			     "the token again: %s", e.msg);
	if (ig->borrow != NULL && tok != NULL)
		ig->give_back(ig->arg);
}

/* Installs the tagger of ig (a copy, malloc'ed) on its store. */
static int
attach(const struct integrity *proto, custody_err *err)
{
	struct integrity *ig;

	if (proto->st == NULL ||
	    (proto->tok == NULL &&
	     (proto->borrow == NULL || proto->give_back == NULL)))
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot check the store's integrity: "
				       "no store or no token");
	if ((ig = malloc(sizeof(*ig))) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot check the store's integrity: "
				       "out of memory");
	*ig = *proto;
	custody_store_set_tagger(ig->st, tag, ig, free);
	custody_store_set_tagger_tx_end(ig->st, tx_end);
	return CUSTODY_OK;
}

int
custody_integrity_attach(custody_store *st, custody_token *tok,
			 custody_err *err)
{
	struct integrity ig = {.st = st, .tok = tok};

	return attach(&ig, err);
}

int
custody_integrity_attach_lent(custody_store *st,
			      custody_integrity_borrow_fn borrow,
			      custody_integrity_return_fn give_back, void *arg,
			      custody_err *err)
{
	struct integrity ig = {.st = st, .borrow = borrow,
			       .give_back = give_back, .arg = arg};

	return attach(&ig, err);
}

void
custody_integrity_detach(custody_store *st)
{
	custody_store_set_tagger(st, NULL, NULL, NULL);
}
