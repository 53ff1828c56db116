/*
 * cmd_export.c — `custody export --thumbprint X --out FILE`: one key's
 * package (wrapped under the cluster KEK, never plaintext) written to a
 * new file, for moving it by hand to a node that imports it with
 * `custody import --package FILE`.  The file is made with O_CREAT|O_EXCL,
 * mode 0600, before the token is touched; an existing file is never
 * overwritten, and a failure removes what was made.  The format is
 * described in custody/cluster.h (custody_package_parse).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <custody/cluster.h>
#include <custody/file.h>
#include <custody/thumbprint.h>

#include "change.h"
#include "cli.h"

enum { OPT_THUMBPRINT = OPT_FIRST_COMMAND_OPTION, OPT_OUT, OPT_DRY_RUN };

struct export_opts {
	const char *thumbprint;
	const char *out;
	int dry_run;
};

/* The export as plan data: the package file it makes (package: where the
 * package comes from, in a plan; kcv: the KEK it is wrapped under, once
 * made). */
static json_t *
export_plan(const char *thumbprint, const char *out, const char *package,
	    const char *kcv)
{
	json_t *plan = plan_new("export");

	plan_add_object(plan, "created", json_pack("{s:s, s:s, s:s, s:s?, s:s?}", "object",
						   "package_file", "thumbprint", thumbprint,
						   "where", out, "package", package, "kcv", kcv));
	return plan;
}

/* --dry-run: the file is not made (an existing one refused as the export
 * would), the package not wrapped, nothing audited; says which package
 * would go where. */
static int
dry_run(struct cli *cli, const struct export_opts *o, const char *thumbprint)
{
	int r, in_store;

	if ((r = cli_check_new_file(cli, o->out, "--out")) != CUSTODY_OK)
		return r;
	if ((r = cli_open_token(cli)) != CUSTODY_OK ||
	    (r = custody_cluster_export_check(cli->token, cli->store, thumbprint,
					      &in_store, &cli->err)) != CUSTODY_OK)
		return r;
	cli_say(cli, "export %s: would write %s to %s (dry run, nothing written)", thumbprint,
		in_store ? "the store's package of its key" :
		"its private key wrapped now under the KEK of this token", o->out);
	return plan_print(cli, export_plan(thumbprint, o->out,
					   in_store ? "store" : "wrapped now", NULL));
}

const char cmd_export_usage[] =
	"custody export-package --thumbprint X --out FILE [--dry-run]\n"
	"custody export --thumbprint X --out FILE [--dry-run]   (its first name, the same command)\n"
	"\n"
	"Writes the package of X's private key, wrapped under the cluster KEK\n"
	"(CKM_AES_KEY_WRAP_PAD), with its certificate and key id, to FILE (a new\n"
	"file, mode 0600: an existing one is never overwritten). A member imports it\n"
	"with custody import --package FILE. The package is the store's when it has\n"
	"one, else wrapped now on this token (the key must be replicable).\n"
	"\n"
	"  --thumbprint X            the certificate whose key goes\n"
	"  --out FILE                the new file\n"
	"  --dry-run                 say which package would go where, make no file\n"
	"                            (-o json: the plan as data; without --dry-run,\n"
	"                            the file made)\n";

int
cmd_export(struct cli *cli, int argc, char **argv)
{
	struct export_opts o = {NULL, NULL, 0};
	const struct cli_opt options[] = {
		CLI_OPT_TEXT("thumbprint", OPT_THUMBPRINT, &o.thumbprint),
		CLI_OPT_TEXT("out", OPT_OUT, &o.out),
		CLI_OPT_FLAG("dry-run", OPT_DRY_RUN, &o.dry_run),
		{NULL},
	};
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	custody_package pkg;
	char *text = NULL;
	size_t len = 0;
	int fd = -1, made = 0, r;

	memset(&pkg, 0, sizeof(pkg));
	if ((r = cli_parse(cli, argc, argv, options, "", NULL, NULL)) != CUSTODY_OK)
		return r;
	if (o.thumbprint == NULL || o.out == NULL)
		return cli_usage_error(cli, "--thumbprint X and --out FILE are required");
	if ((r = cli_begin_on_stored_cert(cli, o.thumbprint, o.dry_run,
					  thumbprint)) != CUSTODY_OK)
		goto out;
	if (o.dry_run) {
		r = dry_run(cli, &o, thumbprint);
		goto out;
	}
	fd = custody_file_create(o.out, O_WRONLY, 0600);
	if (fd < 0) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "cannot create %s: %s", o.out,
				    strerror(errno));
		if (errno == EEXIST)
			custody_err_hint(&cli->err, "an existing file is never overwritten: "
					 "choose another --out");
		goto out;
	}
	made = 1;
	if ((r = cli_open_token(cli)) != CUSTODY_OK)
		goto out;
	cli_say(cli, "custody export %s: node %s, token %s, to %s", thumbprint, cli->node,
		custody_token_label(cli->token), o.out);
	if ((r = custody_cluster_export(cli->token, cli->store, cli->node, thumbprint, &pkg,
					&cli->err)) != CUSTODY_OK ||
	    (r = custody_package_format(&pkg, &text, &len, &cli->err)) != CUSTODY_OK)
		goto out;
	if (custody_write_all(fd, text, len) != 0 || fsync(fd) != 0) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "cannot write %s: %s", o.out,
				    strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "cannot write %s: %s", o.out,
				    strerror(errno));
		goto out;
	}
	fd = -1;
	made = 0;
	cli_say(cli, "wrote the package of %s (key id %s, wrapped under KEK %s) to %s; "
		"import it on a member with custody import --package FILE",
		thumbprint, pkg.key_id, pkg.kcv, o.out);
	if (cli->output == OUT_JSON)
		r = plan_print(cli, plan_done(export_plan(thumbprint, o.out, NULL, pkg.kcv), 0));
	else
		printf("%s\n", thumbprint);
out:
	if (fd >= 0)
		close(fd);
	if (made && unlink(o.out) != 0)
		cli_warn("could not remove %s again: %s", o.out, strerror(errno));
	if (text != NULL)
		OPENSSL_clear_free(text, len);
	custody_package_clear(&pkg);
	return r;
}
