/* util/clock.c — the monotonic clock (custody/clock.h). */
#include "config.h"

#include <time.h>

#include <custody/clock.h>

int64_t
custody_monotonic_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int64_t
custody_monotonic_ms(void)
{
	return custody_monotonic_ns() / 1000000;
}
