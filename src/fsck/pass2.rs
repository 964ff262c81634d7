//! Pass 2: the directory blocks, after e2fsck's `check_dir_block`.
//!
//! Every block of every directory (in block order; index roots first so
//! the hash version is known): record chain (rec_len, name_len, salvaged
//! when broken), `.` and `..`, entries naming bad, reserved or unused
//! inodes, links to `.`, to the root or to a second parent, file types,
//! names, duplicate names in a block, checksum tails, and the htree
//! structure (index nodes, hash ranges of leaves, depth, references).
//! It counts the links to every inode for pass 4 and records each
//! directory's parent and `..` for pass 3.

use std::collections::{HashMap, HashSet};

use crate::format::bytes::{get_u16, get_u32};
use crate::format::dir::{rec_len_from_disk, rec_len_to_disk, verify_dir_block_csum};
use crate::format::dx_hash::{dx_hash, DxHashVersion};
use crate::format::features::{Compat, Incompat, RoCompat};
use crate::format::group_desc::BG_INODE_UNINIT;
use crate::format::htree::verify_dx_csum;

use super::check::{Checker, DirBlock};
use super::dirops::{init_tail, new_dir_block, tail_status, TailStatus};
use super::ino::{fl, InodeRead, InodeWrite};
use super::pass1::{check_symlink, device_ok, Env};
use super::problem::{escape_name, Code, PCtx};
use super::xattr_check::inline_data_ea;

const DX_ROOT: u8 = 1;
const DX_NODE: u8 = 2;
const DX_LEAF: u8 = 3;
const F_REFERENCED: u8 = 1;
const F_DUP_REF: u8 = 2;
const F_FIRST: u8 = 4;
const F_LAST: u8 = 8;

#[derive(Debug, Clone, Copy, Default)]
struct DxBlock {
    ty: u8,
    flags: u8,
    parent: u32,
    previous: u32,
    min_hash: u32,
    max_hash: u32,
    node_min_hash: u32,
    node_max_hash: u32,
}

#[derive(Debug)]
struct DxState {
    numblocks: u32,
    blocks: Vec<DxBlock>,
    hashversion: Option<DxHashVersion>,
    depth: u32,
}

impl Checker {
    /// Pass 2.
    pub fn pass2(&mut self) {
        self.rep
            .say_header("Pass 2: Checking directory structure\n");
        if let Some(d) = self.dirs.get_mut(&2) {
            d.parent = 2;
        }
        let mut dx: HashMap<u32, DxState> = HashMap::new();
        for (&ino, d) in &self.dx_dirs {
            if d.numblocks == 0 || d.numblocks > (1 << 24) {
                continue;
            }
            dx.insert(
                ino,
                DxState {
                    numblocks: d.numblocks,
                    blocks: vec![DxBlock::default(); d.numblocks as usize],
                    hashversion: None,
                    depth: 0,
                },
            );
        }
        let mut list = std::mem::take(&mut self.dblist);
        if self.fs.has_compat(Compat::DIR_INDEX) {
            list.sort_by_key(|d| (d.lblk != 0, d.blk, d.ino, d.lblk));
        } else {
            list.sort_by_key(|d| (d.blk, d.ino, d.lblk));
        }
        let total = list.len() as u64;
        for (k, db) in list.iter().enumerate() {
            if self.rep.should_stop() {
                return;
            }
            self.check_dir_block(*db, &mut dx);
            if k % 4096 == 0 {
                self.progress(2, k as u64, total);
            }
        }
        self.dblist = list;
        if self.restart_later {
            self.restart = true;
            return;
        }
        // Htree verification.
        let mut dx_inos: Vec<u32> = dx.keys().copied().collect();
        dx_inos.sort_unstable();
        for ino in dx_inos {
            let Some(st) = dx.get_mut(&ino) else { continue };
            if st.numblocks == 0 {
                continue;
            }
            let mut p = PCtx {
                ino,
                dir: ino,
                ..PCtx::default()
            };
            let mut bad = false;
            {
                let b0 = &mut st.blocks[0];
                if b0.flags & F_REFERENCED != 0 {
                    b0.flags |= F_DUP_REF;
                } else {
                    b0.flags |= F_REFERENCED;
                }
            }
            update_parents(st, DX_LEAF);
            update_parents(st, DX_NODE);
            let mut msgs = Vec::new();
            for b in 0..st.numblocks as usize {
                let db = st.blocks[b];
                p.blkcount = Some(b as i64);
                p.group = db.parent;
                if db.flags & F_FIRST == 0 && db.min_hash < db.node_min_hash {
                    msgs.push((Code::HtreeMinHash, p.clone()));
                    bad = true;
                }
                if db.ty == DX_LEAF {
                    let depth = htree_depth(st, b);
                    if depth != st.depth {
                        let mut q = p.clone();
                        q.num = u64::from(st.depth);
                        msgs.push((Code::HtreeBadDepth, q));
                        bad = true;
                    }
                }
                if b != 0 && db.max_hash > db.node_max_hash {
                    msgs.push((Code::HtreeMaxHash, p.clone()));
                    bad = true;
                }
                if db.flags & F_REFERENCED == 0 {
                    msgs.push((Code::HtreeNotref, p.clone()));
                    bad = true;
                } else if db.flags & F_DUP_REF != 0 {
                    msgs.push((Code::HtreeDupref, p.clone()));
                    bad = true;
                }
            }
            for (c, q) in msgs {
                self.fix(c, &q);
            }
            if bad {
                let q = PCtx {
                    ino,
                    path: self.dir_path(ino),
                    ..PCtx::default()
                };
                if self.fix(Code::HtreeClear, &q) {
                    self.clear_htree(ino);
                    st.numblocks = 0;
                }
            }
        }
        if self.large_files > 0
            && !self.fs.has_ro_compat(RoCompat::LARGE_FILE)
            && self.fix(Code::FeatureLargeFiles, &PCtx::default())
        {
            let mut f = self.fs.sb.features();
            f.ro_compat |= RoCompat::LARGE_FILE;
            self.fs.sb.set_features(f);
            self.fs.refresh();
            self.fs.mark_sb_dirty();
        }
    }

    /// Clears the index flag of a directory and schedules its rebuild.
    pub fn clear_htree(&mut self, ino: u32) {
        let mut raw = self.fs.read_inode(ino);
        raw.clear_flags(fl::INDEX);
        self.write_inode(ino, &raw);
        self.dirs_to_rehash.insert(ino);
    }

    fn will_rehash(&self, ino: u32) -> bool {
        self.dirs_to_rehash.contains(&ino)
    }

    fn rehash_later(&mut self, ino: u32) {
        self.dirs_to_rehash.insert(ino);
    }

    /// `check_dir_block` for one directory block.
    fn check_dir_block(&mut self, mut db: DirBlock, dx: &mut HashMap<u32, DxState>) {
        let ino = db.ino;
        if !self.inode_used.get(u64::from(ino)) {
            return;
        }
        let fs_bs = self.fs.bs;
        let csum_fs = self.fs.has_metadata_csum();
        let dir_raw = self.fs.read_inode(ino);
        let inline =
            self.fs.has_incompat(Incompat::INLINE_DATA) && dir_raw.has_flag(fl::INLINE_DATA);
        let mut inline_size = 0usize;
        let mut inline_ea_len = 0usize;
        if inline {
            match inline_data_ea(&dir_raw, self.fs.inode_size) {
                Some(ea) => {
                    inline_ea_len = ea.len();
                    inline_size = 60 + ea.len();
                }
                None => inline_size = 60,
            }
        }
        if db.blk == 0
            && self.fs.has_incompat(Incompat::LARGEDIR)
            && !self.fs.has_incompat(Incompat::INLINE_DATA)
        {
            return;
        }
        if db.blk == 0 && !inline {
            match self.allocate_dir_block(&db) {
                Some(b) => db.blk = b,
                None => return,
            }
        }
        let mut dot_state = if db.lblk == 0 { 0u32 } else { 2 };
        let mut dups_found = self.will_rehash(ino);
        let mut p = PCtx {
            ino,
            dir: ino,
            blk: db.blk,
            blkcount: Some(i64::from(db.lblk)),
            ..PCtx::default()
        };
        // Read the block.
        let mut buf: Vec<u8>;
        let mut failed_csum = false;
        if inline {
            // i_block (60 bytes) then the EA value.
            buf = dir_raw.i_block().to_vec();
            if let Some(ea) = inline_data_ea(&dir_raw, self.fs.inode_size) {
                buf.extend_from_slice(ea);
            }
        } else {
            buf = match self.fs.block(db.blk) {
                Some(b) => b.to_vec(),
                None => return,
            };
            if csum_fs {
                let seed = self.fs.inode_seed(ino, dir_raw.generation());
                let ok = match tail_status(&buf) {
                    TailStatus::Ok => verify_dir_block_csum(&buf, seed).is_ok(),
                    _ => {
                        // Maybe an htree node: its own checksum.
                        crate::format::htree::dx_count_offset(&buf).is_some()
                            && verify_dx_csum(&buf, seed).is_ok()
                    }
                };
                failed_csum = !ok;
            }
        }
        // Bad inline size.
        if inline && ((inline_size & 3) != 0 || (inline_size > 60 && inline_size < 60 + 12)) {
            let pi = PCtx {
                ino,
                num: inline_size as u64,
                ..PCtx::default()
            };
            if self.fix(Code::BadInlineDirSize, &pi) {
                // Truncate the second part when it cannot hold an entry.
                let new_size = if inline_size > 60 && inline_size < 72 {
                    60
                } else {
                    inline_size & !3
                };
                let mut r = dir_raw.clone();
                r.set_size(new_size as u64);
                self.write_inode(ino, &r);
                inline_size = new_size;
                buf.truncate(new_size);
            }
        }
        // Htree bookkeeping.
        let mut is_leaf = true;
        let mut dx_here = false;
        let dx_csum = if csum_fs { 8 } else { 0 };
        if let Some(st) = dx.get_mut(&ino) {
            if st.numblocks > 0 {
                if db.lblk >= st.numblocks {
                    let q = PCtx {
                        ino,
                        path: String::new(),
                        ..PCtx::default()
                    };
                    if self.fix(Code::HtreeUnexpectedBlock, &q) {
                        st.numblocks = 0;
                        self.clear_htree(ino);
                    }
                } else {
                    let i = db.lblk as usize;
                    let b0 = &mut st.blocks[i];
                    b0.ty = DX_LEAF;
                    b0.min_hash = u32::MAX;
                    b0.max_hash = 0;
                    let rec_len0 = rec_len_from_disk(get_u16(&buf, 4).unwrap_or(0), fs_bs);
                    let limit = usize::from(get_u16(&buf, 8).unwrap_or(0));
                    if db.lblk == 0 {
                        b0.ty = DX_ROOT;
                        b0.flags |= F_FIRST | F_LAST;
                        let reserved = get_u32(&buf, 24).unwrap_or(1);
                        let info_len = buf.get(29).copied().unwrap_or(0);
                        let levels = buf.get(30).copied().unwrap_or(0);
                        let maxl = if self.fs.has_incompat(Incompat::LARGEDIR) {
                            3
                        } else {
                            2
                        };
                        let hv = buf.get(28).copied().unwrap_or(0);
                        let unsigned = self.fs.sb.f.flags & 2 != 0;
                        st.hashversion = DxHashVersion::effective(hv, unsigned).ok();
                        st.depth = u32::from(levels) + 1;
                        if (reserved != 0 || info_len < 8 || levels >= maxl)
                            && self.fix(Code::HtreeBadRoot, &p)
                        {
                            st.numblocks = 0;
                            self.clear_htree(ino);
                        }
                    } else if get_u32(&buf, 0) == Some(0)
                        && rec_len0 == fs_bs
                        && buf.get(6) == Some(&0)
                        && limit == (fs_bs - (8 + dx_csum)) / 8
                    {
                        b0.ty = DX_NODE;
                    }
                    if st.numblocks > 0 {
                        dx_here = true;
                        is_leaf = st.blocks[i].ty == DX_LEAF;
                    } else {
                        is_leaf = true;
                    }
                }
            }
        }
        let mut de_csum = if csum_fs { 12 } else { 0 };
        if is_leaf && !inline && failed_csum && tail_status(&buf) == TailStatus::NoSpace {
            de_csum = 0;
            if self.will_rehash(ino) {
                failed_csum = false;
            } else if self.fix(
                Code::LeafNodeMissingCsum,
                &PCtx {
                    num: 0,
                    ..p.clone()
                },
            ) {
                self.rehash_later(ino);
                failed_csum = false;
            }
        }
        if !is_leaf {
            de_csum = 0;
        }
        let (base, max_block_size) = if inline {
            if db.lblk > 0 {
                if inline_size <= 60 {
                    return;
                }
                (60usize, inline_size - 60)
            } else {
                (0, 60)
            }
        } else {
            (0, fs_bs - de_csum)
        };
        let _ = inline_ea_len;
        let encrypted = self.inode_encrypted.get(u64::from(ino));
        let filetype_fs = self.fs.has_incompat(Incompat::FILETYPE);
        let mut names: HashSet<Vec<u8>> = HashSet::new();
        let mut offset = 0usize;
        let mut prev: Option<usize> = None;
        let mut modified = false;
        let mut last_rec: Option<usize> = None;
        let mut rec_len = 0usize;
        let rl_bs = if inline { max_block_size } else { fs_bs };
        // Work on the area [base, base+max_block_size).
        let area_len = max_block_size;
        let mut area: Vec<u8> = buf
            .get(base..base + area_len)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        if area.len() < area_len {
            area.resize(area_len, 0);
        }
        let inline_first = inline && db.lblk == 0;
        let mut steps = 0usize;
        loop {
            steps += 1;
            if steps > area_len + 4 {
                break;
            }
            let mut fake = false;
            if !inline_first || dot_state > 1 {
                if offset >= max_block_size {
                    break;
                }
                rec_len = if max_block_size - offset < 8 {
                    12
                } else {
                    rec_len_from_disk(get_u16(&area, offset + 4).unwrap_or(0), rl_bs)
                };
                let name_len = if offset + 6 < area.len() {
                    usize::from(area[offset + 6])
                } else {
                    0
                };
                p.num = offset as u64;
                if offset + rec_len > max_block_size
                    || rec_len < 12
                    || rec_len % 4 != 0
                    || name_len + 8 > rec_len
                {
                    if self.fix(Code::DirCorrupted, &p) {
                        salvage(
                            &mut area,
                            prev,
                            &mut offset,
                            max_block_size,
                            self.fs.inodes_count,
                            rl_bs,
                        );
                        modified = true;
                        continue;
                    }
                    // Cannot go on with this block.
                    return;
                }
            } else {
                fake = true;
            }
            // The entry at `offset` (or a fake "."/".." for inline dirs).
            let (mut d_ino, d_name): (u32, Vec<u8>) = if fake {
                if dot_state == 0 {
                    (ino, b".".to_vec())
                } else {
                    (get_u32(&area, 0).unwrap_or(0), b"..".to_vec())
                }
            } else {
                let nl = usize::from(area[offset + 6]);
                (
                    get_u32(&area, offset).unwrap_or(0),
                    area[offset + 8..offset + 8 + nl].to_vec(),
                )
            };
            p.name = escape_name(&d_name);
            p.ino2 = d_ino;
            let mut goto_next = false;
            if dot_state == 0 {
                if !fake && self.check_dot(&mut area, offset, ino, &p, rl_bs) {
                    modified = true;
                    d_ino = get_u32(&area, offset).unwrap_or(0);
                    rec_len = rec_len_from_disk(get_u16(&area, offset + 4).unwrap_or(0), rl_bs);
                }
            } else if dot_state == 1 {
                if fake {
                    if let Some(di) = self.dirs.get_mut(&ino) {
                        di.dotdot = d_ino;
                    }
                } else {
                    match self.check_dotdot(&mut area, offset, ino, &p) {
                        1 => {
                            modified = true;
                            d_ino = get_u32(&area, offset).unwrap_or(0);
                        }
                        _ => {}
                    }
                }
            } else if d_ino == ino {
                if self.fix(Code::LinkDot, &p) {
                    area[offset..offset + 4].fill(0);
                    modified = true;
                    goto_next = true;
                }
            }
            if !goto_next && d_ino != 0 {
                let name_len = d_name.len();
                let mut problem = None;
                if (d_ino != 2 && d_ino < self.fs.first_ino) || d_ino > self.fs.inodes_count {
                    problem = Some(Code::BadIno);
                } else if dot_state > 1 && d_name == b"." {
                    problem = Some(Code::DupDot);
                } else if dot_state > 1 && d_name == b".." {
                    problem = Some(Code::DupDotDot);
                } else if dot_state > 1 && d_ino == 2 {
                    problem = Some(Code::LinkRoot);
                } else if dot_state > 1 && name_len == 0 {
                    problem = Some(Code::NullName);
                }
                let mut skip = false;
                if let Some(code) = problem {
                    p.path = self.dir_path(ino);
                    if self.fix(code, &p) {
                        zero_entry(&mut area, offset, fake);
                        modified = true;
                        skip = true;
                    } else {
                        self.rep.valid = false;
                        if code == Code::BadIno {
                            skip = true;
                        }
                    }
                }
                if !skip
                    && self.inode_bad.get(u64::from(d_ino))
                    && self.process_bad_inode(ino, d_ino)
                {
                    zero_entry(&mut area, offset, fake);
                    modified = true;
                    skip = true;
                }
                if !skip {
                    let group = (d_ino - 1) / self.fs.ipg;
                    let gd = self.fs.groups[group as usize].clone();
                    let first_unused =
                        group * self.fs.ipg + 1 + self.fs.ipg - gd.itable_unused.min(self.fs.ipg);
                    p.group = group;
                    if self.fs.has_group_csum() && gd.has_flag(BG_INODE_UNINIT) {
                        p.path = self.dir_path(ino);
                        if self.fix(Code::InorefBgInoUninit, &p) {
                            self.fs.groups[group as usize].flags &= !BG_INODE_UNINIT;
                            self.fs.mark_gd_dirty();
                            self.restart_later = true;
                        } else {
                            self.rep.valid = false;
                        }
                    } else if self.fs.has_group_csum() && d_ino >= first_unused {
                        p.path = self.dir_path(ino);
                        if self.fix(Code::InorefInUnused, &p) {
                            self.fs.groups[group as usize].itable_unused = 0;
                            self.fs.mark_gd_dirty();
                            self.restart_later = true;
                        } else {
                            self.rep.valid = false;
                        }
                    }
                    if !self.restart_later && !self.inode_used.get(u64::from(d_ino)) {
                        p.path = self.dir_path(ino);
                        if self.fix(Code::UnusedInode, &p) {
                            zero_entry(&mut area, offset, fake);
                            modified = true;
                            skip = true;
                        } else {
                            self.rep.valid = false;
                        }
                    }
                }
                if !skip && !fake {
                    if !encrypted {
                        let nl = usize::from(area[offset + 6]);
                        let bad = area[offset + 8..offset + 8 + nl]
                            .iter()
                            .any(|&c| c == b'/' || c == 0);
                        if bad {
                            p.path = self.dir_path(ino);
                            if self.fix(Code::BadName, &p) {
                                for c in &mut area[offset + 8..offset + 8 + nl] {
                                    if *c == b'/' || *c == 0 {
                                        *c = b'.';
                                    }
                                }
                                modified = true;
                            }
                        }
                    } else if dot_state > 1 && usize::from(area[offset + 6]) < 16 {
                        p.path = self.dir_path(ino);
                        if self.fix(Code::BadEncryptedName, &p) {
                            area[offset..offset + 4].fill(0);
                            modified = true;
                            skip = true;
                        } else {
                            self.rep.valid = false;
                        }
                    }
                }
                if !skip && !fake {
                    // File type.
                    let ft = area[offset + 7];
                    if !filetype_fs {
                        if ft != 0 {
                            p.path = self.dir_path(ino);
                            if self.fix(Code::ClearFiletype, &p) {
                                area[offset + 7] = 0;
                                modified = true;
                            }
                        }
                    } else {
                        let should = self.expected_ftype(d_ino);
                        if ft != should {
                            p.num = u64::from(should);
                            p.num2 = u64::from(ft);
                            p.path = self.dir_path(ino);
                            let code = if ft != 0 {
                                Code::BadFiletype
                            } else {
                                Code::SetFiletype
                            };
                            if self.fix(code, &p) {
                                area[offset + 7] = should;
                                modified = true;
                            }
                        }
                    }
                }
                if !skip {
                    // Hash range of a leaf.
                    if dx_here && is_leaf && dot_state > 1 {
                        if let Some(st) = dx.get_mut(&ino) {
                            if let (Some(v), Some(b)) =
                                (st.hashversion, st.blocks.get_mut(db.lblk as usize))
                            {
                                if !self.inode_casefold.get(u64::from(ino)) {
                                    let (h, _) = dx_hash(v, &d_name, &self.fs.sb.f.hash_seed);
                                    b.min_hash = b.min_hash.min(h);
                                    b.max_hash = b.max_hash.max(h);
                                }
                            }
                        }
                    }
                    // A subdirectory: record its parent.
                    if dot_state > 1 && self.inode_dir.get(u64::from(d_ino)) {
                        let parent = self.dirs.get(&d_ino).map(|d| d.parent).unwrap_or(0);
                        if parent != 0 {
                            p.ino2 = d_ino;
                            p.path = self.dir_path(ino);
                            p.path2 = self.dir_path(d_ino);
                            if self.fix(Code::LinkDir, &p) {
                                area[offset..offset + 4].fill(0);
                                modified = true;
                                skip = true;
                            }
                        } else if let Some(di) = self.dirs.get_mut(&d_ino) {
                            di.parent = ino;
                        }
                    }
                }
                if !skip {
                    if dups_found || dot_state < 2 {
                    } else if !names.insert(d_name.clone()) {
                        let q = PCtx {
                            ino,
                            dir: ino,
                            name: escape_name(&d_name),
                            path: self.dir_path(ino),
                            ..PCtx::default()
                        };
                        self.fix(Code::DuplicateDirent, &q);
                        self.rehash_later(ino);
                        dups_found = true;
                    }
                    self.adjust_count(d_ino, 1);
                    self.stats.links += 1;
                }
            }
            // next:
            if !fake {
                prev = Some(offset);
                last_rec = Some(offset);
                rec_len = rec_len_from_disk(get_u16(&area, offset + 4).unwrap_or(0), rl_bs);
                offset += rec_len.max(1);
            } else if dot_state == 1 {
                offset = 4;
                prev = None;
            }
            dot_state += 1;
            if inline_first && dot_state == 2 {
                // The real entries of an inline directory start at byte 4.
                offset = 4;
            }
            if offset >= max_block_size && (!inline_first || dot_state > 1) {
                break;
            }
        }
        // Index nodes.
        if dx_here && !is_leaf {
            self.parse_int_node(&db, &area, dx, failed_csum, fs_bs, dx_csum);
        }
        if offset != max_block_size && offset > 0 {
            if let Some(lr) = last_rec {
                let want = rec_len as i64 + max_block_size as i64 - offset as i64;
                if want >= 12 {
                    p.num = want as u64;
                    p.num2 = rec_len as u64;
                    p.name = String::new();
                    p.path = self.dir_path(ino);
                    if self.fix(Code::FinalReclen, &p) {
                        area[lr + 4..lr + 6]
                            .copy_from_slice(&rec_len_to_disk(want as usize, rl_bs).to_le_bytes());
                        modified = true;
                    }
                }
            }
        }
        if modified
            || (is_leaf && failed_csum && {
                let q = PCtx {
                    num: 0,
                    ..p.clone()
                };
                self.fix(Code::LeafNodeOnlyCsumInvalid, &q)
            })
        {
            if !self.can_write() {
                return;
            }
            if inline {
                let mut r = self.fs.read_inode(ino);
                if db.lblk == 0 {
                    let n = area.len().min(60);
                    r[0x28..0x28 + n].copy_from_slice(&area[..n]);
                } else {
                    super::xattr_check::set_inline_data_ea(&mut r, self.fs.inode_size, &area);
                }
                self.write_inode(ino, &r);
                return;
            }
            let mut full = buf.clone();
            full[base..base + area.len()].copy_from_slice(&area);
            if csum_fs && is_leaf && tail_status(&full) != TailStatus::Ok {
                if !insert_tail(&mut full) {
                    self.rehash_later(ino);
                }
            }
            if self.block_meta.get(db.blk) {
                return;
            }
            if is_leaf {
                self.write_dir_block(ino, db.blk, full);
            } else {
                if csum_fs {
                    let seed = self.fs.inode_seed(ino, dir_raw.generation());
                    let _ = crate::format::htree::set_dx_csum(&mut full, seed);
                }
                self.write_block(db.blk, &full);
            }
        }
    }

    /// The file type an entry for `ino` should carry.
    fn expected_ftype(&self, ino: u32) -> u8 {
        let i = u64::from(ino);
        if self.inode_dir.get(i) {
            2
        } else if self.inode_reg.get(i) {
            1
        } else if self.inode_bad.get(i) {
            0
        } else {
            let raw = self.fs.read_inode(ino);
            super::dirops::ftype_of_mode(raw.mode())
        }
    }

    fn check_dot(&mut self, area: &mut [u8], off: usize, ino: u32, p: &PCtx, rl_bs: usize) -> bool {
        let d_ino = get_u32(area, off).unwrap_or(0);
        let nl = usize::from(area[off + 6]);
        let mut problem = None;
        if d_ino == 0 {
            problem = Some(Code::MissingDot);
        } else if nl != 1 || area[off + 8] != b'.' {
            problem = Some(Code::FirstNotDot);
        } else if area.get(off + 9).copied().unwrap_or(0) != 0 {
            problem = Some(Code::DotNullTerm);
        }
        let mut rec_len = rec_len_from_disk(get_u16(area, off + 4).unwrap_or(0), rl_bs);
        let mut status = false;
        let mut created = false;
        if let Some(code) = problem {
            let q = PCtx {
                ino,
                path: self.dir_path(ino),
                ..p.clone()
            };
            if self.fix(code, &q) {
                if rec_len < 12 {
                    rec_len = 12;
                    area[off + 4..off + 6].copy_from_slice(&12u16.to_le_bytes());
                }
                area[off..off + 4].copy_from_slice(&ino.to_le_bytes());
                area[off + 6] = 1;
                area[off + 7] = if self.fs.has_incompat(Incompat::FILETYPE) {
                    0
                } else {
                    0
                };
                area[off + 8] = b'.';
                area[off + 9] = 0;
                status = true;
                created = true;
            }
        }
        if get_u32(area, off).unwrap_or(0) != ino && self.fix(Code::BadInodeDot, &PCtx::ino(ino)) {
            area[off..off + 4].copy_from_slice(&ino.to_le_bytes());
            status = true;
        }
        if rec_len > 12 {
            let new_len = rec_len - 12;
            if new_len > 12 {
                let q = PCtx {
                    ino,
                    path: self.dir_path(ino),
                    ..PCtx::default()
                };
                if created || self.fix(Code::SplitDot, &q) {
                    area[off + 4..off + 6].copy_from_slice(&12u16.to_le_bytes());
                    let n = off + 12;
                    area[n..n + 4].fill(0);
                    area[n + 4..n + 6]
                        .copy_from_slice(&rec_len_to_disk(new_len, rl_bs).to_le_bytes());
                    area[n + 6] = 0;
                    area[n + 7] = 0;
                    status = true;
                }
            }
        }
        status
    }

    /// Returns 1 when modified, 0 otherwise.
    fn check_dotdot(&mut self, area: &mut [u8], off: usize, ino: u32, p: &PCtx) -> i32 {
        let d_ino = get_u32(area, off).unwrap_or(0);
        let nl = usize::from(area[off + 6]);
        let mut problem = None;
        if d_ino == 0 {
            problem = Some(Code::MissingDotDot);
        } else if nl != 2 || area[off + 8] != b'.' || area[off + 9] != b'.' {
            problem = Some(Code::SecondNotDotDot);
        } else if area.get(off + 10).copied().unwrap_or(0) != 0 {
            problem = Some(Code::DotDotNullTerm);
        }
        if let Some(code) = problem {
            let q = PCtx { ino, ..p.clone() };
            if self.fix(code, &q) {
                let rec_len = usize::from(get_u16(area, off + 4).unwrap_or(0));
                if rec_len < 12 {
                    area[off + 4..off + 6].copy_from_slice(&12u16.to_le_bytes());
                }
                area[off..off + 4].copy_from_slice(&2u32.to_le_bytes());
                area[off + 6] = 2;
                area[off + 7] = 0;
                area[off + 8] = b'.';
                area[off + 9] = b'.';
                area[off + 10] = 0;
                return 1;
            }
            return 0;
        }
        if let Some(di) = self.dirs.get_mut(&ino) {
            di.dotdot = d_ino;
        }
        0
    }

    fn parse_int_node(
        &mut self,
        db: &DirBlock,
        buf: &[u8],
        dx: &mut HashMap<u32, DxState>,
        failed_csum: bool,
        bs: usize,
        dx_csum: usize,
    ) {
        let ino = db.ino;
        let p = PCtx {
            ino,
            dir: ino,
            blkcount: Some(i64::from(db.lblk)),
            ..PCtx::default()
        };
        let ent_off = if db.lblk == 0 {
            24 + usize::from(buf.get(29).copied().unwrap_or(8))
        } else {
            8
        };
        let clear = |c: &mut Checker, dx: &mut HashMap<u32, DxState>| {
            c.clear_htree(ino);
            if let Some(st) = dx.get_mut(&ino) {
                st.numblocks = 0;
            }
        };
        if failed_csum {
            let code = if db.lblk == 0 {
                Code::HtreeRootCsumInvalid
            } else {
                Code::HtreeNodeCsumInvalid
            };
            if self.will_rehash(ino) || self.fix(code, &p) {
                clear(self, dx);
                return;
            }
        }
        let limit = usize::from(get_u16(buf, ent_off).unwrap_or(0));
        let mut count = usize::from(get_u16(buf, ent_off + 2).unwrap_or(0));
        let expect = bs.saturating_sub(dx_csum + ent_off) / 8;
        if limit != expect {
            let q = PCtx {
                num: limit as u64,
                ..p.clone()
            };
            if self.fix(Code::HtreeBadLimit, &q) {
                clear(self, dx);
                return;
            }
        }
        if count > expect {
            let q = PCtx {
                num: count as u64,
                ..p.clone()
            };
            if self.fix(Code::HtreeBadCount, &q) {
                clear(self, dx);
                return;
            }
            count = expect;
        }
        let Some(st) = dx.get_mut(&ino) else { return };
        if st.numblocks == 0 {
            return;
        }
        let mut min_hash = u32::MAX;
        let mut max_hash = 0u32;
        let mut hash = 0u32;
        let mut do_clear = false;
        for i in 0..count {
            let prev_hash = hash;
            let eo = ent_off + 8 * i;
            hash = if i == 0 {
                0
            } else {
                get_u32(buf, eo).unwrap_or(0) & !1
            };
            let blk = get_u32(buf, eo + 4).unwrap_or(0) & 0x0fff_ffff;
            if blk >= st.numblocks {
                let q = PCtx {
                    blk: u64::from(blk),
                    path: self.dir_path(ino),
                    ..p.clone()
                };
                if self.fix(Code::HtreeBadblk, &q) {
                    do_clear = true;
                    break;
                }
                continue;
            }
            if hash < prev_hash && self.fix(Code::HtreeHashOrder, &p) {
                do_clear = true;
                break;
            }
            let prev_blk = if i > 0 {
                get_u32(buf, eo - 8 + 4).unwrap_or(0) & 0x0fff_ffff
            } else {
                0
            };
            let next_hash = if i + 1 < count {
                Some(get_u32(buf, eo + 8).unwrap_or(0) & !1)
            } else {
                None
            };
            let d = &mut st.blocks[blk as usize];
            if d.flags & F_REFERENCED != 0 {
                d.flags |= F_DUP_REF;
            } else {
                d.flags |= F_REFERENCED;
                d.parent = db.lblk;
            }
            d.previous = prev_blk;
            min_hash = min_hash.min(hash);
            max_hash = max_hash.max(hash);
            d.node_min_hash = hash;
            match next_hash {
                Some(h) => d.node_max_hash = h,
                None => {
                    d.node_max_hash = 0xffff_fffe;
                    d.flags |= F_LAST;
                }
            }
            if i == 0 {
                d.flags |= F_FIRST;
            }
        }
        if do_clear {
            clear(self, dx);
            return;
        }
        if let Some(d) = st.blocks.get_mut(db.lblk as usize) {
            d.min_hash = min_hash;
            d.max_hash = max_hash;
        }
    }

    /// `e2fsck_process_bad_inode`: returns true when the inode was cleared
    /// (the entry must go too).
    pub fn process_bad_inode(&mut self, dir: u32, ino: u32) -> bool {
        let mut raw = self.fs.read_inode(ino);
        let hurd = self.fs.hurd;
        let mut modified = false;
        let mut not_fixed = false;
        let mut p = PCtx {
            ino,
            dir,
            ..PCtx::default()
        };
        p.path = self.inode_path(dir, ino);
        let xattr = self.fs.has_compat(Compat::EXT_ATTR);
        if raw.file_acl(hurd) != 0 && !xattr {
            p.num = raw.file_acl(hurd);
            if self.fix(Code::FileAclZero, &p) {
                raw.set_file_acl(0, hurd);
                modified = true;
            } else {
                not_fixed = true;
            }
        }
        let problem = if !(raw.is_dir()
            || raw.is_reg()
            || raw.is_chr()
            || raw.is_blk()
            || raw.is_symlink()
            || raw.is_fifo()
            || raw.is_sock())
        {
            Some(Code::BadMode)
        } else if raw.is_chr() && !device_ok(&raw) {
            Some(Code::BadCharDev)
        } else if raw.is_blk() && !device_ok(&raw) {
            Some(Code::BadBlockDev)
        } else if raw.is_fifo() && !device_ok(&raw) {
            Some(Code::BadFifo)
        } else if raw.is_sock() && !device_ok(&raw) {
            Some(Code::BadSocket)
        } else if raw.is_symlink() && {
            let env = Env::new(&self.fs, &self.block_meta, self.now, self.rep.mode());
            !check_symlink(&env, ino, &raw)
        } {
            Some(Code::InvalidSymlink)
        } else {
            None
        };
        if let Some(code) = problem {
            p.str = format!("0{:o}", raw.mode());
            if self.fix(code, &p) {
                self.deallocate_inode(ino);
                return true;
            }
            not_fixed = true;
        }
        if raw.faddr() != 0 {
            p.num = u64::from(raw.faddr());
            if self.fix(Code::FaddrZero, &p) {
                raw.set_faddr(0);
                modified = true;
            } else {
                not_fixed = true;
            }
        }
        if hurd {
            if raw[0x74] != 0 {
                p.num = u64::from(raw[0x74]);
                if self.fix(Code::FragZero, &p) {
                    raw.set_u8(0x74, 0);
                    modified = true;
                } else {
                    not_fixed = true;
                }
            }
            if raw[0x75] != 0 {
                p.num = u64::from(raw[0x75]);
                if self.fix(Code::FsizeZero, &p) {
                    raw.set_u8(0x75, 0);
                    modified = true;
                } else {
                    not_fixed = true;
                }
            }
        }
        if !hurd && !self.fs.has_ro_compat(RoCompat::HUGE_FILE) && raw.blocks_hi() != 0 {
            p.num = u64::from(raw.blocks_hi());
            if self.fix(Code::BlocksHiZero, &p) {
                raw.set_u16_at(0x74, 0);
                modified = true;
            }
        }
        if !hurd && !self.fs.has_incompat(Incompat::BIT64) && raw.file_acl_hi() != 0 {
            p.num = u64::from(raw.file_acl_hi());
            if self.fix(Code::FileAclHiZero, &p) {
                raw.set_u16_at(0x76, 0);
                modified = true;
            } else {
                not_fixed = true;
            }
        }
        let acl = raw.file_acl(hurd);
        if acl != 0 && !self.fs.valid_block(acl) {
            p.num = acl;
            if self.fix(Code::FileAclBad, &p) {
                raw.set_file_acl(0, hurd);
                modified = true;
            } else {
                not_fixed = true;
            }
        }
        if raw.size_high() != 0 && !self.fs.has_incompat(Incompat::LARGEDIR) && raw.is_dir() {
            p.num = u64::from(raw.size_high());
            if self.fix(Code::DirSizeHighZero, &p) {
                let lo = u64::from(raw.size_lo());
                raw.set_size(lo);
                modified = true;
            } else {
                not_fixed = true;
            }
        }
        if modified {
            self.write_inode(ino, &raw);
        }
        if !not_fixed {
            self.inode_bad.clear(u64::from(ino));
        }
        false
    }

    /// Frees an inode and its blocks (`deallocate_inode`).
    pub fn deallocate_inode(&mut self, ino: u32) {
        let mut raw = self.fs.read_inode(ino);
        let is_dir = raw.is_dir();
        if raw.is_reg() && raw.size() >= 0x8000_0000 {
            self.large_files = self.large_files.saturating_sub(1);
        }
        let inline = raw.has_flag(fl::INLINE_DATA);
        if !inline {
            self.release_inode_blocks(ino, &raw);
        } else if raw.file_acl(self.fs.hurd) != 0 {
            // Only the attribute block.
            let mut r2 = raw.clone();
            r2.set_i_block(&[]);
            r2.clear_flags(fl::INLINE_DATA);
            r2.set_mode(0);
            self.release_inode_blocks(ino, &r2);
        }
        raw.set_file_acl(0, self.fs.hurd);
        self.clear_inode(ino, &mut raw);
        self.free_inode(ino, is_dir);
    }

    /// A new block for a hole in a directory (`allocate_dir_block`).
    fn allocate_dir_block(&mut self, db: &DirBlock) -> Option<u64> {
        let p = PCtx {
            ino: db.ino,
            blkcount: Some(i64::from(db.lblk)),
            ..PCtx::default()
        };
        if !self.fix(Code::DirectoryHole, &p) {
            return None;
        }
        if !self.can_write() {
            return None;
        }
        let mut raw = self.fs.read_inode(db.ino);
        let m = super::map::mapping(&self.fs, &raw);
        let goal = m
            .runs
            .last()
            .map_or(self.fs.first_data_block, |r| r.pblk + r.len);
        // bigalloc: a block whose logical cluster is already mapped goes in
        // that physical cluster (the cluster allocation rule).
        let cb = self.fs.cluster_bits;
        let lblk = u64::from(db.lblk);
        let sibling = (cb > 0)
            .then(|| {
                let mask = (1u64 << cb) - 1;
                m.runs.iter().find_map(|r| {
                    let lo = r.lblk.max(lblk & !mask);
                    let hi = (r.lblk + r.len).min((lblk | mask) + 1);
                    (lo < hi && r.pblk != 0)
                        .then(|| ((r.pblk + (lo - r.lblk)) & !mask) | (lblk & mask))
                })
            })
            .flatten();
        let (blk, new_alloc) = match sibling {
            Some(b) if self.fs.valid_block(b) => {
                self.block_found.set(b);
                (b, 0)
            }
            _ => (self.new_block(goal)?, 1),
        };
        let csum = self.fs.has_metadata_csum();
        let data = if db.lblk == 0 {
            new_dir_block(
                self.fs.bs,
                csum,
                Some((db.ino, 2)),
                self.fs.has_incompat(Incompat::FILETYPE),
            )
        } else {
            new_dir_block(self.fs.bs, csum, None, true)
        };
        let extra = match self.set_bmap(db.ino, &mut raw, u64::from(db.lblk), blk) {
            Ok(e) => e,
            Err(e) => {
                self.fix(
                    Code::CantExpandLpf,
                    &PCtx {
                        str: e,
                        ..PCtx::default()
                    },
                );
                if new_alloc == 1 {
                    self.free_block(blk);
                }
                return None;
            }
        };
        self.add_iblocks(&mut raw, new_alloc + extra);
        let want = (u64::from(db.lblk) + 1) * self.fs.bs64;
        if raw.size() < want {
            raw.set_size(want);
        }
        self.write_inode(db.ino, &raw);
        self.write_dir_block(db.ino, blk, data);
        Some(blk)
    }
}

fn zero_entry(area: &mut [u8], off: usize, fake: bool) {
    if fake {
        // ".." of an inline directory lives in the first 4 bytes.
        area[..4].fill(0);
    } else {
        area[off..off + 4].fill(0);
    }
}

/// Places a checksum tail at the end of a leaf (`insert_dirent_tail`).
fn insert_tail(block: &mut [u8]) -> bool {
    let bs = block.len();
    let top = bs - 12;
    let mut off = 0usize;
    let mut last = None;
    let mut steps = 0;
    loop {
        steps += 1;
        if steps > bs {
            return false;
        }
        let rl = rec_len_from_disk(get_u16(block, off + 4).unwrap_or(0), bs);
        if rl == 0 || rl % 4 != 0 || off + rl > top {
            break;
        }
        last = Some(off);
        off += rl;
        if off == top {
            break;
        }
    }
    if off != top {
        // Shrink the record that crosses into the tail area.
        let Some(l) = last.or(Some(0)) else {
            return false;
        };
        let target = if off > top || last.is_none() { l } else { l };
        let nl = usize::from(block[target + 6]);
        let min = if get_u32(block, target).unwrap_or(0) == 0 {
            12
        } else {
            (8 + nl + 3) & !3
        };
        if target + min > top {
            return false;
        }
        let new_len = top - target;
        block[target + 4..target + 6].copy_from_slice(&rec_len_to_disk(new_len, bs).to_le_bytes());
    }
    init_tail(block);
    true
}

/// `salvage_directory`.
fn salvage(
    area: &mut [u8],
    prev: Option<usize>,
    offset: &mut usize,
    block_len: usize,
    inodes_count: u32,
    rl_bs: usize,
) {
    let off = *offset;
    let (rec_len, name_len) = if block_len - off < 8 {
        (block_len - off, 0usize)
    } else {
        (
            rec_len_from_disk(get_u16(area, off + 4).unwrap_or(0), rl_bs),
            usize::from(area[off + 6]),
        )
    };
    let left = block_len as i64 - off as i64 - rec_len as i64;
    if left >= 12 && rec_len == 8 {
        let l = left as usize;
        area.copy_within(off + 8..off + 8 + l, off);
        area[off + l..off + l + 8].fill(0);
        return;
    }
    let ino = get_u32(area, off).unwrap_or(0);
    if left < 0
        && (rec_len as i64 + left) > 8
        && (name_len as i64 + 8) <= (rec_len as i64 + left)
        && ino <= inodes_count
        && !area[off + 8..(off + 8 + name_len).min(area.len())].contains(&0)
    {
        let nl = (rec_len as i64 + left) as usize;
        area[off + 4..off + 6].copy_from_slice(&rec_len_to_disk(nl, rl_bs).to_le_bytes());
        return;
    }
    if let Some(pv) = prev {
        if rec_len != 0 && rec_len % 4 == 0 && off + rec_len <= block_len {
            let prl = rec_len_from_disk(get_u16(area, pv + 4).unwrap_or(0), rl_bs) + rec_len;
            area[pv + 4..pv + 6].copy_from_slice(&rec_len_to_disk(prl, rl_bs).to_le_bytes());
            *offset += rec_len;
            return;
        }
    }
    if let Some(pv) = prev {
        let prl = rec_len_from_disk(get_u16(area, pv + 4).unwrap_or(0), rl_bs) + block_len - off;
        area[pv + 4..pv + 6].copy_from_slice(&rec_len_to_disk(prl, rl_bs).to_le_bytes());
        *offset = block_len;
    } else {
        let rl = block_len - off;
        area[off..off + 4].fill(0);
        area[off + 4..off + 6].copy_from_slice(&rec_len_to_disk(rl, rl_bs).to_le_bytes());
        area[off + 6] = 0;
        area[off + 7] = 0;
    }
}

fn update_parents(st: &mut DxState, ty: u8) {
    for b in 0..st.blocks.len() {
        let d = st.blocks[b];
        if d.ty != ty {
            continue;
        }
        let parent = d.parent as usize;
        if parent >= st.blocks.len() {
            continue;
        }
        if d.flags & F_FIRST != 0 {
            st.blocks[parent].min_hash = d.min_hash;
            let prev = st.blocks[parent].previous as usize;
            if prev != 0 && prev < st.blocks.len() {
                st.blocks[prev].node_max_hash = d.min_hash;
            }
        }
        if d.flags & F_LAST != 0 {
            st.blocks[parent].max_hash = d.max_hash;
        }
    }
}

fn htree_depth(st: &DxState, mut b: usize) -> u32 {
    let mut depth = 0;
    while st.blocks.get(b).is_some_and(|d| d.ty != DX_ROOT) && depth < 32000 {
        b = st.blocks[b].parent as usize;
        depth += 1;
    }
    depth
}
