/*
 * token/lock.c — the cross-process lock that serialises custody processes
 * on one token set.
 *
 * SoftHSM's file backend corrupts objects when two processes touch one
 * token directory at once, and SOFTHSM2_CONF is what selects that
 * directory; so the lock file is named after the module's real path and
 * $SOFTHSM2_CONF (empty for other modules).  The lock is an flock() taken
 * before C_Initialize and held until the handle is closed.
 *
 * One lock per token, whatever the user: the directory is
 * /run/lock/custody (or the one configured), never a per-user one, and
 * every user of the token opens the same file.  Whoever can open a lock
 * file can flock it and stall every custody process of that token, so
 * lock files are mode 0660 in the group of the lock directory: the
 * directory's group is the group of the token's users (root and that
 * group; see custody.tmpfiles.conf and docs/security.md).  flock locks
 * belong to an open file description, so two handles of one process on
 * the same lock file would block each other: handles of one process share
 * one held lock, counted.
 *
 * Signers take the lock shared (spec->shared) on their own open file
 * descriptions, not counted with the others.  Linux flock has no writer
 * preference, so a second file, the gate (token-<hex>.gate), keeps a
 * stream of shared holders from starving a writer: a writer holds the
 * gate exclusively while it waits for the lock; a shared holder takes the
 * gate shared (waiting behind a writer) before taking the lock, and lets
 * go of it right after; a long-lived shared holder asks
 * token_lock_wanted() whether a writer waits, and then lets go.
 *
 * A long-lived exclusive holder (sync --watch, between syncs) lets go of
 * its lock too: it leaves the list of held locks while let go, and is
 * taken again through the gate as a first take is.
 *
 * Shared holders take turns for C_Initialize and C_Login, on a third
 * file (token-<hex>.login): see token_lock_turn_take.
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

#include <custody/clock.h>
#include <custody/file.h>
#include <custody/hexfmt.h>
#include <custody/log.h>

#include "token/internal.h"

#define LOCK_POLL_NS 50000000L		/* 50 ms between attempts        */
#define SHARED_POLL_NS 2000000L		/* 2 ms: signers wait less       */
#define LOCK_ANNOUNCE_S 1.0		/* say we wait after this long   */
#define LOCK_DEFAULT_TIMEOUT 30
#define RUN_LOCK_DIR "/run/lock/custody"

struct token_lock {
	char *path;
	int fd;
	int refs;
	pid_t pid;		/* the process that took it (fork check) */
	struct token_lock *next;
	/* shared locks only (never in the held list): */
	int shared;
	int gate_fd;		/* open while the handle lives           */
	int locked;		/* the shared lock is held now           */
	int turn_fd;		/* the login turn, while taken, else -1  */
	/* both: */
	int timeout;		/* seconds, for token_lock_relock        */
};

static pthread_mutex_t held_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct token_lock *held;

/* That a stat of the lock WHAT ("directory", "file") path succeeded (rc)
 * and found st of type fmt (S_IFDIR, S_IFREG); EFAIL "cannot use lock WHAT
 * PATH: ..." if not. */
static int
stat_is(int rc, const struct stat *st, mode_t fmt, const char *what,
	const char *path, custody_err *err)
{
	if (rc != 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot use lock %s %s: %s", what, path,
				       strerror(errno));
	if ((st->st_mode & S_IFMT) != fmt)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot use lock %s %s: it is not a %s",
				       what, path, fmt == S_IFDIR
				       ? "directory (a link is not followed)"
				       : "regular file");
	return CUSTODY_OK;
}

/*
 * The lock directory, made when missing with its mode set by chmod (the
 * umask does not cut it), then checked: a directory, not a link; owned
 * by root or by this user (the owner of a directory may remove any file
 * in it, sticky or not); and, when its group or everyone may write to it,
 * sticky, so that nobody removes or replaces another user's lock file.
 * There is no other place to fall back to: every user of a token must
 * find the one lock of that token, or fail.
 */
static int
use_lock_dir(const char *dir, mode_t mode, custody_err *err)
{
	struct stat st;
	int r = CUSTODY_EFAIL;

	if (mkdir(dir, 0700) == 0) {
		if (chmod(dir, mode) != 0)
			return custody_err_set(err, CUSTODY_EFAIL,
					       "cannot set the mode of lock "
					       "directory %s: %s", dir,
					       strerror(errno));
	} else if (errno != EEXIST) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot create lock directory %s: %s", dir,
				    strerror(errno));
		goto hint;
	}
	if ((r = stat_is(lstat(dir, &st), &st, S_IFDIR, "directory", dir,
			 err)) != CUSTODY_OK)
		goto hint;
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot use lock directory %s: it belongs "
				    "to uid %lu, neither root nor this user",
				    dir, (unsigned long)st.st_uid);
		goto hint;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 &&
	    (st.st_mode & S_ISVTX) == 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot use lock directory %s: others may "
				    "write to it (mode %04o) and it is not "
				    "sticky: they could replace a lock file",
				    dir, (unsigned)(st.st_mode & 07777));
		goto hint;
	}
	if (access(dir, X_OK) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot use lock directory %s: %s", dir,
				    strerror(errno));
		goto hint;
	}
	return CUSTODY_OK;
hint:
	custody_err_hint(err, "every user of a token takes its one lock there: "
			 "let systemd-tmpfiles make %s (custody.tmpfiles.conf), "
			 "or choose a directory with token.lock-dir or "
			 "CUSTODY_LOCK_DIR", RUN_LOCK_DIR);
	return r;
}

static int
lock_dir(const custody_token_spec *spec, char *dir, size_t size,
	 custody_err *err)
{
	const char *d = spec->lock_dir;
	int r = CUSTODY_EFAIL;

	if (d == NULL || d[0] == '\0')
		d = secure_getenv("CUSTODY_LOCK_DIR");
	if (d != NULL && d[0] != '\0') {
		/* A directory someone chose: private when custody makes it. */
		snprintf(dir, size, "%s", d);
		r = use_lock_dir(dir, 0700, err);
		return r;
	}
	/* Shared by every user, like /run/lock itself: each lock file is
	 * closed to users outside its group (open_lock_file). */
	snprintf(dir, size, "%s", RUN_LOCK_DIR);
	r = use_lock_dir(dir, 01777, err);
	return r;
}

/* LOCKDIR/token-<16 hex>.lock, malloc'ed. */
static int
lock_file_path(const custody_token_spec *spec, char **out, custody_err *err)
{
	char real[PATH_MAX], dir[PATH_MAX], hex[2 * SHA256_DIGEST_LENGTH + 1];
	unsigned char md[SHA256_DIGEST_LENGTH];
	/* getenv, not secure_getenv: this names the token set that the
	 * module (which reads SOFTHSM2_CONF with getenv) will use, and the
	 * lock must follow it.  Nothing is opened under this name. */
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

/*
 * Opens (creating when missing) a lock file without following links, and
 * sees that only users who may use the token can open it, and so flock
 * it: a file this user owns (or any, for root) gets mode 0660 (fchmod: not
 * cut by the umask) and the group of the lock directory (when this user
 * may give it that group; else its own), whatever it was made with (an
 * older custody made 0644, or 0600 under umask 077).  Users outside that
 * group cannot open it, so cannot stall custody by holding it.  It must
 * be a regular file; in a directory everyone may write to it must belong
 * to root or to this user (anyone else could have made it first, to hold
 * it); one of another user that every user could open is refused.
 */
static int
open_lock_file(const char *path, int *out, custody_err *err)
{
	struct stat st, dst;
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd = -1, created = 0, r = CUSTODY_EFAIL;

	snprintf(dir, sizeof(dir), "%.*s",
		 slash != NULL && slash != path ? (int)(slash - path) : 1,
		 slash != NULL ? path : ".");
	for (;;) {
		/* O_NONBLOCK: a FIFO put in its place must not stall us. */
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd >= 0 || errno != ENOENT)
			break;
		fd = custody_file_create(path, O_RDONLY | O_NONBLOCK, 0600);
		if (fd >= 0) {
			created = 1;
			break;
		}
		if (errno != EEXIST)
			break;
	}
	if (fd < 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot open lock file %s: %s", path,
				    strerror(errno));
		if (errno == EACCES)
			custody_err_hint(err, "a lock file is open to its "
					 "owner and its group only (the group "
					 "of %s): run custody as a user of the "
					 "token, or add this user to that "
					 "group", dir);
		goto out;
	}
	if ((r = stat_is(fstat(fd, &st) == 0 ? lstat(dir, &dst) : -1, &st,
			 S_IFREG, "file", path, err)) != CUSTODY_OK)
		goto out;
	if (!created && (dst.st_mode & S_IWOTH) != 0 && st.st_uid != 0 &&
	    st.st_uid != geteuid()) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot use lock file %s: it belongs to uid "
				    "%lu, and in %s (everyone may write there) "
				    "only root's or this user's lock files are "
				    "used", path, (unsigned long)st.st_uid, dir);
		custody_err_hint(err, "remove it when no custody process runs");
		goto out;
	}
	if (st.st_uid == geteuid() || geteuid() == 0) {
		/* Ours (or we are root): 0660 in the directory's group, so
		 * that every user of the token shares it, whatever mode and
		 * group it was made with.  The group is allowed to root, and
		 * to a member of it. */
		if (st.st_gid != dst.st_gid &&
		    fchown(fd, (uid_t)-1, dst.st_gid) != 0)
			custody_debug("lock file %s keeps group %lu: %s", path,
				      (unsigned long)st.st_gid,
				      strerror(errno));
		if ((created || (st.st_mode & 07777) != 0660) &&
		    fchmod(fd, 0660) != 0) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot set the mode of lock file "
					    "%s: %s", path, strerror(errno));
			goto out;
		}
	} else if ((st.st_mode & S_IRWXO) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot use lock file %s: every user may "
				    "lock it (mode %04o), and uid %lu may not "
				    "change that", path,
				    (unsigned)(st.st_mode & 07777),
				    (unsigned long)geteuid());
		custody_err_hint(err, "its owner (uid %lu) or root runs custody "
				 "once, or removes it when no custody process "
				 "runs", (unsigned long)st.st_uid);
		goto out;
	}
	*out = fd;
	fd = -1;
	r = CUSTODY_OK;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

static double
seconds_since(int64_t t0)
{
	return (double)(custody_monotonic_ns() - t0) / 1e9;
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

/* A sibling of the lock file: its path with ".lock" changed to suffix
 * (".gate", ".login"), malloc'ed. */
static char *
sibling_path(const char *lock_path, const char *suffix)
{
	size_t len = strlen(lock_path), slen = strlen(suffix);
	size_t stem = len > 5 && strcmp(lock_path + len - 5, ".lock") == 0
			      ? len - 5 : len;
	char *p = malloc(stem + slen + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, lock_path, stem);
	memcpy(p + stem, suffix, slen + 1);
	return p;
}

static char *
gate_path(const char *lock_path)
{
	return sibling_path(lock_path, ".gate");
}

/* How one wait goes: when it started, how long it may last, how often it
 * tries, and which lock file the messages name. */
struct lock_wait {
	int64_t t0;		/* custody_monotonic_ns at the start */
	int timeout;
	long poll_ns;
	const char *lock_path;
	int announced;
};

/*
 * flock(op) on path (opened into *fd when *fd < 0), polled until it
 * succeeds or the wait's time is up.  A file removed and made anew while
 * we waited is locked anew.
 */
static int
take(const char *path, int op, struct lock_wait *w, int *fd, custody_err *err)
{
	struct timespec poll = {0, w->poll_ns};
	int r = CUSTODY_EFAIL;

	for (;;) {
		if (*fd < 0 &&
		    (r = open_lock_file(path, fd, err)) != CUSTODY_OK)
			return r;
		if (flock(*fd, op | LOCK_NB) == 0) {
			if (same_file(*fd, path))
				break;
			close(*fd);	/* replaced meanwhile: lock the new one */
			*fd = -1;
			continue;
		}
		if (errno != EWOULDBLOCK && errno != EINTR)
			return custody_err_set(err, CUSTODY_EFAIL,
					       "cannot lock %s: %s", path,
					       strerror(errno));
		if (seconds_since(w->t0) >= (double)w->timeout) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "token is busy: another custody "
					    "process holds %s", w->lock_path);
			custody_err_hint(err, "try again when it has finished, "
					 "or find it with: fuser %s",
					 w->lock_path);
			return r;
		}
		if (!w->announced && seconds_since(w->t0) >= LOCK_ANNOUNCE_S) {
			custody_step("waiting for the token lock %s (another "
				     "custody process is using the token)",
				     w->lock_path);
			w->announced = 1;
		}
		nanosleep(&poll, NULL);
	}
	return CUSTODY_OK;
}

/* The exclusive lock: the gate first (so that signers queue behind us),
 * then the lock; the gate is let go once the lock is ours. */
static int
wait_for_lock(const char *path, int timeout, int *out_fd, custody_err *err)
{
	struct lock_wait w = {0, timeout, LOCK_POLL_NS, path, 0};
	char *gate = gate_path(path);
	int fd = -1, gate_fd = -1, r;

	w.t0 = custody_monotonic_ns();
	if (gate == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot take the token lock: out of memory");
	if ((r = take(gate, LOCK_EX, &w, &gate_fd, err)) == CUSTODY_OK &&
	    (r = take(path, LOCK_EX, &w, &fd, err)) == CUSTODY_OK) {
		*out_fd = fd;	/* ours now; the gate is let go below */
		fd = -1;
	}
	if (fd >= 0)
		close(fd);
	if (gate_fd >= 0)
		close(gate_fd);
	free(gate);
	return r;
}

/* The shared lock of l: through the gate (behind any waiting writer),
 * then the lock; the gate is let go again. */
static int
shared_take(struct token_lock *l, custody_err *err)
{
	struct lock_wait w = {0, l->timeout, SHARED_POLL_NS, l->path, 0};
	char *gate = gate_path(l->path);
	int r;

	w.t0 = custody_monotonic_ns();
	if (gate == NULL)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot take the token lock: out of memory");
	if ((r = take(gate, LOCK_SH, &w, &l->gate_fd, err)) == CUSTODY_OK) {
		r = take(l->path, LOCK_SH, &w, &l->fd, err);
		flock(l->gate_fd, LOCK_UN);
	}
	l->locked = r == CUSTODY_OK;
	free(gate);
	return r;
}

static int
shared_acquire(const custody_token_spec *spec, char *path,
	       struct token_lock **out, custody_err *err)
{
	struct token_lock *l = calloc(1, sizeof(*l));
	int r = CUSTODY_EFAIL;

	if (l == NULL) {
		free(path);
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot take the token lock: out of "
				       "memory");
	}
	l->path = path;
	l->fd = -1;
	l->gate_fd = -1;
	l->turn_fd = -1;
	l->refs = 1;
	l->pid = getpid();
	l->shared = 1;
	l->timeout = spec->lock_timeout < 0 ? LOCK_DEFAULT_TIMEOUT
					    : spec->lock_timeout;
	if ((r = shared_take(l, err)) != CUSTODY_OK)
		goto out;
	*out = l;
	l = NULL;
	r = CUSTODY_OK;
out:
	token_lock_release(l);
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
	if (spec->shared)
		return shared_acquire(spec, path, out, err);
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
	l->timeout = timeout;	/* for token_lock_relock */
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
	if (lock->shared) {
		/* Closing the descriptors lets go of any flock on them. */
		if (lock->fd >= 0)
			close(lock->fd);
		if (lock->gate_fd >= 0)
			close(lock->gate_fd);
		if (lock->turn_fd >= 0)
			close(lock->turn_fd);
		free(lock->path);
		free(lock);
		return;
	}
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
	if (lock->fd >= 0) {	/* not let go by token_lock_unlock */
		if (lock->pid == getpid())
			flock(lock->fd, LOCK_UN);
		close(lock->fd);
	}
	free(lock->path);
	free(lock);
out:
	pthread_mutex_unlock(&held_mutex);
}

/* An exclusive lock let go: out of the list of held locks (a handle this
 * process opens meanwhile takes the lock anew, and waits for it as any
 * other process would), its descriptor closed. */
static int
exclusive_unlock(struct token_lock *lock, custody_err *err)
{
	struct token_lock **pp;
	int r = CUSTODY_OK;

	pthread_mutex_lock(&held_mutex);
	if (lock->fd < 0)
		goto out;
	if (lock->refs != 1 || lock->pid != getpid()) {
		r = custody_err_set(err, CUSTODY_EUSAGE, "cannot let go of the "
				    "token lock: another handle of this "
				    "process holds it too");
		goto out;
	}
	for (pp = &held; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == lock) {
			*pp = lock->next;
			break;
		}
	}
	lock->next = NULL;
	flock(lock->fd, LOCK_UN);
	close(lock->fd);
	lock->fd = -1;
out:
	pthread_mutex_unlock(&held_mutex);
	return r;
}

/* An exclusive lock taken again (through the gate, as a first take is)
 * and back in the list of held locks. */
static int
exclusive_relock(struct token_lock *lock, custody_err *err)
{
	int fd = -1, r;

	if (lock->fd >= 0)
		return CUSTODY_OK;
	if ((r = wait_for_lock(lock->path, lock->timeout, &fd, err)) !=
	    CUSTODY_OK)
		return r;
	pthread_mutex_lock(&held_mutex);
	lock->fd = fd;
	lock->pid = getpid();
	lock->next = held;
	held = lock;
	pthread_mutex_unlock(&held_mutex);
	return CUSTODY_OK;
}

int
token_lock_unlock(struct token_lock *lock, custody_err *err)
{
	if (lock == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE, "cannot let go of "
				       "the token lock: no lock");
	if (!lock->shared)
		return exclusive_unlock(lock, err);
	if (lock->locked && lock->pid == getpid())
		flock(lock->fd, LOCK_UN);
	lock->locked = 0;
	return CUSTODY_OK;
}

int
token_lock_relock(struct token_lock *lock, custody_err *err)
{
	if (lock == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE, "cannot take the "
				       "token lock again: no lock");
	if (!lock->shared)
		return exclusive_relock(lock, err);
	if (lock->locked)
		return CUSTODY_OK;
	return shared_take(lock, err);
}

int
token_lock_wanted(struct token_lock *lock)
{
	if (lock == NULL || !lock->shared || lock->gate_fd < 0)
		return 0;
	if (flock(lock->gate_fd, LOCK_SH | LOCK_NB) != 0)
		return errno == EWOULDBLOCK;
	flock(lock->gate_fd, LOCK_UN);
	return 0;
}

/*
 * The login turn: shared holders run C_Initialize and C_Login one at a
 * time.  Both may touch the token's own files: openCryptoki 3.8.1 rewrites
 * its token data file (NVTOK.DAT) on every C_Login and lets go of its own
 * lock before the data is flushed, and its C_Initialize reads that file;
 * one that reads it empty loses the token for the life of the process
 * (C_GetSlotList then lists no slot).  Shared holders that already work
 * are not held up; an exclusive holder excludes everyone anyway.  The
 * file, LOCKDIR/token-<hex>.login, is held exclusively for the call, on a
 * descriptor of the call's own (so a turn never crosses fork).
 */
int
token_lock_turn_take(struct token_lock *lock, custody_err *err)
{
	struct lock_wait w = {0, 0, SHARED_POLL_NS, NULL, 0};
	char *path;
	int r;

	if (lock == NULL || !lock->shared)
		return CUSTODY_OK;
	if ((path = sibling_path(lock->path, ".login")) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot take the "
				       "token's login turn: out of memory");
	w.t0 = custody_monotonic_ns();
	w.timeout = lock->timeout;
	w.lock_path = path;
	if (lock->turn_fd >= 0)		/* not given back: a bug of ours */
		close(lock->turn_fd);
	lock->turn_fd = -1;
	r = take(path, LOCK_EX, &w, &lock->turn_fd, err);
	if (r != CUSTODY_OK && lock->turn_fd >= 0) {
		close(lock->turn_fd);
		lock->turn_fd = -1;
	}
	free(path);
	return r;
}

void
token_lock_turn_give(struct token_lock *lock)
{
	if (lock == NULL || !lock->shared || lock->turn_fd < 0)
		return;
	close(lock->turn_fd);	/* lets go of the flock */
	lock->turn_fd = -1;
}

/* ------------------------------------ custody/token.h: the lock alone */

struct custody_token_lock {
	struct token_lock *lock;
};

/* The module a spec must name (the lock file is named after it, and open
 * and init load it). */
int
token_spec_need_module(const custody_token_spec *spec, const char *what,
		       custody_err *err)
{
	if (spec == NULL || spec->module == NULL || spec->module[0] == '\0')
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot %s: no PKCS#11 module given",
				       what);
	return CUSTODY_OK;
}

int
custody_token_lock_take(const custody_token_spec *spec,
			custody_token_lock **out, custody_err *err)
{
	custody_token_spec exclusive;
	custody_token_lock *l = NULL;
	int r = CUSTODY_EFAIL;

	*out = NULL;
	if ((r = token_spec_need_module(spec, "take the token lock", err)) !=
	    CUSTODY_OK)
		goto out;
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot take the token lock: out of memory");
		goto out;
	}
	exclusive = *spec;
	exclusive.shared = 0;
	if ((r = token_lock_acquire(&exclusive, &l->lock, err)) != CUSTODY_OK)
		goto out;
	*out = l;
	l = NULL;
	r = CUSTODY_OK;
out:
	free(l);
	return r;
}

void
custody_token_lock_release(custody_token_lock *lock)
{
	if (lock == NULL)
		return;
	token_lock_release(lock->lock);
	free(lock);
}

/* ------------------------------------------- custody/token.h: sharing */

int
custody_token_unlock(custody_token *tok, custody_err *err)
{
	if (tok != NULL)	/* others may change the token until relock */
		token_found_forget(tok);
	return token_lock_unlock(tok != NULL ? tok->lock : NULL, err);
}

int
custody_token_relock(custody_token *tok, custody_err *err)
{
	int r;

	if ((r = token_lock_relock(tok != NULL ? tok->lock : NULL, err)) !=
	    CUSTODY_OK || tok->lock->shared || !tok->logged_in)
		return r;
	/* A writer kept its login while others had the token: a token
	 * initialised again, or logged out by another process, is found
	 * now, not in the middle of its next write. */
	if ((r = token_require_login(tok, "use the token again", err)) !=
	    CUSTODY_OK)
		token_lock_unlock(tok->lock, NULL);
	return r;
}

int
custody_token_lock_wanted(custody_token *tok)
{
	return token_lock_wanted(tok != NULL ? tok->lock : NULL);
}
