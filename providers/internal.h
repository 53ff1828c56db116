/*
 * providers/internal.h — what the files of the OpenSSL provider "custody"
 * share (not installed): the provider context, the key object, errors.
 *
 *   custody_provider.c  entry point, parameters, algorithm tables, errors,
 *                       the signing context (rebuilt after fork)
 *   store.c             OSSL_STORE loader for custody: URIs
 *   keymgmt.c           RSA and EC keys held by reference
 *   signature.c         RSA PKCS#1 v1.5, RSA-PSS and ECDSA in the token
 */
#ifndef CUSTODY_PROVIDER_INTERNAL_H
#define CUSTODY_PROVIDER_INTERNAL_H

#include <pthread.h>
#include <sys/types.h>

#include <openssl/core.h>
#include <openssl/crypto.h>
#include <openssl/core_dispatch.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <custody/error.h>
#include <custody/keyref.h>
#include <custody/records.h>
#include <custody/signer.h>

#define PROV_NAME "custody"
#define PROV_PROPS "provider=custody"

/* The provider's own reason codes (custody's status codes, plus these). */
#define PROV_R_BAD_SIGNATURE_REQUEST 64	/* a request the key cannot do */
#define PROV_R_REFUSED_EXPORT 65	/* private parts never leave     */

struct prov_ctx {
	const OSSL_CORE_HANDLE *handle;
	OSSL_LIB_CTX *libctx;		/* OpenSSL's, for software parts   */
	pthread_mutex_t mx;		/* cctx, pid, generation          */
	custody_keyref *settings;	/* provider parameters            */
	custody_ctx *cctx;		/* made at the first signature    */
	pid_t pid;			/* the process cctx belongs to    */
	unsigned long generation;	/* moves when cctx is rebuilt     */
	int released;			/* by the exit handler            */
	/* SHA-256, -384, -512 of the software providers, fetched at their
	 * first use (prov_digest): a signature context needs one at each
	 * init, and a fetch by name costs more than the rest of an init. */
	EVP_MD *digests[3];		/* atomic                          */
};

/* The software digest of nid (NID_sha256, _sha384, _sha512), fetched
 * once per provider, shared (the caller takes no reference); NULL for
 * another nid or when the fetch fails. */
const EVP_MD *prov_digest(struct prov_ctx *prov, int nid);

/* A key object: a reference to one certificate's key in the token. */
struct prov_key {
	struct prov_ctx *prov;
	int refs;			/* atomic                          */
	char type[CUSTODY_NAME_MAX + 1];
	char identity[CUSTODY_NAME_MAX + 1];	/* "" = node, else global  */
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];	/* pinned          */
	char key_id[CUSTODY_KEY_ID_HEX + 1];
	int is_rsa;
	EVP_PKEY *pub;			/* the certificate's public key    */
	int bits, security_bits, max_sig;
	pthread_mutex_t mx;		/* signer, signer_generation       */
	custody_signer *signer;		/* of prov->cctx                   */
	unsigned long signer_generation;
};

/* Errors: one OpenSSL error entry carrying custody's message. */
#define prov_raise(prov, func, err) \
	prov_raise_at((prov), OPENSSL_FILE, OPENSSL_LINE, (func), (err))
#define prov_raise_msg(prov, func, ...) \
	prov_raise_msg_at((prov), OPENSSL_FILE, OPENSSL_LINE, (func), \
			  __VA_ARGS__)
void prov_raise_at(const struct prov_ctx *prov, const char *file, int line,
		   const char *func, const custody_err *err);
void prov_raise_msg_at(const struct prov_ctx *prov, const char *file,
		       int line, const char *func, int reason,
		       const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* The signer of key on this process's signing context: the context is
 * made on first use and made again in a child after fork (PKCS#11
 * sessions do not survive fork); so is the key's signer. */
int prov_key_signer(struct prov_key *key, custody_signer **out,
		    custody_err *err);

/* After anything that used the signing context: once its token is open
 * (so the PKCS#11 module loaded), registers (once) the exit handler that
 * frees signing contexts before the module's destructors run. */
void prov_token_opened(struct prov_ctx *prov);

/* The signer for type@identity (identity "" = node, else global) on this
 * process's context, and that context's generation. */
int prov_signer_open(struct prov_ctx *prov, const char *type,
		     const char *identity, custody_signer **out,
		     unsigned long *gen, custody_err *err);

/* The certificate in slot `which` of type@identity's assignment, from the
 * store only (no token, no PIN: custody_keyref_load_slot_cert); *cert is
 * the caller's. */
int prov_load_cert(struct prov_ctx *prov, const char *type,
		   const char *identity, int which, X509 **cert,
		   custody_err *err);

/* The property query of the provider's own software operations (parsing
 * a certificate, verifying the load-time test signature): never this
 * provider, whose keys are references. */
#define PROV_SOFTWARE_PROPQ "provider!=custody"

/* A new key object for the current/previous/pending certificate of
 * type@identity, resolved now through the signer (the store's integrity
 * tags checked with the token) and pinned to it (public half from the
 * certificate), after one test signature verified with the certificate;
 * *cert_der receives the certificate's DER (free()). */
int prov_key_resolve(struct prov_ctx *prov, const char *type,
		     const char *identity, int which, struct prov_key **out,
		     unsigned char **cert_der, size_t *cert_len,
		     custody_err *err);
void prov_key_up(struct prov_key *key);

void prov_key_free(struct prov_key *key);

/* Signs a digest with key (scheme and digest as custody_signer_sign). */
int prov_key_sign_digest(struct prov_key *key, enum custody_sig_scheme scheme,
			 int digest_nid, const unsigned char *md,
			 size_t md_len, unsigned char **sig, size_t *sig_len,
			 custody_err *err);

extern const OSSL_DISPATCH prov_store_functions[];
extern const OSSL_DISPATCH prov_rsa_keymgmt_functions[];
extern const OSSL_DISPATCH prov_ec_keymgmt_functions[];
extern const OSSL_DISPATCH prov_rsa_signature_functions[];
extern const OSSL_DISPATCH prov_ec_signature_functions[];

#endif
