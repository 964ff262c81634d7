//! The mounted volume: the image, the dirty block cache, the superblock and
//! the group descriptors, and block and inode allocation over them.
//!
//! Locking (see the order in `fs/mod.rs`): the volume sits behind the
//! operation gate, so what only write-back changes (the image, the
//! superblock) is read freely by operations and changed with `&mut` under
//! the exclusive gate. What operations change has its own locks: each
//! group's descriptor (and, by convention, its two bitmaps) behind a
//! per-group mutex, taken one at a time; the dirty block cache behind a
//! leaf mutex; the free counts and the write-back reservation as atomics.
//! The free-block count is *claimed* before a group is scanned, so
//! concurrent allocators never together dip into the reservation.
//!
//! Group descriptors live in memory; a changed group is marked dirty and
//! its descriptor (with fresh bitmap checksums and its own checksum) is
//! encoded into the GDT block in the cache at
//! [`Volume::commit_metadata`]. Bitmaps are read and changed through the
//! cache like any metadata block. Groups still marked BLOCK_UNINIT or
//! INODE_UNINIT get their bitmap built (base metadata marked, padding set)
//! the first time something is allocated in them.
//!
//! Allocation is goal-based: a block allocation starts at a goal (the block
//! after the file's last one, or the inode's group) and takes the first free
//! block from there; a run allocation extends it as far as wanted, so
//! sequential writes get contiguous extents.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use super::cache::{self, BlockCache, BlockKind};
use super::error::{FsError, FsResult};
use super::lockorder::{Level, OrdGuard, OrdMappedGuard, OrdMutex};
use super::readahead::ItableReadahead;
use crate::device::Image;
use crate::format::bitmap;
use crate::format::features::Features;
use crate::format::geometry::Geometry;
use crate::format::group_desc::{
    set_group_desc_csum, verify_group_desc_csum, GroupDesc, BG_BLOCK_UNINIT, BG_INODE_UNINIT,
    BG_INODE_ZEROED,
};
use crate::format::superblock::{Superblock, SUPERBLOCK_SIZE};

/// A cached block being modified (holds the cache lock: take no other
/// lock while it lives).
pub type BlockMut<'a> = OrdMappedGuard<'a, [u8]>;

/// Where a group's bitmaps and inode table are (fixed by mkfs).
#[derive(Debug, Clone, Copy)]
struct GroupLoc {
    block_bitmap: u64,
    inode_bitmap: u64,
    inode_table: u64,
}

/// A group's changing state: its descriptor, and whether it changed since
/// the last [`Volume::commit_metadata`].
pub struct Group {
    pub desc: GroupDesc,
    dirty: bool,
}

/// The mounted volume.
pub struct Volume {
    pub img: Image,
    cache: OrdMutex<BlockCache>,
    pub sb: Superblock,
    pub geo: Geometry,
    pub feat: Features,
    locs: Vec<GroupLoc>,
    groups: Vec<OrdMutex<Group>>,
    /// Per group: read-ahead state of its inode table.
    itable_readahead: Vec<ItableReadahead>,
    /// Free blocks not claimed by an allocation in progress.
    free_blocks: AtomicU64,
    free_inodes: AtomicU64,
    /// crc32c seed when metadata_csum is on.
    pub csum_seed: Option<u32>,
    pub read_only: bool,
    /// Blocks promised to the write-back of pending changes (extent trees,
    /// indirect blocks, directory blocks): operations may not allocate
    /// them, so write-back never runs out of space for what was accepted.
    meta_reserve: AtomicU64,
}

/// Direct writes of file data at least this large (a streaming writer's
/// requests are 1 MiB) start their way to the device at once instead of
/// waiting in the page cache for the flusher or an fsync: the disk then
/// works while the writer goes on, and the fsync at the end has little
/// left to wait for (1 GiB + fsync: 0.7 s instead of 1.1 s here).
const WRITE_BEHIND_MIN: usize = 1 << 20;

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
        let locs = descs
            .iter()
            .map(|d| GroupLoc {
                block_bitmap: d.block_bitmap,
                inode_bitmap: d.inode_bitmap,
                inode_table: d.inode_table,
            })
            .collect();
        let free_blocks = descs.iter().map(|d| u64::from(d.free_blocks_count)).sum();
        let free_inodes = descs.iter().map(|d| u64::from(d.free_inodes_count)).sum();
        let groups = descs
            .into_iter()
            .enumerate()
            .map(|(g, desc)| OrdMutex::new(Level::Group, g as u64, Group { desc, dirty: false }))
            .collect();
        let itable_readahead = (0..geo.groups_count)
            .map(|_| ItableReadahead::default())
            .collect();
        Ok(Volume {
            img,
            cache: OrdMutex::new(Level::Cache, 0, cache),
            sb,
            geo,
            feat,
            locs,
            itable_readahead,
            groups,
            free_blocks: AtomicU64::new(free_blocks),
            free_inodes: AtomicU64::new(free_inodes),
            csum_seed,
            read_only,
            meta_reserve: AtomicU64::new(0),
        })
    }

    pub fn block_size(&self) -> usize {
        self.geo.block_size as usize
    }

    /// A block's bytes in the image mapping (not its pending change).
    fn image_block(&self, blk: u64) -> FsResult<&[u8]> {
        cache::image_block(&self.img, blk, self.block_size(), self.geo.blocks_count)
    }

    /// Current content of a block: a copy of its pending change, else the
    /// image's bytes in place.
    pub fn read_block(&self, blk: u64) -> FsResult<Cow<'_, [u8]>> {
        {
            let cache = self.cache.lock();
            if let Some(d) = cache.dirty_data(blk) {
                return Ok(Cow::Owned(d.to_vec()));
            }
        }
        self.image_block(blk).map(Cow::Borrowed)
    }

    /// Copies `out.len()` bytes of block `blk` from byte `from` into `out`
    /// (file data: no intermediate copy).
    pub fn read_into(&self, blk: u64, from: usize, out: &mut [u8]) -> FsResult<()> {
        let end = from + out.len();
        {
            let cache = self.cache.lock();
            if let Some(d) = cache.dirty_data(blk) {
                out.copy_from_slice(&d[from..end]);
                return Ok(());
            }
        }
        let data = cache::image_block_in(
            &self.img,
            cache::View::Data,
            blk,
            self.block_size(),
            self.geo.blocks_count,
        )?;
        out.copy_from_slice(&data[from..end]);
        Ok(())
    }

    /// Whether a block has a pending change.
    pub fn is_dirty(&self, blk: u64) -> bool {
        self.cache.lock().is_dirty(blk)
    }

    /// Bytes of pending changes.
    pub fn dirty_bytes(&self) -> usize {
        self.cache.lock().dirty_bytes()
    }

    /// A block to modify in place (copied from the image on first use).
    pub fn write_block(&self, blk: u64, kind: BlockKind) -> FsResult<BlockMut<'_>> {
        if self.read_only {
            return Err(FsError::rofs());
        }
        let mut cache = self.cache.lock();
        cache.write(&self.img, blk, kind)?;
        Ok(OrdGuard::map(cache, |c| c.block_mut(blk)))
    }

    /// A newly allocated block, zero-filled.
    pub fn new_block(&self, blk: u64, kind: BlockKind) -> FsResult<BlockMut<'_>> {
        if self.read_only {
            return Err(FsError::rofs());
        }
        let mut cache = self.cache.lock();
        cache.write_new(blk, kind)?;
        Ok(OrdGuard::map(cache, |c| c.block_mut(blk)))
    }

    /// Writes whole blocks of file data, `data.len() / block size` of them
    /// from `first`: straight into the image when none of them was freed
    /// since the last write-back (a pending change of those blocks is
    /// dropped: this replaces it), else, and when the image refuses the
    /// write, into the cache as usual (the error then comes back from
    /// write-back, with the data kept).
    ///
    /// Written directly, data reaches the image before the metadata that
    /// will point at it, as write-back orders it, and fsync's flush of the
    /// image covers it (large writes are sent on to the device at once,
    /// see [`WRITE_BEHIND_MIN`]). Blocks freed since the last write-back
    /// may still belong to their old file in the image, which must never
    /// show another file's data after a crash: those wait for write-back.
    pub fn write_data_blocks(&self, first: u64, data: &[u8]) -> FsResult<()> {
        if self.read_only {
            return Err(FsError::rofs());
        }
        let bs = self.block_size();
        let count = (data.len() / bs) as u64;
        debug_assert_eq!(data.len() % bs, 0);
        cache::check_block(
            first.saturating_add(count.saturating_sub(1)),
            self.geo.blocks_count,
        )?;
        let direct = !self.cache.lock().any_freed(first, count);
        if direct {
            let at = first.checked_mul(bs as u64).ok_or_else(FsError::io)?;
            match self.img.write_at(at, data) {
                Ok(()) => {
                    // Only now: until the image has the new bytes, a reader
                    // must still find an earlier write's pending change.
                    self.cache.lock().discard_range(first..first + count);
                    if data.len() >= WRITE_BEHIND_MIN {
                        self.img.start_writeout(at, data.len() as u64);
                    }
                    return Ok(());
                }
                Err(e) => log::warn!(
                    "blocks {first}+{count}: direct write failed ({e}); kept for write-back"
                ),
            }
        }
        for (i, chunk) in data.chunks_exact(bs).enumerate() {
            self.new_block(first + i as u64, BlockKind::Data)?
                .copy_from_slice(chunk);
        }
        Ok(())
    }

    /// The write-back reservation.
    pub fn meta_reserve(&self) -> u64 {
        self.meta_reserve.load(Ordering::Acquire)
    }

    /// Replaces `old` blocks of the reservation by `new`; returns the new
    /// total.
    pub fn adjust_reserve(&self, old: u64, new: u64) -> u64 {
        let prev = self
            .meta_reserve
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                Some(r.saturating_sub(old).saturating_add(new))
            })
            .unwrap_or(0);
        prev.saturating_sub(old).saturating_add(new)
    }

    /// The bitmap a BLOCK_UNINIT group implicitly has.
    fn init_block_bitmap(&self, g: u32) -> Vec<u8> {
        let geo = &self.geo;
        let mut bm = vec![0u8; geo.block_size as usize];
        bitmap::set_range(&mut bm, 0, geo.base_meta_blocks(g) as usize);
        let first = geo.group_first_block(g);
        let end = first + u64::from(geo.blocks_in_group(g));
        for d in &self.locs {
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

    /// The block bitmap of group `g` (whose lock the caller holds as
    /// `grp`), ready to modify (initialised first if the group was
    /// BLOCK_UNINIT).
    fn block_bitmap_mut(&self, grp: &mut Group, g: u32) -> FsResult<BlockMut<'_>> {
        let loc = self.locs[g as usize].block_bitmap;
        if grp.desc.has_flag(BG_BLOCK_UNINIT) {
            let bm = self.init_block_bitmap(g);
            self.new_block(loc, BlockKind::Meta)?.copy_from_slice(&bm);
            grp.desc.flags &= !BG_BLOCK_UNINIT;
            grp.dirty = true;
        }
        self.write_block(loc, BlockKind::Meta)
    }

    fn block_in_use(&self, blk: u64) -> FsResult<bool> {
        let g = self.geo.group_of_block(blk);
        let grp = self
            .groups
            .get(g as usize)
            .ok_or_else(FsError::inval)?
            .lock();
        let idx = (blk - self.geo.group_first_block(g)) as usize;
        if grp.desc.has_flag(BG_BLOCK_UNINIT) {
            return Ok(bitmap::test_bit(&self.init_block_bitmap(g), idx));
        }
        Ok(bitmap::test_bit(
            &self.read_block(self.locs[g as usize].block_bitmap)?,
            idx,
        ))
    }

    /// Free blocks in all groups (less those claimed by allocations in
    /// progress).
    pub fn free_blocks_total(&self) -> u64 {
        self.free_blocks.load(Ordering::Acquire)
    }

    /// Takes up to `want` blocks off the free count, keeping `keep` free;
    /// ENOSPC when none can be had.
    fn claim_blocks(&self, want: u32, keep: u64) -> FsResult<u32> {
        let mut claimed = 0u64;
        self.free_blocks
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| {
                let usable = free.saturating_sub(keep);
                if usable == 0 {
                    return None;
                }
                claimed = usable.min(u64::from(want));
                Some(free - claimed)
            })
            .map_err(|_| FsError::nospc())?;
        Ok(claimed as u32)
    }

    /// Allocates up to `want` contiguous blocks for file data, first fit from
    /// `goal`, leaving the write-back reservation alone. Returns (first,
    /// count); ENOSPC when nothing is free.
    pub fn alloc_blocks(&self, goal: u64, want: u32) -> FsResult<(u64, u32)> {
        if self.read_only {
            return Err(FsError::rofs());
        }
        let claimed = self.claim_blocks(want, self.meta_reserve() + ALLOC_SLACK)?;
        self.alloc_claimed(goal, claimed)
    }

    /// Allocation for write-back: may use the reservation.
    pub fn alloc_blocks_wb(&self, goal: u64, want: u32) -> FsResult<(u64, u32)> {
        if self.read_only {
            return Err(FsError::rofs());
        }
        let claimed = self.claim_blocks(want, 0)?;
        self.alloc_claimed(goal, claimed)
    }

    /// Allocates up to `claimed` (already taken off the free count) blocks
    /// and gives back what it did not use.
    fn alloc_claimed(&self, goal: u64, claimed: u32) -> FsResult<(u64, u32)> {
        let r = self.alloc_blocks_any(goal, claimed);
        let used = r.as_ref().map_or(0, |&(_, n)| n);
        self.free_blocks
            .fetch_add(u64::from(claimed - used), Ordering::AcqRel);
        r
    }

    fn alloc_blocks_any(&self, goal: u64, want: u32) -> FsResult<(u64, u32)> {
        let geo = &self.geo;
        let goal = goal.clamp(geo.first_data_block, geo.blocks_count - 1);
        let g0 = geo.group_of_block(goal);
        let n = geo.groups_count;
        for step in 0..=n {
            let g = (g0 + step) % n;
            let mut grp = self.groups[g as usize].lock();
            if grp.desc.free_blocks_count == 0 {
                continue;
            }
            let first = geo.group_first_block(g);
            let in_group = geo.blocks_in_group(g) as usize;
            let start_idx = if step == 0 {
                (goal - first) as usize
            } else {
                0
            };
            let mut bm = self.block_bitmap_mut(&mut grp, g)?;
            let found = bitmap::find_first_clear(&bm, start_idx, in_group).or_else(|| {
                if step == n {
                    bitmap::find_first_clear(&bm, 0, start_idx)
                } else {
                    None
                }
            });
            let Some(idx) = found else { continue };
            let mut len = 0usize;
            while len < want as usize && idx + len < in_group && !bitmap::test_bit(&bm, idx + len) {
                bitmap::set_bit(&mut bm, idx + len);
                len += 1;
            }
            drop(bm);
            grp.desc.free_blocks_count = grp.desc.free_blocks_count.saturating_sub(len as u32);
            grp.dirty = true;
            return Ok((first + idx as u64, len as u32));
        }
        Err(FsError::nospc())
    }

    /// Frees `count` blocks from `start` (they must be in use).
    pub fn free_blocks(&self, start: u64, count: u64) -> FsResult<()> {
        let mut b = start;
        let end = start + count;
        while b < end {
            if b < self.geo.first_data_block || b >= self.geo.blocks_count {
                return Err(FsError::corrupt(format!("freeing invalid block {b}")));
            }
            let g = self.geo.group_of_block(b);
            let first = self.geo.group_first_block(g);
            let gend = (first + u64::from(self.geo.blocks_in_group(g))).min(end);
            let mut grp = self.groups[g as usize].lock();
            let mut freed = 0u32;
            {
                let mut bm = self.block_bitmap_mut(&mut grp, g)?;
                for x in b..gend {
                    if bitmap::clear_bit(&mut bm, (x - first) as usize) {
                        freed += 1;
                    }
                }
            }
            self.cache.lock().freed(b..gend);
            if freed != (gend - b) as u32 {
                log::warn!("freeing blocks {b}..{gend}: some were already free");
            }
            grp.desc.free_blocks_count += freed;
            grp.dirty = true;
            self.free_blocks
                .fetch_add(u64::from(freed), Ordering::AcqRel);
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
    pub fn alloc_inode(&self, goal_group: u32, is_dir: bool, spread: bool) -> FsResult<u32> {
        if self.read_only {
            return Err(FsError::rofs());
        }
        let n = self.geo.groups_count;
        let ipg = self.geo.inodes_per_group;
        let start = if spread {
            let avg_free_blocks = self.free_blocks_total() / u64::from(n);
            let mut best: Option<(u32, std::cmp::Reverse<u32>)> = None;
            for g in 0..n {
                let grp = self.groups[g as usize].lock();
                if u64::from(grp.desc.free_blocks_count) >= avg_free_blocks {
                    let key = (grp.desc.free_inodes_count, std::cmp::Reverse(g));
                    if best.is_none_or(|b| key > b) {
                        best = Some(key);
                    }
                }
            }
            best.map_or(goal_group, |(_, std::cmp::Reverse(g))| g)
        } else {
            goal_group.min(n - 1)
        };
        let first_ino = self.sb.first_ino();
        for step in 0..n {
            let g = (start + step) % n;
            let mut grp = self.groups[g as usize].lock();
            if grp.desc.free_inodes_count == 0 {
                continue;
            }
            let loc = self.locs[g as usize].inode_bitmap;
            if grp.desc.has_flag(BG_INODE_UNINIT) {
                let mut bm = self.new_block(loc, BlockKind::Meta)?;
                bitmap::set_padding(&mut bm, ipg as usize);
                drop(bm);
                grp.desc.flags &= !BG_INODE_UNINIT;
                grp.dirty = true;
            }
            let min_idx = if g == 0 { first_ino as usize - 1 } else { 0 };
            let mut bm = self.write_block(loc, BlockKind::Meta)?;
            let Some(idx) = bitmap::find_first_clear(&bm, min_idx, ipg as usize) else {
                continue;
            };
            bitmap::set_bit(&mut bm, idx);
            drop(bm);
            let d = &mut grp.desc;
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
            grp.dirty = true;
            self.free_inodes.fetch_sub(1, Ordering::AcqRel);
            return Ok(g * ipg + idx as u32 + 1);
        }
        Err(FsError::nospc())
    }

    /// Frees an inode number.
    pub fn free_inode(&self, ino: u32, is_dir: bool) -> FsResult<()> {
        let (g, idx) = self.geo.inode_location(ino);
        let loc = self
            .locs
            .get(g as usize)
            .ok_or_else(|| FsError::corrupt(format!("inode {ino} out of range")))?
            .inode_bitmap;
        let mut grp = self.groups[g as usize].lock();
        {
            let mut bm = self.write_block(loc, BlockKind::Meta)?;
            if !bitmap::clear_bit(&mut bm, idx as usize) {
                log::warn!("freeing inode {ino}: already free");
                return Ok(());
            }
        }
        let d = &mut grp.desc;
        d.free_inodes_count += 1;
        if is_dir {
            d.used_dirs_count = d.used_dirs_count.saturating_sub(1);
        }
        grp.dirty = true;
        self.free_inodes.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// First block of the group inode `ino` belongs to (the allocation goal
    /// of a file with no blocks yet).
    pub fn inode_group_start(&self, ino: u32) -> u64 {
        self.geo.group_first_block(self.geo.inode_location(ino).0)
    }

    /// First block of the inode table of `ino`'s group (the goal for its
    /// xattr block).
    pub fn inode_table_of(&self, ino: u32) -> u64 {
        let g = self.geo.inode_location(ino).0 as usize;
        self.locs
            .get(g)
            .map_or(self.geo.first_data_block, |l| l.inode_table)
    }

    /// Byte location of inode `ino` in the image: (block, offset in block).
    pub fn inode_location(&self, ino: u32) -> FsResult<(u64, usize)> {
        if ino == 0 || ino > self.sb.f.inodes_count {
            return Err(FsError::corrupt(format!("inode number {ino} out of range")));
        }
        let (g, idx) = self.geo.inode_location(ino);
        let isize = self.geo.inode_size as usize;
        let per_block = self.block_size() / isize;
        let table = self.locs[g as usize].inode_table;
        Ok((
            table + u64::from(idx) / per_block as u64,
            (idx as usize % per_block) * isize,
        ))
    }

    /// Starts reading the block runs `(first, count)` into memory, all in
    /// one ask (see [`crate::device::Image::prefetch_ranges`]).
    pub fn prefetch_block_runs(&self, runs: impl IntoIterator<Item = (u64, u64)>) {
        let bs = self.block_size() as u64;
        self.img.prefetch_ranges(
            runs.into_iter()
                .map(|(first, count)| (first.saturating_mul(bs), count.saturating_mul(bs))),
        );
    }

    /// Reading inode `ino`: asks for the stretches of its group's inode
    /// table that reading in table order will want next (see
    /// [`ItableReadahead`]).
    pub fn prefetch_inode_table(&self, ino: u32) {
        let (g, idx) = self.geo.inode_location(ino);
        let Some(ra) = self.itable_readahead.get(g as usize) else {
            return;
        };
        let per_block = (self.block_size() as u64 / u64::from(self.geo.inode_size)).max(1);
        let used_blocks = || {
            let grp = self.groups[g as usize].lock();
            let d = &grp.desc;
            let ipg = u64::from(self.geo.inodes_per_group);
            let used = if d.has_flag(BG_INODE_UNINIT) {
                0
            } else if self.feat.has_group_csum() {
                ipg.saturating_sub(u64::from(d.itable_unused))
            } else {
                ipg
            };
            used.div_ceil(per_block)
        };
        let table_blocks = u64::from(self.geo.inode_table_blocks);
        let table = self.locs[g as usize].inode_table;
        let stretches = ra.on_read(u64::from(idx) / per_block, table_blocks, used_blocks);
        self.prefetch_block_runs(
            stretches
                .into_iter()
                .map(|(first, count)| (table + first, count)),
        );
    }

    /// Starts reading the inode table blocks of `inos` (the inodes a reply
    /// is about to describe), all at once.
    pub fn prefetch_inodes(&self, inos: impl IntoIterator<Item = u32>) {
        self.prefetch_block_runs(
            inos.into_iter()
                .filter_map(|ino| self.inode_location(ino).ok())
                .map(|(blk, _)| (blk, 1)),
        );
    }

    /// Whether the group of `ino` has never had its inode table written
    /// (an unused slot may then hold garbage).
    pub fn inode_slot_is_uninit(&self, ino: u32) -> bool {
        let (g, idx) = self.geo.inode_location(ino);
        let grp = self.groups[g as usize].lock();
        let d = &grp.desc;
        d.has_flag(BG_INODE_UNINIT)
            || (self.feat.has_group_csum()
                && !d.has_flag(BG_INODE_ZEROED)
                && idx >= self.geo.inodes_per_group - d.itable_unused)
    }

    /// Encodes dirty group descriptors (with bitmap checksums) and the
    /// superblock into their blocks in the cache (write-back: exclusive).
    pub fn commit_metadata(&mut self) -> FsResult<()> {
        if self.read_only {
            return Ok(());
        }
        let groups: Vec<u32> = (0..self.geo.groups_count)
            .filter(|&g| {
                let grp = self.groups[g as usize].get_mut();
                std::mem::take(&mut grp.dirty)
            })
            .collect();
        let ds = self.geo.desc_size as usize;
        let ipg = self.geo.inodes_per_group as usize;
        let cpg = (self.geo.blocks_per_group / 8) as usize;
        let seed = self.sb.csum_seed();
        for g in groups {
            let mut d = self.groups[g as usize].get_mut().desc.clone();
            if let Some(s) = self.csum_seed {
                let bb = if d.has_flag(BG_BLOCK_UNINIT) {
                    bitmap::bitmap_csum(s, &self.init_block_bitmap(g), cpg)
                } else {
                    bitmap::bitmap_csum(s, &self.read_block(d.block_bitmap)?, cpg)
                };
                let ib = if d.has_flag(BG_INODE_UNINIT) {
                    0
                } else {
                    bitmap::bitmap_csum(s, &self.read_block(d.inode_bitmap)?, ipg / 8)
                };
                d.block_bitmap_csum = bitmap::stored_bitmap_csum(bb, ds);
                d.inode_bitmap_csum = bitmap::stored_bitmap_csum(ib, ds);
                self.groups[g as usize].get_mut().desc = d.clone();
            }
            let i = g / self.geo.descs_per_block;
            let blk = self.geo.gdt_block_location(i);
            let off = (g % self.geo.descs_per_block) as usize * ds;
            let feat = self.feat;
            let uuid = self.sb.f.uuid;
            let mut block = self.write_block(blk, BlockKind::Meta)?;
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
        let (free_blocks, free_inodes) = self.desc_totals();
        self.sb.set_free_blocks_count(free_blocks);
        self.sb.f.free_inodes_count = u32::try_from(free_inodes).unwrap_or(u32::MAX);
        let (blk, off) = self.geo.superblock_location(0);
        let sb = self.sb.clone();
        let mut block = self.write_block(blk, BlockKind::Meta)?;
        sb.encode(&mut block[off..off + SUPERBLOCK_SIZE]);
        Ok(())
    }

    /// Free blocks and inodes summed over the descriptors.
    fn desc_totals(&mut self) -> (u64, u64) {
        self.groups.iter_mut().fold((0, 0), |(b, i), grp| {
            let d = &grp.get_mut().desc;
            (
                b + u64::from(d.free_blocks_count),
                i + u64::from(d.free_inodes_count),
            )
        })
    }

    /// Writes everything dirty into the image and makes it durable
    /// (write-back: exclusive).
    pub fn sync(&mut self) -> FsResult<()> {
        self.write_back()?;
        self.flush()
    }

    /// Writes everything dirty into the image (exclusive: the image
    /// changes).
    pub fn write_back(&mut self) -> FsResult<()> {
        if self.read_only {
            return Ok(());
        }
        self.commit_metadata()?;
        self.cache.get_mut().write_back(&mut self.img)?;
        Ok(())
    }

    /// Makes what was written into the image durable (msync + fdatasync);
    /// operations may run meanwhile (they write only file data into the
    /// image, see [`Volume::write_data_blocks`]; what they wrote before the
    /// flush began is covered).
    pub fn flush(&self) -> FsResult<()> {
        if self.read_only {
            return Ok(());
        }
        self.img.flush()?;
        Ok(())
    }

    /// Free blocks and inodes (for statfs).
    pub fn free_counts(&self) -> (u64, u64) {
        (
            self.free_blocks.load(Ordering::Acquire),
            self.free_inodes.load(Ordering::Acquire),
        )
    }
}
