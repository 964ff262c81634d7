//! A file's block mapping held in memory: logical block → physical run,
//! the single source of truth while the inode is in use.
//!
//! It is loaded from the on-disk extent tree or indirect block map on first
//! use, changed in memory by writes, truncates and fallocate, and turned
//! back into an on-disk structure when the inode is written back
//! ([`super::inode`]): the old tree or indirect blocks are freed and a
//! fresh, minimal one is built. Building whole trees at write-back rather
//! than splitting nodes on every change keeps the on-disk trees compact
//! (depth grows and shrinks as needed) and makes a write to a mapped block
//! a pure in-memory lookup.

use std::collections::BTreeMap;

/// Largest gap (blocks) between a run and a write after it that
/// allocation leaves free for the blocks in between: 16 MiB at 4 KiB.
const GOAL_KEEPS_GAPS_UP_TO: u32 = 4096;

/// One mapped run of blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub phys: u64,
    pub len: u32,
    /// Allocated but not written (fallocate): reads as zeros.
    pub unwritten: bool,
}

/// How the mapping is stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    Extents,
    BlockMap,
}

/// The in-memory mapping of one file.
#[derive(Debug, Clone)]
pub struct FileMap {
    pub kind: MapKind,
    /// Runs by first logical block; never overlapping.
    pub runs: BTreeMap<u32, Run>,
    /// The tree or indirect blocks the on-disk mapping uses now.
    pub meta_blocks: Vec<u64>,
    /// Changed since load or last write-back.
    pub dirty: bool,
    /// Sum of the runs' lengths (kept up to date by `map`/`unmap`).
    blocks: u64,
    /// Extents the runs need on disk (a run longer than an extent can hold
    /// takes several), kept up to date likewise.
    extents: usize,
}

/// Extents needed for a run of `len` blocks (unwritten extents hold the
/// fewest blocks, so this bounds both kinds).
fn extents_for(len: u32) -> usize {
    len.div_ceil(32_767) as usize
}

impl FileMap {
    pub fn new(kind: MapKind) -> Self {
        FileMap {
            kind,
            runs: BTreeMap::new(),
            meta_blocks: Vec::new(),
            dirty: false,
            blocks: 0,
            extents: 0,
        }
    }

    /// Recomputes the totals after `runs` was filled directly (loading).
    pub fn recount(&mut self) {
        self.blocks = self.runs.values().map(|r| u64::from(r.len)).sum();
        self.extents = self.runs.values().map(|r| extents_for(r.len)).sum();
    }

    fn insert_run(&mut self, start: u32, run: Run) {
        self.blocks += u64::from(run.len);
        self.extents += extents_for(run.len);
        if let Some(old) = self.runs.insert(start, run) {
            self.blocks -= u64::from(old.len);
            self.extents -= extents_for(old.len);
        }
    }

    fn remove_run(&mut self, start: u32) -> Option<Run> {
        let r = self.runs.remove(&start)?;
        self.blocks -= u64::from(r.len);
        self.extents -= extents_for(r.len);
        Some(r)
    }

    /// Extents the on-disk tree must hold.
    pub fn extent_count(&self) -> usize {
        self.extents
    }

    /// The run containing logical block `lblk`, with its start.
    pub fn find(&self, lblk: u32) -> Option<(u32, Run)> {
        let (&start, &run) = self.runs.range(..=lblk).next_back()?;
        (u64::from(lblk) < u64::from(start) + u64::from(run.len)).then_some((start, run))
    }

    /// Physical block of `lblk` and whether it is unwritten.
    pub fn lookup(&self, lblk: u32) -> Option<(u64, bool)> {
        self.find(lblk)
            .map(|(start, r)| (r.phys + u64::from(lblk - start), r.unwritten))
    }

    /// How many blocks from `lblk` on are mapped contiguously in the same
    /// state, or unmapped, up to `max`: (phys or None, unwritten, count).
    pub fn extent_at(&self, lblk: u32, max: u32) -> (Option<u64>, bool, u32) {
        if let Some((start, r)) = self.find(lblk) {
            let off = lblk - start;
            return (
                Some(r.phys + u64::from(off)),
                r.unwritten,
                (r.len - off).min(max),
            );
        }
        let next = self
            .runs
            .range(lblk..)
            .next()
            .map_or(u64::from(u32::MAX) + 1, |(&s, _)| u64::from(s));
        let gap = (next - u64::from(lblk)).min(u64::from(max)) as u32;
        (None, false, gap)
    }

    /// The physical runs `(first block, count)` holding data of logical
    /// blocks `lblk..lblk+len`, in logical order (holes and unwritten runs,
    /// which read as zeros, skipped).
    pub fn physical_runs(&self, lblk: u32, len: u32) -> impl Iterator<Item = (u64, u32)> + '_ {
        let end = lblk.saturating_add(len);
        let mut l = lblk;
        std::iter::from_fn(move || {
            while l < end {
                let (phys, unwritten, n) = self.extent_at(l, end - l);
                l = l.saturating_add(n.max(1));
                if let (Some(p), false) = (phys, unwritten) {
                    return Some((p, n));
                }
            }
            None
        })
    }

    /// Removes the mapping of `lblk..lblk+len` and returns the physical runs
    /// that were mapped there (to be freed by the caller).
    pub fn unmap(&mut self, lblk: u32, len: u32) -> Vec<(u64, u32)> {
        let end = u64::from(lblk) + u64::from(len);
        let mut freed = Vec::new();
        let starts: Vec<u32> = self
            .runs
            .range(..)
            .filter(|(&s, r)| {
                u64::from(s) < end && u64::from(s) + u64::from(r.len) > u64::from(lblk)
            })
            .map(|(&s, _)| s)
            .collect();
        for s in starts {
            let r = self.remove_run(s).expect("listed above");
            let r_end = u64::from(s) + u64::from(r.len);
            let cut_start = u64::from(lblk).max(u64::from(s));
            let cut_end = end.min(r_end);
            if u64::from(s) < cut_start {
                self.insert_run(
                    s,
                    Run {
                        len: (cut_start - u64::from(s)) as u32,
                        ..r
                    },
                );
            }
            if cut_end < r_end {
                let off = cut_end - u64::from(s);
                self.insert_run(
                    cut_end as u32,
                    Run {
                        phys: r.phys + off,
                        len: (r_end - cut_end) as u32,
                        unwritten: r.unwritten,
                    },
                );
            }
            freed.push((
                r.phys + (cut_start - u64::from(s)),
                (cut_end - cut_start) as u32,
            ));
        }
        if !freed.is_empty() {
            self.dirty = true;
        }
        freed
    }

    /// Maps `lblk..lblk+len` (which must be unmapped) to `phys..`, merging
    /// with neighbours where contiguous.
    pub fn map(&mut self, lblk: u32, phys: u64, len: u32, unwritten: bool) {
        self.dirty = true;
        let mut start = lblk;
        let mut run = Run {
            phys,
            len,
            unwritten,
        };
        if let Some((&ps, &pr)) = self.runs.range(..lblk).next_back() {
            if u64::from(ps) + u64::from(pr.len) == u64::from(lblk)
                && pr.phys + u64::from(pr.len) == phys
                && pr.unwritten == unwritten
                && u64::from(pr.len) + u64::from(len) <= u64::from(u32::MAX)
            {
                self.remove_run(ps);
                start = ps;
                run.phys = pr.phys;
                run.len += pr.len;
            }
        }
        let next_key = u64::from(lblk) + u64::from(len);
        if let Ok(nk) = u32::try_from(next_key) {
            if let Some(&nr) = self.runs.get(&nk) {
                if run.phys + u64::from(run.len) == nr.phys && nr.unwritten == unwritten {
                    self.remove_run(nk);
                    run.len += nr.len;
                }
            }
        }
        self.insert_run(start, run);
    }

    /// Marks `lblk..lblk+len` written (converting unwritten parts).
    pub fn mark_written(&mut self, lblk: u32, len: u32) {
        let mut l = lblk;
        let end = u64::from(lblk) + u64::from(len);
        while u64::from(l) < end {
            let (phys, unwritten, n) = self.extent_at(l, (end - u64::from(l)) as u32);
            if let (Some(p), true) = (phys, unwritten) {
                self.unmap(l, n);
                self.map(l, p, n, false);
            }
            l += n.max(1);
        }
    }

    /// Number of data blocks mapped.
    pub fn data_blocks(&self) -> u64 {
        self.blocks
    }

    /// The logical block after the last mapped one.
    pub fn end(&self) -> u64 {
        self.runs
            .iter()
            .next_back()
            .map_or(0, |(&s, r)| u64::from(s) + u64::from(r.len))
    }

    /// A goal for allocating logical block `lblk`, from the nearest mapped
    /// run before it: where `lblk` would lie if that run went on, when the
    /// gap between them is small (writes that arrive out of order, as the
    /// kernel's writeback sends them from several threads, then still fill
    /// one contiguous stretch); right after the run when the gap is large
    /// (random writes into a sparse file stay packed together).
    pub fn goal_for(&self, lblk: u32) -> Option<u64> {
        let (&s, r) = self.runs.range(..=lblk).next_back()?;
        let gap = lblk.saturating_sub(s.saturating_add(r.len));
        let offset = if gap <= GOAL_KEEPS_GAPS_UP_TO {
            lblk.saturating_sub(s)
        } else {
            r.len
        };
        Some(r.phys + u64::from(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_runs_skip_holes_and_unwritten_runs_and_clip_to_the_range() {
        let mut m = FileMap::new(MapKind::Extents);
        m.map(0, 1000, 4, false);
        m.map(6, 2000, 3, true);
        m.map(9, 3000, 2, false);
        let runs: Vec<_> = m.physical_runs(2, 8).collect();
        assert_eq!(runs, vec![(1002, 2), (3000, 1)]);
        assert_eq!(m.physical_runs(4, 2).count(), 0);
        assert_eq!(m.physical_runs(0, 0).count(), 0);
    }

    #[test]
    fn goal_keeps_small_gaps_and_packs_after_large_ones() {
        let mut m = FileMap::new(MapKind::Extents);
        assert_eq!(m.goal_for(5), None);
        m.map(0, 1000, 10, false);
        assert_eq!(m.goal_for(10), Some(1010), "right after");
        assert_eq!(m.goal_for(300), Some(1300), "out of order: room left");
        assert_eq!(m.goal_for(1_000_000), Some(1010), "far: packed");
    }

    #[test]
    fn map_merges_and_unmap_splits() {
        let mut m = FileMap::new(MapKind::Extents);
        m.map(0, 100, 10, false);
        m.map(10, 110, 5, false);
        assert_eq!(m.runs.len(), 1);
        assert_eq!(m.lookup(14), Some((114, false)));
        let freed = m.unmap(3, 4);
        assert_eq!(freed, vec![(103, 4)]);
        assert_eq!(m.runs.len(), 2);
        assert_eq!(m.lookup(3), None);
        assert_eq!(m.lookup(7), Some((107, false)));
        assert_eq!(m.data_blocks(), 11);
        assert_eq!(m.extent_at(3, 100), (None, false, 4));
    }

    #[test]
    fn unwritten_runs_convert_when_written() {
        let mut m = FileMap::new(MapKind::Extents);
        m.map(0, 50, 8, true);
        m.mark_written(2, 2);
        assert_eq!(m.lookup(1), Some((51, true)));
        assert_eq!(m.lookup(2), Some((52, false)));
        assert_eq!(m.lookup(4), Some((54, true)));
        assert_eq!(m.runs.len(), 3);
    }
}
