"""Repair of a directory in conflict, over raw sockets against three
encore-servers (the realm of test_5_server_resolve.py). Two sides of a
simulated partition (server 1 | servers 2 and 3) change one directory: the
same name created on both (name/name), a file removed on one side and updated
on the other (remove/update), a rename, removes, creates and a new
subdirectory. RESOLVE marks the directory in conflict; REPAIR --keep N makes
server N's entries the truth and keeps what only the other side holds under
NAME.conflict-server<M>; --keep-all keeps the union, colliding names renamed.
Afterwards every replica has the same entries, contents, vector and
StoreId, and CONFLICTS is empty everywhere (docs/replication.md)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_5_server_resolve import (  # noqa: E402
    ATTR_F_CONFLICT, CONFLICTS, CREATE, REMOVE, REPAIR, REPAIR_KEEP_ALL, REPAIR_KEEP_ONE, RESOLVE,
    RF, S_IFDIR, S_IFREG, attr, cop2, fetch_all, names, realm, store,
    wait_for)  # noqa: F401  (realm: the fixture)
from wire import MSG_RENAME as RENAME, REMOVE_DIR, ST_AGAIN  # noqa: E402

TREE = {"t1": b"t1 before the split", "t2": b"t2 before the split", "t3": b"t3 from side B"}
A, B = [0], [1, 2]


def client_of(idx):
    """Side A's updates come from another client than side B's (StoreIds
    of one client are ordered: resolution reads an earlier one as seen)."""
    return 78 if idx == A else 77


def on(realm, idx, fn):
    """Phase one of an update on the servers idx, then COP2 with their slots."""
    cs = [realm.conn(i) for i in idx]
    sid = (client_of(idx), realm.sid()[1])
    out = [fn(c, sid) for c in cs]
    cop2(cs, sid, sum(1 << i for i in idx))
    for c in cs:
        c.close()
    return out


def mkfile(realm, idx, d, name, data):
    f = (1, os.urandom(16))
    out = on(realm, idx, lambda c, sid: c.call(CREATE, fid=d, fid2=f, name=name, mode=S_IFREG | 0o644,
                                               mflags=1, sid=sid))
    assert all(o["status"] == 0 for o in out), out
    put(realm, idx, f, data)
    return f


def put(realm, idx, f, data):
    out = on(realm, idx, lambda c, sid: store(c, f, data, sid))
    assert all(o["status"] == 0 for o in out), out


def mkdir(realm, idx, d, name):
    f = (1, os.urandom(16))
    out = on(realm, idx, lambda c, sid: c.call(CREATE, fid=d, fid2=f, name=name, mode=S_IFDIR | 0o755,
                                               mflags=1, sid=sid))
    assert all(o["status"] == 0 for o in out), out
    return f


def rm(realm, idx, d, name, flags=0):
    out = on(realm, idx, lambda c, sid: c.call(REMOVE, fid=d, name=name, mflags=flags, sid=sid))
    assert all(o["status"] == 0 for o in out), out


def names_at(realm, i, d):
    c = realm.conn(i)
    try:
        return names(c, d)
    finally:
        c.close()


def mv(realm, idx, d, name, name2):
    out = on(realm, idx, lambda c, sid: c.call(RENAME, fid=d, name=name, fid2=d, name2=name2, mflags=0,
                                               sid=sid))
    assert all(o["status"] == 0 for o in out), out


def conflicted_dir(realm):
    """Directory d in conflict: side A (server 1) and side B (servers 2, 3)
    changed it apart. Returns d's fid and {name: fid} of the objects."""
    d = mkdir(realm, [0, 1, 2], RF, "d")
    f = {}
    for n in ("old", "gone", "gone2", "upd", "mv"):
        f[n] = mkfile(realm, [0, 1, 2], d, n, b"base " + n.encode())
    # tree: a merge (t2 reached servers 1 and 2 only) truncated its logs to a
    # mark, so no log holds the creates of t1 and t2 any more.
    f["tree"] = mkdir(realm, [0, 1, 2], d, "tree")
    f["t1"] = mkfile(realm, [0, 1, 2], f["tree"], "t1", b"t1 before the split")
    f["t2"] = mkfile(realm, [0, 1], f["tree"], "t2", b"t2 before the split")
    c = realm.conn(0)
    assert c.call(RESOLVE, fid=f["tree"], mflags=0)["status"] == 0
    c.close()
    assert wait_for(lambda: all(sorted(names_at(realm, i, f["tree"])) == ["t1", "t2"] for i in range(3)), 10)
    f["xa"] = mkfile(realm, A, d, "x", b"x from side A")
    f["a"] = mkfile(realm, A, d, "a", b"a from side A")
    rm(realm, A, d, "gone")
    put(realm, A, f["upd"], b"upd updated on side A")
    mv(realm, A, d, "mv", "mv2")
    f["sub"] = mkdir(realm, A, d, "sub")
    f["in"] = mkfile(realm, A, f["sub"], "in", b"in a new directory of side A")
    # rm -r tree on side A, a new file in it on side B (remove/update).
    rm(realm, A, f["tree"], "t1")
    rm(realm, A, f["tree"], "t2")
    rm(realm, A, d, "tree", REMOVE_DIR)
    f["t3"] = mkfile(realm, B, f["tree"], "t3", b"t3 from side B")
    f["xb"] = mkfile(realm, B, d, "x", b"x from side B, longer")
    f["b"] = mkfile(realm, B, d, "b", b"b from side B")
    rm(realm, B, d, "gone2")
    rm(realm, B, d, "upd")
    c = realm.conn(2)
    assert c.call(RESOLVE, fid=d, mflags=0)["status"] == 0
    c.close()
    for i in range(3):
        c = realm.conn(i)
        assert attr(c, d)["flags"] & ATTR_F_CONFLICT, i
        c.close()
    return d, f


def check_repaired(realm, d, want):
    """Every replica: d not in conflict, with the same vector, StoreId,
    mode and link count, entries want ({name: contents or a {name: contents} dict for a
    directory}), every object equal everywhere; CONFLICTS empty."""
    cs = [realm.conn(i) for i in range(3)]
    try:
        ad = [attr(c, d) for c in cs]
        assert all(a["flags"] & ATTR_F_CONFLICT == 0 for a in ad), ad
        assert len({(tuple(a["vv"]), a["sid"], a["nlink"], a["mode"]) for a in ad}) == 1, ad
        for c in cs:
            r = c.call(CONFLICTS, fid=RF, name="")
            assert r["status"] == 0 and r["data"] == b"", r

        def walk(dirfid, want, path):
            ns = [names(c, dirfid) for c in cs]
            assert ns[0] == ns[1] == ns[2], (path, ns)
            assert sorted(ns[0]) == sorted(want), "%s: %r, not %r" % (path, sorted(ns[0]), sorted(want))
            for n, v in want.items():
                fid = ns[0][n]
                a = [attr(c, fid) for c in cs]
                assert all(x is not None for x in a), (path, n, a)
                assert len({(tuple(x["vv"]), x["sid"], x["nlink"], x["mode"], x["size"]) for x in a}) == 1, \
                    (path, n, a)
                assert all(x["flags"] & ATTR_F_CONFLICT == 0 for x in a), (path, n, a)
                if isinstance(v, dict):
                    walk(fid, v, path + "/" + n)
                else:
                    assert [fetch_all(c, fid) for c in cs] == [v] * 3, (path, n)
        walk(d, want, "/d")
    finally:
        for c in cs:
            c.close()


def settled(realm, d, want):
    try:
        check_repaired(realm, d, want)
        return True
    except AssertionError:
        return False


def later_merge(realm, d, want, tree):
    """After the repair the repaired subtree merges like any other: t4
    created on server 2 alone, t1 removed on server 1 alone, then RESOLVE."""
    t4 = mkfile(realm, [1], want[tree + "fid"], "t4", b"t4 after the repair")
    rm(realm, [0], want[tree + "fid"], "t1")
    c = realm.conn(2)
    assert c.call(RESOLVE, fid=want[tree + "fid"], mflags=0)["status"] == 0
    c.close()
    del want[tree + "fid"]
    want[tree] = {"t2": TREE["t2"], "t3": TREE["t3"], "t4": b"t4 after the repair"}
    wait_for(lambda: settled(realm, d, want), 10)
    check_repaired(realm, d, want)
    assert names_at(realm, 0, names_at(realm, 0, d)[tree])["t4"] == t4


def test_repair_directory_keep_one(realm):
    d, f = conflicted_dir(realm)
    c = realm.conn(0)
    r = c.call(REPAIR, fid=d, server_id=2, mflags=REPAIR_KEEP_ONE)
    assert r["status"] == 0, r
    assert r["attr"]["fid"] == d and not r["attr"]["flags"] & ATTR_F_CONFLICT
    # Server 2's entries; what only server 1 holds comes along under
    # NAME.conflict-server1 (x: the name/name collision; upd: updated on
    # side A after side B removed it; a and sub: created on side A only).
    # gone2, removed on side B and unchanged on side A since, goes; gone,
    # removed on side A, comes back; mv2 is mv again (the object is kept).
    want = {"old": b"base old", "gone": b"base gone", "mv": b"base mv", "x": b"x from side B, longer",
            "b": b"b from side B", "x.conflict-server1": b"x from side A",
            "upd.conflict-server1": b"upd updated on side A", "a.conflict-server1": b"a from side A",
            "sub.conflict-server1": {"in": b"in a new directory of side A"}, "tree": TREE}
    wait_for(lambda: settled(realm, d, want), 10)
    check_repaired(realm, d, want)
    n = names(c, d)
    assert n["x"] == f["xb"] and n["x.conflict-server1"] == f["xa"] and n["mv"] == f["mv"]
    assert n["sub.conflict-server1"] == f["sub"]
    # The directory takes updates again, on every replica.
    new = mkfile(realm, [0, 1, 2], d, "after", b"after the repair")
    want["after"] = b"after the repair"
    check_repaired(realm, d, want)
    assert names(c, d)["after"] == new
    # Nothing left for a resolution to do.
    assert c.call(RESOLVE, fid=d, mflags=0)["status"] == 0
    check_repaired(realm, d, want)
    want["treefid"] = f["tree"]
    later_merge(realm, d, want, "tree")


def test_repair_directory_keep_all(realm):
    d, f = conflicted_dir(realm)
    c = realm.conn(1)
    r = c.call(REPAIR, fid=d, server_id=0, mflags=REPAIR_KEEP_ALL)
    assert r["status"] == 0, r
    # The union: x, bound to a different object on each side, becomes
    # x.conflict-server1 and x.conflict-server2; the rest keeps its name
    # (a removal on one side of what the other still has is undone; the
    # renamed object keeps its new name, the rename being the later change).
    want = {"old": b"base old", "gone": b"base gone", "gone2": b"base gone2",
            "upd": b"upd updated on side A", "mv2": b"base mv", "a": b"a from side A",
            "b": b"b from side B", "x.conflict-server1": b"x from side A",
            "x.conflict-server2": b"x from side B, longer",
            "sub": {"in": b"in a new directory of side A"}, "tree": TREE}
    wait_for(lambda: settled(realm, d, want), 10)
    check_repaired(realm, d, want)
    n = names(c, d)
    assert n["x.conflict-server1"] == f["xa"] and n["x.conflict-server2"] == f["xb"]
    assert n["mv2"] == f["mv"] and n["upd"] == f["upd"]
    mkfile(realm, [0, 1, 2], d, "after", b"after the repair")
    want["after"] = b"after the repair"
    check_repaired(realm, d, want)
    want["treefid"] = f["tree"]
    later_merge(realm, d, want, "tree")


def test_repair_directory_needs_every_member(realm):
    d, _ = conflicted_dir(realm)
    realm.stop(2)
    c = realm.conn(0)
    r = c.call(REPAIR, fid=d, server_id=1, mflags=REPAIR_KEEP_ONE)
    assert r["status"] == ST_AGAIN, r
    assert attr(c, d)["flags"] & ATTR_F_CONFLICT
    realm.start(2)
    realm.wait_peers_up()
    assert wait_for(lambda: c.call(REPAIR, fid=d, server_id=1, mflags=REPAIR_KEEP_ONE)["status"] == 0, 30)
    want = {"old": b"base old", "gone2": b"base gone2", "upd": b"upd updated on side A",
            "mv2": b"base mv", "x": b"x from side A", "a": b"a from side A",
            "sub": {"in": b"in a new directory of side A"}, "b.conflict-server2": b"b from side B",
            "x.conflict-server2": b"x from side B, longer", "tree.conflict-server2": TREE}
    wait_for(lambda: settled(realm, d, want), 10)
    check_repaired(realm, d, want)


def mkempty(realm, idx, d, names_):
    """Empty files created on the servers idx, one CREATE each (and COP2),
    over one connection per server; {name: fid}."""
    out = {}
    cs = [realm.conn(i) for i in idx]
    for n in names_:
        f = (1, os.urandom(16))
        sid = (client_of(idx), realm.sid()[1])
        for c in cs:
            r = c.call(CREATE, fid=d, fid2=f, name=n, mode=S_IFREG | 0o644, mflags=1, sid=sid)
            assert r["status"] == 0, r
        cop2(cs, sid, sum(1 << i for i in idx))
        out[n] = f
    for c in cs:
        c.close()
    return out


@pytest.mark.parametrize("keep", [2, "all"])
def test_repair_large_directory(realm, keep):
    """Hundreds of entries (the lists' indexes grow several times), 20
    names created on both sides."""
    d = mkdir(realm, [0, 1, 2], RF, "big")
    common = ["n%03d" % i for i in range(80)]
    mkempty(realm, [0, 1, 2], d, common)
    fa = mkempty(realm, A, d, ["a%03d" % i for i in range(60)] + ["c%03d" % i for i in range(20)])
    fb = mkempty(realm, B, d, ["b%03d" % i for i in range(60)] + ["c%03d" % i for i in range(20)])
    c = realm.conn(0)
    assert c.call(RESOLVE, fid=d, mflags=0)["status"] == 0
    assert attr(c, d)["flags"] & ATTR_F_CONFLICT
    if keep == "all":
        r = c.call(REPAIR, fid=d, server_id=0, mflags=REPAIR_KEEP_ALL)
        want = dict.fromkeys(common + ["a%03d" % i for i in range(60)] + ["b%03d" % i for i in range(60)])
        for i in range(20):
            want["c%03d.conflict-server1" % i] = fa["c%03d" % i]
            want["c%03d.conflict-server2" % i] = fb["c%03d" % i]
    else:
        r = c.call(REPAIR, fid=d, server_id=keep, mflags=REPAIR_KEEP_ONE)
        want = dict.fromkeys(common + ["b%03d" % i for i in range(60)])
        for i in range(60):
            want["a%03d.conflict-server1" % i] = fa["a%03d" % i]
        for i in range(20):
            want["c%03d" % i] = fb["c%03d" % i]
            want["c%03d.conflict-server1" % i] = fa["c%03d" % i]
    assert r["status"] == 0, r
    ns = [names_at(realm, i, d) for i in range(3)]
    assert ns[0] == ns[1] == ns[2]
    assert sorted(ns[0]) == sorted(want)
    for n, fid in want.items():
        if fid is not None:
            assert ns[0][n] == fid, n
    cs = [realm.conn(i) for i in range(3)]
    ad = [attr(x, d) for x in cs]
    assert all(a["flags"] & ATTR_F_CONFLICT == 0 for a in ad)
    assert len({(tuple(a["vv"]), a["sid"], a["nlink"]) for a in ad}) == 1, ad
    for x in cs:
        r = x.call(CONFLICTS, fid=RF, name="")
        assert r["status"] == 0 and r["data"] == b"", r
        x.close()


@pytest.mark.parametrize("keep", [1, "all"])
def test_repair_root_name_conflict(realm, keep):
    """The conflict of test_5_server_resolve's test_directory_merge_and_name_
    conflict: x created on server 1 and on server 2 alone, in the volume's
    root, repaired both ways."""
    xa = mkfile(realm, [0], RF, "x", b"x of server 1")
    xb = mkfile(realm, [1], RF, "x", b"x of server 2")
    c = realm.conn(2)
    assert c.call(RESOLVE, fid=RF, mflags=0)["status"] == 0
    assert attr(c, RF)["flags"] & ATTR_F_CONFLICT
    if keep == "all":
        r = c.call(REPAIR, fid=RF, server_id=0, mflags=REPAIR_KEEP_ALL)
        want = {"x.conflict-server1": (xa, b"x of server 1"), "x.conflict-server2": (xb, b"x of server 2")}
    else:
        r = c.call(REPAIR, fid=RF, server_id=keep, mflags=REPAIR_KEEP_ONE)
        want = {"x": (xa, b"x of server 1"), "x.conflict-server2": (xb, b"x of server 2")}
    assert r["status"] == 0, r
    cs = [realm.conn(i) for i in range(3)]
    assert wait_for(lambda: all(names(x) == {n: f for n, (f, _) in want.items()} for x in cs), 10), \
        [names(x) for x in cs]
    for n, (fid, data) in want.items():
        assert wait_for(lambda: all(fetch_all(x, fid) == data for x in cs), 10), n
    ad = [attr(x, RF) for x in cs]
    assert all(not a["flags"] & ATTR_F_CONFLICT for a in ad)
    assert len({(tuple(a["vv"]), a["sid"]) for a in ad}) == 1, ad
    for x in cs + [c]:
        assert x.call(CONFLICTS, fid=RF, name="")["data"] == b""
        x.close()
