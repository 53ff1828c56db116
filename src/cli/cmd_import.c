/*
 * cmd_import.c — `custody import` (Import-CsCertificate): a PKCS#12, a PEM
 * bundle or a certificate alone goes onto the token under one key id, its
 * facts into the store, and optionally into an assignment.  Everything
 * that can be checked is checked before the token is touched.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <openssl/x509.h>

#include <custody/cert.h>
#include <custody/cluster.h>
#include <custody/hexfmt.h>
#include <custody/policy.h>
#include <custody/secret.h>
#include <custody/timefmt.h>

#include "change.h"
#include "cli.h"

enum {
	OPT_PATH = OPT_FIRST_COMMAND_OPTION,
	OPT_PASSWORD_SOURCE,
	OPT_LABEL,
	OPT_REPLICABLE,
	OPT_EFFECTIVE_DATE,
	OPT_ROLL,
	OPT_PACKAGE,
};

struct import_opts {
	const char *path;
	const char *package;
	const char *password_source;
	const char *label;
	const char *type;
	const char *identity;
	const char *effective_date;
	int replicable;
	int roll;
};

static int
on_option(struct cli *cli, int c, const char *arg, void *ctx)
{
	struct import_opts *o = ctx;

	(void)cli;
	switch (c) {
	case OPT_PATH: o->path = arg; break;
	case OPT_PASSWORD_SOURCE: o->password_source = arg; break;
	case OPT_LABEL: o->label = arg; break;
	case OPT_REPLICABLE: o->replicable = 1; break;
	case OPT_EFFECTIVE_DATE: o->effective_date = arg; break;
	case OPT_ROLL: o->roll = 1; break;
	case OPT_PACKAGE: o->package = arg; break;
	case 't': o->type = arg; break;
	case 'i': o->identity = arg; break;
	}
	return CUSTODY_OK;
}

/* The subject CN, the default label. */
static void
subject_cn(X509 *x, char *buf, size_t size)
{
	buf[0] = '\0';
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
				      buf, (int)size) < 0)
		buf[0] = '\0';
}

/* Checks the options that go together, before anything is read. */
static int
check_options(struct cli *cli, const struct import_opts *o,
	      struct change_request *req, char *type, char *identity)
{
	int r;

	if ((o->path == NULL) == (o->package == NULL))
		return cli_usage_error(cli, "give exactly one of --path FILE and --package FILE");
	if (o->package != NULL && (o->password_source != NULL || o->replicable))
		return cli_usage_error(cli, "--package takes no --password-source and no "
				       "--replicable: the key in it is wrapped, and replicates");
	if (o->roll && o->effective_date == NULL)
		return cli_usage_error(cli, "--roll needs --effective-date TIME");
	if (o->effective_date != NULL && !o->roll)
		return cli_usage_error(cli, "--effective-date needs --roll");
	if (o->type == NULL && (o->identity != NULL || o->roll))
		return cli_usage_error(cli, "-i and --roll need -t TYPE");
	if (o->password_source != NULL &&
	    (r = custody_secret_source_check(o->password_source, &cli->err)) != CUSTODY_OK)
		return custody_err_prefix(&cli->err, "--password-source");
	if (o->label != NULL && (o->label[0] == '\0' || strlen(o->label) > 255))
		return cli_usage_error(cli, "--label must be 1 to 255 characters");
	memset(req, 0, sizeof(*req));
	if (o->type == NULL)
		return cli_check_output(cli, 1u << OUT_TABLE | 1u << OUT_JSON | 1u << OUT_THUMBPRINT);
	if ((r = custody_type_canonical(o->type, type, NULL, &cli->err)) != CUSTODY_OK)
		return r;
	if (o->identity != NULL)
		r = custody_identity_canonical(o->identity, identity, &cli->err);
	else
		r = custody_identity_canonical(cli_default_identity(cli, type), identity,
					       &cli->err);
	if (r != CUSTODY_OK)
		return r;
	if (o->roll &&
	    (r = custody_time_parse(o->effective_date, &req->effective, &cli->err)) != CUSTODY_OK)
		return custody_err_prefix(&cli->err, "--effective-date");
	req->type = type;
	req->identity = identity;
	req->roll = o->roll;
	return cli_check_output(cli, 1u << OUT_TABLE | 1u << OUT_JSON | 1u << OUT_THUMBPRINT);
}

/*
 * The password is read first (a prompt must not keep the token locked);
 * then the token lock is taken, and only then is the file read and its
 * key decrypted: a decrypted private key never sits in memory while this
 * process waits for another one to let go of the token.
 */
static int
load_bundle(struct cli *cli, const struct import_opts *o, custody_token_lock **lock,
	    custody_bundle *b)
{
	custody_token_spec spec;
	custody_secret password = {NULL, 0};
	int r = CUSTODY_EFAIL;

	if (o->password_source != NULL &&
	    (r = custody_secret_read(o->password_source, "Password for the import file: ",
				     &password, &cli->err)) != CUSTODY_OK) {
		custody_err_prefix(&cli->err, "--password-source");
		goto out;
	}
	if ((r = cli_token_spec(cli, &spec)) != CUSTODY_OK ||
	    (r = custody_token_lock_take(&spec, lock, &cli->err)) != CUSTODY_OK)
		goto out;
	r = custody_bundle_load_file(o->path, password.data, b, &cli->err);
	if (r == CUSTODY_OK && b->legacy[0] != '\0')
		cli_note(cli, "%s is protected with legacy encryption (%s); "
			 "re-protect exports with AES-256", o->path, b->legacy);
	if (r == CUSTODY_EPASSWORD && o->password_source == NULL && cli->err.hint[0] == '\0')
		custody_err_hint(&cli->err, "give the password with --password-source file:PATH|env:VAR|fd:N|prompt");
out:
	custody_secret_clear(&password);
	return r;
}

/* --package FILE: read (at most CUSTODY_PACKAGE_MAX bytes are looked at)
 * and parsed strictly; its certificate goes into b->cert. */
static int
load_package(struct cli *cli, const char *path, custody_package *pkg, custody_bundle *b)
{
	unsigned char *buf = NULL;
	const unsigned char *p;
	size_t len = 0;
	FILE *f = NULL;
	int r = CUSTODY_EFAIL, fd = -1;

	/* O_NONBLOCK: open() of a FIFO without a writer would wait forever;
	 * then the reads block again (no writer reads as end of file). */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0 ||
	    (f = fdopen(fd, "rb")) == NULL) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "cannot open %s: %s", path,
				    strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	if ((buf = malloc(CUSTODY_PACKAGE_MAX + 1)) == NULL) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "cannot read %s: out of memory",
				    path);
		goto out;
	}
	len = fread(buf, 1, CUSTODY_PACKAGE_MAX + 1, f);
	if (ferror(f)) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "cannot read %s: %s", path,
				    strerror(errno));
		goto out;
	}
	if ((r = custody_package_parse(buf, len, pkg, &cli->err)) != CUSTODY_OK) {
		custody_err_prefix(&cli->err, "%s", path);
		goto out;
	}
	p = pkg->cert_der;
	if ((b->cert = d2i_X509(NULL, &p, (long)pkg->cert_der_len)) == NULL) {
		r = custody_err_openssl(&cli->err, CUSTODY_EFAIL,
					"%s: the package's certificate cannot be read", path);
		goto out;
	}
	r = CUSTODY_OK;
out:
	if (f != NULL)
		fclose(f);
	if (buf != NULL)
		OPENSSL_clear_free(buf, CUSTODY_PACKAGE_MAX + 1);
	return r;
}

/* What the token must do with the key of cert: sign with it. */
static int
require_key(struct cli *cli, X509 *cert)
{
	EVP_PKEY *pub = X509_get0_pubkey(cert);

	if (pub == NULL)
		return CUSTODY_OK;	/* refused later, in its own words */
	return custody_token_require_key(cli->token, EVP_PKEY_get_base_id(pub),
					 EVP_PKEY_get_bits(pub), "import", &cli->err);
}

/* The package of a --replicable key can be made here only when this token
 * holds the cluster KEK.  When it cannot, an assignment at global of a
 * cluster of several nodes is refused; anything else goes on, unpackaged. */
static int
check_packaging(struct cli *cli, const struct change_request *req,
		const custody_cert_record *rec, const char *store_kcv, int *package)
{
	char unused[CUSTODY_KCV_HEX + 1], token_kcv[CUSTODY_KCV_HEX + 1];
	int r;

	if (!*package)
		return CUSTODY_OK;
	if ((r = custody_cluster_kek_state(cli->token, NULL, unused, token_kcv,
					   &cli->err)) != CUSTODY_OK)
		return r;
	if (strcmp(token_kcv, store_kcv) == 0) {
		cli_say(cli, "the key is replicable: its package (wrapped under the cluster "
			"KEK %s) goes to the store with it", store_kcv);
		return CUSTODY_OK;
	}
	*package = 0;
	if (req->type != NULL &&
	    (r = custody_cluster_check_global(cli->store, req->identity, rec->thumbprint, 0,
					      &cli->err)) != CUSTODY_OK) {
		custody_err_hint(&cli->err, "token %s %s the cluster KEK (%s): join the "
				 "cluster first (custody node enroll / admit / join)",
				 custody_token_label(cli->token),
				 token_kcv[0] != '\0' ? "holds another KEK than" : "does not hold",
				 store_kcv);
		return r;
	}
	cli_warn("the key is replicable but not packaged: token %s does not hold the "
		 "cluster KEK (%s); custody sync packages it once this node has joined",
		 custody_token_label(cli->token), store_kcv);
	return CUSTODY_OK;
}

/* Undoes what this import created on the token when the store refused the
 * rest: only objects that did not exist before are destroyed.  0 when
 * they could not be (their note of intent then stays, for custody tidy). */
/* Destroys CA certificate x again when this import created it. */
static int
undo_ca_cert(struct cli *cli, const custody_token_import_result *res, X509 *x)
{
	unsigned char id[20], *der = NULL;
	char hex[CUSTODY_KEY_ID_HEX + 1];
	custody_err err;
	int i, len, r;

	if (custody_cert_key_id(x, id, &err) != CUSTODY_OK)
		return 1;
	custody_hex_encode(id, sizeof(id), hex, 0);
	for (i = 0; i < res->created_chain && i < CUSTODY_TOKEN_CHAIN_MAX; i++)
		if (strcmp(res->chain_key_ids[i], hex) == 0)
			break;
	if (i == res->created_chain || i == CUSTODY_TOKEN_CHAIN_MAX ||
	    (len = i2d_X509(x, &der)) <= 0)
		return 1;
	r = custody_token_delete_cert(cli->token, hex, der, (size_t)len, &err);
	OPENSSL_free(der);
	if (r != CUSTODY_OK && r != CUSTODY_ENOTFOUND) {
		cli_warn("could not remove CA certificate %s again: %s", hex, err.msg);
		return 0;
	}
	return 1;
}

static int
undo_token_import(struct cli *cli, const custody_token_import_result *res,
		  const custody_cert_record *rec, STACK_OF(X509) *chain)
{
	custody_err err;
	int i, ok = 1, r = CUSTODY_OK;

	/* The key with its certificate, or the certificate alone (a new
	 * certificate for a key the token held already). */
	if (res->created_key && res->created_cert)
		r = custody_token_delete(cli->token, res->key_id, &err);
	else if (res->created_cert)
		r = custody_token_delete_cert(cli->token, res->key_id, rec->der, rec->der_len,
					      &err);
	if (r != CUSTODY_OK && r != CUSTODY_ENOTFOUND) {
		cli_warn("could not remove the objects of key id %s again: %s",
			 res->key_id, err.msg);
		ok = 0;
	}
	/* The CA certificates it created, each under its own key id. */
	for (i = 0; chain != NULL && i < sk_X509_num(chain); i++)
		if (!undo_ca_cert(cli, res, sk_X509_value(chain, i)))
			ok = 0;
	return ok;
}

const char cmd_import_usage[] =
	"custody import --path FILE [--password-source SRC] [--label LABEL] [--replicable]\n"
	"               [-t TYPE [-i IDENTITY] [--roll --effective-date TIME]]\n"
	"custody import --package FILE [--label LABEL] [-t TYPE ...]\n"
	"\n"
	"Creates the private key and the certificate (and the chain's CA certificates)\n"
	"on the token under one key id, records the certificate in the store, and\n"
	"prints its thumbprint. Everything is checked before anything is written.\n"
	"\n"
	"  --path FILE               PKCS#12 (.pfx/.p12), PEM (certificate + key), or a\n"
	"                            certificate alone whose key is already on the token\n"
	"  --password-source SRC     file:PATH, env:VAR, fd:N or prompt\n"
	"  --label LABEL             CKA_LABEL (default: the subject CN)\n"
	"  --replicable              extractable (only under trusted wrap where the token\n"
	"                            can hold a trusted KEK); on a cluster member its\n"
	"                            package (wrapped under the KEK) goes to the store\n"
	"  --package FILE            a key package from custody export: unwrapped under\n"
	"                            this token's KEK (sensitive, never extractable)\n"
	"  -t, --type TYPE           also assign it, as `custody set` does\n"
	"  -i, --identity IDENTITY   where to assign it\n"
	"  --roll --effective-date TIME   stage it to become current at TIME\n";

int
cmd_import(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		{"path", required_argument, NULL, OPT_PATH},
		{"password-source", required_argument, NULL, OPT_PASSWORD_SOURCE},
		{"label", required_argument, NULL, OPT_LABEL},
		{"replicable", no_argument, NULL, OPT_REPLICABLE},
		{"type", required_argument, NULL, 't'},
		{"identity", required_argument, NULL, 'i'},
		{"effective-date", required_argument, NULL, OPT_EFFECTIVE_DATE},
		{"roll", no_argument, NULL, OPT_ROLL},
		{"package", required_argument, NULL, OPT_PACKAGE},
		{NULL, 0, NULL, 0},
	};
	struct import_opts o;
	struct change_request req;
	struct change ch;
	char type[CUSTODY_NAME_MAX + 1], identity[CUSTODY_NAME_MAX + 1];
	char label[256];
	custody_bundle bundle;
	custody_cert_record rec, known;
	custody_package pkg;
	char store_kcv[CUSTODY_KCV_HEX + 1], token_kcv[CUSTODY_KCV_HEX + 1];
	int package = 0, noted = 0;
	custody_token_import_result res;
	custody_token_lock *lock = NULL;
	int r, in_tx = 0, was_known = 0;

	memset(&o, 0, sizeof(o));
	memset(&bundle, 0, sizeof(bundle));
	memset(&rec, 0, sizeof(rec));
	memset(&known, 0, sizeof(known));
	memset(&pkg, 0, sizeof(pkg));
	store_kcv[0] = token_kcv[0] = '\0';
	memset(&res, 0, sizeof(res));
	memset(&ch, 0, sizeof(ch));
	if ((r = cli_parse(cli, argc, argv, options, "t:i:", on_option, &o)) != CUSTODY_OK)
		return r;
	if ((r = check_options(cli, &o, &req, type, identity)) != CUSTODY_OK)
		return r;

	/* 1. The file opens, holds what it should, and the policy allows it. */
	if (o.package != NULL)
		r = load_package(cli, o.package, &pkg, &bundle);
	else
		r = load_bundle(cli, &o, &lock, &bundle);
	if (r != CUSTODY_OK)
		goto out;
	if ((r = custody_policy_check_cert(&cli->cfg.policy, bundle.cert, &cli->err)) != CUSTODY_OK)
		goto out;
	if ((r = custody_cert_record_from_x509(bundle.cert, &rec, &cli->err)) != CUSTODY_OK)
		goto out;
	if (o.label != NULL)
		snprintf(label, sizeof(label), "%s", o.label);
	else
		subject_cn(bundle.cert, label, sizeof(label));

	/* 2. The cluster: a replicable key (or a package under the cluster's
	 * KEK) goes to the store as a package, which global in a cluster of
	 * several nodes requires. */
	if (o.replicable || o.package != NULL) {
		if ((r = cli_open_store(cli)) != CUSTODY_OK ||
		    (r = custody_cluster_kek_state(NULL, cli->store, store_kcv, token_kcv,
						   &cli->err)) != CUSTODY_OK)
			goto out;
		if (o.package != NULL)
			package = store_kcv[0] != '\0' && strcmp(store_kcv, pkg.kcv) == 0;
		else
			package = store_kcv[0] != '\0';
	}
	req.replicable = package;
	/* 3. The assignment, if asked for, can be made. */
	if (req.type != NULL && (r = change_plan(cli, &req, &rec, &ch)) != CUSTODY_OK)
		goto out;
	if ((r = cli_open_store(cli)) != CUSTODY_OK)
		goto out;

	/* 4. The token, with a note of intent first (tidy's proof that what
	 * an interrupted import leaves is custody's; removed at the end). */
	if ((r = cli_open_token(cli)) != CUSTODY_OK ||
	    ((bundle.key != NULL || o.package != NULL) &&
	     (r = require_key(cli, bundle.cert)) != CUSTODY_OK) ||
	    (o.replicable &&
	     (r = custody_token_require_cluster(cli->token, "import replicable keys",
						&cli->err)) != CUSTODY_OK))
		goto out;
	if (o.replicable && !package)
		cli_say(cli, "the store records no cluster KEK: the key is replicable "
			"but not packaged; custody sync packages it on a member later");
	if (o.replicable && (r = check_packaging(cli, &req, &rec, store_kcv, &package)) !=
	    CUSTODY_OK)
		goto out;
	if ((r = custody_token_intent_add(cli->token, rec.key_id, &cli->err)) != CUSTODY_OK)
		goto out;
	noted = 1;
	if (o.package != NULL) {
		int present = 0;

		if ((r = custody_token_has_private_key(cli->token, pkg.key_id, &present,
						       &cli->err)) != CUSTODY_OK)
			goto out;
		if (present) {
			cli_say(cli, "the key of %s is already on token %s: nothing is unwrapped",
				rec.thumbprint, custody_token_label(cli->token));
			r = custody_token_import(cli->token, NULL, bundle.cert, NULL,
						 label[0] != '\0' ? label : NULL, 0, &res,
						 &cli->err);
		} else {
			cli_say(cli, "importing the package of %s (%s, key id %s, KEK %s) onto "
				"token %s", rec.subject, rec.key_algorithm, pkg.key_id, pkg.kcv,
				custody_token_label(cli->token));
			r = custody_cluster_unwrap_package(cli->token, &pkg,
							   label[0] != '\0' ? label : NULL,
							   &cli->err);
			if (r == CUSTODY_OK) {
				res.created_key = res.created_cert = 1;
				snprintf(res.key_id, sizeof(res.key_id), "%s", pkg.key_id);
			}
		}
	} else {
		cli_say(cli, "importing %s (%s) onto token %s%s", rec.subject, rec.key_algorithm,
			custody_token_label(cli->token),
			bundle.key == NULL ? ", certificate only" : "");
		r = custody_token_import(cli->token, bundle.key, bundle.cert, bundle.chain,
					 label[0] != '\0' ? label : NULL, o.replicable, &res,
					 &cli->err);
	}
	if (r != CUSTODY_OK)
		goto out;
	if (!res.created_key && !res.created_cert)
		cli_say(cli, "already on the token (key id %s): nothing created", res.key_id);
	else
		cli_say(cli, "created on the token: %s%s%s (key id %s)",
			res.created_key ? "private key, " : "",
			res.created_cert ? "certificate" : "",
			res.created_chain > 0 ? ", CA certificates" : "", res.key_id);
	free(rec.label);
	rec.label = label[0] != '\0' ? strdup(label) : NULL;
	rec.key_uri = custody_token_key_uri(cli->token, res.key_id, rec.label);

	/* 5. The store, in one transaction. */
	if ((r = custody_store_begin(cli->store, &cli->err)) != CUSTODY_OK)
		goto undo;
	in_tx = 1;
	/* A certificate new to the store is logged even when the token had
	 * it already: an import killed after the token write and before the
	 * store's commit left it there, and the log must still say it came. */
	if (custody_store_get_cert(cli->store, rec.thumbprint, &known, NULL) == CUSTODY_OK)
		was_known = 1;
	custody_cert_record_clear(&known);
	if ((r = custody_store_put_cert(cli->store, &rec, &cli->err)) != CUSTODY_OK)
		goto undo;
	if (res.created_key || res.created_cert || !was_known) {
		char detail[160];

		if (res.created_key || res.created_cert)
			snprintf(detail, sizeof(detail), "key id %s on token %s: created %s%s%s",
				 res.key_id, custody_token_label(cli->token),
				 res.created_key ? "private key, " : "",
				 res.created_cert ? "certificate" : "",
				 res.created_chain > 0 ? ", CA certificates" : "");
		else
			snprintf(detail, sizeof(detail), "key id %s on token %s: already there, "
				 "new to the store", res.key_id, custody_token_label(cli->token));
		if (o.package != NULL && res.created_key)
			snprintf(detail, sizeof(detail), "key id %s on token %s: unwrapped "
				 "from a package under KEK %s", res.key_id,
				 custody_token_label(cli->token), pkg.kcv);
		if ((r = cli_audit(cli, "import", NULL, NULL, rec.thumbprint, NULL,
				   detail)) != CUSTODY_OK)
			goto undo;
	}
	if (package && o.package == NULL &&
	    (r = custody_cluster_package_put(cli->token, cli->store, cli->node, rec.thumbprint,
					     res.key_id, &cli->err)) != CUSTODY_OK)
		goto undo;
	if (package && o.package != NULL) {
		custody_package_record pr;

		memset(&pr, 0, sizeof(pr));
		snprintf(pr.thumbprint, sizeof(pr.thumbprint), "%s", pkg.thumbprint);
		snprintf(pr.key_id, sizeof(pr.key_id), "%s", pkg.key_id);
		snprintf(pr.kcv, sizeof(pr.kcv), "%s", pkg.kcv);
		snprintf(pr.node, sizeof(pr.node), "%s", cli->node);
		pr.wrapped = pkg.wrapped;
		pr.wrapped_len = pkg.wrapped_len;
		pr.created_at = (int64_t)time(NULL);
		if ((r = custody_store_put_package(cli->store, &pr, &cli->err)) != CUSTODY_OK)
			goto undo;
	}
	if (req.type != NULL && (r = change_write(cli, &ch)) != CUSTODY_OK)
		goto undo;
	/* In a cluster, this node now holds the key: it says so at once. */
	if ((r = custody_cluster_report_held(cli->store, cli->node, rec.thumbprint,
					     o.package != NULL && res.created_key ? "unwrapped" :
					     "imported", &cli->err)) != CUSTODY_OK)
		goto undo;
	if ((r = custody_store_commit(cli->store, &cli->err)) != CUSTODY_OK)
		goto undo;
	in_tx = 0;
	if (req.type != NULL)
		change_report(cli, &ch, 0);
	if (cli->output == OUT_JSON)
		r = out_json(cli, out_cert_json(&rec, -1));
	else
		printf("%s\n", rec.thumbprint);
	goto out;
undo:
	if (in_tx)
		custody_store_rollback(cli->store);
	if (!undo_token_import(cli, &res, &rec, bundle.chain))
		noted = 0;
out:
	if (noted)	/* done, or undone */
		custody_token_intent_done(cli->token, rec.key_id);
	custody_cert_record_clear(&rec);
	custody_bundle_free(&bundle);
	custody_package_clear(&pkg);
	custody_token_lock_release(lock);
	return r;
}
