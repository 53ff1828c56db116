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

/* Length of the UTF-8 sequence at s (1..4) when it is a valid one that is
 * not a C1 control character (U+0080..U+009F); 0 otherwise. */
static size_t
utf8_printable(const unsigned char *s)
{
	size_t n, i;
	unsigned long cp;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
		return 0;
	return n;
}

char *
out_escape(char *dst, size_t size, const char *src)
{
	const unsigned char *s = (const unsigned char *)(src != NULL ? src : "");
	size_t o = 0, n;
	char esc[5];

	if (size == 0)
		return dst;
	while (*s != '\0') {
		if (*s >= 0x20 && *s < 0x7f) {
			if (o + 1 >= size)
				break;
			dst[o++] = (char)*s++;
			continue;
		}
		if ((n = utf8_printable(s)) > 0) {
			if (o + n >= size)
				break;
			memcpy(dst + o, s, n);
			o += n;
			s += n;
			continue;
		}
		/* A control character (C0, DEL, C1) or a byte that is not
		 * UTF-8: shown as \xHH, never sent as it is. */
		snprintf(esc, sizeof(esc), "\\x%02x", *s);
		if (o + 4 >= size)
			break;
		memcpy(dst + o, esc, 4);
		o += 4;
		s++;
	}
	dst[o] = '\0';
	return dst;
}

/* out_safe's buffers: enough for the arguments of one printf. */
#define SAFE_SLOTS 16
static char *safe_slot[SAFE_SLOTS];
static size_t safe_next;

const char *
out_safe(const char *src)
{
	size_t need = 4 * strlen(src != NULL ? src : "") + 1;
	char *buf = malloc(need);

	if (buf == NULL)
		return "(out of memory)";
	free(safe_slot[safe_next]);
	safe_slot[safe_next] = buf;
	safe_next = (safe_next + 1) % SAFE_SLOTS;
	return out_escape(buf, need, src);
}

void
out_release(void)
{
	size_t i;

	for (i = 0; i < SAFE_SLOTS; i++) {
		free(safe_slot[i]);
		safe_slot[i] = NULL;
	}
}

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
