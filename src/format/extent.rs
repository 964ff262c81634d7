//! ext4 extent trees: the node format, its validation and tail checksum, a
//! bounded walker and a builder for whole trees.
//!
//! A file with `EXT4_EXTENTS_FL` maps logical blocks through a B+-tree whose
//! root lives in the 60-byte `i_block` area of the inode and whose other nodes
//! are whole file-system blocks. Every node is a 12-byte header followed by
//! 12-byte entries: extents in leaves (`eh_depth == 0`), index entries in
//! interior nodes. All fields are little-endian.
//!
//! ```text
//! ext4_extent_header (12 bytes, at offset 0 of every node)
//!   0x0  eh_magic       u16  0xF30A
//!   0x2  eh_entries     u16  entries in use
//!   0x4  eh_max         u16  capacity (4 in i_block, (block_size - 12) / 12 in a block)
//!   0x6  eh_depth       u16  0 = leaf; the root's depth is the tree's depth (<= 5)
//!   0x8  eh_generation  u32  unused by Linux (written as 0)
//! ext4_extent (leaf entry, 12 bytes)
//!   0x0  ee_block       u32  first logical block
//!   0x4  ee_len         u16  1..=32768 initialized; 32769..=65535 unwritten (len = ee_len - 32768)
//!   0x6  ee_start_hi    u16  physical start, bits 32..47
//!   0x8  ee_start_lo    u32  physical start, bits 0..31
//! ext4_extent_idx (interior entry, 12 bytes)
//!   0x0  ei_block       u32  first logical block covered by the child
//!   0x4  ei_leaf_lo     u32  child block, bits 0..31
//!   0x8  ei_leaf_hi     u16  child block, bits 32..47
//!   0xA  ei_unused      u16
//! ext4_extent_tail (tree blocks only, at 12 + 12 * eh_max)
//!   0x0  et_checksum    u32  crc32c(inode seed, block[..12 + 12 * eh_max])
//! ```
//!
//! Invariants checked by the parsers: the magic; `1 <= eh_max <= capacity of
//! the buffer`; `eh_entries <= eh_max`; `eh_depth <= 5`; extents have a
//! length of at least one block, are sorted by logical block, do not overlap
//! and end at or before 2^32; index entries are strictly increasing. Checks
//! that need outside knowledge are separate: [`ExtentNode::validate_blocks`]
//! (physical pointers against the file-system size) and
//! [`ExtentNode::check_child`] (a child's depth and logical range against its
//! parent's index entry). Encoders zero everything after the last entry up to
//! the tail, as the kernel and libext2fs do.
//!
//! The inode checksum seed shared by this tail, directory blocks and the inode
//! itself is [`csum::inode_seed`](super::csum::inode_seed).

use super::bytes::{hi32, join_u64, lo32, put_u16, put_u32, require_len, u16_at, u32_at};
use super::csum::crc32c;
use super::error::{FormatError, Result};
use super::ids::{LogicalBlock, PhysBlock};

// ext4_extent_header
const EH_MAGIC: usize = 0x0; // eh_magic
const EH_ENTRIES: usize = 0x2; // eh_entries
const EH_MAX: usize = 0x4; // eh_max
const EH_DEPTH: usize = 0x6; // eh_depth
const EH_GENERATION: usize = 0x8; // eh_generation

// ext4_extent
const EE_BLOCK: usize = 0x0; // ee_block
const EE_LEN: usize = 0x4; // ee_len
const EE_START_HI: usize = 0x6; // ee_start_hi
const EE_START_LO: usize = 0x8; // ee_start_lo

// ext4_extent_idx
const EI_BLOCK: usize = 0x0; // ei_block
const EI_LEAF_LO: usize = 0x4; // ei_leaf_lo
const EI_LEAF_HI: usize = 0x8; // ei_leaf_hi
const EI_UNUSED: usize = 0xA; // ei_unused

/// `eh_magic`.
pub const EXTENT_MAGIC: u16 = 0xF30A;
/// Size of `ext4_extent_header`.
pub const HEADER_LEN: usize = 12;
/// Size of `ext4_extent` and of `ext4_extent_idx`.
pub const ENTRY_LEN: usize = 12;
/// Size of `ext4_extent_tail`.
pub const TAIL_LEN: usize = 4;
/// Size of the inode's `i_block` area that holds the root node.
pub const I_BLOCK_LEN: usize = 60;
/// Capacity (`eh_max`) of the root node in `i_block`.
pub const EXTENTS_IN_INODE: u16 = 4;
/// The deepest tree accepted or built (the kernel's `EXT4_MAX_EXTENT_DEPTH`).
pub const MAX_DEPTH: u16 = 5;
/// Longest initialized extent (`EXT_INIT_MAX_LEN`).
pub const MAX_INIT_EXTENT_LEN: u16 = 32768;
/// Longest unwritten extent (`EXT_UNWRITTEN_MAX_LEN`).
pub const MAX_UNWRITTEN_EXTENT_LEN: u16 = 32767;
/// Largest physical block number an extent can address (48 bits).
pub const MAX_PHYS_BLOCK: u64 = (1 << 48) - 1;
/// Smallest and largest block sizes the tree helpers accept.
pub const MIN_BLOCK_SIZE: usize = 1024;
pub const MAX_BLOCK_SIZE: usize = 65536;

/// Capacity (`eh_max`) of a tree block of `block_size` bytes:
/// `(block_size - 12) / 12`, i.e. 84 for 1 KiB blocks and 340 for 4 KiB. The
/// tail checksum fits after the last entry for every power-of-two size.
pub fn entries_per_block(block_size: usize) -> u16 {
    let n = block_size.saturating_sub(HEADER_LEN) / ENTRY_LEN;
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn check_block_size(block_size: usize) -> Result<()> {
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) || !block_size.is_power_of_two() {
        return Err(FormatError::unsupported(
            "extent tree",
            format!("block size {block_size}"),
        ));
    }
    Ok(())
}

/// `ext4_extent_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtentHeader {
    pub magic: u16,
    pub entries: u16,
    pub max: u16,
    pub depth: u16,
    pub generation: u32,
}

impl ExtentHeader {
    /// A header for a node of capacity `max` at `depth` holding `entries`.
    pub fn new(entries: u16, max: u16, depth: u16) -> Self {
        ExtentHeader {
            magic: EXTENT_MAGIC,
            entries,
            max,
            depth,
            generation: 0,
        }
    }

    /// Reads the header fields without judging them (see [`Self::validate`]).
    pub fn parse(buf: &[u8]) -> Result<Self> {
        require_len(buf, HEADER_LEN, "extent header")?;
        Ok(ExtentHeader {
            magic: u16_at(buf, EH_MAGIC),
            entries: u16_at(buf, EH_ENTRIES),
            max: u16_at(buf, EH_MAX),
            depth: u16_at(buf, EH_DEPTH),
            generation: u32_at(buf, EH_GENERATION),
        })
    }

    /// Checks the magic, `1 <= max <= capacity`, `entries <= max` and the depth cap.
    pub fn validate(&self, capacity: u16) -> Result<()> {
        if self.magic != EXTENT_MAGIC {
            return Err(FormatError::BadMagic {
                what: "extent header",
                found: u64::from(self.magic),
            });
        }
        if self.max == 0 || self.max > capacity {
            return Err(FormatError::corrupt(
                "extent header",
                format!("eh_max {} (capacity {capacity})", self.max),
            ));
        }
        if self.entries > self.max {
            return Err(FormatError::corrupt(
                "extent header",
                format!("eh_entries {} > eh_max {}", self.entries, self.max),
            ));
        }
        if self.depth > MAX_DEPTH {
            return Err(FormatError::corrupt(
                "extent header",
                format!("eh_depth {} > {MAX_DEPTH}", self.depth),
            ));
        }
        Ok(())
    }

    /// Writes the 12 header bytes.
    pub fn encode(&self, buf: &mut [u8]) -> Result<()> {
        require_len(buf, HEADER_LEN, "extent header")?;
        put_u16(buf, EH_MAGIC, self.magic);
        put_u16(buf, EH_ENTRIES, self.entries);
        put_u16(buf, EH_MAX, self.max);
        put_u16(buf, EH_DEPTH, self.depth);
        put_u32(buf, EH_GENERATION, self.generation);
        Ok(())
    }
}

/// `ext4_extent`: `len` blocks from logical `logical` at physical `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub logical: LogicalBlock,
    /// The real length in blocks: 1..=32768 initialized, 1..=32767 unwritten.
    pub len: u16,
    pub start: PhysBlock,
    /// Allocated but reads as zeros (`ee_len > 32768` on disk).
    pub unwritten: bool,
}

impl Extent {
    /// Decodes 12 bytes. The length may come out as 0 (`ee_len == 0`), which
    /// node validation rejects.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        require_len(buf, ENTRY_LEN, "extent")?;
        let raw_len = u16_at(buf, EE_LEN);
        let (len, unwritten) = if raw_len > MAX_INIT_EXTENT_LEN {
            (raw_len - MAX_INIT_EXTENT_LEN, true)
        } else {
            (raw_len, false)
        };
        Ok(Extent {
            logical: LogicalBlock(u32_at(buf, EE_BLOCK)),
            len,
            start: PhysBlock(join_u64(
                u32_at(buf, EE_START_LO),
                u32::from(u16_at(buf, EE_START_HI)),
            )),
            unwritten,
        })
    }

    /// The on-disk `ee_len`, or an error if `len` is out of range.
    pub fn raw_len(&self) -> Result<u16> {
        let max = if self.unwritten {
            MAX_UNWRITTEN_EXTENT_LEN
        } else {
            MAX_INIT_EXTENT_LEN
        };
        if self.len == 0 || self.len > max {
            return Err(FormatError::corrupt(
                "extent",
                format!(
                    "length {} (unwritten: {}) at {}",
                    self.len, self.unwritten, self.logical
                ),
            ));
        }
        Ok(if self.unwritten {
            self.len + MAX_INIT_EXTENT_LEN
        } else {
            self.len
        })
    }

    /// Writes 12 bytes; fails on a bad length or a start beyond 48 bits.
    pub fn encode(&self, buf: &mut [u8]) -> Result<()> {
        require_len(buf, ENTRY_LEN, "extent")?;
        let raw_len = self.raw_len()?;
        let hi = start_hi(self.start, "extent")?;
        put_u32(buf, EE_BLOCK, self.logical.0);
        put_u16(buf, EE_LEN, raw_len);
        put_u16(buf, EE_START_HI, hi);
        put_u32(buf, EE_START_LO, lo32(self.start.0));
        Ok(())
    }

    /// One past the last logical block, as u64 (may be 2^32).
    pub fn end(&self) -> u64 {
        u64::from(self.logical.0) + u64::from(self.len)
    }

    /// Whether logical block `lblk` lies in this extent.
    pub fn contains(&self, lblk: LogicalBlock) -> bool {
        lblk.0 >= self.logical.0 && u64::from(lblk.0) < self.end()
    }

    /// The physical block holding `lblk`, if this extent maps it.
    pub fn phys_of(&self, lblk: LogicalBlock) -> Option<PhysBlock> {
        if !self.contains(lblk) {
            return None;
        }
        self.start
            .0
            .checked_add(u64::from(lblk.0 - self.logical.0))
            .map(PhysBlock)
    }
}

fn start_hi(block: PhysBlock, what: &'static str) -> Result<u16> {
    if block.0 > MAX_PHYS_BLOCK {
        return Err(FormatError::corrupt(
            what,
            format!("{block} beyond 48 bits"),
        ));
    }
    u16::try_from(hi32(block.0))
        .map_err(|_| FormatError::corrupt(what, format!("{block} beyond 48 bits")))
}

/// `ext4_extent_idx`: the child node `leaf` covers logical blocks from `logical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtentIndex {
    pub logical: LogicalBlock,
    pub leaf: PhysBlock,
}

impl ExtentIndex {
    /// Decodes 12 bytes (`ei_unused` is ignored).
    pub fn parse(buf: &[u8]) -> Result<Self> {
        require_len(buf, ENTRY_LEN, "extent index")?;
        Ok(ExtentIndex {
            logical: LogicalBlock(u32_at(buf, EI_BLOCK)),
            leaf: PhysBlock(join_u64(
                u32_at(buf, EI_LEAF_LO),
                u32::from(u16_at(buf, EI_LEAF_HI)),
            )),
        })
    }

    /// Writes 12 bytes (`ei_unused` = 0); fails on a child beyond 48 bits.
    pub fn encode(&self, buf: &mut [u8]) -> Result<()> {
        require_len(buf, ENTRY_LEN, "extent index")?;
        let hi = start_hi(self.leaf, "extent index")?;
        put_u32(buf, EI_BLOCK, self.logical.0);
        put_u32(buf, EI_LEAF_LO, lo32(self.leaf.0));
        put_u16(buf, EI_LEAF_HI, hi);
        put_u16(buf, EI_UNUSED, 0);
        Ok(())
    }
}

/// The entries of a node: extents in a leaf, index entries above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtentEntries {
    Leaf(Vec<Extent>),
    Index(Vec<ExtentIndex>),
}

/// One node of an extent tree (the root in `i_block` or a tree block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentNode {
    pub header: ExtentHeader,
    pub entries: ExtentEntries,
}

impl ExtentNode {
    /// A leaf of capacity `max` holding `extents`.
    pub fn new_leaf(max: u16, extents: Vec<Extent>) -> Result<Self> {
        let n = entry_count(extents.len())?;
        Ok(ExtentNode {
            header: ExtentHeader::new(n, max, 0),
            entries: ExtentEntries::Leaf(extents),
        })
    }

    /// An interior node of capacity `max` at `depth` (>= 1) holding `indexes`.
    pub fn new_index(max: u16, depth: u16, indexes: Vec<ExtentIndex>) -> Result<Self> {
        let n = entry_count(indexes.len())?;
        Ok(ExtentNode {
            header: ExtentHeader::new(n, max, depth),
            entries: ExtentEntries::Index(indexes),
        })
    }

    /// Parses the root node from an inode's `i_block` (at least 60 bytes).
    pub fn parse_root(i_block: &[u8]) -> Result<Self> {
        require_len(i_block, I_BLOCK_LEN, "extent root")?;
        Self::parse_with_capacity(i_block, EXTENTS_IN_INODE)
    }

    /// Parses a tree block (the whole block; its length is the block size).
    /// The tail checksum is not checked here: see [`verify_extent_block_csum`].
    pub fn parse_block(block: &[u8]) -> Result<Self> {
        check_block_size(block.len())?;
        Self::parse_with_capacity(block, entries_per_block(block.len()))
    }

    fn parse_with_capacity(buf: &[u8], capacity: u16) -> Result<Self> {
        let header = ExtentHeader::parse(buf)?;
        header.validate(capacity)?;
        let n = usize::from(header.entries);
        require_len(buf, HEADER_LEN + n * ENTRY_LEN, "extent node")?;
        let slots = buf[HEADER_LEN..HEADER_LEN + n * ENTRY_LEN].chunks_exact(ENTRY_LEN);
        let entries = if header.depth == 0 {
            ExtentEntries::Leaf(slots.map(Extent::parse).collect::<Result<_>>()?)
        } else {
            ExtentEntries::Index(slots.map(ExtentIndex::parse).collect::<Result<_>>()?)
        };
        let node = ExtentNode { header, entries };
        node.validate_entries()?;
        Ok(node)
    }

    /// True for a leaf (depth 0).
    pub fn is_leaf(&self) -> bool {
        matches!(self.entries, ExtentEntries::Leaf(_))
    }

    /// Number of entries in use.
    pub fn len(&self) -> usize {
        match &self.entries {
            ExtentEntries::Leaf(v) => v.len(),
            ExtentEntries::Index(v) => v.len(),
        }
    }

    /// True when the node holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first logical block of the first entry, if any.
    pub fn first_logical(&self) -> Option<LogicalBlock> {
        match &self.entries {
            ExtentEntries::Leaf(v) => v.first().map(|e| e.logical),
            ExtentEntries::Index(v) => v.first().map(|i| i.logical),
        }
    }

    /// Ordering and consistency of the entries with the header.
    fn validate_entries(&self) -> Result<()> {
        if usize::from(self.header.entries) != self.len() {
            return Err(FormatError::corrupt(
                "extent node",
                format!(
                    "eh_entries {} but {} entries",
                    self.header.entries,
                    self.len()
                ),
            ));
        }
        match &self.entries {
            ExtentEntries::Leaf(extents) => {
                if self.header.depth != 0 {
                    return Err(FormatError::corrupt(
                        "extent node",
                        "leaf entries at depth > 0",
                    ));
                }
                validate_extent_list(extents)?;
            }
            ExtentEntries::Index(indexes) => {
                if self.header.depth == 0 {
                    return Err(FormatError::corrupt(
                        "extent node",
                        "index entries at depth 0",
                    ));
                }
                for (i, w) in indexes.windows(2).enumerate() {
                    if w[1].logical <= w[0].logical {
                        return Err(FormatError::corrupt(
                            "extent node",
                            format!("index {} at {} out of order", i + 1, w[1].logical),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Rejects physical pointers that are 0 or not below `block_count`
    /// (extents must end at or before `block_count`).
    pub fn validate_blocks(&self, block_count: u64) -> Result<()> {
        match &self.entries {
            ExtentEntries::Leaf(extents) => {
                for e in extents {
                    let inside = e
                        .start
                        .0
                        .checked_add(u64::from(e.len))
                        .is_some_and(|end| end <= block_count);
                    if e.start.0 == 0 || !inside {
                        return Err(FormatError::corrupt(
                            "extent",
                            format!(
                                "{} maps {} + {} outside the file system ({block_count} blocks)",
                                e.logical, e.start, e.len
                            ),
                        ));
                    }
                }
            }
            ExtentEntries::Index(indexes) => {
                for i in indexes {
                    if i.leaf.0 == 0 || i.leaf.0 >= block_count {
                        return Err(FormatError::corrupt(
                            "extent index",
                            format!(
                                "{} points to {} outside the file system ({block_count} blocks)",
                                i.logical, i.leaf
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks this node as the child reached through an index entry: its
    /// depth is `expected_depth`, it is not empty, its first entry starts at
    /// `start` (the parent's `ei_block`) and everything it maps lies before
    /// `end` (the next index entry's `ei_block`, or the parent's own end).
    pub fn check_child(&self, expected_depth: u16, start: LogicalBlock, end: u64) -> Result<()> {
        if self.header.depth != expected_depth {
            return Err(FormatError::corrupt(
                "extent node",
                format!(
                    "depth {} where {expected_depth} expected",
                    self.header.depth
                ),
            ));
        }
        if self.first_logical() != Some(start) {
            return Err(FormatError::corrupt(
                "extent node",
                format!(
                    "first entry {:?} does not match its index entry ({start})",
                    self.first_logical()
                ),
            ));
        }
        let last_end = match &self.entries {
            ExtentEntries::Leaf(v) => v.last().map(Extent::end),
            ExtentEntries::Index(v) => v.last().map(|i| u64::from(i.logical.0) + 1),
        };
        if last_end.is_some_and(|last| last > end) {
            return Err(FormatError::corrupt(
                "extent node",
                format!("entries pass the end of the parent's range ({end})"),
            ));
        }
        Ok(())
    }

    /// For a leaf: the extent mapping `lblk`, if any.
    pub fn find_extent(&self, lblk: LogicalBlock) -> Option<&Extent> {
        match &self.entries {
            ExtentEntries::Leaf(v) => {
                let i = v.partition_point(|e| e.logical <= lblk);
                i.checked_sub(1).map(|i| &v[i]).filter(|e| e.contains(lblk))
            }
            ExtentEntries::Index(_) => None,
        }
    }

    /// For an interior node: the position of the index entry whose subtree
    /// covers `lblk` (the last one starting at or before it), if any.
    pub fn child_for(&self, lblk: LogicalBlock) -> Option<usize> {
        match &self.entries {
            ExtentEntries::Index(v) => v.partition_point(|i| i.logical <= lblk).checked_sub(1),
            ExtentEntries::Leaf(_) => None,
        }
    }

    fn encode_with_capacity(&self, buf: &mut [u8], capacity: u16, area: usize) -> Result<()> {
        self.header.validate(capacity)?;
        self.validate_entries()?;
        let used = HEADER_LEN + self.len() * ENTRY_LEN;
        require_len(buf, area, "extent node")?;
        self.header.encode(buf)?;
        let slots = buf[HEADER_LEN..used].chunks_exact_mut(ENTRY_LEN);
        match &self.entries {
            ExtentEntries::Leaf(v) => {
                for (e, slot) in v.iter().zip(slots) {
                    e.encode(slot)?;
                }
            }
            ExtentEntries::Index(v) => {
                for (i, slot) in v.iter().zip(slots) {
                    i.encode(slot)?;
                }
            }
        }
        buf[used..area].fill(0);
        Ok(())
    }

    /// Writes the node into the 60-byte `i_block` area (zeroing its unused
    /// part). `eh_max` must be at most 4.
    pub fn encode_root(&self, i_block: &mut [u8]) -> Result<()> {
        self.encode_with_capacity(i_block, EXTENTS_IN_INODE, I_BLOCK_LEN)
    }

    /// Writes the node into a tree block (its length is the block size),
    /// zeroing everything after the last entry up to the tail. The tail
    /// checksum is left alone: call [`set_extent_block_csum`] afterwards.
    pub fn encode_block(&self, block: &mut [u8]) -> Result<()> {
        check_block_size(block.len())?;
        let area = HEADER_LEN + usize::from(self.header.max) * ENTRY_LEN;
        self.encode_with_capacity(block, entries_per_block(block.len()), area)
    }
}

/// Lengths valid, sorted by logical block, no overlap, nothing past 2^32.
fn validate_extent_list(extents: &[Extent]) -> Result<()> {
    let mut prev_end: u64 = 0;
    for (i, e) in extents.iter().enumerate() {
        e.raw_len()?;
        let end = e.end();
        if end > 1 << 32 {
            return Err(FormatError::corrupt(
                "extent",
                format!("{} + {} passes 2^32", e.logical, e.len),
            ));
        }
        if i > 0 && u64::from(e.logical.0) < prev_end {
            return Err(FormatError::corrupt(
                "extent list",
                format!("extent {i} at {} overlaps or is out of order", e.logical),
            ));
        }
        prev_end = end;
    }
    Ok(())
}

fn entry_count(n: usize) -> Result<u16> {
    u16::try_from(n).map_err(|_| FormatError::corrupt("extent node", format!("{n} entries")))
}

/// Offset of `et_checksum` in a tree block: `12 + 12 * eh_max`, with the
/// header checked so that the tail lies inside the block.
pub fn extent_tail_offset(block: &[u8]) -> Result<usize> {
    check_block_size(block.len())?;
    let header = ExtentHeader::parse(block)?;
    header.validate(entries_per_block(block.len()))?;
    Ok(HEADER_LEN + usize::from(header.max) * ENTRY_LEN)
}

/// crc32c(inode seed, block up to the tail); `inode_seed` is
/// [`csum::inode_seed`](super::csum::inode_seed) of the owning inode.
pub fn compute_extent_block_csum(inode_seed: u32, block: &[u8]) -> Result<u32> {
    let tail = extent_tail_offset(block)?;
    Ok(crc32c(inode_seed, &block[..tail]))
}

/// Checks `et_checksum` of a tree block.
pub fn verify_extent_block_csum(inode_seed: u32, block: &[u8]) -> Result<()> {
    let tail = extent_tail_offset(block)?;
    let computed = crc32c(inode_seed, &block[..tail]);
    let stored = u32_at(block, tail);
    if stored != computed {
        return Err(FormatError::BadChecksum {
            what: "extent block",
            stored,
            computed,
        });
    }
    Ok(())
}

/// Sets `et_checksum` of a tree block.
pub fn set_extent_block_csum(inode_seed: u32, block: &mut [u8]) -> Result<()> {
    let tail = extent_tail_offset(block)?;
    let computed = crc32c(inode_seed, &block[..tail]);
    put_u32(block, tail, computed);
    Ok(())
}

/// Everything reachable from an inode's extent root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentWalk {
    /// Depth of the tree (the root's `eh_depth`).
    pub depth: u16,
    /// All extents, in logical order.
    pub extents: Vec<Extent>,
    /// The tree blocks, in depth-first (pre-)order.
    pub tree_blocks: Vec<PhysBlock>,
}

struct Frame {
    node: ExtentNode,
    next: usize,
    end: u64,
}

/// Walks a whole extent tree without recursion, reading each tree block
/// with `read_block(block, buf)` (which fills `buf`, `block_size` bytes).
///
/// Checks every node ([`ExtentNode::parse_block`], [`ExtentNode::validate_blocks`]
/// against `block_count`, [`ExtentNode::check_child`]) and, when
/// `inode_seed` is given (metadata_csum), every tail checksum. A tree block
/// can be visited at most once, so a malicious tree cannot make the walk
/// read more than `block_count` blocks.
pub fn walk_extent_tree<E, F>(
    i_block: &[u8],
    block_size: usize,
    block_count: u64,
    inode_seed: Option<u32>,
    mut read_block: F,
) -> std::result::Result<ExtentWalk, E>
where
    F: FnMut(PhysBlock, &mut [u8]) -> std::result::Result<(), E>,
    E: From<FormatError>,
{
    check_block_size(block_size)?;
    let root = ExtentNode::parse_root(i_block)?;
    root.validate_blocks(block_count)?;
    let depth = root.header.depth;
    let mut walk = ExtentWalk {
        depth,
        extents: Vec::new(),
        tree_blocks: Vec::new(),
    };
    let mut seen = std::collections::HashSet::new();
    let mut buf = vec![0u8; block_size];
    let mut stack = vec![Frame {
        node: root,
        next: 0,
        end: 1 << 32,
    }];
    while let Some(top) = stack.last_mut() {
        let indexes = match &top.node.entries {
            ExtentEntries::Leaf(extents) => {
                walk.extents.extend_from_slice(extents);
                stack.pop();
                continue;
            }
            ExtentEntries::Index(indexes) => indexes,
        };
        let Some(index) = indexes.get(top.next).copied() else {
            stack.pop();
            continue;
        };
        let end = indexes
            .get(top.next + 1)
            .map_or(top.end, |i| u64::from(i.logical.0));
        let child_depth = top.node.header.depth - 1;
        top.next += 1;
        if !seen.insert(index.leaf) {
            return Err(FormatError::corrupt(
                "extent tree",
                format!("{} referenced twice", index.leaf),
            )
            .into());
        }
        read_block(index.leaf, &mut buf)?;
        if let Some(seed) = inode_seed {
            verify_extent_block_csum(seed, &buf)?;
        }
        let node = ExtentNode::parse_block(&buf)?;
        node.validate_blocks(block_count)?;
        node.check_child(child_depth, index.logical, end)?;
        walk.tree_blocks.push(index.leaf);
        stack.push(Frame { node, next: 0, end });
    }
    Ok(walk)
}

/// Number of tree blocks in the smallest tree holding `n_extents` extents
/// with blocks of `block_size` bytes (0 when they fit in the inode).
pub fn extent_tree_blocks(n_extents: usize, block_size: usize) -> Result<u64> {
    check_block_size(block_size)?;
    let per = usize::from(entries_per_block(block_size));
    let root = usize::from(EXTENTS_IN_INODE);
    let mut total: u64 = 0;
    let mut level = n_extents;
    let mut depth = 0u16;
    while level > root {
        level = level.div_ceil(per);
        total += u64::try_from(level).unwrap_or(u64::MAX);
        depth += 1;
        if depth > MAX_DEPTH {
            return Err(too_deep(n_extents));
        }
    }
    Ok(total)
}

fn too_deep(n: usize) -> FormatError {
    FormatError::unsupported(
        "extent tree",
        format!("{n} extents need depth > {MAX_DEPTH}"),
    )
}

/// A complete extent tree made by [`build_extent_tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltExtentTree {
    /// The inode's `i_block` contents (the root node).
    pub i_block: [u8; I_BLOCK_LEN],
    /// Depth of the tree.
    pub depth: u16,
    /// The tree blocks and their contents, in allocation order (leaves
    /// left to right first, then each level above).
    pub blocks: Vec<(PhysBlock, Vec<u8>)>,
}

impl BuiltExtentTree {
    /// Number of tree blocks (they count in `i_blocks`).
    pub fn tree_blocks(&self) -> u64 {
        u64::try_from(self.blocks.len()).unwrap_or(u64::MAX)
    }
}

/// Builds the smallest-depth extent tree for `extents` (sorted, non-overlapping,
/// valid lengths, starts in 1..2^48), packing every tree block full.
///
/// `alloc()` is called once per tree block, leaves first; there are
/// [`extent_tree_blocks`] of them. With `inode_seed` (metadata_csum) each
/// block's tail checksum is set. Physical pointers are not checked against
/// the file-system size: the caller owns them.
pub fn build_extent_tree<E, F>(
    extents: &[Extent],
    block_size: usize,
    inode_seed: Option<u32>,
    mut alloc: F,
) -> std::result::Result<BuiltExtentTree, E>
where
    F: FnMut() -> std::result::Result<PhysBlock, E>,
    E: From<FormatError>,
{
    check_block_size(block_size)?;
    let root_cap = EXTENTS_IN_INODE;
    let per = entries_per_block(block_size);
    let mut i_block = [0u8; I_BLOCK_LEN];

    if extents.len() <= usize::from(root_cap) {
        let root = ExtentNode::new_leaf(root_cap, extents.to_vec())?;
        root.encode_root(&mut i_block)?;
        return Ok(BuiltExtentTree {
            i_block,
            depth: 0,
            blocks: Vec::new(),
        });
    }
    // Validate the whole list once (chunks alone would miss order across them).
    validate_extent_list(extents)?;
    if let Some(e) = extents
        .iter()
        .find(|e| e.start.0 == 0 || e.start.0 > MAX_PHYS_BLOCK)
    {
        return Err(
            FormatError::corrupt("extent", format!("{} starts at {}", e.logical, e.start)).into(),
        );
    }
    extent_tree_blocks(extents.len(), block_size)?;

    let mut blocks = Vec::new();
    let mut write_block = |node: ExtentNode| -> std::result::Result<ExtentIndex, E> {
        let phys = alloc()?;
        if phys.0 == 0 || phys.0 > MAX_PHYS_BLOCK {
            return Err(
                FormatError::corrupt("extent tree builder", format!("allocated {phys}")).into(),
            );
        }
        let first = node
            .first_logical()
            .ok_or_else(|| FormatError::corrupt("extent tree builder", "empty node"))?;
        let mut buf = vec![0u8; block_size];
        node.encode_block(&mut buf)?;
        if let Some(seed) = inode_seed {
            set_extent_block_csum(seed, &mut buf)?;
        }
        blocks.push((phys, buf));
        Ok(ExtentIndex {
            logical: first,
            leaf: phys,
        })
    };

    let mut level: Vec<ExtentIndex> = Vec::new();
    for chunk in extents.chunks(usize::from(per)) {
        level.push(write_block(ExtentNode::new_leaf(per, chunk.to_vec())?)?);
    }
    let mut depth: u16 = 1;
    while level.len() > usize::from(root_cap) {
        let mut upper = Vec::with_capacity(level.len().div_ceil(usize::from(per)));
        for chunk in level.chunks(usize::from(per)) {
            upper.push(write_block(ExtentNode::new_index(
                per,
                depth,
                chunk.to_vec(),
            )?)?);
        }
        level = upper;
        depth += 1;
        if depth > MAX_DEPTH {
            return Err(too_deep(extents.len()).into());
        }
    }
    let root = ExtentNode::new_index(root_cap, depth, level)?;
    root.encode_root(&mut i_block)?;
    Ok(BuiltExtentTree {
        i_block,
        depth,
        blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(logical: u32, len: u16, start: u64) -> Extent {
        Extent {
            logical: LogicalBlock(logical),
            len,
            start: PhysBlock(start),
            unwritten: false,
        }
    }

    #[test]
    fn capacities_match_the_kernel() {
        assert_eq!(entries_per_block(1024), 84);
        assert_eq!(entries_per_block(2048), 169);
        assert_eq!(entries_per_block(4096), 340);
        assert_eq!(entries_per_block(65536), 5460);
        for bs in [1024usize, 2048, 4096, 8192, 16384, 32768, 65536] {
            let tail = HEADER_LEN + usize::from(entries_per_block(bs)) * ENTRY_LEN;
            assert!(tail + TAIL_LEN <= bs);
        }
    }

    #[test]
    fn extent_lengths_encode_unwritten_above_32768() {
        let mut b = [0u8; 12];
        let e = ext(7, 32768, 0x1234_5678_9abc);
        e.encode(&mut b).unwrap();
        assert_eq!(u16_at(&b, EE_LEN), 32768);
        assert_eq!(Extent::parse(&b).unwrap(), e);
        assert_eq!(u16_at(&b, EE_START_HI), 0x1234);
        assert_eq!(u32_at(&b, EE_START_LO), 0x5678_9abc);

        let u = Extent {
            unwritten: true,
            len: 32767,
            ..e
        };
        u.encode(&mut b).unwrap();
        assert_eq!(u16_at(&b, EE_LEN), 65535);
        assert_eq!(Extent::parse(&b).unwrap(), u);

        assert!(Extent { len: 32768, ..u }.encode(&mut b).is_err());
        assert!(ext(0, 0, 5).encode(&mut b).is_err());
        assert!(ext(0, 1, 1 << 48).encode(&mut b).is_err());
    }

    #[test]
    fn root_round_trips_and_zero_fills() {
        let node = ExtentNode::new_leaf(4, vec![ext(0, 3, 100), ext(10, 1, 200)]).unwrap();
        let mut ib = [0xffu8; 60];
        node.encode_root(&mut ib).unwrap();
        assert_eq!(&ib[..2], &[0x0a, 0xf3]);
        assert!(ib[36..].iter().all(|&b| b == 0));
        assert_eq!(ExtentNode::parse_root(&ib).unwrap(), node);
        assert_eq!(node.find_extent(LogicalBlock(2)), Some(&ext(0, 3, 100)));
        assert_eq!(node.find_extent(LogicalBlock(3)), None);
        assert_eq!(
            ext(0, 3, 100).phys_of(LogicalBlock(2)),
            Some(PhysBlock(102))
        );
    }

    #[test]
    fn parser_rejects_bad_nodes() {
        let good = ExtentNode::new_leaf(4, vec![ext(0, 3, 100), ext(10, 1, 200)]).unwrap();
        let mut ib = [0u8; 60];
        good.encode_root(&mut ib).unwrap();

        let mut b = ib;
        b[0] = 0;
        assert!(matches!(
            ExtentNode::parse_root(&b),
            Err(FormatError::BadMagic { .. })
        ));
        let mut b = ib;
        put_u16(&mut b, EH_MAX, 5);
        assert!(ExtentNode::parse_root(&b).is_err());
        let mut b = ib;
        put_u16(&mut b, EH_MAX, 0);
        assert!(ExtentNode::parse_root(&b).is_err());
        let mut b = ib;
        put_u16(&mut b, EH_ENTRIES, 5);
        assert!(ExtentNode::parse_root(&b).is_err());
        let mut b = ib;
        put_u16(&mut b, EH_DEPTH, 6);
        assert!(ExtentNode::parse_root(&b).is_err());
        // Overlap: second extent starts inside the first.
        let mut b = ib;
        put_u32(&mut b, HEADER_LEN + ENTRY_LEN + EE_BLOCK, 2);
        assert!(ExtentNode::parse_root(&b).is_err());
        // Zero length.
        let mut b = ib;
        put_u16(&mut b, HEADER_LEN + EE_LEN, 0);
        assert!(ExtentNode::parse_root(&b).is_err());
        // Passing 2^32.
        let mut b = ib;
        put_u32(&mut b, HEADER_LEN + ENTRY_LEN + EE_BLOCK, u32::MAX);
        put_u16(&mut b, HEADER_LEN + ENTRY_LEN + EE_LEN, 2);
        assert!(ExtentNode::parse_root(&b).is_err());
        put_u16(&mut b, HEADER_LEN + ENTRY_LEN + EE_LEN, 1);
        assert!(ExtentNode::parse_root(&b).is_ok());
        // Too short.
        assert!(ExtentNode::parse_root(&ib[..59]).is_err());
        assert!(ExtentNode::parse_block(&[0u8; 1000]).is_err());

        // Index entries out of order.
        let idx = ExtentNode::new_index(
            4,
            1,
            vec![
                ExtentIndex {
                    logical: LogicalBlock(5),
                    leaf: PhysBlock(9),
                },
                ExtentIndex {
                    logical: LogicalBlock(5),
                    leaf: PhysBlock(10),
                },
            ],
        )
        .unwrap();
        assert!(idx.encode_root(&mut [0u8; 60]).is_err());
    }

    #[test]
    fn block_pointers_are_checked_against_the_size() {
        let node = ExtentNode::new_leaf(4, vec![ext(0, 3, 100)]).unwrap();
        assert!(node.validate_blocks(103).is_ok());
        assert!(node.validate_blocks(102).is_err());
        let zero = ExtentNode::new_leaf(4, vec![ext(0, 3, 0)]).unwrap();
        assert!(zero.validate_blocks(1000).is_err());
        let idx = ExtentNode::new_index(
            4,
            1,
            vec![ExtentIndex {
                logical: LogicalBlock(0),
                leaf: PhysBlock(50),
            }],
        )
        .unwrap();
        assert!(idx.validate_blocks(51).is_ok());
        assert!(idx.validate_blocks(50).is_err());
    }

    #[test]
    fn block_csum_covers_the_bytes_before_the_tail() {
        let node = ExtentNode::new_leaf(84, vec![ext(0, 1, 5)]).unwrap();
        let mut blk = vec![0u8; 1024];
        node.encode_block(&mut blk).unwrap();
        set_extent_block_csum(0x1234, &mut blk).unwrap();
        assert_eq!(u32_at(&blk, 1020), crc32c(0x1234, &blk[..1020]));
        verify_extent_block_csum(0x1234, &blk).unwrap();
        assert!(verify_extent_block_csum(0x1235, &blk).is_err());
        blk[30] ^= 1;
        assert!(verify_extent_block_csum(0x1234, &blk).is_err());
    }

    fn many(n: u32, unwritten_every: u32) -> Vec<Extent> {
        (0..n)
            .map(|i| Extent {
                logical: LogicalBlock(i * 3),
                len: 2,
                start: PhysBlock(100_000 + u64::from(i) * 2),
                unwritten: unwritten_every != 0 && i % unwritten_every == 0,
            })
            .collect()
    }

    fn build_and_walk(n: u32, bs: usize) -> (BuiltExtentTree, ExtentWalk) {
        let list = many(n, 7);
        let mut next = 10u64;
        let built = build_extent_tree::<FormatError, _>(&list, bs, Some(0xabcd), || {
            next += 1;
            Ok(PhysBlock(next))
        })
        .unwrap();
        assert_eq!(
            built.tree_blocks(),
            extent_tree_blocks(list.len(), bs).unwrap()
        );
        let map: std::collections::HashMap<_, _> = built.blocks.iter().cloned().collect();
        let walk = walk_extent_tree::<FormatError, _>(
            &built.i_block,
            bs,
            1 << 40,
            Some(0xabcd),
            |b, buf| {
                buf.copy_from_slice(&map[&b]);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(walk.extents, list);
        assert_eq!(walk.depth, built.depth);
        assert_eq!(walk.tree_blocks.len(), built.blocks.len());
        (built, walk)
    }

    #[test]
    fn builder_makes_minimal_trees_of_every_depth() {
        assert_eq!(build_and_walk(0, 1024).0.depth, 0);
        assert_eq!(build_and_walk(4, 1024).0.depth, 0);
        let (t, _) = build_and_walk(5, 1024);
        assert_eq!((t.depth, t.tree_blocks()), (1, 1));
        let (t, _) = build_and_walk(4 * 84, 1024);
        assert_eq!((t.depth, t.tree_blocks()), (1, 4));
        let (t, _) = build_and_walk(4 * 84 + 1, 1024);
        assert_eq!((t.depth, t.tree_blocks()), (2, 5 + 1));
        let (t, _) = build_and_walk(4 * 84 * 84 + 1, 1024);
        assert_eq!(t.depth, 3);
        assert_eq!(t.tree_blocks(), 337 + 5 + 1);
        let (t, _) = build_and_walk(5000, 4096);
        assert_eq!((t.depth, t.tree_blocks()), (2, 15 + 1));
    }

    #[test]
    fn builder_rejects_bad_lists() {
        let mut list = many(10, 0);
        list.swap(3, 4);
        let r = build_extent_tree::<FormatError, _>(&list, 1024, None, || Ok(PhysBlock(1)));
        assert!(r.is_err());
        let list = vec![ext(0, 1, 5), ext(0, 1, 6)];
        let r = build_extent_tree::<FormatError, _>(&list, 1024, None, || Ok(PhysBlock(1)));
        assert!(r.is_err());
        let r = build_extent_tree::<FormatError, _>(&many(10, 0), 1024, None, || Ok(PhysBlock(0)));
        assert!(r.is_err());
    }

    #[test]
    fn walker_rejects_a_block_referenced_twice_and_bad_children() {
        let list = many(200, 0);
        let mut next = 10u64;
        let built = build_extent_tree::<FormatError, _>(&list, 1024, None, || {
            next += 1;
            Ok(PhysBlock(next))
        })
        .unwrap();
        let map: std::collections::HashMap<_, _> = built.blocks.iter().cloned().collect();
        let read = |b: PhysBlock, buf: &mut [u8]| -> Result<()> {
            let data = map
                .get(&b)
                .ok_or_else(|| FormatError::corrupt("test", "no such block"))?;
            buf.copy_from_slice(data);
            Ok(())
        };
        // Point the second index entry at the first leaf.
        let mut ib = built.i_block;
        put_u32(&mut ib, HEADER_LEN + ENTRY_LEN + EI_LEAF_LO, 11);
        assert!(walk_extent_tree(&ib, 1024, 1 << 20, None, read).is_err());
        // Shift the second index entry's start: the child no longer matches.
        let mut ib = built.i_block;
        put_u32(&mut ib, HEADER_LEN + ENTRY_LEN + EI_BLOCK, 84 * 3 + 1);
        assert!(walk_extent_tree(&ib, 1024, 1 << 20, None, read).is_err());
        // Checksums were not set: verifying them fails.
        assert!(walk_extent_tree(&built.i_block, 1024, 1 << 20, Some(1), read).is_err());
        assert!(walk_extent_tree(&built.i_block, 1024, 1 << 20, None, read).is_ok());
        // Tree blocks beyond the file system.
        let mut ib = built.i_block;
        put_u32(&mut ib, HEADER_LEN + ENTRY_LEN + EI_LEAF_LO, 1 << 20);
        assert!(walk_extent_tree(&ib, 1024, 1 << 20, None, read).is_err());
        // Data beyond the file system.
        assert!(walk_extent_tree(&built.i_block, 1024, 100_100, None, read).is_err());
    }
}
