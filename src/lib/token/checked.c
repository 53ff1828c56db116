/* token/checked.c — keys a handle that stays open has proved against
 * their certificates, taken as proved again while their objects answer
 * to the same handles (see custody_token_keep_checks in custody/token.h).
 *
 * A sync proves each key it holds: it searches the token for the key
 * (on SoftHSM a search reads every object file), signs a challenge with
 * it, verifies the signature with the certificate, and searches for the
 * certificate object beside it.  A watcher does this at every change for
 * every key it already holds.  What it remembers instead: the handle of
 * the private key and of the certificate object it proved; what it asks
 * again: each handle's class and key id, and the certificate's value.
 * An object destroyed answers no more; one made in its place has another
 * handle; the key material of a private key object cannot be changed in
 * place (PKCS#11 leaves it unmodifiable).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <custody/error.h>
#include <custody/token.h>

#include "token/internal.h"

void
custody_token_keep_checks(custody_token *tok, int keep)
{
	if (tok != NULL)
		tok->keep_checks = keep != 0;
}

/* The DER of cert (malloc'ed) and its SHA-256. */
static int
cert_der(X509 *cert, unsigned char **der, int *len,
	 unsigned char sha256[32], custody_err *err)
{
	unsigned int n = 0;

	*der = NULL;
	if (cert == NULL || (*len = i2d_X509(cert, der)) <= 0 ||
	    EVP_Digest(*der, (size_t)*len, sha256, &n, EVP_sha256(), NULL) != 1) {
		free(*der);
		*der = NULL;
		return custody_err_openssl(err, CUSTODY_EFAIL, "cannot encode a "
					   "certificate");
	}
	return CUSTODY_OK;
}

/* 1 when h answers with class cls, key id id and (der not NULL) the
 * value der. */
static int
answers_value(custody_token *tok, CK_OBJECT_HANDLE h, CK_OBJECT_CLASS cls,
	const unsigned char *id, size_t id_len, const unsigned char *der,
	int der_len)
{
	CK_OBJECT_CLASS got_cls = (CK_OBJECT_CLASS)-1;
	unsigned char got_id[TOKEN_FOUND_ID_MAX];
	unsigned char *value = NULL;
	CK_ATTRIBUTE a[3] = {
		{CKA_CLASS, &got_cls, sizeof(got_cls)},
		{CKA_ID, got_id, sizeof(got_id)},
		{CKA_VALUE, NULL, 0},
	};
	CK_ULONG n = 2;
	int same;

	if (h == CK_INVALID_HANDLE)
		return 0;
	if (der != NULL) {
		/* As long as the expected value: a longer one does not fit. */
		if ((value = malloc((size_t)der_len)) == NULL)
			return 0;
		a[2].pValue = value;
		a[2].ulValueLen = (CK_ULONG)der_len;
		n = 3;
	}
	same = tok->f->C_GetAttributeValue(tok->session, h, a, n) == CKR_OK &&
	       got_cls == cls && a[1].ulValueLen == id_len &&
	       memcmp(got_id, id, id_len) == 0 &&
	       (der == NULL || (a[2].ulValueLen == (CK_ULONG)der_len &&
				memcmp(value, der, (size_t)der_len) == 0));
	free(value);
	return same;
}

int
token_answers(custody_token *tok, CK_OBJECT_HANDLE h, CK_OBJECT_CLASS cls,
	      const unsigned char *id, size_t id_len)
{
	return answers_value(tok, h, cls, id, id_len, NULL, 0);
}

static struct token_checked *
lookup(custody_token *tok, const unsigned char *id, size_t id_len,
       const unsigned char sha256[32])
{
	size_t i;

	for (i = 0; i < tok->n_checked; i++) {
		struct token_checked *c = &tok->checked[i];

		if (c->id_len == id_len && memcmp(c->id, id, id_len) == 0 &&
		    memcmp(c->cert_sha256, sha256, 32) == 0)
			return c;
	}
	return NULL;
}

int
custody_token_key_checked(custody_token *tok, const char *key_id, X509 *cert,
			  int *checked, custody_err *err)
{
	unsigned char id[TOKEN_FOUND_ID_MAX], sha256[32], *der = NULL;
	struct token_checked *c;
	size_t id_len = 0;
	int der_len = 0, r;

	*checked = 0;
	if (tok == NULL || !tok->keep_checks || tok->n_checked == 0)
		return CUSTODY_OK;
	if ((r = token_key_id_login(tok, key_id, "look for private keys", id,
				    sizeof(id), &id_len, err)) != CUSTODY_OK ||
	    (r = cert_der(cert, &der, &der_len, sha256, err)) != CUSTODY_OK)
		return r;
	if ((c = lookup(tok, id, id_len, sha256)) != NULL) {
		if (token_answers(tok, c->priv, CKO_PRIVATE_KEY, id, id_len) &&
		    answers_value(tok, c->cert, CKO_CERTIFICATE, id, id_len, der,
			    der_len))
			*checked = 1;
		else	/* gone or replaced: proved again in full */
			c->id_len = 0;
	}
	free(der);
	return CUSTODY_OK;
}

int
custody_token_remember_checked(custody_token *tok, const char *key_id,
			       X509 *cert, custody_err *err)
{
	unsigned char id[TOKEN_FOUND_ID_MAX], sha256[32], *der = NULL;
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_ATTRIBUTE t[3] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_ID, NULL, 0},
			     {CKA_VALUE, NULL, 0}};
	CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE, obj = CK_INVALID_HANDLE;
	struct token_checked *c;
	size_t id_len = 0;
	int der_len = 0, r;

	if (tok == NULL || !tok->keep_checks)
		return CUSTODY_OK;
	if ((r = token_key_id_login(tok, key_id, "look for private keys", id,
				    sizeof(id), &id_len, err)) != CUSTODY_OK ||
	    (r = cert_der(cert, &der, &der_len, sha256, err)) != CUSTODY_OK)
		return r;
	/* The key was just proved: found without a search (token_find_by_id
	 * keeps it while the lock is held); the certificate object is the
	 * one the import found or made, else searched by its class, key id
	 * and value.  Each answers as it will be asked (class, id, value). */
	if ((r = token_find_by_id(tok, CKO_PRIVATE_KEY, id, id_len, &priv,
				  err)) != CUSTODY_OK ||
	    priv == CK_INVALID_HANDLE)
		goto out;	/* nothing to remember */
	obj = tok->last_cert;
	if (!answers_value(tok, obj, CKO_CERTIFICATE, id, id_len, der, der_len)) {
		t[1].pValue = id;
		t[1].ulValueLen = (CK_ULONG)id_len;
		t[2].pValue = der;
		t[2].ulValueLen = (CK_ULONG)der_len;
		if ((r = token_find_first(tok, t, NELEM(t), &obj, err)) !=
		    CUSTODY_OK || obj == CK_INVALID_HANDLE)
			goto out;
	}
	if ((c = lookup(tok, id, id_len, sha256)) == NULL)
		c = &tok->checked[token_ring_slot(&tok->next_checked,
						  &tok->n_checked,
						  TOKEN_CHECKED_MAX)];
	memcpy(c->id, id, id_len);
	c->id_len = id_len;
	memcpy(c->cert_sha256, sha256, sizeof(sha256));
	c->priv = priv;
	c->cert = obj;
out:
	free(der);
	return r;
}
