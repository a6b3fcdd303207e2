"""Raw-socket tests of encore-server: every message, POSIX errors, group
commit, callbacks, protocol errors. Talks the wire format of common/proto.h
directly (through wire.py), so it checks the server without the client."""
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time

import pytest

import wire
from wire import (MSG_CB_BREAK as CB_BREAK, MSG_CREATE as CREATE, MSG_FETCH as FETCH,
                  MSG_GETATTR as GETATTR, MSG_GETROOT as GETROOT, MSG_HELLO as HELLO,
                  MSG_LINK as LINK, MSG_LOOKUP as LOOKUP, MSG_PING as PING,
                  MSG_READDIR as READDIR, MSG_READLINK as READLINK, MSG_REMOVE as REMOVE,
                  MSG_RENAME as RENAME, MSG_SETATTR as SETATTR, MSG_STATFS as STATFS,
                  MSG_STATS as STATS, MSG_STORE as STORE, ROOT_OID, S_IFDIR, S_IFLNK, S_IFREG,
                  SA_GID, SA_MODE, SA_MTIME, SA_SIZE, SA_UID, STORE_ABORT, STORE_FIRST,
                  STORE_LAST)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.environ.get("ENCORE_SERVER") or os.path.join(
    os.environ.get("ENCORE_BIN") or os.path.join(ROOT, "build", "bin"), "encore-server")

# The wire statuses by name: ST["NOENT"] is wire.ST_NOENT.
ST = {k[3:]: v for k, v in vars(wire).items() if k.startswith("ST_")}
dirents = wire.dirents


class Conn(wire.Conn):
    """wire.Conn that has said HELLO (realm "test") unless hello=False; call()
    returns the decoded reply, s is the socket. Requests default to client
    id 7 and StoreId (7, 1)."""

    defaults = dict(client_id=7, sid=(7, 1))
    call = wire.Conn.request
    s = property(lambda self: self.sock)

    def __init__(self, port, hello=True):
        super().__init__(port)
        if hello:
            r = self.call(HELLO, version=1, realm="test", name="pytest")
            assert r["status"] == 0, r


@pytest.fixture
def server():
    d = tempfile.mkdtemp(prefix="encore-srv-")
    subprocess.run([SERVER, "init", "--dir", d, "--server-id", "3", "--realm", "test",
                    "--root-mode", "1777"], check=True)
    r = subprocess.run([SERVER, "init", "--dir", d, "--server-id", "3", "--realm", "test"])
    assert r.returncode == 2
    procs = []

    def start():
        rfd, wfd = os.pipe()
        p = subprocess.Popen([SERVER, "--dir", d, "--listen", "127.0.0.1:0", "--ready-fd", str(wfd),
                              "--port-file", d + "/port"], pass_fds=(wfd,))
        os.close(wfd)
        assert os.read(rfd, 1) == b"\n"
        os.close(rfd)
        procs.append(p)
        return int(open(d + "/port").read())

    class S:
        pass
    s = S()
    s.dir, s.start = d, start
    s.port = start()
    s.procs = procs
    yield s
    for p in procs:
        if p.poll() is None:
            p.terminate()
            assert p.wait(10) == 0
    if not os.environ.get("ENCORE_TEST_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


def new_oid():
    return os.urandom(16)


def root(c):
    r = c.call(GETROOT, cred=(0, 0, []), realm="test")
    assert r["status"] == 0
    return r["attr"]["fid"]


def mk(c, d, name, mode, cred=(0, 0, []), **kw):
    f = (d[0], new_oid())
    r = c.call(CREATE, cred=cred, fid=d, fid2=f, name=name, mode=mode, mflags=1, **kw)
    return f, r


def write(c, f, data, cred=(0, 0, []), expect=0, handle=1):
    return c.call(STORE, cred=cred, fid=f, offset=0, length=len(data), handle=handle, expect=expect,
                  mflags=STORE_FIRST | STORE_LAST, data=data)


def test_hello_ping_stats(server):
    c = Conn(server.port, hello=False)
    r = c.call(PING)
    assert r["status"] == 0 and r["server_id"] == 3
    assert c.call(GETATTR, cred=(0, 0, []), fid=(1, ROOT_OID))["status"] == ST["PROTO"]
    with pytest.raises(EOFError):
        c.recv_frame()
    c = Conn(server.port, hello=False)
    r = c.call(HELLO, version=1, realm="test")
    assert r["status"] == 0 and r["version"] == 1 and r["realm"] == "test" and r["incarnation"] >= 1
    st = c.call(STATS)["data"].decode()
    for k in "fetch_calls fetch_bytes store_calls store_bytes getattr_calls lookup_calls readdir_calls create_calls connections cb_breaks objects".split():
        assert ("\n" + k + " ") in "\n" + st, k
    c2 = Conn(server.port, hello=False)
    assert c2.call(HELLO, version=99)["status"] == ST["BADVERSION"]
    with pytest.raises(EOFError):
        c2.recv_frame()
    assert c.call(PING)["status"] == 0


def test_malformed_frames_keep_serving(server):
    good = Conn(server.port)
    bad = Conn(server.port, hello=False)
    bad.s.sendall(struct.pack("<IHHI", 1 << 30, GETATTR, 0, 9))
    t, fl, rid, body = bad.recv_frame()
    assert struct.unpack("<I", body)[0] == ST["PROTO"]
    bad = Conn(server.port)
    bad.s.sendall(struct.pack("<IHHI", 3, GETATTR, 0, 9) + b"\xff\x00\x01")
    t, fl, rid, body = bad.recv_frame()
    assert rid == 9 and struct.unpack("<I", body)[0] == ST["PROTO"]
    with pytest.raises(EOFError):
        bad.recv_frame()
    bad = Conn(server.port)
    bad.s.sendall(struct.pack("<IHHI", 0, 77, 0, 5))
    t, fl, rid, body = bad.recv_frame()
    assert struct.unpack("<I", body)[0] == ST["NOSYS"]
    assert good.call(PING)["status"] == 0


def test_namespace(server):
    c = Conn(server.port)
    rt = root(c)
    assert c.call(GETROOT, cred=(0, 0, []), realm="nope")["status"] == ST["NOENT"]
    d, r = mk(c, rt, "d", S_IFDIR | 0o755)
    assert r["status"] == 0 and r["attr"]["nlink"] == 2 and r["attr2"]["nlink"] == 3
    f, r = mk(c, d, "f", S_IFREG | 0o644)
    assert r["status"] == 0 and r["attr"]["mode"] == S_IFREG | 0o644
    assert mk(c, d, "f", S_IFREG | 0o644)[1]["status"] == ST["EXIST"]
    r = c.call(CREATE, cred=(0, 0, []), fid=d, fid2=f, name="g", mode=S_IFREG, mflags=1)
    assert r["status"] == ST["EXIST"]
    assert mk(c, d, "..", S_IFREG)[1]["status"] == ST["INVAL"]
    l, r = mk(c, d, "l", S_IFLNK | 0o777, target="f")
    assert r["status"] == 0 and r["attr"]["size"] == 1
    assert c.call(READLINK, cred=(0, 0, []), fid=l)["target"] == "f"
    r = c.call(LOOKUP, cred=(0, 0, []), fid=d, name="f")
    assert r["status"] == 0 and r["attr"]["fid"] == f and r["attr2"]["fid"] == d
    assert c.call(LOOKUP, cred=(0, 0, []), fid=d, name="x")["status"] == ST["NOENT"]
    assert c.call(LOOKUP, cred=(0, 0, []), fid=f, name="x")["status"] == ST["NOTDIR"]
    # link, nlink
    r = c.call(LINK, cred=(0, 0, []), fid=f, fid2=rt, name="f2")
    assert r["status"] == 0 and r["attr"]["nlink"] == 2
    assert c.call(LINK, cred=(0, 0, []), fid=d, fid2=rt, name="d2")["status"] == ST["PERM"]
    # readdir with paging
    for i in range(50):
        assert mk(c, d, "n%03d" % i, S_IFREG | 0o600)[1]["status"] == 0
    names, cookie = [], ""
    while True:
        r = c.call(READDIR, cred=(0, 0, []), fid=d, name=cookie, length=7)
        assert r["status"] == 0
        ents = dirents(r["data"])
        names += [e[0] for e in ents]
        if r["mflags"] & 1:
            break
        cookie = ents[-1][0]
    assert names == sorted(["f", "l"] + ["n%03d" % i for i in range(50)])
    # remove / rmdir
    assert c.call(REMOVE, cred=(0, 0, []), fid=rt, name="d", mflags=1)["status"] == ST["NOTEMPTY"]
    assert c.call(REMOVE, cred=(0, 0, []), fid=rt, name="d", mflags=0)["status"] == ST["ISDIR"]
    assert c.call(REMOVE, cred=(0, 0, []), fid=d, name="f", mflags=1)["status"] == ST["NOTDIR"]
    r = c.call(REMOVE, cred=(0, 0, []), fid=d, name="f", mflags=0)
    assert r["status"] == 0 and r["attr"]["nlink"] == 1
    r = c.call(REMOVE, cred=(0, 0, []), fid=rt, name="f2", mflags=0)
    assert r["status"] == 0 and r["attr"]["nlink"] == 0
    assert c.call(GETATTR, cred=(0, 0, []), fid=f)["status"] == ST["NOENT"]
    e, r = mk(c, rt, "e", S_IFDIR | 0o755)
    r = c.call(REMOVE, cred=(0, 0, []), fid=rt, name="e", mflags=1)
    assert r["status"] == 0 and r["attr2"]["nlink"] == 3
    sf = c.call(STATFS, cred=(0, 0, []), fid=rt)
    assert sf["status"] == 0 and sf["fsstat"][6] == 255


def test_expected_versions(server):
    """F_XSID: a name or attribute update names the StoreIds the client last
    saw of its objects; the server refuses (VERSION) when they moved and
    changes nothing, performs it when they match or are zero (any)."""
    c = Conn(server.port)
    rt = root(c)
    cr = (0, 0, [])
    d, r = mk(c, rt, "d", S_IFDIR | 0o755, sid=(9, 1))
    assert r["status"] == 0 and r["attr2"]["sid"] == (9, 1)
    e, r = mk(c, rt, "e", S_IFDIR | 0o755, sid=(9, 2))
    f, r = mk(c, d, "f", S_IFREG | 0o644, sid=(9, 3), xver=(((9, 1), []), ((0, 0), [])))
    assert r["status"] == 0 and r["attr2"]["sid"] == (9, 3)
    # d moved on to (9, 3): an update expecting (9, 1) is refused, nothing done
    _, r = mk(c, d, "g", S_IFREG | 0o644, sid=(9, 4), xver=(((9, 1), []), ((0, 0), [])))
    assert r["status"] == ST["VERSION"]
    assert c.call(LOOKUP, cred=cr, fid=d, name="g")["status"] == ST["NOENT"]
    r = c.call(REMOVE, cred=cr, fid=d, name="f", sid=(9, 5), xver=(((9, 1), []), ((0, 0), [])))
    assert r["status"] == ST["VERSION"]
    assert c.call(LOOKUP, cred=cr, fid=d, name="f")["status"] == 0
    r = c.call(SETATTR, cred=cr, fid=f, sattr=(SA_MODE, 0o600, 0, 0, 0, (0, 0), (0, 0)), sid=(9, 6), xver=(((9, 99), []), ((0, 0), [])))
    assert r["status"] == ST["VERSION"]
    assert c.call(GETATTR, cred=cr, fid=f)["attr"]["mode"] == S_IFREG | 0o644
    # a store names the version its contents replace, too
    r = c.call(STORE, cred=cr, fid=f, offset=0, length=3, handle=41, mflags=STORE_FIRST | STORE_LAST,
               data=b"abc", sid=(9, 60), xver=(((9, 99), []), ((0, 0), [])))
    assert r["status"] == ST["VERSION"]
    assert c.call(GETATTR, cred=cr, fid=f)["attr"]["size"] == 0
    # rename: the second directory's expectation counts too
    r = c.call(RENAME, cred=cr, fid=d, name="f", fid2=e, name2="f", sid=(9, 7),
               xver=(((9, 3), []), ((9, 99), [])))
    assert r["status"] == ST["VERSION"]
    r = c.call(LINK, cred=cr, fid=f, fid2=e, name="h", sid=(9, 8), xver=(((0, 0), []), ((9, 99), [])))
    assert r["status"] == ST["VERSION"]
    assert c.call(LOOKUP, cred=cr, fid=e, name="h")["status"] == ST["NOENT"]
    # matching expectations (and zero = any) are performed
    r = c.call(RENAME, cred=cr, fid=d, name="f", fid2=e, name2="f", sid=(9, 9),
               xver=(((9, 3), []), ((9, 2), [])))
    assert r["status"] == 0 and r["attr"]["sid"] == (9, 9) and r["attr2"]["sid"] == (9, 9)
    r = c.call(SETATTR, cred=cr, fid=f, sattr=(SA_MODE, 0o600, 0, 0, 0, (0, 0), (0, 0)), sid=(9, 10), xver=(((0, 0), []), ((0, 0), [])))
    assert r["status"] == 0 and r["attr"]["mode"] == S_IFREG | 0o600
    r = c.call(REMOVE, cred=cr, fid=e, name="f", sid=(9, 11), xver=(((9, 9), []), ((0, 0), [])))
    assert r["status"] == 0
    # reads: refused only by a replica behind the version seen (another
    # StoreId and a vector lower in some slot); the same or a later state reads
    dv = c.call(GETATTR, cred=cr, fid=d)["attr"]
    assert dv["sid"] == (9, 9)
    same = ((9, 9), dv["vv"])
    older = ((9, 1), [max(x - 1, 0) for x in dv["vv"]])
    newer = ((9, 77), [x + 1 for x in dv["vv"]])
    for xv, want in ((same, 0), (older, 0), (newer, ST["VERSION"]), (((9, 77), []), ST["VERSION"])):
        r = c.call(LOOKUP, cred=cr, fid=d, name="l", xver=(xv, ((0, 0), [])))
        assert r["status"] == (ST["NOENT"] if want == 0 else want), (xv, r)
        r = c.call(READDIR, cred=cr, fid=d, name="", length=10, xver=(xv, ((0, 0), [])))
        assert r["status"] == want, (xv, r)
        r = c.call(GETATTR, cred=cr, fid=d, xver=(xv, ((0, 0), [])))
        assert r["status"] == want and (want or r["attr"]["sid"] == (9, 9)), (xv, r)
    st = dict(l.split() for l in c.call(STATS)["data"].decode().splitlines())
    assert int(st["version_refused"]) == 12, st


def test_rename(server):
    c = Conn(server.port)
    rt = root(c)
    cr = (0, 0, [])
    a, _ = mk(c, rt, "a", S_IFDIR | 0o755)
    b, _ = mk(c, a, "b", S_IFDIR | 0o755)
    f, _ = mk(c, rt, "f", S_IFREG | 0o644)
    g, _ = mk(c, rt, "g", S_IFREG | 0o644)
    assert c.call(RENAME, cred=cr, fid=rt, name="a", fid2=b, name2="x")["status"] == ST["INVAL"]
    assert c.call(RENAME, cred=cr, fid=rt, name="a", fid2=a, name2="x")["status"] == ST["INVAL"]
    assert c.call(RENAME, cred=cr, fid=rt, name="f", fid2=rt, name2="f")["status"] == 0
    assert c.call(RENAME, cred=cr, fid=rt, name="f", fid2=rt, name2="a")["status"] == ST["ISDIR"]
    assert c.call(RENAME, cred=cr, fid=a, name="b", fid2=rt, name2="f")["status"] == ST["NOTDIR"]
    assert c.call(RENAME, cred=cr, fid=rt, name="f", fid2=rt, name2="g", mflags=1)["status"] == ST["EXIST"]
    r = c.call(RENAME, cred=cr, fid=rt, name="f", fid2=rt, name2="g")
    assert r["status"] == 0
    assert c.call(GETATTR, cred=cr, fid=g)["status"] == ST["NOENT"]
    assert c.call(LOOKUP, cred=cr, fid=rt, name="g")["attr"]["fid"] == f
    # move dir b from a to root: nlink bookkeeping
    r = c.call(RENAME, cred=cr, fid=a, name="b", fid2=rt, name2="b")
    assert r["status"] == 0 and r["attr"]["nlink"] == 2 and r["attr2"]["nlink"] == 4
    # rename dir onto non-empty dir
    mk(c, a, "z", S_IFREG)
    assert c.call(RENAME, cred=cr, fid=rt, name="b", fid2=rt, name2="a")["status"] == ST["NOTEMPTY"]
    c.call(REMOVE, cred=cr, fid=a, name="z")
    r = c.call(RENAME, cred=cr, fid=rt, name="b", fid2=rt, name2="a")
    assert r["status"] == 0 and r["attr"]["nlink"] == 3
    # exchange
    h, _ = mk(c, rt, "h", S_IFREG)
    assert c.call(RENAME, cred=cr, fid=rt, name="g", fid2=rt, name2="h", mflags=2)["status"] == 0
    assert c.call(LOOKUP, cred=cr, fid=rt, name="g")["attr"]["fid"] == h
    # hard link no-op
    c.call(LINK, cred=cr, fid=h, fid2=rt, name="h2")
    assert c.call(RENAME, cred=cr, fid=rt, name="g", fid2=rt, name2="h2")["status"] == 0
    assert c.call(LOOKUP, cred=cr, fid=rt, name="g")["status"] == 0


def test_data_and_versions(server):
    c = Conn(server.port)
    rt = root(c)
    cr = (0, 0, [])
    f, r = mk(c, rt, "f", S_IFREG | 0o644)
    dv0 = r["attr"]["dv"]
    big = os.urandom(1300 * 1024)
    # chunked store
    chunk = 512 * 1024
    for off in range(0, len(big), chunk):
        fl = (STORE_FIRST if off == 0 else 0) | (STORE_LAST if off + chunk >= len(big) else 0)
        r = c.call(STORE, cred=cr, fid=f, offset=off, length=len(big), handle=5, expect=dv0,
                   mflags=fl, data=big[off:off + chunk], sid=(7, 100))
        assert r["status"] == 0, r
    # A new version of the contents, named after the update's StoreId (so
    # replicas performing it agree: test_5_server_resolve), never a counter.
    assert r["attr"]["size"] == len(big) and r["attr"]["dv"] not in (dv0, dv0 + 1)
    assert r["attr"]["dv"] >= 1 << 62
    assert r["attr"]["blocks"] == (len(big) + 4095) // 4096 * 8
    dv1 = r["attr"]["dv"]
    got = b""
    while len(got) < len(big):
        r = c.call(FETCH, cred=cr, fid=f, offset=len(got), length=1 << 20, expect=dv1)
        assert r["status"] == 0 and len(r["data"]) <= 512 * 1024
        got += r["data"]
    assert got == big
    assert c.call(FETCH, cred=cr, fid=f, offset=0, length=10, expect=dv0)["status"] == ST["VERSION"]
    assert write(c, f, b"x", expect=dv0)["status"] == ST["VERSION"]
    assert c.call(STORE, cred=cr, fid=f, offset=0, length=1, handle=77, mflags=STORE_LAST, data=b"x")["status"] == ST["BADF"]
    # truncate via setattr
    r = c.call(SETATTR, cred=cr, fid=f, sattr=(SA_SIZE, 0, 0, 0, 10, (0, 0), (0, 0)), sid=(7, 101))
    assert r["status"] == 0 and r["attr"]["size"] == 10 and r["attr"]["dv"] not in (dv0, dv1)
    assert c.call(FETCH, cred=cr, fid=f, offset=0, length=100)["data"] == big[:10]
    r = c.call(SETATTR, cred=cr, fid=f, sattr=(SA_SIZE, 0, 0, 0, 20, (0, 0), (0, 0)), sid=(7, 102))
    dv3 = r["attr"]["dv"]
    assert c.call(FETCH, cred=cr, fid=f, offset=0, length=100)["data"] == big[:10] + b"\0" * 10
    # only one container version remains
    files = os.listdir(os.path.join(server.dir, "data", "1"))
    assert len(files) == 1 and files[0].endswith(".%x" % dv3), (files, dv3)
    # abort
    r = c.call(STORE, cred=cr, fid=f, offset=0, length=3, handle=9, mflags=STORE_FIRST, data=b"abc")
    assert r["status"] == 0
    assert c.call(STORE, cred=cr, fid=f, handle=9, mflags=STORE_ABORT)["status"] == 0
    assert os.listdir(os.path.join(server.dir, "tmp")) == []
    # restart keeps data, bumps incarnation
    inc = c.call(PING)["incarnation"]
    server.procs[-1].terminate()
    assert server.procs[-1].wait(10) == 0
    port = server.start()
    c = Conn(port)
    assert c.call(PING)["incarnation"] == inc + 1
    assert c.call(FETCH, cred=cr, fid=f, offset=0, length=100)["data"] == big[:10] + b"\0" * 10


def test_permissions(server):
    c = Conn(server.port)
    rt = root(c)
    u1, u2 = (1000, 1000, []), (1001, 1001, [])
    d, r = mk(c, rt, "home", S_IFDIR | 0o755, cred=u1)
    assert r["status"] == 0 and r["attr"]["uid"] == 1000
    assert mk(c, d, "x", S_IFREG | 0o644, cred=u2)[1]["status"] == ST["ACCES"]
    f, r = mk(c, d, "x", S_IFREG | 0o600, cred=u1)
    assert c.call(FETCH, cred=u2, fid=f, offset=0, length=10)["status"] == ST["ACCES"]
    assert write(c, f, b"hi", cred=u2)["status"] == ST["ACCES"]
    assert write(c, f, b"hi", cred=u1)["status"] == 0
    assert c.call(SETATTR, cred=u2, fid=f, sattr=(SA_MODE, 0o777, 0, 0, 0, (0, 0), (0, 0)))["status"] == ST["PERM"]
    assert c.call(SETATTR, cred=u1, fid=f, sattr=(SA_UID, 0, 1001, 0, 0, (0, 0), (0, 0)))["status"] == ST["PERM"]
    r = c.call(SETATTR, cred=(0, 0, []), fid=f, sattr=(SA_UID, 0, 1001, 0, 0, (0, 0), (0, 0)))
    assert r["status"] == 0 and r["attr"]["uid"] == 1001
    r = c.call(SETATTR, cred=u1, fid=d, sattr=(SA_GID, 0, 0, 50, 0, (0, 0), (0, 0)))
    assert r["status"] == ST["PERM"]
    r = c.call(SETATTR, cred=(1000, 1000, [50]), fid=d, sattr=(SA_GID, 0, 0, 50, 0, (0, 0), (0, 0)))
    assert r["status"] == 0 and r["attr"]["gid"] == 50
    # setgid dir inheritance
    r = c.call(SETATTR, cred=u1, fid=d, sattr=(SA_MODE, 0o2777, 0, 0, 0, (0, 0), (0, 0)))
    assert r["attr"]["mode"] & 0o7777 == 0o2777 or r["attr"]["mode"] & 0o7777 == 0o777
    # sticky root dir (1777): u2 can't remove u1's file
    g, r = mk(c, rt, "g", S_IFREG | 0o666, cred=u1)
    assert c.call(REMOVE, cred=u2, fid=rt, name="g")["status"] == ST["PERM"]
    assert c.call(REMOVE, cred=u1, fid=rt, name="g")["status"] == 0
    # utimes
    assert c.call(SETATTR, cred=u2, fid=d, sattr=(SA_MTIME, 0, 0, 0, 0, (0, 0), (5, 6)))["status"] == ST["PERM"]
    r = c.call(SETATTR, cred=u1, fid=d, sattr=(SA_MTIME, 0, 0, 0, 0, (0, 0), (5, 6)))
    assert r["attr"]["mtime"] == (5, 6)


def test_setgid_dir(server):
    c = Conn(server.port)
    rt = root(c)
    d, r = mk(c, rt, "sg", S_IFDIR | 0o2775, cred=(0, 77, []))
    assert r["attr"]["gid"] == 77
    f, r = mk(c, d, "f", S_IFREG | 0o644, cred=(0, 0, []))
    assert r["attr"]["gid"] == 77
    s, r = mk(c, d, "s", S_IFDIR | 0o755, cred=(0, 0, []))
    assert r["attr"]["gid"] == 77 and r["attr"]["mode"] & 0o2000


def test_callbacks_and_group_commit(server):
    a, b = Conn(server.port), Conn(server.port)
    rt = root(a)
    f, _ = mk(a, rt, "f", S_IFREG | 0o644)
    assert b.call(GETATTR, cred=(0, 0, []), fid=f)["status"] == 0
    assert b.call(READDIR, cred=(0, 0, []), fid=rt, name="", length=0)["status"] == 0
    # a's reply waits until b has acknowledged the break
    rid = a.send(STORE, cred=(0, 0, []), fid=f, offset=0, length=3, handle=1, expect=0,
                 mflags=STORE_FIRST | STORE_LAST, data=b"new")
    b.wait_push(f)
    assert a.wait(rid)["status"] == 0
    assert a.pushes == []
    rid = a.send(CREATE, cred=(0, 0, []), fid=rt, fid2=(1, new_oid()), name="g",
                 mode=S_IFREG, mflags=1)
    b.wait_push(rt)
    assert a.wait(rid)["status"] == 0
    # pipelined creates share commits
    n = 200
    rids = [a.send(CREATE, cred=(0, 0, []), fid=rt, fid2=(1, new_oid()), name="p%d" % i,
                   mode=S_IFREG | 0o644, mflags=1) for i in range(n)]
    for rid in rids:
        assert a.wait(rid)["status"] == 0
    st = dict(l.split() for l in a.call(STATS)["data"].decode().splitlines())
    assert int(st["commits"]) < int(st["create_calls"])
    assert int(st["objects"]) == n + 3
    assert st["cb_breaks"] == st["cb_acks"] == "2" and st["cb_timeouts"] == "0"


def test_break_held_until_acknowledged(server):
    a, b = Conn(server.port), Conn(server.port)
    rt = root(a)
    f, _ = mk(a, rt, "f", S_IFREG | 0o644)
    assert b.call(GETATTR, cred=(0, 0, []), fid=f)["status"] == 0
    b.ack = False
    rid = a.send(SETATTR, cred=(0, 0, []), fid=f, sattr=(SA_MODE, 0o600, 0, 0, 0, (0, 0), (0, 0)))
    b.wait_push(f)
    a.s.settimeout(0.5)
    with pytest.raises(socket.timeout):
        a.recv_frame()  # held: b has not acknowledged
    a.s.settimeout(10)
    assert b.push_rids[-1] != 0
    b.s.sendall(struct.pack("<IHHII", 4, CB_BREAK, 1, b.push_rids[-1], 0))  # a's reply follows
    assert a.wait(rid)["status"] == 0
    assert b.call(PING)["status"] == 0


def test_break_unacknowledged_closes_holder(server):
    a, b = Conn(server.port), Conn(server.port)
    rt = root(a)
    f, _ = mk(a, rt, "f", S_IFREG | 0o644)
    assert b.call(GETATTR, cred=(0, 0, []), fid=f)["status"] == 0
    b.ack = False
    r = a.call(SETATTR, cred=(0, 0, []), fid=f, sattr=(SA_MODE, 0o600, 0, 0, 0, (0, 0), (0, 0)))
    assert r["status"] == 0  # after the deadline, the server gave up on b
    b.wait_push(f)
    with pytest.raises((EOFError, ConnectionResetError)):
        b.recv_frame()
    st = dict(l.split() for l in a.call(STATS)["data"].decode().splitlines())
    assert st["cb_timeouts"] == "1" and st["cb_acks"] == "0"
