//! The state shared by the passes: the file system, the reporter, and the
//! maps pass 1 builds and the later passes consume (inodes in use,
//! directories, blocks claimed, link counts, directory blocks, parents).
//!
//! Sizes: one bit per inode and per block for each map, two `u16` per inode
//! for the link counts, one entry per directory block; nothing else grows
//! with the size of the file system.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::bitset::BitSet;
use super::fs::Fs;
use super::ino::{InodeRead, InodeWrite};
use super::problem::{Code, PCtx, Reporter};

/// What the checker knows about a directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct DirInfo {
    /// The inode `..` names (0 until pass 2 reads it).
    pub dotdot: u32,
    /// The directory holding an entry for it (0 until found).
    pub parent: u32,
}

/// A directory block to check in pass 2 (`blk` 0: a hole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirBlock {
    pub ino: u32,
    pub blk: u64,
    pub lblk: u32,
}

/// An indexed directory found in pass 1.
#[derive(Debug, Clone, Copy)]
pub struct DxDir {
    /// Blocks of the directory (last logical block + 1).
    pub numblocks: u32,
}

/// Counters for the summary and `-v`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub dirs: u64,
    pub regular: u64,
    pub blockdev: u64,
    pub chardev: u64,
    pub fifos: u64,
    pub sockets: u64,
    pub symlinks: u64,
    pub fast_symlinks: u64,
    pub links: u64,
    pub fragmented: u64,
    pub large_files: u64,
    pub ext_attr_inodes: u64,
}

/// Per-run options the passes look at.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOpts {
    /// Threads for pass 1 and pass 2 (1 = sequential).
    pub threads: usize,
    /// Report progress.
    pub progress: bool,
}

/// The checker.
pub struct Checker {
    pub fs: Fs,
    pub rep: Reporter,
    pub opts: CheckOpts,
    /// "Now" for dtime and lastcheck.
    pub now: u32,
    pub inode_used: BitSet,
    pub inode_dir: BitSet,
    pub inode_reg: BitSet,
    pub inode_bad: BitSet,
    pub inode_imagic: BitSet,
    pub inode_encrypted: BitSet,
    pub inode_casefold: BitSet,
    /// Blocks in use (metadata and files).
    pub block_found: BitSet,
    /// Blocks claimed more than once.
    pub block_dup: BitSet,
    pub has_dups: bool,
    /// Fixed metadata blocks (superblocks, descriptors, bitmaps, tables).
    pub block_meta: BitSet,
    /// Extended attribute blocks seen.
    pub block_ea: BitSet,
    /// `i_links_count` of each inode (index = inode number).
    pub link_info: Vec<u16>,
    /// References found in directories (pass 2).
    pub link_count: Vec<u16>,
    pub dirs: HashMap<u32, DirInfo>,
    pub dx_dirs: HashMap<u32, DxDir>,
    pub dblist: Vec<DirBlock>,
    /// EA blocks: references still expected (h_refcount - seen).
    pub ea_refcount: HashMap<u64, i64>,
    /// EA blocks: the refcount stored.
    pub ea_stored: HashMap<u64, u32>,
    /// EA blocks: blocks charged to each user (1 + EA inode values).
    pub ea_quota: HashMap<u64, u64>,
    /// References to EA inodes from xattr entries.
    pub ea_inode_refs: HashMap<u32, u64>,
    /// Directories to rebuild (duplicate names, broken htree).
    pub dirs_to_rehash: BTreeSet<u32>,
    pub lost_found: u32,
    /// Groups whose block bitmap / inode bitmap / inode table location is invalid.
    pub invalid_bb: Vec<bool>,
    pub invalid_ib: Vec<bool>,
    pub invalid_it: Vec<bool>,
    pub invalid_bitmaps: u32,
    /// A pass asked for a restart from pass 1.
    pub restart: bool,
    /// Block reserved for re-creating the root directory.
    pub root_repair_block: u64,
    /// Block reserved for re-creating lost+found.
    pub lnf_repair_block: u64,
    pub stats: Stats,
    /// Inodes whose directory entries must be rewritten with the right file type.
    pub large_files: u64,
    /// The journal was found bad and cleared: recreate after pass 5.
    pub recreate_journal: bool,
    /// The resize inode was cleared: recreate after pass 1.
    pub recreate_resize: bool,
    /// A restart was asked for, to happen at the end of the pass.
    pub restart_later: bool,
    /// Blocks allocated (true) or released (false) by repairs after pass 1.
    pub block_changes: BTreeMap<u64, bool>,
    /// Inodes allocated or released by repairs: (in use, directory).
    pub inode_changes: BTreeMap<u32, (bool, bool)>,
    pub bad_lost_found: bool,
    /// Verification run: nothing may be written.
    pub dry_run: bool,
    /// The journal needs replaying and this run refused.
    pub journal_refused: bool,
    pub restarts: u32,
    saved_mode: Option<(super::problem::Mode, bool)>,
}

impl Checker {
    pub fn new(fs: Fs, rep: Reporter, opts: CheckOpts, now: u32) -> Checker {
        let mut c = Checker {
            inode_used: BitSet::default(),
            inode_dir: BitSet::default(),
            inode_reg: BitSet::default(),
            inode_bad: BitSet::default(),
            inode_imagic: BitSet::default(),
            inode_encrypted: BitSet::default(),
            inode_casefold: BitSet::default(),
            block_found: BitSet::default(),
            block_dup: BitSet::default(),
            has_dups: false,
            block_meta: BitSet::default(),
            block_ea: BitSet::default(),
            link_info: Vec::new(),
            link_count: Vec::new(),
            dirs: HashMap::new(),
            dx_dirs: HashMap::new(),
            dblist: Vec::new(),
            ea_refcount: HashMap::new(),
            ea_stored: HashMap::new(),
            ea_quota: HashMap::new(),
            ea_inode_refs: HashMap::new(),
            dirs_to_rehash: BTreeSet::new(),
            lost_found: 0,
            invalid_bb: Vec::new(),
            invalid_ib: Vec::new(),
            invalid_it: Vec::new(),
            invalid_bitmaps: 0,
            restart: false,
            root_repair_block: 0,
            lnf_repair_block: 0,
            stats: Stats::default(),
            large_files: 0,
            recreate_journal: false,
            recreate_resize: false,
            restart_later: false,
            block_changes: BTreeMap::new(),
            inode_changes: BTreeMap::new(),
            bad_lost_found: false,
            dry_run: false,
            journal_refused: false,
            restarts: 0,
            saved_mode: None,
            fs,
            rep,
            opts,
            now,
        };
        c.reset_maps();
        c
    }

    /// Forgets everything the passes found (for a restart), keeping the
    /// file system, the reporter and the run's state.
    pub fn reset_maps(&mut self) {
        let ninodes = u64::from(self.fs.inodes_count) + 1;
        let nblocks = self.fs.blocks_count;
        let ngroups = self.fs.groups_count() as usize;
        let n = usize::try_from(ninodes).unwrap_or(0);
        self.inode_used = BitSet::new(ninodes);
        self.inode_dir = BitSet::new(ninodes);
        self.inode_reg = BitSet::new(ninodes);
        self.inode_bad = BitSet::new(ninodes);
        self.inode_imagic = BitSet::new(ninodes);
        self.inode_encrypted = BitSet::new(ninodes);
        self.inode_casefold = BitSet::new(ninodes);
        self.block_found = BitSet::new(nblocks);
        self.block_dup = BitSet::new(nblocks);
        self.has_dups = false;
        self.block_meta = BitSet::new(nblocks);
        self.block_ea = BitSet::new(nblocks);
        self.link_info = vec![0; n];
        self.link_count = vec![0; n];
        self.dirs.clear();
        self.dx_dirs.clear();
        self.dblist.clear();
        self.ea_refcount.clear();
        self.ea_stored.clear();
        self.ea_quota.clear();
        self.ea_inode_refs.clear();
        self.dirs_to_rehash.clear();
        self.lost_found = 0;
        self.invalid_bb = vec![false; ngroups];
        self.invalid_ib = vec![false; ngroups];
        self.invalid_it = vec![false; ngroups];
        self.invalid_bitmaps = 0;
        self.restart = false;
        self.restart_later = false;
        self.stats = Stats::default();
        self.large_files = 0;
        self.block_changes.clear();
        self.inode_changes.clear();
        self.bad_lost_found = false;
    }

    /// Starts the silent verification run.
    pub fn begin_verify(&mut self) {
        self.reset_maps();
        self.saved_mode = Some((self.rep.mode(), self.rep.fixed));
        self.rep.set_mode(super::problem::Mode::No);
        self.rep.quiet = true;
        self.rep.valid = true;
        self.dry_run = true;
    }

    /// Ends the verification run (the reporter goes back to its mode).
    pub fn end_verify(&mut self) {
        if let Some((m, fixed)) = self.saved_mode.take() {
            self.rep.set_mode(m);
            self.rep.fixed = fixed;
        }
        self.rep.quiet = false;
        self.dry_run = false;
    }

    /// Reports a problem; returns whether to fix it.
    pub fn fix(&mut self, code: Code, p: &PCtx) -> bool {
        self.rep.fix(code, p)
    }

    /// Whether repairs may be written.
    pub fn can_write(&self) -> bool {
        self.fs.disk.is_writable() && !self.dry_run
    }

    /// Writes inode `ino` (with checksum). A refused write is an internal
    /// error only when the image is writable.
    pub fn write_inode(&mut self, ino: u32, raw: &[u8]) {
        if self.can_write() && !self.fs.write_inode(ino, raw) {
            self.rep
                .say(&format!("fsck.fext: could not write inode {ino}\n"));
            self.rep.aborted = true;
        }
    }

    /// Writes block `blk`, which must not be fixed metadata (superblock,
    /// descriptors, bitmaps, inode tables): such a write is refused.
    pub fn write_block(&mut self, blk: u64, data: &[u8]) {
        if self.block_meta.get(blk) {
            return;
        }
        self.write_meta_block(blk, data);
    }

    /// Writes block `blk`, metadata or not (bitmaps, new tables).
    pub fn write_meta_block(&mut self, blk: u64, data: &[u8]) {
        if self.can_write() && !self.fs.write_block(blk, data) {
            self.rep
                .say(&format!("fsck.fext: could not write block {blk}\n"));
            self.rep.aborted = true;
        }
    }

    /// Clears an inode as e2fsck does (`e2fsck_clear_inode`): links 0,
    /// dtime now, flags 0 (i_block zeroed for reserved inodes), forgotten
    /// by the maps.
    pub fn clear_inode(&mut self, ino: u32, raw: &mut Vec<u8>) {
        raw.set_flags(0);
        raw.set_links(0);
        raw.set_dtime(self.now);
        if ino < self.fs.first_ino {
            raw.set_i_block(&[]);
        }
        if ino == 1 {
            raw[..128].iter_mut().for_each(|b| *b = 0);
        }
        if let Some(l) = self.link_info.get_mut(ino as usize) {
            *l = 0;
        }
        self.inode_dir.clear(u64::from(ino));
        self.inode_used.clear(u64::from(ino));
        self.inode_reg.clear(u64::from(ino));
        self.inode_bad.clear(u64::from(ino));
        self.dirs.remove(&ino);
        self.write_inode(ino, raw);
    }

    /// The path of directory `ino` from the root, built from the parents
    /// found so far (e2fsck's `%p`); `???` for unknown parts.
    pub fn dir_path(&self, ino: u32) -> String {
        if ino == 2 {
            return "/".into();
        }
        if ino == 0 {
            return "???".into();
        }
        let mut parts: Vec<String> = Vec::new();
        let mut cur = ino;
        let mut hops = 0;
        while cur != 2 && hops < 64 {
            hops += 1;
            let mut parent = self.dirs.get(&cur).map(|d| d.parent).unwrap_or(0);
            if parent == 0 {
                parent = self.dirs.get(&cur).map(|d| d.dotdot).unwrap_or(0);
            }
            if parent == 0 {
                parent = self.lookup(cur, b"..").unwrap_or(0);
            }
            if parent == 0 || parent == cur {
                return if parts.is_empty() {
                    format!("<{ino}>")
                } else {
                    parts.reverse();
                    format!("<{cur}>/{}", parts.join("/"))
                };
            }
            match self.name_in_dir(parent, cur) {
                Some(n) => parts.push(n),
                None => parts.push(format!("<{cur}>")),
            }
            cur = parent;
        }
        if cur != 2 {
            return "???".into();
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// The path of inode `ino` found in directory `dir` (`%Q`).
    pub fn inode_path(&self, dir: u32, ino: u32) -> String {
        if ino == 2 {
            return "/".into();
        }
        if self.inode_dir.get(u64::from(ino)) {
            return self.dir_path(ino);
        }
        let d = self.dir_path(dir);
        match self.name_in_dir(dir, ino) {
            Some(n) if d == "/" => format!("/{n}"),
            Some(n) => format!("{d}/{n}"),
            None => format!("{d}/???"),
        }
    }

    /// The name of `ino` in directory `dir`, found by reading its blocks
    /// (bounded: the first 1024 blocks).
    pub fn name_in_dir(&self, dir: u32, ino: u32) -> Option<String> {
        super::dirops::find_name(self, dir, ino)
    }
}

/// Decodes the inode's checksum-ok flag and the raw bytes.
pub fn raw_links(raw: &[u8]) -> u16 {
    raw.links()
}
