//! Extended attributes through libc's `l*xattr` calls (never following
//! symlinks), so no `attr` package or extra crate is needed.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// Largest xattr value we read (the VFS limit is 64 KiB).
const MAX_VALUE: usize = 65536;
/// Largest name list we read (the VFS limit is 64 KiB).
const MAX_LIST: usize = 65536;

fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("path without NUL")
}

fn cname(name: &OsStr) -> CString {
    CString::new(name.as_bytes()).expect("xattr name without NUL")
}

/// All xattr names of `path` (the link itself for symlinks).
pub fn list(path: &Path) -> io::Result<Vec<OsString>> {
    let p = cpath(path);
    let mut buf = vec![0u8; MAX_LIST];
    // SAFETY: `p` is NUL-terminated, `buf` is valid for `buf.len()` bytes.
    let n = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    buf.truncate(n);
    Ok(buf
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| OsString::from_vec(s.to_vec()))
        .collect())
}

/// The value of xattr `name` of `path` (the link itself for symlinks).
pub fn get(path: &Path, name: impl AsRef<OsStr>) -> io::Result<Vec<u8>> {
    let p = cpath(path);
    let n = cname(name.as_ref());
    let mut buf = vec![0u8; MAX_VALUE];
    // SAFETY: both strings are NUL-terminated, `buf` is valid for its length.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let len = usize::try_from(len).map_err(|_| io::Error::last_os_error())?;
    buf.truncate(len);
    Ok(buf)
}

/// Set xattr `name` of `path` (the link itself for symlinks) to `value`.
pub fn set(path: &Path, name: impl AsRef<OsStr>, value: &[u8]) -> io::Result<()> {
    let p = cpath(path);
    let n = cname(name.as_ref());
    // SAFETY: both strings are NUL-terminated, `value` is valid for its length.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Remove xattr `name` of `path` (the link itself for symlinks).
pub fn remove(path: &Path, name: impl AsRef<OsStr>) -> io::Result<()> {
    let p = cpath(path);
    let n = cname(name.as_ref());
    // SAFETY: both strings are NUL-terminated.
    let rc = unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
