/* util/timefmt.c — ISO 8601 times as the command line accepts and shows them. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <custody/timefmt.h>

#define TIME_FORMS "use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS](Z|±HH:MM)"

/* The fields of a time as written, before any range check. */
struct civil {
	int year, month, day;
	int hour, minute, second;
	int offset;	/* seconds east of UTC */
};

/* Days from 1970-01-01 to year-month-day in the proleptic Gregorian
 * calendar (eras of 400 years, March-based years). */
static int64_t
days_from_civil(int y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void
civil_from_days(int64_t z, int *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static int
days_in_month(int y, int m)
{
	static const int days[12] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly n ASCII digits at s; -1 when any is not a digit. */
static int
digits(const char *s, int n)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* Splits text into fields by its shape alone; 0 when it has one of the
 * accepted shapes, -2 when its offset is out of range, -3 when a time of
 * day has no zone. */
static int
scan(const char *s, struct civil *c)
{
	size_t len = strlen(s), pos;
	int sign, oh, om;

	memset(c, 0, sizeof(*c));
	if (len < 10 || s[4] != '-' || s[7] != '-')
		return -1;
	c->year = digits(s, 4);
	c->month = digits(s + 5, 2);
	c->day = digits(s + 8, 2);
	if (c->year < 0 || c->month < 0 || c->day < 0)
		return -1;
	if (len == 10)
		return 0;
	if (len < 16 || s[10] != 'T' || s[13] != ':')
		return -1;
	c->hour = digits(s + 11, 2);
	c->minute = digits(s + 14, 2);
	if (c->hour < 0 || c->minute < 0)
		return -1;
	pos = 16;
	if (s[pos] == ':') {
		c->second = digits(s + pos + 1, 2);
		if (c->second < 0)
			return -1;
		pos += 3;
	}
	if (s[pos] == '\0')
		return -3;
	if (s[pos] == 'Z')
		return s[pos + 1] == '\0' ? 0 : -1;
	if (s[pos] != '+' && s[pos] != '-')
		return -1;
	sign = s[pos] == '-' ? -1 : 1;
	/* ±HH:MM, or ±HHMM as date(1) and mail headers write it. */
	if (len == pos + 6 && s[pos + 3] == ':')
		om = digits(s + pos + 4, 2);
	else if (len == pos + 5)
		om = digits(s + pos + 3, 2);
	else
		return -1;
	oh = digits(s + pos + 1, 2);
	if (oh < 0 || om < 0)
		return -1;
	if (om > 59 || oh > 14 || (oh == 14 && om > 0))
		return -2;
	c->offset = sign * (oh * 3600 + om * 60);
	return 0;
}

/* Writes the reason a well-shaped time is out of range into why; returns
 * 0 when every field is in range. */
static int
check_ranges(const struct civil *c, char *why, size_t size)
{
	if (c->month < 1 || c->month > 12) {
		snprintf(why, size, "month %02d is out of range (01-12)",
			 c->month);
		return -1;
	}
	if (c->day < 1 || c->day > days_in_month(c->year, c->month)) {
		snprintf(why, size, "%04d-%02d has %d days", c->year, c->month,
			 days_in_month(c->year, c->month));
		return -1;
	}
	if (c->hour > 23) {
		snprintf(why, size, "hour %02d is out of range (00-23)",
			 c->hour);
		return -1;
	}
	if (c->minute > 59) {
		snprintf(why, size, "minute %02d is out of range (00-59)",
			 c->minute);
		return -1;
	}
	if (c->second > 59) {
		snprintf(why, size, "second %02d is out of range (00-59)",
			 c->second);
		return -1;
	}
	return 0;
}

int
custody_time_parse(const char *text, int64_t *out, custody_err *err)
{
	int r = CUSTODY_EFAIL, shape;
	struct civil c;
	char why[128] = "";
	const char *shown = text != NULL ? text : "";

	shape = scan(shown, &c);
	if (shape == -3)
		return custody_err_set(err, CUSTODY_EUSAGE, "invalid time '%s': "
				       "no time zone: append Z (UTC) or ±HH:MM",
				       shown);
	if (shape == -2)
		snprintf(why, sizeof(why),
			 "the offset is out of range (at most ±14:00)");
	if (shape != 0 || check_ranges(&c, why, sizeof(why)) != 0) {
		r = custody_err_set(err, CUSTODY_EUSAGE, "invalid time '%s': "
				    TIME_FORMS, shown);
		if (why[0] != '\0')
			custody_err_hint(err, "%s", why);
		return r;
	}
	*out = days_from_civil(c.year, c.month, c.day) * 86400 +
	       c.hour * 3600 + c.minute * 60 + c.second - c.offset;
	return CUSTODY_OK;
}

int
custody_time_is_date(const char *text)
{
	struct civil c;

	return text != NULL && strlen(text) == 10 && scan(text, &c) == 0;
}

static void
put_digits(char *p, int v, int n)
{
	while (n-- > 0) {
		p[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

char *
custody_time_format(int64_t t, char buf[CUSTODY_TIME_TEXT])
{
	/* The shown form has four year digits: 0000-01-01 .. 9999-12-31. */
	const int64_t lo = days_from_civil(0, 1, 1) * 86400;
	const int64_t hi = days_from_civil(10000, 1, 1) * 86400 - 1;
	int64_t days, secs;
	int y, m, d;

	if (t < lo)
		t = lo;
	if (t > hi)
		t = hi;
	days = (t >= 0 ? t : t - 86399) / 86400;
	secs = t - days * 86400;
	civil_from_days(days, &y, &m, &d);
	memcpy(buf, "0000-00-00T00:00:00Z", CUSTODY_TIME_TEXT);
	put_digits(buf, y, 4);
	put_digits(buf + 5, m, 2);
	put_digits(buf + 8, d, 2);
	put_digits(buf + 11, (int)(secs / 3600), 2);
	put_digits(buf + 14, (int)(secs / 60 % 60), 2);
	put_digits(buf + 17, (int)(secs % 60), 2);
	return buf;
}

/* "2h", "23h59m", "1h0m5s", "45s": hours, minutes and seconds. */
void
custody_duration_format(int64_t s, char *buf, size_t size)
{
	int64_t h, m;
	size_t n = 0;
	const char *sign = "";

	if (s < 0) {
		sign = "-";
		s = s == INT64_MIN ? INT64_MAX : -s;
	}
	h = s / 3600;
	m = s % 3600 / 60;
	s %= 60;
	n = (size_t)snprintf(buf, size, "%s", sign);
	if (h > 0 && n < size)
		n += (size_t)snprintf(buf + n, size - n, "%lldh", (long long)h);
	if (m > 0 && n < size)
		n += (size_t)snprintf(buf + n, size - n, "%lldm", (long long)m);
	if ((s > 0 || (h == 0 && m == 0)) && n < size)
		snprintf(buf + n, size - n, "%llds", (long long)s);
}
