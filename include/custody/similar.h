/*
 * custody/similar.h — "did you mean": the name a mistyped word was meant
 * to be, for messages about types, commands and options.
 */
#ifndef CUSTODY_SIMILAR_H
#define CUSTODY_SIMILAR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The number of single-character edits (insert, delete, replace, swap two
 * neighbours) between a and b, ASCII letters compared without case; counts
 * stop at 255. */
unsigned custody_name_distance(const char *a, const char *b);

/* The first of names[0..n) nearest to word, when it is near enough to be
 * a typo of it (1 edit for words of up to 4 characters, 2 up to 8, else
 * 3) and word is not that name already; NULL otherwise. */
const char *custody_name_nearest(const char *word, const char *const *names,
				 size_t n);

#ifdef __cplusplus
}
#endif
#endif
