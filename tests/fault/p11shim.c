/*
 * p11shim.c — a PKCS#11 module for fault injection: every call is
 * forwarded to a real module (SoftHSM in the tests), and the N-th call
 * can be made to fail or to abort the process.  It is the only stand-in
 * for a token the tests use, and it fakes nothing else: what the real
 * module answers is what the caller sees.
 *
 * Configured by the environment, read once when C_GetFunctionList is
 * first called:
 *
 *   FAULT_TARGET=PATH       the real module (default: SoftHSM, as
 *                           configure found it)
 *   FAULT_AT=N              the N-th counted call (1, 2, ...) does not
 *                           reach the module and returns FAULT_RV
 *   FAULT_FUNC=C_Name       count only calls of that function (default:
 *                           every function but C_GetFunctionList)
 *   FAULT_RV=0x...          the CK_RV of the failure (default 0x30,
 *                           CKR_DEVICE_ERROR); decimal or 0x-hex
 *   FAULT_ABORT=1           abort() at the N-th call instead of failing it
 *   FAULT_ABORT_AFTER=1     forward the N-th call to the module, then
 *                           abort() before it returns: the call's work is
 *                           done, the caller never learns of it
 *   FAULT_TEAR=K            forward the N-th call, and abort() inside it,
 *                           just before the module's K-th write to its
 *                           files reaches them (fflush, fclose, ftruncate:
 *                           SoftHSM's file backend), leaving what a power
 *                           cut in the middle of the call leaves: a torn
 *                           object.  Needs tests/fault/tear.so in
 *                           LD_PRELOAD, which counts those writes.  When
 *                           the call makes fewer than K writes it returns
 *                           as usual and the trace says "TEAR-NOT-REACHED
 *                           M" (M: the writes it made)
 *   FAULT_PERSIST=1         every counted call from the N-th on fails (a
 *                           token that went away), not only the N-th
 *   FAULT_EXEC=COMMAND      at the N-th call, run COMMAND (/bin/sh -c) and
 *                           wait for it, then forward the call as usual:
 *                           something happens to the world mid-command
 *                           (the store's file system fills up, the
 *                           database server stops); no call fails
 *   FAULT_COUNT_FILE=PATH   holds the number of counted calls so far
 *                           (rewritten at every call, so it survives
 *                           abort() and kill -9)
 *   FAULT_TRACE=PATH        one line appended per call of any function:
 *                           "N C_Name RV" (N = its number among counted
 *                           calls, "-" when not counted; RV = "0x..", or
 *                           "FAULT 0x.." / "ABORT" for injected ones);
 *                           C_Login is "C_Login/USER" or "C_Login/SO"
 *                           when it reached the module
 *   FAULT_PIN_FLAGS=LIST    OR'ed into the flags C_GetTokenInfo returns:
 *                           a comma list of final-try, locked, count-low,
 *                           to-be-changed, so-final-try, so-locked, or a
 *                           0x-hex number
 *   FAULT_IGNORE_ATTR=0x..  a token that does not honour an attribute: the
 *                           attribute of that type is taken out of the
 *                           templates of C_CreateObject, C_GenerateKey,
 *                           C_GenerateKeyPair (private key) and
 *                           C_UnwrapKey before they reach the module, so
 *                           the object gets the module's default
 *   FAULT_HIDE_MECH=LIST    a token without these mechanisms (comma list
 *                           of 0x-hex CKM_ values): left out of
 *                           C_GetMechanismList, CKR_MECHANISM_INVALID from
 *                           C_GetMechanismInfo (what they would be used
 *                           for still reaches the module: a token that
 *                           says it lacks what it has)
 *
 * Calls are numbered across the whole process, whichever caller made
 * them (custody's raw calls and libp11's alike: both load this file, so
 * they share one instance of it and of the real module).
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#ifndef FAULT_DEFAULT_TARGET
#define FAULT_DEFAULT_TARGET "/usr/lib/softhsm/libsofthsm2.so"
#endif

/* The one exported symbol. */
CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
	__attribute__((visibility("default")));

static pthread_mutex_t shim_mutex = PTHREAD_MUTEX_INITIALIZER;
static CK_FUNCTION_LIST_PTR target;
static void *target_dl;
static unsigned long fault_at;		/* 0: never */
static const char *fault_func;		/* NULL: every function */
static CK_RV fault_rv = CKR_DEVICE_ERROR;
static int fault_abort;
static int fault_abort_after;
static unsigned long fault_tear;	/* 0: no tear */
static void (*tear_arm)(unsigned long);
static unsigned long (*tear_disarm)(void);
static int fault_persist;
static const char *fault_exec;
static CK_FLAGS pin_flags;
static CK_ATTRIBUTE_TYPE ignore_attr;
static int ignore_attr_set;
#define HIDE_MAX 8
static CK_MECHANISM_TYPE hide_mech[HIDE_MAX];
static size_t n_hide;
static int count_fd = -1;
static int trace_fd = -1;
static unsigned long counted;		/* calls counted so far */

static void
shim_die(const char *what, const char *why)
{
	fprintf(stderr, "p11shim: %s: %s\n", what, why);
	abort();
}

static CK_FLAGS
parse_pin_flags(const char *text)
{
	static const struct {
		const char *name;
		CK_FLAGS flag;
	} names[] = {
		{"final-try", CKF_USER_PIN_FINAL_TRY},
		{"locked", CKF_USER_PIN_LOCKED},
		{"count-low", CKF_USER_PIN_COUNT_LOW},
		{"to-be-changed", CKF_USER_PIN_TO_BE_CHANGED},
		{"so-final-try", CKF_SO_PIN_FINAL_TRY},
		{"so-locked", CKF_SO_PIN_LOCKED},
	};
	CK_FLAGS flags = 0;
	char buf[256], *tok, *save = NULL;
	size_t i;

	if (strncmp(text, "0x", 2) == 0)
		return (CK_FLAGS)strtoul(text, NULL, 16);
	snprintf(buf, sizeof(buf), "%s", text);
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strcmp(tok, names[i].name) == 0)
				break;
		if (i == sizeof(names) / sizeof(names[0]))
			shim_die("FAULT_PIN_FLAGS", "unknown flag (final-try, locked, "
				 "count-low, to-be-changed, so-final-try, so-locked "
				 "or 0xHEX)");
		flags |= names[i].flag;
	}
	return flags;
}

static int
open_out(const char *var, int flags)
{
	const char *path = getenv(var);
	int fd;

	if (path == NULL || path[0] == '\0')
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0600);
	if (fd < 0)
		shim_die(path, strerror(errno));
	return fd;
}

/* Reads the environment and loads the real module; under shim_mutex. */
static CK_RV
shim_load(void)
{
	CK_C_GetFunctionList get;
	const char *path = getenv("FAULT_TARGET"), *v;

	if (target != NULL)
		return CKR_OK;
	if (path == NULL || path[0] == '\0')
		path = FAULT_DEFAULT_TARGET;
	if ((v = getenv("FAULT_AT")) != NULL && v[0] != '\0')
		fault_at = strtoul(v, NULL, 10);
	if ((v = getenv("FAULT_FUNC")) != NULL && v[0] != '\0')
		fault_func = v;
	if ((v = getenv("FAULT_RV")) != NULL && v[0] != '\0')
		fault_rv = (CK_RV)strtoul(v, NULL, 0);
	fault_abort = (v = getenv("FAULT_ABORT")) != NULL && strcmp(v, "1") == 0;
	fault_abort_after = (v = getenv("FAULT_ABORT_AFTER")) != NULL &&
			    strcmp(v, "1") == 0;
	if ((v = getenv("FAULT_TEAR")) != NULL && v[0] != '\0') {
		fault_tear = strtoul(v, NULL, 10);
		*(void **)&tear_arm = dlsym(RTLD_DEFAULT, "p11tear_arm");
		*(void **)&tear_disarm = dlsym(RTLD_DEFAULT, "p11tear_disarm");
		if (tear_arm == NULL || tear_disarm == NULL)
			shim_die("FAULT_TEAR", "tear.so is not in LD_PRELOAD");
	}
	fault_persist = (v = getenv("FAULT_PERSIST")) != NULL && strcmp(v, "1") == 0;
	if ((v = getenv("FAULT_EXEC")) != NULL && v[0] != '\0')
		fault_exec = v;
	if ((v = getenv("FAULT_PIN_FLAGS")) != NULL && v[0] != '\0')
		pin_flags = parse_pin_flags(v);
	if ((v = getenv("FAULT_IGNORE_ATTR")) != NULL && v[0] != '\0') {
		ignore_attr = strtoul(v, NULL, 0);
		ignore_attr_set = 1;
	}
	if ((v = getenv("FAULT_HIDE_MECH")) != NULL) {
		char *end;

		while (*v != '\0' && n_hide < HIDE_MAX) {
			hide_mech[n_hide++] = strtoul(v, &end, 0);
			v = *end == ',' ? end + 1 : end;
			if (end == v && *v != '\0')
				break;
		}
	}
	count_fd = open_out("FAULT_COUNT_FILE", O_TRUNC);
	trace_fd = open_out("FAULT_TRACE", O_APPEND);

	target_dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (target_dl == NULL) {
		fprintf(stderr, "p11shim: cannot load %s: %s\n", path, dlerror());
		return CKR_GENERAL_ERROR;
	}
	*(void **)&get = dlsym(target_dl, "C_GetFunctionList");
	if (get == NULL || get(&target) != CKR_OK || target == NULL) {
		fprintf(stderr, "p11shim: %s has no usable C_GetFunctionList\n", path);
		target = NULL;
		return CKR_GENERAL_ERROR;
	}
	return CKR_OK;
}

static void
write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void
trace(const char *num, const char *name, const char *what)
{
	char line[128];
	int n;

	if (trace_fd < 0)
		return;
	n = snprintf(line, sizeof(line), "%s %s %s\n", num, name, what);
	if (n > 0)
		write_all(trace_fd, line, (size_t)n);
}

/* What becomes of a call that reaches the module (fault_enter's *after). */
enum after { AFTER_RETURN, AFTER_ABORT, AFTER_TEAR };

/*
 * Before a call: counts it and decides whether it is the faulty one.
 * Returns 1 with *rv set when the call must not reach the module.  *num
 * receives the call's number as text for the trace ("-": not counted),
 * *after what fault_leave does once the module has answered.
 */
static int
fault_enter(const char *name, CK_RV *rv, char num[24], enum after *after)
{
	unsigned long n;
	int hit = 0;
	char text[24];

	pthread_mutex_lock(&shim_mutex);
	*after = AFTER_RETURN;
	snprintf(num, 24, "-");
	if (fault_func == NULL || strcmp(fault_func, name) == 0) {
		n = ++counted;
		snprintf(num, 24, "%lu", n);
		if (count_fd >= 0) {
			int len = snprintf(text, sizeof(text), "%lu\n", n);

			/* The number only grows: it covers the one before. */
			if (pwrite(count_fd, text, (size_t)len, 0) != len)
				shim_die("FAULT_COUNT_FILE", strerror(errno));
		}
		hit = fault_at != 0 && (n == fault_at || (fault_persist && n > fault_at));
	}
	if (hit && fault_abort) {
		trace(num, name, "ABORT");
		abort();
	}
	if (hit && (fault_abort_after || fault_tear != 0)) {
		*after = fault_tear != 0 ? AFTER_TEAR : AFTER_ABORT;
		if (fault_tear != 0) {
			trace(num, name, "TEAR");
			tear_arm(fault_tear);
		}
		pthread_mutex_unlock(&shim_mutex);
		return 0;
	}
	if (hit && fault_exec != NULL) {
		int status;

		trace(num, name, "EXEC");
		pthread_mutex_unlock(&shim_mutex);
		status = system(fault_exec);
		if (status != 0)
			fprintf(stderr, "p11shim: FAULT_EXEC exited with status %d\n", status);
		return 0;
	}
	if (hit) {
		char what[32];

		snprintf(what, sizeof(what), "FAULT 0x%lx", (unsigned long)fault_rv);
		trace(num, name, what);
		*rv = fault_rv;
	}
	pthread_mutex_unlock(&shim_mutex);
	return hit;
}

static CK_RV
fault_leave(const char *name, const char *num, enum after after, CK_RV rv)
{
	char what[48];

	if (after == AFTER_TEAR) {
		snprintf(what, sizeof(what), "TEAR-NOT-REACHED %lu", tear_disarm());
		pthread_mutex_lock(&shim_mutex);
		trace(num, name, what);
		pthread_mutex_unlock(&shim_mutex);
	}
	if (after == AFTER_ABORT) {
		snprintf(what, sizeof(what), "0x%lx ABORT-AFTER", (unsigned long)rv);
		pthread_mutex_lock(&shim_mutex);
		trace(num, name, what);
		abort();
	}
	if (trace_fd >= 0) {
		snprintf(what, sizeof(what), "0x%lx", (unsigned long)rv);
		pthread_mutex_lock(&shim_mutex);
		trace(num, name, what);
		pthread_mutex_unlock(&shim_mutex);
	}
	return rv;
}

/* One forwarding function per PKCS#11 function. */
#define SHIM(name, params, args)					\
	static CK_RV							\
	shim_##name params						\
	{								\
		CK_RV rv;						\
		char num[24];						\
		enum after after;					\
									\
		if (fault_enter(#name, &rv, num, &after))		\
			return rv;					\
		return fault_leave(#name, num, after, target->name args); \
	}

SHIM(C_Initialize, (void *a), (a))
SHIM(C_Finalize, (void *a), (a))
SHIM(C_GetInfo, (CK_INFO_PTR a), (a))
SHIM(C_GetSlotList, (CK_BBOOL a, CK_SLOT_ID_PTR b, CK_ULONG_PTR c), (a, b, c))
SHIM(C_GetSlotInfo, (CK_SLOT_ID a, CK_SLOT_INFO_PTR b), (a, b))
SHIM(C_InitToken, (CK_SLOT_ID a, CK_UTF8CHAR_PTR b, CK_ULONG c, CK_UTF8CHAR_PTR d), (a, b, c, d))
SHIM(C_InitPIN, (CK_SESSION_HANDLE a, CK_UTF8CHAR_PTR b, CK_ULONG c), (a, b, c))
SHIM(C_SetPIN, (CK_SESSION_HANDLE a, CK_UTF8CHAR_PTR b, CK_ULONG c, CK_UTF8CHAR_PTR d,
		CK_ULONG e), (a, b, c, d, e))
SHIM(C_OpenSession, (CK_SLOT_ID a, CK_FLAGS b, CK_VOID_PTR c, CK_NOTIFY d,
		     CK_SESSION_HANDLE_PTR e), (a, b, c, d, e))
SHIM(C_CloseSession, (CK_SESSION_HANDLE a), (a))
SHIM(C_CloseAllSessions, (CK_SLOT_ID a), (a))
SHIM(C_GetSessionInfo, (CK_SESSION_HANDLE a, CK_SESSION_INFO_PTR b), (a, b))
SHIM(C_GetOperationState, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c), (a, b, c))
SHIM(C_SetOperationState, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c,
			   CK_OBJECT_HANDLE d, CK_OBJECT_HANDLE e), (a, b, c, d, e))
SHIM(C_Logout, (CK_SESSION_HANDLE a), (a))
SHIM(C_CopyObject, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR c,
		    CK_ULONG d, CK_OBJECT_HANDLE_PTR e), (a, b, c, d, e))
SHIM(C_DestroyObject, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b), (a, b))
SHIM(C_GetObjectSize, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ULONG_PTR c), (a, b, c))
SHIM(C_GetAttributeValue, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR c,
			   CK_ULONG d), (a, b, c, d))
SHIM(C_SetAttributeValue, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR c,
			   CK_ULONG d), (a, b, c, d))
SHIM(C_FindObjectsInit, (CK_SESSION_HANDLE a, CK_ATTRIBUTE_PTR b, CK_ULONG c), (a, b, c))
SHIM(C_FindObjects, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE_PTR b, CK_ULONG c,
		     CK_ULONG_PTR d), (a, b, c, d))
SHIM(C_FindObjectsFinal, (CK_SESSION_HANDLE a), (a))
SHIM(C_EncryptInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c), (a, b, c))
SHIM(C_Encrypt, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
		 CK_ULONG_PTR e), (a, b, c, d, e))
SHIM(C_EncryptUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
		       CK_ULONG_PTR e), (a, b, c, d, e))
SHIM(C_EncryptFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c), (a, b, c))
SHIM(C_DecryptInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c), (a, b, c))
SHIM(C_Decrypt, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
		 CK_ULONG_PTR e), (a, b, c, d, e))
SHIM(C_DecryptUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
		       CK_ULONG_PTR e), (a, b, c, d, e))
SHIM(C_DecryptFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c), (a, b, c))
SHIM(C_DigestInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b), (a, b))
SHIM(C_Digest, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
		CK_ULONG_PTR e), (a, b, c, d, e))
SHIM(C_DigestUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c), (a, b, c))
SHIM(C_DigestKey, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b), (a, b))
SHIM(C_DigestFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c), (a, b, c))
SHIM(C_SignInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c), (a, b, c))
SHIM(C_Sign, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
	      CK_ULONG_PTR e), (a, b, c, d, e))
SHIM(C_SignUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c), (a, b, c))
SHIM(C_SignFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c), (a, b, c))
SHIM(C_SignRecoverInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c),
     (a, b, c))
SHIM(C_SignRecover, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
		     CK_ULONG_PTR e), (a, b, c, d, e))
SHIM(C_VerifyInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c), (a, b, c))
SHIM(C_Verify, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG e),
     (a, b, c, d, e))
SHIM(C_VerifyUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c), (a, b, c))
SHIM(C_VerifyFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c), (a, b, c))
SHIM(C_VerifyRecoverInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c),
     (a, b, c))
SHIM(C_VerifyRecover, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
		       CK_ULONG_PTR e), (a, b, c, d, e))
SHIM(C_DigestEncryptUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
			     CK_ULONG_PTR e), (a, b, c, d, e))
SHIM(C_DecryptDigestUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
			     CK_ULONG_PTR e), (a, b, c, d, e))
SHIM(C_SignEncryptUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
			   CK_ULONG_PTR e), (a, b, c, d, e))
SHIM(C_DecryptVerifyUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
			     CK_ULONG_PTR e), (a, b, c, d, e))
SHIM(C_WrapKey, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c,
		 CK_OBJECT_HANDLE d, CK_BYTE_PTR e, CK_ULONG_PTR f), (a, b, c, d, e, f))
SHIM(C_DeriveKey, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c,
		   CK_ATTRIBUTE_PTR d, CK_ULONG e, CK_OBJECT_HANDLE_PTR f), (a, b, c, d, e, f))
SHIM(C_SeedRandom, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c), (a, b, c))
SHIM(C_GenerateRandom, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c), (a, b, c))
SHIM(C_GetFunctionStatus, (CK_SESSION_HANDLE a), (a))
SHIM(C_CancelFunction, (CK_SESSION_HANDLE a), (a))
SHIM(C_WaitForSlotEvent, (CK_FLAGS a, CK_SLOT_ID_PTR b, CK_VOID_PTR c), (a, b, c))

/* ------------------------------------------- a token that lacks things */

static int
hidden(CK_MECHANISM_TYPE m)
{
	size_t i;

	for (i = 0; i < n_hide; i++)
		if (hide_mech[i] == m)
			return 1;
	return 0;
}

static CK_RV
shim_C_GetMechanismList(CK_SLOT_ID a, CK_MECHANISM_TYPE_PTR b, CK_ULONG_PTR c)
{
	CK_MECHANISM_TYPE *all = NULL;
	CK_ULONG n = 0, i, o = 0;
	CK_RV rv;
	char num[24];
	enum after after;

	if (fault_enter("C_GetMechanismList", &rv, num, &after))
		return rv;
	if (n_hide == 0)
		return fault_leave("C_GetMechanismList", num, after,
				   target->C_GetMechanismList(a, b, c));
	rv = target->C_GetMechanismList(a, NULL, &n);
	if (rv == CKR_OK && (all = calloc(n + 1, sizeof(*all))) == NULL)
		rv = CKR_HOST_MEMORY;
	if (rv == CKR_OK)
		rv = target->C_GetMechanismList(a, all, &n);
	for (i = 0; rv == CKR_OK && i < n; i++)
		if (!hidden(all[i]))
			all[o++] = all[i];
	if (rv == CKR_OK) {
		if (b != NULL && *c < o)
			rv = CKR_BUFFER_TOO_SMALL;
		else if (b != NULL)
			memcpy(b, all, o * sizeof(*all));
		*c = o;
	}
	free(all);
	return fault_leave("C_GetMechanismList", num, after, rv);
}

static CK_RV
shim_C_GetMechanismInfo(CK_SLOT_ID a, CK_MECHANISM_TYPE b, CK_MECHANISM_INFO_PTR c)
{
	CK_RV rv;
	char num[24];
	enum after after;

	if (fault_enter("C_GetMechanismInfo", &rv, num, &after))
		return rv;
	return fault_leave("C_GetMechanismInfo", num, after,
			   hidden(b) ? CKR_MECHANISM_INVALID
				     : target->C_GetMechanismInfo(a, b, c));
}

/* ------------------------------------ a token that ignores an attribute */

/* t without FAULT_IGNORE_ATTR, into out (room for n); its new length. */
static CK_ULONG
without_ignored(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE *out)
{
	CK_ULONG i, o = 0;

	for (i = 0; i < n; i++)
		if (!ignore_attr_set || t[i].type != ignore_attr)
			out[o++] = t[i];
	return o;
}

#define TEMPLATE_ROOM 64

static CK_RV
shim_C_CreateObject(CK_SESSION_HANDLE a, CK_ATTRIBUTE_PTR b, CK_ULONG c,
		    CK_OBJECT_HANDLE_PTR d)
{
	CK_ATTRIBUTE t[TEMPLATE_ROOM];
	CK_RV rv;
	char num[24];
	enum after after;

	if (fault_enter("C_CreateObject", &rv, num, &after))
		return rv;
	if (c > TEMPLATE_ROOM)
		return fault_leave("C_CreateObject", num, after,
				   target->C_CreateObject(a, b, c, d));
	return fault_leave("C_CreateObject", num, after,
			   target->C_CreateObject(a, t, without_ignored(b, c, t), d));
}

static CK_RV
shim_C_GenerateKey(CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_ATTRIBUTE_PTR c,
		   CK_ULONG d, CK_OBJECT_HANDLE_PTR e)
{
	CK_ATTRIBUTE t[TEMPLATE_ROOM];
	CK_RV rv;
	char num[24];
	enum after after;

	if (fault_enter("C_GenerateKey", &rv, num, &after))
		return rv;
	if (d > TEMPLATE_ROOM)
		return fault_leave("C_GenerateKey", num, after,
				   target->C_GenerateKey(a, b, c, d, e));
	return fault_leave("C_GenerateKey", num, after,
			   target->C_GenerateKey(a, b, t, without_ignored(c, d, t), e));
}

static CK_RV
shim_C_GenerateKeyPair(CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_ATTRIBUTE_PTR c,
		       CK_ULONG d, CK_ATTRIBUTE_PTR e, CK_ULONG f,
		       CK_OBJECT_HANDLE_PTR g, CK_OBJECT_HANDLE_PTR h)
{
	CK_ATTRIBUTE t[TEMPLATE_ROOM];
	CK_RV rv;
	char num[24];
	enum after after;

	if (fault_enter("C_GenerateKeyPair", &rv, num, &after))
		return rv;
	if (f > TEMPLATE_ROOM)
		return fault_leave("C_GenerateKeyPair", num, after,
				   target->C_GenerateKeyPair(a, b, c, d, e, f, g, h));
	return fault_leave("C_GenerateKeyPair", num, after,
			   target->C_GenerateKeyPair(a, b, c, d, t,
						     without_ignored(e, f, t), g, h));
}

static CK_RV
shim_C_UnwrapKey(CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c,
		 CK_BYTE_PTR d, CK_ULONG e, CK_ATTRIBUTE_PTR f, CK_ULONG g,
		 CK_OBJECT_HANDLE_PTR h)
{
	CK_ATTRIBUTE t[TEMPLATE_ROOM];
	CK_RV rv;
	char num[24];
	enum after after;

	if (fault_enter("C_UnwrapKey", &rv, num, &after))
		return rv;
	if (g > TEMPLATE_ROOM)
		return fault_leave("C_UnwrapKey", num, after,
				   target->C_UnwrapKey(a, b, c, d, e, f, g, h));
	return fault_leave("C_UnwrapKey", num, after,
			   target->C_UnwrapKey(a, b, c, d, e, t,
					       without_ignored(f, g, t), h));
}

/* C_GetTokenInfo also reports the PIN flags of FAULT_PIN_FLAGS. */
static CK_RV
shim_C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
	CK_RV rv;
	char num[24];
	enum after after;

	if (fault_enter("C_GetTokenInfo", &rv, num, &after))
		return rv;
	rv = target->C_GetTokenInfo(slot, info);
	if (rv == CKR_OK && info != NULL)
		info->flags |= pin_flags;
	return fault_leave("C_GetTokenInfo", num, after, rv);
}

/* C_Login is traced with its user type: "C_Login/USER", "C_Login/SO". */
static CK_RV
shim_C_Login(CK_SESSION_HANDLE session, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin,
	     CK_ULONG pin_len)
{
	CK_RV rv;
	char num[24];
	enum after after;

	if (fault_enter("C_Login", &rv, num, &after))
		return rv;
	rv = target->C_Login(session, user, pin, pin_len);
	return fault_leave(user == CKU_SO ? "C_Login/SO" : user == CKU_USER ? "C_Login/USER" :
			   "C_Login/OTHER", num, after, rv);
}

static CK_FUNCTION_LIST shim_list = {
	{CRYPTOKI_VERSION_MAJOR, CRYPTOKI_VERSION_MINOR},
	shim_C_Initialize, shim_C_Finalize, shim_C_GetInfo, C_GetFunctionList,
	shim_C_GetSlotList, shim_C_GetSlotInfo, shim_C_GetTokenInfo,
	shim_C_GetMechanismList, shim_C_GetMechanismInfo, shim_C_InitToken,
	shim_C_InitPIN, shim_C_SetPIN, shim_C_OpenSession, shim_C_CloseSession,
	shim_C_CloseAllSessions, shim_C_GetSessionInfo, shim_C_GetOperationState,
	shim_C_SetOperationState, shim_C_Login, shim_C_Logout, shim_C_CreateObject,
	shim_C_CopyObject, shim_C_DestroyObject, shim_C_GetObjectSize,
	shim_C_GetAttributeValue, shim_C_SetAttributeValue, shim_C_FindObjectsInit,
	shim_C_FindObjects, shim_C_FindObjectsFinal, shim_C_EncryptInit,
	shim_C_Encrypt, shim_C_EncryptUpdate, shim_C_EncryptFinal,
	shim_C_DecryptInit, shim_C_Decrypt, shim_C_DecryptUpdate,
	shim_C_DecryptFinal, shim_C_DigestInit, shim_C_Digest, shim_C_DigestUpdate,
	shim_C_DigestKey, shim_C_DigestFinal, shim_C_SignInit, shim_C_Sign,
	shim_C_SignUpdate, shim_C_SignFinal, shim_C_SignRecoverInit,
	shim_C_SignRecover, shim_C_VerifyInit, shim_C_Verify, shim_C_VerifyUpdate,
	shim_C_VerifyFinal, shim_C_VerifyRecoverInit, shim_C_VerifyRecover,
	shim_C_DigestEncryptUpdate, shim_C_DecryptDigestUpdate,
	shim_C_SignEncryptUpdate, shim_C_DecryptVerifyUpdate, shim_C_GenerateKey,
	shim_C_GenerateKeyPair, shim_C_WrapKey, shim_C_UnwrapKey, shim_C_DeriveKey,
	shim_C_SeedRandom, shim_C_GenerateRandom, shim_C_GetFunctionStatus,
	shim_C_CancelFunction, shim_C_WaitForSlotEvent,
};

CK_RV
C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	CK_RV rv;

	if (list == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&shim_mutex);
	rv = shim_load();
	pthread_mutex_unlock(&shim_mutex);
	if (rv != CKR_OK)
		return rv;
	/* The version the real module speaks, so callers see no difference. */
	shim_list.version = target->version;
	*list = &shim_list;
	return CKR_OK;
}
