//! Attributes: getattr, setattr (mode, owner, size, times with the ctime
//! rules), access checks, and statfs.

use super::error::{FsError, FsResult};
use super::{now, Attr, Caller, Fs, StatFs, State};
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

    pub fn statfs(&self) -> StatFs {
        let geo = &self.vol.geo;
        let sb = &self.vol.sb;
        let (free_blocks, free_inodes) = self.vol.free_counts();
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
        let a = self.op(&[ino], |st| st.setattr(ino, ch))?;
        self.sync_if_requested()?;
        Ok(a)
    }

    pub fn statfs(&self) -> StatFs {
        let vol = self.gate.read();
        self.op_on(&vol, false, &[], |st| Ok(st.statfs()))
            .expect("statfs locks no inode and cannot fail")
    }

    pub fn access(&self, ino: u32, mask: u32, caller: Caller) -> FsResult<()> {
        self.op(&[ino], |st| st.access(ino, mask, caller))
    }
}
