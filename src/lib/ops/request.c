/*
 * ops/request.c — the ceremony of `custody request` (custody/request.h):
 * a key pair generated inside the token, then a PKCS#10 request signed by
 * it written to a new file, or a self-signed certificate put on the
 * token and recorded in the store.
 *
 * All or nothing: the caller checks everything it can before the token is
 * touched; when a later step fails, custody_request_finish destroys the
 * key pair (and the certificate) again and removes the request file.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <custody/audit.h>
#include <custody/cluster.h>
#include <custody/file.h>
#include <custody/hexfmt.h>
#include <custody/log.h>
#include <custody/ops.h>
#include <custody/request.h>
#include <custody/timefmt.h>
#include <custody/token_x509.h>

/* A request's key is checked with a throwaway certificate of this many
 * days (what the policy sees: names, key). */
#define CSR_PROBE_DAYS 365

void
custody_request_init(custody_request *rq)
{
	memset(rq, 0, sizeof(*rq));
	rq->fd = -1;
}

void
custody_request_clear(custody_request *rq)
{
	if (rq == NULL)
		return;
	if (rq->fd >= 0)
		close(rq->fd);
	EVP_PKEY_free(rq->pub);
	X509_NAME_free(rq->subject);
	X509_EXTENSION_free(rq->san);
	custody_request_init(rq);
}

int
custody_request_check_key_policy(const custody_policy *p, const custody_keyspec *spec,
				 custody_err *err)
{
	unsigned bit = spec->curve_nid == NID_secp384r1 ? CUSTODY_CURVE_P384 : CUSTODY_CURVE_P256;

	if (spec->type == EVP_PKEY_RSA && spec->bits < p->min_rsa_bits)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "%s is refused by the policy: RSA keys need at least %d "
				       "bits", spec->name, p->min_rsa_bits);
	if (spec->type == EVP_PKEY_EC && (p->ec_curves & bit) == 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "%s is refused by the policy: curve not in policy.ec-curves",
				       spec->name);
	return CUSTODY_OK;
}

/* ------------------------------------------------------------ the token */

int
custody_request_check_token(custody_token *tok, const custody_request *rq, custody_err *err)
{
	int used = 0, r;

	if ((r = custody_token_require_key(tok, rq->spec.type, rq->spec.bits, "generate",
					   err)) != CUSTODY_OK ||
	    (rq->replicable &&
	     (r = custody_token_require_cluster(tok, "make replicable keys", err)) !=
	     CUSTODY_OK) ||
	    (r = custody_token_label_used(tok, rq->label, &used, err)) != CUSTODY_OK)
		return r;
	if (!used)
		return CUSTODY_OK;
	r = custody_err_set(err, CUSTODY_EFAIL, "label %s is already on token %s", rq->label,
			    custody_token_label(tok));
	return custody_err_hint(err, "choose another one with --label");
}

int
custody_request_plan_package(custody_token *tok, custody_store *st, custody_request *rq,
			     custody_err *err)
{
	char store_kcv[CUSTODY_KCV_HEX + 1], token_kcv[CUSTODY_KCV_HEX + 1];
	int r;

	if ((r = custody_cluster_kek_state(tok, st, store_kcv, token_kcv, err)) != CUSTODY_OK)
		return r;
	if (store_kcv[0] == '\0') {
		custody_step("the store records no cluster KEK: the key is replicable but not "
			     "packaged; custody sync packages it on a member later");
	} else if (strcmp(store_kcv, token_kcv) != 0) {
		custody_warn("the key is replicable but not packaged: token %s does not hold "
			     "the cluster KEK (%s)", custody_token_label(tok), store_kcv);
	} else if (rq->csr_path != NULL) {
		custody_step("the key is replicable: import its certificate with custody import "
			     "--replicable --path CERT to put its package in the store");
	} else {
		custody_step("the key is replicable: its package (wrapped under the cluster KEK "
			     "%s) goes to the store with its certificate", store_kcv);
		rq->package = 1;
	}
	return CUSTODY_OK;
}

int
custody_request_generate(custody_token *tok, custody_request *rq, custody_err *err)
{
	int r;

	custody_step("request for %s%s%s: %s key pair on token %s, label %s", rq->subject_text,
		     rq->san_text != NULL ? ", " : "", rq->san_text != NULL ? rq->san_text : "",
		     rq->spec.name, custody_token_label(tok), rq->label);
	r = custody_token_generate(tok, &rq->spec, rq->label, rq->subject, rq->replicable,
				   rq->key_id, &rq->pub, err);
	if (r == CUSTODY_OK)
		rq->created_key = 1;
	return r;
}

/* The spec of a key read from the token: what the policy and the digest
 * choice look at (type, bits, curve) and its name. */
static void
spec_of_pkey(EVP_PKEY *pkey, custody_keyspec *spec)
{
	char group[64] = "";

	memset(spec, 0, sizeof(*spec));
	spec->type = EVP_PKEY_get_base_id(pkey);
	spec->bits = EVP_PKEY_get_bits(pkey);
	if (spec->type == EVP_PKEY_EC &&
	    EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL) == 1)
		spec->curve_nid = OBJ_sn2nid(group);
	custody_pkey_algorithm(pkey, spec->name, sizeof(spec->name));
}

int
custody_request_use_key(custody_token *tok, custody_request *rq, const char *key_id,
			custody_err *err)
{
	char id[CUSTODY_KEY_ID_HEX + 1];
	int present = 0, r;
	size_t i;

	for (i = 0; i < CUSTODY_KEY_ID_HEX && isxdigit((unsigned char)key_id[i]); i++)
		id[i] = (char)tolower((unsigned char)key_id[i]);
	id[i] = '\0';
	if (i != CUSTODY_KEY_ID_HEX || key_id[i] != '\0')
		return custody_err_set(err, CUSTODY_EFAIL, "key id %s is not a key id "
				       "custody made: expected %d hex digits", key_id,
				       CUSTODY_KEY_ID_HEX);
	if ((r = custody_token_has_private_key(tok, id, &present, err)) != CUSTODY_OK)
		return r;
	if (!present)
		return custody_err_set(err, CUSTODY_EFAIL, "no private key with key id %s on "
				       "token %s: a request is signed by its own key", id,
				       custody_token_label(tok));
	if ((r = custody_token_public_key(tok, id, &rq->pub, err)) != CUSTODY_OK) {
		if (r == CUSTODY_ENOTFOUND)
			err->code = CUSTODY_EFAIL;
		return r == CUSTODY_ENOTFOUND ? CUSTODY_EFAIL : r;
	}
	snprintf(rq->key_id, sizeof(rq->key_id), "%s", id);
	spec_of_pkey(rq->pub, &rq->spec);
	rq->existing_key = 1;
	custody_step("request for the %s key pair %s already on token %s", rq->spec.name, id,
		     custody_token_label(tok));
	return CUSTODY_OK;
}

/* ------------------------------------------------------ building, signing */

/* SHA-384 for P-384 keys, SHA-256 for the others. */
static int
digest_for(const custody_keyspec *spec)
{
	return spec->curve_nid == NID_secp384r1 ? NID_sha384 : NID_sha256;
}

static int
push_ext(STACK_OF(X509_EXTENSION) *exts, X509_EXTENSION *e, const char *what,
	 custody_err *err)
{
	if (e == NULL || sk_X509_EXTENSION_push(exts, e) == 0) {
		X509_EXTENSION_free(e);
		return custody_err_openssl(err, CUSTODY_EFAIL, "cannot add the %s extension",
					   what);
	}
	return CUSTODY_OK;
}

/* The subject key identifier of a certificate: the key id. */
static int
push_ski(STACK_OF(X509_EXTENSION) *exts, const char *key_id, custody_err *err)
{
	ASN1_OCTET_STRING *ski = NULL;
	unsigned char id[20];
	int r;

	if (custody_hex_decode(key_id, id, sizeof(id)) != (long)sizeof(id) ||
	    (ski = ASN1_OCTET_STRING_new()) == NULL ||
	    ASN1_OCTET_STRING_set(ski, id, sizeof(id)) != 1)
		r = custody_err_set(err, CUSTODY_EFAIL, "cannot make the subject key identifier");
	else
		r = push_ext(exts, X509V3_EXT_i2d(NID_subject_key_identifier, 0, ski),
			     "subjectKeyIdentifier", err);
	ASN1_OCTET_STRING_free(ski);
	return r;
}

/*
 * The extensions: the SANs; key usage digitalSignature (the key can sign,
 * nothing else); and in the certificate also basicConstraints CA:FALSE and
 * the subject key identifier, which is the key id.
 */
static int
build_exts(const custody_request *rq, int cert, STACK_OF(X509_EXTENSION) **out,
	   custody_err *err)
{
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	int r = CUSTODY_EFAIL;

	*out = NULL;
	if (exts == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "out of memory");
	if ((rq->san == NULL ||
	     (r = push_ext(exts, X509_EXTENSION_dup(rq->san), "subjectAltName", err)) ==
	     CUSTODY_OK) &&
	    (r = push_ext(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage,
						    "critical,digitalSignature"),
			  "keyUsage", err)) == CUSTODY_OK &&
	    cert &&
	    (r = push_ext(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints,
						    "critical,CA:FALSE"),
			  "basicConstraints", err)) == CUSTODY_OK)
		r = push_ski(exts, rq->key_id, err);
	if (r == CUSTODY_OK)
		*out = exts;
	else
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return r;
}

/* A positive random 128-bit serial number. */
static int
set_serial(X509 *x, custody_err *err)
{
	unsigned char sn[16];
	BIGNUM *bn = NULL;
	int r = CUSTODY_OK;

	if (RAND_bytes(sn, sizeof(sn)) != 1 ||
	    (sn[0] = (unsigned char)((sn[0] & 0x7f) | 0x40),
	     (bn = BN_bin2bn(sn, sizeof(sn), NULL)) == NULL) ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		r = custody_err_openssl(err, CUSTODY_EFAIL, "cannot make a serial number");
	BN_free(bn);
	return r;
}

/* Adds every extension of exts to x: 1, or 0 when one cannot be added. */
static int
add_exts(X509 *x, const STACK_OF(X509_EXTENSION) *exts)
{
	int i;

	for (i = 0; i < sk_X509_EXTENSION_num(exts); i++)
		if (X509_add_ext(x, sk_X509_EXTENSION_value(exts, i), -1) != 1)
			return 0;
	return 1;
}

/* The certificate, unsigned: self-signed, valid from a few minutes ago
 * (clocks of a cluster differ) for `days` days. */
static int
build_cert(const custody_request *rq, long days, X509 **out, custody_err *err)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509 *x = NULL;
	time_t now = (time_t)rq->now;
	int r;

	*out = NULL;
	if ((r = build_exts(rq, 1, &exts, err)) != CUSTODY_OK)
		return r;
	if ((x = X509_new()) == NULL || X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_set_subject_name(x, rq->subject) != 1 ||
	    X509_set_issuer_name(x, rq->subject) != 1 ||
	    X509_set_pubkey(x, rq->pub) != 1 ||
	    X509_time_adj_ex(X509_getm_notBefore(x), 0, -300, &now) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, &now) == NULL ||
	    !add_exts(x, exts)) {
		r = custody_err_openssl(err, CUSTODY_EFAIL, "cannot make the certificate");
	} else if ((r = set_serial(x, err)) == CUSTODY_OK) {
		*out = x;
		x = NULL;
	}
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_free(x);
	return r;
}

static int
build_csr(const custody_request *rq, X509_REQ **out, custody_err *err)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_REQ *req = NULL;
	int r;

	*out = NULL;
	if ((r = build_exts(rq, 0, &exts, err)) != CUSTODY_OK)
		return r;
	if ((req = X509_REQ_new()) == NULL ||
	    X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_REQ_set_subject_name(req, rq->subject) != 1 ||
	    X509_REQ_set_pubkey(req, rq->pub) != 1 ||
	    X509_REQ_add_extensions(req, exts) != 1) {
		r = custody_err_openssl(err, CUSTODY_EFAIL, "cannot make the request");
		X509_REQ_free(req);
		req = NULL;
	}
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	*out = req;
	return r;
}

/* The key was just made: not finding it is a failure of the token (EFAIL),
 * never "nothing found". */
static int
sign_failed(int r, custody_err *err)
{
	if (r == CUSTODY_ENOTFOUND && err != NULL)
		err->code = CUSTODY_EFAIL;
	return r == CUSTODY_ENOTFOUND ? CUSTODY_EFAIL : r;
}

/* Signs *x in the token (custody/token_x509.h checks the signature with
 * the generated public key); narrated when `narrate`. */
static int
sign_cert(custody_token *tok, const custody_request *rq, X509 **x, int narrate,
	  custody_err *err)
{
	int r;

	if (narrate)
		custody_step("signing the certificate with key %s inside token %s", rq->key_id,
			     custody_token_label(tok));
	if ((r = custody_token_sign_cert(tok, rq->key_id, digest_for(&rq->spec), rq->pub, x,
					 err)) != CUSTODY_OK)
		return sign_failed(r, err);
	if (narrate)
		custody_step("the certificate's signature verifies with the generated public "
			     "key");
	return CUSTODY_OK;
}

static int
sign_csr(custody_token *tok, const custody_request *rq, X509_REQ *req, custody_err *err)
{
	int r;

	custody_step("signing the request with key %s inside token %s", rq->key_id,
		     custody_token_label(tok));
	if ((r = custody_token_sign_req(tok, rq->key_id, digest_for(&rq->spec), rq->pub, req,
					err)) != CUSTODY_OK)
		return sign_failed(r, err);
	custody_step("the request's signature verifies with the generated public key");
	return CUSTODY_OK;
}

/* ------------------------------------------------------------ the file */

int
custody_request_create_file(custody_request *rq, custody_err *err)
{
	rq->fd = custody_file_create(rq->csr_path, O_WRONLY, 0644);
	if (rq->fd < 0)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot create %s: %s%s", rq->csr_path,
				       strerror(errno), errno == EEXIST ? " (an existing file "
				       "is never overwritten)" : "");
	rq->created_file = 1;
	return CUSTODY_OK;
}

/* The request in PEM into the file, synced and closed. */
static int
write_pem(custody_request *rq, X509_REQ *req, custody_err *err)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long len = 0;
	int r = CUSTODY_EFAIL, closed = -1;

	if (bio == NULL || PEM_write_bio_X509_REQ(bio, req) != 1 ||
	    (len = BIO_get_mem_data(bio, &pem)) <= 0) {
		r = custody_err_openssl(err, CUSTODY_EFAIL, "cannot encode the request");
		goto out;
	}
	if (custody_write_all(rq->fd, pem, (size_t)len) == 0 && fsync(rq->fd) == 0) {
		closed = close(rq->fd);
		rq->fd = -1;
	}
	if (closed != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL, "cannot write %s: %s", rq->csr_path,
				    strerror(errno));
		goto out;
	}
	custody_step("wrote request %s (PEM)", rq->csr_path);
	r = CUSTODY_OK;
out:
	BIO_free(bio);
	return r;
}

int
custody_request_write_csr(custody_token *tok, const custody_policy *policy,
			  custody_request *rq, custody_err *err)
{
	X509 *x = NULL;
	X509_REQ *req = NULL;
	int r;

	/* The policy sees what a certificate for the request will hold
	 * (names, key); it is signed so that it can be encoded, then dropped. */
	if ((r = build_cert(rq, CSR_PROBE_DAYS, &x, err)) != CUSTODY_OK ||
	    (r = sign_cert(tok, rq, &x, 0, err)) != CUSTODY_OK ||
	    (r = custody_policy_check_cert(policy, x, err)) != CUSTODY_OK ||
	    (r = build_csr(rq, &req, err)) != CUSTODY_OK ||
	    (r = sign_csr(tok, rq, req, err)) != CUSTODY_OK)
		goto out;
	r = write_pem(rq, req, err);
out:
	X509_REQ_free(req);
	X509_free(x);
	return r;
}

int
custody_request_make_cert(custody_token *tok, const custody_policy *policy,
			  const custody_request *rq, X509 **out, custody_err *err)
{
	X509 *x = NULL;
	int r;

	*out = NULL;
	if ((r = build_cert(rq, rq->days, &x, err)) != CUSTODY_OK ||
	    (r = sign_cert(tok, rq, &x, 1, err)) != CUSTODY_OK ||
	    (r = custody_policy_check_cert(policy, x, err)) != CUSTODY_OK) {
		X509_free(x);
		return r;
	}
	*out = x;
	return CUSTODY_OK;
}

/* ------------------------------------------------------------ the store */

/* How the audit entry of a generated key is worded: custody_request_csr_key_id
 * reads it back (list's waiting keys, tidy's "named by"). */
#define GENERATED_PREFIX "generated key id "
#define CSR_SUFFIX ", CSR"

/* The audit entry of a key born on the token (thumbprint NULL for a CSR),
 * inside tx. */
static int
audit_request(custody_txn *tx, const custody_request *rq, const char *thumbprint)
{
	char detail[160];

	if (rq->existing_key)
		snprintf(detail, sizeof(detail), "new CSR for key id %s on token %s",
			 rq->key_id, custody_token_label(tx->tok));
	else
		snprintf(detail, sizeof(detail), GENERATED_PREFIX "%s on token %s%s%s",
			 rq->key_id, custody_token_label(tx->tok),
			 rq->type != NULL ? " by rollover" : "",
			 thumbprint != NULL ? ", self-signed" : CSR_SUFFIX);
	return custody_txn_audit(tx, CUSTODY_AUDIT_REQUEST, rq->type, rq->identity, thumbprint,
				 NULL, detail);
}

int
custody_request_record_csr(custody_token *tok, custody_store *st, const custody_request *rq,
			   custody_err *err)
{
	custody_txn tx;
	int r;

	/* The key exists from now on: the log says so (no certificate yet).
	 * The key pair's undo is custody_request_finish's, not tx's. */
	custody_txn_init(&tx, st, tok, rq->node, err);
	if ((r = custody_txn_begin(&tx)) == CUSTODY_OK &&
	    (r = audit_request(&tx, rq, NULL)) == CUSTODY_OK)
		r = custody_txn_commit(&tx);
	custody_txn_end(&tx, r);
	return r;
}

/* The one store transaction of a self-signed certificate. */
static int
record_cert_txn(custody_token *tok, custody_store *st, const custody_request *rq,
		const custody_cert_record *rec, custody_change *assign, custody_err *err)
{
	custody_txn tx;
	int r;

	custody_txn_init(&tx, st, tok, rq->node, err);
	if ((r = custody_txn_begin(&tx)) == CUSTODY_OK &&
	    (r = custody_store_put_cert(st, rec, err)) == CUSTODY_OK &&
	    (r = audit_request(&tx, rq, rec->thumbprint)) == CUSTODY_OK &&
	    (!rq->package ||
	     (r = custody_cluster_package_put(tok, st, rq->node, rec->thumbprint, rq->key_id,
					      err)) == CUSTODY_OK) &&
	    (assign == NULL || (r = custody_change_write(&tx, assign)) == CUSTODY_OK) &&
	    (r = custody_cluster_report_held(st, rq->node, rec->thumbprint, "generated",
					     err)) == CUSTODY_OK)
		r = custody_txn_commit(&tx);
	custody_txn_end(&tx, r);
	return r;
}

int
custody_request_store_cert(custody_token *tok, custody_store *st, const custody_request *rq,
			   X509 *x, custody_cert_record *rec, custody_change *assign,
			   custody_err *err)
{
	custody_token_import_result res;
	char t[CUSTODY_TIME_TEXT];
	int r;

	if ((r = custody_token_import(tok, NULL, x, NULL, rq->label, rq->replicable, &res,
				      err)) != CUSTODY_OK)
		return r;
	custody_step("created self-signed certificate %s on token %s (key id %s, valid until "
		     "%s)", rec->thumbprint, custody_token_label(tok), res.key_id,
		     custody_time_format(rec->not_after, t));
	free(rec->label);
	free(rec->key_uri);
	rec->label = strdup(rq->label);
	rec->key_uri = custody_token_key_uri(tok, rq->key_id, rq->label);
	return record_cert_txn(tok, st, rq, rec, assign, err);
}

/* ------------------------------------------------------------ the end */

void
custody_request_finish(custody_token *tok, custody_request *rq, int ok)
{
	custody_err err;
	int r;

	if (rq->existing_key) {
		/* not made here: never destroyed here, and no note of intent */
	} else if (ok) {
		/* recorded (the store, or the audit entry of the CSR) */
		custody_token_intent_done(tok, rq->key_id);
	} else if (rq->created_key) {
		r = custody_token_delete(tok, rq->key_id, &err);
		if (r == CUSTODY_OK || r == CUSTODY_ENOTFOUND) {
			custody_step("removed the key pair %s from token %s again", rq->key_id,
				     custody_token_label(tok));
			custody_token_intent_done(tok, rq->key_id);
		} else {
			/* Its note of intent stays: custody tidy removes it. */
			custody_warn("could not remove the key pair %s again: %s", rq->key_id,
				     err.msg);
		}
	}
	rq->created_key = 0;
	if (rq->fd >= 0) {
		close(rq->fd);
		rq->fd = -1;
	}
	if (!ok && rq->created_file && unlink(rq->csr_path) != 0)
		custody_warn("could not remove %s again: %s", rq->csr_path, strerror(errno));
	rq->created_file = 0;
	EVP_PKEY_free(rq->pub);
	rq->pub = NULL;
}

/* ------------------------------------------------------------ waiting keys */

int
custody_request_csr_key_id(const custody_audit_entry *e,
			   char out[CUSTODY_KEY_ID_HEX + 1])
{
	size_t plen = sizeof(GENERATED_PREFIX) - 1, slen = sizeof(CSR_SUFFIX) - 1;
	size_t dlen, i;

	if (strcmp(e->action, CUSTODY_AUDIT_REQUEST) != 0 || e->thumbprint[0] != '\0' ||
	    e->detail == NULL || strncmp(e->detail, GENERATED_PREFIX, plen) != 0)
		return 0;
	dlen = strlen(e->detail);
	if (dlen < plen + CUSTODY_KEY_ID_HEX + slen ||
	    strcmp(e->detail + dlen - slen, CSR_SUFFIX) != 0 ||
	    e->detail[plen + CUSTODY_KEY_ID_HEX] != ' ')
		return 0;
	for (i = 0; i < CUSTODY_KEY_ID_HEX; i++) {
		if (!isxdigit((unsigned char)e->detail[plen + i]))
			return 0;
		out[i] = (char)tolower((unsigned char)e->detail[plen + i]);
	}
	out[i] = '\0';
	return 1;
}

/* Whether tok holds key_id's private key and no certificate of it. */
static int
waits_for_cert(custody_token *tok, const char *key_id)
{
	custody_token_key_objects objs;
	custody_err ignored;

	if (custody_token_count_key_objects(tok, key_id, &objs, &ignored) != CUSTODY_OK)
		return 0;
	return objs.private_keys > 0 && objs.certificates == 0;
}

static void
describe_waiting(custody_token *tok, custody_waiting_key *k)
{
	EVP_PKEY *pub = NULL;
	custody_err ignored;

	snprintf(k->key_algorithm, sizeof(k->key_algorithm), "unknown");
	if (custody_token_public_key(tok, k->key_id, &pub, &ignored) == CUSTODY_OK)
		custody_pkey_algorithm(pub, k->key_algorithm, sizeof(k->key_algorithm));
	EVP_PKEY_free(pub);
	k->key_uri = custody_token_key_uri(tok, k->key_id, NULL);
}

static int
listed(const custody_waiting_key *keys, size_t n, const char *key_id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(keys[i].key_id, key_id) == 0)
			return 1;
	return 0;
}

int
custody_request_list_waiting(custody_token *tok, custody_store *st,
			     custody_waiting_key **out, size_t *n_out,
			     custody_err *err)
{
	custody_audit_entry *log = NULL;
	custody_waiting_key *keys = NULL;
	size_t n_log = 0, n = 0, i;
	char id[CUSTODY_KEY_ID_HEX + 1];
	int r;

	*out = NULL;
	*n_out = 0;
	if ((r = custody_store_list_audit(st, 0, &log, &n_log, err)) != CUSTODY_OK)
		return r;
	if ((keys = calloc(n_log + 1, sizeof(*keys))) == NULL) {
		custody_audit_entries_free(log, n_log);
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot list the waiting keys: out of memory");
	}
	for (i = 0; i < n_log; i++) {
		if (!custody_request_csr_key_id(&log[i], id) || listed(keys, n, id) ||
		    !waits_for_cert(tok, id))
			continue;
		snprintf(keys[n].key_id, sizeof(keys[n].key_id), "%s", id);
		keys[n].requested = log[i].time;
		describe_waiting(tok, &keys[n++]);
	}
	custody_audit_entries_free(log, n_log);
	*out = keys;
	*n_out = n;
	return CUSTODY_OK;
}

void
custody_waiting_keys_free(custody_waiting_key *keys, size_t n)
{
	size_t i;

	for (i = 0; keys != NULL && i < n; i++)
		free(keys[i].key_uri);
	free(keys);
}
