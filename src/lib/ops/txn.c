/*
 * ops/txn.c — one store transaction with its audit entries, and the undo
 * list of the token objects made for it.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <custody/audit.h>
#include <custody/log.h>
#include <custody/ops.h>

#include "token/wrap.h"

void
custody_txn_init(custody_txn *tx, custody_store *st, custody_token *tok,
		 const char *node, custody_err *err)
{
	memset(tx, 0, sizeof(*tx));
	tx->st = st;
	tx->tok = tok;
	tx->node = node;
	tx->err = err;
}

void
custody_txn_set_token(custody_txn *tx, custody_token *tok)
{
	tx->tok = tok;
}

int
custody_txn_begin(custody_txn *tx)
{
	int r = custody_store_begin(tx->st, tx->err);

	tx->began = r == CUSTODY_OK;
	return r;
}

int
custody_txn_audit(custody_txn *tx, const char *action, const char *type,
		  const char *identity, const char *thumbprint,
		  const char *previous, const char *detail)
{
	custody_audit_entry draft;
	int r;

	memset(&draft, 0, sizeof(draft));
	draft.time = 0;	/* the real clock, never --at */
	snprintf(draft.node, sizeof(draft.node), "%s", tx->node != NULL ? tx->node : "");
	snprintf(draft.action, sizeof(draft.action), "%s", action);
	snprintf(draft.type, sizeof(draft.type), "%s", type != NULL ? type : "");
	snprintf(draft.identity, sizeof(draft.identity), "%s",
		 identity != NULL ? identity : "");
	snprintf(draft.thumbprint, sizeof(draft.thumbprint), "%s",
		 thumbprint != NULL ? thumbprint : "");
	snprintf(draft.previous_thumbprint, sizeof(draft.previous_thumbprint), "%s",
		 previous != NULL ? previous : "");
	draft.detail = (char *)detail;
	r = custody_audit_append(tx->st, &draft, tx->err);
	if (r != CUSTODY_OK)
		custody_err_prefix(tx->err, "cannot append to the audit log");
	return r;
}

int
custody_txn_commit(custody_txn *tx)
{
	int r = custody_store_commit(tx->st, tx->err);

	tx->began = 0;	/* committed or not, the store's transaction is over */
	return r;
}

int
custody_txn_undo_add(custody_txn *tx, enum custody_txn_undo_kind kind,
		     const char *name, const unsigned char *der, size_t der_len,
		     const char *fmt, ...)
{
	custody_txn_undo *u;
	va_list ap;

	if (tx->n_undo == CUSTODY_TXN_UNDO_MAX)
		return custody_err_set(tx->err, CUSTODY_EFAIL,
				       "cannot note more than %d token objects to undo",
				       CUSTODY_TXN_UNDO_MAX);
	u = &tx->undo[tx->n_undo];
	memset(u, 0, sizeof(*u));
	if (der != NULL && der_len > 0) {
		if ((u->der = malloc(der_len)) == NULL)
			return custody_err_set(tx->err, CUSTODY_EFAIL,
					       "cannot note a token object to undo: out of memory");
		memcpy(u->der, der, der_len);
		u->der_len = der_len;
	}
	u->kind = kind;
	snprintf(u->name, sizeof(u->name), "%s", name != NULL ? name : "");
	va_start(ap, fmt);
	vsnprintf(u->warning, sizeof(u->warning), fmt, ap);
	va_end(ap);
	tx->n_undo++;
	return CUSTODY_OK;
}

/* Destroys one object of the undo list: 1 when it is gone. */
static int
undo_one(custody_token *tok, const custody_txn_undo *u)
{
	custody_err e;
	int r = CUSTODY_EFAIL, gone_ok = 0;

	memset(&e, 0, sizeof(e));
	switch (u->kind) {
	case CUSTODY_UNDO_KEY:
		r = custody_token_delete(tok, u->name, &e);
		gone_ok = 1;
		break;
	case CUSTODY_UNDO_CERT:
		r = custody_token_delete_cert(tok, u->name, u->der, u->der_len, &e);
		gone_ok = 1;
		break;
	case CUSTODY_UNDO_KEK:
		r = custody_token_kek_destroy(tok, &e);
		break;
	case CUSTODY_UNDO_AUTHORITY:
		r = custody_token_authority_destroy(tok, &e);
		break;
	case CUSTODY_UNDO_AUTHORITY_PIN:
		r = custody_token_authority_unpin(tok, &e);
		break;
	case CUSTODY_UNDO_TRANSPORT:
		r = custody_token_transport_destroy(tok, u->name, &e);
		break;
	}
	if (r == CUSTODY_OK || (gone_ok && r == CUSTODY_ENOTFOUND))
		return 1;
	custody_warn("%s: %s", u->warning, e.msg);
	return 0;
}

int
custody_txn_end(custody_txn *tx, int status)
{
	size_t i;
	int undone = 1;

	if (tx->began)
		custody_store_rollback(tx->st);
	tx->began = 0;
	for (i = 0; i < tx->n_undo; i++) {
		if (status != CUSTODY_OK && !undo_one(tx->tok, &tx->undo[i]))
			undone = 0;
		free(tx->undo[i].der);
		tx->undo[i].der = NULL;
	}
	tx->n_undo = 0;
	return undone;
}

int
custody_ops_store(custody_ops_env *env, custody_err *err)
{
	if (env->store != NULL || env->open_store == NULL)
		return CUSTODY_OK;
	return env->open_store(env->ctx, &env->store, err);
}

int
custody_ops_token(custody_ops_env *env, custody_err *err)
{
	if (env->token != NULL || env->open_token == NULL)
		return CUSTODY_OK;
	return env->open_token(env->ctx, &env->token, err);
}
