//! The FUSE mount itself: mount(2) of a fresh `/dev/fuse` descriptor with
//! the file-system type `fuse.<subtype>` and the fsname as source, the way
//! libfuse mounts, so `mount`, `df` and /proc/self/mountinfo show
//! `fuse.fext` and the image path. (fuser 0.18's own mount(2) passes the
//! type `fuse` and drops the subtype.) The descriptor then goes to
//! `fuser::Session::from_fd`.
//!
//! When mount(2) is not permitted (not root), [`mount_fuse`] answers
//! `None` and the caller lets fuser mount through the setuid fusermount3,
//! which gets `subtype=` and `fsname=` and sets the type itself.
//!
//! Unmounting a direct mount is umount(2) of the mount point; the kernel
//! then ends the session (reads of the descriptor fail with ENODEV), as
//! with `umount` or `fusermount3 -u` from outside.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use fuser::MountOption;

/// What the mount needs besides the mount point.
pub struct MountSpec<'a> {
    /// Source shown in the mount table (the fsname).
    pub source: &'a str,
    /// The type becomes `fuse.<subtype>` (`fuse` when empty).
    pub subtype: &'a str,
    /// Flag options (ro, nodev, noatime, ...); others are ignored here.
    pub options: &'a [MountOption],
    pub allow_other: bool,
    pub default_permissions: bool,
}

/// mount(2) flags for the options: nodev and nosuid unless `dev`/`suid`
/// are given (the FUSE default), and the flag options as they say.
fn mount_flags(options: &[MountOption]) -> libc::c_ulong {
    let mut flags = libc::MS_NODEV | libc::MS_NOSUID;
    for o in options {
        match o {
            MountOption::Dev => flags &= !libc::MS_NODEV,
            MountOption::NoDev => flags |= libc::MS_NODEV,
            MountOption::Suid => flags &= !libc::MS_NOSUID,
            MountOption::NoSuid => flags |= libc::MS_NOSUID,
            MountOption::RO => flags |= libc::MS_RDONLY,
            MountOption::RW => flags &= !libc::MS_RDONLY,
            MountOption::Exec => flags &= !libc::MS_NOEXEC,
            MountOption::NoExec => flags |= libc::MS_NOEXEC,
            MountOption::Atime => flags &= !libc::MS_NOATIME,
            MountOption::NoAtime => flags |= libc::MS_NOATIME,
            MountOption::DirSync => flags |= libc::MS_DIRSYNC,
            MountOption::Sync => flags |= libc::MS_SYNCHRONOUS,
            MountOption::Async => flags &= !libc::MS_SYNCHRONOUS,
            _ => {}
        }
    }
    flags
}

fn cstring(s: &[u8], what: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

/// Mounts a FUSE file system at `mountpoint` and returns the `/dev/fuse`
/// descriptor serving it; `None` when mount(2) is not permitted (EPERM),
/// so the caller can fall back to fusermount3.
pub fn mount_fuse(mountpoint: &Path, spec: &MountSpec<'_>) -> io::Result<Option<OwnedFd>> {
    let root_mode = std::fs::metadata(mountpoint)?.mode() & libc::S_IFMT;
    let dev: File = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/fuse")
        .map_err(|e| io::Error::new(e.kind(), format!("/dev/fuse: {e}")))?;
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut data = format!(
        "fd={},rootmode={root_mode:o},user_id={uid},group_id={gid}",
        dev.as_raw_fd()
    );
    if spec.default_permissions {
        data.push_str(",default_permissions");
    }
    if spec.allow_other {
        data.push_str(",allow_other");
    }
    let fstype = if spec.subtype.is_empty() {
        "fuse".to_string()
    } else {
        format!("fuse.{}", spec.subtype)
    };
    let c_source = cstring(spec.source.as_bytes(), "fsname")?;
    let c_target = cstring(mountpoint.as_os_str().as_bytes(), "mount point")?;
    let c_type = cstring(fstype.as_bytes(), "subtype")?;
    let c_data = cstring(data.as_bytes(), "mount data")?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the
    // call; `dev` stays open across it (the kernel takes its own reference).
    let r = unsafe {
        libc::mount(
            c_source.as_ptr(),
            c_target.as_ptr(),
            c_type.as_ptr(),
            mount_flags(spec.options),
            c_data.as_ptr().cast(),
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EPERM) {
            return Ok(None);
        }
        return Err(io::Error::new(
            e.kind(),
            format!("mount(2) of type {fstype}: {e}"),
        ));
    }
    Ok(Some(OwnedFd::from(dev)))
}

/// Unmounts a mount made by [`mount_fuse`]; `lazy` detaches it even while
/// busy (used when the session could not start).
pub fn unmount_fuse(mountpoint: &Path, lazy: bool) -> io::Result<()> {
    let c_target = cstring(mountpoint.as_os_str().as_bytes(), "mount point")?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: `c_target` is a NUL-terminated path.
    if unsafe { libc::umount2(c_target.as_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_default_to_nodev_nosuid_and_follow_the_options() {
        let f = mount_flags(&[]);
        assert_eq!(f, libc::MS_NODEV | libc::MS_NOSUID);
        let f = mount_flags(&[MountOption::Dev, MountOption::RO, MountOption::NoAtime]);
        assert_eq!(f, libc::MS_NOSUID | libc::MS_RDONLY | libc::MS_NOATIME);
    }
}
