/*
 * sign/keyref.c — a certificate type name as an OpenSSL key (see
 * custody/keyref.h): configuration as the `custody` command settles it,
 * resolution through the store at the current time, the token's key
 * through libp11 (token/evp.c).  With an agent configured (agent.socket,
 * CUSTODY_AGENT) neither store nor token: certificates come from the
 * agent, and keys sign through it (agent_evp.c).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <custody/assign.h>
#include <custody/cert.h>
#include <custody/config.h>
#include <custody/integrity.h>
#include <custody/keyref.h>
#include <custody/log.h>
#include <custody/policy.h>
#include <custody/records.h>
#include <custody/secret.h>
#include <custody/signer.h>
#include <custody/store.h>
#include <custody/token.h>

#include "sign/internal.h"

#define N_SETTINGS (CUSTODY_KEYREF_NODE + 1)

struct custody_keyref {
	char *set[N_SETTINGS];		/* values given; NULL: not given */
	custody_token *tok;		/* opened by the first key load   */
	char *tok_module, *tok_label, *tok_uri;	/* what tok was opened with */
	custody_token_evp **keys;	/* every key handed out, in order */
	size_t n_keys, cap_keys;
	/* With an agent: one signing context, and a signer and method
	 * state for each key handed out (freed by custody_keyref_free). */
	custody_ctx *agent_ctx;
	struct agent_held {
		custody_signer *signer;
		void *state;
	} *held;
	size_t n_held, cap_held;
};

/* What one load works with. */
struct settled {
	custody_config cfg;
	char node[CUSTODY_NAME_MAX + 1];
};

/* What a key reference names. */
struct refname {
	char type[CUSTODY_NAME_MAX + 1];
	char identity[CUSTODY_NAME_MAX + 1];	/* "" = this node, else global */
};

int
custody_keyref_new(custody_keyref **out, custody_err *err)
{
	if ((*out = calloc(1, sizeof(**out))) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot make a key reference context: out "
				       "of memory");
	return CUSTODY_OK;
}

/* Applies one given value to cfg, as the command line would. */
static int
apply_setting(custody_config *cfg, enum custody_keyref_setting what,
	      const char *value, custody_err *err)
{
	switch (what) {
	case CUSTODY_KEYREF_MODULE:
		return custody_config_set(cfg, "token", "module", value, err);
	case CUSTODY_KEYREF_TOKEN:
		return custody_config_set(cfg, "token",
					  strncmp(value, "pkcs11:", 7) == 0 ?
					  "uri" : "label", value, err);
	case CUSTODY_KEYREF_PIN_SOURCE:
		return custody_config_set(cfg, "token", "pin-source", value,
					  err);
	case CUSTODY_KEYREF_STORE:
		return custody_config_set(cfg, "store", "url", value, err);
	case CUSTODY_KEYREF_NODE:
		return custody_config_set(cfg, "node", "name", value, err);
	default:
		return CUSTODY_OK;	/* CONFIG is a path: read at load */
	}
}

static const char *
setting_name(enum custody_keyref_setting what)
{
	static const char *const names[N_SETTINGS] = {
		"config", "module", "token", "pin-source", "store", "node",
	};

	return (unsigned)what < N_SETTINGS ? names[what] : "setting";
}

static int
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* A setting that may be given now: known, not changing an open token,
 * and one the config accepts (tried on a scratch config). */
static int
check_setting(const custody_keyref *kr, enum custody_keyref_setting what,
	      const char *value, custody_err *err)
{
	custody_config scratch;
	int r;

	if ((unsigned)what >= N_SETTINGS)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "unknown key reference setting %d",
				       (int)what);
	if (kr->tok != NULL &&
	    (what == CUSTODY_KEYREF_MODULE || what == CUSTODY_KEYREF_TOKEN) &&
	    !same(kr->set[what], value))
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot change the %s: token %s is open "
				       "(a key was loaded from it)",
				       setting_name(what),
				       custody_token_label(kr->tok));
	if (value == NULL)
		return CUSTODY_OK;
	custody_config_init(&scratch);
	r = apply_setting(&scratch, what, value, err);
	custody_config_clear(&scratch);
	return r;
}

int
custody_keyref_set(custody_keyref *kr, enum custody_keyref_setting what,
		   const char *value, custody_err *err)
{
	char *copy = NULL;
	int r;

	if ((r = check_setting(kr, what, value, err)) != CUSTODY_OK)
		return r;
	if (value != NULL && (copy = strdup(value)) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot set the %s: out of memory",
				       setting_name(what));
	free(kr->set[what]);
	kr->set[what] = copy;
	return CUSTODY_OK;
}

/* File < environment < given values, as the `custody` command. */
static int
settle(const custody_keyref *kr, struct settled *s, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	int i;

	if ((r = custody_config_settle(&s->cfg, kr->set[CUSTODY_KEYREF_CONFIG],
				       err)) != CUSTODY_OK)
		return r;
	for (i = 0; i < N_SETTINGS; i++) {
		if (kr->set[i] != NULL &&
		    (r = apply_setting(&s->cfg, (enum custody_keyref_setting)i,
				       kr->set[i], err)) != CUSTODY_OK)
			return r;
	}
	r = custody_config_node_name(s->cfg.node_name, s->node, err);
	return r;
}

/* "Type" or "Type@identity". */
static int
parse_name(const char *name, struct refname *rn, custody_err *err)
{
	char type[CUSTODY_NAME_MAX + 2];
	const char *at;
	size_t len;
	int r = CUSTODY_EUSAGE;

	memset(rn, 0, sizeof(*rn));
	if (name == NULL || name[0] == '\0')
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "no key reference given: name a "
				       "certificate type (Type or Type@identity)");
	at = strchr(name, '@');
	len = at != NULL ? (size_t)(at - name) : strlen(name);
	if (len >= sizeof(type))
		len = sizeof(type) - 1;	/* too long: canonical refuses it */
	memcpy(type, name, len);
	type[len] = '\0';
	if ((r = custody_type_canonical(type, rn->type, NULL, err)) !=
	    CUSTODY_OK)
		return r;
	if (at != NULL &&
	    (r = custody_identity_canonical(at + 1, rn->identity, err)) !=
	    CUSTODY_OK)
		return r;
	return CUSTODY_OK;
}

int
custody_keyref_parse(const char *name, char type[CUSTODY_NAME_MAX + 1],
		     char identity[CUSTODY_NAME_MAX + 1], custody_err *err)
{
	struct refname rn;
	int r;

	if ((r = parse_name(name, &rn, err)) != CUSTODY_OK)
		return r;
	memcpy(type, rn.type, sizeof(rn.type));
	memcpy(identity, rn.identity, sizeof(rn.identity));
	return CUSTODY_OK;
}

int
custody_keyref_ctx_new(const custody_keyref *kr,
		       const custody_ctx_options *options, custody_ctx **out,
		       custody_err *err)
{
	struct settled s;
	int r;

	*out = NULL;
	custody_config_init(&s.cfg);
	if ((r = settle(kr, &s, err)) == CUSTODY_OK)
		r = custody_ctx_new_with(&s.cfg, s.node, options, out, err);
	custody_config_clear(&s.cfg);
	return r;
}

/* custody_store_get_assignment as the reader of custody_assign_lookup. */
static int
read_stored(void *store, const char *type, const char *identity,
	    custody_assignment *out, custody_err *err)
{
	return custody_store_get_assignment(store, type, identity, out, err);
}

/* The thumbprint in slot `which` (enum custody_slot_name) of the stored
 * assignment resolved now; ENOTFOUND naming the slot when it is empty. */
static int
slot_thumbprint(const custody_assignment *stored, const char *type,
		int which, char tp[CUSTODY_THUMBPRINT_HEX + 1],
		custody_err *err)
{
	custody_assignment a;
	const custody_slot *slot;
	int r;

	r = custody_assign_current_at(stored, (int64_t)time(NULL), &a, err);
	if (r == CUSTODY_ENOTFOUND && which != CUSTODY_SLOT_CURRENT)
		a = *stored;	/* nothing current: the record as it is */
	else if (r != CUSTODY_OK)
		return r;
	slot = which == CUSTODY_SLOT_PREVIOUS ? &a.previous :
	       which == CUSTODY_SLOT_PENDING ? &a.pending : &a.current;
	if (slot->thumbprint[0] == '\0')
		return custody_err_set(err, CUSTODY_ENOTFOUND,
				       "no %s certificate is assigned for type "
				       "%s", custody_slot_label(which), type);
	memcpy(tp, slot->thumbprint, CUSTODY_THUMBPRINT_HEX + 1);
	return CUSTODY_OK;
}

/* The store's record of the certificate in slot `which` now for rn. */
static int
resolve(const struct settled *s, const struct refname *rn,
	custody_token *tok, int which, custody_cert_record *rec,
	custody_err *err)
{
	custody_store *st = NULL;
	custody_assignment stored;
	char tp[CUSTODY_THUMBPRINT_HEX + 1];
	int r = CUSTODY_EFAIL;

	if ((r = custody_store_open_existing(custody_config_store_url(&s->cfg), &st,
				    err)) != CUSTODY_OK) {
		if (s->cfg.store_url == NULL)
			custody_err_hint(err, "choose a store with "
					 "CUSTODY_STORE or store.url");
		goto out;
	}
	/* With the token open, what the store says is checked against its
	 * integrity tags (custody/integrity.h) as it is read. */
	if (tok != NULL && (r = custody_integrity_attach(st, tok, err)) !=
	    CUSTODY_OK)
		goto out;
	r = custody_assign_lookup(rn->type, rn->identity, s->node, read_stored,
				  st, &stored, err);
	if (r == CUSTODY_ENOTFOUND && rn->identity[0] == '\0') {
		/* Both identities were looked at: the message says so. */
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "no certificate is assigned for type %s "
				    "(identity %s or %s)", rn->type, s->node,
				    CUSTODY_SCOPE_GLOBAL);
		goto out;
	}
	if (r != CUSTODY_OK ||
	    (r = slot_thumbprint(&stored, rn->type, which, tp, err)) !=
	    CUSTODY_OK)
		goto out;
	if ((r = custody_store_get_cert(st, tp, rec, err)) != CUSTODY_OK) {
		custody_err_prefix(err, "certificate %s, %s for type %s", tp,
				   custody_slot_label(which), rn->type);
		goto out;
	}
	custody_debug("%s resolves to certificate %s (key id %s)", rn->type,
		      rec->thumbprint, rec->key_id);
	r = CUSTODY_OK;
out:
	custody_store_close(st);
	return r;
}

/* Settles the configuration and resolves name; rec is the caller's. */
static int agent_resolve(custody_keyref *kr, const struct settled *s,
			 const struct refname *rn, int which,
			 custody_signer **keep, custody_cert_record *rec,
			 custody_err *err);

static int
settle_and_resolve(custody_keyref *kr, const char *name, int which,
		   struct settled *s, custody_cert_record *rec,
		   custody_err *err)
{
	struct refname rn;
	int r;

	if ((r = parse_name(name, &rn, err)) != CUSTODY_OK ||
	    (r = settle(kr, s, err)) != CUSTODY_OK)
		return r;
	if (custody_config_agent_socket(&s->cfg) != NULL)
		return agent_resolve(kr, s, &rn, which, NULL, rec, err);
	return resolve(s, &rn, NULL, which, rec, err);
}

/* ------------------------------------------------------ through the agent */

/* kr's signing context through the agent (made at the first use). */
static int
agent_ctx(custody_keyref *kr, const struct settled *s, custody_err *err)
{
	if (kr->agent_ctx != NULL)
		return CUSTODY_OK;
	return custody_ctx_new_with(&s->cfg, s->node, NULL, &kr->agent_ctx,
				    err);
}

/* The record of the certificate in slot `which` of rn, from the agent. */
static int
agent_resolve(custody_keyref *kr, const struct settled *s,
	      const struct refname *rn, int which, custody_signer **keep,
	      custody_cert_record *rec, custody_err *err)
{
	custody_signer *sg = NULL;
	int r;

	if ((r = agent_ctx(kr, s, err)) != CUSTODY_OK ||
	    (r = custody_signer_open(kr->agent_ctx, rn->type,
				     rn->identity[0] != '\0' ? rn->identity :
				     NULL, &sg, err)) != CUSTODY_OK ||
	    (r = custody_signer_slot_cert(sg, 0, which, rec, err)) !=
	    CUSTODY_OK)
		goto out;
	if (keep != NULL) {
		*keep = sg;
		sg = NULL;
	}
out:
	custody_signer_close(sg);
	return r;
}

/* A key that signs through the agent with the current certificate's key
 * (pinned to it); kr keeps its signer and state. */
static int
agent_load_key(custody_keyref *kr, const struct settled *s,
	       const struct refname *rn, EVP_PKEY **pkey, X509 **cert,
	       custody_err *err)
{
	custody_cert_record rec;
	custody_signer *sg = NULL;
	struct agent_held *grown;
	void *state = NULL;
	X509 *x = NULL;
	int r;

	memset(&rec, 0, sizeof(rec));
	if (kr->n_held == kr->cap_held) {
		size_t cap = kr->cap_held > 0 ? 2 * kr->cap_held : 4;

		if ((grown = realloc(kr->held, cap * sizeof(*grown))) == NULL) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot keep the key: out of memory");
			goto out;
		}
		kr->held = grown;
		kr->cap_held = cap;
	}
	if ((r = agent_resolve(kr, s, rn, CUSTODY_SLOT_CURRENT, &sg, &rec,
			       err)) != CUSTODY_OK ||
	    (r = custody_cert_record_check(&rec, &x, err)) != CUSTODY_OK ||
	    (r = sign_agent_evp(sg, rec.thumbprint, x, &state, pkey, err)) !=
	    CUSTODY_OK)
		goto out;
	kr->held[kr->n_held].signer = sg;
	kr->held[kr->n_held++].state = state;
	sg = NULL;
	if (cert != NULL) {
		*cert = x;
		x = NULL;
	}
	custody_debug("key %s: signs through the agent (certificate %s)",
		      rn->type, rec.thumbprint);
out:
	custody_signer_close(sg);
	X509_free(x);
	custody_cert_record_clear(&rec);
	return r;
}

int
custody_keyref_load_cert(custody_keyref *kr, const char *name, X509 **cert,
			 custody_err *err)
{
	return custody_keyref_load_slot_cert(kr, name, CUSTODY_SLOT_CURRENT,
					     cert, err);
}

int
custody_keyref_load_slot_cert(custody_keyref *kr, const char *name, int which,
			      X509 **cert, custody_err *err)
{
	struct settled s;
	custody_cert_record rec;
	int r = CUSTODY_EFAIL;

	*cert = NULL;
	memset(&rec, 0, sizeof(rec));
	custody_config_init(&s.cfg);
	if (which != CUSTODY_SLOT_CURRENT && which != CUSTODY_SLOT_PREVIOUS &&
	    which != CUSTODY_SLOT_PENDING) {
		r = custody_err_set(err, CUSTODY_EUSAGE, "unknown slot %d",
				    which);
		goto fail;
	}
	if ((r = settle_and_resolve(kr, name, which, &s, &rec, err)) !=
	    CUSTODY_OK ||
	    (r = custody_cert_record_check(&rec, cert, err)) != CUSTODY_OK)
		goto fail;
	r = CUSTODY_OK;
	goto out;
fail:
	custody_err_prefix(err, "cannot load the certificate of %s",
			   name != NULL ? name : "(none)");
out:
	custody_cert_record_clear(&rec);
	custody_config_clear(&s.cfg);
	return r;
}

static int
keep_string(char **slot, const char *value, custody_err *err)
{
	if (value == NULL)
		return CUSTODY_OK;
	if ((*slot = strdup(value)) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot open the token: out of memory");
	return CUSTODY_OK;
}

/* Opens the token and logs in with the PIN from the PIN source (first
 * key load); later loads check that the configuration still names it. */
static int
ensure_token(custody_keyref *kr, const custody_config *cfg, custody_err *err)
{
	const custody_token_spec spec = {
		.module = cfg->module, .label = cfg->token_label,
		.uri = cfg->token_uri, .lock_dir = cfg->lock_dir,
		.lock_timeout = cfg->lock_timeout,
	};
	custody_token *tok = NULL;
	int r = CUSTODY_EFAIL;

	if (kr->tok != NULL) {
		if (!same(kr->tok_module, cfg->module) ||
		    !same(kr->tok_label, cfg->token_label) ||
		    !same(kr->tok_uri, cfg->token_uri)) {
			r = custody_err_set(err, CUSTODY_EUSAGE,
					    "the configuration names another "
					    "token than the open token %s",
					    custody_token_label(kr->tok));
			goto out;
		}
		r = CUSTODY_OK;
		goto out;
	}
	if ((r = sign_token_login(&spec, cfg->pin_source,
				  "set CUSTODY_MODULE, token.module in the "
				  "config file, or the engine's MODULE",
				  "set CUSTODY_PIN_SOURCE=file:PATH|env:VAR|"
				  "fd:N|prompt, token.pin-source in the config "
				  "file, or the engine's PIN_SOURCE",
				  &tok, err)) != CUSTODY_OK ||
	    (r = keep_string(&kr->tok_module, cfg->module, err)) !=
	    CUSTODY_OK ||
	    (r = keep_string(&kr->tok_label, cfg->token_label, err)) !=
	    CUSTODY_OK ||
	    (r = keep_string(&kr->tok_uri, cfg->token_uri, err)) != CUSTODY_OK)
		goto out;
	kr->tok = tok;
	tok = NULL;
	r = CUSTODY_OK;
out:
	if (tok != NULL) {
		custody_token_close(tok);
		free(kr->tok_module);
		free(kr->tok_label);
		free(kr->tok_uri);
		kr->tok_module = kr->tok_label = kr->tok_uri = NULL;
	}
	return r;
}

/* Keeps evp until custody_keyref_free (closing one would close the
 * sessions of every other key: see token.h). */
static int
keep_key(custody_keyref *kr, custody_token_evp *evp, custody_err *err)
{
	custody_token_evp **grown;
	size_t cap;

	if (kr->n_keys == kr->cap_keys) {
		cap = kr->cap_keys > 0 ? 2 * kr->cap_keys : 4;
		if ((grown = realloc(kr->keys, cap * sizeof(*grown))) == NULL)
			return custody_err_set(err, CUSTODY_EFAIL,
					       "cannot keep the key: out of "
					       "memory");
		kr->keys = grown;
		kr->cap_keys = cap;
	}
	kr->keys[kr->n_keys++] = evp;
	return CUSTODY_OK;
}

/* The token's key of rec, kept by kr; *pkey is kr's (not a reference). */
static int
open_key(custody_keyref *kr, const custody_cert_record *rec, EVP_PKEY **pkey,
	 custody_err *err)
{
	custody_token_evp *evp = NULL;
	int present = 0, r = CUSTODY_EFAIL;

	/* Asked through tok's own session first: a failed libp11 open would
	 * close the sessions of the keys already handed out. */
	if ((r = custody_token_has_private_key(kr->tok, rec->key_id, &present,
					       err)) != CUSTODY_OK)
		return r;
	if (!present) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "no private key with key id %s on token %s",
				    rec->key_id, custody_token_label(kr->tok));
		custody_err_hint(err, "certificate %s is assigned, but its key "
				 "is not on this node's token: `custody sync` "
				 "brings it", rec->thumbprint);
		return r;
	}
	if ((r = custody_token_evp_open(kr->tok, rec->key_id, &evp, err)) !=
	    CUSTODY_OK)
		return r;
	if ((r = keep_key(kr, evp, err)) != CUSTODY_OK) {
		/* Not kept: closed at once (the rarest of failures). */
		custody_token_evp_close(evp);
		return r;
	}
	*pkey = custody_token_evp_pkey(evp);
	return CUSTODY_OK;
}

/* The token's key must be the certificate's key. */
static int
check_match(EVP_PKEY *pkey, X509 *cert, const custody_cert_record *rec,
	    custody_err *err)
{
	EVP_PKEY *pub = X509_get0_pubkey(cert);

	if (pub == NULL || EVP_PKEY_eq(pkey, pub) != 1) {
		ERR_clear_error();
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the private key with id %s does not match "
				       "certificate %s", rec->key_id,
				       rec->thumbprint);
	}
	return CUSTODY_OK;
}

int
custody_keyref_load_key(custody_keyref *kr, const char *name, EVP_PKEY **pkey,
			X509 **cert, custody_err *err)
{
	struct refname rn;
	struct settled s;
	custody_cert_record rec;
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	int r = CUSTODY_EFAIL;

	*pkey = NULL;
	if (cert != NULL)
		*cert = NULL;
	memset(&rec, 0, sizeof(rec));
	custody_config_init(&s.cfg);
	if ((r = parse_name(name, &rn, err)) != CUSTODY_OK ||
	    (r = settle(kr, &s, err)) != CUSTODY_OK)
		goto out;
	if (custody_config_agent_socket(&s.cfg) != NULL) {
		r = agent_load_key(kr, &s, &rn, pkey, cert, err);
		goto out;
	}
	if ((r = ensure_token(kr, &s.cfg, err)) != CUSTODY_OK ||
	    (r = resolve(&s, &rn, kr->tok, CUSTODY_SLOT_CURRENT, &rec, err)) !=
	    CUSTODY_OK ||
	    (r = custody_cert_record_check(&rec, &x, err)) != CUSTODY_OK ||
	    (r = open_key(kr, &rec, &key, err)) != CUSTODY_OK ||
	    (r = check_match(key, x, &rec, err)) != CUSTODY_OK)
		goto out;
	if (EVP_PKEY_up_ref(key) != 1) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot hand out the key: EVP_PKEY_up_ref "
				    "failed");
		goto out;
	}
	*pkey = key;
	if (cert != NULL) {
		*cert = x;
		x = NULL;
	}
	custody_debug("key %s: private key %s of token %s (certificate %s)",
		      name, rec.key_id, custody_token_label(kr->tok),
		      rec.thumbprint);
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK)
		custody_err_prefix(err, "cannot load the private key of %s",
				   name != NULL ? name : "(none)");
	X509_free(x);
	custody_cert_record_clear(&rec);
	custody_config_clear(&s.cfg);
	return r;
}

int
custody_keyref_token_is_open(const custody_keyref *kr)
{
	return kr != NULL && kr->tok != NULL;
}

void
custody_keyref_free(custody_keyref *kr)
{
	size_t i;
	int j;

	if (kr == NULL)
		return;
	/* Keys (and their libp11 contexts) before the token: token.h. */
	for (i = kr->n_keys; i > 0; i--)
		custody_token_evp_close(kr->keys[i - 1]);
	free(kr->keys);
	for (i = 0; i < kr->n_held; i++) {
		custody_signer_close(kr->held[i].signer);
		free(kr->held[i].state);
	}
	free(kr->held);
	custody_ctx_free(kr->agent_ctx);
	custody_token_close(kr->tok);
	free(kr->tok_module);
	free(kr->tok_label);
	free(kr->tok_uri);
	for (j = 0; j < N_SETTINGS; j++)
		free(kr->set[j]);
	free(kr);
}
