"""Family 4: starting without network (docs/disconnected.md "Starting
without network"): with every server down, a client restarted on its cache
mounts, starts with every volume disconnected and serves its cached files;
new files written meanwhile reach the servers once they are back."""

import errno
import os
import time

import pytest

from harness import ctl, hoard_walk, read_bytes, write_bytes


def pattern(n, seed):
    return bytes((seed * 31 + i * 13) & 0xFF for i in range(n))


def volumes(client):
    r = ctl(client, "status")
    assert r["ok"], r
    return r["volumes"]


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            pytest.fail("timed out waiting for %s" % what)
        time.sleep(0.1)


def test_offline_start_serves_cache_then_reintegrates(cluster):
    s = cluster.server()
    a = cluster.client(s, name="a", extra_args=["--hoard-interval", "0"])
    b = cluster.client(s, name="b")
    files = {
        "f1": pattern(1000, 1),
        "dir/f2": pattern(70000, 2),
        "dir/sub/f3": pattern(3, 3),
        "empty": b"",
    }
    os.makedirs(a.root / "dir/sub")
    for p, d in files.items():
        write_bytes(a.root / p, d)
    os.symlink("f1", a.root / "link")
    # A file another client wrote, whose name a knows but whose data it
    # never fetched.
    write_bytes(b.root / "dir/uncached", b"never fetched by a")
    for p, d in files.items():
        assert read_bytes(a.root / p) == d
    names_dir = sorted(os.listdir(a.root / "dir"))
    assert names_dir == ["f2", "sub", "uncached"]
    names_root = sorted(os.listdir(a.root))
    assert os.readlink(a.root / "link") == "f1"
    # Lookups while disconnected need the directories' listings: the hoard
    # walk loads them (dir/sub was never listed).
    assert ctl(a, "hoard-add", path="%s/dir/sub" % a.realm, priority=100, flags="children")["ok"]
    w = hoard_walk(a)
    assert w["errors"] == 0 and w["listings"] >= 1, w

    # Every server goes away; the client restarts on the same cache.
    b.stop()
    s.stop()
    a.restart()
    vols = volumes(a)
    assert vols, "the volume table was not restored"
    assert [v["vsg"] for v in vols] == [[1]] and not vols[0]["avsg"], vols
    wait_for(lambda: all(v["state"] == "disconnected" for v in volumes(a)), 10,
             "the volume to be disconnected")
    assert all("cml_records" in v for v in volumes(a)), volumes(a)
    assert sorted(os.listdir(a.root)) == names_root
    assert sorted(os.listdir(a.root / "dir")) == names_dir
    for p, d in files.items():
        assert read_bytes(a.root / p) == d, p
    assert os.readlink(a.root / "link") == "f1"
    st = os.stat(a.root / "dir/f2")
    assert st.st_size == len(files["dir/f2"])
    # Not cached: fails at once instead of waiting for a server.
    t0 = time.monotonic()
    with pytest.raises(OSError) as ei:
        read_bytes(a.root / "dir/uncached")
    assert ei.value.errno in (errno.ETIMEDOUT, errno.EIO, errno.ENOENT), ei.value
    assert time.monotonic() - t0 < 10

    # Updates while disconnected: logged, then reintegrated.
    new = {"new1": pattern(5000, 7), "dir/new2": pattern(12, 8)}
    for p, d in new.items():
        write_bytes(a.root / p, d)
    os.mkdir(a.root / "newdir")
    write_bytes(a.root / "newdir/x", b"x" * 100)
    new["newdir/x"] = b"x" * 100
    for p, d in new.items():
        assert read_bytes(a.root / p) == d
    assert sum(v.get("cml_records", 0) for v in volumes(a)) > 0

    s.start(port=s.port)
    wait_for(lambda: all(v["state"] == "connected" and v.get("cml_records", 0) == 0
                         for v in volumes(a)), 60, "reintegration")
    c = cluster.client(s, name="c")
    for p, d in list(new.items()) + list(files.items()):
        assert read_bytes(c.root / p) == d, p


def test_offline_start_without_saved_state_still_mounts(cluster):
    """A client that never reached a server has nothing to serve, but it
    mounts (ready fd) and says what is wrong on access."""
    s = cluster.server()
    a = cluster.client(s, name="a", start=False)
    s.stop()
    a.start()
    with pytest.raises(OSError):
        os.listdir(a.root)
    assert ctl(a, "status")["ok"]
