/* test_similar.c — "did you mean": distances and the nearest name. */
#include "config.h"

#include <string.h>

#include <criterion/criterion.h>

#include <custody/similar.h>

static const char *const types[] = {
	"Default", "WebServicesInternal", "WebServicesExternal",
	"OAuthTokenIssuer", "AudioVideoAuthentication", "XmppServer",
	"Internal", "External",
};
#define N_TYPES (sizeof(types) / sizeof(types[0]))

Test(similar, distance_counts_single_edits)
{
	cr_assert_eq(custody_name_distance("", ""), 0);
	cr_assert_eq(custody_name_distance("get", "get"), 0);
	cr_assert_eq(custody_name_distance("get", "GET"), 0);
	cr_assert_eq(custody_name_distance("gett", "get"), 1);	/* insert */
	cr_assert_eq(custody_name_distance("gt", "get"), 1);	/* delete */
	cr_assert_eq(custody_name_distance("got", "get"), 1);	/* replace */
	cr_assert_eq(custody_name_distance("gte", "get"), 1);	/* swap */
	cr_assert_eq(custody_name_distance("", "get"), 3);
	cr_assert_eq(custody_name_distance("kitten", "sitting"), 3);
	cr_assert_eq(custody_name_distance("ca", "abc"), 3);	/* OSA, not Damerau */
}

Test(similar, nearest_names_the_type_a_typo_meant)
{
	cr_assert_str_eq(custody_name_nearest("OAuthTokenIssuers", types, N_TYPES),
			 "OAuthTokenIssuer");
	cr_assert_str_eq(custody_name_nearest("oauthtokenisuer", types, N_TYPES),
			 "OAuthTokenIssuer");
	cr_assert_str_eq(custody_name_nearest("Webservicesinternl", types, N_TYPES),
			 "WebServicesInternal");
	cr_assert_str_eq(custody_name_nearest("Defualt", types, N_TYPES), "Default");
	cr_assert_null(custody_name_nearest("Xmppserver", types, N_TYPES),
		       "a name in another case is that name, not a typo");
}

Test(similar, nearest_stays_silent_when_nothing_is_near)
{
	cr_assert_null(custody_name_nearest("Frobnicator", types, N_TYPES));
	cr_assert_null(custody_name_nearest("OAuth", types, N_TYPES));
	cr_assert_null(custody_name_nearest("xyz", types, N_TYPES));
	cr_assert_null(custody_name_nearest("", types, N_TYPES));
	cr_assert_null(custody_name_nearest("Default", NULL, 0));
}

Test(similar, short_words_allow_one_edit)
{
	static const char *const commands[] = {"get", "set", "list", "sign", "test"};

	cr_assert_str_eq(custody_name_nearest("gett", commands, 5), "get");
	cr_assert_str_eq(custody_name_nearest("lsit", commands, 5), "list");
	cr_assert_null(custody_name_nearest("gxtt", commands, 5));
}

Test(similar, long_words_are_compared_on_their_start)
{
	char a[200], b[200];

	memset(a, 'a', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[150] = 'b';
	cr_assert_eq(custody_name_distance(a, b), 0);
	b[10] = 'b';
	cr_assert_eq(custody_name_distance(a, b), 1);
}
