/*
 * token/intent.c — notes that custody leaves on the token before it
 * creates key objects, so that what an interrupted process was making can
 * be told apart from everything else the token holds.
 *
 * A note is a private token data object: CKO_DATA, CKA_APPLICATION
 * "custody-intent", CKA_LABEL "custody-intent", CKA_VALUE the key id (the
 * CKA_ID the objects get).  Only a logged-in user can create one, so the
 * store (which is not trusted) cannot forge it.  Notes are small and few:
 * each lives from just before a creation until the store records the key
 * or the creation is undone.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <custody/hexfmt.h>
#include <custody/log.h>
#include <custody/token.h>

#include "token/internal.h"

#define INTENT_APP "custody-intent"
#define KEY_ID_MAX CUSTODY_TOKEN_ID_MAX

static CK_OBJECT_CLASS class_data = CKO_DATA;
static CK_BBOOL yes = CK_TRUE;
static CK_BBOOL no = CK_FALSE;

int
token_intent_add_raw(custody_token *tok, const unsigned char *id,
		     size_t id_len, custody_err *err)
{
	CK_ATTRIBUTE t[] = {
		{CKA_CLASS, &class_data, sizeof(class_data)},
		{CKA_TOKEN, &yes, sizeof(yes)},
		{CKA_PRIVATE, &yes, sizeof(yes)},
		{CKA_MODIFIABLE, &no, sizeof(no)},
		{CKA_APPLICATION, (void *)INTENT_APP, sizeof(INTENT_APP) - 1},
		{CKA_LABEL, (void *)INTENT_APP, sizeof(INTENT_APP) - 1},
		{CKA_VALUE, (void *)id, id_len},
	};
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	char hex[2 * KEY_ID_MAX + 1];
	CK_RV rv;

	rv = tok->f->C_CreateObject(tok->session, t, sizeof(t) / sizeof(t[0]),
				    &h);
	if (rv != CKR_OK) {
		custody_hex_encode(id, id_len < KEY_ID_MAX ? id_len : KEY_ID_MAX,
				   hex, 0);
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot leave a note of the objects of key "
				    "id %s on token %s", hex, tok->label);
	}
	return CUSTODY_OK;
}

/* The handles of the notes (of this id; every note when id is NULL). */
static int
find_notes(custody_token *tok, const unsigned char *id, size_t id_len,
	   CK_OBJECT_HANDLE **h, size_t *n, custody_err *err)
{
	CK_ATTRIBUTE t[] = {
		{CKA_CLASS, &class_data, sizeof(class_data)},
		{CKA_APPLICATION, (void *)INTENT_APP, sizeof(INTENT_APP) - 1},
		{CKA_VALUE, (void *)id, id_len},
	};

	return token_find(tok, t, id != NULL ? 3 : 2, h, n, err);
}

int
token_intent_clear_raw(custody_token *tok, const unsigned char *id,
		       size_t id_len, custody_err *err)
{
	CK_OBJECT_HANDLE *h = NULL;
	char hex[2 * KEY_ID_MAX + 1];
	size_t n = 0, i;
	CK_RV rv;
	int r;

	if ((r = find_notes(tok, id, id_len, &h, &n, err)) != CUSTODY_OK)
		goto out;
	if (n > 0)
		token_found_forget_all();
	for (i = 0; i < n; i++) {
		rv = tok->f->C_DestroyObject(tok->session, h[i]);
		if (rv != CKR_OK) {
			custody_hex_encode(id, id_len < KEY_ID_MAX ? id_len :
					   KEY_ID_MAX, hex, 0);
			r = token_err_rv(err, CUSTODY_EFAIL, rv,
					 "cannot remove the note of the objects "
					 "of key id %s from token %s", hex,
					 tok->label);
			goto out;
		}
	}
	r = CUSTODY_OK;
out:
	free(h);
	return r;
}

/* fn (token_intent_add_raw or _clear_raw) on the raw id of key_id, after
 * token_key_id_login(WHAT). */
static int
on_raw_id(custody_token *tok, const char *key_id, const char *what,
	  int (*fn)(custody_token *, const unsigned char *, size_t,
		    custody_err *),
	  custody_err *err)
{
	unsigned char id[KEY_ID_MAX];
	size_t id_len;
	int r;

	if ((r = token_key_id_login(tok, key_id, what, id, sizeof(id),
				    &id_len, err)) != CUSTODY_OK)
		return r;
	return fn(tok, id, id_len, err);
}

int
custody_token_intent_add(custody_token *tok, const char *key_id,
			 custody_err *err)
{
	return on_raw_id(tok, key_id, "leave a note", token_intent_add_raw,
			 err);
}

int
custody_token_intent_clear(custody_token *tok, const char *key_id,
			   custody_err *err)
{
	return on_raw_id(tok, key_id, "remove a note", token_intent_clear_raw,
			 err);
}

void
custody_token_intent_done(custody_token *tok, const char *key_id)
{
	custody_err e;

	if (custody_token_intent_clear(tok, key_id, &e) != CUSTODY_OK)
		custody_warn("%s (custody tidy removes it)", e.msg);
}

/* The key id a note names, in hex ("" for a note that names none). */
static int
note_key_id(custody_token *tok, CK_OBJECT_HANDLE note,
	    char hex[2 * KEY_ID_MAX + 1], custody_err *err)
{
	unsigned char *value = NULL;
	size_t len = 0;
	int r;

	hex[0] = '\0';
	if ((r = token_get_attr(tok, note, CKA_VALUE, &value, &len, err)) !=
	    CUSTODY_OK)
		return r;
	if (len > 0 && len <= KEY_ID_MAX)
		custody_hex_encode(value, len, hex, 0);
	free(value);
	return CUSTODY_OK;
}

int
custody_token_intent_list(custody_token *tok,
			  char (**key_ids)[2 * CUSTODY_TOKEN_ID_MAX + 1],
			  size_t *count, custody_err *err)
{
	CK_OBJECT_HANDLE *h = NULL;
	char (*out)[2 * KEY_ID_MAX + 1] = NULL;
	size_t n = 0, i, j, m = 0;
	int r;

	*key_ids = NULL;
	*count = 0;
	if ((r = token_require_login(tok, "read the notes", err)) !=
	    CUSTODY_OK ||
	    (r = find_notes(tok, NULL, 0, &h, &n, err)) != CUSTODY_OK)
		goto out;
	if ((out = calloc(n > 0 ? n : 1, sizeof(*out))) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL, "cannot read the notes "
				    "on token %s: out of memory", tok->label);
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((r = note_key_id(tok, h[i], out[m], err)) != CUSTODY_OK)
			goto out;
		for (j = 0; j < m && strcmp(out[j], out[m]) != 0; j++)
			;
		if (out[m][0] != '\0' && j == m)
			m++;	/* a new id (two notes of one id: one) */
	}
	*key_ids = out;
	*count = m;
	out = NULL;
out:
	free(out);
	free(h);
	return r;
}
