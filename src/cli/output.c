/*
 * output.c — how every command prints: "Name : value" blocks for people,
 * JSON (jansson) for scripts, and the one escaping function through which
 * text from certificates, tokens and the store reaches a terminal.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <custody/timefmt.h>

#include "cli.h"

/* The widest field name of the blocks ("PendingEffectiveDate"). */
#define FIELD_WIDTH 20

void
out_field(const char *name, const char *value)
{
	printf("%-*s : %s\n", FIELD_WIDTH, name, out_safe(value));
}

void
out_block_end(void)
{
	putchar('\n');
}

const char *
out_time(int64_t t, char buf[CUSTODY_TIME_TEXT])
{
	if (t == 0) {
		buf[0] = '\0';
		return buf;
	}
	return custody_time_format(t, buf);
}

json_t *
out_cert_json(const custody_cert_record *rec, int64_t effective)
{
	char nb[CUSTODY_TIME_TEXT], na[CUSTODY_TIME_TEXT], ef[CUSTODY_TIME_TEXT];
	json_t *o, *names;
	size_t i;

	names = json_array();
	for (i = 0; i < rec->n_alt_names; i++)
		json_array_append_new(names, json_string(rec->alt_names[i]));
	o = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s, s:s, s:o, s:s, s:s, s:s?}",
		      "thumbprint", rec->thumbprint,
		      "sha256", rec->sha256,
		      "subject", rec->subject,
		      "issuer", rec->issuer,
		      "serial", rec->serial,
		      "not_before", custody_time_format(rec->not_before, nb),
		      "not_after", custody_time_format(rec->not_after, na),
		      "alt_names", names,
		      "key_algorithm", rec->key_algorithm,
		      "key_id", rec->key_id,
		      "key_uri", rec->key_uri);
	if (o != NULL && rec->label != NULL)
		json_object_set_new(o, "label", json_string(rec->label));
	if (o != NULL && effective >= 0)
		json_object_set_new(o, "effective_date",
				    json_string(out_time(effective, ef)));
	return o;
}

int
out_json(struct cli *cli, json_t *value)
{
	int r = CUSTODY_OK;

	if (value == NULL)
		return custody_err_set(&cli->err, CUSTODY_EFAIL, "cannot build the JSON output");
	/* ASCII only: jansson escapes C0 controls, and with this flag every
	 * other non-ASCII character too (\uXXXX), the C1 controls among them. */
	if (json_dumpf(value, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII) != 0)
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "cannot write the JSON output");
	putchar('\n');
	json_decref(value);
	return r;
}

int
out_cert(struct cli *cli, const custody_cert_record *rec)
{
	if (cli->output == OUT_JSON)
		return out_json(cli, out_cert_json(rec, -1));
	printf("%s\n", rec->thumbprint);
	return CUSTODY_OK;
}

static void
diff_slot(FILE *f, const char *name, const custody_slot *a,
	  const custody_slot *b, int *lines)
{
	char ta[CUSTODY_TIME_TEXT], tb[CUSTODY_TIME_TEXT];

	if (strcmp(a->thumbprint, b->thumbprint) == 0 && a->effective == b->effective)
		return;
	fprintf(f, "  %-8s: %s%s%s -> %s%s%s\n", name,
		a->thumbprint[0] != '\0' ? out_safe(a->thumbprint) : "(none)",
		a->thumbprint[0] != '\0' ? " from " : "",
		a->thumbprint[0] != '\0' ? out_time(a->effective, ta) : "",
		b->thumbprint[0] != '\0' ? out_safe(b->thumbprint) : "(none)",
		b->thumbprint[0] != '\0' ? " from " : "",
		b->thumbprint[0] != '\0' ? out_time(b->effective, tb) : "");
	(*lines)++;
}

int
out_assignment_diff(FILE *f, const custody_assignment *before,
		    const custody_assignment *after)
{
	int lines = 0;

	diff_slot(f, "current", &before->current, &after->current, &lines);
	diff_slot(f, "previous", &before->previous, &after->previous, &lines);
	diff_slot(f, "pending", &before->pending, &after->pending, &lines);
	return lines;
}
