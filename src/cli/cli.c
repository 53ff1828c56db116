/*
 * cli.c — what every subcommand shares: option parsing with the global
 * options, the configuration (file < environment < command line), opening
 * the store and the token, and finding the assignment that applies.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <custody/audit.h>
#include <custody/integrity.h>
#include <custody/policy.h>
#include <custody/secret.h>
#include <custody/thumbprint.h>
#include <custody/timefmt.h>

#include "cli.h"

/* One line of narration or warning on stderr: prefix, then the text made
 * from fmt, escaped (it may carry a label, a subject or store text). */
static void
print_line(const char *prefix, const char *fmt, va_list ap)
{
	va_list copy;
	char *text;
	int n;

	va_copy(copy, ap);
	n = vsnprintf(NULL, 0, fmt, copy);
	va_end(copy);
	if (n < 0 || (text = malloc((size_t)n + 1)) == NULL) {
		fprintf(stderr, "%s(cannot format a message)\n", prefix);
		return;
	}
	vsnprintf(text, (size_t)n + 1, fmt, ap);
	fprintf(stderr, "%s%s\n", prefix, out_safe(text));
	free(text);
}

void
cli_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	print_line("custody: warning: ", fmt, ap);
	va_end(ap);
}

void
cli_note(const struct cli *cli, const char *fmt, ...)
{
	char prefix[64];
	va_list ap;

	snprintf(prefix, sizeof(prefix), "custody: %s: note: ", cli->cmd);
	va_start(ap, fmt);
	print_line(prefix, fmt, ap);
	va_end(ap);
}

int
cli_time_parse(struct cli *cli, const char *option, const char *text, int64_t *out)
{
	char utc[CUSTODY_TIME_TEXT], local[64];
	time_t t;
	struct tm tm;

	if (custody_time_parse(text, out, &cli->err) != CUSTODY_OK)
		return custody_err_prefix(&cli->err, "%s", option);
	if (!custody_time_is_date(text))
		return CUSTODY_OK;
	t = (time_t)*out;
	if (localtime_r(&t, &tm) == NULL ||
	    strftime(local, sizeof(local), "%Y-%m-%d %H:%M %Z", &tm) == 0)
		snprintf(local, sizeof(local), "unknown");
	snprintf(cli->date_note, sizeof(cli->date_note), "%s %s means %s (local time: %s)",
		 option, text, custody_time_format(*out, utc), local);
	return CUSTODY_OK;
}

int
cli_type_resolve(struct cli *cli, const char *text, char out[CUSTODY_NAME_MAX + 1])
{
	char names[CUSTODY_CUSTOM_TYPES_MAX][CUSTODY_NAME_MAX + 1];
	const char *declared[CUSTODY_CUSTOM_TYPES_MAX];
	size_t n = custody_config_custom_types(&cli->cfg, names), i;

	for (i = 0; i < n; i++)
		declared[i] = names[i];
	return custody_type_resolve(text, declared, n, out, &cli->err);
}

void
cli_say(const struct cli *cli, const char *fmt, ...)
{
	va_list ap;

	if (cli->quiet)
		return;
	va_start(ap, fmt);
	print_line("", fmt, ap);
	va_end(ap);
}

int
cli_usage_error(struct cli *cli, const char *fmt, ...)
{
	va_list ap;

	cli->err.code = CUSTODY_EUSAGE;
	cli->err.hint[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(cli->err.msg, sizeof(cli->err.msg), fmt, ap);
	va_end(ap);
	return CUSTODY_EUSAGE;
}

const char cli_global_usage[] =
	"\nglobal options (also accepted after COMMAND):\n"
	"  -c, --config FILE      config file (default " CUSTODY_DEFAULT_CONFIG ")\n"
	"  --module PATH          PKCS#11 module\n"
	"  --token LABEL|URI      token label or pkcs11: URI (also --token-uri)\n"
	"  --pin-source SRC       user PIN: file:PATH, env:VAR, fd:N or prompt\n"
	"  --so-pin-source SRC    security officer PIN, same forms\n"
	"  --store URL            sqlite:PATH (default " CUSTODY_DEFAULT_STORE ")\n"
	"  --node NAME            this node's name (default: host name)\n"
	"  --at TIME              read as if now were TIME (ISO 8601); commands that\n"
	"                         write refuse it (set --dry-run, a preview, takes it)\n"
	"  --agent PATH|none      sign through the custody agent at PATH (sign, jwt\n"
	"                         issue); none: with the token itself\n"
	"  -o, --output FMT       table, json, thumbprint, pem, uri, der (where they\n"
	"                         apply; metadata: jwks, s2s)\n"
	"  -q, --quiet            no narration\n"
	"  -v, --verbose          more narration\n"
	"  --version, -h, --help\n";

const struct option cli_global_options[] = {
	{"config", required_argument, NULL, 'c'},
	{"module", required_argument, NULL, OPT_MODULE},
	{"token", required_argument, NULL, OPT_TOKEN},
	{"token-uri", required_argument, NULL, OPT_TOKEN},
	{"pin-source", required_argument, NULL, OPT_PIN_SOURCE},
	{"so-pin-source", required_argument, NULL, OPT_SO_PIN_SOURCE},
	{"store", required_argument, NULL, OPT_STORE},
	{"node", required_argument, NULL, OPT_NODE},
	{"at", required_argument, NULL, OPT_AT},
	{"agent", required_argument, NULL, OPT_AGENT},
	{"output", required_argument, NULL, 'o'},
	{"quiet", no_argument, NULL, 'q'},
	{"verbose", no_argument, NULL, 'v'},
	{"version", no_argument, NULL, OPT_VERSION},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

enum cli_global
cli_global_option(struct cli *cli, int c, const char *arg)
{
	switch (c) {
	case 'c': cli->args.config = arg; break;
	case OPT_MODULE: cli->args.module = arg; break;
	case OPT_TOKEN: cli->args.token = arg; break;
	case OPT_PIN_SOURCE: cli->args.pin_source = arg; break;
	case OPT_SO_PIN_SOURCE: cli->args.so_pin_source = arg; break;
	case OPT_STORE: cli->args.store = arg; break;
	case OPT_NODE: cli->args.node = arg; break;
	case OPT_AT: cli->args.at = arg; break;
	case OPT_AGENT: cli->args.agent = arg; break;
	case 'o': cli->args.output = arg; break;
	case 'q': cli->quiet = 1; break;
	case 'v': cli->verbose++; break;
	case 'h': return CLI_GLOBAL_HELP;
	case OPT_VERSION: cli->version = 1; break;
	default: return CLI_NOT_GLOBAL;
	}
	return CLI_GLOBAL_TAKEN;
}

/* Sets a config string member from a token value: a pkcs11: URI or a label. */
static int
set_token(custody_config *cfg, const char *value, custody_err *err)
{
	if (strncmp(value, "pkcs11:", 7) == 0)
		return custody_config_set(cfg, "token", "uri", value, err);
	return custody_config_set(cfg, "token", "label", value, err);
}

/* The command line's values, over the file and the environment. */
static int
apply_overrides(struct cli *cli)
{
	static const struct {
		const char *section, *key;
		size_t arg_offset;
	} map[] = {
		{"token", "module", offsetof(struct cli_args, module)},
		{"token", NULL, offsetof(struct cli_args, token)},
		{"token", "pin-source", offsetof(struct cli_args, pin_source)},
		{"token", "so-pin-source", offsetof(struct cli_args, so_pin_source)},
		{"store", "url", offsetof(struct cli_args, store)},
		{"node", "name", offsetof(struct cli_args, node)},
		{"agent", "socket", offsetof(struct cli_args, agent)},
	};
	size_t i;
	int r;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		const char *value;

		value = *(const char *const *)((const char *)&cli->args + map[i].arg_offset);
		if (value == NULL)
			continue;
		if (map[i].key == NULL)
			r = set_token(&cli->cfg, value, &cli->err);
		else
			r = custody_config_set(&cli->cfg, map[i].section, map[i].key,
					       value, &cli->err);
		if (r != CUSTODY_OK)
			return r;
	}
	return CUSTODY_OK;
}

const char *const cli_output_names[OUT_N_FORMATS] = {
	"table", "json", "thumbprint", "pem", "uri", "der", "jwks", "s2s",
};

/* -o FMT: one of cli_output_names (each command then refuses the ones it
 * has no use for, cli_check_output). */
static int
output_format(struct cli *cli)
{
	size_t i;

	cli->output = OUT_TABLE;
	if (cli->args.output == NULL)
		return CUSTODY_OK;
	for (i = 0; i < OUT_N_FORMATS; i++)
		if (strcmp(cli->args.output, cli_output_names[i]) == 0)
			break;
	if (i == OUT_N_FORMATS)
		return cli_usage_error(cli, "unknown output format '%s': use table, json, "
				       "thumbprint, pem, uri or der (jwks or s2s for "
				       "metadata)",
				       cli->args.output);
	cli->output = (enum cli_output)i;
	return CUSTODY_OK;
}

int
cli_settle_configuration(struct cli *cli)
{
	int r;

	if ((r = custody_config_settle(&cli->cfg, cli->args.config, &cli->err)) != CUSTODY_OK ||
	    (r = apply_overrides(cli)) != CUSTODY_OK ||
	    (r = custody_config_node_name(cli->cfg.node_name, cli->node, &cli->err)) !=
	    CUSTODY_OK)
		return r;

	cli->now = (int64_t)time(NULL);
	if (cli->args.at != NULL &&
	    (r = cli_time_parse(cli, "--at", cli->args.at, &cli->now)) != CUSTODY_OK)
		return r;

	return output_format(cli);
}

int64_t
cli_sign_time(const struct cli *cli)
{
	return cli->args.at != NULL ? cli->now : 0;
}

int
cli_refuse_at_with_agent(struct cli *cli)
{
	if (cli->args.at == NULL || custody_config_agent_socket(&cli->cfg) == NULL)
		return CUSTODY_OK;
	return cli_usage_error(cli, "the agent signs at the present time; --at needs the "
			       "token (--agent none)");
}

/* --at is for reading: whatever writes, writes at the real time. */
static int
refuse_at_for_writes(struct cli *cli)
{
	const struct command *cmd = cli->command;
	int r;

	if (cli->args.at == NULL || cmd == NULL || cmd->at == CLI_AT_READS ||
	    (cmd->at == CLI_AT_PREVIEWS && cli->preview))
		return CUSTODY_OK;
	r = cli_usage_error(cli, "--at is for reading: %s writes, and writes at the real time",
			    cli->cmd);
	if (cmd->at == CLI_AT_PREVIEWS)
		custody_err_hint(&cli->err, "%s --dry-run previews the change at --at TIME",
				 cli->cmd);
	return r;
}

struct bound {
	const struct cli_opt *opts;
	int (*on_option)(struct cli *, int, const char *, void *);
	void *ctx;
};

static int
take_bound(struct cli *cli, int c, const char *arg, const struct bound *b)
{
	const struct cli_opt *o;

	for (o = b->opts; o != NULL && o->name != NULL; o++) {
		if (o->val != c || (o->text == NULL && o->flag == NULL && o->list == NULL))
			continue;
		if (o->text != NULL)
			*o->text = arg;
		else if (o->flag != NULL)
			*o->flag = 1;
		else if (o->list->n < CLI_LIST_MAX)
			o->list->item[o->list->n++] = arg;
		else
			return cli_usage_error(cli, "--%s is given more than %d times",
					       o->name, CLI_LIST_MAX);
		return CUSTODY_OK;
	}
	return b->on_option != NULL ? b->on_option(cli, c, arg, b->ctx) : CUSTODY_OK;
}

/* The getopt loop over `all` (the command's options, then the global
 * ones), handing what is not global to take_bound. */
static int
parse_getopt(struct cli *cli, int argc, char **argv, const struct option *all,
	     const char *shortopts, const struct bound *b)
{
	char short_all[64];
	int c, r, positional;

	/* A command that takes operands says so with a leading '-': getopt
	 * then hands each operand to on_option as option 1, in order. */
	positional = shortopts != NULL && shortopts[0] == '-';
	if ((size_t)snprintf(short_all, sizeof(short_all), "%s%s%s", positional ? "-:" : ":",
			     shortopts != NULL ? shortopts + positional : "",
			     CLI_GLOBAL_SHORTOPTS) >= sizeof(short_all))
		return custody_err_set(&cli->err, CUSTODY_EFAIL, "%s has too many short options",
				       cli->cmd);

	optind = 0;	/* GNU getopt: start over on the command's argv */
	opterr = 0;
	while ((c = getopt_long(argc, argv, short_all, all, NULL)) != -1) {
		if (c == '?')
			return cli_usage_error(cli, "unknown option '%s'", argv[optind - 1]);
		if (c == ':')
			return cli_usage_error(cli, "option '%s' needs a value", argv[optind - 1]);
		switch (cli_global_option(cli, c, optarg)) {
		case CLI_GLOBAL_TAKEN:
			continue;
		case CLI_GLOBAL_HELP:
			if (cli->command != NULL)
				fputs(cli->command->usage, stdout);
			return -1;
		case CLI_NOT_GLOBAL:
			break;
		}
		if ((r = take_bound(cli, c, optarg, b)) != CUSTODY_OK)
			return r;
	}
	if (cli->version) {
		/* `custody COMMAND --version`: the versions, not the command. */
		r = cli_version(cli);
		return r == CUSTODY_OK ? -1 : r;
	}
	if (optind < argc)
		return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	if ((r = refuse_at_for_writes(cli)) != CUSTODY_OK)
		return r;
	return cli_settle_configuration(cli);
}

int
cli_parse(struct cli *cli, int argc, char **argv, const struct cli_opt *opts,
	  const char *shortopts,
	  int (*on_option)(struct cli *, int, const char *, void *), void *ctx)
{
	struct bound b = {opts, on_option, ctx};
	struct option *all;
	size_t n_own = 0, n_global = 0, i;
	int r;

	/* The getopt table is sized from the two tables: however many
	 * options a command has, each of them is known. */
	while (opts != NULL && opts[n_own].name != NULL)
		n_own++;
	while (cli_global_options[n_global].name != NULL)
		n_global++;
	if ((all = calloc(n_own + n_global + 1, sizeof(*all))) == NULL)
		return custody_err_set(&cli->err, CUSTODY_EFAIL, "out of memory");
	for (i = 0; i < n_own; i++)
		all[i] = (struct option){opts[i].name, opts[i].has_arg, NULL, opts[i].val};
	memcpy(&all[n_own], cli_global_options, n_global * sizeof(*all));
	r = parse_getopt(cli, argc, argv, all, shortopts, &b);
	free(all);
	return r;
}

int
cli_check_output(struct cli *cli, unsigned allowed)
{
	if ((allowed & (1u << cli->output)) == 0)
		return cli_usage_error(cli, "output format %s does not apply to %s",
				       cli_output_names[cli->output], cli->cmd);
	return CUSTODY_OK;
}

int
cli_open_store(struct cli *cli)
{
	int r;

	if (cli->store != NULL)
		return CUSTODY_OK;
	/* A read never makes a store: the first write does, and says so. */
	if (cli->command != NULL && cli->command->at != CLI_AT_READS && !cli->preview)
		r = custody_store_open(custody_config_store_url(&cli->cfg), &cli->store,
				       &cli->err);
	else
		r = custody_store_open_existing(custody_config_store_url(&cli->cfg),
						&cli->store, &cli->err);
	if (r != CUSTODY_OK && cli->cfg.store_url == NULL && cli->err.hint[0] == '\0')
		custody_err_hint(&cli->err, "choose a store with --store sqlite:PATH, CUSTODY_STORE or store.url");
	if (r == CUSTODY_OK)
		r = cli_attach_integrity(cli);
	return r;
}

int
cli_attach_integrity(struct cli *cli)
{
	if (cli->store == NULL || cli->token == NULL)
		return CUSTODY_OK;
	return custody_integrity_attach(cli->store, cli->token, &cli->err);
}

void
cli_close_token(struct cli *cli)
{
	if (cli->store != NULL)
		custody_integrity_detach(cli->store);
	custody_token_close(cli->token);
	cli->token = NULL;
}

int
cli_token_spec(struct cli *cli, custody_token_spec *spec)
{
	int r;

	if (cli->cfg.module == NULL || cli->cfg.module[0] == '\0') {
		r = custody_err_set(&cli->err, CUSTODY_EUSAGE, "no PKCS#11 module configured");
		custody_err_hint(&cli->err, "give --module PATH, CUSTODY_MODULE or token.module in the config file");
		return r;
	}
	memset(spec, 0, sizeof(*spec));
	spec->module = cli->cfg.module;
	spec->label = cli->cfg.token_label;
	spec->uri = cli->cfg.token_uri;
	spec->lock_dir = cli->cfg.lock_dir;
	spec->lock_timeout = cli->cfg.lock_timeout;
	return CUSTODY_OK;
}

int
cli_open_token_keep_pin(struct cli *cli, custody_secret *pin)
{
	custody_token_spec spec;
	char prompt[256];
	int r;

	if ((r = cli_token_spec(cli, &spec)) != CUSTODY_OK)
		return r;
	if (cli->cfg.pin_source == NULL) {
		r = custody_err_set(&cli->err, CUSTODY_EUSAGE, "no PIN source configured");
		custody_err_hint(&cli->err, "give --pin-source file:PATH|env:VAR|fd:N|prompt, CUSTODY_PIN_SOURCE or token.pin-source");
		return r;
	}
	/* Check the PIN source's form before touching the token. */
	if ((r = custody_secret_source_check(cli->cfg.pin_source, &cli->err)) != CUSTODY_OK)
		return r;
	if ((r = custody_token_open(&spec, &cli->token, &cli->err)) != CUSTODY_OK)
		goto out;
	snprintf(prompt, sizeof(prompt), "User PIN for token %s: ",
		 custody_token_label(cli->token));
	if ((r = custody_secret_read(cli->cfg.pin_source, prompt, pin, &cli->err)) != CUSTODY_OK)
		goto out;
	r = custody_token_login(cli->token, pin->data != NULL ? pin->data : "", pin->len,
				&cli->err);
	if (r == CUSTODY_OK)
		r = cli_attach_integrity(cli);
out:
	if (r != CUSTODY_OK) {
		custody_secret_clear(pin);
		if (cli->token != NULL)
			cli_close_token(cli);
	}
	return r;
}

int
cli_open_token(struct cli *cli)
{
	custody_secret pin = {NULL, 0};
	int r;

	if (cli->token != NULL)
		return CUSTODY_OK;
	r = cli_open_token_keep_pin(cli, &pin);
	custody_secret_clear(&pin);
	return r;
}

const char *
cli_default_identity(const struct cli *cli, const char *type)
{
	if (strcmp(type, "OAuthTokenIssuer") == 0)
		return CUSTODY_SCOPE_GLOBAL;
	return cli->node;
}

/* custody_store_get_assignment as the reader of custody_assign_lookup. */
static int
read_stored(void *store, const char *type, const char *identity,
	    custody_assignment *out, custody_err *err)
{
	return custody_store_get_assignment(store, type, identity, out, err);
}

int
cli_lookup_assignment(struct cli *cli, const char *type, const char *identity,
		      int want_current, custody_assignment *out)
{
	custody_assignment stored;
	int r;

	r = custody_assign_lookup(type, identity, cli->node, read_stored, cli->store,
				  &stored, &cli->err);
	if (r != CUSTODY_OK)
		return r;
	if (want_current)
		return custody_assign_current_at(&stored, cli->now, out, &cli->err);
	custody_assign_resolve(&stored, cli->now, out);
	return CUSTODY_OK;
}

int
cli_check_thumbprint(struct cli *cli, const char *query)
{
	char normalized[65];

	return custody_thumbprint_normalize(query, normalized, &cli->err);
}

int
cli_store_thumbprint(struct cli *cli, const char *query,
		     char out[CUSTODY_THUMBPRINT_HEX + 1])
{
	custody_cert_record *recs = NULL;
	size_t n = 0, index = 0;
	int r;

	if ((r = cli_check_thumbprint(cli, query)) != CUSTODY_OK ||
	    (r = custody_store_list_certs(cli->store, &recs, &n, &cli->err)) != CUSTODY_OK)
		goto out;
	if ((r = custody_thumbprint_match(query, recs, n, &index, &cli->err)) != CUSTODY_OK)
		goto out;
	snprintf(out, CUSTODY_THUMBPRINT_HEX + 1, "%s", recs[index].thumbprint);
out:
	custody_cert_records_free(recs, n);
	return r;
}

int
cli_check_new_file(struct cli *cli, const char *path, const char *option)
{
	struct stat sb;
	int r;

	if (lstat(path, &sb) != 0)
		return CUSTODY_OK;
	r = custody_err_set(&cli->err, CUSTODY_EFAIL, "cannot create %s: %s", path,
			    strerror(EEXIST));
	custody_err_hint(&cli->err, "an existing file is never overwritten: choose "
			 "another %s", option);
	return r;
}

int
cli_begin_on_stored_cert(struct cli *cli, const char *query, int dry_run,
			 char out[CUSTODY_THUMBPRINT_HEX + 1])
{
	int r;

	if ((r = cli_check_thumbprint(cli, query)) != CUSTODY_OK ||
	    (r = cli_check_output(cli, (1u << OUT_TABLE) | (1u << OUT_JSON))) != CUSTODY_OK)
		return r;
	cli->preview = dry_run;
	if ((r = cli_open_store(cli)) != CUSTODY_OK)
		return r;
	return cli_store_thumbprint(cli, query, out);
}

int
cli_token_records(struct cli *cli, custody_cert_record **recs, int **has_key,
		  size_t *n)
{
	custody_token_cert *certs = NULL;
	custody_cert_record *out = NULL;
	int *keys = NULL;
	size_t count = 0, i, k = 0;
	int r;

	*recs = NULL;
	*n = 0;
	if (has_key != NULL)
		*has_key = NULL;
	if ((r = custody_token_list_certs(cli->token, &certs, &count, &cli->err)) != CUSTODY_OK)
		return r;
	out = calloc(count > 0 ? count : 1, sizeof(*out));
	keys = calloc(count > 0 ? count : 1, sizeof(*keys));
	if (out == NULL || keys == NULL) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "out of memory");
		goto out;
	}
	for (i = 0; i < count; i++) {
		custody_err ignored;

		/* A certificate the token holds but OpenSSL cannot read is skipped. */
		if (custody_cert_record_from_der(certs[i].der, certs[i].der_len,
						 &out[k], &ignored) != CUSTODY_OK)
			continue;
		if (certs[i].label != NULL)
			out[k].label = strdup(certs[i].label);
		if (certs[i].has_private_key)
			out[k].key_uri = custody_token_key_uri(cli->token, certs[i].key_id,
								out[k].label);
		keys[k] = certs[i].has_private_key;
		k++;
	}
	*recs = out;
	*n = k;
	out = NULL;
	if (has_key != NULL) {
		*has_key = keys;
		keys = NULL;
	}
	r = CUSTODY_OK;
out:
	custody_cert_records_free(out, 0);
	free(keys);
	custody_token_certs_free(certs, count);
	return r;
}

int
cli_audit(struct cli *cli, const char *action, const char *type, const char *identity,
	  const char *thumbprint, const char *previous, const char *detail)
{
	custody_audit_entry draft;
	int r;

	memset(&draft, 0, sizeof(draft));
	draft.time = 0;	/* the real clock, never --at */
	snprintf(draft.node, sizeof(draft.node), "%s", cli->node);
	snprintf(draft.action, sizeof(draft.action), "%s", action);
	snprintf(draft.type, sizeof(draft.type), "%s", type != NULL ? type : "");
	snprintf(draft.identity, sizeof(draft.identity), "%s", identity != NULL ? identity : "");
	snprintf(draft.thumbprint, sizeof(draft.thumbprint), "%s",
		 thumbprint != NULL ? thumbprint : "");
	snprintf(draft.previous_thumbprint, sizeof(draft.previous_thumbprint), "%s",
		 previous != NULL ? previous : "");
	draft.detail = (char *)detail;
	r = custody_audit_append(cli->store, &draft, &cli->err);
	if (r != CUSTODY_OK)
		custody_err_prefix(&cli->err, "cannot append to the audit log");
	return r;
}
