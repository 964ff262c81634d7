//! Thin libc wrappers for the system calls the daemon tests exercise that
//! std does not offer (renameat2, mknod, utimensat, fallocate, SEEK_DATA,
//! copy_file_range, statvfs, mmap, fsync of directories), each returning
//! `io::Result` so tests can check the exact errno.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::path::Path;

/// The path as a C string (panics on an embedded NUL: a test bug).
pub fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("path without NUL")
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The errno of a result (0 if it succeeded).
pub fn errno_of<T>(r: &io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// Name of an errno value, for messages (`"EEXIST"`), or the number.
pub fn errno_name(e: i32) -> String {
    let names = [
        (0, "OK"),
        (libc::EPERM, "EPERM"),
        (libc::ENOENT, "ENOENT"),
        (libc::EIO, "EIO"),
        (libc::EBADF, "EBADF"),
        (libc::EACCES, "EACCES"),
        (libc::EBUSY, "EBUSY"),
        (libc::EEXIST, "EEXIST"),
        (libc::EXDEV, "EXDEV"),
        (libc::ENOTDIR, "ENOTDIR"),
        (libc::EISDIR, "EISDIR"),
        (libc::EINVAL, "EINVAL"),
        (libc::EFBIG, "EFBIG"),
        (libc::ENOSPC, "ENOSPC"),
        (libc::ESPIPE, "ESPIPE"),
        (libc::EMLINK, "EMLINK"),
        (libc::ERANGE, "ERANGE"),
        (libc::ENAMETOOLONG, "ENAMETOOLONG"),
        (libc::ENOTEMPTY, "ENOTEMPTY"),
        (libc::ENODATA, "ENODATA"),
        (libc::ENXIO, "ENXIO"),
        (libc::E2BIG, "E2BIG"),
        (libc::EOPNOTSUPP, "EOPNOTSUPP"),
        (libc::ENOSYS, "ENOSYS"),
        (libc::ENOTCONN, "ENOTCONN"),
        (libc::EUCLEAN, "EUCLEAN"),
    ];
    names
        .iter()
        .find(|(n, _)| *n == e)
        .map_or_else(|| format!("errno {e}"), |(_, s)| (*s).to_string())
}

/// Assert that `r` failed with `want` (message names both errnos).
#[track_caller]
pub fn expect_errno<T: std::fmt::Debug>(r: io::Result<T>, want: i32, what: &str) {
    let got = errno_of(&r);
    assert!(
        got == want,
        "{what}: expected {}, got {} ({r:?})",
        errno_name(want),
        errno_name(got)
    );
}

/// open(2) with raw flags and mode; the descriptor as a `File`.
pub fn open(path: &Path, flags: libc::c_int, mode: libc::mode_t) -> io::Result<File> {
    let p = cpath(path);
    // SAFETY: `p` is NUL-terminated; the returned descriptor is owned by the File.
    let fd = unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: a fresh descriptor nobody else owns.
        Ok(unsafe { File::from_raw_fd(fd) })
    }
}

/// renameat2(AT_FDCWD, from, AT_FDCWD, to, flags).
pub fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> io::Result<()> {
    let (a, b) = (cpath(from), cpath(to));
    // SAFETY: both strings are NUL-terminated.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    };
    check(rc)
}

/// mknod(2).
pub fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
    let p = cpath(path);
    // SAFETY: `p` is NUL-terminated.
    check(unsafe { libc::mknod(p.as_ptr(), mode, dev) })
}

/// A timespec for [`utimensat`]: seconds and nanoseconds, or `UTIME_NOW` /
/// `UTIME_OMIT` in `nsec`.
pub fn ts(sec: i64, nsec: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

/// utimensat(AT_FDCWD, path, [atime, mtime], AT_SYMLINK_NOFOLLOW if `nofollow`).
pub fn utimensat(
    path: &Path,
    atime: libc::timespec,
    mtime: libc::timespec,
    nofollow: bool,
) -> io::Result<()> {
    let p = cpath(path);
    let times = [atime, mtime];
    let flags = if nofollow {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    };
    // SAFETY: `p` is NUL-terminated, `times` holds two timespecs.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), flags) })
}

/// fallocate(2).
pub fn fallocate(f: &File, mode: libc::c_int, off: u64, len: u64) -> io::Result<()> {
    let off = libc::off_t::try_from(off).expect("offset fits off_t");
    let len = libc::off_t::try_from(len).expect("length fits off_t");
    // SAFETY: plain syscall on an open descriptor.
    check(unsafe { libc::fallocate(f.as_raw_fd(), mode, off, len) })
}

/// lseek(2) with any whence (SEEK_DATA/SEEK_HOLE included).
pub fn lseek(f: &File, off: i64, whence: libc::c_int) -> io::Result<u64> {
    // SAFETY: plain syscall on an open descriptor.
    let r = unsafe { libc::lseek(f.as_raw_fd(), off, whence) };
    u64::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// copy_file_range(2) between explicit offsets; bytes copied.
pub fn copy_file_range(
    src: &File,
    src_off: u64,
    dst: &File,
    dst_off: u64,
    len: usize,
) -> io::Result<usize> {
    let mut a = libc::loff_t::try_from(src_off).expect("offset fits");
    let mut b = libc::loff_t::try_from(dst_off).expect("offset fits");
    // SAFETY: both descriptors are open; the offsets are valid pointers.
    let r =
        unsafe { libc::copy_file_range(src.as_raw_fd(), &mut a, dst.as_raw_fd(), &mut b, len, 0) };
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// statvfs(3).
pub fn statvfs(path: &Path) -> io::Result<libc::statvfs> {
    let p = cpath(path);
    // SAFETY: all-zero is a valid statvfs; the call fills it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `p` is NUL-terminated, `st` is a valid out pointer.
    check(unsafe { libc::statvfs(p.as_ptr(), &mut st) })?;
    Ok(st)
}

/// syncfs(2) of the file system holding `f`.
pub fn syncfs(f: &File) -> io::Result<()> {
    // SAFETY: plain syscall on an open descriptor.
    check(unsafe { libc::syncfs(f.as_raw_fd()) })
}

/// fsync a directory (opens it read-only).
pub fn fsync_dir(path: &Path) -> io::Result<()> {
    let f = open(path, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    f.sync_all()
}

/// A shared, writable mapping of the first `len` bytes of `f`; unmapped on drop.
pub struct Mmap {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mmap {
    /// mmap(PROT_READ|PROT_WRITE, MAP_SHARED).
    pub fn shared_rw(f: &File, len: usize) -> io::Result<Mmap> {
        // SAFETY: a fresh mapping of an open descriptor; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            Err(io::Error::last_os_error())
        } else {
            Ok(Mmap { ptr, len })
        }
    }

    /// The mapped bytes.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes long and lives as long as self;
        // the test only touches pages inside the file.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast::<u8>(), self.len) }
    }

    /// msync(MS_SYNC) of the whole mapping.
    pub fn msync(&self) -> io::Result<()> {
        // SAFETY: the range is exactly the mapping.
        check(unsafe { libc::msync(self.ptr, self.len, libc::MS_SYNC) })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what mmap returned.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}
