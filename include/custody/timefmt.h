/*
 * custody/timefmt.h — ISO 8601 times as the command line accepts and
 * shows them.  Accepted: "YYYY-MM-DD" (00:00 UTC) and
 * "YYYY-MM-DDTHH:MM[:SS](Z|±HH:MM|±HHMM)".  Shown: "YYYY-MM-DDTHH:MM:SSZ".
 */
#ifndef CUSTODY_TIMEFMT_H
#define CUSTODY_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>
#include <custody/error.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CUSTODY_TIME_TEXT 21	/* "YYYY-MM-DDTHH:MM:SSZ" + NUL */

/* Anything else (including out-of-range fields such as 2031-02-30) is
 * EUSAGE with a message that names the accepted forms; a time of day
 * without a zone, with one that says so. */
int custody_time_parse(const char *text, int64_t *out, custody_err *err);

/* 1 when text is a date alone ("YYYY-MM-DD"), which custody_time_parse
 * reads as 00:00 UTC: callers tell the user which instant that is. */
int custody_time_is_date(const char *text);

/* Writes the UTC form into buf and returns buf. */
char *custody_time_format(int64_t t, char buf[CUSTODY_TIME_TEXT]);

/* A span of seconds as "2h", "23h59m", "1h0m5s", "45s", "-30m" (hours,
 * minutes, seconds), into buf (32 bytes hold any). */
void custody_duration_format(int64_t seconds, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
