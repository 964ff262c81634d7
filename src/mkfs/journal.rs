//! The internal jbd2 journal (inode 8): a contiguous-as-possible file placed
//! in the middle of the file system (as mke2fs does, so the journal sits
//! between data regions), whose first block is an empty version-2 journal
//! superblock (s_start = 0: nothing to replay). The rest of the journal must
//! read as zeros. Its `i_block` and size are copied into the superblock's
//! `s_jnl_blocks` backup.

use super::builder::Builder;
use super::filemap::{alloc_runs, map_runs};
use super::special::{uses_extents, JOURNAL_INO};
use crate::format::inode::{flags, S_IFREG};
use crate::format::jbd2::JournalSuperblock;
use crate::format::superblock::JNL_BACKUP_BLOCKS;

/// Creates the journal inode and its blocks and records it in the plan's
/// superblock.
pub fn make_journal(b: &mut Builder) -> Result<(), String> {
    let nblocks = u64::from(b.plan.journal_blocks);
    let geo = b.plan.geo.clone();
    let bs = geo.block_size;
    // Middle of the file system, rounded down to a flex group start.
    let mut group = geo.group_of_block((geo.blocks_count - geo.first_data_block) / 2);
    let flex = b.plan.flex_size.max(1);
    if geo.groups_count > flex {
        group &= !(flex - 1);
    }
    let goal = geo.group_first_block(group);
    let runs = alloc_runs(b, Some(goal), 0, nblocks)?;
    for r in &runs {
        b.zero_blocks(r.phys, u64::from(r.len))?;
    }
    let jsb = JournalSuperblock::new_internal(bs, b.plan.journal_blocks, b.plan.sb.f.uuid, 0);
    let first = jsb.to_block()?;
    b.write_blocks(runs[0].phys, &first)?;

    let mut inode = b.new_inode(S_IFREG | 0o600);
    inode.links_count = 1;
    inode.size = nblocks * u64::from(bs);
    map_runs(b, JOURNAL_INO, &mut inode, &runs, uses_extents(b))?;
    debug_assert_eq!(inode.has_flag(flags::EXTENTS), uses_extents(b));
    b.put_inode(JOURNAL_INO, &inode, None)?;

    let sb = &mut b.plan.sb.f;
    sb.journal_inum = JOURNAL_INO;
    sb.jnl_backup_type = JNL_BACKUP_BLOCKS;
    for (i, slot) in sb.jnl_blocks.iter_mut().take(15).enumerate() {
        *slot = u32::from_le_bytes([
            inode.block[4 * i],
            inode.block[4 * i + 1],
            inode.block[4 * i + 2],
            inode.block[4 * i + 3],
        ]);
    }
    sb.jnl_blocks[15] = (inode.size >> 32) as u32;
    sb.jnl_blocks[16] = (inode.size & 0xffff_ffff) as u32;
    Ok(())
}
