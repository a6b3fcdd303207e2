"""netns.py - servers and clients as separate hosts, for partition tests.

Each host (server1..serverN, client1..clientM) is its own network namespace
with one interface, eth0, whose veth peer is a port of a bridge, br0, inside
a separate "switch" namespace. Addresses come from a private range
(DEFAULT_SUBNET, 10.77.0.0/24: serverI is .10+I, clientJ is .100+J) and
exist only inside these namespaces: the root namespace gets no interface, no
address and no route, so test traffic cannot leave the machine, and two
topologies (two pytest processes) may use the same addresses side by side.

    def test_x(netns_topology):
        topo = netns_topology(servers=2, clients=1)
        s1 = topo.server(1)                 # encore-server in host server1
        c = topo.client([s1])               # FUSE client in host client1
        topo.partition("server1")           # unplug server1's cable
        ...
        topo.heal("server1")

Faults (all idempotent; heal_all() undoes every one):
- partition(host) / heal(host): sets the switch-side end of the host's veth
  (v-<host> in the switch) down/up, like pulling the cable at the switch.
  Nothing changes inside the host: its address and routes stay, its packets
  are silently lost, so peers and the host itself see timeouts, never an
  error. partition(host, local=True) also sets the host's own eth0 down:
  then the host's routes go away and its connects fail at once with
  ENETUNREACH (a machine that knows it is offline).
- drop(a, b) / undrop(a, b): silently drops IPv4 packets between two hosts
  (both directions; oneway=True: only a -> b), everything else still flows.
  Method (topo.drop_method): nftables if `nft` works, in the switch
  namespace: table `bridge encore` with a set `cut` of (saddr . daddr) pairs
  and one forward rule `ip saddr . ip daddr @cut drop`; a drop is one set
  element, so neither host sees a change and both see timeouts, exactly as
  with a broken path in the network. Without nftables (or with
  ENCORE_NETNS_DROP=route): `ip route replace blackhole` in the hosts; that
  is not silent (the sender gets EINVAL at once) and cuts TCP both ways even
  with oneway=True, because replies are blackholed too.

Processes: topo.popen(host, argv) runs argv with `nsenter --net=/run/netns/X`,
which switches only the network namespace and then execs argv, so the Popen
pid is the program's pid and pass_fds (ready fds) work. Not `ip netns exec`:
that also unshares the mount namespace (and makes / a slave), so a FUSE
mount made under it is invisible in the root namespace and dies with the
process. With nsenter the client's mount is an ordinary mount in the root
mount namespace, visible to the test, while all its TCP traffic goes through
the topology. topo.entered(host) switches the calling thread into a host's
namespace for a `with` block: sockets created there stay in that namespace
(topo.conn() builds a wire.Conn that way), so tests speak the wire protocol
from any host without a helper process.

Names: every namespace is encnt<pytest pid>-<n>-<host> (n counts topologies
in the process). Teardown (the fixture's finalizer, even when the test
fails, and the watchdog as in conftest.py) stops the clients (unmount) and
servers we started, SIGKILLs whatever else is still inside our namespaces,
and deletes them, switch last (its veth ends go with the hosts). At the first
topology of a process, namespaces named encnt<pid>-* whose pid no longer runs
(a crashed run) are cleaned up the same way; live ones belong to a
concurrent run and are left alone.

Requires root, iproute2 (`ip netns`, veth, bridge) and util-linux nsenter;
tests that use the fixture skip otherwise. nftables is optional.
Knobs: ENCORE_NETNS_DROP=nft|route forces the drop method.
"""

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import wire  # noqa: E402

PREFIX = "encnt"
DEFAULT_SUBNET = "10.77.0"  # /24
SERVER_BASE = 10  # serverI is SUBNET.(10+I)
CLIENT_BASE = 100  # clientJ is SUBNET.(100+J)
BRIDGE = "br0"
IFNAME = "eth0"
NFT_TABLE = "encore"
CMD_TIMEOUT = 30.0

_NETNS_DIR = "/run/netns"
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_counter = 0
_counter_lock = threading.Lock()
_swept = False
_probe = None  # None: not run; "" ok; else the skip reason


class NetnsError(RuntimeError):
    pass


def _ip(*args, check=True):
    """Runs `ip ARGS`; raises NetnsError with its stderr on failure."""
    r = subprocess.run(["ip"] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=CMD_TIMEOUT)
    if check and r.returncode != 0:
        raise NetnsError("ip %s: %s" % (" ".join(map(str, args)), r.stderr.strip()))
    return r


def _setns(fd):
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


def nsenter_argv(netns):
    """Prefix that runs a program in netns (network namespace only)."""
    return ["nsenter", "--net=%s/%s" % (_NETNS_DIR, netns), "--"]


def list_netns():
    try:
        return sorted(os.listdir(_NETNS_DIR))
    except OSError:
        return []


def netns_pids(netns):
    r = _ip("netns", "pids", netns, check=False)
    return [int(x) for x in r.stdout.split() if x.isdigit()]


def _kill_pids_in(netns):
    """SIGKILLs every process left in netns (all started by us: it is ours)
    and waits briefly for them to go."""
    pids = [p for p in netns_pids(netns) if p != os.getpid()]
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(harness.pid_alive(p) for p in pids):
        time.sleep(0.02)


def _delete_netns(netns):
    _kill_pids_in(netns)
    r = _ip("netns", "del", netns, check=False)
    if r.returncode != 0 and netns in list_netns():
        raise NetnsError("ip netns del %s: %s" % (netns, r.stderr.strip()))


def sweep_stale():
    """Deletes namespaces encnt<pid>-* left by runs whose pid is gone.
    Returns their names."""
    gone = []
    for n in list_netns():
        m = re.match(r"%s(\d+)-" % PREFIX, n)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or harness.pid_alive(pid):
            continue  # ours (our teardown owns it) or a concurrent run's
        try:
            # Any order works: a namespace takes its veth ends with it.
            _delete_netns(n)
            gone.append(n)
        except NetnsError as e:
            sys.stderr.write("netns: cannot remove stale %s: %s\n" % (n, e))
    return gone


def unavailable():
    """"" if this machine can build topologies, else the reason (for skip)."""
    global _probe
    if _probe is not None:
        return _probe
    if os.geteuid() != 0:
        _probe = "network namespaces need root"
    elif not shutil.which("ip") or not shutil.which("nsenter"):
        _probe = "iproute2 `ip` or util-linux `nsenter` is missing"
    else:
        name = "%s%d-probe" % (PREFIX, os.getpid())
        try:
            _ip("netns", "add", name)
            _ip("-n", name, "link", "add", BRIDGE, "type", "bridge")
            _ip("-n", name, "link", "add", "vp0", "type", "veth", "peer", "name", "vp1")
            _probe = ""
        except (NetnsError, OSError) as e:
            _probe = "cannot create network namespaces here: %s" % e
        finally:
            _ip("netns", "del", name, check=False)
    return _probe


def require_netns():
    why = unavailable()
    if why:
        pytest.skip(why)


def _nft_works(netns):
    if not shutil.which("nft"):
        return False
    r = subprocess.run(nsenter_argv(netns) + ["nft", "list", "tables"], capture_output=True,
                       timeout=CMD_TIMEOUT)
    return r.returncode == 0


class Host:
    """One namespace with one interface (eth0) on the switch."""

    def __init__(self, topo, name, ip):
        self.topo = topo
        self.name = name
        self.ip = ip
        self.netns = topo.prefix + name
        self.sw_if = "v-" + name  # its veth end in the switch namespace

    @property
    def nspath(self):
        return "%s/%s" % (_NETNS_DIR, self.netns)

    def popen(self, argv, **kw):
        return self.topo.popen(self.name, argv, **kw)

    def run(self, argv, **kw):
        return self.topo.run(self.name, argv, **kw)

    def __repr__(self):
        return "Host(%s %s)" % (self.name, self.ip)


class NsServer(harness.Server):
    """An encore-server in its own host; listens on HOST_IP:port."""

    def __init__(self, topo, host, base, sid, realm=harness.REALM):
        super().__init__(base, sid, realm)
        self.topo = topo
        self.host = host

    @property
    def addr(self):
        return "%s:%d" % (self.host.ip, self.port)

    def start(self, port=None):
        """As harness.Server.start, inside the host's namespace."""
        assert self.proc is None or self.proc.poll() is not None
        if self.port_file.exists():
            self.port_file.unlink()
        rfd, wfd = os.pipe()
        cmd = nsenter_argv(self.host.netns) + [
            harness.require_binary("encore-server"), "--dir", str(self.dir),
            "--listen", "%s:%d" % (self.host.ip, port or 0), "--port-file", str(self.port_file),
            "--ready-fd", str(wfd)]
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
        got = int(self.port_file.read_text())
        assert got > 0
        if port:
            assert got == port, "asked for port %d, port file says %d" % (port, got)
        self.port = got
        return self

    def freeze(self):
        """SIGSTOP (a hung machine that keeps its connections)."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
        harness.stop_process(self.proc)

    def conn(self, frm=None, timeout=10.0):
        """wire.Conn to this server from host frm (default: its own host,
        which reaches it even while it is partitioned)."""
        return self.topo.conn(frm or self.host.name, self, timeout=timeout)

    def stats(self):
        with self.conn() as c:
            c.hello(realm=self.realm)
            return c.stats()


class NsClient(harness.Client):
    """An encore-client whose daemon runs in its own host's namespace; its
    mount is in the root mount namespace, so the test reads it directly."""

    def __init__(self, topo, host, base, name, servers, realm=harness.REALM, extra_args=()):
        super().__init__(base, name, servers, realm=realm, extra_args=extra_args)
        self.topo = topo
        self.host = host

    def start(self):
        """As harness.Client.start, inside the host's namespace."""
        assert self.proc is None or self.proc.poll() is not None
        self.mount.mkdir(exist_ok=True)
        self.cache.mkdir(exist_ok=True)
        rfd, wfd = os.pipe()
        cmd = nsenter_argv(self.host.netns) + [
            harness.require_binary("encore-client"), "--mount", str(self.mount),
            "--cache", str(self.cache), "--realm", self.realm]
        for s in self.servers:
            cmd += ["--server", s.addr]
        cmd += ["--ready-fd", str(wfd)] + self.extra_args
        with open(self.log, "ab") as lf:
            try:
                self.proc = subprocess.Popen(cmd, pass_fds=(wfd,), stdin=subprocess.DEVNULL,
                                             stdout=lf, stderr=subprocess.STDOUT)
            finally:
                os.close(wfd)
        try:
            harness.wait_ready(self.proc, rfd, harness.READY_TIMEOUT,
                               "encore-client %s in %s" % (self.name, self.host.name), self.log)
            assert harness.mounted(self.mount), (
                "client %s ready but %s is not mounted in the root mount namespace"
                % (self.name, self.mount))
        except Exception:
            self.stop()
            raise
        return self


class Topology:
    """A switch namespace with a bridge, and one namespace per host."""

    def __init__(self, base, servers=2, clients=1, subnet=DEFAULT_SUBNET, drop_method=None):
        global _counter
        with _counter_lock:
            n = _counter
            _counter += 1
        self.base = Path(base)
        self.prefix = "%s%d-%d-" % (PREFIX, os.getpid(), n)
        self.switch = self.prefix + "switch"
        self.subnet = subnet
        self.hosts = {}
        for i in range(1, servers + 1):
            self._add_host("server%d" % i, "%s.%d" % (subnet, SERVER_BASE + i))
        for j in range(1, clients + 1):
            self._add_host("client%d" % j, "%s.%d" % (subnet, CLIENT_BASE + j))
        self.drop_method = drop_method or os.environ.get("ENCORE_NETNS_DROP") or None
        self.servers = []
        self.clients = []
        self.procs = []  # other Popens from popen()
        self._created = []  # namespaces made, in order
        self._partitioned = set()
        self._local_down = set()
        self._drops = set()  # (src host, dst host)
        self._lock = threading.Lock()

    def _add_host(self, name, ip):
        # The switch-side veth name "v-<name>" must fit IFNAMSIZ (15).
        if not re.fullmatch(r"[a-z][a-z0-9]{0,12}", name):
            raise ValueError("host name %r: [a-z][a-z0-9]{0,12}" % name)
        h = Host(self, name, ip)
        self.hosts[name] = h
        return h

    def add_host(self, name, ip):
        """An extra host (call before create())."""
        assert not self._created
        return self._add_host(name, ip)

    def host(self, h):
        return h if isinstance(h, Host) else self.hosts[h]

    # --- building and tearing down ---------------------------------------

    def create(self):
        global _swept
        if not _swept:
            _swept = True
            for n in sweep_stale():
                sys.stderr.write("netns: removed stale namespace %s\n" % n)
        try:
            self._make_ns(self.switch)
            _ip("-n", self.switch, "link", "set", "lo", "up")
            _ip("-n", self.switch, "link", "add", BRIDGE, "type", "bridge")
            _ip("-n", self.switch, "link", "set", BRIDGE, "up")
            for h in self.hosts.values():
                self._make_ns(h.netns)
                _ip("-n", self.switch, "link", "add", h.sw_if, "type", "veth",
                    "peer", "name", IFNAME, "netns", h.netns)
                _ip("-n", self.switch, "link", "set", h.sw_if, "master", BRIDGE, "up")
                _ip("-n", h.netns, "addr", "add", h.ip + "/24", "dev", IFNAME)
                _ip("-n", h.netns, "link", "set", IFNAME, "up")
                _ip("-n", h.netns, "link", "set", "lo", "up")
            if self.drop_method is None:
                self.drop_method = "nft" if _nft_works(self.switch) else "route"
            if self.drop_method == "nft":
                self._nft(
                    "table bridge %s {\n"
                    "  set cut { type ipv4_addr . ipv4_addr; }\n"
                    "  chain fwd_cut {\n"
                    "    type filter hook forward priority 0; policy accept;\n"
                    "    ip saddr . ip daddr @cut drop\n"
                    "  }\n"
                    "}\n" % NFT_TABLE)
            elif self.drop_method != "route":
                raise ValueError("drop method %r: nft or route" % self.drop_method)
        except Exception:
            self.destroy()
            raise
        return self

    def _make_ns(self, name):
        _ip("netns", "add", name)
        self._created.append(name)

    def kill_all(self):
        """Watchdog: SIGKILL every process we started (FUSE requests then
        fail with ENOTCONN)."""
        for p in self._all_procs():
            try:
                if p.poll() is None:
                    p.kill()
            except OSError:
                pass

    def _all_procs(self):
        return [x.proc for x in self.clients + self.servers if x.proc is not None] + self.procs

    def destroy(self, failed=False):
        """Stops everything and deletes the namespaces. Returns the errors
        (teardown goes on past each)."""
        errors = []
        for c in self.clients:
            try:
                c.stop()
            except Exception as e:
                errors.append(e)
        for s in self.servers:
            try:
                s.stop()
            except Exception as e:
                errors.append(e)
        for p in self.procs:
            try:
                harness.stop_process(p)
            except Exception as e:
                errors.append(e)
        if failed:
            for x in self.servers + self.clients:
                sys.stderr.write("==== %s (%s)\n%s\n" % (x.log, x.host.name, harness.log_tail(x.log, 60)))
        # Hosts first; the switch last.
        for name in reversed(self._created):
            try:
                _delete_netns(name)
            except Exception as e:
                errors.append(e)
        self._created = []
        for p in self._all_procs():
            if p.poll() is None:
                errors.append(RuntimeError("pid %d still running after teardown" % p.pid))
        return errors

    # --- processes ---------------------------------------------------------

    def popen(self, host, argv, **kw):
        """subprocess.Popen of argv in host's network namespace (same pid,
        same mount namespace; pass_fds etc. as usual). Stopped at teardown."""
        p = subprocess.Popen(nsenter_argv(self.host(host).netns) + [str(a) for a in argv], **kw)
        self.procs.append(p)
        return p

    def run(self, host, argv, timeout=CMD_TIMEOUT, **kw):
        """subprocess.run of argv in host's network namespace."""
        return subprocess.run(nsenter_argv(self.host(host).netns) + [str(a) for a in argv],
                              timeout=timeout, **kw)

    @contextlib.contextmanager
    def entered(self, host):
        """Runs the with-block's thread in host's network namespace; sockets
        made inside keep that namespace after the block."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = os.open(self.host(host).nspath, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(target)
                try:
                    yield self.host(host)
                finally:
                    _setns(own)
            finally:
                os.close(target)
        finally:
            os.close(own)

    def conn(self, frm, server, timeout=10.0):
        """A wire.Conn from host frm to server (an NsServer or "ip:port")."""
        addr = server.addr if isinstance(server, NsServer) else server
        ip, port = addr.rsplit(":", 1)
        with self.entered(frm):
            return wire.Conn(int(port), host=ip, timeout=timeout)

    def server(self, sid=None, host=None, start=True, **init_args):
        """encore-server with id sid (default: next) in host (default
        server<sid>): init, then start unless start=False."""
        sid = sid or len(self.servers) + 1
        h = self.host(host or "server%d" % sid)
        s = NsServer(self, h, self.base, sid)
        self.servers.append(s)
        s.init(**init_args)
        if start:
            s.start()
        return s

    def client(self, servers=None, host=None, name=None, start=True, **kw):
        """encore-client in host (default client<k> for the k-th client)
        mounted at BASE/mnt-<name>, against servers (default all)."""
        if servers is None:
            servers = list(self.servers)
        elif isinstance(servers, NsServer):
            servers = [servers]
        k = len(self.clients) + 1
        h = self.host(host or "client%d" % k)
        c = NsClient(self, h, self.base, name or h.name, servers, **kw)
        self.clients.append(c)
        if start:
            c.start()
        return c

    # --- faults -------------------------------------------------------------

    def partition(self, *hosts, local=False):
        """Cuts each host off the switch (see module doc). Idempotent."""
        for h in map(self.host, hosts):
            _ip("-n", self.switch, "link", "set", h.sw_if, "down")
            self._partitioned.add(h.name)
            if local:
                _ip("-n", h.netns, "link", "set", IFNAME, "down")
                self._local_down.add(h.name)

    def heal(self, *hosts):
        """Reconnects each host (undoes partition, either kind). Idempotent."""
        for h in map(self.host, hosts):
            _ip("-n", h.netns, "link", "set", IFNAME, "up")
            _ip("-n", self.switch, "link", "set", h.sw_if, "up")
            self._partitioned.discard(h.name)
            self._local_down.discard(h.name)

    def partitioned(self, host):
        return self.host(host).name in self._partitioned

    def _nft(self, script):
        r = subprocess.run(nsenter_argv(self.switch) + ["nft", "-f", "-"], input=script,
                           capture_output=True, text=True, timeout=CMD_TIMEOUT)
        if r.returncode != 0:
            raise NetnsError("nft in %s: %s\nscript:\n%s" % (self.switch, r.stderr.strip(), script))

    def drop(self, a, b, oneway=False):
        """Silently drops packets a -> b (and b -> a unless oneway).
        Idempotent."""
        a, b = self.host(a), self.host(b)
        pairs = [(a, b)] if oneway else [(a, b), (b, a)]
        with self._lock:
            for src, dst in pairs:
                if (src.name, dst.name) in self._drops:
                    continue
                if self.drop_method == "nft":
                    self._nft("add element bridge %s cut { %s . %s }\n" % (NFT_TABLE, src.ip, dst.ip))
                else:
                    _ip("-n", src.netns, "route", "replace", "blackhole", dst.ip + "/32")
                self._drops.add((src.name, dst.name))

    def undrop(self, a, b, oneway=False):
        """Undoes drop(a, b[, oneway]). Idempotent."""
        a, b = self.host(a), self.host(b)
        pairs = [(a, b)] if oneway else [(a, b), (b, a)]
        with self._lock:
            for src, dst in pairs:
                if (src.name, dst.name) not in self._drops:
                    continue
                if self.drop_method == "nft":
                    self._nft("delete element bridge %s cut { %s . %s }\n" % (NFT_TABLE, src.ip, dst.ip))
                else:
                    _ip("-n", src.netns, "route", "del", "blackhole", dst.ip + "/32", check=False)
                self._drops.discard((src.name, dst.name))

    def drops(self):
        """The current drops as a set of (src, dst) host names."""
        return set(self._drops)

    def heal_all(self):
        """Undoes every partition and drop."""
        self.heal(*sorted(self._partitioned | self._local_down))
        for src, dst in sorted(self._drops):
            self.undrop(src, dst, oneway=True)


@pytest.fixture
def netns_topology(request, tmpbase):
    """Factory: netns_topology(servers=2, clients=1, ...) -> a created
    Topology under the test's tmpbase. Every topology made is torn down when
    the test ends, pass or fail; a watchdog (ENCORE_TEST_TIMEOUT) kills their
    processes if the test hangs. Skips without root / ip netns / FUSE."""
    if not harness.fuse_available():
        pytest.skip("/dev/fuse is missing")
    require_netns()
    made = []
    fired = []

    def watchdog():
        fired.append(True)
        sys.stderr.write("watchdog: test exceeded %.0f s, killing its daemons\n" % harness.TEST_TIMEOUT)
        for t in made:
            t.kill_all()

    def make(**kw):
        t = Topology(tmpbase, **kw)
        made.append(t)
        return t.create()

    timer = threading.Timer(harness.TEST_TIMEOUT, watchdog)
    timer.daemon = True
    timer.start()
    yield make
    timer.cancel()
    rep = getattr(request.node, "rep_call", None)
    failed = bool(fired) or rep is None or rep.failed
    errors = []
    for t in reversed(made):
        errors += t.destroy(failed=failed)
    if fired:
        pytest.fail("watchdog fired after %.0f s" % harness.TEST_TIMEOUT)
    if errors:
        raise errors[0]
