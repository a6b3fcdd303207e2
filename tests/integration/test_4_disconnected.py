"""Disconnected operation (docs/disconnected.md): a client forced
disconnected (ctl "disconnect") keeps working on its cache, logs every update
in its CML (LMDB, survives kill -9), and reintegrates when reconnected; a
second client then sees every change. Conflicts found at reintegration are
kept in the repair area, listed with kind "local/global", and repaired with
"repair" keep local/server/all. Weak connectivity (write-disconnect) trickles
records after the ageing delay."""

import errno
import os
import time

import pytest

from harness import ctl, read_bytes, replicated_servers, vol_status, wait_for, write_bytes





def cml_records(client):
    return vol_status(client).get("cml_records", 0)


def force(client, op, **kw):
    r = ctl(client, op, **kw)
    assert r["ok"], r
    return r


def disconnect(client):
    force(client, "disconnect")
    assert wait_for(lambda: vol_status(client)["state"] == "disconnected"), vol_status(client)


def reconnect(client, timeout=60.0):
    force(client, "reconnect")
    ok = wait_for(lambda: (lambda v: v["state"] == "connected" and v["cml_records"] == 0)(
        vol_status(client)), timeout=timeout)
    assert ok, vol_status(client)


def local_conflicts(client):
    r = ctl(client, "conflicts")
    assert r["ok"], r
    return [c for c in r["conflicts"] if c.get("kind") == "local/global"]


@pytest.fixture
def pair(cluster):
    servers = replicated_servers(cluster, 3)
    a = cluster.client(servers)
    b = cluster.client(servers)
    os.listdir(a.root)  # GETROOT: the volume and its VSG become known
    os.listdir(b.root)
    assert wait_for(lambda: len(vol_status(a)["avsg"]) == 3), vol_status(a)
    return servers, a, b


def test_disconnected_updates_reintegrate(pair):
    servers, a, b = pair
    write_bytes(a.root / "old.txt", b"old contents\n")
    os.mkdir(a.root / "keep")
    write_bytes(a.root / "keep" / "gone.txt", b"x")
    write_bytes(a.root / "renamed-src", b"rename me")
    os.listdir(a.root / "keep")
    disconnect(a)
    t0 = time.monotonic()
    write_bytes(a.root / "new.txt", b"written while disconnected\n")
    os.mkdir(a.root / "newdir")
    write_bytes(a.root / "newdir" / "inner", b"inner")
    os.rename(a.root / "renamed-src", a.root / "renamed-dst")
    os.unlink(a.root / "keep" / "gone.txt")
    write_bytes(a.root / "old.txt", b"new contents\n")
    os.symlink("new.txt", a.root / "link")
    os.chmod(a.root / "new.txt", 0o600)
    assert time.monotonic() - t0 < 10
    # The cache answers while disconnected.
    assert read_bytes(a.root / "new.txt") == b"written while disconnected\n"
    assert sorted(os.listdir(a.root / "newdir")) == ["inner"]
    assert not os.path.exists(a.root / "renamed-src")
    v = vol_status(a)
    assert v["state"] == "disconnected"
    assert v["cml_records"] > 0 and v["cml_bytes"] > 0, v
    # Nothing reached the servers.
    assert not os.path.exists(b.root / "new.txt")
    reconnect(a)
    assert wait_for(lambda: os.path.exists(b.root / "new.txt"))
    assert read_bytes(b.root / "new.txt") == b"written while disconnected\n"
    assert read_bytes(b.root / "newdir" / "inner") == b"inner"
    assert read_bytes(b.root / "renamed-dst") == b"rename me"
    assert not os.path.exists(b.root / "renamed-src")
    assert not os.path.exists(b.root / "keep" / "gone.txt")
    assert read_bytes(b.root / "old.txt") == b"new contents\n"
    assert os.readlink(b.root / "link") == "new.txt"
    assert os.stat(b.root / "new.txt").st_mode & 0o777 == 0o600
    assert local_conflicts(a) == []


def test_rename_then_update_reintegrates(pair):
    """A file renamed, then rewritten and chmod-ed while disconnected: the
    later records expect the file's own version, not the rename's (the
    servers leave a renamed file's version as it was), so reintegration
    applies them all without a conflict; the same connected."""
    servers, a, b = pair
    write_bytes(a.root / "f", b"before")
    write_bytes(a.root / "g", b"connected before")
    os.rename(a.root / "g", a.root / "g2")
    write_bytes(a.root / "g2", b"connected after the rename")
    os.chmod(a.root / "g2", 0o640)
    assert read_bytes(b.root / "g2") == b"connected after the rename"
    assert os.stat(b.root / "g2").st_mode & 0o777 == 0o640
    os.listdir(a.root)  # the listing the disconnected rename needs
    disconnect(a)
    os.rename(a.root / "f", a.root / "f2")
    write_bytes(a.root / "f2", b"after the rename")
    os.chmod(a.root / "f2", 0o600)
    os.rename(a.root / "f2", a.root / "f3")
    write_bytes(a.root / "f3", b"after two renames", mode="ab")
    reconnect(a)
    assert wait_for(lambda: vol_status(a)["cml_records"] == 0), vol_status(a)
    assert local_conflicts(a) == []
    assert sorted(n for n in os.listdir(b.root) if n.startswith("f")) == ["f3"]
    assert read_bytes(b.root / "f3") == b"after the renameafter two renames"
    assert os.stat(b.root / "f3").st_mode & 0o777 == 0o600


def test_uncached_fails_fast(pair):
    servers, a, b = pair
    write_bytes(b.root / "only-b", b"never read by a")
    os.listdir(a.root)
    disconnect(a)
    t0 = time.monotonic()
    with pytest.raises(OSError) as e:
        read_bytes(a.root / "only-b")
    assert e.value.errno in (errno.ETIMEDOUT, errno.EIO, errno.ENOENT)
    with pytest.raises(FileNotFoundError):
        os.stat(a.root / "no-such-name")
    assert time.monotonic() - t0 < 5
    reconnect(a)


def test_optimisations_cancel(pair):
    servers, a, b = pair
    disconnect(a)
    for i in range(20):
        write_bytes(a.root / "tmpfile", b"v%d" % i)
    os.unlink(a.root / "tmpfile")
    os.mkdir(a.root / "d")
    os.rmdir(a.root / "d")
    assert cml_records(a) == 0, vol_status(a)
    for i in range(10):
        write_bytes(a.root / "kept", b"version %d" % i)
    n = cml_records(a)
    assert n == 2, vol_status(a)  # create + one store
    os.rename(a.root / "kept", a.root / "k1")
    os.rename(a.root / "k1", a.root / "k2")
    assert cml_records(a) <= 3, vol_status(a)
    reconnect(a)
    assert read_bytes(b.root / "k2") == b"version 9"
    assert not os.path.exists(b.root / "tmpfile")


def test_kill9_long_cml_survives(pair):
    servers, a, b = pair
    disconnect(a)
    os.mkdir(a.root / "many")
    for i in range(250):
        write_bytes(a.root / "many" / ("f%03d" % i), b"data %d" % i)
    assert cml_records(a) >= 500, vol_status(a)
    a.kill9()
    a.start()
    # The forced disconnection outlives the restart: nothing is sent until
    # the user reconnects.
    time.sleep(1)
    v = vol_status(a)
    assert v["state"] == "disconnected" and v["cml_records"] >= 500, v
    assert not os.path.exists(b.root / "many")
    reconnect(a, timeout=90)
    names = sorted(os.listdir(b.root / "many"))
    assert len(names) == 250
    assert read_bytes(b.root / "many" / "f123") == b"data 123"


def test_kill9_during_reintegration(pair):
    """kill -9 of the client between two reintegration batches (batches of
    512 records, each file's create and store in one): after the restart the
    rest goes, nothing is lost and nothing applied twice (a create applied
    twice would be a local/global EEXIST conflict)."""
    servers, a, b = pair
    n = 1000
    disconnect(a)
    os.mkdir(a.root / "k9")
    for i in range(n):
        write_bytes(a.root / "k9" / ("g%04d" % i), b"g %d" % i)
    total = cml_records(a)
    assert total == 2 * n + 1, vol_status(a)
    force(a, "reconnect")
    # Kill it once some batches are in but not all (reintegration is fast:
    # poll closely).
    left = wait_for(lambda: (lambda c: c if 0 < c < total else 0)(cml_records(a)), timeout=30,
                    step=0.01)
    a.kill9()
    assert 0 < left < total, left
    a.start()
    os.listdir(a.root)
    assert wait_for(lambda: cml_records(a) == 0, timeout=90), vol_status(a)
    assert local_conflicts(a) == []
    names = sorted(os.listdir(b.root / "k9"))
    assert names == ["g%04d" % i for i in range(n)]
    for i in (0, 1, n // 2, n - 1):
        assert read_bytes(b.root / "k9" / ("g%04d" % i)) == b"g %d" % i


def test_store_conflict_keeps_both(pair):
    servers, a, b = pair
    write_bytes(a.root / "shared", b"base\n")
    assert read_bytes(b.root / "shared") == b"base\n"
    disconnect(a)
    write_bytes(a.root / "shared", b"local version\n")
    write_bytes(b.root / "shared", b"server version\n")
    force(a, "reconnect")
    assert wait_for(lambda: cml_records(a) == 0 and local_conflicts(a), timeout=30), vol_status(a)
    cs = local_conflicts(a)
    assert len(cs) == 1 and cs[0]["path"].endswith("/shared"), cs
    # The servers' version is what the file shows.
    assert wait_for(lambda: read_bytes(a.root / "shared") == b"server version\n")
    r = ctl(a, "repair", id=cs[0]["id"], keep="all")
    assert r["ok"], r
    assert read_bytes(b.root / "shared.conflict-local") == b"local version\n"
    assert read_bytes(b.root / "shared") == b"server version\n"
    assert local_conflicts(a) == []


def test_store_conflict_keep_local(pair):
    servers, a, b = pair
    write_bytes(a.root / "mine", b"base\n")
    assert read_bytes(b.root / "mine") == b"base\n"
    disconnect(a)
    write_bytes(a.root / "mine", b"local wins\n")
    write_bytes(b.root / "mine", b"server loses\n")
    force(a, "reconnect")
    assert wait_for(lambda: local_conflicts(a), timeout=30)
    cs = local_conflicts(a)
    r = ctl(a, "repair", id=cs[0]["id"], keep="local")
    assert r["ok"], r
    assert wait_for(lambda: read_bytes(b.root / "mine") == b"local wins\n")
    assert local_conflicts(a) == []


def test_directory_removed_on_server(pair):
    servers, a, b = pair
    os.mkdir(a.root / "doomed")
    os.listdir(a.root / "doomed")
    os.listdir(b.root / "doomed")
    disconnect(a)
    write_bytes(a.root / "doomed" / "orphan", b"orphan data")
    os.rmdir(b.root / "doomed")
    force(a, "reconnect")
    assert wait_for(lambda: cml_records(a) == 0 and local_conflicts(a), timeout=30)
    cs = local_conflicts(a)
    assert any(c["op"] == "create" for c in cs), cs
    for c in cs:
        r = ctl(a, "repair", id=c["id"], keep="all" if c["op"] == "create" else "server")
        assert r["ok"], r
    assert read_bytes(b.root / "orphan.conflict-local") == b"orphan data"
    assert local_conflicts(a) == []
    assert wait_for(lambda: vol_status(a)["state"] == "connected")


def test_same_name_creates(pair):
    servers, a, b = pair
    os.listdir(a.root)
    disconnect(a)
    write_bytes(a.root / "both", b"from a")
    write_bytes(b.root / "both", b"from b")
    force(a, "reconnect")
    assert wait_for(lambda: cml_records(a) == 0 and local_conflicts(a), timeout=30)
    cs = local_conflicts(a)
    assert any(c["op"] == "create" for c in cs), cs
    assert read_bytes(b.root / "both") == b"from b"
    for c in cs:
        r = ctl(a, "repair", id=c["id"], keep="all" if c["op"] == "create" else "server")
        assert r["ok"], r
    assert read_bytes(b.root / "both.conflict-local") == b"from a"


def test_all_servers_down_then_back(pair):
    servers, a, b = pair
    write_bytes(a.root / "before", b"before")
    os.listdir(a.root)
    for s in servers:
        s.stop()
    assert wait_for(lambda: vol_status(a)["state"] == "disconnected", timeout=20), vol_status(a)
    t0 = time.monotonic()
    write_bytes(a.root / "during", b"while the servers were down")
    assert read_bytes(a.root / "before") == b"before"
    assert time.monotonic() - t0 < 10
    assert cml_records(a) > 0
    for s in servers:
        s.start(port=s.port)
    assert wait_for(lambda: vol_status(a)["state"] == "connected" and cml_records(a) == 0,
                    timeout=60), vol_status(a)
    assert wait_for(lambda: os.path.exists(b.root / "during"), timeout=20)
    assert read_bytes(b.root / "during") == b"while the servers were down"


@pytest.mark.parametrize("threshold,goes_weak", [(1 << 30, True), (1, False)],
                         ids=["threshold-high", "threshold-low"])
def test_weak_threshold_measured_on_fetch(cluster, threshold, goes_weak):
    """The bandwidth estimate that drives weak connectivity is measured on
    whole-file fetches too (not only on reintegration uploads), per server,
    and shown as bw_kbps in status / check-servers. Loopback is far faster
    than 1 KB/s and far slower than 2^30 KB/s: after one large fetch the
    volume goes weak with the high --weak-threshold only. Small fetches are
    not measured."""
    s = cluster.server()
    a = cluster.client(s, name="a", extra_args=("--weak-threshold", str(threshold)))
    b = cluster.client(s, name="b")
    big = os.urandom(4 << 20)
    write_bytes(b.root / "small", b"s" * 1000)
    write_bytes(b.root / "big", big)
    assert read_bytes(a.root / "small") == b"s" * 1000
    time.sleep(0.5)  # the reintegration thread looks every 200 ms
    assert vol_status(a)["state"] == "connected"
    assert [sv["bw_kbps"] for sv in ctl(a, "status")["servers"]] == [0]
    assert read_bytes(a.root / "big") == big
    est = ctl(a, "check-servers")["servers"][0]["bw_kbps"]
    assert 1 < est < (1 << 30), est
    assert vol_status(a)["servers"][0]["bw_kbps"] == est
    if goes_weak:
        assert wait_for(lambda: vol_status(a)["state"] == "weak", timeout=10), vol_status(a)
        # Updates are logged (trickled after the ageing delay), reads still fetch.
        write_bytes(a.root / "logged", b"while weak")
        assert cml_records(a) >= 1
        # reconnect forgets the estimate: connected again, the log goes out.
        reconnect(a)
        assert ctl(a, "status")["servers"][0]["bw_kbps"] == 0
        assert wait_for(lambda: os.path.exists(b.root / "logged"))
    else:
        for _ in range(10):
            assert vol_status(a)["state"] == "connected"
            time.sleep(0.1)
        write_bytes(a.root / "direct", b"connected")
        assert cml_records(a) == 0
        assert read_bytes(b.root / "direct") == b"connected"


def test_weak_trickle(cluster):
    servers = replicated_servers(cluster, 3)
    a = cluster.client(servers, extra_args=("--aging", "1"))
    b = cluster.client(servers)
    os.listdir(a.root)
    os.listdir(b.root)
    assert wait_for(lambda: len(vol_status(a)["avsg"]) == 3)
    force(a, "write-disconnect")
    assert wait_for(lambda: vol_status(a)["state"] == "weak")
    stores = [s.stats().get("store_calls", 0) for s in servers]
    t0 = time.monotonic()
    for i in range(5):
        write_bytes(a.root / "weakfile", b"version %d" % i)
    assert time.monotonic() - t0 < 1  # well inside the ageing delay
    assert 1 <= cml_records(a) <= 2  # create + the last store
    assert wait_for(lambda: os.path.exists(b.root / "weakfile"), timeout=20)
    assert wait_for(lambda: read_bytes(b.root / "weakfile") == b"version 4", timeout=20)
    assert wait_for(lambda: cml_records(a) == 0, timeout=20)
    # The stores overwritten before they aged never crossed the link: one
    # upload per server (store_calls also counts its installation by
    # REINTEGRATE), not five.
    after = [s.stats().get("store_calls", 0) for s in servers]
    assert [x - y for x, y in zip(after, stores)] == [2, 2, 2], (stores, after)
    # Reads still fetch from the servers while weak.
    write_bytes(b.root / "from-b", b"fetched while weak")
    assert wait_for(lambda: os.path.exists(a.root / "from-b"), timeout=10)
    assert read_bytes(a.root / "from-b") == b"fetched while weak"
    assert vol_status(a)["state"] == "weak"
    reconnect(a)


def test_exerciser_disconnect_cycle(pair):
    """The randomized exerciser keeps running through a forced
    disconnection: the emulated tree matches its model, and after
    reintegration so does what the servers hold (seen by another client)."""
    import exerciser
    servers, a, b = pair
    log = open(a.mount.parent / "exerciser-disc.log", "w")
    try:
        ex = exerciser.Exerciser(a.root / "ex", seed=4242, log=log)
        ex.run(1500)
        ex.close_all()
        ex.verify_tree()
        disconnect(a)
        ex.run(4000)
        ex.close_all()
        ex.verify_tree()
        assert cml_records(a) > 0
        reconnect(a, timeout=120)
        ex.verify_tree()
        assert local_conflicts(a) == []
        ex.root = os.fspath(b.root / "ex")
        ex.verify_tree()
    finally:
        log.close()


def test_cli_disconnect_reconnect(pair):
    """`encore disconnect PATH` / `encore status` / `encore reconnect PATH`."""
    from harness import run_encore
    servers, a, b = pair
    run_encore("disconnect", a.root)
    assert vol_status(a)["state"] == "disconnected"
    write_bytes(a.root / "via-cli", b"cli")
    st = run_encore("status", a.root)
    assert "disconnected" in st.out, st.out
    assert not os.path.exists(b.root / "via-cli")
    run_encore("reconnect", a.root)
    assert wait_for(lambda: vol_status(a)["cml_records"] == 0)
    assert read_bytes(b.root / "via-cli") == b"cli"


def test_remove_conflict_keep_local_and_server(pair):
    """A file removed while disconnected and updated on the servers
    meanwhile: the removal is a conflict; keep server leaves the file, keep
    local removes it."""
    servers, a, b = pair
    write_bytes(a.root / "rm1", b"base")
    write_bytes(a.root / "rm2", b"base")
    os.listdir(a.root)
    assert read_bytes(b.root / "rm1") == b"base" and read_bytes(b.root / "rm2") == b"base"
    disconnect(a)
    os.unlink(a.root / "rm1")
    os.unlink(a.root / "rm2")
    write_bytes(b.root / "rm1", b"changed on the servers")
    write_bytes(b.root / "rm2", b"changed on the servers")
    force(a, "reconnect")
    assert wait_for(lambda: cml_records(a) == 0 and len(local_conflicts(a)) == 2, timeout=30), \
        local_conflicts(a)
    by_name = {c["path"].rsplit("/", 1)[-1]: c for c in local_conflicts(a)}
    assert set(by_name) == {"rm1", "rm2"} and by_name["rm1"]["op"] == "remove", by_name
    assert ctl(a, "repair", id=by_name["rm1"]["id"], keep="server")["ok"]
    r = ctl(a, "repair", id=by_name["rm2"]["id"], keep="local")
    assert r["ok"], r
    assert read_bytes(b.root / "rm1") == b"changed on the servers"
    assert wait_for(lambda: not os.path.exists(b.root / "rm2"))
    assert local_conflicts(a) == []


def test_local_conflicts_listed_while_disconnected(pair):
    servers, a, b = pair
    write_bytes(a.root / "lc", b"base")
    assert read_bytes(b.root / "lc") == b"base"
    disconnect(a)
    write_bytes(a.root / "lc", b"local")
    write_bytes(b.root / "lc", b"server")
    force(a, "reconnect")
    assert wait_for(lambda: cml_records(a) == 0 and local_conflicts(a), timeout=30)
    for s in servers:
        s.stop()
    # No server answers: the local/global conflict is still listed.
    assert wait_for(lambda: vol_status(a)["state"] == "disconnected", timeout=20)
    assert [c["op"] for c in local_conflicts(a)] == ["store"]


def _walk_strict(root):
    """Every directory and file below root with its bytes; any error raises
    (os.walk alone would skip a directory it cannot list)."""
    def fail(e):
        raise e
    dirs, files = set(), {}
    for dp, dn, fn in os.walk(root, onerror=fail):
        rel = os.path.relpath(dp, root)
        dirs.update(os.path.normpath(os.path.join(rel, d)) for d in dn)
        for f in fn:
            files[os.path.normpath(os.path.join(rel, f))] = read_bytes(os.path.join(dp, f))
    return dirs, files


def test_cached_tree_after_the_kernel_forgets(cluster):
    """A server that dies takes its callbacks along: the client drops the
    kernel's names and the kernel forgets the inodes, their listings with
    them. Disconnected, the whole tree the client had seen stays readable:
    a name a LOOKUP found in a directory never listed (the realm root), and
    directories whose inodes were freed (their saved listings)."""
    s = cluster.server()
    c = cluster.client(s)
    top = c.root / "top"
    os.mkdir(top)
    for i in range(3):
        os.makedirs(top / ("d%d" % i) / "sub")
        for j in range(4):
            write_bytes(top / ("d%d" % i) / ("f%d" % j), os.urandom(100 * j + 1))
        write_bytes(top / ("d%d" % i) / "sub" / "deep", b"deep %d" % i)
    c.restart()  # a fresh mount: the root is looked up in, never listed
    want = _walk_strict(top)
    assert len(want[0]) == 6 and len(want[1]) == 15, want[0]
    s.kill9()
    assert wait_for(lambda: vol_status(c)["state"] == "disconnected", timeout=20), vol_status(c)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")  # dentries and inodes: the kernel forgets ours
    assert _walk_strict(top) == want
    s.start(port=s.port)
    assert wait_for(lambda: vol_status(c)["state"] == "connected", timeout=30), vol_status(c)
    assert _walk_strict(top) == want
