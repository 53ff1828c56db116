/* util/log.c — warnings and narration handed to the application's handler. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include <custody/log.h>

static custody_log_fn log_fn;
static void *log_ctx;

void
custody_log_set_handler(custody_log_fn fn, void *ctx)
{
	log_fn = fn;
	log_ctx = ctx;
}

void
custody_log(enum custody_log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (log_fn == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_fn(level, line, log_ctx);
}
