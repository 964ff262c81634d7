//! Passes 1B–1D: blocks claimed by more than one inode (or by an inode and
//! the file-system metadata), after e2fsck's `pass1b.c`.
//!
//! 1B rescans the inodes for the blocks pass 1 saw twice and lists them per
//! inode; 1C finds names for those inodes; 1D, per inode, offers to clone
//! the shared blocks (copies in new blocks, the mapping rewritten) or else
//! to delete the file.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::format::bytes::get_u32;

use super::check::Checker;
use super::dirops::parse_dents;
use super::ino::{fl, InodeRead, InodeWrite};
use super::map::{mapping, remap};
use super::pass1::BAD_INO;
use super::problem::{Code, PCtx};

#[derive(Debug, Default)]
struct DupBlock {
    /// Claimants (inodes; an inode claiming twice appears twice).
    inodes: Vec<u32>,
    /// Shared with fixed metadata.
    meta: bool,
}

impl DupBlock {
    fn count(&self) -> usize {
        self.inodes.len() + usize::from(self.meta)
    }
}

#[derive(Debug, Default)]
struct DupInode {
    blocks: Vec<u64>,
    dir: u32,
}

/// Formats a block list as e2fsck does (` 25--26 57`).
fn ranges(blocks: &[u64]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while i < blocks.len() {
        let start = blocks[i];
        let mut end = start;
        while i + 1 < blocks.len() && blocks[i + 1] == end + 1 {
            i += 1;
            end += 1;
        }
        if start == end {
            s.push_str(&format!(" {start}"));
        } else {
            s.push_str(&format!(" {start}--{end}"));
        }
        i += 1;
    }
    s
}

fn fmt_time(t: u32) -> String {
    // "Tue Sep 21 03:19:14 1993" in UTC.
    let secs = i64::from(t);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(mo - 1) as usize];
    format!("{wd} {mon} {d:2} {h:02}:{m:02}:{s:02} {y}")
}

impl Checker {
    /// Every block an inode claims, in the order pass 1 would claim them.
    fn inode_claims(&self, ino: u32, raw: &[u8]) -> Vec<u64> {
        let mut v = Vec::new();
        let ea = raw.file_acl(self.fs.hurd);
        if ea != 0 && self.fs.valid_block(ea) {
            v.push(ea);
        }
        if ino == BAD_INO {
            for i in 0..12 {
                let b = u64::from(raw.block_word(i));
                if b != 0 && self.fs.valid_block(b) {
                    v.push(b);
                }
            }
            let ind = u64::from(raw.block_word(12));
            if ind != 0 && self.fs.valid_block(ind) {
                v.push(ind);
                if let Some(b) = self.fs.block(ind) {
                    for j in 0..self.fs.bs / 4 {
                        let x = u64::from(get_u32(b, 4 * j).unwrap_or(0));
                        if x != 0 && self.fs.valid_block(x) {
                            v.push(x);
                        }
                    }
                }
            }
            return v;
        }
        let m = mapping(&self.fs, raw);
        for r in &m.runs {
            v.extend(r.pblk..r.pblk + r.len);
        }
        v.extend(m.meta.iter().copied());
        v
    }

    /// Passes 1B, 1C and 1D.
    pub fn pass1_dupblocks(&mut self) {
        self.fix(Code::DupHeader, &PCtx::default());
        let mut dups: HashMap<u64, DupBlock> = HashMap::new();
        let mut inodes: BTreeMap<u32, DupInode> = BTreeMap::new();
        let n = self.fs.inodes_count;
        for ino in 1..=n {
            if !self.inode_used.get(u64::from(ino)) {
                continue;
            }
            if ino == 7 {
                continue;
            }
            let raw = self.fs.read_inode(ino);
            let claims = self.inode_claims(ino, &raw);
            let mut mine = Vec::new();
            for b in claims {
                if self.block_dup.get(b) {
                    mine.push(b);
                    dups.entry(b).or_default().inodes.push(ino);
                }
            }
            if !mine.is_empty() {
                let p = PCtx {
                    ino,
                    str: ranges(&mine),
                    ..PCtx::default()
                };
                self.fix(Code::DupBlocksInInode, &p);
                inodes.insert(
                    ino,
                    DupInode {
                        blocks: mine,
                        dir: 0,
                    },
                );
            }
        }
        for (&b, d) in dups.iter_mut() {
            if self.block_meta.get(b) || d.inodes.len() < 2 && self.block_ea.get(b) {
                d.meta = self.block_meta.get(b);
            }
        }
        // Pass 1C: names.
        self.fix(Code::Dup1CHeader, &PCtx::default());
        let wanted: HashSet<u32> = inodes.keys().copied().collect();
        let bs = self.fs.bs;
        for db in self.dblist.clone() {
            if db.blk == 0 {
                continue;
            }
            let Some(b) = self.fs.block(db.blk) else {
                continue;
            };
            for d in parse_dents(b, bs, bs) {
                if wanted.contains(&d.inode) {
                    let name = &b[d.off + 8..d.off + 8 + d.name_len];
                    if name == b"." || name == b".." {
                        continue;
                    }
                    if let Some(di) = inodes.get_mut(&d.inode) {
                        if di.dir == 0 {
                            di.dir = db.ino;
                        }
                    }
                }
            }
        }
        // Pass 1D.
        self.fix(Code::Dup1DHeader, &PCtx::default());
        let p = PCtx {
            num: inodes.len() as u64,
            ..PCtx::default()
        };
        self.fix(Code::DupNumInodes, &p);
        let list: Vec<u32> = inodes.keys().copied().collect();
        for ino in list {
            if self.rep.should_stop() {
                return;
            }
            let Some(di) = inodes.get(&ino) else { continue };
            let mut shared: Vec<u32> = Vec::new();
            let mut meta = false;
            let mut file_ok = true;
            for b in &di.blocks {
                let Some(d) = dups.get(b) else { continue };
                if d.count() > 1 {
                    file_ok = false;
                }
                if d.meta {
                    meta = true;
                }
                for &o in &d.inodes {
                    if o != ino && !shared.contains(&o) {
                        shared.push(o);
                    }
                }
            }
            if file_ok {
                self.fix(Code::DupBlocksDealt, &PCtx::default());
                continue;
            }
            let raw = self.fs.read_inode(ino);
            let mut list_text = String::new();
            for &o in &shared {
                let oraw = self.fs.read_inode(o);
                let odir = inodes.get(&o).map(|x| x.dir).unwrap_or(0);
                list_text.push_str(&format!(
                    "\t{} (inode #{o}, mod time {})\n",
                    self.describe_inode(odir, o),
                    fmt_time(oraw.mtime())
                ));
            }
            if meta {
                list_text.push_str("\t<filesystem metadata>\n");
            }
            let p = PCtx {
                ino,
                num: di.blocks.len() as u64,
                num2: shared.len() as u64 + u64::from(meta),
                path: self.describe_inode(di.dir, ino),
                path2: list_text,
                str: fmt_time(raw.mtime()),
                ..PCtx::default()
            };
            self.fix(Code::DupFile, &p);
            if self.fix(Code::CloneQuestion, &PCtx::ino(ino)) {
                match self.clone_file(ino, &mut dups) {
                    Ok(()) => continue,
                    Err(e) => {
                        self.fix(
                            Code::CloneError,
                            &PCtx {
                                str: e,
                                ..PCtx::default()
                            },
                        );
                    }
                }
            }
            if self.fix(Code::DeleteQuestion, &PCtx::ino(ino)) {
                self.delete_file(ino, &mut dups);
            } else {
                self.rep.valid = false;
            }
        }
    }

    fn describe_inode(&self, dir: u32, ino: u32) -> String {
        match ino {
            1 => "<The bad blocks inode>".into(),
            5 => "<The boot loader inode>".into(),
            7 => "<The group descriptor inode>".into(),
            8 => "<The journal inode>".into(),
            2 => "/".into(),
            _ if dir == 0 => format!("<{ino}>"),
            _ => self.inode_path(dir, ino),
        }
    }

    /// Copies every shared block of `ino` into new blocks (each
    /// occurrence its own copy) and rewrites the mapping.
    fn clone_file(&mut self, ino: u32, dups: &mut HashMap<u64, DupBlock>) -> Result<(), String> {
        let mut raw = self.fs.read_inode(ino);
        let shared =
            |b: u64, dups: &HashMap<u64, DupBlock>| dups.get(&b).is_some_and(|d| d.count() > 1);
        if ino == BAD_INO {
            return Err("the bad block list cannot be cloned".into());
        }
        let m = mapping(&self.fs, &raw);
        let extent = raw.has_flag(fl::EXTENTS);
        // Replacements in visiting order: (old, new).
        let mut data_q: Vec<(u64, u64)> = Vec::new();
        let mut meta_q: Vec<(u64, u64)> = Vec::new();
        let mut freed: Vec<u64> = Vec::new();
        let mut allocated: Vec<u64> = Vec::new();
        let fail = |c: &mut Checker, allocated: &[u64]| {
            for &b in allocated {
                c.free_block(b);
            }
        };
        for r in &m.runs {
            if !(r.pblk..r.pblk + r.len).any(|b| shared(b, dups)) {
                // Untouched run: replacements keep the old block.
                for k in 0..r.len {
                    data_q.push((r.pblk + k, r.pblk + k));
                }
                continue;
            }
            let whole = if extent {
                self.new_blocks(r.pblk, r.len)
            } else {
                None
            };
            match whole {
                Some(nb) => {
                    for k in 0..r.len {
                        let old = r.pblk + k;
                        data_q.push((old, nb + k));
                        allocated.push(nb + k);
                        if !shared(old, dups) {
                            freed.push(old);
                        }
                    }
                }
                None => {
                    for k in 0..r.len {
                        let old = r.pblk + k;
                        if !shared(old, dups) {
                            data_q.push((old, old));
                            continue;
                        }
                        let Some(nb) = self.new_block(old) else {
                            fail(self, &allocated);
                            return Err("Could not allocate block in ext2 filesystem".into());
                        };
                        data_q.push((old, nb));
                        allocated.push(nb);
                    }
                }
            }
        }
        for &b in &m.meta {
            if shared(b, dups) {
                let Some(nb) = self.new_block(b) else {
                    fail(self, &allocated);
                    return Err("Could not allocate block in ext2 filesystem".into());
                };
                meta_q.push((b, nb));
                allocated.push(nb);
            } else {
                meta_q.push((b, b));
            }
        }
        // Copy the data blocks.
        for &(o, n) in &data_q {
            if o != n {
                if let Some(d) = self.fs.block(o).map(<[u8]>::to_vec) {
                    self.write_block(n, &d);
                }
            }
        }
        let mut writes: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut di = 0usize;
        let mut mi = 0usize;
        let mut mismatch = false;
        let ok = remap(
            &self.fs,
            ino,
            &mut raw,
            &mut |b, meta| {
                let (q, i) = if meta {
                    (&meta_q, &mut mi)
                } else {
                    (&data_q, &mut di)
                };
                match q.get(*i) {
                    Some(&(o, n)) if o == b => {
                        *i += 1;
                        (n != o).then_some(n)
                    }
                    _ => {
                        // Visiting order differs: look the block up instead.
                        match q.iter().find(|&&(o, _)| o == b) {
                            Some(&(o, n)) => (n != o).then_some(n),
                            None => {
                                mismatch = true;
                                None
                            }
                        }
                    }
                }
            },
            &mut |b, data| writes.push((b, data)),
        );
        if !ok || mismatch {
            fail(self, &allocated);
            return Err("the mapping could not be rewritten".into());
        }
        for (b, data) in writes {
            self.write_block(b, &data);
        }
        // The attribute block.
        let ea = raw.file_acl(self.fs.hurd);
        let mut touched: Vec<u64> = data_q
            .iter()
            .chain(meta_q.iter())
            .filter(|(o, n)| o != n)
            .map(|&(o, _)| o)
            .collect();
        if ea != 0 && shared(ea, dups) {
            if let Some(nb) = self.new_block(ea) {
                if let Some(mut d) = self.fs.block(ea).map(<[u8]>::to_vec) {
                    let _ = crate::format::xattr::set_block_refcount(&mut d, 1);
                    if self.fs.has_metadata_csum() {
                        let _ = crate::format::xattr::set_block_checksum(self.fs.seed, nb, &mut d);
                    }
                    self.write_block(nb, &d);
                }
                raw.set_file_acl(nb, self.fs.hurd);
                touched.push(ea);
            }
        }
        self.write_inode(ino, &raw);
        if self.inode_dir.get(u64::from(ino)) {
            // Pass 2 must read the copies, not the shared blocks.
            let nm = mapping(&self.fs, &raw);
            for db in self
                .dblist
                .iter_mut()
                .filter(|d| d.ino == ino && d.blk != 0)
            {
                if let Some(nb) = nm.bmap(u64::from(db.lblk)) {
                    db.blk = nb;
                }
            }
        }
        for b in freed {
            self.free_block(b);
        }
        for old in touched {
            let mut release = false;
            if let Some(d) = dups.get_mut(&old) {
                if let Some(pos) = d.inodes.iter().position(|&x| x == ino) {
                    d.inodes.remove(pos);
                }
                release = d.inodes.is_empty() && !d.meta;
            }
            if release {
                self.free_block(old);
            }
        }
        Ok(())
    }

    /// Deletes a file whose blocks are shared (`delete_file`).
    fn delete_file(&mut self, ino: u32, dups: &mut HashMap<u64, DupBlock>) {
        let mut raw = self.fs.read_inode(ino);
        let claims = self.inode_claims(ino, &raw);
        for b in claims {
            if let Some(d) = dups.get_mut(&b) {
                d.inodes.retain(|&x| x != ino);
                if d.inodes.is_empty() && !d.meta {
                    self.free_block(b);
                }
                continue;
            }
            self.free_block(b);
        }
        let is_dir = raw.is_dir();
        self.clear_inode(ino, &mut raw);
        self.free_inode(ino, is_dir);
    }
}
