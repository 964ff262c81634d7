//! File mappings after pass 1: enumerate the blocks of an inode (data runs,
//! extent tree blocks, indirect blocks) and rewrite pointers (for cloning
//! blocks claimed twice and for extending directories).
//!
//! Lenient: pointers outside the file system are skipped, never followed;
//! each tree block is visited at most once; depth and work are bounded.
//! Pass 1 has already reported and (with `-y`) removed bad pointers.

use std::collections::HashSet;

use crate::format::bytes::{get_u16, get_u32};
use crate::format::extent::set_extent_block_csum;

use super::fs::Fs;
use super::ino::{fl, InodeRead};
use super::pass1::has_valid_blocks;
use super::pass1_blocks::{extent_header_ok, MAX_EXTENT_DEPTH};

/// One mapped run of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub lblk: u64,
    pub pblk: u64,
    pub len: u64,
    pub uninit: bool,
}

/// Every block an inode uses.
#[derive(Debug, Default, Clone)]
pub struct Mapping {
    /// Data runs in logical order.
    pub runs: Vec<Run>,
    /// Tree / indirect blocks.
    pub meta: Vec<u64>,
}

impl Mapping {
    /// The physical block of logical block `l`.
    pub fn bmap(&self, l: u64) -> Option<u64> {
        self.runs
            .iter()
            .find(|r| l >= r.lblk && l < r.lblk + r.len)
            .map(|r| r.pblk + (l - r.lblk))
    }

    /// Last logical block + 1.
    pub fn end(&self) -> u64 {
        self.runs.iter().map(|r| r.lblk + r.len).max().unwrap_or(0)
    }
}

fn ext_entries(n: &[u8]) -> usize {
    usize::from(get_u16(n, 2).unwrap_or(0))
}
fn ext_depth(n: &[u8]) -> u16 {
    get_u16(n, 6).unwrap_or(0)
}

/// Reads the mapping of `raw` (inode `ino`), data blocks up to
/// `max_blocks` logical blocks (further runs are dropped).
pub fn mapping(fs: &Fs, raw: &[u8]) -> Mapping {
    let mut m = Mapping::default();
    if !has_valid_blocks(fs, raw) {
        return m;
    }
    if raw.has_flag(fl::EXTENTS) {
        let mut seen = HashSet::new();
        let mut stack: Vec<(Vec<u8>, usize)> = vec![(raw.i_block().to_vec(), 0)];
        if !extent_header_ok(&stack[0].0) {
            return m;
        }
        let mut budget = fs.blocks_count.min(1 << 24);
        while let Some((node, i)) = stack.last_mut() {
            let n = ext_entries(node);
            if *i >= n {
                stack.pop();
                continue;
            }
            let o = 12 + 12 * *i;
            *i += 1;
            if ext_depth(node) == 0 {
                let lblk = u64::from(get_u32(node, o).unwrap_or(0));
                let rl = get_u16(node, o + 4).unwrap_or(0);
                let (len, uninit) = if rl > 32768 {
                    (u64::from(rl - 32768), true)
                } else {
                    (u64::from(rl), false)
                };
                let hi = u64::from(get_u16(node, o + 6).unwrap_or(0));
                let lo = u64::from(get_u32(node, o + 8).unwrap_or(0));
                let pblk = hi << 32 | lo;
                if len > 0 && fs.valid_block(pblk) && pblk + len <= fs.blocks_count {
                    m.runs.push(Run {
                        lblk,
                        pblk,
                        len,
                        uninit,
                    });
                }
            } else {
                let depth = ext_depth(node);
                let lo = u64::from(get_u32(node, o + 4).unwrap_or(0));
                let hi = u64::from(get_u16(node, o + 8).unwrap_or(0));
                let child = hi << 32 | lo;
                budget = budget.saturating_sub(1);
                if !fs.valid_block(child) || !seen.insert(child) || budget == 0 {
                    continue;
                }
                let Some(b) = fs.block(child) else { continue };
                if !extent_header_ok(b)
                    || ext_depth(b) + 1 != depth
                    || stack.len() > usize::from(MAX_EXTENT_DEPTH)
                {
                    continue;
                }
                m.meta.push(child);
                stack.push((b.to_vec(), 0));
            }
        }
        m.runs.sort_by_key(|r| r.lblk);
        return m;
    }
    // Block map.
    let per = (fs.bs / 4) as u64;
    let push = |m: &mut Mapping, l: u64, b: u64| {
        if let Some(last) = m.runs.last_mut() {
            if last.lblk + last.len == l && last.pblk + last.len == b {
                last.len += 1;
                return;
            }
        }
        m.runs.push(Run {
            lblk: l,
            pblk: b,
            len: 1,
            uninit: false,
        });
    };
    for l in 0..12u64 {
        let b = u64::from(raw.block_word(l as usize));
        if b != 0 && fs.valid_block(b) {
            push(&mut m, l, b);
        }
    }
    let mut seen = HashSet::new();
    let bases = [12u64, 12 + per, 12 + per + per * per];
    for (k, slot) in [12usize, 13, 14].into_iter().enumerate() {
        let top = u64::from(raw.block_word(slot));
        if top == 0 || !fs.valid_block(top) {
            continue;
        }
        // (block, level, base)
        let mut stack = vec![(top, k as u32 + 1, bases[k])];
        while let Some((b, level, base)) = stack.pop() {
            if !seen.insert(b) {
                continue;
            }
            let Some(data) = fs.block(b) else { continue };
            m.meta.push(b);
            let span = match level {
                1 => 1,
                2 => per,
                _ => per * per,
            };
            let mut children = Vec::new();
            for j in 0..per as usize {
                let c = u64::from(get_u32(data, 4 * j).unwrap_or(0));
                if c == 0 || !fs.valid_block(c) {
                    continue;
                }
                let l = base + j as u64 * span;
                if level == 1 {
                    push(&mut m, l, c);
                } else {
                    children.push((c, level - 1, l));
                }
            }
            children.reverse();
            stack.extend(children);
        }
    }
    m
}

/// Rewrites the pointers of `raw`'s mapping (inode `ino`): `f(block,
/// is_meta)` returns a replacement for a data block or a tree/indirect
/// block. Data blocks are offered one by one; in extent trees a run whose
/// blocks are not all replaced consecutively is split only when the node
/// has room, else left unchanged (the caller then sees `false`).
/// Modified blocks are written through `write`. Returns whether every
/// requested replacement could be made.
pub fn remap(
    fs: &Fs,
    ino: u32,
    raw: &mut [u8],
    f: &mut dyn FnMut(u64, bool) -> Option<u64>,
    write: &mut dyn FnMut(u64, Vec<u8>),
) -> bool {
    if !has_valid_blocks(fs, raw) {
        return true;
    }
    if raw.has_flag(fl::EXTENTS) {
        let seed = fs.inode_seed(ino, raw.generation());
        let csum = fs.has_metadata_csum();
        let root = raw.i_block().to_vec();
        let mut ok = true;
        let new_root = remap_extent_node(fs, root, 0, seed, csum, f, write, &mut ok, 0);
        raw[0x28..0x64].copy_from_slice(&new_root[..60]);
        return ok;
    }
    let per = fs.bs / 4;
    for l in 0..12usize {
        let b = u64::from(raw.block_word(l));
        if b != 0 && fs.valid_block(b) {
            if let Some(nb) = f(b, false) {
                raw[0x28 + 4 * l..0x2c + 4 * l].copy_from_slice(&(nb as u32).to_le_bytes());
            }
        }
    }
    for (k, slot) in [12usize, 13, 14].into_iter().enumerate() {
        let top = u64::from(raw.block_word(slot));
        if top == 0 || !fs.valid_block(top) {
            continue;
        }
        let new_top = remap_ind(fs, top, k as u32 + 1, per, f, write);
        if new_top != top {
            raw[0x28 + 4 * slot..0x2c + 4 * slot].copy_from_slice(&(new_top as u32).to_le_bytes());
        }
    }
    true
}

fn remap_ind(
    fs: &Fs,
    b: u64,
    level: u32,
    per: usize,
    f: &mut dyn FnMut(u64, bool) -> Option<u64>,
    write: &mut dyn FnMut(u64, Vec<u8>),
) -> u64 {
    let Some(data) = fs.block(b) else { return b };
    let mut buf = data.to_vec();
    let mut changed = false;
    for j in 0..per {
        let c = u64::from(get_u32(&buf, 4 * j).unwrap_or(0));
        if c == 0 || !fs.valid_block(c) {
            continue;
        }
        let nc = if level == 1 {
            f(c, false).unwrap_or(c)
        } else {
            remap_ind(fs, c, level - 1, per, f, write)
        };
        if nc != c {
            buf[4 * j..4 * j + 4].copy_from_slice(&(nc as u32).to_le_bytes());
            changed = true;
        }
    }
    let target = f(b, true).unwrap_or(b);
    if changed || target != b {
        write(target, buf);
    }
    target
}

#[allow(clippy::too_many_arguments)]
fn remap_extent_node(
    fs: &Fs,
    mut node: Vec<u8>,
    _blk: u64,
    seed: u32,
    csum: bool,
    f: &mut dyn FnMut(u64, bool) -> Option<u64>,
    write: &mut dyn FnMut(u64, Vec<u8>),
    ok: &mut bool,
    depth_guard: u32,
) -> Vec<u8> {
    let n = ext_entries(&node);
    let depth = ext_depth(&node);
    let cap = (node.len() - 12) / 12;
    let mut i = 0;
    while i < ext_entries(&node) && i < cap {
        let o = 12 + 12 * i;
        if depth == 0 {
            let lblk = get_u32(&node, o).unwrap_or(0);
            let rl = get_u16(&node, o + 4).unwrap_or(0);
            let (len, uninit) = if rl > 32768 {
                (rl - 32768, true)
            } else {
                (rl, false)
            };
            let hi = u64::from(get_u16(&node, o + 6).unwrap_or(0));
            let lo = u64::from(get_u32(&node, o + 8).unwrap_or(0));
            let pblk = hi << 32 | lo;
            if len == 0 || !fs.valid_block(pblk) || pblk + u64::from(len) > fs.blocks_count {
                i += 1;
                continue;
            }
            // Ask for each block; collect the new numbers.
            let news: Vec<u64> = (0..u64::from(len))
                .map(|k| f(pblk + k, false).unwrap_or(pblk + k))
                .collect();
            // Split into maximal contiguous pieces.
            let mut pieces: Vec<(u32, u64, u16)> = Vec::new();
            for (k, &nb) in news.iter().enumerate() {
                let l = lblk + k as u32;
                match pieces.last_mut() {
                    Some(p)
                        if p.1 + u64::from(p.2) == nb
                            && u64::from(p.0) + u64::from(p.2) == u64::from(l) =>
                    {
                        p.2 += 1
                    }
                    _ => pieces.push((l, nb, 1)),
                }
            }
            let cur = ext_entries(&node);
            if pieces.len() == 1 {
                set_leaf(&mut node, i, pieces[0], uninit);
                i += 1;
            } else if cur + pieces.len() - 1 <= cap {
                // Shift the following entries to make room.
                let extra = pieces.len() - 1;
                let end = 12 + 12 * cur;
                node.copy_within(o + 12..end, o + 12 + 12 * extra);
                for (k, piece) in pieces.iter().enumerate() {
                    set_leaf(&mut node, i + k, *piece, uninit);
                }
                node[2..4].copy_from_slice(&((cur + extra) as u16).to_le_bytes());
                i += pieces.len();
            } else {
                *ok = false;
                i += 1;
            }
        } else {
            let lo = u64::from(get_u32(&node, o + 4).unwrap_or(0));
            let hi = u64::from(get_u16(&node, o + 8).unwrap_or(0));
            let child = hi << 32 | lo;
            if fs.valid_block(child) && depth_guard < u32::from(MAX_EXTENT_DEPTH) {
                if let Some(cb) = fs.block(child) {
                    if extent_header_ok(cb) && ext_depth(cb) + 1 == depth {
                        let cbuf = cb.to_vec();
                        let mut newc = remap_extent_node(
                            fs,
                            cbuf.clone(),
                            child,
                            seed,
                            csum,
                            f,
                            write,
                            ok,
                            depth_guard + 1,
                        );
                        let target = f(child, true).unwrap_or(child);
                        if newc != cbuf || target != child {
                            if csum {
                                let _ = set_extent_block_csum(seed, &mut newc);
                            }
                            write(target, newc);
                        }
                        if target != child {
                            node[o + 4..o + 8]
                                .copy_from_slice(&((target & 0xffff_ffff) as u32).to_le_bytes());
                            node[o + 8..o + 10]
                                .copy_from_slice(&((target >> 32) as u16).to_le_bytes());
                        }
                    }
                }
            }
            i += 1;
        }
    }
    let _ = n;
    node
}

fn set_leaf(node: &mut [u8], i: usize, piece: (u32, u64, u16), uninit: bool) {
    let o = 12 + 12 * i;
    let (l, b, len) = piece;
    let rl = if uninit { len + 32768 } else { len };
    node[o..o + 4].copy_from_slice(&l.to_le_bytes());
    node[o + 4..o + 6].copy_from_slice(&rl.to_le_bytes());
    node[o + 6..o + 8].copy_from_slice(&((b >> 32) as u16).to_le_bytes());
    node[o + 8..o + 12].copy_from_slice(&((b & 0xffff_ffff) as u32).to_le_bytes());
}
