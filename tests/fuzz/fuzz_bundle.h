/*
 * fuzz_bundle.h — the import-file parser (custody_bundle_parse: PKCS#12,
 * PEM, DER) and what import does next with what it returns (certificate
 * facts, policy checks).  fuzz_bundle.c calls it without a password,
 * fuzz_bundle_password.c with "fuzz", the password of the encrypted seeds.
 */
#ifndef CUSTODY_FUZZ_BUNDLE_H
#define CUSTODY_FUZZ_BUNDLE_H

#include <openssl/err.h>
#include <openssl/x509.h>

#include <custody/cert.h>
#include <custody/policy.h>
#include <custody/records.h>

#include "fuzz_common.h"

/* What import reads from a certificate it accepted. */
static void
fuzz_bundle_facts(X509 *x)
{
	custody_cert_record rec;
	custody_err err;
	custody_policy policy;

	custody_err_clear(&err);
	memset(&rec, 0, sizeof(rec));
	if (custody_cert_record_from_x509(x, &rec, &err) == CUSTODY_OK) {
		FUZZ_EXPECT(strlen(rec.thumbprint) == CUSTODY_THUMBPRINT_HEX);
		FUZZ_EXPECT(strlen(rec.sha256) == CUSTODY_SHA256_HEX);
		custody_cert_record_clear(&rec);
	} else {
		FUZZ_EXPECT(fuzz_err_is(&err, CUSTODY_EFAIL, CUSTODY_EFAIL));
	}
	custody_policy_defaults(&policy);
	snprintf(policy.sip_domain, sizeof(policy.sip_domain), "%s",
		 "example.com");
	custody_err_clear(&err);
	if (custody_policy_check_cert(&policy, x, &err) != CUSTODY_OK)
		FUZZ_EXPECT(err.msg[0] != '\0');
	ERR_clear_error();
}

static void
fuzz_bundle_one(const uint8_t *data, size_t size, const char *password)
{
	custody_bundle b;
	custody_err err;
	int r, i;

	custody_err_clear(&err);
	r = custody_bundle_parse(data, size, password, &b, &err);
	fuzz_note("custody_bundle_parse", r, &err);
	if (r != CUSTODY_OK) {
		FUZZ_EXPECT(r == err.code);
		FUZZ_EXPECT(fuzz_err_is(&err, CUSTODY_EFAIL,
					CUSTODY_EPASSWORD));
		/* Nothing is handed back on failure. */
		FUZZ_EXPECT(b.key == NULL && b.cert == NULL &&
			    b.chain == NULL);
		return;
	}
	FUZZ_EXPECT(b.cert != NULL && b.chain != NULL);
	/* With a key, the certificate is the one that matches it. */
	if (b.key != NULL)
		FUZZ_EXPECT(EVP_PKEY_eq(X509_get0_pubkey(b.cert), b.key) == 1);
	fuzz_bundle_facts(b.cert);
	for (i = 0; i < sk_X509_num(b.chain); i++) {
		FUZZ_EXPECT(X509_cmp(sk_X509_value(b.chain, i), b.cert) != 0);
		fuzz_bundle_facts(sk_X509_value(b.chain, i));
	}
	custody_bundle_free(&b);
	ERR_clear_error();
}

#endif
