"""Family 7: the CLI side of replication (docs/replication.md): `encore
local up --servers N` (ports, DIR/servers.conf, every client knows every
server), `encore conflicts` and `encore repair` (help, usage errors, JSON
shape), and the VSG/AVSG columns of `encore status`."""

import configparser
import os

import pytest

from harness import mounted, pid_alive, write_bytes, read_bytes
from test_7_cli import encore, encore_json, local_dir  # noqa: F401 (fixture)

REPL_HELP = [["conflicts"], ["repair"]]


@pytest.mark.parametrize("sub", REPL_HELP, ids=lambda s: "-".join(s))
def test_help(sub):
    r = encore(*(sub + ["--help"]))
    assert r.out.startswith("usage: encore " + sub[0]), r.out
    assert not r.err
    # Listed in the overview too.
    assert sub[0] in encore("--help").out


def test_repair_help_names_options():
    out = encore("repair", "--help").out
    for word in ("--keep SERVER", "--keep-all", "--json", "storeid"):
        assert word in out, "repair --help does not mention %r" % word


@pytest.mark.parametrize("args", [
    ["repair"],
    ["repair", "a", "b"],
    ["repair", "--keep"],
    ["repair", "f", "--keep", "notanumber"],
    ["repair", "f", "--keep", "0"],
    ["repair", "f", "--keep", "-1"],
    ["repair", "f", "--keep", "1", "--keep-all"],
    ["repair", "f", "--bogus"],
    ["conflicts", "a", "b"],
    ["conflicts", "--bogus"],
], ids=lambda a: "-".join(a))
def test_bad_usage_exits_2(args, tmpbase):
    # Usage errors are found before anything is looked at: "f" need not exist.
    r = encore(*args, check=False, cwd=tmpbase)
    assert r.returncode == 2, "encore %s exited %d: %s" % (" ".join(args), r.returncode, r.err)
    assert "encore " + args[0] in r.err and "--help" in r.err, r.err
    assert not r.out


def test_repair_missing_path_fails_with_hint(tmpbase):
    r = encore("repair", tmpbase / "missing", check=False, cwd=tmpbase)
    assert r.returncode == 1
    assert "missing" in r.err and "encore conflicts" in r.err, r.err


def test_conflicts_outside_encore_fails(tmpbase):
    r = encore("conflicts", "--json", tmpbase, check=False, cwd=tmpbase)
    assert r.returncode == 1
    assert r.err.strip() and not r.out


# --- against a local realm -------------------------------------------------------

def _servers_conf(path):
    cp = configparser.ConfigParser()
    with open(path) as f:
        cp.read_file(f)
    out = {}
    for sec in cp.sections():
        kind, _, sid = sec.partition(" ")
        assert kind == "server" and sid.isdigit(), "unexpected section %r" % sec
        assert set(cp[sec]) == {"address"}, "unexpected keys in %r" % sec
        out[int(sid)] = cp[sec]["address"]
    return out


def _cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return [a.decode() for a in f.read().split(b"\0") if a]


def _flag_values(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def test_local_up_three_servers(local_dir):  # noqa: F811
    encore("local", "up", "--dir", local_dir, "--servers", "3", "--clients", "2", timeout=180)
    s = encore_json("local", "status", "--dir", local_dir, "--json")
    assert [v["id"] for v in s["servers"]] == [1, 2, 3]
    ports = [v["port"] for v in s["servers"]]
    assert len(set(ports)) == 3 and all(0 < p < 65536 for p in ports)
    addrs = ["127.0.0.1:%d" % p for p in ports]
    assert [v["addr"] for v in s["servers"]] == addrs
    for v in s["servers"]:
        assert pid_alive(v["pid"])
        argv = _cmdline(v["pid"])
        assert _flag_values(argv, "--listen") == ["127.0.0.1:%d" % v["port"]]
        assert _flag_values(argv, "--peers") == [str(local_dir / "servers.conf")]

    # servers.conf names every server at the port it listens on.
    assert _servers_conf(local_dir / "servers.conf") == {1: addrs[0], 2: addrs[1], 3: addrs[2]}

    # Every client was given all three addresses, in server order.
    for c in s["clients"]:
        assert _flag_values(_cmdline(c["pid"]), "--server") == addrs

    # The client reports three servers; with replication, one volume on all three.
    m1, m2 = local_dir / "mnt" / "local", local_dir / "mnt2" / "local"
    write_bytes(m1 / "f", b"replicated")
    assert read_bytes(m2 / "f") == b"replicated"
    st = encore_json("status", "--json", m1)
    assert sorted(v["addr"] for v in st["servers"]) == sorted(addrs)
    assert st["volumes"]
    vol = st["volumes"][0]
    if "vsg" in vol:
        assert vol["vsg"] == [1, 2, 3], vol
    text = encore("status", m1).out
    assert "VSG\tAVSG" in text, text
    for a in addrs:
        assert a in text

    encore("local", "down", "--dir", local_dir, timeout=120)
    assert not (local_dir / "servers.conf").exists()
    for c in s["clients"]:
        assert not mounted(c["mount"])


def test_local_up_default_servers(local_dir):  # noqa: F811
    encore("local", "up", "--dir", local_dir, timeout=180)
    s = encore_json("local", "status", "--dir", local_dir, "--json")
    # Three replicas by default (DESIGN section 10).
    assert s["replicated"] is True
    assert len(s["servers"]) == 3
    assert len(_servers_conf(local_dir / "servers.conf")) == 3


def test_local_up_one_server_still_works(local_dir):  # noqa: F811
    encore("local", "up", "--dir", local_dir, "--servers", "1", timeout=180)
    s = encore_json("local", "status", "--dir", local_dir, "--json")
    assert len(s["servers"]) == 1
    assert _servers_conf(local_dir / "servers.conf") == {1: s["servers"][0]["addr"]}
    m = local_dir / "mnt" / "local"
    write_bytes(m / "x", b"x")
    assert read_bytes(m / "x") == b"x"
    # Restarting a server keeps its port and its --peers file.
    port = s["servers"][0]["port"]
    encore("local", "stop-server", "--dir", local_dir, "1")
    encore("local", "start-server", "--dir", local_dir, "1")
    s2 = encore_json("local", "status", "--dir", local_dir, "--json")
    assert s2["servers"][0]["port"] == port
    argv = _cmdline(s2["servers"][0]["pid"])
    assert _flag_values(argv, "--listen") == ["127.0.0.1:%d" % port]
    assert _flag_values(argv, "--peers") == [str(local_dir / "servers.conf")]
    assert read_bytes(m / "x") == b"x"


def test_conflicts_none(local_dir):  # noqa: F811
    """A realm where nothing ever diverged: an empty list, exit 0."""
    encore("local", "up", "--dir", local_dir, "--servers", "3", timeout=180)
    m = local_dir / "mnt" / "local"
    write_bytes(m / "f", b"f")
    os.mkdir(m / "d")
    c = encore_json("conflicts", "--json", m)
    assert c["ok"] is True and c["conflicts"] == [], c
    c = encore_json("conflicts", "--json", cwd=m / "d")
    assert c["conflicts"] == []
    r = encore("conflicts", m)
    assert r.out == "" and "no conflicts" in r.err
    # repair of a file that is not in conflict fails and says so.
    r = encore("repair", m / "f", check=False)
    assert r.returncode == 1 and r.err.strip() and not r.out
