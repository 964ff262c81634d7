//! Block and inode bitmaps: one block each per group, bit i (LSB first within
//! each byte) standing for block (cluster) or inode i of the group.
//!
//! Rules the checkers enforce:
//! - Bits past the end of the group (a short last group, or past
//!   `inodes_per_group` in the inode bitmap's block) are set to 1: the
//!   "padding" rule.
//! - With metadata_csum, each bitmap's crc32c(fs_seed, first N bytes) is
//!   stored split in the group descriptor, where N is `clusters_per_group / 8`
//!   for block bitmaps and `inodes_per_group / 8` for inode bitmaps; the low
//!   16 bits only when descriptors are 32 bytes.

use super::csum::crc32c;

/// Whether bit `i` is set.
pub fn test_bit(bitmap: &[u8], i: usize) -> bool {
    bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

/// Sets bit `i`; returns whether it was already set. Out-of-range bits are
/// ignored (and reported as set) so a bad index never panics.
pub fn set_bit(bitmap: &mut [u8], i: usize) -> bool {
    match bitmap.get_mut(i / 8) {
        Some(b) => {
            let was = *b & (1 << (i % 8)) != 0;
            *b |= 1 << (i % 8);
            was
        }
        None => true,
    }
}

/// Clears bit `i`; returns whether it was set.
pub fn clear_bit(bitmap: &mut [u8], i: usize) -> bool {
    match bitmap.get_mut(i / 8) {
        Some(b) => {
            let was = *b & (1 << (i % 8)) != 0;
            *b &= !(1 << (i % 8));
            was
        }
        None => false,
    }
}

/// Sets bits `start..end`, whole bytes at a time where possible.
pub fn set_range(bitmap: &mut [u8], start: usize, end: usize) {
    let end = end.min(bitmap.len() * 8);
    let mut i = start;
    while i < end {
        if i.is_multiple_of(8) && i + 8 <= end {
            bitmap[i / 8] = 0xff;
            i += 8;
        } else {
            set_bit(bitmap, i);
            i += 1;
        }
    }
}

/// Number of set bits among the first `nbits`.
pub fn count_set(bitmap: &[u8], nbits: usize) -> usize {
    let full = (nbits / 8).min(bitmap.len());
    let mut n: usize = bitmap[..full].iter().map(|b| b.count_ones() as usize).sum();
    for i in full * 8..nbits {
        n += usize::from(test_bit(bitmap, i));
    }
    n
}

/// Index of the first clear bit in `start..end`, if any.
pub fn find_first_clear(bitmap: &[u8], start: usize, end: usize) -> Option<usize> {
    let end = end.min(bitmap.len() * 8);
    let mut i = start;
    // Bit by bit up to a byte boundary, then 64 bits at a time (bit k of
    // the little-endian word is bit k of the run), then the tail.
    while i < end && !i.is_multiple_of(8) {
        if !test_bit(bitmap, i) {
            return Some(i);
        }
        i += 1;
    }
    while i + 64 <= end {
        let word = u64::from_le_bytes(bitmap[i / 8..i / 8 + 8].try_into().expect("8 bytes"));
        if word != u64::MAX {
            return Some(i + word.trailing_ones() as usize);
        }
        i += 64;
    }
    (i..end).find(|&b| !test_bit(bitmap, b))
}

/// Sets the padding bits `used_bits..` up to the end of the bitmap block.
pub fn set_padding(bitmap: &mut [u8], used_bits: usize) {
    let len = bitmap.len() * 8;
    set_range(bitmap, used_bits, len);
}

/// The full 32-bit crc32c of a bitmap's first `nbytes` bytes.
pub fn bitmap_csum(fs_seed: u32, bitmap: &[u8], nbytes: usize) -> u32 {
    crc32c(fs_seed, &bitmap[..nbytes.min(bitmap.len())])
}

/// The value to compare with a descriptor's stored bitmap checksum: the low
/// 16 bits only when the descriptor has no `_hi` half.
pub fn stored_bitmap_csum(full: u32, desc_size: usize) -> u32 {
    if desc_size >= super::group_desc::DESC_SIZE_64BIT {
        full
    } else {
        full & 0xffff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_lsb_first() {
        let mut b = [0u8; 4];
        assert!(!set_bit(&mut b, 0));
        assert!(!set_bit(&mut b, 9));
        assert!(set_bit(&mut b, 9));
        assert_eq!(b, [0x01, 0x02, 0, 0]);
        assert!(clear_bit(&mut b, 9));
        assert!(!test_bit(&b, 9));
        assert!(set_bit(&mut b, 1000), "out of range reads as set");
    }

    #[test]
    fn ranges_counts_and_searches() {
        let mut b = [0u8; 8];
        set_range(&mut b, 3, 21);
        assert_eq!(count_set(&b, 64), 18);
        assert_eq!(find_first_clear(&b, 0, 64), Some(0));
        assert_eq!(find_first_clear(&b, 3, 64), Some(21));
        set_padding(&mut b, 40);
        assert_eq!(count_set(&b, 64), 18 + 24);
        assert_eq!(find_first_clear(&b, 21, 40), Some(21));
        set_range(&mut b, 0, 64);
        assert_eq!(find_first_clear(&b, 0, 64), None);
    }

    #[test]
    fn first_clear_matches_a_bit_by_bit_search() {
        let mut b = vec![0xffu8; 64];
        for clear in [0usize, 7, 8, 63, 64, 65, 200, 383, 384, 500, 511] {
            clear_bit(&mut b, clear);
        }
        for start in 0..512 {
            for end in [
                start,
                start + 1,
                start + 9,
                start + 64,
                start + 130,
                511,
                512,
                600,
            ] {
                let want = (start..end.min(512)).find(|&i| !test_bit(&b, i));
                assert_eq!(find_first_clear(&b, start, end), want, "{start}..{end}");
            }
        }
    }
}
