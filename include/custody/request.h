/*
 * custody/request.h — a key pair generated inside the token, and what is
 * made with it: a PKCS#10 request written to a new file, or a
 * self-signed certificate put on the token and recorded in the store.
 * The private key never leaves the token: the signatures are made by the
 * token (custody/token_x509.h), in the session that generated the key,
 * and checked with the generated public key before anything is written.
 *
 * The ceremony, step by step, on one custody_request that remembers what
 * was made (file, key pair) so that custody_request_finish can undo it
 * when a later step failed: all or nothing.  Each step narrates itself
 * (custody/log.h, CUSTODY_LOG_STEP).  The readers of what a user writes
 * (custody_dn_parse, custody_san_parse) are custody/cert.h's.
 */
#ifndef CUSTODY_REQUEST_H
#define CUSTODY_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <custody/ops.h>
#include <custody/error.h>
#include <custody/policy.h>
#include <custody/records.h>
#include <custody/store.h>
#include <custody/token.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ ceremony */

typedef struct custody_request {
	/* What to make: set by the caller before the first step. */
	custody_keyspec spec;
	X509_NAME *subject;		/* owned: freed by custody_request_clear */
	X509_EXTENSION *san;		/* owned; NULL: no SANs                 */
	const char *san_text;		/* the SANs as given, for the narration  */
	char subject_text[1024];	/* custody_dn_text of subject           */
	char label[256];		/* CKA_LABEL of the key pair             */
	const char *csr_path;		/* a request to this new file; NULL: a
					   self-signed certificate            */
	long days;			/* the certificate's validity          */
	int replicable;			/* the key may be wrapped under the KEK */
	int package;			/* its package goes to the store with
					   the certificate (plan_package)      */
	int existing_key;		/* the request is for a key pair already
					   on the token (custody_request_use_key):
					   nothing is generated, nothing destroyed */
	int64_t now;			/* the certificate's notBefore + 300 s */
	const char *node;		/* this node, for the audit entries    */
	const char *type, *identity;	/* the assignment a rollover makes the
					   key for (its audit entries name it);
					   NULL: none                          */
	/* What was made, for custody_request_finish. */
	int fd;				/* the request file; -1: not open      */
	int created_file;
	int created_key;
	char key_id[CUSTODY_KEY_ID_HEX + 1];
	EVP_PKEY *pub;			/* the generated public key            */
} custody_request;

/* Zeroes rq (fd -1).  custody_request_clear frees what it owns. */
void custody_request_init(custody_request *rq);
void custody_request_clear(custody_request *rq);

/* The policy's key rules on the key spec, before generating: EFAIL "S is
 * refused by the policy: ...". */
int custody_request_check_key_policy(const custody_policy *policy,
				     const custody_keyspec *spec,
				     custody_err *err);

/* Creates rq->csr_path (never an existing file: O_EXCL, no symlink);
 * EFAIL "cannot create PATH: ...". */
int custody_request_create_file(custody_request *rq, custody_err *err);

/* What the token must be able to do (generate the key spec; be a cluster
 * member when replicable), and rq->label free on it: EFAIL otherwise. */
int custody_request_check_token(custody_token *tok, const custody_request *rq,
				custody_err *err);

/* For a replicable key: sets rq->package when the token holds the
 * cluster KEK the store records and a certificate is made; narrates what
 * happens to the key otherwise.  Reads the store only. */
int custody_request_plan_package(custody_token *tok, custody_store *st,
				 custody_request *rq, custody_err *err);

/* Generates the key pair inside the token (rq->key_id, rq->pub). */
int custody_request_generate(custody_token *tok, custody_request *rq,
			     custody_err *err);

/*
 * Instead of custody_request_generate: the request is for the key pair
 * with this key id (hex), already on the token (a renewal on the same
 * key).  Sets rq->key_id, rq->pub (read from its public key object) and
 * rq->spec (its algorithm, for the policy and the digest), and
 * rq->existing_key, so that custody_request_finish never destroys it.
 * EFAIL in one line when the token has no private key with that key id
 * (a request needs the key that signs it) or no public key beside it.
 */
int custody_request_use_key(custody_token *tok, custody_request *rq,
			    const char *key_id, custody_err *err);

/*
 * The CSR mode, after custody_request_generate: the policy is checked on
 * what a certificate for the request will hold, then the request is
 * built (subject, SANs, keyUsage digitalSignature), signed in the token,
 * checked and written to the file made by custody_request_create_file.
 */
int custody_request_write_csr(custody_token *tok, const custody_policy *policy,
			      custody_request *rq, custody_err *err);

/* The CSR's audit entry ("request", "generated key id K on token T,
 * CSR"), in its own store transaction. */
int custody_request_record_csr(custody_token *tok, custody_store *st,
			       const custody_request *rq, custody_err *err);

/* The key id (lower-case hex) whose CSR an audit entry of
 * custody_request_record_csr records for a key it generated; 0 when e is
 * no such entry (the entry says where to look, the token has the word). */
int custody_request_csr_key_id(const custody_audit_entry *e,
			       char out[CUSTODY_KEY_ID_HEX + 1]);

/* A key pair request --csr generated on a token that holds no certificate
 * of it yet: its request waits for the CA. */
typedef struct custody_waiting_key {
	char key_id[CUSTODY_KEY_ID_HEX + 1];
	char key_algorithm[16];		/* "RSA-2048", "EC-P256", "unknown" */
	char *key_uri;			/* pkcs11: URI; may be NULL         */
	int64_t requested;		/* the time of its audit entry      */
} custody_waiting_key;

/* The key pairs waiting for their certificate on tok, oldest request
 * first: those the audit log says request --csr generated, of which tok
 * holds the private key and no certificate.  *out is the caller's
 * (custody_waiting_keys_free). */
int custody_request_list_waiting(custody_token *tok, custody_store *st,
				 custody_waiting_key **out, size_t *n,
				 custody_err *err);
void custody_waiting_keys_free(custody_waiting_key *keys, size_t n);

/*
 * The self-signed mode, after custody_request_generate: the certificate
 * (serial random, valid from now - 300 s for rq->days days, keyUsage
 * digitalSignature, CA:FALSE, subject key identifier = the key id) signed
 * in the token, checked, and held to the policy.  *out: the certificate.
 */
int custody_request_make_cert(custody_token *tok, const custody_policy *policy,
			      const custody_request *rq, X509 **out,
			      custody_err *err);

/*
 * Puts the certificate x on the token beside its key, completes rec (made
 * from x by custody_cert_record_from_x509: label and key URI), and records
 * it in one store transaction: the certificate, its audit entry, its
 * package when rq->package, the assignment change planned for it (assign,
 * from custody_change_plan; NULL: none), this node's report that it holds
 * it.  Rolled back on any failure.
 */
int custody_request_store_cert(custody_token *tok, custody_store *st,
			       const custody_request *rq, X509 *x,
			       custody_cert_record *rec, custody_change *assign,
			       custody_err *err);

/* Ends the ceremony: when ok, the key's note of intent goes (the key is
 * recorded); otherwise what was made goes again (key pair and
 * certificate, the request file), each step narrated, a failure to
 * remove warned of.  Frees rq->pub. */
void custody_request_finish(custody_token *tok, custody_request *rq, int ok);

#ifdef __cplusplus
}
#endif
#endif
