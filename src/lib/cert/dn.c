/*
 * cert/dn.c — distinguished names and subject alternative names as a user
 * writes them, read into OpenSSL's objects (custody/cert.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <custody/cert.h>

#define DN_TYPE_MAX 64		/* bytes of an attribute type, with its NUL  */
#define DN_VALUE_MAX 512	/* bytes of a value, with its NUL            */
/* The string types a "#" value may hold. */
#define DN_HEX_TYPES (B_ASN1_DIRECTORYSTRING | B_ASN1_IA5STRING | \
		      B_ASN1_VISIBLESTRING | B_ASN1_NUMERICSTRING)

/* One TYPE=VALUE of the text: where it is, and whether a new RDN starts
 * with it (after a separator, not after a '+'). */
struct ava {
	size_t start;
	size_t len;
	int rdn_start;
};

/* A value in RFC 4514's "#" form: the hex of a BER-encoded string
 * (UTF8String, PrintableString, IA5String, BMPString, ...), read back
 * into UTF-8.  p..end holds the hex digits (trailing spaces allowed). */
static int
dn_hex_value(const char *type, const char *p, const char *end, char *val,
	     size_t val_size, size_t *v, custody_err *err)
{
	unsigned char der[DN_VALUE_MAX * 2];
	const unsigned char *q = der;
	unsigned char *utf8 = NULL;
	ASN1_TYPE *t = NULL;
	size_t n = 0;
	int hi, lo, len = -1, r;

	while (end > p && end[-1] == ' ')
		end--;
	for (; p + 1 < end && n < sizeof(der); p += 2) {
		if ((hi = OPENSSL_hexchar2int((unsigned char)p[0])) < 0 ||
		    (lo = OPENSSL_hexchar2int((unsigned char)p[1])) < 0)
			break;
		der[n++] = (unsigned char)(hi << 4 | lo);
	}
	if (p != end || n == 0)
		return custody_err_set(err, CUSTODY_EUSAGE, "the value of %s after '#' is not "
				       "hex digits in pairs (write a leading '#' as \\#)", type);
	t = d2i_ASN1_TYPE(NULL, &q, (long)n);
	if (t != NULL && q == der + n && (ASN1_tag2bit(ASN1_TYPE_get(t)) & DN_HEX_TYPES) != 0)
		len = ASN1_STRING_to_UTF8(&utf8, t->value.asn1_string);
	if (len < 0) {
		r = custody_err_set(err, CUSTODY_EUSAGE, "the value of %s after '#' is not a "
				    "BER-encoded string", type);
	} else if ((size_t)len >= val_size) {
		r = custody_err_set(err, CUSTODY_EUSAGE, "value of %s too long", type);
	} else {
		memcpy(val, utf8, (size_t)len);
		*v = (size_t)len;
		r = CUSTODY_OK;
	}
	OPENSSL_free(utf8);
	ASN1_TYPE_free(t);
	return r;
}

/* The value of p..end unescaped into val (RFC 4514: \c for a special
 * character, \XX for a byte); leading and trailing unescaped spaces
 * dropped.  *v: its length. */
static int
dn_plain_value(const char *type, const char *p, const char *end, char *val,
	       size_t val_size, size_t *v, custody_err *err)
{
	size_t n = 0, keep = 0;

	for (; p < end; p++) {
		int c = (unsigned char)*p;

		if (n + 1 >= val_size)
			return custody_err_set(err, CUSTODY_EUSAGE, "value of %s too long", type);
		if (c == '\\') {
			int hi = p + 2 < end ? OPENSSL_hexchar2int((unsigned char)p[1]) : -1;
			int lo = hi >= 0 ? OPENSSL_hexchar2int((unsigned char)p[2]) : -1;

			if (hi >= 0 && lo >= 0) {
				c = hi << 4 | lo;
				p += 2;
			} else if (p + 1 < end) {
				c = (unsigned char)*++p;
			} else {
				return custody_err_set(err, CUSTODY_EUSAGE, "a '\\' ends the value "
						       "of %s", type);
			}
			val[n++] = (char)c;
			keep = n;
			continue;
		}
		val[n++] = (char)c;
		if (c != ' ')
			keep = n;
	}
	*v = keep;	/* trailing unescaped spaces dropped */
	return CUSTODY_OK;
}

/* Whether p..end holds nothing but spaces. */
static int
dn_lone_hash(const char *p, const char *end)
{
	while (p < end && *p == ' ')
		p++;
	return p == end;
}

/* One "type=value" of a DN: the type (spaces dropped) and the value. */
static int
dn_attribute(const char *s, size_t len, char *type, char *val, size_t *v,
	     custody_err *err)
{
	const char *eq = memchr(s, '=', len), *end = s + len, *p;
	size_t t = 0;
	int r;

	*v = 0;
	if (eq == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE, "'%.*s' is not TYPE=VALUE",
				       (int)len, s);
	for (p = s; p < eq; p++) {
		if (*p == ' ')
			continue;
		if (t + 1 >= DN_TYPE_MAX)
			return custody_err_set(err, CUSTODY_EUSAGE, "attribute type too long");
		type[t++] = *p;
	}
	type[t] = '\0';
	for (p = eq + 1; p < end && *p == ' '; p++)
		;
	/* A '#' alone is the character: OpenSSL prints the value "#" so. */
	if (p < end && *p == '#' && !dn_lone_hash(p + 1, end))
		r = dn_hex_value(type, p + 1, end, val, DN_VALUE_MAX, v, err);
	else
		r = dn_plain_value(type, p, end, val, DN_VALUE_MAX, v, err);
	if (r != CUSTODY_OK)
		return r;
	val[*v] = '\0';
	if (t == 0 || *v == 0)
		return custody_err_set(err, CUSTODY_EUSAGE, "'%.*s' has an empty type or value",
				       (int)len, s);
	if (memchr(val, '\0', *v) != NULL)
		return custody_err_set(err, CUSTODY_EUSAGE, "the value of %s holds a NUL byte",
				       type);
	return CUSTODY_OK;
}

/* Splits s at unescaped separators sep (a new RDN) and '+' (one more
 * value of the same RDN). */
static int
dn_split(const char *s, char sep, struct ava *avas, size_t *n, custody_err *err)
{
	size_t i, begin = 0, len = strlen(s);
	int rdn_start = 1;

	*n = 0;
	for (i = 0; i <= len; i++) {
		if (i + 1 < len && s[i] == '\\') {
			i++;
			continue;
		}
		if (i < len && s[i] != sep && s[i] != '+')
			continue;
		if (*n >= CUSTODY_DN_MAX_ATTRIBUTES)
			return custody_err_set(err, CUSTODY_EUSAGE, "more than %d attributes",
					       CUSTODY_DN_MAX_ATTRIBUTES);
		avas[*n].start = begin;
		avas[*n].len = i - begin;
		avas[(*n)++].rdn_start = rdn_start;
		rdn_start = i < len && s[i] == sep;
		begin = i + 1;
	}
	return CUSTODY_OK;
}

/* Adds the attribute of one AVA to name: a new RDN, or (join) one more
 * value of the last RDN. */
static int
dn_add(X509_NAME *name, const char *s, size_t len, int join, custody_err *err)
{
	char type[DN_TYPE_MAX], val[DN_VALUE_MAX];
	size_t v;
	int r;

	if ((r = dn_attribute(s, len, type, val, &v, err)) != CUSTODY_OK)
		return r;
	if (OBJ_txt2nid(type) == NID_undef)
		return custody_err_set(err, CUSTODY_EUSAGE, "unknown attribute type %s", type);
	if (X509_NAME_add_entry_by_txt(name, type, MBSTRING_UTF8, (const unsigned char *)val,
				       (int)v, -1, join ? -1 : 0) != 1)
		return custody_err_openssl(err, CUSTODY_EUSAGE, "invalid value for %s", type);
	return CUSTODY_OK;
}

/* The index of the AVA that starts the k-th RDN in the order X.501 wants
 * (the most general first): the text's order in the /-form, the reverse
 * in RFC 4514's. */
static size_t
dn_rdn_first(const struct ava *avas, size_t n, size_t k, int reverse)
{
	size_t i, seen = 0;

	for (i = 0; i < n; i++) {
		size_t at = reverse ? n - 1 - i : i;

		if (!avas[at].rdn_start)
			continue;
		if (seen++ == k)
			return at;
	}
	return n;
}

int
custody_dn_parse(const char *text, X509_NAME **out, custody_err *err)
{
	struct ava avas[CUSTODY_DN_MAX_ATTRIBUTES];
	size_t n = 0, k, i, first;
	int slash = text[0] == '/', r;
	X509_NAME *name = NULL;

	*out = NULL;
	text += slash;
	if ((r = dn_split(text, slash ? '/' : ',', avas, &n, err)) != CUSTODY_OK)
		goto out;
	if ((name = X509_NAME_new()) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL, "out of memory");
		goto out;
	}
	for (k = 0; (first = dn_rdn_first(avas, n, k, !slash)) < n; k++) {
		for (i = first; i < n && (i == first || !avas[i].rdn_start); i++)
			if ((r = dn_add(name, text + avas[i].start, avas[i].len, i != first,
					err)) != CUSTODY_OK)
				goto out;
	}
	*out = name;
	name = NULL;
	r = CUSTODY_OK;
out:
	X509_NAME_free(name);
	return r;
}

void
custody_dn_text(const X509_NAME *name, char *buf, size_t size)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int len = 0;

	buf[0] = '\0';
	if (bio != NULL &&
	    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0 &&
	    (len = BIO_read(bio, buf, (int)size - 1)) > 0)
		buf[len] = '\0';
	BIO_free(bio);
}

void
custody_dn_common_name(const X509_NAME *name, char *buf, size_t size)
{
	char *utf8 = NULL;
	size_t len = 0;
	int pos = -1;

	buf[0] = '\0';
	if (custody_name_next_cn(name, &pos, &utf8, &len) == 1 && len > 0 && len < size) {
		memcpy(buf, utf8, len);
		buf[len] = '\0';
	}
	free(utf8);
}

/* ---------------------------------------------------------------- SANs */

/* Whether p..p+len is KIND:SOMETHING of a kind custody asks for, with no
 * space or control character (which OpenSSL would cut or misread). */
static int
san_known(const char *p, size_t len)
{
	static const char *const kinds[] = {"DNS:", "IP:", "email:", "URI:"};
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f)
			return 0;
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t kl = strlen(kinds[i]);

		if (len > kl && strncmp(p, kinds[i], kl) == 0)
			return 1;
	}
	return 0;
}

int
custody_san_parse(const char *text, X509_EXTENSION **out, custody_err *err)
{
	const char *p = text, *end;
	size_t len;

	*out = NULL;
	for (;;) {
		end = strchr(p, ',');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (!san_known(p, len))
			return custody_err_set(err, CUSTODY_EUSAGE, "'%.*s' is not DNS:NAME, "
					       "IP:ADDRESS, email:ADDRESS or URI:URI", (int)len, p);
		if (end == NULL)
			break;
		p = end + 1;
	}
	*out = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, text);
	if (*out == NULL)
		return custody_err_openssl(err, CUSTODY_EUSAGE, "invalid %s", text);
	return CUSTODY_OK;
}
