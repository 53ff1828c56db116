/* fuzz_bundle_password.c — import files read with the password "fuzz"
 * (the password of the encrypted seeds in corpus/bundle_password/). */
#include "config.h"

#include "fuzz_bundle.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_bundle_one(data, size, "fuzz");
	return 0;
}
