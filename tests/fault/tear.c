/*
 * tear.c — preloaded (LD_PRELOAD) beside the fault shim, it lets the shim
 * kill the process in the middle of one PKCS#11 call, at a chosen write
 * of the module to its files: the crash that leaves a torn object, made
 * on purpose and at every point instead of by a lucky kill -9.
 *
 * SoftHSM's file backend writes its object files through stdio; what is
 * on disk changes at fflush, fclose and ftruncate.  Those calls on an
 * object file ("*.object"; not its ".lock" or the token's "generation")
 * are the points counted here, and only while the shim has armed the
 * count (p11tear_arm, found with dlsym): the K-th point aborts the process
 * before it runs, so the files hold what the K-1 before it wrote.
 * Outside an armed call every function forwards at once.
 */
#include "config.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

void p11tear_arm(unsigned long k) __attribute__((visibility("default")));
unsigned long p11tear_disarm(void) __attribute__((visibility("default")));
int fflush(FILE *f) __attribute__((visibility("default")));
int fclose(FILE *f) __attribute__((visibility("default")));
int ftruncate(int fd, off_t len) __attribute__((visibility("default")));

static atomic_ulong tear_at;	/* 0: disarmed */
static atomic_ulong tear_seen;

void
p11tear_arm(unsigned long k)
{
	atomic_store(&tear_seen, 0);
	atomic_store(&tear_at, k);
}

/* Disarms; returns how many points the call passed. */
unsigned long
p11tear_disarm(void)
{
	atomic_store(&tear_at, 0);
	return atomic_load(&tear_seen);
}

/* Whether fd is one of the module's object files ("*.object"). */
static int
is_object_file(int fd)
{
	char link[64], path[4096];
	ssize_t n;

	if (fd < 0)
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 7)
		return 0;
	path[n] = '\0';
	return strcmp(path + n - 7, ".object") == 0;
}

/* A point where fd's file changes: the K-th of the armed call aborts. */
static void
tear_point(int fd)
{
	unsigned long at = atomic_load(&tear_at);

	if (at != 0 && is_object_file(fd) &&
	    atomic_fetch_add(&tear_seen, 1) + 1 == at)
		abort();
}

/* The next definition of name (libc's), looked up once. */
static void *
next(void **cache, const char *name)
{
	if (*cache == NULL)
		*cache = dlsym(RTLD_NEXT, name);
	if (*cache == NULL)
		abort();
	return *cache;
}

int
fflush(FILE *f)
{
	static void *real;
	int (*fn)(FILE *);

	*(void **)&fn = next(&real, "fflush");
	if (f != NULL)
		tear_point(fileno(f));
	return fn(f);
}

int
fclose(FILE *f)
{
	static void *real;
	int (*fn)(FILE *);

	*(void **)&fn = next(&real, "fclose");
	tear_point(fileno(f));
	return fn(f);
}

int
ftruncate(int fd, off_t len)
{
	static void *real;
	int (*fn)(int, off_t);

	*(void **)&fn = next(&real, "ftruncate");
	tear_point(fd);
	return fn(fd, len);
}
