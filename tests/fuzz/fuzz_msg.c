/*
 * fuzz_msg.c - libFuzzer target for msg_decode_frame(): arbitrary bytes must
 * be rejected cleanly or decode to a message whose re-encoding is the input
 * itself (the encoding is canonical) and decodes again to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg *m = malloc(sizeof(*m)), *m2 = malloc(sizeof(*m2));
	struct wr w, w2;
	char trace[512];

	if (msg_decode_frame(m, data, size) == 0) {
		msg_fmt(m, trace, sizeof(trace));
		wr_init(&w);
		wr_init(&w2);
		if (msg_encode(&w, m) != 0)
			abort();
		if (w.len != size || memcmp(w.buf, data, size) != 0)
			abort();
		if (msg_decode_frame(m2, w.buf, w.len) != 0)
			abort();
		if (msg_encode(&w2, m2) != 0 || w2.len != w.len ||
		    memcmp(w2.buf, w.buf, w.len) != 0)
			abort();
		wr_release(&w);
		wr_release(&w2);
	}
	free(m);
	free(m2);
	return 0;
}
