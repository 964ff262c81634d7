//! `fsck.fext`: checks and repairs an ext2/ext3/ext4 file system, in the
//! spirit (and with the messages) of e2fsck.
//!
//! The driver ([`run`]) opens the image ([`disk`]: read-only with `-n`,
//! else a private copy-on-write mapping written back at the end), the file
//! system ([`fs`]: primary superblock, else a backup), checks the
//! superblock, descriptors and journal ([`super_check`]), then runs the
//! passes:
//! - [`pass1`]: inodes and their blocks (with [`pass1_blocks`],
//!   [`xattr_check`]), then [`pass1b`] for blocks claimed twice;
//! - [`pass2`]: directory blocks;
//! - [`pass3`]: connectivity and lost+found;
//! - [`pass4`]: link counts;
//! - [`pass5`]: bitmaps and summary counts.
//!
//! Every question goes through the [`problem`] table and the reporter,
//! which answers as the mode says and keeps the verdict. After a repair
//! run, the whole check is run again silently (nothing written) to confirm
//! the result; if problems remain, another repair run follows (at most
//! [`MAX_RUNS`]). Nothing is written when a run stops early.
//!
//! Exit codes are fsck(8)'s ([`exit`]).

pub mod alloc;
pub mod ask;
pub mod bitset;
pub mod check;
pub mod dirops;
pub mod disk;
pub mod fs;
pub mod ino;
pub mod map;
pub mod pass1;
pub mod pass1_blocks;
pub mod pass1b;
pub mod pass2;
pub mod pass3;
pub mod pass4;
pub mod pass5;
pub mod problem;
pub mod progress;
pub mod quota;
pub mod super_check;
pub mod xattr_check;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::format::features::{Incompat, RoCompat};

use check::{CheckOpts, Checker};
use disk::Disk;
use fs::Fs;
use problem::{Mode, Reporter};
use super_check::JournalVerdict;

/// fsck(8) exit codes.
pub mod exit {
    pub const OK: i32 = 0;
    pub const NONDESTRUCT: i32 = 1;
    pub const REBOOT: i32 = 2;
    pub const UNCORRECTED: i32 = 4;
    pub const ERROR: i32 = 8;
    pub const USAGE: i32 = 16;
    pub const CANCELED: i32 = 32;
    pub const LIBRARY: i32 = 128;
}

/// Repair runs at most (each followed by a silent verification).
pub const MAX_RUNS: usize = 4;

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    /// Check even a file system marked clean.
    pub force: bool,
    /// `-C fd`.
    pub progress_fd: Option<i32>,
    pub verbose: bool,
    /// Worker threads for the inode scan of pass 1 (0: the default, 1).
    pub threads: usize,
    pub device: PathBuf,
    /// Say that the run is non-interactive for lack of a terminal.
    pub no_tty_note: bool,
}

impl Options {
    pub fn new(device: impl Into<PathBuf>, mode: Mode) -> Options {
        Options {
            mode,
            force: false,
            progress_fd: None,
            verbose: false,
            threads: 0,
            device: device.into(),
            no_tty_note: false,
        }
    }
}

fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// Whether `path` (or the loop device backed by it) is mounted.
fn is_mounted(path: &Path) -> bool {
    let Ok(canon) = std::fs::canonicalize(path) else {
        return false;
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return false;
    };
    let mut devices: Vec<PathBuf> = vec![canon.clone()];
    if let Ok(rd) = std::fs::read_dir("/sys/block") {
        for e in rd.flatten() {
            let name = e.file_name();
            let bf = e.path().join("loop/backing_file");
            if let Ok(s) = std::fs::read_to_string(&bf) {
                if Path::new(s.trim()) == canon {
                    devices.push(PathBuf::from("/dev").join(name));
                }
            }
        }
    }
    mounts.lines().any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|d| devices.iter().any(|x| Path::new(d) == x.as_path()))
    })
}

/// `ext2fs_check_desc`: every bitmap and inode table inside its group (the
/// whole file system with flex_bg) and not overlapping other metadata.
pub fn check_desc(fs: &Fs) -> Result<(), String> {
    let flex = fs.has_incompat(Incompat::FLEX_BG);
    let n = fs.blocks_count;
    let mut used = bitset::BitSet::new(n);
    for g in 0..fs.groups_count() {
        for (s, c) in pass1::group_meta_blocks(fs, g) {
            used.set_range(s, s + c);
        }
    }
    for g in 0..fs.groups_count() {
        let (first, last) = if flex {
            (fs.first_data_block, n - 1)
        } else {
            (fs.group_first_block(g), fs.group_last_block(g))
        };
        let d = &fs.groups[g as usize];
        let b = d.block_bitmap;
        if b < first || b > last || used.get(b) {
            return Err("Corrupt group descriptor: bad block for block bitmap".into());
        }
        used.set(b);
        let b = d.inode_bitmap;
        if b < first || b > last || used.get(b) {
            return Err("Corrupt group descriptor: bad block for inode bitmap".into());
        }
        used.set(b);
        let b = d.inode_table;
        let e = b
            .saturating_add(u64::from(fs.itable_blocks))
            .saturating_sub(1);
        if b < first || e > last || used.any_in(b, e + 1) {
            return Err("Corrupt group descriptor: bad block for inode table".into());
        }
        used.set_range(b, e + 1);
    }
    Ok(())
}

/// Checks (and, with a writing mode, repairs) the file system at
/// `opts.device`, writing the report to `out`. Returns the exit code.
pub fn run(opts: &Options, out: Box<dyn Write + Send>) -> i32 {
    let device = opts.device.display().to_string();
    let mut out = out;
    let writable = opts.mode != Mode::No;
    if opts.no_tty_note {
        let _ = writeln!(
            out,
            "fsck.fext: no terminal to ask questions on: running as with -n (nothing will be changed)"
        );
    }
    if is_mounted(&opts.device) {
        if writable {
            let _ = writeln!(
                out,
                "{device} is mounted.\nfsck.fext: Cannot continue, aborting.\n"
            );
            return exit::ERROR;
        }
        let _ = writeln!(
            out,
            "Warning!  {device} is mounted.\nWarning: skipping journal recovery because doing a read-only filesystem check."
        );
    }
    let disk = match Disk::open(&opts.device, writable) {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(out, "fsck.fext: {e} while trying to open {device}");
            return exit::ERROR;
        }
    };
    let (mut fs, backup_reason) = match Fs::open(disk, None) {
        Ok(x) => x,
        Err((_, why)) => {
            let _ = writeln!(
                out,
                "fsck.fext: {why} while trying to open {device}\n\n\
                 The superblock could not be read or does not describe a valid ext2/ext3/ext4\n\
                 file system, and no usable backup superblock was found."
            );
            return exit::ERROR;
        }
    };
    if let Some(why) = &backup_reason {
        let _ = writeln!(
            out,
            "fsck.fext: {why}\nfsck.fext: Superblock invalid, using the backup in group {}...",
            fs.sb_group
        );
    }
    // Features this checker does not know.
    let feat = fs.sb.features();
    let unknown_inc = feat.incompat.bits() & !Incompat::all().bits();
    let unsupported = feat.incompat & (Incompat::COMPRESSION | Incompat::DIRDATA);
    if unknown_inc != 0 || !unsupported.is_empty() || feat.incompat.contains(Incompat::JOURNAL_DEV)
    {
        let _ = writeln!(
            out,
            "fsck.fext: {device} has unsupported feature(s): {}\nfsck.fext: Get a newer version of fsck.fext!",
            crate::format::features::Features::incompat_names(
                crate::format::features::Incompat::from_bits_retain(unknown_inc) | unsupported | (feat.incompat & Incompat::JOURNAL_DEV)
            )
            .join(" ")
        );
        return exit::ERROR;
    }
    let unknown_ro = feat.ro_compat.bits() & !RoCompat::all().bits();
    if unknown_ro != 0 && writable {
        let _ = writeln!(
            out,
            "fsck.fext: {device} has unsupported read-only feature(s); check it with -n."
        );
        return exit::ERROR;
    }
    // Bad descriptors: try the backup.
    if fs.sb_group == 0 {
        if let Err(e) = check_desc(&fs) {
            let _ = writeln!(out, "ext2fs_check_desc: {e}");
            let disk = fs.disk;
            match Fs::open(disk, Some(1)) {
                Ok((bfs, _)) if check_desc(&bfs).is_ok() => {
                    let _ = writeln!(
                        out,
                        "fsck.fext: Group descriptors look bad... trying backup blocks..."
                    );
                    fs = bfs;
                }
                Ok((bfs, _)) => {
                    let disk = bfs.disk;
                    match Fs::open(disk, None) {
                        Ok((pfs, _)) => fs = pfs,
                        Err((_, why)) => {
                            let _ = writeln!(out, "fsck.fext: {why}");
                            return exit::ERROR;
                        }
                    }
                }
                Err((disk, _)) => match Fs::open(disk, None) {
                    Ok((pfs, _)) => fs = pfs,
                    Err((_, why)) => {
                        let _ = writeln!(out, "fsck.fext: {why}");
                        return exit::ERROR;
                    }
                },
            }
        }
    }
    let threads = if opts.threads == 0 {
        // Measured (bench/fsck.sh): the threaded scan of pass 1 loses to
        // one thread, whose merge step dominates; I/O is overlapped by read
        // ahead instead (inode tables, directory blocks).
        1
    } else {
        opts.threads
    };
    if let Some(fd) = opts.progress_fd {
        progress::start(fd, &device);
    }
    let mut rep = Reporter::new(opts.mode, out, &device);
    rep.verbose = opts.verbose;
    let copts = CheckOpts {
        threads,
        progress: opts.progress_fd.is_some(),
    };
    let mut c = Checker::new(fs, rep, copts, now_secs());
    let code = drive(&mut c, opts, &device);
    progress::finish();
    code
}

/// Whether the check can be skipped (no -f, file system marked clean).
fn can_skip(c: &Checker, opts: &Options) -> bool {
    if opts.force {
        return false;
    }
    let sb = &c.fs.sb.f;
    if sb.state & 1 == 0 || sb.state & 2 != 0 || c.fs.has_incompat(Incompat::RECOVER) {
        return false;
    }
    if sb.max_mnt_count > 0 && sb.max_mnt_count < 0x8000 && sb.mnt_count >= sb.max_mnt_count {
        return false;
    }
    if sb.checkinterval != 0 && c.now >= sb.lastcheck.saturating_add(sb.checkinterval) {
        return false;
    }
    true
}

/// Why the check is forced (for the message).
fn force_reason(c: &Checker) -> Option<&'static str> {
    let sb = &c.fs.sb.f;
    if sb.state & 1 == 0 {
        Some("was not cleanly unmounted")
    } else if sb.state & 2 != 0 {
        Some("contains a file system with errors")
    } else if sb.max_mnt_count > 0 && sb.max_mnt_count < 0x8000 && sb.mnt_count >= sb.max_mnt_count
    {
        Some("has been mounted too many times without being checked")
    } else if sb.checkinterval != 0 && c.now >= sb.lastcheck.saturating_add(sb.checkinterval) {
        Some("has gone too long without being checked")
    } else {
        None
    }
}

/// One full check: returns false when it stopped early.
fn one_run(c: &mut Checker) -> bool {
    loop {
        c.check_super();
        if c.rep.should_stop() {
            return false;
        }
        match c.check_journal() {
            JournalVerdict::Fatal => {
                c.rep.fatal = true;
                return false;
            }
            JournalVerdict::NeedsRecovery => {
                if c.rep.read_only() || c.dry_run {
                    c.rep.say("Warning: skipping journal recovery because doing a read-only filesystem check.\n");
                } else {
                    c.fix(
                        problem::Code::JournalRecoveryRefused,
                        &problem::PCtx::default(),
                    );
                    c.journal_refused = true;
                    return false;
                }
            }
            JournalVerdict::Ok => {}
        }
        c.release_orphans();
        c.check_resize_inode();
        // As e2fsck: answers before pass 1 do not decide the verdict.
        c.rep.valid = true;
        if c.rep.should_stop() {
            return false;
        }
        let t = timing_start();
        c.pass1();
        timing("pass 1", t);
        if c.rep.should_stop() {
            return false;
        }
        if c.restart || c.restart_later {
            restart(c);
            continue;
        }
        c.recreate_resize_inode();
        let t = timing_start();
        c.pass2();
        timing("pass 2", t);
        if c.rep.should_stop() {
            return false;
        }
        if c.restart {
            restart(c);
            continue;
        }
        let t = timing_start();
        c.pass3();
        timing("pass 3", t);
        if c.rep.should_stop() {
            return false;
        }
        if c.restart {
            restart(c);
            continue;
        }
        let t = timing_start();
        c.pass4();
        timing("pass 4", t);
        if c.rep.should_stop() {
            return false;
        }
        let t = timing_start();
        c.pass5();
        timing("pass 5", t);
        if c.rep.should_stop() {
            return false;
        }
        c.late_blocks = Some(Vec::new());
        c.make_journal();
        c.sync_late_blocks();
        c.check_orphan_file();
        return true;
    }
}

/// `FSCK_FEXT_TIMING=1`: the wall time of each pass on stderr (for
/// benchmarking).
fn timing_start() -> Option<std::time::Instant> {
    std::env::var_os("FSCK_FEXT_TIMING").map(|_| std::time::Instant::now())
}

fn timing(what: &str, start: Option<std::time::Instant>) {
    if let Some(t) = start {
        eprintln!(
            "fsck.fext: {what}: {:.1} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
}

fn restart(c: &mut Checker) {
    c.restarts += 1;
    if c.restarts > 8 {
        c.rep.say("fsck.fext: too many restarts, giving up.\n");
        c.rep.aborted = true;
        return;
    }
    if !c.dry_run {
        c.rep.say("Restarting fsck.fext from the beginning...\n");
    }
    let _ = c.fs.commit();
    c.reset_maps();
}

fn summary(c: &Checker, device: &str, verbose: bool) -> String {
    let sb = &c.fs.sb;
    let inodes = u64::from(sb.f.inodes_count);
    let used_inodes = inodes.saturating_sub(u64::from(sb.f.free_inodes_count));
    let blocks = sb.blocks_count();
    let used_blocks = blocks.saturating_sub(sb.free_blocks_count());
    let frag = (10000 * c.stats.fragmented)
        .checked_div(used_inodes)
        .map_or(0.0, |x| x as f64 / 100.0);
    let mut s = format!(
        "{device}: {used_inodes}/{inodes} files ({frag:.1}% non-contiguous), {used_blocks}/{blocks} blocks\n"
    );
    if verbose {
        let st = &c.stats;
        s = format!(
            "\n{:>12} inodes used ({:.2}%, out of {inodes})\n{:>12} non-contiguous files\n{:>12} blocks used ({:.2}%, out of {blocks})\n\n{:>12} regular files\n{:>12} directories\n{:>12} character device files\n{:>12} block device files\n{:>12} fifos\n{:>12} links\n{:>12} symbolic links ({} fast symbolic links)\n{:>12} sockets\n------------\n{:>12} files\n",
            used_inodes,
            100.0 * used_inodes as f64 / inodes.max(1) as f64,
            st.fragmented,
            used_blocks,
            100.0 * used_blocks as f64 / blocks.max(1) as f64,
            st.regular,
            st.dirs,
            st.chardev,
            st.blockdev,
            st.fifos,
            st.links.saturating_sub(st.dirs * 2),
            st.symlinks,
            st.fast_symlinks,
            st.sockets,
            st.links,
        );
    }
    s
}

fn drive(c: &mut Checker, opts: &Options, device: &str) -> i32 {
    let writable = c.fs.disk.is_writable();
    if !opts.force {
        if can_skip(c, opts) {
            let sb = &c.fs.sb;
            let inodes = u64::from(sb.f.inodes_count);
            let blocks = sb.blocks_count();
            c.rep.say(&format!(
                "{device}: clean, {}/{inodes} files, {}/{blocks} blocks\n",
                inodes.saturating_sub(u64::from(sb.f.free_inodes_count)),
                blocks.saturating_sub(sb.free_blocks_count())
            ));
            return exit::OK;
        }
        if let Some(why) = force_reason(c) {
            c.rep.say(&format!("{device} {why}, check forced.\n"));
        }
    }
    let was_valid = c.fs.sb.f.state & 1 != 0;
    let mut changed = false;
    let mut runs = 0;
    loop {
        runs += 1;
        let complete = one_run(c);
        if let Some(code) = read_failed(c, device) {
            return code;
        }
        if !complete || c.rep.should_stop() {
            return stop_code(c, device);
        }
        if c.rep.fixed {
            changed = true;
        }
        if !writable || !c.rep.fixed || runs >= MAX_RUNS {
            break;
        }
        // Verify silently.
        let _ = c.fs.commit();
        c.begin_verify();
        let ok = one_run(c) && c.rep.valid && !c.rep.should_stop();
        c.end_verify();
        if ok {
            break;
        }
        c.rep
            .say("\nfsck.fext: problems remain after the repairs; running again.\n\n");
        c.reset_maps();
    }
    c.late_blocks = Some(Vec::new());
    c.check_quota();
    c.sync_late_blocks();
    if c.rep.fixed {
        changed = true;
    }
    if let Some(code) = read_failed(c, device) {
        return code;
    }
    let valid = c.rep.valid;
    if writable {
        // Superblock bookkeeping, as e2fsck does at the end.
        let sbf = &mut c.fs.sb.f;
        if valid {
            if sbf.state & 1 == 0 {
                changed = true;
            }
            sbf.state = 1;
        } else {
            sbf.state &= !1;
        }
        sbf.mnt_count = 0;
        sbf.lastcheck = c.now;
        sbf.error_count = 0;
        sbf.first_error_time = 0;
        sbf.first_error_ino = 0;
        sbf.first_error_block = 0;
        sbf.first_error_func = [0; 32];
        sbf.first_error_line = 0;
        sbf.last_error_time = 0;
        sbf.last_error_ino = 0;
        sbf.last_error_line = 0;
        sbf.last_error_block = 0;
        sbf.last_error_func = [0; 32];
        c.fs.mark_sb_dirty();
        if let Err(e) = c.fs.commit() {
            c.rep
                .say(&format!("fsck.fext: {e} while writing the file system\n"));
            return exit::ERROR;
        }
        match c.fs.disk.flush() {
            Ok(_) => {}
            Err(e) => {
                c.rep
                    .say(&format!("fsck.fext: {e} while writing {device}\n"));
                return exit::ERROR | exit::UNCORRECTED;
            }
        }
    }
    let _ = was_valid;
    let mut code = exit::OK;
    if changed && writable {
        code |= exit::NONDESTRUCT;
        if c.rep.mode() != Mode::Preen {
            c.rep.say(&format!(
                "\n{device}: ***** FILE SYSTEM WAS MODIFIED *****\n"
            ));
        }
    }
    if !valid {
        c.rep.say(&format!(
            "\n{device}: ********** WARNING: Filesystem still has errors **********\n\n"
        ));
        code |= exit::UNCORRECTED;
        code &= !exit::NONDESTRUCT;
    }
    let s = summary(c, device, opts.verbose);
    c.rep.say(&s);
    code
}

/// When a read of the image failed (I/O error), whatever the check saw
/// after it is unreliable: stop, write nothing, exit with an operational
/// error.
fn read_failed(c: &mut Checker, device: &str) -> Option<i32> {
    let off = c.fs.disk.read_error()?;
    c.rep.say(&format!(
        "fsck.fext: I/O error reading {device} at byte {off} (a failing device, \
         or the image file shrank): the check stopped; nothing was written.\n"
    ));
    Some(exit::ERROR)
}

fn stop_code(c: &mut Checker, device: &str) -> i32 {
    if c.journal_refused {
        c.rep.say(&format!(
            "{device}: the journal needs recovery; nothing was changed.\n"
        ));
        return exit::UNCORRECTED;
    }
    if c.rep.halted {
        return exit::UNCORRECTED;
    }
    if c.rep.aborted && !c.rep.fatal {
        c.rep.say(&format!("{device}: fsck.fext canceled.\n"));
        return exit::CANCELED;
    }
    c.rep.say(&format!(
        "\n{device}: ********** WARNING: Filesystem still has errors **********\n\n"
    ));
    exit::ERROR | exit::UNCORRECTED
}
