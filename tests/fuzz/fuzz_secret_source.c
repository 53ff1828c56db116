/* fuzz_secret_source.c — custody_secret_source_check, the PIN and
 * password sources of the command line, the environment and the
 * configuration file.  Only the form is checked: nothing is read. */
#include "config.h"

#include <custody/secret.h>

#include "fuzz_common.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *source = fuzz_string(data, size);
	custody_err err;
	int r;

	custody_err_clear(&err);
	r = custody_secret_source_check(source, &err);
	fuzz_note("custody_secret_source_check", r, &err);
	if (r == CUSTODY_OK)
		FUZZ_EXPECT(strncmp(source, "file:", 5) == 0 ||
			    strncmp(source, "env:", 4) == 0 ||
			    strncmp(source, "fd:", 3) == 0 ||
			    strcmp(source, "prompt") == 0);
	else
		FUZZ_EXPECT(fuzz_err_is(&err, CUSTODY_EUSAGE, CUSTODY_EUSAGE));
	free(source);
	return 0;
}
