//! Errors of the file-system core: an errno for the caller (the FUSE
//! adapter replies with it) and, for corruption, a logged explanation.

use std::fmt;

use crate::format::FormatError;

/// An operation's failure, as the errno the kernel expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsError {
    pub errno: i32,
    pub detail: String,
}

pub type FsResult<T> = Result<T, FsError>;

impl FsError {
    pub fn new(errno: i32, detail: impl Into<String>) -> Self {
        FsError {
            errno,
            detail: detail.into(),
        }
    }
    pub fn errno(errno: i32) -> Self {
        FsError {
            errno,
            detail: String::new(),
        }
    }
    /// Corruption found on disk: EUCLEAN as Linux reports it, logged.
    pub fn corrupt(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        log::error!("corruption: {detail}");
        FsError {
            errno: libc::EUCLEAN,
            detail,
        }
    }
}

macro_rules! errno_ctor {
    ($($name:ident => $val:ident),* $(,)?) => {
        impl FsError {
            $(pub fn $name() -> Self { FsError::errno(libc::$val) })*
        }
    };
}

errno_ctor!(
    noent => ENOENT,
    exist => EEXIST,
    notdir => ENOTDIR,
    isdir => EISDIR,
    notempty => ENOTEMPTY,
    nospc => ENOSPC,
    inval => EINVAL,
    rofs => EROFS,
    nametoolong => ENAMETOOLONG,
    mlink => EMLINK,
    perm => EPERM,
    access => EACCES,
    nodata => ENODATA,
    range => ERANGE,
    io => EIO,
    fbig => EFBIG,
    xdev => EXDEV,
    opnotsupp => EOPNOTSUPP,
    nxio => ENXIO,
    e2big => E2BIG,
);

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = std::io::Error::from_raw_os_error(self.errno);
        if self.detail.is_empty() {
            write!(f, "{name}")
        } else {
            write!(f, "{name}: {}", self.detail)
        }
    }
}

impl std::error::Error for FsError {}

impl From<FormatError> for FsError {
    fn from(e: FormatError) -> Self {
        FsError::corrupt(e.to_string())
    }
}

impl From<std::io::Error> for FsError {
    fn from(e: std::io::Error) -> Self {
        let errno = e.raw_os_error().unwrap_or(libc::EIO);
        log::error!("I/O error: {e}");
        FsError::new(errno, e.to_string())
    }
}
