/* agent/wire.c — the agent's frames: one table of fields (tag, name, size
 * bounds), one table of which fields each kind takes and where they live
 * in its struct, and one check per field that the decoder and the encoder
 * both run, so that the encoder writes nothing the decoder would refuse
 * (see custody/agent_wire.h). */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <custody/agent_wire.h>

/* ---------------------------------------------------------------- tables */

/* The contract of custody/agent_wire.h: never renumber. */
enum tag {
	TAG_TYPE = 1,
	TAG_IDENTITY = 2,
	TAG_WHICH = 3,
	TAG_SCHEME = 4,
	TAG_HASH = 5,
	TAG_DIGEST = 6,
	TAG_SIGNATURE = 7,
	TAG_THUMBPRINT = 8,
	TAG_CERTIFICATE = 9,
	TAG_CHAIN = 10,
	TAG_CLAIMS = 11,
	TAG_LIFETIME = 12,
	TAG_ALG = 13,
	TAG_TOKEN = 14,
	TAG_ENTRY = 15,
	TAG_CODE = 16,
	TAG_MESSAGE = 17,
	TAG_END
};

/* A field's name and the sizes its value may have.  Text fields live in
 * char arrays of max + 1 bytes, byte fields in arrays of max bytes. */
static const struct field_def {
	const char *name;
	size_t min, max;
} fields[TAG_END] = {
	[TAG_TYPE] = {"type", 1, CUSTODY_NAME_MAX},
	[TAG_IDENTITY] = {"identity", 1, CUSTODY_NAME_MAX},
	[TAG_WHICH] = {"which", 1, 8},
	[TAG_SCHEME] = {"scheme", 1, 1},
	[TAG_HASH] = {"hash", 1, 1},
	/* The hash decides the exact length: check_sign_request. */
	[TAG_DIGEST] = {"digest", 1, CUSTODY_AGENT_DIGEST_MAX},
	[TAG_SIGNATURE] = {"signature", 1, CUSTODY_AGENT_SIGNATURE_MAX},
	[TAG_THUMBPRINT] = {"thumbprint", CUSTODY_THUMBPRINT_HEX,
			    CUSTODY_THUMBPRINT_HEX},
	[TAG_CERTIFICATE] = {"certificate", 1, CUSTODY_AGENT_CERT_MAX},
	[TAG_CHAIN] = {"chain", 1, CUSTODY_AGENT_CERT_MAX},
	[TAG_CLAIMS] = {"claims", 2, CUSTODY_AGENT_CLAIMS_MAX},
	[TAG_LIFETIME] = {"lifetime", 4, 4},
	[TAG_ALG] = {"alg", 1, 5},
	[TAG_TOKEN] = {"token", 1, CUSTODY_AGENT_TOKEN_MAX},
	[TAG_ENTRY] = {"entry", 0, UINT16_MAX},
	[TAG_CODE] = {"code", 4, 4},
	[TAG_MESSAGE] = {"message", 1, CUSTODY_AGENT_MESSAGE_MAX},
};

/* A field a kind takes: how often, and where in the kind's struct its
 * value goes (count_at: the length or count member beside it, if any). */
struct rule {
	unsigned char tag;
	unsigned char required;
	unsigned short max_count;
	size_t at;
	size_t count_at;
};

/* Rules in tag order: the encoder writes fields in this order. */
struct layout {
	const char *name;
	const struct rule *rules;
	size_t n_rules;
};

#define ONE(tag, req, type, member) \
	{ tag, req, 1, offsetof(type, member), 0 }
#define SIZED(tag, req, max, type, member, count) \
	{ tag, req, max, offsetof(type, member), offsetof(type, count) }
#define LAYOUT(name, rules) { name, rules, sizeof(rules) / sizeof(rules[0]) }

static const struct rule sign_request_rules[] = {
	ONE(TAG_TYPE, 1, custody_agent_sign_request, type),
	ONE(TAG_IDENTITY, 0, custody_agent_sign_request, identity),
	ONE(TAG_WHICH, 0, custody_agent_sign_request, which),
	ONE(TAG_SCHEME, 0, custody_agent_sign_request, scheme),
	ONE(TAG_HASH, 1, custody_agent_sign_request, hash),
	SIZED(TAG_DIGEST, 1, 1, custody_agent_sign_request, digest, digest_len),
	ONE(TAG_THUMBPRINT, 0, custody_agent_sign_request, thumbprint),
};
static const struct rule sign_response_rules[] = {
	ONE(TAG_IDENTITY, 1, custody_agent_sign_response, identity),
	ONE(TAG_SCHEME, 1, custody_agent_sign_response, scheme),
	SIZED(TAG_SIGNATURE, 1, 1, custody_agent_sign_response, signature,
	      signature_len),
	ONE(TAG_THUMBPRINT, 1, custody_agent_sign_response, thumbprint),
};
static const struct rule cert_request_rules[] = {
	ONE(TAG_TYPE, 1, custody_agent_cert_request, type),
	ONE(TAG_IDENTITY, 0, custody_agent_cert_request, identity),
	ONE(TAG_WHICH, 0, custody_agent_cert_request, which),
};
static const struct rule cert_response_rules[] = {
	ONE(TAG_THUMBPRINT, 1, custody_agent_cert_response, thumbprint),
	SIZED(TAG_CERTIFICATE, 1, 1, custody_agent_cert_response, certificate,
	      certificate_len),
	SIZED(TAG_CHAIN, 0, CUSTODY_AGENT_CHAIN_MAX,
	      custody_agent_cert_response, chain, n_chain),
};
static const struct rule jwt_request_rules[] = {
	ONE(TAG_TYPE, 1, custody_agent_jwt_request, type),
	ONE(TAG_IDENTITY, 0, custody_agent_jwt_request, identity),
	ONE(TAG_CLAIMS, 1, custody_agent_jwt_request, claims),
	ONE(TAG_LIFETIME, 0, custody_agent_jwt_request, lifetime),
	ONE(TAG_ALG, 0, custody_agent_jwt_request, alg),
};
static const struct rule jwt_response_rules[] = {
	ONE(TAG_TOKEN, 1, custody_agent_jwt_response, token),
};
static const struct rule list_response_rules[] = {
	SIZED(TAG_ENTRY, 0, CUSTODY_AGENT_ENTRIES_MAX,
	      custody_agent_list_response, entries, n_entries),
};
static const struct rule error_rules[] = {
	ONE(TAG_CODE, 1, custody_agent_error, code),
	ONE(TAG_MESSAGE, 1, custody_agent_error, message),
};
static const struct rule entry_rules[] = {
	ONE(TAG_TYPE, 1, custody_agent_list_entry, type),
	ONE(TAG_IDENTITY, 1, custody_agent_list_entry, identity),
	ONE(TAG_WHICH, 1, custody_agent_list_entry, which),
	ONE(TAG_THUMBPRINT, 1, custody_agent_list_entry, thumbprint),
};

static const struct layout layouts[] = {
	[CUSTODY_AGENT_SIGN_REQUEST] = LAYOUT("sign request", sign_request_rules),
	[CUSTODY_AGENT_SIGN_RESPONSE] = LAYOUT("sign response", sign_response_rules),
	[CUSTODY_AGENT_CERT_REQUEST] = LAYOUT("cert request", cert_request_rules),
	[CUSTODY_AGENT_CERT_RESPONSE] = LAYOUT("cert response", cert_response_rules),
	[CUSTODY_AGENT_JWT_REQUEST] = LAYOUT("jwt request", jwt_request_rules),
	[CUSTODY_AGENT_JWT_RESPONSE] = LAYOUT("jwt response", jwt_response_rules),
	[CUSTODY_AGENT_LIST_REQUEST] = {"list request", NULL, 0},
	[CUSTODY_AGENT_LIST_RESPONSE] = LAYOUT("list response", list_response_rules),
	[CUSTODY_AGENT_ERROR] = LAYOUT("error", error_rules),
};
#define N_KINDS (sizeof(layouts) / sizeof(layouts[0]))

static const struct layout entry_layout = LAYOUT("entry", entry_rules);

static const char *const which_names[] = {
	[CUSTODY_AGENT_CURRENT] = "current",
	[CUSTODY_AGENT_PREVIOUS] = "previous",
	[CUSTODY_AGENT_PENDING] = "pending",
};
static const char *const alg_names[] = {
	[CUSTODY_AGENT_RS256] = "RS256",
	[CUSTODY_AGENT_PS256] = "PS256",
	[CUSTODY_AGENT_ES256] = "ES256",
};

static const struct layout *
layout_of(int kind)
{
	if (kind <= 0 || (size_t)kind >= N_KINDS || layouts[kind].name == NULL)
		return NULL;
	return &layouts[kind];
}

const char *
custody_agent_kind_name(int kind)
{
	const struct layout *lay = layout_of(kind);

	return lay != NULL ? lay->name : "unknown";
}

/* The digest length of a hash, 0 for an unknown one. */
static size_t
hash_length(int hash)
{
	switch (hash) {
	case CUSTODY_AGENT_SHA256: return 32;
	case CUSTODY_AGENT_SHA384: return 48;
	case CUSTODY_AGENT_SHA512: return 64;
	default: return 0;
	}
}

static const char *
hash_name(int hash)
{
	switch (hash) {
	case CUSTODY_AGENT_SHA384: return "SHA-384";
	case CUSTODY_AGENT_SHA512: return "SHA-512";
	default: return "SHA-256";
	}
}

/* ---------------------------------------------------------------- checks */

static uint32_t
get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* The index of the name among n (NULL gaps skipped) equal to the n bytes
 * of v, or -1. */
static int
name_index(const char *const *names, size_t n_names, const unsigned char *v,
	   size_t n)
{
	size_t i;

	for (i = 0; i < n_names; i++)
		if (names[i] != NULL && strlen(names[i]) == n &&
		    memcmp(names[i], v, n) == 0)
			return (int)i;
	return -1;
}

/* Strict UTF-8 (no overlong forms, no surrogates, nothing past
 * U+10FFFF) without control characters: C0 but those allowed (a string
 * of them, may be ""), DEL and C1.  NUL is never allowed. */
static int
utf8_printable(const unsigned char *v, size_t n, const char *allowed)
{
	size_t i = 0, k, more;
	uint32_t c;

	while (i < n) {
		c = v[i];
		if (c < 0x80) {
			if ((c < 0x20 && (c == 0 || strchr(allowed, (int)c) == NULL)) ||
			    c == 0x7f)
				return 0;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			more = 1;
			c &= 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2;
			c &= 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3;
			c &= 0x07;
		} else {
			return 0;
		}
		if (n - i <= more)
			return 0;
		for (k = 1; k <= more; k++) {
			if ((v[i + k] & 0xc0) != 0x80)
				return 0;
			c = c << 6 | (v[i + k] & 0x3f);
		}
		if ((more == 2 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
		    (more == 3 && (c < 0x10000 || c > 0x10ffff)) ||
		    (c >= 0x80 && c <= 0x9f))
			return 0;
		i += more + 1;
	}
	return 1;
}

/* A name: a letter first (or a letter or digit, digit_first), then
 * letters, digits and the characters of more. */
static int
is_name(const unsigned char *v, size_t n, int digit_first, const char *more)
{
	size_t i;
	int alpha, digit;

	for (i = 0; i < n; i++) {
		alpha = (v[i] >= 'A' && v[i] <= 'Z') || (v[i] >= 'a' && v[i] <= 'z');
		digit = v[i] >= '0' && v[i] <= '9';
		if (i == 0 && !(alpha || (digit_first && digit)))
			return 0;
		if (!alpha && !digit && (v[i] == '\0' || strchr(more, v[i]) == NULL))
			return 0;
	}
	return n > 0;
}

static int
is_thumbprint(const unsigned char *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'A' && v[i] <= 'F')))
			return 0;
	return n == CUSTODY_THUMBPRINT_HEX;
}

/* The size of the DER SEQUENCE that opens v (its header included) in
 * *total: a definite length in its minimal form.  0 when v does not open
 * with one, or when the SEQUENCE runs past n. */
static int
der_sequence(const unsigned char *v, size_t n, size_t *total)
{
	size_t len, hdr, i, octets;

	if (n < 2 || v[0] != 0x30)
		return 0;
	if (v[1] < 0x80) {
		len = v[1];
		hdr = 2;
	} else {
		/* 0x80 (indefinite) is BER, not DER; 2 octets cover any
		 * field's size here. */
		octets = v[1] & 0x7f;
		if (octets == 0 || octets > 2 || n < 2 + octets || v[2] == 0)
			return 0;
		for (len = 0, i = 0; i < octets; i++)
			len = len << 8 | v[2 + i];
		if (len < 0x80)
			return 0;	/* the short form was due */
		hdr = 2 + octets;
	}
	if (len > n - hdr)
		return 0;
	*total = hdr + len;
	return 1;
}

/* A certificate is checked for its DER framing only: one SEQUENCE that
 * spans the value exactly.  Whoever uses it parses it as X.509 (with
 * OpenSSL) anyway; the codec stays in the C library so that the short-
 * lived `custody sign` that links it does not load libcrypto. */
static int
check_certificate(const char *ctx, const char *name, const unsigned char *v,
		  size_t n, custody_err *err)
{
	size_t total;

	if (!der_sequence(v, n, &total))
		return custody_err_set(err, CUSTODY_EFAIL, "%s: field %s is not "
				       "a DER X.509 certificate", ctx, name);
	if (total != n)
		return custody_err_set(err, CUSTODY_EFAIL, "%s: field %s has "
				       "%zu byte%s after its DER certificate",
				       ctx, name, n - total,
				       n - total == 1 ? "" : "s");
	return CUSTODY_OK;
}

/* A JSON object with no key twice.  jansson's own message would quote
 * the text, and claims may be secret: only the position is shown. */
static int
check_claims(const char *ctx, const unsigned char *v, size_t n,
	     custody_err *err)
{
	json_error_t je;
	json_t *j;
	int r = CUSTODY_OK;

	if (!utf8_printable(v, n, "\t\n\r"))
		return custody_err_set(err, CUSTODY_EFAIL, "%s: field claims is "
				       "not UTF-8 text without control "
				       "characters", ctx);
	j = json_loadb((const char *)v, n,
		       JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (j == NULL && json_error_code(&je) == json_error_duplicate_key)
		return custody_err_set(err, CUSTODY_EFAIL, "%s: field claims has "
				       "a key twice (line %d, column %d)", ctx,
				       je.line, je.column);
	if (j == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "%s: field claims is "
				       "not JSON (line %d, column %d)", ctx,
				       je.line, je.column);
	if (!json_is_object(j))
		r = custody_err_set(err, CUSTODY_EFAIL, "%s: field claims is not "
				    "a JSON object", ctx);
	json_decref(j);
	return r;
}

/* The checks of a name-like text field: NUL, UTF-8 and control
 * characters first (so the message says what is wrong), then the form. */
static int
check_text(const char *ctx, int tag, const unsigned char *v, size_t n,
	   custody_err *err)
{
	const char *name = fields[tag].name;

	if (memchr(v, '\0', n) != NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "%s: field %s holds a "
				       "NUL byte", ctx, name);
	if (tag == TAG_TOKEN) {
		for (size_t i = 0; i < n; i++)
			if (v[i] < 0x20 || v[i] > 0x7e)
				return custody_err_set(err, CUSTODY_EFAIL, "%s: field "
						       "token holds a byte that is "
						       "not printable ASCII", ctx);
		return CUSTODY_OK;
	}
	if (!utf8_printable(v, n, ""))
		return custody_err_set(err, CUSTODY_EFAIL, "%s: field %s is not "
				       "UTF-8 text without control characters",
				       ctx, name);
	return CUSTODY_OK;
}

/* The form of a field whose size is already within its bounds. */
static int
check_form(const char *ctx, int tag, const unsigned char *v, size_t n,
	   custody_err *err)
{
	uint32_t u;

	switch (tag) {
	case TAG_TYPE:
		if (!is_name(v, n, 0, "_-"))
			return custody_err_set(err, CUSTODY_EFAIL, "%s: field type "
					       "is not a type name (a letter, then "
					       "letters, digits, '_' or '-')", ctx);
		return CUSTODY_OK;
	case TAG_IDENTITY:
		if (!is_name(v, n, 1, "._-"))
			return custody_err_set(err, CUSTODY_EFAIL, "%s: field "
					       "identity is not 'global' or a node "
					       "name (a letter or digit, then "
					       "letters, digits, '.', '_' or '-')",
					       ctx);
		return CUSTODY_OK;
	case TAG_WHICH:
		if (name_index(which_names, 3, v, n) < 0)
			return custody_err_set(err, CUSTODY_EFAIL, "%s: field which "
					       "is not current, previous or pending",
					       ctx);
		return CUSTODY_OK;
	case TAG_ALG:
		if (name_index(alg_names, 4, v, n) < 0)
			return custody_err_set(err, CUSTODY_EFAIL, "%s: field alg is "
					       "not RS256, PS256 or ES256", ctx);
		return CUSTODY_OK;
	case TAG_SCHEME:
		if (v[0] < CUSTODY_AGENT_RSA_PKCS1 || v[0] > CUSTODY_AGENT_ECDSA_RAW)
			return custody_err_set(err, CUSTODY_EFAIL, "%s: field scheme "
					       "%u is not 1 (RSA PKCS#1 v1.5), 2 "
					       "(RSA-PSS), 3 (ECDSA) or 4 (ECDSA "
					       "r || s)", ctx, v[0]);
		return CUSTODY_OK;
	case TAG_HASH:
		if (hash_length(v[0]) == 0)
			return custody_err_set(err, CUSTODY_EFAIL, "%s: field hash "
					       "%u is not 1 (SHA-256), 2 (SHA-384) "
					       "or 3 (SHA-512)", ctx, v[0]);
		return CUSTODY_OK;
	case TAG_THUMBPRINT:
		if (!is_thumbprint(v, n))
			return custody_err_set(err, CUSTODY_EFAIL, "%s: field "
					       "thumbprint is not 40 upper-case hex "
					       "digits", ctx);
		return CUSTODY_OK;
	case TAG_LIFETIME:
		u = get_be32(v);
		if (u < 1 || u > CUSTODY_AGENT_LIFETIME_MAX)
			return custody_err_set(err, CUSTODY_EFAIL, "%s: field "
					       "lifetime %lu s is outside 1..%d", ctx,
					       (unsigned long)u,
					       CUSTODY_AGENT_LIFETIME_MAX);
		return CUSTODY_OK;
	case TAG_CODE:
		u = get_be32(v);
		if (u < CUSTODY_EFAIL || u > CUSTODY_EPIN)
			return custody_err_set(err, CUSTODY_EFAIL, "%s: field code "
					       "%lu is not a custody error code "
					       "(%d..%d)", ctx, (unsigned long)u,
					       CUSTODY_EFAIL, CUSTODY_EPIN);
		return CUSTODY_OK;
	case TAG_CERTIFICATE:
	case TAG_CHAIN:
		return check_certificate(ctx, fields[tag].name, v, n, err);
	case TAG_CLAIMS:
		return check_claims(ctx, v, n, err);
	default:	/* digest, signature: any bytes */
		return CUSTODY_OK;
	}
}

/* Every check of one field's value but the nested entry's (decoded, and
 * so checked, field by field) and those across fields. */
static int
check_value(const char *ctx, int tag, const unsigned char *v, size_t n,
	    custody_err *err)
{
	const struct field_def *f = &fields[tag];
	int r;

	if (n < f->min || n > f->max) {
		if (f->min == f->max)
			return custody_err_set(err, CUSTODY_EFAIL, "%s: field %s has "
					       "%zu bytes, not %zu", ctx, f->name, n,
					       f->min);
		return custody_err_set(err, CUSTODY_EFAIL, "%s: field %s has %zu "
				       "bytes, outside %zu..%zu", ctx, f->name,
				       n, f->min, f->max);
	}
	switch (tag) {
	case TAG_TYPE: case TAG_IDENTITY: case TAG_WHICH: case TAG_ALG:
	case TAG_THUMBPRINT: case TAG_TOKEN: case TAG_MESSAGE:
		if ((r = check_text(ctx, tag, v, n, err)) != CUSTODY_OK)
			return r;
		break;
	default:
		break;
	}
	return check_form(ctx, tag, v, n, err);
}

/* What no single field can say: the digest is as long as its hash's. */
static int
check_kind(int kind, const void *body, const char *ctx, custody_err *err)
{
	const custody_agent_sign_request *s = body;
	size_t want;

	if (kind != CUSTODY_AGENT_SIGN_REQUEST)
		return CUSTODY_OK;
	want = hash_length(s->hash);
	if (want != 0 && s->digest_len != want)
		return custody_err_set(err, CUSTODY_EFAIL, "%s: field digest has "
				       "%zu bytes, %s needs %zu", ctx,
				       s->digest_len, hash_name(s->hash), want);
	return CUSTODY_OK;
}

/* ---------------------------------------------------------------- decode */

static int decode_fields(const struct layout *lay, const char *ctx,
			 const unsigned char *p, size_t n, void *body,
			 custody_err *err);

static int
store_entry(const struct rule *rule, const char *ctx, const unsigned char *v,
	    size_t n, void *body, custody_err *err)
{
	custody_agent_list_entry **entries =
		(custody_agent_list_entry **)((char *)body + rule->at);
	size_t *count = (size_t *)((char *)body + rule->count_at);
	custody_agent_list_entry *grown;
	char where[64];
	int r;

	/* 8, then doubled at each power of two: at most 256. */
	if (*count == 0 || (*count >= 8 && (*count & (*count - 1)) == 0)) {
		grown = realloc(*entries, (*count == 0 ? 8 : 2 * *count) *
				sizeof(**entries));
		if (grown == NULL)
			return custody_err_set(err, CUSTODY_EFAIL, "%s: out of "
					       "memory", ctx);
		*entries = grown;
	}
	memset(&(*entries)[*count], 0, sizeof(**entries));
	snprintf(where, sizeof(where), "%s entry %zu", ctx, *count + 1);
	if ((r = decode_fields(&entry_layout, where, v, n, &(*entries)[*count],
			       err)) != CUSTODY_OK)
		return r;
	(*count)++;
	return CUSTODY_OK;
}

/* Checks one field's value and keeps it where its rule says. */
static int
store_field(const struct rule *rule, const char *ctx, const unsigned char *v,
	    size_t n, void *body, custody_err *err)
{
	char *at = (char *)body + rule->at;
	size_t *count = (size_t *)((char *)body + rule->count_at);
	custody_agent_der *der;
	int r;

	if (rule->tag == TAG_ENTRY)
		return store_entry(rule, ctx, v, n, body, err);
	if ((r = check_value(ctx, rule->tag, v, n, err)) != CUSTODY_OK)
		return r;
	switch (rule->tag) {
	case TAG_WHICH:
		*(enum custody_agent_which *)(void *)at =
			(enum custody_agent_which)name_index(which_names, 3, v, n);
		break;
	case TAG_ALG:
		*(enum custody_agent_alg *)(void *)at =
			(enum custody_agent_alg)name_index(alg_names, 4, v, n);
		break;
	case TAG_SCHEME:
		*(enum custody_agent_scheme *)(void *)at = (enum custody_agent_scheme)v[0];
		break;
	case TAG_HASH:
		*(enum custody_agent_hash *)(void *)at = (enum custody_agent_hash)v[0];
		break;
	case TAG_LIFETIME:
		*(uint32_t *)(void *)at = get_be32(v);
		break;
	case TAG_CODE:
		*(int *)(void *)at = (int)get_be32(v);
		break;
	case TAG_DIGEST: case TAG_SIGNATURE: case TAG_CERTIFICATE:
		memcpy(at, v, n);
		*count = n;
		break;
	case TAG_CHAIN:
		der = &((custody_agent_der *)(void *)at)[*count];
		if ((der->der = malloc(n)) == NULL)
			return custody_err_set(err, CUSTODY_EFAIL, "%s: out of "
					       "memory", ctx);
		memcpy(der->der, v, n);
		der->len = n;
		(*count)++;
		break;
	default:	/* text: a char array of max + 1 */
		memcpy(at, v, n);
		at[n] = '\0';
		break;
	}
	return CUSTODY_OK;
}

static const struct rule *
rule_for(const struct layout *lay, unsigned tag)
{
	size_t i;

	for (i = 0; i < lay->n_rules; i++)
		if (lay->rules[i].tag == tag)
			return &lay->rules[i];
	return NULL;
}

/* The field sequence p[0..n) into body, as lay says. */
static int
decode_fields(const struct layout *lay, const char *ctx, const unsigned char *p,
	      size_t n, void *body, custody_err *err)
{
	unsigned seen[TAG_END] = {0};
	const struct rule *rule;
	size_t pos = 0, i, vlen;
	int r;

	while (pos < n) {
		if (n - pos < 3)
			return custody_err_set(err, CUSTODY_EFAIL, "%s: a partial "
					       "field header (%zu of 3 bytes) after "
					       "the last field", ctx, n - pos);
		if ((rule = rule_for(lay, p[pos])) == NULL)
			return custody_err_set(err, CUSTODY_EFAIL, "%s has no field "
					       "with tag %u", ctx, p[pos]);
		vlen = (size_t)p[pos + 1] << 8 | p[pos + 2];
		if (vlen > n - pos - 3)
			return custody_err_set(err, CUSTODY_EFAIL, "%s: field %s "
					       "says %zu bytes, %zu are left", ctx,
					       fields[rule->tag].name, vlen,
					       n - pos - 3);
		if (seen[rule->tag] == rule->max_count && rule->max_count == 1)
			return custody_err_set(err, CUSTODY_EFAIL, "%s: field %s "
					       "given twice", ctx,
					       fields[rule->tag].name);
		if (seen[rule->tag] == rule->max_count)
			return custody_err_set(err, CUSTODY_EFAIL, "%s: field %s "
					       "given more than %u times", ctx,
					       fields[rule->tag].name,
					       rule->max_count);
		seen[rule->tag]++;
		if ((r = store_field(rule, ctx, p + pos + 3, vlen, body, err)) !=
		    CUSTODY_OK)
			return r;
		pos += 3 + vlen;
	}
	for (i = 0; i < lay->n_rules; i++)
		if (lay->rules[i].required && seen[lay->rules[i].tag] == 0)
			return custody_err_set(err, CUSTODY_EFAIL, "%s: required "
					       "field %s is missing", ctx,
					       fields[lay->rules[i].tag].name);
	return CUSTODY_OK;
}

int
custody_agent_wire_frame_length(const unsigned char hdr[4], size_t *total,
				custody_err *err)
{
	uint32_t length = get_be32(hdr);

	*total = 0;
	if (length < 2)
		return custody_err_set(err, CUSTODY_EFAIL, "agent frame: length "
				       "%lu is below the minimum of 2",
				       (unsigned long)length);
	if (length > CUSTODY_AGENT_FRAME_MAX)
		return custody_err_set(err, CUSTODY_EFAIL, "agent frame: length "
				       "%lu is over the maximum of %d",
				       (unsigned long)length,
				       CUSTODY_AGENT_FRAME_MAX);
	*total = (size_t)length + 4;
	return CUSTODY_OK;
}

/* The bytes of a message of this kind that can hold anything: its kind
 * and its member of the union (the whole message for an unknown kind).
 * A sign exchange uses about 1.3 KiB of the 17 KiB message: clearing
 * only that is most of a fast agent's per-request work saved (measured:
 * 8% of the agent's instructions per EC signature went to the memset). */
static size_t
msg_extent(int kind)
{
	size_t member;

	switch (kind) {
	case CUSTODY_AGENT_SIGN_REQUEST:
		member = sizeof(custody_agent_sign_request);
		break;
	case CUSTODY_AGENT_SIGN_RESPONSE:
		member = sizeof(custody_agent_sign_response);
		break;
	case CUSTODY_AGENT_CERT_REQUEST:
		member = sizeof(custody_agent_cert_request);
		break;
	case CUSTODY_AGENT_LIST_REQUEST:
		member = 0;
		break;
	case CUSTODY_AGENT_LIST_RESPONSE:
		member = sizeof(custody_agent_list_response);
		break;
	case CUSTODY_AGENT_ERROR:
		member = sizeof(custody_agent_error);
		break;
	default:	/* the large members, and anything unknown */
		return sizeof(custody_agent_msg);
	}
	return offsetof(custody_agent_msg, u) + member;
}

/* The frame's length, version and kind: its layout, or NULL (err set). */
static const struct layout *
frame_layout(const unsigned char *frame, size_t len, custody_err *err)
{
	const struct layout *lay;
	size_t total;

	if (len < 4) {
		custody_err_set(err, CUSTODY_EFAIL, "agent frame: %zu bytes, "
				"fewer than its 4-byte length prefix", len);
		return NULL;
	}
	if (custody_agent_wire_frame_length(frame, &total, err) != CUSTODY_OK)
		return NULL;
	if (len != total) {
		custody_err_set(err, CUSTODY_EFAIL, "agent frame: %zu bytes, but "
				"its length prefix says %zu", len, total);
		return NULL;
	}
	if (frame[4] != CUSTODY_AGENT_WIRE_VERSION) {
		custody_err_set(err, CUSTODY_EFAIL, "agent frame: version %u, "
				"this side speaks version %d", frame[4],
				CUSTODY_AGENT_WIRE_VERSION);
		return NULL;
	}
	if ((lay = layout_of(frame[5])) == NULL)
		custody_err_set(err, CUSTODY_EFAIL, "agent frame: unknown "
				"message kind %u", frame[5]);
	return lay;
}

int
custody_agent_wire_decode(const unsigned char *frame, size_t len,
			  custody_agent_msg *out, custody_err *err)
{
	const struct layout *lay;
	int r;

	if ((lay = frame_layout(frame, len, err)) == NULL) {
		memset(out, 0, sizeof(*out));
		return CUSTODY_EFAIL;
	}
	/* Only the kind's extent: what decoding fills, and what
	 * custody_agent_msg_clear clears (msg_extent). */
	memset(out, 0, msg_extent(frame[5]));
	out->kind = (enum custody_agent_kind)frame[5];
	if ((r = decode_fields(lay, lay->name, frame + 6, len - 6, &out->u,
			       err)) != CUSTODY_OK ||
	    (r = check_kind(out->kind, &out->u, lay->name, err)) != CUSTODY_OK) {
		custody_err_prefix(err, "agent frame");
		custody_agent_msg_clear(out);
		memset(out, 0, sizeof(*out));	/* refused: all of it */
	}
	return r;
}

/* ---------------------------------------------------------------- encode */

/* Writes while there is room and counts on past it, so that the size a
 * frame would need is known either way. */
struct writer {
	unsigned char *buf;
	size_t size;
	size_t pos;
};

static void
put(struct writer *w, const void *p, size_t n)
{
	if (w->pos <= w->size && n <= w->size - w->pos && n > 0)
		memcpy(w->buf + w->pos, p, n);
	w->pos += n;
}

static void
put_header(struct writer *w, unsigned tag, size_t n)
{
	unsigned char h[3] = {(unsigned char)tag, (unsigned char)(n >> 8),
			      (unsigned char)n};

	put(w, h, sizeof(h));
}

/* Writes one field after the checks the decoder would make of it. */
static int
put_field(struct writer *w, const char *ctx, unsigned tag,
	  const unsigned char *v, size_t n, custody_err *err)
{
	int r;

	if ((r = check_value(ctx, (int)tag, v, n, err)) != CUSTODY_OK)
		return r;
	put_header(w, tag, n);
	put(w, v, n);
	return CUSTODY_OK;
}

/* An enumeration as its wire byte: a value out of a byte's range as 0,
 * which no check lets through. */
static unsigned char
enum_byte(long value)
{
	return value >= 0 && value <= 255 ? (unsigned char)value : 0;
}

static const char *
enum_name(const char *const *names, size_t n_names, long value)
{
	if (value < 0 || (unsigned long)value >= n_names || names[value] == NULL)
		return "?";
	return names[value];
}

static int encode_fields(const struct layout *lay, const char *ctx,
			 const void *body, struct writer *w, custody_err *err);

static int
encode_repeated(const struct rule *rule, const char *ctx, const void *body,
		struct writer *w, custody_err *err)
{
	const char *at = (const char *)body + rule->at;
	size_t count = *(const size_t *)(const void *)((const char *)body + rule->count_at);
	const custody_agent_der *der;
	const custody_agent_list_entry *entries;
	char where[64];
	size_t i, start;
	int r;

	if (count > rule->max_count)
		return custody_err_set(err, CUSTODY_EFAIL, "%s: field %s given "
				       "more than %u times", ctx,
				       fields[rule->tag].name, rule->max_count);
	for (i = 0; i < count; i++) {
		if (rule->tag == TAG_CHAIN) {
			der = &((const custody_agent_der *)(const void *)at)[i];
			r = put_field(w, ctx, rule->tag, der->der,
				      der->der != NULL ? der->len : 0, err);
			if (r != CUSTODY_OK)
				return r;
			continue;
		}
		entries = *(custody_agent_list_entry *const *)(const void *)at;
		if (entries == NULL)
			return custody_err_set(err, CUSTODY_EFAIL, "%s: %zu entries "
					       "counted, none given", ctx, count);
		snprintf(where, sizeof(where), "%s entry %zu", ctx, i + 1);
		put_header(w, rule->tag, 0);
		start = w->pos;
		if ((r = encode_fields(&entry_layout, where, &entries[i], w,
				       err)) != CUSTODY_OK)
			return r;
		/* At most four short fields: far below 65535 bytes. */
		if (w->pos <= w->size) {
			w->buf[start - 2] = (unsigned char)((w->pos - start) >> 8);
			w->buf[start - 1] = (unsigned char)(w->pos - start);
		}
	}
	return CUSTODY_OK;
}

/* The number a rule's member holds, read as the type it has. */
static long
number_at(unsigned tag, const char *at)
{
	switch (tag) {
	case TAG_WHICH:
		return (long)*(const enum custody_agent_which *)(const void *)at;
	case TAG_ALG:
		return (long)*(const enum custody_agent_alg *)(const void *)at;
	case TAG_SCHEME:
		return (long)*(const enum custody_agent_scheme *)(const void *)at;
	case TAG_HASH:
		return (long)*(const enum custody_agent_hash *)(const void *)at;
	case TAG_LIFETIME:
		return (long)*(const uint32_t *)(const void *)at;
	default:	/* code */
		return (long)*(const int *)(const void *)at;
	}
}

/* One rule's member as wire bytes (into scratch when it is a number);
 * returns 0 when an optional field holds its default and is left out. */
static int
member_bytes(const struct rule *rule, const void *body, unsigned char scratch[4],
	     const unsigned char **v, size_t *n)
{
	const char *at = (const char *)body + rule->at;
	const char *text;
	long number;

	switch (rule->tag) {
	case TAG_WHICH:
	case TAG_ALG:
		number = number_at(rule->tag, at);
		text = rule->tag == TAG_WHICH ? enum_name(which_names, 3, number)
					      : enum_name(alg_names, 4, number);
		*v = (const unsigned char *)text;
		*n = strlen(text);
		return rule->required || number != 0;
	case TAG_SCHEME:
	case TAG_HASH:
		number = number_at(rule->tag, at);
		scratch[0] = enum_byte(number);
		*v = scratch;
		*n = 1;
		return rule->required || number != 0;
	case TAG_LIFETIME:
	case TAG_CODE:
		/* A negative code turns into a number over any code's. */
		number = number_at(rule->tag, at);
		put_be32(scratch, (uint32_t)number);
		*v = scratch;
		*n = 4;
		return rule->required || number != 0;
	case TAG_DIGEST: case TAG_SIGNATURE: case TAG_CERTIFICATE:
		*v = (const unsigned char *)at;
		*n = *(const size_t *)(const void *)((const char *)body + rule->count_at);
		return 1;
	default:	/* text: unterminated reads as too long */
		*v = (const unsigned char *)at;
		*n = strnlen(at, fields[rule->tag].max + 1);
		return rule->required || *n > 0;
	}
}

static int
encode_fields(const struct layout *lay, const char *ctx, const void *body,
	      struct writer *w, custody_err *err)
{
	const struct rule *rule;
	unsigned char scratch[4];
	const unsigned char *v;
	size_t i, n;
	int r;

	for (i = 0; i < lay->n_rules; i++) {
		rule = &lay->rules[i];
		if (rule->tag == TAG_CHAIN || rule->tag == TAG_ENTRY)
			r = encode_repeated(rule, ctx, body, w, err);
		else if (!member_bytes(rule, body, scratch, &v, &n))
			r = CUSTODY_OK;
		else
			r = put_field(w, ctx, rule->tag, v, n, err);
		if (r != CUSTODY_OK)
			return r;
	}
	return CUSTODY_OK;
}

int
custody_agent_wire_encode(const custody_agent_msg *m, unsigned char *buf,
			  size_t size, size_t *len, custody_err *err)
{
	const struct layout *lay = layout_of((int)m->kind);
	struct writer w = {buf, size, 0};
	unsigned char head[6] = {0, 0, 0, 0, CUSTODY_AGENT_WIRE_VERSION, 0};
	int r;

	*len = 0;
	if (lay == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot encode agent "
				       "message: unknown message kind %d",
				       (int)m->kind);
	head[5] = (unsigned char)m->kind;
	put(&w, head, sizeof(head));
	if ((r = encode_fields(lay, lay->name, &m->u, &w, err)) != CUSTODY_OK ||
	    (r = check_kind(m->kind, &m->u, lay->name, err)) != CUSTODY_OK)
		return custody_err_prefix(err, "cannot encode agent message");
	if (w.pos - 4 > CUSTODY_AGENT_FRAME_MAX)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot encode agent "
				       "message: %s: %zu bytes, over the frame "
				       "maximum of %d", lay->name, w.pos - 4,
				       CUSTODY_AGENT_FRAME_MAX);
	if (w.pos > size)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot encode agent "
				       "message: %s: a buffer of %zu bytes is too "
				       "small for the %zu-byte frame", lay->name,
				       size, w.pos);
	put_be32(buf, (uint32_t)(w.pos - 4));
	*len = w.pos;
	return CUSTODY_OK;
}

/* ---------------------------------------------------------------- clear */

/* Zeroes the kind's extent: the message was zero before it was filled
 * (custody/agent_wire.h), and only its kind's member was filled since. */
void
custody_agent_msg_clear(custody_agent_msg *m)
{
	size_t i;

	if (m == NULL)
		return;
	switch (m->kind) {
	case CUSTODY_AGENT_CERT_RESPONSE:
		for (i = 0; i < CUSTODY_AGENT_CHAIN_MAX; i++)
			free(m->u.cert_response.chain[i].der);
		break;
	case CUSTODY_AGENT_LIST_RESPONSE:
		free(m->u.list_response.entries);
		break;
	case CUSTODY_AGENT_JWT_REQUEST:
		explicit_bzero(m->u.jwt_request.claims,
				sizeof(m->u.jwt_request.claims));
		break;
	default:
		break;
	}
	memset(m, 0, msg_extent(m->kind));
}
