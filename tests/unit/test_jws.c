/* test_jws.c — compact JWS / JWT (custody/jws.h): base64url, RFC 7515
 * vectors, issue → verify round trips for RS256/PS256/ES256 with a
 * software signer, and every bad token the verifier must refuse. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <custody/cert.h>
#include <custody/jws.h>
#include "unit/testcerts.h"

#define NOW INT64_C(1900000000)	/* 2030-03-17T17:46:40Z */

/* ---------------------------------------------------------------- helpers */

/* base64url written here with OpenSSL's standard base64, so expected
 * values do not come from the code under test. */
static char *
ref_b64url(const unsigned char *in, size_t len)
{
	char *out = malloc(len / 3 * 4 + 8);
	size_t i, o = 0;

	cr_assert_not_null(out);
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	for (i = 0; out[i] != '\0'; i++) {
		if (out[i] == '=')
			break;
		out[o++] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	}
	out[o] = '\0';
	return out;
}

static unsigned char *
ref_b64url_decode(const char *in, size_t *len)
{
	size_t n = strlen(in), i, pad = (4 - n % 4) % 4;
	char *std = malloc(n + pad + 1);
	unsigned char *out = malloc(n + 4);
	int got;

	cr_assert(std != NULL && out != NULL);
	for (i = 0; i < n; i++)
		std[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	memset(std + n, '=', pad);
	std[n + pad] = '\0';
	got = EVP_DecodeBlock(out, (unsigned char *)std, (int)(n + pad));
	cr_assert_geq(got, 0, "bad base64url in the test: %s", in);
	*len = (size_t)got - pad;
	free(std);
	return out;
}

static char *
ref_b64url_str(const char *s)
{
	return ref_b64url((const unsigned char *)s, strlen(s));
}

/* A key with its certificate record. */
struct ident {
	EVP_PKEY *key;
	X509 *cert;
	custody_cert_record rec;
	char x5t[64];
};

/* An identity whose certificate is valid from NOW + from_s for days days
 * (the verifier checks the certificate's validity at NOW). */
static void
make_ident_valid(struct ident *id, const char *spec, const char *cn, long from_s, long days)
{
	unsigned char *der = NULL, sha1[SHA_DIGEST_LENGTH];
	int len;
	char *x;
	custody_err err;

	id->key = testcert_key(spec);
	id->cert = testcert_self_signed(id->key, cn, NULL,
					(long)(NOW - (int64_t)time(NULL)) + from_s, days);
	cr_assert_eq(custody_cert_record_from_x509(id->cert, &id->rec, &err), CUSTODY_OK, "%s", err.msg);
	len = i2d_X509(id->cert, &der);
	cr_assert_gt(len, 0);
	SHA1(der, (size_t)len, sha1);
	x = ref_b64url(sha1, sizeof(sha1));
	snprintf(id->x5t, sizeof(id->x5t), "%s", x);
	free(x);
	OPENSSL_free(der);
}

static void
make_ident(struct ident *id, const char *spec, const char *cn)
{
	make_ident_valid(id, spec, cn, -3600, 365);
}

static void
free_ident(struct ident *id)
{
	custody_cert_record_clear(&id->rec);
	X509_free(id->cert);
	EVP_PKEY_free(id->key);
}

/* The software signer: EVP_DigestSign with an in-memory key; ES256 turned
 * into raw r||s here (not with the code under test). */
struct soft {
	EVP_PKEY *key;
	size_t force_len;	/* nonzero: return this many bytes instead */
	int fail;
	int pss_salt;		/* nonzero: PSS salt length instead of 32 */
};

static int
soft_sign(void *ctx, int alg, const unsigned char *in, size_t len,
	  unsigned char **sig, size_t *sig_len, custody_err *err)
{
	struct soft *s = ctx;
	EVP_MD_CTX *m;
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *buf;
	size_t blen = 0;

	if (s->fail)
		return custody_err_set(err, CUSTODY_EPIN, "token: the token rejected the PIN");
	m = EVP_MD_CTX_new();
	cr_assert_not_null(m);
	cr_assert_eq(EVP_DigestSignInit(m, &pctx, EVP_sha256(), NULL, s->key), 1);
	if (alg == CUSTODY_JWS_PS256) {
		cr_assert_eq(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
		cr_assert_eq(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, s->pss_salt != 0 ? s->pss_salt : 32), 1);
		cr_assert_eq(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()), 1);
	}
	cr_assert_eq(EVP_DigestSign(m, NULL, &blen, in, len), 1);
	buf = OPENSSL_malloc(blen);
	cr_assert_eq(EVP_DigestSign(m, buf, &blen, in, len), 1);
	EVP_MD_CTX_free(m);
	if (alg == CUSTODY_JWS_ES256) {
		const unsigned char *p = buf;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)blen);
		unsigned char *raw = OPENSSL_malloc(64);

		cr_assert_not_null(es);
		cr_assert_eq(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32), 32);
		cr_assert_eq(BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32), 32);
		ECDSA_SIG_free(es);
		OPENSSL_free(buf);
		buf = raw;
		blen = 64;
	}
	if (s->force_len != 0) {
		buf = OPENSSL_realloc(buf, s->force_len);
		memset(buf, 0x5a, s->force_len);
		blen = s->force_len;
	}
	*sig = buf;
	*sig_len = blen;
	return CUSTODY_OK;
}

static char *
issue(struct ident *id, const char *alg, const char *claims, int64_t now,
      int64_t lifetime)
{
	struct soft s = {id->key, 0, 0, 0};
	custody_err err;
	char *token = NULL;

	cr_assert_eq(custody_jws_issue(claims, now, lifetime, alg, id->rec.thumbprint, NULL,
				       soft_sign, &s, &token, &err),
		     CUSTODY_OK, "issue: %s", err.msg);
	return token;
}

/* A token with any header and payload text, really signed by id. */
static char *
forge(struct ident *id, int alg, const char *header, const char *payload)
{
	struct soft s = {id->key, 0, 0, 0};
	char *h = ref_b64url_str(header), *p = ref_b64url_str(payload), *sg, *input, *token;
	unsigned char *sig = NULL;
	size_t sig_len = 0;
	custody_err err;

	input = malloc(strlen(h) + strlen(p) + 2);
	cr_assert_not_null(input);
	sprintf(input, "%s.%s", h, p);
	cr_assert_eq(soft_sign(&s, alg, (unsigned char *)input, strlen(input), &sig, &sig_len, &err), 0);
	sg = ref_b64url(sig, sig_len);
	token = malloc(strlen(input) + strlen(sg) + 2);
	cr_assert_not_null(token);
	sprintf(token, "%s.%s", input, sg);
	free(h);
	free(p);
	free(sg);
	free(input);
	OPENSSL_free(sig);
	return token;
}

static char *
header_for(const char *alg, const struct ident *id)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"x5t\":\"%s\"}", alg, id->x5t);
	return buf;
}

static int
verify1(const char *token, const struct ident *id, custody_err *err)
{
	return custody_jws_verify(token, &id->rec, 1, NOW, 60, NULL, NULL, err);
}

#define assert_refused(token, id, text) do {                                   \
		custody_err e_;                                                \
		int r_ = verify1((token), (id), &e_);                          \
		cr_assert_eq(r_, CUSTODY_EFAIL, "expected a refusal, got %d", r_); \
		cr_assert(strstr(e_.msg, (text)) != NULL, "message '%s' lacks '%s'", \
			  e_.msg, (text));                                     \
	} while (0)

static EVP_PKEY *
pem_public(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);

	BIO_free(b);
	cr_assert_not_null(k);
	return k;
}

/* ---------------------------------------------------------------- base64url */

Test(base64url, rfc4648_vectors_without_padding)
{
	static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const want[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};

	for (size_t i = 0; i < 7; i++) {
		char *got = custody_base64url_encode((const unsigned char *)in[i], strlen(in[i]));
		unsigned char *back = NULL;
		size_t blen = 99;

		cr_assert_str_eq(got, want[i]);
		cr_assert_eq(custody_base64url_decode(got, strlen(got), &back, &blen), 0);
		cr_assert_eq(blen, strlen(in[i]));
		cr_assert_eq(memcmp(back, in[i], blen), 0);
		free(got);
		free(back);
	}
}

Test(base64url, url_alphabet_replaces_plus_and_slash)
{
	static const unsigned char in[] = {0xfb, 0xff, 0xbf};
	char *got = custody_base64url_encode(in, sizeof(in));

	/* Standard base64 of these bytes is "+/+/". */
	cr_assert_str_eq(got, "-_-_");
	free(got);
}

Test(base64url, strict_decoding_refuses_non_canonical_text)
{
	static const char *const bad[] = {
		"Zg==",		/* padding */
		"Zm9v+A",	/* '+' of standard base64 */
		"Zm9v/A",	/* '/' */
		"Zm9 v",	/* whitespace */
		"Zm9vY",	/* 4k+1 characters */
		"Zh",		/* unused bits not zero: "Zg" is the canonical form */
		"Zm9",		/* "Zm8" is canonical */
	};
	unsigned char *out;
	size_t len;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = (unsigned char *)"sentinel";
		cr_assert_eq(custody_base64url_decode(bad[i], strlen(bad[i]), &out, &len), -1,
			     "'%s' was accepted", bad[i]);
		cr_assert_null(out);
	}
}

Test(base64url, rfc7515_header_and_payload_encodings)
{
	/* RFC 7515 A.2.1: the exact bytes, with CR LF, and their encodings. */
	static const char payload[] =
		"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";
	char *h = custody_base64url_encode((const unsigned char *)"{\"alg\":\"RS256\"}", 15);
	char *p = custody_base64url_encode((const unsigned char *)payload, strlen(payload));

	cr_assert_str_eq(h, "eyJhbGciOiJSUzI1NiJ9");
	cr_assert_str_eq(p, "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
			    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ");
	free(h);
	free(p);
}

Test(base64url, x5t_of_a_thumbprint)
{
	char x5t[CUSTODY_JWS_X5T_SIZE];
	custody_err err;
	unsigned char bytes[20];
	char *want;

	for (int i = 0; i < 20; i++)
		bytes[i] = (unsigned char)(0xf0 + i % 16);
	want = ref_b64url(bytes, 20);
	cr_assert_eq(custody_jws_x5t("F0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFFF0F1F2F3", x5t, &err), CUSTODY_OK);
	cr_assert_str_eq(x5t, want);
	cr_assert_eq(strlen(x5t), 27);
	cr_assert_eq(custody_jws_x5t("f0f1f2f3f4f5f6f7f8f9fafbfcfdfefff0f1f2f3", x5t, &err), CUSTODY_OK);
	cr_assert_str_eq(x5t, want);
	cr_assert_eq(custody_jws_x5t("F0F1", x5t, &err), CUSTODY_EUSAGE);
	cr_assert(strstr(err.msg, "40 hex digits") != NULL, "%s", err.msg);
	free(want);
}

/* ---------------------------------------------------------------- RFC 7515 vectors */

static const char rfc_input[] =
	"eyJhbGciOiJSUzI1NiJ9."
	"eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";

/* RFC 7515 A.2: the RSA public key (n, e of the example JWK). */
static const char rfc_rsa_pub[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAofgWCuLjybRlzo0tZWJj\n"
	"NiuSfb4p4fAkd/wWJcyQoTbji9k0l8W26mPddxHmfHQp+Vaw+4qPCJrcS2mJPMEz\n"
	"P1Pt0Bm4d4QlL+yRT+SFd2lZS+pCgNMsD1W/YpRPEwOWvG6b32690r2jZ47soMZo\n"
	"9wGzjb/7OMg0LOL+bSf63kpaSHSXndS5z5rexMdbBYUsLA9e+KXBdQOS+UTo7WTB\n"
	"EMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6/I5IhlJH7aGhyxX\n"
	"FvUK+DWNmoudF8NAco9/h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXp\n"
	"oQIDAQAB\n"
	"-----END PUBLIC KEY-----\n";
static const char rfc_rs256_sig[] =
	"cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W"
	"2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkS"
	"jtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnv"
	"Wh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

/* RFC 7515 A.3: the P-256 public key (x, y of the example JWK) and the
 * raw r||s signature over the header {"alg":"ES256"} and the same payload. */
static const char rfc_ec_pub[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEf83OJ3D2xF1Bg8vub9tLe1gHMzV7\n"
	"6e8Tus9uPHvRVEXH8UTNG72bfocs3+257rn0s2ldbqkLJK2KRiMohYjlrQ==\n"
	"-----END PUBLIC KEY-----\n";
static const char rfc_es256_input[] =
	"eyJhbGciOiJFUzI1NiJ9."
	"eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
static const char rfc_es256_sig[] =
	"DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

Test(rfc7515, rs256_example_signature_verifies_and_a_flipped_bit_does_not)
{
	EVP_PKEY *pub = pem_public(rfc_rsa_pub);
	size_t len;
	unsigned char *sig = ref_b64url_decode(rfc_rs256_sig, &len);
	custody_err err;

	cr_assert_eq(len, 256);
	cr_assert_eq(custody_jws_check_signature(CUSTODY_JWS_RS256, pub, (const unsigned char *)rfc_input,
						 strlen(rfc_input), sig, len, &err),
		     CUSTODY_OK, "%s", err.msg);
	/* PS256 over the same bytes is another signature scheme. */
	cr_assert_eq(custody_jws_check_signature(CUSTODY_JWS_PS256, pub, (const unsigned char *)rfc_input,
						 strlen(rfc_input), sig, len, &err),
		     CUSTODY_EFAIL);
	sig[100] ^= 0x01;
	cr_assert_eq(custody_jws_check_signature(CUSTODY_JWS_RS256, pub, (const unsigned char *)rfc_input,
						 strlen(rfc_input), sig, len, &err),
		     CUSTODY_EFAIL);
	cr_assert(strncmp(err.msg, "bad signature", 13) == 0, "%s", err.msg);
	free(sig);
	EVP_PKEY_free(pub);
}

Test(rfc7515, es256_example_raw_signature_verifies)
{
	EVP_PKEY *pub = pem_public(rfc_ec_pub);
	size_t len;
	unsigned char *sig = ref_b64url_decode(rfc_es256_sig, &len);
	custody_err err;

	cr_assert_eq(len, 64);
	cr_assert_eq(custody_jws_check_signature(CUSTODY_JWS_ES256, pub,
						 (const unsigned char *)rfc_es256_input,
						 strlen(rfc_es256_input), sig, len, &err),
		     CUSTODY_OK, "%s", err.msg);
	/* The RS256 key cannot make ES256 signatures, and vice versa. */
	cr_assert_eq(custody_jws_check_signature(CUSTODY_JWS_RS256, pub,
						 (const unsigned char *)rfc_es256_input,
						 strlen(rfc_es256_input), sig, len, &err),
		     CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "algorithm RS256 does not match the EC-P256 key");
	cr_assert_eq(custody_jws_check_signature(CUSTODY_JWS_ES256, pub,
						 (const unsigned char *)rfc_es256_input,
						 strlen(rfc_es256_input), sig, 63, &err),
		     CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "64 bytes") != NULL, "%s", err.msg);
	free(sig);
	EVP_PKEY_free(pub);
}

/* ---------------------------------------------------------------- ECDSA forms */

Test(ecdsa, der_and_raw_round_trip_with_short_r)
{
	unsigned char raw[64], back[64], *der = NULL;
	size_t der_len = 0;
	custody_err err;

	memset(raw, 0, 32);
	raw[31] = 0x7f;	/* r = 127: one DER byte, padded back to 32 */
	for (int i = 32; i < 64; i++)
		raw[i] = (unsigned char)(0x80 + i);	/* s with the top bit set */
	cr_assert_eq(custody_jws_ecdsa_raw_to_der(raw, 64, &der, &der_len, &err), CUSTODY_OK);
	/* SEQUENCE { INTEGER 127, INTEGER 0x00 a0 a1 ... } */
	cr_assert_eq(der[0], 0x30);
	cr_assert_eq(der[2], 0x02);
	cr_assert_eq(der[3], 0x01);
	cr_assert_eq(der[4], 0x7f);
	cr_assert_eq(der[6], 33);
	cr_assert_eq(der[7], 0x00);
	cr_assert_eq(der_len, 2 + 3 + 2 + 33);
	cr_assert_eq(custody_jws_ecdsa_der_to_raw(der, der_len, 32, back, &err), CUSTODY_OK);
	cr_assert_eq(memcmp(raw, back, 64), 0);
	/* Trailing bytes, truncation, and an r too long for the field. */
	cr_assert_eq(custody_jws_ecdsa_der_to_raw(der, der_len - 1, 32, back, &err), CUSTODY_EFAIL);
	der = OPENSSL_realloc(der, der_len + 1);
	der[der_len] = 0;
	cr_assert_eq(custody_jws_ecdsa_der_to_raw(der, der_len + 1, 32, back, &err), CUSTODY_EFAIL);
	cr_assert_eq(custody_jws_ecdsa_der_to_raw(der, der_len, 16, back, &err), CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "longer than 16 bytes") != NULL, "%s", err.msg);
	OPENSSL_free(der);
	cr_assert_eq(custody_jws_ecdsa_raw_to_der(raw, 63, &der, &der_len, &err), CUSTODY_EFAIL);
	cr_assert_null(der);
}

/* ---------------------------------------------------------------- round trips */

struct rt_case {
	const char *spec, *alg;
};

static void
round_trip(const char *spec, const char *alg)
{
	struct ident id;
	char *token, *claims = NULL, *dot, want_header[256];
	unsigned char *hdr, *payload, *sig;
	size_t hlen, plen, slen, which = 99;
	json_t *c;
	custody_err err;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;

	make_ident(&id, spec, "jws.custody.test");
	token = issue(&id, alg, "{\"iss\":\"custody\",\"aud\":\"00000002-0000-0ff1-ce00-000000000000\"}",
		      NOW, 3600);
	cr_assert_eq(custody_jws_verify(token, &id.rec, 1, NOW, 60, &claims, &which, &err),
		     CUSTODY_OK, "%s: %s", alg, err.msg);
	cr_assert_eq(which, 0);

	/* The header, byte for byte. */
	dot = strchr(token, '.');
	*dot = '\0';
	hdr = ref_b64url_decode(token, &hlen);
	snprintf(want_header, sizeof(want_header),
		 "{\"alg\":\"%s\",\"typ\":\"JWT\",\"x5t\":\"%s\",\"kid\":\"%s\"}", alg, id.x5t, id.x5t);
	cr_assert_eq(hlen, strlen(want_header));
	cr_assert_eq(memcmp(hdr, want_header, hlen), 0, "%.*s", (int)hlen, hdr);
	*dot = '.';

	/* The claims: those given, then iat, nbf, exp; verify returns them as signed. */
	dot = strchr(dot + 1, '.');
	*dot = '\0';
	payload = ref_b64url_decode(strchr(token, '.') + 1, &plen);
	cr_assert_eq(plen, strlen(claims));
	cr_assert_eq(memcmp(payload, claims, plen), 0);
	c = json_loads(claims, 0, NULL);
	cr_assert_not_null(c);
	cr_assert_str_eq(json_string_value(json_object_get(c, "iss")), "custody");
	cr_assert_eq(json_integer_value(json_object_get(c, "iat")), NOW);
	cr_assert_eq(json_integer_value(json_object_get(c, "nbf")), NOW);
	cr_assert_eq(json_integer_value(json_object_get(c, "exp")), NOW + 3600);

	/* The signature verifies with plain OpenSSL over "HEADER.PAYLOAD". */
	sig = ref_b64url_decode(dot + 1, &slen);
	cr_assert_eq(EVP_DigestVerifyInit(m, &pctx, EVP_sha256(), NULL, id.key), 1);
	if (strcmp(alg, "PS256") == 0) {
		cr_assert_eq(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
		cr_assert_eq(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32), 1);
	}
	if (strcmp(alg, "ES256") == 0) {
		ECDSA_SIG *es = ECDSA_SIG_new();
		unsigned char *der = NULL;
		int dlen;

		cr_assert_eq(slen, 64);
		ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
		dlen = i2d_ECDSA_SIG(es, &der);
		cr_assert_eq(EVP_DigestVerify(m, der, (size_t)dlen, (unsigned char *)token, strlen(token)), 1);
		OPENSSL_free(der);
		ECDSA_SIG_free(es);
	} else {
		cr_assert_eq(slen, 256);
		cr_assert_eq(EVP_DigestVerify(m, sig, slen, (unsigned char *)token, strlen(token)), 1);
	}
	EVP_MD_CTX_free(m);
	json_decref(c);
	free(hdr);
	free(payload);
	free(sig);
	free(claims);
	free(token);
	free_ident(&id);
}

Test(round_trip, rs256)
{
	round_trip("rsa:2048", "RS256");
}

Test(round_trip, ps256)
{
	round_trip("rsa:2048", "PS256");
}

Test(round_trip, es256)
{
	round_trip("ec:p256", "ES256");
}

Test(round_trip, explicit_kid_and_exp_are_kept)
{
	struct ident id;
	struct soft s;
	char *token = NULL, *claims = NULL;
	unsigned char *hdr;
	size_t hlen;
	custody_err err;
	json_t *h, *c;

	make_ident(&id, "ec:p256", "kid.custody.test");
	s.key = id.key;
	s.force_len = 0;
	s.fail = 0;
	s.pss_salt = 0;
	cr_assert_eq(custody_jws_issue("{\"exp\":1900000100,\"iat\":1899999999}", NOW, 0, "ES256",
				       id.rec.thumbprint, "key-2030", soft_sign, &s, &token, &err),
		     CUSTODY_OK, "%s", err.msg);
	*strchr(token, '.') = '\0';
	hdr = ref_b64url_decode(token, &hlen);
	h = json_loadb((char *)hdr, hlen, 0, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(h, "kid")), "key-2030");
	cr_assert_str_eq(json_string_value(json_object_get(h, "x5t")), id.x5t);
	token[strlen(token)] = '.';
	cr_assert_eq(custody_jws_verify(token, &id.rec, 1, NOW, 0, &claims, NULL, &err), CUSTODY_OK,
		     "%s", err.msg);
	c = json_loads(claims, 0, NULL);
	cr_assert_eq(json_integer_value(json_object_get(c, "exp")), 1900000100);
	cr_assert_eq(json_integer_value(json_object_get(c, "iat")), 1899999999);
	json_decref(h);
	json_decref(c);
	free(hdr);
	free(claims);
	free(token);
	free_ident(&id);
}

/* ---------------------------------------------------------------- candidates */

Test(candidates, previous_verifies_and_pending_only_when_passed)
{
	struct ident cur, prev, pend;
	custody_cert_record set[3];
	char *by_prev, *by_pend;
	size_t which = 99;
	custody_err err;

	make_ident(&cur, "rsa:2048", "current.custody.test");
	make_ident(&prev, "ec:p256", "previous.custody.test");
	make_ident(&pend, "rsa:2048", "pending.custody.test");
	set[0] = cur.rec;
	set[1] = prev.rec;
	set[2] = pend.rec;
	by_prev = issue(&prev, "ES256", "{}", NOW, 600);
	by_pend = issue(&pend, "RS256", "{}", NOW, 600);

	cr_assert_eq(custody_jws_verify(by_prev, set, 2, NOW, 60, NULL, &which, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(which, 1);
	/* Pending not yet due: the caller leaves it out, and it is unknown. */
	cr_assert_eq(custody_jws_verify(by_pend, set, 2, NOW, 60, NULL, &which, &err), CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "unknown x5t ") != NULL, "%s", err.msg);
	cr_assert(strstr(err.msg, pend.rec.thumbprint) != NULL, "%s", err.msg);
	/* Once due, it is passed in and accepted. */
	cr_assert_eq(custody_jws_verify(by_pend, set, 3, NOW, 60, NULL, &which, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(which, 2);
	/* No candidates at all. */
	cr_assert_eq(custody_jws_verify(by_prev, NULL, 0, NOW, 60, NULL, NULL, &err), CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "unknown x5t") != NULL, "%s", err.msg);
	free(by_prev);
	free(by_pend);
	free_ident(&cur);
	free_ident(&prev);
	free_ident(&pend);
}

/* ---------------------------------------------------------------- bad tokens */

struct bad_fixture {
	struct ident rsa, ec;
	char *good;	/* RS256 by rsa, valid at NOW */
};
static struct bad_fixture fx;

static void
bad_setup(void)
{
	make_ident(&fx.rsa, "rsa:2048", "rsa.custody.test");
	make_ident(&fx.ec, "ec:p256", "ec.custody.test");
	fx.good = issue(&fx.rsa, "RS256", "{\"sub\":\"x\"}", NOW, 600);
}

static void
bad_teardown(void)
{
	free(fx.good);
	free_ident(&fx.rsa);
	free_ident(&fx.ec);
}

TestSuite(bad, .init = bad_setup, .fini = bad_teardown);

Test(bad, the_good_token_verifies)
{
	custody_err err;

	cr_assert_eq(verify1(fx.good, &fx.rsa, &err), CUSTODY_OK, "%s", err.msg);
}

Test(bad, malformed_part_counts)
{
	char *dot = strrchr(fx.good, '.'), buf[8192];

	assert_refused("", &fx.rsa, "malformed token: it is empty");
	assert_refused("abc", &fx.rsa, "malformed token: expected three base64url parts");
	*dot = '\0';
	assert_refused(fx.good, &fx.rsa, "malformed token: expected three base64url parts");
	*dot = '.';
	snprintf(buf, sizeof(buf), "%s.e30", fx.good);
	assert_refused(buf, &fx.rsa, "malformed token: expected three base64url parts");
	assert_refused(".e30.abc", &fx.rsa, "malformed token: the header part is empty");
	snprintf(buf, sizeof(buf), "%.*s..abc", (int)(strchr(fx.good, '.') - fx.good), fx.good);
	assert_refused(buf, &fx.rsa, "malformed token: the claims part is empty");
}

Test(bad, bad_base64url)
{
	char buf[8192];
	char *p;

	snprintf(buf, sizeof(buf), "%s=", fx.good);
	assert_refused(buf, &fx.rsa, "bad base64url in the signature: '=' padding is not allowed");
	snprintf(buf, sizeof(buf), "%s\n", fx.good);
	assert_refused(buf, &fx.rsa, "bad base64url in the signature: byte 0x0a");
	snprintf(buf, sizeof(buf), "%s", fx.good);
	buf[3] = '+';
	assert_refused(buf, &fx.rsa, "bad base64url in the header: character '+' at offset 3");
	snprintf(buf, sizeof(buf), "%s", fx.good);
	p = strchr(buf, '.') + 1;
	p[2] = '/';
	assert_refused(buf, &fx.rsa, "bad base64url in the claims: character '/' at offset 2");
	snprintf(buf, sizeof(buf), "%s", fx.good);
	p = strchr(buf, '.');
	memmove(p + 2, p, strlen(p) + 1);
	p[0] = ' ';
	p[1] = 'A';
	assert_refused(buf, &fx.rsa, "bad base64url in the header: byte 0x20");
}

Test(bad, wrong_signature)
{
	char buf[8192], *s, *enc;
	unsigned char *sig;
	size_t len;

	snprintf(buf, sizeof(buf), "%s", fx.good);
	s = strrchr(buf, '.') + 1;
	sig = ref_b64url_decode(s, &len);
	sig[len / 2] ^= 0x80;
	enc = ref_b64url(sig, len);
	strcpy(s, enc);
	assert_refused(buf, &fx.rsa, "bad signature: it does not verify with the RSA-2048 key of certificate");
	free(enc);
	free(sig);
	/* A changed claim under the old signature. */
	snprintf(buf, sizeof(buf), "%s", fx.good);
	s = strchr(buf, '.') + 1;
	s[5] = s[5] == 'A' ? 'B' : 'A';
	assert_refused(buf, &fx.rsa, "bad signature");
	/* A truncated RSA signature. */
	snprintf(buf, sizeof(buf), "%s", fx.good);
	s = strrchr(buf, '.') + 1;
	sig = ref_b64url_decode(s, &len);
	enc = ref_b64url(sig, len - 3);
	strcpy(s, enc);
	assert_refused(buf, &fx.rsa, "bad signature: 253 bytes where the RSA-2048 key");
	free(enc);
	free(sig);
}

Test(bad, unknown_x5t)
{
	custody_err err;

	cr_assert_eq(verify1(fx.good, &fx.ec, &err), CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "unknown x5t ") != NULL, "%s", err.msg);
	cr_assert(strstr(err.msg, fx.rsa.x5t) != NULL, "%s", err.msg);
	cr_assert(strstr(err.msg, fx.rsa.rec.thumbprint) != NULL, "%s", err.msg);
}

Test(bad, expired_with_and_without_skew)
{
	char *t;
	custody_err err;

	/* exp = NOW - 61: past the 60 s skew. */
	t = issue(&fx.rsa, "RS256", "{}", NOW - 661, 600);
	assert_refused(t, &fx.rsa, "token expired at 2030-03-17T17:45:39Z (now 2030-03-17T17:46:40Z, allowed skew 60 s)");
	free(t);
	/* exp = NOW - 60: the boundary is expired too (now - skew >= exp). */
	t = issue(&fx.rsa, "RS256", "{}", NOW - 660, 600);
	assert_refused(t, &fx.rsa, "token expired");
	free(t);
	/* exp = NOW - 59: inside the skew, accepted; refused with no skew. */
	t = issue(&fx.rsa, "RS256", "{}", NOW - 659, 600);
	cr_assert_eq(verify1(t, &fx.rsa, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_jws_verify(t, &fx.rsa.rec, 1, NOW, 0, NULL, NULL, &err), CUSTODY_EFAIL);
	free(t);
	cr_assert_eq(custody_jws_verify(fx.good, &fx.rsa.rec, 1, NOW, -1, NULL, NULL, &err), CUSTODY_EUSAGE);
}

Test(bad, not_yet_valid)
{
	char *t;
	custody_err err;

	t = issue(&fx.rsa, "RS256", "{\"nbf\":1900001000}", NOW, 3600);
	assert_refused(t, &fx.rsa, "token not yet valid: valid from 2030-03-17T18:03:20Z (now 2030-03-17T17:46:40Z");
	free(t);
	t = issue(&fx.rsa, "RS256", "{\"nbf\":1900000060}", NOW, 3600);
	cr_assert_eq(verify1(t, &fx.rsa, &err), CUSTODY_OK, "nbf within the skew: %s", err.msg);
	free(t);
}

Test(bad, missing_or_non_numeric_exp)
{
	char *t;

	t = forge(&fx.rsa, CUSTODY_JWS_RS256, header_for("RS256", &fx.rsa), "{\"iat\":1900000000}");
	assert_refused(t, &fx.rsa, "token has no exp claim");
	free(t);
	t = forge(&fx.rsa, CUSTODY_JWS_RS256, header_for("RS256", &fx.rsa), "{\"exp\":\"1900000600\"}");
	assert_refused(t, &fx.rsa, "malformed claims: exp is not a number");
	free(t);
}

Test(bad, alg_none)
{
	char hdr[256], buf[8192], *h;

	snprintf(hdr, sizeof(hdr), "{\"alg\":\"none\",\"typ\":\"JWT\",\"x5t\":\"%s\"}", fx.rsa.x5t);
	h = ref_b64url_str(hdr);
	/* An unsecured JWS (empty signature), and one carrying a real signature. */
	snprintf(buf, sizeof(buf), "%s%s", h, strchr(fx.good, '.'));
	strrchr(buf, '.')[1] = '\0';
	assert_refused(buf, &fx.rsa, "algorithm none is refused");
	snprintf(buf, sizeof(buf), "%s%s", h, strchr(fx.good, '.'));
	assert_refused(buf, &fx.rsa, "algorithm none is refused");
	free(h);
	h = forge(&fx.rsa, CUSTODY_JWS_RS256,
		  "{\"alg\":\"None\",\"x5t\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAA\"}", "{}");
	assert_refused(h, &fx.rsa, "algorithm none is refused");
	free(h);
}

Test(bad, alg_that_does_not_match_the_key)
{
	char *t, want[256];

	/* ES256 claimed for the RSA key (signed with RS256 bytes). */
	t = forge(&fx.rsa, CUSTODY_JWS_RS256, header_for("ES256", &fx.rsa), "{\"exp\":1900000600}");
	snprintf(want, sizeof(want), "algorithm ES256 does not match the RSA-2048 key of certificate %s",
		 fx.rsa.rec.thumbprint);
	assert_refused(t, &fx.rsa, want);
	free(t);
	/* RS256 and PS256 claimed for the EC key. */
	t = forge(&fx.ec, CUSTODY_JWS_ES256, header_for("RS256", &fx.ec), "{\"exp\":1900000600}");
	assert_refused(t, &fx.ec, "algorithm RS256 does not match the EC-P256 key");
	free(t);
	t = forge(&fx.ec, CUSTODY_JWS_ES256, header_for("PS256", &fx.ec), "{\"exp\":1900000600}");
	assert_refused(t, &fx.ec, "algorithm PS256 does not match the EC-P256 key");
	free(t);
	/* RS256 bytes presented as PS256: same key type, wrong scheme. */
	t = forge(&fx.rsa, CUSTODY_JWS_RS256, header_for("PS256", &fx.rsa), "{\"exp\":1900000600}");
	assert_refused(t, &fx.rsa, "bad signature");
	free(t);
	/* HMAC algorithms (key confusion) and others are refused outright. */
	t = forge(&fx.rsa, CUSTODY_JWS_RS256, header_for("HS256", &fx.rsa), "{\"exp\":1900000600}");
	assert_refused(t, &fx.rsa, "unsupported algorithm 'HS256'");
	free(t);
	t = forge(&fx.rsa, CUSTODY_JWS_RS256, header_for("rs256", &fx.rsa), "{\"exp\":1900000600}");
	assert_refused(t, &fx.rsa, "unsupported algorithm 'rs256'");
	free(t);
}

Test(bad, ps256_with_another_salt_length)
{
	struct soft s = {fx.rsa.key, 0, 0, 20};
	char *token = NULL;
	custody_err err;

	/* RFC 7518 §3.5: the salt is as long as the hash (32 bytes); a PSS
	 * signature with a 20-byte salt is not PS256. */
	cr_assert_eq(custody_jws_issue("{}", NOW, 600, "PS256", fx.rsa.rec.thumbprint, NULL,
				       soft_sign, &s, &token, &err), CUSTODY_OK, "%s", err.msg);
	assert_refused(token, &fx.rsa, "bad signature");
	free(token);
}

Test(bad, es256_with_a_p384_key)
{
	struct ident p384;
	char *t, want[256];
	custody_err err;

	make_ident(&p384, "ec:p384", "p384.custody.test");
	t = forge(&p384, CUSTODY_JWS_RS256, header_for("ES256", &p384), "{\"exp\":1900000600}");
	cr_assert_eq(verify1(t, &p384, &err), CUSTODY_EFAIL);
	snprintf(want, sizeof(want), "algorithm ES256 does not match the EC-P384 key of certificate %s",
		 p384.rec.thumbprint);
	cr_assert_str_eq(err.msg, want);
	free(t);
	free_ident(&p384);
}

Test(bad, header_not_an_object_or_incomplete)
{
	char *t, hdr[256];

	t = forge(&fx.rsa, CUSTODY_JWS_RS256, "[\"RS256\"]", "{}");
	assert_refused(t, &fx.rsa, "malformed header: not a JSON object");
	free(t);
	t = forge(&fx.rsa, CUSTODY_JWS_RS256, "\"RS256\"", "{}");
	assert_refused(t, &fx.rsa, "malformed header: not a JSON object");
	free(t);
	t = forge(&fx.rsa, CUSTODY_JWS_RS256, "{\"alg\":\"RS256\"", "{}");
	assert_refused(t, &fx.rsa, "malformed header: ");
	free(t);
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"alg\":\"none\",\"x5t\":\"%s\"}", fx.rsa.x5t);
	t = forge(&fx.rsa, CUSTODY_JWS_RS256, hdr, "{\"exp\":1900000600}");
	assert_refused(t, &fx.rsa, "malformed header: duplicate object key");
	free(t);
	t = forge(&fx.rsa, CUSTODY_JWS_RS256, "{\"alg\":\"RS256\"}", "{\"exp\":1900000600}");
	assert_refused(t, &fx.rsa, "token has no x5t header");
	free(t);
	t = forge(&fx.rsa, CUSTODY_JWS_RS256, "{\"typ\":\"JWT\"}", "{}");
	assert_refused(t, &fx.rsa, "malformed header: alg is missing or not a string");
	free(t);
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"typ\":\"JOSE+JSON\",\"x5t\":\"%s\"}", fx.rsa.x5t);
	t = forge(&fx.rsa, CUSTODY_JWS_RS256, hdr, "{\"exp\":1900000600}");
	assert_refused(t, &fx.rsa, "unsupported typ");
	free(t);
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"crit\":[\"exp\"],\"x5t\":\"%s\"}", fx.rsa.x5t);
	t = forge(&fx.rsa, CUSTODY_JWS_RS256, hdr, "{\"exp\":1900000600}");
	assert_refused(t, &fx.rsa, "unsupported header: crit");
	free(t);
	t = forge(&fx.rsa, CUSTODY_JWS_RS256, "{\"alg\":\"RS256\",\"x5t\":\"a b\"}", "{}");
	assert_refused(t, &fx.rsa, "malformed header: x5t is not a base64url thumbprint");
	free(t);
}

Test(bad, header_without_typ_is_accepted)
{
	char hdr[256], *t;
	custody_err err;

	snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"x5t\":\"%s\"}", fx.rsa.x5t);
	t = forge(&fx.rsa, CUSTODY_JWS_RS256, hdr, "{\"exp\":1900000600}");
	cr_assert_eq(verify1(t, &fx.rsa, &err), CUSTODY_OK, "%s", err.msg);
	free(t);
}

Test(bad, claims_not_an_object_when_verifying)
{
	char *t;

	t = forge(&fx.rsa, CUSTODY_JWS_RS256, header_for("RS256", &fx.rsa), "[1,2]");
	assert_refused(t, &fx.rsa, "malformed claims: not a JSON object");
	free(t);
	t = forge(&fx.rsa, CUSTODY_JWS_RS256, header_for("RS256", &fx.rsa), "1900000600");
	assert_refused(t, &fx.rsa, "malformed claims: not a JSON object");
	free(t);
	t = forge(&fx.rsa, CUSTODY_JWS_RS256, header_for("RS256", &fx.rsa),
		  "{\"exp\":1900000600,\"exp\":1}");
	assert_refused(t, &fx.rsa, "malformed claims: duplicate object key");
	free(t);
}

Test(bad, too_long)
{
	size_t n = CUSTODY_JWS_MAX_TOKEN + 10;
	char *t = malloc(n + 1);

	memset(t, 'A', n);
	t[10] = '.';
	t[20] = '.';
	t[n] = '\0';
	assert_refused(t, &fx.rsa, "malformed token: longer than 65536 bytes");
	free(t);
}

/* ---------------------------------------------------------------- issue refusals */

static int
try_issue(struct ident *id, const char *claims, int64_t lifetime, const char *alg,
	  const char *thumb, struct soft *s, custody_err *err)
{
	char *token = (char *)"untouched";
	int r = custody_jws_issue(claims, NOW, lifetime, alg, thumb, NULL, soft_sign, s,
				  &token, err);

	if (r != CUSTODY_OK)
		cr_assert_null(token, "no token on failure");
	else
		free(token);
	(void)id;
	return r;
}

Test(issue, refuses_bad_claims_alg_thumbprint_and_lifetime)
{
	struct ident id;
	struct soft s;
	custody_err err;

	make_ident(&id, "rsa:2048", "issue.custody.test");
	s.key = id.key;
	s.force_len = 0;
	s.fail = 0;
	s.pss_salt = 0;
	cr_assert_eq(try_issue(&id, "[1]", 60, "RS256", id.rec.thumbprint, &s, &err), CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "claims are not a JSON object");
	cr_assert_eq(try_issue(&id, "\"sub\"", 60, "RS256", id.rec.thumbprint, &s, &err), CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "claims are not a JSON object");
	cr_assert_eq(try_issue(&id, "{\"a\":", 60, "RS256", id.rec.thumbprint, &s, &err), CUSTODY_EUSAGE);
	cr_assert(strncmp(err.msg, "claims are not valid JSON: ", 27) == 0, "%s", err.msg);
	cr_assert_eq(try_issue(&id, "{\"a\":1,\"a\":2}", 60, "RS256", id.rec.thumbprint, &s, &err),
		     CUSTODY_EUSAGE);
	cr_assert_eq(try_issue(&id, NULL, 60, "RS256", id.rec.thumbprint, &s, &err), CUSTODY_EUSAGE);
	cr_assert_eq(try_issue(&id, "{\"iat\":\"now\"}", 60, "RS256", id.rec.thumbprint, &s, &err),
		     CUSTODY_EUSAGE);
	cr_assert(strstr(err.msg, "iat is not a number") != NULL, "%s", err.msg);
	cr_assert_eq(try_issue(&id, "{}", 0, "RS256", id.rec.thumbprint, &s, &err), CUSTODY_EUSAGE);
	cr_assert(strstr(err.msg, "must be a positive number of seconds") != NULL, "%s", err.msg);
	cr_assert_eq(try_issue(&id, "{}", -5, "RS256", id.rec.thumbprint, &s, &err), CUSTODY_EUSAGE);
	cr_assert_eq(try_issue(&id, "{}", 60, "none", id.rec.thumbprint, &s, &err), CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "unsupported algorithm 'none': use RS256, PS256 or ES256");
	cr_assert_eq(try_issue(&id, "{}", 60, "HS256", id.rec.thumbprint, &s, &err), CUSTODY_EUSAGE);
	cr_assert_eq(try_issue(&id, "{}", 60, "RS256", "ABCDEF", &s, &err), CUSTODY_EUSAGE);
	cr_assert(strstr(err.msg, "40 hex digits") != NULL, "%s", err.msg);
	free_ident(&id);
}

Test(issue, signer_failures_are_passed_on)
{
	struct ident id;
	struct soft s;
	custody_err err;

	make_ident(&id, "ec:p256", "signer.custody.test");
	s.key = id.key;
	s.force_len = 0;
	s.fail = 1;
	s.pss_salt = 0;
	cr_assert_eq(try_issue(&id, "{}", 60, "ES256", id.rec.thumbprint, &s, &err), CUSTODY_EPIN);
	cr_assert_str_eq(err.msg, "token: the token rejected the PIN");
	s.fail = 0;
	s.force_len = 72;	/* a DER signature where raw r||s belongs */
	cr_assert_eq(try_issue(&id, "{}", 60, "ES256", id.rec.thumbprint, &s, &err), CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "the signer returned 72 bytes for ES256, not a raw r||s of 64 bytes");
	free_ident(&id);
}

Test(names, algorithms)
{
	cr_assert_eq(custody_jws_alg_from_name("RS256"), CUSTODY_JWS_RS256);
	cr_assert_eq(custody_jws_alg_from_name("PS256"), CUSTODY_JWS_PS256);
	cr_assert_eq(custody_jws_alg_from_name("ES256"), CUSTODY_JWS_ES256);
	cr_assert_eq(custody_jws_alg_from_name("es256"), CUSTODY_JWS_ALG_NONE);
	cr_assert_eq(custody_jws_alg_from_name("none"), CUSTODY_JWS_ALG_NONE);
	cr_assert_eq(custody_jws_default_alg("RSA-2048"), CUSTODY_JWS_RS256);
	cr_assert_eq(custody_jws_default_alg("RSA-4096"), CUSTODY_JWS_RS256);
	cr_assert_eq(custody_jws_default_alg("RSA-PSS-2048"), CUSTODY_JWS_ALG_NONE);
	cr_assert_eq(custody_jws_default_alg("EC-P256"), CUSTODY_JWS_ES256);
	cr_assert_eq(custody_jws_default_alg("EC-P384"), CUSTODY_JWS_ALG_NONE);
	cr_assert_str_eq(custody_jws_alg_name(CUSTODY_JWS_PS256), "PS256");
	cr_assert_str_eq(custody_jws_alg_name(42), "");
}

/* ------------------------------------------------- the signing certificate */

Test(verify, refuses_a_token_signed_by_an_expired_certificate)
{
	struct ident old, early;
	char *by_old, *by_early;
	custody_err err;

	/* Valid from NOW - 400 days for 365 days: expired 35 days ago. */
	make_ident_valid(&old, "rsa:2048", "expired.custody.test", -400L * 86400, 365);
	/* Valid from NOW + 1 day. */
	make_ident_valid(&early, "ec:p256", "early.custody.test", 86400, 365);
	by_old = issue(&old, "RS256", "{}", NOW, 600);
	by_early = issue(&early, "ES256", "{}", NOW, 600);
	cr_assert_eq(verify1(by_old, &old, &err), CUSTODY_EFAIL,
		     "a token signed by an expired certificate was accepted");
	cr_assert(strstr(err.msg, "the certificate that signed the token") != NULL &&
		  strstr(err.msg, "expired at") != NULL, "%s", err.msg);
	cr_assert_eq(verify1(by_early, &early, &err), CUSTODY_EFAIL,
		     "a token signed by a certificate not valid yet was accepted");
	cr_assert(strstr(err.msg, "is not valid before") != NULL, "%s", err.msg);
	free(by_old);
	free(by_early);
	free_ident(&old);
	free_ident(&early);
}

Test(verify, audience_and_issuer_when_asked)
{
	struct ident id;
	custody_jws_expect want = {"partner", "https://sts.contoso.example"};
	custody_jws_expect aud_only = {"partner", NULL};
	char *good, *many, *other, *bare;
	custody_err err;

	make_ident(&id, "rsa:2048", "aud.custody.test");
	good = issue(&id, "RS256",
		     "{\"aud\":\"partner\",\"iss\":\"https://sts.contoso.example\"}", NOW, 600);
	many = issue(&id, "RS256", "{\"aud\":[\"a\",\"partner\"],\"iss\":\"https://evil.example\"}",
		     NOW, 600);
	other = issue(&id, "RS256", "{\"aud\":\"someone-else\"}", NOW, 600);
	bare = issue(&id, "RS256", "{}", NOW, 600);
	cr_assert_eq(custody_jws_verify_expect(good, &id.rec, 1, NOW, 60, &want, NULL, NULL, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_jws_verify_expect(many, &id.rec, 1, NOW, 60, &aud_only, NULL, NULL,
					       &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_jws_verify_expect(many, &id.rec, 1, NOW, 60, &want, NULL, NULL, &err),
		     CUSTODY_EFAIL, "a token of another issuer was accepted");
	cr_assert(strstr(err.msg, "token was issued by https://evil.example, not "
			 "https://sts.contoso.example") != NULL, "%s", err.msg);
	cr_assert_eq(custody_jws_verify_expect(other, &id.rec, 1, NOW, 60, &aud_only, NULL, NULL,
					       &err), CUSTODY_EFAIL,
		     "a token for another audience was accepted");
	cr_assert(strstr(err.msg, "token is for audience someone-else, not partner") != NULL,
		  "%s", err.msg);
	cr_assert_eq(custody_jws_verify_expect(bare, &id.rec, 1, NOW, 60, &want, NULL, NULL, &err),
		     CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "token has no aud claim") != NULL, "%s", err.msg);
	/* Not asked for: not checked. */
	cr_assert_eq(custody_jws_verify_expect(bare, &id.rec, 1, NOW, 60, NULL, NULL, NULL, &err),
		     CUSTODY_OK, "%s", err.msg);
	free(good);
	free(many);
	free(other);
	free(bare);
	free_ident(&id);
}
