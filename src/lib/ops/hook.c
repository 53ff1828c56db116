/*
 * ops/hook.c — one operator command run under /bin/sh -c, bounded in time,
 * its output kept as text safe to log (custody/hook.h).
 *
 * Everything the child needs (argv, envp, descriptors, signal dispositions)
 * is made before fork: between fork and exec the child calls only
 * async-signal-safe functions, so a multi-threaded caller is safe too.
 * The shell's end is noticed with waitid(WNOWAIT) and it is reaped last:
 * while it is unreaped its pid, which is its group's id, cannot be given
 * to another process, so signalling the group never hits a stranger.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <custody/clock.h>
#include <custody/hook.h>

extern char **environ;

#define HOOK_SHELL "/bin/sh"
#define CUT_MARK "\xe2\x80\xa6"	/* "…" */
#define CUT_MARK_LEN (sizeof(CUT_MARK) - 1)
/* Reads of the output between two looks at the clock: a command that
 * writes without pause must not keep us past its deadline. */
#define READS_PER_TURN 16

/* What the child is given, all of it made before fork. */
struct hook_plan {
	char *argv[4];
	char **envp;		/* pointers into environ and `set`: not owned */
	int null_fd;		/* /dev/null, the child's stdin             */
	int out_r, out_w;	/* the output pipe (stdout and stderr)      */
	int err_r, err_w;	/* errno from a child whose exec failed     */
	long max_fd;		/* descriptors to close without close_range */
	struct sigaction dfl;	/* SIG_DFL, for every signal                */
	sigset_t none;		/* the child's signal mask: nothing blocked */
};

/* The running command, as its parent sees it. */
struct hook_run {
	pid_t pid;		/* the shell, also its group's id            */
	int out_fd;		/* the output's read end; -1 once closed     */
	int ended;		/* the shell has ended (maybe not reaped)    */
	int lost;		/* it was reaped by another wait: status lost */
	siginfo_t how;		/* how it ended                              */
	unsigned char kept[CUSTODY_HOOK_OUTPUT];
	size_t kept_len;
	size_t total;
};

/* ------------------------------------------------------------ environment */

static int
env_name_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (i = 0; i < len; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_'))
			return 0;
	return 1;
}

/* 1 when the variable of `entry` ("NAME=value") is named in `list`
 * (of "NAME" or "NAME=value" strings, NULL-terminated, or NULL). */
static int
env_listed(const char *entry, const char *const *list)
{
	size_t len = strcspn(entry, "=");

	for (; list != NULL && *list != NULL; list++)
		if (strcspn(*list, "=") == len && memcmp(*list, entry, len) == 0)
			return 1;
	return 0;
}

/* The child's environment: environ minus `unset` and minus what `set`
 * replaces, then `set`.  *out is one calloc'd array of borrowed strings. */
static int
hook_env(const char *const *set, const char *const *unset, char ***out, custody_err *err)
{
	size_t n_env = 0, n_set = 0, n = 0, i, len;
	char **envp;

	for (; set != NULL && set[n_set] != NULL; n_set++) {
		len = strcspn(set[n_set], "=");
		if (set[n_set][len] != '=' || !env_name_ok(set[n_set], len))
			return custody_err_set(err, CUSTODY_EUSAGE,
					       "hook environment: \"%.*s\" is not NAME=value "
					       "with a NAME of A-Z, 0-9 and _ (not first)",
					       (int)(len < 64 ? len : 64), set[n_set]);
	}
	while (environ != NULL && environ[n_env] != NULL)
		n_env++;
	envp = calloc(n_env + n_set + 1, sizeof(*envp));
	if (envp == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "hook environment: out of memory");
	for (i = 0; i < n_env; i++)
		if (!env_listed(environ[i], unset) && !env_listed(environ[i], set))
			envp[n++] = environ[i];
	for (i = 0; i < n_set; i++)
		envp[n++] = (char *)set[i];
	*out = envp;
	return CUSTODY_OK;
}

/* ------------------------------------------------------------ starting */

static void
plan_init(struct hook_plan *p, const char *command)
{
	memset(p, 0, sizeof(*p));
	p->argv[0] = "sh";
	p->argv[1] = "-c";
	p->argv[2] = (char *)command;
	p->argv[3] = NULL;
	p->null_fd = p->out_r = p->out_w = p->err_r = p->err_w = -1;
	p->dfl.sa_handler = SIG_DFL;
	sigemptyset(&p->dfl.sa_mask);
	sigemptyset(&p->none);
	p->max_fd = sysconf(_SC_OPEN_MAX);
	if (p->max_fd < 0)
		p->max_fd = 1024;
}

static void
fd_close(int *fd)
{
	if (*fd >= 0)
		(void)close(*fd);
	*fd = -1;
}

static void
plan_free(struct hook_plan *p)
{
	fd_close(&p->null_fd);
	fd_close(&p->out_r);
	fd_close(&p->out_w);
	fd_close(&p->err_r);
	fd_close(&p->err_w);
	free(p->envp);
	p->envp = NULL;
}

/* Moves *fd above 0, 1 and 2 (close-on-exec kept), so that the child's
 * dup2 onto those never overwrites a descriptor it still has to dup. */
static int
fd_above_stdio(int *fd)
{
	int moved;

	if (*fd > 2)
		return 0;
	moved = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
	if (moved < 0)
		return -1;
	(void)close(*fd);
	*fd = moved;
	return 0;
}

/* The descriptors: all close-on-exec, so that no other child of this
 * process inherits them. */
static int
plan_open(struct hook_plan *p, custody_err *err)
{
	int fds[2];

	if (pipe2(fds, O_CLOEXEC) != 0)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot start the hook: pipe: %s",
				       strerror(errno));
	p->out_r = fds[0];
	p->out_w = fds[1];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot start the hook: pipe: %s",
				       strerror(errno));
	p->err_r = fds[0];
	p->err_w = fds[1];
	p->null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (p->null_fd < 0 || fd_above_stdio(&p->null_fd) != 0 ||
	    fd_above_stdio(&p->out_w) != 0 || fd_above_stdio(&p->err_w) != 0 ||
	    fcntl(p->out_r, F_SETFL, O_NONBLOCK) != 0)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot start the hook: /dev/null: %s",
				       strerror(errno));
	return CUSTODY_OK;
}

/* In the child: closes every descriptor from 3 up but err_w. */
static void
child_close_inherited(const struct hook_plan *p)
{
	long fd;
#ifdef SYS_close_range
	unsigned int keep = (unsigned int)p->err_w;

	if ((keep == 3 || syscall(SYS_close_range, 3U, keep - 1, 0U) == 0) &&
	    syscall(SYS_close_range, keep + 1, ~0U, 0U) == 0)
		return;
#endif
	/* Kernels before 5.9: one close per possible descriptor. */
	for (fd = 3; fd < p->max_fd; fd++)
		if (fd != p->err_w)
			(void)close((int)fd);
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static _Noreturn void
child_exec(const struct hook_plan *p)
{
	int sig, e;

	/* Default dispositions: a SIGPIPE or SIGINT the caller ignores must
	 * not be ignored by the command, nor SIGTERM blocked. */
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &p->dfl, NULL);
	if (setpgid(0, 0) == 0 && dup2(p->null_fd, 0) >= 0 && dup2(p->out_w, 1) >= 0 &&
	    dup2(p->out_w, 2) >= 0) {
		child_close_inherited(p);
		(void)sigprocmask(SIG_SETMASK, &p->none, NULL);
		execve(HOOK_SHELL, p->argv, p->envp);
	}
	e = errno;
	(void)!write(p->err_w, &e, sizeof(e));
	_exit(127);
}

/* Forks the child; returns once /bin/sh runs in it, or has failed to. */
static int
hook_spawn(struct hook_plan *p, pid_t *pid_out, custody_err *err)
{
	sigset_t all, saved;
	pid_t pid;
	ssize_t n;
	int e;

	/* No handler of the caller may run in the child before its
	 * dispositions are reset. */
	sigfillset(&all);
	(void)pthread_sigmask(SIG_SETMASK, &all, &saved);
	pid = fork();
	if (pid == 0)
		child_exec(p);
	e = errno;
	(void)pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (pid < 0)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot start the hook: fork: %s",
				       strerror(e));
	/* Here too, so that the group exists before anyone signals it (fails
	 * harmlessly once the child has exec'd: it made the group itself). */
	(void)setpgid(pid, pid);
	fd_close(&p->out_w);
	fd_close(&p->err_w);
	fd_close(&p->null_fd);
	do
		n = read(p->err_r, &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(e)) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return custody_err_set(err, CUSTODY_EFAIL, "cannot start %s for the hook: %s",
				       HOOK_SHELL, strerror(e));
	}
	*pid_out = pid;
	return CUSTODY_OK;
}

/* A caller ignoring SIGCHLD has its children reaped by the kernel: the
 * exit status would be lost, and the group's id could be reused. */
static int
sigchld_usable(custody_err *err)
{
	struct sigaction sa;

	if (sigaction(SIGCHLD, NULL, &sa) == 0 &&
	    (((sa.sa_flags & SA_SIGINFO) == 0 && sa.sa_handler == SIG_IGN) ||
	     (sa.sa_flags & SA_NOCLDWAIT) != 0))
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot run the hook: SIGCHLD is ignored, so its exit "
				       "status could not be learnt");
	return CUSTODY_OK;
}

/* ------------------------------------------------------------ waiting */

/* Reads what is there (a bounded number of reads); closes the read end
 * at end of file or on an error. */
static void
run_drain(struct hook_run *r)
{
	unsigned char chunk[16384];
	size_t room, take;
	ssize_t n;
	int reads;

	for (reads = 0; r->out_fd >= 0 && reads < READS_PER_TURN; reads++) {
		n = read(r->out_fd, chunk, sizeof(chunk));
		if (n > 0) {
			room = sizeof(r->kept) - r->kept_len;
			take = (size_t)n < room ? (size_t)n : room;
			memcpy(r->kept + r->kept_len, chunk, take);
			r->kept_len += take;
			r->total += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return;
		} else {
			fd_close(&r->out_fd);
		}
	}
}

/* Notes whether the shell has ended, leaving it unreaped. `block`: wait
 * for it. */
static void
run_check_end(struct hook_run *r, int block)
{
	siginfo_t si;

	while (!r->ended) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOWAIT | (block ? 0 : WNOHANG)) == 0) {
			if (si.si_pid == r->pid) {
				r->ended = 1;
				r->how = si;
			}
			if (!block)
				return;
		} else if (errno == ECHILD) {
			r->ended = 1;
			r->lost = 1;
		} else if (errno != EINTR || !block) {
			return;
		}
	}
}

/* Drains the output until the shell has ended and the output is closed
 * (1), or deadline_ms on the monotonic clock has come (0). */
static int
run_until(struct hook_run *r, int64_t deadline_ms)
{
	struct pollfd pfd;
	int64_t left;

	for (;;) {
		run_check_end(r, 0);
		if (r->ended && r->out_fd < 0)
			return 1;
		left = deadline_ms - custody_monotonic_ms();
		if (left <= 0)
			return 0;
		if (r->out_fd < 0) {
			/* Output closed, the shell ending: look again shortly. */
			(void)poll(NULL, 0, left < 10 ? (int)left : 10);
			continue;
		}
		pfd.fd = r->out_fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left) > 0)
			run_drain(r);
	}
}

/* The timeout: SIGTERM to the group, SIGKILL after the grace period. */
static void
run_stop(struct hook_run *r)
{
	pid_t group = r->pid;

	(void)kill(-group, SIGTERM);
	/* A stopped member (SIGTTIN, SIGSTOP) would hold SIGTERM pending. */
	(void)kill(-group, SIGCONT);
	if (!run_until(r, custody_monotonic_ms() + CUSTODY_HOOK_GRACE * INT64_C(1000))) {
		(void)kill(-group, SIGKILL);
		run_drain(r);
		/* What still holds the output left the group: not waited for. */
		fd_close(&r->out_fd);
		run_check_end(r, 1);
	}
	/* Members that ignored SIGTERM after letting go of the output. */
	if (!r->lost)
		(void)kill(-group, SIGKILL);
}

/* ------------------------------------------------------------ the text */

/* Length of the valid UTF-8 sequence at s (s[0] >= 0x80, n bytes there):
 * 2..4; 0 when not valid; -1 when valid so far but cut short by n. */
static int
utf8_sequence(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xBF;
	size_t len, i;

	if (s[0] >= 0xC2 && s[0] <= 0xDF) {
		len = 2;
	} else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		len = 3;
		if (s[0] == 0xE0)
			lo = 0xA0;	/* not overlong */
		else if (s[0] == 0xED)
			hi = 0x9F;	/* not a surrogate */
	} else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		len = 4;
		if (s[0] == 0xF0)
			lo = 0x90;	/* not overlong */
		else if (s[0] == 0xF4)
			hi = 0x8F;	/* not above U+10FFFF */
	} else {
		return 0;
	}
	for (i = 1; i < len; i++) {
		if (i >= n)
			return -1;
		if (s[i] < lo || s[i] > hi)
			return 0;
		lo = 0x80;
		hi = 0xBF;
	}
	return (int)len;
}

/* How many bytes at raw[0] make one character kept as it is: 0 when it
 * is to be shown as one '?' (then *skip bytes are passed over), -1 when
 * a valid character is cut by the end of raw. */
static int
text_char(const unsigned char *raw, size_t n, size_t *skip)
{
	int len;

	*skip = 1;
	if (raw[0] < 0x80)
		return (raw[0] >= 0x20 && raw[0] != 0x7F) || raw[0] == '\n' || raw[0] == '\t';
	len = utf8_sequence(raw, n);
	if (len <= 0)
		return len;
	*skip = (size_t)len;
	/* C1 controls (U+0080..U+009F): CSI and friends for some terminals. */
	return raw[0] == 0xC2 && raw[1] <= 0x9F ? 0 : len;
}

/* out (CUSTODY_HOOK_OUTPUT + 1 bytes) = raw made printable; `cut`: raw
 * is the start of a longer output. */
static void
output_text(const unsigned char *raw, size_t len, int cut, char *out)
{
	size_t limit = CUSTODY_HOOK_OUTPUT - (cut ? CUT_MARK_LEN : 0);
	size_t i = 0, o = 0, skip;
	int keep;

	while (i < len) {
		keep = text_char(raw + i, len - i, &skip);
		if (keep < 0 && cut)
			break;	/* a character the cap cut in two */
		if (o + (keep > 0 ? (size_t)keep : 1) > limit)
			break;
		if (keep > 0) {
			memcpy(out + o, raw + i, (size_t)keep);
			o += (size_t)keep;
			i += (size_t)keep;
		} else {
			out[o++] = '?';
			i += skip;
		}
	}
	while (o > 0 && out[o - 1] == '\n')
		o--;
	if (cut) {
		memcpy(out + o, CUT_MARK, CUT_MARK_LEN);
		o += CUT_MARK_LEN;
	}
	out[o] = '\0';
}

/* ------------------------------------------------------------ the run */

/* Waits for the command (or its timeout) and fills res. */
static int
hook_wait(struct hook_run *run, custody_hook_result *res, custody_err *err)
{
	int64_t deadline = custody_monotonic_ms() + (int64_t)res->timeout_seconds * 1000;

	if (!run_until(run, deadline)) {
		res->timed_out = 1;
		run_stop(run);
	}
	fd_close(&run->out_fd);
	res->output_len_total = run->total;
	output_text(run->kept, run->kept_len, run->total > run->kept_len, res->output);
	if (run->lost)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "the hook ran, but another wait of this process took "
				       "its exit status");
	while (waitpid(run->pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (run->how.si_code == CLD_EXITED) {
		res->status = run->how.si_status;
	} else {
		res->signal = run->how.si_status;
		res->status = 128 + res->signal;
	}
	return CUSTODY_OK;
}

int
custody_hook_run(const char *command, const char *const *set, const char *const *unset,
		 int timeout_seconds, custody_hook_result *res, custody_err *err)
{
	custody_err local;
	custody_err *e = err != NULL ? err : &local;
	struct hook_plan plan;
	struct hook_run run;
	int r;

	if (res == NULL)
		return custody_err_set(e, CUSTODY_EUSAGE, "custody_hook_run: no result to fill");
	memset(res, 0, sizeof(*res));
	memset(&run, 0, sizeof(run));
	run.out_fd = -1;
	res->status = -1;
	res->timeout_seconds = timeout_seconds > 0 ? timeout_seconds : CUSTODY_HOOK_TIMEOUT;
	plan_init(&plan, command);
	if (command == NULL || command[0] == '\0') {
		r = custody_err_set(e, CUSTODY_EUSAGE, "the hook's command is empty");
		goto out;
	}
	if ((r = hook_env(set, unset, &plan.envp, e)) != CUSTODY_OK ||
	    (r = sigchld_usable(e)) != CUSTODY_OK || (r = plan_open(&plan, e)) != CUSTODY_OK ||
	    (r = hook_spawn(&plan, &run.pid, e)) != CUSTODY_OK)
		goto out;
	run.out_fd = plan.out_r;
	plan.out_r = -1;
	r = hook_wait(&run, res, e);
out:
	plan_free(&plan);
	if (r != CUSTODY_OK) {
		res->status = -1;
		output_text((const unsigned char *)e->msg, strnlen(e->msg, CUSTODY_HOOK_OUTPUT), 0,
			    res->output);
	}
	return r;
}

/* ------------------------------------------------------------ describe */

/* buf = line, cut on a character boundary to fit size (> 0), with the
 * cut mark when there is room for it. */
static void
fit_line(const char *line, char *buf, size_t size)
{
	size_t len = strlen(line), end;

	if (len < size) {
		memcpy(buf, line, len + 1);
		return;
	}
	end = size - 1 >= CUT_MARK_LEN ? size - 1 - CUT_MARK_LEN : size - 1;
	while (end > 0 && ((unsigned char)line[end] & 0xC0) == 0x80)
		end--;
	memcpy(buf, line, end);
	if (size - 1 - end >= CUT_MARK_LEN) {
		memcpy(buf + end, CUT_MARK, CUT_MARK_LEN);
		end += CUT_MARK_LEN;
	}
	buf[end] = '\0';
}

void
custody_hook_describe(const char *name, const custody_hook_result *res, char *buf, size_t size)
{
	/* the head, ": ", then each output byte at most 3 (" | " for \n) */
	char line[256 + 2 + 3 * CUSTODY_HOOK_OUTPUT + 1];
	size_t len;
	const char *c;

	if (buf == NULL || size == 0)
		return;
	buf[0] = '\0';
	if (res == NULL)
		return;
	if (name == NULL)
		name = "hook";
	if (res->status < 0)
		snprintf(line, 256, "%.64s could not start", name);
	else if (res->timed_out && res->signal != 0)
		snprintf(line, 256, "%.64s killed after %d s (timeout)", name, res->timeout_seconds);
	else if (res->timed_out)
		snprintf(line, 256, "%.64s exited %d, what it left running killed after %d s (timeout)",
			 name, res->status, res->timeout_seconds);
	else if (res->signal != 0)
		snprintf(line, 256, "%.64s killed by signal %d", name, res->signal);
	else
		snprintf(line, 256, "%.64s exited %d", name, res->status);
	len = strlen(line);
	if (res->output[0] != '\0') {
		memcpy(line + len, ": ", 2);
		len += 2;
	}
	for (c = res->output; *c != '\0' && c < res->output + CUSTODY_HOOK_OUTPUT; c++) {
		if (*c == '\n') {
			memcpy(line + len, " | ", 3);
			len += 3;
		} else {
			line[len++] = *c == '\t' ? ' ' : *c;
		}
	}
	line[len] = '\0';
	fit_line(line, buf, size);
}
