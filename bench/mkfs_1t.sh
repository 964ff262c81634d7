#!/usr/bin/env bash
# Benchmark (run by hand, not in CI): format a 1 TiB sparse image with the
# release mkfs.fext and with mkfs.ext4 (lazy inode table init, as the issue
# asks; and with a lazily initialised journal too, for reference), RUNS
# times each (default 5, the tools taking turns), and print the median and
# minimum wall time and the disk space the image takes (du), side by side,
# from one run of this script.
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

names=(
  "mkfs.fext (release)"
  "mkfs.ext4 -E lazy_itable_init=1"
  "mkfs.ext4 -E lazy_itable_init=1,lazy_journal_init=1"
)
cmds=(
  "$mkfs_fext -q -F $img 1T"
  "mkfs.ext4 -q -F -E lazy_itable_init=1 $img 1T"
  "mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 $img 1T"
)

# Rounds interleave the commands, so a busy machine slows all alike.
declare -A times du_kib
for _ in $(seq "$runs"); do
  for i in "${!cmds[@]}"; do
    rm -f "$img"
    sync
    t0=$(date +%s%N)
    # shellcheck disable=SC2086 # the command line is split on purpose
    ${cmds[$i]} >/dev/null 2>&1 || { echo "failed: ${cmds[$i]}" >&2; exit 1; }
    t1=$(date +%s%N)
    times[$i]="${times[$i]:-} $(( (t1 - t0) / 1000 ))"
    du_kib[$i]=$(du -k "$img" | cut -f1)
  done
done

echo "1 TiB sparse image in $dir, $runs runs each; $(mkfs.ext4 -V 2>&1 | head -1); $(uname -sr)"
printf '%-54s %11s %11s %11s\n' "command" "median (s)" "min (s)" "disk used"
for i in "${!cmds[@]}"; do
  # shellcheck disable=SC2086
  read -r median min < <(printf '%s\n' ${times[$i]} | sort -n |
    awk '{a[NR]=$1} END {printf "%.3f %.3f\n", a[int((NR+1)/2)] / 1e6, a[1] / 1e6}')
  printf '%-54s %11s %11s %7d MiB\n' "${names[$i]}" "$median" "$min" "$(( ${du_kib[$i]} / 1024 ))"
done
