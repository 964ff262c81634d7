//! Directories: listing ([`ImageView::read_dir`]) and name lookup
//! ([`ImageView::lookup`]) for the three directory forms.
//!
//! - Linear: every block of the directory up to `i_size` is a leaf (record
//!   chain, with the checksum tail under metadata_csum).
//! - Indexed (`EXT4_INDEX_FL` with the dir_index feature): block 0 is the
//!   dx_root, whose fake "." and ".." records give the first two entries;
//!   the dx_node blocks found by walking the index (at most
//!   `indirect_levels` levels below the root) are skipped; every other
//!   block is a leaf. Root and node checksums (dx_tail) are verified under
//!   metadata_csum. An index that cannot be parsed is reported and the
//!   directory read linearly, as the kernel does.
//! - Inline (`INLINE_DATA_FL`): `i_block[0..4]` is the parent inode, the
//!   rest of `i_block` and the `system.data` value are record chains
//!   without checksum tail. "." and ".." are synthesized.
//!
//! Listing yields "." and ".." first (as stored) and then every live
//! record in on-disk order. Lookups in indexed directories follow the hash
//! (with the superblock's seed and signedness flag) and the continuation
//! bit; a broken index falls back to a linear scan.

use std::collections::{HashMap, HashSet};

use super::super::dir::{has_csum_tail, records, verify_dir_block_csum, FileType};
use super::super::dx_hash::{dx_hash, DxHashVersion};
use super::super::error::{FormatError, Result};
use super::super::features::{Compat, Incompat};
use super::super::htree::{
    dx_continues, dx_find_child, verify_dx_csum, DxEntry, DxGeometry, DxNode, DxRoot,
    INODE_INDEX_FL,
};
use super::super::inode::Inode;
use super::super::superblock::FLAG_UNSIGNED_HASH;
use super::map::{FileMap, Layout};
use super::ImageView;

/// The largest directory read, in blocks.
pub const MAX_DIR_BLOCKS: u64 = 1 << 22;

/// One live directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DirRecord {
    pub name: Vec<u8>,
    pub ino: u32,
    /// The entry's file type (`Unknown` for code 0 and for codes above 7,
    /// see `file_type_raw`).
    pub file_type: FileType,
    /// The stored `file_type` byte.
    pub file_type_raw: u8,
}

impl DirRecord {
    fn new(name: &[u8], ino: u32, raw: u8) -> Self {
        DirRecord {
            name: name.to_vec(),
            ino,
            file_type: FileType::from_raw(raw).unwrap_or(FileType::Unknown),
            file_type_raw: raw,
        }
    }
}

/// Problems found while reading a directory; the lenient reader collects
/// them and goes on.
pub(crate) type Problems = Vec<FormatError>;

/// What walking an htree index found.
struct DxIndex {
    root: DxRoot,
    /// Logical numbers of the dx_node blocks.
    nodes: Vec<u32>,
    /// Leaf logical block -> inclusive range of name hashes it may hold.
    leaves: HashMap<u32, (u32, u32)>,
    version: DxHashVersion,
    problems: Problems,
}

impl ImageView<'_> {
    /// Every live entry of directory `ino`, "." and ".." first. Fails on the
    /// first problem (bad record, bad checksum, hole, broken index).
    pub fn read_dir(&self, ino: u32) -> Result<Vec<DirRecord>> {
        let inode = self.inode(ino)?;
        let mut problems = Problems::new();
        let out = self.scan_dir(ino, &inode, &mut problems)?;
        match problems.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// The lenient reader: fatal errors (not a directory, unreadable
    /// mapping) are returned, the others pushed to `problems` while the
    /// rest of the directory is still read.
    pub(crate) fn scan_dir(
        &self,
        ino: u32,
        inode: &Inode,
        problems: &mut Problems,
    ) -> Result<Vec<DirRecord>> {
        if !inode.is_dir() {
            return Err(FormatError::corrupt(
                "directory",
                format!("inode {ino} is not a directory"),
            ));
        }
        if self.layout(inode)? == Layout::Inline {
            return self.scan_inline_dir(ino, inode, problems);
        }
        let map = self.file_map(ino, inode)?;
        let nblocks = self.dir_blocks(inode)?;
        let mut out = Vec::new();
        let mut skip = HashSet::new();
        let mut index = None;
        if self.is_indexed(inode) {
            match self.dx_index_blocks(ino, inode, &map, nblocks) {
                Ok(mut dx) => {
                    problems.append(&mut dx.problems);
                    let dir = FileType::Directory.to_raw();
                    out.push(DirRecord::new(b".", dx.root.dot_inode, dir));
                    out.push(DirRecord::new(b"..", dx.root.dotdot_inode, dir));
                    skip.insert(0u32);
                    skip.extend(dx.nodes.iter().copied());
                    index = Some(dx);
                }
                Err(e) => problems.push(e),
            }
        }
        let seed = self.csum_seed_for(ino, inode);
        let mut next = 0u64;
        for run in &map.runs {
            if u64::from(run.logical) >= nblocks {
                break;
            }
            if u64::from(run.logical) > next {
                problems.push(hole(ino, next, u64::from(run.logical)));
            }
            let end = run.logical_end().min(nblocks);
            for l in u64::from(run.logical)..end {
                next = l + 1;
                let lblk = u32::try_from(l).unwrap_or(u32::MAX);
                if skip.contains(&lblk) {
                    continue;
                }
                if run.unwritten {
                    problems.push(FormatError::corrupt(
                        "directory",
                        format!("inode {ino}: logical block {l} is unwritten"),
                    ));
                    continue;
                }
                let phys = run.phys + (l - u64::from(run.logical));
                let block = self.block(phys)?;
                let first = out.len();
                self.scan_leaf(ino, l, block, seed, &mut out, problems);
                if let Some(dx) = &index {
                    self.check_leaf_hashes(ino, lblk, dx, &out[first..], problems);
                }
            }
        }
        if next < nblocks {
            problems.push(hole(ino, next, nblocks));
        }
        Ok(out)
    }

    /// Directory size in blocks, checked against the cap.
    fn dir_blocks(&self, inode: &Inode) -> Result<u64> {
        let n = inode.size.div_ceil(self.bs64());
        if n > MAX_DIR_BLOCKS {
            return Err(FormatError::unsupported(
                "directory",
                format!("{} bytes (limit {MAX_DIR_BLOCKS} blocks)", inode.size),
            ));
        }
        Ok(n)
    }

    pub(crate) fn is_indexed(&self, inode: &Inode) -> bool {
        inode.has_flag(INODE_INDEX_FL) && self.has_compat(Compat::DIR_INDEX)
    }

    fn dx_geometry(&self) -> DxGeometry {
        DxGeometry {
            block_size: self.block_size,
            metadata_csum: self.metadata_csum,
            largedir: self.has_incompat(Incompat::LARGEDIR),
        }
    }

    /// In an indexed directory, checks that leaf `lblk` is referenced by the
    /// index and that its names hash into the range the index gives it.
    fn check_leaf_hashes(
        &self,
        ino: u32,
        lblk: u32,
        dx: &DxIndex,
        records: &[DirRecord],
        problems: &mut Problems,
    ) {
        let Some(&(lo, hi)) = dx.leaves.get(&lblk) else {
            problems.push(in_block(
                ino,
                u64::from(lblk),
                FormatError::corrupt("htree", "leaf not referenced by the index"),
            ));
            return;
        };
        for r in records {
            let h = dx_hash(dx.version, &r.name, &self.sb.f.hash_seed).0;
            if h < lo || h > hi {
                problems.push(in_block(
                    ino,
                    u64::from(lblk),
                    FormatError::corrupt(
                        "htree",
                        format!(
                            "name {:?} hashes to {h:#x}, outside the leaf's range {lo:#x}..={hi:#x}",
                            String::from_utf8_lossy(&r.name)
                        ),
                    ),
                ));
                return;
            }
        }
    }

    /// Reads one leaf block's live records into `out`.
    fn scan_leaf(
        &self,
        ino: u32,
        lblk: u64,
        block: &[u8],
        seed: Option<u32>,
        out: &mut Vec<DirRecord>,
        problems: &mut Problems,
    ) {
        let mut tail = false;
        if let Some(seed) = seed {
            if let Err(e) = verify_dir_block_csum(block, seed) {
                problems.push(in_block(ino, lblk, e));
            }
            tail = has_csum_tail(block);
        }
        for r in records(block, tail) {
            match r {
                Ok(e) if e.is_live() => out.push(DirRecord::new(e.name, e.inode, e.file_type_raw)),
                Ok(_) => {}
                Err(e) => {
                    problems.push(in_block(ino, lblk, e));
                    break;
                }
            }
        }
    }

    fn scan_inline_dir(
        &self,
        ino: u32,
        inode: &Inode,
        problems: &mut Problems,
    ) -> Result<Vec<DirRecord>> {
        let data = self.inline_data(ino, inode)?.unwrap_or_default();
        let parent = data
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0);
        let dir = FileType::Directory.to_raw();
        let mut out = vec![
            DirRecord::new(b".", ino, dir),
            DirRecord::new(b"..", parent, dir),
        ];
        let split = super::super::inode::I_BLOCK_LEN.min(data.len());
        for area in [&data[4.min(split)..split], &data[split..]] {
            if area.is_empty() {
                continue;
            }
            for r in records(area, false) {
                match r {
                    Ok(e) if e.is_live() => {
                        out.push(DirRecord::new(e.name, e.inode, e.file_type_raw))
                    }
                    Ok(_) => {}
                    Err(e) => {
                        problems.push(FormatError::corrupt(
                            "inline directory",
                            format!("inode {ino}: {e}"),
                        ));
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Parses the dx_root and walks the index, returning the root, the
    /// logical numbers of the dx_node blocks and non-fatal problems (bad
    /// node checksums, unreadable nodes).
    fn dx_index_blocks(
        &self,
        ino: u32,
        inode: &Inode,
        map: &FileMap,
        nblocks: u64,
    ) -> Result<DxIndex> {
        let geom = self.dx_geometry();
        let seed = self.csum_seed_for(ino, inode);
        let mut problems = Problems::new();
        let root_block = self.dir_block(ino, map, 0, nblocks)?;
        let root = DxRoot::parse(root_block, &geom).map_err(|e| in_block(ino, 0, e))?;
        if let Some(seed) = seed {
            if let Err(e) = verify_dx_csum(root_block, seed) {
                problems.push(in_block(ino, 0, e));
            }
        }
        let mut nodes = Vec::new();
        let mut leaves = HashMap::new();
        let mut seen = HashSet::from([0u32]);
        // (entries, levels still below them, hash bounds of the node)
        let mut stack: Vec<(Vec<DxEntry>, u8, u32, u32)> =
            vec![(root.entries.clone(), root.indirect_levels, 0, u32::MAX)];
        while let Some((entries, levels, lo, hi)) = stack.pop() {
            for (i, e) in entries.iter().enumerate() {
                let e_lo = if i == 0 { lo } else { e.hash & !1 };
                let e_hi = match entries.get(i + 1) {
                    // A name hashing to the next entry's hash belongs to the
                    // next block, unless that block continues this one.
                    Some(next) if next.hash & 1 == 0 => next.hash.saturating_sub(1),
                    Some(next) => next.hash & !1,
                    None => hi,
                };
                if !seen.insert(e.block) {
                    problems.push(in_block(
                        ino,
                        u64::from(e.block),
                        FormatError::corrupt("htree", "block referenced twice by the index"),
                    ));
                    continue;
                }
                if levels == 0 {
                    leaves.insert(e.block, (e_lo, e_hi));
                    continue;
                }
                nodes.push(e.block);
                let block = match self.dir_block(ino, map, e.block, nblocks) {
                    Ok(b) => b,
                    Err(err) => {
                        problems.push(err);
                        continue;
                    }
                };
                match DxNode::parse(block, &geom) {
                    Ok(node) => {
                        if let Some(seed) = seed {
                            if let Err(err) = verify_dx_csum(block, seed) {
                                problems.push(in_block(ino, u64::from(e.block), err));
                            }
                        }
                        stack.push((node.entries, levels - 1, e_lo, e_hi));
                    }
                    Err(err) => problems.push(in_block(ino, u64::from(e.block), err)),
                }
            }
        }
        let mut beyond: Vec<u32> = leaves
            .keys()
            .copied()
            .filter(|&l| u64::from(l) >= nblocks)
            .collect();
        beyond.sort_unstable();
        if let Some(&l) = beyond.first() {
            problems.push(in_block(
                ino,
                u64::from(l),
                FormatError::corrupt(
                    "htree",
                    format!("leaf beyond i_size ({nblocks} blocks) referenced by the index"),
                ),
            ));
        }
        let unsigned = self.sb.f.flags & FLAG_UNSIGNED_HASH != 0;
        let version = DxHashVersion::effective(root.hash_version, unsigned)
            .map_err(|e| in_block(ino, 0, e))?;
        Ok(DxIndex {
            root,
            nodes,
            leaves,
            version,
            problems,
        })
    }

    /// Logical block `lblk` of a directory, which must be mapped, written
    /// and below `nblocks`.
    fn dir_block(&self, ino: u32, map: &FileMap, lblk: u32, nblocks: u64) -> Result<&[u8]> {
        if u64::from(lblk) >= nblocks {
            return Err(in_block(
                ino,
                u64::from(lblk),
                FormatError::corrupt("directory", format!("beyond i_size ({nblocks} blocks)")),
            ));
        }
        let run = map.find(lblk).filter(|r| !r.unwritten).ok_or_else(|| {
            in_block(
                ino,
                u64::from(lblk),
                FormatError::corrupt("directory", "not mapped"),
            )
        })?;
        self.block(run.phys + u64::from(lblk - run.logical))
    }

    /// The entry `name` of directory `dir_ino`, if any. Indexed directories
    /// are searched through their index (a broken index falls back to a
    /// linear scan); block checksums are verified along the way.
    pub fn lookup(&self, dir_ino: u32, name: &[u8]) -> Result<Option<DirRecord>> {
        let inode = self.inode(dir_ino)?;
        if inode.is_dir() && self.is_indexed(&inode) && self.layout(&inode)? != Layout::Inline {
            if let Ok(found) = self.dx_lookup(dir_ino, &inode, name) {
                return Ok(found);
            }
        }
        Ok(self.read_dir(dir_ino)?.into_iter().find(|r| r.name == name))
    }

    /// Follows a path of names from the root directory (no symlinks
    /// followed; empty components and "." are skipped).
    pub fn lookup_path(&self, path: &[u8]) -> Result<Option<u32>> {
        let mut ino = super::super::ids::special::ROOT.0;
        for comp in path.split(|&b| b == b'/') {
            if comp.is_empty() || comp == b"." {
                continue;
            }
            match self.lookup(ino, comp)? {
                Some(r) => ino = r.ino,
                None => return Ok(None),
            }
        }
        Ok(Some(ino))
    }

    fn dx_lookup(&self, ino: u32, inode: &Inode, name: &[u8]) -> Result<Option<DirRecord>> {
        let geom = self.dx_geometry();
        let seed = self.csum_seed_for(ino, inode);
        let map = self.file_map(ino, inode)?;
        let nblocks = self.dir_blocks(inode)?;
        let root_block = self.dir_block(ino, &map, 0, nblocks)?;
        let root = DxRoot::parse(root_block, &geom)?;
        if let Some(seed) = seed {
            verify_dx_csum(root_block, seed)?;
        }
        let dir = FileType::Directory.to_raw();
        if name == b"." {
            return Ok(Some(DirRecord::new(name, root.dot_inode, dir)));
        }
        if name == b".." {
            return Ok(Some(DirRecord::new(name, root.dotdot_inode, dir)));
        }
        let unsigned = self.sb.f.flags & FLAG_UNSIGNED_HASH != 0;
        let version = DxHashVersion::effective(root.hash_version, unsigned)?;
        let hash = dx_hash(version, name, &self.sb.f.hash_seed).0;

        let read_node = |lblk: u32| -> Result<Vec<DxEntry>> {
            let block = self.dir_block(ino, &map, lblk, nblocks)?;
            let node = DxNode::parse(block, &geom)?;
            if let Some(seed) = seed {
                verify_dx_csum(block, seed)?;
            }
            Ok(node.entries)
        };
        // The path from the root: (entries, chosen index) per level.
        let mut path: Vec<(Vec<DxEntry>, usize)> = Vec::new();
        let mut entries = root.entries;
        for _ in 0..root.indirect_levels {
            let i = dx_find_child(&entries, hash);
            let child = entries[i].block;
            path.push((entries, i));
            entries = read_node(child)?;
        }
        let i = dx_find_child(&entries, hash);
        path.push((entries, i));
        // Bounded: each step moves one leaf to the right.
        for _ in 0..nblocks {
            let Some((entries, i)) = path.last() else {
                break;
            };
            let leaf = entries[*i].block;
            let block = self.dir_block(ino, &map, leaf, nblocks)?;
            if let Some(seed) = seed {
                verify_dir_block_csum(block, seed)?;
            }
            for r in records(block, seed.is_some()) {
                let e = r?;
                if e.is_live() && e.name == name {
                    return Ok(Some(DirRecord::new(e.name, e.inode, e.file_type_raw)));
                }
            }
            if !self.dx_next_leaf(&mut path, hash, &read_node)? {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Moves `path` to the next leaf if the hash run may continue there
    /// (the kernel's `ext4_htree_next_block`); false when the search is over.
    fn dx_next_leaf(
        &self,
        path: &mut Vec<(Vec<DxEntry>, usize)>,
        hash: u32,
        read_node: &dyn Fn(u32) -> Result<Vec<DxEntry>>,
    ) -> Result<bool> {
        let depth = path.len();
        // Find the deepest level that has a next entry.
        let mut level = depth;
        while level > 0 {
            let (entries, i) = &path[level - 1];
            if i + 1 < entries.len() {
                break;
            }
            level -= 1;
        }
        if level == 0 {
            return Ok(false);
        }
        let (entries, i) = &mut path[level - 1];
        *i += 1;
        if !dx_continues(entries[*i].hash, hash) {
            return Ok(false);
        }
        let mut child = entries[*i].block;
        path.truncate(level);
        while path.len() < depth {
            let entries = read_node(child)?;
            child = entries[0].block;
            path.push((entries, 0));
        }
        Ok(true)
    }
}

fn hole(ino: u32, from: u64, to: u64) -> FormatError {
    FormatError::corrupt(
        "directory",
        format!("inode {ino}: hole at logical blocks {from}..{to}"),
    )
}

fn in_block(ino: u32, lblk: u64, e: FormatError) -> FormatError {
    match e {
        FormatError::Corrupt { what, detail } => FormatError::Corrupt {
            what,
            detail: format!("directory inode {ino}, logical block {lblk}: {detail}"),
        },
        other => other,
    }
}
