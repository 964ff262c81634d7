//! The checker's view of the image: the whole file or block device mapped
//! into memory, and the only place that writes to it.
//!
//! - With `-n` the file is opened read-only and mapped read-only: no code
//!   path can change it.
//! - Otherwise it is mapped private (copy-on-write): repairs change the
//!   in-memory copy only, each change marking the 1 KiB units it touches as
//!   dirty, and [`Disk::flush`] writes exactly those units back with
//!   `pwrite` and then `fsync`s. A run that stops early (preen halt, fatal
//!   error, a panic) writes nothing.
//!
//! Bounds: every access is range-checked and returns `None` or an error
//! rather than panicking; the dirty map has one bit per KiB of image.
//!
//! I/O errors: a read of the mapping that faults (a failing device, an
//! image file that shrank) is caught ([`crate::image_fault`]), the access
//! returns `None`, and [`Disk::read_error`] reports it from then on; the
//! checker then stops without writing anything.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{Mmap, MmapMut, MmapOptions};

use super::bitset::BitSet;
use crate::image_fault::{self, MapKind, Registration};

/// `Disk::read_error` when no read has failed.
const NO_ERROR: u64 = u64::MAX;

/// Granularity of dirty tracking (the smallest ext4 block size).
const UNIT: u64 = 1024;

enum Map {
    ReadOnly(Mmap),
    Private(MmapMut),
}

/// Faults of the mapping (boxed: keeps `Disk` small).
struct FaultWatch {
    _registration: Option<Registration>,
    /// Offset of the first read that faulted, or `NO_ERROR`.
    first_error: AtomicU64,
}

/// A mapped image.
pub struct Disk {
    file: File,
    /// Declared before `map`: unregistered before the unmap.
    faults: Box<FaultWatch>,
    map: Map,
    len: u64,
    dirty: BitSet,
    writes: u64,
    is_device: bool,
}

/// Size of an open file or block device.
fn file_len(file: &File) -> io::Result<(u64, bool)> {
    let meta = file.metadata()?;
    if meta.file_type().is_block_device() {
        use std::io::{Seek, SeekFrom};
        let mut f = file;
        let len = f.seek(SeekFrom::End(0))?;
        f.seek(SeekFrom::Start(0))?;
        Ok((len, true))
    } else {
        Ok((meta.len(), false))
    }
}

impl Disk {
    /// Opens and maps `path`. `writable`: open read-write and map private
    /// (changes stay in memory until [`Disk::flush`]); block devices are
    /// then opened with `O_EXCL`, which fails while they are mounted.
    pub fn open(path: &Path, writable: bool) -> io::Result<Disk> {
        let is_dev = std::fs::metadata(path)
            .map(|m| m.file_type().is_block_device())
            .unwrap_or(false);
        let mut oo = OpenOptions::new();
        oo.read(true).write(writable);
        if writable && is_dev {
            oo.custom_flags(libc::O_EXCL);
        }
        let file = oo.open(path)?;
        let (len, is_device) = file_len(&file)?;
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "image is empty"));
        }
        let mlen = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "image too large"))?;
        // SAFETY: the mapping is of a file we opened and keep open. Another
        // process writing the image concurrently can change bytes under us
        // but cannot invalidate the mapping; every byte read is checked by
        // the checker before use. The private mapping never writes to the
        // file: only `flush` does, with pwrite.
        let map = unsafe {
            if writable {
                // MAP_NORESERVE: only the pages repairs touch are ever
                // copied; without it a large image (1 TiB) is refused with
                // ENOMEM by the kernel's overcommit accounting.
                Map::Private(
                    MmapOptions::new()
                        .len(mlen)
                        .no_reserve_swap()
                        .map_copy(&file)?,
                )
            } else {
                Map::ReadOnly(MmapOptions::new().len(mlen).map(&file)?)
            }
        };
        let (ptr, kind) = match &map {
            Map::ReadOnly(m) => (m.as_ptr(), MapKind::SharedReadOnly),
            Map::Private(m) => (m.as_ptr(), MapKind::PrivateCopy),
        };
        let faults = image_fault::register(ptr, mlen, file.as_raw_fd(), kind);
        Ok(Disk {
            file,
            faults: Box::new(FaultWatch {
                _registration: faults,
                first_error: AtomicU64::new(NO_ERROR),
            }),
            map,
            len,
            dirty: BitSet::new(len.div_ceil(UNIT)),
            writes: 0,
            is_device,
        })
    }

    /// Tells the kernel that `len` bytes at `off` will be read soon (read
    /// ahead, e.g. the inode tables before pass 1). Only a hint: errors and
    /// out-of-range requests are ignored.
    pub fn will_need(&self, off: u64, len: u64) {
        let (Ok(off), Ok(len)) = (usize::try_from(off), usize::try_from(len)) else {
            return;
        };
        let end = off.saturating_add(len).min(self.bytes().len());
        if off >= end {
            return;
        }
        // madvise wants a page-aligned start.
        let start = off & !4095;
        let _ = match &self.map {
            Map::ReadOnly(m) => m.advise_range(memmap2::Advice::WillNeed, start, end - start),
            Map::Private(m) => m.advise_range(memmap2::Advice::WillNeed, start, end - start),
        };
    }

    /// Whether repairs may be made (the image was opened read-write).
    pub fn is_writable(&self) -> bool {
        matches!(self.map, Map::Private(_))
    }

    /// Whether the image is a block device.
    pub fn is_device(&self) -> bool {
        self.is_device
    }

    /// The whole image.
    pub fn bytes(&self) -> &[u8] {
        match &self.map {
            Map::ReadOnly(m) => m,
            Map::Private(m) => m,
        }
    }

    /// Image size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty image (never: `open` refuses those).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `len` bytes at `off`, if inside the image and readable (see
    /// [`Disk::read_error`]).
    pub fn get(&self, off: u64, len: usize) -> Option<&[u8]> {
        let s = usize::try_from(off).ok()?;
        let e = s.checked_add(len)?;
        let bytes = self.bytes().get(s..e)?;
        self.readable(off, bytes).then_some(bytes)
    }

    /// Whether `bytes` (at image offset `off`) read without a fault;
    /// records the first fault.
    fn readable(&self, off: u64, bytes: &[u8]) -> bool {
        if image_fault::probe(bytes) {
            return true;
        }
        let _ = self.faults.first_error.compare_exchange(
            NO_ERROR,
            off,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        false
    }

    /// The offset of the first read of the image that failed (I/O error:
    /// the device failed or the image file shrank), if any.
    pub fn read_error(&self) -> Option<u64> {
        let off = self.faults.first_error.load(Ordering::Acquire);
        (off != NO_ERROR).then_some(off)
    }

    /// A writable view of `len` bytes at `off`, marked dirty; `None` when
    /// out of range or the image is read-only.
    pub fn get_mut(&mut self, off: u64, len: usize) -> Option<&mut [u8]> {
        let s = usize::try_from(off).ok()?;
        let e = s.checked_add(len)?;
        // In range, and readable before it is copied on write.
        self.get(off, len)?;
        let Map::Private(m) = &mut self.map else {
            return None;
        };
        if len > 0 {
            let first = off / UNIT;
            let last = (off + len as u64 - 1) / UNIT;
            self.dirty.set_range(first, last + 1);
        }
        self.writes += 1;
        m.get_mut(s..e)
    }

    /// Copies `data` to `off`. Fails when out of range or read-only.
    pub fn write(&mut self, off: u64, data: &[u8]) -> io::Result<()> {
        match self.get_mut(off, data.len()) {
            Some(dst) => {
                dst.copy_from_slice(data);
                Ok(())
            }
            None => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "write of {} bytes at {off} refused (read-only or outside the image)",
                    data.len()
                ),
            )),
        }
    }

    /// Whether anything was changed in memory.
    pub fn is_dirty(&self) -> bool {
        self.writes > 0
    }

    /// Writes every changed KiB back to the file and syncs it. Returns the
    /// number of bytes written.
    pub fn flush(&mut self) -> io::Result<u64> {
        let Map::Private(m) = &self.map else {
            return Ok(0);
        };
        let mut written = 0u64;
        let units = self.dirty.len();
        let set: Vec<u64> = self.dirty.iter_set(0, units).collect();
        let mut it = set.into_iter().peekable();
        while let Some(first) = it.next() {
            let mut last = first;
            while it.peek() == Some(&(last + 1)) {
                last += 1;
                it.next();
            }
            let start = first * UNIT;
            let end = ((last + 1) * UNIT).min(self.len);
            let (s, e) = (
                usize::try_from(start).map_err(io::Error::other)?,
                usize::try_from(end).map_err(io::Error::other)?,
            );
            self.file.write_all_at(&m[s..e], start)?;
            written += end - start;
        }
        if written > 0 {
            self.file.sync_all()?;
        }
        self.dirty.clear_all();
        self.writes = 0;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_file(bytes: &[u8]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!(
            "fext-fsck-disk-{}-{}",
            std::process::id(),
            bytes.len()
        ));
        let mut f = File::create(&p).unwrap();
        f.write_all(bytes).unwrap();
        p
    }

    #[test]
    fn private_map_writes_only_on_flush() {
        let p = temp_file(&[7u8; 5000]);
        let mut d = Disk::open(&p, true).unwrap();
        d.write(2048, b"abc").unwrap();
        assert_eq!(d.get(2048, 3).unwrap(), b"abc");
        assert_eq!(std::fs::read(&p).unwrap()[2048], 7, "not yet on disk");
        assert!(d.write(4999, b"xy").is_err(), "past the end");
        assert_eq!(d.flush().unwrap(), 1024);
        let after = std::fs::read(&p).unwrap();
        assert_eq!(&after[2048..2051], b"abc");
        assert_eq!(after[2051], 7);
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn read_only_refuses_writes() {
        let p = temp_file(&[1u8; 3000]);
        let mut d = Disk::open(&p, false).unwrap();
        assert!(!d.is_writable());
        assert!(d.write(0, b"z").is_err());
        assert!(d.get_mut(0, 1).is_none());
        assert_eq!(d.flush().unwrap(), 0);
        std::fs::remove_file(&p).unwrap();
    }

    /// The image file shrinks under the checker: reads past the new end
    /// fault; they come back as `None` and are reported, the rest still
    /// reads, and nothing is copied on write there.
    #[test]
    fn faulting_reads_are_reported_not_fatal() {
        for writable in [false, true] {
            let p = temp_file(&vec![3u8; 64 * 1024 + usize::from(writable)]);
            let mut d = Disk::open(&p, writable).unwrap();
            File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_len(16 * 1024)
                .unwrap();
            assert_eq!(d.read_error(), None);
            assert_eq!(d.get(4096, 4).unwrap(), &[3u8; 4]);
            assert!(d.get(40 * 1024, 4).is_none(), "a read past the new end");
            assert_eq!(d.read_error(), Some(40 * 1024));
            assert!(d.get_mut(50 * 1024, 4).is_none());
            assert_eq!(d.get(8192, 4).unwrap(), &[3u8; 4], "the rest still reads");
            assert_eq!(d.read_error(), Some(40 * 1024), "the first error stays");
            drop(d);
            std::fs::remove_file(&p).unwrap();
        }
    }
}
