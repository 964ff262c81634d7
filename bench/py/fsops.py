#!/usr/bin/env python3
"""Measured file-system operations for bench/run.sh.

Each subcommand does one bounded piece of work on a mounted file system and
prints `key value` lines on stdout (times in seconds, counts as integers).
The timing is taken inside the process so interpreter start-up is not
counted. Every loop has a deadline (--deadline seconds, default 600): when
it is hit the command prints `timeout 1` and the partial count, and exits 3.

Subcommands (N = count, D = directory, F = file):
  create D N            create N empty files f000000.. in D
  stat D N              stat each of them by path
  readdir D             list D once (getdents only)
  unlink D N            unlink each of them
  scale-create D N STEP create N files, print the time of every STEP files
  tree-create D DIRS FILES SIZE   DIRS dirs x FILES files of SIZE bytes
  tree-read D           walk D and read every file
  append-fsync F N SIZE N x (append SIZE bytes + fsync)
  sparse-write F SPAN N write N x 4 KiB at distinct random 4 KiB offsets below SPAN, then fsync
  sparse-read F SPAN N  read them back in another random order and check them
  mmap-seqread F        read F through a shared mapping, 1 MiB at a time
  mmap-randread F N     touch N random pages of F through a mapping
  mmap-write F N        write every page of F through a shared mapping, then
                        N random pages, msync after each phase
  floor F N             N x fstat and N x getxattr(missing name) on an open fd
  extent-depth OUTPUT   parse `debugfs -R "ex FILE"` output given as a file
"""

import mmap
import os
import random
import sys
import time

DEADLINE = 600.0
SEED = 20240501


class Timeout(Exception):
    pass


def out(key, value):
    if isinstance(value, float):
        print(f"{key} {value:.6f}")
    else:
        print(f"{key} {value}")


class Clock:
    def __init__(self):
        self.t0 = time.perf_counter()

    def elapsed(self):
        return time.perf_counter() - self.t0

    def check(self):
        if time.perf_counter() - self.t0 > DEADLINE:
            raise Timeout()


def names(n):
    return [f"f{i:06d}" for i in range(n)]


def cmd_create(d, n):
    n = int(n)
    os.makedirs(d, exist_ok=True)
    c = Clock()
    done = 0
    try:
        for name in names(n):
            fd = os.open(os.path.join(d, name), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
            os.close(fd)
            done += 1
            if done % 256 == 0:
                c.check()
    finally:
        out("elapsed", c.elapsed())
        out("count", done)


def cmd_stat(d, n):
    c = Clock()
    done = 0
    try:
        for name in names(int(n)):
            os.stat(os.path.join(d, name))
            done += 1
            if done % 256 == 0:
                c.check()
    finally:
        out("elapsed", c.elapsed())
        out("count", done)


def cmd_readdir(d):
    c = Clock()
    entries = os.listdir(d)
    out("elapsed", c.elapsed())
    out("count", len(entries))


def cmd_unlink(d, n):
    c = Clock()
    done = 0
    try:
        for name in names(int(n)):
            os.unlink(os.path.join(d, name))
            done += 1
            if done % 256 == 0:
                c.check()
    finally:
        out("elapsed", c.elapsed())
        out("count", done)


def cmd_scale_create(d, n, step):
    n, step = int(n), int(step)
    os.makedirs(d, exist_ok=True)
    c = Clock()
    last = 0.0
    steps = []
    done = 0
    try:
        for name in names(n):
            fd = os.open(os.path.join(d, name), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
            os.close(fd)
            done += 1
            if done % step == 0:
                now = c.elapsed()
                steps.append(now - last)
                last = now
                c.check()
    finally:
        out("elapsed", c.elapsed())
        out("count", done)
        out("steps", ",".join(f"{s:.4f}" for s in steps))


def cmd_tree_create(d, dirs, files, size):
    dirs, files, size = int(dirs), int(files), int(size)
    buf = bytes(random.Random(SEED).getrandbits(8) for _ in range(size))
    c = Clock()
    done = 0
    try:
        for i in range(dirs):
            sub = os.path.join(d, f"d{i:03d}")
            os.makedirs(sub)
            for j in range(files):
                fd = os.open(os.path.join(sub, f"f{j:04d}"), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
                os.write(fd, buf)
                os.close(fd)
                done += 1
            c.check()
    finally:
        out("elapsed", c.elapsed())
        out("count", done)


def cmd_tree_read(d):
    c = Clock()
    files = 0
    total = 0
    stack = [d]
    try:
        while stack:
            cur = stack.pop()
            with os.scandir(cur) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        with open(e.path, "rb", buffering=0) as f:
                            while True:
                                b = f.read(1 << 20)
                                if not b:
                                    break
                                total += len(b)
                        files += 1
            c.check()
    finally:
        out("elapsed", c.elapsed())
        out("count", files)
        out("bytes", total)


def cmd_append_fsync(f, n, size):
    n, size = int(n), int(size)
    buf = b"a" * size
    fd = os.open(f, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    c = Clock()
    done = 0
    try:
        for _ in range(n):
            os.write(fd, buf)
            os.fsync(fd)
            done += 1
            if done % 64 == 0:
                c.check()
    finally:
        out("elapsed", c.elapsed())
        out("count", done)
        os.close(fd)


def sparse_offsets(span, n):
    r = random.Random(SEED)
    pages = r.sample(range(int(span) // 4096), int(n))
    return pages


def page_bytes(p):
    # 4 KiB that name their own page, so a misplaced block is detected.
    return (p.to_bytes(8, "little") * 512)


def cmd_sparse_write(f, span, n):
    pages = sparse_offsets(span, n)
    fd = os.open(f, os.O_CREAT | os.O_WRONLY, 0o644)
    c = Clock()
    done = 0
    try:
        for p in pages:
            os.pwrite(fd, page_bytes(p), p * 4096)
            done += 1
            if done % 256 == 0:
                c.check()
        os.fsync(fd)
    finally:
        out("elapsed", c.elapsed())
        out("count", done)
        os.close(fd)
    st = os.stat(f)
    out("size", st.st_size)


def cmd_sparse_read(f, span, n):
    pages = sparse_offsets(span, n)
    random.Random(SEED + 1).shuffle(pages)
    fd = os.open(f, os.O_RDONLY)
    c = Clock()
    done = 0
    bad = 0
    try:
        for p in pages:
            if os.pread(fd, 4096, p * 4096) != page_bytes(p):
                bad += 1
            done += 1
            if done % 256 == 0:
                c.check()
    finally:
        out("elapsed", c.elapsed())
        out("count", done)
        out("bad", bad)
        os.close(fd)


def cmd_mmap_seqread(f):
    fd = os.open(f, os.O_RDONLY)
    size = os.fstat(fd).st_size
    c = Clock()
    m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
    total = 0
    for off in range(0, size, 1 << 20):
        total += len(m[off:off + (1 << 20)])
    m.close()
    out("elapsed", c.elapsed())
    out("bytes", total)
    os.close(fd)


def cmd_mmap_randread(f, n):
    fd = os.open(f, os.O_RDONLY)
    size = os.fstat(fd).st_size
    r = random.Random(SEED)
    offs = [r.randrange(size // 4096) * 4096 for _ in range(int(n))]
    c = Clock()
    m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
    s = 0
    for o in offs:
        s += m[o]
    m.close()
    out("elapsed", c.elapsed())
    out("count", len(offs))
    os.close(fd)


def cmd_mmap_write(f, n):
    fd = os.open(f, os.O_RDWR)
    size = os.fstat(fd).st_size
    r = random.Random(SEED)
    offs = [r.randrange(size // 4096) * 4096 for _ in range(int(n))]
    chunk = bytes(range(256)) * 4096
    page = b"\x5a" * 4096
    m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    c = Clock()
    for off in range(0, size, len(chunk)):
        end = min(size, off + len(chunk))
        m[off:end] = chunk[: end - off]
    m.flush()
    seq = c.elapsed()
    c = Clock()
    for o in offs:
        m[o:o + 4096] = page
    m.flush()
    rnd = c.elapsed()
    m.close()
    os.close(fd)
    out("seq_elapsed", seq)
    out("bytes", size)
    out("rand_elapsed", rnd)
    out("count", len(offs))


def cmd_floor(f, n):
    n = int(n)
    fd = os.open(f, os.O_RDONLY)
    for _ in range(100):
        os.fstat(fd)
    c = Clock()
    for _ in range(n):
        os.fstat(fd)
    out("fstat_us", c.elapsed() / n * 1e6)
    misses = 0
    c = Clock()
    for _ in range(n):
        try:
            os.getxattr(fd, "user.fext_bench_missing")
        except OSError:
            misses += 1
    out("getxattr_us", c.elapsed() / n * 1e6)
    out("misses", misses)
    os.close(fd)


def cmd_extent_depth(path):
    # debugfs "ex" lines start with "Level Entries ..." then " 0/ 2   1/  3 ...":
    # the number after the slash in the first column is the tree depth.
    depth = None
    extents = 0
    with open(path) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2 and "/" in line and parts[0].rstrip("/").isdigit():
                try:
                    lvl_part = line.split("/", 1)[1].split()[0]
                    d = int(lvl_part)
                except (IndexError, ValueError):
                    continue
                depth = d if depth is None else max(depth, d)
                extents += 1
    out("depth", -1 if depth is None else depth)
    out("lines", extents)


def main():
    global DEADLINE
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "--deadline":
        DEADLINE = float(args[1])
        args = args[2:]
    if not args:
        print(__doc__)
        return 2
    cmd = "cmd_" + args[0].replace("-", "_")
    fn = globals().get(cmd)
    if fn is None:
        print(f"unknown subcommand {args[0]}", file=sys.stderr)
        return 2
    try:
        fn(*args[1:])
    except Timeout:
        out("timeout", 1)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
