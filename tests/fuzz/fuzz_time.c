/* fuzz_time.c — custody_time_parse, the times users type (--effective,
 * --at ...), and its round trip through custody_time_format. */
#include "config.h"

#include <custody/timefmt.h>

#include "fuzz_common.h"

/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: what the shown form
 * can write. */
#define SHOWN_MIN INT64_C(-62167219200)
#define SHOWN_MAX INT64_C(253402300799)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_string(data, size);
	char shown[CUSTODY_TIME_TEXT];
	custody_err err;
	int64_t t = 0, again = 0;
	int r;

	custody_err_clear(&err);
	r = custody_time_parse(text, &t, &err);
	fuzz_note("custody_time_parse", r, &err);
	if (r != CUSTODY_OK) {
		FUZZ_EXPECT(r == CUSTODY_EUSAGE);
		FUZZ_EXPECT(fuzz_err_is(&err, CUSTODY_EUSAGE, CUSTODY_EUSAGE));
		FUZZ_EXPECT(strncmp(err.msg, "invalid time '", 14) == 0);
		goto out;
	}
	custody_time_format(t, shown);
	FUZZ_EXPECT(strlen(shown) == CUSTODY_TIME_TEXT - 1);
	/* What is shown reads back as the same instant. */
	if (t >= SHOWN_MIN && t <= SHOWN_MAX) {
		FUZZ_EXPECT(custody_time_parse(shown, &again, &err) ==
			    CUSTODY_OK);
		FUZZ_EXPECT(again == t);
	}
out:
	free(text);
	return 0;
}
