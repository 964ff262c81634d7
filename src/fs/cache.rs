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

use std::collections::HashMap;
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

/// Dirty blocks awaiting write-back.
pub struct BlockCache {
    block_size: usize,
    blocks_count: u64,
    dirty: HashMap<u64, DirtyBlock>,
}

impl BlockCache {
    pub fn new(block_size: usize, blocks_count: u64) -> Self {
        BlockCache {
            block_size,
            blocks_count,
            dirty: HashMap::new(),
        }
    }

    fn check(&self, blk: u64) -> FsResult<()> {
        if blk >= self.blocks_count {
            return Err(FsError::corrupt(format!(
                "block {blk} beyond the end of the file system ({} blocks)",
                self.blocks_count
            )));
        }
        Ok(())
    }

    fn image_slice<'a>(&self, img: &'a Image, blk: u64) -> FsResult<&'a [u8]> {
        self.check(blk)?;
        let start = blk as usize * self.block_size;
        img.bytes()
            .get(start..start + self.block_size)
            .ok_or_else(|| FsError::corrupt(format!("block {blk} beyond the end of the image")))
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
            let data: Box<[u8]> = self.image_slice(img, blk)?.into();
            self.dirty.insert(
                blk,
                DirtyBlock {
                    data,
                    kind,
                    since: Instant::now(),
                },
            );
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
        let d = self.dirty.entry(blk).or_insert_with(|| DirtyBlock {
            data: vec![0u8; 0].into_boxed_slice(),
            kind,
            since: Instant::now(),
        });
        d.data = vec![0u8; self.block_size].into_boxed_slice();
        d.kind = kind;
        Ok(&mut d.data)
    }

    /// Drops any pending change of a freed block.
    pub fn discard(&mut self, blk: u64) {
        self.dirty.remove(&blk);
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
        let bs = self.block_size as u64;
        for (_, blk) in blocks {
            if let Some(d) = self.dirty.get(&blk) {
                img.write_at(blk * bs, &d.data)?;
                self.dirty.remove(&blk);
            }
        }
        Ok(())
    }

    /// Writes back only data blocks (fdatasync of file data before its
    /// metadata is settled).
    pub fn write_back_data(&mut self, img: &mut Image, only: Option<&[u64]>) -> FsResult<()> {
        let bs = self.block_size as u64;
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
        for blk in blocks {
            // Removed only once written: a failed write keeps the block
            // dirty for the next attempt.
            if let Some(d) = self.dirty.get(&blk) {
                img.write_at(blk * bs, &d.data)?;
                self.dirty.remove(&blk);
            }
        }
        Ok(())
    }
}
