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
