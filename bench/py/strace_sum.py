#!/usr/bin/env python3
"""Adds up `strace -c -f` summaries: strace_sum.py FIRST FILE...

Only files whose mount number (the last -NNNN in the name) is >= FIRST are
counted: bench/run.sh --profile strace writes one summary per fext mount.
"""

import re
import sys
from collections import defaultdict


def main():
    first = int(sys.argv[1])
    calls = defaultdict(lambda: [0.0, 0, 0])
    used = []
    for path in sys.argv[2:]:
        m = re.search(r"-(\d+)\.txt$", path)
        if not m or int(m.group(1)) < first:
            continue
        used.append(path)
        with open(path) as fh:
            for line in fh:
                p = line.split()
                # % time, seconds, usecs/call, calls, [errors], syscall
                if len(p) >= 5 and re.match(r"^[\d.]+$", p[0]) and p[-1] != "total":
                    try:
                        secs, n = float(p[1]), int(p[3])
                    except ValueError:
                        continue
                    errs = int(p[4]) if len(p) == 6 else 0
                    c = calls[p[-1]]
                    c[0] += secs
                    c[1] += n
                    c[2] += errs
    total = sum(c[0] for c in calls.values())
    print(f"# strace -c -f of fext, summed over {len(used)} mounts")
    print()
    print("| syscall | seconds | calls | errors | us/call | share |")
    print("|---|---|---|---|---|---|")
    for name, (secs, n, errs) in sorted(calls.items(), key=lambda kv: -kv[1][0])[:30]:
        print(f"| {name} | {secs:.3f} | {n} | {errs} | {1e6 * secs / max(n, 1):.1f} | {100 * secs / max(total, 1e-9):.1f}% |")


if __name__ == "__main__":
    main()
