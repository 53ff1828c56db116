/*
 * cmd_sync.c — `custody sync [--watch] [--interval SECONDS]`: brings this
 * node's token in line with the store (custody_cluster_sync: every key of
 * a global assignment held, unwrapped from its package when missing,
 * checked against its certificate, reported to the store).
 *
 * Once: exit 0 when every key is held, 1 when the store or the token
 * cannot be used or a key could not be made held (the token keeps what it
 * holds: the node goes on signing with it).
 *
 * --watch stays up: it syncs, then waits for a change of the store
 * (custody_store_wait_change: PostgreSQL NOTIFY, SQLite polling), for
 * the instant of the next pending roll, or for the interval, whichever
 * comes first.  What a wake does is decided by the store's generation
 * (custody_store_generation, moved in the transaction of every change a
 * member follows), never by a notification's payload: a notification
 * only says "look".  A wake whose generation is the one the last sync
 * started from costs that one query and no token access, so that the
 * nodes' own reports (which notify, but move no generation) do not wake
 * each other into syncing; a changed generation reads the state (the
 * global assignments resolved now, and the newest audit entry of a change
 * that members must follow: set, roll, roll-effective, remove, package,
 * import, delete — what `custody status` judges staleness by) and syncs
 * when it differs.  A notification missed (NOTIFY is not queued for a
 * connection that is down) is caught up by the generation at the next
 * wake; a connection made again after a failure syncs in full.  A sync
 * that left keys unheld (a package not there yet) is tried again after a
 * growing pause.  The
 * token is opened (exclusive lock, login) for the first sync and kept
 * open and logged in, but its lock is let go after every sync and taken
 * again for the next (its session and login checked then), so that
 * between syncs every other custody process of this node has the token,
 * and a sync does not pay the module's start and the login again (on
 * SoftHSM, reading every object file of the token).  It is opened anew,
 * the PIN read again, after any failure.  A store or token that cannot be used is logged and
 * tried again with a growing pause (1 s doubling up to the interval, each
 * pause drawn at random from its upper half, so that the nodes of a
 * cluster whose store went away do not all come back in the same
 * instant);
 * SIGTERM, SIGINT and SIGHUP end the loop cleanly (exit 0).
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <custody/clock.h>
#include <custody/cluster.h>
#include <custody/integrity.h>
#include <custody/log.h>
#include <custody/timefmt.h>

#include "cli.h"

#define DEFAULT_INTERVAL 30
#define MAX_INTERVAL 86400
#define FIRST_BACKOFF_MS 1000

enum {
	OPT_WATCH = OPT_FIRST_COMMAND_OPTION,
	OPT_INTERVAL,
};

struct sync_opts {
	int watch;
	long interval;		/* seconds */
};

/* The state a sync is about: the global assignments resolved at its
 * instant (not their row versions: recording a roll that came due changes
 * the row, not what it resolves to) and the newest change in the audit
 * log; equal states need no new sync. */
struct sync_state {
	int64_t generation;	/* custody_store_generation, read first   */
	custody_assignment *globals;
	size_t n;
	int64_t change_seq;	/* audit seq of the newest change         */
	int64_t next_roll;	/* earliest pending instant > now; 0: none */
};

/* How far the audit log has been looked at: its head was at seq, and
 * change_seq is the newest change up to there. */
struct audit_scan {
	int64_t seq, change_seq;
};

/* The audit actions that members must follow (as custody_cluster_status
 * judges a node stale), but for "roll-effective": the record of a roll
 * that came due changes the assignment's row, not what it resolves to,
 * and the state compares the rows resolved.  Every watcher wakes at the
 * roll's instant and follows it; the first records it, and the others
 * then read the record (one wake, no sync: they had followed it).  A
 * node whose clock is behind finds the row changed, and syncs. */
static const char *const change_actions[] = {
	"set", "roll", "remove", "package", "import", "delete", NULL,
};

static volatile sig_atomic_t stop_requested;

static void
on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int
on_option(struct cli *cli, int c, const char *arg, void *ctx)
{
	struct sync_opts *o = ctx;
	char *end = NULL;

	switch (c) {
	case OPT_INTERVAL:
		errno = 0;
		o->interval = strtol(arg, &end, 10);
		if (errno != 0 || end == arg || *end != '\0' || o->interval < 1 ||
		    o->interval > MAX_INTERVAL)
			return cli_usage_error(cli, "--interval: '%s' is not a number "
					       "of seconds from 1 to %d", arg,
					       MAX_INTERVAL);
		break;
	default:
		break;
	}
	return CUSTODY_OK;
}

static int64_t
realtime_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ output */

static const char *
item_state(const custody_sync_item *it)
{
	if (it->unwrapped)
		return "unwrapped";
	if (it->held)
		return "held";
	return "refused";
}

static json_t *
item_json(const custody_sync_item *it)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:s?, s:s?}",
			 "type", it->type,
			 "slot", it->slot,
			 "thumbprint", it->thumbprint,
			 "state", item_state(it),
			 "held", it->held,
			 "unwrapped", it->unwrapped,
			 "repaired", it->repaired,
			 "repair", it->repair[0] != '\0' ? it->repair : NULL,
			 "problem", it->problem[0] != '\0' ? it->problem : NULL);
}

static json_t *
result_json(const struct cli *cli, const custody_sync_result *res,
	    int64_t at_ms, int64_t took_ms)
{
	char t[CUSTODY_TIME_TEXT];
	json_t *items = json_array(), *o;
	size_t i;

	for (i = 0; i < res->n; i++)
		json_array_append_new(items, item_json(&res->items[i]));
	o = json_pack("{s:s, s:s, s:I, s:I, s:o, s:i, s:b}",
		      "node", cli->node,
		      "time", custody_time_format(at_ms / 1000, t),
		      "time_ms", (json_int_t)at_ms,
		      "took_ms", (json_int_t)took_ms,
		      "items", items,
		      "refused", res->refused,
		      "ok", res->refused == 0);
	return o;
}

static void
print_items(const custody_sync_result *res)
{
	size_t i;

	for (i = 0; i < res->n; i++) {
		const custody_sync_item *it = &res->items[i];

		printf("%-24s %-8s %s %s%s%s\n", out_safe(it->type), out_safe(it->slot),
		       out_safe(it->thumbprint), it->repaired ? "repaired" : item_state(it),
		       it->problem[0] != '\0' ? ": " : "", out_safe(it->problem));
	}
}

/* The result of one sync: a JSON object (one line with --watch, so that
 * a reader takes one sync per line), or the table of keys, and a line
 * of narration on stderr. */
static void
print_result(struct cli *cli, int watch, const custody_sync_result *res,
	     int64_t at_ms, int64_t took_ms)
{
	char t[CUSTODY_TIME_TEXT];
	size_t i, unwrapped = 0;

	for (i = 0; i < res->n; i++)
		unwrapped += res->items[i].unwrapped != 0;
	if (cli->output == OUT_JSON) {
		json_t *o = result_json(cli, res, at_ms, took_ms);

		if (o != NULL) {
			json_dumpf(o, stdout, (watch ? JSON_COMPACT : JSON_INDENT(2)) |
					      JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
			putchar('\n');
			json_decref(o);
		}
	} else if (!watch || unwrapped > 0 || res->refused > 0 || cli->verbose) {
		print_items(res);
	}
	fflush(stdout);
	/* --watch: a line for a sync that did something, or with -v. */
	if (watch && unwrapped == 0 && res->refused == 0 && !cli->verbose)
		return;
	cli_say(cli, "%s sync: node %s holds %zu of %zu keys (%zu unwrapped, %d refused) in %lld ms",
		custody_time_format(at_ms / 1000, t), cli->node,
		res->n - (size_t)res->refused, res->n, unwrapped, res->refused,
		(long long)took_ms);
}

/* ------------------------------------------------------------ state */

static void
state_clear(struct sync_state *s)
{
	free(s->globals);
	memset(s, 0, sizeof(*s));
}

/* Moves scan->change_seq to the newest change of the audit log when its
 * head moved since the last look (one query when it did not, two when it
 * did): the store finds the change, the entries between are not read
 * here (every node's sync appends one, so reading them would cost each
 * node O(nodes) a change). */
static int
scan_audit(struct cli *cli, struct audit_scan *scan)
{
	custody_audit_entry e;
	char hash[CUSTODY_AUDIT_HASH_HEX + 1];
	int64_t head = 0;
	int r;

	memset(&e, 0, sizeof(e));
	if ((r = custody_store_audit_head(cli->store, &head, hash, &cli->err)) != CUSTODY_OK)
		return r;
	if (head == scan->seq)
		return CUSTODY_OK;
	if (head < scan->seq)	/* another store, or a new log */
		memset(scan, 0, sizeof(*scan));
	r = custody_store_newest_audit_of(cli->store, change_actions, NULL, &e,
					  &cli->err);
	if (r == CUSTODY_OK && e.seq > scan->change_seq)
		scan->change_seq = e.seq;
	custody_audit_entry_clear(&e);
	if (r != CUSTODY_OK && r != CUSTODY_ENOTFOUND)
		return r;
	scan->seq = head;
	return CUSTODY_OK;
}

/* Reads what decides whether a sync is due: the global assignments
 * resolved at now, the newest change of the audit log, and the next
 * pending instant. */
static int
read_state(struct cli *cli, int64_t now, int64_t generation,
	   struct audit_scan *scan, struct sync_state *out)
{
	custody_assignment *all;
	size_t n = 0, i, k = 0;
	int r;

	memset(out, 0, sizeof(*out));
	/* The generation the wake read just now (-1: none read yet). */
	out->generation = generation;
	if ((generation < 0 &&
	     (r = custody_store_generation(cli->store, &out->generation,
					   &cli->err)) != CUSTODY_OK) ||
	    (r = scan_audit(cli, scan)) != CUSTODY_OK ||
	    (r = custody_store_list_assignments(cli->store, &out->globals, &n,
						&cli->err)) != CUSTODY_OK)
		return r;
	all = out->globals;	/* kept: the globals, resolved, move to its front */
	out->change_seq = scan->change_seq;
	for (i = 0; i < n; i++) {
		if (strcmp(all[i].identity, CUSTODY_SCOPE_GLOBAL) != 0)
			continue;
		if (all[i].pending.thumbprint[0] != '\0' && all[i].pending.effective > now &&
		    (out->next_roll == 0 || all[i].pending.effective < out->next_roll))
			out->next_roll = all[i].pending.effective;
		custody_assign_resolve(&all[i], now, &all[k]);
		k++;
	}
	out->n = k;
	return CUSTODY_OK;
}

static int
slot_equal(const custody_slot *a, const custody_slot *b)
{
	return strcmp(a->thumbprint, b->thumbprint) == 0 && a->effective == b->effective;
}

static int
state_equal(const struct sync_state *a, const struct sync_state *b)
{
	size_t i;

	if (a->n != b->n || a->change_seq != b->change_seq)
		return 0;
	for (i = 0; i < a->n; i++) {
		const custody_assignment *x = &a->globals[i], *y = &b->globals[i];

		if (strcmp(x->type, y->type) != 0 ||
		    !slot_equal(&x->current, &y->current) ||
		    !slot_equal(&x->previous, &y->previous) ||
		    !slot_equal(&x->pending, &y->pending))
			return 0;
	}
	return 1;
}

/* ------------------------------------------------------------ one sync */

/*
 * Takes the token for a sync: the handle --watch kept, its lock taken
 * again (its session and login checked), or a new one (exclusive lock,
 * login, the PIN read now).
 */
static int
take_token(struct cli *cli)
{
	int r;

	if (cli->token == NULL)
		return cli_open_token(cli);
	if ((r = custody_token_relock(cli->token, &cli->err)) != CUSTODY_OK) {
		cli_close_token(cli);	/* opened anew next time */
		return r;
	}
	if ((r = cli_attach_integrity(cli)) != CUSTODY_OK)
		cli_close_token(cli);
	return r;
}

/*
 * After a sync: with keep (--watch) the handle stays open and logged in
 * but lets go of the token lock, so that every other custody process of
 * this node has the token until the next sync, and nothing reads the
 * token meanwhile (the store is read without it); else it is closed.
 */
static void
give_token_back(struct cli *cli, int keep)
{
	custody_err e;

	if (cli->token == NULL)
		return;
	if (keep) {
		custody_integrity_detach(cli->store);
		if (custody_token_unlock(cli->token, &e) == CUSTODY_OK)
			return;
		custody_warn("sync --watch: %s: closing the token", e.msg);
	}
	cli_close_token(cli);
}

/* Closes a handle that --watch kept: with the lock taken again, since
 * logging out and closing the session touch the token. */
static void
close_kept_token(struct cli *cli)
{
	if (cli->token == NULL)
		return;
	(void)custody_token_relock(cli->token, NULL);
	cli_close_token(cli);
}

/* Takes the token, syncs, gives it back (keep: see give_token_back).
 * With proved, a key the kept token proved in an earlier sync is taken as
 * proved while its objects are the same (custody_token_keep_checks): a
 * sync for a change; the first and the periodic ones prove every key.
 * res is filled when the sync could run (OK). */
static int
sync_once(struct cli *cli, int64_t now, int keep, int proved,
	  custody_sync_result *res)
{
	int r;

	memset(res, 0, sizeof(*res));
	/* A token that cannot be taken is not left open either; the node
	 * tells the store why (best effort: the error stays the token's). */
	if ((r = take_token(cli)) != CUSTODY_OK) {
		custody_err ignored = {0};

		if (custody_cluster_report_problem(cli->store, cli->node, now, cli->err.msg,
						   &ignored) != CUSTODY_OK && cli->verbose)
			cli_say(cli, "sync: the store was not told why: %s", ignored.msg);
		return r;
	}
	custody_token_keep_checks(cli->token, keep && proved);
	r = custody_cluster_sync(cli->token, cli->store, cli->node, now, res, &cli->err);
	give_token_back(cli, keep && r == CUSTODY_OK);
	return r;
}

/* The message of a sync that could run but left keys unheld. */
static int
refused_error(struct cli *cli, const custody_sync_result *res)
{
	size_t i;
	int r;

	for (i = 0; i < res->n; i++)
		if (!res->items[i].held)
			break;
	r = custody_err_set(&cli->err, CUSTODY_EFAIL,
			    "%d of %zu keys are not held on this node: %s %s %s: %s",
			    res->refused, res->n,
			    i < res->n ? res->items[i].type : "?",
			    i < res->n ? res->items[i].slot : "?",
			    i < res->n ? res->items[i].thumbprint : "?",
			    i < res->n && res->items[i].problem[0] != '\0'
				    ? res->items[i].problem : "refused");
	custody_err_hint(&cli->err, "the token keeps what it holds; see `custody sync -o json` for every key");
	return r;
}

static int
run_once(struct cli *cli)
{
	custody_sync_result res;
	int64_t started = custody_monotonic_ms();
	int r;

	memset(&res, 0, sizeof(res));
	if ((r = cli_open_store(cli)) != CUSTODY_OK ||
	    (r = sync_once(cli, (int64_t)time(NULL), 0, 0, &res)) != CUSTODY_OK)
		goto out;
	print_result(cli, 0, &res, realtime_ms(), custody_monotonic_ms() - started);
	if (cli->verbose)	/* what the sync cost the store */
		cli_say(cli, "sync: %lu statements to the store",
			custody_store_statements(cli->store));
	r = res.refused == 0 ? CUSTODY_OK : refused_error(cli, &res);
out:
	custody_sync_result_clear(&res);
	return r;
}

/* ------------------------------------------------------------ --watch */

static void
install_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: a wait ends at once */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* A pause of ms with jitter: drawn from [ms/2, ms], so that many nodes
 * that failed at the same instant (a failover) retry spread out. */
static int64_t
jittered(int64_t ms)
{
	static unsigned seed;

	if (seed == 0)
		seed = (unsigned)getpid() ^ (unsigned)custody_monotonic_ms();
	if (ms < 2)
		return ms;
	return ms / 2 + (int64_t)(rand_r(&seed) % (int)(ms / 2 + 1));
}

/* Sleeps ms unless a stop signal comes first. */
static void
pause_ms(int64_t ms)
{
	struct timespec t;

	if (ms <= 0 || stop_requested)
		return;
	t.tv_sec = ms / 1000;
	t.tv_nsec = (long)(ms % 1000) * 1000000L;
	nanosleep(&t, NULL);
}

/* Logs a failure of the loop once per kind of failure in a row. */
static void
log_failure(struct cli *cli, const char *doing, char *last, size_t size,
	    int64_t retry_ms)
{
	char line[sizeof(cli->err.msg) + 128];

	snprintf(line, sizeof(line), "%s: %s", doing, cli->err.msg);
	if (strcmp(line, last) != 0)
		custody_warn("sync --watch: %s (trying again in %lld s, and "
			     "with longer pauses while it lasts)", line,
			     (long long)((retry_ms + 999) / 1000));
	snprintf(last, size, "%s", line);
}

/* The milliseconds to wait from now_ms: the interval after the last sync,
 * the next roll instant, or the retry time, whichever comes first. */
static int64_t
wait_budget(int64_t now_ms, int64_t next_sync_ms, int64_t next_roll_s)
{
	int64_t until = next_sync_ms, roll_ms;

	if (next_roll_s > 0) {
		/* Monotonic from wall-clock: the roll's instant, plus a
		 * moment so that it has come when we look. */
		roll_ms = now_ms + (next_roll_s * 1000 - realtime_ms()) + 20;
		if (roll_ms < until)
			until = roll_ms;
	}
	until -= now_ms;
	if (until < 0)
		until = 0;
	if (until > INT32_MAX)
		until = INT32_MAX;
	return until;
}

static int
run_watch(struct cli *cli, const struct sync_opts *o)
{
	struct sync_state last, fresh;
	struct audit_scan scan;
	custody_sync_result res;
	int64_t interval_ms = o->interval * 1000, backoff_ms = FIRST_BACKOFF_MS;
	int64_t next_sync_ms = 0, started, now_ms, at, generation;
	char last_failure[sizeof(cli->err.msg) + 128] = "";
	int have_last = 0, changed, due = 0, full, r;

	memset(&last, 0, sizeof(last));
	memset(&fresh, 0, sizeof(fresh));
	memset(&res, 0, sizeof(res));
	memset(&scan, 0, sizeof(scan));
	install_handlers();
	cli_say(cli, "sync --watch: node %s, every %ld s and on every change of the store",
		cli->node, o->interval);
	while (!stop_requested) {
		now_ms = custody_monotonic_ms();
		due = 0;
		if (cli->store == NULL && (r = cli_open_store(cli)) != CUSTODY_OK)
			goto failed;
		at = (int64_t)time(NULL);
		generation = -1;
		if (have_last && now_ms < next_sync_ms &&
		    (last.next_roll == 0 || at < last.next_roll)) {
			/* Nothing followed changed: one query, no token. */
			if ((r = custody_store_generation(cli->store, &generation,
							  &cli->err)) != CUSTODY_OK)
				goto failed;
			if (generation == last.generation)
				goto wait;
		}
		state_clear(&fresh);
		if ((r = read_state(cli, at, generation, &scan, &fresh)) != CUSTODY_OK)
			goto failed;
		full = !have_last || now_ms >= next_sync_ms;
		due = full || !state_equal(&last, &fresh);
		if (!due)	/* the same state under a new generation */
			last.generation = fresh.generation;
		if (due) {
			started = custody_monotonic_ms();
			custody_sync_result_clear(&res);
			if ((r = sync_once(cli, at, 1, !full, &res)) != CUSTODY_OK)
				goto failed;
			print_result(cli, 1, &res, realtime_ms(), custody_monotonic_ms() - started);
			/* The state the sync started from: a change that came
			 * while it ran differs from it and is synced next. */
			state_clear(&last);
			last = fresh;
			memset(&fresh, 0, sizeof(fresh));
			have_last = 1;
			/* Keys still missing: look again soon, then less often. */
			next_sync_ms = custody_monotonic_ms() + (res.refused > 0 ? backoff_ms : interval_ms);
			if (res.refused > 0)
				backoff_ms = backoff_ms * 2 > interval_ms ? interval_ms : backoff_ms * 2;
			else
				backoff_ms = FIRST_BACKOFF_MS;
			last_failure[0] = '\0';
			if (cli->verbose)
				cli_say(cli, "sync --watch: %lu statements to the store so far",
					custody_store_statements(cli->store));
		}
wait:
		r = custody_store_wait_change(cli->store, (int)wait_budget(custody_monotonic_ms(), next_sync_ms, last.next_roll),
					      &changed, &cli->err);
		if (r != CUSTODY_OK)
			goto failed;
		continue;
failed:
		/* The store or the token cannot be used now: say so once,
		 * pause, and try again from the start (a new connection). */
		log_failure(cli, due ? "cannot sync" : "cannot read the store",
			    last_failure, sizeof(last_failure), backoff_ms);
		close_kept_token(cli);	/* opened anew, the PIN read again */
		if (cli->store != NULL) {
			custody_store_close(cli->store);
			cli->store = NULL;
		}
		pause_ms(jittered(backoff_ms));
		backoff_ms = backoff_ms * 2 > interval_ms ? interval_ms : backoff_ms * 2;
		have_last = 0;
		memset(&scan, 0, sizeof(scan));
		custody_err_clear(&cli->err);
	}
	close_kept_token(cli);
	cli_say(cli, "sync --watch: stopped");
	custody_sync_result_clear(&res);
	state_clear(&last);
	state_clear(&fresh);
	custody_err_clear(&cli->err);
	return CUSTODY_OK;
}

const char cmd_sync_usage[] =
	"custody sync [--watch [--interval SECONDS]] [-o table|json]\n"
	"\n"
	"For every global assignment (current, previous, pending) makes sure this\n"
	"node's token holds the key and the certificate: unwraps a missing key from\n"
	"its package under the cluster KEK (sensitive, never extractable), checks\n"
	"each key against its certificate (sign + verify), records rolls that came\n"
	"due, and reports to the store what this node holds. Idempotent and safe to\n"
	"interrupt. It follows the clock (--at is refused). One line per key:\n"
	"TYPE SLOT THUMBPRINT held|unwrapped|repaired|refused. A key object with the\n"
	"key id of an assigned certificate that fails the check (what an interrupted\n"
	"sync can leave) is destroyed and unwrapped again when the store holds its\n"
	"package, and said so (audit entry \"repair\"); without a package it is kept\n"
	"and named.\n"
	"Exit 1 when the store or the token cannot be used or a key is not held\n"
	"(the token keeps what it holds: the node goes on signing with it).\n"
	"\n"
	"With --watch it stays up: it syncs on every change of the store\n"
	"(PostgreSQL LISTEN/NOTIFY; SQLite is asked every 100 ms), at the instant of\n"
	"each pending roll, and every SECONDS (default 30). The token stays open\n"
	"and logged in between syncs, its lock let go: other custody commands of\n"
	"the node use it meanwhile. A store or token it cannot use is logged and\n"
	"tried again with growing pauses, the token opened anew; SIGTERM or SIGINT\n"
	"end it (exit 0). -o json prints one JSON object per sync (one line each\n"
	"with --watch). The PIN source must be file: or env: with --watch: the PIN\n"
	"is read again whenever the token is opened anew.\n"
	"\n"
	"  --watch                  keep running and react to changes\n"
	"  --interval SECONDS       sync at least this often with --watch (1..86400)\n";

int
cmd_sync(struct cli *cli, int argc, char **argv)
{
	struct sync_opts o = {0, DEFAULT_INTERVAL};
	const struct cli_opt options[] = {
		CLI_OPT_FLAG("watch", OPT_WATCH, &o.watch),
		CLI_OPT("interval", required_argument, OPT_INTERVAL),
		{NULL},
	};
	const char *pin;
	int r;

	if ((r = cli_parse(cli, argc, argv, options, "", on_option, &o)) != CUSTODY_OK)
		return r;
	if ((r = cli_check_output(cli, 1u << OUT_TABLE | 1u << OUT_JSON)) != CUSTODY_OK)
		return r;
	/* A sync writes what came due (rolls) for every node: only at the
	 * real time (cli_parse refuses --at, as for every command that writes). */
	if (!o.watch)
		return run_once(cli);
	/* The PIN is read again whenever the token is opened anew (after a
	 * failure), so that none is kept in memory: a source that can be
	 * read only once cannot serve --watch. */
	pin = cli->cfg.pin_source;
	if (pin != NULL && (strncmp(pin, "fd:", 3) == 0 || strcmp(pin, "prompt") == 0)) {
		r = cli_usage_error(cli, "sync --watch reads the PIN again whenever "
				    "it opens the token anew: PIN source %s can "
				    "be read only once", pin);
		custody_err_hint(&cli->err, "use file:PATH (a systemd credential, say) or env:VAR");
		return r;
	}
	return run_watch(cli, &o);
}
