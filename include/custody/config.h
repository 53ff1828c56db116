/*
 * custody/config.h — the configuration file (INI, parsed with inih).
 *
 * Sections and keys:
 *   [token]  module, label, uri, pin-source, so-pin-source, lock-dir,
 *            lock-timeout
 *   [store]  url
 *   [node]   name
 *   [policy] min-rsa-bits, ec-curves, sip-domain, overlap, warn-days
 *   [types]  custom
 *   [rollover TYPE]  enabled, generate-before, promote-before, key,
 *            validity, subject, san, mode, csr-dir, replicable (one
 *            section per type; custody/rollover.h acts on them)
 *   [agent]  listen, socket-mode, socket-group, workers, frame-timeout,
 *            idle-timeout, max-connections (the agent, custody/agent.h);
 *            socket (a client's: sign through the agent there)
 *   [allow TYPE]  users, groups (who may use TYPE through the agent)
 *   [metadata TYPE]  realm, service-name, name, id, audiences,
 *            metadata-url, issuance-url (what the server-to-server
 *            metadata document of TYPE says of its issuer)
 *   [agent]  http-listen, http-types, http-max-age, http-max-connections,
 *            http-timeout (the agent's read-only metadata server)
 * An unknown section or key, a key outside a section, or a bad value is an
 * error (EUSAGE) naming the file, line and key.
 *
 * Strings are malloc'ed and owned by the config; custody_config_clear()
 * frees them.  NULL means "not set".
 */
#ifndef CUSTODY_CONFIG_H
#define CUSTODY_CONFIG_H

#include <custody/error.h>
#include <custody/policy.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CUSTODY_DEFAULT_CONFIG "/etc/custody/custody.conf"
#define CUSTODY_DEFAULT_STORE "sqlite:/var/lib/custody/custody.db"

/* [rollover TYPE]: when and how custody rollover makes the successor of
 * the type's current certificate.  Plain values (no pointers): a policy
 * is copied with memcpy. */
enum custody_rollover_mode {
	CUSTODY_ROLLOVER_SELF_SIGNED = 0,	/* a self-signed successor, staged */
	CUSTODY_ROLLOVER_CSR,			/* a request in csr-dir, for a CA  */
};

#define CUSTODY_ROLLOVER_MAX 32		/* [rollover] sections in a config */
#define CUSTODY_ROLLOVER_TEXT 1024	/* subject, san, csr-dir            */

typedef struct custody_rollover_policy {
	char type[CUSTODY_NAME_MAX + 1];	/* canonical type name          */
	int enabled;			/* enabled = yes (default no)        */
	int64_t generate_before;	/* seconds before the current
					   certificate's notAfter; 20 days   */
	int64_t promote_before;		/* the successor's effective instant,
					   as much before it; 15 days        */
	char key[32];			/* a key spec; "": the current key's  */
	int validity_days;		/* 0: the current certificate's      */
	char subject[CUSTODY_ROLLOVER_TEXT];	/* "": the current's          */
	char san[CUSTODY_ROLLOVER_TEXT];	/* "": the current's          */
	enum custody_rollover_mode mode;
	char csr_dir[CUSTODY_ROLLOVER_TEXT];	/* csr mode: where requests go */
	int replicable;			/* -1: as the current key; 0; 1      */
	int64_t min_publish;		/* a roll of this type takes effect no
					   sooner than this after it is staged
					   (published); 48 hours             */
	int64_t keep_previous;		/* after a roll, the previous stays in
					   the assignment (and metadata) this
					   long, then rollover retires it     */
	char post_stage[CUSTODY_ROLLOVER_TEXT];	/* "" or a command run when
						   rollover stages a successor */
	char post_roll[CUSTODY_ROLLOVER_TEXT];	/* "" or a command run when a
						   roll takes effect          */
	int line;			/* the file line of its first key (0:
					   not from a file), for messages    */
	int durations_line;		/* the line that set the last of
					   generate-before, promote-before   */
} custody_rollover_policy;

#define CUSTODY_ROLLOVER_GENERATE_BEFORE (20 * INT64_C(86400))
#define CUSTODY_ROLLOVER_PROMOTE_BEFORE (15 * INT64_C(86400))
#define CUSTODY_ROLLOVER_MIN_PUBLISH (48 * INT64_C(3600))
/* The longest token custody issues (jwt issue --lifetime, 366 days) and
 * the most clock skew jwt verify allows (1 day): a token the previous key
 * signed may be checked that long after the roll. */
#define CUSTODY_ROLLOVER_KEEP_PREVIOUS (367 * INT64_C(86400))

/* [agent]: `custody agent` (custody/agent.h).  Plain values. */
#define CUSTODY_AGENT_PATH_MAX 108	/* sun_path */
#define CUSTODY_AGENT_LISTEN "/run/custody/agent.sock"
#define CUSTODY_AGENT_SOCKET_MODE 0660
#define CUSTODY_AGENT_FRAME_TIMEOUT 5		/* seconds */
#define CUSTODY_AGENT_IDLE_TIMEOUT 300		/* seconds */
#define CUSTODY_AGENT_MAX_CONNECTIONS 256

typedef struct custody_agent_settings {
	int configured;			/* the file has an [agent] section */
	char listen[CUSTODY_AGENT_PATH_MAX];	/* "": CUSTODY_AGENT_LISTEN   */
	char socket[CUSTODY_AGENT_PATH_MAX];	/* a client's; "": none       */
	int socket_mode;		/* -1: CUSTODY_AGENT_SOCKET_MODE     */
	char socket_group[64];		/* "": the agent's own group         */
	int workers;			/* 0: the session pool's size         */
	int64_t frame_timeout;		/* seconds; 0: the default            */
	int64_t idle_timeout;		/* seconds; 0: the default            */
	int max_connections;		/* 0: the default                     */
} custody_agent_settings;

/* [allow TYPE]: who may use a type through the agent, by name (resolved
 * to ids by the agent when it loads the configuration). */
#define CUSTODY_ALLOW_MAX 64		/* [allow] sections in a config */
#define CUSTODY_ALLOW_TEXT 1024

typedef struct custody_allow_policy {
	char type[CUSTODY_NAME_MAX + 1];	/* canonical type name */
	char users[CUSTODY_ALLOW_TEXT];		/* names, by ',' or blanks */
	char groups[CUSTODY_ALLOW_TEXT];
	int line;				/* first key's line, 0: none */
} custody_allow_policy;
/* [metadata TYPE]: the trust fields of the server-to-server metadata
 * document (custody/metadata.h) of a type.  Plain values, as the rollover
 * policies.  "" = not given. */
#define CUSTODY_METADATA_MAX 32		/* [metadata] sections in a config */
#define CUSTODY_METADATA_NAME 256	/* realm, service-name, name, id    */
#define CUSTODY_METADATA_URL 1024	/* metadata-url, issuance-url        */
#define CUSTODY_METADATA_AUDIENCES 8	/* audiences = A, B, ...             */

typedef struct custody_metadata_conf {
	char type[CUSTODY_NAME_MAX + 1];	/* canonical type name          */
	char realm[CUSTODY_METADATA_NAME];	/* required                     */
	char service_name[CUSTODY_METADATA_NAME];	/* required: issuer is
							   service-name@realm */
	char name[CUSTODY_METADATA_NAME];	/* "": the service name         */
	char id[CUSTODY_METADATA_NAME];		/* "": no "id" member           */
	char audiences[CUSTODY_METADATA_AUDIENCES][CUSTODY_METADATA_NAME];
	int n_audiences;		/* 0: one, service-name + "/" + "*" + "@" + realm */
	char metadata_url[CUSTODY_METADATA_URL];	/* "": no such endpoint */
	char issuance_url[CUSTODY_METADATA_URL];
	int line;			/* the file line of its first key     */
} custody_metadata_conf;

/* [agent] http-*: defaults when not set (-1). */
#define CUSTODY_HTTP_MAX_AGE 300	/* Cache-Control max-age, seconds */
#define CUSTODY_HTTP_MAX_CONNECTIONS 64
#define CUSTODY_HTTP_TIMEOUT 10		/* an idle connection is closed   */

typedef struct custody_config {
	char *module;
	char *token_label;
	char *token_uri;
	char *pin_source;
	char *so_pin_source;
	char *lock_dir;
	int lock_timeout;	/* seconds; -1 = not set */
	char *store_url;
	char *node_name;
	char *custom_types;	/* [types] custom: names, by ',' or blanks */
	custody_policy policy;	/* defaults unless the file set them */
	custody_rollover_policy *rollover;	/* malloc'ed, n_rollover of them */
	size_t n_rollover;
	custody_agent_settings agent;
	custody_allow_policy *allow;	/* malloc'ed, n_allow of them */
	size_t n_allow;
	/* [metadata TYPE] sections; malloc'ed, n_metadata of them */
	custody_metadata_conf *metadata;
	size_t n_metadata;
	/* [agent] http-*: the metadata server (custody/agent_http.h) */
	char *http_listen;	/* "ADDRESS:PORT" (numeric; [v6]:port); NULL: off */
	char *http_types;	/* types served, by ',' or blanks; the first is
				   the default; NULL: OAuthTokenIssuer     */
	int http_max_age;	/* seconds; -1: CUSTODY_HTTP_MAX_AGE      */
	int http_max_connections;	/* -1: CUSTODY_HTTP_MAX_CONNECTIONS */
	int http_timeout;	/* seconds; -1: CUSTODY_HTTP_TIMEOUT      */
} custody_config;

#define CUSTODY_CUSTOM_TYPES_MAX 32

/* Sets every member to "not set" and the policy to its defaults. */
void custody_config_init(custody_config *cfg);

/* Reads path into cfg (members the file sets replace earlier values).
 * A missing file is EFAIL. */
int custody_config_load(custody_config *cfg, const char *path,
			custody_err *err);

/* Sets one key as the file would ("token.module", "policy.overlap"...). */
int custody_config_set(custody_config *cfg, const char *section,
		       const char *key, const char *value, custody_err *err);

/*
 * Applies the environment as the `custody` command does, over what cfg
 * holds (file < environment < command line): CUSTODY_MODULE (token.module),
 * CUSTODY_TOKEN (token.uri when it starts with "pkcs11:", else
 * token.label), CUSTODY_PIN_SOURCE, CUSTODY_SO_PIN_SOURCE, CUSTODY_STORE
 * (store.url), CUSTODY_NODE (node.name).  Unset or empty variables are
 * skipped.  A bad value is the error of custody_config_set prefixed with
 * the variable's name ("CUSTODY_STORE: invalid url ...").
 */
int custody_config_apply_env(custody_config *cfg, custody_err *err);

void custody_config_clear(custody_config *cfg);

/* A deep copy of src into dst (overwritten, not freed; clear it later). */
int custody_config_copy(custody_config *dst, const custody_config *src,
			custody_err *err);

/*
 * Where the configuration comes from, and this node's name: the one rule
 * the `custody` command, the signer and the OpenSSL engine follow.
 */

/* The config file to read: `given` (a --config or an engine setting),
 * else $CUSTODY_CONFIG, else CUSTODY_DEFAULT_CONFIG when it exists.  NULL
 * when there is none: nothing found, or the one chosen is "" (none). */
const char *custody_config_path(const char *given);

/* The file custody_config_path(given) names, when there is one, then the
 * environment (custody_config_apply_env), over what cfg holds: what the
 * caller's own values (command line, engine settings) go over next. */
int custody_config_settle(custody_config *cfg, const char *given,
			  custody_err *err);

/* The store URL: store.url, else CUSTODY_DEFAULT_STORE. */
const char *custody_config_store_url(const custody_config *cfg);

/* The [rollover TYPE] policy of type (canonical), or NULL. */
const custody_rollover_policy *
custody_config_rollover(const custody_config *cfg, const char *type);

/*
 * What the rollover policies need of each other and of the rest of the
 * file, checked once everything is read (custody_config_load does it):
 * the type known or declared in [types] custom, promote-before less than
 * generate-before, csr-dir given (and only given) in csr mode.  EUSAGE
 * "PATH:LINE: [rollover T]: ..." (path may be NULL: no file).
 */
int custody_config_check_rollover(const custody_config *cfg, const char *path,
				  custody_err *err);

/* The [allow TYPE] policy of type (canonical), or NULL. */
const custody_allow_policy *
custody_config_allow(const custody_config *cfg, const char *type);
/* The [metadata TYPE] section of type (canonical), or NULL. */
const custody_metadata_conf *
custody_config_metadata(const custody_config *cfg, const char *type);

/*
 * What the [metadata] sections and the http-* keys need of the rest of
 * the file, checked once everything is read (custody_config_load does
 * it): each type known or declared in [types] custom, realm and
 * service-name given.  EUSAGE "PATH:LINE: [metadata T]: ...".
 */
int custody_config_check_metadata(const custody_config *cfg, const char *path,
				  custody_err *err);

/* The types [agent] http-types names (canonical; known or declared),
 * into names (at most CUSTODY_METADATA_MAX); returns how many (at least
 * one: OAuthTokenIssuer when unset), or -1 with err set. */
int custody_config_http_types(const custody_config *cfg,
			      char names[][CUSTODY_NAME_MAX + 1], custody_err *err);

/* The custom types [types] custom declares, each checked as a type name
 * when it was set, into names (at most CUSTODY_CUSTOM_TYPES_MAX); returns
 * how many. */
size_t custody_config_custom_types(const custody_config *cfg,
				   char names[][CUSTODY_NAME_MAX + 1]);

/*
 * This node's name, canonical, into out: `configured` (node.name,
 * CUSTODY_NODE, --node...) when not NULL (EUSAGE prefixed "node name"
 * when it is not a valid identity); else the host name up to its first
 * dot; else "localhost".
 */
int custody_config_node_name(const char *configured,
			     char out[CUSTODY_NAME_MAX + 1], custody_err *err);


#ifdef __cplusplus
}
#endif
#endif
