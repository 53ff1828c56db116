/* test_config.c — the configuration file. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <custody/config.h>

#define SECRET_FORMS "use file:PATH, env:VAR, fd:N or prompt"

static char dir[64];
static char path[128];
static custody_config cfg;

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/custody-test-config-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/custody.conf", dir);
	custody_config_init(&cfg);
}

static void
teardown(void)
{
	char cmd[128];

	custody_config_clear(&cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", dir);
}

TestSuite(config, .init = setup, .fini = teardown);

/* Writes text as the config file at path. */
static void
write_conf(const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	cr_assert_geq(fputs(text, f), 0);
	cr_assert_eq(fclose(f), 0);
}

static void
load_ok(const char *text)
{
	custody_err err = {0};

	write_conf(text);
	cr_assert_eq(custody_config_load(&cfg, path, &err), CUSTODY_OK,
		     "%s", err.msg);
}

/* Loads text and expects EUSAGE with "PATH:LINE: " and then msg. */
static custody_err
load_bad(const char *text, int line, const char *msg)
{
	custody_err err = {0};
	char want[1024];

	write_conf(text);
	cr_assert_eq(custody_config_load(&cfg, path, &err), CUSTODY_EUSAGE,
		     "accepted: %s", text);
	cr_assert_eq(err.code, CUSTODY_EUSAGE);
	snprintf(want, sizeof(want), "%s:%d: %s", path, line, msg);
	cr_assert_str_eq(err.msg, want);
	return err;
}

static void
assert_untouched(void)
{
	cr_assert_null(cfg.module);
	cr_assert_null(cfg.token_label);
	cr_assert_null(cfg.token_uri);
	cr_assert_null(cfg.pin_source);
	cr_assert_null(cfg.so_pin_source);
	cr_assert_null(cfg.lock_dir);
	cr_assert_eq(cfg.lock_timeout, -1);
	cr_assert_null(cfg.store_url);
	cr_assert_null(cfg.node_name);
	cr_assert_eq(cfg.policy.min_rsa_bits, 2048);
	cr_assert_eq(cfg.policy.ec_curves, CUSTODY_CURVE_P256 |
		     CUSTODY_CURVE_P384 | CUSTODY_CURVE_P521);
	cr_assert_str_eq(cfg.policy.sip_domain, "");
	cr_assert_eq(cfg.policy.overlap, 24 * 3600);
	cr_assert_eq(cfg.policy.warn_days, 30);
}

Test(config, init_sets_nothing_and_policy_defaults)
{
	assert_untouched();
}

Test(config, every_key)
{
	load_ok("# custody configuration\n"
		"; another comment\n"
		"[token]\n"
		"module = /usr/lib/softhsm/libsofthsm2.so\n"
		"label = demo token\n"
		"uri = pkcs11:token=demo;serial=0123abcd\n"
		"pin-source = file:/etc/custody/pin\n"
		"so-pin-source=env:CUSTODY_SO_PIN\n"
		"lock-dir = /run/custody\n"
		"lock-timeout = 30\n"
		"\n"
		"[store]\n"
		"url = sqlite:/var/lib/custody/test.db\n"
		"[node]\n"
		"name = fe01.example\n"
		"[policy]\n"
		"min-rsa-bits = 3072\n"
		"ec-curves = p256,p384\n"
		"sip-domain = example.com\n"
		"overlap = 48h\n"
		"warn-days = 14\n");
	cr_assert_str_eq(cfg.module, "/usr/lib/softhsm/libsofthsm2.so");
	cr_assert_str_eq(cfg.token_label, "demo token");
	cr_assert_str_eq(cfg.token_uri, "pkcs11:token=demo;serial=0123abcd");
	cr_assert_str_eq(cfg.pin_source, "file:/etc/custody/pin");
	cr_assert_str_eq(cfg.so_pin_source, "env:CUSTODY_SO_PIN");
	cr_assert_str_eq(cfg.lock_dir, "/run/custody");
	cr_assert_eq(cfg.lock_timeout, 30);
	cr_assert_str_eq(cfg.store_url, "sqlite:/var/lib/custody/test.db");
	cr_assert_str_eq(cfg.node_name, "fe01.example");
	cr_assert_eq(cfg.policy.min_rsa_bits, 3072);
	cr_assert_eq(cfg.policy.ec_curves,
		     CUSTODY_CURVE_P256 | CUSTODY_CURVE_P384);
	cr_assert_str_eq(cfg.policy.sip_domain, "example.com");
	cr_assert_eq(cfg.policy.overlap, 48 * 3600);
	cr_assert_eq(cfg.policy.warn_days, 14);
}

Test(config, postgresql_store_and_inline_comment)
{
	load_ok("[store]\n"
		"url = postgresql://custody@db.example/custody ; the cluster\n"
		"[token]\n"
		"pin-source = prompt\n"
		"so-pin-source = fd:3\n"
		"lock-timeout = 0\n");
	cr_assert_str_eq(cfg.store_url,
			 "postgresql://custody@db.example/custody");
	cr_assert_str_eq(cfg.pin_source, "prompt");
	cr_assert_str_eq(cfg.so_pin_source, "fd:3");
	cr_assert_eq(cfg.lock_timeout, 0);
}

Test(config, duplicate_key_last_wins)
{
	load_ok("[token]\nlabel = first\nlabel = second\n"
		"[policy]\nwarn-days = 10\n[token]\nlabel = third\n");
	cr_assert_str_eq(cfg.token_label, "third");
	cr_assert_eq(cfg.policy.warn_days, 10);
}

Test(config, later_file_replaces_only_what_it_sets)
{
	load_ok("[token]\nlabel = a\nmodule = /a.so\n[policy]\nwarn-days = 5\n");
	load_ok("[token]\nlabel = b\n[policy]\noverlap = 2d\n");
	cr_assert_str_eq(cfg.token_label, "b");
	cr_assert_str_eq(cfg.module, "/a.so");
	cr_assert_eq(cfg.policy.warn_days, 5);
	cr_assert_eq(cfg.policy.overlap, 2 * 86400);
}

Test(config, unknown_key)
{
	custody_err err = load_bad("[token]\nmodule = /x.so\nbogus = 1\n", 3,
				   "unknown key 'bogus' in section [token]");

	cr_assert_str_eq(err.hint, "keys of [token]: module, label, uri, "
			 "pin-source, so-pin-source, lock-dir, lock-timeout");
	/* Nothing of a bad file is kept, not even the lines before. */
	assert_untouched();
	load_bad("[store]\nurl = sqlite:/x.db\nname = a\n", 3,
		 "unknown key 'name' in section [store]");
	load_bad("\n[node]\nlabel = a\n", 3,
		 "unknown key 'label' in section [node]");
	/* Keys are case-sensitive and spelled with '-'. */
	load_bad("[token]\npin_source = prompt\n", 2,
		 "unknown key 'pin_source' in section [token]");
	assert_untouched();
}

Test(config, unknown_section)
{
	custody_err err = load_bad("[token]\nlabel = a\n[tokens]\nlabel = b\n",
				   3, "unknown section [tokens]");

	cr_assert_str_eq(err.hint, "sections: [token], [store], [node], "
			 "[policy], [types], [rollover TYPE], [metadata TYPE], [agent], [allow TYPE]");
	/* Even one without keys. */
	load_bad("[token]\nlabel = a\n\n[bogus]\n", 4, "unknown section [bogus]");
	load_bad("[Token]\nlabel = a\n", 1, "unknown section [Token]");
	assert_untouched();
}

Test(config, key_outside_a_section)
{
	load_bad("# top\nmodule = /x.so\n[token]\n", 2,
		 "key 'module' is outside a section");
	assert_untouched();
}

Test(config, bad_values)
{
	load_bad("[token]\n\nlock-timeout = soon\n", 3,
		 "invalid lock-timeout 'soon': use a whole number of seconds");
	load_bad("[token]\nlock-timeout = -5\n", 2,
		 "invalid lock-timeout '-5': use a whole number of seconds");
	load_bad("[token]\nlock-timeout = 99999999999\n", 2,
		 "invalid lock-timeout '99999999999': use a whole number of "
		 "seconds");
	load_bad("[token]\nlock-timeout = 30s\n", 2,
		 "invalid lock-timeout '30s': use a whole number of seconds");
	load_bad("[token]\nuri = token=demo\n", 2,
		 "invalid uri 'token=demo': a token URI starts with pkcs11:");
	load_bad("[store]\nurl = mysql://x\n", 2,
		 "invalid url 'mysql://x': use sqlite:PATH or "
		 "postgresql://...");
	load_bad("[store]\nurl = sqlite:\n", 2,
		 "invalid url 'sqlite:': use sqlite:PATH or postgresql://...");
	load_bad("[node]\nname = global\n", 2,
		 "invalid node name 'global': it is the name of the global "
		 "identity");
	load_bad("[node]\nname = -fe01\n", 2,
		 "invalid node name '-fe01': use at most 64 letters, digits, "
		 "'.', '_' and '-', starting with a letter or digit");
	load_bad("[token]\nlabel =\n", 2,
		 "empty value for key 'label' in section [token]");
	assert_untouched();
}

Test(config, pin_source_is_checked_and_never_repeated)
{
	custody_err err = load_bad("[token]\npin-source = 1234\n", 2,
				   "pin-source: invalid secret source: "
				   SECRET_FORMS);

	cr_assert_null(strstr(err.msg, "1234"));
	cr_assert_null(strstr(err.hint, "1234"));
	err = load_bad("[token]\nso-pin-source = pass:hunter2\n", 2,
		       "so-pin-source: invalid secret source: " SECRET_FORMS);
	cr_assert_null(strstr(err.msg, "hunter2"));
	err = load_bad("[token]\npin-source = env:24681357\n", 2,
		       "pin-source: invalid secret source (env:): what follows is "
		       "not a variable name: " SECRET_FORMS);
	cr_assert_null(strstr(err.msg, "24681357"));
	assert_untouched();
}

Test(config, policy_keys_are_forwarded)
{
	custody_err err = {0};
	char want[256];

	/* Whatever the policy module says, with the file and line. */
	write_conf("[policy]\nmin-rsa-bits = 3072\nmin-rsa-bits = 512\n");
	cr_assert_eq(custody_config_load(&cfg, path, &err), CUSTODY_EUSAGE);
	snprintf(want, sizeof(want), "%s:3: ", path);
	cr_assert_eq(strncmp(err.msg, want, strlen(want)), 0, "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "min-rsa-bits"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "512"), "%s", err.msg);

	write_conf("[policy]\n\n\nmax-rsa-bits = 4096\n");
	cr_assert_eq(custody_config_load(&cfg, path, &err), CUSTODY_EUSAGE);
	snprintf(want, sizeof(want), "%s:4: ", path);
	cr_assert_eq(strncmp(err.msg, want, strlen(want)), 0, "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "'max-rsa-bits'"), "%s", err.msg);

	write_conf("[policy]\noverlap = soon\n");
	cr_assert_eq(custody_config_load(&cfg, path, &err), CUSTODY_EUSAGE);
	cr_assert_not_null(strstr(err.msg, ":2: "), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "overlap"), "%s", err.msg);
	assert_untouched();

	/* An empty sip-domain is the policy's "unset". */
	load_ok("[policy]\nsip-domain = example.com\nec-curves = p521\n");
	cr_assert_str_eq(cfg.policy.sip_domain, "example.com");
	cr_assert_eq(cfg.policy.ec_curves, CUSTODY_CURVE_P521);
	load_ok("[policy]\nsip-domain =\n");
	cr_assert_str_eq(cfg.policy.sip_domain, "");
}

Test(config, syntax_errors_name_the_line)
{
	load_bad("[token]\nlabel = a\nnovalue\n", 3,
		 "syntax error: expected [section] or key = value");
	load_bad("[token\nlabel = a\n", 1,
		 "syntax error: expected [section] or key = value");
	/* A syntax error before a bad key is the one reported. */
	load_bad("[token]\nnovalue\nbogus = 1\n", 2,
		 "syntax error: expected [section] or key = value");
	assert_untouched();
}

Test(config, indented_continuation_is_refused)
{
	custody_err err;

	/* inih would make the label "a module = /x.so". */
	err = load_bad("[token]\nlabel = a\n  module = /x.so\n", 3,
		       "indented line after key 'label': continued values are "
		       "not supported");
	cr_assert_str_eq(err.hint, "remove the indentation");
	assert_untouched();
	/* Indentation alone is fine where inih does not fold. */
	load_ok("[token]\n  label = a\n\t; note\n");
	cr_assert_str_eq(cfg.token_label, "a");
}

Test(config, long_line_is_refused_not_cut)
{
	char text[512];

	snprintf(text, sizeof(text), "[token]\nmodule = /%0300d.so\n", 0);
	load_bad(text, 2, "line too long: at most 197 characters");
	assert_untouched();
}

Test(config, missing_file)
{
	custody_err err = {0};
	char want[256];

	cr_assert_eq(custody_config_load(&cfg, path, &err), CUSTODY_EFAIL);
	cr_assert_eq(err.code, CUSTODY_EFAIL);
	snprintf(want, sizeof(want), "cannot read config %s: No such file or "
		 "directory", path);
	cr_assert_str_eq(err.msg, want);
	assert_untouched();
}

Test(config, directory_is_not_a_config)
{
	custody_err err = {0};
	char want[256];

	cr_assert_eq(custody_config_load(&cfg, dir, &err), CUSTODY_EFAIL);
	snprintf(want, sizeof(want), "cannot read config %s: Is a directory",
		 dir);
	cr_assert_str_eq(err.msg, want);
}

Test(config, set_one_key)
{
	custody_err err = {0};

	cr_assert_eq(custody_config_set(&cfg, "token", "module", "/a.so", &err),
		     CUSTODY_OK);
	cr_assert_eq(custody_config_set(&cfg, "token", "module", "/b.so", &err),
		     CUSTODY_OK);
	cr_assert_str_eq(cfg.module, "/b.so");
	cr_assert_eq(custody_config_set(&cfg, "policy", "overlap", "90m",
					&err), CUSTODY_OK);
	cr_assert_eq(cfg.policy.overlap, 90 * 60);
	cr_assert_eq(custody_config_set(&cfg, "node", "name", "FE-02", &err),
		     CUSTODY_OK);
	cr_assert_str_eq(cfg.node_name, "FE-02");
	cr_assert_eq(custody_config_set(&cfg, "nodes", "name", "a", &err),
		     CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "unknown section [nodes]");
	cr_assert_eq(custody_config_set(&cfg, "token", "pin", "1234", &err),
		     CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "unknown key 'pin' in section [token]");
	cr_assert_eq(custody_config_set(&cfg, "token", "label", "", NULL),
		     CUSTODY_EUSAGE);
	cr_assert_str_eq(cfg.module, "/b.so");
}

Test(config, clear_frees_and_resets)
{
	load_ok("[token]\nlabel = a\nlock-timeout = 5\n[policy]\nwarn-days = 1\n");
	custody_config_clear(&cfg);
	assert_untouched();
	custody_config_clear(&cfg);
	custody_config_clear(NULL);
}

/* ---- where the configuration comes from, and this node's name: the one
 * rule of the command, the signer and the OpenSSL engine (settle.c) ---- */

/* The environment of these tests: nothing custody reads, but what the
 * test sets. */
static void
clear_env(void)
{
	unsetenv("CUSTODY_CONFIG");
	unsetenv("CUSTODY_STORE");
	unsetenv("CUSTODY_NODE");
}

Test(config, path_given_then_environment_then_default)
{
	const char *fallback = access(CUSTODY_DEFAULT_CONFIG, F_OK) == 0
				       ? CUSTODY_DEFAULT_CONFIG : NULL;

	clear_env();
	cr_assert_str_eq(custody_config_path("/x/given.conf"), "/x/given.conf");
	cr_assert_null(custody_config_path(""), "\"\" is none");
	cr_assert_eq(custody_config_path(NULL), fallback);
	setenv("CUSTODY_CONFIG", "/x/env.conf", 1);
	cr_assert_str_eq(custody_config_path(NULL), "/x/env.conf");
	cr_assert_str_eq(custody_config_path("/x/given.conf"), "/x/given.conf");
	setenv("CUSTODY_CONFIG", "", 1);
	cr_assert_null(custody_config_path(NULL), "an empty CUSTODY_CONFIG is none");
}

Test(config, settle_reads_the_file_then_the_environment_over_it)
{
	custody_err err = {0};

	clear_env();
	write_conf("[store]\nurl = sqlite:/x/file.db\n[node]\nname = node1\n");
	setenv("CUSTODY_STORE", "sqlite:/x/env.db", 1);
	cr_assert_eq(custody_config_settle(&cfg, path, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_str_eq(custody_config_store_url(&cfg), "sqlite:/x/env.db");
	cr_assert_str_eq(cfg.node_name, "node1");
	custody_config_clear(&cfg);

	setenv("CUSTODY_CONFIG", path, 1);
	unsetenv("CUSTODY_STORE");
	cr_assert_eq(custody_config_settle(&cfg, NULL, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_str_eq(custody_config_store_url(&cfg), "sqlite:/x/file.db");
}

Test(config, settle_without_a_file_leaves_the_defaults)
{
	custody_err err = {0};

	clear_env();
	cr_assert_eq(custody_config_settle(&cfg, "", &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_str_eq(custody_config_store_url(&cfg), CUSTODY_DEFAULT_STORE);
	cr_assert_null(cfg.node_name);
	cr_assert_eq(custody_config_settle(&cfg, "/nonexistent/custody.conf",
					   &err), CUSTODY_EFAIL);
}

Test(config, node_name_configured_is_taken_canonical)
{
	char node[CUSTODY_NAME_MAX + 1];
	custody_err err = {0};

	cr_assert_eq(custody_config_node_name("node-7.a_b", node, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_str_eq(node, "node-7.a_b");
	cr_assert_eq(custody_config_node_name("GLOBAL", node, &err),
		     CUSTODY_OK);
	cr_assert_str_eq(node, CUSTODY_SCOPE_GLOBAL);
}

Test(config, node_name_that_is_no_identity_is_refused_naming_it)
{
	static const char want[] = "node name: invalid identity 'no body'";
	char node[CUSTODY_NAME_MAX + 1];
	custody_err err = {0};

	cr_assert_eq(custody_config_node_name("no body", node, &err),
		     CUSTODY_EUSAGE);
	cr_assert_eq(strncmp(err.msg, want, strlen(want)), 0, "%s", err.msg);
	cr_assert_eq(custody_config_node_name("no body", node, NULL),
		     CUSTODY_EUSAGE);
}

Test(config, node_name_by_default_is_the_host_name_to_its_first_dot)
{
	char node[CUSTODY_NAME_MAX + 1], host[256], *dot;
	custody_err err = {0};

	cr_assert_eq(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	if ((dot = strchr(host, '.')) != NULL)
		*dot = '\0';
	cr_assert_eq(custody_config_node_name(NULL, node, &err), CUSTODY_OK);
	if (strlen(host) <= CUSTODY_NAME_MAX && host[0] != '\0')
		cr_assert_str_eq(node, host);
	else
		cr_assert_str_eq(node, "localhost");
}

/* ------------------------------------------------------------ [rollover] */

Test(config, rollover_policy_defaults_and_keys)
{
	const custody_rollover_policy *p;

	load_ok("[types]\ncustom = Partner\n"
		"[rollover oauthtokenissuer]\nenabled = yes\n"
		"[rollover Partner]\nenabled = yes\ngenerate-before = 30d\n"
		"promote-before = 36h\nkey = ec:p256\nvalidity = 90\n"
		"subject = CN=partner.example,O=Example\nsan = DNS:partner.example\n"
		"mode = csr\ncsr-dir = /var/lib/custody/requests\nreplicable = no\n");
	cr_assert_eq(cfg.n_rollover, 2);
	p = custody_config_rollover(&cfg, "OAuthTokenIssuer");
	cr_assert_not_null(p, "the type's name is canonical");
	cr_assert_eq(p->enabled, 1);
	cr_assert_eq(p->generate_before, 20 * 86400);
	cr_assert_eq(p->promote_before, 15 * 86400);
	cr_assert_str_eq(p->key, "");
	cr_assert_eq(p->validity_days, 0);
	cr_assert_eq(p->mode, CUSTODY_ROLLOVER_SELF_SIGNED);
	cr_assert_eq(p->replicable, -1);
	p = custody_config_rollover(&cfg, "Partner");
	cr_assert_not_null(p);
	cr_assert_eq(p->generate_before, 30 * 86400);
	cr_assert_eq(p->promote_before, 36 * 3600);
	cr_assert_str_eq(p->key, "ec:p256");
	cr_assert_eq(p->validity_days, 90);
	cr_assert_str_eq(p->subject, "CN=partner.example,O=Example");
	cr_assert_str_eq(p->san, "DNS:partner.example");
	cr_assert_eq(p->mode, CUSTODY_ROLLOVER_CSR);
	cr_assert_str_eq(p->csr_dir, "/var/lib/custody/requests");
	cr_assert_eq(p->replicable, 0);
	cr_assert_null(custody_config_rollover(&cfg, "Default"));
}

Test(config, rollover_bad_values_name_the_line)
{
	load_bad("[rollover Default]\nenabled = maybe\n", 2,
		 "invalid enabled 'maybe': use yes or no");
	load_bad("[rollover Default]\ngenerate-before = soon\n", 2,
		 "invalid generate-before 'soon': give a duration such as 20d, 36h, 90m "
		 "or plain seconds");
	load_bad("[rollover Default]\nkey = dsa:1024\n", 2, "key: unknown key spec "
		 "dsa:1024: expected rsa:2048, rsa:3072, rsa:4096, ec:p256 or ec:p384");
	load_bad("[rollover Default]\nmode = acme\n", 2,
		 "invalid mode 'acme': use self-signed or csr");
	load_bad("[rollover Default]\nvalidity = 0\n", 2,
		 "invalid validity '0': a whole number of days from 1 to 36500");
	load_bad("[rollover Default]\nkeyspec = rsa:2048\n", 2,
		 "unknown key 'keyspec' in section [rollover TYPE]");
	load_bad("[rollover]\nenabled = yes\n", 1,
		 "[rollover] names its type: [rollover TYPE]");
	assert_untouched();
	cr_assert_eq(cfg.n_rollover, 0);
}

Test(config, rollover_checks_made_once_the_file_is_read)
{
	/* promote-before must be less than generate-before, whichever order
	 * they come in: the line is the one that set the last of them. */
	load_ok("[rollover Default]\npromote-before = 25d\ngenerate-before = 30d\n");
	custody_config_clear(&cfg);
	load_bad("[rollover Default]\nenabled = yes\ngenerate-before = 10d\n"
		 "promote-before = 10d\n", 4,
		 "[rollover Default]: promote-before (864000s) must be less than "
		 "generate-before (864000s): the successor is made before it is promoted");
	load_bad("[rollover Default]\nenabled = yes\ngenerate-before = 10d\n", 3,
		 "[rollover Default]: promote-before (1296000s) must be less than "
		 "generate-before (864000s): the successor is made before it is promoted");
	/* A custom type declared after its policy is a declared type. */
	load_ok("[rollover Partner]\nenabled = yes\n[types]\ncustom = Partner\n");
	custody_config_clear(&cfg);
	load_bad("\n[rollover Partnr]\nenabled = yes\n", 3,
		 "[rollover Partnr]: unknown type 'Partnr': neither a known type nor a "
		 "custom type custody.conf declares");
	load_bad("[rollover Default]\nmode = csr\n", 2,
		 "[rollover Default]: mode = csr needs csr-dir (where the requests go)");
	load_bad("[rollover Default]\ncsr-dir = /tmp\n", 2,
		 "[rollover Default]: csr-dir goes with mode = csr");
	assert_untouched();
}

/* ------------------------------------------------ [metadata TYPE], [agent] http-* */

Test(config, metadata_section_keys)
{
	const custody_metadata_conf *m;

	load_ok("[metadata oauthtokenissuer]\nrealm = contoso.com\n"
		"service-name = 00000004-0000-0ff1-ce00-000000000000\nname = Custody STS\n"
		"id = _d6a1\naudiences = a/*@contoso.com, b@contoso.com\n"
		"metadata-url = https://sts.contoso.com/metadata/json/1\n"
		"issuance-url = https://sts.contoso.com/tokens/OAuth/2\n");
	cr_assert_eq(cfg.n_metadata, 1);
	cr_assert_null(custody_config_metadata(&cfg, "Default"));
	m = custody_config_metadata(&cfg, "OAuthTokenIssuer");
	cr_assert_not_null(m);
	cr_assert_str_eq(m->realm, "contoso.com");
	cr_assert_str_eq(m->service_name, "00000004-0000-0ff1-ce00-000000000000");
	cr_assert_str_eq(m->name, "Custody STS");
	cr_assert_str_eq(m->id, "_d6a1");
	cr_assert_eq(m->n_audiences, 2);
	cr_assert_str_eq(m->audiences[0], "a/*@contoso.com");
	cr_assert_str_eq(m->audiences[1], "b@contoso.com");
	cr_assert_str_eq(m->metadata_url, "https://sts.contoso.com/metadata/json/1");
	cr_assert_str_eq(m->issuance_url, "https://sts.contoso.com/tokens/OAuth/2");
	cr_assert_eq(m->line, 2);
}

Test(config, metadata_that_would_break_the_issuer_is_refused_naming_the_line)
{
	load_bad("[metadata OAuthTokenIssuer]\nrealm = contoso.com\nservice-name = a@b\n", 3,
		 "invalid service-name 'a@b': the issuer is service-name@realm: use letters, "
		 "digits, '.', '_' and '-' (a GUID or a domain name)");
	load_bad("[metadata OAuthTokenIssuer]\nrealm = contoso.com/x\n", 2,
		 "invalid realm 'contoso.com/x': the issuer is service-name@realm: use "
		 "letters, digits, '.', '_' and '-' (a GUID or a domain name)");
	load_bad("[metadata OAuthTokenIssuer]\nrealm = contoso.com\n", 2,
		 "[metadata OAuthTokenIssuer]: service-name is missing (the issuer is "
		 "service-name@realm)");
	load_bad("[types]\ncustom = Partner\n[metadata Partner]\nservice-name = s\n", 4,
		 "[metadata Partner]: realm is missing (the issuer is service-name@realm)");
	load_bad("[metadata Partnr]\nrealm = r\nservice-name = s\n", 2,
		 "[metadata Partnr]: unknown type 'Partnr': neither a known type nor a "
		 "custom type custody.conf declares");
	load_bad("[metadata OAuthTokenIssuer]\naudiences = nobody\n", 2,
		 "invalid audience 'nobody': an audience is principal[/host]@realm");
	load_bad("[metadata OAuthTokenIssuer]\nmetadata-url = ftp://x/\n", 2,
		 "invalid metadata-url 'ftp://x/': give an https:// (or http://) URL");
	load_bad("[metadata OAuthTokenIssuer]\nissuer = x@y\n", 2,
		 "unknown key 'issuer' in section [metadata TYPE]");
	load_bad("[metadata]\nrealm = r\n", 1, "[metadata] names its type: [metadata TYPE]");
	cr_assert_eq(cfg.n_metadata, 0);
	assert_untouched();
}

Test(config, http_keys)
{
	char names[CUSTODY_METADATA_MAX][CUSTODY_NAME_MAX + 1];
	custody_err err = {0};

	cr_assert_null(cfg.http_listen);
	cr_assert_eq(cfg.http_max_age, -1);
	cr_assert_eq(custody_config_http_types(&cfg, names, &err), 1);
	cr_assert_str_eq(names[0], "OAuthTokenIssuer");
	load_ok("[types]\ncustom = Partner\n[agent]\nhttp-listen = [::1]:8480\n"
		"http-types = partner, oauthtokenissuer\nhttp-max-age = 2m\n"
		"http-max-connections = 8\nhttp-timeout = 5s\n");
	cr_assert_str_eq(cfg.http_listen, "[::1]:8480");
	cr_assert_eq(cfg.http_max_age, 120);
	cr_assert_eq(cfg.http_max_connections, 8);
	cr_assert_eq(cfg.http_timeout, 5);
	cr_assert_eq(custody_config_http_types(&cfg, names, &err), 2, "%s", err.msg);
	cr_assert_str_eq(names[0], "Partner");
	cr_assert_str_eq(names[1], "OAuthTokenIssuer");
	custody_config_clear(&cfg);
	load_bad("[agent]\nhttp-listen = localhost:8480\n", 2,
		 "invalid http-listen 'localhost:8480': give ADDRESS:PORT with a numeric "
		 "address (127.0.0.1:8480, [::1]:8480)");
	load_bad("[agent]\nhttp-listen = 127.0.0.1:0\n", 2,
		 "invalid http-listen '127.0.0.1:0': give ADDRESS:PORT with a numeric "
		 "address (127.0.0.1:8480, [::1]:8480)");
	load_bad("[agent]\nhttp-max-age = 2 days\n", 2,
		 "invalid http-max-age '2 days': a duration (such as 30s, 5m) of seconds "
		 "from 0 to 86400");
	load_bad("[agent]\nhttp-port = 1\n", 2, "unknown key 'http-port' in section [agent]");
	cr_assert_null(cfg.http_listen);
	assert_untouched();
}
