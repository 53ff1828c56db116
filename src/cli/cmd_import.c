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
#include <custody/rollover.h>
#include <custody/secret.h>
#include <custody/timefmt.h>

#include "change.h"
#include "cli.h"

enum {
	OPT_PATH = OPT_FIRST_CHANGE_COMMAND_OPTION,
	OPT_PASSWORD_SOURCE,
	OPT_LABEL,
	OPT_REPLICABLE,
	OPT_PACKAGE,
	OPT_KEY,
	OPT_DRY_RUN,
	OPT_FORCE,
};

struct import_opts {
	const char *path;
	const char *key;	/* --key FILE: the private key, apart */
	const char *package;
	const char *password_source;
	const char *label;
	int replicable;
	int dry_run;
	int force;
	struct change_opts change;	/* -t, -i, --roll --effective-date */
};

/* Checks the options that go together, before anything is read. */
static int
check_options(struct cli *cli, struct import_opts *o, custody_change_request *req)
{
	int r;

	if ((o->path == NULL) == (o->package == NULL))
		return cli_usage_error(cli, "give exactly one of --path FILE and --package FILE");
	if (o->key != NULL && o->path == NULL)
		return cli_usage_error(cli, "--key FILE goes with --path FILE (the certificate)");
	if (o->package != NULL && (o->password_source != NULL || o->replicable))
		return cli_usage_error(cli, "--package takes no --password-source and no "
				       "--replicable: the key in it is wrapped, and replicates");
	if ((r = change_opts_usage(cli, &o->change, 0)) != CUSTODY_OK)
		return r;
	if (o->password_source != NULL &&
	    (r = custody_secret_source_check(o->password_source, &cli->err)) != CUSTODY_OK)
		return custody_err_prefix(&cli->err, "--password-source");
	if (o->label != NULL && (o->label[0] == '\0' || strlen(o->label) > 255))
		return cli_usage_error(cli, "--label must be 1 to 255 characters");
	memset(req, 0, sizeof(*req));
	if (change_opts_given(&o->change) &&
	    (r = change_opts_request(cli, &o->change, req)) != CUSTODY_OK)
		return r;
	if (o->force)
		change_opts_force_early(&o->change, req);
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
	r = custody_bundle_load_files(o->path, o->key, password.data, b, &cli->err);
	/* No password source for an encrypted file: asked on a terminal,
	 * else a usage error (exit 2), as a missing option is. */
	if (r == CUSTODY_EPASSWORD && o->password_source == NULL) {
		if (isatty(STDIN_FILENO)) {
			custody_err_clear(&cli->err);
			r = custody_secret_read("prompt", "Password for the import file: ",
						&password, &cli->err);
			if (r == CUSTODY_OK)
				r = custody_bundle_load_files(o->path, o->key, password.data,
							      b, &cli->err);
		} else {
			r = cli->err.code = CUSTODY_EUSAGE;
		}
	}
	if (r == CUSTODY_OK && b->legacy[0] != '\0')
		cli_note(cli, "%s is protected with legacy encryption (%s); "
			 "re-protect exports with AES-256", o->path, b->legacy);
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

/* --path and --key once each: a second file would be read in place of the
 * first, never beside it. */
static int
on_file_option(struct cli *cli, int c, const char *arg, void *ctx)
{
	struct import_opts *o = ctx;
	const char **slot;

	if (c != OPT_PATH && c != OPT_KEY)
		return CUSTODY_OK;
	slot = c == OPT_PATH ? &o->path : &o->key;
	if (*slot != NULL)
		return cli_usage_error(cli, "--%s is given twice ('%s', then '%s'): import "
				       "one certificate at a time", c == OPT_PATH ? "path" : "key",
				       *slot, arg);
	*slot = arg;
	return CUSTODY_OK;
}

/* A certificate alone whose key a csr-mode rollover made: staged as the
 * pending certificate of the request's assignment (custody/rollover.h). */
static int
rollover_assignment(struct cli *cli, struct import_opts *o, const custody_bundle *b,
		    custody_change_request *assign)
{
	unsigned char id[20];
	char key_id[CUSTODY_KEY_ID_HEX + 1];
	custody_ops_env env;
	custody_err ignored;
	int found = 0, r;

	if (cli->cfg.n_rollover == 0 || custody_cert_key_id(b->cert, id, &ignored) != CUSTODY_OK)
		return CUSTODY_OK;	/* the import says what is wrong with it */
	custody_hex_encode(id, sizeof(id), key_id, 0);
	change_env_now(cli, &env);
	if ((r = custody_rollover_import_roll(&env, &cli->cfg, key_id, &found,
					      o->change.type_name[0], o->change.identity_name[0],
					      &assign->effective, &cli->err)) != CUSTODY_OK ||
	    !found)
		return r;
	assign->type = o->change.type_name[0];
	assign->identity = o->change.identity_name[0];
	assign->roll = 1;
	return CUSTODY_OK;
}

const char cmd_import_usage[] =
	"custody import --path FILE [--key FILE] [--password-source SRC] [--label LABEL]\n"
	"               [--replicable]\n"
	"               [-t TYPE [-i IDENTITY] [--roll --effective-date TIME]] [--dry-run]\n"
	"               [--force]\n"
	"custody import --package FILE [--label LABEL] [-t TYPE ...]\n"
	"\n"
	"Creates the private key and the certificate (and the chain's CA certificates)\n"
	"on the token under one key id, records the certificate in the store, and\n"
	"prints its thumbprint. Everything is checked before anything is written.\n"
	"\n"
	"  --path FILE               PKCS#12 (.pfx/.p12), PEM (certificate + key), or a\n"
	"                            certificate alone whose key is already on the token\n"
	"  --key FILE                its private key, in a file of its own (PEM or DER,\n"
	"                            PKCS#8 encrypted or not, RSA or EC); FILE of --path\n"
	"                            then holds the certificate (and CA certificates)\n"
	"  --password-source SRC     file:PATH, env:VAR, fd:N or prompt\n"
	"  --label LABEL             CKA_LABEL (default: the subject CN)\n"
	"  --replicable              extractable (only under trusted wrap where the token\n"
	"                            can hold a trusted KEK); on a cluster member its\n"
	"                            package (wrapped under the KEK) goes to the store\n"
	"  --package FILE            a key package from custody export: unwrapped under\n"
	"                            this token's KEK (sensitive, never extractable)\n"
	"  -t, --type TYPE           also assign it, as `custody set` does\n"
	"  -i, --identity IDENTITY   where to assign it\n"
	"  --roll --effective-date TIME   stage it to become current at TIME\n"
	"  --dry-run                 check everything and print what would be created\n"
	"                            and assigned, write nothing (-o json: the plan\n"
	"                            as data); needs an existing store\n"
	"  --force                   -t: make the token-signing certificate current at\n"
	"                            once without asking (as set --force); with\n"
	"                            --roll, take effect sooner than min-publish\n";

int
cmd_import(struct cli *cli, int argc, char **argv)
{
	struct import_opts o;
	const struct cli_opt options[] = {
		CLI_OPT("path", required_argument, OPT_PATH),
		CLI_OPT("key", required_argument, OPT_KEY),
		CLI_OPT_TEXT("password-source", OPT_PASSWORD_SOURCE, &o.password_source),
		CLI_OPT_TEXT("label", OPT_LABEL, &o.label),
		CLI_OPT_FLAG("replicable", OPT_REPLICABLE, &o.replicable),
		CHANGE_OPTIONS(&o.change),
		CLI_OPT_TEXT("package", OPT_PACKAGE, &o.package),
		CLI_OPT_FLAG("dry-run", OPT_DRY_RUN, &o.dry_run),
		CLI_OPT_FLAG("force", OPT_FORCE, &o.force),
		{NULL},
	};
	custody_change_request assign;
	custody_bundle bundle;
	custody_package pkg;
	custody_import_request req;
	custody_import_result res;
	custody_ops_env env;
	custody_token_lock *lock = NULL;
	int r;

	memset(&o, 0, sizeof(o));
	memset(&bundle, 0, sizeof(bundle));
	memset(&pkg, 0, sizeof(pkg));
	memset(&res, 0, sizeof(res));
	if ((r = cli_parse(cli, argc, argv, options, "t:i:", on_file_option, &o)) != CUSTODY_OK)
		return r;
	if ((r = check_options(cli, &o, &assign)) != CUSTODY_OK)
		return r;
	cli->preview = o.dry_run;	/* a dry run makes no store */
	cli->force = o.force;
	/* The file opens and holds what it should. */
	if (o.package != NULL)
		r = load_package(cli, o.package, &pkg, &bundle);
	else
		r = load_bundle(cli, &o, &lock, &bundle);
	if (r != CUSTODY_OK)
		goto out;
	if (assign.type == NULL && o.package == NULL && bundle.key == NULL &&
	    (r = rollover_assignment(cli, &o, &bundle, &assign)) != CUSTODY_OK)
		goto out;
	memset(&req, 0, sizeof(req));
	req.bundle = &bundle;
	req.package = o.package != NULL ? &pkg : NULL;
	req.label = o.label;
	req.replicable = o.replicable;
	req.assign = assign.type != NULL ? &assign : NULL;
	req.dry_run = o.dry_run;
	change_env_now(cli, &env);
	if ((r = custody_import(&env, &req, &res, &cli->err)) != CUSTODY_OK)
		goto out;
	if (o.dry_run) {
		r = change_import_plan(cli, &bundle, o.package != NULL, &res, req.assign != NULL);
		goto out;
	}
	if (req.assign != NULL)
		change_report(cli, &res.assign, 0);
	r = out_cert(cli, &res.rec);
out:
	custody_import_result_clear(&res);
	custody_bundle_free(&bundle);
	custody_package_clear(&pkg);
	custody_token_lock_release(lock);
	return r;
}
