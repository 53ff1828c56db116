/*
 * cli.h — what the subcommands of `custody` share: the parsed global
 * options, the opened store and token, and the output helpers.
 *
 * A command is `int cmd_NAME(struct cli *cli, int argc, char **argv)`; it
 * returns a custody status (CUSTODY_OK, CUSTODY_E*) and leaves the message in
 * cli->err, which main() prints once as "custody: CMD: WHAT: WHY".
 */
#ifndef CUSTODY_CLI_H
#define CUSTODY_CLI_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include <custody/assign.h>
#include <custody/cert.h>
#include <custody/config.h>
#include <custody/error.h>
#include <custody/records.h>
#include <custody/secret.h>
#include <custody/store.h>
#include <custody/timefmt.h>
#include <custody/token.h>

#include "escape.h"

enum cli_output {
	OUT_TABLE = 0,
	OUT_JSON,
	OUT_THUMBPRINT,
	OUT_PEM,
	OUT_URI,
	OUT_DER,	/* one certificate, binary (list)        */
	OUT_JWKS,	/* metadata's documents: a JWK Set,      */
	OUT_S2S,	/* or server-to-server metadata          */
	OUT_N_FORMATS,
};
/* The names -o takes, indexed by enum cli_output. */
extern const char *const cli_output_names[OUT_N_FORMATS];

/* Values given on the command line (NULL: not given). */
struct cli_args {
	const char *config;
	const char *module;
	const char *token;	/* label or pkcs11: URI */
	const char *pin_source;
	const char *so_pin_source;
	const char *store;
	const char *node;
	const char *at;
	const char *output;
	const char *agent;	/* --agent PATH|none */
};

struct command;

struct cli {
	const char *cmd;	/* the subcommand's name, for messages */
	const struct command *command;	/* its table entry (main sets it) */
	struct cli_args args;
	custody_config cfg;	/* file, then environment, then command line */
	char node[CUSTODY_NAME_MAX + 1];
	char date_note[160];	/* what a bare date means: said when the
				   command succeeds (cli_time_parse) */
	int64_t now;		/* --at, or the clock */
	enum cli_output output;
	int quiet, verbose;
	int version;		/* --version: cli_version, and nothing else */
	int preview;		/* a dry run: writes nothing (set --dry-run) */
	int force;		/* --force: a guarded change goes on unasked */
	custody_err err;
	custody_store *store;
	custody_token *token;
};

/* Global options, to be appended to every command's option table. */
enum {
	OPT_MODULE = 0x100,
	OPT_TOKEN,
	OPT_PIN_SOURCE,
	OPT_SO_PIN_SOURCE,
	OPT_STORE,
	OPT_NODE,
	OPT_AT,
	OPT_VERSION,
	OPT_AGENT,
	OPT_FIRST_COMMAND_OPTION,	/* commands number their own from here */
};
#define CLI_GLOBAL_SHORTOPTS "c:o:qvh"
extern const struct option cli_global_options[];	/* {NULL}-terminated */
/* Their part of `custody --help`, beside the table in cli.c. */
extern const char cli_global_usage[];

/* What cli_global_option did with an option getopt returned. */
enum cli_global {
	CLI_NOT_GLOBAL = 0,	/* not a global option: the command's (or an error) */
	CLI_GLOBAL_TAKEN,	/* its value is in cli->args (or -q, -v)          */
	CLI_GLOBAL_HELP,	/* -h, --help: the caller prints its usage, exits 0 */
};

/* `custody --version` (-v: with the token's PKCS#11 module): prints
 * custody's version and those of the libraries it runs with.  Errors of
 * opening the token (-v) in cli->err. */
int cli_version(struct cli *cli);

/* The one parser of the global options, before the command name (main)
 * and after it (cli_parse): c and arg as getopt_long returned them. */
enum cli_global cli_global_option(struct cli *cli, int c, const char *arg);

/*
 * What a command does with --at TIME.  --at is for reading: a command that
 * writes (the store, the token or a file) writes at the real time, and
 * cli_parse refuses --at for it (EUSAGE) -- the one place of that rule.
 */
enum cli_at {
	CLI_AT_READS = 0,	/* reads: --at evaluates as if now were TIME */
	CLI_AT_WRITES,		/* writes: --at is refused                   */
	CLI_AT_PREVIEWS,	/* writes, but a preview (cli->preview set by
				   its --dry-run) reads: --at only there      */
};

/* One subcommand. */
struct command {
	const char *name;
	int (*run)(struct cli *cli, int argc, char **argv);
	enum cli_at at;
	const char *summary;
	const char *usage;	/* the synopsis and options, for --help */
};

/*
 * One option of a command, and where its value goes: a text option keeps
 * its value in *text, a flag sets *flag to 1, an option with neither is
 * handed to cli_parse's on_option.  A table ends with {NULL}.
 */
/* The values of an option that may be given more than once, in order. */
#define CLI_LIST_MAX 16
struct cli_list {
	const char *item[CLI_LIST_MAX];
	size_t n;
};

struct cli_opt {
	const char *name;
	int has_arg;		/* no_argument, required_argument */
	int val;		/* its getopt value (a letter, or an OPT_* above 255) */
	const char **text;	/* keeps the value (the last, when repeated) */
	int *flag;
	struct cli_list *list;	/* keeps every value given */
};
#define CLI_OPT_TEXT(name, val, p) {(name), required_argument, (val), (p), NULL, NULL}
#define CLI_OPT_FLAG(name, val, p) {(name), no_argument, (val), NULL, (p), NULL}
#define CLI_OPT_LIST(name, val, p) {(name), required_argument, (val), NULL, NULL, (p)}
#define CLI_OPT(name, has_arg, val) {(name), (has_arg), (val), NULL, NULL, NULL}

/*
 * Parses argv with the command's options (opts; NULL: it has none of its
 * own) followed by the global ones.  A bound option keeps its value; for
 * each other option calls on_option(cli, c, optarg, ctx), which returns a
 * status (on_option may be NULL when every option is bound).  Handles the
 * global options itself, and --help (prints the usage, returns -1: the
 * command exits 0).  When shortopts starts with '-', operands are handed
 * to on_option as option 1 (optarg = the operand); otherwise an operand
 * is a usage error.  Leaves optind after the last option.  Refuses --at
 * (EUSAGE "--at is for reading: CMD writes, and writes at the real time")
 * when the command writes (its table entry's `at`; an on_option that sets
 * cli->preview makes it a read).  Then settles the configuration (file <
 * environment < command line).
 */
int cli_parse(struct cli *cli, int argc, char **argv,
	      const struct cli_opt *opts, const char *shortopts,
	      int (*on_option)(struct cli *, int, const char *, void *),
	      void *ctx);

/* Settles cli->cfg from the file, the environment and the command line
 * (what cli_parse does last); `custody agent` does it again at SIGHUP. */
int cli_settle_configuration(struct cli *cli);

/* A usage error: sets cli->err (EUSAGE) and returns EUSAGE. */
int cli_usage_error(struct cli *cli, const char *fmt, ...) CUSTODY_PRINTF(2, 3);

/* Refuses output formats the command has no use for (EUSAGE). `allowed`
 * is a bit set of (1 << OUT_*). */
int cli_check_output(struct cli *cli, unsigned allowed);

/* Opens cli->store (configured URL, or the default). */
int cli_open_store(struct cli *cli);

/* Opens cli->token and logs in with the user PIN from the PIN source. */
int cli_open_token(struct cli *cli);
/* The same, keeping the user PIN in *pin for the caller, who clears it
 * (custody_secret_clear): a step that logs the user out and in again
 * cannot read a source such as fd:N or prompt twice.  *pin is cleared
 * when it fails. */
int cli_open_token_keep_pin(struct cli *cli, custody_secret *pin);

/* The token spec of the configuration (module, token, lock directory and
 * timeout); EUSAGE "no PKCS#11 module configured" without a module. */
int cli_token_spec(struct cli *cli, custody_token_spec *spec);
/* When both the store and the token are open: the store tags what it
 * writes and checks what it reads with the token (custody/integrity.h).
 * cli_open_store and cli_open_token call it. */
int cli_attach_integrity(struct cli *cli);
/* Closes the token (detached from the store first); cli->token NULL. */
void cli_close_token(struct cli *cli);

/* The identity that applies for `type` on this node when none was given
 * for a change: CUSTODY_SCOPE_GLOBAL for OAuthTokenIssuer, else this
 * node's name. */
const char *cli_default_identity(const struct cli *cli, const char *type);

/*
 * Reads the assignment of (type, identity) resolved at cli->now; with
 * identity NULL, the one custody_assign_lookup chooses (this node's when
 * the type is assigned there, else the global one).  ENOTFOUND "no
 * certificate is assigned for type T (identity I)" when there is none (or
 * it has no current certificate and want_current is set).
 */
int cli_lookup_assignment(struct cli *cli, const char *type,
			  const char *identity, int want_current,
			  custody_assignment *out);

/* The form of a thumbprint query (a --thumbprint value), checked before
 * anything is read: custody_thumbprint_normalize's errors. */
int cli_check_thumbprint(struct cli *cli, const char *query);
/* The store's certificate that a thumbprint query (full or a unique
 * prefix, SHA-1 or SHA-256) names: 40 upper-case hex into out. */
int cli_store_thumbprint(struct cli *cli, const char *query,
			 char out[CUSTODY_THUMBPRINT_HEX + 1]);
/* A dry run's check of a file a write would create (never overwritten):
 * refused as the create would be, when PATH exists. */
int cli_check_new_file(struct cli *cli, const char *path, const char *option);

/* The start of a command on one stored certificate (export-package,
 * seal): the query checked before anything opens (-o json: the plan's
 * object, a dry run's or what was done), the store opened (a dry run
 * makes none) and the query matched in it. */
int cli_begin_on_stored_cert(struct cli *cli, const char *query, int dry_run,
			     char out[CUSTODY_THUMBPRINT_HEX + 1]);

/* Certificates on the token as store records (key_uri, label set, and
 * has_private_key per record in *has_key, malloc'ed, may be NULL). */
int cli_token_records(struct cli *cli, custody_cert_record **recs,
		      int **has_key, size_t *n);

/*
 * Appends one audit entry for a change (inside the caller's store
 * transaction): this node, the invoking user, the real clock.  type,
 * identity, thumbprint, previous and detail may be NULL.
 */
int cli_audit(struct cli *cli, const char *action, const char *type,
	      const char *identity, const char *thumbprint, const char *previous,
	      const char *detail);

/* Prints a warning line "custody: warning: ..." on stderr. */
void cli_warn(const char *fmt, ...) CUSTODY_PRINTF(1, 2);
/* "custody: CMD: note: ..." on stderr, even with --quiet: something the
 * command did that its user should know of and act on. */
void cli_note(const struct cli *cli, const char *fmt, ...) CUSTODY_PRINTF(2, 3);

/* custody_time_parse of the value of option `option`, its name prefixed
 * to an error; a date alone is read as 00:00 UTC, and a note (when the
 * command succeeds) says which instant that is, in UTC and local time. */
int cli_time_parse(struct cli *cli, const char *option, const char *text,
		   int64_t *out);

/* The type a command that assigns may name (custody_type_resolve): a
 * known type, or a custom one the configuration declares ([types]). */
int cli_type_resolve(struct cli *cli, const char *text,
		     char out[CUSTODY_NAME_MAX + 1]);
/* For the signer: cli->now when --at was given, else 0 (the signer's
 * clock; an agent signs only at the present time). */
int64_t cli_sign_time(const struct cli *cli);
/* EUSAGE when --at is given and an agent is configured (it signs at the
 * present time only): "the agent signs at the present time; --at needs
 * the token (--agent none)". */
int cli_refuse_at_with_agent(struct cli *cli);

/* Prints a narration line on stderr unless -q. */
void cli_say(const struct cli *cli, const char *fmt, ...) CUSTODY_PRINTF(2, 3);

/* ---- output.c: every command prints through these ---- */

/* "Name : value" lines of a block, names padded to one width. */
void out_field(const char *name, const char *value);
void out_block_end(void);

/* The time as shown everywhere ("" for 0). */
const char *out_time(int64_t t, char buf[CUSTODY_TIME_TEXT]);

/* JSON of a certificate record (thumbprint, sha256, subject, ...);
 * effective is added when >= 0. */
json_t *out_cert_json(const custody_cert_record *rec, int64_t effective);

/* Prints a JSON value (indented) on stdout and releases it. */
int out_json(struct cli *cli, json_t *value);

/* Prints the certificate a command recorded: its JSON (out_cert_json)
 * with -o json, else its thumbprint. */
int out_cert(struct cli *cli, const custody_cert_record *rec);

/* Prints what changes between two states of an assignment, one line per
 * slot that differs ("  current: A -> B"); returns how many lines. */
int out_assignment_diff(FILE *f, const custody_assignment *before,
			const custody_assignment *after);

/* ---- commands ---- */
int cmd_agent(struct cli *, int, char **);
int cmd_get(struct cli *, int, char **);
int cmd_import(struct cli *, int, char **);
int cmd_set(struct cli *, int, char **);
int cmd_list(struct cli *, int, char **);
int cmd_remove(struct cli *, int, char **);
int cmd_delete(struct cli *, int, char **);
int cmd_request(struct cli *, int, char **);
int cmd_metadata(struct cli *, int, char **);
int cmd_init_token(struct cli *, int, char **);
int cmd_jwt(struct cli *, int, char **);
int cmd_audit(struct cli *, int, char **);
/* `custody test` ends with its own exit status s (the monitoring-plugin
 * convention of cli.md) by returning CLI_EXIT(s); main() exits with s and
 * still prints cli->err when it is set. */
#define CLI_EXIT(status) (-16 - (status))
int cmd_test(struct cli *, int, char **);
int cmd_wizard(struct cli *, int, char **);
int cmd_sign(struct cli *, int, char **);
/* The cluster ceremony (cmd_kek.c, cmd_node.c, cmd_seal.c, cmd_export.c). */
int cmd_kek(struct cli *, int, char **);
int cmd_node(struct cli *, int, char **);
int cmd_seal(struct cli *, int, char **);
/* What the token is and can do (cmd_token.c). */
int cmd_token(struct cli *, int, char **);

/* The store's integrity tags (cmd_tag.c). */
int cmd_tag(struct cli *, int, char **);
int cmd_export(struct cli *, int, char **);
int cmd_sync(struct cli *, int, char **);
/* Removes what interrupted custody work left on the token (cmd_tidy.c). */
int cmd_tidy(struct cli *, int, char **);
int cmd_status(struct cli *, int, char **);
/* Makes the successors the [rollover TYPE] policies say are due. */
int cmd_rollover(struct cli *, int, char **);
extern const char cmd_rollover_usage[];

/* custody agent: serve the token to local users (custody/agent.h). */
extern const char cmd_agent_usage[];
/* The agent's socket a client of this configuration would use, and
 * whether an agent answers there (1, its pid in *pid) or not (0, why in
 * why). */
const char *cli_agent_path(const struct cli *cli, const char *given);
int cli_agent_probe(const char *path, long *pid, char *why, size_t why_size);

/* Each command's --help text, beside its option table in cmd_NAME.c. */
extern const char cmd_get_usage[], cmd_import_usage[], cmd_set_usage[],
	cmd_list_usage[], cmd_remove_usage[], cmd_delete_usage[],
	cmd_request_usage[], cmd_metadata_usage[], cmd_init_token_usage[],
	cmd_test_usage[], cmd_wizard_usage[], cmd_sign_usage[],
	cmd_audit_usage[], cmd_jwt_usage[], cmd_tidy_usage[], cmd_sync_usage[],
	cmd_status_usage[], cmd_kek_usage[], cmd_node_usage[], cmd_seal_usage[],
	cmd_token_usage[], cmd_tag_usage[], cmd_export_usage[];

#endif
