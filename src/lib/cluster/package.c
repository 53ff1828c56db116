/*
 * cluster/package.c — a key package moved by hand (`custody export` /
 * `custody import --package`): the strict parser and the writer of its
 * JSON form (see custody/cluster.h); the token-side steps are in
 * cluster/export.c.  The parser takes bytes and touches nothing else, so
 * that the fuzz harness can call it; every field is checked for its exact form, and thumbprint
 * and key id against the certificate the package carries.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <custody/audit.h>
#include <custody/base64.h>
#include <custody/cert.h>
#include <custody/cluster.h>
#include <custody/error.h>
#include <custody/hexfmt.h>
#include <custody/log.h>

#define WRAPPING "CKM_AES_KEY_WRAP_PAD"
#define WRAPPED_MIN 16
#define WRAPPED_MAX 16384
#define N_MEMBERS 8

void
custody_package_clear(custody_package *pkg)
{
	if (pkg == NULL)
		return;
	if (pkg->wrapped != NULL)
		OPENSSL_clear_free(pkg->wrapped, pkg->wrapped_len);
	free(pkg->cert_der);
	memset(pkg, 0, sizeof(*pkg));
}

/* ------------------------------------------------------------ parse */

static int
bad(custody_err *err, const char *why)
{
	return custody_err_set(err, CUSTODY_EFAIL, "bad key package: %s", why);
}

/* The string member name of o: its text and length (JSON strings may not
 * hold NUL: jansson refuses \u0000 unless asked). */
static const char *
member_string(json_t *o, const char *name, size_t *len)
{
	json_t *v = json_object_get(o, name);

	if (v == NULL || !json_is_string(v))
		return NULL;
	*len = json_string_length(v);
	return json_string_value(v);
}

/* The string member name of o, exactly n hex digits of one case, copied
 * with its NUL into dest; else "bad key package: WHY". */
static int
hex_member(json_t *o, const char *name, size_t n, int upper, char *dest,
	   const char *why, custody_err *err)
{
	size_t len = 0;
	const char *s = member_string(o, name, &len);

	if (s == NULL || !custody_hex_is_exact(s, len, n, upper))
		return bad(err, why);
	memcpy(dest, s, len + 1);
	return CUSTODY_OK;
}

/* The string member name of o as canonical base64 (custody/base64.h),
 * decoded into *out (malloc'ed); -1 when it is missing, empty or not
 * canonical base64. */
static int
member_base64(json_t *o, const char *name, unsigned char **out, size_t *len)
{
	size_t slen = 0;
	const char *s = member_string(o, name, &slen);

	if (s == NULL || slen == 0)
		return -1;
	return custody_base64_decode(s, slen, CUSTODY_BASE64, out, len, NULL,
				     0);
}

/* The certificate's thumbprint and key id must be those of the package. */
static int
check_certificate(custody_package *pkg, custody_err *err)
{
	int r;

	r = custody_cert_der_check(pkg->cert_der, pkg->cert_der_len,
				   pkg->thumbprint, pkg->key_id, NULL, err);
	if (r != CUSTODY_OK)
		custody_err_prefix(err, "bad key package");
	return r;
}

int
custody_package_parse(const unsigned char *buf, size_t len,
		      custody_package *out, custody_err *err)
{
	static const char *const members[N_MEMBERS] = {
		"format", "version", "thumbprint", "key_id", "kcv", "wrapping",
		"wrapped_key", "certificate",
	};
	json_t *o = NULL, *v;
	json_error_t je;
	const char *s;
	size_t slen = 0, i;
	int r = CUSTODY_EFAIL;

	if (out == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot parse a key package: nowhere to "
				       "put it");
	memset(out, 0, sizeof(*out));
	if (buf == NULL || len == 0) {
		r = bad(err, "it is empty");
		goto out;
	}
	if (len > CUSTODY_PACKAGE_MAX) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "bad key package: it is larger than %d bytes",
				    CUSTODY_PACKAGE_MAX);
		goto out;
	}
	o = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "bad key package: not JSON (line %d, column "
				    "%d)", je.line, je.column);
		goto out;
	}
	if (!json_is_object(o)) {
		r = bad(err, "it is not a JSON object");
		goto out;
	}
	if (json_object_size(o) != N_MEMBERS) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "bad key package: it has %zu members, not "
				    "the %d of format %s version 1",
				    json_object_size(o), N_MEMBERS,
				    CUSTODY_PACKAGE_FORMAT);
		goto out;
	}
	for (i = 0; i < N_MEMBERS; i++)
		if (json_object_get(o, members[i]) == NULL) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "bad key package: member \"%s\" is "
					    "missing", members[i]);
			goto out;
		}
	s = member_string(o, "format", &slen);
	if (s == NULL || slen != strlen(CUSTODY_PACKAGE_FORMAT) ||
	    strcmp(s, CUSTODY_PACKAGE_FORMAT) != 0) {
		r = bad(err, "\"format\" is not \"" CUSTODY_PACKAGE_FORMAT "\"");
		goto out;
	}
	v = json_object_get(o, "version");
	if (!json_is_integer(v) || json_integer_value(v) != 1) {
		r = bad(err, "\"version\" is not 1 (the only version this "
			"build reads)");
		goto out;
	}
	s = member_string(o, "wrapping", &slen);
	if (s == NULL || slen != strlen(WRAPPING) || strcmp(s, WRAPPING) != 0) {
		r = bad(err, "\"wrapping\" is not \"" WRAPPING "\"");
		goto out;
	}
	if ((r = hex_member(o, "thumbprint", CUSTODY_THUMBPRINT_HEX, 1,
			    out->thumbprint, "\"thumbprint\" is not 40 "
			    "upper-case hex digits", err)) != CUSTODY_OK ||
	    (r = hex_member(o, "key_id", CUSTODY_KEY_ID_HEX, 0, out->key_id,
			    "\"key_id\" is not 40 lower-case hex digits",
			    err)) != CUSTODY_OK ||
	    (r = hex_member(o, "kcv", CUSTODY_KCV_HEX, 1, out->kcv,
			    "\"kcv\" is not 6 upper-case hex digits", err)) !=
	    CUSTODY_OK)
		goto out;
	if (member_base64(o, "wrapped_key", &out->wrapped,
			  &out->wrapped_len) != 0) {
		r = bad(err, "\"wrapped_key\" is not canonical base64");
		goto out;
	}
	if (out->wrapped_len < WRAPPED_MIN || out->wrapped_len > WRAPPED_MAX ||
	    out->wrapped_len % 8 != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "bad key package: the wrapped key has %zu "
				    "bytes, not a multiple of 8 from %d to %d "
				    "(cut short?)", out->wrapped_len,
				    WRAPPED_MIN, WRAPPED_MAX);
		goto out;
	}
	if (member_base64(o, "certificate", &out->cert_der,
			  &out->cert_der_len) != 0) {
		r = bad(err, "\"certificate\" is not canonical base64");
		goto out;
	}
	if ((r = check_certificate(out, err)) != CUSTODY_OK)
		goto out;
	r = CUSTODY_OK;
out:
	json_decref(o);
	if (r != CUSTODY_OK)
		custody_package_clear(out);
	return r;
}

int
custody_package_format(const custody_package *pkg, char **out, size_t *len,
		       custody_err *err)
{
	char *wrapped = NULL, *cert = NULL, *text = NULL;
	json_t *o = NULL;
	size_t n;
	int r = CUSTODY_EFAIL;

	if (pkg == NULL || out == NULL || len == NULL ||
	    pkg->wrapped == NULL || pkg->cert_der == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot write a key package: it is empty");
	*out = NULL;
	*len = 0;
	if ((wrapped = custody_base64_encode(pkg->wrapped, pkg->wrapped_len,
					     CUSTODY_BASE64)) == NULL ||
	    (cert = custody_base64_encode(pkg->cert_der, pkg->cert_der_len,
					  CUSTODY_BASE64)) == NULL)
		goto oom;
	o = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s}",
		      "format", CUSTODY_PACKAGE_FORMAT, "version", 1,
		      "thumbprint", pkg->thumbprint, "key_id", pkg->key_id,
		      "kcv", pkg->kcv, "wrapping", WRAPPING,
		      "wrapped_key", wrapped, "certificate", cert);
	if (o == NULL)
		goto oom;
	text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (text == NULL)
		goto oom;
	n = strlen(text);
	if ((*out = malloc(n + 2)) == NULL)
		goto oom;
	memcpy(*out, text, n);
	(*out)[n] = '\n';
	(*out)[n + 1] = '\0';
	*len = n + 1;
	r = CUSTODY_OK;
	goto out;
oom:
	r = custody_err_set(err, CUSTODY_EFAIL,
			    "cannot write a key package: out of memory");
out:
	if (wrapped != NULL)
		OPENSSL_clear_free(wrapped, strlen(wrapped));
	if (text != NULL)
		OPENSSL_clear_free(text, strlen(text));
	free(cert);
	json_decref(o);
	return r;
}
