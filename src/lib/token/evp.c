/*
 * token/evp.c — a private key of the token as an OpenSSL EVP_PKEY, through
 * libp11 (the one file of libcustody that uses libp11).
 *
 * libp11 loads the module file of the open custody_token (found through
 * its dlopen handle), so both share one module instance: libp11's
 * C_Initialize gets CKR_CRYPTOKI_ALREADY_INITIALIZED, and its sessions see
 * the private objects because the process is logged in through tok.
 * libp11 is never logged in by us and never unloaded through
 * PKCS11_CTX_unload, which would C_Finalize the module under tok.
 *
 * What libp11 0.4.12 does on release, and how it is undone here: freeing
 * its slots calls C_CloseAllSessions on the slot, which closes tok's
 * session too and logs the process out; custody_token_evp_close() then
 * opens a fresh session for tok.
 */
#include "config.h"

#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

#include <libp11.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <custody/log.h>
#include <custody/token.h>

#include "token/internal.h"

#define KEY_ID_MAX 64

struct custody_token_evp {
	custody_token *tok;
	PKCS11_CTX *ctx;
	int loaded;		/* PKCS11_CTX_load succeeded */
	PKCS11_SLOT *slots;
	unsigned int n_slots;
	EVP_PKEY *pkey;		/* libp11's: freed before the slots */
};

/* The path the module of tok was loaded from. */
static int
module_path(custody_token *tok, const char **path, custody_err *err)
{
	struct link_map *lm = NULL;

	if (tok->dl == NULL || dlinfo(tok->dl, RTLD_DI_LINKMAP, &lm) != 0 ||
	    lm == NULL || lm->l_name == NULL || lm->l_name[0] == '\0')
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot use a key of token %s through "
				       "libp11: the module's path is unknown",
				       tok->label);
	*path = lm->l_name;
	return CUSTODY_OK;
}

/* tok's slot among libp11's. */
static PKCS11_SLOT *
find_slot(custody_token_evp *evp)
{
	unsigned int i;

	for (i = 0; i < evp->n_slots; i++) {
		if (PKCS11_get_slotid_from_slot(&evp->slots[i]) ==
			    (unsigned long)evp->tok->slot &&
		    evp->slots[i].token != NULL)
			return &evp->slots[i];
	}
	return NULL;
}

static int
find_key(custody_token_evp *evp, PKCS11_SLOT *slot, const unsigned char *id,
	 size_t id_len, const char *key_id, custody_err *err)
{
	PKCS11_KEY *keys = NULL, *key = NULL;
	unsigned int n = 0, i;
	int r = CUSTODY_EFAIL;

	if (PKCS11_enumerate_keys(slot->token, &keys, &n) != 0) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot list the private keys of token "
					"%s through libp11", evp->tok->label);
		return r;
	}
	for (i = 0; i < n && key == NULL; i++) {
		if (keys[i].isPrivate && keys[i].id_len == id_len &&
		    memcmp(keys[i].id, id, id_len) == 0)
			key = &keys[i];
	}
	if (key == NULL) {
		r = token_err_no_private_key(evp->tok, key_id, err);
		return r;
	}
	if ((evp->pkey = PKCS11_get_private_key(key)) == NULL) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot use private key %s of token %s "
					"through libp11", key_id,
					evp->tok->label);
		return r;
	}
	return CUSTODY_OK;
}

int
custody_token_evp_open(custody_token *tok, const char *key_id,
		       custody_token_evp **out, custody_err *err)
{
	custody_token_evp *evp = NULL;
	unsigned char id[KEY_ID_MAX];
	size_t id_len = 0;
	const char *path = NULL;
	PKCS11_SLOT *slot;
	int r = CUSTODY_EFAIL;

	*out = NULL;
	if ((r = token_key_id_login(tok, key_id, "use a private key", id,
				    sizeof(id), &id_len, err)) != CUSTODY_OK ||
	    (r = module_path(tok, &path, err)) != CUSTODY_OK)
		goto out;
	if ((evp = calloc(1, sizeof(*evp))) == NULL ||
	    (evp->ctx = PKCS11_CTX_new()) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot use a key of token %s: out of "
				    "memory", tok->label);
		goto out;
	}
	evp->tok = tok;
	if (PKCS11_CTX_load(evp->ctx, path) != 0) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot load PKCS#11 module %s into "
					"libp11", path);
		goto out;
	}
	evp->loaded = 1;
	if (PKCS11_enumerate_slots(evp->ctx, &evp->slots, &evp->n_slots) != 0) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot list the slots of PKCS#11 "
					"module %s through libp11", path);
		goto out;
	}
	if ((slot = find_slot(evp)) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot find token %s through libp11 (slot "
				    "%lu)", tok->label, (unsigned long)tok->slot);
		goto out;
	}
	if ((r = find_key(evp, slot, id, id_len, key_id, err)) != CUSTODY_OK)
		goto out;
	custody_debug("private key %s of token %s is usable through libp11",
		      key_id, tok->label);
	*out = evp;
	evp = NULL;
	r = CUSTODY_OK;
out:
	custody_token_evp_close(evp);
	return r;
}

EVP_PKEY *
custody_token_evp_pkey(const custody_token_evp *evp)
{
	return evp != NULL ? evp->pkey : NULL;
}

/* After libp11 closed every session of the slot: a fresh one for tok. */
static void
restore_session(custody_token *tok)
{
	CK_SESSION_INFO si;
	CK_RV rv;

	if (!tok->have_session ||
	    tok->f->C_GetSessionInfo(tok->session, &si) == CKR_OK)
		return;
	tok->have_session = 0;
	tok->logged_in = 0;
	rv = tok->f->C_OpenSession(tok->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
				   NULL, NULL, &tok->session);
	if (rv == CKR_OK)
		tok->have_session = 1;
	else
		custody_warn("cannot open a new session on token %s after "
			     "libp11 closed its sessions: %s", tok->label,
			     token_rv_text(rv));
	custody_debug("libp11 closed the sessions of token %s: a new session "
		      "is open, logged out", tok->label);
}

void
custody_token_evp_close(custody_token_evp *evp)
{
	if (evp == NULL)
		return;
	/* libp11's keys hold references to its slots: keys first. */
	EVP_PKEY_free(evp->pkey);
	evp->pkey = NULL;
	if (evp->slots != NULL)
		PKCS11_release_all_slots(evp->ctx, evp->slots, evp->n_slots);
	/* No PKCS11_CTX_unload: it would C_Finalize the module that tok
	 * initialised and still uses.  PKCS11_CTX_free leaves libp11's
	 * dlopen reference of the module in place (the module stays mapped
	 * until the process ends; tok's own dlclose is balanced). */
	if (evp->ctx != NULL)
		PKCS11_CTX_free(evp->ctx);
	ERR_clear_error();
	if (evp->loaded)
		restore_session(evp->tok);
	free(evp);
}
