/*
 * custody/integrity.h — the store's integrity tags, made with the token.
 *
 * A store writer without a token must not be able to decide what custody
 * trusts.  Every row that decides trust carries a tag (custody/store.h)
 * keyed by the token's KEK: the cluster's KEK in a cluster, and in a
 * store without a cluster a KEK that the first writing command creates on
 * its token (custody kek create later adopts it as the cluster's).  The
 * store records the key check value of the KEK that tags it and refuses a
 * token whose KEK differs.
 *
 * custody_integrity_attach makes the store tag what it writes and check
 * what it reads with this token; the token must stay open until
 * custody_integrity_detach (or custody_store_close).
 */
#ifndef CUSTODY_INTEGRITY_H
#define CUSTODY_INTEGRITY_H

#include <custody/error.h>
#include <custody/store.h>
#include <custody/token.h>

#ifdef __cplusplus
extern "C" {
#endif

int custody_integrity_attach(custody_store *st, custody_token *tok,
			     custody_err *err);
void custody_integrity_detach(custody_store *st);

/* The same for a token shared with other threads: borrow lends it for one
 * tag (NULL and err set when it cannot), give_back ends the loan. */
typedef custody_token *(*custody_integrity_borrow_fn)(void *arg,
						      custody_err *err);
typedef void (*custody_integrity_return_fn)(void *arg);
int custody_integrity_attach_lent(custody_store *st,
				  custody_integrity_borrow_fn borrow,
				  custody_integrity_return_fn give_back,
				  void *arg, custody_err *err);

/* The key check value of the KEK that tags the store's rows ("" when it
 * records none yet). */
int custody_integrity_store_kcv(custody_store *st,
				char kcv[CUSTODY_KCV_HEX + 1],
				custody_err *err);

#ifdef __cplusplus
}
#endif
#endif
