/* cert/policy.c — what may be imported and assigned (see custody/policy.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <custody/cert.h>
#include <custody/policy.h>
#include <custody/timefmt.h>

#include "cert/name_text.h"

#define DAY 86400
#define MAX_DURATION (INT64_C(100) * 365 * DAY)	/* longest overlap */

/* Lead times below which a roll is warned about. */
static const struct {
	const char *type;
	int64_t advised;
} roll_leads[] = {
	{OAUTH_TYPE, 24 * 3600},
	{"AudioVideoAuthentication", 8 * 3600},
};

static const struct {
	const char *name;	/* as policy text and messages write it */
	unsigned bit;
	int nid;
} curves[] = {
	{"p256", CUSTODY_CURVE_P256, NID_X9_62_prime256v1},
	{"p384", CUSTODY_CURVE_P384, NID_secp384r1},
	{"p521", CUSTODY_CURVE_P521, NID_secp521r1},
};

#define N_CURVES (sizeof(curves) / sizeof(curves[0]))
#define ALL_CURVES (CUSTODY_CURVE_P256 | CUSTODY_CURVE_P384 | CUSTODY_CURVE_P521)

/* Other spellings of the curves accepted in ec-curves. */
static const struct {
	const char *alias;
	unsigned bit;
} curve_aliases[] = {
	{"p-256", CUSTODY_CURVE_P256}, {"prime256v1", CUSTODY_CURVE_P256},
	{"secp256r1", CUSTODY_CURVE_P256},
	{"p-384", CUSTODY_CURVE_P384}, {"secp384r1", CUSTODY_CURVE_P384},
	{"p-521", CUSTODY_CURVE_P521}, {"secp521r1", CUSTODY_CURVE_P521},
};

void
custody_policy_defaults(custody_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->min_rsa_bits = 2048;
	p->ec_curves = ALL_CURVES;
	p->sip_domain[0] = '\0';
	p->overlap = DAY;
	p->warn_days = 30;
	p->successor_warn_days = 60;
	p->successor_critical_days = 14;
}

/* ---------------------------------------------------------------- text */

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}


/* ---------------------------------------------------------------- [policy] */

/* The number of the setting key, from min to max (in unit): EUSAGE
 * otherwise. */
static int
parse_number(const char *key, const char *s, long min, long max,
	     const char *unit, int *out, custody_err *err)
{
	char *end, text[84];
	long v = 0;

	if (s[0] != '\0' && (is_digit(s[0]) || s[0] == '-')) {
		errno = 0;
		v = strtol(s, &end, 10);
		if (errno == 0 && *end == '\0' && v >= min && v <= max) {
			*out = (int)v;
			return CUSTODY_OK;
		}
	}
	shown(s, text);
	return custody_err_set(err, CUSTODY_EUSAGE,
			       "invalid policy %s '%s': give a number of %s "
			       "from %ld to %ld", key, text, unit, min, max);
}

/* "24h", "90m", "3600s", "2d" or plain seconds. */
int
custody_policy_parse_duration(const char *s, int64_t *out)
{
	int64_t v = 0, unit = 1;
	size_t i = 0;

	if (!is_digit(s[0]))
		return -1;
	for (; is_digit(s[i]); i++) {
		v = v * 10 + (s[i] - '0');
		if (v > MAX_DURATION)
			return -1;
	}
	switch (s[i]) {
	case '\0':
		break;
	case 's': case 'S':
		i++;
		break;
	case 'm': case 'M':
		unit = 60;
		i++;
		break;
	case 'h': case 'H':
		unit = 3600;
		i++;
		break;
	case 'd': case 'D':
		unit = DAY;
		i++;
		break;
	default:
		return -1;
	}
	if (s[i] != '\0' || v > MAX_DURATION / unit)
		return -1;
	*out = v * unit;
	return 0;
}

static int
curve_bit(const char *name, size_t len, unsigned *bit)
{
	char word[16];
	size_t i;

	if (len == 0 || len >= sizeof(word))
		return -1;
	memcpy(word, name, len);
	word[len] = '\0';
	lower(word);
	for (i = 0; i < N_CURVES; i++)
		if (strcmp(word, curves[i].name) == 0) {
			*bit = curves[i].bit;
			return 0;
		}
	for (i = 0; i < sizeof(curve_aliases) / sizeof(curve_aliases[0]); i++)
		if (strcmp(word, curve_aliases[i].alias) == 0) {
			*bit = curve_aliases[i].bit;
			return 0;
		}
	return -1;
}

/* "p256,p384" (spaces allowed around names) or "none". */
static int
parse_curves(const char *s, unsigned *out, custody_err *err)
{
	const char *p = s, *start, *end;
	unsigned set = 0, bit = 0;
	char word[84], text[84];

	shown(s, text);
	if (strcasecmp(s, "none") == 0) {
		*out = 0;
		return CUSTODY_OK;
	}
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		start = p;
		while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		end = p;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '\0' && *p != ',')
			return custody_err_set(err, CUSTODY_EUSAGE,
					       "invalid policy ec-curves '%s': "
					       "separate curve names with ','",
					       text);
		if (curve_bit(start, (size_t)(end - start), &bit) != 0) {
			snprintf(word, sizeof(word), "%.*s",
				 (int)((size_t)(end - start) > 80
					       ? 80 : (size_t)(end - start)),
				 start);
			shown(word, word);
			return custody_err_set(err, CUSTODY_EUSAGE,
					       "invalid policy ec-curves '%s': "
					       "unknown curve '%s' (known: p256, "
					       "p384, p521, or none)", text,
					       word);
		}
		set |= bit;
		if (*p == '\0')
			break;
		p++;	/* the comma */
	}
	*out = set;
	return CUSTODY_OK;
}

/* A DNS domain name: labels of letters, digits and '-', joined by '.'. */
static int
valid_domain(const char *s)
{
	size_t i, label = 0, len = strlen(s);

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		int c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
		} else if (is_alpha(c) || is_digit(c) ||
			   (c == '-' && label > 0)) {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0 && s[len - 1] != '-';
}

int
custody_policy_set(custody_policy *p, const char *key, const char *value,
		   custody_err *err)
{
	int r = CUSTODY_EUSAGE;
	char text[84], name[84];

	if (key == NULL || value == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "invalid policy setting: no key or value");
	shown(key, name);
	shown(value, text);
	if (strcmp(key, "min-rsa-bits") == 0) {
		if ((r = parse_number(key, value, 1024, 16384, "bits",
				      &p->min_rsa_bits, err)) != CUSTODY_OK)
			return r;
	} else if (strcmp(key, "ec-curves") == 0) {
		if ((r = parse_curves(value, &p->ec_curves, err)) != CUSTODY_OK)
			return r;
	} else if (strcmp(key, "sip-domain") == 0) {
		if (value[0] != '\0' && !valid_domain(value))
			return custody_err_set(err, CUSTODY_EUSAGE,
					       "invalid policy sip-domain '%s': "
					       "not a DNS domain name", text);
		snprintf(p->sip_domain, sizeof(p->sip_domain), "%s", value);
		lower(p->sip_domain);
	} else if (strcmp(key, "overlap") == 0) {
		if (custody_policy_parse_duration(value, &p->overlap) != 0)
			return custody_err_set(err, CUSTODY_EUSAGE,
					       "invalid policy overlap '%s': give "
					       "a duration such as 24h, 90m, "
					       "3600s, 2d or plain seconds", text);
	} else if (strcmp(key, "warn-days") == 0 || strcmp(key, "successor-warn-days") == 0 ||
		   strcmp(key, "successor-critical-days") == 0) {
		if ((r = parse_number(key, value, 0, 3650, "days",
				      key[0] == 'w' ? &p->warn_days :
				      key[10] == 'w' ? &p->successor_warn_days :
				      &p->successor_critical_days, err)) != CUSTODY_OK)
			return r;
	} else {
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "unknown policy key '%s': the keys are "
				       "min-rsa-bits, ec-curves, sip-domain, "
				       "overlap, warn-days, successor-warn-days "
				       "and successor-critical-days", name);
	}
	return CUSTODY_OK;
}

/* ---------------------------------------------------------------- keys */

static void
allowed_curves(unsigned set, char *buf, size_t size)
{
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < N_CURVES; i++) {
		if ((set & curves[i].bit) == 0)
			continue;
		n += (size_t)snprintf(buf + n, size - n, "%s%s",
				      n > 0 ? ", " : "", curves[i].name);
		if (n >= size)
			break;
	}
	if (buf[0] == '\0')
		snprintf(buf, size, "none");
}

static int
check_ec(const custody_policy *p, EVP_PKEY *pkey, custody_err *err)
{
	int nid = NID_undef;
	char group[80] = "", allowed[64];
	const char *shown_name;
	size_t glen = 0, i;

	if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) == 1) {
		nid = OBJ_sn2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
	}
	ERR_clear_error();
	shown_name = group[0] != '\0' ? group : "(unnamed)";
	for (i = 0; i < N_CURVES; i++) {
		if (nid != curves[i].nid)
			continue;
		if (p->ec_curves & curves[i].bit)
			return CUSTODY_OK;
		shown_name = curves[i].name;
		break;
	}
	allowed_curves(p->ec_curves, allowed, sizeof(allowed));
	return custody_err_set(err, CUSTODY_EFAIL, "EC curve %s is not allowed by "
			       "policy (allowed: %s)", shown_name, allowed);
}

int
custody_policy_check_key(const custody_policy *p, EVP_PKEY *pkey,
			 custody_err *err)
{
	int r = CUSTODY_EFAIL, bits;
	char alg[32];

	if (pkey == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot check the key: none given");
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
	case EVP_PKEY_RSA_PSS:
		bits = EVP_PKEY_get_bits(pkey);
		if (bits < p->min_rsa_bits)
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "RSA key of %d bits is below the "
					    "policy minimum of %d bits", bits,
					    p->min_rsa_bits);
		else
			r = CUSTODY_OK;
		break;
	case EVP_PKEY_EC:
		r = check_ec(p, pkey, err);
		break;
	case EVP_PKEY_DSA:
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "DSA keys are not allowed");
		break;
	default:
		custody_pkey_algorithm(pkey, alg, sizeof(alg));
		r = custody_err_set(err, CUSTODY_EFAIL, "%s keys are not allowed "
				    "(use RSA or EC keys)", alg);
		break;
	}
	return r;
}

/* ---------------------------------------------------------------- names */

/* Whether name (len bytes, maybe not NUL-terminated) is domain or a name
 * under it, case-insensitively.  A name with a NUL inside never is. */
static int
name_in_domain(const unsigned char *name, size_t len, const char *domain)
{
	size_t dlen = strlen(domain);

	if (memchr(name, '\0', len) != NULL || len < dlen)
		return 0;
	if (strncasecmp((const char *)name + len - dlen, domain, dlen) != 0)
		return 0;
	return len == dlen || (len > dlen + 1 && name[len - dlen - 1] == '.');
}

static int
cn_in_domain(X509 *x, const char *domain)
{
	X509_NAME *subject = X509_get_subject_name(x);
	char *cn = NULL;
	size_t len = 0;
	int pos = -1, found, ok = 0;

	while (!ok &&
	       (found = custody_name_next_cn(subject, &pos, &cn, &len)) != 0) {
		if (found > 0 && len > 0)
			ok = name_in_domain((const unsigned char *)cn, len,
					    domain);
		free(cn);
	}
	return ok;
}

static int
san_in_domain(X509 *x, const char *domain)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL,
						NULL);
	const GENERAL_NAME *gn;
	int i, ok = 0;

	for (i = 0; !ok && i < sk_GENERAL_NAME_num(names); i++) {
		gn = sk_GENERAL_NAME_value(names, i);
		if (gn->type != GEN_DNS)
			continue;
		ok = name_in_domain(ASN1_STRING_get0_data(gn->d.dNSName),
				    (size_t)ASN1_STRING_length(gn->d.dNSName),
				    domain);
	}
	GENERAL_NAMES_free(names);
	ERR_clear_error();
	return ok;
}

int
custody_policy_check_cert(const custody_policy *p, X509 *x, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	custody_cert_record rec;

	memset(&rec, 0, sizeof(rec));
	if (x == NULL || X509_get0_pubkey(x) == NULL) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot check the certificate: its "
					"public key cannot be read");
		goto out;
	}
	if ((r = custody_policy_check_key(p, X509_get0_pubkey(x), err)) !=
	    CUSTODY_OK)
		goto out;
	if (p->sip_domain[0] != '\0' && !cn_in_domain(x, p->sip_domain) &&
	    !san_in_domain(x, p->sip_domain)) {
		if ((r = custody_cert_record_from_x509(x, &rec, err)) !=
		    CUSTODY_OK)
			goto out;
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "certificate %s is not for SIP domain %s: "
				    "neither its subject CN nor a DNS name is "
				    "%s or a name under it", rec.subject,
				    p->sip_domain, p->sip_domain);
		goto out;
	}
	r = CUSTODY_OK;
out:
	custody_cert_record_clear(&rec);
	return r;
}

int
custody_policy_check_valid_at(const custody_cert_record *rec, int64_t now,
			      custody_err *err)
{
	char when[CUSTODY_TIME_TEXT];
	const char *who = rec->subject != NULL ? rec->subject : rec->thumbprint;

	if (now > rec->not_after) {
		custody_time_format(rec->not_after, when);
		return custody_err_set(err, CUSTODY_EFAIL,
				       "certificate %s expired on %s", who, when);
	}
	if (now < rec->not_before) {
		custody_time_format(rec->not_before, when);
		return custody_err_set(err, CUSTODY_EFAIL,
				       "certificate %s is not valid until %s", who,
				       when);
	}
	return CUSTODY_OK;
}

int
custody_policy_check_identity(const char *type, const char *identity,
			      custody_err *err)
{
	char text[84];

	if (type == NULL || identity == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot check the identity: no type or "
				       "identity given");
	if (strcasecmp(type, OAUTH_TYPE) == 0 &&
	    strcasecmp(identity, CUSTODY_SCOPE_GLOBAL) != 0) {
		shown(identity, text);
		return custody_err_set(err, CUSTODY_EFAIL,
				       OAUTH_TYPE " can only be assigned at "
				       "identity global, not %s", text);
	}
	return CUSTODY_OK;
}

int
custody_policy_roll_warning(const char *type, int64_t lead, char *buf,
			    size_t size)
{
	int warn = 0;
	char have[48], advised[48];
	size_t i;

	for (i = 0; type != NULL && i < sizeof(roll_leads) /
					   sizeof(roll_leads[0]); i++) {
		if (strcasecmp(type, roll_leads[i].type) != 0 ||
		    lead >= roll_leads[i].advised)
			continue;
		custody_duration_format(lead, have, sizeof(have));
		custody_duration_format(roll_leads[i].advised, advised,
				sizeof(advised));
		if (buf != NULL && size > 0)
			snprintf(buf, size, "the lead time of %s is shorter "
				 "than the advised %s for %s: nodes that sync "
				 "late may sign with the old key after the roll",
				 have, advised, roll_leads[i].type);
		warn = 1;
		break;
	}
	return warn;
}
