"""Family 1: every namespace operation through the mount, with its error
cases, asserting content, errno and the resulting state."""

import ctypes
import errno
import mmap
import os
import stat

import pytest

from harness import read_bytes, run_as, write_bytes

UID, GID = 1000, 1000
OTHER_UID, OTHER_GID = 1001, 1001


def expect_errno(want, fn, *args, **kw):
    with pytest.raises(OSError) as ei:
        fn(*args, **kw)
    got = ei.value.errno
    assert got == want, "%s%r: errno %s (%s), want %s (%s)" % (
        getattr(fn, "__name__", fn), args, errno.errorcode.get(got, got), os.strerror(got or 0),
        errno.errorcode.get(want, want), os.strerror(want))


# --- lookup / create ---------------------------------------------------------

def test_top_directory_lists_realm(client):
    assert os.listdir(client.mount) == ["local"]
    st = os.stat(client.root)
    assert stat.S_ISDIR(st.st_mode)


def test_lookup_errors(fs):
    expect_errno(errno.ENOENT, os.stat, fs / "missing")
    expect_errno(errno.ENOENT, os.stat, fs / "missing" / "x")
    write_bytes(fs / "f", b"x")
    expect_errno(errno.ENOTDIR, os.stat, fs / "f" / "x")
    expect_errno(errno.ENOTDIR, os.listdir, fs / "f")


def test_create_stat_and_content(fs):
    fd = os.open(fs / "new", os.O_CREAT | os.O_WRONLY, 0o640)
    st = os.fstat(fd)
    assert stat.S_ISREG(st.st_mode)
    assert st.st_size == 0
    assert os.write(fd, b"hello world") == 11
    os.close(fd)
    st = os.stat(fs / "new")
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert st.st_nlink == 1
    assert st.st_size == 11
    assert read_bytes(fs / "new") == b"hello world"
    assert os.listdir(fs) == ["new"]


def test_create_existing_without_excl_keeps_content(fs):
    write_bytes(fs / "f", b"keep me")
    fd = os.open(fs / "f", os.O_CREAT | os.O_RDWR, 0o600)
    assert os.read(fd, 100) == b"keep me"
    os.close(fd)
    assert stat.S_IMODE(os.stat(fs / "f").st_mode) == 0o644


def test_o_excl_eexist(fs):
    write_bytes(fs / "f", b"x")
    expect_errno(errno.EEXIST, os.open, fs / "f", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.mkdir(fs / "d")
    expect_errno(errno.EEXIST, os.open, fs / "d", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.symlink("dangling", fs / "s")
    expect_errno(errno.EEXIST, os.open, fs / "s", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    assert read_bytes(fs / "f") == b"x"
    assert sorted(os.listdir(fs)) == ["d", "f", "s"]


def test_open_missing_without_creat(fs):
    expect_errno(errno.ENOENT, os.open, fs / "missing", os.O_RDONLY)
    expect_errno(errno.ENOENT, os.open, fs / "nodir" / "f", os.O_CREAT | os.O_WRONLY, 0o644)


def test_open_dir_for_writing_eisdir(fs):
    os.mkdir(fs / "d")
    expect_errno(errno.EISDIR, os.open, fs / "d", os.O_WRONLY)


def test_o_trunc(fs):
    write_bytes(fs / "f", b"x" * 100)
    fd = os.open(fs / "f", os.O_WRONLY | os.O_TRUNC)
    assert os.fstat(fd).st_size == 0
    os.close(fd)
    assert os.stat(fs / "f").st_size == 0
    assert read_bytes(fs / "f") == b""
    fd = os.open(fs / "f", os.O_RDWR | os.O_TRUNC)
    os.write(fd, b"abc")
    os.close(fd)
    assert read_bytes(fs / "f") == b"abc"


def test_o_append(fs):
    write_bytes(fs / "f", b"abc")
    write_bytes(fs / "f", b"def", mode="ab")
    assert read_bytes(fs / "f") == b"abcdef"
    fd = os.open(fs / "f", os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"ghi")
    os.lseek(fd, 1, os.SEEK_SET)
    os.write(fd, b"jk")
    os.close(fd)
    assert read_bytes(fs / "f") == b"abcdefghijk"
    assert os.stat(fs / "f").st_size == 11


def test_enametoolong(fs):
    name255 = "n" * 255
    write_bytes(fs / name255, b"ok")
    assert read_bytes(fs / name255) == b"ok"
    assert name255 in os.listdir(fs)
    long = "l" * 256
    expect_errno(errno.ENAMETOOLONG, os.open, fs / long, os.O_CREAT | os.O_WRONLY, 0o644)
    expect_errno(errno.ENAMETOOLONG, os.mkdir, fs / long)
    expect_errno(errno.ENAMETOOLONG, os.stat, fs / long)
    expect_errno(errno.ENAMETOOLONG, os.symlink, "t", fs / long)
    expect_errno(errno.ENAMETOOLONG, os.rename, fs / name255, fs / long)
    expect_errno(errno.ENAMETOOLONG, os.link, fs / name255, fs / long)
    assert os.listdir(fs) == [name255]


# --- directories ---------------------------------------------------------------

def test_mkdir_rmdir(fs):
    os.mkdir(fs / "d", 0o750)
    st = os.stat(fs / "d")
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o750
    assert st.st_nlink == 2
    assert os.listdir(fs / "d") == []
    expect_errno(errno.EEXIST, os.mkdir, fs / "d")
    expect_errno(errno.ENOENT, os.mkdir, fs / "nodir" / "x")
    write_bytes(fs / "d" / "f", b"x")
    expect_errno(errno.ENOTEMPTY, os.rmdir, fs / "d")
    expect_errno(errno.ENOTDIR, os.rmdir, fs / "d" / "f")
    expect_errno(errno.EEXIST, os.mkdir, fs / "d" / "f")
    expect_errno(errno.ENOENT, os.rmdir, fs / "missing")
    os.unlink(fs / "d" / "f")
    os.rmdir(fs / "d")
    expect_errno(errno.ENOENT, os.stat, fs / "d")
    assert os.listdir(fs) == []


def test_dir_nlink_counts_subdirs(fs):
    base = os.stat(fs).st_nlink
    assert base == 2
    os.mkdir(fs / "d")
    assert os.stat(fs).st_nlink == 3
    os.mkdir(fs / "d" / "a")
    os.mkdir(fs / "d" / "b")
    write_bytes(fs / "d" / "file", b"")
    assert os.stat(fs / "d").st_nlink == 4
    os.rmdir(fs / "d" / "a")
    assert os.stat(fs / "d").st_nlink == 3
    os.rename(fs / "d" / "b", fs / "b")
    assert os.stat(fs / "d").st_nlink == 2
    assert os.stat(fs).st_nlink == 4


def test_readdir_contents_and_types(fs):
    os.mkdir(fs / "dir")
    write_bytes(fs / "file", b"1")
    os.symlink("file", fs / "link")
    os.mkfifo(fs / "fifo")
    with os.scandir(fs) as it:
        ents = {e.name: e for e in it}
    assert sorted(ents) == ["dir", "fifo", "file", "link"]
    assert ents["dir"].is_dir(follow_symlinks=False)
    assert ents["file"].is_file(follow_symlinks=False)
    assert ents["link"].is_symlink()
    assert not ents["fifo"].is_file(follow_symlinks=False)
    for name, e in ents.items():
        assert e.inode() == os.lstat(fs / name).st_ino


def test_readdir_large_directory(fs):
    """More entries than READDIR_MAX_ENTRIES (2048), with long names, so a
    listing needs several READDIR calls."""
    os.mkdir(fs / "big")
    names = set()
    for i in range(2100):
        n = "%05d-" % i + "x" * 150
        names.add(n)
        os.close(os.open(fs / "big" / n, os.O_CREAT | os.O_WRONLY, 0o644))
    got = os.listdir(fs / "big")
    assert len(got) == len(names)
    assert set(got) == names


def test_readdir_while_changing(fs):
    os.mkdir(fs / "d")
    for i in range(50):
        write_bytes(fs / "d" / ("f%d" % i), b"")
    for i in range(0, 50, 2):
        os.unlink(fs / "d" / ("f%d" % i))
    assert sorted(os.listdir(fs / "d")) == sorted("f%d" % i for i in range(1, 50, 2))


# --- unlink ---------------------------------------------------------------------

def test_unlink(fs):
    write_bytes(fs / "f", b"x")
    os.unlink(fs / "f")
    expect_errno(errno.ENOENT, os.stat, fs / "f")
    expect_errno(errno.ENOENT, os.unlink, fs / "f")
    os.mkdir(fs / "d")
    expect_errno(errno.EISDIR, os.unlink, fs / "d")
    assert stat.S_ISDIR(os.stat(fs / "d").st_mode)
    assert os.listdir(fs) == ["d"]


def test_unlink_while_open(fs):
    write_bytes(fs / "f", b"contents")
    fd = os.open(fs / "f", os.O_RDWR)
    os.unlink(fs / "f")
    assert os.listdir(fs) == []
    assert os.pread(fd, 100, 0) == b"contents"
    os.pwrite(fd, b"C", 0)
    assert os.pread(fd, 100, 0) == b"Contents"
    assert os.fstat(fd).st_nlink == 0
    os.close(fd)
    assert os.listdir(fs) == []
    # The name is free for a new file.
    write_bytes(fs / "f", b"new")
    assert read_bytes(fs / "f") == b"new"


# --- rename ---------------------------------------------------------------------

def test_rename_across_directories(fs):
    os.mkdir(fs / "a")
    os.mkdir(fs / "b")
    write_bytes(fs / "a" / "f", b"data")
    ino = os.stat(fs / "a" / "f").st_ino
    os.rename(fs / "a" / "f", fs / "b" / "g")
    assert os.listdir(fs / "a") == []
    assert os.listdir(fs / "b") == ["g"]
    assert read_bytes(fs / "b" / "g") == b"data"
    assert os.stat(fs / "b" / "g").st_ino == ino
    expect_errno(errno.ENOENT, os.stat, fs / "a" / "f")


def test_rename_directory_across_directories(fs):
    os.makedirs(fs / "a" / "sub")
    write_bytes(fs / "a" / "sub" / "f", b"deep")
    os.mkdir(fs / "b")
    os.rename(fs / "a" / "sub", fs / "b" / "moved")
    assert read_bytes(fs / "b" / "moved" / "f") == b"deep"
    assert os.listdir(fs / "a") == []
    assert os.stat(fs / "a").st_nlink == 2
    assert os.stat(fs / "b").st_nlink == 3
    # ".." of the moved directory is the new parent.
    assert os.stat(fs / "b" / "moved" / "..").st_ino == os.stat(fs / "b").st_ino


def test_rename_replaces_file(fs):
    write_bytes(fs / "src", b"source")
    write_bytes(fs / "dst", b"destination")
    ino = os.stat(fs / "src").st_ino
    os.rename(fs / "src", fs / "dst")
    assert os.listdir(fs) == ["dst"]
    assert read_bytes(fs / "dst") == b"source"
    st = os.stat(fs / "dst")
    assert st.st_ino == ino
    assert st.st_nlink == 1


def test_rename_replaces_open_target(fs):
    write_bytes(fs / "src", b"source")
    write_bytes(fs / "dst", b"old target")
    fd = os.open(fs / "dst", os.O_RDONLY)
    os.rename(fs / "src", fs / "dst")
    assert os.pread(fd, 100, 0) == b"old target"
    os.close(fd)
    assert read_bytes(fs / "dst") == b"source"


def test_rename_replaces_empty_directory(fs):
    os.mkdir(fs / "x")
    write_bytes(fs / "x" / "inside", b"1")
    os.mkdir(fs / "y")
    os.rename(fs / "x", fs / "y")
    assert os.listdir(fs) == ["y"]
    assert os.listdir(fs / "y") == ["inside"]
    assert os.stat(fs).st_nlink == 3


def test_rename_onto_nonempty_directory(fs):
    os.mkdir(fs / "x")
    os.mkdir(fs / "y")
    write_bytes(fs / "y" / "f", b"1")
    expect_errno(errno.ENOTEMPTY, os.rename, fs / "x", fs / "y")
    assert sorted(os.listdir(fs)) == ["x", "y"]
    assert os.listdir(fs / "y") == ["f"]


def test_rename_dir_over_file_enotdir(fs):
    os.mkdir(fs / "d")
    write_bytes(fs / "f", b"1")
    expect_errno(errno.ENOTDIR, os.rename, fs / "d", fs / "f")
    assert stat.S_ISDIR(os.stat(fs / "d").st_mode)
    assert read_bytes(fs / "f") == b"1"


def test_rename_file_over_dir_eisdir(fs):
    os.mkdir(fs / "d")
    write_bytes(fs / "f", b"1")
    expect_errno(errno.EISDIR, os.rename, fs / "f", fs / "d")
    assert stat.S_ISDIR(os.stat(fs / "d").st_mode)
    assert read_bytes(fs / "f") == b"1"


def test_rename_dir_into_own_subtree_einval(fs):
    os.makedirs(fs / "a" / "b" / "c")
    expect_errno(errno.EINVAL, os.rename, fs / "a", fs / "a" / "b" / "c" / "a")
    expect_errno(errno.EINVAL, os.rename, fs / "a", fs / "a" / "x")
    assert os.listdir(fs) == ["a"]
    assert os.listdir(fs / "a" / "b" / "c") == []


def test_rename_missing_source(fs):
    os.mkdir(fs / "d")
    expect_errno(errno.ENOENT, os.rename, fs / "missing", fs / "x")
    expect_errno(errno.ENOENT, os.rename, fs / "d", fs / "nodir" / "x")
    assert os.listdir(fs) == ["d"]


def test_rename_same_name_and_hardlinks_noop(fs):
    write_bytes(fs / "f", b"x")
    os.rename(fs / "f", fs / "f")
    assert read_bytes(fs / "f") == b"x"
    os.link(fs / "f", fs / "g")
    os.rename(fs / "f", fs / "g")  # same file: POSIX says do nothing
    assert sorted(os.listdir(fs)) == ["f", "g"]
    assert os.stat(fs / "g").st_nlink == 2


def test_rename_open_file_keeps_fd(fs):
    write_bytes(fs / "f", b"12345")
    fd = os.open(fs / "f", os.O_RDWR)
    os.rename(fs / "f", fs / "g")
    os.pwrite(fd, b"ab", 0)
    os.close(fd)
    assert os.listdir(fs) == ["g"]
    assert read_bytes(fs / "g") == b"ab345"


_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def renameat2(old, new, flags):
    f = _libc.renameat2
    f.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if f(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(old))


def test_rename_noreplace(fs):
    write_bytes(fs / "a", b"A")
    write_bytes(fs / "b", b"B")
    expect_errno(errno.EEXIST, renameat2, fs / "a", fs / "b", RENAME_NOREPLACE)
    assert read_bytes(fs / "a") == b"A"
    assert read_bytes(fs / "b") == b"B"
    renameat2(fs / "a", fs / "c", RENAME_NOREPLACE)
    assert sorted(os.listdir(fs)) == ["b", "c"]
    assert read_bytes(fs / "c") == b"A"


def test_rename_exchange_or_einval(fs):
    """RENAME_EXCHANGE may be unsupported (ST_NOTSUP -> EINVAL); if it
    works, it must really swap."""
    write_bytes(fs / "a", b"A")
    write_bytes(fs / "b", b"B")
    try:
        renameat2(fs / "a", fs / "b", RENAME_EXCHANGE)
    except OSError as e:
        assert e.errno in (errno.EINVAL, errno.ENOTSUP, errno.ENOSYS)
        assert read_bytes(fs / "a") == b"A"
        assert read_bytes(fs / "b") == b"B"
    else:
        assert read_bytes(fs / "a") == b"B"
        assert read_bytes(fs / "b") == b"A"


@pytest.mark.skip(reason="EXDEV needs a second volume (encore mkmount); only one volume exists today")
def test_rename_across_volumes_exdev(fs):
    pass


# --- links ------------------------------------------------------------------------

def test_hard_link(fs):
    write_bytes(fs / "f", b"shared")
    os.link(fs / "f", fs / "g")
    st_f, st_g = os.stat(fs / "f"), os.stat(fs / "g")
    assert st_f.st_ino == st_g.st_ino
    assert st_f.st_nlink == st_g.st_nlink == 2
    write_bytes(fs / "g", b"changed through g")
    assert read_bytes(fs / "f") == b"changed through g"
    expect_errno(errno.EEXIST, os.link, fs / "f", fs / "g")
    expect_errno(errno.ENOENT, os.link, fs / "missing", fs / "h")
    os.mkdir(fs / "d")
    expect_errno(errno.EPERM, os.link, fs / "d", fs / "dlink")
    os.unlink(fs / "f")
    assert os.stat(fs / "g").st_nlink == 1
    assert read_bytes(fs / "g") == b"changed through g"
    assert sorted(os.listdir(fs)) == ["d", "g"]


def test_hard_link_across_directories(fs):
    os.mkdir(fs / "a")
    write_bytes(fs / "f", b"x")
    os.link(fs / "f", fs / "a" / "f2")
    assert os.stat(fs / "a" / "f2").st_nlink == 2
    assert read_bytes(fs / "a" / "f2") == b"x"


def test_symlink_readlink(fs):
    os.symlink("some/relative/target", fs / "s")
    assert os.readlink(fs / "s") == "some/relative/target"
    st = os.lstat(fs / "s")
    assert stat.S_ISLNK(st.st_mode)
    assert st.st_size == len("some/relative/target")
    expect_errno(errno.ENOENT, os.stat, fs / "s")  # dangling
    write_bytes(fs / "real", b"via link")
    os.symlink("real", fs / "s2")
    assert read_bytes(fs / "s2") == b"via link"
    os.mkdir(fs / "dir")
    os.symlink("dir", fs / "s3")
    write_bytes(fs / "s3" / "inner", b"i")
    assert os.listdir(fs / "dir") == ["inner"]
    expect_errno(errno.EEXIST, os.symlink, "x", fs / "s")
    expect_errno(errno.EINVAL, os.readlink, fs / "real")
    os.unlink(fs / "s")
    assert read_bytes(fs / "real") == b"via link"


def test_symlink_long_target(fs):
    target = "t/" * 2047 + "e"  # 4095 bytes
    assert len(target) == 4095
    os.symlink(target, fs / "long")
    assert os.readlink(fs / "long") == target
    assert os.lstat(fs / "long").st_size == 4095
    expect_errno(errno.ENAMETOOLONG, os.symlink, target + "x", fs / "toolong")


# --- special files ---------------------------------------------------------------

def test_mknod_fifo_socket_devices(fs):
    os.mkfifo(fs / "fifo", 0o640)
    st = os.stat(fs / "fifo")
    assert stat.S_ISFIFO(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o640
    os.mknod(fs / "sock", stat.S_IFSOCK | 0o644)
    assert stat.S_ISSOCK(os.stat(fs / "sock").st_mode)
    os.mknod(fs / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    st = os.stat(fs / "null")
    assert stat.S_ISCHR(st.st_mode)
    assert st.st_rdev == os.makedev(1, 3)
    os.mknod(fs / "blk", stat.S_IFBLK | 0o600, os.makedev(7, 130))
    st = os.stat(fs / "blk")
    assert stat.S_ISBLK(st.st_mode)
    assert os.major(st.st_rdev) == 7 and os.minor(st.st_rdev) == 130
    expect_errno(errno.EEXIST, os.mkfifo, fs / "fifo")
    assert sorted(os.listdir(fs)) == ["blk", "fifo", "null", "sock"]


def test_special_files_seen_by_second_client(fs, client2):
    os.mknod(fs / "chr", stat.S_IFCHR | 0o644, os.makedev(4, 64))
    os.mkfifo(fs / "fifo")
    st = os.stat(client2.root / "chr")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(4, 64)
    assert stat.S_ISFIFO(os.stat(client2.root / "fifo").st_mode)


# --- attributes ---------------------------------------------------------------------

def test_chmod(fs):
    write_bytes(fs / "f", b"x")
    os.chmod(fs / "f", 0o600)
    assert stat.S_IMODE(os.stat(fs / "f").st_mode) == 0o600
    os.chmod(fs / "f", 0o4755)
    assert stat.S_IMODE(os.stat(fs / "f").st_mode) == 0o4755
    os.mkdir(fs / "d")
    os.chmod(fs / "d", 0o1777)
    st = os.stat(fs / "d")
    assert stat.S_IMODE(st.st_mode) == 0o1777 and stat.S_ISDIR(st.st_mode)
    expect_errno(errno.ENOENT, os.chmod, fs / "missing", 0o644)


def test_chown(fs):
    write_bytes(fs / "f", b"x")
    os.chown(fs / "f", 1234, 5678)
    st = os.stat(fs / "f")
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    os.chown(fs / "f", -1, 42)
    st = os.stat(fs / "f")
    assert (st.st_uid, st.st_gid) == (1234, 42)
    os.symlink("f", fs / "s")
    os.lchown(fs / "s", 77, 88)
    assert (os.lstat(fs / "s").st_uid, os.lstat(fs / "s").st_gid) == (77, 88)
    assert os.stat(fs / "f").st_uid == 1234


def test_utimensat_nanoseconds(fs):
    write_bytes(fs / "f", b"x")
    atime = 1234567890 * 10**9 + 123456789
    mtime = 1500000000 * 10**9 + 987654321
    os.utime(fs / "f", ns=(atime, mtime))
    st = os.stat(fs / "f")
    assert st.st_atime_ns == atime
    assert st.st_mtime_ns == mtime
    os.mkdir(fs / "d")
    os.utime(fs / "d", ns=(atime, mtime))
    assert os.stat(fs / "d").st_mtime_ns == mtime
    # Negative (pre-1970) times survive too.
    os.utime(fs / "f", ns=(-10**9 + 5, -2 * 10**9 + 7))
    st = os.stat(fs / "f")
    assert st.st_atime_ns == -10**9 + 5
    assert st.st_mtime_ns == -2 * 10**9 + 7


def test_attributes_reach_server(fs, client2):
    """chmod/chown/utime are stored: a second client sees them."""
    write_bytes(fs / "f", b"x")
    os.chmod(fs / "f", 0o751)
    os.chown(fs / "f", 321, 654)
    os.utime(fs / "f", ns=(10**18 + 1, 10**18 + 2))
    st = os.stat(client2.root / "f")
    assert stat.S_IMODE(st.st_mode) == 0o751
    assert (st.st_uid, st.st_gid) == (321, 654)
    assert st.st_atime_ns == 10**18 + 1
    assert st.st_mtime_ns == 10**18 + 2


def test_write_updates_mtime_and_ctime(fs):
    write_bytes(fs / "f", b"x")
    os.utime(fs / "f", ns=(10**9, 10**9))
    before = os.stat(fs / "f")
    write_bytes(fs / "f", b"y", mode="ab")
    after = os.stat(fs / "f")
    assert after.st_mtime_ns > before.st_mtime_ns
    assert after.st_ctime_ns >= before.st_ctime_ns


def test_truncate_extend_and_shrink(fs):
    write_bytes(fs / "f", b"0123456789")
    os.truncate(fs / "f", 4)
    assert os.stat(fs / "f").st_size == 4
    assert read_bytes(fs / "f") == b"0123"
    os.truncate(fs / "f", 100000)
    assert os.stat(fs / "f").st_size == 100000
    assert read_bytes(fs / "f") == b"0123" + b"\0" * 99996
    os.truncate(fs / "f", 0)
    assert read_bytes(fs / "f") == b""
    expect_errno(errno.ENOENT, os.truncate, fs / "missing", 0)
    os.mkdir(fs / "d")
    expect_errno(errno.EISDIR, os.truncate, fs / "d", 0)


def test_ftruncate_extend_and_shrink(fs):
    fd = os.open(fs / "f", os.O_CREAT | os.O_RDWR, 0o644)
    os.write(fd, b"abcdefgh")
    os.ftruncate(fd, 3)
    assert os.fstat(fd).st_size == 3
    assert os.pread(fd, 100, 0) == b"abc"
    os.ftruncate(fd, 5000)
    assert os.pread(fd, 10000, 0) == b"abc" + b"\0" * 4997
    os.pwrite(fd, b"Z", 4999)
    os.close(fd)
    data = read_bytes(fs / "f")
    assert data == b"abc" + b"\0" * 4996 + b"Z"


def test_posix_fallocate(fs):
    fd = os.open(fs / "f", os.O_CREAT | os.O_RDWR, 0o644)
    os.write(fd, b"head")
    os.posix_fallocate(fd, 0, 8192)
    assert os.fstat(fd).st_size == 8192
    os.close(fd)
    assert read_bytes(fs / "f") == b"head" + b"\0" * 8188


def test_sparse_write_past_eof(fs):
    fd = os.open(fs / "f", os.O_CREAT | os.O_RDWR, 0o644)
    os.pwrite(fd, b"end", 1 << 20)
    os.close(fd)
    data = read_bytes(fs / "f")
    assert len(data) == (1 << 20) + 3
    assert data[-3:] == b"end" and data[:1 << 20].count(0) == 1 << 20


def test_statfs(fs):
    sv = os.statvfs(fs)
    assert sv.f_bsize > 0
    assert sv.f_blocks > 0
    assert sv.f_bavail <= sv.f_blocks
    assert sv.f_namemax == 255


def test_st_blocks_nonzero_for_data(fs):
    write_bytes(fs / "f", os.urandom(100000))
    st = os.stat(fs / "f")
    assert st.st_size == 100000
    assert st.st_blocks > 0
    write_bytes(fs / "empty", b"")
    assert os.stat(fs / "empty").st_blocks == 0


# --- permissions (as another user) -------------------------------------------------

def test_eacces_write_root_file(fs):
    write_bytes(fs / "f", b"root data")
    os.chmod(fs / "f", 0o644)
    r = run_as(UID, GID, "os.open(sys.argv[1], os.O_WRONLY)", fs / "f")
    assert r == {"ok": False, "errno": errno.EACCES}
    r = run_as(UID, GID, "ok(data=open(sys.argv[1]).read())", fs / "f")
    assert r == {"ok": True, "data": "root data"}
    r = run_as(UID, GID, "os.truncate(sys.argv[1], 0)", fs / "f")
    assert r["errno"] == errno.EACCES
    r = run_as(UID, GID, "os.chmod(sys.argv[1], 0o666)", fs / "f")
    assert r["errno"] == errno.EPERM
    os.chmod(fs / "f", 0o600)
    r = run_as(UID, GID, "open(sys.argv[1]).read()", fs / "f")
    assert r["errno"] == errno.EACCES
    assert read_bytes(fs / "f") == b"root data"
    assert stat.S_IMODE(os.stat(fs / "f").st_mode) == 0o600


def test_eacces_create_in_root_dir(fs):
    os.mkdir(fs / "d", 0o755)
    r = run_as(UID, GID, "os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)", fs / "d" / "x")
    assert r == {"ok": False, "errno": errno.EACCES}
    r = run_as(UID, GID, "os.mkdir(sys.argv[1])", fs / "d" / "y")
    assert r["errno"] == errno.EACCES
    write_bytes(fs / "d" / "f", b"x")
    r = run_as(UID, GID, "os.unlink(sys.argv[1])", fs / "d" / "f")
    assert r["errno"] == errno.EACCES
    r = run_as(UID, GID, "os.rename(sys.argv[1], sys.argv[2])", fs / "d" / "f", fs / "d" / "g")
    assert r["errno"] == errno.EACCES
    assert os.listdir(fs / "d") == ["f"]
    os.chmod(fs / "d", 0o700)
    r = run_as(UID, GID, "os.listdir(sys.argv[1])", fs / "d")
    assert r["errno"] == errno.EACCES
    r = run_as(UID, GID, "os.stat(sys.argv[1])", fs / "d" / "f")
    assert r["errno"] == errno.EACCES


def test_user_owned_dir_allows_create(fs):
    os.mkdir(fs / "home")
    os.chown(fs / "home", UID, GID)
    r = run_as(UID, GID, """
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"mine")
os.close(fd)
os.mkdir(sys.argv[2])
""", fs / "home" / "f", fs / "home" / "sub")
    assert r["ok"], r
    st = os.stat(fs / "home" / "f")
    assert (st.st_uid, st.st_gid) == (UID, GID)
    assert read_bytes(fs / "home" / "f") == b"mine"
    st = os.stat(fs / "home" / "sub")
    assert (st.st_uid, st.st_gid) == (UID, GID)


def test_sticky_directory(fs):
    os.mkdir(fs / "tmp")
    os.chmod(fs / "tmp", 0o1777)
    write_bytes(fs / "tmp" / "rootfile", b"r")
    r = run_as(UID, GID, "open(sys.argv[1], 'w').write('u')", fs / "tmp" / "userfile")
    assert r["ok"], r
    assert os.stat(fs / "tmp" / "userfile").st_uid == UID
    # Another user's file cannot be removed or renamed away.
    r = run_as(UID, GID, "os.unlink(sys.argv[1])", fs / "tmp" / "rootfile")
    assert r == {"ok": False, "errno": errno.EPERM}
    r = run_as(UID, GID, "os.rename(sys.argv[1], sys.argv[2])", fs / "tmp" / "rootfile", fs / "tmp" / "stolen")
    assert r["errno"] == errno.EPERM
    r = run_as(OTHER_UID, OTHER_GID, "os.unlink(sys.argv[1])", fs / "tmp" / "userfile")
    assert r["errno"] == errno.EPERM
    assert sorted(os.listdir(fs / "tmp")) == ["rootfile", "userfile"]
    # Own files can.
    r = run_as(UID, GID, "os.unlink(sys.argv[1])", fs / "tmp" / "userfile")
    assert r["ok"], r
    assert os.listdir(fs / "tmp") == ["rootfile"]


def test_setgid_directory_inheritance(fs):
    os.mkdir(fs / "g")
    os.chown(fs / "g", 0, 4321)
    os.chmod(fs / "g", 0o2775)
    assert stat.S_IMODE(os.stat(fs / "g").st_mode) == 0o2775
    os.mkdir(fs / "g" / "sub")
    st = os.stat(fs / "g" / "sub")
    assert st.st_gid == 4321
    assert st.st_mode & stat.S_ISGID
    write_bytes(fs / "g" / "file", b"x")
    st = os.stat(fs / "g" / "file")
    assert st.st_gid == 4321
    assert not st.st_mode & stat.S_ISGID
    # A member of the group creating a file there gets the directory's gid too.
    os.chmod(fs / "g", 0o2777)
    r = run_as(UID, GID, "open(sys.argv[1], 'w').close()", fs / "g" / "ufile", groups=[GID, 4321])
    assert r["ok"], r
    st = os.stat(fs / "g" / "ufile")
    assert (st.st_uid, st.st_gid) == (UID, 4321)


# --- mmap, xattr, fsync ------------------------------------------------------------

def test_shared_writable_mmap(fs, client2):
    write_bytes(fs / "m", b"a" * 8192)
    with open(fs / "m", "r+b") as f:
        mm = mmap.mmap(f.fileno(), 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        mm[100:105] = b"hello"
        mm[5000:5005] = b"world"
        mm.flush()
        mm.close()
    want = bytearray(b"a" * 8192)
    want[100:105] = b"hello"
    want[5000:5005] = b"world"
    assert read_bytes(fs / "m") == bytes(want)
    assert read_bytes(client2.root / "m") == bytes(want)


def test_xattr_not_supported(fs):
    write_bytes(fs / "f", b"x")
    expect_errno(errno.ENOTSUP, os.setxattr, fs / "f", "user.test", b"1")
    with pytest.raises(OSError) as ei:
        os.getxattr(fs / "f", "user.test")
    assert ei.value.errno in (errno.ENOTSUP, errno.ENODATA)
    try:
        names = os.listxattr(fs / "f")
    except OSError as e:
        assert e.errno == errno.ENOTSUP
    else:
        assert names == []
    with pytest.raises(OSError) as ei:
        os.removexattr(fs / "f", "user.test")
    assert ei.value.errno in (errno.ENOTSUP, errno.ENODATA)


def test_fsync_dirty_file(fs, client2):
    fd = os.open(fs / "f", os.O_CREAT | os.O_RDWR, 0o644)
    os.write(fd, b"synced data")
    os.fsync(fd)
    # fsync returns only when the server has the data: a client that never
    # saw the file reads it while the writer still holds it open.
    assert read_bytes(client2.root / "f") == b"synced data"
    os.pwrite(fd, b"S", 0)
    os.fdatasync(fd)
    os.close(fd)
    assert read_bytes(fs / "f") == b"Synced data"
    assert read_bytes(client2.root / "f") == b"Synced data"


def test_fsync_directory(fs):
    os.mkdir(fs / "d")
    fd = os.open(fs / "d", os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
