//! Block group descriptors: 32 bytes each, or `s_desc_size` (64) bytes with
//! the 64bit feature, packed into the group descriptor table (GDT) that
//! follows each superblock copy.
//!
//! Layout (`struct ext4_group_desc`; `_hi` halves only in 64-byte descriptors):
//! ```text
//! 0x00 bg_block_bitmap_lo   0x20 bg_block_bitmap_hi
//! 0x04 bg_inode_bitmap_lo   0x24 bg_inode_bitmap_hi
//! 0x08 bg_inode_table_lo    0x28 bg_inode_table_hi
//! 0x0C bg_free_blocks_count_lo (u16)   0x2C ..._hi (u16)
//! 0x0E bg_free_inodes_count_lo (u16)   0x2E ..._hi
//! 0x10 bg_used_dirs_count_lo (u16)     0x30 ..._hi
//! 0x12 bg_flags (u16)
//! 0x14 bg_exclude_bitmap_lo            0x34 bg_exclude_bitmap_hi
//! 0x18 bg_block_bitmap_csum_lo (u16)   0x38 ..._hi (u16)
//! 0x1A bg_inode_bitmap_csum_lo (u16)   0x3A ..._hi (u16)
//! 0x1C bg_itable_unused_lo (u16)       0x32 ..._hi (u16)
//! 0x1E bg_checksum (u16)               0x3C bg_reserved
//! ```
//!
//! Checksum: with metadata_csum, the low 16 bits of
//! crc32c(fs_seed, le32 group number ++ descriptor with bg_checksum zeroed);
//! with gdt_csum, crc16(!0, uuid ++ le32 group ++ descriptor without the
//! checksum field).

use super::bytes::{join_u64, lo32, put_u16, require_len, u16_at, u32_at};
use super::csum::{crc16, crc32c};
use super::error::{FormatError, Result};
use super::features::Features;

/// `bg_flags` bits.
pub const BG_INODE_UNINIT: u16 = 0x0001;
pub const BG_BLOCK_UNINIT: u16 = 0x0002;
pub const BG_INODE_ZEROED: u16 = 0x0004;

/// Offset of `bg_checksum`.
const CHECKSUM_OFFSET: usize = 0x1E;
/// Descriptors at least this long carry the `_hi` halves.
pub const DESC_SIZE_64BIT: usize = 64;
/// Size of a descriptor without the 64bit feature.
pub const DESC_SIZE_32BIT: usize = 32;

/// One group descriptor with the split fields joined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupDesc {
    pub block_bitmap: u64,
    pub inode_bitmap: u64,
    pub inode_table: u64,
    pub free_blocks_count: u32,
    pub free_inodes_count: u32,
    pub used_dirs_count: u32,
    pub flags: u16,
    pub exclude_bitmap: u64,
    pub block_bitmap_csum: u32,
    pub inode_bitmap_csum: u32,
    pub itable_unused: u32,
    pub checksum: u16,
}

fn hi16(buf: &[u8], off: usize, wide: bool) -> u32 {
    if wide {
        u32::from(u16_at(buf, off))
    } else {
        0
    }
}

fn hi32(buf: &[u8], off: usize, wide: bool) -> u32 {
    if wide {
        u32_at(buf, off)
    } else {
        0
    }
}

impl GroupDesc {
    /// Parses a descriptor of `desc_size` bytes (32, or >= 64 with 64bit).
    pub fn parse(buf: &[u8], desc_size: usize) -> Result<Self> {
        if desc_size != DESC_SIZE_32BIT && desc_size < DESC_SIZE_64BIT {
            return Err(FormatError::corrupt(
                "group descriptor",
                format!("descriptor size {desc_size}"),
            ));
        }
        require_len(buf, desc_size, "group descriptor")?;
        let w = desc_size >= DESC_SIZE_64BIT;
        let lo16 = |off| u32::from(u16_at(buf, off));
        Ok(GroupDesc {
            block_bitmap: join_u64(u32_at(buf, 0x00), hi32(buf, 0x20, w)),
            inode_bitmap: join_u64(u32_at(buf, 0x04), hi32(buf, 0x24, w)),
            inode_table: join_u64(u32_at(buf, 0x08), hi32(buf, 0x28, w)),
            free_blocks_count: lo16(0x0C) | hi16(buf, 0x2C, w) << 16,
            free_inodes_count: lo16(0x0E) | hi16(buf, 0x2E, w) << 16,
            used_dirs_count: lo16(0x10) | hi16(buf, 0x30, w) << 16,
            flags: u16_at(buf, 0x12),
            exclude_bitmap: join_u64(u32_at(buf, 0x14), hi32(buf, 0x34, w)),
            block_bitmap_csum: lo16(0x18) | hi16(buf, 0x38, w) << 16,
            inode_bitmap_csum: lo16(0x1A) | hi16(buf, 0x3A, w) << 16,
            itable_unused: lo16(0x1C) | hi16(buf, 0x32, w) << 16,
            checksum: u16_at(buf, CHECKSUM_OFFSET),
        })
    }

    /// Writes the fields into `buf[..desc_size]` (checksum field as stored
    /// in `self.checksum`; use [`set_group_desc_csum`] afterwards).
    pub fn encode(&self, buf: &mut [u8], desc_size: usize) {
        let w = desc_size >= DESC_SIZE_64BIT;
        let put32 = |buf: &mut [u8], off: usize, v: u32| {
            buf[off..off + 4].copy_from_slice(&v.to_le_bytes())
        };
        let lo = |v: u32| (v & 0xffff) as u16;
        let hi = |v: u32| (v >> 16) as u16;
        put32(buf, 0x00, lo32(self.block_bitmap));
        put32(buf, 0x04, lo32(self.inode_bitmap));
        put32(buf, 0x08, lo32(self.inode_table));
        put_u16(buf, 0x0C, lo(self.free_blocks_count));
        put_u16(buf, 0x0E, lo(self.free_inodes_count));
        put_u16(buf, 0x10, lo(self.used_dirs_count));
        put_u16(buf, 0x12, self.flags);
        put32(buf, 0x14, lo32(self.exclude_bitmap));
        put_u16(buf, 0x18, lo(self.block_bitmap_csum));
        put_u16(buf, 0x1A, lo(self.inode_bitmap_csum));
        put_u16(buf, 0x1C, lo(self.itable_unused));
        put_u16(buf, CHECKSUM_OFFSET, self.checksum);
        if w {
            put32(buf, 0x20, (self.block_bitmap >> 32) as u32);
            put32(buf, 0x24, (self.inode_bitmap >> 32) as u32);
            put32(buf, 0x28, (self.inode_table >> 32) as u32);
            put_u16(buf, 0x2C, hi(self.free_blocks_count));
            put_u16(buf, 0x2E, hi(self.free_inodes_count));
            put_u16(buf, 0x30, hi(self.used_dirs_count));
            put_u16(buf, 0x32, hi(self.itable_unused));
            put32(buf, 0x34, (self.exclude_bitmap >> 32) as u32);
            put_u16(buf, 0x38, hi(self.block_bitmap_csum));
            put_u16(buf, 0x3A, hi(self.inode_bitmap_csum));
        }
    }

    pub fn has_flag(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

/// The checksum a descriptor should carry, or `None` when the file system
/// has no descriptor checksums.
pub fn group_desc_csum(
    features: &Features,
    fs_seed: u32,
    uuid: &[u8; 16],
    group: u32,
    desc: &[u8],
) -> Option<u16> {
    let group_le = group.to_le_bytes();
    if features.has_metadata_csum() {
        let mut c = crc32c(fs_seed, &group_le);
        c = crc32c(c, &desc[..CHECKSUM_OFFSET]);
        c = crc32c(c, &[0, 0]);
        c = crc32c(c, &desc[CHECKSUM_OFFSET + 2..]);
        Some((c & 0xffff) as u16)
    } else if features.has_group_csum() {
        let mut c = crc16(!0, uuid);
        c = crc16(c, &group_le);
        c = crc16(c, &desc[..CHECKSUM_OFFSET]);
        if desc.len() > CHECKSUM_OFFSET + 2 {
            c = crc16(c, &desc[CHECKSUM_OFFSET + 2..]);
        }
        Some(c)
    } else {
        None
    }
}

/// Stores the right checksum into an encoded descriptor (no-op without
/// descriptor checksums).
pub fn set_group_desc_csum(
    features: &Features,
    fs_seed: u32,
    uuid: &[u8; 16],
    group: u32,
    desc: &mut [u8],
) {
    if let Some(c) = group_desc_csum(features, fs_seed, uuid, group, desc) {
        put_u16(desc, CHECKSUM_OFFSET, c);
    }
}

/// Whether an encoded descriptor's checksum is right (true without
/// descriptor checksums).
pub fn verify_group_desc_csum(
    features: &Features,
    fs_seed: u32,
    uuid: &[u8; 16],
    group: u32,
    desc: &[u8],
) -> bool {
    match group_desc_csum(features, fs_seed, uuid, group, desc) {
        Some(c) => c == u16_at(desc, CHECKSUM_OFFSET),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_descriptor_round_trips_every_field() {
        let d = GroupDesc {
            block_bitmap: 0x1_0000_0001,
            inode_bitmap: 0x2_0000_0002,
            inode_table: 0x3_0000_0003,
            free_blocks_count: 0x1_2345,
            free_inodes_count: 0x2_3456,
            used_dirs_count: 0x3_4567,
            flags: BG_INODE_UNINIT | BG_INODE_ZEROED,
            exclude_bitmap: 0,
            block_bitmap_csum: 0xdead_beef,
            inode_bitmap_csum: 0xcafe_f00d,
            itable_unused: 0x1_0001,
            checksum: 0x5555,
        };
        let mut buf = [0u8; 64];
        d.encode(&mut buf, 64);
        assert_eq!(GroupDesc::parse(&buf, 64).unwrap(), d);
    }

    #[test]
    fn narrow_descriptor_drops_high_halves() {
        let d = GroupDesc {
            block_bitmap: 10,
            free_blocks_count: 0x1_0005,
            ..GroupDesc::default()
        };
        let mut buf = [0u8; 32];
        d.encode(&mut buf, 32);
        let back = GroupDesc::parse(&buf, 32).unwrap();
        assert_eq!(back.block_bitmap, 10);
        assert_eq!(back.free_blocks_count, 5);
    }
}
