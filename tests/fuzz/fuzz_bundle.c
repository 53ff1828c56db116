/* fuzz_bundle.c — import files read without a password. */
#include "config.h"

#include "fuzz_bundle.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_bundle_one(data, size, NULL);
	return 0;
}
