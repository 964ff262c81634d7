//! Pass 1, the blocks of one inode: the extent tree or the block map is
//! walked (without recursion, each tree block at most once), every pointer
//! checked, bad entries removed when the answer is yes, and the blocks the
//! inode claims collected for the block map, after e2fsck's
//! `scan_extent_node` and `process_block`.
//!
//! Nothing here touches the image: changes go into the inode copy and into
//! `block_writes`, which pass 1 applies in inode order.

use std::collections::HashSet;

use crate::format::bytes::{get_u16, get_u32};
use crate::format::extent::set_extent_block_csum;

use super::ask::Ask;
use super::pass1::Env;
use super::problem::{Code, PCtx};

/// Maximum extent tree depth followed.
pub const MAX_EXTENT_DEPTH: u16 = 32;
const EXTENT_MAGIC: u16 = 0xF30A;
/// The inode number of the resize inode.
pub const RESIZE_INO: u32 = 7;

/// What the walk of one inode's blocks found.
#[derive(Debug, Default)]
pub struct BlockAcc {
    /// Blocks (clusters) counted for i_blocks.
    pub num_blocks: u64,
    /// Last logical block mapped (-1: none).
    pub last_block: i64,
    /// Last logical block mapped by an initialized extent (-1: none).
    pub last_init_lblock: i64,
    pub last_db_block: i64,
    pub previous_block: u64,
    pub next_lblock: u64,
    pub fragmented: bool,
    /// Runs of blocks to mark in use: (first, count).
    pub claims: Vec<(u64, u64)>,
    /// Directory blocks: (logical, physical; 0 = hole).
    pub dir_blocks: Vec<(u32, u64)>,
    /// Tree or indirect blocks to rewrite.
    pub block_writes: Vec<(u64, Vec<u8>)>,
    pub num_illegal: u32,
    /// Too many bad blocks: clear the inode.
    pub clear: bool,
    pub inode_modified: bool,
    /// A mapping block sits on fixed metadata: restart after pass 1.
    pub restart: bool,
    /// The extent root header is bad: clear the inode.
    pub bad_header: bool,
    /// Last cluster counted (bigalloc).
    pub last_cluster: Option<u64>,
}

impl BlockAcc {
    pub fn new() -> BlockAcc {
        BlockAcc {
            last_block: -1,
            last_init_lblock: -1,
            last_db_block: -1,
            ..BlockAcc::default()
        }
    }

    pub fn claim(&mut self, start: u64, len: u64) {
        if let Some(last) = self.claims.last_mut() {
            if last.0 + last.1 == start {
                last.1 += len;
                return;
            }
        }
        self.claims.push((start, len));
    }

    /// Counts the clusters of `len` blocks from `pblk` not counted yet.
    pub fn count_run(&mut self, pblk: u64, len: u64, bits: u32) {
        if len == 0 {
            return;
        }
        if bits == 0 {
            self.num_blocks += len;
            return;
        }
        let first = pblk >> bits;
        let last = (pblk + len - 1) >> bits;
        let mut n = last - first + 1;
        if self.last_cluster == Some(first) {
            n -= 1;
        }
        self.num_blocks += n;
        self.last_cluster = Some(last);
    }

    fn add_dir_block(&mut self, lblk: i64, blk: u64) {
        while self.last_db_block + 1 < lblk {
            self.last_db_block += 1;
            if let Ok(l) = u32::try_from(self.last_db_block) {
                self.dir_blocks.push((l, 0));
            }
        }
        if let Ok(l) = u32::try_from(lblk) {
            self.dir_blocks.push((l, blk));
        }
        if lblk > self.last_db_block {
            self.last_db_block = lblk;
        }
    }
}

// ---- extent node helpers (node = 12-byte header + 12-byte entries) ----

fn eh_entries(n: &[u8]) -> usize {
    usize::from(get_u16(n, 2).unwrap_or(0))
}
fn eh_max(n: &[u8]) -> usize {
    usize::from(get_u16(n, 4).unwrap_or(0))
}
fn eh_depth(n: &[u8]) -> u16 {
    get_u16(n, 6).unwrap_or(0)
}
fn set_entries(n: &mut [u8], v: usize) {
    if let Some(d) = n.get_mut(2..4) {
        d.copy_from_slice(&(v as u16).to_le_bytes());
    }
}
fn entry_lblk(n: &[u8], i: usize) -> u32 {
    get_u32(n, 12 + 12 * i).unwrap_or(0)
}
fn set_entry_lblk(n: &mut [u8], i: usize, v: u32) {
    let o = 12 + 12 * i;
    if let Some(d) = n.get_mut(o..o + 4) {
        d.copy_from_slice(&v.to_le_bytes());
    }
}
/// Leaf entry: (lblk, raw ee_len, start).
fn leaf_entry(n: &[u8], i: usize) -> (u32, u16, u64) {
    let o = 12 + 12 * i;
    let lblk = get_u32(n, o).unwrap_or(0);
    let len = get_u16(n, o + 4).unwrap_or(0);
    let hi = u64::from(get_u16(n, o + 6).unwrap_or(0));
    let lo = u64::from(get_u32(n, o + 8).unwrap_or(0));
    (lblk, len, hi << 32 | lo)
}
fn set_leaf_len(n: &mut [u8], i: usize, raw_len: u16) {
    let o = 12 + 12 * i + 4;
    if let Some(d) = n.get_mut(o..o + 2) {
        d.copy_from_slice(&raw_len.to_le_bytes());
    }
}
/// Index entry: (lblk, child).
fn index_entry(n: &[u8], i: usize) -> (u32, u64) {
    let o = 12 + 12 * i;
    let lblk = get_u32(n, o).unwrap_or(0);
    let lo = u64::from(get_u32(n, o + 4).unwrap_or(0));
    let hi = u64::from(get_u16(n, o + 8).unwrap_or(0));
    (lblk, hi << 32 | lo)
}
fn delete_entry(n: &mut [u8], i: usize) {
    let cnt = eh_entries(n);
    if i >= cnt {
        return;
    }
    let start = 12 + 12 * i;
    let end = 12 + 12 * cnt;
    if end > n.len() {
        return;
    }
    n.copy_within(start + 12..end, start);
    n[end - 12..end].iter_mut().for_each(|b| *b = 0);
    set_entries(n, cnt - 1);
}

/// `ext2fs_extent_header_verify`: magic, entries <= max, and max within
/// two entries of what the node's size holds.
pub fn extent_header_ok(n: &[u8]) -> bool {
    if n.len() < 12 || get_u16(n, 0) != Some(EXTENT_MAGIC) {
        return false;
    }
    let cap = (n.len() - 12) / 12;
    let max = eh_max(n);
    let entries = eh_entries(n);
    entries <= max && max <= cap && max + 2 >= cap && eh_depth(n) <= MAX_EXTENT_DEPTH
}

struct Frame {
    buf: Vec<u8>,
    /// 0 for the root (in the inode).
    blk: u64,
    depth: u16,
    level: u64,
    i: usize,
    start_block: u64,
    end_block: u64,
    node_end: u64,
    dirty: bool,
    failed_csum: bool,
    try_repairs: bool,
}

/// Walks the extent tree of `raw` (`check_blocks_extents`). Changes the
/// root in `raw` when fixed.
#[allow(clippy::too_many_arguments)]
pub fn check_extents(
    env: &Env,
    ask: &mut dyn Ask,
    ino: u32,
    raw: &mut [u8],
    acc: &mut BlockAcc,
    is_dir: bool,
    size: u64,
    verity: bool,
    generation: u32,
) {
    let fs = env.fs;
    let root: Vec<u8> = raw[0x28..0x64].to_vec();
    if !extent_header_ok(&root) {
        acc.bad_header = true;
        return;
    }
    let bs = fs.bs64;
    let eof_block = (size.saturating_add(bs - 1) / bs).wrapping_sub(1);
    let log_bs = fs.sb.f.log_block_size;
    let dir_limit: u64 = 1u64 << (21u32.saturating_sub(log_bs));
    let seed = fs.inode_seed(ino, generation);
    let mut seen: HashSet<u64> = HashSet::new();
    let mut stack = vec![Frame {
        depth: eh_depth(&root),
        buf: root,
        blk: 0,
        level: 0,
        i: 0,
        start_block: 0,
        end_block: 0,
        node_end: 1 << 32,
        dirty: false,
        failed_csum: false,
        try_repairs: true,
    }];
    let mut budget: u64 = fs.blocks_count.saturating_add(16);
    loop {
        if ask.stopped() {
            return;
        }
        let stack_len = stack.len();
        let Some(top) = stack.last_mut() else { break };
        let n = eh_entries(&top.buf);
        if top.i >= n {
            // Node done.
            let mut fr = stack.pop().unwrap_or_else(|| unreachable!());
            if fr.failed_csum && fr.try_repairs && !fr.dirty {
                let p = PCtx {
                    ino,
                    blk: fr.blk,
                    ..PCtx::default()
                };
                if ask.fix(Code::ExtentOnlyCsumInvalid, &p) {
                    fr.dirty = true;
                }
            }
            match stack.last_mut() {
                None => {
                    // The root.
                    if fr.dirty {
                        if eh_entries(&fr.buf) == 0 && fr.depth > 0 {
                            if let Some(d) = fr.buf.get_mut(6..8) {
                                d.copy_from_slice(&0u16.to_le_bytes());
                            }
                        }
                        raw[0x28..0x64].copy_from_slice(&fr.buf[..60]);
                        acc.inode_modified = true;
                    }
                    break;
                }
                Some(parent) => {
                    if fr.dirty && eh_entries(&fr.buf) == 0 {
                        // Emptied by our fixes: free the node.
                        delete_entry(&mut parent.buf, parent.i);
                        parent.dirty = true;
                        continue;
                    }
                    if fr.dirty {
                        if fs.has_metadata_csum() {
                            let _ = set_extent_block_csum(seed, &mut fr.buf);
                        }
                        let first = entry_lblk(&fr.buf, 0);
                        if eh_entries(&fr.buf) > 0 && entry_lblk(&parent.buf, parent.i) != first {
                            set_entry_lblk(&mut parent.buf, parent.i, first);
                            parent.dirty = true;
                        }
                        acc.block_writes.push((fr.blk, fr.buf));
                    }
                    acc.claim(fr.blk, 1);
                    acc.num_blocks += 1;
                    parent.i += 1;
                }
            }
            continue;
        }
        let i = top.i;
        let is_leaf = top.depth == 0;
        let (lblk, raw_len, pblk) = if is_leaf {
            leaf_entry(&top.buf, i)
        } else {
            let (l, b) = index_entry(&top.buf, i);
            (l, 0, b)
        };
        let uninit = is_leaf && raw_len > 32768;
        let len: u64 = if is_leaf {
            u64::from(if uninit { raw_len - 32768 } else { raw_len })
        } else {
            let next = if i + 1 < n {
                u64::from(entry_lblk(&top.buf, i + 1))
            } else {
                top.node_end
            };
            next.wrapping_sub(u64::from(lblk)) & 0xffff_ffff_ffff
        };
        let last_lblk = u64::from(lblk).wrapping_add(len).wrapping_sub(1);
        let mut p = PCtx {
            ino,
            blk: pblk,
            blk2: u64::from(lblk),
            num: len,
            ..PCtx::default()
        };
        let mut problem = None;
        if pblk == 0 || pblk < fs.first_data_block || pblk >= fs.blocks_count {
            problem = Some(Code::ExtentBadStartBlk);
        } else if u64::from(lblk) < top.start_block {
            problem = Some(Code::OutOfOrderExtents);
        } else if top.end_block != 0
            && last_lblk > top.end_block
            && !(last_lblk > eof_block && (uninit || verity))
        {
            problem = Some(Code::ExtentEndOutOfBounds);
        } else if is_leaf && len == 0 {
            problem = Some(Code::ExtentLengthZero);
        } else if is_leaf && pblk + len > fs.blocks_count {
            problem = Some(Code::ExtentEndsBeyond);
        } else if is_leaf && is_dir && u64::from(lblk) + len > dir_limit {
            problem = Some(Code::ToobigDir);
        }
        if is_leaf && problem.is_none() && len > 0 {
            if u64::from(lblk) < acc.next_lblock {
                problem = Some(Code::ExtentCollision);
            } else if u64::from(lblk) + len > acc.next_lblock {
                acc.next_lblock = u64::from(lblk) + len;
            }
        }
        if top.try_repairs
            && is_dir
            && problem.is_none()
            && uninit
            && ask.fix(Code::UninitDblock, &p)
        {
            set_leaf_len(&mut top.buf, i, raw_len - 32768);
            top.dirty = true;
            top.failed_csum = false;
        }
        if let Some(code) = problem {
            if code == Code::ToobigDir {
                p.blkcount = Some(i64::from(lblk));
            }
            if top.try_repairs && ask.fix(code, &p) {
                delete_entry(&mut top.buf, i);
                top.dirty = true;
                top.failed_csum = false;
                acc.inode_modified = true;
                continue;
            }
            top.i += 1;
            continue;
        }
        if !is_leaf {
            let mut next_try = true;
            if ino != RESIZE_INO && env.block_meta.get(pblk) {
                ask.fix(
                    Code::CriticalMetadataCollision,
                    &PCtx {
                        ino,
                        blk: pblk,
                        ..PCtx::default()
                    },
                );
                next_try = false;
                if env.writable {
                    acc.restart = true;
                }
            }
            let child = fs.block(pblk).map(<[u8]>::to_vec);
            let depth_ok = top.depth >= 1;
            budget = budget.saturating_sub(1);
            let good = match &child {
                Some(c) => {
                    extent_header_ok(c)
                        && depth_ok
                        && eh_depth(c) == top.depth - 1
                        && !seen.contains(&pblk)
                        && budget > 0
                        && stack_len < usize::from(MAX_EXTENT_DEPTH)
                }
                None => false,
            };
            if !good {
                if !next_try {
                    top.i = n;
                    continue;
                }
                let ph = PCtx {
                    ino,
                    blk: pblk,
                    blk2: u64::from(lblk),
                    ..PCtx::default()
                };
                if ask.fix(Code::ExtentHeaderInvalid, &ph) {
                    delete_entry(&mut top.buf, i);
                    top.dirty = true;
                    top.failed_csum = false;
                    acc.inode_modified = true;
                    continue;
                }
                top.i += 1;
                continue;
            }
            let child = child.unwrap_or_default();
            seen.insert(pblk);
            let failed_csum = fs.has_metadata_csum()
                && crate::format::extent::verify_extent_block_csum(seed, &child).is_err();
            let mut child_start = u64::from(lblk);
            if eh_entries(&child) > 0 {
                let first = entry_lblk(&child, 0);
                child_start = u64::from(first);
                if first != lblk {
                    let pi = PCtx {
                        ino,
                        blk: u64::from(lblk),
                        blk2: u64::from(first),
                        num: top.level,
                        ..PCtx::default()
                    };
                    if ask.fix(Code::ExtentIndexStartInvalid, &pi) {
                        set_entry_lblk(&mut top.buf, i, first);
                        top.dirty = true;
                        acc.inode_modified = true;
                    }
                }
            }
            let node_end = if i + 1 < n {
                u64::from(entry_lblk(&top.buf, i + 1))
            } else {
                top.node_end
            };
            let level = top.level + 1;
            stack.push(Frame {
                depth: eh_depth(&child),
                buf: child,
                blk: pblk,
                level,
                i: 0,
                start_block: child_start,
                end_block: last_lblk,
                node_end,
                dirty: false,
                failed_csum,
                try_repairs: next_try,
            });
            continue;
        }
        // A leaf extent.
        if acc.previous_block != 0 && acc.previous_block + 1 != pblk {
            acc.fragmented = true;
        }
        let mut lblk = u64::from(lblk);
        let mut last_lblk = last_lblk;
        if top.try_repairs && is_dir && acc.last_block + 1 < lblk as i64 {
            let mut new_lblk = (acc.last_block + 1) as u64;
            if fs.cluster_bits > 0 {
                // Keep the block's offset inside its cluster.
                let mask = (1u64 << fs.cluster_bits) - 1;
                new_lblk = ((new_lblk + mask) & !mask) | (pblk & mask);
            }
            let pc = PCtx {
                ino,
                blk: lblk,
                blk2: new_lblk,
                ..PCtx::default()
            };
            if ask.fix(Code::CollapseDblock, &pc) {
                set_entry_lblk(&mut top.buf, i, new_lblk as u32);
                top.dirty = true;
                top.failed_csum = false;
                acc.inode_modified = true;
                lblk = new_lblk;
                last_lblk = lblk + len - 1;
            }
        }
        if is_dir {
            for k in 0..len {
                acc.add_dir_block((lblk + k) as i64, pblk + k);
            }
        }
        acc.claim(pblk, len);
        acc.count_run(pblk, len, fs.cluster_bits);
        acc.last_block = last_lblk as i64;
        acc.previous_block = pblk + len - 1;
        top.start_block = last_lblk;
        if !is_dir && !uninit {
            acc.last_init_lblock = last_lblk as i64;
        }
        top.i += 1;
    }
}

/// The result of processing one pointer of a block map.
enum Ptr {
    Keep,
    Cleared,
    Abort,
}

struct MapWalk<'a, 'b> {
    env: &'a Env<'a>,
    ask: &'b mut dyn Ask,
    ino: u32,
    is_dir: bool,
    is_reg: bool,
    max_blocks: u64,
    acc: &'b mut BlockAcc,
    seen: HashSet<u64>,
}

impl MapWalk<'_, '_> {
    /// e2fsck's `process_block` for pointer `blk` at `blockcnt` (negative
    /// for mapping blocks), held in block `ref_block` (0: the inode).
    fn process(&mut self, blk: u64, blockcnt: i64, ref_block: u64) -> Ptr {
        let fs = self.env.fs;
        let acc = &mut *self.acc;
        if self.is_dir && blockcnt == 0 && blk == 0 {
            acc.add_dir_block(0, 0);
        }
        if blk == 0 {
            return Ptr::Keep;
        }
        if acc.previous_block != 0 && self.ino != RESIZE_INO && acc.previous_block + 1 != blk {
            acc.fragmented = true;
        }
        let mut problem = None;
        let log_bs = fs.sb.f.log_block_size;
        if self.is_dir && !self.env.largedir && blockcnt > (1i64 << (21u32.saturating_sub(log_bs)))
        {
            problem = Some(Code::ToobigDir);
        }
        if self.is_dir && acc.num_blocks + 1 >= self.max_blocks {
            problem = Some(Code::ToobigDir);
        }
        if self.is_reg && acc.num_blocks + 1 >= self.max_blocks {
            problem = Some(Code::ToobigReg);
        }
        if !self.is_dir && !self.is_reg && blockcnt > 0 {
            problem = Some(Code::ToobigSymlink);
        }
        if blk < fs.first_data_block || blk >= fs.blocks_count {
            problem = Some(Code::IllegalBlockNum);
        }
        if blockcnt < 0
            && self.ino != RESIZE_INO
            && blk < fs.blocks_count
            && self.env.block_meta.get(blk)
        {
            self.ask.fix(
                Code::CriticalMetadataCollision,
                &PCtx {
                    ino: self.ino,
                    blk,
                    ..PCtx::default()
                },
            );
            if self.env.writable {
                acc.restart = true;
            }
        }
        if let Some(code) = problem {
            acc.num_illegal += 1;
            if self.ino != RESIZE_INO && ref_block != 0 && self.env.block_meta.get(ref_block) {
                return Ptr::Cleared;
            }
            if acc.num_illegal.is_multiple_of(12)
                && self.ask.fix(Code::TooManyBadBlocks, &PCtx::ino(self.ino))
            {
                acc.clear = true;
                return Ptr::Abort;
            }
            let p = PCtx {
                ino: self.ino,
                blk,
                blkcount: Some(blockcnt),
                ..PCtx::default()
            };
            if self.ask.fix(code, &p) {
                acc.inode_modified = true;
                if code == Code::ToobigDir {
                    return Ptr::Cleared;
                }
                if self.is_dir && blockcnt >= 0 {
                    acc.add_dir_block(blockcnt, 0);
                }
                return Ptr::Cleared;
            }
            return Ptr::Keep;
        }
        if self.ino == RESIZE_INO {
            if blockcnt == -2 {
                acc.claim(blk, 1);
            }
            acc.num_blocks += 1;
        } else {
            acc.claim(blk, 1);
            if blockcnt >= 0 {
                acc.count_run(blk, 1, fs.cluster_bits);
            } else {
                acc.num_blocks += 1;
            }
        }
        if blockcnt >= 0 {
            acc.last_block = blockcnt;
        }
        acc.previous_block = blk;
        if self.is_dir && blockcnt >= 0 {
            acc.add_dir_block(blockcnt, blk);
        }
        Ptr::Keep
    }

    /// Walks an indirect block of `level` (1 = points to data) whose
    /// pointer is `ptr` (already processed). Returns false on abort.
    /// `base`: logical block of its first data block.
    fn walk_ind(&mut self, ptr: u64, level: u32, base: i64) -> bool {
        let fs = self.env.fs;
        if ptr < fs.first_data_block || ptr >= fs.blocks_count || !self.seen.insert(ptr) {
            return true;
        }
        let Some(b) = fs.block(ptr) else { return true };
        let mut buf = b.to_vec();
        let per = (fs.bs / 4) as i64;
        let span: i64 = match level {
            1 => 1,
            2 => per,
            _ => per * per,
        };
        let mut changed = false;
        for j in 0..(fs.bs / 4) {
            if self.ask.stopped() {
                return false;
            }
            let child = u64::from(get_u32(&buf, 4 * j).unwrap_or(0));
            let cnt = if level == 1 {
                base + j as i64
            } else {
                -(level as i64 - 1)
            };
            match self.process(child, cnt, ptr) {
                Ptr::Abort => return false,
                Ptr::Cleared => {
                    buf[4 * j..4 * j + 4].copy_from_slice(&[0; 4]);
                    changed = true;
                    continue;
                }
                Ptr::Keep => {}
            }
            if level > 1 && child != 0 && !self.walk_ind(child, level - 1, base + j as i64 * span) {
                return false;
            }
        }
        // Never over fixed metadata, except the resize inode's own
        // indirect blocks (the reserved GDT blocks; the merge checks).
        if changed && (self.ino == RESIZE_INO || !self.env.block_meta.get(ptr)) {
            self.acc.block_writes.push((ptr, buf));
        }
        true
    }
}

/// Walks a block map (`ext2fs_block_iterate3` + `process_block`).
/// Changes pointers in `raw` when fixed.
pub fn check_blockmap(
    env: &Env,
    ask: &mut dyn Ask,
    ino: u32,
    raw: &mut [u8],
    acc: &mut BlockAcc,
    is_dir: bool,
    is_reg: bool,
) {
    let fs = env.fs;
    let log_bs = fs.sb.f.log_block_size;
    let mut w = MapWalk {
        env,
        ask,
        ino,
        is_dir,
        is_reg,
        max_blocks: 1u64 << (31u32.saturating_sub(log_bs)),
        acc,
        seen: HashSet::new(),
    };
    let word = |raw: &[u8], i: usize| u64::from(get_u32(raw, 0x28 + 4 * i).unwrap_or(0));
    let per = (fs.bs / 4) as i64;
    for l in 0..12usize {
        match w.process(word(raw, l), l as i64, 0) {
            Ptr::Abort => return,
            Ptr::Cleared => {
                raw[0x28 + 4 * l..0x2c + 4 * l].copy_from_slice(&[0; 4]);
            }
            Ptr::Keep => {}
        }
    }
    let bases = [12i64, 12 + per, 12 + per + per * per];
    for (k, slot) in [12usize, 13, 14].into_iter().enumerate() {
        let ptr = word(raw, slot);
        if ptr == 0 {
            continue;
        }
        let level = k as u32 + 1;
        match w.process(ptr, -(level as i64), 0) {
            Ptr::Abort => return,
            Ptr::Cleared => {
                raw[0x28 + 4 * slot..0x2c + 4 * slot].copy_from_slice(&[0; 4]);
                continue;
            }
            Ptr::Keep => {}
        }
        if !w.walk_ind(ptr, level, bases[k]) {
            return;
        }
    }
}
