/*
 * custody/keyref.h — a certificate type name as an OpenSSL key: what an
 * OpenSSL engine or provider needs from libcustody, and nothing of either.
 *
 * A key reference is "Type" or "Type@identity" ("OAuthTokenIssuer",
 * "WebServicesInternal@node2").  Without an identity it means this node's
 * assignment of the type when there is one, else the global one
 * (custody_assign_lookup, as the `custody` command and the signer look it
 * up; a record at this node with nothing current now is not passed over
 * for the global one).  Every load resolves the reference anew
 * through the store at the current time, so that after `custody set` or a
 * roll's effective instant the next load gives the new key; nothing is
 * cached across loads but the open token.
 *
 * Configuration, settled on every load as the `custody` command settles
 * it (custody_config_settle): the config file (custody_keyref_set CONFIG,
 * else $CUSTODY_CONFIG — empty: none —, else CUSTODY_DEFAULT_CONFIG when
 * it exists), then the CUSTODY_* environment (custody_config_apply_env),
 * then the values set with custody_keyref_set; this node's name by
 * custody_config_node_name.  The PIN comes from the PIN source only
 * (custody/secret.h: "prompt" reads /dev/tty and fails without a
 * terminal); without a PIN source a private key load fails.
 *
 * With an agent configured (custody_config_agent_socket: agent.socket,
 * CUSTODY_AGENT) nothing here opens the store or the token, and no PIN is
 * read: certificates come from the agent (CERT_REQUEST), and a private
 * key load gives an EVP_PKEY (the certificate's public key with a method
 * of its own) that signs through the agent with that certificate's key:
 * PKCS#1 v1.5 with a SHA-256/384/512 digest named, and ECDSA; RSA-PSS or
 * a block padded by OpenSSL is refused (the provider does PSS through the
 * agent).  Such a key, too, must be freed before custody_keyref_free().
 *
 * Ownership and order of release:
 * - custody_keyref_load_key() opens the token on its first call (taking
 *   the token lock of custody/token.h: other custody processes wait for
 *   the token until custody_keyref_free()) and keeps it open, logged in,
 *   for every later load; each key is a custody_token_evp kept by the
 *   custody_keyref.  The EVP_PKEY handed out is a new reference to that
 *   token-backed key: the caller frees it (EVP_PKEY_free) — and must do so
 *   before custody_keyref_free(), which closes every key's libp11 context
 *   (keys first, then libp11, then the token, as libp11 0.4.12 requires).
 *   Never EVP_PKEY_dup such a key.
 * - Certificates and public keys are software objects read from the
 *   store: they need no token and no PIN, and outlive the custody_keyref.
 *
 * Threads: the functions of one custody_keyref must be called from one
 * thread at a time (the caller serialises them).  The EVP_PKEYs it gave
 * may sign from several threads at once (measured for libp11 0.4.12's
 * keys).  A load while other threads sign uses its own libp11
 * context and sessions, which should be safe but is not tested.  After
 * fork, keys of the parent must not be used in the child.
 */
#ifndef CUSTODY_KEYREF_H
#define CUSTODY_KEYREF_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <custody/error.h>
#include <custody/records.h>
#include <custody/signer.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct custody_keyref custody_keyref;

/* What an engine control command or a provider parameter may set. */
enum custody_keyref_setting {
	CUSTODY_KEYREF_CONFIG = 0,	/* config file path ("" = none)   */
	CUSTODY_KEYREF_MODULE,		/* token.module                   */
	CUSTODY_KEYREF_TOKEN,		/* token label or pkcs11: URI     */
	CUSTODY_KEYREF_PIN_SOURCE,	/* token.pin-source               */
	CUSTODY_KEYREF_STORE,		/* store.url                      */
	CUSTODY_KEYREF_NODE,		/* node.name                      */
};

int custody_keyref_new(custody_keyref **out, custody_err *err);

/*
 * Sets one value, as the `custody` command's option of the same name
 * would (it wins over the file and the environment at the next load).
 * The value's form is checked now (EUSAGE, as custody_config_set says);
 * NULL unsets it.  Changing the module or the token after the token was
 * opened is EUSAGE.
 */
int custody_keyref_set(custody_keyref *kr, enum custody_keyref_setting what,
		       const char *value, custody_err *err);

/*
 * The certificate that is current now for the key reference `name`, read
 * from the store (no token, no PIN).  *cert is the caller's (X509_free).
 * Errors say which name failed: EUSAGE for a malformed name or
 * configuration, ENOTFOUND "no certificate is assigned for type T
 * (identity I)" when nothing is current.
 */
int custody_keyref_load_cert(custody_keyref *kr, const char *name, X509 **cert,
			     custody_err *err);

/*
 * As custody_keyref_load_cert, for one slot of the assignment resolved
 * now: which is CUSTODY_SLOT_CURRENT, _PREVIOUS or _PENDING (custody/
 * assign.h, as an int).  ENOTFOUND "no previous certificate is assigned
 * for type T" when that slot is empty.  Like custody_keyref_load_cert it
 * reads the store only (no token, no PIN), as `custody get` does: the
 * rows' integrity tags are not checked (that needs the token); the
 * certificate is checked against the store's record of it.
 */
int custody_keyref_load_slot_cert(custody_keyref *kr, const char *name,
				  int which, X509 **cert, custody_err *err);

/*
 * The private key of the certificate that is current now for `name`: the
 * token's key as an EVP_PKEY whose private-key operations run in the token
 * (custody_token_evp_open).  *pkey is a reference the caller frees with
 * EVP_PKEY_free before custody_keyref_free(); *cert (may be NULL) receives
 * the certificate as custody_keyref_load_cert does.  Errors as
 * custody_keyref_load_cert, and: EUSAGE "no PKCS#11 module configured" /
 * "no PIN source configured" (with a hint), the errors of the token and
 * of the PIN source (EFAIL "cannot prompt for the PIN: no terminal"),
 * ENOTFOUND when this node's token lacks the key, EFAIL when the token's
 * key does not match the certificate.
 */
int custody_keyref_load_key(custody_keyref *kr, const char *name,
			    EVP_PKEY **pkey, X509 **cert, custody_err *err);

/*
 * A key reference's type and identity, checked as every load checks them
 * (custody_type_canonical, custody_identity_canonical), in canonical
 * form; identity "" when the name has none (this node's assignment, else
 * the global one).  EUSAGE for an empty or malformed name.
 */
int custody_keyref_parse(const char *name, char type[CUSTODY_NAME_MAX + 1],
			 char identity[CUSTODY_NAME_MAX + 1], custody_err *err);

/*
 * A signing context (custody/signer.h) for the configuration settled now
 * as a load settles it (file, environment, values set on kr), for an
 * OpenSSL provider, which signs through the signer's session pool rather
 * than libp11.  Nothing is opened yet (custody_ctx_new_with).  The ctx is
 * the caller's (custody_ctx_free) and independent of kr.
 */
int custody_keyref_ctx_new(const custody_keyref *kr,
			   const custody_ctx_options *options,
			   custody_ctx **out, custody_err *err);

/* 1 when the token is open (a private key load opened it): from then on
 * the PKCS#11 module is loaded, until custody_keyref_free(). */
int custody_keyref_token_is_open(const custody_keyref *kr);

/* Closes every key (libp11 first), then the token; frees kr.  Every
 * EVP_PKEY from custody_keyref_load_key must be freed before.  NULL is
 * accepted. */
void custody_keyref_free(custody_keyref *kr);

#ifdef __cplusplus
}
#endif
#endif
