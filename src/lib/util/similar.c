/* util/similar.c — the nearest name to a mistyped word (optimal string
 * alignment distance: Levenshtein plus the swap of two neighbours). */
#include "config.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <custody/similar.h>

#define LONGEST 64	/* longer words are compared on their first 64 */
#define FAR 255

static unsigned
min3(unsigned a, unsigned b, unsigned c)
{
	unsigned m = a < b ? a : b;

	return m < c ? m : c;
}

static int
same(char a, char b)
{
	return tolower((unsigned char)a) == tolower((unsigned char)b);
}

unsigned
custody_name_distance(const char *a, const char *b)
{
	/* Three rows of the table: two back, one back, this one. */
	unsigned rows[3][LONGEST + 1], *two, *one, *row, *t;
	size_t la = strnlen(a, LONGEST), lb = strnlen(b, LONGEST), i, j;

	two = rows[0];
	one = rows[1];
	row = rows[2];
	for (j = 0; j <= lb; j++)
		one[j] = (unsigned)j;
	for (i = 1; i <= la; i++) {
		row[0] = (unsigned)i;
		for (j = 1; j <= lb; j++) {
			row[j] = min3(one[j] + 1, row[j - 1] + 1,
				      one[j - 1] + !same(a[i - 1], b[j - 1]));
			if (i > 1 && j > 1 && same(a[i - 1], b[j - 2]) &&
			    same(a[i - 2], b[j - 1]) && two[j - 2] + 1 < row[j])
				row[j] = two[j - 2] + 1;
		}
		t = two;
		two = one;
		one = row;
		row = t;
	}
	return one[lb] < FAR ? one[lb] : FAR;
}

const char *
custody_name_nearest(const char *word, const char *const *names, size_t n)
{
	size_t len = strlen(word), i;
	unsigned allowed = len <= 4 ? 1 : len <= 8 ? 2 : 3, best = FAR, d;
	const char *nearest = NULL;

	for (i = 0; i < n; i++) {
		if (names[i] == NULL)
			continue;
		if (strcasecmp(word, names[i]) == 0)
			return NULL;
		d = custody_name_distance(word, names[i]);
		if (d < best) {
			best = d;
			nearest = names[i];
		}
	}
	return best <= allowed ? nearest : NULL;
}
