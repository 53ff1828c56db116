/* fuzz_agent_wire.c — the frames of custody's agent (custody/agent_wire.h),
 * which the agent reads from any local client and a client reads from the
 * socket.  The bytes are decoded as given, then again with the length
 * prefix made to match (so the fuzzer spends its time in the fields, not
 * in guessing the prefix).  Whatever decodes must encode, and what that
 * encodes must decode to the same message and encode to the same bytes;
 * whatever is refused is refused with an "agent frame: " message and
 * leaves the message cleared. */
#include "config.h"

#include <custody/agent_wire.h>

#include "fuzz_common.h"

static int
same_text(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static int
same_bytes(const unsigned char *a, size_t na, const unsigned char *b, size_t nb)
{
	return na == nb && (na == 0 || memcmp(a, b, na) == 0);
}

static int
same_entries(const custody_agent_list_response *a,
	     const custody_agent_list_response *b)
{
	size_t i;

	if (a->n_entries != b->n_entries)
		return 0;
	for (i = 0; i < a->n_entries; i++)
		if (!same_text(a->entries[i].type, b->entries[i].type) ||
		    !same_text(a->entries[i].identity, b->entries[i].identity) ||
		    !same_text(a->entries[i].thumbprint, b->entries[i].thumbprint) ||
		    a->entries[i].which != b->entries[i].which)
			return 0;
	return 1;
}

static int
same_cert_response(const custody_agent_cert_response *a,
		   const custody_agent_cert_response *b)
{
	size_t i;

	if (!same_bytes(a->certificate, a->certificate_len, b->certificate,
			b->certificate_len) ||
	    !same_text(a->thumbprint, b->thumbprint) || a->n_chain != b->n_chain)
		return 0;
	for (i = 0; i < a->n_chain; i++)
		if (!same_bytes(a->chain[i].der, a->chain[i].len, b->chain[i].der,
				b->chain[i].len))
			return 0;
	return 1;
}

/* Field by field: the padding of the structs says nothing. */
static int
same_msg(const custody_agent_msg *a, const custody_agent_msg *b)
{
	const custody_agent_sign_request *sa = &a->u.sign_request, *sb = &b->u.sign_request;
	const custody_agent_jwt_request *ja = &a->u.jwt_request, *jb = &b->u.jwt_request;

	if (a->kind != b->kind)
		return 0;
	switch (a->kind) {
	case CUSTODY_AGENT_SIGN_REQUEST:
		return same_text(sa->type, sb->type) &&
		       same_text(sa->identity, sb->identity) &&
		       sa->which == sb->which && sa->scheme == sb->scheme &&
		       sa->hash == sb->hash &&
		       same_bytes(sa->digest, sa->digest_len, sb->digest, sb->digest_len) &&
		       same_text(sa->thumbprint, sb->thumbprint);
	case CUSTODY_AGENT_SIGN_RESPONSE:
		return same_text(a->u.sign_response.identity,
				 b->u.sign_response.identity) &&
		       a->u.sign_response.scheme == b->u.sign_response.scheme &&
		       same_bytes(a->u.sign_response.signature,
				  a->u.sign_response.signature_len,
				  b->u.sign_response.signature,
				  b->u.sign_response.signature_len) &&
		       same_text(a->u.sign_response.thumbprint,
				 b->u.sign_response.thumbprint);
	case CUSTODY_AGENT_CERT_REQUEST:
		return same_text(a->u.cert_request.type, b->u.cert_request.type) &&
		       same_text(a->u.cert_request.identity, b->u.cert_request.identity) &&
		       a->u.cert_request.which == b->u.cert_request.which;
	case CUSTODY_AGENT_CERT_RESPONSE:
		return same_cert_response(&a->u.cert_response, &b->u.cert_response);
	case CUSTODY_AGENT_JWT_REQUEST:
		return same_text(ja->type, jb->type) &&
		       same_text(ja->identity, jb->identity) &&
		       same_text(ja->claims, jb->claims) &&
		       ja->lifetime == jb->lifetime && ja->alg == jb->alg;
	case CUSTODY_AGENT_JWT_RESPONSE:
		return same_text(a->u.jwt_response.token, b->u.jwt_response.token);
	case CUSTODY_AGENT_LIST_REQUEST:
		return 1;
	case CUSTODY_AGENT_LIST_RESPONSE:
		return same_entries(&a->u.list_response, &b->u.list_response);
	case CUSTODY_AGENT_ERROR:
		return a->u.error.code == b->u.error.code &&
		       same_text(a->u.error.message, b->u.error.message);
	default:
		return 0;
	}
}

static unsigned char frame2[CUSTODY_AGENT_FRAME_BUF];
static unsigned char frame3[CUSTODY_AGENT_FRAME_BUF];
static custody_agent_msg first, second;

static void
check_one(const uint8_t *data, size_t size)
{
	custody_err err;
	size_t total = 0, len2 = 0, len3 = 0;
	int r;

	memset(&err, 0, sizeof(err));
	r = custody_agent_wire_decode(data, size, &first, &err);
	fuzz_note("decode", r, &err);
	if (r != CUSTODY_OK) {
		FUZZ_EXPECT(r == CUSTODY_EFAIL && fuzz_err_is(&err, CUSTODY_EFAIL,
							      CUSTODY_EFAIL));
		FUZZ_EXPECT(strncmp(err.msg, "agent frame: ", 13) == 0);
		FUZZ_EXPECT(first.kind == 0 && first.u.list_response.entries == NULL);
		return;
	}
	/* What decodes was one whole frame, as its prefix says. */
	FUZZ_EXPECT(custody_agent_wire_frame_length(data, &total, &err) == CUSTODY_OK);
	FUZZ_EXPECT(total == size);
	r = custody_agent_wire_encode(&first, frame2, sizeof(frame2), &len2, &err);
	fuzz_note("encode", r, &err);
	FUZZ_EXPECT(r == CUSTODY_OK);
	/* The encoder leaves defaults out and never adds: never longer. */
	FUZZ_EXPECT(len2 <= size);
	r = custody_agent_wire_decode(frame2, len2, &second, &err);
	fuzz_note("decode again", r, &err);
	FUZZ_EXPECT(r == CUSTODY_OK);
	FUZZ_EXPECT(same_msg(&first, &second));
	FUZZ_EXPECT(custody_agent_wire_encode(&second, frame3, sizeof(frame3),
					      &len3, &err) == CUSTODY_OK);
	FUZZ_EXPECT(same_bytes(frame2, len2, frame3, len3));
	custody_agent_msg_clear(&second);
	custody_agent_msg_clear(&first);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char fixed[CUSTODY_AGENT_FRAME_BUF];
	size_t l;

	check_one(data, size);
	if (size < 4 || size > sizeof(fixed))
		return 0;
	/* The same bytes with the prefix they need. */
	memcpy(fixed, data, size);
	l = size - 4;
	fixed[0] = (unsigned char)(l >> 24);
	fixed[1] = (unsigned char)(l >> 16);
	fixed[2] = (unsigned char)(l >> 8);
	fixed[3] = (unsigned char)l;
	check_one(fixed, size);
	return 0;
}
