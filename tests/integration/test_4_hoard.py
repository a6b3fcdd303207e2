"""Family 4: hoarding (docs/disconnected.md "Hoarding"): the hoard database
(`encore hoard add|list|remove`), hoard walks that fetch exactly what the
hoard names (children / descendants), priorities in eviction, and the
output of `encore hoard walk`."""

import json
import os

import pytest

from harness import (client_counter, ctl, hoard_walk, read_bytes, run_encore,
                     write_bytes)


def pattern(n, seed):
    return bytes((seed + i * 7) & 0xFF for i in range(n))


def make_tree(root):
    """d/f1 d/f2 d/sub/g1 d/sub/deep/h1 other/x top; returns {path: data}."""
    files = {
        "d/f1": pattern(1000, 1),
        "d/f2": pattern(2000, 2),
        "d/sub/g1": pattern(3000, 3),
        "d/sub/deep/h1": pattern(4000, 4),
        "other/x": pattern(5000, 5),
        "top": pattern(600, 6),
    }
    for d in ("d", "d/sub", "d/sub/deep", "other"):
        os.mkdir(root / d)
    for p, data in files.items():
        write_bytes(root / p, data)
    return files


def fetch_calls(server):
    return server.stats()["fetch_calls"]


@pytest.fixture
def two(cluster):
    """A server, a writer client a (populates) and a fresh client b."""
    s = cluster.server()
    a = cluster.client(s, name="a")
    b = cluster.client(s, name="b", extra_args=["--hoard-interval", "0"])
    return s, a, b


def test_walk_fetches_exactly_the_hoard(two):
    s, a, b = two
    files = make_tree(a.root)
    # children: d's files, and the listing of d/sub, nothing deeper.
    run_encore("hoard", "add", b.root / "d", "100", "children")
    before = fetch_calls(s)
    fetches = client_counter(b, "fetches")
    w = hoard_walk(b)
    assert w["fetched"] == 2, w
    assert w["fetched_bytes"] == 3000, w
    assert w["errors"] == 0 and w["missing"] == 0 and not w["aborted"], w
    assert fetch_calls(s) - before == 2
    assert client_counter(b, "fetches") - fetches == 2
    # A second walk finds everything cached.
    w = hoard_walk(b)
    assert w["fetched"] == 0, w
    assert fetch_calls(s) - before == 2

    # descendants: now everything below d, and only that.
    run_encore("hoard", "add", b.root / "d", "100", "descendants")
    w = hoard_walk(b)
    assert w["fetched"] == 2, w  # g1 and h1
    assert w["fetched_bytes"] == 7000, w
    assert fetch_calls(s) - before == 4

    # Hoarded files are served from the cache: reading them fetches nothing.
    for p in ("d/f1", "d/f2", "d/sub/g1", "d/sub/deep/h1"):
        assert read_bytes(b.root / p) == files[p]
    assert fetch_calls(s) - before == 4
    # What the hoard does not name was not fetched.
    assert read_bytes(b.root / "other/x") == files["other/x"]
    assert fetch_calls(s) - before == 5

    # A file changed elsewhere is stale: the next walk fetches it again.
    files["d/f1"] = pattern(1500, 9)
    write_bytes(a.root / "d/f1", files["d/f1"])
    w = hoard_walk(b)
    assert w["fetched"] == 1 and w["fetched_bytes"] == 1500, w
    assert read_bytes(b.root / "d/f1") == files["d/f1"]


def test_hoard_list_and_remove(two):
    s, a, b = two
    make_tree(a.root)
    run_encore("hoard", "add", b.root / "d")
    run_encore("hoard", "add", b.root / "top", "700")
    run_encore("hoard", "add", b.root / "other", "descendants", "5")
    lst = json.loads(run_encore("hoard", "list", "--json", b.root).out)
    got = {e["rel"]: (e["priority"], e["flags"]) for e in lst["entries"]}
    assert got == {"d": (10, "none"), "top": (700, "none"), "other": (5, "descendants")}
    # Highest priority first; absolute paths under the mount.
    assert [e["rel"] for e in lst["entries"]] == ["top", "d", "other"]
    assert lst["entries"][0]["path"] == str(b.root / "top")
    assert lst["entries"][0]["uid"] == os.getuid()
    text = run_encore("hoard", "list", b.root).out.splitlines()
    assert text[0].split("\t") == ["PRIORITY", "FLAGS", "UID", "PATH"]
    assert text[1].split("\t") == ["700", "none", str(os.getuid()), str(b.root / "top")]

    run_encore("hoard", "remove", b.root / "d")
    lst = ctl(b, "hoard-list")
    assert sorted(e["rel"] for e in lst["entries"]) == ["other", "top"]
    r = run_encore("hoard", "remove", b.root / "d", check=False)
    assert r.returncode == 1 and "hoard remove" in r.err, r.err
    # Usage errors: exit 2 and a hint.
    for args in (["add"], ["add", b.root / "d", "0"], ["add", b.root / "d", "1001"],
                 ["add", b.root / "d", "sideways"], ["remove"], ["frobnicate"]):
        r = run_encore("hoard", *args, check=False)
        assert r.returncode == 2, (args, r.returncode, r.err)
        assert "--help" in r.err
    # Not under an encore mount.
    r = run_encore("hoard", "add", "/tmp", check=False)
    assert r.returncode == 1 and "not on an encore file system" in r.err, r.err
    # The mount's top directory is not in a realm.
    r = run_encore("hoard", "add", b.mount, check=False)
    assert r.returncode == 1 and "inside a realm" in r.err, r.err
    # The database survives a restart.
    b.restart()
    lst = ctl(b, "hoard-list")
    assert sorted(e["rel"] for e in lst["entries"]) == ["other", "top"]


def test_walk_reports_missing_paths(two):
    s, a, b = two
    make_tree(a.root)
    r = ctl(b, "hoard-add", path="%s/nothing/here" % b.realm, priority=50)
    assert r["ok"], r
    run_encore("hoard", "add", b.root / "top")
    r = run_encore("hoard", "walk", b.root)
    out = dict(line.split("\t") for line in r.out.splitlines())
    assert out["missing"] == "1" and out["fetched"] == "1", r.out
    assert "do not exist" in r.err


def test_hoard_walk_cli_output(two):
    s, a, b = two
    files = make_tree(a.root)
    run_encore("hoard", "add", b.root / "d", "descendants")
    r = run_encore("hoard", "walk", b.root)
    out = dict(line.split("\t") for line in r.out.splitlines())
    assert set(out) >= {"checked", "fetched", "fetched_bytes", "listings", "missing", "errors"}
    assert out["fetched"] == "4"
    assert out["fetched_bytes"] == str(sum(len(files[p]) for p in files if p.startswith("d/")))
    # d, f1, f2, sub, g1, deep, h1 (+ the realm root on the way).
    assert int(out["checked"]) >= 7
    assert out["errors"] == "0" and out["missing"] == "0"
    r = run_encore("hoard", "walk", "--json", b.root)
    j = json.loads(r.out)
    assert j["fetched"] == 0 and j["checked"] == int(out["checked"])
    # Not a terminal: no progress lines on stderr.
    assert "checked," not in r.err
    st = ctl(b, "hoard-status")
    assert st["ok"] and not st["running"] and st["done"] == st["walk"] >= 2


def test_eviction_keeps_higher_priority(cluster):
    s = cluster.server()
    a = cluster.client(s, name="a")
    b = cluster.client(s, name="b", extra_args=["--cache-size", "1", "--hoard-interval", "0"])
    kib = 256 * 1024
    os.mkdir(a.root / "hi")
    os.mkdir(a.root / "lo")
    os.mkdir(a.root / "plain")
    data = {}
    for d, n in (("hi", 2), ("lo", 3), ("plain", 4)):
        for i in range(n):
            p = "%s/%d" % (d, i)
            data[p] = pattern(kib, hash(p) & 0xFF)
            write_bytes(a.root / p, data[p])
    run_encore("hoard", "add", b.root / "hi", "900", "children")
    run_encore("hoard", "add", b.root / "lo", "5", "children")
    w = hoard_walk(b)
    assert w["fetched"] == 5 and w["errors"] == 0, w
    st = ctl(b, "status")["cache"]
    assert st["bytes_used"] <= st["bytes_limit"] == 1 << 20, st
    # Ordinary use of other files evicts lower priorities first, never hi.
    for i in range(4):
        assert read_bytes(b.root / ("plain/%d" % i)) == data["plain/%d" % i]
        st = ctl(b, "status")["cache"]
        assert st["bytes_used"] <= st["bytes_limit"], st
    before = fetch_calls(s)
    for i in range(2):
        assert read_bytes(b.root / ("hi/%d" % i)) == data["hi/%d" % i]
    assert fetch_calls(s) == before, "a hoarded file of priority 900 was evicted"
    # The lo files went first: reading them fetches again.
    for i in range(3):
        assert read_bytes(b.root / ("lo/%d" % i)) == data["lo/%d" % i]
    assert fetch_calls(s) > before


def wait_walks(client, n, timeout=30):
    """Waits until client finished at least n hoard walks; returns the status."""
    import time
    end = time.monotonic() + timeout
    while True:
        st = ctl(client, "hoard-status")
        assert st["ok"], st
        if st["done"] >= n and not st["running"]:
            return st
        if time.monotonic() > end:
            pytest.fail("no hoard walk %d: %r" % (n, st))
        time.sleep(0.1)


def test_periodic_walk(cluster):
    s = cluster.server()
    a = cluster.client(s, name="a")
    b = cluster.client(s, name="b", extra_args=["--hoard-interval", "1"])
    files = make_tree(a.root)
    os.symlink("f1", a.root / "d/link")
    run_encore("hoard", "add", b.root / "d", "children")
    before = fetch_calls(s)
    st = wait_walks(b, 1)
    st = wait_walks(b, st["done"] + 1)  # one that started after the add
    assert st["last"]["errors"] == 0, st
    assert fetch_calls(s) - before == 2  # d/f1 and d/f2, by the hoard thread alone
    assert read_bytes(b.root / "d/f2") == files["d/f2"]
    assert os.readlink(b.root / "d/link") == "f1"
    assert fetch_calls(s) - before == 2


def test_walk_after_reconnection(two):
    s, a, b = two
    files = make_tree(a.root)
    run_encore("hoard", "add", b.root / "d", "descendants")
    w = hoard_walk(b)
    assert w["fetched"] == 4, w
    r = ctl(b, "disconnect")
    assert r["ok"], r
    done = ctl(b, "hoard-status")["done"]
    # Changed on the server while b is disconnected.
    files["d/sub/g1"] = pattern(777, 42)
    write_bytes(a.root / "d/sub/g1", files["d/sub/g1"])
    assert ctl(b, "reconnect")["ok"]
    st = wait_walks(b, done + 1)
    assert st["last"]["fetched"] == 1 and st["last"]["fetched_bytes"] == 777, st
    before = fetch_calls(s)
    assert read_bytes(b.root / "d/sub/g1") == files["d/sub/g1"]
    assert fetch_calls(s) == before
