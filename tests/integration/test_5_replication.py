"""Family 5: replication end to end, on loopback. Three encore-servers hold
the root volume (`init --vsg 1,2,3`, `--peers FILE`, docs/replication.md) and
an encore-client mounts it. A server is killed (-9) or frozen (SIGSTOP):
reads and writes through the mount go on with a bounded stall; when it comes
back, resolution brings it level, checked by reading every server's tree
directly over raw sockets (GETROOT/READDIR/GETATTR/FETCH/READLINK). Also a
server killed in the middle of resolution, and a chaos run of the exerciser
while servers are killed, restarted, frozen and thawed.

Stall bounds are generous (reads < 0.25 s, updates < 5 s) so that a noisy
2-core machine does not make them flaky; the issue's targets (no stall for
reads, at most 2 s for an update) are what bench/ reports. The read bound
still tells hedging (a read goes to the next member after a few ms) from
the old failover, which waited out the faulted member's 300 ms read
deadline. Convergence is
polled with a bounded wait (CONVERGE seconds): that waits for background
resolution, it is not a timing assertion.

The helpers here (ReplServer, ServerView, snapshot, replicas_equal, cli, ...)
are shared with test_5_replication_netns.py."""

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import exerciser  # noqa: E402
import harness  # noqa: E402
import wire  # noqa: E402

READ_STALL = 0.25    # first read after a fault, another replica being up
UPDATE_STALL = 5.0   # first update after a fault
CONVERGE = 30.0      # background resolution: bounded wait, not a timing check
CHAOS_OPS = int(os.environ.get("ENCORE_CHAOS_OPS", "20000"))
CHAOS_SEED = int(os.environ.get("ENCORE_CHAOS_SEED", "5151"))

# --- raw view of one server ------------------------------------------------

# The codec is wire.py's; these names are what this file (and callers of
# its helpers) use.
MSG_VOLINFO = wire.MSG_VOLINFO
MSG_CONFLICTS = wire.MSG_CONFLICTS
ST_CONFLICT = wire.ST_CONFLICT
ATTR_F_CONFLICT = wire.ATTR_F_CONFLICT
READDIR_EOF = wire.READDIR_EOF
RES_EOF = wire.RES_EOF
ROOT_OID = wire.ROOT_OID
dirents = wire.dirents  # READDIR's packed entries: [(name, fid, mode)]


class ServerView:
    """A raw connection to one server (HELLO done) for reading its replica
    directly. Callback breaks pushed to it are acknowledged at once, so it
    never holds another client's reply."""

    def __init__(self, conn, realm=harness.REALM):
        self.c = conn
        self.realm = realm
        self.hello = conn.hello(realm=realm, name="replica-check")

    def close(self):
        self.c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, mtype, **m):
        return self.c.request(mtype, **m)

    def root(self):
        r = self.call(wire.MSG_GETROOT, realm=self.realm)
        assert r["status"] == wire.ST_OK, r
        return r

    def getattr(self, fid):
        r = self.call(wire.MSG_GETATTR, fid=fid)
        return r["attr"] if r["status"] == wire.ST_OK else None

    def lookup(self, dirfid, name):
        r = self.call(wire.MSG_LOOKUP, fid=dirfid, name=name)
        return r["attr"] if r["status"] == wire.ST_OK else None

    def readdir(self, dirfid):
        """Every entry, following the name cookie to EOF."""
        out, cookie = [], ""
        while True:
            r = self.call(wire.MSG_READDIR, fid=dirfid, name=cookie, length=0)
            assert r["status"] == wire.ST_OK, r
            ents = dirents(r["data"])
            out += ents
            if r["mflags"] & READDIR_EOF or not ents:
                return out
            cookie = ents[-1][0]

    def fetch(self, fid):
        """Whole contents, or the wire status (e.g. ST_CONFLICT) on error."""
        out, off = b"", 0
        while True:
            r = self.call(wire.MSG_FETCH, fid=fid, offset=off, length=wire.CHUNK_MAX)
            if r["status"] != wire.ST_OK:
                return r["status"]
            out += r["data"]
            off += len(r["data"])
            if len(r["data"]) < wire.CHUNK_MAX or off >= r["attr"]["size"]:
                return out

    def readlink(self, fid):
        r = self.call(wire.MSG_READLINK, fid=fid)
        return r["target"] if r["status"] == wire.ST_OK else r["status"]

    def conflicts(self, vol=1):
        """The server's conflict table of vol: {fid: path}."""
        out, cookie = {}, ""
        while True:
            r = self.call(MSG_CONFLICTS, fid=(vol, bytes(16)), name=cookie)
            assert r["status"] == wire.ST_OK, r
            last = None
            for fid, path in wire.conflict_entries(r["data"]):
                out[fid] = path
                last = fid
            if r["mflags"] & RES_EOF or last is None:
                return out
            cookie = last[1].hex()


def snapshot(view):
    """The replica's whole tree: {path: record}. A record has what must be
    equal on every replica once resolved: the fid, type and permission bits,
    owner, nlink, size, the StoreId of the last update, the conflict flag, and
    the contents (file bytes, symlink target; for a directory, its sorted
    entries). Version vectors are left out on purpose: after a lost COP2,
    replicas with equal StoreIds may keep different vectors (SEMANTICS.md)."""
    out = {}

    def rec(path, a):
        return {"fid": (a["fid"][0], a["fid"][1].hex()), "mode": a["mode"], "uid": a["uid"],
                "gid": a["gid"], "nlink": a["nlink"], "size": a["size"], "sid": a["sid"],
                "conflict": bool(a["flags"] & ATTR_F_CONFLICT), "_vv": a["vv"]}

    def walk(path, a):
        r = rec(path, a)
        out[path] = r
        fid = a["fid"]
        kind = stat.S_IFMT(a["mode"])
        if kind == stat.S_IFDIR:
            ents = view.readdir(fid)
            r["entries"] = sorted((n, f[1].hex(), m) for n, f, m in ents)
            for name, cfid, _ in ents:
                ca = view.getattr(cfid)
                assert ca is not None, "%s/%s: entry without an object" % (path, name)
                walk(path + "/" + name, ca)
        elif kind == stat.S_IFREG:
            r["data"] = view.fetch(fid)
        elif kind == stat.S_IFLNK:
            r["data"] = view.readlink(fid)

    walk("", view.root()["attr"])
    return out


def diff_snapshots(snaps):
    """'' if all equal, else a short description of the first differences."""
    names = sorted(snaps)
    base = snaps[names[0]]
    lines = []
    for n in names[1:]:
        other = snaps[n]
        for p in sorted(set(base) | set(other)):
            a, b = base.get(p), other.get(p)
            if a is None or b is None:
                if a is not b:
                    r = a or b
                    lines.append("%s: only on %s (sid %r vv %r)" % (
                        p or "/", names[0] if b is None else n, r["sid"], r["_vv"]))
                continue
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and not k.startswith("_"))
            if not keys:
                continue
            keys.append("_vv")  # not compared (see snapshot), but telling
            desc = []
            for k in keys:
                va, vb = a.get(k), b.get(k)
                if k == "entries":
                    na, nb = {e[0]: e for e in va or []}, {e[0]: e for e in vb or []}
                    desc.append("entries only on %s %s, only on %s %s, differ %s" % (
                        names[0], sorted(set(na) - set(nb)), n, sorted(set(nb) - set(na)),
                        sorted(x for x in set(na) & set(nb) if na[x] != nb[x])))
                elif k == "data" and isinstance(va, bytes) and isinstance(vb, bytes):
                    desc.append("data %d vs %d bytes" % (len(va), len(vb)))
                else:
                    desc.append("%s %r vs %r" % (k, va, vb))
            lines.append("%s: %s vs %s: %s" % (p or "/", names[0], n, "; ".join(desc)))
            if len(lines) > 12:
                return "\n".join(lines + ["..."])
    return "\n".join(lines)


def tree_of(snap):
    """{path: bytes | 'dir' | ('symlink', target)} of a snapshot, root left out."""
    out = {}
    for p, r in snap.items():
        if not p:
            continue
        k = stat.S_IFMT(r["mode"])
        out[p.lstrip("/")] = "dir" if k == stat.S_IFDIR else (
            r["data"] if k == stat.S_IFREG else ("symlink", r["data"]))
    return out


def local_tree(root):
    """The same shape as tree_of, read through a mount (or any directory)."""
    out = {}
    root = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel
        for d in dirnames:
            out[os.path.join(rel, d)] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            if os.path.islink(p):
                out[os.path.join(rel, f)] = ("symlink", os.readlink(p))
            else:
                out[os.path.join(rel, f)] = harness.read_bytes(p)
    return out


def describe_tree_diff(got, want):
    extra = sorted(set(got) - set(want))
    missing = sorted(set(want) - set(got))
    differ = sorted(p for p in set(got) & set(want) if got[p] != want[p])
    shown = ["%s (got %r, want %r)" % (p, got[p][:40], want[p][:40]) for p in differ[:5]]
    return "extra %s missing %s differ %s" % (extra[:10], missing[:10], shown + differ[5:10])


def views_snapshots(views_factory):
    """{sid: snapshot} of every server; views_factory() -> [(sid, ServerView)]."""
    snaps = {}
    for sid, v in views_factory():
        with v:
            snaps[sid] = snapshot(v)
    return snaps


def wait_converged(views_factory, want=None, timeout=CONVERGE, sub=None):
    """Polls until every replica's snapshot is equal (and, with want, its
    tree -- below sub if given -- is want). Returns the snapshots; fails
    with the differences after timeout."""
    deadline = time.monotonic() + timeout
    why = "never polled"
    while True:
        try:
            snaps = views_snapshots(views_factory)
            why = diff_snapshots(snaps)
            if not why:
                conflicted = sorted(p or "/" for p, r in next(iter(snaps.values())).items() if r["conflict"])
                if conflicted:
                    why = "objects in conflict: %s" % conflicted
                elif want is not None:
                    got = tree_of(next(iter(snaps.values())))
                    if sub is not None:
                        pre = sub.rstrip("/") + "/"
                        got = {p[len(pre):]: v for p, v in got.items() if p.startswith(pre)}
                    if got != want:
                        why = "replicas equal but not the expected tree: " + describe_tree_diff(got, want)
                if not why:
                    return snaps
        except (OSError, wire.ConnClosed, wire.WireError, AssertionError) as e:
            why = "cannot read a replica: %r" % (e,)
        if time.monotonic() >= deadline:
            pytest.fail("replicas did not converge within %.0f s:\n%s" % (timeout, why))
        time.sleep(0.5)


def wait_for(pred, timeout=CONVERGE, step=0.2):
    return harness.wait_for(pred, timeout, step)


# --- processes ---------------------------------------------------------------

def write_peers(path, addrs):
    """The realm's peers file (docs/replication.md): [server N] address = A."""
    path.write_text("".join("[server %d]\naddress = %s\n" % (i + 1, a) for i, a in enumerate(addrs)))
    return path


class ReplServer(harness.Server):
    """An encore-server of a replicated realm on loopback: `init --vsg`, and
    started with `--peers FILE` on a port fixed in advance (the peers file
    names it), so a restart comes back at the same address."""

    def __init__(self, base, sid, vsg, peers, port):
        super().__init__(base, sid)
        self.vsg = vsg
        self.peers = peers
        self.port = port
        self.frozen = False

    def init(self, **kw):
        cmd = [harness.require_binary("encore-server"), "init", "--dir", str(self.dir),
               "--server-id", str(self.sid), "--realm", self.realm,
               "--vsg", ",".join(str(x) for x in self.vsg)]
        with open(self.log, "ab") as lf:
            r = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("encore-server init exited %d; log:\n%s" % (r.returncode, harness.log_tail(self.log)))

    def argv(self, wfd):
        return [harness.require_binary("encore-server"), "--dir", str(self.dir),
                "--listen", "127.0.0.1:%d" % self.port, "--port-file", str(self.port_file),
                "--ready-fd", str(wfd), "--peers", str(self.peers), "-v"] + \
            os.environ.get("ENCORE_SERVER_ARGS", "").split()

    def start(self, port=None):
        assert self.proc is None or self.proc.poll() is not None
        if self.port_file.exists():
            self.port_file.unlink()
        rfd, wfd = os.pipe()
        with open(self.log, "ab") as lf:
            try:
                self.proc = subprocess.Popen(self.argv(wfd), pass_fds=(wfd,), stdin=subprocess.DEVNULL,
                                             stdout=lf, stderr=subprocess.STDOUT)
            finally:
                os.close(wfd)
        try:
            harness.wait_ready(self.proc, rfd, harness.READY_TIMEOUT, "encore-server %d" % self.sid, self.log)
        except Exception:
            harness.kill9(self.proc)
            raise
        got = int(self.port_file.read_text())
        assert got == self.port, "asked for port %d, port file says %d" % (self.port, got)
        self.frozen = False
        return self

    def freeze(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)
        self.frozen = False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
        self.frozen = False
        harness.stop_process(self.proc)

    def kill9(self):
        harness.kill9(self.proc)
        self.frozen = False

    def view(self, timeout=10.0):
        return ServerView(wire.Conn(self.port, timeout=timeout), self.realm)

    def stats(self):
        with wire.Conn(self.port, timeout=10.0) as c:
            c.hello(realm=self.realm)
            return c.stats()


def replicated_realm(cluster, n=3):
    """n ReplServers (ids 1..n) sharing the root volume, all started, added
    to the cluster (which stops them at teardown)."""
    ports = harness_free_ports(n)
    peers = write_peers(cluster.base / "servers.conf", ["127.0.0.1:%d" % p for p in ports])
    vsg = list(range(1, n + 1))
    out = []
    for i in range(n):
        s = ReplServer(cluster.base, i + 1, vsg, peers, ports[i])
        cluster.servers.append(s)
        s.init()
        out.append(s)
    for s in out:
        s.start()
    return out


harness_free_ports = harness.free_ports
ctl = harness.ctl  # one control-socket request (MSG_CTL, JSON) to a client's daemon


def avsg(client):
    st = ctl(client, "status")
    assert st.get("ok"), st
    vols = st.get("volumes") or []
    return sorted(vols[0].get("avsg", [])) if vols else []


def all_up(client, n=3):
    """True once the client reaches every server (its probes found them)."""
    try:
        st = ctl(client, "status")
    except OSError:
        return False
    if not st.get("ok"):
        return False
    ups = sorted(s["id"] for s in st.get("servers", []) if s.get("state") == "up")
    return ups == list(range(1, n + 1))


def flush(client, *paths):
    """Drops the client's cached data of these files (ctl flush)."""
    for p in paths:
        r = ctl(client, "flush", ino=os.stat(p).st_ino)
        assert r.get("ok"), r


def cli(*args, env=None, timeout=60, check=True):
    """Runs the encore CLI; returns CompletedProcess (text)."""
    r = subprocess.run([harness.require_binary("encore")] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert r.returncode == 0, "encore %s: exit %d\nstdout: %s\nstderr: %s" % (
            " ".join(map(str, args)), r.returncode, r.stdout, r.stderr)
    return r


def cli_json(*args, **kw):
    r = cli(*(list(args) + ["--json"]), **kw)
    return json.loads(r.stdout)


def timed(fn, *a):
    t0 = time.monotonic()
    v = fn(*a)
    return v, time.monotonic() - t0


def fetch_counts(servers):
    return [s.stats().get("fetch_calls", 0) for s in servers]


def preferred_server(client, servers, path):
    """The server the client reads from: flush path, read it, see whose
    FETCH counter moved. The read must hit exactly one server."""
    for _ in range(5):
        flush(client, path)
        before = fetch_counts(servers)
        harness.read_bytes(path)
        after = fetch_counts(servers)
        moved = [s for s, b, a in zip(servers, before, after) if a > b]
        if len(moved) == 1:
            return moved[0]
    pytest.fail("cannot tell which server the client reads from: fetch_calls %s -> %s" % (before, after))


@pytest.fixture
def realm3(cluster):
    servers = replicated_realm(cluster, 3)
    client = cluster.client(servers)
    assert wait_for(lambda: all_up(client), timeout=15), ctl(client, "status")
    return servers, client


def views_of(servers):
    return lambda: [(s.sid, s.view()) for s in servers]


# --- scenarios -----------------------------------------------------------------

def populate(root, model):
    """A small tree through the mount: directories, small and large files,
    a symlink; model (dict rel -> content) is filled in."""
    os.mkdir(root / "d")
    os.mkdir(root / "d" / "sub")
    model["d"] = "dir"
    model["d/sub"] = "dir"
    rng = random.Random(42)
    for i in range(8):
        data = rng.randbytes(rng.choice([10, 3000, 70000]))
        harness.write_bytes(root / "d" / ("r%d" % i), data)
        model["d/r%d" % i] = data
    big = rng.randbytes(1300 * 1024)
    harness.write_bytes(root / "d" / "sub" / "big", big)
    model["d/sub/big"] = big
    os.symlink("r0", root / "d" / "link")
    model["d/link"] = ("symlink", "r0")


def updates_after_fault(root, model, tag):
    """A spread of updates while a replica is away."""
    rng = random.Random(tag)
    harness.write_bytes(root / "d" / "r1", b"overwritten while away " + tag.encode())
    model["d/r1"] = b"overwritten while away " + tag.encode()
    os.mkdir(root / "d" / ("new-" + tag))
    model["d/new-" + tag] = "dir"
    data = rng.randbytes(600 * 1024)
    harness.write_bytes(root / "d" / ("new-" + tag) / "f", data)
    model["d/new-%s/f" % tag] = data
    os.rename(root / "d" / "r2", root / "d" / "sub" / "r2-moved")
    model["d/sub/r2-moved"] = model.pop("d/r2")
    os.unlink(root / "d" / "r3")
    del model["d/r3"]
    with open(root / "d" / "r4", "ab") as f:
        f.write(b"appended")
    model["d/r4"] += b"appended"
    os.truncate(root / "d" / "r5", 5)
    model["d/r5"] = model["d/r5"][:5]


@pytest.mark.parametrize("fault", ["kill9", "freeze"])
def test_one_server_fault_then_resolution(realm3, fault):
    """The server the client reads from is killed (-9) or frozen: the first
    read and the first update after the fault complete within the bounds,
    everything else goes on; after restart / SIGCONT the replicas converge
    to the same tree, equal to what the client wrote."""
    servers, client = realm3
    root = client.root
    model = {}
    populate(root, model)
    victim = preferred_server(client, servers, root / "d" / "r0")
    flush(client, *[root / "d" / ("r%d" % i) for i in range(8)])

    if fault == "kill9":
        victim.kill9()
    else:
        victim.freeze()
    got, stall = timed(harness.read_bytes, root / "d" / "r6")
    assert got == model["d/r6"]
    assert stall < READ_STALL, "first read after %s of server %d stalled %.2f s" % (fault, victim.sid, stall)
    _, stall = timed(harness.write_bytes, root / "d" / "first-update", b"first update after the fault")
    model["d/first-update"] = b"first update after the fault"
    assert stall < UPDATE_STALL, "first update after %s of server %d stalled %.2f s" % (fault, victim.sid, stall)
    # Later reads of other uncached files do not wait for it either.
    got, stall = timed(harness.read_bytes, root / "d" / "r7")
    assert got == model["d/r7"] and stall < READ_STALL, stall
    updates_after_fault(root, model, fault)
    assert local_tree(root) == model, describe_tree_diff(local_tree(root), model)
    assert victim.sid not in avsg(client)

    if fault == "kill9":
        victim.start()
    else:
        victim.thaw()
    assert wait_for(lambda: victim.sid in avsg(client), timeout=15), ctl(client, "status")
    wait_converged(views_of(servers), want=model)
    # Updates with all three back reach all three.
    harness.write_bytes(root / "d" / "after", b"after the return")
    model["d/after"] = b"after the return"
    wait_converged(views_of(servers), want=model)
    assert local_tree(root) == model


def test_update_while_two_down_then_both_return(realm3, cluster):
    """Two servers down (one killed, one frozen): the last one carries every
    update; both come back and are brought level; a client with an empty
    cache reads everything."""
    servers, client = realm3
    root = client.root
    model = {}
    populate(root, model)
    servers[0].kill9()
    servers[1].freeze()
    _, stall = timed(harness.write_bytes, root / "d" / "solo", b"only server 3 saw this")
    model["d/solo"] = b"only server 3 saw this"
    assert stall < UPDATE_STALL, stall
    updates_after_fault(root, model, "two-down")
    servers[1].thaw()
    servers[0].start()
    wait_converged(views_of(servers), want=model)
    fresh = cluster.client([servers[0]], name="fresh")
    assert local_tree(fresh.root) == model


def test_server_crash_in_the_middle_of_resolution(realm3, cluster):
    """Server 3 misses many large updates; it comes back and is killed (-9)
    while resolution is bringing it level, then server 1 (a source) too;
    after restarts resolution finishes: nothing lost, replicas equal."""
    servers, client = realm3
    root = client.root
    model = {}
    os.mkdir(root / "bulk")
    model["bulk"] = "dir"
    s3 = servers[2]
    s3.kill9()
    rng = random.Random(7)
    n = 40
    for i in range(n):
        data = rng.randbytes(256 * 1024 + i)
        harness.write_bytes(root / "bulk" / ("f%02d" % i), data)
        model["bulk/f%02d" % i] = data
    s3.start()

    def installed():
        """Files of server 3 that already have their data (size matches)."""
        try:
            with s3.view(timeout=2.0) as v:
                b = v.lookup((1, ROOT_OID), "bulk")
                if b is None:
                    return 0
                done = 0
                for name, fid, _ in v.readdir(b["fid"]):
                    a = v.getattr(fid)
                    if a is not None and a["size"] == len(model.get("bulk/" + name, b"")):
                        done += 1
                return done
        except (OSError, wire.ConnClosed, wire.WireError, AssertionError):
            return 0

    # Kill it as soon as resolution has started but (normally) not finished.
    deadline = time.monotonic() + CONVERGE
    seen = 0
    while time.monotonic() < deadline:
        seen = installed()
        if seen > 0:
            break
        time.sleep(0.02)
    s3.kill9()
    servers[0].kill9()
    sys.stderr.write("server 3 had %d of %d files when killed\n" % (seen, n))
    # The client goes on with server 2 alone.
    _, stall = timed(harness.write_bytes, root / "bulk" / "during", b"written with only server 2")
    model["bulk/during"] = b"written with only server 2"
    assert stall < UPDATE_STALL, stall
    servers[0].start()
    s3.start()
    wait_converged(views_of(servers), want=model, timeout=2 * CONVERGE)
    fresh = cluster.client([s3], name="fresh3")
    assert local_tree(fresh.root) == model
    assert local_tree(root) == model


# --- chaos -------------------------------------------------------------------------

class Chaos(threading.Thread):
    """Kills (-9) and restarts, freezes and thaws servers at random, at most
    one away at a time (so never all three), until stopped."""

    def __init__(self, servers, seed):
        super().__init__(daemon=True)
        self.servers = servers
        self.rng = random.Random(seed)
        self.halt = threading.Event()
        self.events = []
        self.error = None

    def run(self):
        try:
            # Both kinds come first (in a random order), so that a fast
            # run still sees each: then at random.
            first = self.rng.sample(["kill9", "freeze"], 2)
            while not self.halt.wait(self.rng.uniform(0.5, 1.5)):
                s = self.rng.choice(self.servers)
                kind = first.pop(0) if first else self.rng.choice(["kill9", "freeze"])
                self.events.append((round(time.monotonic(), 2), kind, s.sid))
                if kind == "kill9":
                    s.kill9()
                else:
                    s.freeze()
                self.halt.wait(self.rng.uniform(0.3, 2.0))
                if kind == "kill9":
                    s.start()
                else:
                    s.thaw()
                self.events.append((round(time.monotonic(), 2), "back", s.sid))
        except Exception as e:  # reported by the test
            self.error = e

    def stop(self):
        self.halt.set()
        self.join(timeout=60)
        for s in self.servers:  # whatever state it was left in
            if s.frozen:
                s.thaw()
            elif not s.running():
                s.start()


def close_quietly(fds):
    for fd in list(fds):
        try:
            os.close(fd)
        except OSError:
            pass
    fds.clear()


def test_chaos_exerciser(realm3, cluster):
    """The exerciser runs CHAOS_OPS operations (fixed seed) on the mount while
    a chaos thread kills/restarts and freezes/thaws one server at a time.
    No acknowledged update is lost (the model matches the mount, and a client
    with an empty cache), and the three replicas converge."""
    servers, client = realm3
    log = open(cluster.base / "exerciser.log", "w")
    cluster.extra.append(log.close)
    ex = exerciser.Exerciser(client.root / "ex", seed=CHAOS_SEED, log=log)
    cluster.extra.append(lambda: close_quietly(ex.fds))  # a failed run leaves fds open on the mount
    chaos = Chaos(servers, CHAOS_SEED)
    cluster.extra.insert(0, lambda: chaos.halt.set())
    chaos.start()
    try:
        done, step = 0, 2000
        while done < CHAOS_OPS:
            ex.run(min(step, CHAOS_OPS - done))
            done += step
            if chaos.error:
                break
        # A fast machine may finish before both kinds of fault came: go on
        # (bounded) until each has come and gone.
        deadline = time.monotonic() + 60
        while (not chaos.error and time.monotonic() < deadline and
               sum(1 for e in chaos.events if e[1] == "back") < 2):
            ex.run(200)
    finally:
        chaos.stop()
        sys.stderr.write("chaos events (monotonic, what, server): %s\n%s\n" % (chaos.events, ex.summary()))
    assert chaos.error is None, chaos.error
    assert any(e[1] == "kill9" for e in chaos.events) and any(e[1] == "freeze" for e in chaos.events), \
        chaos.events
    ex.close_all()
    ex.verify_tree()
    want = {}
    for d in ex.dirs:
        if d:
            want[d] = "dir"
    for rel, fid in ex.names.items():
        want[rel] = bytes(ex.data[fid])
    wait_converged(views_of(servers), want=want, sub="ex", timeout=2 * CONVERGE)
    fresh = cluster.client([servers[1]], name="fresh")
    ex.root = os.fspath(fresh.root / "ex")
    ex.verify_tree()


def test_replica_check_sees_a_difference(realm3, cluster):
    """The replica comparison is not vacuous: a copy of a store that missed
    updates (served by a server that knows no reachable peer, so nothing
    resolves it) differs from the others, and diff_snapshots says how."""
    servers, client = realm3
    root = client.root
    harness.write_bytes(root / "x", b"one")
    wait_converged(views_of(servers), want={"x": b"one"})
    s3 = servers[2]
    s3.kill9()
    stale = cluster.base / "server3-stale"
    shutil.copytree(s3.dir, stale, symlinks=True)
    s3.start()
    harness.write_bytes(root / "x", b"two, longer")
    os.mkdir(root / "y")
    wait_converged(views_of(servers), want={"x": b"two, longer", "y": "dir"})
    port = harness_free_ports(1)[0]
    lonely = cluster.base / "lonely.conf"
    lonely.write_text("[server 1]\naddress = 127.0.0.1:1\n[server 2]\naddress = 127.0.0.1:2\n"
                      "[server 3]\naddress = 127.0.0.1:%d\n" % port)
    old = ReplServer(cluster.base, 3, s3.vsg, lonely, port)
    old.dir = stale
    old.log = cluster.base / "server3-stale.log"
    old.port_file = cluster.base / "server3-stale.port"
    cluster.servers.append(old)
    old.start()
    snaps = views_snapshots(lambda: [(1, servers[0].view()), (3, old.view())])
    why = diff_snapshots(snaps)
    assert "y: only on 1" in why and "/x: 1 vs 3: " in why and "data 11 vs 3 bytes" in why, why
    assert diff_snapshots(views_snapshots(views_of(servers))) == ""
