/*
 * util/secret.c — PINs and passwords, from where they may come, and the
 * process that holds them (custody_harden_process).
 *
 * What follows a source's prefix (a path, a variable name, a descriptor
 * number) is never repeated in a message: a PIN typed where its source
 * belongs ("env:24681357") would otherwise be printed.  Messages name the
 * kind of source only.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include <custody/file.h>
#include <custody/log.h>
#include <custody/secret.h>

#define SECRET_MAX 1023
#define SOURCE_FORMS "use file:PATH, env:VAR, fd:N or prompt"

enum source_kind { SRC_FILE, SRC_ENV, SRC_FD, SRC_PROMPT };

/* A source split into its kind and argument (argument points into the
 * source text). */
struct source {
	enum source_kind kind;
	const char *arg;
	int fd;
};

/* A secret being read: room for the longest secret, a CR LF after it and
 * one byte more, so that "too long" can be told from "exactly the limit".
 * A full buffer means there may be more. */
struct secret_buf {
	char data[SECRET_MAX + 3];
	size_t len;
};

static int
valid_env_name(const char *s)
{
	const char *p;

	if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')))
		return 0;
	for (p = s + 1; *p != '\0'; p++)
		if (!(*p == '_' || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
			return 0;
	return 1;
}

/* A non-negative decimal int, digits only; -1 when it is not one. */
static int
parse_fd(const char *s)
{
	long v = 0;
	const char *p;

	if (*s == '\0')
		return -1;
	for (p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
		if (v > INT_MAX)
			return -1;
	}
	return (int)v;
}

/* Splits source; a text without a known prefix is never repeated in the
 * message, for it may be the secret itself. */
static int
parse_source(const char *source, struct source *src, custody_err *err)
{
	int r = CUSTODY_EUSAGE;

	if (source == NULL || source[0] == '\0')
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "invalid secret source: none given: "
				       SOURCE_FORMS);
	if (strncmp(source, "file:", 5) == 0) {
		src->kind = SRC_FILE;
		src->arg = source + 5;
		if (src->arg[0] == '\0')
			return custody_err_set(err, CUSTODY_EUSAGE,
					       "invalid secret source (file:): the "
					       "path is empty: " SOURCE_FORMS);
	} else if (strncmp(source, "env:", 4) == 0) {
		src->kind = SRC_ENV;
		src->arg = source + 4;
		if (!valid_env_name(src->arg))
			return custody_err_set(err, CUSTODY_EUSAGE,
					       "invalid secret source (env:): what "
					       "follows is not a variable name: "
					       SOURCE_FORMS);
	} else if (strncmp(source, "fd:", 3) == 0) {
		src->kind = SRC_FD;
		src->arg = source + 3;
		if ((src->fd = parse_fd(src->arg)) < 0)
			return custody_err_set(err, CUSTODY_EUSAGE,
					       "invalid secret source (fd:): what "
					       "follows is not a file descriptor "
					       "number: " SOURCE_FORMS);
	} else if (strcmp(source, "prompt") == 0) {
		src->kind = SRC_PROMPT;
		src->arg = NULL;
	} else {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "invalid secret source: " SOURCE_FORMS);
		custody_err_hint(err, "a PIN or password is never given on "
				 "the command line or in the configuration: "
				 "put it in a file (file:PATH), an environment "
				 "variable (env:VAR) or a pipe (fd:N)");
		return r;
	}
	return CUSTODY_OK;
}

/* Moves the secret out of buf into a heap copy in out (NULL when empty)
 * and cleanses buf either way. */
static int
deliver(struct secret_buf *buf, const char *what, custody_secret *out,
	custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if (buf->len > SECRET_MAX) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read %s: it is longer than %d "
				    "bytes", what, SECRET_MAX);
		goto out;
	}
	if (memchr(buf->data, '\0', buf->len) != NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read %s: it contains a NUL byte",
				    what);
		goto out;
	}
	if (buf->len > 0) {
		/* In OpenSSL's secure heap once custody_harden_process()
		 * made one (else it is the ordinary heap). */
		ERR_set_mark();
		if ((out->data = OPENSSL_secure_malloc(buf->len + 1)) == NULL)
			out->data = OPENSSL_malloc(buf->len + 1);
		ERR_pop_to_mark();
		if (out->data == NULL) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot read %s: out of memory",
					    what);
			goto out;
		}
		memcpy(out->data, buf->data, buf->len);
		out->data[buf->len] = '\0';
		out->len = buf->len;
	}
	r = CUSTODY_OK;
out:
	OPENSSL_cleanse(buf, sizeof(*buf));
	return r;
}

static int
buf_full(const struct secret_buf *buf)
{
	return buf->len == sizeof(buf->data);
}

/* Drops the trailing CR and LF characters (all of them when lines is
 * set, else one CR, as a line read by read_fd ends). */
static void
strip_end(struct secret_buf *buf, int lines)
{
	while (buf->len > 0 && (buf->data[buf->len - 1] == '\r' ||
				(lines && buf->data[buf->len - 1] == '\n'))) {
		buf->data[--buf->len] = '\0';
		if (!lines)
			break;
	}
}

/* Reads fd to EOF (whole_file) or to the first newline (which is not
 * kept), one byte at a time so that nothing after the line is consumed.
 * Stops when the buffer is full.  Returns 1 when it stopped at a newline,
 * 0 at EOF or a full buffer, -1 on an error (errno set). */
static int
read_fd(int fd, struct secret_buf *buf, int whole_file)
{
	ssize_t n;
	char c = 0;
	int r = 0, saved;

	while (!buf_full(buf)) {
		if (whole_file) {
			n = read(fd, buf->data + buf->len,
				 sizeof(buf->data) - buf->len);
			if (n > 0)
				buf->len += (size_t)n;
		} else {
			n = read(fd, &c, 1);
			if (n > 0 && c == '\n') {
				r = 1;
				break;
			}
			if (n > 0)
				buf->data[buf->len++] = c;
		}
		if (n == 0)
			break;
		if (n < 0 && errno != EINTR) {
			r = -1;
			break;
		}
	}
	saved = errno;
	OPENSSL_cleanse(&c, sizeof(c));
	errno = saved;
	return r;
}

static int
read_file(const char *path, custody_secret *out, custody_err *err)
{
	int r = CUSTODY_EFAIL, fd = -1;
	struct secret_buf buf = {.len = 0};
	struct stat st;

	/* O_NONBLOCK: open() of a FIFO without a writer would wait forever;
	 * then the reads block again (no writer reads as end of file). */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot open the file of a file: secret "
				    "source: %s", strerror(errno));
		goto out;
	}
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	if (fstat(fd, &st) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read the file of a file: secret "
				    "source: %s", strerror(errno));
		goto out;
	}
	if (S_ISREG(st.st_mode) && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		custody_warn("the file of a file: secret source is readable "
			     "by other users (mode %04o)",
			     (unsigned)(st.st_mode & 07777));
	if (read_fd(fd, &buf, 1) < 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read the file of a file: secret "
				    "source: %s", strerror(errno));
		goto out;
	}
	if (!buf_full(&buf))
		strip_end(&buf, 1);
	r = deliver(&buf, "the file of a file: secret source", out, err);
out:
	OPENSSL_cleanse(&buf, sizeof(buf));
	if (fd >= 0)
		close(fd);
	return r;
}

static int
read_env(const char *name, custody_secret *out, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	struct secret_buf buf = {.len = 0};
	/* Not from the environment of a set-user-ID caller. */
	const char *value = secure_getenv(name);

	if (value == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "the environment variable of an env: "
				    "secret source is not set");
		goto out;
	}
	buf.len = strnlen(value, SECRET_MAX + 1);
	memcpy(buf.data, value, buf.len);
	r = deliver(&buf, "the environment variable of an env: secret source",
		    out, err);
out:
	OPENSSL_cleanse(&buf, sizeof(buf));
	return r;
}

static int
read_from_fd(int fd, custody_secret *out, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	struct secret_buf buf = {.len = 0};

	if (read_fd(fd, &buf, 0) < 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read the descriptor of an fd: "
				    "secret source: %s", strerror(errno));
		goto out;
	}
	strip_end(&buf, 0);
	r = deliver(&buf, "the descriptor of an fd: secret source", out, err);
out:
	OPENSSL_cleanse(&buf, sizeof(buf));
	return r;
}

static int
read_prompt(const char *prompt, custody_secret *out, custody_err *err)
{
	int r = CUSTODY_EFAIL, fd = -1, restore = 0, rc, saved;
	struct secret_buf buf = {.len = 0};
	struct termios old, quiet;

	fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || tcgetattr(fd, &old) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot prompt for the PIN: no terminal");
		custody_err_hint(err, "give it with file:PATH, env:VAR or "
				 "fd:N instead of prompt");
		goto out;
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	quiet.c_lflag |= ICANON;
	if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot prompt for the PIN: cannot turn "
				    "off echo: %s", strerror(errno));
		goto out;
	}
	restore = 1;
	if (prompt == NULL)
		prompt = "PIN: ";
	if (custody_write_all(fd, prompt, strlen(prompt)) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot prompt for the PIN: %s",
				    strerror(errno));
		goto out;
	}
	rc = read_fd(fd, &buf, 0);
	saved = errno;
	(void)custody_write_all(fd, "\n", 1);
	if (rc < 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read the PIN from the terminal: "
				    "%s", strerror(saved));
		goto out;
	}
	/* Ctrl-D: the user gave up, which is not an empty PIN. */
	if (rc == 0 && !buf_full(&buf)) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read the PIN from the terminal: "
				    "end of input");
		goto out;
	}
	strip_end(&buf, 0);
	r = deliver(&buf, "the PIN from the terminal", out, err);
out:
	OPENSSL_cleanse(&buf, sizeof(buf));
	if (restore)
		(void)tcsetattr(fd, TCSAFLUSH, &old);
	if (fd >= 0)
		close(fd);
	return r;
}

int
custody_secret_source_check(const char *source, custody_err *err)
{
	struct source src;

	memset(&src, 0, sizeof(src));
	return parse_source(source, &src, err);
}

void
custody_secret_clear(custody_secret *s)
{
	if (s == NULL)
		return;
	if (s->data != NULL)	/* either heap: it tells them apart */
		OPENSSL_secure_clear_free(s->data, s->len + 1);
	s->data = NULL;
	s->len = 0;
}

int
custody_secret_read(const char *source, const char *prompt,
		    custody_secret *out, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	struct source src;

	out->data = NULL;
	out->len = 0;
	memset(&src, 0, sizeof(src));
	if ((r = parse_source(source, &src, err)) != CUSTODY_OK)
		goto out;
	switch (src.kind) {
	case SRC_FILE:
		r = read_file(src.arg, out, err);
		break;
	case SRC_ENV:
		r = read_env(src.arg, out, err);
		break;
	case SRC_FD:
		r = read_from_fd(src.fd, out, err);
		break;
	case SRC_PROMPT:
		r = read_prompt(prompt, out, err);
		break;
	}
out:
	if (r != CUSTODY_OK)
		custody_secret_clear(out);
	return r;
}

/* ---------------------------------------- the process that holds secrets */

int
custody_harden_process(custody_err *err)
{
	struct rlimit none = {0, 0};
	int r = CUSTODY_EFAIL, rc;

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot make this process non-dumpable: %s",
				       strerror(errno));
	if (setrlimit(RLIMIT_CORE, &none) != 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot turn core dumps off: %s",
				       strerror(errno));
	if (!CRYPTO_secure_malloc_initialized()) {
		rc = CRYPTO_secure_malloc_init(CUSTODY_SECURE_HEAP_SIZE,
					       CUSTODY_SECURE_HEAP_MIN);
		if (rc == 0) {
			r = custody_err_openssl(err, CUSTODY_EFAIL,
						"cannot set up OpenSSL's secure "
						"heap");
			return r;
		}
		/* 2: in use, but mlock failed (RLIMIT_MEMLOCK): its pages
		 * may be swapped; they stay out of core dumps. */
		if (rc == 2)
			custody_debug("OpenSSL's secure heap could not be "
				      "locked in memory (RLIMIT_MEMLOCK)");
	}
	return CUSTODY_OK;
}
