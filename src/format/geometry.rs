//! Where the fixed metadata of each block group lives: which groups carry a
//! superblock backup, how many blocks the group descriptor table (GDT) and
//! its reserved growth area take, and where a group's descriptor block is
//! under meta_bg. Pure arithmetic over a validated [`Superblock`].
//!
//! Rules:
//! - Without sparse_super every group has a backup; with it, groups 0, 1
//!   and powers of 3, 5 and 7; with sparse_super2 only group 0 and the two
//!   groups named in `s_backup_bgs`.
//! - A group with a superblock copy has, right after it, the GDT (all
//!   descriptor blocks, or under meta_bg only the first `s_first_meta_bg`
//!   of them) and then `s_reserved_gdt_blocks` reserved blocks (none under
//!   meta_bg, as e2fsprogs' `ext2fs_super_and_bgd_loc2` counts them, even
//!   if a damaged superblock also says resize_inode).
//! - Under meta_bg, the descriptor block of meta group m (the groups whose
//!   descriptors share one block) is stored in the first, second and last
//!   group of that meta group, after the superblock copy if there is one.

use super::features::{Compat, Incompat, RoCompat};
use super::superblock::Superblock;

/// Whether `n` is a power of `base` (1 counts as base^0).
fn is_power_of(mut n: u32, base: u32) -> bool {
    if n == 0 {
        return false;
    }
    while n.is_multiple_of(base) {
        n /= base;
    }
    n == 1
}

/// Whether sparse_super puts a backup in group `g` (> 1): powers of 3, 5, 7.
pub fn is_sparse_backup_group(g: u32) -> bool {
    g % 2 == 1 && (is_power_of(g, 3) || is_power_of(g, 5) || is_power_of(g, 7))
}

/// The geometry questions, answered for one superblock.
#[derive(Debug, Clone)]
pub struct Geometry {
    pub block_size: u32,
    pub blocks_count: u64,
    pub first_data_block: u64,
    pub blocks_per_group: u32,
    pub inodes_per_group: u32,
    pub groups_count: u32,
    pub desc_size: u32,
    pub descs_per_block: u32,
    /// Blocks of the whole GDT (all groups' descriptors).
    pub gdt_blocks: u32,
    pub reserved_gdt_blocks: u32,
    pub inode_size: u32,
    pub inode_table_blocks: u32,
    sparse_super: bool,
    sparse_super2: bool,
    backup_bgs: [u32; 2],
    meta_bg: bool,
    first_meta_bg: u32,
}

impl Geometry {
    pub fn new(sb: &Superblock) -> Self {
        let feat = sb.features();
        let block_size = sb.block_size();
        let desc_size = u32::from(sb.desc_size());
        let descs_per_block = (block_size / desc_size.max(1)).max(1);
        let groups_count = sb.groups_count();
        let inode_size = u32::from(sb.inode_size());
        let inode_table_blocks = u32::try_from(
            (u64::from(sb.f.inodes_per_group) * u64::from(inode_size))
                .div_ceil(u64::from(block_size)),
        )
        .unwrap_or(u32::MAX);
        Geometry {
            block_size,
            blocks_count: sb.blocks_count(),
            first_data_block: u64::from(sb.f.first_data_block),
            blocks_per_group: sb.f.blocks_per_group,
            inodes_per_group: sb.f.inodes_per_group,
            groups_count,
            desc_size,
            descs_per_block,
            gdt_blocks: groups_count.div_ceil(descs_per_block),
            reserved_gdt_blocks: if feat.compat.contains(Compat::RESIZE_INODE)
                && !feat.incompat.contains(Incompat::META_BG)
            {
                u32::from(sb.f.reserved_gdt_blocks)
            } else {
                0
            },
            inode_size,
            inode_table_blocks,
            sparse_super: feat.ro_compat.contains(RoCompat::SPARSE_SUPER),
            sparse_super2: feat.compat.contains(Compat::SPARSE_SUPER2),
            backup_bgs: sb.f.backup_bgs,
            meta_bg: feat.incompat.contains(Incompat::META_BG),
            first_meta_bg: sb.f.first_meta_bg,
        }
    }

    /// Whether group `g` holds a superblock copy (group 0: the primary).
    pub fn has_super(&self, g: u32) -> bool {
        if g == 0 {
            return true;
        }
        if self.sparse_super2 {
            return g == self.backup_bgs[0] || g == self.backup_bgs[1];
        }
        if g <= 1 || !self.sparse_super {
            return true;
        }
        is_sparse_backup_group(g)
    }

    /// First block of group `g`.
    pub fn group_first_block(&self, g: u32) -> u64 {
        self.first_data_block + u64::from(g) * u64::from(self.blocks_per_group)
    }

    /// Number of blocks in group `g` (the last one may be short).
    pub fn blocks_in_group(&self, g: u32) -> u32 {
        let start = self.group_first_block(g);
        let end = (start + u64::from(self.blocks_per_group)).min(self.blocks_count);
        u32::try_from(end.saturating_sub(start)).unwrap_or(0)
    }

    /// The group a block belongs to.
    pub fn group_of_block(&self, block: u64) -> u32 {
        let rel = block.saturating_sub(self.first_data_block);
        u32::try_from(rel / u64::from(self.blocks_per_group.max(1))).unwrap_or(u32::MAX)
    }

    /// Group and index within it of an inode number (>= 1).
    pub fn inode_location(&self, ino: u32) -> (u32, u32) {
        let i = ino.saturating_sub(1);
        (i / self.inodes_per_group, i % self.inodes_per_group)
    }

    /// Descriptor blocks stored after each superblock copy (the "old"
    /// non-meta_bg part of the GDT).
    pub fn old_gdt_blocks(&self) -> u32 {
        if self.meta_bg {
            self.first_meta_bg.min(self.gdt_blocks)
        } else {
            self.gdt_blocks
        }
    }

    /// Blocks at the start of group `g` taken by the superblock copy, the
    /// old-style GDT and the reserved GDT area (0 in groups without a copy).
    pub fn super_and_gdt_blocks(&self, g: u32) -> u32 {
        if !self.has_super(g) {
            return 0;
        }
        1 + self.old_gdt_blocks() + self.reserved_gdt_blocks
    }

    /// Under meta_bg: whether group `g` holds its meta group's descriptor
    /// block (first, second or last group of the meta group).
    pub fn has_meta_bg_desc(&self, g: u32) -> bool {
        if !self.meta_bg {
            return false;
        }
        let meta_group = g / self.descs_per_block;
        if meta_group < self.first_meta_bg {
            return false;
        }
        let idx = g % self.descs_per_block;
        idx == 0 || idx == 1 || idx == self.descs_per_block - 1
    }

    /// All fixed metadata blocks at the start of group `g` ("base meta"):
    /// superblock copy, GDT, reserved GDT and meta_bg descriptor block.
    pub fn base_meta_blocks(&self, g: u32) -> u32 {
        self.super_and_gdt_blocks(g) + u32::from(self.has_meta_bg_desc(g))
    }

    /// The block holding descriptor block `i` of the primary GDT (the copy
    /// after the primary superblock, or under meta_bg the copy in the first
    /// group of its meta group).
    pub fn gdt_block_location(&self, i: u32) -> u64 {
        let sb_block = self.first_data_block;
        if !self.meta_bg || i < self.first_meta_bg {
            return sb_block + 1 + u64::from(i);
        }
        let first_group = i * self.descs_per_block;
        self.group_first_block(first_group) + u64::from(self.has_super(first_group))
    }

    /// Block number of the superblock copy in group `g` and the byte offset
    /// of the superblock inside it (1024 in block 0 of a 4 KiB file system).
    pub fn superblock_location(&self, g: u32) -> (u64, usize) {
        if g == 0 {
            if self.block_size == 1024 {
                (1, 0)
            } else {
                (0, 1024)
            }
        } else {
            (self.group_first_block(g), 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::superblock::SuperblockFields;

    /// A 4 KiB-block superblock of 15 groups of 256 blocks (the geometry of
    /// e2fsprogs' f_resize_inode_meta_bg image).
    fn small_sb(compat: Compat, incompat: Incompat) -> Superblock {
        let mut f = SuperblockFields::read_fields(&[0u8; 1024]);
        f.log_block_size = 2;
        f.log_cluster_size = 2;
        f.blocks_count_lo = 3840;
        f.blocks_per_group = 256;
        f.clusters_per_group = 256;
        f.inodes_per_group = 64;
        f.inodes_count = 960;
        f.rev_level = 1;
        f.inode_size = 256;
        f.first_ino = 11;
        f.desc_size = 64;
        f.reserved_gdt_blocks = 239;
        f.feature_compat = compat.bits();
        f.feature_incompat = (incompat | Incompat::BIT64).bits();
        f.feature_ro_compat = RoCompat::SPARSE_SUPER.bits();
        Superblock { f }
    }

    #[test]
    fn meta_bg_ignores_reserved_gdt_blocks_as_e2fsprogs_does() {
        // dumpe2fs of f_resize_inode_meta_bg: "Primary superblock at 0,
        // Group descriptor at 1, Block bitmap at 2" although the superblock
        // says resize_inode with 239 reserved GDT blocks.
        let geo = Geometry::new(&small_sb(Compat::RESIZE_INODE, Incompat::META_BG));
        assert_eq!(geo.reserved_gdt_blocks, 0);
        assert_eq!(geo.base_meta_blocks(0), 2);
        assert_eq!(geo.gdt_block_location(0), 1);
        // Without meta_bg the reserved blocks follow the GDT.
        let geo = Geometry::new(&small_sb(Compat::RESIZE_INODE, Incompat::empty()));
        assert_eq!(geo.reserved_gdt_blocks, 239);
        assert_eq!(geo.base_meta_blocks(0), 1 + 1 + 239);
    }

    #[test]
    fn powers_are_recognised() {
        let yes = [1, 3, 9, 27, 81, 5, 25, 125, 7, 49, 343];
        for n in yes {
            assert!(
                is_power_of(n, 3) || is_power_of(n, 5) || is_power_of(n, 7),
                "{n}"
            );
        }
        for n in [0, 2, 15, 21, 35, 45, 63] {
            assert!(
                !(is_power_of(n, 3) || is_power_of(n, 5) || is_power_of(n, 7)),
                "{n}"
            );
        }
    }
}
