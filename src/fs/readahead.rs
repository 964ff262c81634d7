//! Read-ahead of inode tables. The image's metadata mapping has no
//! read-around (see [`crate::device`]), so inode table blocks come in one
//! fault each unless asked for ahead. Like a file's read-ahead, this asks
//! only when reads go in order: a walk over files created together reads
//! their inodes in table order, and then each read in a stretch of the
//! table, or the one after the last, starts reading that stretch and the
//! next (each once per mount). Reads in no order (a listing in hash order)
//! read their own block only; their caller may ask for those ahead. (The
//! device widens every ask to aligned 128 KiB stretches of the image, see
//! [`crate::device::PREFETCH_GRAIN`], so a stretch here that straddles
//! two of those reads both.)

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Smallest stretch of an inode table read ahead at a time (128 KiB with
/// 4 KiB blocks, like ext4's default `inode_readahead_blks`).
const MIN_STRETCH_BLOCKS: u64 = 32;

/// Where the reads of one group's inode table were.
pub struct ItableReadahead {
    /// The stretches read ahead (a bit each).
    done: AtomicU64,
    /// The stretch of the last inode read (`u32::MAX` before the first).
    last: AtomicU32,
}

impl Default for ItableReadahead {
    fn default() -> Self {
        ItableReadahead {
            done: AtomicU64::new(0),
            last: AtomicU32::new(u32::MAX),
        }
    }
}

/// Blocks per stretch of an inode table of `table_blocks`: at least
/// [`MIN_STRETCH_BLOCKS`], and few enough stretches for one 64-bit mask.
fn stretch_blocks(table_blocks: u64) -> u64 {
    MIN_STRETCH_BLOCKS.max(table_blocks.div_ceil(64))
}

impl ItableReadahead {
    /// Notes a read of block `block` of an inode table of `table_blocks`
    /// and returns the ranges `(first block, count)` of the table to read
    /// ahead now. `used_blocks` tells how much of the table is in use
    /// (asked only when something is to be read).
    pub fn on_read(
        &self,
        block: u64,
        table_blocks: u64,
        used_blocks: impl FnOnce() -> u64,
    ) -> Vec<(u64, u64)> {
        let stretch = stretch_blocks(table_blocks);
        let here = (block / stretch).min(63);
        let last = u64::from(self.last.swap(here as u32, Ordering::Relaxed));
        let in_order = last == here || last + 1 == here;
        let next = (here + 1).min(63);
        let wanted = (1u64 << here) | (1u64 << next);
        if !in_order || self.done.load(Ordering::Relaxed) & wanted == wanted {
            return Vec::new();
        }
        let used = used_blocks().min(table_blocks);
        let mut out = Vec::new();
        for s in [here, next] {
            // Marked even when past the part in use: nothing to read there.
            let first_time = self.done.fetch_or(1 << s, Ordering::Relaxed) & (1 << s) == 0;
            let first = s * stretch;
            if first_time && first < used {
                out.push((first, stretch.min(used - first)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_table_order_read_ahead_and_scattered_ones_do_not() {
        let ra = ItableReadahead::default();
        let table = 512; // stretches of 32 blocks
        let used = || 200;
        assert!(
            ra.on_read(0, table, used).is_empty(),
            "first read: its block"
        );
        assert_eq!(ra.on_read(1, table, used), vec![(0, 32), (32, 32)]);
        assert!(ra.on_read(2, table, used).is_empty(), "already asked for");
        assert_eq!(ra.on_read(40, table, used), vec![(64, 32)]);
        assert_eq!(ra.on_read(70, table, used), vec![(96, 32)]);
        assert_eq!(ra.on_read(100, table, used), vec![(128, 32)]);
        // The last stretch in use is cut at the end of the used part.
        assert_eq!(ra.on_read(130, table, used), vec![(160, 32)]);
        assert_eq!(ra.on_read(165, table, used), vec![(192, 8)]);
        assert!(ra.on_read(199, table, used).is_empty());
        let not_asked = || -> u64 { panic!("nothing left to read: not asked") };
        assert!(ra.on_read(199, table, not_asked).is_empty());
        // Scattered reads ask for nothing.
        let ra = ItableReadahead::default();
        for b in [300, 10, 450, 90, 200] {
            assert!(ra.on_read(b, table, || 512).is_empty(), "block {b}");
        }
    }
}
