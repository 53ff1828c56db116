/* util/error_openssl.c — custody_err_openssl (see custody/error.h), apart
 * from error.c so that what links only the C library's part of the error
 * idiom does not load libcrypto. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include <custody/error.h>

int
custody_err_openssl(custody_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	unsigned long e;
	char reason[256] = "";
	char msg[sizeof(err->msg)];
	int n;

	/* The newest error says most about what went wrong. */
	e = ERR_peek_last_error();
	if (e != 0)
		ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	if (err == NULL)
		return code;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		msg[0] = '\0';
	if (reason[0] != '\0')
		return custody_err_set(err, code, "%s: %s", msg, reason);
	return custody_err_set(err, code, "%s", msg);
}
