//! Extended attributes of an inode, the internal journal's superblock, and
//! the two orphan lists (the orphan file and the old `s_last_orphan` chain).
//!
//! Attributes: the in-inode area (from 128 + `i_extra_isize` to the end of
//! the inode) first, then the block named by `i_file_acl`, whose checksum
//! is verified under metadata_csum. Entry hashes are checked (0 is allowed
//! for in-inode entries; the legacy signed-char variant is accepted).
//! Values stay in disk form: POSIX ACLs in ext4's compact encoding, the
//! inline-data `system.data` attribute included.

use std::collections::HashSet;

use super::super::error::{FormatError, Result};
use super::super::features::{Compat, Incompat};
use super::super::ids::InodeNo;
use super::super::inode::Inode;
use super::super::jbd2::{verify_superblock_checksum, JournalSuperblock};
use super::super::orphan;
use super::super::xattr::{ibody_range, parse_block, parse_ibody, Xattr, XattrEntry};
use super::ImageView;

/// The internal journal, as far as its superblock tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalInfo {
    /// The journal inode (`s_journal_inum`).
    pub ino: u32,
    pub sb: JournalSuperblock,
    /// The file system's `needs_recovery` (RECOVER) flag.
    pub fs_needs_recovery: bool,
    /// The log holds transactions (`s_start != 0`).
    pub log_needs_recovery: bool,
}

impl JournalInfo {
    /// Whether the journal must be replayed before the file system is used.
    pub fn needs_recovery(&self) -> bool {
        self.fs_needs_recovery || self.log_needs_recovery
    }
}

impl ImageView<'_> {
    /// Every extended attribute of inode `ino`: in-inode ones, then those
    /// of its xattr block, values in disk form.
    pub fn xattrs(&self, ino: u32) -> Result<Vec<Xattr>> {
        let inode = self.inode(ino)?;
        self.xattrs_of(ino, &inode)
    }

    pub(crate) fn xattrs_of(&self, ino: u32, inode: &Inode) -> Result<Vec<Xattr>> {
        let mut out = Vec::new();
        for e in self.ibody_entries(ino, inode)? {
            check_entry(ino, &e, true)?;
            out.push(e.to_xattr()?);
        }
        if let Some((_, entries)) = self.xattr_block(ino, inode)? {
            for e in &entries {
                check_entry(ino, e, false)?;
                out.push(e.to_xattr()?);
            }
        }
        Ok(out)
    }

    /// The parsed in-inode attribute entries (empty for 128-byte inodes or
    /// without the magic).
    pub(crate) fn ibody_entries(&self, ino: u32, inode: &Inode) -> Result<Vec<XattrEntry>> {
        let isz = usize::from(self.sb.inode_size());
        if isz <= super::super::inode::GOOD_OLD_INODE_SIZE {
            return Ok(Vec::new());
        }
        let raw = self.inode_raw(ino)?;
        match ibody_range(isz, inode.extra_isize)? {
            Some(range) => parse_ibody(&raw[range], self.has_incompat(Incompat::EA_INODE)),
            None => Ok(Vec::new()),
        }
    }

    /// The xattr block of an inode (block number and entries), if it has one.
    pub(crate) fn xattr_block(
        &self,
        ino: u32,
        inode: &Inode,
    ) -> Result<Option<(u64, Vec<XattrEntry>)>> {
        let nr = inode.file_acl;
        if nr == 0 {
            return Ok(None);
        }
        if nr < self.geo.first_data_block || nr >= self.blocks_count {
            return Err(FormatError::corrupt(
                "xattr block",
                format!("inode {ino}: i_file_acl {nr} outside the file system"),
            ));
        }
        let block = self.block(nr)?;
        if self.metadata_csum {
            super::super::xattr::verify_block_checksum(self.fs_seed, nr, block)?;
        }
        let (_, entries) = parse_block(block, self.has_incompat(Incompat::EA_INODE))?;
        Ok(Some((nr, entries)))
    }

    /// The internal journal's superblock, or `None` without has_journal.
    /// Checks that the journal inode maps every block of the log (no holes
    /// in `0..s_maxlen`), the journal block size, unknown journal INCOMPAT
    /// features and the superblock checksum (v2/v3). An external journal is
    /// `Unsupported`.
    pub fn journal_superblock(&self) -> Result<Option<JournalInfo>> {
        const WHAT: &str = "journal";
        if !self.has_compat(Compat::HAS_JOURNAL) {
            return Ok(None);
        }
        let ino = self.sb.f.journal_inum;
        if ino == 0 {
            return Err(FormatError::unsupported(WHAT, "external journal device"));
        }
        let inode = self.inode(ino)?;
        if !inode.is_reg() {
            return Err(FormatError::corrupt(
                WHAT,
                format!("journal inode {ino} is not a regular file"),
            ));
        }
        let map = self.file_map(ino, &inode)?;
        let first = map
            .find(0)
            .filter(|r| !r.unwritten)
            .ok_or_else(|| FormatError::corrupt(WHAT, "block 0 of the journal is not mapped"))?;
        let block = self.block(first.phys)?;
        let sb = JournalSuperblock::parse(block)?;
        verify_superblock_checksum(block)?;
        if usize::try_from(sb.blocksize).ok() != Some(self.block_size) {
            return Err(FormatError::corrupt(
                WHAT,
                format!(
                    "journal block size {} differs from the file system's {}",
                    sb.blocksize, self.block_size
                ),
            ));
        }
        let unknown = sb.unknown_incompat();
        if !unknown.is_empty() {
            return Err(FormatError::unsupported(
                WHAT,
                format!("unknown journal incompat features {:#x}", unknown.bits()),
            ));
        }
        let maxlen = u64::from(sb.maxlen);
        let mapped: u64 = map
            .runs
            .iter()
            .filter(|r| !r.unwritten)
            .map(|r| {
                r.logical_end()
                    .min(maxlen)
                    .saturating_sub(u64::from(r.logical))
            })
            .sum();
        if mapped != maxlen || inode.size < maxlen.saturating_mul(self.bs64()) {
            return Err(FormatError::corrupt(
                WHAT,
                format!(
                    "s_maxlen {maxlen} blocks, but the inode maps {mapped} of them \
                     (i_size {})",
                    inode.size
                ),
            ));
        }
        Ok(Some(JournalInfo {
            ino,
            log_needs_recovery: sb.needs_recovery(),
            fs_needs_recovery: self.has_incompat(Incompat::RECOVER),
            sb,
        }))
    }

    /// The inodes listed in the orphan file, or `None` without orphan_file.
    /// Every block's magic and (metadata_csum) checksum is verified.
    pub fn orphan_file_entries(&self) -> Result<Option<Vec<u32>>> {
        const WHAT: &str = "orphan file";
        if !self.has_compat(Compat::ORPHAN_FILE) {
            return Ok(None);
        }
        let ino = self.sb.f.orphan_file_inum;
        let inode = self.inode(ino)?;
        if !inode.is_reg() || inode.size > orphan::MAX_ORPHAN_FILE_SIZE {
            return Err(FormatError::corrupt(
                WHAT,
                format!(
                    "inode {ino}: not a regular file of at most 8 MiB (size {})",
                    inode.size
                ),
            ));
        }
        let nblocks = inode.size / self.bs64();
        let map = self.file_map(ino, &inode)?;
        let seed = orphan::csum_seed(self.fs_seed, InodeNo(ino), inode.generation);
        let mut out = Vec::new();
        for l in 0..nblocks {
            let lblk = u32::try_from(l).unwrap_or(u32::MAX);
            let run = map.find(lblk).filter(|r| !r.unwritten).ok_or_else(|| {
                FormatError::corrupt(WHAT, format!("logical block {l} is not mapped"))
            })?;
            let phys = run.phys + u64::from(lblk - run.logical);
            let block = self.block(phys)?;
            if self.metadata_csum {
                orphan::verify_block_checksum(seed, phys, block)?;
            }
            out.extend(orphan::parse_block(block)?.into_iter().map(|i| i.0));
        }
        Ok(Some(out))
    }

    /// The old orphan list: `s_last_orphan`, then each inode's `i_dtime`
    /// as the next link. Stops with an error on a loop or a bad number.
    pub fn orphan_list(&self) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut next = self.sb.f.last_orphan;
        while next != 0 {
            if !seen.insert(next) {
                return Err(FormatError::corrupt(
                    "orphan list",
                    format!("inode {next} listed twice"),
                ));
            }
            let inode = self.inode(next)?;
            out.push(next);
            next = inode.dtime;
        }
        Ok(out)
    }
}

fn check_entry(ino: u32, e: &XattrEntry, in_inode: bool) -> Result<()> {
    if !e.hash_valid(in_inode) {
        return Err(FormatError::corrupt(
            if in_inode {
                "in-inode xattrs"
            } else {
                "xattr block"
            },
            format!(
                "inode {ino}: entry {:?} has hash {:#x}, expected {:#x}",
                String::from_utf8_lossy(&e.name),
                e.hash,
                e.computed_hash
            ),
        ));
    }
    Ok(())
}
