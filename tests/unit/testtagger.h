/* testtagger.h — a store tagger for the unit tests of the store and the
 * audit log, which run without a token: HMAC-SHA256 under a fixed test
 * key in memory, where custody uses the token's KEK (custody/integrity.h).
 * It tests what the store does with tags; the token's tag is tested with
 * real tokens (tests/token). */
#ifndef CUSTODY_TESTS_TESTTAGGER_H
#define CUSTODY_TESTS_TESTTAGGER_H

#include <custody/store.h>

/* Attaches the test tagger to st (asserts on failure). */
void test_tagger_attach(custody_store *st);

#endif
