/*
 * test_resolve.c - the pure decisions of resolution (server/reslogic.c):
 * file vectors (same, merge, dominant, conflict) and the directory log merge
 * (disjoint creates merge, name/name and rename/remove collide, removals
 * replay before creates, already-present records are not replayed).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "server/reslogic.h"

static struct vv mk(uint32_t a, uint32_t b, uint32_t c)
{
	struct vv v = { .n = 3, .slot = { a, b, c } };
	return v;
}

static void test_same_and_merge(void **state)
{
	struct vv vvs[3] = { mk(1, 1, 1), mk(1, 1, 1), mk(1, 1, 1) }, out;
	struct storeid sids[3] = { { 7, 1 }, { 7, 1 }, { 7, 1 } };
	size_t w;
	(void)state;
	assert_int_equal(res_decide(3, vvs, sids, &w, &out), RES_SAME);
	/* Phase two lost at one replica: equal StoreIds merge with max. */
	vvs[2] = mk(0, 0, 1);
	assert_int_equal(res_decide(3, vvs, sids, &w, &out), RES_MERGE);
	assert_int_equal(out.slot[0], 1);
	assert_int_equal(out.slot[1], 1);
	assert_int_equal(out.slot[2], 1);
}

static void test_dominant(void **state)
{
	struct vv vvs[3] = { mk(1, 1, 1), mk(2, 2, 1), mk(2, 1, 1) }, out;
	struct storeid sids[3] = { { 7, 1 }, { 7, 3 }, { 7, 3 } };
	size_t w;
	(void)state;
	assert_int_equal(res_decide(3, vvs, sids, &w, &out), RES_DOMINANT);
	assert_true(w == 1 || w == 2);
	assert_int_equal(out.slot[0], 2);
	assert_int_equal(out.slot[1], 2);
	assert_int_equal(out.slot[2], 1);
}

static void test_conflict(void **state)
{
	struct vv vvs[3] = { mk(2, 1, 1), mk(1, 2, 1), mk(1, 1, 1) }, out;
	struct storeid sids[3] = { { 7, 2 }, { 8, 2 }, { 7, 1 } };
	size_t w;
	(void)state;
	assert_int_equal(res_decide(3, vvs, sids, &w, &out), RES_CONFLICT);
	/* Equal vectors with different StoreIds are not a dominance either. */
	vvs[0] = mk(1, 1, 1);
	vvs[1] = mk(1, 1, 1);
	assert_int_equal(res_decide(2, vvs, sids, &w, &out), RES_CONFLICT);
}

static void test_superseded_by_same_client(void **state)
{
	/* Server 2 performed the client's create (seq 1) but the client took
	 * it for down (its reply held or lost): no COP2 there, and the store
	 * (seq 2) went to server 1 only. Server 2 is behind, not in conflict. */
	struct vv vvs[2] = { mk(0, 2, 0), mk(0, 0, 1) }, out;
	struct storeid sids[2] = { { 7, 2 }, { 7, 1 } };
	size_t w;
	(void)state;
	assert_int_equal(res_decide(2, vvs, sids, &w, &out), RES_DOMINANT);
	assert_int_equal(w, 0);
	assert_int_equal(out.slot[0], 0);
	assert_int_equal(out.slot[1], 2);
	assert_int_equal(out.slot[2], 1);
	/* The later update from another client: a conflict. */
	sids[1].client = 8;
	assert_int_equal(res_decide(2, vvs, sids, &w, &out), RES_CONFLICT);
	/* One client, an update on each side only: the later one (seq 2) is
	 * that client's later state (it updates one object at a time). */
	sids[1].client = 7;
	vvs[0] = mk(1, 2, 1);
	vvs[1] = mk(2, 1, 1);
	assert_int_equal(res_decide(2, vvs, sids, &w, &out), RES_DOMINANT);
	assert_int_equal(w, 0);
	/* ... also when the earlier side performed two alone. */
	vvs[1] = mk(3, 1, 1);
	assert_int_equal(res_decide(2, vvs, sids, &w, &out), RES_DOMINANT);
	assert_int_equal(w, 0);
	/* ... but not when the later one comes from another client. */
	sids[0].client = 8;
	assert_int_equal(res_decide(2, vvs, sids, &w, &out), RES_CONFLICT);
	sids[0].client = 7;
	/* Ahead in two slots: updates the winner's client never saw. */
	vvs[0] = mk(0, 2, 0);
	sids[1].client = 7;
	vvs[1] = mk(1, 0, 1);
	assert_int_equal(res_decide(2, vvs, sids, &w, &out), RES_CONFLICT);
}

static void test_remove_update(void **state)
{
	struct rlog_rec rm;
	struct vv vv = mk(3, 4, 3);
	struct storeid sid = { 7, 10 };
	(void)state;
	memset(&rm, 0, sizeof(rm));
	rm.op = RLOG_REMOVE;
	rm.vv = mk(4, 3, 4);
	rm.sid.client = 7;
	rm.sid.seq = 12;
	/* The remover's own earlier store, phase two lost here: no conflict. */
	assert_false(res_remove_update(&vv, &sid, &rm));
	/* Another client's update the remover never saw: remove/update. */
	sid.client = 8;
	assert_true(res_remove_update(&vv, &sid, &rm));
	/* A copy the remover had seen (dominated) is no conflict whoever wrote it. */
	vv = mk(3, 3, 3);
	assert_false(res_remove_update(&vv, &sid, &rm));
}

static struct rlog_rec rec(uint8_t op, const char *name, uint8_t child, uint64_t seq)
{
	struct rlog_rec r;
	memset(&r, 0, sizeof(r));
	r.op = op;
	snprintf(r.name, sizeof(r.name), "%s", name);
	r.child[OID_LEN - 1] = child;
	r.mode = S_IFREG | 0644;
	r.sid.client = 9;
	r.sid.seq = seq;
	return r;
}

static void view(struct res_dirview *v, const struct rlog_rec *log, size_t n,
		 char (*names)[NAME_MAX_LEN + 1], uint8_t (*oids)[OID_LEN], size_t n_ents)
{
	v->log = log;
	v->n_log = n;
	v->names = (const char(*)[NAME_MAX_LEN + 1]) names;
	v->oids = (const uint8_t(*)[OID_LEN])oids;
	v->n_ents = n_ents;
}

static void test_disjoint_creates_merge(void **state)
{
	struct rlog_rec a[2] = { rec(RLOG_CREATE, "common", 1, 1), rec(RLOG_CREATE, "a", 2, 2) };
	struct rlog_rec b[2] = { rec(RLOG_CREATE, "common", 1, 1), rec(RLOG_CREATE, "b", 3, 3) };
	char na[2][NAME_MAX_LEN + 1] = { "common", "a" },
				  nb[2][NAME_MAX_LEN + 1] = { "common", "b" };
	uint8_t oa[2][OID_LEN] = { { [15] = 1 }, { [15] = 2 } },
		ob[2][OID_LEN] = { { [15] = 1 }, { [15] = 3 } };
	struct res_dirview v[2];
	struct rlog_rec o0[4], o1[4], *out[2] = { o0, o1 };
	size_t n_out[2];
	(void)state;
	view(&v[0], a, 2, na, oa, 2);
	view(&v[1], b, 2, nb, ob, 2);
	assert_false(res_dir_merge(2, v, out, n_out));
	assert_int_equal(n_out[0], 1);
	assert_string_equal(o0[0].name, "b");
	assert_int_equal(n_out[1], 1);
	assert_string_equal(o1[0].name, "a");
}

static void test_name_name_conflict(void **state)
{
	struct rlog_rec a[1] = { rec(RLOG_CREATE, "x", 1, 1) };
	struct rlog_rec b[1] = { rec(RLOG_CREATE, "x", 2, 2) };
	char na[1][NAME_MAX_LEN + 1] = { "x" }, nb[1][NAME_MAX_LEN + 1] = { "x" };
	uint8_t oa[1][OID_LEN] = { { [15] = 1 } }, ob[1][OID_LEN] = { { [15] = 2 } };
	struct res_dirview v[2];
	struct rlog_rec o0[4], o1[4], *out[2] = { o0, o1 };
	size_t n_out[2];
	(void)state;
	view(&v[0], a, 1, na, oa, 1);
	view(&v[1], b, 1, nb, ob, 1);
	assert_true(res_dir_merge(2, v, out, n_out));
}

static void test_remove_then_recreate_replays_in_order(void **state)
{
	/* Replica 0 removed "x" (child 1) and created "x" again (child 2);
	 * replica 1 still has the old "x". */
	struct rlog_rec a[3] = { rec(RLOG_CREATE, "x", 1, 1), rec(RLOG_REMOVE, "x", 1, 2),
				 rec(RLOG_CREATE, "x", 2, 3) };
	struct rlog_rec b[1] = { rec(RLOG_CREATE, "x", 1, 1) };
	char na[1][NAME_MAX_LEN + 1] = { "x" }, nb[1][NAME_MAX_LEN + 1] = { "x" };
	uint8_t oa[1][OID_LEN] = { { [15] = 2 } }, ob[1][OID_LEN] = { { [15] = 1 } };
	struct res_dirview v[2];
	struct rlog_rec o0[4], o1[4], *out[2] = { o0, o1 };
	size_t n_out[2];
	(void)state;
	view(&v[0], a, 3, na, oa, 1);
	view(&v[1], b, 1, nb, ob, 1);
	assert_false(res_dir_merge(2, v, out, n_out));
	assert_int_equal(n_out[0], 0);
	assert_int_equal(n_out[1], 2);
	assert_int_equal(o1[0].op, RLOG_REMOVE);
	assert_int_equal(o1[1].op, RLOG_CREATE);
}

static void test_undone_bind_not_replayed(void **state)
{
	/* Replica 0 created "x" and removed it again; replica 1's log was
	 * truncated since (it lacks both records) and it never had "x": the
	 * merge must not bring "x" back there. */
	struct rlog_rec a[3] = { rec(RLOG_CREATE, "x", 1, 1), rec(RLOG_REMOVE, "x", 1, 2),
				 rec(RLOG_CREATE, "y", 2, 3) };
	char na[1][NAME_MAX_LEN + 1] = { "y" };
	uint8_t oa[1][OID_LEN] = { { [15] = 2 } };
	struct res_dirview v[2];
	struct rlog_rec o0[4], o1[4], *out[2] = { o0, o1 };
	size_t n_out[2];
	(void)state;
	view(&v[0], a, 3, na, oa, 1);
	view(&v[1], NULL, 0, NULL, NULL, 0);
	assert_false(res_dir_merge(2, v, out, n_out));
	assert_int_equal(n_out[0], 0);
	assert_int_equal(n_out[1], 2);
	assert_int_equal(o1[0].op, RLOG_REMOVE);
	assert_int_equal(o1[1].op, RLOG_CREATE);
	assert_string_equal(o1[1].name, "y");
}

static void test_rebind_seen_by_one_replica(void **state)
{
	/* "n" was bound to 1 (U1), then a rename replaced it by 2 (U2: remove
	 * of 1 and bind of 2). Replica 0 missed both, replica 1 has only U1,
	 * replica 2 has both: no conflict; replica 0 gets only the bind of 2,
	 * replica 1 the remove of 1 and the bind of 2. */
	struct rlog_rec l1[1] = { rec(RLOG_RENAME_IN, "n", 1, 1) };
	struct rlog_rec l2[3] = { rec(RLOG_RENAME_IN, "n", 1, 1), rec(RLOG_REMOVE, "n", 1, 2),
				  rec(RLOG_RENAME_IN, "n", 2, 2) };
	char n1[1][NAME_MAX_LEN + 1] = { "n" }, n2[1][NAME_MAX_LEN + 1] = { "n" };
	uint8_t o1[1][OID_LEN] = { { [15] = 1 } }, o2[1][OID_LEN] = { { [15] = 2 } };
	struct res_dirview v[3];
	struct rlog_rec r0[8], r1[8], r2[8], *out[3] = { r0, r1, r2 };
	size_t n_out[3];
	(void)state;
	view(&v[0], NULL, 0, NULL, NULL, 0);
	view(&v[1], l1, 1, n1, o1, 1);
	view(&v[2], l2, 3, n2, o2, 1);
	assert_false(res_dir_merge(3, v, out, n_out));
	assert_int_equal(n_out[0], 2); /* the remove of 1 (nothing there) and the bind of 2 */
	assert_int_equal(r0[0].op, RLOG_REMOVE);
	assert_int_equal(r0[1].op, RLOG_RENAME_IN);
	assert_int_equal(r0[1].child[OID_LEN - 1], 2);
	assert_int_equal(n_out[1], 2);
	assert_int_equal(r1[0].op, RLOG_REMOVE);
	assert_int_equal(r1[1].child[OID_LEN - 1], 2);
	assert_int_equal(n_out[2], 0);
}

static void test_bind_undone_after_partial_truncation(void **state)
{
	/* A merge truncated replica 0's log but not replica 1's (killed before
	 * the second step): replica 1 still holds the old create of "x"
	 * (seq 1); since then replica 0 removed "x" (seq 5, the same client)
	 * while replica 1 was away. "x" stays removed on both. */
	struct rlog_rec a[1] = { rec(RLOG_REMOVE, "x", 1, 5) };
	struct rlog_rec b[1] = { rec(RLOG_CREATE, "x", 1, 1) };
	char nb[1][NAME_MAX_LEN + 1] = { "x" };
	uint8_t ob[1][OID_LEN] = { { [15] = 1 } };
	struct res_dirview v[2];
	struct rlog_rec o0[4], o1[4], *out[2] = { o0, o1 };
	size_t n_out[2];
	(void)state;
	view(&v[0], a, 1, NULL, NULL, 0);
	view(&v[1], b, 1, nb, ob, 1);
	assert_false(res_dir_merge(2, v, out, n_out));
	assert_int_equal(n_out[0], 0);
	assert_int_equal(n_out[1], 1);
	assert_int_equal(o1[0].op, RLOG_REMOVE);
}

static void test_merge_starts_at_common_mark(void **state)
{
	/* A merge (mark 9) reached both replicas; its truncation only replica
	 * 0. Replica 1 still has the records before the mark (create and
	 * remove of "x", create of "y"); after it, replica 0 removed "y".
	 * Nothing before the mark is replayed: "x" does not come back at
	 * replica 0, "y"'s removal reaches replica 1. */
	struct rlog_rec m = rec(RLOG_MARK, "", 0, 9);
	struct rlog_rec a[2] = { m, rec(RLOG_REMOVE, "y", 2, 10) };
	struct rlog_rec b[4] = { rec(RLOG_CREATE, "x", 1, 1), rec(RLOG_CREATE, "y", 2, 3),
				 rec(RLOG_REMOVE, "x", 1, 4), m };
	char nb[1][NAME_MAX_LEN + 1] = { "y" };
	uint8_t ob[1][OID_LEN] = { { [15] = 2 } };
	struct res_dirview v[2];
	struct rlog_rec o0[8], o1[8], *out[2] = { o0, o1 };
	size_t n_out[2];
	(void)state;
	b[0].sid.client = b[1].sid.client = b[2].sid.client = 5; /* another client */
	view(&v[0], a, 2, NULL, NULL, 0);
	view(&v[1], b, 4, nb, ob, 1);
	assert_false(res_dir_merge(2, v, out, n_out));
	assert_int_equal(n_out[0], 0);
	assert_int_equal(n_out[1], 1);
	assert_int_equal(o1[0].op, RLOG_REMOVE);
	assert_string_equal(o1[0].name, "y");
}

static void test_rename_vs_remove_conflict(void **state)
{
	struct rlog_rec a[1] = { rec(RLOG_RENAME_OUT, "x", 1, 5) };
	struct rlog_rec b[1] = { rec(RLOG_REMOVE, "x", 1, 6) };
	struct res_dirview v[2];
	struct rlog_rec o0[4], o1[4], *out[2] = { o0, o1 };
	size_t n_out[2];
	(void)state;
	view(&v[0], a, 1, NULL, NULL, 0);
	view(&v[1], b, 1, NULL, NULL, 0);
	assert_true(res_dir_merge(2, v, out, n_out));
}

static void test_rlog_codec(void **state)
{
	struct rlog_rec r = rec(RLOG_LINK, "name", 4, 77), o;
	struct wr w;
	struct rd rd;
	(void)state;
	r.vv = mk(1, 2, 3);
	wr_init(&w);
	rlog_encode(&w, &r);
	rd_init(&rd, w.buf, w.len);
	assert_int_equal(rlog_decode(&rd, &o), 1);
	assert_int_equal(rlog_decode(&rd, &o), 0);
	rd_init(&rd, w.buf, w.len);
	assert_int_equal(rlog_decode(&rd, &o), 1);
	assert_string_equal(o.name, "name");
	assert_int_equal(o.vv.slot[2], 3);
	for (size_t cut = 1; cut < w.len; cut++) {
		rd_init(&rd, w.buf, cut);
		assert_int_equal(rlog_decode(&rd, &o), -EPROTO);
	}
	wr_release(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_and_merge),
		cmocka_unit_test(test_dominant),
		cmocka_unit_test(test_conflict),
		cmocka_unit_test(test_disjoint_creates_merge),
		cmocka_unit_test(test_name_name_conflict),
		cmocka_unit_test(test_remove_then_recreate_replays_in_order),
		cmocka_unit_test(test_rename_vs_remove_conflict),
		cmocka_unit_test(test_superseded_by_same_client),
		cmocka_unit_test(test_remove_update),
		cmocka_unit_test(test_undone_bind_not_replayed),
		cmocka_unit_test(test_bind_undone_after_partial_truncation),
		cmocka_unit_test(test_rebind_seen_by_one_replica),
		cmocka_unit_test(test_merge_starts_at_common_mark),
		cmocka_unit_test(test_rlog_codec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
