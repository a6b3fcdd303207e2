/*
 * xalloc.h - allocation that logs the size and aborts on failure
 * (the daemons must survive kill -9 anyway; STYLE section 4).
 */
#ifndef COMMON_XALLOC_H
#define COMMON_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* Always-on assertion for programmer errors (never for input). */
#define ASSERT(cond)                                            \
	do {                                                    \
		if (!(cond))                                    \
			assert_fail(#cond, __FILE__, __LINE__); \
	} while (0)
void assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#define FALLTHROUGH __attribute__((fallthrough))

#endif /* COMMON_XALLOC_H */
