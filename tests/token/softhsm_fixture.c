/* softhsm_fixture.c — a throwaway SoftHSM token per test. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "token/softhsm_fixture.h"

/* n random decimal digits (uniform: bytes >= 250 are drawn again). */
static void
random_pin(char *out, size_t n)
{
	unsigned char b;
	size_t i = 0;

	while (i < n) {
		cr_assert_eq(RAND_bytes(&b, 1), 1, "RAND_bytes failed");
		if (b < 250)
			out[i++] = (char)('0' + b % 10);
	}
	out[n] = '\0';
}

static void
write_private(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	size_t len = strlen(text);

	cr_assert_geq(fd, 0, "cannot create %s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, text, len), (ssize_t)len, "cannot write %s", path);
	cr_assert_eq(close(fd), 0, "cannot close %s", path);
}

static void
join(char *out, const char *dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);

	cr_assert(n > 0 && n < PATH_MAX, "path too long: %s/%s", dir, name);
}

void
softhsm_fixture_setup(struct softhsm_fixture *f, const char *label)
{
	const char *tmp = getenv("TMPDIR");
	const char *module = getenv("SOFTHSM_MODULE");
	char conf_text[2 * PATH_MAX];
	custody_token_spec spec;
	custody_err err = {0};
	int r;

	memset(f, 0, sizeof(*f));
	f->module = module != NULL && module[0] != '\0' ? module
							: SOFTHSM_DEFAULT_MODULE;
	snprintf(f->dir, sizeof(f->dir), "%s/custody-token-XXXXXX",
		 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	cr_assert_not_null(mkdtemp(f->dir), "mkdtemp %s: %s", f->dir,
			   strerror(errno));
	join(f->conf, f->dir, "softhsm2.conf");
	join(f->tokens, f->dir, "tokens");
	join(f->lock_dir, f->dir, "lock");
	join(f->user_pin_file, f->dir, "user.pin");
	join(f->so_pin_file, f->dir, "so.pin");
	cr_assert_eq(mkdir(f->tokens, 0700), 0, "mkdir %s", f->tokens);
	cr_assert_eq(mkdir(f->lock_dir, 0700), 0, "mkdir %s", f->lock_dir);
	snprintf(conf_text, sizeof(conf_text),
		 "directories.tokendir = %s\n"
		 "objectstore.backend = file\n"
		 "log.level = ERROR\n", f->tokens);
	write_private(f->conf, conf_text);
	cr_assert_eq(setenv("SOFTHSM2_CONF", f->conf, 1), 0);
	cr_assert_eq(setenv("CUSTODY_LOCK_DIR", f->lock_dir, 1), 0);

	snprintf(f->label, sizeof(f->label), "%s", label);
	random_pin(f->user_pin, 8);
	random_pin(f->so_pin, 8);
	write_private(f->user_pin_file, f->user_pin);
	write_private(f->so_pin_file, f->so_pin);

	spec = softhsm_fixture_spec(f);
	r = custody_token_init(&spec, f->label, f->so_pin, strlen(f->so_pin),
			       f->user_pin, strlen(f->user_pin), &err);
	cr_assert_eq(r, CUSTODY_OK, "custody_token_init: %s", err.msg);
}

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
softhsm_fixture_teardown(struct softhsm_fixture *f)
{
	if (f->dir[0] != '\0')
		nftw(f->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	OPENSSL_cleanse(f->user_pin, sizeof(f->user_pin));
	OPENSSL_cleanse(f->so_pin, sizeof(f->so_pin));
	memset(f->dir, 0, sizeof(f->dir));
}

void
softhsm_fixture_add_token(const struct softhsm_fixture *f,
			  struct softhsm_fixture *g, const char *label)
{
	char name[64];
	custody_token_spec spec;
	custody_err err = {0};
	int r;

	*g = *f;
	g->dir[0] = '\0';
	snprintf(g->label, sizeof(g->label), "%s", label);
	random_pin(g->user_pin, 8);
	random_pin(g->so_pin, 8);
	snprintf(name, sizeof(name), "%s.user.pin", g->label);
	join(g->user_pin_file, f->dir, name);
	snprintf(name, sizeof(name), "%s.so.pin", g->label);
	join(g->so_pin_file, f->dir, name);
	write_private(g->user_pin_file, g->user_pin);
	write_private(g->so_pin_file, g->so_pin);
	spec = softhsm_fixture_spec(g);
	r = custody_token_init(&spec, g->label, g->so_pin, strlen(g->so_pin),
			       g->user_pin, strlen(g->user_pin), &err);
	cr_assert_eq(r, CUSTODY_OK, "custody_token_init %s: %s", label, err.msg);
}

custody_token_spec
softhsm_fixture_spec(const struct softhsm_fixture *f)
{
	custody_token_spec spec;

	memset(&spec, 0, sizeof(spec));
	spec.module = f->module;
	spec.label = f->label;
	spec.lock_timeout = -1;
	return spec;
}

custody_token *
softhsm_fixture_open(const struct softhsm_fixture *f)
{
	custody_token_spec spec = softhsm_fixture_spec(f);
	custody_token *tok = NULL;
	custody_err err = {0};

	cr_assert_eq(custody_token_open(&spec, &tok, &err), CUSTODY_OK,
		     "custody_token_open: %s", err.msg);
	cr_assert_eq(custody_token_login(tok, f->user_pin, strlen(f->user_pin),
					 &err), CUSTODY_OK,
		     "custody_token_login: %s", err.msg);
	return tok;
}
