//! Extended attributes: names, the in-inode area, xattr blocks, their hashes
//! and checksum, and the compact on-disk form of POSIX ACLs.
//!
//! # Names
//!
//! A full name such as `user.foo` is stored as a name index (the prefix) and
//! the rest of the name (`foo`). Indexes: 1 `user.`, 2
//! `system.posix_acl_access`, 3 `system.posix_acl_default`, 4 `trusted.`,
//! 5 Lustre (no prefix, never produced), 6 `security.`, 7 `system.` (e.g.
//! `system.data` of inline-data inodes), 8 `system.richacl`. The two ACL names
//! and richacl are whole names: their stored suffix is empty. See
//! [`split_name`] and [`join_name`].
//!
//! # Entry (`struct ext4_xattr_entry`, 16 bytes + name)
//!
//! ```text
//! 0x00 u8   e_name_len     length of the suffix, no NUL
//! 0x01 u8   e_name_index   prefix index (above)
//! 0x02 le16 e_value_offs   value offset: from the first entry (in-inode) or
//!                          from the start of the block (xattr block)
//! 0x04 le32 e_value_inum   inode holding the value (ea_inode feature), else 0
//! 0x08 le32 e_value_size   value length in bytes
//! 0x0C le32 e_hash         hash of name and value ([`entry_hash`]); 0 is
//!                          allowed (and usual) for in-inode entries
//! 0x10 ..   e_name         e_name_len bytes, zero-padded to a multiple of 4
//! ```
//!
//! The entry table ends with 4 zero bytes. Values are stored after the table,
//! packed from the end of the area downwards, each zero-padded to 4 bytes.
//!
//! # In-inode area
//!
//! Starts at inode offset 128 + `i_extra_isize` and runs to the end of the
//! on-disk inode: a le32 magic 0xEA020000 (`h_magic` of
//! `ext4_xattr_ibody_header`), then the entries. Value offsets count from the
//! first entry, i.e. from 4 bytes into the area. Entries keep their insertion
//! order. Without the magic the inode simply has no in-inode attributes.
//!
//! # Xattr block (`struct ext4_xattr_header`, 32 bytes, then entries)
//!
//! ```text
//! 0x00 le32 h_magic     0xEA020000
//! 0x04 le32 h_refcount  inodes sharing this block
//! 0x08 le32 h_blocks    always 1
//! 0x0C le32 h_hash      [`block_hash`] of the entry hashes (0: do not share)
//! 0x10 le32 h_checksum  crc32c(fs seed, le64 block number, block with this
//!                       field zeroed) with metadata_csum, else 0
//! 0x14 le32 h_reserved[3]
//! ```
//!
//! Block entries are sorted by (index, name length, name): the kernel's lookup
//! stops at the first entry that sorts after the wanted name, so an unsorted
//! block hides attributes. Value offsets count from the start of the block.
//!
//! # Invariants checked by the parsers
//!
//! Every entry and its name lies inside the area with room for the
//! terminator after it; every inline value lies inside the area, after the
//! terminator of the entry table, padding included, and the padded values
//! do not overlap each other (e2fsck's rule); values held in EA inodes
//! appear only when the caller says the ea_inode feature is on, with a size
//! of 1..=16 MiB and an inode other than the root (the kernel's
//! `check_xattrs`; e2fsck 1.47.0 still accepts size 0, see its
//! f_ea_zero_size test image, which current kernels refuse).
//!
//! # POSIX ACLs
//!
//! ext4 stores `system.posix_acl_*` values in its own compact form
//! (`ext4_acl_header` version 1; 4-byte entries for USER_OBJ, GROUP_OBJ, MASK
//! and OTHER, 8-byte entries with an id for USER and GROUP), not in the
//! version-2 form that getxattr/setxattr exchange with user space (8-byte
//! entries, id 0xFFFFFFFF where unused). See [`acl_disk_to_xattr`] and
//! [`acl_xattr_to_disk`].

use std::cmp::Ordering;

use super::bytes::{get_u16, get_u32, get_u8, put_u16, put_u32, require_len, u32_at};
use super::csum::crc32c;
use super::error::{FormatError, Result};

/// `h_magic` of xattr blocks and of the in-inode area header.
pub const XATTR_MAGIC: u32 = 0xEA02_0000;
/// Size of `struct ext4_xattr_header` (xattr block header).
pub const BLOCK_HEADER_LEN: usize = 32;
/// Size of `struct ext4_xattr_ibody_header` (the magic before in-inode entries).
pub const IBODY_HEADER_LEN: usize = 4;
/// Fixed part of `struct ext4_xattr_entry`, before the name.
pub const ENTRY_HEADER_LEN: usize = 16;
/// The 4 zero bytes ending an entry table.
pub const TERMINATOR_LEN: usize = 4;
/// Longest name suffix (`e_name_len` is a byte).
pub const MAX_NAME_LEN: usize = 255;
/// Largest value the kernel accepts in an EA inode (`EXT4_XATTR_SIZE_MAX`).
pub const MAX_VALUE_SIZE: u32 = 1 << 24;
/// The most inodes that may share one xattr block (`EXT4_XATTR_REFCOUNT_MAX`).
pub const REFCOUNT_MAX: u32 = 1024;
/// Size of the base inode; the in-inode area starts after it plus `i_extra_isize`.
pub const GOOD_OLD_INODE_SIZE: usize = 128;

// Block header offsets.
const H_MAGIC: usize = 0x00; // h_magic
const H_REFCOUNT: usize = 0x04; // h_refcount
const H_BLOCKS: usize = 0x08; // h_blocks
const H_HASH: usize = 0x0C; // h_hash
const H_CHECKSUM: usize = 0x10; // h_checksum

// Entry offsets.
const E_NAME_LEN: usize = 0x00; // e_name_len
const E_NAME_INDEX: usize = 0x01; // e_name_index
const E_VALUE_OFFS: usize = 0x02; // e_value_offs
const E_VALUE_INUM: usize = 0x04; // e_value_inum
const E_VALUE_SIZE: usize = 0x08; // e_value_size
const E_HASH: usize = 0x0C; // e_hash
const E_NAME: usize = 0x10; // e_name

const NAME_HASH_SHIFT: u32 = 5;
const VALUE_HASH_SHIFT: u32 = 16;
const BLOCK_HASH_SHIFT: u32 = 16;

/// Name indexes (`EXT4_XATTR_INDEX_*`).
pub mod index {
    pub const USER: u8 = 1;
    pub const POSIX_ACL_ACCESS: u8 = 2;
    pub const POSIX_ACL_DEFAULT: u8 = 3;
    pub const TRUSTED: u8 = 4;
    pub const LUSTRE: u8 = 5;
    pub const SECURITY: u8 = 6;
    pub const SYSTEM: u8 = 7;
    pub const RICHACL: u8 = 8;
}

/// Whole names stored with an empty suffix.
const WHOLE_NAMES: [(&[u8], u8); 3] = [
    (b"system.posix_acl_access", index::POSIX_ACL_ACCESS),
    (b"system.posix_acl_default", index::POSIX_ACL_DEFAULT),
    (b"system.richacl", index::RICHACL),
];

/// Prefixes followed by a non-empty suffix.
const PREFIXES: [(&[u8], u8); 4] = [
    (b"user.", index::USER),
    (b"trusted.", index::TRUSTED),
    (b"security.", index::SECURITY),
    (b"system.", index::SYSTEM),
];

/// Splits a full attribute name into its index and stored suffix:
/// `user.foo` gives `(1, "foo")`, `system.posix_acl_access` gives `(2, "")`.
/// `None` for a name with no known prefix, an empty suffix after a prefix, or
/// a suffix longer than [`MAX_NAME_LEN`].
pub fn split_name(full: &[u8]) -> Option<(u8, &[u8])> {
    for (whole, idx) in WHOLE_NAMES {
        if full == whole {
            return Some((idx, &full[full.len()..]));
        }
    }
    for (prefix, idx) in PREFIXES {
        if let Some(rest) = full.strip_prefix(prefix) {
            if rest.is_empty() || rest.len() > MAX_NAME_LEN {
                return None;
            }
            return Some((idx, rest));
        }
    }
    None
}

/// The prefix an index stands for (the whole name for the ACL and richacl
/// indexes); `None` for an unknown index (including 5, Lustre).
pub fn index_prefix(idx: u8) -> Option<&'static [u8]> {
    WHOLE_NAMES
        .iter()
        .chain(PREFIXES.iter())
        .find(|(_, i)| *i == idx)
        .map(|(p, _)| *p)
}

/// Joins an index and a stored suffix into the full name (the inverse of
/// [`split_name`]); `None` for an unknown index.
pub fn join_name(idx: u8, suffix: &[u8]) -> Option<Vec<u8>> {
    let prefix = index_prefix(idx)?;
    let mut full = Vec::with_capacity(prefix.len() + suffix.len());
    full.extend_from_slice(prefix);
    full.extend_from_slice(suffix);
    Some(full)
}

/// `len` rounded up to a multiple of 4 (`EXT4_XATTR_SIZE`), saturating.
fn pad4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// On-disk size of an entry with a name of `name_len` bytes (`EXT4_XATTR_LEN`).
pub fn entry_len(name_len: usize) -> usize {
    pad4(ENTRY_HEADER_LEN.saturating_add(name_len))
}

/// Space a value of `value_len` bytes takes when stored inline (`EXT4_XATTR_SIZE`).
pub fn value_space(value_len: usize) -> usize {
    pad4(value_len)
}

/// One attribute to store: index, stored suffix and value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Xattr {
    pub index: u8,
    /// The name without its prefix (see [`split_name`]).
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

impl Xattr {
    pub fn new(index: u8, name: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Xattr {
            index,
            name: name.into(),
            value: value.into(),
        }
    }

    /// From a full name such as `user.foo`; `None` if [`split_name`] rejects it.
    pub fn from_full_name(full: &[u8], value: impl Into<Vec<u8>>) -> Option<Self> {
        let (idx, suffix) = split_name(full)?;
        Some(Xattr::new(idx, suffix, value))
    }

    /// The full name (`None` for an unknown index).
    pub fn full_name(&self) -> Option<Vec<u8>> {
        join_name(self.index, &self.name)
    }

    /// Bytes this attribute takes in an entry table plus value area.
    pub fn space(&self) -> usize {
        entry_len(self.name.len()).saturating_add(value_space(self.value.len()))
    }

    /// The order of entries in an xattr block: index, name length, name.
    pub fn block_order(&self, other: &Xattr) -> Ordering {
        sort_key_cmp((self.index, &self.name), (other.index, &other.name))
    }
}

fn sort_key_cmp(a: (u8, &[u8]), b: (u8, &[u8])) -> Ordering {
    a.0.cmp(&b.0)
        .then(a.1.len().cmp(&b.1.len()))
        .then_with(|| a.1.cmp(b.1))
}

/// One entry as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XattrEntry {
    /// `e_name_index`.
    pub index: u8,
    /// `e_name`: the suffix after the prefix.
    pub name: Vec<u8>,
    /// The inline value; empty when the value lives in an EA inode.
    pub value: Vec<u8>,
    /// `e_value_inum`: the EA inode holding the value, or 0.
    pub value_inum: u32,
    /// `e_value_size`.
    pub value_size: u32,
    /// `e_value_offs` as stored.
    pub value_offs: u16,
    /// `e_hash` as stored.
    pub hash: u32,
    /// [`entry_hash`] of the name and the padded value bytes as stored
    /// (0 for values in EA inodes).
    pub computed_hash: u32,
    /// [`entry_hash_signed`] of the same (the legacy signed-char variant).
    pub computed_hash_signed: u32,
}

impl XattrEntry {
    /// Whether `e_hash` matches the name and inline value, in the current
    /// (unsigned) or the legacy (signed-char) variant. For in-inode entries
    /// a stored 0 is also valid (`in_inode`). Entries whose value lives in an
    /// EA inode cannot be checked here (see [`ea_inode_entry_hash`]) and
    /// return `true`.
    pub fn hash_valid(&self, in_inode: bool) -> bool {
        self.value_inum != 0
            || (in_inode && self.hash == 0)
            || self.hash == self.computed_hash
            || self.hash == self.computed_hash_signed
    }

    /// The full name (`None` for an unknown index).
    pub fn full_name(&self) -> Option<Vec<u8>> {
        join_name(self.index, &self.name)
    }

    /// The attribute, if its value is inline.
    pub fn to_xattr(&self) -> Result<Xattr> {
        if self.value_inum != 0 {
            return Err(FormatError::unsupported(
                "xattr entry",
                format!("value stored in EA inode {}", self.value_inum),
            ));
        }
        Ok(Xattr::new(
            self.index,
            self.name.clone(),
            self.value.clone(),
        ))
    }
}

fn hash_words(mut hash: u32, value: &[u8]) -> u32 {
    for chunk in value.chunks(4) {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        hash = (hash << VALUE_HASH_SHIFT)
            ^ (hash >> (32 - VALUE_HASH_SHIFT))
            ^ u32::from_le_bytes(word);
    }
    hash
}

/// `ext4_xattr_hash_entry`: the hash of a name suffix and a value, taking
/// name bytes as unsigned (the kernel since 6.2 and e2fsprogs 1.47). The
/// value is hashed as little-endian 32-bit words, zero-padded to 4 bytes.
pub fn entry_hash(name: &[u8], value: &[u8]) -> u32 {
    let hash = name.iter().fold(0u32, |h, &b| {
        (h << NAME_HASH_SHIFT) ^ (h >> (32 - NAME_HASH_SHIFT)) ^ u32::from(b)
    });
    hash_words(hash, value)
}

/// `ext4_xattr_hash_entry_signed`: the legacy variant that sign-extends name
/// bytes of 0x80 and above (older kernels on signed-char architectures such
/// as x86). Equal to [`entry_hash`] for ASCII names. Accept either when
/// verifying.
pub fn entry_hash_signed(name: &[u8], value: &[u8]) -> u32 {
    let hash = name.iter().fold(0u32, |h, &b| {
        // Sign extension of a C `char`, written without a cast.
        let c = if b >= 0x80 {
            0xFFFF_FF00 | u32::from(b)
        } else {
            u32::from(b)
        };
        (h << NAME_HASH_SHIFT) ^ (h >> (32 - NAME_HASH_SHIFT)) ^ c
    });
    hash_words(hash, value)
}

/// The `e_hash` of an entry whose value lives in an EA inode: the name
/// hashed with the EA inode's value hash (stored in that inode's `i_atime`)
/// as the single value word. Returns the unsigned and the signed variant.
pub fn ea_inode_entry_hash(name: &[u8], ea_inode_hash: u32) -> (u32, u32) {
    let word = ea_inode_hash.to_le_bytes();
    (entry_hash(name, &word), entry_hash_signed(name, &word))
}

/// `ext4_xattr_rehash`: the block hash `h_hash` from the entry hashes in
/// table order; 0 as soon as one entry hash is 0 (such a block is never
/// shared).
pub fn block_hash(entry_hashes: impl IntoIterator<Item = u32>) -> u32 {
    let mut hash = 0u32;
    for e in entry_hashes {
        if e == 0 {
            return 0;
        }
        hash = (hash << BLOCK_HASH_SHIFT) ^ (hash >> (32 - BLOCK_HASH_SHIFT)) ^ e;
    }
    hash
}

/// Walks an entry table starting at `first` in `area`, with inline value
/// offsets counted from `value_base`. Returns the entries.
fn parse_entries(
    area: &[u8],
    first: usize,
    value_base: usize,
    ea_inode: bool,
    what: &'static str,
) -> Result<Vec<XattrEntry>> {
    let end = area.len();
    let mut pos = first;
    let mut entries = Vec::new();
    // Each entry takes at least 16 bytes, so the walk ends within
    // area.len() / 16 steps; the position strictly increases.
    loop {
        let Some(word) = get_u32(area, pos) else {
            return Err(FormatError::corrupt(
                what,
                format!("entry table runs past the end at offset {pos}"),
            ));
        };
        if word == 0 {
            break;
        }
        let name_len = get_u8(area, pos + E_NAME_LEN).map(usize::from);
        let next = name_len.map(|n| pos.saturating_add(entry_len(n)));
        let (Some(name_len), Some(next)) = (name_len, next) else {
            return Err(FormatError::corrupt(what, "truncated entry"));
        };
        if next.saturating_add(TERMINATOR_LEN) > end {
            return Err(FormatError::corrupt(
                what,
                format!("entry at offset {pos} runs past the end of the area"),
            ));
        }
        // All fixed fields and the name are below `next` <= end - 4.
        let index = area[pos + E_NAME_INDEX];
        let value_offs = get_u16(area, pos + E_VALUE_OFFS).unwrap_or(0);
        let value_inum = get_u32(area, pos + E_VALUE_INUM).unwrap_or(0);
        let value_size = get_u32(area, pos + E_VALUE_SIZE).unwrap_or(0);
        let hash = get_u32(area, pos + E_HASH).unwrap_or(0);
        let name = area[pos + E_NAME..pos + E_NAME + name_len].to_vec();
        entries.push(XattrEntry {
            index,
            name,
            value: Vec::new(),
            value_inum,
            value_size,
            value_offs,
            hash,
            computed_hash: 0,
            computed_hash_signed: 0,
        });
        pos = next;
    }
    let table_end = pos + TERMINATOR_LEN;

    // Values: inside the area, after the table, padded regions disjoint.
    let mut regions: Vec<(usize, usize)> = Vec::new();
    for e in &mut entries {
        if e.value_inum != 0 {
            if !ea_inode {
                return Err(FormatError::corrupt(
                    what,
                    format!(
                        "entry names EA inode {} without the ea_inode feature",
                        e.value_inum
                    ),
                ));
            }
            // The kernel's check_xattrs: not the root inode, a real size.
            if e.value_inum == 2 {
                return Err(FormatError::corrupt(
                    what,
                    "entry names the root inode as EA inode",
                ));
            }
            if e.value_size == 0 || e.value_size > MAX_VALUE_SIZE {
                return Err(FormatError::corrupt(
                    what,
                    format!("EA inode value size {} out of range", e.value_size),
                ));
            }
            continue;
        }
        if e.value_size == 0 {
            let h = (entry_hash(&e.name, &[]), entry_hash_signed(&e.name, &[]));
            (e.computed_hash, e.computed_hash_signed) = h;
            continue;
        }
        let size = usize::try_from(e.value_size)
            .map_err(|_| FormatError::corrupt(what, "value size does not fit in memory"))?;
        let start = value_base.saturating_add(usize::from(e.value_offs));
        let stop = start.saturating_add(size);
        // Like the kernel, the padded value must fit as well.
        if start < table_end || start.saturating_add(pad4(size)) > end {
            return Err(FormatError::corrupt(
                what,
                format!(
                    "value of {size} bytes at offset {} lies outside {table_end}..{end}",
                    e.value_offs
                ),
            ));
        }
        e.value = area[start..stop].to_vec();
        // The hash covers the padded value as stored (padding normally zero).
        let padded = &area[start..start + pad4(size)];
        e.computed_hash = entry_hash(&e.name, padded);
        e.computed_hash_signed = entry_hash_signed(&e.name, padded);
        regions.push((start, start.saturating_add(pad4(size))));
    }
    regions.sort_unstable();
    for pair in regions.windows(2) {
        if pair[1].0 < pair[0].1 {
            return Err(FormatError::corrupt(
                what,
                format!("values at offsets {} and {} overlap", pair[0].0, pair[1].0),
            ));
        }
    }
    Ok(entries)
}

/// Where the in-inode area lies in an on-disk inode of `inode_size` bytes
/// with the given `i_extra_isize`: `Ok(None)` when fewer than the 4 magic
/// bytes remain (no in-inode attributes possible), an error when
/// `i_extra_isize` is not a multiple of 4 or runs past the inode.
pub fn ibody_range(inode_size: usize, extra_isize: u16) -> Result<Option<std::ops::Range<usize>>> {
    let start = GOOD_OLD_INODE_SIZE + usize::from(extra_isize);
    if extra_isize & 3 != 0 || start > inode_size {
        return Err(FormatError::corrupt(
            "inode",
            format!("i_extra_isize {extra_isize} invalid for {inode_size}-byte inodes"),
        ));
    }
    if inode_size - start < IBODY_HEADER_LEN {
        return Ok(None);
    }
    Ok(Some(start..inode_size))
}

/// Parses the in-inode area (from 128 + `i_extra_isize` to the end of the
/// inode, magic included). No magic means no attributes: an empty list.
/// `ea_inode`: whether the ea_inode feature is on (else entries naming an EA
/// inode are corrupt).
pub fn parse_ibody(area: &[u8], ea_inode: bool) -> Result<Vec<XattrEntry>> {
    if area.len() < IBODY_HEADER_LEN || u32_at(area, 0) != XATTR_MAGIC {
        return Ok(Vec::new());
    }
    parse_entries(
        area,
        IBODY_HEADER_LEN,
        IBODY_HEADER_LEN,
        ea_inode,
        "in-inode xattrs",
    )
}

/// Whether the in-inode area starts with the xattr magic.
pub fn ibody_has_magic(area: &[u8]) -> bool {
    area.len() >= IBODY_HEADER_LEN && u32_at(area, 0) == XATTR_MAGIC
}

/// The header fields of an xattr block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XattrBlockHeader {
    /// `h_refcount`.
    pub refcount: u32,
    /// `h_blocks` (always 1 once validated).
    pub blocks: u32,
    /// `h_hash`.
    pub hash: u32,
    /// `h_checksum`.
    pub checksum: u32,
}

/// Parses an xattr block: checks the magic and `h_blocks == 1`, walks and
/// validates the entries. Checksum and hashes are not enforced here: see
/// [`verify_block_checksum`], [`XattrEntry::hash_valid`] and [`block_hash`].
pub fn parse_block(block: &[u8], ea_inode: bool) -> Result<(XattrBlockHeader, Vec<XattrEntry>)> {
    const WHAT: &str = "xattr block";
    require_len(block, BLOCK_HEADER_LEN + TERMINATOR_LEN, WHAT)?;
    let magic = u32_at(block, H_MAGIC);
    if magic != XATTR_MAGIC {
        return Err(FormatError::BadMagic {
            what: WHAT,
            found: u64::from(magic),
        });
    }
    let header = XattrBlockHeader {
        refcount: u32_at(block, H_REFCOUNT),
        blocks: u32_at(block, H_BLOCKS),
        hash: u32_at(block, H_HASH),
        checksum: u32_at(block, H_CHECKSUM),
    };
    if header.blocks != 1 {
        return Err(FormatError::corrupt(
            WHAT,
            format!("h_blocks is {}, not 1", header.blocks),
        ));
    }
    let entries = parse_entries(block, BLOCK_HEADER_LEN, 0, ea_inode, WHAT)?;
    Ok((header, entries))
}

/// Whether block entries are in the order the kernel's lookup needs.
pub fn entries_sorted(entries: &[XattrEntry]) -> bool {
    entries.windows(2).all(|p| {
        sort_key_cmp((p[0].index, &p[0].name), (p[1].index, &p[1].name)) != Ordering::Greater
    })
}

/// The block hash `h_hash` the entries of a parsed block call for.
pub fn block_hash_of(entries: &[XattrEntry]) -> u32 {
    block_hash(entries.iter().map(|e| e.hash))
}

/// `ext4_xattr_block_csum`: crc32c over the le64 block number and the block
/// with `h_checksum` taken as zero, seeded with the file system's checksum
/// seed.
pub fn block_checksum(fs_seed: u32, block_nr: u64, block: &[u8]) -> Result<u32> {
    require_len(block, BLOCK_HEADER_LEN, "xattr block")?;
    let mut crc = crc32c(fs_seed, &block_nr.to_le_bytes());
    crc = crc32c(crc, &block[..H_CHECKSUM]);
    crc = crc32c(crc, &[0u8; 4]);
    Ok(crc32c(crc, &block[H_CHECKSUM + 4..]))
}

/// Checks `h_checksum` (metadata_csum file systems only).
pub fn verify_block_checksum(fs_seed: u32, block_nr: u64, block: &[u8]) -> Result<()> {
    let computed = block_checksum(fs_seed, block_nr, block)?;
    let stored = u32_at(block, H_CHECKSUM);
    if stored != computed {
        return Err(FormatError::BadChecksum {
            what: "xattr block",
            stored,
            computed,
        });
    }
    Ok(())
}

/// Stores the checksum in `h_checksum` (metadata_csum file systems only).
pub fn set_block_checksum(fs_seed: u32, block_nr: u64, block: &mut [u8]) -> Result<()> {
    let csum = block_checksum(fs_seed, block_nr, block)?;
    put_u32(block, H_CHECKSUM, csum);
    Ok(())
}

/// Sets `h_refcount` in an xattr block (and nothing else; the checksum must
/// be set again afterwards).
pub fn set_block_refcount(block: &mut [u8], refcount: u32) -> Result<()> {
    require_len(block, BLOCK_HEADER_LEN, "xattr block")?;
    put_u32(block, H_REFCOUNT, refcount);
    Ok(())
}

/// Checks a list to be encoded: names fit a byte, indexes non-zero, no
/// duplicate (index, name).
fn check_list(xattrs: &[Xattr], what: &'static str) -> Result<()> {
    for x in xattrs {
        if x.name.len() > MAX_NAME_LEN {
            return Err(FormatError::corrupt(
                what,
                format!("name of {} bytes is longer than 255", x.name.len()),
            ));
        }
        if x.index == 0 {
            return Err(FormatError::corrupt(what, "name index 0"));
        }
    }
    let mut keys: Vec<(u8, &[u8])> = xattrs.iter().map(|x| (x.index, &x.name[..])).collect();
    keys.sort_unstable();
    if keys.windows(2).any(|p| p[0] == p[1]) {
        return Err(FormatError::corrupt(what, "duplicate attribute name"));
    }
    Ok(())
}

fn table_and_values(xattrs: &[Xattr]) -> usize {
    xattrs
        .iter()
        .fold(TERMINATOR_LEN, |acc, x| acc.saturating_add(x.space()))
}

/// Bytes an in-inode area needs for `xattrs` (magic, entries, terminator,
/// padded values).
pub fn ibody_space_needed(xattrs: &[Xattr]) -> usize {
    IBODY_HEADER_LEN.saturating_add(table_and_values(xattrs))
}

/// Bytes an xattr block needs for `xattrs` (header, entries, terminator,
/// padded values).
pub fn block_space_needed(xattrs: &[Xattr]) -> usize {
    BLOCK_HEADER_LEN.saturating_add(table_and_values(xattrs))
}

/// Writes the entry table at `first` and values packed down from the end of
/// `area`, value offsets counted from `value_base`. `hashes`: compute
/// `e_hash` (else 0). The caller has checked the space.
fn write_entries(
    area: &mut [u8],
    first: usize,
    value_base: usize,
    xattrs: &[&Xattr],
    hashes: bool,
) -> Result<()> {
    let mut pos = first;
    let mut value_top = area.len();
    for x in xattrs {
        let elen = entry_len(x.name.len());
        let entry = &mut area[pos..pos + elen];
        entry.fill(0);
        // Checked by check_list: the name length fits a byte.
        entry[E_NAME_LEN] = u8::try_from(x.name.len())
            .map_err(|_| FormatError::corrupt("xattr list", "name too long"))?;
        entry[E_NAME_INDEX] = x.index;
        entry[E_NAME..E_NAME + x.name.len()].copy_from_slice(&x.name);
        let size = u32::try_from(x.value.len())
            .map_err(|_| FormatError::corrupt("xattr list", "value too large"))?;
        put_u32(entry, E_VALUE_SIZE, size);
        if !x.value.is_empty() {
            let vspace = value_space(x.value.len());
            value_top -= vspace;
            let offs = u16::try_from(value_top - value_base)
                .map_err(|_| FormatError::unsupported("xattr list", "value offset beyond 65535"))?;
            put_u16(&mut area[pos..], E_VALUE_OFFS, offs);
            let slot = &mut area[value_top..value_top + vspace];
            slot.fill(0);
            slot[..x.value.len()].copy_from_slice(&x.value);
        }
        if hashes {
            put_u32(&mut area[pos..], E_HASH, entry_hash(&x.name, &x.value));
        }
        pos += elen;
    }
    // Terminator and the free space between the table and the values.
    area[pos..value_top].fill(0);
    Ok(())
}

/// Encodes `xattrs` (in the given order) into an in-inode area (from 128 +
/// `i_extra_isize` to the end of the inode). `e_hash` is written as 0, as the
/// kernel and e2fsprogs do. An empty list zeroes the area (no magic). Fails
/// with [`FormatError::TooShort`] if they do not fit, leaving `area` as it
/// was; see [`ibody_space_needed`].
pub fn encode_ibody(xattrs: &[Xattr], area: &mut [u8]) -> Result<()> {
    check_list(xattrs, "in-inode xattrs")?;
    if xattrs.is_empty() {
        area.fill(0);
        return Ok(());
    }
    let need = ibody_space_needed(xattrs);
    require_len(area, need, "in-inode xattr area")?;
    put_u32(area, 0, XATTR_MAGIC);
    let refs: Vec<&Xattr> = xattrs.iter().collect();
    write_entries(area, IBODY_HEADER_LEN, IBODY_HEADER_LEN, &refs, false)
}

/// Encodes `xattrs` into a whole xattr block: header (`h_refcount` as given,
/// `h_blocks` 1, `h_hash` from the entry hashes, `h_checksum` 0), entries
/// sorted by (index, name length, name) with their hashes, values packed
/// from the end. Call [`set_block_checksum`] afterwards on metadata_csum
/// file systems. Fails with [`FormatError::TooShort`] if they do not fit,
/// leaving `block` as it was; see [`block_space_needed`].
pub fn encode_block(xattrs: &[Xattr], refcount: u32, block: &mut [u8]) -> Result<()> {
    check_list(xattrs, "xattr block")?;
    let need = block_space_needed(xattrs);
    require_len(block, need, "xattr block")?;
    let mut sorted: Vec<&Xattr> = xattrs.iter().collect();
    sorted.sort_by(|a, b| a.block_order(b));
    block[..BLOCK_HEADER_LEN].fill(0);
    put_u32(block, H_MAGIC, XATTR_MAGIC);
    put_u32(block, H_REFCOUNT, refcount);
    put_u32(block, H_BLOCKS, 1);
    write_entries(block, BLOCK_HEADER_LEN, 0, &sorted, true)?;
    let hash = block_hash(sorted.iter().map(|x| entry_hash(&x.name, &x.value)));
    put_u32(block, H_HASH, hash);
    Ok(())
}

/// Where a set of attributes goes: in the inode, in an xattr block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// In-inode attributes, in the order given.
    pub ibody: Vec<Xattr>,
    /// Block attributes (in the order given; [`encode_block`] sorts them).
    pub block: Vec<Xattr>,
}

/// Decides where each attribute goes, as the kernel does when they are set
/// one after another and as `mke2fs -d` does: each in turn goes in the inode
/// if it still fits there (`ibody_area_len`: the bytes from 128 +
/// `i_extra_isize` to the end of the inode, 0 for 128-byte inodes), else in
/// the block (`block_size`). `system.data` (inline data) always stays in the
/// inode. Fails with [`FormatError::TooShort`] if an attribute fits in
/// neither (the value would need an EA inode).
pub fn place(xattrs: &[Xattr], ibody_area_len: usize, block_size: usize) -> Result<Placement> {
    check_list(xattrs, "xattr list")?;
    let mut placement = Placement::default();
    // Free bytes, with the magic/header and terminator already subtracted.
    let mut ibody_free = ibody_area_len.saturating_sub(IBODY_HEADER_LEN + TERMINATOR_LEN);
    let mut block_free = block_size.saturating_sub(BLOCK_HEADER_LEN + TERMINATOR_LEN);
    if ibody_area_len < IBODY_HEADER_LEN + TERMINATOR_LEN {
        ibody_free = 0;
    }
    for x in xattrs {
        let need = x.space();
        let inline_data = x.index == index::SYSTEM && x.name == b"data";
        if need <= ibody_free {
            ibody_free -= need;
            placement.ibody.push(x.clone());
        } else if inline_data {
            return Err(FormatError::TooShort {
                what: "in-inode xattr area (system.data)",
                need,
                have: ibody_free,
            });
        } else if need <= block_free {
            block_free -= need;
            placement.block.push(x.clone());
        } else {
            return Err(FormatError::TooShort {
                what: "xattr block",
                need,
                have: block_free,
            });
        }
    }
    Ok(placement)
}

/// POSIX ACL tags (`ACL_*` of `<linux/posix_acl.h>`).
pub mod acl_tag {
    pub const USER_OBJ: u16 = 0x01;
    pub const USER: u16 = 0x02;
    pub const GROUP_OBJ: u16 = 0x04;
    pub const GROUP: u16 = 0x08;
    pub const MASK: u16 = 0x10;
    pub const OTHER: u16 = 0x20;
}

/// `a_version` of ext4's on-disk ACLs (`EXT4_ACL_VERSION`).
pub const ACL_DISK_VERSION: u32 = 1;
/// `a_version` of the user-space xattr form (`POSIX_ACL_XATTR_VERSION`).
pub const ACL_XATTR_VERSION: u32 = 2;
/// The id of entries that have none (`ACL_UNDEFINED_ID`).
pub const ACL_UNDEFINED_ID: u32 = u32::MAX;
/// Most entries accepted in one ACL (the kernel caps the xattr size at
/// 64 KiB; this is far above anything a block can hold).
pub const ACL_MAX_ENTRIES: usize = 8191;
const ACL_PERM_BITS: u16 = 0o7;

/// One ACL entry. `id` is a uid or gid for USER and GROUP entries, else
/// [`ACL_UNDEFINED_ID`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AclEntry {
    pub tag: u16,
    pub perm: u16,
    pub id: u32,
}

fn acl_tag_has_id(tag: u16) -> Option<bool> {
    match tag {
        acl_tag::USER | acl_tag::GROUP => Some(true),
        acl_tag::USER_OBJ | acl_tag::GROUP_OBJ | acl_tag::MASK | acl_tag::OTHER => Some(false),
        _ => None,
    }
}

/// Parses ext4's on-disk ACL (`ext4_acl_header` version 1, then 4-byte
/// `ext4_acl_entry_short` or 8-byte `ext4_acl_entry` entries, all
/// little-endian). Checks the version, the tags and that the entries fill
/// the value exactly; not the entry order (see [`validate_acl`]).
pub fn parse_disk_acl(value: &[u8]) -> Result<Vec<AclEntry>> {
    const WHAT: &str = "on-disk ACL";
    require_len(value, 4, WHAT)?;
    let version = u32_at(value, 0);
    if version != ACL_DISK_VERSION {
        return Err(FormatError::corrupt(WHAT, format!("version {version}")));
    }
    let mut entries = Vec::new();
    let mut pos = 4;
    while pos < value.len() {
        if entries.len() >= ACL_MAX_ENTRIES {
            return Err(FormatError::corrupt(WHAT, "too many entries"));
        }
        let (Some(tag), Some(perm)) = (get_u16(value, pos), get_u16(value, pos + 2)) else {
            return Err(FormatError::corrupt(WHAT, "truncated entry"));
        };
        let Some(has_id) = acl_tag_has_id(tag) else {
            return Err(FormatError::corrupt(WHAT, format!("unknown tag {tag:#x}")));
        };
        let id = if has_id {
            let Some(id) = get_u32(value, pos + 4) else {
                return Err(FormatError::corrupt(WHAT, "truncated entry"));
            };
            pos += 8;
            id
        } else {
            pos += 4;
            ACL_UNDEFINED_ID
        };
        entries.push(AclEntry { tag, perm, id });
    }
    Ok(entries)
}

/// Encodes entries in ext4's on-disk ACL form.
pub fn encode_disk_acl(entries: &[AclEntry]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(4 + 8 * entries.len());
    out.extend_from_slice(&ACL_DISK_VERSION.to_le_bytes());
    for e in entries {
        let Some(has_id) = acl_tag_has_id(e.tag) else {
            return Err(FormatError::corrupt(
                "ACL",
                format!("unknown tag {:#x}", e.tag),
            ));
        };
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.perm.to_le_bytes());
        if has_id {
            out.extend_from_slice(&e.id.to_le_bytes());
        }
    }
    Ok(out)
}

/// Parses the user-space xattr form (`posix_acl_xattr_header` version 2,
/// then 8-byte `posix_acl_xattr_entry` entries, little-endian). Ids of
/// entries without one are normalised to [`ACL_UNDEFINED_ID`].
pub fn parse_xattr_acl(value: &[u8]) -> Result<Vec<AclEntry>> {
    const WHAT: &str = "ACL xattr";
    require_len(value, 4, WHAT)?;
    let version = u32_at(value, 0);
    if version != ACL_XATTR_VERSION {
        return Err(FormatError::corrupt(WHAT, format!("version {version}")));
    }
    let body = &value[4..];
    if body.len() & 7 != 0 || body.len() / 8 > ACL_MAX_ENTRIES {
        return Err(FormatError::corrupt(
            WHAT,
            format!("{} bytes of entries", body.len()),
        ));
    }
    body.chunks_exact(8)
        .map(|c| {
            let tag = u16::from_le_bytes([c[0], c[1]]);
            let perm = u16::from_le_bytes([c[2], c[3]]);
            let id = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
            match acl_tag_has_id(tag) {
                None => Err(FormatError::corrupt(WHAT, format!("unknown tag {tag:#x}"))),
                Some(true) => Ok(AclEntry { tag, perm, id }),
                Some(false) => Ok(AclEntry {
                    tag,
                    perm,
                    id: ACL_UNDEFINED_ID,
                }),
            }
        })
        .collect()
}

/// Encodes entries in the user-space xattr form (version 2).
pub fn encode_xattr_acl(entries: &[AclEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 8 * entries.len());
    out.extend_from_slice(&ACL_XATTR_VERSION.to_le_bytes());
    for e in entries {
        let id = match acl_tag_has_id(e.tag) {
            Some(true) => e.id,
            _ => ACL_UNDEFINED_ID,
        };
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

/// The kernel's `posix_acl_valid`: permission bits within rwx; entries in
/// the order USER_OBJ, USER*, GROUP_OBJ, GROUP*, MASK?, OTHER; a MASK when
/// there is any USER or GROUP entry; named entries with a real id. An empty
/// list is not valid here (an empty xattr means "remove the ACL").
pub fn validate_acl(entries: &[AclEntry]) -> Result<()> {
    const WHAT: &str = "ACL";
    #[derive(PartialEq)]
    enum State {
        UserObj,
        User,
        Group,
        Other,
        Done,
    }
    let mut state = State::UserObj;
    let mut needs_mask = false;
    for e in entries {
        if e.perm & !ACL_PERM_BITS != 0 {
            return Err(FormatError::corrupt(
                WHAT,
                format!("permission bits {:#o}", e.perm),
            ));
        }
        let ok = match e.tag {
            acl_tag::USER_OBJ if state == State::UserObj => {
                state = State::User;
                true
            }
            acl_tag::USER | acl_tag::GROUP => {
                needs_mask = true;
                let want = if e.tag == acl_tag::USER {
                    State::User
                } else {
                    State::Group
                };
                state == want && e.id != ACL_UNDEFINED_ID
            }
            acl_tag::GROUP_OBJ if state == State::User => {
                state = State::Group;
                true
            }
            acl_tag::MASK if state == State::Group => {
                state = State::Other;
                true
            }
            acl_tag::OTHER if state == State::Other || (state == State::Group && !needs_mask) => {
                state = State::Done;
                true
            }
            _ => false,
        };
        if !ok {
            return Err(FormatError::corrupt(
                WHAT,
                format!("entry with tag {:#x} out of place", e.tag),
            ));
        }
    }
    if state != State::Done {
        return Err(FormatError::corrupt(WHAT, "incomplete ACL"));
    }
    Ok(())
}

/// Converts an on-disk ACL value (version 1) to the user-space xattr form
/// (version 2), for getxattr of `system.posix_acl_*`.
pub fn acl_disk_to_xattr(disk: &[u8]) -> Result<Vec<u8>> {
    Ok(encode_xattr_acl(&parse_disk_acl(disk)?))
}

/// Converts a user-space ACL xattr (version 2) to ext4's on-disk form
/// (version 1), for setxattr of `system.posix_acl_*` and `mkfs -d`.
/// Validates it with [`validate_acl`] unless it has no entries.
pub fn acl_xattr_to_disk(xattr: &[u8]) -> Result<Vec<u8>> {
    let entries = parse_xattr_acl(xattr)?;
    if !entries.is_empty() {
        validate_acl(&entries)?;
    }
    encode_disk_acl(&entries)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::format::bytes::{u16_at, u32_at};
    use crate::format::testutil::{self as tu, fixture, fixture_text};

    type AttrMap = BTreeMap<Vec<u8>, Vec<u8>>;

    /// `getfattr -d -e hex -m - -R .` output: path -> full name -> value.
    fn parse_getfattr(text: &[u8]) -> BTreeMap<String, AttrMap> {
        let mut out: BTreeMap<String, AttrMap> = BTreeMap::new();
        let mut current = String::new();
        for line in text.split(|&b| b == b'\n') {
            if let Some(path) = line.strip_prefix(b"# file: ") {
                current = String::from_utf8_lossy(path).into_owned();
                out.entry(current.clone()).or_default();
            } else if let Some(eq) = line.windows(3).position(|w| w == b"=0x") {
                let value = tu::unhex(std::str::from_utf8(&line[eq + 1..]).unwrap());
                out.get_mut(&current)
                    .unwrap()
                    .insert(line[..eq].to_vec(), value);
            }
        }
        out
    }

    fn file_acl(inode: &[u8]) -> u64 {
        u64::from(u32_at(inode, 0x68)) | (u64::from(u16_at(inode, 0x76)) << 32)
    }

    fn ibody_of(inode: &[u8]) -> Option<&[u8]> {
        if inode.len() <= GOOD_OLD_INODE_SIZE {
            return None;
        }
        let extra = u16_at(inode, 0x80);
        ibody_range(inode.len(), extra).unwrap().map(|r| &inode[r])
    }

    /// What getfattr would show for a parsed entry (ACLs in xattr form).
    fn user_view(e: &XattrEntry) -> (Vec<u8>, Vec<u8>) {
        let name = e.full_name().expect("known index");
        let value = if e.index == index::POSIX_ACL_ACCESS || e.index == index::POSIX_ACL_DEFAULT {
            acl_disk_to_xattr(&e.value).expect("valid on-disk ACL")
        } else {
            e.value.clone()
        };
        (name, value)
    }

    struct KernelImage {
        name: &'static str,
        seed: u32,
        names: Vec<(u32, String)>,
    }

    fn kernel_image(name: &'static str) -> KernelImage {
        let sb = fixture(&format!("xattr/{name}/sb.bin"));
        let names = fixture_text(&format!("xattr/{name}/names.txt"))
            .lines()
            .map(|l| {
                let (ino, path) = l.split_once(' ').unwrap();
                (ino.parse().unwrap(), path.to_string())
            })
            .collect();
        KernelImage {
            name,
            seed: tu::sb_csum_seed(&sb),
            names,
        }
    }

    const KERNEL_IMAGES: [&str; 2] = ["k1k-i256", "k4k-i128"];

    #[test]
    fn kernel_written_xattrs_parse_to_what_getfattr_showed() {
        let mut blocks_seen = 0;
        for img in KERNEL_IMAGES.map(kernel_image) {
            let expected = parse_getfattr(&fixture(&format!("xattr/{}/getfattr.txt", img.name)));
            for (ino, path) in &img.names {
                let inode = fixture(&format!("xattr/{}/ino{ino}.bin", img.name));
                let mut got = AttrMap::new();
                if let Some(area) = ibody_of(&inode) {
                    for e in parse_ibody(area, false).unwrap() {
                        // The kernel leaves e_hash 0 in the inode.
                        assert_eq!(e.hash, 0, "{path}");
                        assert!(e.hash_valid(true));
                        let (n, v) = user_view(&e);
                        assert!(got.insert(n, v).is_none());
                    }
                }
                let blk_nr = file_acl(&inode);
                if blk_nr != 0 {
                    blocks_seen += 1;
                    let block = fixture(&format!("xattr/{}/blk{blk_nr}.bin", img.name));
                    verify_block_checksum(img.seed, blk_nr, &block).unwrap();
                    let (header, entries) = parse_block(&block, false).unwrap();
                    assert!(entries_sorted(&entries), "{path}");
                    assert_eq!(header.hash, block_hash_of(&entries), "{path}");
                    assert_ne!(header.hash, 0);
                    for e in &entries {
                        // Kernel 6.18 hashes names as unsigned chars.
                        assert_eq!(e.hash, e.computed_hash, "{path}");
                        assert!(e.hash_valid(false));
                        let (n, v) = user_view(e);
                        assert!(got.insert(n, v).is_none());
                    }
                }
                let want = expected.get(path).cloned().unwrap_or_default();
                assert_eq!(got, want, "{} {path}", img.name);
            }
        }
        assert!(blocks_seen >= 7);
    }

    #[test]
    fn identical_attribute_sets_share_one_block() {
        let img = kernel_image("k1k-i256");
        let ino_of = |p: &str| img.names.iter().find(|(_, n)| n == p).unwrap().0;
        let f5 = fixture(&format!("xattr/k1k-i256/ino{}.bin", ino_of("f5")));
        let f6 = fixture(&format!("xattr/k1k-i256/ino{}.bin", ino_of("f6")));
        assert_eq!(file_acl(&f5), file_acl(&f6));
        let block = fixture(&format!("xattr/k1k-i256/blk{}.bin", file_acl(&f5)));
        assert_eq!(parse_block(&block, false).unwrap().0.refcount, 2);
    }

    #[test]
    fn names_with_high_bytes_hash_differently_in_the_signed_variant() {
        // f4 holds user.\xe9t\xe9\xff in its block (kernel: unsigned hash).
        let img = kernel_image("k1k-i256");
        let ino = img.names.iter().find(|(_, n)| n == "f4").unwrap().0;
        let inode = fixture(&format!("xattr/k1k-i256/ino{ino}.bin"));
        let block = fixture(&format!("xattr/k1k-i256/blk{}.bin", file_acl(&inode)));
        let (_, entries) = parse_block(&block, false).unwrap();
        let e = entries.iter().find(|e| e.name == b"\xe9t\xe9\xff").unwrap();
        assert_eq!(e.hash, entry_hash(&e.name, &e.value));
        assert_ne!(e.hash, entry_hash_signed(&e.name, &e.value));
        assert_eq!(
            entry_hash(b"ascii", b"v"),
            entry_hash_signed(b"ascii", b"v")
        );
    }

    #[test]
    fn e2fsprogs_test_image_with_legacy_hashes_and_an_ea_inode() {
        let dir = "xattr/f_ea_unsigned_hash";
        let block = fixture(&format!("{dir}/blk19.bin"));
        let (_, entries) = parse_block(&block, true).unwrap();
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(e.full_name().unwrap(), "user.emoji_🦑🦋🦉🦒".as_bytes());
        // The current (unsigned) variant; the legacy one differs here.
        assert_eq!(e.hash, e.computed_hash);
        assert_ne!(e.hash, e.computed_hash_signed);
        assert!(e.hash_valid(false));
        verify_block_checksum(
            tu::sb_csum_seed(&fixture(&format!("{dir}/sb.bin"))),
            19,
            &block,
        )
        .unwrap();

        // Inode 15 keeps its value in EA inode 16, whose i_atime holds the
        // value hash.
        let inode = fixture(&format!("{dir}/ino15.bin"));
        let area = ibody_of(&inode).unwrap();
        assert!(matches!(
            parse_ibody(area, false),
            Err(FormatError::Corrupt { .. })
        ));
        let entries = parse_ibody(area, true).unwrap();
        let e = &entries[0];
        assert_eq!((e.value_inum, e.value_size), (16, 1280));
        assert!(e.value.is_empty());
        assert!(matches!(e.to_xattr(), Err(FormatError::Unsupported { .. })));
        let ea_inode = fixture(&format!("{dir}/ino16.bin"));
        let ea_hash = u32_at(&ea_inode, 0x08); // i_atime
        let (unsigned, signed) = ea_inode_entry_hash(&e.name, ea_hash);
        assert!(e.hash == unsigned || e.hash == signed);
    }

    #[test]
    fn encoding_parsed_kernel_xattrs_reproduces_the_kernel_bytes() {
        let mut identical_blocks = 0;
        for img in KERNEL_IMAGES.map(kernel_image) {
            for (ino, path) in &img.names {
                let inode = fixture(&format!("xattr/{}/ino{ino}.bin", img.name));
                if let Some(area) = ibody_of(&inode) {
                    let list: Vec<Xattr> = parse_ibody(area, false)
                        .unwrap()
                        .iter()
                        .map(|e| e.to_xattr().unwrap())
                        .collect();
                    if !list.is_empty() {
                        let mut out = vec![0xAAu8; area.len()];
                        encode_ibody(&list, &mut out).unwrap();
                        assert_eq!(out, area, "{} {path}", img.name);
                    }
                }
                let blk_nr = file_acl(&inode);
                if blk_nr == 0 {
                    continue;
                }
                let block = fixture(&format!("xattr/{}/blk{blk_nr}.bin", img.name));
                let (header, entries) = parse_block(&block, false).unwrap();
                let list: Vec<Xattr> = entries.iter().map(|e| e.to_xattr().unwrap()).collect();
                let mut out = vec![0x55u8; block.len()];
                encode_block(&list, header.refcount, &mut out).unwrap();
                set_block_checksum(img.seed, blk_nr, &mut out).unwrap();
                let (h2, e2) = parse_block(&out, false).unwrap();
                let key = |e: &XattrEntry| (e.index, e.name.clone(), e.value.clone(), e.hash);
                let want: Vec<_> = entries.iter().map(key).collect();
                assert_eq!(e2.iter().map(key).collect::<Vec<_>>(), want, "{path}");
                assert_eq!((h2.refcount, h2.hash), (header.refcount, header.hash));
                verify_block_checksum(img.seed, blk_nr, &out).unwrap();
                // The kernel packs values in the order they were set; ours
                // follow the sorted entries. Those agree unless the
                // attributes were set out of order (the ACL block of g1).
                if out == block {
                    identical_blocks += 1;
                } else {
                    assert_eq!((img.name, path.as_str()), ("k4k-i128", "g1"));
                }
            }
        }
        assert!(identical_blocks >= 6, "{identical_blocks}");
    }

    /// Offsets of the entries of an entry table starting at `first`.
    fn entry_offsets(area: &[u8], first: usize) -> Vec<usize> {
        let mut pos = first;
        let mut out = Vec::new();
        while u32_at(area, pos) != 0 {
            out.push(pos);
            pos += entry_len(usize::from(area[pos]));
        }
        out
    }

    /// The inode checksum (i_checksum_lo at 0x7C, i_checksum_hi at 0x82).
    fn set_inode_checksum(seed: u32, ino: u32, inode: &mut [u8]) {
        inode[0x7C..0x7E].fill(0);
        inode[0x82..0x84].fill(0);
        let mut crc = crc32c(seed, &ino.to_le_bytes());
        crc = crc32c(crc, &inode[0x64..0x68]); // i_generation
        crc = crc32c(crc, inode);
        put_u16(inode, 0x7C, (crc & 0xFFFF) as u16);
        put_u16(inode, 0x82, (crc >> 16) as u16);
    }

    #[test]
    fn e2fsck_accepts_what_we_encode_including_legacy_signed_hashes() {
        let dir = tu::TempDir::new("xattr-e2fsck");
        let img = dir.join("img");
        tu::mkfs(&img, 8, &["-b", "1024", "-I", "256"]);
        std::fs::write(dir.join("data"), b"hello").unwrap();
        std::fs::write(dir.join("big"), vec![b'b'; 300]).unwrap();
        tu::debugfs(
            &img,
            true,
            &format!(
                "write {} f1\nea_set f1 user.seed x\nea_set -f {} f1 user.blockseed\n",
                dir.join("data").display(),
                dir.join("big").display()
            ),
        );
        let sb = tu::read_at(&img, 1024, 1024);
        let seed = tu::sb_csum_seed(&sb);
        let ino: u32 = 12;
        let inode_off = tu::inode_offset(&img, ino, 1024);
        let mut inode = tu::read_at(&img, inode_off, 256);
        let blk_nr = file_acl(&inode);
        assert_ne!(blk_nr, 0);

        let acl = acl_xattr_to_disk(&encode_xattr_acl(&[
            AclEntry {
                tag: acl_tag::USER_OBJ,
                perm: 6,
                id: ACL_UNDEFINED_ID,
            },
            AclEntry {
                tag: acl_tag::USER,
                perm: 7,
                id: 1000,
            },
            AclEntry {
                tag: acl_tag::GROUP_OBJ,
                perm: 4,
                id: ACL_UNDEFINED_ID,
            },
            AclEntry {
                tag: acl_tag::MASK,
                perm: 7,
                id: ACL_UNDEFINED_ID,
            },
            AclEntry {
                tag: acl_tag::OTHER,
                perm: 4,
                id: ACL_UNDEFINED_ID,
            },
        ]))
        .unwrap();
        let list = vec![
            Xattr::from_full_name(b"user.alpha", b"hello".to_vec()).unwrap(),
            Xattr::from_full_name(b"system.posix_acl_access", acl).unwrap(),
            Xattr::from_full_name(b"user.big", vec![7u8; 200]).unwrap(),
            Xattr::from_full_name(b"security.empty", Vec::new()).unwrap(),
            Xattr::from_full_name(b"user.caf\xe9\xff", b"legacy".to_vec()).unwrap(),
            Xattr::from_full_name(b"trusted.t", b"abcdefgh".to_vec()).unwrap(),
            Xattr::from_full_name(b"user.mid", vec![9u8; 40]).unwrap(),
        ];
        let area_range = ibody_range(256, u16_at(&inode, 0x80)).unwrap().unwrap();
        let placement = place(&list, area_range.len(), 1024).unwrap();
        assert!(!placement.ibody.is_empty() && !placement.block.is_empty());
        encode_ibody(&placement.ibody, &mut inode[area_range]).unwrap();
        let mut block = vec![0u8; 1024];
        encode_block(&placement.block, 1, &mut block).unwrap();

        // Store the legacy signed hash for the high-byte name, as an old
        // kernel would have, and fix h_hash and the checksum accordingly.
        let (_, entries) = parse_block(&block, false).unwrap();
        let k = entries
            .iter()
            .position(|e| e.name == b"caf\xe9\xff")
            .unwrap();
        let off = entry_offsets(&block, BLOCK_HEADER_LEN)[k];
        let signed = entries[k].computed_hash_signed;
        assert_ne!(signed, entries[k].computed_hash);
        put_u32(&mut block, off + E_HASH, signed);
        let (_, entries) = parse_block(&block, false).unwrap();
        assert!(entries[k].hash_valid(false));
        let h = block_hash_of(&entries);
        put_u32(&mut block, H_HASH, h);
        set_block_checksum(seed, blk_nr, &mut block).unwrap();

        set_inode_checksum(seed, ino, &mut inode);
        tu::write_at(&img, inode_off, &inode);

        // First a wrong entry hash: e2fsck must notice it.
        let mut bad = block.clone();
        put_u32(&mut bad, off + E_HASH, signed ^ 1);
        set_block_checksum(seed, blk_nr, &mut bad).unwrap();
        tu::write_at(&img, blk_nr * 1024, &bad);
        let (code, out) = tu::run("e2fsck", &["-fn", img.to_str().unwrap()]);
        assert_eq!(code, 4, "{out}");

        // Unsorted entries (reversed), with valid hashes and checksum.
        let mut unsorted = vec![0u8; 1024];
        encode_block(&placement.block, 1, &mut unsorted).unwrap();
        let mut rev: Vec<&Xattr> = placement.block.iter().collect();
        rev.sort_by(|a, b| b.block_order(a));
        write_entries(&mut unsorted, BLOCK_HEADER_LEN, 0, &rev, true).unwrap();
        let (_, entries) = parse_block(&unsorted, false).unwrap();
        assert!(!entries_sorted(&entries));
        put_u32(&mut unsorted, H_HASH, block_hash_of(&entries));
        set_block_checksum(seed, blk_nr, &mut unsorted).unwrap();
        tu::write_at(&img, blk_nr * 1024, &unsorted);
        // e2fsck 1.47 does not check the order, yet the kernel's lookup
        // stops early and misses attributes in such a block (checked with a
        // loop mount: getfattr found none of its entries). So order is ours
        // to keep: entries_sorted() is the check, not e2fsck.
        let (code, out) = tu::run("e2fsck", &["-fn", img.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}");

        tu::write_at(&img, blk_nr * 1024, &block);
        let (code, out) = tu::run("e2fsck", &["-fn", img.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}");
        let listing = tu::debugfs(&img, false, "ea_list f1\n");
        for name in [
            "user.alpha",
            "system.posix_acl_access",
            "user.big",
            "security.empty",
            "trusted.t",
            "user.mid",
        ] {
            assert!(listing.contains(name), "{name} missing from:\n{listing}");
        }
        assert!(listing.contains("user.alpha (5) = \"hello\""), "{listing}");
    }

    fn c_path(p: &std::path::Path) -> std::ffi::CString {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap()
    }

    fn set_xattr(path: &std::path::Path, name: &[u8], value: &[u8]) {
        let p = c_path(path);
        let n = std::ffi::CString::new(name).unwrap();
        // SAFETY: valid NUL-terminated strings and a live buffer of the given length.
        let r = unsafe {
            libc::setxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        assert_eq!(
            r,
            0,
            "setxattr {}: {}",
            String::from_utf8_lossy(name),
            std::io::Error::last_os_error()
        );
    }

    /// The attributes of a file in listxattr order, as mke2fs -d reads them.
    fn list_xattrs(path: &std::path::Path) -> Vec<Xattr> {
        let p = c_path(path);
        let mut names = vec![0u8; 65536];
        // SAFETY: valid path and a live buffer of the given length.
        let len = unsafe { libc::listxattr(p.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
        assert!(len >= 0);
        names.truncate(usize::try_from(len).unwrap());
        let mut out = Vec::new();
        for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
            let n = std::ffi::CString::new(name).unwrap();
            let mut value = vec![0u8; 65536];
            // SAFETY: as above.
            let vlen = unsafe {
                libc::getxattr(
                    p.as_ptr(),
                    n.as_ptr(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            assert!(vlen >= 0);
            value.truncate(usize::try_from(vlen).unwrap());
            let mut x = Xattr::from_full_name(name, value).unwrap();
            if x.index == index::POSIX_ACL_ACCESS || x.index == index::POSIX_ACL_DEFAULT {
                x.value = acl_xattr_to_disk(&x.value).unwrap();
            }
            out.push(x);
        }
        out
    }

    #[test]
    fn placement_matches_mke2fs_d() {
        let dir = tu::TempDir::new("xattr-mkfs-d");
        let src = dir.join("src");
        std::fs::create_dir(&src).unwrap();
        type Spec<'a> = (&'a str, &'a [(&'a [u8], usize)]);
        let files: [Spec; 3] = [
            (
                "a",
                &[
                    (b"user.zz", 1),
                    (b"user.big", 60),
                    (b"user.c", 2),
                    (b"user.bb", 40),
                    (b"user.q", 3),
                ],
            ),
            ("b", &[(b"user.one", 100), (b"user.two", 1)]),
            (
                "c",
                &[
                    (b"user.p", 10),
                    (b"user.r", 20),
                    (b"user.s", 30),
                    (b"user.t", 40),
                    (b"user.u", 300),
                ],
            ),
        ];
        for (f, attrs) in files {
            let path = src.join(f);
            std::fs::write(&path, b"x").unwrap();
            for (name, len) in attrs {
                let value: Vec<u8> = (0..*len).map(|i| b'a' + (i % 26) as u8).collect();
                set_xattr(&path, name, &value);
            }
        }
        let acl = encode_xattr_acl(&[
            AclEntry {
                tag: acl_tag::USER_OBJ,
                perm: 6,
                id: ACL_UNDEFINED_ID,
            },
            AclEntry {
                tag: acl_tag::GROUP_OBJ,
                perm: 4,
                id: ACL_UNDEFINED_ID,
            },
            AclEntry {
                tag: acl_tag::GROUP,
                perm: 5,
                id: 100,
            },
            AclEntry {
                tag: acl_tag::MASK,
                perm: 5,
                id: ACL_UNDEFINED_ID,
            },
            AclEntry {
                tag: acl_tag::OTHER,
                perm: 0,
                id: ACL_UNDEFINED_ID,
            },
        ]);
        set_xattr(&src.join("b"), b"system.posix_acl_access", &acl);

        let img = dir.join("img");
        tu::mkfs(
            &img,
            8,
            &["-b", "1024", "-I", "256", "-d", src.to_str().unwrap()],
        );
        let seed = tu::sb_csum_seed(&tu::read_at(&img, 1024, 1024));
        for (f, _) in files {
            let want = list_xattrs(&src.join(f));
            let stat = tu::debugfs(&img, false, &format!("stat {f}\n"));
            let ino: u32 = stat
                .split("Inode: ")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let inode = tu::read_at(&img, tu::inode_offset(&img, ino, 1024), 256);
            let area = ibody_of(&inode).unwrap();
            let expect = place(&want, area.len(), 1024).unwrap();
            let ibody: Vec<Xattr> = parse_ibody(area, false)
                .unwrap()
                .iter()
                .map(|e| e.to_xattr().unwrap())
                .collect();
            assert_eq!(ibody, expect.ibody, "in-inode attributes of {f}");
            let blk_nr = file_acl(&inode);
            let mut block_list = Vec::new();
            if blk_nr != 0 {
                let block = tu::read_at(&img, blk_nr * 1024, 1024);
                verify_block_checksum(seed, blk_nr, &block).unwrap();
                let (_, entries) = parse_block(&block, false).unwrap();
                assert!(entries_sorted(&entries));
                block_list = entries.iter().map(|e| e.to_xattr().unwrap()).collect();
            }
            let mut expect_block = expect.block.clone();
            expect_block.sort_by(|a, b| a.block_order(b));
            assert_eq!(block_list, expect_block, "block attributes of {f}");
        }
    }

    #[test]
    fn names_split_into_index_and_suffix_and_join_back() {
        let cases: [(&[u8], u8, &[u8]); 8] = [
            (b"user.foo", 1, b"foo"),
            (b"system.posix_acl_access", 2, b""),
            (b"system.posix_acl_default", 3, b""),
            (b"trusted.overlay.opaque", 4, b"overlay.opaque"),
            (b"security.selinux", 6, b"selinux"),
            (b"system.data", 7, b"data"),
            (b"system.richacl", 8, b""),
            (b"system.posix_acl_accessX", 7, b"posix_acl_accessX"),
        ];
        for (full, idx, suffix) in cases {
            assert_eq!(split_name(full), Some((idx, suffix)));
            assert_eq!(join_name(idx, suffix).as_deref(), Some(full));
        }
        for bad in [&b"user."[..], b"foo.bar", b"", b"User.x", b"system."] {
            assert_eq!(split_name(bad), None);
        }
        let long = [b"user.".as_slice(), &[b'x'; 256]].concat();
        assert_eq!(split_name(&long), None);
        assert_eq!(join_name(5, b"x"), None);
        assert_eq!(join_name(0, b"x"), None);
    }

    #[test]
    fn acl_forms_convert_both_ways_and_validate_like_the_kernel() {
        // A real on-disk ACL (kernel fixture) and what getfattr showed.
        let disk = tu::unhex("0100000001000600020007");
        assert!(parse_disk_acl(&disk).is_err(), "truncated named entry");
        let entries = [
            AclEntry {
                tag: acl_tag::USER_OBJ,
                perm: 7,
                id: ACL_UNDEFINED_ID,
            },
            AclEntry {
                tag: acl_tag::USER,
                perm: 5,
                id: 1000,
            },
            AclEntry {
                tag: acl_tag::GROUP_OBJ,
                perm: 5,
                id: ACL_UNDEFINED_ID,
            },
            AclEntry {
                tag: acl_tag::GROUP,
                perm: 7,
                id: 100,
            },
            AclEntry {
                tag: acl_tag::MASK,
                perm: 7,
                id: ACL_UNDEFINED_ID,
            },
            AclEntry {
                tag: acl_tag::OTHER,
                perm: 5,
                id: ACL_UNDEFINED_ID,
            },
        ];
        validate_acl(&entries).unwrap();
        let disk = encode_disk_acl(&entries).unwrap();
        assert_eq!(disk.len(), 4 + 4 * 4 + 2 * 8);
        let xattr = encode_xattr_acl(&entries);
        assert_eq!(xattr.len(), 4 + 6 * 8);
        assert_eq!(acl_disk_to_xattr(&disk).unwrap(), xattr);
        assert_eq!(acl_xattr_to_disk(&xattr).unwrap(), disk);
        // Ids of unnamed entries are ignored on input.
        let mut odd = xattr.clone();
        odd[8..12].copy_from_slice(&5u32.to_le_bytes());
        assert_eq!(acl_xattr_to_disk(&odd).unwrap(), disk);
        // Minimal ACL without mask; an empty ACL (header only).
        let minimal = [entries[0], entries[2], entries[5]];
        validate_acl(&minimal).unwrap();
        assert_eq!(
            acl_xattr_to_disk(&2u32.to_le_bytes()).unwrap(),
            1u32.to_le_bytes()
        );
        assert!(validate_acl(&[]).is_err());

        let invalid: [&[AclEntry]; 6] = [
            &[entries[2], entries[0], entries[5]],             // order
            &[entries[0], entries[1], entries[2], entries[5]], // named entry, no mask
            &[entries[0], entries[2]],                         // no other
            &[entries[0], entries[0], entries[2], entries[5]], // twice
            &[
                entries[0],
                AclEntry {
                    perm: 8,
                    ..entries[2]
                },
                entries[5],
            ],
            &[
                entries[0],
                AclEntry {
                    id: ACL_UNDEFINED_ID,
                    ..entries[1]
                },
                entries[2],
                entries[4],
                entries[5],
            ],
        ];
        for acl in invalid {
            assert!(validate_acl(acl).is_err(), "{acl:?}");
            assert!(acl_xattr_to_disk(&encode_xattr_acl(acl)).is_err());
        }
        // Wrong versions, sizes and tags.
        assert!(parse_disk_acl(&xattr).is_err());
        assert!(parse_xattr_acl(&disk).is_err());
        assert!(parse_xattr_acl(&xattr[..xattr.len() - 1]).is_err());
        let mut bad_tag = disk.clone();
        bad_tag[4] = 0x40;
        assert!(parse_disk_acl(&bad_tag).is_err());
        assert!(parse_disk_acl(&[1, 0]).is_err());
    }

    fn sample() -> Vec<Xattr> {
        vec![
            Xattr::new(index::USER, b"b".to_vec(), b"1234567".to_vec()),
            Xattr::new(index::USER, b"a".to_vec(), b"xy".to_vec()),
            Xattr::new(index::SECURITY, b"empty".to_vec(), Vec::new()),
            Xattr::new(index::TRUSTED, b"long-name".to_vec(), vec![3u8; 33]),
        ]
    }

    #[test]
    fn encode_then_parse_round_trips_and_reports_exact_space() {
        let list = sample();
        let need = ibody_space_needed(&list);
        assert_eq!(need, 4 + 4 + (20 + 8) + (20 + 4) + 24 + (28 + 36));
        let mut area = vec![0xEEu8; need];
        encode_ibody(&list, &mut area).unwrap();
        let back: Vec<Xattr> = parse_ibody(&area, false)
            .unwrap()
            .iter()
            .map(|e| e.to_xattr().unwrap())
            .collect();
        assert_eq!(back, list, "in-inode order is kept");

        let mut small = vec![0xEEu8; need - 1];
        assert!(matches!(
            encode_ibody(&list, &mut small),
            Err(FormatError::TooShort { .. })
        ));
        assert!(small.iter().all(|&b| b == 0xEE), "untouched on failure");

        let mut block = vec![0u8; block_space_needed(&list)];
        encode_block(&list, 3, &mut block).unwrap();
        let (header, entries) = parse_block(&block, false).unwrap();
        assert_eq!((header.refcount, header.blocks), (3, 1));
        assert!(entries_sorted(&entries));
        assert_eq!(header.hash, block_hash_of(&entries));
        let mut want = list.clone();
        want.sort_by(|a, b| a.block_order(b));
        let back: Vec<Xattr> = entries.iter().map(|e| e.to_xattr().unwrap()).collect();
        assert_eq!(back, want);
        assert_eq!(back[0].name, b"a", "shorter/smaller names first");
        set_block_refcount(&mut block, 9).unwrap();
        set_block_checksum(0x1234, 77, &mut block).unwrap();
        verify_block_checksum(0x1234, 77, &block).unwrap();
        assert!(verify_block_checksum(0x1234, 78, &block).is_err());
        assert_eq!(parse_block(&block, false).unwrap().0.refcount, 9);

        // Empty list: the in-inode area is cleared.
        encode_ibody(&[], &mut area).unwrap();
        assert!(area.iter().all(|&b| b == 0));
        assert!(parse_ibody(&area, false).unwrap().is_empty());
        // Duplicates and bad names are refused.
        let dup = [list[0].clone(), list[0].clone()];
        assert!(encode_block(&dup, 1, &mut vec![0u8; 1024]).is_err());
        let long = [Xattr::new(1, vec![b'x'; 256], Vec::new())];
        assert!(encode_block(&long, 1, &mut vec![0u8; 1024]).is_err());
    }

    #[test]
    fn placement_fills_the_inode_first_and_refuses_what_fits_nowhere() {
        let list = sample();
        // 96-byte area (256-byte inode, i_extra_isize 32): 88 bytes free.
        let p = place(&list, 96, 1024).unwrap();
        let names: Vec<&[u8]> = p.ibody.iter().map(|x| &x.name[..]).collect();
        assert_eq!(names, [&b"b"[..], b"a", b"empty"]);
        assert_eq!(p.block.len(), 1);
        assert!(ibody_space_needed(&p.ibody) <= 96);
        // 128-byte inodes: everything in the block.
        let p = place(&list, 0, 1024).unwrap();
        assert_eq!((p.ibody.len(), p.block.len()), (0, 4));
        // Too big for both.
        let huge = [Xattr::new(1, b"h".to_vec(), vec![0u8; 1000])];
        assert!(matches!(
            place(&huge, 96, 1024),
            Err(FormatError::TooShort { .. })
        ));
        assert_eq!(place(&huge, 96, 4096).unwrap().block.len(), 1);
        // system.data never goes to the block.
        let inline = [Xattr::new(index::SYSTEM, b"data".to_vec(), vec![0u8; 200])];
        assert!(place(&inline, 96, 4096).is_err());
    }

    /// A hand-made in-inode area: magic, one entry "user.a" = "xyz".
    fn tiny_ibody() -> Vec<u8> {
        let mut area = vec![0u8; 40];
        encode_ibody(&[Xattr::new(1, b"a".to_vec(), b"xyz".to_vec())], &mut area).unwrap();
        area
    }

    #[test]
    fn corrupt_tables_and_values_are_rejected() {
        let good = tiny_ibody();
        parse_ibody(&good, false).unwrap();
        let first = IBODY_HEADER_LEN;
        // Value offset pointing into the entry table.
        let mut a = good.clone();
        put_u16(&mut a, first + E_VALUE_OFFS, 0);
        assert!(parse_ibody(&a, false).is_err());
        // Value running past the end.
        let mut a = good.clone();
        put_u32(&mut a, first + E_VALUE_SIZE, 40);
        assert!(parse_ibody(&a, false).is_err());
        // Value fits but its padding does not (the kernel refuses this).
        let mut a = good.clone();
        put_u16(&mut a, first + E_VALUE_OFFS, 33);
        assert!(parse_ibody(&a, false).is_err());
        // EA inode entries: size 0 or the root inode are refused.
        let mut a = good.clone();
        put_u32(&mut a, first + E_VALUE_INUM, 20);
        assert_eq!(parse_ibody(&a, true).unwrap()[0].value_inum, 20);
        put_u32(&mut a, first + E_VALUE_SIZE, 0);
        assert!(parse_ibody(&a, true).is_err());
        put_u32(&mut a, first + E_VALUE_SIZE, 3);
        put_u32(&mut a, first + E_VALUE_INUM, 2);
        assert!(parse_ibody(&a, true).is_err());
        // Name running past the end.
        let mut a = good.clone();
        a[first + E_NAME_LEN] = 200;
        assert!(parse_ibody(&a, false).is_err());
        // No terminator.
        let mut a = good.clone();
        a[first + 20..first + 24].copy_from_slice(&[1, 1, 0, 0]);
        assert!(parse_ibody(&a, false).is_err());
        // Two values overlapping.
        let mut area = vec![0u8; 80];
        let two = [
            Xattr::new(1, b"a".to_vec(), b"12345".to_vec()),
            Xattr::new(1, b"b".to_vec(), b"678".to_vec()),
        ];
        encode_ibody(&two, &mut area).unwrap();
        let offs = u16_at(&area, first + E_VALUE_OFFS);
        put_u16(&mut area, first + 20 + E_VALUE_OFFS, offs + 4);
        assert!(parse_ibody(&area, false).is_err());
        // No magic: simply no attributes.
        let mut a = good.clone();
        a[3] = 0;
        assert!(parse_ibody(&a, false).unwrap().is_empty());
        assert!(!ibody_has_magic(&a));

        let mut block = vec![0u8; 1024];
        encode_block(&sample(), 1, &mut block).unwrap();
        let mut b = block.clone();
        put_u32(&mut b, H_BLOCKS, 2);
        assert!(parse_block(&b, false).is_err());
        let mut b = block.clone();
        b[0] = 1;
        assert!(matches!(
            parse_block(&b, false),
            Err(FormatError::BadMagic { .. })
        ));
        let mut b = block.clone();
        put_u32(&mut b, BLOCK_HEADER_LEN + E_VALUE_INUM, 99);
        assert!(
            parse_block(&b, false).is_err(),
            "EA inode without the feature"
        );
        assert!(parse_block(&b, true).is_ok());
        assert!(parse_block(&block[..20], false).is_err());

        // i_extra_isize checks.
        assert!(ibody_range(256, 30).is_err());
        assert!(ibody_range(256, 132).is_err());
        assert_eq!(ibody_range(256, 128).unwrap(), None);
        assert_eq!(ibody_range(256, 32).unwrap(), Some(160..256));
    }

    #[test]
    fn no_byte_change_makes_the_parsers_panic() {
        let mut sources = vec![tiny_ibody()];
        let mut block = vec![0u8; 1024];
        encode_block(&sample(), 1, &mut block).unwrap();
        let mut bases = vec![block];
        for entry in std::fs::read_dir(tu::fixture_path("xattr/k1k-i256")).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("blk")
            {
                bases.push(std::fs::read(path).unwrap());
            }
        }
        for base in bases {
            for pos in (0..200).chain(base.len() - 64..base.len()) {
                for v in [0u8, 1, 0x7F, 0x80, 0xFF] {
                    let mut b = base.clone();
                    b[pos] = v;
                    let _ = parse_block(&b, true);
                    let _ = parse_block(&b[..pos.max(1)], true);
                    let _ = parse_ibody(&b[28..], true);
                }
            }
        }
        sources.push(vec![0u8; 3]);
        for s in &sources {
            for len in 0..s.len() {
                let _ = parse_ibody(&s[..len], true);
                let _ = parse_disk_acl(&s[..len]);
                let _ = parse_xattr_acl(&s[..len]);
            }
        }
    }
}
