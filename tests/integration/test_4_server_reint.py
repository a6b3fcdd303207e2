"""Server side of reintegration over raw sockets (docs/disconnected.md):
REINTEGRATE batches of CML records, STORE_REINT uploads, conflicts reported
per record while the rest applies, idempotent re-sends (also across a kill -9
of the server), malformed batches."""
import os
import shutil
import struct
import subprocess
import tempfile

import pytest

import wire
from wire import (MSG_COP2_BATCH, MSG_CREATE, MSG_FETCH, MSG_GETATTR, MSG_GETROOT, MSG_LOOKUP,
                  MSG_READDIR, MSG_REMOVE, MSG_STORE, MSG_VOLINFO, S_IFDIR, S_IFLNK, S_IFREG,
                  SA_MODE, ST_INVAL, ST_NOENT, ST_OK, ST_PROTO, STORE_FIRST, STORE_LAST,
                  call_acked, cml_create, cml_link, cml_remove, cml_rename, cml_setattr,
                  cml_store, cml_ver, cml_ver_of, reintegrate, store_reint)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.environ.get("ENCORE_SERVER") or os.path.join(
    os.environ.get("ENCORE_BIN") or os.path.join(ROOT, "build", "bin"), "encore-server")
CRED = (0, 0, [])


@pytest.fixture
def server():
    d = tempfile.mkdtemp(prefix="encore-reint-")
    subprocess.run([SERVER, "init", "--dir", d, "--server-id", "1", "--realm", "test",
                    "--root-mode", "1777"], check=True)

    class S:
        proc = None
        port = None

        def start(self):
            rfd, wfd = os.pipe()
            self.proc = subprocess.Popen(
                [SERVER, "--dir", d, "--listen", "127.0.0.1:%d" % (self.port or 0),
                 "--ready-fd", str(wfd), "--port-file", d + "/port"], pass_fds=(wfd,))
            os.close(wfd)
            assert os.read(rfd, 1) == b"\n"
            os.close(rfd)
            self.port = int(open(d + "/port").read())

        def kill9(self):
            self.proc.kill()
            self.proc.wait(10)

    s = S()
    s.dir = d
    s.start()
    yield s
    if s.proc.poll() is None:
        s.proc.terminate()
        assert s.proc.wait(10) == 0
    if not os.environ.get("ENCORE_TEST_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


def connect(port):
    c = wire.Conn(port)
    c.hello(realm="test")
    return c


def new_client_id():
    return int.from_bytes(os.urandom(8), "little") | 1


def root(c):
    r = call_acked(c, MSG_GETROOT, cred=CRED, realm="test")
    assert r["status"] == ST_OK
    return r["attr"]["fid"]


def new_fid(vol):
    return (vol, os.urandom(16))


def mk(c, d, name, mode, sid=(0, 0)):
    f = new_fid(d[0])
    r = call_acked(c, MSG_CREATE, cred=CRED, fid=d, fid2=f, name=name, mode=mode, mflags=1, sid=sid)
    assert r["status"] == ST_OK, r
    return f, r["attr"]


def store(c, f, data, handle=1):
    r = call_acked(c, MSG_STORE, cred=CRED, fid=f, offset=0, length=len(data), handle=handle,
                   mflags=STORE_FIRST | STORE_LAST, data=data)
    assert r["status"] == ST_OK, r
    return r["attr"]


def lookup(c, d, name):
    return call_acked(c, MSG_LOOKUP, cred=CRED, fid=d, name=name)


def getattr_(c, f):
    r = call_acked(c, MSG_GETATTR, cred=CRED, fid=f)
    assert r["status"] == ST_OK, r
    return r["attr"]


def fetch(c, f):
    r = call_acked(c, MSG_FETCH, cred=CRED, fid=f, offset=0, length=1 << 20)
    assert r["status"] == ST_OK, r
    return r["data"]


def names(c, d):
    r = call_acked(c, MSG_READDIR, cred=CRED, fid=d, name="", length=1 << 16)
    assert r["status"] == ST_OK, r
    return sorted(n for n, _, _ in wire.dirents(r["data"]))


def stamp(c, vol):
    r = call_acked(c, MSG_VOLINFO, cred=CRED, fid=(vol, bytes(16)))
    assert r["status"] == ST_OK
    return r["stamp"]


def test_batch_applies_and_is_visible(server):
    c = connect(server.port)
    r = root(c)
    vol = r[0]
    d, _ = mk(c, r, "d", S_IFDIR | 0o755)
    x, _ = mk(c, d, "x", S_IFREG | 0o644)
    xa = store(c, x, b"old x")
    cid = new_client_id()
    s, a, b, cf, lk = (new_fid(vol) for _ in range(5))
    # An upload for a, which does not exist yet: kept under the handle for a
    # batch that creates a (nothing is checked before the store record).
    assert store_reint(c, a, b"hello A", 11)["status"] == ST_OK
    # Upload for x: kept under the handle, the file does not change.
    assert store_reint(c, x, b"new x contents", 12)["status"] == ST_OK
    assert fetch(c, x) == b"old x"
    assert getattr_(c, x)["dv"] == xa["dv"]
    before = stamp(c, vol)

    recs = [
        cml_create((cid, 1), d, "s", s, S_IFDIR | 0o755),
        cml_create((cid, 2), s, "a", a, S_IFREG | 0o644),
        cml_create((cid, 3), d, "b", b, S_IFREG | 0o600),
        cml_rename((cid, 4), d, "b", s, "b2", b),
        cml_store((cid, 5), x, 12, 14, mtime=(1600000000, 5), ver=cml_ver_of(xa)),
        cml_create((cid, 6), d, "c", cf, S_IFREG | 0o644),
        cml_remove((cid, 7), d, "c", cf, ver=cml_ver(sid=(cid, 6))),
        cml_create((cid, 8), s, "l", lk, S_IFLNK | 0o777, target="a"),
        cml_setattr((cid, 9), x, (SA_MODE, 0o600, 0, 0, 0, (0, 0), (0, 0)),
                    ver=cml_ver(sid=(cid, 5))),
        cml_link((cid, 10), d, "a-link", a),
    ]
    st, sts, after = reintegrate(c, vol, recs)
    assert st == ST_OK
    assert sts == [0] * len(recs)
    assert after == before + len(recs)

    # A store of a file created in this log: its upload after the create.
    # Its basis is the last record that changed a: the link (cid, 10).
    assert store_reint(c, a, b"hello A", 11)["status"] == ST_OK
    st, sts, _ = reintegrate(c, vol, [cml_store((cid, 11), a, 11, 7, ver=cml_ver(sid=(cid, 2)))])
    assert (st, sts) == (ST_OK, [wire.ST_VERSION])
    assert store_reint(c, a, b"hello A", 11)["status"] == ST_OK
    st, sts, _ = reintegrate(c, vol, [cml_store((cid, 12), a, 11, 7, ver=cml_ver(sid=(cid, 10)))])
    assert (st, sts) == (ST_OK, [0])

    c2 = connect(server.port)  # another client sees it all through normal calls
    assert names(c2, d) == ["a-link", "s", "x"]
    assert names(c2, s) == ["a", "b2", "l"]
    assert fetch(c2, a) == b"hello A"
    xa2 = getattr_(c2, x)
    assert fetch(c2, x) == b"new x contents"
    assert xa2["size"] == 14 and xa2["mode"] & 0o7777 == 0o600
    assert xa2["mtime"] == (1600000000, 5)
    assert xa2["sid"] == (cid, 9)
    assert getattr_(c2, a)["nlink"] == 2
    assert getattr_(c2, b)["mode"] & 0o7777 == 0o600
    assert lookup(c2, d, "c")["status"] == ST_NOENT
    assert lookup(c2, d, "b")["status"] == ST_NOENT
    c.close()
    c2.close()


def upload_chunks(c, f, data, handle, chunk):
    """STORE_REINT upload in chunks of chunk bytes (STORE_REINT on each)."""
    off = 0
    while True:
        part = data[off:off + chunk]
        last = off + len(part) >= len(data)
        fl = wire.STORE_REINT | (STORE_FIRST if off == 0 else 0) | (STORE_LAST if last else 0)
        r = call_acked(c, MSG_STORE, cred=CRED, fid=f, offset=off, length=len(data),
                       handle=handle, mflags=fl, data=part)
        if r["status"] != ST_OK or last:
            return r
        off += len(part)


def test_create_and_store_in_one_batch(server):
    """Uploads for objects the batch creates go before the batch: a small
    one (kept in memory, installed inline), one of 100 KiB and one of
    700 KiB in two chunks (temp files, installed as containers)."""
    c = connect(server.port)
    r = root(c)
    vol = r[0]
    cid = new_client_id()
    d = new_fid(vol)
    files = [(new_fid(vol), b"small " * 100), (new_fid(vol), os.urandom(100 * 1024)),
             (new_fid(vol), os.urandom(700 * 1024)), (new_fid(vol), b"")]
    for i, (f, data) in enumerate(files):
        assert upload_chunks(c, f, data, 100 + i, 400 * 1024)["status"] == ST_OK
    assert lookup(c, r, "cs")["status"] == ST_NOENT  # nothing is there yet
    recs, seq = [cml_create((cid, 1), r, "cs", d, S_IFDIR | 0o755)], 2
    for i, (f, data) in enumerate(files):
        recs.append(cml_create((cid, seq), d, "f%d" % i, f, S_IFREG | 0o644))
        recs.append(cml_store((cid, seq + 1), f, 100 + i, len(data), mtime=(1600000000, i),
                              ver=cml_ver(sid=(cid, seq))))
        seq += 2
    # A store whose create fails (the name is taken): a conflict, the rest applies.
    taken = new_fid(vol)
    mk(c, r, "cs-taken", S_IFREG | 0o644)
    assert store_reint(c, taken, b"lost", 200)["status"] == ST_OK
    recs += [cml_create((cid, seq), r, "cs-taken", taken, S_IFREG | 0o644),
             cml_store((cid, seq + 1), taken, 200, 4, ver=cml_ver(sid=(cid, seq)))]
    st, sts, _ = reintegrate(c, vol, recs)
    assert st == ST_OK
    assert sts == [0] * (1 + 2 * len(files)) + [wire.ST_EXIST, ST_NOENT]
    c2 = connect(server.port)
    assert names(c2, d) == ["f%d" % i for i in range(len(files))]
    for i, (f, data) in enumerate(files):
        a = getattr_(c2, f)
        assert (a["size"], a["sid"], a["mtime"]) == (len(data), (cid, 3 + 2 * i),
                                                     (1600000000, i))
        assert fetch(c2, f) == data if len(data) <= 1 << 19 else fetch(c2, f)[:64] == data[:64]
    assert lookup(c2, r, "cs-taken")["attr"]["fid"] != taken
    # Re-sent (a client that crashed before the reply): nothing twice, no upload needed.
    st, sts, _ = reintegrate(c, vol, recs)
    assert sts == [1] * (1 + 2 * len(files)) + [wire.ST_EXIST, ST_NOENT]
    c.close()
    c2.close()


def test_upload_ahead_bounds(server):
    """Uploads a connection holds: STORES_MAX in all, STORES_FILE_MAX of them
    in temp files (larger than STORE_SMALL_MAX); a REINT chunk that is not
    the first of a known upload is refused; an aborted upload is gone."""
    c = connect(server.port)
    vol = root(c)[0]
    for h in range(1, wire.STORES_FILE_MAX + 1):
        assert store_reint(c, new_fid(vol), b"x" * (wire.STORE_SMALL_MAX + 1), h)["status"] == ST_OK
    assert store_reint(c, new_fid(vol), b"x" * (wire.STORE_SMALL_MAX + 1),
                       1000)["status"] == wire.ST_BUSY
    for h in range(wire.STORES_FILE_MAX + 1, wire.STORES_MAX + 1):
        assert store_reint(c, new_fid(vol), b"small", h)["status"] == ST_OK
    assert store_reint(c, new_fid(vol), b"small", 1000)["status"] == wire.ST_BUSY
    # The same handle again replaces its upload.
    assert store_reint(c, new_fid(vol), b"again", wire.STORES_MAX)["status"] == ST_OK
    f = new_fid(vol)
    assert call_acked(c, MSG_STORE, cred=CRED, fid=f, offset=5, length=10, handle=5000,
                      mflags=wire.STORE_REINT | STORE_LAST, data=b"tail!")["status"] == wire.ST_BADF
    assert call_acked(c, MSG_STORE, cred=CRED, fid=f, offset=0, length=0, handle=1,
                      mflags=wire.STORE_ABORT | wire.STORE_REINT)["status"] in (ST_OK, ST_NOENT)
    assert store_reint(c, new_fid(vol), b"small", 1000)["status"] == ST_OK
    c.close()


def cop2_list(entries):
    return b"".join(struct.pack("<QQI", cl, seq, mask) for (cl, seq), mask in entries)


def test_cop2_batch():
    """COP2_BATCH on a replica of a 3-member VSG (its peers never run): each
    listed update raises the other members' slots of its objects once; a
    repeat, an unknown StoreId or a malformed list changes nothing."""
    d = tempfile.mkdtemp(prefix="encore-cop2b-")
    subprocess.run([SERVER, "init", "--dir", d, "--server-id", "1", "--realm", "test",
                    "--root-mode", "1777", "--vsg", "1,2,3"], check=True)
    rfd, wfd = os.pipe()
    p = subprocess.Popen([SERVER, "--dir", d, "--listen", "127.0.0.1:0", "--ready-fd", str(wfd),
                          "--port-file", d + "/port"], pass_fds=(wfd,))
    os.close(wfd)
    assert os.read(rfd, 1) == b"\n"
    os.close(rfd)
    try:
        c = connect(int(open(d + "/port").read()))
        r = root(c)
        vol = r[0]
        cid = new_client_id()
        f1, a1 = mk(c, r, "c1", S_IFREG | 0o644, sid=(cid, 1))
        f2, a2 = mk(c, r, "c2", S_IFREG | 0o644, sid=(cid, 2))
        assert a1["vv"] == [1, 0, 0] and a2["vv"] == [1, 0, 0]
        vr = (vol, bytes(16))
        ent = [((cid, 1), 0b111), ((cid, 2), 0b011), ((cid, 99), 0b111)]
        for bad in (b"", cop2_list(ent)[:-1], cop2_list([((0, 1), 1)]),
                    cop2_list([((cid, 1), 0)]), cop2_list([((cid, 1), 1 << 8)]),
                    cop2_list([((cid, 1), 1)] * (wire.CML_BATCH_MAX + 1))):
            assert call_acked(c, MSG_COP2_BATCH, fid=vr, data=bad)["status"] in (ST_PROTO,
                                                                                 ST_INVAL)
        assert getattr_(c, f1)["vv"] == [1, 0, 0]
        assert call_acked(c, MSG_COP2_BATCH, fid=vr, data=cop2_list(ent))["status"] == ST_OK
        assert getattr_(c, f1)["vv"] == [1, 1, 1]
        assert getattr_(c, f2)["vv"] == [1, 1, 0]
        assert call_acked(c, MSG_COP2_BATCH, fid=vr, data=cop2_list(ent))["status"] == ST_OK
        assert getattr_(c, f1)["vv"] == [1, 1, 1]
        assert getattr_(c, f2)["vv"] == [1, 1, 0]
        c.close()
    finally:
        p.terminate()
        assert p.wait(10) == 0


def test_resent_batch_is_not_applied_twice(server):
    c = connect(server.port)
    r = root(c)
    vol = r[0]
    cid = new_client_id()
    d, f = new_fid(vol), new_fid(vol)
    recs = [cml_create((cid, 5), r, "rd", d, S_IFDIR | 0o755),
            cml_create((cid, 6), d, "f", f, S_IFREG | 0o644),
            cml_store((cid, 7), f, 1, 3, ver=cml_ver(sid=(cid, 6)))]
    # The store's data can only be uploaded once f exists: first the creates.
    st, sts, _ = reintegrate(c, vol, recs[:2])
    assert sts == [0, 0]
    assert store_reint(c, f, b"abc", 1)["status"] == ST_OK
    st, sts, s1 = reintegrate(c, vol, recs)
    assert sts == [1, 1, 0]
    st, sts, s2 = reintegrate(c, vol, recs)
    assert sts == [1, 1, 1] and s2 == s1
    # On a new connection (the upload handle is gone) it is still recognised.
    c.close()
    c = connect(server.port)
    st, sts, s3 = reintegrate(c, vol, recs)
    assert sts == [1, 1, 1] and s3 == s1
    assert names(c, d) == ["f"]
    assert fetch(c, f) == b"abc"
    # Stored once: the version named after that store's StoreId, and the
    # same on every later look (not bumped by the resent batches).
    dv = getattr_(c, f)["dv"]
    assert dv >= 1 << 62 and getattr_(c, f)["dv"] == dv
    c.close()


def test_conflict_reported_rest_applies(server):
    c = connect(server.port)
    r = root(c)
    vol = r[0]
    x, _ = mk(c, r, "cx", S_IFREG | 0o644)
    xa = store(c, x, b"base")
    z, za = mk(c, r, "cz", S_IFREG | 0o644)
    c.close()

    other = connect(server.port)  # another client changes x and z meanwhile
    store(other, x, b"theirs")
    call_acked(other, wire.MSG_SETATTR, cred=CRED, fid=z,
               sattr=(SA_MODE, 0o640, 0, 0, 0, (0, 0), (0, 0)), sid=(99, 1))
    other.close()

    c = connect(server.port)
    cid = new_client_id()
    y = new_fid(vol)
    assert store_reint(c, x, b"mine", 3)["status"] == ST_OK
    recs = [cml_store((cid, 1), x, 3, 4, ver=cml_ver_of(xa)),
            cml_create((cid, 2), r, "cy", y, S_IFREG | 0o644),
            cml_setattr((cid, 3), x, (SA_MODE, 0o600, 0, 0, 0, (0, 0), (0, 0)), ver=cml_ver_of(xa)),
            cml_remove((cid, 4), r, "cz", z, ver=cml_ver_of(za))]
    st, sts, _ = reintegrate(c, vol, recs)
    assert st == ST_OK
    assert sts == [wire.ST_VERSION, 0, wire.ST_VERSION, wire.ST_VERSION]
    assert fetch(c, x) == b"theirs"
    assert getattr_(c, x)["mode"] & 0o7777 == 0o644
    assert lookup(c, r, "cy")["status"] == ST_OK
    assert lookup(c, r, "cz")["status"] == ST_OK
    # The conflicting upload was dropped; a re-send answers the same statuses.
    st, sts, _ = reintegrate(c, vol, recs)
    assert sts == [wire.ST_VERSION, 1, wire.ST_VERSION, wire.ST_VERSION]
    c.close()


def test_create_into_removed_directory(server):
    c = connect(server.port)
    r = root(c)
    vol = r[0]
    e, _ = mk(c, r, "e", S_IFDIR | 0o755)
    file_, _ = mk(c, r, "plain", S_IFREG | 0o644)
    taken, _ = mk(c, r, "taken", S_IFREG | 0o644)
    c.close()
    other = connect(server.port)
    assert call_acked(other, MSG_REMOVE, cred=CRED, fid=r, name="e", mflags=1,
                      sid=(98, 1))["status"] == ST_OK
    other.close()

    c = connect(server.port)
    cid = new_client_id()
    f1, f2, f3, f4 = (new_fid(vol) for _ in range(4))
    recs = [cml_create((cid, 1), e, "f", f1, S_IFREG | 0o644),
            cml_create((cid, 2), file_, "f", f2, S_IFREG | 0o644),
            cml_create((cid, 3), r, "taken", f3, S_IFREG | 0o644),
            cml_create((cid, 4), r, "g", f4, S_IFREG | 0o644),
            cml_rename((cid, 5), r, "g", r, "taken", f4)]
    st, sts, _ = reintegrate(c, vol, recs)
    assert st == ST_OK
    assert sts == [ST_NOENT, wire.ST_NOTDIR, wire.ST_EXIST, 0, wire.ST_EXIST]
    assert lookup(c, r, "g")["attr"]["fid"] == f4
    assert lookup(c, r, "taken")["attr"]["fid"] == taken
    # The rename again, naming the object it replaces at its version: applies.
    ta = getattr_(c, taken)
    st, sts, _ = reintegrate(c, vol, [cml_rename((cid, 6), r, "g", r, "taken", f4, fid2=taken,
                                                 ver2=cml_ver_of(ta))])
    assert sts == [0]
    assert lookup(c, r, "taken")["attr"]["fid"] == f4
    # A renamed file keeps the StoreId of its last own update (its create):
    # the rename changed the directories, not it (server/ops.c bump_link).
    assert getattr_(c, f4)["sid"] == (cid, 4)
    c.close()


def test_kill9_after_reply_then_resend(server):
    c = connect(server.port)
    r = root(c)
    vol = r[0]
    x, _ = mk(c, r, "kx", S_IFREG | 0o644)
    xa = store(c, x, b"v1")
    cid = new_client_id()
    d, f = new_fid(vol), new_fid(vol)
    big = os.urandom(700 * 1024)  # a container, in two chunks
    h = 77
    call_acked(c, MSG_STORE, cred=CRED, fid=x, offset=0, length=len(big), handle=h,
               mflags=STORE_FIRST, data=big[:400 * 1024])
    assert call_acked(c, MSG_STORE, cred=CRED, fid=x, offset=400 * 1024, length=len(big),
                      handle=h, mflags=STORE_LAST | wire.STORE_REINT,
                      data=big[400 * 1024:])["status"] == ST_OK
    recs = [cml_create((cid, 1), r, "kd", d, S_IFDIR | 0o700),
            cml_create((cid, 2), d, "kf", f, S_IFREG | 0o644),
            cml_store((cid, 3), x, h, len(big), ver=cml_ver_of(xa)),
            cml_remove((cid, 4), d, "kf", f, ver=cml_ver(sid=(cid, 2)))]
    st, sts, s1 = reintegrate(c, vol, recs)
    assert (st, sts) == (ST_OK, [0, 0, 0, 0])
    server.kill9()
    c.close()
    server.start()
    c = connect(server.port)
    st, sts, s2 = reintegrate(c, vol, recs)
    assert (st, sts, s2) == (ST_OK, [1, 1, 1, 1], s1)
    assert fetch(c, x)[:16] == big[:16]
    assert getattr_(c, x)["size"] == len(big)
    assert names(c, d) == []
    c.close()


def test_store_handle_unknown_then_uploaded(server):
    c = connect(server.port)
    r = root(c)
    vol = r[0]
    x, xa = mk(c, r, "hx", S_IFREG | 0o644)
    cid = new_client_id()
    g = new_fid(vol)
    recs = [cml_create((cid, 1), r, "hg", g, S_IFREG | 0o644),
            cml_store((cid, 2), x, 5, 2, ver=cml_ver_of(xa)),
            cml_create((cid, 3), r, "hh", new_fid(vol), S_IFREG | 0o644)]
    st, sts, _ = reintegrate(c, vol, recs)
    # No upload under handle 5: ST_BADF, and nothing after it is looked at.
    assert sts == [0, wire.ST_BADF, wire.ST_AGAIN]
    assert lookup(c, r, "hh")["status"] == ST_NOENT
    assert store_reint(c, x, b"ok", 5)["status"] == ST_OK
    st, sts, _ = reintegrate(c, vol, recs)
    assert sts == [1, 0, 0]
    assert fetch(c, x) == b"ok"
    c.close()


def test_malformed_batches(server):
    c = connect(server.port)
    r = root(c)
    vol = r[0]
    cid = new_client_id()
    good = cml_create((cid, 1), r, "m", new_fid(vol), S_IFREG | 0o644)
    assert reintegrate(c, vol, [good[:-1]])[0] == ST_PROTO
    assert reintegrate(c, vol, [good + b"\0"])[0] == ST_PROTO
    assert reintegrate(c, vol, [b"\x09" + good[1:]])[0] == ST_PROTO  # unknown op
    bad_name = cml_create((cid, 1), r, "a/b", new_fid(vol), S_IFREG | 0o644)
    assert reintegrate(c, vol, [bad_name])[0] == ST_PROTO
    assert reintegrate(c, vol, [])[0] == ST_INVAL
    assert reintegrate(c, vol, [good], mflags=1)[0] == ST_INVAL
    assert reintegrate(c, vol + 1, [good])[0] == wire.ST_STALE  # no such volume
    other = cml_create((cid + 2, 2), r, "n", new_fid(vol), S_IFREG | 0o644)
    assert reintegrate(c, vol, [good, other])[0] == ST_INVAL  # two clients
    assert reintegrate(c, vol, [good, good])[0] == ST_INVAL  # seq not increasing
    many = [cml_link((cid, i + 1), r, "l%d" % i, r) for i in range(wire.CML_BATCH_MAX + 1)]
    assert reintegrate(c, vol, many)[0] == ST_INVAL
    # Nothing of it was applied, and the connection still serves.
    assert lookup(c, r, "m")["status"] == ST_NOENT
    assert reintegrate(c, vol, [good])[1] == [0]
    c.close()
