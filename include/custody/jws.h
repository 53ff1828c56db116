/*
 * custody/jws.h — compact JWS / JWT (RFC 7515, 7518, 7519) signed with the
 * keys custody keeps: RS256, PS256 and ES256.
 *
 * The header of every token issued is, in this order,
 *   {"alg":"RS256|PS256|ES256","typ":"JWT","x5t":X5T,"kid":KID}
 * where X5T is the base64url (unpadded) SHA-1 thumbprint of the signing
 * certificate.  kid defaults to the same value (as Microsoft's token
 * services do); custody metadata publishes kid = x5t, so a relying party
 * may look a key up by either.  Verification looks the certificate up by
 * x5t alone; kid is not used.
 *
 * Signing stays free of PKCS#11: the caller hands a callback that signs
 * the JWS signing input (the token module's signer, or a software key in
 * tests).  Verification uses OpenSSL with the public key of a certificate
 * record (custody_cert_record.der).
 *
 * Strings and buffers returned through out-pointers are malloc'ed and
 * belong to the caller (free()); signatures made by a callback are
 * OPENSSL_malloc'ed (see custody_jws_sign_fn).
 */
#ifndef CUSTODY_JWS_H
#define CUSTODY_JWS_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <custody/base64.h>
#include <custody/error.h>
#include <custody/records.h>

#ifdef __cplusplus
extern "C" {
#endif

enum custody_jws_alg {
	CUSTODY_JWS_ALG_NONE = 0,	/* unknown / unsupported                */
	CUSTODY_JWS_RS256,		/* RSASSA-PKCS1-v1_5 with SHA-256       */
	CUSTODY_JWS_PS256,		/* RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32 */
	CUSTODY_JWS_ES256,		/* ECDSA P-256 SHA-256, raw r||s (64 bytes) */
};

#define CUSTODY_JWS_X5T_SIZE 28		/* 27 base64url characters + NUL   */
#define CUSTODY_JWS_DEFAULT_SKEW 60	/* seconds allowed around exp/nbf  */
#define CUSTODY_JWS_MAX_TOKEN 65536	/* longer tokens are refused       */

/* "RS256", "PS256", "ES256"; "" for anything else. */
const char *custody_jws_alg_name(int alg);

/* The alg of a name (exact, case-sensitive as RFC 7515 says), or
 * CUSTODY_JWS_ALG_NONE. */
int custody_jws_alg_from_name(const char *name);

/* The algorithm custody signs with for a key algorithm as cert.h writes
 * it: "RSA-<bits>" → RS256, "EC-P256" → ES256; anything else (EC-P384,
 * RSA-PSS, ...) → CUSTODY_JWS_ALG_NONE. */
int custody_jws_default_alg(const char *key_algorithm);

/* base64url (custody_base64url_encode, custody_base64url_decode):
 * custody/base64.h. */

/* x5t of a certificate from its SHA-1 thumbprint (40 hex digits, either
 * case): base64url of the 20 bytes.  EUSAGE when thumbprint_hex is not
 * 40 hex digits. */
int custody_jws_x5t(const char *thumbprint_hex, char out[CUSTODY_JWS_X5T_SIZE],
		    custody_err *err);

/* ECDSA signature conversions.  der_to_raw writes r and s, each left-
 * padded to half bytes (32 for P-256), into raw (2*half bytes); EFAIL for
 * bad or trailing DER or an r/s longer than half.  raw_to_der takes r||s
 * (even raw_len, at most 2*66 bytes) and gives an OPENSSL_malloc'ed DER
 * ECDSA-Sig-Value (free with OPENSSL_free); EFAIL on a bad length. */
int custody_jws_ecdsa_der_to_raw(const unsigned char *der, size_t der_len,
				 size_t half, unsigned char *raw,
				 custody_err *err);
int custody_jws_ecdsa_raw_to_der(const unsigned char *raw, size_t raw_len,
				 unsigned char **der, size_t *der_len,
				 custody_err *err);

/*
 * A signer: signs `len` bytes of JWS signing input with alg (SHA-256 and
 * the padding of alg) and returns the signature in JWS form in *sig
 * (OPENSSL_malloc'ed; the caller frees it with OPENSSL_free) and
 * *sig_len: RS256/PS256 the RSA signature bytes, ES256 raw r||s, 64 bytes
 * (see custody_jws_ecdsa_der_to_raw for signers that produce DER).
 * Returns CUSTODY_OK or an error code with err filled.
 */
typedef int (*custody_jws_sign_fn)(void *ctx, int alg,
				   const unsigned char *signing_input,
				   size_t len, unsigned char **sig,
				   size_t *sig_len, custody_err *err);

/*
 * Issues a compact JWS.  claims_json must be a JSON object (EUSAGE
 * otherwise, or when it repeats a member name); iat = now and nbf = now
 * are added unless present, exp = now + lifetime unless present
 * (lifetime must be > 0 when exp is absent: EUSAGE).  iat/nbf/exp given
 * in the claims must be numbers (EUSAGE).  alg is "RS256", "PS256" or
 * "ES256" (EUSAGE otherwise); thumbprint_hex (40 hex digits) gives x5t;
 * kid NULL means kid = x5t.  The header is {"alg","typ":"JWT","x5t",
 * "kid"}.  An error of sign() is passed on; a signature of the wrong
 * length (ES256: not 64 bytes; empty) is EFAIL.  The caller should check
 * the token with custody_jws_verify against the certificate before
 * handing it out.  *out_token is malloc'ed.
 */
int custody_jws_issue(const char *claims_json, int64_t now, int64_t lifetime,
		      const char *alg, const char *thumbprint_hex,
		      const char *kid, custody_jws_sign_fn sign, void *ctx,
		      char **out_token, custody_err *err);

/*
 * Checks sig over the signing input with pub for alg: EFAIL "algorithm A
 * does not match the K key" when the key cannot make alg (RS256 needs an
 * RSA key, PS256 an RSA or RSA-PSS key, ES256 an EC P-256 key); EFAIL
 * "bad signature: ..." when it does not verify (an ES256 signature that
 * is not 64 bytes included).
 */
int custody_jws_check_signature(int alg, EVP_PKEY *pub,
				const unsigned char *signing_input, size_t len,
				const unsigned char *sig, size_t sig_len,
				custody_err *err);

/*
 * Verifies a compact JWS against candidates (for custody: current,
 * previous and — once due — pending; the caller decides which) at now.
 * Strict parsing: exactly three parts of unpadded base64url (no '=',
 * '+', '/', whitespace), at most CUSTODY_JWS_MAX_TOKEN bytes; the header
 * a JSON object without repeated names, alg RS256/PS256/ES256 ("none"
 * has its own refusal; HS256 and others are refused), typ absent or
 * "JWT", no "crit", x5t present.  The candidate whose certificate has
 * that x5t is chosen (else "unknown x5t ..."); alg must match its key;
 * the signature must verify with its public key.  Then the claims must
 * be a JSON object without repeated names, with a numeric exp (required)
 * and optional numeric nbf: expired when now - skew >= exp, not yet
 * valid when now + skew < nbf (both messages give the times).  Last, the
 * certificate that signed must be valid at now, by its own notBefore and
 * notAfter (no skew): "the certificate that signed the token, T, expired
 * at ..." / "... is not valid before ...".
 * Every refusal is EFAIL with the reason ("malformed token: expected
 * three base64url parts", "bad base64url in the signature: ...", "bad
 * signature: ...", "token expired at ...", ...); a skew outside
 * 0..86400 seconds is EUSAGE.  On success *claims_json is the payload
 * text as signed (malloc'ed) and *which the index of the candidate (both
 * may be NULL).
 */
int custody_jws_verify(const char *token,
		       const custody_cert_record *candidates, size_t n,
		       int64_t now, int64_t skew, char **claims_json,
		       size_t *which, custody_err *err);

/* What a relying party may require of the claims besides the times.
 * A NULL member is not checked. */
typedef struct custody_jws_expect {
	const char *aud;	/* the aud claim is this string, or an array
				   holding it (RFC 7519 4.1.3)              */
	const char *iss;	/* the iss claim is this string             */
} custody_jws_expect;

/*
 * custody_jws_verify, and then (expect not NULL) the claims must carry
 * the audience and the issuer asked for: EFAIL "token has no aud claim:
 * audience A was asked for", "token is for audience X, not A", "token is
 * not for audience A: it is not among the N of its aud claim", "token
 * has no iss claim: ...", "token was issued by X, not I".  These come
 * before the certificate's validity.
 */
int custody_jws_verify_expect(const char *token,
			      const custody_cert_record *candidates, size_t n,
			      int64_t now, int64_t skew,
			      const custody_jws_expect *expect,
			      char **claims_json, size_t *which,
			      custody_err *err);

#ifdef __cplusplus
}
#endif
#endif
