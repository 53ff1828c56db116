/*
 * ops/import.c — a certificate with its key (or its key's package) onto
 * the token under one key id, its facts into the store, optionally into an
 * assignment: policy → token → store transaction → audit → package, and
 * the token's part undone when the store refuses the rest.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include <custody/hexfmt.h>
#include <custody/log.h>
#include <custody/ops.h>
#include <custody/timefmt.h>

/* One import as it goes. */
struct import {
	custody_ops_env *env;
	const custody_import_request *req;
	custody_import_result *res;
	custody_err *err;
	custody_change_request assign;	/* req->assign, replicable settled */
	char label[256];		/* "" or the label of the objects   */
	char store_kcv[CUSTODY_KCV_HEX + 1];
	int package;			/* its package goes to the store    */
	custody_token_import_result made;
};

void
custody_import_result_clear(custody_import_result *res)
{
	if (res == NULL)
		return;
	custody_cert_record_clear(&res->rec);
	memset(res, 0, sizeof(*res));
}

/* The subject CN, the default label. */
static void
subject_cn(X509 *x, char *buf, size_t size)
{
	buf[0] = '\0';
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
				      buf, (int)size) < 0)
		buf[0] = '\0';
}

/* What the token must do with the key of cert: sign with it. */
static int
require_key(struct import *im, X509 *cert)
{
	EVP_PKEY *pub = X509_get0_pubkey(cert);

	if (pub == NULL)
		return CUSTODY_OK;	/* refused later, in its own words */
	return custody_token_require_key(im->env->token, EVP_PKEY_get_base_id(pub),
					 EVP_PKEY_get_bits(pub), "import", im->err);
}

/* A replicable key (or a package under the cluster's KEK) goes to the
 * store as a package, which global in a cluster of several nodes needs. */
static int
read_cluster(struct import *im)
{
	char token_kcv[CUSTODY_KCV_HEX + 1] = "";
	const custody_package *pkg = im->req->package;
	int r;

	im->store_kcv[0] = '\0';
	if (!im->req->replicable && pkg == NULL)
		return CUSTODY_OK;
	if ((r = custody_ops_store(im->env, im->err)) != CUSTODY_OK ||
	    (r = custody_cluster_kek_state(NULL, im->env->store, im->store_kcv, token_kcv,
					   im->err)) != CUSTODY_OK)
		return r;
	if (pkg != NULL)
		im->package = im->store_kcv[0] != '\0' && strcmp(im->store_kcv, pkg->kcv) == 0;
	else
		im->package = im->store_kcv[0] != '\0';
	return CUSTODY_OK;
}

/* The package of a replicable key can be made here only when this token
 * holds the cluster KEK.  When it cannot, an assignment at global of a
 * cluster of several nodes is refused; anything else goes on, unpackaged. */
static int
check_packaging(struct import *im)
{
	char unused[CUSTODY_KCV_HEX + 1], token_kcv[CUSTODY_KCV_HEX + 1];
	custody_token *tok = im->env->token;
	int r;

	if (!im->package)
		return CUSTODY_OK;
	if ((r = custody_cluster_kek_state(tok, NULL, unused, token_kcv, im->err)) != CUSTODY_OK)
		return r;
	if (strcmp(token_kcv, im->store_kcv) == 0) {
		custody_step("the key is replicable: its package (wrapped under the cluster "
			     "KEK %s) goes to the store with it", im->store_kcv);
		return CUSTODY_OK;
	}
	im->package = 0;
	if (im->req->assign != NULL &&
	    (r = custody_cluster_check_global(im->env->store, im->assign.identity,
					      im->res->rec.thumbprint, 0, im->err)) !=
	    CUSTODY_OK) {
		custody_err_hint(im->err, "token %s %s the cluster KEK (%s): join the "
				 "cluster first (custody node enroll / admit / join)",
				 custody_token_label(tok),
				 token_kcv[0] != '\0' ? "holds another KEK than" : "does not hold",
				 im->store_kcv);
		return r;
	}
	custody_warn("the key is replicable but not packaged: token %s does not hold the "
		     "cluster KEK (%s); custody sync packages it once this node has joined",
		     custody_token_label(tok), im->store_kcv);
	return CUSTODY_OK;
}

/* The token is fit for what comes: it can sign with the key, it can keep
 * a replicable one, and it holds the KEK the package is made under. */
static int
check_token(struct import *im)
{
	const custody_import_request *req = im->req;
	int r;

	if ((r = custody_ops_token(im->env, im->err)) != CUSTODY_OK ||
	    ((req->bundle->key != NULL || req->package != NULL) &&
	     (r = require_key(im, req->bundle->cert)) != CUSTODY_OK) ||
	    (req->replicable &&
	     (r = custody_token_require_cluster(im->env->token, "import replicable keys",
						im->err)) != CUSTODY_OK))
		return r;
	if (req->replicable && !im->package)
		custody_step("the store records no cluster KEK: the key is replicable "
			     "but not packaged; custody sync packages it on a member later");
	if (req->replicable && (r = check_packaging(im)) != CUSTODY_OK)
		return r;
	return CUSTODY_OK;
}

/* --package: the key is unwrapped from it, unless the token has it. */
static int
write_package(struct import *im)
{
	const custody_package *pkg = im->req->package;
	const custody_cert_record *rec = &im->res->rec;
	custody_token *tok = im->env->token;
	const char *label = im->label[0] != '\0' ? im->label : NULL;
	int present = 0, r;

	if ((r = custody_token_has_private_key(tok, pkg->key_id, &present, im->err)) !=
	    CUSTODY_OK)
		return r;
	if (present) {
		custody_step("the key of %s is already on token %s: nothing is unwrapped",
			     rec->thumbprint, custody_token_label(tok));
		return custody_token_import(tok, NULL, im->req->bundle->cert, NULL, label, 0,
					    &im->made, im->err);
	}
	custody_step("importing the package of %s (%s, key id %s, KEK %s) onto token %s",
		     rec->subject, rec->key_algorithm, pkg->key_id, pkg->kcv,
		     custody_token_label(tok));
	if ((r = custody_cluster_unwrap_package(tok, pkg, label, im->err)) != CUSTODY_OK)
		return r;
	im->made.created_key = im->made.created_cert = 1;
	snprintf(im->made.key_id, sizeof(im->made.key_id), "%s", pkg->key_id);
	return CUSTODY_OK;
}

/* "private key, certificate, CA certificates": what the token made. */
static void
made_text(const custody_token_import_result *made, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s%s", made->created_key ? "private key, " : "",
		 made->created_cert ? "certificate" : "",
		 made->created_chain > 0 ? ", CA certificates" : "");
}

/* The token's part: the key and certificate (and CA certificates), or
 * the key from its package; then the record names them. */
static int
write_token(struct import *im)
{
	const custody_bundle *b = im->req->bundle;
	custody_cert_record *rec = &im->res->rec;
	custody_token *tok = im->env->token;
	char made[64];
	int r;

	if (im->req->package != NULL) {
		r = write_package(im);
	} else {
		custody_step("importing %s (%s) onto token %s%s", rec->subject,
			     rec->key_algorithm, custody_token_label(tok),
			     b->key == NULL ? ", certificate only" : "");
		r = custody_token_import(tok, b->key, b->cert, b->chain,
					 im->label[0] != '\0' ? im->label : NULL,
					 im->req->replicable, &im->made, im->err);
		/* A certificate alone whose key the token lacks: the key is
		 * most often in a file of its own beside it. */
		if (r == CUSTODY_EFAIL && b->key == NULL &&
		    strncmp(im->err->msg, "no private key with key id", 26) == 0)
			custody_err_hint(im->err, "give its private key with --key FILE "
					 "(PEM or DER), or import a PKCS#12 or a PEM "
					 "file that holds both");
	}
	if (r != CUSTODY_OK)
		return r;
	made_text(&im->made, made, sizeof(made));
	if (!im->made.created_key && !im->made.created_cert)
		custody_step("already on the token (key id %s): nothing created",
			     im->made.key_id);
	else
		custody_step("created on the token: %s (key id %s)", made, im->made.key_id);
	free(rec->label);
	rec->label = im->label[0] != '\0' ? strdup(im->label) : NULL;
	rec->key_uri = custody_token_key_uri(tok, im->made.key_id, rec->label);
	return CUSTODY_OK;
}

/* A CA certificate of the chain goes on the undo list when this import
 * created it. */
static int
undo_ca_cert(struct import *im, custody_txn *tx, X509 *x)
{
	const custody_token_import_result *made = &im->made;
	unsigned char id[20], *der = NULL;
	char hex[CUSTODY_KEY_ID_HEX + 1];
	custody_err ignored;
	int i, len, r;

	if (custody_cert_key_id(x, id, &ignored) != CUSTODY_OK)
		return CUSTODY_OK;
	custody_hex_encode(id, sizeof(id), hex, 0);
	for (i = 0; i < made->created_chain && i < CUSTODY_TOKEN_CHAIN_MAX; i++)
		if (strcmp(made->chain_key_ids[i], hex) == 0)
			break;
	if (i == made->created_chain || i == CUSTODY_TOKEN_CHAIN_MAX ||
	    (len = i2d_X509(x, &der)) <= 0)
		return CUSTODY_OK;
	r = custody_txn_undo_add(tx, CUSTODY_UNDO_CERT, hex, der, (size_t)len,
				 "could not remove CA certificate %s again", hex);
	OPENSSL_free(der);
	return r;
}

/* What this import created on the token goes again if the store refuses
 * the rest: only objects that did not exist before. */
static int
note_undo(struct import *im, custody_txn *tx)
{
	const custody_token_import_result *made = &im->made;
	const custody_cert_record *rec = &im->res->rec;
	STACK_OF(X509) *chain = im->req->bundle->chain;
	int i, r = CUSTODY_OK;

	/* The key with its certificate, or the certificate alone (a new
	 * certificate for a key the token held already). */
	if (made->created_key && made->created_cert)
		r = custody_txn_undo_add(tx, CUSTODY_UNDO_KEY, made->key_id, NULL, 0,
					 "could not remove the objects of key id %s again",
					 made->key_id);
	else if (made->created_cert)
		r = custody_txn_undo_add(tx, CUSTODY_UNDO_CERT, made->key_id, rec->der,
					 rec->der_len,
					 "could not remove the objects of key id %s again",
					 made->key_id);
	/* The CA certificates it created, each under its own key id. */
	for (i = 0; r == CUSTODY_OK && chain != NULL && i < sk_X509_num(chain); i++)
		r = undo_ca_cert(im, tx, sk_X509_value(chain, i));
	return r;
}

/* The import's audit entry.  A certificate new to the store is logged
 * even when the token had it already: an import killed after the token
 * write and before the store's commit left it there, and the log must
 * still say it came. */
static int
audit_import(struct import *im, custody_txn *tx, int was_known)
{
	const custody_token_import_result *made = &im->made;
	const char *label = custody_token_label(im->env->token);
	char detail[160], what[64];

	if (!made->created_key && !made->created_cert && was_known)
		return CUSTODY_OK;
	made_text(made, what, sizeof(what));
	if (im->req->package != NULL && made->created_key)
		snprintf(detail, sizeof(detail), "key id %s on token %s: unwrapped from a "
			 "package under KEK %s", made->key_id, label, im->req->package->kcv);
	else if (made->created_key || made->created_cert)
		snprintf(detail, sizeof(detail), "key id %s on token %s: created %s",
			 made->key_id, label, what);
	else
		snprintf(detail, sizeof(detail), "key id %s on token %s: already there, "
			 "new to the store", made->key_id, label);
	return custody_txn_audit(tx, "import", NULL, NULL, im->res->rec.thumbprint, NULL,
				 detail);
}

/* The package as the file brought it, into the store. */
static int
put_file_package(struct import *im, custody_txn *tx)
{
	const custody_package *pkg = im->req->package;
	custody_package_record pr;

	memset(&pr, 0, sizeof(pr));
	snprintf(pr.thumbprint, sizeof(pr.thumbprint), "%s", pkg->thumbprint);
	snprintf(pr.key_id, sizeof(pr.key_id), "%s", pkg->key_id);
	snprintf(pr.kcv, sizeof(pr.kcv), "%s", pkg->kcv);
	snprintf(pr.node, sizeof(pr.node), "%s", im->env->node);
	pr.wrapped = pkg->wrapped;
	pr.wrapped_len = pkg->wrapped_len;
	pr.created_at = (int64_t)time(NULL);
	return custody_store_put_package(tx->st, &pr, tx->err);
}

/* The store's part, inside the transaction: the certificate, its audit
 * entry, the package, the change, and this node's report that it holds
 * the key. */
static int
write_store(struct import *im, custody_txn *tx)
{
	custody_ops_env *env = im->env;
	custody_cert_record *rec = &im->res->rec, known;
	int was_known = 0, from_file = im->req->package != NULL, r;

	memset(&known, 0, sizeof(known));
	if (custody_store_get_cert(env->store, rec->thumbprint, &known, NULL) == CUSTODY_OK)
		was_known = 1;
	custody_cert_record_clear(&known);
	if ((r = custody_store_put_cert(env->store, rec, im->err)) != CUSTODY_OK ||
	    (r = audit_import(im, tx, was_known)) != CUSTODY_OK)
		return r;
	if (im->package && !from_file &&
	    (r = custody_cluster_package_put(env->token, env->store, env->node,
					     rec->thumbprint, im->made.key_id, im->err)) !=
	    CUSTODY_OK)
		return r;
	if (im->package && from_file && (r = put_file_package(im, tx)) != CUSTODY_OK)
		return r;
	if (im->req->assign != NULL &&
	    (r = custody_change_write(tx, &im->res->assign)) != CUSTODY_OK)
		return r;
	/* In a cluster, this node now holds the key: it says so at once. */
	return custody_cluster_report_held(env->store, env->node, rec->thumbprint,
					   from_file && im->made.created_key ? "unwrapped" :
					   "imported", im->err);
}

/* A certificate outside its validity, or near its end, imports (a
 * renewal is often staged early, and an expired one may still be needed
 * to verify) but is said: set refuses it later. */
static void
warn_validity(const custody_cert_record *rec, const custody_ops_env *env)
{
	char when[CUSTODY_TIME_TEXT];
	int64_t left = rec->not_after - env->now;
	int warn_days = env->policy != NULL ? env->policy->warn_days : 30;

	if (left < 0)
		custody_warn("certificate %s expired on %s: it cannot be assigned",
			     rec->thumbprint, custody_time_format(rec->not_after, when));
	else if (rec->not_before > env->now)
		custody_warn("certificate %s is not valid before %s",
			     rec->thumbprint, custody_time_format(rec->not_before, when));
	else if (left < (int64_t)warn_days * 86400)
		custody_warn("certificate %s expires on %s, in %lld day(s) (policy "
			     "warn-days %d)", rec->thumbprint,
			     custody_time_format(rec->not_after, when),
			     (long long)(left / 86400), warn_days);
}

/* Checks and plans, before the token is written. */
static int
prepare(struct import *im)
{
	const custody_import_request *req = im->req;
	custody_import_result *res = im->res;
	int r;

	if ((r = custody_policy_check_cert(im->env->policy, req->bundle->cert, im->err)) !=
	    CUSTODY_OK ||
	    (r = custody_cert_record_from_x509(req->bundle->cert, &res->rec, im->err)) !=
	    CUSTODY_OK)
		return r;
	if (req->label != NULL)
		snprintf(im->label, sizeof(im->label), "%s", req->label);
	else
		subject_cn(req->bundle->cert, im->label, sizeof(im->label));
	if ((r = read_cluster(im)) != CUSTODY_OK)
		return r;
	/* The assignment, if asked for, can be made. */
	if (req->assign != NULL) {
		im->assign = *req->assign;
		im->assign.replicable = im->package;
		if ((r = custody_change_plan(im->env, &im->assign, &res->rec, &res->assign,
					     im->err)) != CUSTODY_OK)
			return r;
	}
	if ((r = custody_ops_store(im->env, im->err)) != CUSTODY_OK ||
	    (r = check_token(im)) != CUSTODY_OK)
		return r;
	/* Said once the import is going ahead: a refusal stays one line. */
	warn_validity(&res->rec, im->env);
	return CUSTODY_OK;
}

int
custody_import(custody_ops_env *env, const custody_import_request *req,
	       custody_import_result *res, custody_err *err)
{
	struct import im;
	custody_txn tx;
	int r, noted = 0;

	memset(res, 0, sizeof(*res));
	memset(&im, 0, sizeof(im));
	im.env = env;
	im.req = req;
	im.res = res;
	im.err = err;
	custody_txn_init(&tx, NULL, NULL, env->node, err);
	if ((r = prepare(&im)) != CUSTODY_OK || req->dry_run)
		goto out;	/* a dry run stops at the plan */
	/* A guarded assignment (the key that signs tokens, at once) is
	 * confirmed before anything is written. */
	if (req->assign != NULL && env->confirm != NULL &&
	    (r = env->confirm(env->ctx, &res->assign, err)) != CUSTODY_OK)
		goto out;
	/* A note of intent first: tidy's proof that what an interrupted
	 * import leaves is custody's; removed at the end. */
	if ((r = custody_token_intent_add(env->token, res->rec.key_id, err)) != CUSTODY_OK)
		goto out;
	noted = 1;
	if ((r = write_token(&im)) != CUSTODY_OK)
		goto out;
	/* The store, in one transaction; the token's part goes again when
	 * it does not commit. */
	custody_txn_init(&tx, env->store, env->token, env->node, err);
	if ((r = note_undo(&im, &tx)) != CUSTODY_OK ||
	    (r = custody_txn_begin(&tx)) != CUSTODY_OK ||
	    (r = write_store(&im, &tx)) != CUSTODY_OK ||
	    (r = custody_txn_commit(&tx)) != CUSTODY_OK)
		goto out;
out:
	if (!custody_txn_end(&tx, r))
		noted = 0;	/* the note stays, for custody tidy */
	if (noted)	/* done, or undone */
		custody_token_intent_done(env->token, res->rec.key_id);
	return r;
}
