//! Directory operations the repairs need after pass 2 has made directory
//! blocks sane: find a name, add an entry (`ext2fs_link`), remove one,
//! grow a directory by a block (`ext2fs_expand_dir`), rewrite `..`, and map
//! a new block into a file (`ext2fs_bmap` with `BMAP_SET`).
//!
//! Record parsing here is lenient and bounded: it stops at the first
//! record that does not fit. Checksums (leaf tails) are kept valid on every
//! block written.

use crate::format::bytes::{get_u16, get_u32};
use crate::format::dir::{
    rec_len_for_name, rec_len_from_disk, rec_len_to_disk, set_dir_block_csum, FT_DIR_CSUM,
};
use crate::format::dx_hash::{dx_hash, DxHashVersion};
use crate::format::extent::set_extent_block_csum;
use crate::format::features::Incompat;

use super::check::Checker;
use super::ino::{fl, InodeRead, InodeWrite};
use super::map::mapping;
use super::pass1_blocks::extent_header_ok;
use super::problem::escape_name;

/// One directory record.
#[derive(Debug, Clone, Copy)]
pub struct Dent {
    pub off: usize,
    pub inode: u32,
    pub rec_len: usize,
    pub name_len: usize,
    pub ftype: u8,
}

/// The records of `block[..end]`, stopping at the first bad one.
pub fn parse_dents(block: &[u8], end: usize, bs_for_reclen: usize) -> Vec<Dent> {
    let mut v = Vec::new();
    let mut off = 0usize;
    let end = end.min(block.len());
    while off + 8 <= end {
        let inode = get_u32(block, off).unwrap_or(0);
        let rec_len = rec_len_from_disk(get_u16(block, off + 4).unwrap_or(0), bs_for_reclen);
        let name_len = usize::from(block[off + 6]);
        let ftype = block[off + 7];
        if rec_len < 12 || rec_len % 4 != 0 || off + rec_len > end || name_len + 8 > rec_len {
            break;
        }
        v.push(Dent {
            off,
            inode,
            rec_len,
            name_len,
            ftype,
        });
        off += rec_len;
    }
    v
}

/// Whether a leaf block ends in a valid checksum tail (the record chain
/// reaches `bs - 12` exactly and the tail record is well-formed).
pub fn tail_status(block: &[u8]) -> TailStatus {
    let bs = block.len();
    if bs < 24 {
        return TailStatus::NoSpace;
    }
    let top = bs - 12;
    let mut off = 0usize;
    let mut steps = 0;
    while off < top && steps < bs {
        steps += 1;
        let rl = rec_len_from_disk(get_u16(block, off + 4).unwrap_or(0), bs);
        if rl < 8 || rl % 4 != 0 {
            return TailStatus::Corrupted;
        }
        off += rl;
    }
    if off > bs {
        return TailStatus::Corrupted;
    }
    if off != top {
        return TailStatus::NoSpace;
    }
    if get_u32(block, top) != Some(0)
        || get_u16(block, top + 4) != Some(12)
        || block[top + 6] != 0
        || block[top + 7] != FT_DIR_CSUM
    {
        return TailStatus::NoSpace;
    }
    TailStatus::Ok
}

/// See [`tail_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailStatus {
    Ok,
    Corrupted,
    NoSpace,
}

/// Writes an empty checksum tail at the end of `block`.
pub fn init_tail(block: &mut [u8]) {
    let bs = block.len();
    let t = bs - 12;
    block[t..bs].fill(0);
    block[t + 4..t + 6].copy_from_slice(&12u16.to_le_bytes());
    block[t + 7] = FT_DIR_CSUM;
}

/// A new directory block: `.` and `..` when `dot` is given, else one
/// empty record; with a checksum tail when `csum`.
pub fn new_dir_block(bs: usize, csum: bool, dot: Option<(u32, u32)>, filetype: bool) -> Vec<u8> {
    let mut b = vec![0u8; bs];
    let end = if csum { bs - 12 } else { bs };
    let ft = if filetype { 2u8 } else { 0 };
    match dot {
        Some((me, parent)) => {
            b[0..4].copy_from_slice(&me.to_le_bytes());
            b[4..6].copy_from_slice(&12u16.to_le_bytes());
            b[6] = 1;
            b[7] = ft;
            b[8] = b'.';
            b[12..16].copy_from_slice(&parent.to_le_bytes());
            b[16..18].copy_from_slice(&rec_len_to_disk(end - 12, bs).to_le_bytes());
            b[18] = 2;
            b[19] = ft;
            b[20] = b'.';
            b[21] = b'.';
        }
        None => {
            b[4..6].copy_from_slice(&rec_len_to_disk(end, bs).to_le_bytes());
        }
    }
    if csum {
        init_tail(&mut b);
    }
    b
}

/// The file type code for a mode.
pub fn ftype_of_mode(mode: u16) -> u8 {
    crate::format::dir::FileType::from_mode(mode).to_raw()
}

impl Checker {
    /// The logical→physical blocks of directory `dir` (bounded).
    pub fn dir_blocks(&self, dir: u32) -> Vec<(u64, u64)> {
        let raw = self.fs.read_inode(dir);
        let m = mapping(&self.fs, &raw);
        let mut v = Vec::new();
        for r in &m.runs {
            for k in 0..r.len {
                v.push((r.lblk + k, r.pblk + k));
                if v.len() >= 1 << 20 {
                    return v;
                }
            }
        }
        v
    }

    fn dir_csum(&self) -> bool {
        self.fs.has_metadata_csum()
    }

    /// Visits the live records of directory `dir` (inline or block) until
    /// `f` returns true. Returns whether `f` stopped the walk.
    fn walk_dir(&self, dir: u32, f: &mut dyn FnMut(&[u8], &Dent) -> bool) -> bool {
        let raw = self.fs.read_inode(dir);
        if raw.has_flag(fl::INLINE_DATA) {
            let ib = raw.i_block().to_vec();
            let dots = Dent {
                off: 0,
                inode: get_u32(&ib, 0).unwrap_or(0),
                rec_len: 4,
                name_len: 2,
                ftype: 2,
            };
            let name_buf = [0u8; 8];
            let mut fake = name_buf.to_vec();
            fake[..2].copy_from_slice(b"..");
            // ".." in an inline directory: report it with the name "..".
            let _ = (&dots, &fake);
            for d in parse_dents(&ib[4..], 56, 56) {
                if d.inode != 0 && f(&ib[4..], &d) {
                    return true;
                }
            }
            if let Some(ea) = super::xattr_check::inline_data_ea(&raw, self.fs.inode_size) {
                let ea = ea.to_vec();
                let n = ea.len();
                for d in parse_dents(&ea, n, n) {
                    if d.inode != 0 && f(&ea, &d) {
                        return true;
                    }
                }
            }
            return false;
        }
        for (_, pblk) in self.dir_blocks(dir).into_iter().take(1024) {
            let Some(b) = self.fs.block(pblk) else {
                continue;
            };
            let end = if self.dir_csum() && tail_status(b) == TailStatus::Ok {
                b.len() - 12
            } else {
                b.len()
            };
            for d in parse_dents(b, end, b.len()) {
                if d.inode != 0 && f(b, &d) {
                    return true;
                }
            }
        }
        false
    }

    /// The (escaped) name of `ino` in `dir`.
    pub fn name_of(&self, dir: u32, ino: u32) -> Option<String> {
        let mut found = None;
        self.walk_dir(dir, &mut |b, d| {
            if d.inode == ino {
                let name = &b[d.off + 8..d.off + 8 + d.name_len];
                if name != b"." && name != b".." {
                    found = Some(escape_name(name));
                    return true;
                }
            }
            false
        });
        found
    }

    /// The inode named `name` in `dir`.
    pub fn lookup(&self, dir: u32, name: &[u8]) -> Option<u32> {
        if name == b".." {
            let raw = self.fs.read_inode(dir);
            if raw.has_flag(fl::INLINE_DATA) {
                return Some(raw.block_word(0)).filter(|&p| p != 0);
            }
        }
        let mut found = None;
        self.walk_dir(dir, &mut |b, d| {
            if &b[d.off + 8..d.off + 8 + d.name_len] == name {
                found = Some(d.inode);
                return true;
            }
            false
        });
        found
    }

    /// Writes a directory block of `dir` with its checksum. Never over
    /// fixed metadata (a directory claiming such a block is repaired by
    /// pass 1D first).
    pub fn write_dir_block(&mut self, dir: u32, blk: u64, mut data: Vec<u8>) {
        if self.block_meta.get(blk) {
            return;
        }
        if self.dir_csum() && tail_status(&data) == TailStatus::Ok {
            let gen = self.fs.read_inode(dir).generation();
            let seed = self.fs.inode_seed(dir, gen);
            let _ = set_dir_block_csum(&mut data, seed);
        }
        self.write_block(blk, &data);
    }

    /// The leaf block of an indexed directory that should hold `name`.
    fn dx_leaf_for(&self, dir: u32, name: &[u8]) -> Option<u64> {
        let blocks = self.dir_blocks(dir);
        let phys = |l: u64| blocks.iter().find(|&&(x, _)| x == l).map(|&(_, p)| p);
        let root = self.fs.block(phys(0)?)?;
        let hv = root[28];
        let levels = root[30];
        let info_len = usize::from(root[29]);
        let unsigned = self.fs.sb.f.flags & 2 != 0;
        let version = DxHashVersion::effective(hv, unsigned).ok()?;
        let (hash, _) = dx_hash(version, name, &self.fs.sb.f.hash_seed);
        let mut node = root.to_vec();
        let mut off = 24 + info_len;
        for level in 0..=levels {
            let count = usize::from(get_u16(&node, off + 2)?);
            if count == 0 {
                return None;
            }
            let mut child = get_u32(&node, off + 4)?;
            for i in 1..count {
                let h = get_u32(&node, off + 8 * i)?;
                if h > hash {
                    break;
                }
                child = get_u32(&node, off + 8 * i + 4)?;
            }
            let pb = phys(u64::from(child & 0x0fff_ffff))?;
            if level == levels {
                return Some(pb);
            }
            node = self.fs.block(pb)?.to_vec();
            off = 8;
        }
        None
    }

    /// Adds `name` → `ino` to directory `dir` (`ext2fs_link`). Fails with
    /// `Err(true)` when there is no room (expand and retry), `Err(false)`
    /// when the directory cannot take it.
    pub fn link(&mut self, dir: u32, name: &[u8], ino: u32, ftype: u8) -> Result<(), bool> {
        let raw = self.fs.read_inode(dir);
        if raw.has_flag(fl::INLINE_DATA) || name.is_empty() || name.len() > 255 {
            return Err(false);
        }
        let filetype = self.fs.has_incompat(Incompat::FILETYPE);
        let candidates: Vec<u64> = if raw.has_flag(fl::INDEX)
            && self
                .fs
                .has_compat(crate::format::features::Compat::DIR_INDEX)
        {
            match self.dx_leaf_for(dir, name) {
                Some(b) => vec![b],
                None => return Err(false),
            }
        } else {
            self.dir_blocks(dir).into_iter().map(|(_, p)| p).collect()
        };
        let need = rec_len_for_name(name.len());
        for pblk in candidates {
            let Some(b) = self.fs.block(pblk) else {
                continue;
            };
            let mut buf = b.to_vec();
            let bs = buf.len();
            let csum = self.dir_csum() && tail_status(&buf) == TailStatus::Ok;
            let end = if csum { bs - 12 } else { bs };
            let dents = parse_dents(&buf, end, bs);
            // The chain must cover the data area for the block to be usable.
            let covered = dents.last().is_some_and(|d| d.off + d.rec_len == end);
            if !covered {
                continue;
            }
            for d in dents {
                let (pos, len) = if d.inode == 0 {
                    if d.rec_len < need {
                        continue;
                    }
                    (d.off, d.rec_len)
                } else {
                    let used = rec_len_for_name(d.name_len);
                    if d.rec_len < used + need {
                        continue;
                    }
                    buf[d.off + 4..d.off + 6]
                        .copy_from_slice(&rec_len_to_disk(used, bs).to_le_bytes());
                    (d.off + used, d.rec_len - used)
                };
                buf[pos..pos + 4].copy_from_slice(&ino.to_le_bytes());
                buf[pos + 4..pos + 6].copy_from_slice(&rec_len_to_disk(len, bs).to_le_bytes());
                buf[pos + 6] = name.len() as u8;
                buf[pos + 7] = if filetype { ftype } else { 0 };
                buf[pos + 8..pos + 8 + name.len()].copy_from_slice(name);
                self.write_dir_block(dir, pblk, buf);
                return Ok(());
            }
        }
        Err(true)
    }

    /// Removes the entry `name` (pointing to `ino`, if nonzero) from `dir`.
    pub fn unlink(&mut self, dir: u32, name: &[u8], ino: u32) -> bool {
        for (_, pblk) in self.dir_blocks(dir) {
            let Some(b) = self.fs.block(pblk) else {
                continue;
            };
            let mut buf = b.to_vec();
            let bs = buf.len();
            let csum = self.dir_csum() && tail_status(&buf) == TailStatus::Ok;
            let end = if csum { bs - 12 } else { bs };
            let dents = parse_dents(&buf, end, bs);
            for (k, d) in dents.iter().enumerate() {
                if d.inode == 0 || &buf[d.off + 8..d.off + 8 + d.name_len] != name {
                    continue;
                }
                if ino != 0 && d.inode != ino {
                    continue;
                }
                if k > 0 {
                    let p = dents[k - 1];
                    let nl = p.rec_len + d.rec_len;
                    buf[p.off + 4..p.off + 6]
                        .copy_from_slice(&rec_len_to_disk(nl, bs).to_le_bytes());
                } else {
                    buf[d.off..d.off + 4].fill(0);
                }
                self.write_dir_block(dir, pblk, buf);
                return true;
            }
        }
        false
    }

    /// Points `..` of directory `dir` at `parent` (e2fsck's `fix_dotdot`),
    /// adjusting the reference counts.
    pub fn fix_dotdot(&mut self, dir: u32, parent: u32) -> bool {
        let raw = self.fs.read_inode(dir);
        let old = self.dirs.get(&dir).map(|d| d.dotdot).unwrap_or(0);
        if raw.has_flag(fl::INLINE_DATA) {
            let mut r = raw.clone();
            r[0x28..0x2c].copy_from_slice(&parent.to_le_bytes());
            self.write_inode(dir, &r);
        } else {
            let Some(&(_, pblk)) = self.dir_blocks(dir).iter().find(|&&(l, _)| l == 0) else {
                return false;
            };
            let Some(b) = self.fs.block(pblk) else {
                return false;
            };
            let mut buf = b.to_vec();
            let bs = buf.len();
            let dents = parse_dents(&buf, bs, bs);
            if dents.len() < 2 {
                return false;
            }
            let d = dents[1];
            buf[d.off..d.off + 4].copy_from_slice(&parent.to_le_bytes());
            if d.name_len != 2 {
                buf[d.off + 6] = 2;
                buf[d.off + 8] = b'.';
                buf[d.off + 9] = b'.';
            }
            self.write_dir_block(dir, pblk, buf);
        }
        if old != 0 {
            self.adjust_count(old, -1);
        }
        self.adjust_count(parent, 1);
        if let Some(di) = self.dirs.get_mut(&dir) {
            di.dotdot = parent;
            di.parent = parent;
        }
        true
    }

    /// Adjusts the reference count pass 2 found for `ino`.
    pub fn adjust_count(&mut self, ino: u32, delta: i32) {
        if let Some(c) = self.link_count.get_mut(ino as usize) {
            *c = if delta < 0 {
                c.saturating_sub(delta.unsigned_abs() as u16)
            } else {
                c.saturating_add(delta as u16)
            };
        }
    }

    /// Grows directory `dir` by one empty block (`ext2fs_expand_dir`).
    pub fn expand_dir(&mut self, dir: u32) -> Result<(), String> {
        let mut raw = self.fs.read_inode(dir);
        let m = mapping(&self.fs, &raw);
        let lblk = m.end();
        let goal = m
            .runs
            .last()
            .map_or(self.fs.first_data_block, |r| r.pblk + r.len);
        let blk = self.new_block(goal).ok_or("no free block")?;
        let data = new_dir_block(self.fs.bs, self.dir_csum(), None, true);
        self.write_dir_block(dir, blk, data);
        let extra = self.set_bmap(dir, &mut raw, lblk, blk)?;
        let bs = self.fs.bs64;
        raw.set_size((lblk + 1) * bs);
        self.add_iblocks(&mut raw, 1 + extra);
        self.write_inode(dir, &raw);
        Ok(())
    }

    /// Adds `n` blocks to an inode's i_blocks.
    pub fn add_iblocks(&self, raw: &mut Vec<u8>, n: u64) {
        let huge = raw.has_flag(fl::HUGE_FILE)
            && self
                .fs
                .has_ro_compat(crate::format::features::RoCompat::HUGE_FILE);
        // `n` counts allocations; under bigalloc each is a whole cluster.
        let unit = if huge { 1 } else { self.fs.bs64 / 512 } << self.fs.cluster_bits;
        let cur = u64::from(raw.blocks_lo()) | u64::from(raw.blocks_hi()) << 32;
        raw.set_blocks_raw(cur + n * unit);
    }

    /// Maps logical block `lblk` of inode `ino` (copy `raw`, written by the
    /// caller) to `pblk`. Returns the number of mapping blocks allocated.
    pub fn set_bmap(
        &mut self,
        ino: u32,
        raw: &mut Vec<u8>,
        lblk: u64,
        pblk: u64,
    ) -> Result<u64, String> {
        if raw.has_flag(fl::EXTENTS) {
            return self.set_bmap_extent(ino, raw, lblk, pblk);
        }
        let per = (self.fs.bs / 4) as u64;
        let p32 = u32::try_from(pblk).map_err(|_| "block beyond 32 bits")?;
        if lblk < 12 {
            raw.set_block_word(lblk as usize, p32);
            return Ok(0);
        }
        let mut extra = 0;
        let l = lblk - 12;
        if l < per {
            let mut ind = u64::from(raw.block_word(12));
            if ind == 0 {
                ind = self.new_block(pblk).ok_or("no free block")?;
                self.write_block(ind, &vec![0u8; self.fs.bs]);
                raw.set_block_word(12, ind as u32);
                extra += 1;
            }
            let mut b = self.fs.block(ind).ok_or("bad indirect block")?.to_vec();
            b[4 * l as usize..4 * l as usize + 4].copy_from_slice(&p32.to_le_bytes());
            self.write_block(ind, &b);
            return Ok(extra);
        }
        let l = l - per;
        if l < per * per {
            let mut dind = u64::from(raw.block_word(13));
            if dind == 0 {
                dind = self.new_block(pblk).ok_or("no free block")?;
                self.write_block(dind, &vec![0u8; self.fs.bs]);
                raw.set_block_word(13, dind as u32);
                extra += 1;
            }
            let mut d = self.fs.block(dind).ok_or("bad indirect block")?.to_vec();
            let i1 = (l / per) as usize;
            let mut ind = u64::from(get_u32(&d, 4 * i1).unwrap_or(0));
            if ind == 0 {
                ind = self.new_block(pblk).ok_or("no free block")?;
                self.write_block(ind, &vec![0u8; self.fs.bs]);
                d[4 * i1..4 * i1 + 4].copy_from_slice(&(ind as u32).to_le_bytes());
                self.write_block(dind, &d);
                extra += 1;
            }
            let mut b = self.fs.block(ind).ok_or("bad indirect block")?.to_vec();
            let i2 = (l % per) as usize;
            b[4 * i2..4 * i2 + 4].copy_from_slice(&p32.to_le_bytes());
            self.write_block(ind, &b);
            return Ok(extra);
        }
        Err("directory too large".into())
    }

    fn set_bmap_extent(
        &mut self,
        ino: u32,
        raw: &mut Vec<u8>,
        lblk: u64,
        pblk: u64,
    ) -> Result<u64, String> {
        let l32 = u32::try_from(lblk).map_err(|_| "logical block too large")?;
        let root = raw.i_block().to_vec();
        if !extent_header_ok(&root) {
            return Err("bad extent header".into());
        }
        let seed = self.fs.inode_seed(ino, raw.generation());
        let csum = self.fs.has_metadata_csum();
        let depth = get_u16(&root, 6).unwrap_or(0);
        if depth == 0 {
            let mut node = root;
            if insert_extent(&mut node, l32, pblk) {
                raw.set_i_block(&node);
                return Ok(0);
            }
            // Root full: move its extents into a new leaf block.
            let nb = self.new_block(pblk).ok_or("no free block")?;
            let bs = self.fs.bs;
            let mut leaf = vec![0u8; bs];
            let n = usize::from(get_u16(&node, 2).unwrap_or(0));
            leaf[..12].copy_from_slice(&node[..12]);
            let cap = ((bs - 12) / 12) as u16;
            leaf[4..6].copy_from_slice(&cap.to_le_bytes());
            leaf[12..12 + 12 * n].copy_from_slice(&node[12..12 + 12 * n]);
            if !insert_extent(&mut leaf, l32, pblk) {
                return Err("cannot insert extent".into());
            }
            if csum {
                let _ = set_extent_block_csum(seed, &mut leaf);
            }
            self.write_block(nb, &leaf);
            let first = get_u32(&leaf, 12).unwrap_or(0);
            let mut r = vec![0u8; 60];
            r[0..2].copy_from_slice(&0xF30Au16.to_le_bytes());
            r[2..4].copy_from_slice(&1u16.to_le_bytes());
            r[4..6].copy_from_slice(&4u16.to_le_bytes());
            r[6..8].copy_from_slice(&1u16.to_le_bytes());
            r[12..16].copy_from_slice(&first.to_le_bytes());
            r[16..20].copy_from_slice(&((nb & 0xffff_ffff) as u32).to_le_bytes());
            r[20..22].copy_from_slice(&((nb >> 32) as u16).to_le_bytes());
            raw.set_i_block(&r);
            return Ok(1);
        }
        // Follow the path to the leaf for lblk (rightmost entry <= lblk).
        let mut path: Vec<(u64, Vec<u8>, usize)> = Vec::new();
        let mut node = root;
        let mut blk = 0u64;
        for _ in 0..=depth {
            if get_u16(&node, 6).unwrap_or(0) == 0 {
                break;
            }
            let n = usize::from(get_u16(&node, 2).unwrap_or(0));
            if n == 0 {
                return Err("empty index node".into());
            }
            let mut i = 0;
            for k in 0..n {
                if get_u32(&node, 12 + 12 * k).unwrap_or(0) <= l32 {
                    i = k;
                }
            }
            let o = 12 + 12 * i;
            let child = u64::from(get_u32(&node, o + 4).unwrap_or(0))
                | u64::from(get_u16(&node, o + 8).unwrap_or(0)) << 32;
            path.push((blk, node.clone(), i));
            let c = self.fs.block(child).ok_or("bad extent block")?.to_vec();
            if !extent_header_ok(&c) {
                return Err("bad extent block".into());
            }
            blk = child;
            node = c;
        }
        if insert_extent(&mut node, l32, pblk) {
            if csum {
                let _ = set_extent_block_csum(seed, &mut node);
            }
            self.write_block(blk, &node);
            return Ok(0);
        }
        // Leaf full: a new leaf under the parent, if it has room.
        let (pblk_parent, mut parent, _) = path.pop().ok_or("no parent")?;
        let pn = usize::from(get_u16(&parent, 2).unwrap_or(0));
        let pmax = usize::from(get_u16(&parent, 4).unwrap_or(0));
        if pn >= pmax {
            return Err("extent tree full".into());
        }
        let nb = self.new_block(pblk).ok_or("no free block")?;
        let bs = self.fs.bs;
        let mut leaf = vec![0u8; bs];
        leaf[0..2].copy_from_slice(&0xF30Au16.to_le_bytes());
        leaf[4..6].copy_from_slice(&(((bs - 12) / 12) as u16).to_le_bytes());
        insert_extent(&mut leaf, l32, pblk);
        if csum {
            let _ = set_extent_block_csum(seed, &mut leaf);
        }
        self.write_block(nb, &leaf);
        // Insert the index entry in order.
        let mut pos = pn;
        for k in 0..pn {
            if get_u32(&parent, 12 + 12 * k).unwrap_or(0) > l32 {
                pos = k;
                break;
            }
        }
        let o = 12 + 12 * pos;
        parent.copy_within(o..12 + 12 * pn, o + 12);
        parent[o..o + 4].copy_from_slice(&l32.to_le_bytes());
        parent[o + 4..o + 8].copy_from_slice(&((nb & 0xffff_ffff) as u32).to_le_bytes());
        parent[o + 8..o + 10].copy_from_slice(&((nb >> 32) as u16).to_le_bytes());
        parent[o + 10..o + 12].fill(0);
        parent[2..4].copy_from_slice(&((pn + 1) as u16).to_le_bytes());
        if pblk_parent == 0 {
            raw.set_i_block(&parent);
        } else {
            if csum {
                let _ = set_extent_block_csum(seed, &mut parent);
            }
            self.write_block(pblk_parent, &parent);
        }
        Ok(1)
    }
}

/// Inserts a one-block extent into a leaf node (merging with a neighbour
/// when contiguous). False when the node is full.
fn insert_extent(node: &mut [u8], lblk: u32, pblk: u64) -> bool {
    let n = usize::from(get_u16(node, 2).unwrap_or(0));
    let max = usize::from(get_u16(node, 4).unwrap_or(0));
    let ent = |node: &[u8], i: usize| {
        let o = 12 + 12 * i;
        let l = get_u32(node, o).unwrap_or(0);
        let len = get_u16(node, o + 6 - 2).unwrap_or(0);
        let hi = u64::from(get_u16(node, o + 6).unwrap_or(0));
        let lo = u64::from(get_u32(node, o + 8).unwrap_or(0));
        (l, len, hi << 32 | lo)
    };
    // Extend the previous extent when contiguous.
    for i in 0..n {
        let (l, len, p) = ent(node, i);
        if len > 0
            && len < 32768
            && u64::from(l) + u64::from(len) == u64::from(lblk)
            && p + u64::from(len) == pblk
        {
            let o = 12 + 12 * i + 4;
            node[o..o + 2].copy_from_slice(&(len + 1).to_le_bytes());
            return true;
        }
    }
    if n >= max || 12 + 12 * (n + 1) > node.len() {
        return false;
    }
    let mut pos = n;
    for i in 0..n {
        if ent(node, i).0 > lblk {
            pos = i;
            break;
        }
    }
    let o = 12 + 12 * pos;
    node.copy_within(o..12 + 12 * n, o + 12);
    node[o..o + 4].copy_from_slice(&lblk.to_le_bytes());
    node[o + 4..o + 6].copy_from_slice(&1u16.to_le_bytes());
    node[o + 6..o + 8].copy_from_slice(&((pblk >> 32) as u16).to_le_bytes());
    node[o + 8..o + 12].copy_from_slice(&((pblk & 0xffff_ffff) as u32).to_le_bytes());
    node[2..4].copy_from_slice(&((n + 1) as u16).to_le_bytes());
    true
}

/// e2fsck's `find_name` for messages.
pub fn find_name(c: &Checker, dir: u32, ino: u32) -> Option<String> {
    c.name_of(dir, ino)
}
