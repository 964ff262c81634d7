//! The inodes every new file system has: the reserved inodes 1..10, the
//! resize inode (7) that reserves GDT growth room, and lost+found (11).
//! The root directory is made by [`super::populate`] (it may be filled from
//! `-d`), the journal by [`super::journal`].

use super::builder::Builder;
use super::filemap::{alloc_runs, map_runs};
use super::plan::LOST_FOUND_INO;
use super::populate::clear_dot_file_types;
use crate::format::csum::inode_seed;
use crate::format::dir::{build_linear_dir, LeafBuilder};
use crate::format::features::{Compat, Incompat};
use crate::format::indirect::DIND_SLOT;
use crate::format::inode::{S_IFDIR, S_IFREG};
use crate::format::InodeNo;

/// Inode of the resize inode.
pub const RESIZE_INO: u32 = 7;
/// Inode of the journal.
pub const JOURNAL_INO: u32 = 8;

/// Marks inodes 1..first_ino (but the root, made by populate) used and
/// writes them as empty inodes with mkfs' timestamps (so their checksums are valid).
pub fn write_reserved_inodes(b: &mut Builder) -> Result<(), String> {
    let first = b.plan.sb.first_ino();
    for ino in (1..first).filter(|&i| i != super::populate::ROOT_INO) {
        b.alloc.mark_inode_used(ino, false);
        let mut i = b.new_inode(0);
        i.extra_isize = 0;
        i.has_extra = false;
        i.crtime = Default::default();
        b.put_inode(ino, &i, None)?;
    }
    Ok(())
}

/// Blocks of lost+found: 16 KiB but at least two blocks and at most the 12
/// direct blocks, as mke2fs makes it.
fn lost_found_blocks(block_size: u32) -> u32 {
    (16384 / block_size).clamp(2, 12)
}

/// Whether new files on this file system use extent trees.
pub fn uses_extents(b: &Builder) -> bool {
    b.plan.features.incompat.contains(Incompat::EXTENTS)
}

/// Creates lost+found (inode 11) under the root, mode 0700, pre-grown so
/// that fsck can reconnect files without allocating.
pub fn make_lost_found(b: &mut Builder) -> Result<(), String> {
    let bs = b.block_size();
    let nblocks = lost_found_blocks(bs);
    let ino = LOST_FOUND_INO;
    b.alloc.mark_inode_used(ino, true);
    let mut inode = b.new_inode(S_IFDIR | 0o700);
    inode.links_count = 2;
    let seed = b.csum_seed().map(|s| inode_seed(s, InodeNo(ino), 0));
    let mut data = build_linear_dir(ino, 2, &[], bs as usize, seed)?;
    if !b.plan.features.incompat.contains(Incompat::FILETYPE) {
        clear_dot_file_types(&mut data[..bs as usize], seed, false)?;
    }
    for _ in 1..nblocks {
        let start = data.len();
        data.resize(start + bs as usize, 0);
        LeafBuilder::new(&mut data[start..], seed)?.finish()?;
    }
    let runs = alloc_runs(b, None, 0, u64::from(nblocks))?;
    write_runs(b, &runs, &data)?;
    map_runs(b, ino, &mut inode, &runs, uses_extents(b))?;
    inode.size = u64::from(nblocks) * u64::from(bs);
    b.put_inode(ino, &inode, None)
}

/// Writes `data` (a whole number of blocks) into the blocks of `runs`.
pub fn write_runs(
    b: &mut Builder,
    runs: &[super::filemap::Run],
    data: &[u8],
) -> Result<(), String> {
    let bs = b.block_size() as usize;
    let mut off = 0;
    for r in runs {
        let len = r.len as usize * bs;
        let end = (off + len).min(data.len());
        if off < end {
            b.write_blocks(r.phys, &data[off..end])?;
        }
        off += len;
    }
    Ok(())
}

/// Creates the resize inode: a block-mapped file whose double-indirect
/// block lists the primary reserved GDT blocks, each of which in turn lists
/// its backups in the groups with superblock copies. e2fsck checks this
/// structure exactly (see its check_resize_inode).
pub fn make_resize_inode(b: &mut Builder) -> Result<(), String> {
    if !b.plan.features.compat.contains(Compat::RESIZE_INODE) {
        return Ok(());
    }
    let geo = b.plan.geo.clone();
    let bs = geo.block_size;
    let apb = bs / 4;
    let rsv = geo.reserved_gdt_blocks;
    let mut inode = b.new_inode(S_IFREG | 0o600);
    inode.links_count = 1;
    let size_blocks = u64::from(apb) * u64::from(apb) + u64::from(apb) + 12;
    inode.size = size_blocks * u64::from(bs);
    // The double-indirect block is allocated even when no GDT blocks are
    // reserved (e2fsck accepts both), as mke2fs does, so the free block
    // counts of the two tools agree.
    let sb_block = geo.first_data_block;
    let goal = sb_block
        + u64::from(geo.gdt_blocks)
        + u64::from(rsv)
        + 2
        + u64::from(geo.inode_table_blocks);
    let dind = b
        .alloc
        .alloc_block(Some(goal))
        .ok_or("file system full (resize inode)")?;
    let mut dind_buf = vec![0u8; bs as usize];
    let backups: Vec<u32> = (1..geo.groups_count)
        .filter(|&g| geo.has_super(g))
        .collect();
    let mut blocks_used = 1u64;
    for i in 0..rsv {
        let primary = sb_block + 1 + u64::from(geo.gdt_blocks) + u64::from(i);
        let slot = ((geo.gdt_blocks + i) % apb) as usize;
        let primary32 =
            u32::try_from(primary).map_err(|_| "resize inode needs 32-bit block numbers")?;
        dind_buf[slot * 4..slot * 4 + 4].copy_from_slice(&primary32.to_le_bytes());
        let mut ind = vec![0u8; bs as usize];
        for (k, &g) in backups.iter().take(apb as usize).enumerate() {
            let backup = primary + u64::from(g) * u64::from(geo.blocks_per_group);
            let backup32 =
                u32::try_from(backup).map_err(|_| "resize inode needs 32-bit block numbers")?;
            ind[k * 4..k * 4 + 4].copy_from_slice(&backup32.to_le_bytes());
            blocks_used += 1;
        }
        b.write_blocks(primary, &ind)?;
        blocks_used += 1;
    }
    b.write_blocks(dind, &dind_buf)?;
    let dind32 = u32::try_from(dind).map_err(|_| "resize inode needs 32-bit block numbers")?;
    inode.block[DIND_SLOT * 4..DIND_SLOT * 4 + 4].copy_from_slice(&dind32.to_le_bytes());
    inode.set_blocks_512(blocks_used * u64::from(bs / 512), bs);
    b.put_inode(RESIZE_INO, &inode, None)
}
