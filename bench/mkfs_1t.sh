#!/usr/bin/env bash
# Benchmark (run by hand, not in CI): format a 1 TiB sparse image with the
# release mkfs.fext and with mkfs.ext4 (lazy inode table init, as the issue
# asks; and with a lazily initialised journal too, for reference), RUNS
# times each (default 5), and print the median wall time and the disk space
# the image takes (du), side by side, from one run of this script.
#
#   bench/mkfs_1t.sh [DIR] [RUNS]      DIR: where the image goes ($TMPDIR or /tmp)
#
# Both tools fsync the image before they exit, so the times include
# writing to disk. The file system holding DIR must support sparse files
# of 1 TiB (ext4, xfs, btrfs, tmpfs do).
set -euo pipefail

dir="${1:-${TMPDIR:-/tmp}}"
runs="${2:-5}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}/release"
export PATH="$PATH:/usr/sbin:/sbin"

(cd "$repo" && cargo build --release -q -p fext-mkfs)
mkfs_fext="$target/mkfs-fext"
command -v mkfs.ext4 >/dev/null || { echo "mkfs.ext4 not found (install e2fsprogs)" >&2; exit 1; }

img="$dir/fext-bench-$$.img"
trap 'rm -f "$img"' EXIT

# run NAME CMD...: format $img RUNS times; prints "median_seconds du_kib".
run() {
  local times=() du_kib=0 t0 t1
  for _ in $(seq "$runs"); do
    rm -f "$img"
    sync
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; "$@" >&2 || true; exit 1; }
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000 )))
    du_kib=$(du -k "$img" | cut -f1)
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  awk -v us="$median" -v du="$du_kib" 'BEGIN {printf "%.3f %d\n", us / 1e6, du}'
}

echo "1 TiB sparse image in $dir, $runs runs each; $(mkfs.ext4 -V 2>&1 | head -1); $(uname -sr)"
printf '%-58s %12s %14s\n' "command" "median (s)" "disk used"
for spec in \
  "mkfs.fext (release)|$mkfs_fext -q -F $img 1T" \
  "mkfs.ext4 -E lazy_itable_init=1|mkfs.ext4 -q -F -E lazy_itable_init=1 $img 1T" \
  "mkfs.ext4 -E lazy_itable_init=1,lazy_journal_init=1|mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 $img 1T"
do
  name="${spec%%|*}"
  cmd="${spec#*|}"
  # shellcheck disable=SC2086 # the command line is split on purpose
  read -r secs kib < <(run $cmd)
  printf '%-58s %12s %11s MiB\n' "$name" "$secs" "$(( kib / 1024 ))"
done
