//! The orphan file (inode 12, feature orphan_file): a preallocated regular
//! file whose blocks each hold a table of orphan inode numbers and a tail
//! with a magic number and a checksum. A new file system's orphan file is
//! empty: every slot zero.

use super::builder::Builder;
use super::filemap::{alloc_runs, map_runs};
use super::plan::ORPHAN_FILE_INO;
use super::special::{uses_extents, write_runs};
use crate::format::csum::inode_seed;
use crate::format::inode::S_IFREG;
use crate::format::orphan;
use crate::format::InodeNo;

/// Creates the orphan file and records it in the superblock.
pub fn make_orphan_file(b: &mut Builder) -> Result<(), String> {
    let nblocks = b.plan.orphan_file_blocks;
    let bs = b.block_size() as usize;
    b.alloc.mark_inode_used(ORPHAN_FILE_INO, false);
    let mut inode = b.new_inode(S_IFREG | 0o600);
    inode.links_count = 1;
    inode.size = u64::from(nblocks) * bs as u64;
    let seed = b
        .csum_seed()
        .map(|s| inode_seed(s, InodeNo(ORPHAN_FILE_INO), inode.generation));
    let runs = alloc_runs(b, None, 0, u64::from(nblocks))?;
    let mut data = vec![0u8; nblocks as usize * bs];
    let phys_blocks = runs
        .iter()
        .flat_map(|r| (0..u64::from(r.len)).map(move |i| r.phys + i));
    for (block, phys) in data.chunks_mut(bs).zip(phys_blocks) {
        orphan::encode_empty_block(block)?;
        if let Some(seed) = seed {
            orphan::set_block_checksum(seed, phys, block)?;
        }
    }
    write_runs(b, &runs, &data)?;
    map_runs(b, ORPHAN_FILE_INO, &mut inode, &runs, uses_extents(b))?;
    b.put_inode(ORPHAN_FILE_INO, &inode, None)?;
    b.plan.sb.f.orphan_file_inum = ORPHAN_FILE_INO;
    Ok(())
}
