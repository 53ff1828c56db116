/*
 * custody/policy.h — what may be imported and assigned: key sizes, curves,
 * the SIP domain, type names and where each type may be assigned, the
 * overlap window, and lead-time warnings for rolls.
 */
#ifndef CUSTODY_POLICY_H
#define CUSTODY_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/x509.h>
#include <custody/error.h>
#include <custody/records.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct custody_policy {
	int min_rsa_bits;	/* default 2048                           */
	unsigned ec_curves;	/* bit set of CUSTODY_CURVE_*; default all */
	char sip_domain[256];	/* "" = unset                             */
	int64_t overlap;	/* seconds; default 24 h                  */
	int warn_days;		/* default 30                             */
	int successor_warn_days;	/* test: WARNING when the current
					   certificate expires within this many
					   days and no successor is pending; 60 */
	int successor_critical_days;	/* ... CRITICAL within this many; 14 */
} custody_policy;

#define CUSTODY_CURVE_P256 0x1u
#define CUSTODY_CURVE_P384 0x2u
#define CUSTODY_CURVE_P521 0x4u

void custody_policy_defaults(custody_policy *p);

/* Sets one [policy] key from its text value: "min-rsa-bits", "ec-curves"
 * ("p256,p384"), "sip-domain", "overlap" ("24h", "90m", "3600s", "2d",
 * or plain seconds), "warn-days", "successor-warn-days",
 * "successor-critical-days".  An unknown key or a bad value is
 * EUSAGE naming the key. */
int custody_policy_set(custody_policy *p, const char *key, const char *value,
		       custody_err *err);

/* A duration as [policy] overlap takes it: "24h", "90m", "3600s", "2d"
 * or plain seconds, at most 100 years, into *out (seconds).  0, or -1
 * when s is not one (*out untouched). */
int custody_policy_parse_duration(const char *s, int64_t *out);

/* RSA below min_rsa_bits (message gives the actual size), an EC curve not
 * in ec_curves, DSA and every other algorithm are EFAIL. */
int custody_policy_check_key(const custody_policy *p, EVP_PKEY *pkey,
			     custody_err *err);

/* check_key on the certificate's key, plus the SIP domain when set (the
 * subject CN or a DNS SAN must equal the domain or end in ".domain"). */
int custody_policy_check_cert(const custody_policy *p, X509 *x,
			      custody_err *err);

/* EFAIL when the certificate is not valid at `now` (expired: message says
 * when it expired; not yet valid: from when). */
int custody_policy_check_valid_at(const custody_cert_record *rec, int64_t now,
				  custody_err *err);

/*
 * Canonical type name: a known type in its canonical case ("oauthtokenissuer"
 * → "OAuthTokenIssuer"), or a custom name matching
 * [A-Za-z][A-Za-z0-9_-]{0,63} as given.  Anything else is EUSAGE.
 * *known is set to 1 for a known type (may be NULL).
 */
int custody_type_canonical(const char *in, char out[CUSTODY_NAME_MAX + 1],
			   int *known, custody_err *err);

/* NULL-terminated list of the known type names. */
const char *const *custody_known_types(void);

/* A type a command may name: a known type (canonical case), or one of the
 * n_declared custom types custody.conf declares (as declared); anything
 * else is EUSAGE, "did you mean X?" when it is near one of them, with a
 * hint that says how to declare a custom type.  out is empty on error. */
int custody_type_resolve(const char *in, const char *const *declared,
			 size_t n_declared, char out[CUSTODY_NAME_MAX + 1],
			 custody_err *err);

/* Identity: "global" (any case → "global") or a node name
 * [A-Za-z0-9][A-Za-z0-9._-]{0,63}; else EUSAGE. */
int custody_identity_canonical(const char *in, char out[CUSTODY_NAME_MAX + 1],
			       custody_err *err);

/* OAuthTokenIssuer only at identity "global": else EFAIL. */
int custody_policy_check_identity(const char *type, const char *identity,
				  custody_err *err);

/* For a roll of `type` with the given lead time (effective - now, seconds):
 * writes a warning into buf and returns 1 when the lead time is shorter
 * than advised (24 h OAuthTokenIssuer, 8 h AudioVideoAuthentication),
 * else returns 0. */
int custody_policy_roll_warning(const char *type, int64_t lead, char *buf,
				size_t size);

#ifdef __cplusplus
}
#endif
#endif
