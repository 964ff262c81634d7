//! Pass 5: group summaries, after e2fsck's `e2fsck_pass5`.
//!
//! The block and inode bitmaps on disk (uninitialized groups read as the
//! kernel would initialize them) are compared with what passes 1–4 found;
//! then the free block, free inode and directory counts of every group and
//! of the superblock, the padding bits of the last group, and the bitmap
//! checksums. Repairs rewrite the bitmaps from the found maps, with
//! checksums. Blocks and inodes the repairs of passes 1B–4 allocated or
//! released are brought up to date silently (as e2fsck's allocation
//! statistics do), so only damage found on disk is reported.

use crate::format::bitmap::{bitmap_csum, stored_bitmap_csum};
use crate::format::group_desc::{BG_BLOCK_UNINIT, BG_INODE_UNINIT};

use super::bitset::BitSet;
use super::check::Checker;
use super::pass1::group_meta_blocks;
use super::problem::{Code, PCtx};

/// Formats differences as e2fsck does: ` +N`, ` -(A--B)`.
fn format_diffs(diffs: &[(u64, u64, bool)]) -> String {
    let mut s = String::new();
    for &(a, b, used) in diffs {
        let sign = if used { '+' } else { '-' };
        if a == b {
            s.push_str(&format!(" {sign}{a}"));
        } else {
            s.push_str(&format!(" {sign}({a}--{b})"));
        }
    }
    s
}

fn push_diff(diffs: &mut Vec<(u64, u64, bool)>, n: u64, used: bool) {
    if let Some(last) = diffs.last_mut() {
        if last.1 + 1 == n && last.2 == used {
            last.1 = n;
            return;
        }
    }
    diffs.push((n, n, used));
}

impl Checker {
    fn block_uninit_honored(&self, g: u32) -> bool {
        self.fs.has_group_csum()
            && self.fs.groups[g as usize].has_flag(BG_BLOCK_UNINIT)
            && self.fs.gd_trusted(g)
    }

    fn inode_uninit_honored(&self, g: u32) -> bool {
        self.fs.has_group_csum()
            && self.fs.groups[g as usize].has_flag(BG_INODE_UNINIT)
            && self.fs.gd_trusted(g)
    }

    /// The block bitmap as on disk, one bit per cluster numbered from
    /// `first_data_block`, covering whole groups.
    fn disk_block_bitmap(&self) -> BitSet {
        let ng = self.fs.groups_count();
        let cpg = u64::from(self.fs.sb.f.clusters_per_group);
        let bits = self.fs.cluster_bits;
        let mut d = BitSet::new(u64::from(ng) * cpg);
        let nbytes = (cpg / 8) as usize;
        for g in 0..ng {
            let base = u64::from(g) * cpg;
            if self.block_uninit_honored(g) {
                continue;
            }
            let loc = self.fs.groups[g as usize].block_bitmap;
            if loc == 0 || self.invalid_bb[g as usize] {
                continue;
            }
            let Some(b) = self.fs.block(loc) else {
                continue;
            };
            for i in 0..(nbytes * 8).min(cpg as usize) {
                if b[i / 8] & (1 << (i % 8)) != 0 {
                    d.set(base + i as u64);
                }
            }
        }
        // Uninitialized groups: their own metadata, wherever it lies.
        let fdb = self.fs.first_data_block;
        let mark = |d: &mut BitSet, blk: u64| {
            if blk >= fdb && blk < self.fs.blocks_count {
                d.set((blk - fdb) >> bits);
            }
        };
        for g in 0..ng {
            if !self.block_uninit_honored(g) {
                continue;
            }
            for (s, c) in group_meta_blocks(&self.fs, g) {
                for b in s..s + c {
                    mark(&mut d, b);
                }
            }
            let gd = &self.fs.groups[g as usize];
            mark(&mut d, gd.block_bitmap);
            mark(&mut d, gd.inode_bitmap);
            if gd.inode_table != 0 {
                for b in gd.inode_table..gd.inode_table + u64::from(self.fs.itable_blocks) {
                    mark(&mut d, b);
                }
            }
        }
        d
    }

    /// The inode bitmap as on disk (bit i = inode i + 1).
    fn disk_inode_bitmap(&self) -> BitSet {
        let ng = self.fs.groups_count();
        let ipg = u64::from(self.fs.ipg);
        let mut d = BitSet::new(u64::from(ng) * ipg);
        for g in 0..ng {
            if self.inode_uninit_honored(g) {
                continue;
            }
            let loc = self.fs.groups[g as usize].inode_bitmap;
            if loc == 0 || self.invalid_ib[g as usize] {
                continue;
            }
            let Some(b) = self.fs.block(loc) else {
                continue;
            };
            for i in 0..ipg as usize {
                if b.get(i / 8).is_some_and(|x| x & (1 << (i % 8)) != 0) {
                    d.set(u64::from(g) * ipg + i as u64);
                }
            }
        }
        d
    }

    /// Pass 5.
    pub fn pass5(&mut self) {
        self.rep
            .say_header("Pass 5: Checking group summary information\n");
        self.check_block_bitmaps();
        if self.rep.should_stop() {
            return;
        }
        self.check_inode_bitmaps();
        if self.rep.should_stop() {
            return;
        }
        self.check_inode_end();
        self.check_block_end();
        self.check_bitmap_checksums();
    }

    fn found_cluster(&self, c: u64) -> bool {
        let bits = self.fs.cluster_bits;
        let b = self.fs.first_data_block + (c << bits);
        if bits == 0 {
            return self.block_found.get(b);
        }
        self.block_found.any_in(b, b + (1 << bits))
    }

    fn check_block_bitmaps(&mut self) {
        let ng = self.fs.groups_count();
        let cpg = u64::from(self.fs.sb.f.clusters_per_group);
        let bits = self.fs.cluster_bits;
        let fdb = self.fs.first_data_block;
        let nclusters = (self.fs.blocks_count - fdb).div_ceil(1 << bits);
        let mut disk = self.disk_block_bitmap();
        // Groups marked BLOCK_UNINIT that hold blocks in use.
        for g in 0..ng {
            if !self.block_uninit_honored(g) {
                continue;
            }
            let start = u64::from(g) * cpg;
            let end = (start + cpg).min(nclusters);
            let mut used_extra = false;
            for c in start..end {
                if self.found_cluster(c) && !disk.get(c) {
                    used_extra = true;
                    break;
                }
            }
            if used_extra && self.fix(Code::BlockUninit, &PCtx::group(g)) {
                self.fs.groups[g as usize].flags &= !BG_BLOCK_UNINIT;
                self.fs.mark_gd_dirty();
            }
        }
        // Our own allocations and releases.
        let mut adj = vec![0i64; ng as usize];
        let mut touched = std::collections::BTreeSet::new();
        for (&b, &used) in &self.block_changes {
            if b < fdb || b >= self.fs.blocks_count {
                continue;
            }
            let c = (b - fdb) >> bits;
            if bits > 0 {
                // A cluster is in use while any of its blocks is.
                touched.insert(c);
                continue;
            }
            if used {
                disk.set(c);
            } else {
                disk.clear(c);
            }
            let g = (c / cpg) as usize;
            if let Some(a) = adj.get_mut(g) {
                *a += if used { -1 } else { 1 };
            }
        }
        for c in touched {
            let now = self.found_cluster(c);
            if now != disk.get(c) {
                if now {
                    disk.set(c);
                } else {
                    disk.clear(c);
                }
                let g = (c / cpg) as usize;
                if let Some(a) = adj.get_mut(g) {
                    *a += if now { -1 } else { 1 };
                }
            }
        }
        let mut diffs = Vec::new();
        for c in 0..nclusters {
            let actual = self.found_cluster(c);
            let bitmap = disk.get(c);
            if actual != bitmap {
                push_diff(&mut diffs, fdb + (c << bits), actual);
            }
        }
        let mut fixed = false;
        if !diffs.is_empty() {
            let p = PCtx {
                str: format_diffs(&diffs),
                ..PCtx::default()
            };
            if self.fix(Code::BlockBitmapDiff, &p) {
                fixed = true;
            }
        }
        let rewrite = fixed || !self.block_changes.is_empty();
        // Counts: from the found map when fixed, else from the bitmap.
        let mut total_free = 0u64;
        for g in 0..ng {
            let start = u64::from(g) * cpg;
            let end = (start + cpg).min(nclusters);
            let mut free = 0u64;
            for c in start..end {
                let used = if fixed {
                    self.found_cluster(c)
                } else {
                    disk.get(c)
                };
                if !used {
                    free += 1;
                }
            }
            total_free += free;
            let stored = i64::from(self.fs.groups[g as usize].free_blocks_count) + adj[g as usize];
            if stored != free as i64 {
                let quiet_own = stored != i64::from(self.fs.groups[g as usize].free_blocks_count)
                    && free as i64 == stored;
                let _ = quiet_own;
                let p = PCtx {
                    group: g,
                    num: free,
                    num2: stored.max(0) as u64,
                    ..PCtx::default()
                };
                if self.fix(Code::FreeBlockCountGroup, &p) {
                    self.fs.groups[g as usize].free_blocks_count = free as u32;
                    self.fs.mark_gd_dirty();
                }
            } else if adj[g as usize] != 0 && self.can_write() {
                self.fs.groups[g as usize].free_blocks_count = free as u32;
                self.fs.mark_gd_dirty();
            }
        }
        let adj_total: i64 = adj.iter().sum();
        let stored = self.fs.sb.free_blocks_count() as i64 + adj_total;
        let total_free_blocks = total_free << bits;
        if stored != total_free_blocks as i64 {
            let p = PCtx {
                num: total_free_blocks,
                num2: stored.max(0) as u64,
                ..PCtx::default()
            };
            if self.fix(Code::FreeBlockCount, &p) {
                self.fs.sb.set_free_blocks_count(total_free_blocks);
                self.fs.mark_sb_dirty();
            }
        } else if adj_total != 0 && self.can_write() {
            self.fs.sb.set_free_blocks_count(total_free_blocks);
            self.fs.mark_sb_dirty();
        }
        if rewrite && self.can_write() {
            self.write_block_bitmaps(None);
        }
    }

    /// Writes the block bitmaps from the found map (all initialized
    /// groups, or only `only`), with padding and checksums.
    pub fn write_block_bitmaps(&mut self, only: Option<u32>) {
        let ng = self.fs.groups_count();
        let cpg = u64::from(self.fs.sb.f.clusters_per_group);
        let bits = self.fs.cluster_bits;
        let fdb = self.fs.first_data_block;
        let nclusters = (self.fs.blocks_count - fdb).div_ceil(1 << bits);
        let bs = self.fs.bs;
        for g in 0..ng {
            if only.is_some_and(|o| o != g) {
                continue;
            }
            if self.block_uninit_honored(g) {
                continue;
            }
            let loc = self.fs.groups[g as usize].block_bitmap;
            if loc == 0 || !self.fs.valid_block(loc) || self.invalid_bb[g as usize] {
                continue;
            }
            let mut buf = vec![0xffu8; bs];
            let start = u64::from(g) * cpg;
            for i in 0..cpg {
                let c = start + i;
                let used = c >= nclusters || self.found_cluster(c);
                let byte = (i / 8) as usize;
                if !used {
                    buf[byte] &= !(1 << (i % 8));
                }
            }
            let old = self.fs.block(loc).map(<[u8]>::to_vec);
            let nbytes = (cpg / 8) as usize;
            let csum = bitmap_csum(self.fs.seed, &buf, nbytes);
            let stored = stored_bitmap_csum(csum, self.fs.geo.desc_size as usize);
            if old.as_deref() != Some(&buf[..]) {
                self.write_meta_block(loc, &buf);
            }
            if self.fs.has_metadata_csum() && self.fs.groups[g as usize].block_bitmap_csum != stored
            {
                self.fs.groups[g as usize].block_bitmap_csum = stored;
                self.fs.mark_gd_dirty();
            }
        }
    }

    /// Writes the inode bitmaps from `inode_used`, with checksums.
    pub fn write_inode_bitmaps(&mut self) {
        let ng = self.fs.groups_count();
        let ipg = u64::from(self.fs.ipg);
        let bs = self.fs.bs;
        for g in 0..ng {
            if self.inode_uninit_honored(g) {
                continue;
            }
            let loc = self.fs.groups[g as usize].inode_bitmap;
            if loc == 0 || !self.fs.valid_block(loc) || self.invalid_ib[g as usize] {
                continue;
            }
            let mut buf = vec![0xffu8; bs];
            for i in 0..ipg {
                let ino = u64::from(g) * ipg + i + 1;
                if !self.inode_used.get(ino) {
                    buf[(i / 8) as usize] &= !(1 << (i % 8));
                }
            }
            let old = self.fs.block(loc).map(<[u8]>::to_vec);
            let nbytes = (ipg / 8) as usize;
            let csum = bitmap_csum(self.fs.seed, &buf, nbytes);
            let stored = stored_bitmap_csum(csum, self.fs.geo.desc_size as usize);
            if old.as_deref() != Some(&buf[..]) {
                self.write_meta_block(loc, &buf);
            }
            if self.fs.has_metadata_csum() && self.fs.groups[g as usize].inode_bitmap_csum != stored
            {
                self.fs.groups[g as usize].inode_bitmap_csum = stored;
                self.fs.mark_gd_dirty();
            }
        }
    }

    fn check_inode_bitmaps(&mut self) {
        let ng = self.fs.groups_count();
        let ipg = u64::from(self.fs.ipg);
        let n = u64::from(self.fs.inodes_count);
        let mut disk = self.disk_inode_bitmap();
        for g in 0..ng {
            if !self.inode_uninit_honored(g) {
                continue;
            }
            let start = u64::from(g) * ipg + 1;
            if self.inode_used.any_in(start, start + ipg)
                && self.fix(Code::InodeUninit, &PCtx::group(g))
            {
                self.fs.groups[g as usize].flags &= !BG_INODE_UNINIT;
                self.fs.mark_gd_dirty();
            }
        }
        let mut adj_free = vec![0i64; ng as usize];
        let mut adj_dirs = vec![0i64; ng as usize];
        for (&ino, &(used, is_dir)) in &self.inode_changes {
            if ino == 0 || u64::from(ino) > n {
                continue;
            }
            let i = u64::from(ino) - 1;
            if used {
                disk.set(i);
            } else {
                disk.clear(i);
            }
            let g = (i / ipg) as usize;
            adj_free[g] += if used { -1 } else { 1 };
            if is_dir {
                adj_dirs[g] += if used { 1 } else { -1 };
            }
        }
        let mut diffs = Vec::new();
        for i in 0..n {
            let actual = self.inode_used.get(i + 1);
            let bitmap = disk.get(i);
            if actual != bitmap {
                push_diff(&mut diffs, i + 1, actual);
            }
        }
        let mut fixed = false;
        if !diffs.is_empty() {
            let p = PCtx {
                str: format_diffs(&diffs),
                ..PCtx::default()
            };
            if self.fix(Code::InodeBitmapDiff, &p) {
                fixed = true;
            }
        }
        let rewrite = fixed || !self.inode_changes.is_empty();
        let mut total_free = 0u64;
        for g in 0..ng {
            let start = u64::from(g) * ipg;
            let mut free = 0u64;
            let mut dirs = 0u64;
            for i in start..(start + ipg).min(n) {
                let used = if fixed {
                    self.inode_used.get(i + 1)
                } else {
                    disk.get(i)
                };
                if !used {
                    free += 1;
                } else if self.inode_dir.get(i + 1) {
                    dirs += 1;
                }
            }
            total_free += free;
            let gd = self.fs.groups[g as usize].clone();
            let stored_free = i64::from(gd.free_inodes_count) + adj_free[g as usize];
            if stored_free != free as i64 {
                let p = PCtx {
                    group: g,
                    num: free,
                    num2: stored_free.max(0) as u64,
                    ..PCtx::default()
                };
                if self.fix(Code::FreeInodeCountGroup, &p) {
                    self.fs.groups[g as usize].free_inodes_count = free as u32;
                    self.fs.mark_gd_dirty();
                }
            } else if adj_free[g as usize] != 0 && self.can_write() {
                self.fs.groups[g as usize].free_inodes_count = free as u32;
                self.fs.mark_gd_dirty();
            }
            let stored_dirs = i64::from(gd.used_dirs_count) + adj_dirs[g as usize];
            if stored_dirs != dirs as i64 {
                let p = PCtx {
                    group: g,
                    num: dirs,
                    num2: stored_dirs.max(0) as u64,
                    ..PCtx::default()
                };
                if self.fix(Code::FreeDirCountGroup, &p) {
                    self.fs.groups[g as usize].used_dirs_count = dirs as u32;
                    self.fs.mark_gd_dirty();
                }
            } else if adj_dirs[g as usize] != 0 && self.can_write() {
                self.fs.groups[g as usize].used_dirs_count = dirs as u32;
                self.fs.mark_gd_dirty();
            }
        }
        let adj_total: i64 = adj_free.iter().sum();
        let stored = i64::from(self.fs.sb.f.free_inodes_count) + adj_total;
        if stored != total_free as i64 {
            let p = PCtx {
                num: total_free,
                num2: stored.max(0) as u64,
                ..PCtx::default()
            };
            if self.fix(Code::FreeInodeCount, &p) {
                self.fs.sb.f.free_inodes_count = total_free as u32;
                self.fs.mark_sb_dirty();
            }
        } else if adj_total != 0 && self.can_write() {
            self.fs.sb.f.free_inodes_count = total_free as u32;
            self.fs.mark_sb_dirty();
        }
        if rewrite && self.can_write() {
            self.write_inode_bitmaps();
        }
    }

    /// Whether the bytes of a bitmap block past `used_bytes` are all 0xff
    /// for every initialized group (e2fsprogs' "bitmap tail" check).
    fn bitmap_tails_ok(&self, inode: bool) -> bool {
        let used = if inode {
            (self.fs.ipg / 8) as usize
        } else {
            (self.fs.sb.f.clusters_per_group / 8) as usize
        };
        for g in 0..self.fs.groups_count() {
            let (uninit, loc, invalid) = if inode {
                (
                    self.inode_uninit_honored(g),
                    self.fs.groups[g as usize].inode_bitmap,
                    self.invalid_ib[g as usize],
                )
            } else {
                (
                    self.block_uninit_honored(g),
                    self.fs.groups[g as usize].block_bitmap,
                    self.invalid_bb[g as usize],
                )
            };
            if uninit || invalid || loc == 0 {
                continue;
            }
            if let Some(b) = self.fs.block(loc) {
                if b.get(used..).is_some_and(|t| t.iter().any(|&x| x != 0xff)) {
                    return false;
                }
            }
        }
        true
    }

    /// Padding of the in-memory inode bitmap past `s_inodes_count`, and
    /// the tails of the inode bitmap blocks.
    fn check_inode_end(&mut self) {
        let end = u64::from(self.fs.ipg) * u64::from(self.fs.groups_count());
        let n = u64::from(self.fs.inodes_count);
        let mut bad = false;
        if end > n {
            let disk = self.disk_inode_bitmap();
            bad = (n..end).any(|i| !disk.get(i));
        }
        if !bad {
            bad = !self.bitmap_tails_ok(true);
        }
        if bad && self.fix(Code::InodeBmapPadding, &PCtx::default()) {
            self.write_inode_bitmaps();
        }
    }

    /// Padding of the last group's block bitmap past the last block.
    fn check_block_end(&mut self) {
        let cpg = u64::from(self.fs.sb.f.clusters_per_group);
        let ng = u64::from(self.fs.groups_count());
        let bits = self.fs.cluster_bits;
        let nclusters = (self.fs.blocks_count - self.fs.first_data_block).div_ceil(1 << bits);
        let end = ng * cpg;
        let g = (ng - 1) as u32;
        let mut bad = false;
        if !self.block_uninit_honored(g) {
            let disk = self.disk_block_bitmap();
            bad = (nclusters..end).any(|c| !disk.get(c));
        }
        if !bad {
            bad = !self.bitmap_tails_ok(false);
        }
        if bad && self.fix(Code::BlockBmapPadding, &PCtx::default()) {
            self.write_block_bitmaps(None);
        }
    }

    fn check_bitmap_checksums(&mut self) {
        if !self.fs.has_metadata_csum() {
            return;
        }
        let ng = self.fs.groups_count();
        let ds = self.fs.geo.desc_size as usize;
        let ipg_bytes = (self.fs.ipg / 8) as usize;
        let cpg_bytes = (self.fs.sb.f.clusters_per_group / 8) as usize;
        for g in 0..ng {
            if self.inode_uninit_honored(g) {
                continue;
            }
            let gd = self.fs.groups[g as usize].clone();
            let Some(b) = self.fs.block(gd.inode_bitmap) else {
                continue;
            };
            let want = stored_bitmap_csum(bitmap_csum(self.fs.seed, b, ipg_bytes), ds);
            if want != gd.inode_bitmap_csum
                && self.fix(Code::InodeBitmapCsumInvalid, &PCtx::group(g))
            {
                self.fs.groups[g as usize].inode_bitmap_csum = want;
                self.fs.mark_gd_dirty();
            }
        }
        for g in 0..ng {
            if self.block_uninit_honored(g) {
                continue;
            }
            let gd = self.fs.groups[g as usize].clone();
            let Some(b) = self.fs.block(gd.block_bitmap) else {
                continue;
            };
            let want = stored_bitmap_csum(bitmap_csum(self.fs.seed, b, cpg_bytes), ds);
            if want != gd.block_bitmap_csum
                && self.fix(Code::BlockBitmapCsumInvalid, &PCtx::group(g))
            {
                self.fs.groups[g as usize].block_bitmap_csum = want;
                self.fs.mark_gd_dirty();
            }
        }
    }
}
