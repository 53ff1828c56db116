/*
 * cmd_request.c — `custody request` (Request-CsCertificate): a key pair is
 * generated inside the token, then either a PKCS#10 request signed by it
 * is written to a new file (--csr), or a self-signed certificate is made
 * with it and put on the token, recorded in the store and optionally
 * assigned (--self-signed).  The ceremony is the library's
 * (custody/request.h); this file reads the options, checks them before
 * the token is touched, and prints what was made.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <custody/policy.h>
#include <custody/request.h>

#include "change.h"
#include "cli.h"

#define DAYS_MAX 36500

enum {
	OPT_SUBJECT = OPT_FIRST_CHANGE_COMMAND_OPTION,
	OPT_SAN,
	OPT_KEY,
	OPT_LABEL,
	OPT_CSR,
	OPT_SELF_SIGNED,
	OPT_DAYS,
	OPT_REPLICABLE,
	OPT_KEY_ID,
	OPT_DRY_RUN,
};

struct request_opts {
	const char *subject;
	const char *san;
	const char *key;
	const char *label;
	const char *csr;
	const char *days;
	const char *key_id;	/* a new request for this key on the token */
	int self_signed;
	int replicable;
	int dry_run;
	struct change_opts change;	/* -t, -i, --roll --effective-date */
};

/* What the options come to, checked before the token is touched. */
struct request {
	custody_request lib;	/* the ceremony's (custody/request.h) */
	custody_change_request change;
};

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

/* Which options go together. */
static int
check_combination(struct cli *cli, const struct request_opts *o)
{
	int r;

	/* A request for an existing key may take its certificate's names. */
	if ((o->subject == NULL && o->key_id == NULL) ||
	    (o->subject != NULL && o->subject[0] == '\0'))
		return cli_usage_error(cli, "--subject DN is required");
	if ((o->csr != NULL) == o->self_signed)
		return cli_usage_error(cli, "give exactly one of --csr FILE and --self-signed");
	if (o->self_signed && o->days == NULL)
		return cli_usage_error(cli, "--self-signed needs --days N");
	if (!o->self_signed && o->days != NULL)
		return cli_usage_error(cli, "--days goes with --self-signed");
	if (!o->self_signed &&
	    (change_opts_given(&o->change) || o->change.identity != NULL || o->change.roll))
		return cli_usage_error(cli, "-t, -i and --roll go with --self-signed (a request "
				       "is assigned once its certificate is imported)");
	if ((r = change_opts_usage(cli, &o->change, 0)) != CUSTODY_OK)
		return r;
	if (o->key_id != NULL && (o->self_signed || o->key != NULL || o->label != NULL ||
				  o->replicable))
		return cli_usage_error(cli, "--key-id goes with --csr alone (the key, its label "
				       "and where it may go are the key's already)");
	if (o->key_id != NULL && o->key_id[0] == '\0')
		return cli_usage_error(cli, "--key-id needs a key id (custody list shows them)");
	if (o->csr != NULL && o->csr[0] == '\0')
		return cli_usage_error(cli, "--csr needs a file name");
	if (o->label != NULL && (o->label[0] == '\0' || strlen(o->label) > 255))
		return cli_usage_error(cli, "--label must be 1 to 255 characters");
	return CUSTODY_OK;
}

/* The key, the names and the label of the request. */
static int
check_names(struct cli *cli, const struct request_opts *o, custody_request *lib)
{
	int r;

	/* An unknown key spec is refused like the other bad input of the
	 * request (exit 1, nothing created), not as a usage error. */
	if (o->key_id == NULL &&
	    (r = custody_keyspec_parse(o->key != NULL ? o->key : "rsa:2048", &lib->spec,
				       &cli->err)) != CUSTODY_OK) {
		cli->err.code = CUSTODY_EFAIL;
		return CUSTODY_EFAIL;
	}
	if (o->subject != NULL &&
	    (r = custody_dn_parse(o->subject, &lib->subject, &cli->err)) != CUSTODY_OK)
		return custody_err_prefix(&cli->err, "--subject");
	if (lib->subject != NULL)
		custody_dn_text(lib->subject, lib->subject_text, sizeof(lib->subject_text));
	if (o->san != NULL && (r = custody_san_parse(o->san, &lib->san, &cli->err)) !=
	    CUSTODY_OK)
		return custody_err_prefix(&cli->err, "--san");
	lib->san_text = o->san;
	if (o->label != NULL)
		snprintf(lib->label, sizeof(lib->label), "%s", o->label);
	else if (lib->subject != NULL)
		custody_dn_common_name(lib->subject, lib->label, sizeof(lib->label));
	if (lib->label[0] == '\0' && o->key_id == NULL)
		return cli_usage_error(cli, "the subject has no CN to label the key with: give "
				       "--label");
	return CUSTODY_OK;
}

/* Everything the options say, checked before anything is touched. */
static int
check_options(struct cli *cli, struct request_opts *o, struct request *rq)
{
	custody_request *lib = &rq->lib;
	int r;

	if ((r = check_combination(cli, o)) != CUSTODY_OK ||
	    (o->days != NULL && (r = check_days(cli, o->days, &lib->days)) != CUSTODY_OK) ||
	    (r = check_names(cli, o, lib)) != CUSTODY_OK ||
	    (o->key_id == NULL &&
	     (r = custody_request_check_key_policy(&cli->cfg.policy, &lib->spec, &cli->err)) !=
	     CUSTODY_OK))
		return r;
	/* The assignment of a self-signed certificate. */
	if (change_opts_given(&o->change) &&
	    ((r = change_opts_request(cli, &o->change, &rq->change)) != CUSTODY_OK ||
	     (r = custody_policy_check_identity(rq->change.type, rq->change.identity,
						&cli->err)) != CUSTODY_OK))
		return r;
	lib->csr_path = o->csr;
	lib->replicable = o->replicable;
	cli->preview = o->dry_run;	/* a dry run makes no store */
	lib->now = cli->now;
	lib->node = cli->node;
	if (o->self_signed)
		return cli_check_output(cli, 1u << OUT_TABLE | 1u << OUT_JSON | 1u << OUT_THUMBPRINT);
	return cli_check_output(cli, 1u << OUT_TABLE | 1u << OUT_JSON);
}

/* ------------------------------------------------------------- modes */

static int
make_csr(struct cli *cli, struct request *rq)
{
	custody_request *lib = &rq->lib;
	char *uri;
	json_t *o;
	int r;

	if ((r = custody_request_write_csr(cli->token, &cli->cfg.policy, lib, &cli->err)) !=
	    CUSTODY_OK ||
	    (r = cli_open_store(cli)) != CUSTODY_OK ||
	    (r = custody_request_record_csr(cli->token, cli->store, lib, &cli->err)) !=
	    CUSTODY_OK)
		return r;
	cli_say(cli, "have the request signed by your CA, then: custody import --path CERT.pem");
	uri = custody_token_key_uri(cli->token, lib->key_id,
				    lib->label[0] != '\0' ? lib->label : NULL);
	if (cli->output == OUT_JSON) {
		o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?}", "key_id", lib->key_id,
			      "key_algorithm", lib->spec.name, "subject", lib->subject_text,
			      "label", lib->label, "csr", lib->csr_path, "key_uri", uri);
		if (lib->existing_key)
			json_object_set_new(o, "existing_key", json_true());
		r = out_json(cli, o);
	} else {
		printf("%s\n", lib->key_id);
	}
	free(uri);
	return r;
}

/* The certificate onto the token (beside its key) and into the store, and
 * the assignment, in one store transaction. */
static int
make_self_signed(struct cli *cli, struct request *rq)
{
	custody_cert_record rec;
	custody_change ch;
	X509 *x = NULL;
	int assign = rq->change.type != NULL, r;

	memset(&rec, 0, sizeof(rec));
	memset(&ch, 0, sizeof(ch));
	rq->change.replicable = rq->lib.package;
	if ((r = custody_request_make_cert(cli->token, &cli->cfg.policy, &rq->lib, &x,
					   &cli->err)) != CUSTODY_OK ||
	    (r = custody_cert_record_from_x509(x, &rec, &cli->err)) != CUSTODY_OK ||
	    (assign && (r = change_plan(cli, &rq->change, &rec, &ch)) != CUSTODY_OK) ||
	    (r = custody_request_store_cert(cli->token, cli->store, &rq->lib, x, &rec,
					    assign ? &ch : NULL, &cli->err)) != CUSTODY_OK)
		goto out;
	if (assign)
		change_report(cli, &ch, 0);
	r = out_cert(cli, &rec);
out:
	custody_cert_record_clear(&rec);
	X509_free(x);
	return r;
}

/* The subject (and, unless --san was given, the SANs) of the newest
 * certificate of the key on the token: a renewal asks for the same names. */
static int
names_of_cert(struct cli *cli, custody_request *lib)
{
	custody_cert_record *recs = NULL;
	const custody_cert_record *newest = NULL;
	const unsigned char *p;
	X509 *x = NULL;
	size_t n = 0, i;
	int idx, r;

	if ((r = cli_token_records(cli, &recs, NULL, &n)) != CUSTODY_OK)
		return r;
	for (i = 0; i < n; i++)
		if (strcasecmp(recs[i].key_id, lib->key_id) == 0 &&
		    (newest == NULL || recs[i].not_after > newest->not_after))
			newest = &recs[i];
	if (newest == NULL) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "key id %s has no certificate on "
				    "token %s to take the names from", lib->key_id,
				    custody_token_label(cli->token));
		custody_err_hint(&cli->err, "give them: --subject DN [--san LIST]");
		goto out;
	}
	p = newest->der;
	if ((x = d2i_X509(NULL, &p, (long)newest->der_len)) == NULL ||
	    (lib->subject = X509_NAME_dup(X509_get_subject_name(x))) == NULL ||
	    (lib->san == NULL && (idx = X509_get_ext_by_NID(x, NID_subject_alt_name, -1)) >= 0 &&
	     (lib->san = X509_EXTENSION_dup(X509_get_ext(x, idx))) == NULL)) {
		r = custody_err_openssl(&cli->err, CUSTODY_EFAIL, "cannot read the names of "
					"certificate %s", newest->thumbprint);
		goto out;
	}
	custody_dn_text(lib->subject, lib->subject_text, sizeof(lib->subject_text));
	cli_say(cli, "the names of certificate %s: %s", newest->thumbprint, lib->subject_text);
out:
	X509_free(x);
	custody_cert_records_free(recs, n);
	return r;
}

/* The request file, made before the key (a dry run only checks that it
 * can be: it makes no file). */
static int
new_file(struct cli *cli, custody_request *lib)
{
	if (cli->preview)
		return cli_check_new_file(cli, lib->csr_path, "--csr");
	return custody_request_create_file(lib, &cli->err);
}

/* --dry-run: everything checked up to the key pair, which is not made;
 * says what would be. */
static int
dry_run(struct cli *cli, const struct request *rq)
{
	const custody_request *lib = &rq->lib;
	const char *tok = custody_token_label(cli->token);
	json_t *plan = plan_new("request");

	cli_say(cli, "request: would %s (dry run, nothing written)",
		lib->existing_key ? "sign a new request with the key pair on the token" :
		"generate a key pair on the token");
	if (!lib->existing_key) {
		cli_say(cli, "  would create a %s key pair labelled %s on token %s",
			lib->spec.name, lib->label, tok);
		plan_add_object(plan, "created", json_pack("{s:s, s:s, s:s, s:s}", "object",
							   "key_pair", "where", "token", "label",
							   lib->label, "key_algorithm",
							   lib->spec.name));
	}
	if (lib->csr_path != NULL) {
		cli_say(cli, "  would write the request for %s to %s", lib->subject_text,
			lib->csr_path);
		plan_add_object(plan, "created", json_pack("{s:s, s:s, s:s?, s:s}", "object",
							   "csr_file", "where", lib->csr_path,
							   "key_id", lib->existing_key ?
							   lib->key_id : NULL,
							   "subject", lib->subject_text));
		return plan_print(cli, plan);
	}
	cli_say(cli, "  would create a self-signed certificate for %s, valid %ld days, on "
		"token %s and in the store", lib->subject_text, lib->days, tok);
	plan_add_object(plan, "created", json_pack("{s:s, s:s, s:s}", "object", "certificate",
						   "where", "token", "subject", lib->subject_text));
	plan_add_object(plan, "created", json_pack("{s:s, s:s}", "object",
						   "certificate_record", "where", "store"));
	if (rq->change.type != NULL) {
		cli_say(cli, "  would make it %s of %s/%s", rq->change.roll ? "pending" :
			"current", rq->change.type, rq->change.identity);
		plan_add_object(plan, "changes",
			json_pack("{s:s, s:s, s:s, s:n, s:n}", "type", rq->change.type,
				  "identity", rq->change.identity, "slot",
				  rq->change.roll ? "pending" : "current", "old_thumbprint",
				  "new_thumbprint"));
	}
	return plan_print(cli, plan);
}

/* A new request for a key pair already on the token: the key is found
 * and held to the policy before the request file is made. */
static int
prepare_existing(struct cli *cli, struct request *rq, const char *key_id)
{
	custody_request *lib = &rq->lib;
	int r;

	if ((r = cli_open_token(cli)) != CUSTODY_OK ||
	    (r = custody_request_use_key(cli->token, lib, key_id, &cli->err)) != CUSTODY_OK ||
	    (lib->subject == NULL && (r = names_of_cert(cli, lib)) != CUSTODY_OK) ||
	    (r = custody_request_check_key_policy(&cli->cfg.policy, &lib->spec, &cli->err)) !=
	    CUSTODY_OK)
		return r;
	return new_file(cli, lib);
}

/* The steps up to the key pair: the store, the file, the token. */
static int
prepare(struct cli *cli, struct request *rq)
{
	custody_request *lib = &rq->lib;
	int r;

	/* The output file exists before the key does. */
	if ((lib->csr_path == NULL && (r = cli_open_store(cli)) != CUSTODY_OK) ||
	    (lib->csr_path != NULL && (r = new_file(cli, lib)) != CUSTODY_OK))
		return r;
	/* The token, able to make the key, and the label free on it. */
	if ((r = cli_open_token(cli)) != CUSTODY_OK ||
	    (r = custody_request_check_token(cli->token, lib, &cli->err)) != CUSTODY_OK)
		return r;
	/* A replicable self-signed key goes to the store as a package when
	 * this token holds the cluster's KEK (global in a cluster of several
	 * nodes needs that: change_plan refuses it otherwise). */
	if (lib->replicable &&
	    ((r = cli_open_store(cli)) != CUSTODY_OK ||
	     (r = custody_request_plan_package(cli->token, cli->store, lib, &cli->err)) !=
	     CUSTODY_OK))
		return r;
	return CUSTODY_OK;
}

const char cmd_request_usage[] =
	"custody request --subject DN [--san DNS:a,DNS:b,...] [--key SPEC] [--label L]\n"
	"                [--replicable] (--csr FILE | --self-signed --days N\n"
	"                [-t TYPE [-i IDENTITY] [--roll --effective-date TIME]]) [--dry-run]\n"
	"custody request --key-id K [--subject DN [--san ...]] --csr FILE [--dry-run]\n"
	"\n"
	"Generates the key pair inside the token (never outside; not extractable),\n"
	"then writes a PKCS#10 request signed by it to a new FILE, or creates a\n"
	"self-signed certificate on the token and records it (optionally assigned).\n"
	"Import the CA-issued certificate later with `custody import --path CERT`.\n"
	"Prints the key id (--csr) or the certificate's thumbprint (--self-signed).\n"
	"With --key-id, no key is generated: the request is for the key pair K\n"
	"already on the token (a renewal on the same key); without --subject it asks\n"
	"for the names (subject, SANs) of the key's newest certificate.\n"
	"\n"
	"  --subject DN              \"CN=sts.example.com,O=Example\" (or \"/O=Example/CN=...\")\n"
	"  --san LIST                DNS:NAME, IP:ADDRESS, email:ADDRESS, URI:URI, comma-separated\n"
	"  --key SPEC                rsa:2048 (default), rsa:3072, rsa:4096, ec:p256, ec:p384\n"
	"  --label L                 CKA_LABEL (default: the subject CN); must be new on the token\n"
	"  --replicable              extractable only under trusted wrap (for the cluster)\n"
	"  --csr FILE                write the request there (an existing file is never overwritten)\n"
	"  --key-id K                a request for the key pair K on the token (custody list)\n"
	"  --self-signed --days N    make a self-signed certificate valid for N days\n"
	"  -t, --type TYPE           also assign it, as `custody set` does\n"
	"  -i, --identity IDENTITY   where to assign it\n"
	"  --roll --effective-date TIME   stage it to become current at TIME\n"
	"  --dry-run                 check everything (names, policy, file, token, label)\n"
	"                            and say what would be made, make nothing (-o json:\n"
	"                            the plan as data)\n";

int
cmd_request(struct cli *cli, int argc, char **argv)
{
	struct request_opts o;
	const struct cli_opt options[] = {
		CLI_OPT_TEXT("subject", OPT_SUBJECT, &o.subject),
		CLI_OPT_TEXT("san", OPT_SAN, &o.san),
		CLI_OPT_TEXT("key", OPT_KEY, &o.key),
		CLI_OPT_TEXT("label", OPT_LABEL, &o.label),
		CLI_OPT_TEXT("csr", OPT_CSR, &o.csr),
		CLI_OPT_FLAG("self-signed", OPT_SELF_SIGNED, &o.self_signed),
		CLI_OPT_TEXT("days", OPT_DAYS, &o.days),
		CLI_OPT_FLAG("replicable", OPT_REPLICABLE, &o.replicable),
		CLI_OPT_TEXT("key-id", OPT_KEY_ID, &o.key_id),
		CLI_OPT_FLAG("dry-run", OPT_DRY_RUN, &o.dry_run),
		CHANGE_OPTIONS(&o.change),
		{NULL},
	};
	struct request rq;
	int r;

	memset(&o, 0, sizeof(o));
	memset(&rq, 0, sizeof(rq));
	custody_request_init(&rq.lib);
	if ((r = cli_parse(cli, argc, argv, options, "t:i:", NULL, NULL)) != CUSTODY_OK)
		return r;
	/* 1. The options, the names and the policy: before anything else;
	 * 2. the store, the request file, the token. */
	if ((r = check_options(cli, &o, &rq)) != CUSTODY_OK)
		goto out;
	if ((r = o.key_id != NULL ? prepare_existing(cli, &rq, o.key_id) :
		 prepare(cli, &rq)) != CUSTODY_OK)
		goto out;
	if (o.dry_run) {
		r = dry_run(cli, &rq);
		goto out;
	}
	/* 3. The key pair, inside the token. */
	if (o.key_id == NULL &&
	    (r = custody_request_generate(cli->token, &rq.lib, &cli->err)) != CUSTODY_OK)
		goto out;
	/* 4. Signed inside the token, checked, written, recorded. */
	if (o.csr != NULL)
		r = make_csr(cli, &rq);
	else
		r = make_self_signed(cli, &rq);
out:
	custody_request_finish(cli->token, &rq.lib, r == CUSTODY_OK);
	custody_request_clear(&rq.lib);
	return r;
}
