/*
 * launch.h — the `custody` launcher (launch.c): a small program that
 * signs through the agent itself (fast_sign.c) and hands every other
 * command line to the full command, the module custody-cli.so, in the
 * same process.
 */
#ifndef CUSTODY_CLI_LAUNCH_H
#define CUSTODY_CLI_LAUNCH_H

/* The full command's entry, exported by custody-cli.so (main.c). */
int custody_cli_main(int argc, char **argv);

/* Signs when the command line is `custody sign` through an agent and the
 * fast path is sure of all of it: 1 and the exit status in *status.  0:
 * not its case, nothing done (the full command takes it). */
int fast_sign(int argc, char **argv, int *status);

#endif
