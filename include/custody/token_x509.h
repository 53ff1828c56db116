/*
 * custody/token_x509.h — certificates and certificate requests signed by
 * a private key of the token, through custody's own PKCS#11 calls.
 *
 * The part to be signed is DER-encoded and hashed in software, and the
 * token signs the digest in the handle's own session: RSA keys with
 * PKCS#1 v1.5 (CKM_RSA_PKCS over the DigestInfo), EC keys with ECDSA
 * (CKM_ECDSA; the token's r || s is stored DER-encoded, as X.509 wants).
 * The signature algorithm follows from the key's type and the digest:
 * sha256/384/512WithRSAEncryption (parameters NULL) or
 * ecdsa-with-SHA256/384/512 (no parameters).  No other session is opened
 * and no other PKCS#11 library is involved: the handle keeps its session
 * and its login.
 *
 * Before a signature is put in place it is checked with `pub`, the
 * signer's public key (for a request, the request's own key): a signature
 * that does not verify is EFAIL, "the signature ... does not verify".
 *
 * tok must be open and logged in (EFAIL "... not logged in" otherwise);
 * key_id is the key's CKA_ID in hex (malformed: EUSAGE; no private key
 * with it: ENOTFOUND); digest_nid is NID_sha256, NID_sha384 or
 * NID_sha512 (anything else: EUSAGE).  As every function of a
 * custody_token, call them from one thread at a time.
 */
#ifndef CUSTODY_TOKEN_X509_H
#define CUSTODY_TOKEN_X509_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <custody/error.h>
#include <custody/token.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Signs the PKCS#10 request req: its signature algorithm and signature
 * are set (X509_REQ_set1_signature_algo, X509_REQ_set0_signature).  On
 * failure req carries no signature that verifies: do not use it.
 */
int custody_token_sign_req(custody_token *tok, const char *key_id,
			   int digest_nid, EVP_PKEY *pub, X509_REQ *req,
			   custody_err *err);

/*
 * Signs the certificate *cert (the issuer's key: key_id and pub).  Its
 * fields are kept as they are; the signature algorithm is set both inside
 * the signed part and outside it.  OpenSSL 3.0 has no setter for either,
 * so on success *cert is replaced by the signed certificate (a new X509
 * with the same fields; the one passed in is freed).  On failure *cert is
 * left as it was.  A certificate with issuer or subject unique
 * identifiers is refused (EFAIL): custody never makes one.
 */
int custody_token_sign_cert(custody_token *tok, const char *key_id,
			    int digest_nid, EVP_PKEY *pub, X509 **cert,
			    custody_err *err);

#ifdef __cplusplus
}
#endif
#endif
