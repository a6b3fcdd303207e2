"""Family 7: the `encore` command-line tool: `encore local`, status,
check-servers, whereis, flush, --help and usage errors."""

import json
import os
import signal
import subprocess
import time

import pytest

import wire
from harness import binary, mounted, pid_alive, read_bytes, require_binary, write_bytes

HELP_CMDS = [[], ["local"], ["local", "up"], ["local", "down"], ["local", "status"],
             ["status"], ["check-servers"], ["flush"], ["whereis"]]


def cli_env(extra=None):
    env = dict(os.environ)
    # `encore local up` starts encore-server and encore-client: let it find
    # the ones under test even when they live in different directories.
    dirs = [os.path.dirname(os.path.abspath(binary(n))) for n in ("encore", "encore-server", "encore-client")]
    env["PATH"] = ":".join(dict.fromkeys(dirs)) + ":" + env.get("PATH", "")
    env.pop("ENCORE_SOCKET", None)
    if extra:
        env.update(extra)
    return env


def encore(*args, cwd="/", env=None, timeout=60, check=True):
    cmd = [require_binary("encore")] + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=cwd, env=cli_env(env))
    r.out = r.stdout.decode(errors="replace")
    r.err = r.stderr.decode(errors="replace")
    if check:
        assert r.returncode == 0, "%s exited %d\nstdout: %s\nstderr: %s" % (
            " ".join(cmd), r.returncode, r.out, r.err)
    return r


def encore_json(*args, **kw):
    r = encore(*args, **kw)
    try:
        return json.loads(r.out)
    except ValueError:
        pytest.fail("encore %s: not JSON: %r" % (" ".join(map(str, args)), r.out[:500]))


# --- help and usage --------------------------------------------------------------

@pytest.mark.parametrize("sub", HELP_CMDS, ids=lambda s: "-".join(s) or "top")
def test_help(sub):
    r = encore(*(sub + ["--help"]))
    text = (r.out + r.err).lower()
    assert "usage" in text, "no usage text for %s: %r" % (sub, r.out)
    for word in sub:
        assert word in text


@pytest.mark.parametrize("args", [
    ["no-such-command"],
    ["status", "--no-such-option"],
    ["whereis"],
    ["flush"],
    ["whereis", "a", "b"],
    ["local"],
    ["local", "no-such-command"],
    ["local", "up", "--clients", "notanumber"],
    ["local", "up", "--servers"],
    ["check-servers", "--bogus"],
], ids=lambda a: "-".join(a))
def test_bad_usage_exits_2(args, tmpbase):
    if args[:2] == ["local", "up"]:
        # Should a bad `local up` start anything anyway, tear it down.
        args = args + ["--dir", str(tmpbase / ".encore-local")]
    r = encore(*args, check=False, cwd=tmpbase)
    if (tmpbase / ".encore-local" / "local.json").exists():
        encore("local", "down", "--dir", tmpbase / ".encore-local", check=False, timeout=120)
    assert r.returncode == 2, "encore %s exited %d: %s" % (" ".join(args), r.returncode, r.err)
    assert r.err.strip(), "no message on stderr"
    assert not mounted(tmpbase / ".encore-local" / "mnt")


def test_no_arguments_is_usage_error():
    r = encore(check=False)
    assert r.returncode == 2
    assert "usage" in (r.out + r.err).lower()


def test_path_outside_encore_fails(tmpbase):
    r = encore("whereis", "--json", tmpbase, check=False, cwd=tmpbase)
    assert r.returncode != 0
    assert r.err.strip()


# --- commands against a mount ---------------------------------------------------

def test_status_json(client, server):
    write_bytes(client.root / "f", os.urandom(1 << 20))
    assert len(read_bytes(client.root / "f")) == 1 << 20
    s = encore_json("status", "--json", client.root)
    assert s["realm"] == "local"
    assert os.path.realpath(s["mount"]) == os.path.realpath(client.mount)
    assert s["pid"] == client.pid
    assert len(s["servers"]) == 1
    sv = s["servers"][0]
    assert sv["id"] == 1
    assert sv["addr"].endswith(":%d" % server.port)
    assert isinstance(sv["rtt_us"], int) and sv["rtt_us"] >= 0
    assert sv["state"] == "up"
    assert s["volumes"], "no volumes"
    v = s["volumes"][0]
    for k in ("id", "name", "state", "servers"):
        assert k in v, "volume entry has no %r: %r" % (k, v)
    assert v["id"] == 1
    c = s["cache"]
    assert c["bytes_limit"] == 1024 << 20
    assert c["bytes_used"] >= 1 << 20
    assert c["files"] >= 1
    assert c["dirty"] == 0


def test_status_from_cwd_and_socket_override(client):
    s = encore_json("status", "--json", cwd=client.root)
    assert s["pid"] == client.pid
    s = encore_json("status", "--json", cwd="/", env={"ENCORE_SOCKET": str(client.socket)})
    assert s["pid"] == client.pid
    r = encore("status", cwd=client.root)
    assert "local" in r.out


def test_status_two_clients_distinguished(client, client2):
    s1 = encore_json("status", "--json", client.root)
    s2 = encore_json("status", "--json", client2.root / ".")
    assert s1["pid"] == client.pid
    assert s2["pid"] == client2.pid


def test_check_servers(client, server):
    s = encore_json("check-servers", "--json", client.root)
    assert len(s["servers"]) == 1
    sv = s["servers"][0]
    assert sv["id"] == 1 and sv["state"] == "up"
    assert sv["addr"].endswith(":%d" % server.port)
    assert sv["rtt_us"] >= 0
    r = encore("check-servers", client.root)
    assert "up" in r.out
    server.kill9()
    s = encore_json("check-servers", "--json", client.root)
    assert s["servers"][0]["state"] == "down"
    server.start(port=server.port)
    s = encore_json("check-servers", "--json", client.root)
    assert s["servers"][0]["state"] == "up"


def test_whereis(client, server):
    write_bytes(client.root / "a", b"a")
    write_bytes(client.root / "b", b"b")
    os.link(client.root / "a", client.root / "a2")
    wa = encore_json("whereis", "--json", client.root / "a")
    wb = encore_json("whereis", "--json", client.root / "b")
    wa2 = encore_json("whereis", "--json", client.root / "a2")
    wr = encore_json("whereis", "--json", client.root)
    assert wa["fid"] and isinstance(wa["fid"], str)
    assert wa["fid"] == wa2["fid"]
    assert wa["fid"] != wb["fid"]
    assert wr["fid"] not in (wa["fid"], wb["fid"])
    assert wa["volume"] not in (None, "") and wa["volume"] == wb["volume"] == wr["volume"]
    assert [s["id"] for s in wa["servers"]] == [1]
    assert wa["servers"][0]["addr"].endswith(":%d" % server.port)
    r = encore("whereis", client.root / "a")
    assert wa["fid"] in r.out
    r = encore("whereis", "--json", client.root / "missing", check=False)
    assert r.returncode != 0 and r.err.strip()


def test_flush(client, server):
    data = os.urandom(200000)
    write_bytes(client.root / "f", data)
    write_bytes(client.root / "g", b"g")
    assert read_bytes(client.root / "f") == data
    r = encore_json("flush", "--json", client.root / "f")
    assert (r["flushed"], r["busy"]) == (1, 0), r
    before = server.stats()
    assert read_bytes(client.root / "f") == data
    after = server.stats()
    assert after["fetch_calls"] > before["fetch_calls"], "flushed file was not refetched"
    assert after["fetch_bytes"] - before["fetch_bytes"] >= len(data)
    # An open file is busy and stays cached.
    fd = os.open(client.root / "f", os.O_RDONLY)
    try:
        r = encore_json("flush", "--json", client.root / "f", client.root / "g")
        assert (r["flushed"], r["busy"]) == (1, 1)
    finally:
        os.close(fd)
    assert read_bytes(client.root / "g") == b"g"


# --- encore local ---------------------------------------------------------------

def _pids_in(obj):
    out = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("pid", "client_pid") and isinstance(v, int):
                out.add(v)
            else:
                out |= _pids_in(v)
    elif isinstance(obj, list):
        for v in obj:
            out |= _pids_in(v)
    return out


@pytest.fixture
def local_dir(tmpbase):
    """A directory for `encore local`; teardown runs `local down` and, if that
    left anything, stops the PIDs recorded in local.json and unmounts."""
    d = tmpbase / "loc"
    yield d
    subprocess.run([binary("encore"), "local", "down", "--dir", str(d)], capture_output=True,
                   timeout=120, env=cli_env())
    try:
        with open(d / "local.json") as f:
            pids = _pids_in(json.load(f))
    except (OSError, ValueError):
        pids = set()
    with open("/proc/self/mountinfo") as f:
        mps = [line.split()[4] for line in f if line.split()[4].startswith(str(d) + "/")]
    for mp in mps:
        subprocess.run(["fusermount3", "-u", mp], capture_output=True, timeout=30)
        if mounted(mp):
            subprocess.run(["umount", "-l", mp], capture_output=True, timeout=30)
    for p in pids:
        if pid_alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_gone(pids, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if pid_alive(p)]
        if not alive:
            return []
        time.sleep(0.1)
    return [p for p in pids if pid_alive(p)]


def test_local_up_status_down(local_dir):
    encore("local", "up", "--dir", local_dir, "--clients", "2", timeout=180)
    assert (local_dir / "local.json").is_file()
    s = encore_json("local", "status", "--dir", local_dir, "--json")
    for k in ("mount", "client_pid", "clients", "servers"):
        assert k in s, "local status has no %r: %r" % (k, s)
    assert len(s["clients"]) == 2
    assert os.path.realpath(s["mount"]) == os.path.realpath(local_dir / "mnt")
    assert os.path.realpath(s["clients"][0]["mount"]) == os.path.realpath(local_dir / "mnt")
    assert os.path.realpath(s["clients"][1]["mount"]) == os.path.realpath(local_dir / "mnt2")
    assert s["client_pid"] == s["clients"][0]["pid"]
    assert len(s["servers"]) >= 1
    pids = []
    for c in s["clients"]:
        assert mounted(c["mount"]), "%s is not mounted" % c["mount"]
        assert os.listdir(c["mount"]) == ["local"]
        assert pid_alive(c["pid"])
        pids.append(c["pid"])
    for i, sv in enumerate(s["servers"]):
        for k in ("id", "pid", "port"):
            assert k in sv
        assert pid_alive(sv["pid"])
        h, _ = wire.hello_ping_ok(sv["port"])
        assert h["server_id"] == sv["id"]
        assert (local_dir / ("server%d" % sv["id"])).is_dir()
        pids.append(sv["pid"])
    # Files are shared between the two mounts.
    m1, m2 = local_dir / "mnt" / "local", local_dir / "mnt2" / "local"
    write_bytes(m1 / "hello", b"from client 1")
    assert read_bytes(m2 / "hello") == b"from client 1"
    os.mkdir(m2 / "dir")
    write_bytes(m2 / "dir" / "f", b"from client 2")
    assert read_bytes(m1 / "dir" / "f") == b"from client 2"
    # The CLI's other commands work against these mounts.
    st = encore_json("status", "--json", m1)
    assert st["pid"] == s["clients"][0]["pid"]
    st = encore_json("status", "--json", m2)
    assert st["pid"] == s["clients"][1]["pid"]
    r = encore("local", "status", "--dir", local_dir)
    assert r.out.strip()
    # Down: no process and no mount left.
    encore("local", "down", "--dir", local_dir, timeout=120)
    left = wait_gone(pids)
    assert not left, "processes still running after local down: %s" % left
    for c in s["clients"]:
        assert not mounted(c["mount"])
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if str(local_dir) in line]


def test_local_up_mount_override(local_dir, tmpbase):
    mnt = tmpbase / "custom-mnt"
    encore("local", "up", "--dir", local_dir, "--mount", mnt, timeout=180)
    s = encore_json("local", "status", "--dir", local_dir, "--json")
    assert os.path.realpath(s["mount"]) == os.path.realpath(mnt)
    assert len(s["clients"]) == 1
    write_bytes(mnt / "local" / "x", b"x")
    assert read_bytes(mnt / "local" / "x") == b"x"
    encore("local", "down", "--dir", local_dir, timeout=120)
    assert not mounted(mnt)
    assert not wait_gone([s["client_pid"]] + [v["pid"] for v in s["servers"]])


def test_local_status_without_up_fails(local_dir):
    r = encore("local", "status", "--dir", local_dir, "--json", check=False)
    assert r.returncode != 0
    assert r.err.strip()
