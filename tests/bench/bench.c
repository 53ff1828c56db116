/* bench.c — the clock, the timed loop, the PIN file and the raw PKCS#11
 * steps that the benchmark programs share (see bench.h). */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "bench.h"

#define BENCH_MAX_PIN 256
#define BENCH_MAX_FILE (1 << 20)

const char *bench_progname = "bench";

/* The rest of the 64 bytes are zeros. */
const unsigned char bench_message[64] = "custody benchmark message, hashed per signature";

/* DER DigestInfo of a SHA-256 digest, before the 32 digest bytes. */
static const unsigned char sha256_prefix[] = {
	0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
	0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
};

int
bench_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", bench_progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
bench_kind_parse(const char *s, enum bench_kind *kind)
{
	if (strcmp(s, "rsa2048") == 0)
		*kind = BENCH_RSA2048;
	else if (strcmp(s, "ec_p256") == 0)
		*kind = BENCH_EC_P256;
	else
		return bench_fail("unknown key kind %s: expected rsa2048 or ec_p256", s);
	return 0;
}

const char *
bench_kind_name(enum bench_kind kind)
{
	return kind == BENCH_RSA2048 ? "rsa2048" : "ec_p256";
}

int
bench_parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v > 0 && v <= 3600))
		return bench_fail("bad number of seconds %s: expected a number in (0, 3600]", s);
	*out = v;
	return 0;
}

int
bench_parse_count(const char *s, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 || v > max)
		return bench_fail("bad count %s: expected a whole number in [1, %ld]", s, max);
	*out = v;
	return 0;
}

int
bench_parse_signer_opts(int argc, char **argv, const char *name_option,
			struct bench_signer_opts *o)
{
	const struct option options[] = {
		{"kind", required_argument, NULL, 'k'},
		{name_option, required_argument, NULL, 'N'},
		{"cert", required_argument, NULL, 'c'},
		{"threads", required_argument, NULL, 'n'},
		{"seconds", required_argument, NULL, 's'},
		{NULL, 0, NULL, 0},
	};
	int c, have_kind = 0;

	memset(o, 0, sizeof(*o));
	o->threads = 1;
	o->seconds = 2.0;
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case 'k':
			if (bench_kind_parse(optarg, &o->kind) != 0)
				return -1;
			have_kind = 1;
			break;
		case 'N': o->name = optarg; break;
		case 'c': o->cert = optarg; break;
		case 'n':
			if (bench_parse_count(optarg, BENCH_MAX_THREADS, &o->threads) != 0)
				return -1;
			break;
		case 's':
			if (bench_parse_seconds(optarg, &o->seconds) != 0)
				return -1;
			break;
		default:
			return -1;
		}
	}
	if (optind != argc || !have_kind || o->name == NULL || o->cert == NULL)
		return bench_fail("usage: %s --kind rsa2048|ec_p256 --%s VALUE --cert PEM "
				  "[--threads N] [--seconds S]", bench_progname, name_option);
	return 0;
}

/* ------------------------------------------------------- the timed loop */

struct run_shared {
	pthread_barrier_t warm;		/* every thread has warmed up    */
	pthread_barrier_t go;		/* start is set                  */
	double start;
};

struct run_thread {
	bench_sign_fn fn;
	void *ctx;
	int warmup;
	double seconds;
	struct run_shared *sh;
	unsigned long count;
	double end;
	int failed;
};

static void *
run_thread_main(void *arg)
{
	struct run_thread *t = arg;
	struct run_shared *sh = t->sh;
	double deadline;
	int i;

	for (i = 0; i < t->warmup && !t->failed; i++)
		if (t->fn(t->ctx) != 0)
			t->failed = 1;
	/* Everyone has warmed up; the last one to arrive sets the start. */
	if (pthread_barrier_wait(&sh->warm) == PTHREAD_BARRIER_SERIAL_THREAD)
		sh->start = bench_now();
	pthread_barrier_wait(&sh->go);
	deadline = sh->start + t->seconds;
	while (!t->failed) {
		if (t->fn(t->ctx) != 0) {
			t->failed = 1;
			break;
		}
		t->count++;
		if ((t->end = bench_now()) >= deadline)
			break;
	}
	return NULL;
}

int
bench_run(bench_sign_fn fn, void **ctx, int nthreads, int warmup,
	  double seconds, unsigned long *count, double *elapsed)
{
	struct run_shared sh;
	struct run_thread t[BENCH_MAX_THREADS];
	pthread_t tid[BENCH_MAX_THREADS];
	int i, r;
	double end = 0;

	if (nthreads < 1 || nthreads > BENCH_MAX_THREADS)
		return bench_fail("bad number of threads %d: expected 1 to %d",
				  nthreads, BENCH_MAX_THREADS);
	memset(&sh, 0, sizeof(sh));
	pthread_barrier_init(&sh.warm, NULL, (unsigned)nthreads);
	pthread_barrier_init(&sh.go, NULL, (unsigned)nthreads);
	for (i = 0; i < nthreads; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].fn = fn;
		t[i].ctx = ctx[i];
		t[i].warmup = warmup;
		t[i].seconds = seconds;
		t[i].sh = &sh;
	}
	for (i = 0; i < nthreads; i++) {
		int e = pthread_create(&tid[i], NULL, run_thread_main, &t[i]);

		if (e != 0) {
			/* The threads already started wait at the barrier for
			 * this one: nothing to unwind, the run is lost. */
			bench_fail("cannot start thread %d: %s", i + 1, strerror(e));
			exit(1);
		}
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(tid[i], NULL);
	*count = 0;
	r = 0;
	for (i = 0; i < nthreads; i++) {
		if (t[i].failed)
			r = -1;
		*count += t[i].count;
		if (t[i].end > end)
			end = t[i].end;
	}
	*elapsed = end - sh.start;
	pthread_barrier_destroy(&sh.warm);
	pthread_barrier_destroy(&sh.go);
	return r;
}

void
bench_report(const char *what, enum bench_kind kind, int nthreads,
	     unsigned long count, double elapsed)
{
	printf("%.1f %lu %.6f\n", elapsed > 0 ? (double)count / elapsed : 0.0, count,
	       elapsed);
	fprintf(stderr, "%s: %s %s: %lu signatures in %.3f s on %d thread%s\n",
		bench_progname, what, bench_kind_name(kind), count, elapsed,
		nthreads, nthreads == 1 ? "" : "s");
}

/* ---------------------------------------------------------- files, hex */

int
bench_read_file(const char *path, unsigned char **data, size_t *len)
{
	FILE *fp = NULL;
	unsigned char *buf = NULL;
	size_t n = 0;
	int r = -1;

	if ((fp = fopen(path, "rb")) == NULL) {
		bench_fail("cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if ((buf = malloc(BENCH_MAX_FILE)) == NULL) {
		bench_fail("cannot read %s: out of memory", path);
		goto out;
	}
	n = fread(buf, 1, BENCH_MAX_FILE, fp);
	if (ferror(fp)) {
		bench_fail("cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	if (!feof(fp) && fgetc(fp) != EOF) {
		bench_fail("cannot read %s: larger than %d bytes", path, BENCH_MAX_FILE);
		goto out;
	}
	*data = buf;
	*len = n;
	buf = NULL;
	r = 0;
out:
	free(buf);
	if (fp != NULL)
		fclose(fp);
	return r;
}

int
bench_read_pin(const char *path, char *pin, size_t size, size_t *len)
{
	FILE *fp = NULL;
	size_t n;
	int r = -1;

	if ((fp = fopen(path, "r")) == NULL) {
		bench_fail("cannot open the PIN file %s: %s", path, strerror(errno));
		goto out;
	}
	n = fread(pin, 1, size - 1, fp);
	if (ferror(fp)) {
		bench_fail("cannot read the PIN file %s: %s", path, strerror(errno));
		goto out;
	}
	while (n > 0 && (pin[n - 1] == '\n' || pin[n - 1] == '\r'))
		n--;
	pin[n] = '\0';
	if (n == 0) {
		bench_fail("cannot read the PIN file %s: it is empty", path);
		goto out;
	}
	*len = n;
	r = 0;
out:
	if (r != 0)
		OPENSSL_cleanse(pin, size);
	if (fp != NULL)
		fclose(fp);
	return r;
}

static int
hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
bench_hex_decode(const char *hex, unsigned char *out, size_t size, size_t *len)
{
	size_t n = strlen(hex), i;

	if (n == 0 || n % 2 != 0 || n / 2 > size)
		return bench_fail("bad key id %s: expected 2 to %zu hex digits", hex, 2 * size);
	for (i = 0; i < n / 2; i++) {
		int hi = hex_digit((unsigned char)hex[2 * i]);
		int lo = hex_digit((unsigned char)hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return bench_fail("bad key id %s: not hex", hex);
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	*len = n / 2;
	return 0;
}

/* ------------------------------------------------------------- crypto */

int
bench_sign_input(enum bench_kind kind, const unsigned char *msg, size_t msg_len,
		 unsigned char *out, size_t size, size_t *len)
{
	size_t off = kind == BENCH_RSA2048 ? sizeof(sha256_prefix) : 0;
	unsigned int dlen = 0;

	if (size < off + 32)
		return bench_fail("cannot hash the message: buffer too small");
	memcpy(out, sha256_prefix, off);
	if (EVP_Digest(msg, msg_len, out + off, &dlen, EVP_sha256(), NULL) != 1)
		return bench_fail("cannot hash the message: SHA-256 failed");
	*len = off + dlen;
	return 0;
}

int
bench_ecdsa_der(const unsigned char *rs, size_t rs_len, unsigned char *der,
		size_t size, size_t *der_len)
{
	ECDSA_SIG *sig = NULL;
	BIGNUM *br = NULL, *bs = NULL;
	unsigned char *p = der;
	int n, r = -1;

	if (rs_len == 0 || rs_len % 2 != 0) {
		bench_fail("cannot encode the ECDSA signature: %zu bytes is not r || s", rs_len);
		goto out;
	}
	if ((sig = ECDSA_SIG_new()) == NULL ||
	    (br = BN_bin2bn(rs, (int)(rs_len / 2), NULL)) == NULL ||
	    (bs = BN_bin2bn(rs + rs_len / 2, (int)(rs_len / 2), NULL)) == NULL ||
	    ECDSA_SIG_set0(sig, br, bs) != 1) {
		bench_fail("cannot encode the ECDSA signature: out of memory");
		goto out;
	}
	br = bs = NULL;
	n = i2d_ECDSA_SIG(sig, NULL);
	if (n <= 0 || (size_t)n > size) {
		bench_fail("cannot encode the ECDSA signature: %d bytes do not fit", n);
		goto out;
	}
	*der_len = (size_t)i2d_ECDSA_SIG(sig, &p);
	r = 0;
out:
	BN_free(br);
	BN_free(bs);
	ECDSA_SIG_free(sig);
	return r;
}

int
bench_verify(enum bench_kind kind, const unsigned char *cert_der, size_t cert_len,
	     const unsigned char *msg, size_t msg_len,
	     const unsigned char *sig, size_t sig_len)
{
	const unsigned char *p = cert_der;
	X509 *cert = NULL;
	EVP_MD_CTX *md = NULL;
	int r = -1;

	if ((cert = d2i_X509(NULL, &p, (long)cert_len)) == NULL) {
		bench_fail("cannot verify the %s signature: the certificate does not parse",
			   bench_kind_name(kind));
		goto out;
	}
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(cert)) != 1) {
		bench_fail("cannot verify the %s signature: EVP_DigestVerifyInit failed",
			   bench_kind_name(kind));
		goto out;
	}
	if (EVP_DigestVerify(md, sig, sig_len, msg, msg_len) != 1) {
		bench_fail("the %s signature does not verify with the certificate",
			   bench_kind_name(kind));
		goto out;
	}
	r = 0;
out:
	EVP_MD_CTX_free(md);
	X509_free(cert);
	return r;
}

int
bench_verify_pem(enum bench_kind kind, const char *cert_pem,
		 const unsigned char *msg, size_t msg_len,
		 const unsigned char *sig, size_t sig_len)
{
	FILE *fp = NULL;
	X509 *cert = NULL;
	unsigned char *der = NULL;
	int der_len, r = -1;

	if ((fp = fopen(cert_pem, "r")) == NULL ||
	    (cert = PEM_read_X509(fp, NULL, NULL, NULL)) == NULL ||
	    (der_len = i2d_X509(cert, &der)) <= 0) {
		bench_fail("cannot read the certificate %s", cert_pem);
		goto out;
	}
	r = bench_verify(kind, der, (size_t)der_len, msg, msg_len, sig, sig_len);
out:
	OPENSSL_free(der);
	X509_free(cert);
	if (fp != NULL)
		fclose(fp);
	return r;
}

/* ------------------------------------------------------------ PKCS#11 */

static int
p11_fail(const char *what, CK_RV rv)
{
	return bench_fail("%s: PKCS#11 error 0x%08lx", what, (unsigned long)rv);
}

/* The label field of CK_TOKEN_INFO is blank-padded to 32 bytes. */
static int
label_matches(const CK_UTF8CHAR field[32], const char *label)
{
	size_t n = strlen(label), i;

	if (n > 32 || memcmp(field, label, n) != 0)
		return 0;
	for (i = n; i < 32; i++)
		if (field[i] != ' ')
			return 0;
	return 1;
}

int
bench_p11_open(struct bench_p11 *p, const char *module, const char *label)
{
	CK_RV (*get_list)(CK_FUNCTION_LIST **);
	CK_C_INITIALIZE_ARGS args;
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64, i;
	CK_TOKEN_INFO info;
	CK_RV rv;

	memset(p, 0, sizeof(*p));
	if ((p->dl = dlopen(module, RTLD_NOW | RTLD_LOCAL)) == NULL)
		return bench_fail("cannot load %s: %s", module, dlerror());
	*(void **)&get_list = dlsym(p->dl, "C_GetFunctionList");
	if (get_list == NULL)
		return bench_fail("cannot load %s: no C_GetFunctionList", module);
	if ((rv = get_list(&p->f)) != CKR_OK)
		return p11_fail("C_GetFunctionList", rv);
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	if ((rv = p->f->C_Initialize(&args)) != CKR_OK)
		return p11_fail("C_Initialize", rv);
	p->initialized = 1;
	if ((rv = p->f->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK)
		return p11_fail("C_GetSlotList", rv);
	for (i = 0; i < n; i++) {
		if (p->f->C_GetTokenInfo(slots[i], &info) == CKR_OK &&
		    label_matches(info.label, label)) {
			p->slot = slots[i];
			return 0;
		}
	}
	return bench_fail("cannot find the token: no token labelled %s", label);
}

void
bench_p11_close(struct bench_p11 *p)
{
	if (p->initialized)
		p->f->C_Finalize(NULL);
	if (p->dl != NULL)
		dlclose(p->dl);
	memset(p, 0, sizeof(*p));
}

int
bench_p11_session(struct bench_p11 *p, CK_SESSION_HANDLE *s)
{
	CK_RV rv = p->f->C_OpenSession(p->slot, CKF_SERIAL_SESSION, NULL, NULL, s);

	return rv == CKR_OK ? 0 : p11_fail("C_OpenSession", rv);
}

int
bench_p11_login(struct bench_p11 *p, CK_SESSION_HANDLE s, const char *pin_file)
{
	char pin[BENCH_MAX_PIN];
	size_t len = 0;
	CK_RV rv;
	int r = -1;

	if (bench_read_pin(pin_file, pin, sizeof(pin), &len) != 0)
		goto out;
	rv = p->f->C_Login(s, CKU_USER, (CK_UTF8CHAR *)pin, (CK_ULONG)len);
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		p11_fail("C_Login", rv);
		goto out;
	}
	r = 0;
out:
	OPENSSL_cleanse(pin, sizeof(pin));
	return r;
}

int
bench_p11_find(struct bench_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
	       const unsigned char *id, size_t id_len, CK_OBJECT_HANDLE *obj)
{
	CK_ATTRIBUTE t[] = {
		{CKA_CLASS, &cls, sizeof(cls)},
		{CKA_ID, (void *)id, (CK_ULONG)id_len},
	};
	CK_OBJECT_HANDLE h[2];
	CK_ULONG n = 0;
	CK_RV rv;

	if ((rv = p->f->C_FindObjectsInit(s, t, 2)) != CKR_OK)
		return p11_fail("C_FindObjectsInit", rv);
	rv = p->f->C_FindObjects(s, h, 2, &n);
	p->f->C_FindObjectsFinal(s);
	if (rv != CKR_OK)
		return p11_fail("C_FindObjects", rv);
	if (n != 1)
		return bench_fail("cannot find the %s: %lu objects have that key id",
				  cls == CKO_PRIVATE_KEY ? "private key" : "certificate",
				  (unsigned long)n);
	*obj = h[0];
	return 0;
}

int
bench_p11_value(struct bench_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj,
		unsigned char **value, size_t *len)
{
	CK_ATTRIBUTE a = {CKA_VALUE, NULL, 0};
	CK_RV rv;

	if ((rv = p->f->C_GetAttributeValue(s, obj, &a, 1)) != CKR_OK)
		return p11_fail("C_GetAttributeValue", rv);
	if ((a.pValue = malloc(a.ulValueLen)) == NULL)
		return bench_fail("cannot read CKA_VALUE: out of memory");
	if ((rv = p->f->C_GetAttributeValue(s, obj, &a, 1)) != CKR_OK) {
		free(a.pValue);
		return p11_fail("C_GetAttributeValue", rv);
	}
	*value = a.pValue;
	*len = a.ulValueLen;
	return 0;
}

int
bench_p11_sign(struct bench_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
	       enum bench_kind kind, const unsigned char *msg, size_t msg_len,
	       unsigned char *sig, size_t *sig_len)
{
	CK_MECHANISM mech = {kind == BENCH_RSA2048 ? CKM_RSA_PKCS : CKM_ECDSA, NULL, 0};
	unsigned char in[64];
	size_t in_len;
	CK_ULONG n = BENCH_MAX_SIG;
	CK_RV rv;

	if (bench_sign_input(kind, msg, msg_len, in, sizeof(in), &in_len) != 0)
		return -1;
	if ((rv = p->f->C_SignInit(s, &mech, key)) != CKR_OK)
		return p11_fail("C_SignInit", rv);
	if ((rv = p->f->C_Sign(s, in, (CK_ULONG)in_len, sig, &n)) != CKR_OK)
		return p11_fail("C_Sign", rv);
	*sig_len = n;
	return 0;
}

/* ------------------------------------------------------------ EVP keys */

#define EVP_WARMUP 20

struct evp_worker {
	EVP_PKEY *pkey;
	enum bench_md_by by;
	EVP_MD_CTX *md;
	unsigned char sig[BENCH_MAX_SIG];
	size_t sig_len;
};

static int
evp_sign_once(void *ctx)
{
	struct evp_worker *w = ctx;
	int inited;

	w->sig_len = sizeof(w->sig);
	if (EVP_MD_CTX_reset(w->md) != 1)
		return bench_fail("cannot sign: EVP_MD_CTX_reset failed");
	inited = w->by == BENCH_MD_BY_NAME ?
		 EVP_DigestSignInit_ex(w->md, NULL, "SHA256", NULL, NULL, w->pkey, NULL) :
		 EVP_DigestSignInit(w->md, NULL, EVP_sha256(), NULL, w->pkey);
	if (inited != 1 || EVP_DigestSign(w->md, w->sig, &w->sig_len, bench_message,
					  sizeof(bench_message)) != 1)
		return bench_fail("cannot sign: EVP_DigestSign failed");
	return 0;
}

int
bench_evp_sign(const char *what, EVP_PKEY *pkey, enum bench_md_by by,
	       const struct bench_signer_opts *o)
{
	struct evp_worker w[BENCH_MAX_THREADS];
	void *ctx[BENCH_MAX_THREADS];
	unsigned long count = 0;
	double elapsed = 0;
	int r = -1;
	long i;

	memset(w, 0, sizeof(w));
	for (i = 0; i < o->threads; i++) {
		w[i].pkey = pkey;
		w[i].by = by;
		if ((w[i].md = EVP_MD_CTX_new()) == NULL) {
			bench_fail("cannot sign through the %s: out of memory", what);
			goto out;
		}
		ctx[i] = &w[i];
	}
	if (bench_run(evp_sign_once, ctx, (int)o->threads, EVP_WARMUP, o->seconds,
		      &count, &elapsed) != 0 ||
	    bench_verify_pem(o->kind, o->cert, bench_message, sizeof(bench_message),
			     w[0].sig, w[0].sig_len) != 0)
		goto out;
	bench_report(what, o->kind, (int)o->threads, count, elapsed);
	r = 0;
out:
	for (i = 0; i < o->threads; i++)
		EVP_MD_CTX_free(w[i].md);
	return r;
}
