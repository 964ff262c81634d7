//! A read-only view of a whole ext2/3/4 image held in memory (a memory map
//! or a `Vec`): superblock, group descriptors, inodes, file mappings, file
//! contents, directories, symlinks, extended attributes, the journal
//! superblock and the orphan lists, plus a whole-tree consistency walk.
//!
//! Pure: no I/O, no `unsafe`. Every number read from the image is checked
//! before use; bad input becomes a [`FormatError`], never a panic. All work
//! is bounded: extent trees and block maps are walked without recursion and
//! visit each tree block at most once, directory sizes, symlink lengths,
//! read sizes and htree depths are capped, and the tree walk
//! ([`ImageView::walk`]) uses an explicit stack, a visited set and a budget
//! of blocks it may touch.
//!
//! Layout of the code:
//! - this file: opening (superblock, features, geometry, group descriptor
//!   table), raw block and inode access;
//! - `map`: file mappings (extent trees, block maps), inline data,
//!   [`ImageView::read_file`], [`ImageView::read_link`];
//! - `dir`: [`ImageView::read_dir`] (linear, htree, inline) and
//!   [`ImageView::lookup`];
//! - `meta`: extended attributes, journal superblock, orphan file and list;
//! - `walk`: [`ImageView::walk`] and its [`WalkReport`].
//!
//! Opening checks, in order: the superblock (magic, sanity, checksum with
//! metadata_csum); unknown INCOMPAT features (refused, named); that the
//! buffer holds `s_blocks_count` blocks; that every descriptor block of the
//! group descriptor table lies inside the file system. Descriptor checksums
//! are verified per group and recorded ([`GroupInfo::csum_ok`]), not fatal,
//! so a checker can see them all.

mod dir;
mod map;
mod meta;
mod walk;

pub use dir::DirRecord;
pub use map::{BlockRun, FileMap};
pub use meta::JournalInfo;
pub use walk::{WalkError, WalkReport};

use super::csum::crc32c;
use super::error::{FormatError, Result};
use super::features::{Compat, Features, Incompat, RoCompat};
use super::geometry::Geometry;
use super::group_desc::{verify_group_desc_csum, GroupDesc, BG_BLOCK_UNINIT, BG_INODE_UNINIT};
use super::inode::{inode_csum, Inode, GOOD_OLD_INODE_SIZE};
use super::superblock::{Superblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE};

/// `i_checksum_lo` and `i_checksum_hi` offsets in an on-disk inode.
const INODE_CSUM_LO: usize = 0x7C;
const INODE_CSUM_HI: usize = 0x82;

/// One group descriptor as read, with the verdict on its checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub desc: GroupDesc,
    /// Whether `bg_checksum` is right (always true without descriptor checksums).
    pub csum_ok: bool,
}

/// A read-only view of an image. Cheap to share: it borrows the bytes and
/// holds only the superblock and the descriptors.
#[derive(Debug, Clone)]
pub struct ImageView<'a> {
    bytes: &'a [u8],
    sb: Superblock,
    geo: Geometry,
    sb_group: u32,
    groups: Vec<GroupInfo>,
    block_size: usize,
    blocks_count: u64,
    fs_seed: u32,
    metadata_csum: bool,
}

fn to_usize(v: u64, what: &'static str) -> Result<usize> {
    usize::try_from(v)
        .map_err(|_| FormatError::corrupt(what, format!("{v} does not fit in memory")))
}

impl<'a> ImageView<'a> {
    /// Opens an image by its primary superblock (byte 1024). There is no
    /// automatic fallback to a backup: see [`ImageView::open_with_superblock`].
    pub fn open(bytes: &'a [u8]) -> Result<Self> {
        let sb_bytes = slice_at(
            bytes,
            SUPERBLOCK_OFFSET,
            SUPERBLOCK_SIZE,
            "primary superblock",
        )?;
        let sb = Superblock::parse(sb_bytes)?;
        Self::from_superblock(bytes, sb, 0)
    }

    /// Opens an image by the backup superblock of `group` (0 = primary), as
    /// `e2fsck -b` does. The backup is looked for where mke2fs puts it with
    /// its default geometry (8 x block size blocks per group), for each
    /// block size from 1 KiB to 64 KiB; the first copy found whose block
    /// size and blocks-per-group agree is used, and the group descriptors
    /// are read from the table that follows it. As e2fsprogs does with a
    /// backup, the descriptors' lazy-init flags and `bg_itable_unused` are
    /// ignored (backups are not kept up to date) and their checksums not
    /// judged.
    pub fn open_with_superblock(bytes: &'a [u8], group: u32) -> Result<Self> {
        if group == 0 {
            return Self::open(bytes);
        }
        let mut last_err = None;
        for log in 0..=6u32 {
            let bs = 1024u64 << log;
            let first_data_block = u64::from(bs == 1024);
            let bpg = bs * 8;
            let Some(byte) = u64::from(group)
                .checked_mul(bpg)
                .and_then(|b| b.checked_add(first_data_block))
                .and_then(|b| b.checked_mul(bs))
            else {
                continue;
            };
            let Ok(raw) = slice_at(bytes, byte, SUPERBLOCK_SIZE, "backup superblock") else {
                continue;
            };
            match Superblock::parse(raw) {
                Ok(sb)
                    if u64::from(sb.block_size()) == bs
                        && u64::from(sb.f.blocks_per_group) == bpg =>
                {
                    return Self::from_superblock(bytes, sb, group);
                }
                Ok(_) => {}
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| {
            FormatError::corrupt(
                "backup superblock",
                format!("no superblock copy found for group {group}"),
            )
        }))
    }

    fn from_superblock(bytes: &'a [u8], sb: Superblock, sb_group: u32) -> Result<Self> {
        let features = sb.features();
        let unknown = features.unknown_incompat();
        if !unknown.is_empty() {
            return Err(FormatError::unsupported(
                "file system",
                format!(
                    "unknown incompatible features: {}",
                    Features::incompat_names(unknown).join(", ")
                ),
            ));
        }
        let geo = Geometry::new(&sb);
        let block_size = usize::try_from(sb.block_size())
            .map_err(|_| FormatError::corrupt("superblock", "block size"))?;
        let blocks_count = sb.blocks_count();
        let need = blocks_count.checked_mul(u64::from(sb.block_size()));
        let have = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        match need {
            Some(n) if n <= have => {}
            _ => {
                return Err(FormatError::corrupt(
                    "image",
                    format!(
                        "the file system has {blocks_count} blocks of {block_size} bytes, \
                         the image only {have} bytes"
                    ),
                ))
            }
        }
        let mut view = ImageView {
            bytes,
            fs_seed: sb.csum_seed(),
            metadata_csum: features.has_metadata_csum(),
            sb,
            geo,
            sb_group,
            groups: Vec::new(),
            block_size,
            blocks_count,
        };
        view.groups = view.read_group_descs()?;
        Ok(view)
    }

    /// Block holding descriptor block `i`, for the table after the
    /// superblock copy this view was opened with (e2fsprogs'
    /// `ext2fs_descriptor_block_loc2`).
    fn gdt_block(&self, i: u32) -> u64 {
        if self.sb_group == 0 {
            return self.geo.gdt_block_location(i);
        }
        let (sb_block, _) = self.geo.superblock_location(self.sb_group);
        let meta_bg = self.sb.features().incompat.contains(Incompat::META_BG);
        if !meta_bg || i < self.sb.f.first_meta_bg {
            return sb_block + 1 + u64::from(i);
        }
        // A backup of a meta_bg descriptor block: the copy in the second
        // group of its meta group.
        let first_group = i.saturating_mul(self.geo.descs_per_block);
        let second = first_group.saturating_add(1);
        self.geo.group_first_block(second) + u64::from(self.geo.has_super(second))
    }

    fn read_group_descs(&self) -> Result<Vec<GroupInfo>> {
        let features = self.sb.features();
        let ds = usize::try_from(self.geo.desc_size)
            .map_err(|_| FormatError::corrupt("superblock", "descriptor size"))?;
        let dpb = self.geo.descs_per_block;
        let groups = self.geo.groups_count;
        let mut out = Vec::with_capacity(to_usize(u64::from(groups), "group count")?);
        for i in 0..self.geo.gdt_blocks {
            let loc = self.gdt_block(i);
            let block = self.block(loc).map_err(|_| {
                FormatError::corrupt(
                    "group descriptor table",
                    format!("descriptor block {i} at block {loc} lies outside the file system"),
                )
            })?;
            for (j, raw) in (0..dpb).zip(block.chunks_exact(ds)) {
                let g = i * dpb + j;
                if g >= groups {
                    break;
                }
                let mut desc = GroupDesc::parse(raw, ds)?;
                let mut csum_ok =
                    verify_group_desc_csum(&features, self.fs_seed, &self.sb.f.uuid, g, raw);
                if self.sb_group != 0 && features.has_group_csum() {
                    // Backup descriptors are not kept up to date: like
                    // e2fsprogs' ext2fs_open2, trust no lazy-init state
                    // from them (and do not judge their checksums).
                    desc.flags &= !(BG_INODE_UNINIT | BG_BLOCK_UNINIT);
                    desc.itable_unused = 0;
                    csum_ok = true;
                }
                out.push(GroupInfo { desc, csum_ok });
            }
        }
        if out.len() != to_usize(u64::from(groups), "group count")? {
            return Err(FormatError::corrupt(
                "group descriptor table",
                format!("{} descriptors for {groups} groups", out.len()),
            ));
        }
        Ok(out)
    }

    /// The whole image.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    pub fn features(&self) -> Features {
        self.sb.features()
    }

    /// The group whose superblock copy this view was opened with.
    pub fn superblock_group(&self) -> u32 {
        self.sb_group
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Block size in bytes, as a `u64` for block arithmetic.
    pub(crate) fn bs64(&self) -> u64 {
        u64::from(self.sb.block_size())
    }

    pub fn blocks_count(&self) -> u64 {
        self.blocks_count
    }

    /// The metadata checksum seed.
    pub fn csum_seed(&self) -> u32 {
        self.fs_seed
    }

    pub fn has_metadata_csum(&self) -> bool {
        self.metadata_csum
    }

    /// Every group's descriptor and checksum verdict.
    pub fn groups(&self) -> &[GroupInfo] {
        &self.groups
    }

    /// Groups whose descriptor checksum is wrong.
    pub fn bad_group_descs(&self) -> Vec<u32> {
        (0u32..)
            .zip(&self.groups)
            .filter(|(_, g)| !g.csum_ok)
            .map(|(i, _)| i)
            .collect()
    }

    /// RO_COMPAT features set that fext cannot write (a mount must be read-only).
    pub fn unknown_ro_compat(&self) -> RoCompat {
        self.features().unknown_ro_compat()
    }

    pub(crate) fn has_compat(&self, f: Compat) -> bool {
        self.features().compat.contains(f)
    }

    pub(crate) fn has_incompat(&self, f: Incompat) -> bool {
        self.features().incompat.contains(f)
    }

    pub(crate) fn has_ro_compat(&self, f: RoCompat) -> bool {
        self.features().ro_compat.contains(f)
    }

    /// Block `n` (range-checked against the file system size).
    pub fn block(&self, n: u64) -> Result<&'a [u8]> {
        self.blocks(n, 1)
    }

    /// `count` consecutive blocks from `first`, as one slice.
    pub fn blocks(&self, first: u64, count: u64) -> Result<&'a [u8]> {
        let end = first.checked_add(count);
        if count == 0 || end.is_none_or(|e| e > self.blocks_count) {
            return Err(FormatError::corrupt(
                "block number",
                format!(
                    "blocks {first}+{count} outside the file system ({} blocks)",
                    self.blocks_count
                ),
            ));
        }
        let bs = self.bs64();
        let start = first.checked_mul(bs);
        let len = count.checked_mul(bs);
        match (start, len) {
            (Some(s), Some(l)) => slice_at(self.bytes, s, to_usize(l, "block range")?, "block"),
            _ => Err(FormatError::corrupt("block number", format!("{first}"))),
        }
    }

    /// The on-disk bytes of inode `ino` (`s_inode_size` of them), checked
    /// only for range: the inode number, and the inode table of its group
    /// inside the file system.
    pub fn inode_raw(&self, ino: u32) -> Result<&'a [u8]> {
        if ino == 0 || ino > self.sb.f.inodes_count {
            return Err(FormatError::corrupt(
                "inode number",
                format!(
                    "{ino} outside 1..={} of the file system",
                    self.sb.f.inodes_count
                ),
            ));
        }
        let (g, idx) = self.geo.inode_location(ino);
        let info = self
            .groups
            .get(to_usize(u64::from(g), "group")?)
            .ok_or_else(|| FormatError::corrupt("inode number", format!("{ino}: no group {g}")))?;
        let table = info.desc.inode_table;
        let table_end = table.checked_add(u64::from(self.geo.inode_table_blocks));
        if table < self.geo.first_data_block || table_end.is_none_or(|e| e > self.blocks_count) {
            return Err(FormatError::corrupt(
                "group descriptor",
                format!("group {g}: inode table at block {table} lies outside the file system"),
            ));
        }
        let isz = u64::from(self.geo.inode_size);
        let off = table
            .checked_mul(self.bs64())
            .and_then(|o| o.checked_add(u64::from(idx) * isz))
            .ok_or_else(|| FormatError::corrupt("inode table", "offset overflow"))?;
        slice_at(self.bytes, off, to_usize(isz, "inode size")?, "inode")
    }

    /// Inode `ino`, parsed, with its checksum verified on metadata_csum
    /// file systems ([`FormatError::BadChecksum`]; an all-zero inode passes,
    /// as in e2fsprogs). Inodes of a group whose (checksummed) descriptor
    /// says they are uninitialized or unused are refused.
    pub fn inode(&self, ino: u32) -> Result<Inode> {
        let raw = self.inode_raw(ino)?;
        let (g, idx) = self.geo.inode_location(ino);
        if self.features().has_group_csum() {
            if let Some(info) = self.groups.get(to_usize(u64::from(g), "group")?) {
                let ipg = self.geo.inodes_per_group;
                if info.csum_ok && info.desc.has_flag(BG_INODE_UNINIT) {
                    return Err(FormatError::corrupt(
                        "inode",
                        format!("{ino} lies in group {g}, whose inode table is uninitialized"),
                    ));
                }
                if info.csum_ok
                    && info.desc.itable_unused <= ipg
                    && idx >= ipg - info.desc.itable_unused
                {
                    return Err(FormatError::corrupt(
                        "inode",
                        format!("{ino} lies in the unused tail of group {g}'s inode table"),
                    ));
                }
            }
        }
        if self.metadata_csum && self.created_by_linux() {
            self.verify_inode_csum(ino, raw)?;
        }
        Inode::parse(raw, usize::from(self.sb.inode_size()))
    }

    /// The kernel checks inode checksums only on file systems created by
    /// Linux (`s_creator_os` 0).
    fn created_by_linux(&self) -> bool {
        self.sb.f.creator_os == 0
    }

    fn verify_inode_csum(&self, ino: u32, raw: &[u8]) -> Result<()> {
        let isz = usize::from(self.sb.inode_size());
        if raw.len() < isz || isz < GOOD_OLD_INODE_SIZE {
            return Err(FormatError::TooShort {
                what: "inode",
                need: isz,
                have: raw.len(),
            });
        }
        let computed = inode_csum(self.fs_seed, ino, raw, isz);
        let lo = u32::from(u16::from_le_bytes([
            raw[INODE_CSUM_LO],
            raw[INODE_CSUM_LO + 1],
        ]));
        let has_hi = isz > GOOD_OLD_INODE_SIZE && u16::from_le_bytes([raw[0x80], raw[0x81]]) >= 4;
        let (stored, want) = if has_hi {
            let hi = u32::from(u16::from_le_bytes([
                raw[INODE_CSUM_HI],
                raw[INODE_CSUM_HI + 1],
            ]));
            (lo | hi << 16, computed)
        } else {
            (lo, computed & 0xffff)
        };
        if stored == want || raw[..GOOD_OLD_INODE_SIZE].iter().all(|&b| b == 0) {
            return Ok(());
        }
        Err(FormatError::BadChecksum {
            what: "inode",
            stored,
            computed: want,
        })
    }

    /// The per-inode checksum seed (`crc32c(fs_seed, ino, generation)`).
    pub fn inode_csum_seed(&self, ino: u32, inode: &Inode) -> u32 {
        crc32c(
            crc32c(self.fs_seed, &ino.to_le_bytes()),
            &inode.generation.to_le_bytes(),
        )
    }

    /// The per-inode seed when metadata_csum is on, else `None`.
    pub(crate) fn csum_seed_for(&self, ino: u32, inode: &Inode) -> Option<u32> {
        self.metadata_csum.then(|| self.inode_csum_seed(ino, inode))
    }
}

/// `len` bytes at byte offset `off` of `bytes`, or a `TooShort` error.
fn slice_at<'b>(bytes: &'b [u8], off: u64, len: usize, what: &'static str) -> Result<&'b [u8]> {
    let start = usize::try_from(off).ok();
    let end = start.and_then(|s| s.checked_add(len));
    match (start, end) {
        (Some(s), Some(e)) if e <= bytes.len() => Ok(&bytes[s..e]),
        _ => Err(FormatError::TooShort {
            what,
            need: end.unwrap_or(usize::MAX),
            have: bytes.len(),
        }),
    }
}

#[cfg(test)]
mod tests;
