//! Errors of the format layer.
//!
//! Every value read from disk is validated before use; anything that does not
//! make sense becomes a [`FormatError`] naming the structure and what is wrong
//! with it. The format layer never panics on bad input.

use std::fmt;

/// Why a byte buffer could not be understood as an on-disk structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The buffer is shorter than the structure it should hold.
    TooShort {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// A magic number did not match.
    BadMagic { what: &'static str, found: u64 },
    /// A stored checksum does not match the computed one.
    BadChecksum {
        what: &'static str,
        stored: u32,
        computed: u32,
    },
    /// A field holds a value that is impossible or inconsistent.
    Corrupt { what: &'static str, detail: String },
    /// A valid structure uses something this implementation does not support.
    Unsupported { what: &'static str, detail: String },
}

impl FormatError {
    /// Shorthand for [`FormatError::Corrupt`].
    pub fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        FormatError::Corrupt {
            what,
            detail: detail.into(),
        }
    }

    /// Shorthand for [`FormatError::Unsupported`].
    pub fn unsupported(what: &'static str, detail: impl Into<String>) -> Self {
        FormatError::Unsupported {
            what,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::TooShort { what, need, have } => {
                write!(f, "{what}: need {need} bytes, have {have}")
            }
            FormatError::BadMagic { what, found } => {
                write!(f, "{what}: bad magic number {found:#x}")
            }
            FormatError::BadChecksum {
                what,
                stored,
                computed,
            } => write!(
                f,
                "{what}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            FormatError::Corrupt { what, detail } => write!(f, "{what} is corrupt: {detail}"),
            FormatError::Unsupported { what, detail } => {
                write!(f, "{what}: unsupported: {detail}")
            }
        }
    }
}

impl std::error::Error for FormatError {}

/// Result type of the format layer.
pub type Result<T> = std::result::Result<T, FormatError>;

/// Lets tools whose errors are plain messages (mkfs) use `?` on format
/// results.
impl From<FormatError> for String {
    fn from(e: FormatError) -> String {
        e.to_string()
    }
}
