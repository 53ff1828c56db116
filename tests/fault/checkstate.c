/*
 * checkstate.c — is the token consistent with itself and with the store?
 * The fault and crash tests run it after every injected fault.
 *
 *   checkstate [--module PATH] [--token LABEL] [--pin-source SRC]
 *              [--store URL] [--node NAME] [--leftovers-ok] [--torn-ok]
 *
 * Defaults: --module $CHECK_MODULE, else $SOFTHSM_MODULE (the real module,
 * never the fault shim), --token $CUSTODY_TOKEN, --pin-source
 * $CUSTODY_PIN_SOURCE, --store $CUSTODY_STORE.  It takes the token lock as
 * custody does, logs in as the user and reads; it changes nothing.
 *
 * What it asserts (each break is one line on stderr, "inconsistent: ..."):
 *  1. every private key on the token has a certificate with the same
 *     CKA_ID — unless it is a key that `custody request --csr` made: a key
 *     waiting for its certificate.  Such a key is told apart by the audit
 *     log, not by its label (a label can be anything): `request` appends
 *     "request" with detail "generated key id ID on token L, CSR" in the
 *     same breath as it writes the request file, and removes the key again
 *     when it cannot.  The cluster's own keys (CKA_ID "custody-transport:N",
 *     "custody-admitted:N", "custody-kek") are not certificate keys.
 *  2. every public key (of a certificate key id) has its private key;
 *  3. every certificate the store names with a key_uri of THIS token (the
 *     URI's token= and serial=) is on the token, beside its private key;
 *  4. every slot of every assignment names a certificate in the store;
 *  5. the audit log verifies (chain and head);
 *  6. every certificate in the store is named by an audit entry (its
 *     thumbprint, previous thumbprint or detail): none arrived unlogged;
 *  7. the cluster: every package in the store is whole (its certificate
 *     is in the store with the same key id, its wrap is not empty, it was
 *     made under the cluster's KEK: the store's kek_kcv); a KEK on this
 *     token has the store's key check value; every key this node
 *     ($CUSTODY_NODE, --node) reported held is on the token.
 * 1 and 2 are "leftovers": objects only the token holds, which nothing
 * refers to and which the same command run again completes (a key whose
 * import was killed before its certificate was written).  --leftovers-ok
 * reports them ("leftover: ...") without failing for them.
 *
 * A key or certificate object without any CKA_ID is "torn": custody never
 * makes one, but SoftHSM 2.6.1's C_CreateObject writes the object file
 * with default attributes (empty CKA_ID and CKA_LABEL, no key values)
 * before it writes the caller's template, so a process killed in between
 * leaves such a shell behind (measured with kill -9).  Nothing can use or
 * find it by id, and nothing completes it.  --torn-ok (implied by
 * --leftovers-ok) reports them ("torn: ...") without failing for them.
 *
 * Exit status: 0 consistent; 3 only leftovers or torn objects, allowed;
 * 1 inconsistent; 2 the token or the store could not be read.
 * On success one line on stdout sums up what was checked.
 */
#include "config.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <custody/audit.h>
#include <custody/cert.h>
#include <custody/hexfmt.h>
#include <custody/secret.h>
#include <custody/store.h>
#include <custody/token.h>

#include "../../src/lib/token/internal.h"

/* One object of the token: its class, CKA_ID (as hex, or as text for the
 * cluster's own ids) and, for certificates, the thumbprint. */
struct object {
	CK_OBJECT_CLASS cls;
	char id[260];
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	char label[80];
};

struct state {
	struct object *obj;
	size_t n_obj;
	custody_cert_record *certs;
	size_t n_certs;
	custody_assignment *asg;
	size_t n_asg;
	custody_audit_entry *audit;
	size_t n_audit;
	custody_package_record *pkgs;
	size_t n_pkgs;
	custody_report_record *reports;
	size_t n_reports;
	char kek_kcv[CUSTODY_STORE_KCV_HEX + 1];	/* the store's, or ""  */
	char tag_kcv[CUSTODY_STORE_KCV_HEX + 1];	/* the KEK that tags a
							 * store without a cluster */
	char token_kcv[CUSTODY_KCV_HEX + 1];		/* the token's, or ""  */
	size_t broken, leftovers, torn;
	int leftovers_ok, torn_ok;
};

enum kind { BROKEN, LEFTOVER, TORN };

static void
report(struct state *s, enum kind kind, const char *fmt, ...)
{
	va_list ap;
	const char *tag = "inconsistent: ";

	if (kind == LEFTOVER) {
		s->leftovers++;
		if (s->leftovers_ok)
			tag = "leftover: ";
	} else if (kind == TORN) {
		s->torn++;
		if (s->torn_ok)
			tag = "torn: ";
	} else {
		s->broken++;
	}
	fputs(tag, stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* The cluster's own objects carry text ids, not certificate key ids. */
static int
cluster_id(const char *id)
{
	return strncmp(id, "custody-", 8) == 0;
}

static void
id_text(const unsigned char *v, size_t len, char *out, size_t size)
{
	if (len >= 8 && memcmp(v, "custody-", 8) == 0 && len < size) {
		memcpy(out, v, len);
		out[len] = '\0';
	} else if (len * 2 < size) {
		custody_hex_encode(v, len, out, 0);
	} else {
		snprintf(out, size, "(id of %zu bytes)", len);
	}
}

static int
read_class(custody_token *tok, CK_OBJECT_CLASS cls, struct state *s,
	   custody_err *err)
{
	CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof(cls)};
	CK_OBJECT_HANDLE *h = NULL;
	size_t n = 0, i;
	struct object *more;
	int r;

	if ((r = token_find(tok, &t, 1, &h, &n, err)) != CUSTODY_OK)
		goto out;
	more = realloc(s->obj, (s->n_obj + n + 1) * sizeof(*s->obj));
	if (more == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL, "out of memory");
		goto out;
	}
	s->obj = more;
	for (i = 0; i < n; i++) {
		struct object *o = &s->obj[s->n_obj];
		unsigned char *v = NULL;
		size_t len = 0;

		memset(o, 0, sizeof(*o));
		o->cls = cls;
		if (token_get_attr(tok, h[i], CKA_ID, &v, &len, NULL) == CUSTODY_OK)
			id_text(v, len, o->id, sizeof(o->id));
		free(v);
		v = NULL;
		if (token_get_attr(tok, h[i], CKA_LABEL, &v, &len, NULL) == CUSTODY_OK)
			snprintf(o->label, sizeof(o->label), "%s", (char *)v);
		free(v);
		v = NULL;
		if (cls == CKO_CERTIFICATE &&
		    token_get_attr(tok, h[i], CKA_VALUE, &v, &len, NULL) == CUSTODY_OK) {
			custody_cert_record rec;

			if (custody_cert_record_from_der(v, len, &rec, NULL) == CUSTODY_OK) {
				memcpy(o->thumbprint, rec.thumbprint, sizeof(o->thumbprint));
				custody_cert_record_clear(&rec);
			}
		}
		free(v);
		s->n_obj++;
	}
	r = CUSTODY_OK;
out:
	free(h);
	return r;
}

static int
read_token(const char *module, const char *label, const char *pin_source,
	   struct state *s, char *tok_label, size_t label_size,
	   char *tok_serial, size_t serial_size, custody_err *err)
{
	custody_token_spec spec;
	custody_token *tok = NULL;
	custody_secret pin = {NULL, 0};
	int r;

	memset(&spec, 0, sizeof(spec));
	spec.module = module;
	spec.label = label;
	spec.lock_timeout = 30;
	if ((r = custody_token_open(&spec, &tok, err)) != CUSTODY_OK)
		goto out;
	snprintf(tok_label, label_size, "%s", custody_token_label(tok));
	snprintf(tok_serial, serial_size, "%s", custody_token_serial(tok));
	if ((r = custody_secret_read(pin_source, "User PIN: ", &pin, err)) != CUSTODY_OK ||
	    (r = custody_token_login(tok, pin.data != NULL ? pin.data : "", pin.len,
				     err)) != CUSTODY_OK)
		goto out;
	if ((r = custody_token_kek_kcv(tok, s->token_kcv, err)) == CUSTODY_ENOTFOUND) {
		s->token_kcv[0] = '\0';
	} else if (r != CUSTODY_OK && custody_token_err_is_key_fault(err)) {
		/* A KEK object that cannot wrap: what a join killed inside its
		 * unwrap leaves, and the same join again replaces. */
		report(s, LEFTOVER, "the KEK object cannot compute its key check value "
		       "(%s): a torn unwrap", err->msg);
		s->token_kcv[0] = '\0';
	} else if (r != CUSTODY_OK) {
		goto out;
	}
	if ((r = read_class(tok, CKO_PRIVATE_KEY, s, err)) != CUSTODY_OK ||
	    (r = read_class(tok, CKO_PUBLIC_KEY, s, err)) != CUSTODY_OK ||
	    (r = read_class(tok, CKO_CERTIFICATE, s, err)) != CUSTODY_OK)
		goto out;
	r = CUSTODY_OK;
out:
	custody_secret_clear(&pin);
	custody_token_close(tok);
	return r;
}

static const struct object *
find_object(const struct state *s, CK_OBJECT_CLASS cls, const char *id,
	    const char *thumbprint)
{
	size_t i;

	for (i = 0; i < s->n_obj; i++) {
		if (s->obj[i].cls != cls)
			continue;
		if (id != NULL && strcmp(s->obj[i].id, id) != 0)
			continue;
		if (thumbprint != NULL && strcmp(s->obj[i].thumbprint, thumbprint) != 0)
			continue;
		return &s->obj[i];
	}
	return NULL;
}

static const custody_cert_record *
find_cert(const struct state *s, const char *thumbprint)
{
	size_t i;

	for (i = 0; i < s->n_certs; i++)
		if (strcmp(s->certs[i].thumbprint, thumbprint) == 0)
			return &s->certs[i];
	return NULL;
}

/* The audit log says `request --csr` made this key. */
static int
csr_key(const struct state *s, const char *id)
{
	char want[320];
	size_t i;

	snprintf(want, sizeof(want), "generated key id %s on token ", id);
	for (i = 0; i < s->n_audit; i++) {
		const char *d = s->audit[i].detail;

		if (strcmp(s->audit[i].action, "request") == 0 && d != NULL &&
		    strncmp(d, want, strlen(want)) == 0 &&
		    strlen(d) > 5 && strcmp(d + strlen(d) - 5, ", CSR") == 0)
			return 1;
	}
	return 0;
}

/* The key_uri names this token (token= and serial= attributes). */
static int
uri_names_token(const char *uri, const char *label, const char *serial)
{
	char want_label[80], want_serial[40];

	snprintf(want_label, sizeof(want_label), "token=%s;", label);
	snprintf(want_serial, sizeof(want_serial), "serial=%s;", serial);
	/* Labels of the tests are plain: no percent-encoding to undo. */
	return strstr(uri, want_label) != NULL && strstr(uri, want_serial) != NULL;
}

static void
check_token(struct state *s)
{
	size_t i;

	for (i = 0; i < s->n_obj; i++) {
		const struct object *o = &s->obj[i];

		if (cluster_id(o->id))
			continue;
		if (o->id[0] == '\0') {
			report(s, TORN, "a %s object with no CKA_ID (label \"%s\"): a creation "
			       "cut short", o->cls == CKO_PRIVATE_KEY ? "private key" :
			       o->cls == CKO_PUBLIC_KEY ? "public key" : "certificate", o->label);
			continue;
		}
		if (o->cls == CKO_PRIVATE_KEY &&
		    find_object(s, CKO_CERTIFICATE, o->id, NULL) == NULL && !csr_key(s, o->id))
			report(s, LEFTOVER, "private key %s (label %s) has no certificate on the "
			       "token and no CSR in the audit log", o->id, o->label);
		if (o->cls == CKO_PUBLIC_KEY &&
		    find_object(s, CKO_PRIVATE_KEY, o->id, NULL) == NULL)
			report(s, LEFTOVER, "public key %s (label %s) has no private key", o->id,
			       o->label);
	}
}

/* Some audit entry names this thumbprint. */
static int
audited(const struct state *s, const char *thumbprint)
{
	size_t i;

	for (i = 0; i < s->n_audit; i++)
		if (strcmp(s->audit[i].thumbprint, thumbprint) == 0 ||
		    strcmp(s->audit[i].previous_thumbprint, thumbprint) == 0 ||
		    (s->audit[i].detail != NULL &&
		     strstr(s->audit[i].detail, thumbprint) != NULL))
			return 1;
	return 0;
}

static void
check_store(struct state *s, const char *label, const char *serial)
{
	const custody_slot *slot[3];
	const char *slot_name[3] = {"current", "previous", "pending"};
	size_t i, k;

	for (i = 0; i < s->n_certs; i++) {
		const custody_cert_record *c = &s->certs[i];

		if (!audited(s, c->thumbprint))
			report(s, BROKEN, "certificate %s is in the store, but no audit entry "
			       "names it", c->thumbprint);
		if (c->key_uri == NULL || !uri_names_token(c->key_uri, label, serial))
			continue;
		if (find_object(s, CKO_CERTIFICATE, NULL, c->thumbprint) == NULL)
			report(s, BROKEN, "the store names certificate %s on token %s, which "
			       "does not hold it", c->thumbprint, label);
		if (find_object(s, CKO_PRIVATE_KEY, c->key_id, NULL) == NULL)
			report(s, BROKEN, "the store names certificate %s with key id %s on "
			       "token %s, which holds no such private key", c->thumbprint,
			       c->key_id, label);
	}
	for (i = 0; i < s->n_asg; i++) {
		slot[0] = &s->asg[i].current;
		slot[1] = &s->asg[i].previous;
		slot[2] = &s->asg[i].pending;
		for (k = 0; k < 3; k++)
			if (slot[k]->thumbprint[0] != '\0' &&
			    find_cert(s, slot[k]->thumbprint) == NULL)
				report(s, BROKEN, "assignment %s/%s: %s certificate %s is not in "
				       "the store", s->asg[i].type, s->asg[i].identity,
				       slot_name[k], slot[k]->thumbprint);
	}
}

static void
check_cluster(struct state *s, const char *node)
{
	const custody_cert_record *c;
	size_t i;

	for (i = 0; i < s->n_pkgs; i++) {
		const custody_package_record *p = &s->pkgs[i];

		if ((c = find_cert(s, p->thumbprint)) == NULL)
			report(s, BROKEN, "the package of %s names no certificate in the store",
			       p->thumbprint);
		else if (strcmp(c->key_id, p->key_id) != 0)
			report(s, BROKEN, "the package of %s has key id %s, its certificate %s",
			       p->thumbprint, p->key_id, c->key_id);
		if (p->wrapped == NULL || p->wrapped_len == 0)
			report(s, BROKEN, "the package of %s is empty", p->thumbprint);
		if (strcmp(p->kcv, s->kek_kcv) != 0)
			report(s, BROKEN, "the package of %s was made under KEK %s, the "
			       "cluster's is %s", p->thumbprint, p->kcv,
			       s->kek_kcv[0] != '\0' ? s->kek_kcv : "(none)");
	}
	{
		/* The store's KEK: the cluster's, else the one that tags it. */
		const char *want = s->kek_kcv[0] != '\0' ? s->kek_kcv : s->tag_kcv;

		if (s->token_kcv[0] != '\0' && want[0] == '\0')
			report(s, LEFTOVER, "the token holds KEK %s, which the store does "
			       "not record yet: its next write adopts it", s->token_kcv);
		else if (s->token_kcv[0] != '\0' && strcasecmp(s->token_kcv, want) != 0)
			report(s, BROKEN, "the token holds KEK %s, the store's is %s",
			       s->token_kcv, want);
	}
	for (i = 0; node != NULL && i < s->n_reports; i++) {
		const custody_report_record *rp = &s->reports[i];

		if (!rp->held || strcmp(rp->node, node) != 0)
			continue;
		if ((c = find_cert(s, rp->thumbprint)) == NULL)
			report(s, BROKEN, "node %s reports %s held, which is not in the "
			       "store", node, rp->thumbprint);
		else if (find_object(s, CKO_PRIVATE_KEY, c->key_id, NULL) == NULL)
			report(s, BROKEN, "node %s reports %s held, but its token has no "
			       "private key %s", node, rp->thumbprint, c->key_id);
	}
}

static void
state_free(struct state *s)
{
	free(s->obj);
	custody_cert_records_free(s->certs, s->n_certs);
	free(s->asg);
	custody_audit_entries_free(s->audit, s->n_audit);
	custody_package_records_free(s->pkgs, s->n_pkgs);
	free(s->reports);
}

static int
usage(void)
{
	fputs("usage: checkstate [--module PATH] [--token LABEL] [--pin-source SRC] "
	      "[--store URL] [--node NAME] [--leftovers-ok] [--torn-ok]\n", stderr);
	return 2;
}

static const char *
env_or(const char *a, const char *b)
{
	const char *v = getenv(a);

	if (v != NULL && v[0] != '\0')
		return v;
	v = b != NULL ? getenv(b) : NULL;
	return v != NULL && v[0] != '\0' ? v : NULL;
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{"module", required_argument, NULL, 'm'},
		{"token", required_argument, NULL, 't'},
		{"pin-source", required_argument, NULL, 'p'},
		{"store", required_argument, NULL, 's'},
		{"leftovers-ok", no_argument, NULL, 'l'},
		{"torn-ok", no_argument, NULL, 'T'},
		{"node", required_argument, NULL, 'n'},
		{NULL, 0, NULL, 0},
	};
	const char *module = env_or("CHECK_MODULE", "SOFTHSM_MODULE");
	const char *label = env_or("CUSTODY_TOKEN", NULL);
	const char *pin_source = env_or("CUSTODY_PIN_SOURCE", NULL);
	const char *url = env_or("CUSTODY_STORE", NULL);
	const char *node = env_or("CUSTODY_NODE", NULL);
	char tok_label[64] = "", tok_serial[32] = "";
	struct state s;
	custody_store *st = NULL;
	custody_err err;
	int c, rc = 2;

	memset(&s, 0, sizeof(s));
	memset(&err, 0, sizeof(err));
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case 'm': module = optarg; break;
		case 't': label = optarg; break;
		case 'p': pin_source = optarg; break;
		case 's': url = optarg; break;
		case 'l': s.leftovers_ok = s.torn_ok = 1; break;
		case 'T': s.torn_ok = 1; break;
		case 'n': node = optarg; break;
		default: return usage();
		}
	}
	if (optind != argc || module == NULL || pin_source == NULL || url == NULL)
		return usage();

	if (custody_store_open(url, &st, &err) != CUSTODY_OK ||
	    custody_store_list_certs(st, &s.certs, &s.n_certs, &err) != CUSTODY_OK ||
	    custody_store_list_assignments(st, &s.asg, &s.n_asg, &err) != CUSTODY_OK ||
	    custody_store_list_audit(st, 0, &s.audit, &s.n_audit, &err) != CUSTODY_OK ||
	    custody_store_list_packages(st, &s.pkgs, &s.n_pkgs, &err) != CUSTODY_OK ||
	    custody_store_list_reports(st, NULL, &s.reports, &s.n_reports, &err) != CUSTODY_OK ||
	    (custody_store_get_meta(st, "kek_kcv", s.kek_kcv, sizeof(s.kek_kcv), &err) !=
	     CUSTODY_OK && err.code != CUSTODY_ENOTFOUND) ||
	    (custody_store_get_meta(st, "tag_kek_kcv", s.tag_kcv, sizeof(s.tag_kcv), &err) !=
	     CUSTODY_OK && err.code != CUSTODY_ENOTFOUND)) {
		fprintf(stderr, "checkstate: cannot read the store %s: %s\n", url, err.msg);
		goto out;
	}
	if (read_token(module, label, pin_source, &s, tok_label, sizeof(tok_label),
		       tok_serial, sizeof(tok_serial), &err) != CUSTODY_OK) {
		fprintf(stderr, "checkstate: cannot read the token: %s\n", err.msg);
		goto out;
	}
	check_token(&s);
	check_store(&s, tok_label, tok_serial);
	check_cluster(&s, node);
	if (custody_audit_verify_store(st, NULL, NULL, &err) != CUSTODY_OK)
		report(&s, 0, "the audit log does not verify: %s", err.msg);

	if (s.broken > 0 || (s.leftovers > 0 && !s.leftovers_ok) ||
	    (s.torn > 0 && !s.torn_ok)) {
		rc = 1;
		goto out;
	}
	printf("%s: token %s: %zu objects (%zu leftovers, %zu torn); store: %zu "
	       "certificates, %zu assignments, %zu audit entries\n",
	       s.leftovers + s.torn > 0 ? "allowed leftovers only" : "consistent",
	       tok_label, s.n_obj, s.leftovers, s.torn, s.n_certs, s.n_asg, s.n_audit);
	rc = s.leftovers + s.torn > 0 ? 3 : 0;
out:
	state_free(&s);
	custody_store_close(st);
	return rc;
}
