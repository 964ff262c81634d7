//! The image a mounted file system lives in: a regular file or a block
//! device, memory-mapped whole.
//!
//! Reads are served straight from the mapping. Writes reach the mapping
//! only through the write-back path of the block cache; [`Image::flush`]
//! then makes them durable with msync and fdatasync. A read-only image is
//! mapped read-only, so a bug can never write to it.
//!
//! I/O errors of the underlying file surface as SIGBUS on a mapping access;
//! the daemon installs no handler yet (see DESIGN.md's traps): a failing
//! disk stops the daemon instead of returning EIO.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use memmap2::{Mmap, MmapMut, MmapOptions};

enum Mapping {
    ReadOnly(Mmap),
    ReadWrite(MmapMut),
}

/// A memory-mapped image.
pub struct Image {
    file: File,
    map: Mapping,
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
        let map = unsafe {
            if writable {
                Mapping::ReadWrite(MmapOptions::new().len(len).map_mut(&file)?)
            } else {
                Mapping::ReadOnly(MmapOptions::new().len(len).map(&file)?)
            }
        };
        Ok(Image { file, map })
    }

    /// The whole image.
    pub fn bytes(&self) -> &[u8] {
        match &self.map {
            Mapping::ReadOnly(m) => m,
            Mapping::ReadWrite(m) => m,
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

    /// Copies `data` into the mapping at byte `offset`.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let Mapping::ReadWrite(m) = &mut self.map else {
            return Err(io::Error::from_raw_os_error(libc::EROFS));
        };
        let start = usize::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EIO))?;
        let end = start
            .checked_add(data.len())
            .filter(|&e| e <= m.len())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EIO))?;
        m[start..end].copy_from_slice(data);
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
