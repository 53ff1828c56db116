/* cert/keyspec.c — the kinds of key pair custody makes, by name
 * ("rsa:2048", "ec:p256"): what request, rollover's policy and the
 * configuration parse before any token is asked (custody/cert.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/objects.h>

#include <custody/cert.h>

static const struct {
	const char *text;
	int type, bits, nid;
	const char *name;
} known_specs[] = {
	{"rsa:2048", EVP_PKEY_RSA, 2048, NID_undef, "RSA-2048"},
	{"rsa:3072", EVP_PKEY_RSA, 3072, NID_undef, "RSA-3072"},
	{"rsa:4096", EVP_PKEY_RSA, 4096, NID_undef, "RSA-4096"},
	{"ec:p256", EVP_PKEY_EC, 256, NID_X9_62_prime256v1, "EC-P256"},
	{"ec:p-256", EVP_PKEY_EC, 256, NID_X9_62_prime256v1, "EC-P256"},
	{"ec:prime256v1", EVP_PKEY_EC, 256, NID_X9_62_prime256v1, "EC-P256"},
	{"ec:p384", EVP_PKEY_EC, 384, NID_secp384r1, "EC-P384"},
	{"ec:p-384", EVP_PKEY_EC, 384, NID_secp384r1, "EC-P384"},
	{"ec:secp384r1", EVP_PKEY_EC, 384, NID_secp384r1, "EC-P384"},
};

int
custody_keyspec_parse(const char *text, custody_keyspec *out,
		      custody_err *err)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	for (i = 0; text != NULL && i < sizeof(known_specs) / sizeof(known_specs[0]);
	     i++) {
		if (strcasecmp(text, known_specs[i].text) == 0) {
			out->type = known_specs[i].type;
			out->bits = known_specs[i].bits;
			out->curve_nid = known_specs[i].nid;
			snprintf(out->name, sizeof(out->name), "%s",
				 known_specs[i].name);
			return CUSTODY_OK;
		}
	}
	return custody_err_set(err, CUSTODY_EUSAGE,
			       "unknown key spec %s: expected rsa:2048, "
			       "rsa:3072, rsa:4096, ec:p256 or ec:p384",
			       text != NULL ? text : "(none)");
}
