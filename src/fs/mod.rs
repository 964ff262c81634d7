//! The file-system core: every VFS operation over a mounted [`Volume`],
//! independent of FUSE (the adapter in [`crate::fuse`] only translates), so
//! it can be tested directly.
//!
//! Locking. Independent operations run in parallel; each runs on a
//! [`State`], its view of the volume plus the inodes it has locked.
//!
//! - The data locks (`Fs::data_lock`, RwLocks striped by inode number):
//!   a write holds its inode's stripe shared, truncate and fallocate hold
//!   it exclusively, before anything else. A write copies data into blocks
//!   the file already had after it has released the inode's lock (writes
//!   to one file then overlap), and the stripe keeps those blocks the
//!   file's until the copy is done.
//! - The operation gate (`Fs::gate`, a fair RwLock around the [`Volume`]):
//!   every operation holds it shared for its whole duration; write-back of
//!   the whole file system (fsync, syncfs, unmount, background write-back,
//!   the throttle at the hard dirty limit) holds it exclusively, so the
//!   image it writes is always a state between complete operations, and
//!   the image and superblock change only then. The flush that follows
//!   (msync + fdatasync) needs it only shared.
//! - The rename mutex: cross-directory renames take it (after the gate),
//!   so directories' `..` pointers stay put while a rename checks that a
//!   directory does not move into its own subtree.
//! - Inode locks (one mutex per loaded inode): an operation locks the
//!   inodes it works on in ascending inode number. An inode found out of
//!   order (the child of a locked parent) is taken with `try_lock`; when
//!   that fails the operation, which has changed nothing yet, drops all its
//!   locks and starts again with the whole set locked in order (names are
//!   then looked up again). A newly allocated inode is reachable by nobody
//!   else and is locked regardless of order.
//! - The inode table locks (16 shards by inode number, one at a time):
//!   only to find, insert or remove entries; the cache read of an inode
//!   being loaded happens outside them.
//! - Block-group locks (descriptor and bitmaps), one at a time; the free
//!   counts and the write-back reservation are atomics.
//! - The dirty block cache lock, a leaf (also held by a `BlockMut` guard:
//!   take nothing else while one lives); then small bookkeeping locks.
//!
//! Order: data stripe → gate → rename → inodes (ascending) → table →
//! group → cache → misc. Debug builds check it on every acquisition
//! (`lockorder.rs`).
//! Inode eviction happens only under the exclusive gate, so a lookup can
//! never race with it; an inode freed while another thread waits for its
//! lock is marked `evicted`, and the waiter gets ENOENT (it reached the
//! inode through a name that is gone).
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
pub mod lockorder;
mod mount;
pub mod ops_attr;
mod ops_file;
mod ops_names;
mod ops_xattr;
mod readahead;
pub mod volume;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use error::{FsError, FsResult};
pub use mount::{AtimeMode, MountOptions};

use self::dirstate::{load_dir, write_back_dir};
use self::filemap::{FileMap, MapKind};
use self::inode::{load_inode, load_map, store_inode, write_back_map, InodeState};
use self::lockorder::{InodeGuard, Level, OrdMutex, OrdRwLock, Slot};
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
    /// When a name of this file was last removed while other names remain:
    /// the kernel's FUSE client may count that removal twice for a while
    /// (see `fuse::link_count`).
    pub link_dropped: Option<Instant>,
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

/// One entry as readdir hands it out, borrowed from the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntryRef<'a> {
    pub ino: u32,
    /// The cookie to resume after this entry.
    pub offset: u64,
    pub file_type: FileType,
    pub name: &'a [u8],
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

/// Bookkeeping of write-back.
struct Misc {
    /// A write-back error not yet reported to an fsync.
    latched_error: Option<FsError>,
    /// When write-back last completed (changes older than the expire time
    /// are written back by the background thread).
    last_sync: Instant,
}

/// Told which inodes write-back gave a new size or block count (see
/// [`Fs::on_layout_change`]).
pub type LayoutObserver = Box<dyn Fn(&[u32]) + Send + Sync>;

/// The loaded inodes.
type Table = HashMap<u32, Slot<InodeState>, foldhash::fast::RandomState>;

/// A mounted file system.
pub struct Fs {
    /// The data locks, striped by inode number (see the module notes).
    data_locks: Vec<OrdRwLock<()>>,
    /// The operation gate around the volume (see the module notes).
    gate: OrdRwLock<Volume>,
    rename_lock: OrdMutex<()>,
    /// The loaded inodes, sharded by inode number (a thread holds at
    /// most one shard).
    table: Vec<OrdMutex<Table>>,
    opts: MountOptions,
    next_generation: AtomicU32,
    misc: OrdMutex<Misc>,
    layout_observer: OnceLock<LayoutObserver>,
}

/// The inodes an operation holds locked.
#[derive(Default)]
pub struct HeldInodes {
    held: Vec<(u32, InodeGuard<InodeState>)>,
}

impl HeldInodes {
    pub fn get(&self, ino: &u32) -> Option<&InodeState> {
        self.held.iter().find(|(i, _)| i == ino).map(|(_, g)| &**g)
    }
    pub fn get_mut(&mut self, ino: &u32) -> Option<&mut InodeState> {
        self.held
            .iter_mut()
            .find(|(i, _)| i == ino)
            .map(|(_, g)| &mut **g)
    }
    pub fn contains_key(&self, ino: &u32) -> bool {
        self.held.iter().any(|(i, _)| i == ino)
    }
    fn push(&mut self, ino: u32, g: InodeGuard<InodeState>) {
        self.held.push((ino, g));
    }
    fn remove(&mut self, ino: &u32) -> Option<InodeGuard<InodeState>> {
        let pos = self.held.iter().position(|(i, _)| i == ino)?;
        Some(self.held.swap_remove(pos).1)
    }
    fn max_ino(&self) -> Option<u32> {
        self.held.iter().map(|(i, _)| *i).max()
    }
}

impl std::ops::Index<&u32> for HeldInodes {
    type Output = InodeState;
    fn index(&self, ino: &u32) -> &InodeState {
        self.get(ino).expect("inode not locked by this operation")
    }
}

/// One operation's view: the volume (under the shared gate), the mount
/// options, and the inodes it has locked.
pub struct State<'a> {
    pub vol: &'a Volume,
    pub opts: &'a MountOptions,
    pub inodes: HeldInodes,
    fs: &'a Fs,
    /// An inode this operation needed out of order and could not take
    /// without waiting: the operation is run again with it locked in order.
    retry: Option<u32>,
    /// When set (by [`Fs::write`]), whole blocks of data going into blocks
    /// the file already had are listed here instead of copied: the copy
    /// happens after the inode's lock is released.
    deferred_copies: Option<Vec<DeferredCopy>>,
}

/// Whole blocks of a write's data to copy into the image later: `len`
/// bytes from offset `src` of the write's data into blocks from `first`.
struct DeferredCopy {
    first: u64,
    src: usize,
    len: usize,
}

/// Shards of the inode table.
const TABLE_SHARDS: usize = 16;

/// Stripes of the data locks.
const DATA_STRIPES: usize = 64;

/// Bound on an operation's restarts (each adds an inode to lock in order).
const MAX_RETRIES: usize = 1000;

/// The current time as an inode timestamp.
pub fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Timestamp::new(i64::try_from(d.as_secs()).unwrap_or(0), d.subsec_nanos())
}

impl Fs {
    pub(crate) fn new(vol: Volume, opts: MountOptions, generation_seed: u32) -> Fs {
        Fs {
            data_locks: (0..DATA_STRIPES)
                .map(|_| OrdRwLock::new(Level::Data, ()))
                .collect(),
            gate: OrdRwLock::new(Level::Gate, vol),
            rename_lock: OrdMutex::new(Level::Rename, 0, ()),
            table: (0..TABLE_SHARDS)
                .map(|i| OrdMutex::new(Level::Table, i as u64, HashMap::default()))
                .collect(),
            opts,
            next_generation: AtomicU32::new(generation_seed),
            misc: OrdMutex::new(
                Level::Misc,
                0,
                Misc {
                    latched_error: None,
                    last_sync: Instant::now(),
                },
            ),
            layout_observer: OnceLock::new(),
        }
    }

    /// Registers (once) who is told about the inodes whose size or block
    /// count changed at write-back. fext lays out directory blocks, extent
    /// trees, indirect maps and xattr blocks only then, so a directory's
    /// size and any inode's `st_blocks` can change with no operation on
    /// it; a cache of attributes (the kernel's) must drop them. Called
    /// under the exclusive gate: the observer must not call back into
    /// `Fs`.
    pub fn on_layout_change(&self, observer: LayoutObserver) {
        let _ = self.layout_observer.set(observer);
    }

    pub fn block_size(&self) -> u32 {
        self.gate.read().geo.block_size
    }

    pub fn is_read_only(&self) -> bool {
        self.gate.read().read_only
    }

    /// Runs one operation under the shared gate with `prelock` (and any
    /// inode it later needs out of order) locked in ascending order.
    pub(crate) fn op<R>(
        &self,
        prelock: &[u32],
        f: impl FnMut(&mut State<'_>) -> FsResult<R>,
    ) -> FsResult<R> {
        let vol = self.gate.read();
        self.op_on(&vol, false, prelock, f)
    }

    /// [`Fs::op`] on a volume the caller already holds the gate of;
    /// `rename`: take the rename mutex first.
    fn op_on<R>(
        &self,
        vol: &Volume,
        rename: bool,
        prelock: &[u32],
        mut f: impl FnMut(&mut State<'_>) -> FsResult<R>,
    ) -> FsResult<R> {
        let _rename = rename.then(|| self.rename_lock.lock());
        let mut need: Vec<u32> = prelock.to_vec();
        for _ in 0..MAX_RETRIES {
            need.sort_unstable();
            need.dedup();
            let mut st = State {
                vol,
                opts: &self.opts,
                inodes: HeldInodes::default(),
                fs: self,
                retry: None,
                deferred_copies: None,
            };
            for &ino in &need {
                // Errors are the operation's to meet (in its own order).
                let _ = st.get(ino);
            }
            st.retry = None;
            let r = f(&mut st);
            match (st.retry.take(), r) {
                (Some(ino), Err(_)) => need.push(ino),
                (Some(ino), Ok(v)) => {
                    // The operation went on past a restart request: it is
                    // done, and must not run twice.
                    debug_assert!(false, "restart for inode {ino} ignored by an operation");
                    return Ok(v);
                }
                (None, r) => return r,
            }
        }
        log::error!("an operation kept meeting locked inodes; giving up");
        Err(FsError::new(libc::EDEADLK, "lock retries exhausted"))
    }

    /// The slot of inode `ino`, loaded into the table on first use.
    fn slot(&self, vol: &Volume, ino: u32) -> FsResult<Slot<InodeState>> {
        if let Some(s) = self.shard(ino).lock().get(&ino) {
            return Ok(s.clone());
        }
        let st = load_inode(vol, ino)?;
        if st.inode.links_count == 0 && st.inode.mode == 0 {
            return Err(FsError::new(
                libc::ENOENT,
                format!("inode {ino} is not in use"),
            ));
        }
        let mut table = self.shard(ino).lock();
        Ok(table
            .entry(ino)
            .or_insert_with(|| Arc::new(parking_lot::Mutex::new(st)))
            .clone())
    }

    /// The table's slots, in inode order (for write-back, under the
    /// exclusive gate).
    fn slots(&self) -> Vec<(u32, Slot<InodeState>)> {
        let mut v: Vec<(u32, Slot<InodeState>)> = Vec::new();
        for shard in &self.table {
            v.extend(shard.lock().iter().map(|(&i, s)| (i, s.clone())));
        }
        v.sort_unstable_by_key(|&(i, _)| i);
        v
    }

    /// The data lock stripe of inode `ino`.
    fn data_lock(&self, ino: u32) -> &OrdRwLock<()> {
        &self.data_locks[ino as usize % DATA_STRIPES]
    }

    /// The table shard of inode `ino`.
    fn shard(&self, ino: u32) -> &OrdMutex<Table> {
        &self.table[ino as usize % TABLE_SHARDS]
    }

    /// A fresh generation number for a new inode.
    fn next_generation(&self) -> u32 {
        let step = |g: u32| g.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let prev = self
            .next_generation
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |g| Some(step(g)))
            .unwrap_or(0);
        step(prev)
    }

    /// Writes everything back and flushes the image: the write-back
    /// under the exclusive gate, the flush (msync + fdatasync, the slow
    /// part) with the gate downgraded to shared, so operations go on
    /// meanwhile. A failure is latched for the next fsync as well as
    /// returned.
    pub(crate) fn sync_all(&self) -> FsResult<()> {
        let mut vol = self.gate.write();
        let r = self.write_back_all(&mut vol);
        let vol = lockorder::OrdWriteGuard::downgrade(vol);
        r.and_then(|()| self.flush_image(&vol))
    }

    /// [`Fs::sync_all`] with the gate already held exclusively.
    fn sync_locked(&self, vol: &mut Volume) -> FsResult<()> {
        self.write_back_all(vol)?;
        self.flush_image(vol)
    }

    /// Copies every change into the image (gate held exclusively), then
    /// evicts the clean inodes nobody references. Not flushed: background
    /// write-back and the throttle stop here (they only bound the daemon's
    /// dirty memory; the host's page cache has the data, which survives
    /// the daemon), fsync, syncfs and unmount add [`Fs::flush_image`].
    fn write_back_all(&self, vol: &mut Volume) -> FsResult<()> {
        if vol.read_only {
            return Ok(());
        }
        let slots = self.slots();
        let r = self
            .write_back_metadata_of(vol, &slots)
            .and_then(|()| vol.write_back());
        self.note_write_back(&r);
        self.evict(slots);
        r
    }

    /// Writes every dirty inode's structures (directory blocks, extent
    /// trees or indirect maps, xattr blocks, the inode itself) and the
    /// orphan chain into the block cache, allocating the blocks they need
    /// (gate held exclusively), and tells the layout observer which of
    /// them got a new size or block count. Nothing reaches the image yet;
    /// the free counts are then final.
    fn write_back_metadata_of(
        &self,
        vol: &mut Volume,
        slots: &[(u32, Slot<InodeState>)],
    ) -> FsResult<()> {
        let bs = vol.geo.block_size;
        let layout = |st: &InodeState| (st.inode.size, st.inode.blocks_512(bs));
        let mut relaid = Vec::new();
        let r = slots.iter().try_for_each(|(ino, slot)| {
            let mut st = slot.lock();
            if !st.is_dirty() {
                return Ok(());
            }
            let before = layout(&st);
            let r = write_back_inode(vol, &mut st);
            if layout(&st) != before {
                relaid.push(*ino);
            }
            r
        });
        if let (Some(observe), false) = (self.layout_observer.get(), relaid.is_empty()) {
            observe(&relaid);
        }
        r.and_then(|()| ops_names::write_back_orphans(vol, slots))
    }

    /// Flushes the image (under the shared gate at least).
    fn flush_image(&self, vol: &Volume) -> FsResult<()> {
        let r = vol.flush();
        self.note_write_back(&r);
        r
    }

    /// Latches a write-back failure; records when write-back completed.
    fn note_write_back(&self, r: &FsResult<()>) {
        let mut misc = self.misc.lock();
        if let Err(e) = r {
            log::error!("write-back failed: {e}");
            misc.latched_error = Some(e.clone());
        }
        misc.last_sync = Instant::now();
    }

    /// Returns (and clears) a latched write-back error.
    fn take_latched_error(&self) -> Option<FsError> {
        self.misc.lock().latched_error.take()
    }

    /// Drops clean inodes nobody references (under the exclusive gate, so
    /// no operation holds or is about to take any of them).
    fn evict(&self, slots: Vec<(u32, Slot<InodeState>)>) {
        let mut gone = Vec::new();
        for (ino, slot) in &slots {
            let mut s = slot.lock();
            if !(s.nlookup > 0 || s.open_count > 0 || s.is_dirty() || s.orphan) {
                s.evicted = true;
                gone.push(*ino);
            }
        }
        for ino in gone {
            self.shard(ino).lock().remove(&ino);
        }
    }

    /// Starts write-back when the cache passes the hard limit (throttling
    /// the writer that pushed it there; writers arriving meanwhile find
    /// the cache emptied and go on).
    fn throttle(&self) -> FsResult<()> {
        if self.gate.read().dirty_bytes() < self.opts.dirty_limit_bytes {
            return Ok(());
        }
        let mut vol = self.gate.write();
        if vol.dirty_bytes() >= self.opts.dirty_limit_bytes {
            self.write_back_all(&mut vol)?;
        }
        Ok(())
    }

    /// `-o sync`: write back after each change.
    fn sync_if_requested(&self) -> FsResult<()> {
        if self.opts.sync_writes {
            self.sync_all()?;
        }
        Ok(())
    }

    /// Whether background write-back is due.
    fn writeback_due(&self, vol: &Volume) -> bool {
        if vol.dirty_bytes() >= self.opts.dirty_background_bytes {
            return true;
        }
        if self.misc.lock().last_sync.elapsed() < self.opts.dirty_expire {
            return false;
        }
        if vol.dirty_bytes() > 0 {
            return true;
        }
        // An inode locked by a running operation counts as dirty.
        self.slots()
            .iter()
            .any(|(ino, s)| InodeGuard::try_lock(s, *ino).is_none_or(|g| g.is_dirty()))
    }
}

/// Inode `ino` held locked, as a running operation holds it (see
/// [`Fs::hold_inode`]).
pub struct InodeHold<'a> {
    _inode: InodeGuard<InodeState>,
    _gate: lockorder::OrdReadGuard<'a, Volume>,
}

impl Fs {
    /// Locks inode `ino` (with the gate shared) until the returned hold is
    /// dropped, exactly as an operation on it would: for tests that show
    /// which operations wait for which inode. Operations that write back
    /// the whole file system wait for the hold too.
    #[doc(hidden)]
    pub fn hold_inode(&self, ino: u32) -> FsResult<InodeHold<'_>> {
        let gate = self.gate.read();
        let slot = self.slot(&gate, ino)?;
        Ok(InodeHold {
            _inode: InodeGuard::lock(&slot, ino),
            _gate: gate,
        })
    }
}

/// Writes one inode's changes into the block cache.
pub fn write_back_inode(vol: &Volume, st: &mut InodeState) -> FsResult<()> {
    vol.adjust_reserve(st.meta_estimate, 0);
    st.meta_estimate = 0;
    write_back_dir(vol, st)?;
    write_back_map(vol, st)?;
    ops_xattr::write_back_xattrs(vol, st)?;
    if st.dirty {
        store_inode(vol, st)?;
    }
    Ok(())
}

impl State<'_> {
    /// The state of inode `ino`, locked for this operation and loaded on
    /// first use. An inode below one already held is only taken if free;
    /// otherwise the operation is marked for a restart (see `Fs::op`) and
    /// gets EDEADLK, which it must pass on before changing anything.
    pub fn get(&mut self, ino: u32) -> FsResult<&mut InodeState> {
        if !self.inodes.contains_key(&ino) {
            self.acquire(ino)?;
        }
        Ok(self.inodes.get_mut(&ino).expect("locked above"))
    }

    fn acquire(&mut self, ino: u32) -> FsResult<()> {
        let in_order = self.inodes.max_ino().is_none_or(|m| ino > m);
        let slot = self.fs.slot(self.vol, ino)?;
        let guard = if in_order {
            InodeGuard::lock(&slot, ino)
        } else {
            match InodeGuard::try_lock(&slot, ino) {
                Some(g) => g,
                None => {
                    self.retry = Some(ino);
                    return Err(FsError::new(
                        libc::EDEADLK,
                        format!("inode {ino} busy: operation restarts"),
                    ));
                }
            }
        };
        if guard.evicted {
            // Freed while this thread waited (eviction of clean inodes
            // happens under the exclusive gate, when nobody waits): whoever
            // wanted it reached it through a name that is gone now.
            return Err(FsError::new(libc::ENOENT, format!("inode {ino} was freed")));
        }
        self.inodes.push(ino, guard);
        Ok(())
    }

    /// Like [`State::get`], for an inode that only matters if it is
    /// loaded (None otherwise: nothing refers to it).
    pub fn get_loaded(&mut self, ino: u32) -> FsResult<Option<&mut InodeState>> {
        if !self.inodes.contains_key(&ino) && !self.fs.shard(ino).lock().contains_key(&ino) {
            return Ok(None);
        }
        self.get(ino).map(Some)
    }

    /// Enters a newly allocated inode into the table, locked by this
    /// operation (out of order: nobody else can reach it yet).
    pub fn insert_new(&mut self, st: InodeState) {
        let ino = st.ino;
        let slot = Arc::new(parking_lot::Mutex::new(st));
        let guard = InodeGuard::lock_fresh(&slot, ino);
        if let Some(old) = self.fs.shard(ino).lock().insert(ino, slot) {
            log::debug!("inode {ino}: replacing a stale table entry");
            drop(old);
        }
        self.inodes.push(ino, guard);
    }

    /// Removes a locked inode from the table (it is being freed); threads
    /// waiting for it will find it evicted.
    pub fn remove_inode(&mut self, ino: u32) -> Option<InodeGuard<InodeState>> {
        let mut g = self.inodes.remove(&ino)?;
        g.evicted = true;
        self.fs.shard(ino).lock().remove(&ino);
        Some(g)
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
        let map = load_map(self.vol, st)?;
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
        let dir = load_dir(self.vol, st, st.map.as_ref().expect("loaded"))?;
        self.inodes.get_mut(&ino).expect("loaded").dir = Some(dir);
        Ok(())
    }

    /// A fresh generation number for a new inode.
    pub fn next_generation(&mut self) -> u32 {
        self.fs.next_generation()
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
        let vol = self.vol;
        let Some(st) = self.inodes.get_mut(&ino) else {
            return Ok(());
        };
        let est = self::inode::estimate_meta_blocks(vol, st);
        let old = std::mem::replace(&mut st.meta_estimate, est);
        let total = vol.adjust_reserve(old, est);
        if est > old && total > vol.free_blocks_total() {
            return Err(FsError::nospc());
        }
        Ok(())
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
            link_dropped: st.link_dropped,
        }
    }
}
