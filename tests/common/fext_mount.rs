//! The daemon under test: `fext IMAGE MNT -f -o ...` run as a [`BgChild`]
//! at a fresh temporary mount point.
//!
//! [`FextMount::new`] returns once the mount shows up in
//! `/proc/self/mountinfo` (or panics with the daemon's log if it exits or
//! does not mount in time). [`FextMount::unmount`] unmounts (`umount`,
//! falling back to `umount -l`), waits for the daemon to finish its final
//! write-back and exit, and returns its exit code; dropping a mount does
//! the same (also during a panic) and only prints problems.
//!
//! A watchdog thread guards every mount: if the mount is still up after
//! its deadline ([`DEFAULT_DEADLINE`], or [`FextMount::with_deadline`]),
//! it SIGKILLs the daemon. The kernel then fails every pending and later
//! request on the mount with ENOTCONN, so a daemon hang turns into a test
//! failure instead of a test stuck in the kernel.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::tmp::{is_mountpoint, unique_dir};
use super::{BgChild, Cmd};

/// How long [`FextMount::new`] waits for the mount to appear.
pub const MOUNT_WAIT: Duration = Duration::from_secs(30);
/// How long an unmount waits for the daemon to exit (final write-back).
pub const EXIT_WAIT: Duration = Duration::from_secs(120);
/// Default watchdog deadline of a mount (under nextest's 10-minute limit).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(540);
/// Time limit of one `umount`.
const UMOUNT_TIMEOUT: Duration = Duration::from_secs(60);

/// The `fext` daemon binary: Cargo's own path in the root package's tests,
/// the workspace target directory elsewhere (the mkfs and fsck crates
/// include this module too).
pub fn fext_bin() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_fext") {
        Some(p) => PathBuf::from(p),
        None => super::workspace_bin("fext"),
    }
}

/// The fstype and source of the mount at `path` in /proc/self/mountinfo.
pub fn mount_entry(path: &Path) -> Option<(String, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.to_string_lossy();
    info.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mp = left.split(' ').nth(4)?;
        if mp != want {
            return None;
        }
        let mut r = right.split(' ');
        Some((r.next()?.to_string(), r.next()?.to_string()))
    })
}

/// A running `fext -f` daemon and its mount.
#[derive(Debug)]
pub struct FextMount {
    child: Option<BgChild>,
    mount_point: PathBuf,
    image: PathBuf,
    mounted: bool,
    watchdog_stop: Arc<AtomicBool>,
    /// The daemon's output, kept when it exits after an unmount.
    final_log: String,
}

impl FextMount {
    /// Mount `image` with `-o opts` (may be empty); panics with the
    /// daemon's output if it does not mount.
    #[track_caller]
    pub fn new(image: &Path, opts: &str) -> FextMount {
        FextMount::try_new(image, opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`FextMount::new`] with a watchdog deadline other than the default.
    #[track_caller]
    pub fn with_deadline(image: &Path, opts: &str, deadline: Duration) -> FextMount {
        FextMount::try_new_deadline(image, opts, deadline).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Mount, or `Err((exit code, output))` if the daemon exits before the
    /// mount appears (e.g. it refused the image). A daemon that neither
    /// mounts nor exits in [`MOUNT_WAIT`] is killed and reported with code
    /// 124.
    pub fn try_mount(image: &Path, opts: &str) -> Result<FextMount, (i32, String)> {
        FextMount::start(image, opts, DEFAULT_DEADLINE)
    }

    /// [`FextMount::try_mount`] with the failure as one message.
    pub fn try_new(image: &Path, opts: &str) -> Result<FextMount, String> {
        FextMount::try_new_deadline(image, opts, DEFAULT_DEADLINE)
    }

    fn try_new_deadline(image: &Path, opts: &str, deadline: Duration) -> Result<FextMount, String> {
        FextMount::start(image, opts, deadline).map_err(|(code, log)| {
            format!(
                "fext {} did not mount (exit code {code}):\n{log}",
                image.display()
            )
        })
    }

    fn start(image: &Path, opts: &str, deadline: Duration) -> Result<FextMount, (i32, String)> {
        let mount_point = unique_dir("fext");
        let mut cmd = Cmd::new(fext_bin())
            .arg(image)
            .arg(&mount_point)
            .arg("-f")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("warn".into()),
            );
        if !opts.is_empty() {
            cmd = cmd.arg("-o").arg(opts);
        }
        let mut child = BgChild::spawn(&cmd);
        let start = Instant::now();
        loop {
            if mount_entry(&mount_point).is_some_and(|(t, _)| t.starts_with("fuse")) {
                break;
            }
            if let Some(code) = child.try_exit_code() {
                let log = child.log();
                drop(child);
                let _ = std::fs::remove_dir(&mount_point);
                return Err((code, log));
            }
            if start.elapsed() > MOUNT_WAIT {
                let log = child.log();
                child.signal(libc::SIGKILL);
                let _ = child.wait_timeout(Duration::from_secs(10));
                drop(child);
                if is_mountpoint(&mount_point) {
                    let _ = Cmd::new("umount").arg("-l").arg(&mount_point).output();
                }
                let _ = std::fs::remove_dir(&mount_point);
                return Err((
                    124,
                    format!("no mount after {MOUNT_WAIT:?}; daemon log:\n{log}"),
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
        let watchdog_stop = Arc::new(AtomicBool::new(false));
        spawn_watchdog(
            child.pid(),
            deadline,
            watchdog_stop.clone(),
            mount_point.clone(),
        );
        Ok(FextMount {
            child: Some(child),
            mount_point,
            image: image.to_owned(),
            mounted: true,
            watchdog_stop,
            final_log: String::new(),
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mount_point
    }

    /// `path().join(rel)`.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.mount_point.join(rel)
    }

    /// The image file.
    pub fn image(&self) -> &Path {
        &self.image
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, BgChild::pid)
    }

    /// Everything the daemon printed so far.
    pub fn log(&self) -> String {
        self.child.as_ref().map(BgChild::log).unwrap_or_default()
    }

    /// Whether the daemon process is still running.
    pub fn is_alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_exit_code().is_none())
    }

    /// Unmount, wait for the daemon to exit, and return its exit code
    /// (the caller asserts 0). `Err` if the unmount or the exit failed.
    pub fn try_unmount(mut self) -> Result<i32, String> {
        self.unmount_inner()
    }

    /// Unmount and wait for the daemon; panics (with its log) unless it
    /// exits 0.
    #[track_caller]
    pub fn unmount(self) {
        self.unmount_with_log();
    }

    /// [`FextMount::unmount`], then everything the daemon printed, up to
    /// its exit (`-o stats` prints its table of requests then).
    #[track_caller]
    pub fn unmount_with_log(mut self) -> String {
        let log_on_failure = self.log();
        match self.unmount_inner() {
            Ok(0) => std::mem::take(&mut self.final_log),
            Ok(code) => panic!("fext exited {code} after unmount; its log:\n{log_on_failure}"),
            Err(e) => panic!("{e}"),
        }
    }

    /// Sends `signal` to the daemon and waits (up to [`EXIT_WAIT`]) for it
    /// to exit on its own, unmounting as it goes (SIGTERM/SIGINT/SIGHUP).
    /// Returns its exit code, `None` if it did not exit in time; the mount
    /// must be gone afterwards (else the guard's drop cleans up).
    pub fn signal_and_wait(&mut self, signal: libc::c_int) -> Option<i32> {
        let child = self.child.as_mut()?;
        child.signal(signal);
        let code = child.wait_timeout(EXIT_WAIT)?;
        self.child = None;
        self.watchdog_stop.store(true, Ordering::Relaxed);
        if !is_mountpoint(&self.mount_point) {
            self.mounted = false;
            let _ = std::fs::remove_dir(&self.mount_point);
        }
        Some(code)
    }

    /// SIGKILL the daemon (no write-back), then clean up the dead mount
    /// with `umount -l`. Returns the daemon's log.
    pub fn kill(mut self) -> String {
        self.watchdog_stop.store(true, Ordering::Relaxed);
        let log = self.log();
        if let Some(mut child) = self.child.take() {
            child.signal(libc::SIGKILL);
            let _ = child.wait_timeout(Duration::from_secs(30));
        }
        if self.mounted {
            let out = Cmd::new("umount")
                .arg("-l")
                .arg(&self.mount_point)
                .timeout(UMOUNT_TIMEOUT)
                .output();
            if !out.success() {
                eprintln!("umount -l after kill failed:\n{out}");
            }
            self.mounted = false;
        }
        let _ = std::fs::remove_dir(&self.mount_point);
        log
    }

    fn unmount_inner(&mut self) -> Result<i32, String> {
        self.watchdog_stop.store(true, Ordering::Relaxed);
        let mut problems = String::new();
        if self.mounted {
            self.mounted = false;
            let out = Cmd::new("umount")
                .arg(&self.mount_point)
                .timeout(UMOUNT_TIMEOUT)
                .output();
            if !out.success() {
                let lazy = Cmd::new("umount")
                    .arg("-l")
                    .arg(&self.mount_point)
                    .timeout(UMOUNT_TIMEOUT)
                    .output();
                problems.push_str(&format!(
                    "umount {} failed; lazy unmount {}:\n{out}\n{lazy}\n",
                    self.mount_point.display(),
                    if lazy.success() { "done" } else { "failed too" }
                ));
            }
        }
        let code = match self.child.take() {
            None => -1,
            Some(mut child) => match child.wait_timeout(EXIT_WAIT) {
                Some(code) => {
                    self.final_log = child.log();
                    code
                }
                None => {
                    let log = child.log();
                    let code = child.stop();
                    problems.push_str(&format!(
                        "fext did not exit within {EXIT_WAIT:?} of the unmount (killed, code {code}); log:\n{log}\n"
                    ));
                    code
                }
            },
        };
        if !is_mountpoint(&self.mount_point) {
            let _ = std::fs::remove_dir(&self.mount_point);
        }
        if problems.is_empty() {
            Ok(code)
        } else {
            Err(problems)
        }
    }
}

impl Drop for FextMount {
    fn drop(&mut self) {
        if self.mounted || self.child.is_some() {
            match self.unmount_inner() {
                Ok(0) => {}
                Ok(code) => eprintln!("FextMount drop: fext exited {code}"),
                Err(e) => eprintln!("FextMount drop: {e}"),
            }
        }
    }
}

fn spawn_watchdog(pid: u32, deadline: Duration, stop: Arc<AtomicBool>, mount_point: PathBuf) {
    thread::spawn(move || {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        eprintln!(
            "FextMount watchdog: {} still mounted after {deadline:?}: killing fext (pid {pid})",
            mount_point.display()
        );
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    });
}

/// A fresh image made by the library's mkfs (what `mkfs.fext` does):
/// `fs_type` is `"ext2"`, `"ext3"` or `"ext4"`, `block_size` 1024 or 4096
/// (`None`: mke2fs' size-based default), `features` a mke2fs-style edit
/// list such as `"^metadata_csum"` (may be empty).
pub fn make_fext_image(
    path: &Path,
    size_bytes: u64,
    fs_type: &str,
    block_size: Option<u32>,
    features: &str,
) {
    use fext::mkfs::format::{make_filesystem, Silent};
    use fext::mkfs::options::{parse_feature_edits, FsType, MkfsOptions};
    let fs_type = match fs_type {
        "ext2" => FsType::Ext2,
        "ext3" => FsType::Ext3,
        "ext4" => FsType::Ext4,
        other => panic!("unknown fs type {other}"),
    };
    let opts = MkfsOptions {
        fs_type,
        block_size,
        feature_edits: parse_feature_edits(features),
        ..MkfsOptions::default()
    };
    make_filesystem(path, Some(size_bytes), &opts, &mut Silent)
        .unwrap_or_else(|e| panic!("mkfs of {}: {e}", path.display()));
}
