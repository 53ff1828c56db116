/*
 * cmd_list.c — `custody list`: the certificates on the token, whether their
 * private key is there, and what they are assigned as.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <custody/timefmt.h>

#include "cli.h"

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

const char cmd_list_usage[] =
	"custody list [-o table|json]\n"
	"\n"
	"Certificates on the token with their key, key id and assignments.\n";

int
cmd_list(struct cli *cli, int argc, char **argv)
{
	custody_cert_record *recs = NULL;
	custody_assignment *all = NULL;
	int *has_key = NULL;
	size_t n = 0, n_all = 0, i;
	json_t *array = NULL;
	int r;

	if ((r = cli_parse(cli, argc, argv, NULL, "", NULL, NULL)) != CUSTODY_OK)
		return r;
	if ((r = cli_check_output(cli, 1u << OUT_TABLE | 1u << OUT_JSON)) != CUSTODY_OK)
		return r;
	if ((r = cli_open_store(cli)) != CUSTODY_OK ||
	    (r = custody_store_list_assignments(cli->store, &all, &n_all, &cli->err)) != CUSTODY_OK)
		goto out;
	for (i = 0; i < n_all; i++)
		custody_assign_resolve(&all[i], cli->now, &all[i]);
	if ((r = cli_open_token(cli)) != CUSTODY_OK ||
	    (r = cli_token_records(cli, &recs, &has_key, &n)) != CUSTODY_OK)
		goto out;
	if (cli->output == OUT_JSON)
		array = json_array();
	for (i = 0; i < n; i++) {
		json_t *as = assigned_as(all, n_all, recs[i].thumbprint);
		char t[CUSTODY_TIME_TEXT];

		if (array == NULL) {
			print_block(&recs[i], has_key[i], as);
			json_decref(as);
			continue;
		}
		json_array_append_new(array,
			json_pack("{s:s, s:s, s:s?, s:s, s:s, s:b, s:s, s:s?, s:s?, s:o}",
				  "thumbprint", recs[i].thumbprint,
				  "sha256", recs[i].sha256,
				  "subject", recs[i].subject,
				  "not_after", out_time(recs[i].not_after, t),
				  "key_algorithm", recs[i].key_algorithm,
				  "has_private_key", has_key[i],
				  "key_id", recs[i].key_id,
				  "label", recs[i].label,
				  "key_uri", recs[i].key_uri,
				  "assigned_as", as));
	}
	if (array != NULL)
		r = out_json(cli, array);
	else if (n == 0)
		cli_say(cli, "no certificates on token %s", custody_token_label(cli->token));
out:
	custody_cert_records_free(recs, n);
	free(has_key);
	free(all);
	return r;
}
