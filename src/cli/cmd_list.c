/*
 * cmd_list.c — `custody list`: the certificates on the token, whether their
 * private key is there, and what they are assigned as; the key pairs that
 * wait for their certificate (made by request --csr); and the public
 * certificate of any thumbprint custody knows, as PEM or DER.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <custody/request.h>
#include <custody/thumbprint.h>
#include <custody/timefmt.h>

#include "cli.h"

enum { OPT_THUMBPRINT = OPT_FIRST_COMMAND_OPTION };

/* "Type/identity:slot" for every slot that holds thumbprint. */
static json_t *
assigned_as(const custody_assignment *all, size_t n, const char *thumbprint)
{
	static const enum custody_slot_name slots[] = {
		CUSTODY_SLOT_CURRENT, CUSTODY_SLOT_PREVIOUS, CUSTODY_SLOT_PENDING};
	json_t *list = json_array();
	size_t i, s;

	for (i = 0; i < n; i++) {
		const custody_slot *held[] = {&all[i].current, &all[i].previous, &all[i].pending};

		for (s = 0; s < 3; s++) {
			char text[CUSTODY_NAME_MAX * 2 + 16];

			if (strcmp(held[s]->thumbprint, thumbprint) != 0)
				continue;
			snprintf(text, sizeof(text), "%s/%s:%s", all[i].type, all[i].identity,
				 custody_slot_label(slots[s]));
			json_array_append_new(list, json_string(text));
		}
	}
	return list;
}

static void
print_block(const custody_cert_record *rec, int has_key, json_t *as)
{
	char t[CUSTODY_TIME_TEXT];
	char joined[1024] = "";
	size_t i;

	for (i = 0; i < json_array_size(as); i++) {
		if (i > 0)
			strncat(joined, ", ", sizeof(joined) - strlen(joined) - 1);
		strncat(joined, json_string_value(json_array_get(as, i)),
			sizeof(joined) - strlen(joined) - 1);
	}
	out_field("Thumbprint", rec->thumbprint);
	out_field("Subject", rec->subject);
	out_field("NotAfter", out_time(rec->not_after, t));
	out_field("KeyAlgorithm", rec->key_algorithm);
	out_field("HasPrivateKey", has_key ? "True" : "False");
	out_field("KeyId", rec->key_id);
	out_field("Label", rec->label);
	out_field("AssignedAs", joined);
	out_block_end();
}

static json_t *
cert_json(const custody_cert_record *rec, int has_key, json_t *as)
{
	char t[CUSTODY_TIME_TEXT];

	return json_pack("{s:s, s:s, s:s, s:s?, s:s, s:s, s:b, s:s, s:s?, s:s?, s:o}",
			 "kind", "certificate",
			 "thumbprint", rec->thumbprint,
			 "sha256", rec->sha256,
			 "subject", rec->subject,
			 "not_after", out_time(rec->not_after, t),
			 "key_algorithm", rec->key_algorithm,
			 "has_private_key", has_key,
			 "key_id", rec->key_id,
			 "label", rec->label,
			 "key_uri", rec->key_uri,
			 "assigned_as", as);
}

/* ---- key pairs without a certificate ---- */

static void
print_key_only(const custody_waiting_key *k)
{
	char t[CUSTODY_TIME_TEXT];

	out_field("Thumbprint", "");
	out_field("Subject", "");
	out_field("Status", "key only (CSR pending)");
	out_field("KeyAlgorithm", k->key_algorithm);
	out_field("HasPrivateKey", "True");
	out_field("KeyId", k->key_id);
	out_field("KeyUri", k->key_uri);
	out_field("Requested", out_time(k->requested, t));
	out_field("AssignedAs", "");
	out_block_end();
}

/* A key-only entry of the JSON array: "kind": "key", no certificate (its
 * thumbprint null, so that scripts reading thumbprints can skip it). */
static json_t *
key_only_json(const custody_waiting_key *k)
{
	char t[CUSTODY_TIME_TEXT];

	return json_pack("{s:s, s:n, s:n, s:n, s:s, s:b, s:s, s:s?, s:s, s:s, s:[]}",
			 "kind", "key",
			 "thumbprint", "certificate", "subject",
			 "key_algorithm", k->key_algorithm,
			 "has_private_key", 1,
			 "key_id", k->key_id,
			 "key_uri", k->key_uri,
			 "status", "CSR pending",
			 "requested", out_time(k->requested, t),
			 "assigned_as");
}

/* ---- the public certificate: -o pem, -o der ---- */

static int
write_cert(struct cli *cli, const custody_cert_record *rec)
{
	char *pem;

	if (cli->output == OUT_DER) {
		if (fwrite(rec->der, 1, rec->der_len, stdout) != rec->der_len ||
		    fflush(stdout) != 0)
			return custody_err_set(&cli->err, CUSTODY_EFAIL,
					       "cannot write the certificate to standard output");
		return CUSTODY_OK;
	}
	if ((pem = custody_cert_der_to_pem(rec->der, rec->der_len)) == NULL)
		return custody_err_set(&cli->err, CUSTODY_EFAIL, "cannot encode certificate %s",
				       rec->thumbprint);
	fputs(pem, stdout);
	free(pem);
	return CUSTODY_OK;
}

/*
 * The one certificate a thumbprint names among those custody knows: on
 * the token, and in the store (previous and pending ones of other nodes
 * too).  One certificate in both places counts once.
 */
static int
write_known(struct cli *cli, const char *query, const custody_cert_record *tok, size_t n_tok)
{
	custody_cert_record *stored = NULL, *all = NULL;
	size_t n_stored = 0, index = 0;
	int r;

	if ((r = custody_store_list_certs(cli->store, &stored, &n_stored, &cli->err)) !=
	    CUSTODY_OK)
		return r;
	if ((all = calloc(n_tok + n_stored + 1, sizeof(*all))) == NULL) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "out of memory");
		goto out;
	}
	/* Shallow copies: the records stay owned by tok and stored. */
	if (n_tok > 0)
		memcpy(all, tok, n_tok * sizeof(*all));
	if (n_stored > 0)
		memcpy(all + n_tok, stored, n_stored * sizeof(*all));
	if ((r = custody_thumbprint_match(query, all, n_tok + n_stored, &index, &cli->err)) ==
	    CUSTODY_OK)
		r = write_cert(cli, &all[index]);
out:
	free(all);
	custody_cert_records_free(stored, n_stored);
	return r;
}

/* -o pem, -o der: with --thumbprint its certificate, else (PEM only)
 * every certificate on the token, one bundle. */
static int
write_public(struct cli *cli, const char *query, const custody_cert_record *recs, size_t n)
{
	size_t i;
	int r = CUSTODY_OK;

	if (query != NULL)
		return write_known(cli, query, recs, n);
	for (i = 0; i < n && r == CUSTODY_OK; i++)
		r = write_cert(cli, &recs[i]);
	if (n == 0)
		cli_say(cli, "no certificates on token %s", custody_token_label(cli->token));
	return r;
}

/* ---- the command ---- */

static int
check_list_options(struct cli *cli, const char *query)
{
	int r;

	if ((r = cli_check_output(cli, 1u << OUT_TABLE | 1u << OUT_JSON | 1u << OUT_PEM |
				  1u << OUT_DER)) != CUSTODY_OK)
		return r;
	if (query != NULL && (r = cli_check_thumbprint(cli, query)) != CUSTODY_OK)
		return r;
	if (query != NULL && cli->output != OUT_PEM && cli->output != OUT_DER)
		return cli_usage_error(cli, "--thumbprint goes with -o pem or -o der");
	if (cli->output == OUT_DER && query == NULL)
		return cli_usage_error(cli, "-o der writes one certificate: give --thumbprint X");
	if (cli->output == OUT_DER && isatty(STDOUT_FILENO)) {
		r = cli_usage_error(cli, "-o der writes binary: standard output is a terminal");
		custody_err_hint(&cli->err, "redirect it to a file (> cert.der), or use -o pem");
		return r;
	}
	return CUSTODY_OK;
}

/* The table or the JSON array: certificates, then keys waiting for one. */
static int
print_list(struct cli *cli, const custody_cert_record *recs, const int *has_key, size_t n,
	   const custody_assignment *all, size_t n_all)
{
	custody_waiting_key *keys = NULL;
	json_t *array = NULL;
	size_t n_keys = 0, i;
	int r;

	if ((r = custody_request_list_waiting(cli->token, cli->store, &keys, &n_keys,
						 &cli->err)) != CUSTODY_OK)
		return r;
	if (cli->output == OUT_JSON)
		array = json_array();
	for (i = 0; i < n; i++) {
		json_t *as = assigned_as(all, n_all, recs[i].thumbprint);

		if (array != NULL) {
			json_array_append_new(array, cert_json(&recs[i], has_key[i], as));
			continue;
		}
		print_block(&recs[i], has_key[i], as);
		json_decref(as);
	}
	for (i = 0; i < n_keys; i++) {
		if (array != NULL)
			json_array_append_new(array, key_only_json(&keys[i]));
		else
			print_key_only(&keys[i]);
	}
	if (array != NULL)
		r = out_json(cli, array);
	else if (n == 0 && n_keys == 0)
		cli_say(cli, "no certificates on token %s", custody_token_label(cli->token));
	custody_waiting_keys_free(keys, n_keys);
	return r;
}

const char cmd_list_usage[] =
	"custody list [-o table|json]\n"
	"custody list [--thumbprint X] -o pem\n"
	"custody list --thumbprint X -o der > FILE\n"
	"\n"
	"Certificates on the token with their key, key id and assignments, then the\n"
	"key pairs that have no certificate yet (made by request --csr: \"key only\n"
	"(CSR pending)\"; in JSON \"kind\": \"key\" and \"thumbprint\": null).\n"
	"-o pem prints the public certificate of X (any certificate custody knows:\n"
	"on the token or in the store, current, previous or pending), or without\n"
	"--thumbprint every certificate on the token, one PEM bundle.\n"
	"-o der writes X's certificate in DER (never to a terminal).\n"
	"\n"
	"  --thumbprint X    SHA-1 or SHA-256, or a unique prefix of 8 hex digits or more\n";

int
cmd_list(struct cli *cli, int argc, char **argv)
{
	const char *query = NULL;
	const struct cli_opt options[] = {
		CLI_OPT_TEXT("thumbprint", OPT_THUMBPRINT, &query),
		{NULL},
	};
	custody_cert_record *recs = NULL;
	custody_assignment *all = NULL;
	int *has_key = NULL;
	size_t n = 0, n_all = 0, i;
	int r;

	if ((r = cli_parse(cli, argc, argv, options, "", NULL, NULL)) != CUSTODY_OK ||
	    (r = check_list_options(cli, query)) != CUSTODY_OK)
		return r;
	if ((r = cli_open_store(cli)) != CUSTODY_OK ||
	    (r = custody_store_list_assignments(cli->store, &all, &n_all, &cli->err)) != CUSTODY_OK)
		goto out;
	for (i = 0; i < n_all; i++)
		custody_assign_resolve(&all[i], cli->now, &all[i]);
	if ((r = cli_open_token(cli)) != CUSTODY_OK ||
	    (r = cli_token_records(cli, &recs, &has_key, &n)) != CUSTODY_OK)
		goto out;
	if (cli->output == OUT_PEM || cli->output == OUT_DER)
		r = write_public(cli, query, recs, n);
	else
		r = print_list(cli, recs, has_key, n, all, n_all);
out:
	custody_cert_records_free(recs, n);
	free(has_key);
	free(all);
	return r;
}
