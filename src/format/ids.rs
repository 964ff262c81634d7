//! Newtypes for the numbers that must never be mixed up: physical block
//! numbers, logical (file-relative) block numbers, inode numbers and block
//! group numbers. Units are part of the name, as elsewhere in fext.

use std::fmt;

/// A block number on the device, counted in file-system blocks from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PhysBlock(pub u64);

/// A block number within a file, counted in file-system blocks from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogicalBlock(pub u32);

/// An inode number; 1 is the first, 0 means "none".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct InodeNo(pub u32);

/// A block group number, counted from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GroupNo(pub u32);

impl fmt::Display for PhysBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "block {}", self.0)
    }
}

impl fmt::Display for LogicalBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "logical block {}", self.0)
    }
}

impl fmt::Display for InodeNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "inode {}", self.0)
    }
}

impl fmt::Display for GroupNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group {}", self.0)
    }
}

/// Well-known inode numbers.
pub mod special {
    use super::InodeNo;
    pub const BAD_BLOCKS: InodeNo = InodeNo(1);
    pub const ROOT: InodeNo = InodeNo(2);
    pub const USR_QUOTA: InodeNo = InodeNo(3);
    pub const GRP_QUOTA: InodeNo = InodeNo(4);
    pub const BOOT_LOADER: InodeNo = InodeNo(5);
    pub const UNDEL_DIR: InodeNo = InodeNo(6);
    pub const RESIZE: InodeNo = InodeNo(7);
    pub const JOURNAL: InodeNo = InodeNo(8);
    pub const EXCLUDE: InodeNo = InodeNo(9);
    pub const REPLICA: InodeNo = InodeNo(10);
    /// The first inode of a revision-0 file system that is not reserved.
    pub const GOOD_OLD_FIRST: InodeNo = InodeNo(11);
}
