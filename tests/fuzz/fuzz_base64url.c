/* fuzz_base64url.c — the strict base64url decoder of the JWS module (the
 * three parts of every token a relying party hands in). */
#include "config.h"

#include <custody/jws.h>

#include "fuzz_common.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *raw = NULL, *back = NULL;
	size_t raw_len = 0, back_len = 0;
	char *text = NULL;

	/* Strict decoding: what decodes is the one text of those bytes. */
	if (custody_base64url_decode((const char *)data, size, &raw,
				     &raw_len) == 0) {
		FUZZ_EXPECT(raw != NULL);
		FUZZ_EXPECT(raw_len == size / 4 * 3 + (size % 4 == 0 ? 0 :
							 size % 4 - 1));
		text = custody_base64url_encode(raw, raw_len);
		FUZZ_EXPECT(text != NULL);
		FUZZ_EXPECT(strlen(text) == size &&
			    memcmp(text, data, size) == 0);
		free(text);
		text = NULL;
	} else {
		FUZZ_EXPECT(raw == NULL);
	}
	/* Any bytes survive a round trip. */
	text = custody_base64url_encode(data, size);
	FUZZ_EXPECT(text != NULL);
	FUZZ_EXPECT(custody_base64url_decode(text, strlen(text), &back,
					     &back_len) == 0);
	FUZZ_EXPECT(back_len == size &&
		    (size == 0 || memcmp(back, data, size) == 0));
	free(text);
	free(back);
	free(raw);
	return 0;
}
