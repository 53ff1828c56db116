/*
 * custody_engine.c — the OpenSSL ENGINE "custody": a certificate type name
 * ("OAuthTokenIssuer", "WebServicesInternal@node2") as a key.
 *
 *   ENGINE_load_private_key(e, "OAuthTokenIssuer", ...)  the token's key of
 *	the certificate current now (libp11's EVP_PKEY: signing runs in the
 *	token)
 *   ENGINE_load_public_key(e, NAME, ...)  that certificate's public key
 *   ENGINE_ctrl_cmd(e, "LOAD_CERT_CTRL", 0, &parms, NULL, 1)  that
 *	certificate, with parms a struct { const char *name; X509 *cert; }
 *	(libp11's layout; cert is the caller's: X509_free)
 *
 * This file is ENGINE glue only: the work is custody/keyref.h, which a
 * provider can use as well (OpenSSL 4 has no engines).  Control commands
 * CONFIG, MODULE, TOKEN, PIN_SOURCE, STORE, NODE set what the `custody`
 * command's options of the same names set; without them the engine reads
 * the same config file and CUSTODY_* environment as the command.  Every
 * load resolves the name anew (after `custody set` the next load gives the
 * new key).  The PIN comes from the PIN source only: OpenSSL's UI method
 * is never used, "prompt" needs /dev/tty, and without a PIN source a load
 * fails with an error (never a crash).
 *
 * Lifetime: the engine's state (one custody_keyref: one token handle for
 * all keys) lives in the ENGINE's ex_data from bind to destroy.  Keys,
 * libp11 and the token are released (in that order) at destroy, or at
 * process exit if that comes first — not at finish: OpenSSL's own
 * commands finish the engine right after loading a key (their engine
 * store loader) and use the key afterwards.  So free every EVP_PKEY the
 * engine gave before the last ENGINE_free, as the openssl commands do.
 * An engine kept in OpenSSL's engine list (OPENSSL_ENGINES, openssl.cnf)
 * is destroyed by OPENSSL_cleanup's exit handler only, after the PKCS#11
 * module's destructors: release_at_exit() runs before those.  The token
 * (and its lock: other custody processes wait for it) is held from the
 * first private key load until then.
 *
 * Threads: loads and control commands are serialised by the engine's
 * mutex; loaded keys may sign from several threads at once (libp11),
 * also while another key loads.  Not safe: using a key after the engine
 * was destroyed or the process began to exit, and using keys in a child
 * after fork (libp11 re-initialises the module there).
 *
 * With custody's agent configured (agent.socket, CUSTODY_AGENT) a key
 * load needs no PIN source, module or store: the certificate comes from
 * the agent and the key signs through it (custody/keyref.h); RSA-PSS and
 * digest-less RSA are refused there (the provider does PSS).
 */
#include "config.h"

/* ENGINE is deprecated in OpenSSL 3: this file is the engine. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <custody/error.h>
#include <custody/keyref.h>
#include <custody/log.h>

static const char engine_id[] = "custody";
static const char engine_name[] =
	"custody: certificate types as keys of a PKCS#11 token";

/* ---- errors: custody's message in OpenSSL's error queue ------------- */

static int err_lib;
static CRYPTO_ONCE err_once = CRYPTO_ONCE_STATIC_INIT;
static ERR_STRING_DATA err_strings[] = {
	{0, "custody engine"},
	{CUSTODY_EFAIL, "failed"},
	{CUSTODY_EUSAGE, "bad name or configuration"},
	{CUSTODY_ENOTFOUND, "not found"},
	{CUSTODY_ECONFLICT, "conflict"},
	{CUSTODY_EPASSWORD, "password"},
	{CUSTODY_EPIN, "PIN refused or token locked"},
	{0, NULL},
};

static void
err_init(void)
{
	size_t i;

	err_lib = ERR_get_next_error_library();
	err_strings[0].error = ERR_PACK(err_lib, 0, 0);
	for (i = 1; err_strings[i].string != NULL; i++)
		err_strings[i].error = ERR_PACK(err_lib, 0,
						 (int)err_strings[i].error);
	/* The module is never unloaded (-z nodelete): the strings stay. */
	ERR_load_strings(err_lib, err_strings);
}

/* Puts err's message (and hint) on OpenSSL's error queue, naming the
 * engine function that failed (what) rather than this helper. */
static void
raise_custody(const char *what, const custody_err *err)
{
	if (!CRYPTO_THREAD_run_once(&err_once, err_init))
		return;
	ERR_new();
	ERR_set_debug(OPENSSL_FILE, OPENSSL_LINE, what);
	if (err->hint[0] != '\0')
		ERR_set_error(err_lib, err->code, "%s (%s)", err->msg,
			      err->hint);
	else
		ERR_set_error(err_lib, err->code, "%s", err->msg);
}

/* Library warnings (a PIN file others can read, ...) on stderr. */
static void
log_line(enum custody_log_level level, const char *line, void *ctx)
{
	(void)ctx;
	if (level == CUSTODY_LOG_WARN)
		fprintf(stderr, "custody engine: warning: %s\n", line);
}

/* ---- state ----------------------------------------------------------- */

struct engine_state {
	pthread_mutex_t lock;
	custody_keyref *kr;	/* NULL once released at exit */
	struct engine_state *next;	/* in `live` */
};

/* Every engine state of the process, for release_at_exit(). */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct engine_state *live;
static int exit_registered;	/* after a token was opened */

static int state_index = -1;
static CRYPTO_ONCE index_once = CRYPTO_ONCE_STATIC_INIT;

static void
index_init(void)
{
	state_index = ENGINE_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static struct engine_state *
state_of(ENGINE *e)
{
	if (state_index < 0)
		return NULL;
	return ENGINE_get_ex_data(e, state_index);
}

static void
state_free(struct engine_state *st)
{
	struct engine_state **pp;

	if (st == NULL)
		return;
	pthread_mutex_lock(&live_lock);
	for (pp = &live; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == st) {
			*pp = st->next;
			break;
		}
	}
	pthread_mutex_unlock(&live_lock);
	custody_keyref_free(st->kr);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

static struct engine_state *
state_new(void)
{
	struct engine_state *st;
	custody_err err;

	custody_err_clear(&err);
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	if (pthread_mutex_init(&st->lock, NULL) != 0) {
		free(st);
		return NULL;
	}
	if (custody_keyref_new(&st->kr, &err) != CUSTODY_OK) {
		raise_custody("bind", &err);
		state_free(st);
		return NULL;
	}
	pthread_mutex_lock(&live_lock);
	st->next = live;
	live = st;
	pthread_mutex_unlock(&live_lock);
	return st;
}

/*
 * At exit, keys, libp11 and the token are released while the PKCS#11
 * module can still take the calls.  An engine OpenSSL keeps in its engine
 * list is destroyed only by OPENSSL_cleanup's exit handler, which runs
 * after the module's own destructors (SoftHSM then crashes in
 * C_CloseAllSessions).  This handler is registered once a token is open,
 * so after the module was loaded (it stays loaded while the keyref lives):
 * exit handlers run last-registered first, so it runs before them.
 */
static void
release_at_exit(void)
{
	struct engine_state *st;

	pthread_mutex_lock(&live_lock);
	for (st = live; st != NULL; st = st->next) {
		pthread_mutex_lock(&st->lock);
		custody_keyref_free(st->kr);
		st->kr = NULL;
		pthread_mutex_unlock(&st->lock);
	}
	pthread_mutex_unlock(&live_lock);
}

static void
register_exit_release(void)
{
	pthread_mutex_lock(&live_lock);
	if (!exit_registered && atexit(release_at_exit) == 0)
		exit_registered = 1;
	pthread_mutex_unlock(&live_lock);
}

/* The engine's keyref, or an error when it was released at exit. */
static int
usable(const struct engine_state *st, custody_err *err)
{
	if (st->kr == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the custody engine was shut down at "
				       "exit");
	return CUSTODY_OK;
}

/* ---- control commands ------------------------------------------------ */

#define CMD_LOAD_CERT_CTRL (ENGINE_CMD_BASE + CUSTODY_KEYREF_NODE + 1)

static const ENGINE_CMD_DEFN commands[] = {
	{ENGINE_CMD_BASE + CUSTODY_KEYREF_CONFIG, "CONFIG",
	 "custody config file (empty: none)", ENGINE_CMD_FLAG_STRING},
	{ENGINE_CMD_BASE + CUSTODY_KEYREF_MODULE, "MODULE",
	 "PKCS#11 module path (token.module)", ENGINE_CMD_FLAG_STRING},
	{ENGINE_CMD_BASE + CUSTODY_KEYREF_TOKEN, "TOKEN",
	 "token label or pkcs11: URI", ENGINE_CMD_FLAG_STRING},
	{ENGINE_CMD_BASE + CUSTODY_KEYREF_PIN_SOURCE, "PIN_SOURCE",
	 "user PIN source: file:PATH, env:VAR, fd:N or prompt",
	 ENGINE_CMD_FLAG_STRING},
	{ENGINE_CMD_BASE + CUSTODY_KEYREF_STORE, "STORE",
	 "store URL (store.url)", ENGINE_CMD_FLAG_STRING},
	{ENGINE_CMD_BASE + CUSTODY_KEYREF_NODE, "NODE",
	 "this node's name (node.name)", ENGINE_CMD_FLAG_STRING},
	{CMD_LOAD_CERT_CTRL, "LOAD_CERT_CTRL",
	 "the current certificate of a type: struct { const char *name; "
	 "X509 *cert; }", ENGINE_CMD_FLAG_INTERNAL},
	{0, NULL, NULL, 0},
};

/* libp11's LOAD_CERT_CTRL parameter. */
struct load_cert_params {
	const char *name;
	X509 *cert;
};

static int
engine_ctrl(ENGINE *e, int cmd, long i, void *p, void (*f)(void))
{
	struct engine_state *st = state_of(e);
	struct load_cert_params *parms = p;
	custody_err err;
	int r = CUSTODY_EFAIL;

	(void)i;
	(void)f;
	if (st == NULL)
		return 0;
	custody_err_clear(&err);
	pthread_mutex_lock(&st->lock);
	if ((r = usable(st, &err)) != CUSTODY_OK) {
		/* r says it */
	} else if (cmd >= ENGINE_CMD_BASE &&
	    cmd <= ENGINE_CMD_BASE + CUSTODY_KEYREF_NODE) {
		r = custody_keyref_set(st->kr, (enum custody_keyref_setting)
				       (cmd - ENGINE_CMD_BASE), p, &err);
	} else if (cmd == CMD_LOAD_CERT_CTRL) {
		if (parms == NULL)
			r = custody_err_set(&err, CUSTODY_EUSAGE,
					    "LOAD_CERT_CTRL: no parameters");
		else
			r = custody_keyref_load_cert(st->kr, parms->name,
						     &parms->cert, &err);
	} else {
		r = custody_err_set(&err, CUSTODY_EUSAGE,
				    "unknown control command %d", cmd);
	}
	pthread_mutex_unlock(&st->lock);
	if (r != CUSTODY_OK)
		raise_custody("ctrl", &err);
	return r == CUSTODY_OK;
}

/* ---- keys ---------------------------------------------------------- */

static EVP_PKEY *
load_private(ENGINE *e, const char *name, UI_METHOD *ui, void *cb_data)
{
	struct engine_state *st = state_of(e);
	EVP_PKEY *pkey = NULL;
	custody_err err;
	int opened;

	(void)ui;	/* the PIN comes from the PIN source only */
	(void)cb_data;
	if (st == NULL)
		return NULL;
	custody_err_clear(&err);
	pthread_mutex_lock(&st->lock);
	if (usable(st, &err) != CUSTODY_OK ||
	    custody_keyref_load_key(st->kr, name, &pkey, NULL, &err) !=
	    CUSTODY_OK)
		raise_custody("load_private_key", &err);
	opened = custody_keyref_token_is_open(st->kr);
	pthread_mutex_unlock(&st->lock);
	if (opened)	/* not under st->lock: release_at_exit takes both */
		register_exit_release();
	return pkey;
}

static EVP_PKEY *
load_public(ENGINE *e, const char *name, UI_METHOD *ui, void *cb_data)
{
	struct engine_state *st = state_of(e);
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	custody_err err;

	(void)ui;
	(void)cb_data;
	if (st == NULL)
		return NULL;
	custody_err_clear(&err);
	pthread_mutex_lock(&st->lock);
	if (usable(st, &err) != CUSTODY_OK ||
	    custody_keyref_load_cert(st->kr, name, &cert, &err) != CUSTODY_OK)
		raise_custody("load_public_key", &err);
	else if ((pkey = X509_get_pubkey(cert)) == NULL) {
		custody_err_openssl(&err, CUSTODY_EFAIL,
				    "cannot read the public key of %s", name);
		raise_custody("load_public_key", &err);
	}
	pthread_mutex_unlock(&st->lock);
	X509_free(cert);
	return pkey;
}

/* ---- life ---------------------------------------------------------- */

static int
engine_init(ENGINE *e)
{
	return state_of(e) != NULL;
}

/* Nothing: keys may still be in use after finish (see the top). */
static int
engine_finish(ENGINE *e)
{
	(void)e;
	return 1;
}

/* Keys, then libp11, then the token (custody_keyref_free). */
static int
engine_destroy(ENGINE *e)
{
	struct engine_state *st = state_of(e);

	if (st != NULL) {
		ENGINE_set_ex_data(e, state_index, NULL);
		state_free(st);
	}
	return 1;
}

static int
bind(ENGINE *e, const char *id)
{
	struct engine_state *st = NULL;
	int r = 0;

	if (id != NULL && strcmp(id, engine_id) != 0)
		goto out;
	if (!CRYPTO_THREAD_run_once(&err_once, err_init) ||
	    !CRYPTO_THREAD_run_once(&index_once, index_init) ||
	    state_index < 0 || (st = state_new()) == NULL)
		goto out;
	if (!ENGINE_set_id(e, engine_id) ||
	    !ENGINE_set_name(e, engine_name) ||
	    !ENGINE_set_init_function(e, engine_init) ||
	    !ENGINE_set_finish_function(e, engine_finish) ||
	    !ENGINE_set_destroy_function(e, engine_destroy) ||
	    !ENGINE_set_ctrl_function(e, engine_ctrl) ||
	    !ENGINE_set_cmd_defns(e, commands) ||
	    !ENGINE_set_load_privkey_function(e, load_private) ||
	    !ENGINE_set_load_pubkey_function(e, load_public) ||
	    !ENGINE_set_ex_data(e, state_index, st))
		goto out;
	st = NULL;
	custody_log_set_handler(log_line, NULL);
	r = 1;
out:
	state_free(st);
	return r;
}

IMPLEMENT_DYNAMIC_BIND_FN(bind)
IMPLEMENT_DYNAMIC_CHECK_FN()
