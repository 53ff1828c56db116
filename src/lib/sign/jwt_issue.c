/*
 * sign/jwt_issue.c — a JWT signed through a custody_signer: the one path
 * of `custody jwt issue` and of the agent's JWT requests (alg by the key,
 * x5t and kid of the current certificate, the signature checked with the
 * certificate before the token is handed out).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/obj_mac.h>
#include <openssl/x509.h>

#include <custody/base64.h>
#include <custody/jws.h>
#include <custody/signer.h>

struct jwt_signing {
	custody_signer *signer;
	int64_t now;
	const char *thumbprint;	/* the certificate the header names */
};

static enum custody_sig_scheme
scheme_of(int alg)
{
	switch (alg) {
	case CUSTODY_JWS_PS256: return CUSTODY_SIG_RSA_PSS;
	case CUSTODY_JWS_ES256: return CUSTODY_SIG_ECDSA_RAW;
	default: return CUSTODY_SIG_RSA_PKCS1;
	}
}

/* custody_jws_sign_fn: the signer, at the same instant the header was
 * made for, so the key is the one x5t names. */
static int
sign_with_signer(void *ctx, int alg, const unsigned char *input, size_t len,
		 unsigned char **sig, size_t *sig_len, custody_err *err)
{
	struct jwt_signing *s = ctx;
	custody_signature_info info;
	unsigned char *raw = NULL;
	size_t n = 0;
	int r;

	r = custody_signer_sign(s->signer, s->now, scheme_of(alg), NID_sha256, input, len, 0,
				&raw, &n, &info, err);
	if (r != CUSTODY_OK)
		return r;
	if (strcmp(info.thumbprint, s->thumbprint) != 0) {
		r = custody_err_set(err, CUSTODY_ECONFLICT,
				    "the assignment changed while signing: signed with %s, "
				    "the header names %s", info.thumbprint, s->thumbprint);
		goto out;
	}
	/* sign/jws.c frees the signature with OPENSSL_free. */
	if ((*sig = OPENSSL_malloc(n)) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL, "out of memory");
		goto out;
	}
	memcpy(*sig, raw, n);
	*sig_len = n;
	r = CUSTODY_OK;
out:
	free(raw);
	return r;
}

/* The signature of a token just made verifies with its certificate. */
static int
check_issued(const char *token, int alg, const custody_cert_record *rec, custody_err *err)
{
	const char *dot = strrchr(token, '.');
	const unsigned char *p = rec->der;
	unsigned char *sig = NULL;
	size_t sig_len = 0;
	X509 *x = NULL;
	int r;

	if (dot == NULL ||
	    custody_base64url_decode(dot + 1, strlen(dot + 1), &sig, &sig_len) != 0 ||
	    (x = d2i_X509(NULL, &p, (long)rec->der_len)) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL, "the token just signed is malformed");
		goto out;
	}
	r = custody_jws_check_signature(alg, X509_get0_pubkey(x), (const unsigned char *)token,
					(size_t)(dot - token), sig, sig_len, err);
	if (r != CUSTODY_OK)
		custody_err_prefix(err, "the token just signed does not verify");
out:
	X509_free(x);
	free(sig);
	return r;
}

int
custody_signer_issue_jwt(custody_signer *signer, int64_t now, const char *claims_json,
			 int64_t lifetime, int alg, char **token,
			 char thumbprint[CUSTODY_THUMBPRINT_HEX + 1], int *alg_used,
			 custody_err *err)
{
	custody_cert_record rec;
	struct jwt_signing s;
	char *issued = NULL;
	int r;

	memset(&rec, 0, sizeof(rec));
	*token = NULL;
	if (now == 0)
		now = (int64_t)time(NULL);
	if ((r = custody_signer_current(signer, now, &rec, err)) != CUSTODY_OK)
		goto out;
	if (alg == CUSTODY_JWS_ALG_NONE)
		alg = custody_jws_default_alg(rec.key_algorithm);
	if (alg == CUSTODY_JWS_ALG_NONE) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "a %s key has no JWS algorithm here: use RSA or EC P-256",
				    rec.key_algorithm);
		goto out;
	}
	s.signer = signer;
	s.now = now;
	s.thumbprint = rec.thumbprint;
	r = custody_jws_issue(claims_json, now,
			      lifetime > 0 ? lifetime : CUSTODY_JWT_DEFAULT_LIFETIME,
			      custody_jws_alg_name(alg), rec.thumbprint, NULL,
			      sign_with_signer, &s, &issued, err);
	/* Check the signature before handing the token out (the signature
	 * only: the claims may well be valid from a later nbf). */
	if (r != CUSTODY_OK || (r = check_issued(issued, alg, &rec, err)) != CUSTODY_OK)
		goto out;
	if (thumbprint != NULL)
		memcpy(thumbprint, rec.thumbprint, CUSTODY_THUMBPRINT_HEX + 1);
	if (alg_used != NULL)
		*alg_used = alg;
	*token = issued;
	issued = NULL;
out:
	free(issued);
	custody_cert_record_clear(&rec);
	return r;
}
