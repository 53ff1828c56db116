/*
 * cmd_agent.c — `custody agent`: serve signatures, certificates and JWTs
 * of the token to local users over a Unix socket (custody/agent.h does
 * the work); `custody agent --status`: is one up, and what may I use.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <custody/agent.h>
#include <custody/agent_client.h>
#include <custody/agent_wire.h>
#include <custody/log.h>

#include "cli.h"

enum {
	OPT_FOREGROUND = OPT_FIRST_COMMAND_OPTION,
	OPT_LISTEN,
	OPT_STATUS,
};

const char cmd_agent_usage[] =
	"custody agent [--foreground] [--listen PATH] [-v]\n"
	"custody agent --status [--listen PATH]\n"
	"\n"
	"Serves the token to local users: logs in once (token.pin-source), keeps a\n"
	"pool of sessions, and signs digests, returns certificates and issues JWTs\n"
	"with the keys assigned to types, for the users and groups [allow TYPE] in\n"
	"custody.conf names (nobody else), over the Unix socket [agent] listen\n"
	"(default " CUSTODY_AGENT_LISTEN "), or the sockets systemd passes\n"
	"(custody-agent.socket). Runs in the foreground (under systemd, or\n"
	"--foreground in a terminal); SIGHUP reloads the allow lists and timeouts,\n"
	"SIGTERM finishes the requests in flight and exits 0. -v logs each request\n"
	"(kind, caller, outcome; never a value).\n"
	"\n"
	"  --foreground     stay in the foreground (the only way it runs)\n"
	"  --listen PATH    the socket (over [agent] listen and systemd's)\n"
	"  --status         connect: up (its pid, and what this user may use:\n"
	"                   type, identity, which, thumbprint) exit 0, or down exit 1\n"
	"\n"
	"See custody-agent(8).\n";

struct agent_opts {
	int foreground, status;
	const char *listen;
};

const char *
cli_agent_path(const struct cli *cli, const char *given)
{
	const char *env = getenv("CUSTODY_AGENT");

	if (given != NULL)
		return given;
	if (cli->cfg.agent.socket[0] != '\0' && strcmp(cli->cfg.agent.socket, "none") != 0)
		return cli->cfg.agent.socket;
	if (env != NULL && env[0] == '/')
		return env;
	return custody_agent_listen_path(&cli->cfg, NULL);
}

static int
connect_to(const char *path, char *why, size_t why_size)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(why, why_size, "the path is too long");
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		snprintf(why, why_size, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int
cli_agent_probe(const char *path, long *pid, char *why, size_t why_size)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd = connect_to(path, why, why_size);

	if (fd < 0)
		return 0;
	*pid = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? (long)cred.pid : -1;
	close(fd);
	return 1;
}

/* One LIST request to the agent at path (custody/agent_client.h). */
static int
list_call(struct cli *cli, const char *path, custody_agent_msg *resp)
{
	custody_agent_conn *conn = NULL;
	custody_agent_msg req;
	int r;

	memset(&req, 0, sizeof(req));
	req.kind = CUSTODY_AGENT_LIST_REQUEST;
	if ((r = custody_agent_connect(path, 5000, &conn, &cli->err)) == CUSTODY_OK)
		r = custody_agent_call(conn, &req, resp, &cli->err);
	custody_agent_close(conn);
	return r;
}

static int
agent_status(struct cli *cli, const char *path)
{
	static const char *const which[] = {"current", "previous", "pending"};
	custody_agent_msg resp;
	char why[256];
	long pid = -1;
	size_t i;
	int r;

	memset(&resp, 0, sizeof(resp));
	if (!cli_agent_probe(path, &pid, why, sizeof(why))) {
		printf("agent: down at %s (%s)\n", out_safe(path), why);
		return CLI_EXIT(1);
	}
	printf("agent: up at %s (pid %ld)\n", out_safe(path), pid);
	if ((r = list_call(cli, path, &resp)) != CUSTODY_OK)
		return r;
	if (resp.u.list_response.n_entries == 0)
		printf("this user may use nothing through it (see [allow TYPE] in custody.conf)\n");
	for (i = 0; i < resp.u.list_response.n_entries; i++) {
		const custody_agent_list_entry *e = &resp.u.list_response.entries[i];

		printf("%-24s %-16s %-8s %s\n", e->type, e->identity,
		       e->which <= CUSTODY_AGENT_PENDING ? which[e->which] : "?", e->thumbprint);
	}
	custody_agent_msg_clear(&resp);
	return CUSTODY_OK;
}

/* The agent logs from its worker threads: main.c's handler escapes
 * through out_safe's shared slots, which one thread at a time may use.
 * This one escapes into its own buffer and writes each line whole. */
static pthread_mutex_t log_mx = PTHREAD_MUTEX_INITIALIZER;

static void
agent_log(enum custody_log_level level, const char *line, void *ctx)
{
	const struct cli *cli = ctx;
	char safe[4 * 1024 + 1];

	if ((level == CUSTODY_LOG_DEBUG && !cli->verbose) ||
	    (level == CUSTODY_LOG_STEP && cli->quiet))
		return;
	out_escape(safe, sizeof(safe), line);
	pthread_mutex_lock(&log_mx);
	fprintf(stderr, "%s%s\n", level == CUSTODY_LOG_WARN ? "custody: warning: " :
		level == CUSTODY_LOG_DEBUG ? "custody: " : "", safe);
	pthread_mutex_unlock(&log_mx);
}

/* custody_agent_reload_fn: the configuration settled as at start, on a
 * copy of the command's state (the agent's worker calls it). */
static int
reload_config(void *ctx, custody_config *out, custody_err *err)
{
	struct cli again = *(const struct cli *)ctx;
	int r;

	custody_config_init(&again.cfg);
	custody_err_clear(&again.err);
	if ((r = cli_settle_configuration(&again)) != CUSTODY_OK) {
		*err = again.err;
		custody_config_clear(&again.cfg);
		return r;
	}
	*out = again.cfg;
	return CUSTODY_OK;
}

int
cmd_agent(struct cli *cli, int argc, char **argv)
{
	struct agent_opts o;
	const struct cli_opt opts[] = {
		CLI_OPT_FLAG("foreground", OPT_FOREGROUND, &o.foreground),
		CLI_OPT_TEXT("listen", OPT_LISTEN, &o.listen),
		CLI_OPT_FLAG("status", OPT_STATUS, &o.status),
		{NULL, 0, 0, NULL, NULL, NULL},
	};
	custody_agent_options ao;
	int r;

	memset(&o, 0, sizeof(o));
	if ((r = cli_parse(cli, argc, argv, opts, "", NULL, NULL)) != CUSTODY_OK)
		return r;
	if ((r = cli_check_output(cli, 1u << OUT_TABLE)) != CUSTODY_OK)
		return r;
	if (o.status)
		return agent_status(cli, cli_agent_path(cli, o.listen));
	/* The agent signs itself: CUSTODY_AGENT (a client's setting) must
	 * not send its signer, or a reload's settling, to an agent. */
	unsetenv("CUSTODY_AGENT");
	memset(&ao, 0, sizeof(ao));
	ao.listen = o.listen;
	ao.node = cli->node;
	ao.verbose = cli->verbose;
	ao.reload = reload_config;
	ao.reload_ctx = cli;
	custody_log_set_handler(agent_log, cli);
	return custody_agent_serve(&cli->cfg, &ao, &cli->err);
}
