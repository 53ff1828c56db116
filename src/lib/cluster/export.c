/*
 * cluster/export.c — the token-side steps of a key package moved by hand:
 * `custody export` wraps (or takes from the store) the package of a key,
 * `custody import --package` unwraps one into this token.  The package's
 * form and its parser are in cluster/package.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <custody/cert.h>
#include <custody/cluster.h>
#include <custody/error.h>
#include <custody/hexfmt.h>
#include <custody/log.h>
#include <custody/ops.h>

#include "cluster/internal.h"
#include "token/wrap.h"

/*
 * What export does, checked before anything is written (the dry run's
 * check is this one): the store's record of the certificate, the KEK's
 * state, then either the package the store holds (*stored, wrapped set)
 * or, when it holds none, a KEK on this token (*kcv) to wrap the key
 * under.  Whether the key may be wrapped is the token's to say when it
 * wraps; a dry run (probe) reads the key's CKA_EXTRACTABLE instead.
 */
static int
export_source(custody_token *tok, custody_store *st, const char *thumbprint,
	      int probe, custody_cert_record *cert, custody_package_record *stored,
	      char kcv[CUSTODY_KCV_HEX + 1], custody_err *err)
{
	char store_kcv[CUSTODY_KCV_HEX + 1];
	custody_key_attrs attrs;
	int r;

	if ((r = custody_store_get_cert(st, thumbprint, cert, err)) != CUSTODY_OK ||
	    (r = custody_cert_record_check(cert, NULL, err)) != CUSTODY_OK ||
	    (r = custody_cluster_kek_state(tok, st, store_kcv, kcv, err)) !=
	    CUSTODY_OK)
		return r;
	r = custody_store_get_package(st, thumbprint, stored, err);
	if (r != CUSTODY_ENOTFOUND)
		return r;
	custody_err_clear(err);
	if (kcv[0] == '\0')
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot export %s: the store holds no "
				       "package for it and token %s holds no KEK "
				       "to wrap it under", thumbprint,
				       custody_token_label(tok));
	if (!probe)
		return CUSTODY_OK;
	if ((r = custody_token_key_attrs(tok, cert->key_id, &attrs, err)) !=
	    CUSTODY_OK)
		return r;
	if (attrs.extractable != 1) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot wrap private key %s under the KEK on "
				    "token %s: it is not extractable", cert->key_id,
				    custody_token_label(tok));
		custody_err_hint(err, "the key is not extractable: it was "
				 "sealed, or not made with --replicable");
	}
	return r;
}

static int
export_attached(custody_token *tok, custody_store *st, const char *node,
		const char *thumbprint, custody_package *out, custody_err *err)
{
	custody_cert_record cert;
	custody_package_record stored;
	custody_txn tx;
	char kcv[CUSTODY_KCV_HEX + 1];
	char detail[200];
	int r;

	memset(&cert, 0, sizeof(cert));
	memset(&stored, 0, sizeof(stored));
	if (out == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot export: nowhere to put the package");
	memset(out, 0, sizeof(*out));
	if ((r = export_source(tok, st, thumbprint, 0, &cert, &stored, kcv, err)) !=
	    CUSTODY_OK)
		goto out;
	if (stored.wrapped != NULL) {
		custody_step("the store holds the package of %s (wrapped under "
			     "KEK %s on node %s): it is exported as it is",
			     thumbprint, stored.kcv, stored.node);
		out->wrapped = stored.wrapped;
		out->wrapped_len = stored.wrapped_len;
		stored.wrapped = NULL;
		stored.wrapped_len = 0;
		snprintf(out->kcv, sizeof(out->kcv), "%s", stored.kcv);
	} else {
		custody_step("wrapping private key %s (certificate %s) under the "
			     "KEK (key check value %s) on token %s", cert.key_id,
			     thumbprint, kcv, custody_token_label(tok));
		if ((r = custody_token_wrap_private_key(tok, cert.key_id,
							&out->wrapped,
							&out->wrapped_len,
							err)) != CUSTODY_OK)
			goto out;
		snprintf(out->kcv, sizeof(out->kcv), "%s", kcv);
	}
	snprintf(out->thumbprint, sizeof(out->thumbprint), "%s", thumbprint);
	snprintf(out->key_id, sizeof(out->key_id), "%s", cert.key_id);
	if ((out->cert_der = malloc(cert.der_len)) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot export %s: out of memory", thumbprint);
		goto out;
	}
	memcpy(out->cert_der, cert.der, cert.der_len);
	out->cert_der_len = cert.der_len;
	snprintf(detail, sizeof(detail), "key id %s wrapped under KEK %s, "
		 "written to a package file", cert.key_id, out->kcv);
	custody_txn_init(&tx, st, tok, node, err);
	if ((r = custody_txn_begin(&tx)) == CUSTODY_OK &&
	    (r = custody_txn_audit(&tx, "export", NULL, NULL, thumbprint, NULL,
				   detail)) == CUSTODY_OK)
		r = custody_txn_commit(&tx);
	custody_txn_end(&tx, r);
out:
	if (r != CUSTODY_OK)
		custody_package_clear(out);
	custody_cert_record_clear(&cert);
	custody_package_record_clear(&stored);
	return r;
}

int
custody_cluster_export_check(custody_token *tok, custody_store *st,
			     const char *thumbprint, int *in_store,
			     custody_err *err)
{
	char kcv[CUSTODY_KCV_HEX + 1];
	custody_package_record stored;
	custody_cert_record cert;
	int r;

	memset(&cert, 0, sizeof(cert));
	memset(&stored, 0, sizeof(stored));
	r = export_source(tok, st, thumbprint, 1, &cert, &stored, kcv, err);
	*in_store = r == CUSTODY_OK && stored.wrapped != NULL;
	custody_cert_record_clear(&cert);
	custody_package_record_clear(&stored);
	return r;
}

int
custody_cluster_unwrap_package(custody_token *tok, const custody_package *pkg,
			       const char *label, custody_err *err)
{
	const unsigned char *p;
	char kcv[CUSTODY_KCV_HEX + 1];
	int present = 0, r;
	X509 *x = NULL;

	if (pkg == NULL || pkg->cert_der == NULL || pkg->wrapped == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot unwrap a key package: it is empty");
	if ((r = custody_token_kek_present(tok, &present, err)) != CUSTODY_OK)
		goto out;
	if (!present) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot unwrap the package of %s: token %s "
				    "holds no KEK", pkg->thumbprint,
				    custody_token_label(tok));
		custody_err_hint(err, "join the cluster first (custody node "
				 "enroll / admit / join)");
		goto out;
	}
	if ((r = custody_token_kek_kcv(tok, kcv, err)) != CUSTODY_OK)
		goto out;
	if (strcasecmp(kcv, pkg->kcv) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot unwrap the package of %s: it was "
				    "wrapped under another KEK (key check value "
				    "%s); token %s holds %s", pkg->thumbprint,
				    pkg->kcv, custody_token_label(tok), kcv);
		goto out;
	}
	p = pkg->cert_der;
	if ((x = d2i_X509(NULL, &p, (long)pkg->cert_der_len)) == NULL) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot unwrap the package of %s: its "
					"certificate cannot be read",
					pkg->thumbprint);
		goto out;
	}
	custody_step("unwrapping the package of %s (key id %s, KEK %s) into "
		     "token %s", pkg->thumbprint, pkg->key_id, kcv,
		     custody_token_label(tok));
	r = custody_token_unwrap_private_key(tok, pkg->wrapped, pkg->wrapped_len,
					     label, x, err);
out:
	X509_free(x);
	return r;
}

int
custody_cluster_export(custody_token *tok, custody_store *st,
		       const char *node, const char *thumbprint,
		       custody_package *out, custody_err *err)
{
	int attached = 0, r;

	if ((r = cluster_attach_token(tok, st, &attached, err)) != CUSTODY_OK)
		return r;
	r = export_attached(tok, st, node, thumbprint, out, err);
	cluster_detach_token(st, attached);
	return r;
}
