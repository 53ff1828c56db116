/*
 * fuzz_dn.c — custody_dn_parse, the DN a user gives to `custody request
 * --subject`, and the text custody shows of it (custody_dn_text,
 * custody_dn_common_name).
 *
 * Input: the DN text (cut at the first NUL).  Promises checked
 * (custody/request.h): bad input is EUSAGE with a message and no name;
 * a name holds 1 to CUSTODY_DN_MAX_ATTRIBUTES attributes, each in an RDN
 * numbered in order from 0, each value UTF-8 without NUL; it encodes to
 * DER and decodes back to an equal name; its RFC 4514 text reads back
 * into an equal name; its CN, when it has one that fits, is its first.
 */
#include "config.h"

#include <openssl/objects.h>
#include <openssl/x509.h>

#include <custody/request.h>

#include "fuzz_common.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

/* Each entry a UTF-8 value without NUL; the RDNs numbered 0, 1, ...
 * without a gap. */
static void
check_entries(const X509_NAME *name)
{
	int i, n = X509_NAME_entry_count(name), set = -1;

	FUZZ_EXPECT(n >= 1 && n <= CUSTODY_DN_MAX_ATTRIBUTES);
	for (i = 0; i < n; i++) {
		const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
		unsigned char *utf8 = NULL;
		int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));

		FUZZ_EXPECT(len > 0 && memchr(utf8, '\0', (size_t)len) == NULL);
		OPENSSL_free(utf8);
		FUZZ_EXPECT(X509_NAME_ENTRY_set(e) == set || X509_NAME_ENTRY_set(e) == set + 1);
		set = X509_NAME_ENTRY_set(e);
		FUZZ_EXPECT(i > 0 || set == 0);
	}
}

/* DER and back: an equal name. */
static void
check_der(const X509_NAME *name)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	X509_NAME *back;
	int len = i2d_X509_NAME(name, &der);

	FUZZ_EXPECT(len > 0);
	p = der;
	back = d2i_X509_NAME(NULL, &p, len);
	FUZZ_EXPECT(back != NULL && p == der + len);
	FUZZ_EXPECT(X509_NAME_cmp(name, back) == 0);
	X509_NAME_free(back);
	OPENSSL_free(der);
}

/* The text custody shows reads back into an equal name. */
static void
check_text(const X509_NAME *name)
{
	static char text[65536];
	char cn[256];
	custody_err err;
	X509_NAME *back = NULL;
	int r;

	custody_dn_text(name, text, sizeof(text));
	FUZZ_EXPECT(text[0] != '\0' && strlen(text) < sizeof(text) - 1);
	custody_err_clear(&err);
	r = custody_dn_parse(text, &back, &err);
	fuzz_note("custody_dn_parse (its text)", r, &err);
	FUZZ_EXPECT(r == CUSTODY_OK && back != NULL);
	FUZZ_EXPECT(X509_NAME_cmp(name, back) == 0);
	X509_NAME_free(back);
	custody_dn_common_name(name, cn, sizeof(cn));
	FUZZ_EXPECT(cn[0] == '\0' || X509_NAME_get_index_by_NID(name, NID_commonName, -1) >= 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_string(data, size);
	X509_NAME *name = NULL;
	custody_err err;
	int r;

	custody_err_clear(&err);
	r = custody_dn_parse(text, &name, &err);
	fuzz_note("custody_dn_parse", r, &err);
	if (r != CUSTODY_OK) {
		FUZZ_EXPECT(fuzz_err_is(&err, CUSTODY_EUSAGE, CUSTODY_EUSAGE));
		FUZZ_EXPECT(name == NULL);
	} else {
		FUZZ_EXPECT(name != NULL);
		check_entries(name);
		check_der(name);
		check_text(name);
	}
	X509_NAME_free(name);
	free(text);
	return 0;
}
