/*
 * cli.c - output and argument helpers shared by the subcommands of `encore`.
 * Owns:    nothing; stateless helpers writing to stdout and stderr.
 */
#include "cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void cli_err(const char *fmt, ...)
{
	va_list ap;

	fputs("encore: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cli_note(const char *fmt, ...)
{
	va_list ap;

	fputs("encore: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "encore %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nsee 'encore %s --help'\n", cmd);
	return CLI_USAGE;
}

bool cli_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

int cli_print_json(json_object *o)
{
	const char *s;

	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE);
	if (puts(s) == EOF || fflush(stdout) == EOF) {
		cli_err("cannot write to standard output");
		return CLI_FAIL;
	}
	return CLI_OK;
}

const char *cli_json_str(json_object *o, const char *key, const char *dflt)
{
	json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) || v == NULL)
		return dflt;
	return json_object_get_string(v);
}

int64_t cli_json_int(json_object *o, const char *key, int64_t dflt)
{
	json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) || v == NULL)
		return dflt;
	return json_object_get_int64(v);
}

json_object *cli_json_parse_object(const char *buf, size_t len)
{
	json_tokener *tok;
	json_object *o;
	size_t end;

	if (len > INT_MAX)
		return NULL;
	tok = json_tokener_new();
	if (tok == NULL)
		return NULL;
	o = json_tokener_parse_ex(tok, buf, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (o == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		o = NULL;
	}
	for (; o != NULL && end < len; end++) {
		if (buf[end] != ' ' && buf[end] != '\n' && buf[end] != '\t' && buf[end] != '\r') {
			json_object_put(o);
			o = NULL;
		}
	}
	json_tokener_free(tok);
	return o;
}
