/*
 * cluster/internal.h — what cluster/cluster.c and cluster/admission.c share.
 * Not installed.
 */
#ifndef CUSTODY_CLUSTER_INTERNAL_H
#define CUSTODY_CLUSTER_INTERNAL_H

#include <stddef.h>

#include <custody/cluster.h>
#include <custody/error.h>
#include <custody/store.h>
#include <custody/token.h>

#define CLUSTER_FP_SIZE CUSTODY_CLUSTER_FP_SIZE

/* Cluster facts in the store: the KEK's key check value, and that of the
 * KEK which tags a store that has no cluster (yet). */
#define CLUSTER_META_KCV "kek_kcv"
#define CLUSTER_META_TAG_KCV "tag_kek_kcv"

/* What the cluster's functions write is tagged, and what they read
 * checked, with tok (custody/integrity.h), unless the caller attached a
 * token already.  *attached = 1 when it was attached here
 * (cluster_detach_token undoes it). */
int cluster_attach_token(custody_token *tok, custody_store *st, int *attached,
			 custody_err *err);
void cluster_detach_token(custody_store *st, int attached);

/* The cluster authority's public key (DER SPKI, malloc'ed) as the store
 * records it; ENOTFOUND when it records none. */
int cluster_store_authority(custody_store *st, unsigned char **spki,
			    size_t *spki_len, custody_err *err);
int cluster_put_store_authority(custody_store *st, const unsigned char *spki,
				size_t spki_len, custody_err *err);

/* The bytes the authority signs to admit node (cluster/admission.c's
 * head comment), malloc'ed. */
int cluster_admission_bytes(const char *node, const unsigned char *spki,
			    size_t spki_len, const unsigned char *wrap,
			    size_t wrap_len, const char *kek_check, char **out,
			    size_t *out_len, custody_err *err);

/* *valid = 1 when sig is the authority's signature over that admission;
 * EFAIL only when authority is no EC public key or OpenSSL fails. */
int cluster_admission_verify(const unsigned char *authority,
			     size_t authority_len, const char *node,
			     const unsigned char *spki, size_t spki_len,
			     const unsigned char *wrap, size_t wrap_len,
			     const char *kek_check, const unsigned char *sig,
			     size_t sig_len, int *valid, custody_err *err);

#endif
