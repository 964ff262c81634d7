//! The file-system core: every VFS operation over a mounted [`Volume`],
//! independent of FUSE (the adapter in [`crate::fuse`] only translates), so
//! it can be tested directly.
//!
//! Locking: one mutex guards the whole state for now (lock order: the
//! state lock is the only lock; the write-back thread takes it like any
//! operation). Operations hold it for their whole duration, which makes
//! every operation atomic with respect to the others. Finer locks (per
//! inode, per group) are the performance issue's business; the state is
//! already split so they can be introduced without changing the
//! operations' code: inodes are independent `InodeState`s, allocation is
//! confined to `Volume`.
//!
//! Durability: changes live in memory (inode states, dirty block cache)
//! until write-back: [`Fs::sync`] (fsync, syncfs, unmount) writes every
//! dirty inode's structures, the descriptors and the superblock into the
//! cache, copies the cache into the image (data first) and flushes the
//! image. A background thread does the same, without the flush, when dirty
//! data gets old or large; writers are throttled by doing that inline at
//! the hard limit.

mod acl;
pub mod cache;
pub mod dirstate;
pub mod error;
pub mod filemap;
mod inline;
pub mod inode;
mod mount;
pub mod ops_attr;
mod ops_file;
mod ops_names;
mod ops_xattr;
pub mod volume;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use error::{FsError, FsResult};
pub use mount::{AtimeMode, MountOptions};

use self::dirstate::{load_dir, write_back_dir};
use self::filemap::{FileMap, MapKind};
use self::inode::{load_inode, load_map, store_inode, write_back_map, InodeState};
use self::volume::Volume;
use crate::format::dir::FileType;
use crate::format::features::Incompat;
use crate::format::inode::{flags, Timestamp};

/// Attributes of an inode as the VFS wants them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: u32,
    pub size: u64,
    /// 512-byte units.
    pub blocks: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub crtime: Timestamp,
    /// Type and permission bits.
    pub mode: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
    pub generation: u32,
}

/// The caller of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// The umask a create applies when the directory has no default ACL
    /// (FUSE sends it with create/mkdir/mknod; 0 elsewhere).
    pub umask: u16,
}

impl Caller {
    pub const ROOT: Caller = Caller {
        uid: 0,
        gid: 0,
        umask: 0,
    };
}

/// One entry returned by readdir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntryOut {
    pub ino: u32,
    /// The cookie to resume after this entry.
    pub offset: u64,
    pub file_type: FileType,
    pub name: Vec<u8>,
}

/// File-system statistics (statfs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
}

/// Everything the mutex guards.
pub struct State {
    pub vol: Volume,
    pub inodes: HashMap<u32, InodeState>,
    pub opts: MountOptions,
    next_generation: u32,
    /// A write-back error not yet reported to an fsync.
    latched_error: Option<FsError>,
    /// When write-back last completed (changes older than the expire time
    /// are written back by the background thread).
    last_sync: std::time::Instant,
}

/// A mounted file system.
pub struct Fs {
    state: Mutex<State>,
}

/// The current time as an inode timestamp.
pub fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Timestamp::new(i64::try_from(d.as_secs()).unwrap_or(0), d.subsec_nanos())
}

impl Fs {
    pub(crate) fn from_state(state: State) -> Fs {
        Fs {
            state: Mutex::new(state),
        }
    }

    /// Locks the state (poisoning is ignored: the state is consistent at
    /// every point an operation can panic from, or the process is gone).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn block_size(&self) -> u32 {
        self.lock().vol.geo.block_size
    }

    pub fn is_read_only(&self) -> bool {
        self.lock().vol.read_only
    }
}

impl State {
    /// The state of inode `ino`, loaded on first use.
    pub fn get(&mut self, ino: u32) -> FsResult<&mut InodeState> {
        if !self.inodes.contains_key(&ino) {
            let st = load_inode(&self.vol, ino)?;
            if st.inode.links_count == 0 && st.inode.mode == 0 {
                return Err(FsError::new(
                    libc::ENOENT,
                    format!("inode {ino} is not in use"),
                ));
            }
            self.inodes.insert(ino, st);
        }
        Ok(self.inodes.get_mut(&ino).expect("inserted above"))
    }

    /// Makes sure the inode's block mapping is loaded (regular files,
    /// directories, slow symlinks).
    pub fn ensure_map(&mut self, ino: u32) -> FsResult<()> {
        let st = self.get(ino)?;
        if st.map.is_some() {
            return Ok(());
        }
        if st.inode.has_flag(flags::INLINE_DATA) {
            // Anything that needs the block map is about to change the
            // content (reads of inline inodes are served in place).
            return self.convert_inline(ino);
        }
        let st = self.inodes.get(&ino).expect("loaded");
        let map = load_map(&self.vol, st)?;
        self.inodes.get_mut(&ino).expect("loaded").map = Some(map);
        Ok(())
    }

    /// Makes sure a directory's entries are loaded.
    pub fn ensure_dir(&mut self, ino: u32) -> FsResult<()> {
        let st = self.get(ino)?;
        if !st.inode.is_dir() {
            return Err(FsError::notdir());
        }
        if st.dir.is_some() {
            return Ok(());
        }
        if st.inode.has_flag(flags::INLINE_DATA) {
            let dir = self.load_inline_dir(ino)?;
            self.inodes.get_mut(&ino).expect("loaded").dir = Some(dir);
            return Ok(());
        }
        self.ensure_map(ino)?;
        let st = self.inodes.get(&ino).expect("loaded");
        let dir = load_dir(&self.vol, st, st.map.as_ref().expect("loaded"))?;
        self.inodes.get_mut(&ino).expect("loaded").dir = Some(dir);
        Ok(())
    }

    /// A fresh generation number for a new inode.
    pub fn next_generation(&mut self) -> u32 {
        self.next_generation = self
            .next_generation
            .wrapping_mul(1_103_515_245)
            .wrapping_add(12345);
        self.next_generation
    }

    /// The on-disk mapping kind for new files.
    pub fn new_map_kind(&self) -> MapKind {
        if self.vol.feat.incompat.contains(Incompat::EXTENTS) {
            MapKind::Extents
        } else {
            MapKind::BlockMap
        }
    }

    /// A new, empty mapping for a freshly created inode.
    pub fn new_map(&self) -> FileMap {
        let mut m = FileMap::new(self.new_map_kind());
        m.dirty = true;
        m
    }

    /// Re-estimates what the write-back of `ino` will need and updates the
    /// volume's reservation; ENOSPC when the promise cannot be kept (the
    /// caller undoes its change).
    pub fn note_changed(&mut self, ino: u32) -> FsResult<()> {
        let Some(st) = self.inodes.get_mut(&ino) else {
            return Ok(());
        };
        let est = self::inode::estimate_meta_blocks(&self.vol, st);
        let old = std::mem::replace(&mut st.meta_estimate, est);
        self.vol.meta_reserve = self.vol.meta_reserve.saturating_sub(old) + est;
        if est > old && self.vol.meta_reserve > self.vol.free_blocks_total() {
            return Err(FsError::nospc());
        }
        Ok(())
    }

    /// Writes one inode's changes into the block cache.
    pub fn write_back_inode(&mut self, ino: u32) -> FsResult<()> {
        let Some(mut st) = self.inodes.remove(&ino) else {
            return Ok(());
        };
        self.vol.meta_reserve = self.vol.meta_reserve.saturating_sub(st.meta_estimate);
        st.meta_estimate = 0;
        let r = (|| {
            write_back_dir(&mut self.vol, &mut st)?;
            write_back_map(&mut self.vol, &mut st)?;
            ops_xattr::write_back_xattrs(&mut self.vol, &mut st)?;
            if st.dirty {
                store_inode(&mut self.vol, &mut st)?;
            }
            Ok(())
        })();
        self.inodes.insert(ino, st);
        r
    }

    /// Writes every dirty inode's structures (directory blocks, extent
    /// trees or indirect maps, xattr blocks, the inode itself) and the
    /// orphan chain into the block cache, allocating the blocks they need.
    /// Nothing reaches the image yet; the free counts are then final.
    pub fn write_back_metadata(&mut self) -> FsResult<()> {
        let dirty: Vec<u32> = self
            .inodes
            .iter()
            .filter(|(_, s)| s.is_dirty())
            .map(|(&i, _)| i)
            .collect();
        for ino in dirty {
            self.write_back_inode(ino)?;
        }
        ops_names::write_back_orphans(self)
    }

    /// Writes everything back and flushes the image. A failure is latched
    /// for the next fsync as well as returned.
    pub fn sync(&mut self) -> FsResult<()> {
        self.write_back_all(true)
    }

    /// Writes everything back into the image; with `flush`, also makes it
    /// durable (msync + fdatasync). Background write-back and the throttle
    /// do not flush: they only bound the daemon's dirty memory, durability
    /// is what fsync, syncfs and unmount ask for. A failure is latched for
    /// the next fsync as well as returned.
    fn write_back_all(&mut self, flush: bool) -> FsResult<()> {
        if self.vol.read_only {
            return Ok(());
        }
        let r = self.write_back_metadata().and_then(|()| {
            if flush {
                self.vol.sync()
            } else {
                self.vol.write_back()
            }
        });
        if let Err(e) = &r {
            log::error!("write-back failed: {e}");
            self.latched_error = Some(e.clone());
        }
        self.last_sync = std::time::Instant::now();
        self.evict();
        r
    }

    /// Returns (and clears) a latched write-back error.
    pub fn take_latched_error(&mut self) -> Option<FsError> {
        self.latched_error.take()
    }

    /// Drops clean inodes nobody references.
    pub fn evict(&mut self) {
        self.inodes
            .retain(|_, s| s.nlookup > 0 || s.open_count > 0 || s.is_dirty() || s.orphan);
    }

    /// Starts write-back when the cache passes the hard limit (throttling
    /// the writer that pushed it there).
    pub fn throttle(&mut self) -> FsResult<()> {
        if self.vol.cache.dirty_bytes() >= self.opts.dirty_limit_bytes {
            self.write_back_all(false)?;
        }
        Ok(())
    }

    /// Background write-back, when due (see [`State::writeback_due`]).
    pub fn background_writeback(&mut self) {
        if !self.vol.read_only && self.writeback_due() {
            let _ = self.write_back_all(false);
        }
    }

    /// Whether background write-back is due.
    pub fn writeback_due(&self) -> bool {
        let cache = &self.vol.cache;
        if cache.dirty_bytes() >= self.opts.dirty_background_bytes {
            return true;
        }
        if self.last_sync.elapsed() < self.opts.dirty_expire {
            return false;
        }
        cache.dirty_bytes() > 0 || self.inodes.values().any(|s| s.is_dirty())
    }

    /// Updates the access time after a read, following the mount's policy.
    pub fn touch_atime(&mut self, ino: u32) {
        if self.vol.read_only || self.opts.atime == AtimeMode::Never {
            return;
        }
        let mode = self.opts.atime;
        let Some(st) = self.inodes.get_mut(&ino) else {
            return;
        };
        let t = now();
        let i = &st.inode;
        let due = mode == AtimeMode::Always
            || i.atime <= i.mtime
            || i.atime <= i.ctime
            || t.sec - i.atime.sec >= 24 * 3600;
        if due {
            st.inode.atime = t;
            st.dirty = true;
        }
    }

    /// Attributes of a loaded inode.
    pub fn attr_of(&self, st: &InodeState) -> Attr {
        let i = &st.inode;
        let bs = self.vol.geo.block_size;
        let (major, minor) = if matches!(
            i.file_type(),
            crate::format::inode::S_IFCHR | crate::format::inode::S_IFBLK
        ) {
            i.device_number()
        } else {
            (0, 0)
        };
        let nlink = if i.is_dir() && i.links_count == 1 {
            1
        } else {
            u32::from(i.links_count)
        };
        Attr {
            ino: st.ino,
            size: i.size,
            blocks: i.blocks_512(bs),
            atime: i.atime,
            mtime: i.mtime,
            ctime: i.ctime,
            crtime: i.crtime,
            mode: i.mode,
            nlink,
            uid: i.uid,
            gid: i.gid,
            rdev: (major << 8) | (minor & 0xff) | ((minor & !0xff) << 12),
            blksize: bs,
            generation: i.generation,
        }
    }
}
