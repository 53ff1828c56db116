/* cert/cert.c — X.509 facts: thumbprints, names, validity, SANs, key facts. */
#include "config.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include <custody/cert.h>
#include <custody/hexfmt.h>

/* The text a memory BIO holds, as a malloc'ed NUL-terminated string. */
static char *
bio_text(BIO *bio)
{
	char *data = NULL, *out;
	long n = BIO_get_mem_data(bio, &data);

	if (n < 0)
		return NULL;
	out = malloc((size_t)n + 1);
	if (out == NULL)
		return NULL;
	if (n > 0)
		memcpy(out, data, (size_t)n);
	out[n] = '\0';
	return out;
}

/* RFC 2253 text of a name ("CN=a,O=b"), malloc'ed; non-ASCII characters stay
 * UTF-8 rather than \XX escapes, as people read them. */
static char *
name_text(const X509_NAME *name)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *out = NULL;

	if (bio == NULL)
		return NULL;
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0)
		out = bio_text(bio);
	BIO_free(bio);
	return out;
}

/* Upper-case hex of the serial number as BN_bn2hex writes it. */
static char *
serial_text(const ASN1_INTEGER *serial)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
	char *hex = NULL, *out = NULL;

	if (bn != NULL)
		hex = BN_bn2hex(bn);
	if (hex != NULL)
		out = strdup(hex);
	OPENSSL_free(hex);
	BN_free(bn);
	return out;
}

static int
asn1_time_unix(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return -1;
	*out = (int64_t)timegm(&tm);
	return 0;
}

int
custody_cert_validity(const X509 *x, int64_t *not_before, int64_t *not_after)
{
	if (asn1_time_unix(X509_get0_notBefore(x), not_before) != 0 ||
	    asn1_time_unix(X509_get0_notAfter(x), not_after) != 0)
		return -1;
	return 0;
}

/* "PREFIX" followed by the bytes of s; control bytes, bytes above 0x7e
 * and backslashes are written as \xNN so that no name can hide a NUL or
 * a terminal escape in what the user is shown. */
static char *
escaped(const char *prefix, const ASN1_STRING *s)
{
	const unsigned char *p = ASN1_STRING_get0_data(s);
	int n = ASN1_STRING_length(s), i;
	size_t plen = strlen(prefix), o;
	char *out;

	if (n < 0)
		return NULL;
	out = malloc(plen + 4 * (size_t)n + 1);
	if (out == NULL)
		return NULL;
	memcpy(out, prefix, plen);
	o = plen;
	for (i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] > 0x7e || p[i] == '\\')
			o += (size_t)sprintf(out + o, "\\x%02X", p[i]);
		else
			out[o++] = (char)p[i];
	}
	out[o] = '\0';
	return out;
}

static char *
ip_text(const ASN1_OCTET_STRING *ip)
{
	char addr[INET6_ADDRSTRLEN] = "";
	char *out;
	int n = ASN1_STRING_length(ip);

	if (n == 4)
		inet_ntop(AF_INET, ASN1_STRING_get0_data(ip), addr, sizeof(addr));
	else if (n == 16)
		inet_ntop(AF_INET6, ASN1_STRING_get0_data(ip), addr, sizeof(addr));
	else
		return escaped("IP:", ip);
	out = malloc(strlen(addr) + 4);
	if (out != NULL)
		sprintf(out, "IP:%s", addr);
	return out;
}

static char *
dirname_text(const X509_NAME *name)
{
	char *text = name_text(name), *out = NULL;

	if (text != NULL && (out = malloc(strlen(text) + 9)) != NULL)
		sprintf(out, "DirName:%s", text);
	free(text);
	return out;
}

/* Text of one general name, or NULL (with *skip set) for a kind that is
 * not shown. */
static char *
general_name_text(const GENERAL_NAME *gn, int *skip)
{
	*skip = 0;
	switch (gn->type) {
	case GEN_DNS:
		return escaped("DNS:", gn->d.dNSName);
	case GEN_IPADD:
		return ip_text(gn->d.iPAddress);
	case GEN_URI:
		return escaped("URI:", gn->d.uniformResourceIdentifier);
	case GEN_EMAIL:
		return escaped("email:", gn->d.rfc822Name);
	case GEN_DIRNAME:
		return dirname_text(gn->d.directoryName);
	default:
		*skip = 1;
		return NULL;
	}
}

static int
alt_names(X509 *x, custody_cert_record *out, custody_err *err)
{
	int r = CUSTODY_EFAIL, crit = 0, i, n, skip;
	GENERAL_NAMES *names;
	char *text;

	names = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
	if (names == NULL) {
		if (crit != -1) {
			r = custody_err_openssl(err, CUSTODY_EFAIL,
						"cannot read the certificate's "
						"alternative names");
			goto out;
		}
		r = CUSTODY_OK;
		goto out;
	}
	n = sk_GENERAL_NAME_num(names);
	if (n > 0) {
		out->alt_names = calloc((size_t)n, sizeof(char *));
		if (out->alt_names == NULL) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot read the certificate's "
					    "alternative names: out of memory");
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		text = general_name_text(sk_GENERAL_NAME_value(names, i), &skip);
		if (skip)
			continue;
		if (text == NULL) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot read the certificate's "
					    "alternative names: out of memory");
			goto out;
		}
		out->alt_names[out->n_alt_names++] = text;
	}
	r = CUSTODY_OK;
out:
	GENERAL_NAMES_free(names);
	return r;
}

static int
key_id_of(const unsigned char *bits, int len, unsigned char id[20],
	  custody_err *err)
{
	if (bits == NULL || len < 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot compute the key id: the public "
				       "key is missing");
	SHA1(bits, (size_t)len, id);
	return CUSTODY_OK;
}

int
custody_cert_key_id(X509 *x, unsigned char id[20], custody_err *err)
{
	const ASN1_BIT_STRING *bits = x != NULL ? X509_get0_pubkey_bitstr(x) : NULL;

	if (bits == NULL)
		return key_id_of(NULL, -1, id, err);
	return key_id_of(ASN1_STRING_get0_data(bits), ASN1_STRING_length(bits),
			 id, err);
}

int
custody_pkey_key_id(EVP_PKEY *pkey, unsigned char id[20], custody_err *err)
{
	int r = CUSTODY_EFAIL, len = 0;
	X509_PUBKEY *pub = NULL;
	const unsigned char *bits = NULL;

	if (pkey == NULL || X509_PUBKEY_set(&pub, pkey) != 1 ||
	    X509_PUBKEY_get0_param(NULL, &bits, &len, NULL, pub) != 1) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot compute the key id: cannot "
					"encode the public key");
		goto out;
	}
	r = key_id_of(bits, len, id, err);
out:
	X509_PUBKEY_free(pub);
	return r;
}

/* The next DER element of [*p, end): its tag and class, and its contents
 * [*c, *c + *clen); *p moves past it.  -1 when it is not DER (a bad or
 * indefinite length, or past end). */
static int
der_next(const unsigned char **p, const unsigned char *end, int *tag,
	 int *cls, const unsigned char **c, long *clen)
{
	const unsigned char *q = *p;
	int ret;

	if (*p >= end)
		return -1;
	ret = ASN1_get_object(&q, clen, tag, cls, end - *p);
	if ((ret & 0x80) != 0 || (ret & 0x01) != 0) {
		ERR_clear_error();
		return -1;
	}
	*c = q;
	*p = q + *clen;
	return 0;
}

/*
 * The key id (custody_cert_key_id) of the certificate der, read from its
 * structure alone: Certificate, TBSCertificate, [0] version, serial,
 * signature, issuer, validity, subject, then subjectPublicKeyInfo and its
 * BIT STRING.  Nothing is decoded, so that a short-lived signer (`custody
 * sign`, one certificate) does not pay for OpenSSL's first decoding of a
 * certificate and its key: 0.7 ms measured, against 0.1 ms for this and
 * the two SHA-1.  -1 when der is not one DER certificate (or its key has
 * unused bits, which no RSA or EC key has).
 */
static int
der_key_id(const unsigned char *der, size_t len, unsigned char id[20])
{
	const unsigned char *p = der, *end = der + len, *c;
	long clen;
	int tag, cls, i;

	/* Certificate ::= SEQUENCE, the whole of der; TBSCertificate first. */
	if (der_next(&p, end, &tag, &cls, &c, &clen) != 0 || p != end ||
	    tag != V_ASN1_SEQUENCE || cls != V_ASN1_UNIVERSAL)
		return -1;
	p = c;
	end = c + clen;
	if (der_next(&p, end, &tag, &cls, &c, &clen) != 0 ||
	    tag != V_ASN1_SEQUENCE)
		return -1;
	p = c;
	end = c + clen;
	if (der_next(&p, end, &tag, &cls, &c, &clen) != 0)
		return -1;
	if (cls == V_ASN1_CONTEXT_SPECIFIC && tag == 0 &&	/* version */
	    der_next(&p, end, &tag, &cls, &c, &clen) != 0)
		return -1;
	/* serial (just read), signature, issuer, validity, subject, key */
	for (i = 0; i < 5; i++)
		if (der_next(&p, end, &tag, &cls, &c, &clen) != 0)
			return -1;
	if (tag != V_ASN1_SEQUENCE || cls != V_ASN1_UNIVERSAL)
		return -1;
	p = c;
	end = c + clen;
	if (der_next(&p, end, &tag, &cls, &c, &clen) != 0 ||	/* algorithm */
	    der_next(&p, end, &tag, &cls, &c, &clen) != 0 ||
	    tag != V_ASN1_BIT_STRING || cls != V_ASN1_UNIVERSAL || clen < 2 ||
	    c[0] != 0)
		return -1;
	SHA1(c + 1, (size_t)clen - 1, id);
	return 0;
}

int
custody_cert_der_check(const unsigned char *der, size_t len,
		       const char *thumbprint, const char *key_id, X509 **out,
		       custody_err *err)
{
	const unsigned char *p = der;
	unsigned char md[SHA_DIGEST_LENGTH], id[20];
	char hex[CUSTODY_THUMBPRINT_HEX + 1];
	X509 *x = NULL;
	int r = CUSTODY_EFAIL;

	if (out != NULL)
		*out = NULL;
	if (der == NULL || len == 0 || len > (size_t)LONG_MAX ||
	    der_key_id(der, len, id) != 0 ||
	    (out != NULL &&
	     ((x = d2i_X509(NULL, &p, (long)len)) == NULL || p != der + len))) {
		ERR_clear_error();
		r = custody_err_set(err, CUSTODY_EFAIL, "its certificate is not "
				    "one DER X.509 certificate");
		goto out;
	}
	SHA1(der, len, md);
	custody_hex_encode(md, sizeof(md), hex, 1);
	if (strcmp(hex, thumbprint) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL, "its thumbprint %s is not "
				    "that of its certificate (%s)", thumbprint,
				    hex);
		goto out;
	}
	custody_hex_encode(id, sizeof(id), hex, 0);
	if (strcmp(hex, key_id) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL, "its key id %s is not "
				    "that of its certificate (%s)",
				    key_id[0] != '\0' ? key_id : "(none)", hex);
		goto out;
	}
	if (out != NULL) {
		*out = x;
		x = NULL;
	}
	r = CUSTODY_OK;
out:
	X509_free(x);
	return r;
}

int
custody_cert_record_check(const custody_cert_record *rec, X509 **out,
			  custody_err *err)
{
	int r;

	r = custody_cert_der_check(rec->der, rec->der_len, rec->thumbprint,
				   rec->key_id, out, err);
	if (r == CUSTODY_OK)
		return r;
	custody_err_prefix(err, "the store's record of certificate %s",
			   rec->thumbprint);
	custody_err_hint(err, "the store was changed outside custody: restore "
			 "it from a backup, and find out who changed it");
	return r;
}

static void
ec_algorithm(EVP_PKEY *pkey, char *buf, size_t size)
{
	char group[80] = "";
	size_t glen = 0;
	int nid = NID_undef;

	if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) == 1) {
		nid = OBJ_sn2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
		if (nid == NID_undef)
			nid = OBJ_txt2nid(group);
	}
	ERR_clear_error();
	switch (nid) {
	case NID_X9_62_prime256v1:
		snprintf(buf, size, "EC-P256");
		break;
	case NID_secp384r1:
		snprintf(buf, size, "EC-P384");
		break;
	case NID_secp521r1:
		snprintf(buf, size, "EC-P521");
		break;
	case NID_undef:
		if (group[0] != '\0')
			snprintf(buf, size, "EC-%s", group);
		else
			snprintf(buf, size, "EC-%d", EVP_PKEY_get_bits(pkey));
		break;
	default:
		snprintf(buf, size, "EC-%s", OBJ_nid2sn(nid));
		break;
	}
}

void
custody_pkey_algorithm(EVP_PKEY *pkey, char *buf, size_t size)
{
	const char *name = NULL;
	int id;
	size_t i;

	if (buf == NULL || size == 0)
		return;
	if (pkey == NULL) {
		snprintf(buf, size, "none");
		return;
	}
	id = EVP_PKEY_get_base_id(pkey);
	switch (id) {
	case EVP_PKEY_RSA:
		snprintf(buf, size, "RSA-%d", EVP_PKEY_get_bits(pkey));
		return;
	case EVP_PKEY_RSA_PSS:
		snprintf(buf, size, "RSA-PSS-%d", EVP_PKEY_get_bits(pkey));
		return;
	case EVP_PKEY_EC:
		ec_algorithm(pkey, buf, size);
		return;
	case EVP_PKEY_DSA:
		snprintf(buf, size, "DSA-%d", EVP_PKEY_get_bits(pkey));
		return;
	default:
		break;
	}
	if (id != EVP_PKEY_NONE)
		name = OBJ_nid2sn(id);
	if (name == NULL)
		name = EVP_PKEY_get0_type_name(pkey);
	snprintf(buf, size, "%s", name != NULL ? name : "unknown");
	for (i = 0; buf[i] != '\0'; i++)
		if (buf[i] >= 'a' && buf[i] <= 'z')
			buf[i] = (char)(buf[i] - 'a' + 'A');
}

static int
fill_der(X509 *x, custody_cert_record *out, custody_err *err)
{
	unsigned char *p;
	int n = i2d_X509(x, NULL);

	if (n <= 0)
		return custody_err_openssl(err, CUSTODY_EFAIL,
					   "cannot encode the certificate");
	out->der = malloc((size_t)n);
	if (out->der == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot encode the certificate: out of "
				       "memory");
	p = out->der;
	if (i2d_X509(x, &p) != n)
		return custody_err_openssl(err, CUSTODY_EFAIL,
					   "cannot encode the certificate");
	out->der_len = (size_t)n;
	return CUSTODY_OK;
}

int
custody_cert_record_from_x509(X509 *x, custody_cert_record *out,
			      custody_err *err)
{
	int r = CUSTODY_EFAIL;
	unsigned char md[SHA256_DIGEST_LENGTH], id[20];

	memset(out, 0, sizeof(*out));
	if (x == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read the certificate: none given");
		goto out;
	}
	if ((r = fill_der(x, out, err)) != CUSTODY_OK)
		goto out;
	SHA1(out->der, out->der_len, md);
	custody_hex_encode(md, SHA_DIGEST_LENGTH, out->thumbprint, 1);
	SHA256(out->der, out->der_len, md);
	custody_hex_encode(md, SHA256_DIGEST_LENGTH, out->sha256, 1);
	out->subject = name_text(X509_get_subject_name(x));
	out->issuer = name_text(X509_get_issuer_name(x));
	out->serial = serial_text(X509_get0_serialNumber(x));
	if (out->subject == NULL || out->issuer == NULL || out->serial == NULL) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot read the certificate's names "
					"and serial number");
		goto out;
	}
	if (custody_cert_validity(x, &out->not_before, &out->not_after) != 0) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot read the certificate's validity");
		goto out;
	}
	if ((r = alt_names(x, out, err)) != CUSTODY_OK)
		goto out;
	custody_pkey_algorithm(X509_get0_pubkey(x), out->key_algorithm,
			       sizeof(out->key_algorithm));
	ERR_clear_error();
	if ((r = custody_cert_key_id(x, id, err)) != CUSTODY_OK)
		goto out;
	custody_hex_encode(id, sizeof(id), out->key_id, 0);
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK)
		custody_cert_record_clear(out);
	return r;
}

int
custody_cert_record_from_der(const unsigned char *der, size_t len,
			     custody_cert_record *out, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	const unsigned char *p = der;
	X509 *x = NULL;

	memset(out, 0, sizeof(*out));
	if (der == NULL || len == 0 || len > (size_t)LONG_MAX) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read the certificate: no DER bytes");
		goto out;
	}
	x = d2i_X509(NULL, &p, (long)len);
	if (x == NULL) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot read the certificate: not DER "
					"X.509");
		goto out;
	}
	if (p != der + len) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read the certificate: %zu bytes "
				    "follow the DER certificate",
				    len - (size_t)(p - der));
		goto out;
	}
	r = custody_cert_record_from_x509(x, out, err);
out:
	X509_free(x);
	return r;
}

char *
custody_cert_der_to_pem(const unsigned char *der, size_t len)
{
	BIO *bio = NULL;
	char *out = NULL;

	if (der == NULL || len == 0 || len > (size_t)LONG_MAX)
		goto out;
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL ||
	    PEM_write_bio(bio, PEM_STRING_X509, "", der, (long)len) <= 0)
		goto out;
	out = bio_text(bio);
out:
	BIO_free(bio);
	return out;
}

/* ---------------------------------------------------------------- CNs */

int
custody_name_next_cn(const X509_NAME *name, int *pos, char **utf8,
		     size_t *len)
{
	unsigned char *text = NULL;
	int i, n;

	*utf8 = NULL;
	*len = 0;
	if ((i = X509_NAME_get_index_by_NID(name, NID_commonName, *pos)) < 0)
		return 0;
	*pos = i;
	n = ASN1_STRING_to_UTF8(&text, X509_NAME_ENTRY_get_data(
					       X509_NAME_get_entry(name, i)));
	if (n < 0 || (*utf8 = malloc((size_t)n + 1)) == NULL) {
		OPENSSL_free(text);
		return -1;
	}
	memcpy(*utf8, text, (size_t)n);
	(*utf8)[n] = '\0';
	*len = (size_t)n;
	OPENSSL_free(text);
	return 1;
}

char *
custody_cert_subject_cn(const X509 *x)
{
	char *cn = NULL;
	size_t len = 0;
	int pos = -1;

	(void)custody_name_next_cn(X509_get_subject_name(x), &pos, &cn, &len);
	if (len == 0) {
		free(cn);	/* an empty CN */
		cn = NULL;
	}
	return cn;
}

/* One DER INTEGER of the unsigned big-endian v (len bytes) at out. */
static size_t
der_uint(const unsigned char *v, size_t len, unsigned char *out)
{
	size_t o = 0;

	while (len > 1 && v[0] == 0) {
		v++;
		len--;
	}
	out[o++] = 0x02;
	out[o++] = (unsigned char)(len + (v[0] & 0x80 ? 1 : 0));
	if (v[0] & 0x80)
		out[o++] = 0x00;
	memcpy(out + o, v, len);
	return o + len;
}

size_t
custody_ecdsa_raw_to_der(const unsigned char *rs, size_t rs_len, unsigned char *out)
{
	unsigned char body[2 * (2 + 67)];
	size_t half = rs_len / 2, n, o = 0;

	if (rs_len == 0 || rs_len % 2 != 0 || half > 66)
		return 0;
	n = der_uint(rs, half, body);
	n += der_uint(rs + half, half, body + n);
	out[o++] = 0x30;
	if (n >= 0x80)
		out[o++] = 0x81;
	out[o++] = (unsigned char)n;
	memcpy(out + o, body, n);
	return o + n;
}
