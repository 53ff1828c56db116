/*
 * store.c — the OSSL_STORE loader of custody: URIs.
 *
 *   custody:TYPE[@IDENTITY][?which=current|previous|pending]
 *
 * Parsed strictly when the store is opened: anything else (an unknown
 * query, a second one, "//", "#", an empty type) is refused with one
 * error entry.  The name is resolved at the first load, after OpenSSL has
 * said what it expects: a load yields, in this order, the private key (a
 * reference to the token's key, pinned to the certificate), its public
 * key and the certificate, or only the one kind expected.  Only the
 * private key needs the token (and the PIN).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/store.h>
#include <openssl/x509.h>

#include <custody/assign.h>

#include "providers/internal.h"

#define SCHEME "custody:"

enum step { STEP_KEY, STEP_PUBKEY, STEP_CERT, STEP_DONE };

struct store_ctx {
	struct prov_ctx *prov;
	char uri[512];			/* for messages                    */
	char type[CUSTODY_NAME_MAX + 1];
	char identity[CUSTODY_NAME_MAX + 1];
	int which;			/* enum custody_slot_name          */
	int expect;			/* OSSL_STORE_INFO_*; 0: all       */
	enum step step;
	int resolved, failed;
	custody_err bad_uri;		/* reported at the first load      */
	struct prov_key *key;		/* when the private key is wanted  */
	unsigned char *cert_der, *spki_der;
	size_t cert_len, spki_len;
};

static OSSL_FUNC_store_open_fn st_open;
static OSSL_FUNC_store_settable_ctx_params_fn st_settable_ctx_params;
static OSSL_FUNC_store_set_ctx_params_fn st_set_ctx_params;
static OSSL_FUNC_store_load_fn st_load;
static OSSL_FUNC_store_eof_fn st_eof;
static OSSL_FUNC_store_close_fn st_close;

/* "?which=VALUE" (or nothing): the slot. */
static int
parse_query(const char *q, int *which, custody_err *err)
{
	*which = CUSTODY_SLOT_CURRENT;
	if (q == NULL)
		return CUSTODY_OK;
	if (strncmp(q, "which=", 6) != 0)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "unknown query \"%s\": the only query is "
				       "which=current|previous|pending", q);
	q += 6;
	if (strcmp(q, "current") == 0)
		*which = CUSTODY_SLOT_CURRENT;
	else if (strcmp(q, "previous") == 0)
		*which = CUSTODY_SLOT_PREVIOUS;
	else if (strcmp(q, "pending") == 0)
		*which = CUSTODY_SLOT_PENDING;
	else
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "bad value \"%s\" of which: give current, "
				       "previous or pending", q);
	return CUSTODY_OK;
}

/* custody:NAME[?which=...] into sc. */
static int
parse_uri(struct store_ctx *sc, const char *uri, custody_err *err)
{
	char name[2 * CUSTODY_NAME_MAX + 4];
	const char *body, *q;
	size_t len;
	int r;

	if (strncmp(uri, SCHEME, strlen(SCHEME)) != 0)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "%s is not a custody: URI", uri);
	body = uri + strlen(SCHEME);
	if (strpbrk(body, "/#%&") != NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "%s: the form is custody:TYPE[@IDENTITY]"
				       "[?which=current|previous|pending]", uri);
	q = strchr(body, '?');
	len = q != NULL ? (size_t)(q - body) : strlen(body);
	if (len >= sizeof(name))
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "%.64s...: the name is too long", uri);
	memcpy(name, body, len);
	name[len] = '\0';
	if ((r = custody_keyref_parse(name, sc->type, sc->identity, err)) !=
	    CUSTODY_OK ||
	    (r = parse_query(q != NULL ? q + 1 : NULL, &sc->which, err)) !=
	    CUSTODY_OK)
		custody_err_prefix(err, "%s", uri);
	return r;
}

static void *
st_open(void *provctx, const char *uri)
{
	struct prov_ctx *prov = provctx;
	struct store_ctx *sc;
	custody_err err;

	custody_err_clear(&err);
	if ((sc = calloc(1, sizeof(*sc))) == NULL)
		return NULL;
	sc->prov = prov;
	snprintf(sc->uri, sizeof(sc->uri), "%s", uri);
	/* A URI of ours that is malformed fails at the first load, not here:
	 * a failed open makes OpenSSL try its file loader on the URI too,
	 * adding errors of its own to ours. */
	if (parse_uri(sc, uri, &err) != CUSTODY_OK)
		sc->bad_uri = err;
	return sc;
}

static const OSSL_PARAM *
st_settable_ctx_params(void *provctx)
{
	static const OSSL_PARAM table[] = {
		OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, NULL),
		OSSL_PARAM_END,
	};

	(void)provctx;
	return table;
}

static int
st_set_ctx_params(void *loaderctx, const OSSL_PARAM params[])
{
	struct store_ctx *sc = loaderctx;
	const OSSL_PARAM *p;

	p = OSSL_PARAM_locate_const(params, OSSL_STORE_PARAM_EXPECT);
	if (p != NULL && !OSSL_PARAM_get_int(p, &sc->expect))
		return 0;
	return 1;
}

static int
wants(const struct store_ctx *sc, int info_type)
{
	return sc->expect == 0 || sc->expect == info_type;
}

/* The certificate's DER and SubjectPublicKeyInfo, from the store only. */
static int
load_cert_only(struct store_ctx *sc, custody_err *err)
{
	X509 *x = NULL;
	unsigned char *der = NULL;
	int len, r;

	if ((r = prov_load_cert(sc->prov, sc->type, sc->identity, sc->which,
				&x, err)) != CUSTODY_OK)
		return r;
	if ((len = i2d_X509(x, &der)) <= 0 || (sc->cert_der = malloc(
	    (size_t)len)) == NULL) {
		r = custody_err_openssl(err, CUSTODY_EFAIL, "cannot encode the "
					"certificate");
		goto out;
	}
	memcpy(sc->cert_der, der, (size_t)len);
	sc->cert_len = (size_t)len;
	r = CUSTODY_OK;
out:
	OPENSSL_free(der);
	X509_free(x);
	return r;
}

/* The certificate's SubjectPublicKeyInfo, for the PUBKEY object. */
static int
spki_of(struct store_ctx *sc, custody_err *err)
{
	const unsigned char *p = sc->cert_der;
	X509 *x = d2i_X509(NULL, &p, (long)sc->cert_len);
	unsigned char *der = NULL;
	int len;

	if (x == NULL ||
	    (len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der)) <= 0) {
		X509_free(x);
		return custody_err_openssl(err, CUSTODY_EFAIL,
					   "cannot read the public key of %s",
					   sc->uri);
	}
	X509_free(x);
	sc->spki_der = der;
	sc->spki_len = (size_t)len;
	return CUSTODY_OK;
}

/* Resolves the URI now: the key (pinned, with its certificate) when it is
 * wanted, else the certificate alone. */
static int
resolve(struct store_ctx *sc, custody_err *err)
{
	int r;

	if (wants(sc, OSSL_STORE_INFO_PKEY)) {
		r = prov_key_resolve(sc->prov, sc->type, sc->identity,
				     sc->which, &sc->key, &sc->cert_der,
				     &sc->cert_len, err);
		if (r != CUSTODY_OK)
			custody_err_prefix(err, "cannot load the private key "
					   "of %s", sc->uri);
	} else {
		r = load_cert_only(sc, err);	/* its message names it */
	}
	if (r == CUSTODY_OK && wants(sc, OSSL_STORE_INFO_PUBKEY))
		r = spki_of(sc, err);
	return r;
}

static int
emit_key(struct store_ctx *sc, OSSL_CALLBACK *cb, void *cbarg)
{
	int type = OSSL_OBJECT_PKEY;
	OSSL_PARAM params[4];

	params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type);
	params[1] = OSSL_PARAM_construct_utf8_string(
		OSSL_OBJECT_PARAM_DATA_TYPE, sc->key->is_rsa ? "RSA" : "EC", 0);
	params[2] = OSSL_PARAM_construct_octet_string(
		OSSL_OBJECT_PARAM_REFERENCE, &sc->key, sizeof(sc->key));
	params[3] = OSSL_PARAM_construct_end();
	return cb(params, cbarg);
}

static int
emit_der(int type, const char *structure, const char *data_type,
	 unsigned char *der, size_t len, OSSL_CALLBACK *cb, void *cbarg)
{
	OSSL_PARAM params[5];
	int n = 0;

	params[n++] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type);
	if (data_type != NULL)
		params[n++] = OSSL_PARAM_construct_utf8_string(
			OSSL_OBJECT_PARAM_DATA_TYPE, (char *)data_type, 0);
	params[n++] = OSSL_PARAM_construct_utf8_string(
		OSSL_OBJECT_PARAM_DATA_STRUCTURE, (char *)structure, 0);
	params[n++] = OSSL_PARAM_construct_octet_string(
		OSSL_OBJECT_PARAM_DATA, der, len);
	params[n] = OSSL_PARAM_construct_end();
	return cb(params, cbarg);
}

/* The next step that is wanted, from `from` on. */
static enum step
next_step(const struct store_ctx *sc, enum step from)
{
	static const int info[] = {OSSL_STORE_INFO_PKEY, OSSL_STORE_INFO_PUBKEY,
				   OSSL_STORE_INFO_CERT};

	while (from != STEP_DONE && !wants(sc, info[from]))
		from = (enum step)(from + 1);
	return from;
}

static int
st_load(void *loaderctx, OSSL_CALLBACK *object_cb, void *object_cbarg,
	OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
	struct store_ctx *sc = loaderctx;
	custody_err err;
	enum step step;

	(void)pw_cb;	/* the PIN comes from the PIN source only */
	(void)pw_cbarg;
	custody_err_clear(&err);
	if (sc->failed)
		return 0;
	if (sc->bad_uri.code != CUSTODY_OK) {
		sc->failed = 1;
		prov_raise(sc->prov, "custody_store_load", &sc->bad_uri);
		return 0;
	}
	if (!sc->resolved) {
		if (resolve(sc, &err) != CUSTODY_OK) {
			sc->failed = 1;
			sc->step = STEP_DONE;
			prov_raise(sc->prov, "custody_store_load", &err);
			return 0;
		}
		sc->resolved = 1;
		sc->step = next_step(sc, STEP_KEY);
	}
	step = sc->step;
	if (step == STEP_DONE)
		return 0;
	sc->step = next_step(sc, (enum step)(step + 1));
	switch (step) {
	case STEP_KEY:
		return emit_key(sc, object_cb, object_cbarg);
	case STEP_PUBKEY:
		return emit_der(OSSL_OBJECT_PKEY, "SubjectPublicKeyInfo", NULL,
				sc->spki_der, sc->spki_len, object_cb,
				object_cbarg);
	case STEP_CERT:
		return emit_der(OSSL_OBJECT_CERT, "Certificate", NULL,
				sc->cert_der, sc->cert_len, object_cb,
				object_cbarg);
	default:
		return 0;
	}
}

static int
st_eof(void *loaderctx)
{
	const struct store_ctx *sc = loaderctx;

	return sc->failed || (sc->resolved && sc->step == STEP_DONE);
}

static int
st_close(void *loaderctx)
{
	struct store_ctx *sc = loaderctx;

	if (sc == NULL)
		return 1;
	prov_key_free(sc->key);
	free(sc->cert_der);
	OPENSSL_free(sc->spki_der);
	free(sc);
	return 1;
}

const OSSL_DISPATCH prov_store_functions[] = {
	{OSSL_FUNC_STORE_OPEN, (void (*)(void))st_open},
	{OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS,
	 (void (*)(void))st_settable_ctx_params},
	{OSSL_FUNC_STORE_SET_CTX_PARAMS, (void (*)(void))st_set_ctx_params},
	{OSSL_FUNC_STORE_LOAD, (void (*)(void))st_load},
	{OSSL_FUNC_STORE_EOF, (void (*)(void))st_eof},
	{OSSL_FUNC_STORE_CLOSE, (void (*)(void))st_close},
	{0, NULL},
};
