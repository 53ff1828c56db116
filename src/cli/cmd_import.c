/*
 * cmd_import.c — `custody import` (Import-CsCertificate): a PKCS#12, a PEM
 * bundle or a certificate alone goes onto the token under one key id, its
 * facts into the store, and optionally into an assignment.  Everything
 * that can be checked is checked before the token is touched.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

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
};

struct import_opts {
	const char *path;
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

	if (o->path == NULL)
		return cli_usage_error(cli, "--path FILE is required");
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

static int
load_bundle(struct cli *cli, const struct import_opts *o, custody_bundle *b)
{
	custody_secret password = {NULL, 0};
	int r;

	if (o->password_source != NULL &&
	    (r = custody_secret_read(o->password_source, "Password for the import file: ",
				     &password, &cli->err)) != CUSTODY_OK)
		return r;
	r = custody_bundle_load_file(o->path, password.data, b, &cli->err);
	custody_secret_clear(&password);
	if (r == CUSTODY_EPASSWORD && o->password_source == NULL && cli->err.hint[0] == '\0')
		custody_err_hint(&cli->err, "give the password with --password-source file:PATH|env:VAR|fd:N|prompt");
	return r;
}

/* Undoes what this import created on the token when the store refused the
 * rest: only objects that did not exist before are destroyed. */
static void
undo_token_import(struct cli *cli, const custody_token_import_result *res)
{
	custody_err err;

	if (!(res->created_key && res->created_cert))
		return;
	if (custody_token_delete(cli->token, res->key_id, &err) != CUSTODY_OK)
		cli_warn("could not remove the objects of key id %s again: %s",
			 res->key_id, err.msg);
}

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
		{NULL, 0, NULL, 0},
	};
	struct import_opts o;
	struct change_request req;
	struct change ch;
	char type[CUSTODY_NAME_MAX + 1], identity[CUSTODY_NAME_MAX + 1];
	char label[256];
	custody_bundle bundle;
	custody_cert_record rec;
	custody_token_import_result res;
	int r, in_tx = 0;

	memset(&o, 0, sizeof(o));
	memset(&bundle, 0, sizeof(bundle));
	memset(&rec, 0, sizeof(rec));
	memset(&res, 0, sizeof(res));
	memset(&ch, 0, sizeof(ch));
	if ((r = cli_parse(cli, argc, argv, options, "t:i:", on_option, &o)) != CUSTODY_OK)
		return r;
	if ((r = check_options(cli, &o, &req, type, identity)) != CUSTODY_OK)
		return r;

	/* 1. The file opens, holds what it should, and the policy allows it. */
	if ((r = load_bundle(cli, &o, &bundle)) != CUSTODY_OK)
		goto out;
	if ((r = custody_policy_check_cert(&cli->cfg.policy, bundle.cert, &cli->err)) != CUSTODY_OK)
		goto out;
	if ((r = custody_cert_record_from_x509(bundle.cert, &rec, &cli->err)) != CUSTODY_OK)
		goto out;
	if (o.label != NULL)
		snprintf(label, sizeof(label), "%s", o.label);
	else
		subject_cn(bundle.cert, label, sizeof(label));

	/* 2. The assignment, if asked for, can be made. */
	if (req.type != NULL && (r = change_plan(cli, &req, &rec, &ch)) != CUSTODY_OK)
		goto out;
	if ((r = cli_open_store(cli)) != CUSTODY_OK)
		goto out;

	/* 3. The token. */
	if ((r = cli_open_token(cli)) != CUSTODY_OK)
		goto out;
	cli_say(cli, "importing %s (%s) onto token %s%s", rec.subject, rec.key_algorithm,
		custody_token_label(cli->token),
		bundle.key == NULL ? ", certificate only" : "");
	r = custody_token_import(cli->token, bundle.key, bundle.cert, bundle.chain,
				 label[0] != '\0' ? label : NULL, o.replicable, &res,
				 &cli->err);
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

	/* 4. The store, in one transaction. */
	if ((r = custody_store_begin(cli->store, &cli->err)) != CUSTODY_OK)
		goto undo;
	in_tx = 1;
	if ((r = custody_store_put_cert(cli->store, &rec, &cli->err)) != CUSTODY_OK)
		goto undo;
	if (res.created_key || res.created_cert) {
		char detail[160];

		snprintf(detail, sizeof(detail), "key id %s on token %s: created %s%s%s",
			 res.key_id, custody_token_label(cli->token),
			 res.created_key ? "private key, " : "",
			 res.created_cert ? "certificate" : "",
			 res.created_chain > 0 ? ", CA certificates" : "");
		if ((r = cli_audit(cli, "import", NULL, NULL, rec.thumbprint, NULL,
				   detail)) != CUSTODY_OK)
			goto undo;
	}
	if (req.type != NULL && (r = change_write(cli, &ch)) != CUSTODY_OK)
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
	undo_token_import(cli, &res);
out:
	custody_cert_record_clear(&rec);
	custody_bundle_free(&bundle);
	return r;
}
