/*
 * fuzz_common.h — what the libFuzzer harnesses of tests/fuzz/ share.
 *
 * Each harness feeds outside bytes to one parser of libcustody and checks
 * the promises its header makes (error codes, "nothing returned on
 * failure", round trips).  A broken promise aborts, so libFuzzer keeps
 * the input as a crash artifact like any memory error.
 */
#ifndef CUSTODY_FUZZ_COMMON_H
#define CUSTODY_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <custody/error.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Stops the run with what was expected: libFuzzer saves the input. */
#define FUZZ_EXPECT(cond)						\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "%s:%d: broken promise: %s\n",	\
				__FILE__, __LINE__, #cond);		\
			abort();					\
		}							\
	} while (0)

/* The bytes as a C string (cut at the first NUL, as a C caller would
 * see them); aborts when out of memory. */
static inline char *
fuzz_string(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	FUZZ_EXPECT(s != NULL);
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* An error as the library promises to fill it: one of the given codes
 * and a message that says something. */
static inline int
fuzz_err_is(const custody_err *err, int code_a, int code_b)
{
	return (err->code == code_a || err->code == code_b) &&
	       err->msg[0] != '\0' && memchr(err->msg, '\0',
					     sizeof(err->msg)) != NULL;
}

/* With FUZZ_VERBOSE=1 in the environment (replaying seeds or an
 * artifact by hand), each input's outcome is printed on stderr. */
static inline void
fuzz_note(const char *what, int r, const custody_err *err)
{
	static int verbose = -1;

	if (verbose < 0)
		verbose = getenv("FUZZ_VERBOSE") != NULL &&
			  strcmp(getenv("FUZZ_VERBOSE"), "1") == 0;
	if (verbose)
		fprintf(stderr, "%s: %d %s%s%s\n", what, r,
			r == CUSTODY_OK ? "ok" : err->msg,
			r != CUSTODY_OK && err->hint[0] != '\0' ? " / hint: " : "",
			r != CUSTODY_OK ? err->hint : "");
}

#endif
