/*
 * custody/agent_wire.h — the frames that custody's agent and its clients
 * exchange over the agent's Unix socket: encoding and strict decoding, on
 * buffers only (no I/O here).
 *
 * A frame (every integer big-endian):
 *
 *   length   4 bytes   L, the number of bytes that follow: 2 <= L <= 65536
 *   version  1 byte    CUSTODY_AGENT_WIRE_VERSION (1)
 *   kind     1 byte    enum custody_agent_kind
 *   fields   L - 2     each: tag (1 byte), length N (2 bytes), N bytes
 *
 * Field tags are a contract: they never change meaning within a version.
 *
 *   tag  field        form
 *    1   type         text, a type name: [A-Za-z][A-Za-z0-9_-]{0,63}
 *    2   identity     text: "global" or a node name [A-Za-z0-9][A-Za-z0-9._-]{0,63}
 *    3   which        text: "current" | "previous" | "pending"
 *    4   scheme       1 byte: 1 RSA PKCS#1 v1.5, 2 RSA-PSS, 3 ECDSA (a DER
 *                     ECDSA-Sig-Value), 4 ECDSA as r || s (JWS)
 *    5   hash         1 byte: 1 SHA-256, 2 SHA-384, 3 SHA-512
 *    6   digest       bytes, exactly the hash's length (32, 48, 64)
 *    7   signature    bytes, 1..1024
 *    8   thumbprint   text, 40 upper-case hex digits (SHA-1 of the DER)
 *    9   certificate  DER X.509 certificate, 1..16384 bytes, nothing after it
 *   10   chain        as certificate; repeatable, up to 8 times
 *   11   claims       JSON object text, 2..8192 bytes, no duplicate keys
 *   12   lifetime     4 bytes: seconds, 1..31622400
 *   13   alg          text: "RS256" | "PS256" | "ES256"
 *   14   token        printable ASCII, 1..16384 bytes
 *   15   entry        a nested field sequence: type, identity, thumbprint,
 *                     which (all required); repeatable, up to 256 times
 *   16   code         4 bytes: a custody status code (CUSTODY_EFAIL..CUSTODY_EPIN)
 *   17   message      text, 1..512 bytes
 *
 * Text is UTF-8 without NUL or control characters (claims may hold the
 * JSON whitespace TAB, LF and CR).  Which fields each kind takes:
 *
 *   SIGN_REQUEST   type R, identity O, which O (default current),
 *                  scheme O (default: by the key, RSA PKCS#1 v1.5 or
 *                  ECDSA), hash R, digest R, thumbprint O (sign with
 *                  that certificate's key, provided it is in one of the
 *                  assignment's slots; which is then not consulted)
 *   SIGN_RESPONSE  identity R (where the assignment was found), scheme R
 *                  (the one used), signature R, thumbprint R

 *   CERT_REQUEST   type R, identity O, which O
 *   CERT_RESPONSE  certificate R, chain O (0..8), thumbprint R
 *   JWT_REQUEST    type R, identity O, claims R, lifetime O, alg O
 *   JWT_RESPONSE   token R
 *   LIST_REQUEST   (no fields)
 *   LIST_RESPONSE  entry (0..256)
 *   ERROR          code R, message R
 *
 * Decoding is strict: another version, an unknown kind, a tag the kind
 * does not take, a field given twice (but chain and entry), a missing
 * required field, a value of the wrong size or form, bytes left over, a
 * length over the maximum: each is refused (CUSTODY_EFAIL, a message
 * "agent frame: ..." that names what is wrong and never echoes a value).
 * Fields may come in any order; the encoder writes them in tag order and
 * leaves out optional fields that hold their default, and refuses what
 * the decoder would refuse (its messages start "cannot encode agent
 * message: ").
 *
 * Memory: a custody_agent_msg holds its bounded values in fixed arrays
 * (the struct is about 17 KiB); only a certificate response's chain and
 * a list response's entries are malloc'ed.  custody_agent_wire_decode
 * fills them, and custody_agent_msg_clear frees them: a caller that fills
 * chain[i].der or entries itself for encoding gives them malloc'ed (or
 * resets those members before clearing).
 */
#ifndef CUSTODY_AGENT_WIRE_H
#define CUSTODY_AGENT_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <custody/error.h>
#include <custody/records.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CUSTODY_AGENT_WIRE_VERSION 1
#define CUSTODY_AGENT_FRAME_MAX 65536		/* largest L (after the prefix) */
#define CUSTODY_AGENT_FRAME_BUF (CUSTODY_AGENT_FRAME_MAX + 4)	/* a whole frame */
#define CUSTODY_AGENT_DIGEST_MAX 64
#define CUSTODY_AGENT_SIGNATURE_MAX 1024
#define CUSTODY_AGENT_CERT_MAX 16384
#define CUSTODY_AGENT_CHAIN_MAX 8
#define CUSTODY_AGENT_CLAIMS_MAX 8192
#define CUSTODY_AGENT_LIFETIME_MAX 31622400	/* 366 days, in seconds */
#define CUSTODY_AGENT_TOKEN_MAX 16384
#define CUSTODY_AGENT_ENTRIES_MAX 256
#define CUSTODY_AGENT_MESSAGE_MAX 512

enum custody_agent_kind {
	CUSTODY_AGENT_SIGN_REQUEST = 1,
	CUSTODY_AGENT_SIGN_RESPONSE = 2,
	CUSTODY_AGENT_CERT_REQUEST = 3,
	CUSTODY_AGENT_CERT_RESPONSE = 4,
	CUSTODY_AGENT_JWT_REQUEST = 5,
	CUSTODY_AGENT_JWT_RESPONSE = 6,
	CUSTODY_AGENT_LIST_REQUEST = 7,
	CUSTODY_AGENT_LIST_RESPONSE = 8,
	CUSTODY_AGENT_ERROR = 9,
};

/* Which certificate of an assignment; 0 is the default, current. */
enum custody_agent_which {
	CUSTODY_AGENT_CURRENT = 0,
	CUSTODY_AGENT_PREVIOUS = 1,
	CUSTODY_AGENT_PENDING = 2,
};

/* Values as on the wire; 0 is the default (a request's: by the key). */
enum custody_agent_scheme {
	CUSTODY_AGENT_SCHEME_AUTO = 0,
	CUSTODY_AGENT_RSA_PKCS1 = 1,
	CUSTODY_AGENT_RSA_PSS = 2,
	CUSTODY_AGENT_ECDSA = 3,		/* DER ECDSA-Sig-Value */
	CUSTODY_AGENT_ECDSA_RAW = 4,	/* r || s, each the order's size */
};

enum custody_agent_hash {
	CUSTODY_AGENT_SHA256 = 1,
	CUSTODY_AGENT_SHA384 = 2,
	CUSTODY_AGENT_SHA512 = 3,
};

/* 0: not given (the agent chooses by the key). */
enum custody_agent_alg {
	CUSTODY_AGENT_ALG_DEFAULT = 0,
	CUSTODY_AGENT_RS256 = 1,
	CUSTODY_AGENT_PS256 = 2,
	CUSTODY_AGENT_ES256 = 3,
};

/* identity "" = not given (the agent's own node, then global). */
typedef struct custody_agent_sign_request {
	char type[CUSTODY_NAME_MAX + 1];
	char identity[CUSTODY_NAME_MAX + 1];
	enum custody_agent_which which;
	enum custody_agent_scheme scheme;
	enum custody_agent_hash hash;
	unsigned char digest[CUSTODY_AGENT_DIGEST_MAX];
	size_t digest_len;
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];	/* "": by which */
} custody_agent_sign_request;

typedef struct custody_agent_sign_response {
	char identity[CUSTODY_NAME_MAX + 1];
	enum custody_agent_scheme scheme;
	unsigned char signature[CUSTODY_AGENT_SIGNATURE_MAX];
	size_t signature_len;
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
} custody_agent_sign_response;

typedef struct custody_agent_cert_request {
	char type[CUSTODY_NAME_MAX + 1];
	char identity[CUSTODY_NAME_MAX + 1];
	enum custody_agent_which which;
} custody_agent_cert_request;

typedef struct custody_agent_der {
	unsigned char *der;	/* malloc'ed */
	size_t len;
} custody_agent_der;

typedef struct custody_agent_cert_response {
	unsigned char certificate[CUSTODY_AGENT_CERT_MAX];
	size_t certificate_len;
	custody_agent_der chain[CUSTODY_AGENT_CHAIN_MAX];
	size_t n_chain;
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
} custody_agent_cert_response;

/* lifetime 0 = not given (the agent's default). */
typedef struct custody_agent_jwt_request {
	char type[CUSTODY_NAME_MAX + 1];
	char identity[CUSTODY_NAME_MAX + 1];
	char claims[CUSTODY_AGENT_CLAIMS_MAX + 1];	/* cleansed by _clear */
	uint32_t lifetime;
	enum custody_agent_alg alg;
} custody_agent_jwt_request;

typedef struct custody_agent_jwt_response {
	char token[CUSTODY_AGENT_TOKEN_MAX + 1];
} custody_agent_jwt_response;

typedef struct custody_agent_list_entry {
	char type[CUSTODY_NAME_MAX + 1];
	char identity[CUSTODY_NAME_MAX + 1];
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	enum custody_agent_which which;
} custody_agent_list_entry;

typedef struct custody_agent_list_response {
	custody_agent_list_entry *entries;	/* malloc'ed, n_entries of them */
	size_t n_entries;
} custody_agent_list_response;

typedef struct custody_agent_error {
	int code;		/* enum custody_status, not CUSTODY_OK */
	char message[CUSTODY_AGENT_MESSAGE_MAX + 1];
} custody_agent_error;

/* One message: kind says which member of u holds it (LIST_REQUEST has
 * none).  Zero it (or custody_agent_msg_clear it) before filling it. */
typedef struct custody_agent_msg {
	enum custody_agent_kind kind;
	union {
		custody_agent_sign_request sign_request;
		custody_agent_sign_response sign_response;
		custody_agent_cert_request cert_request;
		custody_agent_cert_response cert_response;
		custody_agent_jwt_request jwt_request;
		custody_agent_jwt_response jwt_response;
		custody_agent_list_response list_response;
		custody_agent_error error;
	} u;
} custody_agent_msg;

/*
 * Writes m as one whole frame (the length prefix included) into buf and
 * its size into *len.  EFAIL, nothing promised of buf, when m holds
 * something the decoder would refuse, when the frame would pass
 * CUSTODY_AGENT_FRAME_MAX, or when buf is too small (a buffer of
 * CUSTODY_AGENT_FRAME_BUF bytes always suffices).
 */
int custody_agent_wire_encode(const custody_agent_msg *m, unsigned char *buf,
			      size_t size, size_t *len, custody_err *err);

/*
 * For a reader that reads the 4-byte prefix first: the size of the whole
 * frame, prefix included, in *total.  EFAIL when the prefix says less
 * than 2 or more than CUSTODY_AGENT_FRAME_MAX, so a reader can refuse
 * before it allocates or waits for anything.
 */
int custody_agent_wire_frame_length(const unsigned char hdr[4], size_t *total,
				    custody_err *err);

/*
 * Decodes exactly one whole frame (len must be the prefix's length + 4)
 * into *out, which it overwrites without freeing.  On failure *out is
 * left cleared (kind 0, nothing allocated) and EFAIL is returned.
 */
int custody_agent_wire_decode(const unsigned char *frame, size_t len,
			      custody_agent_msg *out, custody_err *err);

/* Frees what m holds, cleanses a JWT request's claims, and zeroes m. */
void custody_agent_msg_clear(custody_agent_msg *m);

/* "sign request", "error", ...; "unknown" for anything else. */
const char *custody_agent_kind_name(int kind);

#ifdef __cplusplus
}
#endif
#endif
