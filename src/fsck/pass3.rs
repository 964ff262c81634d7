//! Pass 3: directory connectivity, after e2fsck's `e2fsck_pass3`.
//!
//! The root must exist (re-created when missing); every directory must be
//! reachable from the root by following the parents pass 2 found (a
//! directory not reached, or on a loop, is reconnected into /lost+found,
//! which is created when missing); every `..` must name the parent. Then
//! the directories marked for rebuilding (duplicate names, broken index)
//! are rewritten as plain linear directories.

use std::collections::HashSet;

use crate::format::dir::rec_len_for_name;
use crate::format::features::Incompat;
use crate::format::inode::S_IFDIR;

use super::check::{Checker, DirInfo};
use super::dirops::{new_dir_block, parse_dents, tail_status, TailStatus};
use super::ino::{fl, InodeRead, InodeWrite, I_ATIME, I_CTIME, I_MTIME};
use super::problem::{escape_name, Code, PCtx};

impl Checker {
    /// Pass 3.
    pub fn pass3(&mut self) {
        self.rep
            .say_header("Pass 3: Checking directory connectivity\n");
        self.check_root();
        if self.rep.should_stop() {
            return;
        }
        let mut done: HashSet<u32> = HashSet::new();
        done.insert(2);
        let mut inos: Vec<u32> = self.dirs.keys().copied().collect();
        inos.sort_unstable();
        let total = inos.len() as u64;
        for (k, ino) in inos.into_iter().enumerate() {
            if self.rep.should_stop() || self.restart {
                return;
            }
            if self.inode_dir.get(u64::from(ino)) {
                self.check_directory(ino, &mut done);
            }
            if k % 1024 == 0 {
                self.progress(3, k as u64, total);
            }
        }
        if self.can_write() && !self.rep.read_only() {
            self.get_lost_and_found(true);
        }
        self.rehash_directories();
    }

    fn check_root(&mut self) {
        if self.inode_used.get(2) {
            if !self.inode_dir.get(2) {
                self.fix(Code::RootNotDirAbort, &PCtx::default());
            }
            return;
        }
        if !self.fix(Code::NoRootInode, &PCtx::default()) {
            self.fix(Code::NoRootInodeAbort, &PCtx::default());
            return;
        }
        if !self.can_write() {
            return;
        }
        let Some(blk) = self.new_block(self.fs.first_data_block) else {
            self.fix(
                Code::CreateRootError,
                &PCtx {
                    str: "no free block".into(),
                    ..PCtx::default()
                },
            );
            return;
        };
        let raw = self.new_dir_inode(2, blk, 0o755);
        self.write_inode(2, &raw);
        let data = new_dir_block(
            self.fs.bs,
            self.fs.has_metadata_csum(),
            Some((2, 2)),
            self.fs.has_incompat(Incompat::FILETYPE),
        );
        self.write_dir_block(2, blk, data);
        self.inode_used.set(2);
        self.inode_dir.set(2);
        self.inode_changes.insert(2, (true, true));
        self.dirs.insert(
            2,
            DirInfo {
                dotdot: 2,
                parent: 2,
            },
        );
        if let Some(c) = self.link_count.get_mut(2) {
            *c = 2;
        }
        if let Some(c) = self.link_info.get_mut(2) {
            *c = 2;
        }
    }

    /// A fresh directory inode with one block (`blk`).
    pub fn new_dir_inode(&mut self, ino: u32, blk: u64, perm: u16) -> Vec<u8> {
        let isz = self.fs.inode_size;
        let mut raw = vec![0u8; isz];
        raw.set_mode(S_IFDIR | perm);
        raw.set_size(self.fs.bs64);
        raw.set_links(2);
        for off in [I_ATIME, I_CTIME, I_MTIME] {
            raw.set_u32_at(off, self.now);
        }
        if isz > 128 {
            raw.set_extra_isize(32.min((isz - 128) as u16));
        }
        self.add_iblocks(&mut raw, 1);
        if self.fs.has_incompat(Incompat::EXTENTS) {
            raw.set_flags(fl::EXTENTS);
            let mut r = vec![0u8; 60];
            r[0..2].copy_from_slice(&0xF30Au16.to_le_bytes());
            r[2..4].copy_from_slice(&1u16.to_le_bytes());
            r[4..6].copy_from_slice(&4u16.to_le_bytes());
            r[16..18].copy_from_slice(&1u16.to_le_bytes());
            r[18..20].copy_from_slice(&((blk >> 32) as u16).to_le_bytes());
            r[20..24].copy_from_slice(&((blk & 0xffff_ffff) as u32).to_le_bytes());
            raw.set_i_block(&r);
        } else {
            raw.set_block_word(0, blk as u32);
        }
        let _ = ino;
        raw
    }

    fn check_directory(&mut self, ino: u32, done: &mut HashSet<u32>) {
        let mut path: Vec<u32> = Vec::new();
        let mut cur = ino;
        let mut loop_found = false;
        let mut parent;
        let limit = self.dirs.len() + 2;
        loop {
            if done.contains(&cur) {
                break;
            }
            if path.contains(&cur) || path.len() > limit {
                loop_found = true;
            }
            path.push(cur);
            parent = self.dirs.get(&cur).map(|d| d.parent).unwrap_or(0);
            if parent == 0 || loop_found {
                // Unconnected: offer to reconnect `cur`.
                let dotdot = self.dirs.get(&cur).map(|d| d.dotdot).unwrap_or(0);
                let p = PCtx {
                    ino: cur,
                    dir: dotdot,
                    path: if dotdot != 0 {
                        self.dir_path(dotdot)
                    } else {
                        "???".into()
                    },
                    ..PCtx::default()
                };
                if self.fix(Code::UnconnectedDir, &p) {
                    if self.reconnect_file(cur) {
                        self.rep.valid = false;
                    } else {
                        let lf = self.lost_found;
                        self.fix_dotdot(cur, lf);
                        if let Some(d) = self.dirs.get_mut(&cur) {
                            d.parent = lf;
                        }
                    }
                }
                break;
            }
            cur = parent;
        }
        // Mark the path done.
        for &d in &path {
            done.insert(d);
        }
        // Check ".." of every directory on the path.
        for &d in &path {
            let di = self.dirs.get(&d).copied().unwrap_or_default();
            if di.dotdot != di.parent && di.parent != 0 {
                let p = PCtx {
                    ino: d,
                    ino2: di.dotdot,
                    dir: di.parent,
                    path: self.dir_path(d),
                    path2: if di.dotdot != 0 {
                        self.dir_path(di.dotdot)
                    } else {
                        "<0>".into()
                    },
                    str: self.dir_path(di.parent),
                    ..PCtx::default()
                };
                if self.fix(Code::BadDotDot, &p) {
                    self.fix_dotdot(d, di.parent);
                }
            }
        }
    }

    /// `e2fsck_get_lost_and_found`.
    pub fn get_lost_and_found(&mut self, fix: bool) -> u32 {
        if self.lost_found != 0 {
            return self.lost_found;
        }
        let name = b"lost+found";
        if let Some(ino) = self.lookup(2, name) {
            let raw = self.fs.read_inode(ino);
            let mut unlink = false;
            if fix && raw.has_flag(fl::INLINE_DATA) {
                if !self.fix(Code::LpfInlineData, &PCtx::ino(ino)) {
                    return 0;
                }
                unlink = true;
            } else if fix && raw.has_flag(fl::ENCRYPT) {
                if !self.fix(Code::LpfEncrypted, &PCtx::ino(ino)) {
                    return 0;
                }
                unlink = true;
            }
            if !unlink {
                if self.inode_dir.get(u64::from(ino)) && raw.is_dir() {
                    self.lost_found = ino;
                    return ino;
                }
                if !fix || !self.fix(Code::LpfNotDir, &PCtx::ino(ino)) {
                    return 0;
                }
            }
            if !self.can_write() {
                return 0;
            }
            self.unlink(2, name, ino);
            if let Some(d) = self.dirs.get_mut(&ino) {
                d.parent = 0;
            }
            self.adjust_count(ino, -1);
            if raw.is_dir() {
                self.restart = true;
            }
        } else if !fix {
            return 0;
        }
        if !self.fix(Code::NoLfDir, &PCtx::default()) {
            return 0;
        }
        if !self.can_write() {
            return 0;
        }
        let Some(blk) = self.new_block(self.fs.first_data_block) else {
            self.fix(Code::NoSpaceToRecover, &PCtx::default());
            self.lost_found = 2;
            return 0;
        };
        let Some(ino) = self.new_inode(2, true) else {
            self.free_block(blk);
            self.fix(
                Code::CreateLpfError,
                &PCtx {
                    str: "no free inode".into(),
                    ..PCtx::default()
                },
            );
            return 0;
        };
        let raw = self.new_dir_inode(ino, blk, 0o700);
        self.write_inode(ino, &raw);
        let data = new_dir_block(
            self.fs.bs,
            self.fs.has_metadata_csum(),
            Some((ino, 2)),
            self.fs.has_incompat(Incompat::FILETYPE),
        );
        self.write_dir_block(ino, blk, data);
        let mut r = self.link(2, name, ino, 2);
        if r == Err(true) {
            if self.expand_dir(2).is_ok() {
                r = self.link(2, name, ino, 2);
            }
        }
        if r.is_err() {
            self.fix(
                Code::CreateLpfError,
                &PCtx {
                    str: "cannot link /lost+found".into(),
                    ..PCtx::default()
                },
            );
            return 0;
        }
        self.dirs.insert(
            ino,
            DirInfo {
                dotdot: 2,
                parent: 2,
            },
        );
        self.adjust_count(2, 1);
        if let Some(c) = self.link_count.get_mut(ino as usize) {
            *c = 2;
        }
        if let Some(c) = self.link_info.get_mut(ino as usize) {
            *c = 2;
        }
        self.lost_found = ino;
        ino
    }

    /// `e2fsck_reconnect_file`: links `ino` into lost+found as `#ino`.
    /// Returns true on failure.
    pub fn reconnect_file(&mut self, ino: u32) -> bool {
        if !self.bad_lost_found && self.lost_found == 0 && self.get_lost_and_found(true) == 0 {
            self.bad_lost_found = true;
        }
        if self.bad_lost_found || self.lost_found == 0 {
            self.fix(Code::NoLpf, &PCtx::ino(ino));
            return true;
        }
        let name = format!("#{ino}");
        let raw = self.fs.read_inode(ino);
        let ft = super::dirops::ftype_of_mode(raw.mode());
        let lf = self.lost_found;
        let mut r = self.link(lf, name.as_bytes(), ino, ft);
        if r == Err(true) {
            if !self.fix(Code::ExpandLfDir, &PCtx::ino(lf)) {
                return true;
            }
            if let Err(e) = self.expand_dir(lf) {
                self.fix(
                    Code::CantExpandLpf,
                    &PCtx {
                        str: e,
                        ..PCtx::default()
                    },
                );
                return true;
            }
            r = self.link(lf, name.as_bytes(), ino, ft);
        }
        if r.is_err() {
            self.fix(
                Code::CantReconnect,
                &PCtx {
                    ino,
                    str: "no room".into(),
                    ..PCtx::default()
                },
            );
            return true;
        }
        self.adjust_count(ino, 1);
        false
    }

    /// Rewrites the directories marked for rebuilding as linear directories
    /// (duplicate names renamed), clearing their index.
    fn rehash_directories(&mut self) {
        if self.dirs_to_rehash.is_empty() {
            return;
        }
        self.rep.say_header("Pass 3A: Optimizing directories\n");
        let list: Vec<u32> = std::mem::take(&mut self.dirs_to_rehash)
            .into_iter()
            .collect();
        for ino in list {
            if !self.inode_dir.get(u64::from(ino)) {
                continue;
            }
            self.rehash_dir(ino);
        }
    }

    fn rehash_dir(&mut self, ino: u32) {
        let mut raw = self.fs.read_inode(ino);
        if raw.has_flag(fl::INLINE_DATA) {
            return;
        }
        let blocks = self.dir_blocks(ino);
        if blocks.is_empty() {
            return;
        }
        let csum = self.fs.has_metadata_csum();
        let bs = self.fs.bs;
        let filetype = self.fs.has_incompat(Incompat::FILETYPE);
        // Collect the live entries (not "." and "..").
        let mut entries: Vec<(Vec<u8>, u32, u8)> = Vec::new();
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let dotdot = self
            .dirs
            .get(&ino)
            .map(|d| d.dotdot)
            .filter(|&d| d != 0)
            .unwrap_or(2);
        for &(lblk, pblk) in &blocks {
            let Some(b) = self.fs.block(pblk) else {
                continue;
            };
            let b = b.to_vec();
            // Index blocks hold no names.
            let end = if tail_status(&b) == TailStatus::Ok {
                bs - 12
            } else {
                bs
            };
            for d in parse_dents(&b, end, bs) {
                if d.inode == 0 {
                    continue;
                }
                let name = b[d.off + 8..d.off + 8 + d.name_len].to_vec();
                if name == b"." || name == b".." {
                    continue;
                }
                if lblk == 0 && d.off == 0 {
                    continue;
                }
                let mut name = name;
                if seen.contains(&name) {
                    let encrypted = self.inode_encrypted.get(u64::from(ino));
                    let p = PCtx {
                        ino,
                        dir: ino,
                        name: escape_name(&name),
                        path: self.dir_path(ino),
                        ..PCtx::default()
                    };
                    if encrypted || self.inode_casefold.get(u64::from(ino)) {
                        if self.fix(Code::DuplicateDirentClear, &p) {
                            self.adjust_count(d.inode, -1);
                            continue;
                        }
                    } else {
                        let new = unique_name(&name, &seen);
                        let q = PCtx {
                            str: format!("{}? ", escape_name(&new)),
                            ..p
                        };
                        if self.fix(Code::NonUniqueFile, &q) {
                            name = new;
                        }
                    }
                }
                seen.insert(name.clone());
                entries.push((name, d.inode, if filetype { b[d.off + 7] } else { 0 }));
            }
        }
        if !self.can_write() {
            return;
        }
        // Write them back, packed, from block 0.
        let end = if csum { bs - 12 } else { bs };
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut cur = new_dir_block(bs, csum, Some((ino, dotdot)), filetype);
        // Shrink ".." to its minimal length.
        let mut used = 24usize;
        cur[16..18].copy_from_slice(&12u16.to_le_bytes());
        let mut last_off = 12usize;
        for (name, ino2, ft) in entries {
            let need = rec_len_for_name(name.len());
            if used + need > end {
                let l = end - last_off;
                cur[last_off + 4..last_off + 6].copy_from_slice(&(l as u16).to_le_bytes());
                out.push(cur);
                cur = new_dir_block(bs, csum, None, filetype);
                used = 0;
            }
            let o = used;
            cur[o..o + 4].copy_from_slice(&ino2.to_le_bytes());
            cur[o + 4..o + 6].copy_from_slice(&(need as u16).to_le_bytes());
            cur[o + 6] = name.len() as u8;
            cur[o + 7] = ft;
            cur[o + 8..o + 8 + name.len()].copy_from_slice(&name);
            last_off = o;
            used += need;
        }
        let l = end - last_off;
        cur[last_off + 4..last_off + 6].copy_from_slice(&(l as u16).to_le_bytes());
        out.push(cur);
        if out.len() > blocks.len() {
            return;
        }
        for (k, &(_, pblk)) in blocks.iter().enumerate() {
            let data = match out.get(k) {
                Some(d) => d.clone(),
                None => new_dir_block(bs, csum, None, filetype),
            };
            self.write_dir_block(ino, pblk, data);
        }
        raw.clear_flags(fl::INDEX);
        self.write_inode(ino, &raw);
        self.dx_dirs.remove(&ino);
    }
}

/// A variant of `name` not in `seen`: `~0`, `~1`, ... replacing the end.
fn unique_name(name: &[u8], seen: &HashSet<Vec<u8>>) -> Vec<u8> {
    for i in 0..100_000u32 {
        let suffix = format!("~{i}").into_bytes();
        let keep = name
            .len()
            .saturating_sub(suffix.len())
            .max(1)
            .min(name.len());
        let mut n = name[..keep].to_vec();
        n.extend_from_slice(&suffix);
        if n.len() > 255 {
            n.truncate(255);
        }
        if !seen.contains(&n) {
            return n;
        }
    }
    name.to_vec()
}
