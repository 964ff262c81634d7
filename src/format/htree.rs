//! Hashed (htree-indexed) directories: the index blocks, their checksum,
//! lookup in an index node, and a builder for whole indexed directories.
//!
//! An indexed directory (inode flag `EXT4_INDEX_FL` 0x1000) is a linear
//! directory whose block 0 is replaced by an index root. The index maps name
//! hashes (see `dx_hash`) to logical blocks; it is hidden from linear readers
//! inside fake directory entries. Leaf blocks are ordinary directory blocks
//! (see `dir`), each holding the names of one hash range.
//!
//! ```text
//! dx_root (logical block 0)
//!   0x00  "." entry: inode, rec_len 12, name_len 1, file_type 2, ".\0\0\0"
//!   0x0c  ".." entry: inode, rec_len = block_size - 12, name_len 2, file_type 2, "..\0\0"
//!   0x18  dx_root_info.reserved_zero    u32  0
//!   0x1c  dx_root_info.hash_version     u8   DX_HASH_* (0..=2; signedness from the superblock)
//!   0x1d  dx_root_info.info_length      u8   8
//!   0x1e  dx_root_info.indirect_levels  u8   0 = entries point at leaves
//!   0x1f  dx_root_info.unused_flags     u8   bit 0 would be an unimplemented flag
//!   0x20  dx_countlimit.limit u16, .count u16   (overlays entries[0].hash)
//!   0x24  entries[0].block u32, then entries[1..count] as {hash u32, block u32}
//!
//! dx_node (interior block)
//!   0x00  fake entry: inode 0, rec_len = block_size, name_len 0, file_type 0
//!   0x08  dx_countlimit.limit u16, .count u16   (overlays entries[0].hash)
//!   0x0c  entries[0].block u32, then entries[1..count]
//!
//! dx_tail (metadata_csum), right after `limit` entries:
//!   +0x0  dt_reserved  u32  0
//!   +0x4  dt_checksum  u32  crc32c(inode_seed, block[..count_offset + count * 8])
//!                           continued over dt_reserved and a zero u32
//! ```
//!
//! Invariants (as the kernel's `dx_probe` and e2fsck check them): `limit`
//! equals the value computed from the block size ([`DxGeometry`]), `1 <= count
//! <= limit`, hashes are non-decreasing, `indirect_levels` is below the
//! level cap (2 levels, 3 with largedir), `info_length` is 8. Entry 0 has the
//! implicit hash 0 (or, in a node, its parent entry's hash). A hash with the
//! low bit set marks a leaf that continues a run of equal hashes from the
//! previous leaf (the "continuation bit"); name hashes are always even.

use super::bytes::{put_u16, put_u32, require_len, u16_at, u32_at};
use super::csum::crc32c;
use super::dir::{
    rec_len_from_disk, rec_len_to_disk, validate_name, FileType, LeafBuilder, NewEntry,
};
use super::dx_hash::{dx_hash, DxHashVersion};
use super::error::{FormatError, Result};

/// `EXT4_INDEX_FL`: the inode flag of an indexed directory.
pub const INODE_INDEX_FL: u32 = 0x1000;
/// Size of one `dx_entry`.
pub const DX_ENTRY_LEN: usize = 8;
/// Size of `dx_tail`.
pub const DX_TAIL_LEN: usize = 8;
/// Offset of `dx_countlimit` in a root block.
pub const ROOT_COUNT_OFFSET: usize = 0x20;
/// Offset of `dx_countlimit` in a node block.
pub const NODE_COUNT_OFFSET: usize = 0x08;
/// `dx_root_info.info_length`.
pub const DX_ROOT_INFO_LEN: u8 = 8;
/// Index levels (root included) without largedir (`EXT4_HTREE_LEVEL_COMPAT`).
pub const HTREE_LEVEL_COMPAT: u8 = 2;
/// Index levels (root included) with largedir (`EXT4_HTREE_LEVEL`).
pub const HTREE_LEVEL_LARGEDIR: u8 = 3;

const OFF_DOT: usize = 0x00;
const OFF_DOTDOT: usize = 0x0c;
const OFF_RESERVED_ZERO: usize = 0x18; // dx_root_info.reserved_zero
const OFF_HASH_VERSION: usize = 0x1c; // dx_root_info.hash_version
const OFF_INFO_LENGTH: usize = 0x1d; // dx_root_info.info_length
const OFF_INDIRECT_LEVELS: usize = 0x1e; // dx_root_info.indirect_levels
const OFF_UNUSED_FLAGS: usize = 0x1f; // dx_root_info.unused_flags
const OFF_LIMIT: usize = 0x0; // dx_countlimit.limit (relative)
const OFF_COUNT: usize = 0x2; // dx_countlimit.count (relative)
const OFF_DT_CHECKSUM: usize = 0x4; // dx_tail.dt_checksum (relative)

/// Index capacities of a file system, computed as the kernel's
/// `dx_root_limit` / `dx_node_limit` do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DxGeometry {
    pub block_size: usize,
    /// metadata_csum: every index block gives one entry slot to the dx_tail.
    pub metadata_csum: bool,
    /// largedir: three index levels instead of two.
    pub largedir: bool,
}

impl DxGeometry {
    /// Entries a root holds: (block_size - 12 - 12 - 8 [- 8]) / 8.
    pub fn root_limit(&self) -> usize {
        let tail = if self.metadata_csum { DX_TAIL_LEN } else { 0 };
        self.block_size.saturating_sub(ROOT_COUNT_OFFSET + tail) / DX_ENTRY_LEN
    }

    /// Entries a node holds: (block_size - 8 [- 8]) / 8.
    pub fn node_limit(&self) -> usize {
        let tail = if self.metadata_csum { DX_TAIL_LEN } else { 0 };
        self.block_size.saturating_sub(NODE_COUNT_OFFSET + tail) / DX_ENTRY_LEN
    }

    /// The largest valid `indirect_levels` (1, or 2 with largedir).
    pub fn max_indirect_levels(&self) -> u8 {
        if self.largedir {
            HTREE_LEVEL_LARGEDIR - 1
        } else {
            HTREE_LEVEL_COMPAT - 1
        }
    }

    fn check_size(&self, what: &'static str) -> Result<()> {
        if !(1024..=65536).contains(&self.block_size) || !self.block_size.is_power_of_two() {
            return Err(FormatError::unsupported(
                what,
                format!("block size {}", self.block_size),
            ));
        }
        Ok(())
    }

    fn check_block(&self, block: &[u8], what: &'static str) -> Result<()> {
        self.check_size(what)?;
        if block.len() != self.block_size {
            return Err(FormatError::TooShort {
                what,
                need: self.block_size,
                have: block.len(),
            });
        }
        Ok(())
    }
}

/// One index entry: names hashing to `hash` or above (up to the next entry's
/// hash) live under logical block `block` of the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DxEntry {
    pub hash: u32,
    pub block: u32,
}

/// A parsed index root (logical block 0 of an indexed directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DxRoot {
    /// Inode of the "." entry (the directory itself).
    pub dot_inode: u32,
    /// Inode of the ".." entry (the parent).
    pub dotdot_inode: u32,
    /// `hash_version` as stored (0..=2).
    pub hash_version: u8,
    pub indirect_levels: u8,
    pub unused_flags: u8,
    /// The entries (`count` of them); `entries[0].hash` is 0.
    pub entries: Vec<DxEntry>,
}

/// A parsed interior index node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DxNode {
    /// The entries (`count` of them); `entries[0].hash` is 0 here, its
    /// real lower bound is the parent entry's hash.
    pub entries: Vec<DxEntry>,
}

fn corrupt(what: &'static str, detail: impl Into<String>) -> FormatError {
    FormatError::corrupt(what, detail)
}

/// Reads count/limit and the entries at `count_offset`, validating them.
fn parse_entries(
    block: &[u8],
    count_offset: usize,
    expected_limit: usize,
    what: &'static str,
) -> Result<Vec<DxEntry>> {
    let limit = usize::from(u16_at(block, count_offset + OFF_LIMIT));
    let count = usize::from(u16_at(block, count_offset + OFF_COUNT));
    if limit != expected_limit {
        return Err(corrupt(
            what,
            format!("limit {limit}, expected {expected_limit}"),
        ));
    }
    if count == 0 || count > limit {
        return Err(corrupt(what, format!("count {count} with limit {limit}")));
    }
    // limit was computed to fit the block, so every entry is inside it.
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let off = count_offset + i * DX_ENTRY_LEN;
        let hash = if i == 0 { 0 } else { u32_at(block, off) };
        let child = u32_at(block, off + 4);
        if child == 0 {
            return Err(corrupt(what, format!("entry {i} points at block 0")));
        }
        if let Some(prev) = entries.last().map(|e: &DxEntry| e.hash) {
            if hash < prev {
                return Err(corrupt(
                    what,
                    format!("entry {i}: hash {hash:#x} below the previous {prev:#x}"),
                ));
            }
        }
        entries.push(DxEntry { hash, block: child });
    }
    Ok(entries)
}

/// Writes count/limit, the entries, zeroes the unused slots and (with
/// metadata_csum) writes an empty dx_tail.
fn encode_entries(
    block: &mut [u8],
    count_offset: usize,
    limit: usize,
    entries: &[DxEntry],
    metadata_csum: bool,
    what: &'static str,
) -> Result<()> {
    if entries.is_empty() || entries.len() > limit {
        return Err(corrupt(
            what,
            format!("{} entries with limit {limit}", entries.len()),
        ));
    }
    let limit16 = u16::try_from(limit).map_err(|_| corrupt(what, "limit above 65535"))?;
    let count16 = u16::try_from(entries.len()).map_err(|_| corrupt(what, "count above 65535"))?;
    for (i, e) in entries.iter().enumerate() {
        let off = count_offset + i * DX_ENTRY_LEN;
        if i > 0 {
            put_u32(block, off, e.hash);
        }
        put_u32(block, off + 4, e.block);
    }
    put_u16(block, count_offset + OFF_LIMIT, limit16);
    put_u16(block, count_offset + OFF_COUNT, count16);
    let used_end = count_offset + entries.len() * DX_ENTRY_LEN;
    let tail = count_offset + limit * DX_ENTRY_LEN;
    block[used_end..tail].fill(0);
    if metadata_csum {
        block[tail..tail + DX_TAIL_LEN].fill(0);
    }
    Ok(())
}

fn write_fake_dirent(block: &mut [u8], off: usize, inode: u32, rec_len: usize, name: &[u8]) {
    let bs = block.len();
    put_u32(block, off, inode);
    put_u16(block, off + 4, rec_len_to_disk(rec_len, bs));
    block[off + 6] = u8::try_from(name.len()).unwrap_or(0);
    block[off + 7] = FileType::Directory.to_raw();
    block[off + 8..off + 12].fill(0);
    block[off + 8..off + 8 + name.len()].copy_from_slice(name);
}

impl DxRoot {
    /// Parses and validates a root block.
    pub fn parse(block: &[u8], geom: &DxGeometry) -> Result<DxRoot> {
        const WHAT: &str = "htree root";
        geom.check_block(block, WHAT)?;
        let bs = block.len();
        let dot_len = rec_len_from_disk(u16_at(block, OFF_DOT + 4), bs);
        if dot_len != 12 || block[OFF_DOT + 6] != 1 || block[OFF_DOT + 8] != b'.' {
            return Err(corrupt(WHAT, "first entry is not a 12-byte \".\""));
        }
        let dotdot_len = rec_len_from_disk(u16_at(block, OFF_DOTDOT + 4), bs);
        if dotdot_len != bs - 12
            || block[OFF_DOTDOT + 6] != 2
            || &block[OFF_DOTDOT + 8..OFF_DOTDOT + 10] != b".."
        {
            return Err(corrupt(
                WHAT,
                "second entry is not a \"..\" spanning the block",
            ));
        }
        if u32_at(block, OFF_RESERVED_ZERO) != 0 {
            return Err(corrupt(WHAT, "reserved_zero is not zero"));
        }
        let info_length = block[OFF_INFO_LENGTH];
        if info_length != DX_ROOT_INFO_LEN {
            return Err(corrupt(WHAT, format!("info_length {info_length}")));
        }
        let hash_version = block[OFF_HASH_VERSION];
        match hash_version {
            0..=2 => {}
            6 => {
                return Err(FormatError::unsupported(
                    WHAT,
                    "siphash (casefolded encrypted directory)",
                ))
            }
            v => return Err(corrupt(WHAT, format!("hash version {v}"))),
        }
        let unused_flags = block[OFF_UNUSED_FLAGS];
        if unused_flags & 1 != 0 {
            return Err(FormatError::unsupported(WHAT, "unimplemented hash flags"));
        }
        let indirect_levels = block[OFF_INDIRECT_LEVELS];
        if indirect_levels > geom.max_indirect_levels() {
            return Err(corrupt(
                WHAT,
                format!(
                    "{indirect_levels} indirect levels (max {})",
                    geom.max_indirect_levels()
                ),
            ));
        }
        let entries = parse_entries(block, ROOT_COUNT_OFFSET, geom.root_limit(), WHAT)?;
        Ok(DxRoot {
            dot_inode: u32_at(block, OFF_DOT),
            dotdot_inode: u32_at(block, OFF_DOTDOT),
            hash_version,
            indirect_levels,
            unused_flags,
            entries,
        })
    }

    /// Writes the whole root block (checksum field 0: call [`set_dx_csum`]).
    pub fn encode(&self, block: &mut [u8], geom: &DxGeometry) -> Result<()> {
        const WHAT: &str = "htree root";
        geom.check_block(block, WHAT)?;
        if self.indirect_levels > geom.max_indirect_levels() {
            return Err(corrupt(WHAT, "too many indirect levels"));
        }
        let bs = block.len();
        write_fake_dirent(block, OFF_DOT, self.dot_inode, 12, b".");
        write_fake_dirent(block, OFF_DOTDOT, self.dotdot_inode, bs - 12, b"..");
        put_u32(block, OFF_RESERVED_ZERO, 0);
        block[OFF_HASH_VERSION] = self.hash_version;
        block[OFF_INFO_LENGTH] = DX_ROOT_INFO_LEN;
        block[OFF_INDIRECT_LEVELS] = self.indirect_levels;
        block[OFF_UNUSED_FLAGS] = self.unused_flags;
        encode_entries(
            block,
            ROOT_COUNT_OFFSET,
            geom.root_limit(),
            &self.entries,
            geom.metadata_csum,
            WHAT,
        )
    }
}

impl DxNode {
    /// Parses and validates an interior node block.
    pub fn parse(block: &[u8], geom: &DxGeometry) -> Result<DxNode> {
        const WHAT: &str = "htree node";
        geom.check_block(block, WHAT)?;
        let rec_len = rec_len_from_disk(u16_at(block, 4), block.len());
        if u32_at(block, 0) != 0 || rec_len != block.len() || block[6] != 0 {
            return Err(corrupt(
                WHAT,
                "fake entry is not an empty record spanning the block",
            ));
        }
        let entries = parse_entries(block, NODE_COUNT_OFFSET, geom.node_limit(), WHAT)?;
        Ok(DxNode { entries })
    }

    /// Writes the whole node block (checksum field 0: call [`set_dx_csum`]).
    pub fn encode(&self, block: &mut [u8], geom: &DxGeometry) -> Result<()> {
        const WHAT: &str = "htree node";
        geom.check_block(block, WHAT)?;
        let bs = block.len();
        put_u32(block, 0, 0);
        put_u16(block, 4, rec_len_to_disk(bs, bs));
        block[6] = 0;
        block[7] = 0;
        encode_entries(
            block,
            NODE_COUNT_OFFSET,
            geom.node_limit(),
            &self.entries,
            geom.metadata_csum,
            WHAT,
        )
    }
}

/// Where `dx_countlimit` sits in an index block (the kernel's
/// `get_dx_countlimit`): 8 in a node (first record spans the block), 32 in
/// a root (a 12-byte "." then a ".." spanning the rest with a valid
/// dx_root_info); `None` for anything else.
pub fn dx_count_offset(block: &[u8]) -> Option<usize> {
    if block.len() < ROOT_COUNT_OFFSET + 4 {
        return None;
    }
    let bs = block.len();
    let first = rec_len_from_disk(u16_at(block, 4), bs);
    if first == bs {
        return Some(NODE_COUNT_OFFSET);
    }
    if first == 12
        && rec_len_from_disk(u16_at(block, OFF_DOTDOT + 4), bs) == bs - 12
        && u32_at(block, OFF_RESERVED_ZERO) == 0
        && block[OFF_INFO_LENGTH] == DX_ROOT_INFO_LEN
    {
        return Some(ROOT_COUNT_OFFSET);
    }
    None
}

/// (offset of the dx_tail, bytes covered before it) of an index block.
fn dx_tail_layout(block: &[u8]) -> Result<(usize, usize)> {
    const WHAT: &str = "htree index block";
    let count_offset =
        dx_count_offset(block).ok_or_else(|| corrupt(WHAT, "not a root or node block"))?;
    require_len(block, count_offset + 4, WHAT)?;
    let limit = usize::from(u16_at(block, count_offset + OFF_LIMIT));
    let count = usize::from(u16_at(block, count_offset + OFF_COUNT));
    let tail = count_offset + limit * DX_ENTRY_LEN;
    if tail + DX_TAIL_LEN > block.len() {
        return Err(corrupt(
            WHAT,
            format!("no room for the checksum tail (limit {limit})"),
        ));
    }
    if count > limit {
        return Err(corrupt(WHAT, format!("count {count} above limit {limit}")));
    }
    Ok((tail, count_offset + count * DX_ENTRY_LEN))
}

/// The checksum of a root or node block (the kernel's `ext4_dx_csum`):
/// crc32c from the inode seed over the header and the `count` used
/// entries, then over `dt_reserved` and a zero in place of `dt_checksum`.
pub fn dx_csum(block: &[u8], inode_seed: u32) -> Result<u32> {
    let (tail, covered) = dx_tail_layout(block)?;
    let csum = crc32c(inode_seed, &block[..covered]);
    let csum = crc32c(csum, &block[tail..tail + 4]);
    Ok(crc32c(csum, &[0u8; 4]))
}

/// Checks the dx_tail checksum of a root or node block.
pub fn verify_dx_csum(block: &[u8], inode_seed: u32) -> Result<()> {
    let computed = dx_csum(block, inode_seed)?;
    let (tail, _) = dx_tail_layout(block)?;
    let stored = u32_at(block, tail + OFF_DT_CHECKSUM);
    if stored != computed {
        return Err(FormatError::BadChecksum {
            what: "htree index block",
            stored,
            computed,
        });
    }
    Ok(())
}

/// Computes and stores the dx_tail checksum of a root or node block.
pub fn set_dx_csum(block: &mut [u8], inode_seed: u32) -> Result<()> {
    let computed = dx_csum(block, inode_seed)?;
    let (tail, _) = dx_tail_layout(block)?;
    put_u32(block, tail + OFF_DT_CHECKSUM, computed);
    Ok(())
}

/// The index of the entry to follow for `hash`: the last entry whose hash
/// is <= `hash` (entry 0 counts as hash 0), by binary search as in the
/// kernel's `dx_probe`. `entries` must not be empty (parsed ones never are);
/// returns 0 for an empty slice.
pub fn dx_find_child(entries: &[DxEntry], hash: u32) -> usize {
    if entries.len() <= 1 {
        return 0;
    }
    // Among entries[1..], count those with hash <= target.
    let rest = &entries[1..];
    rest.partition_point(|e| e.hash <= hash)
}

/// After searching the leaf under entry `i` for a name of hash `hash`
/// without finding it, whether the next leaf (under entry `i + 1`, possibly
/// in the next node) may hold it too: true when that entry's hash, without
/// the continuation bit, equals `hash` (the kernel's `ext4_htree_next_block`).
pub fn dx_continues(next_entry_hash: u32, hash: u32) -> bool {
    next_entry_hash & !1 == hash
}

// ---------------------------------------------------------------------------
// Building whole indexed directories

/// How to build an indexed directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HtreeParams {
    pub block_size: usize,
    /// The hash actually used (from `s_def_hash_version` and the superblock's
    /// unsigned-hash flag, see `DxHashVersion::effective`). The root stores
    /// its signed form (0..=2).
    pub hash_version: DxHashVersion,
    /// `s_hash_seed` as four words.
    pub hash_seed: [u32; 4],
    /// The directory inode's checksum seed on metadata_csum file systems.
    pub csum_seed: Option<u32>,
    /// largedir feature: allow a third index level.
    pub largedir: bool,
}

impl HtreeParams {
    pub fn geometry(&self) -> DxGeometry {
        DxGeometry {
            block_size: self.block_size,
            metadata_csum: self.csum_seed.is_some(),
            largedir: self.largedir,
        }
    }
}

/// Builds every block of an indexed directory holding `.` (`self_ino`),
/// `..` (`parent_ino`) and `entries` (names must be unique; `.`/`..` must not
/// be among them). Returns the blocks concatenated in logical order:
/// block 0 is the root, then the leaves in hash order, then the interior
/// nodes (if any). All checksums are set when `csum_seed` is given.
///
/// Leaves are filled completely in (hash, minor hash) order; a leaf whose
/// first hash equals the previous leaf's last hash is indexed with the
/// continuation bit (hash | 1), as e2fsck's rehash does. Directories that fit
/// in one block are better written linear (`dir::build_linear_dir`): the
/// kernel and e2fsck only index directories of more than one block.
pub fn build_htree_dir(
    self_ino: u32,
    parent_ino: u32,
    entries: &[NewEntry<'_>],
    params: &HtreeParams,
) -> Result<Vec<u8>> {
    let geom = params.geometry();
    let bs = params.block_size;
    geom.check_size("htree directory")?;

    let mut sorted: Vec<(u32, u32, &NewEntry<'_>)> = Vec::with_capacity(entries.len());
    for e in entries {
        validate_name(e.name)?;
        let (major, minor) = dx_hash(params.hash_version, e.name, &params.hash_seed);
        sorted.push((major, minor, e));
    }
    sorted.sort_by(|a, b| (a.0, a.1, a.2.name).cmp(&(b.0, b.1, b.2.name)));

    // Leaves, at logical blocks 1.. .
    let mut out = vec![0u8; bs];
    let mut index: Vec<DxEntry> = Vec::new();
    let mut rest = &sorted[..];
    let mut prev_last_hash: Option<u32> = None;
    loop {
        let leaf_no = u32::try_from(out.len() / bs)
            .map_err(|_| FormatError::unsupported("htree directory", "too many blocks"))?;
        let start = out.len();
        out.resize(start + bs, 0);
        let mut leaf = LeafBuilder::new(&mut out[start..], params.csum_seed)?;
        let first_hash = rest.first().map_or(0, |e| e.0);
        let mut last_hash = None;
        while let Some(&(hash, _, e)) = rest.first() {
            if !leaf.push(e)? {
                break;
            }
            last_hash = Some(hash);
            rest = &rest[1..];
        }
        if last_hash.is_none() && !rest.is_empty() {
            return Err(FormatError::TooShort {
                what: "htree leaf",
                need: rest[0].2.name.len() + 8,
                have: bs,
            });
        }
        leaf.finish()?;
        let continued = prev_last_hash == Some(first_hash);
        index.push(DxEntry {
            hash: if index.is_empty() {
                0
            } else {
                first_hash | u32::from(continued)
            },
            block: leaf_no,
        });
        prev_last_hash = last_hash;
        if rest.is_empty() {
            break;
        }
    }

    // Interior levels, bottom up, until the root can hold the top level.
    let mut levels: u8 = 0;
    while index.len() > geom.root_limit() {
        if levels >= geom.max_indirect_levels() {
            return Err(FormatError::unsupported(
                "htree directory",
                format!(
                    "{} leaves need more than {} index levels",
                    out.len() / bs - 1,
                    geom.max_indirect_levels() + 1
                ),
            ));
        }
        let mut upper = Vec::new();
        for chunk in index.chunks(geom.node_limit()) {
            let node_no = u32::try_from(out.len() / bs)
                .map_err(|_| FormatError::unsupported("htree directory", "too many blocks"))?;
            let start = out.len();
            out.resize(start + bs, 0);
            let node = DxNode {
                entries: chunk.to_vec(),
            };
            let block = &mut out[start..];
            node.encode(block, &geom)?;
            if let Some(seed) = params.csum_seed {
                set_dx_csum(block, seed)?;
            }
            upper.push(DxEntry {
                hash: chunk[0].hash,
                block: node_no,
            });
        }
        index = upper;
        levels += 1;
    }
    if let Some(first) = index.first_mut() {
        first.hash = 0;
    }

    let root = DxRoot {
        dot_inode: self_ino,
        dotdot_inode: parent_ino,
        hash_version: params.hash_version.stored(),
        indirect_levels: levels,
        unused_flags: 0,
        entries: index,
    };
    let block = &mut out[..bs];
    root.encode(block, &geom)?;
    if let Some(seed) = params.csum_seed {
        set_dx_csum(block, seed)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::dir::{self, inode_csum_seed};
    use crate::format::test_images::Image;

    const GEOMS: [(usize, bool, usize, usize); 4] = [
        (1024, false, 124, 127),
        (1024, true, 123, 126),
        (4096, false, 508, 511),
        (4096, true, 507, 510),
    ];

    #[test]
    fn limits_match_the_kernel_formulas() {
        for (bs, csum, root, node) in GEOMS {
            let g = DxGeometry {
                block_size: bs,
                metadata_csum: csum,
                largedir: false,
            };
            assert_eq!((g.root_limit(), g.node_limit()), (root, node));
            assert_eq!(g.max_indirect_levels(), 1);
        }
        let g = DxGeometry {
            block_size: 65536,
            metadata_csum: true,
            largedir: true,
        };
        assert_eq!((g.root_limit(), g.node_limit()), (8187, 8190));
        assert_eq!(g.max_indirect_levels(), 2);
    }

    #[test]
    fn child_search_picks_the_last_entry_not_above_the_hash() {
        let e = |hash, block| DxEntry { hash, block };
        let entries = [e(0, 1), e(100, 2), e(200, 3), e(201, 4), e(300, 5)];
        assert_eq!(dx_find_child(&entries, 0), 0);
        assert_eq!(dx_find_child(&entries, 99), 0);
        assert_eq!(dx_find_child(&entries, 100), 1);
        assert_eq!(dx_find_child(&entries, 200), 2);
        assert_eq!(dx_find_child(&entries, 202), 3);
        assert_eq!(dx_find_child(&entries, u32::MAX), 4);
        assert_eq!(dx_find_child(&entries[..1], 7), 0);
        assert_eq!(dx_find_child(&[], 7), 0);
        assert!(dx_continues(201, 200));
        assert!(dx_continues(200, 200));
        assert!(!dx_continues(202, 200));
    }

    /// Everything a walk of an indexed directory found.
    struct Walk {
        root: DxRoot,
        /// (leaf logical block, lowest hash allowed, next range start or None).
        leaves: Vec<(u32, u32, Option<u32>)>,
        nodes: Vec<u32>,
    }

    /// Walks the index of a directory held in memory (`blocks[i]` = logical
    /// block i), checking every index block's structure and, with a seed,
    /// checksum. Iterative, bounded by the level count.
    fn walk(blocks: &[Vec<u8>], geom: &DxGeometry, seed: Option<u32>) -> Walk {
        let root = DxRoot::parse(&blocks[0], geom).unwrap();
        if let Some(s) = seed {
            verify_dx_csum(&blocks[0], s).unwrap();
        }
        // Each level: list of (entries, upper bound of the parent range).
        let mut level: Vec<(Vec<DxEntry>, u32, Option<u32>)> =
            vec![(root.entries.clone(), 0, None)];
        let mut nodes = Vec::new();
        for _ in 0..root.indirect_levels {
            let mut next = Vec::new();
            for (entries, lo, hi) in &level {
                for (i, e) in entries.iter().enumerate() {
                    let b = &blocks[e.block as usize];
                    let node = DxNode::parse(b, geom).unwrap();
                    if let Some(s) = seed {
                        verify_dx_csum(b, s).unwrap();
                    }
                    nodes.push(e.block);
                    let start = if i == 0 { *lo } else { e.hash };
                    let end = entries.get(i + 1).map(|n| n.hash).or(*hi);
                    next.push((node.entries, start, end));
                }
            }
            level = next;
        }
        let mut leaves = Vec::new();
        for (entries, lo, hi) in &level {
            for (i, e) in entries.iter().enumerate() {
                let start = if i == 0 { *lo } else { e.hash };
                let end = entries.get(i + 1).map(|n| n.hash).or(*hi);
                leaves.push((e.block, start, end));
            }
        }
        Walk {
            root,
            leaves,
            nodes,
        }
    }

    /// Finds `name` by hash through the index as the kernel does: descend
    /// by binary search, then scan leaves while the next one continues the hash.
    fn lookup(
        blocks: &[Vec<u8>],
        geom: &DxGeometry,
        version: DxHashVersion,
        seed: &[u32; 4],
        csum: bool,
        name: &[u8],
    ) -> Option<u32> {
        let (hash, _) = dx_hash(version, name, seed);
        let root = DxRoot::parse(&blocks[0], geom).unwrap();
        // Path of (entries, chosen index), root first.
        let mut path: Vec<(Vec<DxEntry>, usize)> = Vec::new();
        let mut entries = root.entries;
        for _ in 0..=root.indirect_levels {
            let i = dx_find_child(&entries, hash);
            let child = entries[i].block;
            path.push((entries, i));
            if path.len() <= usize::from(root.indirect_levels) {
                entries = DxNode::parse(&blocks[child as usize], geom)
                    .unwrap()
                    .entries;
            } else {
                entries = Vec::new();
            }
        }
        loop {
            let (entries, i) = path.last().unwrap();
            let leaf = &blocks[entries[*i].block as usize];
            if let Some(e) = dir::find_entry(leaf, csum, name).unwrap() {
                return Some(e.inode);
            }
            // Advance to the next leaf: find the deepest level with a next entry.
            let mut depth = path.len();
            loop {
                if depth == 0 {
                    return None;
                }
                let (entries, i) = &path[depth - 1];
                if i + 1 < entries.len() {
                    break;
                }
                depth -= 1;
            }
            let (entries, i) = &mut path[depth - 1];
            *i += 1;
            if !dx_continues(entries[*i].hash, hash) {
                return None;
            }
            // Re-descend along first entries.
            let mut child = entries[*i].block;
            path.truncate(depth);
            while path.len()
                < usize::from(DxRoot::parse(&blocks[0], geom).unwrap().indirect_levels) + 1
            {
                let node = DxNode::parse(&blocks[child as usize], geom).unwrap();
                child = node.entries[0].block;
                path.push((node.entries, 0));
            }
        }
    }

    /// Reads a directory's logical blocks from an image.
    fn dir_blocks(img: &Image, path: &str) -> Vec<Vec<u8>> {
        img.file_blocks(path)
            .iter()
            .map(|&b| img.read_block(b))
            .collect()
    }

    /// Parses the (hash, minor, name) triples of `debugfs htree` leaf lines.
    fn debugfs_hashes(dump: &str) -> Vec<(u32, u32, String)> {
        let toks: Vec<&str> = dump.split_whitespace().collect();
        let mut out = Vec::new();
        for w in toks.windows(3) {
            let hashes = w[0].strip_prefix("0x").and_then(|h| h.split_once('-'));
            if let (Some((major, minor)), true) = (hashes, w[1].starts_with('(')) {
                out.push((
                    u32::from_str_radix(major, 16).unwrap(),
                    u32::from_str_radix(minor, 16).unwrap(),
                    w[2].to_string(),
                ));
            }
        }
        out
    }

    /// An image with directory `d` of `n` entries indexed by `e2fsck -fyD`.
    fn e2fsck_indexed_dir(bs: usize, opts: &[&str], setup: &str, n: usize, pad: &str) -> Image {
        let img = Image::mkfs("htree-real", 64, bs, opts);
        if !setup.is_empty() {
            img.debugfs_script(setup);
        }
        img.mkdir_with_generation("d", 0x0bad_cafe);
        let mut script = String::from("cd d\n");
        for i in 0..n {
            script.push_str(&format!("mknod f{i:05}{pad} p\n"));
        }
        img.debugfs_script(&script);
        img.e2fsck_rehash();
        let (clean, text) = img.e2fsck_check();
        assert!(clean, "{text}");
        img
    }

    fn check_real_htree(
        bs: usize,
        opts: &[&str],
        setup: &str,
        n: usize,
        pad: &str,
        levels: u8,
    ) -> DxHashVersion {
        let img = e2fsck_indexed_dir(bs, opts, setup, n, pad);
        let csum = !opts.contains(&"^metadata_csum");
        let geom = DxGeometry {
            block_size: bs,
            metadata_csum: csum,
            largedir: false,
        };
        let blocks = dir_blocks(&img, "d");
        let seed = csum.then(|| img.inode_seed("d"));
        let (ino, generation) = img.inode_and_generation("d");
        assert_eq!(
            seed,
            csum.then(|| inode_csum_seed(img.fs_seed(), ino, generation))
        );
        let w = walk(&blocks, &geom, seed);
        assert_eq!(w.root.indirect_levels, levels);
        assert_eq!((w.root.dot_inode, w.root.dotdot_inode), (ino, 2));
        let version = DxHashVersion::effective(w.root.hash_version, img.unsigned_hash()).unwrap();
        let hash_seed = img.hash_seed();
        assert_eq!(w.leaves.len() + w.nodes.len() + 1, blocks.len());

        // Every leaf: checksum, and each name's hash inside the leaf's range.
        let mut names = 0;
        for &(b, lo, hi) in &w.leaves {
            let leaf = &blocks[b as usize];
            if let Some(s) = seed {
                dir::verify_dir_block_csum(leaf, s).unwrap();
            }
            for r in dir::live_entries(leaf, csum) {
                let e = r.unwrap();
                let (h, _) = dx_hash(version, e.name, &hash_seed);
                assert!(h >= lo & !1, "{:?} below its leaf range", e.name);
                if let Some(hi) = hi {
                    assert!(h <= hi & !1, "{:?} above its leaf range", e.name);
                }
                names += 1;
            }
        }
        assert_eq!(names, n);

        // Our hashes equal the ones debugfs prints for every name.
        let dump = img.debugfs("htree d");
        let printed = debugfs_hashes(&dump);
        assert_eq!(printed.len(), n);
        for (major, minor, name) in &printed {
            assert_eq!(
                dx_hash(version, name.as_bytes(), &hash_seed),
                (*major, *minor),
                "{name}"
            );
        }
        // Lookup through the index finds every name, and not a missing one.
        for i in (0..n).step_by(7) {
            let name = format!("f{i:05}{pad}");
            assert!(lookup(&blocks, &geom, version, &hash_seed, csum, name.as_bytes()).is_some());
        }
        assert_eq!(
            lookup(&blocks, &geom, version, &hash_seed, csum, b"missing"),
            None
        );

        // A flipped bit anywhere in the covered part of an index block fails.
        if let Some(s) = seed {
            let mut bad = blocks[0].clone();
            bad[ROOT_COUNT_OFFSET + 6] ^= 0x10;
            assert!(matches!(
                verify_dx_csum(&bad, s),
                Err(FormatError::BadChecksum { .. })
            ));
            let mut resealed = bad.clone();
            set_dx_csum(&mut resealed, s).unwrap();
            verify_dx_csum(&resealed, s).unwrap();
            assert_eq!(dx_csum(&blocks[0], s).unwrap(), {
                let (tail, _) = dx_tail_layout(&blocks[0]).unwrap();
                u32_at(&blocks[0], tail + 4)
            });
        }
        // Re-encoding the parsed structures reproduces the index bytes
        // (up to the used entries, as unused slots may hold stale data).
        let mut again = blocks[0].clone();
        w.root.encode(&mut again, &geom).unwrap();
        let used = ROOT_COUNT_OFFSET + w.root.entries.len() * DX_ENTRY_LEN;
        assert_eq!(again[..used], blocks[0][..used]);
        if let Some(s) = seed {
            set_dx_csum(&mut again, s).unwrap();
            verify_dx_csum(&again, s).unwrap();
        }
        for &nb in &w.nodes {
            let b = &blocks[nb as usize];
            let node = DxNode::parse(b, &geom).unwrap();
            let mut again = b.clone();
            node.encode(&mut again, &geom).unwrap();
            let used = NODE_COUNT_OFFSET + node.entries.len() * DX_ENTRY_LEN;
            assert_eq!(again[..used], b[..used]);
        }
        version
    }

    #[test]
    fn real_htree_4k_csum_one_level() {
        check_real_htree(4096, &[], "", 3000, "", 0);
    }

    #[test]
    fn real_htree_1k_csum_two_levels() {
        check_real_htree(1024, &[], "", 3000, "_padding_padding_padding_padding", 1);
    }

    #[test]
    fn real_htree_4k_without_csum() {
        check_real_htree(4096, &["-O", "^metadata_csum"], "", 2000, "", 0);
    }

    #[test]
    fn real_htree_tea_unsigned() {
        let version =
        // tea, with the unsigned-char flag, a fixed hash seed and names
        // with bytes >= 0x80 (where signedness matters).
        check_real_htree(
            1024,
            &["-E", "hash_seed=01020304-0506-0708-090a-0b0c0d0e0f10"],
            "ssv flags 2\nssv def_hash_version tea\n",
            500,
            "_\u{e9}t\u{e9}",
            0,
        );
        assert_eq!(version, DxHashVersion::TeaUnsigned);
    }

    // -----------------------------------------------------------------------
    // The builder, checked by e2fsck on real images.

    /// Replaces the blocks of directory `path` by `data` (resizing it with
    /// debugfs first) and, with `index`, sets EXT4_INDEX_FL.
    fn install_dir(img: &Image, path: &str, data: &[u8], index: bool) {
        let bs = img.block_size;
        let k = data.len() / bs;
        let m = img.file_blocks(path).len();
        let mut script = String::new();
        for _ in m..k {
            script.push_str(&format!("expand_dir {path}\n"));
        }
        if k < m {
            script.push_str(&format!("punch {path} {k}\n"));
        }
        script.push_str(&format!("sif {path} size {}\n", k * bs));
        if index {
            script.push_str(&format!("sif {path} flags 0x81000\n"));
        }
        img.debugfs_script(&script);
        let blocks = img.file_blocks(path);
        assert_eq!(blocks.len(), k);
        for (i, &b) in blocks.iter().enumerate() {
            img.write_block(b, &data[i * bs..(i + 1) * bs]);
        }
    }

    /// The live entries (minus . and ..) of linear directory `path`.
    fn linear_entries(img: &Image, path: &str, csum: bool) -> Vec<(Vec<u8>, u32, FileType)> {
        let mut out = Vec::new();
        for b in dir_blocks(img, path) {
            for r in dir::live_entries(&b, csum) {
                let e = r.unwrap();
                if !e.is_dot_or_dotdot() {
                    out.push((e.name.to_vec(), e.inode, e.file_type().unwrap()));
                }
            }
        }
        out
    }

    fn params_for(img: &Image, path: &str, csum: bool, largedir: bool) -> HtreeParams {
        HtreeParams {
            block_size: img.block_size,
            hash_version: DxHashVersion::effective(img.def_hash_version(), img.unsigned_hash())
                .unwrap(),
            hash_seed: img.hash_seed(),
            csum_seed: csum.then(|| img.inode_seed(path)),
            largedir,
        }
    }

    fn as_new_entries(owned: &[(Vec<u8>, u32, FileType)]) -> Vec<NewEntry<'_>> {
        owned
            .iter()
            .map(|(n, i, t)| NewEntry {
                name: n,
                inode: *i,
                file_type: *t,
            })
            .collect()
    }

    /// Checks a built directory with our own reader: structure, checksums,
    /// ranges, and a lookup of every name through the index.
    /// Looks up every `lookup_step`-th name.
    fn self_check(
        out: &[u8],
        params: &HtreeParams,
        owned: &[(Vec<u8>, u32, FileType)],
        lookup_step: usize,
    ) -> Walk {
        let geom = params.geometry();
        let blocks: Vec<Vec<u8>> = out.chunks(params.block_size).map(<[u8]>::to_vec).collect();
        let w = walk(&blocks, &geom, params.csum_seed);
        assert_eq!(w.leaves.len() + w.nodes.len() + 1, blocks.len());
        let mut count = 0;
        for &(b, lo, hi) in &w.leaves {
            let leaf = &blocks[b as usize];
            if let Some(s) = params.csum_seed {
                dir::verify_dir_block_csum(leaf, s).unwrap();
            }
            for r in dir::live_entries(leaf, params.csum_seed.is_some()) {
                let e = r.unwrap();
                let (h, _) = dx_hash(params.hash_version, e.name, &params.hash_seed);
                assert!(h >= lo & !1 && !matches!(hi, Some(hi) if h > hi & !1));
                count += 1;
            }
        }
        assert_eq!(count, owned.len());
        for (name, ino, _) in owned.iter().step_by(lookup_step) {
            let found = lookup(
                &blocks,
                &geom,
                params.hash_version,
                &params.hash_seed,
                params.csum_seed.is_some(),
                name,
            );
            assert_eq!(found, Some(*ino), "{:?}", String::from_utf8_lossy(name));
        }
        w
    }

    /// mkfs, a linear directory `d` of `n` fifos made by debugfs, rebuilt
    /// here as an indexed directory; e2fsck must find the image clean.
    fn build_and_fsck(bs: usize, opts: &[&str], setup: &str, names: &[String], levels: u8) -> Walk {
        let img = Image::mkfs("htree-build", 64, bs, opts);
        if !setup.is_empty() {
            img.debugfs_script(setup);
        }
        let csum = !opts.contains(&"^metadata_csum");
        img.mkdir_with_generation("d", 0x1357_9bdf);
        let mut script = String::from("cd d\n");
        for n in names {
            script.push_str(&format!("mknod {n} p\n"));
        }
        img.debugfs_script(&script);
        let owned = linear_entries(&img, "d", csum);
        assert_eq!(owned.len(), names.len());
        let params = params_for(&img, "d", csum, false);
        let (ino, _) = img.inode_and_generation("d");
        let out = build_htree_dir(ino, 2, &as_new_entries(&owned), &params).unwrap();
        let w = self_check(&out, &params, &owned, 1);
        assert_eq!(w.root.indirect_levels, levels);
        install_dir(&img, "d", &out, true);
        let (clean, text) = img.e2fsck_check();
        assert!(clean, "{text}");
        // debugfs reads our index and sees every name.
        let dump = img.debugfs("htree d");
        assert_eq!(debugfs_hashes(&dump).len(), names.len());
        w
    }

    #[test]
    fn built_htree_4k_csum_passes_e2fsck() {
        let names: Vec<String> = (0..3000).map(|i| format!("file{i:05}")).collect();
        build_and_fsck(4096, &[], "", &names, 0);
    }

    #[test]
    fn built_htree_1k_csum_two_levels_passes_e2fsck() {
        let names: Vec<String> = (0..3000)
            .map(|i| format!("a-rather-long-file-name-number-{i:05}"))
            .collect();
        let w = build_and_fsck(1024, &[], "", &names, 1);
        assert!(w.nodes.len() >= 2);
    }

    #[test]
    fn built_htree_tea_unsigned_without_csum_passes_e2fsck() {
        let names: Vec<String> = (0..800).map(|i| format!("\u{e9}l\u{e9}ment-{i}")).collect();
        build_and_fsck(
            1024,
            &["-O", "^metadata_csum"],
            "ssv flags 2\nssv def_hash_version tea\n",
            &names,
            0,
        );
    }

    /// Two names with the same half_md4 hash under this seed (found by search).
    const SEED_UUID: &str = "hash_seed=01020304-0506-0708-090a-0b0c0d0e0f10";
    const COLLIDING: [&str; 2] = ["c69349", "c91741"];

    #[test]
    fn colliding_names_split_across_leaves_use_the_continuation_bit() {
        let seed = crate::format::dx_hash::seed_from_bytes(&[
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        ]);
        let v = DxHashVersion::HalfMd4;
        let h = dx_hash(v, COLLIDING[0].as_bytes(), &seed).0;
        assert_eq!(h, dx_hash(v, COLLIDING[1].as_bytes(), &seed).0);
        // Names hashing below and above the pair.
        let below: Vec<String> = (0..2000)
            .map(|i| format!("below{i}"))
            .filter(|n| dx_hash(v, n.as_bytes(), &seed).0 < h)
            .take(300)
            .collect();
        let above: Vec<String> = (0..100).map(|i| format!("above{i}")).collect();
        // Add fillers below the pair until a leaf boundary falls between them.
        let params = HtreeParams {
            block_size: 1024,
            hash_version: v,
            hash_seed: seed,
            csum_seed: Some(0x1234),
            largedir: false,
        };
        let mut chosen = None;
        for k in 0..below.len() {
            let mut names: Vec<String> = below[..k].to_vec();
            names.extend(COLLIDING.iter().map(|s| s.to_string()));
            names.extend(above.iter().cloned());
            let owned: Vec<(Vec<u8>, u32, FileType)> = names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_bytes().to_vec(), 100 + i as u32, FileType::Fifo))
                .collect();
            let out = build_htree_dir(12, 2, &as_new_entries(&owned), &params).unwrap();
            let root = DxRoot::parse(&out[..1024], &params.geometry()).unwrap();
            if root.entries.iter().any(|e| e.hash == h | 1) {
                // Our own index lookup must still find both names.
                self_check(&out, &params, &owned, 1);
                chosen = Some(names);
                break;
            }
        }
        let names = chosen.expect("some filler count splits the pair");
        // The same layout on a real image (same seed, half_md4, signed) passes e2fsck.
        let w = build_and_fsck(1024, &["-E", SEED_UUID], "", &names, 0);
        assert!(w.root.entries.iter().any(|e| e.hash == h | 1));
    }

    /// A directory too large for two levels needs largedir and gets three;
    /// checked with our reader (a real image would need ~46k inodes).
    #[test]
    fn builder_uses_a_second_node_level_only_with_largedir() {
        let owned: Vec<(Vec<u8>, u32, FileType)> = (0..47_000u32)
            .map(|i| {
                let mut n = format!("{i:06}").into_bytes();
                n.resize(255, b'x');
                (n, 20 + i, FileType::Regular)
            })
            .collect();
        let mut params = HtreeParams {
            block_size: 1024,
            hash_version: DxHashVersion::HalfMd4,
            hash_seed: [0; 4],
            csum_seed: Some(77),
            largedir: false,
        };
        let entries = as_new_entries(&owned);
        assert!(matches!(
            build_htree_dir(2, 2, &entries, &params),
            Err(FormatError::Unsupported { .. })
        ));
        params.largedir = true;
        let out = build_htree_dir(2, 2, &entries, &params).unwrap();
        let w = self_check(&out, &params, &owned, 97);
        // 15667 leaves (3 names a leaf) need 125 nodes of 126 entries,
        // more than the root's 123: one more level, with a single node.
        assert_eq!(w.leaves.len(), 15667);
        assert_eq!(w.root.indirect_levels, 2);
        assert_eq!(w.root.entries.len(), 1);
        assert_eq!(w.nodes.len(), 125 + 1);
    }

    #[test]
    fn small_and_empty_directories_get_one_leaf() {
        let params = HtreeParams {
            block_size: 4096,
            hash_version: DxHashVersion::Tea,
            hash_seed: [1, 2, 3, 4],
            csum_seed: None,
            largedir: false,
        };
        let out = build_htree_dir(12, 2, &[], &params).unwrap();
        assert_eq!(out.len(), 2 * 4096);
        let root = DxRoot::parse(&out[..4096], &params.geometry()).unwrap();
        assert_eq!(root.entries, vec![DxEntry { hash: 0, block: 1 }]);
        assert_eq!(root.hash_version, 2);
        assert_eq!(dir::live_entries(&out[4096..], false).count(), 0);
        // A linear reader sees "." and ".." in the root and nothing else.
        let names: Vec<_> = dir::live_entries(&out[..4096], false)
            .map(|r| r.unwrap().name.to_vec())
            .collect();
        assert_eq!(names, vec![b".".to_vec(), b"..".to_vec()]);
        let bad = NewEntry {
            name: b"..",
            inode: 5,
            file_type: FileType::Directory,
        };
        assert!(build_htree_dir(12, 2, &[bad], &params).is_err());
    }

    #[test]
    fn corrupt_index_blocks_are_errors_not_panics() {
        let params = HtreeParams {
            block_size: 1024,
            hash_version: DxHashVersion::HalfMd4,
            hash_seed: [0; 4],
            csum_seed: Some(5),
            largedir: false,
        };
        let names: Vec<String> = (0..4000)
            .map(|i| format!("some-name-{i:05}-padding"))
            .collect();
        let owned: Vec<(Vec<u8>, u32, FileType)> = names
            .iter()
            .map(|n| (n.as_bytes().to_vec(), 50, FileType::Regular))
            .collect();
        let out = build_htree_dir(2, 2, &as_new_entries(&owned), &params).unwrap();
        let geom = params.geometry();
        let root = &out[..1024];
        let w = self_check(&out, &params, &owned, 301);
        let node_no = *w.nodes.first().unwrap() as usize;
        let node = &out[node_no * 1024..(node_no + 1) * 1024];
        DxNode::parse(node, &geom).unwrap();
        verify_dx_csum(node, 5).unwrap();
        // Specific corruptions.
        let with = |b: &[u8], off: usize, v: u8| {
            let mut m = b.to_vec();
            m[off] = v;
            m
        };
        assert!(DxRoot::parse(&with(root, OFF_INFO_LENGTH, 4), &geom).is_err());
        assert!(DxRoot::parse(&with(root, OFF_HASH_VERSION, 9), &geom).is_err());
        assert!(matches!(
            DxRoot::parse(&with(root, OFF_HASH_VERSION, 6), &geom),
            Err(FormatError::Unsupported { .. })
        ));
        assert!(DxRoot::parse(&with(root, OFF_INDIRECT_LEVELS, 2), &geom).is_err());
        assert!(DxRoot::parse(&with(root, OFF_UNUSED_FLAGS, 1), &geom).is_err());
        assert!(DxRoot::parse(&with(root, ROOT_COUNT_OFFSET, 200), &geom).is_err());
        assert!(DxRoot::parse(&with(root, ROOT_COUNT_OFFSET + 2, 0), &geom).is_err());
        assert!(DxRoot::parse(&with(root, ROOT_COUNT_OFFSET + 2, 124), &geom).is_err());
        assert!(DxRoot::parse(&root[..512], &geom).is_err());
        assert!(DxNode::parse(&with(node, 5, 0), &geom).is_err());
        assert!(DxNode::parse(&with(node, 0, 1), &geom).is_err());
        assert!(DxNode::parse(root, &geom).is_err());
        assert!(DxRoot::parse(node, &geom).is_err());
        // A limit pointing the tail past the block is an error for checksums.
        let mut m = root.to_vec();
        put_u16(&mut m, ROOT_COUNT_OFFSET, 200);
        assert!(dx_csum(&m, 5).is_err());
        assert!(verify_dx_csum(&[0u8; 16], 5).is_err());
        assert_eq!(dx_count_offset(&out[1024..2048]), None);
        // Any single-byte change of the header never panics.
        for off in 0..64 {
            for v in [0u8, 1, 2, 0x7f, 0x80, 0xff] {
                for b in [root, node] {
                    let m = with(b, off, v);
                    let _ = DxRoot::parse(&m, &geom);
                    let _ = DxNode::parse(&m, &geom);
                    let _ = verify_dx_csum(&m, 5);
                }
            }
        }
    }

    /// A directory indexed and filled by the Linux kernel (fixture, no
    /// tools needed): checksums, hash ranges and lookups all agree.
    #[test]
    fn kernel_made_htree_fixture() {
        let meta = include_str!("../../tests/fixtures/kernel_htree_1k.txt");
        let data = include_bytes!("../../tests/fixtures/kernel_htree_1k.bin");
        let field = |k: &str| -> &str {
            meta.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(' ')))
                .unwrap()
        };
        let hex16 = |s: &str| -> [u8; 16] {
            let v: Vec<u8> = (0..16)
                .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            v.try_into().unwrap()
        };
        let fs_seed = crate::format::csum::fs_csum_seed(&hex16(field("uuid")));
        let ino: u32 = field("ino").parse().unwrap();
        let generation: u32 = field("generation").parse().unwrap();
        let seed = inode_csum_seed(fs_seed, ino, generation);
        let hash_seed = crate::format::dx_hash::seed_from_bytes(&hex16(field("hash_seed")));
        let geom = DxGeometry {
            block_size: 1024,
            metadata_csum: true,
            largedir: false,
        };
        let blocks: Vec<Vec<u8>> = data.chunks(1024).map(<[u8]>::to_vec).collect();
        let w = walk(&blocks, &geom, Some(seed));
        assert_eq!((w.root.dot_inode, w.root.dotdot_inode), (ino, 2));
        let version = DxHashVersion::effective(w.root.hash_version, false).unwrap();
        assert_eq!(version, DxHashVersion::HalfMd4);
        let mut names = Vec::new();
        for &(b, lo, hi) in &w.leaves {
            let leaf = &blocks[b as usize];
            dir::verify_dir_block_csum(leaf, seed).unwrap();
            for r in dir::live_entries(leaf, true) {
                let e = r.unwrap();
                let (h, _) = dx_hash(version, e.name, &hash_seed);
                assert!(h >= lo & !1 && !matches!(hi, Some(hi) if h > hi & !1));
                names.push(e.name.to_vec());
            }
        }
        let mut expected: Vec<Vec<u8>> = (1..=150)
            .filter(|&i| i != 7)
            .map(|i| format!("kernel-made-entry-{i}").into_bytes())
            .collect();
        expected.extend([b"sub".to_vec(), b"link".to_vec(), b"caf\xc3\xa9".to_vec()]);
        expected.sort();
        names.sort();
        assert_eq!(names, expected);
        for n in &expected {
            assert!(lookup(&blocks, &geom, version, &hash_seed, true, n).is_some());
        }
        assert_eq!(
            lookup(
                &blocks,
                &geom,
                version,
                &hash_seed,
                true,
                b"kernel-made-entry-7"
            ),
            None
        );
        // Changing the generation changes the seed: every checksum fails.
        let other = inode_csum_seed(fs_seed, ino, generation ^ 1);
        assert!(verify_dx_csum(&blocks[0], other).is_err());
        assert!(dir::verify_dir_block_csum(&blocks[1], other).is_err());
    }
}
