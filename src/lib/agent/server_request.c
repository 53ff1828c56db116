/*
 * agent/server_request.c — one request of the agent: decoded, authorised
 * by the peer's credentials against [allow TYPE], served with the
 * agent's signers, answered.  Runs on the worker that read the frame.
 *
 * An error's message goes to the client: the library's messages name
 * types, identities, thumbprints and key ids, never a digest, claims or
 * a signature; the agent's own name no request value but type and
 * identity.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/obj_mac.h>

#include <custody/assign.h>
#include <custody/jws.h>
#include <custody/log.h>
#include <custody/policy.h>

#include "agent/server.h"

void
agent_error_frame(struct agent_worker *w, int code, const char *message)
{
	custody_agent_msg *m = &w->resp;
	custody_err err;
	size_t i, len;

	custody_agent_msg_clear(m);
	m->kind = CUSTODY_AGENT_ERROR;
	m->u.error.code = code >= CUSTODY_EFAIL && code <= CUSTODY_EPIN ? code : CUSTODY_EFAIL;
	len = strlen(message != NULL && message[0] != '\0' ? message : "failed");
	if (len > CUSTODY_AGENT_MESSAGE_MAX)
		len = CUSTODY_AGENT_MESSAGE_MAX;
	memcpy(m->u.error.message, message != NULL && message[0] != '\0' ? message : "failed", len);
	/* Text only: a control byte (or a cut UTF-8 sequence) becomes '?'. */
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)m->u.error.message[i];

		if (ch < 0x20 || ch == 0x7f || ch >= 0x80)
			m->u.error.message[i] = '?';
	}
	m->u.error.message[len] = '\0';
	if (custody_agent_wire_encode(m, w->out, sizeof(w->out), &w->out_len, &err) != CUSTODY_OK)
		w->out_len = 0;
	custody_agent_msg_clear(m);
}

/* ------------------------------------------------------------ who */

static int
authorise(struct agent *a, const struct agent_conn *c, const char *given,
	  const char *identity, char type[CUSTODY_NAME_MAX + 1], custody_err *err)
{
	char user[64];
	int ok;

	if (custody_type_canonical(given, type, NULL, err) != CUSTODY_OK)
		return err->code;
	pthread_rwlock_rdlock(&a->settings_lock);
	ok = agent_allow_permits(a->allow, type, &c->peer);
	pthread_rwlock_unlock(&a->settings_lock);
	if (ok)
		return CUSTODY_OK;
	agent_peer_user(c->peer.uid, user, sizeof(user));
	custody_warn("agent: refused user %s (uid %u, pid %ld): type %s", user,
		     (unsigned)c->peer.uid, (long)c->peer.pid, type);
	agent_audit_refusal(a->audit, &c->peer, user, type, identity);
	return custody_err_set(err, CUSTODY_EFAIL, "user %s (uid %u) may not use type %s "
			       "through this agent (see [allow %s] in custody.conf)", user,
			       (unsigned)c->peer.uid, type, type);
}

/* ------------------------------------------------------------ signers */

static custody_signer *
find_signer(struct agent *a, const char *type, const char *identity)
{
	size_t i;

	for (i = 0; i < a->n_signers; i++)
		if (strcmp(a->signers[i].type, type) == 0 &&
		    strcmp(a->signers[i].identity, identity) == 0)
			return a->signers[i].signer;
	return NULL;
}

/* The signer of (type, identity), opened at its first use and kept: it
 * resolves the assignment anew at each use. */
static int
signer_for(struct agent *a, const char *type, const char *identity, custody_signer **out,
	   custody_err *err)
{
	struct agent_signer_slot *slot;
	int r = CUSTODY_OK;

	pthread_rwlock_rdlock(&a->signers_lock);
	*out = find_signer(a, type, identity);
	pthread_rwlock_unlock(&a->signers_lock);
	if (*out != NULL)
		return CUSTODY_OK;
	pthread_rwlock_wrlock(&a->signers_lock);
	if ((*out = find_signer(a, type, identity)) != NULL)
		goto out;
	if (a->n_signers == AGENT_SIGNERS_MAX) {
		r = custody_err_set(err, CUSTODY_EFAIL, "the agent serves at most %d "
				    "(type, identity) pairs", AGENT_SIGNERS_MAX);
		goto out;
	}
	slot = &a->signers[a->n_signers];
	if ((r = custody_signer_open(a->ctx, type, identity[0] != '\0' ? identity : NULL,
				     &slot->signer, err)) != CUSTODY_OK)
		goto out;
	snprintf(slot->type, sizeof(slot->type), "%s", type);
	snprintf(slot->identity, sizeof(slot->identity), "%s", identity);
	*out = slot->signer;
	a->n_signers++;
out:
	pthread_rwlock_unlock(&a->signers_lock);
	return r;
}

void
agent_signers_warm(struct agent *a)
{
	custody_signer *s;
	custody_err err;
	size_t i;

	for (i = 0; a->allow != NULL && i < a->allow->n; i++)
		if (signer_for(a, a->allow->types[i].type, "", &s, &err) != CUSTODY_OK)
			custody_warn("agent: %s: %s", a->allow->types[i].type, err.msg);
}

void
agent_signers_close(struct agent *a)
{
	size_t i;

	for (i = 0; i < a->n_signers; i++)
		custody_signer_close(a->signers[i].signer);
	a->n_signers = 0;
}

/* ------------------------------------------------------------ sign */

static enum custody_sig_scheme
sig_scheme(enum custody_agent_scheme s)
{
	switch (s) {
	case CUSTODY_AGENT_RSA_PKCS1: return CUSTODY_SIG_RSA_PKCS1;
	case CUSTODY_AGENT_RSA_PSS: return CUSTODY_SIG_RSA_PSS;
	case CUSTODY_AGENT_ECDSA: return CUSTODY_SIG_ECDSA_DER;
	case CUSTODY_AGENT_ECDSA_RAW: return CUSTODY_SIG_ECDSA_RAW;
	default: return CUSTODY_SIG_AUTO;
	}
}

static enum custody_agent_scheme
wire_scheme(enum custody_sig_scheme s)
{
	switch (s) {
	case CUSTODY_SIG_RSA_PSS: return CUSTODY_AGENT_RSA_PSS;
	case CUSTODY_SIG_ECDSA_DER: return CUSTODY_AGENT_ECDSA;
	case CUSTODY_SIG_ECDSA_RAW: return CUSTODY_AGENT_ECDSA_RAW;
	default: return CUSTODY_AGENT_RSA_PKCS1;
	}
}

static int
digest_nid(enum custody_agent_hash h)
{
	return h == CUSTODY_AGENT_SHA384 ? NID_sha384 :
	       h == CUSTODY_AGENT_SHA512 ? NID_sha512 : NID_sha256;
}

static int
slot_of(enum custody_agent_which which)
{
	return which == CUSTODY_AGENT_PREVIOUS ? CUSTODY_SLOT_PREVIOUS :
	       which == CUSTODY_AGENT_PENDING ? CUSTODY_SLOT_PENDING : CUSTODY_SLOT_CURRENT;
}

/* The certificate to sign with when the request names one, or which is
 * not current: a thumbprint in one of the assignment's slots now. */
static int
pinned_thumbprint(custody_signer *s, const custody_agent_sign_request *q,
		  const char *type, char out[CUSTODY_THUMBPRINT_HEX + 1], custody_err *err)
{
	custody_cert_record rec;
	custody_assignment asg;
	int r;

	if (q->thumbprint[0] != '\0') {
		if ((r = custody_signer_assignment(s, 0, &asg, err)) != CUSTODY_OK)
			return r;
		if (custody_assign_find(&asg, q->thumbprint) == CUSTODY_SLOT_NONE)
			return custody_err_set(err, CUSTODY_ENOTFOUND, "the certificate asked "
					       "for is in no slot of type %s's assignment", type);
		memcpy(out, q->thumbprint, CUSTODY_THUMBPRINT_HEX + 1);
		return CUSTODY_OK;
	}
	memset(&rec, 0, sizeof(rec));
	if ((r = custody_signer_slot_cert(s, 0, slot_of(q->which), &rec, err)) == CUSTODY_OK)
		memcpy(out, rec.thumbprint, CUSTODY_THUMBPRINT_HEX + 1);
	custody_cert_record_clear(&rec);
	return r;
}

static int
serve_sign(struct agent_worker *w, struct agent_conn *c, custody_err *err)
{
	const custody_agent_sign_request *q = &w->req.u.sign_request;
	custody_agent_sign_response *p = &w->resp.u.sign_response;
	char type[CUSTODY_NAME_MAX + 1], pin[CUSTODY_THUMBPRINT_HEX + 1];
	custody_signature_info info;
	custody_assignment asg;
	custody_signer *s = NULL;
	unsigned char *sig = NULL;
	size_t sig_len = 0;
	int r;

	if ((r = authorise(w->agent, c, q->type, q->identity, type, err)) != CUSTODY_OK ||
	    (r = signer_for(w->agent, type, q->identity, &s, err)) != CUSTODY_OK)
		return r;
	memset(&info, 0, sizeof(info));
	if (q->thumbprint[0] == '\0' && q->which == CUSTODY_AGENT_CURRENT) {
		r = custody_signer_sign(s, 0, sig_scheme(q->scheme), digest_nid(q->hash), q->digest,
					q->digest_len, 1, &sig, &sig_len, &info, err);
	} else if ((r = pinned_thumbprint(s, q, type, pin, err)) == CUSTODY_OK &&
		   (r = custody_signer_sign_pinned(s, pin, sig_scheme(q->scheme),
						   digest_nid(q->hash), q->digest, q->digest_len,
						   1, &sig, &sig_len, &info, err)) == CUSTODY_OK &&
		   (r = custody_signer_assignment(s, 0, &asg, err)) == CUSTODY_OK) {
		memcpy(info.identity, asg.identity, sizeof(info.identity));
	}
	if (r != CUSTODY_OK)
		goto out;
	if (sig_len == 0 || sig_len > sizeof(p->signature)) {
		r = custody_err_set(err, CUSTODY_EFAIL, "a signature of %zu bytes", sig_len);
		goto out;
	}
	w->resp.kind = CUSTODY_AGENT_SIGN_RESPONSE;
	memcpy(p->identity, info.identity, sizeof(p->identity));
	p->scheme = wire_scheme(info.scheme);
	memcpy(p->signature, sig, sig_len);
	p->signature_len = sig_len;
	memcpy(p->thumbprint, info.thumbprint, sizeof(p->thumbprint));
out:
	free(sig);
	return r;
}

/* ------------------------------------------------------------ cert, jwt */

static int
serve_cert(struct agent_worker *w, struct agent_conn *c, custody_err *err)
{
	const custody_agent_cert_request *q = &w->req.u.cert_request;
	custody_agent_cert_response *p = &w->resp.u.cert_response;
	char type[CUSTODY_NAME_MAX + 1];
	custody_cert_record rec;
	custody_signer *s = NULL;
	int r;

	memset(&rec, 0, sizeof(rec));
	if ((r = authorise(w->agent, c, q->type, q->identity, type, err)) != CUSTODY_OK ||
	    (r = signer_for(w->agent, type, q->identity, &s, err)) != CUSTODY_OK ||
	    (r = custody_signer_slot_cert(s, 0, slot_of(q->which), &rec, err)) != CUSTODY_OK)
		goto out;
	if (rec.der_len == 0 || rec.der_len > sizeof(p->certificate)) {
		r = custody_err_set(err, CUSTODY_EFAIL, "certificate %s is larger than the "
				    "agent's frames carry", rec.thumbprint);
		goto out;
	}
	w->resp.kind = CUSTODY_AGENT_CERT_RESPONSE;
	memcpy(p->certificate, rec.der, rec.der_len);
	p->certificate_len = rec.der_len;
	memcpy(p->thumbprint, rec.thumbprint, sizeof(p->thumbprint));
out:
	custody_cert_record_clear(&rec);
	return r;
}

static int
jws_alg(enum custody_agent_alg alg)
{
	return alg == CUSTODY_AGENT_RS256 ? CUSTODY_JWS_RS256 :
	       alg == CUSTODY_AGENT_PS256 ? CUSTODY_JWS_PS256 :
	       alg == CUSTODY_AGENT_ES256 ? CUSTODY_JWS_ES256 : CUSTODY_JWS_ALG_NONE;
}

static int
serve_jwt(struct agent_worker *w, struct agent_conn *c, custody_err *err)
{
	const custody_agent_jwt_request *q = &w->req.u.jwt_request;
	custody_agent_jwt_response *p = &w->resp.u.jwt_response;
	char type[CUSTODY_NAME_MAX + 1];
	custody_signer *s = NULL;
	char *token = NULL;
	size_t len;
	int r;

	if ((r = authorise(w->agent, c, q->type, q->identity, type, err)) != CUSTODY_OK ||
	    (r = signer_for(w->agent, type, q->identity, &s, err)) != CUSTODY_OK ||
	    (r = custody_signer_issue_jwt(s, 0, q->claims, q->lifetime, jws_alg(q->alg), &token,
					  NULL, NULL, err)) != CUSTODY_OK)
		return r;
	if ((len = strlen(token)) > CUSTODY_AGENT_TOKEN_MAX) {
		r = custody_err_set(err, CUSTODY_EFAIL, "the token is longer than the agent's "
				    "frames carry (%d bytes)", CUSTODY_AGENT_TOKEN_MAX);
	} else {
		w->resp.kind = CUSTODY_AGENT_JWT_RESPONSE;
		memcpy(p->token, token, len + 1);
	}
	OPENSSL_cleanse(token, strlen(token));
	free(token);
	return r;
}

/* ------------------------------------------------------------ list */

static int
add_entries(custody_agent_list_response *p, const custody_assignment *asg)
{
	const custody_slot *slots[3] = {&asg->current, &asg->previous, &asg->pending};
	static const enum custody_agent_which which[3] = {
		CUSTODY_AGENT_CURRENT, CUSTODY_AGENT_PREVIOUS, CUSTODY_AGENT_PENDING};
	custody_agent_list_entry *e;
	size_t i;

	for (i = 0; i < 3; i++) {
		if (slots[i]->thumbprint[0] == '\0')
			continue;
		if (p->n_entries == CUSTODY_AGENT_ENTRIES_MAX)
			return 0;
		e = &p->entries[p->n_entries++];
		memcpy(e->type, asg->type, sizeof(e->type));
		memcpy(e->identity, asg->identity, sizeof(e->identity));
		memcpy(e->thumbprint, slots[i]->thumbprint, sizeof(e->thumbprint));
		e->which = which[i];
	}
	return 1;
}

static int
serve_list(struct agent_worker *w, struct agent_conn *c, custody_err *err)
{
	struct agent *a = w->agent;
	custody_agent_list_response *p = &w->resp.u.list_response;
	char types[CUSTODY_ALLOW_MAX][CUSTODY_NAME_MAX + 1];
	custody_assignment asg;
	custody_signer *s;
	custody_err ignored;
	size_t n = 0, i;

	pthread_rwlock_rdlock(&a->settings_lock);
	for (i = 0; a->allow != NULL && i < a->allow->n && n < CUSTODY_ALLOW_MAX; i++)
		if (agent_allow_permits(a->allow, a->allow->types[i].type, &c->peer))
			memcpy(types[n++], a->allow->types[i].type, sizeof(types[0]));
	pthread_rwlock_unlock(&a->settings_lock);
	w->resp.kind = CUSTODY_AGENT_LIST_RESPONSE;
	if ((p->entries = calloc(CUSTODY_AGENT_ENTRIES_MAX, sizeof(*p->entries))) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "out of memory");
	/* A type allowed but not assigned here is left out. */
	for (i = 0; i < n; i++)
		if (signer_for(a, types[i], "", &s, &ignored) == CUSTODY_OK &&
		    custody_signer_assignment(s, 0, &asg, &ignored) == CUSTODY_OK &&
		    !add_entries(p, &asg))
			break;
	return CUSTODY_OK;
}

/* ------------------------------------------------------------ dispatch */

void
agent_serve_frame(struct agent_worker *w, struct agent_conn *c, const unsigned char *frame,
		  size_t len)
{
	custody_err err;
	int r;

	custody_err_clear(&err);
	custody_agent_msg_clear(&w->resp);
	if ((r = custody_agent_wire_decode(frame, len, &w->req, &err)) == CUSTODY_OK) {
		switch (w->req.kind) {
		case CUSTODY_AGENT_SIGN_REQUEST: r = serve_sign(w, c, &err); break;
		case CUSTODY_AGENT_CERT_REQUEST: r = serve_cert(w, c, &err); break;
		case CUSTODY_AGENT_JWT_REQUEST: r = serve_jwt(w, c, &err); break;
		case CUSTODY_AGENT_LIST_REQUEST: r = serve_list(w, c, &err); break;
		default:
			r = custody_err_set(&err, CUSTODY_EFAIL, "agent frame: a %s is not a "
					    "request", custody_agent_kind_name(w->req.kind));
		}
	}
	if (w->agent->opts.verbose)
		custody_debug("agent: pid %ld uid %u: %s: %s", (long)c->peer.pid,
			      (unsigned)c->peer.uid, custody_agent_kind_name(w->req.kind),
			      r == CUSTODY_OK ? "served" : "refused or failed");
	/* A JWT is a bearer token: not left in the worker's buffer. */
	w->out_secret = r == CUSTODY_OK && w->req.kind == CUSTODY_AGENT_JWT_REQUEST;
	custody_agent_msg_clear(&w->req);
	if (r == CUSTODY_OK &&
	    custody_agent_wire_encode(&w->resp, w->out, sizeof(w->out), &w->out_len, &err) ==
	    CUSTODY_OK) {
		custody_agent_msg_clear(&w->resp);
		return;
	}
	agent_error_frame(w, r != CUSTODY_OK ? r : CUSTODY_EFAIL, err.msg);
}
