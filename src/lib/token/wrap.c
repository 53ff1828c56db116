/*
 * token/wrap.c — the PKCS#11 side of the cluster key ceremony: the KEK,
 * the nodes' transport keys, the security officer's admission of a node,
 * and the packages (private keys wrapped under the KEK).  See the last
 * section of custody/token.h for the attributes and why.
 *
 * Measured on SoftHSM 2.6.1 (and relied on here): a secret key's
 * CKA_ENCRYPT, DECRYPT, SIGN and VERIFY default TRUE, so every one is
 * set; CKA_UNWRAP_TEMPLATE is enforced (the caller's template must carry
 * its attributes with the same values); CKA_TRUSTED cannot be set by the
 * user (CKR_ATTRIBUTE_READ_ONLY) and the SO cannot create private objects
 * (CKR_USER_NOT_LOGGED_IN); CKM_AES_ECB is no wrapping mechanism.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <custody/assign.h>
#include <custody/cert.h>
#include <custody/hexfmt.h>
#include <custody/log.h>
#include <custody/token.h>

#include "token/internal.h"

#define KEY_ID_MAX 64		/* bytes of a CKA_ID we accept as hex    */
#define NODE_ID_MAX 96		/* "custody-transport:" + node name      */
#define TRANSPORT_BITS 3072
#define TRANSPORT_KEYSPEC "rsa:3072"	/* TRANSPORT_BITS again */

#define TRANSPORT_PREFIX "custody-transport:"
#define ADMITTED_PREFIX "custody-admitted:"

/* Template values: never written by the token, shared by every call. */
static CK_BBOOL yes = CK_TRUE;
static CK_BBOOL no = CK_FALSE;
static CK_OBJECT_CLASS class_secret = CKO_SECRET_KEY;
static CK_OBJECT_CLASS class_private = CKO_PRIVATE_KEY;
static CK_OBJECT_CLASS class_public = CKO_PUBLIC_KEY;
static CK_KEY_TYPE type_aes = CKK_AES;
static CK_KEY_TYPE type_rsa = CKK_RSA;
static CK_ULONG kek_bytes = 32;
static CK_ULONG transport_bits = TRANSPORT_BITS;
static unsigned char rsa_f4[] = {0x01, 0x00, 0x01};
static char kek_id[] = CUSTODY_KEK_ID;

#define A(type, var) {(type), &(var), sizeof(var)}
#define A_TRUE(type) {(type), &yes, sizeof(yes)}
#define A_FALSE(type) {(type), &no, sizeof(no)}

/* What a key unwrapped under the KEK must be (its CKA_UNWRAP_TEMPLATE). */
static CK_ATTRIBUTE kek_unwrap_template[] = {
	A(CKA_CLASS, class_private),
	A_TRUE(CKA_TOKEN),
	A_TRUE(CKA_PRIVATE),
	A_TRUE(CKA_SENSITIVE),
	A_FALSE(CKA_EXTRACTABLE),
};

/* What a key unwrapped with a transport private key must be: a KEK. */
static CK_ATTRIBUTE transport_unwrap_template[] = {
	A(CKA_CLASS, class_secret),
	A(CKA_KEY_TYPE, type_aes),
	A_TRUE(CKA_TOKEN),
	A_TRUE(CKA_PRIVATE),
	A_TRUE(CKA_SENSITIVE),
	A_TRUE(CKA_WRAP_WITH_TRUSTED),
	A_FALSE(CKA_ENCRYPT),
	A_FALSE(CKA_DECRYPT),
	A_FALSE(CKA_SIGN),
	A_FALSE(CKA_VERIFY),
};


/* ----------------------------------------------------------- helpers */

/* PREFIX + node into id; EUSAGE when the node name is not one. */
static int
node_id(const char *prefix, const char *node, unsigned char *id,
	size_t *len, custody_err *err)
{
	size_t plen = strlen(prefix), nlen;

	if (!custody_node_name_valid(node) ||
	    plen + (nlen = strlen(node)) > NODE_ID_MAX)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "invalid node name %s: expected 1 to %d of "
				       "A-Z a-z 0-9 . _ -", node != NULL ? node : "(none)",
				       CUSTODY_NODE_NAME_MAX);
	memcpy(id, prefix, plen);
	memcpy(id + plen, node, nlen);
	*len = plen + nlen;
	return CUSTODY_OK;
}

/* The KEK (CK_INVALID_HANDLE: none).  A handle that keeps its checks
 * (custody_token_keep_checks) keeps the KEK's handle across its lock's
 * let-goes too, while it answers with the KEK's class and id. */
static int
find_kek(custody_token *tok, CK_OBJECT_HANDLE *h, custody_err *err)
{
	const unsigned char *id = (const unsigned char *)kek_id;
	size_t id_len = sizeof(kek_id) - 1;
	int r;

	if (token_found_lookup(tok, CKO_SECRET_KEY, id, id_len, h))
		return CUSTODY_OK;	/* found while the lock is held */
	if (tok->keep_checks && tok->kept_kek != CK_INVALID_HANDLE &&
	    token_answers(tok, tok->kept_kek, CKO_SECRET_KEY, id, id_len)) {
		*h = tok->kept_kek;
		token_found_remember(tok, CKO_SECRET_KEY, id, id_len, *h);
		return CUSTODY_OK;
	}
	r = token_find_by_id(tok, CKO_SECRET_KEY, id, id_len, h, err);
	if (r != CUSTODY_OK || !tok->keep_checks || *h != tok->kept_kek)
		tok->n_tags = tok->next_tag = 0;	/* another KEK's */
	tok->kept_kek = r == CUSTODY_OK && tok->keep_checks ? *h :
			CK_INVALID_HANDLE;
	return r;
}

/* The tag of digest that the kept KEK computed before, or NULL. */
static const char *
kept_tag(const custody_token *tok, const unsigned char *digest)
{
	size_t i;

	for (i = 0; i < tok->n_tags; i++)
		if (memcmp(tok->tags[i].digest, digest, CUSTODY_TAG_INPUT_LEN) == 0)
			return tok->tags[i].tag;
	return NULL;
}

static void
keep_tag(custody_token *tok, const unsigned char *digest, const char *tag)
{
	struct token_tag *t = &tok->tags[token_ring_slot(&tok->next_tag,
							  &tok->n_tags,
							  TOKEN_TAGS_MAX)];

	memcpy(t->digest, digest, CUSTODY_TAG_INPUT_LEN);
	memcpy(t->tag, tag, CUSTODY_TAG_HEX + 1);
}

/* The transport key of node: its CKA_ID (TRANSPORT_PREFIX + node) and the
 * halves asked for (priv, pub: NULL for one not wanted; CK_INVALID_HANDLE
 * when absent), after token_require_login(WHAT) unless WHAT is NULL. */
static int
find_transport(custody_token *tok, const char *node, const char *what,
	       unsigned char id[NODE_ID_MAX], size_t *id_len,
	       CK_OBJECT_HANDLE *priv, CK_OBJECT_HANDLE *pub, custody_err *err)
{
	CK_OBJECT_HANDLE p, q;
	int r;

	if ((r = node_id(TRANSPORT_PREFIX, node, id, id_len, err)) !=
	    CUSTODY_OK ||
	    (what != NULL &&
	     (r = token_require_login(tok, what, err)) != CUSTODY_OK) ||
	    (r = token_find_key_pair(tok, id, *id_len, &p, &q, err)) !=
	    CUSTODY_OK)
		return r;
	if (priv != NULL)
		*priv = p;
	if (pub != NULL)
		*pub = q;
	return CUSTODY_OK;
}

/* ------------------------------------------------------------------- KCV */

/* The wrap under the KEK (token_kek_mech: AES-KW, or AES-CBC with a zero
 * IV) of value, the CKA_VALUE of a session AES key made for the one wrap
 * (16 or 32 bytes); *out malloc'ed.  *kek_fault (may be NULL) tells when
 * the KEK object itself failed. */
static int
wrap_value_under_kek(custody_token *tok, CK_OBJECT_HANDLE kek,
		     const unsigned char *value, size_t value_len,
		     const char *what, unsigned char **out, size_t *out_len,
		     int *kek_fault, custody_err *err)
{
	CK_ATTRIBUTE t[] = {
		A(CKA_CLASS, class_secret),
		A(CKA_KEY_TYPE, type_aes),
		A_FALSE(CKA_TOKEN),
		A_TRUE(CKA_PRIVATE),
		A_FALSE(CKA_SENSITIVE),
		A_TRUE(CKA_EXTRACTABLE),
		A_FALSE(CKA_ENCRYPT),
		A_FALSE(CKA_DECRYPT),
		A_FALSE(CKA_SIGN),
		A_FALSE(CKA_VERIFY),
		A_FALSE(CKA_WRAP),
		A_FALSE(CKA_UNWRAP),
		{CKA_VALUE, (void *)value, value_len},
	};
	unsigned char zero_iv[16] = {0};
	CK_MECHANISM kw = {CKM_AES_KEY_WRAP, NULL, 0};
	CK_OBJECT_HANDLE probe = CK_INVALID_HANDLE;
	CK_RV rv;
	int r = CUSTODY_EFAIL;

	*out = NULL;
	*out_len = 0;
	if ((r = token_kek_mech(tok, &kw.mechanism, err)) != CUSTODY_OK)
		return r;
	if (kw.mechanism == CKM_AES_CBC) {
		kw.pParameter = zero_iv;
		kw.ulParameterLen = sizeof(zero_iv);
	}
	rv = tok->f->C_CreateObject(tok->session, t, NELEM(t), &probe);
	if (rv != CKR_OK) {
		probe = CK_INVALID_HANDLE;
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot compute %s on token %s: cannot create "
				 "its input key", what, tok->label);
		goto out;
	}
	if (token_wrap_key(tok, &kw, kek, probe, out, out_len, &rv) != CUSTODY_OK) {
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot compute %s on token %s", what,
				 tok->label);
		/* The KEK object itself failed (not the input key, not the
		 * token as a whole)? */
		if (kek_fault != NULL && err != NULL)
			*kek_fault = custody_token_err_is_key_fault(err);
		goto out;
	}
	r = CUSTODY_OK;
out:
	token_destroy_temporary(tok, probe, "input key of a KEK computation");
	return r;
}

/* The first `bytes` bytes (at most 8) of the wrap of 16 zero bytes under
 * the KEK (AES-KW, or AES-CBC: then the classic AES(kek, 0) check value),
 * upper-case hex: 3 bytes are the key check value, 8 the KEK check. */
static int
check_of_kek(custody_token *tok, CK_OBJECT_HANDLE kek, size_t bytes,
	     char *hex, int *kek_fault, custody_err *err)
{
	static const unsigned char zero[16];
	unsigned char *out = NULL;
	size_t out_len = 0;
	int r;

	r = wrap_value_under_kek(tok, kek, zero, sizeof(zero),
				 "the KEK's key check value", &out, &out_len,
				 kek_fault, err);
	if (r == CUSTODY_OK && (out_len < bytes || bytes > 8))
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot compute the KEK's key check value "
				    "on token %s: the wrap is too short",
				    tok->label);
	if (r == CUSTODY_OK)
		custody_hex_encode(out, bytes, hex, 1);
	free(out);
	return r;
}

static int
kcv_of_kek(custody_token *tok, CK_OBJECT_HANDLE kek,
	   char kcv[CUSTODY_KCV_HEX + 1], int *kek_fault, custody_err *err)
{
	return check_of_kek(tok, kek, CUSTODY_KCV_HEX / 2, kcv, kek_fault,
			    err);
}

/* The KEK's key check value (see kcv_of_kek). */
static int
kcv_of(custody_token *tok, CK_OBJECT_HANDLE kek, char kcv[CUSTODY_KCV_HEX + 1],
       custody_err *err)
{
	return kcv_of_kek(tok, kek, kcv, NULL, err);
}


int
custody_token_kek_present(custody_token *tok, int *present, custody_err *err)
{
	CK_OBJECT_HANDLE h;
	int r;

	*present = 0;
	if ((r = token_require_login(tok, "look for the KEK", err)) !=
	    CUSTODY_OK ||
	    (r = find_kek(tok, &h, err)) != CUSTODY_OK)
		return r;
	*present = h != CK_INVALID_HANDLE;
	return CUSTODY_OK;
}

/* The KEK's handle; ENOTFOUND when there is none. */
static int
need_kek(custody_token *tok, const char *what, CK_OBJECT_HANDLE *h,
	 custody_err *err)
{
	int r;

	if ((r = token_require_login(tok, what, err)) != CUSTODY_OK ||
	    (r = find_kek(tok, h, err)) != CUSTODY_OK)
		return r;
	if (*h == CK_INVALID_HANDLE) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "cannot %s: token %s holds no KEK", what,
				    tok->label);
		custody_err_hint(err, "create it with custody kek create, or "
				 "join the cluster with custody node join");
	}
	return r;
}

int
custody_token_kek_kcv(custody_token *tok, char kcv[CUSTODY_KCV_HEX + 1],
		      custody_err *err)
{
	CK_OBJECT_HANDLE h;
	int r;

	if ((r = need_kek(tok, "read the KEK's key check value", &h, err)) !=
	    CUSTODY_OK)
		return r;
	/* Kept while the handle is (token_found_forget). */
	if (tok->kcv_of == h && tok->kek_kcv[0] != '\0') {
		memcpy(kcv, tok->kek_kcv, CUSTODY_KCV_HEX + 1);
		return CUSTODY_OK;
	}
	if ((r = kcv_of(tok, h, kcv, err)) == CUSTODY_OK) {
		memcpy(tok->kek_kcv, kcv, CUSTODY_KCV_HEX + 1);
		tok->kcv_of = h;
	}
	return r;
}

int
custody_token_kek_check(custody_token *tok,
			char check[CUSTODY_KEK_CHECK_HEX + 1], custody_err *err)
{
	CK_OBJECT_HANDLE h;
	int r;

	if ((r = need_kek(tok, "read the KEK's check value", &h, err)) !=
	    CUSTODY_OK)
		return r;
	return check_of_kek(tok, h, CUSTODY_KEK_CHECK_HEX / 2, check, NULL,
			    err);
}

int
custody_token_kek_tag(custody_token *tok,
		      const unsigned char digest[CUSTODY_TAG_INPUT_LEN],
		      char tag[CUSTODY_TAG_HEX + 1], custody_err *err)
{
	unsigned char *out = NULL, mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	size_t out_len = 0;
	CK_OBJECT_HANDLE h;
	const char *kept;
	int r;

	tag[0] = '\0';
	if ((r = need_kek(tok, "compute an integrity tag", &h, err)) !=
	    CUSTODY_OK)
		goto out;
	if (tok->keep_checks && h == tok->kept_kek &&
	    (kept = kept_tag(tok, digest)) != NULL) {
		memcpy(tag, kept, CUSTODY_TAG_HEX + 1);
		goto out;
	}
	if ((r = wrap_value_under_kek(tok, h, digest, CUSTODY_TAG_INPUT_LEN,
				      "an integrity tag", &out, &out_len, NULL,
				      err)) != CUSTODY_OK)
		goto out;
	/* AES-KW is a keyed permutation of the digest: its hash is a keyed
	 * function nobody without the KEK computes. */
	if (EVP_Digest(out, out_len, mac, &mac_len, EVP_sha256(), NULL) != 1 ||
	    mac_len < CUSTODY_TAG_HEX / 2) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot compute an integrity tag: SHA-256 "
				    "failed");
		goto out;
	}
	custody_hex_encode(mac, CUSTODY_TAG_HEX / 2, tag, 0);
	if (tok->keep_checks && h == tok->kept_kek)
		keep_tag(tok, digest, tag);
	r = CUSTODY_OK;
out:
	free(out);
	return r;
}

/* ------------------------------------------------------------------- KEK */

/* An unwrap template: a static one above, and CKA_COPYABLE false where the
 * token knows it. */
static void
unwrap_template(custody_token *tok, struct token_tmpl *inner,
		const CK_ATTRIBUTE *a, CK_ULONG n)
{
	token_tmpl_add_all(inner, a, n);
	token_tmpl_optional_bool(tok, inner, TOKEN_ATTR_COPYABLE, 0);
}

/*
 * The KEK's template, for generation (with its length) or unwrapping;
 * inner holds its CKA_UNWRAP_TEMPLATE.  A cluster's KEK wraps and unwraps
 * and leaves the token only under a trusted key.  On a token that cannot
 * be a cluster member (custody_token_require_cluster) the KEK only keeps
 * the store's integrity tags: it wraps (what a tag is computed with) and
 * does nothing else, never extractable.
 */
static const struct token_flag kek_kept_flags[] = {
	{CKA_TOKEN, 1}, {CKA_PRIVATE, 1}, {CKA_SENSITIVE, 1},
};

static const struct token_flag kek_unused_flags[] = {
	{CKA_ENCRYPT, 0}, {CKA_DECRYPT, 0}, {CKA_SIGN, 0}, {CKA_VERIFY, 0},
	{CKA_DERIVE, 0},
};

static void
kek_template(custody_token *tok, struct token_tmpl *t, struct token_tmpl *inner,
	     int generate, int trusted, int cluster)
{
	token_tmpl_add(t, CKA_CLASS, &class_secret, sizeof(class_secret));
	token_tmpl_add(t, CKA_KEY_TYPE, &type_aes, sizeof(type_aes));
	if (generate)
		token_tmpl_add(t, CKA_VALUE_LEN, &kek_bytes, sizeof(kek_bytes));
	token_tmpl_flags(t, kek_kept_flags, NELEM(kek_kept_flags));
	token_tmpl_bool(t, CKA_EXTRACTABLE, cluster);
	if (cluster)
		token_tmpl_bool(t, CKA_WRAP_WITH_TRUSTED, 1);
	token_tmpl_bool(t, CKA_WRAP, 1);
	token_tmpl_bool(t, CKA_UNWRAP, cluster);
	token_tmpl_flags(t, kek_unused_flags, NELEM(kek_unused_flags));
	if (trusted)
		token_tmpl_bool(t, CKA_TRUSTED, 1);
	token_tmpl_add(t, CKA_ID, kek_id, sizeof(kek_id) - 1);
	token_tmpl_add(t, CKA_LABEL, kek_id, sizeof(kek_id) - 1);
	token_tmpl_optional_bool(tok, t, TOKEN_ATTR_COPYABLE, 0);
	if (!cluster)
		return;
	/* Last, as before: what a torn unwrap (the fault walks) leaves out
	 * first is the template, not the wrap policy. */
	unwrap_template(tok, inner, kek_unwrap_template,
			NELEM(kek_unwrap_template));
	token_tmpl_nested(t, CKA_UNWRAP_TEMPLATE, inner);
}

/* How a KEK comes to the token: generated there, or unwrapped from blob
 * with a node's transport key. */
struct kek_source {
	int generate;
	int trusted;
	int cluster;
	CK_OBJECT_HANDLE transport;	/* unwrapping: the private half */
	const unsigned char *blob;
	size_t blob_len;
	const char *narration;		/* said once the template holds */
};

/* Makes the KEK from its template and checks what the token made against
 * it.  On failure nothing this call made stays on the token. */
static int
kek_make(custody_token *tok, const struct kek_source *src,
	 CK_OBJECT_HANDLE *kek, custody_err *err)
{
	CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
	CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA_1, CKG_MGF1_SHA1,
					CKZ_DATA_SPECIFIED, NULL, 0};
	CK_MECHANISM unwrap = {CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep)};
	const char *what = src->generate ? "KEK" : "unwrapped KEK";
	struct token_tmpl t, inner;
	CK_RV rv;
	int r;

	*kek = CK_INVALID_HANDLE;
	token_tmpl_init(&t);
	token_tmpl_init(&inner);
	kek_template(tok, &t, &inner, src->generate, src->trusted, src->cluster);
	if ((r = token_tmpl_check(&t, tok, "KEK", err)) != CUSTODY_OK)
		goto out;
	custody_step("%s", src->narration);
	if (src->generate)
		rv = tok->f->C_GenerateKey(tok->session, &gen, t.a, t.n, kek);
	else
		rv = tok->f->C_UnwrapKey(tok->session, &unwrap, src->transport,
					 (CK_BYTE *)src->blob, src->blob_len,
					 t.a, t.n, kek);
	if (rv != CKR_OK) {
		*kek = CK_INVALID_HANDLE;
		r = token_err_rv(err, CUSTODY_EFAIL, rv, "cannot %s the KEK on "
				 "token %s", src->generate ? "generate" : "unwrap",
				 tok->label);
		if (!src->generate)
			custody_err_hint(err, "the wrapped KEK is damaged or was "
					 "made for another transport key");
		goto out;
	}
	r = token_check_attrs(tok, *kek, what, &t, src->generate, err);
out:
	if (r != CUSTODY_OK && *kek != CK_INVALID_HANDLE) {
		token_destroy_object(tok, *kek, what);
		*kek = CK_INVALID_HANDLE;
	}
	token_tmpl_free(&t);
	token_tmpl_free(&inner);
	return r;
}

int
custody_token_kek_create(custody_token *tok, char kcv[CUSTODY_KCV_HEX + 1],
			 custody_err *err)
{
	struct kek_source src = {.generate = 1};
	CK_MECHANISM_TYPE tag_mech;
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	char have[CUSTODY_KCV_HEX + 1], narration[1536];
	custody_err why;
	int r;

	memset(&why, 0, sizeof(why));
	if ((r = token_require_login(tok, "create the KEK", err)) !=
	    CUSTODY_OK ||
	    (r = find_kek(tok, &h, err)) != CUSTODY_OK)
		return r;
	if (h != CK_INVALID_HANDLE) {
		if (kcv_of(tok, h, have, NULL) != CUSTODY_OK)
			strcpy(have, "?");
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot create the KEK: token %s already "
				       "holds a KEK (KCV %s)", tok->label, have);
	}
	if ((r = token_require_mech(tok, CKM_AES_KEY_GEN, CKF_GENERATE,
				    "create a KEK", err)) != CUSTODY_OK ||
	    (r = token_kek_mech(tok, &tag_mech, err)) != CUSTODY_OK)
		return r;
	src.cluster = custody_token_require_cluster(tok, "be a cluster member",
						    &why) == CUSTODY_OK;
	if (src.cluster &&
	    (r = token_probe_trusted_private_kek(tok, &src.trusted, err)) !=
	    CUSTODY_OK)
		return r;
	if (src.cluster)
		snprintf(narration, sizeof(narration), "generating the cluster "
			 "KEK (AES-256) on token %s (serial %s): private, "
			 "sensitive, wrap/unwrap only, extractable only under a "
			 "trusted key%s", tok->label, tok->serial,
			 src.trusted ? ", trusted" : "");
	else
		snprintf(narration, sizeof(narration), "generating the store's "
			 "KEK (AES-256) on token %s (serial %s): private, "
			 "sensitive, wrap only, never extractable; it keeps "
			 "integrity tags and cannot serve a cluster (%s)",
			 tok->label, tok->serial, why.msg);
	src.narration = narration;
	if ((r = kek_make(tok, &src, &h, err)) != CUSTODY_OK)
		return r;
	/* Only a KEK this call made and could not finish is removed. */
	if ((r = kcv_of(tok, h, kcv, err)) != CUSTODY_OK) {
		token_destroy_object(tok, h, "KEK");
		return r;
	}
	custody_step("generated the KEK on token %s: key check value %s",
		     tok->label, kcv);
	return CUSTODY_OK;
}

/* ------------------------------------------------------- transport keys */

int
custody_token_transport_public(custody_token *tok, const char *node,
			       unsigned char **spki, size_t *spki_len,
			       custody_err *err)
{
	unsigned char id[NODE_ID_MAX];
	size_t id_len = 0;
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	int r;

	*spki = NULL;
	*spki_len = 0;
	if ((r = find_transport(tok, node, NULL, id, &id_len, NULL, &h,
				err)) != CUSTODY_OK)
		return r;
	if (h == CK_INVALID_HANDLE)
		return custody_err_set(err, CUSTODY_ENOTFOUND,
				       "node %s has no transport key on token %s",
				       node, tok->label);
	r = token_public_spki(tok, h, TRANSPORT_KEYSPEC, "transport public key",
			      spki, spki_len, err);
	return r;
}

/* A transport key pair does one thing: its private half unwraps the KEK,
 * and is kept; its public half is wrapped under by the SO's trusted copy
 * (create_trusted_transport), never by itself. */
static const struct token_flag transport_public_flags[] = {
	{CKA_TOKEN, 1}, {CKA_PRIVATE, 0}, {CKA_ENCRYPT, 0}, {CKA_WRAP, 0},
	{CKA_VERIFY, 0}, {CKA_VERIFY_RECOVER, 0}, {CKA_DERIVE, 0},
};

static const struct token_flag transport_private_flags[] = {
	{CKA_TOKEN, 1}, {CKA_PRIVATE, 1}, {CKA_SENSITIVE, 1},
	{CKA_EXTRACTABLE, 0}, {CKA_UNWRAP, 1}, {CKA_DECRYPT, 0}, {CKA_SIGN, 0},
	{CKA_SIGN_RECOVER, 0}, {CKA_DERIVE, 0},
};

int
custody_token_transport_create(custody_token *tok, const char *node,
			       unsigned char **spki, size_t *spki_len,
			       custody_err *err)
{
	unsigned char id[NODE_ID_MAX];
	size_t id_len = 0;
	struct token_tmpl pub, priv, inner;
	CK_MECHANISM gen = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
	CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE h;
	CK_RV rv;
	int r;

	token_tmpl_init(&pub);
	token_tmpl_init(&priv);
	token_tmpl_init(&inner);
	*spki = NULL;
	*spki_len = 0;
	if ((r = find_transport(tok, node, "create a transport key", id,
				&id_len, &h, NULL, err)) != CUSTODY_OK)
		goto out;
	if (h == CK_INVALID_HANDLE &&
	    (r = token_find_by_id(tok, CKO_PUBLIC_KEY, id, id_len, &h, err)) !=
	    CUSTODY_OK)
		goto out;
	if (h != CK_INVALID_HANDLE) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "node %s already has a transport key on "
				    "token %s", node, tok->label);
		goto out;
	}
	token_tmpl_add(&pub, CKA_CLASS, &class_public, sizeof(class_public));
	token_tmpl_add(&pub, CKA_KEY_TYPE, &type_rsa, sizeof(type_rsa));
	token_tmpl_flags(&pub, transport_public_flags,
			 NELEM(transport_public_flags));
	token_tmpl_add(&pub, CKA_MODULUS_BITS, &transport_bits,
		  sizeof(transport_bits));
	token_tmpl_add(&pub, CKA_PUBLIC_EXPONENT, rsa_f4, sizeof(rsa_f4));
	token_tmpl_add(&pub, CKA_ID, id, id_len);
	token_tmpl_add(&pub, CKA_LABEL, id, id_len);

	token_tmpl_add(&priv, CKA_CLASS, &class_private, sizeof(class_private));
	token_tmpl_add(&priv, CKA_KEY_TYPE, &type_rsa, sizeof(type_rsa));
	token_tmpl_flags(&priv, transport_private_flags,
			 NELEM(transport_private_flags));
	token_tmpl_add(&priv, CKA_ID, id, id_len);
	token_tmpl_add(&priv, CKA_LABEL, id, id_len);
	token_tmpl_optional_bool(tok, &priv, TOKEN_ATTR_COPYABLE, 0);
	unwrap_template(tok, &inner, transport_unwrap_template,
			NELEM(transport_unwrap_template));
	token_tmpl_nested(&priv, CKA_UNWRAP_TEMPLATE, &inner);
	if ((r = token_tmpl_check(&pub, tok, "transport public key", err)) !=
	    CUSTODY_OK ||
	    (r = token_tmpl_check(&priv, tok, "transport private key", err)) !=
	    CUSTODY_OK)
		goto out;

	custody_step("generating the RSA-%d transport key pair of node %s on "
		     "token %s (serial %s): the private half unwraps only and "
		     "is never extractable", TRANSPORT_BITS, node, tok->label,
		     tok->serial);
	rv = tok->f->C_GenerateKeyPair(tok->session, &gen, pub.a, pub.n,
				       priv.a, priv.n, &hpub, &hpriv);
	if (rv != CKR_OK) {
		hpub = hpriv = CK_INVALID_HANDLE;
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot generate the transport key pair of "
				 "node %s on token %s", node, tok->label);
		goto out;
	}
	if ((r = token_check_attrs(tok, hpriv, "transport private key", &priv,
				   1, err)) != CUSTODY_OK ||
	    (r = token_public_spki(tok, hpub, TRANSPORT_KEYSPEC,
				   "transport public key", spki, spki_len,
				   err)) != CUSTODY_OK)
		goto out;
	custody_step("generated the transport key pair of node %s on token %s",
		     node, tok->label);
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK) {
		token_destroy_object(tok, hpub, "transport public key");
		token_destroy_object(tok, hpriv, "transport private key");
	}
	token_tmpl_free(&pub);
	token_tmpl_free(&priv);
	token_tmpl_free(&inner);
	return r;
}

/* ----------------------------------------------------------------- admit */

/* n and e of an RSA SPKI of at least TRANSPORT_BITS, OPENSSL_malloc'ed. */
static int
spki_rsa(const char *node, const unsigned char *spki, size_t spki_len,
	 unsigned char **n, size_t *n_len, unsigned char **e, size_t *e_len,
	 custody_err *err)
{
	const unsigned char *p = spki;
	EVP_PKEY *pkey = NULL;
	BIGNUM *bn = NULL, *be = NULL;
	int bits, r = CUSTODY_EFAIL;

	if (spki == NULL || spki_len == 0 ||
	    (pkey = d2i_PUBKEY(NULL, &p, (long)spki_len)) == NULL ||
	    p != spki + spki_len) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot admit node %s: its transport "
					"public key is not a DER "
					"SubjectPublicKeyInfo", node);
		goto out;
	}
	bits = EVP_PKEY_get_bits(pkey);
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA ||
	    bits < TRANSPORT_BITS) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot admit node %s: its transport key "
				    "must be RSA of at least %d bits (it is %s "
				    "of %d bits)", node, TRANSPORT_BITS,
				    OBJ_nid2sn(EVP_PKEY_get_base_id(pkey)) != NULL
					    ? OBJ_nid2sn(EVP_PKEY_get_base_id(pkey))
					    : "?", bits);
		goto out;
	}
	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &bn) != 1 ||
	    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &be) != 1 ||
	    (*n = OPENSSL_malloc((size_t)BN_num_bytes(bn))) == NULL ||
	    (*e = OPENSSL_malloc((size_t)BN_num_bytes(be))) == NULL) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot admit node %s: cannot read its "
					"transport public key", node);
		goto out;
	}
	*n_len = (size_t)BN_bn2bin(bn, *n);
	*e_len = (size_t)BN_bn2bin(be, *e);
	r = CUSTODY_OK;
out:
	ERR_clear_error();
	BN_free(bn);
	BN_free(be);
	EVP_PKEY_free(pkey);
	return r;
}

/* Refuses an SO login the token says would lock or is locked. */
static int
so_pin_flags_refuse(custody_token *tok, custody_err *err)
{
	CK_TOKEN_INFO ti;
	CK_RV rv;
	int r = CUSTODY_OK;

	rv = tok->f->C_GetTokenInfo(tok->slot, &ti);
	if (rv != CKR_OK) {
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot log in to token %s as security "
				 "officer", tok->label);
	} else if (ti.flags & CKF_SO_PIN_LOCKED) {
		r = custody_err_set(err, CUSTODY_EPIN,
				    "cannot log in to token %s as security "
				    "officer: the SO PIN is locked", tok->label);
	} else if (ti.flags & CKF_SO_PIN_FINAL_TRY) {
		r = custody_err_set(err, CUSTODY_EPIN,
				    "cannot log in to token %s as security "
				    "officer: the token says one more wrong SO "
				    "PIN locks it", tok->label);
		custody_err_hint(err, "custody does not risk the last try");
	}
	return r;
}

static int
so_login(custody_token *tok, const char *so_pin, size_t so_pin_len,
	 custody_err *err)
{
	CK_SESSION_INFO si;
	CK_RV rv;
	int r;

	if ((r = so_pin_flags_refuse(tok, err)) != CUSTODY_OK)
		return r;
	/* One user type at a time per process and token. */
	if (tok->f->C_GetSessionInfo(tok->session, &si) == CKR_OK &&
	    si.state != CKS_RO_PUBLIC_SESSION &&
	    si.state != CKS_RW_PUBLIC_SESSION) {
		custody_step("logging the user out of token %s for the security "
			     "officer", tok->label);
		token_found_forget_all();
		rv = tok->f->C_Logout(tok->session);
		if (rv != CKR_OK && rv != CKR_USER_NOT_LOGGED_IN)
			return token_err_rv(err, CUSTODY_EFAIL, rv,
					    "cannot log the user out of token "
					    "%s", tok->label);
	}
	tok->logged_in = 0;
	token_found_forget_all();
	rv = tok->f->C_Login(tok->session, CKU_SO, (CK_UTF8CHAR *)so_pin,
			     so_pin != NULL ? so_pin_len : 0);
	switch (rv) {
	case CKR_OK:
		return CUSTODY_OK;
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
		return custody_err_set(err, CUSTODY_EPIN,
				       "cannot log in to token %s as security "
				       "officer: the token rejected the PIN",
				       tok->label);
	case CKR_PIN_LOCKED:
		return custody_err_set(err, CUSTODY_EPIN,
				       "cannot log in to token %s as security "
				       "officer: the SO PIN is locked",
				       tok->label);
	default:
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot log in to token %s as security "
				    "officer", tok->label);
	}
}

/* Destroys the trusted transport keys that earlier versions of custody
 * left on this token as token objects ("custody-admitted:NODE"): while
 * one is there, any holder of the user PIN can wrap the KEK for it. */
static void
drop_stale_admitted(custody_token *tok)
{
	CK_ATTRIBUTE t[] = {
		A(CKA_CLASS, class_public),
		A_TRUE(CKA_TOKEN),
		A_TRUE(CKA_TRUSTED),
	};
	size_t plen = sizeof(ADMITTED_PREFIX) - 1, n = 0, i, id_len;
	CK_OBJECT_HANDLE *h = NULL;
	unsigned char *id;

	if (token_find(tok, t, NELEM(t), &h, &n, NULL) != CUSTODY_OK)
		return;
	for (i = 0; i < n; i++) {
		id = NULL;
		if (token_get_attr(tok, h[i], CKA_ID, &id, &id_len, NULL) ==
			    CUSTODY_OK &&
		    id_len > plen && memcmp(id, ADMITTED_PREFIX, plen) == 0) {
			custody_step("destroying the trusted transport key "
				     "%.*s that an earlier custody left on "
				     "token %s", (int)id_len, (char *)id,
				     tok->label);
			token_destroy_object(tok, h[i], "stale trusted transport key");
		}
		free(id);
	}
	free(h);
}

/* A session object, public, that wraps under trust and does nothing else. */
static const struct token_flag trusted_transport_flags[] = {
	{CKA_TOKEN, 0}, {CKA_PRIVATE, 0}, {CKA_TRUSTED, 1}, {CKA_WRAP, 1},
	{CKA_ENCRYPT, 0}, {CKA_VERIFY, 0}, {CKA_VERIFY_RECOVER, 0},
	{CKA_DERIVE, 0},
};

/* The SO's part: NODE's transport public key as a trusted wrapping key,
 * a session object (it ends with the session at the latest). */
static int
create_trusted_transport(custody_token *tok, const char *node,
			 const unsigned char *n, size_t n_len,
			 const unsigned char *e, size_t e_len,
			 const unsigned char *id, size_t id_len,
			 CK_OBJECT_HANDLE *h, custody_err *err)
{
	struct token_tmpl t;
	CK_RV rv;
	int r;

	token_tmpl_init(&t);
	token_tmpl_add(&t, CKA_CLASS, &class_public, sizeof(class_public));
	token_tmpl_add(&t, CKA_KEY_TYPE, &type_rsa, sizeof(type_rsa));
	token_tmpl_flags(&t, trusted_transport_flags,
			 NELEM(trusted_transport_flags));
	token_tmpl_optional_bool(tok, &t, TOKEN_ATTR_COPYABLE, 0);
	token_tmpl_add(&t, CKA_MODULUS, (void *)n, n_len);
	token_tmpl_add(&t, CKA_PUBLIC_EXPONENT, (void *)e, e_len);
	token_tmpl_add(&t, CKA_ID, (void *)id, id_len);
	token_tmpl_add(&t, CKA_LABEL, (void *)id, id_len);
	custody_step("security officer: making the transport key of node %s a "
		     "trusted wrapping key on token %s (serial %s), for this "
		     "session only", node, tok->label, tok->serial);
	*h = CK_INVALID_HANDLE;
	if ((r = token_tmpl_check(&t, tok, "trusted transport key", err)) ==
	    CUSTODY_OK &&
	    (rv = tok->f->C_CreateObject(tok->session, t.a, t.n, h)) != CKR_OK) {
		*h = CK_INVALID_HANDLE;
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot create the trusted transport key of "
				 "node %s on token %s", node, tok->label);
	}
	token_tmpl_free(&t);
	return r;
}

static void
so_logout(custody_token *tok)
{
	CK_RV rv;

	token_found_forget_all();
	rv = tok->f->C_Logout(tok->session);
	if (rv != CKR_OK)
		custody_warn("cannot log the security officer out of token %s: "
			     "%s", tok->label, token_rv_text(rv));
	else
		custody_step("security officer logged out of token %s",
			     tok->label);
}

int
custody_token_admit_wrap_kek(custody_token *tok, const char *so_pin,
			     size_t so_pin_len, const char *user_pin,
			     size_t user_pin_len, const char *node,
			     const unsigned char *spki, size_t spki_len,
			     unsigned char **blob, size_t *blob_len,
			     custody_err *err)
{
	unsigned char id[NODE_ID_MAX], *n = NULL, *e = NULL;
	size_t id_len = 0, n_len = 0, e_len = 0;
	CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA_1, CKG_MGF1_SHA1,
					CKZ_DATA_SPECIFIED, NULL, 0};
	CK_MECHANISM mech = {CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep)};
	CK_OBJECT_HANDLE kek = CK_INVALID_HANDLE, pub = CK_INVALID_HANDLE;
	custody_err login_err;
	int r, r2;
	CK_RV rv;

	*blob = NULL;
	*blob_len = 0;
	memset(&login_err, 0, sizeof(login_err));
	if ((r = node_id(ADMITTED_PREFIX, node, id, &id_len, err)) !=
	    CUSTODY_OK ||
	    (r = spki_rsa(node, spki, spki_len, &n, &n_len, &e, &e_len,
			  err)) != CUSTODY_OK ||
	    (r = need_kek(tok, "wrap the KEK", &kek, err)) != CUSTODY_OK)
		goto out;
	if ((r = so_login(tok, so_pin, so_pin_len, err)) != CUSTODY_OK)
		goto relogin;
	r = create_trusted_transport(tok, node, n, n_len, e, e_len, id,
				     id_len, &pub, err);
	so_logout(tok);
relogin:
	/* The user again, on every path: the SO step logged it out. */
	r2 = custody_token_login(tok, user_pin, user_pin_len, &login_err);
	if (r == CUSTODY_OK && r2 != CUSTODY_OK) {
		r = r2;
		if (err != NULL)
			*err = login_err;
	}
	/* Handles of private objects do not outlive a logout: the KEK is
	 * found again. */
	if (r != CUSTODY_OK ||
	    (r = need_kek(tok, "wrap the KEK", &kek, err)) != CUSTODY_OK)
		goto out;
	drop_stale_admitted(tok);
	custody_step("wrapping the KEK on token %s for node %s (RSA-OAEP)",
		     tok->label, node);
	if (token_wrap_key(tok, &mech, pub, kek, blob, blob_len, &rv) != CUSTODY_OK) {
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot wrap the KEK for node %s on token %s",
				 node, tok->label);
		goto out;
	}
	r = CUSTODY_OK;
out:
	if (pub != CK_INVALID_HANDLE) {
		token_destroy_object(tok, pub, "trusted transport key");
		custody_step("the trusted transport key of node %s is gone from "
			     "token %s: nobody can wrap the KEK for it again "
			     "without the security officer", node, tok->label);
	}
	OPENSSL_cleanse(&login_err, sizeof(login_err));
	OPENSSL_free(n);
	OPENSSL_free(e);
	return r;
}

/* 6 or 16 hex digits, any case: a key check value or a KEK check. */
static int
kcv_valid(const char *kcv)
{
	size_t i, len = kcv != NULL ? strlen(kcv) : 0;

	if (len != CUSTODY_KCV_HEX && len != CUSTODY_KEK_CHECK_HEX)
		return 0;
	for (i = 0; i < len; i++) {
		char c = kcv[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		      (c >= 'A' && c <= 'F')))
			return 0;
	}
	return 1;
}

/*
 * A KEK the token holds before an unwrap: the one expected (*done, OK),
 * another (*done, refused), or an object that cannot wrap, which a join
 * killed inside its unwrap leaves: this node is joining (its transport
 * key and the wrap for it are there), so the object is custody's own:
 * destroyed (*kek CK_INVALID_HANDLE, not *done: the unwrap goes on).
 */
static int
kek_already_there(custody_token *tok, CK_OBJECT_HANDLE *kek, size_t digits,
		  const char *expected_kcv, int *done, custody_err *err)
{
	char kcv[CUSTODY_KEK_CHECK_HEX + 1];
	int kek_fault = 0, r;
	CK_RV rv;

	*done = 1;
	r = check_of_kek(tok, *kek, digits / 2, kcv, &kek_fault, err);
	if (r != CUSTODY_OK && kek_fault) {
		custody_step("token %s holds a KEK object that cannot be "
			     "used (%s): destroying it and unwrapping the "
			     "KEK again", tok->label, err->msg);
		rv = tok->f->C_DestroyObject(tok->session, *kek);
		token_found_forget_all();
		if (rv != CKR_OK)
			return token_err_rv(err, CUSTODY_EFAIL, rv,
					    "cannot destroy the damaged KEK "
					    "object (id custody-kek) on "
					    "token %s", tok->label);
		*kek = CK_INVALID_HANDLE;
		*done = 0;
		return CUSTODY_OK;
	}
	if (r != CUSTODY_OK)
		return r;
	if (strcasecmp(kcv, expected_kcv) != 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot unwrap the KEK: token "
				       "%s already holds another KEK "
				       "(key check value %s, "
				       "expected %s)", tok->label,
				       kcv, expected_kcv);
	custody_step("token %s already holds the KEK "
		     "(key check value %s)", tok->label, kcv);
	return CUSTODY_OK;
}

int
custody_token_unwrap_kek(custody_token *tok, const char *node,
			 const unsigned char *blob, size_t blob_len,
			 const char *expected_kcv, custody_err *err)
{
	unsigned char id[NODE_ID_MAX];
	size_t id_len = 0;
	struct kek_source src = {.cluster = 1, .blob = blob,
				 .blob_len = blob_len};
	CK_OBJECT_HANDLE kek = CK_INVALID_HANDLE;
	char kcv[CUSTODY_KEK_CHECK_HEX + 1], narration[256];
	size_t digits;
	int r;

	if ((r = node_id(TRANSPORT_PREFIX, node, id, &id_len, err)) !=
	    CUSTODY_OK)
		return r;
	if (!kcv_valid(expected_kcv))
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot unwrap the KEK: the expected "
				       "check value must be %d or %d hex digits",
				       CUSTODY_KCV_HEX, CUSTODY_KEK_CHECK_HEX);
	digits = strlen(expected_kcv);
	if ((r = token_require_login(tok, "unwrap the KEK", err)) !=
	    CUSTODY_OK ||
	    (r = find_kek(tok, &kek, err)) != CUSTODY_OK)
		return r;
	if (kek != CK_INVALID_HANDLE) {
		int done = 1;

		r = kek_already_there(tok, &kek, digits, expected_kcv, &done, err);
		if (r != CUSTODY_OK || done)
			return r;
	}
	if ((r = token_find_by_id(tok, CKO_PRIVATE_KEY, id, id_len, &src.transport,
			    err)) != CUSTODY_OK)
		return r;
	if (src.transport == CK_INVALID_HANDLE) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot unwrap the KEK: node %s has no "
				    "transport key on token %s", node,
				    tok->label);
		custody_err_hint(err, "enroll the node first with custody node "
				 "enroll");
		return r;
	}
	if (blob == NULL || blob_len == 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot unwrap the KEK on token %s: the "
				       "wrapped KEK is empty", tok->label);
	if ((r = token_probe_trusted_private_kek(tok, &src.trusted, err)) !=
	    CUSTODY_OK)
		return r;
	snprintf(narration, sizeof(narration), "unwrapping the KEK into token "
		 "%s (serial %s) with the transport key of node %s", tok->label,
		 tok->serial, node);
	src.narration = narration;
	if ((r = kek_make(tok, &src, &kek, err)) != CUSTODY_OK)
		return r;
	if ((r = check_of_kek(tok, kek, digits / 2, kcv, NULL, err)) ==
	    CUSTODY_OK && strcasecmp(kcv, expected_kcv) != 0)
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "the unwrapped KEK does not match: key "
				    "check value %s, expected %s", kcv,
				    expected_kcv);
	if (r != CUSTODY_OK) {
		token_destroy_object(tok, kek, "unwrapped KEK");
		return r;
	}
	custody_step("the KEK is on token %s: key check value %s", tok->label,
		     kcv);
	return CUSTODY_OK;
}

/* ---------------------------------------------------------- packages */

int
custody_token_wrap_private_key(custody_token *tok, const char *key_id,
			       unsigned char **blob, size_t *blob_len,
			       custody_err *err)
{
	CK_MECHANISM mech = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
	CK_OBJECT_HANDLE kek = CK_INVALID_HANDLE, key = CK_INVALID_HANDLE;
	CK_RV rv;
	int r;

	*blob = NULL;
	*blob_len = 0;
	if ((r = token_find_private_key(tok, key_id, "wrap a private key",
					&key, err)) != CUSTODY_OK ||
	    (r = need_kek(tok, "wrap a private key", &kek, err)) != CUSTODY_OK)
		return r;
	if (token_wrap_key(tok, &mech, kek, key, blob, blob_len, &rv) != CUSTODY_OK) {
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot wrap private key %s under the KEK on "
				 "token %s", key_id, tok->label);
		if (rv == CKR_KEY_UNEXTRACTABLE)
			custody_err_hint(err, "the key is not extractable: it "
					 "was sealed, or not made with "
					 "--replicable");
		else if (rv == CKR_KEY_NOT_WRAPPABLE)
			custody_err_hint(err, "the key may only be wrapped under "
					 "a trusted key, and the KEK is not "
					 "one");
		return r;
	}
	custody_step("wrapped private key %s under the KEK on token %s",
		     key_id, tok->label);
	return CUSTODY_OK;
}

/* What the certificate's key needs on the token, all OPENSSL_malloc'ed. */
struct pubkey {
	CK_KEY_TYPE type;
	unsigned char *a, *b;	/* RSA: n, e; EC: params, point (DER)   */
	size_t a_len, b_len;
	unsigned char *subject;
	size_t subject_len;
};

static void
pubkey_free(struct pubkey *k)
{
	OPENSSL_free(k->a);
	OPENSSL_free(k->b);
	OPENSSL_free(k->subject);
	memset(k, 0, sizeof(*k));
}

static int
bn_bytes(EVP_PKEY *pkey, const char *param, unsigned char **out,
	 size_t *len)
{
	BIGNUM *bn = NULL;
	int ok = 0;

	if (EVP_PKEY_get_bn_param(pkey, param, &bn) == 1 &&
	    (*out = OPENSSL_malloc((size_t)BN_num_bytes(bn) + 1)) != NULL) {
		*len = (size_t)BN_bn2bin(bn, *out);
		ok = 1;
	}
	BN_free(bn);
	return ok;
}

static int
ec_parts(EVP_PKEY *pkey, struct pubkey *k)
{
	char group[64] = "";
	unsigned char point[1 + 2 * 66];
	size_t point_len = 0;
	ASN1_OCTET_STRING *os = NULL;
	int nid = NID_undef, len, ok = 0;

	if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
					   group, sizeof(group), NULL) != 1 ||
	    (nid = OBJ_sn2nid(group)) == NID_undef ||
	    EVP_PKEY_get_octet_string_param(pkey,
					    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
					    point, sizeof(point),
					    &point_len) != 1 ||
	    point_len == 0 || point[0] != 0x04)
		goto out;
	if ((len = i2d_ASN1_OBJECT(OBJ_nid2obj(nid), &k->a)) <= 0)
		goto out;
	k->a_len = (size_t)len;
	if ((os = ASN1_OCTET_STRING_new()) == NULL ||
	    ASN1_OCTET_STRING_set(os, point, (int)point_len) != 1 ||
	    (len = i2d_ASN1_OCTET_STRING(os, &k->b)) <= 0)
		goto out;
	k->b_len = (size_t)len;
	ok = 1;
out:
	ASN1_OCTET_STRING_free(os);
	return ok;
}

static int
pubkey_of(X509 *cert, const char *key_id, struct pubkey *k, custody_err *err)
{
	EVP_PKEY *pkey = X509_get0_pubkey(cert);
	unsigned char *der = NULL;
	int len, ok = 0;

	memset(k, 0, sizeof(*k));
	if (pkey == NULL)
		goto fail;
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
		k->type = CKK_RSA;
		ok = bn_bytes(pkey, OSSL_PKEY_PARAM_RSA_N, &k->a, &k->a_len) &&
		     bn_bytes(pkey, OSSL_PKEY_PARAM_RSA_E, &k->b, &k->b_len);
		break;
	case EVP_PKEY_EC:
		k->type = CKK_EC;
		ok = ec_parts(pkey, k);
		break;
	default:
		pubkey_free(k);
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot unwrap the package of key id %s: "
				       "its certificate's key is neither RSA "
				       "nor EC", key_id);
	}
	if (ok && (len = i2d_X509_NAME(X509_get_subject_name(cert), &der)) > 0) {
		k->subject = der;
		k->subject_len = (size_t)len;
		return CUSTODY_OK;
	}
fail:
	pubkey_free(k);
	return custody_err_openssl(err, CUSTODY_EFAIL,
				   "cannot unwrap the package of key id %s: "
				   "cannot read its certificate's public key",
				   key_id);
}

/* The public key object beside the unwrapped key, as import makes it. */
static int
create_public(custody_token *tok, const struct pubkey *k,
	      const unsigned char *id, size_t id_len, const char *label,
	      CK_OBJECT_HANDLE *h, custody_err *err)
{
	struct token_tmpl t;
	CK_RV rv;
	int r;

	token_tmpl_init(&t);
	token_tmpl_signing_public(&t, k->type, id, id_len, label);
	token_tmpl_add(&t, CKA_SUBJECT, k->subject, k->subject_len);
	if (k->type == CKK_RSA) {
		token_tmpl_add(&t, CKA_MODULUS, k->a, k->a_len);
		token_tmpl_add(&t, CKA_PUBLIC_EXPONENT, k->b, k->b_len);
	} else {
		token_tmpl_add(&t, CKA_EC_PARAMS, k->a, k->a_len);
		token_tmpl_add(&t, CKA_EC_POINT, k->b, k->b_len);
	}
	*h = CK_INVALID_HANDLE;
	if ((r = token_tmpl_check(&t, tok, "public key", err)) == CUSTODY_OK &&
	    (rv = tok->f->C_CreateObject(tok->session, t.a, t.n, h)) != CKR_OK) {
		*h = CK_INVALID_HANDLE;
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot create the public key beside the "
				 "unwrapped key on token %s", tok->label);
	}
	token_tmpl_free(&t);
	return r;
}

int
custody_token_unwrap_private_key(custody_token *tok,
				 const unsigned char *blob, size_t blob_len,
				 const char *label, X509 *cert,
				 custody_err *err)
{
	CK_MECHANISM mech = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
	CK_OBJECT_HANDLE kek = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, h = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE had_pub = CK_INVALID_HANDLE;
	unsigned char id[20];
	char hex[CUSTODY_KEY_ID_HEX + 1], *cn = NULL;
	struct pubkey k;
	struct token_tmpl t;
	custody_token_import_result res;
	CK_RV rv;
	int r;

	memset(&k, 0, sizeof(k));
	token_tmpl_init(&t);
	if (cert == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot unwrap a package: no certificate "
				    "given");
		goto out;
	}
	if ((r = custody_cert_key_id(cert, id, err)) != CUSTODY_OK)
		goto out;
	custody_hex_encode(id, sizeof(id), hex, 0);
	if (label == NULL || label[0] == '\0')
		label = (cn = custody_cert_subject_cn(cert)) != NULL ? cn : hex;
	if ((r = pubkey_of(cert, hex, &k, err)) != CUSTODY_OK ||
	    (r = need_kek(tok, "unwrap a private key", &kek, err)) !=
	    CUSTODY_OK ||
	    (r = token_find_key_pair(tok, id, sizeof(id), &h, &had_pub, err)) !=
	    CUSTODY_OK)
		goto out;
	if (h != CK_INVALID_HANDLE) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot unwrap the package of key id %s: a "
				    "private key with that key id is already on "
				    "token %s", hex, tok->label);
		goto out;
	}
	if (blob == NULL || blob_len == 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot unwrap the package of key id %s on "
				    "token %s: the package is empty", hex,
				    tok->label);
		goto out;
	}
	/* What import sets, which holds the KEK's CKA_UNWRAP_TEMPLATE. */
	token_tmpl_signing_private(tok, &t, k.type, id, sizeof(id), label, 0);
	token_tmpl_add(&t, CKA_SUBJECT, k.subject, k.subject_len);
	if ((r = token_tmpl_check(&t, tok, "unwrapped private key", err)) !=
	    CUSTODY_OK)
		goto out;
	custody_step("unwrapping the package of key id %s into token %s "
		     "(serial %s): sensitive, never extractable", hex,
		     tok->label, tok->serial);
	rv = tok->f->C_UnwrapKey(tok->session, &mech, kek, (CK_BYTE *)blob,
				 blob_len, t.a, t.n, &priv);
	if (rv != CKR_OK) {
		priv = CK_INVALID_HANDLE;
		r = token_err_rv(err, CUSTODY_EFAIL, rv,
				 "cannot unwrap the package of key id %s on "
				 "token %s", hex, tok->label);
		custody_err_hint(err, "the package is damaged, was made under "
				 "another KEK, or holds another kind of key");
		goto out;
	}
	token_found_remember(tok, CKO_PRIVATE_KEY, id, sizeof(id), priv);
	/* Prove the key before anything else is written. */
	if ((r = token_check_attrs(tok, priv, "unwrapped private key", &t,
				   0, err)) != CUSTODY_OK ||
	    (r = custody_token_verify_key(tok, hex, cert, err)) != CUSTODY_OK)
		goto out;
	/* A public key found before the unwrap is still there: the lock is
	 * held, and nothing here destroys one. */
	if ((had_pub == CK_INVALID_HANDLE &&
	     (r = create_public(tok, &k, id, sizeof(id), label, &pub, err)) !=
	     CUSTODY_OK) ||
	    (r = custody_token_import(tok, NULL, cert, NULL, label, 0, &res,
				      err)) != CUSTODY_OK)
		goto out;
	custody_step("private key %s is on token %s and matches its "
		     "certificate", hex, tok->label);
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK) {
		token_destroy_object(tok, pub, "public key");
		token_destroy_object(tok, priv, "unwrapped private key");
	}
	token_tmpl_free(&t);
	pubkey_free(&k);
	free(cn);
	return r;
}

/* -------------------------------------------------------------- seal */

int
custody_token_seal(custody_token *tok, const char *key_id, custody_err *err)
{
	CK_ATTRIBUTE off = A_FALSE(CKA_EXTRACTABLE);
	CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
	int extractable = 0, r;
	CK_RV rv;

	if ((r = token_find_private_key(tok, key_id, "seal a private key",
					&key, err)) != CUSTODY_OK ||
	    (r = token_get_bool(tok, key, CKA_EXTRACTABLE, &extractable,
				err)) != CUSTODY_OK)
		return r;
	if (!extractable) {
		custody_step("private key %s on token %s is already sealed",
			     key_id, tok->label);
		return CUSTODY_OK;
	}
	rv = tok->f->C_SetAttributeValue(tok->session, key, &off, 1);
	if (rv != CKR_OK)
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot seal private key %s on token %s",
				    key_id, tok->label);
	custody_step("sealed private key %s on token %s: it is no longer "
		     "extractable", key_id, tok->label);
	return CUSTODY_OK;
}

/* ------------------------------------------------- after the ceremony */

int
custody_token_transport_destroy(custody_token *tok, const char *node,
				custody_err *err)
{
	unsigned char id[NODE_ID_MAX];
	size_t id_len = 0;
	CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE, pub = CK_INVALID_HANDLE;
	struct {
		const char *name;
		CK_OBJECT_HANDLE h;
	} half[2];
	size_t i;
	CK_RV rv;
	int r;

	if ((r = find_transport(tok, node, "destroy a transport key", id,
				&id_len, &priv, &pub, err)) != CUSTODY_OK)
		return r;
	if (priv == CK_INVALID_HANDLE && pub == CK_INVALID_HANDLE)
		return custody_err_set(err, CUSTODY_ENOTFOUND,
				       "node %s has no transport key on token %s",
				       node, tok->label);
	/* The private half first, then the public. */
	half[0].name = "private";
	half[0].h = priv;
	half[1].name = "public";
	half[1].h = pub;
	token_found_forget_all();
	for (i = 0; i < NELEM(half); i++) {
		if (half[i].h != CK_INVALID_HANDLE &&
		    (rv = tok->f->C_DestroyObject(tok->session, half[i].h)) !=
		    CKR_OK)
			return token_err_rv(err, CUSTODY_EFAIL, rv,
					    "cannot destroy the transport %s key "
					    "of node %s on token %s", half[i].name,
					    node, tok->label);
	}
	custody_step("destroyed the transport key pair of node %s on token %s",
		     node, tok->label);
	return CUSTODY_OK;
}

int
custody_token_kek_destroy(custody_token *tok, custody_err *err)
{
	CK_OBJECT_HANDLE kek = CK_INVALID_HANDLE;
	CK_RV rv;
	int r;

	if ((r = need_kek(tok, "destroy the KEK", &kek, err)) != CUSTODY_OK)
		return r;
	rv = tok->f->C_DestroyObject(tok->session, kek);
	token_found_forget_all();
	if (rv != CKR_OK)
		return token_err_rv(err, CUSTODY_EFAIL, rv,
				    "cannot destroy the KEK on token %s", tok->label);
	custody_step("destroyed the KEK on token %s", tok->label);
	return CUSTODY_OK;
}
