/*
 * fuzz_client_state.c - libFuzzer target for the client's own LMDB records
 * that are not the cache index: the hoard entry (client/hoard.c), the
 * saved object state and the forced volume state (client/cstate.c).
 * Arbitrary bytes must be rejected cleanly (-EIO, nothing returned) or
 * decode to values within their bounds. Seeds: tests/fuzz/corpus/fuzz_client_state/, written by
 * tests/unit/test_hoard.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client/cstate.h"
#include "client/hoard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hoard_ent e;
	struct attr a;
	struct dirent_w *ents;
	size_t n;
	char *target;
	enum vol_force f;

	if (cstate_force_decode(data, size, &f) == 0) {
		if (f != VF_DISCONNECT && f != VF_WEAK)
			abort();
	} else if (f != VF_NONE) {
		abort();
	}
	if (hoard_rec_decode(data, size, &e) == 0) {
		if (e.pri == 0 || e.pri > HOARD_PRI_MAX ||
		    (e.flags & ~(uint32_t)(HOARD_CHILDREN | HOARD_DESCENDANTS)) != 0)
			abort();
	}
	if (cstate_obj_decode(data, size, &a, &ents, &n, &target) == 0) {
		if (a.vv.n > VV_MAX || (ents == NULL && n != 0))
			abort();
		for (size_t i = 0; i < n; i++) {
			if (!name_valid(ents[i].name))
				abort();
		}
		if (target != NULL && strlen(target) > TARGET_MAX_LEN)
			abort();
		free(ents);
		free(target);
	} else if (ents != NULL || target != NULL) {
		abort();
	}
	return 0;
}
