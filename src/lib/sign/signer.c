/*
 * sign/signer.c — the ctx (configuration, store, token, session pool, lease
 * of the shared token lock) and the signers of custody/signer.h.
 *
 * Three mutexes, never held together (so never in the wrong order):
 *   signer->mx     the signer's cached record and certificate facts
 *   ctx->store_mx  the store connection (a SQLite handle is not shared
 *                  between threads)
 *   ctx->mx        the token: sessions, lease, key cache
 * None is held across a signature in the token.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>

#include <custody/assign.h>
#include <custody/audit.h>
#include <custody/cert.h>
#include <custody/clock.h>
#include <custody/policy.h>
#include <custody/secret.h>
#include <custody/integrity.h>
#include <custody/signer.h>
#include <custody/store.h>
#include <custody/token.h>

#include "sign/internal.h"
#include "token/sign.h"

#define LEASE_TICK_NS 20000000L	/* the lease thread looks every 20 ms   */
#define MAX_SESSIONS 16
#define CERT_CACHE 4		/* certificates a signer remembers        */

/* A key of the token, found once. */
struct key_entry {
	char key_id[CUSTODY_KEY_ID_HEX + 1];
	struct token_key key;
};

/* What a signer needs of a certificate: from the store, kept. */
struct cert_facts {
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	char key_id[CUSTODY_KEY_ID_HEX + 1];
	char key_algorithm[16];
};

struct custody_ctx {
	/* configuration (copies) */
	char *module, *label, *uri, *lock_dir, *pin_source, *store_url;
	int lock_timeout;
	char node[CUSTODY_NAME_MAX + 1];
	custody_ctx_options opt;
	EVP_MD *md256, *md384, *md512;

	/* the store */
	pthread_mutex_t store_mx;
	custody_store *store;
	uint64_t store_gen;	/* moves when the store says it changed  */

	/* the token, under mx */
	pthread_mutex_t mx;
	pthread_cond_t cv;	/* a session came back; signatures drained */
	pthread_cond_t tick;	/* wakes the lease thread (stop)          */
	custody_token *tok;
	custody_err token_err;	/* a refused PIN: never tried again       */
	CK_SESSION_HANDLE sessions[MAX_SESSIONS];	/* opened here       */
	int n_sessions, n_free;
	CK_SESSION_HANDLE free_list[MAX_SESSIONS];
	int leased;		/* the shared token lock is held          */
	int draining;		/* letting go of it: no new signature     */
	int inflight;		/* signatures using the token now         */
	unsigned long uses;	/* signatures started, for idleness       */
	int lease_thread_running, stopping;
	pthread_t lease_thread;
	struct key_entry *keys;
	size_t n_keys, cap_keys;

	/* Through custody's agent (agent.socket): no token, no store. */
	struct sign_agent *agent;
};

struct custody_signer {
	custody_ctx *ctx;
	char type[CUSTODY_NAME_MAX + 1];
	char identity[CUSTODY_NAME_MAX + 1];	/* "" = this node, then global */
	pthread_mutex_t mx;
	custody_assignment rec;		/* as stored (not resolved)      */
	uint64_t gen;			/* ctx->store_gen it was read at */
	struct cert_facts certs[CERT_CACHE];
	size_t next_cert;
};

/* ------------------------------------------------------------ helpers */

static int64_t
clock_now(void)
{
	return (int64_t)time(NULL);
}

static int
dup_opt(const char *s, char **out)
{
	*out = NULL;
	if (s == NULL)
		return 0;
	*out = strdup(s);
	return *out == NULL ? -1 : 0;
}

const char *
custody_sig_scheme_name(enum custody_sig_scheme scheme)
{
	switch (scheme) {
	case CUSTODY_SIG_RSA_PKCS1: return "RSA-PKCS1";
	case CUSTODY_SIG_RSA_PSS: return "RSA-PSS";
	case CUSTODY_SIG_ECDSA_DER: return "ECDSA-DER";
	case CUSTODY_SIG_ECDSA_RAW: return "ECDSA-RAW";
	default: return "AUTO";
	}
}

/* --------------------------------------------------------------- ctx */

int
custody_ctx_new(const custody_config *cfg, const char *node, custody_ctx **out,
		custody_err *err)
{
	return custody_ctx_new_with(cfg, node, NULL, out, err);
}

int
custody_ctx_new_with(const custody_config *cfg, const char *node,
		     const custody_ctx_options *options, custody_ctx **out,
		     custody_err *err)
{
	custody_ctx *ctx = NULL;
	long ncpu;
	int r = CUSTODY_EFAIL;

	if (out != NULL)
		*out = NULL;
	if (cfg == NULL || out == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot make a signing context: no "
				    "configuration");
		goto out;
	}
	if (cfg->pin_source != NULL &&
	    (r = custody_secret_source_check(cfg->pin_source, err)) !=
	    CUSTODY_OK)
		goto out;
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
		goto nomem;
	pthread_mutex_init(&ctx->store_mx, NULL);
	pthread_mutex_init(&ctx->mx, NULL);
	pthread_cond_init(&ctx->cv, NULL);
	{
		pthread_condattr_t a;

		pthread_condattr_init(&a);
		pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
		pthread_cond_init(&ctx->tick, &a);
		pthread_condattr_destroy(&a);
	}
	if (dup_opt(cfg->module, &ctx->module) != 0 ||
	    dup_opt(cfg->token_label, &ctx->label) != 0 ||
	    dup_opt(cfg->token_uri, &ctx->uri) != 0 ||
	    dup_opt(cfg->lock_dir, &ctx->lock_dir) != 0 ||
	    dup_opt(cfg->pin_source, &ctx->pin_source) != 0 ||
	    dup_opt(custody_config_store_url(cfg), &ctx->store_url) != 0)
		goto nomem;
	ctx->lock_timeout = cfg->lock_timeout;
	if ((r = custody_config_node_name(node != NULL ? node : cfg->node_name,
					  ctx->node, err)) != CUSTODY_OK)
		goto out;
	if (options != NULL)
		ctx->opt = *options;
	if (ctx->opt.sessions <= 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		ctx->opt.sessions = ncpu < 2 ? 2 : (int)ncpu;
	}
	if (ctx->opt.sessions > MAX_SESSIONS)
		ctx->opt.sessions = MAX_SESSIONS;
	if (custody_config_agent_socket(cfg) != NULL &&
	    (r = sign_agent_new(custody_config_agent_socket(cfg),
				ctx->opt.sessions, &ctx->agent, err)) !=
	    CUSTODY_OK)
		goto out;
	/* Fetched once: EVP_get_digestbynid would fetch at every digest. */
	ctx->md256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	ctx->md384 = EVP_MD_fetch(NULL, "SHA384", NULL);
	ctx->md512 = EVP_MD_fetch(NULL, "SHA512", NULL);
	if (ctx->md256 == NULL || ctx->md384 == NULL || ctx->md512 == NULL) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot make a signing context: no "
					"SHA-2 digests");
		goto out;
	}
	*out = ctx;
	ctx = NULL;
	r = CUSTODY_OK;
	goto out;
nomem:
	r = custody_err_set(err, CUSTODY_EFAIL,
			    "cannot make a signing context: out of memory");
out:
	custody_ctx_free(ctx);
	return r;
}

int
custody_ctx_token_is_open(custody_ctx *ctx)
{
	int open;

	if (ctx == NULL)
		return 0;
	pthread_mutex_lock(&ctx->mx);
	open = ctx->tok != NULL;
	pthread_mutex_unlock(&ctx->mx);
	return open;
}

const char *
custody_ctx_node(const custody_ctx *ctx)
{
	return ctx->node;
}

/* Asks the lease thread to stop and waits for it. */
static void
stop_lease_thread(custody_ctx *ctx)
{
	pthread_mutex_lock(&ctx->mx);
	ctx->stopping = 1;
	pthread_cond_broadcast(&ctx->tick);
	pthread_mutex_unlock(&ctx->mx);
	if (ctx->lease_thread_running)
		pthread_join(ctx->lease_thread, NULL);
	ctx->lease_thread_running = 0;
}

void
custody_ctx_free(custody_ctx *ctx)
{
	int i;

	if (ctx == NULL)
		return;
	stop_lease_thread(ctx);
	if (ctx->tok != NULL) {
		/* Closing sessions touches the token: hold the lock. */
		if (!ctx->leased &&
		    custody_token_relock(ctx->tok, NULL) == CUSTODY_OK)
			ctx->leased = 1;
		for (i = 0; i < ctx->n_sessions; i++)
			token_session_close(ctx->tok, ctx->sessions[i]);
		custody_token_close(ctx->tok);
	}
	custody_store_close(ctx->store);
	sign_agent_free(ctx->agent);
	free(ctx->keys);
	free(ctx->module);
	free(ctx->label);
	free(ctx->uri);
	free(ctx->lock_dir);
	free(ctx->pin_source);
	free(ctx->store_url);
	EVP_MD_free(ctx->md256);
	EVP_MD_free(ctx->md384);
	EVP_MD_free(ctx->md512);
	pthread_cond_destroy(&ctx->tick);
	pthread_cond_destroy(&ctx->cv);
	pthread_mutex_destroy(&ctx->mx);
	pthread_mutex_destroy(&ctx->store_mx);
	OPENSSL_cleanse(&ctx->token_err, sizeof(ctx->token_err));
	free(ctx);
}

/* ----------------------------------------------------------- the lease */

/* Lets go of the shared lock once the signatures in flight are done
 * (ctx->mx held; it is released while waiting). */
static void
lease_release(custody_ctx *ctx)
{
	ctx->draining = 1;
	while (ctx->inflight > 0)
		pthread_cond_wait(&ctx->cv, &ctx->mx);
	custody_token_unlock(ctx->tok, NULL);
	ctx->leased = 0;
	ctx->draining = 0;
	pthread_cond_broadcast(&ctx->cv);
}

/* The shared lock is held again: the lease thread watches it from now
 * (ctx->mx held). */
static void
lease_taken(custody_ctx *ctx)
{
	ctx->leased = 1;
	pthread_cond_signal(&ctx->tick);
}

static void *
lease_main(void *arg)
{
	custody_ctx *ctx = arg;
	unsigned long seen = 0;
	struct timespec t;
	int64_t until;

	pthread_mutex_lock(&ctx->mx);
	seen = ctx->uses;
	while (!ctx->stopping) {
		/* Nothing held, nothing to look at: sleep until a signature
		 * takes the lock again (an idle agent does not wake). */
		if (!ctx->leased) {
			pthread_cond_wait(&ctx->tick, &ctx->mx);
			seen = ctx->uses;
			continue;
		}
		/* ctx->tick waits on CLOCK_MONOTONIC (custody_ctx_new_with). */
		until = custody_monotonic_ns() + LEASE_TICK_NS;
		t.tv_sec = (time_t)(until / 1000000000LL);
		t.tv_nsec = (long)(until % 1000000000LL);
		pthread_cond_timedwait(&ctx->tick, &ctx->mx, &t);
		if (ctx->stopping || !ctx->leased || ctx->draining)
			continue;
		/* Idle since the last look, or a writer waits: let go. */
		if ((ctx->uses == seen && ctx->inflight == 0) ||
		    custody_token_lock_wanted(ctx->tok))
			lease_release(ctx);
		seen = ctx->uses;
	}
	pthread_mutex_unlock(&ctx->mx);
	return NULL;
}

/* ----------------------------------------------------------- the token */

int
sign_token_login(const custody_token_spec *spec, const char *pin_source,
		 const char *module_hint, const char *pin_hint,
		 custody_token **out, custody_err *err)
{
	custody_secret pin = {NULL, 0};
	custody_token *tok = NULL;
	char prompt[256];
	int r;

	*out = NULL;
	if (spec->module == NULL || spec->module[0] == '\0') {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "no PKCS#11 module configured");
		custody_err_hint(err, "%s", module_hint);
		return r;
	}
	if (pin_source == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "no PIN source configured");
		custody_err_hint(err, "%s", pin_hint);
		return r;
	}
	if ((r = custody_secret_source_check(pin_source, err)) != CUSTODY_OK ||
	    (r = custody_token_open(spec, &tok, err)) != CUSTODY_OK)
		return r;
	snprintf(prompt, sizeof(prompt), "User PIN for token %s: ",
		 custody_token_label(tok));
	if ((r = custody_secret_read(pin_source, prompt, &pin, err)) ==
	    CUSTODY_OK)
		r = custody_token_login(tok, pin.data != NULL ? pin.data : "",
					pin.len, err);
	custody_secret_clear(&pin);
	if (r == CUSTODY_OK)
		*out = tok;
	else
		custody_token_close(tok);
	return r;
}

/* Opens the token shared, logs in (the PIN read and cleansed here), opens
 * the pool and starts the lease thread.  ctx->mx held. */
static int
token_start(custody_ctx *ctx, custody_err *err)
{
	custody_token_spec spec;
	custody_token *tok = NULL;
	int e, i, r = CUSTODY_EFAIL;

	if (ctx->token_err.code != CUSTODY_OK) {
		/* A PIN the token refused is never tried again. */
		if (err != NULL)
			*err = ctx->token_err;
		r = ctx->token_err.code;
		goto out;
	}
	memset(&spec, 0, sizeof(spec));
	spec.module = ctx->module;
	spec.label = ctx->label;
	spec.uri = ctx->uri;
	spec.lock_dir = ctx->lock_dir;
	spec.lock_timeout = ctx->lock_timeout;
	spec.shared = 1;
	if ((r = sign_token_login(&spec, ctx->pin_source,
				  "give --module PATH, CUSTODY_MODULE or "
				  "token.module in the config file",
				  "give --pin-source file:PATH|env:VAR|fd:N|"
				  "prompt, CUSTODY_PIN_SOURCE or "
				  "token.pin-source", &tok, err)) != CUSTODY_OK) {
		if (r == CUSTODY_EPIN && err != NULL)
			ctx->token_err = *err;
		goto out;
	}
	/* The handle's own session is the first of the pool (one session
	 * less to open and close: `custody sign` needs no other). */
	ctx->free_list[ctx->n_free++] = token_handle_session(tok);
	for (i = 1; i < ctx->opt.sessions; i++) {
		if ((r = token_session_open(tok, &ctx->sessions[ctx->n_sessions],
					    err)) != CUSTODY_OK)
			goto out;
		ctx->free_list[ctx->n_free++] = ctx->sessions[ctx->n_sessions++];
	}
	ctx->tok = tok;
	ctx->leased = 1;
	if (!ctx->opt.one_shot &&
	    (e = pthread_create(&ctx->lease_thread, NULL, lease_main, ctx)) !=
	    0) {
		ctx->tok = NULL;
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot start the token lease thread: %s",
				    strerror(e));
		goto out;
	}
	ctx->lease_thread_running = !ctx->opt.one_shot;
	tok = NULL;
	r = CUSTODY_OK;
out:
	if (tok != NULL) {
		for (i = 0; i < ctx->n_sessions; i++)
			token_session_close(tok, ctx->sessions[i]);
		ctx->n_sessions = ctx->n_free = 0;
		custody_token_close(tok);
	}
	return r;
}

/* A session for one signature, with the shared lock held, and the
 * cached key for key_id if there is one (*have_key). */
static int
session_take(custody_ctx *ctx, const char *key_id, CK_SESSION_HANDLE *s,
	     struct token_key *key, int *have_key, custody_err *err)
{
	size_t i;
	int r = CUSTODY_EFAIL;

	*have_key = 0;
	pthread_mutex_lock(&ctx->mx);
	if (ctx->tok == NULL && (r = token_start(ctx, err)) != CUSTODY_OK)
		goto out;
	while (ctx->draining || ctx->n_free == 0)
		pthread_cond_wait(&ctx->cv, &ctx->mx);
	if (!ctx->leased) {
		if ((r = custody_token_relock(ctx->tok, err)) != CUSTODY_OK)
			goto out;
		lease_taken(ctx);
	}
	ctx->inflight++;
	ctx->uses++;
	*s = ctx->free_list[--ctx->n_free];
	for (i = 0; i < ctx->n_keys; i++) {
		if (strcmp(ctx->keys[i].key_id, key_id) == 0) {
			*key = ctx->keys[i].key;
			*have_key = 1;
			break;
		}
	}
	r = CUSTODY_OK;
out:
	pthread_mutex_unlock(&ctx->mx);
	return r;
}

static void
session_give(custody_ctx *ctx, CK_SESSION_HANDLE s)
{
	pthread_mutex_lock(&ctx->mx);
	ctx->free_list[ctx->n_free++] = s;
	ctx->inflight--;
	pthread_cond_broadcast(&ctx->cv);
	pthread_mutex_unlock(&ctx->mx);
}

/* Remembers key for key_id (replacing an older entry), or forgets it
 * (key NULL). */
static void
key_cache_put(custody_ctx *ctx, const char *key_id,
	      const struct token_key *key)
{
	struct key_entry *tmp;
	size_t i;

	pthread_mutex_lock(&ctx->mx);
	for (i = 0; i < ctx->n_keys; i++)
		if (strcmp(ctx->keys[i].key_id, key_id) == 0)
			break;
	if (key == NULL) {
		if (i < ctx->n_keys)
			ctx->keys[i] = ctx->keys[--ctx->n_keys];
		goto out;
	}
	if (i == ctx->n_keys) {
		if (ctx->n_keys == ctx->cap_keys) {
			size_t cap = ctx->cap_keys ? 2 * ctx->cap_keys : 8;

			tmp = realloc(ctx->keys, cap * sizeof(*tmp));
			if (tmp == NULL)
				goto out;	/* found again next time */
			ctx->keys = tmp;
			ctx->cap_keys = cap;
		}
		ctx->n_keys++;
	}
	snprintf(ctx->keys[i].key_id, sizeof(ctx->keys[i].key_id), "%s",
		 key_id);
	ctx->keys[i].key = *key;
out:
	pthread_mutex_unlock(&ctx->mx);
}

/* ----------------------------------------------------------- the store */

/* The token for one integrity tag of the store (custody/integrity.h):
 * started when needed, with no signature in flight, so that its own
 * session is free; ctx->mx is held until tag_token_give_back.  Called
 * with store_mx held (the order is always store_mx, then mx). */
static custody_token *
tag_token_borrow(void *arg, custody_err *err)
{
	custody_ctx *ctx = arg;
	custody_err quiet;

	/* token_start remembers a refused PIN only through an error record:
	 * never tried twice, even when the caller asked for no message. */
	if (err == NULL)
		err = &quiet;
	pthread_mutex_lock(&ctx->mx);
	if (ctx->tok == NULL && token_start(ctx, err) != CUSTODY_OK)
		goto fail;
	while (ctx->draining || ctx->inflight > 0)
		pthread_cond_wait(&ctx->cv, &ctx->mx);
	if (!ctx->leased) {
		if (custody_token_relock(ctx->tok, err) != CUSTODY_OK)
			goto fail;
		lease_taken(ctx);
	}
	ctx->uses++;
	return ctx->tok;
fail:
	pthread_mutex_unlock(&ctx->mx);
	return NULL;
}

static void
tag_token_give_back(void *arg)
{
	custody_ctx *ctx = arg;

	pthread_mutex_unlock(&ctx->mx);
}

/* Opens the store and sets the change baseline.  store_mx held. */
static int
store_start(custody_ctx *ctx, custody_err *err)
{
	int changed, r;

	if (ctx->store != NULL)
		return CUSTODY_OK;
	if ((r = custody_store_open_existing(ctx->store_url, &ctx->store, err)) !=
	    CUSTODY_OK)
		return r;
	/* What the store says is checked against its integrity tags as it
	 * is read (an assignment, a certificate), with the signing token. */
	if ((r = custody_integrity_attach_lent(ctx->store, tag_token_borrow,
					       tag_token_give_back, ctx,
					       err)) != CUSTODY_OK) {
		custody_store_close(ctx->store);
		ctx->store = NULL;
		return r;
	}
	if (ctx->opt.one_shot)
		return CUSTODY_OK;
	if ((r = custody_store_changed(ctx->store, &changed, err)) !=
	    CUSTODY_OK) {
		custody_store_close(ctx->store);
		ctx->store = NULL;
	}
	return r;
}

/* The generation of the store: moves when the store changed. */
static int
store_generation(custody_ctx *ctx, uint64_t *gen, custody_err *err)
{
	int changed = 0, r;

	pthread_mutex_lock(&ctx->store_mx);
	if ((r = store_start(ctx, err)) == CUSTODY_OK &&
	    (r = custody_store_changed(ctx->store, &changed, err)) ==
	    CUSTODY_OK && changed)
		ctx->store_gen++;
	*gen = ctx->store_gen;
	pthread_mutex_unlock(&ctx->store_mx);
	return r;
}

/* The store's record of (type, identity), under the store's lock: the
 * reader of custody_assign_lookup. */
static int
read_record(void *ctx_, const char *type, const char *identity,
	    custody_assignment *out, custody_err *err)
{
	custody_ctx *ctx = ctx_;
	int r;

	pthread_mutex_lock(&ctx->store_mx);
	if ((r = store_start(ctx, err)) == CUSTODY_OK)
		r = custody_store_get_assignment(ctx->store, type, identity,
						 out, err);
	pthread_mutex_unlock(&ctx->store_mx);
	return r;
}

/* The signer's assignment as stored (custody_assign_lookup: at its
 * identity, or this node's, else the global one). */
static int
load_record(custody_signer *sg, custody_assignment *out, custody_err *err)
{
	return custody_assign_lookup(sg->type, sg->identity, sg->ctx->node,
				     read_record, sg->ctx, out, err);
}

/* ---------------------------------------------------------- the signer */

void
custody_signer_close(custody_signer *signer)
{
	if (signer == NULL)
		return;
	pthread_mutex_destroy(&signer->mx);
	free(signer);
}

int
custody_signer_open(custody_ctx *ctx, const char *type, const char *identity,
		    custody_signer **out, custody_err *err)
{
	custody_signer *sg = NULL;
	uint64_t gen = 0;
	int r = CUSTODY_EFAIL;

	if (out != NULL)
		*out = NULL;
	if (ctx == NULL || out == NULL || type == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot open a signer: no context or type");
		goto out;
	}
	if ((sg = calloc(1, sizeof(*sg))) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot open a signer: out of memory");
		goto out;
	}
	pthread_mutex_init(&sg->mx, NULL);
	sg->ctx = ctx;
	if ((r = custody_type_canonical(type, sg->type, NULL, err)) !=
	    CUSTODY_OK ||
	    (identity != NULL &&
	     (r = custody_identity_canonical(identity, sg->identity, err)) !=
	     CUSTODY_OK))
		goto out;
	if (ctx->agent != NULL) {
		if ((r = sign_agent_open(ctx->agent, sg->type, sg->identity,
					 err)) != CUSTODY_OK)
			goto out;
		*out = sg;
		sg = NULL;
		goto out;
	}
	/* The baseline first: a change after it is seen by the next look. */
	if ((!ctx->opt.one_shot &&
	     (r = store_generation(ctx, &gen, err)) != CUSTODY_OK) ||
	    (r = load_record(sg, &sg->rec, err)) != CUSTODY_OK)
		goto out;
	sg->gen = gen;
	*out = sg;
	sg = NULL;
	r = CUSTODY_OK;
out:
	custody_signer_close(sg);
	return r;
}

/*
 * The assignment resolved at now (the record read again when the store
 * changed), and the identity it is assigned at.  ENOTFOUND when nothing
 * is current at now.
 */
static int
resolve(custody_signer *sg, int64_t now, custody_assignment *out,
	custody_err *err)
{
	custody_assignment rec;
	uint64_t gen = 0;
	int reload, r;

	if (!sg->ctx->opt.one_shot &&
	    (r = store_generation(sg->ctx, &gen, err)) != CUSTODY_OK)
		return r;
	pthread_mutex_lock(&sg->mx);
	reload = gen != sg->gen;
	rec = sg->rec;
	pthread_mutex_unlock(&sg->mx);
	if (reload) {
		/* Removed (ENOTFOUND): rec is left empty, and remembered. */
		r = load_record(sg, &rec, err);
		if (r != CUSTODY_OK && r != CUSTODY_ENOTFOUND)
			return r;
		pthread_mutex_lock(&sg->mx);
		sg->rec = rec;
		sg->gen = gen;
		pthread_mutex_unlock(&sg->mx);
	}
	return custody_assign_current_at(&rec, now, out, err);
}

/* The store's record of a certificate, checked against the certificate
 * it holds: its key id is the one looked for on the token. */
static int
stored_cert(custody_signer *sg, const char *thumbprint,
	    custody_cert_record *out, custody_err *err)
{
	custody_ctx *ctx = sg->ctx;
	int r;

	pthread_mutex_lock(&ctx->store_mx);
	r = custody_store_get_cert(ctx->store, thumbprint, out, err);
	pthread_mutex_unlock(&ctx->store_mx);
	if (r != CUSTODY_OK)
		return r;
	if ((r = custody_cert_record_check(out, NULL, err)) != CUSTODY_OK)
		custody_err_prefix(err, "cannot sign for %s", sg->type);
	return r;
}

/* Key id and algorithm of the certificate, kept after the first read
 * (and its check). */
static int
cert_facts(custody_signer *sg, const char *thumbprint, struct cert_facts *out,
	   custody_err *err)
{
	custody_cert_record rec;
	size_t i;
	int found = 0, r;

	pthread_mutex_lock(&sg->mx);
	for (i = 0; i < CERT_CACHE; i++) {
		if (strcmp(sg->certs[i].thumbprint, thumbprint) == 0) {
			*out = sg->certs[i];
			found = 1;
			break;
		}
	}
	pthread_mutex_unlock(&sg->mx);
	if (found)
		return CUSTODY_OK;
	memset(&rec, 0, sizeof(rec));
	r = stored_cert(sg, thumbprint, &rec, err);
	if (r == CUSTODY_ENOTFOUND) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot sign with certificate %s of type "
				    "%s: it is assigned but not in the store",
				    thumbprint, sg->type);
		goto out;
	}
	if (r != CUSTODY_OK)
		goto out;
	memset(out, 0, sizeof(*out));
	memcpy(out->thumbprint, rec.thumbprint, sizeof(out->thumbprint));
	memcpy(out->key_id, rec.key_id, sizeof(out->key_id));
	memcpy(out->key_algorithm, rec.key_algorithm,
	       sizeof(out->key_algorithm));
	pthread_mutex_lock(&sg->mx);
	sg->certs[sg->next_cert] = *out;
	sg->next_cert = (sg->next_cert + 1) % CERT_CACHE;
	pthread_mutex_unlock(&sg->mx);
	r = CUSTODY_OK;
out:
	custody_cert_record_clear(&rec);
	return r;
}

/* The agent resolves at the present time only: `now` 0, or the clock
 * read by a caller a moment ago (AGENT_PRESENT_SLACK seconds). */
#define AGENT_PRESENT_SLACK 2

static int
agent_refuses_at(int64_t now, custody_err *err)
{
	int64_t d = now - clock_now();

	if (now == 0 || (d >= -AGENT_PRESENT_SLACK && d <= AGENT_PRESENT_SLACK))
		return CUSTODY_OK;
	return custody_err_set(err, CUSTODY_EUSAGE,
			       "the agent signs at the present time; --at "
			       "needs the token (--agent none)");
}

static int
agent_slot_cert(custody_signer *sg, int64_t now, int which,
		custody_cert_record *out, custody_err *err)
{
	int r;

	if ((r = agent_refuses_at(now, err)) != CUSTODY_OK)
		return r;
	return sign_agent_cert(sg->ctx->agent, sg->type, sg->identity, which,
			       out, err);
}

int
custody_signer_current(custody_signer *signer, int64_t now,
		       custody_cert_record *out, custody_err *err)
{
	custody_assignment a;
	int r;

	if (signer == NULL || out == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot read the current certificate: "
				       "no signer or no record");
	memset(out, 0, sizeof(*out));
	if (signer->ctx->agent != NULL)
		return agent_slot_cert(signer, now, CUSTODY_SLOT_CURRENT, out,
				       err);
	if ((r = resolve(signer, now != 0 ? now : clock_now(), &a, err)) !=
	    CUSTODY_OK)
		return r;
	if ((r = stored_cert(signer, a.current.thumbprint, out, err)) !=
	    CUSTODY_OK)
		custody_cert_record_clear(out);
	return r;
}

int
custody_signer_slot_cert(custody_signer *signer, int64_t now, int which,
			 custody_cert_record *out, custody_err *err)
{
	custody_assignment a;
	const custody_slot *slot;
	int r;

	if (signer == NULL || out == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot read a certificate: no signer or "
				       "no record");
	memset(out, 0, sizeof(*out));
	if (signer->ctx->agent != NULL)
		return agent_slot_cert(signer, now, which, out, err);
	if (which == CUSTODY_SLOT_CURRENT)
		return custody_signer_current(signer, now, out, err);
	if (which != CUSTODY_SLOT_PREVIOUS && which != CUSTODY_SLOT_PENDING)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot read a certificate: unknown "
				       "slot %d", which);
	r = resolve(signer, now != 0 ? now : clock_now(), &a, err);
	if (r == CUSTODY_ENOTFOUND) {
		/* Nothing current (a pending roll only): the record as is. */
		pthread_mutex_lock(&signer->mx);
		a = signer->rec;
		pthread_mutex_unlock(&signer->mx);
	} else if (r != CUSTODY_OK) {
		return r;
	}
	slot = which == CUSTODY_SLOT_PREVIOUS ? &a.previous : &a.pending;
	if (slot->thumbprint[0] == '\0')
		return custody_err_set(err, CUSTODY_ENOTFOUND,
				       "no %s certificate is assigned for type "
				       "%s", custody_slot_label(which),
				       signer->type);
	if ((r = stored_cert(signer, slot->thumbprint, out, err)) !=
	    CUSTODY_OK)
		custody_cert_record_clear(out);
	return r;
}

int
custody_ctx_audit_append(custody_ctx *ctx, const struct custody_audit_entry *draft,
			 custody_err *err)
{
	int r;

	if (ctx->agent != NULL)
		return custody_err_set(err, CUSTODY_EUSAGE, "cannot write the "
				       "audit log through the agent: this context "
				       "has no store");
	pthread_mutex_lock(&ctx->store_mx);
	if ((r = store_start(ctx, err)) == CUSTODY_OK &&
	    (r = custody_store_begin(ctx->store, err)) == CUSTODY_OK) {
		if ((r = custody_audit_append(ctx->store, draft, err)) == CUSTODY_OK)
			r = custody_store_commit(ctx->store, err);
		else
			custody_store_rollback(ctx->store);
	}
	pthread_mutex_unlock(&ctx->store_mx);
	return r;
}

int
custody_signer_assignment(custody_signer *signer, int64_t now,
			  custody_assignment *out, custody_err *err)
{
	int r;

	if (signer == NULL || out == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE, "cannot read an "
				       "assignment: no signer");
	memset(out, 0, sizeof(*out));
	if (signer->ctx->agent != NULL)
		return custody_err_set(err, CUSTODY_EUSAGE, "cannot read an "
				       "assignment through the agent: it serves "
				       "certificates and signatures");
	r = resolve(signer, now != 0 ? now : clock_now(), out, err);
	if (r != CUSTODY_ENOTFOUND)
		return r;
	/* Nothing current (a pending roll only): the record as is. */
	pthread_mutex_lock(&signer->mx);
	*out = signer->rec;
	pthread_mutex_unlock(&signer->mx);
	if (custody_assign_is_empty(out))
		return custody_err_set(err, CUSTODY_ENOTFOUND, "no certificate is "
				       "assigned for type %s", signer->type);
	custody_err_clear(err);
	return CUSTODY_OK;
}

static const EVP_MD *
digest_of(const custody_ctx *ctx, int nid)
{
	switch (nid) {
	case NID_sha256: return ctx->md256;
	case NID_sha384: return ctx->md384;
	case NID_sha512: return ctx->md512;
	default: return NULL;
	}
}

/* The scheme for a key type (AUTO follows the key); EFAIL when the asked
 * one does not fit. */
static int
choose_scheme(enum custody_sig_scheme asked, CK_KEY_TYPE kt,
	      const char *key_id, enum custody_sig_scheme *used,
	      enum token_mech *mech, custody_err *err)
{
	int rsa = kt == CKK_RSA;

	if (asked == CUSTODY_SIG_AUTO)
		asked = rsa ? CUSTODY_SIG_RSA_PKCS1 : CUSTODY_SIG_ECDSA_DER;
	*used = asked;
	switch (asked) {
	case CUSTODY_SIG_RSA_PKCS1:
	case CUSTODY_SIG_RSA_PSS:
		*mech = asked == CUSTODY_SIG_RSA_PSS ? TOKEN_MECH_RSA_PSS
						     : TOKEN_MECH_RSA_PKCS;
		if (rsa)
			return CUSTODY_OK;
		break;
	case CUSTODY_SIG_ECDSA_DER:
	case CUSTODY_SIG_ECDSA_RAW:
		*mech = TOKEN_MECH_ECDSA;
		if (!rsa)
			return CUSTODY_OK;
		break;
	default:
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot sign: unknown signature scheme "
				       "%d", (int)asked);
	}
	return custody_err_set(err, CUSTODY_EFAIL,
			       "cannot sign with private key %s: it is an %s "
			       "key, and scheme %s needs an %s key", key_id,
			       rsa ? "RSA" : "EC",
			       custody_sig_scheme_name(asked),
			       rsa ? "EC" : "RSA");
}

/* A key the token does not have: EFAIL (ENOTFOUND is "nothing assigned"). */
static int
key_missing(custody_signer *sg, const struct cert_facts *cf, custody_err *err)
{
	if (err == NULL)
		return CUSTODY_EFAIL;
	err->code = CUSTODY_EFAIL;
	custody_err_hint(err, "certificate %s is current for %s; import its "
			 "key on this node's token (custody import)",
			 cf->thumbprint, sg->type);
	return CUSTODY_EFAIL;
}

/* Finds, signs, and when the token says the handle went away (the key
 * was deleted, or deleted and imported again), finds once more. */
static int
sign_in_token(custody_signer *sg, const struct cert_facts *cf,
	      enum custody_sig_scheme scheme, int digest_nid,
	      const unsigned char *md, size_t md_len, unsigned char *buf,
	      size_t room, size_t *len, enum custody_sig_scheme *used,
	      CK_KEY_TYPE *kt, custody_err *err)
{
	custody_ctx *ctx = sg->ctx;
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	struct token_key key;
	enum token_mech mech = TOKEN_MECH_RSA_PKCS;
	int have_key = 0, taken = 0, attempt, r;
	CK_RV rv = CKR_OK;

	if ((r = session_take(ctx, cf->key_id, &s, &key, &have_key, err)) !=
	    CUSTODY_OK)
		goto out;
	taken = 1;
	for (attempt = 0; attempt < 2; attempt++) {
		if (!have_key) {
			r = token_key_find(ctx->tok, s, cf->key_id, &key, err);
			if (r == CUSTODY_ENOTFOUND)
				r = key_missing(sg, cf, err);
			if (r != CUSTODY_OK)
				goto out;
			key_cache_put(ctx, cf->key_id, &key);
			have_key = 1;
		}
		if ((r = choose_scheme(scheme, key.type, cf->key_id, used,
				       &mech, err)) != CUSTODY_OK)
			goto out;
		if (TOKEN_SIG_ROOM(&key) > room) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot sign with private key %s: "
					    "its signatures are too long (%zu "
					    "bytes)", cf->key_id, key.sig_len);
			goto out;
		}
		r = token_sign_digest(ctx->tok, s, &key, cf->key_id, mech,
				      digest_nid, md, md_len, buf, len, &rv,
				      err);
		if (r == CUSTODY_OK || attempt > 0 ||
		    (rv != CKR_KEY_HANDLE_INVALID &&
		     rv != CKR_OBJECT_HANDLE_INVALID))
			break;
		key_cache_put(ctx, cf->key_id, NULL);
		have_key = 0;
	}
	*kt = key.type;
out:
	if (taken)
		session_give(ctx, s);
	return r;
}

/* custody_signer_sign (pinned NULL: the certificate current at now) and
 * custody_signer_sign_pinned (the certificate pinned). */
static int
sign_common(custody_signer *signer, const char *pinned, int64_t now,
	    enum custody_sig_scheme scheme, int digest_nid,
	    const unsigned char *data, size_t len, int is_digest,
	    unsigned char **sig, size_t *sig_len,
	    custody_signature_info *info, custody_err *err)
{
	custody_assignment a;
	struct cert_facts cf;
	const EVP_MD *md;
	unsigned char digest[EVP_MAX_MD_SIZE], buf[1024 + 32], *out = NULL;
	unsigned int md_len = 0;
	size_t raw_len = 0, out_len = 0;
	enum custody_sig_scheme used = scheme;
	CK_KEY_TYPE kt = CKK_RSA;
	int r = CUSTODY_EFAIL;

	if (sig != NULL)
		*sig = NULL;
	if (sig_len != NULL)
		*sig_len = 0;
	if (signer == NULL || sig == NULL || sig_len == NULL ||
	    (data == NULL && len > 0)) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot sign: no signer, data or output");
		goto out;
	}
	if ((md = digest_of(signer->ctx, digest_nid)) == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot sign: digest %s is not supported "
				    "(SHA-256, SHA-384 or SHA-512)",
				    OBJ_nid2sn(digest_nid) != NULL
					    ? OBJ_nid2sn(digest_nid) : "?");
		goto out;
	}
	if (is_digest) {
		md_len = (unsigned int)EVP_MD_get_size(md);
		if (len != md_len) {
			r = custody_err_set(err, CUSTODY_EUSAGE,
					    "cannot sign: a SHA-%u digest is %u "
					    "bytes, not %zu", md_len * 8, md_len,
					    len);
			goto out;
		}
		memcpy(digest, data, len);
	} else if (!EVP_Digest(data, len, digest, &md_len, md, NULL)) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot sign: the digest failed");
		goto out;
	}
	if (signer->ctx->agent != NULL) {
		if (pinned == NULL &&
		    (r = agent_refuses_at(now, err)) != CUSTODY_OK)
			goto out;
		r = sign_agent_sign(signer->ctx->agent, signer->type,
				    signer->identity, pinned, scheme,
				    digest_nid, digest, md_len, sig, sig_len,
				    info, err);
		goto out;
	}
	memset(&a, 0, sizeof(a));
	if (pinned == NULL &&
	    (r = resolve(signer, now != 0 ? now : clock_now(), &a, err)) !=
	    CUSTODY_OK)
		goto out;
	if ((r = cert_facts(signer, pinned != NULL ? pinned :
			    a.current.thumbprint, &cf, err)) !=
	    CUSTODY_OK ||
	    (r = sign_in_token(signer, &cf, scheme, digest_nid, digest, md_len,
			       buf, sizeof(buf), &raw_len, &used, &kt, err)) !=
	    CUSTODY_OK)
		goto out;
	if (used == CUSTODY_SIG_ECDSA_DER) {
		unsigned char der[sizeof(buf)];

		if ((out_len = custody_ecdsa_raw_to_der(buf, raw_len, der)) == 0) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot sign with private key %s: "
					    "the token returned an ECDSA "
					    "signature of %zu bytes", cf.key_id,
					    raw_len);
			goto out;
		}
		memcpy(buf, der, out_len);
	} else {
		out_len = raw_len;
	}
	if ((out = malloc(out_len)) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot sign: out of memory");
		goto out;
	}
	memcpy(out, buf, out_len);
	*sig = out;
	*sig_len = out_len;
	if (info != NULL) {
		memset(info, 0, sizeof(*info));
		memcpy(info->thumbprint, cf.thumbprint, sizeof(info->thumbprint));
		memcpy(info->key_id, cf.key_id, sizeof(info->key_id));
		memcpy(info->key_algorithm, cf.key_algorithm,
		       sizeof(info->key_algorithm));
		memcpy(info->identity, a.identity, sizeof(info->identity));
		info->scheme = used;
		info->digest_nid = digest_nid;
	}
	r = CUSTODY_OK;
out:
	OPENSSL_cleanse(digest, sizeof(digest));
	return r;
}

int
custody_signer_sign(custody_signer *signer, int64_t now,
		    enum custody_sig_scheme scheme, int digest_nid,
		    const unsigned char *data, size_t len, int is_digest,
		    unsigned char **sig, size_t *sig_len,
		    custody_signature_info *info, custody_err *err)
{
	return sign_common(signer, NULL, now, scheme, digest_nid, data, len,
			   is_digest, sig, sig_len, info, err);
}

int
custody_signer_sign_pinned(custody_signer *signer, const char *thumbprint,
			   enum custody_sig_scheme scheme, int digest_nid,
			   const unsigned char *data, size_t len,
			   int is_digest, unsigned char **sig,
			   size_t *sig_len, custody_signature_info *info,
			   custody_err *err)
{
	if (thumbprint == NULL || strlen(thumbprint) != CUSTODY_THUMBPRINT_HEX) {
		if (sig != NULL)
			*sig = NULL;
		if (sig_len != NULL)
			*sig_len = 0;
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot sign: no certificate thumbprint "
				       "to sign with");
	}
	return sign_common(signer, thumbprint, 0, scheme, digest_nid, data,
			   len, is_digest, sig, sig_len, info, err);
}
