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
            if i % 64 == 0 && end - i >= 64 {
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
            if i % 64 == 0 && end - i >= 64 {
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
            if i % 64 == 0 && end - i >= 64 {
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
            if i % 64 == 0 && end - i >= 64 {
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
                if i % 64 == 0 {
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
}
