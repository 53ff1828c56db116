/*
 * agent/server_systemd.c — socket activation (sd_listen_fds) and the
 * service manager's notifications (sd_notify: READY, STOPPING, RELOADING,
 * STATUS) from libsystemd, loaded with dlopen when the agent starts.
 *
 * Why not linked: libsystemd brings seven libraries (libgcrypt, liblzma,
 * libzstd, liblz4, libcap...) into every process that links libcustody,
 * and every `custody sign` would pay for loading them.  The agent alone
 * needs it, once.  Without libsystemd the agent listens on its path and
 * notifies nobody (a plain --foreground agent needs neither).
 */
#include "config.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include <systemd/sd-daemon.h>

#include "agent/server.h"

static struct {
	pthread_once_t once;
	void *lib;
	__typeof__(sd_listen_fds) *listen_fds;
	__typeof__(sd_notify) *notify;
} sd = {PTHREAD_ONCE_INIT, NULL, NULL, NULL};

static void
load(void)
{
	/* RTLD_NODELETE: the functions stay for the process's life. */
	if ((sd.lib = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE)) == NULL)
		return;
	*(void **)&sd.listen_fds = dlsym(sd.lib, "sd_listen_fds");
	*(void **)&sd.notify = dlsym(sd.lib, "sd_notify");
}

int
agent_sd_listen_fds(void)
{
	pthread_once(&sd.once, load);
	return sd.listen_fds != NULL ? sd.listen_fds(1) : 0;
}

void
agent_sd_notify(const char *fmt, ...)
{
	char state[256];
	va_list ap;

	pthread_once(&sd.once, load);
	if (sd.notify == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(state, sizeof(state), fmt, ap);
	va_end(ap);
	(void)sd.notify(0, state);
}
