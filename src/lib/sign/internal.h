/*
 * sign/internal.h — what the files of the sign module share (not
 * installed): keyref.c and signer.c open their token the same way.
 */
#ifndef CUSTODY_SIGN_INTERNAL_H
#define CUSTODY_SIGN_INTERNAL_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <custody/error.h>
#include <custody/records.h>
#include <custody/signer.h>
#include <custody/token.h>

/* Opens the token of spec and logs in with the user PIN read from
 * pin_source (custody/secret.h; asked for as "User PIN for token
 * LABEL: "), cleansed before it returns.  EUSAGE before anything is
 * opened when spec names no module (with module_hint) or pin_source is
 * NULL (with pin_hint) or no PIN source.  On failure *out is NULL and the
 * token is closed again. */
int sign_token_login(const custody_token_spec *spec, const char *pin_source,
		     const char *module_hint, const char *pin_hint,
		     custody_token **out, custody_err *err);

/*
 * agent_signer.c: a ctx whose signers go through custody's agent
 * (custody/agent_client.h) instead of a token: a pool of at most conns
 * connections to the agent at path (made when first needed), and the
 * facts of the certificates it named.  Threads as custody/signer.h says.
 */
struct sign_agent;

int sign_agent_new(const char *path, int conns, struct sign_agent **out,
		   custody_err *err);
void sign_agent_free(struct sign_agent *ag);
const char *sign_agent_path(const struct sign_agent *ag);

/* custody_signer_open's check: the current certificate of (type,
 * identity: "" = the agent's node, then global), else a pending one;
 * the agent's refusal, ENOTFOUND or an unreachable agent otherwise. */
int sign_agent_open(struct sign_agent *ag, const char *type,
		    const char *identity, custody_err *err);

/* The certificate in slot `which` (enum custody_slot_name) now, as a
 * record made from the DER the agent sent (out is the caller's). */
int sign_agent_cert(struct sign_agent *ag, const char *type,
		    const char *identity, int which, custody_cert_record *out,
		    custody_err *err);

/* Signs the digest md (md_len bytes of digest_nid) with the current
 * certificate's key, or the pinned one's (pinned: a thumbprint, or
 * NULL); *sig is malloc'ed; info as custody_signer_sign fills it. */
int sign_agent_sign(struct sign_agent *ag, const char *type,
		    const char *identity, const char *pinned,
		    enum custody_sig_scheme scheme, int digest_nid,
		    const unsigned char *md, size_t md_len,
		    unsigned char **sig, size_t *sig_len,
		    custody_signature_info *info, custody_err *err);

/*
 * agent_evp.c: the public key of cert as an EVP_PKEY whose signatures
 * signer makes with thumbprint's key (custody_signer_sign_pinned: the
 * agent's).  *state is what the key's method refers to: the caller frees
 * it (free()) and closes signer after the last use of *out.
 */
int sign_agent_evp(custody_signer *signer, const char *thumbprint, X509 *cert,
		   void **state, EVP_PKEY **out, custody_err *err);

#endif
