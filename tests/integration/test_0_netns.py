"""Self-test of netns.py: hosts in network namespaces on a bridge, real
encore-servers and a FUSE client inside them, partitions (link down) and
drops (nftables, or blackhole routes). Skips unless root with ip netns."""

import os
import shutil
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import netns  # noqa: E402
import wire  # noqa: E402
from netns import netns_topology  # noqa: E402,F401  (the fixture)

# Generous bounds: a partitioned peer must fail within these, never hang.
CONNECT_TIMEOUT = 1.0
FUSE_BOUND = 60.0


def reach(topo, frm, server, timeout=CONNECT_TIMEOUT):
    """True if HELLO + PING from host frm to server succeed within timeout."""
    try:
        with topo.conn(frm, server, timeout=timeout) as c:
            h = c.hello()
            p = c.ping()
        assert h["server_id"] == p["server_id"] == server.sid
        return True
    except (OSError, wire.ConnClosed):  # timeout, unreachable, EINVAL/EACCES of a route
        return False


def ns_inode(path):
    return os.stat(path).st_ino


def test_topology_shape(netns_topology):  # noqa: F811
    topo = netns_topology(servers=2, clients=2)
    names = netns.list_netns()
    for h in topo.hosts.values():
        assert h.netns in names
    assert topo.switch in names
    assert topo.host("server1").ip == "10.77.0.11"
    assert topo.host("client2").ip == "10.77.0.102"
    # Each host has exactly lo and eth0 with its address; the root namespace
    # has no address or route in the test range.
    for h in topo.hosts.values():
        r = topo.run(h, ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True)
        assert h.ip + "/24" in r.stdout and "eth0" in r.stdout
    root = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
    root += subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                           text=True).stdout
    assert netns.DEFAULT_SUBNET + "." not in root
    # A process started in a host runs there, keeps its pid and gets pass_fds;
    # and it stays in our mount namespace (unlike `ip netns exec`).
    rfd, wfd = os.pipe()
    code = ("import os, sys; os.write(int(sys.argv[1]), b'%d %d %d' % (os.getpid(), "
            "os.stat('/proc/self/ns/net').st_ino, os.stat('/proc/self/ns/mnt').st_ino))")
    p = topo.popen("client1", [harness.PY, "-c", code, wfd], pass_fds=(wfd,))
    os.close(wfd)
    with os.fdopen(rfd) as f:
        pid, net, mnt = f.read().split()
    assert p.wait(timeout=10) == 0
    assert int(pid) == p.pid
    assert int(net) == ns_inode(topo.host("client1").nspath)
    assert int(mnt) == ns_inode("/proc/self/ns/mnt")
    # Why nsenter: `ip netns exec` also gives the program a new mount
    # namespace, where a FUSE mount would be invisible to us.
    r = subprocess.run(["ip", "netns", "exec", topo.host("client1").netns, "stat", "-L", "-c", "%i",
                        "/proc/self/ns/mnt"], capture_output=True, text=True, check=True)
    assert int(r.stdout) != ns_inode("/proc/self/ns/mnt")
    # entered() moves only this thread, and back.
    before = ns_inode("/proc/thread-self/ns/net")
    with topo.entered("server2"):
        assert ns_inode("/proc/thread-self/ns/net") == ns_inode(topo.host("server2").nspath)
    assert ns_inode("/proc/thread-self/ns/net") == before


def test_partition_and_heal_raw(netns_topology):  # noqa: F811
    topo = netns_topology(servers=2, clients=1)
    s1, s2 = topo.server(1), topo.server(2)
    assert reach(topo, "client1", s1) and reach(topo, "client1", s2)
    old = topo.conn("client1", s1, timeout=CONNECT_TIMEOUT)
    old.hello()

    topo.partition("server1")
    topo.partition("server1")  # idempotent
    assert topo.partitioned("server1")
    assert not reach(topo, "client1", s1)
    assert reach(topo, "client1", s2)
    assert not reach(topo, "server2", s1)
    # An established connection sees silence, not an error.
    with pytest.raises((TimeoutError, OSError)):
        old.ping()
    old.close()
    # The server itself is fine: reachable from inside its own host.
    assert s1.running() and s1.stats() is not None

    topo.heal("server1")
    topo.heal("server1")
    assert not topo.partitioned("server1")
    assert reach(topo, "client1", s1) and reach(topo, "client1", s2)

    # local=True: the host knows it is cut off (ENETUNREACH at once).
    topo.partition("client1", local=True)
    t = time.monotonic()
    with pytest.raises(OSError):
        topo.conn("client1", s2, timeout=CONNECT_TIMEOUT)
    assert time.monotonic() - t < CONNECT_TIMEOUT
    assert reach(topo, "server1", s2)
    topo.heal_all()
    assert reach(topo, "client1", s2)


@pytest.mark.parametrize("method", ["nft", "route"])
def test_drop_and_undrop(netns_topology, method):  # noqa: F811
    if method == "nft" and not _nft_available():
        pytest.skip("nftables is not installed")
    topo = netns_topology(servers=2, clients=1, drop_method=method)
    assert topo.drop_method == method
    s1, s2 = topo.server(1), topo.server(2)
    topo.drop("client1", "server1")
    topo.drop("client1", "server1")  # idempotent
    assert topo.drops() == {("client1", "server1"), ("server1", "client1")}
    assert not reach(topo, "client1", s1)
    assert reach(topo, "client1", s2)  # only that pair is cut
    assert reach(topo, "server2", s1)
    topo.undrop("client1", "server1")
    topo.undrop("client1", "server1")
    assert topo.drops() == set()
    assert reach(topo, "client1", s1)

    # One way only: client1 -> server1 lost; server1 -> server2 unaffected.
    topo.drop("client1", "server1", oneway=True)
    assert not reach(topo, "client1", s1)
    assert reach(topo, "server1", s2)
    topo.heal_all()
    assert topo.drops() == set()
    assert reach(topo, "client1", s1)


def _nft_available():
    return shutil.which("nft") is not None


def _read(path, timeout):
    """Reads path in a child (so a hung FUSE read cannot hang the test);
    returns (exit code or None on timeout, seconds)."""
    t = time.monotonic()
    try:
        r = subprocess.run(["cat", str(path)], capture_output=True, timeout=timeout)
        return r.returncode, time.monotonic() - t
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - t


def test_fuse_client_in_netns(netns_topology):  # noqa: F811
    topo = netns_topology(servers=1, clients=2)
    s1 = topo.server(1)
    a = topo.client([s1])  # client1
    b = topo.client([s1])  # client2
    # The daemon runs in its host's network namespace and our mount
    # namespace, so the mount is visible here.
    assert harness.mounted(a.mount) and harness.mounted(b.mount)
    assert ns_inode("/proc/%d/ns/net" % a.pid) == ns_inode(a.host.nspath)
    assert ns_inode("/proc/%d/ns/mnt" % a.pid) == ns_inode("/proc/self/ns/mnt")

    harness.write_bytes(a.root / "cached", b"from a\n")
    assert harness.read_bytes(a.root / "cached") == b"from a\n"
    # Written through client2: client1 has never fetched it.
    harness.write_bytes(b.root / "uncached", b"from b\n")
    assert harness.read_bytes(b.root / "uncached") == b"from b\n"

    topo.partition("server1")
    rc, took = _read(a.root / "uncached", FUSE_BOUND)
    sys.stderr.write("uncached read while partitioned: exit %s after %.1f s\n" % (rc, took))
    assert rc is not None, "read of an uncached file hung for %.0f s" % FUSE_BOUND
    assert rc != 0, "read an uncached file from a partitioned server"

    # Recovery of the client's own connection after heal is the client's
    # business (today it waits out TCP's retransmit backoff on the old
    # connection); here only the network comes back.
    topo.heal("server1")
    assert reach(topo, "client1", s1)
    assert a.running() and harness.mounted(a.mount)


def test_teardown_and_stale_sweep(tmpbase):
    netns.require_netns()
    topo = netns.Topology(tmpbase, servers=1, clients=1).create()
    p = topo.popen("server1", ["sleep", "60"])
    names = [h.netns for h in topo.hosts.values()] + [topo.switch]
    assert topo.destroy() == []
    assert p.poll() is not None
    left = netns.list_netns()
    assert not any(n in left for n in names)

    # A namespace of a dead run, with a process still inside: swept.
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = "%s%d-0-server1" % (netns.PREFIX, dead.pid)
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        sleeper = subprocess.Popen(netns.nsenter_argv(stale) + ["sleep", "60"])
        # Inside before the sweep looks (nsenter enters, then execs sleep).
        assert harness.wait_for(lambda: sleeper.pid in netns.netns_pids(stale), timeout=10)
        # One of a live run (our parent's pid stands in): left alone.
        live = "%s%d-0-server1" % (netns.PREFIX, os.getppid())
        subprocess.run(["ip", "netns", "add", live], check=True)
        try:
            gone = netns.sweep_stale()
            assert stale in gone and live not in gone
            assert sleeper.wait(timeout=10) == -9
            assert stale not in netns.list_netns() and live in netns.list_netns()
        finally:
            subprocess.run(["ip", "netns", "del", live])
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True)
