/*
 * cluster/admission.c — what makes an admission authentic: the cluster
 * authority's public key in the store and its fingerprint, the bytes the
 * authority signs when it admits a node, and their verification against
 * the key a node pinned at enroll.
 *
 * The signed bytes are text, one field a line, every field of a fixed
 * alphabet (node names have no newline, the rest is hex), so that no two
 * admissions share an encoding:
 *
 *   custody-admission-v1
 *   node NAME
 *   transport-spki-sha256 HEX
 *   kek-wrap-sha256 HEX
 *   kek-check HEX16
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <custody/hexfmt.h>
#include <custody/store.h>
#include <custody/token.h>

#include "cluster/internal.h"

#define META_AUTHORITY "authority_spki"
#define SPKI_MAX 512		/* bytes: a P-256 SPKI is 91 */
#define ADMISSION_MAX 512	/* bytes of the signed text */

void
custody_cluster_fingerprint(const unsigned char *spki, size_t len,
		    char out[CLUSTER_FP_SIZE])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	size_t i, o = 0;

	out[0] = '\0';
	if (EVP_Digest(spki, len, md, &md_len, EVP_sha256(), NULL) != 1)
		return;
	for (i = 0; i < 16 && i < md_len; i++)
		o += (size_t)snprintf(out + o, CLUSTER_FP_SIZE - o, "%s%02X",
				      i > 0 ? ":" : "", md[i]);
}

/* Hex digits only, upper case, with an optional "SHA256:" prefix and any
 * colons or blanks left out: what an operator pastes or types. */
static void
fp_normalise(const char *in, char *out, size_t size)
{
	size_t o = 0;

	if (strncasecmp(in, "SHA256:", 7) == 0)
		in += 7;
	for (; *in != '\0' && o + 1 < size; in++) {
		if (*in == ':' || *in == ' ' || *in == '\t')
			continue;
		out[o++] = (char)toupper((unsigned char)*in);
	}
	out[o] = '\0';
}

int
custody_cluster_fingerprint_matches(const char *fp, const char *typed)
{
	char a[CLUSTER_FP_SIZE], b[CLUSTER_FP_SIZE];

	if (fp == NULL || typed == NULL)
		return 0;
	fp_normalise(fp, a, sizeof(a));
	fp_normalise(typed, b, sizeof(b));
	return a[0] != '\0' && strcmp(a, b) == 0;
}

int
cluster_store_authority(custody_store *st, unsigned char **spki,
			size_t *spki_len, custody_err *err)
{
	char hex[2 * SPKI_MAX + 1];
	size_t len;
	int r;

	*spki = NULL;
	*spki_len = 0;
	r = custody_store_get_meta(st, META_AUTHORITY, hex, sizeof(hex), err);
	if (r == CUSTODY_ENOTFOUND)
		return custody_err_set(err, CUSTODY_ENOTFOUND,
				       "the store records no cluster authority");
	if (r != CUSTODY_OK)
		return r;
	len = strlen(hex);
	if (len == 0 || len % 2 != 0 || (*spki = malloc(len / 2)) == NULL ||
	    custody_hex_decode(hex, *spki, len / 2) != (long)(len / 2)) {
		free(*spki);
		*spki = NULL;
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the store's cluster authority is not a "
				       "public key in hex");
	}
	*spki_len = len / 2;
	return CUSTODY_OK;
}

int
cluster_put_store_authority(custody_store *st, const unsigned char *spki,
			    size_t spki_len, custody_err *err)
{
	char hex[2 * SPKI_MAX + 1];

	if (spki_len == 0 || spki_len > SPKI_MAX)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the cluster authority's public key is "
				       "%zu bytes long", spki_len);
	custody_hex_encode(spki, spki_len, hex, 1);
	return custody_store_put_meta(st, META_AUTHORITY, hex, 0, err);
}

static void
sha256_hex(const unsigned char *in, size_t len, char out[65])
{
	unsigned char md[32];

	if (EVP_Digest(in, len, md, NULL, EVP_sha256(), NULL) != 1)
		memset(md, 0, sizeof(md));
	custody_hex_encode(md, sizeof(md), out, 0);
}

int
cluster_admission_bytes(const char *node, const unsigned char *spki,
			size_t spki_len, const unsigned char *wrap,
			size_t wrap_len, const char *kek_check, char **out,
			size_t *out_len, custody_err *err)
{
	char spki_hex[65], wrap_hex[65];
	size_t size = ADMISSION_MAX;
	int n;

	sha256_hex(spki, spki_len, spki_hex);
	sha256_hex(wrap, wrap_len, wrap_hex);
	if ((*out = malloc(size)) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot build an admission: out of memory");
	n = snprintf(*out, size, "custody-admission-v1\nnode %s\n"
		     "transport-spki-sha256 %s\nkek-wrap-sha256 %s\n"
		     "kek-check %s\n", node, spki_hex, wrap_hex, kek_check);
	if (n < 0 || (size_t)n >= size) {
		free(*out);
		*out = NULL;
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot build the admission of node %s: "
				       "a field is too long", node);
	}
	*out_len = (size_t)n;
	return CUSTODY_OK;
}

int
cluster_admission_verify(const unsigned char *authority, size_t authority_len,
			 const char *node, const unsigned char *spki,
			 size_t spki_len, const unsigned char *wrap,
			 size_t wrap_len, const char *kek_check,
			 const unsigned char *sig, size_t sig_len, int *valid,
			 custody_err *err)
{
	const unsigned char *p = authority;
	EVP_PKEY *pkey = NULL;
	EVP_MD_CTX *md = NULL;
	char *msg = NULL;
	size_t msg_len = 0;
	int r;

	*valid = 0;
	if ((r = cluster_admission_bytes(node, spki, spki_len, wrap, wrap_len,
					 kek_check, &msg, &msg_len, err)) !=
	    CUSTODY_OK)
		goto out;
	if ((pkey = d2i_PUBKEY(NULL, &p, (long)authority_len)) == NULL ||
	    p != authority + authority_len ||
	    EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "the pinned cluster authority is not an EC "
				    "public key");
		goto out;
	}
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) != 1) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot verify the admission");
		goto out;
	}
	*valid = sig != NULL && sig_len > 0 &&
		 EVP_DigestVerify(md, sig, sig_len, (unsigned char *)msg,
				  msg_len) == 1;
	r = CUSTODY_OK;
out:
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
	free(msg);
	return r;
}
