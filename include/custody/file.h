/*
 * custody/file.h — the files custody writes: always a new file (never an
 * existing one, never through a symbolic link), and every byte written.
 * Errors are errno, for the caller to word: these know nothing of what
 * the file is for.
 */
#ifndef CUSTODY_FILE_H
#define CUSTODY_FILE_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* open(path, flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode):
 * flags gives the access mode (O_WRONLY, O_RDONLY) and any other flag.
 * The descriptor, or -1 with errno (EEXIST: path exists, and is left as
 * it is). */
int custody_file_create(const char *path, int flags, mode_t mode);

/* Writes the len bytes of buf to fd, again after a short write or an
 * interrupted one.  0, or -1 with errno. */
int custody_write_all(int fd, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
