/* test_timefmt.c — ISO 8601 times as the command line accepts and shows
 * them.  Expected instants were computed independently (Python's
 * calendar.timegm). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <custody/timefmt.h>

#define FORMS "use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS](Z|±HH:MM)"

static int64_t
parse_ok(const char *text)
{
	custody_err err = {0};
	int64_t t = -12345;

	cr_assert_eq(custody_time_parse(text, &t, &err), CUSTODY_OK,
		     "'%s' refused: %s", text, err.msg);
	return t;
}

static void
parse_bad(const char *text)
{
	custody_err err = {0};
	int64_t t = -12345;
	char want[256];

	cr_assert_eq(custody_time_parse(text, &t, &err), CUSTODY_EUSAGE,
		     "'%s' was accepted", text);
	cr_assert_eq(err.code, CUSTODY_EUSAGE);
	snprintf(want, sizeof(want), "invalid time '%s': " FORMS, text);
	cr_assert_str_eq(err.msg, want);
	cr_assert_eq(t, -12345, "'%s' wrote the output", text);
}

Test(timefmt, date_alone_is_midnight_utc)
{
	cr_assert_eq(parse_ok("2031-01-02"), 1925078400);
	cr_assert_eq(parse_ok("1970-01-01"), 0);
}

Test(timefmt, minutes_seconds_and_z)
{
	cr_assert_eq(parse_ok("2031-01-02T10:30Z"), 1925116200);
	cr_assert_eq(parse_ok("2031-01-02T10:30:00Z"), 1925116200);
	cr_assert_eq(parse_ok("2031-01-02T10:30:45Z"), 1925116245);
	cr_assert_eq(parse_ok("2100-02-28T23:59:59Z"), 4107542399);
}

Test(timefmt, offsets)
{
	/* 10:30 in India is 05:00 UTC; 10:00 in California is 18:00 UTC. */
	cr_assert_eq(parse_ok("2031-01-02T10:30+05:30"), 1925096400);
	cr_assert_eq(parse_ok("2031-01-02T10:30:00+05:30"), 1925096400);
	cr_assert_eq(parse_ok("2031-01-02T10:00-08:00"), 1925143200);
	cr_assert_eq(parse_ok("2031-01-02T10:30+00:00"), 1925116200);
	cr_assert_eq(parse_ok("2031-01-02T14:00+14:00"), 1925078400);
	cr_assert_eq(parse_ok("2031-01-01T12:00-12:00"), 1925078400);
	/* The offset moves the instant across a day boundary. */
	cr_assert_eq(parse_ok("2031-01-01T16:00-08:00"), 1925078400);
}

Test(timefmt, leap_days)
{
	cr_assert_eq(parse_ok("2028-02-29"), 1835395200);
	cr_assert_eq(parse_ok("2000-02-29T12:00Z"), 951825600);
	parse_bad("2027-02-29");
	parse_bad("2100-02-29");	/* a century, not a leap year */
	parse_bad("2031-02-30");
	parse_bad("2031-04-31");
}

Test(timefmt, out_of_range_fields)
{
	parse_bad("2031-00-10");
	parse_bad("2031-13-10");
	parse_bad("2031-01-00");
	parse_bad("2031-01-32");
	parse_bad("2031-01-02T24:00Z");
	parse_bad("2031-01-02T23:60Z");
	parse_bad("2031-01-02T23:59:60Z");
	parse_bad("2031-01-02T10:00+14:01");
	parse_bad("2031-01-02T10:00+15:00");
	parse_bad("2031-01-02T10:00+05:60");
}

Test(timefmt, range_errors_say_why_in_the_hint)
{
	custody_err err = {0};
	int64_t t;

	cr_assert_eq(custody_time_parse("2031-02-30", &t, &err),
		     CUSTODY_EUSAGE);
	cr_assert_str_eq(err.hint, "2031-02 has 28 days");
	cr_assert_eq(custody_time_parse("2031-01-02T24:00Z", &t, &err),
		     CUSTODY_EUSAGE);
	cr_assert_str_eq(err.hint, "hour 24 is out of range (00-23)");
}

Test(timefmt, junk_forms)
{
	parse_bad("");
	parse_bad("2031/01/02");
	parse_bad("2031-1-2");
	parse_bad("31-01-02");
	parse_bad("20310102");
	parse_bad("2031-01-02 ");
	parse_bad(" 2031-01-02");
	parse_bad("2031-01-02x");
	parse_bad("2031-01-02T");
	parse_bad("2031-01-02T10Z");
	parse_bad("2031-01-02T10:30:5Z");
	parse_bad("2031-01-02T10:30:00.5Z");
	parse_bad("2031-01-02T10:30ZZ");
	parse_bad("2031-01-02T10:30Z junk");
	parse_bad("2031-01-02 10:30Z");
	parse_bad("2031-01-02t10:30Z");		/* lower-case t */
	parse_bad("2031-01-02T10:30z");		/* lower-case z */
	parse_bad("2031-01-02T10:30+053");
	parse_bad("2031-01-02T10:30+05:3");
	parse_bad("2031-01-02T10:30+05300");
	parse_bad("2031-01-02T10:30+05");
	parse_bad("2031-01-02T10:30+05:30x");
	parse_bad("now");
	parse_bad("+2031-01-02");
}

Test(timefmt, null_text_is_a_usage_error)
{
	custody_err err = {0};
	int64_t t;

	cr_assert_eq(custody_time_parse(NULL, &t, &err), CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "invalid time '': " FORMS);
}

Test(timefmt, format)
{
	char buf[CUSTODY_TIME_TEXT];

	cr_assert_str_eq(custody_time_format(0, buf), "1970-01-01T00:00:00Z");
	cr_assert_eq(custody_time_format(0, buf), buf);
	cr_assert_str_eq(custody_time_format(-1, buf),
			 "1969-12-31T23:59:59Z");
	cr_assert_str_eq(custody_time_format(1925116245, buf),
			 "2031-01-02T10:30:45Z");
	cr_assert_str_eq(custody_time_format(1835395200, buf),
			 "2028-02-29T00:00:00Z");
	cr_assert_str_eq(custody_time_format(4107542400, buf),
			 "2100-03-01T00:00:00Z");
	cr_assert_str_eq(custody_time_format(253402300799, buf),
			 "9999-12-31T23:59:59Z");
}

Test(timefmt, format_stays_within_four_digit_years)
{
	char buf[CUSTODY_TIME_TEXT];

	cr_assert_str_eq(custody_time_format(253402300800, buf),
			 "9999-12-31T23:59:59Z");
	cr_assert_str_eq(custody_time_format(INT64_MAX, buf),
			 "9999-12-31T23:59:59Z");
	cr_assert_str_eq(custody_time_format(INT64_MIN, buf),
			 "0000-01-01T00:00:00Z");
	cr_assert_eq(strlen(buf), CUSTODY_TIME_TEXT - 1);
}

Test(timefmt, round_trip)
{
	static const char *const shown[] = {
		"1970-01-01T00:00:00Z", "2028-02-29T23:59:59Z",
		"2031-01-02T10:30:45Z", "2100-01-01T00:00:00Z",
		"2100-12-31T12:00:00Z", "1999-12-31T23:59:59Z",
		"0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
	};
	char buf[CUSTODY_TIME_TEXT];
	size_t i;
	int64_t t;

	for (i = 0; i < sizeof(shown) / sizeof(shown[0]); i++)
		cr_assert_str_eq(custody_time_format(parse_ok(shown[i]), buf),
				 shown[i]);
	/* Every day of several years, through leap and century years. */
	for (t = parse_ok("1999-12-25T06:07:08Z");
	     t < parse_ok("2101-01-05T00:00Z"); t += 86400) {
		custody_time_format(t, buf);
		cr_assert_eq(parse_ok(buf), t, "%s", buf);
	}
}

Test(timefmt, offsets_without_a_colon)
{
	cr_assert_eq(parse_ok("2031-01-02T10:30+0530"), 1925096400);
	cr_assert_eq(parse_ok("2031-01-02T10:00:00-0800"), 1925143200);
	cr_assert_eq(parse_ok("2031-01-02T10:30+0000"), 1925116200);
	parse_bad("2031-01-02T10:00+1401");
	parse_bad("2031-01-02T10:00+0560");
}

Test(timefmt, a_time_without_a_zone_says_so)
{
	static const char *const zoneless[] = {
		"2031-01-02T10:30", "2031-01-02T10:30:45",
	};
	custody_err err = {0};
	char want[256];
	int64_t t = -12345;
	size_t i;

	for (i = 0; i < sizeof(zoneless) / sizeof(zoneless[0]); i++) {
		cr_assert_eq(custody_time_parse(zoneless[i], &t, &err),
			     CUSTODY_EUSAGE, "'%s' was accepted", zoneless[i]);
		snprintf(want, sizeof(want), "invalid time '%s': no time zone: "
			 "append Z (UTC) or ±HH:MM", zoneless[i]);
		cr_assert_str_eq(err.msg, want);
		cr_assert_eq(t, -12345);
	}
}

Test(timefmt, a_date_alone_is_told_apart)
{
	cr_assert_eq(custody_time_is_date("2031-01-02"), 1);
	cr_assert_eq(custody_time_is_date("2031-01-02T00:00Z"), 0);
	cr_assert_eq(custody_time_is_date("2031/01/02"), 0);
	cr_assert_eq(custody_time_is_date(""), 0);
	cr_assert_eq(custody_time_is_date(NULL), 0);
}
