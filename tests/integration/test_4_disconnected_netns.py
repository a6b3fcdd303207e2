"""Disconnected operation across a real partition (netns.py): the client's
host loses its cable to every server; once the client has noticed (calls
and pings time out, the AVSG empties) the volume is disconnected, updates
are emulated and logged without waiting on the network, and after the heal
the probes bring the servers back and the CML is reintegrated: another
client sees every change. Skips without root / ip netns / FUSE."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ctl, read_bytes, write_bytes  # noqa: E402
from netns import netns_topology  # noqa: E402,F401  (the fixture)
from test_5_replication_netns import repl_topology  # noqa: E402


def wait_for(pred, timeout=30.0, step=0.2):
    return harness.wait_for(pred, timeout, step)


def vol(client):
    st = ctl(client, "status")
    assert st["ok"], st
    return st["volumes"][0]


def test_partitioned_client_emulates_and_reintegrates(netns_topology):  # noqa: F811
    topo, ss, (a, b) = repl_topology(netns_topology, clients=2)
    write_bytes(a.root / "pre", b"before the partition")
    os.listdir(a.root)
    topo.partition(a.host.name)

    def noticed():
        ctl(a, "check-servers", timeout=60)  # pings time out: servers down
        return vol(a)["state"] == "disconnected"

    assert wait_for(noticed, timeout=60), vol(a)
    t0 = time.monotonic()
    write_bytes(a.root / "during", b"written in the partition")
    os.mkdir(a.root / "pdir")
    write_bytes(a.root / "pdir" / "inner", b"inner")
    os.rename(a.root / "pre", a.root / "pre-renamed")
    assert read_bytes(a.root / "pre-renamed") == b"before the partition"
    assert time.monotonic() - t0 < 5, "an update waited on the network"
    assert vol(a)["cml_records"] > 0
    topo.heal(a.host.name)
    assert wait_for(lambda: (lambda v: v["state"] == "connected" and v["cml_records"] == 0)(vol(a)),
                    timeout=60), vol(a)
    assert wait_for(lambda: os.path.exists(b.root / "during"), timeout=20)
    assert read_bytes(b.root / "during") == b"written in the partition"
    assert read_bytes(b.root / "pdir" / "inner") == b"inner"
    assert read_bytes(b.root / "pre-renamed") == b"before the partition"
    assert not os.path.exists(b.root / "pre")
