/*
 * softhsm_fixture.h — a throwaway SoftHSM token per test.
 *
 * softhsm_fixture_setup() makes a fresh directory (under $TMPDIR or /tmp)
 * holding softhsm2.conf, tokens/ and lock/, points SOFTHSM2_CONF and
 * CUSTODY_LOCK_DIR at it (in this process's environment) and initialises
 * one token labelled `label` with custody_token_init(), with a random
 * 8-digit user PIN and SO PIN.  The PINs are kept in the struct and also
 * written to DIR/user.pin and DIR/so.pin (mode 0600) for `--pin-source
 * file:...`; they never go on a command line.  Any failure fails the
 * current Criterion test.
 *
 * Criterion runs tests in parallel processes: call setup from each test's
 * .init and teardown from its .fini, so that every test has its own token
 * directory (SoftHSM's file backend must never see two processes at once).
 */
#ifndef CUSTODY_SOFTHSM_FIXTURE_H
#define CUSTODY_SOFTHSM_FIXTURE_H

#include <limits.h>

#include <custody/token.h>

struct softhsm_fixture {
	char dir[PATH_MAX];		/* the temporary directory          */
	char conf[PATH_MAX];		/* DIR/softhsm2.conf                */
	char tokens[PATH_MAX];		/* DIR/tokens                       */
	char lock_dir[PATH_MAX];	/* DIR/lock                         */
	char user_pin_file[PATH_MAX];	/* DIR/user.pin                     */
	char so_pin_file[PATH_MAX];	/* DIR/so.pin                       */
	const char *module;		/* $SOFTHSM_MODULE or the default   */
	char label[33];
	char user_pin[9];
	char so_pin[9];
};

#define SOFTHSM_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"

void softhsm_fixture_setup(struct softhsm_fixture *f, const char *label);
void softhsm_fixture_teardown(struct softhsm_fixture *f);

/* A spec for f's module and token (label set, lock from the environment,
 * lock_timeout -1). */
custody_token_spec softhsm_fixture_spec(const struct softhsm_fixture *f);

/* Opens f's token and logs in as user; fails the test on any error. */
custody_token *softhsm_fixture_open(const struct softhsm_fixture *f);

/*
 * Initialises one more token, labelled `label`, in f's token directory
 * (same SOFTHSM2_CONF: one process can use both), with its own random
 * PINs, written to DIR/LABEL.user.pin and DIR/LABEL.so.pin.  g describes
 * it; its dir is empty, so softhsm_fixture_teardown(g) only wipes its PINs
 * (f's teardown removes the directory).  Call it before any handle of the
 * module is open in this process (SoftHSM lists a new token's slot at
 * C_Initialize).
 */
void softhsm_fixture_add_token(const struct softhsm_fixture *f,
			       struct softhsm_fixture *g, const char *label);

#endif
