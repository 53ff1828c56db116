/*
 * test_request_parse.c — what a user writes for `custody request`, read
 * without a token: distinguished names (custody_dn_parse and its text
 * form), subject alternative names (custody_san_parse), the policy's key
 * rules (custody_request_check_key_policy).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <custody/policy.h>
#include <custody/request.h>
#include <custody/token.h>

/* ---------------------------------------------------------- helpers */

static X509_NAME *
dn_ok(const char *text)
{
	custody_err err = {0};
	X509_NAME *name = NULL;

	cr_assert_eq(custody_dn_parse(text, &name, &err), CUSTODY_OK,
		     "'%s' was refused: %s", text, err.msg);
	cr_assert_not_null(name);
	return name;
}

/* The name's RFC 4514 text. */
static const char *
dn_text(const char *text)
{
	static char buf[1024];
	X509_NAME *name = dn_ok(text);

	custody_dn_text(name, buf, sizeof(buf));
	X509_NAME_free(name);
	return buf;
}

/* The value (UTF-8) of entry i of the name, in X.501 order. */
static const char *
entry_value(X509_NAME *name, int i, int *nid, int *set)
{
	static char buf[600];
	X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
	unsigned char *utf8 = NULL;
	int len;

	cr_assert_not_null(e, "no entry %d", i);
	*nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
	*set = X509_NAME_ENTRY_set(e);
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
	cr_assert_geq(len, 0);
	memcpy(buf, utf8, (size_t)len);
	buf[len] = '\0';
	OPENSSL_free(utf8);
	return buf;
}

/* Entry i is nid = value in RDN number set. */
static void
assert_entry(X509_NAME *name, int i, int want_nid, const char *want, int want_set)
{
	int nid, set;
	const char *v = entry_value(name, i, &nid, &set);

	cr_assert_eq(nid, want_nid, "entry %d: %s, not %s", i, OBJ_nid2sn(nid),
		     OBJ_nid2sn(want_nid));
	cr_assert_str_eq(v, want, "entry %d", i);
	cr_assert_eq(set, want_set, "entry %d is in RDN %d, not %d", i, set, want_set);
}

/* text was refused as bad input (r, err) with a message that starts with
 * msg, and nothing came back (out). */
static void
assert_refused(const char *text, int r, const custody_err *err, const void *out,
	       const char *msg)
{
	cr_assert_eq(r, CUSTODY_EUSAGE, "'%s' was not refused as bad input", text);
	cr_assert_null(out, "'%s': something came back with the error", text);
	cr_assert_eq(err->code, CUSTODY_EUSAGE);
	cr_assert_eq(strncmp(err->msg, msg, strlen(msg)), 0, "'%s': message '%s', not '%s'",
		     text, err->msg, msg);
}

static void
dn_bad(const char *text, const char *msg)
{
	custody_err err = {0};
	X509_NAME *name = (X509_NAME *)1;
	int r = custody_dn_parse(text, &name, &err);

	assert_refused(text, r, &err, name, msg);
}

/* The text form reads back into an equal name. */
static void
round_trip(const char *text)
{
	X509_NAME *a = dn_ok(text), *b;
	char buf[1024];

	custody_dn_text(a, buf, sizeof(buf));
	b = dn_ok(buf);
	cr_assert_eq(X509_NAME_cmp(a, b), 0, "'%s' printed as '%s' reads back as another name",
		     text, buf);
	X509_NAME_free(a);
	X509_NAME_free(b);
}

/* --------------------------------------------------------------- DNs */

Test(dn, rfc4514_order_most_specific_first)
{
	X509_NAME *name = dn_ok("CN=sts.example.com,O=Example,C=US");

	cr_assert_eq(X509_NAME_entry_count(name), 3);
	assert_entry(name, 0, NID_countryName, "US", 0);
	assert_entry(name, 1, NID_organizationName, "Example", 1);
	assert_entry(name, 2, NID_commonName, "sts.example.com", 2);
	X509_NAME_free(name);
	cr_assert_str_eq(dn_text("CN=sts.example.com,O=Example,C=US"),
			 "CN=sts.example.com,O=Example,C=US");
}

Test(dn, slash_form_most_general_first)
{
	cr_assert_str_eq(dn_text("/C=US/O=Example/CN=sts.example.com"),
			 "CN=sts.example.com,O=Example,C=US");
	cr_assert_str_eq(dn_text("/O=custody test/CN=repl.custody.test"),
			 "CN=repl.custody.test,O=custody test");
}

Test(dn, escapes)
{
	X509_NAME *name = dn_ok("CN=a\\,b\\+c\\\\d\\\"e\\;f\\<g\\>h\\=i,O=x");

	assert_entry(name, 1, NID_commonName, "a,b+c\\d\"e;f<g>h=i", 1);
	X509_NAME_free(name);
	/* A leading '#' or space and a trailing space, escaped, stay. */
	name = dn_ok("CN=\\#1,O=\\ x\\ ");
	assert_entry(name, 0, NID_organizationName, " x ", 0);
	assert_entry(name, 1, NID_commonName, "#1", 1);
	X509_NAME_free(name);
	round_trip("CN=a\\,b\\+c\\\\d\\\"e\\;f\\<g\\>h\\=i,O=x");
	round_trip("CN=\\#1,O=\\ x\\ ");
}

Test(dn, hex_escapes_are_bytes)
{
	X509_NAME *name = dn_ok("CN=Zo\\C3\\AB \\E2\\98\\83\\2c x");

	assert_entry(name, 0, NID_commonName, "Zo\xc3\xab \xe2\x98\x83, x", 0);
	X509_NAME_free(name);
	/* Control characters come in escaped and are printed escaped. */
	name = dn_ok("CN=a\\0Ab");
	assert_entry(name, 0, NID_commonName, "a\nb", 0);
	X509_NAME_free(name);
	round_trip("CN=a\\0Ab");
}

Test(dn, utf8)
{
	char cn[64];
	X509_NAME *name = dn_ok("CN=Zo\xc3\xab \xe2\x98\x83,O=Contoso \xf0\x9f\x94\x91");

	custody_dn_common_name(name, cn, sizeof(cn));
	cr_assert_str_eq(cn, "Zo\xc3\xab \xe2\x98\x83");
	X509_NAME_free(name);
	cr_assert_str_eq(dn_text("CN=Zo\xc3\xab \xe2\x98\x83,O=Contoso \xf0\x9f\x94\x91"),
			 "CN=Zo\xc3\xab \xe2\x98\x83,O=Contoso \xf0\x9f\x94\x91");
}

Test(dn, spaces_around_types_and_values_dropped)
{
	X509_NAME *name = dn_ok("  CN =  a b  , O= x ");

	assert_entry(name, 0, NID_organizationName, "x", 0);
	assert_entry(name, 1, NID_commonName, "a b", 1);
	X509_NAME_free(name);
}

Test(dn, multi_valued_rdns)
{
	X509_NAME *name = dn_ok("CN=a+UID=7,O=x");

	cr_assert_eq(X509_NAME_entry_count(name), 3);
	assert_entry(name, 0, NID_organizationName, "x", 0);
	assert_entry(name, 1, NID_commonName, "a", 1);
	assert_entry(name, 2, NID_userId, "7", 1);
	X509_NAME_free(name);
	/* The same in the /-form, and a '+' in a value escaped. */
	name = dn_ok("/O=x/CN=a\\+b+UID=7");
	assert_entry(name, 0, NID_organizationName, "x", 0);
	assert_entry(name, 1, NID_commonName, "a+b", 1);
	assert_entry(name, 2, NID_userId, "7", 1);
	X509_NAME_free(name);
	round_trip("CN=a+UID=7,O=x+OU=y+L=z,C=NL");
}

Test(dn, hex_values)
{
	X509_NAME *name = dn_ok("CN=#0c03616263,O=#130141,OU=#1e0400e90041");

	assert_entry(name, 0, NID_organizationalUnitName, "\xc3\xa9" "A", 0);
	assert_entry(name, 1, NID_organizationName, "A", 1);
	assert_entry(name, 2, NID_commonName, "abc", 2);
	X509_NAME_free(name);
	cr_assert_str_eq(dn_text("CN=#0C03616263  "), "CN=abc");
	/* A '#' alone is the character (OpenSSL prints the value "#" so). */
	name = dn_ok("O=\\#,CN=# ");
	assert_entry(name, 0, NID_commonName, "#", 0);
	assert_entry(name, 1, NID_organizationName, "#", 1);
	X509_NAME_free(name);
	round_trip("CN=#,O=\\#x");
}

Test(dn, dotted_oid_types)
{
	cr_assert_str_eq(dn_text("2.5.4.3=x,2.5.4.10=y"), "CN=x,O=y");
}

Test(dn, attributes_up_to_the_limit)
{
	char text[CUSTODY_DN_MAX_ATTRIBUTES * 8 + 16] = "";
	X509_NAME *name;
	int i;

	for (i = 0; i < CUSTODY_DN_MAX_ATTRIBUTES; i++)
		strcat(text, i == 0 ? "OU=a" : ",OU=a");
	name = dn_ok(text);
	cr_assert_eq(X509_NAME_entry_count(name), CUSTODY_DN_MAX_ATTRIBUTES);
	X509_NAME_free(name);
	strcat(text, "+CN=b");
	dn_bad(text, "more than 32 attributes");
}

Test(dn, bad_input_named)
{
	char big[700];

	dn_bad("CN", "'CN' is not TYPE=VALUE");
	dn_bad("CN=a,,O=b", "'' is not TYPE=VALUE");
	dn_bad("CN=a,", "'' is not TYPE=VALUE");
	dn_bad("CN=a+", "'' is not TYPE=VALUE");
	dn_bad("/CN=a/", "'' is not TYPE=VALUE");
	dn_bad("/", "'' is not TYPE=VALUE");
	dn_bad("CN=", "'CN=' has an empty type or value");
	dn_bad("CN=   ", "'CN=   ' has an empty type or value");
	dn_bad("=x", "'=x' has an empty type or value");
	dn_bad("XX=1,CN=x", "unknown attribute type XX");
	dn_bad("CN=a\\", "a '\\' ends the value of CN");
	dn_bad("CN=x,O=a\\", "a '\\' ends the value of O");
	dn_bad("C=USA", "invalid value for C: ");
	dn_bad("CN=\xff\xfe", "invalid value for CN: ");
	dn_bad("CN=a\\00b", "the value of CN holds a NUL byte");
	dn_bad("CN=#zz", "the value of CN after '#' is not hex digits in pairs");
	dn_bad("CN=#0c0", "the value of CN after '#' is not hex digits in pairs");
	dn_bad("CN=#0c0361", "the value of CN after '#' is not a BER-encoded string");
	dn_bad("CN=#020101", "the value of CN after '#' is not a BER-encoded string");
	dn_bad("CN=#0c00", "'CN=#0c00' has an empty type or value");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "CN=", 3);
	dn_bad(big, "value of CN too long");
	memset(big, 'A', 100);
	big[100] = '=';
	dn_bad(big, "attribute type too long");
}

Test(dn, common_name)
{
	char cn[8];
	X509_NAME *name = dn_ok("O=x");

	custody_dn_common_name(name, cn, sizeof(cn));
	cr_assert_str_eq(cn, "", "a name without CN has no label");
	X509_NAME_free(name);
	name = dn_ok("CN=first,CN=too long for it");
	custody_dn_common_name(name, cn, sizeof(cn));
	cr_assert_str_eq(cn, "", "a CN that does not fit is not cut");
	X509_NAME_free(name);
}

/* -------------------------------------------------------------- SANs */

static GENERAL_NAMES *
san_ok(const char *text)
{
	custody_err err = {0};
	X509_EXTENSION *ext = NULL;
	GENERAL_NAMES *names;

	cr_assert_eq(custody_san_parse(text, &ext, &err), CUSTODY_OK, "'%s' was refused: %s",
		     text, err.msg);
	cr_assert_eq(OBJ_obj2nid(X509_EXTENSION_get_object(ext)), NID_subject_alt_name);
	cr_assert_eq(X509_EXTENSION_get_critical(ext), 0);
	names = X509V3_EXT_d2i(ext);
	cr_assert_not_null(names);
	X509_EXTENSION_free(ext);
	return names;
}

static void
san_bad(const char *text, const char *msg)
{
	custody_err err = {0};
	X509_EXTENSION *ext = (X509_EXTENSION *)1;
	int r = custody_san_parse(text, &ext, &err);

	assert_refused(text, r, &err, ext, msg);
}

Test(san, every_kind_in_order)
{
	static const int want[] = {GEN_DNS, GEN_DNS, GEN_IPADD, GEN_IPADD, GEN_EMAIL, GEN_URI};
	GENERAL_NAMES *names = san_ok("DNS:a.test,DNS:*.a.test,IP:192.0.2.1,IP:2001:db8::1,"
				      "email:a@b.test,URI:https://x.test/p");
	GENERAL_NAME *g;
	int i;

	cr_assert_eq(sk_GENERAL_NAME_num(names), 6);
	for (i = 0; i < 6; i++) {
		g = sk_GENERAL_NAME_value(names, i);
		cr_assert_eq(g->type, want[i], "name %d", i);
	}
	g = sk_GENERAL_NAME_value(names, 2);
	cr_assert_eq(ASN1_STRING_length(g->d.iPAddress), 4);
	g = sk_GENERAL_NAME_value(names, 3);
	cr_assert_eq(ASN1_STRING_length(g->d.iPAddress), 16);
	g = sk_GENERAL_NAME_value(names, 0);
	cr_assert_str_eq((const char *)ASN1_STRING_get0_data(g->d.dNSName), "a.test");
	GENERAL_NAMES_free(names);
}

Test(san, bad_input_named)
{
	san_bad("DNS:a.test,mail:b",
		"'mail:b' is not DNS:NAME, IP:ADDRESS, email:ADDRESS or URI:URI");
	san_bad("", "'' is not DNS:NAME");
	san_bad("DNS:", "'DNS:' is not DNS:NAME");
	san_bad("DNS:a,", "'' is not DNS:NAME");
	san_bad("DNS:a, DNS:b", "' DNS:b' is not DNS:NAME");
	san_bad("DNS:a\tb", "'DNS:a\tb' is not DNS:NAME");
	san_bad("critical,DNS:a", "'critical' is not DNS:NAME");
	san_bad("dns:a", "'dns:a' is not DNS:NAME");
	san_bad("IP:999.1.1.1", "invalid IP:999.1.1.1");
	san_bad("email:copy", "invalid email:copy");
}

/* --------------------------------------------------------- key policy */

Test(policy, key_rules)
{
	custody_policy p;
	custody_keyspec spec;
	custody_err err = {0};

	custody_policy_defaults(&p);
	cr_assert_eq(custody_keyspec_parse("rsa:2048", &spec, &err), CUSTODY_OK);
	cr_assert_eq(custody_request_check_key_policy(&p, &spec, &err), CUSTODY_OK);
	p.min_rsa_bits = 3072;
	cr_assert_eq(custody_request_check_key_policy(&p, &spec, &err), CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "RSA-2048 is refused by the policy: RSA keys need at least "
			 "3072 bits");
	cr_assert_eq(custody_keyspec_parse("ec:p384", &spec, &err), CUSTODY_OK);
	p.ec_curves = CUSTODY_CURVE_P256;
	cr_assert_eq(custody_request_check_key_policy(&p, &spec, &err), CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "EC-P384 is refused by the policy: curve not in "
			 "policy.ec-curves");
	cr_assert_eq(custody_keyspec_parse("ec:p256", &spec, &err), CUSTODY_OK);
	cr_assert_eq(custody_request_check_key_policy(&p, &spec, &err), CUSTODY_OK);
}
