/*
 * custody/thumbprint.h — finding a certificate by what a user typed.
 *
 * A query is matched case-insensitively, ignoring ':' and spaces, against
 * the SHA-1 thumbprint and the SHA-256 fingerprint of each candidate; it may
 * be either in full or a unique prefix of at least 8 hex digits.
 */
#ifndef CUSTODY_THUMBPRINT_H
#define CUSTODY_THUMBPRINT_H

#include <stddef.h>
#include <custody/error.h>
#include <custody/records.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Upper-case hex digits of query without ':' and spaces into out.
 * EUSAGE when anything else is in it, when it is empty, longer than 64
 * digits, or shorter than 8. */
int custody_thumbprint_normalize(const char *query, char out[65],
				 custody_err *err);

/*
 * Sets *index to the one candidate the query names.  ENOTFOUND ("no
 * certificate with thumbprint X") when none; EFAIL when several, with a
 * message "thumbprint prefix X is ambiguous" and a hint listing the
 * candidates' thumbprints and subjects.  A candidate listed twice (same
 * thumbprint) counts once.
 */
int custody_thumbprint_match(const char *query,
			     const custody_cert_record *candidates, size_t n,
			     size_t *index, custody_err *err);

#ifdef __cplusplus
}
#endif
#endif
