/* test_thumbprint.c — finding a certificate by what a user typed. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <custody/thumbprint.h>

/* A and B share the thumbprint prefix A1B2C3D4; C's SHA-256 starts with
 * A's whole thumbprint. */
#define TP_A "A1B2C3D4E5F60718293A4B5C6D7E8F9001122334"
#define TP_B "A1B2C3D4FFFF0000111122223333444455556666"
#define TP_C "0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C"
#define SHA_A "5A5A5A5A000000000000000000000000000000000000000000000000000000AA"
#define SHA_B "5B5B5B5B000000000000000000000000000000000000000000000000000000BB"
#define SHA_C TP_A "77778888999900001111DDDD"

static custody_cert_record
rec(const char *tp, const char *sha, const char *subject)
{
	custody_cert_record r;

	memset(&r, 0, sizeof(r));
	snprintf(r.thumbprint, sizeof(r.thumbprint), "%s", tp);
	snprintf(r.sha256, sizeof(r.sha256), "%s", sha);
	r.subject = (char *)subject;
	return r;
}

static void
normalize_bad(const char *query, const char *msg)
{
	custody_err err = {0};
	char out[65] = "untouched";

	cr_assert_eq(custody_thumbprint_normalize(query, out, &err),
		     CUSTODY_EUSAGE, "'%s' was accepted", query);
	cr_assert_eq(err.code, CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, msg);
}

Test(thumbprint, normalize_strips_colons_spaces_and_case)
{
	custody_err err = {0};
	char out[65];

	cr_assert_eq(custody_thumbprint_normalize("a1:b2:c3:d4 e5 f6", out,
						  &err), CUSTODY_OK);
	cr_assert_str_eq(out, "A1B2C3D4E5F6");
	cr_assert_eq(custody_thumbprint_normalize(" " TP_A " ", out, &err),
		     CUSTODY_OK);
	cr_assert_str_eq(out, TP_A);
	cr_assert_eq(custody_thumbprint_normalize("0123456789abcdef", out,
						  &err), CUSTODY_OK);
	cr_assert_str_eq(out, "0123456789ABCDEF");
	/* 64 digits: a whole SHA-256 fingerprint. */
	cr_assert_eq(custody_thumbprint_normalize(SHA_C, out, &err),
		     CUSTODY_OK);
	cr_assert_str_eq(out, SHA_C);
}

Test(thumbprint, normalize_drops_invisible_marks_as_pasted)
{
	static const char *const pasted[] = {
		"\xe2\x80\x8e" "a1 b2 c3 d4 e5 f6",	/* Windows' dialog: U+200E */
		"\xef\xbb\xbf" "A1B2C3D4E5F6",		/* a BOM */
		"A1\xc2\xa0" "B2\xc2\xa0" "C3D4E5F6",	/* no-break spaces */
		"A1B2\xe2\x80\x8f" "C3D4\xe2\x80\xaf" "E5F6",
		"\xe2\x80\xaa" "A1B2C3D4E5F6\xe2\x80\xac\xe2\x81\xa0",
	};
	custody_err err = {0};
	char out[65];
	size_t i;

	for (i = 0; i < sizeof(pasted) / sizeof(pasted[0]); i++) {
		cr_assert_eq(custody_thumbprint_normalize(pasted[i], out, &err),
			     CUSTODY_OK, "pasted form %zu: %s", i, err.msg);
		cr_assert_str_eq(out, "A1B2C3D4E5F6", "pasted form %zu", i);
	}
	/* A mark that is visible, or half of one, is still refused. */
	normalize_bad("A1B2C3D4\xe2\x80" "E5",
		      "invalid thumbprint 'A1B2C3D4\xe2\x80" "E5': use hex "
		      "digits (':' and spaces are ignored)");
	normalize_bad("A1B2C3D4\xc3\xa9",
		      "invalid thumbprint 'A1B2C3D4\xc3\xa9': use hex "
		      "digits (':' and spaces are ignored)");
}

Test(thumbprint, normalize_refuses_bad_queries)
{
	normalize_bad("A1B2C3D",
		      "invalid thumbprint 'A1B2C3D': give at least 8 hex "
		      "digits");
	normalize_bad("A1:B2:C3:D",
		      "invalid thumbprint 'A1:B2:C3:D': give at least 8 hex "
		      "digits");
	normalize_bad("", "invalid thumbprint '': give at least 8 hex "
		      "digits");
	normalize_bad(": :", "invalid thumbprint ': :': give at least 8 hex "
		      "digits");
	normalize_bad("A1B2C3DG",
		      "invalid thumbprint 'A1B2C3DG': use hex digits (':' "
		      "and spaces are ignored)");
	normalize_bad("A1B2-C3D4-E5F6",
		      "invalid thumbprint 'A1B2-C3D4-E5F6': use hex digits "
		      "(':' and spaces are ignored)");
	normalize_bad("A1B2C3D4\tE5",
		      "invalid thumbprint 'A1B2C3D4\tE5': use hex digits "
		      "(':' and spaces are ignored)");
	normalize_bad("0x" TP_A,
		      "invalid thumbprint '0x" TP_A "': use hex digits "
		      "(':' and spaces are ignored)");
	normalize_bad(SHA_C "0",
		      "invalid thumbprint '" SHA_C "0': longer than 64 hex "
		      "digits");
	normalize_bad(NULL, "invalid thumbprint: none given");
}

static const custody_cert_record *
candidates(size_t *n)
{
	static custody_cert_record c[3];

	c[0] = rec(TP_A, SHA_A, "CN=a.example");
	c[1] = rec(TP_B, SHA_B, "CN=b.example");
	c[2] = rec(TP_C, SHA_C, "CN=c.example");
	*n = 3;
	return c;
}

static size_t
match_ok(const char *query)
{
	custody_err err = {0};
	size_t n, index = 99;
	const custody_cert_record *c = candidates(&n);

	cr_assert_eq(custody_thumbprint_match(query, c, n, &index, &err),
		     CUSTODY_OK, "'%s': %s", query, err.msg);
	return index;
}

Test(thumbprint, full_sha1)
{
	cr_assert_eq(match_ok(TP_B), 1);
	cr_assert_eq(match_ok("a1:b2:c3:d4:ff:ff:00:00:11:11:22:22:33:33:44:44"
			      ":55:55:66:66"), 1);
	cr_assert_eq(match_ok(TP_C), 2);
}

Test(thumbprint, full_sha256)
{
	cr_assert_eq(match_ok(SHA_A), 0);
	cr_assert_eq(match_ok(SHA_B), 1);
	cr_assert_eq(match_ok(SHA_C), 2);
}

Test(thumbprint, prefixes)
{
	cr_assert_eq(match_ok("5a5a5a5a"), 0);		/* of A's SHA-256 */
	cr_assert_eq(match_ok("A1B2 C3D4 FF"), 1);	/* of B's SHA-1 */
	cr_assert_eq(match_ok("0c0c0c0c"), 2);		/* of C's SHA-1 */
	cr_assert_eq(match_ok("5b5b5b5b"), 1);		/* of B's SHA-256 */
	/* Longer than a SHA-1: only a SHA-256 can match. */
	cr_assert_eq(match_ok(TP_A "7777"), 2);
}

Test(thumbprint, ambiguous_prefix_lists_the_candidates)
{
	custody_err err = {0};
	size_t n, index = 99;
	const custody_cert_record *c = candidates(&n);

	cr_assert_eq(custody_thumbprint_match("a1b2:c3d4", c, n, &index, &err),
		     CUSTODY_EFAIL);
	cr_assert_eq(err.code, CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "thumbprint prefix A1B2C3D4 is ambiguous");
	/* C matches too: its SHA-256 starts with A1B2C3D4. */
	cr_assert_str_eq(err.hint, TP_A " CN=a.example; " TP_B
			 " CN=b.example; " TP_C " CN=c.example");
	cr_assert_eq(index, 99);
}

Test(thumbprint, sha1_that_starts_another_sha256_is_ambiguous)
{
	custody_err err = {0};
	size_t n, index = 99;
	const custody_cert_record *c = candidates(&n);

	cr_assert_eq(custody_thumbprint_match(TP_A, c, n, &index, &err),
		     CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "thumbprint prefix " TP_A " is ambiguous");
	cr_assert_str_eq(err.hint, TP_A " CN=a.example; " TP_C
			 " CN=c.example");
	cr_assert_eq(index, 99);
}

Test(thumbprint, none)
{
	custody_err err = {0};
	size_t n, index = 99;
	const custody_cert_record *c = candidates(&n);

	cr_assert_eq(custody_thumbprint_match("dead:beef:00", c, n, &index,
					      &err), CUSTODY_ENOTFOUND);
	cr_assert_eq(err.code, CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no certificate with thumbprint DEADBEEF00");
	cr_assert_eq(index, 99);
	cr_assert_eq(custody_thumbprint_match(TP_A, NULL, 0, &index, &err),
		     CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no certificate with thumbprint " TP_A);
}

Test(thumbprint, bad_query_is_a_usage_error)
{
	custody_err err = {0};
	size_t n, index = 99;
	const custody_cert_record *c = candidates(&n);

	cr_assert_eq(custody_thumbprint_match("A1B2", c, n, &index, &err),
		     CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "invalid thumbprint 'A1B2': give at least "
			 "8 hex digits");
	cr_assert_eq(index, 99);
}

Test(thumbprint, duplicate_candidate_counts_once)
{
	custody_cert_record c[4];
	custody_err err = {0};
	size_t index = 99;

	c[0] = rec(TP_B, SHA_B, "CN=b.example");
	c[1] = rec(TP_A, SHA_A, "CN=a.example");
	c[2] = rec(TP_A, SHA_A, "CN=a.example");
	c[3] = rec(TP_C, SHA_B, "CN=other");
	cr_assert_eq(custody_thumbprint_match("A1B2C3D4E5", c, 4, &index,
					      &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(index, 1);
	/* The same certificate twice in an ambiguity is listed once. */
	cr_assert_eq(custody_thumbprint_match("A1B2C3D4", c, 4, &index, &err),
		     CUSTODY_EFAIL);
	cr_assert_str_eq(err.hint, TP_B " CN=b.example; " TP_A
			 " CN=a.example");
}

Test(thumbprint, hint_names_ten_then_stops)
{
	custody_cert_record c[12];
	custody_err err = {0};
	char tp[12][41], want[512] = "";
	size_t i, index;

	for (i = 0; i < 12; i++) {
		snprintf(tp[i], sizeof(tp[i]), "ABCDEF12%032zX", i);
		c[i] = rec(tp[i], SHA_A, "CN=x");
		if (i < 10) {
			strcat(want, i > 0 ? "; " : "");
			strcat(want, tp[i]);
			strcat(want, " CN=x");
		}
	}
	strcat(want, "; ...");
	cr_assert_eq(custody_thumbprint_match("abcdef12", c, 12, &index, &err),
		     CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "thumbprint prefix ABCDEF12 is ambiguous");
	cr_assert_str_eq(err.hint, want);
}

Test(thumbprint, long_subjects_are_cut_cleanly)
{
	custody_cert_record c[3];
	custody_err err = {0};
	char subject[400];
	char utf8[400];
	size_t index, len;

	memset(subject, 'x', sizeof(subject) - 1);
	subject[sizeof(subject) - 1] = '\0';
	memcpy(subject, "CN=", 3);
	/* "é" (two bytes) throughout, so a cut can fall inside one. */
	for (len = 0; len + 2 < sizeof(utf8); len += 2)
		memcpy(utf8 + len, "\xC3\xA9", 2);
	utf8[len] = '\0';
	c[0] = rec(TP_A, SHA_A, subject);
	c[1] = rec(TP_B, SHA_B, utf8);
	c[2] = rec(TP_C, SHA_C, "CN=c");
	cr_assert_eq(custody_thumbprint_match("A1B2C3D4", c, 3, &index, &err),
		     CUSTODY_EFAIL);
	len = strlen(err.hint);
	cr_assert_lt(len, sizeof(err.hint));
	cr_assert_geq(len, sizeof(err.hint) - 6, "hint cut short: %zu", len);
	cr_assert_str_eq(err.hint + len - 3, "...");
	cr_assert_eq(strncmp(err.hint, TP_A " CN=xxx", 47), 0);
	cr_assert_not_null(strstr(err.hint, "; " TP_B " \xC3\xA9"));
	/* The byte before "..." ends a whole "é". */
	cr_assert_eq((unsigned char)err.hint[len - 4], 0xA9);
	cr_assert_null(strstr(err.hint, TP_C));
}

Test(thumbprint, candidate_without_subject)
{
	custody_cert_record c[2];
	custody_err err = {0};
	size_t index;

	c[0] = rec(TP_A, SHA_A, NULL);
	c[1] = rec(TP_B, SHA_B, "CN=b");
	cr_assert_eq(custody_thumbprint_match("A1B2C3D4", c, 2, &index, &err),
		     CUSTODY_EFAIL);
	cr_assert_str_eq(err.hint, TP_A " (no subject); " TP_B " CN=b");
}
