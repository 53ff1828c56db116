/*
 * custody/metadata.h — publishing verification keys: a JWK Set (RFC 7517,
 * 7518) or the server-to-server metadata document, from certificate
 * records (their DER; no token, no private key).
 *
 * Every key is named as custody/jws.h names it in a token: kid = x5t =
 * base64url (unpadded) SHA-1 of the certificate's DER.  Certificates are
 * listed in the order given (for `custody metadata`: current, pending,
 * previous); a certificate given twice is listed once.  The document is
 * returned as JSON text indented by two spaces, without a final newline,
 * malloc'ed (free()).
 */
#ifndef CUSTODY_METADATA_H
#define CUSTODY_METADATA_H

#include <stddef.h>
#include <custody/error.h>
#include <custody/records.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * {"keys":[{"kty":"RSA","use":"sig","kid":X5T,"x5t":X5T,
 *           "x5t#S256":..., "alg":"RS256","n":...,"e":...,"x5c":[B64DER]},
 *          {"kty":"EC","use":"sig","kid":...,"x5t":...,"x5t#S256":...,
 *           "alg":"ES256","crv":"P-256","x":...,"y":...,"x5c":[...]}]}
 * n, e, x, y are base64url big-endian (x and y padded to the curve's
 * size: 32, 48 or 66 bytes); x5c is standard base64 DER (RFC 7517 §4.7);
 * alg is the one custody signs with for that key (custody_jws_default_alg)
 * and is left out when there is none (P-384, P-521).
 * EFAIL when a record has no DER, its DER is not a certificate, or its key
 * is neither RSA nor EC P-256/P-384/P-521.
 */
int custody_metadata_jwks(const custody_cert_record *certs, size_t n,
			  char **json, custody_err *err);

/*
 * {"keys":[{"usage":"signing","keyinfo":{"x5t":X5T},
 *           "keyvalue":{"type":"x509Certificate","value":B64DER}}]}
 * (B64DER standard base64).  EFAIL when a record has no DER.
 */
int custody_metadata_s2s(const custody_cert_record *certs, size_t n,
			 char **json, custody_err *err);

#ifdef __cplusplus
}
#endif
#endif
