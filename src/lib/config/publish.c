/*
 * config/publish.c — what custody publishes for relying parties: the
 * [metadata TYPE] sections (the trust fields of the server-to-server
 * metadata document) and the [agent] http-* keys (the agent's read-only
 * metadata server).  Every value is checked when it is read, so that a
 * document custody publishes is never broken by its configuration: an
 * issuer is service-name@realm, and neither may hold an '@', a '/' or a
 * blank that would make another issuer of it.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <custody/config.h>
#include <custody/policy.h>

#include "config/internal.h"

static const char *const metadata_keys = "realm, service-name, name, id, audiences, "
					 "metadata-url, issuance-url";

const custody_metadata_conf *
custody_config_metadata(const custody_config *cfg, const char *type)
{
	return cfg == NULL ? NULL : config_section_find(cfg->metadata, cfg->n_metadata,
						       sizeof(*cfg->metadata), type);
}

/* The section of the type a [metadata TYPE] header names, made on first
 * use. */
static int
metadata_slot(custody_config *cfg, const char *given, custody_metadata_conf **out,
	      custody_err *err)
{
	const struct config_sections kind = {"metadata", &cfg->metadata, &cfg->n_metadata,
					     CUSTODY_METADATA_MAX, sizeof(*cfg->metadata)};
	void *entry;
	int made, r;

	r = config_section_slot(&kind, given, &entry, &made, err);
	*out = entry;
	return r;
}

/* A realm or a service name: letters, digits, '.', '_', '-' (a GUID, a
 * domain name), starting with a letter or digit: what keeps
 * service-name@realm one issuer, and SERVICE/HOST@REALM one audience. */
static int
is_principal_part(const char *s)
{
	const char *p;

	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
	      (s[0] >= '0' && s[0] <= '9')))
		return 0;
	for (p = s; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return 0;
	return 1;
}

/* Printable ASCII; with `word`, no blank, quote or backslash either. */
static int
is_printable(const char *s, int word)
{
	for (; *s != '\0'; s++) {
		if (*s < 0x20 || *s > 0x7e)
			return 0;
		if (word && (*s == ' ' || *s == '"' || *s == '\\'))
			return 0;
	}
	return 1;
}

static int
copy_checked(char *slot, size_t size, const char *key, const char *value, custody_err *err)
{
	if (strlen(value) >= size)
		return custody_err_set(err, CUSTODY_EUSAGE, "%s is too long: at most %zu "
				       "characters", key, size - 1);
	memcpy(slot, value, strlen(value) + 1);
	return CUSTODY_OK;
}

/* audiences = A, B: each principal[/host]@realm, printable, no blank. */
static int
set_audiences(custody_metadata_conf *m, const char *value, custody_err *err)
{
	char one[CUSTODY_METADATA_NAME];
	const char *p = value;
	size_t len;
	int n = 0;

	while (*(p += strspn(p, ", \t")) != '\0') {
		len = strcspn(p, ", \t");
		if (n == CUSTODY_METADATA_AUDIENCES)
			return custody_err_set(err, CUSTODY_EUSAGE, "audiences: more than %d",
					       CUSTODY_METADATA_AUDIENCES);
		if (len >= sizeof(one))
			return custody_err_set(err, CUSTODY_EUSAGE, "audiences: '%.40s...' is "
					       "too long: at most %zu characters", p,
					       sizeof(one) - 1);
		memcpy(one, p, len);
		one[len] = '\0';
		if (!is_printable(one, 1) || strchr(one, '@') == NULL || one[0] == '@' ||
		    one[len - 1] == '@')
			return custody_err_set(err, CUSTODY_EUSAGE, "invalid audience '%s': "
					       "an audience is principal[/host]@realm", one);
		memcpy(m->audiences[n++], one, len + 1);
		p += len;
	}
	if (n == 0)
		return custody_err_set(err, CUSTODY_EUSAGE, "audiences: none given");
	m->n_audiences = n;
	return CUSTODY_OK;
}

static int
set_url(char *slot, const char *key, const char *value, custody_err *err)
{
	size_t scheme = strncmp(value, "https://", 8) == 0 ? 8 :
			strncmp(value, "http://", 7) == 0 ? 7 : 0;

	if (scheme == 0 || value[scheme] == '\0' || value[scheme] == '/' ||
	    !is_printable(value, 1) || strpbrk(value, "<>") != NULL)
		return custody_err_set(err, CUSTODY_EUSAGE, "invalid %s '%s': give an "
				       "https:// (or http://) URL", key, value);
	return copy_checked(slot, CUSTODY_METADATA_URL, key, value, err);
}

int
config_set_metadata(custody_config *cfg, const char *type, const char *key,
		    const char *value, custody_err *err)
{
	custody_metadata_conf *m = NULL;
	int r;

	if ((r = metadata_slot(cfg, type, &m, err)) != CUSTODY_OK)
		return r;
	if (strcmp(key, "realm") == 0 || strcmp(key, "service-name") == 0) {
		if (!is_principal_part(value))
			return custody_err_set(err, CUSTODY_EUSAGE, "invalid %s '%s': the issuer "
					       "is service-name@realm: use letters, digits, '.', "
					       "'_' and '-' (a GUID or a domain name)", key, value);
		return copy_checked(key[0] == 'r' ? m->realm : m->service_name,
				    CUSTODY_METADATA_NAME, key, value, err);
	}
	if (strcmp(key, "name") == 0 || strcmp(key, "id") == 0) {
		if (!is_printable(value, key[0] == 'i'))
			return custody_err_set(err, CUSTODY_EUSAGE, "invalid %s '%s': use "
					       "printable ASCII%s", key, value,
					       key[0] == 'i' ? " without blanks or quotes" : "");
		return copy_checked(key[0] == 'n' ? m->name : m->id, CUSTODY_METADATA_NAME,
				    key, value, err);
	}
	if (strcmp(key, "audiences") == 0)
		return set_audiences(m, value, err);
	if (strcmp(key, "metadata-url") == 0 || strcmp(key, "issuance-url") == 0)
		return set_url(key[0] == 'm' ? m->metadata_url : m->issuance_url, key, value,
			       err);
	custody_err_set(err, CUSTODY_EUSAGE, "unknown key '%s' in section [metadata TYPE]",
			key);
	custody_err_hint(err, "keys of [metadata TYPE]: %s", metadata_keys);
	return CUSTODY_EUSAGE;
}

void
config_note_metadata_line(custody_config *cfg, const char *section, int line)
{
	char type[CUSTODY_NAME_MAX + 1];
	const char *given = config_section_type(section, "metadata");
	custody_metadata_conf *m;

	if (given == NULL || custody_type_canonical(given, type, NULL, NULL) != CUSTODY_OK ||
	    (m = (custody_metadata_conf *)custody_config_metadata(cfg, type)) == NULL)
		return;
	if (m->line == 0)
		m->line = line;
}

/* ------------------------------------------------------------ [agent] http-* */

/* "ADDRESS:PORT": a numeric IPv4 address, or an IPv6 one in brackets (no
 * name: nothing is looked up when the file is read). */
static int
check_listen(const char *value, custody_err *err)
{
	char host[INET6_ADDRSTRLEN + 2];
	unsigned char addr[16];
	const char *colon = strrchr(value, ':');
	char *end = NULL;
	size_t len;
	long port;
	int v6 = value[0] == '[';

	if (colon == NULL)
		goto bad;
	len = (size_t)(colon - value);
	if (v6 && (len < 3 || value[len - 1] != ']'))
		goto bad;
	if (v6)
		value++, len -= 2;
	if (len == 0 || len >= sizeof(host))
		goto bad;
	memcpy(host, value, len);
	host[len] = '\0';
	if (inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1)
		goto bad;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
		goto bad;
	return CUSTODY_OK;
bad:
	return custody_err_set(err, CUSTODY_EUSAGE, "invalid http-listen '%s': give "
			       "ADDRESS:PORT with a numeric address (127.0.0.1:8480, "
			       "[::1]:8480)", value);
}

/* A duration or a count in [lo, hi] into *out. */
static int
set_bounded(int *out, const char *key, const char *value, int duration, long lo, long hi,
	    custody_err *err)
{
	int64_t v = -1;
	char *end = NULL;

	if (duration) {
		if (custody_policy_parse_duration(value, &v) != 0)
			v = -1;
	} else {
		errno = 0;
		v = strtol(value, &end, 10);
		if (errno != 0 || end == value || *end != '\0')
			v = -1;
	}
	if (v < lo || v > hi)
		return custody_err_set(err, CUSTODY_EUSAGE, "invalid %s '%s': %s from %ld "
				       "to %ld", key, value, duration ? "a duration (such as "
				       "30s, 5m) of seconds" : "a whole number", lo, hi);
	*out = (int)v;
	return CUSTODY_OK;
}

/* Splits http-types into canonical names; -1 with err set. */
static int
split_http_types(const char *value, char names[][CUSTODY_NAME_MAX + 1], custody_err *err)
{
	char one[CUSTODY_NAME_MAX + 2];
	const char *p = value;
	size_t len;
	int n = 0;

	while (*(p += strspn(p, ", \t")) != '\0') {
		len = strcspn(p, ", \t");
		if (n == CUSTODY_METADATA_MAX) {
			custody_err_set(err, CUSTODY_EUSAGE, "http-types: more than %d types",
					CUSTODY_METADATA_MAX);
			return -1;
		}
		snprintf(one, sizeof(one), "%.*s",
			 (int)(len > CUSTODY_NAME_MAX ? CUSTODY_NAME_MAX + 1 : len), p);
		if (custody_type_canonical(one, names[n++], NULL, err) != CUSTODY_OK) {
			custody_err_prefix(err, "http-types");
			return -1;
		}
		p += len;
	}
	if (n == 0)
		custody_err_set(err, CUSTODY_EUSAGE, "http-types: no type given");
	return n > 0 ? n : -1;
}

static int
set_string_copy(char **slot, const char *value, custody_err *err)
{
	char *copy = strdup(value);

	if (copy == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot set configuration: out of "
				       "memory");
	free(*slot);
	*slot = copy;
	return CUSTODY_OK;
}

int
config_set_http(custody_config *cfg, const char *key, const char *value, custody_err *err)
{
	char names[CUSTODY_METADATA_MAX][CUSTODY_NAME_MAX + 1];
	int r;

	if (strcmp(key, "http-listen") == 0) {
		if ((r = check_listen(value, err)) != CUSTODY_OK)
			return r;
		return set_string_copy(&cfg->http_listen, value, err);
	}
	if (strcmp(key, "http-types") == 0) {
		if (split_http_types(value, names, err) < 0)
			return CUSTODY_EUSAGE;
		return set_string_copy(&cfg->http_types, value, err);
	}
	if (strcmp(key, "http-max-age") == 0)
		return set_bounded(&cfg->http_max_age, key, value, 1, 0, 86400, err);
	if (strcmp(key, "http-timeout") == 0)
		return set_bounded(&cfg->http_timeout, key, value, 1, 1, 3600, err);
	if (strcmp(key, "http-max-connections") == 0)
		return set_bounded(&cfg->http_max_connections, key, value, 0, 1, 4096, err);
	return CUSTODY_ENOTFOUND;
}

/* ------------------------------------------------------------ checks */

/* The declared custom types, as custody_type_resolve takes them. */
static size_t
declared_types(const custody_config *cfg, char names[][CUSTODY_NAME_MAX + 1],
	       const char *declared[CUSTODY_CUSTOM_TYPES_MAX])
{
	size_t n = custody_config_custom_types(cfg, names), i;

	for (i = 0; i < n; i++)
		declared[i] = names[i];
	return n;
}

int
custody_config_http_types(const custody_config *cfg, char names[][CUSTODY_NAME_MAX + 1],
			  custody_err *err)
{
	char custom[CUSTODY_CUSTOM_TYPES_MAX][CUSTODY_NAME_MAX + 1];
	char resolved[CUSTODY_NAME_MAX + 1];
	const char *declared[CUSTODY_CUSTOM_TYPES_MAX];
	size_t n_declared = declared_types(cfg, custom, declared);
	int n, i;

	if (cfg->http_types == NULL) {
		snprintf(names[0], CUSTODY_NAME_MAX + 1, "%s", "OAuthTokenIssuer");
		return 1;
	}
	if ((n = split_http_types(cfg->http_types, names, err)) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (custody_type_resolve(names[i], declared, n_declared, resolved, err) !=
		    CUSTODY_OK) {
			custody_err_prefix(err, "[agent] http-types");
			return -1;
		}
		memcpy(names[i], resolved, sizeof(resolved));
	}
	return n;
}

static int
metadata_refuse(custody_err *err, const char *path, int line, const char *type,
		const char *why)
{
	if (path != NULL && line > 0)
		return custody_err_set(err, CUSTODY_EUSAGE, "%s:%d: [metadata %s]: %s", path,
				       line, type, why);
	return custody_err_set(err, CUSTODY_EUSAGE, "[metadata %s]: %s", type, why);
}

int
custody_config_check_metadata(const custody_config *cfg, const char *path,
			      custody_err *err)
{
	char custom[CUSTODY_CUSTOM_TYPES_MAX][CUSTODY_NAME_MAX + 1];
	char names[CUSTODY_METADATA_MAX][CUSTODY_NAME_MAX + 1];
	char type[CUSTODY_NAME_MAX + 1];
	const char *declared[CUSTODY_CUSTOM_TYPES_MAX];
	size_t n = declared_types(cfg, custom, declared), i;
	const custody_metadata_conf *m;
	custody_err type_err;

	for (i = 0; i < cfg->n_metadata; i++) {
		m = &cfg->metadata[i];
		if (custody_type_resolve(m->type, declared, n, type, &type_err) != CUSTODY_OK)
			return metadata_refuse(err, path, m->line, m->type, type_err.msg);
		if (m->realm[0] == '\0' || m->service_name[0] == '\0')
			return metadata_refuse(err, path, m->line, m->type,
					       m->realm[0] == '\0' ?
					       "realm is missing (the issuer is service-name@realm)" :
					       "service-name is missing (the issuer is "
					       "service-name@realm)");
	}
	if (custody_config_http_types(cfg, names, err) < 0) {
		if (path != NULL)
			custody_err_prefix(err, "%s", path);
		return CUSTODY_EUSAGE;
	}
	return CUSTODY_OK;
}
