//! Sizing a new file system: block size, block and inode counts, groups,
//! reserved GDT blocks, journal and orphan-file sizes, and the filled-in
//! superblock. The arithmetic follows mke2fs (ext2fs_initialize) so that a
//! fext image of a given size has the geometry a mke2fs image of the same
//! size has:
//! - inodes = bytes / inode_ratio, spread evenly over the groups and rounded
//!   up so that each group's inode table blocks are full and the count per
//!   group is a multiple of 8;
//! - a last group too small to hold its own metadata plus 50 blocks is
//!   dropped;
//! - reserved GDT blocks let the file system grow 1024-fold (capped at one
//!   block of pointers, and at 2^32 blocks).

use super::options::{MkfsOptions, SizeType};
use crate::format::features::{Compat, Features, Incompat, RoCompat};
use crate::format::geometry::{is_sparse_backup_group, Geometry};
use crate::format::superblock::{self, Superblock, SuperblockFields};
use crate::format::{jbd2, orphan};

/// Inode numbers mkfs assigns to its special files.
pub const LOST_FOUND_INO: u32 = 11;
pub const ORPHAN_FILE_INO: u32 = 12;

/// The decided shape of the new file system.
#[derive(Debug, Clone)]
pub struct Plan {
    pub sb: Superblock,
    pub geo: Geometry,
    pub features: Features,
    /// Journal blocks (0 without a journal).
    pub journal_blocks: u32,
    /// Orphan file blocks (0 without orphan_file).
    pub orphan_file_blocks: u32,
    pub flex_size: u32,
    /// Things the user should hear about even with `-q` (e.g. a journal
    /// left out because the file system is too small).
    pub warnings: Vec<String>,
}

/// Everything that can make a size or option combination impossible.
fn err<T>(msg: impl Into<String>) -> Result<T, String> {
    Err(msg.into())
}

fn too_small(device_bytes: u64) -> String {
    format!(
        "{} KiB is too small for a file system",
        device_bytes.div_ceil(1024)
    )
}

/// Decides the geometry for a device of `device_bytes` bytes.
pub fn plan(
    opts: &MkfsOptions,
    features: Features,
    device_bytes: u64,
    uuid: [u8; 16],
    hash_seed: [u8; 16],
    now: i64,
) -> Result<Plan, String> {
    let size_type = SizeType::for_bytes(device_bytes);
    let block_size = opts.block_size.unwrap_or_else(|| size_type.block_size());
    if !(1024..=65536).contains(&block_size) || !block_size.is_power_of_two() {
        return err(format!("invalid block size {block_size}"));
    }
    let log_block = block_size.trailing_zeros() - 10;
    let inode_size = u32::from(opts.inode_size.unwrap_or(256));
    if !(128..=block_size).contains(&inode_size) || !inode_size.is_power_of_two() {
        return err(format!(
            "invalid inode size {inode_size} (128..{block_size}, a power of 2)"
        ));
    }
    let inode_ratio = opts.inode_ratio.unwrap_or_else(|| size_type.inode_ratio());
    if !(1024..=(1 << 26)).contains(&inode_ratio) {
        return err(format!("invalid bytes-per-inode ratio {inode_ratio}"));
    }
    let is_64bit = features.incompat.contains(Incompat::BIT64);
    let mut blocks = device_bytes / u64::from(block_size);
    let max_blocks = if is_64bit {
        1u64 << 48
    } else {
        (1u64 << 32) - 1
    };
    if blocks > max_blocks {
        if !is_64bit {
            return err(format!(
                "{blocks} blocks is too many without the 64bit feature (max {max_blocks})"
            ));
        }
        blocks = max_blocks;
    }
    let first_data_block = u64::from(block_size == 1024);
    let bits_per_block = block_size * 8;
    let mut blocks_per_group = opts.blocks_per_group.unwrap_or(bits_per_block);
    if blocks_per_group < 256
        || blocks_per_group > bits_per_block
        || !blocks_per_group.is_multiple_of(8)
    {
        return err(format!(
            "blocks per group {blocks_per_group} invalid (256..={bits_per_block}, multiple of 8)"
        ));
    }
    let desc_size: u32 = if is_64bit { 64 } else { 32 };
    let descs_per_block = block_size / desc_size;
    let requested_inodes = match opts.inodes_count {
        Some(n) => n,
        None => (blocks * u64::from(block_size)) / inode_ratio,
    };
    let reserved_ratio = opts.reserved_percent;
    if !(0.0..=50.0).contains(&reserved_ratio) {
        return err(format!("invalid reserved blocks percent {reserved_ratio}"));
    }
    let addr_per_block = block_size / 4;
    let mut features = features;
    let mut meta_bg = features.incompat.contains(Incompat::META_BG);
    let has_resize = features.compat.contains(Compat::RESIZE_INODE) && !meta_bg;
    let sparse = features.ro_compat.contains(RoCompat::SPARSE_SUPER);

    // mke2fs' retry loop: drop a too-small last group, shrink the group
    // size when the inodes do not fit.
    let (groups, ipg, itb, gdt_blocks, rsv_gdt) = loop {
        if blocks <= first_data_block + 1 {
            return err(too_small(device_bytes));
        }
        let groups_u64 = (blocks - first_data_block).div_ceil(u64::from(blocks_per_group));
        let groups = u32::try_from(groups_u64).map_err(|_| "too many block groups".to_string())?;
        let gdt_blocks = groups.div_ceil(descs_per_block);
        let rsv_gdt = if has_resize {
            let limit = if blocks < u64::from(u32::MAX) / 1024 {
                blocks * 1024
            } else {
                u64::from(u32::MAX)
            };
            let rsv_groups = (limit - first_data_block).div_ceil(u64::from(blocks_per_group));
            let want = rsv_groups
                .div_ceil(u64::from(descs_per_block))
                .saturating_sub(u64::from(gdt_blocks));
            u32::try_from(want.min(u64::from(addr_per_block))).unwrap_or(addr_per_block)
        } else {
            0
        };
        // Like mke2fs: when the GDT and its reserve would take more than
        // three quarters of a group, switch to meta_bg (descriptor blocks
        // spread over the groups they describe) and drop the resize inode.
        let (gdt_in_groups, rsv_gdt) = if meta_bg || rsv_gdt + gdt_blocks > blocks_per_group * 3 / 4
        {
            meta_bg = true;
            (0, 0)
        } else {
            (gdt_blocks, rsv_gdt)
        };
        let mut ipg =
            u32::try_from(requested_inodes.div_ceil(groups_u64).max(1)).unwrap_or(u32::MAX);
        if ipg > bits_per_block {
            if blocks_per_group >= 256 + 8 && opts.blocks_per_group.is_none() {
                blocks_per_group -= 8;
                continue;
            }
            return err("too many inodes for this file system size");
        }
        let max_ipg = 65536 - block_size / inode_size;
        ipg = ipg.min(max_ipg);
        let mut itb = (ipg * inode_size).div_ceil(block_size);
        ipg = (itb * block_size / inode_size).max(8) & !7;
        ipg = ipg.min(bits_per_block);
        itb = (ipg * inode_size).div_ceil(block_size);
        if u64::from(ipg) * u64::from(groups) > u64::from(u32::MAX) {
            return err("too many inodes (more than 2^32)");
        }
        let overhead_full = 3 + itb + rsv_gdt + gdt_in_groups.min(1);
        if overhead_full > blocks_per_group {
            return err("too many inodes for the group size");
        }
        // Is the last group big enough for its own metadata?
        let last = groups - 1;
        let last_has_super = last == 0 || last == 1 || !sparse || is_sparse_backup_group(last);
        let mut overhead = 2 + itb;
        if last_has_super {
            overhead += 1 + gdt_in_groups + rsv_gdt;
        }
        let rem = (blocks - first_data_block) % u64::from(blocks_per_group);
        if groups == 1 && rem != 0 && rem < u64::from(overhead) {
            return err(too_small(device_bytes));
        }
        if rem != 0 && rem < u64::from(overhead) + 50 {
            blocks -= rem;
            continue;
        }
        break (groups, ipg, itb, gdt_blocks, rsv_gdt);
    };
    let _ = itb;
    if meta_bg {
        features.incompat.insert(Incompat::META_BG);
        features.compat.remove(Compat::RESIZE_INODE);
    }
    let inodes_count = ipg * groups;
    if inodes_count < 16 {
        return err(match opts.inodes_count {
            Some(n) => format!("-N {n} gives {inodes_count} inodes, fewer than the 16 needed"),
            None => format!(
                "{}: it would have {inodes_count} inodes, fewer than the 16 needed",
                too_small(device_bytes)
            ),
        });
    }

    let mut f = SuperblockFields::read_fields(&[0u8; superblock::SUPERBLOCK_SIZE]);
    f.inodes_count = inodes_count;
    f.first_data_block = u32::try_from(first_data_block).unwrap_or(0);
    f.log_block_size = log_block;
    f.log_cluster_size = log_block;
    f.blocks_per_group = blocks_per_group;
    f.clusters_per_group = blocks_per_group;
    f.inodes_per_group = ipg;
    let now32 = now.clamp(0, i64::from(u32::MAX)) as u32;
    f.wtime = now32;
    f.mkfs_time = now32;
    f.lastcheck = now32;
    f.max_mnt_count = 0xFFFF;
    f.magic = superblock::EXT4_MAGIC;
    f.state = superblock::STATE_VALID;
    f.errors = superblock::ERRORS_CONTINUE;
    f.rev_level = superblock::DYNAMIC_REV;
    f.first_ino = 11;
    f.inode_size = u16::try_from(inode_size).unwrap_or(256);
    f.uuid = uuid;
    let label = opts.label.as_bytes();
    if label.len() > 16 {
        return err(format!(
            "volume label '{}' is longer than 16 bytes",
            opts.label
        ));
    }
    f.volume_name[..label.len()].copy_from_slice(label);
    f.reserved_gdt_blocks = u16::try_from(rsv_gdt).unwrap_or(0);
    f.hash_seed = [
        u32::from_le_bytes([hash_seed[0], hash_seed[1], hash_seed[2], hash_seed[3]]),
        u32::from_le_bytes([hash_seed[4], hash_seed[5], hash_seed[6], hash_seed[7]]),
        u32::from_le_bytes([hash_seed[8], hash_seed[9], hash_seed[10], hash_seed[11]]),
        u32::from_le_bytes([hash_seed[12], hash_seed[13], hash_seed[14], hash_seed[15]]),
    ];
    f.def_hash_version = superblock::HASH_HALF_MD4;
    f.flags = superblock::FLAG_SIGNED_HASH;
    f.default_mount_opts = superblock::DEFM_XATTR_USER | superblock::DEFM_ACL;
    if is_64bit {
        f.desc_size = 64;
    }
    // Like ext2fs_initialize: whenever the inode has room for the large
    // inode's fields (160 bytes), independent of the extra_isize feature;
    // every inode mkfs writes has i_extra_isize = 32 then.
    if inode_size >= 160 {
        f.min_extra_isize = 32;
        f.want_extra_isize = 32;
    }
    let mut flex_size = 1;
    if features.incompat.contains(Incompat::FLEX_BG) {
        flex_size = opts.flex_bg_size.unwrap_or(16);
        if !flex_size.is_power_of_two() || flex_size > 1 << 31 {
            return err(format!("flex_bg size {flex_size} is not a power of 2"));
        }
        f.log_groups_per_flex = u8::try_from(flex_size.trailing_zeros()).unwrap_or(4);
    }
    if features.has_metadata_csum() {
        f.checksum_type = superblock::CHECKSUM_TYPE_CRC32C;
    }
    if features.incompat.contains(Incompat::CSUM_SEED) {
        f.checksum_seed = crate::format::csum::fs_csum_seed(&uuid);
    }
    // The journal is decided before the superblock gets its features: like
    // mke2fs, a file system too small for the default journal is made
    // without one (with a warning), unless a size was asked for.
    let mut warnings = Vec::new();
    let journal_blocks = if features.compat.contains(Compat::HAS_JOURNAL) {
        match opts.journal_size_mib {
            Some(mib) => {
                let jb = mib * (1 << 20) / u64::from(block_size);
                if !(1024..=10_240_000).contains(&jb) || jb * 2 > blocks {
                    return err(format!(
                        "journal size {mib} MiB invalid: needs 1024 to 10,240,000 blocks and at most half the file system"
                    ));
                }
                u32::try_from(jb).unwrap_or(0)
            }
            None => match jbd2::default_journal_blocks(blocks) {
                Some(n) => n,
                None if features.compat.contains(Compat::ORPHAN_FILE) => {
                    return err("file system too small for a journal, which orphan_file needs");
                }
                None => {
                    warnings.push("file system too small for a journal: made without one".into());
                    features.compat.remove(Compat::HAS_JOURNAL);
                    0
                }
            },
        }
    } else {
        0
    };
    let mut sb = Superblock { f };
    sb.set_features(features);
    sb.set_blocks_count(blocks);
    let reserved = (reserved_ratio * blocks as f64 / 100.0) as u64;
    sb.set_r_blocks_count(reserved);
    let geo = Geometry::new(&sb);
    debug_assert_eq!(geo.gdt_blocks, gdt_blocks);

    let orphan_file_blocks = if features.compat.contains(Compat::ORPHAN_FILE) {
        orphan::default_orphan_file_blocks(blocks, block_size, 1)
    } else {
        0
    };
    Ok(Plan {
        sb,
        geo,
        features,
        journal_blocks,
        orphan_file_blocks,
        flex_size,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::super::options::{resolve_features, FsType};
    use super::*;

    fn plan_for(bytes: u64) -> Plan {
        let opts = MkfsOptions::default();
        let feat = resolve_features(FsType::Ext4, &[]).unwrap();
        plan(&opts, feat, bytes, [1; 16], [2; 16], 0).unwrap()
    }

    #[test]
    fn geometry_of_300_mib_matches_mke2fs() {
        // Values from `mkfs.ext4 300M` + dumpe2fs (e2fsprogs 1.47.0).
        let p = plan_for(300 << 20);
        assert_eq!(p.sb.block_size(), 1024);
        assert_eq!(p.sb.blocks_count(), 307_200);
        assert_eq!(p.sb.f.inodes_count, 76_912);
        assert_eq!(p.sb.f.inodes_per_group, 2024);
        assert_eq!(p.sb.f.reserved_gdt_blocks, 256);
        assert_eq!(p.sb.r_blocks_count(), 15_360);
        assert_eq!(p.journal_blocks, 8192);
    }

    #[test]
    fn geometry_of_8_mib_matches_mke2fs() {
        let p = plan_for(8 << 20);
        assert_eq!(p.sb.blocks_count(), 8192);
        assert_eq!(p.sb.f.inodes_count, 2048);
        assert_eq!(p.sb.f.reserved_gdt_blocks, 63);
        assert_eq!(p.sb.r_blocks_count(), 409);
        assert_eq!(p.journal_blocks, 1024);
    }

    #[test]
    fn one_tebibyte_uses_4k_blocks_and_a_1g_journal() {
        let p = plan_for(1 << 40);
        assert_eq!(p.sb.block_size(), 4096);
        assert_eq!(p.sb.blocks_count(), 1 << 28);
        assert_eq!(p.journal_blocks, 262_144);
        assert_eq!(p.sb.f.reserved_gdt_blocks, 1024);
    }
}
