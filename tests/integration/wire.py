"""wire.py - the integration tests' one codec for the Encore wire protocol.

Follows common/proto.h, common/msgtab.h and common/msg.c (docs/protocol.md
documents them): a frame is a 12-byte header (u32 body_len, u16 type,
u16 flags, u32 reqid, little-endian) and a body whose fields are encoded in
ascending bit order of enum msg_field. A reply has FRAME_F_REPLY set and its
body starts with a u32 wire status; fields follow only on ST_OK. Strings are
u16 len + bytes; F_DATA is u32 len + bytes.

What is here:
- FIELD_NAMES/FIELD and MSG_FIELDS: the field bits and every message's
  request and reply field sets, as common/msgtab.h has them. A protocol
  change is made here once (and in the C codec), not in each test file.
- FIELD_CODEC: for each field, the key it has in a message dict, its default
  and its encoder; Reader has a decoder for each (encode_request,
  decode_fields, decode_reply use both).
- Conn: one TCP connection: raw frames (send_raw, recv_frame, call) for
  malformed-input tests, and typed messages (send, wait, request) that
  decode replies and record and acknowledge callback breaks. AckingConn
  acknowledges breaks from a reader thread while the test waits elsewhere.
- CML records and REINTEGRATE helpers (test_4_server_reint).
"""

import os
import queue
import socket
import struct
import threading

PROTO_VERSION = 1
FRAME_HDR_LEN = 12
CHUNK_MAX = 512 * 1024
FRAME_BODY_MAX = CHUNK_MAX + 16384
NAME_MAX_LEN = 255
TARGET_MAX_LEN = 4095
REALM_MAX_LEN = 253
VV_MAX = 8
GROUPS_MAX = 32

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
MSG_VOLINFO = 18
MSG_COP2 = 19
MSG_RESOLVE = 20
MSG_CONFLICTS = 21
MSG_REPAIR = 22
MSG_REINTEGRATE = 23
MSG_COP2_BATCH = 24
MSG_CTL = 32
MSG_RES_GET = 40
MSG_RES_SCAN = 41
MSG_RES_INSTALL = 42
MSG_RES_LOG = 43
MSG_RES_APPLY = 44
MSG_RES_MARK = 45
MSG_TYPE_MAX = 33  # an unknown type for test_6_badinput (proto.h's table bound is 64)

ST_OK, ST_PERM, ST_NOENT, ST_IO, ST_ACCES, ST_EXIST, ST_XDEV, ST_NOTDIR = range(8)
ST_ISDIR, ST_INVAL, ST_FBIG, ST_NOSPC, ST_ROFS, ST_MLINK, ST_NAMETOOLONG = range(8, 15)
ST_NOTEMPTY, ST_STALE, ST_NOTSUP, ST_PROTO, ST_BUSY, ST_LOOP, ST_AGAIN = range(15, 22)
ST_NOMEM, ST_TIMEDOUT, ST_DQUOT, ST_OVERFLOW, ST_NOSYS, ST_RANGE, ST_BADF = range(22, 29)
ST_CONFLICT, ST_VERSION, ST_BADVERSION = 100, 101, 102

S_IFDIR, S_IFREG, S_IFLNK, S_IFIFO = 0o040000, 0o100000, 0o120000, 0o010000
STORE_FIRST, STORE_LAST, STORE_ABORT, STORE_REINT = 1, 2, 4, 8
REMOVE_DIR = 1
RENAME_F_NOREPLACE, RENAME_F_EXCHANGE = 1, 2
READDIR_EOF = 1
RES_EOF = 1
ATTR_F_CONFLICT = 1
REPAIR_KEEP_ONE, REPAIR_KEEP_ALL = 1, 2
SA_MODE, SA_UID, SA_GID, SA_SIZE, SA_ATIME, SA_MTIME, SA_ATIME_NOW, SA_MTIME_NOW = (
    1 << i for i in range(8))
ROOT_OID = b"\0" * 15 + b"\1"

_HDR = struct.Struct("<IHHI")


class ConnClosed(EOFError):
    """The peer closed the connection (EOF or reset) before a full frame."""


class WireError(Exception):
    """A reply that does not decode as the table says."""


# --- fields and messages (common/proto.h enum msg_field, common/msgtab.h) ----

FIELD_NAMES = ("VERSION CLIENT_ID SERVER_ID INCARNATION REALM CRED FID FID2 NAME NAME2 "
               "TARGET SATTR MODE RDEV OFFSET LENGTH HANDLE EXPECT MFLAGS ATTR ATTR2 FSSTAT "
               "DATA STOREID VSG STAMP XVER").split()
FIELD = {n: 1 << i for i, n in enumerate(FIELD_NAMES)}


def field_set(*names):
    v = 0
    for n in names:
        v |= FIELD[n]
    return v


_ = field_set
# {type: (request fields, reply fields on ST_OK)}, as MSG_TABLE in common/msgtab.h.
MSG_FIELDS = {
    MSG_HELLO: (_("VERSION", "CLIENT_ID", "REALM", "NAME"),
                _("VERSION", "SERVER_ID", "INCARNATION", "REALM")),
    MSG_GETROOT: (_("CRED", "REALM"), _("ATTR", "VSG")),
    MSG_GETATTR: (_("CRED", "FID", "XVER"), _("ATTR")),
    MSG_LOOKUP: (_("CRED", "FID", "NAME", "XVER"), _("ATTR", "ATTR2")),
    MSG_SETATTR: (_("CRED", "FID", "SATTR", "STOREID", "XVER"), _("ATTR")),
    MSG_CREATE: (_("CRED", "FID", "FID2", "NAME", "TARGET", "MODE", "RDEV", "MFLAGS", "STOREID",
                   "XVER"), _("ATTR", "ATTR2")),
    MSG_REMOVE: (_("CRED", "FID", "NAME", "MFLAGS", "STOREID", "XVER"), _("ATTR", "ATTR2")),
    MSG_RENAME: (_("CRED", "FID", "FID2", "NAME", "NAME2", "MFLAGS", "STOREID", "XVER"),
                 _("ATTR", "ATTR2")),
    MSG_LINK: (_("CRED", "FID", "FID2", "NAME", "STOREID", "XVER"), _("ATTR", "ATTR2")),
    MSG_READLINK: (_("CRED", "FID"), _("TARGET")),
    MSG_READDIR: (_("CRED", "FID", "NAME", "LENGTH", "XVER"), _("MFLAGS", "ATTR", "DATA")),
    MSG_FETCH: (_("CRED", "FID", "OFFSET", "LENGTH", "EXPECT"), _("ATTR", "DATA")),
    MSG_STORE: (_("CRED", "FID", "SATTR", "OFFSET", "LENGTH", "HANDLE", "EXPECT", "MFLAGS", "DATA",
                  "STOREID", "XVER"), _("ATTR")),
    MSG_STATFS: (_("CRED", "FID"), _("FSSTAT")),
    MSG_PING: (0, _("SERVER_ID", "INCARNATION")),
    MSG_STATS: (0, _("DATA")),
    MSG_CB_BREAK: (_("FID"), 0),
    MSG_VOLINFO: (_("CRED", "FID"), _("VSG", "STAMP")),
    MSG_COP2: (_("FID", "MFLAGS", "STOREID"), 0),
    MSG_RESOLVE: (_("CRED", "FID", "MFLAGS"), _("ATTR")),
    MSG_CONFLICTS: (_("CRED", "FID", "NAME"), _("MFLAGS", "DATA")),
    MSG_REPAIR: (_("CRED", "SERVER_ID", "FID", "MFLAGS", "STOREID"), _("ATTR")),
    MSG_REINTEGRATE: (_("CRED", "FID", "MFLAGS", "DATA"), _("DATA", "STAMP")),
    MSG_COP2_BATCH: (_("FID", "DATA"), 0),
    MSG_CTL: (_("DATA"), _("DATA")),
    MSG_RES_GET: (_("FID", "MFLAGS"), _("FID2", "NAME", "TARGET", "ATTR")),
    MSG_RES_SCAN: (_("FID"), _("FID", "MFLAGS", "DATA")),
    MSG_RES_INSTALL: (_("FID", "TARGET", "OFFSET", "LENGTH", "HANDLE", "MFLAGS", "ATTR", "ATTR2",
                        "DATA"), _("ATTR")),
    MSG_RES_LOG: (_("FID", "OFFSET"), _("OFFSET", "MFLAGS", "ATTR", "DATA")),
    MSG_RES_APPLY: (_("FID", "MFLAGS", "ATTR", "ATTR2", "DATA"), _("ATTR")),
    MSG_RES_MARK: (_("FID", "MFLAGS"), _("ATTR")),
}
del _


# --- encoders ----------------------------------------------------------------

def u8(v):
    return struct.pack("<B", v)


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


def wfid(f):
    """A fid is (vol, 16-byte oid)."""
    return u32(f[0]) + bytes(f[1])


def wtime(t):
    return struct.pack("<qI", t[0], t[1])


def wsid(sid):
    """A StoreId is (client, seq)."""
    return struct.pack("<QQ", *sid)


def wvv(vv):
    """A version vector (or a VSG): u8 n + n * u32."""
    return u8(len(vv)) + b"".join(u32(x) for x in vv)


def wcred(cred):
    """(uid, gid, [groups])."""
    uid, gid, groups = cred
    return struct.pack("<III", uid, gid, len(groups)) + b"".join(u32(x) for x in groups)


def wsattr(sa):
    """(valid, mode, uid, gid, size, atime, mtime); times are (sec, nsec)."""
    valid, mode, uid, gid, size, at, mt = sa
    return struct.pack("<IIIIQ", valid, mode, uid, gid, size) + wtime(at) + wtime(mt)


def wattr(a):
    """An attr dict as Reader.attr returns it."""
    return (wfid(a["fid"]) + struct.pack("<IIIIQQQ", a["mode"], a["nlink"], a["uid"], a["gid"],
                                         a["rdev"], a["size"], a["blocks"]) +
            wtime(a["atime"]) + wtime(a["mtime"]) + wtime(a["ctime"]) + u64(a["dv"]) +
            wvv(a["vv"]) + wsid(a["sid"]) + u32(a["flags"]))


def wfsstat(s):
    """(bsize, blocks, bfree, bavail, files, ffree, namemax)."""
    return struct.pack("<IQQQQQI", *s)


def wxver(xv):
    """F_XVER: the expected versions of FID and FID2, ((sid, vv), (sid, vv));
    a zero StoreId expects nothing."""
    return b"".join(wsid(sid) + wvv(vv) for sid, vv in xv)


NO_XVER = (((0, 0), []), ((0, 0), []))
_NO_SATTR = (0, 0, 0, 0, 0, (0, 0), (0, 0))
_NO_ATTR = dict(fid=(0, bytes(16)), mode=0, nlink=0, uid=0, gid=0, rdev=0, size=0, blocks=0,
                atime=(0, 0), mtime=(0, 0), ctime=(0, 0), dv=0, vv=[], sid=(0, 0), flags=0)

# {field name: (key in a message dict, default, encoder, Reader method decoding it)}.
FIELD_CODEC = {
    "VERSION": ("version", PROTO_VERSION, u32, "u32"),
    "CLIENT_ID": ("client_id", 1, u64, "u64"),
    "SERVER_ID": ("server_id", 0, u32, "u32"),
    "INCARNATION": ("incarnation", 0, u64, "u64"),
    "REALM": ("realm", "test", wstr, "realm"),
    "CRED": ("cred", (0, 0, []), wcred, "cred"),
    "FID": ("fid", None, wfid, "fid"),
    "FID2": ("fid2", None, wfid, "fid"),
    "NAME": ("name", "", wstr, "name"),
    "NAME2": ("name2", "", wstr, "name"),
    "TARGET": ("target", "", wstr, "target"),
    "SATTR": ("sattr", _NO_SATTR, wsattr, "sattr"),
    "MODE": ("mode", 0, u32, "u32"),
    "RDEV": ("rdev", 0, u64, "u64"),
    "OFFSET": ("offset", 0, u64, "u64"),
    "LENGTH": ("length", 0, u64, "u64"),
    "HANDLE": ("handle", 0, u64, "u64"),
    "EXPECT": ("expect", 0, u64, "u64"),
    "MFLAGS": ("mflags", 0, u32, "u32"),
    "ATTR": ("attr", _NO_ATTR, wattr, "attr"),
    "ATTR2": ("attr2", _NO_ATTR, wattr, "attr"),
    "FSSTAT": ("fsstat", (0,) * 7, wfsstat, "fsstat"),
    "DATA": ("data", b"", blob, "data"),
    "STOREID": ("sid", (0, 0), wsid, "storeid"),
    "VSG": ("vsg", [], wvv, "vv"),
    "STAMP": ("stamp", 0, u64, "u64"),
    "XVER": ("xver", NO_XVER, wxver, "xver"),
}
assert sorted(FIELD_CODEC) == sorted(FIELD_NAMES)


def field_name(bit):
    return FIELD_NAMES[bit.bit_length() - 1]


def encode_field(bit, m):
    """One field of message dict m (absent or None: the field's default)."""
    key, default, enc, _ = FIELD_CODEC[field_name(bit)]
    v = m.get(key)
    if v is None:
        v = default
    if v is None:
        raise ValueError("field %s (%r) has no default" % (field_name(bit), key))
    return enc(v)


def encode_fields(fields, m):
    return b"".join(encode_field(1 << i, m) for i in range(len(FIELD_NAMES)) if fields & (1 << i))


def encode_request(mtype, **m):
    return encode_fields(MSG_FIELDS[mtype][0], m)


def frame(mtype, body=b"", flags=0, reqid=1, body_len=None):
    """A raw frame; body_len overrides the header's length (to lie)."""
    n = len(body) if body_len is None else body_len
    return _HDR.pack(n, mtype, flags, reqid) + body


def hello_body(version=PROTO_VERSION, client_id=None, realm="local", name="pytest"):
    if client_id is None:
        client_id = int.from_bytes(os.urandom(8), "little") or 1
    return encode_request(MSG_HELLO, version=version, client_id=client_id, realm=realm, name=name)


# --- decoding ----------------------------------------------------------------

class Reader:
    """Bounded reader over buf: a short read raises WireError."""

    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def raw(self, n):
        if self.pos + n > len(self.buf):
            raise WireError("short read: want %d at %d of %d" % (n, self.pos, len(self.buf)))
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    take = raw

    def unpack(self, fmt):
        """struct fmt; one value alone, several as a tuple."""
        v = struct.unpack(fmt, self.raw(struct.calcsize(fmt)))
        return v if len(v) > 1 else v[0]

    def more(self):
        return self.pos < len(self.buf)

    def u8(self):
        return self.raw(1)[0]

    def u16(self):
        return self.unpack("<H")

    def u32(self):
        return self.unpack("<I")

    def u64(self):
        return self.unpack("<Q")

    def str(self, maxlen=0xFFFF):
        n = self.u16()
        if n > maxlen:
            raise WireError("string of %d > %d" % (n, maxlen))
        return self.raw(n).decode()

    def realm(self):
        return self.str(REALM_MAX_LEN)

    def name(self):
        return self.str(NAME_MAX_LEN)

    def target(self):
        return self.str(TARGET_MAX_LEN)

    def blob(self, maxlen):
        n = self.u32()
        if n > maxlen:
            raise WireError("blob of %d > %d" % (n, maxlen))
        return self.raw(n)

    def data(self):
        return self.blob(CHUNK_MAX)

    def fid(self):
        return (self.u32(), self.raw(16))

    def time(self):
        return self.unpack("<qI")

    def storeid(self):
        return self.unpack("<QQ")

    def vv(self):
        n = self.u8()
        if n > VV_MAX:
            raise WireError("vector of %d > %d" % (n, VV_MAX))
        return [self.u32() for _ in range(n)]

    def cred(self):
        uid, gid, n = self.unpack("<III")
        if n > GROUPS_MAX:
            raise WireError("%d groups > %d" % (n, GROUPS_MAX))
        return (uid, gid, [self.u32() for _ in range(n)])

    def sattr(self):
        return self.unpack("<IIIIQ") + (self.time(), self.time())

    def attr(self):
        a = {"fid": self.fid()}
        (a["mode"], a["nlink"], a["uid"], a["gid"], a["rdev"], a["size"],
         a["blocks"]) = self.unpack("<IIIIQQQ")
        a["atime"], a["mtime"], a["ctime"] = self.time(), self.time(), self.time()
        a["dv"] = self.u64()
        a["vv"] = self.vv()
        a["sid"] = self.storeid()
        a["flags"] = self.u32()
        return a

    def fsstat(self):
        return self.unpack("<IQQQQQI")

    def xver(self):
        return tuple((self.storeid(), self.vv()) for _ in range(2))

    def done(self):
        if self.pos != len(self.buf):
            raise WireError("%d trailing bytes" % (len(self.buf) - self.pos))


def read_attr(r):
    return r.attr()


def decode_fields(fields, r):
    """{key: value} of the fields in the set, read from Reader r."""
    out = {}
    for i, name in enumerate(FIELD_NAMES):
        if fields & (1 << i):
            key, _, _, dec = FIELD_CODEC[name]
            out[key] = getattr(Reader, dec)(r)
    return out


def decode_reply(mtype, f):
    """{'status': st, key: value...} of reply Frame f; fields only on ST_OK.
    The body must be consumed exactly."""
    if mtype not in MSG_FIELDS:
        raise WireError("no table entry for type %d" % mtype)
    r = f.fields()
    out = {"status": f.status}
    if out["status"] == ST_OK:
        out.update(decode_fields(MSG_FIELDS[mtype][1], r))
    r.done()
    return out


def decode_request(f):
    """{key: value} of a request or push Frame f (its request fields)."""
    if f.type not in MSG_FIELDS:
        raise WireError("no table entry for type %d" % f.type)
    r = Reader(f.body)
    out = decode_fields(MSG_FIELDS[f.type][0], r)
    r.done()
    return out


def dirents(data):
    """READDIR's packed entries (docs/protocol.md): [(name, fid, mode)]."""
    r, out = Reader(data), []
    while r.more():
        name = r.raw(r.u8()).decode()
        out.append((name, r.fid(), r.u32()))
    return out


def conflict_entries(data):
    """CONFLICTS' packed entries: [(fid, path)]."""
    r, out = Reader(data), []
    while r.more():
        out.append((r.fid(), r.target()))
    return out


class Frame:
    """One received frame; unpacks as (type, flags, reqid, body)."""

    def __init__(self, mtype, flags, reqid, body):
        self.type = mtype
        self.flags = flags
        self.reqid = reqid
        self.body = body

    def __iter__(self):
        return iter((self.type, self.flags, self.reqid, self.body))

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


# --- connections -------------------------------------------------------------

class Conn:
    """One TCP connection to an encore-server.

    Raw: send_raw, recv_frame, call (a Frame back). Typed: send(type,
    **fields) returns the reqid, wait(reqid) the decoded reply, request does
    both; fields missing from the call take the class's defaults, then
    FIELD_CODEC's. Callback breaks that arrive meanwhile are recorded in
    pushes (their fids) and push_rids, and acknowledged while ack is set."""

    defaults = {}

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.reqid = 0
        self.pushes = []
        self.push_rids = []
        self.ack = True
        self._rbuf = b""
        self._wlock = threading.Lock()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        with self._wlock:
            self.sock.sendall(data)

    def _read_frame(self):
        """The next frame off the socket. What arrived of a frame not yet
        whole stays buffered (a socket timeout loses nothing)."""
        while True:
            if len(self._rbuf) >= FRAME_HDR_LEN:
                n, mtype, flags, reqid = _HDR.unpack_from(self._rbuf)
                if n > FRAME_BODY_MAX:
                    raise WireError("server sent body_len %d > max" % n)
                if len(self._rbuf) >= FRAME_HDR_LEN + n:
                    body = self._rbuf[FRAME_HDR_LEN:FRAME_HDR_LEN + n]
                    self._rbuf = self._rbuf[FRAME_HDR_LEN + n:]
                    return Frame(mtype, flags, reqid, body)
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                raise ConnClosed("connection reset")
            if not chunk:
                raise ConnClosed("EOF after %d bytes of a frame" % len(self._rbuf))
            self._rbuf += chunk

    def recv_frame(self):
        """Next frame; push frames (callback breaks) are returned too."""
        return self._read_frame()

    def recv_reply(self, reqid=None):
        while True:
            f = self.recv_frame()
            if f.flags & FRAME_F_PUSH:
                continue
            if reqid is not None and f.reqid != reqid:
                raise WireError("reply reqid %d, want %d" % (f.reqid, reqid))
            return f

    def call_frame(self, mtype, body=b""):
        """Sends a request with a raw body; returns the reply Frame."""
        self.reqid += 1
        self.send_raw(frame(mtype, body, reqid=self.reqid))
        f = self.recv_reply(self.reqid)
        if f.type != mtype or not f.flags & FRAME_F_REPLY:
            raise WireError("unexpected reply %r to type %d" % (f, mtype))
        return f

    call = call_frame

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

    # --- typed messages ----------------------------------------------------

    def send(self, mtype, flags=0, **m):
        """Sends the request of type mtype from fields m; returns its reqid."""
        self.reqid += 1
        body = encode_request(mtype, **{**self.defaults, **m})
        self.send_raw(frame(mtype, body, flags=flags, reqid=self.reqid))
        return self.reqid

    def on_push(self, f):
        """A push from the server: records a break's fid and acknowledges it
        (a reply frame with the push's reqid, status OK) if it asks."""
        if f.type != MSG_CB_BREAK:
            raise WireError("push of type %d" % f.type)
        self.pushes.append(decode_request(f)["fid"])
        self.push_rids.append(f.reqid)
        if f.reqid != 0 and self.ack:
            self.send_raw(frame(f.type, u32(ST_OK), flags=FRAME_F_REPLY, reqid=f.reqid))

    def wait(self, rid):
        """The decoded reply to request rid, handling pushes meanwhile."""
        while True:
            f = self.recv_frame()
            if f.flags & FRAME_F_PUSH:
                self.on_push(f)
                continue
            if f.reqid != rid or not f.flags & FRAME_F_REPLY:
                raise WireError("unexpected frame %r waiting for reqid %d" % (f, rid))
            return decode_reply(f.type, f)

    def request(self, mtype, **m):
        """send then wait: the decoded reply ({'status': st, ...})."""
        return self.wait(self.send(mtype, **m))

    def wait_push(self, fid):
        """Reads (and acknowledges) pushes until a break for fid arrives."""
        while fid not in self.pushes:
            f = self.recv_frame()
            if not f.flags & FRAME_F_PUSH:
                raise WireError("reply %r without a request" % f)
            self.on_push(f)

    # --- messages --------------------------------------------------------

    def _call_ok(self, what, mtype, body=b""):
        """The reply fields of a call that must succeed; on another status,
        WireError with the status in .status."""
        f = self.call_frame(mtype, body)
        if f.status != ST_OK:
            e = WireError("%s: status %d" % (what, f.status))
            e.status = f.status
            raise e
        out = decode_reply(mtype, f)
        del out["status"]
        return out

    def hello(self, version=PROTO_VERSION, realm="local", name="pytest", client_id=None):
        """Returns a dict of the reply fields; raises WireError on a non-OK status
        (the status is in .status of the exception)."""
        return self._call_ok("hello", MSG_HELLO, hello_body(version, client_id, realm, name))

    def ping(self):
        return self._call_ok("ping", MSG_PING)

    def stats(self):
        """The server's counters as {name: int}."""
        return parse_stats(self._call_ok("stats", MSG_STATS)["data"].decode())


class AckingConn(Conn):
    """A Conn whose reader thread takes every frame off the socket as it
    arrives and acknowledges callback breaks at once (the server holds an
    updater's reply until every holder has: docs/protocol.md "Callback
    breaks"), even while the test waits on another connection. Blocking
    socket (timeout None): the reader waits as long as the connection lives."""

    def __init__(self, port, host="127.0.0.1", timeout=None, reply_timeout=60):
        super().__init__(port, host, timeout)
        self.reply_timeout = reply_timeout
        self._q = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        try:
            while True:
                f = self._read_frame()
                if f.flags & FRAME_F_PUSH:
                    self.on_push(f)
                else:
                    self._q.put(f)
        except (OSError, EOFError, WireError):
            pass
        self._q.put(None)

    def recv_frame(self):
        """Next reply frame (pushes were handled by the reader thread);
        ConnClosed once the connection is gone."""
        f = self._q.get(timeout=self.reply_timeout)
        if f is None:
            self._q.put(None)
            raise ConnClosed("connection closed")
        return f


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


# --- CML records and REINTEGRATE (test_4_server_reint) ------------------------
# docs/protocol.md "CML records (REINTEGRATE)".

CML_CREATE, CML_REMOVE, CML_RENAME, CML_LINK, CML_SETATTR, CML_STORE = range(1, 7)
CML_ST_APPLIED, CML_ST_ALREADY = 0, 1
CML_BATCH_MAX = 512
STORES_MAX, STORES_FILE_MAX, STORE_SMALL_MAX = 256, 64, 16 << 10  # uploads per connection


def call_acked(conn, mtype, **m):
    """Sends a request on conn (a Conn after hello) and returns its decoded
    reply; callback breaks pushed meanwhile are acknowledged so the server
    never holds another caller's reply for them."""
    return conn.request(mtype, **m)


def cml_ver(dv=0, sid=(0, 0), vv=()):
    """Expected version of an object: data_version, StoreId, VV (all zero: unchecked)."""
    return u64(dv) + wsid(sid) + wvv(vv)


def cml_ver_of(attr):
    """The expected version matching an attr dict from read_attr."""
    return cml_ver(attr["dv"], attr["sid"], attr["vv"])


def _cml_head(op, sid, flags=0):
    return u8(op) + u32(flags) + wsid(sid)


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
