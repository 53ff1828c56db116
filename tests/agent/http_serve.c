/*
 * http_serve.c — the agent's metadata server alone, for the tests
 * (tests/token/cli_metadata_http.sh): a ctx from the configuration
 * custody reads (CUSTODY_CONFIG and the environment), the server on its
 * [agent] http-listen, until SIGTERM or SIGINT; SIGHUP reads the
 * configuration again and reloads the server (as the agent does).
 * Prints "listening PORT" once it accepts, "reloaded" after each reload;
 * errors on stderr.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <custody/agent_http.h>
#include <custody/config.h>
#include <custody/log.h>
#include <custody/signer.h>

static void
log_line(enum custody_log_level level, const char *line, void *ctx)
{
	(void)ctx;
	if (level == CUSTODY_LOG_WARN)
		fprintf(stderr, "http_serve: warning: %s\n", line);
}

static int
load(custody_config *cfg, custody_err *err)
{
	custody_config_init(cfg);
	return custody_config_settle(cfg, NULL, err);
}

/* Until SIGTERM/SIGINT: SIGHUP reloads.  Returns the exit status. */
static int
serve(custody_agent_http **srv, custody_ctx *ctx)
{
	custody_config cfg;
	custody_err err = {0};
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	for (;;) {
		if (sigwait(&set, &sig) != 0 || sig != SIGHUP)
			return 0;
		if (load(&cfg, &err) != CUSTODY_OK ||
		    custody_agent_http_reload(srv, &cfg, ctx, &err) != CUSTODY_OK)
			fprintf(stderr, "http_serve: reload: %s\n", err.msg);
		else
			printf("reloaded %u\n", custody_agent_http_port(*srv));
		fflush(stdout);
		custody_config_clear(&cfg);
	}
}

int
main(void)
{
	custody_config cfg;
	custody_agent_http *srv = NULL;
	custody_ctx *ctx = NULL;
	custody_err err = {0};
	sigset_t set;
	int status = 1;

	/* The server's thread inherits the mask: the signals come here. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	custody_log_set_handler(log_line, NULL);
	if (load(&cfg, &err) != CUSTODY_OK ||
	    custody_ctx_new(&cfg, NULL, &ctx, &err) != CUSTODY_OK ||
	    custody_agent_http_start(&cfg, ctx, &srv, &err) != CUSTODY_OK) {
		fprintf(stderr, "http_serve: %s\n", err.msg);
		goto out;
	}
	if (srv == NULL) {
		fprintf(stderr, "http_serve: no [agent] http-listen: nothing to serve\n");
		goto out;
	}
	printf("listening %u\n", custody_agent_http_port(srv));
	fflush(stdout);
	status = serve(&srv, ctx);
out:
	custody_agent_http_stop(srv);
	custody_ctx_free(ctx);
	custody_config_clear(&cfg);
	return status;
}
