"""Family 3: callbacks. Two clients with separate caches on one server.
A change made on A is visible on B at once: no sleeps, no polling. B has
cached the old state first, so only a callback break can make it right."""

import os
import stat

import pytest

from harness import read_bytes, write_bytes

ROUNDS = 30  # a race between a reply and a callback break shows up within a few rounds


def test_write_close_seen_by_open_on_other_client(client, client2):
    a, b = client.root, client2.root
    write_bytes(a / "f", b"version 1")
    assert read_bytes(b / "f") == b"version 1"  # B caches it
    for i in range(2, 2 + ROUNDS):
        want = b"version %d" % i + b"!" * i
        write_bytes(a / "f", want)
        assert read_bytes(b / "f") == want
        assert os.stat(b / "f").st_size == len(want)


def test_write_seen_while_other_client_holds_file_open(client, client2):
    a, b = client.root, client2.root
    write_bytes(a / "f", b"old contents")
    fb = open(b / "f", "rb")
    assert fb.read() == b"old contents"
    write_bytes(a / "f", b"new")
    # A new open on B sees the new version (close-to-open).
    assert read_bytes(b / "f") == b"new"
    fb.close()
    assert read_bytes(b / "f") == b"new"


def test_second_open_shares_the_writers_container(client, client2):
    """A holds f open for writing (nothing written yet) when B updates it;
    a second open on A must not swap in B's version under the first
    handle: each handle has its own descriptor of the container, and the
    writes through the first would go to the old file and be lost at the
    last close (a chaos run read 0 bytes through the second)."""
    a, b = client.root, client2.root
    write_bytes(a / "f", b"base")
    fw = os.open(a / "f", os.O_RDWR)
    write_bytes(b / "f", b"from b")
    fr = os.open(a / "f", os.O_RDONLY)
    os.pwrite(fw, b"written through the first handle", 0)
    assert os.pread(fr, 100, 0) == b"written through the first handle"
    os.close(fr)
    os.close(fw)  # the last close stores A's file over B's (last close wins)
    assert read_bytes(b / "f") == b"written through the first handle"


def test_both_directions(client, client2):
    a, b = client.root, client2.root
    write_bytes(a / "f", b"from a")
    assert read_bytes(b / "f") == b"from a"
    write_bytes(b / "f", b"from b, longer")
    assert read_bytes(a / "f") == b"from b, longer"
    write_bytes(a / "f", b"a again")
    assert read_bytes(b / "f") == b"a again"


def test_last_close_wins(client, client2):
    a, b = client.root, client2.root
    write_bytes(a / "f", b"base")
    fa = open(a / "f", "r+b")
    fb = open(b / "f", "r+b")
    fa.write(b"AAAA-from-a")
    fb.write(b"BB")
    fa.close()
    fb.close()  # last close: B's whole file replaces A's
    assert read_bytes(a / "f") == b"BBse"
    assert read_bytes(b / "f") == b"BBse"


def test_directory_changes_visible(client, client2):
    a, b = client.root, client2.root
    os.mkdir(a / "d")
    write_bytes(a / "d" / "x", b"x")
    assert os.listdir(b / "d") == ["x"]  # B caches the directory
    write_bytes(a / "d" / "created", b"c")
    assert sorted(os.listdir(b / "d")) == ["created", "x"]
    assert read_bytes(b / "d" / "created") == b"c"
    os.rename(a / "d" / "x", a / "d" / "renamed")
    assert sorted(os.listdir(b / "d")) == ["created", "renamed"]
    assert read_bytes(b / "d" / "renamed") == b"x"
    assert not os.path.exists(b / "d" / "x")
    os.unlink(a / "d" / "created")
    assert os.listdir(b / "d") == ["renamed"]
    assert not os.path.exists(b / "d" / "created")
    os.mkdir(a / "d" / "sub")
    assert sorted(os.listdir(b / "d")) == ["renamed", "sub"]
    assert os.stat(b / "d").st_nlink == 3
    os.rmdir(a / "d" / "sub")
    assert os.listdir(b / "d") == ["renamed"]
    assert os.stat(b / "d").st_nlink == 2


def test_directory_changes_visible_repeated(client, client2):
    a, b = client.root, client2.root
    os.mkdir(a / "d")
    want = set()
    assert os.listdir(b / "d") == []
    for i in range(ROUNDS):
        n = "n%d" % i
        write_bytes(a / "d" / n, b"%d" % i)
        want.add(n)
        assert set(os.listdir(b / "d")) == want, "round %d: create not seen" % i
        os.rename(a / "d" / n, a / "d" / (n + "r"))
        want = (want - {n}) | {n + "r"}
        assert set(os.listdir(b / "d")) == want, "round %d: rename not seen" % i
        if i % 2:
            os.unlink(a / "d" / (n + "r"))
            want.discard(n + "r")
            assert set(os.listdir(b / "d")) == want, "round %d: unlink not seen" % i
            assert not os.path.exists(b / "d" / (n + "r"))


def test_negative_lookup_invalidated(client, client2):
    a, b = client.root, client2.root
    assert not os.path.exists(b / "later")  # B may cache the miss
    write_bytes(a / "later", b"here now")
    assert os.path.exists(b / "later")
    assert read_bytes(b / "later") == b"here now"


def test_rename_across_directories_visible(client, client2):
    a, b = client.root, client2.root
    os.mkdir(a / "src")
    os.mkdir(a / "dst")
    write_bytes(a / "src" / "f", b"moving")
    assert os.listdir(b / "src") == ["f"]
    assert os.listdir(b / "dst") == []
    os.rename(a / "src" / "f", a / "dst" / "f")
    assert os.listdir(b / "src") == []
    assert os.listdir(b / "dst") == ["f"]
    assert read_bytes(b / "dst" / "f") == b"moving"


def test_replace_by_rename_visible(client, client2):
    """The editor pattern: write a temp file, rename over the original."""
    a, b = client.root, client2.root
    write_bytes(a / "doc", b"draft 1")
    assert read_bytes(b / "doc") == b"draft 1"
    write_bytes(a / ".doc.tmp", b"draft 2, saved")
    os.rename(a / ".doc.tmp", a / "doc")
    assert read_bytes(b / "doc") == b"draft 2, saved"
    assert os.listdir(b) == ["doc"]


def test_attributes_visible(client, client2):
    a, b = client.root, client2.root
    write_bytes(a / "f", b"x")
    assert stat.S_IMODE(os.stat(b / "f").st_mode) == 0o644  # B caches attrs
    for i in range(ROUNDS):
        mode = (0o600, 0o640, 0o604)[i % 3]
        os.chmod(a / "f", mode)
        assert stat.S_IMODE(os.stat(b / "f").st_mode) == mode, "round %d: chmod not seen" % i
        os.chown(a / "f", 1000 + i, 2000 + i)
        st = os.stat(b / "f")
        assert (st.st_uid, st.st_gid) == (1000 + i, 2000 + i), "round %d: chown not seen" % i
        os.utime(a / "f", ns=(10**18 + i, 2 * 10**18 + i))
        assert os.stat(b / "f").st_mtime_ns == 2 * 10**18 + i, "round %d: utime not seen" % i
        os.truncate(a / "f", 12345 + i)
        assert os.stat(b / "f").st_size == 12345 + i, "round %d: truncate not seen" % i
    os.link(a / "f", a / "g")
    assert os.stat(b / "f").st_nlink == 2


def test_directory_attributes_visible(client, client2):
    a, b = client.root, client2.root
    os.mkdir(a / "d")
    assert stat.S_IMODE(os.stat(b / "d").st_mode) == 0o755
    for i in range(ROUNDS):
        mode = (0o700, 0o750, 0o755)[i % 3]
        os.chmod(a / "d", mode)
        assert stat.S_IMODE(os.stat(b / "d").st_mode) == mode, "round %d: chmod not seen" % i


def test_removed_file_gone_on_other_client(client, client2):
    a, b = client.root, client2.root
    write_bytes(a / "f", b"doomed")
    assert read_bytes(b / "f") == b"doomed"
    os.unlink(a / "f")
    assert not os.path.exists(b / "f")
    assert os.listdir(b) == []
