/*
 * token/caps.c — what a token can do, asked of the token itself.
 *
 * Mechanisms come from C_GetMechanismList (read once) and
 * C_GetMechanismInfo (once per mechanism asked about); optional attributes
 * from a session object made with the attribute and read back.  Answers
 * are kept per token (module and serial) for the life of the process, so
 * a command that opens its token twice asks once (a few entries, freed at
 * exit).  Nothing here writes to
 * the token: probe objects are session objects, destroyed at once.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <custody/log.h>

#include "token/internal.h"

#define CAPS_MECHS 24

struct token_caps {
	const void *module;	/* the module's function list        */
	char serial[17];
	int list_read;		/* 1 read, -1 unreadable (list_rv)   */
	CK_RV list_rv;
	CK_MECHANISM_TYPE *list;
	CK_ULONG n_list;
	struct {
		CK_MECHANISM_TYPE type;
		CK_MECHANISM_INFO info;
		int have;
	} mech[CAPS_MECHS];
	size_t n_mech;
	signed char attr[TOKEN_ATTR_N];	/* 0 unasked, 1 known, -1 not */
	struct token_caps *next;
};

static pthread_mutex_t caps_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct token_caps *caps_list;

/* tok's entry, made on first use; NULL when out of memory. */
static struct token_caps *
caps_of(custody_token *tok)
{
	struct token_caps *c;

	if (tok->caps != NULL)
		return tok->caps;
	pthread_mutex_lock(&caps_mutex);
	for (c = caps_list; c != NULL; c = c->next) {
		if (c->module == (const void *)token_module_functions(tok) &&
		    strcmp(c->serial, tok->serial) == 0)
			break;
	}
	if (c == NULL && (c = calloc(1, sizeof(*c))) != NULL) {
		c->module = token_module_functions(tok);
		memcpy(c->serial, tok->serial, sizeof(c->serial));
		c->next = caps_list;
		caps_list = c;
	}
	pthread_mutex_unlock(&caps_mutex);
	tok->caps = c;
	return c;
}

/* ---------------------------------------------------------- mechanisms */

const char *
token_mech_name(CK_MECHANISM_TYPE m)
{
	switch (m) {
#define M(x) case x: return #x
	M(CKM_RSA_PKCS_KEY_PAIR_GEN);
	M(CKM_RSA_PKCS);
	M(CKM_RSA_PKCS_PSS);
	M(CKM_RSA_PKCS_OAEP);
	M(CKM_EC_KEY_PAIR_GEN);
	M(CKM_ECDSA);
	M(CKM_AES_KEY_GEN);
	M(CKM_AES_ECB);
	M(CKM_AES_CBC);
	M(CKM_AES_KEY_WRAP);
	M(CKM_AES_KEY_WRAP_PAD);
	M(CKM_SHA256);
#undef M
	default:
		return "a mechanism";
	}
}

static int
read_list(custody_token *tok, struct token_caps *c)
{
	CK_ULONG n = 0;
	CK_RV rv;

	rv = tok->f->C_GetMechanismList(tok->slot, NULL, &n);
	if (rv == CKR_OK && n > 0) {
		if ((c->list = calloc(n, sizeof(*c->list))) == NULL)
			rv = CKR_HOST_MEMORY;
		else
			rv = tok->f->C_GetMechanismList(tok->slot, c->list, &n);
	}
	if (rv != CKR_OK) {
		free(c->list);
		c->list = NULL;
		c->list_rv = rv;
		/* A module that answers with nothing may answer next time;
		 * one that fails is asked again by the next command. */
		return -1;
	}
	c->n_list = n;
	c->list_read = 1;
	return 1;
}

int
token_mech_info(custody_token *tok, CK_MECHANISM_TYPE m, CK_FLAGS need,
		CK_MECHANISM_INFO *info, custody_err *err)
{
	struct token_caps *c = caps_of(tok);
	CK_MECHANISM_INFO mi;
	size_t i;
	int listed = 0;
	CK_RV rv;

	memset(info, 0, sizeof(*info));
	if (c == NULL) {
		custody_err_set(err, CUSTODY_EFAIL, "cannot read what token %s "
				"can do: out of memory", tok->label);
		return -1;
	}
	if (c->list_read != 1 && read_list(tok, c) != 1) {
		token_err_rv(err, CUSTODY_EFAIL, c->list_rv,
			     "cannot read the mechanisms of token %s",
			     tok->label);
		return -1;
	}
	for (i = 0; i < c->n_mech; i++) {
		if (c->mech[i].type == m) {
			*info = c->mech[i].info;
			return c->mech[i].have &&
			       (info->flags & need) == need ? 1 : 0;
		}
	}
	for (i = 0; i < c->n_list && !listed; i++)
		listed = c->list[i] == m;
	memset(&mi, 0, sizeof(mi));
	if (listed) {
		rv = tok->f->C_GetMechanismInfo(tok->slot, m, &mi);
		if (rv != CKR_OK) {
			token_err_rv(err, CUSTODY_EFAIL, rv,
				     "cannot read %s's details on token %s",
				     token_mech_name(m), tok->label);
			return -1;
		}
	}
	if (c->n_mech < CAPS_MECHS) {
		c->mech[c->n_mech].type = m;
		c->mech[c->n_mech].info = mi;
		c->mech[c->n_mech].have = listed;
		c->n_mech++;
	}
	*info = mi;
	return listed && (mi.flags & need) == need ? 1 : 0;
}

/* token_mech_info without the details. */
static int
token_mech_info_has(custody_token *tok, CK_MECHANISM_TYPE m, CK_FLAGS need,
		    custody_err *err)
{
	CK_MECHANISM_INFO info;

	return token_mech_info(tok, m, need, &info, err);
}

int
token_has_mech(custody_token *tok, CK_MECHANISM_TYPE m, CK_FLAGS need)
{
	CK_MECHANISM_INFO info;

	return token_mech_info(tok, m, need, &info, NULL) == 1;
}

/* "sign", "wrap and unwrap", ...: the flags of need custody uses. */
static const char *
flags_text(CK_FLAGS need)
{
	if ((need & (CKF_WRAP | CKF_UNWRAP)) == (CKF_WRAP | CKF_UNWRAP))
		return " for wrapping and unwrapping";
	if (need & CKF_WRAP)
		return " for wrapping";
	if (need & CKF_UNWRAP)
		return " for unwrapping";
	if (need & CKF_SIGN)
		return " for signing";
	return "";
}

/* token_require_mech, leaving m's details in *info. */
static int
token_require_mech_info(custody_token *tok, CK_MECHANISM_TYPE m, CK_FLAGS need,
			const char *what, CK_MECHANISM_INFO *info,
			custody_err *err)
{
	int r = token_mech_info(tok, m, need, info, err);

	if (r < 0)
		return CUSTODY_EFAIL;
	if (r == 1)
		return CUSTODY_OK;
	return custody_err_set(err, CUSTODY_EFAIL,
			       "token %s cannot %s: it has no %s%s", tok->label,
			       what, token_mech_name(m), flags_text(need));
}

int
token_require_mech(custody_token *tok, CK_MECHANISM_TYPE m, CK_FLAGS need,
		   const char *what, custody_err *err)
{
	CK_MECHANISM_INFO info;

	return token_require_mech_info(tok, m, need, what, &info, err);
}

int
token_require_key_bits(custody_token *tok, CK_MECHANISM_TYPE m, CK_FLAGS need,
		       unsigned long bits, const char *what, custody_err *err)
{
	CK_MECHANISM_INFO info;
	int r;

	if ((r = token_require_mech_info(tok, m, need, what, &info, err)) !=
	    CUSTODY_OK)
		return r;
	/* 0..0 is "no limit given" (SoftHSM says so for some mechanisms). */
	if (info.ulMaxKeySize == 0 ||
	    (bits >= info.ulMinKeySize && bits <= info.ulMaxKeySize))
		return CUSTODY_OK;
	return custody_err_set(err, CUSTODY_EFAIL,
			       "token %s cannot %s: %lu-bit keys are outside "
			       "its %lu..%lu bits for %s", tok->label, what,
			       bits, (unsigned long)info.ulMinKeySize,
			       (unsigned long)info.ulMaxKeySize,
			       token_mech_name(m));
}

/* ---------------------------------------------------------- attributes */

CK_ATTRIBUTE_TYPE
token_attr_type(enum token_attr attr)
{
	switch (attr) {
	case TOKEN_ATTR_COPYABLE:
		return CKA_COPYABLE;
	case TOKEN_ATTR_DESTROYABLE:
		return CKA_DESTROYABLE;
	case TOKEN_ATTR_WRAP_WITH_TRUSTED:
		return CKA_WRAP_WITH_TRUSTED;
	case TOKEN_ATTR_UNWRAP_TEMPLATE:
		return CKA_UNWRAP_TEMPLATE;
	case TOKEN_ATTR_N:
		break;
	}
	return CKA_VENDOR_DEFINED;
}

const char *
token_attr_name(enum token_attr attr)
{
	switch (attr) {
	case TOKEN_ATTR_COPYABLE:
		return "CKA_COPYABLE";
	case TOKEN_ATTR_DESTROYABLE:
		return "CKA_DESTROYABLE";
	case TOKEN_ATTR_WRAP_WITH_TRUSTED:
		return "CKA_WRAP_WITH_TRUSTED";
	case TOKEN_ATTR_UNWRAP_TEMPLATE:
		return "CKA_UNWRAP_TEMPLATE";
	case TOKEN_ATTR_N:
		break;
	}
	return "an attribute";
}

/*
 * A session object made with the attribute, read back.  The storage
 * attributes (CKA_COPYABLE, CKA_DESTROYABLE) are asked of a data object;
 * the key attributes of an AES key the token generates (a token without
 * AES key generation knows neither for custody's purposes: the only keys
 * custody gives them to are AES KEKs and private keys it cannot wrap).
 */
static int
probe_attr(custody_token *tok, enum token_attr attr)
{
	static CK_OBJECT_CLASS data = CKO_DATA;
	static CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
	static CK_ULONG aes_len = 16;
	static char app[] = "custody-probe";
	CK_BBOOL want = attr == TOKEN_ATTR_COPYABLE ? CK_FALSE : CK_TRUE;
	CK_ATTRIBUTE inner[] = {{CKA_SENSITIVE, &yes, sizeof(yes)}};
	CK_ATTRIBUTE obj[] = {
		{CKA_CLASS, &data, sizeof(data)},
		{CKA_TOKEN, &no, sizeof(no)},
		{CKA_PRIVATE, &no, sizeof(no)},
		{CKA_APPLICATION, app, sizeof(app) - 1},
		{token_attr_type(attr), &want, sizeof(want)},
	};
	CK_ATTRIBUTE key[] = {
		{CKA_TOKEN, &no, sizeof(no)},
		{CKA_VALUE_LEN, &aes_len, sizeof(aes_len)},
		{token_attr_type(attr), &want, sizeof(want)},
	};
	CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
	CK_BBOOL got = (CK_BBOOL)!want;
	CK_ATTRIBUTE get = {token_attr_type(attr), &got, sizeof(got)};
	CK_ATTRIBUTE get_inner = {CKA_UNWRAP_TEMPLATE, NULL, 0};
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	int known = 0;
	CK_RV rv;

	if (attr == TOKEN_ATTR_COPYABLE || attr == TOKEN_ATTR_DESTROYABLE) {
		rv = tok->f->C_CreateObject(tok->session, obj, NELEM(obj), &h);
	} else {
			if (!token_has_mech(tok, CKM_AES_KEY_GEN, CKF_GENERATE))
			return -1;
		if (attr == TOKEN_ATTR_UNWRAP_TEMPLATE) {
			key[2].pValue = inner;
			key[2].ulValueLen = sizeof(inner);
		}
		rv = tok->f->C_GenerateKey(tok->session, &gen, key, NELEM(key),
					   &h);
	}
	/* Refused for the attribute: the token does not know it.  Refused
	 * for anything else (not logged in, say): nothing learnt. */
	if (rv == CKR_ATTRIBUTE_TYPE_INVALID ||
	    rv == CKR_ATTRIBUTE_VALUE_INVALID ||
	    rv == CKR_TEMPLATE_INCONSISTENT)
		return -1;
	if (rv != CKR_OK)
		return 0;
	if (attr == TOKEN_ATTR_UNWRAP_TEMPLATE)
		known = tok->f->C_GetAttributeValue(tok->session, h, &get_inner,
						    1) == CKR_OK &&
			get_inner.ulValueLen == sizeof(inner);
	else
		known = tok->f->C_GetAttributeValue(tok->session, h, &get,
						    1) == CKR_OK &&
			got == want;
	tok->f->C_DestroyObject(tok->session, h);
	return known ? 1 : -1;
}

int
token_knows_attr(custody_token *tok, enum token_attr attr)
{
	return token_attr_known(tok, attr) > 0;
}

int
token_attr_known(custody_token *tok, enum token_attr attr)
{
	struct token_caps *c = caps_of(tok);

	if (c == NULL || attr >= TOKEN_ATTR_N)
		return 0;
	if (c->attr[attr] == 0) {
		int known = probe_attr(tok, attr);

		/* Undecided (0) is asked again next time. */
		c->attr[attr] = (signed char)known;
		custody_debug("token %s %s %s", tok->label,
			      known > 0 ? "honours"
			      : known < 0 ? "does not know"
					  : "could not be asked about",
			      token_attr_name(attr));
	}
	return c->attr[attr];
}

/* ------------------------------------------------------- what custody needs */

int
custody_token_require_key(custody_token *tok, int pkey_type, int bits,
			  const char *verb, custody_err *err)
{
	int rsa = pkey_type == EVP_PKEY_RSA, r;
	char what[64];

	/* Other kinds are refused by what would make them, in its words. */
	if (pkey_type != EVP_PKEY_RSA && pkey_type != EVP_PKEY_EC)
		return CUSTODY_OK;
	/* Named as custody names keys elsewhere: RSA-2048, EC-P256. */
	snprintf(what, sizeof(what), "%s %s%d keys", verb,
		 rsa ? "RSA-" : "EC-P", bits);
	if (strcmp(verb, "generate") == 0 &&
	    (r = token_require_key_bits(tok, rsa ? CKM_RSA_PKCS_KEY_PAIR_GEN
						 : CKM_EC_KEY_PAIR_GEN,
					CKF_GENERATE_KEY_PAIR,
					(unsigned long)bits, what, err)) !=
	    CUSTODY_OK)
		return r;
	snprintf(what, sizeof(what), "sign with %s%d keys",
		 rsa ? "RSA-" : "EC-P", bits);
	return token_require_key_bits(tok, rsa ? CKM_RSA_PKCS : CKM_ECDSA,
				      CKF_SIGN, (unsigned long)bits, what, err);
}

int
custody_token_require_cluster(custody_token *tok, const char *what,
			      custody_err *err)
{
	static const struct {
		CK_MECHANISM_TYPE m;
		CK_FLAGS need;
	} needs[] = {
		{CKM_AES_KEY_GEN, CKF_GENERATE},
		{CKM_AES_KEY_WRAP_PAD, CKF_WRAP | CKF_UNWRAP},
		{CKM_AES_KEY_WRAP, CKF_WRAP},
		{CKM_RSA_PKCS_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR},
		{CKM_RSA_PKCS_OAEP, CKF_WRAP | CKF_UNWRAP},
	};
	size_t i;
	int r;

	for (i = 0; i < NELEM(needs); i++) {
		if ((r = token_require_mech(tok, needs[i].m, needs[i].need,
					    what, err)) != CUSTODY_OK)
			return r;
	}
	if (!token_knows_attr(tok, TOKEN_ATTR_UNWRAP_TEMPLATE))
		return custody_err_set(err, CUSTODY_EFAIL,
				       "token %s cannot %s: it does not keep "
				       "CKA_UNWRAP_TEMPLATE, which limits what "
				       "the KEK unwraps", tok->label, what);
	return CUSTODY_OK;
}

int
token_kek_mech(custody_token *tok, CK_MECHANISM_TYPE *m, custody_err *err)
{
	int r;

	if ((r = token_mech_info_has(tok, CKM_AES_KEY_WRAP, CKF_WRAP, err)) <
	    0)
		return CUSTODY_EFAIL;
	if (r == 1) {
		*m = CKM_AES_KEY_WRAP;
		return CUSTODY_OK;
	}
	if ((r = token_mech_info_has(tok, CKM_AES_CBC, CKF_WRAP, err)) < 0)
		return CUSTODY_EFAIL;
	if (r == 1) {
		*m = CKM_AES_CBC;
		return CUSTODY_OK;
	}
	return custody_err_set(err, CUSTODY_EFAIL,
			       "token %s cannot keep a KEK: it has neither "
			       "CKM_AES_KEY_WRAP nor CKM_AES_CBC for wrapping",
			       tok->label);
}

/* ------------------------------------------------ a trusted private KEK */

#define PROBE_PREFIX "custody-probe:"

/* Template values of the probe keys (AES-256, as a KEK). */
static CK_BBOOL probe_yes = CK_TRUE;
static CK_BBOOL probe_no = CK_FALSE;
static CK_OBJECT_CLASS probe_class = CKO_SECRET_KEY;
static CK_KEY_TYPE probe_type = CKK_AES;
static CK_ULONG probe_bytes = 32;

#define A(type, var) {(type), &(var), sizeof(var)}
#define A_TRUE(type) {(type), &probe_yes, sizeof(probe_yes)}
#define A_FALSE(type) {(type), &probe_no, sizeof(probe_no)}
/* What both probe keys are: AES-256 session keys, private, sensitive,
 * and for nothing but wrapping. */
#define PROBE_KEY                                                         \
	A(CKA_CLASS, probe_class), A(CKA_KEY_TYPE, probe_type),           \
	A(CKA_VALUE_LEN, probe_bytes), A_FALSE(CKA_TOKEN),                 \
	A_TRUE(CKA_PRIVATE), A_TRUE(CKA_SENSITIVE), A_FALSE(CKA_ENCRYPT), \
	A_FALSE(CKA_DECRYPT), A_FALSE(CKA_SIGN), A_FALSE(CKA_VERIFY)

/* Destroys the session objects with this id: what a refused C_GenerateKey
 * left behind (SoftHSM 2.6.1 does, with the attributes it had applied). */
static int
drop_leftovers(custody_token *tok, unsigned char *id, size_t id_len,
	       custody_err *err)
{
	CK_ATTRIBUTE t[] = {
		{CKA_ID, id, id_len},
		A_FALSE(CKA_TOKEN),
	};
	CK_OBJECT_HANDLE *h = NULL;
	size_t n = 0, i;
	int r;

	if ((r = token_find(tok, t, NELEM(t), &h, &n, err)) != CUSTODY_OK)
		goto out;
	for (i = 0; i < n; i++)
		token_destroy_object(tok, h[i], "remains of the refused probe key");
	if (n > 0)
		custody_debug("token %s left %zu half-made probe key(s) behind; "
			      "removed", tok->label, n);
out:
	free(h);
	return r;
}

int
token_probe_trusted_private_kek(custody_token *tok, int *supported,
				custody_err *err)
{
	unsigned char probe_id[sizeof(PROBE_PREFIX) - 1 + 8];
	CK_ATTRIBUTE trusted[] = {
		/* First: SoftHSM 2.6.1 leaves a half-made object behind when
		 * it refuses an attribute; this id finds it again. */
		{CKA_ID, probe_id, sizeof(probe_id)},
		PROBE_KEY,
		A_FALSE(CKA_EXTRACTABLE),
		A_TRUE(CKA_WRAP),
		A_FALSE(CKA_UNWRAP),
		A_TRUE(CKA_TRUSTED),
	};
	CK_ATTRIBUTE guarded[] = {
		PROBE_KEY,
		A_TRUE(CKA_EXTRACTABLE),
		A_TRUE(CKA_WRAP_WITH_TRUSTED),
	};
	CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
	CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
	CK_OBJECT_HANDLE kek = CK_INVALID_HANDLE, key = CK_INVALID_HANDLE;
	unsigned char *blob = NULL;
	size_t blob_len = 0;
	int is_trusted = 0, r;
	CK_RV rv;

	*supported = 0;
	if ((r = token_require_login(tok, "probe for trusted keys", err)) !=
	    CUSTODY_OK)
		goto out;
	memcpy(probe_id, PROBE_PREFIX, sizeof(PROBE_PREFIX) - 1);
	if (RAND_bytes(probe_id + sizeof(PROBE_PREFIX) - 1, 8) != 1) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot probe token %s for trusted keys: "
					"no random bytes", tok->label);
		goto out;
	}
	rv = tok->f->C_GenerateKey(tok->session, &gen, trusted, NELEM(trusted),
				   &kek);
	switch (rv) {
	case CKR_OK:
		break;
	case CKR_ATTRIBUTE_READ_ONLY:
	case CKR_ATTRIBUTE_TYPE_INVALID:
	case CKR_ATTRIBUTE_VALUE_INVALID:
	case CKR_TEMPLATE_INCONSISTENT:
		kek = CK_INVALID_HANDLE;
		custody_debug("token %s: the user cannot make a trusted private "
			      "key (%s)", tok->label, token_rv_text(rv));
		r = drop_leftovers(tok, probe_id, sizeof(probe_id), err);
		goto out;
	default:
		kek = CK_INVALID_HANDLE;
		drop_leftovers(tok, probe_id, sizeof(probe_id), NULL);
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot probe token %s for trusted keys",
				 tok->label);
		goto out;
	}
	if ((r = token_get_bool(tok, kek, CKA_TRUSTED, &is_trusted, err)) !=
	    CUSTODY_OK)
		goto out;
	rv = tok->f->C_GenerateKey(tok->session, &gen, guarded, NELEM(guarded),
				   &key);
	if (rv != CKR_OK) {
		key = CK_INVALID_HANDLE;
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot probe token %s for trusted keys",
				 tok->label);
		goto out;
	}
	/* The token must also honour it: wrap a trusted-only key with it. */
	*supported = is_trusted &&
		     token_wrap_key(tok, &kwp, kek, key, &blob, &blob_len, &rv) ==
			     CUSTODY_OK;
	custody_debug("token %s: a trusted private key %s", tok->label,
		      *supported ? "can be made and wraps trusted-only keys"
				 : "is not honoured");
	r = CUSTODY_OK;
out:
	token_destroy_object(tok, key, "probe key");
	token_destroy_object(tok, kek, "probe key");
	OPENSSL_clear_free(blob, blob_len);
	return r;
}

/* ------------------------------------------------------------ describe */

static void
key_caps(custody_token *tok, CK_MECHANISM_TYPE gen, CK_MECHANISM_TYPE sign,
	 custody_token_key_caps *k)
{
	CK_MECHANISM_INFO info;

	k->generate = token_mech_info(tok, gen, CKF_GENERATE_KEY_PAIR, &info,
				      NULL) == 1;
	k->min_bits = info.ulMinKeySize;
	k->max_bits = info.ulMaxKeySize;
	k->sign = token_mech_info(tok, sign, CKF_SIGN, &info, NULL) == 1;
	if (!k->generate) {
		k->min_bits = info.ulMinKeySize;
		k->max_bits = info.ulMaxKeySize;
	}
}

int
custody_token_describe(custody_token *tok, custody_token_caps *out,
		       custody_err *err)
{
	static const enum token_attr attrs[CUSTODY_TOKEN_ATTRS] = {
		TOKEN_ATTR_COPYABLE, TOKEN_ATTR_DESTROYABLE,
		TOKEN_ATTR_WRAP_WITH_TRUSTED, TOKEN_ATTR_UNWRAP_TEMPLATE,
	};
	CK_MECHANISM_INFO info;
	CK_MECHANISM_TYPE kek_mech;
	CK_TOKEN_INFO ti;
	custody_err why;
	size_t i;
	CK_RV rv;
	int r;

	memset(out, 0, sizeof(*out));
	memset(&why, 0, sizeof(why));
	if ((rv = tok->f->C_GetTokenInfo(tok->slot, &ti)) != CKR_OK)
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot read the details of token %s",
				    tok->label);
	token_trim_field(ti.label, sizeof(ti.label), out->label);
	token_trim_field(ti.manufacturerID, sizeof(ti.manufacturerID),
		   out->manufacturer);
	token_trim_field(ti.model, sizeof(ti.model), out->model);
	token_trim_field(ti.serialNumber, sizeof(ti.serialNumber), out->serial);
	out->flags = ti.flags;
	out->min_pin = ti.ulMinPinLen;
	out->max_pin = ti.ulMaxPinLen;
	/* The mechanism list first: a token that cannot say is refused. */
	if (token_mech_info(tok, CKM_RSA_PKCS, 0, &info, err) < 0)
		return CUSTODY_EFAIL;
	key_caps(tok, CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_RSA_PKCS, &out->rsa);
	out->rsa_pss = token_has_mech(tok, CKM_RSA_PKCS_PSS, CKF_SIGN);
	key_caps(tok, CKM_EC_KEY_PAIR_GEN, CKM_ECDSA, &out->ec);
	out->cluster = custody_token_require_cluster(tok, "be a cluster member",
						     &why) == CUSTODY_OK;
	if (!out->cluster)
		snprintf(out->cluster_why, sizeof(out->cluster_why), "%.255s",
			 why.msg);
	out->trusted_kek = -1;
	if (out->cluster &&
	    token_probe_trusted_private_kek(tok, &r, NULL) == CUSTODY_OK)
		out->trusted_kek = r;
	if (token_kek_mech(tok, &kek_mech, NULL) == CUSTODY_OK)
		out->tag_mech = kek_mech == CKM_AES_KEY_WRAP ? "CKM_AES_KEY_WRAP"
							     : "CKM_AES_CBC";
	for (i = 0; i < CUSTODY_TOKEN_ATTRS; i++) {
		out->attr_name[i] = token_attr_name(attrs[i]);
		out->attr_known[i] = token_attr_known(tok, attrs[i]);
	}
	return CUSTODY_OK;
}

int
custody_token_module_describe(custody_token *tok,
			      custody_token_module_info *out, custody_err *err)
{
	CK_INFO info;
	CK_RV rv;

	memset(out, 0, sizeof(*out));
	if ((rv = tok->f->C_GetInfo(&info)) != CKR_OK)
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot read what the PKCS#11 module of "
				    "token %s is", tok->label);
	token_trim_field(info.libraryDescription,
			 sizeof(info.libraryDescription), out->description);
	token_trim_field(info.manufacturerID, sizeof(info.manufacturerID),
			 out->manufacturer);
	out->version_major = info.libraryVersion.major;
	out->version_minor = info.libraryVersion.minor;
	out->cryptoki_major = info.cryptokiVersion.major;
	out->cryptoki_minor = info.cryptokiVersion.minor;
	return CUSTODY_OK;
}
