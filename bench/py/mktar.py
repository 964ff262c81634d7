#!/usr/bin/env python3
"""Builds the "real work" tarball once: mktar.py OUT MAX_FILES MAX_MB ROOT...

Walks the roots in sorted order (deterministic), taking regular files of at
most 1 MiB, symlinks and directories, until MAX_FILES regular files or
MAX_MB of file data. Each root gets an equal share of the file budget; a
root that has fewer files leaves its share to the next ones. Written with
GNU tar from a file list, so the archive is what `tar` itself makes.
"""

import os
import subprocess
import sys
import tempfile


def walk(root):
    stack = [root]
    while stack:
        cur = stack.pop()
        try:
            entries = sorted(os.scandir(cur), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        for e in entries:
            yield e
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)


def main():
    out, max_files, max_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    roots = [r for r in sys.argv[4:] if os.path.isdir(r)]
    max_bytes = max_mb << 20
    files = 0
    total = 0
    listing = []
    for i, root in enumerate(roots):
        share_files = (max_files - files) // (len(roots) - i)
        share_bytes = (max_bytes - total) // (len(roots) - i)
        f0, b0 = files, total
        for e in walk(root):
            if files - f0 >= share_files or total - b0 >= share_bytes:
                break
            try:
                if e.is_symlink():
                    listing.append(e.path)
                elif e.is_dir(follow_symlinks=False):
                    listing.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    size = e.stat(follow_symlinks=False).st_size
                    if size > (1 << 20) or not os.access(e.path, os.R_OK):
                        continue
                    listing.append(e.path)
                    files += 1
                    total += size
            except OSError:
                continue
    with tempfile.NamedTemporaryFile("w", delete=False) as lst:
        for p in listing:
            lst.write(p + "\n")
        name = lst.name
    tmp = out + ".part"
    subprocess.run(
        ["tar", "cf", tmp, "--no-recursion", "--ignore-failed-read", "-T", name],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    os.unlink(name)
    os.rename(tmp, out)
    print(f"files {files} bytes {total} entries {len(listing)}")


if __name__ == "__main__":
    main()
