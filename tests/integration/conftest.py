"""pytest fixtures for the Encore integration tests; the machinery is in
harness.py (binaries, Server, Client, Cluster, run_as)."""

import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TEST_TIMEOUT, Cluster, fuse_available  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if fuse_available():
        return
    skip = pytest.mark.skip(reason="/dev/fuse is missing")
    for it in items:
        it.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    out = yield
    rep = out.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _make_base():
    parent = os.environ.get("ENCORE_TEST_TMP", "/tmp")
    base = tempfile.mkdtemp(prefix="encore-it.", dir=parent)
    # Readable by the unprivileged users of the permission tests.
    os.chmod(base, 0o755)
    return base


@pytest.fixture(autouse=True)
def _umask():
    """Modes in the tests assume umask 022."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def tmpbase():
    base = _make_base()
    yield Path(base)
    if os.environ.get("ENCORE_TEST_KEEP"):  # debugging: keep logs and stores
        sys.stderr.write("kept %s\n" % base)
        return
    # Remove only if nothing is still mounted below it.
    with open("/proc/self/mountinfo") as f:
        busy = any(line.split()[4].startswith(base + "/") for line in f)
    if not busy:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def cluster(request, tmpbase):
    if not fuse_available():
        pytest.skip("/dev/fuse is missing")
    c = Cluster(tmpbase)
    fired = []

    def watchdog():
        fired.append(True)
        sys.stderr.write("watchdog: test exceeded %.0f s, killing its daemons\n" % TEST_TIMEOUT)
        c.kill_all()

    timer = threading.Timer(TEST_TIMEOUT, watchdog)
    timer.daemon = True
    timer.start()
    yield c
    timer.cancel()
    rep = getattr(request.node, "rep_call", None)
    failed = bool(fired) or rep is None or rep.failed
    errors = c.finish(failed=failed)
    for p in c.clients + c.servers:
        if p.proc is not None and p.proc.poll() is None:
            errors.append(RuntimeError("pid %d still running after teardown" % p.proc.pid))
    if fired:
        pytest.fail("watchdog fired after %.0f s" % TEST_TIMEOUT)
    if errors:
        raise errors[0]


@pytest.fixture
def server(cluster):
    return cluster.server()


@pytest.fixture
def client(cluster, server):
    return cluster.client(server)


@pytest.fixture
def client2(cluster, server, client):
    return cluster.client(server)


@pytest.fixture
def fs(client):
    """Path of the realm root through the first client."""
    return client.root


