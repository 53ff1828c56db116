/*
 * cmd_metadata.c — `custody metadata`: the verification keys of a type
 * (current, pending as soon as it is staged, previous) as a JWK Set or a
 * server-to-server metadata document.  Reads the store alone: no token, no
 * PIN.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <custody/metadata.h>
#include <custody/policy.h>

#include "cli.h"

struct metadata_opts {
	const char *type;
	const char *format;	/* --format: the older name of -o jwks|s2s */
};

enum { OPT_TYPE = 't', OPT_FORMAT = OPT_FIRST_COMMAND_OPTION };

/* Appends the stored certificate of a slot (if any) to recs; a record
 * that does not match its certificate is refused. */
static int
add_slot(struct cli *cli, const char *type, const char *slot_name,
	 const custody_slot *slot, custody_cert_record *recs, size_t *n)
{
	int r;

	if (slot->thumbprint[0] == '\0')
		return CUSTODY_OK;
	r = custody_store_get_cert(cli->store, slot->thumbprint, &recs[*n], &cli->err);
	if (r == CUSTODY_ENOTFOUND)
		r = custody_err_set(&cli->err, CUSTODY_EFAIL,
				    "the %s certificate %s of %s is not in the store",
				    slot_name, slot->thumbprint, type);
	if (r != CUSTODY_OK)
		return r;
	(*n)++;		/* cleared by the caller from here on */
	return custody_cert_record_check(&recs[*n - 1], NULL, &cli->err);
}

/*
 * The document: -o jwks|s2s, or --format jwks|s2s (kept as an alias of
 * -o); -o json and the default table are the JWK Set.  Both named, they
 * must agree.  Sets *s2s.
 */
static int
document_format(struct cli *cli, const char *format, int *s2s)
{
	int r;

	if ((r = cli_check_output(cli, 1u << OUT_TABLE | 1u << OUT_JSON | 1u << OUT_JWKS |
				  1u << OUT_S2S)) != CUSTODY_OK)
		return r;
	*s2s = cli->output == OUT_S2S;
	if (format == NULL)
		return CUSTODY_OK;
	if (strcmp(format, "jwks") != 0 && strcmp(format, "s2s") != 0)
		return cli_usage_error(cli, "unknown metadata format '%s': use jwks or s2s",
				       format);
	if ((cli->output == OUT_JWKS || cli->output == OUT_S2S) &&
	    strcmp(format, cli_output_names[cli->output]) != 0)
		return cli_usage_error(cli, "--format %s and -o %s disagree: --format is "
				       "another name of -o", format,
				       cli_output_names[cli->output]);
	*s2s = strcmp(format, "s2s") == 0;
	return CUSTODY_OK;
}

const char cmd_metadata_usage[] =
	"custody metadata [-t TYPE] [-o jwks|s2s]\n"
	"custody metadata [-t TYPE] [--format jwks|s2s]\n"
	"\n"
	"Prints the certificates a relying party must trust for TYPE (default\n"
	"OAuthTokenIssuer): current, pending (published as soon as it is staged) and\n"
	"previous, as a JWK Set (RFC 7517: kid, x5t, x5c) or as the server-to-server\n"
	"metadata document (keys[].usage, keyinfo.x5t, keyvalue). kid = x5t = the\n"
	"base64url SHA-1 thumbprint. The server-to-server document also carries\n"
	"version, name, realm, serviceName, issuer (serviceName@realm),\n"
	"allowedAudiences and endpoints when custody.conf has a [metadata TYPE]\n"
	"section (realm, service-name, ...); without one it lists the keys only.\n"
	"Opens the token (user PIN) to check the integrity tags of the records it\n"
	"publishes.\n"
	"\n"
	"  -t, --type TYPE          certificate type (default OAuthTokenIssuer)\n"
	"  -o, --output jwks|s2s    document format (default jwks; -o json is jwks)\n"
	"  --format jwks|s2s        the same as -o (kept for scripts that use it)\n";

int
cmd_metadata(struct cli *cli, int argc, char **argv)
{
	struct metadata_opts o = {"OAuthTokenIssuer", NULL};
	const struct cli_opt options[] = {
		CLI_OPT_TEXT("type", OPT_TYPE, &o.type),
		CLI_OPT_TEXT("format", OPT_FORMAT, &o.format),
		{NULL},
	};
	char type[CUSTODY_NAME_MAX + 1];
	custody_cert_record recs[3];
	custody_assignment a;
	size_t n = 0;
	char *doc = NULL;
	int s2s, r;

	memset(recs, 0, sizeof(recs));
	if ((r = cli_parse(cli, argc, argv, options, "t:", NULL, NULL)) != CUSTODY_OK)
		return r;
	if ((r = document_format(cli, o.format, &s2s)) != CUSTODY_OK)
		return r;
	if ((r = custody_type_canonical(o.type, type, NULL, &cli->err)) != CUSTODY_OK)
		return r;
	/* The token checks what the store says (its integrity tags) before a
	 * key it names is published. */
	if ((r = cli_open_store(cli)) != CUSTODY_OK || (r = cli_open_token(cli)) != CUSTODY_OK)
		return r;
	if ((r = cli_lookup_assignment(cli, type, NULL, 0, &a)) != CUSTODY_OK)
		return r;
	if (custody_assign_is_empty(&a))
		return custody_err_set(&cli->err, CUSTODY_ENOTFOUND,
				       "no certificate is assigned for type %s (identity %s)",
				       type, a.identity);
	/* Current, then the one relying parties must learn before the roll,
	 * then the one still inside its overlap. */
	if ((r = add_slot(cli, type, "current", &a.current, recs, &n)) != CUSTODY_OK ||
	    (r = add_slot(cli, type, "pending", &a.pending, recs, &n)) != CUSTODY_OK ||
	    (r = add_slot(cli, type, "previous", &a.previous, recs, &n)) != CUSTODY_OK)
		goto out;
	if (s2s && custody_config_metadata(&cli->cfg, type) == NULL)
		cli_note(cli, "no [metadata %s] section in the configuration: the document "
			 "lists the keys only (no issuer, realm or serviceName)", type);
	if (s2s)
		r = custody_metadata_s2s_trust(custody_config_metadata(&cli->cfg, type), recs,
					       n, &doc, &cli->err);
	else
		r = custody_metadata_jwks(recs, n, &doc, &cli->err);
	if (r != CUSTODY_OK)
		goto out;
	if (fputs(doc, stdout) == EOF || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "cannot write the document");
		goto out;
	}
	r = CUSTODY_OK;
out:
	while (n > 0)
		custody_cert_record_clear(&recs[--n]);
	free(doc);
	return r;
}
