//! The ext2/ext3/ext4 and jbd2 on-disk format: pure structures, parsed from
//! bytes and encoded to bytes, with their checksums.
//!
//! Nothing here does I/O or holds `unsafe`. Every parser validates what it
//! reads and returns a [`FormatError`] for bad input; encoders write into a
//! caller-provided buffer so bytes this code does not model are preserved.

pub mod bitmap;
pub mod bytes;
pub mod csum;
pub mod dir;
pub mod dx_hash;
pub mod error;
pub mod extent;
pub mod features;
pub mod geometry;
pub mod group_desc;
pub mod htree;
pub mod ids;
pub mod image;
pub mod indirect;
pub mod inode;
pub mod jbd2;
pub mod orphan;
pub mod quota;
pub(crate) mod record;
pub mod superblock;
pub mod xattr;

#[cfg(test)]
pub(crate) mod test_images;
#[cfg(test)]
pub(crate) mod testutil;

pub use error::{FormatError, Result};
pub use ids::{GroupNo, InodeNo, LogicalBlock, PhysBlock};
