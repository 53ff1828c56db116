/*
 * raw_sign_once.c — the floor for any command-line signer: the least one
 * process must do to make one signature with a key on a token.
 *
 *   raw_sign_once --module SO --token LABEL --pin-file FILE --id HEX
 *		   --kind rsa2048|ec_p256 --in FILE
 *
 * dlopen the module, C_Initialize, find the token, open a session, log in
 * (PIN from FILE, never argv), find the private key by CKA_ID, hash the
 * input in software and sign it (CKM_RSA_PKCS over the DigestInfo, or
 * CKM_ECDSA over the digest), log out, finalise.  The signature goes to
 * stdout as `custody sign` writes it: PKCS#1 v1.5 bytes, or a DER
 * ECDSA-Sig-Value.  `make bench` runs it once per signature.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MAX_ID 64

struct opts {
	const char *module;
	const char *token;
	const char *pin_file;
	const char *id;
	const char *in;
	enum bench_kind kind;
	int have_kind;
};

static int
parse(int argc, char **argv, struct opts *o)
{
	static const struct option options[] = {
		{"module", required_argument, NULL, 'M'},
		{"token", required_argument, NULL, 'T'},
		{"pin-file", required_argument, NULL, 'P'},
		{"id", required_argument, NULL, 'i'},
		{"kind", required_argument, NULL, 'k'},
		{"in", required_argument, NULL, 'I'},
		{NULL, 0, NULL, 0},
	};
	int c;

	memset(o, 0, sizeof(*o));
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case 'M': o->module = optarg; break;
		case 'T': o->token = optarg; break;
		case 'P': o->pin_file = optarg; break;
		case 'i': o->id = optarg; break;
		case 'I': o->in = optarg; break;
		case 'k':
			if (bench_kind_parse(optarg, &o->kind) != 0)
				return -1;
			o->have_kind = 1;
			break;
		default:
			return -1;
		}
	}
	if (optind != argc || o->module == NULL || o->token == NULL ||
	    o->pin_file == NULL || o->id == NULL || o->in == NULL || !o->have_kind)
		return bench_fail("usage: raw_sign_once --module SO --token LABEL "
				  "--pin-file FILE --id HEX --kind rsa2048|ec_p256 --in FILE");
	return 0;
}

static int
sign_once(const struct opts *o)
{
	struct bench_p11 p;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE key;
	unsigned char id[MAX_ID], *data = NULL;
	unsigned char sig[BENCH_MAX_SIG], der[BENCH_MAX_SIG];
	size_t id_len = 0, data_len = 0, sig_len = 0, der_len = 0;
	const unsigned char *out;
	size_t out_len;
	int r = -1;

	memset(&p, 0, sizeof(p));
	if (bench_hex_decode(o->id, id, sizeof(id), &id_len) != 0 ||
	    bench_read_file(o->in, &data, &data_len) != 0 ||
	    bench_p11_open(&p, o->module, o->token) != 0 ||
	    bench_p11_session(&p, &s) != 0 ||
	    bench_p11_login(&p, s, o->pin_file) != 0 ||
	    bench_p11_find(&p, s, CKO_PRIVATE_KEY, id, id_len, &key) != 0 ||
	    bench_p11_sign(&p, s, key, o->kind, data, data_len, sig, &sig_len) != 0)
		goto out;
	p.f->C_Logout(s);
	p.f->C_CloseSession(s);
	out = sig;
	out_len = sig_len;
	if (o->kind == BENCH_EC_P256) {
		if (bench_ecdsa_der(sig, sig_len, der, sizeof(der), &der_len) != 0)
			goto out;
		out = der;
		out_len = der_len;
	}
	if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout) != 0) {
		bench_fail("cannot write the signature to standard output");
		goto out;
	}
	r = 0;
out:
	bench_p11_close(&p);
	free(data);
	return r;
}

int
main(int argc, char **argv)
{
	struct opts o;

	bench_progname = "raw_sign_once";
	if (parse(argc, argv, &o) != 0)
		return 2;
	return sign_once(&o) == 0 ? 0 : 1;
}
