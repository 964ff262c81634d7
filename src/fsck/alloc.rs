//! Allocation for repairs (lost+found, directory blocks, cloned blocks):
//! new blocks and inodes are taken from the maps pass 1 built, never from
//! the on-disk bitmaps (which may be wrong). Every allocation and release
//! made after pass 1 is remembered, so that pass 5 can bring the bitmaps
//! and counts up to date for them without reporting them as damage (what
//! e2fsck's allocation statistics callbacks achieve).

use crate::format::group_desc::BG_INODE_UNINIT;

use super::check::Checker;

impl Checker {
    /// A free block at or after `goal` (wrapping), marked in use.
    pub fn new_block(&mut self, goal: u64) -> Option<u64> {
        let first = self.fs.first_data_block;
        let end = self.fs.blocks_count;
        let goal = if goal < first || goal >= end {
            first
        } else {
            goal
        };
        if self.fs.cluster_bits > 0 {
            // bigalloc: only whole free clusters (a block of a used
            // cluster belongs to that cluster's owner).
            return self.new_blocks(goal, 1);
        }
        let b = self
            .block_found
            .first_clear(goal, end)
            .or_else(|| self.block_found.first_clear(first, goal))?;
        self.block_found.set(b);
        self.note_block(b, true);
        Some(b)
    }

    /// `n` contiguous free blocks (first fit from `goal`), marked in use.
    pub fn new_blocks(&mut self, goal: u64, n: u64) -> Option<u64> {
        let first = self.fs.first_data_block;
        let end = self.fs.blocks_count;
        if n == 0 {
            return None;
        }
        // bigalloc: runs start on a cluster boundary and every cluster they
        // touch must be wholly free.
        let cmask = (1u64 << self.fs.cluster_bits) - 1;
        let up = |b: u64| first + ((b - first + cmask) & !cmask);
        let try_from = |start: u64, stop: u64, bf: &super::bitset::BitSet| -> Option<u64> {
            let mut s = start;
            while s + n <= stop {
                let c = up(bf.first_clear(s, stop)?);
                if c + n > stop {
                    return None;
                }
                if !bf.any_in(c, up(c + n).min(stop)) {
                    return Some(c);
                }
                if cmask != 0 {
                    s = c + 1;
                    continue;
                }
                // Skip past the used block.
                let mut k = c;
                while k < c + n && !bf.get(k) {
                    k += 1;
                }
                s = k + 1;
            }
            None
        };
        let goal = goal.clamp(first, end);
        let b = try_from(goal, end, &self.block_found)
            .or_else(|| try_from(first, end, &self.block_found))?;
        for x in b..b + n {
            self.block_found.set(x);
            self.note_block(x, true);
        }
        Some(b)
    }

    /// Releases a block (not fixed metadata).
    pub fn free_block(&mut self, b: u64) {
        if b < self.fs.first_data_block || b >= self.fs.blocks_count || self.block_meta.get(b) {
            return;
        }
        if self.block_found.clear(b) {
            self.note_block(b, false);
        }
    }

    fn note_block(&mut self, b: u64, used: bool) {
        self.block_changes.insert(b, used);
    }

    /// A free inode for a child of `dir` (the first free one from `dir`'s
    /// group), marked in use.
    pub fn new_inode(&mut self, dir: u32, is_dir: bool) -> Option<u32> {
        let ipg = self.fs.ipg;
        let n = self.fs.inodes_count;
        let first = self.fs.first_ino;
        let start_group = if dir > 0 { (dir - 1) / ipg } else { 0 };
        let mut start = start_group * ipg + 1;
        if start < first {
            start = first;
        }
        let pick = |from: u32, to: u32, c: &Checker| -> Option<u32> {
            let mut i = from;
            while i <= to {
                let g = (i - 1) / ipg;
                if c.invalid_it.get(g as usize).copied().unwrap_or(true)
                    || c.fs.inode_offset(i).is_none()
                {
                    i = (g + 1) * ipg + 1;
                    continue;
                }
                let x = c.inode_used.first_clear(u64::from(i), u64::from(to) + 1)?;
                let x = u32::try_from(x).ok()?;
                let gx = (x - 1) / ipg;
                if gx != g {
                    i = x;
                    continue;
                }
                return Some(x);
            }
            None
        };
        let ino = pick(start, n, self).or_else(|| pick(first, n, self))?;
        self.inode_used.set(u64::from(ino));
        if is_dir {
            self.inode_dir.set(u64::from(ino));
        }
        self.inode_changes.insert(ino, (true, is_dir));
        // Make sure the inode lies in the part of the table the kernel reads.
        let g = ((ino - 1) / ipg) as usize;
        let idx = (ino - 1) % ipg;
        if self.fs.has_group_csum() {
            let d = &mut self.fs.groups[g];
            let mut changed = false;
            if d.has_flag(BG_INODE_UNINIT) {
                d.flags &= !BG_INODE_UNINIT;
                changed = true;
            }
            let first_unused = ipg.saturating_sub(d.itable_unused);
            if idx >= first_unused {
                d.itable_unused = ipg - idx - 1;
                changed = true;
            }
            if changed {
                self.fs.mark_gd_dirty();
            }
        }
        Some(ino)
    }

    /// Releases an inode.
    pub fn free_inode(&mut self, ino: u32, is_dir: bool) {
        if self.inode_used.clear(u64::from(ino)) {
            self.inode_changes.insert(ino, (false, is_dir));
        }
        self.inode_dir.clear(u64::from(ino));
        self.inode_reg.clear(u64::from(ino));
    }

    /// Releases every block of inode `raw` (mapping, tree blocks and its
    /// attribute block when no other inode uses it).
    pub fn release_inode_blocks(&mut self, _ino: u32, raw: &[u8]) {
        let m = super::map::mapping(&self.fs, raw);
        for r in &m.runs {
            for b in r.pblk..r.pblk + r.len {
                self.free_block(b);
            }
        }
        for &b in &m.meta {
            self.free_block(b);
        }
        use super::ino::InodeRead;
        let ea = raw.file_acl(self.fs.hurd);
        if ea != 0 && self.fs.valid_block(ea) && self.block_ea.get(ea) {
            if let Some(mut blk) = self.fs.block(ea).map(<[u8]>::to_vec) {
                let rc = u32::from_le_bytes([blk[4], blk[5], blk[6], blk[7]]);
                let nrc = rc.saturating_sub(1);
                let _ = crate::format::xattr::set_block_refcount(&mut blk, nrc);
                if self.fs.has_metadata_csum() {
                    let _ = crate::format::xattr::set_block_checksum(self.fs.seed, ea, &mut blk);
                }
                if nrc == 0 {
                    self.free_block(ea);
                    self.block_ea.clear(ea);
                } else {
                    self.write_block(ea, &blk);
                }
            }
        }
    }
}
