/*
 * cmd_get.c — `custody get` (Get-CsCertificate): assignments as they stand
 * now (or at --at), read from the store alone: no token, no PIN.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <custody/policy.h>
#include <custody/timefmt.h>

#include "change.h"
#include "cli.h"

struct get_opts {
	const char *type;
	const char *identity;
};

enum { OPT_TYPE = 't', OPT_IDENTITY = 'i' };

/* The stored facts of a slot's certificate; a record with only the
 * thumbprint when the store lacks it. */
static void
slot_cert(struct cli *cli, const custody_slot *slot, custody_cert_record *rec)
{
	memset(rec, 0, sizeof(*rec));
	if (slot->thumbprint[0] == '\0')
		return;
	if (custody_store_get_cert(cli->store, slot->thumbprint, rec, NULL) != CUSTODY_OK) {
		memset(rec, 0, sizeof(*rec));
		memcpy(rec->thumbprint, slot->thumbprint, sizeof(rec->thumbprint));
	}
}

static void
print_block(const custody_assignment *a, const custody_cert_record *cur,
	    const custody_cert_record *prev, const custody_cert_record *pend)
{
	char t1[CUSTODY_TIME_TEXT], t2[CUSTODY_TIME_TEXT];
	char *names = NULL;
	size_t i, len = 0;

	for (i = 0; i < cur->n_alt_names; i++)
		len += strlen(cur->alt_names[i]) + 2;
	if ((names = calloc(1, len + 1)) != NULL)
		for (i = 0; i < cur->n_alt_names; i++) {
			if (i > 0)
				strcat(names, ", ");
			strcat(names, cur->alt_names[i]);
		}
	out_field("Type", a->type);
	out_field("Identity", a->identity);
	out_field("Thumbprint", cur->thumbprint);
	out_field("Sha256", cur->sha256);
	out_field("Subject", cur->subject);
	out_field("Issuer", cur->issuer);
	out_field("SerialNumber", cur->serial);
	out_field("NotBefore", out_time(cur->not_before, t1));
	out_field("NotAfter", out_time(cur->not_after, t2));
	out_field("AlternativeNames", names);
	out_field("KeyAlgorithm", cur->key_algorithm);
	out_field("KeyId", cur->key_id);
	out_field("KeyUri", cur->key_uri);
	out_field("EffectiveDate", out_time(a->current.effective, t1));
	out_field("PreviousThumbprint", prev->thumbprint);
	out_field("PreviousNotBefore", out_time(prev->not_before, t1));
	out_field("PreviousNotAfter", out_time(prev->not_after, t2));
	out_field("PendingThumbprint", pend->thumbprint);
	out_field("PendingEffectiveDate", out_time(a->pending.effective, t1));
	out_block_end();
	free(names);
}

static json_t *
slot_json(const custody_slot *slot, const custody_cert_record *rec)
{
	if (slot->thumbprint[0] == '\0')
		return json_null();
	return out_cert_json(rec, slot->effective);
}

/* Prints one assignment in the chosen format. */
static int
print_assignment(struct cli *cli, const custody_assignment *a, json_t *array)
{
	custody_cert_record cur, prev, pend;
	int r = CUSTODY_OK;

	slot_cert(cli, &a->current, &cur);
	slot_cert(cli, &a->previous, &prev);
	slot_cert(cli, &a->pending, &pend);
	switch (cli->output) {
	case OUT_TABLE:
		print_block(a, &cur, &prev, &pend);
		break;
	case OUT_JSON:
		json_array_append_new(array,
			json_pack("{s:s, s:s, s:o, s:o, s:o}",
				  "type", a->type, "identity", a->identity,
				  "current", slot_json(&a->current, &cur),
				  "previous", slot_json(&a->previous, &prev),
				  "pending", slot_json(&a->pending, &pend)));
		break;
	case OUT_THUMBPRINT:
		if (cur.thumbprint[0] != '\0')
			printf("%s\n", out_safe(cur.thumbprint));
		break;
	case OUT_PEM:
		if (cur.der != NULL) {
			char *pem = custody_cert_der_to_pem(cur.der, cur.der_len);

			if (pem == NULL)
				r = custody_err_set(&cli->err, CUSTODY_EFAIL,
						    "certificate %s cannot be encoded as PEM",
						    cur.thumbprint);
			else
				fputs(pem, stdout);
			free(pem);
		}
		break;
	case OUT_URI:
		if (cur.key_uri != NULL)
			printf("%s\n", out_safe(cur.key_uri));
		break;
	default:	/* refused by cli_check_output */
		break;
	}
	custody_cert_record_clear(&cur);
	custody_cert_record_clear(&prev);
	custody_cert_record_clear(&pend);
	return r;
}

const char cmd_get_usage[] =
	"custody get [-t TYPE] [-i IDENTITY] [-o table|json|thumbprint|pem|uri]\n"
	"\n"
	"Shows assignments from the store: every one without -t; with -t, the one\n"
	"that applies on this node (its own identity if the type is assigned there,\n"
	"else global); with -i, exactly that identity. Needs no token and no PIN.\n"
	"\n"
	"  -t, --type TYPE          certificate type (OAuthTokenIssuer, Default, ...)\n"
	"  -i, --identity IDENTITY  global or a node name\n";

int
cmd_get(struct cli *cli, int argc, char **argv)
{
	struct get_opts o = {NULL, NULL};
	const struct cli_opt options[] = {
		CLI_OPT_TEXT("type", OPT_TYPE, &o.type),
		CLI_OPT_TEXT("identity", OPT_IDENTITY, &o.identity),
		{NULL},
	};
	char type[CUSTODY_NAME_MAX + 1], identity[CUSTODY_NAME_MAX + 1];
	custody_assignment one, *all = NULL;
	size_t n = 0, i;
	json_t *array = NULL;
	int r;

	if ((r = cli_parse(cli, argc, argv, options, "t:i:", NULL, NULL)) != CUSTODY_OK)
		return r;
	if ((r = cli_check_output(cli, 1u << OUT_TABLE | 1u << OUT_JSON | 1u << OUT_THUMBPRINT |
				  1u << OUT_PEM | 1u << OUT_URI)) != CUSTODY_OK)
		return r;
	if (o.identity != NULL && o.type == NULL)
		return cli_usage_error(cli, "-i needs -t");
	if (o.type != NULL &&
	    (r = custody_type_canonical(o.type, type, NULL, &cli->err)) != CUSTODY_OK)
		return r;
	if (o.identity != NULL &&
	    (r = custody_identity_canonical(o.identity, identity, &cli->err)) != CUSTODY_OK)
		return r;
	if ((r = cli_open_store(cli)) != CUSTODY_OK)
		return r;
	if (cli->output == OUT_JSON)
		array = json_array();

	/* Rolls that came due are shown resolved; the first command that
	 * writes with the token records them (its tags need the token). */
	if (o.type != NULL) {
		/* One assignment; the formats that print the current need one. */
		int want_current = cli->output != OUT_TABLE && cli->output != OUT_JSON;

		r = cli_lookup_assignment(cli, type, o.identity != NULL ? identity : NULL,
					  want_current, &one);
		if (r == CUSTODY_OK)
			r = print_assignment(cli, &one, array);
	} else {
		r = custody_store_list_assignments(cli->store, &all, &n, &cli->err);
		for (i = 0; r == CUSTODY_OK && i < n; i++) {
			custody_assign_resolve(&all[i], cli->now, &all[i]);
			if (!custody_assign_is_empty(&all[i]))
				r = print_assignment(cli, &all[i], array);
		}
		if (r == CUSTODY_OK && n == 0 && cli->output == OUT_TABLE)
			cli_say(cli, "no certificate is assigned");
	}
	/* JSON answers "nothing" with [] as well (exit 3 still says it). */
	if ((r == CUSTODY_OK || r == CUSTODY_ENOTFOUND) && array != NULL) {
		int printed = out_json(cli, array);

		array = NULL;
		if (printed != CUSTODY_OK)
			r = printed;
	}
	json_decref(array);
	free(all);
	return r;
}
