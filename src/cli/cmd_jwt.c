/*
 * cmd_jwt.c — `custody jwt issue` signs a compact JWS (RS256, PS256, ES256)
 * with the current key of a type through the library signer (the token, or
 * the agent when one is configured: the token is built here either way,
 * the agent signs its SHA-256 digest); `custody jwt
 * verify` checks one against the current, previous or (once due) pending
 * certificate, from the store alone: the signature, exp and nbf, the
 * certificate's validity period, and --aud / --iss when given.
 */
#include "config.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/obj_mac.h>
#include <openssl/x509.h>

#include <custody/jws.h>
#include <custody/policy.h>
#include <custody/signer.h>

#include "cli.h"

enum {
	OPT_CLAIMS = OPT_FIRST_COMMAND_OPTION,
	OPT_LIFETIME,
	OPT_ALG,
	OPT_SKEW,
	OPT_AUD,
	OPT_ISS,
};

struct jwt_opts {
	const char *verb;	/* "issue" or "verify" */
	const char *type;
	const char *claims;
	const char *lifetime;
	const char *alg;
	const char *skew;
	const char *aud;	/* verify: the audience required */
	const char *iss;	/* verify: the issuer required */
	const char *token;
	int operands;
};

#define JWT_MAX_INPUT (1024 * 1024)

static int
on_option(struct cli *cli, int c, const char *arg, void *ctx)
{
	struct jwt_opts *o = ctx;

	switch (c) {
	case 1:
		/* Operands: the verb, then (verify) the token. */
		if (o->operands == 0)
			o->verb = arg;
		else if (o->operands == 1)
			o->token = arg;
		else
			return cli_usage_error(cli, "unexpected argument '%s'", arg);
		o->operands++;
		break;
	}
	return CUSTODY_OK;
}

/* Reads a whole file ("-" is standard input), at most JWT_MAX_INPUT bytes,
 * as a NUL-terminated string. */
static int
read_text(struct cli *cli, const char *path, char **out)
{
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, r = CUSTODY_EFAIL;

	/* O_NONBLOCK: open() of a FIFO without a writer would wait forever;
	 * then the reads block again (no writer reads as end of file). */
	fd = strcmp(path, "-") == 0 ? STDIN_FILENO
				    : open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return custody_err_set(&cli->err, CUSTODY_EFAIL, "cannot read %s: %m", path);
	if (fd != STDIN_FILENO)
		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	if ((buf = malloc(JWT_MAX_INPUT + 1)) == NULL) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "out of memory");
		goto out;
	}
	while ((n = read(fd, buf + len, JWT_MAX_INPUT + 1 - len)) > 0)
		len += (size_t)n;
	if (n < 0) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "cannot read %s: %m", path);
		goto out;
	}
	if (len > JWT_MAX_INPUT) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "%s is larger than %d bytes",
				    path, JWT_MAX_INPUT);
		goto out;
	}
	buf[len] = '\0';
	*out = buf;
	buf = NULL;
	r = CUSTODY_OK;
out:
	free(buf);
	if (fd != STDIN_FILENO)
		close(fd);
	return r;
}

/* A whole number of seconds in [min, max]. */
static int
parse_seconds(struct cli *cli, const char *option, const char *text, long min, long max,
	      int64_t *out)
{
	char *end;
	long v;

	v = strtol(text, &end, 10);
	if (end == text || *end != '\0' || v < min || v > max)
		return cli_usage_error(cli, "%s must be a whole number of seconds from %ld to %ld",
				       option, min, max);
	*out = v;
	return CUSTODY_OK;
}

static int
jwt_issue(struct cli *cli, const struct jwt_opts *o, const char *type)
{
	custody_ctx_options copts = {.sessions = 1, .one_shot = 1};
	custody_ctx *ctx = NULL;
	custody_signer *signer = NULL;
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	char *claims = NULL, *token = NULL;
	int64_t lifetime = 3600;
	int alg, r;

	if (o->claims == NULL)
		return cli_usage_error(cli, "--claims JSON|@FILE is required");
	if (o->token != NULL)
		return cli_usage_error(cli, "jwt issue takes no token argument");
	if (o->lifetime != NULL &&
	    (r = parse_seconds(cli, "--lifetime", o->lifetime, 1, 366L * 86400, &lifetime)) != CUSTODY_OK)
		return r;
	if (o->alg != NULL && custody_jws_alg_from_name(o->alg) == CUSTODY_JWS_ALG_NONE)
		return cli_usage_error(cli, "unknown --alg '%s': use RS256, PS256 or ES256", o->alg);
	if (o->claims[0] == '@') {
		if ((r = read_text(cli, o->claims + 1, &claims)) != CUSTODY_OK)
			return r;
	} else if ((claims = strdup(o->claims)) == NULL) {
		return custody_err_set(&cli->err, CUSTODY_EFAIL, "out of memory");
	}

	if ((r = cli_refuse_at_with_agent(cli)) != CUSTODY_OK)
		goto out;
	if ((r = custody_ctx_new_with(&cli->cfg, cli->node, &copts, &ctx, &cli->err)) != CUSTODY_OK ||
	    (r = custody_signer_open(ctx, type, NULL, &signer, &cli->err)) != CUSTODY_OK)
		goto out;
	r = custody_signer_issue_jwt(signer, cli_sign_time(cli), claims, lifetime,
				     o->alg != NULL ? custody_jws_alg_from_name(o->alg) : 0,
				     &token, thumbprint, &alg, &cli->err);
	if (r != CUSTODY_OK)
		goto out;
	printf("%s\n", token);
	cli_say(cli, "signed with %s certificate %s (%s)", type, thumbprint,
		custody_jws_alg_name(alg));
out:
	free(token);
	free(claims);
	custody_signer_close(signer);
	custody_ctx_free(ctx);
	return r;
}

/* The certificates a verifier accepts: current and previous of the
 * assignment as it stands now (a due pending is current by then). */
static int
verifier_candidates(struct cli *cli, const char *type, custody_cert_record *cands,
		    const char **roles, size_t *n)
{
	custody_assignment a;
	const custody_slot *slots[2];
	static const char *const names[2] = {"current", "previous"};
	size_t i;
	int r;

	*n = 0;
	/* The token checks what the store says (its integrity tags) before a
	 * key it names is trusted. */
	if ((r = cli_open_store(cli)) != CUSTODY_OK || (r = cli_open_token(cli)) != CUSTODY_OK ||
	    (r = cli_lookup_assignment(cli, type, NULL, 0, &a)) != CUSTODY_OK)
		return r;
	slots[0] = &a.current;
	slots[1] = &a.previous;
	for (i = 0; i < 2; i++) {
		if (slots[i]->thumbprint[0] == '\0')
			continue;
		if ((r = custody_store_get_cert(cli->store, slots[i]->thumbprint, &cands[*n],
						&cli->err)) != CUSTODY_OK ||
		    (r = custody_cert_record_check(&cands[*n], NULL, &cli->err)) != CUSTODY_OK)
			return r;
		roles[*n] = names[i];
		(*n)++;
	}
	if (*n == 0)
		return custody_err_set(&cli->err, CUSTODY_ENOTFOUND,
				       "no certificate is assigned for type %s", type);
	return CUSTODY_OK;
}

static int
jwt_verify(struct cli *cli, const struct jwt_opts *o, const char *type)
{
	custody_cert_record cands[2];
	custody_jws_expect expect = {o->aud, o->iss};
	const char *roles[2];
	char *text = NULL, *claims = NULL;
	const char *token;
	int64_t skew = CUSTODY_JWS_DEFAULT_SKEW;
	size_t n = 0, which = 0, len;
	json_error_t jerr;
	json_t *parsed;
	int r;

	memset(cands, 0, sizeof(cands));
	if (o->claims != NULL || o->lifetime != NULL || o->alg != NULL)
		return cli_usage_error(cli, "--claims, --lifetime and --alg are for jwt issue");
	if (o->token == NULL)
		return cli_usage_error(cli, "jwt verify needs the TOKEN (or - to read it from standard input)");
	if (o->skew != NULL &&
	    (r = parse_seconds(cli, "--skew", o->skew, 0, 86400, &skew)) != CUSTODY_OK)
		return r;
	if ((o->aud != NULL && o->aud[0] == '\0') || (o->iss != NULL && o->iss[0] == '\0'))
		return cli_usage_error(cli, "--aud and --iss need a value");
	token = o->token;
	if (strcmp(token, "-") == 0) {
		if ((r = read_text(cli, "-", &text)) != CUSTODY_OK)
			return r;
		/* One trailing newline (and CR) from a file or a pipe. */
		len = strlen(text);
		while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
			text[--len] = '\0';
		token = text;
	}
	if ((r = verifier_candidates(cli, type, cands, roles, &n)) != CUSTODY_OK)
		goto out;
	if ((r = custody_jws_verify_expect(token, cands, n, cli->now, skew, &expect, &claims,
					   &which, &cli->err)) != CUSTODY_OK)
		goto out;
	cli_say(cli, "valid: signed by the %s %s certificate %s", roles[which], type,
		cands[which].thumbprint);
	/* The claims were signed, not vetted: printed through jansson (ASCII,
	 * every control character escaped), or escaped as text. */
	if ((parsed = json_loads(claims, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		printf("%s\n", out_safe(claims));
	} else {
		json_dumpf(parsed, stdout, JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII |
			   (cli->output == OUT_JSON ? JSON_COMPACT : JSON_INDENT(2)));
		putchar('\n');
		json_decref(parsed);
	}
out:
	free(claims);
	free(text);
	custody_cert_record_clear(&cands[0]);
	custody_cert_record_clear(&cands[1]);
	return r;
}

const char cmd_jwt_usage[] =
	"custody jwt issue [-t TYPE] --claims JSON|@FILE [--lifetime SECONDS] [--alg RS256|PS256|ES256]\n"
	"custody jwt verify [-t TYPE] [--skew SECONDS] [--aud AUDIENCE] [--iss ISSUER] TOKEN|-\n"
	"\n"
	"issue signs a compact JWS with the current key of TYPE (default\n"
	"OAuthTokenIssuer) on the token; its header carries x5t and kid (the\n"
	"base64url SHA-1 thumbprint). iat, nbf and exp (now + lifetime, default\n"
	"3600 s) are added unless the claims hold them. The algorithm follows the\n"
	"key: RS256 for RSA, ES256 for EC P-256; --alg PS256 for RSA-PSS.\n"
	"verify checks what the store says with the token (its integrity tags)\n"
	"and accepts a token signed by the current or\n"
	"the previous certificate (a pending one once it is current), checks\n"
	"exp and nbf with a skew (default 60 s), that the certificate which signed\n"
	"is within its validity period now, aud and iss when asked to, and prints\n"
	"the claims.\n"
	"\n"
	"  -t, --type TYPE       certificate type\n"
	"  --claims JSON|@FILE   the claims, a JSON object (@- reads standard input)\n"
	"  --lifetime SECONDS    exp = now + SECONDS when the claims have no exp\n"
	"  --alg ALG             RS256, PS256 or ES256\n"
	"  --skew SECONDS        clock skew allowed for exp and nbf\n"
	"  --aud AUDIENCE        verify: the aud claim must be AUDIENCE (or an array\n"
	"                        holding it)\n"
	"  --iss ISSUER          verify: the iss claim must be ISSUER\n";

int
cmd_jwt(struct cli *cli, int argc, char **argv)
{
	struct jwt_opts o;
	const struct cli_opt options[] = {
		CLI_OPT_TEXT("type", 't', &o.type),
		CLI_OPT_TEXT("claims", OPT_CLAIMS, &o.claims),
		CLI_OPT_TEXT("lifetime", OPT_LIFETIME, &o.lifetime),
		CLI_OPT_TEXT("alg", OPT_ALG, &o.alg),
		CLI_OPT_TEXT("skew", OPT_SKEW, &o.skew),
		CLI_OPT_TEXT("aud", OPT_AUD, &o.aud),
		CLI_OPT_TEXT("iss", OPT_ISS, &o.iss),
		{NULL},
	};
	char type[CUSTODY_NAME_MAX + 1];
	int r;

	memset(&o, 0, sizeof(o));
	if ((r = cli_parse(cli, argc, argv, options, "-t:", on_option, &o)) != CUSTODY_OK)
		return r;
	if ((r = cli_check_output(cli, 1u << OUT_TABLE | 1u << OUT_JSON)) != CUSTODY_OK)
		return r;
	if ((r = custody_type_canonical(o.type != NULL ? o.type : "OAuthTokenIssuer", type, NULL,
					&cli->err)) != CUSTODY_OK)
		return r;
	if (o.verb != NULL && strcmp(o.verb, "issue") == 0) {
		if (o.aud != NULL || o.iss != NULL)
			return cli_usage_error(cli, "--aud and --iss are for jwt verify "
					       "(issue takes them in --claims)");
		return jwt_issue(cli, &o, type);
	}
	if (o.verb != NULL && strcmp(o.verb, "verify") == 0)
		return jwt_verify(cli, &o, type);
	return cli_usage_error(cli, "use `custody jwt issue` or `custody jwt verify`");
}
