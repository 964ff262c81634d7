//! `umount` that waits for the daemon's final write-back.
//!
//! The kernel ends a plain FUSE mount at umount(2) without waiting for the
//! daemon (FUSE_DESTROY is sent only for `fuseblk`), so `umount MNT`
//! returns while fext is still writing its dirty cache into the image: a
//! script that runs `e2fsck IMG` right after would look at a half-written
//! image. util-linux's umount(8) runs `/sbin/umount.<type>` when it exists;
//! installed as `umount.fuse.fext` (a name of the `fext` binary, see
//! `scripts/install`), this module unmounts and then waits until the
//! daemon has let go of the image.
//!
//! The daemon leaves a registration for each mount: a file in
//! `/run/fext/` (or `$XDG_RUNTIME_DIR/fext/` when not root) named after a
//! hash of the mount point, holding the mount point and the image path,
//! removed when the daemon exits. The daemon holds an flock on the image
//! until its final write-back is done and the image is closed, so waiting
//! is: take a shared flock on the image (polled, bounded by
//! [`WAIT_LIMIT`]). Without a registration (another daemon, a registration
//! directory not writable) the helper only unmounts.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::format::csum::crc32c;

/// How long the helper waits for the daemon to finish writing back.
pub const WAIT_LIMIT: Duration = Duration::from_secs(600);
/// umount(8)'s exit code for a failed unmount.
const EXIT_FAILURE: i32 = 32;

/// Where registrations live for this user.
fn registry_dir() -> Option<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Some(PathBuf::from("/run/fext"));
    }
    std::env::var_os("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("fext"))
}

/// The registration file of a mount point.
fn registration_path(dir: &Path, mountpoint: &Path) -> PathBuf {
    let h = crc32c(!0, mountpoint.as_os_str().as_bytes());
    dir.join(format!("{h:08x}.mount"))
}

/// A mount's registration, removed on drop (when the daemon is done).
pub struct Registration {
    path: PathBuf,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Records that the daemon serving `mountpoint` (absolute) holds `image`
/// (absolute). None, logged, when the registry cannot be written: the
/// mount works the same, `umount` just does not wait.
pub fn register(mountpoint: &Path, image: &Path) -> Option<Registration> {
    register_in(&registry_dir()?, mountpoint, image)
}

fn register_in(dir: &Path, mountpoint: &Path, image: &Path) -> Option<Registration> {
    let path = registration_path(dir, mountpoint);
    let mut text = Vec::new();
    text.extend_from_slice(mountpoint.as_os_str().as_bytes());
    text.push(b'\n');
    text.extend_from_slice(image.as_os_str().as_bytes());
    text.push(b'\n');
    let r = fs::create_dir_all(dir).and_then(|()| fs::write(&path, &text));
    match r {
        Ok(()) => Some(Registration { path }),
        Err(e) => {
            log::info!("no umount registration in {}: {e}", dir.display());
            None
        }
    }
}

/// The image registered for `mountpoint`, if any.
fn registered_image(mountpoint: &Path) -> Option<PathBuf> {
    read_registration(&registry_dir()?, mountpoint)
}

fn read_registration(dir: &Path, mountpoint: &Path) -> Option<PathBuf> {
    let path = registration_path(dir, mountpoint);
    let text = fs::read(path).ok()?;
    let mut lines = text.split(|&b| b == b'\n');
    let mp = lines.next()?;
    let image = lines.next()?;
    if mp != mountpoint.as_os_str().as_bytes() || image.is_empty() {
        return None;
    }
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(image)))
}

/// Waits until nobody holds an exclusive flock on `image` (the daemon has
/// exited), up to `limit`.
fn wait_for_image(image: &Path, limit: Duration) -> io::Result<()> {
    let f = File::open(image)?;
    let start = Instant::now();
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(e);
        }
        if start.elapsed() >= limit {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the fext daemon still holds {} after {} s",
                    image.display(),
                    limit.as_secs()
                ),
            ));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// What umount(8) asked for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Request {
    target: Option<PathBuf>,
    lazy: bool,
    force: bool,
    verbose: bool,
}

fn parse(args: &[OsString]) -> Result<Request, String> {
    let mut r = Request::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-l") => r.lazy = true,
            Some("-f") => r.force = true,
            Some("-v") => r.verbose = true,
            Some("-n" | "-r" | "-i") => {}
            Some("-t" | "-N") => {
                it.next();
            }
            Some(s) if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ => {
                if r.target.replace(PathBuf::from(a)).is_some() {
                    return Err("more than one mount point".into());
                }
            }
        }
    }
    if r.target.is_none() {
        return Err("no mount point".into());
    }
    Ok(r)
}

/// Entry point when the binary runs as `umount.fuse.fext`: `args` are the
/// arguments after the program name. Returns the exit code.
pub fn main(args: &[OsString]) -> i32 {
    let req = match parse(args) {
        Ok(r) => r,
        Err(msg) => {
            eprintln!("umount.fuse.fext: {msg}");
            eprintln!("usage: umount.fuse.fext [-flnrv] [-t TYPE] MOUNTPOINT");
            return EXIT_FAILURE;
        }
    };
    let target = req.target.expect("parse checks it");
    let image = registered_image(&target);
    let Ok(c_target) = std::ffi::CString::new(target.as_os_str().as_bytes()) else {
        eprintln!("umount.fuse.fext: mount point contains a NUL byte");
        return EXIT_FAILURE;
    };
    let mut flags = 0;
    if req.lazy {
        flags |= libc::MNT_DETACH;
    }
    if req.force {
        flags |= libc::MNT_FORCE;
    }
    // SAFETY: `c_target` is a NUL-terminated path.
    if unsafe { libc::umount2(c_target.as_ptr(), flags) } != 0 {
        let e = io::Error::last_os_error();
        eprintln!("umount: {}: {e}", target.display());
        return EXIT_FAILURE;
    }
    if req.verbose {
        println!("umount: {} unmounted", target.display());
    }
    if let Some(image) = image {
        if let Err(e) = wait_for_image(&image, WAIT_LIMIT) {
            eprintln!("umount.fuse.fext: waiting for write-back: {e}");
            return EXIT_FAILURE;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_what_umount_passes() {
        let r = parse(&args(&["/mnt/x", "-n", "-v", "-t", "fuse.fext"])).unwrap();
        assert_eq!(r.target, Some(PathBuf::from("/mnt/x")));
        assert!(r.verbose && !r.lazy && !r.force);
        let r = parse(&args(&["-l", "-f", "/m"])).unwrap();
        assert!(r.lazy && r.force);
        assert!(parse(&args(&["-x", "/m"])).is_err());
        assert!(parse(&args(&["-n"])).is_err());
        assert!(parse(&args(&["/a", "/b"])).is_err());
    }

    #[test]
    fn registration_round_trips_and_is_removed_on_drop() {
        let dir = std::env::temp_dir().join(format!("fext-reg-{}", std::process::id()));
        let mp = Path::new("/some/mount point");
        let reg = register_in(&dir, mp, Path::new("/images/a.img")).unwrap();
        assert_eq!(
            read_registration(&dir, mp),
            Some(PathBuf::from("/images/a.img"))
        );
        assert_eq!(read_registration(&dir, Path::new("/other")), None);
        drop(reg);
        assert_eq!(read_registration(&dir, mp), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
