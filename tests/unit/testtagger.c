/* testtagger.c — see testtagger.h. */
#include "config.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <criterion/criterion.h>

#include <custody/hexfmt.h>

#include "testtagger.h"

static const unsigned char test_key[32] = "custody unit test tag key.......";

static int
test_tag(void *ctx, const unsigned char digest[CUSTODY_TAG_INPUT_LEN],
	 int for_write, char tag[CUSTODY_TAG_HEX + 1], custody_err *err)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	(void)ctx;
	(void)for_write;
	if (HMAC(EVP_sha256(), test_key, sizeof(test_key), digest,
		 CUSTODY_TAG_INPUT_LEN, mac, &len) == NULL ||
	    len < CUSTODY_TAG_HEX / 2)
		return custody_err_set(err, CUSTODY_EFAIL, "test tagger: HMAC failed");
	custody_hex_encode(mac, CUSTODY_TAG_HEX / 2, tag, 0);
	return CUSTODY_OK;
}

void
test_tagger_attach(custody_store *st)
{
	cr_assert_not_null(st);
	custody_store_set_tagger(st, test_tag, NULL, NULL);
}
