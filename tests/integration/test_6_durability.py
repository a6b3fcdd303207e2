"""Family 6: crashes. kill -9 of the server in the middle of a stream of
writes: every file whose close() returned 0 survives byte for byte, and no
file is ever torn (a store is atomic: old contents or new, nothing between)."""

import errno
import os
import random
import threading

from harness import read_bytes, write_bytes

SIZES = [0, 1, 4096, 100000, 512 * 1024 + 17, 700000]


class Writer(threading.Thread):
    """Creates f0000, f0001, ... each with one open/write/close; records
    whether close() returned 0."""

    def __init__(self, root, seed, limit=3000):
        super().__init__(daemon=True)
        self.root = root
        self.rng = random.Random(seed)
        self.limit = limit
        self.results = []  # (name, data, ok, errno)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.mark = None  # index from which successes are counted for `enough`
        self.want = 0
        self.enough = threading.Event()
        self.exc = None

    def wait_for(self, n, timeout):
        """Waits until n more files were written successfully from now."""
        with self.lock:
            self.mark = len(self.results)
            self.want = n
            self.enough.clear()
        return self.enough.wait(timeout)

    def write_one(self, name, data):
        fd = os.open(os.path.join(self.root, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        finally:
            os.close(fd)  # raises if close fails; the fd is closed either way

    def run(self):
        try:
            for i in range(self.limit):
                if self.stop.is_set():
                    break
                name = "f%04d" % i
                data = self.rng.randbytes(self.rng.choice(SIZES))
                try:
                    self.write_one(name, data)
                    ok, err = True, 0
                except OSError as e:
                    ok, err = False, e.errno
                with self.lock:
                    self.results.append((name, data, ok, err))
                    if self.mark is not None:
                        good = sum(1 for r in self.results[self.mark:] if r[2])
                        if good >= self.want:
                            self.enough.set()
        except Exception as e:  # reported by the test
            self.exc = e
        finally:
            self.enough.set()


def check_files(root, results):
    """Every acknowledged file is intact; unacknowledged ones are absent,
    empty or complete."""
    lost, torn = [], []
    for name, data, ok, err in results:
        p = os.path.join(root, name)
        try:
            got = read_bytes(p)
        except OSError as e:
            if ok or e.errno != errno.ENOENT:
                lost.append("%s: %s" % (name, e))
            continue
        if ok and got != data:
            lost.append("%s: %d bytes, want %d (%s)" % (name, len(got), len(data),
                                                        "differs" if len(got) == len(data) else "size"))
        elif not ok and got not in (b"", data):
            torn.append("%s: %d bytes of %d" % (name, len(got), len(data)))
    assert not lost, "acknowledged files lost or wrong: %s" % lost[:10]
    assert not torn, "torn files (neither empty nor complete): %s" % torn[:10]


def test_kill9_server_during_writes(cluster, server, client):
    os.mkdir(client.root / "w")
    w = Writer(str(client.root / "w"), seed=6)
    w.start()
    try:
        assert w.wait_for(25, 120), "writer made no progress before the crash"
        server.kill9()
        server.start(port=server.port)
        # The client reconnects by itself and writes succeed again.
        assert w.wait_for(25, 120), "no successful write within 120 s after the server restart; " \
            "last errors: %s" % [r[3] for r in w.results[-5:]]
    finally:
        w.stop.set()
        w.join(120)
    assert not w.is_alive(), "writer thread hung"
    assert w.exc is None, w.exc
    acked = sum(1 for r in w.results if r[2])
    errs = {}
    for r in w.results:
        if not r[2]:
            e = errno.errorcode.get(r[3], r[3])
            errs[e] = errs.get(e, 0) + 1
    print("%d files tried, %d acknowledged, failures by errno: %s" % (len(w.results), acked, errs))
    assert acked >= 50
    # What the server holds, through a client that never saw these files...
    fresh = cluster.client(server)
    check_files(str(fresh.root / "w"), w.results)
    # ...and through the writer's client.
    check_files(str(client.root / "w"), w.results)
    names = sorted(os.listdir(fresh.root / "w"))
    assert set(r[0] for r in w.results if r[2]) <= set(names)


def test_kill9_server_twice_in_a_row(cluster, server, client):
    w = Writer(str(client.root), seed=7)
    w.start()
    try:
        for _ in range(2):
            assert w.wait_for(10, 120), "writer stalled"
            server.kill9()
            server.start(port=server.port)
        assert w.wait_for(10, 120), "writer did not recover"
    finally:
        w.stop.set()
        w.join(120)
    assert not w.is_alive()
    fresh = cluster.client(server)
    check_files(str(fresh.root), w.results)


def test_fsync_survives_client_kill9(cluster, server, client):
    """fsync() returns only when the server has the data durably: kill -9 of
    the client afterwards (no close) loses nothing."""
    data = random.Random(1).randbytes(300000)
    fd = os.open(client.root / "synced", os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, data)
    os.fsync(fd)
    client.kill9()
    try:
        os.close(fd)
    except OSError:
        pass
    server.restart()
    fresh = cluster.client(server)
    assert read_bytes(fresh.root / "synced") == data


def test_client_kill9_keeps_closed_files(cluster, server, client):
    files = {"f%d" % i: random.Random(i).randbytes(i * 5000) for i in range(20)}
    for n, d in files.items():
        write_bytes(client.root / n, d)
    client.kill9()
    client.start()  # same cache, after a crash
    for n, d in files.items():
        assert read_bytes(client.root / n) == d
    fresh = cluster.client(server)
    for n, d in files.items():
        assert read_bytes(fresh.root / n) == d
