/*
 * version.c — `custody --version`: custody's version and the versions of
 * what it runs with, as loaded (a bug report needs the library the
 * process found, not the one it was built against: both are printed when
 * they differ).  With -v the configured token is opened (no login, no
 * PIN) and its PKCS#11 module says what it is: HSM vendors' libraries
 * differ in behaviour from one version to the next.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <sqlite3.h>

#include <custody/token.h>

#include "cli.h"

static void
print_library_versions(void)
{
	const char *ssl = OpenSSL_version(OPENSSL_VERSION);

	if (strcmp(ssl, OPENSSL_VERSION_TEXT) == 0)
		printf("%s\n", ssl);
	else
		printf("%s (built with %s)\n", ssl, OPENSSL_VERSION_TEXT);
	if (strcmp(sqlite3_libversion(), SQLITE_VERSION) == 0)
		printf("SQLite %s\n", sqlite3_libversion());
	else
		printf("SQLite %s (built with %s)\n", sqlite3_libversion(),
		       SQLITE_VERSION);
}

/* The configured token's module, opened for the question and closed. */
static int
print_module(struct cli *cli)
{
	custody_token_module_info info;
	custody_token_spec spec;
	custody_token *tok = NULL;
	int r;

	if ((r = cli_settle_configuration(cli)) != CUSTODY_OK)
		return r;
	if (cli->cfg.module == NULL || cli->cfg.module[0] == '\0') {
		printf("PKCS#11 module: none configured\n");
		return CUSTODY_OK;
	}
	if ((r = cli_token_spec(cli, &spec)) != CUSTODY_OK ||
	    (r = custody_token_open(&spec, &tok, &cli->err)) != CUSTODY_OK)
		return r;
	r = custody_token_module_describe(tok, &info, &cli->err);
	if (r == CUSTODY_OK) {
		printf("PKCS#11 module %s: %s %u.%u (%s), Cryptoki %u.%u\n",
		       out_safe(cli->cfg.module), out_safe(info.description),
		       info.version_major, info.version_minor,
		       out_safe(info.manufacturer), info.cryptoki_major,
		       info.cryptoki_minor);
		printf("token %s, serial %s\n",
		       out_safe(custody_token_label(tok)),
		       out_safe(custody_token_serial(tok)));
	}
	custody_token_close(tok);
	return r;
}

int
cli_version(struct cli *cli)
{
	printf("custody %s\n", PACKAGE_VERSION);
	print_library_versions();
	if (!cli->verbose)
		return CUSTODY_OK;
	fflush(stdout);	/* before an error on stderr, in order */
	return print_module(cli);
}
