"""wire.py - a small Python codec for the Encore wire protocol, for tests.

Follows common/proto.h and common/msgtab.h: a frame is a 12-byte header
(u32 body_len, u16 type, u16 flags, u32 reqid, little-endian) and a body
whose fields are encoded in ascending bit order of enum msg_field. A reply
has FRAME_F_REPLY set and its body starts with a u32 wire status; fields
follow only on ST_OK. Strings are u16 len + bytes; F_DATA is u32 len + bytes.

Only what the integration tests need is here: HELLO, PING, STATS, CTL, and
helpers to send deliberately malformed frames.
"""

import os
import socket
import struct

PROTO_VERSION = 1
FRAME_HDR_LEN = 12
CHUNK_MAX = 512 * 1024
FRAME_BODY_MAX = CHUNK_MAX + 16384
NAME_MAX_LEN = 255
REALM_MAX_LEN = 253

FRAME_F_REPLY = 1 << 0
FRAME_F_PUSH = 1 << 1

MSG_HELLO = 1
MSG_GETROOT = 2
MSG_GETATTR = 3
MSG_LOOKUP = 4
MSG_SETATTR = 5
MSG_CREATE = 6
MSG_REMOVE = 7
MSG_RENAME = 8
MSG_LINK = 9
MSG_READLINK = 10
MSG_READDIR = 11
MSG_FETCH = 12
MSG_STORE = 13
MSG_STATFS = 14
MSG_PING = 15
MSG_STATS = 16
MSG_CB_BREAK = 17
MSG_CTL = 32
MSG_TYPE_MAX = 33

ST_OK = 0
ST_NOENT = 2
ST_INVAL = 9
ST_NAMETOOLONG = 14
ST_PROTO = 18
ST_BADVERSION = 102

_HDR = struct.Struct("<IHHI")


class ConnClosed(Exception):
    """The peer closed the connection (EOF or reset) before a full frame."""


class WireError(Exception):
    """A reply that does not decode as the table says."""


# --- encoding helpers -------------------------------------------------------

def u16(v):
    return struct.pack("<H", v)


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def wstr(s):
    """u16 len + bytes (no NUL)."""
    b = s.encode() if isinstance(s, str) else bytes(s)
    return u16(len(b)) + b


def blob(b):
    """u32 len + bytes (F_DATA)."""
    b = b.encode() if isinstance(b, str) else bytes(b)
    return u32(len(b)) + b


def frame(mtype, body=b"", flags=0, reqid=1, body_len=None):
    """A raw frame; body_len overrides the header's length (to lie)."""
    n = len(body) if body_len is None else body_len
    return _HDR.pack(n, mtype, flags, reqid) + body


def hello_body(version=PROTO_VERSION, client_id=None, realm="local", name="pytest"):
    # F_VERSION | F_CLIENT_ID | F_REALM | F_NAME, ascending bit order.
    if client_id is None:
        client_id = int.from_bytes(os.urandom(8), "little") or 1
    return u32(version) + u64(client_id) + wstr(realm) + wstr(name)


# --- decoding ---------------------------------------------------------------

class Reader:
    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise WireError("short read: want %d at %d of %d" % (n, self.pos, len(self.buf)))
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def u16(self):
        return struct.unpack("<H", self.take(2))[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def str(self, maxlen):
        n = self.u16()
        if n > maxlen:
            raise WireError("string of %d > %d" % (n, maxlen))
        return self.take(n).decode()

    def blob(self, maxlen):
        n = self.u32()
        if n > maxlen:
            raise WireError("blob of %d > %d" % (n, maxlen))
        return self.take(n)

    def done(self):
        if self.pos != len(self.buf):
            raise WireError("%d trailing bytes" % (len(self.buf) - self.pos))


class Frame:
    def __init__(self, mtype, flags, reqid, body):
        self.type = mtype
        self.flags = flags
        self.reqid = reqid
        self.body = body

    @property
    def status(self):
        if len(self.body) < 4:
            raise WireError("reply body shorter than a status")
        return struct.unpack("<I", self.body[:4])[0]

    def fields(self):
        """Reader positioned after the status."""
        r = Reader(self.body)
        r.u32()
        return r

    def __repr__(self):
        return "Frame(type=%d flags=%#x reqid=%d len=%d)" % (
            self.type, self.flags, self.reqid, len(self.body))


class Conn:
    """One TCP connection to an encore-server."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.reqid = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def _recv_exact(self, n):
        out = bytearray()
        while len(out) < n:
            try:
                chunk = self.sock.recv(n - len(out))
            except ConnectionResetError:
                raise ConnClosed("connection reset")
            if not chunk:
                raise ConnClosed("EOF after %d of %d bytes" % (len(out), n))
            out += chunk
        return bytes(out)

    def recv_frame(self):
        """Next frame; push frames (callback breaks) are returned too."""
        hdr = self._recv_exact(FRAME_HDR_LEN)
        n, mtype, flags, reqid = _HDR.unpack(hdr)
        if n > FRAME_BODY_MAX:
            raise WireError("server sent body_len %d > max" % n)
        return Frame(mtype, flags, reqid, self._recv_exact(n))

    def recv_reply(self, reqid=None):
        while True:
            f = self.recv_frame()
            if f.flags & FRAME_F_PUSH:
                continue
            if reqid is not None and f.reqid != reqid:
                raise WireError("reply reqid %d, want %d" % (f.reqid, reqid))
            return f

    def call(self, mtype, body=b""):
        self.reqid += 1
        self.send_raw(frame(mtype, body, reqid=self.reqid))
        f = self.recv_reply(self.reqid)
        if f.type != mtype or not f.flags & FRAME_F_REPLY:
            raise WireError("unexpected reply %r to type %d" % (f, mtype))
        return f

    def is_closed(self, timeout=10.0):
        """True if the server closes the connection (EOF/reset) within timeout,
        discarding any frames it sends first."""
        self.sock.settimeout(timeout)
        try:
            while True:
                self.recv_frame()
        except ConnClosed:
            return True
        except (socket.timeout, TimeoutError):
            return False

    # --- messages --------------------------------------------------------

    def hello(self, version=PROTO_VERSION, realm="local", name="pytest", client_id=None):
        """Returns a dict of the reply fields; raises WireError on a non-OK status
        (the status is in .status of the exception)."""
        f = self.call(MSG_HELLO, hello_body(version, client_id, realm, name))
        if f.status != ST_OK:
            e = WireError("hello: status %d" % f.status)
            e.status = f.status
            raise e
        r = f.fields()
        out = {
            "version": r.u32(),
            "server_id": r.u32(),
            "incarnation": r.u64(),
            "realm": r.str(REALM_MAX_LEN),
        }
        r.done()
        return out

    def ping(self):
        f = self.call(MSG_PING)
        if f.status != ST_OK:
            raise WireError("ping: status %d" % f.status)
        r = f.fields()
        out = {"server_id": r.u32(), "incarnation": r.u64()}
        r.done()
        return out

    def stats(self):
        """The server's counters as {name: int}."""
        f = self.call(MSG_STATS)
        if f.status != ST_OK:
            raise WireError("stats: status %d" % f.status)
        r = f.fields()
        text = r.blob(CHUNK_MAX).decode()
        r.done()
        return parse_stats(text)


def parse_stats(text):
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        try:
            out[parts[0]] = int(parts[1])
        except ValueError:
            out[parts[0]] = parts[1]
    return out


def server_stats(port, realm="local"):
    """HELLO then STATS on a fresh connection."""
    with Conn(port) as c:
        c.hello(realm=realm)
        return c.stats()


def hello_ping_ok(port, realm="local"):
    """A normal client's round trip: HELLO then PING on a new connection."""
    with Conn(port) as c:
        h = c.hello(realm=realm)
        p = c.ping()
        return h, p


# --- typed requests and replies, CML records (test_4_server_reint) ----------
# Added for reintegration tests: encode a request from keyword fields by the
# message's field set, decode a reply, and build CML records
# (docs/protocol.md "CML records (REINTEGRATE)").

MSG_VOLINFO = 18
MSG_COP2 = 19
MSG_REINTEGRATE = 23

FIELD_NAMES = ("VERSION CLIENT_ID SERVER_ID INCARNATION REALM CRED FID FID2 NAME NAME2 "
               "TARGET SATTR MODE RDEV OFFSET LENGTH HANDLE EXPECT MFLAGS ATTR ATTR2 FSSTAT "
               "DATA STOREID VSG STAMP XVER").split()
FIELD = {n: 1 << i for i, n in enumerate(FIELD_NAMES)}


def field_set(*names):
    v = 0
    for n in names:
        v |= FIELD[n]
    return v


MSG_FIELDS = {
    MSG_GETROOT: (field_set("CRED", "REALM"), field_set("ATTR", "VSG")),
    MSG_GETATTR: (field_set("CRED", "FID"), field_set("ATTR")),
    MSG_LOOKUP: (field_set("CRED", "FID", "NAME", "XVER"), field_set("ATTR", "ATTR2")),
    MSG_SETATTR: (field_set("CRED", "FID", "SATTR", "STOREID", "XVER"), field_set("ATTR")),
    MSG_CREATE: (field_set("CRED", "FID", "FID2", "NAME", "TARGET", "MODE", "RDEV", "MFLAGS",
                           "STOREID", "XVER"), field_set("ATTR", "ATTR2")),
    MSG_REMOVE: (field_set("CRED", "FID", "NAME", "MFLAGS", "STOREID", "XVER"), field_set("ATTR", "ATTR2")),
    MSG_RENAME: (field_set("CRED", "FID", "FID2", "NAME", "NAME2", "MFLAGS", "STOREID", "XVER"),
                 field_set("ATTR", "ATTR2")),
    MSG_READDIR: (field_set("CRED", "FID", "NAME", "LENGTH", "XVER"), field_set("MFLAGS", "ATTR", "DATA")),
    MSG_FETCH: (field_set("CRED", "FID", "OFFSET", "LENGTH", "EXPECT"), field_set("ATTR", "DATA")),
    MSG_STORE: (field_set("CRED", "FID", "SATTR", "OFFSET", "LENGTH", "HANDLE", "EXPECT", "MFLAGS",
                          "DATA", "STOREID"), field_set("ATTR")),
    MSG_VOLINFO: (field_set("CRED", "FID"), field_set("VSG", "STAMP")),
    MSG_COP2: (field_set("FID", "MFLAGS", "STOREID"), 0),
    MSG_REINTEGRATE: (field_set("CRED", "FID", "MFLAGS", "DATA"), field_set("DATA", "STAMP")),
}

ST_PERM, ST_IO, ST_ACCES, ST_EXIST, ST_NOTDIR = 1, 3, 4, 5, 7
ST_BADF, ST_STALE, ST_AGAIN, ST_CONFLICT, ST_VERSION = 28, 16, 21, 100, 101
S_IFDIR, S_IFREG, S_IFLNK = 0o040000, 0o100000, 0o120000
STORE_FIRST, STORE_LAST, STORE_ABORT, STORE_REINT = 1, 2, 4, 8
REMOVE_DIR = 1
RENAME_F_NOREPLACE, RENAME_F_EXCHANGE = 1, 2
SA_MODE, SA_UID, SA_GID, SA_SIZE, SA_ATIME, SA_MTIME = (1 << i for i in range(6))
ROOT_OID = b"\0" * 15 + b"\1"
CML_CREATE, CML_REMOVE, CML_RENAME, CML_LINK, CML_SETATTR, CML_STORE = range(1, 7)
CML_ST_APPLIED, CML_ST_ALREADY = 0, 1
CML_BATCH_MAX = 512
STORES_MAX, STORES_FILE_MAX, STORE_SMALL_MAX = 256, 64, 16 << 10  # uploads per connection
ST_BUSY = 19


def wfid(f):
    """A fid is (vol, 16-byte oid)."""
    return u32(f[0]) + bytes(f[1])


def wtime(t):
    return struct.pack("<qI", t[0], t[1])


def wsattr(sa):
    valid, mode, uid, gid, size, at, mt = sa
    return struct.pack("<IIIIQ", valid, mode, uid, gid, size) + wtime(at) + wtime(mt)


def encode_field(f, m):
    g = m.get
    if f == FIELD["CRED"]:
        uid, gid, groups = g("cred", (0, 0, []))
        return struct.pack("<III", uid, gid, len(groups)) + b"".join(u32(x) for x in groups)
    if f == FIELD["REALM"]:
        return wstr(g("realm", "test"))
    if f in (FIELD["FID"], FIELD["FID2"]):
        return wfid(g("fid" if f == FIELD["FID"] else "fid2"))
    if f in (FIELD["NAME"], FIELD["NAME2"], FIELD["TARGET"]):
        return wstr(g({FIELD["NAME"]: "name", FIELD["NAME2"]: "name2",
                       FIELD["TARGET"]: "target"}[f], ""))
    if f == FIELD["SATTR"]:
        return wsattr(g("sattr", (0, 0, 0, 0, 0, (0, 0), (0, 0))))
    if f in (FIELD["MODE"], FIELD["MFLAGS"], FIELD["SERVER_ID"]):
        return u32(g({FIELD["MODE"]: "mode", FIELD["MFLAGS"]: "mflags",
                      FIELD["SERVER_ID"]: "server_id"}[f], 0))
    if f in (FIELD["RDEV"], FIELD["OFFSET"], FIELD["LENGTH"], FIELD["HANDLE"], FIELD["EXPECT"]):
        return u64(g({FIELD["RDEV"]: "rdev", FIELD["OFFSET"]: "offset", FIELD["LENGTH"]: "length",
                      FIELD["HANDLE"]: "handle", FIELD["EXPECT"]: "expect"}[f], 0))
    if f == FIELD["DATA"]:
        return blob(g("data", b""))
    if f == FIELD["STOREID"]:
        return struct.pack("<QQ", *g("sid", (0, 0)))
    if f == FIELD["XVER"]:  # expected versions of fid, fid2: (sid, vv) each
        out = b""
        for sid, vv in g("xver", (((0, 0), []), ((0, 0), []))):
            out += struct.pack("<QQB", *sid, len(vv)) + b"".join(struct.pack("<I", x) for x in vv)
        return out
    raise ValueError("field %#x" % f)


def encode_request(mtype, **m):
    req = MSG_FIELDS[mtype][0]
    return b"".join(encode_field(1 << i, m) for i in range(len(FIELD_NAMES)) if req & (1 << i))


def read_attr(r):
    a = {"fid": (r.u32(), r.take(16))}
    (a["mode"], a["nlink"], a["uid"], a["gid"]) = struct.unpack("<IIII", r.take(16))
    (a["rdev"], a["size"], a["blocks"]) = struct.unpack("<QQQ", r.take(24))
    a["atime"], a["mtime"], a["ctime"] = (struct.unpack("<qI", r.take(12)) for _ in range(3))
    a["dv"] = r.u64()
    a["vv"] = [r.u32() for _ in range(r.take(1)[0])]
    a["sid"] = (r.u64(), r.u64())
    a["flags"] = r.u32()
    return a


def decode_reply(mtype, f):
    """{'status': st, field: value...}; fields only on ST_OK."""
    out = {"status": f.status}
    if f.status != ST_OK:
        return out
    r, rep = f.fields(), MSG_FIELDS[mtype][1]
    for i, name in enumerate(FIELD_NAMES):
        if not rep & (1 << i):
            continue
        if name in ("ATTR", "ATTR2"):
            out[name.lower()] = read_attr(r)
        elif name == "VSG":
            out["vsg"] = [r.u32() for _ in range(r.take(1)[0])]
        elif name == "STAMP":
            out["stamp"] = r.u64()
        elif name == "MFLAGS":
            out["mflags"] = r.u32()
        elif name == "DATA":
            out["data"] = r.blob(CHUNK_MAX)
        else:
            raise WireError("no decoder for %s" % name)
    r.done()
    return out


def call_acked(conn, mtype, **m):
    """Sends a request on conn (a Conn after hello) and returns its decoded
    reply; callback breaks pushed meanwhile are acknowledged so the server
    never holds another caller's reply for them."""
    conn.reqid += 1
    rid = conn.reqid
    conn.send_raw(frame(mtype, encode_request(mtype, **m), reqid=rid))
    while True:
        f = conn.recv_frame()
        if f.flags & FRAME_F_PUSH:
            if f.reqid != 0:
                conn.send_raw(frame(f.type, u32(ST_OK), flags=FRAME_F_REPLY, reqid=f.reqid))
            continue
        if f.reqid != rid or f.type != mtype or not f.flags & FRAME_F_REPLY:
            raise WireError("unexpected reply %r to type %d" % (f, mtype))
        return decode_reply(mtype, f)


def cml_ver(dv=0, sid=(0, 0), vv=()):
    """Expected version of an object: data_version, StoreId, VV (all zero: unchecked)."""
    return u64(dv) + struct.pack("<QQ", *sid) + bytes([len(vv)]) + b"".join(u32(x) for x in vv)


def cml_ver_of(attr):
    """The expected version matching an attr dict from read_attr."""
    return cml_ver(attr["dv"], attr["sid"], attr["vv"])


def _cml_head(op, sid, flags=0):
    return bytes([op]) + u32(flags) + struct.pack("<QQ", *sid)


def cml_create(sid, dirf, name, fid, mode, rdev=0, target=""):
    return (_cml_head(CML_CREATE, sid) + wfid(dirf) + wstr(name) + wfid(fid) + u32(mode) +
            u64(rdev) + wstr(target))


def cml_remove(sid, dirf, name, fid, ver=None, flags=0):
    return (_cml_head(CML_REMOVE, sid, flags) + wfid(dirf) + wstr(name) + wfid(fid) +
            (ver if ver is not None else cml_ver()))


def cml_rename(sid, dirf, name, dir2, name2, fid, fid2=None, ver2=None, flags=0):
    fid2 = fid2 if fid2 is not None else (fid[0], bytes(16))
    return (_cml_head(CML_RENAME, sid, flags) + wfid(dirf) + wstr(name) + wfid(dir2) + wstr(name2) +
            wfid(fid) + wfid(fid2) + (ver2 if ver2 is not None else cml_ver()))


def cml_link(sid, dirf, name, fid):
    return _cml_head(CML_LINK, sid) + wfid(dirf) + wstr(name) + wfid(fid)


def cml_setattr(sid, fid, sattr, ver=None):
    return _cml_head(CML_SETATTR, sid) + wfid(fid) + (ver if ver is not None else cml_ver()) + wsattr(sattr)


def cml_store(sid, fid, handle, length, mtime=(0, 0), ver=None):
    return (_cml_head(CML_STORE, sid) + wfid(fid) + (ver if ver is not None else cml_ver()) +
            u64(handle) + u64(length) + wtime(mtime))


def store_reint(conn, fid, data, handle, cred=(0, 0, [])):
    """Uploads data under handle with STORE_REINT (kept, not committed)."""
    return call_acked(conn, MSG_STORE, cred=cred, fid=fid, offset=0, length=len(data),
                      handle=handle, mflags=STORE_FIRST | STORE_LAST | STORE_REINT, data=data)


def reintegrate(conn, vol, records, cred=(0, 0, []), mflags=0):
    """REINTEGRATE of the packed records; returns (status, [per-record status], stamp)."""
    rep = call_acked(conn, MSG_REINTEGRATE, cred=cred, fid=(vol, bytes(16)), mflags=mflags,
                     data=b"".join(records))
    if rep["status"] != ST_OK:
        return rep["status"], None, None
    d = rep["data"]
    return ST_OK, list(struct.unpack("<%dI" % (len(d) // 4), d)), rep["stamp"]
