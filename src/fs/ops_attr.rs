//! Attributes: getattr, setattr (mode, owner, size, times with the ctime
//! rules), access checks, and statfs.

use super::error::{FsError, FsResult};
use super::inode::InodeState;
use super::lockorder::Slot;
use super::volume::Volume;
use super::{now, Attr, Caller, Fs, StatFs, State};
use crate::format::bytes::get_u32;
use crate::format::inode::{Timestamp, S_IFMT};

/// A time to set: a given value or "now" (UTIME_NOW).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    Now,
    At(Timestamp),
}

/// The changes of one setattr call.
#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
    pub ctime: Option<Timestamp>,
}

const S_ISUID: u16 = 0o4000;
const S_ISGID: u16 = 0o2000;
const S_IXGRP: u16 = 0o0010;

impl State<'_> {
    pub fn setattr(&mut self, ino: u32, ch: &SetAttr) -> FsResult<Attr> {
        if self.vol.read_only {
            return Err(FsError::rofs());
        }
        if let Some(size) = ch.size {
            self.set_size(ino, size)?;
        }
        let t = now();
        let st = self.get(ino)?;
        let i = &mut st.inode;
        if let Some(mode) = ch.mode {
            i.mode = (i.mode & S_IFMT) | (mode as u16 & 0o7777);
        }
        let owner_change = ch.uid.is_some_and(|u| u != i.uid) || ch.gid.is_some_and(|g| g != i.gid);
        if let Some(uid) = ch.uid {
            i.uid = uid;
        }
        if let Some(gid) = ch.gid {
            i.gid = gid;
        }
        if owner_change && ch.mode.is_none() && !i.is_dir() {
            // chown clears set-user-ID, and set-group-ID when group-executable.
            i.mode &= !S_ISUID;
            if i.mode & S_IXGRP != 0 {
                i.mode &= !S_ISGID;
            }
        }
        match ch.atime {
            Some(SetTime::Now) => i.atime = t,
            Some(SetTime::At(ts)) => i.atime = ts,
            None => {}
        }
        match ch.mtime {
            Some(SetTime::Now) => i.mtime = t,
            Some(SetTime::At(ts)) => i.mtime = ts,
            None => {}
        }
        i.ctime = ch.ctime.unwrap_or(t);
        let new_mode = i.mode;
        st.dirty = true;
        if ch.mode.is_some() {
            self.chmod_acl(ino, new_mode)?;
        }
        let st = self.inodes.get(&ino).expect("loaded");
        Ok(self.attr_of(st))
    }

    /// File-system statistics, exact: the blocks pending write-back will
    /// take (directory blocks, extent trees, indirect maps, xattr blocks:
    /// fext lays them out only at write-back) are allocated first, into the
    /// block cache, so the free counts are what the image says after the
    /// next write-back, as with the kernel, which allocates them at once.
    /// A failure is latched for the next fsync; the counts are still given.
    /// access(2) against the inode's mode bits (root passes all but
    /// execute, which needs some execute bit).
    pub fn access(&mut self, ino: u32, mask: u32, caller: Caller) -> FsResult<()> {
        let read_only = self.vol.read_only;
        let st = self.get(ino)?;
        let i = &st.inode;
        if mask == 0 {
            return Ok(());
        }
        if mask & 2 != 0 && read_only {
            return Err(FsError::rofs());
        }
        let mode = u32::from(i.mode);
        if caller.uid == 0 {
            if mask & 1 != 0 && !i.is_dir() && mode & 0o111 == 0 {
                return Err(FsError::access());
            }
            return Ok(());
        }
        let bits = if caller.uid == i.uid {
            (mode >> 6) & 7
        } else if caller.gid == i.gid {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        if bits & mask == mask {
            Ok(())
        } else {
            Err(FsError::access())
        }
    }
}

impl Fs {
    pub fn getattr(&self, ino: u32) -> FsResult<Attr> {
        self.op(&[ino], |st| {
            st.get(ino)?;
            let s = st.inodes.get(&ino).expect("loaded");
            Ok(st.attr_of(s))
        })
    }

    pub fn setattr(&self, ino: u32, ch: &SetAttr) -> FsResult<Attr> {
        // A new size may free blocks: no write's copy in flight.
        let _no_copies = ch.size.map(|_| self.data_lock(ino).write());
        let a = self.op(&[ino], |st| st.setattr(ino, ch))?;
        self.sync_if_requested()?;
        Ok(a)
    }

    /// statfs. The free counts are exact at any moment: pending metadata
    /// (directory, extent/indirect and xattr blocks) is laid out into the
    /// cache first, which allocates its blocks (under the exclusive gate,
    /// like write-back; nothing reaches the image). A failure there is
    /// latched for the next fsync and the counts are still returned.
    pub fn statfs(&self) -> StatFs {
        let mut vol = self.gate.write();
        let slots = self.slots();
        if !vol.read_only {
            if let Err(e) = self.write_back_metadata_of(&mut vol, &slots) {
                log::error!("write-back for statfs failed: {e}");
                self.misc.lock().latched_error = Some(e);
            }
        }
        let (free_blocks, free_inodes) = vol.free_counts();
        let (pending_blocks, pending_inodes) = awaiting_forget_counts(&vol, &slots);
        let free_blocks = free_blocks + pending_blocks;
        let free_inodes = free_inodes + pending_inodes;
        let geo = &vol.geo;
        let sb = &vol.sb;
        let overhead = if sb.f.overhead_clusters != 0 {
            u64::from(sb.f.overhead_clusters)
        } else {
            let mut o = geo.first_data_block;
            for g in 0..geo.groups_count {
                o += u64::from(geo.base_meta_blocks(g)) + 2 + u64::from(geo.inode_table_blocks);
            }
            o
        };
        let blocks = sb.blocks_count().saturating_sub(overhead);
        StatFs {
            blocks,
            bfree: free_blocks,
            bavail: free_blocks.saturating_sub(sb.r_blocks_count()),
            files: u64::from(sb.f.inodes_count),
            ffree: free_inodes,
            bsize: geo.block_size,
            namelen: 255,
        }
    }

    pub fn access(&self, ino: u32, mask: u32, caller: Caller) -> FsResult<()> {
        self.op(&[ino], |st| st.access(ino, mask, caller))
    }
}

/// Blocks and inodes held only until the kernel's FORGET: unlinked, not
/// open, so nothing can reach their data any more. The kernel queues that
/// FORGET asynchronously, so a statfs may overtake it; counting them as
/// free already keeps statfs from moving when it lands (ext4 frees such an
/// inode at the unlink itself). Called under the exclusive gate.
fn awaiting_forget_counts(vol: &Volume, slots: &[(u32, Slot<InodeState>)]) -> (u64, u64) {
    let bs = vol.geo.block_size;
    let per_block = u64::from(bs / 512).max(1);
    let mut blocks = 0;
    let mut inodes = 0;
    for (_, slot) in slots {
        let st = slot.lock();
        if st.evicted || st.inode.links_count != 0 || st.open_count != 0 || st.inode.mode == 0 {
            continue;
        }
        inodes += 1;
        let mut held = st.inode.blocks_512(bs) / per_block;
        // A shared xattr block stays with its other users.
        if st.inode.file_acl != 0 {
            let shared = vol
                .read_block(st.inode.file_acl)
                .ok()
                .and_then(|b| get_u32(&b, 4)) // h_refcount
                .is_some_and(|refcount| refcount > 1);
            if shared {
                held = held.saturating_sub(1);
            }
        }
        blocks += held;
    }
    (blocks, inodes)
}
