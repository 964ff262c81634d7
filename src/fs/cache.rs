//! The dirty block cache: every block the file system has changed and not
//! yet written into the image, file data and metadata alike, keyed by
//! physical block number.
//!
//! Clean blocks are never copied: reads fall through to the image mapping.
//! A block enters the cache when first modified (copied from the image, or
//! zero-filled when newly allocated) and leaves it when write-back copies it
//! into the mapping. Write-back writes data blocks before metadata blocks,
//! so metadata never points at data that has not reached the image (the
//! order ordered-mode journaling will need). The cache counts its bytes so
//! the file system can start write-back at a background threshold and
//! throttle writers at a hard limit.
//!
//! Whole blocks of file data may skip the cache and go to the image as
//! they are written (`Volume::write_data_blocks`), but not blocks freed
//! since the last complete write-back, which the cache remembers: the
//! image may still show them in use by the file they were freed from.
//!
//! Write-back sends runs of consecutive dirty blocks with one vectored
//! write each, and keeps a bounded pool of the freed block buffers so a
//! streaming writer does not allocate and free a buffer per block.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::time::Instant;

use super::error::{FsError, FsResult};
use crate::device::Image;

/// What a cached block holds; decides write-back order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Data,
    Meta,
}

struct DirtyBlock {
    data: Box<[u8]>,
    kind: BlockKind,
    since: Instant,
}

/// Most block buffers kept for reuse after write-back.
const POOL_MAX_BYTES: usize = 16 << 20;

/// Dirty blocks awaiting write-back.
pub struct BlockCache {
    block_size: usize,
    blocks_count: u64,
    dirty: HashMap<u64, DirtyBlock, foldhash::fast::RandomState>,
    /// Buffers of written-back blocks, ready for reuse.
    pool: Vec<Box<[u8]>>,
    /// Blocks freed since the last complete write-back, as ranges (start
    /// -> end): the image may still show them in use by their old owner,
    /// so new data must not reach them there before that metadata does.
    freed: BTreeMap<u64, u64>,
}

impl BlockCache {
    pub fn new(block_size: usize, blocks_count: u64) -> Self {
        BlockCache {
            block_size,
            blocks_count,
            dirty: HashMap::default(),
            pool: Vec::new(),
            freed: BTreeMap::new(),
        }
    }

    /// A block buffer, from the pool when one is there (content undefined).
    fn buffer(&mut self) -> Box<[u8]> {
        self.pool
            .pop()
            .unwrap_or_else(|| vec![0u8; self.block_size].into_boxed_slice())
    }

    /// Starts tracking `blk` as dirty with content `data`.
    fn insert_dirty(&mut self, blk: u64, data: Box<[u8]>, kind: BlockKind) {
        self.dirty.insert(
            blk,
            DirtyBlock {
                data,
                kind,
                since: Instant::now(),
            },
        );
    }

    /// Returns a written-back block's buffer to the pool.
    fn recycle(&mut self, data: Box<[u8]>) {
        if (self.pool.len() + 1) * self.block_size <= POOL_MAX_BYTES {
            self.pool.push(data);
        }
    }

    fn check(&self, blk: u64) -> FsResult<()> {
        check_block(blk, self.blocks_count)
    }

    fn image_slice<'a>(&self, img: &'a Image, blk: u64) -> FsResult<&'a [u8]> {
        image_block(img, blk, self.block_size, self.blocks_count)
    }

    /// The current content of a block: the dirty copy, else the image's.
    pub fn read<'a>(&'a self, img: &'a Image, blk: u64) -> FsResult<&'a [u8]> {
        match self.dirty.get(&blk) {
            Some(d) => Ok(&d.data),
            None => self.image_slice(img, blk),
        }
    }

    /// The dirty copy of a block, if it has one.
    pub fn dirty_data(&self, blk: u64) -> Option<&[u8]> {
        self.dirty.get(&blk).map(|d| &*d.data)
    }

    /// The dirty copy of a block known to be in the cache (after
    /// [`BlockCache::write`] or [`BlockCache::write_new`] succeeded).
    pub fn block_mut(&mut self, blk: u64) -> &mut [u8] {
        &mut self
            .dirty
            .get_mut(&blk)
            .expect("the block was just put in the cache")
            .data
    }

    /// Whether a block has an unwritten change.
    pub fn is_dirty(&self, blk: u64) -> bool {
        self.dirty.contains_key(&blk)
    }

    /// A block to modify, copied from the image on first use.
    pub fn write(&mut self, img: &Image, blk: u64, kind: BlockKind) -> FsResult<&mut [u8]> {
        if !self.dirty.contains_key(&blk) {
            let src = self.image_slice(img, blk)?;
            let mut data = self.buffer();
            data.copy_from_slice(src);
            self.insert_dirty(blk, data, kind);
        }
        let d = self.dirty.get_mut(&blk).expect("inserted above");
        if kind == BlockKind::Meta {
            d.kind = BlockKind::Meta;
        }
        Ok(&mut d.data)
    }

    /// A block whose old content does not matter (newly allocated): starts
    /// zero-filled.
    pub fn write_new(&mut self, blk: u64, kind: BlockKind) -> FsResult<&mut [u8]> {
        self.check(blk)?;
        if !self.dirty.contains_key(&blk) {
            let data = self.buffer();
            self.insert_dirty(blk, data, kind);
        }
        let d = self.dirty.get_mut(&blk).expect("inserted above");
        d.data.fill(0);
        d.kind = kind;
        Ok(&mut d.data)
    }

    /// Drops any pending change of a freed block.
    pub fn discard(&mut self, blk: u64) {
        if let Some(d) = self.dirty.remove(&blk) {
            self.recycle(d.data);
        }
    }

    /// Drops the pending changes of blocks `blocks`.
    pub fn discard_range(&mut self, blocks: Range<u64>) {
        if self.dirty.is_empty() {
            return;
        }
        for blk in blocks {
            self.discard(blk);
        }
    }

    /// Blocks `blocks` were freed: drops their pending changes and
    /// remembers them until the next complete write-back.
    pub fn freed(&mut self, blocks: Range<u64>) {
        if blocks.is_empty() {
            return;
        }
        self.discard_range(blocks.clone());
        let (mut start, mut end) = (blocks.start, blocks.end);
        // Ranges are disjoint and sorted, so those that overlap or touch
        // `start..end` are the last ones starting at or before `end`.
        let touching: Vec<u64> = self
            .freed
            .range(..=end)
            .rev()
            .take_while(|(_, &e)| e >= start)
            .map(|(&s, _)| s)
            .collect();
        for s in touching {
            let e = self.freed.remove(&s).expect("just seen");
            start = start.min(s);
            end = end.max(e);
        }
        self.freed.insert(start, end);
    }

    /// Whether any of blocks `first..first+count` was freed since the last
    /// complete write-back.
    pub fn any_freed(&self, first: u64, count: u64) -> bool {
        self.freed
            .range(..first.saturating_add(count))
            .next_back()
            .is_some_and(|(_, &end)| end > first)
    }

    pub fn dirty_bytes(&self) -> usize {
        self.dirty.len() * self.block_size
    }

    /// Age of the oldest dirty block.
    pub fn oldest(&self) -> Option<Instant> {
        self.dirty.values().map(|d| d.since).min()
    }

    /// Copies every dirty block into the image, data before metadata, in
    /// block order within each kind. Does not flush the image itself.
    pub fn write_back(&mut self, img: &mut Image) -> FsResult<()> {
        let mut blocks: Vec<(BlockKind, u64)> =
            self.dirty.iter().map(|(&b, d)| (d.kind, b)).collect();
        blocks.sort_unstable_by_key(|&(kind, b)| (kind == BlockKind::Meta, b));
        let split = blocks.partition_point(|&(kind, _)| kind == BlockKind::Data);
        let order: Vec<u64> = blocks.into_iter().map(|(_, b)| b).collect();
        self.write_runs(img, &order[..split])?;
        self.write_runs(img, &order[split..])?;
        // The image's metadata now shows every free made so far.
        self.freed.clear();
        Ok(())
    }

    /// Writes back only data blocks (fdatasync of file data before its
    /// metadata is settled).
    pub fn write_back_data(&mut self, img: &mut Image, only: Option<&[u64]>) -> FsResult<()> {
        let mut blocks: Vec<u64> = match only {
            Some(list) => list
                .iter()
                .copied()
                .filter(|b| self.dirty.get(b).is_some_and(|d| d.kind == BlockKind::Data))
                .collect(),
            None => self
                .dirty
                .iter()
                .filter(|(_, d)| d.kind == BlockKind::Data)
                .map(|(&b, _)| b)
                .collect(),
        };
        blocks.sort_unstable();
        blocks.dedup();
        self.write_runs(img, &blocks)
    }

    /// Writes the dirty blocks `sorted` (ascending, distinct) into the
    /// image, one vectored write per run of consecutive block numbers.
    /// Blocks leave the cache only once written: a failed write keeps them
    /// dirty for the next attempt.
    fn write_runs(&mut self, img: &mut Image, sorted: &[u64]) -> FsResult<()> {
        let bs = self.block_size as u64;
        let mut rest = sorted;
        while let Some(&first) = rest.first() {
            let run_len = rest
                .iter()
                .enumerate()
                .take_while(|&(k, &b)| b == first + k as u64)
                .count();
            let (run, tail) = rest.split_at(run_len);
            rest = tail;
            let bufs: Vec<&[u8]> = run
                .iter()
                .filter_map(|b| self.dirty.get(b).map(|d| &d.data[..]))
                .collect();
            if bufs.len() != run.len() {
                // Only blocks listed as dirty come here.
                return Err(FsError::new(
                    libc::EIO,
                    format!("write-back: block run at {first} is not all dirty"),
                ));
            }
            img.write_vectored_at(first * bs, &bufs)?;
            for b in run {
                if let Some(d) = self.dirty.remove(b) {
                    self.recycle(d.data);
                }
            }
        }
        Ok(())
    }
}

/// A block number past the end of the file system is corruption.
pub fn check_block(blk: u64, blocks_count: u64) -> FsResult<()> {
    if blk >= blocks_count {
        return Err(FsError::corrupt(format!(
            "block {blk} beyond the end of the file system ({blocks_count} blocks)"
        )));
    }
    Ok(())
}

/// Block `blk` of a file system of `blocks_count` blocks of `block_size`
/// bytes, in the image mapping, made readable first: a block number past
/// the end is corruption (EUCLEAN), a fault of the mapping (the image
/// shrank, the device failed) this operation's EIO.
pub fn image_block(img: &Image, blk: u64, block_size: usize, blocks_count: u64) -> FsResult<&[u8]> {
    image_block_in(img, View::Meta, blk, block_size, blocks_count)
}

/// Which mapping of the image a block is read through (see
/// [`crate::device`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Metadata: no read-around.
    Meta,
    /// File data: the kernel's read-around.
    Data,
}

/// [`image_block`] through the mapping `view`.
pub fn image_block_in(
    img: &Image,
    view: View,
    blk: u64,
    block_size: usize,
    blocks_count: u64,
) -> FsResult<&[u8]> {
    check_block(blk, blocks_count)?;
    let start = usize::try_from(blk)
        .ok()
        .and_then(|b| b.checked_mul(block_size))
        .filter(|&s| s.saturating_add(block_size) <= img.bytes().len())
        .ok_or_else(|| FsError::corrupt(format!("block {blk} beyond the end of the image")))?;
    let bytes = match view {
        View::Meta => img.checked(start, block_size),
        View::Data => img.checked_data(start, block_size),
    };
    bytes.map_err(|e| {
        log::error!("block {blk}: {e}");
        FsError::new(libc::EIO, format!("block {blk}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_blocks_are_remembered_as_ranges() {
        let mut c = BlockCache::new(4096, 1000);
        for b in [10, 11, 12, 20, 14, 13, 13] {
            c.freed(b..b + 1);
        }
        assert_eq!(
            c.freed.iter().map(|(&s, &e)| (s, e)).collect::<Vec<_>>(),
            vec![(10, 15), (20, 21)]
        );
        assert!(c.any_freed(14, 1));
        assert!(c.any_freed(0, 11));
        assert!(c.any_freed(15, 6));
        assert!(!c.any_freed(15, 5));
        assert!(!c.any_freed(21, 100));
        assert!(!c.any_freed(0, 10));
    }
}
