/*
 * token/template.c — the one way custody builds a PKCS#11 attribute
 * template: values copied in and owned, secret ones in OpenSSL's secure
 * heap and cleansed when the template goes, optional attributes only where
 * the token knows them (token/caps.c), and a template that ran out of room
 * or memory is an error, never a shorter template.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "token/internal.h"

void *
token_secret_alloc(size_t len)
{
	void *p;

	ERR_set_mark();
	if ((p = OPENSSL_secure_malloc(len > 0 ? len : 1)) == NULL)
		p = OPENSSL_malloc(len > 0 ? len : 1);
	ERR_pop_to_mark();
	return p;
}

static void *
value_alloc(size_t len, int secret)
{
	return secret ? token_secret_alloc(len)
		      : OPENSSL_malloc(len > 0 ? len : 1);
}

static void
value_free(CK_ATTRIBUTE *a, int secret)
{
	if (secret)
		OPENSSL_secure_clear_free(a->pValue, a->ulValueLen > 0 ?
					  a->ulValueLen : 1);
	else
		OPENSSL_free(a->pValue);
	a->pValue = NULL;
}

void
token_tmpl_init(struct token_tmpl *t)
{
	memset(t, 0, sizeof(*t));
}

static void
add(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type, const void *v, size_t len,
    int secret)
{
	void *copy;

	if (t->broken)
		return;
	if (t->n >= TOKEN_TMPL_MAX) {
		t->broken = "too many attributes";
		return;
	}
	if ((copy = value_alloc(len, secret)) == NULL) {
		t->broken = "out of memory";
		return;
	}
	if (len > 0)
		memcpy(copy, v, len);
	t->a[t->n].type = type;
	t->a[t->n].pValue = copy;
	t->a[t->n].ulValueLen = len;
	t->secret[t->n] = (unsigned char)(secret != 0);
	t->n++;
}

void
token_tmpl_add(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type, const void *v,
	       size_t len)
{
	add(t, type, v, len, 0);
}

void
token_tmpl_add_all(struct token_tmpl *t, const CK_ATTRIBUTE *a, CK_ULONG n)
{
	CK_ULONG i;

	for (i = 0; i < n; i++)
		add(t, a[i].type, a[i].pValue, a[i].ulValueLen, 0);
}

void
token_tmpl_add_secret(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type,
		      const void *v, size_t len)
{
	add(t, type, v, len, 1);
}

void
token_tmpl_bool(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type, int v)
{
	CK_BBOOL b = v ? CK_TRUE : CK_FALSE;

	add(t, type, &b, sizeof(b), 0);
}

void
token_tmpl_flags(struct token_tmpl *t, const struct token_flag *f, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		token_tmpl_bool(t, f[i].type, f[i].on);
}

void
token_tmpl_ulong(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type, CK_ULONG v)
{
	add(t, type, &v, sizeof(v), 0);
}

void
token_tmpl_text(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type, const char *s)
{
	add(t, type, s, strlen(s), 0);
}

void
token_tmpl_bn(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type, const BIGNUM *bn,
	      int secret)
{
	int len = BN_num_bytes(bn);
	unsigned char *buf;

	if (t->broken)
		return;
	if ((buf = value_alloc((size_t)len, secret)) == NULL) {
		t->broken = "out of memory";
		return;
	}
	BN_bn2bin(bn, buf);
	add(t, type, buf, (size_t)len, secret);
	OPENSSL_secure_clear_free(buf, len > 0 ? (size_t)len : 1);
}

void
token_tmpl_optional_bool(custody_token *tok, struct token_tmpl *t,
			 enum token_attr attr, int v)
{
	int known = token_attr_known(tok, attr);

	if (known > 0)
		token_tmpl_bool(t, token_attr_type(attr), v);
	else if (known == 0 && t->broken == NULL)
		t->broken = "cannot tell which optional attributes the token "
			    "knows";
}

void
token_tmpl_nested(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type,
		  const struct token_tmpl *inner)
{
	if (inner->broken != NULL && t->broken == NULL)
		t->broken = inner->broken;
	add(t, type, inner->a, inner->n * sizeof(CK_ATTRIBUTE), 0);
}

CK_ATTRIBUTE *
token_tmpl_get(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type)
{
	CK_ULONG i;

	for (i = 0; i < t->n; i++) {
		if (t->a[i].type == type)
			return &t->a[i];
	}
	return NULL;
}

void
token_tmpl_set_bool(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type, int v)
{
	CK_ATTRIBUTE *a = token_tmpl_get(t, type);

	if (a == NULL)
		token_tmpl_bool(t, type, v);
	else if (a->ulValueLen == sizeof(CK_BBOOL))
		*(CK_BBOOL *)a->pValue = v ? CK_TRUE : CK_FALSE;
}

void
token_tmpl_drop(struct token_tmpl *t, CK_ATTRIBUTE_TYPE type)
{
	CK_ULONG i;

	for (i = 0; i < t->n; i++) {
		if (t->a[i].type != type)
			continue;
		value_free(&t->a[i], t->secret[i]);
		memmove(&t->a[i], &t->a[i + 1], (t->n - i - 1) * sizeof(t->a[0]));
		memmove(&t->secret[i], &t->secret[i + 1], t->n - i - 1);
		t->n--;
		return;
	}
}

int
token_tmpl_check(const struct token_tmpl *t, const custody_token *tok,
		 const char *what, custody_err *err)
{
	if (t->broken == NULL)
		return CUSTODY_OK;
	return custody_err_set(err, CUSTODY_EFAIL,
			       "cannot build the template of the %s for token "
			       "%s: %s", what, tok->label, t->broken);
}

void
token_tmpl_free(struct token_tmpl *t)
{
	CK_ULONG i;

	for (i = 0; i < t->n; i++)
		value_free(&t->a[i], t->secret[i]);
	memset(t, 0, sizeof(*t));
}

/* ------------------------------------------------------------ read back */

static const char *
bool_text(CK_BBOOL b)
{
	return b ? "true" : "false";
}

int
token_check_attrs(custody_token *tok, CK_OBJECT_HANDLE h, const char *what,
		 struct token_tmpl *t, int generated, custody_err *err)
{
	/* What custody's promises rest on, as the template asked. */
	static const CK_ATTRIBUTE_TYPE asked[] = {
		CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, CKA_EXTRACTABLE,
		CKA_WRAP_WITH_TRUSTED, CKA_COPYABLE,
	};
	static const char *const asked_name[] = {
		"CKA_TOKEN", "CKA_PRIVATE", "CKA_SENSITIVE", "CKA_EXTRACTABLE",
		"CKA_WRAP_WITH_TRUSTED", "CKA_COPYABLE",
	};
	CK_ATTRIBUTE get[NELEM(asked) + 2];
	CK_BBOOL want[NELEM(asked) + 2], got[NELEM(asked) + 2];
	const char *name[NELEM(asked) + 2];
	CK_ATTRIBUTE *a;
	CK_ULONG n = 0, i;
	CK_RV rv;

	for (i = 0; i < NELEM(asked); i++) {
		if ((a = token_tmpl_get(t, asked[i])) == NULL ||
		    a->ulValueLen != sizeof(CK_BBOOL))
			continue;
		want[n] = *(CK_BBOOL *)a->pValue;
		name[n] = asked_name[i];
		get[n].type = asked[i];
		n++;
	}
	/* A key generated (or unwrapped) sensitive and not extractable
	 * must say it never was otherwise. */
	a = token_tmpl_get(t, CKA_EXTRACTABLE);
	if (generated && a != NULL && !*(CK_BBOOL *)a->pValue) {
		want[n] = CK_TRUE;
		name[n] = "CKA_NEVER_EXTRACTABLE";
		get[n++].type = CKA_NEVER_EXTRACTABLE;
	}
	a = token_tmpl_get(t, CKA_SENSITIVE);
	if (generated && a != NULL && *(CK_BBOOL *)a->pValue) {
		want[n] = CK_TRUE;
		name[n] = "CKA_ALWAYS_SENSITIVE";
		get[n++].type = CKA_ALWAYS_SENSITIVE;
	}
	for (i = 0; i < n; i++) {
		got[i] = (CK_BBOOL)!want[i];
		get[i].pValue = &got[i];
		get[i].ulValueLen = sizeof(got[i]);
	}
	rv = tok->f->C_GetAttributeValue(tok->session, h, get, n);
	if (rv != CKR_OK)
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot read back the %s on token %s",
				    what, tok->label);
	for (i = 0; i < n; i++) {
		if (get[i].ulValueLen != sizeof(CK_BBOOL) ||
		    (got[i] != CK_FALSE) != (want[i] != CK_FALSE)) {
			custody_err_set(err, CUSTODY_EFAIL,
					"token %s did not honour %s on the %s "
					"(asked %s, holds %s): refused",
					tok->label, name[i], what,
					bool_text(want[i]),
					get[i].ulValueLen == sizeof(CK_BBOOL)
						? bool_text(got[i])
						: "no value");
			custody_err_hint(err, "custody's promises do not hold "
					 "on this token for this key; the "
					 "object is removed again");
			return CUSTODY_EFAIL;
		}
	}
	return CUSTODY_OK;
}

/* ------------------------------------------------------- signing keys */

/* A signing key signs (its public half verifies) and does nothing else. */
static const struct token_flag signing_private_flags[] = {
	{CKA_TOKEN, 1}, {CKA_PRIVATE, 1}, {CKA_SENSITIVE, 1}, {CKA_SIGN, 1},
	{CKA_SIGN_RECOVER, 0}, {CKA_DECRYPT, 0}, {CKA_UNWRAP, 0},
	{CKA_DERIVE, 0},
};

static const struct token_flag signing_public_flags[] = {
	{CKA_TOKEN, 1}, {CKA_PRIVATE, 0}, {CKA_VERIFY, 1},
	{CKA_VERIFY_RECOVER, 0}, {CKA_ENCRYPT, 0}, {CKA_WRAP, 0},
	{CKA_DERIVE, 0},
};

void
token_tmpl_signing_private(custody_token *tok, struct token_tmpl *t,
			   CK_KEY_TYPE kt, const void *id, size_t id_len,
			   const char *label, int extractable)
{
	token_tmpl_ulong(t, CKA_CLASS, CKO_PRIVATE_KEY);
	token_tmpl_ulong(t, CKA_KEY_TYPE, kt);
	token_tmpl_flags(t, signing_private_flags, NELEM(signing_private_flags));
	token_tmpl_bool(t, CKA_EXTRACTABLE, extractable);
	/* Never wrappable but under a trusted key, where the token knows the
	 * attribute: for a key that is not extractable at all it changes
	 * nothing, and it cannot be undone. */
	token_tmpl_optional_bool(tok, t, TOKEN_ATTR_WRAP_WITH_TRUSTED, 1);
	token_tmpl_add(t, CKA_ID, id, id_len);
	token_tmpl_text(t, CKA_LABEL, label);
	token_tmpl_optional_bool(tok, t, TOKEN_ATTR_COPYABLE, 0);
}

int
token_tmpl_trusted_wrap(custody_token *tok, struct token_tmpl *priv,
			int *trusted, custody_err *err)
{
	int supported = 0, r;

	if (trusted != NULL)
		*trusted = 0;
	if (token_tmpl_get(priv, CKA_WRAP_WITH_TRUSTED) == NULL)
		return CUSTODY_OK;
	if ((r = token_probe_trusted_private_kek(tok, &supported, err)) !=
	    CUSTODY_OK)
		return r;
	token_tmpl_set_bool(priv, CKA_WRAP_WITH_TRUSTED, supported);
	if (trusted != NULL)
		*trusted = supported;
	return CUSTODY_OK;
}

void
token_tmpl_signing_public(struct token_tmpl *t, CK_KEY_TYPE kt,
			  const void *id, size_t id_len, const char *label)
{
	token_tmpl_ulong(t, CKA_CLASS, CKO_PUBLIC_KEY);
	token_tmpl_ulong(t, CKA_KEY_TYPE, kt);
	token_tmpl_flags(t, signing_public_flags, NELEM(signing_public_flags));
	token_tmpl_add(t, CKA_ID, id, id_len);
	token_tmpl_text(t, CKA_LABEL, label);
}
