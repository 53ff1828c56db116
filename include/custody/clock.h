/*
 * custody/clock.h — the clock that only goes forward (CLOCK_MONOTONIC),
 * for deadlines, timeouts and durations.  Its zero is arbitrary (boot):
 * compare two readings, never show one.  The time of day is time(2).
 */
#ifndef CUSTODY_CLOCK_H
#define CUSTODY_CLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Now, in nanoseconds and in milliseconds. */
int64_t custody_monotonic_ns(void);
int64_t custody_monotonic_ms(void);

#ifdef __cplusplus
}
#endif
#endif
