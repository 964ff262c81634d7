//! Recording where a file's data lives: an extent tree on extent-enabled
//! file systems, the classic direct/indirect block map otherwise. The data
//! blocks are already allocated (as runs); this allocates and writes the
//! mapping metadata and fills in `i_block`, the EXTENTS flag and `i_blocks`.

use super::builder::Builder;
use crate::format::csum::inode_seed;
use crate::format::extent::{build_extent_tree, Extent, MAX_INIT_EXTENT_LEN};
use crate::format::indirect::build_block_map;
use crate::format::inode::{flags, Inode};
use crate::format::{InodeNo, LogicalBlock, PhysBlock};

/// A run of data blocks: `len` blocks from logical `logical` at `phys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub logical: u32,
    pub phys: u64,
    pub len: u32,
}

/// Writes the mapping of `runs` (sorted by logical block, not overlapping)
/// into `inode` (number `ino`), allocating tree or indirect blocks near the
/// data. `use_extents` chooses the representation.
pub fn map_runs(
    b: &mut Builder,
    ino: u32,
    inode: &mut Inode,
    runs: &[Run],
    use_extents: bool,
) -> Result<(), String> {
    let bs = b.block_size() as usize;
    let data_blocks: u64 = runs.iter().map(|r| u64::from(r.len)).sum();
    let goal = runs.last().map(|r| r.phys + u64::from(r.len));
    let meta_blocks;
    if use_extents {
        let mut extents = Vec::new();
        for r in runs {
            let mut done = 0u32;
            while done < r.len {
                let len = (r.len - done).min(u32::from(MAX_INIT_EXTENT_LEN));
                extents.push(Extent {
                    logical: LogicalBlock(r.logical + done),
                    len: u16::try_from(len).unwrap_or(MAX_INIT_EXTENT_LEN),
                    start: PhysBlock(r.phys + u64::from(done)),
                    unwritten: false,
                });
                done += len;
            }
        }
        let seed = b
            .csum_seed()
            .map(|s| inode_seed(s, InodeNo(ino), inode.generation));
        let alloc = &mut b.alloc;
        let tree = build_extent_tree(&extents, bs, seed, || -> Result<PhysBlock, String> {
            alloc
                .alloc_block(goal)
                .map(PhysBlock)
                .ok_or_else(|| "file system full (extent tree block)".to_string())
        })?;
        for (blk, data) in &tree.blocks {
            b.write_blocks(blk.0, data)?;
        }
        inode.block = tree.i_block;
        inode.flags |= flags::EXTENTS;
        meta_blocks = tree.tree_blocks();
    } else {
        let per_block = runs.iter().flat_map(|r| {
            (0..r.len).map(move |i| {
                (
                    LogicalBlock(r.logical + i),
                    PhysBlock(r.phys + u64::from(i)),
                )
            })
        });
        let alloc = &mut b.alloc;
        let map = build_block_map(bs, per_block, |_| -> Result<PhysBlock, String> {
            alloc
                .alloc_block(goal)
                .map(PhysBlock)
                .ok_or_else(|| "file system full (indirect block)".to_string())
        })?;
        for (blk, data) in &map.blocks {
            b.write_blocks(blk.0, data)?;
        }
        inode.block = map.i_block_bytes();
        inode.flags &= !flags::EXTENTS;
        meta_blocks = map.meta_blocks();
    }
    let sectors = (data_blocks + meta_blocks) * (bs as u64 / 512);
    inode.set_blocks_512(sectors, b.block_size());
    Ok(())
}

/// Allocates `count` data blocks near `goal` as few runs as possible,
/// starting at logical block `logical`.
pub fn alloc_runs(
    b: &mut Builder,
    goal: Option<u64>,
    logical: u32,
    count: u64,
) -> Result<Vec<Run>, String> {
    let mut runs = Vec::new();
    let mut done = 0u64;
    let mut next_goal = goal;
    while done < count {
        let (phys, len) = b
            .alloc
            .alloc_run(next_goal, count - done)
            .ok_or_else(|| "file system full: not enough free blocks for the data".to_string())?;
        let logical_here = u32::try_from(u64::from(logical) + done)
            .map_err(|_| "file too large for 32-bit logical block numbers".to_string())?;
        runs.push(Run {
            logical: logical_here,
            phys,
            len: u32::try_from(len).unwrap_or(u32::MAX),
        });
        done += len;
        next_goal = Some(phys + len);
    }
    Ok(runs)
}
