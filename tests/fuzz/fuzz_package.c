/* fuzz_package.c — the key package of `custody import --package`: a file
 * that comes from another machine.  Whatever parses must format to a text
 * that parses to the same package. */
#include "config.h"

#include <custody/cluster.h>

#include "fuzz_common.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	custody_package pkg, again;
	custody_err err;
	char *text = NULL;
	size_t len = 0;

	memset(&pkg, 0, sizeof(pkg));
	memset(&again, 0, sizeof(again));
	if (custody_package_parse(data, size, &pkg, &err) != CUSTODY_OK) {
		FUZZ_EXPECT(err.code == CUSTODY_EFAIL || err.code == CUSTODY_EUSAGE);
		FUZZ_EXPECT(err.msg[0] != '\0');
		FUZZ_EXPECT(pkg.wrapped == NULL && pkg.cert_der == NULL);
		return 0;
	}
	FUZZ_EXPECT(pkg.wrapped != NULL && pkg.wrapped_len % 8 == 0);
	FUZZ_EXPECT(pkg.cert_der != NULL && pkg.cert_der_len > 0);
	FUZZ_EXPECT(custody_package_format(&pkg, &text, &len, &err) == CUSTODY_OK);
	FUZZ_EXPECT(custody_package_parse((const unsigned char *)text, len, &again,
					  &err) == CUSTODY_OK);
	FUZZ_EXPECT(strcmp(pkg.thumbprint, again.thumbprint) == 0 &&
		    strcmp(pkg.key_id, again.key_id) == 0 &&
		    strcmp(pkg.kcv, again.kcv) == 0 &&
		    pkg.wrapped_len == again.wrapped_len &&
		    memcmp(pkg.wrapped, again.wrapped, pkg.wrapped_len) == 0 &&
		    pkg.cert_der_len == again.cert_der_len &&
		    memcmp(pkg.cert_der, again.cert_der, pkg.cert_der_len) == 0);
	free(text);
	custody_package_clear(&again);
	custody_package_clear(&pkg);
	return 0;
}
