/*
 * log.c - leveled logging, one line per entry ("LEVEL module: message") to
 * stderr or syslog.
 * Owns:    the process-wide log level and destination (set once at startup
 *          by log_init; the level may change later, atomically).
 * Locking: none needed: each entry is formatted into a local buffer and
 *          written with one write(2) (or one syslog(3) call).
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* An entry longer than this is truncated; a log line is not a data channel. */
#define LOG_LINE_MAX 1024

static _Atomic int log_level = LOG_NOTICE;
static bool log_syslog;
static const char *log_prog = "encore";
static bool log_stamp; /* ENCORE_LOG_TIME set (debugging): wall-clock prefix */

void log_init(const char *progname, int level, bool use_syslog)
{
	if (progname != NULL)
		log_prog = progname;
	log_level = level;
	log_syslog = use_syslog;
	log_stamp = getenv("ENCORE_LOG_TIME") != NULL;
	if (use_syslog)
		openlog(log_prog, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_level(int level)
{
	log_level = level;
}

int log_get_level(void)
{
	return log_level;
}

static const char *level_name(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
		return "CRIT";
	case LOG_ERR:
		return "ERROR";
	case LOG_WARNING:
		return "WARN";
	case LOG_NOTICE:
		return "NOTICE";
	case LOG_INFO:
		return "INFO";
	default:
		return "DEBUG";
	}
}

static void log_vmsg(int level, const char *module, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static void log_vmsg(int level, const char *module, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	int n, m;

	if (level > log_level)
		return;
	n = 0;
	if (log_stamp) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		n = snprintf(line, sizeof(line), "%lld.%03ld ", (long long)ts.tv_sec,
			     ts.tv_nsec / 1000000);
	}
	n += snprintf(line + n, sizeof(line) - (size_t)n, "%s %s: ", level_name(level), module);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	/* One entry is one line, whatever the message contained. */
	for (int i = 0; i < n; i++) {
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	}
	if (log_syslog) {
		line[n] = '\0';
		syslog(level, "%s", line);
		return;
	}
	line[n] = '\n';
	/* Best effort: there is nowhere to report a failed log write. */
	if (write(STDERR_FILENO, line, (size_t)n + 1) < 0)
		return;
}

void log_msg(int level, const char *module, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, module, fmt, ap);
	va_end(ap);
}

void fatal(int code, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_syslog)
		syslog(LOG_ERR, "fatal: %s", line);
	fprintf(stderr, "%s: %s\n", log_prog, line);
	exit(code);
}

void log_sample(char out[LOG_SAMPLE_LEN], const void *s, size_t len)
{
	const unsigned char *p = s;
	size_t n = len < LOG_SAMPLE_LEN - 1 ? len : LOG_SAMPLE_LEN - 1;

	for (size_t i = 0; i < n; i++)
		out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '.';
	out[n] = '\0';
}
