/*
 * cmd_token.c — `custody token`: what custody found on the token, as the
 * token itself says it (custody_token_describe): who made it, its PIN
 * state, the keys it can generate and sign with, whether it can be a
 * cluster member and keep integrity tags, and which optional attributes
 * it keeps.  Reads only; probe objects are session objects.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

#include <custody/token.h>

#include "cli.h"

static const struct {
	CK_FLAGS flag;
	const char *name;
} pin_flags[] = {
	{CKF_USER_PIN_COUNT_LOW, "user-pin-count-low"},
	{CKF_USER_PIN_FINAL_TRY, "user-pin-final-try"},
	{CKF_USER_PIN_LOCKED, "user-pin-locked"},
	{CKF_USER_PIN_TO_BE_CHANGED, "user-pin-to-be-changed"},
	{CKF_SO_PIN_COUNT_LOW, "so-pin-count-low"},
	{CKF_SO_PIN_FINAL_TRY, "so-pin-final-try"},
	{CKF_SO_PIN_LOCKED, "so-pin-locked"},
	{CKF_SO_PIN_TO_BE_CHANGED, "so-pin-to-be-changed"},
};

static json_t *
key_json(const custody_token_key_caps *k)
{
	return json_pack("{s:b, s:b, s:I, s:I}", "generate", k->generate, "sign", k->sign,
			 "min_bits", (json_int_t)k->min_bits,
			 "max_bits", (json_int_t)k->max_bits);
}

static int
print_json(struct cli *cli, const custody_token_caps *c)
{
	json_t *flags = json_array(), *attrs = json_object();
	size_t i;

	for (i = 0; i < sizeof(pin_flags) / sizeof(pin_flags[0]); i++)
		if (c->flags & pin_flags[i].flag)
			json_array_append_new(flags, json_string(pin_flags[i].name));
	for (i = 0; i < CUSTODY_TOKEN_ATTRS; i++)
		json_object_set_new(attrs, c->attr_name[i],
				    c->attr_known[i] == 0 ? json_null()
							  : json_boolean(c->attr_known[i] > 0));
	return out_json(cli, json_pack(
		"{s:s, s:s, s:s, s:s, s:b, s:o, s:I, s:I,"
		" s:o, s:b, s:o, s:b, s:s?, s:o, s:s?, s:o}",
		"label", c->label, "manufacturer", c->manufacturer, "model", c->model,
		"serial", c->serial,
		"login_required", (c->flags & CKF_LOGIN_REQUIRED) != 0,
		"pin_flags", flags,
		"min_pin", (json_int_t)c->min_pin, "max_pin", (json_int_t)c->max_pin,
		"rsa", key_json(&c->rsa), "rsa_pss", c->rsa_pss,
		"ec", key_json(&c->ec),
		"cluster_member", c->cluster,
		"cluster_lacks", c->cluster ? NULL : c->cluster_why,
		"trusted_kek", c->trusted_kek < 0 ? json_null() : json_boolean(c->trusted_kek),
		"integrity_tags", c->tag_mech,
		"attributes", attrs));
}

static const char *
yes_no(int v)
{
	return v ? "yes" : "no";
}

static void
key_line(const char *name, const custody_token_key_caps *k)
{
	char line[128];

	if (!k->generate && !k->sign) {
		out_field(name, "no");
		return;
	}
	snprintf(line, sizeof(line), "generate %s, sign %s, %lu..%lu bits", yes_no(k->generate),
		 yes_no(k->sign), k->min_bits, k->max_bits);
	out_field(name, line);
}

static void
print_table(const custody_token_caps *c)
{
	char line[512];
	size_t i, o = 0;

	out_field("token", c->label);
	out_field("manufacturer", c->manufacturer);
	out_field("model", c->model);
	out_field("serial", c->serial);
	line[0] = '\0';
	for (i = 0; i < sizeof(pin_flags) / sizeof(pin_flags[0]); i++)
		if ((c->flags & pin_flags[i].flag) && o < sizeof(line))
			o += (size_t)snprintf(line + o, sizeof(line) - o, "%s%s",
					      o > 0 ? ", " : "", pin_flags[i].name);
	out_field("pin", o > 0 ? line : "ok");
	key_line("rsa", &c->rsa);
	out_field("rsa-pss", yes_no(c->rsa_pss));
	key_line("ec", &c->ec);
	snprintf(line, sizeof(line), "%s%s%s", yes_no(c->cluster), c->cluster ? "" : " (",
		 c->cluster ? "" : c->cluster_why);
	if (!c->cluster && strlen(line) + 1 < sizeof(line))
		strcat(line, ")");
	out_field("cluster member", line);
	out_field("trusted kek", c->trusted_kek < 0 ? "-" : yes_no(c->trusted_kek));
	out_field("integrity tags", c->tag_mech != NULL ? c->tag_mech : "no (no AES wrap)");
	o = 0;
	for (i = 0; i < CUSTODY_TOKEN_ATTRS && o < sizeof(line); i++)
		o += (size_t)snprintf(line + o, sizeof(line) - o, "%s%s %s", i > 0 ? ", " : "",
				      c->attr_name[i], c->attr_known[i] > 0 ? "kept"
				      : c->attr_known[i] < 0 ? "refused" : "not asked");
	out_field("attributes", line);
}

const char cmd_token_usage[] =
	"custody token [-o table|json]\n"
	"\n"
	"Asks the token (logged in as user) what it is and can do, as custody uses\n"
	"it: label, manufacturer, model, serial and PIN state; for RSA and EC keys\n"
	"whether it generates them, signs with them, and its key sizes; RSA-PSS;\n"
	"whether it can be a cluster member (AES key wrap with padding, RSA-OAEP,\n"
	"CKA_UNWRAP_TEMPLATE; if not, the first thing it lacks) and hold a trusted\n"
	"KEK; the mechanism its KEK computes integrity tags with; and which optional\n"
	"attributes it keeps (CKA_COPYABLE, CKA_DESTROYABLE, CKA_WRAP_WITH_TRUSTED,\n"
	"CKA_UNWRAP_TEMPLATE). What it lacks, custody refuses up front in one line.\n"
	"Writes nothing: its probes are session objects. -o json: {\"label\",\n"
	"\"manufacturer\", \"model\", \"serial\", \"login_required\", \"pin_flags\":[],\n"
	"\"min_pin\", \"max_pin\", \"rsa\":{\"generate\",\"sign\",\"min_bits\",\"max_bits\"},\n"
	"\"rsa_pss\", \"ec\":{...}, \"cluster_member\", \"cluster_lacks\", \"trusted_kek\",\n"
	"\"integrity_tags\", \"attributes\":{\"CKA_COPYABLE\":BOOL,...}}.\n";

int
cmd_token(struct cli *cli, int argc, char **argv)
{
	custody_token_caps caps;
	int r;

	if ((r = cli_parse(cli, argc, argv, NULL, "", NULL, NULL)) != CUSTODY_OK)
		return r;
	if ((r = cli_check_output(cli, (1u << OUT_TABLE) | (1u << OUT_JSON))) != CUSTODY_OK ||
	    (r = cli_open_token(cli)) != CUSTODY_OK ||
	    (r = custody_token_describe(cli->token, &caps, &cli->err)) != CUSTODY_OK)
		return r;
	if (cli->output == OUT_JSON)
		return print_json(cli, &caps);
	print_table(&caps);
	return CUSTODY_OK;
}
