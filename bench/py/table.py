#!/usr/bin/env python3
"""Turns bench/run.sh's results.tsv into markdown tables of medians.

table.py RESULTS.TSV FS... (the order of the columns, e.g. kernel fuse2fs fext)

TSV columns: workload, metric, fs, run, value, unit, better (hi|lo|info|series).
Ratios are throughput ratios: >1 means fext is faster. For "hi" metrics
(rates) that is fext/other; for "lo" metrics (seconds, microseconds) it is
other/fext. A median over runs where one run timed out counts the timeout as
the worst value; a row where every run timed out shows "timeout".
"""

import math
import statistics
import sys
from collections import OrderedDict, defaultdict

# Targets of the performance issue, as fext/kernel throughput ratios, by
# (workload, metric prefix).
TARGETS = [
    ("meta", "create", 0.5), ("meta", "unlink", 0.5), ("meta", "stat warm", 0.8),
    ("meta", "stat cold", 0.5), ("tree", "create", 0.5), ("tree", "rm -rf", 0.5),
    ("tar", "extract", 0.5), ("tar", "find", 0.8), ("tar", "du", 0.8), ("tar", "grep", 0.8),
    ("seqio", "write", 0.9), ("seqio", "read cold", 0.9), ("seqio", "read warm", 0.8),
    ("fio", "randwrite", 0.5), ("mmap", "", 0.8), ("append", "", 0.8),
]


def target_for(wl, metric):
    for w, prefix, t in TARGETS:
        if w == wl and metric.startswith(prefix):
            return t
    return None


def parse(v):
    if v == "timeout":
        return "timeout"
    try:
        x = float(v)
    except ValueError:
        return None
    return None if math.isnan(x) else x


def median(values, better):
    vals = [parse(v) for v in values]
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    if all(v == "timeout" for v in vals):
        return "timeout"
    worst = 0.0 if better == "hi" else math.inf
    nums = [worst if v == "timeout" else v for v in vals]
    m = statistics.median(nums)
    return "timeout" if m in (0.0, math.inf) and "timeout" in vals else m


def fmt(x):
    if x is None:
        return "-"
    if x == "timeout":
        return "timeout"
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def ratio(f, o, better):
    if not isinstance(f, float) or not isinstance(o, float):
        if f == "timeout" and isinstance(o, float):
            return "<<1"
        if o == "timeout" and isinstance(f, float):
            return ">>1"
        return "-"
    if better == "hi":
        return f"{f / o:.2f}" if o > 0 else "-"
    if better == "lo":
        return f"{o / f:.2f}" if f > 0 else "-"
    return "-"


def main():
    path, fss = sys.argv[1], sys.argv[2:]
    rows = OrderedDict()
    units = {}
    info = defaultdict(dict)
    series = defaultdict(list)
    with open(path) as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 7:
                continue
            wl, metric, fs, run, value, unit, better = parts
            if better == "series":
                series[(wl, metric)].append((fs, run, value))
                continue
            if metric in ("daemon_cpu", "daemon_peak_rss", "daemon_peak_anon"):
                info[(wl, metric)].setdefault(fs, []).append(value)
                continue
            rows.setdefault((wl, metric), {"better": better, "vals": defaultdict(list)})
            rows[(wl, metric)]["vals"][fs].append(value)
            units[(wl, metric)] = unit

    main_fs = "fext" if "fext" in fss else (fss[-1] if fss else "fext")
    others = [f for f in ("kernel", "fuse2fs") if f in fss and f != main_fs]
    head = ["workload", "metric", "unit"] + fss + [f"{main_fs}/{o}" for o in others]
    if "kernel" in others:
        head.append("target vs kernel")
    print("## Medians (ratios are throughput ratios: >1 means fext is faster)")
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for (wl, metric), row in rows.items():
        b = row["better"]
        meds = {fs: median(row["vals"].get(fs, []), b if b != "info" else "hi") for fs in fss}
        unit = units[(wl, metric)]
        arrow = {"hi": " (higher is better)", "lo": " (lower is better)"}.get(b, "")
        cells = [wl, metric, unit + arrow] + [fmt(meds[fs]) for fs in fss]
        for o in others:
            cells.append(ratio(meds.get(main_fs), meds.get(o), b))
        if "kernel" in others:
            t = target_for(wl, metric) if b in ("hi", "lo") else None
            if t is None:
                cells.append("")
            else:
                r = ratio(meds.get(main_fs), meds.get("kernel"), b)
                try:
                    ok = float(r) >= t
                except ValueError:
                    ok = r == ">>1"
                cells.append(f">= {t} {'met' if ok else 'MISSED'}")
        print("| " + " | ".join(cells) + " |")
    print()
    daemons = [f for f in fss if f != "kernel"]
    if info:
        print("## Daemon CPU time and peak memory per workload (medians over runs)")
        print()
        print("VmHWM counts the image pages a daemon maps (fext maps the whole image);")
        print("peak anon is RssAnon sampled every 100 ms: the daemon's own memory.")
        print()
        head = (["workload"] + [f"{f} CPU s" for f in daemons] + [f"{f} VmHWM MiB" for f in daemons]
                + [f"{f} peak anon MiB" for f in daemons])
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        wls = list(OrderedDict.fromkeys(wl for wl, _ in info))
        for wl in wls:
            cells = [wl]
            for metric in ("daemon_cpu", "daemon_peak_rss", "daemon_peak_anon"):
                for f in daemons:
                    cells.append(fmt(median(info.get((wl, metric), {}).get(f, []), "hi")))
            print("| " + " | ".join(cells) + " |")
        print()
    for (wl, metric), vals in series.items():
        print(f"## {wl}: {metric}")
        print()
        for fs, run, value in vals:
            print(f"- {fs} run {run}: {value}")
        print()


if __name__ == "__main__":
    main()
