//! Linear directory blocks: `ext4_dir_entry_2` records, their validation,
//! the metadata_csum tail, and in-place editing (build, insert, remove).
//!
//! A directory block is a chain of variable-length records that exactly
//! covers the block (or, with metadata_csum, the block minus a 12-byte tail):
//!
//! ```text
//! ext4_dir_entry_2
//!   0x0  inode      u32  target inode; 0 = unused record (deleted or padding)
//!   0x4  rec_len    u16  length of this record, see below
//!   0x6  name_len   u8   length of the name
//!   0x7  file_type  u8   FT_* code (with the `filetype` feature; 0 otherwise)
//!   0x8  name       [u8; name_len], not NUL-terminated, then padding
//! ```
//!
//! Invariants checked by the iterator (after the kernel's
//! `__ext4_check_dir_entry`): `rec_len` is a multiple of 4, at least 12
//! (`EXT4_DIR_REC_LEN(1)`), at least `8 + name_len` rounded up to 4, and the
//! record ends at or before the end of the data area. A live record (inode
//! != 0) has a non-empty name. The last record's `rec_len` reaches exactly the
//! end of the data area.
//!
//! `rec_len` is stored in 16 bits. For block sizes of 64 KiB and up, the value
//! 65535 (or 0) means a whole 65536-byte block and the low two bits carry bits
//! 16..17 of the length ([`rec_len_from_disk`], [`rec_len_to_disk`]); for
//! smaller blocks the value is taken as is (as e2fsprogs does).
//!
//! With metadata_csum every leaf block ends with a fake record, the
//! checksum tail (`ext4_dir_entry_tail`):
//!
//! ```text
//!   0x0  det_reserved_zero1  u32  0 (looks like inode 0)
//!   0x4  det_rec_len         u16  12
//!   0x6  det_reserved_zero2  u8   0 (name_len)
//!   0x7  det_reserved_ft     u8   0xDE (EXT4_FT_DIR_CSUM)
//!   0x8  det_checksum        u32  crc32c(inode_seed, block[..len - 12])
//! ```
//!
//! where `inode_seed = crc32c(crc32c(fs_seed, ino_le32), generation_le32)`
//! ([`inode_csum_seed`]). Index blocks of hashed directories carry a
//! different checksum (see `htree`).
//!
//! In an indexed directory, block 0 (dx_root) and interior dx_node blocks
//! also parse as record chains, without a tail: "." and a ".." spanning the
//! rest, or one unused record spanning the block. Tell leaves from index
//! blocks by walking the index (see `htree`), not by looking at a block.
//!
//! Unused space: a record of inode 0 is free space as a whole; a live record
//! has `rec_len - rec_len_for_name(name_len)` bytes of slack after its name.
//! Inserting reuses either (the kernel's `ext4_find_dest_de`); removing merges
//! the record into its predecessor, or marks it unused when it is first.

use super::bytes::{get_u16, get_u32, get_u8, put_u16, put_u32, u16_at, u32_at};
use super::csum::crc32c;
use super::error::{FormatError, Result};

/// Size of the fixed part of a record (inode, rec_len, name_len, file_type).
pub const DIRENT_HEADER_LEN: usize = 8;
/// Longest name (`EXT4_NAME_LEN`).
pub const NAME_MAX: usize = 255;
/// The smallest record the kernel accepts (`EXT4_DIR_REC_LEN(1)`).
pub const MIN_REC_LEN: usize = 12;
/// Size of the metadata_csum tail record.
pub const CSUM_TAIL_LEN: usize = 12;
/// `det_reserved_ft` of the checksum tail (`EXT4_FT_DIR_CSUM`).
pub const FT_DIR_CSUM: u8 = 0xde;
/// Largest block (or inline area) this module handles.
pub const MAX_BLOCK_SIZE: usize = 65536;

const OFF_INODE: usize = 0x0; // inode
const OFF_REC_LEN: usize = 0x4; // rec_len
const OFF_NAME_LEN: usize = 0x6; // name_len
const OFF_FILE_TYPE: usize = 0x7; // file_type
const OFF_NAME: usize = 0x8; // name
const OFF_TAIL_CSUM: usize = 0x8; // det_checksum

const S_IFMT: u16 = 0o170_000;
const S_IFSOCK: u16 = 0o140_000;
const S_IFLNK: u16 = 0o120_000;
const S_IFREG: u16 = 0o100_000;
const S_IFBLK: u16 = 0o060_000;
const S_IFDIR: u16 = 0o040_000;
const S_IFCHR: u16 = 0o020_000;
const S_IFIFO: u16 = 0o010_000;

/// The `file_type` codes of directory entries (`EXT4_FT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    Unknown = 0,
    Regular = 1,
    Directory = 2,
    CharDev = 3,
    BlockDev = 4,
    Fifo = 5,
    Socket = 6,
    Symlink = 7,
}

impl FileType {
    /// The type with this code (0..=7); `None` for anything else.
    pub fn from_raw(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Unknown,
            1 => Self::Regular,
            2 => Self::Directory,
            3 => Self::CharDev,
            4 => Self::BlockDev,
            5 => Self::Fifo,
            6 => Self::Socket,
            7 => Self::Symlink,
            _ => return None,
        })
    }

    /// The on-disk code.
    pub fn to_raw(self) -> u8 {
        self as u8
    }

    /// The type of an inode with mode `mode` (its `S_IFMT` bits);
    /// `Unknown` for a format that has no code.
    pub fn from_mode(mode: u16) -> Self {
        match mode & S_IFMT {
            S_IFREG => Self::Regular,
            S_IFDIR => Self::Directory,
            S_IFCHR => Self::CharDev,
            S_IFBLK => Self::BlockDev,
            S_IFIFO => Self::Fifo,
            S_IFSOCK => Self::Socket,
            S_IFLNK => Self::Symlink,
            _ => Self::Unknown,
        }
    }

    /// The `S_IFMT` bits of this type; `None` for `Unknown`.
    pub fn mode_bits(self) -> Option<u16> {
        Some(match self {
            Self::Unknown => return None,
            Self::Regular => S_IFREG,
            Self::Directory => S_IFDIR,
            Self::CharDev => S_IFCHR,
            Self::BlockDev => S_IFBLK,
            Self::Fifo => S_IFIFO,
            Self::Socket => S_IFSOCK,
            Self::Symlink => S_IFLNK,
        })
    }
}

/// Decodes a stored `rec_len` for a block (or inline area) of `block_size` bytes.
pub fn rec_len_from_disk(raw: u16, block_size: usize) -> usize {
    if block_size < 65536 {
        return usize::from(raw);
    }
    if raw == u16::MAX || raw == 0 {
        return block_size;
    }
    usize::from(raw & 0xfffc) | (usize::from(raw & 3) << 16)
}

/// Encodes a record length (a multiple of 4, at most `block_size`, at most 2^18).
pub fn rec_len_to_disk(len: usize, block_size: usize) -> u16 {
    if block_size < 65536 {
        return u16::try_from(len).unwrap_or(u16::MAX);
    }
    if len == block_size && block_size == 65536 {
        return u16::MAX;
    }
    // Low 16 bits (multiple of 4) plus bits 16..17 folded into bits 0..1.
    let low = u16::try_from(len & 0xfffc).unwrap_or(0);
    let high = u16::try_from((len >> 16) & 3).unwrap_or(0);
    low | high
}

/// The record length a name of `name_len` bytes needs: `8 + name_len`,
/// rounded up to a multiple of 4 (`EXT4_DIR_REC_LEN`).
pub fn rec_len_for_name(name_len: usize) -> usize {
    (DIRENT_HEADER_LEN + name_len + 3) & !3
}

/// Checks a name for a new entry: 1..=255 bytes, no `/` or NUL, not `.` or `..`.
pub fn validate_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(FormatError::corrupt(
            "directory entry name",
            format!("length {} is not in 1..=255", name.len()),
        ));
    }
    if name.iter().any(|&b| b == b'/' || b == 0) {
        return Err(FormatError::corrupt(
            "directory entry name",
            "contains '/' or NUL",
        ));
    }
    if name == b"." || name == b".." {
        return Err(FormatError::corrupt(
            "directory entry name",
            "'.' and '..' are written only by the directory's first block",
        ));
    }
    Ok(())
}

/// The per-inode checksum seed: `crc32c(crc32c(fs_seed, ino), generation)`,
/// both little-endian u32 (the kernel's `ei->i_csum_seed`).
pub fn inode_csum_seed(fs_seed: u32, ino: u32, generation: u32) -> u32 {
    crc32c(
        crc32c(fs_seed, &ino.to_le_bytes()),
        &generation.to_le_bytes(),
    )
}

/// One record of a directory block, as parsed and validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// Byte offset of the record in its block.
    pub offset: usize,
    /// Target inode; 0 for an unused record.
    pub inode: u32,
    /// Decoded record length.
    pub rec_len: usize,
    /// Raw `file_type` byte (see [`DirEntry::file_type`]).
    pub file_type_raw: u8,
    /// The name (`name_len` bytes).
    pub name: &'a [u8],
}

impl DirEntry<'_> {
    /// True unless the record is unused (inode 0).
    pub fn is_live(&self) -> bool {
        self.inode != 0
    }

    /// The file type; `None` for a code above 7.
    pub fn file_type(&self) -> Option<FileType> {
        FileType::from_raw(self.file_type_raw)
    }

    /// Bytes this record could give to a new entry: all of it when unused,
    /// the slack after the name when live.
    pub fn free_space(&self) -> usize {
        if self.is_live() {
            self.rec_len
                .saturating_sub(rec_len_for_name(self.name.len()))
        } else {
            self.rec_len
        }
    }

    /// True for the `.` and `..` records.
    pub fn is_dot_or_dotdot(&self) -> bool {
        self.name == b"." || self.name == b".."
    }
}

fn data_end(block: &[u8], csum_tail: bool) -> Result<usize> {
    if block.len() > MAX_BLOCK_SIZE || block.len() & 3 != 0 {
        return Err(FormatError::unsupported(
            "directory block",
            format!("size {} is not a multiple of 4 up to 65536", block.len()),
        ));
    }
    let reserved = if csum_tail { CSUM_TAIL_LEN } else { 0 };
    match block.len().checked_sub(reserved) {
        Some(end) if end >= MIN_REC_LEN => Ok(end),
        _ => Err(FormatError::TooShort {
            what: "directory block",
            need: MIN_REC_LEN + reserved,
            have: block.len(),
        }),
    }
}

fn bad_entry(offset: usize, detail: impl std::fmt::Display) -> FormatError {
    FormatError::corrupt("directory entry", format!("at offset {offset}: {detail}"))
}

/// Parses and validates the record at `pos`, which must end by `end`.
fn parse_record(block: &[u8], pos: usize, end: usize) -> Result<DirEntry<'_>> {
    let header_end = pos
        .checked_add(DIRENT_HEADER_LEN)
        .filter(|&e| e <= end)
        .ok_or_else(|| bad_entry(pos, "header crosses the end of the block"))?;
    let header = &block[pos..header_end];
    let inode = u32_at(header, OFF_INODE);
    let rec_len = rec_len_from_disk(u16_at(header, OFF_REC_LEN), block.len());
    let name_len = usize::from(header[OFF_NAME_LEN]);
    let file_type_raw = header[OFF_FILE_TYPE];
    if rec_len & 3 != 0 {
        return Err(bad_entry(
            pos,
            format!("rec_len {rec_len} is not a multiple of 4"),
        ));
    }
    if rec_len < MIN_REC_LEN {
        return Err(bad_entry(pos, format!("rec_len {rec_len} is below 12")));
    }
    if rec_len < rec_len_for_name(name_len) {
        return Err(bad_entry(
            pos,
            format!("rec_len {rec_len} too small for name_len {name_len}"),
        ));
    }
    if rec_len > end - pos {
        return Err(bad_entry(
            pos,
            format!("rec_len {rec_len} crosses the end of the data area ({end})"),
        ));
    }
    if inode != 0 && name_len == 0 {
        return Err(bad_entry(pos, format!("inode {inode} has an empty name")));
    }
    let name = &block[header_end..header_end + name_len];
    Ok(DirEntry {
        offset: pos,
        inode,
        rec_len,
        file_type_raw,
        name,
    })
}

/// Iterator over every record of a directory block (live and unused), in
/// order, each validated. Yields one error and then stops on a bad record.
#[derive(Debug, Clone)]
pub struct DirBlockIter<'a> {
    block: &'a [u8],
    end: usize,
    pos: usize,
    error: Option<FormatError>,
}

impl<'a> Iterator for DirBlockIter<'a> {
    type Item = Result<DirEntry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.error.take() {
            self.pos = self.end;
            return Some(Err(e));
        }
        if self.pos >= self.end {
            return None;
        }
        match parse_record(self.block, self.pos, self.end) {
            Ok(entry) => {
                self.pos += entry.rec_len;
                Some(Ok(entry))
            }
            Err(e) => {
                self.pos = self.end;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for DirBlockIter<'_> {}

/// Every record of `block`, including unused ones (inode 0). With
/// `csum_tail`, the records must end 12 bytes before the end of the block,
/// where the checksum tail sits (not yielded; see [`verify_dir_block_csum`]).
///
/// The whole slice is the block: its length is the block size (or the size of
/// an inline-data area), which also selects the `rec_len` encoding.
pub fn records(block: &[u8], csum_tail: bool) -> DirBlockIter<'_> {
    match data_end(block, csum_tail) {
        Ok(end) => DirBlockIter {
            block,
            end,
            pos: 0,
            error: None,
        },
        Err(e) => DirBlockIter {
            block,
            end: 0,
            pos: 0,
            error: Some(e),
        },
    }
}

/// The live records (inode != 0) of `block`; see [`records`].
pub fn live_entries(
    block: &[u8],
    csum_tail: bool,
) -> impl Iterator<Item = Result<DirEntry<'_>>> + '_ {
    records(block, csum_tail).filter(|r| r.as_ref().map_or(true, |e| e.is_live()))
}

/// Validates the whole record chain of `block`.
pub fn check_block(block: &[u8], csum_tail: bool) -> Result<()> {
    records(block, csum_tail).try_for_each(|r| r.map(|_| ()))
}

/// The live entry named `name` in `block`, if any.
pub fn find_entry<'a>(
    block: &'a [u8],
    csum_tail: bool,
    name: &[u8],
) -> Result<Option<DirEntry<'a>>> {
    for r in live_entries(block, csum_tail) {
        let e = r?;
        if e.name == name {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------
// Checksum tail

/// True when the last 12 bytes of `block` hold a well-formed checksum tail.
pub fn has_csum_tail(block: &[u8]) -> bool {
    let Some(off) = block.len().checked_sub(CSUM_TAIL_LEN) else {
        return false;
    };
    get_u32(block, off + OFF_INODE) == Some(0)
        && get_u16(block, off + OFF_REC_LEN) == Some(12)
        && get_u8(block, off + OFF_NAME_LEN) == Some(0)
        && get_u8(block, off + OFF_FILE_TYPE) == Some(FT_DIR_CSUM)
}

/// Writes an empty checksum tail (checksum 0) in the last 12 bytes of `block`.
pub fn init_csum_tail(block: &mut [u8]) -> Result<()> {
    let off = data_end(block, true)?;
    block[off..].fill(0);
    put_u16(block, off + OFF_REC_LEN, 12);
    block[off + OFF_FILE_TYPE] = FT_DIR_CSUM;
    Ok(())
}

/// The leaf checksum of `block`: crc32c over everything before the tail.
pub fn dir_block_csum(block: &[u8], inode_seed: u32) -> Result<u32> {
    let end = data_end(block, true)?;
    Ok(crc32c(inode_seed, &block[..end]))
}

/// Checks the checksum tail of a leaf block. Fails with `Corrupt` when the
/// tail is missing and `BadChecksum` when it does not match.
pub fn verify_dir_block_csum(block: &[u8], inode_seed: u32) -> Result<()> {
    let computed = dir_block_csum(block, inode_seed)?;
    if !has_csum_tail(block) {
        return Err(FormatError::corrupt(
            "directory block",
            "no checksum tail in the last 12 bytes",
        ));
    }
    let stored = u32_at(block, block.len() - CSUM_TAIL_LEN + OFF_TAIL_CSUM);
    if stored != computed {
        return Err(FormatError::BadChecksum {
            what: "directory block",
            stored,
            computed,
        });
    }
    Ok(())
}

/// Recomputes and stores the checksum of a leaf block whose tail is in place.
pub fn set_dir_block_csum(block: &mut [u8], inode_seed: u32) -> Result<()> {
    let computed = dir_block_csum(block, inode_seed)?;
    if !has_csum_tail(block) {
        return Err(FormatError::corrupt(
            "directory block",
            "no checksum tail in the last 12 bytes",
        ));
    }
    let off = block.len() - CSUM_TAIL_LEN + OFF_TAIL_CSUM;
    put_u32(block, off, computed);
    Ok(())
}

fn update_csum(block: &mut [u8], csum: Option<u32>) -> Result<()> {
    match csum {
        Some(seed) => set_dir_block_csum(block, seed),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Writing

/// A name to put in a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewEntry<'a> {
    pub name: &'a [u8],
    pub inode: u32,
    pub file_type: FileType,
}

/// Writes a record header and name at `off` (the caller checked the room).
fn write_record(block: &mut [u8], off: usize, inode: u32, rec_len: usize, name: &[u8], ft: u8) {
    let block_size = block.len();
    put_u32(block, off + OFF_INODE, inode);
    put_u16(
        block,
        off + OFF_REC_LEN,
        rec_len_to_disk(rec_len, block_size),
    );
    // Names are at most 255 bytes: callers validated them.
    block[off + OFF_NAME_LEN] = u8::try_from(name.len()).unwrap_or(u8::MAX);
    block[off + OFF_FILE_TYPE] = ft;
    block[off + OFF_NAME..off + OFF_NAME + name.len()].copy_from_slice(name);
    // Zero the padding after the name, up to the minimal record length.
    let pad_end = (off + rec_len_for_name(name.len())).min(off + rec_len);
    block[off + OFF_NAME + name.len()..pad_end].fill(0);
}

fn set_rec_len(block: &mut [u8], off: usize, rec_len: usize) {
    let raw = rec_len_to_disk(rec_len, block.len());
    put_u16(block, off + OFF_REC_LEN, raw);
}

/// Fills a fresh directory block record by record (for mkfs and for new
/// directory blocks). Entries are packed with minimal record lengths; calling
/// [`LeafBuilder::finish`] stretches the last record to the end of the data
/// area and, with a checksum seed, writes the tail and its checksum.
#[derive(Debug)]
pub struct LeafBuilder<'a> {
    block: &'a mut [u8],
    csum: Option<u32>,
    end: usize,
    pos: usize,
    last: Option<usize>,
}

impl<'a> LeafBuilder<'a> {
    /// Starts an empty block (zeroed). `csum` is the directory inode's
    /// checksum seed ([`inode_csum_seed`]) on metadata_csum file systems: it
    /// reserves the 12-byte tail.
    pub fn new(block: &'a mut [u8], csum: Option<u32>) -> Result<Self> {
        let end = data_end(block, csum.is_some())?;
        block.fill(0);
        Ok(LeafBuilder {
            block,
            csum,
            end,
            pos: 0,
            last: None,
        })
    }

    /// Starts a directory's first block with `.` (`self_ino`) and `..`
    /// (`parent_ino`). Without further entries, `..` spans the rest of the
    /// block, as the kernel writes a new directory.
    pub fn new_first(
        block: &'a mut [u8],
        csum: Option<u32>,
        self_ino: u32,
        parent_ino: u32,
    ) -> Result<Self> {
        let mut b = Self::new(block, csum)?;
        let ft = FileType::Directory.to_raw();
        if !(b.push_raw(b".", self_ino, ft) && b.push_raw(b"..", parent_ino, ft)) {
            return Err(FormatError::TooShort {
                what: "first directory block",
                need: 24,
                have: b.end,
            });
        }
        Ok(b)
    }

    fn push_raw(&mut self, name: &[u8], inode: u32, ft: u8) -> bool {
        let need = rec_len_for_name(name.len()).max(MIN_REC_LEN);
        if need > self.end - self.pos {
            return false;
        }
        write_record(self.block, self.pos, inode, need, name, ft);
        self.last = Some(self.pos);
        self.pos += need;
        true
    }

    /// Appends an entry; `Ok(false)` when it does not fit (the block is
    /// unchanged), an error for an invalid name or inode 0.
    pub fn push(&mut self, entry: &NewEntry<'_>) -> Result<bool> {
        validate_name(entry.name)?;
        if entry.inode == 0 {
            return Err(FormatError::corrupt("directory entry", "inode 0"));
        }
        Ok(self.push_raw(entry.name, entry.inode, entry.file_type.to_raw()))
    }

    /// Whether an entry with a name of `name_len` bytes would still fit.
    pub fn fits(&self, name_len: usize) -> bool {
        rec_len_for_name(name_len).max(MIN_REC_LEN) <= self.end - self.pos
    }

    /// True when nothing has been pushed.
    pub fn is_empty(&self) -> bool {
        self.last.is_none()
    }

    /// Completes the block: the last record reaches the end of the data area
    /// (an empty block gets one unused record spanning it), then the tail and
    /// its checksum are written when a seed was given.
    pub fn finish(self) -> Result<()> {
        match self.last {
            Some(last) => set_rec_len(self.block, last, self.end - last),
            None => write_record(self.block, 0, 0, self.end, b"", 0),
        }
        if let Some(seed) = self.csum {
            init_csum_tail(self.block)?;
            set_dir_block_csum(self.block, seed)?;
        }
        Ok(())
    }
}

/// Builds all blocks of a linear (unindexed) directory: `.`, `..`, then
/// `entries` in order, packed. Returns the blocks concatenated (at least
/// one block); the directory's `i_size` is the returned length.
pub fn build_linear_dir(
    self_ino: u32,
    parent_ino: u32,
    entries: &[NewEntry<'_>],
    block_size: usize,
    csum: Option<u32>,
) -> Result<Vec<u8>> {
    if !(1024..=MAX_BLOCK_SIZE).contains(&block_size) || !block_size.is_power_of_two() {
        return Err(FormatError::unsupported(
            "directory",
            format!("block size {block_size}"),
        ));
    }
    let mut out = vec![0u8; block_size];
    let mut start = 0;
    let mut builder = LeafBuilder::new_first(&mut out[..], csum, self_ino, parent_ino)?;
    let mut rest = entries;
    loop {
        let mut pushed_any = false;
        while let Some(e) = rest.first() {
            if !builder.push(e)? {
                break;
            }
            pushed_any = true;
            rest = &rest[1..];
        }
        builder.finish()?;
        if rest.is_empty() {
            break;
        }
        if !pushed_any && start != 0 {
            // Cannot happen for block sizes >= 268 bytes (a 255-byte name
            // fits in an empty block); guards against tiny blocks.
            return Err(FormatError::TooShort {
                what: "directory block",
                need: rec_len_for_name(rest[0].name.len()),
                have: block_size,
            });
        }
        start = out.len();
        out.resize(start + block_size, 0);
        builder = LeafBuilder::new(&mut out[start..], csum)?;
    }
    Ok(out)
}

/// Inserts an entry into the free space of an existing block: the first
/// unused record big enough is reused, or the first live record with enough
/// slack is split (as the kernel's `ext4_find_dest_de`). Returns the offset of
/// the new record, or `None` when no space is large enough (block unchanged).
/// With `csum` (the inode's seed) the tail checksum is updated.
///
/// The caller checks beforehand that the name is not already present.
pub fn insert_entry(
    block: &mut [u8],
    csum: Option<u32>,
    entry: &NewEntry<'_>,
) -> Result<Option<usize>> {
    validate_name(entry.name)?;
    if entry.inode == 0 {
        return Err(FormatError::corrupt("directory entry", "inode 0"));
    }
    let need = rec_len_for_name(entry.name.len());
    let mut spot = None;
    for r in records(block, csum.is_some()) {
        let e = r?;
        if e.free_space() >= need {
            spot = Some((e.offset, e.is_live(), e.rec_len, e.name.len()));
            break;
        }
    }
    let Some((off, live, rec_len, name_len)) = spot else {
        return Ok(None);
    };
    let ft = entry.file_type.to_raw();
    let new_off = if live {
        let keep = rec_len_for_name(name_len);
        set_rec_len(block, off, keep);
        write_record(
            block,
            off + keep,
            entry.inode,
            rec_len - keep,
            entry.name,
            ft,
        );
        off + keep
    } else {
        write_record(block, off, entry.inode, rec_len, entry.name, ft);
        off
    };
    update_csum(block, csum)?;
    Ok(Some(new_off))
}

/// Removes the live record at `offset`: its space joins the previous
/// record, or, for the first record of the block, it becomes an unused
/// record (inode 0, empty name). With `csum` the tail checksum is updated.
pub fn remove_entry(block: &mut [u8], csum: Option<u32>, offset: usize) -> Result<()> {
    let mut prev = None;
    let mut found = None;
    for r in records(block, csum.is_some()) {
        let e = r?;
        if e.offset == offset {
            found = Some(e.rec_len);
            break;
        }
        if e.offset > offset {
            break;
        }
        prev = Some((e.offset, e.rec_len));
    }
    let Some(rec_len) = found else {
        return Err(FormatError::corrupt(
            "directory entry",
            format!("no record starts at offset {offset}"),
        ));
    };
    if u32_at(&block[offset..], OFF_INODE) == 0 {
        return Err(bad_entry(offset, "record is already unused"));
    }
    let name_end = offset + rec_len_for_name(usize::from(block[offset + OFF_NAME_LEN]));
    match prev {
        Some((prev_off, prev_len)) => {
            set_rec_len(block, prev_off, prev_len + rec_len);
            block[offset..name_end].fill(0);
        }
        None => {
            // Keep rec_len; clear inode, name_len, file_type and the name.
            put_u32(block, offset + OFF_INODE, 0);
            block[offset + OFF_NAME_LEN..name_end].fill(0);
        }
    }
    update_csum(block, csum)
}

/// Points the live record at `offset` to another inode and file type (rename
/// over an existing name, or `..` of a moved directory).
pub fn set_entry_target(
    block: &mut [u8],
    csum: Option<u32>,
    offset: usize,
    inode: u32,
    file_type: FileType,
) -> Result<()> {
    if inode == 0 {
        return Err(FormatError::corrupt("directory entry", "inode 0"));
    }
    let mut found = false;
    for r in records(block, csum.is_some()) {
        let e = r?;
        if e.offset == offset && e.is_live() {
            found = true;
            break;
        }
    }
    if !found {
        return Err(FormatError::corrupt(
            "directory entry",
            format!("no live record starts at offset {offset}"),
        ));
    }
    put_u32(block, offset + OFF_INODE, inode);
    block[offset + OFF_FILE_TYPE] = file_type.to_raw();
    update_csum(block, csum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::test_images::Image;

    fn names_of(block: &[u8], csum_tail: bool) -> Vec<(Vec<u8>, u32)> {
        live_entries(block, csum_tail)
            .map(|r| {
                let e = r.unwrap();
                (e.name.to_vec(), e.inode)
            })
            .collect()
    }

    #[test]
    fn rec_len_encoding_matches_the_kernel_rules() {
        for bs in [1024usize, 4096, 65536] {
            for len in [12usize, 16, 4084, 1024] {
                if len <= bs {
                    assert_eq!(rec_len_from_disk(rec_len_to_disk(len, bs), bs), len);
                }
            }
        }
        assert_eq!(rec_len_to_disk(65536, 65536), 0xffff);
        assert_eq!(rec_len_from_disk(0xffff, 65536), 65536);
        assert_eq!(rec_len_from_disk(0, 65536), 65536);
        assert_eq!(rec_len_from_disk(0, 4096), 0);
        assert_eq!(rec_len_to_disk(65532, 65536), 65532);
        assert_eq!(rec_len_for_name(1), 12);
        assert_eq!(rec_len_for_name(4), 12);
        assert_eq!(rec_len_for_name(5), 16);
        assert_eq!(rec_len_for_name(255), 264);
        assert_eq!(rec_len_for_name(0), 8);
    }

    #[test]
    fn file_types_convert_from_and_to_modes() {
        for ft in 1..=7u8 {
            let t = FileType::from_raw(ft).unwrap();
            assert_eq!(FileType::from_mode(t.mode_bits().unwrap() | 0o644), t);
            assert_eq!(t.to_raw(), ft);
        }
        assert_eq!(FileType::from_mode(0o100_755), FileType::Regular);
        assert_eq!(FileType::from_mode(0o040_755), FileType::Directory);
        assert_eq!(FileType::from_mode(0o120_777), FileType::Symlink);
        assert_eq!(FileType::from_mode(0), FileType::Unknown);
        assert_eq!(FileType::Unknown.mode_bits(), None);
        assert_eq!(FileType::from_raw(8), None);
    }

    /// A directory made by debugfs: parse its blocks, verify every leaf
    /// checksum against the one e2fsprogs wrote, and compare names with ls.
    fn check_real_linear_dir(block_size: usize, opts: &[&str], csum: bool) {
        let img = Image::mkfs("dir-linear", 16, block_size, opts);
        img.mkdir_with_generation("d", 0x5eed_1234);
        let mut script = String::from("cd d\n");
        for i in 0..200 {
            script.push_str(&format!("mknod entry-number-{i:04} p\n"));
        }
        script.push_str("mkdir sub\nsymlink link /x\nrm entry-number-0007\nrm entry-number-0100\n");
        img.debugfs_script(&script);
        let seed = img.inode_seed("d");
        let blocks = img.file_blocks("d");
        assert!(blocks.len() > 1);
        let mut found = Vec::new();
        for &b in &blocks {
            let data = img.read_block(b);
            assert_eq!(has_csum_tail(&data), csum);
            if csum {
                verify_dir_block_csum(&data, seed).unwrap();
                let mut wrong = data.clone();
                wrong[20] ^= 1;
                assert!(matches!(
                    verify_dir_block_csum(&wrong, seed),
                    Err(FormatError::BadChecksum { .. })
                ));
                assert!(verify_dir_block_csum(&data, seed ^ 1).is_err());
            }
            check_block(&data, csum).unwrap();
            for r in live_entries(&data, csum) {
                let e = r.unwrap();
                found.push((String::from_utf8(e.name.to_vec()).unwrap(), e.file_type()));
            }
        }
        assert_eq!(found.len(), 2 + 198 + 2);
        assert!(found.contains(&(".".into(), Some(FileType::Directory))));
        assert!(found.contains(&("..".into(), Some(FileType::Directory))));
        assert!(found.contains(&("sub".into(), Some(FileType::Directory))));
        assert!(found.contains(&("link".into(), Some(FileType::Symlink))));
        assert!(found.contains(&("entry-number-0199".into(), Some(FileType::Fifo))));
        assert!(!found.iter().any(|(n, _)| n == "entry-number-0007"));
        let ls = img.debugfs("ls d");
        for (name, _) in &found {
            assert!(ls.contains(name.as_str()));
        }
    }

    #[test]
    fn parses_and_verifies_real_dirs_4k_csum() {
        check_real_linear_dir(4096, &[], true);
    }

    #[test]
    fn parses_and_verifies_real_dirs_1k_csum() {
        check_real_linear_dir(1024, &[], true);
    }

    #[test]
    fn parses_real_dirs_without_csum() {
        check_real_linear_dir(1024, &["-O", "^metadata_csum"], false);
    }

    #[test]
    fn first_block_dot_dotdot_spans_like_the_kernel() {
        let mut b = vec![0xaau8; 1024];
        LeafBuilder::new_first(&mut b, Some(7), 12, 2)
            .unwrap()
            .finish()
            .unwrap();
        let recs: Vec<_> = records(&b, true).map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(
            (recs[0].name, recs[0].rec_len, recs[0].inode),
            (&b"."[..], 12, 12)
        );
        assert_eq!(
            (recs[1].name, recs[1].rec_len, recs[1].inode),
            (&b".."[..], 1000, 2)
        );
        verify_dir_block_csum(&b, 7).unwrap();

        let mut b = vec![0u8; 4096];
        LeafBuilder::new_first(&mut b, None, 12, 2)
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(records(&b, false).nth(1).unwrap().unwrap().rec_len, 4084);
        assert!(!has_csum_tail(&b));
    }

    #[test]
    fn builder_stops_when_full_and_builds_multi_block_dirs() {
        let names: Vec<String> = (0..300).map(|i| format!("file-{i:05}")).collect();
        let entries: Vec<NewEntry> = names
            .iter()
            .enumerate()
            .map(|(i, n)| NewEntry {
                name: n.as_bytes(),
                inode: 100 + i as u32,
                file_type: FileType::Regular,
            })
            .collect();
        let out = build_linear_dir(12, 2, &entries, 1024, Some(99)).unwrap();
        assert_eq!(out.len() % 1024, 0);
        // 20-byte records, 50 per 1000-byte data area; the first block also
        // holds . and ..: 49 + 50 * 5 = 299, so 7 blocks.
        assert_eq!(out.len() / 1024, 7);
        let mut all = Vec::new();
        for b in out.chunks(1024) {
            verify_dir_block_csum(b, 99).unwrap();
            all.extend(names_of(b, true));
        }
        assert_eq!(all.len(), 302);
        assert_eq!(all[0], (b".".to_vec(), 12));
        assert_eq!(all[1], (b"..".to_vec(), 2));
        assert_eq!(all[301], (b"file-00299".to_vec(), 399));

        let mut b = vec![0u8; 1024];
        let mut lb = LeafBuilder::new(&mut b, None).unwrap();
        let mut n = 0;
        while lb
            .push(&NewEntry {
                name: b"abcdefgh",
                inode: 5,
                file_type: FileType::Regular,
            })
            .unwrap()
        {
            n += 1;
        }
        assert_eq!(n, 1024 / 16);
        assert!(!lb.fits(1));
        lb.finish().unwrap();
        check_block(&b, false).unwrap();
    }

    #[test]
    fn builder_rejects_bad_names() {
        let mut b = vec![0u8; 1024];
        let mut lb = LeafBuilder::new(&mut b, None).unwrap();
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b", &[b'x'; 256]] {
            let e = NewEntry {
                name: bad,
                inode: 5,
                file_type: FileType::Regular,
            };
            assert!(lb.push(&e).is_err());
        }
        let e = NewEntry {
            name: b"ok",
            inode: 0,
            file_type: FileType::Regular,
        };
        assert!(lb.push(&e).is_err());
    }

    #[test]
    fn insert_splits_slack_and_reuses_removed_space() {
        let mut b = vec![0u8; 1024];
        LeafBuilder::new_first(&mut b, Some(1), 12, 2)
            .unwrap()
            .finish()
            .unwrap();
        let mk = |name: &'static [u8], inode| NewEntry {
            name,
            inode,
            file_type: FileType::Regular,
        };
        assert_eq!(
            insert_entry(&mut b, Some(1), &mk(b"alpha", 20)).unwrap(),
            Some(24)
        );
        assert_eq!(
            insert_entry(&mut b, Some(1), &mk(b"beta", 21)).unwrap(),
            Some(40)
        );
        assert_eq!(
            insert_entry(&mut b, Some(1), &mk(b"gamma", 22)).unwrap(),
            Some(52)
        );
        verify_dir_block_csum(&b, 1).unwrap();
        assert_eq!(
            find_entry(&b, true, b"beta").unwrap().map(|e| e.inode),
            Some(21)
        );
        // Remove the middle one: its space joins "alpha"; reinsertion reuses it.
        remove_entry(&mut b, Some(1), 40).unwrap();
        verify_dir_block_csum(&b, 1).unwrap();
        assert_eq!(find_entry(&b, true, b"beta").unwrap(), None);
        assert_eq!(records(&b, true).nth(2).unwrap().unwrap().rec_len, 28);
        assert_eq!(
            insert_entry(&mut b, Some(1), &mk(b"delta", 23)).unwrap(),
            Some(68)
        );
        remove_entry(&mut b, Some(1), 68).unwrap();
        assert_eq!(
            insert_entry(&mut b, Some(1), &mk(b"eta", 23)).unwrap(),
            Some(40)
        );
        // Removing the first record marks it unused instead.
        remove_entry(&mut b, Some(1), 0).unwrap();
        let first = records(&b, true).next().unwrap().unwrap();
        assert_eq!((first.inode, first.rec_len, first.name), (0, 12, &b""[..]));
        assert!(remove_entry(&mut b, Some(1), 0).is_err());
        assert!(remove_entry(&mut b, Some(1), 4).is_err());
        // A 1-byte name fits in the freed 12-byte first record.
        assert_eq!(
            insert_entry(&mut b, Some(1), &mk(b"z", 24)).unwrap(),
            Some(0)
        );
        set_entry_target(&mut b, Some(1), 0, 25, FileType::Directory).unwrap();
        let z = find_entry(&b, true, b"z").unwrap().unwrap();
        assert_eq!((z.inode, z.file_type()), (25, Some(FileType::Directory)));
        verify_dir_block_csum(&b, 1).unwrap();
        // Fill up: then insertion reports no space and leaves the block alone.
        let mut i = 0u32;
        let names: Vec<String> = (0..200).map(|i| format!("filler-{i:03}")).collect();
        loop {
            let e = NewEntry {
                name: names[i as usize].as_bytes(),
                inode: 100 + i,
                file_type: FileType::Fifo,
            };
            let before = b.clone();
            match insert_entry(&mut b, Some(1), &e).unwrap() {
                Some(_) => i += 1,
                None => {
                    assert_eq!(before, b);
                    break;
                }
            }
        }
        check_block(&b, true).unwrap();
        verify_dir_block_csum(&b, 1).unwrap();
        // z, .., alpha, eta, gamma and the fillers.
        assert_eq!(live_entries(&b, true).count(), 5 + i as usize);
    }

    fn corrupt_at(block: &[u8], off: usize, v: u16) -> Vec<u8> {
        let mut b = block.to_vec();
        put_u16(&mut b, off, v);
        b
    }

    #[test]
    fn bad_records_are_errors_not_panics() {
        let mut b = vec![0u8; 1024];
        let mut lb = LeafBuilder::new_first(&mut b, Some(3), 12, 2).unwrap();
        lb.push(&NewEntry {
            name: b"hello",
            inode: 30,
            file_type: FileType::Regular,
        })
        .unwrap();
        lb.finish().unwrap();
        check_block(&b, true).unwrap();
        // rec_len of ".." (offset 12): odd, too small, zero, crossing the end.
        for v in [13u16, 8, 0, 2000, 1012] {
            let bad = corrupt_at(&b, 12 + 4, v);
            assert!(check_block(&bad, true).is_err(), "rec_len {v}");
        }
        // With the tail expected, the last record may not run into it.
        let bad = corrupt_at(&b, 24 + 4, 1000);
        assert!(check_block(&bad, true).is_err());
        assert!(check_block(&bad, false).is_ok());
        // name_len larger than the record.
        let mut bad = b.clone();
        bad[6] = 9;
        assert!(check_block(&bad, true).is_err());
        // A live entry without a name.
        let mut bad = b.clone();
        bad[24 + 6] = 0;
        assert!(check_block(&bad, true).is_err());
        // The iterator stops after the first error.
        let bad = corrupt_at(&b, 4, 3);
        let v: Vec<_> = records(&bad, true).collect();
        assert_eq!(v.len(), 1);
        assert!(v[0].is_err());
        // Odd sizes and tiny buffers.
        assert!(check_block(&[0u8; 10], false).is_err());
        assert!(check_block(&[0u8; 12], true).is_err());
        assert!(check_block(&[0u8; 1023], false).is_err());
        assert!(verify_dir_block_csum(&[0u8; 8], 0).is_err());
        // Mutating any byte never panics.
        for off in 0..64 {
            for v in [0u8, 1, 3, 0x7f, 0x80, 0xff] {
                let mut m = b.clone();
                m[off] = v;
                let _ = check_block(&m, true);
                let _ = verify_dir_block_csum(&m, 3);
                let _ = insert_entry(
                    &mut m,
                    Some(3),
                    &NewEntry {
                        name: b"new",
                        inode: 9,
                        file_type: FileType::Regular,
                    },
                );
                let _ = remove_entry(&mut m, Some(3), 24);
            }
        }
    }

    #[test]
    fn sixty_four_k_blocks_use_the_special_encoding() {
        let mut b = vec![0u8; 65536];
        let lb = LeafBuilder::new(&mut b, None).unwrap();
        lb.finish().unwrap();
        assert_eq!(u16_at(&b, 4), 0xffff);
        let recs: Vec<_> = records(&b, false).map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].rec_len, 65536);
        let mut b = vec![0u8; 65536];
        LeafBuilder::new_first(&mut b, Some(5), 2, 2)
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(
            records(&b, true).nth(1).unwrap().unwrap().rec_len,
            65536 - 24
        );
        verify_dir_block_csum(&b, 5).unwrap();
    }

    /// Writes a directory built here over one made by debugfs: e2fsck must
    /// find the result clean and debugfs must list every name.
    #[test]
    fn built_linear_dir_passes_e2fsck() {
        for (bs, opts) in [(1024usize, &[][..]), (4096, &["-O", "^metadata_csum"][..])] {
            let img = Image::mkfs("dir-build", 16, bs, opts);
            img.mkdir_with_generation("d", 77);
            let mut script = String::from("cd d\n");
            for i in 0..150 {
                script.push_str(&format!("mknod some-longer-fifo-name-{i:04} p\n"));
            }
            img.debugfs_script(&script);
            let csum = opts.is_empty();
            let seed = img.inode_seed("d");
            let (ino, _) = img.inode_and_generation("d");
            let blocks = img.file_blocks("d");
            // Collect the names (minus . and ..) and rebuild in reverse order.
            let mut owned = Vec::new();
            for &b in &blocks {
                for r in live_entries(&img.read_block(b), csum) {
                    let e = r.unwrap();
                    if !e.is_dot_or_dotdot() {
                        owned.push((e.name.to_vec(), e.inode, e.file_type().unwrap()));
                    }
                }
            }
            owned.reverse();
            let entries: Vec<NewEntry> = owned
                .iter()
                .map(|(n, i, t)| NewEntry {
                    name: n,
                    inode: *i,
                    file_type: *t,
                })
                .collect();
            let out = build_linear_dir(ino, 2, &entries, bs, csum.then_some(seed)).unwrap();
            let n_out = out.len() / bs;
            assert!(n_out <= blocks.len());
            for (i, &pb) in blocks.iter().enumerate() {
                if i < n_out {
                    img.write_block(pb, &out[i * bs..(i + 1) * bs]);
                } else {
                    // Spare blocks stay in the directory as empty blocks.
                    let mut empty = vec![0u8; bs];
                    LeafBuilder::new(&mut empty, csum.then_some(seed))
                        .unwrap()
                        .finish()
                        .unwrap();
                    img.write_block(pb, &empty);
                }
            }
            let (clean, text) = img.e2fsck_check();
            assert!(clean, "{text}");
            let ls = img.debugfs("ls d");
            assert!(ls.contains("some-longer-fifo-name-0000"));
            assert!(ls.contains("some-longer-fifo-name-0149"));
        }
    }
}
