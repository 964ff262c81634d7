//! The whole-tree walk: every directory reachable from the root, every
//! inode they name, its mapping, attributes and symlink target, plus the
//! group descriptors, the journal superblock and the orphan lists. Errors
//! are collected (with the inode number and a path) instead of stopping at
//! the first one.
//!
//! Checks beyond parsing, as e2fsck makes them (passes 1, 2 and 4):
//! - descriptors: checksum; bitmaps and inode table inside the file system
//!   (inside their group without flex_bg);
//! - directories: "." names the directory and ".." its parent, no other
//!   "." or ".." entries, no duplicate names, no '/' or NUL in names;
//!   entries name used inodes (`i_links_count` > 0) outside the reserved
//!   range (except the root); the entry's file type matches the inode's
//!   mode (0 without the filetype feature); a directory is reached once;
//!   a directory's size is a whole number of blocks;
//! - inodes: a valid mode; the htree flag only on directories of a
//!   dir_index file system; `i_blocks` equals the blocks the mapping and the
//!   xattr block take (not on bigalloc); no written block wholly past
//!   `i_size`; `i_dtime` zero on a linked inode (unless an orphan list
//!   exists);
//! - link counts: a file's `i_links_count` equals the entries naming it; a
//!   directory's equals 2 + its subdirectories (1 allowed past 65000 with
//!   dir_nlink);
//! - block ownership (pass 1b): no block is claimed twice by the groups'
//!   fixed metadata (superblock and descriptor copies, bitmaps, inode
//!   tables), the bad blocks list, the journal, orphan and quota files, and
//!   the data, tree and xattr blocks of the inodes reached (a shared xattr
//!   block counts once).
//!
//! Not checked: the bitmaps and summary counts (e2fsck pass 5), inodes
//! that no directory reaches, the resize inode.
//!
//! Bounds: an explicit stack, a visited set for directories (so loops and
//! directory hard links are reported, not followed), each non-directory
//! inode checked once, at most [`MAX_ERRORS`] errors kept, and a budget of
//! blocks the walk may touch (a multiple of the file-system size), after
//! which it stops and says so.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::super::dir::FileType;
use super::super::error::FormatError;
use super::super::features::{Compat, Incompat, RoCompat};
use super::super::ids::special;
use super::super::inode::{
    flags, Inode, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK,
};
use super::map::Layout;
use super::ImageView;

/// Most errors a report keeps (the rest are only counted).
pub const MAX_ERRORS: usize = 10_000;
/// Paths longer than this are abbreviated to `<inode N>/name`.
const MAX_PATH_LEN: usize = 1024;
/// `EXT2_LINK_MAX`: past this many subdirectories a dir_nlink directory
/// keeps a link count of 1.
const LINK_MAX: u64 = 65_000;

/// One problem found by the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkError {
    /// The inode concerned (0 for file-system-wide problems).
    pub ino: u32,
    /// Where: a path from the root, or `<journal>`, `<group N>`, ...
    pub path: String,
    pub error: FormatError,
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (inode {}): {}", self.path, self.ino, self.error)
    }
}

/// What [`ImageView::walk`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalkReport {
    /// Directories reached, the root included.
    pub dirs: u64,
    /// Entries naming regular files (a file with two names counts twice).
    pub files: u64,
    /// Entries naming symlinks.
    pub symlinks: u64,
    /// Entries naming character or block devices.
    pub devices: u64,
    /// Entries naming FIFOs.
    pub fifos: u64,
    /// Entries naming sockets.
    pub sockets: u64,
    /// Sum of `i_size` over distinct regular-file inodes.
    pub bytes: u64,
    /// Distinct inodes reached (the root included).
    pub inodes: u64,
    /// Extended attributes read.
    pub xattrs: u64,
    /// Problems, in the order found (at most [`MAX_ERRORS`]).
    pub errors: Vec<WalkError>,
    /// Problems beyond [`MAX_ERRORS`], counted only.
    pub errors_dropped: u64,
    /// Facts worth knowing that are not damage: a journal needing
    /// recovery, orphans waiting, read-only features.
    pub notes: Vec<String>,
    /// The walk ran out of its block budget and stopped early.
    pub budget_exhausted: bool,
}

impl WalkReport {
    /// No errors and the walk completed.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty() && self.errors_dropped == 0 && !self.budget_exhausted
    }

    /// Total number of errors found.
    pub fn error_count(&self) -> u64 {
        u64::try_from(self.errors.len()).unwrap_or(u64::MAX) + self.errors_dropped
    }
}

/// Largest file system whose block ownership the walk tracks (a bitmap of
/// this many bits, 256 MiB).
const MAX_OWNERSHIP_BLOCKS: u64 = 1 << 31;

/// One bit per block: claimed by metadata or by an inode.
struct BlockSet {
    bits: Vec<u64>,
}

impl BlockSet {
    fn new(blocks: u64) -> Option<Self> {
        if blocks > MAX_OWNERSHIP_BLOCKS {
            return None;
        }
        let words = usize::try_from(blocks.div_ceil(64)).ok()?;
        Some(BlockSet {
            bits: vec![0; words],
        })
    }

    /// Claims `len` blocks from `first`; returns the first one already
    /// claimed (and stops there), if any. Blocks outside the set are ignored
    /// (mapping checks report them).
    fn claim(&mut self, first: u64, len: u64) -> Option<u64> {
        for b in first..first.saturating_add(len) {
            let word = usize::try_from(b / 64)
                .ok()
                .and_then(|w| self.bits.get_mut(w))?;
            let bit = 1u64 << (b % 64);
            if *word & bit != 0 {
                return Some(b);
            }
            *word |= bit;
        }
        None
    }
}

struct Walker<'v, 'a> {
    view: &'v ImageView<'a>,
    /// Block ownership, for blocks claimed twice (None when too large).
    owned: Option<BlockSet>,
    /// Xattr blocks already claimed (they may be shared).
    xattr_blocks: HashSet<u64>,
    report: WalkReport,
    budget: u64,
    /// Entries naming each non-directory inode.
    refs: HashMap<u32, u64>,
    /// (links_count, subdirectories) of each directory read cleanly.
    dir_links: Vec<(u32, String, u16, u64)>,
    /// Non-directory inodes already checked: (links_count, first path).
    checked: HashMap<u32, (u16, String)>,
    orphans_exist: bool,
}

impl<'v, 'a> Walker<'v, 'a> {
    fn error(&mut self, ino: u32, path: &str, error: FormatError) {
        if self.report.errors.len() < MAX_ERRORS {
            self.report.errors.push(WalkError {
                ino,
                path: path.to_string(),
                error,
            });
        } else {
            self.report.errors_dropped += 1;
        }
    }

    fn corrupt(&mut self, ino: u32, path: &str, what: &'static str, detail: String) {
        self.error(ino, path, FormatError::corrupt(what, detail));
    }

    /// Takes `n` blocks from the budget; false once it is spent.
    fn spend(&mut self, n: u64) -> bool {
        self.budget = self.budget.saturating_sub(n.max(1));
        if self.budget == 0 {
            self.report.budget_exhausted = true;
        }
        self.budget > 0
    }

    /// Claims the blocks of a mapping for inode `ino`; reports the first
    /// block already claimed.
    fn claim_map(&mut self, ino: u32, path: &str, map: &super::FileMap) {
        let Some(owned) = self.owned.as_mut() else {
            return;
        };
        let mut dup = None;
        for r in &map.runs {
            dup = dup.or_else(|| owned.claim(r.phys, u64::from(r.len)));
        }
        for &b in &map.meta_blocks {
            dup = dup.or_else(|| owned.claim(b, 1));
        }
        if let Some(b) = dup {
            self.corrupt(
                ino,
                path,
                "inode",
                format!("block {b} is also used by metadata or another inode"),
            );
        }
    }

    /// Claims the fixed metadata of every group and the blocks of the
    /// reserved inodes that live outside the tree.
    fn claim_metadata(&mut self) {
        let view = self.view;
        let geo = view.geometry();
        let mut dups = Vec::new();
        for g in 0..geo.groups_count {
            let (lo, hi) = self.group_bounds(g);
            let metas = self.group_meta(g);
            let Some(owned) = self.owned.as_mut() else {
                return;
            };
            let start = geo.group_first_block(g);
            let base = u64::from(geo.base_meta_blocks(g));
            if let Some(b) = owned.claim(start, base) {
                dups.push((g, "superblock or descriptor copy", b));
            }
            for (what, first, len) in metas {
                // Out-of-range ones are reported by check_groups.
                if first >= lo && first.saturating_add(len) <= hi {
                    if let Some(b) = owned.claim(first, len) {
                        dups.push((g, what, b));
                    }
                }
            }
        }
        for (g, what, b) in dups {
            self.corrupt(
                0,
                &format!("<group {g} descriptor>"),
                "group descriptor",
                format!("{what} overlaps other metadata at block {b}"),
            );
        }
        let f = &view.sb.f;
        match view.bad_blocks_map() {
            Ok(map) => self.claim_map(special::BAD_BLOCKS.0, "<bad blocks inode>", &map),
            Err(e) => self.error(special::BAD_BLOCKS.0, "<bad blocks inode>", e),
        }
        let mut special_inodes = Vec::new();
        if view.has_compat(Compat::HAS_JOURNAL) && f.journal_inum != 0 {
            special_inodes.push((f.journal_inum, "<journal>"));
        }
        if view.has_compat(Compat::ORPHAN_FILE) {
            special_inodes.push((f.orphan_file_inum, "<orphan file>"));
        }
        if view.has_ro_compat(RoCompat::QUOTA) {
            for q in [f.usr_quota_inum, f.grp_quota_inum, f.prj_quota_inum] {
                if q != 0 {
                    special_inodes.push((q, "<quota file>"));
                }
            }
        }
        for (ino, path) in special_inodes {
            // Their own problems are reported elsewhere.
            if let Ok(map) = view.inode(ino).and_then(|i| view.file_map(ino, &i)) {
                self.claim_map(ino, path, &map);
            }
        }
    }

    /// The blocks group `g`'s bitmaps and inode table may lie in: the
    /// group itself, or anywhere in the file system with flex_bg.
    fn group_bounds(&self, g: u32) -> (u64, u64) {
        let view = self.view;
        let geo = view.geometry();
        if view.has_incompat(Incompat::FLEX_BG) {
            (geo.first_data_block, view.blocks_count())
        } else {
            let start = geo.group_first_block(g);
            (start, start + u64::from(geo.blocks_in_group(g)))
        }
    }

    /// The (what, first block, blocks) of group `g`'s bitmaps and inode table.
    fn group_meta(&self, g: u32) -> [(&'static str, u64, u64); 3] {
        let view = self.view;
        let d = view
            .groups()
            .get(usize::try_from(g).unwrap_or(usize::MAX))
            .map(|i| i.desc.clone())
            .unwrap_or_default();
        [
            ("block bitmap", d.block_bitmap, 1),
            ("inode bitmap", d.inode_bitmap, 1),
            (
                "inode table",
                d.inode_table,
                u64::from(view.geometry().inode_table_blocks),
            ),
        ]
    }

    fn check_groups(&mut self) {
        let view = self.view;
        for (g, info) in (0u32..).zip(view.groups()) {
            let path = format!("<group {g} descriptor>");
            if !info.csum_ok {
                self.corrupt(0, &path, "group descriptor", "checksum mismatch".into());
            }
            let (lo, hi) = self.group_bounds(g);
            for (what, first, len) in self.group_meta(g) {
                let end = first.saturating_add(len);
                if first < lo || end > hi {
                    self.corrupt(
                        0,
                        &path,
                        "group descriptor",
                        format!("{what} at block {first} outside blocks {lo}..{hi}"),
                    );
                }
            }
        }
    }

    fn check_special(&mut self) {
        let view = self.view;
        match view.journal_superblock() {
            Ok(Some(j)) => {
                if j.needs_recovery() {
                    self.report
                        .notes
                        .push("the journal needs recovery".to_string());
                }
            }
            Ok(None) => {}
            Err(e) => self.error(view.sb.f.journal_inum, "<journal>", e),
        }
        match view.orphan_file_entries() {
            Ok(Some(list)) if !list.is_empty() => {
                self.orphans_exist = true;
                self.report
                    .notes
                    .push(format!("{} inodes in the orphan file", list.len()));
            }
            Ok(_) => {}
            Err(e) => self.error(view.sb.f.orphan_file_inum, "<orphan file>", e),
        }
        if view.sb.f.last_orphan != 0 {
            self.orphans_exist = true;
            match view.orphan_list() {
                Ok(list) => self
                    .report
                    .notes
                    .push(format!("{} inodes in the orphan list", list.len())),
                Err(e) => self.error(view.sb.f.last_orphan, "<orphan list>", e),
            }
        }
        if view.has_ro_compat(RoCompat::QUOTA) {
            let f = &view.sb.f;
            for (what, q) in [
                ("user", f.usr_quota_inum),
                ("group", f.grp_quota_inum),
                ("project", f.prj_quota_inum),
            ] {
                if q != 0 && (q > f.inodes_count || (q < view.sb.first_ino() && q > 4)) {
                    self.corrupt(
                        0,
                        "<superblock>",
                        "quota",
                        format!("{what} quota inode {q} is invalid"),
                    );
                }
            }
        }
        let ro = view.unknown_ro_compat();
        if !ro.is_empty() {
            self.report.notes.push(format!(
                "read-only features: {}",
                super::super::features::Features::ro_compat_names(ro).join(", ")
            ));
        }
    }

    /// Checks one inode's own structures (mapping, blocks count, size,
    /// attributes, symlink target). Returns whether it is usable.
    fn check_inode(&mut self, ino: u32, inode: &Inode, path: &str) {
        let view = self.view;
        let ft = inode.file_type();
        if !matches!(
            ft,
            S_IFREG | S_IFDIR | S_IFLNK | S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK
        ) {
            self.corrupt(
                ino,
                path,
                "inode",
                format!("mode {:#o} has no file type", inode.mode),
            );
            return;
        }
        if inode.has_flag(flags::INDEX) && (ft != S_IFDIR || !view.has_compat(Compat::DIR_INDEX)) {
            self.corrupt(
                ino,
                path,
                "inode",
                "htree index flag on a non-directory or without dir_index".into(),
            );
        }
        if inode.dtime != 0 && !self.orphans_exist {
            self.corrupt(
                ino,
                path,
                "inode",
                format!("in use but i_dtime is {}", inode.dtime),
            );
        }
        let layout = match view.layout(inode) {
            Ok(l) => l,
            Err(e) => {
                self.error(ino, path, e);
                return;
            }
        };
        let mut counted = match view.file_map(ino, inode) {
            Ok(map) => {
                let meta = u64::try_from(map.meta_blocks.len()).unwrap_or(u64::MAX);
                self.spend(meta);
                let bs = view.bs64();
                if let Some(last) = map.runs.iter().rev().find(|r| !r.unwritten) {
                    let last_blk = last.logical_end() - 1;
                    if inode.size < last_blk.saturating_mul(bs) && ft != S_IFDIR {
                        self.corrupt(
                            ino,
                            path,
                            "inode",
                            format!("i_size {} but block {last_blk} is mapped", inode.size),
                        );
                    }
                }
                if ft == S_IFDIR && layout != Layout::Inline && !inode.size.is_multiple_of(bs) {
                    self.corrupt(
                        ino,
                        path,
                        "directory",
                        format!("i_size {} is not a multiple of the block size", inode.size),
                    );
                }
                self.claim_map(ino, path, &map);
                Some(map.data_blocks().saturating_add(meta))
            }
            Err(e) => {
                self.error(ino, path, e);
                None
            }
        };
        match view.xattrs_of(ino, inode) {
            Ok(list) => {
                self.report.xattrs += u64::try_from(list.len()).unwrap_or(0);
            }
            Err(e) => self.error(ino, path, e),
        }
        if inode.file_acl != 0 {
            counted = counted.map(|c| c + 1);
            if !view.has_compat(Compat::EXT_ATTR) {
                self.corrupt(
                    ino,
                    path,
                    "inode",
                    format!("i_file_acl {} without the ext_attr feature", inode.file_acl),
                );
            } else if inode.file_acl < view.blocks_count()
                && self.xattr_blocks.insert(inode.file_acl)
            {
                if let Some(b) = self.owned.as_mut().and_then(|o| o.claim(inode.file_acl, 1)) {
                    self.corrupt(
                        ino,
                        path,
                        "xattr block",
                        format!("block {b} is also used by metadata or another inode"),
                    );
                }
            }
        }
        let bigalloc = view.has_ro_compat(RoCompat::BIGALLOC);
        if let (Some(blocks), false) = (counted, bigalloc) {
            let bs = u32::try_from(view.block_size()).unwrap_or(0);
            let want = blocks.saturating_mul(u64::from(bs / 512));
            let have = inode.blocks_512(bs);
            if want != have && view.created_by_linux() {
                self.corrupt(
                    ino,
                    path,
                    "inode",
                    format!("i_blocks is {have} sectors, the mapping takes {want}"),
                );
            }
        }
        if ft == S_IFLNK {
            if let Err(e) = view.read_link_inode(ino, inode) {
                self.error(ino, path, e);
            }
        }
    }

    fn run(&mut self) {
        self.check_groups();
        self.check_special();
        if self.owned.is_none() {
            self.report
                .notes
                .push("too large to check block ownership".to_string());
        }
        self.claim_metadata();
        let view = self.view;
        let root = special::ROOT.0;
        let root_inode = match view.inode(root) {
            Ok(i) if i.is_dir() => i,
            Ok(_) => {
                self.corrupt(
                    root,
                    "/",
                    "root",
                    "the root inode is not a directory".into(),
                );
                return;
            }
            Err(e) => {
                self.error(root, "/", e);
                return;
            }
        };
        self.report.dirs = 1;
        self.report.inodes = 1;
        self.check_inode(root, &root_inode, "/");
        let mut visited = HashSet::from([root]);
        let mut stack = vec![(root, String::new(), root, root_inode)];
        while let Some((ino, path, parent, inode)) = stack.pop() {
            let shown = if path.is_empty() { "/" } else { path.as_str() };
            let nblocks = inode.size.div_ceil(view.bs64());
            if !self.spend(nblocks) {
                break;
            }
            let mut problems = Vec::new();
            let records = match view.scan_dir(ino, &inode, &mut problems) {
                Ok(r) => r,
                Err(e) => {
                    self.error(ino, shown, e);
                    continue;
                }
            };
            let clean = problems.is_empty();
            for p in problems {
                self.error(ino, shown, p);
            }
            let mut subdirs = 0u64;
            let mut names = HashSet::new();
            for (i, rec) in records.iter().enumerate() {
                let name = String::from_utf8_lossy(&rec.name);
                let child_path = if path.len() > MAX_PATH_LEN {
                    format!("<inode {ino}>/{name}")
                } else {
                    format!("{path}/{name}")
                };
                match (i, rec.name.as_slice()) {
                    (0, b".") => {
                        if rec.ino != ino {
                            self.corrupt(
                                ino,
                                shown,
                                "directory",
                                format!("'.' names inode {}", rec.ino),
                            );
                        }
                        continue;
                    }
                    (1, b"..") => {
                        if rec.ino != parent {
                            self.corrupt(
                                ino,
                                shown,
                                "directory",
                                format!("'..' names inode {}, the parent is {parent}", rec.ino),
                            );
                        }
                        continue;
                    }
                    (0, _) => {
                        self.corrupt(ino, shown, "directory", "first entry is not '.'".into())
                    }
                    (1, _) => {
                        self.corrupt(ino, shown, "directory", "second entry is not '..'".into())
                    }
                    _ => {}
                }
                if rec.name == b"." || rec.name == b".." {
                    self.corrupt(
                        ino,
                        &child_path,
                        "directory",
                        "extra '.' or '..' entry".into(),
                    );
                    continue;
                }
                if rec.name.iter().any(|&b| b == b'/' || b == 0) {
                    self.corrupt(
                        ino,
                        &child_path,
                        "directory",
                        "name holds '/' or NUL".into(),
                    );
                }
                if !names.insert(rec.name.as_slice()) {
                    self.corrupt(ino, &child_path, "directory", "duplicate name".into());
                }
                self.visit_entry(
                    rec,
                    &child_path,
                    ino,
                    &mut visited,
                    &mut stack,
                    &mut subdirs,
                );
                if self.report.budget_exhausted {
                    break;
                }
            }
            if clean {
                self.dir_links
                    .push((ino, shown.to_string(), inode.links_count, subdirs));
            }
        }
        self.check_links();
    }

    #[allow(clippy::too_many_arguments)]
    fn visit_entry(
        &mut self,
        rec: &super::DirRecord,
        path: &str,
        dir: u32,
        visited: &mut HashSet<u32>,
        stack: &mut Vec<(u32, String, u32, Inode)>,
        subdirs: &mut u64,
    ) {
        let view = self.view;
        let child = rec.ino;
        if child < view.sb.first_ino() && child != special::ROOT.0 {
            self.corrupt(
                child,
                path,
                "directory entry",
                "names a reserved inode".into(),
            );
            return;
        }
        let inode = match view.inode(child) {
            Ok(i) => i,
            Err(e) => {
                self.error(child, path, e);
                return;
            }
        };
        if inode.links_count == 0 {
            self.corrupt(
                child,
                path,
                "directory entry",
                "names an unused inode".into(),
            );
            return;
        }
        let want = FileType::from_mode(inode.mode).to_raw();
        if view.has_incompat(Incompat::FILETYPE) {
            // 0 (unknown) is tolerated, as by the kernel and e2fsck -n.
            if rec.file_type_raw != want && rec.file_type_raw != 0 {
                self.corrupt(
                    child,
                    path,
                    "directory entry",
                    format!(
                        "file type {} but the inode's mode is {:#o}",
                        rec.file_type_raw, inode.mode
                    ),
                );
            }
        } else if rec.file_type_raw != 0 {
            self.corrupt(
                child,
                path,
                "directory entry",
                "file type set without the filetype feature".into(),
            );
        }
        if inode.is_dir() {
            *subdirs += 1;
            if !visited.insert(child) {
                self.corrupt(
                    child,
                    path,
                    "directory",
                    "reached a second time (loop or hard link)".into(),
                );
                return;
            }
            self.report.dirs += 1;
            self.report.inodes += 1;
            self.check_inode(child, &inode, path);
            stack.push((child, path.to_string(), dir, inode));
            return;
        }
        match inode.file_type() {
            S_IFREG => self.report.files += 1,
            S_IFLNK => self.report.symlinks += 1,
            S_IFCHR | S_IFBLK => self.report.devices += 1,
            S_IFIFO => self.report.fifos += 1,
            S_IFSOCK => self.report.sockets += 1,
            _ => {}
        }
        *self.refs.entry(child).or_insert(0) += 1;
        if self.checked.contains_key(&child) {
            return;
        }
        self.checked
            .insert(child, (inode.links_count, path.to_string()));
        self.report.inodes += 1;
        if inode.is_reg() {
            self.report.bytes = self.report.bytes.saturating_add(inode.size);
        }
        self.check_inode(child, &inode, path);
    }

    fn check_links(&mut self) {
        let dir_nlink = self.view.has_ro_compat(RoCompat::DIR_NLINK);
        let dirs = std::mem::take(&mut self.dir_links);
        for (ino, path, links, subdirs) in dirs {
            let mut want = 2 + subdirs;
            if dir_nlink && want > LINK_MAX {
                want = 1;
            }
            if u64::from(links) != want {
                self.corrupt(
                    ino,
                    &path,
                    "directory",
                    format!("i_links_count {links}, counted {want}"),
                );
            }
        }
        let mut checked: Vec<_> = self.checked.drain().collect();
        checked.sort_unstable_by_key(|(ino, _)| *ino);
        for (ino, (links, path)) in checked {
            let refs = self.refs.get(&ino).copied().unwrap_or(0);
            if u64::from(links) != refs {
                self.corrupt(
                    ino,
                    &path,
                    "inode",
                    format!("i_links_count {links}, {refs} entries name it"),
                );
            }
        }
    }
}

impl ImageView<'_> {
    /// Walks the whole file system from the root (see the module notes)
    /// and reports counts and every problem found. Never panics, always
    /// terminates.
    pub fn walk(&self) -> WalkReport {
        let budget = self.blocks_count.saturating_mul(8).saturating_add(1 << 20);
        let mut w = Walker {
            view: self,
            report: WalkReport::default(),
            owned: BlockSet::new(self.blocks_count),
            xattr_blocks: HashSet::new(),
            budget,
            refs: HashMap::new(),
            dir_links: Vec::new(),
            checked: HashMap::new(),
            orphans_exist: false,
        };
        w.run();
        w.report
    }
}
