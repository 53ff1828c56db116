/*
 * ops/tidy.c — what interrupted custody processes left on a token: the notes
 * of intent, the objects of their key ids, and whether the store names
 * them (custody/tidy.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include <custody/audit.h>
#include <custody/hexfmt.h>
#include <custody/log.h>
#include <custody/ops.h>
#include <custody/request.h>
#include <custody/tidy.h>

void
custody_tidy_plan_clear(custody_tidy_plan *plan)
{
	if (plan == NULL)
		return;
	free(plan->items);
	memset(plan, 0, sizeof(*plan));
}

/* What the store has that may name a key id, read once. */
struct named {
	custody_cert_record *certs;
	size_t n_certs;
	custody_package_record *pkgs;
	size_t n_pkgs;
	custody_assignment *as;
	size_t n_as;
	custody_audit_entry *log;
	size_t n_log;
	custody_token_cert *tcerts;	/* the token's certificates */
	size_t n_tcerts;
};

static void
named_clear(struct named *nm)
{
	custody_cert_records_free(nm->certs, nm->n_certs);
	custody_package_records_free(nm->pkgs, nm->n_pkgs);
	free(nm->as);
	custody_audit_entries_free(nm->log, nm->n_log);
	custody_token_certs_free(nm->tcerts, nm->n_tcerts);
	memset(nm, 0, sizeof(*nm));
}

static int
named_read(custody_token *tok, custody_store *st, struct named *nm,
	   custody_err *err)
{
	int r;

	if ((r = custody_token_list_certs(tok, &nm->tcerts, &nm->n_tcerts,
					  err)) != CUSTODY_OK)
		return r;
	if ((r = custody_store_list_certs(st, &nm->certs, &nm->n_certs, err)) !=
	    CUSTODY_OK ||
	    (r = custody_store_list_packages(st, &nm->pkgs, &nm->n_pkgs, err)) !=
	    CUSTODY_OK ||
	    (r = custody_store_list_assignments(st, &nm->as, &nm->n_as, err)) !=
	    CUSTODY_OK ||
	    (r = custody_store_list_audit(st, 0, &nm->log, &nm->n_log, err)) !=
	    CUSTODY_OK)
		custody_err_prefix(err, "cannot read what the store names");
	return r;
}

/* Whether a request's audit entry names key_id as the key of a CSR that
 * waits for its certificate. */
static int
pending_csr(const custody_audit_entry *e, const char *key_id)
{
	char id[CUSTODY_KEY_ID_HEX + 1];

	return custody_request_csr_key_id(e, id) && strcasecmp(id, key_id) == 0;
}

/* The SHA-1 thumbprint of a token certificate ("" when unreadable). */
static void
thumbprint_of(const custody_token_cert *c, char out[CUSTODY_THUMBPRINT_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	out[0] = '\0';
	if (EVP_Digest(c->der, c->der_len, md, &len, EVP_sha1(), NULL) &&
	    len * 2 == CUSTODY_THUMBPRINT_HEX)
		custody_hex_encode(md, len, out, 1);
}

/* What in the store names key_id ("" when nothing does). */
static void
named_by(const struct named *nm, const char *key_id, char *out, size_t size)
{
	const custody_slot *slots[3];
	char tp[CUSTODY_THUMBPRINT_HEX + 1];
	size_t i, j, k;

	out[0] = '\0';
	for (i = 0; i < nm->n_certs; i++)
		if (strcasecmp(nm->certs[i].key_id, key_id) == 0) {
			snprintf(out, size, "the certificate record %.40s",
				 nm->certs[i].thumbprint);
			return;
		}
	for (i = 0; i < nm->n_pkgs; i++)
		if (strcasecmp(nm->pkgs[i].key_id, key_id) == 0) {
			snprintf(out, size, "the package of %.40s",
				 nm->pkgs[i].thumbprint);
			return;
		}
	/* An assignment names a thumbprint: of a certificate the token
	 * holds under this key id (the token's word, not only the store's
	 * records, which whoever writes the store could remove). */
	for (j = 0; j < nm->n_tcerts; j++) {
		if (strcasecmp(nm->tcerts[j].key_id, key_id) != 0)
			continue;
		thumbprint_of(&nm->tcerts[j], tp);
		for (i = 0; i < nm->n_as; i++) {
			slots[0] = &nm->as[i].current;
			slots[1] = &nm->as[i].previous;
			slots[2] = &nm->as[i].pending;
			for (k = 0; k < 3; k++)
				if (strcmp(slots[k]->thumbprint, tp) == 0) {
					snprintf(out, size, "the assignment "
						 "%.64s/%.64s", nm->as[i].type,
						 nm->as[i].identity);
					return;
				}
		}
	}
	for (i = 0; i < nm->n_log; i++)
		if (pending_csr(&nm->log[i], key_id)) {
			snprintf(out, size, "a pending certificate request "
				 "(audit entry %lld)", (long long)nm->log[i].seq);
			return;
		}
}

int
custody_tidy_plan_make(custody_token *tok, custody_store *st,
		       custody_tidy_plan *plan, custody_err *err)
{
	char (*ids)[2 * CUSTODY_TOKEN_ID_MAX + 1] = NULL;
	struct named nm;
	size_t n = 0, i;
	int r;

	memset(plan, 0, sizeof(*plan));
	memset(&nm, 0, sizeof(nm));
	if ((r = custody_token_intent_list(tok, &ids, &n, err)) != CUSTODY_OK ||
	    (r = named_read(tok, st, &nm, err)) != CUSTODY_OK)
		goto out;
	if ((plan->items = calloc(n > 0 ? n : 1, sizeof(*plan->items))) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot plan a tidy: out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		custody_tidy_item *it = &plan->items[plan->n];

		snprintf(it->key_id, sizeof(it->key_id), "%s", ids[i]);
		if ((r = custody_token_count_key_objects(tok, it->key_id,
							 &it->objects, err)) !=
		    CUSTODY_OK)
			goto out;
		named_by(&nm, it->key_id, it->named_by, sizeof(it->named_by));
		it->named = it->named_by[0] != '\0';
		plan->n++;
	}
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK)
		custody_tidy_plan_clear(plan);
	free(ids);
	named_clear(&nm);
	return r;
}

static int
objects_of(const custody_tidy_item *it)
{
	return it->objects.certificates + it->objects.public_keys +
	       it->objects.private_keys > 0;
}

/* One item: its audit entry, its objects, its note; the store's
 * transaction commits only when the token did its part. */
static int
apply_item(custody_token *tok, custody_store *st, const char *node,
	   const custody_tidy_item *it, custody_err *err)
{
	custody_txn tx;
	char detail[512];
	int r, destroy = !it->named && objects_of(it);

	custody_txn_init(&tx, st, tok, node, err);
	if ((r = custody_txn_begin(&tx)) != CUSTODY_OK)
		goto out;
	if (destroy) {
		snprintf(detail, sizeof(detail), "destroyed what an interrupted "
			 "custody left under key id %s on token %s: %zu private "
			 "key(s), %zu public key(s), %zu certificate(s)",
			 it->key_id, custody_token_label(tok),
			 it->objects.private_keys, it->objects.public_keys,
			 it->objects.certificates);
		if ((r = custody_txn_audit(&tx, "tidy", NULL, NULL, NULL, NULL,
					   detail)) != CUSTODY_OK)
			goto out;
		/* The objects first, then the note: a note stays as long as
		 * its objects do. */
		r = custody_token_delete(tok, it->key_id, err);
		if (r != CUSTODY_OK && r != CUSTODY_ENOTFOUND)
			goto out;
		custody_step("destroyed the objects of key id %s on token %s",
			     it->key_id, custody_token_label(tok));
	}
	if ((r = custody_token_intent_clear(tok, it->key_id, err)) !=
	    CUSTODY_OK)
		goto out;
	r = custody_txn_commit(&tx);
out:
	custody_txn_end(&tx, r);
	return r;
}

int
custody_tidy_apply(custody_token *tok, custody_store *st, const char *node,
		   const custody_tidy_plan *plan, custody_err *err)
{
	size_t i;
	int r;

	for (i = 0; i < plan->n; i++)
		if ((r = apply_item(tok, st, node, &plan->items[i], err)) !=
		    CUSTODY_OK)
			return r;
	return CUSTODY_OK;
}
