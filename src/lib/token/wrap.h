/*
 * token/wrap.h — the cluster key ceremony on one token: the KEK, the
 * transport keys, the cluster authority and the key packages
 * (token/wrap.c, token/authority.c).
 *
 * Not installed: only the cluster module (src/lib/cluster/, with the
 * store's integrity tags) and the transaction helper's undo list
 * (ops/txn.c) call these; programs reach them through custody/cluster.h
 * and custody/integrity.h.  The functions
 * keep their custody_ names (libcustody exports custody_* only).
 */
#ifndef CUSTODY_TOKEN_WRAP_H
#define CUSTODY_TOKEN_WRAP_H

#include <stddef.h>
#include <openssl/x509.h>
#include <custody/error.h>
#include <custody/records.h>
#include <custody/token.h>

/* ---- the cluster key ceremony: KEK, transport keys, packages
 *      (token/wrap.c) --------------------------------------------------- */

/*
 * The cluster KEK is an AES-256 secret key living only inside tokens,
 * under CKA_ID and CKA_LABEL "custody-kek".  It moves between nodes only
 * wrapped with RSA-OAEP (SHA-1, MGF1-SHA1: all SoftHSM 2.6.1 accepts) for
 * a node's transport key that the security officer made trusted on the
 * sending token.  Private keys move wrapped under the KEK with
 * CKM_AES_KEY_WRAP_PAD (a PKCS#8 inside: a "package").
 *
 * The KEK, on the node that made it and on every node that joined: token,
 * private, sensitive; wrap and unwrap only (CKA_ENCRYPT, DECRYPT, SIGN,
 * VERIFY, DERIVE false: SoftHSM defaults them TRUE for secret keys);
 * extractable only under a trusted key (CKA_WRAP_WITH_TRUSTED), so a
 * joined node can admit further nodes and nothing else can take it out;
 * CKA_TRUSTED only where the token lets the user make a trusted private
 * key (token_probe_trusted_private_kek, token/caps.c).  Its CKA_UNWRAP_TEMPLATE
 * makes every key unwrapped under it a private key object that is token,
 * private, sensitive and not extractable (SoftHSM 2.6.1 enforces it:
 * another template is CKR_TEMPLATE_INCONSISTENT).
 *
 * Key check value (KCV): the first 3 bytes of the RFC 3394 AES Key Wrap
 * (CKM_AES_KEY_WRAP, default IV) of sixteen zero bytes under the KEK, as
 * 6 upper-case hex digits.  It is not the AES-ECB KCV: that needs
 * CKA_ENCRYPT, which would turn the KEK into an encryption oracle; this
 * one needs only CKA_WRAP, which the KEK has anyway.  OpenSSL computes
 * the same with EVP_aes_256_wrap() from the key value.
 *
 * The KEK check: the first 8 bytes of the same wrap, as 16 upper-case
 * hex digits, of which the key check value is the first 6.  A 24-bit value
 * can be matched by brute force in seconds; the admission that node join
 * accepts is signed over the 64-bit check.
 *
 * Node names are 1..64 of [A-Za-z0-9._-] (anything else is EUSAGE).  A
 * node's own transport key pair has CKA_ID "custody-transport:NODE"; the
 * trusted copy of another node's public half that admit makes lives only
 * for the wrap, as a session object with CKA_ID "custody-admitted:NODE"
 * (earlier versions kept it as a token object: admit destroys those).
 *
 * Every key made here has CKA_COPYABLE false where the token knows that
 * attribute, so that a holder of the user PIN cannot C_CopyObject one
 * into a key with other attributes.  Everything here needs a logged-in
 * user.  The steps of the ceremony are narrated (custody_step).
 */
#define CUSTODY_KEK_ID "custody-kek"
#define CUSTODY_KEK_CHECK_HEX 16
#define CUSTODY_AUTHORITY_ID "custody-authority"
#define CUSTODY_NODE_NAME_MAX 64

/* Generates the KEK (kek create).  EFAIL "token L already holds a KEK
 * (KCV X)" when there is one.  kcv receives its key check value. */
int custody_token_kek_create(custody_token *tok,
			     char kcv[CUSTODY_KCV_HEX + 1], custody_err *err);

/* *present = 1 when the token holds a KEK. */
int custody_token_kek_present(custody_token *tok, int *present,
			      custody_err *err);

/* The KEK's key check value; ENOTFOUND "token L holds no KEK". */
int custody_token_kek_kcv(custody_token *tok, char kcv[CUSTODY_KCV_HEX + 1],
			  custody_err *err);

/* The KEK's 64-bit check (16 hex digits); ENOTFOUND as above. */
int custody_token_kek_check(custody_token *tok,
			    char check[CUSTODY_KEK_CHECK_HEX + 1],
			    custody_err *err);

/*
 * The integrity tag of a store row (custody/store.h): the first 16 bytes
 * of SHA-256(AES-KW(KEK, digest)), lower-case hex, where digest is the
 * SHA-256 of the row's canonical form.  The digest goes into a session
 * AES key made for the one wrap and destroyed after it; the KEK never
 * leaves the token.  ENOTFOUND "token L holds no KEK".
 */
int custody_token_kek_tag(custody_token *tok,
			  const unsigned char digest[CUSTODY_TAG_INPUT_LEN],
			  char tag[CUSTODY_TAG_HEX + 1], custody_err *err);

/*
 * Generates this node's RSA-3072 transport key pair (node enroll).  The
 * private half: token, private, sensitive, never extractable, CKA_UNWRAP
 * only (DECRYPT, SIGN, SIGN_RECOVER, DERIVE false), with a
 * CKA_UNWRAP_TEMPLATE that admits only a KEK as described above.  The
 * public half: a token object with every usage false (it is only read).
 * *spki receives the public key as DER SubjectPublicKeyInfo (malloc'ed).
 * EFAIL "node N already has a transport key on token L" when it has one.
 */
int custody_token_transport_create(custody_token *tok, const char *node,
				   unsigned char **spki, size_t *spki_len,
				   custody_err *err);

/* The SubjectPublicKeyInfo of this node's transport key (malloc'ed);
 * ENOTFOUND when the node has none on this token. */
int custody_token_transport_public(custody_token *tok, const char *node,
				   unsigned char **spki, size_t *spki_len,
				   custody_err *err);

/*
 * node admit, on a token that holds the KEK: logs the user out (login is
 * per process and token: every handle of this process on this token is
 * logged out), logs in as SO with so_pin, creates NODE's transport public
 * key (spki: DER SubjectPublicKeyInfo, RSA of at least 3072 bits) as a
 * trusted wrapping key that is a session object (CKA_TOKEN false), logs
 * the SO out and the user in again with user_pin — on every path — then
 * wraps the KEK for it (RSA-OAEP; *blob malloc'ed) and destroys the
 * trusted key.  Nothing trusted stays on the token: wrapping the KEK for
 * a node takes the SO PIN every time.  Trusted transport keys that
 * earlier versions left as token objects are destroyed on the way.
 *
 * Refuses before any login when the token holds no KEK (ENOTFOUND) or the
 * key is not RSA-3072+ (EFAIL); without C_Login when the token says the
 * SO PIN is locked or on its final try (EPIN); a rejected SO PIN is EPIN
 * "cannot log in to token L as security officer: the token rejected the
 * PIN", never retried.
 */
int custody_token_admit_wrap_kek(custody_token *tok, const char *so_pin,
				 size_t so_pin_len, const char *user_pin,
				 size_t user_pin_len, const char *node,
				 const unsigned char *spki, size_t spki_len,
				 unsigned char **blob, size_t *blob_len,
				 custody_err *err);

/*
 * node join: unwraps blob with NODE's (this node's) transport private key
 * into the token as the KEK, with the KEK's template above (so this node
 * can admit others in turn), and checks it against expected_kcv: a key
 * check value (6 hex digits) or a KEK check (16), any case.  A mismatch destroys the
 * unwrapped key again: EFAIL "the unwrapped KEK does not match: key check
 * value X, expected Y".  A token that already holds the KEK with that
 * KCV: OK, nothing created; with another KCV: EFAIL.
 */
int custody_token_unwrap_kek(custody_token *tok, const char *node,
			     const unsigned char *blob, size_t blob_len,
			     const char *expected_kcv, custody_err *err);

/*
 * The cluster authority (token/authority.c): an EC P-256 key pair with
 * CKA_ID "custody-authority" on the token of the member that made the
 * KEK.  The private half is token, private, sensitive, never extractable,
 * not copyable, CKA_SIGN only; it signs admissions.  Other nodes pin its
 * public half (DER SubjectPublicKeyInfo) at enroll as a private,
 * unmodifiable data object (CKA_APPLICATION "custody-authority").
 */

/* Generates it; EFAIL when the token already holds one.  *spki: its
 * public key (malloc'ed). */
int custody_token_authority_create(custody_token *tok, unsigned char **spki,
				   size_t *spki_len, custody_err *err);
/* Its public key; ENOTFOUND when this token does not hold the authority. */
int custody_token_authority_public(custody_token *tok, unsigned char **spki,
				   size_t *spki_len, custody_err *err);
/* Destroys it (a kek create that could not finish). */
int custody_token_authority_destroy(custody_token *tok, custody_err *err);
/* ECDSA over SHA-256 of msg, DER-encoded (*sig malloc'ed); ENOTFOUND when
 * this token does not hold the authority. */
int custody_token_authority_sign(custody_token *tok, const unsigned char *msg,
				 size_t msg_len, unsigned char **sig,
				 size_t *sig_len, custody_err *err);
/* The pinned public key; ENOTFOUND when nothing is pinned. */
int custody_token_authority_pinned(custody_token *tok, unsigned char **spki,
				   size_t *spki_len, custody_err *err);
/* Pins spki; EFAIL when another (or the same) is pinned already. */
int custody_token_authority_pin(custody_token *tok, const unsigned char *spki,
				size_t spki_len, custody_err *err);
/* Removes the pin (OK when there is none). */
int custody_token_authority_unpin(custody_token *tok, custody_err *err);

/*
 * The package of the private key with this key id: the key wrapped under
 * the KEK with CKM_AES_KEY_WRAP_PAD (*blob malloc'ed).  The token refuses
 * a key that is not extractable (EFAIL ...: CKR_KEY_UNEXTRACTABLE, with a
 * hint) or that may only go under a trusted key (CKR_KEY_NOT_WRAPPABLE).
 * ENOTFOUND when no private key has this id or the token holds no KEK.
 */
int custody_token_wrap_private_key(custody_token *tok, const char *key_id,
				   unsigned char **blob, size_t *blob_len,
				   custody_err *err);

/*
 * sync / import --package: unwraps a package under the KEK into a private
 * key of cert's key type (RSA or EC), with the key id of cert (cert.h)
 * and `label` (NULL: the subject CN): token, private, sensitive, SIGN
 * true, never extractable, SIGN_RECOVER, DECRYPT, UNWRAP, DERIVE false.
 * Then the public key object (from the certificate) and the certificate
 * object are created as custody_token_import does, and the key is checked
 * with custody_token_verify_key.  All or nothing: a package that does not
 * unwrap (damaged, cut, made under another KEK: EFAIL "cannot unwrap the
 * package of key id X on token L: CKR_..."), a key that does not match
 * the certificate, or any other failure leaves no object behind.  EFAIL
 * "a private key with key id X is already on token L" when there is one.
 */
int custody_token_unwrap_private_key(custody_token *tok,
				     const unsigned char *blob,
				     size_t blob_len, const char *label,
				     X509 *cert, custody_err *err);

/* seal: turns CKA_EXTRACTABLE off for the private key with this key id
 * (it cannot be turned on again).  A key already not extractable: OK.
 * ENOTFOUND when there is none. */
int custody_token_seal(custody_token *tok, const char *key_id,
		       custody_err *err);

/* After node join (cluster/cluster.c): destroys this node's transport key pair
 * (CKA_ID "custody-transport:NODE"), so that the KEK wrapped for it can
 * never be unwrapped again, by anyone.  ENOTFOUND when there is none. */
int custody_token_transport_destroy(custody_token *tok, const char *node,
				    custody_err *err);

/* Destroys the KEK on this token: only to undo a `kek create` or a join
 * whose store write failed.  ENOTFOUND when the token holds none. */
int custody_token_kek_destroy(custody_token *tok, custody_err *err);

#endif
