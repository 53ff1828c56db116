/*
 * escape.h — what both the `custody` launcher (launch.c, C library only)
 * and the full command print through: the escaping of terminal text, and
 * the one way an error becomes lines on stderr.
 */
#ifndef CUSTODY_CLI_ESCAPE_H
#define CUSTODY_CLI_ESCAPE_H

#include <stddef.h>

#include <custody/error.h>

/*
 * The one escaping function of terminal output.  Text from certificates,
 * tokens, the store and files (subjects, labels, node names, audit
 * details, messages built from them) goes through it before it is
 * printed: C0 control characters (newline, carriage return, escape, bell,
 * tab...), DEL, the C1 controls (U+0080..U+009F) and bytes that are not
 * UTF-8 are shown as \xHH, so that no such text can steer a terminal or
 * forge a line.  Printable ASCII and other UTF-8 pass unchanged.
 * out_escape writes into dst (size bytes; always NUL-terminated, cut at a
 * character when it does not fit) and returns dst; out_safe returns an
 * escaped copy that lives until 16 more out_safe calls have been made
 * (enough for the arguments of one printf); out_release frees them.
 * JSON output is escaped by jansson instead.
 */
char *out_escape(char *dst, size_t size, const char *src);
const char *out_safe(const char *src);
void out_release(void);

/*
 * The error of command cmd on stderr: "custody: CMD: MESSAGE" (escaped;
 * "failed" when there is none), "hint: HINT" when there is one, and for a
 * usage error without a hint "see: custody CMD --help".
 */
void out_report_error(const char *cmd, const custody_err *err);

#endif
