//! A directory held in memory: its entries with stable readdir cookies,
//! loaded from the on-disk blocks (linear or htree) on first use and
//! written back as a fresh set of blocks.
//!
//! Cookies: "." is 1, ".." is 2, entries get 3, 4, ... in load order and
//! new entries get the next unused number, so a readdir that resumes at a
//! cookie sees every entry that existed throughout exactly once, whatever
//! was added or removed meanwhile (the POSIX rule for readdir).
//!
//! Write-back lays the entries out again: one linear block when they fit,
//! an htree (hashed index) when the file system has dir_index and they do
//! not, so large directories stay indexed and valid, checksums included.

use std::collections::{BTreeMap, HashMap};

use super::cache::BlockKind;
use super::error::{FsError, FsResult};
use super::filemap::FileMap;
use super::inode::InodeState;
use super::volume::Volume;
use crate::format::dir::{
    build_linear_dir, has_csum_tail, live_entries, rec_len_for_name, verify_dir_block_csum,
    FileType, NewEntry,
};
use crate::format::dx_hash::{seed_from_bytes, DxHashVersion};
use crate::format::features::{Compat, Incompat};
use crate::format::htree::{
    build_htree_dir, verify_dx_csum, DxGeometry, DxNode, DxRoot, HtreeParams, INODE_INDEX_FL,
};
use crate::format::superblock::FLAG_UNSIGNED_HASH;

/// First cookie of a real entry.
pub const FIRST_COOKIE: u64 = 3;
/// Cap on directory size fext loads (blocks).
const MAX_DIR_BLOCKS: u64 = 1 << 22;

/// One entry in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemEntry {
    pub name: Vec<u8>,
    pub ino: u32,
    pub file_type: FileType,
}

/// A loaded directory.
#[derive(Debug, Clone)]
pub struct DirState {
    pub parent: u32,
    entries: BTreeMap<u64, MemEntry>,
    by_name: HashMap<Vec<u8>, u64>,
    next_cookie: u64,
    /// Sum of the minimal record lengths of the entries (kept as they come
    /// and go, so size estimates cost nothing per operation).
    record_bytes: usize,
    pub dirty: bool,
}

impl DirState {
    pub fn new(parent: u32) -> Self {
        DirState {
            parent,
            entries: BTreeMap::new(),
            by_name: HashMap::new(),
            next_cookie: FIRST_COOKIE,
            record_bytes: 0,
            dirty: false,
        }
    }

    pub fn lookup(&self, name: &[u8]) -> Option<&MemEntry> {
        self.by_name.get(name).and_then(|c| self.entries.get(c))
    }

    /// Adds an entry; EEXIST if the name is taken.
    pub fn insert(&mut self, name: &[u8], ino: u32, file_type: FileType) -> FsResult<()> {
        if self.by_name.contains_key(name) {
            return Err(FsError::exist());
        }
        let c = self.next_cookie;
        self.next_cookie += 1;
        self.entries.insert(
            c,
            MemEntry {
                name: name.to_vec(),
                ino,
                file_type,
            },
        );
        self.by_name.insert(name.to_vec(), c);
        self.record_bytes += rec_len_for_name(name.len());
        self.dirty = true;
        Ok(())
    }

    /// Removes an entry, returning it.
    pub fn remove(&mut self, name: &[u8]) -> Option<MemEntry> {
        let c = self.by_name.remove(name)?;
        self.record_bytes = self
            .record_bytes
            .saturating_sub(rec_len_for_name(name.len()));
        self.dirty = true;
        self.entries.remove(&c)
    }

    /// Points an existing name at another inode (rename over a name).
    pub fn replace(&mut self, name: &[u8], ino: u32, file_type: FileType) -> FsResult<()> {
        let c = *self.by_name.get(name).ok_or_else(FsError::noent)?;
        let e = self.entries.get_mut(&c).ok_or_else(FsError::noent)?;
        e.ino = ino;
        e.file_type = file_type;
        self.dirty = true;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// An upper bound of the blocks a write-back lays this directory out in
    /// (leaves a quarter emptier than packed, plus index blocks).
    pub fn estimate_blocks(&self, block_size: usize) -> u64 {
        let bytes = 24 + self.record_bytes;
        let usable = block_size.saturating_sub(12).max(12);
        let leaves = (bytes * 5 / 4).div_ceil(usable) as u64;
        leaves + 1 + leaves.div_ceil(64)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries with a cookie greater than `after`, in cookie order.
    pub fn iter_after(&self, after: u64) -> impl Iterator<Item = (u64, &MemEntry)> {
        self.entries
            .range(after.saturating_add(1)..)
            .map(|(&c, e)| (c, e))
    }

    /// Adds an entry read from disk (duplicates are logged and skipped).
    pub fn push_loaded_entry(&mut self, name: &[u8], ino: u32, file_type: FileType) {
        if self.by_name.contains_key(name) {
            log::warn!(
                "duplicate directory entry {:?} ignored",
                String::from_utf8_lossy(name)
            );
            return;
        }
        let c = self.next_cookie;
        self.next_cookie += 1;
        self.by_name.insert(name.to_vec(), c);
        self.record_bytes += rec_len_for_name(name.len());
        self.entries.insert(
            c,
            MemEntry {
                name: name.to_vec(),
                ino,
                file_type,
            },
        );
    }
}

fn dx_geometry(vol: &Volume) -> DxGeometry {
    DxGeometry {
        block_size: vol.block_size(),
        metadata_csum: vol.csum_seed.is_some(),
        largedir: vol.feat.incompat.contains(Incompat::LARGEDIR),
    }
}

/// Reads a directory's entries from its blocks.
pub fn load_dir(vol: &Volume, st: &InodeState, map: &FileMap) -> FsResult<DirState> {
    let ino = st.ino;
    let bs = vol.block_size() as u64;
    let nblocks = st.inode.size.div_ceil(bs);
    if nblocks > MAX_DIR_BLOCKS {
        return Err(FsError::corrupt(format!(
            "directory {ino}: {nblocks} blocks is too large"
        )));
    }
    let seed = st.csum_seed(vol);
    let csum = seed.is_some();
    let mut index_blocks = std::collections::HashSet::new();
    let mut dir = DirState::new(0);
    let block_of = |l: u64| -> FsResult<Option<std::borrow::Cow<'_, [u8]>>> {
        let l32 =
            u32::try_from(l).map_err(|_| FsError::corrupt(format!("directory {ino} too large")))?;
        match map.lookup(l32) {
            Some((p, false)) => Ok(Some(vol.read_block(p)?)),
            _ => Ok(None),
        }
    };
    if st.inode.has_flag(INODE_INDEX_FL) && vol.feat.compat.contains(Compat::DIR_INDEX) {
        let geom = dx_geometry(vol);
        let root_blk = block_of(0)?
            .ok_or_else(|| FsError::corrupt(format!("directory {ino}: htree root missing")))?;
        let root_blk = &*root_blk;
        let root = DxRoot::parse(root_blk, &geom)
            .map_err(|e| FsError::corrupt(format!("directory {ino}: {e}")))?;
        if let Some(s) = seed {
            verify_dx_csum(root_blk, s)
                .map_err(|e| FsError::corrupt(format!("directory {ino}: {e}")))?;
        }
        dir.parent = root.dotdot_inode;
        index_blocks.insert(0u64);
        if root.indirect_levels > 0 {
            let mut level: Vec<u32> = root.entries.iter().map(|e| e.block).collect();
            for _ in 0..root.indirect_levels {
                let mut next = Vec::new();
                for b in level {
                    let l = u64::from(b);
                    if l >= nblocks || !index_blocks.insert(l) {
                        return Err(FsError::corrupt(format!(
                            "directory {ino}: bad htree node block {b}"
                        )));
                    }
                    let blk = block_of(l)?.ok_or_else(|| {
                        FsError::corrupt(format!("directory {ino}: htree node {b} missing"))
                    })?;
                    let blk = &*blk;
                    let node = DxNode::parse(blk, &geom)
                        .map_err(|e| FsError::corrupt(format!("directory {ino}: {e}")))?;
                    if let Some(s) = seed {
                        verify_dx_csum(blk, s)
                            .map_err(|e| FsError::corrupt(format!("directory {ino}: {e}")))?;
                    }
                    next.extend(node.entries.iter().map(|e| e.block));
                }
                level = next;
            }
        }
    }
    for l in 0..nblocks {
        if index_blocks.contains(&l) {
            continue;
        }
        let Some(blk) = block_of(l)? else { continue };
        let blk = &*blk;
        let tail = csum && has_csum_tail(blk);
        if let (Some(s), true) = (seed, tail) {
            verify_dir_block_csum(blk, s)
                .map_err(|e| FsError::corrupt(format!("directory {ino} block {l}: {e}")))?;
        }
        for e in live_entries(blk, tail) {
            let e = e.map_err(|e| FsError::corrupt(format!("directory {ino} block {l}: {e}")))?;
            if e.name == b"." {
                continue;
            }
            if e.name == b".." {
                dir.parent = e.inode;
                continue;
            }
            if e.inode > vol.sb.f.inodes_count {
                return Err(FsError::corrupt(format!(
                    "directory {ino}: entry points to inode {}",
                    e.inode
                )));
            }
            dir.push_loaded_entry(e.name, e.inode, e.file_type().unwrap_or(FileType::Unknown));
        }
    }
    Ok(dir)
}

/// Lays the directory out again and writes its blocks, resizing its block
/// mapping to match.
pub fn write_back_dir(vol: &Volume, st: &mut InodeState) -> FsResult<()> {
    let Some(dir) = st.dir.as_ref() else {
        return Ok(());
    };
    if !dir.dirty {
        return Ok(());
    }
    let bs = vol.block_size();
    let seed = st.csum_seed(vol);
    let with_types = vol.feat.incompat.contains(Incompat::FILETYPE);
    let entries: Vec<NewEntry<'_>> = dir
        .entries
        .values()
        .map(|e| NewEntry {
            name: &e.name,
            inode: e.ino,
            file_type: if with_types {
                e.file_type
            } else {
                FileType::Unknown
            },
        })
        .collect();
    let mut data = build_linear_dir(st.ino, dir.parent, &entries, bs, seed)?;
    let mut indexed = false;
    if data.len() > bs && vol.feat.compat.contains(Compat::DIR_INDEX) {
        let unsigned = vol.sb.f.flags & FLAG_UNSIGNED_HASH != 0;
        let params = HtreeParams {
            block_size: bs,
            hash_version: DxHashVersion::effective(vol.sb.f.def_hash_version, unsigned)?,
            hash_seed: seed_from_bytes(&hash_seed_bytes(vol)),
            csum_seed: seed,
            largedir: vol.feat.incompat.contains(Incompat::LARGEDIR),
        };
        data = build_htree_dir(st.ino, dir.parent, &entries, &params)?;
        indexed = true;
    }
    let nblocks = (data.len() / bs) as u32;
    let goal = vol.inode_group_start(st.ino);
    let map = st
        .map
        .as_mut()
        .ok_or_else(|| FsError::corrupt("directory without a block map"))?;
    // Drop blocks past the new end, then map any missing ones.
    let end = map.end();
    if end > u64::from(nblocks) {
        let freed = map.unmap(nblocks, (end - u64::from(nblocks)) as u32);
        for (p, n) in freed {
            vol.free_blocks(p, u64::from(n))?;
        }
    }
    for l in 0..nblocks {
        let phys = match map.lookup(l) {
            Some((p, _)) => p,
            None => {
                let g = map.goal_for(l).unwrap_or(goal);
                let (p, _) = vol.alloc_blocks_wb(g, 1)?;
                map.map(l, p, 1, false);
                p
            }
        };
        let chunk = &data[l as usize * bs..(l as usize + 1) * bs];
        vol.new_block(phys, BlockKind::Meta)?.copy_from_slice(chunk);
    }
    map.mark_written(0, nblocks);
    if indexed {
        st.inode.flags |= INODE_INDEX_FL;
    } else {
        st.inode.flags &= !INODE_INDEX_FL;
    }
    st.inode.size = data.len() as u64;
    if let Some(d) = st.dir.as_mut() {
        d.dirty = false;
    }
    st.dirty = true;
    Ok(())
}

fn hash_seed_bytes(vol: &Volume) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, w) in vol.sb.f.hash_seed.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}
