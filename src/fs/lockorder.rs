//! The locks of the file-system core, their levels, and a debug-build
//! checker of the lock order (see the order in the header of `fs/mod.rs`).
//!
//! Every lock of the core is taken through this module, which records the
//! level (and, for inodes, the inode number) in a thread-local list while
//! the guard lives. In debug builds taking a lock asserts that every lock
//! the thread already holds comes strictly earlier in the order (inode
//! locks: a smaller inode number); so the whole test suite checks the
//! order on every lock it takes. Release builds keep no list.
//!
//! Locks taken without waiting (`try_lock`) cannot deadlock and are
//! recorded without the check, and so is a freshly allocated inode, which
//! nobody else can reach yet (see [`InodeGuard::lock_fresh`]).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use parking_lot::{
    MappedMutexGuard, Mutex, MutexGuard, RawMutex, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

/// Lock levels, in the order they must be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A stripe of the data locks (see `Fs::data_lock`).
    Data,
    /// The operation gate (the volume's RwLock).
    Gate,
    /// The file-system-wide cross-directory rename mutex.
    Rename,
    /// One inode (several: ascending inode number).
    Inode,
    /// The table of loaded inodes.
    Table,
    /// One block group's descriptor and bitmaps (one at a time).
    Group,
    /// The dirty block cache (a leaf).
    Cache,
    /// Small bookkeeping (latched error, last write-back time): a leaf.
    Misc,
}

/// A record of one held lock; removes itself from the thread's list when
/// dropped.
pub struct Held {
    #[cfg(debug_assertions)]
    entry: (Level, u64),
}

#[cfg(debug_assertions)]
thread_local! {
    static HELD: std::cell::RefCell<Vec<(Level, u64)>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Held {
    /// Records that `level` (`key`: inode or group number) is about to be
    /// waited for; `checked`: whether the order applies (false for
    /// non-blocking and fresh-inode locks).
    #[cfg_attr(not(debug_assertions), allow(unused_variables))]
    pub fn enter(level: Level, key: u64, checked: bool) -> Held {
        #[cfg(debug_assertions)]
        {
            HELD.with(|h| {
                let mut h = h.borrow_mut();
                if checked {
                    for &(l, k) in h.iter() {
                        let ok = l < level || (l == Level::Inode && level == Level::Inode && k < key);
                        assert!(
                            ok,
                            "lock order violated: taking {level:?}({key}) while holding {l:?}({k}); held: {h:?}"
                        );
                    }
                }
                h.push((level, key));
            });
            Held {
                entry: (level, key),
            }
        }
        #[cfg(not(debug_assertions))]
        Held {}
    }

    /// The levels this thread holds (debug builds; empty otherwise).
    pub fn current() -> Vec<(Level, u64)> {
        #[cfg(debug_assertions)]
        {
            HELD.with(|h| h.borrow().clone())
        }
        #[cfg(not(debug_assertions))]
        Vec::new()
    }
}

#[cfg(debug_assertions)]
impl Drop for Held {
    fn drop(&mut self) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|e| *e == self.entry) {
                h.remove(i);
            }
        });
    }
}

/// A mutex at a fixed level.
pub struct OrdMutex<T> {
    level: Level,
    key: u64,
    inner: Mutex<T>,
}

/// Guard of an [`OrdMutex`].
pub struct OrdGuard<'a, T> {
    guard: MutexGuard<'a, T>,
    _held: Held,
}

/// A guard narrowed to a part of the locked value (a cached block).
pub struct OrdMappedGuard<'a, T: ?Sized> {
    guard: MappedMutexGuard<'a, T>,
    _held: Held,
}

impl<T> OrdMutex<T> {
    pub fn new(level: Level, key: u64, value: T) -> Self {
        OrdMutex {
            level,
            key,
            inner: Mutex::new(value),
        }
    }

    pub fn lock(&self) -> OrdGuard<'_, T> {
        let held = Held::enter(self.level, self.key, true);
        OrdGuard {
            guard: self.inner.lock(),
            _held: held,
        }
    }

    /// Exclusive access without locking (the owner has `&mut`).
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }
}

impl<'a, T> OrdGuard<'a, T> {
    pub fn map<U: ?Sized>(g: Self, f: impl FnOnce(&mut T) -> &mut U) -> OrdMappedGuard<'a, U> {
        OrdMappedGuard {
            guard: MutexGuard::map(g.guard, f),
            _held: g._held,
        }
    }
}

impl<T> Deref for OrdGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}
impl<T> DerefMut for OrdGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}
impl<T: ?Sized> Deref for OrdMappedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}
impl<T: ?Sized> DerefMut for OrdMappedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

/// A reader-writer lock at a fixed level (the gate). parking_lot's RwLock
/// is fair: a waiting writer stops new readers, so a sync is not starved
/// (and a thread must never take the read side twice).
pub struct OrdRwLock<T> {
    level: Level,
    inner: RwLock<T>,
}

pub struct OrdReadGuard<'a, T> {
    guard: RwLockReadGuard<'a, T>,
    _held: Held,
}

pub struct OrdWriteGuard<'a, T> {
    guard: RwLockWriteGuard<'a, T>,
    _held: Held,
}

impl<T> OrdRwLock<T> {
    pub fn new(level: Level, value: T) -> Self {
        OrdRwLock {
            level,
            inner: RwLock::new(value),
        }
    }

    pub fn read(&self) -> OrdReadGuard<'_, T> {
        let held = Held::enter(self.level, 0, true);
        OrdReadGuard {
            guard: self.inner.read(),
            _held: held,
        }
    }

    pub fn write(&self) -> OrdWriteGuard<'_, T> {
        let held = Held::enter(self.level, 0, true);
        OrdWriteGuard {
            guard: self.inner.write(),
            _held: held,
        }
    }
}

impl<'a, T> OrdWriteGuard<'a, T> {
    /// Turns exclusive access into shared access without letting a writer
    /// in between.
    pub fn downgrade(g: Self) -> OrdReadGuard<'a, T> {
        OrdReadGuard {
            guard: RwLockWriteGuard::downgrade(g.guard),
            _held: g._held,
        }
    }
}

impl<T> Deref for OrdReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}
impl<T> Deref for OrdWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}
impl<T> DerefMut for OrdWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

/// A shared, lockable slot (an inode's state in the inode table).
pub type Slot<T> = Arc<Mutex<T>>;

/// An owned guard on an inode slot.
pub struct InodeGuard<T> {
    guard: parking_lot::ArcMutexGuard<RawMutex, T>,
    _held: Held,
}

impl<T> InodeGuard<T> {
    /// Waits for inode `ino`'s lock, in order.
    pub fn lock(slot: &Slot<T>, ino: u32) -> Self {
        let held = Held::enter(Level::Inode, u64::from(ino), true);
        InodeGuard {
            guard: slot.lock_arc(),
            _held: held,
        }
    }

    /// Takes inode `ino`'s lock if it is free (any order: never waits).
    pub fn try_lock(slot: &Slot<T>, ino: u32) -> Option<Self> {
        let guard = slot.try_lock_arc()?;
        Some(InodeGuard {
            guard,
            _held: Held::enter(Level::Inode, u64::from(ino), false),
        })
    }

    /// Locks a slot just created for a newly allocated inode: nobody else
    /// can know the inode yet, so its place in the order does not matter.
    pub fn lock_fresh(slot: &Slot<T>, ino: u32) -> Self {
        let guard = slot.try_lock_arc().expect("a fresh slot is not shared yet");
        InodeGuard {
            guard,
            _held: Held::enter(Level::Inode, u64::from(ino), false),
        }
    }
}

impl<T> Deref for InodeGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}
impl<T> DerefMut for InodeGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    #[test]
    fn ascending_inodes_and_leaf_after_inode_are_allowed() {
        let a: Slot<u8> = Arc::new(Mutex::new(0));
        let b: Slot<u8> = Arc::new(Mutex::new(0));
        let cache = OrdMutex::new(Level::Cache, 0, ());
        let _ga = InodeGuard::lock(&a, 3);
        let _gb = InodeGuard::lock(&b, 7);
        let _c = cache.lock();
        assert_eq!(Held::current().len(), 3);
    }

    #[test]
    #[should_panic(expected = "lock order violated")]
    fn descending_inodes_are_refused() {
        let a: Slot<u8> = Arc::new(Mutex::new(0));
        let b: Slot<u8> = Arc::new(Mutex::new(0));
        let _gb = InodeGuard::lock(&b, 7);
        let _ga = InodeGuard::lock(&a, 3);
    }

    #[test]
    #[should_panic(expected = "lock order violated")]
    fn two_groups_at_once_are_refused() {
        let g1 = OrdMutex::new(Level::Group, 1, ());
        let g2 = OrdMutex::new(Level::Group, 2, ());
        let _a = g1.lock();
        let _b = g2.lock();
    }

    #[test]
    fn try_lock_out_of_order_is_allowed() {
        let a: Slot<u8> = Arc::new(Mutex::new(0));
        let b: Slot<u8> = Arc::new(Mutex::new(0));
        let _gb = InodeGuard::lock(&b, 7);
        assert!(InodeGuard::try_lock(&a, 3).is_some());
    }
}
