//! The device or image file a new file system is written to.
//!
//! A regular file is created if missing and grown (sparsely) to the
//! requested size; the range the file system covers is then punched out, so
//! every block reads as zero without a byte being written. That lets mkfs
//! leave inode tables, the journal and free space as holes and set
//! ITABLE_ZEROED honestly: a 1 TiB image costs megabytes. A block device (or
//! a file system that cannot punch holes) is not known to read as zeros;
//! the builder then writes zeros where ext4 needs them.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// An open output with its usable size.
pub struct Target {
    file: File,
    /// Bytes available for the file system.
    pub size_bytes: u64,
    /// Whether every byte of the file system range is known to read as zero.
    pub zeroed: bool,
    pub is_block_device: bool,
    /// Whether `open` created the file (it did not exist before).
    pub created: bool,
    written_bytes: u64,
}

fn block_device_size(file: &File) -> io::Result<u64> {
    // BLKGETSIZE64 = _IOR(0x12, 114, size_t)
    const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
    let mut size: u64 = 0;
    // SAFETY: the ioctl writes one u64 into `size`, which outlives the call;
    // the descriptor is open for the duration.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64, &mut size as *mut u64) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

fn punch_hole(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "size too large"))?;
    // SAFETY: plain syscall on an open descriptor with scalar arguments.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            0,
            len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Target {
    /// The size of an existing file or block device, without opening it
    /// for writing.
    pub fn current_size(path: &Path) -> Result<u64, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("{shown}: {e} (give a size to create an image file, e.g. 64M)"))?;
        let size = if meta.file_type().is_block_device() {
            let f = File::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
            block_device_size(&f).map_err(|e| format!("cannot get size of {shown}: {e}"))?
        } else {
            meta.len()
        };
        if size == 0 {
            return Err(format!("{shown} is empty: give a size (e.g. 64M)"));
        }
        Ok(size)
    }

    /// Opens (creating if needed) `path`. With `size` the file is grown to
    /// at least that many bytes and the file system covers exactly `size`;
    /// without it the file's or device's current size is used.
    pub fn open(path: &Path, size: Option<u64>) -> Result<Target, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path).ok();
        let created = meta.is_none();
        let is_block_device = meta
            .as_ref()
            .is_some_and(|m| m.file_type().is_block_device());
        let mut oo = OpenOptions::new();
        oo.read(true).write(true);
        if !is_block_device {
            oo.create(true);
        } else {
            oo.custom_flags(libc::O_EXCL);
        }
        let file = oo
            .open(path)
            .map_err(|e| format!("cannot open {shown} for writing: {e}"))?;
        let current = if is_block_device {
            block_device_size(&file).map_err(|e| format!("cannot get size of {shown}: {e}"))?
        } else {
            file.metadata()
                .map_err(|e| format!("cannot stat {shown}: {e}"))?
                .len()
        };
        let size_bytes = match size {
            Some(s) if is_block_device && s > current => {
                return Err(format!(
                    "{shown}: requested size {s} is larger than the device ({current} bytes)"
                ))
            }
            Some(s) => s,
            None if current == 0 => {
                return Err(format!(
                    "{shown} is empty: give a size (e.g. mkfs.fext {shown} 64M)"
                ))
            }
            None => current,
        };
        let mut zeroed = false;
        if !is_block_device {
            if current < size_bytes {
                file.set_len(size_bytes)
                    .map_err(|e| format!("cannot grow {shown} to {size_bytes} bytes: {e}"))?;
            }
            zeroed = current == 0 || punch_hole(&file, size_bytes).is_ok();
        }
        let mut target = Target {
            file,
            size_bytes,
            zeroed,
            is_block_device,
            created,
            written_bytes: 0,
        };
        if !zeroed {
            // An old file system's primary superblock (bytes 1024..2048)
            // must not outlive a failed mkfs and vouch for half-written
            // metadata: wipe it first (as mke2fs does), the new one is
            // written last.
            let end = size_bytes.min(4096);
            if end > 1024 {
                target.write_at(&vec![0u8; (end - 1024) as usize], 1024)?;
            }
        }
        Ok(target)
    }

    /// Writes `data` at byte `offset`.
    pub fn write_at(&mut self, data: &[u8], offset: u64) -> Result<(), String> {
        if offset + data.len() as u64 > self.size_bytes {
            return Err(format!(
                "internal error: write of {} bytes at {offset} past the end ({})",
                data.len(),
                self.size_bytes
            ));
        }
        self.file
            .write_all_at(data, offset)
            .map_err(|e| format!("write at byte {offset} failed: {e}"))?;
        self.written_bytes += data.len() as u64;
        Ok(())
    }

    /// Makes `len` bytes at `offset` read as zero: nothing to do on a
    /// zeroed target, otherwise zeros are written.
    pub fn zero_range(&mut self, offset: u64, len: u64) -> Result<(), String> {
        if self.zeroed {
            return Ok(());
        }
        let chunk = vec![0u8; 1 << 20];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk.len() as u64) as usize;
            self.write_at(&chunk[..n], offset + done)?;
            done += n as u64;
        }
        Ok(())
    }

    /// Bytes written so far (for s_kbytes_written).
    pub fn written_bytes(&self) -> u64 {
        self.written_bytes
    }

    /// Flushes everything to stable storage.
    pub fn sync(&self) -> Result<(), String> {
        self.file
            .sync_all()
            .map_err(|e| format!("fsync of the target failed: {e}"))
    }
}
