/* store/pg_prepared.h — the statements a long-lived PostgreSQL connection
 * keeps prepared.
 *
 * A statement sent with its text (PQexecParams) is parsed, analysed and
 * planned by the server at every execution; for custody's short
 * statements that is about half of what the server spends on them.  A
 * connection that runs the same statements again and again (the one a
 * `sync --watch` listens on) prepares each on first use and then sends
 * only its name and values.
 *
 * Only a connection of its own may keep statements: a transaction-pooling
 * PgBouncer hands each transaction another server connection, where the
 * name means nothing (the same pooler cannot carry LISTEN either).  A
 * name the server no longer knows (SQLSTATE 26000) or a plan whose result
 * changed under a schema upgrade makes the connection forget every name:
 * the next use prepares again.
 */
#ifndef CUSTODY_STORE_PG_PREPARED_H
#define CUSTODY_STORE_PG_PREPARED_H

#include <libpq-fe.h>

struct pg_prepared;

/* NULL when out of memory (the caller then sends texts). */
struct pg_prepared *pg_prepared_new(void);
void pg_prepared_free(struct pg_prepared *pp);

/* A new session (a reconnection) has none of the names: forget them. */
void pg_prepared_forget(struct pg_prepared *pp);

/* Runs sql with n values, prepared under its name (prepared now on first
 * use), as PQexecParams would; the result is the caller's to PQclear.
 * With pp NULL (a connection that keeps nothing), or a statement that
 * cannot be kept (the table of names is full), it is sent as text. */
PGresult *pg_prepared_exec(struct pg_prepared *pp, PGconn *conn,
			   const char *sql, int n, const char *const *values,
			   const int *lengths, const int *formats);

#endif
