#!/bin/bash
# bench/roundtrips.sh: time single workloads on fext, the kernel's ext4 and
# the no-op FUSE floor (bench/floor), and count fext's FUSE requests by
# opcode (`fext -o stats`). Run by hand, as root; for before/after
# comparisons of one change, not for the results table (bench/run.sh).
#
#   bench/roundtrips.sh [--fs fext,kernel,floor] [--runs N] [--fext-opts O]
#                       [--n N] [--tar FILE] WORKLOAD...
#
# File systems: fext (with -o stats), fextwb (the same with
# writeback_cache), kernel (loop mount), floor and floorwb (the no-op FUSE
# file system, examples/fext-floor, without and with the writeback cache;
# floornp: without default_permissions, i.e. no GETATTR of a directory
# after each change of it),
# base (FEXT_BASE=another fext binary, e.g. the commit before a change;
# options --fext-opts only).
#
# Workloads: create (N empty files, open O_CREAT|O_EXCL + close), touch (the
# same names with touch(1), 1,000 per call), stat (warm, after create),
# ls (ls -f of the N files, cold: remounted), find (find | wc -l, cold),
# statcold (stat of each, cold), unlink (cold), tar (extract --tar, default
# the bench's 3,000-file tar), rmrf (rm -rf of the extracted tar, cold),
# seqwrite (dd 1 GiB, 1 MiB blocks, conv=fsync), append (2,000 x (append
# 4 KiB + fsync)), readwarm (dd of a 1 GiB file read a second time, from
# the page cache); on the extracted --tar (give the bench's 40,000-file tar
# to compare with bench/run.sh): tfind (find | wc -l, cold), tdu (du -s
# after a find, as in the bench), tgrep (grep -r -F of an absent string,
# cold); mmapseq and mmaprand (a cold 256 MiB file written through a
# shared mapping, every page then 20,000 random pages, msync after each:
# the time of the one phase, as in the bench). The floor's files read back
# as zeros of their size.
#
# Each run starts from a fresh copy of one mkfs.ext4 image. Setup runs in
# one mount and the measured step in a fresh one, so the opcode table
# printed at unmount is that of the step alone (stat: create + stat). Prints one line
# per workload, file system and run (seconds), then medians, and the
# opcode tables of fext's last run.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/../target}
FEXT=${FEXT:-$TARGET_DIR/release/fext}
FLOOR=${FLOOR:-$TARGET_DIR/release/examples/fext-floor}
# --fs base: FEXT_BASE=/path/to/an/older/fext, without `-o stats`
FEXT_BASE=${FEXT_BASE:-}
STATS_OPT=${STATS_OPT-stats}
FSLIST=fext,kernel,floor
RUNS=3
FEXT_OPTS=""
N=20000
TAR=/var/tmp/fext-bench/tree-v2-3000-40.tar
WORK=${WORK:-/var/tmp/fext-roundtrips}
while [ $# -gt 0 ]; do
    case "$1" in
        --fs) FSLIST=$2; shift ;;
        --runs) RUNS=$2; shift ;;
        --fext-opts) FEXT_OPTS=$2; shift ;;
        --n) N=$2; shift ;;
        --tar) TAR=$2; shift ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
    shift
done
WORKLOADS=("$@")
[ ${#WORKLOADS[@]} -gt 0 ] || { sed -n 2,31p "$0"; exit 2; }
mkdir -p "$WORK"
MNT=$WORK/mnt
mkdir -p "$MNT"
IMG=$WORK/img
if [ ! -f "$WORK/base.img" ]; then
    truncate -s 4G "$WORK/base.img"
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$WORK/base.img"
fi
PY="python3 $HERE/py/fsops.py"
PID=""
STATS=$WORK/stats.txt

mount_it() { # fs
    case "$1" in
        kernel) mount -o loop "$IMG.kernel" "$MNT" ;;
        fext|fextwb)
            local o=$STATS_OPT${FEXT_OPTS:+,$FEXT_OPTS}
            [ "$1" = fextwb ] && o="$o,writeback_cache"
            o=${o#,}
            "$FEXT" "$IMG.$1" "$MNT" -f ${o:+-o "$o"} 2>"$STATS" &
            PID=$! ;;
        base)
            "$FEXT_BASE" "$IMG.base" "$MNT" -f ${FEXT_OPTS:+-o "$FEXT_OPTS"} 2>/dev/null &
            PID=$! ;;
        floor|floorwb|floornp)
            local fo=""
            case ",$FEXT_OPTS," in *,writeback_cache,*) fo=writeback_cache ;; esac
            [ "$1" = floorwb ] && fo=writeback_cache
            [ "$1" = floornp ] && fo=no_default_permissions
            "$FLOOR" "$MNT" ${fo:+-o $fo} 2>/dev/null &
            PID=$! ;;
    esac
    local i
    for i in $(seq 1 200); do
        grep -q " $MNT " /proc/mounts && return 0
        sleep 0.05
    done
    echo "mount of $1 failed" >&2
    exit 1
}

unmount_it() {
    umount "$MNT" || umount -l "$MNT"
    if [ -n "$PID" ]; then wait "$PID"; PID=""; fi
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

now() { date +%s.%N; }
# fsops.py output -> elapsed seconds
elapsed() { awk '$1 == "elapsed" { print $2 }'; }

# setup for a workload (in its own mount); prints nothing
setup() { # workload
    case "$1" in
        ls|find|statcold|unlink) mkdir -p "$MNT/d"; $PY create "$MNT/d" "$N" >/dev/null ;;
        rmrf|tfind|tdu|tgrep) mkdir -p "$MNT/t"; tar -xf "$TAR" -C "$MNT/t" ;;
        readwarm) dd if=/dev/urandom of="$MNT/big" bs=1M count=1024 status=none ;;
        mmapseq|mmaprand) dd if=/dev/urandom of="$MNT/mm" bs=1M count=256 status=none ;;
        *) return 1 ;;
    esac
}

# the measured step; prints its seconds
step() { # workload
    local t0 t1 o
    case "$1" in
        create) mkdir -p "$MNT/d"; $PY create "$MNT/d" "$N" | elapsed ;;
        touch)
            mkdir -p "$MNT/d"; cd "$MNT/d" || exit 1
            t0=$(now)
            seq -f "f%06g" 0 $((N - 1)) | xargs -n 1000 touch
            t1=$(now); cd / || exit 1
            echo "$t1 - $t0" | bc ;;
        stat) mkdir -p "$MNT/d"; $PY create "$MNT/d" "$N" >/dev/null; $PY stat "$MNT/d" "$N" | elapsed ;;
        statcold) $PY stat "$MNT/d" "$N" | elapsed ;;
        ls) t0=$(now); ls -f "$MNT/d" | wc -l >/dev/null; t1=$(now); echo "$t1 - $t0" | bc ;;
        find) t0=$(now); find "$MNT/d" | wc -l >/dev/null; t1=$(now); echo "$t1 - $t0" | bc ;;
        unlink) $PY unlink "$MNT/d" "$N" | elapsed ;;
        tar) mkdir -p "$MNT/t"; t0=$(now); tar -xf "$TAR" -C "$MNT/t"; t1=$(now); echo "$t1 - $t0" | bc ;;
        rmrf) t0=$(now); rm -rf "$MNT/t"; t1=$(now); echo "$t1 - $t0" | bc ;;
        tfind) t0=$(now); find "$MNT/t" | wc -l >/dev/null; t1=$(now); echo "$t1 - $t0" | bc ;;
        tdu)
            find "$MNT/t" >/dev/null
            t0=$(now); du -s "$MNT/t" >/dev/null; t1=$(now); echo "$t1 - $t0" | bc ;;
        tgrep) t0=$(now); grep -r -F -q "fext-absent-string-8d1c" "$MNT/t"; t1=$(now); echo "$t1 - $t0" | bc ;;
        mmapseq) $PY mmap-write "$MNT/mm" 20000 | awk '$1 == "seq_elapsed" { print $2 }' ;;
        mmaprand) $PY mmap-write "$MNT/mm" 20000 | awk '$1 == "rand_elapsed" { print $2 }' ;;
        readwarm)
            dd if="$MNT/big" of=/dev/null bs=1M status=none
            t0=$(now); dd if="$MNT/big" of=/dev/null bs=1M status=none; t1=$(now)
            echo "$t1 - $t0" | bc ;;
        seqwrite)
            t0=$(now)
            dd if=/dev/zero of="$MNT/big" bs=1M count=1024 conv=fsync status=none
            t1=$(now); echo "$t1 - $t0" | bc ;;
        append) $PY append-fsync "$MNT/app" 2000 4096 | elapsed ;;
        *) echo "unknown workload $1" >&2; exit 2 ;;
    esac
}

declare -A TIMES
for w in "${WORKLOADS[@]}"; do
    for r in $(seq 1 "$RUNS"); do
        for fs in ${FSLIST//,/ }; do
            case "$fs" in floor*) ;; *) cp --sparse=always "$WORK/base.img" "$IMG.$fs" ;; esac
            needs_setup=0
            # stat creates its own files in the measured mount (setup's
            # first arm serves the cold workloads only).
            case "$w" in ls|find|statcold|unlink|rmrf|tfind|tdu|tgrep|readwarm|mmapseq|mmaprand) needs_setup=1 ;; esac
            if [ "${fs#floor}" != "$fs" ] && [ $needs_setup = 1 ]; then
                # in memory only: set up in the same mount, then drop the
                # kernel's caches
                mount_it "$fs"; setup "$w"; sync; echo 3 >/proc/sys/vm/drop_caches
            elif [ $needs_setup = 1 ]; then
                mount_it "$fs"; setup "$w"; unmount_it; mount_it "$fs"
            else
                mount_it "$fs"
            fi
            t=$(step "$w")
            unmount_it
            TIMES[$w.$fs]="${TIMES[$w.$fs]:-} $t"
            printf '%-9s %-6s run %d: %s s\n' "$w" "$fs" "$r" "$t"
            case "$fs" in fext|fextwb) cp "$STATS" "$WORK/stats-$w-$fs.txt" ;; esac
            rm -f "$IMG.$fs"
        done
    done
done
echo
echo "medians (s); N=$N; fext $FEXT -o $STATS_OPT${FEXT_OPTS:+,$FEXT_OPTS}"
for w in "${WORKLOADS[@]}"; do
    line=$(printf '%-9s' "$w")
    for fs in ${FSLIST//,/ }; do
        m=$(echo ${TIMES[$w.$fs]:-} | tr ' ' '\n' | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "-" }')
        line="$line $(printf '%s=%-10s' "$fs" "$m")"
    done
    echo "$line"
done
for w in "${WORKLOADS[@]}"; do
    for fs in fext fextwb; do
        [ -f "$WORK/stats-$w-$fs.txt" ] || continue
        echo; echo "== $fs $w"; grep -v -e "^$" -e WARN "$WORK/stats-$w-$fs.txt"
    done
done
