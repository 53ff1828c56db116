/* test_hook.c — an operator command run for a hook (custody_hook_run):
 * its status, its output, its environment and descriptors, its timeout;
 * and the audit line that tells of it (custody_hook_describe). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <custody/clock.h>
#include <custody/hook.h>

#define E_ACUTE "\xc3\xa9"		/* é */
#define MARK "\xe2\x80\xa6"		/* … */

TestSuite(hook, .timeout = 30);

/* ---------------------------------------------------------------- helpers */

/* Runs command, which must run (CUSTODY_OK). */
static custody_hook_result
run(const char *command, const char *const *set, const char *const *unset, int timeout)
{
	custody_hook_result res;
	custody_err err;
	int r;

	memset(&err, 0, sizeof(err));
	r = custody_hook_run(command, set, unset, timeout, &res, &err);
	cr_assert_eq(r, CUSTODY_OK, "custody_hook_run(%s): %d %s", command, r, err.msg);
	return res;
}

/* The state letter of /proc/PID/stat and its process group (0: no such
 * process). */
static char
proc_state(const char *pid, int *pgrp)
{
	char path[64], buf[1024], state = 0;
	const char *p;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 1, " %c %*d %d", &state, pgrp) != 2)
		return 0;
	return state;
}

/* Members of process group pgid that are not zombies.  Zombies do not
 * count: they run nothing, and the init of a container may never reap the
 * orphans among them. */
static int
live_members(pid_t pgid)
{
	struct dirent *de;
	int live = 0, pgrp;
	char state;
	DIR *d;

	if (kill(-pgid, 0) != 0 && errno == ESRCH)
		return 0;
	cr_assert_not_null(d = opendir("/proc"));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		state = proc_state(de->d_name, &pgrp);
		if (state != 0 && state != 'Z' && pgrp == pgid)
			live++;
	}
	closedir(d);
	return live;
}

/* 1 when process pid runs (is there and not a zombie). */
static int
pid_runs(pid_t pid)
{
	char name[32];
	int pgrp;
	char state;

	snprintf(name, sizeof(name), "%d", (int)pid);
	state = proc_state(name, &pgrp);
	return state != 0 && state != 'Z';
}

/* The group has no live member within ms: a process sent SIGKILL is gone
 * soon, not at once. */
static int
group_gone_within(pid_t pgid, int ms)
{
	int64_t deadline = custody_monotonic_ms() + ms;

	while (live_members(pgid) != 0) {
		if (custody_monotonic_ms() >= deadline)
			return 0;
		poll(NULL, 0, 20);
	}
	return 1;
}

static char *
describe(const custody_hook_result *res, const char *name, char *buf, size_t size)
{
	custody_hook_describe(name, res, buf, size);
	return buf;
}

/* ---------------------------------------------------------------- status */

Test(hook, exit_status_zero)
{
	custody_hook_result res = run("true", NULL, NULL, 10);

	cr_assert_eq(res.status, 0);
	cr_assert_eq(res.signal, 0);
	cr_assert_eq(res.timed_out, 0);
	cr_assert_eq(res.timeout_seconds, 10);
	cr_assert_str_empty(res.output);
	cr_assert_eq(res.output_len_total, 0);
}

Test(hook, exit_status_three)
{
	custody_hook_result res = run("echo failing; exit 3", NULL, NULL, 10);

	cr_assert_eq(res.status, 3);
	cr_assert_eq(res.signal, 0);
	cr_assert_eq(res.timed_out, 0);
	cr_assert_str_eq(res.output, "failing");
}

Test(hook, killed_by_a_signal)
{
	custody_hook_result res = run("echo going; kill -KILL $$", NULL, NULL, 10);

	cr_assert_eq(res.signal, SIGKILL);
	cr_assert_eq(res.status, 128 + SIGKILL);
	cr_assert_eq(res.timed_out, 0);
	cr_assert_str_eq(res.output, "going");
}

Test(hook, default_timeout)
{
	custody_hook_result res = run("true", NULL, NULL, 0);

	cr_assert_eq(res.timeout_seconds, CUSTODY_HOOK_TIMEOUT);
	cr_assert_eq(CUSTODY_HOOK_TIMEOUT, 60);
	res = run("true", NULL, NULL, -5);
	cr_assert_eq(res.timeout_seconds, 60);
}

Test(hook, command_not_found_is_127)
{
	custody_hook_result res = run("/nonexistent", NULL, NULL, 10);

	cr_assert_eq(res.status, 127);
	cr_assert_not_null(strstr(res.output, "/nonexistent"), "%s", res.output);
	cr_assert_not_null(strstr(res.output, "not found"), "%s", res.output);
}

Test(hook, empty_command_is_usage)
{
	custody_hook_result res;
	custody_err err;

	cr_assert_eq(custody_hook_run("", NULL, NULL, 10, &res, &err), CUSTODY_EUSAGE);
	cr_assert_eq(res.status, -1);
	cr_assert_eq(custody_hook_run(NULL, NULL, NULL, 10, &res, NULL), CUSTODY_EUSAGE);
}

/* ---------------------------------------------------------------- output */

Test(hook, stdout_and_stderr_in_order)
{
	custody_hook_result res = run("echo out; echo err >&2; echo out2", NULL, NULL, 10);

	cr_assert_str_eq(res.output, "out\nerr\nout2");
	cr_assert_eq(res.output_len_total, strlen("out\nerr\nout2\n"));
}

Test(hook, trailing_newlines_dropped)
{
	custody_hook_result res = run("printf 'one\\ntwo\\n\\n\\n'", NULL, NULL, 10);

	cr_assert_str_eq(res.output, "one\ntwo");
	cr_assert_eq(res.output_len_total, 10);
}

/* A megabyte, more than any pipe holds: drained, so the command ends. */
Test(hook, long_output_drained_and_cut)
{
	char want[CUSTODY_HOOK_OUTPUT + 1];
	int64_t t0 = custody_monotonic_ms();
	custody_hook_result res = run("head -c 1048576 /dev/zero | tr '\\0' a; echo end >&2",
				      NULL, NULL, 20);

	cr_assert_eq(res.timed_out, 0);
	cr_assert_eq(res.status, 0);
	cr_assert_lt(custody_monotonic_ms() - t0, 15000);
	cr_assert_eq(res.output_len_total, 1048576 + 4);
	memset(want, 'a', CUSTODY_HOOK_OUTPUT - 3);
	memcpy(want + CUSTODY_HOOK_OUTPUT - 3, MARK, 4);
	cr_assert_str_eq(res.output, want);
	cr_assert_eq(strlen(res.output), CUSTODY_HOOK_OUTPUT);
}

/* 300 two-byte characters: the cut falls between characters, never in one. */
Test(hook, cut_between_characters)
{
	char want[CUSTODY_HOOK_OUTPUT + 1] = "";
	custody_hook_result res = run("printf '" E_ACUTE "%.0s' $(seq 300)", NULL, NULL, 10);
	int i;

	cr_assert_eq(res.output_len_total, 600);
	for (i = 0; i < 254; i++)
		strcat(want, E_ACUTE);
	strcat(want, MARK);
	cr_assert_str_eq(res.output, want);
}

/* Exactly CUSTODY_HOOK_OUTPUT bytes is not cut. */
Test(hook, output_of_exactly_the_cap_kept_whole)
{
	custody_hook_result res = run("head -c 512 /dev/zero | tr '\\0' b", NULL, NULL, 10);
	char want[CUSTODY_HOOK_OUTPUT + 1];

	memset(want, 'b', CUSTODY_HOOK_OUTPUT);
	want[CUSTODY_HOOK_OUTPUT] = '\0';
	cr_assert_eq(res.output_len_total, 512);
	cr_assert_str_eq(res.output, want);
}

Test(hook, control_bytes_and_bad_utf8_made_printable)
{
	/* \001 \033 \177: controls; \302\233: C1 CSI; \300\200: overlong;
	 * \355\240\200: a surrogate; \377: never UTF-8; \r: control. */
	custody_hook_result res = run("printf '\\001a\\033[31mb\\177c\\303\\251d\\302\\233e"
				      "\\300\\200f\\355\\240\\200g\\377h\\tI\\r\\n'",
				      NULL, NULL, 10);

	cr_assert_str_eq(res.output, "?a?[31mb?c" E_ACUTE "d?e??f???g?h\tI?");
	cr_assert_eq(res.output_len_total, 29);
	/* A character left unfinished at the very end is not kept raw. */
	res = run("printf 'x\\342\\202'", NULL, NULL, 10);
	cr_assert_str_eq(res.output, "x??");
	/* Valid characters of 3 and 4 bytes are kept. */
	res = run("printf '\\342\\202\\254 \\360\\237\\224\\221'", NULL, NULL, 10);
	cr_assert_str_eq(res.output, "\xe2\x82\xac \xf0\x9f\x94\x91");
}

/* ---------------------------------------------------------------- environment */

Test(hook, set_variables_visible)
{
	const char *set[] = {"CUSTODY_TYPE=OAuthTokenIssuer", "CUSTODY_IDENTITY=global",
			     "CUSTODY_THUMBPRINT=", NULL};
	custody_hook_result res = run("printf '%s/%s/%s' \"$CUSTODY_TYPE\" \"$CUSTODY_IDENTITY\" "
				      "\"${CUSTODY_THUMBPRINT-unset}\"",
				      set, NULL, 10);

	cr_assert_str_eq(res.output, "OAuthTokenIssuer/global/");
}

Test(hook, set_replaces_the_callers_value)
{
	const char *set[] = {"CUSTODY_TYPE=OAuthTokenIssuer", NULL};
	custody_hook_result res;

	cr_assert_eq(setenv("CUSTODY_TYPE", "Default", 1), 0);
	res = run("env | grep -c '^CUSTODY_TYPE='; printf %s \"$CUSTODY_TYPE\"", set, NULL, 10);
	cr_assert_str_eq(res.output, "1\nOAuthTokenIssuer");
}

Test(hook, unset_names_absent_others_kept)
{
	const char *unset[] = {"CUSTODY_TEST_PIN", "CUSTODY_TEST_NEVER_SET", NULL};
	custody_hook_result res;

	cr_assert_eq(setenv("CUSTODY_TEST_PIN", "1234", 1), 0);
	cr_assert_eq(setenv("CUSTODY_TEST_PIN_LONGER", "kept", 1), 0);
	res = run("printf '%s,%s' \"${CUSTODY_TEST_PIN-absent}\" \"${CUSTODY_TEST_PIN_LONGER-absent}\"",
		  NULL, unset, 10);
	cr_assert_str_eq(res.output, "absent,kept");
	/* The caller's environment is as it was. */
	cr_assert_str_eq(getenv("CUSTODY_TEST_PIN"), "1234");
	res = run("env | grep -c 1234", NULL, unset, 10);
	cr_assert_str_eq(res.output, "0");
}

Test(hook, bad_set_name_is_usage_and_nothing_runs)
{
	const char *bad[] = {"custody_type=x", "1X=y", "NOEQUALS", "=v", "A-B=c", "A B=c"};
	char marker[] = "/tmp/custody-hook-marker.XXXXXX", command[128];
	custody_hook_result res;
	custody_err err;
	size_t i;
	int fd;

	cr_assert_geq(fd = mkstemp(marker), 0);
	close(fd);
	cr_assert_eq(unlink(marker), 0);
	snprintf(command, sizeof(command), "touch %s", marker);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *set[] = {"CUSTODY_TYPE=Default", bad[i], NULL};

		memset(&err, 0, sizeof(err));
		cr_assert_eq(custody_hook_run(command, set, NULL, 10, &res, &err), CUSTODY_EUSAGE,
			     "%s", bad[i]);
		cr_assert_eq(err.code, CUSTODY_EUSAGE);
		cr_assert_eq(res.status, -1);
		cr_assert_not_null(strstr(err.msg, "hook environment"), "%s", err.msg);
		cr_assert_neq(access(marker, F_OK), 0, "%s ran with %s", command, bad[i]);
	}
	/* The same command with good names runs. */
	{
		const char *set[] = {"CUSTODY_TYPE=Default", "_X9=1", NULL};

		res = run(command, set, NULL, 10);
		cr_assert_eq(res.status, 0);
		cr_assert_eq(access(marker, F_OK), 0);
		unlink(marker);
	}
}

/* ---------------------------------------------------------------- descriptors */

/* The shell has 0 (/dev/null), 1 and 2 (one pipe) and nothing else: not a
 * file this process opened without O_CLOEXEC.  (dash's redirections take
 * one digit only, so the shell's descriptors are read from /proc by ls,
 * its child, in a plain simple command: a pipeline's pipe or a saved
 * descriptor of a redirection would be the shell's own for a moment, and
 * ls might see it.) */
Test(hook, only_stdio_inherited)
{
	char path[] = "/tmp/custody-hook-fd.XXXXXX", command[512];
	custody_hook_result res;
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	cr_assert_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	snprintf(command, sizeof(command),
		 "ls /proc/$$/fd; readlink /proc/$$/fd/0; "
		 "[ /proc/$$/fd/1 -ef /proc/$$/fd/2 ] && echo one-pipe; "
		 "if [ -e /proc/$$/fd/%d ]; then echo %d-open; else echo %d-closed; fi",
		 fd, fd, fd);
	res = run(command, NULL, NULL, 10);
	{
		char want[64];

		snprintf(want, sizeof(want), "0\n1\n2\n/dev/null\none-pipe\n%d-closed", fd);
		cr_assert_str_eq(res.output, want);
	}
	/* Still open here. */
	cr_assert_eq(write(fd, "x", 1), 1);
	close(fd);
	unlink(path);
}

/* Signal dispositions and mask of the caller are not the command's: with
 * SIGPIPE ignored here, `yes` would complain of a broken pipe there. */
Test(hook, callers_signal_dispositions_not_inherited)
{
	custody_hook_result res;
	sigset_t term, saved;

	signal(SIGPIPE, SIG_IGN);
	res = run("yes | head -n 1", NULL, NULL, 10);
	cr_assert_str_eq(res.output, "y");
	cr_assert_eq(res.status, 0);
	/* SIGTERM blocked here still ends the command at its timeout. */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	cr_assert_eq(sigprocmask(SIG_BLOCK, &term, &saved), 0);
	res = run("sleep 30", NULL, NULL, 1);
	cr_assert_eq(res.timed_out, 1);
	cr_assert_eq(res.signal, SIGTERM);
	sigprocmask(SIG_SETMASK, &saved, NULL);
	signal(SIGPIPE, SIG_DFL);
}

Test(hook, ignored_sigchld_refused)
{
	custody_hook_result res;
	custody_err err;

	signal(SIGCHLD, SIG_IGN);
	cr_assert_eq(custody_hook_run("true", NULL, NULL, 10, &res, &err), CUSTODY_EFAIL);
	signal(SIGCHLD, SIG_DFL);
	cr_assert_eq(res.status, -1);
	cr_assert_not_null(strstr(res.output, "SIGCHLD"), "%s", res.output);
	cr_assert_str_eq(res.output, err.msg);
}

/* ---------------------------------------------------------------- timeout */

Test(hook, timeout_kills_the_command)
{
	int64_t t0 = custody_monotonic_ms(), took;
	custody_hook_result res = run("echo $$; sleep 30", NULL, NULL, 1);
	pid_t pgid = (pid_t)atoi(res.output);

	took = custody_monotonic_ms() - t0;
	cr_assert_eq(res.timed_out, 1);
	cr_assert(res.signal == SIGTERM || res.signal == SIGKILL, "signal %d", res.signal);
	cr_assert_eq(res.status, 128 + res.signal);
	cr_assert_geq(took, 1000);
	cr_assert_lt(took, 3000, "took %lld ms", (long long)took);
	cr_assert_gt(pgid, 1, "%s", res.output);
	cr_assert(group_gone_within(pgid, 2000), "group %d still has a process", (int)pgid);
}

Test(hook, timeout_kills_a_background_child)
{
	custody_hook_result res = run("sleep 30 & echo $! $$; wait", NULL, NULL, 1);
	int bg = 0, pgid = 0;

	cr_assert_eq(sscanf(res.output, "%d %d", &bg, &pgid), 2, "%s", res.output);
	cr_assert_eq(res.timed_out, 1);
	cr_assert_eq(res.signal, SIGTERM);
	cr_assert(group_gone_within(pgid, 2000), "group %d still has a process", pgid);
	cr_assert_not(pid_runs(bg), "background sleep %d still runs", bg);
}

/* A group that ignores SIGTERM gets SIGKILL CUSTODY_HOOK_GRACE s later. */
Test(hook, sigkill_after_the_grace)
{
	int64_t t0 = custody_monotonic_ms(), took;
	custody_hook_result res = run("trap '' TERM; echo $$; sleep 30", NULL, NULL, 1);
	pid_t pgid = (pid_t)atoi(res.output);

	took = custody_monotonic_ms() - t0;
	cr_assert_eq(res.timed_out, 1);
	cr_assert_eq(res.signal, SIGKILL);
	cr_assert_eq(res.status, 137);
	cr_assert_geq(took, 1000 + CUSTODY_HOOK_GRACE * 1000);
	cr_assert_lt(took, 5000, "took %lld ms", (long long)took);
	cr_assert(group_gone_within(pgid, 2000), "group %d still has a process", (int)pgid);
}

/* The shell ended but left a process holding the output: the run waits
 * for it to the timeout, then kills it; the shell's own status stands. */
Test(hook, leftover_holding_the_output_killed_at_timeout)
{
	custody_hook_result res = run("sleep 30 & echo $!; exit 4", NULL, NULL, 1);
	pid_t bg = (pid_t)atoi(res.output);
	char line[128], buf[128];
	int64_t deadline = custody_monotonic_ms() + 2000;

	cr_assert_eq(res.timed_out, 1);
	cr_assert_eq(res.status, 4);
	cr_assert_eq(res.signal, 0);
	while (pid_runs(bg) && custody_monotonic_ms() < deadline)
		poll(NULL, 0, 20);
	cr_assert_not(pid_runs(bg), "background sleep %d still runs", (int)bg);
	snprintf(line, sizeof(line),
		 "post-roll exited 4, what it left running killed after 1 s (timeout): %d", (int)bg);
	cr_assert_str_eq(describe(&res, "post-roll", buf, sizeof(buf)), line);
}

/* A process the command starts with its output elsewhere is not waited for. */
Test(hook, detached_background_not_waited_for)
{
	int64_t t0 = custody_monotonic_ms();
	custody_hook_result res = run("sleep 30 >/dev/null 2>&1 & echo $!", NULL, NULL, 20);
	pid_t bg = (pid_t)atoi(res.output);

	cr_assert_eq(res.timed_out, 0);
	cr_assert_eq(res.status, 0);
	cr_assert_lt(custody_monotonic_ms() - t0, 5000);
	cr_assert_gt(bg, 1);
	cr_assert(pid_runs(bg));
	kill(bg, SIGKILL);
}

/* ---------------------------------------------------------------- describe */

Test(hook, describe_lines)
{
	custody_hook_result res;
	char buf[256];

	memset(&res, 0, sizeof(res));
	res.timeout_seconds = 60;
	cr_assert_str_eq(describe(&res, "post-roll", buf, sizeof(buf)), "post-roll exited 0");
	snprintf(res.output, sizeof(res.output), "refreshed 3 partners");
	cr_assert_str_eq(describe(&res, "post-roll", buf, sizeof(buf)),
			 "post-roll exited 0: refreshed 3 partners");
	res.status = 3;
	snprintf(res.output, sizeof(res.output), "partner a: down\n\tpartner b: ok");
	cr_assert_str_eq(describe(&res, "post-stage", buf, sizeof(buf)),
			 "post-stage exited 3: partner a: down |  partner b: ok");
	res.status = 137;
	res.signal = 9;
	res.output[0] = '\0';
	cr_assert_str_eq(describe(&res, "post-roll", buf, sizeof(buf)),
			 "post-roll killed by signal 9");
	res.status = 143;
	res.signal = 15;
	res.timed_out = 1;
	snprintf(res.output, sizeof(res.output), "waiting for partner");
	cr_assert_str_eq(describe(&res, "post-roll", buf, sizeof(buf)),
			 "post-roll killed after 60 s (timeout): waiting for partner");
	memset(&res, 0, sizeof(res));
	res.status = -1;
	snprintf(res.output, sizeof(res.output), "cannot start the hook: fork: Resource "
		 "temporarily unavailable");
	cr_assert_str_eq(describe(&res, "post-roll", buf, sizeof(buf)),
			 "post-roll could not start: cannot start the hook: fork: Resource "
			 "temporarily unavailable");
}

Test(hook, describe_cut_on_a_character)
{
	custody_hook_result res;
	char buf[64];
	int i;

	memset(&res, 0, sizeof(res));
	for (i = 0; i < 100; i++)
		strcat(res.output, E_ACUTE);
	/* "post-roll exited 0: " is 20 bytes. */
	cr_assert_str_eq(describe(&res, "post-roll", buf, 30),
			 "post-roll exited 0: " E_ACUTE E_ACUTE E_ACUTE MARK);
	cr_assert_str_eq(describe(&res, "post-roll", buf, 27), "post-roll exited 0: " E_ACUTE MARK);
	cr_assert_str_eq(describe(&res, "post-roll", buf, 3), "po");
	cr_assert_str_eq(describe(&res, "post-roll", buf, 1), "");
	/* A line that fits is not marked. */
	res.output[2] = '\0';
	cr_assert_str_eq(describe(&res, "post-roll", buf, 23), "post-roll exited 0: " E_ACUTE);
}

Test(hook, describe_a_real_run)
{
	const char *set[] = {"CUSTODY_TYPE=OAuthTokenIssuer", NULL};
	custody_hook_result res = run("echo \"refreshed 3 partners of $CUSTODY_TYPE\"", set, NULL, 10);
	char buf[256];

	cr_assert_str_eq(describe(&res, "post-roll", buf, sizeof(buf)),
			 "post-roll exited 0: refreshed 3 partners of OAuthTokenIssuer");
}
