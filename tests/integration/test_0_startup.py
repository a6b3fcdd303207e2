"""Family 0: the daemons start, signal readiness, speak HELLO, and stop."""

import os
import subprocess

import wire
from harness import log_tail, mounted, require_binary


def test_server_ready_port_and_hello(cluster):
    s = cluster.server()
    assert s.running()
    h, p = wire.hello_ping_ok(s.port)
    assert h["version"] == wire.PROTO_VERSION
    assert h["server_id"] == 1
    assert h["realm"] == "local"
    assert p["server_id"] == 1
    assert p["incarnation"] == h["incarnation"]


def test_server_restart_same_port_new_incarnation(cluster):
    s = cluster.server()
    port = s.port
    inc1 = wire.hello_ping_ok(port)[0]["incarnation"]
    s.restart()
    assert s.port == port
    inc2 = wire.hello_ping_ok(port)[0]["incarnation"]
    assert inc2 > inc1, "incarnation did not grow across a restart: %d -> %d" % (inc1, inc2)


def test_server_sigterm_exits_0(cluster):
    s = cluster.server()
    s.stop()
    assert s.proc.returncode == 0, log_tail(s.log)


def test_init_twice_exits_2(cluster, tmpbase):
    s = cluster.server(start=False)
    r = subprocess.run([require_binary("encore-server"), "init", "--dir", str(s.dir),
                        "--server-id", "1", "--realm", "local"], capture_output=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip(), "no message on stderr"


def test_init_bad_usage_exits_2(tmpbase):
    r = subprocess.run([require_binary("encore-server"), "init", "--dir", str(tmpbase / "x")],
                       capture_output=True, timeout=60)
    assert r.returncode == 2
    r = subprocess.run([require_binary("encore-server"), "--no-such-option"], capture_output=True, timeout=60)
    assert r.returncode == 2


def test_client_mounts_realm(cluster, server):
    c = cluster.client(server)
    assert mounted(c.mount)
    assert os.listdir(c.mount) == ["local"]
    st = os.stat(c.root)
    assert st.st_mode & 0o170000 == 0o040000
    assert os.listdir(c.root) == []


def test_client_unmount_stops_daemon(cluster, server):
    c = cluster.client(server)
    subprocess.run(["fusermount3", "-u", str(c.mount)], check=True, timeout=30)
    c.proc.wait(timeout=20)
    assert c.proc.returncode == 0, log_tail(c.log)
    assert not mounted(c.mount)


def test_client_sigterm_unmounts(cluster, server):
    c = cluster.client(server)
    c.proc.terminate()
    c.proc.wait(timeout=20)
    assert c.proc.returncode == 0, log_tail(c.log)
    assert not mounted(c.mount)


def test_client_restart_keeps_files(cluster, server):
    c = cluster.client(server)
    (c.root / "f").write_bytes(b"hello")
    c.restart()
    assert (c.root / "f").read_bytes() == b"hello"


def test_server_restart_keeps_files(cluster, server):
    c = cluster.client(server)
    (c.root / "f").write_bytes(b"hello")
    os.mkdir(c.root / "d")
    server.restart()
    c2 = cluster.client(server)
    assert sorted(os.listdir(c2.root)) == ["d", "f"]
    assert (c2.root / "f").read_bytes() == b"hello"
    # The first client reconnects by itself.
    assert (c.root / "f").read_bytes() == b"hello"
