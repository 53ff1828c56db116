/*
 * fuzz_jws.c — custody_jws_verify, the tokens relying parties hand in.
 *
 * Three candidate certificates are made in memory at start-up (RSA-2048,
 * EC P-256, EC P-384).  The first input byte chooses a mode:
 *   bits 0-1  0: the rest is a token, verified as it is;
 *             1, 2, 3: the rest is "HEADER-JSON\nCLAIMS-JSON", which the
 *             harness encodes and signs with RS256 (RSA key), PS256 (RSA
 *             key) or ES256 (P-256 key), so the claims parser and the
 *             time checks behind the signature are reached too.  Every
 *             "@X5T@" in the header becomes the x5t of the signing
 *             certificate;
 *   bit 2     flip a bit of the signature;
 *   bit 3     "@X5T@" names the other certificate (RSA ↔ P-256, P-256 →
 *             P-384) instead;
 *   bits 4-5  the allowed skew: 60 s, 0, 86400 s, 86401 s (refused).
 * Verification runs at 2023-11-14T22:13:20Z (1700000000).
 */
#include "config.h"

#include <stdint.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <custody/cert.h>
#include <custody/jws.h>

#include "fuzz_common.h"
#include "unit/testcerts.h"

#define NOW INT64_C(1700000000)
#define N_CANDIDATES 3

static custody_cert_record cands[N_CANDIDATES];
static char x5ts[N_CANDIDATES][CUSTODY_JWS_X5T_SIZE];
static EVP_PKEY *keys[N_CANDIDATES];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const specs[N_CANDIDATES] = {
		"rsa:2048", "ec:p256", "ec:p384"
	};
	X509 *x;
	int i;

	(void)argc;
	(void)argv;
	for (i = 0; i < N_CANDIDATES; i++) {
		keys[i] = testcert_key(specs[i]);
		/* Valid at NOW, as the verifier checks last. */
		x = testcert_self_signed(keys[i], "fuzz.example", NULL,
					 (long)(NOW - (int64_t)time(NULL)) - 3600,
					 30);
		FUZZ_EXPECT(custody_cert_record_from_x509(x, &cands[i],
							  NULL) == CUSTODY_OK);
		FUZZ_EXPECT(custody_jws_x5t(cands[i].thumbprint, x5ts[i],
					    NULL) == CUSTODY_OK);
		X509_free(x);
	}
	return 0;
}

/* text with every "@X5T@" replaced by x5t; malloc'ed. */
static char *
put_x5t(const char *text, const char *x5t)
{
	static const char mark[] = "@X5T@";
	size_t n = 0, len;
	const char *p;
	char *out, *o;

	for (p = text; (p = strstr(p, mark)) != NULL; p += sizeof(mark) - 1)
		n++;
	len = strlen(text) + n * strlen(x5t);
	out = malloc(len + 1);
	FUZZ_EXPECT(out != NULL);
	for (o = out, p = text; *p != '\0';) {
		if (strncmp(p, mark, sizeof(mark) - 1) == 0) {
			o += sprintf(o, "%s", x5t);
			p += sizeof(mark) - 1;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return out;
}

/* The JWS signature of input by the candidate key for alg; malloc'ed. */
static unsigned char *
sign(int alg, EVP_PKEY *key, const char *input, size_t *sig_len)
{
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL, *sig = NULL;
	size_t der_len = 0;

	FUZZ_EXPECT(mctx != NULL);
	FUZZ_EXPECT(EVP_DigestSignInit(mctx, &pctx, EVP_sha256(), NULL,
				       key) == 1);
	if (alg == CUSTODY_JWS_PS256)
		FUZZ_EXPECT(EVP_PKEY_CTX_set_rsa_padding(
				    pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
			    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1 &&
			    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) == 1);
	FUZZ_EXPECT(EVP_DigestSign(mctx, NULL, &der_len,
				   (const unsigned char *)input,
				   strlen(input)) == 1);
	der = malloc(der_len);
	FUZZ_EXPECT(der != NULL);
	FUZZ_EXPECT(EVP_DigestSign(mctx, der, &der_len,
				   (const unsigned char *)input,
				   strlen(input)) == 1);
	if (alg == CUSTODY_JWS_ES256) {
		sig = malloc(64);
		FUZZ_EXPECT(sig != NULL);
		FUZZ_EXPECT(custody_jws_ecdsa_der_to_raw(der, der_len, 32, sig,
							 NULL) == CUSTODY_OK);
		*sig_len = 64;
		free(der);
	} else {
		sig = der;
		*sig_len = der_len;
	}
	EVP_MD_CTX_free(mctx);
	return sig;
}

/* A token made of the header and claims texts in body, signed as the
 * mode byte says; malloc'ed. */
static char *
make_token(unsigned mode, const char *body)
{
	static const int algs[4] = {
		0, CUSTODY_JWS_RS256, CUSTODY_JWS_PS256, CUSTODY_JWS_ES256
	};
	int alg = algs[mode & 3], signer = alg == CUSTODY_JWS_ES256;
	int named = mode & 8 ? (signer == 0 ? 1 : 2) : signer;
	const char *nl = strchr(body, '\n');
	char *header_text, *header, *h64, *c64, *s64, *input, *token;
	unsigned char *sig;
	size_t hlen = nl != NULL ? (size_t)(nl - body) : strlen(body);
	size_t sig_len = 0;

	header_text = fuzz_string((const uint8_t *)body, hlen);
	header = put_x5t(header_text, x5ts[named]);
	h64 = custody_base64url_encode((const unsigned char *)header,
				       strlen(header));
	c64 = nl != NULL ? custody_base64url_encode(
				   (const unsigned char *)nl + 1,
				   strlen(nl + 1))
			 : custody_base64url_encode(NULL, 0);
	FUZZ_EXPECT(h64 != NULL && c64 != NULL);
	input = malloc(strlen(h64) + strlen(c64) + 2);
	FUZZ_EXPECT(input != NULL);
	sprintf(input, "%s.%s", h64, c64);
	sig = sign(alg, keys[signer], input, &sig_len);
	if (mode & 4)
		sig[sig_len - 1] ^= 0x01;
	s64 = custody_base64url_encode(sig, sig_len);
	FUZZ_EXPECT(s64 != NULL);
	token = malloc(strlen(input) + strlen(s64) + 2);
	FUZZ_EXPECT(token != NULL);
	sprintf(token, "%s.%s", input, s64);
	free(header_text);
	free(header);
	free(h64);
	free(c64);
	free(s64);
	free(input);
	free(sig);
	return token;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int64_t skews[4] = { 60, 0, 86400, 86401 };
	char *body, *token, *claims = NULL;
	const char *nl;
	custody_err err;
	size_t which = N_CANDIDATES;
	unsigned mode;
	int r;

	if (size == 0)
		return 0;
	mode = data[0];
	body = fuzz_string(data + 1, size - 1);
	token = (mode & 3) == 0 ? body : make_token(mode, body);
	custody_err_clear(&err);
	r = custody_jws_verify(token, cands, N_CANDIDATES, NOW,
			       skews[mode >> 4 & 3], &claims, &which, &err);
	fuzz_note("custody_jws_verify", r, &err);
	if (r == CUSTODY_OK) {
		FUZZ_EXPECT(claims != NULL && which < N_CANDIDATES);
		/* The claims come back as they were signed. */
		if ((mode & 3) != 0) {
			nl = strchr(body, '\n');
			FUZZ_EXPECT(nl != NULL && strcmp(claims, nl + 1) == 0);
			FUZZ_EXPECT(!(mode & 4));
		}
	} else {
		FUZZ_EXPECT(r == err.code);
		FUZZ_EXPECT(fuzz_err_is(&err, CUSTODY_EFAIL, CUSTODY_EUSAGE));
		FUZZ_EXPECT(claims == NULL);
	}
	free(claims);
	if (token != body)
		free(token);
	free(body);
	ERR_clear_error();
	return 0;
}
