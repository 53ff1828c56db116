/*
 * bench.h — what the benchmark programs of tests/bench share.
 *
 * - A monotonic clock and a timed loop that runs one "sign once" function
 *   on N threads for a fixed time and counts the signatures.
 * - The PIN, read from a file (never from argv), trailing CR/LF stripped;
 *   the caller cleanses its buffer.
 * - The few raw PKCS#11 steps every signer takes: load the module,
 *   initialise it, find the token by label, open a session, log in, find
 *   a key by CKA_ID, sign.  A signature is made the way custody and libp11
 *   make it: SHA-256 in software, then CKM_RSA_PKCS over the DER
 *   DigestInfo (RSA) or CKM_ECDSA over the digest (EC: SoftHSM 2.6.1 has
 *   no CKM_ECDSA_SHA256).
 *
 * Functions print what failed and why on stderr ("PROGRAM: WHAT: WHY")
 * and return -1; 0 is success.  These are test programs: printing is
 * their job.
 */
#ifndef CUSTODY_BENCH_H
#define CUSTODY_BENCH_H

#include <stddef.h>

#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>

#define BENCH_SKIP 77		/* exit status: the path is not built yet */
#define BENCH_MAX_SIG 512	/* bytes: RSA-4096 or a DER ECDSA-Sig-Value */
#define BENCH_MAX_THREADS 16

enum bench_kind {
	BENCH_RSA2048,
	BENCH_EC_P256,
};

/* What the in-process benchmarks sign: 64 bytes, hashed per signature. */
extern const unsigned char bench_message[64];

/* The program's name, for messages; set once by main(). */
extern const char *bench_progname;

/* Prints "PROGRAM: MESSAGE" on stderr; returns -1. */
int bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Seconds on CLOCK_MONOTONIC. */
double bench_now(void);

/* "rsa2048" or "ec_p256". */
int bench_kind_parse(const char *s, enum bench_kind *kind);
const char *bench_kind_name(enum bench_kind kind);

/* A positive number of seconds / a count in [1, max]. */
int bench_parse_seconds(const char *s, double *out);
int bench_parse_count(const char *s, long max, long *out);

/* The options of the in-process signer benchmarks (bench_engine,
 * bench_library): --kind K --NAME VALUE --cert PEM [--threads N]
 * [--seconds S], where NAME is name_option ("key", "type"). */
struct bench_signer_opts {
	const char *name;	/* the value of --NAME */
	const char *cert;
	enum bench_kind kind;
	long threads;		/* default 1 */
	double seconds;		/* default 2 */
};
int bench_parse_signer_opts(int argc, char **argv, const char *name_option,
			    struct bench_signer_opts *o);

/* Makes one signature with ctx; 0 on success, -1 (after saying why). */
typedef int (*bench_sign_fn)(void *ctx);

/*
 * Runs fn(ctx[i]) on nthreads threads: `warmup` signatures each, then all
 * start together and sign until `seconds` have passed.  *count is the
 * number of timed signatures, *elapsed the time from the common start to
 * the last thread's end.  -1 when any signature failed.
 */
int bench_run(bench_sign_fn fn, void **ctx, int nthreads, int warmup,
	      double seconds, unsigned long *count, double *elapsed);

/* Prints "RATE COUNT SECONDS" on stdout (signatures per second, how
 * many, in how long) and the same in words on stderr. */
void bench_report(const char *what, enum bench_kind kind, int nthreads,
		  unsigned long count, double elapsed);

/* Reads the PIN file into pin (NUL-terminated), trailing CR/LF stripped. */
int bench_read_pin(const char *path, char *pin, size_t size, size_t *len);

/* Decodes an even-length hex string into out. */
int bench_hex_decode(const char *hex, unsigned char *out, size_t size,
		     size_t *len);

/* Reads a whole (small) file; *data is malloc'ed. */
int bench_read_file(const char *path, unsigned char **data, size_t *len);

/* SHA-256 of the message, and what the token signs for it: the DER
 * DigestInfo (RSA) or the digest itself (EC). */
int bench_sign_input(enum bench_kind kind, const unsigned char *msg,
		     size_t msg_len, unsigned char *out, size_t size,
		     size_t *len);

/* The token's raw ECDSA r || s as a DER ECDSA-Sig-Value. */
int bench_ecdsa_der(const unsigned char *rs, size_t rs_len,
		    unsigned char *der, size_t size, size_t *der_len);

/* Verifies a signature (DER for EC) of msg with the certificate (DER). */
int bench_verify(enum bench_kind kind, const unsigned char *cert_der,
		 size_t cert_len, const unsigned char *msg, size_t msg_len,
		 const unsigned char *sig, size_t sig_len);

/* The same with the certificate in a PEM file. */
int bench_verify_pem(enum bench_kind kind, const char *cert_pem,
		     const unsigned char *msg, size_t msg_len,
		     const unsigned char *sig, size_t sig_len);

/* How bench_evp_sign names SHA-256 to EVP_DigestSignInit: by name, as a
 * program on providers does (EVP_DigestSignInit_ex "SHA256"), or by the
 * legacy EVP_MD (EVP_DigestSignInit EVP_sha256(), an engine's way). */
enum bench_md_by { BENCH_MD_BY_NAME, BENCH_MD_LEGACY };

/* The bench of an EVP_PKEY whose private key is elsewhere (a provider's
 * or an engine's): on o->threads threads, each signature a new init and
 * EVP_DigestSign (SHA-256) of bench_message, as an application signs; the
 * last one verified with o->cert; reported as `what`.  0, or -1 (said). */
int bench_evp_sign(const char *what, EVP_PKEY *pkey, enum bench_md_by by,
		   const struct bench_signer_opts *o);

/* One loaded and initialised PKCS#11 module and the slot of one token. */
struct bench_p11 {
	void *dl;
	CK_FUNCTION_LIST *f;
	CK_SLOT_ID slot;
	int initialized;
};

/* dlopen, C_GetFunctionList, C_Initialize (CKF_OS_LOCKING_OK), and the
 * slot whose token is labelled `label`. */
int bench_p11_open(struct bench_p11 *p, const char *module, const char *label);

/* C_Finalize (when initialised here) and dlclose.  Accepts a zeroed p. */
void bench_p11_close(struct bench_p11 *p);

/* A read-only session on the token. */
int bench_p11_session(struct bench_p11 *p, CK_SESSION_HANDLE *s);

/* User login with the PIN of pin_file (the buffer is cleansed). */
int bench_p11_login(struct bench_p11 *p, CK_SESSION_HANDLE s,
		    const char *pin_file);

/* The one object of class cls with this CKA_ID. */
int bench_p11_find(struct bench_p11 *p, CK_SESSION_HANDLE s,
		   CK_OBJECT_CLASS cls, const unsigned char *id, size_t id_len,
		   CK_OBJECT_HANDLE *obj);

/* CKA_VALUE of an object (a certificate's DER); *value is malloc'ed. */
int bench_p11_value(struct bench_p11 *p, CK_SESSION_HANDLE s,
		    CK_OBJECT_HANDLE obj, unsigned char **value, size_t *len);

/* C_SignInit + C_Sign of msg's SHA-256 (see above) into sig, which holds
 * BENCH_MAX_SIG bytes.  EC signatures come back as the token gives them:
 * r || s. */
int bench_p11_sign(struct bench_p11 *p, CK_SESSION_HANDLE s,
		   CK_OBJECT_HANDLE key, enum bench_kind kind,
		   const unsigned char *msg, size_t msg_len,
		   unsigned char *sig, size_t *sig_len);

#endif
