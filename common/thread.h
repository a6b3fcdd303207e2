/*
 * thread.h - starting the daemons' helper threads (connection readers,
 * probers, watchers). A helper thread takes no signals: they go to the main
 * thread, whose handlers stop the daemon (the server's event loop, the
 * client's FUSE session loop), so every signal is blocked in the new thread.
 */
#ifndef COMMON_THREAD_H
#define COMMON_THREAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* pthread_create of fn(arg) with every signal blocked in the new thread
 * (the caller's mask is left as it was); detached if detached (then *t
 * may not be joined). 0 or -errno. */
int thread_start(pthread_t *t, bool detached, void *(*fn)(void *), void *arg);

/* *ts = the time ms milliseconds from now on clock clk: the deadline of a
 * pthread_cond_timedwait on a condition variable of that clock. */
void deadline_in_ms(struct timespec *ts, clockid_t clk, uint64_t ms);

#endif /* COMMON_THREAD_H */
