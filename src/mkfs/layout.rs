//! Placement of each group's block bitmap, inode bitmap and inode table.
//!
//! Without flex_bg each group holds its own, right after its superblock
//! backup and GDT copies. With flex_bg (groups_per_flex = F), mke2fs packs
//! the metadata of F consecutive groups into the first group of the flex
//! group: F block bitmap slots, then F inode bitmap slots, then the inode
//! tables one after another, each placed first-fit so it steps around
//! superblock backups. Packing frees the other groups entirely for data
//! (large contiguous extents) and keeps metadata reads sequential.

use super::alloc::Allocator;
use super::format::Progress;
use crate::format::geometry::Geometry;

/// Where one group's bitmaps and inode table are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupMeta {
    pub block_bitmap: u64,
    pub inode_bitmap: u64,
    pub inode_table: u64,
}

/// Places every group's metadata, marking the blocks used in `alloc`;
/// reports the groups placed so far to `progress`.
pub fn place_group_metadata(
    geo: &Geometry,
    flex_size: u32,
    alloc: &mut Allocator,
    progress: &mut dyn Progress,
) -> Result<Vec<GroupMeta>, String> {
    let groups = geo.groups_count;
    let itb = u64::from(geo.inode_table_blocks);
    let mut metas = vec![GroupMeta::default(); groups as usize];
    let full = || "file system too small for its block group metadata".to_string();
    let flex = flex_size.max(1);
    let mut leader = 0;
    while leader < groups {
        let members = flex.min(groups - leader);
        let start = geo.group_first_block(leader) + u64::from(geo.base_meta_blocks(leader));
        // With flex_bg, reserve a whole slot run of `flex` blocks for each
        // bitmap kind, as mke2fs does, so a later resize could fill them.
        let slots = if flex > 1 { u64::from(flex) } else { 1 };
        for i in 0..members {
            let g = (leader + i) as usize;
            let goal = start + u64::from(i);
            metas[g].block_bitmap = alloc.alloc_contiguous(goal, 1).ok_or_else(full)?;
        }
        for i in 0..members {
            let g = (leader + i) as usize;
            let goal = start + slots + u64::from(i);
            metas[g].inode_bitmap = alloc.alloc_contiguous(goal, 1).ok_or_else(full)?;
        }
        let mut goal = start + 2 * slots;
        for i in 0..members {
            let g = (leader + i) as usize;
            metas[g].inode_table = alloc.alloc_contiguous(goal, itb).ok_or_else(full)?;
            goal = metas[g].inode_table + itb;
        }
        leader += members;
        progress.count(u64::from(leader), u64::from(groups));
    }
    Ok(metas)
}
