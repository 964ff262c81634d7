//! Inodes in use: their parsed form plus what the file system loaded for
//! them (mapping, directory, xattrs), and the write-back of all of it.
//!
//! Write-back order for one inode: directory content (may change the
//! mapping), then the mapping (old tree/indirect blocks freed, a fresh one
//! built), then the xattrs (in-inode area and xattr block), then the inode
//! itself into its inode-table block, with its checksum.

use std::time::Instant;

use super::cache::BlockKind;
use super::dirstate::DirState;
use super::error::{FsError, FsResult};
use super::filemap::{FileMap, MapKind};
use super::volume::Volume;
use crate::format::csum::inode_seed;
use crate::format::extent::{
    build_extent_tree, extent_tree_blocks, walk_extent_tree, Extent, MAX_INIT_EXTENT_LEN,
    MAX_UNWRITTEN_EXTENT_LEN,
};
use crate::format::indirect::{
    build_block_map, indirect_blocks_for_len, parse_i_block, walk_block_map,
};
use crate::format::inode::{flags, set_inode_csum, verify_inode_csum, Inode};
use crate::format::xattr::Xattr;
use crate::format::{InodeNo, LogicalBlock, PhysBlock};

/// An inode the file system is working with.
pub struct InodeState {
    pub ino: u32,
    pub inode: Inode,
    /// Bytes after the extra fields up to the inode size (the in-inode
    /// xattr area) as loaded.
    pub tail: Vec<u8>,
    /// Inode fields changed since load or write-back.
    pub dirty: bool,
    pub map: Option<FileMap>,
    pub dir: Option<DirState>,
    /// Loaded xattrs (in-inode first, then block), when changed or read.
    pub xattrs: Option<Vec<Xattr>>,
    pub xattrs_dirty: bool,
    /// Kernel lookup references (FUSE nlookup).
    pub nlookup: u64,
    /// Open file handles.
    pub open_count: u32,
    /// Open file handles that may write.
    pub writers: u32,
    /// On the orphan list (unlinked while open, or being truncated).
    pub orphan: bool,
    /// Blocks this inode's write-back may need (counted in the volume's
    /// `meta_reserve`).
    pub meta_estimate: u64,
    /// Freed or evicted while another thread waited for its lock: that
    /// thread must look the inode up in the table again.
    pub evicted: bool,
    /// When a name of this file was last removed while other names remain
    /// (see `Attr::link_dropped`).
    pub link_dropped: Option<Instant>,
}

impl InodeState {
    pub fn is_dirty(&self) -> bool {
        self.dirty
            || self.xattrs_dirty
            || self.map.as_ref().is_some_and(|m| m.dirty)
            || self.dir.as_ref().is_some_and(|d| d.dirty)
    }

    /// The checksum seed for this inode's metadata blocks.
    pub fn csum_seed(&self, vol: &Volume) -> Option<u32> {
        vol.csum_seed
            .map(|s| inode_seed(s, InodeNo(self.ino), self.inode.generation))
    }
}

/// Reads inode `ino` from its table block, verifying its checksum.
pub fn load_inode(vol: &Volume, ino: u32) -> FsResult<InodeState> {
    let (blk, off) = vol.inode_location(ino)?;
    let isize = vol.geo.inode_size as usize;
    vol.prefetch_inode_table(ino);
    let block = vol.read_block(blk)?;
    let raw = block
        .get(off..off + isize)
        .ok_or_else(|| FsError::corrupt(format!("inode {ino}: slot beyond its block")))?;
    if let Some(seed) = vol
        .sb
        .features()
        .has_metadata_csum()
        .then(|| vol.sb.csum_seed())
    {
        let all_zero = raw.iter().all(|&b| b == 0);
        if !all_zero && !verify_inode_csum(seed, ino, raw, isize) {
            return Err(FsError::corrupt(format!("inode {ino}: checksum mismatch")));
        }
    }
    let inode = Inode::parse(raw, isize)?;
    let tail_start = if isize > 128 {
        128 + usize::from(inode.extra_isize)
    } else {
        isize
    };
    Ok(InodeState {
        ino,
        tail: raw[tail_start..].to_vec(),
        inode,
        dirty: false,
        map: None,
        dir: None,
        xattrs: None,
        xattrs_dirty: false,
        nlookup: 0,
        open_count: 0,
        writers: 0,
        orphan: false,
        meta_estimate: 0,
        evicted: false,
        link_dropped: None,
    })
}

/// Loads the block mapping of a regular file, directory or slow symlink.
pub fn load_map(vol: &Volume, st: &InodeState) -> FsResult<FileMap> {
    let bs = vol.block_size();
    let count = vol.geo.blocks_count;
    let read = |b: PhysBlock, buf: &mut [u8]| -> FsResult<()> {
        buf.copy_from_slice(&vol.read_block(b.0)?);
        Ok(())
    };
    if st.inode.has_flag(flags::EXTENTS) {
        let walk = walk_extent_tree(&st.inode.block, bs, count, st.csum_seed(vol), read)
            .map_err(|e| annotate(e, st.ino))?;
        let mut m = FileMap::new(MapKind::Extents);
        for e in walk.extents {
            m.runs.insert(
                e.logical.0,
                super::filemap::Run {
                    phys: e.start.0,
                    len: u32::from(e.len),
                    unwritten: e.unwritten,
                },
            );
        }
        m.meta_blocks = walk.tree_blocks.iter().map(|b| b.0).collect();
        m.recount();
        Ok(m)
    } else if st.inode.has_flag(flags::INLINE_DATA) {
        Err(FsError::new(
            libc::EOPNOTSUPP,
            format!("inode {}: inline data has no block map", st.ino),
        ))
    } else {
        let ptrs = parse_i_block(&st.inode.block)?;
        let walk = walk_block_map(&ptrs, bs, count, read).map_err(|e| annotate(e, st.ino))?;
        let mut m = FileMap::new(MapKind::BlockMap);
        for (l, p) in walk.data {
            if let Some((s, r)) = m.runs.iter_mut().next_back() {
                if u64::from(*s) + u64::from(r.len) == u64::from(l.0)
                    && r.phys + u64::from(r.len) == p.0
                {
                    r.len += 1;
                    continue;
                }
            }
            m.runs.insert(
                l.0,
                super::filemap::Run {
                    phys: p.0,
                    len: 1,
                    unwritten: false,
                },
            );
        }
        m.meta_blocks = walk.meta.iter().map(|b| b.0).collect();
        m.recount();
        Ok(m)
    }
}

fn annotate(e: FsError, ino: u32) -> FsError {
    FsError::new(e.errno, format!("inode {ino}: {}", e.detail))
}

/// Rebuilds the on-disk mapping from the in-memory one: frees the old tree
/// or indirect blocks, builds a new minimal structure near the data, and
/// sets `i_block`, the EXTENTS flag and `i_blocks`.
pub fn write_back_map(vol: &Volume, st: &mut InodeState) -> FsResult<()> {
    let Some(map) = st.map.as_mut() else {
        return Ok(());
    };
    if !map.dirty {
        return Ok(());
    }
    let old = std::mem::take(&mut map.meta_blocks);
    for b in old {
        vol.free_blocks(b, 1)?;
    }
    let bs = vol.block_size();
    let goal = map
        .runs
        .values()
        .next()
        .map_or(vol.inode_group_start(st.ino), |r| r.phys);
    let seed = vol
        .csum_seed
        .map(|s| inode_seed(s, InodeNo(st.ino), st.inode.generation));
    let map = st.map.as_mut().expect("checked above");
    let mut new_meta = Vec::new();
    match map.kind {
        MapKind::Extents => {
            let mut extents = Vec::new();
            for (&l, r) in &map.runs {
                let max = if r.unwritten {
                    MAX_UNWRITTEN_EXTENT_LEN
                } else {
                    MAX_INIT_EXTENT_LEN
                };
                let mut done = 0u32;
                while done < r.len {
                    let n = (r.len - done).min(u32::from(max));
                    extents.push(Extent {
                        logical: LogicalBlock(l + done),
                        len: n as u16,
                        start: PhysBlock(r.phys + u64::from(done)),
                        unwritten: r.unwritten,
                    });
                    done += n;
                }
            }
            let tree = build_extent_tree(&extents, bs, seed, || -> FsResult<PhysBlock> {
                let (b, _) = vol.alloc_blocks_wb(goal, 1)?;
                new_meta.push(b);
                Ok(PhysBlock(b))
            })?;
            for (b, data) in &tree.blocks {
                vol.new_block(b.0, BlockKind::Meta)?.copy_from_slice(data);
            }
            st.inode.block = tree.i_block;
            st.inode.flags |= flags::EXTENTS;
        }
        MapKind::BlockMap => {
            let per_block: Vec<(LogicalBlock, PhysBlock)> = map
                .runs
                .iter()
                .flat_map(|(&l, r)| {
                    (0..r.len).map(move |i| (LogicalBlock(l + i), PhysBlock(r.phys + u64::from(i))))
                })
                .collect();
            let built = build_block_map(bs, per_block, |_| -> FsResult<PhysBlock> {
                let (b, _) = vol.alloc_blocks_wb(goal, 1)?;
                new_meta.push(b);
                Ok(PhysBlock(b))
            })?;
            for (b, data) in &built.blocks {
                vol.new_block(b.0, BlockKind::Meta)?.copy_from_slice(data);
            }
            st.inode.block = built.i_block_bytes();
            st.inode.flags &= !flags::EXTENTS;
        }
    }
    let map = st.map.as_mut().expect("checked above");
    map.meta_blocks = new_meta;
    map.dirty = false;
    update_i_blocks(vol, st);
    st.dirty = true;
    Ok(())
}

/// Recomputes `i_blocks` from the mapping and the xattr block.
pub fn update_i_blocks(vol: &Volume, st: &mut InodeState) {
    let bs = vol.geo.block_size;
    let Some(map) = st.map.as_ref() else { return };
    let mut blocks = map.data_blocks() + map.meta_blocks.len() as u64;
    if st.inode.file_acl != 0 {
        blocks += 1;
    }
    st.inode.set_blocks_512(blocks * u64::from(bs / 512), bs);
}

/// Writes the inode structure (not its mapping) into its table block.
pub fn store_inode(vol: &Volume, st: &mut InodeState) -> FsResult<()> {
    let (blk, off) = vol.inode_location(st.ino)?;
    let isize = vol.geo.inode_size as usize;
    let seed = vol.csum_seed;
    let mut block = vol.write_block(blk, BlockKind::Meta)?;
    let raw = &mut block[off..off + isize];
    st.inode.encode(raw, isize);
    let tail_start = if isize > 128 {
        128 + usize::from(st.inode.extra_isize)
    } else {
        isize
    };
    let n = st.tail.len().min(isize - tail_start);
    raw[tail_start..tail_start + n].copy_from_slice(&st.tail[..n]);
    raw[tail_start + n..].fill(0);
    if let Some(s) = seed {
        set_inode_csum(s, st.ino, raw, isize);
    }
    st.dirty = false;
    Ok(())
}

/// Whether a symlink keeps its target in `i_block` (the kernel's rule: no
/// data blocks besides a possible xattr block).
pub fn is_fast_symlink(inode: &Inode, block_size: u32) -> bool {
    let ea = if inode.file_acl != 0 {
        u64::from(block_size / 512)
    } else {
        0
    };
    inode.is_symlink()
        && !inode.has_flag(flags::INLINE_DATA)
        && inode.blocks_512(block_size).saturating_sub(ea) == 0
}

/// Blocks the write-back of `st` may allocate: a fresh extent tree or
/// indirect map for its mapping, and new directory blocks.
pub fn estimate_meta_blocks(vol: &Volume, st: &InodeState) -> u64 {
    let bs = vol.block_size();
    let mut need = 0;
    if let Some(map) = st
        .map
        .as_ref()
        .filter(|m| m.dirty || st.dir.as_ref().is_some_and(|d| d.dirty))
    {
        need += match map.kind {
            MapKind::Extents => extent_tree_blocks(map.extent_count(), bs).unwrap_or(u64::MAX / 4),
            MapKind::BlockMap => indirect_blocks_for_len(bs, map.end()).unwrap_or(u64::MAX / 4),
        };
        if let Some(dir) = st.dir.as_ref().filter(|d| d.dirty) {
            let have = map.data_blocks();
            need += dir.estimate_blocks(bs).saturating_sub(have);
        }
    }
    need
}
