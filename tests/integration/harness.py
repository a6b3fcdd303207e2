"""harness.py - processes and helpers for the Encore integration tests.

Real processes only: `encore-server init` + `encore-server --listen
127.0.0.1:0`, `encore-client --mount` on a temp dir, each started with a
ready fd (os.pipe + pass_fds) and a timeout. Teardown stops only the PIDs
the fixtures started: unmount (fusermount3 -u, then umount -l), SIGTERM, then
SIGKILL.

Binaries: ENCORE_SERVER / ENCORE_CLIENT / ENCORE_CLI name each one; else
$ENCORE_BIN/<name>; else <repo>/build/bin/<name>.
Other knobs: ENCORE_TEST_TIMEOUT (seconds per test before the watchdog kills
the daemons, default 600), ENCORE_TEST_TMP (parent of the temp dirs, /tmp).
"""

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
REALM = "local"
READY_TIMEOUT = float(os.environ.get("ENCORE_READY_TIMEOUT", "30"))
STOP_TIMEOUT = 10.0
TEST_TIMEOUT = float(os.environ.get("ENCORE_TEST_TIMEOUT", "600"))
PY = "/usr/bin/python3"

_ENV_FOR = {
    "encore-server": "ENCORE_SERVER",
    "encore-client": "ENCORE_CLIENT",
    "encore": "ENCORE_CLI",
}


def binary(name):
    """Path of one of the three programs (see module doc)."""
    v = os.environ.get(_ENV_FOR[name])
    if v:
        return os.path.abspath(v)
    d = os.environ.get("ENCORE_BIN")
    if d:
        return os.path.abspath(os.path.join(d, name))
    return str(REPO / "build" / "bin" / name)


def require_binary(name):
    p = binary(name)
    if not (os.path.isfile(p) and os.access(p, os.X_OK)):
        pytest.skip("%s not built (%s)" % (name, p))
    return p


def fuse_available():
    return os.path.exists("/dev/fuse")


def log_tail(path, n=40):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return "(no log %s)" % path
    return "\n".join(lines[-n:])


def mounted(path):
    """True if path is a mount point in /proc/self/mountinfo (works for a
    FUSE mount whose daemon died, where stat fails with ENOTCONN)."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == path:
                return True
    return False


def pid_alive(pid):
    """Running and not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st.rsplit(")", 1)[1].split()[0] != "Z"


def wait_ready(proc, rfd, timeout, what, log):
    """Waits for "\\n" on the ready pipe. Fails with the log tail if the
    process exits or the timeout passes."""
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("%s not ready after %.0f s; log:\n%s" % (what, timeout, log_tail(log)))
            r, _, _ = select.select([rfd], [], [], min(left, 0.5))
            if r:
                chunk = os.read(rfd, 64)
                if not chunk:
                    # Every writer closed without a newline: it died or never signalled.
                    try:
                        rc = proc.wait(timeout=2)
                    except subprocess.TimeoutExpired:
                        rc = None
                    raise RuntimeError("%s closed its ready fd without signalling (exit %s); log:\n%s"
                                       % (what, rc, log_tail(log)))
                buf += chunk
            elif proc.poll() is not None:
                raise RuntimeError("%s exited with %s before ready; log:\n%s"
                                   % (what, proc.returncode, log_tail(log)))
    finally:
        os.close(rfd)


def stop_process(proc, timeout=STOP_TIMEOUT):
    """SIGTERM, wait, SIGKILL. Only for a Popen we started."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def kill9(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.kill()
    proc.wait(timeout=STOP_TIMEOUT)


def unmount(path):
    if not mounted(path):
        return
    r = subprocess.run(["fusermount3", "-u", str(path)], capture_output=True, timeout=30)
    if r.returncode != 0 or mounted(path):
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


class Server:
    """One encore-server over its own store directory."""

    def __init__(self, base, sid=1, realm=REALM):
        self.sid = sid
        self.realm = realm
        self.dir = Path(base) / ("server%d" % sid)
        self.log = Path(base) / ("server%d.log" % sid)
        self.port_file = Path(base) / ("server%d.port" % sid)
        self.port = None
        self.proc = None
        self.start_args = []  # extra options for start(), e.g. --peers FILE
        self.init_args = []  # extra options for init(), e.g. --vsg 1,2,3

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def init(self, root_mode=None, root_owner=None, volume_id=None):
        cmd = [require_binary("encore-server"), "init", "--dir", str(self.dir),
               "--server-id", str(self.sid), "--realm", self.realm]
        if volume_id is not None:
            cmd += ["--volume-id", str(volume_id)]
        if root_mode is not None:
            cmd += ["--root-mode", "%o" % root_mode]
        if root_owner is not None:
            cmd += ["--root-owner", "%d:%d" % root_owner]
        cmd += list(self.init_args)
        with open(self.log, "ab") as lf:
            r = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("encore-server init exited %d; log:\n%s" % (r.returncode, log_tail(self.log)))

    def start(self, port=None):
        """Starts serving; port None/0 picks a free port (read back from the
        port file), else listens on that port."""
        assert self.proc is None or self.proc.poll() is not None
        if self.port_file.exists():
            self.port_file.unlink()
        rfd, wfd = os.pipe()
        cmd = [require_binary("encore-server"), "--dir", str(self.dir),
               "--listen", "127.0.0.1:%d" % (port or 0), "--port-file", str(self.port_file),
               "--ready-fd", str(wfd)] + list(self.start_args)
        with open(self.log, "ab") as lf:
            try:
                self.proc = subprocess.Popen(cmd, pass_fds=(wfd,), stdin=subprocess.DEVNULL,
                                             stdout=lf, stderr=subprocess.STDOUT)
            finally:
                os.close(wfd)
        try:
            wait_ready(self.proc, rfd, READY_TIMEOUT, "encore-server %d" % self.sid, self.log)
        except Exception:
            kill9(self.proc)
            raise
        text = self.port_file.read_text()
        assert text.endswith("\n"), "port file %r has no newline" % text
        got = int(text)
        assert got > 0
        if port:
            assert got == port, "asked for port %d, port file says %d" % (port, got)
        self.port = got
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        stop_process(self.proc)

    def kill9(self):
        kill9(self.proc)

    def restart(self, hard=True):
        """Kill (-9 unless hard=False) and start again on the same port."""
        port = self.port
        if hard:
            self.kill9()
        else:
            self.stop()
        return self.start(port=port)

    def stats(self):
        return wire.server_stats(self.port, self.realm)


class Client:
    """One encore-client mount with its own cache dir."""

    def __init__(self, base, name, servers, realm=REALM, extra_args=()):
        self.name = name
        self.realm = realm
        self.servers = list(servers)
        self.mount = Path(base) / ("mnt-" + name)
        self.cache = Path(base) / ("cache-" + name)
        self.log = Path(base) / ("client-%s.log" % name)
        # ENCORE_CLIENT_ARGS (debugging): more options for every client, e.g. -vv.
        self.extra_args = list(extra_args) + os.environ.get("ENCORE_CLIENT_ARGS", "").split()
        self.proc = None

    @property
    def root(self):
        """The realm root volume's root directory."""
        return self.mount / self.realm

    @property
    def pid(self):
        return self.proc.pid

    @property
    def socket(self):
        return self.cache / "ctl.sock"

    def start(self):
        assert self.proc is None or self.proc.poll() is not None
        self.mount.mkdir(exist_ok=True)
        self.cache.mkdir(exist_ok=True)
        rfd, wfd = os.pipe()
        cmd = [require_binary("encore-client"), "--mount", str(self.mount), "--cache", str(self.cache),
               "--realm", self.realm]
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
            wait_ready(self.proc, rfd, READY_TIMEOUT, "encore-client %s" % self.name, self.log)
            assert mounted(self.mount), "client %s ready but %s is not mounted" % (self.name, self.mount)
        except Exception:
            self.stop()
            raise
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Unmount, then make sure the daemon is gone."""
        unmount(self.mount)
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                stop_process(self.proc)
        if mounted(self.mount):
            subprocess.run(["umount", "-l", str(self.mount)], capture_output=True, timeout=30)

    def kill9(self):
        kill9(self.proc)
        unmount(self.mount)

    def restart(self):
        """Clean stop and start with the same cache dir."""
        self.stop()
        return self.start()


class Cluster:
    """Owns every process a test starts; finish() stops them all."""

    def __init__(self, base):
        self.base = Path(base)
        self.servers = []
        self.clients = []
        self.extra = []  # callables run first at finish

    def server(self, sid=None, start=True, **init_args):
        sid = sid or len(self.servers) + 1
        s = Server(self.base, sid)
        self.servers.append(s)
        s.init(**init_args)
        if start:
            s.start()
        return s

    def client(self, servers=None, name=None, start=True, **kw):
        if servers is None:
            servers = self.servers[:1]
        elif isinstance(servers, Server):
            servers = [servers]
        name = name or chr(ord("a") + len(self.clients))
        c = Client(self.base, name, servers, **kw)
        self.clients.append(c)
        if start:
            c.start()
        return c

    def pids(self):
        return [p.proc.pid for p in self.clients + self.servers if p.proc is not None]

    def kill_all(self):
        """Watchdog: SIGKILL everything (this also aborts the FUSE connections,
        so a test blocked in a syscall on a mount gets ENOTCONN)."""
        for p in self.clients + self.servers:
            try:
                if p.proc is not None and p.proc.poll() is None:
                    p.proc.kill()
            except OSError:
                pass

    def finish(self, failed=False):
        errors = []
        for fn in self.extra:
            try:
                fn()
            except Exception as e:  # keep tearing down
                errors.append(e)
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
        if failed:
            for p in self.servers + self.clients:
                sys.stderr.write("==== %s\n%s\n" % (p.log, log_tail(p.log, 60)))
        return errors


# --- helpers shared by test modules ---------------------------------------

def free_ports(n):
    """n distinct free loopback TCP ports (bound, read, released)."""
    import socket
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def replicated_servers(cluster, n=3, start=True):
    """n servers whose root volume is replicated on all of them: a peers
    file naming every server, `init --vsg 1,...,n`, `--peers FILE` on start
    (docs/replication.md). Returns the Server objects (ids 1..n)."""
    ports = free_ports(n)
    peers = cluster.base / "servers.conf"
    peers.write_text("".join("[server %d]\naddress = 127.0.0.1:%d\n" % (i + 1, p)
                             for i, p in enumerate(ports)))
    vsg = ",".join(str(i + 1) for i in range(n))
    out = []
    for i in range(n):
        s = Server(cluster.base, i + 1)
        cluster.servers.append(s)
        s.init_args = ["--vsg", vsg]
        s.start_args = ["--peers", str(peers)]
        s.port = ports[i]
        s.init()
        out.append(s)
    if start:
        for s in out:
            s.start(port=s.port)
    return out


def wait_for(pred, timeout=20.0, step=0.1):
    """Polls pred every step seconds until it returns something true (which
    is returned) or timeout seconds pass (then its last value)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def vol_status(client):
    """The first volume of the client's `status` (control socket)."""
    st = ctl(client, "status")
    assert st["ok"], st
    assert st["volumes"], st
    return st["volumes"][0]


def ctl(client, op, timeout=30.0, **kw):
    """One control-socket request (MSG_CTL, JSON) to a client; returns the
    reply as a dict ({"ok": true, ...} or {"ok": false, "error": ...})."""
    import socket
    req = dict(op=op, **kw)
    body = wire.blob(json.dumps(req).encode())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as so:
        so.settimeout(timeout)
        so.connect(str(client.socket))
        so.sendall(wire.frame(wire.MSG_CTL, body))
        hdr = b""
        while len(hdr) < 12:
            chunk = so.recv(12 - len(hdr))
            assert chunk, "control socket closed"
            hdr += chunk
        blen = int.from_bytes(hdr[:4], "little")
        data = b""
        while len(data) < blen:
            chunk = so.recv(blen - len(data))
            assert chunk, "control socket closed"
            data += chunk
    assert int.from_bytes(data[:4], "little") == 0, "ctl status %r" % data[:4]
    n = int.from_bytes(data[4:8], "little")
    return json.loads(data[8:8 + n].decode())


def run_as(uid, gid, code, *args, groups=None, timeout=60):
    """Runs python code as another user via setpriv. The code runs with
    `args` in sys.argv[1:] and should call ok()/err(e) (defined in the
    prelude); returns the printed JSON dict, e.g. {"ok": true, ...} or
    {"errno": 13}."""
    prelude = (
        "import os, sys, json, errno, stat\n"
        "def ok(**kw):\n"
        "    kw['ok'] = True; print(json.dumps(kw)); sys.exit(0)\n"
        "def err(e):\n"
        "    print(json.dumps({'ok': False, 'errno': e.errno})); sys.exit(0)\n"
        "try:\n"
    )
    body = "".join("    " + line + "\n" for line in code.strip("\n").splitlines())
    tail = "except OSError as e:\n    err(e)\nok()\n"
    cmd = ["setpriv", "--reuid", str(uid), "--regid", str(gid)]
    if groups:
        cmd += ["--groups", ",".join(str(g) for g in groups)]
    else:
        cmd += ["--clear-groups"]
    cmd += [PY, "-c", prelude + body + tail] + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd="/")
    assert r.returncode == 0, "as uid %d: exit %d: %s" % (uid, r.returncode, r.stderr.decode())
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


# --- added for disconnected operation and hoarding (test_4_*) ---------------

def run_encore(*args, cwd="/", env=None, timeout=60, check=True):
    """Runs the `encore` CLI under test; returns the CompletedProcess with
    .out and .err as text. check: assert exit status 0."""
    cmd = [require_binary("encore")] + [str(a) for a in args]
    e = dict(os.environ)
    e.pop("ENCORE_SOCKET", None)
    if env:
        e.update(env)
    r = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=cwd, env=e)
    r.out = r.stdout.decode(errors="replace")
    r.err = r.stderr.decode(errors="replace")
    if check:
        assert r.returncode == 0, "%s exited %d\nstdout: %s\nstderr: %s" % (
            " ".join(cmd), r.returncode, r.out, r.err)
    return r


def client_counter(client, name):
    """One counter of a client's status control op."""
    r = ctl(client, "status")
    assert r["ok"], r
    return r["counters"][name]


def hoard_walk(client, timeout=60.0):
    """Runs a hoard walk through the control socket and waits for it;
    returns its counters (checked, fetched, fetched_bytes, ...)."""
    r = ctl(client, "hoard-walk", timeout=timeout, wait=True)
    assert r["ok"], r
    return r
