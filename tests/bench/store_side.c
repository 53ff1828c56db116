/*
 * store_side.c — the store's side of a change, with N simulated nodes
 * that already hold every key (tests/bench/propagation.sh runs it).
 *
 *   store_side CONNINFO NODES
 *
 * Opens NODES connections to the store, each as a node does for
 * `custody sync --watch`: LISTEN custody_changes, and on every wake one
 * query round (the generation and the global OAuthTokenIssuer key, what a
 * node reads to know whether it must sync) and, when the key is new to
 * it, its report (one statement; a report notifies nobody).  No token, no unwrap: what is left is the
 * store's cost — connections, NOTIFY fan-out, queries, writes — which a
 * real cluster pays on the server while each node unwraps on its own CPU.
 *
 * Prints "ready" once every node listens, then for every new key
 * "reported THUMBPRINT MS": the wall-clock millisecond at which the last
 * of the NODES nodes wrote its report.  Ends at EOF on standard input.
 */
#include "config.h"

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

struct sim {
	PGconn *conn;
	char name[16];
	char held[64];		/* the key it last reported */
};

static int64_t
wall_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int
command(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
		 PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		fprintf(stderr, "store_side: %s: %s", sql, PQerrorMessage(c));
	PQclear(res);
	return ok;
}

/* The wake of one node: the query round, and its report when the key is
 * new to it.  1 when it reported. */
static int
wake(struct sim *s, char *key, size_t size)
{
	const char *params[2];
	PGresult *res;
	int reported = 0;

	res = PQexec(s->conn, "SELECT (SELECT value FROM cluster_meta WHERE name = 'generation'), "
			      "(SELECT current_thumbprint FROM assignments WHERE type = "
			      "'OAuthTokenIssuer' AND identity = 'global')");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    PQgetisnull(res, 0, 1)) {
		PQclear(res);
		return 0;
	}
	snprintf(key, size, "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	if (strcmp(key, s->held) == 0)
		return 0;
	params[0] = s->name;
	params[1] = key;
	res = PQexecParams(s->conn,
			   "INSERT INTO node_reports (node, thumbprint, held, detail, time) "
			   "VALUES ($1, $2, true, 'held', extract(epoch FROM now())::bigint) "
			   "ON CONFLICT (node, thumbprint) DO UPDATE SET held = true, "
			   "time = excluded.time",
			   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_COMMAND_OK) {
		snprintf(s->held, sizeof(s->held), "%s", key);
		reported = 1;
	} else {
		fprintf(stderr, "store_side: report: %s", PQerrorMessage(s->conn));
	}
	PQclear(res);
	return reported;
}

static int
open_all(const char *conninfo, struct sim *sims, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		snprintf(sims[i].name, sizeof(sims[i].name), "sim%04d", i + 1);
		sims[i].conn = PQconnectdb(conninfo);
		if (PQstatus(sims[i].conn) != CONNECTION_OK) {
			fprintf(stderr, "store_side: connection %d: %s", i + 1,
				PQerrorMessage(sims[i].conn));
			return 0;
		}
		if (!command(sims[i].conn, "LISTEN custody_changes"))
			return 0;
	}
	return 1;
}

/* Waits for notifications on every connection and standard input; a
 * node that was notified wakes.  Returns at EOF on standard input. */
static void
serve(struct sim *sims, int n)
{
	struct pollfd *fds = calloc((size_t)n + 1, sizeof(*fds));
	char key[64], round[64] = "";
	int i, done = 0;
	PGnotify *note;

	if (fds == NULL)
		return;
	for (i = 0; i < n; i++) {
		fds[i].fd = PQsocket(sims[i].conn);
		fds[i].events = POLLIN;
	}
	fds[n].fd = STDIN_FILENO;
	fds[n].events = POLLIN;
	for (;;) {
		if (poll(fds, (nfds_t)n + 1, -1) < 0)
			break;
		if (fds[n].revents != 0) {
			char buf[64];

			if (read(STDIN_FILENO, buf, sizeof(buf)) <= 0)
				break;
		}
		for (i = 0; i < n; i++) {
			int any = 0;

			if (fds[i].revents == 0 || PQconsumeInput(sims[i].conn) != 1)
				continue;
			while ((note = PQnotifies(sims[i].conn)) != NULL) {
				any = 1;
				PQfreemem(note);
			}
			if (!any || !wake(&sims[i], key, sizeof(key)))
				continue;
			if (strcmp(key, round) != 0) {
				snprintf(round, sizeof(round), "%s", key);
				done = 0;
			}
			if (++done == n) {
				printf("reported %s %lld\n", round, (long long)wall_ms());
				fflush(stdout);
			}
		}
	}
	free(fds);
}

int
main(int argc, char **argv)
{
	struct sim *sims;
	int n, i, ok;

	if (argc != 3 || (n = atoi(argv[2])) < 1 || n > 100000) {
		fprintf(stderr, "usage: store_side CONNINFO NODES\n");
		return 2;
	}
	if ((sims = calloc((size_t)n, sizeof(*sims))) == NULL)
		return 1;
	ok = open_all(argv[1], sims, n);
	if (ok) {
		/* What they hold now: each reads it once, as at its start. */
		for (i = 0; i < n; i++) {
			char key[64];

			wake(&sims[i], key, sizeof(key));
		}
		printf("ready\n");
		fflush(stdout);
		serve(sims, n);
	}
	for (i = 0; i < n; i++)
		PQfinish(sims[i].conn);
	free(sims);
	return ok ? 0 : 1;
}
