/* store/pg_prepared.c — the statements a long-lived PostgreSQL connection
 * keeps prepared (see pg_prepared.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_prepared.h"

/* More than the store has statements: a full table sends texts. */
#define PREPARED_MAX 256

struct pg_prepared {
	/* The texts prepared in this session, in the order they were: the
	 * index is the name's.  generation changes when the names are
	 * forgotten, so that a name never returns with another text. */
	char *sql[PREPARED_MAX];
	size_t n;
	unsigned long generation;
};

struct pg_prepared *
pg_prepared_new(void)
{
	return calloc(1, sizeof(struct pg_prepared));
}

void
pg_prepared_forget(struct pg_prepared *pp)
{
	size_t i;

	if (pp == NULL)
		return;
	for (i = 0; i < pp->n; i++) {
		free(pp->sql[i]);
		pp->sql[i] = NULL;
	}
	pp->n = 0;
	pp->generation++;
}

void
pg_prepared_free(struct pg_prepared *pp)
{
	pg_prepared_forget(pp);
	free(pp);
}

static void
name_of(const struct pg_prepared *pp, size_t i, char name[48])
{
	snprintf(name, 48, "custody_%lu_%zu", pp->generation, i);
}

/* The index of sql's name, -1 when it is not prepared. */
static long
find(const struct pg_prepared *pp, const char *sql)
{
	size_t i;

	for (i = 0; i < pp->n; i++)
		if (pp->sql[i] == sql || strcmp(pp->sql[i], sql) == 0)
			return (long)i;
	return -1;
}

/* 1 when the server no longer has what a name stood for: the name is
 * unknown (a pooler's other connection, DISCARD ALL) or its plan's
 * result changed (a schema upgrade by another process). */
static int
names_lost(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return state != NULL && (strcmp(state, "26000") == 0 ||
				 strcmp(state, "0A000") == 0);
}

PGresult *
pg_prepared_exec(struct pg_prepared *pp, PGconn *conn, const char *sql, int n,
		 const char *const *values, const int *lengths,
		 const int *formats)
{
	char name[48];
	PGresult *res;
	long i;
	int attempt;

	for (attempt = 0; pp != NULL && attempt < 2; attempt++) {
		if ((i = find(pp, sql)) < 0) {
			if (pp->n == PREPARED_MAX ||
			    (pp->sql[pp->n] = strdup(sql)) == NULL)
				break;
			name_of(pp, pp->n, name);
			res = PQprepare(conn, name, sql, n, NULL);
			if (PQresultStatus(res) != PGRES_COMMAND_OK) {
				free(pp->sql[pp->n]);
				pp->sql[pp->n] = NULL;
				return res;	/* what the text would fail with */
			}
			PQclear(res);
			i = (long)pp->n++;
		}
		name_of(pp, (size_t)i, name);
		res = PQexecPrepared(conn, name, n, values, lengths, formats, 0);
		if (!names_lost(res))
			return res;
		pg_prepared_forget(pp);
		/* Inside a transaction the failure ended it: the caller
		 * sees it.  Outside, prepare once more. */
		if (PQtransactionStatus(conn) != PQTRANS_IDLE)
			return res;
		PQclear(res);
	}
	return PQexecParams(conn, sql, n, NULL, values, lengths, formats, 0);
}
