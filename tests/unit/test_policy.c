/* test_policy.c — key, curve, domain, name and roll rules (custody/policy.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <openssl/x509v3.h>

#include <custody/policy.h>
#include "unit/testcerts.h"

static void
assert_error(int r, const custody_err *err, int code, const char *msg)
{
	cr_assert_eq(r, code, "code %d, expected %d (%s)", r, code, err->msg);
	cr_assert_eq(err->code, code);
	cr_assert_str_eq(err->msg, msg);
}

static int
key_check(const custody_policy *p, const char *spec, custody_err *err)
{
	EVP_PKEY *key = testcert_key(spec);
	int r = custody_policy_check_key(p, key, err);

	EVP_PKEY_free(key);
	return r;
}

/* ---------------------------------------------------------------- settings */

Test(policy_set, defaults)
{
	custody_policy p;

	memset(&p, 0x5a, sizeof(p));
	custody_policy_defaults(&p);
	cr_assert_eq(p.min_rsa_bits, 2048);
	cr_assert_eq(p.ec_curves, CUSTODY_CURVE_P256 | CUSTODY_CURVE_P384 |
				  CUSTODY_CURVE_P521);
	cr_assert_str_eq(p.sip_domain, "");
	cr_assert_eq(p.overlap, 86400);
	cr_assert_eq(p.warn_days, 30);
}

Test(policy_set, overlap_durations)
{
	static const struct {
		const char *text;
		int64_t seconds;
	} ok[] = {
		{"24h", 86400}, {"90m", 5400}, {"3600s", 3600}, {"2d", 172800},
		{"7200", 7200}, {"0", 0}, {"1H", 3600}, {"36500d", 3153600000},
	};
	static const char *const bad[] = {
		"", "h", "5x", "-1h", "1.5h", "24 h", " 24h", "24hh", "1h30m",
		"99999999999999999999", "36501d",
	};
	custody_policy p;
	custody_err err;
	char want[256];

	custody_policy_defaults(&p);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_assert_eq(custody_policy_set(&p, "overlap", ok[i].text, &err),
			     CUSTODY_OK, "%s: %s", ok[i].text, err.msg);
		cr_assert_eq(p.overlap, ok[i].seconds, "%s", ok[i].text);
	}
	p.overlap = 42;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(want, sizeof(want),
			 "invalid policy overlap '%s': give a duration such as "
			 "24h, 90m, 3600s, 2d or plain seconds", bad[i]);
		assert_error(custody_policy_set(&p, "overlap", bad[i], &err),
			     &err, CUSTODY_EUSAGE, want);
		cr_assert_eq(p.overlap, 42, "unchanged after '%s'", bad[i]);
	}
}

Test(policy_set, ec_curves_lists)
{
	custody_policy p;
	custody_err err;

	custody_policy_defaults(&p);
	cr_assert_eq(custody_policy_set(&p, "ec-curves", "p256,p384", &err),
		     CUSTODY_OK);
	cr_assert_eq(p.ec_curves, CUSTODY_CURVE_P256 | CUSTODY_CURVE_P384);
	cr_assert_eq(custody_policy_set(&p, "ec-curves", " P521 , p-256", &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(p.ec_curves, CUSTODY_CURVE_P521 | CUSTODY_CURVE_P256);
	cr_assert_eq(custody_policy_set(&p, "ec-curves", "secp384r1", &err),
		     CUSTODY_OK);
	cr_assert_eq(p.ec_curves, CUSTODY_CURVE_P384);
	cr_assert_eq(custody_policy_set(&p, "ec-curves", "none", &err),
		     CUSTODY_OK);
	cr_assert_eq(p.ec_curves, 0u);

	p.ec_curves = CUSTODY_CURVE_P256;
	assert_error(custody_policy_set(&p, "ec-curves", "p256,brainpool", &err),
		     &err, CUSTODY_EUSAGE,
		     "invalid policy ec-curves 'p256,brainpool': unknown curve "
		     "'brainpool' (known: p256, p384, p521, or none)");
	assert_error(custody_policy_set(&p, "ec-curves", "", &err), &err,
		     CUSTODY_EUSAGE,
		     "invalid policy ec-curves '': unknown curve '' (known: "
		     "p256, p384, p521, or none)");
	assert_error(custody_policy_set(&p, "ec-curves", "p256,", &err), &err,
		     CUSTODY_EUSAGE,
		     "invalid policy ec-curves 'p256,': unknown curve '' (known: "
		     "p256, p384, p521, or none)");
	assert_error(custody_policy_set(&p, "ec-curves", "p256 p384", &err),
		     &err, CUSTODY_EUSAGE,
		     "invalid policy ec-curves 'p256 p384': separate curve names "
		     "with ','");
	cr_assert_eq(p.ec_curves, CUSTODY_CURVE_P256);
}

Test(policy_set, other_keys)
{
	custody_policy p;
	custody_err err;

	custody_policy_defaults(&p);
	cr_assert_eq(custody_policy_set(&p, "min-rsa-bits", "3072", &err),
		     CUSTODY_OK);
	cr_assert_eq(p.min_rsa_bits, 3072);
	assert_error(custody_policy_set(&p, "min-rsa-bits", "lots", &err), &err,
		     CUSTODY_EUSAGE,
		     "invalid policy min-rsa-bits 'lots': give a number of bits "
		     "from 1024 to 16384");
	assert_error(custody_policy_set(&p, "min-rsa-bits", "512", &err), &err,
		     CUSTODY_EUSAGE,
		     "invalid policy min-rsa-bits '512': give a number of bits "
		     "from 1024 to 16384");
	cr_assert_eq(p.min_rsa_bits, 3072);

	cr_assert_eq(custody_policy_set(&p, "warn-days", "45", &err), CUSTODY_OK);
	cr_assert_eq(p.warn_days, 45);
	assert_error(custody_policy_set(&p, "warn-days", "45d", &err), &err,
		     CUSTODY_EUSAGE,
		     "invalid policy warn-days '45d': give a number of days from "
		     "0 to 3650");

	cr_assert_eq(custody_policy_set(&p, "sip-domain", "Example.COM", &err),
		     CUSTODY_OK);
	cr_assert_str_eq(p.sip_domain, "example.com");
	assert_error(custody_policy_set(&p, "sip-domain", "exa mple.com", &err),
		     &err, CUSTODY_EUSAGE,
		     "invalid policy sip-domain 'exa mple.com': not a DNS domain "
		     "name");
	assert_error(custody_policy_set(&p, "sip-domain", ".example.com", &err),
		     &err, CUSTODY_EUSAGE,
		     "invalid policy sip-domain '.example.com': not a DNS domain "
		     "name");
	cr_assert_str_eq(p.sip_domain, "example.com");
	cr_assert_eq(custody_policy_set(&p, "sip-domain", "", &err), CUSTODY_OK);
	cr_assert_str_eq(p.sip_domain, "");

	assert_error(custody_policy_set(&p, "max-rsa-bits", "4096", &err), &err,
		     CUSTODY_EUSAGE,
		     "unknown policy key 'max-rsa-bits': the keys are "
		     "min-rsa-bits, ec-curves, sip-domain, overlap, warn-days, "
		     "successor-warn-days and successor-critical-days");
}

/* ---------------------------------------------------------------- keys */

Test(policy_key, rsa_sizes)
{
	custody_policy p;
	custody_err err;

	custody_policy_defaults(&p);
	assert_error(key_check(&p, "rsa:1024", &err), &err, CUSTODY_EFAIL,
		     "RSA key of 1024 bits is below the policy minimum of 2048 "
		     "bits");
	cr_assert_eq(key_check(&p, "rsa:2048", &err), CUSTODY_OK);
	p.min_rsa_bits = 3072;
	assert_error(key_check(&p, "rsa:2048", &err), &err, CUSTODY_EFAIL,
		     "RSA key of 2048 bits is below the policy minimum of 3072 "
		     "bits");
	cr_assert_eq(key_check(&p, "rsa:3072", &err), CUSTODY_OK);
}

Test(policy_key, ec_curves)
{
	custody_policy p;
	custody_err err;

	custody_policy_defaults(&p);
	cr_assert_eq(key_check(&p, "ec:p256", &err), CUSTODY_OK);
	cr_assert_eq(key_check(&p, "ec:p384", &err), CUSTODY_OK);
	cr_assert_eq(key_check(&p, "ec:p521", &err), CUSTODY_OK);
	assert_error(key_check(&p, "ec:secp256k1", &err), &err, CUSTODY_EFAIL,
		     "EC curve secp256k1 is not allowed by policy (allowed: "
		     "p256, p384, p521)");
	cr_assert_eq(custody_policy_set(&p, "ec-curves", "p256", &err),
		     CUSTODY_OK);
	assert_error(key_check(&p, "ec:p384", &err), &err, CUSTODY_EFAIL,
		     "EC curve p384 is not allowed by policy (allowed: p256)");
	cr_assert_eq(key_check(&p, "ec:p256", &err), CUSTODY_OK);
	p.ec_curves = 0;
	assert_error(key_check(&p, "ec:p256", &err), &err, CUSTODY_EFAIL,
		     "EC curve p256 is not allowed by policy (allowed: none)");
}

Test(policy_key, dsa_and_others_are_refused)
{
	custody_policy p;
	custody_err err;

	custody_policy_defaults(&p);
	assert_error(key_check(&p, "dsa:2048", &err), &err, CUSTODY_EFAIL,
		     "DSA keys are not allowed");
	assert_error(key_check(&p, "ed25519", &err), &err, CUSTODY_EFAIL,
		     "ED25519 keys are not allowed (use RSA or EC keys)");
	assert_error(custody_policy_check_key(&p, NULL, &err), &err,
		     CUSTODY_EFAIL, "cannot check the key: none given");
}

/* ---------------------------------------------------------------- certs */

static int
cert_check(const custody_policy *p, const char *spec, const char *cn,
	   const char *const *dns, custody_err *err)
{
	EVP_PKEY *key = testcert_key(spec);
	X509 *x = testcert_self_signed(key, cn, dns, 0, 30);
	int r = custody_policy_check_cert(p, x, err);

	X509_free(x);
	EVP_PKEY_free(key);
	return r;
}

Test(policy_cert, key_rules_apply_to_the_certificate_key)
{
	custody_policy p;
	custody_err err;

	custody_policy_defaults(&p);
	assert_error(cert_check(&p, "rsa:1024", "a.example", NULL, &err), &err,
		     CUSTODY_EFAIL,
		     "RSA key of 1024 bits is below the policy minimum of 2048 "
		     "bits");
	cr_assert_eq(cert_check(&p, "ec:p256", "a.example", NULL, &err),
		     CUSTODY_OK);
}

Test(policy_cert, sip_domain_by_cn_or_dns_name)
{
	static const char *const pool[] = {"pool.Example.COM", NULL};
	static const char *const lookalike[] = {"example.com.evil.test",
						"badexample.com", NULL};
	custody_policy p;
	custody_err err;

	custody_policy_defaults(&p);
	/* Unset: anything goes. */
	cr_assert_eq(cert_check(&p, "ec:p256", "other.test", NULL, &err),
		     CUSTODY_OK);
	cr_assert_eq(custody_policy_set(&p, "sip-domain", "example.com", &err),
		     CUSTODY_OK);
	cr_assert_eq(cert_check(&p, "ec:p256", "sip.example.com", NULL, &err),
		     CUSTODY_OK);
	cr_assert_eq(cert_check(&p, "ec:p256", "EXAMPLE.com", NULL, &err),
		     CUSTODY_OK);
	cr_assert_eq(cert_check(&p, "ec:p256", "other.test", pool, &err),
		     CUSTODY_OK, "%s", err.msg);
	assert_error(cert_check(&p, "ec:p256", "badexample.com", lookalike,
				&err), &err, CUSTODY_EFAIL,
		     "certificate CN=badexample.com,O=custody tests is not for "
		     "SIP domain example.com: neither its subject CN nor a DNS "
		     "name is example.com or a name under it");
	assert_error(cert_check(&p, "ec:p256", ".example.com", NULL, &err),
		     &err, CUSTODY_EFAIL,
		     "certificate CN=.example.com,O=custody tests is not for SIP "
		     "domain example.com: neither its subject CN nor a DNS name "
		     "is example.com or a name under it");
}

Test(policy_cert, a_name_with_a_nul_inside_is_never_in_the_domain)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = testcert_self_signed(key, "other.test", NULL, 0, 30);
	GENERAL_NAMES *names = GENERAL_NAMES_new();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
	static const char evil[] = "a.example.com\0.evil.test";
	custody_policy p;
	custody_err err;

	/* "a.example.com\0.evil.test": a C string compare would stop at
	 * the NUL; the whole name is not under example.com. */
	cr_assert_eq(ASN1_STRING_set(ia5, evil, sizeof(evil) - 1), 1);
	GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
	sk_GENERAL_NAME_push(names, gn);
	cr_assert_eq(X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, 0), 1);
	cr_assert_gt(X509_sign(x, key, EVP_sha256()), 0);
	custody_policy_defaults(&p);
	cr_assert_eq(custody_policy_set(&p, "sip-domain", "evil.test", &err),
		     CUSTODY_OK);
	cr_assert_eq(custody_policy_check_cert(&p, x, &err), CUSTODY_EFAIL);
	cr_assert_eq(custody_policy_set(&p, "sip-domain", "example.com", &err),
		     CUSTODY_OK);
	cr_assert_eq(custody_policy_check_cert(&p, x, &err), CUSTODY_EFAIL);
	GENERAL_NAMES_free(names);
	X509_free(x);
	EVP_PKEY_free(key);
}

Test(policy_valid, expired_and_not_yet_valid)
{
	custody_cert_record rec;
	custody_err err;
	char subject[] = "CN=x";

	memset(&rec, 0, sizeof(rec));
	rec.subject = subject;
	rec.not_before = INT64_C(1546300800);	/* 2019-01-01T00:00:00Z */
	rec.not_after = INT64_C(1577836800);	/* 2020-01-01T00:00:00Z */
	assert_error(custody_policy_check_valid_at(&rec, rec.not_after + 1,
						   &err), &err, CUSTODY_EFAIL,
		     "certificate CN=x expired on 2020-01-01T00:00:00Z");
	cr_assert_eq(custody_policy_check_valid_at(&rec, rec.not_after, &err),
		     CUSTODY_OK);
	cr_assert_eq(custody_policy_check_valid_at(&rec, rec.not_before, &err),
		     CUSTODY_OK);
	assert_error(custody_policy_check_valid_at(&rec, rec.not_before - 1,
						   &err), &err, CUSTODY_EFAIL,
		     "certificate CN=x is not valid until 2019-01-01T00:00:00Z");
}

/* ---------------------------------------------------------------- names */

Test(policy_names, known_types_in_any_case)
{
	const char *const *known = custody_known_types();
	char out[CUSTODY_NAME_MAX + 1], lower[64], upper[64];
	int is_known = -1;
	size_t n;

	for (n = 0; known[n] != NULL; n++) {
		size_t i;

		for (i = 0; known[n][i] != '\0'; i++) {
			lower[i] = (char)(known[n][i] | 0x20);
			upper[i] = (char)(known[n][i] & ~0x20);
		}
		lower[i] = upper[i] = '\0';
		cr_assert_eq(custody_type_canonical(lower, out, &is_known, NULL),
			     CUSTODY_OK);
		cr_assert_str_eq(out, known[n]);
		cr_assert_eq(is_known, 1);
		is_known = -1;
		cr_assert_eq(custody_type_canonical(upper, out, &is_known, NULL),
			     CUSTODY_OK);
		cr_assert_str_eq(out, known[n]);
		cr_assert_eq(is_known, 1);
	}
	cr_assert_eq(n, 10);
	cr_assert_str_eq(known[0], "Default");
	cr_assert_str_eq(known[3], "OAuthTokenIssuer");
	cr_assert_str_eq(known[9], "DataEdgeExternal");
	cr_assert_eq(custody_type_canonical("oauthtokenissuer", out, NULL, NULL),
		     CUSTODY_OK);
	cr_assert_str_eq(out, "OAuthTokenIssuer");
}

Test(policy_names, custom_types)
{
	char out[CUSTODY_NAME_MAX + 1], name[80], want[512];
	custody_err err;
	int is_known = -1;
	static const char *const bad[] = {
		"1abc", "a b", "", "-x", "a.b", "ab$", "_x",
	};

	cr_assert_eq(custody_type_canonical("MyType_1-x", out, &is_known, &err),
		     CUSTODY_OK);
	cr_assert_str_eq(out, "MyType_1-x");
	cr_assert_eq(is_known, 0);
	memset(name, 'a', 64);
	name[64] = '\0';
	cr_assert_eq(custody_type_canonical(name, out, NULL, &err), CUSTODY_OK);
	cr_assert_str_eq(out, name);
	name[64] = 'a';
	name[65] = '\0';
	snprintf(want, sizeof(want),
		 "invalid type name '%s': a type is a known type or a custom "
		 "name of at most 64 letters, digits, '_' and '-' that starts "
		 "with a letter", name);
	assert_error(custody_type_canonical(name, out, NULL, &err), &err,
		     CUSTODY_EUSAGE, want);
	cr_assert_str_eq(out, "");
	cr_assert_eq(strncmp(err.hint, "known types: Default, ", 22), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(want, sizeof(want),
			 "invalid type name '%s': a type is a known type or a "
			 "custom name of at most 64 letters, digits, '_' and "
			 "'-' that starts with a letter", bad[i]);
		assert_error(custody_type_canonical(bad[i], out, NULL, &err),
			     &err, CUSTODY_EUSAGE, want);
	}
	assert_error(custody_type_canonical("a\033[2Jb", out, NULL, &err), &err,
		     CUSTODY_EUSAGE,
		     "invalid type name 'a?[2Jb': a type is a known type or a "
		     "custom name of at most 64 letters, digits, '_' and '-' "
		     "that starts with a letter");
	assert_error(custody_type_canonical(NULL, out, NULL, &err), &err,
		     CUSTODY_EUSAGE, "invalid type name: none given");
}

Test(policy_names, identities)
{
	char out[CUSTODY_NAME_MAX + 1], name[80], want[256];
	custody_err err;
	static const char *const bad[] = {"", "-fe01", ".fe01", "fe 01", "fe/01"};

	cr_assert_eq(custody_identity_canonical("GLOBAL", out, &err), CUSTODY_OK);
	cr_assert_str_eq(out, "global");
	cr_assert_eq(custody_identity_canonical("Global", out, &err), CUSTODY_OK);
	cr_assert_str_eq(out, "global");
	cr_assert_eq(custody_identity_canonical("fe01.Example.com", out, &err),
		     CUSTODY_OK);
	cr_assert_str_eq(out, "fe01.Example.com");
	cr_assert_eq(custody_identity_canonical("1st_node-a", out, &err),
		     CUSTODY_OK);
	cr_assert_str_eq(out, "1st_node-a");
	memset(name, 'n', 64);
	name[64] = '\0';
	cr_assert_eq(custody_identity_canonical(name, out, &err), CUSTODY_OK);
	cr_assert_str_eq(out, name);
	name[64] = 'n';
	name[65] = '\0';
	cr_assert_eq(custody_identity_canonical(name, out, &err), CUSTODY_EUSAGE);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(want, sizeof(want),
			 "invalid identity '%s': an identity is 'global' or a "
			 "node name of at most 64 letters, digits, '.', '_' and "
			 "'-' that starts with a letter or digit", bad[i]);
		assert_error(custody_identity_canonical(bad[i], out, &err),
			     &err, CUSTODY_EUSAGE, want);
		cr_assert_str_eq(out, "");
	}
}

Test(policy_names, oauth_only_at_global)
{
	custody_err err;

	cr_assert_eq(custody_policy_check_identity("OAuthTokenIssuer", "global",
						   &err), CUSTODY_OK);
	assert_error(custody_policy_check_identity("OAuthTokenIssuer", "fe01",
						   &err), &err, CUSTODY_EFAIL,
		     "OAuthTokenIssuer can only be assigned at identity global, "
		     "not fe01");
	assert_error(custody_policy_check_identity("oauthtokenissuer", "fe02",
						   &err), &err, CUSTODY_EFAIL,
		     "OAuthTokenIssuer can only be assigned at identity global, "
		     "not fe02");
	cr_assert_eq(custody_policy_check_identity("Default", "fe01", &err),
		     CUSTODY_OK);
	cr_assert_eq(custody_policy_check_identity("Default", "global", &err),
		     CUSTODY_OK);
}

/* ---------------------------------------------------------------- rolls */

Test(policy_roll, oauth_warns_below_24h)
{
	char buf[256];

	memset(buf, 0, sizeof(buf));
	cr_assert_eq(custody_policy_roll_warning("OAuthTokenIssuer", 2 * 3600,
						 buf, sizeof(buf)), 1);
	cr_assert_str_eq(buf, "the lead time of 2h is shorter than the advised "
			 "24h for OAuthTokenIssuer: nodes that sync late may "
			 "sign with the old key after the roll");
	cr_assert_eq(custody_policy_roll_warning("oauthtokenissuer",
						 23 * 3600 + 59 * 60, buf,
						 sizeof(buf)), 1);
	cr_assert_str_eq(buf, "the lead time of 23h59m is shorter than the "
			 "advised 24h for OAuthTokenIssuer: nodes that sync "
			 "late may sign with the old key after the roll");
	cr_assert_eq(custody_policy_roll_warning("OAuthTokenIssuer", 86399, buf,
						 sizeof(buf)), 1);
	cr_assert_str_eq(buf, "the lead time of 23h59m59s is shorter than the "
			 "advised 24h for OAuthTokenIssuer: nodes that sync "
			 "late may sign with the old key after the roll");
	strcpy(buf, "untouched");
	cr_assert_eq(custody_policy_roll_warning("OAuthTokenIssuer", 86400, buf,
						 sizeof(buf)), 0);
	cr_assert_str_eq(buf, "untouched");
	cr_assert_eq(custody_policy_roll_warning("OAuthTokenIssuer", 7 * 86400,
						 buf, sizeof(buf)), 0);
}

Test(policy_roll, audio_video_warns_below_8h_and_others_never)
{
	char buf[256] = "";

	cr_assert_eq(custody_policy_roll_warning("AudioVideoAuthentication",
						 8 * 3600 - 1, buf, sizeof(buf)),
		     1);
	cr_assert_str_eq(buf, "the lead time of 7h59m59s is shorter than the "
			 "advised 8h for AudioVideoAuthentication: nodes that "
			 "sync late may sign with the old key after the roll");
	cr_assert_eq(custody_policy_roll_warning("AudioVideoAuthentication",
						 8 * 3600, buf, sizeof(buf)), 0);
	cr_assert_eq(custody_policy_roll_warning("AudioVideoAuthentication", 90,
						 buf, sizeof(buf)), 1);
	cr_assert_eq(strncmp(buf, "the lead time of 1m30s is shorter", 33), 0,
		     "%s", buf);
	cr_assert_eq(custody_policy_roll_warning("Default", 1, buf, sizeof(buf)),
		     0);
	cr_assert_eq(custody_policy_roll_warning("MyCustom", 0, buf, sizeof(buf)),
		     0);
}

Test(policy_roll, small_or_missing_buffer)
{
	char buf[12];

	cr_assert_eq(custody_policy_roll_warning("OAuthTokenIssuer", 0, NULL, 0),
		     1);
	cr_assert_eq(custody_policy_roll_warning("OAuthTokenIssuer", 0, buf,
						 sizeof(buf)), 1);
	cr_assert_str_eq(buf, "the lead ti");
}

/* ------------------------------------------------------------ types a command may name */

static const char *const declared[] = {"PartnerSigning", "Frobnicator"};

static void
resolve_ok(const char *in, const char *want)
{
	custody_err err = {0};
	char out[CUSTODY_NAME_MAX + 1];

	cr_assert_eq(custody_type_resolve(in, declared, 2, out, &err), CUSTODY_OK,
		     "'%s': %s", in, err.msg);
	cr_assert_str_eq(out, want);
}

static void
resolve_bad(const char *in, const char *msg)
{
	custody_err err = {0};
	char out[CUSTODY_NAME_MAX + 1];

	cr_assert_eq(custody_type_resolve(in, declared, 2, out, &err), CUSTODY_EUSAGE,
		     "'%s' accepted", in);
	cr_assert_str_eq(err.msg, msg);
	cr_assert_str_eq(out, "");
}

Test(types, known_and_declared_types_resolve_to_their_spelling)
{
	resolve_ok("oauthtokenissuer", "OAuthTokenIssuer");
	resolve_ok("Default", "Default");
	resolve_ok("partnersigning", "PartnerSigning");
	resolve_ok("FROBNICATOR", "Frobnicator");
}

Test(types, a_typo_is_refused_with_the_type_it_meant)
{
	custody_err err = {0};
	char out[CUSTODY_NAME_MAX + 1];

	resolve_bad("OAuthTokenIssuers",
		    "unknown type 'OAuthTokenIssuers': did you mean OAuthTokenIssuer?");
	resolve_bad("PartnerSignin",
		    "unknown type 'PartnerSignin': did you mean PartnerSigning?");
	resolve_bad("Nope", "unknown type 'Nope': neither a known type nor a custom "
		    "type custody.conf declares");
	cr_assert_eq(custody_type_resolve("Nope", NULL, 0, out, &err), CUSTODY_EUSAGE);
	cr_assert_str_eq(err.hint, "declare a custom type in custody.conf: "
			 "[types] custom = Nope");
}

Test(types, a_name_that_is_no_type_name_is_refused_as_before)
{
	custody_err err = {0};
	char out[CUSTODY_NAME_MAX + 1];

	cr_assert_eq(custody_type_resolve("9lives", declared, 2, out, &err),
		     CUSTODY_EUSAGE);
	cr_assert(strstr(err.msg, "invalid type name '9lives'") == err.msg, "%s", err.msg);
	cr_assert_eq(custody_type_resolve(NULL, declared, 2, out, &err), CUSTODY_EUSAGE);
}
