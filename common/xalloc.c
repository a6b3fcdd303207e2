/*
 * xalloc.c - allocation that logs the size and aborts on failure, and the
 * always-on ASSERT() failure path.
 * Owns:    nothing.
 */
#include "common/xalloc.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static void oom(size_t n)
{
	log_err("xalloc", "out of memory allocating %zu bytes", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n == 0 ? 1 : n);

	if (p == NULL)
		oom(n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);

	if (p == NULL)
		oom(n * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n == 0 ? 1 : n);

	if (q == NULL)
		oom(n);
	return q;
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}

void assert_fail(const char *expr, const char *file, int line)
{
	log_err("assert", "assertion '%s' failed at %s:%d", expr, file, line);
	abort();
}
