//! Lenient access to the fields of an on-disk inode, for a checker that must
//! look at inodes the strict parser refuses (bad `i_extra_isize`, garbage).
//!
//! The offsets are those of `struct ext4_inode` (see `format::inode`); the
//! Linux `osd2` layout is assumed except where the Hurd differs (noted).
//! Getters read from any slice of at least 128 bytes (shorter slices read
//! as zeros); setters write into a buffer of the inode's size.

use crate::format::bytes::{get_u16, get_u32};
use crate::format::inode::{
    S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};

pub const I_MODE: usize = 0x00;
pub const I_UID: usize = 0x02;
pub const I_SIZE_LO: usize = 0x04;
pub const I_ATIME: usize = 0x08;
pub const I_CTIME: usize = 0x0C;
pub const I_MTIME: usize = 0x10;
pub const I_DTIME: usize = 0x14;
pub const I_GID: usize = 0x18;
pub const I_LINKS: usize = 0x1A;
pub const I_BLOCKS_LO: usize = 0x1C;
pub const I_FLAGS: usize = 0x20;
pub const I_BLOCK: usize = 0x28;
pub const I_BLOCK_END: usize = 0x64;
pub const I_GENERATION: usize = 0x64;
pub const I_FILE_ACL_LO: usize = 0x68;
pub const I_SIZE_HIGH: usize = 0x6C;
pub const I_FADDR: usize = 0x70;
/// Linux: `l_i_blocks_hi` (u16). Hurd: `h_i_frag` (u8) and `h_i_fsize` (u8).
pub const I_BLOCKS_HI: usize = 0x74;
/// Linux: `l_i_file_acl_high` (u16). Hurd: `h_i_mode_high`.
pub const I_FILE_ACL_HI: usize = 0x76;
pub const I_UID_HI: usize = 0x78;
pub const I_GID_HI: usize = 0x7A;
pub const I_CSUM_LO: usize = 0x7C;
pub const I_EXTRA_ISIZE: usize = 0x80;
pub const I_CSUM_HI: usize = 0x82;
pub const I_CTIME_EXTRA: usize = 0x84;
pub const I_MTIME_EXTRA: usize = 0x88;
pub const I_ATIME_EXTRA: usize = 0x8C;
pub const I_CRTIME: usize = 0x90;
pub const I_CRTIME_EXTRA: usize = 0x94;

/// Inode flags used by the checker.
pub mod fl {
    pub const IMMUTABLE: u32 = 0x10;
    pub const APPEND: u32 = 0x20;
    pub const COMPR: u32 = 0x4;
    pub const ENCRYPT: u32 = 0x800;
    pub const INDEX: u32 = 0x1000;
    pub const IMAGIC: u32 = 0x2000;
    pub const HUGE_FILE: u32 = 0x4_0000;
    pub const EXTENTS: u32 = 0x8_0000;
    pub const VERITY: u32 = 0x10_0000;
    pub const EA_INODE: u32 = 0x20_0000;
    pub const INLINE_DATA: u32 = 0x1000_0000;
    pub const CASEFOLD: u32 = 0x4000_0000;
}

fn u16_or0(b: &[u8], off: usize) -> u16 {
    get_u16(b, off).unwrap_or(0)
}
fn u32_or0(b: &[u8], off: usize) -> u32 {
    get_u32(b, off).unwrap_or(0)
}

/// Read access to the fields of a raw inode.
pub trait InodeRead {
    fn raw(&self) -> &[u8];

    fn mode(&self) -> u16 {
        u16_or0(self.raw(), I_MODE)
    }
    fn file_type(&self) -> u16 {
        self.mode() & S_IFMT
    }
    fn is_dir(&self) -> bool {
        self.file_type() == S_IFDIR
    }
    fn is_reg(&self) -> bool {
        self.file_type() == S_IFREG
    }
    fn is_symlink(&self) -> bool {
        self.file_type() == S_IFLNK
    }
    fn is_chr(&self) -> bool {
        self.file_type() == S_IFCHR
    }
    fn is_blk(&self) -> bool {
        self.file_type() == S_IFBLK
    }
    fn is_fifo(&self) -> bool {
        self.file_type() == S_IFIFO
    }
    fn is_sock(&self) -> bool {
        self.file_type() == S_IFSOCK
    }
    fn uid(&self) -> u32 {
        u32::from(u16_or0(self.raw(), I_UID)) | u32::from(u16_or0(self.raw(), I_UID_HI)) << 16
    }
    fn gid(&self) -> u32 {
        u32::from(u16_or0(self.raw(), I_GID)) | u32::from(u16_or0(self.raw(), I_GID_HI)) << 16
    }
    fn size_lo(&self) -> u32 {
        u32_or0(self.raw(), I_SIZE_LO)
    }
    fn size_high(&self) -> u32 {
        u32_or0(self.raw(), I_SIZE_HIGH)
    }
    /// `i_size` with `i_size_high`.
    fn size(&self) -> u64 {
        u64::from(self.size_lo()) | u64::from(self.size_high()) << 32
    }
    fn mtime(&self) -> u32 {
        u32_or0(self.raw(), I_MTIME)
    }
    fn dtime(&self) -> u32 {
        u32_or0(self.raw(), I_DTIME)
    }
    fn links(&self) -> u16 {
        u16_or0(self.raw(), I_LINKS)
    }
    fn blocks_lo(&self) -> u32 {
        u32_or0(self.raw(), I_BLOCKS_LO)
    }
    fn blocks_hi(&self) -> u16 {
        u16_or0(self.raw(), I_BLOCKS_HI)
    }
    fn flags(&self) -> u32 {
        u32_or0(self.raw(), I_FLAGS)
    }
    fn has_flag(&self, f: u32) -> bool {
        self.flags() & f != 0
    }
    /// `i_block[i]` as a u32 (i < 15).
    fn block_word(&self, i: usize) -> u32 {
        u32_or0(self.raw(), I_BLOCK + 4 * i)
    }
    /// The 60 bytes of `i_block`.
    fn i_block(&self) -> &[u8] {
        self.raw().get(I_BLOCK..I_BLOCK_END).unwrap_or(&[])
    }
    fn generation(&self) -> u32 {
        u32_or0(self.raw(), I_GENERATION)
    }
    fn file_acl_lo(&self) -> u32 {
        u32_or0(self.raw(), I_FILE_ACL_LO)
    }
    fn file_acl_hi(&self) -> u16 {
        u16_or0(self.raw(), I_FILE_ACL_HI)
    }
    /// `i_file_acl` (with the high half unless `hurd`).
    fn file_acl(&self, hurd: bool) -> u64 {
        let hi = if hurd {
            0
        } else {
            u64::from(self.file_acl_hi())
        };
        u64::from(self.file_acl_lo()) | hi << 32
    }
    fn faddr(&self) -> u32 {
        u32_or0(self.raw(), I_FADDR)
    }
    /// `i_extra_isize` (0 for 128-byte inodes).
    fn extra_isize(&self, inode_size: usize) -> u16 {
        if inode_size > 128 {
            u16_or0(self.raw(), I_EXTRA_ISIZE)
        } else {
            0
        }
    }
    /// Whether every byte is zero.
    fn is_zeroed(&self) -> bool {
        self.raw().iter().all(|&b| b == 0)
    }
}

impl InodeRead for [u8] {
    fn raw(&self) -> &[u8] {
        self
    }
}

impl InodeRead for Vec<u8> {
    fn raw(&self) -> &[u8] {
        self
    }
}

fn put16(b: &mut [u8], off: usize, v: u16) {
    if let Some(d) = b.get_mut(off..off + 2) {
        d.copy_from_slice(&v.to_le_bytes());
    }
}
fn put32(b: &mut [u8], off: usize, v: u32) {
    if let Some(d) = b.get_mut(off..off + 4) {
        d.copy_from_slice(&v.to_le_bytes());
    }
}

/// Write access to the fields of a raw inode (a private copy).
pub trait InodeWrite: InodeRead {
    fn raw_mut(&mut self) -> &mut [u8];

    fn set_mode(&mut self, v: u16) {
        put16(self.raw_mut(), I_MODE, v);
    }
    fn set_size(&mut self, v: u64) {
        put32(self.raw_mut(), I_SIZE_LO, (v & 0xffff_ffff) as u32);
        put32(self.raw_mut(), I_SIZE_HIGH, (v >> 32) as u32);
    }
    fn set_dtime(&mut self, v: u32) {
        put32(self.raw_mut(), I_DTIME, v);
    }
    fn set_links(&mut self, v: u16) {
        put16(self.raw_mut(), I_LINKS, v);
    }
    /// Stores `i_blocks` (raw units) in `i_blocks_lo` and `l_i_blocks_hi`.
    fn set_blocks_raw(&mut self, v: u64) {
        put32(self.raw_mut(), I_BLOCKS_LO, (v & 0xffff_ffff) as u32);
        put16(self.raw_mut(), I_BLOCKS_HI, ((v >> 32) & 0xffff) as u16);
    }
    fn set_flags(&mut self, v: u32) {
        put32(self.raw_mut(), I_FLAGS, v);
    }
    fn clear_flags(&mut self, f: u32) {
        let v = self.flags() & !f;
        self.set_flags(v);
    }
    fn set_block_word(&mut self, i: usize, v: u32) {
        put32(self.raw_mut(), I_BLOCK + 4 * i, v);
    }
    fn set_i_block(&mut self, bytes: &[u8]) {
        if let Some(d) = self.raw_mut().get_mut(I_BLOCK..I_BLOCK_END) {
            let n = bytes.len().min(d.len());
            d[..n].copy_from_slice(&bytes[..n]);
            d[n..].iter_mut().for_each(|b| *b = 0);
        }
    }
    fn set_file_acl(&mut self, v: u64, hurd: bool) {
        put32(self.raw_mut(), I_FILE_ACL_LO, (v & 0xffff_ffff) as u32);
        if !hurd {
            put16(self.raw_mut(), I_FILE_ACL_HI, ((v >> 32) & 0xffff) as u16);
        }
    }
    fn set_faddr(&mut self, v: u32) {
        put32(self.raw_mut(), I_FADDR, v);
    }
    fn set_extra_isize(&mut self, v: u16) {
        put16(self.raw_mut(), I_EXTRA_ISIZE, v);
    }
    fn set_u8(&mut self, off: usize, v: u8) {
        if let Some(b) = self.raw_mut().get_mut(off) {
            *b = v;
        }
    }
    fn set_u16_at(&mut self, off: usize, v: u16) {
        put16(self.raw_mut(), off, v);
    }
    fn set_u32_at(&mut self, off: usize, v: u32) {
        put32(self.raw_mut(), off, v);
    }
}

impl InodeWrite for Vec<u8> {
    fn raw_mut(&mut self) -> &mut [u8] {
        self
    }
}

/// A human name for the file type of a mode, as e2fsck prints it.
pub fn type_name(mode: u16) -> &'static str {
    match mode & S_IFMT {
        S_IFREG => "regular file",
        S_IFDIR => "directory",
        S_IFCHR => "character device",
        S_IFBLK => "block device",
        S_IFIFO => "named pipe",
        S_IFLNK => "symbolic link",
        S_IFSOCK => "socket",
        _ => "unknown file type",
    }
}
