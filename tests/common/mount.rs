//! The kernel oracle: loop-mounting an image with the Linux ext4 driver,
//! and the policy for tests that need root.
//!
//! # Policy (root, loop devices, skipping)
//!
//! Tests that need root or a kernel loop mount start with
//! `if !require_kernel_mount() { return; }` (or [`require_root`]):
//!
//! - **root and the mount works** (CI; checked once per process by really
//!   mounting a tiny ext4 image): the test runs.
//! - **not root**: the test is skipped with a loud `SKIPPED` message on
//!   stderr (developers without root can still run the rest), unless
//!   `FEXT_REQUIRE_ALL=1` is set, which turns every skip into a failure.
//!   `.ci/run` sets it.
//! - **root but the loop mount fails** (no loop devices in a container, no
//!   ext4 driver): the test FAILS with the reason. A root CI run must not
//!   pass by skipping its strongest oracle.
//!
//! [`KernelMount`] unmounts in `Drop` (also on panic): `umount`, then
//! `umount -l` as fallback, then removes its mount point.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use super::tmp::{is_mountpoint, unique_dir};
use super::{Cmd, Output};

/// Time limit of one mount or umount.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether the process runs with effective uid 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `FEXT_REQUIRE_ALL` forbids skipping.
pub fn require_all() -> bool {
    std::env::var_os("FEXT_REQUIRE_ALL").is_some_and(|v| !v.is_empty() && v != "0")
}

fn skip(what: &str, why: &str) -> bool {
    assert!(
        !require_all(),
        "FEXT_REQUIRE_ALL is set but this test needs {what}: {why}"
    );
    let bar = "!".repeat(72);
    let test = std::thread::current().name().unwrap_or("?").to_string();
    // Written to the stderr handle directly, not with eprintln!, so libtest's
    // output capture does not hide it (nextest shows it with
    // `--success-output immediate`).
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n{bar}\n!!! SKIPPED {test}: needs {what}: {why}\n\
         !!! Run the tests as root to run it (CI does).\n{bar}"
    );
    false
}

/// True if running as root; otherwise prints a loud skip notice and
/// returns false (or panics under `FEXT_REQUIRE_ALL=1`).
pub fn require_root(what: &str) -> bool {
    if is_root() {
        true
    } else {
        skip(what, "not running as root")
    }
}

/// Whether a kernel loop mount of ext4 works here: `Ok(())`, or why not.
/// Checked once per process by formatting a 2 MiB image with `mkfs.ext4`
/// and mounting it read-only.
pub fn kernel_mount_check() -> Result<(), String> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT.get_or_init(probe_kernel_mount).clone()
}

fn probe_kernel_mount() -> Result<(), String> {
    if !is_root() {
        return Err("not running as root".into());
    }
    let img = super::TempImage::new(2 << 20);
    let out = Cmd::new("mkfs.ext4").arg("-qF").arg(img.path()).output();
    if !out.success() {
        return Err(format!("cannot make a probe image:\n{out}"));
    }
    match KernelMount::try_new(img.path(), false, "") {
        Ok(m) => m.unmount(),
        Err(e) => {
            let loops = Cmd::new("losetup").arg("-f").output();
            Err(format!(
                "{e}\n(losetup -f says: {})",
                loops.combined().trim()
            ))
        }
    }
}

/// True if kernel loop mounts work. Not root: loud skip, false. Root but
/// mounts fail: panics with the reason (see the module policy).
pub fn require_kernel_mount() -> bool {
    match kernel_mount_check() {
        Ok(()) => true,
        Err(why) if !is_root() => skip("a kernel loop mount", &why),
        Err(why) => panic!(
            "running as root, but a kernel loop mount of ext4 does not work here: {why}\n\
             (load the loop module, give the container loop devices, or run without root)"
        ),
    }
}

/// An image loop-mounted by the kernel at a fresh temporary mount point;
/// unmounted and removed on drop (even during a panic).
#[derive(Debug)]
pub struct KernelMount {
    mount_point: PathBuf,
    image: PathBuf,
    mounted: bool,
}

impl KernelMount {
    /// Mount `image` (`mount -o loop[,ro]`); panics with mount's output on
    /// failure.
    #[track_caller]
    pub fn new(image: &Path, rw: bool) -> KernelMount {
        KernelMount::try_new(image, rw, "").unwrap_or_else(|e| panic!("{e}"))
    }

    /// Mount with extra comma-separated options (e.g. `"noload"`,
    /// `"data=journal"`); `Err` carries mount's output and the kernel log
    /// tail.
    pub fn try_new(image: &Path, rw: bool, extra_options: &str) -> Result<KernelMount, String> {
        let mount_point = unique_dir("mnt");
        let mut options = String::from(if rw { "loop,rw" } else { "loop,ro" });
        if !extra_options.is_empty() {
            options.push(',');
            options.push_str(extra_options);
        }
        // Parallel tests race for free loop devices; retry a few times.
        let mut last: Option<Output> = None;
        for attempt in 0..4 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200 * attempt));
            }
            let out = Cmd::new("mount")
                .args(["-t", "ext4", "-o", &options])
                .arg(image)
                .arg(&mount_point)
                .timeout(MOUNT_TIMEOUT)
                .output();
            if out.success() {
                return Ok(KernelMount {
                    mount_point,
                    image: image.to_owned(),
                    mounted: true,
                });
            }
            // util-linux: "failed to setup loop device for ..." or "could
            // not find any free loop device"; other failures are final.
            let loop_trouble = out.combined().contains("loop device");
            last = Some(out);
            if !loop_trouble {
                break;
            }
        }
        let _ = std::fs::remove_dir(&mount_point);
        let dmesg = Cmd::new("dmesg").timeout(Duration::from_secs(10)).output();
        let tail: Vec<&str> = dmesg.stdout.lines().rev().take(8).collect();
        Err(format!(
            "kernel loop mount of {} failed:\n{}\n--- dmesg tail ---\n{}",
            image.display(),
            last.map(|o| o.to_string()).unwrap_or_default(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mount_point
    }

    /// The mounted image file.
    pub fn image(&self) -> &Path {
        &self.image
    }

    /// Unmount now and report failure (drop only prints it). Use before
    /// running e2fsck on an image that was mounted read-write.
    pub fn unmount(mut self) -> Result<(), String> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> Result<(), String> {
        if !self.mounted {
            return Ok(());
        }
        self.mounted = false;
        let out = Cmd::new("umount")
            .arg(&self.mount_point)
            .timeout(MOUNT_TIMEOUT)
            .output();
        let result = if out.success() {
            Ok(())
        } else {
            let lazy = Cmd::new("umount")
                .arg("-l")
                .arg(&self.mount_point)
                .timeout(MOUNT_TIMEOUT)
                .output();
            Err(format!(
                "umount {} failed (busy?); lazy unmount {}:\n{out}\n{lazy}",
                self.mount_point.display(),
                if lazy.success() { "done" } else { "failed too" }
            ))
        };
        if !is_mountpoint(&self.mount_point) {
            if let Err(e) = std::fs::remove_dir(&self.mount_point) {
                eprintln!(
                    "cannot remove mount point {}: {e}",
                    self.mount_point.display()
                );
            }
        }
        result
    }
}

impl Drop for KernelMount {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_inner() {
            eprintln!("KernelMount drop: {e}");
        }
    }
}
