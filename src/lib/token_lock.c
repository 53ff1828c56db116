/*
 * token_lock.c — the cross-process lock that serialises custody processes
 * on one token set.
 *
 * SoftHSM's file backend corrupts objects when two processes touch one
 * token directory at once, and SOFTHSM2_CONF is what selects that
 * directory; so the lock file is named after the module's real path and
 * $SOFTHSM2_CONF (empty for other modules).  The lock is an flock() taken
 * before C_Initialize and held until the handle is closed.  flock locks
 * belong to an open file description, so two handles of one process on
 * the same lock file would block each other: handles of one process share
 * one held lock, counted.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <custody/hexfmt.h>
#include <custody/log.h>

#include "token_internal.h"

#define LOCK_POLL_NS 50000000L		/* 50 ms between attempts        */
#define LOCK_ANNOUNCE_S 1.0		/* say we wait after this long   */
#define LOCK_DEFAULT_TIMEOUT 30
#define RUN_LOCK_DIR "/run/lock/custody"

struct token_lock {
	char *path;
	int fd;
	int refs;
	pid_t pid;		/* the process that took it (fork check) */
	struct token_lock *next;
};

static pthread_mutex_t held_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct token_lock *held;

/* Creates dir (one level, mode) when missing; it must then be a directory
 * we can write to. */
static int
dir_usable(const char *dir, mode_t mode)
{
	struct stat st;

	if (mkdir(dir, mode) != 0 && errno != EEXIST)
		return 0;
	if (stat(dir, &st) != 0)
		return 0;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return 0;
	}
	return access(dir, W_OK | X_OK) == 0;
}

/* The per-user fallback: ours, a directory, closed to others. */
static int
private_dir(const char *dir, custody_err *err)
{
	struct stat st;
	int r = CUSTODY_EFAIL;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot create lock directory %s: %s", dir,
				    strerror(errno));
		goto out;
	}
	if (lstat(dir, &st) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot use lock directory %s: %s", dir,
				    strerror(errno));
		goto out;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
	    (st.st_mode & 077) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot use lock directory %s: it is not a "
				    "directory of uid %lu closed to others", dir,
				    (unsigned long)getuid());
		goto out;
	}
	r = CUSTODY_OK;
out:
	return r;
}

static int
lock_dir(const custody_token_spec *spec, char *dir, size_t size,
	 custody_err *err)
{
	const char *d = spec->lock_dir;
	int r = CUSTODY_EFAIL;

	if (d == NULL || d[0] == '\0')
		d = getenv("CUSTODY_LOCK_DIR");
	if (d != NULL && d[0] != '\0') {
		snprintf(dir, size, "%s", d);
		if (!dir_usable(dir, 0700)) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot use lock directory %s: %s",
					    dir, strerror(errno));
			goto out;
		}
		r = CUSTODY_OK;
		goto out;
	}
	/* Shared by every user (like /run/lock itself); files are opened
	 * with O_NOFOLLOW. */
	if (dir_usable(RUN_LOCK_DIR, 01777)) {
		snprintf(dir, size, "%s", RUN_LOCK_DIR);
		r = CUSTODY_OK;
		goto out;
	}
	snprintf(dir, size, "/tmp/custody-%lu", (unsigned long)getuid());
	r = private_dir(dir, err);
out:
	return r;
}

/* LOCKDIR/token-<16 hex>.lock, malloc'ed. */
static int
lock_file_path(const custody_token_spec *spec, char **out, custody_err *err)
{
	char real[PATH_MAX], dir[PATH_MAX], hex[2 * SHA256_DIGEST_LENGTH + 1];
	unsigned char md[SHA256_DIGEST_LENGTH];
	const char *conf = getenv("SOFTHSM2_CONF");
	EVP_MD_CTX *sha = NULL;
	size_t len;
	int r = CUSTODY_EFAIL;

	if (realpath(spec->module, real) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot resolve PKCS#11 module path %s: %s",
				    spec->module, strerror(errno));
		goto out;
	}
	if ((r = lock_dir(spec, dir, sizeof(dir), err)) != CUSTODY_OK)
		goto out;
	if ((sha = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(sha, real, strlen(real)) != 1 ||
	    EVP_DigestUpdate(sha, "\n", 1) != 1 ||
	    (conf != NULL && EVP_DigestUpdate(sha, conf, strlen(conf)) != 1) ||
	    EVP_DigestFinal_ex(sha, md, NULL) != 1) {
		r = custody_err_openssl(err, CUSTODY_EFAIL,
					"cannot name the token lock file");
		goto out;
	}
	custody_hex_encode(md, sizeof(md), hex, 0);
	len = strlen(dir) + sizeof("/token-.lock") + 16;
	if ((*out = malloc(len)) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot take the token lock: out of memory");
		goto out;
	}
	snprintf(*out, len, "%s/token-%.16s.lock", dir, hex);
	r = CUSTODY_OK;
out:
	EVP_MD_CTX_free(sha);
	return r;
}

/* Opens (creating when missing) the lock file without following links. */
static int
open_lock_file(const char *path)
{
	int fd;

	for (;;) {
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT)
			return fd;
		fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
			  O_CLOEXEC, 0644);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
}

static double
seconds_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) +
	       (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The lock file still is the file we locked (not removed and made anew
 * by someone else while we waited). */
static int
same_file(int fd, const char *path)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && lstat(path, &b) == 0 &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int
wait_for_lock(const char *path, int timeout, int *out_fd, custody_err *err)
{
	static const struct timespec poll = {0, LOCK_POLL_NS};
	struct timespec t0;
	int fd = -1, announced = 0, r = CUSTODY_EFAIL;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (fd < 0 && (fd = open_lock_file(path)) < 0) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot open lock file %s: %s",
					    path, strerror(errno));
			goto out;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			if (same_file(fd, path))
				break;
			close(fd);	/* replaced meanwhile: lock the new one */
			fd = -1;
			continue;
		}
		if (errno != EWOULDBLOCK && errno != EINTR) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot lock %s: %s", path,
					    strerror(errno));
			goto out;
		}
		if (seconds_since(&t0) >= (double)timeout) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "token is busy: another custody "
					    "process holds %s", path);
			custody_err_hint(err, "try again when it has finished, "
					 "or find it with: fuser %s", path);
			goto out;
		}
		if (!announced && seconds_since(&t0) >= LOCK_ANNOUNCE_S) {
			custody_step("waiting for the token lock %s (another "
				     "custody process is using the token)",
				     path);
			announced = 1;
		}
		nanosleep(&poll, NULL);
	}
	*out_fd = fd;
	fd = -1;
	r = CUSTODY_OK;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

int
token_lock_acquire(const custody_token_spec *spec, struct token_lock **out,
		   custody_err *err)
{
	struct token_lock *l = NULL;
	char *path = NULL;
	int timeout = spec->lock_timeout < 0 ? LOCK_DEFAULT_TIMEOUT
					     : spec->lock_timeout;
	int fd = -1, r = CUSTODY_EFAIL;

	*out = NULL;
	if ((r = lock_file_path(spec, &path, err)) != CUSTODY_OK)
		return r;
	/* Held across the wait, so two threads of this process asking for
	 * one lock end up sharing it. */
	pthread_mutex_lock(&held_mutex);
	for (l = held; l != NULL; l = l->next) {
		if (l->pid == getpid() && strcmp(l->path, path) == 0)
			break;
	}
	if (l != NULL) {
		l->refs++;
		*out = l;
		r = CUSTODY_OK;
		goto out;
	}
	if ((r = wait_for_lock(path, timeout, &fd, err)) != CUSTODY_OK)
		goto out;
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot take the token lock: out of memory");
		goto out;
	}
	l->path = path;
	path = NULL;
	l->fd = fd;
	fd = -1;
	l->refs = 1;
	l->pid = getpid();
	l->next = held;
	held = l;
	*out = l;
	r = CUSTODY_OK;
out:
	pthread_mutex_unlock(&held_mutex);
	if (fd >= 0)
		close(fd);
	free(path);
	return r;
}

void
token_lock_release(struct token_lock *lock)
{
	struct token_lock **pp;

	if (lock == NULL)
		return;
	pthread_mutex_lock(&held_mutex);
	if (--lock->refs > 0)
		goto out;
	for (pp = &held; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == lock) {
			*pp = lock->next;
			break;
		}
	}
	/* A lock inherited over fork shares its open file description with
	 * the parent: unlocking it would release the parent's lock too. */
	if (lock->pid == getpid())
		flock(lock->fd, LOCK_UN);
	close(lock->fd);
	free(lock->path);
	free(lock);
out:
	pthread_mutex_unlock(&held_mutex);
}
