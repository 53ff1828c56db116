/*
 * sigout.c — `custody sign`'s input and output (see sigout.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <custody/file.h>

#include "sigout.h"

int
sig_read_input(const char *path, sig_input_fn fn, void *ctx, custody_err *err)
{
	unsigned char buf[65536];
	const char *name = path != NULL ? path : "standard input";
	int fd = 0, r = CUSTODY_EFAIL;
	ssize_t n;

	/* O_NONBLOCK: open() of a FIFO without a writer would wait forever;
	 * then the reads block again (no writer reads as end of file). */
	if (path != NULL && (fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot open %s: %s",
				       path, strerror(errno));
	if (path != NULL)
		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot read %s: %s", name,
					    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if ((r = fn(ctx, buf, (size_t)n, err)) != CUSTODY_OK)
			goto out;
	}
	r = CUSTODY_OK;
out:
	if (path != NULL)
		close(fd);
	return r;
}

int
sig_refuse_existing(const char *path, custody_err *err)
{
	struct stat st;

	if (path != NULL && lstat(path, &st) == 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot create %s: it exists (an existing "
				       "file is never overwritten)", path);
	return CUSTODY_OK;
}

int
sig_write(const char *path, const unsigned char *sig, size_t len,
	  custody_err *err)
{
	int fd = 1, e;

	if (path != NULL) {
		fd = custody_file_create(path, O_WRONLY, 0644);
		if (fd < 0)
			return custody_err_set(err, CUSTODY_EFAIL,
					       "cannot create %s: %s%s", path,
					       strerror(errno),
					       errno == EEXIST
						       ? " (an existing file is "
							 "never overwritten)"
						       : "");
	}
	if (custody_write_all(fd, sig, len) != 0) {
		e = errno;
		if (path != NULL)
			close(fd);
		goto fail;
	}
	if (path != NULL && close(fd) != 0) {
		e = errno;
		goto fail;
	}
	return CUSTODY_OK;
fail:
	custody_err_set(err, CUSTODY_EFAIL, "cannot write the signature to "
			"%s: %s", path != NULL ? path : "standard output",
			strerror(e));
	if (path != NULL)
		unlink(path);
	return CUSTODY_EFAIL;
}
