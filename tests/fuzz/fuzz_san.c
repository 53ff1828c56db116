/*
 * fuzz_san.c — custody_san_parse, the subject alternative names a user
 * gives to `custody request --san`.
 *
 * Input: the SAN text (cut at the first NUL).  Promises checked
 * (custody/request.h): bad input is EUSAGE with a message and no
 * extension; an extension is a non-critical subjectAltName holding one
 * name per comma-separated item, in order, each of the item's kind (DNS:
 * a dNSName, IP: a 4- or 16-byte iPAddress, email: an rfc822Name, URI: a
 * uniformResourceIdentifier), and it encodes to DER.
 */
#include "config.h"

#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <custody/request.h>

#include "fuzz_common.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

/* The GENERAL_NAME type an item KIND:VALUE asks for. */
static int
kind_of(const char *item)
{
	if (strncmp(item, "DNS:", 4) == 0)
		return GEN_DNS;
	if (strncmp(item, "IP:", 3) == 0)
		return GEN_IPADD;
	if (strncmp(item, "email:", 6) == 0)
		return GEN_EMAIL;
	FUZZ_EXPECT(strncmp(item, "URI:", 4) == 0);
	return GEN_URI;
}

static void
check_names(const char *text, const X509_EXTENSION *ext)
{
	GENERAL_NAMES *names = X509V3_EXT_d2i((X509_EXTENSION *)ext);
	const char *item = text;
	unsigned char *der = NULL;
	int i, n;

	FUZZ_EXPECT(OBJ_obj2nid(X509_EXTENSION_get_object((X509_EXTENSION *)ext)) ==
		    NID_subject_alt_name);
	FUZZ_EXPECT(X509_EXTENSION_get_critical(ext) == 0);
	FUZZ_EXPECT(names != NULL);
	n = sk_GENERAL_NAME_num(names);
	for (i = 0; i < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);

		FUZZ_EXPECT(item != NULL);
		FUZZ_EXPECT(g->type == kind_of(item));
		if (g->type == GEN_IPADD)
			FUZZ_EXPECT(ASN1_STRING_length(g->d.iPAddress) == 4 ||
				    ASN1_STRING_length(g->d.iPAddress) == 16);
		item = strchr(item, ',');
		item = item != NULL ? item + 1 : NULL;
	}
	FUZZ_EXPECT(item == NULL);
	FUZZ_EXPECT(i2d_X509_EXTENSION((X509_EXTENSION *)ext, &der) > 0);
	OPENSSL_free(der);
	GENERAL_NAMES_free(names);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_string(data, size);
	X509_EXTENSION *ext = NULL;
	custody_err err;
	int r;

	custody_err_clear(&err);
	r = custody_san_parse(text, &ext, &err);
	fuzz_note("custody_san_parse", r, &err);
	if (r != CUSTODY_OK) {
		FUZZ_EXPECT(fuzz_err_is(&err, CUSTODY_EUSAGE, CUSTODY_EUSAGE));
		FUZZ_EXPECT(ext == NULL);
	} else {
		FUZZ_EXPECT(ext != NULL);
		check_names(text, ext);
	}
	X509_EXTENSION_free(ext);
	free(text);
	return 0;
}
