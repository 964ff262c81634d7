//! On-disk inodes: `s_inode_size` bytes each (128 on old file systems,
//! 256 by default) in each group's inode table.
//!
//! Layout (`struct ext4_inode`):
//! ```text
//! 0x00 i_mode u16        0x02 i_uid (lo) u16     0x04 i_size_lo
//! 0x08 i_atime           0x0C i_ctime            0x10 i_mtime
//! 0x14 i_dtime           0x18 i_gid (lo) u16     0x1A i_links_count u16
//! 0x1C i_blocks_lo       0x20 i_flags            0x24 osd1 (l_i_version)
//! 0x28 i_block[15] (60 bytes: block map, extent root, or inline data)
//! 0x64 i_generation      0x68 i_file_acl_lo      0x6C i_size_high
//! 0x70 i_obso_faddr
//! 0x74 l_i_blocks_high u16   0x76 l_i_file_acl_high u16
//! 0x78 l_i_uid_high u16      0x7A l_i_gid_high u16
//! 0x7C l_i_checksum_lo u16   0x7E l_i_reserved u16
//! -- extra part, present when s_inode_size > 128; i_extra_isize says how
//!    much of it is in use --
//! 0x80 i_extra_isize u16  0x82 i_checksum_hi u16
//! 0x84 i_ctime_extra      0x88 i_mtime_extra     0x8C i_atime_extra
//! 0x90 i_crtime           0x94 i_crtime_extra    0x98 i_version_hi
//! 0x9C i_projid           (0xA0 = end of the 32-byte extra part)
//! then in-inode extended attributes up to s_inode_size.
//! ```
//!
//! Timestamps: seconds are a signed 32-bit value; an `_extra` word holds the
//! nanoseconds in its upper 30 bits and two epoch bits that extend the
//! seconds to 34 bits (years up to 2446).
//!
//! Checksum (metadata_csum): crc32c(inode_seed, whole inode with the two
//! checksum fields zeroed), inode_seed = crc32c(crc32c(fs_seed, le32 ino),
//! le32 generation); the high 16 bits are stored only when i_extra_isize
//! reaches i_checksum_hi.

use super::bytes::{join_u64, put_u16, require_len, u16_at};
use super::csum::{crc32c, inode_seed};
use super::error::{FormatError, Result};
use super::ids::InodeNo;
use super::record::le_record;

/// Size of the original ext2 inode.
pub const GOOD_OLD_INODE_SIZE: usize = 128;
/// Bytes of `i_block`.
pub const I_BLOCK_LEN: usize = 60;
/// The extra-part size mke2fs and the kernel use for new inodes.
pub const DEFAULT_EXTRA_ISIZE: u16 = 32;

const CSUM_LO_OFFSET: usize = 0x7C;
const CSUM_HI_OFFSET: usize = 0x82;
/// i_extra_isize must reach past i_checksum_hi for the high half to exist.
const CSUM_HI_EXTRA_END: u16 = 4;

/// `i_mode` file type bits.
pub const S_IFMT: u16 = 0o170000;
pub const S_IFSOCK: u16 = 0o140000;
pub const S_IFLNK: u16 = 0o120000;
pub const S_IFREG: u16 = 0o100000;
pub const S_IFBLK: u16 = 0o060000;
pub const S_IFDIR: u16 = 0o040000;
pub const S_IFCHR: u16 = 0o020000;
pub const S_IFIFO: u16 = 0o010000;

/// `i_flags` bits.
pub mod flags {
    pub const SECRM: u32 = 0x0000_0001;
    pub const UNRM: u32 = 0x0000_0002;
    pub const COMPR: u32 = 0x0000_0004;
    pub const SYNC: u32 = 0x0000_0008;
    pub const IMMUTABLE: u32 = 0x0000_0010;
    pub const APPEND: u32 = 0x0000_0020;
    pub const NODUMP: u32 = 0x0000_0040;
    pub const NOATIME: u32 = 0x0000_0080;
    pub const ENCRYPT: u32 = 0x0000_0800;
    pub const INDEX: u32 = 0x0000_1000;
    pub const IMAGIC: u32 = 0x0000_2000;
    pub const JOURNAL_DATA: u32 = 0x0000_4000;
    pub const NOTAIL: u32 = 0x0000_8000;
    pub const DIRSYNC: u32 = 0x0001_0000;
    pub const TOPDIR: u32 = 0x0002_0000;
    pub const HUGE_FILE: u32 = 0x0004_0000;
    pub const EXTENTS: u32 = 0x0008_0000;
    pub const VERITY: u32 = 0x0010_0000;
    pub const EA_INODE: u32 = 0x0020_0000;
    pub const INLINE_DATA: u32 = 0x1000_0000;
    pub const PROJINHERIT: u32 = 0x2000_0000;
    pub const CASEFOLD: u32 = 0x4000_0000;
}

le_record! {
    /// The 128-byte base of `struct ext4_inode`.
    pub struct InodeBase {
        mode: u16 = 0x00,
        uid_lo: u16 = 0x02,
        size_lo: u32 = 0x04,
        atime: u32 = 0x08,
        ctime: u32 = 0x0C,
        mtime: u32 = 0x10,
        dtime: u32 = 0x14,
        gid_lo: u16 = 0x18,
        links_count: u16 = 0x1A,
        blocks_lo: u32 = 0x1C,
        flags: u32 = 0x20,
        version_lo: u32 = 0x24,
        block: [u8; 60] = 0x28,
        generation: u32 = 0x64,
        file_acl_lo: u32 = 0x68,
        size_high: u32 = 0x6C,
        obso_faddr: u32 = 0x70,
        blocks_high: u16 = 0x74,
        file_acl_high: u16 = 0x76,
        uid_high: u16 = 0x78,
        gid_high: u16 = 0x7A,
        checksum_lo: u16 = 0x7C,
        reserved: u16 = 0x7E,
    }
}

le_record! {
    /// The 32-byte extra part, at byte 0x80 of the inode.
    pub struct InodeExtra {
        extra_isize: u16 = 0x00,
        checksum_hi: u16 = 0x02,
        ctime_extra: u32 = 0x04,
        mtime_extra: u32 = 0x08,
        atime_extra: u32 = 0x0C,
        crtime: u32 = 0x10,
        crtime_extra: u32 = 0x14,
        version_hi: u32 = 0x18,
        projid: u32 = 0x1C,
    }
}

/// A timestamp with nanoseconds, as the kernel stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

impl Timestamp {
    pub fn new(sec: i64, nsec: u32) -> Self {
        Timestamp { sec, nsec }
    }

    /// Decodes the 32-bit seconds word and its `_extra` word.
    pub fn decode(base: u32, extra: u32) -> Self {
        let epoch = i64::from(extra & 3);
        let sec = i64::from(base as i32) + (epoch << 32);
        Timestamp {
            sec,
            nsec: (extra >> 2).min(999_999_999),
        }
    }

    /// Encodes into (seconds word, extra word), clamping to the range the
    /// format can hold (1901-12-13 to 2446-05-10).
    pub fn encode(&self) -> (u32, u32) {
        let min = i64::from(i32::MIN);
        let max = i64::from(i32::MAX) + (3i64 << 32);
        let sec = self.sec.clamp(min, max);
        let epoch = ((sec - i64::from(sec as i32)) >> 32) & 3;
        (
            sec as i32 as u32,
            (self.nsec.min(999_999_999) << 2) | epoch as u32,
        )
    }
}

/// A parsed inode with split fields joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: Timestamp,
    pub ctime: Timestamp,
    pub mtime: Timestamp,
    pub crtime: Timestamp,
    pub dtime: u32,
    pub links_count: u16,
    /// i_blocks as stored (48 bits): 512-byte units, or file-system blocks
    /// when `flags::HUGE_FILE` is set.
    pub blocks_raw: u64,
    pub flags: u32,
    pub version: u64,
    /// `i_block`: block map, extent tree root, symlink target or inline data.
    pub block: [u8; I_BLOCK_LEN],
    pub generation: u32,
    pub file_acl: u64,
    /// Bytes of the extra part in use (0 for 128-byte inodes).
    pub extra_isize: u16,
    pub projid: u32,
    /// Whether the extra fields are present (inode size > 128 and
    /// extra_isize covers them); timestamps' nanoseconds and crtime then exist.
    pub has_extra: bool,
}

impl Inode {
    /// An all-zero inode of the given mode, as a fresh allocation starts.
    pub fn new(mode: u16, extra_isize: u16) -> Self {
        Inode {
            mode,
            uid: 0,
            gid: 0,
            size: 0,
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            mtime: Timestamp::default(),
            crtime: Timestamp::default(),
            dtime: 0,
            links_count: 0,
            blocks_raw: 0,
            flags: 0,
            version: 0,
            block: [0; I_BLOCK_LEN],
            generation: 0,
            file_acl: 0,
            extra_isize,
            projid: 0,
            has_extra: extra_isize >= DEFAULT_EXTRA_ISIZE,
        }
    }

    /// Parses one inode of `inode_size` bytes. Does not verify the checksum
    /// (see [`verify_inode_csum`]); does validate the extra size.
    pub fn parse(buf: &[u8], inode_size: usize) -> Result<Self> {
        require_len(buf, inode_size.max(GOOD_OLD_INODE_SIZE), "inode")?;
        let b = InodeBase::read_fields(buf);
        let mut extra_isize = 0;
        let mut x = None;
        if inode_size > GOOD_OLD_INODE_SIZE {
            extra_isize = u16_at(buf, 0x80);
            let room = inode_size - GOOD_OLD_INODE_SIZE;
            if usize::from(extra_isize) > room || !extra_isize.is_multiple_of(4) {
                return Err(FormatError::corrupt(
                    "inode",
                    format!("i_extra_isize {extra_isize} invalid for {inode_size}-byte inodes"),
                ));
            }
            if usize::from(extra_isize) >= InodeExtra::END {
                x = Some(InodeExtra::read_fields(&buf[GOOD_OLD_INODE_SIZE..]));
            } else if extra_isize >= 4 {
                // Only the checksum and part of the times may be present;
                // treat the rest as absent.
                x = Some(InodeExtra {
                    extra_isize,
                    checksum_hi: u16_at(buf, CSUM_HI_OFFSET),
                    ctime_extra: 0,
                    mtime_extra: 0,
                    atime_extra: 0,
                    crtime: 0,
                    crtime_extra: 0,
                    version_hi: 0,
                    projid: 0,
                })
            }
        }
        let full = x
            .as_ref()
            .filter(|e| usize::from(e.extra_isize) >= InodeExtra::END);
        let extra = |f: fn(&InodeExtra) -> u32| full.map_or(0, f);
        Ok(Inode {
            mode: b.mode,
            uid: u32::from(b.uid_lo) | u32::from(b.uid_high) << 16,
            gid: u32::from(b.gid_lo) | u32::from(b.gid_high) << 16,
            size: join_u64(b.size_lo, b.size_high),
            atime: Timestamp::decode(b.atime, extra(|e| e.atime_extra)),
            ctime: Timestamp::decode(b.ctime, extra(|e| e.ctime_extra)),
            mtime: Timestamp::decode(b.mtime, extra(|e| e.mtime_extra)),
            crtime: full.map_or(Timestamp::default(), |e| {
                Timestamp::decode(e.crtime, e.crtime_extra)
            }),
            dtime: b.dtime,
            links_count: b.links_count,
            blocks_raw: u64::from(b.blocks_lo) | u64::from(b.blocks_high) << 32,
            flags: b.flags,
            version: join_u64(b.version_lo, extra(|e| e.version_hi)),
            block: b.block,
            generation: b.generation,
            file_acl: u64::from(b.file_acl_lo) | u64::from(b.file_acl_high) << 32,
            extra_isize,
            projid: extra(|e| e.projid),
            has_extra: full.is_some(),
        })
    }

    /// Encodes into `buf[..inode_size]`, leaving bytes past the extra part
    /// (in-inode xattrs) untouched. The checksum fields are left as they are;
    /// call [`set_inode_csum`] afterwards on metadata_csum file systems.
    pub fn encode(&self, buf: &mut [u8], inode_size: usize) {
        let (atime, atime_x) = self.atime.encode();
        let (ctime, ctime_x) = self.ctime.encode();
        let (mtime, mtime_x) = self.mtime.encode();
        let (crtime, crtime_x) = self.crtime.encode();
        let old = InodeBase::read_fields(buf);
        let b = InodeBase {
            mode: self.mode,
            uid_lo: (self.uid & 0xffff) as u16,
            size_lo: (self.size & 0xffff_ffff) as u32,
            atime,
            ctime,
            mtime,
            dtime: self.dtime,
            gid_lo: (self.gid & 0xffff) as u16,
            links_count: self.links_count,
            blocks_lo: (self.blocks_raw & 0xffff_ffff) as u32,
            flags: self.flags,
            version_lo: (self.version & 0xffff_ffff) as u32,
            block: self.block,
            generation: self.generation,
            file_acl_lo: (self.file_acl & 0xffff_ffff) as u32,
            size_high: (self.size >> 32) as u32,
            obso_faddr: old.obso_faddr,
            blocks_high: ((self.blocks_raw >> 32) & 0xffff) as u16,
            file_acl_high: ((self.file_acl >> 32) & 0xffff) as u16,
            uid_high: (self.uid >> 16) as u16,
            gid_high: (self.gid >> 16) as u16,
            checksum_lo: old.checksum_lo,
            reserved: old.reserved,
        };
        b.write_fields(buf);
        if inode_size > GOOD_OLD_INODE_SIZE {
            put_u16(buf, 0x80, self.extra_isize);
            if usize::from(self.extra_isize) >= InodeExtra::END {
                let x = InodeExtra {
                    extra_isize: self.extra_isize,
                    checksum_hi: u16_at(buf, CSUM_HI_OFFSET),
                    ctime_extra: ctime_x,
                    mtime_extra: mtime_x,
                    atime_extra: atime_x,
                    crtime,
                    crtime_extra: crtime_x,
                    version_hi: (self.version >> 32) as u32,
                    projid: self.projid,
                };
                x.write_fields(&mut buf[GOOD_OLD_INODE_SIZE..]);
            }
        }
    }

    pub fn file_type(&self) -> u16 {
        self.mode & S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.file_type() == S_IFDIR
    }
    pub fn is_reg(&self) -> bool {
        self.file_type() == S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.file_type() == S_IFLNK
    }
    pub fn has_flag(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// i_blocks in 512-byte sectors, whatever the unit on disk.
    pub fn blocks_512(&self, block_size: u32) -> u64 {
        if self.has_flag(flags::HUGE_FILE) {
            self.blocks_raw.saturating_mul(u64::from(block_size / 512))
        } else {
            self.blocks_raw
        }
    }

    /// Stores a sector count, switching to file-system-block units (the
    /// huge_file rule) only when it does not fit in 48 bits.
    pub fn set_blocks_512(&mut self, sectors: u64, block_size: u32) {
        if sectors < 1 << 48 {
            self.blocks_raw = sectors;
            self.flags &= !flags::HUGE_FILE;
        } else {
            self.blocks_raw = sectors / u64::from(block_size / 512);
            self.flags |= flags::HUGE_FILE;
        }
    }

    /// The device number of a character or block special file, decoded the
    /// way the kernel stores it in i_block (old 16-bit form in word 0, new
    /// 32-bit form in word 1).
    pub fn device_number(&self) -> (u32, u32) {
        let w0 = u32::from_le_bytes([self.block[0], self.block[1], self.block[2], self.block[3]]);
        let w1 = u32::from_le_bytes([self.block[4], self.block[5], self.block[6], self.block[7]]);
        if w0 != 0 {
            ((w0 >> 8) & 0xff, w0 & 0xff)
        } else {
            ((w1 & 0xfff00) >> 8, (w1 & 0xff) | ((w1 >> 12) & 0xfff00))
        }
    }

    /// Stores a device number the way the kernel does: the old form when
    /// both numbers fit in 8 bits, the new form otherwise.
    pub fn set_device_number(&mut self, major: u32, minor: u32) {
        self.block = [0; I_BLOCK_LEN];
        if major < 256 && minor < 256 {
            let old = (major << 8) | minor;
            self.block[0..4].copy_from_slice(&old.to_le_bytes());
        } else {
            let new = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
            self.block[4..8].copy_from_slice(&new.to_le_bytes());
        }
    }
}

fn has_csum_hi(raw: &[u8], inode_size: usize) -> bool {
    inode_size > GOOD_OLD_INODE_SIZE && u16_at(raw, 0x80) >= CSUM_HI_EXTRA_END
}

/// The full crc32c of an encoded inode (checksum fields treated as zero).
pub fn inode_csum(fs_seed: u32, ino: u32, raw: &[u8], inode_size: usize) -> u32 {
    let generation = u32::from_le_bytes([raw[0x64], raw[0x65], raw[0x66], raw[0x67]]);
    let seed = inode_seed(fs_seed, InodeNo(ino), generation);
    let zero = [0u8; 2];
    let mut c = crc32c(seed, &raw[..CSUM_LO_OFFSET]);
    c = crc32c(c, &zero);
    c = crc32c(c, &raw[CSUM_LO_OFFSET + 2..GOOD_OLD_INODE_SIZE]);
    if inode_size > GOOD_OLD_INODE_SIZE {
        c = crc32c(c, &raw[GOOD_OLD_INODE_SIZE..CSUM_HI_OFFSET]);
        if has_csum_hi(raw, inode_size) {
            c = crc32c(c, &zero);
        } else {
            c = crc32c(c, &raw[CSUM_HI_OFFSET..CSUM_HI_OFFSET + 2]);
        }
        c = crc32c(c, &raw[CSUM_HI_OFFSET + 2..inode_size]);
    }
    c
}

/// Stores the checksum into an encoded inode.
pub fn set_inode_csum(fs_seed: u32, ino: u32, raw: &mut [u8], inode_size: usize) {
    let c = inode_csum(fs_seed, ino, raw, inode_size);
    put_u16(raw, CSUM_LO_OFFSET, (c & 0xffff) as u16);
    if has_csum_hi(raw, inode_size) {
        put_u16(raw, CSUM_HI_OFFSET, (c >> 16) as u16);
    }
}

/// Whether an encoded inode's stored checksum is right.
pub fn verify_inode_csum(fs_seed: u32, ino: u32, raw: &[u8], inode_size: usize) -> bool {
    if raw.len() < inode_size || inode_size < GOOD_OLD_INODE_SIZE {
        return false;
    }
    let c = inode_csum(fs_seed, ino, raw, inode_size);
    let mut stored = u32::from(u16_at(raw, CSUM_LO_OFFSET));
    let mut want = c & 0xffff;
    if has_csum_hi(raw, inode_size) {
        stored |= u32::from(u16_at(raw, CSUM_HI_OFFSET)) << 16;
        want = c;
    }
    stored == want
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_sizes_match_the_kernel_structs() {
        assert_eq!(InodeBase::END, 128);
        assert_eq!(InodeExtra::END, 32);
    }

    #[test]
    fn timestamps_use_the_epoch_bits() {
        for sec in [
            0i64,
            -1,
            1_700_000_000,
            i64::from(i32::MAX) + 1,
            15_000_000_000,
        ] {
            let t = Timestamp::new(sec, 123_456_789);
            let (base, extra) = t.encode();
            assert_eq!(Timestamp::decode(base, extra), t, "sec {sec}");
        }
    }

    #[test]
    fn inode_round_trips_and_checksums() {
        let mut ino = Inode::new(S_IFREG | 0o644, DEFAULT_EXTRA_ISIZE);
        ino.uid = 0x1_0001;
        ino.gid = 70_000;
        ino.size = 5 << 32;
        ino.mtime = Timestamp::new(1_800_000_000, 5);
        ino.crtime = Timestamp::new(100, 7);
        ino.links_count = 3;
        ino.generation = 99;
        ino.file_acl = 0x1_0000_0002;
        ino.set_blocks_512(8, 4096);
        let mut raw = [0u8; 256];
        ino.encode(&mut raw, 256);
        set_inode_csum(0x1234, 12, &mut raw, 256);
        assert!(verify_inode_csum(0x1234, 12, &raw, 256));
        assert!(!verify_inode_csum(0x1234, 13, &raw, 256));
        assert_eq!(Inode::parse(&raw, 256).unwrap(), ino);
    }

    #[test]
    fn device_numbers_use_old_and_new_encodings() {
        let mut ino = Inode::new(S_IFCHR | 0o600, 32);
        ino.set_device_number(1, 3);
        assert_eq!(ino.device_number(), (1, 3));
        ino.set_device_number(259, 70_000);
        assert_eq!(ino.device_number(), (259, 70_000));
    }

    #[test]
    fn bad_extra_isize_is_an_error() {
        let mut raw = [0u8; 256];
        put_u16(&mut raw, 0x80, 200);
        assert!(Inode::parse(&raw, 256).is_err());
    }
}
