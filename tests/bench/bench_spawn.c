/*
 * bench_spawn.c — signatures per second when every signature is a process.
 *
 *   bench_spawn --label NAME [--count N] [--max-seconds S] -- COMMAND [ARG...]
 *
 * Runs COMMAND twice untimed (to warm the page cache), then N times one
 * after the other, each with standard input from and standard output to
 * /dev/null (standard error is inherited), and prints "RATE COUNT
 * SECONDS" on stdout: processes per second (CLOCK_MONOTONIC), how many,
 * in how long.  Stops early, and counts what ran,
 * once S seconds have passed.  Any run that does not exit 0 fails the
 * measurement (exit 1): a rate of failing processes means nothing.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define WARMUP 2

extern char **environ;

struct opts {
	const char *label;
	long count;
	double max_seconds;
	char **cmd;
};

/* Run n of the command (n < 0: warm-up run -n); 0 when it exited 0. */
static int
run_once(const struct opts *o, const posix_spawn_file_actions_t *fa, long n)
{
	pid_t pid;
	int status, e;

	if ((e = posix_spawnp(&pid, o->cmd[0], fa, NULL, o->cmd, environ)) != 0)
		return bench_fail("%s: cannot run %s: %s", o->label, o->cmd[0], strerror(e));
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return bench_fail("%s: cannot wait for %s: %s", o->label,
					  o->cmd[0], strerror(errno));
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		return bench_fail("%s: %s run %ld of %s exited with status %d", o->label,
				  n < 0 ? "warm-up" : "timed", n < 0 ? -n : n,
				  o->cmd[0], WEXITSTATUS(status));
	return bench_fail("%s: %s run %ld of %s was killed by signal %d", o->label,
			  n < 0 ? "warm-up" : "timed", n < 0 ? -n : n,
			  o->cmd[0], WTERMSIG(status));
}

static int
measure(const struct opts *o)
{
	posix_spawn_file_actions_t fa;
	double start, elapsed = 0;
	long i, done = 0;
	int r = -1;

	posix_spawn_file_actions_init(&fa);
	if (posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) != 0 ||
	    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0) != 0) {
		bench_fail("%s: cannot set up the child's standard streams", o->label);
		goto out;
	}
	for (i = 1; i <= WARMUP; i++)
		if (run_once(o, &fa, -i) != 0)
			goto out;
	start = bench_now();
	for (i = 1; i <= o->count; i++) {
		if (run_once(o, &fa, i) != 0)
			goto out;
		done = i;
		if ((elapsed = bench_now() - start) >= o->max_seconds)
			break;
	}
	printf("%.1f %ld %.6f\n", elapsed > 0 ? (double)done / elapsed : 0.0, done,
	       elapsed);
	fprintf(stderr, "%s: %s: %ld processes in %.3f s (%.2f ms each)\n", bench_progname,
		o->label, done, elapsed, 1000.0 * elapsed / (double)done);
	r = 0;
out:
	posix_spawn_file_actions_destroy(&fa);
	return r;
}

static int
parse(int argc, char **argv, struct opts *o)
{
	static const struct option options[] = {
		{"label", required_argument, NULL, 'l'},
		{"count", required_argument, NULL, 'n'},
		{"max-seconds", required_argument, NULL, 's'},
		{NULL, 0, NULL, 0},
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->count = 100;
	o->max_seconds = 30;
	/* "+": options end at the first non-option (the command). */
	while ((c = getopt_long(argc, argv, "+", options, NULL)) != -1) {
		switch (c) {
		case 'l': o->label = optarg; break;
		case 'n':
			if (bench_parse_count(optarg, 1000000, &o->count) != 0)
				return -1;
			break;
		case 's':
			if (bench_parse_seconds(optarg, &o->max_seconds) != 0)
				return -1;
			break;
		default:
			return -1;
		}
	}
	if (o->label == NULL || optind >= argc)
		return bench_fail("usage: bench_spawn --label NAME [--count N] "
				  "[--max-seconds S] -- COMMAND [ARG...]");
	o->cmd = argv + optind;
	return 0;
}

int
main(int argc, char **argv)
{
	struct opts o;

	bench_progname = "bench_spawn";
	if (parse(argc, argv, &o) != 0)
		return 2;
	return measure(&o) == 0 ? 0 : 1;
}
