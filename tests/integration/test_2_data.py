"""Family 2: file contents and the persistent whole-file cache."""

import hashlib
import os
import random

import pytest

from harness import read_bytes, write_bytes

SIZES = [0, 1, 4095, 4096, 4097, 512 * 1024, 512 * 1024 + 1, (1 << 20) + 1, 20 << 20]


def pattern(size, seed):
    """Deterministic incompressible bytes."""
    return random.Random(seed).randbytes(size)


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(fs, client2, size):
    data = pattern(size, size)
    write_bytes(fs / "f", data)
    assert os.stat(fs / "f").st_size == size
    assert read_bytes(fs / "f") == data
    # Stored on the server: a second client sees every byte.
    assert os.stat(client2.root / "f").st_size == size
    got = read_bytes(client2.root / "f")
    assert len(got) == size
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_overwrite_shorter(fs, client2):
    write_bytes(fs / "f", pattern(100000, 1))
    write_bytes(fs / "f", b"short")
    assert read_bytes(fs / "f") == b"short"
    assert read_bytes(client2.root / "f") == b"short"


def test_partial_update_in_middle(fs, client2):
    data = bytearray(pattern(3 << 20, 2))
    write_bytes(fs / "f", bytes(data))
    fd = os.open(fs / "f", os.O_RDWR)
    os.pwrite(fd, b"X" * 10, 1 << 20)
    os.close(fd)
    data[1 << 20:(1 << 20) + 10] = b"X" * 10
    assert read_bytes(client2.root / "f") == bytes(data)


def test_many_small_files(fs, client2):
    os.mkdir(fs / "d")
    files = {("f%03d" % i): pattern(i * 37, i) for i in range(200)}
    for n, d in files.items():
        write_bytes(fs / "d" / n, d)
    assert sorted(os.listdir(client2.root / "d")) == sorted(files)
    for n, d in files.items():
        assert read_bytes(client2.root / "d" / n) == d


def _populate(root, n=10):
    files = {}
    os.mkdir(root / "dir")
    for i in range(n):
        p = ("dir/f%d" % i) if i % 2 else ("f%d" % i)
        files[p] = pattern(1000 * i + 7, 100 + i)
        write_bytes(root / p, files[p])
    files["big"] = pattern(3 << 20, 99)
    write_bytes(root / "big", files["big"])
    return files


def test_warm_cache_after_client_restart_fetches_nothing(client, server):
    files = _populate(client.root)
    for p, d in files.items():
        assert read_bytes(client.root / p) == d
    client.restart()
    before = server.stats()
    assert "fetch_calls" in before, "server STATS has no fetch_calls: %r" % sorted(before)
    for p, d in files.items():
        assert read_bytes(client.root / p) == d
    after = server.stats()
    assert after["fetch_calls"] == before["fetch_calls"], \
        "warm cache refetched: fetch_calls %d -> %d" % (before["fetch_calls"], after["fetch_calls"])
    assert after["fetch_bytes"] == before["fetch_bytes"]


def test_warm_cache_after_server_restart_fetches_nothing(client, server):
    files = _populate(client.root)
    for p, d in files.items():
        assert read_bytes(client.root / p) == d
    server.restart()
    client.restart()
    before = server.stats()
    for p, d in files.items():
        assert read_bytes(client.root / p) == d
    after = server.stats()
    assert after["fetch_calls"] == before["fetch_calls"]


def test_cache_survives_restart(client):
    files = _populate(client.root)
    client.restart()
    # The cache directory still holds the data (whole-file containers).
    total = 0
    for dirpath, _, names in os.walk(client.cache):
        for n in names:
            total += os.path.getsize(os.path.join(dirpath, n))
    assert total >= sum(len(d) for d in files.values())
    for p, d in files.items():
        assert read_bytes(client.root / p) == d


def test_changed_file_refetched_after_restart(cluster, client, server):
    files = _populate(client.root)
    for p, d in files.items():
        assert read_bytes(client.root / p) == d
    client.stop()
    other = cluster.client(server)
    changed = pattern(50000, 12345)
    write_bytes(other.root / "dir" / "f1", changed)
    write_bytes(other.root / "f2", b"")
    os.unlink(other.root / "f4")
    write_bytes(other.root / "brand-new", b"new file")
    files["dir/f1"] = changed
    files["f2"] = b""
    del files["f4"]
    files["brand-new"] = b"new file"
    client.start()
    before = server.stats()
    for p, d in files.items():
        assert read_bytes(client.root / p) == d, p
    assert not os.path.exists(client.root / "f4")
    assert sorted(os.listdir(client.root)) == sorted(["dir", "big", "brand-new", "f0", "f2", "f6", "f8"])
    after = server.stats()
    assert after["fetch_calls"] > before["fetch_calls"], "changed file was not refetched"
    # Only the changed, non-empty file and the new one needed data.
    assert after["fetch_bytes"] - before["fetch_bytes"] <= len(changed) + len(b"new file") + 4096


def test_stats_counters_move(client, server):
    before = server.stats()
    for k in ("fetch_calls", "fetch_bytes", "store_calls", "getattr_calls"):
        assert k in before, "no %s in STATS: %r" % (k, sorted(before))
    write_bytes(client.root / "f", b"x" * 1000)
    after = server.stats()
    assert after["store_calls"] > before["store_calls"]
