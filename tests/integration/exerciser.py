#!/usr/bin/python3
"""exerciser.py - randomized data-integrity exerciser.

Runs random file operations (creates, opens, closes, pwrite at random
offsets, pread, ftruncate/truncate, O_APPEND writes, renames, unlinks,
mkdir/rmdir, fsync) in a directory tree and checks every result against an
in-memory model: file id -> bytearray, path -> file id, fd -> file id.
Several file descriptors may be open on one file at once; open fds follow
a file through renames. With a fixed seed the run is reproducible.

As a module:
    ex = Exerciser(root, seed=1)
    ex.run(25000)        # raises Mismatch on the first divergence
    ex.close_all()       # every close must return 0
    ex.verify_tree()     # walk root, compare names, types and contents

As a program:  exerciser.py --root DIR [--ops N] [--seed S] [--max-size B]
(run it against any directory, e.g. a tmpfs, to check the exerciser itself).
"""

import argparse
import errno
import os
import random
import stat
import sys
import time


class Mismatch(AssertionError):
    """The file system disagrees with the model."""


class Exerciser:
    def __init__(self, root, seed=1, max_size=64 * 1024, max_files=40, max_dirs=6,
                 max_fds=12, max_io=8192, unlink_open=False, log=None):
        self.root = os.fspath(root)
        self.rng = random.Random(seed)
        self.seed = seed
        self.max_size = max_size
        self.max_files = max_files
        self.max_dirs = max_dirs
        self.max_fds = max_fds
        self.max_io = max_io
        self.unlink_open = unlink_open
        self.log = log
        self.data = {}    # file id -> bytearray
        self.names = {}   # relative path -> file id
        self.dirs = {""}  # relative dir paths ("" is root)
        self.fds = {}     # fd -> (file id, append?)
        self.next_id = 1
        self.next_name = 0
        self.nops = 0
        self.counts = {}
        self.history = []  # last ops, for the failure message
        os.makedirs(self.root, exist_ok=True)
        if os.listdir(self.root):
            raise ValueError("exerciser root %s is not empty" % self.root)

    # --- helpers -----------------------------------------------------------

    def p(self, rel):
        return os.path.join(self.root, rel) if rel else self.root

    def fail(self, msg):
        tail = "\n".join("  " + h for h in self.history[-20:])
        raise Mismatch("seed %d op %d: %s\nlast ops:\n%s" % (self.seed, self.nops, msg, tail))

    def note(self, s):
        self.history.append("%d %s" % (self.nops, s))
        if len(self.history) > 200:
            del self.history[:100]
        if self.log:
            self.log.write("%.3f %d %s\n" % (time.time(), self.nops, s))

    def fresh_name(self):
        self.next_name += 1
        return "n%d" % self.next_name

    def rand_dir(self):
        return self.rng.choice(sorted(self.dirs))

    def rand_file(self):
        if not self.names:
            return None
        return self.rng.choice(sorted(self.names))

    def open_ids(self):
        return {fid for fid, _ in self.fds.values()}

    def rand_bytes(self, n):
        return self.rng.randbytes(n)

    def check_eq(self, what, got, want):
        if got != want:
            if isinstance(got, (bytes, bytearray)) and isinstance(want, (bytes, bytearray)):
                first = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]),
                             min(len(got), len(want)))
                self.fail("%s: got %d bytes, want %d; first difference at offset %d"
                          % (what, len(got), len(want), first))
            self.fail("%s: got %r, want %r" % (what, got, want))

    def gc(self, fid):
        """Drop file data once no name and no fd refers to it."""
        if fid not in self.names.values() and fid not in self.open_ids():
            self.data.pop(fid, None)

    # --- operations --------------------------------------------------------

    def op_create(self):
        if len(self.names) >= self.max_files:
            return self.op_unlink()
        rel = os.path.join(self.rand_dir(), self.fresh_name()).lstrip("/")
        self.note("create %s" % rel)
        fd = os.open(self.p(rel), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        fid = self.next_id
        self.next_id += 1
        self.data[fid] = bytearray()
        self.names[rel] = fid
        if len(self.fds) < self.max_fds and self.rng.random() < 0.8:
            self.note("create %s: fd %d (file %d)" % (rel, fd, fid))
            self.fds[fd] = (fid, False)
        else:
            os.close(fd)

    def op_open(self):
        rel = self.rand_file()
        if rel is None or len(self.fds) >= self.max_fds:
            return self.op_create()
        fid = self.names[rel]
        append = self.rng.random() < 0.1
        trunc = self.rng.random() < 0.05
        flags = os.O_RDWR | (os.O_APPEND if append else 0) | (os.O_TRUNC if trunc else 0)
        self.note("open %s append=%d trunc=%d" % (rel, append, trunc))
        fd = os.open(self.p(rel), flags)
        if trunc:
            del self.data[fid][:]
        self.fds[fd] = (fid, append)
        self.note("open %s: fd %d (file %d)" % (rel, fd, fid))
        st = os.fstat(fd)
        self.check_eq("fstat size after open of %s" % rel, st.st_size, len(self.data[fid]))

    def op_close(self):
        if not self.fds:
            return self.op_open()
        fd = self.rng.choice(sorted(self.fds))
        fid, _ = self.fds.pop(fd)
        self.note("close fd %d (file %d)" % (fd, fid))
        os.close(fd)
        self.gc(fid)

    def rand_fd(self):
        if not self.fds:
            self.op_open()
        if not self.fds:
            return None
        return self.rng.choice(sorted(self.fds))

    def op_pwrite(self):
        fd = self.rand_fd()
        if fd is None:
            return
        fid, append = self.fds[fd]
        buf = self.data[fid]
        n = self.rng.randint(1, self.max_io)
        if append:
            n = min(n, max(0, self.max_size - len(buf)))
            if n == 0:
                return self.op_ftruncate(fd)
            b = self.rand_bytes(n)
            self.note("append fd %d len %d at %d" % (fd, n, len(buf)))
            w = os.write(fd, b)
            self.check_eq("append write count", w, n)
            buf += b
            return
        # Mostly inside the file, sometimes past EOF (leaving a hole).
        if self.rng.random() < 0.8 and buf:
            off = self.rng.randrange(0, len(buf))
        else:
            off = self.rng.randrange(0, len(buf) + 4096)
        n = min(n, self.max_size - off)
        if n <= 0:
            return self.op_ftruncate(fd)
        b = self.rand_bytes(n)
        self.note("pwrite fd %d off %d len %d" % (fd, off, n))
        w = os.pwrite(fd, b, off)
        self.check_eq("pwrite count", w, n)
        if off > len(buf):
            buf.extend(bytes(off - len(buf)))
        buf[off:off + n] = b

    def op_pread(self):
        fd = self.rand_fd()
        if fd is None:
            return
        fid, _ = self.fds[fd]
        buf = self.data[fid]
        off = self.rng.randrange(0, len(buf) + 100)
        n = self.rng.randint(1, self.max_io * 2)
        self.note("pread fd %d off %d len %d" % (fd, off, n))
        got = os.pread(fd, n, off)
        self.check_eq("pread fd %d off %d len %d (file %d)" % (fd, off, n, fid), got, bytes(buf[off:off + n]))

    def op_ftruncate(self, fd=None):
        fd = fd if fd is not None else self.rand_fd()
        if fd is None:
            return
        fid, _ = self.fds[fd]
        buf = self.data[fid]
        size = self.rng.choice([0, self.rng.randrange(0, len(buf) + 1),
                                self.rng.randrange(0, self.max_size + 1)])
        self.note("ftruncate fd %d %d -> %d" % (fd, len(buf), size))
        os.ftruncate(fd, size)
        if size < len(buf):
            del buf[size:]
        else:
            buf.extend(bytes(size - len(buf)))
        self.check_eq("fstat size after ftruncate", os.fstat(fd).st_size, size)

    def op_truncate(self):
        rel = self.rand_file()
        if rel is None:
            return self.op_create()
        fid = self.names[rel]
        buf = self.data[fid]
        size = self.rng.randrange(0, self.max_size + 1)
        self.note("truncate %s %d -> %d" % (rel, len(buf), size))
        os.truncate(self.p(rel), size)
        if size < len(buf):
            del buf[size:]
        else:
            buf.extend(bytes(size - len(buf)))

    def op_fstat(self):
        fd = self.rand_fd()
        if fd is None:
            return
        fid, _ = self.fds[fd]
        self.note("fstat fd %d" % fd)
        self.check_eq("fstat size fd %d (file %d)" % (fd, fid), os.fstat(fd).st_size, len(self.data[fid]))

    def op_read_whole(self):
        rel = self.rand_file()
        if rel is None:
            return
        self.note("read %s" % rel)
        with open(self.p(rel), "rb") as f:
            got = f.read()
        self.check_eq("contents of %s" % rel, got, bytes(self.data[self.names[rel]]))

    def op_fsync(self):
        fd = self.rand_fd()
        if fd is None:
            return
        self.note("fsync fd %d" % fd)
        os.fsync(fd)

    def op_rename(self):
        rel = self.rand_file()
        if rel is None:
            return self.op_create()
        fid = self.names[rel]
        # Sometimes onto an existing file (replacing it), else a fresh name.
        target = None
        if self.rng.random() < 0.3:
            cand = [n for n in sorted(self.names) if n != rel
                    and (self.unlink_open or self.names[n] not in self.open_ids())
                    and self.names[n] != fid]
            if cand:
                target = self.rng.choice(cand)
        if target is None:
            target = os.path.join(self.rand_dir(), self.fresh_name()).lstrip("/")
        self.note("rename %s -> %s" % (rel, target))
        os.rename(self.p(rel), self.p(target))
        old = self.names.pop(target, None)
        self.names[target] = self.names.pop(rel)
        if old is not None:
            self.gc(old)

    def op_unlink(self):
        cand = [n for n in sorted(self.names)
                if self.unlink_open or self.names[n] not in self.open_ids()]
        if not cand:
            return self.op_close()
        rel = self.rng.choice(cand)
        self.note("unlink %s" % rel)
        os.unlink(self.p(rel))
        fid = self.names.pop(rel)
        self.gc(fid)

    def op_mkdir(self):
        if len(self.dirs) >= self.max_dirs:
            return self.op_rmdir()
        parent = self.rand_dir()
        if parent.count("/") >= 2:
            parent = ""
        rel = os.path.join(parent, "d" + self.fresh_name()).lstrip("/")
        self.note("mkdir %s" % rel)
        os.mkdir(self.p(rel))
        self.dirs.add(rel)

    def op_rmdir(self):
        empty = [d for d in sorted(self.dirs) if d and not any(
            n.startswith(d + "/") for n in list(self.names) + list(self.dirs))]
        if not empty:
            return
        rel = self.rng.choice(empty)
        self.note("rmdir %s" % rel)
        os.rmdir(self.p(rel))
        self.dirs.discard(rel)

    def op_listdir(self):
        d = self.rand_dir()
        self.note("listdir %s" % (d or "/"))
        got = sorted(os.listdir(self.p(d)))
        self.check_eq("listdir %s" % (d or "/"), got, self.expected_listing(d))

    def expected_listing(self, d):
        pre = d + "/" if d else ""
        out = set()
        for n in list(self.names) + [x for x in self.dirs if x]:
            if n.startswith(pre) and "/" not in n[len(pre):]:
                out.add(n[len(pre):])
        return sorted(out)

    # Mostly fd-level I/O; namespace ops and open/close are rarer.
    OPS = [
        ("pwrite", 30), ("pread", 25), ("ftruncate", 5), ("fstat", 8),
        ("open", 3), ("close", 3), ("create", 3), ("read_whole", 3),
        ("truncate", 2), ("rename", 3), ("unlink", 2), ("listdir", 2),
        ("fsync", 1), ("mkdir", 1), ("rmdir", 1),
    ]

    def step(self):
        names = [n for n, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        name = self.rng.choices(names, weights)[0]
        self.nops += 1
        self.counts[name] = self.counts.get(name, 0) + 1
        try:
            getattr(self, "op_" + name)()
        except Mismatch:
            raise
        except OSError as e:
            self.fail("%s failed: %s (%s)" % (name, e, errno.errorcode.get(e.errno, e.errno)))

    def run(self, nops):
        for _ in range(nops):
            self.step()

    def close_all(self):
        for fd in sorted(self.fds):
            fid, _ = self.fds.pop(fd)
            self.note("close fd %d (file %d)" % (fd, fid))
            try:
                os.close(fd)
            except OSError as e:
                self.fail("close fd %d (file %d): %s" % (fd, fid, e))
            self.gc(fid)

    def verify_tree(self):
        """Walks the whole tree: same directories, same files, same bytes."""
        seen_files, seen_dirs = {}, set()

        def unlistable(e):  # os.walk would skip the directory silently
            self.fail("cannot list %s: %s (%s)"
                      % (e.filename, e, errno.errorcode.get(e.errno, e.errno)))

        for dirpath, dirnames, filenames in os.walk(self.root, onerror=unlistable):
            rel_dir = os.path.relpath(dirpath, self.root)
            rel_dir = "" if rel_dir == "." else rel_dir
            for d in dirnames:
                seen_dirs.add(os.path.join(rel_dir, d))
            for f in filenames:
                rel = os.path.join(rel_dir, f)
                st = os.lstat(self.p(rel))
                if not stat.S_ISREG(st.st_mode):
                    self.fail("%s is not a regular file (mode %o)" % (rel, st.st_mode))
                seen_files[rel] = st
        want_dirs = {d for d in self.dirs if d}
        if seen_dirs != want_dirs:
            self.fail("directories differ: extra %s missing %s"
                      % (sorted(seen_dirs - want_dirs), sorted(want_dirs - seen_dirs)))
        if set(seen_files) != set(self.names):
            self.fail("files differ: extra %s missing %s"
                      % (sorted(set(seen_files) - set(self.names)), sorted(set(self.names) - set(seen_files))))
        for rel, fid in sorted(self.names.items()):
            want = bytes(self.data[fid])
            self.check_eq("size of %s" % rel, seen_files[rel].st_size, len(want))
            with open(self.p(rel), "rb") as f:
                got = f.read()
            self.check_eq("contents of %s" % rel, got, want)
        return len(self.names)

    def summary(self):
        return "%d ops, %d files, %d dirs, %d open fds; %s" % (
            self.nops, len(self.names), len(self.dirs) - 1, len(self.fds),
            " ".join("%s=%d" % kv for kv in sorted(self.counts.items())))


def main(argv=None):
    ap = argparse.ArgumentParser(description="Randomized data-integrity exerciser: random file "
                                 "operations checked against an in-memory model.")
    ap.add_argument("--root", required=True, help="empty directory to work in (created if missing)")
    ap.add_argument("--ops", type=int, default=10000, help="number of operations (default 10000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--max-size", type=int, default=64 * 1024, help="largest file in bytes (default 65536)")
    ap.add_argument("--verify-every", type=int, default=0,
                    help="close all fds and verify the whole tree every N ops (default: only at the end)")
    ap.add_argument("--unlink-open", action="store_true", help="also unlink/replace files that are open")
    ap.add_argument("--log", help="write every operation to this file")
    a = ap.parse_args(argv)
    log = open(a.log, "w") if a.log else None
    ex = Exerciser(a.root, seed=a.seed, max_size=a.max_size, unlink_open=a.unlink_open, log=log)
    t0 = time.monotonic()
    try:
        done = 0
        step = a.verify_every or a.ops
        while done < a.ops:
            n = min(step, a.ops - done)
            ex.run(n)
            done += n
            ex.close_all()
            ex.verify_tree()
    except Mismatch as e:
        print("FAIL: %s" % e, file=sys.stderr)
        return 1
    print("OK: %s (%.1f s)" % (ex.summary(), time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
