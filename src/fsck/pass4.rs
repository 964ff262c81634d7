//! Pass 4: reference counts, after e2fsck's `e2fsck_pass4`.
//!
//! Each inode in use is compared with the number of directory entries
//! naming it (pass 2, adjusted by passes 3 and 4): an inode no entry names
//! is cleared when empty, else reconnected into /lost+found; a wrong
//! `i_links_count` is corrected; directories with more than 65000 links
//! use the dir_nlink rule (count 1).

use crate::format::features::RoCompat;
use crate::format::xattr::XATTR_MAGIC;

use super::check::Checker;
use super::ino::{fl, InodeRead, InodeWrite};
use super::pass1::{BAD_INO, GRP_QUOTA_INO, USR_QUOTA_INO};
use super::problem::{Code, PCtx};

/// The largest link count of a directory (EXT4_LINK_MAX).
const LINK_MAX: u16 = 65000;

impl Checker {
    /// Pass 4.
    pub fn pass4(&mut self) {
        self.rep.say_header("Pass 4: Checking reference counts\n");
        let n = self.fs.inodes_count;
        let first = self.fs.first_ino;
        let ngroups = u64::from(self.fs.groups_count());
        for i in 1..=n {
            if self.rep.should_stop() {
                return;
            }
            if i % (self.fs.ipg.max(1) * 8) == 0 {
                self.progress(4, u64::from(i / self.fs.ipg.max(1)), ngroups);
            }
            let f = &self.fs.sb.f;
            if i == USR_QUOTA_INO
                || i == GRP_QUOTA_INO
                || i == BAD_INO
                || (i > 2 && i < first)
                || i == f.orphan_file_inum
                || i == f.usr_quota_inum
                || i == f.grp_quota_inum
                || i == f.prj_quota_inum
            {
                continue;
            }
            let iu = u64::from(i);
            if !self.inode_used.get(iu) || self.inode_imagic.get(iu) {
                continue;
            }
            let mut link_count = self.link_info.get(i as usize).copied().unwrap_or(0);
            let mut counted = self.link_count.get(i as usize).copied().unwrap_or(0);
            if counted == 0 {
                let raw = self.fs.read_inode(i);
                if raw.has_flag(fl::EA_INODE) {
                    // EA inodes are referenced by attributes, not names.
                    let refs = self.ea_inode_refs.get(&i).copied().unwrap_or(0);
                    if refs > 0 {
                        continue;
                    }
                }
                if self.inode_bad.get(iu) && self.process_bad_inode(0, i) {
                    continue;
                }
                if self.disconnect_inode(i, &raw) {
                    continue;
                }
                link_count = self.link_info.get(i as usize).copied().unwrap_or(0);
                counted = self.link_count.get(i as usize).copied().unwrap_or(0);
                if !self.inode_used.get(iu) {
                    continue;
                }
            }
            let isdir = self.inode_dir.get(iu);
            if isdir && counted > LINK_MAX {
                if !self.fs.has_ro_compat(RoCompat::DIR_NLINK)
                    && self.fix(Code::DirNlinkFeature, &PCtx::default())
                {
                    let mut f = self.fs.sb.features();
                    f.ro_compat |= RoCompat::DIR_NLINK;
                    self.fs.sb.set_features(f);
                    self.fs.refresh();
                    self.fs.mark_sb_dirty();
                }
                counted = 1;
            }
            if counted != link_count {
                let mut raw = self.fs.read_inode(i);
                let stored = raw.links();
                if stored != link_count {
                    // Changed since pass 1 (e2fsck's "inconsistent count").
                    link_count = stored;
                }
                if counted == link_count {
                    continue;
                }
                if isdir && counted > 1 && stored == 1 && raw.has_flag(fl::INDEX) {
                    // dir_nlink overflow value: acceptable for indexed dirs.
                    let p = PCtx {
                        ino: i,
                        num: u64::from(counted),
                        ..PCtx::default()
                    };
                    if self.fix(Code::DirOverflowRefCount, &p) {
                        raw.set_links(counted);
                        self.write_inode(i, &raw);
                    }
                    continue;
                }
                let p = PCtx {
                    ino: i,
                    num: u64::from(counted),
                    num2: u64::from(stored),
                    ..PCtx::default()
                };
                if self.fix(Code::BadRefCount, &p) {
                    raw.set_links(counted);
                    self.write_inode(i, &raw);
                    if let Some(l) = self.link_info.get_mut(i as usize) {
                        *l = counted;
                    }
                }
            }
        }
    }

    /// An inode no directory names: clear it when empty, else reconnect
    /// it. Returns true when the link count should not be checked.
    fn disconnect_inode(&mut self, ino: u32, raw: &[u8]) -> bool {
        let p = PCtx::ino(ino);
        let isz = self.fs.inode_size;
        let extra = usize::from(raw.extra_isize(isz));
        let ea_magic = isz > 128 + extra + 4
            && u32::from_le_bytes([
                raw[128 + extra],
                raw[129 + extra],
                raw[130 + extra],
                raw[131 + extra],
            ]) == XATTR_MAGIC;
        if raw.blocks_lo() == 0
            && raw.blocks_hi() == 0
            && !ea_magic
            && (raw.is_reg() || raw.is_dir())
        {
            if self.fix(Code::ZeroLenInode, &p) {
                let mut r = raw.to_vec();
                let is_dir = r.is_dir();
                self.clear_inode(ino, &mut r);
                self.free_inode(ino, is_dir);
                return true;
            }
        }
        if self.fix(Code::UnattachedInode, &p) {
            if self.reconnect_file(ino) {
                self.rep.valid = false;
            }
        } else {
            self.rep.valid = false;
            return true;
        }
        false
    }
}
