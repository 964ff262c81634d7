//! Notifications the daemon sends to the kernel unasked
//! (FUSE_NOTIFY_INVAL_INODE), where the kernel's caches and the daemon's
//! state must be brought together:
//!
//! - [`KernelNotify::drop_cached_attrs`]: the kernel forgets an inode's
//!   attributes and ignores those of replies to requests sent before: for
//!   attributes no reply brings (write-back gave a directory a new size or
//!   a file an extent tree block; a write cleared set-user-ID) and to guard
//!   link counts (see `link_count`);
//! - [`KernelNotify::write_back_pages`]: with the writeback cache, the
//!   kernel writes an inode's dirty pages to the daemon (WRITE requests)
//!   and drops its cached pages before the notification returns; used so
//!   SEEK_DATA/SEEK_HOLE see data only the kernel held. It waits for
//!   WRITEs the FUSE threads answer, so it must not be called from one.

use std::sync::OnceLock;

use fuser::{INodeNo, Notifier};

/// The session's notifier, once the session exists (the adapter is built
/// before it).
#[derive(Default)]
pub struct KernelNotify {
    notifier: OnceLock<Notifier>,
}

impl KernelNotify {
    pub fn connect(&self, notifier: Notifier) {
        let _ = self.notifier.set(notifier);
    }

    /// The kernel invalidates its cached attributes of `ino` (page cache
    /// untouched). Best effort: an inode the kernel does not know has
    /// nothing to invalidate.
    pub fn drop_cached_attrs(&self, ino: INodeNo) {
        if let Some(n) = self.notifier.get() {
            let _ = n.inval_inode(ino, -1, 0);
        }
    }

    /// The kernel writes back and drops its cached pages of `ino`. False
    /// when that was not done (no session yet, or the kernel refused):
    /// the kernel may then still hold data the daemon has not seen.
    pub fn write_back_pages(&self, ino: INodeNo) -> bool {
        // Ok also when the kernel has no such inode (fuser maps ENOENT):
        // then it has no pages either.
        self.notifier
            .get()
            .is_some_and(|n| n.inval_inode(ino, 0, 0).is_ok())
    }
}
