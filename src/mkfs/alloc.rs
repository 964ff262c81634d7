//! Block and inode bookkeeping while an image is built.
//!
//! Each group's block bitmap is materialised only when something is placed
//! in the group; an untouched group holds nothing but its own superblock
//! backup and GDT copies, which is exactly what the kernel and e2fsck
//! reconstruct for a BLOCK_UNINIT group, so on a 1 TiB image only a few
//! hundred bitmaps ever exist in memory. Inode bitmaps likewise.
//!
//! Allocation is first-fit from a goal block, returning the longest free run
//! at the first free block (up to the length asked for), so sequential
//! allocations come out contiguous.

use crate::format::bitmap;
use crate::format::geometry::Geometry;

/// Bookkeeping of one group.
#[derive(Debug, Clone, Default)]
pub struct GroupAlloc {
    /// Block bitmap (block_size bytes) once anything but base metadata is
    /// in the group.
    pub block_bitmap: Option<Vec<u8>>,
    /// Inode bitmap once an inode of the group is in use.
    pub inode_bitmap: Option<Vec<u8>>,
    pub free_blocks: u32,
    pub free_inodes: u32,
    pub used_dirs: u32,
    /// Highest used inode index + 1 (for bg_itable_unused).
    pub inodes_high_water: u32,
}

/// The allocator over all groups.
pub struct Allocator {
    geo: Geometry,
    pub groups: Vec<GroupAlloc>,
    /// Search start of the next allocation without an explicit goal.
    cursor: u64,
}

impl Allocator {
    pub fn new(geo: &Geometry) -> Self {
        let groups = (0..geo.groups_count)
            .map(|g| GroupAlloc {
                free_blocks: geo.blocks_in_group(g)
                    - geo.base_meta_blocks(g).min(geo.blocks_in_group(g)),
                free_inodes: geo.inodes_per_group,
                ..GroupAlloc::default()
            })
            .collect();
        Allocator {
            geo: geo.clone(),
            groups,
            cursor: geo.first_data_block,
        }
    }

    /// The bitmap an untouched group would have: base metadata used, and
    /// the bits past a short last group set.
    pub fn initial_block_bitmap(&self, g: u32) -> Vec<u8> {
        let mut bm = vec![0u8; self.geo.block_size as usize];
        let base = self.geo.base_meta_blocks(g) as usize;
        bitmap::set_range(&mut bm, 0, base);
        bitmap::set_padding(&mut bm, self.geo.blocks_in_group(g) as usize);
        bm
    }

    fn materialise(&mut self, g: u32) -> &mut Vec<u8> {
        if self.groups[g as usize].block_bitmap.is_none() {
            let bm = self.initial_block_bitmap(g);
            self.groups[g as usize].block_bitmap = Some(bm);
        }
        self.groups[g as usize]
            .block_bitmap
            .as_mut()
            .expect("just materialised")
    }

    /// Whether a block is in use.
    pub fn is_used(&self, block: u64) -> bool {
        if block < self.geo.first_data_block || block >= self.geo.blocks_count {
            return true;
        }
        let g = self.geo.group_of_block(block);
        let idx = (block - self.geo.group_first_block(g)) as usize;
        match &self.groups[g as usize].block_bitmap {
            Some(bm) => bitmap::test_bit(bm, idx),
            None => idx < self.geo.base_meta_blocks(g) as usize,
        }
    }

    /// Marks `len` blocks from `start` used; they must be free.
    pub fn mark_used(&mut self, start: u64, len: u64) {
        let mut b = start;
        let end = start + len;
        while b < end {
            let g = self.geo.group_of_block(b);
            let gfirst = self.geo.group_first_block(g);
            let gend = (gfirst + u64::from(self.geo.blocks_in_group(g))).min(end);
            let (i0, i1) = ((b - gfirst) as usize, (gend - gfirst) as usize);
            let bm = self.materialise(g);
            let newly = (i1 - i0) - count_set_range(bm, i0, i1);
            bitmap::set_range(bm, i0, i1);
            let ga = &mut self.groups[g as usize];
            ga.free_blocks -= u32::try_from(newly).unwrap_or(0);
            b = gend;
        }
    }

    /// First free block at or after `goal` (wrapping once), and the length
    /// of the free run there, capped at `max_len`.
    fn find_free_run(&self, goal: u64, max_len: u64) -> Option<(u64, u64)> {
        let first = self.geo.first_data_block;
        let total = self.geo.blocks_count;
        let goal = goal.clamp(first, total - 1);
        for (from, to) in [(goal, total), (first, goal)] {
            let mut b = from;
            while b < to {
                let g = self.geo.group_of_block(b);
                let gfirst = self.geo.group_first_block(g);
                let gend = (gfirst + u64::from(self.geo.blocks_in_group(g))).min(to);
                if self.groups[g as usize].free_blocks == 0 {
                    b = gend;
                    continue;
                }
                let start_idx = (b - gfirst) as usize;
                let found = match &self.groups[g as usize].block_bitmap {
                    Some(bm) => bitmap::find_first_clear(bm, start_idx, (gend - gfirst) as usize),
                    None => {
                        let base = self.geo.base_meta_blocks(g) as usize;
                        Some(start_idx.max(base)).filter(|&i| (i as u64) < gend - gfirst)
                    }
                };
                if let Some(i) = found {
                    let start = gfirst + i as u64;
                    return Some((start, self.free_run_len(start, max_len)));
                }
                b = gend;
            }
        }
        None
    }

    /// Length of the run of free blocks from `start` (across group
    /// boundaries), capped at `max_len`. Works a group at a time: an
    /// untouched group is free past its base metadata, a materialised
    /// bitmap is scanned a byte at a time where it is all clear.
    fn free_run_len(&self, start: u64, max_len: u64) -> u64 {
        let mut len = 0;
        let mut b = start;
        while len < max_len && b < self.geo.blocks_count {
            let g = self.geo.group_of_block(b);
            let idx = (b - self.geo.group_first_block(g)) as usize;
            let in_group = self.geo.blocks_in_group(g) as usize;
            let limit = (in_group - idx).min(usize::try_from(max_len - len).unwrap_or(usize::MAX));
            let n = match &self.groups[g as usize].block_bitmap {
                Some(bm) => count_clear(bm, idx, idx + limit),
                None if idx < self.geo.base_meta_blocks(g) as usize => 0,
                None => limit,
            };
            len += n as u64;
            b += n as u64;
            if n < limit {
                break;
            }
        }
        len
    }

    /// Allocates up to `want` contiguous blocks at or after `goal`; returns
    /// (first block, count) or `None` when the file system is full.
    pub fn alloc_run(&mut self, goal: Option<u64>, want: u64) -> Option<(u64, u64)> {
        let goal = goal.unwrap_or(self.cursor);
        let (start, len) = self.find_free_run(goal, want.max(1))?;
        self.mark_used(start, len);
        self.cursor = start + len;
        Some((start, len))
    }

    /// Allocates exactly `n` contiguous blocks (first fit from `goal`).
    pub fn alloc_contiguous(&mut self, goal: u64, n: u64) -> Option<u64> {
        let mut at = goal;
        let mut wrapped = false;
        loop {
            let (start, len) = self.find_free_run(at, n)?;
            if len >= n {
                self.mark_used(start, n);
                return Some(start);
            }
            let next = start + len;
            if next >= self.geo.blocks_count {
                if wrapped {
                    return None;
                }
                wrapped = true;
                at = self.geo.first_data_block;
            } else {
                if wrapped && next >= goal {
                    return None;
                }
                at = next;
            }
        }
    }

    /// Allocates one block near `goal`.
    pub fn alloc_block(&mut self, goal: Option<u64>) -> Option<u64> {
        self.alloc_run(goal, 1).map(|(b, _)| b)
    }

    /// Marks inode `ino` used (and counts a directory).
    pub fn mark_inode_used(&mut self, ino: u32, is_dir: bool) {
        let (g, idx) = self.geo.inode_location(ino);
        let ipg = self.geo.inodes_per_group as usize;
        let bs = self.geo.block_size as usize;
        let ga = &mut self.groups[g as usize];
        let bm = ga.inode_bitmap.get_or_insert_with(|| {
            let mut bm = vec![0u8; bs];
            bitmap::set_padding(&mut bm, ipg);
            bm
        });
        if !bitmap::set_bit(bm, idx as usize) {
            ga.free_inodes -= 1;
            if is_dir {
                ga.used_dirs += 1;
            }
            ga.inodes_high_water = ga.inodes_high_water.max(idx + 1);
        }
    }

    /// The next free inode number at or after `from`, marking it used.
    pub fn alloc_inode(&mut self, from: u32, is_dir: bool) -> Option<u32> {
        let total = self.geo.inodes_per_group * self.geo.groups_count;
        let mut ino = from.max(1);
        while ino <= total {
            let (g, idx) = self.geo.inode_location(ino);
            let ga = &self.groups[g as usize];
            if ga.free_inodes == 0 {
                ino = (g + 1) * self.geo.inodes_per_group + 1;
                continue;
            }
            let free = match &ga.inode_bitmap {
                Some(bm) => !bitmap::test_bit(bm, idx as usize),
                None => true,
            };
            if free {
                self.mark_inode_used(ino, is_dir);
                return Some(ino);
            }
            ino += 1;
        }
        None
    }

    pub fn free_blocks_total(&self) -> u64 {
        self.groups.iter().map(|g| u64::from(g.free_blocks)).sum()
    }

    pub fn free_inodes_total(&self) -> u64 {
        self.groups.iter().map(|g| u64::from(g.free_inodes)).sum()
    }
}

/// Number of set bits in `start..end`, whole bytes at a time where possible.
fn count_set_range(bitmap: &[u8], start: usize, end: usize) -> usize {
    let mut n = 0;
    let mut i = start;
    while i < end {
        if i.is_multiple_of(8) && i + 8 <= end {
            n += bitmap[i / 8].count_ones() as usize;
            i += 8;
        } else {
            n += usize::from(bitmap::test_bit(bitmap, i));
            i += 1;
        }
    }
    n
}

/// Number of clear bits from `start` up to the first set bit or `end`.
fn count_clear(bitmap: &[u8], start: usize, end: usize) -> usize {
    let mut i = start;
    while i < end {
        if i.is_multiple_of(8) && i + 8 <= end && bitmap[i / 8] == 0 {
            i += 8;
        } else if bitmap::test_bit(bitmap, i) {
            break;
        } else {
            i += 1;
        }
    }
    i - start
}

#[cfg(test)]
mod tests {
    use super::super::options::{resolve_features, FsType, MkfsOptions};
    use super::super::plan::plan;
    use super::*;

    fn geo(bytes: u64) -> Geometry {
        let f = resolve_features(FsType::Ext4, &[]).unwrap();
        plan(&MkfsOptions::default(), f, bytes, [1; 16], [2; 16], 0)
            .unwrap()
            .geo
    }

    #[test]
    fn allocations_skip_backup_superblocks_and_stay_contiguous() {
        let g = geo(300 << 20);
        let mut a = Allocator::new(&g);
        // Group 1 (blocks 8193..) starts with a backup superblock + GDT.
        let start = g.group_first_block(1);
        let (b, n) = a.alloc_run(Some(start), 10).unwrap();
        assert_eq!(b, start + u64::from(g.base_meta_blocks(1)));
        assert_eq!(n, 10);
        let (b2, _) = a.alloc_run(None, 5).unwrap();
        assert_eq!(b2, b + 10);
        let before = a.free_blocks_total();
        let big = a.alloc_contiguous(start, 20_000).unwrap();
        assert!(big > b2);
        assert_eq!(a.free_blocks_total(), before - 20_000);
    }

    #[test]
    fn free_runs_cross_groups_and_stop_at_used_blocks() {
        let g = geo(300 << 20);
        let mut a = Allocator::new(&g);
        // Group 2 (no backup superblock) is all free: a run from the end of
        // group 1 continues into it.
        let g2 = g.group_first_block(2);
        assert_eq!(a.free_run_len(g2 - 10, 100), 100);
        a.mark_used(g2 + 50, 1);
        assert_eq!(a.free_run_len(g2 - 10, 100), 60);
        assert_eq!(a.free_run_len(g2 + 50, 100), 0);
        assert_eq!(count_clear(&[0, 0, 0x10], 0, 24), 20);
        assert_eq!(count_clear(&[0xff, 0], 3, 16), 0);
        assert_eq!(count_clear(&[0x0f, 0], 4, 16), 12);
        assert_eq!(count_set_range(&[0xff, 0x0f, 0x01], 4, 17), 9);
    }

    #[test]
    fn inodes_are_handed_out_in_order() {
        let g = geo(8 << 20);
        let mut a = Allocator::new(&g);
        for i in 1..=11 {
            a.mark_inode_used(i, i == 2);
        }
        assert_eq!(a.alloc_inode(11, false), Some(12));
        assert_eq!(a.groups[0].used_dirs, 1);
        assert_eq!(a.groups[0].free_inodes, g.inodes_per_group - 12);
    }
}
