/*
 * sign/agent_signer.c — a ctx that signs through custody's agent (`custody
 * agent`, custody/agent_client.h) instead of its own token: what
 * custody/signer.h promises, for a process that holds no PIN, loads no
 * PKCS#11 module and reads no store.
 *
 * The agent resolves the assignment at every request (a roll or a `custody
 * set` takes effect at the next signature, as with the token) and checks
 * its allow list for this process's user.  Here: a pool of connections
 * (one per concurrent caller, at most the ctx's session count: a thread
 * takes one, makes one call, gives it back), and a small cache of the
 * facts (key id, algorithm) of the certificates the agent named, which a
 * signature's info reports without asking the agent again.
 *
 * One mutex (ag->mx) guards the pool and the cache; it is never held
 * across a call to the agent.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/objects.h>

#include <custody/agent_client.h>
#include <custody/agent_wire.h>
#include <custody/assign.h>
#include <custody/cert.h>

#include "sign/internal.h"

#define AGENT_MAX_CONNS 16
#define AGENT_CERT_CACHE 8

struct agent_cert_facts {
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	char key_id[CUSTODY_KEY_ID_HEX + 1];
	char key_algorithm[16];
};

struct sign_agent {
	char *path;
	pthread_mutex_t mx;
	pthread_cond_t cv;		/* a connection came back          */
	custody_agent_conn *idle[AGENT_MAX_CONNS];
	int n_idle, n_made, max_conns;
	struct agent_cert_facts certs[AGENT_CERT_CACHE];
	size_t next_cert;
};

int
sign_agent_new(const char *path, int conns, struct sign_agent **out,
	       custody_err *err)
{
	struct sign_agent *ag;

	*out = NULL;
	if ((ag = calloc(1, sizeof(*ag))) == NULL ||
	    (ag->path = strdup(path)) == NULL) {
		free(ag);
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot make a signing context: out of "
				       "memory");
	}
	pthread_mutex_init(&ag->mx, NULL);
	pthread_cond_init(&ag->cv, NULL);
	ag->max_conns = conns < 1 ? 1 : conns > AGENT_MAX_CONNS ?
			AGENT_MAX_CONNS : conns;
	*out = ag;
	return CUSTODY_OK;
}

void
sign_agent_free(struct sign_agent *ag)
{
	int i;

	if (ag == NULL)
		return;
	for (i = 0; i < ag->n_idle; i++)
		custody_agent_close(ag->idle[i]);
	pthread_cond_destroy(&ag->cv);
	pthread_mutex_destroy(&ag->mx);
	free(ag->path);
	free(ag);
}

const char *
sign_agent_path(const struct sign_agent *ag)
{
	return ag->path;
}

/* ------------------------------------------------------ the connections */

/* A connection of the pool, or a new one while the pool has room; waits
 * when every connection is busy. */
static int
conn_take(struct sign_agent *ag, custody_agent_conn **out, custody_err *err)
{
	int r;

	*out = NULL;
	pthread_mutex_lock(&ag->mx);
	while (ag->n_idle == 0 && ag->n_made >= ag->max_conns)
		pthread_cond_wait(&ag->cv, &ag->mx);
	if (ag->n_idle > 0) {
		*out = ag->idle[--ag->n_idle];
		pthread_mutex_unlock(&ag->mx);
		return CUSTODY_OK;
	}
	ag->n_made++;
	pthread_mutex_unlock(&ag->mx);
	/* Connected outside the lock: the others need not wait for it. */
	if ((r = custody_agent_connect(ag->path, 0, out, err)) != CUSTODY_OK) {
		pthread_mutex_lock(&ag->mx);
		ag->n_made--;
		pthread_cond_signal(&ag->cv);
		pthread_mutex_unlock(&ag->mx);
	}
	return r;
}

/* A connection back to the pool (one that lost its agent connects again
 * at its next call, custody/agent_client.h). */
static void
conn_give(struct sign_agent *ag, custody_agent_conn *c)
{
	pthread_mutex_lock(&ag->mx);
	ag->idle[ag->n_idle++] = c;
	pthread_cond_signal(&ag->cv);
	pthread_mutex_unlock(&ag->mx);
}

/* One request, one response, on a connection of the pool. */
static int
agent_call(struct sign_agent *ag, const custody_agent_msg *req,
	   custody_agent_msg *resp, custody_err *err)
{
	custody_agent_conn *c = NULL;
	int r;

	if ((r = conn_take(ag, &c, err)) != CUSTODY_OK)
		return r;
	r = custody_agent_call(c, req, resp, err);
	conn_give(ag, c);
	return r;
}

/* ----------------------------------------------------- certificate facts */

static void
facts_put(struct sign_agent *ag, const custody_cert_record *rec)
{
	struct agent_cert_facts *f;
	size_t i;

	pthread_mutex_lock(&ag->mx);
	for (i = 0; i < AGENT_CERT_CACHE; i++)
		if (strcmp(ag->certs[i].thumbprint, rec->thumbprint) == 0)
			goto out;
	f = &ag->certs[ag->next_cert];
	ag->next_cert = (ag->next_cert + 1) % AGENT_CERT_CACHE;
	memcpy(f->thumbprint, rec->thumbprint, sizeof(f->thumbprint));
	memcpy(f->key_id, rec->key_id, sizeof(f->key_id));
	memcpy(f->key_algorithm, rec->key_algorithm, sizeof(f->key_algorithm));
out:
	pthread_mutex_unlock(&ag->mx);
}

static int
facts_get(struct sign_agent *ag, const char *thumbprint,
	  struct agent_cert_facts *out)
{
	size_t i;
	int found = 0;

	pthread_mutex_lock(&ag->mx);
	for (i = 0; i < AGENT_CERT_CACHE && !found; i++) {
		if (strcmp(ag->certs[i].thumbprint, thumbprint) == 0) {
			*out = ag->certs[i];
			found = 1;
		}
	}
	pthread_mutex_unlock(&ag->mx);
	return found;
}

/* ------------------------------------------------------------ requests */

static enum custody_agent_which
wire_which(int slot)
{
	return slot == CUSTODY_SLOT_PREVIOUS ? CUSTODY_AGENT_PREVIOUS :
	       slot == CUSTODY_SLOT_PENDING ? CUSTODY_AGENT_PENDING :
	       CUSTODY_AGENT_CURRENT;
}

/* The certificate the agent names for (type, identity, which), as a
 * record whose thumbprint and key id are computed here from its DER (not
 * taken from the agent's word). */
int
sign_agent_cert(struct sign_agent *ag, const char *type, const char *identity,
		int which, custody_cert_record *out, custody_err *err)
{
	custody_agent_msg req, resp;
	const custody_agent_cert_response *cr = &resp.u.cert_response;
	int r;

	memset(out, 0, sizeof(*out));
	if (which != CUSTODY_SLOT_CURRENT && which != CUSTODY_SLOT_PREVIOUS &&
	    which != CUSTODY_SLOT_PENDING)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot read a certificate: unknown "
				       "slot %d", which);
	memset(&req, 0, sizeof(req));
	memset(&resp, 0, sizeof(resp));
	req.kind = CUSTODY_AGENT_CERT_REQUEST;
	snprintf(req.u.cert_request.type, sizeof(req.u.cert_request.type),
		 "%s", type);
	snprintf(req.u.cert_request.identity,
		 sizeof(req.u.cert_request.identity), "%s", identity);
	req.u.cert_request.which = wire_which(which);
	if ((r = agent_call(ag, &req, &resp, err)) != CUSTODY_OK)
		goto out;
	if ((r = custody_cert_record_from_der(cr->certificate,
					      cr->certificate_len, out,
					      err)) != CUSTODY_OK) {
		custody_err_prefix(err, "the custody agent's certificate for "
				   "%s", type);
		goto out;
	}
	if (strcmp(out->thumbprint, cr->thumbprint) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "the custody agent named certificate %s "
				    "for %s but sent %s", cr->thumbprint, type,
				    out->thumbprint);
		goto out;
	}
	facts_put(ag, out);
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK)
		custody_cert_record_clear(out);
	custody_agent_msg_clear(&resp);
	return r;
}

int
sign_agent_open(struct sign_agent *ag, const char *type, const char *identity,
		custody_err *err)
{
	custody_cert_record rec;
	custody_err first;
	int r;

	/* A refusal, an unreachable agent or nothing assigned: said now, as
	 * a signer on the token says it at open.  A pending roll alone (no
	 * current yet) is accepted, as there. */
	r = sign_agent_cert(ag, type, identity, CUSTODY_SLOT_CURRENT, &rec,
			    err);
	if (r == CUSTODY_ENOTFOUND) {
		if (err != NULL)
			first = *err;
		if (sign_agent_cert(ag, type, identity, CUSTODY_SLOT_PENDING,
				    &rec, NULL) == CUSTODY_OK)
			r = CUSTODY_OK;
		else if (err != NULL)
			*err = first;
	}
	custody_cert_record_clear(&rec);
	return r;
}

static int
wire_hash(int digest_nid, enum custody_agent_hash *out)
{
	switch (digest_nid) {
	case NID_sha256: *out = CUSTODY_AGENT_SHA256; return 0;
	case NID_sha384: *out = CUSTODY_AGENT_SHA384; return 0;
	case NID_sha512: *out = CUSTODY_AGENT_SHA512; return 0;
	default: return -1;
	}
}

static enum custody_agent_scheme
wire_scheme(enum custody_sig_scheme s)
{
	switch (s) {
	case CUSTODY_SIG_RSA_PKCS1: return CUSTODY_AGENT_RSA_PKCS1;
	case CUSTODY_SIG_RSA_PSS: return CUSTODY_AGENT_RSA_PSS;
	case CUSTODY_SIG_ECDSA_DER: return CUSTODY_AGENT_ECDSA;
	case CUSTODY_SIG_ECDSA_RAW: return CUSTODY_AGENT_ECDSA_RAW;
	default: return CUSTODY_AGENT_SCHEME_AUTO;
	}
}

static enum custody_sig_scheme
sig_scheme(enum custody_agent_scheme s)
{
	switch (s) {
	case CUSTODY_AGENT_RSA_PSS: return CUSTODY_SIG_RSA_PSS;
	case CUSTODY_AGENT_ECDSA: return CUSTODY_SIG_ECDSA_DER;
	case CUSTODY_AGENT_ECDSA_RAW: return CUSTODY_SIG_ECDSA_RAW;
	default: return CUSTODY_SIG_RSA_PKCS1;
	}
}

/* The facts of the certificate that signed: cached, else asked for by
 * slot until one has that thumbprint (a signature by a pinned previous
 * or pending certificate).  Left empty when none has it any more (a roll
 * since): the signature stands, its info says less. */
static void
signed_with(struct sign_agent *ag, const char *type, const char *identity,
	    const char *thumbprint, struct agent_cert_facts *out)
{
	static const int slots[] = {CUSTODY_SLOT_CURRENT,
				    CUSTODY_SLOT_PREVIOUS,
				    CUSTODY_SLOT_PENDING};
	custody_cert_record rec;
	size_t i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
		if (facts_get(ag, thumbprint, out))
			return;
		if (sign_agent_cert(ag, type, identity, slots[i], &rec, NULL) ==
		    CUSTODY_OK)
			custody_cert_record_clear(&rec);
	}
	if (!facts_get(ag, thumbprint, out))
		memcpy(out->thumbprint, thumbprint, sizeof(out->thumbprint));
}

int
sign_agent_sign(struct sign_agent *ag, const char *type, const char *identity,
		const char *pinned, enum custody_sig_scheme scheme,
		int digest_nid, const unsigned char *md, size_t md_len,
		unsigned char **sig, size_t *sig_len,
		custody_signature_info *info, custody_err *err)
{
	custody_agent_msg req, resp;
	custody_agent_sign_request *sq = &req.u.sign_request;
	const custody_agent_sign_response *sr = &resp.u.sign_response;
	struct agent_cert_facts facts;
	unsigned char *out = NULL;
	int r;

	memset(&req, 0, sizeof(req));
	memset(&resp, 0, sizeof(resp));
	req.kind = CUSTODY_AGENT_SIGN_REQUEST;
	snprintf(sq->type, sizeof(sq->type), "%s", type);
	snprintf(sq->identity, sizeof(sq->identity), "%s", identity);
	sq->which = CUSTODY_AGENT_CURRENT;
	sq->scheme = wire_scheme(scheme);
	if (wire_hash(digest_nid, &sq->hash) != 0 || md_len > sizeof(sq->digest)) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot sign: the agent takes SHA-256, "
				    "SHA-384 or SHA-512 digests");
		goto out;
	}
	memcpy(sq->digest, md, md_len);
	sq->digest_len = md_len;
	if (pinned != NULL)
		snprintf(sq->thumbprint, sizeof(sq->thumbprint), "%s", pinned);
	if ((r = agent_call(ag, &req, &resp, err)) != CUSTODY_OK)
		goto out;
	if (pinned != NULL && strcmp(sr->thumbprint, pinned) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "the custody agent signed with certificate "
				    "%s, not %s as asked", sr->thumbprint,
				    pinned);
		goto out;
	}
	if (scheme != CUSTODY_SIG_AUTO && sig_scheme(sr->scheme) != scheme) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "the custody agent signed with scheme %s, "
				    "not %s as asked",
				    custody_sig_scheme_name(sig_scheme(sr->scheme)),
				    custody_sig_scheme_name(scheme));
		goto out;
	}
	if ((out = malloc(sr->signature_len)) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot sign: out of memory");
		goto out;
	}
	memcpy(out, sr->signature, sr->signature_len);
	*sig = out;
	*sig_len = sr->signature_len;
	if (info != NULL) {
		signed_with(ag, type, identity, sr->thumbprint, &facts);
		memset(info, 0, sizeof(*info));
		memcpy(info->thumbprint, facts.thumbprint,
		       sizeof(info->thumbprint));
		memcpy(info->key_id, facts.key_id, sizeof(info->key_id));
		memcpy(info->key_algorithm, facts.key_algorithm,
		       sizeof(info->key_algorithm));
		/* A pinned signature names no assignment (signer.h). */
		if (pinned == NULL)
			snprintf(info->identity, sizeof(info->identity), "%s",
				 sr->identity);
		info->scheme = sig_scheme(sr->scheme);
		info->digest_nid = digest_nid;
	}
	r = CUSTODY_OK;
out:
	OPENSSL_cleanse(sq->digest, sizeof(sq->digest));
	custody_agent_msg_clear(&resp);
	return r;
}
