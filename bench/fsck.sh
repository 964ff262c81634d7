#!/usr/bin/env bash
# Benchmark (run by hand, not in CI): fsck-fext -fn against e2fsck -fn on a
# 4 GiB ext4 image holding 100,000 files, made by mkfs.fext -d from a
# generated tree. Three timed runs of each with the image in the page
# cache (after one warm-up run) and three with its pages dropped first
# ("cold"); medians of wall and CPU time, as a Markdown table.
#
# Usage: bench/fsck.sh [WORKDIR]   (default: a new temp dir, removed at exit)
# Env:   FILES (100000), DIRS (500), SIZE (4G), RUNS (3), KEEP=1 keeps WORKDIR.
# Needs: python3, GNU time (/usr/bin/time), GNU dd, e2fsck.
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=${FILES:-100000}
DIRS=${DIRS:-500}
SIZE=${SIZE:-4G}
RUNS=${RUNS:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
export E2FSCK_CONFIG=/dev/null

cargo build --release -q -p fext-fsck -p fext-mkfs
FSCK="$CARGO_TARGET_DIR/release/fsck-fext"
MKFS="$CARGO_TARGET_DIR/release/mkfs-fext"

if [ $# -ge 1 ]; then
  W=$1; mkdir -p "$W"
else
  W=$(mktemp -d /tmp/fsck-bench.XXXXXX)
  [ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$W"' EXIT
fi
TREE=$W/tree
IMG=$W/bench.img

if [ ! -f "$IMG" ]; then
  echo "generating $FILES files in $DIRS directories under $TREE" >&2
  rm -rf "$TREE"
  python3 - "$TREE" "$FILES" "$DIRS" <<'PY'
import os, random, sys
root, files, dirs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(42)
blob = bytes(rnd.getrandbits(8) for _ in range(1 << 16))
per = max(1, files // dirs)
n = 0
for d in range(dirs):
    # Two levels: 20 top directories, the rest spread below them.
    path = os.path.join(root, f"top{d % 20:02d}", f"dir{d:05d}")
    os.makedirs(path, exist_ok=True)
    for i in range(per if d < dirs - 1 else files - n):
        # Mostly small files, a few larger ones (0 B .. 64 KiB).
        size = rnd.choice((0, 100, 900, 3000, 5000, 9000, 20000, 65536))
        with open(os.path.join(path, f"file-{i:05d}-{rnd.getrandbits(24):06x}"), "wb") as f:
            f.write(blob[:size])
        n += 1
        if n >= files:
            break
    if n >= files:
        break
PY
  echo "making $IMG ($SIZE) with mkfs.fext -d" >&2
  "$MKFS" -q -F -t ext4 -d "$TREE" "$IMG" "$SIZE"
  rm -rf "$TREE"
fi

# Both checkers must find it clean.
"$FSCK" -fn "$IMG" >&2
e2fsck -fn "$IMG" >/dev/null 2>&1 || { echo "e2fsck -fn: not clean" >&2; exit 1; }

# One timed run: prints "wall cpu" in seconds (cpu = user + sys).
time_one() {
  local f
  f=$(mktemp)
  /usr/bin/time -f "%e %U %S" -o "$f" "$@" >/dev/null 2>&1 || true
  awk '{printf "%.3f %.3f\n", $1, $2 + $3}' "$f"
  rm -f "$f"
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# Drops the image's pages from the page cache (only this file's).
drop_cache() { dd if="$IMG" iflag=nocache count=0 status=none; }

declare -A ROW
for tool in fsck-fext e2fsck; do
  if [ $tool = fsck-fext ]; then cmd=("$FSCK" -fn "$IMG"); else cmd=(e2fsck -fn "$IMG"); fi
  for cache in warm cold; do
    [ $cache = warm ] && time_one "${cmd[@]}" >/dev/null   # warm-up
    walls=(); cpus=()
    for _ in $(seq "$RUNS"); do
      [ $cache = cold ] && drop_cache
      read -r w c < <(time_one "${cmd[@]}")
      walls+=("$w"); cpus+=("$c")
    done
    ROW[$tool-$cache]="$(printf '%s\n' "${walls[@]}" | median) $(printf '%s\n' "${cpus[@]}" | median) ${walls[*]}"
  done
done

echo
echo "Image: $SIZE, $FILES files in $DIRS directories ($(du -h "$IMG" | cut -f1) allocated); $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| checker | page cache | median wall (s) | median CPU user+sys (s) | wall of each run (s) |"
echo "|---|---|---:|---:|---|"
for tool in fsck-fext e2fsck; do
  for cache in warm cold; do
    set -- ${ROW[$tool-$cache]}
    w=$1; c=$2; shift 2
    printf '| %s -fn | %s | %.3f | %.3f | %s |\n' "$tool" "$cache" "$w" "$c" "$*"
  done
done
