/* test_agent_wire.c — the agent's frames: every kind through the encoder
 * and back, and a table of frames the decoder must refuse, each with the
 * message it must give. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <custody/agent_wire.h>

#include "unit/testcerts.h"

#define TP "0123456789ABCDEF0123456789ABCDEF01234567"
#define TP2 "FEDCBA9876543210FEDCBA9876543210FEDCBA98"

/* Tags, as custody/agent_wire.h fixes them. */
enum {
	T_TYPE = 1, T_IDENTITY, T_WHICH, T_SCHEME, T_HASH, T_DIGEST,
	T_SIGNATURE, T_THUMBPRINT, T_CERTIFICATE, T_CHAIN, T_CLAIMS,
	T_LIFETIME, T_ALG, T_TOKEN, T_ENTRY, T_CODE, T_MESSAGE
};

/* ---------------------------------------------------------------- helpers */

/* A frame written by hand, byte by byte, for what the encoder won't make. */
struct frame {
	unsigned char b[CUSTODY_AGENT_FRAME_BUF + 4096];
	size_t n;
};

static struct frame *
frame_new(int version, int kind)
{
	struct frame *f = calloc(1, sizeof(*f));

	cr_assert_not_null(f);
	f->b[4] = (unsigned char)version;
	f->b[5] = (unsigned char)kind;
	f->n = 6;
	return f;
}

static void
frame_field(struct frame *f, int tag, const void *v, size_t n)
{
	cr_assert_leq(f->n + 3 + n, sizeof(f->b));
	f->b[f->n++] = (unsigned char)tag;
	f->b[f->n++] = (unsigned char)(n >> 8);
	f->b[f->n++] = (unsigned char)n;
	if (n > 0)
		memcpy(f->b + f->n, v, n);
	f->n += n;
}

static void
frame_text(struct frame *f, int tag, const char *s)
{
	frame_field(f, tag, s, strlen(s));
}

static void
frame_byte(struct frame *f, int tag, unsigned char v)
{
	frame_field(f, tag, &v, 1);
}

static void
frame_u32(struct frame *f, int tag, uint32_t v)
{
	unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
			      (unsigned char)(v >> 8), (unsigned char)v};

	frame_field(f, tag, b, 4);
}

/* Sets the length prefix from what was written; returns the frame size. */
static size_t
frame_end(struct frame *f)
{
	size_t l = f->n - 4;

	f->b[0] = (unsigned char)(l >> 24);
	f->b[1] = (unsigned char)(l >> 16);
	f->b[2] = (unsigned char)(l >> 8);
	f->b[3] = (unsigned char)l;
	return f->n;
}

/* A nested entry's field sequence. */
static size_t
entry_bytes(unsigned char *out, const char *type, const char *identity,
	    const char *tp, const char *which)
{
	struct frame *f = frame_new(1, 8);
	size_t n;

	f->n = 0;
	if (type != NULL)
		frame_text(f, T_TYPE, type);
	if (identity != NULL)
		frame_text(f, T_IDENTITY, identity);
	if (tp != NULL)
		frame_text(f, T_THUMBPRINT, tp);
	if (which != NULL)
		frame_text(f, T_WHICH, which);
	memcpy(out, f->b, f->n);
	n = f->n;
	free(f);
	return n;
}

static void
refused(const unsigned char *b, size_t n, const char *msg)
{
	custody_agent_msg *m = malloc(sizeof(*m));
	custody_err err = {0};

	cr_assert_not_null(m);
	memset(m, 0x5a, sizeof(*m));
	cr_assert_eq(custody_agent_wire_decode(b, n, m, &err), CUSTODY_EFAIL,
		     "accepted; expected: %s", msg);
	cr_assert_eq(err.code, CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, msg);
	/* Left cleared: nothing to free, nothing kept. */
	cr_assert_eq(m->kind, 0);
	cr_assert_eq(m->u.list_response.entries, NULL);
	free(m);
}

static void
frame_refused(struct frame *f, const char *msg)
{
	refused(f->b, frame_end(f), msg);
	free(f);
}

static unsigned char *
cert_der(const char *cn, size_t n_dns, size_t *len)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	const char **dns = calloc(n_dns + 1, sizeof(*dns));
	char (*names)[32] = calloc(n_dns + 1, sizeof(*names));
	unsigned char *der = NULL;
	X509 *x;
	int l;

	cr_assert(dns != NULL && names != NULL);
	for (size_t i = 0; i < n_dns; i++) {
		snprintf(names[i], sizeof(names[i]), "host%05zu.custody.test", i);
		dns[i] = names[i];
	}
	x = testcert_self_signed(key, cn, dns, -60, 30);
	l = i2d_X509(x, &der);
	cr_assert_gt(l, 0);
	*len = (size_t)l;
	X509_free(x);
	EVP_PKEY_free(key);
	free(dns);
	free(names);
	return der;
}

/* A certificate of about `size` bytes: a long comment extension. */
static unsigned char *
big_cert_der(size_t size, size_t *len)
{
	EVP_PKEY *key = testcert_key("ec:p256");
	X509 *x = testcert_self_signed(key, "big.custody.test", NULL, -60, 30);
	char *comment = malloc(size + 1);
	unsigned char *der = NULL;
	X509_EXTENSION *ext;
	int l;

	cr_assert_not_null(comment);
	memset(comment, 'c', size);
	comment[size] = '\0';
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_netscape_comment, comment);
	cr_assert_not_null(ext);
	cr_assert_eq(X509_add_ext(x, ext, -1), 1);
	cr_assert_gt(X509_sign(x, key, EVP_sha256()), 0);
	l = i2d_X509(x, &der);
	cr_assert_gt(l, 0);
	*len = (size_t)l;
	X509_EXTENSION_free(ext);
	X509_free(x);
	EVP_PKEY_free(key);
	free(comment);
	return der;
}

static custody_agent_msg *
msg_new(int kind)
{
	custody_agent_msg *m = calloc(1, sizeof(*m));

	cr_assert_not_null(m);
	m->kind = kind;
	return m;
}

static void
msg_free(custody_agent_msg *m)
{
	custody_agent_msg_clear(m);
	free(m);
}

/* Field by field (not memcmp: the padding of a struct says nothing). */
static int
msg_equal(const custody_agent_msg *a, const custody_agent_msg *b)
{
	const custody_agent_sign_request *sa = &a->u.sign_request, *sb = &b->u.sign_request;
	const custody_agent_cert_response *ca = &a->u.cert_response, *cb = &b->u.cert_response;
	const custody_agent_jwt_request *ja = &a->u.jwt_request, *jb = &b->u.jwt_request;
	const custody_agent_list_response *la = &a->u.list_response, *lb = &b->u.list_response;
	size_t i;

	if (a->kind != b->kind)
		return 0;
	switch (a->kind) {
	case CUSTODY_AGENT_SIGN_REQUEST:
		return strcmp(sa->type, sb->type) == 0 &&
		       strcmp(sa->identity, sb->identity) == 0 &&
		       sa->which == sb->which && sa->scheme == sb->scheme &&
		       sa->hash == sb->hash && sa->digest_len == sb->digest_len &&
		       memcmp(sa->digest, sb->digest, sa->digest_len) == 0 &&
		       strcmp(sa->thumbprint, sb->thumbprint) == 0;
	case CUSTODY_AGENT_SIGN_RESPONSE:
		return strcmp(a->u.sign_response.identity, b->u.sign_response.identity) == 0 &&
		       a->u.sign_response.scheme == b->u.sign_response.scheme &&
		       a->u.sign_response.signature_len == b->u.sign_response.signature_len &&
		       memcmp(a->u.sign_response.signature, b->u.sign_response.signature,
			      a->u.sign_response.signature_len) == 0 &&
		       strcmp(a->u.sign_response.thumbprint, b->u.sign_response.thumbprint) == 0;
	case CUSTODY_AGENT_CERT_REQUEST:
		return strcmp(a->u.cert_request.type, b->u.cert_request.type) == 0 &&
		       strcmp(a->u.cert_request.identity, b->u.cert_request.identity) == 0 &&
		       a->u.cert_request.which == b->u.cert_request.which;
	case CUSTODY_AGENT_CERT_RESPONSE:
		if (ca->certificate_len != cb->certificate_len ||
		    memcmp(ca->certificate, cb->certificate, ca->certificate_len) != 0 ||
		    strcmp(ca->thumbprint, cb->thumbprint) != 0 ||
		    ca->n_chain != cb->n_chain)
			return 0;
		for (i = 0; i < ca->n_chain; i++)
			if (ca->chain[i].len != cb->chain[i].len ||
			    memcmp(ca->chain[i].der, cb->chain[i].der, ca->chain[i].len) != 0)
				return 0;
		return 1;
	case CUSTODY_AGENT_JWT_REQUEST:
		return strcmp(ja->type, jb->type) == 0 &&
		       strcmp(ja->identity, jb->identity) == 0 &&
		       strcmp(ja->claims, jb->claims) == 0 &&
		       ja->lifetime == jb->lifetime && ja->alg == jb->alg;
	case CUSTODY_AGENT_JWT_RESPONSE:
		return strcmp(a->u.jwt_response.token, b->u.jwt_response.token) == 0;
	case CUSTODY_AGENT_LIST_REQUEST:
		return 1;
	case CUSTODY_AGENT_LIST_RESPONSE:
		if (la->n_entries != lb->n_entries)
			return 0;
		for (i = 0; i < la->n_entries; i++)
			if (strcmp(la->entries[i].type, lb->entries[i].type) != 0 ||
			    strcmp(la->entries[i].identity, lb->entries[i].identity) != 0 ||
			    strcmp(la->entries[i].thumbprint, lb->entries[i].thumbprint) != 0 ||
			    la->entries[i].which != lb->entries[i].which)
				return 0;
		return 1;
	case CUSTODY_AGENT_ERROR:
		return a->u.error.code == b->u.error.code &&
		       strcmp(a->u.error.message, b->u.error.message) == 0;
	default:
		return 0;
	}
}

/* Encodes m, decodes the frame, and checks that the same message came
 * back and that the frame's prefix says its size. */
static void
round_trip(const custody_agent_msg *m)
{
	unsigned char *buf = malloc(CUSTODY_AGENT_FRAME_BUF);
	custody_agent_msg *back = malloc(sizeof(*back));
	custody_err err = {0};
	size_t len = 0, total = 0;

	cr_assert(buf != NULL && back != NULL);
	cr_assert_eq(custody_agent_wire_encode(m, buf, CUSTODY_AGENT_FRAME_BUF,
					       &len, &err), CUSTODY_OK,
		     "%s: %s", custody_agent_kind_name(m->kind), err.msg);
	cr_assert_eq(custody_agent_wire_frame_length(buf, &total, &err), CUSTODY_OK);
	cr_assert_eq(total, len);
	cr_assert_eq(buf[4], CUSTODY_AGENT_WIRE_VERSION);
	cr_assert_eq(buf[5], m->kind);
	cr_assert_eq(custody_agent_wire_decode(buf, len, back, &err), CUSTODY_OK,
		     "%s: %s", custody_agent_kind_name(m->kind), err.msg);
	cr_assert(msg_equal(m, back), "%s came back changed",
		  custody_agent_kind_name(m->kind));
	msg_free(back);
	free(buf);
}

/* ---------------------------------------------------------------- messages */

static custody_agent_msg *
sign_request(int full)
{
	custody_agent_msg *m = msg_new(CUSTODY_AGENT_SIGN_REQUEST);
	custody_agent_sign_request *s = &m->u.sign_request;

	strcpy(s->type, "OAuthTokenIssuer");
	s->scheme = CUSTODY_AGENT_RSA_PSS;
	s->hash = CUSTODY_AGENT_SHA256;
	s->digest_len = 32;
	for (size_t i = 0; i < 32; i++)
		s->digest[i] = (unsigned char)(i * 7 + 1);
	if (full) {
		strcpy(s->identity, "fe01.contoso.example");
		s->which = CUSTODY_AGENT_PREVIOUS;
		strcpy(s->thumbprint, TP);
	}
	return m;
}

static custody_agent_msg *
sign_response(void)
{
	custody_agent_msg *m = msg_new(CUSTODY_AGENT_SIGN_RESPONSE);

	m->u.sign_response.signature_len = 256;
	memset(m->u.sign_response.signature, 0xa5, 256);
	m->u.sign_response.signature[0] = 0;	/* a NUL in bytes is fine */
	strcpy(m->u.sign_response.thumbprint, TP);
	strcpy(m->u.sign_response.identity, "global");
	m->u.sign_response.scheme = CUSTODY_AGENT_RSA_PKCS1;
	return m;
}

static custody_agent_msg *
cert_request(int full)
{
	custody_agent_msg *m = msg_new(CUSTODY_AGENT_CERT_REQUEST);

	strcpy(m->u.cert_request.type, "WebServicesInternal");
	if (full) {
		strcpy(m->u.cert_request.identity, "global");
		m->u.cert_request.which = CUSTODY_AGENT_PENDING;
	}
	return m;
}

static custody_agent_msg *
cert_response(size_t n_chain)
{
	custody_agent_msg *m = msg_new(CUSTODY_AGENT_CERT_RESPONSE);
	custody_agent_cert_response *c = &m->u.cert_response;
	unsigned char *der;
	size_t len;

	der = cert_der("leaf.custody.test", 2, &len);
	memcpy(c->certificate, der, len);
	c->certificate_len = len;
	OPENSSL_free(der);
	strcpy(c->thumbprint, TP);
	for (size_t i = 0; i < n_chain; i++) {
		der = cert_der("ca.custody.test", 0, &len);
		c->chain[i].der = malloc(len);
		cr_assert_not_null(c->chain[i].der);
		memcpy(c->chain[i].der, der, len);
		c->chain[i].len = len;
		OPENSSL_free(der);
	}
	c->n_chain = n_chain;
	return m;
}

static custody_agent_msg *
jwt_request(int full)
{
	custody_agent_msg *m = msg_new(CUSTODY_AGENT_JWT_REQUEST);
	custody_agent_jwt_request *j = &m->u.jwt_request;

	strcpy(j->type, "OAuthTokenIssuer");
	strcpy(j->claims, "{\"aud\": \"00000002-0000-0ff1-ce00-000000000000\",\n"
			  "\t\"nameid\": \"Zo\xc3\xab\"}");
	if (full) {
		strcpy(j->identity, "global");
		j->lifetime = 3600;
		j->alg = CUSTODY_AGENT_ES256;
	}
	return m;
}

static custody_agent_msg *
jwt_response(void)
{
	custody_agent_msg *m = msg_new(CUSTODY_AGENT_JWT_RESPONSE);

	strcpy(m->u.jwt_response.token, "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln");
	return m;
}

static custody_agent_msg *
list_response(size_t n)
{
	custody_agent_msg *m = msg_new(CUSTODY_AGENT_LIST_RESPONSE);
	custody_agent_list_response *l = &m->u.list_response;

	l->entries = calloc(n + 1, sizeof(*l->entries));
	cr_assert_not_null(l->entries);
	for (size_t i = 0; i < n; i++) {
		snprintf(l->entries[i].type, sizeof(l->entries[i].type), "Custom_%zu", i);
		strcpy(l->entries[i].identity, i % 2 ? "global" : "fe01");
		strcpy(l->entries[i].thumbprint, i % 2 ? TP : TP2);
		l->entries[i].which = (enum custody_agent_which)(i % 3);
	}
	l->n_entries = n;
	return m;
}

static custody_agent_msg *
error_msg(void)
{
	custody_agent_msg *m = msg_new(CUSTODY_AGENT_ERROR);

	m->u.error.code = CUSTODY_ENOTFOUND;
	strcpy(m->u.error.message, "no certificate is assigned for type "
	       "OAuthTokenIssuer (identity global) \xe2\x80\x94 see custody list");
	return m;
}

/* ---------------------------------------------------------------- round trips */

Test(agent_wire, round_trip_every_kind_with_and_without_optional_fields)
{
	custody_agent_msg *ms[] = {
		sign_request(0), sign_request(1), sign_response(),
		cert_request(0), cert_request(1), cert_response(0),
		cert_response(1), cert_response(CUSTODY_AGENT_CHAIN_MAX),
		jwt_request(0), jwt_request(1), jwt_response(),
		msg_new(CUSTODY_AGENT_LIST_REQUEST), list_response(0),
		list_response(3), list_response(CUSTODY_AGENT_ENTRIES_MAX),
		error_msg(),
	};

	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
		round_trip(ms[i]);
		msg_free(ms[i]);
	}
}

Test(agent_wire, every_hash_scheme_and_alg_round_trips)
{
	static const size_t lengths[] = {0, 32, 48, 64};

	for (int h = CUSTODY_AGENT_SHA256; h <= CUSTODY_AGENT_SHA512; h++)
		for (int s = CUSTODY_AGENT_RSA_PKCS1; s <= CUSTODY_AGENT_ECDSA_RAW; s++) {
			custody_agent_msg *m = sign_request(1);

			m->u.sign_request.hash = h;
			m->u.sign_request.scheme = s;
			m->u.sign_request.digest_len = lengths[h];
			round_trip(m);
			msg_free(m);
		}
	for (int a = CUSTODY_AGENT_RS256; a <= CUSTODY_AGENT_ES256; a++) {
		custody_agent_msg *m = jwt_request(1);

		m->u.jwt_request.alg = a;
		m->u.jwt_request.lifetime = CUSTODY_AGENT_LIFETIME_MAX;
		round_trip(m);
		msg_free(m);
	}
}

Test(agent_wire, the_frame_of_a_sign_request_byte_by_byte)
{
	custody_agent_msg *m = sign_request(0);
	unsigned char buf[256];
	size_t len = 0;
	custody_err err = {0};
	static const unsigned char head[] = {
		0, 0, 0, 2 + 3 + 16 + 3 + 1 + 3 + 1 + 3 + 32, 1, 1,
		T_TYPE, 0, 16, 'O', 'A', 'u', 't', 'h', 'T', 'o', 'k', 'e', 'n',
		'I', 's', 's', 'u', 'e', 'r',
		T_SCHEME, 0, 1, 2, T_HASH, 0, 1, 1, T_DIGEST, 0, 32, 1, 8,
	};

	cr_assert_eq(custody_agent_wire_encode(m, buf, sizeof(buf), &len, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(len, 4 + 2 + 3 + 16 + 3 + 1 + 3 + 1 + 3 + 32);
	cr_assert_arr_eq(buf, head, sizeof(head));
	msg_free(m);
}

Test(agent_wire, fields_in_any_order_and_an_explicit_current)
{
	struct frame *f = frame_new(1, CUSTODY_AGENT_SIGN_REQUEST);
	unsigned char digest[48] = {9};
	custody_agent_msg m;
	custody_err err = {0};
	unsigned char again[256];
	size_t len = 0;

	frame_field(f, T_DIGEST, digest, sizeof(digest));
	frame_text(f, T_WHICH, "current");
	frame_byte(f, T_HASH, CUSTODY_AGENT_SHA384);
	frame_text(f, T_IDENTITY, "GLOBAL");
	frame_byte(f, T_SCHEME, CUSTODY_AGENT_ECDSA);
	frame_text(f, T_TYPE, "oauthtokenissuer");
	cr_assert_eq(custody_agent_wire_decode(f->b, frame_end(f), &m, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(m.kind, CUSTODY_AGENT_SIGN_REQUEST);
	cr_assert_eq(m.u.sign_request.which, CUSTODY_AGENT_CURRENT);
	cr_assert_eq(m.u.sign_request.hash, CUSTODY_AGENT_SHA384);
	cr_assert_eq(m.u.sign_request.digest_len, 48);
	cr_assert_eq(m.u.sign_request.digest[0], 9);
	/* Names travel as given: the agent resolves them. */
	cr_assert_str_eq(m.u.sign_request.type, "oauthtokenissuer");
	cr_assert_str_eq(m.u.sign_request.identity, "GLOBAL");
	/* The encoder leaves the default out: 3 + 7 bytes shorter. */
	cr_assert_eq(custody_agent_wire_encode(&m, again, sizeof(again), &len,
					       &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(len, f->n - 10);
	free(f);
	custody_agent_msg_clear(&m);
}

Test(agent_wire, clear_frees_and_zeroes)
{
	custody_agent_msg *m = jwt_request(1);
	static const custody_agent_msg zero;

	custody_agent_msg_clear(m);
	cr_assert_eq(memcmp(m, &zero, sizeof(zero)), 0);
	custody_agent_msg_clear(m);	/* twice is harmless */
	free(m);
	custody_agent_msg_clear(NULL);
}

/* ---------------------------------------------------------------- framing */

Test(agent_wire, frame_length_refuses_before_any_allocation)
{
	static const struct {
		unsigned char hdr[4];
		size_t total;
		const char *msg;
	} cases[] = {
		{{0, 0, 0, 0}, 0, "agent frame: length 0 is below the minimum of 2"},
		{{0, 0, 0, 1}, 0, "agent frame: length 1 is below the minimum of 2"},
		{{0, 0, 0, 2}, 6, NULL},
		{{0, 1, 0, 0}, 65540, NULL},
		{{0, 1, 0, 1}, 0, "agent frame: length 65537 is over the maximum of 65536"},
		{{0xff, 0xff, 0xff, 0xff}, 0, "agent frame: length 4294967295 is over the maximum of 65536"},
		{{0x80, 0, 0, 2}, 0, "agent frame: length 2147483650 is over the maximum of 65536"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		custody_err err = {0};
		size_t total = 99;
		int r = custody_agent_wire_frame_length(cases[i].hdr, &total, &err);

		cr_assert_eq(total, cases[i].total, "case %zu", i);
		if (cases[i].msg == NULL) {
			cr_assert_eq(r, CUSTODY_OK, "case %zu: %s", i, err.msg);
			continue;
		}
		cr_assert_eq(r, CUSTODY_EFAIL, "case %zu", i);
		cr_assert_str_eq(err.msg, cases[i].msg);
		/* The same prefix on a whole frame: the same refusal. */
		refused(cases[i].hdr, 4, cases[i].msg);
	}
}

Test(agent_wire, frames_of_the_wrong_size_version_or_kind)
{
	static const unsigned char list_request[] = {0, 0, 0, 2, 1, 7};
	unsigned char buf[8];
	custody_agent_msg m;
	custody_err err = {0};

	cr_assert_eq(custody_agent_wire_decode(list_request, 6, &m, &err), CUSTODY_OK);
	cr_assert_eq(m.kind, CUSTODY_AGENT_LIST_REQUEST);
	refused(list_request, 0, "agent frame: 0 bytes, fewer than its 4-byte length prefix");
	refused(list_request, 3, "agent frame: 3 bytes, fewer than its 4-byte length prefix");
	refused(list_request, 5, "agent frame: 5 bytes, but its length prefix says 6");
	memcpy(buf, list_request, 6);
	buf[6] = 0;
	refused(buf, 7, "agent frame: 7 bytes, but its length prefix says 6");
	buf[4] = 2;
	refused(buf, 6, "agent frame: version 2, this side speaks version 1");
	buf[4] = 0;
	refused(buf, 6, "agent frame: version 0, this side speaks version 1");
	buf[4] = 1;
	buf[5] = 0;
	refused(buf, 6, "agent frame: unknown message kind 0");
	buf[5] = 10;
	refused(buf, 6, "agent frame: unknown message kind 10");
	buf[5] = 255;
	refused(buf, 6, "agent frame: unknown message kind 255");
	/* A trailing byte: a field header cut short. */
	buf[5] = 7;
	buf[3] = 3;
	refused(buf, 7, "agent frame: list request: a partial field header "
		"(1 of 3 bytes) after the last field");
}

/* ---------------------------------------------------------------- fields */

/* A sign request with its fields as given (NULL: left out). */
static struct frame *
sign_frame(const char *type, const char *identity, const char *which,
	   int scheme, int hash, size_t digest_len)
{
	struct frame *f = frame_new(1, CUSTODY_AGENT_SIGN_REQUEST);
	unsigned char digest[80] = {0};

	if (type != NULL)
		frame_text(f, T_TYPE, type);
	if (identity != NULL)
		frame_text(f, T_IDENTITY, identity);
	if (which != NULL)
		frame_text(f, T_WHICH, which);
	if (scheme >= 0)
		frame_byte(f, T_SCHEME, (unsigned char)scheme);
	if (hash >= 0)
		frame_byte(f, T_HASH, (unsigned char)hash);
	if (digest_len > 0)
		frame_field(f, T_DIGEST, digest, digest_len);
	return f;
}

Test(agent_wire, sign_request_fields)
{
	struct frame *f;
	char long_type[66];
	custody_agent_msg m;
	custody_err err = {0};

	memset(long_type, 'a', 65);
	long_type[65] = '\0';
	frame_refused(sign_frame("Default", NULL, NULL, 1, 1, 31),
		      "agent frame: sign request: field digest has 31 bytes, SHA-256 needs 32");
	frame_refused(sign_frame("Default", NULL, NULL, 1, 3, 48),
		      "agent frame: sign request: field digest has 48 bytes, SHA-512 needs 64");
	frame_refused(sign_frame("Default", NULL, NULL, 1, 1, 65),
		      "agent frame: sign request: field digest has 65 bytes, outside 1..64");
	frame_refused(sign_frame("Default", NULL, "later", 1, 1, 32),
		      "agent frame: sign request: field which is not current, previous or pending");
	frame_refused(sign_frame("Default", NULL, "Current", 1, 1, 32),
		      "agent frame: sign request: field which is not current, previous or pending");
	frame_refused(sign_frame("Default", "fe01/x", NULL, 1, 1, 32),
		      "agent frame: sign request: field identity is not 'global' or a node "
		      "name (a letter or digit, then letters, digits, '.', '_' or '-')");
	frame_refused(sign_frame("Default", "", NULL, 1, 1, 32),
		      "agent frame: sign request: field identity has 0 bytes, outside 1..64");
	frame_refused(sign_frame(long_type, NULL, NULL, 1, 1, 32),
		      "agent frame: sign request: field type has 65 bytes, outside 1..64");
	long_type[64] = '\0';
	/* 64 is the longest name. */
	f = sign_frame(long_type, NULL, NULL, 1, 1, 32);
	cr_assert_eq(custody_agent_wire_decode(f->b, frame_end(f), &m, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_str_eq(m.u.sign_request.type, long_type);
	custody_agent_msg_clear(&m);
	free(f);
	frame_refused(sign_frame("1Default", NULL, NULL, 1, 1, 32),
		      "agent frame: sign request: field type is not a type name (a letter, "
		      "then letters, digits, '_' or '-')");
	frame_refused(sign_frame("Zo\xc3\xab", NULL, NULL, 1, 1, 32),
		      "agent frame: sign request: field type is not a type name (a letter, "
		      "then letters, digits, '_' or '-')");
	frame_refused(sign_frame("Default", NULL, NULL, 0, 1, 32),
		      "agent frame: sign request: field scheme 0 is not 1 (RSA PKCS#1 v1.5), "
		      "2 (RSA-PSS), 3 (ECDSA) or 4 (ECDSA r || s)");
	frame_refused(sign_frame("Default", NULL, NULL, 5, 1, 32),
		      "agent frame: sign request: field scheme 5 is not 1 (RSA PKCS#1 v1.5), "
		      "2 (RSA-PSS), 3 (ECDSA) or 4 (ECDSA r || s)");
	frame_refused(sign_frame("Default", NULL, NULL, 1, 4, 32),
		      "agent frame: sign request: field hash 4 is not 1 (SHA-256), 2 (SHA-384) "
		      "or 3 (SHA-512)");
	frame_refused(sign_frame("Default", NULL, NULL, 1, -1, 32),
		      "agent frame: sign request: required field hash is missing");
	frame_refused(sign_frame("Default", NULL, NULL, 1, 1, 0),
		      "agent frame: sign request: required field digest is missing");
	frame_refused(sign_frame(NULL, NULL, NULL, 1, 1, 32),
		      "agent frame: sign request: required field type is missing");
	f = sign_frame("Default", NULL, NULL, 1, 1, 32);
	frame_text(f, T_TYPE, "Default");
	frame_refused(f, "agent frame: sign request: field type given twice");
	f = sign_frame("Default", NULL, NULL, 1, 1, 32);
	frame_byte(f, T_SCHEME, 1);
	frame_refused(f, "agent frame: sign request: field scheme given twice");
	f = sign_frame("Default", NULL, NULL, 1, 1, 32);
	frame_text(f, 99, "x");
	frame_refused(f, "agent frame: sign request has no field with tag 99");
	f = sign_frame("Default", NULL, NULL, 1, 1, 32);
	frame_text(f, T_MESSAGE, "a field of another kind");
	frame_refused(f, "agent frame: sign request has no field with tag 17");
	f = sign_frame("Default", NULL, NULL, 1, 1, 32);
	frame_field(f, 0, "", 0);
	frame_refused(f, "agent frame: sign request has no field with tag 0");
	/* Scheme as two bytes. */
	f = sign_frame("Default", NULL, NULL, -1, 1, 32);
	frame_field(f, T_SCHEME, "\001\001", 2);
	frame_refused(f, "agent frame: sign request: field scheme has 2 bytes, not 1");
}

Test(agent_wire, text_with_nul_control_or_bad_utf8)
{
	struct frame *f = sign_frame(NULL, NULL, NULL, 1, 1, 32);

	frame_field(f, T_TYPE, "Def\0ault", 8);
	frame_refused(f, "agent frame: sign request: field type holds a NUL byte");
	f = frame_new(1, CUSTODY_AGENT_ERROR);
	frame_u32(f, T_CODE, CUSTODY_EFAIL);
	frame_field(f, T_MESSAGE, "refused\0", 8);
	frame_refused(f, "agent frame: error: field message holds a NUL byte");
	f = frame_new(1, CUSTODY_AGENT_ERROR);
	frame_u32(f, T_CODE, CUSTODY_EFAIL);
	frame_text(f, T_MESSAGE, "refused\n\x1b[31mfake log line");
	frame_refused(f, "agent frame: error: field message is not UTF-8 text "
		      "without control characters");
	f = frame_new(1, CUSTODY_AGENT_ERROR);
	frame_u32(f, T_CODE, CUSTODY_EFAIL);
	frame_text(f, T_MESSAGE, "overlong \xc0\xaf");
	frame_refused(f, "agent frame: error: field message is not UTF-8 text "
		      "without control characters");
	f = frame_new(1, CUSTODY_AGENT_ERROR);
	frame_u32(f, T_CODE, CUSTODY_EFAIL);
	frame_text(f, T_MESSAGE, "C1 \xc2\x9b");
	frame_refused(f, "agent frame: error: field message is not UTF-8 text "
		      "without control characters");
	f = frame_new(1, CUSTODY_AGENT_ERROR);
	frame_u32(f, T_CODE, CUSTODY_EFAIL);
	frame_text(f, T_MESSAGE, "cut \xe2\x80");
	frame_refused(f, "agent frame: error: field message is not UTF-8 text "
		      "without control characters");
	f = frame_new(1, CUSTODY_AGENT_ERROR);
	frame_u32(f, T_CODE, CUSTODY_EFAIL);
	frame_text(f, T_MESSAGE, "surrogate \xed\xa0\x80");
	frame_refused(f, "agent frame: error: field message is not UTF-8 text "
		      "without control characters");
	f = frame_new(1, CUSTODY_AGENT_JWT_RESPONSE);
	frame_text(f, T_TOKEN, "eyJ.eyJ.sig\n");
	frame_refused(f, "agent frame: jwt response: field token holds a byte that "
		      "is not printable ASCII");
	f = frame_new(1, CUSTODY_AGENT_JWT_RESPONSE);
	frame_text(f, T_TOKEN, "eyJ.Zo\xc3\xab.sig");
	frame_refused(f, "agent frame: jwt response: field token holds a byte that "
		      "is not printable ASCII");
}

Test(agent_wire, a_field_length_past_the_end)
{
	struct frame *f = sign_frame("Default", NULL, NULL, 1, 1, 32);

	/* The digest says 40 bytes; 32 follow. */
	f->b[f->n - 32 - 1] = 40;
	frame_refused(f, "agent frame: sign request: field digest says 40 bytes, 32 are left");
	f = sign_frame("Default", NULL, NULL, 1, 1, 0);
	frame_field(f, T_DIGEST, "", 0);
	f->b[f->n - 2] = 0xff;
	f->b[f->n - 1] = 0xff;
	frame_refused(f, "agent frame: sign request: field digest says 65535 bytes, 0 are left");
	f = frame_new(1, CUSTODY_AGENT_SIGN_RESPONSE);
	f->b[f->n++] = T_SIGNATURE;
	f->b[f->n++] = 0;
	frame_refused(f, "agent frame: sign response: a partial field header (2 of 3 bytes) "
		      "after the last field");
}

Test(agent_wire, sign_response_and_thumbprints)
{
	unsigned char sig[1025] = {0};
	struct frame *f = frame_new(1, CUSTODY_AGENT_SIGN_RESPONSE);

	frame_field(f, T_SIGNATURE, sig, sizeof(sig));
	frame_text(f, T_THUMBPRINT, TP);
	frame_refused(f, "agent frame: sign response: field signature has 1025 bytes, "
		      "outside 1..1024");
	f = frame_new(1, CUSTODY_AGENT_SIGN_RESPONSE);
	frame_field(f, T_SIGNATURE, sig, 0);
	frame_text(f, T_THUMBPRINT, TP);
	frame_refused(f, "agent frame: sign response: field signature has 0 bytes, "
		      "outside 1..1024");
	f = frame_new(1, CUSTODY_AGENT_SIGN_RESPONSE);
	frame_field(f, T_SIGNATURE, sig, 64);
	frame_text(f, T_THUMBPRINT, "0123456789abcdef0123456789ABCDEF01234567");
	frame_refused(f, "agent frame: sign response: field thumbprint is not 40 "
		      "upper-case hex digits");
	f = frame_new(1, CUSTODY_AGENT_SIGN_RESPONSE);
	frame_field(f, T_SIGNATURE, sig, 64);
	frame_text(f, T_THUMBPRINT, TP "8");
	frame_refused(f, "agent frame: sign response: field thumbprint has 41 bytes, not 40");
	f = frame_new(1, CUSTODY_AGENT_SIGN_RESPONSE);
	frame_field(f, T_SIGNATURE, sig, 64);
	frame_text(f, T_THUMBPRINT, TP);
	frame_refused(f, "agent frame: sign response: required field identity is missing");
	f = frame_new(1, CUSTODY_AGENT_SIGN_RESPONSE);
	frame_text(f, T_IDENTITY, "global");
	frame_field(f, T_SIGNATURE, sig, 64);
	frame_text(f, T_THUMBPRINT, TP);
	frame_refused(f, "agent frame: sign response: required field scheme is missing");
	f = frame_new(1, CUSTODY_AGENT_SIGN_RESPONSE);
	frame_text(f, T_IDENTITY, "global");
	frame_byte(f, T_SCHEME, CUSTODY_AGENT_ECDSA);
	frame_field(f, T_SIGNATURE, sig, 64);
	frame_refused(f, "agent frame: sign response: required field thumbprint is missing");
}

Test(agent_wire, certificates_and_chains)
{
	size_t len, i;
	unsigned char *der = cert_der("leaf.custody.test", 1, &len);
	unsigned char *longer = malloc(len + 1);
	struct frame *f;

	cr_assert_not_null(longer);
	memcpy(longer, der, len);
	longer[len] = 0;
	f = frame_new(1, CUSTODY_AGENT_CERT_RESPONSE);
	frame_field(f, T_CERTIFICATE, "not DER", 7);
	frame_text(f, T_THUMBPRINT, TP);
	frame_refused(f, "agent frame: cert response: field certificate is not a DER "
		      "X.509 certificate");
	f = frame_new(1, CUSTODY_AGENT_CERT_RESPONSE);
	frame_field(f, T_CERTIFICATE, der, len - 1);
	frame_text(f, T_THUMBPRINT, TP);
	frame_refused(f, "agent frame: cert response: field certificate is not a DER "
		      "X.509 certificate");
	f = frame_new(1, CUSTODY_AGENT_CERT_RESPONSE);
	frame_field(f, T_CERTIFICATE, longer, len + 1);
	frame_text(f, T_THUMBPRINT, TP);
	frame_refused(f, "agent frame: cert response: field certificate has 1 byte "
		      "after its DER certificate");
	f = frame_new(1, CUSTODY_AGENT_CERT_RESPONSE);
	frame_field(f, T_CERTIFICATE, der, len);
	frame_field(f, T_CHAIN, longer, len + 1);
	frame_text(f, T_THUMBPRINT, TP);
	frame_refused(f, "agent frame: cert response: field chain has 1 byte after "
		      "its DER certificate");
	f = frame_new(1, CUSTODY_AGENT_CERT_RESPONSE);
	frame_field(f, T_CERTIFICATE, der, len);
	frame_text(f, T_THUMBPRINT, TP);
	for (i = 0; i < CUSTODY_AGENT_CHAIN_MAX + 1; i++)
		frame_field(f, T_CHAIN, der, len);
	frame_refused(f, "agent frame: cert response: field chain given more than 8 times");
	f = frame_new(1, CUSTODY_AGENT_CERT_RESPONSE);
	frame_field(f, T_CERTIFICATE, der, len);
	frame_field(f, T_CERTIFICATE, der, len);
	frame_text(f, T_THUMBPRINT, TP);
	frame_refused(f, "agent frame: cert response: field certificate given twice");
	f = frame_new(1, CUSTODY_AGENT_CERT_RESPONSE);
	frame_text(f, T_THUMBPRINT, TP);
	frame_field(f, T_CHAIN, der, len);
	frame_refused(f, "agent frame: cert response: required field certificate is missing");
	free(longer);
	OPENSSL_free(der);
}

/* A JWT request with the given claims (n bytes). */
static struct frame *
jwt_frame(const char *claims, size_t n)
{
	struct frame *f = frame_new(1, CUSTODY_AGENT_JWT_REQUEST);

	frame_text(f, T_TYPE, "OAuthTokenIssuer");
	frame_field(f, T_CLAIMS, claims, n);
	return f;
}

Test(agent_wire, jwt_request_claims_lifetime_and_alg)
{
	struct frame *f;
	char *big = malloc(CUSTODY_AGENT_CLAIMS_MAX + 2);

	cr_assert_not_null(big);
	frame_refused(jwt_frame("[1,2]", 5),
		      "agent frame: jwt request: field claims is not a JSON object");
	frame_refused(jwt_frame("\"x\"", 3),
		      "agent frame: jwt request: field claims is not a JSON object");
	frame_refused(jwt_frame("{\"aud\":1,\"aud\":2}", 17),
		      "agent frame: jwt request: field claims has a key twice (line 1, column 14)");
	frame_refused(jwt_frame("{\"nameid\":\"Zo\xeb\"}", 16),
		      "agent frame: jwt request: field claims is not UTF-8 text without "
		      "control characters");
	frame_refused(jwt_frame("{\"a\":\"b\"} {}", 12),
		      "agent frame: jwt request: field claims is not JSON (line 1, column 11)");
	frame_refused(jwt_frame("{}x", 3),
		      "agent frame: jwt request: field claims is not JSON (line 1, column 3)");
	frame_refused(jwt_frame("{", 1),
		      "agent frame: jwt request: field claims has 1 bytes, outside 2..8192");
	memset(big, ' ', CUSTODY_AGENT_CLAIMS_MAX + 1);
	big[0] = '{';
	big[CUSTODY_AGENT_CLAIMS_MAX] = '}';
	frame_refused(jwt_frame(big, CUSTODY_AGENT_CLAIMS_MAX + 1),
		      "agent frame: jwt request: field claims has 8193 bytes, outside 2..8192");
	free(big);
	f = jwt_frame("{}", 2);
	frame_u32(f, T_LIFETIME, 0);
	frame_refused(f, "agent frame: jwt request: field lifetime 0 s is outside 1..31622400");
	f = jwt_frame("{}", 2);
	frame_u32(f, T_LIFETIME, CUSTODY_AGENT_LIFETIME_MAX + 1);
	frame_refused(f, "agent frame: jwt request: field lifetime 31622401 s is outside 1..31622400");
	f = jwt_frame("{}", 2);
	frame_field(f, T_LIFETIME, "\0\0\x0e", 3);
	frame_refused(f, "agent frame: jwt request: field lifetime has 3 bytes, not 4");
	f = jwt_frame("{}", 2);
	frame_text(f, T_ALG, "HS256");
	frame_refused(f, "agent frame: jwt request: field alg is not RS256, PS256 or ES256");
	f = jwt_frame("{}", 2);
	frame_text(f, T_ALG, "none");
	frame_refused(f, "agent frame: jwt request: field alg is not RS256, PS256 or ES256");
	f = frame_new(1, CUSTODY_AGENT_JWT_REQUEST);
	frame_text(f, T_TYPE, "OAuthTokenIssuer");
	frame_refused(f, "agent frame: jwt request: required field claims is missing");
	f = jwt_frame("{}", 2);
	frame_text(f, T_WHICH, "current");
	frame_refused(f, "agent frame: jwt request has no field with tag 3");
}

Test(agent_wire, list_response_entries)
{
	unsigned char e[512];
	size_t n, i;
	struct frame *f = frame_new(1, CUSTODY_AGENT_LIST_RESPONSE);

	n = entry_bytes(e, "Default", "global", TP, "current");
	for (i = 0; i < CUSTODY_AGENT_ENTRIES_MAX + 1; i++)
		frame_field(f, T_ENTRY, e, n);
	frame_refused(f, "agent frame: list response: field entry given more than 256 times");
	f = frame_new(1, CUSTODY_AGENT_LIST_RESPONSE);
	frame_field(f, T_ENTRY, e, n);
	n = entry_bytes(e, "Default", "global", TP, NULL);
	frame_field(f, T_ENTRY, e, n);
	frame_refused(f, "agent frame: list response entry 2: required field which is missing");
	f = frame_new(1, CUSTODY_AGENT_LIST_RESPONSE);
	n = entry_bytes(e, "Default", "a/b", TP, "pending");
	frame_field(f, T_ENTRY, e, n);
	frame_refused(f, "agent frame: list response entry 1: field identity is not 'global' "
		      "or a node name (a letter or digit, then letters, digits, '.', '_' or '-')");
	f = frame_new(1, CUSTODY_AGENT_LIST_RESPONSE);
	n = entry_bytes(e, "Default", "fe01", TP, "pending");
	e[n++] = T_SIGNATURE;
	e[n++] = 0;
	e[n++] = 0;
	frame_field(f, T_ENTRY, e, n);
	frame_refused(f, "agent frame: list response entry 1 has no field with tag 7");
	f = frame_new(1, CUSTODY_AGENT_LIST_RESPONSE);
	n = entry_bytes(e, "Default", "fe01", TP, "pending");
	frame_field(f, T_ENTRY, e, n - 1);
	frame_refused(f, "agent frame: list response entry 1: field which says 7 bytes, 6 are left");
	f = frame_new(1, CUSTODY_AGENT_LIST_RESPONSE);
	frame_field(f, T_ENTRY, e, 0);
	frame_refused(f, "agent frame: list response entry 1: required field type is missing");
}

Test(agent_wire, error_code_and_message)
{
	struct frame *f = frame_new(1, CUSTODY_AGENT_ERROR);
	char big[CUSTODY_AGENT_MESSAGE_MAX + 2];

	frame_u32(f, T_CODE, CUSTODY_EFAIL);
	frame_text(f, T_MESSAGE, "");
	frame_refused(f, "agent frame: error: field message has 0 bytes, outside 1..512");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	f = frame_new(1, CUSTODY_AGENT_ERROR);
	frame_u32(f, T_CODE, CUSTODY_EFAIL);
	frame_text(f, T_MESSAGE, big);
	frame_refused(f, "agent frame: error: field message has 513 bytes, outside 1..512");
	f = frame_new(1, CUSTODY_AGENT_ERROR);
	frame_u32(f, T_CODE, CUSTODY_OK);
	frame_text(f, T_MESSAGE, "fine");
	frame_refused(f, "agent frame: error: field code 0 is not a custody error code (1..6)");
	f = frame_new(1, CUSTODY_AGENT_ERROR);
	frame_u32(f, T_CODE, 0xffffffffu);
	frame_text(f, T_MESSAGE, "fine");
	frame_refused(f, "agent frame: error: field code 4294967295 is not a custody error "
		      "code (1..6)");
	f = frame_new(1, CUSTODY_AGENT_ERROR);
	frame_text(f, T_MESSAGE, "no code");
	frame_refused(f, "agent frame: error: required field code is missing");
	f = frame_new(1, CUSTODY_AGENT_LIST_REQUEST);
	frame_text(f, T_MESSAGE, "list request takes nothing");
	frame_refused(f, "agent frame: list request has no field with tag 17");
}

/* ---------------------------------------------------------------- truncation */

static size_t
encode(const custody_agent_msg *m, unsigned char *buf)
{
	custody_err err = {0};
	size_t len = 0;

	cr_assert_eq(custody_agent_wire_encode(m, buf, CUSTODY_AGENT_FRAME_BUF,
					       &len, &err), CUSTODY_OK, "%s", err.msg);
	return len;
}

/* A frame cut after its first `cut` bytes, its prefix made to match:
 * 0 when refused, 1 when it is a shorter frame of its own (a cut between
 * two fields after which only optional ones follow), which then encodes
 * back to exactly those bytes. */
static int
cut_accepted(const unsigned char *frame, size_t cut, unsigned char *scratch,
	     unsigned char *again)
{
	custody_agent_msg *m = malloc(sizeof(*m));
	custody_err err = {0};
	size_t len;

	cr_assert_not_null(m);
	memcpy(scratch, frame, cut);
	if (cut >= 4) {
		scratch[0] = (unsigned char)((cut - 4) >> 24);
		scratch[1] = (unsigned char)((cut - 4) >> 16);
		scratch[2] = (unsigned char)((cut - 4) >> 8);
		scratch[3] = (unsigned char)(cut - 4);
	}
	if (custody_agent_wire_decode(scratch, cut, m, &err) != CUSTODY_OK) {
		cr_assert_eq(err.code, CUSTODY_EFAIL);
		free(m);
		return 0;
	}
	len = encode(m, again);
	cr_assert_eq(len, cut);
	cr_assert_arr_eq(again, scratch, cut);
	custody_agent_msg_clear(m);
	free(m);
	return 1;
}

Test(agent_wire, truncation_at_every_byte_is_refused)
{
	/* Each kind with every field, and how many cuts leave a valid
	 * shorter frame: a sign request cut before its thumbprint, a cert
	 * request cut after its type or identity, a
	 * jwt request after its claims or lifetime, a cert response before
	 * each chain certificate, a list response before each entry. */
	struct {
		custody_agent_msg *m;
		int shorter_frames;
	} cases[] = {
		{sign_request(1), 1}, {sign_response(), 0}, {cert_request(1), 2},
		{cert_response(0), 0}, {cert_response(2), 2}, {jwt_request(1), 2},
		{jwt_response(), 0}, {msg_new(CUSTODY_AGENT_LIST_REQUEST), 0},
		{list_response(3), 3}, {error_msg(), 0},
	};
	unsigned char *buf = malloc(CUSTODY_AGENT_FRAME_BUF);
	unsigned char *scratch = malloc(CUSTODY_AGENT_FRAME_BUF);
	unsigned char *again = malloc(CUSTODY_AGENT_FRAME_BUF);
	char msg[128];
	size_t len, cut;
	int shorter;

	cr_assert(buf != NULL && scratch != NULL && again != NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		len = encode(cases[i].m, buf);
		shorter = 0;
		for (cut = 0; cut < len; cut++) {
			/* As read: fewer bytes than the prefix says. */
			if (cut < 4)
				snprintf(msg, sizeof(msg), "agent frame: %zu bytes, fewer "
					 "than its 4-byte length prefix", cut);
			else
				snprintf(msg, sizeof(msg), "agent frame: %zu bytes, but "
					 "its length prefix says %zu", cut, len);
			refused(buf, cut, msg);
			shorter += cut_accepted(buf, cut, scratch, again);
		}
		cr_assert_eq(shorter, cases[i].shorter_frames, "%s: %d cuts accepted",
			     custody_agent_kind_name(cases[i].m->kind), shorter);
		msg_free(cases[i].m);
	}
	free(again);
	free(scratch);
	free(buf);
}

/* ---------------------------------------------------------------- encoder */

static void
encode_refused(custody_agent_msg *m, size_t size, const char *msg)
{
	unsigned char *buf = malloc(CUSTODY_AGENT_FRAME_BUF);
	custody_err err = {0};
	size_t len = 99;

	cr_assert_not_null(buf);
	cr_assert_eq(custody_agent_wire_encode(m, buf, size, &len, &err),
		     CUSTODY_EFAIL, "encoded; expected: %s", msg);
	cr_assert_eq(len, 0);
	cr_assert_str_eq(err.msg, msg);
	free(buf);
	msg_free(m);
}

Test(agent_wire, encode_refuses_what_decode_refuses)
{
	custody_agent_msg *m;
	unsigned char *der;
	size_t len;

	m = sign_request(1);
	m->u.sign_request.digest_len = 31;
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: sign "
		       "request: field digest has 31 bytes, SHA-256 needs 32");
	m = sign_request(1);
	m->u.sign_request.digest_len = 1000;	/* past the array: never read */
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: sign "
		       "request: field digest has 1000 bytes, outside 1..64");
	m = sign_request(1);
	m->u.sign_request.which = (enum custody_agent_which)7;
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: sign "
		       "request: field which is not current, previous or pending");
	m = sign_request(1);
	m->u.sign_request.scheme = (enum custody_agent_scheme)257;	/* not 1 */
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: sign "
		       "request: field scheme 0 is not 1 (RSA PKCS#1 v1.5), 2 (RSA-PSS), "
		       "3 (ECDSA) or 4 (ECDSA r || s)");
	m = sign_request(0);
	strcpy(m->u.sign_request.identity, "a/b");
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: sign "
		       "request: field identity is not 'global' or a node name (a letter "
		       "or digit, then letters, digits, '.', '_' or '-')");
	m = sign_request(0);
	memset(m->u.sign_request.type, 'a', sizeof(m->u.sign_request.type));
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: sign "
		       "request: field type has 65 bytes, outside 1..64");
	m = sign_request(0);
	m->u.sign_request.type[0] = '\0';
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: sign "
		       "request: field type has 0 bytes, outside 1..64");
	m = cert_response(0);
	m->u.cert_response.certificate[0] ^= 0xff;
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: cert "
		       "response: field certificate is not a DER X.509 certificate");
	m = cert_response(1);
	m->u.cert_response.chain[0].len--;
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: cert "
		       "response: field chain is not a DER X.509 certificate");
	m = cert_response(0);
	m->u.cert_response.n_chain = 9;
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: cert "
		       "response: field chain given more than 8 times");
	m = jwt_request(1);
	strcpy(m->u.jwt_request.claims, "{\"a\":1,\"a\":1}");
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: jwt "
		       "request: field claims has a key twice (line 1, column 10)");
	m = jwt_request(1);
	m->u.jwt_request.lifetime = CUSTODY_AGENT_LIFETIME_MAX + 1;
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: jwt "
		       "request: field lifetime 31622401 s is outside 1..31622400");
	m = list_response(CUSTODY_AGENT_ENTRIES_MAX + 1);
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: list "
		       "response: field entry given more than 256 times");
	m = list_response(3);
	strcpy(m->u.list_response.entries[2].thumbprint, "abc");
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: list "
		       "response entry 3: field thumbprint has 3 bytes, not 40");
	m = error_msg();
	m->u.error.code = CUSTODY_OK;
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: error: "
		       "field code 0 is not a custody error code (1..6)");
	m = error_msg();
	m->u.error.code = -1;
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: error: "
		       "field code 4294967295 is not a custody error code (1..6)");
	m = error_msg();
	m->u.error.message[0] = '\0';
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: error: "
		       "field message has 0 bytes, outside 1..512");
	m = msg_new(0);
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: "
		       "unknown message kind 0");
	m = msg_new(10);
	encode_refused(m, CUSTODY_AGENT_FRAME_BUF, "cannot encode agent message: "
		       "unknown message kind 10");
	m = sign_request(0);
	encode_refused(m, 10, "cannot encode agent message: sign request: a buffer of "
		       "10 bytes is too small for the 68-byte frame");
	/* Nine certificates of about 8 KiB: over the frame maximum. */
	m = cert_response(0);
	der = big_cert_der(7800, &len);
	cr_assert(len > 7500 && len <= CUSTODY_AGENT_CERT_MAX, "%zu bytes", len);
	memcpy(m->u.cert_response.certificate, der, len);
	m->u.cert_response.certificate_len = len;
	for (size_t i = 0; i < CUSTODY_AGENT_CHAIN_MAX; i++) {
		m->u.cert_response.chain[i].der = malloc(len);
		cr_assert_not_null(m->u.cert_response.chain[i].der);
		memcpy(m->u.cert_response.chain[i].der, der, len);
		m->u.cert_response.chain[i].len = len;
	}
	m->u.cert_response.n_chain = CUSTODY_AGENT_CHAIN_MAX;
	{
		char msg[160];

		snprintf(msg, sizeof(msg), "cannot encode agent message: cert response: "
			 "%zu bytes, over the frame maximum of 65536",
			 2 + 3 + 40 + 9 * (3 + len));
		encode_refused(m, CUSTODY_AGENT_FRAME_BUF, msg);
	}
	OPENSSL_free(der);
}

Test(agent_wire, the_largest_frames_fit_the_buffer)
{
	custody_agent_msg *m = list_response(CUSTODY_AGENT_ENTRIES_MAX);
	custody_agent_list_response *l = &m->u.list_response;
	custody_agent_msg *j = msg_new(CUSTODY_AGENT_JWT_RESPONSE);

	for (size_t i = 0; i < l->n_entries; i++) {
		memset(l->entries[i].type, 'T', CUSTODY_NAME_MAX);
		memset(l->entries[i].identity, 'n', CUSTODY_NAME_MAX);
		l->entries[i].which = CUSTODY_AGENT_PREVIOUS;
	}
	round_trip(m);
	msg_free(m);
	memset(j->u.jwt_response.token, 'e', CUSTODY_AGENT_TOKEN_MAX);
	round_trip(j);
	msg_free(j);
}

Test(agent_wire, certificates_up_to_16_kib)
{
	custody_agent_msg *m = cert_response(1);
	struct frame *f = frame_new(1, CUSTODY_AGENT_CERT_RESPONSE);
	unsigned char *der;
	size_t len;
	char msg[160];

	der = big_cert_der(15900, &len);
	cr_assert(len > 16000 && len <= CUSTODY_AGENT_CERT_MAX, "%zu bytes", len);
	memcpy(m->u.cert_response.certificate, der, len);
	m->u.cert_response.certificate_len = len;
	round_trip(m);
	msg_free(m);
	OPENSSL_free(der);
	der = big_cert_der(16100, &len);
	cr_assert_gt(len, CUSTODY_AGENT_CERT_MAX);
	frame_field(f, T_CERTIFICATE, der, len);
	frame_text(f, T_THUMBPRINT, TP);
	snprintf(msg, sizeof(msg), "agent frame: cert response: field certificate has "
		 "%zu bytes, outside 1..16384", len);
	frame_refused(f, msg);
	OPENSSL_free(der);
}
