/*
 * cmd_sign.c — `custody sign`: one signature with the current key of a
 * type, raw signature bytes out (RSA PKCS#1 v1.5, or a DER ECDSA-Sig-Value).
 *
 * One process per signature is its common use (scripts), and module
 * initialisation and login dominate its cost, so it does the least it
 * can: one store query for the assignment (and one for the certificate's
 * key id), no certificate listing; the token is opened through the
 * signer (custody/signer.h) with one session and the shared lock held to
 * the end (no lease thread), and the key is found by CKA_ID alone.  The
 * input is hashed as it is read (any size), before the token is opened.
 * With an agent configured (--agent, CUSTODY_AGENT, agent.socket) the
 * signer asks the agent instead: no module, PIN or store here.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>

#include <custody/policy.h>
#include <custody/signer.h>

#include "cli.h"
#include "sigout.h"

enum {
	OPT_TYPE = 't',
	OPT_IDENTITY = 'i',
	OPT_IN = OPT_FIRST_COMMAND_OPTION,
	OPT_OUT,
	OPT_DIGEST,
};

struct sign_opts {
	const char *type;
	const char *identity;
	const char *in;
	const char *out;
	const char *digest;
};

static int
digest_nid(struct cli *cli, const char *name, int *nid)
{
	if (name == NULL || strcmp(name, "sha256") == 0)
		*nid = NID_sha256;
	else if (strcmp(name, "sha384") == 0)
		*nid = NID_sha384;
	else if (strcmp(name, "sha512") == 0)
		*nid = NID_sha512;
	else
		return cli_usage_error(cli, "unknown digest '%s': use sha256, "
				       "sha384 or sha512", name);
	return CUSTODY_OK;
}

/* One piece of the input into the digest. */
static int
hash_piece(void *ctx, const unsigned char *piece, size_t len,
	   custody_err *err)
{
	if (EVP_DigestUpdate(ctx, piece, len) != 1)
		return custody_err_openssl(err, CUSTODY_EFAIL, "cannot hash "
					   "the input");
	return CUSTODY_OK;
}

/* The digest of the input (a file, or standard input), read in pieces. */
static int
hash_input(struct cli *cli, const char *path, int nid, unsigned char *md,
	   unsigned int *md_len)
{
	const char *name = path != NULL ? path : "standard input";
	EVP_MD_CTX *mctx = NULL;
	EVP_MD *md_alg = NULL;
	int r;

	if ((md_alg = EVP_MD_fetch(NULL, OBJ_nid2sn(nid), NULL)) == NULL ||
	    (mctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(mctx, md_alg, NULL) != 1) {
		r = custody_err_openssl(&cli->err, CUSTODY_EFAIL,
					"cannot hash %s", name);
		goto out;
	}
	if ((r = sig_read_input(path, hash_piece, mctx, &cli->err)) !=
	    CUSTODY_OK)
		goto out;
	if (EVP_DigestFinal_ex(mctx, md, md_len) != 1) {
		r = custody_err_openssl(&cli->err, CUSTODY_EFAIL,
					"cannot hash %s", name);
		goto out;
	}
	r = CUSTODY_OK;
out:
	EVP_MD_CTX_free(mctx);
	EVP_MD_free(md_alg);
	return r;
}

const char cmd_sign_usage[] =
	"custody sign -t TYPE [-i IDENTITY] [--in FILE] [--out FILE] [--digest sha256|sha384|sha512]\n"
	"\n"
	"Signs FILE (default: standard input) with the private key of the certificate\n"
	"current for TYPE (at --at TIME, or now) and writes the raw signature: RSA\n"
	"PKCS#1 v1.5 bytes, or a DER ECDSA-Sig-Value, as `openssl dgst -sign` makes\n"
	"them. Check one with:\n"
	"  openssl dgst -sha256 -verify <(custody get -t TYPE -o pem | openssl x509 -pubkey -noout) \\\n"
	"    -signature SIG FILE\n"
	"Exit 3 when nothing is assigned for TYPE; 1 when its key is not on the token.\n"
	"\n"
	"  -t, --type TYPE          certificate type\n"
	"  -i, --identity IDENTITY  global or a node name (default: this node's, else global)\n"
	"  --in FILE                what to sign (default: standard input)\n"
	"  --out FILE               where the signature goes, a new file (default:\n"
	"                           standard output); an existing file is never overwritten\n"
	"  --digest NAME            sha256 (default), sha384 or sha512\n";

int
cmd_sign(struct cli *cli, int argc, char **argv)
{
	struct sign_opts o = {NULL, NULL, NULL, NULL, NULL};
	const struct cli_opt options[] = {
		CLI_OPT_TEXT("type", OPT_TYPE, &o.type),
		CLI_OPT_TEXT("identity", OPT_IDENTITY, &o.identity),
		CLI_OPT_TEXT("in", OPT_IN, &o.in),
		CLI_OPT_TEXT("out", OPT_OUT, &o.out),
		CLI_OPT_TEXT("digest", OPT_DIGEST, &o.digest),
		{NULL},
	};
	custody_ctx_options copt = {1, 1};	/* one session, one shot */
	custody_ctx *ctx = NULL;
	custody_signer *signer = NULL;
	custody_signature_info info;
	char type[CUSTODY_NAME_MAX + 1];
	unsigned char md[EVP_MAX_MD_SIZE], *sig = NULL;
	unsigned int md_len = 0;
	size_t sig_len = 0;
	int nid = NID_sha256, r;

	if ((r = cli_parse(cli, argc, argv, options, "t:i:", NULL, NULL)) !=
	    CUSTODY_OK)
		return r;
	if (o.type == NULL)
		return cli_usage_error(cli, "-t TYPE is required");
	if ((r = cli_check_output(cli, 1u << OUT_TABLE)) != CUSTODY_OK ||
	    (r = digest_nid(cli, o.digest, &nid)) != CUSTODY_OK ||
	    (r = custody_type_canonical(o.type, type, NULL, &cli->err)) !=
	    CUSTODY_OK)
		return r;
	/* Refused before anything is read or opened. */
	if ((r = cli_refuse_at_with_agent(cli)) != CUSTODY_OK ||
	    (r = sig_refuse_existing(o.out, &cli->err)) != CUSTODY_OK)
		return r;
	if ((r = custody_ctx_new_with(&cli->cfg, cli->node, &copt, &ctx,
				      &cli->err)) != CUSTODY_OK ||
	    (r = custody_signer_open(ctx, type, o.identity, &signer,
				     &cli->err)) != CUSTODY_OK ||
	    (r = hash_input(cli, o.in, nid, md, &md_len)) != CUSTODY_OK ||
	    (r = custody_signer_sign(signer, cli_sign_time(cli), CUSTODY_SIG_AUTO, nid,
				     md, md_len, 1, &sig, &sig_len, &info,
				     &cli->err)) != CUSTODY_OK)
		goto out;
	if ((r = sig_write(o.out, sig, sig_len, &cli->err)) != CUSTODY_OK)
		goto out;
	if (cli->verbose)
		fprintf(stderr, "custody: signed with %s (key %s, %s, %s/%s)\n",
			info.thumbprint, info.key_id, info.key_algorithm, out_safe(type),
			out_safe(info.identity));
	r = CUSTODY_OK;
out:
	free(sig);
	custody_signer_close(signer);
	custody_ctx_free(ctx);
	OPENSSL_cleanse(md, sizeof(md));
	return r;
}
