/*
 * custody/log.h — warnings and narration from the library.
 *
 * The library never writes to stdout/stderr itself: it hands each line to
 * the handler the application installed (the `custody` command prints
 * warnings as "custody: warning: ..." on stderr and narration with -v or
 * during ceremonies).  Without a handler, lines are dropped.  Never pass a
 * secret to these functions.
 */
#ifndef CUSTODY_LOG_H
#define CUSTODY_LOG_H

#include <custody/error.h>

#ifdef __cplusplus
extern "C" {
#endif

enum custody_log_level {
	CUSTODY_LOG_WARN = 0,	/* something the user should know          */
	CUSTODY_LOG_STEP = 1,	/* a step of a ceremony: about to / did    */
	CUSTODY_LOG_DEBUG = 2,	/* detail for -v                           */
};

typedef void (*custody_log_fn)(enum custody_log_level level, const char *line,
			       void *ctx);

/* Installs the handler (NULL removes it). Not thread-safe: call at start. */
void custody_log_set_handler(custody_log_fn fn, void *ctx);

void custody_log(enum custody_log_level level, const char *fmt, ...)
	CUSTODY_PRINTF(2, 3);

#define custody_warn(...) custody_log(CUSTODY_LOG_WARN, __VA_ARGS__)
#define custody_step(...) custody_log(CUSTODY_LOG_STEP, __VA_ARGS__)
#define custody_debug(...) custody_log(CUSTODY_LOG_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
