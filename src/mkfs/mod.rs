//! The image builder behind `mkfs.fext`: turns [`MkfsOptions`] and a target
//! into a fresh ext2/ext3/ext4 file system, optionally populated from a
//! directory tree (`-d`).

pub mod alloc;
pub mod builder;
pub mod filemap;
pub mod format;
pub mod journal;
pub mod layout;
pub mod options;
pub mod orphan_file;
pub mod plan;
pub mod populate;
pub mod random;
pub mod special;
pub mod target;

pub use options::{FsType, MkfsOptions};
