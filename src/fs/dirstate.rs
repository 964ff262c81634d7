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

use std::hash::BuildHasher;

use hashbrown::HashTable;

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
/// Removed entries tolerated before the slots are compacted (and at least
/// as many as live ones, so compaction stays rare).
const COMPACT_AFTER: usize = 64;

/// One entry, as the directory hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub name: &'a [u8],
    pub ino: u32,
    pub file_type: FileType,
}

/// An entry's place: its cookie, its inode (0 once removed), and its name
/// as a range of the directory's name bytes.
#[derive(Debug, Clone, Copy)]
struct Slot {
    cookie: u64,
    ino: u32,
    file_type: FileType,
    name_at: u32,
    name_len: u8,
}

/// A loaded directory.
///
/// Entries live in `slots` in cookie order (cookies only grow, so a
/// readdir resumes with a binary search), their names packed in one
/// buffer; `by_name` finds a live slot from a name, built on the first
/// use by name (a directory that is only listed never needs it). Removing
/// an entry leaves its slot behind, marked dead, until enough have piled
/// up to compact (cookies are kept).
#[derive(Clone)]
pub struct DirState {
    pub parent: u32,
    slots: Vec<Slot>,
    names: Vec<u8>,
    /// Indices into `slots` of the live entries, hashed by name (None
    /// until first needed).
    by_name: Option<HashTable<u32>>,
    hasher: foldhash::fast::RandomState,
    live: usize,
    next_cookie: u64,
    /// Sum of the minimal record lengths of the entries (kept as they come
    /// and go, so size estimates cost nothing per operation).
    record_bytes: usize,
    pub dirty: bool,
}

impl std::fmt::Debug for DirState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirState")
            .field("parent", &self.parent)
            .field("entries", &self.live)
            .field("dirty", &self.dirty)
            .finish()
    }
}

/// The name of `slot` in a directory's name bytes.
fn slot_name<'a>(names: &'a [u8], slot: &Slot) -> &'a [u8] {
    let at = slot.name_at as usize;
    &names[at..at + usize::from(slot.name_len)]
}

impl DirState {
    pub fn new(parent: u32) -> Self {
        DirState {
            parent,
            slots: Vec::new(),
            names: Vec::new(),
            by_name: None,
            hasher: foldhash::fast::RandomState::default(),
            live: 0,
            next_cookie: FIRST_COOKIE,
            record_bytes: 0,
            dirty: false,
        }
    }

    fn entry(&self, slot: &Slot) -> Entry<'_> {
        Entry {
            name: slot_name(&self.names, slot),
            ino: slot.ino,
            file_type: slot.file_type,
        }
    }

    /// Index into `slots` of the live entry called `name`, whose hash is
    /// `hash` (the name index must exist: see [`Self::ensure_index`]).
    fn find(&self, hash: u64, name: &[u8]) -> Option<usize> {
        let index = self.by_name.as_ref()?;
        let (slots, names) = (&self.slots, &self.names);
        let same = |&i: &u32| slot_name(names, &slots[i as usize]) == name;
        index.find(hash, same).map(|&i| i as usize)
    }

    /// Adds slot `index`, whose name hashes to `hash`, to the name index
    /// (which must exist and not hold its name yet).
    fn index_slot(&mut self, index: usize, hash: u64) {
        let (slots, names, hasher) = (&self.slots, &self.names, &self.hasher);
        let hash_of = |&i: &u32| hasher.hash_one(slot_name(names, &slots[i as usize]));
        if let Some(table) = self.by_name.as_mut() {
            table.insert_unique(hash, index as u32, hash_of);
        }
    }

    /// Builds the name index if it does not exist yet.
    fn ensure_index(&mut self) {
        if self.by_name.is_none() {
            self.reindex();
        }
    }

    /// Index into `slots` of the live entry called `name`, the name index
    /// built first if need be.
    fn find_name(&mut self, name: &[u8]) -> Option<usize> {
        self.ensure_index();
        self.find(self.hasher.hash_one(name), name)
    }

    pub fn lookup(&mut self, name: &[u8]) -> Option<Entry<'_>> {
        self.find_name(name).map(|i| self.entry(&self.slots[i]))
    }

    /// The live entry with cookie `cookie`, if any.
    pub fn at_cookie(&self, cookie: u64) -> Option<Entry<'_>> {
        let i = self
            .slots
            .binary_search_by_key(&cookie, |s| s.cookie)
            .ok()?;
        let slot = &self.slots[i];
        (slot.ino != 0).then(|| self.entry(slot))
    }

    /// Adds an entry; EEXIST if the name is taken.
    pub fn insert(&mut self, name: &[u8], ino: u32, file_type: FileType) -> FsResult<()> {
        self.ensure_index();
        let hash = self.hasher.hash_one(name);
        if self.find(hash, name).is_some() {
            return Err(FsError::exist());
        }
        let index = self.append(name, ino, file_type)?;
        self.index_slot(index, hash);
        self.dirty = true;
        Ok(())
    }

    /// Appends a live entry with the next cookie, not in the name index;
    /// returns its slot.
    fn append(&mut self, name: &[u8], ino: u32, file_type: FileType) -> FsResult<usize> {
        debug_assert!(ino != 0, "inode 0 marks a removed entry");
        let name_len = u8::try_from(name.len()).map_err(|_| FsError::nametoolong())?;
        let name_at = u32::try_from(self.names.len())
            .map_err(|_| FsError::corrupt("directory names exceed 4 GiB"))?;
        if self.slots.len() >= u32::MAX as usize {
            return Err(FsError::corrupt("directory has too many entries"));
        }
        self.names.extend_from_slice(name);
        self.slots.push(Slot {
            cookie: self.next_cookie,
            ino,
            file_type,
            name_at,
            name_len,
        });
        self.next_cookie += 1;
        self.live += 1;
        self.record_bytes += rec_len_for_name(name.len());
        Ok(self.slots.len() - 1)
    }

    /// Marks slot `index` removed (the caller has taken it out of the
    /// index); returns its inode.
    fn kill(&mut self, index: usize) -> u32 {
        let slot = &mut self.slots[index];
        let ino = std::mem::replace(&mut slot.ino, 0);
        self.live -= 1;
        self.record_bytes = self
            .record_bytes
            .saturating_sub(rec_len_for_name(usize::from(slot.name_len)));
        ino
    }

    /// Removes an entry, returning its inode.
    pub fn remove(&mut self, name: &[u8]) -> Option<u32> {
        self.ensure_index();
        let hash = self.hasher.hash_one(name);
        let (slots, names) = (&self.slots, &self.names);
        let same = |&i: &u32| slot_name(names, &slots[i as usize]) == name;
        let table = self.by_name.as_mut()?;
        let (index, _) = table.find_entry(hash, same).ok()?.remove();
        let ino = self.kill(index as usize);
        self.dirty = true;
        let dead = self.slots.len() - self.live;
        if dead > COMPACT_AFTER && dead > self.live {
            self.compact();
        }
        Some(ino)
    }

    /// Drops the removed slots and their names, keeping every live entry's
    /// cookie, and indexes the rest again.
    fn compact(&mut self) {
        let old_slots = std::mem::take(&mut self.slots);
        let old_names = std::mem::take(&mut self.names);
        self.slots.reserve(self.live);
        for slot in old_slots.into_iter().filter(|s| s.ino != 0) {
            let name_at = self.names.len() as u32;
            self.names.extend_from_slice(slot_name(&old_names, &slot));
            self.slots.push(Slot { name_at, ..slot });
        }
        self.reindex();
    }

    /// Builds the name index of the live slots afresh, sized once; of a
    /// name met twice (a corrupt directory) the first entry stays and the
    /// others are logged and dropped.
    fn reindex(&mut self) {
        self.by_name = Some(HashTable::with_capacity(self.live));
        for index in 0..self.slots.len() {
            if self.slots[index].ino == 0 {
                continue;
            }
            let name = slot_name(&self.names, &self.slots[index]);
            let hash = self.hasher.hash_one(name);
            if self.find(hash, name).is_some() {
                log::warn!(
                    "duplicate directory entry {:?} ignored",
                    String::from_utf8_lossy(name)
                );
                self.kill(index);
                continue;
            }
            self.index_slot(index, hash);
        }
    }

    /// Points an existing name at another inode (rename over a name).
    pub fn replace(&mut self, name: &[u8], ino: u32, file_type: FileType) -> FsResult<()> {
        let i = self.find_name(name).ok_or_else(FsError::noent)?;
        let slot = &mut self.slots[i];
        slot.ino = ino;
        slot.file_type = file_type;
        self.dirty = true;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.live
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
        self.live == 0
    }

    /// Live entries with a cookie greater than `after`, in cookie order.
    pub fn iter_after(&self, after: u64) -> impl Iterator<Item = (u64, Entry<'_>)> {
        let from = self.slots.partition_point(|s| s.cookie <= after);
        self.slots[from..]
            .iter()
            .filter(|s| s.ino != 0)
            .map(|s| (s.cookie, self.entry(s)))
    }

    /// Makes room, before a load, for the entries `bytes` of directory
    /// records can hold at most (the smallest record is 12 bytes): one
    /// allocation of each array instead of a copy per doubling. Only the
    /// part written is ever touched, and [`Self::end_load`] gives the rest
    /// back. Capped (a corrupt size must not reserve gigabytes; past the
    /// cap the arrays grow as usual), and a refused reservation is no
    /// error.
    fn reserve_for_records(&mut self, bytes: u64) {
        const CAP: u64 = 64 << 20;
        let bytes = usize::try_from(bytes.min(CAP)).unwrap_or(0);
        let _ = self.slots.try_reserve(bytes / 12);
        let _ = self.names.try_reserve(bytes);
    }

    /// Returns what a load reserved and did not use.
    fn end_load(&mut self) {
        self.slots.shrink_to_fit();
        self.names.shrink_to_fit();
    }

    /// Adds an entry read from disk (a name that is there already is
    /// dropped when the name index is built).
    pub fn push_loaded_entry(&mut self, name: &[u8], ino: u32, file_type: FileType) {
        if let Err(e) = self.append(name, ino, file_type) {
            log::warn!(
                "directory entry {:?} ignored: {}",
                String::from_utf8_lossy(name),
                e.detail
            );
        }
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
    // A few large reads instead of a fault per block.
    vol.prefetch_block_runs(
        map.physical_runs(0, u32::try_from(nblocks).unwrap_or(u32::MAX))
            .map(|(p, n)| (p, u64::from(n))),
    );
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
    dir.reserve_for_records(nblocks * bs);
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
    dir.end_load();
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
        .iter_after(0)
        .map(|(_, e)| NewEntry {
            name: e.name,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names_after(d: &DirState, after: u64) -> Vec<(u64, String)> {
        d.iter_after(after)
            .map(|(c, e)| (c, String::from_utf8_lossy(e.name).into_owned()))
            .collect()
    }

    #[test]
    fn entries_keep_their_cookies_through_removals_and_compaction() {
        let mut d = DirState::new(2);
        for i in 0..1000u32 {
            d.insert(format!("f{i}").as_bytes(), 100 + i, FileType::Regular)
                .unwrap();
        }
        assert_eq!(d.len(), 1000);
        assert!(d.insert(b"f7", 5, FileType::Regular).is_err(), "EEXIST");
        // Remove all but every tenth: compaction runs along the way.
        for i in (0..1000u32).filter(|i| i % 10 != 0) {
            assert_eq!(d.remove(format!("f{i}").as_bytes()), Some(100 + i));
        }
        assert_eq!(d.remove(b"f1"), None);
        assert_eq!(d.len(), 100);
        assert!(d.slots.len() < 200, "removed slots were compacted away");
        let left = names_after(&d, 0);
        let want: Vec<(u64, String)> = (0..1000u64)
            .step_by(10)
            .map(|i| (FIRST_COOKIE + i, format!("f{i}")))
            .collect();
        assert_eq!(left, want);
        // Resuming mid-way sees exactly the later entries.
        assert_eq!(names_after(&d, FIRST_COOKIE + 505), want[51..].to_vec());
        // New names get new cookies; old ones are still found by name.
        d.insert(b"new", 9, FileType::Directory).unwrap();
        assert_eq!(
            names_after(&d, FIRST_COOKIE + 995),
            vec![(FIRST_COOKIE + 1000, "new".to_string())]
        );
        let e = d.lookup(b"f990").unwrap();
        assert_eq!((e.ino, e.file_type), (1090, FileType::Regular));
        d.replace(b"f990", 7, FileType::Symlink).unwrap();
        assert_eq!(d.lookup(b"f990").unwrap().ino, 7);
        assert!(d.lookup(b"f991").is_none());
    }

    #[test]
    fn a_loaded_directory_keeps_the_first_of_duplicate_names() {
        let mut d = DirState::new(2);
        d.push_loaded_entry(b"a", 11, FileType::Regular);
        d.push_loaded_entry(b"b", 12, FileType::Regular);
        d.push_loaded_entry(b"a", 13, FileType::Directory);
        assert_eq!(d.at_cookie(FIRST_COOKIE + 2).unwrap().ino, 13);
        assert_eq!(d.lookup(b"a").unwrap().ino, 11);
        assert_eq!(d.len(), 2);
        assert!(
            d.at_cookie(FIRST_COOKIE + 2).is_none(),
            "dropped when indexed"
        );
        let names: Vec<_> = d.iter_after(0).map(|(_, e)| e.ino).collect();
        assert_eq!(names, vec![11, 12]);
        // The record-length sum counts live entries only.
        assert_eq!(d.record_bytes, 2 * rec_len_for_name(1));
        assert!(d.remove(b"a").is_some());
        assert_eq!(d.record_bytes, rec_len_for_name(1));
    }
}
