//! fext: an ext4-compatible filesystem in user space.
//!
//! The crate is layered bottom-up (see `../shared/DESIGN.md`):
//! - [`format`]: pure on-disk structures of ext2/3/4 and jbd2, parsed from and
//!   encoded to bytes, with checksums. No I/O, no `unsafe`.

pub mod daemon;
pub mod device;
pub mod format;
pub mod fs;
pub mod fsck;
pub mod fuse;
pub mod image_fault;
pub mod mkfs;
