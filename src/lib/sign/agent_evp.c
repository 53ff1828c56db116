/*
 * sign/agent_evp.c — a certificate's key as an OpenSSL EVP_PKEY whose
 * signatures the custody agent makes (custody_keyref_load_key with an
 * agent configured: the OpenSSL engine's keys).
 *
 * The key is the certificate's public key with a method of its own
 * (RSA_METHOD, EC_KEY_METHOD), the way an engine's token keys are made:
 * OpenSSL treats such a key as foreign and signs through the method.  The
 * method signs a digest with custody_signer_sign_pinned (the agent's
 * SIGN_REQUEST naming the certificate's thumbprint), so the key always
 * signs with the key of the certificate it was loaded with.
 *
 * What the agent cannot do: it signs digests with PKCS#1 v1.5, PSS (salt
 * = digest length) or ECDSA, and takes SHA-256, -384 and -512 digests.  An
 * RSA private "encryption" of a block OpenSSL padded itself (RSA-PSS
 * through the legacy key path, a raw pkeyutl -sign without a digest) is
 * refused with an error that says so; the provider (custody/signer.h's
 * schemes) does RSA-PSS through the agent.
 */
#include "config.h"

/* RSA_METHOD and EC_KEY_METHOD are deprecated in OpenSSL 3 with the
 * ENGINE API whose keys they make: this file serves the engine. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <custody/log.h>
#include <custody/signer.h>

#include "sign/internal.h"

#ifdef OPENSSL_NO_DEPRECATED_3_0
int
sign_agent_evp(custody_signer *signer, const char *thumbprint, X509 *cert,
	       void **state, EVP_PKEY **out, custody_err *err)
{
	(void)signer, (void)thumbprint, (void)cert;
	*state = NULL;
	*out = NULL;
	return custody_err_set(err, CUSTODY_EFAIL,
			       "this OpenSSL has no key methods: use the "
			       "custody provider with the agent");
}
#else
struct agent_key {
	custody_signer *signer;		/* not owned: the keyref's */
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
};

static int rsa_index = -1, ec_index = -1;
static RSA_METHOD *rsa_method;
static EC_KEY_METHOD *ec_method;
static CRYPTO_ONCE methods_once = CRYPTO_ONCE_STATIC_INIT;

/* One OpenSSL error entry with custody's message (the caller's
 * ERR_print_errors shows why the agent refused). */
static void
raise_error(const custody_err *err)
{
	ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL, "custody agent: %s",
		       err->msg);
}

static int
nid_of_digest_len(size_t len)
{
	return len == 32 ? NID_sha256 : len == 48 ? NID_sha384 :
	       len == 64 ? NID_sha512 : NID_undef;
}

/* Signs md with the key's certificate through the agent. */
static int
agent_key_sign(const struct agent_key *k, enum custody_sig_scheme scheme,
	       int nid, const unsigned char *md, size_t md_len,
	       unsigned char **sig, size_t *sig_len)
{
	custody_err err;

	custody_err_clear(&err);
	if (k == NULL) {
		custody_err_set(&err, CUSTODY_EFAIL, "a key without its signer");
		raise_error(&err);
		return 0;
	}
	if (custody_signer_sign_pinned(k->signer, k->thumbprint, scheme, nid,
				       md, md_len, 1, sig, sig_len, NULL,
				       &err) != CUSTODY_OK) {
		raise_error(&err);
		return 0;
	}
	return 1;
}

/* RSA_sign's method: PKCS#1 v1.5 over a digest (TLS 1.2, dgst -sign). */
static int
rsa_sign(int type, const unsigned char *m, unsigned int m_len,
	 unsigned char *sigret, unsigned int *siglen, const RSA *rsa)
{
	const struct agent_key *k = RSA_get_ex_data(rsa, rsa_index);
	unsigned char *sig = NULL;
	size_t len = 0;
	int ok;

	if (type != NID_sha256 && type != NID_sha384 && type != NID_sha512) {
		ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL,
			       "custody agent: it signs SHA-256, SHA-384 or "
			       "SHA-512 digests, not %s",
			       OBJ_nid2sn(type) != NULL ? OBJ_nid2sn(type) : "?");
		return 0;
	}
	ok = agent_key_sign(k, CUSTODY_SIG_RSA_PKCS1, type, m, m_len, &sig,
			    &len);
	if (ok && len > (size_t)RSA_size(rsa)) {
		ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL,
			       "custody agent: a signature of %zu bytes", len);
		ok = 0;
	}
	if (ok) {
		memcpy(sigret, sig, len);
		*siglen = (unsigned int)len;
	}
	free(sig);
	return ok;
}

/* A block OpenSSL padded itself: the agent signs digests only. */
static int
rsa_priv_enc(int flen, const unsigned char *from, unsigned char *to,
	     RSA *rsa, int padding)
{
	(void)flen, (void)from, (void)to, (void)rsa, (void)padding;
	ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL,
		       "custody agent: it signs a digest (PKCS#1 v1.5 with a "
		       "digest named, or ECDSA), not a block padded here "
		       "(RSA-PSS or no digest): use the custody provider, or "
		       "the token itself (agent.socket = none)");
	return -1;
}

/* ECDSA_do_sign's method: r || s from the agent, as an ECDSA_SIG. */
static ECDSA_SIG *
ec_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv,
	    const BIGNUM *r, EC_KEY *eckey)
{
	const struct agent_key *k = EC_KEY_get_ex_data(eckey, ec_index);
	unsigned char *sig = NULL;
	size_t len = 0, half;
	int nid = nid_of_digest_len((size_t)dlen);
	BIGNUM *br = NULL, *bs = NULL;
	ECDSA_SIG *out = NULL;

	(void)kinv, (void)r;
	if (nid == NID_undef) {
		ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL,
			       "custody agent: it signs SHA-256, SHA-384 or "
			       "SHA-512 digests, not one of %d bytes", dlen);
		return NULL;
	}
	if (!agent_key_sign(k, CUSTODY_SIG_ECDSA_RAW, nid, dgst, (size_t)dlen,
			    &sig, &len))
		return NULL;
	half = len / 2;
	if (len == 0 || len % 2 != 0 ||
	    (br = BN_bin2bn(sig, (int)half, NULL)) == NULL ||
	    (bs = BN_bin2bn(sig + half, (int)half, NULL)) == NULL ||
	    (out = ECDSA_SIG_new()) == NULL || ECDSA_SIG_set0(out, br, bs) != 1) {
		ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL,
			       "custody agent: an ECDSA signature of %zu bytes",
			       len);
		ECDSA_SIG_free(out);
		out = NULL;
		BN_free(br);
		BN_free(bs);
	}
	free(sig);
	return out;
}

static void
make_methods(void)
{
	int (*ec_sign)(int, const unsigned char *, int, unsigned char *,
		       unsigned int *, const BIGNUM *, const BIGNUM *,
		       EC_KEY *) = NULL;
	int (*ec_setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **) = NULL;
	ECDSA_SIG *(*ec_sig)(const unsigned char *, int, const BIGNUM *,
			     const BIGNUM *, EC_KEY *) = NULL;

	rsa_index = RSA_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	ec_index = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if ((rsa_method = RSA_meth_dup(RSA_get_default_method())) != NULL) {
		RSA_meth_set1_name(rsa_method, "custody agent RSA");
		RSA_meth_set_sign(rsa_method, rsa_sign);
		RSA_meth_set_priv_enc(rsa_method, rsa_priv_enc);
	}
	if ((ec_method = EC_KEY_METHOD_new(EC_KEY_get_default_method())) !=
	    NULL) {
		/* The default sign makes DER of what sign_sig returns. */
		EC_KEY_METHOD_get_sign(ec_method, &ec_sign, &ec_setup, &ec_sig);
		EC_KEY_METHOD_set_sign(ec_method, ec_sign, NULL, ec_sign_sig);
	}
}

/* The certificate's public key with the agent's signing method. */
static int
foreign_key(EVP_PKEY *pub, struct agent_key *k, EVP_PKEY **out,
	    custody_err *err)
{
	EVP_PKEY *pkey = NULL;
	RSA *rsa = NULL;
	EC_KEY *ec = NULL;
	int id = EVP_PKEY_get_base_id(pub);

	if ((pkey = EVP_PKEY_new()) == NULL)
		goto fail;
	if (id == EVP_PKEY_RSA) {
		if ((rsa = RSAPublicKey_dup(EVP_PKEY_get0_RSA(pub))) == NULL ||
		    RSA_set_method(rsa, rsa_method) != 1 ||
		    RSA_set_ex_data(rsa, rsa_index, k) != 1 ||
		    EVP_PKEY_assign_RSA(pkey, rsa) != 1)
			goto fail;
	} else if (id == EVP_PKEY_EC) {
		if ((ec = EC_KEY_dup(EVP_PKEY_get0_EC_KEY(pub))) == NULL ||
		    EC_KEY_set_method(ec, ec_method) != 1 ||
		    EC_KEY_set_ex_data(ec, ec_index, k) != 1 ||
		    EVP_PKEY_assign_EC_KEY(pkey, ec) != 1)
			goto fail;
	} else {
		EVP_PKEY_free(pkey);
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the agent's certificate %s has a key "
				       "that is neither RSA nor EC",
				       k->thumbprint);
	}
	*out = pkey;
	return CUSTODY_OK;
fail:
	RSA_free(rsa);
	EC_KEY_free(ec);
	EVP_PKEY_free(pkey);
	return custody_err_openssl(err, CUSTODY_EFAIL,
				   "cannot make a key that signs through the "
				   "agent");
}

int
sign_agent_evp(custody_signer *signer, const char *thumbprint, X509 *cert,
	       void **state, EVP_PKEY **out, custody_err *err)
{
	struct agent_key *k;
	EVP_PKEY *pub = X509_get0_pubkey(cert);
	int r;

	*out = NULL;
	*state = NULL;
	if (!CRYPTO_THREAD_run_once(&methods_once, make_methods) ||
	    rsa_method == NULL || ec_method == NULL || rsa_index < 0 ||
	    ec_index < 0)
		return custody_err_openssl(err, CUSTODY_EFAIL,
					   "cannot make the agent's key "
					   "methods");
	if (pub == NULL)
		return custody_err_openssl(err, CUSTODY_EFAIL,
					   "certificate %s has no public key",
					   thumbprint);
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "out of memory");
	k->signer = signer;
	snprintf(k->thumbprint, sizeof(k->thumbprint), "%s", thumbprint);
	if ((r = foreign_key(pub, k, out, err)) != CUSTODY_OK) {
		free(k);
		return r;
	}
	*state = k;
	return CUSTODY_OK;
}
#endif
