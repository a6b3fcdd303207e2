"""Family 5: replication with servers and clients as separate hosts in
network namespaces (netns.py). A server is cut off (its link down at the
switch, or every packet to and from it dropped by nftables): reads and
updates through the mount go on within bounds and the replicas converge
after the heal. Two clients in two partitions (client1 + server1 against
client2 + servers 2 and 3, nftables drops between the sides) update the
same file, create different names in one directory and the same name in
another: after the heal the file is a conflict (EIO, `encore conflicts`,
`encore repair` lists both versions, --keep N and --keep-all work), the
different names merge without a conflict, the same name is a conflict with
both versions kept. Checks of each replica read that server directly over a
raw socket from its own host (which reaches it even while it is cut off).
Skips without root / ip netns / FUSE, like test_0_netns.py."""

import errno
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import netns  # noqa: E402
from netns import netns_topology  # noqa: E402,F401  (the fixture)
from test_5_replication import (  # noqa: E402
    READ_STALL, UPDATE_STALL, CONVERGE, ServerView, avsg, cli, cli_json, ctl, describe_tree_diff,
    local_tree, populate, preferred_server, flush, snapshot, timed, tree_of, updates_after_fault,
    wait_converged, wait_for, write_peers)

PORT = 7301  # every server listens on this port in its own namespace


class NsReplServer(netns.NsServer):
    """encore-server of a replicated realm in its own host: `init --vsg`,
    started with `--peers FILE` on a fixed port."""

    def __init__(self, topo, host, base, sid, vsg, peers):
        super().__init__(topo, host, base, sid)
        self.vsg = vsg
        self.peers = peers
        self.port = PORT

    def init(self, **kw):
        cmd = [harness.require_binary("encore-server"), "init", "--dir", str(self.dir),
               "--server-id", str(self.sid), "--realm", self.realm,
               "--vsg", ",".join(str(x) for x in self.vsg)]
        with open(self.log, "ab") as lf:
            r = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("encore-server init exited %d; log:\n%s" % (r.returncode, harness.log_tail(self.log)))

    def start(self, port=None):
        assert self.proc is None or self.proc.poll() is not None
        if self.port_file.exists():
            self.port_file.unlink()
        rfd, wfd = os.pipe()
        cmd = netns.nsenter_argv(self.host.netns) + [
            harness.require_binary("encore-server"), "--dir", str(self.dir),
            "--listen", "%s:%d" % (self.host.ip, self.port), "--port-file", str(self.port_file),
            "--ready-fd", str(wfd), "--peers", str(self.peers), "-v"]
        with open(self.log, "ab") as lf:
            try:
                self.proc = subprocess.Popen(cmd, pass_fds=(wfd,), stdin=subprocess.DEVNULL,
                                             stdout=lf, stderr=subprocess.STDOUT)
            finally:
                os.close(wfd)
        try:
            harness.wait_ready(self.proc, rfd, harness.READY_TIMEOUT,
                               "encore-server %d in %s" % (self.sid, self.host.name), self.log)
        except Exception:
            harness.kill9(self.proc)
            raise
        assert int(self.port_file.read_text()) == self.port
        return self

    def view(self, timeout=10.0):
        """Raw view of this replica, from its own host."""
        return ServerView(self.conn(timeout=timeout), self.realm)


def repl_topology(make, clients=1, servers=3):
    """A topology with `servers` replicated servers (all started) and
    `clients` clients, each mounted against every server."""
    topo = make(servers=servers, clients=clients)
    peers = write_peers(topo.base / "servers.conf",
                        ["%s:%d" % (topo.host("server%d" % i).ip, PORT) for i in range(1, servers + 1)])
    vsg = list(range(1, servers + 1))
    ss = []
    for i in range(1, servers + 1):
        s = NsReplServer(topo, topo.host("server%d" % i), topo.base, i, vsg, peers)
        topo.servers.append(s)
        s.init()
        ss.append(s)
    for s in ss:
        s.start()
    cs = [topo.client(ss) for _ in range(clients)]
    for c in cs:
        assert wait_for(lambda: avsg(c) == vsg or _probe_root(c, vsg), timeout=20), ctl(c, "status")
    return topo, ss, cs


def _probe_root(c, vsg):
    os.listdir(c.root)  # GETROOT tells the client the volume's VSG
    return avsg(c) == vsg


def views_of(servers):
    return lambda: [(s.sid, s.view()) for s in servers]


def cut_off(topo, victim, how):
    """Isolates one server from every other host."""
    if how == "link":
        topo.partition(victim.host.name)
    else:
        for h in topo.hosts:
            if h != victim.host.name:
                topo.drop(victim.host.name, h)


@pytest.mark.parametrize("how", ["link", "drop"])
def test_server_cut_off_then_heal(netns_topology, how):  # noqa: F811
    """The server the client reads from loses the network (link down at the
    switch, or nftables drops every packet to and from it): nothing answers,
    no error, only timeouts. The first read and the first update complete
    within the bounds, later ones too; after the heal it is brought level."""
    topo, servers, (client,) = repl_topology(netns_topology)
    root = client.root
    model = {}
    populate(root, model)
    victim = preferred_server(client, servers, root / "d" / "r0")
    flush(client, *[root / "d" / ("r%d" % i) for i in range(8)])
    cut_off(topo, victim, how)
    got, stall = timed(harness.read_bytes, root / "d" / "r6")
    assert got == model["d/r6"]
    assert stall < READ_STALL, "first read with server %d cut off (%s) stalled %.2f s" % (victim.sid, how, stall)
    _, stall = timed(harness.write_bytes, root / "d" / "first-update", b"first update after the cut")
    model["d/first-update"] = b"first update after the cut"
    assert stall < UPDATE_STALL, "first update with server %d cut off (%s) stalled %.2f s" % (
        victim.sid, how, stall)
    got, stall = timed(harness.read_bytes, root / "d" / "r7")
    assert got == model["d/r7"] and stall < READ_STALL, stall
    updates_after_fault(root, model, how)
    assert local_tree(root) == model, describe_tree_diff(local_tree(root), model)
    assert victim.sid not in avsg(client)
    # The victim itself still holds the old state (nothing reached it).
    with victim.view() as v:
        old = tree_of(snapshot(v))
    assert old.get("d/r3") is not None and "d/first-update" not in old
    topo.heal_all()
    assert wait_for(lambda: victim.sid in avsg(client), timeout=CONVERGE), ctl(client, "status")
    wait_converged(views_of(servers), want=model, timeout=CONVERGE)
    harness.write_bytes(root / "d" / "after", b"after the heal")
    model["d/after"] = b"after the heal"
    wait_converged(views_of(servers), want=model, timeout=CONVERGE)


SIDE_A = ("client1", "server1")
SIDE_B = ("client2", "server2", "server3")


def split(topo):
    """client1 + server1 | client2 + servers 2, 3 (nftables drops)."""
    for a in SIDE_A:
        for b in SIDE_B:
            topo.drop(a, b)


def read_errno(path):
    """None if path reads, else the errno."""
    try:
        harness.read_bytes(path)
        return None
    except OSError as e:
        return e.errno


def tree_or_error(root):
    """local_tree, or the OSError that reading it gave."""
    try:
        return local_tree(root)
    except OSError as e:
        return "%s: %s" % (e.filename, os.strerror(e.errno))


def tree_diff_or_error(root, want):
    t = tree_or_error(root)
    return t if isinstance(t, str) else describe_tree_diff(t, want)


def replica_names(servers):
    """{server id: sorted root entries} (for failure messages)."""
    out = {}
    for s in servers:
        try:
            with s.view() as v:
                out[s.sid] = sorted(n for n, _, _ in v.readdir(v.root()["attr"]["fid"]))
        except Exception as e:  # a message, not a check
            out[s.sid] = repr(e)
    return out


def conflicts(client):
    r = cli_json("conflicts", client.root)
    assert r.get("ok", True), r
    return r["conflicts"]


def conflict_paths(client):
    return sorted(c["path"] for c in conflicts(client))


def two_sides(netns_topology):  # noqa: F811
    topo, servers, (c1, c2) = repl_topology(netns_topology, clients=2)
    return topo, servers, c1, c2


def test_partitioned_clients_update_same_file(netns_topology):  # noqa: F811
    """Both sides update f and g. After the heal both are in conflict:
    reading gives EIO on both clients, `encore conflicts` lists them,
    `encore repair f` lists both versions; `--keep 2` installs server 2's
    version everywhere, `--keep-all` keeps every version beside g."""
    topo, servers, c1, c2 = two_sides(netns_topology)
    base = {"f": b"base f", "g": b"base g"}
    for n, v in base.items():
        harness.write_bytes(c1.root / n, v)
    wait_converged(views_of(servers), want=base)
    for n, v in base.items():
        assert harness.read_bytes(c2.root / n) == v
    split(topo)
    va = {"f": b"f from side A", "g": b"g from side A"}
    vb = {"f": b"f from side B (longer)", "g": b"g from side B, also longer"}
    for n in ("f", "g"):
        _, stall = timed(harness.write_bytes, c1.root / n, va[n])
        assert stall < UPDATE_STALL, stall
        _, stall = timed(harness.write_bytes, c2.root / n, vb[n])
        assert stall < UPDATE_STALL, stall
    for n in ("f", "g"):
        assert harness.read_bytes(c1.root / n) == va[n]
        assert harness.read_bytes(c2.root / n) == vb[n]
    topo.heal_all()

    # Detected: EIO on both clients (stat still works), listed by encore conflicts.
    for c in (c1, c2):
        for n in ("f", "g"):
            assert wait_for(lambda: read_errno(c.root / n) == errno.EIO, timeout=CONVERGE), \
                "%s/%s: read gives %r, not EIO" % (c.name, n, read_errno(c.root / n))
            os.stat(c.root / n)
    for c in (c1, c2):
        # Listed by every server once the client reaches all three again.
        assert wait_for(lambda: sorted((p["path"].rsplit("/", 1)[-1], tuple(sorted(p["servers"])))
                                       for p in conflicts(c)) == [("f", (1, 2, 3)), ("g", (1, 2, 3))],
                        timeout=CONVERGE), conflicts(c)
    # Both versions kept, on the servers that had them.
    for s in servers:
        with s.view() as v:
            snap = snapshot(v)
        for n in ("f", "g"):
            assert snap["/" + n]["conflict"], (s.sid, n)
    listing = cli_json("repair", c1.root / "f")
    vers = {v["server"]: v for v in listing["versions"]}
    assert sorted(vers) == [1, 2, 3], listing
    assert vers[1]["size"] == len(va["f"]) and vers[2]["size"] == vers[3]["size"] == len(vb["f"]), listing
    assert vers[2]["storeid"] == vers[3]["storeid"] != vers[1]["storeid"], listing
    # Listing changed nothing.
    assert read_errno(c1.root / "f") == errno.EIO

    cli("repair", c2.root / "f", "--keep", "2")
    for c in (c1, c2):
        assert wait_for(lambda: read_errno(c.root / "f") is None and
                        harness.read_bytes(c.root / "f") == vb["f"], timeout=CONVERGE), \
            (c.name, read_errno(c.root / "f") or harness.read_bytes(c.root / "f"))
    # Each replica's version of g, by its size in the listing (f above
    # checks that servers 2 and 3 both got side B's update; here a replica
    # that missed it keeps what it had, and --keep-all keeps that).
    by_size = {len(base["g"]): base["g"], len(va["g"]): va["g"], len(vb["g"]): vb["g"]}
    gvers = {v["server"]: by_size.get(v["size"]) for v in cli_json("repair", c1.root / "g")["versions"]}
    assert gvers[1] == va["g"] and gvers[2] == vb["g"] and gvers[3] in (vb["g"], base["g"]), gvers
    r = cli_json("repair", c1.root / "g", "--keep-all")
    want = {"f": vb["f"], "g.conflict-server1": va["g"], "g.conflict-server2": vb["g"],
            "g.conflict-server3": gvers[3]}
    for c in (c1, c2):
        assert wait_for(lambda: tree_or_error(c.root) == want, timeout=CONVERGE), \
            "%s: %s; repair reply %r; replicas %r" % (c.name, tree_diff_or_error(c.root, want), r,
                                                       replica_names(servers))
        assert conflicts(c) == []
    # The reply names the new files (docs/architecture.md, ctl op repair).
    assert r.get("ok", True) and sorted(os.path.basename(n) for n in r.get("names", [])) == [
        "g.conflict-server1", "g.conflict-server2", "g.conflict-server3"], r
    wait_converged(views_of(servers), want=want, timeout=CONVERGE)
    # An ordinary update works again.
    harness.write_bytes(c2.root / "f", b"after repair")
    assert wait_for(lambda: harness.read_bytes(c1.root / "f") == b"after repair", timeout=CONVERGE)


def test_partitioned_clients_directory_updates(netns_topology):  # noqa: F811
    """Both sides create different names in d1: merged, no conflict, both
    names everywhere. Both create the name x in d2: d2 is a conflict, each
    side's x kept on its replicas; listing d2 still works, changes in it
    fail with EIO."""
    topo, servers, c1, c2 = two_sides(netns_topology)
    os.mkdir(c1.root / "d1")
    os.mkdir(c1.root / "d2")
    harness.write_bytes(c1.root / "d1" / "old", b"before the split")
    wait_converged(views_of(servers), want={"d1": "dir", "d2": "dir", "d1/old": b"before the split"})
    assert os.listdir(c2.root / "d1") == ["old"] and os.listdir(c2.root / "d2") == []
    split(topo)
    harness.write_bytes(c1.root / "d1" / "a", b"a from side A")
    harness.write_bytes(c2.root / "d1" / "b", b"b from side B")
    harness.write_bytes(c1.root / "d2" / "x", b"x from side A")
    harness.write_bytes(c2.root / "d2" / "x", b"x from side B, longer")
    topo.heal_all()

    want_d1 = {"old": b"before the split", "a": b"a from side A", "b": b"b from side B"}
    for c in (c1, c2):
        assert wait_for(lambda: sorted(os.listdir(c.root / "d1")) == sorted(want_d1), timeout=CONVERGE), \
            (c.name, os.listdir(c.root / "d1"))
        for n, v in want_d1.items():
            # The name may show before resolution has installed the data.
            assert wait_for(lambda: read_errno(c.root / "d1" / n) is None and
                            harness.read_bytes(c.root / "d1" / n) == v, timeout=CONVERGE), \
                (c.name, n, read_errno(c.root / "d1" / n))
    # d2: the name/name collision makes it a conflict; d1 is not one.
    for c in (c1, c2):
        assert wait_for(lambda: any(p.endswith("/d2") or p == "d2" for p in conflict_paths(c)),
                        timeout=CONVERGE), conflicts(c)
        assert not any("d1" in p for p in conflict_paths(c)), conflicts(c)
    snaps = {}
    for s in servers:
        with s.view() as v:
            snaps[s.sid] = snapshot(v)
    for sid, snap in snaps.items():
        assert not snap["/d1"]["conflict"], sid
        assert sorted(e[0] for e in snap["/d1"]["entries"]) == sorted(want_d1), (sid, snap["/d1"]["entries"])
        assert snap["/d2"]["conflict"], sid
        want_x = b"x from side A" if sid == 1 else b"x from side B, longer"
        assert snap["/d2/x"]["data"] == want_x, (sid, snap["/d2/x"]["data"])
    for c in (c1, c2):
        assert os.listdir(c.root / "d2") == ["x"]
        with pytest.raises(OSError) as ei:
            os.mkdir(c.root / "d2" / "new")
        assert ei.value.errno == errno.EIO


@pytest.mark.parametrize("how", ["keep", "keep-all"])
def test_partitioned_clients_directory_repair(netns_topology, how):  # noqa: F811
    """Both sides create x (and one more name each) in d: d is a conflict.
    `encore repair d --keep 2` makes servers 2's entries the truth and keeps
    side A's objects as NAME.conflict-server1; `--keep-all` keeps the union,
    both x's as x.conflict-server1 and x.conflict-server2. Afterwards nothing
    is in conflict, both clients see the tree, every replica is equal, and d
    takes updates again."""
    topo, servers, c1, c2 = two_sides(netns_topology)
    os.mkdir(c1.root / "d")
    harness.write_bytes(c1.root / "d" / "old", b"before the split")
    wait_converged(views_of(servers), want={"d": "dir", "d/old": b"before the split"})
    assert os.listdir(c2.root / "d") == ["old"]
    split(topo)
    va = {"x": b"x from side A", "a": b"a from side A"}
    vb = {"x": b"x from side B, longer", "b": b"b from side B"}
    for n, v in va.items():
        harness.write_bytes(c1.root / "d" / n, v)
    for n, v in vb.items():
        harness.write_bytes(c2.root / "d" / n, v)
    topo.heal_all()
    for c in (c1, c2):
        assert wait_for(lambda: any(p.endswith("/d") or p == "d" for p in conflict_paths(c)),
                        timeout=CONVERGE), conflicts(c)

    if how == "keep":
        r = cli("repair", c1.root / "d", "--keep", "2")
        want = {"d": "dir", "d/old": b"before the split", "d/x": vb["x"], "d/b": vb["b"],
                "d/x.conflict-server1": va["x"], "d/a.conflict-server1": va["a"]}
    else:
        r = cli("repair", c2.root / "d", "--keep-all")
        want = {"d": "dir", "d/old": b"before the split", "d/a": va["a"], "d/b": vb["b"],
                "d/x.conflict-server1": va["x"], "d/x.conflict-server2": vb["x"]}
    assert "repaired" in r.stderr, r.stderr
    for c in (c1, c2):
        assert wait_for(lambda: tree_or_error(c.root) == want, timeout=CONVERGE), \
            "%s: %s; replicas %r" % (c.name, tree_diff_or_error(c.root, want), replica_names(servers))
        assert wait_for(lambda: conflicts(c) == [], timeout=CONVERGE), conflicts(c)
    wait_converged(views_of(servers), want=want, timeout=CONVERGE)
    harness.write_bytes(c2.root / "d" / "after", b"after the repair")
    assert wait_for(lambda: read_errno(c1.root / "d" / "after") is None and
                    harness.read_bytes(c1.root / "d" / "after") == b"after the repair", timeout=CONVERGE)
    want["d/after"] = b"after the repair"
    wait_converged(views_of(servers), want=want, timeout=CONVERGE)
