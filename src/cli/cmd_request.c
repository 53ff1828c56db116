/*
 * cmd_request.c — `custody request` (Request-CsCertificate): a key pair is
 * generated inside the token, then either a PKCS#10 request signed by it
 * is written to a new file (--csr), or a self-signed certificate is made
 * with it and put on the token, recorded in the store and optionally
 * assigned (--self-signed).  The private key never leaves the token: the
 * signatures are made by the token through custody's own PKCS#11 calls
 * (custody/token_x509.h), in the session that generated the key, and
 * checked with the generated public key before anything is written.
 *
 * All or nothing: everything that can be checked is checked before the
 * token is touched; when a later step fails, the key pair (and the
 * certificate) are destroyed again and the request file removed.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <custody/cluster.h>
#include <custody/hexfmt.h>
#include <custody/policy.h>
#include <custody/timefmt.h>
#include <custody/token_x509.h>

#include "change.h"
#include "cli.h"

#define DAYS_MAX 36500
#define DN_MAX_RDNS 32

enum {
	OPT_SUBJECT = OPT_FIRST_COMMAND_OPTION,
	OPT_SAN,
	OPT_KEY,
	OPT_LABEL,
	OPT_CSR,
	OPT_SELF_SIGNED,
	OPT_DAYS,
	OPT_REPLICABLE,
	OPT_EFFECTIVE_DATE,
	OPT_ROLL,
};

struct request_opts {
	const char *subject;
	const char *san;
	const char *key;
	const char *label;
	const char *csr;
	const char *days;
	const char *type;
	const char *identity;
	const char *effective_date;
	int self_signed;
	int replicable;
	int roll;
};

/* What the options come to, checked before the token is touched. */
struct request {
	custody_keyspec spec;
	X509_NAME *subject;
	X509_EXTENSION *san;	/* NULL without --san */
	char subject_text[1024];
	char label[256];
	long days;
	struct change_request change;
	char type[CUSTODY_NAME_MAX + 1];
	char identity[CUSTODY_NAME_MAX + 1];
};

/* What was made, to undo on failure. */
struct made {
	int fd;			/* the request file, -1 when not open */
	int created_file;
	int created_key;
	char key_id[CUSTODY_KEY_ID_HEX + 1];
	EVP_PKEY *pub;
};

static int
on_option(struct cli *cli, int c, const char *arg, void *ctx)
{
	struct request_opts *o = ctx;

	(void)cli;
	switch (c) {
	case OPT_SUBJECT: o->subject = arg; break;
	case OPT_SAN: o->san = arg; break;
	case OPT_KEY: o->key = arg; break;
	case OPT_LABEL: o->label = arg; break;
	case OPT_CSR: o->csr = arg; break;
	case OPT_SELF_SIGNED: o->self_signed = 1; break;
	case OPT_DAYS: o->days = arg; break;
	case OPT_REPLICABLE: o->replicable = 1; break;
	case OPT_EFFECTIVE_DATE: o->effective_date = arg; break;
	case OPT_ROLL: o->roll = 1; break;
	case 't': o->type = arg; break;
	case 'i': o->identity = arg; break;
	}
	return CUSTODY_OK;
}

/* ------------------------------------------------------------ subject */

/* One "type=value" of a DN, unescaped into val (RFC 4514 escapes: \c for
 * a special character, \XX for a byte).  Spaces around type and value are
 * dropped. */
static int
dn_attribute(struct cli *cli, const char *s, size_t len, char *type,
	     size_t type_size, char *val, size_t val_size)
{
	const char *eq = memchr(s, '=', len), *end = s + len;
	size_t t = 0, v = 0, keep = 0;
	const char *p;

	if (eq == NULL)
		return cli_usage_error(cli, "--subject: '%.*s' is not TYPE=VALUE",
				       (int)len, s);
	for (p = s; p < eq; p++) {
		if (*p == ' ')
			continue;
		if (t + 1 >= type_size)
			return cli_usage_error(cli, "--subject: attribute type too long");
		type[t++] = *p;
	}
	type[t] = '\0';
	for (p = eq + 1; p < end && *p == ' '; p++)
		;
	for (; p < end; p++) {
		int c = (unsigned char)*p;

		if (v + 1 >= val_size)
			return cli_usage_error(cli, "--subject: value of %s too long", type);
		if (c == '\\') {
			int hi = p + 2 < end ? OPENSSL_hexchar2int((unsigned char)p[1]) : -1;
			int lo = hi >= 0 ? OPENSSL_hexchar2int((unsigned char)p[2]) : -1;

			if (hi >= 0 && lo >= 0) {
				c = hi << 4 | lo;
				p += 2;
			} else if (p + 1 < end) {
				c = (unsigned char)*++p;
			} else {
				return cli_usage_error(cli, "--subject: a '\\' ends the value of %s",
						       type);
			}
			val[v++] = (char)c;
			keep = v;
			continue;
		}
		val[v++] = (char)c;
		if (c != ' ')
			keep = v;
	}
	val[keep] = '\0';	/* trailing unescaped spaces dropped */
	if (t == 0 || keep == 0)
		return cli_usage_error(cli, "--subject: '%.*s' has an empty type or value",
				       (int)len, s);
	return CUSTODY_OK;
}

/* Splits s at unescaped separators sep; offsets of the parts in starts/lens. */
static int
dn_split(struct cli *cli, const char *s, char sep, size_t *starts, size_t *lens,
	 size_t *n)
{
	size_t i, begin = 0, len = strlen(s);

	*n = 0;
	for (i = 0; i <= len; i++) {
		if (i < len && s[i] == '\\') {
			i++;
			continue;
		}
		if (i < len && s[i] == '+' && sep == ',')
			return cli_usage_error(cli, "--subject: multi-valued RDNs ('+') are not "
					       "supported; escape a '+' in a value as \\+");
		if (i < len && s[i] != sep)
			continue;
		if (*n >= DN_MAX_RDNS)
			return cli_usage_error(cli, "--subject: more than %d attributes",
					       DN_MAX_RDNS);
		starts[*n] = begin;
		lens[(*n)++] = i - begin;
		begin = i + 1;
	}
	return CUSTODY_OK;
}

/*
 * The subject, written as custody shows it (RFC 4514 order, most
 * specific first: "CN=sts.example.com,O=Example,C=US") or in OpenSSL's
 * form ("/C=US/O=Example/CN=sts.example.com").
 */
static int
parse_subject(struct cli *cli, const char *text, X509_NAME **out)
{
	size_t starts[DN_MAX_RDNS], lens[DN_MAX_RDNS], n = 0, i, k;
	char type[64], val[512];
	int slash = text[0] == '/', r;
	X509_NAME *name = NULL;

	*out = NULL;
	if ((r = dn_split(cli, text + slash, slash ? '/' : ',', starts, lens, &n)) !=
	    CUSTODY_OK)
		goto out;
	if ((name = X509_NAME_new()) == NULL) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "out of memory");
		goto out;
	}
	for (k = 0; k < n; k++) {
		/* RFC 4514 lists the last RDN first. */
		i = slash ? k : n - 1 - k;
		if ((r = dn_attribute(cli, text + slash + starts[i], lens[i], type,
				      sizeof(type), val, sizeof(val))) != CUSTODY_OK)
			goto out;
		if (OBJ_txt2nid(type) == NID_undef) {
			r = cli_usage_error(cli, "--subject: unknown attribute type %s", type);
			goto out;
		}
		if (X509_NAME_add_entry_by_txt(name, type, MBSTRING_UTF8,
					       (const unsigned char *)val, -1, -1, 0) != 1) {
			r = custody_err_openssl(&cli->err, CUSTODY_EUSAGE,
						"--subject: invalid value for %s", type);
			goto out;
		}
	}
	*out = name;
	name = NULL;
	r = CUSTODY_OK;
out:
	X509_NAME_free(name);
	return r;
}

static void
name_text(X509_NAME *name, char *buf, size_t size)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int len = 0;

	buf[0] = '\0';
	if (bio != NULL &&
	    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0 &&
	    (len = BIO_read(bio, buf, (int)size - 1)) > 0)
		buf[len] = '\0';
	BIO_free(bio);
}

/* The subject CN (UTF-8), the default label. */
static void
subject_cn(X509_NAME *name, char *buf, size_t size)
{
	int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	int len;

	buf[0] = '\0';
	if (i < 0)
		return;
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	if (len > 0 && (size_t)len < size) {
		memcpy(buf, utf8, (size_t)len);
		buf[len] = '\0';
	}
	OPENSSL_free(utf8);
}

/* ---------------------------------------------------------------- SANs */

/* DNS:, IP:, email: and URI: names, comma-separated, none empty. */
static int
parse_san(struct cli *cli, const char *text, X509_EXTENSION **out)
{
	static const char *const kinds[] = {"DNS:", "IP:", "email:", "URI:"};
	const char *p = text, *end;
	size_t i, len;
	int known;

	*out = NULL;
	for (;;) {
		end = strchr(p, ',');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		known = 0;
		for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
			size_t kl = strlen(kinds[i]);

			if (len > kl && strncmp(p, kinds[i], kl) == 0 &&
			    memchr(p, ' ', len) == NULL)
				known = 1;
		}
		if (!known)
			return cli_usage_error(cli, "--san: '%.*s' is not DNS:NAME, IP:ADDRESS, "
					       "email:ADDRESS or URI:URI", (int)len, p);
		if (end == NULL)
			break;
		p = end + 1;
	}
	*out = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, text);
	if (*out == NULL)
		return custody_err_openssl(&cli->err, CUSTODY_EUSAGE, "--san: invalid %s",
					   text);
	return CUSTODY_OK;
}

/* ------------------------------------------------------------ options */

static int
check_days(struct cli *cli, const char *text, long *days)
{
	char *end = NULL;

	errno = 0;
	*days = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || *days < 1 || *days > DAYS_MAX)
		return cli_usage_error(cli, "--days must be a whole number from 1 to %d",
				       DAYS_MAX);
	return CUSTODY_OK;
}

/* The policy's key rules, checked on the key spec before generating. */
static int
check_key_policy(struct cli *cli, const custody_keyspec *spec)
{
	const custody_policy *p = &cli->cfg.policy;
	unsigned bit = spec->curve_nid == NID_secp384r1 ? CUSTODY_CURVE_P384 : CUSTODY_CURVE_P256;

	if (spec->type == EVP_PKEY_RSA && spec->bits < p->min_rsa_bits)
		return custody_err_set(&cli->err, CUSTODY_EFAIL,
				       "%s is refused by the policy: RSA keys need at least %d "
				       "bits", spec->name, p->min_rsa_bits);
	if (spec->type == EVP_PKEY_EC && (p->ec_curves & bit) == 0)
		return custody_err_set(&cli->err, CUSTODY_EFAIL,
				       "%s is refused by the policy: curve not in policy.ec-curves",
				       spec->name);
	return CUSTODY_OK;
}

static int
check_assignment(struct cli *cli, const struct request_opts *o, struct request *rq)
{
	int r;

	if ((r = custody_type_canonical(o->type, rq->type, NULL, &cli->err)) != CUSTODY_OK)
		return r;
	if (o->identity != NULL)
		r = custody_identity_canonical(o->identity, rq->identity, &cli->err);
	else
		r = custody_identity_canonical(cli_default_identity(cli, rq->type), rq->identity,
					       &cli->err);
	if (r != CUSTODY_OK)
		return r;
	if ((r = custody_policy_check_identity(rq->type, rq->identity, &cli->err)) != CUSTODY_OK)
		return r;
	if (o->roll && (r = custody_time_parse(o->effective_date, &rq->change.effective,
					       &cli->err)) != CUSTODY_OK)
		return custody_err_prefix(&cli->err, "--effective-date");
	rq->change.type = rq->type;
	rq->change.identity = rq->identity;
	rq->change.roll = o->roll;
	return CUSTODY_OK;
}

/* Everything the options say, checked before anything is touched. */
static int
check_options(struct cli *cli, const struct request_opts *o, struct request *rq)
{
	int r;

	if (o->subject == NULL || o->subject[0] == '\0')
		return cli_usage_error(cli, "--subject DN is required");
	if ((o->csr != NULL) == o->self_signed)
		return cli_usage_error(cli, "give exactly one of --csr FILE and --self-signed");
	if (o->self_signed && o->days == NULL)
		return cli_usage_error(cli, "--self-signed needs --days N");
	if (!o->self_signed && o->days != NULL)
		return cli_usage_error(cli, "--days goes with --self-signed");
	if (!o->self_signed && (o->type != NULL || o->identity != NULL || o->roll))
		return cli_usage_error(cli, "-t, -i and --roll go with --self-signed (a request "
				       "is assigned once its certificate is imported)");
	if (o->roll && o->effective_date == NULL)
		return cli_usage_error(cli, "--roll needs --effective-date TIME");
	if (o->effective_date != NULL && !o->roll)
		return cli_usage_error(cli, "--effective-date needs --roll");
	if (o->type == NULL && (o->identity != NULL || o->roll))
		return cli_usage_error(cli, "-i and --roll need -t TYPE");
	if (o->csr != NULL && o->csr[0] == '\0')
		return cli_usage_error(cli, "--csr needs a file name");
	if (o->label != NULL && (o->label[0] == '\0' || strlen(o->label) > 255))
		return cli_usage_error(cli, "--label must be 1 to 255 characters");
	if (o->days != NULL && (r = check_days(cli, o->days, &rq->days)) != CUSTODY_OK)
		return r;
	/* An unknown key spec is refused like the other bad input of the
	 * request (exit 1, nothing created), not as a usage error. */
	if ((r = custody_keyspec_parse(o->key != NULL ? o->key : "rsa:2048", &rq->spec,
				       &cli->err)) != CUSTODY_OK) {
		cli->err.code = CUSTODY_EFAIL;
		return CUSTODY_EFAIL;
	}
	if ((r = parse_subject(cli, o->subject, &rq->subject)) != CUSTODY_OK)
		return r;
	name_text(rq->subject, rq->subject_text, sizeof(rq->subject_text));
	if (o->san != NULL && (r = parse_san(cli, o->san, &rq->san)) != CUSTODY_OK)
		return r;
	if (o->label != NULL)
		snprintf(rq->label, sizeof(rq->label), "%s", o->label);
	else
		subject_cn(rq->subject, rq->label, sizeof(rq->label));
	if (rq->label[0] == '\0')
		return cli_usage_error(cli, "the subject has no CN to label the key with: give "
				       "--label");
	if ((r = check_key_policy(cli, &rq->spec)) != CUSTODY_OK)
		return r;
	if (o->type != NULL && (r = check_assignment(cli, o, rq)) != CUSTODY_OK)
		return r;
	if (o->self_signed)
		return cli_check_output(cli, 1u << OUT_TABLE | 1u << OUT_JSON | 1u << OUT_THUMBPRINT);
	return cli_check_output(cli, 1u << OUT_TABLE | 1u << OUT_JSON);
}

/* ------------------------------------------------------ building, signing */

/* SHA-384 for P-384 keys, SHA-256 for the others. */
static int
digest_for(const custody_keyspec *spec)
{
	return spec->curve_nid == NID_secp384r1 ? NID_sha384 : NID_sha256;
}

static int
push_ext(struct cli *cli, STACK_OF(X509_EXTENSION) *exts, X509_EXTENSION *e,
	 const char *what)
{
	if (e == NULL || sk_X509_EXTENSION_push(exts, e) == 0) {
		X509_EXTENSION_free(e);
		return custody_err_openssl(&cli->err, CUSTODY_EFAIL, "cannot add the %s "
					   "extension", what);
	}
	return CUSTODY_OK;
}

/*
 * The extensions: the SANs; key usage digitalSignature (the key can sign,
 * nothing else); and in the certificate also basicConstraints CA:FALSE and
 * the subject key identifier, which is the key id.
 */
static int
build_exts(struct cli *cli, const struct request *rq, const char *key_id, int cert,
	   STACK_OF(X509_EXTENSION) **out)
{
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	ASN1_OCTET_STRING *ski = NULL;
	unsigned char id[20];
	int r = CUSTODY_EFAIL;

	*out = NULL;
	if (exts == NULL) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "out of memory");
		goto out;
	}
	if (rq->san != NULL &&
	    (r = push_ext(cli, exts, X509_EXTENSION_dup(rq->san), "subjectAltName")) !=
	    CUSTODY_OK)
		goto out;
	if ((r = push_ext(cli, exts, X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage,
							 "critical,digitalSignature"),
			  "keyUsage")) != CUSTODY_OK)
		goto out;
	if (cert) {
		if ((r = push_ext(cli, exts,
				  X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints,
						      "critical,CA:FALSE"),
				  "basicConstraints")) != CUSTODY_OK)
			goto out;
		if (custody_hex_decode(key_id, id, sizeof(id)) != (long)sizeof(id) ||
		    (ski = ASN1_OCTET_STRING_new()) == NULL ||
		    ASN1_OCTET_STRING_set(ski, id, sizeof(id)) != 1) {
			r = custody_err_set(&cli->err, CUSTODY_EFAIL,
					    "cannot make the subject key identifier");
			goto out;
		}
		if ((r = push_ext(cli, exts, X509V3_EXT_i2d(NID_subject_key_identifier, 0, ski),
				  "subjectKeyIdentifier")) != CUSTODY_OK)
			goto out;
	}
	*out = exts;
	exts = NULL;
	r = CUSTODY_OK;
out:
	ASN1_OCTET_STRING_free(ski);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return r;
}

/* A positive random 128-bit serial number. */
static int
set_serial(struct cli *cli, X509 *x)
{
	unsigned char sn[16];
	BIGNUM *bn = NULL;
	int r = CUSTODY_OK;

	if (RAND_bytes(sn, sizeof(sn)) != 1 ||
	    (sn[0] = (unsigned char)((sn[0] & 0x7f) | 0x40),
	     (bn = BN_bin2bn(sn, sizeof(sn), NULL)) == NULL) ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		r = custody_err_openssl(&cli->err, CUSTODY_EFAIL,
					"cannot make a serial number");
	BN_free(bn);
	return r;
}

/* The certificate, unsigned: self-signed, valid from a few minutes ago
 * (clocks of a cluster differ) for `days` days. */
static int
build_cert(struct cli *cli, const struct request *rq, const struct made *m,
	   long days, X509 **out)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509 *x = X509_new();
	time_t now = (time_t)cli->now;
	int i, r = CUSTODY_EFAIL;

	*out = NULL;
	if (x == NULL || X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_set_subject_name(x, rq->subject) != 1 ||
	    X509_set_issuer_name(x, rq->subject) != 1 ||
	    X509_set_pubkey(x, m->pub) != 1 ||
	    X509_time_adj_ex(X509_getm_notBefore(x), 0, -300, &now) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, &now) == NULL) {
		r = custody_err_openssl(&cli->err, CUSTODY_EFAIL, "cannot make the certificate");
		goto out;
	}
	if ((r = set_serial(cli, x)) != CUSTODY_OK ||
	    (r = build_exts(cli, rq, m->key_id, 1, &exts)) != CUSTODY_OK)
		goto out;
	for (i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
		if (X509_add_ext(x, sk_X509_EXTENSION_value(exts, i), -1) != 1) {
			r = custody_err_openssl(&cli->err, CUSTODY_EFAIL,
						"cannot make the certificate");
			goto out;
		}
	}
	*out = x;
	x = NULL;
	r = CUSTODY_OK;
out:
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_free(x);
	return r;
}

static int
build_csr(struct cli *cli, const struct request *rq, const struct made *m,
	  X509_REQ **out)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_REQ *req = X509_REQ_new();
	int r = CUSTODY_EFAIL;

	*out = NULL;
	if (req == NULL || X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_REQ_set_subject_name(req, rq->subject) != 1 ||
	    X509_REQ_set_pubkey(req, m->pub) != 1) {
		r = custody_err_openssl(&cli->err, CUSTODY_EFAIL, "cannot make the request");
		goto out;
	}
	if ((r = build_exts(cli, rq, m->key_id, 0, &exts)) != CUSTODY_OK)
		goto out;
	if (X509_REQ_add_extensions(req, exts) != 1) {
		r = custody_err_openssl(&cli->err, CUSTODY_EFAIL, "cannot make the request");
		goto out;
	}
	*out = req;
	req = NULL;
	r = CUSTODY_OK;
out:
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	return r;
}

/* The key was just made: not finding it is a failure of the token (exit
 * 1), never "nothing found" (exit 3). */
static int
sign_failed(struct cli *cli, int r)
{
	if (r == CUSTODY_ENOTFOUND)
		r = cli->err.code = CUSTODY_EFAIL;
	return r;
}

/* Signs in the token; the library checks the signature with the
 * generated public key: a request or certificate whose signature does not
 * verify is never written. */
static int
sign_csr(struct cli *cli, const struct request *rq, struct made *m, X509_REQ *req)
{
	int r;

	cli_say(cli, "signing the request with key %s inside token %s", m->key_id,
		custody_token_label(cli->token));
	if ((r = custody_token_sign_req(cli->token, m->key_id, digest_for(&rq->spec), m->pub,
					req, &cli->err)) != CUSTODY_OK)
		return sign_failed(cli, r);
	cli_say(cli, "the request's signature verifies with the generated public key");
	return CUSTODY_OK;
}

/* *x is replaced by the signed certificate (custody/token_x509.h). */
static int
sign_cert(struct cli *cli, const struct request *rq, struct made *m, X509 **x)
{
	int r;

	cli_say(cli, "signing the certificate with key %s inside token %s", m->key_id,
		custody_token_label(cli->token));
	if ((r = custody_token_sign_cert(cli->token, m->key_id, digest_for(&rq->spec), m->pub,
					 x, &cli->err)) != CUSTODY_OK)
		return sign_failed(cli, r);
	cli_say(cli, "the certificate's signature verifies with the generated public key");
	return CUSTODY_OK;
}

/* ------------------------------------------------------------- outputs */

/* The request file: created here, never an existing one. */
static int
create_file(struct cli *cli, const char *path, struct made *m)
{
	m->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (m->fd < 0)
		return custody_err_set(&cli->err, CUSTODY_EFAIL, "cannot create %s: %s%s", path,
				       strerror(errno), errno == EEXIST ? " (an existing file "
				       "is never overwritten)" : "");
	m->created_file = 1;
	return CUSTODY_OK;
}

static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
write_csr(struct cli *cli, const char *path, struct made *m, X509_REQ *req)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long len = 0;
	int r = CUSTODY_EFAIL;

	if (bio == NULL || PEM_write_bio_X509_REQ(bio, req) != 1 ||
	    (len = BIO_get_mem_data(bio, &pem)) <= 0) {
		r = custody_err_openssl(&cli->err, CUSTODY_EFAIL, "cannot encode the request");
		goto out;
	}
	if (write_all(m->fd, pem, (size_t)len) != 0 || fsync(m->fd) != 0) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "cannot write %s: %s", path,
				    strerror(errno));
		goto out;
	}
	if (close(m->fd) != 0) {
		m->fd = -1;
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "cannot write %s: %s", path,
				    strerror(errno));
		goto out;
	}
	m->fd = -1;
	cli_say(cli, "wrote request %s (PEM)", path);
	r = CUSTODY_OK;
out:
	BIO_free(bio);
	return r;
}

static int
print_csr_result(struct cli *cli, const struct request *rq, const struct made *m,
		 const char *path)
{
	char *uri = custody_token_key_uri(cli->token, m->key_id, rq->label);
	json_t *o;
	int r = CUSTODY_OK;

	if (cli->output == OUT_JSON) {
		o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?}", "key_id", m->key_id,
			      "key_algorithm", rq->spec.name, "subject", rq->subject_text,
			      "label", rq->label, "csr", path, "key_uri", uri);
		r = out_json(cli, o);
	} else {
		printf("%s\n", m->key_id);
	}
	free(uri);
	return r;
}

/* --------------------------------------------------------------- modes */

/* The audit entry of a key born on the token (thumbprint NULL for a CSR). */
static int
audit_request(struct cli *cli, const struct made *m, const char *thumbprint)
{
	char detail[160];

	snprintf(detail, sizeof(detail), "generated key id %s on token %s%s", m->key_id,
		 custody_token_label(cli->token), thumbprint != NULL ? ", self-signed" : ", CSR");
	return cli_audit(cli, "request", NULL, NULL, thumbprint, NULL, detail);
}

static int
make_csr(struct cli *cli, const struct request *rq, struct made *m, long days,
	 const char *path)
{
	X509 *x = NULL;
	X509_REQ *req = NULL;
	int r;

	/* The policy sees what a certificate for the request will hold
	 * (names, key); it is signed so that it can be encoded, then dropped. */
	if ((r = build_cert(cli, rq, m, days, &x)) != CUSTODY_OK)
		goto out;
	if ((r = custody_token_sign_cert(cli->token, m->key_id, digest_for(&rq->spec), m->pub,
					 &x, &cli->err)) != CUSTODY_OK) {
		r = sign_failed(cli, r);
		goto out;
	}
	if ((r = custody_policy_check_cert(&cli->cfg.policy, x, &cli->err)) != CUSTODY_OK ||
	    (r = build_csr(cli, rq, m, &req)) != CUSTODY_OK ||
	    (r = sign_csr(cli, rq, m, req)) != CUSTODY_OK ||
	    (r = write_csr(cli, path, m, req)) != CUSTODY_OK)
		goto out;
	/* The key exists from now on: the log says so (no certificate yet). */
	if ((r = cli_open_store(cli)) != CUSTODY_OK ||
	    (r = custody_store_begin(cli->store, &cli->err)) != CUSTODY_OK)
		goto out;
	if ((r = audit_request(cli, m, NULL)) != CUSTODY_OK ||
	    (r = custody_store_commit(cli->store, &cli->err)) != CUSTODY_OK) {
		custody_store_rollback(cli->store);
		goto out;
	}
	cli_say(cli, "have the request signed by your CA, then: custody import --path CERT.pem");
	r = print_csr_result(cli, rq, m, path);
out:
	X509_REQ_free(req);
	X509_free(x);
	return r;
}

/* The certificate onto the token (beside its key) and into the store, and
 * the assignment, in one store transaction. */
static int
record_cert(struct cli *cli, const struct request *rq, const struct request_opts *o,
	    struct made *m, X509 *x)
{
	custody_cert_record rec;
	custody_token_import_result res;
	struct change ch;
	char t[CUSTODY_TIME_TEXT];
	int r, in_tx = 0;

	memset(&rec, 0, sizeof(rec));
	memset(&ch, 0, sizeof(ch));
	if ((r = custody_cert_record_from_x509(x, &rec, &cli->err)) != CUSTODY_OK)
		goto out;
	if (rq->change.type != NULL &&
	    (r = change_plan(cli, &rq->change, &rec, &ch)) != CUSTODY_OK)
		goto out;
	if ((r = custody_token_import(cli->token, NULL, x, NULL, rq->label, o->replicable, &res,
				      &cli->err)) != CUSTODY_OK)
		goto out;
	cli_say(cli, "created self-signed certificate %s on token %s (key id %s, valid until %s)",
		rec.thumbprint, custody_token_label(cli->token), res.key_id,
		out_time(rec.not_after, t));
	rec.label = strdup(rq->label);
	rec.key_uri = custody_token_key_uri(cli->token, m->key_id, rq->label);
	if ((r = custody_store_begin(cli->store, &cli->err)) != CUSTODY_OK)
		goto out;
	in_tx = 1;
	if ((r = custody_store_put_cert(cli->store, &rec, &cli->err)) != CUSTODY_OK ||
	    (r = audit_request(cli, m, rec.thumbprint)) != CUSTODY_OK ||
	    (rq->change.replicable &&
	     (r = custody_cluster_package_put(cli->token, cli->store, cli->node,
					      rec.thumbprint, m->key_id, &cli->err)) !=
	     CUSTODY_OK) ||
	    (rq->change.type != NULL && (r = change_write(cli, &ch)) != CUSTODY_OK) ||
	    (r = custody_cluster_report_held(cli->store, cli->node, rec.thumbprint,
					     "generated", &cli->err)) != CUSTODY_OK ||
	    (r = custody_store_commit(cli->store, &cli->err)) != CUSTODY_OK)
		goto out;
	in_tx = 0;
	if (rq->change.type != NULL)
		change_report(cli, &ch, 0);
	if (cli->output == OUT_JSON)
		r = out_json(cli, out_cert_json(&rec, -1));
	else
		printf("%s\n", rec.thumbprint);
out:
	if (in_tx)
		custody_store_rollback(cli->store);
	custody_cert_record_clear(&rec);
	return r;
}

static int
make_self_signed(struct cli *cli, const struct request *rq, const struct request_opts *o,
		 struct made *m)
{
	X509 *x = NULL;
	int r;

	if ((r = build_cert(cli, rq, m, rq->days, &x)) != CUSTODY_OK ||
	    (r = sign_cert(cli, rq, m, &x)) != CUSTODY_OK ||
	    (r = custody_policy_check_cert(&cli->cfg.policy, x, &cli->err)) != CUSTODY_OK)
		goto out;
	r = record_cert(cli, rq, o, m, x);
out:
	X509_free(x);
	return r;
}

/* ---------------------------------------------------------------- undo */

/* What this request created goes again: key pair (and certificate), file. */
static void
undo(struct cli *cli, struct made *m, const char *path)
{
	custody_err err;

	if (m->created_key) {
		int r = custody_token_delete(cli->token, m->key_id, &err);

		if (r == CUSTODY_OK || r == CUSTODY_ENOTFOUND) {
			cli_say(cli, "removed the key pair %s from token %s again", m->key_id,
				custody_token_label(cli->token));
			custody_token_intent_done(cli->token, m->key_id);
		} else {
			/* Its note of intent stays: custody tidy removes it. */
			cli_warn("could not remove the key pair %s again: %s", m->key_id,
				 err.msg);
		}
	}
	if (m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
	}
	if (m->created_file && unlink(path) != 0)
		cli_warn("could not remove %s again: %s", path, strerror(errno));
}

static int
plan_package(struct cli *cli, const struct request_opts *o, struct request *rq)
{
	char store_kcv[CUSTODY_KCV_HEX + 1], token_kcv[CUSTODY_KCV_HEX + 1];
	int r;

	if ((r = cli_open_store(cli)) != CUSTODY_OK ||
	    (r = custody_cluster_kek_state(cli->token, cli->store, store_kcv, token_kcv,
					   &cli->err)) != CUSTODY_OK)
		return r;
	if (store_kcv[0] == '\0') {
		cli_say(cli, "the store records no cluster KEK: the key is replicable but not "
			"packaged; custody sync packages it on a member later");
	} else if (strcmp(store_kcv, token_kcv) != 0) {
		cli_warn("the key is replicable but not packaged: token %s does not hold the "
			 "cluster KEK (%s)", custody_token_label(cli->token), store_kcv);
	} else if (o->csr != NULL) {
		cli_say(cli, "the key is replicable: import its certificate with custody import "
			"--replicable --path CERT to put its package in the store");
	} else {
		cli_say(cli, "the key is replicable: its package (wrapped under the cluster KEK "
			"%s) goes to the store with its certificate", store_kcv);
		rq->change.replicable = 1;
	}
	return CUSTODY_OK;
}

static int
label_free(struct cli *cli, const struct request *rq)
{
	int used = 0, r;

	if ((r = custody_token_label_used(cli->token, rq->label, &used, &cli->err)) !=
	    CUSTODY_OK)
		return r;
	if (!used)
		return CUSTODY_OK;
	r = custody_err_set(&cli->err, CUSTODY_EFAIL, "label %s is already on token %s",
			    rq->label, custody_token_label(cli->token));
	return custody_err_hint(&cli->err, "choose another one with --label");
}

const char cmd_request_usage[] =
	"custody request --subject DN [--san DNS:a,DNS:b,...] [--key SPEC] [--label L]\n"
	"                [--replicable] (--csr FILE | --self-signed --days N\n"
	"                [-t TYPE [-i IDENTITY] [--roll --effective-date TIME]])\n"
	"\n"
	"Generates the key pair inside the token (never outside; not extractable),\n"
	"then writes a PKCS#10 request signed by it to a new FILE, or creates a\n"
	"self-signed certificate on the token and records it (optionally assigned).\n"
	"Import the CA-issued certificate later with `custody import --path CERT`.\n"
	"Prints the key id (--csr) or the certificate's thumbprint (--self-signed).\n"
	"\n"
	"  --subject DN              \"CN=sts.example.com,O=Example\" (or \"/O=Example/CN=...\")\n"
	"  --san LIST                DNS:NAME, IP:ADDRESS, email:ADDRESS, URI:URI, comma-separated\n"
	"  --key SPEC                rsa:2048 (default), rsa:3072, rsa:4096, ec:p256, ec:p384\n"
	"  --label L                 CKA_LABEL (default: the subject CN); must be new on the token\n"
	"  --replicable              extractable only under trusted wrap (for the cluster)\n"
	"  --csr FILE                write the request there (an existing file is never overwritten)\n"
	"  --self-signed --days N    make a self-signed certificate valid for N days\n"
	"  -t, --type TYPE           also assign it, as `custody set` does\n"
	"  -i, --identity IDENTITY   where to assign it\n"
	"  --roll --effective-date TIME   stage it to become current at TIME\n";

int
cmd_request(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		{"subject", required_argument, NULL, OPT_SUBJECT},
		{"san", required_argument, NULL, OPT_SAN},
		{"key", required_argument, NULL, OPT_KEY},
		{"label", required_argument, NULL, OPT_LABEL},
		{"csr", required_argument, NULL, OPT_CSR},
		{"self-signed", no_argument, NULL, OPT_SELF_SIGNED},
		{"days", required_argument, NULL, OPT_DAYS},
		{"replicable", no_argument, NULL, OPT_REPLICABLE},
		{"type", required_argument, NULL, 't'},
		{"identity", required_argument, NULL, 'i'},
		{"effective-date", required_argument, NULL, OPT_EFFECTIVE_DATE},
		{"roll", no_argument, NULL, OPT_ROLL},
		{NULL, 0, NULL, 0},
	};
	struct request_opts o;
	struct request rq;
	struct made m;
	int r;

	memset(&o, 0, sizeof(o));
	memset(&rq, 0, sizeof(rq));
	memset(&m, 0, sizeof(m));
	m.fd = -1;
	if ((r = cli_parse(cli, argc, argv, options, "t:i:", on_option, &o)) != CUSTODY_OK)
		return r;
	/* 1. The options, the names and the policy: before anything else. */
	if ((r = check_options(cli, &o, &rq)) != CUSTODY_OK)
		goto out;
	if (o.self_signed && (r = cli_open_store(cli)) != CUSTODY_OK)
		goto out;
	/* 2. The output file exists before the key does. */
	if (o.csr != NULL && (r = create_file(cli, o.csr, &m)) != CUSTODY_OK)
		goto out;
	/* 3. The token, and the label free on it. */
	if ((r = cli_open_token(cli)) != CUSTODY_OK ||
	    (r = custody_token_require_key(cli->token, rq.spec.type, rq.spec.bits, "generate",
					   &cli->err)) != CUSTODY_OK ||
	    (o.replicable &&
	     (r = custody_token_require_cluster(cli->token, "make replicable keys",
						&cli->err)) != CUSTODY_OK) ||
	    (r = label_free(cli, &rq)) != CUSTODY_OK)
		goto out;
	/* A replicable self-signed key goes to the store as a package when
	 * this token holds the cluster's KEK (global in a cluster of several
	 * nodes needs that: change_plan refuses it otherwise). */
	if (o.replicable && (r = plan_package(cli, &o, &rq)) != CUSTODY_OK)
		goto out;
	cli_say(cli, "request for %s%s%s: %s key pair on token %s, label %s", rq.subject_text,
		o.san != NULL ? ", " : "", o.san != NULL ? o.san : "", rq.spec.name,
		custody_token_label(cli->token), rq.label);
	/* 4. The key pair, inside the token. */
	if ((r = custody_token_generate(cli->token, &rq.spec, rq.label, rq.subject,
					o.replicable, m.key_id, &m.pub, &cli->err)) != CUSTODY_OK)
		goto out;
	m.created_key = 1;
	/* 5. Signed inside the token, checked, written. */
	if (o.csr != NULL)
		r = make_csr(cli, &rq, &m, 365, o.csr);
	else
		r = make_self_signed(cli, &rq, &o, &m);
out:
	if (r != CUSTODY_OK)
		undo(cli, &m, o.csr);
	else	/* recorded (the store, or the audit entry of the CSR) */
		custody_token_intent_done(cli->token, m.key_id);
	EVP_PKEY_free(m.pub);
	X509_NAME_free(rq.subject);
	X509_EXTENSION_free(rq.san);
	return r;
}
