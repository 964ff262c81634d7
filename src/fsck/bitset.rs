//! A plain bit set over `0..len` (inode or block numbers), the in-memory
//! maps of the checker: inodes in use, directories, blocks claimed, blocks
//! claimed twice. Out-of-range indexes read as clear and are ignored on
//! write, so a bad number from disk can never panic here.

/// A fixed-size bit set.
#[derive(Debug, Clone, Default)]
pub struct BitSet {
    words: Vec<u64>,
    len: u64,
}

impl BitSet {
    /// A set able to hold `0..len`, all clear.
    pub fn new(len: u64) -> BitSet {
        let n = usize::try_from(len.div_ceil(64)).unwrap_or(0);
        BitSet {
            words: vec![0; n],
            len,
        }
    }

    /// The capacity (one past the largest index).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the set can hold nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot(&self, i: u64) -> Option<(usize, u64)> {
        if i >= self.len {
            return None;
        }
        Some((usize::try_from(i / 64).ok()?, 1u64 << (i % 64)))
    }

    /// Whether `i` is set.
    pub fn get(&self, i: u64) -> bool {
        self.slot(i)
            .is_some_and(|(w, m)| self.words.get(w).is_some_and(|x| x & m != 0))
    }

    /// Sets `i`; returns whether it was already set.
    pub fn set(&mut self, i: u64) -> bool {
        match self.slot(i) {
            Some((w, m)) => match self.words.get_mut(w) {
                Some(x) => {
                    let was = *x & m != 0;
                    *x |= m;
                    was
                }
                None => false,
            },
            None => false,
        }
    }

    /// Clears `i`; returns whether it was set.
    pub fn clear(&mut self, i: u64) -> bool {
        match self.slot(i) {
            Some((w, m)) => match self.words.get_mut(w) {
                Some(x) => {
                    let was = *x & m != 0;
                    *x &= !m;
                    was
                }
                None => false,
            },
            None => false,
        }
    }

    /// Sets `start..end` (clipped to the capacity).
    pub fn set_range(&mut self, start: u64, end: u64) {
        let end = end.min(self.len);
        let mut i = start;
        while i < end {
            if i.is_multiple_of(64) && end - i >= 64 {
                if let Ok(w) = usize::try_from(i / 64) {
                    if let Some(x) = self.words.get_mut(w) {
                        *x = u64::MAX;
                    }
                }
                i += 64;
            } else {
                self.set(i);
                i += 1;
            }
        }
    }

    /// Whether any bit of `start..end` is set.
    pub fn any_in(&self, start: u64, end: u64) -> bool {
        let end = end.min(self.len);
        let mut i = start;
        while i < end {
            if i.is_multiple_of(64) && end - i >= 64 {
                let w = usize::try_from(i / 64).ok();
                if w.and_then(|w| self.words.get(w)).is_some_and(|x| *x != 0) {
                    return true;
                }
                i += 64;
            } else {
                if self.get(i) {
                    return true;
                }
                i += 1;
            }
        }
        false
    }

    /// Number of set bits in `start..end`.
    pub fn count_in(&self, start: u64, end: u64) -> u64 {
        let end = end.min(self.len);
        let mut n = 0u64;
        let mut i = start;
        while i < end {
            if i.is_multiple_of(64) && end - i >= 64 {
                let w = usize::try_from(i / 64).ok();
                n += w
                    .and_then(|w| self.words.get(w))
                    .map_or(0, |x| u64::from(x.count_ones()));
                i += 64;
            } else {
                n += u64::from(self.get(i));
                i += 1;
            }
        }
        n
    }

    /// The first clear index in `start..end`.
    pub fn first_clear(&self, start: u64, end: u64) -> Option<u64> {
        let end = end.min(self.len);
        let mut i = start;
        while i < end {
            if i.is_multiple_of(64) && end - i >= 64 {
                let w = usize::try_from(i / 64).ok();
                if w.and_then(|w| self.words.get(w)) == Some(&u64::MAX) {
                    i += 64;
                    continue;
                }
            }
            if !self.get(i) {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    /// Iterates over the set indexes in `start..end`, in order.
    pub fn iter_set(&self, start: u64, end: u64) -> impl Iterator<Item = u64> + '_ {
        let end = end.min(self.len);
        let mut i = start;
        std::iter::from_fn(move || {
            while i < end {
                if i.is_multiple_of(64) {
                    let w = usize::try_from(i / 64).ok();
                    if w.and_then(|w| self.words.get(w)) == Some(&0) {
                        i += 64;
                        continue;
                    }
                }
                let cur = i;
                i += 1;
                if self.get(cur) {
                    return Some(cur);
                }
            }
            None
        })
    }

    /// Clears everything.
    pub fn clear_all(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
    }

    /// Sets the bits of an on-disk bitmap: bit `i` of `bytes` (LSB first)
    /// at index `base + i`, for `i < nbits`. Word at a time when `base` is
    /// a multiple of 64.
    pub fn or_bytes(&mut self, base: u64, bytes: &[u8], nbits: u64) {
        let nbits = nbits.min(bytes.len() as u64 * 8);
        if base.is_multiple_of(64) {
            let w0 = usize::try_from(base / 64).unwrap_or(usize::MAX);
            let full = (nbits / 64) as usize;
            for k in 0..full {
                let mut b = [0u8; 8];
                b.copy_from_slice(&bytes[k * 8..k * 8 + 8]);
                let v = u64::from_le_bytes(b);
                if v != 0 {
                    if let Some(w) = self.words.get_mut(w0.saturating_add(k)) {
                        *w |= v;
                    }
                }
            }
            for i in (full as u64 * 64)..nbits {
                if bytes[(i / 8) as usize] & (1 << (i % 8)) != 0 {
                    self.set(base + i);
                }
            }
            // Bits past `len` are never set (the last word is masked).
            self.mask_tail();
            return;
        }
        for i in 0..nbits {
            if bytes[(i / 8) as usize] & (1 << (i % 8)) != 0 {
                self.set(base + i);
            }
        }
    }

    fn mask_tail(&mut self) {
        let r = self.len % 64;
        if r != 0 {
            if let Some(w) = self.words.last_mut() {
                *w &= (1u64 << r) - 1;
            }
        }
    }

    /// The indexes in `0..end` where `self` and `other` differ, in order.
    pub fn diff_iter<'a>(&'a self, other: &'a BitSet, end: u64) -> impl Iterator<Item = u64> + 'a {
        let end = end.min(self.len).min(other.len);
        let nwords = usize::try_from(end.div_ceil(64)).unwrap_or(0);
        (0..nwords).flat_map(move |k| {
            let x =
                self.words.get(k).copied().unwrap_or(0) ^ other.words.get(k).copied().unwrap_or(0);
            let base = k as u64 * 64;
            let mut bits = x;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let t = u64::from(bits.trailing_zeros());
                bits &= bits - 1;
                Some(base + t)
            })
            .filter(move |&i| i < end)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_ranges_and_iteration() {
        let mut b = BitSet::new(300);
        assert!(!b.set(5));
        assert!(b.set(5));
        assert!(b.get(5));
        assert!(!b.get(299));
        assert!(!b.set(1000), "out of range is ignored");
        assert!(!b.get(1000));
        b.set_range(60, 200);
        assert_eq!(b.count_in(0, 300), 141);
        assert!(b.any_in(199, 300));
        assert!(!b.any_in(200, 300));
        assert_eq!(b.first_clear(60, 300), Some(200));
        assert_eq!(b.first_clear(0, 300), Some(0));
        let v: Vec<u64> = b.iter_set(0, 70).collect();
        assert_eq!(v, vec![5, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69]);
        assert!(b.clear(64));
        assert!(!b.get(64));
        b.clear_all();
        assert_eq!(b.count_in(0, 300), 0);
    }

    #[test]
    fn bitmap_bytes_and_differences() {
        let bytes: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        let mut fast = BitSet::new(300);
        fast.or_bytes(0, &bytes, 300);
        let mut slow = BitSet::new(300);
        for i in 0..300u64 {
            if bytes[(i / 8) as usize] & (1 << (i % 8)) != 0 {
                slow.set(i);
            }
        }
        assert_eq!(fast.diff_iter(&slow, 300).count(), 0);
        let mut off = BitSet::new(400);
        off.or_bytes(64, &bytes, 300);
        off.or_bytes(3, &[0xff], 8);
        assert!(off.get(3) && off.get(10) && !off.get(11));
        assert_eq!(off.get(64 + 5), slow.get(5));
        slow.set(7);
        slow.clear(100);
        fast.set(299);
        let d: Vec<u64> = fast.diff_iter(&slow, 300).collect();
        let mut want = Vec::new();
        for i in [7u64, 100, 299] {
            if fast.get(i) != slow.get(i) {
                want.push(i);
            }
        }
        assert_eq!(d, want);
    }
}

/// A fast hasher for the checker's integer-keyed maps (inode and block
/// numbers come from the image, but the maps are private and bounded, so
/// a non-keyed hash is fine): multiply-xorshift over each written word.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in chunks.by_ref() {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// `BuildHasher` of [`FastHasher`].
pub type FastHash = std::hash::BuildHasherDefault<FastHasher>;

/// A set of byte strings (the names of one directory block) without an
/// allocation per name: the names live in one arena, found by hash.
#[derive(Debug, Default)]
pub struct NameSet {
    arena: Vec<u8>,
    index: std::collections::HashMap<u64, Vec<(u32, u16)>, FastHash>,
}

impl NameSet {
    pub fn clear(&mut self) {
        self.arena.clear();
        self.index.clear();
    }

    /// Adds `name`; false when it was already there.
    pub fn insert(&mut self, name: &[u8]) -> bool {
        use std::hash::{BuildHasher, Hasher};
        let mut h = FastHash::default().build_hasher();
        h.write(name);
        let key = h.finish();
        let arena = &self.arena;
        let slot = self.index.entry(key).or_default();
        if slot
            .iter()
            .any(|&(s, l)| arena.get(s as usize..s as usize + usize::from(l)) == Some(name))
        {
            return false;
        }
        let (Ok(s), Ok(l)) = (u32::try_from(self.arena.len()), u16::try_from(name.len())) else {
            return true;
        };
        slot.push((s, l));
        self.arena.extend_from_slice(name);
        true
    }
}
