/*
 * custody/error.h — the one error idiom of libcustody.
 *
 * Every fallible function returns an int status (CUSTODY_OK or one of the
 * CUSTODY_E* codes below) and, when it fails, fills the caller's
 * custody_err with the same code and a message of the form "WHAT: WHY"
 * (for example "cannot open /tmp/a.p12: No such file or directory").
 * The `custody` command prints it as "custody: CMD: WHAT: WHY", then the
 * optional hint on a second line.
 *
 * A custody_err owns no heap memory; it may live on the stack.  A NULL
 * custody_err pointer is accepted everywhere and means "caller does not
 * want the message".
 */
#ifndef CUSTODY_ERROR_H
#define CUSTODY_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum custody_status {
	CUSTODY_OK = 0,
	CUSTODY_EFAIL = 1,	/* failed or refused; nothing was changed */
	CUSTODY_EUSAGE = 2,	/* bad argument: option, time, name, ...  */
	CUSTODY_ENOTFOUND = 3,	/* nothing assigned / no such thumbprint  */
	CUSTODY_ECONFLICT = 4,	/* a concurrent change was detected       */
	CUSTODY_EPASSWORD = 5,	/* a password is missing or wrong         */
	CUSTODY_EPIN = 6,	/* PIN refused, or the token is locked    */
};

typedef struct custody_err {
	int code;
	char msg[1024];
	char hint[512];
	unsigned long ckr;	/* the PKCS#11 CK_RV behind the error; 0: none */
} custody_err;

#if defined(__GNUC__)
#define CUSTODY_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CUSTODY_PRINTF(a, b)
#endif

/* Sets code and message; returns code so that `return custody_err_set(...)`
 * and `r = custody_err_set(...); goto out;` both read naturally. */
int custody_err_set(custody_err *err, int code, const char *fmt, ...)
	CUSTODY_PRINTF(3, 4);

/* As custody_err_set, then appends ": " and the reason of the newest
 * OpenSSL error on this thread (and clears OpenSSL's error queue). */
int custody_err_openssl(custody_err *err, int code, const char *fmt, ...)
	CUSTODY_PRINTF(3, 4);

/* Sets the hint line (keeps code and message). Returns err->code. */
int custody_err_hint(custody_err *err, const char *fmt, ...)
	CUSTODY_PRINTF(2, 3);

/* Prefixes the message with "CONTEXT: " (keeps code and hint). */
int custody_err_prefix(custody_err *err, const char *fmt, ...)
	CUSTODY_PRINTF(2, 3);

void custody_err_clear(custody_err *err);

/* The exit status of the `custody` command for an error code:
 * EUSAGE → 2, ENOTFOUND → 3, everything else → 1, OK → 0. */
int custody_err_exit_status(int code);

#ifdef __cplusplus
}
#endif
#endif
