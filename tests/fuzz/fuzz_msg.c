/*
 * fuzz_msg.c - libFuzzer target for msg_decode_frame(): arbitrary bytes must
 * be rejected cleanly or decode to a message whose re-encoding is the input
 * itself (the encoding is canonical) and decodes again to the same bytes.
 * msg_decode_head() on the body's first bytes (as rpc.c's sink calls use
 * it) accepts only what msg_decode_frame() accepts, with the same F_DATA
 * length.
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
	int whole = msg_decode_frame(m, data, size);

	if (size >= FRAME_HDR_LEN) {
		uint16_t type, flags;
		uint32_t reqid;
		long bl = frame_parse_header(data, &type, &flags, &reqid);

		if (bl >= 0 && (size_t)bl == size - FRAME_HDR_LEN) {
			size_t body = (size_t)bl, hl = body < 1024 ? body : 1024, off;
			if (msg_decode_head(m2, type, flags, reqid, data + FRAME_HDR_LEN, hl, body,
					    &off) == 0) {
				if (whole != 0 || off > body ||
				    (off < body &&
				     (m2->data != NULL || m2->data_len != m->data_len)))
					abort();
			}
		}
	}
	if (whole == 0) {
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
