"""Server-side replication over raw sockets: three encore-servers on loopback
sharing a peers file (docs/replication.md). Two-phase updates (COP2), RESOLVE of
files and directories, conflicts, CONFLICTS and REPAIR, the volume pass of a
server that comes back, and a server killed in the middle of resolution."""
import os
import queue
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("ENCORE_BIN", os.path.join(ROOT, "build", "bin"))
SERVER = os.environ.get("ENCORE_SERVER", os.path.join(BIN, "encore-server"))

HELLO, GETROOT, GETATTR, LOOKUP, SETATTR, CREATE, REMOVE = 1, 2, 3, 4, 5, 6, 7
READDIR, FETCH, STORE = 11, 12, 13
VOLINFO, COP2, RESOLVE, CONFLICTS, REPAIR = 18, 19, 20, 21, 22
RES_GET = 40
NAMES = ("VERSION CLIENT_ID SERVER_ID INCARNATION REALM CRED FID FID2 NAME NAME2 TARGET SATTR "
         "MODE RDEV OFFSET LENGTH HANDLE EXPECT MFLAGS ATTR ATTR2 FSSTAT DATA STOREID VSG STAMP XVER").split()
F = {n: 1 << i for i, n in enumerate(NAMES)}


def fs(*n):
    v = 0
    for x in n:
        v |= F[x]
    return v


TAB = {
    HELLO: (fs("VERSION", "CLIENT_ID", "REALM", "NAME"), fs("VERSION", "SERVER_ID", "INCARNATION", "REALM")),
    GETROOT: (fs("CRED", "REALM"), fs("ATTR", "VSG")),
    GETATTR: (fs("CRED", "FID"), fs("ATTR")),
    LOOKUP: (fs("CRED", "FID", "NAME", "XVER"), fs("ATTR", "ATTR2")),
    CREATE: (fs("CRED", "FID", "FID2", "NAME", "TARGET", "MODE", "RDEV", "MFLAGS", "STOREID", "XVER"), fs("ATTR", "ATTR2")),
    REMOVE: (fs("CRED", "FID", "NAME", "MFLAGS", "STOREID", "XVER"), fs("ATTR", "ATTR2")),
    READDIR: (fs("CRED", "FID", "NAME", "LENGTH", "XVER"), fs("MFLAGS", "ATTR", "DATA")),
    FETCH: (fs("CRED", "FID", "OFFSET", "LENGTH", "EXPECT"), fs("ATTR", "DATA")),
    STORE: (fs("CRED", "FID", "SATTR", "OFFSET", "LENGTH", "HANDLE", "EXPECT", "MFLAGS", "DATA", "STOREID"), fs("ATTR")),
    VOLINFO: (fs("CRED", "FID"), fs("VSG", "STAMP")),
    COP2: (fs("FID", "MFLAGS", "STOREID"), 0),
    RESOLVE: (fs("CRED", "FID", "MFLAGS"), fs("ATTR")),
    CONFLICTS: (fs("CRED", "FID", "NAME"), fs("MFLAGS", "DATA")),
    REPAIR: (fs("CRED", "SERVER_ID", "FID", "MFLAGS", "STOREID"), fs("ATTR")),
    RES_GET: (fs("FID", "MFLAGS"), fs("FID2", "NAME", "TARGET", "ATTR")),
}
ST_OK, ST_NOENT, ST_PROTO, ST_CONFLICT = 0, 2, 18, 100
S_IFDIR, S_IFREG = 0o040000, 0o100000
ROOT_OID = b"\0" * 15 + b"\1"
ATTR_F_CONFLICT = 1
REPAIR_KEEP_ONE, REPAIR_KEEP_ALL = 1, 2


def es(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<H", len(b)) + b


def enc(f, m):
    g = m.get
    if f == F["VERSION"]:
        return struct.pack("<I", 1)
    if f == F["CLIENT_ID"]:
        return struct.pack("<Q", g("client_id", 7))
    if f == F["SERVER_ID"]:
        return struct.pack("<I", g("server_id", 0))
    if f == F["REALM"]:
        return es("test")
    if f == F["CRED"]:
        return struct.pack("<III", 0, 0, 0)
    if f in (F["FID"], F["FID2"]):
        v = g("fid" if f == F["FID"] else "fid2")
        return struct.pack("<I", v[0]) + v[1]
    if f in (F["NAME"], F["NAME2"], F["TARGET"]):
        return es(g({F["NAME"]: "name", F["NAME2"]: "name2", F["TARGET"]: "target"}[f], ""))
    if f == F["SATTR"]:
        return b"\0" * 48
    if f == F["MODE"]:
        return struct.pack("<I", g("mode", 0))
    if f in (F["RDEV"], F["OFFSET"], F["LENGTH"], F["HANDLE"], F["EXPECT"]):
        k = {F["RDEV"]: "rdev", F["OFFSET"]: "offset", F["LENGTH"]: "length", F["HANDLE"]: "handle",
             F["EXPECT"]: "expect"}[f]
        return struct.pack("<Q", g(k, 0))
    if f == F["MFLAGS"]:
        return struct.pack("<I", g("mflags", 0))
    if f == F["DATA"]:
        d = g("data", b"")
        return struct.pack("<I", len(d)) + d
    if f == F["STOREID"]:
        return struct.pack("<QQ", *g("sid", (7, 1)))
    if f == F["XVER"]:  # expected versions of fid, fid2: (sid, vv) each
        out = b""
        for sid, vv in g("xver", (((0, 0), []), ((0, 0), []))):
            out += struct.pack("<QQB", *sid, len(vv)) + b"".join(struct.pack("<I", x) for x in vv)
        return out
    raise ValueError(f)


class Rd:
    def __init__(self, b):
        self.b, self.p = b, 0

    def t(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.p)
        self.p += struct.calcsize(fmt)
        return v if len(v) > 1 else v[0]

    def by(self, n):
        v = self.b[self.p:self.p + n]
        self.p += n
        return v

    def s(self):
        return self.by(self.t("<H")).decode()

    def fid(self):
        return (self.t("<I"), self.by(16))

    def attr(self):
        a = {"fid": self.fid()}
        a["mode"], a["nlink"], a["uid"], a["gid"], a["rdev"], a["size"], a["blocks"] = self.t("<IIIIQQQ")
        self.by(36)
        a["dv"] = self.t("<Q")
        a["vv"] = [self.t("<I") for _ in range(self.t("<B"))]
        a["sid"] = self.t("<QQ")
        a["flags"] = self.t("<I")
        return a


def dec(rf, body):
    r = Rd(body)
    m = {"status": r.t("<I")}
    if m["status"]:
        return m
    for i, n in enumerate(NAMES):
        if not rf & (1 << i):
            continue
        if n in ("VERSION", "SERVER_ID", "MFLAGS"):
            m[n.lower()] = r.t("<I")
        elif n in ("INCARNATION", "STAMP"):
            m[n.lower()] = r.t("<Q")
        elif n in ("REALM", "NAME", "TARGET"):
            m[n.lower()] = r.s()
        elif n == "FID2":
            m["fid2"] = r.fid()
        elif n in ("ATTR", "ATTR2"):
            m[n.lower()] = r.attr()
        elif n == "DATA":
            m["data"] = r.by(r.t("<I"))
        elif n == "VSG":
            m["vsg"] = [r.t("<I") for _ in range(r.t("<B"))]
        else:
            raise ValueError(n)
    assert r.p == len(body)
    return m


class Conn:
    def __init__(self, port, name="pytest"):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.reqid = 0
        # A reader thread acknowledges callback breaks at once (the server
        # holds an updater's reply until every holder has: docs/protocol.md
        # "Callback breaks"), even while this test waits on another Conn.
        self.q, self.wlock = queue.Queue(), threading.Lock()
        threading.Thread(target=self._reader, daemon=True).start()
        assert self.call(HELLO, name=name)["status"] == 0

    def send(self, t, **m):
        self.reqid += 1
        body = b"".join(enc(1 << i, m) for i in range(len(NAMES)) if TAB[t][0] & (1 << i))
        with self.wlock:
            self.s.sendall(struct.pack("<IHHI", len(body), t, 0, self.reqid) + body)
        return self.reqid

    def _reader(self):
        buf = b""
        try:
            while True:
                while len(buf) >= 12 and len(buf) >= 12 + struct.unpack_from("<I", buf)[0]:
                    ln, t, fl, rid = struct.unpack_from("<IHHI", buf)
                    body, buf = buf[12:12 + ln], buf[12 + ln:]
                    if fl & 2 and rid != 0:
                        with self.wlock:
                            self.s.sendall(struct.pack("<IHHII", 4, t, 1, rid, 0))
                    self.q.put((t, fl, rid, body))
                d = self.s.recv(1 << 20)
                if not d:
                    break
                buf += d
        except OSError:
            pass
        self.q.put(None)

    def frame(self):
        f = self.q.get(timeout=60)
        if f is None:
            self.q.put(None)
            raise EOFError
        return f

    def call(self, t, **m):
        rid = self.send(t, **m)
        while True:
            mt, fl, r, body = self.frame()
            if fl & 2:
                continue
            assert r == rid and mt == t
            return dec(TAB[t][1], body)

    def close(self):
        try:
            self.s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.s.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Realm:
    def __init__(self, n=3):
        self.dir = tempfile.mkdtemp(prefix="encore-rep-")
        self.n = n
        self.ports = [free_port() for _ in range(n)]
        self.conf = os.path.join(self.dir, "servers.conf")
        with open(self.conf, "w") as f:
            for i, p in enumerate(self.ports):
                f.write("[server %d]\naddress = 127.0.0.1:%d\n" % (i + 1, p))
        vsg = ",".join(str(i + 1) for i in range(n))
        self.procs = [None] * n
        for i in range(n):
            subprocess.run([SERVER, "init", "--dir", self.sdir(i), "--server-id", str(i + 1), "--realm",
                            "test", "--root-mode", "1777", "--vsg", vsg], check=True)
        for i in range(n):
            self.start(i)
        self.seq = 100
        # Let the start-up volume passes (every server sees its peers come
        # up) finish before a test makes replicas differ on purpose.
        self.wait_peers_up()

    def wait_peers_up(self, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            ups = [open(os.path.join(self.dir, "s%d.log" % (i + 1))).read().count(" is up")
                   for i in range(self.n)]
            if all(u >= self.n - 1 for u in ups):
                time.sleep(0.5)
                return
            time.sleep(0.1)

    def sdir(self, i):
        return os.path.join(self.dir, "s%d" % (i + 1))

    def start(self, i):
        rfd, wfd = os.pipe()
        log = open(os.path.join(self.dir, "s%d.log" % (i + 1)), "a")
        p = subprocess.Popen([SERVER, "--dir", self.sdir(i), "--listen", "127.0.0.1:%d" % self.ports[i],
                              "--peers", self.conf, "--ready-fd", str(wfd), "-v"], pass_fds=(wfd,),
                             stderr=log)
        os.close(wfd)
        assert os.read(rfd, 1) == b"\n"
        os.close(rfd)
        self.procs[i] = p

    def stop(self, i, sig=signal.SIGTERM):
        p = self.procs[i]
        p.send_signal(sig)
        p.wait(30)
        self.procs[i] = None

    def conn(self, i):
        return Conn(self.ports[i])

    def sid(self):
        self.seq += 1
        return (77, self.seq)

    def close(self):
        for i in range(self.n):
            if self.procs[i] is not None:
                self.stop(i)


@pytest.fixture
def realm():
    r = Realm()
    yield r
    r.close()


RF = (1, ROOT_OID)


def create(conns, d, name, mode=S_IFREG | 0o644, fid=None, sid=None, mask=None):
    """CREATE on every connection given (phase one), COP2 with their slots."""
    fid = fid or (1, os.urandom(16))
    out = []
    for c in conns:
        out.append(c.call(CREATE, fid=d, fid2=fid, name=name, mode=mode, mflags=1, sid=sid))
    return fid, out


def store(c, f, data, sid, handle=1):
    """A whole-file STORE in CHUNK_MAX chunks."""
    off, chunk = 0, 1 << 19
    while True:
        part = data[off:off + chunk]
        last = off + len(part) >= len(data)
        fl = (1 if off == 0 else 0) | (2 if last else 0)
        r = c.call(STORE, fid=f, offset=off, length=len(data), handle=handle, mflags=fl, data=part,
                   sid=sid)
        if r["status"] or last:
            return r
        off += len(part)


def cop2(conns, sid, mask):
    for c in conns:
        c.call(COP2, fid=(1, b"\0" * 16), mflags=mask, sid=sid)


def fetch_all(c, f):
    out, off = b"", 0
    while True:
        r = c.call(FETCH, fid=f, offset=off, length=1 << 19)
        if r["status"]:
            return r["status"]
        out += r["data"]
        off += len(r["data"])
        if len(r["data"]) < (1 << 19):
            return out


def attr(c, f):
    r = c.call(GETATTR, fid=f)
    return r["attr"] if r["status"] == 0 else None


def names(c, d=RF):
    r = c.call(READDIR, fid=d, name="", length=0)
    assert r["status"] == 0
    rd, out = Rd(r["data"]), {}
    while rd.p < len(r["data"]):
        n = rd.by(rd.t("<B")).decode()
        out[n] = rd.fid()
        rd.t("<I")
    return out


def wait_for(pred, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.2)
    return pred()


def update(realm, conns_idx, f, data):
    cs = [realm.conn(i) for i in conns_idx]
    sid = realm.sid()
    for c in cs:
        assert store(c, f, data, sid)["status"] == 0
    cop2(cs, sid, sum(1 << i for i in conns_idx))
    for c in cs:
        c.close()


def test_vsg_cop2_equal_vectors(realm):
    cs = [realm.conn(i) for i in range(3)]
    r = cs[1].call(GETROOT, realm="test")
    assert r["status"] == 0 and r["vsg"] == [1, 2, 3]
    v = cs[2].call(VOLINFO, fid=RF)
    assert v["vsg"] == [1, 2, 3]
    stamp = v["stamp"]
    sid = realm.sid()
    f, out = create(cs, RF, "f", sid=sid)
    assert all(o["status"] == 0 for o in out)
    assert out[1]["attr"]["vv"] == [0, 1, 0]
    cop2(cs, sid, 0b111)
    cop2(cs, sid, 0b111)  # idempotent
    assert [attr(c, f)["vv"] for c in cs] == [[1, 1, 1]] * 3
    assert [attr(c, RF)["vv"] for c in cs] == [[1, 1, 1]] * 3
    sid = realm.sid()
    for c in cs:
        assert store(c, f, b"hello", sid)["status"] == 0
    cop2(cs, sid, 0b111)
    a = [attr(c, f) for c in cs]
    assert all(x["vv"] == [2, 2, 2] and x["sid"] == sid for x in a), a
    assert cs[2].call(VOLINFO, fid=RF)["stamp"] == stamp + 2
    # RES_* are for servers only.
    assert cs[0].call(RES_GET, fid=f)["status"] == ST_PROTO


def test_dominated_replica_resolves(realm):
    cs = [realm.conn(i) for i in range(3)]
    sid = realm.sid()
    f, _ = create(cs, RF, "g", sid=sid)
    cop2(cs, sid, 0b111)
    data = os.urandom(700 * 1024)
    update(realm, [0, 1], f, data)
    assert attr(cs[2], f)["vv"] == [1, 1, 1]
    r = cs[0].call(RESOLVE, fid=f, mflags=0)
    assert r["status"] == 0
    a = [attr(c, f) for c in cs]
    assert a[0]["vv"] == a[1]["vv"] == a[2]["vv"] == [2, 2, 1]
    assert a[2]["sid"] == a[0]["sid"]
    assert fetch_all(cs[2], f) == data
    assert fetch_all(cs[1], f) == data


def test_conflict_and_repair(realm):
    cs = [realm.conn(i) for i in range(3)]
    files = {}
    for name in ("c1", "c2"):
        sid = realm.sid()
        files[name], _ = create(cs, RF, name, sid=sid)
        cop2(cs, sid, 0b111)
        update(realm, [0], files[name], b"one " + name.encode())
        update(realm, [1], files[name], b"two " + name.encode())
        assert cs[2].call(RESOLVE, fid=files[name], mflags=0)["status"] == 0
        for c in cs:
            assert attr(c, files[name])["flags"] & ATTR_F_CONFLICT
            assert c.call(FETCH, fid=files[name], offset=0, length=10)["status"] == ST_CONFLICT
    r = cs[0].call(CONFLICTS, fid=RF, name="")
    assert r["status"] == 0 and r["mflags"] & 1
    rd, listed = Rd(r["data"]), {}
    while rd.p < len(r["data"]):
        fid = rd.fid()
        listed[fid] = rd.s()
    assert listed == {files["c1"]: "/c1", files["c2"]: "/c2"}
    # Keep server 2's version of c1.
    r = cs[0].call(REPAIR, fid=files["c1"], server_id=2, mflags=REPAIR_KEEP_ONE)
    assert r["status"] == 0, r
    a = [attr(c, files["c1"]) for c in cs]
    assert all(x["flags"] == 0 for x in a) and a[0]["vv"] == a[1]["vv"] == a[2]["vv"]
    assert all(fetch_all(c, files["c1"]) == b"two c1" for c in cs)
    # Keep all versions of c2.
    r = cs[1].call(REPAIR, fid=files["c2"], server_id=0, mflags=REPAIR_KEEP_ALL)
    assert r["status"] == 0, r
    for c in cs:
        n = names(c)
        assert "c2" not in n
        assert fetch_all(c, n["c2.conflict-server1"]) == b"one c2"
        assert fetch_all(c, n["c2.conflict-server2"]) == b"two c2"
        assert "c2.conflict-server3" in n
        r = c.call(CONFLICTS, fid=RF, name="")
        assert r["data"] == b""
    assert names(cs[0]) == names(cs[1]) == names(cs[2])


def test_directory_merge_and_name_conflict(realm):
    cs = [realm.conn(i) for i in range(3)]
    sid = realm.sid()
    a, _ = create([cs[0]], RF, "a", sid=sid)
    cop2([cs[0]], sid, 0b001)
    assert store(cs[0], a, b"A data", realm.sid())["status"] == 0
    sid = realm.sid()
    b, _ = create([cs[1]], RF, "b", sid=sid)
    cop2([cs[1]], sid, 0b010)
    assert cs[2].call(RESOLVE, fid=RF, mflags=0)["status"] == 0
    for c in cs:
        n = names(c)
        assert n["a"] == a and n["b"] == b
        assert not attr(c, RF)["flags"] & ATTR_F_CONFLICT
        assert fetch_all(c, a) == b"A data"
    assert len({tuple(attr(c, RF)["vv"]) for c in cs}) == 1
    assert len({tuple(attr(c, a)["vv"]) for c in cs}) == 1
    # Same name, different fids on two replicas: a directory conflict.
    create([cs[0]], RF, "x", sid=realm.sid())
    create([cs[1]], RF, "x", sid=realm.sid())
    assert cs[0].call(RESOLVE, fid=RF, mflags=0)["status"] == 0
    for c in cs:
        assert attr(c, RF)["flags"] & ATTR_F_CONFLICT


def same_everywhere(realm, path_names):
    cs = [realm.conn(i) for i in range(3)]
    try:
        n = [names(c) for c in cs]
        if not (n[0] == n[1] == n[2]):
            return False
        for name in path_names:
            if name not in n[0]:
                return False
            f = n[0][name]
            a = [attr(c, f) for c in cs]
            if any(x is None for x in a) or len({(tuple(x["vv"]), x["sid"]) for x in a}) != 1:
                return False
            if a[0]["mode"] & S_IFREG and len({fetch_all(c, f) for c in cs}) != 1:
                return False
        return True
    finally:
        for c in cs:
            c.close()


def test_volume_pass_catches_up(realm):
    realm.stop(2)
    cs = [realm.conn(i) for i in range(2)]
    want = []
    for i in range(5):
        sid = realm.sid()
        f, _ = create(cs, RF, "file%d" % i, sid=sid)
        cop2(cs, sid, 0b011)
        update(realm, [0, 1], f, os.urandom(1000 * (i + 1)))
        want.append("file%d" % i)
    sid = realm.sid()
    d, _ = create(cs, RF, "dir", mode=S_IFDIR | 0o755, sid=sid)
    cop2(cs, sid, 0b011)
    sid = realm.sid()
    create(cs, d, "inner", sid=sid)
    cop2(cs, sid, 0b011)
    want.append("dir")
    realm.start(2)
    assert wait_for(lambda: same_everywhere(realm, want), 60)
    c3 = realm.conn(2)
    assert c3.call(LOOKUP, fid=d, name="inner")["status"] == 0


def test_killed_during_resolution_finishes(realm):
    realm.stop(2)
    cs = [realm.conn(i) for i in range(2)]
    want = []
    for i in range(30):
        sid = realm.sid()
        f, _ = create(cs, RF, "big%d" % i, sid=sid)
        cop2(cs, sid, 0b011)
        update(realm, [0, 1], f, os.urandom(300 * 1024))
        want.append("big%d" % i)
    realm.start(2)
    time.sleep(0.5)
    realm.stop(2, signal.SIGKILL)
    realm.stop(0, signal.SIGKILL)
    realm.start(0)
    realm.start(2)
    assert wait_for(lambda: same_everywhere(realm, want), 90)
