/*
 * cluster/cluster.c — the cluster library (see custody/cluster.h): the KEK
 * ceremony (kek create, node enroll / admit / join), packages, sync, seal
 * and status.  The PKCS#11 side is token/wrap.c; this module decides what
 * to do from what the store says, narrates it (custody_step), and writes
 * the store in one transaction per change, with its audit entry.
 *
 * Order of the writes: the token first (so that nothing in the store
 * claims what the token does not hold), then the store; when the store
 * refuses, what this call made on the token is removed again.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <custody/assign.h>
#include <custody/audit.h>
#include <custody/integrity.h>
#include <custody/cert.h>
#include <custody/cluster.h>
#include <custody/error.h>
#include <custody/hexfmt.h>
#include <custody/log.h>
#include <custody/ops.h>
#include <custody/store.h>
#include <custody/timefmt.h>
#include <custody/token.h>

#include "cluster/internal.h"
#include "token/wrap.h"

#define META_KCV CLUSTER_META_KCV
#define META_NODE "kek_node"
#define META_CREATED "kek_created_at"

/* ------------------------------------------------------------ helpers */

static int64_t
clock_now(void)
{
	return (int64_t)time(NULL);
}

/* 1..64 of [A-Za-z0-9._-]: what the token accepts in its key ids. */
static int
check_node(const char *node, custody_err *err)
{
	if (custody_node_name_valid(node))
		return CUSTODY_OK;
	return custody_err_set(err, CUSTODY_EUSAGE,
			       "invalid node name %s: expected 1 to %d of "
			       "A-Z a-z 0-9 . _ -", node != NULL ? node : "(none)",
			       CUSTODY_NODE_NAME_MAX);
}

/* 40 upper-case hex digits. */
static int
check_thumbprint(const char *t, custody_err *err)
{
	size_t i;

	if (t == NULL || strnlen(t, CUSTODY_THUMBPRINT_HEX + 1) !=
	    CUSTODY_THUMBPRINT_HEX)
		goto bad;
	for (i = 0; i < CUSTODY_THUMBPRINT_HEX; i++)
		if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'A' && t[i] <= 'F')))
			goto bad;
	return CUSTODY_OK;
bad:
	return custody_err_set(err, CUSTODY_EUSAGE,
			       "bad thumbprint: expected 40 upper-case hex digits");
}

/* The store's KEK key check value, "" when it records none. */
static int
read_store_kcv(custody_store *st, char kcv[CUSTODY_KCV_HEX + 1],
	       custody_err *err)
{
	int r = custody_store_get_meta(st, META_KCV, kcv, CUSTODY_KCV_HEX + 1,
				       err);

	if (r == CUSTODY_ENOTFOUND) {
		kcv[0] = '\0';
		r = CUSTODY_OK;
	}
	return r;
}

/* The store's KEK, which must exist: EFAIL otherwise. */
static int
need_store_kcv(custody_store *st, const char *what,
	       char kcv[CUSTODY_KCV_HEX + 1], custody_err *err)
{
	int r;

	if ((r = read_store_kcv(st, kcv, err)) != CUSTODY_OK)
		return r;
	if (kcv[0] == '\0') {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot %s: the store records no cluster KEK",
				    what);
		custody_err_hint(err, "create it on the first node with custody "
				 "kek create");
	}
	return r;
}

/* The token's KEK key check value, "" when it holds none. */
static int
read_token_kcv(custody_token *tok, char kcv[CUSTODY_KCV_HEX + 1],
	       custody_err *err)
{
	int present = 0, r;

	kcv[0] = '\0';
	if ((r = custody_token_kek_present(tok, &present, err)) != CUSTODY_OK ||
	    !present)
		return r;
	return custody_token_kek_kcv(tok, kcv, err);
}

int
custody_cluster_kek_state(custody_token *tok, custody_store *st,
			  char store_kcv[CUSTODY_KCV_HEX + 1],
			  char token_kcv[CUSTODY_KCV_HEX + 1], custody_err *err)
{
	int r;

	store_kcv[0] = token_kcv[0] = '\0';
	if (st != NULL && (r = read_store_kcv(st, store_kcv, err)) != CUSTODY_OK)
		return r;
	if (tok != NULL && (r = read_token_kcv(tok, token_kcv, err)) != CUSTODY_OK)
		return r;
	return CUSTODY_OK;
}

/* The token holds the cluster's KEK: EFAIL naming both values otherwise. */
static int
need_cluster_kek(custody_token *tok, custody_store *st, const char *what,
		 char kcv[CUSTODY_KCV_HEX + 1], custody_err *err)
{
	char have[CUSTODY_KCV_HEX + 1];
	int r;

	if ((r = need_store_kcv(st, what, kcv, err)) != CUSTODY_OK ||
	    (r = read_token_kcv(tok, have, err)) != CUSTODY_OK)
		return r;
	if (have[0] == '\0') {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot %s: token %s holds no KEK", what,
				    custody_token_label(tok));
		custody_err_hint(err, "join the cluster first: custody node "
				 "enroll, then node admit on a member, then "
				 "node join");
		return r;
	}
	if (strcasecmp(have, kcv) != 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot %s: token %s holds a KEK with key "
				       "check value %s, but the cluster's has %s",
				       what, custody_token_label(tok), have, kcv);
	return CUSTODY_OK;
}

/* ------------------------------------------------------ integrity */

int
cluster_attach_token(custody_token *tok, custody_store *st, int *attached,
		     custody_err *err)
{
	int r;

	*attached = 0;
	if (tok == NULL || st == NULL || custody_store_has_tagger(st))
		return CUSTODY_OK;
	if ((r = custody_integrity_attach(st, tok, err)) == CUSTODY_OK)
		*attached = 1;
	return r;
}

void
cluster_detach_token(custody_store *st, int attached)
{
	if (attached)
		custody_integrity_detach(st);
}

/* cluster_attach_token for a token that may do cluster work: "cannot
 * <what>" otherwise (custody_token_require_cluster). */
static int
attach_cluster_token(custody_token *tok, custody_store *st, const char *what,
		     int *attached, custody_err *err)
{
	int r;

	*attached = 0;
	if (tok != NULL &&
	    (r = custody_token_require_cluster(tok, what, err)) != CUSTODY_OK)
		return r;
	return cluster_attach_token(tok, st, attached, err);
}

/* Forgets the KEK wrapped for a node and its signed admission. */
static void
drop_admission(custody_node_record *rec)
{
	if (rec->kek_wrap != NULL)
		OPENSSL_clear_free(rec->kek_wrap, rec->kek_wrap_len);
	rec->kek_wrap = NULL;
	rec->kek_wrap_len = 0;
	free(rec->admission_sig);
	rec->admission_sig = NULL;
	rec->admission_sig_len = 0;
}

/* ------------------------------------------------------------ kek create */

/* The store's part of kek create, inside tx: the key check value, the
 * authority, and tx's node as the first member. */
static int
record_kek(custody_txn *tx, const char *kcv, const unsigned char *authority,
	   size_t authority_len, const char *fp)
{
	custody_store *st = tx->st;
	custody_token *tok = tx->tok;
	const char *node = tx->node;
	custody_err *err = tx->err;
	custody_node_record rec;
	char when[24], detail[256];
	int64_t now = clock_now();
	int r;

	memset(&rec, 0, sizeof(rec));
	snprintf(when, sizeof(when), "%lld", (long long)now);
	if ((r = custody_store_put_meta(st, META_KCV, kcv, 0, err)) != CUSTODY_OK ||
	    (r = cluster_put_store_authority(st, authority, authority_len,
					     err)) != CUSTODY_OK ||
	    (r = custody_store_put_meta(st, META_NODE, node, 0, err)) != CUSTODY_OK ||
	    (r = custody_store_put_meta(st, META_CREATED, when, 0, err)) !=
	    CUSTODY_OK)
		goto out;
	r = custody_store_get_node(st, node, &rec, err);
	if (r == CUSTODY_ENOTFOUND) {
		memset(&rec, 0, sizeof(rec));
		snprintf(rec.name, sizeof(rec.name), "%s", node);
		rec.enrolled_at = now;
	} else if (r != CUSTODY_OK) {
		goto out;
	}
	snprintf(rec.state, sizeof(rec.state), "joined");
	rec.joined_at = now;
	if (rec.kek_wrap != NULL) {
		OPENSSL_clear_free(rec.kek_wrap, rec.kek_wrap_len);
		rec.kek_wrap = NULL;
		rec.kek_wrap_len = 0;
	}
	snprintf(detail, sizeof(detail), "KEK with key check value %s and "
		 "cluster authority %s on token %s (serial %s)", kcv, fp,
		 custody_token_label(tok), custody_token_serial(tok));
	if ((r = custody_store_put_node(st, &rec, err)) == CUSTODY_OK)
		r = custody_txn_audit(tx, "kek-create", NULL, NULL, NULL, NULL, detail);
out:
	custody_node_record_clear(&rec);
	return r;
}

int
custody_cluster_kek_create(custody_token *tok, custody_store *st,
			   const char *node, char kcv_out[CUSTODY_KCV_HEX + 1],
			   custody_err *err)
{
	char kcv[CUSTODY_KCV_HEX + 1], seen[CUSTODY_KCV_HEX + 1];
	char tagged[CUSTODY_KCV_HEX + 1];
	char owner[CUSTODY_NAME_MAX + 1];
	char fp[CLUSTER_FP_SIZE] = "";
	unsigned char *authority = NULL;
	size_t authority_len = 0;
	custody_txn tx;
	int attached, r;

	custody_txn_init(&tx, st, tok, node, err);
	if ((r = attach_cluster_token(tok, st, "create the cluster KEK",
				      &attached, err)) != CUSTODY_OK ||
	    (r = check_node(node, err)) != CUSTODY_OK ||
	    (r = read_store_kcv(st, seen, err)) != CUSTODY_OK)
		goto out;
	if (seen[0] != '\0') {
		if (custody_store_get_meta(st, META_NODE, owner, sizeof(owner),
					   NULL) != CUSTODY_OK)
			snprintf(owner, sizeof(owner), "?");
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot create the KEK: the cluster already "
				    "has one (key check value %s, made on node %s)",
				    seen, owner);
		custody_err_hint(err, "a new node joins it: custody node enroll, "
				 "node admit, node join");
		goto out;
	}
	/* A store used without a cluster is tagged by a KEK of its own
	 * (custody/integrity.h): that one becomes the cluster's. */
	if ((r = custody_integrity_store_kcv(st, tagged, err)) != CUSTODY_OK ||
	    (tagged[0] != '\0' &&
	     (r = read_token_kcv(tok, kcv, err)) != CUSTODY_OK))
		goto out;
	if (tagged[0] != '\0' && strcasecmp(kcv, tagged) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot create the KEK: this store's rows "
				    "are tagged by the KEK with key check value "
				    "%s, which token %s does not hold", tagged,
				    custody_token_label(tok));
		custody_err_hint(err, "run custody kek create on the node "
				 "whose token wrote this store");
		goto out;
	}
	if (tagged[0] != '\0') {
		custody_step("step 1/3: the KEK on token %s (serial %s), which "
			     "tags this store's rows, becomes the cluster KEK: "
			     "key check value %s", custody_token_label(tok),
			     custody_token_serial(tok), kcv);
	} else {
		custody_step("step 1/3: creating the cluster KEK (AES-256) on "
			     "token %s (serial %s) for node %s: private, "
			     "sensitive, wrap and unwrap only, extractable only "
			     "under a trusted key", custody_token_label(tok),
			     custody_token_serial(tok), node);
		if ((r = custody_token_kek_create(tok, kcv, err)) != CUSTODY_OK ||
		    (r = custody_txn_undo_add(&tx, CUSTODY_UNDO_KEK, NULL, NULL, 0,
					      "cannot remove the new KEK from token %s "
					      "again", custody_token_label(tok))) !=
		    CUSTODY_OK)
			goto out;
		custody_step("created the KEK on token %s: key check value %s",
			     custody_token_label(tok), kcv);
	}
	custody_step("step 2/3: creating the cluster authority key beside it: "
		     "it signs every admission, and joining nodes pin it");
	if ((r = custody_token_authority_create(tok, &authority, &authority_len,
						err)) != CUSTODY_OK)
		goto out;
	/* Made in this run (the token held none, or create would have
	 * refused): it goes again on failure, beside a KEK made here or one
	 * that was there already, so that the same kek create can run again. */
	if ((r = custody_txn_undo_add(&tx, CUSTODY_UNDO_AUTHORITY, NULL, NULL, 0,
				      "cannot remove the new cluster authority key "
				      "from token %s again",
				      custody_token_label(tok))) != CUSTODY_OK)
		goto out;
	custody_cluster_fingerprint(authority, authority_len, fp);
	custody_step("cluster authority fingerprint %s (every enrolling node "
		     "confirms it)", fp);
	custody_step("step 3/3: recording the key check value, the authority "
		     "and node %s as the first member in the store", node);
	if ((r = custody_txn_begin(&tx)) != CUSTODY_OK ||
	    (r = record_kek(&tx, kcv, authority, authority_len, fp)) != CUSTODY_OK ||
	    (r = custody_txn_commit(&tx)) != CUSTODY_OK)
		goto out;
	custody_step("the cluster KEK has key check value %s; node %s is its "
		     "first member", kcv, node);
	if (kcv_out != NULL)
		memcpy(kcv_out, kcv, sizeof(kcv));
	r = CUSTODY_OK;
out:
	custody_txn_end(&tx, r);
	free(authority);
	cluster_detach_token(st, attached);
	return r;
}

/* ------------------------------------------------------------ authority */

static int
same_bytes(const unsigned char *a, size_t a_len, const unsigned char *b,
	   size_t b_len)
{
	return a != NULL && b != NULL && a_len == b_len &&
	       memcmp(a, b, a_len) == 0;
}


int
custody_cluster_authority(custody_token *tok, custody_store *st,
			  const char *node, int create,
			  char fp[CUSTODY_CLUSTER_FP_SIZE], int *held,
			  custody_err *err)
{
	unsigned char *stored = NULL, *mine = NULL;
	size_t stored_len = 0, mine_len = 0;
	char kcv[CUSTODY_KCV_HEX + 1], detail[256];
	custody_txn tx;
	int r;

	fp[0] = '\0';
	*held = 0;
	custody_txn_init(&tx, st, tok, node, err);
	r = cluster_store_authority(st, &stored, &stored_len, err);
	if (r == CUSTODY_OK) {
		custody_cluster_fingerprint(stored, stored_len, fp);
		if (tok != NULL) {
			r = custody_token_authority_public(tok, &mine, &mine_len,
							   err);
			if (r == CUSTODY_ENOTFOUND)
				r = CUSTODY_OK;
			*held = same_bytes(mine, mine_len, stored, stored_len);
		}
		goto out;
	}
	if (r != CUSTODY_ENOTFOUND || !create)
		goto out;
	if (tok == NULL || (r = check_node(node, err)) != CUSTODY_OK ||
	    (r = need_cluster_kek(tok, st, "create the cluster authority", kcv,
				  err)) != CUSTODY_OK)
		goto out;
	custody_step("the store records no cluster authority (the cluster was "
		     "made by an earlier custody): creating it on token %s, "
		     "which holds the KEK (key check value %s)",
		     custody_token_label(tok), kcv);
	if ((r = custody_token_authority_create(tok, &mine, &mine_len, err)) !=
	    CUSTODY_OK ||
	    (r = custody_txn_undo_add(&tx, CUSTODY_UNDO_AUTHORITY, NULL, NULL, 0,
				      "cannot remove the new cluster authority key "
				      "from token %s again",
				      custody_token_label(tok))) != CUSTODY_OK)
		goto out;
	custody_cluster_fingerprint(mine, mine_len, fp);
	snprintf(detail, sizeof(detail), "cluster authority %s on token %s "
		 "(serial %s)", fp, custody_token_label(tok),
		 custody_token_serial(tok));
	if ((r = custody_txn_begin(&tx)) != CUSTODY_OK ||
	    (r = cluster_put_store_authority(st, mine, mine_len, err)) !=
	    CUSTODY_OK ||
	    (r = custody_txn_audit(&tx, "authority-create", NULL, NULL, NULL,
				   NULL, detail)) != CUSTODY_OK ||
	    (r = custody_txn_commit(&tx)) != CUSTODY_OK)
		goto out;
	custody_step("cluster authority %s recorded: every enrolling node "
		     "confirms this fingerprint", fp);
	*held = 1;
	r = CUSTODY_OK;
out:
	custody_txn_end(&tx, r);
	free(stored);
	free(mine);
	return r;
}

/* ------------------------------------------------------------ node enroll */

/* The cluster authority that the store names (DER SPKI, malloc'ed) and its
 * fingerprint; EFAIL "cannot WHAT node N: the store records no cluster
 * authority" when it names none. */
static int
store_authority(custody_store *st, const char *what, const char *node,
		unsigned char **spki, size_t *spki_len,
		char fp[CLUSTER_FP_SIZE], custody_err *err)
{
	int r = cluster_store_authority(st, spki, spki_len, err);

	if (r == CUSTODY_ENOTFOUND) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot %s node %s: the store records no "
				    "cluster authority", what, node);
		custody_err_hint(err, "on the member that made the KEK, run "
				 "custody kek authority");
	}
	if (r == CUSTODY_OK)
		custody_cluster_fingerprint(*spki, *spki_len, fp);
	return r;
}

/* The cluster authority that the store names, pinned on this token: the
 * operator confirmed its fingerprint (confirmed_fp), or the token pinned
 * that very key before.  *pinned = 1 when this call pinned it. */
static int
pin_authority(custody_token *tok, custody_store *st, const char *node,
	      const char *confirmed_fp, int *pinned, custody_err *err)
{
	unsigned char *authority = NULL, *have = NULL;
	size_t authority_len = 0, have_len = 0;
	char fp[CLUSTER_FP_SIZE], have_fp[CLUSTER_FP_SIZE];
	int r;

	*pinned = 0;
	if ((r = store_authority(st, "enroll", node, &authority, &authority_len,
				 fp, err)) != CUSTODY_OK)
		goto out;
	r = custody_token_authority_pinned(tok, &have, &have_len, err);
	if (r == CUSTODY_OK) {
		custody_cluster_fingerprint(have, have_len, have_fp);
		if (!same_bytes(have, have_len, authority, authority_len)) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot enroll node %s: the store "
					    "names cluster authority %s, but "
					    "token %s has %s pinned", node, fp,
					    custody_token_label(tok), have_fp);
			custody_err_hint(err, "somebody changed the store's "
					 "authority: compare with custody kek "
					 "authority on the member that holds it");
			goto out;
		}
		if (confirmed_fp != NULL &&
		    !custody_cluster_fingerprint_matches(fp, confirmed_fp)) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot enroll node %s: the cluster "
					    "authority is %s, not %s", node, fp,
					    confirmed_fp);
			goto out;
		}
		custody_step("token %s has the cluster authority %s pinned",
			     custody_token_label(tok), fp);
		goto out;
	}
	if (r != CUSTODY_ENOTFOUND)
		goto out;
	if (confirmed_fp == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot enroll node %s: confirm the cluster "
				    "authority's fingerprint first (the store "
				    "says %s)", node, fp);
		custody_err_hint(err, "compare it with custody kek authority on "
				 "the member that holds it, then pass it with "
				 "--authority");
		goto out;
	}
	if (!custody_cluster_fingerprint_matches(fp, confirmed_fp)) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot enroll node %s: the store's cluster "
				    "authority is %s, not the %s you confirmed: "
				    "nothing pinned", node, fp, confirmed_fp);
		custody_err_hint(err, "somebody may have changed the store; "
				 "compare with custody kek authority on the "
				 "member that holds it");
		goto out;
	}
	custody_step("pinning the cluster authority %s on token %s (serial %s): "
		     "this node accepts only admissions it signed", fp,
		     custody_token_label(tok), custody_token_serial(tok));
	if ((r = custody_token_authority_pin(tok, authority, authority_len,
					     err)) != CUSTODY_OK)
		goto out;
	*pinned = 1;
out:
	free(authority);
	free(have);
	return r;
}

int
custody_cluster_node_enroll(custody_token *tok, custody_store *st,
			    const char *node, const char *authority_fp,
			    custody_err *err)
{
	custody_node_record rec;
	unsigned char *spki = NULL;
	size_t spki_len = 0;
	char fp[CLUSTER_FP_SIZE], detail[256], have[CUSTODY_KCV_HEX + 1];
	custody_txn tx;
	int attached, r, stored = 0, pinned = 0;

	memset(&rec, 0, sizeof(rec));
	custody_txn_init(&tx, st, tok, node, err);
	if ((r = attach_cluster_token(tok, st, "enroll in a cluster", &attached,
				      err)) != CUSTODY_OK ||
	    (r = check_node(node, err)) != CUSTODY_OK)
		goto out;
	r = custody_store_get_node(st, node, &rec, err);
	if (r == CUSTODY_OK)
		stored = 1;
	else if (r != CUSTODY_ENOTFOUND)
		goto out;
	if (stored && strcmp(rec.state, "joined") == 0) {
		if ((r = read_token_kcv(tok, have, err)) != CUSTODY_OK)
			goto out;
		if (have[0] == '\0') {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot enroll node %s: the store "
					    "records it as a member, but token %s "
					    "holds no KEK", node,
					    custody_token_label(tok));
			custody_err_hint(err, "is this the node's token? "
					 "(--token, CUSTODY_TOKEN)");
			goto out;
		}
		custody_step("node %s has already joined the cluster (its token "
			     "holds the KEK, key check value %s): nothing to do",
			     node, have);
		r = CUSTODY_OK;
		goto out;
	}
	custody_step("step 1/3: the cluster authority this node trusts");
	if ((r = pin_authority(tok, st, node, authority_fp, &pinned, err)) !=
	    CUSTODY_OK ||
	    (pinned &&
	     (r = custody_txn_undo_add(&tx, CUSTODY_UNDO_AUTHORITY_PIN, NULL, NULL, 0,
				       "cannot remove the pinned cluster authority "
				       "from token %s again",
				       custody_token_label(tok))) != CUSTODY_OK))
		goto out;
	custody_step("step 2/3: the transport key pair of node %s on token %s "
		     "(serial %s)", node, custody_token_label(tok),
		     custody_token_serial(tok));
	r = custody_token_transport_public(tok, node, &spki, &spki_len, err);
	if (r == CUSTODY_ENOTFOUND) {
		if ((r = custody_token_transport_create(tok, node, &spki,
							&spki_len, err)) !=
		    CUSTODY_OK ||
		    (r = custody_txn_undo_add(&tx, CUSTODY_UNDO_TRANSPORT, node, NULL,
					      0, "cannot remove the new transport "
					      "key of node %s again", node)) !=
		    CUSTODY_OK)
			goto out;
	} else if (r != CUSTODY_OK) {
		goto out;
	} else {
		custody_step("token %s already holds the transport key of node "
			     "%s: it is used", custody_token_label(tok), node);
	}
	custody_cluster_fingerprint(spki, spki_len, fp);
	custody_step("transport public key of node %s: RSA-3072, SHA-256 "
		     "fingerprint %s (the security officer compares it at "
		     "node admit)", node, fp);
	if (stored && same_bytes(rec.transport_spki, rec.transport_spki_len,
				 spki, spki_len)) {
		custody_step("node %s is already enrolled with this key (%s): "
			     "nothing changes", node, rec.state);
		r = CUSTODY_OK;
		goto out;
	}
	if (stored)
		custody_step("the store holds another transport key for node %s "
			     "(%s): it is replaced, and the node must be "
			     "admitted again", node, rec.state);
	custody_step("step 3/3: recording node %s as enrolled in the store", node);
	free(rec.transport_spki);
	rec.transport_spki = spki;
	rec.transport_spki_len = spki_len;
	spki = NULL;
	drop_admission(&rec);
	rec.kek_check[0] = '\0';
	snprintf(rec.name, sizeof(rec.name), "%s", node);
	snprintf(rec.state, sizeof(rec.state), "enrolled");
	rec.admitted_by[0] = '\0';
	rec.enrolled_at = clock_now();
	rec.admitted_at = rec.joined_at = 0;
	snprintf(detail, sizeof(detail), "transport key RSA-3072 SHA-256 %s on "
		 "token %s (serial %s)", fp, custody_token_label(tok),
		 custody_token_serial(tok));
	if ((r = custody_txn_begin(&tx)) != CUSTODY_OK ||
	    (r = custody_store_put_node(st, &rec, err)) != CUSTODY_OK ||
	    (r = custody_txn_audit(&tx, CUSTODY_AUDIT_NODE_ENROLL, NULL, NULL, NULL,
				   NULL, detail)) != CUSTODY_OK ||
	    (r = custody_txn_commit(&tx)) != CUSTODY_OK)
		goto out;
	custody_step("node %s is enrolled: the security officer admits it on a "
		     "member with custody node admit %s", node, node);
	r = CUSTODY_OK;
out:
	custody_txn_end(&tx, r);
	free(spki);
	custody_node_record_clear(&rec);
	cluster_detach_token(st, attached);
	return r;
}

/* ------------------------------------------------------------ node admit */

/* This token holds the cluster authority that the store names. */
static int
need_authority(custody_token *tok, custody_store *st, const char *node,
	       char fp[CLUSTER_FP_SIZE], custody_err *err)
{
	unsigned char *mine = NULL, *stored = NULL;
	size_t mine_len = 0, stored_len = 0;
	int r;

	if ((r = store_authority(st, "admit", node, &stored, &stored_len, fp,
				 err)) != CUSTODY_OK)
		goto out;
	r = custody_token_authority_public(tok, &mine, &mine_len, err);
	if (r == CUSTODY_ENOTFOUND) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot admit node %s: token %s does not hold "
				    "the cluster authority key (%s)", node,
				    custody_token_label(tok), fp);
		custody_err_hint(err, "admit it on the member that made the KEK");
		goto out;
	}
	if (r != CUSTODY_OK)
		goto out;
	if (!same_bytes(mine, mine_len, stored, stored_len)) {
		char mine_fp[CLUSTER_FP_SIZE];

		custody_cluster_fingerprint(mine, mine_len, mine_fp);
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot admit node %s: token %s holds cluster "
				    "authority %s, but the store names %s", node,
				    custody_token_label(tok), mine_fp, fp);
		custody_err_hint(err, "somebody changed the store's authority");
	}
out:
	free(mine);
	free(stored);
	return r;
}

/* What the security officer confirmed: the transport key's fingerprint,
 * and a PIN to admit with. */
static int
check_admit_confirmed(const char *node, const char *fp, const char *confirmed_fp,
		      size_t so_pin_len, custody_err *err)
{
	int r;

	/* The KEK goes to whatever key the store names: the SO vouches for
	 * it by its fingerprint, or a store writer could swap in their own. */
	if (confirmed_fp == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot admit node %s: confirm its transport "
				    "key's fingerprint first (the store says %s)",
				    node, fp);
		custody_err_hint(err, "compare it with what node enroll printed "
				 "on node %s, then pass it with --fingerprint",
				 node);
		return r;
	}
	if (!custody_cluster_fingerprint_matches(fp, confirmed_fp)) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot admit node %s: its transport key in "
				    "the store has fingerprint %s, not the %s you "
				    "confirmed: nothing written", node, fp,
				    confirmed_fp);
		custody_err_hint(err, "somebody may have changed the store: "
				 "enroll node %s again", node);
		return r;
	}
	if (so_pin_len == 0)
		return custody_err_set(err, CUSTODY_EPIN,
				       "cannot admit node %s: no security officer "
				       "PIN", node);
	return CUSTODY_OK;
}

/* The store's part of an admission, inside tx: the node's row (read
 * again: it must still have the transport key the KEK was wrapped for)
 * takes the wrapped KEK (*blob) and the signed admission (*sig). */
static int
record_admission(custody_txn *tx, const char *node, const custody_node_record *rec,
		 unsigned char **blob, size_t blob_len, unsigned char **sig,
		 size_t sig_len, const char *check, const char *detail)
{
	custody_node_record fresh;
	int r;

	memset(&fresh, 0, sizeof(fresh));
	if ((r = custody_store_get_node(tx->st, node, &fresh, tx->err)) != CUSTODY_OK)
		goto out;
	if (!same_bytes(fresh.transport_spki, fresh.transport_spki_len,
			rec->transport_spki, rec->transport_spki_len)) {
		r = custody_err_set(tx->err, CUSTODY_ECONFLICT,
				    "cannot admit node %s: it enrolled again with "
				    "another transport key meanwhile", node);
		custody_err_hint(tx->err, "run node admit %s again", node);
		goto out;
	}
	if (fresh.kek_wrap != NULL)
		OPENSSL_clear_free(fresh.kek_wrap, fresh.kek_wrap_len);
	free(fresh.admission_sig);
	fresh.kek_wrap = *blob;
	fresh.kek_wrap_len = blob_len;
	*blob = NULL;
	fresh.admission_sig = *sig;
	fresh.admission_sig_len = sig_len;
	*sig = NULL;
	snprintf(fresh.kek_check, sizeof(fresh.kek_check), "%s", check);
	snprintf(fresh.state, sizeof(fresh.state), "admitted");
	snprintf(fresh.admitted_by, sizeof(fresh.admitted_by), "%s", tx->node);
	fresh.admitted_at = clock_now();
	if ((r = custody_store_put_node(tx->st, &fresh, tx->err)) == CUSTODY_OK)
		r = custody_txn_audit(tx, "node-admit", NULL, NULL, NULL, NULL, detail);
out:
	custody_node_record_clear(&fresh);
	return r;
}

int
custody_cluster_node_admit(custody_token *tok, custody_store *st,
			   const char *this_node, const char *node,
			   const char *confirmed_fp,
			   const char *so_pin, size_t so_pin_len,
			   const char *user_pin, size_t user_pin_len,
			   custody_err *err)
{
	custody_node_record rec;
	unsigned char *blob = NULL, *sig = NULL;
	size_t blob_len = 0, sig_len = 0, msg_len = 0;
	char kcv[CUSTODY_KCV_HEX + 1], check[CUSTODY_KEK_CHECK_HEX + 1];
	char fp[CLUSTER_FP_SIZE], authority_fp[CLUSTER_FP_SIZE], detail[320];
	char *msg = NULL;
	custody_txn tx;
	int attached, r;

	memset(&rec, 0, sizeof(rec));
	custody_txn_init(&tx, st, tok, this_node, err);
	if ((r = attach_cluster_token(tok, st, "admit nodes to a cluster",
				      &attached, err)) != CUSTODY_OK ||
	    (r = check_node(this_node, err)) != CUSTODY_OK ||
	    (r = check_node(node, err)) != CUSTODY_OK)
		goto out;
	r = custody_store_get_node(st, node, &rec, err);
	if (r == CUSTODY_ENOTFOUND) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot admit node %s: it has not enrolled "
				    "(the store holds no transport key for it)",
				    node);
		custody_err_hint(err, "run custody node enroll on node %s first",
				 node);
		goto out;
	}
	if (r != CUSTODY_OK)
		goto out;
	if (strcmp(rec.state, "joined") == 0) {
		custody_step("node %s has already joined the cluster: nothing to "
			     "do", node);
		r = CUSTODY_OK;
		goto out;
	}
	if (rec.transport_spki == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot admit node %s: the store holds no "
				    "transport key for it", node);
		goto out;
	}
	if ((r = need_cluster_kek(tok, st, "admit a node", kcv, err)) !=
	    CUSTODY_OK ||
	    (r = need_authority(tok, st, node, authority_fp, err)) !=
	    CUSTODY_OK)
		goto out;
	custody_cluster_fingerprint(rec.transport_spki, rec.transport_spki_len, fp);
	if ((r = check_admit_confirmed(node, fp, confirmed_fp,
				       so_pin != NULL ? so_pin_len : 0, err)) !=
	    CUSTODY_OK)
		goto out;
	custody_step("step 1/3: admitting node %s on token %s (serial %s), "
		     "node %s: its transport key has SHA-256 fingerprint %s, "
		     "as confirmed", node,
		     custody_token_label(tok), custody_token_serial(tok),
		     this_node, fp);
	if ((r = custody_token_admit_wrap_kek(tok, so_pin, so_pin_len,
					      user_pin, user_pin_len, node,
					      rec.transport_spki,
					      rec.transport_spki_len, &blob,
					      &blob_len, err)) != CUSTODY_OK ||
	    (r = custody_token_kek_check(tok, check, err)) != CUSTODY_OK)
		goto out;
	custody_step("step 2/3: the cluster authority (%s) signs the admission: "
		     "node %s, its transport key, the wrapped KEK and the KEK "
		     "check %s", authority_fp, node, check);
	if ((r = cluster_admission_bytes(node, rec.transport_spki,
					 rec.transport_spki_len, blob, blob_len,
					 check, &msg, &msg_len, err)) !=
	    CUSTODY_OK ||
	    (r = custody_token_authority_sign(tok, (unsigned char *)msg,
					      msg_len, &sig, &sig_len, err)) !=
	    CUSTODY_OK)
		goto out;
	custody_step("step 3/3: recording node %s as admitted, with the wrapped "
		     "KEK (%zu bytes of ciphertext) and the signed admission, in "
		     "the store", node, blob_len);
	snprintf(detail, sizeof(detail), "node %s admitted on token %s (serial "
		 "%s) by the security officer; transport key SHA-256 %s; KEK "
		 "%s (check %s) wrapped for it; signed by cluster authority %s",
		 node, custody_token_label(tok), custody_token_serial(tok), fp,
		 kcv, check, authority_fp);
	if ((r = custody_txn_begin(&tx)) != CUSTODY_OK ||
	    (r = record_admission(&tx, node, &rec, &blob, blob_len, &sig, sig_len,
				  check, detail)) != CUSTODY_OK ||
	    (r = custody_txn_commit(&tx)) != CUSTODY_OK)
		goto out;
	custody_step("node %s is admitted: it joins with custody node join; "
		     "the KEK check it will show is %s", node, check);
	r = CUSTODY_OK;
out:
	custody_txn_end(&tx, r);
	if (blob != NULL)
		OPENSSL_clear_free(blob, blob_len);
	free(sig);
	free(msg);
	custody_node_record_clear(&rec);
	cluster_detach_token(st, attached);
	return r;
}

/* ------------------------------------------------------------ node join */

/* The admission in rec is signed, for this node's own transport key, by
 * the cluster authority pinned on this token, and agrees with the store's
 * key check value (kcv) and with what the operator confirmed. */
static int
check_admission(custody_token *tok, const custody_node_record *rec,
		const char *kcv, const char *confirmed_check, custody_err *err)
{
	unsigned char *authority = NULL, *spki = NULL;
	size_t authority_len = 0, spki_len = 0;
	char fp[CLUSTER_FP_SIZE];
	int valid = 0, r;

	if (rec->admission_sig == NULL || rec->kek_check[0] == '\0') {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot join: the admission of node %s is "
				    "not signed by the cluster authority: "
				    "nothing unwrapped", rec->name);
		custody_err_hint(err, "the security officer admits it again on "
				 "the member that holds the authority");
		goto out;
	}
	r = custody_token_authority_pinned(tok, &authority, &authority_len,
					   err);
	if (r == CUSTODY_ENOTFOUND) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot join: token %s has no cluster "
				    "authority pinned: nothing unwrapped",
				    custody_token_label(tok));
		custody_err_hint(err, "enroll the node again: custody node enroll "
				 "--authority FINGERPRINT");
		goto out;
	}
	if (r != CUSTODY_OK ||
	    (r = custody_token_transport_public(tok, rec->name, &spki,
						&spki_len, err)) != CUSTODY_OK)
		goto out;
	custody_cluster_fingerprint(authority, authority_len, fp);
	if ((r = cluster_admission_verify(authority, authority_len, rec->name,
					  spki, spki_len, rec->kek_wrap,
					  rec->kek_wrap_len, rec->kek_check,
					  rec->admission_sig,
					  rec->admission_sig_len, &valid,
					  err)) != CUSTODY_OK)
		goto out;
	if (!valid) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot join: the admission of node %s in the "
				    "store is not signed by the cluster authority "
				    "this node pinned (%s), for this node's "
				    "transport key: nothing unwrapped", rec->name,
				    fp);
		custody_err_hint(err, "somebody changed the store, or the node "
				 "enrolled again after its admission: the "
				 "security officer admits it again");
		goto out;
	}
	custody_step("the admission is signed by the cluster authority %s for "
		     "this node's transport key: KEK check %s", fp,
		     rec->kek_check);
	if (strlen(rec->kek_check) != CUSTODY_KEK_CHECK_HEX ||
	    strncasecmp(rec->kek_check, kcv, CUSTODY_KCV_HEX) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot join: the admitted KEK (check %s) "
				    "is not the cluster's (key check value %s): "
				    "nothing unwrapped", rec->kek_check, kcv);
		goto out;
	}
	if (confirmed_check != NULL &&
	    !custody_cluster_fingerprint_matches(rec->kek_check, confirmed_check)) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot join: the admitted KEK has check %s, "
				    "not the %s you gave: nothing unwrapped",
				    rec->kek_check, confirmed_check);
		goto out;
	}
	r = CUSTODY_OK;
out:
	free(authority);
	free(spki);
	return r;
}

/* The store's part of a join, inside tx: tx's node is a member, and the
 * KEK wrapped for it goes from the store. */
static int
record_join(custody_txn *tx, const char *kcv)
{
	custody_node_record rec;
	char detail[256];
	int r;

	memset(&rec, 0, sizeof(rec));
	if ((r = custody_store_get_node(tx->st, tx->node, &rec, tx->err)) != CUSTODY_OK)
		goto out;
	drop_admission(&rec);
	snprintf(rec.state, sizeof(rec.state), "joined");
	rec.joined_at = clock_now();
	snprintf(detail, sizeof(detail), "KEK %s unwrapped on token %s (serial "
		 "%s); its wrap deleted from the store; transport key destroyed",
		 kcv, custody_token_label(tx->tok), custody_token_serial(tx->tok));
	if ((r = custody_store_put_node(tx->st, &rec, tx->err)) == CUSTODY_OK)
		r = custody_txn_audit(tx, "node-join", NULL, NULL, NULL, NULL, detail);
out:
	custody_node_record_clear(&rec);
	return r;
}

int
custody_cluster_node_join(custody_token *tok, custody_store *st,
			  const char *node, const char *confirmed_check,
			  custody_err *err)
{
	custody_node_record rec;
	char kcv[CUSTODY_KCV_HEX + 1], have[CUSTODY_KCV_HEX + 1];
	custody_err ignored;
	custody_txn tx;
	int attached, r, had_kek = 0;

	memset(&rec, 0, sizeof(rec));
	custody_txn_init(&tx, st, tok, node, err);
	if ((r = attach_cluster_token(tok, st, "join a cluster", &attached,
				      err)) != CUSTODY_OK ||
	    (r = check_node(node, err)) != CUSTODY_OK ||
	    (r = need_store_kcv(st, "join the cluster", kcv, err)) != CUSTODY_OK)
		goto out;
	if ((r = read_token_kcv(tok, have, err)) != CUSTODY_OK) {
		/* A KEK object that cannot compute its check value: what a
		 * join killed inside its unwrap leaves.  Only an admitted node
		 * goes on, and custody_token_unwrap_kek destroys such an object
		 * and unwraps the KEK again. */
		if (!custody_token_err_is_key_fault(err))
			goto out;
		custody_step("token %s holds a KEK object that cannot be used "
			     "(%s)", custody_token_label(tok), err->msg);
		custody_err_clear(err);
		have[0] = '\0';
	}
	had_kek = have[0] != '\0';
	r = custody_store_get_node(st, node, &rec, err);
	if (r != CUSTODY_OK && r != CUSTODY_ENOTFOUND)
		goto out;
	if (r == CUSTODY_OK && strcmp(rec.state, "joined") == 0) {
		if (strcasecmp(have, kcv) != 0) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot join: node %s is a member, but "
					    "token %s does not hold the cluster "
					    "KEK (key check value %s)", node,
					    custody_token_label(tok), kcv);
			goto out;
		}
		custody_step("node %s has already joined: token %s holds the "
			     "KEK (key check value %s)", node,
			     custody_token_label(tok), have);
		r = CUSTODY_OK;
		goto out;
	}
	if (r == CUSTODY_ENOTFOUND || rec.kek_wrap == NULL ||
	    strcmp(rec.state, "admitted") != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot join the cluster: node %s is not "
				    "admitted (%s)", node,
				    rec.name[0] == '\0' ? "the store does not know "
							  "it"
				    : rec.kek_wrap == NULL ? "no KEK is wrapped "
							     "for it in the store"
				    : "the store says it is enrolled");
		custody_err_hint(err, "%s", rec.name[0] == '\0'
				 ? "enroll it with custody node enroll, then the "
				   "security officer admits it on a member"
				 : "the security officer admits it on a member "
				   "with custody node admit");
		goto out;
	}
	custody_step("step 1/3: checking the admission of node %s (by node %s) "
		     "against the cluster authority pinned on token %s", node,
		     rec.admitted_by, custody_token_label(tok));
	if ((r = check_admission(tok, &rec, kcv, confirmed_check, err)) !=
	    CUSTODY_OK)
		goto out;
	custody_step("unwrapping the KEK wrapped for node %s into token %s "
		     "(serial %s)", node, custody_token_label(tok),
		     custody_token_serial(tok));
	if ((r = custody_token_unwrap_kek(tok, node, rec.kek_wrap,
					  rec.kek_wrap_len, rec.kek_check,
					  err)) != CUSTODY_OK ||
	    (!had_kek &&
	     (r = custody_txn_undo_add(&tx, CUSTODY_UNDO_KEK, NULL, NULL, 0,
				       "cannot remove the unwrapped KEK from token "
				       "%s again", custody_token_label(tok))) !=
	     CUSTODY_OK))
		goto out;
	custody_step("the KEK on token %s has the admitted 64-bit check %s "
		     "(key check value %s)", custody_token_label(tok),
		     rec.kek_check, kcv);
	custody_step("step 2/3: recording node %s as a member and deleting the "
		     "wrapped KEK from the store", node);
	if ((r = custody_txn_begin(&tx)) != CUSTODY_OK ||
	    (r = record_join(&tx, kcv)) != CUSTODY_OK ||
	    (r = custody_txn_commit(&tx)) != CUSTODY_OK)
		goto out;
	custody_step("step 3/3: destroying the transport key pair of node %s on "
		     "token %s: nothing can unwrap a KEK with it again", node,
		     custody_token_label(tok));
	r = custody_token_transport_destroy(tok, node, &ignored);
	if (r != CUSTODY_OK && r != CUSTODY_ENOTFOUND)
		custody_warn("cannot destroy the transport key of node %s on "
			     "token %s: %s; destroy it by hand", node,
			     custody_token_label(tok), ignored.msg);
	custody_step("node %s has joined the cluster (KEK key check value %s)",
		     node, kcv);
	r = CUSTODY_OK;
out:
	custody_txn_end(&tx, r);
	custody_node_record_clear(&rec);
	cluster_detach_token(st, attached);
	return r;
}

/* ------------------------------------------------------------ packages */

int
custody_cluster_package_put(custody_token *tok, custody_store *st,
			    const char *node, const char *thumbprint,
			    const char *key_id, custody_err *err)
{
	custody_package_record rec;
	char kcv[CUSTODY_KCV_HEX + 1];
	int attached, r;

	memset(&rec, 0, sizeof(rec));
	if ((r = attach_cluster_token(tok, st, "package keys for the cluster",
				      &attached, err)) != CUSTODY_OK ||
	    (r = check_node(node, err)) != CUSTODY_OK ||
	    (r = check_thumbprint(thumbprint, err)) != CUSTODY_OK ||
	    (r = need_cluster_kek(tok, st, "package a key", kcv, err)) !=
	    CUSTODY_OK)
		goto out;
	custody_step("packaging private key %s (certificate %s) under the KEK "
		     "(key check value %s) on token %s", key_id, thumbprint, kcv,
		     custody_token_label(tok));
	if ((r = custody_token_wrap_private_key(tok, key_id, &rec.wrapped,
						&rec.wrapped_len, err)) !=
	    CUSTODY_OK)
		goto out;
	snprintf(rec.thumbprint, sizeof(rec.thumbprint), "%s", thumbprint);
	snprintf(rec.key_id, sizeof(rec.key_id), "%s", key_id);
	snprintf(rec.kcv, sizeof(rec.kcv), "%s", kcv);
	snprintf(rec.node, sizeof(rec.node), "%s", node);
	rec.created_at = clock_now();
	if ((r = custody_store_put_package(st, &rec, err)) != CUSTODY_OK)
		goto out;
	custody_step("the package of %s (%zu bytes, wrapped) is in the store",
		     thumbprint, rec.wrapped_len);
	r = CUSTODY_OK;
out:
	custody_package_record_clear(&rec);
	cluster_detach_token(st, attached);
	return r;
}

int
custody_cluster_report_held(custody_store *st, const char *node,
			    const char *thumbprint, const char *detail,
			    custody_err *err)
{
	custody_report_record rep;
	custody_node_record rec;
	int r;

	memset(&rec, 0, sizeof(rec));
	if ((r = check_node(node, err)) != CUSTODY_OK ||
	    (r = check_thumbprint(thumbprint, err)) != CUSTODY_OK)
		goto out;
	r = custody_store_get_node(st, node, &rec, err);
	if (r == CUSTODY_ENOTFOUND) {
		custody_err_clear(err);
		r = CUSTODY_OK;
		goto out;
	}
	if (r != CUSTODY_OK)
		goto out;
	memset(&rep, 0, sizeof(rep));
	snprintf(rep.node, sizeof(rep.node), "%s", node);
	snprintf(rep.thumbprint, sizeof(rep.thumbprint), "%s", thumbprint);
	snprintf(rep.detail, sizeof(rep.detail), "%s", detail);
	rep.held = 1;
	rep.time = clock_now();
	r = custody_store_put_report(st, &rep, err);
out:
	custody_node_record_clear(&rec);
	return r;
}

int
custody_cluster_package_key(custody_token *tok, custody_store *st,
			    const char *node, const char *thumbprint,
			    custody_err *err)
{
	custody_cert_record cert;
	char detail[160];
	custody_txn tx;
	int r;

	memset(&cert, 0, sizeof(cert));
	custody_txn_init(&tx, st, tok, node, err);
	if ((r = check_thumbprint(thumbprint, err)) != CUSTODY_OK ||
	    (r = custody_store_get_cert(st, thumbprint, &cert, err)) != CUSTODY_OK ||
	    (r = custody_cert_record_check(&cert, NULL, err)) != CUSTODY_OK)
		goto out;
	snprintf(detail, sizeof(detail), "key id %s wrapped under the KEK on "
		 "token %s", cert.key_id, custody_token_label(tok));
	if ((r = custody_txn_begin(&tx)) != CUSTODY_OK ||
	    (r = custody_cluster_package_put(tok, st, node, thumbprint,
					     cert.key_id, err)) != CUSTODY_OK ||
	    (r = custody_txn_audit(&tx, "package", NULL, NULL, thumbprint, NULL,
				   detail)) != CUSTODY_OK)
		goto out;
	r = custody_txn_commit(&tx);
out:
	custody_txn_end(&tx, r);
	custody_cert_record_clear(&cert);
	return r;
}

/* ------------------------------------------------------------ sync */

static int
add_item(custody_sync_result *res, const char *thumbprint, const char *type,
	 const char *slot, custody_err *err)
{
	custody_sync_item *grown, *it;

	grown = realloc(res->items, (res->n + 1) * sizeof(*grown));
	if (grown == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot sync: out of memory");
	res->items = grown;
	it = &res->items[res->n++];
	memset(it, 0, sizeof(*it));
	snprintf(it->thumbprint, sizeof(it->thumbprint), "%s", thumbprint);
	snprintf(it->type, sizeof(it->type), "%s", type);
	snprintf(it->slot, sizeof(it->slot), "%s", slot);
	return CUSTODY_OK;
}

/* The earlier item for the same thumbprint, if any. */
static const custody_sync_item *
earlier(const custody_sync_result *res, size_t i)
{
	size_t j;

	for (j = 0; j < i; j++)
		if (strcmp(res->items[j].thumbprint, res->items[i].thumbprint) == 0)
			return &res->items[j];
	return NULL;
}

/* Writes the rolls of global assignments that came due by now, each in a
 * transaction of its own; a concurrent writer that did it first wins. */
static void
materialize_rolls(custody_store *st, const char *node, int64_t now,
		  const custody_assignment *all, size_t n)
{
	custody_assignment resolved;
	char t[CUSTODY_TIME_TEXT];
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcasecmp(all[i].identity, CUSTODY_SCOPE_GLOBAL) != 0 ||
		    !custody_assign_resolve(&all[i], now, &resolved))
			continue;
		if (custody_change_materialize_due_roll(st, node, all[i].type,
							CUSTODY_SCOPE_GLOBAL, now, &resolved) ==
		    CUSTODY_OK && resolved.type[0] != '\0')
			custody_step("the roll of %s/global to %s took effect at "
				     "%s", resolved.type,
				     resolved.current.thumbprint,
				     custody_time_format(resolved.current.effective,
							 t));
	}
}

/* What collect_items does with a roll that came due (its pending
 * effective date passed, the store still says pending). */
enum due_rolls {
	DUE_STOP,	/* note it (*rolls_due) and collect nothing: a read
			 * snapshot cannot record it */
	DUE_RECORD,	/* record it, collect nothing: the caller reads again */
	DUE_FOLLOW,	/* collect what it made current, recorded or not */
};

/* The items of a sync: every slot of every global assignment at now. */
static int
collect_items(custody_store *st, const char *node, int64_t now,
	      enum due_rolls due, int *rolls_due, custody_sync_result *res,
	      custody_err *err)
{
	custody_assignment *all = NULL, resolved;
	size_t n = 0, i;
	int r;

	*rolls_due = 0;
	if ((r = custody_store_list_assignments(st, &all, &n, err)) != CUSTODY_OK)
		goto out;
	if (due == DUE_RECORD) {
		materialize_rolls(st, node, now, all, n);
		goto out;
	}
	for (i = 0; i < n && due == DUE_STOP; i++)
		if (strcasecmp(all[i].identity, CUSTODY_SCOPE_GLOBAL) == 0 &&
		    custody_assign_resolve(&all[i], now, &resolved))
			*rolls_due = 1;
	if (*rolls_due)
		goto out;
	for (i = 0; i < n; i++) {
		if (strcasecmp(all[i].identity, CUSTODY_SCOPE_GLOBAL) != 0)
			continue;
		/* A row that fails its integrity check stops the sync: what
		 * the store says can no longer be told from a forgery. */
		if ((r = custody_store_check_assignment(st, &all[i], err)) !=
		    CUSTODY_OK)
			goto out;
		custody_assign_resolve(&all[i], now, &resolved);
		if ((resolved.current.thumbprint[0] != '\0' &&
		     (r = add_item(res, resolved.current.thumbprint,
				   resolved.type, "current", err)) != CUSTODY_OK) ||
		    (resolved.pending.thumbprint[0] != '\0' &&
		     (r = add_item(res, resolved.pending.thumbprint,
				   resolved.type, "pending", err)) != CUSTODY_OK) ||
		    (resolved.previous.thumbprint[0] != '\0' &&
		     (r = add_item(res, resolved.previous.thumbprint,
				   resolved.type, "previous", err)) != CUSTODY_OK))
			goto out;
	}
	r = CUSTODY_OK;
out:
	free(all);
	return r;
}

/* Refuses the item: why, and one more refused key. */
static void
refuse(custody_sync_result *res, custody_sync_item *it, const char *fmt, ...)
	CUSTODY_PRINTF(3, 4);

static void
refuse(custody_sync_result *res, custody_sync_item *it, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(it->problem, sizeof(it->problem), fmt, ap) < 0)
		it->problem[0] = '\0';
	va_end(ap);
	it->held = 0;
	res->refused++;
	custody_warn("sync: %s/global %s %s: %s", it->type, it->slot,
		     it->thumbprint, it->problem);
}

/* vsnprintf into buf: a reason cut at size is still a reason. */
static void
textf(char *buf, size_t size, const char *fmt, ...) CUSTODY_PRINTF(3, 4);

static void
textf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(buf, size, fmt, ap) < 0)
		buf[0] = '\0';
	va_end(ap);
}

/*
 * Whether the audit log says certificate thumbprint was deleted and not
 * made again since: its newest entry among those that make a certificate
 * (import, request) or destroy it (delete) is a delete.  EFAIL with the
 * reason in why when it was (or when the log cannot be read).  A store
 * writer who puts a deleted certificate's records back (its row, an
 * assignment, even a copy of its package) finds its key refused here;
 * one who rewrites the log as well is what integrity tags are for.
 */
static int
deleted_in_log(custody_store *st, const char *thumbprint, char *why,
	       size_t size)
{
	static const char *const life[] = {CUSTODY_AUDIT_IMPORT,
					   CUSTODY_AUDIT_REQUEST,
					   CUSTODY_AUDIT_DELETE, NULL};
	custody_audit_entry last;
	char t[CUSTODY_TIME_TEXT];
	custody_err e;
	int r;

	/* The certificate's newest import, request or deletion, which the
	 * store finds (one query; the log is not read here). */
	memset(&last, 0, sizeof(last));
	r = custody_store_newest_audit_of(st, life, thumbprint, &last, &e);
	if (r == CUSTODY_ENOTFOUND)
		return CUSTODY_OK;
	if (r != CUSTODY_OK) {
		textf(why, size, "%s", e.msg);
		return r;
	}
	if (strcmp(last.action, CUSTODY_AUDIT_DELETE) == 0) {
		textf(why, size, "the certificate was deleted (audit entry %lld, "
		      "%s on node %s) and not imported again since: its package "
		      "is refused", (long long)last.seq,
		      custody_time_format(last.time, t), last.node);
		r = CUSTODY_EFAIL;
	}
	custody_audit_entry_clear(&last);
	return r;
}

/*
 * Whether the store's package of this certificate's key can be unwrapped
 * on this token: OK with *pkg filled, or the reason in why.  The package
 * of a certificate that was deleted is refused (deleted_in_log).
 */
static int
usable_package(custody_token *tok, custody_store *st, const char *store_kcv,
	       const char *token_kcv, const custody_cert_record *cert,
	       custody_package_record *pkg, char *why, size_t size)
{
	custody_err e;
	int r;

	r = custody_store_get_package(st, cert->thumbprint, pkg, &e);
	if (r == CUSTODY_ENOTFOUND) {
		textf(why, size, "the store holds no package for it (not "
			 "replicable, or not packaged yet)");
		return r;
	}
	if (r != CUSTODY_OK) {
		textf(why, size, "%s", e.msg);
		return r;
	}
	if (strcmp(pkg->key_id, cert->key_id) != 0) {
		textf(why, size, "its package holds key id %s, but the "
			 "certificate's key id is %s: package refused",
			 pkg->key_id, cert->key_id);
		return CUSTODY_EFAIL;
	}
	if (store_kcv[0] != '\0' && strcasecmp(pkg->kcv, store_kcv) != 0) {
		textf(why, size, "its package was wrapped under another KEK "
			 "(key check value %s; the cluster's is %s): package "
			 "refused", pkg->kcv, store_kcv);
		return CUSTODY_EFAIL;
	}
	if (token_kcv[0] == '\0') {
		textf(why, size, "token %s holds no KEK to unwrap its "
			 "package: join the cluster first",
			 custody_token_label(tok));
		return CUSTODY_EFAIL;
	}
	if (strcasecmp(pkg->kcv, token_kcv) != 0) {
		textf(why, size, "its package was wrapped under KEK %s, "
			 "token %s holds KEK %s: package refused", pkg->kcv,
			 custody_token_label(tok), token_kcv);
		return CUSTODY_EFAIL;
	}
	return deleted_in_log(st, cert->thumbprint, why, size);
}

/*
 * A private key object with the certificate's key id is on the token but
 * failed its check (failed: why).  It is custody's own debris — what an
 * interrupted unwrap or import leaves — when the check failed because of
 * the object (not the token) and the store has a package that this token
 * can unwrap: then it is destroyed (1 returned, it->repair says what and
 * why) and the caller unwraps the key again.  Otherwise nothing is
 * destroyed, the item is refused naming the object, and 0 is returned.
 */
static int
repair_key(custody_token *tok, custody_store *st, const char *store_kcv,
	   const char *token_kcv, custody_sync_result *res,
	   custody_sync_item *it, const custody_cert_record *cert,
	   const custody_err *failed, custody_package_record *pkg)
{
	char why[256];
	size_t n = 0;
	custody_err e;

	if (!custody_token_err_is_key_fault(failed)) {
		refuse(res, it, "%s", failed->msg);
		return 0;
	}
	if (usable_package(tok, st, store_kcv, token_kcv, cert, pkg, why,
			   sizeof(why)) != CUSTODY_OK) {
		refuse(res, it, "private key %s on token %s fails its check, "
		       "and custody cannot prove that it made it: not "
		       "destroyed (%s; the check: %s)", cert->key_id,
		       custody_token_label(tok), why, failed->msg);
		return 0;
	}
	if (custody_token_destroy_private_key(tok, cert->key_id, &n, &e) !=
	    CUSTODY_OK) {
		refuse(res, it, "private key %s fails its check and cannot be "
		       "repaired: %s", cert->key_id, e.msg);
		return 0;
	}
	textf(it->repair, sizeof(it->repair), "%s", failed->msg);
	custody_step("%s/global %s %s: private key %s on token %s failed its "
		     "check (%s): destroyed, unwrapping it again from its "
		     "package", it->type, it->slot, it->thumbprint,
		     cert->key_id, custody_token_label(tok), failed->msg);
	it->repaired = 1;
	return 1;
}

/*
 * What a sync reads of the store for its keys, in one read snapshot and a
 * constant number of queries whatever their number: the certificates
 * and packages (each checked against its integrity tag, the tags read in
 * one query by the snapshot) and this node's reports.  Per item: the
 * index of its certificate (-1: why in cert_error) and of its package
 * (-1 and pkg_state ENOTFOUND: none; not checked, see view_item).
 */
struct sync_view {
	custody_cert_record *certs;
	size_t n_certs;
	custody_package_record *pkgs;
	size_t n_pkgs;
	custody_report_record *reps;
	size_t n_reps;
	struct sync_view_item {
		long cert, pkg;
		int pkg_state;
		char cert_error[256];
	} *items;
};

static void
view_clear(struct sync_view *v)
{
	custody_cert_records_free(v->certs, v->n_certs);
	custody_package_records_free(v->pkgs, v->n_pkgs);
	free(v->reps);
	free(v->items);
	memset(v, 0, sizeof(*v));
}

/* The item's certificate and package in v, each checked. */
static void
view_item(custody_store *st, struct sync_view *v, const char *thumbprint,
	  struct sync_view_item *vi)
{
	custody_err e;
	size_t j;

	vi->cert = vi->pkg = -1;
	vi->pkg_state = CUSTODY_ENOTFOUND;
	textf(vi->cert_error, sizeof(vi->cert_error), "certificate %s is not in "
	      "store %s", thumbprint, custody_store_where(st));
	for (j = 0; j < v->n_certs; j++) {
		if (strcmp(v->certs[j].thumbprint, thumbprint) != 0)
			continue;
		if (custody_store_check_cert(st, &v->certs[j], &e) == CUSTODY_OK)
			vi->cert = (long)j;
		else
			textf(vi->cert_error, sizeof(vi->cert_error), "%s", e.msg);
		break;
	}
	/* Whether there is a package is all a held key needs (one to make
	 * when there is none); an unwrap reads and checks its package then
	 * (usable_package): no integrity check here for keys held. */
	for (j = 0; j < v->n_pkgs; j++) {
		if (strcmp(v->pkgs[j].thumbprint, thumbprint) != 0)
			continue;
		vi->pkg_state = CUSTODY_OK;
		vi->pkg = (long)j;
		break;
	}
}

/* Fills v for the items of res, inside the caller's read snapshot. */
static int
load_view(custody_store *st, const char *node, const custody_sync_result *res,
	  struct sync_view *v, custody_err *err)
{
	const char **tps;
	size_t i, n_tps = 0;
	int r;

	memset(v, 0, sizeof(*v));
	/* Only the rows of the keys synced: the bytes of a sync grow with
	 * what is assigned, not with everything the store keeps. */
	if ((tps = calloc(res->n > 0 ? res->n : 1, sizeof(*tps))) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot sync: out of memory");
	for (i = 0; i < res->n; i++)	/* a malformed one is refused: not found */
		if (earlier(res, i) == NULL &&
		    check_thumbprint(res->items[i].thumbprint, NULL) == CUSTODY_OK)
			tps[n_tps++] = res->items[i].thumbprint;
	r = custody_store_list_certs_of(st, tps, n_tps, &v->certs, &v->n_certs, err);
	if (r == CUSTODY_OK)
		r = custody_store_list_packages_of(st, tps, n_tps, &v->pkgs,
						   &v->n_pkgs, err);
	free(tps);
	if (r != CUSTODY_OK ||
	    (r = custody_store_list_reports(st, node, &v->reps, &v->n_reps, err)) !=
	    CUSTODY_OK)
		return r;
	if ((v->items = calloc(res->n > 0 ? res->n : 1, sizeof(*v->items))) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot sync: out of memory");
	for (i = 0; i < res->n; i++)
		if (earlier(res, i) == NULL)
			view_item(st, v, res->items[i].thumbprint, &v->items[i]);
	return CUSTODY_OK;
}

/*
 * The items of a sync and what the store holds for them (sync_view), read
 * in one snapshot: a constant number of queries however many keys.  A
 * roll that came due is recorded first (outside it), then read again.
 */
static int
read_items(custody_store *st, const char *node, int64_t now,
	   custody_sync_result *res, struct sync_view *v, custody_err *err)
{
	enum due_rolls due = DUE_STOP;
	int r, rolls_due = 0;

	for (;;) {
		if ((r = custody_store_snapshot_begin(st, err)) != CUSTODY_OK)
			return r;
		r = collect_items(st, node, now, due, &rolls_due, res, err);
		if (r == CUSTODY_OK && !rolls_due)
			r = load_view(st, node, res, v, err);
		custody_store_snapshot_end(st);
		if (r != CUSTODY_OK || !rolls_due)
			return r;
		custody_sync_result_clear(res);
		/* Recorded by this node, or by another that came first (the
		 * nodes of a cluster all wake at its instant): either way the
		 * sync then follows what it made current, even while the
		 * winner's commit is not yet seen. */
		if ((r = collect_items(st, node, now, DUE_RECORD, &rolls_due,
				       res, err)) != CUSTODY_OK)
			return r;
		due = DUE_FOLLOW;
	}
}

/*
 * One key of the sync: held and verified, or unwrapped from its package
 * and verified (all or nothing), or refused with the reason.  A key
 * object that fails its check is repaired when custody can prove it is
 * its own (repair_key).  *package_it = 1 when this token holds it
 * extractable and the store has no package.
 */
static void
sync_item(custody_token *tok, custody_store *st, const char *store_kcv,
	  const char *token_kcv, const struct sync_view *v, size_t index,
	  custody_sync_result *res, int *package_it)
{
	custody_sync_item *it = &res->items[index];
	const struct sync_view_item *vi = &v->items[index];
	custody_cert_record cert;
	custody_package_record pkg;
	custody_key_attrs attrs;
	custody_token_import_result ir;
	X509 *x = NULL;
	char why[256];
	custody_err e;
	int present = 0, r;

	memset(&cert, 0, sizeof(cert));
	memset(&pkg, 0, sizeof(pkg));
	*package_it = 0;
	/* The record's key id decides which token key is checked, repaired
	 * (destroyed) or unwrapped: it must be its certificate's. */
	if (vi->cert < 0) {
		refuse(res, it, "%s", vi->cert_error);
		goto out;
	}
	/* A shallow copy: the view keeps its memory. */
	cert = v->certs[vi->cert];
	if ((r = custody_cert_record_check(&cert, &x, &e)) != CUSTODY_OK) {
		refuse(res, it, "%s", e.msg);
		goto out;
	}
	/* Proved earlier by this token handle, its objects still there
	 * (custody_token_keep_checks): held, without a search or a
	 * signature.  A key the store has no package for yet is looked at
	 * in full (it may need one). */
	if (vi->pkg_state != CUSTODY_ENOTFOUND &&
	    custody_token_key_checked(tok, cert.key_id, x, &present, &e) ==
	    CUSTODY_OK && present) {
		it->held = 1;
		goto out;
	}
	if ((r = custody_token_has_private_key(tok, cert.key_id, &present,
					       &e)) != CUSTODY_OK) {
		refuse(res, it, "%s", e.msg);
		goto out;
	}
	if (present &&
	    (r = custody_token_verify_key(tok, cert.key_id, x, &e)) !=
	    CUSTODY_OK &&
	    !repair_key(tok, st, store_kcv, token_kcv, res, it, &cert, &e,
			&pkg))
		goto out;
	if (present && !it->repaired) {
		/* The certificate beside it (creates nothing when there). */
		if (custody_token_import(tok, NULL, x, NULL, cert.label, 0, &ir,
					 &e) != CUSTODY_OK)
			custody_warn("sync: cannot put certificate %s on token "
				     "%s: %s", it->thumbprint,
				     custody_token_label(tok), e.msg);
		else
			(void)custody_token_remember_checked(tok, cert.key_id,
							     x, &e);
		it->held = 1;
		if (vi->pkg_state == CUSTODY_ENOTFOUND && token_kcv[0] != '\0' &&
		    strcasecmp(token_kcv, store_kcv) == 0 &&
		    custody_token_key_attrs(tok, cert.key_id, &attrs, &e) ==
		    CUSTODY_OK && attrs.extractable == 1)
			*package_it = 1;
		goto out;
	}
	if (!it->repaired &&
	    (r = usable_package(tok, st, store_kcv, token_kcv, &cert, &pkg,
				why, sizeof(why))) != CUSTODY_OK) {
		if (r == CUSTODY_ENOTFOUND)
			refuse(res, it, "the key is not on token %s and %s",
			       custody_token_label(tok), why);
		else
			refuse(res, it, "%s, nothing unwrapped", why);
		goto out;
	}
	r = custody_token_unwrap_private_key(tok, pkg.wrapped, pkg.wrapped_len,
					     cert.label, x, &e);
	if (it->repaired) {	/* what the repair's audit entry says */
		char failed_check[sizeof(it->repair)];

		memcpy(failed_check, it->repair, sizeof(failed_check));
		textf(it->repair, sizeof(it->repair), "destroyed private key %s "
		      "on token %s, %s (its check: %s)", cert.key_id,
		      custody_token_label(tok), r == CUSTODY_OK ?
		      "unwrapped it again from its package" :
		      "could not unwrap it again", failed_check);
	}
	if (r != CUSTODY_OK) {
		refuse(res, it, "package refused, nothing unwrapped: %s", e.msg);
		goto out;
	}
	it->held = 1;
	it->unwrapped = 1;
	snprintf(it->key_id, sizeof(it->key_id), "%s", cert.key_id);
	(void)custody_token_remember_checked(tok, cert.key_id, x, &e);
out:
	X509_free(x);
	custody_package_record_clear(&pkg);
}

/* 1 when this node's report on it says what rep says already: held (as
 * "unwrapped" or "held": the key is there either way), or not held for
 * the same reason. */
static int
report_unchanged(const struct sync_view *v, const custody_report_record *rep)
{
	size_t i;

	for (i = 0; i < v->n_reps; i++)
		if (strcmp(v->reps[i].thumbprint, rep->thumbprint) == 0)
			return v->reps[i].held == rep->held &&
			       (rep->held ||
				strcmp(v->reps[i].detail, rep->detail) == 0);
	return 0;
}

/* The reports, the packages of held keys that had none, last_sync and the
 * audit entry, in one transaction. */
static int
write_sync(custody_token *tok, custody_store *st, const char *node,
	   int64_t when, custody_sync_result *res, const int *package,
	   const struct sync_view *v, custody_err *err)
{
	custody_report_record rep;
	custody_node_record rec;
	size_t i, unwrapped = 0, packaged = 0;
	char detail[160];
	custody_txn tx;
	int r, member;

	memset(&rec, 0, sizeof(rec));
	custody_txn_init(&tx, st, tok, node, err);
	if ((r = custody_txn_begin(&tx)) != CUSTODY_OK)
		goto out;
	/* A member (its node row there) writes only the reports that
	 * changed: its last_sync says when it last looked.  A store without
	 * the node's row tells that by the reports' time alone. */
	r = custody_store_get_node(st, node, &rec, err);
	if (r != CUSTODY_OK && r != CUSTODY_ENOTFOUND)
		goto out;
	member = r == CUSTODY_OK;
	for (i = 0; i < res->n; i++) {
		custody_sync_item *it = &res->items[i];
		custody_cert_record cert;
		custody_err e;

		if (earlier(res, i) != NULL)
			continue;
		if (package[i]) {
			memset(&cert, 0, sizeof(cert));
			if (custody_store_get_cert(st, it->thumbprint, &cert, &e) ==
			    CUSTODY_OK &&
			    custody_cert_record_check(&cert, NULL, &e) ==
			    CUSTODY_OK &&
			    custody_cluster_package_put(tok, st, node,
							it->thumbprint,
							cert.key_id, &e) ==
			    CUSTODY_OK)
				packaged++;
			else
				custody_warn("sync: cannot package %s: %s",
					     it->thumbprint, e.msg);
			custody_cert_record_clear(&cert);
		}
		unwrapped += it->unwrapped != 0;
		if (it->repaired &&
		    (r = custody_txn_audit(&tx, "repair", NULL, NULL, it->thumbprint,
					   NULL, it->repair)) != CUSTODY_OK)
			goto out;
		memset(&rep, 0, sizeof(rep));
		snprintf(rep.node, sizeof(rep.node), "%s", node);
		snprintf(rep.thumbprint, sizeof(rep.thumbprint), "%s",
			 it->thumbprint);
		rep.held = it->held;
		snprintf(rep.detail, sizeof(rep.detail), "%s",
			 it->held ? (it->unwrapped ? "unwrapped" : "held") :
			 it->problem);
		rep.time = when;
		if (member && report_unchanged(v, &rep))
			continue;
		if ((r = custody_store_put_report(st, &rep, err)) != CUSTODY_OK)
			goto out;
	}
	if (member) {
		rec.last_sync = when;
		if ((r = custody_store_put_node(st, &rec, err)) != CUSTODY_OK)
			goto out;
	}
	if (unwrapped > 0 || packaged > 0 || res->refused > 0) {
		snprintf(detail, sizeof(detail), "token %s: %zu key(s) unwrapped, "
			 "%zu packaged, %zu refused", custody_token_label(tok),
			 unwrapped, packaged, (size_t)res->refused);
		if ((r = custody_txn_audit(&tx, "sync", NULL, NULL, NULL, NULL,
					   detail)) != CUSTODY_OK)
			goto out;
	}
	r = custody_txn_commit(&tx);
out:
	custody_txn_end(&tx, r);
	custody_node_record_clear(&rec);
	return r;
}

/* The store could not record the sync: the keys it unwrapped go again,
 * and the next sync makes them anew (a failed sync changes nothing). */
static void
undo_unwraps(custody_token *tok, const custody_sync_result *res)
{
	custody_err e;
	size_t i;

	for (i = 0; i < res->n; i++) {
		const custody_sync_item *it = &res->items[i];

		if (!it->unwrapped || it->repaired || earlier(res, i) != NULL)
			continue;
		if (custody_token_delete(tok, it->key_id, &e) == CUSTODY_OK)
			custody_step("the store did not record this sync: key "
				     "%s unwrapped for %s removed again",
				     it->key_id, it->thumbprint);
		else
			custody_warn("the store did not record this sync, and "
				     "key %s unwrapped for %s cannot be removed "
				     "again: %s", it->key_id, it->thumbprint,
				     e.msg);
	}
}

void
custody_sync_result_clear(custody_sync_result *res)
{
	if (res == NULL)
		return;
	free(res->items);
	memset(res, 0, sizeof(*res));
}

int
custody_cluster_sync(custody_token *tok, custody_store *st, const char *node,
		     int64_t now, custody_sync_result *res, custody_err *err)
{
	char store_kcv[CUSTODY_KCV_HEX + 1], token_kcv[CUSTODY_KCV_HEX + 1];
	struct sync_view view;
	int *package = NULL;
	size_t i;
	int r, attempt, attached = 0;

	memset(&view, 0, sizeof(view));
	if (res == NULL || tok == NULL || st == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot sync: no token, store or result");
	memset(res, 0, sizeof(*res));
	if ((r = cluster_attach_token(tok, st, &attached, err)) != CUSTODY_OK)
		return r;
	if ((r = check_node(node, err)) != CUSTODY_OK ||
	    (r = custody_cluster_kek_state(tok, st, store_kcv, token_kcv, err)) !=
	    CUSTODY_OK)
		goto out;
	if (store_kcv[0] != '\0' && token_kcv[0] != '\0' &&
	    strcasecmp(store_kcv, token_kcv) != 0)
		custody_warn("token %s holds KEK %s, but the cluster's is %s",
			     custody_token_label(tok), token_kcv, store_kcv);
	if ((r = read_items(st, node, now, res, &view, err)) != CUSTODY_OK)
		goto out;
	custody_step("sync of node %s: %zu key(s) of global assignments",
		     node, res->n);
	package = calloc(res->n > 0 ? res->n : 1, sizeof(*package));
	if (package == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL, "cannot sync: out of memory");
		goto out;
	}
	for (i = 0; i < res->n; i++) {
		custody_sync_item *it = &res->items[i];
		const custody_sync_item *prev = earlier(res, i);

		if (prev != NULL) {
			it->held = prev->held;
			snprintf(it->problem, sizeof(it->problem), "%s",
				 prev->problem);
			if (!it->held)
				res->refused++;
			continue;
		}
		sync_item(tok, st, store_kcv, token_kcv, &view, i, res, &package[i]);
		if (it->unwrapped)
			custody_step("%s/global %s %s: unwrapped and verified",
				     it->type, it->slot, it->thumbprint);
	}
	/* The reports: once more on a concurrent change of the node row. */
	for (attempt = 0; attempt < 2; attempt++)
		if ((r = write_sync(tok, st, node, clock_now(), res, package,
				    &view, err)) != CUSTODY_ECONFLICT)
			break;
	if (r != CUSTODY_OK)
		undo_unwraps(tok, res);
out:
	cluster_detach_token(st, attached);
	free(package);
	view_clear(&view);
	if (r != CUSTODY_OK)
		custody_sync_result_clear(res);
	return r;
}

/* ------------------------------------------------------------ seal */

/* custody_cluster_seal, or with dry_run its checks alone (seal --dry-run). */
static int
seal(custody_token *tok, custody_store *st, const char *node, const char *thumbprint,
     int force, int dry_run, custody_err *err)
{
	custody_cert_record cert;
	custody_node_record *nodes = NULL;
	custody_report_record *reps = NULL;
	size_t n_nodes = 0, n_reps = 0, i, j, members = 0;
	char missing[512] = "", who[512] = "", detail[768];
	size_t mlen = 0, wlen = 0;
	custody_txn tx;
	int present = 0, attached, r;

	memset(&cert, 0, sizeof(cert));
	custody_txn_init(&tx, st, tok, node, err);
	if ((r = attach_cluster_token(tok, st, "seal keys of the cluster",
				      &attached, err)) != CUSTODY_OK ||
	    (r = check_node(node, err)) != CUSTODY_OK ||
	    (r = check_thumbprint(thumbprint, err)) != CUSTODY_OK ||
	    (r = custody_store_get_cert(st, thumbprint, &cert, err)) != CUSTODY_OK ||
	    (r = custody_cert_record_check(&cert, NULL, err)) != CUSTODY_OK ||
	    (r = custody_token_has_private_key(tok, cert.key_id, &present, err)) !=
	    CUSTODY_OK)
		goto out;
	if (!present) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "cannot seal %s: its private key (key id %s) "
				    "is not on token %s", thumbprint, cert.key_id,
				    custody_token_label(tok));
		goto out;
	}
	if ((r = custody_store_list_nodes(st, &nodes, &n_nodes, err)) != CUSTODY_OK ||
	    (r = custody_store_list_reports(st, NULL, &reps, &n_reps, err)) !=
	    CUSTODY_OK)
		goto out;
	custody_step("step 1/2: does every member hold %s? (the reports of "
		     "their last sync)", thumbprint);
	for (i = 0; i < n_nodes; i++) {
		int held = 0;

		if (strcmp(nodes[i].state, "joined") != 0) {
			custody_step("  node %s: %s, not a member yet (it can "
				     "unwrap the package after it joins)",
				     nodes[i].name, nodes[i].state);
			continue;
		}
		members++;
		for (j = 0; j < n_reps; j++)
			if (strcmp(reps[j].node, nodes[i].name) == 0 &&
			    strcmp(reps[j].thumbprint, thumbprint) == 0)
				held = reps[j].held;
		custody_step("  node %s: %s", nodes[i].name,
			     held ? "holds it" : "does not report holding it");
		if (held) {
			if (wlen < sizeof(who))
				wlen += (size_t)snprintf(who + wlen, sizeof(who) - wlen,
							 "%s%s", wlen > 0 ? ", " : "",
							 nodes[i].name);
		} else if (mlen < sizeof(missing)) {
			mlen += (size_t)snprintf(missing + mlen,
						 sizeof(missing) - mlen, "%s%s",
						 mlen > 0 ? ", " : "",
						 nodes[i].name);
		}
	}
	if (missing[0] != '\0' && !force) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot seal %s yet: node(s) %s do not report "
				    "holding its key", thumbprint, missing);
		custody_err_hint(err, "run custody sync on them first (or "
				 "--force: they could then only unwrap the "
				 "package already in the store)");
		goto out;
	}
	if (missing[0] != '\0')
		custody_warn("sealing %s with --force: node(s) %s do not report "
			     "holding it", thumbprint, missing);
	if (dry_run) {	/* the checks were the seal's; nothing is written */
		r = CUSTODY_OK;
		goto out;
	}
	custody_step("step 2/2: turning CKA_EXTRACTABLE off for key id %s on "
		     "token %s (irreversible)", cert.key_id,
		     custody_token_label(tok));
	if ((r = custody_txn_begin(&tx)) != CUSTODY_OK)
		goto out;
	snprintf(detail, sizeof(detail), "key id %s on token %s no longer "
		 "extractable; %zu member(s)%s%s%s%s", cert.key_id,
		 custody_token_label(tok), members, who[0] != '\0' ? " hold it: " : "",
		 who, missing[0] != '\0' ? "; forced, missing: " : "", missing);
	if ((r = custody_txn_audit(&tx, "seal", NULL, NULL, thumbprint, NULL,
				   detail)) != CUSTODY_OK ||
	    (r = custody_token_seal(tok, cert.key_id, err)) != CUSTODY_OK)
		goto out;
	if ((r = custody_txn_commit(&tx)) != CUSTODY_OK) {
		custody_warn("the key is sealed on token %s, but the audit entry "
			     "was not written", custody_token_label(tok));
		goto out;
	}
	custody_step("sealed: no token of the cluster keeps an exportable copy "
		     "of %s's key from this one", thumbprint);
	r = CUSTODY_OK;
out:
	custody_txn_end(&tx, r);
	custody_cert_record_clear(&cert);
	custody_node_records_free(nodes, n_nodes);
	free(reps);
	cluster_detach_token(st, attached);
	return r;
}

int
custody_cluster_seal(custody_token *tok, custody_store *st, const char *node,
		     const char *thumbprint, int force, custody_err *err)
{
	return seal(tok, st, node, thumbprint, force, 0, err);
}

int
custody_cluster_seal_check(custody_token *tok, custody_store *st, const char *node,
			   const char *thumbprint, int force, custody_err *err)
{
	return seal(tok, st, node, thumbprint, force, 1, err);
}

/* ------------------------------------------------------------ status */

/* The thumbprints every member must hold at now (global assignments:
 * current, pending, previous), deduplicated. */
static int
expected_keys(custody_store *st, int64_t now, char (**out)[CUSTODY_THUMBPRINT_HEX + 1],
	      size_t *n, custody_err *err)
{
	custody_assignment *all = NULL, res;
	char (*list)[CUSTODY_THUMBPRINT_HEX + 1] = NULL;
	size_t n_all = 0, count = 0, i, k, j;
	int r;

	*out = NULL;
	*n = 0;
	if ((r = custody_store_list_assignments(st, &all, &n_all, err)) !=
	    CUSTODY_OK)
		goto out;
	list = calloc(n_all * 3 + 1, sizeof(*list));
	if (list == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read the cluster status: out of memory");
		goto out;
	}
	for (i = 0; i < n_all; i++) {
		const custody_slot *slots[3];

		if (strcasecmp(all[i].identity, CUSTODY_SCOPE_GLOBAL) != 0)
			continue;
		custody_assign_resolve(&all[i], now, &res);
		slots[0] = &res.current;
		slots[1] = &res.pending;
		slots[2] = &res.previous;
		for (k = 0; k < 3; k++) {
			if (slots[k]->thumbprint[0] == '\0')
				continue;
			for (j = 0; j < count; j++)
				if (strcmp(list[j], slots[k]->thumbprint) == 0)
					break;
			if (j == count)
				memcpy(list[count++], slots[k]->thumbprint,
				       CUSTODY_THUMBPRINT_HEX + 1);
		}
	}
	*out = list;
	*n = count;
	list = NULL;
	r = CUSTODY_OK;
out:
	free(list);
	free(all);
	return r;
}

/* The time of the newest change a member must follow. */
/* The newest change that members must follow, made by another node than
 * `node` (0: none): a node's own change (an import, a request) needs of
 * it only the keys it holds, which its reports tell. */
static int64_t
newest_change(const custody_audit_entry *e, size_t n, const char *node)
{
	static const char *const actions[] = {
		"set", "roll", "roll-effective", "remove", "package", "import",
		"delete", NULL,
	};
	int64_t when = 0;
	size_t i, k;

	for (i = 0; i < n; i++) {
		if (e[i].time <= when || strcmp(e[i].node, node) == 0)
			continue;
		for (k = 0; actions[k] != NULL; k++)
			if (strcmp(e[i].action, actions[k]) == 0)
				when = e[i].time;
	}
	return when;
}

static void
judge(custody_node_status *s, char (*keys)[CUSTODY_THUMBPRINT_HEX + 1],
      size_t n_keys, const custody_report_record *reps, size_t n_reps,
      const custody_audit_entry *log, size_t n_log)
{
	int64_t changed = newest_change(log, n_log, s->node);
	size_t k, j, len = 0;
	int held, reported;

	for (k = 0; k < n_keys; k++) {
		held = reported = 0;
		for (j = 0; j < n_reps; j++)
			if (strcmp(reps[j].node, s->node) == 0 &&
			    strcmp(reps[j].thumbprint, keys[k]) == 0) {
				reported = 1;
				held = reps[j].held;
			}
		if (held)
			continue;
		if (reported)
			s->differs = 1;
		else
			s->stale = 1;
		if (len < sizeof(s->detail))
			len += (size_t)snprintf(s->detail + len,
						sizeof(s->detail) - len,
						"%s%s %.8s", len > 0 ? "; " : "",
						reported ? "does not hold" :
						"has not reported", keys[k]);
	}
	if (changed > 0 && s->last_sync < changed) {
		s->stale = 1;
		if (len == 0)
			snprintf(s->detail, sizeof(s->detail), "%s",
				 s->last_sync == 0 ? "never synced" :
				 "not synced since the last change");
	} else if (len == 0) {
		snprintf(s->detail, sizeof(s->detail), "holds all %zu key(s)",
			 n_keys);
	}
}

int
custody_cluster_status(custody_store *st, int64_t now,
		       custody_node_status **out, size_t *n, int *all_ok,
		       custody_err *err)
{
	custody_node_record *nodes = NULL;
	custody_report_record *reps = NULL;
	char (*keys)[CUSTODY_THUMBPRINT_HEX + 1] = NULL;
	custody_node_status *list = NULL;
	size_t n_nodes = 0, n_reps = 0, n_keys = 0, count = 0, i, j;
	custody_audit_entry *log = NULL;
	size_t n_log = 0;
	int r;

	if (out == NULL || n == NULL || all_ok == NULL || st == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot read the cluster status: nowhere "
				       "to put it");
	*out = NULL;
	*n = 0;
	*all_ok = 1;
	if ((r = custody_store_list_nodes(st, &nodes, &n_nodes, err)) != CUSTODY_OK ||
	    (r = custody_store_list_reports(st, NULL, &reps, &n_reps, err)) !=
	    CUSTODY_OK ||
	    (r = expected_keys(st, now, &keys, &n_keys, err)) != CUSTODY_OK ||
	    (r = custody_store_list_audit(st, 0, &log, &n_log, err)) !=
	    CUSTODY_OK)
		goto out;
	list = calloc(n_nodes + n_reps + 1, sizeof(*list));
	if (list == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read the cluster status: out of memory");
		goto out;
	}
	for (i = 0; i < n_nodes; i++) {
		custody_node_status *s = &list[count++];

		snprintf(s->node, sizeof(s->node), "%s", nodes[i].name);
		snprintf(s->state, sizeof(s->state), "%s", nodes[i].state);
		s->last_sync = nodes[i].last_sync;
		if (strcmp(nodes[i].state, "joined") != 0) {
			snprintf(s->detail, sizeof(s->detail), "%s",
				 strcmp(nodes[i].state, "enrolled") == 0 ?
				 "waiting for node admit" :
				 "waiting for node join");
			continue;
		}
		judge(s, keys, n_keys, reps, n_reps, log, n_log);
	}
	/* Nodes that report without being enrolled (a store used before the
	 * cluster existed): judged as members. */
	for (i = 0; i < n_reps; i++) {
		custody_node_status *s = NULL;

		for (j = 0; j < count; j++)
			if (strcmp(list[j].node, reps[i].node) == 0)
				s = &list[j];
		if (s != NULL) {
			if (strcmp(s->state, "unenrolled") == 0 &&
			    reps[i].time > s->last_sync)
				s->last_sync = reps[i].time;
			continue;
		}
		s = &list[count++];
		snprintf(s->node, sizeof(s->node), "%s", reps[i].node);
		snprintf(s->state, sizeof(s->state), "unenrolled");
		s->last_sync = reps[i].time;
	}
	for (i = 0; i < count; i++) {
		if (strcmp(list[i].state, "unenrolled") == 0)
			judge(&list[i], keys, n_keys, reps, n_reps, log, n_log);
		if (list[i].differs || list[i].stale)
			*all_ok = 0;
	}
	*out = list;
	*n = count;
	list = NULL;
	r = CUSTODY_OK;
out:
	free(list);
	free(keys);
	free(reps);
	custody_audit_entries_free(log, n_log);
	custody_node_records_free(nodes, n_nodes);
	return r;
}
