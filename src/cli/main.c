/*
 * main.c — the `custody` command: global options, the one dispatch table,
 * and the one place where an error becomes text and an exit status.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <custody/log.h>
#include <custody/secret.h>
#include <custody/similar.h>

#include "cli.h"
#include "launch.h"

static const struct command cli_commands[] = {
	{"get", cmd_get, CLI_AT_READS, "show assignments (Get-CsCertificate)",
	 cmd_get_usage},
	{"import", cmd_import, CLI_AT_WRITES, "import a PKCS#12, PEM or certificate onto the token (Import-CsCertificate)",
	 cmd_import_usage},
	{"set", cmd_set, CLI_AT_PREVIEWS, "assign a certificate to a type (Set-CsCertificate)",
	 cmd_set_usage},
	{"list", cmd_list, CLI_AT_READS, "list the certificates on the token",
	 cmd_list_usage},
	{"remove", cmd_remove, CLI_AT_WRITES, "remove a certificate from an assignment (Remove-CsCertificate)",
	 cmd_remove_usage},
	{"delete", cmd_delete, CLI_AT_WRITES, "destroy a certificate, and its key when no other certificate uses it",
	 cmd_delete_usage},
	{"request", cmd_request, CLI_AT_WRITES, "generate a key pair inside the token: a CSR or a self-signed certificate (Request-CsCertificate)",
	 cmd_request_usage},
	{"metadata", cmd_metadata, CLI_AT_READS, "publish the verification keys of a type (JWKS or S2S metadata)",
	 cmd_metadata_usage},
	{"init-token", cmd_init_token, CLI_AT_WRITES, "initialise a fresh token (SoftHSM, test tokens)",
	 cmd_init_token_usage},
	{"test", cmd_test, CLI_AT_READS, "check the assigned certificates and keys (Test-CsCertificateConfiguration)",
	 cmd_test_usage},
	{"wizard", cmd_wizard, CLI_AT_WRITES, "assign a certificate step by step, in a terminal",
	 cmd_wizard_usage},
	{"sign", cmd_sign, CLI_AT_READS, "sign a file with the current key of a type (raw signature out)",
	 cmd_sign_usage},
	{"audit", cmd_audit, CLI_AT_READS, "show or verify the hash-chained audit log",
	 cmd_audit_usage},
	{"jwt", cmd_jwt, CLI_AT_READS, "issue or verify a JWT signed with the current key of a type",
	 cmd_jwt_usage},
	{"tidy", cmd_tidy, CLI_AT_WRITES, "list (and with --yes destroy) what interrupted custody work left on the token",
	 cmd_tidy_usage},
	{"sync", cmd_sync, CLI_AT_WRITES, "bring this node's token in line with the store (cluster)",
	 cmd_sync_usage},
	{"status", cmd_status, CLI_AT_READS, "the cluster's nodes against the store: held keys, last sync, lag",
	 cmd_status_usage},
	{"rollover", cmd_rollover, CLI_AT_READS, "make the successor a [rollover TYPE] policy says is due (run hourly)",
	 cmd_rollover_usage},
	{"kek", cmd_kek, CLI_AT_WRITES, "create the cluster key-encryption key on this token (ceremony)",
	 cmd_kek_usage},
	{"node", cmd_node, CLI_AT_WRITES, "enroll, admit or join a node of the cluster (ceremony)",
	 cmd_node_usage},
	{"seal", cmd_seal, CLI_AT_WRITES, "turn a replicated key's extractable flag off once every node holds it",
	 cmd_seal_usage},
	{"token", cmd_token, CLI_AT_READS, "what the token is and what custody can do with it",
	 cmd_token_usage},
	{"tag", cmd_tag, CLI_AT_WRITES, "check the store's integrity tags, or tag a store written before them (ceremony)",
	 cmd_tag_usage},
	{"agent", cmd_agent, CLI_AT_READS, "serve the token's keys to local users over a Unix socket (custody-agent(8))",
	 cmd_agent_usage},
	{"export-package", cmd_export, CLI_AT_WRITES, "write one key's wrapped package to a new file (never plaintext)",
	 cmd_export_usage},
	/* The package command's first name, kept for the scripts that use
	 * it: "export" alone read like the public certificate's export. */
	{"export", cmd_export, CLI_AT_WRITES, "the same as export-package (its first name)",
	 cmd_export_usage},
	{NULL, NULL, CLI_AT_READS, NULL, NULL},
};

static const struct command *
find_command(const char *name)
{
	const struct command *c;

	for (c = cli_commands; c->name != NULL; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* An unknown command: one line, and the command it was probably meant to
 * be. */
static int
unknown_command(const char *name)
{
	const char *names[sizeof(cli_commands) / sizeof(cli_commands[0])];
	const char *meant;
	size_t n = 0;

	while (cli_commands[n].name != NULL) {
		names[n] = cli_commands[n].name;
		n++;
	}
	meant = custody_name_nearest(name, names, n);
	if (meant != NULL)
		fprintf(stderr, "custody: unknown command '%s': did you mean %s?\n",
			out_safe(name), meant);
	else
		fprintf(stderr, "custody: unknown command '%s'\n", out_safe(name));
	fprintf(stderr, "see: custody --help (every command), custody help COMMAND\n");
	return 2;
}

static void
print_main_usage(FILE *f)
{
	const struct command *c;

	fprintf(f, "usage: custody [global options] COMMAND [options]\n\ncommands:\n");
	for (c = cli_commands; c->name != NULL; c++)
		fprintf(f, "  %-14s %s\n", c->name, c->summary);
	fputs(cli_global_usage, f);
	fputs("\n`custody COMMAND --help` describes one command; man custody has it all.\n", f);
}

static void
log_to_stderr(enum custody_log_level level, const char *line, void *ctx)
{
	const struct cli *cli = ctx;

	switch (level) {
	case CUSTODY_LOG_WARN:
		fprintf(stderr, "custody: warning: %s\n", out_safe(line));
		break;
	case CUSTODY_LOG_STEP:
		if (!cli->quiet)
			fprintf(stderr, "%s\n", out_safe(line));
		break;
	case CUSTODY_LOG_DEBUG:
		if (cli->verbose)
			fprintf(stderr, "custody: %s\n", out_safe(line));
		break;
	}
}

/* custody --version: then the command line is done. */
static int
print_versions(struct cli *cli)
{
	int r = cli_version(cli);

	if (r != CUSTODY_OK)
		out_report_error("--version", &cli->err);
	custody_config_clear(&cli->cfg);
	OPENSSL_cleanse(&cli->err, sizeof(cli->err));
	out_release();
	return custody_err_exit_status(r);
}

int
custody_cli_main(int argc, char **argv)
{
	struct cli cli;
	const struct command *command;
	char *help_argv[3];
	int c, r, status = -1;

	memset(&cli, 0, sizeof(cli));
	/* Before anything is read: no core dump, no ptrace by the same user,
	 * and OpenSSL's secure heap for PINs, passwords and key values. */
	if (custody_harden_process(&cli.err) != CUSTODY_OK) {
		fprintf(stderr, "custody: %s\n", out_safe(cli.err.msg));
		out_release();
		return custody_err_exit_status(cli.err.code);
	}
	custody_config_init(&cli.cfg);
	custody_log_set_handler(log_to_stderr, &cli);
	cli.cmd = "custody";

	/* Global options before the command name; "+" stops at the name. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+" CLI_GLOBAL_SHORTOPTS, cli_global_options,
				NULL)) != -1) {
		switch (cli_global_option(&cli, c, optarg)) {
		case CLI_GLOBAL_TAKEN:
			continue;
		case CLI_GLOBAL_HELP:
			print_main_usage(stdout);
			return 0;
		case CLI_NOT_GLOBAL:
			break;
		}
		fprintf(stderr, "custody: unknown or incomplete option '%s'\n",
			out_safe(argv[optind - 1]));
		print_main_usage(stderr);
		return 2;
	}
	if (cli.version)
		return print_versions(&cli);
	if (optind >= argc) {
		print_main_usage(stderr);
		return 2;
	}
	/* custody help [COMMAND]: the usage, or what COMMAND --help says. */
	if (strcmp(argv[optind], "help") == 0) {
		if (optind + 1 >= argc) {
			print_main_usage(stdout);
			return 0;
		}
		if (optind + 2 < argc) {
			fprintf(stderr, "custody: help takes one command name\n");
			return 2;
		}
		optind++;
		help_argv[0] = argv[optind];
		help_argv[1] = "--help";
		help_argv[2] = NULL;
		argv = help_argv;
		argc = 2;
		optind = 0;
	}
	command = find_command(argv[optind]);
	if (command == NULL)
		return unknown_command(argv[optind]);
	cli.cmd = command->name;
	cli.command = command;
	r = command->run(&cli, argc - optind, argv + optind);
	if (r <= CLI_EXIT(0)) {
		/* The command chose its exit status (custody test: 0 OK,
		 * 1 WARNING, 2 CRITICAL, 3 UNKNOWN); an error it left in
		 * cli.err is printed as usual. */
		status = CLI_EXIT(0) - r;
		r = cli.err.code;
	}
	if (r < 0) {
		r = CUSTODY_OK;	/* --help */
	} else if (r == CUSTODY_OK) {
		/* After the output, and only when the command succeeded: a
		 * refusal stays one line, a failure says its own instants. */
		if (cli.store != NULL && custody_store_made(cli.store) && !cli.quiet)
			fprintf(stderr, "made the store %s (the first write to it)\n",
				out_safe(custody_store_where(cli.store)));
		if (cli.date_note[0] != '\0')
			fprintf(stderr, "custody: %s: note: %s\n", cli.cmd, cli.date_note);
	} else {
		cli.err.code = r;
		out_report_error(cli.cmd, &cli.err);
	}
	if (cli.token != NULL)
		cli_close_token(&cli);
	if (cli.store != NULL && r != CUSTODY_OK)
		custody_store_close_failed(cli.store);	/* no store made */
	else if (cli.store != NULL)
		custody_store_close(cli.store);
	custody_config_clear(&cli.cfg);
	OPENSSL_cleanse(&cli.err, sizeof(cli.err));
	out_release();
	return status >= 0 ? status : custody_err_exit_status(r);
}
