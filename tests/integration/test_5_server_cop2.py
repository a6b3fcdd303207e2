"""Garbage collection of pending COP2 entries, over raw sockets against three
encore-servers started with a short --cop2-ttl (the realm of
test_5_server_resolve.py). An update whose phase two never comes (the client
died between the phases) leaves an entry on every replica; once older than
the bound the server drops it (STATS cop2_expired), a COP2 that comes later
does nothing, and resolution still brings the vectors level, as after a lost
COP2: the replicas hold the same StoreId (docs/replication.md)."""
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_5_server_resolve import (  # noqa: E402
    RESOLVE, RF, SERVER, Realm, attr, cop2, create, fetch_all, store, wait_for)
from wire import MSG_STATS as STATS  # noqa: E402

TTL = 2


class ShortTtlRealm(Realm):
    def start(self, i):
        rfd, wfd = os.pipe()
        log = open(os.path.join(self.dir, "s%d.log" % (i + 1)), "a")
        p = subprocess.Popen([SERVER, "--dir", self.sdir(i), "--listen", "127.0.0.1:%d" % self.ports[i],
                              "--peers", self.conf, "--ready-fd", str(wfd), "-vv",
                              "--cop2-ttl", str(TTL)], pass_fds=(wfd,), stderr=log)
        os.close(wfd)
        assert os.read(rfd, 1) == b"\n"
        os.close(rfd)
        self.procs[i] = p


@pytest.fixture
def realm():
    r = ShortTtlRealm()
    yield r
    r.close()


def stats(c):
    return dict(ln.split() for ln in c.call(STATS)["data"].decode().splitlines())


def test_cop2_entries_expire(realm):
    cs = [realm.conn(i) for i in range(3)]
    base = [int(stats(c)["cop2_expired"]) for c in cs]
    # Phase one everywhere; the client dies before phase two.
    sid = realm.sid()
    f, out = create(cs, RF, "f", sid=sid)
    assert all(o["status"] == 0 for o in out)
    assert [attr(c, f)["vv"] for c in cs] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    # An update whose COP2 comes in time is not touched.
    sid2 = realm.sid()
    g, _ = create(cs, RF, "g", sid=sid2)
    cop2(cs, sid2, 0b111)
    assert wait_for(lambda: all(int(stats(c)["cop2_expired"]) > b for c, b in zip(cs, base)), 4 * TTL + 5)
    # Only f's entry went (g's was taken by its COP2).
    assert [int(stats(c)["cop2_expired"]) - b for c, b in zip(cs, base)] == [1, 1, 1]
    # A COP2 after the drop does nothing.
    cop2(cs, sid, 0b111)
    assert [attr(c, f)["vv"] for c in cs] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert all(attr(c, g)["vv"] == attr(cs[0], g)["vv"] for c in cs)
    # Equal StoreIds: resolution merges the vectors, no conflict.
    assert cs[0].call(RESOLVE, fid=f, mflags=0)["status"] == 0
    a = [attr(c, f) for c in cs]
    assert all(x["vv"] == [1, 1, 1] and x["sid"] == sid and not x["flags"] for x in a), a
    # And the object takes updates as usual.
    sid3 = realm.sid()
    for c in cs:
        assert store(c, f, b"after", sid3)["status"] == 0
    cop2(cs, sid3, 0b111)
    assert all(attr(c, f)["vv"] == [2, 2, 2] for c in cs)
    assert all(fetch_all(c, f) == b"after" for c in cs)
    for c in cs:
        c.close()


def test_cop2_bad_ttl():
    r = subprocess.run([SERVER, "--dir", "/nonexistent", "--cop2-ttl", "0"], capture_output=True, text=True)
    assert r.returncode == 2 and "--cop2-ttl" in r.stderr
