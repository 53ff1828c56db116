/*
 * token/token.c — the PKCS#11 token: loading the module, finding the token,
 * logging in, listing and deleting objects, initialising a token.
 * Importing lives in token/import.c, the cross-process lock in
 * token/lock.c.
 */
#include "config.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <unistd.h>

#include <custody/hexfmt.h>
#include <custody/log.h>
#include <custody/token.h>

#include "token/internal.h"

#define KEY_ID_MAX 64		/* bytes of a CKA_ID we accept as hex    */

/*
 * Modules loaded by this process.  A module is initialised once for all
 * handles of the process and finalised when the last one closes, and only
 * when it was this code that initialised it (CKR_CRYPTOKI_ALREADY_INITIALIZED
 * means somebody else in the process — libp11 — did, and will finalise).
 */
struct token_module {
	CK_FUNCTION_LIST *f;
	custody_token *handles;	/* open handles using it (mod_next list) */
	int finalize;
	pid_t pid;
	struct token_module *next;
};

static pthread_mutex_t modules_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct token_module *modules;

/* What the caller asked for: any of these may be NULL (= any). */
struct token_match {
	char *token;
	char *serial;
	char *manufacturer;
	char *model;
};

/* ------------------------------------------------------------ errors */

const char *
token_rv_name(CK_RV rv)
{
	switch (rv) {
#define RV(x) case x: return #x
	RV(CKR_OK);
	RV(CKR_CANCEL);
	RV(CKR_HOST_MEMORY);
	RV(CKR_SLOT_ID_INVALID);
	RV(CKR_GENERAL_ERROR);
	RV(CKR_FUNCTION_FAILED);
	RV(CKR_ARGUMENTS_BAD);
	RV(CKR_CANT_LOCK);
	RV(CKR_ATTRIBUTE_READ_ONLY);
	RV(CKR_ATTRIBUTE_SENSITIVE);
	RV(CKR_ATTRIBUTE_TYPE_INVALID);
	RV(CKR_ATTRIBUTE_VALUE_INVALID);
	RV(CKR_DATA_INVALID);
	RV(CKR_DATA_LEN_RANGE);
	RV(CKR_DEVICE_ERROR);
	RV(CKR_DEVICE_MEMORY);
	RV(CKR_DEVICE_REMOVED);
	RV(CKR_FUNCTION_NOT_SUPPORTED);
	RV(CKR_KEY_HANDLE_INVALID);
	RV(CKR_KEY_TYPE_INCONSISTENT);
	RV(CKR_KEY_NOT_WRAPPABLE);
	RV(CKR_KEY_UNEXTRACTABLE);
	RV(CKR_MECHANISM_INVALID);
	RV(CKR_MECHANISM_PARAM_INVALID);
	RV(CKR_OBJECT_HANDLE_INVALID);
	RV(CKR_OPERATION_ACTIVE);
	RV(CKR_OPERATION_NOT_INITIALIZED);
	RV(CKR_PIN_INCORRECT);
	RV(CKR_PIN_INVALID);
	RV(CKR_PIN_LEN_RANGE);
	RV(CKR_PIN_EXPIRED);
	RV(CKR_PIN_LOCKED);
	RV(CKR_SESSION_CLOSED);
	RV(CKR_SESSION_COUNT);
	RV(CKR_SESSION_HANDLE_INVALID);
	RV(CKR_SESSION_READ_ONLY);
	RV(CKR_SESSION_EXISTS);
	RV(CKR_SESSION_READ_ONLY_EXISTS);
	RV(CKR_SESSION_READ_WRITE_SO_EXISTS);
	RV(CKR_SIGNATURE_INVALID);
	RV(CKR_TEMPLATE_INCOMPLETE);
	RV(CKR_TEMPLATE_INCONSISTENT);
	RV(CKR_TOKEN_NOT_PRESENT);
	RV(CKR_TOKEN_NOT_RECOGNIZED);
	RV(CKR_TOKEN_WRITE_PROTECTED);
	RV(CKR_USER_ALREADY_LOGGED_IN);
	RV(CKR_USER_NOT_LOGGED_IN);
	RV(CKR_USER_PIN_NOT_INITIALIZED);
	RV(CKR_USER_TYPE_INVALID);
	RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
	RV(CKR_USER_TOO_MANY_TYPES);
	RV(CKR_WRAPPED_KEY_INVALID);
	RV(CKR_WRAPPING_KEY_HANDLE_INVALID);
	RV(CKR_DOMAIN_PARAMS_INVALID);
	RV(CKR_CURVE_NOT_SUPPORTED);
	RV(CKR_BUFFER_TOO_SMALL);
	RV(CKR_CRYPTOKI_NOT_INITIALIZED);
	RV(CKR_CRYPTOKI_ALREADY_INITIALIZED);
#undef RV
	default:
		return NULL;
	}
}

const char *
token_rv_text(CK_RV rv)
{
	return token_rv_name(rv) != NULL ? token_rv_name(rv) : "error";
}

/* Plain words for the return values an operator must act on at the
 * token itself, after the name; "" for the others. */
static const char *
rv_plain_words(CK_RV rv)
{
	switch (rv) {
	case CKR_DEVICE_MEMORY:
		return " (the token's memory is full)";
	case CKR_TOKEN_WRITE_PROTECTED:
		return " (the token is write-protected: read-only)";
	default:
		return "";
	}
}

int
token_err_rv(custody_err *err, int code, CK_RV rv, const char *fmt, ...)
{
	const char *name = token_rv_name(rv);
	va_list ap;
	size_t len;

	if (err == NULL)
		return code;
	err->code = code;
	err->hint[0] = '\0';
	err->ckr = rv;
	va_start(ap, fmt);
	if (vsnprintf(err->msg, sizeof(err->msg), fmt, ap) < 0)
		err->msg[0] = '\0';
	va_end(ap);
	len = strlen(err->msg);
	if (len < sizeof(err->msg)) {
		if (name != NULL)
			snprintf(err->msg + len, sizeof(err->msg) - len, ": %s%s",
				 name, rv_plain_words(rv));
		else
			snprintf(err->msg + len, sizeof(err->msg) - len,
				 ": CKR 0x%08lx", (unsigned long)rv);
	}
	return code;
}

/* ----------------------------------------------------------- helpers */

void
token_trim_field(const unsigned char *field, size_t len, char *out)
{
	while (len > 0 && (field[len - 1] == ' ' || field[len - 1] == '\0'))
		len--;
	memcpy(out, field, len);
	out[len] = '\0';
}

int
token_find(custody_token *tok, CK_ATTRIBUTE *tmpl, CK_ULONG n,
	   CK_OBJECT_HANDLE **out, size_t *count, custody_err *err)
{
	CK_OBJECT_HANDLE batch[64], *all = NULL, *tmp;
	CK_ULONG got = 0;
	size_t total = 0;
	CK_RV rv;
	int active = 0, r = CUSTODY_EFAIL;

	*out = NULL;
	*count = 0;
	rv = tok->f->C_FindObjectsInit(tok->session, tmpl, n);
	if (rv == CKR_OPERATION_ACTIVE) {
		/* A search whose C_FindObjectsFinal failed is still open in
		 * the session: end it, then search once more. */
		tok->f->C_FindObjectsFinal(tok->session);
		rv = tok->f->C_FindObjectsInit(tok->session, tmpl, n);
	}
	if (rv != CKR_OK) {
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot search token %s", tok->label);
		goto out;
	}
	active = 1;
	do {
		rv = tok->f->C_FindObjects(tok->session, batch, 64, &got);
		if (rv != CKR_OK) {
			r = token_err_rv(err, CUSTODY_EFAIL, rv,
					 "cannot search token %s", tok->label);
			goto out;
		}
		if (got == 0)
			break;
		tmp = realloc(all, (total + got) * sizeof(*all));
		if (tmp == NULL) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot search token %s: out of "
					    "memory", tok->label);
			goto out;
		}
		all = tmp;
		memcpy(all + total, batch, got * sizeof(*all));
		total += got;
	} while (got == 64);
	*out = all;
	all = NULL;
	*count = total;
	r = CUSTODY_OK;
out:
	if (active)
		tok->f->C_FindObjectsFinal(tok->session);
	free(all);
	return r;
}

/* ------------------------------------------------ what was found */

static _Atomic unsigned long found_epoch = 1;

void
token_found_forget_all(void)
{
	found_epoch++;
}

void
token_found_forget(custody_token *tok)
{
	tok->n_found = 0;
	tok->next_found = 0;
	tok->found_epoch = found_epoch;
	/* The KCV of the KEK kept across let-goes stays with it: the KEK
	 * is checked again by its handle before it is used (find_kek). */
	if (!tok->keep_checks || tok->kcv_of != tok->kept_kek) {
		tok->kcv_of = CK_INVALID_HANDLE;
		tok->kek_kcv[0] = '\0';
	}
}

int
token_found_lookup(custody_token *tok, CK_OBJECT_CLASS cls,
		   const unsigned char *id, size_t id_len, CK_OBJECT_HANDLE *h)
{
	size_t i;

	if (tok->found_epoch != found_epoch)
		token_found_forget(tok);
	for (i = 0; i < tok->n_found; i++) {
		const struct token_found *f = &tok->found[i];

		if (f->cls == cls && f->id_len == id_len &&
		    memcmp(f->id, id, id_len) == 0) {
			*h = f->h;
			return 1;
		}
	}
	return 0;
}

void
token_found_remember(custody_token *tok, CK_OBJECT_CLASS cls,
	       const unsigned char *id, size_t id_len, CK_OBJECT_HANDLE h)
{
	struct token_found *f;

	if (id_len > TOKEN_FOUND_ID_MAX || h == CK_INVALID_HANDLE)
		return;
	if (tok->found_epoch != found_epoch)
		token_found_forget(tok);
	f = &tok->found[token_ring_slot(&tok->next_found, &tok->n_found,
					TOKEN_FOUND_MAX)];
	f->cls = cls;
	memcpy(f->id, id, id_len);
	f->id_len = id_len;
	f->h = h;
}

int
token_find_first(custody_token *tok, CK_ATTRIBUTE *tmpl, CK_ULONG n,
		 CK_OBJECT_HANDLE *found, custody_err *err)
{
	CK_OBJECT_HANDLE *h = NULL;
	size_t count = 0;
	int r;

	*found = CK_INVALID_HANDLE;
	r = token_find(tok, tmpl, n, &h, &count, err);
	if (r == CUSTODY_OK && count > 0)
		*found = h[0];
	free(h);
	return r;
}

int
token_find_by_id(custody_token *tok, CK_OBJECT_CLASS cls,
		 const unsigned char *id, size_t id_len,
		 CK_OBJECT_HANDLE *found, custody_err *err)
{
	CK_ATTRIBUTE t[] = {
		{CKA_CLASS, &cls, sizeof(cls)},
		{CKA_ID, (void *)id, id_len},
	};
	int r;

	if (token_found_lookup(tok, cls, id, id_len, found))
		return CUSTODY_OK;
	if ((r = token_find_first(tok, t, NELEM(t), found, err)) == CUSTODY_OK)
		token_found_remember(tok, cls, id, id_len, *found);
	return r;
}

int
token_find_key_pair(custody_token *tok, const unsigned char *id, size_t id_len,
		    CK_OBJECT_HANDLE *priv, CK_OBJECT_HANDLE *pub,
		    custody_err *err)
{
	CK_ATTRIBUTE t[] = {{CKA_ID, (void *)id, id_len}};
	CK_OBJECT_HANDLE *h = NULL;
	CK_OBJECT_CLASS cls;
	CK_ATTRIBUTE a = {CKA_CLASS, &cls, sizeof(cls)};
	size_t n = 0, i;
	int r;

	*priv = *pub = CK_INVALID_HANDLE;
	if ((r = token_find(tok, t, NELEM(t), &h, &n, err)) != CUSTODY_OK)
		return r;
	for (i = 0; i < n; i++) {
		a.ulValueLen = sizeof(cls);
		if (tok->f->C_GetAttributeValue(tok->session, h[i], &a, 1) !=
		    CKR_OK) {
			r = custody_err_set(err, CUSTODY_EFAIL, "cannot read the "
					    "class of an object on token %s",
					    tok->label);
			break;
		}
		if (cls == CKO_PRIVATE_KEY && *priv == CK_INVALID_HANDLE)
			*priv = h[i];
		else if (cls == CKO_PUBLIC_KEY && *pub == CK_INVALID_HANDLE)
			*pub = h[i];
	}
	if (r == CUSTODY_OK) {
		token_found_remember(tok, CKO_PRIVATE_KEY, id, id_len, *priv);
		token_found_remember(tok, CKO_PUBLIC_KEY, id, id_len, *pub);
	} else {
		*priv = *pub = CK_INVALID_HANDLE;
	}
	free(h);
	return r;
}

int
token_get_attr(custody_token *tok, CK_OBJECT_HANDLE obj,
	       CK_ATTRIBUTE_TYPE type, unsigned char **out, size_t *len,
	       custody_err *err)
{
	CK_ATTRIBUTE a = {type, NULL, 0};
	unsigned char *buf = NULL;
	CK_RV rv;
	int r = CUSTODY_EFAIL;

	*out = NULL;
	*len = 0;
	rv = tok->f->C_GetAttributeValue(tok->session, obj, &a, 1);
	if (rv != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION) {
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot read attribute 0x%lx of an object on "
				 "token %s", (unsigned long)type, tok->label);
		goto out;
	}
	if ((buf = malloc(a.ulValueLen + 1)) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read an object on token %s: out of "
				    "memory", tok->label);
		goto out;
	}
	a.pValue = buf;
	rv = tok->f->C_GetAttributeValue(tok->session, obj, &a, 1);
	if (rv != CKR_OK) {
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot read attribute 0x%lx of an object on "
				 "token %s", (unsigned long)type, tok->label);
		goto out;
	}
	buf[a.ulValueLen] = '\0';
	*out = buf;
	buf = NULL;
	*len = a.ulValueLen;
	r = CUSTODY_OK;
out:
	free(buf);
	return r;
}

int
token_get_bool(custody_token *tok, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
	       int *out, custody_err *err)
{
	CK_BBOOL b = CK_FALSE;
	CK_ATTRIBUTE a = {type, &b, sizeof(b)};
	CK_RV rv;

	rv = tok->f->C_GetAttributeValue(tok->session, h, &a, 1);
	if (rv != CKR_OK)
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot read attribute 0x%lx of an object "
				    "on token %s", (unsigned long)type,
				    tok->label);
	*out = b == CK_TRUE;
	return CUSTODY_OK;
}

void
token_destroy_temporary(custody_token *tok, CK_OBJECT_HANDLE h, const char *what)
{
	CK_RV rv;

	if (h == CK_INVALID_HANDLE)
		return;
	rv = tok->f->C_DestroyObject(tok->session, h);
	if (rv != CKR_OK)
		custody_warn("cannot remove the %s from token %s again: %s",
			     what, tok->label, token_rv_text(rv));
}

void
token_destroy_object(custody_token *tok, CK_OBJECT_HANDLE h, const char *what)
{
	if (h != CK_INVALID_HANDLE)
		token_found_forget_all();
	token_destroy_temporary(tok, h, what);
}

int
token_wrap_key(custody_token *tok, CK_MECHANISM *mech,
	       CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key,
	       unsigned char **out, size_t *out_len, CK_RV *rv_out)
{
	CK_ULONG len = 0;
	unsigned char *buf = NULL;
	CK_RV rv;

	*out = NULL;
	*out_len = 0;
	rv = tok->f->C_WrapKey(tok->session, mech, wrapping, key, NULL, &len);
	if (rv == CKR_OK && (len == 0 || (buf = malloc(len)) == NULL))
		rv = CKR_HOST_MEMORY;
	if (rv == CKR_OK)
		rv = tok->f->C_WrapKey(tok->session, mech, wrapping, key, buf,
				       &len);
	if (rv == CKR_OK) {
		*out = buf;
		*out_len = len;
		buf = NULL;
	}
	free(buf);
	*rv_out = rv;
	return rv == CKR_OK ? CUSTODY_OK : CUSTODY_EFAIL;
}

int
token_key_id_decode(const char *hex, unsigned char *id, size_t max,
		    size_t *len, custody_err *err)
{
	long n = hex != NULL ? custody_hex_decode(hex, id, max) : -1;

	if (n <= 0)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "invalid key id %s: expected an even "
				       "number of hex digits, at most %zu",
				       hex != NULL ? hex : "(none)", 2 * max);
	*len = (size_t)n;
	return CUSTODY_OK;
}

int
token_key_id_login(custody_token *tok, const char *key_id, const char *what,
		   unsigned char *id, size_t max, size_t *len, custody_err *err)
{
	int r;

	if ((r = token_key_id_decode(key_id, id, max, len, err)) != CUSTODY_OK)
		return r;
	return token_require_login(tok, what, err);
}

int
token_err_no_private_key(const custody_token *tok, const char *key_id,
			 custody_err *err)
{
	return custody_err_set(err, CUSTODY_ENOTFOUND,
			       "no private key with key id %s on token %s",
			       key_id, tok->label);
}

int
token_find_private_key(custody_token *tok, const char *key_id,
		       const char *what, CK_OBJECT_HANDLE *key,
		       custody_err *err)
{
	unsigned char id[KEY_ID_MAX];
	size_t id_len;
	int r;

	if ((r = token_key_id_login(tok, key_id, what, id, sizeof(id), &id_len,
				    err)) != CUSTODY_OK ||
	    (r = token_find_by_id(tok, CKO_PRIVATE_KEY, id, id_len, key,
				  err)) != CUSTODY_OK)
		return r;
	if (*key == CK_INVALID_HANDLE)
		return token_err_no_private_key(tok, key_id, err);
	return CUSTODY_OK;
}

/* ------------------------------------------------- module and lock */

static struct token_module *
module_find(CK_FUNCTION_LIST *f)
{
	struct token_module *m;

	for (m = modules; m != NULL; m = m->next) {
		if (m->f == f && m->pid == getpid())
			return m;
	}
	return NULL;
}

/* C_Initialize once per process and module. */
static int
module_init(custody_token *tok, const char *path, custody_err *err)
{
	CK_C_INITIALIZE_ARGS args;
	struct token_module *m;
	CK_RV rv;
	int r = CUSTODY_EFAIL;

	pthread_mutex_lock(&modules_mutex);
	if ((m = module_find(tok->f)) != NULL) {
		tok->mod_next = m->handles;
		m->handles = tok;
		tok->mod = m;
		r = CUSTODY_OK;
		goto out;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot initialise PKCS#11 module %s: out "
				    "of memory", path);
		goto out;
	}
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	rv = tok->f->C_Initialize(&args);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		free(m);
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot initialise PKCS#11 module %s", path);
		goto out;
	}
	m->f = tok->f;
	m->handles = tok;
	m->finalize = rv == CKR_OK;
	m->pid = getpid();
	m->next = modules;
	modules = m;
	tok->mod = m;
	r = CUSTODY_OK;
out:
	pthread_mutex_unlock(&modules_mutex);
	return r;
}

/* Another handle of this process is logged in to tok's token (login
 * state is per application and token, not per session). */
static int
others_logged_in(const custody_token *tok)
{
	const custody_token *t;
	int yes = 0;

	pthread_mutex_lock(&modules_mutex);
	for (t = tok->mod != NULL ? tok->mod->handles : NULL; t != NULL;
	     t = t->mod_next) {
		if (t != tok && t->slot == tok->slot && t->logged_in)
			yes = 1;
	}
	pthread_mutex_unlock(&modules_mutex);
	return yes;
}

const void *
token_module_functions(const custody_token *tok)
{
	return tok->mod != NULL ? (const void *)tok->mod->f : (const void *)tok->f;
}

static void
module_release(custody_token *tok)
{
	struct token_module *m = tok->mod, **pp;
	custody_token **tp;

	if (m == NULL)
		return;
	pthread_mutex_lock(&modules_mutex);
	for (tp = &m->handles; *tp != NULL; tp = &(*tp)->mod_next) {
		if (*tp == tok) {
			*tp = tok->mod_next;
			break;
		}
	}
	if (m->handles != NULL)
		goto out;
	for (pp = &modules; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	}
	if (m->finalize && m->pid == getpid())
		m->f->C_Finalize(NULL);
	free(m);
out:
	pthread_mutex_unlock(&modules_mutex);
}

/* dlopen, lock, C_Initialize: what open and init share. */
static int
attach(const custody_token_spec *spec, custody_token *tok, custody_err *err)
{
	CK_C_GetFunctionList get;
	CK_RV rv;
	const char *why;
	int r = CUSTODY_EFAIL;

	tok->dl = dlopen(spec->module, RTLD_NOW | RTLD_LOCAL);
	if (tok->dl == NULL) {
		why = dlerror();
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot load PKCS#11 module %s: %s",
				       spec->module, why != NULL ? why : "unknown");
	}
	*(void **)&get = dlsym(tok->dl, "C_GetFunctionList");
	if (get == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot load PKCS#11 module %s: it has no "
				       "C_GetFunctionList", spec->module);
	rv = get(&tok->f);
	if (rv != CKR_OK || tok->f == NULL)
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot load PKCS#11 module %s: "
				    "C_GetFunctionList failed", spec->module);
	if ((r = token_lock_acquire(spec, &tok->lock, err)) != CUSTODY_OK)
		return r;
	if ((r = token_lock_turn_take(tok->lock, err)) != CUSTODY_OK)
		return r;
	r = module_init(tok, spec->module, err);
	token_lock_turn_give(tok->lock);
	return r;
}

/* Undoes attach (and whatever session and login the handle has). */
static void
detach(custody_token *tok)
{
	if (tok->have_session) {
		/* Logging out would log out the other handles too. */
		token_found_forget_all();	/* the login state changes */
		if (tok->logged_in && !others_logged_in(tok))
			tok->f->C_Logout(tok->session);
		tok->f->C_CloseSession(tok->session);
		tok->have_session = 0;
		tok->logged_in = 0;
	}
	module_release(tok);
	tok->mod = NULL;
	token_lock_release(tok->lock);
	tok->lock = NULL;
	/* The module stays mapped for the life of the process (dlopen again
	 * finds it): a module is not unloaded under threads it started or
	 * state it keeps across C_Finalize — openCryptoki 3.8.1 crashes in
	 * the C_Initialize that follows a dlclose of it. */
	tok->dl = NULL;
	tok->f = NULL;
}

/* ------------------------------------------------------ token choice */

/* Percent-decodes s[0..len) into a new string; NULL on a bad escape or
 * an encoded NUL. */
static char *
pct_decode(const char *s, size_t len)
{
	char *out = malloc(len + 1);
	size_t i, o = 0;

	if (out == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		if (s[i] == '%') {
			int hi = i + 2 < len ? custody_hex_digit(s[i + 1])
					     : -1;
			int lo = hi >= 0 ? custody_hex_digit(s[i + 2]) : -1;

			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				free(out);
				return NULL;
			}
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

static void
match_clear(struct token_match *m)
{
	free(m->token);
	free(m->serial);
	free(m->manufacturer);
	free(m->model);
	memset(m, 0, sizeof(*m));
}

static int
uri_attr(struct token_match *m, const char *a, size_t len, custody_err *err)
{
	const char *eq = memchr(a, '=', len);
	size_t nlen = eq != NULL ? (size_t)(eq - a) : len;
	char **slot = NULL;
	int r = CUSTODY_EFAIL;

	if (nlen == 9 && strncmp(a, "pin-value", 9) == 0) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "invalid PKCS#11 URI: pin-value is not "
				    "accepted, a PIN never comes from the "
				    "command line");
		custody_err_hint(err, "give the PIN with --pin-source "
				 "file:PATH, env:VAR, fd:N or prompt");
		return r;
	}
	if (nlen == 5 && strncmp(a, "token", 5) == 0)
		slot = &m->token;
	else if (nlen == 6 && strncmp(a, "serial", 6) == 0)
		slot = &m->serial;
	else if (nlen == 12 && strncmp(a, "manufacturer", 12) == 0)
		slot = &m->manufacturer;
	else if (nlen == 5 && strncmp(a, "model", 5) == 0)
		slot = &m->model;
	if (slot == NULL) {	/* id, object, type, library-*, ...: not ours */
		return CUSTODY_OK;
	}
	if (eq == NULL || *slot != NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "invalid PKCS#11 URI: attribute %.*s %s",
				       (int)nlen, a, eq == NULL ? "has no value"
								: "appears twice");
	if ((*slot = pct_decode(eq + 1, len - nlen - 1)) == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "invalid PKCS#11 URI: bad percent-encoding "
				       "in attribute %.*s", (int)nlen, a);
	return CUSTODY_OK;
}

/* RFC 7512: pkcs11:path-attrs[?query-attrs]; only the token attributes
 * of the path matter here, and pin-value is refused wherever it is. */
static int
uri_parse(const char *uri, struct token_match *m, custody_err *err)
{
	const char *p, *end, *q;
	int r = CUSTODY_EFAIL;

	if (strncasecmp(uri, "pkcs11:", 7) != 0)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "invalid PKCS#11 URI: it must start with "
				       "pkcs11:");
	q = strchr(uri, '?');
	end = q != NULL ? q : uri + strlen(uri);
	for (p = uri + 7; p < end; p = q + 1) {
		q = memchr(p, ';', (size_t)(end - p));
		if (q == NULL)
			q = end;
		if (q > p && (r = uri_attr(m, p, (size_t)(q - p), err)) != CUSTODY_OK)
			return r;
	}
	for (p = end; *p != '\0'; p = q) {
		p++;
		q = p + strcspn(p, "&");
		if (strncmp(p, "pin-value", 9) == 0 &&
		    (p[9] == '=' || p + 9 == q)) {
			r = uri_attr(m, p, (size_t)(q - p), err);
			return r;
		}
	}
	return CUSTODY_OK;
}

static int
match_from_spec(const custody_token_spec *spec, struct token_match *m,
		custody_err *err)
{
	int r = CUSTODY_OK;

	if (spec->uri != NULL && spec->uri[0] != '\0' &&
	    (r = uri_parse(spec->uri, m, err)) != CUSTODY_OK)
		return r;
	if (m->token == NULL && spec->label != NULL && spec->label[0] != '\0' &&
	    (m->token = strdup(spec->label)) == NULL)
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot open the token: out of memory");
	return r;
}

static int
info_matches(const CK_TOKEN_INFO *ti, const struct token_match *m)
{
	const struct {
		const unsigned char *field;
		size_t len;
		const char *want;	/* NULL: any */
	} f[] = {
		{ti->label, sizeof(ti->label), m->token},
		{ti->serialNumber, sizeof(ti->serialNumber), m->serial},
		{ti->manufacturerID, sizeof(ti->manufacturerID),
		 m->manufacturer},
		{ti->model, sizeof(ti->model), m->model},
	};
	char buf[33];
	size_t i;

	for (i = 0; i < NELEM(f); i++) {
		token_trim_field(f[i].field, f[i].len, buf);
		if (f[i].want != NULL && strcmp(buf, f[i].want) != 0)
			return 0;
	}
	return 1;
}

/* "labelled X" or "matching serial=S, model=M" for messages. */
static void
match_describe(const struct token_match *m, char *buf, size_t size)
{
	size_t len;

	if (m->serial == NULL && m->manufacturer == NULL && m->model == NULL) {
		snprintf(buf, size, "labelled %s", m->token);
		return;
	}
	snprintf(buf, size, "matching");
	len = strlen(buf);
#define DESCRIBE(name, v)                                                   \
	if ((v) != NULL && len < size) {                                    \
		snprintf(buf + len, size - len, "%s %s=%s",                 \
			 len > 8 ? "," : "", name, v);                      \
		len = strlen(buf);                                          \
	}
	DESCRIBE("token", m->token)
	DESCRIBE("serial", m->serial)
	DESCRIBE("manufacturer", m->manufacturer)
	DESCRIBE("model", m->model)
#undef DESCRIBE
}

/* The slots that have a token, malloc'ed. */
static int
slot_list(custody_token *tok, CK_SLOT_ID **out, CK_ULONG *n,
	  custody_err *err)
{
	CK_SLOT_ID *slots = NULL, *tmp;
	CK_ULONG count = 0;
	CK_RV rv;
	int r = CUSTODY_EFAIL;

	for (;;) {
		rv = tok->f->C_GetSlotList(CK_TRUE, NULL, &count);
		if (rv != CKR_OK)
			break;
		tmp = realloc(slots, (count + 1) * sizeof(*slots));
		if (tmp == NULL) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot list PKCS#11 slots: out of "
					    "memory");
			goto out;
		}
		slots = tmp;
		rv = tok->f->C_GetSlotList(CK_TRUE, slots, &count);
		if (rv != CKR_BUFFER_TOO_SMALL)
			break;
	}
	if (rv != CKR_OK) {
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot list PKCS#11 slots");
		goto out;
	}
	*out = slots;
	slots = NULL;
	*n = count;
	r = CUSTODY_OK;
out:
	free(slots);
	return r;
}

/* Appends s to the ", "-separated list in buf. */
static void
list_append(char *buf, size_t size, const char *s)
{
	size_t len = strlen(buf);

	if (len < size)
		snprintf(buf + len, size - len, "%s%s", len > 0 ? ", " : "", s);
}

/* Finds the one initialised token that matches m (any, when m is empty). */
static int
select_token(custody_token *tok, const char *module,
	     const struct token_match *m, custody_err *err)
{
	CK_SLOT_ID *slots = NULL;
	CK_ULONG n = 0, i;
	CK_TOKEN_INFO ti;
	char present[512] = "", found[512] = "", label[33], serial[17];
	char what[256];
	size_t matches = 0;
	int r = CUSTODY_EFAIL;

	if ((r = slot_list(tok, &slots, &n, err)) != CUSTODY_OK)
		goto out;
	for (i = 0; i < n; i++) {
		if (tok->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK ||
		    !(ti.flags & CKF_TOKEN_INITIALIZED))
			continue;
		token_trim_field(ti.label, sizeof(ti.label), label);
		token_trim_field(ti.serialNumber, sizeof(ti.serialNumber), serial);
		list_append(present, sizeof(present), label);
		if (!info_matches(&ti, m))
			continue;
		if (matches++ == 0) {
			tok->slot = slots[i];
			memcpy(tok->label, label, sizeof(tok->label));
			memcpy(tok->serial, serial, sizeof(tok->serial));
		}
		snprintf(what, sizeof(what), "%s (serial %s)", label, serial);
		list_append(found, sizeof(found), what);
	}
	if (matches == 1) {
		r = CUSTODY_OK;
		goto out;
	}
	if (m->token == NULL && m->serial == NULL && m->manufacturer == NULL &&
	    m->model == NULL) {
		if (matches == 0)
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "no initialised token in PKCS#11 "
					    "module %s", module);
		else
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "several tokens present: %s", found);
		custody_err_hint(err, "choose one with --token LABEL or "
				 "--token-uri pkcs11:token=...;serial=...");
		goto out;
	}
	match_describe(m, what, sizeof(what));
	if (matches == 0)
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "no token %s; tokens present: %s", what,
				    present[0] != '\0' ? present : "none");
	else
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "several tokens %s: %s", what, found);
	if (matches > 1)
		custody_err_hint(err, "choose one with --token-uri "
				 "pkcs11:token=...;serial=...");
out:
	free(slots);
	return r;
}

/* -------------------------------------------------------- open/close */

/* A read-write session on the selected token. */
static int
open_session(custody_token *tok, custody_err *err)
{
	CK_RV rv;

	rv = tok->f->C_OpenSession(tok->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
				   NULL, NULL, &tok->session);
	if (rv != CKR_OK)
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot open a session on token %s",
				    tok->label);
	tok->have_session = 1;
	return CUSTODY_OK;
}

int
custody_token_open(const custody_token_spec *spec, custody_token **out,
		   custody_err *err)
{
	struct token_match m = {NULL, NULL, NULL, NULL};
	custody_token *tok = NULL;
	int r = CUSTODY_EFAIL;

	*out = NULL;
	if ((r = token_spec_need_module(spec, "open the token", err)) !=
	    CUSTODY_OK ||
	    (r = match_from_spec(spec, &m, err)) != CUSTODY_OK)
		goto out;
	if ((tok = calloc(1, sizeof(*tok))) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot open the token: out of memory");
		goto out;
	}
	if ((r = attach(spec, tok, err)) != CUSTODY_OK ||
	    (r = select_token(tok, spec->module, &m, err)) != CUSTODY_OK ||
	    (r = open_session(tok, err)) != CUSTODY_OK)
		goto out;
	*out = tok;
	tok = NULL;
	r = CUSTODY_OK;
out:
	match_clear(&m);
	custody_token_close(tok);
	return r;
}

void
custody_token_close(custody_token *tok)
{
	if (tok == NULL)
		return;
	detach(tok);
	free(tok);
}

const char *
custody_token_label(const custody_token *tok)
{
	return tok->label;
}

const char *
custody_token_serial(const custody_token *tok)
{
	return tok->serial;
}

/* ------------------------------------------------------------- login */

static int
pin_flags_refuse(const custody_token *tok, CK_FLAGS flags, custody_err *err)
{
	int r = CUSTODY_OK;

	if (flags & CKF_USER_PIN_LOCKED) {
		r = custody_err_set(err, CUSTODY_EPIN,
				    "cannot log in to token %s: the user PIN "
				    "is locked", tok->label);
		custody_err_hint(err, "the security officer must reset it");
	} else if (flags & CKF_USER_PIN_FINAL_TRY) {
		r = custody_err_set(err, CUSTODY_EPIN,
				    "cannot log in to token %s: the token "
				    "says one more wrong PIN locks it",
				    tok->label);
		custody_err_hint(err, "custody does not risk the last try; "
				 "log in once with a tool you trust, or have "
				 "the security officer reset the PIN");
	} else if (!(flags & CKF_USER_PIN_INITIALIZED)) {
		r = custody_err_set(err, CUSTODY_EPIN,
				    "cannot log in to token %s: the user PIN "
				    "is not initialised", tok->label);
		custody_err_hint(err, "the security officer must set it "
				 "(custody init-token)");
	}
	return r;
}

int
custody_token_login(custody_token *tok, const char *pin, size_t pin_len,
		    custody_err *err)
{
	CK_TOKEN_INFO ti;
	CK_RV rv;
	int r = CUSTODY_EFAIL;

	rv = tok->f->C_GetTokenInfo(tok->slot, &ti);
	if (rv != CKR_OK)
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot log in to token %s", tok->label);
	if ((r = pin_flags_refuse(tok, ti.flags, err)) != CUSTODY_OK)
		return r;
	/* A PIN the token cannot take (an empty PIN file, say) is refused
	 * here: C_Login would spend one of the PIN's tries on it. */
	if (pin != NULL && !(ti.flags & CKF_PROTECTED_AUTHENTICATION_PATH) &&
	    ((ti.ulMinPinLen != CK_UNAVAILABLE_INFORMATION && pin_len < ti.ulMinPinLen) ||
	     (ti.ulMaxPinLen != CK_UNAVAILABLE_INFORMATION && ti.ulMaxPinLen > 0 &&
	      pin_len > ti.ulMaxPinLen)))
		return custody_err_set(err, CUSTODY_EPIN,
				       "cannot log in to token %s: the PIN has %zu "
				       "characters, the token takes %lu to %lu",
				       tok->label, pin_len,
				       (unsigned long)ti.ulMinPinLen,
				       (unsigned long)ti.ulMaxPinLen);
	token_found_forget_all();
	if ((r = token_lock_turn_take(tok->lock, err)) != CUSTODY_OK)
		return r;
	rv = tok->f->C_Login(tok->session, CKU_USER, (CK_UTF8CHAR *)pin,
			     pin != NULL ? pin_len : 0);
	token_lock_turn_give(tok->lock);
	switch (rv) {
	case CKR_OK:
		tok->logged_in = 1;
		r = CUSTODY_OK;
		break;
	case CKR_USER_ALREADY_LOGGED_IN:
		/* Ours to log out only when the login is another handle of
		 * ours, not somebody else in the process (libp11). */
		tok->logged_in = others_logged_in(tok);
		r = CUSTODY_OK;
		break;
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
		r = custody_err_set(err, CUSTODY_EPIN,
				    "cannot log in to token %s: the token "
				    "rejected the PIN", tok->label);
		if (tok->f->C_GetTokenInfo(tok->slot, &ti) != CKR_OK)
			break;
		if (ti.flags & CKF_USER_PIN_LOCKED)
			custody_err_hint(err, "the user PIN is now locked");
		else if (ti.flags & CKF_USER_PIN_FINAL_TRY)
			custody_err_hint(err, "the token says one more wrong "
					 "PIN locks it");
		else if (ti.flags & CKF_USER_PIN_COUNT_LOW)
			custody_err_hint(err, "the token says few tries are "
					 "left before the PIN locks");
		break;
	case CKR_PIN_LOCKED:
		r = custody_err_set(err, CUSTODY_EPIN,
				    "cannot log in to token %s: the user PIN "
				    "is locked", tok->label);
		break;
	default:
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot log in to token %s", tok->label);
		break;
	}
	return r;
}

/* ------------------------------------------------------------ objects */

int
token_require_login(custody_token *tok, const char *what, custody_err *err)
{
	CK_SESSION_INFO si;
	CK_TOKEN_INFO ti;
	CK_RV rv;

	rv = tok->f->C_GetSessionInfo(tok->session, &si);
	if (rv != CKR_OK)
		return token_err_rv(err, CUSTODY_EFAIL, rv, "cannot %s on "
				    "token %s", what, tok->label);
	if (si.state == CKS_RO_USER_FUNCTIONS ||
	    si.state == CKS_RW_USER_FUNCTIONS)
		return CUSTODY_OK;
	if (tok->f->C_GetTokenInfo(tok->slot, &ti) == CKR_OK &&
	    !(ti.flags & CKF_LOGIN_REQUIRED))
		return CUSTODY_OK;
	custody_err_set(err, CUSTODY_EFAIL, "cannot %s on token %s: not "
			"logged in (the token hides private keys until the "
			"user logs in)", what, tok->label);
	custody_err_hint(err, "give the user PIN with --pin-source");
	return CUSTODY_EFAIL;
}

/* How many objects of class cls have this id. */
static int
count_class(custody_token *tok, CK_OBJECT_CLASS cls, const unsigned char *id,
	    size_t id_len, size_t *n, custody_err *err)
{
	CK_ATTRIBUTE t[] = {
		{CKA_CLASS, &cls, sizeof(cls)},
		{CKA_ID, (void *)id, id_len},
	};
	CK_OBJECT_HANDLE *h = NULL;
	int r;

	r = token_find(tok, t, 2, &h, n, err);
	free(h);
	return r;
}

/* The CKA_IDs of the token's private keys, read in one search: a list of
 * the certificates asks each whether its key is there. */
struct private_ids {
	unsigned char **id;
	size_t *len;
	size_t n;
};

static void
private_ids_free(struct private_ids *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		free(p->id[i]);
	free(p->id);
	free(p->len);
	memset(p, 0, sizeof(*p));
}

static int
private_ids_read(custody_token *tok, struct private_ids *p, custody_err *err)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}};
	CK_OBJECT_HANDLE *h = NULL;
	size_t count = 0, i;
	int r;

	memset(p, 0, sizeof(*p));
	if ((r = token_find(tok, t, 1, &h, &count, err)) != CUSTODY_OK)
		return r;
	p->id = calloc(count > 0 ? count : 1, sizeof(*p->id));
	p->len = calloc(count > 0 ? count : 1, sizeof(*p->len));
	if (p->id == NULL || p->len == NULL) {
		free(h);
		private_ids_free(p);
		return custody_err_set(err, CUSTODY_EFAIL, "cannot list "
				       "certificates on token %s: out of memory",
				       tok->label);
	}
	/* A key whose id cannot be read is no certificate's. */
	for (i = 0; i < count; i++)
		if (token_get_attr(tok, h[i], CKA_ID, &p->id[p->n], &p->len[p->n],
				   NULL) == CUSTODY_OK && p->len[p->n] > 0)
			p->n++;
	free(h);
	return CUSTODY_OK;
}

static int
private_ids_have(const struct private_ids *p, const unsigned char *id,
		 size_t len)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (p->len[i] == len && memcmp(p->id[i], id, len) == 0)
			return 1;
	return 0;
}

/* Fills c from certificate object h; keys: the private keys' ids (NULL:
 * not logged in, has_private_key -1). */
static int
read_cert(custody_token *tok, CK_OBJECT_HANDLE h,
	  const struct private_ids *keys, custody_token_cert *c,
	  custody_err *err)
{
	unsigned char *id = NULL, *label = NULL;
	size_t id_len = 0, label_len = 0;
	int r;

	c->has_private_key = keys != NULL ? 0 : -1;
	if ((r = token_get_attr(tok, h, CKA_VALUE, &c->der, &c->der_len,
				err)) != CUSTODY_OK)
		goto out;
	if ((r = token_get_attr(tok, h, CKA_ID, &id, &id_len, err)) != CUSTODY_OK)
		goto out;
	if (id_len > 0 && id_len <= CUSTODY_KEY_ID_HEX / 2)
		custody_hex_encode(id, id_len, c->key_id, 0);
	if (token_get_attr(tok, h, CKA_LABEL, &label, &label_len, NULL) ==
		    CUSTODY_OK && label_len > 0) {
		c->label = (char *)label;
		label = NULL;
	}
	if (keys != NULL && id_len > 0)
		c->has_private_key = private_ids_have(keys, id, id_len);
out:
	free(id);
	free(label);
	return r;
}

int
custody_token_list_certs(custody_token *tok, custody_token_cert **out,
			 size_t *n, custody_err *err)
{
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_CERTIFICATE_TYPE ctype = CKC_X_509;
	CK_ATTRIBUTE t[] = {
		{CKA_CLASS, &cls, sizeof(cls)},
		{CKA_CERTIFICATE_TYPE, &ctype, sizeof(ctype)},
	};
	CK_OBJECT_HANDLE *h = NULL;
	custody_token_cert *certs = NULL;
	struct private_ids keys;
	size_t count = 0, i;
	int logged_in, r;

	*out = NULL;
	*n = 0;
	memset(&keys, 0, sizeof(keys));
	logged_in = token_require_login(tok, "look for private keys", NULL) ==
		    CUSTODY_OK;
	/* Two searches, whatever the number of certificates (each search
	 * walks every object of the token). */
	if ((logged_in && (r = private_ids_read(tok, &keys, err)) != CUSTODY_OK) ||
	    (r = token_find(tok, t, 2, &h, &count, err)) != CUSTODY_OK)
		goto out;
	if (count > 0 && (certs = calloc(count, sizeof(*certs))) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot list certificates on token %s: out "
				    "of memory", tok->label);
		goto out;
	}
	for (i = 0; i < count; i++) {
		if ((r = read_cert(tok, h[i], logged_in ? &keys : NULL,
				   &certs[i], err)) != CUSTODY_OK)
			goto out;
	}
	*out = certs;
	*n = count;
	certs = NULL;
	r = CUSTODY_OK;
out:
	custody_token_certs_free(certs, count);
	private_ids_free(&keys);
	free(h);
	return r;
}

void
custody_token_certs_free(custody_token_cert *certs, size_t n)
{
	size_t i;

	if (certs == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(certs[i].der);
		free(certs[i].label);
	}
	free(certs);
}

int
custody_token_has_private_key(custody_token *tok, const char *key_id,
			      int *present, custody_err *err)
{
	unsigned char id[KEY_ID_MAX];
	size_t id_len;
	int r;

	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;

	/* One search (each walks every object of the token), kept for the
	 * check or the signature that follows (token_find_by_id). */
	*present = 0;
	if ((r = token_key_id_login(tok, key_id, "look for private keys", id,
				    sizeof(id), &id_len, err)) != CUSTODY_OK ||
	    (r = token_find_by_id(tok, CKO_PRIVATE_KEY, id, id_len, &h, err)) !=
	    CUSTODY_OK)
		return r;
	*present = h != CK_INVALID_HANDLE;
	return CUSTODY_OK;
}

/* Destroys every object matching t (the WHAT of key_id); counts them in
 * *n. */
static int
destroy_matching(custody_token *tok, CK_ATTRIBUTE *t, CK_ULONG t_len,
		 const char *key_id, const char *what, size_t *n,
		 custody_err *err)
{
	CK_OBJECT_HANDLE *h = NULL;
	size_t count = 0, i;
	CK_RV rv;
	int r;

	if ((r = token_find(tok, t, t_len, &h, &count, err)) != CUSTODY_OK)
		goto out;
	if (count > 0)
		token_found_forget_all();
	for (i = 0; i < count; i++) {
		rv = tok->f->C_DestroyObject(tok->session, h[i]);
		if (rv != CKR_OK) {
			r = token_err_rv(err, CUSTODY_EFAIL, rv,
					 "cannot destroy the %s (key id %s) on "
					 "token %s", what, key_id, tok->label);
			goto out;
		}
		(*n)++;
	}
	r = CUSTODY_OK;
out:
	free(h);
	return r;
}

/* Destroys every object of class cls with this id; counts them in *n. */
static int
destroy_class(custody_token *tok, CK_OBJECT_CLASS cls, const unsigned char *id,
	      size_t id_len, const char *key_id, const char *what, size_t *n,
	      custody_err *err)
{
	CK_ATTRIBUTE t[] = {
		{CKA_CLASS, &cls, sizeof(cls)},
		{CKA_ID, (void *)id, id_len},
	};

	return destroy_matching(tok, t, NELEM(t), key_id, what, n, err);
}

int
custody_token_delete(custody_token *tok, const char *key_id, custody_err *err)
{
	unsigned char id[KEY_ID_MAX];
	size_t id_len, n = 0;
	int r;

	if ((r = token_key_id_login(tok, key_id, "delete objects", id,
				    sizeof(id), &id_len, err)) != CUSTODY_OK)
		return r;
	/* The private key goes last: if anything fails on the way, the key
	 * is the one object still there. */
	if ((r = destroy_class(tok, CKO_CERTIFICATE, id, id_len, key_id, "certificate",
			       &n, err)) != CUSTODY_OK ||
	    (r = destroy_class(tok, CKO_PUBLIC_KEY, id, id_len, key_id, "public key",
			       &n, err)) != CUSTODY_OK ||
	    (r = destroy_class(tok, CKO_PRIVATE_KEY, id, id_len, key_id, "private key",
			       &n, err)) != CUSTODY_OK)
		return r;
	if (n == 0)
		return custody_err_set(err, CUSTODY_ENOTFOUND,
				       "no object with key id %s on token %s",
				       key_id, tok->label);
	custody_debug("destroyed %zu objects with key id %s on token %s", n,
		      key_id, tok->label);
	return CUSTODY_OK;
}

int
custody_token_count_key_objects(custody_token *tok, const char *key_id,
				custody_token_key_objects *out,
				custody_err *err)
{
	unsigned char id[KEY_ID_MAX];
	size_t id_len;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = token_key_id_login(tok, key_id, "look for private keys", id,
				    sizeof(id), &id_len, err)) != CUSTODY_OK)
		return r;
	if ((r = count_class(tok, CKO_CERTIFICATE, id, id_len,
			     &out->certificates, err)) != CUSTODY_OK ||
	    (r = count_class(tok, CKO_PUBLIC_KEY, id, id_len,
			     &out->public_keys, err)) != CUSTODY_OK ||
	    (r = count_class(tok, CKO_PRIVATE_KEY, id, id_len,
			     &out->private_keys, err)) != CUSTODY_OK)
		memset(out, 0, sizeof(*out));
	return r;
}

int
custody_token_delete_cert(custody_token *tok, const char *key_id,
			  const unsigned char *der, size_t der_len,
			  custody_err *err)
{
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	unsigned char id[KEY_ID_MAX];
	CK_ATTRIBUTE t[] = {
		{CKA_CLASS, &cls, sizeof(cls)},
		{CKA_ID, id, 0},
		{CKA_VALUE, (void *)der, der_len},
	};
	size_t id_len, count = 0;
	int r;

	if ((r = token_key_id_login(tok, key_id, "delete objects", id,
				    sizeof(id), &id_len, err)) != CUSTODY_OK)
		return r;
	t[1].ulValueLen = id_len;
	if ((r = destroy_matching(tok, t, NELEM(t), key_id,
				  "certificate object", &count, err)) !=
	    CUSTODY_OK)
		return r;
	if (count == 0)
		return custody_err_set(err, CUSTODY_ENOTFOUND,
				       "no such certificate object with key "
				       "id %s on token %s", key_id, tok->label);
	custody_debug("destroyed a certificate object with key id %s on "
		      "token %s", key_id, tok->label);
	return CUSTODY_OK;
}

int
custody_token_delete_key(custody_token *tok, const char *key_id,
			 custody_token_key_objects *destroyed,
			 custody_err *err)
{
	custody_token_key_objects held, done;
	unsigned char id[KEY_ID_MAX];
	size_t id_len;
	int r;

	memset(&done, 0, sizeof(done));
	if ((r = token_key_id_login(tok, key_id, "delete objects", id,
				    sizeof(id), &id_len, err)) != CUSTODY_OK ||
	    (r = custody_token_count_key_objects(tok, key_id, &held, err)) !=
	    CUSTODY_OK)
		goto out;
	if (held.certificates > 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot destroy the key with key id %s on "
				    "token %s: %zu certificate%s there still "
				    "use%s it", key_id, tok->label,
				    held.certificates,
				    held.certificates == 1 ? "" : "s",
				    held.certificates == 1 ? "s" : "");
		goto out;
	}
	if (held.public_keys == 0 && held.private_keys == 0) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "no key with key id %s on token %s",
				    key_id, tok->label);
		goto out;
	}
	/* The private key goes last: if anything fails on the way, the key
	 * is the one object still there. */
	if ((r = destroy_class(tok, CKO_PUBLIC_KEY, id, id_len, key_id, "public key",
			       &done.public_keys, err)) != CUSTODY_OK ||
	    (r = destroy_class(tok, CKO_PRIVATE_KEY, id, id_len, key_id, "private key",
			       &done.private_keys, err)) != CUSTODY_OK)
		goto out;
	custody_debug("destroyed the key with key id %s on token %s", key_id,
		      tok->label);
	r = CUSTODY_OK;
out:
	if (destroyed != NULL)
		*destroyed = done;
	return r;
}

int
custody_token_destroy_private_key(custody_token *tok, const char *key_id,
				  size_t *n, custody_err *err)
{
	unsigned char id[KEY_ID_MAX];
	size_t id_len;
	int r;

	*n = 0;
	if ((r = token_key_id_login(tok, key_id, "destroy a private key", id,
				    sizeof(id), &id_len, err)) != CUSTODY_OK)
		return r;
	return destroy_class(tok, CKO_PRIVATE_KEY, id, id_len, key_id,
			     "private key", n, err);
}

/* ---------------------------------------------------------------- URI */

/* Appends s percent-encoded (everything but RFC 3986 unreserved). */
static void
pct_append(char *out, size_t *o, const unsigned char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~') {
			out[(*o)++] = (char)c;
		} else {
			out[(*o)++] = '%';
			out[(*o)++] = hex[c >> 4];
			out[(*o)++] = hex[c & 0xf];
		}
	}
}

static void
text_append(char *out, size_t *o, const char *s)
{
	size_t len = strlen(s);

	memcpy(out + *o, s, len);
	*o += len;
}

char *
custody_token_key_uri(const custody_token *tok, const char *key_id,
		      const char *label)
{
	unsigned char id[KEY_ID_MAX];
	size_t id_len, o = 0, size;
	char *out;

	if (token_key_id_decode(key_id, id, sizeof(id), &id_len, NULL) !=
	    CUSTODY_OK)
		return NULL;
	size = 64 + 3 * (strlen(tok->label) + strlen(tok->serial) + id_len +
			 (label != NULL ? strlen(label) : 0));
	if ((out = malloc(size)) == NULL)
		return NULL;
	text_append(out, &o, "pkcs11:token=");
	pct_append(out, &o, (const unsigned char *)tok->label,
		   strlen(tok->label));
	text_append(out, &o, ";serial=");
	pct_append(out, &o, (const unsigned char *)tok->serial,
		   strlen(tok->serial));
	text_append(out, &o, ";id=");
	for (size_t i = 0; i < id_len; i++) {
		/* Every byte escaped, as RFC 7512 shows ids. */
		snprintf(out + o, 4, "%%%02x", id[i]);
		o += 3;
	}
	if (label != NULL) {
		text_append(out, &o, ";object=");
		pct_append(out, &o, (const unsigned char *)label, strlen(label));
	}
	text_append(out, &o, ";type=private");
	out[o] = '\0';
	return out;
}

/* -------------------------------------------------------- attributes */

static int
bool_attr(const CK_ATTRIBUTE *a)
{
	if (a->ulValueLen != sizeof(CK_BBOOL))
		return -1;
	return *(const CK_BBOOL *)a->pValue ? 1 : 0;
}

int
custody_token_key_attrs(custody_token *tok, const char *key_id,
			custody_key_attrs *out, custody_err *err)
{
	CK_BBOOL b[9];
	CK_KEY_TYPE kt = (CK_KEY_TYPE)-1;
	CK_ATTRIBUTE a[] = {
		{CKA_TOKEN, &b[0], sizeof(b[0])},
		{CKA_PRIVATE, &b[1], sizeof(b[1])},
		{CKA_SENSITIVE, &b[2], sizeof(b[2])},
		{CKA_EXTRACTABLE, &b[3], sizeof(b[3])},
		{CKA_SIGN, &b[4], sizeof(b[4])},
		{CKA_ALWAYS_SENSITIVE, &b[5], sizeof(b[5])},
		{CKA_NEVER_EXTRACTABLE, &b[6], sizeof(b[6])},
		{CKA_LOCAL, &b[7], sizeof(b[7])},
		{CKA_WRAP_WITH_TRUSTED, &b[8], sizeof(b[8])},
		{CKA_KEY_TYPE, &kt, sizeof(kt)},
	};
	CK_OBJECT_HANDLE key;
	CK_RV rv;
	int r;

	if ((r = token_find_private_key(tok, key_id,
					"read private key attributes", &key,
					err)) != CUSTODY_OK)
		return r;
	/* Attributes the token will not reveal come back with
	 * CK_UNAVAILABLE_INFORMATION; the others are still filled. */
	rv = tok->f->C_GetAttributeValue(tok->session, key, a,
					 sizeof(a) / sizeof(a[0]));
	if (rv != CKR_OK && rv != CKR_ATTRIBUTE_SENSITIVE &&
	    rv != CKR_ATTRIBUTE_TYPE_INVALID)
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot read the attributes of private key "
				    "%s on token %s", key_id, tok->label);
	out->token = bool_attr(&a[0]);
	out->private_ = bool_attr(&a[1]);
	out->sensitive = bool_attr(&a[2]);
	out->extractable = bool_attr(&a[3]);
	out->sign = bool_attr(&a[4]);
	out->always_sensitive = bool_attr(&a[5]);
	out->never_extractable = bool_attr(&a[6]);
	out->local = bool_attr(&a[7]);
	out->wrap_with_trusted = bool_attr(&a[8]);
	out->key_type = a[9].ulValueLen == sizeof(kt) ? (unsigned long)kt
						      : (unsigned long)-1;
	return CUSTODY_OK;
}

/* -------------------------------------------------------------- init */

/* The slot of the initialised token labelled label, after C_InitToken
 * (SoftHSM moves a freshly initialised token to a new slot id). */
static int
find_initialised(custody_token *tok, const char *label, custody_err *err)
{
	struct token_match m = {(char *)label, NULL, NULL, NULL};

	return select_token(tok, "", &m, err);
}

static int
init_user_pin(custody_token *tok, const char *so_pin, size_t so_pin_len,
	      const char *user_pin, size_t user_pin_len, custody_err *err)
{
	CK_RV rv;
	int r = CUSTODY_EFAIL;

	if ((r = open_session(tok, err)) != CUSTODY_OK)
		return r;
	token_found_forget_all();
	rv = tok->f->C_Login(tok->session, CKU_SO, (CK_UTF8CHAR *)so_pin,
			     so_pin_len);
	if (rv != CKR_OK)
		return token_err_rv(err, rv == CKR_PIN_INCORRECT ? CUSTODY_EPIN
								 : CUSTODY_EFAIL,
				    rv, "cannot log in to token %s as security "
				    "officer", tok->label);
	tok->logged_in = 1;
	rv = tok->f->C_InitPIN(tok->session, (CK_UTF8CHAR *)user_pin,
			       user_pin_len);
	if (rv != CKR_OK)
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot set the user PIN of token %s",
				    tok->label);
	return CUSTODY_OK;
}

int
custody_token_init(const custody_token_spec *spec, const char *label,
		   const char *so_pin, size_t so_pin_len,
		   const char *user_pin, size_t user_pin_len,
		   custody_err *err)
{
	custody_token tok;
	struct token_match m = {(char *)label, NULL, NULL, NULL};
	CK_SLOT_ID *slots = NULL;
	CK_ULONG n = 0, i;
	CK_TOKEN_INFO ti;
	unsigned char padded[32];
	char what[64];
	int free_slot = 0, r = CUSTODY_EFAIL;
	CK_RV rv;

	memset(&tok, 0, sizeof(tok));
	if ((r = token_spec_need_module(spec, "initialise a token", err)) !=
	    CUSTODY_OK)
		goto out;
	if (label == NULL || label[0] == '\0' || strlen(label) > 32) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot initialise a token: the label must "
				    "be 1 to 32 bytes");
		goto out;
	}
	if (so_pin == NULL || user_pin == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot initialise token %s: both the SO "
				    "PIN and the user PIN are needed", label);
		goto out;
	}
	if ((r = attach(spec, &tok, err)) != CUSTODY_OK)
		goto out;
	snprintf(tok.label, sizeof(tok.label), "%s", label);
	if ((r = slot_list(&tok, &slots, &n, err)) != CUSTODY_OK)
		goto out;
	for (i = 0; i < n; i++) {
		if (tok.f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		if (!(ti.flags & CKF_TOKEN_INITIALIZED)) {
			if (!free_slot) {
				tok.slot = slots[i];
				free_slot = 1;
			}
		} else if (info_matches(&ti, &m)) {
			token_trim_field(ti.serialNumber, sizeof(ti.serialNumber),
				   what);
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot initialise token %s: a token "
					    "with that label exists (serial %s)",
					    label, what);
			goto out;
		}
	}
	if (!free_slot) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot initialise token %s: no free slot "
				    "left in PKCS#11 module %s", label,
				    spec->module);
		goto out;
	}
	memset(padded, ' ', sizeof(padded));
	memcpy(padded, label, strlen(label));
	custody_step("initialising token %s in slot %lu", label,
		     (unsigned long)tok.slot);
	rv = tok.f->C_InitToken(tok.slot, (CK_UTF8CHAR *)so_pin, so_pin_len,
				padded);
	if (rv != CKR_OK) {
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot initialise token %s", label);
		goto out;
	}
	if ((r = find_initialised(&tok, label, err)) != CUSTODY_OK) {
		custody_err_prefix(err, "token %s was initialised but cannot "
				   "be found again", label);
		goto out;
	}
	custody_step("setting the user PIN of token %s (serial %s)",
		     tok.label, tok.serial);
	if ((r = init_user_pin(&tok, so_pin, so_pin_len, user_pin,
			       user_pin_len, err)) != CUSTODY_OK)
		goto out;
	custody_step("token %s initialised (serial %s)", tok.label, tok.serial);
	r = CUSTODY_OK;
out:
	free(slots);
	detach(&tok);
	return r;
}
