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
#include <custody/config.h>
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

/*
 * The server-to-server document with what a partner configures a trust
 * from (the shape Exchange, SharePoint and Lync publish at
 * /metadata/json/1), from a type's [metadata TYPE] section:
 *   {"id":ID (only when configured), "version":"1.0",
 *    "name":NAME (default: the service name), "realm":REALM,
 *    "serviceName":SERVICE, "issuer":"SERVICE@REALM",
 *    "allowedAudiences":[AUDIENCES] (default ["SERVICE/" "*" "@REALM"]:
 *       the service on any host of the realm),
 *    "keys":[... as custody_metadata_s2s ...],
 *    "endpoints":[{"location":METADATA-URL,"protocol":"OAuth2",
 *                  "usage":"metadata"},
 *                 {"location":ISSUANCE-URL,"protocol":"OAuth2",
 *                  "usage":"issuance"}] (those configured; may be [])}
 * conf NULL: custody_metadata_s2s (keys only: custody does not invent an
 * issuer).  conf's values are those the configuration checked (realm
 * and service name set, neither with '@', '/' or blanks).
 */
int custody_metadata_s2s_trust(const custody_metadata_conf *conf,
			       const custody_cert_record *certs, size_t n,
			       char **json, custody_err *err);

#ifdef __cplusplus
}
#endif
#endif
