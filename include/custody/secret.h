/*
 * custody/secret.h — PINs and passwords, from where they may come.
 *
 * Sources (RFC 7512 pin-source style): "file:PATH" (trailing CR/LF
 * stripped; a warning when the file is readable by group or others),
 * "env:VAR", "fd:N" (read to EOF or the first newline), "prompt" (no echo,
 * from /dev/tty; EFAIL when there is no terminal).  There is deliberately
 * no source that takes the value itself.
 *
 * What follows a source's prefix is never repeated in an error message or
 * a warning (it may be the secret, typed in the wrong place); neither is
 * a source without a known prefix.  Messages name the kind of source.
 * An env: variable is read with secure_getenv().
 *
 * A custody_secret owns its buffer; custody_secret_clear() cleanses and
 * frees it.  Secrets are at most 1023 bytes.  The buffer is taken from
 * OpenSSL's secure heap when the process has one (custody_harden_process).
 */
#ifndef CUSTODY_SECRET_H
#define CUSTODY_SECRET_H

#include <stddef.h>
#include <custody/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct custody_secret {
	char *data;	/* NUL-terminated; NULL when empty/unset */
	size_t len;
} custody_secret;

/* Reads the secret named by source.  prompt is the text shown for
 * "prompt" ("User PIN for token demo: ").  A malformed source is EUSAGE
 * naming the accepted forms; an unreadable one is EFAIL. */
int custody_secret_read(const char *source, const char *prompt,
			custody_secret *out, custody_err *err);

/* Checks the form of source without reading it (EUSAGE if malformed). */
int custody_secret_source_check(const char *source, custody_err *err);

void custody_secret_clear(custody_secret *s);

/*
 * The process that holds secrets.  Call once, early in main() (the
 * `custody` command does, before it reads anything), from the one thread:
 *
 * - prctl(PR_SET_DUMPABLE, 0): no core dump, no ptrace attach by the
 *   same user, /proc/PID owned by root (reset by execve);
 * - setrlimit(RLIMIT_CORE, 0), soft and hard limit: no core file either;
 * - CRYPTO_secure_malloc_init(CUSTODY_SECURE_HEAP_SIZE, ...) unless the
 *   program made a secure heap already: an mmap'ed area, locked in memory
 *   where RLIMIT_MEMLOCK allows, guarded, and left out of core dumps.
 *
 * What then lives in the secure heap: custody_secret buffers (PINs and
 * passwords); the bytes of an import file and the private key values
 * that custody_token_import copies into PKCS#11 templates (and the
 * BIGNUM copies they are made from); PEM bodies read by
 * custody_bundle_parse; the private value of EC keys, which OpenSSL's
 * decoders keep there themselves.  What does not: the private parts of
 * an RSA key inside an EVP_PKEY from OpenSSL 3.0's decoders, and the
 * decrypted PKCS#8 structure of a PKCS#12 while OpenSSL decodes it
 * (OpenSSL's own storage, cleared when freed); libp11's and the PKCS#11
 * module's memory; short-lived stack copies, which are cleansed.  When
 * the secure heap is full an allocation custody makes falls back to the
 * ordinary heap (and is cleansed when freed); one OpenSSL makes fails.
 *
 * EFAIL when one of the three cannot be done.
 */
#define CUSTODY_SECURE_HEAP_SIZE ((size_t)1 << 21)	/* 2 MiB */
#define CUSTODY_SECURE_HEAP_MIN 16
int custody_harden_process(custody_err *err);

#ifdef __cplusplus
}
#endif
#endif
