/*
 * custody/hook.h — running one operator command (a rollover's post-stage
 * or post-roll hook) and saying what happened, for the audit log.
 *
 * The command runs under /bin/sh -c with stdin from /dev/null, its stdout
 * and stderr into one pipe read by the caller's process, no other
 * descriptor of the caller, in a process group of its own, with the
 * caller's environment minus the names it asks to drop (the PIN variables)
 * plus the names it sets (type, identity, thumbprints).  It runs to its
 * end or to the timeout, when its whole group is sent SIGTERM, then
 * SIGKILL 2 s later.  What the command did never changes what custody did:
 * the caller only records the result.
 *
 * Memory: the result is a plain struct the caller owns; nothing to free.
 * No global state: no signal handler is installed, only the child's pid
 * is waited for.  A caller that ignores SIGCHLD (children reaped by the
 * kernel) cannot learn the exit status: custody_hook_run says so.
 */
#ifndef CUSTODY_HOOK_H
#define CUSTODY_HOOK_H

#include <stddef.h>

#include <custody/error.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CUSTODY_HOOK_OUTPUT 512		/* bytes of output kept for the audit log */
#define CUSTODY_HOOK_TIMEOUT 60		/* seconds, when the caller gives none     */
#define CUSTODY_HOOK_GRACE 2		/* seconds between SIGTERM and SIGKILL     */

typedef struct custody_hook_result {
	int status;		/* exit status 0..255; 128+N when killed by
				   signal N; -1 could not start             */
	int signal;		/* N when killed by signal N, else 0        */
	int timed_out;		/* its group was killed after the timeout   */
	int timeout_seconds;	/* the timeout that applied                 */
	/* The first bytes of stdout and stderr together, as text safe to log
	 * and show: control bytes other than \n and \t, and bytes that are
	 * not valid UTF-8, each become '?' (C1 controls too); the trailing
	 * newlines are dropped; "…" ends it when the output was longer.
	 * When the command could not start: why. */
	char output[CUSTODY_HOOK_OUTPUT + 1];
	size_t output_len_total;	/* bytes the command wrote in all */
} custody_hook_result;

/* Runs `command` (see above).  `set`: "NAME=value" strings, NULL-terminated
 * (NULL: none), each NAME [A-Z_][A-Z0-9_]*, replacing a variable of the
 * same name; `unset`: names dropped from the environment, NULL-terminated
 * (NULL: none).  timeout_seconds <= 0 means CUSTODY_HOOK_TIMEOUT.
 *
 * Returns CUSTODY_OK when the command ran, whatever its exit status (res
 * says); CUSTODY_EUSAGE for an empty command or a bad name in `set`
 * (nothing runs); CUSTODY_EFAIL when it could not be started (pipe, fork,
 * /bin/sh) or its end could not be learnt: res->status is then -1 and
 * res->output says why.  Returns once the shell has ended and every
 * process still holding the output pipe has closed it (or has been killed
 * by the timeout); a process the command leaves running with its output
 * sent elsewhere is not waited for (nor killed, unless the timeout fell). */
int custody_hook_run(const char *command, const char *const *set,
		     const char *const *unset, int timeout_seconds,
		     custody_hook_result *res, custody_err *err);

/* One line for the audit log's detail, NUL-terminated in buf (size > 0):
 *   "post-roll exited 0: refreshed 3 partners"
 *   "post-roll killed by signal 9: ..."
 *   "post-roll killed after 60 s (timeout): ..."
 *   "post-roll exited 0, what it left running killed after 60 s (timeout)"
 *   "post-roll could not start: ..."
 * where `name` is the hook's name and the output's lines are joined with
 * " | ", its tabs made spaces.  Cut to fit `size` on a character
 * boundary, "…" marking the cut when there is room for it. */
void custody_hook_describe(const char *name, const custody_hook_result *res,
			   char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
