//! The image a mounted file system lives in: a regular file or a block
//! device, memory-mapped whole.
//!
//! Reads are served straight from the mapping. Writes come from the
//! write-back path of the block cache, and whole blocks of file data from
//! the write itself (`Volume::write_data_blocks`); all go through
//! pwrite(2) on the file, not through the mapping: both share the page
//! cache, so the mapping sees them at once, and a failing write (ENOSPC
//! on the file system holding a sparse image, EIO) comes back as an
//! error, which the cache keeps its dirty blocks for and fsync reports,
//! instead of a SIGBUS that would kill the daemon with the data. [`Image::flush`] then makes
//! them durable with msync and fdatasync. A read-only image is mapped
//! read-only, so a bug can never write to it.
//!
//! The image is mapped twice, for two kinds of reads. Metadata (inode
//! tables, directories, bitmaps, extent trees) is read through a mapping
//! with no read-around on faults: the fault handler would otherwise read
//! the device's whole read-ahead size (8 MiB on some virtual disks) around
//! every cold block touched, so a lookup in a cold directory waited for
//! megabytes. The file system asks ahead for what it knows it will read
//! ([`Image::prefetch_ranges`], in aligned stretches of 128 KiB). File
//! data is read through a second, read-only mapping with the kernel's
//! usual read-around and read-ahead, which sequential reads and
//! neighbouring small files profit from. Both share the file's page cache.
//!
//! I/O errors met while *reading* the mapping (a failing device, an image
//! file that shrank under the daemon) surface as SIGBUS: the mapping is
//! registered with [`crate::image_fault`], and readers take their bytes
//! through [`Image::checked`], which turns such a fault into EIO for that
//! one operation.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;

use memmap2::{Mmap, MmapMut, MmapOptions};

use crate::image_fault::{self, MapKind, Registration};

enum Mapping {
    ReadOnly(Mmap),
    ReadWrite(MmapMut),
}

/// The alignment and least size of what [`Image::prefetch_ranges`] reads.
/// Metadata that is read together lies together (an inode table, the
/// blocks of the directories made next to each other), but the asks come
/// one directory or one table block at a time, each a read of its own
/// for the device. A cold `find` of the bench's 40,000-file tree read
/// 24.6 MB in 3,490 reads that way; widened to 64 KiB stretches, 25.3 MB
/// in 426 reads, and 26.9 MB in 156 with 256 KiB, the time the device
/// spent on them going from 145-194 ms to 40-72 ms
/// (bench/results/NOTES-2026-11-23-session9.md). 128 KiB is also what
/// ext4 reads ahead of an inode by default.
pub const PREFETCH_GRAIN: usize = 128 << 10;

/// The part of an image of `size` bytes that a prefetch of `len` bytes at
/// `offset` reads: widened to whole [`PREFETCH_GRAIN`] stretches, cut at
/// the end of the image. None when nothing of it is inside.
fn prefetch_span(offset: u64, len: u64, size: usize) -> Option<(usize, usize)> {
    let start = usize::try_from(offset)
        .ok()
        .filter(|&s| s < size && len > 0)?;
    let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
    let first = start - start % PREFETCH_GRAIN;
    let last = end.div_ceil(PREFETCH_GRAIN).saturating_mul(PREFETCH_GRAIN);
    Some((first, last.min(size) - first))
}

/// The [`prefetch_span`]s of `ranges` in an image of `size` bytes, sorted,
/// with overlapping and touching ones merged: `(start, len)` each.
fn merged_prefetch_spans(
    ranges: impl IntoIterator<Item = (u64, u64)>,
    size: usize,
) -> Vec<(usize, usize)> {
    let mut spans: Vec<(usize, usize)> = ranges
        .into_iter()
        .filter_map(|(offset, len)| prefetch_span(offset, len, size))
        .map(|(start, len)| (start, start + len))
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged.into_iter().map(|(s, e)| (s, e - s)).collect()
}

/// A memory-mapped image.
pub struct Image {
    /// Declared first: unregistered before the file closes and the
    /// mappings go away.
    _faults: Option<Registration>,
    _data_faults: Option<Registration>,
    file: File,
    /// The metadata mapping (no read-around).
    map: Mapping,
    /// The file data mapping (read-only, usual read-around).
    data: Mmap,
}

impl Image {
    /// Opens and maps `path`; `writable` maps it shared read-write.
    pub fn open(path: &Path, writable: bool) -> io::Result<Image> {
        let file = OpenOptions::new().read(true).write(writable).open(path)?;
        let meta = file.metadata()?;
        let len = if meta.file_type().is_block_device() {
            use std::io::{Seek, SeekFrom};
            let mut f = &file;
            f.seek(SeekFrom::End(0))?
        } else {
            meta.len()
        };
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "image is empty"));
        }
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "image too large"))?;
        // SAFETY: the mapping is of a file we opened; other processes that
        // modify it concurrently (against the documented rules) can change
        // bytes under us but cannot make the mapping invalid, and every read
        // from it is bounds- and content-checked by the format layer.
        let (map, data) = unsafe {
            let map = if writable {
                Mapping::ReadWrite(MmapOptions::new().len(len).map_mut(&file)?)
            } else {
                Mapping::ReadOnly(MmapOptions::new().len(len).map(&file)?)
            };
            (map, MmapOptions::new().len(len).map(&file)?)
        };
        // Metadata: no read-around (see the module notes).
        match &map {
            Mapping::ReadOnly(m) => m.advise(memmap2::Advice::Random)?,
            Mapping::ReadWrite(m) => m.advise(memmap2::Advice::Random)?,
        }
        let (ptr, kind) = match &map {
            Mapping::ReadOnly(m) => (m.as_ptr(), MapKind::SharedReadOnly),
            Mapping::ReadWrite(m) => (m.as_ptr(), MapKind::SharedReadWrite),
        };
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        let faults = image_fault::register(ptr, len, fd, kind);
        let data_faults = image_fault::register(data.as_ptr(), len, fd, MapKind::SharedReadOnly);
        Ok(Image {
            _faults: faults,
            _data_faults: data_faults,
            file,
            map,
            data,
        })
    }

    /// Takes an advisory lock on the image file for the life of this
    /// `Image` (exclusive for a writable mount, shared for a read-only one),
    /// so a second daemon cannot mount the same image for writing, and
    /// `flock IMAGE true` waits until the daemon has written back and
    /// exited. EWOULDBLOCK when another holder conflicts.
    pub fn lock(&self, exclusive: bool) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let op = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        // SAFETY: flock on a descriptor this Image owns.
        if unsafe { libc::flock(self.file.as_raw_fd(), op | libc::LOCK_NB) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The whole image.
    pub fn bytes(&self) -> &[u8] {
        match &self.map {
            Mapping::ReadOnly(m) => m,
            Mapping::ReadWrite(m) => m,
        }
    }

    /// `len` bytes of metadata at `offset`, made readable first: EIO if
    /// reading them faulted (the image shrank or the device failed), an
    /// error too if the range is outside the image.
    pub fn checked(&self, offset: usize, len: usize) -> io::Result<&[u8]> {
        checked_range(self.bytes(), offset, len)
    }

    /// Like [`Image::checked`], for file data: through the mapping with
    /// read-around.
    pub fn checked_data(&self, offset: usize, len: usize) -> io::Result<&[u8]> {
        checked_range(&self.data, offset, len)
    }

    /// Starts reading the `(offset, len)` byte ranges `ranges` into the page
    /// cache without waiting (MADV_WILLNEED), so the faults that follow
    /// find them on their way in. Each range is widened to the
    /// [`PREFETCH_GRAIN`] stretches it touches, and the stretches are
    /// merged, so ranges that share one (the inode table blocks of one
    /// listing, the runs of one directory) cost one MADV_WILLNEED, not one
    /// each. Advisory: errors and ranges past the end are ignored.
    pub fn prefetch_ranges(&self, ranges: impl IntoIterator<Item = (u64, u64)>) {
        for (start, len) in merged_prefetch_spans(ranges, self.bytes().len()) {
            let _ = match &self.map {
                Mapping::ReadOnly(m) => m.advise_range(memmap2::Advice::WillNeed, start, len),
                Mapping::ReadWrite(m) => m.advise_range(memmap2::Advice::WillNeed, start, len),
            };
        }
    }

    pub fn len(&self) -> u64 {
        self.bytes().len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    pub fn is_writable(&self) -> bool {
        matches!(self.map, Mapping::ReadWrite(_))
    }

    /// Checks that `len` bytes at byte `offset` may be written: EROFS for
    /// a read-only image, EIO past its end.
    fn check_write(&self, offset: u64, len: usize) -> io::Result<()> {
        let Mapping::ReadWrite(m) = &self.map else {
            return Err(io::Error::from_raw_os_error(libc::EROFS));
        };
        offset
            .checked_add(len as u64)
            .filter(|&e| e <= m.len() as u64)
            .map(|_| ())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EIO))
    }

    /// Writes `data` into the image at byte `offset` (pwrite; see the
    /// module notes for why not through the mapping). Needs no exclusive
    /// access: the file system keeps writers of one block apart.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check_write(offset, data.len())?;
        self.file.write_all_at(data, offset)
    }

    /// Starts writing `len` bytes at `offset` out to the device without
    /// waiting (sync_file_range SYNC_FILE_RANGE_WRITE). Advisory.
    pub fn start_writeout(&self, offset: u64, len: u64) {
        use std::os::fd::AsRawFd;
        let (Ok(off), Ok(n)) = (
            libc::off64_t::try_from(offset),
            libc::off64_t::try_from(len),
        ) else {
            return;
        };
        // SAFETY: a plain system call on a descriptor this Image owns.
        unsafe {
            libc::sync_file_range(self.file.as_raw_fd(), off, n, libc::SYNC_FILE_RANGE_WRITE);
        }
    }

    /// Writes consecutive buffers into the image starting at byte `offset`
    /// with as few pwritev(2) calls as the kernel allows (one per IOV_MAX
    /// buffers, plus retries after short writes).
    pub fn write_vectored_at(&mut self, offset: u64, bufs: &[&[u8]]) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        const IOV_MAX: usize = 1024;
        self.check_write(offset, bufs.iter().map(|b| b.len()).sum())?;
        let mut pos = offset;
        let mut i = 0;
        while i < bufs.len() {
            let batch = &bufs[i..(i + IOV_MAX).min(bufs.len())];
            let iov: Vec<libc::iovec> = batch
                .iter()
                .map(|b| libc::iovec {
                    iov_base: b.as_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                })
                .collect();
            let off =
                libc::off_t::try_from(pos).map_err(|_| io::Error::from_raw_os_error(libc::EIO))?;
            // SAFETY: every iovec points into a live buffer borrowed for
            // the duration of the call; the descriptor is ours.
            let n = unsafe {
                libc::pwritev(
                    self.file.as_raw_fd(),
                    iov.as_ptr(),
                    iov.len() as libc::c_int,
                    off,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut n = n as usize;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero));
            }
            // Skip whole buffers written; finish a partly written one with
            // a plain pwrite.
            while n > 0 && i < bufs.len() {
                let len = bufs[i].len();
                if n >= len {
                    n -= len;
                    pos += len as u64;
                    i += 1;
                } else {
                    self.file.write_all_at(&bufs[i][n..], pos + n as u64)?;
                    pos += len as u64;
                    i += 1;
                    n = 0;
                }
            }
        }
        Ok(())
    }

    /// Makes everything written so far durable: msync of the mapping, then
    /// fdatasync of the file.
    pub fn flush(&self) -> io::Result<()> {
        if let Mapping::ReadWrite(m) = &self.map {
            m.flush()?;
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// `len` bytes at `offset` of a mapping of the image, made readable first
/// (see [`Image::checked`]).
fn checked_range(map: &[u8], offset: usize, len: usize) -> io::Result<&[u8]> {
    let bytes = offset
        .checked_add(len)
        .and_then(|end| map.get(offset..end))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bytes {offset}+{len} lie beyond the end of the image"),
            )
        })?;
    if !image_fault::probe(bytes) {
        return Err(io::Error::other(format!(
            "I/O error (SIGBUS) reading image bytes {offset}+{len}: \
             the image file shrank or its device failed"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetches_read_whole_aligned_stretches_inside_the_image() {
        let g = PREFETCH_GRAIN;
        let size = 10 * g + 4096;
        // One block in the middle of a stretch: the whole stretch.
        assert_eq!(
            prefetch_span(3 * g as u64 + 8192, 4096, size),
            Some((3 * g, g))
        );
        // A range across a boundary: both stretches.
        assert_eq!(
            prefetch_span(2 * g as u64 - 4096, 8192, size),
            Some((g, 2 * g))
        );
        // The last, partial stretch ends with the image.
        assert_eq!(
            prefetch_span(10 * g as u64, 1 << 30, size),
            Some((10 * g, 4096))
        );
        // Nothing asked, or outside the image, or past what an address can say.
        assert_eq!(prefetch_span(0, 0, size), None);
        assert_eq!(prefetch_span(size as u64, 4096, size), None);
        assert_eq!(prefetch_span(u64::MAX, u64::MAX, size), None);
        assert_eq!(
            prefetch_span(9 * g as u64, u64::MAX, size),
            Some((9 * g, g + 4096))
        );
    }

    #[test]
    fn prefetches_sharing_stretches_are_merged() {
        let g = PREFETCH_GRAIN as u64;
        let size = 10 * PREFETCH_GRAIN;
        let ranges = [
            (5 * g + 4096, 4096), // stretch 5
            (g, 4096),            // stretch 1
            (5 * g, 8192),        // stretch 5 again
            (2 * g - 4096, 4096), // stretch 1, touching 2 below
            (2 * g, 4096),        // stretch 2
            (20 * g, 4096),       // outside the image
        ];
        let g = PREFETCH_GRAIN;
        assert_eq!(
            merged_prefetch_spans(ranges, size),
            vec![(g, 2 * g), (5 * g, g)]
        );
        assert!(merged_prefetch_spans([], size).is_empty());
    }
}
