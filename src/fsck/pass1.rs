//! Pass 1: every inode of every group, after e2fsck's `e2fsck_pass1`.
//!
//! For each inode in use: mode and flags against the features, special
//! inodes (bad blocks, root, journal, quota, reserved), dtime, the
//! in-inode attributes, the mapping (extent tree or block map: see
//! `pass1_blocks`), inline data, symlinks, devices, htree roots, i_size and
//! i_blocks. It builds the maps the later passes use: inodes in use,
//! directories, regular files, inodes with bad fields, blocks in use
//! (metadata first), blocks claimed twice, link counts, directory blocks,
//! extended attribute block reference counts.
//!
//! Work is split in two: [`scan_inode`] examines one inode on its own
//! (read-only; it can run in worker threads, recording its questions), and
//! [`Checker::apply`] merges the result in inode order (blocks claimed twice,
//! attribute blocks shared by several inodes, the writes).

use std::collections::HashSet;
use std::sync::Mutex;

use crate::format::features::{Compat, Incompat, RoCompat};
use crate::format::group_desc::BG_INODE_UNINIT;
use crate::format::inode::{S_IFDIR, S_IFREG};

use super::ask::{Ask, Recorder};
use super::bitset::BitSet;
use super::check::{Checker, DirBlock, DirInfo, DxDir};
use super::fs::Fs;
use super::ino::{fl, InodeRead, InodeWrite};
use super::pass1_blocks::{check_blockmap, check_extents, extent_header_ok, BlockAcc, RESIZE_INO};
use super::problem::{Code, Mode, PCtx};
use super::xattr_check::{
    check_ea_block, check_inode_extra_space, inline_data_size, EaBlock, IbodyResult,
};

pub const BAD_INO: u32 = 1;
pub const ROOT_INO: u32 = 2;
pub const USR_QUOTA_INO: u32 = 3;
pub const GRP_QUOTA_INO: u32 = 4;
pub const BOOT_LOADER_INO: u32 = 5;
pub const JOURNAL_INO: u32 = 8;

/// Read-only context of [`scan_inode`].
pub struct Env<'a> {
    pub fs: &'a Fs,
    pub block_meta: &'a BitSet,
    pub now: u32,
    pub mode: Mode,
    pub writable: bool,
    pub low_dtime_check: bool,
    pub extent_fs: bool,
    pub inline_fs: bool,
    pub casefold_fs: bool,
    pub imagic_fs: bool,
    pub xattr_fs: bool,
    pub dir_index_fs: bool,
    pub largedir: bool,
    pub huge_file: bool,
    pub is64: bool,
    pub ea_inode_fs: bool,
    pub quota_fs: bool,
}

impl<'a> Env<'a> {
    pub fn new(fs: &'a Fs, block_meta: &'a BitSet, now: u32, mode: Mode) -> Env<'a> {
        let sb = &fs.sb.f;
        let low_dtime_check = !((sb.wtime != 0 && sb.wtime < sb.inodes_count)
            || (sb.mtime != 0 && sb.mtime < sb.inodes_count)
            || (sb.mkfs_time != 0 && sb.mkfs_time < sb.inodes_count));
        Env {
            fs,
            block_meta,
            now,
            mode,
            writable: fs.disk.is_writable(),
            low_dtime_check,
            extent_fs: fs.has_incompat(Incompat::EXTENTS),
            inline_fs: fs.has_incompat(Incompat::INLINE_DATA),
            casefold_fs: fs.has_incompat(Incompat::CASEFOLD),
            imagic_fs: fs.has_compat(Compat::IMAGIC_INODES),
            xattr_fs: fs.has_compat(Compat::EXT_ATTR),
            dir_index_fs: fs.has_compat(Compat::DIR_INDEX),
            largedir: fs.has_incompat(Incompat::LARGEDIR),
            huge_file: fs.has_ro_compat(RoCompat::HUGE_FILE),
            is64: fs.has_incompat(Incompat::BIT64),
            ea_inode_fs: fs.has_incompat(Incompat::EA_INODE),
            quota_fs: fs.has_ro_compat(RoCompat::QUOTA),
        }
    }

    fn quota_reserved(&self, ino: u32) -> bool {
        ino == USR_QUOTA_INO || ino == GRP_QUOTA_INO
    }

    fn quota_super(&self, ino: u32) -> bool {
        let f = &self.fs.sb.f;
        ino != 0 && (f.usr_quota_inum == ino || f.grp_quota_inum == ino || f.prj_quota_inum == ino)
    }
}

/// Policy id shared by all encryption contexts of unknown versions.
pub const UNRECOGNIZED_POLICY: u32 = u32::MAX;

/// What the encryption attribute of an inode holds.
enum EncPolicy {
    Missing,
    Corrupt,
    Unrecognized,
    /// The policy bytes (without the nonce).
    Known(Vec<u8>),
}

/// The kind of an inode in use (for the statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    Other,
    Dir,
    Reg,
    Chr,
    Blk,
    Fifo,
    Sock,
    Symlink,
    FastSymlink,
}

/// What [`scan_inode`] found about one inode.
#[derive(Debug, Default)]
pub struct Out {
    pub ino: u32,
    /// The inode as it should be (possibly fixed).
    pub raw: Vec<u8>,
    /// `raw` differs from the image: write it.
    pub dirty: bool,
    /// The stored checksum was wrong (and nothing rewrote the inode yet).
    pub failed_csum: bool,
    pub used: bool,
    pub dir: bool,
    pub reg: bool,
    pub bad: bool,
    pub imagic: bool,
    pub encrypted: bool,
    pub casefold: bool,
    pub links: u16,
    pub kind: Kind,
    pub acc: BlockAcc,
    /// Directory with inline data.
    pub inline_dir: bool,
    /// Htree directory with this many blocks.
    pub dx_blocks: Option<u32>,
    pub ea_inode_refs: Vec<u32>,
    /// Run the attribute-block and i_blocks checks in the merge.
    pub check_blocks: bool,
    /// Size checks done; i_blocks check pending (needs the EA block verdict).
    pub is_symlink: bool,
    pub set_features: Vec<Incompat>,
    pub large_file: bool,
    pub zero_length_dir_pending: bool,
    /// Blocks of EA inodes charged by the in-inode attributes.
    pub ibody_quota_blocks: u64,
    /// EA inodes to flag EA_INODE.
    pub set_ea_flag: Vec<u32>,
}

/// Examines inode `ino` (raw bytes `orig`). `None`: unused and clean.
pub fn scan_inode(env: &Env, ask: &mut dyn Ask, ino: u32, orig: &[u8]) -> Option<Out> {
    let fs = env.fs;
    let isz = fs.inode_size;
    let first_ino = fs.first_ino;
    let links = orig.links();
    let all_zero = || orig.iter().all(|&b| b == 0);
    let csum_ok = |r: &[u8]| fs.inode_csum_ok(ino, r) || r.iter().all(|&b| b == 0);
    // Fast path: an unused, untouched inode.
    if links == 0
        && ino >= first_ino
        && orig.dtime() == 0
        && orig.mode() == 0
        && (all_zero() || csum_ok(orig))
    {
        return None;
    }
    let mut out = Out {
        ino,
        raw: orig.to_vec(),
        failed_csum: !csum_ok(orig),
        ..Out::default()
    };
    let raw = &mut out.raw;
    let p = PCtx::ino(ino);
    if raw.dtime() != 0
        && env.low_dtime_check
        && raw.dtime() < fs.inodes_count
        && ask.fix(Code::LowDtime, &p)
    {
        let v = if raw.links() != 0 { 0 } else { env.now };
        raw.set_dtime(v);
        out.dirty = true;
        out.failed_csum = false;
    }
    out.links = raw.links();
    if raw.links() == 0 && ino >= first_ino && !env.quota_reserved(ino) {
        if raw.dtime() == 0 && raw.mode() != 0 && ask.fix(Code::ZeroDtime, &p) {
            raw.set_dtime(env.now);
            out.dirty = true;
            out.failed_csum = false;
        }
        return Some(out);
    }
    // Casefold flag.
    if raw.has_flag(fl::CASEFOLD)
        && ((!raw.is_dir() && ask.fix(Code::CasefoldNondir, &p))
            || (!env.casefold_fs && {
                let pp = PCtx {
                    ino,
                    path: format!("<{ino}>"),
                    ..PCtx::default()
                };
                ask.fix(Code::CasefoldFeature, &pp)
            }))
    {
        raw.clear_flags(fl::CASEFOLD);
        out.dirty = true;
    }
    // Inline data and extents flags together.
    if raw.has_flag(fl::INLINE_DATA)
        && raw.has_flag(fl::EXTENTS)
        && fix_inline_data_extents(env, ask, ino, raw, &mut out.dirty)
    {
        clear_in_out(&mut out, env, ino);
        return Some(out);
    }
    let raw = &mut out.raw;
    // Inline data flag without the feature.
    if raw.has_flag(fl::INLINE_DATA) && !env.inline_fs && ino >= first_ino {
        let has_ea = inline_data_size(raw, isz).is_some();
        if has_ea && ask.fix(Code::InlineDataFeature, &p) {
            out.set_features.push(Incompat::INLINE_DATA);
        } else if ask.fix(Code::InlineDataSet, &p) {
            clear_in_out(&mut out, env, ino);
            return Some(out);
        }
    }
    let raw = &mut out.raw;
    let inline_fs = env.inline_fs || out.set_features.contains(&Incompat::INLINE_DATA);
    if raw.has_flag(fl::INLINE_DATA)
        && inline_fs
        && ino >= first_ino
        && inline_data_size(raw, isz).is_none()
        && ask.fix(Code::InlineDataNoAttr, &p)
    {
        raw.set_size(0);
        raw.clear_flags(fl::INLINE_DATA);
        raw.set_i_block(&[]);
        out.dirty = true;
        out.failed_csum = false;
    }
    // Extents flag without the feature, or the feature without the flag.
    let special_ok =
        |r: &[u8]| r.links() != 0 || ino == BAD_INO || ino == ROOT_INO || ino == JOURNAL_INO;
    let mut extent_fs = env.extent_fs;
    if raw.has_flag(fl::EXTENTS) && !extent_fs && special_ok(raw) {
        if extent_header_ok(raw.i_block()) && ask.fix(Code::ExtentFeature, &p) {
            out.set_features.push(Incompat::EXTENTS);
            extent_fs = true;
        } else if ask.fix(Code::ExtentsSet, &p) {
            clear_in_out(&mut out, env, ino);
            if ino == BAD_INO {
                out.used = true;
            }
            return Some(out);
        }
    }
    let raw = &mut out.raw;
    if extent_fs
        && !raw.has_flag(fl::EXTENTS)
        && special_ok(raw)
        && (raw.is_reg() || raw.is_dir())
        && extent_header_ok(raw.i_block())
        && ask.fix(Code::UnsetExtentFl, &p)
    {
        let f = raw.flags() | fl::EXTENTS;
        raw.set_flags(f);
        out.dirty = true;
        out.failed_csum = false;
    }
    // Special inodes.
    if ino == BAD_INO {
        let r = &out.raw;
        if (out.failed_csum
            || r.mode() != 0
            || r.uid() != 0
            || r.gid() != 0
            || r.links() != 0
            || r.has_flag(fl::INLINE_DATA)
            || r.file_acl(fs.hurd) != 0)
            && ask.fix(Code::InvalidBadInode, &p)
        {
            out.raw[..128].iter_mut().for_each(|b| *b = 0);
            out.dirty = true;
            out.failed_csum = false;
        }
        out.used = true;
        bad_block_inode(env, ask, &mut out);
        return Some(out);
    } else if ino == ROOT_INO {
        if !out.raw.is_dir() && ask.fix(Code::RootNotDir, &p) {
            clear_in_out(&mut out, env, ino);
            return Some(out);
        }
        if out.raw.dtime() != 0 && out.raw.links() != 0 && ask.fix(Code::RootDtime, &p) {
            out.raw.set_dtime(0);
            out.dirty = true;
            out.failed_csum = false;
        }
    } else if ino == JOURNAL_INO {
        let role = SpecialFile {
            in_use: fs.sb.f.journal_inum == JOURNAL_INO,
            bad_mode: Code::JournalBadMode,
            not_clear: Code::JournalInodeNotClear,
        };
        if check_special_file(env, ask, &mut out, &p, role) {
            return Some(out);
        }
    } else if env.quota_reserved(ino) {
        let role = SpecialFile {
            in_use: env.quota_fs && env.quota_super(ino),
            bad_mode: Code::QuotaBadMode,
            not_clear: Code::QuotaInodeNotClear,
        };
        if check_special_file(env, ask, &mut out, &p, role) {
            return Some(out);
        }
    } else if ino == fs.sb.f.orphan_file_inum {
        let role = SpecialFile {
            in_use: fs.has_compat(Compat::ORPHAN_FILE),
            bad_mode: Code::OrphanFileBadMode,
            not_clear: Code::OrphanFileNotClear,
        };
        if check_special_file(env, ask, &mut out, &p, role) {
            return Some(out);
        }
    } else if ino < first_ino {
        out.used = true;
        let r = &out.raw;
        let bad_mode = if ino == BOOT_LOADER_INO {
            r.is_dir()
        } else if ino == RESIZE_INO {
            r.mode() != 0 && !r.is_reg()
        } else {
            r.mode() != 0
        };
        if bad_mode {
            let pm = PCtx {
                ino,
                str: reserved_name(ino).into(),
                ..PCtx::default()
            };
            if ask.fix(Code::ReservedBadMode, &pm) {
                out.raw.set_mode(0);
                out.dirty = true;
                out.failed_csum = false;
            }
        }
        check_blocks(env, ask, &mut out);
        return Some(out);
    }
    if out.raw.links() == 0 {
        return Some(out);
    }
    if out.raw.dtime() != 0 && ask.fix(Code::SetDtime, &p) {
        out.raw.set_dtime(0);
        out.dirty = true;
        out.failed_csum = false;
    }
    out.used = true;
    let (frag, fsize) = if fs.hurd {
        (out.raw[0x74], out.raw[0x75])
    } else {
        (0, 0)
    };
    if out.raw.faddr() != 0
        || frag != 0
        || fsize != 0
        || (!env.largedir && out.raw.is_dir() && out.raw.size_high() != 0)
    {
        out.bad = true;
    }
    if !fs.hurd && !env.is64 && out.raw.file_acl_hi() != 0 {
        out.bad = true;
    }
    if !fs.hurd && !env.huge_file && out.raw.blocks_hi() != 0 {
        out.bad = true;
    }
    if out.raw.has_flag(fl::IMAGIC) {
        if env.imagic_fs {
            out.imagic = true;
        } else if ask.fix(Code::SetImagic, &p) {
            out.raw.clear_flags(fl::IMAGIC);
            out.dirty = true;
            out.failed_csum = false;
        }
    }
    let mut ib = IbodyResult::default();
    if check_inode_extra_space(
        fs,
        ask,
        ino,
        &mut out.raw,
        isz,
        fs.sb.f.want_extra_isize,
        &mut ib,
    ) {
        out.dirty = true;
        out.failed_csum = false;
    }
    out.ea_inode_refs = ib.ea_inode_refs;
    out.ibody_quota_blocks = ib.quota_blocks;
    out.set_ea_flag = ib.set_ea_flag;
    check_is_really_dir(env, ask, &mut out);
    if extent_fs
        && out.raw.has_flag(fl::EXTENTS)
        && out.raw.is_symlink()
        && !has_valid_blocks(fs, &out.raw)
        && ask.fix(Code::FastSymlinkExtentFl, &p)
    {
        out.raw.clear_flags(fl::EXTENTS);
        out.dirty = true;
        out.failed_csum = false;
    }
    let r = &out.raw;
    if r.is_dir() {
        out.dir = true;
        out.kind = Kind::Dir;
        out.encrypted = r.has_flag(fl::ENCRYPT);
        out.casefold = r.has_flag(fl::CASEFOLD);
    } else if r.is_reg() {
        out.reg = true;
        out.kind = Kind::Reg;
    } else if (r.is_chr() || r.is_blk() || r.is_fifo() || r.is_sock()) && device_ok(r) {
        out.kind = if r.is_chr() {
            Kind::Chr
        } else if r.is_blk() {
            Kind::Blk
        } else if r.is_fifo() {
            Kind::Fifo
        } else {
            Kind::Sock
        };
        check_special(ask, &mut out);
    } else if r.is_symlink() && check_symlink(env, ino, r) {
        out.kind = Kind::Symlink;
        out.is_symlink = true;
        check_immutable(ask, &mut out);
        if out.raw.has_flag(fl::INLINE_DATA) {
            return Some(out);
        }
        if is_fast_symlink(&out.raw) {
            out.kind = Kind::FastSymlink;
            check_blocks(env, ask, &mut out);
            return Some(out);
        }
    } else {
        out.bad = true;
    }
    check_blocks(env, ask, &mut out);
    Some(out)
}

/// A reserved inode that holds a regular file while its feature is on
/// (journal, quota, orphan file) and must be all zeros while it is off.
struct SpecialFile {
    in_use: bool,
    bad_mode: Code,
    not_clear: Code,
}

/// Checks a [`SpecialFile`] inode; true when the inode is fully checked
/// (in use: mode and blocks) and the caller is done with it.
fn check_special_file(
    env: &Env,
    ask: &mut dyn Ask,
    out: &mut Out,
    p: &PCtx,
    role: SpecialFile,
) -> bool {
    out.used = true;
    if role.in_use {
        if !out.raw.is_reg() && ask.fix(role.bad_mode, p) {
            out.raw.set_mode(S_IFREG);
            out.dirty = true;
            out.failed_csum = false;
        }
        check_blocks(env, ask, out);
        return true;
    }
    let r = &out.raw;
    if (r.links() != 0 || r.blocks_lo() != 0 || r.block_word(0) != 0) && ask.fix(role.not_clear, p)
    {
        out.raw.iter_mut().for_each(|b| *b = 0);
        out.links = 0;
        out.dirty = true;
        out.failed_csum = false;
    }
    false
}

fn reserved_name(ino: u32) -> &'static str {
    match ino {
        1 => "<The bad blocks inode>",
        5 => "<The boot loader inode>",
        6 => "<The undelete directory inode>",
        7 => "<The group descriptor inode>",
        8 => "<The journal inode>",
        9 => "<Reserved inode 9>",
        10 => "<Reserved inode 10>",
        _ => "<reserved inode>",
    }
}

/// `e2fsck_clear_inode` on the copy: links 0, dtime now, flags 0.
fn clear_in_out(out: &mut Out, env: &Env, ino: u32) {
    out.raw.set_flags(0);
    out.raw.set_links(0);
    out.raw.set_dtime(env.now);
    if ino < env.fs.first_ino {
        out.raw.set_i_block(&[]);
    }
    if ino == BAD_INO {
        out.raw[..128].iter_mut().for_each(|b| *b = 0);
    }
    out.links = 0;
    out.used = false;
    out.dir = false;
    out.reg = false;
    out.bad = false;
    out.dirty = true;
    out.failed_csum = false;
    out.acc = BlockAcc::new();
    out.check_blocks = false;
}

/// `fix_inline_data_extents_file`; returns true when the inode must be cleared.
fn fix_inline_data_extents(
    env: &Env,
    ask: &mut dyn Ask,
    ino: u32,
    raw: &mut Vec<u8>,
    dirty: &mut bool,
) -> bool {
    let p = PCtx::ino(ino);
    if !env.extent_fs && !env.inline_fs {
        return false;
    }
    if raw.is_chr() || raw.is_blk() || raw.is_fifo() || raw.is_sock() {
        if ask.fix(Code::SpecialExtentsIdata, &p) {
            raw.clear_flags(fl::EXTENTS | fl::INLINE_DATA);
            *dirty = true;
        }
        return false;
    }
    if extent_header_ok(raw.i_block()) && ask.fix(Code::ClearInlineDataForExtent, &p) {
        raw.clear_flags(fl::INLINE_DATA);
        *dirty = true;
        return false;
    }
    let isz = env.fs.inode_size;
    let max_inline_ea = if isz > 128 {
        isz.saturating_sub(128 + usize::from(raw.extra_isize(isz)))
    } else {
        0
    };
    if raw.size() < (60 + max_inline_ea) as u64 && ask.fix(Code::ClearExtentForInlineData, &p) {
        raw.clear_flags(fl::EXTENTS);
        *dirty = true;
        return false;
    }
    let could_be_map = (0..15).all(|i| u64::from(raw.block_word(i)) < env.fs.blocks_count);
    if could_be_map && ask.fix(Code::ClearExtentInlineDataFlags, &p) {
        raw.clear_flags(fl::EXTENTS | fl::INLINE_DATA);
        *dirty = true;
        return false;
    }
    ask.fix(Code::ClearExtentInlineDataInode, &p)
}

/// `e2fsck_pass1_check_device_inode`.
pub fn device_ok(r: &[u8]) -> bool {
    if r.has_flag(fl::INDEX | fl::EXTENTS) {
        return false;
    }
    if r.has_flag(fl::IMMUTABLE | fl::APPEND) && (4..15).any(|i| r.block_word(i) != 0) {
        return false;
    }
    true
}

fn check_immutable(ask: &mut dyn Ask, out: &mut Out) {
    if out.raw.has_flag(fl::IMMUTABLE | fl::APPEND)
        && ask.fix(Code::SetImmutable, &PCtx::ino(out.ino))
    {
        out.raw.clear_flags(fl::IMMUTABLE | fl::APPEND);
        out.dirty = true;
        out.failed_csum = false;
    }
}

/// Devices, FIFOs and sockets: no extents/inline flags, no immutable, size 0.
fn check_special(ask: &mut dyn Ask, out: &mut Out) {
    let p = PCtx::ino(out.ino);
    if out.raw.has_flag(fl::EXTENTS | fl::INLINE_DATA) && ask.fix(Code::SpecialExtentsIdata, &p) {
        out.raw.clear_flags(fl::EXTENTS | fl::INLINE_DATA);
        out.dirty = true;
        out.failed_csum = false;
    }
    check_immutable(ask, out);
    if out.raw.size() != 0 && ask.fix(Code::SetNonzsize, &p) {
        out.raw.set_size(0);
        out.dirty = true;
        out.failed_csum = false;
    }
}

/// `ext2fs_is_fast_symlink`.
pub fn is_fast_symlink(r: &[u8]) -> bool {
    r.is_symlink() && r.size() != 0 && r.size() < 60
}

/// `ext2fs_inode_has_valid_blocks2`.
pub fn has_valid_blocks(fs: &Fs, r: &[u8]) -> bool {
    if !r.is_dir() && !r.is_reg() && !r.is_symlink() {
        return false;
    }
    if r.is_symlink() {
        if r.file_acl(fs.hurd) == 0 {
            if r.blocks_lo() == 0 {
                return false;
            }
        } else {
            if r.size() >= 60 {
                return true;
            }
            if r.size() > 4 && r.block_word(1) == 0 {
                return true;
            }
            return false;
        }
    }
    !r.has_flag(fl::INLINE_DATA)
}

/// `e2fsck_pass1_check_symlink`.
pub fn check_symlink(env: &Env, ino: u32, r: &[u8]) -> bool {
    let fs = env.fs;
    if r.size_high() != 0 || r.size_lo() == 0 || r.has_flag(fl::INDEX) {
        return false;
    }
    let size = u64::from(r.size_lo());
    if r.has_flag(fl::INLINE_DATA) {
        if r.has_flag(fl::EXTENTS) {
            return false;
        }
        return match inline_data_size(r, fs.inode_size) {
            Some(s) => s as u64 == size,
            None => false,
        };
    }
    let buf: &[u8];
    let blockbuf;
    if is_fast_symlink(r) {
        if r.has_flag(fl::EXTENTS) {
            return false;
        }
        buf = r.i_block();
    } else {
        let blk: u64;
        if r.has_flag(fl::EXTENTS) {
            let ib = r.i_block();
            if !extent_header_ok(ib) {
                return false;
            }
            let entries = u16::from_le_bytes([ib[2], ib[3]]);
            let depth = u16::from_le_bytes([ib[6], ib[7]]);
            if entries != 1 || depth != 0 {
                return false;
            }
            let lblk = u32::from_le_bytes([ib[12], ib[13], ib[14], ib[15]]);
            let len = u16::from_le_bytes([ib[16], ib[17]]);
            let hi = u64::from(u16::from_le_bytes([ib[18], ib[19]]));
            let lo = u64::from(u32::from_le_bytes([ib[20], ib[21], ib[22], ib[23]]));
            if lblk != 0 || len != 1 {
                return false;
            }
            blk = hi << 32 | lo;
        } else {
            blk = u64::from(r.block_word(0));
            if (1..15).any(|i| r.block_word(i) != 0) {
                return false;
            }
        }
        if blk < fs.first_data_block || blk >= fs.blocks_count {
            return false;
        }
        blockbuf = match fs.block(blk) {
            Some(b) => b,
            None => return false,
        };
        buf = blockbuf;
    }
    let _ = ino;
    let len = if r.has_flag(fl::ENCRYPT) {
        usize::from(u16::from_le_bytes([buf[0], buf[1]])) + 2
    } else {
        buf.iter().position(|&b| b == 0).unwrap_or(buf.len())
    };
    if len >= buf.len() {
        return false;
    }
    len as u64 == size
}

/// `check_is_really_dir` (without the block-map test, which needs pass 1's
/// map of blocks in use).
fn check_is_really_dir(env: &Env, ask: &mut dyn Ask, out: &mut Out) {
    let fs = env.fs;
    let r = &out.raw;
    if r.is_dir() || r.is_reg() || r.is_symlink() || r.block_word(0) == 0 {
        return;
    }
    let mut not_device = false;
    let blk: u64;
    if env.inline_fs && r.has_flag(fl::INLINE_DATA) {
        // Rare; only believe a block-mapped directory.
        return;
    } else if env.extent_fs && r.has_flag(fl::EXTENTS) {
        let ib = r.i_block();
        if !extent_header_ok(ib)
            || u16::from_le_bytes([ib[6], ib[7]]) != 0
            || u16::from_le_bytes([ib[2], ib[3]]) == 0
        {
            return;
        }
        let hi = u64::from(u16::from_le_bytes([ib[18], ib[19]]));
        let lo = u64::from(u32::from_le_bytes([ib[20], ib[21], ib[22], ib[23]]));
        blk = hi << 32 | lo;
        not_device = true;
    } else {
        for i in 0..15 {
            let b = u64::from(r.block_word(i));
            if b == 0 {
                continue;
            }
            if i >= 4 {
                not_device = true;
            }
            if b < fs.first_data_block || b >= fs.blocks_count {
                return;
            }
        }
        blk = u64::from(r.block_word(0));
    }
    if (r.is_chr() || r.is_blk()) && r.links() == 1 && !not_device {
        return;
    }
    let Some(b) = fs.block(blk) else { return };
    let rec = |off: usize| -> Option<(u32, usize, u8, &[u8])> {
        let ino = u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?);
        let rl = usize::from(u16::from_le_bytes(
            b.get(off + 4..off + 6)?.try_into().ok()?,
        ));
        let nl = *b.get(off + 6)?;
        let name = b.get(off + 8..off + 8 + usize::from(nl))?;
        Some((ino, rl, nl, name))
    };
    let Some((i1, rl1, nl1, n1)) = rec(0) else {
        return;
    };
    if nl1 != 1 || n1 != b"." || i1 != out.ino || rl1 < 12 || rl1 % 4 != 0 || rl1 >= fs.bs - 12 {
        return;
    }
    let Some((_, rl2, nl2, n2)) = rec(rl1) else {
        return;
    };
    if nl2 != 2 || n2 != b".." || rl2 < 12 || rl2 % 4 != 0 {
        return;
    }
    let p = PCtx {
        ino: out.ino,
        str: super::ino::type_name(r.mode()).into(),
        ..PCtx::default()
    };
    if ask.fix(Code::TreatAsDirectory, &p) {
        let m = (out.raw.mode() & 0o7777) | S_IFDIR;
        out.raw.set_mode(m);
        out.dirty = true;
        out.failed_csum = false;
    }
}

/// The bad blocks inode: every listed block is in use.
fn bad_block_inode(env: &Env, ask: &mut dyn Ask, out: &mut Out) {
    let fs = env.fs;
    let mut acc = BlockAcc::new();
    if out.raw.has_flag(fl::EXTENTS) || out.raw.has_flag(fl::INLINE_DATA) {
        return;
    }
    let mut seen = HashSet::new();
    let mut list: Vec<(u64, u64, usize)> = Vec::new();
    for i in 0..12 {
        list.push((u64::from(out.raw.block_word(i)), 0, i));
    }
    let ind = u64::from(out.raw.block_word(12));
    // Only the single indirect block is followed (bad block lists are short).
    let mut ind_buf: Option<Vec<u8>> = None;
    if ind != 0 {
        if fs.valid_block(ind) {
            acc.claim(ind, 1);
            if let Some(b) = fs.block(ind) {
                for j in 0..fs.bs / 4 {
                    let v =
                        u32::from_le_bytes([b[4 * j], b[4 * j + 1], b[4 * j + 2], b[4 * j + 3]]);
                    list.push((u64::from(v), ind, j));
                }
                ind_buf = Some(b.to_vec());
            }
        } else {
            let p = PCtx {
                ino: BAD_INO,
                blk: ind,
                blkcount: Some(-1),
                ..PCtx::default()
            };
            if ask.fix(Code::IllegalBlockNum, &p) {
                out.raw.set_block_word(12, 0);
                out.dirty = true;
            }
        }
    }
    let mut ind_dirty = false;
    for (blk, parent, slot) in list {
        if blk == 0 {
            continue;
        }
        let bad = !fs.valid_block(blk);
        let meta = !bad && env.block_meta.get(blk);
        if bad || meta || !seen.insert(blk) {
            let p = PCtx {
                ino: BAD_INO,
                blk,
                ..PCtx::default()
            };
            let code = if bad {
                Code::IllegalBlockNum
            } else {
                Code::BadBlockInode
            };
            if ask.fix(code, &p) {
                if parent == 0 {
                    out.raw.set_block_word(slot, 0);
                    out.dirty = true;
                } else if let Some(b) = ind_buf.as_mut() {
                    b[4 * slot..4 * slot + 4].copy_from_slice(&[0; 4]);
                    ind_dirty = true;
                }
            }
            continue;
        }
        acc.claim(blk, 1);
        acc.num_blocks += 1;
    }
    if ind_dirty {
        if let Some(b) = ind_buf {
            acc.block_writes.push((ind, b));
        }
    }
    out.acc = acc;
    out.check_blocks = false;
}

/// `check_blocks` up to (not including) the attribute block and i_blocks,
/// which [`Checker::apply`] finishes.
fn check_blocks(env: &Env, ask: &mut dyn Ask, out: &mut Out) {
    let fs = env.fs;
    let ino = out.ino;
    let is_dir = out.raw.is_dir();
    let is_reg = out.raw.is_reg();
    out.acc = BlockAcc::new();
    out.check_blocks = true;
    let extent_fs = env.extent_fs || out.set_features.contains(&Incompat::EXTENTS);
    let inline_fs = env.inline_fs || out.set_features.contains(&Incompat::INLINE_DATA);
    if inline_fs && out.raw.has_flag(fl::INLINE_DATA) {
        if is_dir {
            out.inline_dir = true;
        }
    } else if has_valid_blocks(fs, &out.raw) {
        let size = out.raw.size();
        let verity = out.raw.has_flag(fl::VERITY);
        let generation = out.raw.generation();
        let mut raw = std::mem::take(&mut out.raw);
        let _ = extent_fs;
        if raw.has_flag(fl::EXTENTS) {
            check_extents(
                env,
                ask,
                ino,
                &mut raw,
                &mut out.acc,
                is_dir,
                size,
                verity,
                generation,
            );
            if out.acc.bad_header {
                out.raw = raw;
                if ask.fix(Code::MissingExtentHeader, &PCtx::ino(ino)) {
                    clear_in_out(out, env, ino);
                }
                out.check_blocks = false;
                return;
            }
        } else {
            check_blockmap(env, ask, ino, &mut raw, &mut out.acc, is_dir, is_reg);
            out.acc.last_init_lblock = out.acc.last_block;
        }
        out.raw = raw;
        if out.acc.inode_modified {
            out.dirty = true;
            out.failed_csum = false;
        }
    }
    ask.end_latch(Code::IllegalBlockNum);
    ask.end_latch(Code::ToobigDir);
    if out.acc.clear {
        clear_in_out(out, env, ino);
        return;
    }
    let p = PCtx::ino(ino);
    if out.raw.has_flag(fl::INDEX) {
        if handle_htree(env, ask, out) {
            out.raw.clear_flags(fl::INDEX);
            out.dirty = true;
            out.failed_csum = false;
        } else {
            out.dx_blocks = u32::try_from(out.acc.last_block + 1).ok();
        }
    }
    // A directory without blocks: cleared (checked after the EA block in
    // e2fsck, but the EA block does not count here).
    if out.acc.num_blocks == 0 && is_dir && !out.raw.has_flag(fl::INLINE_DATA) {
        let ea = out.raw.file_acl(fs.hurd);
        if ea == 0 || !env.xattr_fs || !fs.valid_block(ea) {
            if ask.fix(Code::ZeroLengthDir, &p) {
                clear_in_out(out, env, ino);
                return;
            }
        } else {
            out.zero_length_dir_pending = true;
        }
    }
    check_size(env, ask, out);
}

/// The i_size checks of `check_blocks`.
fn check_size(env: &Env, ask: &mut dyn Ask, out: &mut Out) {
    let fs = env.fs;
    let bs = fs.bs64;
    let acc = &out.acc;
    let raw = &out.raw;
    let mut bad_size = 0;
    let mut num: u64 = ((acc.last_block + 1).max(0) as u64) * bs;
    if raw.is_dir() {
        let nblock = u64::from(raw.size_lo()) / bs;
        if raw.has_flag(fl::INLINE_DATA) {
            match inline_data_size(raw, fs.inode_size) {
                Some(sz) if sz as u64 == raw.size() => {}
                Some(sz) => {
                    bad_size = 7;
                    num = sz as u64;
                }
                None => {
                    bad_size = 7;
                    num = 0;
                }
            }
        } else if u64::from(raw.size_lo()) & (bs - 1) != 0 {
            bad_size = 5;
        } else if (nblock as i64) > acc.last_block + 1 {
            bad_size = 1;
        } else if (nblock as i64) < acc.last_block + 1
            && (acc.last_block + 1 - nblock as i64) > i64::from(fs.sb.f.prealloc_dir_blocks)
        {
            bad_size = 2;
        }
    } else {
        let size = raw.size();
        let extent = raw.has_flag(fl::EXTENTS)
            && (env.extent_fs || out.set_features.contains(&Incompat::EXTENTS));
        let max_map = max_blockmap_size(fs.sb.f.log_block_size);
        if acc.last_init_lblock >= 0
            && size < (acc.last_init_lblock as u64) * bs
            && !raw.has_flag(fl::VERITY)
        {
            bad_size = 3;
        } else if !extent && size > max_map {
            bad_size = 4;
        } else if extent && size > (1u64 << (32 + 10 + fs.sb.f.log_block_size)) - 1 {
            bad_size = 6;
        }
    }
    if bad_size != 0 && !raw.is_symlink() {
        let p = PCtx {
            ino: out.ino,
            num,
            num2: raw.size(),
            group: bad_size,
            ..PCtx::default()
        };
        if ask.fix(Code::BadISize, &p) {
            let v = if out.raw.is_dir() {
                num & 0xffff_ffff
            } else {
                num
            };
            out.raw.set_size(v);
            if v == 0 && out.raw.has_flag(fl::INLINE_DATA) {
                out.raw.set_i_block(&[]);
                out.raw.clear_flags(fl::INLINE_DATA);
            }
            out.dirty = true;
            out.failed_csum = false;
        }
    }
    if out.raw.is_reg() && out.raw.size() >= 0x8000_0000 {
        out.large_file = true;
    }
}

/// The largest file a block map can address with blocks of 1 KiB << log.
pub fn max_blockmap_size(log: u32) -> u64 {
    let bits = 10 + log;
    let bpp = 1u64 << (bits - 2);
    let blocks = 12u64
        .saturating_add(bpp)
        .saturating_add(bpp.saturating_mul(bpp))
        .saturating_add(bpp.saturating_mul(bpp).saturating_mul(bpp));
    blocks.saturating_mul(1u64 << bits)
}

/// `handle_htree`: returns true when the index must be cleared.
fn handle_htree(env: &Env, ask: &mut dyn Ask, out: &mut Out) -> bool {
    let fs = env.fs;
    let p = PCtx::ino(out.ino);
    if (!out.raw.is_dir() && ask.fix(Code::HtreeNodir, &p))
        || (!env.dir_index_fs && ask.fix(Code::HtreeSet, &p))
    {
        return true;
    }
    let blk = out
        .acc
        .dir_blocks
        .iter()
        .find(|&&(l, _)| l == 0)
        .map_or(0, |&(_, b)| b);
    if blk == 0 || !fs.valid_block(blk) {
        return ask.fix(Code::HtreeBadroot, &p);
    }
    let Some(b) = fs.block(blk) else {
        return ask.fix(Code::HtreeBadroot, &p);
    };
    let reserved_zero = u32::from_le_bytes([b[24], b[25], b[26], b[27]]);
    let hash_version = b[28];
    let info_length = b[29];
    let levels = b[30];
    let unused_flags = b[31];
    if (reserved_zero != 0 || info_length < 8) && ask.fix(Code::HtreeBadroot, &p) {
        return true;
    }
    let ph = PCtx {
        ino: out.ino,
        num: u64::from(hash_version),
        ..PCtx::default()
    };
    if hash_version > 2 && ask.fix(Code::HtreeHashv, &ph) {
        return true;
    }
    if unused_flags & 1 != 0 && ask.fix(Code::HtreeIncompat, &p) {
        return true;
    }
    let max_levels = if env.largedir { 3 } else { 2 };
    let pl = PCtx {
        ino: out.ino,
        num: u64::from(levels),
        ..PCtx::default()
    };
    if levels >= max_levels && ask.fix(Code::HtreeDepth, &pl) {
        return true;
    }
    false
}

/// `mark_table_blocks`: superblocks, descriptors, bitmaps and inode tables.
pub fn group_meta_blocks(fs: &Fs, g: u32) -> Vec<(u64, u64)> {
    let mut v = Vec::new();
    let geo = &fs.geo;
    let start = fs.group_sb_block(g);
    let has_super = geo.has_super(g);
    if g == 0 && fs.bs == 1024 && fs.cluster_bits > 0 {
        v.push((0, 1));
    }
    if has_super {
        v.push((start, 1));
    }
    let meta_bg = fs.has_incompat(Incompat::META_BG);
    let first_meta_bg = fs.sb.f.first_meta_bg;
    let dpb = geo.descs_per_block.max(1);
    let mg = g / dpb;
    if !meta_bg || mg < first_meta_bg {
        if has_super {
            let n = if meta_bg {
                u64::from(first_meta_bg)
            } else {
                u64::from(geo.gdt_blocks) + u64::from(geo.reserved_gdt_blocks)
            };
            let n = n.min(fs.blocks_count.saturating_sub(start + 1));
            if n > 0 {
                v.push((start + 1, n));
            }
        }
    } else {
        let r = g % dpb;
        if r == 0 || r == 1 || r == dpb - 1 {
            v.push((start + u64::from(has_super), 1));
        }
    }
    v
}

impl Checker {
    /// Marks the fixed metadata in the block maps (e2fsck's `mark_table_blocks`).
    pub fn mark_table_blocks(&mut self) {
        let n = self.fs.groups_count();
        for g in 0..n {
            for (s, c) in group_meta_blocks(&self.fs, g) {
                self.block_found.set_range(s, s + c);
                self.block_meta.set_range(s, s + c);
            }
        }
        for g in 0..n {
            let d = self.fs.groups[g as usize].clone();
            if d.inode_table != 0 && !self.invalid_it[g as usize] {
                for b in d.inode_table..d.inode_table + u64::from(self.fs.itable_blocks) {
                    if self.block_found.get(b) {
                        let p = PCtx {
                            group: g,
                            blk: b,
                            ..PCtx::default()
                        };
                        if self.fix(Code::ItableConflict, &p) {
                            self.invalid_it[g as usize] = true;
                            self.invalid_bitmaps += 1;
                        }
                    } else {
                        self.block_found.set(b);
                        self.block_meta.set(b);
                    }
                }
            }
            if d.block_bitmap != 0 && !self.invalid_bb[g as usize] {
                if self.block_found.get(d.block_bitmap) {
                    let p = PCtx {
                        group: g,
                        blk: d.block_bitmap,
                        ..PCtx::default()
                    };
                    if self.fix(Code::BbConflict, &p) {
                        self.invalid_bb[g as usize] = true;
                        self.invalid_bitmaps += 1;
                    }
                } else {
                    self.block_found.set(d.block_bitmap);
                    self.block_meta.set(d.block_bitmap);
                }
            }
            if d.inode_bitmap != 0 && !self.invalid_ib[g as usize] {
                if self.block_found.get(d.inode_bitmap) {
                    let p = PCtx {
                        group: g,
                        blk: d.inode_bitmap,
                        ..PCtx::default()
                    };
                    if self.fix(Code::IbConflict, &p) {
                        self.invalid_ib[g as usize] = true;
                        self.invalid_bitmaps += 1;
                    }
                } else {
                    self.block_found.set(d.inode_bitmap);
                    self.block_meta.set(d.inode_bitmap);
                }
            }
        }
        let sb = &self.fs.sb.f;
        if self.fs.has_incompat(Incompat::MMP)
            && sb.mmp_block > self.fs.first_data_block
            && sb.mmp_block < self.fs.blocks_count
        {
            let b = sb.mmp_block;
            self.block_found.set(b);
        }
    }

    /// Marks `len` blocks from `start` in use, noting blocks claimed twice.
    pub fn mark_blocks_used(&mut self, start: u64, len: u64) {
        if !self.block_found.any_in(start, start + len) {
            self.block_found.set_range(start, start + len);
            return;
        }
        for b in start..start + len {
            if b >= self.fs.blocks_count {
                break;
            }
            if self.block_found.set(b) {
                self.block_dup.set(b);
                self.has_dups = true;
            }
        }
    }

    /// The inode numbers pass 1 scans in group `g` (none for uninitialized
    /// groups or a missing inode table).
    pub fn scan_range(&self, g: u32) -> std::ops::Range<u32> {
        let ipg = self.fs.ipg;
        let base = g * ipg + 1;
        let d = &self.fs.groups[g as usize];
        if self.invalid_it[g as usize] || d.inode_table == 0 || self.fs.inode_offset(base).is_none()
        {
            return base..base;
        }
        let mut n = ipg;
        if self.fs.has_group_csum() {
            if d.has_flag(BG_INODE_UNINIT) {
                return base..base;
            }
            n = ipg.saturating_sub(d.itable_unused.min(ipg));
        }
        base..base + n
    }

    /// Asks the kernel to read the used part of the inode tables of groups
    /// `g0..g1` ahead.
    fn read_ahead_tables(&self, g0: u32, g1: u32) {
        for g in g0..g1 {
            let r = self.scan_range(g);
            if r.is_empty() {
                continue;
            }
            if let Some(off) = self.fs.inode_offset(r.start) {
                let len = u64::from(r.end - r.start) * self.fs.inode_size as u64;
                self.fs.disk.will_need(off, len);
            }
        }
    }

    /// Pass 1.
    pub fn pass1(&mut self) {
        self.rep
            .say_header("Pass 1: Checking inodes, blocks, and sizes\n");
        self.quota_reset();
        if self.fs.disk.is_writable() && self.fs.sb.f.last_orphan != 0 {
            self.fs.sb.f.last_orphan = 0;
            self.fs.mark_sb_dirty();
        }
        self.mark_table_blocks();
        let ngroups = self.fs.groups_count();
        let threads = if self.rep.mode() == Mode::Ask {
            1
        } else {
            self.opts.threads.max(1)
        };
        let mode = self.rep.mode();
        // Batches of about 4096 inodes per thread: the results of a batch
        // are held until merged, so small batches keep memory (and page
        // faults) low.
        let chunk_groups = (4096 / self.fs.ipg.max(1)).clamp(1, 16);
        let mut g0 = 0u32;
        let progress_total = u64::from(ngroups);
        self.read_ahead_tables(0, (chunk_groups * threads as u32).min(ngroups));
        while g0 < ngroups && !self.rep.should_stop() {
            let g1 = (g0 + chunk_groups * threads as u32).min(ngroups);
            // The next batch's inode tables are read ahead while this one runs.
            self.read_ahead_tables(g1, (g1 + chunk_groups * threads as u32).min(ngroups));
            if threads == 1 {
                for g in g0..g1 {
                    let range = self.scan_range(g);
                    for ino in range {
                        // One thread: the reporter answers directly.
                        let out = {
                            let Some(raw) = self.fs.inode_raw(ino) else {
                                continue;
                            };
                            let env = Env::new(&self.fs, &self.block_meta, self.now, mode);
                            scan_inode(&env, &mut self.rep, ino, raw)
                        };
                        if let Some(out) = out {
                            self.apply(out);
                        }
                        if self.rep.should_stop() {
                            return;
                        }
                    }
                    self.progress(1, u64::from(g) + 1, progress_total);
                }
            } else {
                // Groups g0..g1 split among the threads; results merged in order.
                type Slot = Mutex<Vec<(Recorder, Option<Out>)>>;
                let results: Vec<Slot> = (g0..g1).map(|_| Mutex::new(Vec::new())).collect();
                let ranges: Vec<std::ops::Range<u32>> =
                    (g0..g1).map(|g| self.scan_range(g)).collect();
                {
                    let env = Env::new(&self.fs, &self.block_meta, self.now, mode);
                    let env = &env;
                    let results = &results;
                    let ranges = &ranges;
                    let next = std::sync::atomic::AtomicUsize::new(0);
                    let next = &next;
                    std::thread::scope(|s| {
                        for _ in 0..threads {
                            s.spawn(move || loop {
                                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                if k >= ranges.len() {
                                    break;
                                }
                                let mut v = Vec::new();
                                for ino in ranges[k].clone() {
                                    let Some(raw) = env.fs.inode_raw(ino) else {
                                        continue;
                                    };
                                    let mut rec = Recorder::new(mode);
                                    let out = scan_inode(env, &mut rec, ino, raw);
                                    if out.is_some() || !rec.events.is_empty() {
                                        v.push((rec, out));
                                    }
                                }
                                if let Ok(mut slot) = results[k].lock() {
                                    *slot = v;
                                }
                            });
                        }
                    });
                }
                let mut env_changed = false;
                for (k, slot) in results.into_iter().enumerate() {
                    let v = slot.into_inner().unwrap_or_default();
                    if env_changed {
                        // A feature changed: scan this group again sequentially.
                        for ino in ranges[k].clone() {
                            let Some(raw) = self.fs.inode_raw(ino).map(<[u8]>::to_vec) else {
                                continue;
                            };
                            let out = {
                                let env = Env::new(&self.fs, &self.block_meta, self.now, mode);
                                let mut rec = Recorder::new(mode);
                                let out = scan_inode(&env, &mut rec, ino, &raw);
                                rec.replay(&mut self.rep);
                                out
                            };
                            if let Some(out) = out {
                                self.apply(out);
                            }
                            if self.rep.should_stop() {
                                return;
                            }
                        }
                    } else {
                        let mut iter = v.into_iter();
                        let mut last_ino = 0;
                        for (rec, out) in iter.by_ref() {
                            rec.replay(&mut self.rep);
                            let changes = out.as_ref().is_some_and(|o| !o.set_features.is_empty());
                            if let Some(out) = out {
                                last_ino = out.ino;
                                self.apply(out);
                            }
                            if self.rep.should_stop() {
                                return;
                            }
                            if changes {
                                env_changed = true;
                                break;
                            }
                        }
                        if env_changed {
                            // Re-scan the rest of this group with the new features.
                            for ino in (last_ino + 1)..ranges[k].end {
                                let Some(raw) = self.fs.inode_raw(ino).map(<[u8]>::to_vec) else {
                                    continue;
                                };
                                let out = {
                                    let env = Env::new(&self.fs, &self.block_meta, self.now, mode);
                                    let mut rec = Recorder::new(mode);
                                    let out = scan_inode(&env, &mut rec, ino, &raw);
                                    rec.replay(&mut self.rep);
                                    out
                                };
                                if let Some(out) = out {
                                    self.apply(out);
                                }
                                if self.rep.should_stop() {
                                    return;
                                }
                            }
                        }
                    }
                    self.progress(1, u64::from(g0) + k as u64 + 1, progress_total);
                }
            }
            g0 = g1;
        }
        if self.rep.should_stop() {
            return;
        }
        self.adjust_ea_refcounts();
        if self.invalid_bitmaps > 0 {
            self.handle_fs_bad_blocks();
        }
        if self.restart {
            return;
        }
        if self.has_dups {
            if self.rep.mode() == Mode::Preen {
                self.fix(Code::DupBlocksPreenstop, &PCtx::default());
            }
            self.pass1_dupblocks();
        }
    }

    /// Reports progress (`-C`).
    pub fn progress(&mut self, pass: u32, cur: u64, total: u64) {
        if self.opts.progress {
            super::progress::report(pass, cur, total);
        }
    }

    /// The encryption policy of an inode with the encrypt flag, as e2fsck
    /// reads it: the `c` attribute (index 9) holds an fscrypt context, v1
    /// (28 bytes) or v2 (40 bytes); the nonce at the end is not part of
    /// the policy.
    fn encryption_policy(&self, raw: &[u8]) -> EncPolicy {
        let blk = raw.file_acl(self.fs.hurd);
        let block = (blk != 0 && self.fs.valid_block(blk))
            .then(|| self.fs.block(blk))
            .flatten();
        let Some(v) = super::xattr_check::find_ea(raw, self.fs.inode_size, block, 9, b"c") else {
            return EncPolicy::Missing;
        };
        match v.first() {
            None | Some(0) => EncPolicy::Corrupt,
            Some(1) if v.len() == 28 => EncPolicy::Known(v[..12].to_vec()),
            Some(2) if v.len() == 40 => EncPolicy::Known(v[..24].to_vec()),
            Some(1) | Some(2) => EncPolicy::Corrupt,
            Some(_) => EncPolicy::Unrecognized,
        }
    }

    /// `add_encrypted_file`: records the policy of an encrypted inode, or
    /// offers to clear the flag (no policy) or the inode (corrupt policy).
    /// Returns false when the inode was cleared.
    fn check_encryption(&mut self, out: &mut Out) -> bool {
        let ino = out.ino;
        match self.encryption_policy(&out.raw) {
            EncPolicy::Missing => {
                if self.fix(Code::MissingEncryptionXattr, &PCtx::ino(ino)) {
                    let f = out.raw.flags() & !fl::ENCRYPT;
                    out.raw.set_flags(f);
                    out.dirty = true;
                    out.failed_csum = false;
                }
                out.encrypted = false;
            }
            EncPolicy::Corrupt => {
                if self.fix(Code::CorruptEncryptionXattr, &PCtx::ino(ino)) {
                    let mut raw = std::mem::take(&mut out.raw);
                    self.clear_inode(ino, &mut raw);
                    return false;
                }
                out.encrypted = false;
            }
            EncPolicy::Unrecognized => {
                self.enc_policy.insert(ino, UNRECOGNIZED_POLICY);
            }
            EncPolicy::Known(key) => {
                let next = self.enc_policies.len() as u32;
                let id = *self.enc_policies.entry(key).or_insert(next);
                self.enc_policy.insert(ino, id);
            }
        }
        true
    }

    /// Merges one inode's result (phase B).
    pub fn apply(&mut self, mut out: Out) {
        let ino = out.ino;
        if out.used
            && out.check_blocks
            && out.raw.has_flag(fl::ENCRYPT)
            && (ino == 2 || ino >= self.fs.first_ino)
            && !self.check_encryption(&mut out)
        {
            return;
        }
        for f in out.set_features.drain(..) {
            let mut feat = self.fs.sb.features();
            feat.incompat |= f;
            self.fs.sb.set_features(feat);
            self.fs.refresh();
            self.fs.mark_sb_dirty();
        }
        if out.check_blocks && out.used {
            self.finish_check_blocks(&mut out);
        }
        if out.failed_csum && !out.dirty && self.fix(Code::InodeOnlyCsumInvalid, &PCtx::ino(ino)) {
            out.dirty = true;
        }
        if out.dirty && self.can_write() {
            let raw = out.raw.clone();
            self.write_inode(ino, &raw);
        }
        if let Some(l) = self.link_info.get_mut(ino as usize) {
            *l = if out.used { out.raw.links() } else { 0 };
        }
        if !out.used {
            return;
        }
        // The resize inode's indirect blocks are the primary reserved GDT
        // blocks (fixed metadata): only it may rewrite them.
        let rsv = if ino == 7 && !self.fs.has_incompat(Incompat::META_BG) {
            let start = self.fs.first_data_block + 1 + u64::from(self.fs.geo.gdt_blocks);
            start..start + u64::from(self.fs.geo.reserved_gdt_blocks)
        } else {
            0..0
        };
        for (b, data) in std::mem::take(&mut out.acc.block_writes) {
            if rsv.contains(&b) {
                self.write_meta_block(b, &data);
            } else {
                self.write_block(b, &data);
            }
        }
        let i = u64::from(ino);
        self.inode_used.set(i);
        if out.dir {
            self.inode_dir.set(i);
            self.dirs.insert(ino, DirInfo::default());
            if out.encrypted {
                self.inode_encrypted.set(i);
            }
            if out.casefold {
                self.inode_casefold.set(i);
            }
        }
        if out.reg {
            self.inode_reg.set(i);
        }
        if out.bad {
            self.inode_bad.set(i);
        }
        if out.imagic {
            self.inode_imagic.set(i);
        }
        match out.kind {
            super::pass1::Kind::Dir => self.stats.dirs += 1,
            Kind::Reg => self.stats.regular += 1,
            Kind::Chr => self.stats.chardev += 1,
            Kind::Blk => self.stats.blockdev += 1,
            Kind::Fifo => self.stats.fifos += 1,
            Kind::Sock => self.stats.sockets += 1,
            Kind::Symlink => self.stats.symlinks += 1,
            Kind::FastSymlink => {
                self.stats.symlinks += 1;
                self.stats.fast_symlinks += 1;
            }
            Kind::Other => {}
        }
        if out.acc.fragmented && out.acc.num_blocks < u64::from(self.fs.bpg) {
            self.stats.fragmented += 1;
        }
        if out.large_file {
            self.large_files += 1;
        }
        for (s, c) in std::mem::take(&mut out.acc.claims) {
            if s >= self.fs.blocks_count {
                continue;
            }
            let c = c.min(self.fs.blocks_count - s);
            self.mark_blocks_used(s, c);
        }
        if out.inline_dir {
            self.dblist.push(DirBlock {
                ino,
                blk: 0,
                lblk: 0,
            });
            if inline_data_size(&out.raw, self.fs.inode_size).is_some_and(|s| s > 60) {
                self.dblist.push(DirBlock {
                    ino,
                    blk: 0,
                    lblk: 1,
                });
            }
        } else if out.dir {
            for &(l, b) in &out.acc.dir_blocks {
                self.dblist.push(DirBlock {
                    ino,
                    blk: b,
                    lblk: l,
                });
            }
        }
        if let Some(n) = out.dx_blocks {
            self.dx_dirs.insert(ino, DxDir { numblocks: n });
        }
        for e in std::mem::take(&mut out.set_ea_flag) {
            let mut r = self.fs.read_inode(e);
            let f = r.flags() | fl::EA_INODE;
            r.set_flags(f);
            self.write_inode(e, &r);
        }
        for r in out.ea_inode_refs.drain(..) {
            *self.ea_inode_refs.entry(r).or_insert(0) += 1;
        }
        if out.acc.restart {
            self.restart_later = true;
        }
    }

    /// The rest of `check_blocks`: the attribute block and i_blocks.
    fn finish_check_blocks(&mut self, out: &mut Out) {
        let ino = out.ino;
        let fs_hurd = self.fs.hurd;
        let bits = self.fs.cluster_bits;
        let mut num_blocks = out.acc.num_blocks + (out.ibody_quota_blocks >> bits);
        let blk = out.raw.file_acl(fs_hurd);
        if blk != 0 {
            if !self.fs.has_compat(Compat::EXT_ATTR) || !self.fs.valid_block(blk) {
                out.bad = true;
            } else if self.block_ea.get(blk) {
                num_blocks += self.ea_quota.get(&blk).copied().unwrap_or(1 << bits) >> bits;
                let e = self.ea_refcount.entry(blk).or_insert(0);
                *e -= 1;
            } else {
                let block = self.fs.block(blk).map(<[u8]>::to_vec).unwrap_or_default();
                let csum_ok = !self.fs.has_metadata_csum()
                    || crate::format::xattr::verify_block_checksum(self.fs.seed, blk, &block)
                        .is_ok();
                let gen = out.raw.generation();
                let verdict =
                    check_ea_block(&self.fs, &mut self.rep, ino, gen, blk, &block, csum_ok);
                match verdict {
                    EaBlock::Keep {
                        refcount,
                        csum_bad,
                        ea_inode_refs,
                        quota_blocks,
                        set_ea_flag,
                    } => {
                        out.set_ea_flag.extend(set_ea_flag);
                        self.ea_quota.insert(blk, quota_blocks);
                        if csum_bad
                            && self.fix(
                                Code::EaBlockOnlyCsumInvalid,
                                &PCtx {
                                    ino,
                                    blk,
                                    ..PCtx::default()
                                },
                            )
                        {
                            let mut b = block.clone();
                            let _ =
                                crate::format::xattr::set_block_checksum(self.fs.seed, blk, &mut b);
                            self.write_block(blk, &b);
                        }
                        for r in ea_inode_refs {
                            *self.ea_inode_refs.entry(r).or_insert(0) += 1;
                        }
                        self.ea_stored.insert(blk, refcount);
                        self.ea_refcount.insert(blk, i64::from(refcount) - 1);
                        self.mark_blocks_used(blk, 1);
                        self.block_ea.set(blk);
                        num_blocks += quota_blocks >> bits;
                    }
                    EaBlock::Clear => {
                        out.raw.set_file_acl(0, fs_hurd);
                        out.dirty = true;
                        out.failed_csum = false;
                    }
                    EaBlock::Ignore => {}
                }
            }
        }
        if out.zero_length_dir_pending && num_blocks == 0 {
            // (Only reached when the EA block did not count after all.)
        }
        let huge = self.fs.has_ro_compat(RoCompat::HUGE_FILE) && out.raw.has_flag(fl::HUGE_FILE);
        let mut nb = num_blocks;
        if !huge {
            nb *= self.fs.bs64 / 512;
        }
        nb <<= self.fs.cluster_bits;
        let stored = u64::from(out.raw.blocks_lo())
            | if self.fs.has_ro_compat(RoCompat::HUGE_FILE) {
                u64::from(out.raw.blocks_hi()) << 32
            } else {
                0
            };
        let ea_inodes = out.ea_inode_refs.len() as u64;
        self.quota_charge(ino, &out.raw, num_blocks, 1 + ea_inodes);
        if !self.fs.hurd && (nb != stored || (huge && out.raw.blocks_hi() != 0)) {
            let p = PCtx {
                ino,
                num: nb,
                num2: stored,
                ..PCtx::default()
            };
            if self.fix(Code::BadIBlocks, &p) {
                out.raw.set_blocks_raw(nb);
                out.dirty = true;
                out.failed_csum = false;
            }
        }
    }

    /// Fixes the reference counts of attribute blocks.
    fn adjust_ea_refcounts(&mut self) {
        let mut v: Vec<(u64, i64)> = self.ea_refcount.iter().map(|(&b, &c)| (b, c)).collect();
        v.sort_unstable();
        for (blk, remaining) in v {
            if remaining == 0 {
                continue;
            }
            let stored = self.ea_stored.get(&blk).copied().unwrap_or(0);
            let should = i64::from(stored) - remaining;
            let p = PCtx {
                blk,
                num: should.max(0) as u64,
                num2: u64::from(stored),
                ..PCtx::default()
            };
            if self.fix(Code::ExtattrRefcount, &p) {
                if let Some(b) = self.fs.block(blk).map(<[u8]>::to_vec) {
                    let mut b = b;
                    let _ = crate::format::xattr::set_block_refcount(&mut b, should.max(0) as u32);
                    if self.fs.has_metadata_csum() {
                        let _ = crate::format::xattr::set_block_checksum(self.fs.seed, blk, &mut b);
                    }
                    self.write_block(blk, &b);
                }
            }
        }
    }
}
