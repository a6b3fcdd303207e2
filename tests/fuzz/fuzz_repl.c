/*
 * fuzz_repl.c - libFuzzer target for the decoders of server/repl.c: the
 * first byte picks one, the rest is its input. 0: repl_cop2_decode (a cop2
 * table value; accepted ones hold at most REPL_COP2_MAX * 4 oids); 1:
 * rlog_decode and 2: scan_ent_decode until the end or an error (every
 * accepted record re-encodes to the bytes it came from). Seeds are written
 * by tests/unit/test_repl.c.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "common/log.h"
#include "server/repl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t oids[REPL_COP2_MAX * 4][OID_LEN];
	static bool quiet;
	struct rd r;
	struct wr w;
	uint64_t created;
	size_t n;
	int ret;

	if (!quiet) {
		log_init("fuzz_repl", LOG_CRIT, false); /* malformed records log errors */
		quiet = true;
	}
	if (size == 0)
		return 0;
	rd_init(&r, data + 1, size - 1);
	wr_init(&w);
	switch (data[0]) {
	case 0:
		ret = repl_cop2_decode(data + 1, size - 1, oids, &n, &created);
		if (ret != 0 && ret != -EIO)
			abort();
		if (ret == 0 && n > REPL_COP2_MAX * 4)
			abort();
		break;
	case 1: {
		struct rlog_rec rec;
		while ((ret = rlog_decode(&r, &rec)) == 1) {
			rlog_encode(&w, &rec);
			if (w.len != r.pos || memcmp(w.buf, data + 1, w.len) != 0)
				abort();
		}
		if (ret == 0 && r.pos != size - 1)
			abort();
		break;
	}
	case 2: {
		struct scan_ent e;
		while ((ret = scan_ent_decode(&r, &e)) == 1) {
			scan_ent_encode(&w, &e);
			if (w.len != r.pos || memcmp(w.buf, data + 1, w.len) != 0)
				abort();
		}
		if (ret == 0 && r.pos != size - 1)
			abort();
		break;
	}
	default:
		break;
	}
	wr_release(&w);
	return 0;
}
