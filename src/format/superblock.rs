//! The ext2/3/4 superblock: 1024 bytes at byte offset 1024 of the device
//! (and copies at the start of backup groups, see [`crate::format::geometry`]).
//!
//! [`SuperblockFields`] mirrors `struct ext4_super_block` field by field, with
//! each field's byte offset beside it. [`Superblock`] wraps the fields after
//! validation and answers the derived questions (block size, group count,
//! 64-bit block numbers, checksum seed) so that no caller re-derives them from
//! raw values.
//!
//! Checksum (metadata_csum): `s_checksum` = crc32c(!0, bytes 0..0x3FC).

use super::bytes::{join_u64, lo32, require_len};
use super::csum::{crc32c, fs_csum_seed};
use super::error::{FormatError, Result};
use super::features::{Compat, Features, Incompat, RoCompat};
use super::record::le_record;

/// Byte offset of the primary superblock on the device.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// Size of the superblock structure.
pub const SUPERBLOCK_SIZE: usize = 1024;
/// `s_magic`
pub const EXT4_MAGIC: u16 = 0xEF53;
/// Offset of `s_checksum`, which covers everything before it.
pub const CHECKSUM_OFFSET: usize = 0x3FC;

/// `s_state` bits.
pub const STATE_VALID: u16 = 0x0001;
pub const STATE_ERROR: u16 = 0x0002;
pub const STATE_ORPHAN: u16 = 0x0004;

/// `s_flags` bits.
pub const FLAG_SIGNED_HASH: u32 = 0x0001;
pub const FLAG_UNSIGNED_HASH: u32 = 0x0002;
pub const FLAG_TEST_FILESYS: u32 = 0x0004;

/// `s_default_mount_opts` bits used by mke2fs' defaults.
pub const DEFM_XATTR_USER: u32 = 0x0004;
pub const DEFM_ACL: u32 = 0x0008;

/// `s_errors` values.
pub const ERRORS_CONTINUE: u16 = 1;
pub const ERRORS_RO: u16 = 2;
pub const ERRORS_PANIC: u16 = 3;

/// `s_checksum_type` for crc32c.
pub const CHECKSUM_TYPE_CRC32C: u8 = 1;

/// `s_jnl_backup_type`: the journal inode's i_block copied into s_jnl_blocks.
pub const JNL_BACKUP_BLOCKS: u8 = 1;

/// `s_def_hash_version`
pub const HASH_LEGACY: u8 = 0;
pub const HASH_HALF_MD4: u8 = 1;
pub const HASH_TEA: u8 = 2;

/// Revision levels.
pub const GOOD_OLD_REV: u32 = 0;
pub const DYNAMIC_REV: u32 = 1;
/// Inode size of revision 0 file systems.
pub const GOOD_OLD_INODE_SIZE: u16 = 128;

le_record! {
    /// `struct ext4_super_block`, every field at its offset.
    pub struct SuperblockFields {
        inodes_count: u32 = 0x00,
        blocks_count_lo: u32 = 0x04,
        r_blocks_count_lo: u32 = 0x08,
        free_blocks_count_lo: u32 = 0x0C,
        free_inodes_count: u32 = 0x10,
        first_data_block: u32 = 0x14,
        log_block_size: u32 = 0x18,
        log_cluster_size: u32 = 0x1C,
        blocks_per_group: u32 = 0x20,
        clusters_per_group: u32 = 0x24,
        inodes_per_group: u32 = 0x28,
        mtime: u32 = 0x2C,
        wtime: u32 = 0x30,
        mnt_count: u16 = 0x34,
        max_mnt_count: u16 = 0x36,
        magic: u16 = 0x38,
        state: u16 = 0x3A,
        errors: u16 = 0x3C,
        minor_rev_level: u16 = 0x3E,
        lastcheck: u32 = 0x40,
        checkinterval: u32 = 0x44,
        creator_os: u32 = 0x48,
        rev_level: u32 = 0x4C,
        def_resuid: u16 = 0x50,
        def_resgid: u16 = 0x52,
        first_ino: u32 = 0x54,
        inode_size: u16 = 0x58,
        block_group_nr: u16 = 0x5A,
        feature_compat: u32 = 0x5C,
        feature_incompat: u32 = 0x60,
        feature_ro_compat: u32 = 0x64,
        uuid: [u8; 16] = 0x68,
        volume_name: [u8; 16] = 0x78,
        last_mounted: [u8; 64] = 0x88,
        algorithm_usage_bitmap: u32 = 0xC8,
        prealloc_blocks: u8 = 0xCC,
        prealloc_dir_blocks: u8 = 0xCD,
        reserved_gdt_blocks: u16 = 0xCE,
        journal_uuid: [u8; 16] = 0xD0,
        journal_inum: u32 = 0xE0,
        journal_dev: u32 = 0xE4,
        last_orphan: u32 = 0xE8,
        hash_seed: [u32; 4] = 0xEC,
        def_hash_version: u8 = 0xFC,
        jnl_backup_type: u8 = 0xFD,
        desc_size: u16 = 0xFE,
        default_mount_opts: u32 = 0x100,
        first_meta_bg: u32 = 0x104,
        mkfs_time: u32 = 0x108,
        jnl_blocks: [u32; 17] = 0x10C,
        blocks_count_hi: u32 = 0x150,
        r_blocks_count_hi: u32 = 0x154,
        free_blocks_count_hi: u32 = 0x158,
        min_extra_isize: u16 = 0x15C,
        want_extra_isize: u16 = 0x15E,
        flags: u32 = 0x160,
        raid_stride: u16 = 0x164,
        mmp_interval: u16 = 0x166,
        mmp_block: u64 = 0x168,
        raid_stripe_width: u32 = 0x170,
        log_groups_per_flex: u8 = 0x174,
        checksum_type: u8 = 0x175,
        encryption_level: u8 = 0x176,
        reserved_pad: u8 = 0x177,
        kbytes_written: u64 = 0x178,
        snapshot_inum: u32 = 0x180,
        snapshot_id: u32 = 0x184,
        snapshot_r_blocks_count: u64 = 0x188,
        snapshot_list: u32 = 0x190,
        error_count: u32 = 0x194,
        first_error_time: u32 = 0x198,
        first_error_ino: u32 = 0x19C,
        first_error_block: u64 = 0x1A0,
        first_error_func: [u8; 32] = 0x1A8,
        first_error_line: u32 = 0x1C8,
        last_error_time: u32 = 0x1CC,
        last_error_ino: u32 = 0x1D0,
        last_error_line: u32 = 0x1D4,
        last_error_block: u64 = 0x1D8,
        last_error_func: [u8; 32] = 0x1E0,
        mount_opts: [u8; 64] = 0x200,
        usr_quota_inum: u32 = 0x240,
        grp_quota_inum: u32 = 0x244,
        overhead_clusters: u32 = 0x248,
        backup_bgs: [u32; 2] = 0x24C,
        encrypt_algos: [u8; 4] = 0x254,
        encrypt_pw_salt: [u8; 16] = 0x258,
        lpf_ino: u32 = 0x268,
        prj_quota_inum: u32 = 0x26C,
        checksum_seed: u32 = 0x270,
        wtime_hi: u8 = 0x274,
        mtime_hi: u8 = 0x275,
        mkfs_time_hi: u8 = 0x276,
        lastcheck_hi: u8 = 0x277,
        first_error_time_hi: u8 = 0x278,
        last_error_time_hi: u8 = 0x279,
        first_error_errcode: u8 = 0x27A,
        last_error_errcode: u8 = 0x27B,
        encoding: u16 = 0x27C,
        encoding_flags: u16 = 0x27E,
        orphan_file_inum: u32 = 0x280,
        checksum: u32 = 0x3FC,
    }
}

/// Limits fext accepts (the kernel's own limits, tightened where the kernel
/// would not mount anyway).
const MIN_LOG_BLOCK_SIZE: u32 = 0; // 1 KiB
const MAX_LOG_BLOCK_SIZE: u32 = 6; // 64 KiB

/// A validated superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    pub f: SuperblockFields,
}

impl Superblock {
    /// Parses and validates the 1024-byte superblock. The checksum is
    /// verified when metadata_csum is set.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        let sb = Self::parse_unverified(buf)?;
        if sb.features().has_metadata_csum() {
            let computed = superblock_csum(buf);
            if computed != sb.f.checksum {
                return Err(FormatError::BadChecksum {
                    what: "superblock",
                    stored: sb.f.checksum,
                    computed,
                });
            }
        }
        Ok(sb)
    }

    /// Parses and validates everything but the checksum (for fsck, which
    /// reports a bad checksum and goes on).
    pub fn parse_unverified(buf: &[u8]) -> Result<Self> {
        require_len(buf, SUPERBLOCK_SIZE, "superblock")?;
        let f = SuperblockFields::read_fields(buf);
        if f.magic != EXT4_MAGIC {
            return Err(FormatError::BadMagic {
                what: "superblock",
                found: u64::from(f.magic),
            });
        }
        let sb = Superblock { f };
        sb.validate()?;
        Ok(sb)
    }

    fn validate(&self) -> Result<()> {
        let f = &self.f;
        let bad = |detail: String| Err(FormatError::corrupt("superblock", detail));
        if !(MIN_LOG_BLOCK_SIZE..=MAX_LOG_BLOCK_SIZE).contains(&f.log_block_size) {
            return bad(format!(
                "s_log_block_size {} out of range",
                f.log_block_size
            ));
        }
        if f.rev_level > DYNAMIC_REV {
            return Err(FormatError::unsupported(
                "superblock",
                format!("revision level {}", f.rev_level),
            ));
        }
        let bs = self.block_size();
        let bigalloc = self.features().ro_compat.contains(RoCompat::BIGALLOC);
        if !bigalloc && f.log_cluster_size != f.log_block_size {
            return bad(format!(
                "cluster size log {} differs from block size log {} without bigalloc",
                f.log_cluster_size, f.log_block_size
            ));
        }
        if f.log_cluster_size < f.log_block_size || f.log_cluster_size > f.log_block_size + 16 {
            return bad(format!("s_log_cluster_size {} invalid", f.log_cluster_size));
        }
        let bits_per_block = u64::from(bs) * 8;
        if f.blocks_per_group == 0 || u64::from(f.clusters_per_group) > bits_per_block {
            return bad(format!(
                "{} clusters per group does not fit a {bs}-byte bitmap",
                f.clusters_per_group
            ));
        }
        if !bigalloc && f.clusters_per_group != f.blocks_per_group {
            return bad("s_clusters_per_group differs from s_blocks_per_group".into());
        }
        if f.inodes_per_group == 0 || u64::from(f.inodes_per_group) > bits_per_block {
            return bad(format!(
                "s_inodes_per_group {} invalid for block size {bs}",
                f.inodes_per_group
            ));
        }
        let isize = self.inode_size();
        if isize < GOOD_OLD_INODE_SIZE || !isize.is_power_of_two() || u32::from(isize) > bs {
            return bad(format!("inode size {isize} invalid"));
        }
        if f.first_data_block > 1 {
            return bad(format!("s_first_data_block {} invalid", f.first_data_block));
        }
        let blocks = self.blocks_count();
        if blocks <= u64::from(f.first_data_block) {
            return bad(format!("block count {blocks} too small"));
        }
        let groups = self.groups_count_u64();
        let inodes_expected = groups.checked_mul(u64::from(f.inodes_per_group));
        if inodes_expected != Some(u64::from(f.inodes_count)) {
            return bad(format!(
                "s_inodes_count {} is not {groups} groups x {} inodes",
                f.inodes_count, f.inodes_per_group
            ));
        }
        if u64::from(f.free_inodes_count) > u64::from(f.inodes_count) {
            return bad("more free inodes than inodes".into());
        }
        if self.is_64bit() {
            let ds = f.desc_size;
            if !(32..=1024).contains(&ds) || !ds.is_power_of_two() {
                return bad(format!("s_desc_size {ds} invalid"));
            }
        }
        if f.rev_level >= DYNAMIC_REV && f.first_ino < 11 {
            return bad(format!("s_first_ino {} below 11", f.first_ino));
        }
        if f.first_ino > f.inodes_count {
            return bad(format!("s_first_ino {} beyond inode count", f.first_ino));
        }
        if self.features().incompat.contains(Incompat::FLEX_BG) && f.log_groups_per_flex > 31 {
            return bad(format!(
                "s_log_groups_per_flex {} too large",
                f.log_groups_per_flex
            ));
        }
        Ok(())
    }

    /// Encodes into a 1024-byte buffer (other bytes preserved) and sets the
    /// checksum when metadata_csum is on.
    pub fn encode(&self, buf: &mut [u8]) {
        self.f.write_fields(&mut buf[..SUPERBLOCK_SIZE]);
        if self.features().has_metadata_csum() {
            let c = superblock_csum(buf);
            buf[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&c.to_le_bytes());
        }
    }

    /// The encoded 1024 bytes of a fresh buffer.
    pub fn to_bytes(&self) -> [u8; SUPERBLOCK_SIZE] {
        let mut buf = [0u8; SUPERBLOCK_SIZE];
        self.encode(&mut buf);
        buf
    }

    pub fn features(&self) -> Features {
        Features {
            compat: Compat::from_bits_retain(self.f.feature_compat),
            incompat: Incompat::from_bits_retain(self.f.feature_incompat),
            ro_compat: RoCompat::from_bits_retain(self.f.feature_ro_compat),
        }
    }

    pub fn set_features(&mut self, feat: Features) {
        self.f.feature_compat = feat.compat.bits();
        self.f.feature_incompat = feat.incompat.bits();
        self.f.feature_ro_compat = feat.ro_compat.bits();
    }

    /// Block size in bytes (1024..=65536).
    pub fn block_size(&self) -> u32 {
        1024u32 << self.f.log_block_size.min(MAX_LOG_BLOCK_SIZE)
    }

    pub fn is_64bit(&self) -> bool {
        self.features().incompat.contains(Incompat::BIT64)
    }

    /// Size of one group descriptor in bytes.
    pub fn desc_size(&self) -> u16 {
        if self.is_64bit() {
            self.f.desc_size
        } else {
            32
        }
    }

    pub fn blocks_count(&self) -> u64 {
        if self.is_64bit() {
            join_u64(self.f.blocks_count_lo, self.f.blocks_count_hi)
        } else {
            u64::from(self.f.blocks_count_lo)
        }
    }

    pub fn set_blocks_count(&mut self, v: u64) {
        self.f.blocks_count_lo = lo32(v);
        self.f.blocks_count_hi = if self.is_64bit() { (v >> 32) as u32 } else { 0 };
    }

    pub fn r_blocks_count(&self) -> u64 {
        if self.is_64bit() {
            join_u64(self.f.r_blocks_count_lo, self.f.r_blocks_count_hi)
        } else {
            u64::from(self.f.r_blocks_count_lo)
        }
    }

    pub fn set_r_blocks_count(&mut self, v: u64) {
        self.f.r_blocks_count_lo = lo32(v);
        self.f.r_blocks_count_hi = if self.is_64bit() { (v >> 32) as u32 } else { 0 };
    }

    pub fn free_blocks_count(&self) -> u64 {
        if self.is_64bit() {
            join_u64(self.f.free_blocks_count_lo, self.f.free_blocks_count_hi)
        } else {
            u64::from(self.f.free_blocks_count_lo)
        }
    }

    pub fn set_free_blocks_count(&mut self, v: u64) {
        self.f.free_blocks_count_lo = lo32(v);
        self.f.free_blocks_count_hi = if self.is_64bit() { (v >> 32) as u32 } else { 0 };
    }

    /// Inode size in bytes (128 on revision 0).
    pub fn inode_size(&self) -> u16 {
        if self.f.rev_level == GOOD_OLD_REV {
            GOOD_OLD_INODE_SIZE
        } else {
            self.f.inode_size
        }
    }

    /// First non-reserved inode number.
    pub fn first_ino(&self) -> u32 {
        if self.f.rev_level == GOOD_OLD_REV {
            11
        } else {
            self.f.first_ino
        }
    }

    fn groups_count_u64(&self) -> u64 {
        let data_blocks = self
            .blocks_count()
            .saturating_sub(u64::from(self.f.first_data_block));
        data_blocks.div_ceil(u64::from(self.f.blocks_per_group.max(1)))
    }

    /// Number of block groups. Validation guarantees it fits in u32 because
    /// it equals s_inodes_count / s_inodes_per_group.
    pub fn groups_count(&self) -> u32 {
        u32::try_from(self.groups_count_u64()).unwrap_or(u32::MAX)
    }

    /// Groups per flex group (1 without flex_bg).
    pub fn groups_per_flex(&self) -> u32 {
        if self.features().incompat.contains(Incompat::FLEX_BG) {
            1u32 << self.f.log_groups_per_flex.min(31)
        } else {
            1
        }
    }

    /// The crc32c seed of every metadata checksum.
    pub fn csum_seed(&self) -> u32 {
        if self.features().incompat.contains(Incompat::CSUM_SEED) {
            self.f.checksum_seed
        } else {
            fs_csum_seed(&self.f.uuid)
        }
    }

    /// Blocks in group `g` (the last group may be short).
    pub fn blocks_in_group(&self, g: u32) -> u32 {
        let start = self.group_first_block(g);
        let end = (start + u64::from(self.f.blocks_per_group)).min(self.blocks_count());
        u32::try_from(end.saturating_sub(start)).unwrap_or(0)
    }

    /// First block of group `g`.
    pub fn group_first_block(&self, g: u32) -> u64 {
        u64::from(self.f.first_data_block) + u64::from(g) * u64::from(self.f.blocks_per_group)
    }

    /// The volume label as text (up to the first NUL).
    pub fn label(&self) -> String {
        let end = self
            .f
            .volume_name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(16);
        String::from_utf8_lossy(&self.f.volume_name[..end]).into_owned()
    }
}

/// crc32c(!0, superblock bytes before `s_checksum`).
pub fn superblock_csum(buf: &[u8]) -> u32 {
    crc32c(!0, &buf[..CHECKSUM_OFFSET])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_layout_matches_the_kernel_struct_size() {
        assert_eq!(SuperblockFields::END, SUPERBLOCK_SIZE);
    }

    #[test]
    fn rejects_a_zeroed_buffer_and_a_short_one() {
        assert!(matches!(
            Superblock::parse(&[0u8; 1024]),
            Err(FormatError::BadMagic { .. })
        ));
        assert!(matches!(
            Superblock::parse(&[0u8; 100]),
            Err(FormatError::TooShort { .. })
        ));
    }
}
