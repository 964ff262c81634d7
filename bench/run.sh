#!/usr/bin/env bash
# fext benchmark: the same workloads on fext, fuse2fs and the kernel's ext4,
# each on its own copy of one mkfs.ext4 image, in one run on one machine.
# Run by hand, as root, never in CI. See bench/README.md.
#
#   bench/run.sh [--runs N] [--only a,b,...] [--fs kernel,fuse2fs,fext[,fextm]]
#                [--quick] [--workdir DIR] [--fext-opts OPTS] [--step-timeout S]
#                [--cold remount|drop] [--keep] [--list] [--profile opcodes|strace|perf]
#
# Results: a TSV of every measurement and bench/results/RESULTS-<date>.md with
# the table of medians, the ratios and the machine description.

set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PY="python3 $HERE/py/fsops.py"

RUNS=3
ONLY=""
FSLIST="kernel,fuse2fs,fext"
QUICK=0
WORKDIR=/var/tmp/fext-bench
FEXT_OPTS=""
STEP_TIMEOUT=300
COLD=remount
KEEP=0
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
FEXT_BIN=""
MKFS_FEXT_BIN=""
OUT_DIR="$HERE/results"
TAG=""
PROFILE=""
PERF_PID=""

ALL_WORKLOADS="seqio fio mmap meta tree tar append scale_create mount_time sparse floor"

usage() { sed -n '2,12p' "$0"; echo "workloads: $ALL_WORKLOADS"; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift ;;
        --only) ONLY=$2; shift ;;
        --fs) FSLIST=$2; shift ;;
        --quick) QUICK=1 ;;
        --workdir) WORKDIR=$2; shift ;;
        --fext-opts) FEXT_OPTS=$2; shift ;;
        --fext) FEXT_BIN=$2; shift ;;
        --mkfs-fext) MKFS_FEXT_BIN=$2; shift ;;
        --step-timeout) STEP_TIMEOUT=$2; shift ;;
        --cold) COLD=$2; shift ;;
        --keep) KEEP=1 ;;
        --out) OUT_DIR=$2; shift ;;
        --tag) TAG=$2; shift ;;
        --profile) PROFILE=$2; shift ;;
        --list) echo "$ALL_WORKLOADS"; exit 0 ;;
        -h|--help) usage 0 ;;
        *) echo "unknown argument $1" >&2; usage 2 ;;
    esac
    shift
done

FEXT_GIVEN=${FEXT_BIN:+1}
FEXT_BIN=${FEXT_BIN:-$TARGET_DIR/release/fext}
MKFS_FEXT_BIN=${MKFS_FEXT_BIN:-$TARGET_DIR/release/mkfs-fext}

# ---------------------------------------------------------------- sizes
if [ "$QUICK" = 1 ]; then
    IMG_SIZE=1G; SEQ_MB=64; FIO_FILE_MB=32; FIO_IO_MB=8; FIO_RT=2
    MMAP_MB=32; MMAP_RAND=2000; META_N=2000; TREE_DIRS=10; TREE_FILES=50
    TAR_FILES=3000; TAR_MB=40; APPEND_N=200; SCALE_N=10000; SCALE_STEP=1000
    SPARSE_N=2000; FLOOR_N=5000; BIG_IMG=64G
else
    IMG_SIZE=4G; SEQ_MB=1024; FIO_FILE_MB=256; FIO_IO_MB=64; FIO_RT=5
    MMAP_MB=256; MMAP_RAND=20000; META_N=20000; TREE_DIRS=100; TREE_FILES=200
    TAR_FILES=40000; TAR_MB=500; APPEND_N=2000; SCALE_N=100000; SCALE_STEP=10000
    SPARSE_N=20000; FLOOR_N=20000; BIG_IMG=1T
fi
SPARSE_SPAN=$((8 << 30))

IFS=, read -r -a FS_ARR <<<"$FSLIST"
if [ -n "$ONLY" ]; then IFS=, read -r -a WL_ARR <<<"$ONLY"; else read -r -a WL_ARR <<<"$ALL_WORKLOADS"; fi
for w in "${WL_ARR[@]}"; do
    case " $ALL_WORKLOADS " in *" $w "*) ;; *) echo "unknown workload $w (have: $ALL_WORKLOADS)" >&2; exit 2 ;; esac
done

[ "$(id -u)" = 0 ] || { echo "run as root (loop mounts, drop_caches, FUSE)" >&2; exit 2; }
for t in fio fuse2fs mkfs.ext4 debugfs losetup python3 timeout; do
    command -v "$t" >/dev/null || { echo "missing $t (apt-get install -y fio fuse2fs e2fsprogs)" >&2; exit 2; }
done
[ -x "$FEXT_BIN" ] || { echo "no fext binary at $FEXT_BIN (cargo build --release --workspace)" >&2; exit 2; }
# The results name the repository's commit: a binary older than its
# sources would measure other code under that name (--fext names a binary
# on purpose and is taken as it is).
if [ -z "$FEXT_GIVEN" ] && [ -n "$(find "$REPO/src" "$REPO/Cargo.toml" "$REPO/Cargo.lock" -newer "$FEXT_BIN" -print -quit 2>/dev/null)" ]; then
    echo "$FEXT_BIN is older than the sources in $REPO: run cargo build --release --workspace (with CARGO_TARGET_DIR=$TARGET_DIR) first" >&2
    exit 2
fi

STAMP=$(date +%Y%m%d-%H%M%S)
DATE_TAG=$(date +%Y-%m-%d)${TAG:+-$TAG}
RUN_DIR=$WORKDIR/run-$STAMP
mkdir -p "$RUN_DIR" "$OUT_DIR"
TSV=$RUN_DIR/results.tsv
LOG=$RUN_DIR/log.txt
: >"$TSV"
CLK_TCK=$(getconf CLK_TCK)

say() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }

# ---------------------------------------------------------------- mounts
declare -A IMG MNT PID SKIP CPU_ACC CPU_BASE HWM
MOUNTS_DONE=0
fs_image() { echo "$RUN_DIR/$1.img"; }

is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }

# cpu ticks (utime + stime) of a pid
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
vm_hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

mount_fs() { # name [extra fext/fuse2fs -o options]
    local fs=$1 extra=${2:-} img=${IMG[$1]} mnt=${MNT[$1]} i
    case "$fs" in
        kernel)
            mount -o loop "$img" "$mnt" || return 1
            PID[$fs]="" ;;
        fext|fextm)
            local o=$FEXT_OPTS
            [ -n "$extra" ] && o=${o:+$o,}$extra
            local log=${FEXT_LOG:-warn} wrap=()
            MOUNTS_DONE=$((MOUNTS_DONE + 1))
            case "$PROFILE" in
                opcodes) log="warn,fuser::request=debug" ;;
                strace) wrap=(strace -c -f -o "$RUN_DIR/strace-$fs-$(printf %04d $MOUNTS_DONE).txt") ;;
            esac
            RUST_LOG=$log "${wrap[@]}" "$FEXT_BIN" "$img" "$mnt" -f ${o:+-o "$o"} 2>>"$RUN_DIR/$fs.stderr" &
            PID[$fs]=$! ;;
        fuse2fs)
            fuse2fs "$img" "$mnt" -f ${extra:+-o "$extra"} >>"$RUN_DIR/$fs.stderr" 2>&1 &
            PID[$fs]=$! ;;
    esac
    for i in $(seq 1 600); do
        is_mounted "$mnt" && break
        if [ -n "${PID[$fs]}" ] && ! kill -0 "${PID[$fs]}" 2>/dev/null; then
            say "mount of $fs failed (see $RUN_DIR/$fs.stderr)"; PID[$fs]=""; return 1
        fi
        sleep 0.05
    done
    is_mounted "$mnt" || { say "mount of $fs timed out"; return 1; }
    [ -n "${PID[$fs]}" ] && CPU_BASE[$fs]=$(cpu_ticks "${PID[$fs]}")
    echo "${PID[$fs]}" >"$RUN_DIR/pid-$fs"
    return 0
}

# Unmount and wait for the daemon to exit (it writes everything back first).
unmount_fs() {
    local fs=$1 mnt=${MNT[$1]} pid=${PID[$1]:-} i
    if [ -n "$pid" ]; then
        stats_sample "$fs"
    fi
    if is_mounted "$mnt"; then
        umount "$mnt" 2>>"$LOG" || { sleep 1; umount "$mnt" 2>>"$LOG" || umount -l "$mnt"; }
    fi
    if [ -n "$pid" ]; then
        for i in $(seq 1 3000); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then say "WARNING: $fs daemon $pid still alive 300 s after umount"; fi
        wait "$pid" 2>/dev/null
        local rc=$?
        [ "$rc" = 0 ] || say "WARNING: $fs daemon exited with status $rc"
        PID[$fs]=""
    fi
    return 0
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# Make the next access cold: by default unmount + drop caches + mount, so
# that neither the kernel's page cache nor a daemon's own caches (fext maps
# the image: mapped pages survive drop_caches) hold the data.
cold() {
    local fs=$1
    if [ "$COLD" = drop ]; then drop_caches; return 0; fi
    unmount_fs "$fs"
    drop_caches
    mount_fs "$fs"
}

# Peak anonymous RSS (the daemon's own memory: caches, buffers; VmHWM also
# counts the pages of the image it maps), sampled every 100 ms by a
# background loop that follows remounts through $RUN_DIR/pid-FS.
declare -A SAMPLER
sampler_start() {
    local fs=$1
    echo 0 >"$RUN_DIR/anon-$fs"
    (
        max=0
        while :; do
            p=$(cat "$RUN_DIR/pid-$fs" 2>/dev/null)
            v=$(awk '/^RssAnon/ { print $2 }' "/proc/$p/status" 2>/dev/null)
            if [ -n "$v" ] && [ "$v" -gt "$max" ]; then max=$v; echo "$max" >"$RUN_DIR/anon-$fs"; fi
            sleep 0.1
        done
    ) &
    SAMPLER[$fs]=$!
}
sampler_stop() {
    local fs=$1
    [ -n "${SAMPLER[$fs]:-}" ] || return 0
    kill "${SAMPLER[$fs]}" 2>/dev/null; wait "${SAMPLER[$fs]}" 2>/dev/null
    SAMPLER[$fs]=""
}

# Daemon CPU time and peak RSS over one workload, across remounts.
stats_begin() {
    local fs=$1 pid=${PID[$1]:-}
    CPU_ACC[$fs]=0; HWM[$fs]=0
    [ "$fs" = kernel ] || sampler_start "$fs"
    if [ -n "$pid" ]; then
        echo 5 >"/proc/$pid/clear_refs" 2>/dev/null
        CPU_BASE[$fs]=$(cpu_ticks "$pid")
    fi
}
stats_sample() { # fold the current daemon's counters in (before it goes away)
    local fs=$1 pid=${PID[$1]:-}
    [ -n "$pid" ] || return 0
    local now h
    now=$(cpu_ticks "$pid"); h=$(vm_hwm_kib "$pid")
    CPU_ACC[$fs]=$(( ${CPU_ACC[$fs]:-0} + now - ${CPU_BASE[$fs]:-$now} ))
    CPU_BASE[$fs]=$now
    [ "$h" -gt "${HWM[$fs]:-0}" ] && HWM[$fs]=$h
    return 0
}
stats_end() { # wl fs run
    local wl=$1 fs=$2 run=$3
    [ "$fs" = kernel ] && return 0
    stats_sample "$fs"
    sampler_stop "$fs"
    record "$wl" daemon_peak_anon "$fs" "$run" "$(( $(cat "$RUN_DIR/anon-$fs" 2>/dev/null || echo 0) / 1024 ))" MiB info
    record "$wl" daemon_cpu "$fs" "$run" "$(awk -v t="${CPU_ACC[$fs]}" -v h="$CLK_TCK" 'BEGIN { printf "%.2f", t / h }')" s info
    record "$wl" daemon_peak_rss "$fs" "$run" "$(( ${HWM[$fs]:-0} / 1024 ))" MiB info
}

cleanup() {
    local fs
    trap - EXIT INT TERM
    say "cleanup: unmounting"
    for fs in "${!SAMPLER[@]}"; do sampler_stop "$fs"; done
    [ -n "$PERF_PID" ] && { kill -INT "$PERF_PID" 2>/dev/null; wait "$PERF_PID" 2>/dev/null; }
    for fs in "${!MNT[@]}"; do
        unmount_fs "$fs" 2>/dev/null
    done
    for m in "$RUN_DIR/mnt-big"; do
        is_mounted "$m" && umount "$m"
    done
    wait_big_daemon
    local l
    for l in $(losetup -j "$RUN_DIR" -O NAME -n 2>/dev/null; losetup -a | awk -F: -v d="$RUN_DIR" 'index($0, d) { print $1 }'); do
        losetup -d "$l" 2>/dev/null
    done
    if [ "$KEEP" = 0 ]; then
        rm -f "$RUN_DIR"/*.img
    fi
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- recording
record() { # wl metric fs run value unit better(hi|lo|info)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$TSV"
}
kv() { awk -v k="$1" '$1 == k { print $2 }' <<<"$2"; }
rate() { awk -v n="$1" -v t="$2" 'BEGIN { if (t > 0) printf "%.1f", n / t; else print "nan" }'; }
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.6f", b - a }'; }

# Runs "$@" with the step timeout; prints elapsed seconds, or "timeout".
timed() {
    local t0 rc
    t0=$(now)
    timeout "$STEP_TIMEOUT" "$@" >>"$LOG" 2>&1
    rc=$?
    if [ $rc = 124 ] || [ $rc = 137 ]; then echo timeout; else since "$t0"; fi
}
py() { timeout $((STEP_TIMEOUT + 30)) $PY --deadline "$STEP_TIMEOUT" "$@" 2>>"$LOG"; }
is_to() { [ "$1" = timeout ] || [ -z "$1" ]; }
# record a time-measured result; marks the workload skipped for fs on timeout
rec_time() { # wl metric fs run seconds
    if is_to "$5"; then record "$1" "$2" "$3" "$4" timeout s lo; SKIP[$1:$3]=1; else record "$1" "$2" "$3" "$4" "$5" s lo; fi
}
rec_rate() { # wl metric fs run count seconds unit
    if is_to "$6"; then record "$1" "$2" "$3" "$4" timeout "$7" hi; SKIP[$1:$3]=1; else record "$1" "$2" "$3" "$4" "$(rate "$5" "$6")" "$7" hi; fi
}
# from fsops output: records count/elapsed unless it timed out
rec_py_rate() { # wl metric fs run output unit
    if [ -n "$(kv timeout "$5")" ] || [ -z "$(kv elapsed "$5")" ]; then
        record "$1" "$2" "$3" "$4" timeout "$6" hi; SKIP[$1:$3]=1
    else
        record "$1" "$2" "$3" "$4" "$(rate "$(kv count "$5")" "$(kv elapsed "$5")")" "$6" hi
    fi
}

# After a timeout the file system is slow at this: leave the files (renamed)
# rather than spend another step timeout removing them.
leave_or_remove() { # dir wl fs run
    [ -e "$1" ] || return 0
    if [ -n "${SKIP[$2:$3]:-}" ]; then mv "$1" "$1.leftover-$4"; else timeout "$STEP_TIMEOUT" rm -rf "$1"; fi
}

# ---------------------------------------------------------------- workloads
# Each wl_NAME FS MNT RUN works in its own directory and leaves the file
# system as it found it (except for what the kernel or the daemon keep).

wl_seqio() {
    local fs=$1 m=$2 r=$3 d=$2/seqio t
    mkdir -p "$d"
    t=$(timed dd if=/dev/zero of="$d/big" bs=1M count="$SEQ_MB" conv=fsync)
    rec_rate seqio "write ${SEQ_MB}MiB 1MiB blocks + fsync" "$fs" "$r" "$SEQ_MB" "$t" MiB/s
    if [ -z "${SKIP[seqio:$fs]:-}" ]; then
        cold "$fs"
        t=$(timed dd if="$d/big" of=/dev/null bs=1M)
        rec_rate seqio "read cold" "$fs" "$r" "$SEQ_MB" "$t" MiB/s
        t=$(timed dd if="$d/big" of=/dev/null bs=1M)
        rec_rate seqio "read warm" "$fs" "$r" "$SEQ_MB" "$t" MiB/s
    fi
    rm -rf "$d"
}

fio_one() { # fs run label rw jobs direct
    local fs=$1 r=$2 label=$3 rw=$4 jobs=$5 direct=$6 f=${MNT[$1]}/fio/file js t0 t
    cold "$fs"
    js=$RUN_DIR/fio-$fs-$r-$rw-$jobs-$direct.json
    local extra=()
    [ "$rw" = randwrite ] && extra=(--end_fsync=1)
    t0=$(now)
    timeout $((STEP_TIMEOUT)) fio --name=b --filename="$f" --rw="$rw" --bs=4k --size="${FIO_FILE_MB}m" \
        --io_size="${FIO_IO_MB}m" --runtime="$FIO_RT" --ioengine=psync --direct="$direct" \
        --numjobs="$jobs" --group_reporting --randseed=42 --output-format=json "${extra[@]}" \
        >"$js" 2>>"$LOG"
    local rc=$?
    t=$(since "$t0")
    if [ $rc != 0 ]; then
        say "fio $label on $fs failed (rc $rc)"; record fio "$label" "$fs" "$r" timeout IOPS hi; return
    fi
    local ios
    if [ "$rw" = randwrite ]; then
        # includes the final fsync: the write is not done until it is durable
        ios=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(sum(x["write"]["total_ios"] for x in j["jobs"]))' "$js")
        record fio "$label" "$fs" "$r" "$(rate "$ios" "$t")" IOPS hi
    else
        ios=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("%.1f" % sum(x["read"]["iops"] for x in j["jobs"]))' "$js")
        record fio "$label" "$fs" "$r" "$ios" IOPS hi
    fi
}

wl_fio() {
    local fs=$1 m=$2 r=$3 d=$2/fio
    mkdir -p "$d"
    timeout "$STEP_TIMEOUT" dd if=/dev/urandom of="$d/file" bs=1M count="$FIO_FILE_MB" conv=fsync 2>>"$LOG" || { record fio "layout" "$fs" "$r" timeout s lo; return; }
    fio_one "$fs" "$r" "randread 4k buffered 1 job" randread 1 0
    fio_one "$fs" "$r" "randread 4k buffered 2 jobs" randread 2 0
    fio_one "$fs" "$r" "randread 4k O_DIRECT 1 job" randread 1 1
    fio_one "$fs" "$r" "randread 4k O_DIRECT 2 jobs" randread 2 1
    fio_one "$fs" "$r" "randwrite 4k + end fsync 1 job" randwrite 1 0
    fio_one "$fs" "$r" "randwrite 4k + end fsync 2 jobs" randwrite 2 0
    rm -rf "$d"
}

wl_mmap() {
    local fs=$1 m=$2 r=$3 d=$2/mmap o
    mkdir -p "$d"
    timeout "$STEP_TIMEOUT" dd if=/dev/urandom of="$d/file" bs=1M count="$MMAP_MB" conv=fsync 2>>"$LOG"
    cold "$fs"
    o=$(py mmap-seqread "$d/file")
    if [ -n "$(kv elapsed "$o")" ]; then record mmap "seq read cold" "$fs" "$r" "$(rate "$MMAP_MB" "$(kv elapsed "$o")")" MiB/s hi
    else record mmap "seq read cold" "$fs" "$r" timeout MiB/s hi; fi
    cold "$fs"
    o=$(py mmap-randread "$d/file" "$MMAP_RAND")
    rec_py_rate mmap "rand 4k page read cold" "$fs" "$r" "$o" pages/s
    cold "$fs"
    o=$(py mmap-write "$d/file" "$MMAP_RAND")
    if [ -n "$(kv seq_elapsed "$o")" ]; then
        record mmap "shared write seq + msync" "$fs" "$r" "$(rate "$MMAP_MB" "$(kv seq_elapsed "$o")")" MiB/s hi
        record mmap "shared write rand 4k + msync" "$fs" "$r" "$(rate "$(kv count "$o")" "$(kv rand_elapsed "$o")")" pages/s hi
    else
        record mmap "shared write seq + msync" "$fs" "$r" timeout MiB/s hi
    fi
    rm -rf "$d"
}

wl_meta() {
    local fs=$1 m=$2 r=$3 d=$2/meta o
    mkdir -p "$d"
    o=$(py create "$d" "$META_N"); rec_py_rate meta "create ${META_N} in 1 dir" "$fs" "$r" "$o" files/s
    if [ -z "${SKIP[meta:$fs]:-}" ]; then
        o=$(py stat "$d" "$META_N"); rec_py_rate meta "stat warm (first stat after create)" "$fs" "$r" "$o" files/s
        o=$(py stat "$d" "$META_N"); rec_py_rate meta "stat warm again (attrs cached if < ttl)" "$fs" "$r" "$o" files/s
        cold "$fs"
        o=$(py readdir "$d"); rec_py_rate meta "readdir cold" "$fs" "$r" "$o" entries/s
        cold "$fs"
        o=$(py stat "$d" "$META_N"); rec_py_rate meta "stat cold" "$fs" "$r" "$o" files/s
        o=$(py unlink "$d" "$META_N"); rec_py_rate meta "unlink" "$fs" "$r" "$o" files/s
    fi
    leave_or_remove "$d" meta "$fs" "$r"
}

wl_tree() {
    local fs=$1 m=$2 r=$3 d=$2/tree o t n=$((TREE_DIRS * TREE_FILES))
    mkdir -p "$d"
    o=$(py tree-create "$d" "$TREE_DIRS" "$TREE_FILES" 4096)
    rec_py_rate tree "create ${TREE_DIRS}x${TREE_FILES} x 4KiB" "$fs" "$r" "$o" files/s
    if [ -z "${SKIP[tree:$fs]:-}" ]; then
        cold "$fs"
        o=$(py tree-read "$d"); rec_py_rate tree "read cold" "$fs" "$r" "$o" files/s
        t=$(timed rm -rf "$d"); rec_rate tree "rm -rf" "$fs" "$r" "$n" "$t" files/s
    fi
    leave_or_remove "$d" tree "$fs" "$r"
}

TARBALL=""
TAR_COUNT=0
make_tarball() {
    TARBALL=$WORKDIR/tree-v2-$TAR_FILES-$TAR_MB.tar
    if [ ! -s "$TARBALL" ]; then
        say "building $TARBALL (once; kept for later runs)"
        python3 "$HERE/py/mktar.py" "$TARBALL" "$TAR_FILES" "$TAR_MB" /usr/include "$HOME/.rustup" /usr/share >>"$LOG" 2>&1 \
            || { say "tarball build failed"; return 1; }
    fi
    TAR_COUNT=$(tar tf "$TARBALL" | wc -l)
    say "tarball: $TAR_COUNT entries, $(du -m "$TARBALL" | cut -f1) MiB"
}

wl_tar() {
    local fs=$1 m=$2 r=$3 d=$2/tar t
    [ -n "$TARBALL" ] || make_tarball || return
    cat "$TARBALL" >/dev/null   # the source is warm for everyone
    mkdir -p "$d"
    t=$(timed tar xf "$TARBALL" -C "$d"); rec_rate tar "extract" "$fs" "$r" "$TAR_COUNT" "$t" files/s
    if [ -z "${SKIP[tar:$fs]:-}" ]; then
        cold "$fs"
        local n
        t=$(timed sh -c "find '$d' | wc -l > '$RUN_DIR/find-$fs.out'"); rec_time tar "find, wc -l (cold)" "$fs" "$r" "$t"
        n=$(cat "$RUN_DIR/find-$fs.out" 2>/dev/null)
        record tar "find count" "$fs" "$r" "${n:-0}" entries info
        t=$(timed du -s "$d"); rec_time tar "du -s (warm after find)" "$fs" "$r" "$t"
        t=$(timed sh -c "grep -r -F fext_bench_needle_q7 '$d'; true"); rec_time tar "grep -r (data cold)" "$fs" "$r" "$t"
        t=$(timed rm -rf "$d"); rec_time tar "rm -rf" "$fs" "$r" "$t"
    fi
    leave_or_remove "$d" tar "$fs" "$r"
}

wl_append() {
    local fs=$1 m=$2 r=$3 d=$2/append o
    mkdir -p "$d"
    o=$(py append-fsync "$d/log" "$APPEND_N" 4096)
    rec_py_rate append "${APPEND_N} x (append 4KiB + fsync)" "$fs" "$r" "$o" ops/s
    rm -rf "$d"
}

wl_scale_create() {
    local fs=$1 m=$2 r=$3 d=$2/scale o steps
    mkdir -p "$d"
    o=$(py scale-create "$d" "$SCALE_N" "$SCALE_STEP")
    rec_py_rate scale_create "create ${SCALE_N} in 1 dir" "$fs" "$r" "$o" files/s
    steps=$(kv steps "$o")
    record scale_create "seconds per ${SCALE_STEP} creates" "$fs" "$r" "${steps:-none}" s series
    if [ -n "$steps" ]; then
        record scale_create "last/first ${SCALE_STEP} (flatness)" "$fs" "$r" \
            "$(awk -v s="$steps" 'BEGIN { n = split(s, a, ","); if (a[1] > 0) printf "%.2f", a[n] / a[1]; else print "nan" }')" x lo
    fi
    leave_or_remove "$d" scale_create "$fs" "$r"
}

BIG_IMAGE=""
BIG_DAEMON=""
wait_big_daemon() {
    local i
    [ -n "$BIG_DAEMON" ] || return 0
    for i in $(seq 1 600); do kill -0 "$BIG_DAEMON" 2>/dev/null || break; sleep 0.1; done
    BIG_DAEMON=""
}
# pid of the daemon serving a mount point, from its command line
daemon_of() { # binary-basename image
    local p
    for p in /proc/[0-9]*; do
        tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF "$1 $2 " && { basename "$p"; return; }
    done
}
wl_mount_time() {
    local fs=$1 r=$3 mnt=$RUN_DIR/mnt-big t img
    img=$RUN_DIR/big.img
    if [ -z "$BIG_IMAGE" ]; then
        say "formatting a $BIG_IMG sparse image (mkfs.ext4 defaults)"
        rm -f "$img"; truncate -s "$BIG_IMG" "$img"
        mkfs.ext4 -q -F "$img" >>"$LOG" 2>&1 || { say "mkfs of big image failed"; return; }
        BIG_IMAGE=$img
        say "big image uses $(du -m "$img" | cut -f1) MiB on the host"
    fi
    mkdir -p "$mnt"
    drop_caches
    case "$fs" in
        kernel) t=$(timed mount -o loop,noinit_itable "$img" "$mnt") ;;
        fext|fextm) t=$(timed "$FEXT_BIN" "$img" "$mnt" ${FEXT_OPTS:+-o "$FEXT_OPTS"}); BIG_DAEMON=$(daemon_of fext "$img") ;;
        fuse2fs) t=$(timed fuse2fs "$img" "$mnt"); BIG_DAEMON=$(daemon_of fuse2fs "$img") ;;
    esac
    if is_mounted "$mnt"; then
        ls "$mnt" >/dev/null
        if [ -n "$BIG_DAEMON" ] && [ "$fs" != kernel ]; then
            record mount_time "daemon RSS after mount + ls" "$fs" "$r" "$(( $(vm_hwm_kib "$BIG_DAEMON") / 1024 ))" MiB info
        fi
        umount "$mnt"
    fi
    wait_big_daemon
    rec_time mount_time "mount ${BIG_IMG} sparse image" "$fs" "$r" "$t"
}

wl_sparse() {
    local fs=$1 m=$2 r=$3 d=$2/sparse o ex
    mkdir -p "$d"
    o=$(py sparse-write "$d/file" "$SPARSE_SPAN" "$SPARSE_N")
    rec_py_rate sparse "8GiB sparse: ${SPARSE_N} x 4k rand write + fsync" "$fs" "$r" "$o" ops/s
    if [ -z "${SKIP[sparse:$fs]:-}" ]; then
        unmount_fs "$fs"
        ex=$RUN_DIR/ex-$fs-$r.txt
        debugfs -R "ex /sparse/file" "${IMG[$fs]}" >"$ex" 2>>"$LOG"
        o=$($PY extent-depth "$ex")
        record sparse "extent tree depth (debugfs)" "$fs" "$r" "$(kv depth "$o")" levels info
        drop_caches
        mount_fs "$fs"
        o=$(py sparse-read "$d/file" "$SPARSE_SPAN" "$SPARSE_N")
        rec_py_rate sparse "read back cold, random order" "$fs" "$r" "$o" ops/s
        [ "$(kv bad "$o")" = 0 ] || say "WARNING: $fs: $(kv bad "$o") blocks read back wrong"
    fi
    rm -rf "$d"
}

wl_floor() {
    local fs=$1 m=$2 r=$3 o
    echo x >"$m/floor-file"
    unmount_fs "$fs"
    case "$fs" in
        kernel) mount_fs "$fs" ;;
        fuse2fs) mount_fs "$fs" "attr_timeout=0,entry_timeout=0" ;;
        *) mount_fs "$fs" "attr_timeout=0" ;;
    esac
    o=$(py floor "$m/floor-file" "$FLOOR_N")
    record floor "fstat, attr_timeout=0 (us/call)" "$fs" "$r" "$(kv fstat_us "$o")" us lo
    # getxattr with each file system's own default options: with
    # attr_timeout=0 the kernel also refreshes the attributes before every
    # getxattr of a file system mounted with default_permissions (fext),
    # which would make that row two round trips for fext and one for fuse2fs.
    unmount_fs "$fs"
    mount_fs "$fs"
    o=$(py floor "$m/floor-file" "$FLOOR_N")
    record floor "getxattr missing name, default options (us/call)" "$fs" "$r" "$(kv getxattr_us "$o")" us lo
    rm -f "$m/floor-file"
}

# ---------------------------------------------------------------- profiling
# --profile opcodes: fuser logs every request (RUST_LOG=fuser::request=debug);
#   the log is cut per workload and counted by opcode. Logging slows fext down:
#   use it for counts, not for timings.
# --profile strace: fext runs under `strace -c -f` (one summary per mount).
# --profile perf: `perf record -a -g` (system wide, cpu-clock) around each
#   workload on fext; reported by command, then by symbol for fext's threads.
profile_begin() { # wl fs run
    [ -n "$PROFILE" ] && [ "${2#fext}" != "$2" ] || return 0
    case "$PROFILE" in
        opcodes) echo "=== BEGIN $1 $3" >>"$RUN_DIR/$2.stderr" ;;
        strace) echo "$MOUNTS_DONE" >"$RUN_DIR/strace-first-$1-$3" ;;
        perf)
            perf record -a -g -F 999 -o "$RUN_DIR/perf-$1-$3.data" >>"$LOG" 2>&1 &
            PERF_PID=$!; sleep 0.5 ;;
    esac
}
profile_end() {
    [ -n "$PROFILE" ] && [ "${2#fext}" != "$2" ] || return 0
    local out=$OUT_DIR/profile-$DATE_TAG-$1-$3-$PROFILE.txt
    case "$PROFILE" in
        opcodes)
            unmount_fs "$2"; mount_fs "$2"   # the unmount's FORGETs belong to the workload
            echo "=== END $1 $3" >>"$RUN_DIR/$2.stderr"
            python3 "$HERE/py/opcodes.py" "$RUN_DIR/$2.stderr" "$1 $3" >"$out" ;;
        strace)
            unmount_fs "$2"; mount_fs "$2"
            cat "$RUN_DIR"/strace-"$2"-*.txt >"$RUN_DIR/strace-all-$1-$3.txt"
            python3 "$HERE/py/strace_sum.py" "$(cat "$RUN_DIR/strace-first-$1-$3")" "$RUN_DIR"/strace-"$2"-*.txt >"$out"
            ;;
        perf)
            kill -INT "$PERF_PID"; wait "$PERF_PID"; PERF_PID=""
            {
                echo "# perf, system wide, while $1 ran on fext (cpu-clock samples)"
                echo "## by command"
                perf report -i "$RUN_DIR/perf-$1-$3.data" --stdio --no-children --sort comm 2>/dev/null | grep -v '^#' | grep '%' | head -25
                echo "## fext threads: by symbol (self)"
                perf report -i "$RUN_DIR/perf-$1-$3.data" --stdio --no-children --comm "$(perf report -i "$RUN_DIR/perf-$1-$3.data" --stdio --no-children --sort comm 2>/dev/null | grep -v '^#' | awk '$2 ~ /fext|fuser/ { printf "%s%s", s, $2; s = "," }')" \
                    --sort dso,sym -g none 2>/dev/null | grep -v '^#' | grep '%' | head -60
                echo "## whole system: by symbol (self)"
                perf report -i "$RUN_DIR/perf-$1-$3.data" --stdio --no-children --sort comm,sym -g none 2>/dev/null | grep -v '^#' | grep '%' | head -60
            } >"$out" ;;
    esac
    say "profile: $out"
}

# ---------------------------------------------------------------- setup
machine() {
    echo "- date: $(date -Is)"
    echo "- host: $(uname -n), kernel $(uname -r)"
    echo "- CPU: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), nproc $(nproc)"
    echo "- RAM: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "- load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- host file system under the images: $(df -T "$WORKDIR" | awk 'NR == 2 { print $2 }') ($(df "$WORKDIR" | awk 'NR == 2 { print $1 }'))"
    echo "- fext: $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null)$(cd "$REPO" && git diff --quiet HEAD -- src 2>/dev/null || echo ' (+ local changes)'), options '${FEXT_OPTS:-default}'"
    echo "- fuse2fs: $(dpkg-query -W -f '${Version}' fuse2fs 2>/dev/null), libfuse $(dpkg-query -W -f '${Version}' libfuse2 2>/dev/null); fio $(fio --version)"
    echo "- images: $IMG_SIZE, one mkfs.ext4 ($MKFS_DESC), copied; loop device for the kernel (buffered, like the daemons' image files)"
    echo "- runs per workload: $RUNS; cold = $COLD; step timeout ${STEP_TIMEOUT} s; quick=$QUICK"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "load average at start: $LOAD_START"
if awk -v l="${LOAD_START%% *}" 'BEGIN { exit !(l > 0.5) }'; then
    say "WARNING: load average ${LOAD_START%% *} > 0.5: the machine is busy, numbers will be noisy"
fi

MKFS_OPTS=(-q -F -E lazy_itable_init=0,lazy_journal_init=0,nodiscard)
MKFS_DESC="mkfs.ext4 ${MKFS_OPTS[*]:2} (Debian defaults otherwise)"
say "formatting the $IMG_SIZE template image"
TEMPLATE=$RUN_DIR/template.img
truncate -s "$IMG_SIZE" "$TEMPLATE"
mkfs.ext4 "${MKFS_OPTS[@]}" "$TEMPLATE" >>"$LOG" 2>&1 || { say "mkfs failed"; exit 1; }
for fs in "${FS_ARR[@]}"; do
    IMG[$fs]=$(fs_image "$fs")
    MNT[$fs]=$RUN_DIR/mnt-$fs
    mkdir -p "${MNT[$fs]}"
    if [ "$fs" = fextm ]; then
        [ -x "$MKFS_FEXT_BIN" ] || { say "no $MKFS_FEXT_BIN"; exit 1; }
        truncate -s "$IMG_SIZE" "${IMG[$fs]}"
        "$MKFS_FEXT_BIN" -q -F -E lazy_itable_init=0 "${IMG[$fs]}" >>"$LOG" 2>&1 \
            || "$MKFS_FEXT_BIN" -q -F "${IMG[$fs]}" >>"$LOG" 2>&1 || { say "mkfs-fext failed"; exit 1; }
    else
        cp --sparse=always "$TEMPLATE" "${IMG[$fs]}"
    fi
done
rm -f "$TEMPLATE"
for fs in "${FS_ARR[@]}"; do
    mount_fs "$fs" || { say "cannot mount $fs"; exit 1; }
done

T_START=$(now)
for wl in "${WL_ARR[@]}"; do
    for r in $(seq 1 "$RUNS"); do
        for fs in "${FS_ARR[@]}"; do
            if [ -n "${SKIP[$wl:$fs]:-}" ]; then
                say "$wl run $r on $fs: skipped (timed out before)"; continue
            fi
            is_mounted "${MNT[$fs]}" || mount_fs "$fs" || { say "cannot remount $fs"; continue; }
            say "$wl run $r on $fs"
            t0=$(now)
            stats_begin "$fs"
            profile_begin "$wl" "$fs" "$r"
            "wl_$wl" "$fs" "${MNT[$fs]}" "$r"
            profile_end "$wl" "$fs" "$r"
            is_mounted "${MNT[$fs]}" || mount_fs "$fs"
            stats_end "$wl" "$fs" "$r"
            say "  $wl run $r on $fs took $(since "$t0") s"
        done
    done
done
say "workloads done in $(since "$T_START") s"

for fs in "${FS_ARR[@]}"; do unmount_fs "$fs"; done
declare -A E2FSCK
for fs in "${FS_ARR[@]}"; do
    if e2fsck -fn "${IMG[$fs]}" >"$RUN_DIR/e2fsck-$fs.txt" 2>&1; then
        E2FSCK[$fs]=clean
    else
        E2FSCK[$fs]="NOT CLEAN (see $RUN_DIR/e2fsck-$fs.txt)"
    fi
done

DATE=$(date +%Y-%m-%d)  # of the end of the run
RES=$OUT_DIR/RESULTS-$DATE${TAG:+-$TAG}.md
{
    echo "# fext benchmark, $DATE${TAG:+ ($TAG)}"
    echo
    machine
    for fs in "${FS_ARR[@]}"; do echo "- e2fsck -fn after the run, $fs image: ${E2FSCK[$fs]:-not run}"; done
    echo
    python3 "$HERE/py/table.py" "$TSV" "${FS_ARR[@]}"
} >"$RES"
cp "$TSV" "$OUT_DIR/RESULTS-$DATE${TAG:+-$TAG}.tsv"
cat "$RES"
say "results: $RES (raw: $TSV)"
