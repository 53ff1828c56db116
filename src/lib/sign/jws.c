/* sign/jws.c — compact JWS / JWT: base64url, issue through a signer callback,
 * strict verification against certificate records (see custody/jws.h). */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <custody/base64.h>
#include <custody/cert.h>
#include <custody/hexfmt.h>
#include <custody/jws.h>
#include <custody/timefmt.h>


static const char b64url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The JSON parser's flags for everything read from a token or a caller:
 * a repeated member name is ambiguous, so it is refused. */
#define JSON_LOAD_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)

/* ---------------------------------------------------------------- names */

const char *
custody_jws_alg_name(int alg)
{
	switch (alg) {
	case CUSTODY_JWS_RS256:
		return "RS256";
	case CUSTODY_JWS_PS256:
		return "PS256";
	case CUSTODY_JWS_ES256:
		return "ES256";
	default:
		return "";
	}
}

int
custody_jws_alg_from_name(const char *name)
{
	int alg;

	if (name == NULL)
		return CUSTODY_JWS_ALG_NONE;
	for (alg = CUSTODY_JWS_RS256; alg <= CUSTODY_JWS_ES256; alg++)
		if (strcmp(name, custody_jws_alg_name(alg)) == 0)
			return alg;
	return CUSTODY_JWS_ALG_NONE;
}

int
custody_jws_default_alg(const char *key_algorithm)
{
	if (key_algorithm == NULL)
		return CUSTODY_JWS_ALG_NONE;
	if (strncmp(key_algorithm, "RSA-", 4) == 0 &&
	    key_algorithm[4] >= '0' && key_algorithm[4] <= '9')
		return CUSTODY_JWS_RS256;
	if (strcmp(key_algorithm, "EC-P256") == 0)
		return CUSTODY_JWS_ES256;
	return CUSTODY_JWS_ALG_NONE;
}

int
custody_jws_x5t(const char *thumbprint_hex, char out[CUSTODY_JWS_X5T_SIZE],
		custody_err *err)
{
	unsigned char sha1[SHA_DIGEST_LENGTH];
	char *b64;

	if (thumbprint_hex == NULL || strlen(thumbprint_hex) != 2 * SHA_DIGEST_LENGTH ||
	    custody_hex_decode(thumbprint_hex, sha1, sizeof(sha1)) != SHA_DIGEST_LENGTH)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "bad thumbprint '%s': expected 40 hex digits (SHA-1)",
				       thumbprint_hex != NULL ? thumbprint_hex : "");
	if ((b64 = custody_base64url_encode(sha1, sizeof(sha1))) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "x5t: out of memory");
	memcpy(out, b64, CUSTODY_JWS_X5T_SIZE);
	free(b64);
	return CUSTODY_OK;
}

/* x5t of a record: SHA-1 of its DER, else of its thumbprint. */
static int
record_x5t(const custody_cert_record *rec, char out[CUSTODY_JWS_X5T_SIZE])
{
	unsigned char sha1[SHA_DIGEST_LENGTH];
	char *b64;

	if (rec->der == NULL)
		return custody_jws_x5t(rec->thumbprint, out, NULL);
	SHA1(rec->der, rec->der_len, sha1);
	if ((b64 = custody_base64url_encode(sha1, sizeof(sha1))) == NULL)
		return CUSTODY_EFAIL;
	memcpy(out, b64, CUSTODY_JWS_X5T_SIZE);
	free(b64);
	return CUSTODY_OK;
}

/* ---------------------------------------------------------------- ECDSA forms */

int
custody_jws_ecdsa_der_to_raw(const unsigned char *der, size_t der_len,
			     size_t half, unsigned char *raw, custody_err *err)
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = NULL;
	const BIGNUM *br, *bs;
	int r = CUSTODY_EFAIL;

	if (der_len > 1024 || half == 0 || half > 66) {
		r = custody_err_set(err, CUSTODY_EFAIL, "ECDSA signature: bad length");
		goto out;
	}
	sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	if (sig == NULL || p != der + der_len) {
		ERR_clear_error();
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "ECDSA signature: not a DER ECDSA-Sig-Value");
		goto out;
	}
	ECDSA_SIG_get0(sig, &br, &bs);
	if (BN_is_negative(br) || BN_is_negative(bs) ||
	    BN_bn2binpad(br, raw, (int)half) < 0 ||
	    BN_bn2binpad(bs, raw + half, (int)half) < 0) {
		ERR_clear_error();
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "ECDSA signature: r or s is longer than %zu bytes", half);
		goto out;
	}
	r = CUSTODY_OK;
out:
	ECDSA_SIG_free(sig);
	return r;
}

int
custody_jws_ecdsa_raw_to_der(const unsigned char *raw, size_t raw_len,
			     unsigned char **der, size_t *der_len,
			     custody_err *err)
{
	unsigned char *buf;
	size_t n;

	*der = NULL;
	*der_len = 0;
	if (raw_len == 0 || raw_len % 2 != 0 || raw_len > 2 * 66)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "ECDSA signature: %zu bytes is not a raw r||s",
				       raw_len);
	if ((buf = OPENSSL_malloc(raw_len + 9)) == NULL)
		return custody_err_openssl(err, CUSTODY_EFAIL, "ECDSA signature");
	n = custody_ecdsa_raw_to_der(raw, raw_len, buf);
	*der = buf;
	*der_len = n;
	return CUSTODY_OK;
}

/* ---------------------------------------------------------------- signatures */

/* 1 when pub can make signatures of alg. */
static int
alg_fits_key(int alg, EVP_PKEY *pub, const char *key_algorithm)
{
	int id = EVP_PKEY_get_base_id(pub);

	switch (alg) {
	case CUSTODY_JWS_RS256:
		return id == EVP_PKEY_RSA;
	case CUSTODY_JWS_PS256:
		return id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS;
	case CUSTODY_JWS_ES256:
		return id == EVP_PKEY_EC && strcmp(key_algorithm, "EC-P256") == 0;
	default:
		return 0;
	}
}

/* `whose` is appended to the key's description (" of certificate X"). */
static int
check_signature(int alg, EVP_PKEY *pub, const unsigned char *input, size_t len,
		const unsigned char *sig, size_t sig_len, const char *whose,
		custody_err *err)
{
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL;
	size_t der_len = 0;
	char key[32];
	int r = CUSTODY_EFAIL;

	custody_pkey_algorithm(pub, key, sizeof(key));
	if (!alg_fits_key(alg, pub, key)) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "algorithm %s does not match the %s key%s",
				    alg == CUSTODY_JWS_ALG_NONE ? "(none)" : custody_jws_alg_name(alg),
				    key, whose);
		goto out;
	}
	if (alg == CUSTODY_JWS_ES256) {
		if (sig_len != 64) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "bad signature: an ES256 signature is 64 bytes, this one %zu",
					    sig_len);
			goto out;
		}
		if ((r = custody_jws_ecdsa_raw_to_der(sig, sig_len, &der, &der_len, err)) != CUSTODY_OK)
			goto out;
		sig = der;
		sig_len = der_len;
	} else if (sig_len != (size_t)EVP_PKEY_get_size(pub)) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "bad signature: %zu bytes where the %s key%s makes %d",
				    sig_len, key, whose, EVP_PKEY_get_size(pub));
		goto out;
	}
	if ((mctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(mctx, &pctx, EVP_sha256(), NULL, pub) != 1) {
		r = custody_err_openssl(err, CUSTODY_EFAIL, "cannot verify with the %s key%s",
					key, whose);
		goto out;
	}
	if (alg == CUSTODY_JWS_PS256 &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, SHA256_DIGEST_LENGTH) != 1)) {
		r = custody_err_openssl(err, CUSTODY_EFAIL, "cannot set up RSA-PSS with the %s key%s",
					key, whose);
		goto out;
	}
	if (EVP_DigestVerify(mctx, sig, sig_len, input, len) != 1) {
		ERR_clear_error();
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "bad signature: it does not verify with the %s key%s",
				    key, whose);
		goto out;
	}
	r = CUSTODY_OK;
out:
	EVP_MD_CTX_free(mctx);
	OPENSSL_free(der);
	return r;
}

int
custody_jws_check_signature(int alg, EVP_PKEY *pub,
			    const unsigned char *signing_input, size_t len,
			    const unsigned char *sig, size_t sig_len,
			    custody_err *err)
{
	if (pub == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE, "no public key to verify with");
	return check_signature(alg, pub, signing_input, len, sig, sig_len, "", err);
}

/* ---------------------------------------------------------------- issue */

/* Adds name = value unless the claims have it; one given must be a number. */
static int
add_time_claim(json_t *claims, const char *name, int64_t value, custody_err *err)
{
	json_t *have = json_object_get(claims, name);

	if (have != NULL) {
		if (!json_is_number(have))
			return custody_err_set(err, CUSTODY_EUSAGE,
					       "claims: %s is not a number (seconds since 1970)",
					       name);
		return CUSTODY_OK;
	}
	if (json_object_set_new(claims, name, json_integer((json_int_t)value)) != 0)
		return custody_err_set(err, CUSTODY_EFAIL, "claims: out of memory");
	return CUSTODY_OK;
}

/* The claims as given, checked, with iat, nbf and exp added. */
static int
complete_claims(const char *claims_json, int64_t now, int64_t lifetime,
		json_t **out, custody_err *err)
{
	json_t *claims = NULL;
	json_error_t jerr;
	int r = CUSTODY_EUSAGE;

	if (claims_json == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE, "no claims given");
		goto out;
	}
	claims = json_loads(claims_json, JSON_LOAD_FLAGS, &jerr);
	if (claims == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "claims are not valid JSON: %s (line %d, column %d)",
				    jerr.text, jerr.line, jerr.column);
		goto out;
	}
	if (!json_is_object(claims)) {
		r = custody_err_set(err, CUSTODY_EUSAGE, "claims are not a JSON object");
		goto out;
	}
	if (json_object_get(claims, "exp") == NULL &&
	    (lifetime <= 0 || lifetime > INT64_MAX - now)) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "lifetime %lld: must be a positive number of seconds",
				    (long long)lifetime);
		goto out;
	}
	if ((r = add_time_claim(claims, "iat", now, err)) != CUSTODY_OK ||
	    (r = add_time_claim(claims, "nbf", now, err)) != CUSTODY_OK ||
	    (r = add_time_claim(claims, "exp", now + lifetime, err)) != CUSTODY_OK)
		goto out;
	*out = claims;
	claims = NULL;
	r = CUSTODY_OK;
out:
	json_decref(claims);
	return r;
}

/* base64url(JSON of value), compact, members in insertion order. */
static char *
encode_json(const json_t *value)
{
	char *text = json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER);
	char *b64 = NULL;

	if (text != NULL)
		b64 = custody_base64url_encode((const unsigned char *)text, strlen(text));
	free(text);
	return b64;
}

/* "a.b", malloc'ed; NULL when out of memory. */
static char *
dot_join(const char *a, const char *b)
{
	size_t size = strlen(a) + 1 + strlen(b) + 1;
	char *s = malloc(size);

	if (s != NULL)
		snprintf(s, size, "%s.%s", a, b);
	return s;
}

int
custody_jws_issue(const char *claims_json, int64_t now, int64_t lifetime,
		  const char *alg, const char *thumbprint_hex, const char *kid,
		  custody_jws_sign_fn sign, void *ctx, char **out_token,
		  custody_err *err)
{
	char x5t[CUSTODY_JWS_X5T_SIZE];
	json_t *claims = NULL, *header = NULL;
	char *h64 = NULL, *p64 = NULL, *s64 = NULL, *input = NULL;
	unsigned char *sig = NULL;
	size_t sig_len = 0;
	int a, r = CUSTODY_EFAIL;

	*out_token = NULL;
	a = custody_jws_alg_from_name(alg);
	if (a == CUSTODY_JWS_ALG_NONE) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "unsupported algorithm '%s': use RS256, PS256 or ES256",
				    alg != NULL ? alg : "");
		goto out;
	}
	if (sign == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE, "no signer given");
		goto out;
	}
	if ((r = custody_jws_x5t(thumbprint_hex, x5t, err)) != CUSTODY_OK)
		goto out;
	if ((r = complete_claims(claims_json, now, lifetime, &claims, err)) != CUSTODY_OK)
		goto out;
	header = json_pack("{s:s, s:s, s:s, s:s}", "alg", custody_jws_alg_name(a),
			   "typ", "JWT", "x5t", x5t, "kid", kid != NULL ? kid : x5t);
	if (header == NULL || (h64 = encode_json(header)) == NULL ||
	    (p64 = encode_json(claims)) == NULL ||
	    (input = dot_join(h64, p64)) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL, "cannot encode the token: out of memory");
		goto out;
	}
	if ((r = sign(ctx, a, (const unsigned char *)input, strlen(input), &sig, &sig_len,
		      err)) != CUSTODY_OK) {
		if (err != NULL && err->msg[0] == '\0')
			custody_err_set(err, r, "the signer failed");
		goto out;
	}
	if (sig == NULL || sig_len == 0 || (a == CUSTODY_JWS_ES256 && sig_len != 64)) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "the signer returned %zu bytes for %s%s", sig_len,
				    custody_jws_alg_name(a),
				    a == CUSTODY_JWS_ES256 ? ", not a raw r||s of 64 bytes" : "");
		goto out;
	}
	if ((s64 = custody_base64url_encode(sig, sig_len)) == NULL ||
	    (*out_token = dot_join(input, s64)) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL, "cannot encode the token: out of memory");
		goto out;
	}
	r = CUSTODY_OK;
out:
	json_decref(claims);
	json_decref(header);
	free(h64);
	free(p64);
	free(s64);
	free(input);
	OPENSSL_free(sig);
	return r;
}

/* ---------------------------------------------------------------- verify */

struct jws_parts {
	unsigned char *header, *payload, *sig;
	size_t header_len, payload_len, sig_len;
	size_t signing_len;	/* "HEADER.PAYLOAD" */
};

static void
jws_parts_clear(struct jws_parts *p)
{
	free(p->header);
	free(p->payload);
	free(p->sig);
	memset(p, 0, sizeof(*p));
}

static int
decode_part(const char *what, const char *in, size_t len, unsigned char **out,
	    size_t *out_len, custody_err *err)
{
	char why[128];

	if (custody_base64_decode(in, len, CUSTODY_BASE64URL, out, out_len, why,
				  sizeof(why)) != 0)
		return custody_err_set(err, CUSTODY_EFAIL, "bad base64url in the %s: %s",
				       what, why);
	return CUSTODY_OK;
}

/* Splits the token into its three parts and decodes them. */
static int
split_token(const char *token, struct jws_parts *p, custody_err *err)
{
	const char *dot1, *dot2;
	size_t len;
	int r = CUSTODY_EFAIL;

	memset(p, 0, sizeof(*p));
	len = token != NULL ? strnlen(token, CUSTODY_JWS_MAX_TOKEN + 1) : 0;
	if (len == 0) {
		r = custody_err_set(err, CUSTODY_EFAIL, "malformed token: it is empty");
		goto out;
	}
	if (len > CUSTODY_JWS_MAX_TOKEN) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "malformed token: longer than %d bytes", CUSTODY_JWS_MAX_TOKEN);
		goto out;
	}
	dot1 = strchr(token, '.');
	dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
	if (dot2 == NULL || strchr(dot2 + 1, '.') != NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "malformed token: expected three base64url parts separated by '.'");
		goto out;
	}
	if (dot1 == token || dot2 == dot1 + 1) {
		r = custody_err_set(err, CUSTODY_EFAIL, "malformed token: the %s part is empty",
				    dot1 == token ? "header" : "claims");
		goto out;
	}
	if ((r = decode_part("header", token, (size_t)(dot1 - token), &p->header,
			     &p->header_len, err)) != CUSTODY_OK ||
	    (r = decode_part("claims", dot1 + 1, (size_t)(dot2 - dot1 - 1), &p->payload,
			     &p->payload_len, err)) != CUSTODY_OK ||
	    (r = decode_part("signature", dot2 + 1, len - (size_t)(dot2 + 1 - token), &p->sig,
			     &p->sig_len, err)) != CUSTODY_OK)
		goto out;
	p->signing_len = (size_t)(dot2 - token);
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK)
		jws_parts_clear(p);
	return r;
}

/* A JSON object from bytes; `what` names it in messages. */
static int
parse_object(const unsigned char *buf, size_t len, const char *what,
	     json_t **out, custody_err *err)
{
	json_error_t jerr;
	json_t *v;

	*out = NULL;
	v = json_loadb((const char *)buf, len, JSON_LOAD_FLAGS, &jerr);
	if (v == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "malformed %s: %s", what, jerr.text);
	if (!json_is_object(v)) {
		json_decref(v);
		return custody_err_set(err, CUSTODY_EFAIL, "malformed %s: not a JSON object", what);
	}
	*out = v;
	return CUSTODY_OK;
}

/* 1 when s is 1..64 base64url characters (safe to print). */
static int
is_b64url_text(const char *s)
{
	size_t n = strspn(s, b64url_alphabet);

	return s[n] == '\0' && n > 0 && n <= 64;
}

/* Checks the header; sets *alg and *x5t (pointing into header). */
static int
check_header(json_t *header, int *alg, const char **x5t, custody_err *err)
{
	json_t *v;
	const char *name;

	v = json_object_get(header, "alg");
	if (!json_is_string(v))
		return custody_err_set(err, CUSTODY_EFAIL,
				       "malformed header: alg is missing or not a string");
	name = json_string_value(v);
	if (strcasecmp(name, "none") == 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "algorithm none is refused: the token is not signed");
	if ((*alg = custody_jws_alg_from_name(name)) == CUSTODY_JWS_ALG_NONE)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "unsupported algorithm '%.32s': RS256, PS256 or ES256 only",
				       name);
	v = json_object_get(header, "typ");
	if (v != NULL && (!json_is_string(v) || strcasecmp(json_string_value(v), "JWT") != 0))
		return custody_err_set(err, CUSTODY_EFAIL,
				       "unsupported typ: only JWT tokens are accepted");
	if (json_object_get(header, "crit") != NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "unsupported header: crit names extensions custody does not know");
	v = json_object_get(header, "x5t");
	if (v == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "token has no x5t header: cannot tell which certificate signed it");
	if (!json_is_string(v) || !is_b64url_text(json_string_value(v)))
		return custody_err_set(err, CUSTODY_EFAIL,
				       "malformed header: x5t is not a base64url thumbprint");
	*x5t = json_string_value(v);
	return CUSTODY_OK;
}

/* The candidate whose certificate has x5t. */
static int
find_candidate(const char *x5t, const custody_cert_record *candidates, size_t n,
	       size_t *index, custody_err *err)
{
	char have[CUSTODY_JWS_X5T_SIZE];
	unsigned char *raw = NULL;
	size_t i, raw_len = 0;
	char hex[2 * SHA_DIGEST_LENGTH + 1] = "";

	for (i = 0; i < n; i++)
		if (record_x5t(&candidates[i], have) == CUSTODY_OK && strcmp(have, x5t) == 0) {
			*index = i;
			return CUSTODY_OK;
		}
	/* Say which thumbprint the token names, in the form users know. */
	if (custody_base64url_decode(x5t, strlen(x5t), &raw, &raw_len) == 0 &&
	    raw_len == SHA_DIGEST_LENGTH)
		custody_hex_encode(raw, raw_len, hex, 1);
	free(raw);
	return custody_err_set(err, CUSTODY_EFAIL,
			       "unknown x5t %s%s%s%s: not the thumbprint of any accepted certificate",
			       x5t, hex[0] != '\0' ? " (thumbprint " : "", hex,
			       hex[0] != '\0' ? ")" : "");
}

/* A numeric claim as a double; *present 0 when absent. */
static int
time_claim(json_t *claims, const char *name, double *value, int *present,
	   custody_err *err)
{
	json_t *v = json_object_get(claims, name);

	*present = v != NULL;
	if (v == NULL)
		return CUSTODY_OK;
	if (!json_is_number(v))
		return custody_err_set(err, CUSTODY_EFAIL,
				       "malformed claims: %s is not a number", name);
	*value = json_number_value(v);
	return CUSTODY_OK;
}

static const char *
show_time(double t, char buf[CUSTODY_TIME_TEXT])
{
	int64_t i;

	if (t >= 9.0e18)
		i = INT64_C(9000000000000000000);
	else if (t <= -9.0e18)
		i = -INT64_C(9000000000000000000);
	else
		i = (int64_t)t;
	return custody_time_format(i, buf);
}

static int
check_times(json_t *claims, int64_t now, int64_t skew, custody_err *err)
{
	char t1[CUSTODY_TIME_TEXT], t2[CUSTODY_TIME_TEXT];
	double exp = 0, nbf = 0;
	int have_exp, have_nbf, r;

	if ((r = time_claim(claims, "exp", &exp, &have_exp, err)) != CUSTODY_OK ||
	    (r = time_claim(claims, "nbf", &nbf, &have_nbf, err)) != CUSTODY_OK)
		return r;
	if (!have_exp)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "token has no exp claim: tokens that never expire are refused");
	if ((double)(now - skew) >= exp)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "token expired at %s (now %s, allowed skew %lld s)",
				       show_time(exp, t1), custody_time_format(now, t2),
				       (long long)skew);
	if (have_nbf && (double)(now + skew) < nbf)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "token not yet valid: valid from %s (now %s, allowed skew %lld s)",
				       show_time(nbf, t1), custody_time_format(now, t2),
				       (long long)skew);
	return CUSTODY_OK;
}

/* The certificate that signed is valid at now (notBefore <= now <=
 * notAfter), read from the certificate itself, not from the record. */
static int
check_cert_validity(X509 *x, const char *thumbprint, int64_t now, custody_err *err)
{
	char t1[CUSTODY_TIME_TEXT], t2[CUSTODY_TIME_TEXT];
	int64_t nb = 0, na = 0;

	if (custody_cert_validity(x, &nb, &na) != 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "certificate %s: cannot read its validity period",
				       thumbprint);
	if (now < nb)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the certificate that signed the token, %s, is not valid "
				       "before %s (now %s)", thumbprint,
				       custody_time_format(nb, t1), custody_time_format(now, t2));
	if (now > na)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the certificate that signed the token, %s, expired at %s "
				       "(now %s)", thumbprint, custody_time_format(na, t1),
				       custody_time_format(now, t2));
	return CUSTODY_OK;
}

/* aud is the audience asked for, or one of the aud array's strings. */
static int
check_audience(json_t *claims, const char *aud, custody_err *err)
{
	json_t *v = json_object_get(claims, "aud"), *item;
	size_t i;

	if (v == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "token has no aud claim: audience %.200s was asked for",
				       aud);
	if (json_is_string(v) && strcmp(json_string_value(v), aud) == 0)
		return CUSTODY_OK;
	if (json_is_array(v)) {
		json_array_foreach(v, i, item)
			if (json_is_string(item) && strcmp(json_string_value(item), aud) == 0)
				return CUSTODY_OK;
		return custody_err_set(err, CUSTODY_EFAIL,
				       "token is not for audience %.200s: it is not among "
				       "the %zu of its aud claim", aud, json_array_size(v));
	}
	if (json_is_string(v))
		return custody_err_set(err, CUSTODY_EFAIL,
				       "token is for audience %.200s, not %.200s",
				       json_string_value(v), aud);
	return custody_err_set(err, CUSTODY_EFAIL,
			       "malformed claims: aud is neither a string nor an array");
}

static int
check_issuer(json_t *claims, const char *iss, custody_err *err)
{
	json_t *v = json_object_get(claims, "iss");

	if (v == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "token has no iss claim: issuer %.200s was asked for",
				       iss);
	if (!json_is_string(v))
		return custody_err_set(err, CUSTODY_EFAIL,
				       "malformed claims: iss is not a string");
	if (strcmp(json_string_value(v), iss) != 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "token was issued by %.200s, not %.200s",
				       json_string_value(v), iss);
	return CUSTODY_OK;
}

int
custody_jws_verify(const char *token, const custody_cert_record *candidates,
		   size_t n, int64_t now, int64_t skew, char **claims_json,
		   size_t *which, custody_err *err)
{
	return custody_jws_verify_expect(token, candidates, n, now, skew, NULL,
					 claims_json, which, err);
}

int
custody_jws_verify_expect(const char *token, const custody_cert_record *candidates,
			  size_t n, int64_t now, int64_t skew,
			  const custody_jws_expect *expect, char **claims_json,
			  size_t *which, custody_err *err)
{
	struct jws_parts parts;
	json_t *header = NULL, *claims = NULL;
	const char *x5t = NULL;
	const unsigned char *p;
	const custody_cert_record *cand;
	X509 *x = NULL;
	char whose[CUSTODY_THUMBPRINT_HEX + 32];
	char *text = NULL;
	size_t index = 0;
	int alg = CUSTODY_JWS_ALG_NONE, r = CUSTODY_EFAIL;

	memset(&parts, 0, sizeof(parts));
	if (claims_json != NULL)
		*claims_json = NULL;
	if (skew < 0 || skew > 86400) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "clock skew %lld s: must be between 0 and 86400",
				    (long long)skew);
		goto out;
	}
	if ((r = split_token(token, &parts, err)) != CUSTODY_OK)
		goto out;
	if ((r = parse_object(parts.header, parts.header_len, "header", &header, err)) != CUSTODY_OK ||
	    (r = check_header(header, &alg, &x5t, err)) != CUSTODY_OK ||
	    (r = find_candidate(x5t, candidates, n, &index, err)) != CUSTODY_OK)
		goto out;
	cand = &candidates[index];
	snprintf(whose, sizeof(whose), " of certificate %s", cand->thumbprint);
	p = cand->der;
	if (cand->der == NULL ||
	    (x = d2i_X509(NULL, &p, (long)cand->der_len)) == NULL ||
	    X509_get0_pubkey(x) == NULL) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"certificate %s: cannot read its public key",
					cand->thumbprint);
		goto out;
	}
	if ((r = check_signature(alg, X509_get0_pubkey(x), (const unsigned char *)token,
				 parts.signing_len, parts.sig, parts.sig_len, whose,
				 err)) != CUSTODY_OK)
		goto out;
	if ((r = parse_object(parts.payload, parts.payload_len, "claims", &claims, err)) != CUSTODY_OK ||
	    (r = check_times(claims, now, skew, err)) != CUSTODY_OK)
		goto out;
	if (expect != NULL &&
	    ((expect->aud != NULL && (r = check_audience(claims, expect->aud, err)) != CUSTODY_OK) ||
	     (expect->iss != NULL && (r = check_issuer(claims, expect->iss, err)) != CUSTODY_OK)))
		goto out;
	if ((r = check_cert_validity(x, cand->thumbprint, now, err)) != CUSTODY_OK)
		goto out;
	if (claims_json != NULL) {
		if ((text = malloc(parts.payload_len + 1)) == NULL) {
			r = custody_err_set(err, CUSTODY_EFAIL, "claims: out of memory");
			goto out;
		}
		memcpy(text, parts.payload, parts.payload_len);
		text[parts.payload_len] = '\0';
		*claims_json = text;
		text = NULL;
	}
	if (which != NULL)
		*which = index;
	r = CUSTODY_OK;
out:
	X509_free(x);
	json_decref(header);
	json_decref(claims);
	jws_parts_clear(&parts);
	free(text);
	return r;
}
