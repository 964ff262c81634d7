#!/usr/bin/env python3
"""Counts FUSE requests by opcode in a fext log written with
RUST_LOG=fuser::request=debug, between the markers "=== BEGIN KEY" and
"=== END KEY" that bench/run.sh --profile opcodes writes around a workload.

opcodes.py LOGFILE "WORKLOAD RUN"
"""

import re
import sys
from collections import Counter

REQ = re.compile(r"FUSE\(\s*\d+\) ino 0x[0-9a-f]+ ([A-Z_0-9]+)(.*)")
SIZE = re.compile(r"\bsize (\d+)")


def main():
    path, key = sys.argv[1], sys.argv[2]
    inside = False
    counts = Counter()
    sizes = Counter()
    names = Counter()
    with open(path, errors="replace") as fh:
        for line in fh:
            if line.startswith("=== BEGIN ") and line[10:].strip() == key:
                inside = True
                continue
            if line.startswith("=== END ") and line[8:].strip() == key:
                break
            if not inside:
                continue
            m = REQ.search(line)
            if not m:
                continue
            op, rest = m.group(1), m.group(2)
            counts[op] += 1
            if op in ("READ", "WRITE"):
                s = SIZE.search(rest)
                if s:
                    sizes[op] += int(s.group(1))
            if op == "GETXATTR":
                n = re.search(r'name "([^"]*)"', rest)
                if n:
                    names[n.group(1)] += 1
    total = sum(counts.values())
    print(f"# FUSE requests to fext during {key}: {total}")
    print()
    print("| opcode | count | share | mean size |")
    print("|---|---|---|---|")
    for op, n in counts.most_common():
        mean = f"{sizes[op] / n / 1024:.1f} KiB" if op in sizes else ""
        print(f"| {op} | {n} | {100 * n / max(total, 1):.1f}% | {mean} |")
    if names:
        print()
        print("GETXATTR names: " + ", ".join(f"{k} x{v}" for k, v in names.most_common()))


if __name__ == "__main__":
    main()
