//! File data: read, write, truncate, fallocate (allocate, keep size, punch
//! hole, zero range), SEEK_DATA/SEEK_HOLE, copy_file_range, open/release
//! and fsync.
//!
//! Writes allocate blocks at once (goal: where the file's nearest earlier
//! run would continue, so sequential writes come out contiguous even when
//! the kernel's writeback sends them out of order) and land in the dirty
//! block cache; reads take dirty blocks from the cache and everything else
//! from the image mapping. Unwritten (fallocated) blocks read as zeros
//! until written.

use super::cache::BlockKind;
use super::error::{FsError, FsResult};
use super::filemap::MapKind;
use super::inode::update_i_blocks;
use super::{now, DeferredCopy, Fs, State};
use crate::format::indirect::max_file_blocks;

/// fallocate mode bits.
pub const FALLOC_FL_KEEP_SIZE: u32 = 0x01;
pub const FALLOC_FL_PUNCH_HOLE: u32 = 0x02;
pub const FALLOC_FL_ZERO_RANGE: u32 = 0x10;

/// lseek whence values.
pub const SEEK_DATA: u32 = 3;
pub const SEEK_HOLE: u32 = 4;

/// Largest run allocated at once for one write.
const MAX_ALLOC_RUN: u32 = 32768;

impl State<'_> {
    fn max_file_blocks(&self, kind: MapKind) -> u64 {
        match kind {
            MapKind::Extents => 1u64 << 32,
            MapKind::BlockMap => max_file_blocks(self.vol.block_size()),
        }
    }

    /// Reads up to `size` bytes at `off` (stops at end of file).
    pub fn read_data(&mut self, ino: u32, off: u64, size: u32) -> FsResult<Vec<u8>> {
        let st = self.get(ino)?;
        if st.inode.is_dir() {
            return Err(FsError::isdir());
        }
        let file_size = st.inode.size;
        if off >= file_size {
            return Ok(Vec::new());
        }
        if st.inode.has_flag(crate::format::inode::flags::INLINE_DATA) && st.map.is_none() {
            let data = self.inline_file_data(ino)?;
            let start = usize::try_from(off).unwrap_or(usize::MAX).min(data.len());
            let end = start.saturating_add(size as usize).min(data.len());
            return Ok(data[start..end].to_vec());
        }
        self.ensure_map(ino)?;
        let bs = self.vol.block_size() as u64;
        let len = (file_size - off).min(u64::from(size)) as usize;
        let mut out = vec![0u8; len];
        let map = self.inodes[&ino].map.as_ref().expect("loaded");
        let mut pos = 0usize;
        while pos < len {
            let abs = off + pos as u64;
            let lblk = u32::try_from(abs / bs).map_err(|_| FsError::fbig())?;
            let in_blk = (abs % bs) as usize;
            let want_blocks = ((len - pos + in_blk) as u64).div_ceil(bs) as u32;
            let (phys, unwritten, n) = map.extent_at(lblk, want_blocks.max(1));
            let span = ((n as u64 * bs) as usize - in_blk).min(len - pos);
            if let (Some(p), false) = (phys, unwritten) {
                let mut done = 0usize;
                let mut b = 0u64;
                while done < span {
                    let from = if b == 0 { in_blk } else { 0 };
                    let take = (bs as usize - from).min(span - done);
                    self.vol
                        .read_into(p + b, from, &mut out[pos + done..pos + done + take])?;
                    done += take;
                    b += 1;
                }
            }
            pos += span;
        }
        Ok(out)
    }

    /// The byte range of the image holding `off..off+size` of the file, if
    /// it is one contiguous, written, unchanged run.
    fn direct_range(
        &mut self,
        ino: u32,
        off: u64,
        size: u32,
    ) -> FsResult<Option<std::ops::Range<usize>>> {
        let st = self.get(ino)?;
        let file_size = st.inode.size;
        if st.map.is_none() || off >= file_size || size == 0 {
            return Ok(None);
        }
        let bs = self.vol.block_size() as u64;
        let len = (file_size - off).min(u64::from(size));
        let first = u32::try_from(off / bs).map_err(|_| FsError::fbig())?;
        let nblocks = ((off % bs + len).div_ceil(bs)) as u32;
        let map = self.inodes[&ino].map.as_ref().expect("checked");
        let (phys, unwritten, n) = map.extent_at(first, nblocks);
        let Some(p) = phys else { return Ok(None) };
        if unwritten || n < nblocks || (0..u64::from(nblocks)).any(|i| self.vol.is_dirty(p + i)) {
            return Ok(None);
        }
        let start = p * bs + off % bs;
        let start = usize::try_from(start).map_err(|_| FsError::io())?;
        let end = start + len as usize;
        if end > self.vol.img.bytes().len() {
            return Err(FsError::corrupt(format!(
                "inode {ino}: data beyond the image"
            )));
        }
        Ok(Some(start..end))
    }

    /// Writes `data` at `off`, allocating as needed; returns bytes written.
    pub fn write_data(&mut self, ino: u32, off: u64, data: &[u8]) -> FsResult<usize> {
        if self.vol.read_only {
            return Err(FsError::rofs());
        }
        if data.is_empty() {
            return Ok(0);
        }
        let st = self.get(ino)?;
        if st.inode.is_dir() {
            return Err(FsError::isdir());
        }
        self.ensure_map(ino)?;
        let bs = self.vol.block_size() as u64;
        let end = off
            .checked_add(data.len() as u64)
            .ok_or_else(FsError::fbig)?;
        let kind = self.inodes[&ino].map.as_ref().expect("loaded").kind;
        if end.div_ceil(bs) > self.max_file_blocks(kind) {
            return Err(FsError::fbig());
        }
        let first_blk = (off / bs) as u32;
        let last_blk = ((end - 1) / bs) as u32;
        let default_goal = self.vol.inode_group_start(ino);
        let mut l = first_blk;
        while l <= last_blk {
            let want = last_blk - l + 1;
            let (phys, unwritten, n) = {
                let map = self.inodes[&ino].map.as_ref().expect("loaded");
                map.extent_at(l, want)
            };
            match phys {
                Some(p) => {
                    // Unwritten blocks read as zeros: start them from zeros.
                    self.copy_into_blocks(l, p, n, unwritten, off, data)?;
                    if unwritten {
                        let map = self
                            .inodes
                            .get_mut(&ino)
                            .expect("loaded")
                            .map
                            .as_mut()
                            .expect("loaded");
                        map.mark_written(l, n);
                    }
                    l += n;
                }
                None => {
                    let goal = self.inodes[&ino]
                        .map
                        .as_ref()
                        .expect("loaded")
                        .goal_for(l)
                        .unwrap_or(default_goal);
                    let (p, got) = match self.vol.alloc_blocks(goal, n.min(MAX_ALLOC_RUN)) {
                        Ok(r) => r,
                        Err(e) if e.errno == libc::ENOSPC && l > first_blk => {
                            // A short write: what is mapped so far counts.
                            let written = (u64::from(l) * bs)
                                .saturating_sub(off)
                                .min(data.len() as u64);
                            self.finish_write(ino, off + written);
                            return Ok(written as usize);
                        }
                        Err(e) => return Err(e),
                    };
                    {
                        let map = self
                            .inodes
                            .get_mut(&ino)
                            .expect("loaded")
                            .map
                            .as_mut()
                            .expect("loaded");
                        map.map(l, p, got, false);
                    }
                    self.copy_into_blocks(l, p, got, true, off, data)?;
                    l += got;
                }
            }
        }
        self.finish_write(ino, end);
        Ok(data.len())
    }

    /// Copies the part of a write (`data` at byte `off`) that falls in
    /// logical blocks `lblk..lblk+count` into physical blocks `phys..`.
    /// The blocks the write covers whole go to the image directly
    /// ([`Volume::write_data_blocks`]); the partly written ones at either
    /// end through the cache. `fresh`: their old content does not count
    /// (newly allocated or unwritten), so they start zero-filled.
    ///
    /// [`Volume::write_data_blocks`]: super::volume::Volume::write_data_blocks
    fn copy_into_blocks(
        &mut self,
        lblk: u32,
        phys: u64,
        count: u32,
        fresh: bool,
        off: u64,
        data: &[u8],
    ) -> FsResult<()> {
        let bs = self.vol.block_size() as u64;
        let end = off + data.len() as u64;
        let run = u64::from(lblk)..u64::from(lblk) + u64::from(count);
        let whole = off.div_ceil(bs).max(run.start)..(end / bs).min(run.end);
        if !whole.is_empty() {
            let src = (whole.start * bs - off) as usize;
            let len = ((whole.end - whole.start) * bs) as usize;
            let first = phys + (whole.start - run.start);
            match self.deferred_copies.as_mut() {
                // Blocks the file already had and wrote: the write only
                // replaces their bytes (see `Fs::write`).
                Some(later) if !fresh => later.push(DeferredCopy { first, src, len }),
                _ => self.vol.write_data_blocks(first, &data[src..src + len])?,
            }
        }
        for lb in run.clone().filter(|lb| !whole.contains(lb)) {
            let (from, to) = block_span(lb as u32, off, end, bs);
            let blk_no = phys + (lb - run.start);
            let mut blk = if fresh {
                self.vol.new_block(blk_no, BlockKind::Data)?
            } else {
                self.vol.write_block(blk_no, BlockKind::Data)?
            };
            let src = (lb * bs + from as u64 - off) as usize;
            blk[from..to].copy_from_slice(&data[src..src + (to - from)]);
        }
        Ok(())
    }

    /// Size, times, i_blocks and reservation after a write ending at `end`.
    fn finish_write(&mut self, ino: u32, end: u64) {
        let t = now();
        let vol = &self.vol;
        let st = self.inodes.get_mut(&ino).expect("loaded");
        if end > st.inode.size {
            st.inode.size = end;
        }
        st.inode.mtime = t;
        st.inode.ctime = t;
        st.dirty = true;
        update_i_blocks(vol, st);
        if let Err(e) = self.note_changed(ino) {
            log::warn!("inode {ino}: write-back reservation over-committed: {e}");
        }
    }

    /// Frees the blocks past `size` and zeroes the tail of the last one.
    pub fn truncate_blocks(&mut self, ino: u32, size: u64) -> FsResult<()> {
        self.ensure_map(ino)?;
        let bs = self.vol.block_size() as u64;
        let keep = size.div_ceil(bs);
        let map = self
            .inodes
            .get_mut(&ino)
            .expect("loaded")
            .map
            .as_mut()
            .expect("loaded");
        let end = map.end();
        if end > keep {
            let freed = map.unmap(keep as u32, (end - keep) as u32);
            for (p, n) in freed {
                self.vol.free_blocks(p, u64::from(n))?;
            }
        }
        if !size.is_multiple_of(bs) {
            let last = (size / bs) as u32;
            let map = self.inodes[&ino].map.as_ref().expect("loaded");
            if let Some((p, false)) = map.lookup(last) {
                let mut blk = self.vol.write_block(p, BlockKind::Data)?;
                blk[(size % bs) as usize..].fill(0);
            }
        }
        let vol = &self.vol;
        let st = self.inodes.get_mut(&ino).expect("loaded");
        update_i_blocks(vol, st);
        st.dirty = true;
        self.note_changed(ino)
    }

    /// Sets the size of a regular file (truncate or extend).
    pub fn set_size(&mut self, ino: u32, size: u64) -> FsResult<()> {
        if self.vol.read_only {
            return Err(FsError::rofs());
        }
        let st = self.get(ino)?;
        if st.inode.is_dir() {
            return Err(FsError::isdir());
        }
        if !st.inode.is_reg() {
            return Err(FsError::inval());
        }
        let old = st.inode.size;
        self.ensure_map(ino)?;
        let bs = self.vol.block_size() as u64;
        let kind = self.inodes[&ino].map.as_ref().expect("loaded").kind;
        if size.div_ceil(bs) > self.max_file_blocks(kind) {
            return Err(FsError::fbig());
        }
        if size < old {
            self.truncate_blocks(ino, size)?;
        }
        let t = now();
        let st = self.inodes.get_mut(&ino).expect("loaded");
        st.inode.size = size;
        st.inode.mtime = t;
        st.inode.ctime = t;
        st.dirty = true;
        Ok(())
    }

    /// fallocate(2).
    pub fn fallocate(&mut self, ino: u32, off: u64, len: u64, mode: u32) -> FsResult<()> {
        if self.vol.read_only {
            return Err(FsError::rofs());
        }
        let supported = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
        if mode & !supported != 0 {
            return Err(FsError::opnotsupp());
        }
        if len == 0 {
            return Err(FsError::inval());
        }
        let end = off.checked_add(len).ok_or_else(FsError::fbig)?;
        let st = self.get(ino)?;
        if !st.inode.is_reg() {
            return Err(if st.inode.is_dir() {
                FsError::isdir()
            } else {
                FsError::errno(libc::ENODEV)
            });
        }
        self.ensure_map(ino)?;
        let bs = self.vol.block_size() as u64;
        let kind = self.inodes[&ino].map.as_ref().expect("loaded").kind;
        if end.div_ceil(bs) > self.max_file_blocks(kind) {
            return Err(FsError::fbig());
        }
        if mode & FALLOC_FL_PUNCH_HOLE != 0 {
            if mode & FALLOC_FL_KEEP_SIZE == 0 || mode & FALLOC_FL_ZERO_RANGE != 0 {
                return Err(FsError::opnotsupp());
            }
            let size = self.inodes[&ino].inode.size;
            return self.punch(ino, off, end.min(size.max(off)));
        }
        if kind != MapKind::Extents {
            return Err(FsError::opnotsupp());
        }
        if mode & FALLOC_FL_ZERO_RANGE != 0 {
            self.punch(ino, off, end)?;
        }
        // Allocate unwritten blocks for every hole in the range.
        let first = (off / bs) as u32;
        let last = ((end - 1) / bs) as u32;
        let default_goal = self.vol.inode_group_start(ino);
        let mut l = first;
        while l <= last {
            let (phys, _, n) = self.inodes[&ino]
                .map
                .as_ref()
                .expect("loaded")
                .extent_at(l, last - l + 1);
            if phys.is_some() {
                l += n;
                continue;
            }
            let goal = self.inodes[&ino]
                .map
                .as_ref()
                .expect("loaded")
                .goal_for(l)
                .unwrap_or(default_goal);
            let (p, got) = self.vol.alloc_blocks(goal, n.min(MAX_ALLOC_RUN))?;
            self.inodes
                .get_mut(&ino)
                .expect("loaded")
                .map
                .as_mut()
                .expect("loaded")
                .map(l, p, got, true);
            l += got;
        }
        let t = now();
        let vol = &self.vol;
        let st = self.inodes.get_mut(&ino).expect("loaded");
        if mode & FALLOC_FL_KEEP_SIZE == 0 && end > st.inode.size {
            st.inode.size = end;
        }
        st.inode.ctime = t;
        if mode & FALLOC_FL_ZERO_RANGE != 0 {
            st.inode.mtime = t;
        }
        st.dirty = true;
        update_i_blocks(vol, st);
        self.note_changed(ino)
    }

    /// Makes `off..end` read as zeros: whole blocks are unmapped and freed,
    /// partial blocks are zeroed in place.
    fn punch(&mut self, ino: u32, off: u64, end: u64) -> FsResult<()> {
        if end <= off {
            return Ok(());
        }
        let bs = self.vol.block_size() as u64;
        let first_full = off.div_ceil(bs);
        let end_full = end / bs;
        if first_full < end_full {
            let map = self
                .inodes
                .get_mut(&ino)
                .expect("loaded")
                .map
                .as_mut()
                .expect("loaded");
            let freed = map.unmap(first_full as u32, (end_full - first_full) as u32);
            for (p, n) in freed {
                self.vol.free_blocks(p, u64::from(n))?;
            }
        }
        // Partial blocks at either end are zeroed in place.
        let mut edges = vec![off / bs, (end - 1) / bs];
        edges.dedup();
        for lb in edges {
            let (from, to) = block_span(lb as u32, off, end, bs);
            if from == 0 && to == bs as usize {
                continue;
            }
            let map = self.inodes[&ino].map.as_ref().expect("loaded");
            if let Some((p, false)) = map.lookup(lb as u32) {
                self.vol.write_block(p, BlockKind::Data)?[from..to].fill(0);
            }
        }
        let t = now();
        let vol = &self.vol;
        let st = self.inodes.get_mut(&ino).expect("loaded");
        st.inode.mtime = t;
        st.inode.ctime = t;
        st.dirty = true;
        update_i_blocks(vol, st);
        self.note_changed(ino)
    }

    /// SEEK_DATA / SEEK_HOLE from `off`.
    pub fn seek_data_hole(&mut self, ino: u32, off: u64, whence: u32) -> FsResult<u64> {
        let size = self.get(ino)?.inode.size;
        if off >= size {
            return Err(FsError::nxio());
        }
        self.ensure_map(ino)?;
        let bs = self.vol.block_size() as u64;
        let map = self.inodes[&ino].map.as_ref().expect("loaded");
        let mut l = off / bs;
        let last = size.div_ceil(bs);
        while l < last {
            let (phys, unwritten, n) =
                map.extent_at(l as u32, (last - l).min(u64::from(u32::MAX)) as u32);
            let is_data = phys.is_some() && !unwritten;
            if whence == SEEK_DATA && is_data {
                return Ok((l * bs).max(off));
            }
            if whence == SEEK_HOLE && !is_data {
                return Ok((l * bs).max(off));
            }
            l += u64::from(n.max(1));
        }
        if whence == SEEK_DATA {
            Err(FsError::nxio())
        } else {
            Ok(size)
        }
    }
}

/// The byte range `[from, to)` of block `lb` that a write of `off..end`
/// covers.
fn block_span(lb: u32, off: u64, end: u64, bs: u64) -> (usize, usize) {
    let start = u64::from(lb) * bs;
    let from = off.saturating_sub(start).min(bs) as usize;
    let to = (end - start).min(bs) as usize;
    (from, to)
}

/// What a read found: a range of the image to send as it is, or bytes.
enum ReadOut {
    Mapped(std::ops::Range<usize>),
    Copied(Vec<u8>),
}

impl Fs {
    /// An open of `ino`; `writable` when it may write (the kernel may then
    /// hold written data the daemon has not seen yet, see `lseek`).
    pub fn open(&self, ino: u32, writable: bool) -> FsResult<()> {
        self.op(&[ino], |st| {
            let s = st.get(ino)?;
            s.open_count += 1;
            if writable {
                s.writers += 1;
            }
            Ok(())
        })
    }

    pub fn release(&self, ino: u32, writable: bool) -> FsResult<()> {
        self.op(&[], |st| {
            if let Some(s) = st.get_loaded(ino)? {
                if writable {
                    s.writers = s.writers.saturating_sub(1);
                }
                s.open_count = s.open_count.saturating_sub(1);
                if s.open_count == 0 {
                    st.maybe_release(ino)?;
                }
            }
            Ok(())
        })
    }

    pub fn read(&self, ino: u32, off: u64, size: u32) -> FsResult<Vec<u8>> {
        self.op(&[ino], |st| {
            let data = st.read_data(ino, off, size)?;
            st.touch_atime(ino);
            Ok(data)
        })
    }

    /// Reads and hands the bytes to `reply`: when the range lies in one run
    /// of blocks with no pending change, the slice comes straight from the
    /// image mapping (no copy in the daemon). The mapping only changes
    /// under the exclusive gate, which is held shared until `reply` is
    /// done, so the inode itself need not stay locked.
    pub fn read_with<R>(
        &self,
        ino: u32,
        off: u64,
        size: u32,
        reply: impl FnOnce(&[u8]) -> R,
    ) -> FsResult<R> {
        let vol = self.gate.read();
        let out = self.op_on(&vol, false, &[ino], |st| {
            let out = match st.direct_range(ino, off, size)? {
                Some(range) => ReadOut::Mapped(range),
                None => ReadOut::Copied(st.read_data(ino, off, size).inspect_err(|e| {
                    if e.errno == libc::EIO {
                        log::error!("inode {ino}: read at {off}: {}", e.detail);
                    }
                })?),
            };
            st.touch_atime(ino);
            Ok(out)
        })?;
        Ok(match out {
            ReadOut::Mapped(range) => {
                // A fault of the mapping (image shrunk, device error) is
                // this read's EIO.
                let bytes = vol
                    .img
                    .checked_data(range.start, range.len())
                    .map_err(|e| {
                        log::error!("inode {ino}: read at {off}: {e}");
                        FsError::new(libc::EIO, format!("inode {ino}: {e}"))
                    })?;
                reply(bytes)
            }
            ReadOut::Copied(data) => reply(&data),
        })
    }

    /// A write. Whole blocks going into blocks the file already had are
    /// copied after the inode's lock is released, so that writes to one
    /// file (the kernel writing back many dirty pages at once) overlap in
    /// their copies. The inode's data stripe, held shared until then,
    /// keeps truncate and fallocate from freeing those blocks (which could
    /// otherwise go to another file meanwhile); the gate, held throughout,
    /// keeps write-back from showing the image between the two steps.
    pub fn write(&self, ino: u32, off: u64, data: &[u8]) -> FsResult<usize> {
        let n = {
            let _blocks_stay = self.data_lock(ino).read();
            let vol = self.gate.read();
            let (n, copies) = self.op_on(&vol, false, &[ino], |st| {
                st.deferred_copies = Some(Vec::new());
                let n = st.write_data(ino, off, data)?;
                Ok((n, st.deferred_copies.take().unwrap_or_default()))
            })?;
            for c in copies {
                vol.write_data_blocks(c.first, &data[c.src..c.src + c.len])?;
            }
            n
        };
        self.throttle()?;
        self.sync_if_requested()?;
        Ok(n)
    }

    pub fn fallocate(&self, ino: u32, off: u64, len: u64, mode: u32) -> FsResult<()> {
        // May free or move the file's blocks: no write's copy in flight.
        let _no_copies = self.data_lock(ino).write();
        self.op(&[ino], |st| st.fallocate(ino, off, len, mode))?;
        self.sync_if_requested()
    }

    /// Whether `ino` has handles open for writing (with FUSE's writeback
    /// cache, the kernel may then hold written data not yet sent here).
    pub fn has_writers(&self, ino: u32) -> FsResult<bool> {
        self.op(&[ino], |st| Ok(st.get(ino)?.writers > 0))
    }

    /// SEEK_DATA/SEEK_HOLE, from what the daemon has (with FUSE's writeback
    /// cache the adapter first has the kernel send its unwritten pages).
    pub fn lseek(&self, ino: u32, off: u64, whence: u32) -> FsResult<u64> {
        self.op(&[ino], |st| st.seek_data_hole(ino, off, whence))
    }

    /// copy_file_range: a read and a write inside the daemon.
    pub fn copy_range(
        &self,
        src: u32,
        src_off: u64,
        dst: u32,
        dst_off: u64,
        len: u64,
    ) -> FsResult<u64> {
        let done = self.op(&[src, dst], |st| {
            // Both inodes before anything changes (a restart must find
            // nothing done).
            st.get(src)?;
            st.get(dst)?;
            let mut done = 0u64;
            while done < len {
                let chunk = (len - done).min(1 << 20) as u32;
                let data = st.read_data(src, src_off + done, chunk)?;
                if data.is_empty() {
                    break;
                }
                st.write_data(dst, dst_off + done, &data)?;
                done += data.len() as u64;
            }
            Ok(done)
        })?;
        self.throttle()?;
        Ok(done)
    }

    /// fsync/fdatasync/fsyncdir: everything made durable (the whole file
    /// system: simple and never weaker than asked).
    pub fn fsync(&self, _ino: u32) -> FsResult<()> {
        self.sync()
    }
}
