//! The ext2/ext3/ext4 and jbd2 on-disk format: pure structures, parsed from
//! bytes and encoded to bytes, with their checksums.
//!
//! Nothing here does I/O or holds `unsafe`. Every parser validates what it
//! reads and returns a [`FormatError`] for bad input; encoders write into a
//! caller-provided buffer so bytes this code does not model are preserved.

pub mod bytes;
pub mod csum;
pub mod error;
pub mod ids;
pub mod jbd2;
pub mod orphan;
#[cfg(test)]
mod testutil;
pub mod xattr;

pub use error::{FormatError, Result};
pub use ids::{GroupNo, InodeNo, LogicalBlock, PhysBlock};
