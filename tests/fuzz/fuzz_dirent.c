/*
 * fuzz_dirent.c - libFuzzer target for dirent_decode(): decode packed
 * READDIR entries until the end or an error; every accepted entry must be a
 * valid name and re-encode to the bytes it came from.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rd r;
	struct dirent_w d;
	struct wr w;
	int ret;

	rd_init(&r, data, size);
	wr_init(&w);
	while ((ret = dirent_decode(&r, &d)) == 1) {
		if (!name_valid(d.name))
			abort();
		dirent_encode(&w, &d);
		if (w.len != r.pos || memcmp(w.buf, data, w.len) != 0)
			abort();
	}
	if (ret == 0 && r.pos != size)
		abort();
	if (ret < 0 && dirent_decode(&r, &d) != -EPROTO)
		abort();
	wr_release(&w);
	return 0;
}
