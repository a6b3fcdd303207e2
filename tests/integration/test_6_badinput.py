"""Family 6: hostile input on the server's TCP port. Each malformed frame
gets an error reply and/or a closed connection, never an OK reply or a hang;
afterwards the server still serves a normal client (HELLO + PING on a new
connection) and the FUSE mount still works."""

import os
import socket
import struct

import pytest

import wire
from harness import read_bytes, write_bytes

SILENCE = 10.0  # seconds without a reply or a close that count as a hang
AFTER_REPLY = 1.0  # how long to watch for a close once an error reply came


def outcome(conn, timeout=SILENCE):
    """Reads until the server closes or goes quiet. Returns (statuses of
    the replies received, closed?)."""
    statuses = []
    conn.sock.settimeout(timeout)
    while True:
        try:
            f = conn.recv_frame()
        except wire.ConnClosed:
            return statuses, True
        except (socket.timeout, TimeoutError):
            return statuses, False
        except wire.WireError as e:
            pytest.fail("server sent a malformed frame: %s" % e)
        if f.flags & wire.FRAME_F_PUSH:
            continue
        statuses.append(f.status)
        conn.sock.settimeout(AFTER_REPLY)


def assert_rejected(conn, what):
    statuses, closed = outcome(conn)
    assert wire.ST_OK not in statuses, "%s: got an OK reply (%r)" % (what, statuses)
    assert closed or statuses, "%s: neither an error reply nor a close within %.0f s" % (what, SILENCE)
    return statuses, closed


@pytest.fixture
def healthy(server, client):
    """Checks, after the test body, that the server still serves."""
    yield server
    assert server.running(), "server died"
    h, p = wire.hello_ping_ok(server.port)
    assert h["realm"] == "local"
    name = "alive-%d" % os.getpid()
    write_bytes(client.root / name, b"still works")
    assert read_bytes(client.root / name) == b"still works"
    os.unlink(client.root / name)


def conn_ready(port):
    c = wire.Conn(port)
    c.hello()
    return c


def test_garbage_header(healthy):
    with wire.Conn(healthy.port) as c:
        c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        statuses, closed = assert_rejected(c, "HTTP request")
        assert closed, "connection left open after a garbage header"


def test_random_garbage(healthy):
    with wire.Conn(healthy.port) as c:
        c.send_raw(bytes(range(256)) * 8)
        _, closed = assert_rejected(c, "random bytes")
        assert closed


def test_body_len_above_maximum(healthy):
    with wire.Conn(healthy.port) as c:
        c.send_raw(wire.frame(wire.MSG_HELLO, b"", body_len=wire.FRAME_BODY_MAX + 1))
        _, closed = assert_rejected(c, "body_len over the maximum")
        assert closed, "connection left open after an oversized body_len"


def test_body_len_huge_after_hello(healthy):
    c = conn_ready(healthy.port)
    with c:
        c.send_raw(wire.frame(wire.MSG_PING, b"", body_len=0xFFFFFFFF))
        _, closed = assert_rejected(c, "body_len 0xffffffff")
        assert closed


def test_truncated_body_then_close(healthy):
    with wire.Conn(healthy.port) as c:
        body = wire.hello_body()
        c.send_raw(wire.frame(wire.MSG_HELLO, body[:5], body_len=len(body)))
    c = conn_ready(healthy.port)
    with c:
        c.send_raw(wire.frame(wire.MSG_PING, b"xy", body_len=100))
    with wire.Conn(healthy.port) as c:
        c.send_raw(b"\x05\x00")  # half a header


def test_unknown_type(healthy):
    for t in (0, 18, 31, wire.MSG_TYPE_MAX, 999, 0xFFFF):
        c = conn_ready(healthy.port)
        with c:
            c.reqid += 1
            c.send_raw(wire.frame(t, b"", reqid=c.reqid))
            statuses, closed = assert_rejected(c, "unknown type %d" % t)
            if not closed:
                # An error reply and the connection stays usable.
                assert c.ping()["server_id"] == 1


def test_unknown_type_before_hello(healthy):
    with wire.Conn(healthy.port) as c:
        c.send_raw(wire.frame(200, b"abc"))
        assert_rejected(c, "unknown type before HELLO")


def test_wrong_protocol_version(healthy):
    with wire.Conn(healthy.port) as c:
        f = c.call(wire.MSG_HELLO, wire.hello_body(version=wire.PROTO_VERSION + 41))
        assert f.flags & wire.FRAME_F_REPLY
        assert f.status == wire.ST_BADVERSION
        assert len(f.body) == 4, "error reply carries fields"
        assert c.is_closed(SILENCE), "connection not closed after ST_BADVERSION"


def test_version_zero(healthy):
    with wire.Conn(healthy.port) as c:
        f = c.call(wire.MSG_HELLO, wire.hello_body(version=0))
        assert f.status == wire.ST_BADVERSION
        assert c.is_closed(SILENCE)


def test_request_before_hello(healthy):
    for t, body in ((wire.MSG_STATS, b""), (wire.MSG_GETROOT, struct.pack("<III", 0, 0, 0) + wire.wstr("local")),
                    (wire.MSG_GETATTR, struct.pack("<III", 0, 0, 0) + struct.pack("<I", 1) + bytes(15) + b"\x01"
                     + wire.wxver(wire.NO_XVER))):
        with wire.Conn(healthy.port) as c:
            c.send_raw(wire.frame(t, body, reqid=7))
            assert_rejected(c, "type %d before HELLO" % t)


def test_ping_before_hello_allowed(healthy):
    """PING is allowed in CS_NEW (msgtab.h)."""
    with wire.Conn(healthy.port) as c:
        assert c.ping()["server_id"] == 1


def test_second_hello(healthy):
    c = conn_ready(healthy.port)
    with c:
        c.reqid += 1
        c.send_raw(wire.frame(wire.MSG_HELLO, wire.hello_body(), reqid=c.reqid))
        assert_rejected(c, "second HELLO (HELLO is CS_NEW only)")


def test_oversized_name_length(healthy):
    # F_NAME is str <= NAME_MAX_LEN (255).
    body = wire.u32(wire.PROTO_VERSION) + wire.u64(1) + wire.wstr("local") + wire.wstr("n" * 300)
    with wire.Conn(healthy.port) as c:
        c.send_raw(wire.frame(wire.MSG_HELLO, body))
        assert_rejected(c, "HELLO with a 300-byte name")


def test_string_length_past_body(healthy):
    body = wire.u32(wire.PROTO_VERSION) + wire.u64(1) + wire.u16(5000) + b"local"
    with wire.Conn(healthy.port) as c:
        c.send_raw(wire.frame(wire.MSG_HELLO, body))
        assert_rejected(c, "string length beyond the body")


def test_oversized_realm(healthy):
    body = wire.u32(wire.PROTO_VERSION) + wire.u64(1) + wire.wstr("r" * 254) + wire.wstr("x")
    with wire.Conn(healthy.port) as c:
        c.send_raw(wire.frame(wire.MSG_HELLO, body))
        assert_rejected(c, "HELLO with a 254-byte realm")


def test_trailing_bytes(healthy):
    with wire.Conn(healthy.port) as c:
        c.send_raw(wire.frame(wire.MSG_HELLO, wire.hello_body() + b"extra"))
        assert_rejected(c, "HELLO with trailing bytes")


# F_XVER of a LOOKUP: two (StoreId, vector) pairs, zero (the name is what is bad).
NO_XVER = wire.wxver(wire.NO_XVER)


def test_name_with_slash_and_nul(healthy):
    c = conn_ready(healthy.port)
    with c:
        cred = struct.pack("<III", 0, 0, 0)
        root = struct.pack("<I", 1) + bytes(15) + b"\x01"
        for name in (b"a/b", b"a\0b"):
            c.reqid += 1
            body = cred + root + wire.u16(len(name)) + name + NO_XVER
            c.send_raw(wire.frame(wire.MSG_LOOKUP, body, reqid=c.reqid))
            statuses, closed = assert_rejected(c, "LOOKUP of %r" % name)
            if closed:
                c = conn_ready(healthy.port)


def test_lookup_name_too_long(healthy):
    c = conn_ready(healthy.port)
    with c:
        cred = struct.pack("<III", 0, 0, 0)
        root = struct.pack("<I", 1) + bytes(15) + b"\x01"
        body = cred + root + wire.wstr("x" * 256) + NO_XVER
        c.send_raw(wire.frame(wire.MSG_LOOKUP, body, reqid=3))
        assert_rejected(c, "LOOKUP with a 256-byte name")


def test_too_many_groups(healthy):
    c = conn_ready(healthy.port)
    with c:
        cred = struct.pack("<III", 0, 0, 33) + bytes(4 * 33)
        root = struct.pack("<I", 1) + bytes(15) + b"\x01"
        c.send_raw(wire.frame(wire.MSG_GETATTR, cred + root + wire.wxver(wire.NO_XVER), reqid=3))
        assert_rejected(c, "cred with 33 groups")


def test_reply_flag_from_client(healthy):
    with wire.Conn(healthy.port) as c:
        c.send_raw(wire.frame(wire.MSG_HELLO, wire.hello_body(), flags=wire.FRAME_F_REPLY))
        statuses, closed = outcome(c)
        assert wire.ST_OK not in statuses


def test_many_bad_connections_in_a_row(healthy):
    for i in range(50):
        with wire.Conn(healthy.port) as c:
            c.send_raw(os.urandom(12 + i))
    wire.hello_ping_ok(healthy.port)


def test_slow_sender_does_not_block_others(healthy):
    """A connection stuck in the middle of a frame must not stall others."""
    stuck = wire.Conn(healthy.port)
    try:
        body = wire.hello_body()
        stuck.send_raw(wire.frame(wire.MSG_HELLO, body[:3], body_len=len(body)))
        wire.hello_ping_ok(healthy.port)
    finally:
        stuck.close()
