//! The mounted volume: the image, the dirty block cache, the superblock and
//! the group descriptors, and block and inode allocation over them.
//!
//! Group descriptors live in memory; a changed group is remembered in
//! `dirty_groups` and its descriptor (with fresh bitmap checksums and its own
//! checksum) is encoded into the GDT block in the cache at
//! [`Volume::commit_metadata`]. Bitmaps are read and changed through the
//! cache like any metadata block. Groups still marked BLOCK_UNINIT or
//! INODE_UNINIT get their bitmap built (base metadata marked, padding set)
//! the first time something is allocated in them.
//!
//! Allocation is goal-based: a block allocation starts at a goal (the block
//! after the file's last one, or the inode's group) and takes the first free
//! block from there; a run allocation extends it as far as wanted, so
//! sequential writes get contiguous extents.

use std::collections::BTreeSet;

use super::cache::{BlockCache, BlockKind};
use super::error::{FsError, FsResult};
use crate::device::Image;
use crate::format::bitmap;
use crate::format::features::Features;
use crate::format::geometry::Geometry;
use crate::format::group_desc::{
    set_group_desc_csum, verify_group_desc_csum, GroupDesc, BG_BLOCK_UNINIT, BG_INODE_UNINIT,
    BG_INODE_ZEROED,
};
use crate::format::superblock::{Superblock, SUPERBLOCK_SIZE};

/// The mounted volume.
pub struct Volume {
    pub img: Image,
    pub cache: BlockCache,
    pub sb: Superblock,
    pub geo: Geometry,
    pub feat: Features,
    pub descs: Vec<GroupDesc>,
    dirty_groups: BTreeSet<u32>,
    /// crc32c seed when metadata_csum is on.
    pub csum_seed: Option<u32>,
    pub read_only: bool,
    /// Blocks promised to the write-back of pending changes (extent trees,
    /// indirect blocks, directory blocks): operations may not allocate
    /// them, so write-back never runs out of space for what was accepted.
    pub meta_reserve: u64,
}

/// Blocks kept free beyond the reservation for the tree growth a write's
/// new extents may cause before their inode's estimate is updated.
const ALLOC_SLACK: u64 = 8;

impl Volume {
    /// Reads the superblock and descriptors of `img`. Feature checks are the
    /// caller's (see `Fs::mount`).
    pub fn load(img: Image, read_only: bool) -> FsResult<Volume> {
        if img.len() < (1024 + SUPERBLOCK_SIZE) as u64 {
            return Err(FsError::new(
                libc::EINVAL,
                "image too small for a superblock",
            ));
        }
        let sb_bytes = img.checked(1024, SUPERBLOCK_SIZE)?;
        let sb = Superblock::parse(sb_bytes)?;
        let geo = Geometry::new(&sb);
        let feat = sb.features();
        let needed = geo.blocks_count.checked_mul(u64::from(geo.block_size));
        if needed.is_none_or(|n| n > img.len()) {
            return Err(FsError::new(
                libc::EINVAL,
                format!(
                    "the superblock says {} blocks of {} bytes but the image has {} bytes",
                    geo.blocks_count,
                    geo.block_size,
                    img.len()
                ),
            ));
        }
        let bs = geo.block_size as usize;
        let ds = geo.desc_size as usize;
        let mut descs = Vec::with_capacity(geo.groups_count as usize);
        let seed = sb.csum_seed();
        for g in 0..geo.groups_count {
            let i = g / geo.descs_per_block;
            let blk = geo.gdt_block_location(i);
            let off = blk as usize * bs + (g % geo.descs_per_block) as usize * ds;
            if (off + ds) as u64 > img.len() {
                return Err(FsError::corrupt(format!(
                    "group descriptor {g} beyond the image"
                )));
            }
            let raw = img.checked(off, ds)?;
            if !verify_group_desc_csum(&feat, seed, &sb.f.uuid, g, raw) {
                return Err(FsError::corrupt(format!(
                    "group descriptor {g} checksum mismatch"
                )));
            }
            let d = GroupDesc::parse(raw, ds)?;
            for (what, b) in [
                ("block bitmap", d.block_bitmap),
                ("inode bitmap", d.inode_bitmap),
                ("inode table", d.inode_table),
            ] {
                if b < geo.first_data_block || b >= geo.blocks_count {
                    return Err(FsError::corrupt(format!(
                        "group {g}: {what} at invalid block {b}"
                    )));
                }
            }
            descs.push(d);
        }
        let csum_seed = feat.has_metadata_csum().then_some(seed);
        let cache = BlockCache::new(bs, geo.blocks_count);
        Ok(Volume {
            img,
            cache,
            sb,
            geo,
            feat,
            descs,
            dirty_groups: BTreeSet::new(),
            csum_seed,
            read_only,
            meta_reserve: 0,
        })
    }

    pub fn block_size(&self) -> usize {
        self.geo.block_size as usize
    }

    /// Current content of a block.
    pub fn read_block(&self, blk: u64) -> FsResult<&[u8]> {
        self.cache.read(&self.img, blk)
    }

    /// A block to modify in place (copied from the image on first use).
    pub fn write_block(&mut self, blk: u64, kind: BlockKind) -> FsResult<&mut [u8]> {
        if self.read_only {
            return Err(FsError::rofs());
        }
        self.cache.write(&self.img, blk, kind)
    }

    /// A newly allocated block, zero-filled.
    pub fn new_block(&mut self, blk: u64, kind: BlockKind) -> FsResult<&mut [u8]> {
        if self.read_only {
            return Err(FsError::rofs());
        }
        self.cache.write_new(blk, kind)
    }

    fn mark_group(&mut self, g: u32) {
        self.dirty_groups.insert(g);
    }

    /// The bitmap a BLOCK_UNINIT group implicitly has.
    fn init_block_bitmap(&self, g: u32) -> Vec<u8> {
        let geo = &self.geo;
        let mut bm = vec![0u8; geo.block_size as usize];
        bitmap::set_range(&mut bm, 0, geo.base_meta_blocks(g) as usize);
        let first = geo.group_first_block(g);
        let end = first + u64::from(geo.blocks_in_group(g));
        for d in &self.descs {
            let mut mark = |b: u64, n: u64| {
                for x in b..b + n {
                    if x >= first && x < end {
                        bitmap::set_bit(&mut bm, (x - first) as usize);
                    }
                }
            };
            mark(d.block_bitmap, 1);
            mark(d.inode_bitmap, 1);
            mark(d.inode_table, u64::from(geo.inode_table_blocks));
        }
        bitmap::set_padding(&mut bm, geo.blocks_in_group(g) as usize);
        bm
    }

    /// The block bitmap of group `g`, ready to modify (initialised first if
    /// the group was BLOCK_UNINIT).
    fn block_bitmap_mut(&mut self, g: u32) -> FsResult<&mut [u8]> {
        let d = &self.descs[g as usize];
        let loc = d.block_bitmap;
        if d.has_flag(BG_BLOCK_UNINIT) {
            let bm = self.init_block_bitmap(g);
            self.new_block(loc, BlockKind::Meta)?.copy_from_slice(&bm);
            self.descs[g as usize].flags &= !BG_BLOCK_UNINIT;
            self.mark_group(g);
        }
        self.write_block(loc, BlockKind::Meta)
    }

    fn block_in_use(&self, blk: u64) -> FsResult<bool> {
        let g = self.geo.group_of_block(blk);
        let d = self.descs.get(g as usize).ok_or_else(FsError::inval)?;
        let idx = (blk - self.geo.group_first_block(g)) as usize;
        if d.has_flag(BG_BLOCK_UNINIT) {
            return Ok(bitmap::test_bit(&self.init_block_bitmap(g), idx));
        }
        Ok(bitmap::test_bit(self.read_block(d.block_bitmap)?, idx))
    }

    /// Free blocks in all groups.
    pub fn free_blocks_total(&self) -> u64 {
        self.descs
            .iter()
            .map(|d| u64::from(d.free_blocks_count))
            .sum()
    }

    /// Allocates up to `want` contiguous blocks for file data, first fit from
    /// `goal`, leaving the write-back reservation alone. Returns (first,
    /// count); ENOSPC when nothing is free.
    pub fn alloc_blocks(&mut self, goal: u64, want: u32) -> FsResult<(u64, u32)> {
        let usable = self
            .free_blocks_total()
            .saturating_sub(self.meta_reserve + ALLOC_SLACK);
        if usable == 0 {
            return Err(FsError::nospc());
        }
        let want = u32::try_from(u64::from(want).min(usable)).unwrap_or(want);
        self.alloc_blocks_any(goal, want)
    }

    /// Allocation for write-back: may use the reservation.
    pub fn alloc_blocks_wb(&mut self, goal: u64, want: u32) -> FsResult<(u64, u32)> {
        self.alloc_blocks_any(goal, want)
    }

    fn alloc_blocks_any(&mut self, goal: u64, want: u32) -> FsResult<(u64, u32)> {
        if self.read_only {
            return Err(FsError::rofs());
        }
        let geo = self.geo.clone();
        let goal = goal.clamp(geo.first_data_block, geo.blocks_count - 1);
        let g0 = geo.group_of_block(goal);
        let n = geo.groups_count;
        for step in 0..=n {
            let g = (g0 + step) % n;
            if self.descs[g as usize].free_blocks_count == 0 {
                continue;
            }
            let first = geo.group_first_block(g);
            let in_group = geo.blocks_in_group(g) as usize;
            let start_idx = if step == 0 {
                (goal - first) as usize
            } else {
                0
            };
            let found = {
                let bm = self.block_bitmap_mut(g)?;
                bitmap::find_first_clear(bm, start_idx, in_group).or_else(|| {
                    if step == n {
                        bitmap::find_first_clear(bm, 0, start_idx)
                    } else {
                        None
                    }
                })
            };
            let Some(idx) = found else { continue };
            let bm = self.block_bitmap_mut(g)?;
            let mut len = 0usize;
            while len < want as usize && idx + len < in_group && !bitmap::test_bit(bm, idx + len) {
                bitmap::set_bit(bm, idx + len);
                len += 1;
            }
            let d = &mut self.descs[g as usize];
            d.free_blocks_count = d.free_blocks_count.saturating_sub(len as u32);
            self.mark_group(g);
            return Ok((first + idx as u64, len as u32));
        }
        Err(FsError::nospc())
    }

    /// Frees `count` blocks from `start` (they must be in use).
    pub fn free_blocks(&mut self, start: u64, count: u64) -> FsResult<()> {
        let mut b = start;
        let end = start + count;
        while b < end {
            if b < self.geo.first_data_block || b >= self.geo.blocks_count {
                return Err(FsError::corrupt(format!("freeing invalid block {b}")));
            }
            let g = self.geo.group_of_block(b);
            let first = self.geo.group_first_block(g);
            let gend = (first + u64::from(self.geo.blocks_in_group(g))).min(end);
            let mut freed = 0u32;
            {
                let bm = self.block_bitmap_mut(g)?;
                for x in b..gend {
                    if bitmap::clear_bit(bm, (x - first) as usize) {
                        freed += 1;
                    }
                }
            }
            for x in b..gend {
                self.cache.discard(x);
            }
            if freed != (gend - b) as u32 {
                log::warn!("freeing blocks {b}..{gend}: some were already free");
            }
            let d = &mut self.descs[g as usize];
            d.free_blocks_count += freed;
            self.mark_group(g);
            b = gend;
        }
        Ok(())
    }

    /// Whether block `blk` is allocated (for checks).
    pub fn is_block_used(&self, blk: u64) -> FsResult<bool> {
        self.block_in_use(blk)
    }

    /// Allocates an inode, preferring `goal_group`; directories are spread
    /// to the group with the most free inodes and blocks when `spread`.
    pub fn alloc_inode(&mut self, goal_group: u32, is_dir: bool, spread: bool) -> FsResult<u32> {
        if self.read_only {
            return Err(FsError::rofs());
        }
        let n = self.geo.groups_count;
        let ipg = self.geo.inodes_per_group;
        let start = if spread {
            let avg_free_blocks = self
                .descs
                .iter()
                .map(|d| u64::from(d.free_blocks_count))
                .sum::<u64>()
                / u64::from(n);
            (0..n)
                .filter(|&g| u64::from(self.descs[g as usize].free_blocks_count) >= avg_free_blocks)
                .max_by_key(|&g| {
                    (
                        self.descs[g as usize].free_inodes_count,
                        std::cmp::Reverse(g),
                    )
                })
                .unwrap_or(goal_group)
        } else {
            goal_group.min(n - 1)
        };
        let first_ino = self.sb.first_ino();
        for step in 0..n {
            let g = (start + step) % n;
            if self.descs[g as usize].free_inodes_count == 0 {
                continue;
            }
            let loc = self.descs[g as usize].inode_bitmap;
            if self.descs[g as usize].has_flag(BG_INODE_UNINIT) {
                let bm = self.new_block(loc, BlockKind::Meta)?;
                bitmap::set_padding(bm, ipg as usize);
                self.descs[g as usize].flags &= !BG_INODE_UNINIT;
            }
            let min_idx = if g == 0 { first_ino as usize - 1 } else { 0 };
            let bm = self.write_block(loc, BlockKind::Meta)?;
            let Some(idx) = bitmap::find_first_clear(bm, min_idx, ipg as usize) else {
                continue;
            };
            bitmap::set_bit(bm, idx);
            let d = &mut self.descs[g as usize];
            d.free_inodes_count -= 1;
            if is_dir {
                d.used_dirs_count += 1;
            }
            if self.feat.has_group_csum() {
                let used_high = ipg - d.itable_unused;
                if idx as u32 >= used_high {
                    d.itable_unused = ipg - idx as u32 - 1;
                }
            }
            self.mark_group(g);
            return Ok(g * ipg + idx as u32 + 1);
        }
        Err(FsError::nospc())
    }

    /// Frees an inode number.
    pub fn free_inode(&mut self, ino: u32, is_dir: bool) -> FsResult<()> {
        let (g, idx) = self.geo.inode_location(ino);
        let loc = self
            .descs
            .get(g as usize)
            .ok_or_else(|| FsError::corrupt(format!("inode {ino} out of range")))?
            .inode_bitmap;
        let bm = self.write_block(loc, BlockKind::Meta)?;
        if !bitmap::clear_bit(bm, idx as usize) {
            log::warn!("freeing inode {ino}: already free");
            return Ok(());
        }
        let d = &mut self.descs[g as usize];
        d.free_inodes_count += 1;
        if is_dir {
            d.used_dirs_count = d.used_dirs_count.saturating_sub(1);
        }
        self.mark_group(g);
        Ok(())
    }

    /// First block of the group inode `ino` belongs to (the allocation goal
    /// of a file with no blocks yet).
    pub fn inode_group_start(&self, ino: u32) -> u64 {
        self.geo.group_first_block(self.geo.inode_location(ino).0)
    }

    /// Byte location of inode `ino` in the image: (block, offset in block).
    pub fn inode_location(&self, ino: u32) -> FsResult<(u64, usize)> {
        if ino == 0 || ino > self.sb.f.inodes_count {
            return Err(FsError::corrupt(format!("inode number {ino} out of range")));
        }
        let (g, idx) = self.geo.inode_location(ino);
        let isize = self.geo.inode_size as usize;
        let per_block = self.block_size() / isize;
        let table = self.descs[g as usize].inode_table;
        Ok((
            table + u64::from(idx) / per_block as u64,
            (idx as usize % per_block) * isize,
        ))
    }

    /// Whether the group of `ino` has never had its inode table written
    /// (an unused slot may then hold garbage).
    pub fn inode_slot_is_uninit(&self, ino: u32) -> bool {
        let (g, idx) = self.geo.inode_location(ino);
        let d = &self.descs[g as usize];
        d.has_flag(BG_INODE_UNINIT)
            || (self.feat.has_group_csum()
                && !d.has_flag(BG_INODE_ZEROED)
                && idx >= self.geo.inodes_per_group - d.itable_unused)
    }

    /// Encodes dirty group descriptors (with bitmap checksums) and the
    /// superblock into their blocks in the cache.
    pub fn commit_metadata(&mut self) -> FsResult<()> {
        if self.read_only {
            return Ok(());
        }
        let groups: Vec<u32> = std::mem::take(&mut self.dirty_groups).into_iter().collect();
        let ds = self.geo.desc_size as usize;
        let ipg = self.geo.inodes_per_group as usize;
        let cpg = (self.geo.blocks_per_group / 8) as usize;
        let seed = self.sb.csum_seed();
        for g in groups {
            if let Some(s) = self.csum_seed {
                let d = self.descs[g as usize].clone();
                let bb = if d.has_flag(BG_BLOCK_UNINIT) {
                    bitmap::bitmap_csum(s, &self.init_block_bitmap(g), cpg)
                } else {
                    bitmap::bitmap_csum(s, self.read_block(d.block_bitmap)?, cpg)
                };
                let ib = if d.has_flag(BG_INODE_UNINIT) {
                    0
                } else {
                    bitmap::bitmap_csum(s, self.read_block(d.inode_bitmap)?, ipg / 8)
                };
                let d = &mut self.descs[g as usize];
                d.block_bitmap_csum = bitmap::stored_bitmap_csum(bb, ds);
                d.inode_bitmap_csum = bitmap::stored_bitmap_csum(ib, ds);
            }
            let i = g / self.geo.descs_per_block;
            let blk = self.geo.gdt_block_location(i);
            let off = (g % self.geo.descs_per_block) as usize * ds;
            let d = self.descs[g as usize].clone();
            let feat = self.feat;
            let uuid = self.sb.f.uuid;
            let block = self.write_block(blk, BlockKind::Meta)?;
            let slot = &mut block[off..off + ds];
            d.encode(slot, ds);
            set_group_desc_csum(&feat, seed, &uuid, g, slot);
        }
        self.write_superblock()
    }

    /// Totals of the descriptors into the superblock, then the superblock
    /// into its block.
    pub fn write_superblock(&mut self) -> FsResult<()> {
        if self.read_only {
            return Ok(());
        }
        let free_blocks: u64 = self
            .descs
            .iter()
            .map(|d| u64::from(d.free_blocks_count))
            .sum();
        let free_inodes: u64 = self
            .descs
            .iter()
            .map(|d| u64::from(d.free_inodes_count))
            .sum();
        self.sb.set_free_blocks_count(free_blocks);
        self.sb.f.free_inodes_count = u32::try_from(free_inodes).unwrap_or(u32::MAX);
        let (blk, off) = self.geo.superblock_location(0);
        let sb = self.sb.clone();
        let block = self.write_block(blk, BlockKind::Meta)?;
        sb.encode(&mut block[off..off + SUPERBLOCK_SIZE]);
        Ok(())
    }

    /// Writes everything dirty into the image and makes it durable.
    pub fn sync(&mut self) -> FsResult<()> {
        self.write_back()?;
        if !self.read_only {
            self.img.flush()?;
        }
        Ok(())
    }

    /// Writes everything dirty into the image (not flushed: the host's page
    /// cache has it, which survives the daemon but not the machine).
    pub fn write_back(&mut self) -> FsResult<()> {
        if self.read_only {
            return Ok(());
        }
        self.commit_metadata()?;
        self.cache.write_back(&mut self.img)?;
        Ok(())
    }

    /// Free blocks and inodes from the descriptors (for statfs).
    pub fn free_counts(&self) -> (u64, u64) {
        let fb = self
            .descs
            .iter()
            .map(|d| u64::from(d.free_blocks_count))
            .sum();
        let fi = self
            .descs
            .iter()
            .map(|d| u64::from(d.free_inodes_count))
            .sum();
        (fb, fi)
    }
}
