//! Before pass 1: the superblock and group descriptors (e2fsck's
//! `check_super_block`), the journal (`e2fsck_check_ext3_journal`), the
//! orphan list (`release_orphan_inodes`), the resize inode
//! (`check_resize_inode`); after pass 1, the relocation of bitmaps and
//! inode tables whose location was invalid (`handle_fs_bad_blocks`).
//!
//! As in e2fsck, a "no" to a question asked here does not by itself make
//! the verdict "errors left": the passes that follow decide.

use crate::format::features::{Compat, Incompat, RoCompat};
use crate::format::group_desc::{BG_BLOCK_UNINIT, BG_INODE_UNINIT};
use crate::format::inode::S_IFREG;
use crate::format::jbd2::{default_journal_blocks, JournalSuperblock};

use super::check::Checker;
use super::ino::{fl, InodeRead, InodeWrite};
use super::map::mapping;
use super::problem::{Code, PCtx};

/// What the journal check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalVerdict {
    Ok,
    /// Transactions wait in the journal.
    NeedsRecovery,
    /// Cannot go on.
    Fatal,
}

impl Checker {
    /// `check_super_block` (the parts that can be checked before pass 1).
    pub fn check_super(&mut self) {
        let ng = self.fs.groups_count();
        let ipg = self.fs.ipg;
        let want_inodes = u64::from(ng) * u64::from(ipg);
        if u64::from(self.fs.sb.f.inodes_count) != want_inodes && want_inodes <= u64::from(u32::MAX)
        {
            let p = PCtx {
                num: u64::from(self.fs.sb.f.inodes_count),
                num2: want_inodes,
                ..PCtx::default()
            };
            if self.fix(Code::InodeCountWrong, &p) {
                self.fs.sb.f.inodes_count = want_inodes as u32;
                self.fs.inodes_count = want_inodes as u32;
                self.fs.mark_sb_dirty();
            }
        }
        if self.fs.has_incompat(Incompat::META_BG)
            && self.fs.sb.f.first_meta_bg > self.fs.geo.gdt_blocks
        {
            let p = PCtx {
                num: u64::from(self.fs.sb.f.first_meta_bg),
                num2: u64::from(self.fs.geo.gdt_blocks),
                ..PCtx::default()
            };
            if self.fix(Code::FirstMetaBgTooBig, &p) {
                let mut f = self.fs.sb.features();
                f.incompat &= !Incompat::META_BG;
                self.fs.sb.set_features(f);
                self.fs.sb.f.first_meta_bg = 0;
                self.fs.refresh();
                self.fs.mark_sb_dirty();
                self.fs.mark_gd_dirty();
            }
        }
        if self.fs.hurd
            && self.fs.has_incompat(Incompat::FILETYPE)
            && self.fix(Code::HurdClearFiletype, &PCtx::default())
        {
            let mut f = self.fs.sb.features();
            f.incompat &= !Incompat::FILETYPE;
            self.fs.sb.set_features(f);
            self.fs.refresh();
            self.fs.mark_sb_dirty();
        }
        if self.fs.has_incompat(Incompat::META_BG)
            && self.fs.has_compat(Compat::RESIZE_INODE)
            && self.fix(Code::DisableResizeInode, &PCtx::default())
        {
            let mut f = self.fs.sb.features();
            f.compat &= !Compat::RESIZE_INODE;
            self.fs.sb.set_features(f);
            self.fs.sb.f.reserved_gdt_blocks = 0;
            self.fs.refresh();
            self.fs.mark_sb_dirty();
        }
        // Descriptors.
        let flex = self.fs.has_incompat(Incompat::FLEX_BG);
        let csum = self.fs.has_group_csum();
        let mut free_blocks = 0u64;
        let mut free_inodes = 0u64;
        let mut bad_csums: Vec<u32> = Vec::new();
        for g in 0..ng {
            let (first, last) = if flex {
                (self.fs.first_data_block, self.fs.blocks_count - 1)
            } else {
                (self.fs.group_first_block(g), self.fs.group_last_block(g))
            };
            let gd = self.fs.groups[g as usize].clone();
            let gi = g as usize;
            if gd.block_bitmap < first || gd.block_bitmap > last {
                let p = PCtx {
                    group: g,
                    blk: gd.block_bitmap,
                    ..PCtx::default()
                };
                if self.fix(Code::BbNotGroup, &p) {
                    self.fs.groups[gi].block_bitmap = 0;
                }
            }
            if self.fs.groups[gi].block_bitmap == 0 {
                self.invalid_bb[gi] = true;
                self.invalid_bitmaps += 1;
            }
            if gd.inode_bitmap < first || gd.inode_bitmap > last {
                let p = PCtx {
                    group: g,
                    blk: gd.inode_bitmap,
                    ..PCtx::default()
                };
                if self.fix(Code::IbNotGroup, &p) {
                    self.fs.groups[gi].inode_bitmap = 0;
                }
            }
            if self.fs.groups[gi].inode_bitmap == 0 {
                self.invalid_ib[gi] = true;
                self.invalid_bitmaps += 1;
            }
            let it_end = gd
                .inode_table
                .saturating_add(u64::from(self.fs.itable_blocks))
                .saturating_sub(1);
            if gd.inode_table < first || it_end > last {
                let p = PCtx {
                    group: g,
                    blk: gd.inode_table,
                    ..PCtx::default()
                };
                if self.fix(Code::ItableNotGroup, &p) {
                    self.fs.groups[gi].inode_table = 0;
                }
            }
            if self.fs.groups[gi].inode_table == 0 {
                self.invalid_it[gi] = true;
                self.invalid_bitmaps += 1;
            }
            free_blocks += u64::from(gd.free_blocks_count) << self.fs.cluster_bits;
            free_inodes += u64::from(gd.free_inodes_count);
            if !self.fs.gd_csum_ok.get(gi).copied().unwrap_or(true) {
                bad_csums.push(g);
            }
        }
        for g in bad_csums {
            let gi = g as usize;
            let stored = self.fs.groups[gi].checksum;
            let want = self.fs.gd_csum(g).unwrap_or(0);
            let p = PCtx {
                group: g,
                str: format!("0x{stored:04x}, should be 0x{want:04x}"),
                ..PCtx::default()
            };
            if self.fix(Code::GdtCsum, &p) {
                let d = &mut self.fs.groups[gi];
                d.flags &= !(BG_BLOCK_UNINIT | BG_INODE_UNINIT);
                d.itable_unused = 0;
                self.fs.gd_csum_ok[gi] = true;
                self.fs.mark_gd_dirty();
            }
        }
        for g in 0..ng {
            let gi = g as usize;
            let gd = self.fs.groups[gi].clone();
            if !csum
                && (gd.has_flag(BG_BLOCK_UNINIT)
                    || gd.has_flag(BG_INODE_UNINIT)
                    || gd.itable_unused != 0)
            {
                if self.fix(Code::GdtUninit, &PCtx::group(g)) {
                    let d = &mut self.fs.groups[gi];
                    d.flags &= !(BG_BLOCK_UNINIT | BG_INODE_UNINIT);
                    d.itable_unused = 0;
                    self.fs.mark_gd_dirty();
                }
            }
            if g == ng - 1
                && gd.has_flag(BG_BLOCK_UNINIT)
                && self.fix(Code::BbUninitLast, &PCtx::group(g))
            {
                self.fs.groups[gi].flags &= !BG_BLOCK_UNINIT;
                self.fs.mark_gd_dirty();
            }
            if csum && (gd.itable_unused > gd.free_inodes_count || gd.itable_unused > ipg) {
                let p = PCtx {
                    group: g,
                    num: u64::from(gd.itable_unused),
                    ..PCtx::default()
                };
                if self.fix(Code::GdtItableUnused, &p) {
                    self.fs.groups[gi].itable_unused = 0;
                    self.fs.mark_gd_dirty();
                }
            }
        }
        // Superblock totals follow the groups (silently, as e2fsck does).
        if self.can_write()
            && (free_blocks != self.fs.sb.free_blocks_count()
                || free_inodes != u64::from(self.fs.sb.f.free_inodes_count))
            && free_blocks <= self.fs.blocks_count
            && free_inodes <= u64::from(self.fs.inodes_count)
        {
            self.fs.sb.set_free_blocks_count(free_blocks);
            self.fs.sb.f.free_inodes_count = free_inodes as u32;
            self.fs.mark_sb_dirty();
        }
        // Quota inodes.
        let n = self.fs.inodes_count;
        let quota_names = ["user", "group", "project"];
        for (k, name) in quota_names.iter().enumerate() {
            let ino = match k {
                0 => self.fs.sb.f.usr_quota_inum,
                1 => self.fs.sb.f.grp_quota_inum,
                _ => self.fs.sb.f.prj_quota_inum,
            };
            if ino == 0 {
                continue;
            }
            let bad = ino == 1
                || ino == 2
                || ino == 5
                || ino == 6
                || ino == 7
                || ino == 8
                || ino == 9
                || ino == 10
                || ino > n;
            if bad {
                let p = PCtx {
                    ino,
                    str: (*name).into(),
                    ..PCtx::default()
                };
                if self.fix(Code::InvalidQuotaIno, &p) {
                    match k {
                        0 => self.fs.sb.f.usr_quota_inum = 0,
                        1 => self.fs.sb.f.grp_quota_inum = 0,
                        _ => self.fs.sb.f.prj_quota_inum = 0,
                    }
                    self.fs.mark_sb_dirty();
                }
            }
        }
        // Extra isize bounds.
        if self.fs.inode_size > 128 && self.fs.has_ro_compat(RoCompat::EXTRA_ISIZE) {
            let max = (self.fs.inode_size - 128) as u16;
            let min = self.fs.sb.f.min_extra_isize;
            if min > max || min % 4 != 0 {
                let p = PCtx {
                    num: u64::from(min),
                    ..PCtx::default()
                };
                if self.fix(Code::BadMinExtraIsize, &p) {
                    self.fs.sb.f.min_extra_isize = 32.min(max);
                    self.fs.mark_sb_dirty();
                }
            }
            let want = self.fs.sb.f.want_extra_isize;
            if want > max || want % 4 != 0 {
                let p = PCtx {
                    num: u64::from(want),
                    ..PCtx::default()
                };
                if self.fix(Code::BadWantExtraIsize, &p) {
                    self.fs.sb.f.want_extra_isize = 32.min(max);
                    self.fs.mark_sb_dirty();
                }
            }
        }
    }

    /// `check_resize_inode`.
    pub fn check_resize_inode(&mut self) {
        let resize = self.fs.has_compat(Compat::RESIZE_INODE);
        if !resize && self.fs.sb.f.reserved_gdt_blocks != 0 {
            let p = PCtx {
                num: u64::from(self.fs.sb.f.reserved_gdt_blocks),
                ..PCtx::default()
            };
            if self.fix(Code::NonzeroReservedGdt, &p) {
                self.fs.sb.f.reserved_gdt_blocks = 0;
                self.fs.refresh();
                self.fs.mark_sb_dirty();
            }
        }
        let Some(raw) = self.fs.inode_raw(7).map(<[u8]>::to_vec) else {
            return;
        };
        if !resize {
            if (0..15).any(|i| raw.block_word(i) != 0)
                && self.fix(Code::ClearResizeInode, &PCtx::ino(7))
            {
                let z = vec![0u8; self.fs.inode_size];
                self.write_inode(7, &z);
            }
            return;
        }
        if !self.resize_inode_valid(&raw) && self.fix(Code::ResizeInodeInvalid, &PCtx::ino(7)) {
            let z = vec![0u8; self.fs.inode_size];
            self.write_inode(7, &z);
            self.recreate_resize = true;
        }
    }

    fn resize_inode_valid(&self, raw: &[u8]) -> bool {
        let fs = &self.fs;
        let dind = u64::from(raw.block_word(13));
        if (0..15).any(|i| i != 13 && raw.block_word(i) != 0)
            || dind == 0
            || raw.links() == 0
            || raw.mode() & S_IFREG == 0
            || !fs.valid_block(dind)
        {
            return false;
        }
        let Some(db) = fs.block(dind) else {
            return false;
        };
        let per = fs.bs / 4;
        let mut gdt_off = fs.geo.gdt_blocks as usize;
        let mut pblk = fs.group_sb_block(0) + 1 + u64::from(fs.geo.gdt_blocks);
        let rsv = u64::from(fs.sb.f.reserved_gdt_blocks);
        for _ in 0..rsv {
            gdt_off %= per;
            let v = u64::from(u32::from_le_bytes([
                db[4 * gdt_off],
                db[4 * gdt_off + 1],
                db[4 * gdt_off + 2],
                db[4 * gdt_off + 3],
            ]));
            if v != pblk {
                return false;
            }
            let Some(ib) = fs.block(pblk) else {
                return false;
            };
            let mut ind_off = 0usize;
            for g in 1..fs.groups_count() {
                if !fs.geo.has_super(g) {
                    continue;
                }
                if ind_off >= per {
                    break;
                }
                let expect = pblk + u64::from(g) * u64::from(fs.bpg);
                let v = u64::from(u32::from_le_bytes([
                    ib[4 * ind_off],
                    ib[4 * ind_off + 1],
                    ib[4 * ind_off + 2],
                    ib[4 * ind_off + 3],
                ]));
                if v != expect {
                    return false;
                }
                ind_off += 1;
            }
            gdt_off += 1;
            pblk += 1;
        }
        true
    }

    /// Re-creates the resize inode after pass 1 (the reserved GDT blocks
    /// are in place; only the double indirect block is new).
    pub fn recreate_resize_inode(&mut self) {
        if !self.recreate_resize || !self.can_write() {
            return;
        }
        self.recreate_resize = false;
        let fs = &self.fs;
        let rsv = u64::from(fs.sb.f.reserved_gdt_blocks);
        let per = fs.bs / 4;
        let gdt = u64::from(fs.geo.gdt_blocks);
        let first = fs.group_sb_block(0);
        let bpg = u64::from(fs.bpg);
        let backups: Vec<u32> = (1..fs.groups_count())
            .filter(|&g| fs.geo.has_super(g))
            .collect();
        let bs = fs.bs;
        let Some(dind) = self.new_block(first + 1 + gdt + rsv) else {
            return;
        };
        let mut dbuf = vec![0u8; bs];
        let mut used = 1u64;
        for i in 0..rsv {
            let primary = first + 1 + gdt + i;
            let slot = ((gdt + i) % per as u64) as usize;
            dbuf[4 * slot..4 * slot + 4].copy_from_slice(&(primary as u32).to_le_bytes());
            let mut ib = vec![0u8; bs];
            for (k, &g) in backups.iter().take(per).enumerate() {
                let b = primary + u64::from(g) * bpg;
                ib[4 * k..4 * k + 4].copy_from_slice(&(b as u32).to_le_bytes());
                used += 1;
            }
            self.write_meta_block(primary, &ib);
            used += 1;
        }
        self.write_block(dind, &dbuf);
        let mut raw = vec![0u8; self.fs.inode_size];
        raw.set_mode(S_IFREG | 0o600);
        raw.set_links(1);
        let size = (per as u64 * per as u64 + per as u64 + 12) * self.fs.bs64;
        raw.set_size(size);
        raw.set_block_word(13, dind as u32);
        raw.set_blocks_raw(used * (self.fs.bs64 / 512));
        raw.set_u32_at(super::ino::I_MTIME, self.now);
        raw.set_u32_at(super::ino::I_CTIME, self.now);
        if self.fs.inode_size > 128 {
            raw.set_extra_isize(32.min((self.fs.inode_size - 128) as u16));
        }
        self.write_inode(7, &raw);
    }

    /// The journal (e2fsck's `e2fsck_check_ext3_journal`).
    pub fn check_journal(&mut self) -> JournalVerdict {
        let sbf = self.fs.sb.f.clone();
        let has_journal = self.fs.has_compat(Compat::HAS_JOURNAL);
        let recover = self.fs.has_incompat(Incompat::RECOVER);
        if !has_journal
            && !recover
            && sbf.journal_inum == 0
            && sbf.journal_dev == 0
            && sbf.journal_uuid.iter().all(|&b| b == 0)
        {
            return JournalVerdict::Ok;
        }
        if sbf.journal_inum == 0
            && (sbf.journal_dev != 0 || sbf.journal_uuid.iter().any(|&b| b != 0))
        {
            if has_journal || recover {
                self.fix(Code::JournalExternal, &PCtx::default());
                return JournalVerdict::Fatal;
            }
        }
        let jino = sbf.journal_inum;
        let bad_inode = if jino == 0 || jino > self.fs.inodes_count {
            true
        } else {
            let raw = self.fs.read_inode(jino);
            !self.journal_inode_ok(&raw)
        };
        if bad_inode {
            if has_journal || jino != 0 {
                if self.fix(Code::JournalBadInode, &PCtx::ino(jino)) {
                    if has_journal && jino != 0 {
                        self.rep.say("*** journal has been deleted ***\n\n");
                    }
                    let mut f = self.fs.sb.features();
                    f.compat &= !Compat::HAS_JOURNAL;
                    f.incompat &= !Incompat::RECOVER;
                    self.fs.sb.set_features(f);
                    self.fs.sb.f.journal_inum = 0;
                    self.fs.sb.f.jnl_blocks = [0; 17];
                    self.fs.refresh();
                    self.fs.mark_sb_dirty();
                    self.fs.write_backups = true;
                    self.recreate_journal = has_journal;
                    return JournalVerdict::Ok;
                }
                self.fix(
                    Code::JournalBadSuper,
                    &PCtx {
                        str: "invalid journal inode".into(),
                        ..PCtx::default()
                    },
                );
                return JournalVerdict::Fatal;
            } else if recover {
                if self.fix(Code::JournalRecoverSet, &PCtx::default()) {
                    self.clear_recover();
                    return JournalVerdict::Ok;
                }
                return JournalVerdict::Fatal;
            }
            return JournalVerdict::Ok;
        }
        let raw = self.fs.read_inode(jino);
        let m = mapping(&self.fs, &raw);
        let Some(jblk) = m.bmap(0) else {
            return JournalVerdict::Ok;
        };
        let Some(jb) = self.fs.block(jblk).map(<[u8]>::to_vec) else {
            return JournalVerdict::Fatal;
        };
        let jsb = JournalSuperblock::parse(&jb);
        let total = raw.size() / self.fs.bs64;
        let problem = match &jsb {
            Err(e) => Some(e.to_string()),
            Ok(j) => {
                if j.blocksize != self.fs.bs as u32 {
                    Some(format!(
                        "block size {} differs from the file system's",
                        j.blocksize
                    ))
                } else if u64::from(j.maxlen) > total {
                    Some(format!(
                        "s_maxlen {} beyond the journal file ({total} blocks)",
                        j.maxlen
                    ))
                } else if j.first == 0 || j.first >= j.maxlen {
                    Some(format!("s_first {}", j.first))
                } else if !j.unknown_incompat().is_empty() {
                    self.fix(Code::JournalUnsuppIncompat, &PCtx::default());
                    return JournalVerdict::Fatal;
                } else {
                    None
                }
            }
        };
        if let Some(why) = problem {
            if has_journal {
                let p = PCtx {
                    str: why,
                    ..PCtx::default()
                };
                if self.fix(Code::JournalBadSuper, &p) {
                    let n = u32::try_from(total.min(u64::from(u32::MAX))).unwrap_or(0);
                    let fresh =
                        JournalSuperblock::new_internal(self.fs.bs as u32, n, self.fs.sb.f.uuid, 0);
                    if let Ok(mut b) = fresh.to_block() {
                        b.resize(self.fs.bs, 0);
                        self.write_block(jblk, &b);
                    }
                    self.clear_recover();
                    return JournalVerdict::Ok;
                }
                return JournalVerdict::Fatal;
            }
            return JournalVerdict::Ok;
        }
        let Ok(j) = jsb else {
            return JournalVerdict::Ok;
        };
        if !has_journal {
            if self.fix(Code::JournalHasJournal, &PCtx::default()) {
                self.fs.sb.f.journal_inum = 0;
                self.fs.sb.f.journal_dev = 0;
                self.fs.sb.f.journal_uuid = [0; 16];
                self.clear_recover();
                self.fs.mark_sb_dirty();
                return JournalVerdict::Ok;
            } else if self.can_write() {
                let mut f = self.fs.sb.features();
                f.compat |= Compat::HAS_JOURNAL;
                self.fs.sb.set_features(f);
                self.fs.refresh();
                self.fs.mark_sb_dirty();
            }
        }
        if j.start != 0 {
            self.fix(Code::JournalNeedsRecovery, &PCtx::default());
            return JournalVerdict::NeedsRecovery;
        }
        if recover && self.can_write() {
            // Nothing to replay: just clear the flag.
            self.clear_recover();
        }
        if j.errno != 0 && self.can_write() {
            let mut b = jb.clone();
            b[0x20..0x24].copy_from_slice(&[0; 4]);
            if j.has_csum_v2or3() {
                let _ = crate::format::jbd2::set_superblock_checksum(&mut b);
            }
            self.write_block(jblk, &b);
        }
        JournalVerdict::Ok
    }

    fn journal_inode_ok(&self, raw: &[u8]) -> bool {
        if raw.links() == 0 || !raw.is_reg() {
            return false;
        }
        let bs = self.fs.bs64;
        if raw.size() / bs < 1024 {
            return false;
        }
        // Every pointer must be valid, and the file must be mapped to its end.
        if raw.has_flag(fl::EXTENTS) {
            if !super::pass1_blocks::extent_header_ok(raw.i_block()) {
                return false;
            }
        } else {
            for i in 0..15 {
                let b = u64::from(raw.block_word(i));
                if b != 0 && !self.fs.valid_block(b) {
                    return false;
                }
            }
        }
        // Like e2fsck's journal load, the walk stops at the first hole or
        // invalid block: the blocks before it must cover the whole size.
        let m = mapping(&self.fs, raw);
        let mut runs: Vec<&super::map::Run> = m.runs.iter().collect();
        runs.sort_by_key(|r| r.lblk);
        let mut next = 0u64;
        for r in runs {
            if r.lblk != next
                || r.pblk == 0
                || !self.fs.valid_block(r.pblk)
                || !self.fs.valid_block(r.pblk + r.len - 1)
            {
                break;
            }
            next = r.lblk + r.len;
        }
        next * bs >= raw.size()
    }

    fn clear_recover(&mut self) {
        if self.fs.has_incompat(Incompat::RECOVER) && self.can_write() {
            let mut f = self.fs.sb.features();
            f.incompat &= !Incompat::RECOVER;
            self.fs.sb.set_features(f);
            self.fs.refresh();
            self.fs.mark_sb_dirty();
        }
    }

    /// Re-creates a journal that was cleared as bad (after pass 5).
    pub fn make_journal(&mut self) {
        if !self.recreate_journal || !self.can_write() {
            return;
        }
        self.recreate_journal = false;
        if !self.fix(Code::RecreateJournal, &PCtx::default()) {
            return;
        }
        let Some(n) = default_journal_blocks(self.fs.blocks_count) else {
            return;
        };
        let extents = self.fs.has_incompat(Incompat::EXTENTS);
        let goal = self.fs.first_data_block + (self.fs.blocks_count - self.fs.first_data_block) / 2;
        let Some(start) = self.new_blocks(goal, u64::from(n)) else {
            self.rep
                .say("fsck.fext: not enough contiguous space for a journal\n");
            return;
        };
        self.rep.say(&format!("Creating journal ({n} blocks):  "));
        let zero = vec![0u8; self.fs.bs];
        for b in start..start + u64::from(n) {
            self.write_block(b, &zero);
        }
        let jsb = JournalSuperblock::new_internal(self.fs.bs as u32, n, self.fs.sb.f.uuid, 0);
        if let Ok(mut b) = jsb.to_block() {
            b.resize(self.fs.bs, 0);
            self.write_block(start, &b);
        }
        let mut raw = vec![0u8; self.fs.inode_size];
        raw.set_mode(S_IFREG | 0o600);
        raw.set_links(1);
        raw.set_size(u64::from(n) * self.fs.bs64);
        raw.set_u32_at(super::ino::I_MTIME, self.now);
        raw.set_u32_at(super::ino::I_CTIME, self.now);
        raw.set_u32_at(super::ino::I_ATIME, self.now);
        if self.fs.inode_size > 128 {
            raw.set_extra_isize(32.min((self.fs.inode_size - 128) as u16));
        }
        let mut meta = 0u64;
        if extents {
            let mut root = vec![0u8; 60];
            root[0..2].copy_from_slice(&0xF30Au16.to_le_bytes());
            root[4..6].copy_from_slice(&4u16.to_le_bytes());
            let mut left = u64::from(n);
            let mut l = 0u64;
            let mut i = 0;
            while left > 0 && i < 4 {
                let len = left.min(32768);
                let o = 12 + 12 * i;
                root[o..o + 4].copy_from_slice(&(l as u32).to_le_bytes());
                root[o + 4..o + 6].copy_from_slice(&(len as u16).to_le_bytes());
                let pb = start + l;
                root[o + 6..o + 8].copy_from_slice(&((pb >> 32) as u16).to_le_bytes());
                root[o + 8..o + 12].copy_from_slice(&((pb & 0xffff_ffff) as u32).to_le_bytes());
                left -= len;
                l += len;
                i += 1;
            }
            root[2..4].copy_from_slice(&(i as u16).to_le_bytes());
            raw.set_flags(fl::EXTENTS);
            raw.set_i_block(&root);
        } else {
            for l in 0..u64::from(n) {
                match self.set_bmap(8, &mut raw, l, start + l) {
                    Ok(e) => meta += e,
                    Err(_) => return,
                }
            }
        }
        raw.set_blocks_raw((u64::from(n) + meta) * (self.fs.bs64 / 512));
        self.write_inode(8, &raw);
        self.inode_used.set(8);
        let mut f = self.fs.sb.features();
        f.compat |= Compat::HAS_JOURNAL;
        self.fs.sb.set_features(f);
        self.fs.sb.f.journal_inum = 8;
        self.fs.sb.f.jnl_backup_type = 1;
        for i in 0..15 {
            self.fs.sb.f.jnl_blocks[i] = raw.block_word(i);
        }
        self.fs.sb.f.jnl_blocks[15] = (raw.size() >> 32) as u32;
        self.fs.sb.f.jnl_blocks[16] = (raw.size() & 0xffff_ffff) as u32;
        self.fs.refresh();
        self.fs.mark_sb_dirty();
        self.fs.write_backups = true;
        self.rep
            .say(" Done.\n\n*** journal has been regenerated ***\n");
    }

    /// `release_orphan_inodes` (read-write runs only): frees the inodes of
    /// the orphan list whose link count is 0.
    pub fn release_orphans(&mut self) {
        let head = self.fs.sb.f.last_orphan;
        if head == 0 || !self.can_write() {
            return;
        }
        self.fs.sb.f.last_orphan = 0;
        self.fs.mark_sb_dirty();
        if self.fs.sb.f.state & 2 != 0 {
            return;
        }
        if head < self.fs.first_ino || head > self.fs.inodes_count {
            self.fix(Code::OrphanIllegalHead, &PCtx::ino(head));
            return;
        }
        let mut ino = head;
        let mut seen = std::collections::HashSet::new();
        while ino != 0 && seen.insert(ino) {
            let mut raw = self.fs.read_inode(ino);
            let links = raw.links();
            let p = PCtx {
                ino,
                str: if links != 0 {
                    "Truncating".into()
                } else {
                    "Clearing".into()
                },
                num: u64::from(raw.uid()),
                num2: u64::from(raw.gid()),
                blk: raw.size(),
                ..PCtx::default()
            };
            self.fix(Code::OrphanClearInode, &p);
            let next = raw.dtime();
            if next != 0 && (next < self.fs.first_ino || next > self.fs.inodes_count) {
                self.fix(Code::OrphanIllegalInode, &PCtx::ino(next));
                return;
            }
            if links == 0 {
                // Blocks are released by pass 5 (they are no longer claimed).
                raw.set_dtime(self.now);
                raw.set_mode(raw.mode());
            } else {
                raw.set_dtime(0);
            }
            self.write_inode(ino, &raw);
            ino = next;
        }
    }

    /// `handle_fs_bad_blocks`: new places for bitmaps and inode tables
    /// whose location was invalid.
    pub fn handle_fs_bad_blocks(&mut self) {
        let ng = self.fs.groups_count();
        for g in 0..ng {
            let gi = g as usize;
            let first = self.fs.group_first_block(g);
            if self.invalid_bb[gi] {
                self.relocate(g, 0, first);
            }
            if self.invalid_ib[gi] {
                self.relocate(g, 1, first);
            }
            if self.invalid_it[gi] {
                self.relocate(g, 2, first);
                self.restart = true;
            }
        }
        self.invalid_bitmaps = 0;
    }

    fn relocate(&mut self, g: u32, what: u8, goal: u64) {
        let gi = g as usize;
        let (name, n) = match what {
            0 => ("block bitmap", 1u64),
            1 => ("inode bitmap", 1),
            _ => ("inode table", u64::from(self.fs.itable_blocks)),
        };
        if !self.can_write() {
            return;
        }
        let Some(b) = self.new_blocks(goal, n) else {
            self.rep.say(&format!(
                "Cannot allocate {n} block(s) in group {g} for the {name}\n"
            ));
            return;
        };
        for x in b..b + n {
            self.block_meta.set(x);
        }
        self.rep
            .say(&format!("Relocating group {g}'s {name} to {b}...\n"));
        let zero = vec![0u8; self.fs.bs];
        for x in b..b + n {
            self.write_meta_block(x, &zero);
        }
        let d = &mut self.fs.groups[gi];
        match what {
            0 => {
                d.block_bitmap = b;
                self.invalid_bb[gi] = false;
            }
            1 => {
                d.inode_bitmap = b;
                self.invalid_ib[gi] = false;
            }
            _ => {
                d.inode_table = b;
                self.invalid_it[gi] = false;
            }
        }
        self.fs.mark_gd_dirty();
    }
}
