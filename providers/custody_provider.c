/*
 * custody_provider.c — the OpenSSL 3 provider "custody": a certificate
 * type, by name, as a key any OpenSSL program can sign with.
 *
 *   openssl x509 -provider custody -provider default -in custody:OAuthTokenIssuer
 *   openssl dgst -provider custody -provider default -sha256 \
 *       -sign custody:WebServicesInternal -out sig data
 *   openssl s_server -provider custody -provider default \
 *       -key custody:WebServicesInternal -cert custody:WebServicesInternal
 *
 * URI (store.c; parsed strictly, one form only):
 *   custody:TYPE            this node's assignment of TYPE, else the global one
 *   custody:TYPE@IDENTITY   the assignment at IDENTITY ("global" or a node)
 *   ...?which=current|previous|pending   a slot other than the current one
 * TYPE and IDENTITY are checked by libcustody (custody_keyref_parse: the
 * checks of every `custody` command).  No other query, no "//", no
 * fragment, no percent-escape.  A load yields the private key (a
 * reference: the key stays in the token), the public key and the
 * certificate (OSSL_STORE_INFO_PKEY, _PUBKEY, _CERT); a program that sets
 * what it expects (OSSL_STORE_expect: the openssl commands do) gets only
 * that.  A certificate or public key load reads the store only, as
 * `custody get` does (custody_keyref_load_slot_cert: no token, no PIN,
 * the certificate checked against the store's record of it, the rows'
 * integrity tags not checked: that needs the token).  A private key load
 * goes through the signer, which checks them with the token; OpenSSL
 * checks that a key and the certificate given with it match (s_server,
 * cms), so a tampered store cannot pair a foreign certificate with our
 * key.
 *
 * Configuration: the provider section of openssl.cnf may set config,
 * pkcs11_module, token, pin_source, store, node (the engine's control
 * commands CONFIG, MODULE, TOKEN, PIN_SOURCE, STORE, NODE, and the
 * `custody` command's options of the same names; "module" is taken by
 * OpenSSL for the provider's own file).  What it does not set comes from the config file
 * ($CUSTODY_CONFIG, else /etc/custody/custody.conf) and the CUSTODY_*
 * environment, exactly as custody/keyref.h settles them.  The PIN comes
 * from the PIN source only: OpenSSL's password callback is never used,
 * and "prompt" reads /dev/tty, failing without one (never a hang).
 *
 * Signing (signature.c) runs through libcustody's signer: one custody_ctx
 * per provider (one login, a pool of sessions, the store, the shared
 * token lock as a lease), made at the first private key load.  Not
 * libp11.
 *
 * With custody's agent configured (agent.socket in the config file, or
 * CUSTODY_AGENT) that signer and the certificate loads go through the
 * agent instead (custody/signer.h, "Agent"): the process needs no PIN
 * source, no module and no store, and the agent's allow list decides.
 *
 * A key object is PINNED to the certificate it resolved at load time
 * (custody_signer_sign_pinned): it signs with that certificate's key for
 * as long as it lives, even after `custody set` or a roll.  Why: a TLS
 * server loads its key and its certificate once, and they must change
 * together; the public key a key object exports (to match the
 * certificate: X509_check_private_key) must be the one it signs with.
 * Each new load resolves anew, so after `custody set` the next load (a
 * new process, a reload of the server) gets the new key and certificate.
 * A program that wants "whatever is current at each signature" uses the
 * signer itself (custody/signer.h, `custody sign`).  A private key load
 * signs one test digest with the token and verifies it with the
 * certificate: a key that is not on the token, or not the certificate's,
 * fails the load, not the first handshake.
 *
 * Fork: PKCS#11 sessions do not survive fork().  The signing context
 * remembers the pid it was made in; the first signature in a child finds
 * another pid, leaves the parent's context alone (its lease thread did
 * not survive the fork, and its sessions are the parent's: it is neither
 * used nor freed there) and makes a new one, which initialises the module
 * and logs in again with the PIN source.  Key objects reopen their signer
 * on it.  So a server that loads its key and then forks workers (Apache
 * httpd, nginx) signs in every worker.
 *
 * Threads: any number of threads may sign at once, with one key object or
 * several (the signer's session pool); the context is made under a mutex.
 *
 * Errors: one OpenSSL error entry per failure, with custody's message
 * (and hint) as its data and the provider's reason codes (custody's
 * status codes; PROV_R_* of internal.h).
 *
 * Beside the default provider (load it too: `-provider custody -provider
 * default`, or the example openssl.cnf): this provider's RSA and EC key
 * managers hold references only (no generation, no import).  OpenSSL 3.0
 * takes, for a fetch by name without properties (EVP_PKEY_CTX_new_from_name
 * "EC" for a TLS ECDHE share, `openssl genpkey`, libssl's list of groups),
 * the first provider that offers the name — its provider list is sorted
 * by name, "custody" before "default" — and its method cache hands every
 * later fetch by that name the key manager last fetched from a given
 * provider (each load and signature of ours fetches ours).  Measured with
 * 3.0.19: an EC s_server then failed TLS 1.2 ECDHE and TLS 1.3 P-256, and
 * genpkey failed.  So at load, unless FIPS mode is on, the provider sets
 * the library context's default property query to "?provider=default":
 * an optional preference, which never excludes an implementation and
 * never overrides a property query a program gives; with it, all of the
 * above work.  It replaces default_properties given earlier (an
 * openssl.cnf alg_section processed after the providers section sets it
 * again, and then must prefer the default provider itself).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/params.h>

#include <custody/log.h>

#include "providers/internal.h"

static OSSL_FUNC_core_new_error_fn *core_new_error;
static OSSL_FUNC_core_set_error_debug_fn *core_set_error_debug;
static OSSL_FUNC_core_vset_error_fn *core_vset_error;
static OSSL_FUNC_core_get_params_fn *core_get_params;
static OSSL_FUNC_core_get_libctx_fn *core_get_libctx;

/* ---- errors ----------------------------------------------------------- */

static const OSSL_ITEM reason_strings[] = {
	{CUSTODY_EFAIL, "custody: failed"},
	{CUSTODY_EUSAGE, "custody: bad name or configuration"},
	{CUSTODY_ENOTFOUND, "custody: not found"},
	{CUSTODY_ECONFLICT, "custody: conflict"},
	{CUSTODY_EPASSWORD, "custody: password"},
	{CUSTODY_EPIN, "custody: PIN refused or token locked"},
	{PROV_R_BAD_SIGNATURE_REQUEST, "custody: signature request refused"},
	{PROV_R_REFUSED_EXPORT, "custody: private key parts never leave the token"},
	{0, NULL},
};

static void
raise_v(const struct prov_ctx *prov, const char *file, int line,
	const char *func, int reason, const char *fmt, va_list ap)
{
	if (prov == NULL || core_new_error == NULL)
		return;
	core_new_error(prov->handle);
	core_set_error_debug(prov->handle, file, line, func);
	core_vset_error(prov->handle, reason, fmt, ap);
}

static void
raise_f(const struct prov_ctx *prov, const char *file, int line,
	const char *func, int reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	raise_v(prov, file, line, func, reason, fmt, ap);
	va_end(ap);
}

void
prov_raise_at(const struct prov_ctx *prov, const char *file, int line,
	      const char *func, const custody_err *err)
{
	int reason = err->code != CUSTODY_OK ? err->code : CUSTODY_EFAIL;

	if (err->hint[0] != '\0')
		raise_f(prov, file, line, func, reason, "%s (%s)", err->msg,
			err->hint);
	else
		raise_f(prov, file, line, func, reason, "%s", err->msg);
}

void
prov_raise_msg_at(const struct prov_ctx *prov, const char *file, int line,
		  const char *func, int reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	raise_v(prov, file, line, func, reason, fmt, ap);
	va_end(ap);
}

/* Library warnings (a PIN file others can read, ...) on stderr. */
static void
log_line(enum custody_log_level level, const char *line, void *ctx)
{
	(void)ctx;
	if (level == CUSTODY_LOG_WARN)
		fprintf(stderr, "custody provider: warning: %s\n", line);
}

/* ---- the signing context ---------------------------------------------- */

/*
 * Release at exit.  OpenSSL tears providers down in OPENSSL_cleanup, an
 * exit handler registered before the PKCS#11 module was loaded, so it
 * runs after the module's own destructors (SoftHSM then crashes in
 * C_CloseSession).  Once a context has opened its token (a signature, or
 * a store read that checked an integrity tag), an exit handler
 * registered then (so run before the module's destructors: last
 * registered, first run) frees every context of the process.
 */
static pthread_mutex_t live_mx = PTHREAD_MUTEX_INITIALIZER;
static struct prov_ctx *live[8];	/* providers (one per library ctx) */
static int exit_registered;

static void
release_at_exit(void)
{
	size_t i;

	pthread_mutex_lock(&live_mx);
	for (i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
		struct prov_ctx *prov = live[i];

		if (prov == NULL)
			continue;
		pthread_mutex_lock(&prov->mx);
		if (prov->cctx != NULL && prov->pid == getpid())
			custody_ctx_free(prov->cctx);
		prov->cctx = NULL;
		prov->released = 1;
		pthread_mutex_unlock(&prov->mx);
	}
	pthread_mutex_unlock(&live_mx);
}

static void
live_add(struct prov_ctx *prov)
{
	size_t i;

	pthread_mutex_lock(&live_mx);
	for (i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
		if (live[i] == NULL) {
			live[i] = prov;
			break;
		}
	}
	pthread_mutex_unlock(&live_mx);
}

static void
live_remove(struct prov_ctx *prov)
{
	size_t i;

	pthread_mutex_lock(&live_mx);
	for (i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (live[i] == prov)
			live[i] = NULL;
	pthread_mutex_unlock(&live_mx);
}

void
prov_token_opened(struct prov_ctx *prov)
{
	custody_ctx *cctx;

	if (__atomic_load_n(&exit_registered, __ATOMIC_ACQUIRE))
		return;	/* no lock per signature */
	pthread_mutex_lock(&prov->mx);
	cctx = prov->pid == getpid() ? prov->cctx : NULL;
	pthread_mutex_unlock(&prov->mx);
	/* Registered before the module was loaded, the handler would run
	 * after the module's destructors. */
	if (!custody_ctx_token_is_open(cctx))
		return;
	pthread_mutex_lock(&live_mx);
	if (!exit_registered && atexit(release_at_exit) == 0)
		__atomic_store_n(&exit_registered, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&live_mx);
}

/* This process's signing context (made now if there is none, or if the
 * one there was made before a fork) and its generation. */
static int
signing_ctx(struct prov_ctx *prov, custody_ctx **cctx, unsigned long *gen,
	    custody_err *err)
{
	int r = CUSTODY_OK;

	pthread_mutex_lock(&prov->mx);
	if (prov->released) {
		pthread_mutex_unlock(&prov->mx);
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the custody provider was shut down at "
				       "exit");
	}
	if (prov->cctx != NULL && prov->pid != getpid()) {
		/* Made by the parent: its sessions and lease thread are the
		 * parent's.  Neither used nor freed here (freeing would join
		 * a thread that does not exist in this process). */
		prov->cctx = NULL;
	}
	if (prov->cctx == NULL) {
		r = custody_keyref_ctx_new(prov->settings, NULL, &prov->cctx,
					   err);
		if (r == CUSTODY_OK) {
			prov->pid = getpid();
			prov->generation++;
		}
	}
	*cctx = prov->cctx;
	*gen = prov->generation;
	pthread_mutex_unlock(&prov->mx);
	return r;
}

int
prov_key_signer(struct prov_key *key, custody_signer **out, custody_err *err)
{
	custody_ctx *cctx = NULL;
	custody_signer *sg = NULL;
	unsigned long gen = 0;
	int r;

	*out = NULL;
	if ((r = signing_ctx(key->prov, &cctx, &gen, err)) != CUSTODY_OK)
		return r;
	pthread_mutex_lock(&key->mx);
	if (key->signer == NULL || key->signer_generation != gen) {
		/* Closing a signer frees it only (it touches no token):
		 * safe for one of a context left behind by fork too. */
		custody_signer_close(key->signer);
		key->signer = NULL;
		r = custody_signer_open(cctx, key->type,
					key->identity[0] != '\0' ?
					key->identity : NULL, &sg, err);
		if (r == CUSTODY_OK) {
			key->signer = sg;
			key->signer_generation = gen;
		}
	}
	*out = key->signer;
	pthread_mutex_unlock(&key->mx);
	return r;
}

/* The signer for type@identity on this process's context, for a load
 * (the caller closes it, or keeps it in a key object). */
int
prov_signer_open(struct prov_ctx *prov, const char *type,
		 const char *identity, custody_signer **out,
		 unsigned long *gen, custody_err *err)
{
	custody_ctx *cctx = NULL;
	int r;

	if ((r = signing_ctx(prov, &cctx, gen, err)) != CUSTODY_OK)
		return r;
	r = custody_signer_open(cctx, type, identity[0] != '\0' ? identity :
				NULL, out, err);
	if (r == CUSTODY_ENOTFOUND && identity[0] == '\0')
		/* Both identities were looked at: the message says so. */
		custody_err_set(err, r, "no certificate is assigned for type "
				"%s (identity %s or global)", type,
				custody_ctx_node(cctx));
	return r;
}

int
prov_load_cert(struct prov_ctx *prov, const char *type, const char *identity,
	       int which, X509 **cert, custody_err *err)
{
	char name[2 * CUSTODY_NAME_MAX + 2];
	int r;

	snprintf(name, sizeof(name), "%s%s%s", type,
		 identity[0] != '\0' ? "@" : "", identity);
	/* One thread at a time on the settings (custody/keyref.h). */
	pthread_mutex_lock(&prov->mx);
	r = custody_keyref_load_slot_cert(prov->settings, name, which, cert,
					  err);
	pthread_mutex_unlock(&prov->mx);
	return r;
}

/* ---- parameters --------------------------------------------------------- */

/* Provider parameters of openssl.cnf and the setting each one is. */
static const struct {
	const char *name;
	enum custody_keyref_setting setting;
} prov_settings[] = {
	{"config", CUSTODY_KEYREF_CONFIG},
	/* "module" is OpenSSL's own key (the provider's file). */
	{"pkcs11_module", CUSTODY_KEYREF_MODULE},
	{"token", CUSTODY_KEYREF_TOKEN},
	{"pin_source", CUSTODY_KEYREF_PIN_SOURCE},
	{"store", CUSTODY_KEYREF_STORE},
	{"node", CUSTODY_KEYREF_NODE},
};
#define N_PROV_SETTINGS (sizeof(prov_settings) / sizeof(prov_settings[0]))

/* Reads the provider section's values into prov->settings. */
static int
read_settings(struct prov_ctx *prov, custody_err *err)
{
	OSSL_PARAM params[N_PROV_SETTINGS + 1];
	char *values[N_PROV_SETTINGS];
	size_t i;
	int r;

	for (i = 0; i < N_PROV_SETTINGS; i++) {
		values[i] = NULL;
		params[i] = OSSL_PARAM_construct_utf8_ptr(
			(char *)prov_settings[i].name, &values[i], 0);
	}
	params[i] = OSSL_PARAM_construct_end();
	if (!core_get_params(prov->handle, params))
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot read the provider's parameters");
	for (i = 0; i < N_PROV_SETTINGS; i++) {
		if (values[i] == NULL)
			continue;
		if ((r = custody_keyref_set(prov->settings,
					    prov_settings[i].setting, values[i],
					    err)) != CUSTODY_OK) {
			custody_err_prefix(err, "provider parameter %s",
					   prov_settings[i].name);
			return r;
		}
	}
	return CUSTODY_OK;
}

static const OSSL_PARAM *
prov_gettable_params(void *provctx)
{
	static const OSSL_PARAM table[] = {
		OSSL_PARAM_DEFN(OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_PTR,
				NULL, 0),
		OSSL_PARAM_DEFN(OSSL_PROV_PARAM_VERSION, OSSL_PARAM_UTF8_PTR,
				NULL, 0),
		OSSL_PARAM_DEFN(OSSL_PROV_PARAM_BUILDINFO, OSSL_PARAM_UTF8_PTR,
				NULL, 0),
		OSSL_PARAM_DEFN(OSSL_PROV_PARAM_STATUS, OSSL_PARAM_INTEGER,
				NULL, 0),
		OSSL_PARAM_END,
	};

	(void)provctx;
	return table;
}

static int
prov_get_params(void *provctx, OSSL_PARAM params[])
{
	OSSL_PARAM *p;

	(void)provctx;
	p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME);
	if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p,
	    "custody: certificate types as keys of a PKCS#11 token"))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION);
	if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, PACKAGE_VERSION))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO);
	if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, PACKAGE_STRING))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS);
	if (p != NULL && !OSSL_PARAM_set_int(p, 1))
		return 0;
	return 1;
}

/* ---- algorithms ---------------------------------------------------------- */

static const OSSL_ALGORITHM store_algorithms[] = {
	{"custody", PROV_PROPS, prov_store_functions,
	 "custody: certificate types (custody:TYPE[@IDENTITY][?which=])"},
	{NULL, NULL, NULL, NULL},
};

/* The names OpenSSL (and libssl) know RSA and EC keys by. */
static const OSSL_ALGORITHM keymgmt_algorithms[] = {
	{"RSA:rsaEncryption:1.2.840.113549.1.1.1", PROV_PROPS,
	 prov_rsa_keymgmt_functions, "custody RSA key (in the token)"},
	{"EC:id-ecPublicKey:1.2.840.10045.2.1", PROV_PROPS,
	 prov_ec_keymgmt_functions, "custody EC key (in the token)"},
	{NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM signature_algorithms[] = {
	{"RSA:rsaEncryption:1.2.840.113549.1.1.1", PROV_PROPS,
	 prov_rsa_signature_functions, "RSA PKCS#1 v1.5 and PSS in the token"},
	{"ECDSA", PROV_PROPS, prov_ec_signature_functions,
	 "ECDSA in the token"},
	{NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM *
prov_query(void *provctx, int operation_id, int *no_cache)
{
	(void)provctx;
	*no_cache = 0;
	switch (operation_id) {
	case OSSL_OP_STORE:
		return store_algorithms;
	case OSSL_OP_KEYMGMT:
		/* Offered only to a store load of this provider, and never
		 * remembered by OpenSSL (no_cache): see the top. */
		return keymgmt_algorithms;
	case OSSL_OP_SIGNATURE:
		return signature_algorithms;
	default:
		return NULL;
	}
}

static const OSSL_ITEM *
prov_reason_strings(void *provctx)
{
	(void)provctx;
	return reason_strings;
}

/* ---- digests ---------------------------------------------------------- */

const EVP_MD *
prov_digest(struct prov_ctx *prov, int nid)
{
	int i = nid == NID_sha256 ? 0 : nid == NID_sha384 ? 1 :
		nid == NID_sha512 ? 2 : -1;
	EVP_MD *md, *none = NULL;

	if (i < 0)
		return NULL;
	md = __atomic_load_n(&prov->digests[i], __ATOMIC_ACQUIRE);
	if (md != NULL)
		return md;
	if ((md = EVP_MD_fetch(prov->libctx, OBJ_nid2sn(nid),
			       PROV_SOFTWARE_PROPQ)) == NULL)
		return NULL;
	/* Two threads may fetch at once: the first one stored is kept. */
	if (!__atomic_compare_exchange_n(&prov->digests[i], &none, md, 0,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		EVP_MD_free(md);
		md = none;
	}
	return md;
}

/* ---- life ------------------------------------------------------------- */

static void
prov_teardown(void *provctx)
{
	struct prov_ctx *prov = provctx;
	size_t i;

	if (prov == NULL)
		return;
	live_remove(prov);
	/* A context made before a fork is the parent's (signing_ctx). */
	if (prov->cctx != NULL && prov->pid == getpid())
		custody_ctx_free(prov->cctx);
	custody_keyref_free(prov->settings);
	for (i = 0; i < sizeof(prov->digests) / sizeof(prov->digests[0]); i++)
		EVP_MD_free(prov->digests[i]);
	pthread_mutex_destroy(&prov->mx);
	free(prov);
}

static const OSSL_DISPATCH prov_functions[] = {
	{OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))prov_teardown},
	{OSSL_FUNC_PROVIDER_GETTABLE_PARAMS,
	 (void (*)(void))prov_gettable_params},
	{OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))prov_get_params},
	{OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))prov_query},
	{OSSL_FUNC_PROVIDER_GET_REASON_STRINGS,
	 (void (*)(void))prov_reason_strings},
	{0, NULL},
};

static void
take_core_functions(const OSSL_DISPATCH *in)
{
	for (; in->function_id != 0; in++) {
		switch (in->function_id) {
		case OSSL_FUNC_CORE_NEW_ERROR:
			core_new_error = OSSL_FUNC_core_new_error(in);
			break;
		case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
			core_set_error_debug = OSSL_FUNC_core_set_error_debug(in);
			break;
		case OSSL_FUNC_CORE_VSET_ERROR:
			core_vset_error = OSSL_FUNC_core_vset_error(in);
			break;
		case OSSL_FUNC_CORE_GET_PARAMS:
			core_get_params = OSSL_FUNC_core_get_params(in);
			break;
		case OSSL_FUNC_CORE_GET_LIBCTX:
			core_get_libctx = OSSL_FUNC_core_get_libctx(in);
			break;
		default:
			break;
		}
	}
}

/* "?provider=default" as the default property query (see the top). */
static void
prefer_software_provider(struct prov_ctx *prov)
{
	if (EVP_default_properties_is_fips_enabled(prov->libctx))
		return;
	EVP_set_default_properties(prov->libctx, "?provider=default");
}

int
OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
		   const OSSL_DISPATCH **out, void **provctx)
{
	struct prov_ctx *prov = NULL;
	custody_err err;

	custody_err_clear(&err);
	take_core_functions(in);
	if (core_new_error == NULL || core_set_error_debug == NULL ||
	    core_vset_error == NULL || core_get_params == NULL ||
	    core_get_libctx == NULL)
		return 0;
	if ((prov = calloc(1, sizeof(*prov))) == NULL)
		return 0;
	prov->handle = handle;
	prov->libctx = (OSSL_LIB_CTX *)core_get_libctx(handle);
	pthread_mutex_init(&prov->mx, NULL);
	if (custody_keyref_new(&prov->settings, &err) != CUSTODY_OK ||
	    read_settings(prov, &err) != CUSTODY_OK) {
		prov_raise(prov, "OSSL_provider_init", &err);
		prov_teardown(prov);
		return 0;
	}
	prefer_software_provider(prov);
	custody_log_set_handler(log_line, NULL);
	live_add(prov);
	*out = prov_functions;
	*provctx = prov;
	return 1;
}
