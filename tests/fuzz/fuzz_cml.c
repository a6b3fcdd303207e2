/*
 * fuzz_cml.c - libFuzzer target for the CML record codec (common/cml.c):
 * arbitrary bytes, read as a REINTEGRATE batch, as one packed on-disk
 * record and as a COP2_BATCH list, must be rejected cleanly or decode to
 * records (entries) whose re-encoding is the input itself (the encoding is
 * canonical). Seeds: tests/fuzz/corpus/fuzz_cml/, written by
 * tests/unit/test_cml.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cml_rec *r = malloc(sizeof(*r));
	struct wr w;
	struct rd rd;
	size_t n = 0, count = 0;
	int ret;

	wr_init(&w);
	rd_init(&rd, data, size);
	while ((ret = cml_batch_next(&rd, r)) == 1) {
		if (cml_rec_encode(&w, r) != 0)
			abort();
		count++;
	}
	if (ret == 0) {
		/* The whole input decoded: it re-encodes to itself. */
		if (w.len != size || (size > 0 && memcmp(w.buf, data, size) != 0))
			abort();
	} else if (w.len > size || (w.len > 0 && memcmp(w.buf, data, w.len) != 0)) {
		abort();
	}
	ret = cml_batch_check(data, size, 7, CML_BATCH_MAX, &n);
	if (ret == 0 && (n == 0 || n != count || n > CML_BATCH_MAX))
		abort();
	if (ret != 0 && n != 0)
		abort();

	wr_reset(&w);
	if (cml_rec_unpack(data, size, r) == 0) {
		if (cml_rec_pack(&w, r) != 0 || w.len != size || memcmp(w.buf, data, size) != 0)
			abort();
	}

	wr_reset(&w);
	count = 0;
	rd_init(&rd, data, size);
	{
		struct cml_cop2 e;

		while ((ret = cml_cop2_next(&rd, &e)) == 1) {
			cml_cop2_encode(&w, &e);
			count++;
		}
	}
	if (ret == 0 && (w.len != size || (size > 0 && memcmp(w.buf, data, size) != 0)))
		abort();
	ret = cml_cop2_check(data, size, COP2_BATCH_MAX, &n);
	if (ret == 0 && (n == 0 || n != count || n > COP2_BATCH_MAX))
		abort();
	if (ret != 0 && n != 0)
		abort();
	wr_release(&w);
	free(r);
	return 0;
}
