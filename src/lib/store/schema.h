/*
 * store/schema.h — the schema's text both backends share (private to
 * libcustody; included by store/sqlite.c and store/pg.c).
 *
 * A backend's migrations[v] brings a store of version v-1 to version v;
 * what is the same in both is here once, in each backend's types: INT64
 * an integer column ("INTEGER", "BIGINT"), BYTES a byte string ("BLOB",
 * "BYTEA"), BOOL a boolean ("INTEGER", "BOOLEAN").  Append only; never
 * edit a released version: the text is what older stores were made with.
 */
#ifndef CUSTODY_STORE_SCHEMA_H
#define CUSTODY_STORE_SCHEMA_H

/* 1: certificate facts (with the assignments, which differ). */
#define STORE_SCHEMA_CERTIFICATES(INT64, BYTES) \
	"CREATE TABLE certificates (" \
	"  thumbprint TEXT PRIMARY KEY NOT NULL," \
	"  sha256 TEXT UNIQUE NOT NULL," \
	"  subject TEXT," \
	"  issuer TEXT," \
	"  serial TEXT," \
	"  not_before " INT64 " NOT NULL," \
	"  not_after " INT64 " NOT NULL," \
	"  alt_names TEXT NOT NULL DEFAULT '[]',"	/* JSON array of strings */ \
	"  key_algorithm TEXT NOT NULL DEFAULT ''," \
	"  key_id TEXT NOT NULL DEFAULT ''," \
	"  key_uri TEXT," \
	"  label TEXT," \
	"  der " BYTES " NOT NULL," \
	"  created_at " INT64 " NOT NULL" \
	");" \
	"CREATE INDEX certificates_not_after ON certificates(not_after, thumbprint);"

/* 2: the hash-chained audit log and its head (the seq and hash of the
 * newest entry, moved in the same transaction as each append, so that a
 * truncated tail shows); each backend adds the triggers that make an
 * edit a deliberate act.  The chain is what detects one. */
#define STORE_SCHEMA_AUDIT(INT64) \
	"CREATE TABLE audit (" \
	"  seq " INT64 " PRIMARY KEY NOT NULL," \
	"  time " INT64 " NOT NULL," \
	"  node TEXT NOT NULL," \
	"  actor TEXT NOT NULL," \
	"  action TEXT NOT NULL," \
	"  type TEXT NOT NULL DEFAULT ''," \
	"  identity TEXT NOT NULL DEFAULT ''," \
	"  thumbprint TEXT NOT NULL DEFAULT ''," \
	"  previous_thumbprint TEXT NOT NULL DEFAULT ''," \
	"  detail TEXT," \
	"  prev_hash TEXT NOT NULL," \
	"  hash TEXT NOT NULL" \
	");" \
	"CREATE INDEX audit_time ON audit(time, seq);" \
	"CREATE TABLE audit_head (" \
	"  id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1)," \
	"  seq " INT64 " NOT NULL," \
	"  hash TEXT NOT NULL" \
	");" \
	"INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, " \
	"  '0000000000000000000000000000000000000000000000000000000000000000');"

/* 3: the cluster: nodes (transport public keys, the KEK wrapped for each
 * until it joins), packages (private keys wrapped under the KEK), what
 * each node reported holding, and cluster facts (the KEK's key check
 * value).  Nothing in clear is secret. */
#define STORE_SCHEMA_CLUSTER(INT64, BYTES, BOOL) \
	"CREATE TABLE nodes (" \
	"  name TEXT PRIMARY KEY NOT NULL," \
	"  state TEXT NOT NULL CHECK (state IN ('enrolled', 'admitted', 'joined'))," \
	"  transport_spki " BYTES "," \
	"  kek_wrap " BYTES "," \
	"  admitted_by TEXT NOT NULL DEFAULT ''," \
	"  enrolled_at " INT64 " NOT NULL DEFAULT 0," \
	"  admitted_at " INT64 " NOT NULL DEFAULT 0," \
	"  joined_at " INT64 " NOT NULL DEFAULT 0," \
	"  last_sync " INT64 " NOT NULL DEFAULT 0," \
	"  version " INT64 " NOT NULL" \
	");" \
	"CREATE TABLE packages (" \
	"  thumbprint TEXT PRIMARY KEY NOT NULL," \
	"  key_id TEXT NOT NULL," \
	"  wrapped " BYTES " NOT NULL," \
	"  kcv TEXT NOT NULL," \
	"  created_at " INT64 " NOT NULL," \
	"  node TEXT NOT NULL" \
	");" \
	"CREATE TABLE node_reports (" \
	"  node TEXT NOT NULL," \
	"  thumbprint TEXT NOT NULL," \
	"  held " BOOL " NOT NULL," \
	"  detail TEXT NOT NULL DEFAULT ''," \
	"  time " INT64 " NOT NULL," \
	"  PRIMARY KEY (node, thumbprint)" \
	");" \
	"CREATE TABLE cluster_meta (" \
	"  name TEXT PRIMARY KEY NOT NULL," \
	"  value TEXT NOT NULL" \
	");"

/* 4: the signed admission: the KEK's 64-bit check and the cluster
 * authority's signature over it, the node's name and transport key and
 * the wrapped KEK (custody/cluster.h). */
#define STORE_SCHEMA_ADMISSION(BYTES) \
	"ALTER TABLE nodes ADD COLUMN kek_check TEXT NOT NULL DEFAULT '';" \
	"ALTER TABLE nodes ADD COLUMN admission_sig " BYTES ";"

/* 5: integrity tags (custody/store.h): one per row that decides trust,
 * made with the token's KEK.  A store made at this version (or empty when
 * it reaches it) is tagged from its first row on; an older one waits for
 * an operator to check it (custody tag). */
#define STORE_SCHEMA_TAGS \
	"CREATE TABLE row_tags (" \
	"  kind TEXT NOT NULL," \
	"  name TEXT NOT NULL," \
	"  tag TEXT NOT NULL," \
	"  PRIMARY KEY (kind, name)" \
	");" \
	"INSERT INTO cluster_meta (name, value) SELECT 'row_tags', 'v1' " \
	"  WHERE NOT EXISTS (SELECT 1 FROM certificates) " \
	"  AND NOT EXISTS (SELECT 1 FROM assignments) " \
	"  AND NOT EXISTS (SELECT 1 FROM audit) " \
	"  AND NOT EXISTS (SELECT 1 FROM nodes) " \
	"  AND NOT EXISTS (SELECT 1 FROM packages);"

/* The table of schema versions, read before any migration. */
#define STORE_SCHEMA_VERSIONS(INT64) \
	"CREATE TABLE IF NOT EXISTS schema_version (" \
	" version INTEGER PRIMARY KEY NOT NULL," \
	" applied_at " INT64 " NOT NULL)"

#endif
