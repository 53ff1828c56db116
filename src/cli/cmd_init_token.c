/*
 * cmd_init_token.c — `custody init-token`: the first step of a token's
 * life, for SoftHSM and test tokens.  Both PINs come from their sources,
 * never from the command line.
 */
#include "config.h"

#include <string.h>

#include <custody/secret.h>

#include "cli.h"

enum { OPT_LABEL = OPT_FIRST_COMMAND_OPTION };

const char cmd_init_token_usage[] =
	"custody init-token --label LABEL --so-pin-source SRC --pin-source SRC\n"
	"\n"
	"Initialises the first uninitialised token of the module with LABEL, the\n"
	"security officer PIN and the user PIN, both read from their sources.\n";

int
cmd_init_token(struct cli *cli, int argc, char **argv)
{
	const char *label = NULL;
	const struct cli_opt options[] = {
		CLI_OPT_TEXT("label", OPT_LABEL, &label),
		{NULL},
	};
	custody_secret so_pin = {NULL, 0}, user_pin = {NULL, 0};
	custody_token_spec spec;
	int r;

	if ((r = cli_parse(cli, argc, argv, options, "", NULL, NULL)) != CUSTODY_OK ||
	    (r = cli_check_output(cli, 1u << OUT_TABLE)) != CUSTODY_OK)
		return r;
	if (label == NULL || label[0] == '\0' || strlen(label) > 32)
		return cli_usage_error(cli, "--label LABEL (1 to 32 characters) is required");
	if (cli->cfg.module == NULL)
		return cli_usage_error(cli, "no PKCS#11 module configured: give --module PATH");
	if (cli->cfg.so_pin_source == NULL || cli->cfg.pin_source == NULL)
		return cli_usage_error(cli, "--so-pin-source and --pin-source are both required");
	if ((r = custody_secret_source_check(cli->cfg.so_pin_source, &cli->err)) != CUSTODY_OK ||
	    (r = custody_secret_source_check(cli->cfg.pin_source, &cli->err)) != CUSTODY_OK)
		return r;
	if ((r = custody_secret_read(cli->cfg.so_pin_source, "New security officer PIN: ",
				     &so_pin, &cli->err)) != CUSTODY_OK ||
	    (r = custody_secret_read(cli->cfg.pin_source, "New user PIN: ", &user_pin,
				     &cli->err)) != CUSTODY_OK)
		goto out;
	if (so_pin.len < 4 || user_pin.len < 4) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "a PIN must have at least 4 characters");
		goto out;
	}
	memset(&spec, 0, sizeof(spec));
	spec.module = cli->cfg.module;
	spec.lock_dir = cli->cfg.lock_dir;
	spec.lock_timeout = cli->cfg.lock_timeout;
	cli_say(cli, "initialising a token labelled %s with module %s", label, spec.module);
	r = custody_token_init(&spec, label, so_pin.data, so_pin.len, user_pin.data,
			       user_pin.len, &cli->err);
	if (r == CUSTODY_OK)
		cli_say(cli, "token %s is initialised; its user PIN is set", label);
out:
	custody_secret_clear(&so_pin);
	custody_secret_clear(&user_pin);
	return r;
}
