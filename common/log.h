/*
 * log.h - leveled logging: one line per entry, "LEVEL module: message", to
 * stderr or syslog. Thread-safe.
 */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

/* Levels are syslog's: LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG.
 * Default LOG_NOTICE: start, stop, servers down/up. -v = LOG_INFO, -vv = LOG_DEBUG. */
void log_init(const char *progname, int level, bool use_syslog);
void log_set_level(int level);
int log_get_level(void);
void log_msg(int level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_err(mod, ...)    log_msg(LOG_ERR, mod, __VA_ARGS__)
#define log_warn(mod, ...)   log_msg(LOG_WARNING, mod, __VA_ARGS__)
#define log_notice(mod, ...) log_msg(LOG_NOTICE, mod, __VA_ARGS__)
#define log_info(mod, ...)   log_msg(LOG_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...)  log_msg(LOG_DEBUG, mod, __VA_ARGS__)

/* Startup failures only: logs and exits with status code. */
void fatal(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Copies at most 128 bytes of untrusted s (len bytes) into out, which holds
 * LOG_SAMPLE_LEN bytes, replacing non-printables with '.'; always
 * NUL-terminates. */
#define LOG_SAMPLE_LEN 129
void log_sample(char out[LOG_SAMPLE_LEN], const void *s, size_t len);

#endif /* COMMON_LOG_H */
