/* test_secret.c — PINs and passwords, from where they may come. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <custody/log.h>
#include <custody/secret.h>

#define FORMS "use file:PATH, env:VAR, fd:N or prompt"
#define ENV_BAD "invalid secret source (env:): what follows is not a " \
	"variable name: " FORMS
#define FD_BAD "invalid secret source (fd:): what follows is not a file " \
	"descriptor number: " FORMS

/* ---------------------------------------------------------------- helpers */

static char warnings[4096];
static int n_warnings;

static void
capture(enum custody_log_level level, const char *line, void *ctx)
{
	(void)ctx;
	if (level != CUSTODY_LOG_WARN)
		return;
	n_warnings++;
	snprintf(warnings + strlen(warnings),
		 sizeof(warnings) - strlen(warnings), "%s\n", line);
}

static char dir[64];

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/custody-test-secret-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	warnings[0] = '\0';
	n_warnings = 0;
	custody_log_set_handler(capture, NULL);
}

static void
teardown(void)
{
	char cmd[128];

	custody_log_set_handler(NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", dir);
}

/* Writes len bytes to a new file in dir with exactly the given mode;
 * returns "file:PATH" in source (and PATH in path when not NULL). */
static void
pin_file(const char *name, const void *data, size_t len, mode_t mode,
	 char *source, size_t size, char *path)
{
	char p[256];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0, "%s: %s", p, strerror(errno));
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
	snprintf(source, size, "file:%s", p);
	if (path != NULL)
		strcpy(path, p);
}

static void
read_ok(const char *source, const char *want, size_t want_len)
{
	custody_secret s = {0};
	custody_err err = {0};

	cr_assert_eq(custody_secret_read(source, "PIN: ", &s, &err),
		     CUSTODY_OK, "%s: %s", source, err.msg);
	cr_assert_eq(s.len, want_len);
	cr_assert_not_null(s.data);
	cr_assert_eq(memcmp(s.data, want, want_len), 0);
	cr_assert_eq(s.data[s.len], '\0');
	custody_secret_clear(&s);
	cr_assert_null(s.data);
	cr_assert_eq(s.len, 0);
}

static void
read_fails(const char *source, int code, const char *msg)
{
	custody_secret s = {(char *)"junk", 4};
	custody_err err = {0};

	cr_assert_eq(custody_secret_read(source, "PIN: ", &s, &err), code,
		     "%s: %s", source != NULL ? source : "(null)", err.msg);
	cr_assert_eq(err.code, code);
	cr_assert_str_eq(err.msg, msg);
	cr_assert_null(s.data);
	cr_assert_eq(s.len, 0);
}

TestSuite(secret, .init = setup, .fini = teardown);

/* ---------------------------------------------------------------- file: */

Test(secret, file_strips_trailing_cr_lf)
{
	char src[300];

	pin_file("crlf", "1234\r\n", 6, 0600, src, sizeof(src), NULL);
	read_ok(src, "1234", 4);
	pin_file("lf", "s3cr et\n", 8, 0600, src, sizeof(src), NULL);
	read_ok(src, "s3cr et", 7);
	pin_file("none", "abc", 3, 0400, src, sizeof(src), NULL);
	read_ok(src, "abc", 3);
	pin_file("many", "abc\n\r\n\n", 7, 0600, src, sizeof(src), NULL);
	read_ok(src, "abc", 3);
	/* Only the end is stripped. */
	pin_file("inner", " a\nb \n", 6, 0600, src, sizeof(src), NULL);
	read_ok(src, " a\nb ", 5);
	cr_assert_eq(n_warnings, 0, "%s", warnings);
}

Test(secret, file_readable_by_others_warns)
{
	char src[300], path[256], want[400];

	pin_file("open", "1234\n", 5, 0644, src, sizeof(src), path);
	read_ok(src, "1234", 4);
	(void)path;
	snprintf(want, sizeof(want), "%s is readable by other users "
		 "(mode 0644)\n", "the file of a file: secret source");
	cr_assert_eq(n_warnings, 1);
	cr_assert_str_eq(warnings, want);
}

Test(secret, file_readable_by_group_warns)
{
	char src[300], path[256], want[400];

	pin_file("group", "1234\n", 5, 0640, src, sizeof(src), path);
	read_ok(src, "1234", 4);
	(void)path;
	snprintf(want, sizeof(want), "%s is readable by other users "
		 "(mode 0640)\n", "the file of a file: secret source");
	cr_assert_str_eq(warnings, want);
}

Test(secret, file_0600_does_not_warn)
{
	char src[300];

	pin_file("closed", "1234\n", 5, 0600, src, sizeof(src), NULL);
	read_ok(src, "1234", 4);
	cr_assert_eq(n_warnings, 0, "%s", warnings);
	cr_assert_str_eq(warnings, "");
}

Test(secret, file_missing)
{
	char src[300], msg[400];

	snprintf(src, sizeof(src), "file:%s/nope", dir);
	snprintf(msg, sizeof(msg), "cannot open %s: No such file or directory",
		 "the file of a file: secret source");
	read_fails(src, CUSTODY_EFAIL, msg);
}

Test(secret, file_longest_and_too_long)
{
	char src[300], path[256], msg[400];
	char big[2000];

	memset(big, 'p', sizeof(big));
	/* 1023 bytes and a CR LF: the longest secret. */
	memcpy(big + 1023, "\r\n", 2);
	pin_file("max", big, 1025, 0600, src, sizeof(src), NULL);
	read_ok(src, big, 1023);
	/* 1024 bytes. */
	memset(big, 'p', sizeof(big));
	pin_file("over", big, 1024, 0600, src, sizeof(src), path);
	snprintf(msg, sizeof(msg), "cannot read %s: it is longer "
		 "than 1023 bytes", "the file of a file: secret source");
	read_fails(src, CUSTODY_EFAIL, msg);
	pin_file("big", big, sizeof(big), 0600, src, sizeof(src), path);
	snprintf(msg, sizeof(msg), "cannot read %s: it is longer "
		 "than 1023 bytes", "the file of a file: secret source");
	read_fails(src, CUSTODY_EFAIL, msg);
}

Test(secret, file_with_nul_byte)
{
	char src[300], path[256], msg[400];

	pin_file("nul", "12\0" "34\n", 6, 0600, src, sizeof(src), path);
	(void)path;
	snprintf(msg, sizeof(msg), "cannot read %s: it contains a "
		 "NUL byte", "the file of a file: secret source");
	read_fails(src, CUSTODY_EFAIL, msg);
}

Test(secret, empty_file_is_an_empty_secret)
{
	char src[300];
	custody_secret s = {0};
	custody_err err = {0};

	pin_file("empty", "\n", 1, 0600, src, sizeof(src), NULL);
	cr_assert_eq(custody_secret_read(src, NULL, &s, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_null(s.data);
	cr_assert_eq(s.len, 0);
}

Test(secret, directory_is_not_a_pin_file)
{
	char src[300], msg[400];

	snprintf(src, sizeof(src), "file:%s", dir);
	snprintf(msg, sizeof(msg), "cannot read %s: Is a directory",
		 "the file of a file: secret source");
	read_fails(src, CUSTODY_EFAIL, msg);
}

/* ---------------------------------------------------------------- env: */

Test(secret, env_set_and_unset)
{
	cr_assert_eq(setenv("CUSTODY_TEST_PIN", "9876 5", 1), 0);
	read_ok("env:CUSTODY_TEST_PIN", "9876 5", 6);
	cr_assert_eq(unsetenv("CUSTODY_TEST_PIN"), 0);
	read_fails("env:CUSTODY_TEST_PIN", CUSTODY_EFAIL,
		   "the environment variable of an env: secret source is not set");
}

Test(secret, env_too_long)
{
	char big[1100];

	memset(big, 'e', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(setenv("CUSTODY_TEST_PIN", big, 1), 0);
	read_fails("env:CUSTODY_TEST_PIN", CUSTODY_EFAIL,
		   "cannot read the environment variable of an env: secret "
		   "source: it is longer than 1023 bytes");
}

/* ---------------------------------------------------------------- fd: */

Test(secret, fd_reads_one_line_and_leaves_the_rest)
{
	int p[2];
	char src[32], rest[16] = "";

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], "5678\nrest", 9), 9);
	close(p[1]);
	snprintf(src, sizeof(src), "fd:%d", p[0]);
	read_ok(src, "5678", 4);
	/* Nothing after the line was consumed, and the fd is still open. */
	cr_assert_eq(read(p[0], rest, sizeof(rest) - 1), 4);
	cr_assert_str_eq(rest, "rest");
	close(p[0]);
}

Test(secret, fd_to_eof_and_crlf)
{
	int p[2];
	char src[32];

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], "abcd", 4), 4);
	close(p[1]);
	snprintf(src, sizeof(src), "fd:%d", p[0]);
	read_ok(src, "abcd", 4);
	close(p[0]);

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], "abcd\r\nxyz\n", 10), 10);
	close(p[1]);
	snprintf(src, sizeof(src), "fd:%d", p[0]);
	read_ok(src, "abcd", 4);
	read_ok(src, "xyz", 3);
	close(p[0]);
}

Test(secret, fd_too_long)
{
	int p[2];
	char src[32], msg[128], big[1024];

	memset(big, 'f', sizeof(big));
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], big, sizeof(big)), (ssize_t)sizeof(big));
	cr_assert_eq(write(p[1], "\n", 1), 1);
	close(p[1]);
	snprintf(src, sizeof(src), "fd:%d", p[0]);
	snprintf(msg, sizeof(msg), "cannot read the descriptor of an fd: "
		 "secret source: it is longer than 1023 bytes");
	read_fails(src, CUSTODY_EFAIL, msg);
	close(p[0]);
}

Test(secret, fd_closed)
{
	int p[2];
	char src[32], msg[128];

	cr_assert_eq(pipe(p), 0);
	close(p[0]);
	close(p[1]);
	snprintf(src, sizeof(src), "fd:%d", p[0]);
	snprintf(msg, sizeof(msg), "cannot read the descriptor of an fd: "
		 "secret source: Bad file descriptor");
	read_fails(src, CUSTODY_EFAIL, msg);
}

/* ---------------------------------------------------------------- prompt */

/* Runs custody_secret_read("prompt") in a child that has no controlling
 * terminal (setsid), and returns its status code and message. */
Test(secret, prompt_without_terminal)
{
	int p[2], status;
	pid_t pid;
	custody_err err = {0};
	ssize_t n;

	cr_assert_eq(pipe(p), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		custody_secret s = {0};

		close(p[0]);
		if (setsid() < 0)
			_exit(2);
		custody_secret_read("prompt", "PIN: ", &s, &err);
		if (write(p[1], &err, sizeof(err)) != (ssize_t)sizeof(err))
			_exit(3);
		_exit(s.data == NULL ? 0 : 4);
	}
	close(p[1]);
	n = read(p[0], &err, sizeof(err));
	close(p[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "child status %d", status);
	cr_assert_eq(n, (ssize_t)sizeof(err));
	cr_assert_eq(err.code, CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "cannot prompt for the PIN: no terminal");
	cr_assert_str_eq(err.hint, "give it with file:PATH, env:VAR or fd:N "
			 "instead of prompt");
}

/* What the child of answer_prompt saw. */
struct prompt_result {
	int code;
	char msg[128];
	char secret[64];
	int echo_restored;
};

/* Reads the pty master until want appears (or 5 s pass). */
static void
read_until(int fd, char *out, size_t size, const char *want)
{
	size_t len = strlen(out);
	ssize_t n;
	int i;

	for (i = 0; i < 500 && strstr(out, want) == NULL; i++) {
		n = read(fd, out + len, size - 1 - len);
		if (n > 0) {
			len += (size_t)n;
			out[len] = '\0';
		} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			break;
		} else {
			usleep(10000);
		}
	}
}

/* Runs custody_secret_read("prompt") in a child whose controlling
 * terminal is a new pty, types input once the prompt shows, and returns
 * what the child read and what the terminal showed (in seen). */
static struct prompt_result
answer_prompt(const char *input, char *seen, size_t size)
{
	int master, slave, p[2], status;
	pid_t pid;
	char name[128];
	struct prompt_result res;

	seen[0] = '\0';
	master = posix_openpt(O_RDWR | O_NOCTTY);
	cr_assert_geq(master, 0);
	cr_assert_eq(grantpt(master), 0);
	cr_assert_eq(unlockpt(master), 0);
	cr_assert_eq(ptsname_r(master, name, sizeof(name)), 0);
	cr_assert_eq(pipe(p), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		custody_secret s = {0};
		custody_err err = {0};
		struct termios t;

		memset(&res, 0, sizeof(res));
		close(p[0]);
		close(master);
		/* A new session whose controlling terminal is the pty. */
		if (setsid() < 0 || (slave = open(name, O_RDWR)) < 0)
			_exit(2);
		res.code = custody_secret_read("prompt", "Token PIN: ", &s,
					       &err);
		snprintf(res.msg, sizeof(res.msg), "%.127s", err.msg);
		if (s.data != NULL)
			snprintf(res.secret, sizeof(res.secret), "%s", s.data);
		custody_secret_clear(&s);
		res.echo_restored = tcgetattr(slave, &t) == 0 &&
				    (t.c_lflag & ECHO) != 0;
		if (write(p[1], &res, sizeof(res)) != (ssize_t)sizeof(res))
			_exit(3);
		_exit(0);
	}
	close(p[1]);
	cr_assert_eq(fcntl(master, F_SETFL, O_NONBLOCK), 0);
	read_until(master, seen, size, "Token PIN: ");
	cr_assert_not_null(strstr(seen, "Token PIN: "), "saw '%s'", seen);
	cr_assert_eq(write(master, input, strlen(input)),
		     (ssize_t)strlen(input));
	cr_assert_eq(read(p[0], &res, sizeof(res)), (ssize_t)sizeof(res));
	read_until(master, seen, size, "\n");
	close(p[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "child status %d", status);
	close(master);
	return res;
}

Test(secret, prompt_on_a_terminal_does_not_echo)
{
	char seen[512];
	struct prompt_result res = answer_prompt("4321\n", seen, sizeof(seen));

	cr_assert_eq(res.code, CUSTODY_OK, "%s", res.msg);
	cr_assert_str_eq(res.secret, "4321");
	cr_assert(res.echo_restored, "echo was left off");
	/* The terminal showed the prompt and a newline, never the PIN. */
	cr_assert_null(strstr(seen, "4321"), "the PIN was echoed: '%s'", seen);
	cr_assert_str_eq(seen, "Token PIN: \r\n");
}

Test(secret, prompt_end_of_input_is_not_an_empty_pin)
{
	char seen[512];
	struct prompt_result res = answer_prompt("\x04", seen, sizeof(seen));

	cr_assert_eq(res.code, CUSTODY_EFAIL);
	cr_assert_str_eq(res.msg, "cannot read the PIN from the terminal: "
			 "end of input");
	cr_assert_str_eq(res.secret, "");
	cr_assert(res.echo_restored, "echo was left off");
}

Test(secret, prompt_empty_line_is_an_empty_secret)
{
	char seen[512];
	struct prompt_result res = answer_prompt("\r", seen, sizeof(seen));

	/* The terminal turns Enter (CR) into a newline. */
	cr_assert_eq(res.code, CUSTODY_OK, "%s", res.msg);
	cr_assert_str_eq(res.secret, "");
	cr_assert(res.echo_restored, "echo was left off");
}

/* ---------------------------------------------------------------- forms */

Test(secret, bare_value_is_not_repeated)
{
	custody_secret s = {0};
	custody_err err = {0};

	cr_assert_eq(custody_secret_read("1234", NULL, &s, &err),
		     CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "invalid secret source: " FORMS);
	cr_assert_null(strstr(err.msg, "1234"));
	cr_assert_null(strstr(err.hint, "1234"));
	cr_assert_null(s.data);
	cr_assert_eq(custody_secret_source_check("1234", &err),
		     CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "invalid secret source: " FORMS);
	cr_assert_null(strstr(err.hint, "1234"));
	cr_assert_neq(err.hint[0], '\0');
}

Test(secret, pass_form_is_refused_without_its_value)
{
	custody_err err = {0};

	read_fails("pass:xyz123", CUSTODY_EUSAGE,
		   "invalid secret source: " FORMS);
	cr_assert_eq(custody_secret_source_check("pass:xyz123", &err),
		     CUSTODY_EUSAGE);
	cr_assert_null(strstr(err.msg, "xyz123"));
	cr_assert_null(strstr(err.hint, "xyz123"));
}

Test(secret, malformed_sources)
{
	read_fails("", CUSTODY_EUSAGE,
		   "invalid secret source: none given: " FORMS);
	read_fails(NULL, CUSTODY_EUSAGE,
		   "invalid secret source: none given: " FORMS);
	/* What follows the prefix is never repeated: it may be the PIN. */
	read_fails("file:", CUSTODY_EUSAGE,
		   "invalid secret source (file:): the path is empty: " FORMS);
	read_fails("env:", CUSTODY_EUSAGE, ENV_BAD);
	read_fails("env:1PIN", CUSTODY_EUSAGE, ENV_BAD);
	read_fails("env:A=B", CUSTODY_EUSAGE, ENV_BAD);
	read_fails("fd:", CUSTODY_EUSAGE, FD_BAD);
	read_fails("fd:-1", CUSTODY_EUSAGE, FD_BAD);
	read_fails("fd:3x", CUSTODY_EUSAGE, FD_BAD);
	read_fails("fd:99999999999", CUSTODY_EUSAGE, FD_BAD);
	read_fails("prompt:", CUSTODY_EUSAGE, "invalid secret source: " FORMS);
	read_fails("Prompt", CUSTODY_EUSAGE, "invalid secret source: " FORMS);
	read_fails("FILE:/etc/pin", CUSTODY_EUSAGE,
		   "invalid secret source: " FORMS);
	read_fails("/etc/pin", CUSTODY_EUSAGE,
		   "invalid secret source: " FORMS);
}

Test(secret, source_check_does_not_read)
{
	custody_err err = {0};

	cr_assert_eq(custody_secret_source_check("file:/nonexistent/pin",
						 &err), CUSTODY_OK);
	cr_assert_eq(custody_secret_source_check("env:CUSTODY_NOT_SET_XYZ",
						 &err), CUSTODY_OK);
	cr_assert_eq(custody_secret_source_check("fd:0", &err), CUSTODY_OK);
	cr_assert_eq(custody_secret_source_check("fd:250", &err), CUSTODY_OK);
	cr_assert_eq(custody_secret_source_check("prompt", &err), CUSTODY_OK);
	cr_assert_eq(custody_secret_source_check("env:_A1", NULL), CUSTODY_OK);
	cr_assert_eq(custody_secret_source_check("fd:x", NULL),
		     CUSTODY_EUSAGE);
	cr_assert_eq(n_warnings, 0);
}

Test(secret, clear_is_idempotent)
{
	custody_secret s = {0};

	custody_secret_clear(&s);
	custody_secret_clear(NULL);
	cr_assert_eq(setenv("CUSTODY_TEST_PIN", "abc", 1), 0);
	cr_assert_eq(custody_secret_read("env:CUSTODY_TEST_PIN", NULL, &s,
					 NULL), CUSTODY_OK);
	cr_assert_str_eq(s.data, "abc");
	custody_secret_clear(&s);
	cr_assert_null(s.data);
	cr_assert_eq(s.len, 0);
	custody_secret_clear(&s);
}
