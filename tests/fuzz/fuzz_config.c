/*
 * fuzz_config.c — custody_config_load, the configuration file (inih with
 * custody's own line reader on top, then every key's value parser: token
 * URIs, PIN sources, store URLs, node names, [policy]).
 *
 * The loader reads a path, so the input goes into a memfd named by
 * /proc/self/fd/N.  The config is set up with values first: a file that
 * fails must leave them exactly as they were.
 */
#include "config.h"

#include <sys/mman.h>
#include <unistd.h>

#include <custody/config.h>

#include "fuzz_common.h"

static int mem_fd = -1;
static char mem_path[64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	mem_fd = memfd_create("custody-fuzz.conf", MFD_CLOEXEC);
	FUZZ_EXPECT(mem_fd >= 0);
	snprintf(mem_path, sizeof(mem_path), "/proc/self/fd/%d", mem_fd);
	return 0;
}

static int
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int
same_policy(const custody_policy *a, const custody_policy *b)
{
	return a->min_rsa_bits == b->min_rsa_bits &&
	       a->ec_curves == b->ec_curves &&
	       strcmp(a->sip_domain, b->sip_domain) == 0 &&
	       a->overlap == b->overlap && a->warn_days == b->warn_days;
}

static void
prepare(custody_config *cfg)
{
	custody_config_init(cfg);
	FUZZ_EXPECT(custody_config_set(cfg, "token", "label", "before",
				       NULL) == CUSTODY_OK);
	FUZZ_EXPECT(custody_config_set(cfg, "store", "url", "sqlite:/before",
				       NULL) == CUSTODY_OK);
	FUZZ_EXPECT(custody_config_set(cfg, "policy", "overlap", "2h",
				       NULL) == CUSTODY_OK);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	custody_config cfg, before;
	custody_err err;
	ssize_t n;
	int r;

	FUZZ_EXPECT(ftruncate(mem_fd, 0) == 0);
	n = size > 0 ? pwrite(mem_fd, data, size, 0) : 0;
	FUZZ_EXPECT(n == (ssize_t)size);
	prepare(&cfg);
	prepare(&before);
	custody_err_clear(&err);
	r = custody_config_load(&cfg, mem_path, &err);
	fuzz_note("custody_config_load", r, &err);
	if (r != CUSTODY_OK) {
		FUZZ_EXPECT(r == err.code);
		FUZZ_EXPECT(fuzz_err_is(&err, CUSTODY_EUSAGE, CUSTODY_EFAIL));
		/* A bad file changes nothing. */
		FUZZ_EXPECT(same(cfg.module, before.module) &&
			    same(cfg.token_label, before.token_label) &&
			    same(cfg.token_uri, before.token_uri) &&
			    same(cfg.pin_source, before.pin_source) &&
			    same(cfg.so_pin_source, before.so_pin_source) &&
			    same(cfg.lock_dir, before.lock_dir) &&
			    same(cfg.store_url, before.store_url) &&
			    same(cfg.node_name, before.node_name) &&
			    cfg.lock_timeout == before.lock_timeout &&
			    same_policy(&cfg.policy, &before.policy));
	} else {
		/* What loaded once loads again over itself. */
		FUZZ_EXPECT(custody_config_load(&cfg, mem_path, &err) ==
			    CUSTODY_OK);
	}
	custody_config_clear(&cfg);
	custody_config_clear(&before);
	return 0;
}
