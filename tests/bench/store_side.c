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

/* The query round of a wake, sent without waiting (PQsendQuery): the
 * nodes of a real cluster ask at the same time, each on its own CPU. */
static int
send_round(struct sim *s)
{
	return PQsendQuery(s->conn, "SELECT (SELECT value FROM cluster_meta WHERE name = 'generation'), "
				    "(SELECT current_thumbprint FROM assignments WHERE type = "
				    "'OAuthTokenIssuer' AND identity = 'global')");
}

/* The last result of what was sent on c; its status when it is the one
 * wanted, else -1 (and key untouched). */
static int
take_result(PGconn *c, ExecStatusType want, char *key, size_t size)
{
	PGresult *res;
	int ok = -1;

	while ((res = PQgetResult(c)) != NULL) {
		if (PQresultStatus(res) == want) {
			ok = 0;
			if (key != NULL && PQntuples(res) == 1 && !PQgetisnull(res, 0, 1))
				snprintf(key, size, "%s", PQgetvalue(res, 0, 1));
			else if (key != NULL)
				ok = -1;
		} else {
			fprintf(stderr, "store_side: %s", PQerrorMessage(c));
		}
		PQclear(res);
	}
	return ok;
}

/* Sends the report of s holding key (one statement: a report notifies
 * nobody). */
static int
send_report(struct sim *s, const char *key)
{
	const char *params[2] = { s->name, key };

	return PQsendQueryParams(s->conn,
				 "INSERT INTO node_reports (node, thumbprint, held, detail, time) "
				 "VALUES ($1, $2, true, 'held', extract(epoch FROM now())::bigint) "
				 "ON CONFLICT (node, thumbprint) DO UPDATE SET held = true, "
				 "time = excluded.time",
				 2, NULL, params, NULL, NULL, 0);
}

/* The wakes of the nodes flagged in woke: every query round sent, then
 * every answer read, then every report of a key new to its node sent and
 * its answer read.  Returns how many reported key. */
static int
wake_all(struct sim *sims, int n, const char *woke, char *key, size_t size)
{
	char got[64];
	int i, reported = 0;

	for (i = 0; i < n; i++)
		if (woke[i] && !send_round(&sims[i]))
			fprintf(stderr, "store_side: %s", PQerrorMessage(sims[i].conn));
	for (i = 0; i < n; i++) {
		got[0] = '\0';
		if (!woke[i] || take_result(sims[i].conn, PGRES_TUPLES_OK, got, sizeof(got)) != 0 ||
		    strcmp(got, sims[i].held) == 0 || !send_report(&sims[i], got))
			continue;
		snprintf(sims[i].held, sizeof(sims[i].held), "%s", got);
		snprintf(key, size, "%s", got);
	}
	for (i = 0; i < n; i++)
		if (woke[i] && take_result(sims[i].conn, PGRES_COMMAND_OK, NULL, 0) == 0)
			reported++;
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

/* Waits for notifications on every connection and standard input; the
 * nodes that were notified wake together.  Returns at EOF on standard
 * input. */
static void
serve(struct sim *sims, int n)
{
	struct pollfd *fds = calloc((size_t)n + 1, sizeof(*fds));
	char *woke = calloc((size_t)n, 1);
	char key[64], round[64] = "";
	int i, any, done = 0;
	PGnotify *note;

	for (i = 0; fds != NULL && i < n; i++) {
		fds[i].fd = PQsocket(sims[i].conn);
		fds[i].events = POLLIN;
	}
	while (fds != NULL && woke != NULL) {
		fds[n].fd = STDIN_FILENO;
		fds[n].events = POLLIN;
		if (poll(fds, (nfds_t)n + 1, -1) < 0)
			break;
		if (fds[n].revents != 0 && read(STDIN_FILENO, key, sizeof(key)) <= 0)
			break;
		for (i = 0, any = 0; i < n; i++) {
			woke[i] = 0;
			if (fds[i].revents == 0 || PQconsumeInput(sims[i].conn) != 1)
				continue;
			while ((note = PQnotifies(sims[i].conn)) != NULL) {
				woke[i] = 1;
				PQfreemem(note);
			}
			any |= woke[i];
		}
		key[0] = '\0';
		if (!any)
			continue;
		i = wake_all(sims, n, woke, key, sizeof(key));
		if (key[0] != '\0' && strcmp(key, round) != 0) {
			snprintf(round, sizeof(round), "%s", key);
			done = 0;
		}
		done += i;
		if (i > 0 && done == n) {
			printf("reported %s %lld\n", round, (long long)wall_ms());
			fflush(stdout);
		}
	}
	free(woke);
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
		char *all = malloc((size_t)n), key[64];

		if (all != NULL) {
			memset(all, 1, (size_t)n);
			wake_all(sims, n, all, key, sizeof(key));
			free(all);
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
