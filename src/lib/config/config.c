/* config/config.c — the configuration file (INI, parsed with inih). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include <custody/config.h>
#include <custody/log.h>
#include <custody/policy.h>
#include <custody/secret.h>
#include <custody/cert.h>

#include "config/internal.h"

/* What ini_parse_stream is working on, as the reader sees it.  inih
 * itself (the Debian build) gives the handler no line number, and folds
 * indented lines into the previous value; the reader follows the lines so
 * that every error names its line and such folding is refused. */
struct load {
	custody_config *cfg;
	const char *path;
	FILE *fp;
	custody_err *err;
	int line;		/* physical line inih is working on */
	int indented;		/* that line starts with a blank */
	int key_seen;		/* a key since the last section header */
	int failed;		/* err is set; stop */
	int failed_line;
	int failed_code;
};

static const char *const sections = "[token], [store], [node], [policy], [types], "
				   "[rollover TYPE], [metadata TYPE], [agent], [allow TYPE]";

static int unknown_key(const char *section, const char *key, const char *keys,
		       custody_err *err);

/* "rollover TYPE": the type named by a rollover section, else NULL. */
static const char *
rollover_section_type(const char *name)
{
	const char *type = config_section_type(name, "rollover");

	return type != NULL && type[0] != '\0' ? type : NULL;
}

static int
known_section(const char *name)
{
	return strcmp(name, "token") == 0 || strcmp(name, "store") == 0 ||
	       strcmp(name, "node") == 0 || strcmp(name, "policy") == 0 ||
	       strcmp(name, "types") == 0 || rollover_section_type(name) != NULL ||
	       config_section_type(name, "metadata") != NULL ||
	       strcmp(name, "agent") == 0 || config_section_type(name, "allow") != NULL;
}

/* [agent]: the metadata server's http-* keys (publish.c), then the
 * agent's own (agent_keys.c). */
static int
set_agent(custody_config *cfg, const char *key, const char *value, custody_err *err)
{
	int r;

	cfg->agent.configured = 1;
	if ((r = config_set_http(cfg, key, value, err)) == CUSTODY_ENOTFOUND)
		r = config_set_agent(cfg, key, value, err);
	return r;
}

#define TYPE_SEPARATORS ", \t"

/* Splits a [types] custom value into names (at most
 * CUSTODY_CUSTOM_TYPES_MAX, each a type name); returns how many, or -1
 * with err set. */
static int
split_custom_types(const char *value, char names[][CUSTODY_NAME_MAX + 1],
		   int warn, custody_err *err)
{
	const char *p = value;
	char one[CUSTODY_NAME_MAX + 2];
	size_t len;
	int n = 0, known;

	while (*(p += strspn(p, TYPE_SEPARATORS)) != '\0') {
		len = strcspn(p, TYPE_SEPARATORS);
		if (n == CUSTODY_CUSTOM_TYPES_MAX) {
			custody_err_set(err, CUSTODY_EUSAGE, "[types] custom: more "
					"than %d types", CUSTODY_CUSTOM_TYPES_MAX);
			return -1;
		}
		snprintf(one, sizeof(one), "%.*s",
			 (int)(len > CUSTODY_NAME_MAX ? CUSTODY_NAME_MAX + 1 : len), p);
		if (custody_type_canonical(one, names[n], &known, err) != CUSTODY_OK) {
			custody_err_prefix(err, "[types] custom");
			return -1;
		}
		if (!known)
			n++;
		else if (warn)	/* a known type needs no declaring */
			custody_warn("[types] custom: %s is a known type", names[n]);
		p += len;
	}
	return n;
}

size_t
custody_config_custom_types(const custody_config *cfg,
			    char names[][CUSTODY_NAME_MAX + 1])
{
	int n;

	if (cfg == NULL || cfg->custom_types == NULL)
		return 0;
	n = split_custom_types(cfg->custom_types, names, 0, NULL);
	return n > 0 ? (size_t)n : 0;
}


/* Replaces *slot with a copy of value. */
static int
set_string(char **slot, const char *value, custody_err *err)
{
	char *copy = strdup(value);

	if (copy == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot set configuration: out of "
				       "memory");
	free(*slot);
	*slot = copy;
	return CUSTODY_OK;
}

/* EUSAGE for a key section has not; keys lists those it has. */
static int
unknown_key(const char *section, const char *key, const char *keys,
	    custody_err *err)
{
	custody_err_set(err, CUSTODY_EUSAGE, "unknown key '%s' in section [%s]",
			key, section);
	custody_err_hint(err, "keys of [%s]: %s", section, keys);
	return CUSTODY_EUSAGE;
}

static int
set_types(custody_config *cfg, const char *key, const char *value,
	  custody_err *err)
{
	char names[CUSTODY_CUSTOM_TYPES_MAX][CUSTODY_NAME_MAX + 1];

	if (strcmp(key, "custom") != 0)
		return unknown_key("types", key, "custom", err);
	if (split_custom_types(value, names, 1, err) < 0)
		return CUSTODY_EUSAGE;
	return set_string(&cfg->custom_types, value, err);
}

static int
set_lock_timeout(custody_config *cfg, const char *value, custody_err *err)
{
	long v = 0;
	const char *p;

	for (p = value; *p != '\0' && v <= INT_MAX; p++) {
		if (*p < '0' || *p > '9')
			break;
		v = v * 10 + (*p - '0');
	}
	if (*p != '\0' || v > INT_MAX)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "invalid lock-timeout '%s': use a "
				       "whole number of seconds", value);
	cfg->lock_timeout = (int)v;
	return CUSTODY_OK;
}

static int
set_token(custody_config *cfg, const char *key, const char *value,
	  custody_err *err)
{
	int r = CUSTODY_EUSAGE;

	if (strcmp(key, "module") == 0) {
		r = set_string(&cfg->module, value, err);
	} else if (strcmp(key, "label") == 0) {
		r = set_string(&cfg->token_label, value, err);
	} else if (strcmp(key, "uri") == 0) {
		if (strncasecmp(value, "pkcs11:", 7) != 0)
			return custody_err_set(err, CUSTODY_EUSAGE,
					       "invalid uri '%s': a token URI "
					       "starts with pkcs11:", value);
		r = set_string(&cfg->token_uri, value, err);
	} else if (strcmp(key, "pin-source") == 0 ||
		   strcmp(key, "so-pin-source") == 0) {
		if ((r = custody_secret_source_check(value, err)) !=
		    CUSTODY_OK) {
			custody_err_prefix(err, "%s", key);
			return r;
		}
		r = set_string(key[0] == 'p' ? &cfg->pin_source :
			       &cfg->so_pin_source, value, err);
	} else if (strcmp(key, "lock-dir") == 0) {
		r = set_string(&cfg->lock_dir, value, err);
	} else if (strcmp(key, "lock-timeout") == 0) {
		r = set_lock_timeout(cfg, value, err);
	} else {
		r = unknown_key("token", key, "module, label, uri, pin-source, "
				"so-pin-source, lock-dir, lock-timeout", err);
	}
	return r;
}

static int
set_store(custody_config *cfg, const char *key, const char *value,
	  custody_err *err)
{
	if (strcmp(key, "url") != 0)
		return unknown_key("store", key, "url", err);
	if (!(strncmp(value, "sqlite:", 7) == 0 && value[7] != '\0') &&
	    strncmp(value, "postgresql://", 13) != 0 &&
	    strncmp(value, "postgres://", 11) != 0)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "invalid url '%s': use sqlite:PATH or "
				       "postgresql://...", value);
	return set_string(&cfg->store_url, value, err);
}

static int
set_node(custody_config *cfg, const char *key, const char *value,
	 custody_err *err)
{
	char name[CUSTODY_NAME_MAX + 1];

	if (strcmp(key, "name") != 0)
		return unknown_key("node", key, "name", err);
	if (custody_identity_canonical(value, name, NULL) != CUSTODY_OK)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "invalid node name '%s': use at most %d "
				       "letters, digits, '.', '_' and '-', "
				       "starting with a letter or digit", value,
				       CUSTODY_NAME_MAX);
	if (strcmp(name, CUSTODY_SCOPE_GLOBAL) == 0)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "invalid node name '%s': it is the name "
				       "of the global identity", value);
	return set_string(&cfg->node_name, value, err);
}

/* ------------------------------------------------------------ [rollover] */

static const char *const rollover_keys = "enabled, generate-before, promote-before, key, "
					 "validity, subject, san, mode, csr-dir, replicable, min-publish, keep-previous, "
					 "post-stage, post-roll";

const custody_rollover_policy *
custody_config_rollover(const custody_config *cfg, const char *type)
{
	return cfg == NULL ? NULL : config_section_find(cfg->rollover, cfg->n_rollover,
						       sizeof(*cfg->rollover), type);
}

/* The policy of the type a [rollover TYPE] header names, made with its
 * defaults on first use. */
static int
rollover_slot(custody_config *cfg, const char *given, custody_rollover_policy **out,
	      custody_err *err)
{
	const struct config_sections kind = {"rollover", &cfg->rollover, &cfg->n_rollover,
					     CUSTODY_ROLLOVER_MAX, sizeof(*cfg->rollover)};
	custody_rollover_policy *p;
	void *entry;
	int made, r;

	if ((r = config_section_slot(&kind, given, &entry, &made, err)) != CUSTODY_OK)
		return r;
	*out = p = entry;
	if (!made)
		return CUSTODY_OK;
	p->generate_before = CUSTODY_ROLLOVER_GENERATE_BEFORE;
	p->promote_before = CUSTODY_ROLLOVER_PROMOTE_BEFORE;
	p->replicable = -1;
	p->min_publish = CUSTODY_ROLLOVER_MIN_PUBLISH;
	p->keep_previous = CUSTODY_ROLLOVER_KEEP_PREVIOUS;
	return CUSTODY_OK;
}

/* yes/no (true/false, on/off, 1/0) into *out; -1 when it is neither. */
static int
parse_yes_no(const char *value, int *out)
{
	if (strcasecmp(value, "yes") == 0 || strcasecmp(value, "true") == 0 ||
	    strcasecmp(value, "on") == 0 || strcmp(value, "1") == 0)
		*out = 1;
	else if (strcasecmp(value, "no") == 0 || strcasecmp(value, "false") == 0 ||
		 strcasecmp(value, "off") == 0 || strcmp(value, "0") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

static int
set_text(char *slot, size_t size, const char *key, const char *value, custody_err *err)
{
	if (strlen(value) >= size)
		return custody_err_set(err, CUSTODY_EUSAGE, "%s is too long: at most %zu "
				       "characters", key, size - 1);
	memcpy(slot, value, strlen(value) + 1);
	return CUSTODY_OK;
}

/* The keys whose value is checked by a parser of its own: the durations,
 * the key spec, the names (as custody request reads them). */
static int
set_rollover_checked(custody_rollover_policy *p, const char *key, const char *value,
		     custody_err *err)
{
	custody_keyspec spec;
	X509_NAME *dn = NULL;
	X509_EXTENSION *san = NULL;

	int64_t *duration = strcmp(key, "generate-before") == 0 ? &p->generate_before :
			    strcmp(key, "promote-before") == 0 ? &p->promote_before :
			    strcmp(key, "min-publish") == 0 ? &p->min_publish :
			    strcmp(key, "keep-previous") == 0 ? &p->keep_previous : NULL;

	if (duration != NULL) {
		if (custody_policy_parse_duration(value, duration) != 0)
			return custody_err_set(err, CUSTODY_EUSAGE, "invalid %s '%s': give a "
					       "duration such as 20d, 36h, 90m or plain "
					       "seconds", key, value);
		return CUSTODY_OK;
	}
	if (strcmp(key, "key") == 0) {
		if (custody_keyspec_parse(value, &spec, err) != CUSTODY_OK)
			return custody_err_prefix(err, "key");
		return set_text(p->key, sizeof(p->key), key, value, err);
	}
	if (strcmp(key, "subject") == 0) {
		if (custody_dn_parse(value, &dn, err) != CUSTODY_OK)
			return custody_err_prefix(err, "subject");
		X509_NAME_free(dn);
		return set_text(p->subject, sizeof(p->subject), key, value, err);
	}
	if (custody_san_parse(value, &san, err) != CUSTODY_OK)
		return custody_err_prefix(err, "san");
	X509_EXTENSION_free(san);
	return set_text(p->san, sizeof(p->san), key, value, err);
}

static int
set_rollover(custody_config *cfg, const char *type, const char *key, const char *value,
	     custody_err *err)
{
	custody_rollover_policy *p = NULL;
	char *end = NULL;
	long days;
	int r;

	if ((r = rollover_slot(cfg, type, &p, err)) != CUSTODY_OK)
		return r;
	if (strcmp(key, "enabled") == 0 || strcmp(key, "replicable") == 0) {
		if (parse_yes_no(value, key[0] == 'e' ? &p->enabled : &p->replicable) != 0)
			return custody_err_set(err, CUSTODY_EUSAGE, "invalid %s '%s': use yes "
					       "or no", key, value);
	} else if (strcmp(key, "validity") == 0) {
		errno = 0;
		days = strtol(value, &end, 10);
		if (errno != 0 || end == value || *end != '\0' || days < 1 || days > 36500)
			return custody_err_set(err, CUSTODY_EUSAGE, "invalid validity '%s': a "
					       "whole number of days from 1 to 36500", value);
		p->validity_days = (int)days;
	} else if (strcmp(key, "mode") == 0) {
		if (strcmp(value, "self-signed") == 0)
			p->mode = CUSTODY_ROLLOVER_SELF_SIGNED;
		else if (strcmp(value, "csr") == 0)
			p->mode = CUSTODY_ROLLOVER_CSR;
		else
			return custody_err_set(err, CUSTODY_EUSAGE, "invalid mode '%s': use "
					       "self-signed or csr", value);
	} else if (strcmp(key, "csr-dir") == 0) {
		return set_text(p->csr_dir, sizeof(p->csr_dir), key, value, err);
	} else if (strcmp(key, "post-stage") == 0 || strcmp(key, "post-roll") == 0) {
		return set_text(key[5] == 's' ? p->post_stage : p->post_roll,
				sizeof(p->post_stage), key, value, err);
	} else if (strcmp(key, "generate-before") == 0 || strcmp(key, "promote-before") == 0 ||
		   strcmp(key, "min-publish") == 0 || strcmp(key, "keep-previous") == 0 ||
		   strcmp(key, "key") == 0 || strcmp(key, "subject") == 0 ||
		   strcmp(key, "san") == 0) {
		return set_rollover_checked(p, key, value, err);
	} else {
		return unknown_key("rollover TYPE", key, rollover_keys, err);
	}
	return CUSTODY_OK;
}

/* "PATH:LINE: " or "" (no file) before a message of a later check. */
static int
rollover_refuse(custody_err *err, const char *path, int line, const char *type,
		const char *why)
{
	if (path != NULL && line > 0)
		return custody_err_set(err, CUSTODY_EUSAGE, "%s:%d: [rollover %s]: %s", path,
				       line, type, why);
	return custody_err_set(err, CUSTODY_EUSAGE, "[rollover %s]: %s", type, why);
}

int
custody_config_check_rollover(const custody_config *cfg, const char *path, custody_err *err)
{
	char names[CUSTODY_CUSTOM_TYPES_MAX][CUSTODY_NAME_MAX + 1], why[256];
	char type[CUSTODY_NAME_MAX + 1];
	const char *declared[CUSTODY_CUSTOM_TYPES_MAX];
	size_t n = custody_config_custom_types(cfg, names), i;
	const custody_rollover_policy *p;
	custody_err type_err;

	for (i = 0; i < n; i++)
		declared[i] = names[i];
	for (i = 0; i < cfg->n_rollover; i++) {
		p = &cfg->rollover[i];
		if (custody_type_resolve(p->type, declared, n, type, &type_err) != CUSTODY_OK)
			return rollover_refuse(err, path, p->line, p->type, type_err.msg);
		if (p->promote_before >= p->generate_before) {
			snprintf(why, sizeof(why), "promote-before (%llds) must be less than "
				 "generate-before (%llds): the successor is made before it is "
				 "promoted", (long long)p->promote_before,
				 (long long)p->generate_before);
			return rollover_refuse(err, path, p->durations_line > 0 ?
					       p->durations_line : p->line, p->type, why);
		}
		if (p->mode == CUSTODY_ROLLOVER_CSR && p->csr_dir[0] == '\0')
			return rollover_refuse(err, path, p->line, p->type,
					       "mode = csr needs csr-dir (where the requests go)");
		if (p->mode != CUSTODY_ROLLOVER_CSR && p->csr_dir[0] != '\0')
			return rollover_refuse(err, path, p->line, p->type,
					       "csr-dir goes with mode = csr");
	}
	return CUSTODY_OK;
}

int
custody_config_set(custody_config *cfg, const char *section,
		   const char *key, const char *value, custody_err *err)
{
	int r = CUSTODY_EUSAGE;

	if (section == NULL || section[0] == '\0') {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "key '%s' is outside a section", key);
		custody_err_hint(err, "sections: %s", sections);
		return r;
	}
	if (!known_section(section)) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "unknown section [%s]", section);
		custody_err_hint(err, "sections: %s", sections);
		return r;
	}
	/* [policy] decides itself (an empty sip-domain unsets it). */
	if (strcmp(section, "policy") == 0) {
		r = custody_policy_set(&cfg->policy, key, value, err);
		return r;
	}
	if (value == NULL || value[0] == '\0')
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "empty value for key '%s' in section [%s]",
				       key, section);
	if (config_section_type(section, "allow") != NULL)
		r = config_set_allow(cfg, config_section_type(section, "allow"), key, value, 0,
				     err);
	else if (rollover_section_type(section) != NULL)
		r = set_rollover(cfg, rollover_section_type(section), key, value, err);
	else if (config_section_type(section, "metadata") != NULL)
		r = config_set_metadata(cfg, config_section_type(section, "metadata"), key,
					value, err);
	else if (strcmp(section, "agent") == 0)
		r = set_agent(cfg, key, value, err);
	else if (strcmp(section, "token") == 0)
		r = set_token(cfg, key, value, err);
	else if (strcmp(section, "store") == 0)
		r = set_store(cfg, key, value, err);
	else if (strcmp(section, "types") == 0)
		r = set_types(cfg, key, value, err);
	else
		r = set_node(cfg, key, value, err);
	return r;
}

int
custody_config_apply_env(custody_config *cfg, custody_err *err)
{
	static const struct {
		const char *env;
		const char *section, *key;	/* key NULL: label or uri */
	} map[] = {
		{"CUSTODY_MODULE", "token", "module"},
		{"CUSTODY_TOKEN", "token", NULL},
		{"CUSTODY_PIN_SOURCE", "token", "pin-source"},
		{"CUSTODY_SO_PIN_SOURCE", "token", "so-pin-source"},
		{"CUSTODY_STORE", "store", "url"},
		{"CUSTODY_NODE", "node", "name"},
		{"CUSTODY_AGENT", "agent", "socket"},
	};
	const char *value, *key;
	size_t i;
	int r = CUSTODY_OK;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if ((value = secure_getenv(map[i].env)) == NULL || value[0] == '\0')
			continue;
		key = map[i].key;
		if (key == NULL)
			key = strncmp(value, "pkcs11:", 7) == 0 ? "uri" : "label";
		if ((r = custody_config_set(cfg, map[i].section, key, value,
					    err)) != CUSTODY_OK) {
			custody_err_prefix(err, "%s", map[i].env);
			return r;
		}
	}
	return CUSTODY_OK;
}

void
custody_config_init(custody_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->lock_timeout = -1;
	cfg->http_max_age = -1;
	cfg->http_max_connections = -1;
	cfg->http_timeout = -1;
	cfg->agent.socket_mode = -1;
	custody_policy_defaults(&cfg->policy);
}

/* The configuration's strings, each its own malloc'ed copy: what clear
 * frees and copy duplicates. */
static const size_t string_fields[] = {
	offsetof(custody_config, module),
	offsetof(custody_config, token_label),
	offsetof(custody_config, token_uri),
	offsetof(custody_config, pin_source),
	offsetof(custody_config, so_pin_source),
	offsetof(custody_config, lock_dir),
	offsetof(custody_config, store_url),
	offsetof(custody_config, node_name),
	offsetof(custody_config, custom_types),
	offsetof(custody_config, http_listen),
	offsetof(custody_config, http_types),
};
#define N_STRINGS (sizeof(string_fields) / sizeof(string_fields[0]))

static char **
string_at(custody_config *cfg, size_t i)
{
	return (char **)((char *)cfg + string_fields[i]);
}

static const char *
string_of(const custody_config *cfg, size_t i)
{
	return *(char *const *)((const char *)cfg + string_fields[i]);
}

void
custody_config_clear(custody_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < N_STRINGS; i++)
		free(*string_at(cfg, i));
	free(cfg->rollover);
	free(cfg->metadata);
	free(cfg->allow);
	custody_config_init(cfg);
}

static int
copy_string(char **dst, const char *src)
{
	*dst = NULL;
	if (src != NULL && (*dst = strdup(src)) == NULL)
		return -1;
	return 0;
}

/* Deep copy of src into dst (which is overwritten, not freed). */
/* A malloc'ed copy of n elements of size bytes at src; NULL when n is 0
 * or when out of memory. */
static void *
copy_array(const void *src, size_t n, size_t size)
{
	void *copy;

	if (n == 0 || (copy = malloc(n * size)) == NULL)
		return NULL;
	return memcpy(copy, src, n * size);
}

static int
config_copy(custody_config *dst, const custody_config *src, custody_err *err)
{
	size_t i;

	*dst = *src;
	/* Nothing of src's is dst's to free: none of its strings or arrays. */
	for (i = 0; i < N_STRINGS; i++)
		*string_at(dst, i) = NULL;
	/* The sections are plain values: a copy of each array is a deep copy. */
	dst->rollover = copy_array(src->rollover, src->n_rollover, sizeof(*src->rollover));
	dst->metadata = copy_array(src->metadata, src->n_metadata, sizeof(*src->metadata));
	dst->allow = copy_array(src->allow, src->n_allow, sizeof(*src->allow));
	if ((src->n_rollover > 0 && dst->rollover == NULL) ||
	    (src->n_metadata > 0 && dst->metadata == NULL) ||
	    (src->n_allow > 0 && dst->allow == NULL))
		goto nomem;
	for (i = 0; i < N_STRINGS; i++)
		if (copy_string(string_at(dst, i), string_of(src, i)) != 0)
			goto nomem;
	return CUSTODY_OK;
nomem:
	custody_config_clear(dst);
	return custody_err_set(err, CUSTODY_EFAIL, "cannot copy configuration: out "
			       "of memory");
}

int
custody_config_copy(custody_config *dst, const custody_config *src, custody_err *err)
{
	return config_copy(dst, src, err);
}

static void
load_fail(struct load *ld, int code)
{
	ld->failed = 1;
	ld->failed_line = ld->line;
	ld->failed_code = code;
}

/* "rollover", "metadata" or "allow" when name is such a section without
 * its type ("[rollover]", "[allow ]"), else NULL. */
static const char *
section_without_its_type(const char *name)
{
	static const char *const typed[] = {"rollover", "metadata", "allow"};
	const char *type;
	size_t i;

	for (i = 0; i < sizeof(typed) / sizeof(typed[0]); i++)
		if ((type = config_section_type(name, typed[i])) != NULL && type[0] == '\0')
			return typed[i];
	return NULL;
}

/* Checks the header of an empty section too, which inih never reports
 * (this build does not call the handler on a new section). */
static void
check_header(struct load *ld, const char *start)
{
	const char *end = strchr(start, ']');
	const char *word;
	char name[128];
	size_t len;

	if (end == NULL)
		return;		/* inih reports the broken line */
	len = (size_t)(end - start - 1);
	if (len >= sizeof(name))
		len = sizeof(name) - 1;
	memcpy(name, start + 1, len);
	name[len] = '\0';
	ld->key_seen = 0;
	if ((word = section_without_its_type(name)) != NULL) {
		custody_err_set(ld->err, CUSTODY_EUSAGE,
				"%s:%d: [%s] names its type: [%s TYPE]",
				ld->path, ld->line, word, word);
		load_fail(ld, CUSTODY_EUSAGE);
		return;
	}
	if (!known_section(name)) {
		custody_err_set(ld->err, CUSTODY_EUSAGE,
				"%s:%d: unknown section [%s]", ld->path,
				ld->line, name);
		custody_err_hint(ld->err, "sections: %s", sections);
		load_fail(ld, CUSTODY_EUSAGE);
	}
}

/* The fgets-style reader inih calls once per line; it follows the line
 * number, refuses lines longer than inih's buffer (inih would silently cut
 * them) and looks at section headers. */
/* fopen(path, "r"), but a FIFO without a writer does not block the open
 * (O_NONBLOCK, cleared once open: no writer reads as end of file). */
static FILE *
open_config(const char *path)
{
	FILE *fp;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0)
		return NULL;
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	if ((fp = fdopen(fd, "r")) == NULL) {
		saved = errno;
		close(fd);
		errno = saved;
	}
	return fp;
}

static char *
reader(char *str, int num, void *stream)
{
	struct load *ld = stream;
	const char *start;
	size_t len;
	int c;

	if (ld->failed)
		return NULL;
	if (fgets(str, num, ld->fp) == NULL) {
		if (ferror(ld->fp)) {
			custody_err_set(ld->err, CUSTODY_EFAIL,
					"cannot read config %s: %s", ld->path,
					strerror(errno));
			load_fail(ld, CUSTODY_EFAIL);
		}
		return NULL;
	}
	ld->line++;
	len = strlen(str);
	/* fgets stops at a newline, a full buffer or the end: a shorter
	 * string means a NUL byte (/dev/zero would never end). */
	if ((len == 0 || str[len - 1] != '\n') && len + 1 < (size_t)num &&
	    !feof(ld->fp)) {
		custody_err_set(ld->err, CUSTODY_EUSAGE,
				"%s:%d: a NUL byte: the config must be text",
				ld->path, ld->line);
		load_fail(ld, CUSTODY_EUSAGE);
		return NULL;
	}
	if (len > 0 && str[len - 1] != '\n' && len + 1 == (size_t)num) {
		if ((c = getc(ld->fp)) != EOF) {
			custody_err_set(ld->err, CUSTODY_EUSAGE,
					"%s:%d: line too long: at most %d "
					"characters", ld->path, ld->line,
					num - 3);
			load_fail(ld, CUSTODY_EUSAGE);
			return NULL;
		}
	}
	start = str;
	if (ld->line == 1 && strncmp(start, "\xEF\xBB\xBF", 3) == 0)
		start += 3;
	while (*start != '\0' && isspace((unsigned char)*start))
		start++;
	ld->indented = start > str && *start != '\0';
	/* As inih reads it: a comment, a folded line, a header, a key. */
	if (*start == '\0' || *start == ';' || *start == '#')
		return str;
	if (ld->indented && ld->key_seen)
		return str;
	if (*start == '[')
		check_header(ld, start);
	return ld->failed ? NULL : str;
}

/* Where a rollover policy's keys are, for the checks made once the whole
 * file is read (custody_config_check_rollover). */
static void
note_rollover_line(struct load *ld, const char *section, const char *key)
{
	custody_rollover_policy *p;
	char type[CUSTODY_NAME_MAX + 1];
	const char *given = rollover_section_type(section);

	if (given == NULL || custody_type_canonical(given, type, NULL, NULL) != CUSTODY_OK ||
	    (p = (custody_rollover_policy *)custody_config_rollover(ld->cfg, type)) == NULL)
		return;
	if (p->line == 0)
		p->line = ld->line;
	if (strcmp(key, "generate-before") == 0 || strcmp(key, "promote-before") == 0)
		p->durations_line = ld->line;
}

/* Where an [allow TYPE] section starts, for the agent's messages. */
static void
note_allow_line(struct load *ld, const char *section)
{
	char type[CUSTODY_NAME_MAX + 1];
	const char *given = config_section_type(section, "allow");
	custody_allow_policy *p;

	if (given == NULL || custody_type_canonical(given, type, NULL, NULL) != CUSTODY_OK ||
	    (p = (custody_allow_policy *)custody_config_allow(ld->cfg, type)) == NULL)
		return;
	if (p->line == 0)
		p->line = ld->line;
}

static int
handler(void *user, const char *section, const char *name, const char *value)
{
	struct load *ld = user;
	int r;

	if (ld->failed)
		return 0;
	if (ld->indented && ld->key_seen) {
		custody_err_set(ld->err, CUSTODY_EUSAGE,
				"%s:%d: indented line after key '%s': "
				"continued values are not supported",
				ld->path, ld->line, name);
		custody_err_hint(ld->err, "remove the indentation");
		load_fail(ld, CUSTODY_EUSAGE);
		return 0;
	}
	ld->key_seen = 1;
	r = custody_config_set(ld->cfg, section, name, value, ld->err);
	if (r != CUSTODY_OK) {
		custody_err_prefix(ld->err, "%s:%d", ld->path, ld->line);
		load_fail(ld, r);
		return 0;
	}
	note_rollover_line(ld, section, name);
	config_note_metadata_line(ld->cfg, section, ld->line);
	note_allow_line(ld, section);
	return 1;
}

int
custody_config_load(custody_config *cfg, const char *path, custody_err *err)
{
	int r = CUSTODY_EFAIL, rc, have_copy = 0;
	custody_config next;
	struct load ld;

	memset(&ld, 0, sizeof(ld));
	ld.path = path;
	ld.err = err;
	if ((ld.fp = open_config(path)) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read config %s: %s", path,
				    strerror(errno));
		goto out;
	}
	/* The file is read into a copy, so a bad file changes nothing. */
	if ((r = config_copy(&next, cfg, err)) != CUSTODY_OK)
		goto out;
	have_copy = 1;
	ld.cfg = &next;
	rc = ini_parse_stream(reader, &ld, handler, &ld);
	if (rc > 0 && (!ld.failed || rc < ld.failed_line)) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "%s:%d: syntax error: expected [section] "
				    "or key = value", path, rc);
		goto out;
	}
	if (ld.failed) {
		r = ld.failed_code;
		goto out;
	}
	if (rc != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read config %s: out of memory",
				    path);
		goto out;
	}
	if ((r = custody_config_check_rollover(&next, path, err)) != CUSTODY_OK ||
	    (r = custody_config_check_metadata(&next, path, err)) != CUSTODY_OK)
		goto out;
	custody_config_clear(cfg);
	*cfg = next;
	have_copy = 0;
	r = CUSTODY_OK;
out:
	if (have_copy)
		custody_config_clear(&next);
	if (ld.fp != NULL)
		fclose(ld.fp);
	return r;
}
