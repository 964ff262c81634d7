//! The jbd2 journal on disk: the journal superblock and the block headers a
//! log is made of (descriptor, commit, revoke), with their checksums. All
//! fields are big-endian. No replay logic lives here.
//!
//! # Block header (`journal_header_t`, 12 bytes, every journal metadata block)
//!
//! ```text
//! 0x00 be32 h_magic      0xC03B3998
//! 0x04 be32 h_blocktype  1 descriptor, 2 commit, 3 superblock v1,
//!                        4 superblock v2, 5 revoke
//! 0x08 be32 h_sequence   transaction id (0 in the superblock)
//! ```
//!
//! # Superblock (`journal_superblock_t`, 1024 bytes, journal block 0)
//!
//! ```text
//! 0x00  header
//! 0x0C  be32 s_blocksize        journal block size (= fs block size)
//! 0x10  be32 s_maxlen           blocks in the journal, fast-commit area included
//! 0x14  be32 s_first            first log block (1)
//! 0x18  be32 s_sequence         first transaction expected in the log
//! 0x1C  be32 s_start            first block of the log; 0 = clean, nothing to replay
//! 0x20  be32 s_errno            error recorded by jbd2_journal_abort
//!       -- version 2 only --
//! 0x24  be32 s_feature_compat   CHECKSUM (v1 commit checksums)
//! 0x28  be32 s_feature_incompat REVOKE, 64BIT, ASYNC_COMMIT, CSUM_V2, CSUM_V3, FAST_COMMIT
//! 0x2C  be32 s_feature_ro_compat
//! 0x30  u8   s_uuid[16]         file system UUID (seeds the v2/v3 checksums)
//! 0x40  be32 s_nr_users         file systems sharing the journal (1)
//! 0x44  be32 s_dynsuper         unused
//! 0x48  be32 s_max_transaction  unused
//! 0x4C  be32 s_max_trans_data   unused
//! 0x50  u8   s_checksum_type    4 (crc32c) with CSUM_V2/V3
//! 0x51  u8   s_padding2[3]
//! 0x54  be32 s_num_fc_blks      fast-commit blocks at the end (0: default 256)
//! 0x58  be32 s_head             log head kept across clean mounts (kernel 6.4+)
//! 0x5C  be32 s_padding[40]
//! 0xFC  be32 s_checksum         crc32c(~0, superblock with this field zero)
//! 0x100 u8   s_users[16*48]     UUIDs of the users (external journals only)
//! ```
//!
//! # Descriptor block (type 1)
//!
//! The header, then block tags, one per data block that follows in the log.
//! A tag without `SAME_UUID` is followed by a 16-byte UUID; the last tag has
//! `LAST_TAG`. With CSUM_V2/V3 the block ends in a 4-byte tail
//! (`jbd2_journal_block_tail`: crc32c(journal seed, block with the tail
//! zero)). Tag layouts ([`TagFormat`]):
//!
//! ```text
//! CSUM_V3 (16 bytes, journal_block_tag3_t):
//!   0 be32 t_blocknr  4 be32 t_flags  8 be32 t_blocknr_high  12 be32 t_checksum
//! otherwise (journal_block_tag_t, 8 bytes, + 4 with 64BIT, + 2 with CSUM_V2):
//!   0 be32 t_blocknr  4 be16 t_checksum  6 be16 t_flags  8 be32 t_blocknr_high
//! ```
//!
//! `t_blocknr_high` counts only with 64BIT. The flags sit at bytes 6..8 in
//! both layouts. Tag checksum: crc32c(journal seed, be32 sequence, the data
//! block as logged), all 32 bits with V3, the low 16 with V2.
//!
//! # Commit block (type 2, `struct commit_header`)
//!
//! ```text
//! 0x0C u8   h_chksum_type  1 crc32 (COMPAT_CHECKSUM), else 0
//! 0x0D u8   h_chksum_size  4 with COMPAT_CHECKSUM, else 0
//! 0x10 be32 h_chksum[8]    [0]: crc32 of the data (v1), or with CSUM_V2/V3
//!                          crc32c(journal seed, block with h_chksum[0] zero)
//! 0x30 be64 h_commit_sec
//! 0x38 be32 h_commit_nsec
//! ```
//!
//! # Revoke block (type 5, `jbd2_journal_revoke_header_t`)
//!
//! The header, `r_count` (be32 at 0x0C: bytes used, header included), then
//! be32 (be64 with 64BIT) block numbers from 0x10 up to `r_count`, and the
//! checksum tail as in descriptor blocks.
//!
//! The journal checksum seed (`j_csum_seed`) is crc32c(~0, s_uuid).

use bitflags::bitflags;

use super::bytes::{be16_at, be32_at, be64_at, put_be16, put_be32, put_be64, require_len};
use super::csum::crc32c;
use super::error::{FormatError, Result};

/// `h_magic` of every journal metadata block.
pub const JBD2_MAGIC: u32 = 0xC03B_3998;
/// Size of `journal_header_t`.
pub const HEADER_LEN: usize = 12;
/// Size of `journal_superblock_t`.
pub const SUPERBLOCK_LEN: usize = 1024;
/// The smallest journal the kernel accepts (`JBD2_MIN_JOURNAL_BLOCKS`).
pub const MIN_JOURNAL_BLOCKS: u32 = 1024;
/// Fast-commit blocks when `s_num_fc_blks` is 0 (`JBD2_DEFAULT_FAST_COMMIT_BLOCKS`).
pub const DEFAULT_FAST_COMMIT_BLOCKS: u32 = 256;
/// Most users of a shared journal (`JBD2_USERS_MAX`).
pub const USERS_MAX: usize = 48;
/// `s_checksum_type` for crc32c (`JBD2_CRC32C_CHKSUM`).
pub const CHECKSUM_TYPE_CRC32C: u8 = 4;
/// `h_chksum_type` of v1 commit checksums (`JBD2_CRC32_CHKSUM`).
pub const CHECKSUM_TYPE_CRC32: u8 = 1;
/// Size of the checksum tail of descriptor and revoke blocks.
pub const TAIL_LEN: usize = 4;
/// Size of the revoke header (`jbd2_journal_revoke_header_t`).
pub const REVOKE_HEADER_LEN: usize = 16;
/// Size of `struct commit_header`.
pub const COMMIT_HEADER_LEN: usize = 60;

/// `h_blocktype` values.
pub mod blocktype {
    pub const DESCRIPTOR: u32 = 1;
    pub const COMMIT: u32 = 2;
    pub const SUPERBLOCK_V1: u32 = 3;
    pub const SUPERBLOCK_V2: u32 = 4;
    pub const REVOKE: u32 = 5;
}

/// Tag flags (`JBD2_FLAG_*`).
pub mod tag_flag {
    /// The logged block started with the jbd2 magic, which was zeroed in the
    /// log copy; restore it on replay.
    pub const ESCAPE: u16 = 1;
    /// No UUID follows this tag (same file system as the previous one).
    pub const SAME_UUID: u16 = 2;
    /// Block deleted by this transaction (unused by jbd2).
    pub const DELETED: u16 = 4;
    /// The last tag of the descriptor block.
    pub const LAST_TAG: u16 = 8;
}

// Header.
const H_MAGIC: usize = 0x00; // h_magic
const H_BLOCKTYPE: usize = 0x04; // h_blocktype
const H_SEQUENCE: usize = 0x08; // h_sequence

// Superblock.
const S_BLOCKSIZE: usize = 0x0C; // s_blocksize
const S_MAXLEN: usize = 0x10; // s_maxlen
const S_FIRST: usize = 0x14; // s_first
const S_SEQUENCE: usize = 0x18; // s_sequence
const S_START: usize = 0x1C; // s_start
const S_ERRNO: usize = 0x20; // s_errno
const S_FEATURE_COMPAT: usize = 0x24; // s_feature_compat
const S_FEATURE_INCOMPAT: usize = 0x28; // s_feature_incompat
const S_FEATURE_RO_COMPAT: usize = 0x2C; // s_feature_ro_compat
const S_UUID: usize = 0x30; // s_uuid
const S_NR_USERS: usize = 0x40; // s_nr_users
const S_DYNSUPER: usize = 0x44; // s_dynsuper
const S_MAX_TRANSACTION: usize = 0x48; // s_max_transaction
const S_MAX_TRANS_DATA: usize = 0x4C; // s_max_trans_data
const S_CHECKSUM_TYPE: usize = 0x50; // s_checksum_type
const S_NUM_FC_BLKS: usize = 0x54; // s_num_fc_blks
const S_HEAD: usize = 0x58; // s_head
const S_CHECKSUM: usize = 0xFC; // s_checksum
const S_USERS: usize = 0x100; // s_users

// Commit block.
const C_CHKSUM_TYPE: usize = 0x0C; // h_chksum_type
const C_CHKSUM_SIZE: usize = 0x0D; // h_chksum_size
const C_CHKSUM: usize = 0x10; // h_chksum[8]
const C_COMMIT_SEC: usize = 0x30; // h_commit_sec
const C_COMMIT_NSEC: usize = 0x38; // h_commit_nsec

// Revoke block.
const R_COUNT: usize = 0x0C; // r_count

bitflags! {
    /// `s_feature_compat`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct CompatFeatures: u32 {
        /// v1 commit-block checksums (crc32 of the transaction's blocks).
        const CHECKSUM = 0x1;
        const _ = !0;
    }

    /// `s_feature_incompat`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct IncompatFeatures: u32 {
        const REVOKE = 0x1;
        const BIT64 = 0x2;
        const ASYNC_COMMIT = 0x4;
        const CSUM_V2 = 0x8;
        const CSUM_V3 = 0x10;
        const FAST_COMMIT = 0x20;
        const _ = !0;
    }

    /// `s_feature_ro_compat` (none defined).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct RoCompatFeatures: u32 {
        const _ = !0;
    }
}

/// Incompat features this module understands.
pub const KNOWN_INCOMPAT: IncompatFeatures = IncompatFeatures::REVOKE
    .union(IncompatFeatures::BIT64)
    .union(IncompatFeatures::ASYNC_COMMIT)
    .union(IncompatFeatures::CSUM_V2)
    .union(IncompatFeatures::CSUM_V3)
    .union(IncompatFeatures::FAST_COMMIT);

/// The 12-byte header of a journal metadata block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// `h_blocktype` (see [`blocktype`]).
    pub blocktype: u32,
    /// `h_sequence`.
    pub sequence: u32,
}

/// Reads a block header; `Ok(None)` when the block does not start with the
/// jbd2 magic (the end of the log, or a data block).
pub fn parse_header(block: &[u8]) -> Result<Option<BlockHeader>> {
    require_len(block, HEADER_LEN, "journal block header")?;
    if be32_at(block, H_MAGIC) != JBD2_MAGIC {
        return Ok(None);
    }
    Ok(Some(BlockHeader {
        blocktype: be32_at(block, H_BLOCKTYPE),
        sequence: be32_at(block, H_SEQUENCE),
    }))
}

/// Writes a block header (magic, type, sequence).
pub fn encode_header(header: BlockHeader, block: &mut [u8]) -> Result<()> {
    require_len(block, HEADER_LEN, "journal block header")?;
    put_be32(block, H_MAGIC, JBD2_MAGIC);
    put_be32(block, H_BLOCKTYPE, header.blocktype);
    put_be32(block, H_SEQUENCE, header.sequence);
    Ok(())
}

fn expect_header(block: &[u8], want: u32, what: &'static str) -> Result<u32> {
    match parse_header(block)? {
        None => Err(FormatError::BadMagic {
            what,
            found: u64::from(be32_at(block, H_MAGIC)),
        }),
        Some(h) if h.blocktype != want => Err(FormatError::corrupt(
            what,
            format!("block type {} instead of {want}", h.blocktype),
        )),
        Some(h) => Ok(h.sequence),
    }
}

/// The journal checksum seed (`j_csum_seed`): crc32c(~0, uuid).
pub fn journal_csum_seed(uuid: &[u8; 16]) -> u32 {
    crc32c(!0, uuid)
}

/// The journal superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSuperblock {
    /// `h_blocktype`: [`blocktype::SUPERBLOCK_V1`] or [`blocktype::SUPERBLOCK_V2`].
    pub blocktype: u32,
    /// `h_sequence` of the superblock header (0 as written by mke2fs and jbd2).
    pub header_sequence: u32,
    pub blocksize: u32,
    /// `s_maxlen`: all journal blocks, fast-commit blocks included.
    pub maxlen: u32,
    pub first: u32,
    /// `s_sequence`: first transaction expected in the log.
    pub sequence: u32,
    /// `s_start`: 0 when the journal is empty (clean).
    pub start: u32,
    pub errno: i32,
    pub feature_compat: CompatFeatures,
    pub feature_incompat: IncompatFeatures,
    pub feature_ro_compat: RoCompatFeatures,
    pub uuid: [u8; 16],
    pub nr_users: u32,
    pub dynsuper: u32,
    pub max_transaction: u32,
    pub max_trans_data: u32,
    pub checksum_type: u8,
    pub num_fc_blks: u32,
    pub head: u32,
    /// `s_checksum` as stored.
    pub checksum: u32,
    /// `s_users`: all 48 slots as stored.
    pub users: [[u8; 16]; USERS_MAX],
}

impl JournalSuperblock {
    /// Parses and validates a journal superblock (not its checksum: see
    /// [`verify_superblock_checksum`]). Version-1 superblocks have no
    /// version-2 fields: they read as zero.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        const WHAT: &str = "journal superblock";
        require_len(buf, SUPERBLOCK_LEN, WHAT)?;
        let blocktype = expect_superblock_header(buf)?;
        let v2 = blocktype == blocktype::SUPERBLOCK_V2;
        let v2_u32 = |off| if v2 { be32_at(buf, off) } else { 0 };
        let mut uuid = [0u8; 16];
        let mut users = [[0u8; 16]; USERS_MAX];
        let mut checksum_type = 0;
        if v2 {
            uuid.copy_from_slice(&buf[S_UUID..S_UUID + 16]);
            for (i, user) in users.iter_mut().enumerate() {
                let off = S_USERS + 16 * i;
                user.copy_from_slice(&buf[off..off + 16]);
            }
            checksum_type = buf[S_CHECKSUM_TYPE];
        }
        let sb = JournalSuperblock {
            blocktype,
            header_sequence: be32_at(buf, H_SEQUENCE),
            blocksize: be32_at(buf, S_BLOCKSIZE),
            maxlen: be32_at(buf, S_MAXLEN),
            first: be32_at(buf, S_FIRST),
            sequence: be32_at(buf, S_SEQUENCE),
            start: be32_at(buf, S_START),
            errno: i32::from_be_bytes(be32_at(buf, S_ERRNO).to_be_bytes()),
            feature_compat: CompatFeatures::from_bits_retain(v2_u32(S_FEATURE_COMPAT)),
            feature_incompat: IncompatFeatures::from_bits_retain(v2_u32(S_FEATURE_INCOMPAT)),
            feature_ro_compat: RoCompatFeatures::from_bits_retain(v2_u32(S_FEATURE_RO_COMPAT)),
            uuid,
            nr_users: v2_u32(S_NR_USERS),
            dynsuper: v2_u32(S_DYNSUPER),
            max_transaction: v2_u32(S_MAX_TRANSACTION),
            max_trans_data: v2_u32(S_MAX_TRANS_DATA),
            checksum_type,
            num_fc_blks: v2_u32(S_NUM_FC_BLKS),
            head: v2_u32(S_HEAD),
            checksum: v2_u32(S_CHECKSUM),
            users,
        };
        sb.validate()?;
        Ok(sb)
    }

    /// The checks of the kernel's `journal_check_superblock` and
    /// `load_superblock` that need no outside knowledge.
    pub fn validate(&self) -> Result<()> {
        const WHAT: &str = "journal superblock";
        let bad = |detail: String| Err(FormatError::corrupt(WHAT, detail));
        if !self.blocksize.is_power_of_two() || !(1024..=65536).contains(&self.blocksize) {
            return bad(format!("block size {}", self.blocksize));
        }
        if self.maxlen < MIN_JOURNAL_BLOCKS {
            return bad(format!(
                "{} blocks, fewer than {MIN_JOURNAL_BLOCKS}",
                self.maxlen
            ));
        }
        if self.first == 0 || self.first >= self.log_end() {
            return bad(format!(
                "s_first {} outside 1..{}",
                self.first,
                self.log_end()
            ));
        }
        if self.start != 0 && (self.start < self.first || self.start >= self.log_end()) {
            return bad(format!(
                "s_start {} outside {}..{}",
                self.start,
                self.first,
                self.log_end()
            ));
        }
        if usize::try_from(self.nr_users).map_or(true, |n| n > USERS_MAX) {
            return bad(format!("{} users", self.nr_users));
        }
        if self.has_csum_v2or3() {
            if self.feature_compat.contains(CompatFeatures::CHECKSUM) {
                return bad("both v1 and v2/v3 checksums".into());
            }
            if self.checksum_type != CHECKSUM_TYPE_CRC32C {
                return bad(format!("checksum type {}", self.checksum_type));
            }
        }
        if self
            .feature_incompat
            .contains(IncompatFeatures::FAST_COMMIT)
            && self.maxlen.saturating_sub(self.fc_blocks()) < MIN_JOURNAL_BLOCKS
        {
            return bad(format!(
                "{} fast-commit blocks leave too short a log",
                self.fc_blocks()
            ));
        }
        Ok(())
    }

    /// Writes every field this struct models into `buf` (at least 1024
    /// bytes), leaving the padding as it was, and then, with CSUM_V2/V3, the
    /// checksum over the result ([`Self::checksum`] is ignored then). A
    /// version-1 superblock writes only the version-1 fields.
    pub fn encode(&self, buf: &mut [u8]) -> Result<()> {
        require_len(buf, SUPERBLOCK_LEN, "journal superblock")?;
        encode_header(
            BlockHeader {
                blocktype: self.blocktype,
                sequence: self.header_sequence,
            },
            buf,
        )?;
        put_be32(buf, S_BLOCKSIZE, self.blocksize);
        put_be32(buf, S_MAXLEN, self.maxlen);
        put_be32(buf, S_FIRST, self.first);
        put_be32(buf, S_SEQUENCE, self.sequence);
        put_be32(buf, S_START, self.start);
        put_be32(buf, S_ERRNO, u32::from_be_bytes(self.errno.to_be_bytes()));
        if self.blocktype != blocktype::SUPERBLOCK_V2 {
            return Ok(());
        }
        put_be32(buf, S_FEATURE_COMPAT, self.feature_compat.bits());
        put_be32(buf, S_FEATURE_INCOMPAT, self.feature_incompat.bits());
        put_be32(buf, S_FEATURE_RO_COMPAT, self.feature_ro_compat.bits());
        buf[S_UUID..S_UUID + 16].copy_from_slice(&self.uuid);
        put_be32(buf, S_NR_USERS, self.nr_users);
        put_be32(buf, S_DYNSUPER, self.dynsuper);
        put_be32(buf, S_MAX_TRANSACTION, self.max_transaction);
        put_be32(buf, S_MAX_TRANS_DATA, self.max_trans_data);
        buf[S_CHECKSUM_TYPE] = self.checksum_type;
        put_be32(buf, S_NUM_FC_BLKS, self.num_fc_blks);
        put_be32(buf, S_HEAD, self.head);
        put_be32(buf, S_CHECKSUM, self.checksum);
        for (i, user) in self.users.iter().enumerate() {
            let off = S_USERS + 16 * i;
            buf[off..off + 16].copy_from_slice(user);
        }
        if self.has_csum_v2or3() {
            set_superblock_checksum(buf)?;
        }
        Ok(())
    }

    /// The superblock mke2fs writes for a new, empty internal journal of
    /// `len_blocks` blocks (fast-commit blocks included) on a file system
    /// with this UUID: version 2, s_first 1, s_sequence 1, s_start 0, one
    /// user, no features (the kernel sets REVOKE, 64BIT, CSUM_V3,
    /// FAST_COMMIT at mount as it needs them), `s_users` left zero.
    /// `num_fc_blks`: 0 without the fast_commit fs feature, else see
    /// [`default_fc_blocks`].
    pub fn new_internal(
        block_size: u32,
        len_blocks: u32,
        uuid: [u8; 16],
        num_fc_blks: u32,
    ) -> Self {
        JournalSuperblock {
            blocktype: blocktype::SUPERBLOCK_V2,
            header_sequence: 0,
            blocksize: block_size,
            maxlen: len_blocks,
            first: 1,
            sequence: 1,
            start: 0,
            errno: 0,
            feature_compat: CompatFeatures::empty(),
            feature_incompat: IncompatFeatures::empty(),
            feature_ro_compat: RoCompatFeatures::empty(),
            uuid,
            nr_users: 1,
            dynsuper: 0,
            max_transaction: 0,
            max_trans_data: 0,
            checksum_type: 0,
            num_fc_blks,
            head: 0,
            checksum: 0,
            users: [[0u8; 16]; USERS_MAX],
        }
    }

    /// The whole first journal block (`block_size` bytes: the superblock,
    /// zeros after it) for [`Self::new_internal`] values.
    pub fn to_block(&self) -> Result<Vec<u8>> {
        let len = usize::try_from(self.blocksize)
            .map_err(|_| FormatError::corrupt("journal superblock", "block size"))?;
        let mut block = vec![0u8; len.max(SUPERBLOCK_LEN)];
        self.encode(&mut block)?;
        Ok(block)
    }

    /// Whether CSUM_V2 or CSUM_V3 is on (metadata checksums in the log).
    pub fn has_csum_v2or3(&self) -> bool {
        self.feature_incompat
            .intersects(IncompatFeatures::CSUM_V2 | IncompatFeatures::CSUM_V3)
    }

    /// `j_csum_seed`: crc32c(~0, s_uuid).
    pub fn csum_seed(&self) -> u32 {
        journal_csum_seed(&self.uuid)
    }

    /// The layout of block tags in this journal's descriptor blocks.
    pub fn tag_format(&self) -> TagFormat {
        TagFormat::from_features(self.feature_incompat)
    }

    /// Fast-commit blocks at the end of the journal: 0 unless FAST_COMMIT is
    /// on; then `s_num_fc_blks`, or 256 when that is 0.
    pub fn fc_blocks(&self) -> u32 {
        if !self
            .feature_incompat
            .contains(IncompatFeatures::FAST_COMMIT)
        {
            0
        } else if self.num_fc_blks == 0 {
            DEFAULT_FAST_COMMIT_BLOCKS
        } else {
            self.num_fc_blks
        }
    }

    /// One past the last block of the circular log (`j_last`).
    pub fn log_end(&self) -> u32 {
        self.maxlen.saturating_sub(self.fc_blocks())
    }

    /// Incompat features set but unknown here (refuse the journal if any).
    pub fn unknown_incompat(&self) -> IncompatFeatures {
        self.feature_incompat.difference(KNOWN_INCOMPAT)
    }

    /// Whether the log holds transactions to replay.
    pub fn needs_recovery(&self) -> bool {
        self.start != 0
    }
}

fn expect_superblock_header(buf: &[u8]) -> Result<u32> {
    const WHAT: &str = "journal superblock";
    match parse_header(buf)? {
        None => Err(FormatError::BadMagic {
            what: WHAT,
            found: u64::from(be32_at(buf, H_MAGIC)),
        }),
        Some(h)
            if h.blocktype == blocktype::SUPERBLOCK_V1
                || h.blocktype == blocktype::SUPERBLOCK_V2 =>
        {
            Ok(h.blocktype)
        }
        Some(h) => Err(FormatError::corrupt(
            WHAT,
            format!("block type {}", h.blocktype),
        )),
    }
}

/// `jbd2_superblock_csum`: crc32c(~0) over the 1024-byte superblock with
/// `s_checksum` taken as zero.
pub fn superblock_checksum(buf: &[u8]) -> Result<u32> {
    require_len(buf, SUPERBLOCK_LEN, "journal superblock")?;
    let crc = crc32c(!0, &buf[..S_CHECKSUM]);
    let crc = crc32c(crc, &[0u8; 4]);
    Ok(crc32c(crc, &buf[S_CHECKSUM + 4..SUPERBLOCK_LEN]))
}

/// Checks `s_checksum` when the superblock says CSUM_V2/V3 (else succeeds).
pub fn verify_superblock_checksum(buf: &[u8]) -> Result<()> {
    let sb = JournalSuperblock::parse(buf)?;
    if !sb.has_csum_v2or3() {
        return Ok(());
    }
    let computed = superblock_checksum(buf)?;
    if computed != sb.checksum {
        return Err(FormatError::BadChecksum {
            what: "journal superblock",
            stored: sb.checksum,
            computed,
        });
    }
    Ok(())
}

/// Stores [`superblock_checksum`] in `s_checksum`.
pub fn set_superblock_checksum(buf: &mut [u8]) -> Result<()> {
    let csum = superblock_checksum(buf)?;
    put_be32(buf, S_CHECKSUM, csum);
    Ok(())
}

/// How tags are checksummed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagCsum {
    /// No per-tag checksum.
    None,
    /// CSUM_V2: 16-bit `t_checksum`, tag 2 bytes longer.
    V2,
    /// CSUM_V3: 16-byte `journal_block_tag3_t` with a 32-bit checksum.
    V3,
}

/// The layout of block tags, from the journal's incompat features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagFormat {
    pub csum: TagCsum,
    /// 64BIT: `t_blocknr_high` counts.
    pub bit64: bool,
}

impl TagFormat {
    pub fn from_features(incompat: IncompatFeatures) -> Self {
        let csum = if incompat.contains(IncompatFeatures::CSUM_V3) {
            TagCsum::V3
        } else if incompat.contains(IncompatFeatures::CSUM_V2) {
            TagCsum::V2
        } else {
            TagCsum::None
        };
        TagFormat {
            csum,
            bit64: incompat.contains(IncompatFeatures::BIT64),
        }
    }

    /// `journal_tag_bytes`: 16 with V3; else 12 (64BIT) or 8, plus 2 with V2.
    pub fn tag_len(&self) -> usize {
        match self.csum {
            TagCsum::V3 => 16,
            TagCsum::V2 => {
                if self.bit64 {
                    14
                } else {
                    10
                }
            }
            TagCsum::None => {
                if self.bit64 {
                    12
                } else {
                    8
                }
            }
        }
    }

    /// Whether descriptor and revoke blocks end in a checksum tail.
    pub fn has_tail(&self) -> bool {
        self.csum != TagCsum::None
    }
}

/// One block tag of a descriptor block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockTag {
    /// Where the logged block belongs on the file system.
    pub blocknr: u64,
    /// See [`tag_flag`].
    pub flags: u16,
    /// `t_checksum` (16 significant bits with V2, 0 without checksums).
    pub checksum: u32,
    /// The UUID following the tag when `SAME_UUID` is clear.
    pub uuid: Option<[u8; 16]>,
}

impl BlockTag {
    pub fn is_escaped(&self) -> bool {
        self.flags & tag_flag::ESCAPE != 0
    }

    pub fn is_last(&self) -> bool {
        self.flags & tag_flag::LAST_TAG != 0
    }
}

/// A parsed descriptor block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub sequence: u32,
    /// One per data block following the descriptor in the log, in order.
    pub tags: Vec<BlockTag>,
}

/// Parses a descriptor block: tags up to the one flagged `LAST_TAG`, or as
/// many as fit (the kernel's rule), before the checksum tail if any. Does
/// not check the tail (see [`verify_tail_checksum`]).
pub fn parse_descriptor(block: &[u8], format: TagFormat) -> Result<Descriptor> {
    const WHAT: &str = "journal descriptor block";
    let sequence = expect_header(block, blocktype::DESCRIPTOR, WHAT)?;
    let tag_len = format.tag_len();
    let end = block
        .len()
        .checked_sub(if format.has_tail() { TAIL_LEN } else { 0 })
        .ok_or_else(|| FormatError::corrupt(WHAT, "block too small"))?;
    let mut pos = HEADER_LEN;
    let mut tags = Vec::new();
    // Each tag takes at least 8 bytes: at most block.len() / 8 steps.
    while pos + tag_len <= end {
        let t = &block[pos..pos + tag_len];
        let flags = be16_at(t, 6);
        let low = u64::from(be32_at(t, 0));
        let high = if format.bit64 {
            u64::from(be32_at(t, 8))
        } else {
            0
        };
        let checksum = match format.csum {
            TagCsum::V3 => be32_at(t, 12),
            TagCsum::V2 | TagCsum::None => u32::from(be16_at(t, 4)),
        };
        pos += tag_len;
        let uuid = if flags & tag_flag::SAME_UUID == 0 {
            let Some(bytes) = block.get(pos..pos + 16).filter(|_| pos + 16 <= end) else {
                return Err(FormatError::corrupt(WHAT, "tag UUID runs past the end"));
            };
            pos += 16;
            let mut uuid = [0u8; 16];
            uuid.copy_from_slice(bytes);
            Some(uuid)
        } else {
            None
        };
        tags.push(BlockTag {
            blocknr: low | (high << 32),
            flags,
            checksum,
            uuid,
        });
        if flags & tag_flag::LAST_TAG != 0 {
            break;
        }
    }
    if tags.is_empty() {
        return Err(FormatError::corrupt(WHAT, "no tags"));
    }
    Ok(Descriptor { sequence, tags })
}

/// How many tags fit in one descriptor block of `block_size` bytes when only
/// the first carries a UUID.
pub fn tags_per_descriptor(block_size: usize, format: TagFormat) -> usize {
    let tail = if format.has_tail() { TAIL_LEN } else { 0 };
    block_size
        .saturating_sub(HEADER_LEN + tail + 16)
        .checked_div(format.tag_len())
        .unwrap_or(0)
}

/// Encodes a descriptor block: header, tags (with their UUIDs and flags as
/// given; the caller sets `SAME_UUID` and `LAST_TAG`), zeros after them, and
/// with V2/V3 the checksum tail under `csum_seed`. Fails if they do not fit.
pub fn encode_descriptor(
    sequence: u32,
    tags: &[BlockTag],
    format: TagFormat,
    csum_seed: u32,
    block: &mut [u8],
) -> Result<()> {
    const WHAT: &str = "journal descriptor block";
    let tag_len = format.tag_len();
    let tail = if format.has_tail() { TAIL_LEN } else { 0 };
    let need = tags.iter().fold(HEADER_LEN + tail, |acc, t| {
        acc + tag_len + if t.uuid.is_some() { 16 } else { 0 }
    });
    require_len(block, need, WHAT)?;
    block.fill(0);
    encode_header(
        BlockHeader {
            blocktype: blocktype::DESCRIPTOR,
            sequence,
        },
        block,
    )?;
    let mut pos = HEADER_LEN;
    for tag in tags {
        if tag.uuid.is_some() == (tag.flags & tag_flag::SAME_UUID != 0) {
            return Err(FormatError::corrupt(
                WHAT,
                "a tag has a UUID exactly when SAME_UUID is clear",
            ));
        }
        let t = &mut block[pos..pos + tag_len];
        put_be32(t, 0, super::bytes::lo32(tag.blocknr));
        if format.bit64 {
            put_be32(t, 8, super::bytes::hi32(tag.blocknr));
        } else if tag.blocknr > u64::from(u32::MAX) {
            return Err(FormatError::corrupt(WHAT, "block number needs 64BIT"));
        }
        put_be16(t, 6, tag.flags);
        match format.csum {
            TagCsum::V3 => put_be32(t, 12, tag.checksum),
            TagCsum::V2 => put_be16(t, 4, (tag.checksum & 0xFFFF) as u16),
            TagCsum::None => {}
        }
        pos += tag_len;
        if let Some(uuid) = tag.uuid {
            block[pos..pos + 16].copy_from_slice(&uuid);
            pos += 16;
        }
    }
    if format.has_tail() {
        set_tail_checksum(csum_seed, block)?;
    }
    Ok(())
}

/// `jbd2_block_tag_csum`: crc32c(journal seed, be32 sequence, data block as
/// logged). V3 stores all 32 bits, V2 the low 16.
pub fn tag_checksum(csum_seed: u32, sequence: u32, data: &[u8]) -> u32 {
    crc32c(crc32c(csum_seed, &sequence.to_be_bytes()), data)
}

/// Checks a tag's checksum against its logged data block (true when the
/// format has no tag checksums).
pub fn verify_tag_checksum(
    format: TagFormat,
    csum_seed: u32,
    sequence: u32,
    tag: &BlockTag,
    data: &[u8],
) -> bool {
    let csum = tag_checksum(csum_seed, sequence, data);
    match format.csum {
        TagCsum::None => true,
        TagCsum::V2 => tag.checksum & 0xFFFF == csum & 0xFFFF,
        TagCsum::V3 => tag.checksum == csum,
    }
}

/// The checksum of a descriptor or revoke block: crc32c(journal seed, block
/// with the 4-byte tail zeroed).
pub fn tail_checksum(csum_seed: u32, block: &[u8]) -> Result<u32> {
    require_len(block, HEADER_LEN + TAIL_LEN, "journal block")?;
    let split = block.len() - TAIL_LEN;
    Ok(crc32c(crc32c(csum_seed, &block[..split]), &[0u8; 4]))
}

/// Checks the tail checksum (`t_checksum` of `jbd2_journal_block_tail`).
pub fn verify_tail_checksum(csum_seed: u32, block: &[u8]) -> Result<()> {
    let computed = tail_checksum(csum_seed, block)?;
    let stored = be32_at(block, block.len() - TAIL_LEN);
    if stored != computed {
        return Err(FormatError::BadChecksum {
            what: "journal descriptor/revoke block",
            stored,
            computed,
        });
    }
    Ok(())
}

/// Stores the tail checksum.
pub fn set_tail_checksum(csum_seed: u32, block: &mut [u8]) -> Result<()> {
    let csum = tail_checksum(csum_seed, block)?;
    let at = block.len() - TAIL_LEN;
    put_be32(block, at, csum);
    Ok(())
}

/// A parsed commit block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    pub sequence: u32,
    /// `h_chksum_type`: [`CHECKSUM_TYPE_CRC32`] with COMPAT_CHECKSUM, else 0.
    pub chksum_type: u8,
    /// `h_chksum_size`: 4 with COMPAT_CHECKSUM, else 0.
    pub chksum_size: u8,
    /// `h_chksum[0..8]`; `[0]` is the only one used.
    pub chksum: [u32; 8],
    pub commit_sec: u64,
    pub commit_nsec: u32,
}

/// Parses a commit block (any size from 60 bytes; the checksum covers the
/// whole block, see [`verify_commit_checksum`]).
pub fn parse_commit(block: &[u8]) -> Result<Commit> {
    const WHAT: &str = "journal commit block";
    require_len(block, COMMIT_HEADER_LEN, WHAT)?;
    let sequence = expect_header(block, blocktype::COMMIT, WHAT)?;
    let mut chksum = [0u32; 8];
    for (i, c) in chksum.iter_mut().enumerate() {
        *c = be32_at(block, C_CHKSUM + 4 * i);
    }
    let commit = Commit {
        sequence,
        chksum_type: block[C_CHKSUM_TYPE],
        chksum_size: block[C_CHKSUM_SIZE],
        chksum,
        commit_sec: be64_at(block, C_COMMIT_SEC),
        commit_nsec: be32_at(block, C_COMMIT_NSEC),
    };
    if commit.commit_nsec >= 1_000_000_000 {
        return Err(FormatError::corrupt(
            WHAT,
            format!("h_commit_nsec {}", commit.commit_nsec),
        ));
    }
    Ok(commit)
}

/// Encodes a commit block: zeros everywhere else, then with V2/V3 (`csum`
/// = Some(journal seed)) the block checksum in `h_chksum[0]`.
pub fn encode_commit(commit: &Commit, csum_seed: Option<u32>, block: &mut [u8]) -> Result<()> {
    require_len(block, COMMIT_HEADER_LEN, "journal commit block")?;
    block.fill(0);
    encode_header(
        BlockHeader {
            blocktype: blocktype::COMMIT,
            sequence: commit.sequence,
        },
        block,
    )?;
    block[C_CHKSUM_TYPE] = commit.chksum_type;
    block[C_CHKSUM_SIZE] = commit.chksum_size;
    for (i, c) in commit.chksum.iter().enumerate() {
        put_be32(block, C_CHKSUM + 4 * i, *c);
    }
    put_be64(block, C_COMMIT_SEC, commit.commit_sec);
    put_be32(block, C_COMMIT_NSEC, commit.commit_nsec);
    if let Some(seed) = csum_seed {
        set_commit_checksum(seed, block)?;
    }
    Ok(())
}

/// `jbd2_commit_block_csum`: crc32c(journal seed, whole block with
/// `h_chksum[0]` zeroed).
pub fn commit_checksum(csum_seed: u32, block: &[u8]) -> Result<u32> {
    require_len(block, COMMIT_HEADER_LEN, "journal commit block")?;
    let crc = crc32c(csum_seed, &block[..C_CHKSUM]);
    let crc = crc32c(crc, &[0u8; 4]);
    Ok(crc32c(crc, &block[C_CHKSUM + 4..]))
}

/// Checks a V2/V3 commit block checksum.
pub fn verify_commit_checksum(csum_seed: u32, block: &[u8]) -> Result<()> {
    let computed = commit_checksum(csum_seed, block)?;
    let stored = be32_at(block, C_CHKSUM);
    if stored != computed {
        return Err(FormatError::BadChecksum {
            what: "journal commit block",
            stored,
            computed,
        });
    }
    Ok(())
}

/// Stores the V2/V3 commit block checksum in `h_chksum[0]`.
pub fn set_commit_checksum(csum_seed: u32, block: &mut [u8]) -> Result<()> {
    let csum = commit_checksum(csum_seed, block)?;
    put_be32(block, C_CHKSUM, csum);
    Ok(())
}

/// A parsed revoke block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoke {
    pub sequence: u32,
    /// File-system blocks whose earlier log copies must not be replayed.
    pub blocks: Vec<u64>,
}

/// Parses a revoke block. `r_count` must lie within 16..=block size (minus
/// the tail with V2/V3); like the kernel, a partial record at the end is
/// ignored. Does not check the tail (see [`verify_tail_checksum`]).
pub fn parse_revoke(block: &[u8], format: TagFormat) -> Result<Revoke> {
    const WHAT: &str = "journal revoke block";
    require_len(block, REVOKE_HEADER_LEN, WHAT)?;
    let sequence = expect_header(block, blocktype::REVOKE, WHAT)?;
    let count = usize::try_from(be32_at(block, R_COUNT))
        .map_err(|_| FormatError::corrupt(WHAT, "r_count"))?;
    let limit = block.len() - if format.has_tail() { TAIL_LEN } else { 0 };
    if count < REVOKE_HEADER_LEN || count > limit {
        return Err(FormatError::corrupt(
            WHAT,
            format!("r_count {count} outside {REVOKE_HEADER_LEN}..={limit}"),
        ));
    }
    let record = if format.bit64 { 8 } else { 4 };
    let blocks = block[REVOKE_HEADER_LEN..count]
        .chunks_exact(record)
        .map(|r| {
            if format.bit64 {
                be64_at(r, 0)
            } else {
                u64::from(be32_at(r, 0))
            }
        })
        .collect();
    Ok(Revoke { sequence, blocks })
}

/// How many revoke records fit in one block.
pub fn revokes_per_block(block_size: usize, format: TagFormat) -> usize {
    let tail = if format.has_tail() { TAIL_LEN } else { 0 };
    let record = if format.bit64 { 8 } else { 4 };
    block_size.saturating_sub(REVOKE_HEADER_LEN + tail) / record
}

/// Encodes a revoke block (header, `r_count`, records, zeros, tail checksum
/// with V2/V3). Fails if the records do not fit.
pub fn encode_revoke(
    revoke: &Revoke,
    format: TagFormat,
    csum_seed: u32,
    block: &mut [u8],
) -> Result<()> {
    const WHAT: &str = "journal revoke block";
    let record = if format.bit64 { 8 } else { 4 };
    let tail = if format.has_tail() { TAIL_LEN } else { 0 };
    let count = revoke
        .blocks
        .len()
        .checked_mul(record)
        .and_then(|n| n.checked_add(REVOKE_HEADER_LEN))
        .ok_or_else(|| FormatError::corrupt(WHAT, "too many records"))?;
    require_len(block, count + tail, WHAT)?;
    block.fill(0);
    encode_header(
        BlockHeader {
            blocktype: blocktype::REVOKE,
            sequence: revoke.sequence,
        },
        block,
    )?;
    let r_count = u32::try_from(count).map_err(|_| FormatError::corrupt(WHAT, "r_count"))?;
    put_be32(block, R_COUNT, r_count);
    for (i, &b) in revoke.blocks.iter().enumerate() {
        let at = REVOKE_HEADER_LEN + i * record;
        if format.bit64 {
            put_be64(block, at, b);
        } else {
            let b32 = u32::try_from(b)
                .map_err(|_| FormatError::corrupt(WHAT, "block number needs 64BIT"))?;
            put_be32(block, at, b32);
        }
    }
    if format.has_tail() {
        set_tail_checksum(csum_seed, block)?;
    }
    Ok(())
}

/// mke2fs's default journal size in blocks for a file system of `fs_blocks`
/// blocks (`ext2fs_default_journal_size`, e2fsprogs 1.47); `None` below 2048
/// blocks (no journal).
pub fn default_journal_blocks(fs_blocks: u64) -> Option<u32> {
    const STEPS: [(u64, u32); 8] = [
        (32_768, 1024),
        (256 * 1024, 4096),
        (512 * 1024, 8192),
        (4096 * 1024, 16_384),
        (8192 * 1024, 32_768),
        (16_384 * 1024, 65_536),
        (32_768 * 1024, 131_072),
        (u64::MAX, 262_144),
    ];
    if fs_blocks < 2048 {
        return None;
    }
    STEPS
        .iter()
        .find(|(below, _)| fs_blocks < *below)
        .map(|&(_, n)| n)
        .or(Some(262_144))
}

/// mke2fs's fast-commit area for a journal of `journal_blocks` blocks when
/// the fast_commit feature is on (`EXT2_JOURNAL_TO_FC_BLKS_RATIO` 64); the
/// journal inode then has `journal_blocks + fc` blocks and `s_maxlen` counts
/// both.
pub fn default_fc_blocks(journal_blocks: u32) -> u32 {
    journal_blocks / 64
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::format::testutil::{self as tu, fixture, fixture_text};

    /// A `.blocks` fixture: journal block number -> block.
    fn journal_fixture(name: &str) -> BTreeMap<u32, Vec<u8>> {
        let raw = fixture(&format!("jbd2/{name}.blocks"));
        let sb = JournalSuperblock::parse(&raw[4..4 + SUPERBLOCK_LEN]).unwrap();
        let bs = usize::try_from(sb.blocksize).unwrap();
        raw.chunks_exact(4 + bs)
            .map(|r| {
                (
                    u32::from_le_bytes(r[..4].try_into().unwrap()),
                    r[4..].to_vec(),
                )
            })
            .collect()
    }

    /// What `debugfs logdump -a` printed.
    #[derive(Default)]
    struct Logdump {
        /// journal block -> (fs block, flags) of each logged block.
        logged: BTreeMap<u32, (u64, u32)>,
        /// journal block -> revoked fs blocks.
        revoked: BTreeMap<u32, Vec<u64>>,
        /// (sequence, type, journal block) of each metadata block.
        found: Vec<(u32, u32, u32)>,
    }

    fn logdump(name: &str) -> Logdump {
        let mut d = Logdump::default();
        let mut revoke_at = 0;
        for line in fixture_text(&format!("jbd2/{name}.logdump")).lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            if line.starts_with("Found expected sequence") {
                let seq = w[3].trim_end_matches(',').parse().unwrap();
                let ty = w[5].parse().unwrap();
                let at = w[w.len() - 1].parse().unwrap();
                d.found.push((seq, ty, at));
                revoke_at = at;
            } else if line.contains("logged at journal block") {
                let fs = w[2].parse().unwrap();
                let at = w[7].parse().unwrap();
                let flags =
                    u32::from_str_radix(w[9].trim_start_matches("0x").trim_end_matches(')'), 16)
                        .unwrap();
                d.logged.insert(at, (fs, flags));
            } else if line.trim_start().starts_with("Revoke FS block") {
                d.revoked
                    .entry(revoke_at)
                    .or_default()
                    .push(w[3].parse().unwrap());
            }
        }
        d
    }

    const KERNEL_JOURNALS: [(&str, IncompatFeatures, CompatFeatures); 5] = [
        (
            "csum-1k",
            IncompatFeatures::BIT64.union(IncompatFeatures::CSUM_V3),
            CompatFeatures::empty(),
        ),
        (
            "csum32-4k",
            IncompatFeatures::CSUM_V3,
            CompatFeatures::empty(),
        ),
        (
            "plain-1k",
            IncompatFeatures::empty(),
            CompatFeatures::empty(),
        ),
        (
            "plain64-1k",
            IncompatFeatures::BIT64,
            CompatFeatures::empty(),
        ),
        (
            "v1async-4k",
            IncompatFeatures::BIT64.union(IncompatFeatures::ASYNC_COMMIT),
            CompatFeatures::CHECKSUM,
        ),
    ];

    #[test]
    fn kernel_journals_parse_as_debugfs_logdump_reads_them() {
        for (name, incompat, compat) in KERNEL_JOURNALS {
            let blocks = journal_fixture(name);
            let dump = logdump(name);
            let sb_raw = &blocks[&0];
            let sb = JournalSuperblock::parse(sb_raw).unwrap();
            verify_superblock_checksum(sb_raw).unwrap();
            assert_eq!(sb.feature_incompat, incompat, "{name}");
            assert_eq!(sb.feature_compat, compat, "{name}");
            assert!(sb.unknown_incompat().is_empty());
            assert!(sb.needs_recovery(), "copied while mounted");
            assert_eq!(sb.nr_users, 1);
            if sb.has_csum_v2or3() {
                assert_eq!(sb.checksum_type, CHECKSUM_TYPE_CRC32C);
                assert_ne!(sb.checksum, 0);
            }
            let format = sb.tag_format();
            let seed = sb.csum_seed();

            // Walk the log as recovery would, without replaying.
            let mut pos = sb.start;
            let mut seq = sb.sequence;
            let mut found = Vec::new();
            let mut tags_checked = 0;
            let mut escaped_seen = 0;
            loop {
                let block = &blocks[&pos];
                let Some(h) = parse_header(block).unwrap() else {
                    break;
                };
                if h.sequence != seq {
                    break;
                }
                found.push((seq, h.blocktype, pos));
                let mut copy = vec![0xA5u8; block.len()];
                match h.blocktype {
                    blocktype::DESCRIPTOR => {
                        let d = parse_descriptor(block, format).unwrap();
                        if format.has_tail() {
                            verify_tail_checksum(seed, block).unwrap();
                        }
                        assert!(d.tags.last().unwrap().is_last());
                        // The first tag carries a UUID (the kernel writes
                        // its j_uuid there, zero for ext4's internal journal).
                        assert!(d.tags[0].uuid.is_some(), "{name}");
                        assert!(d.tags[1..].iter().all(|t| t.uuid.is_none()));
                        for (i, tag) in d.tags.iter().enumerate() {
                            let at = pos + 1 + u32::try_from(i).unwrap();
                            assert_eq!(
                                dump.logged[&at],
                                (tag.blocknr, u32::from(tag.flags)),
                                "{name} {at}"
                            );
                            if let Some(data) = blocks.get(&at) {
                                assert!(
                                    verify_tag_checksum(format, seed, seq, tag, data),
                                    "{name} {at}"
                                );
                                if format.csum != TagCsum::None {
                                    tags_checked += 1;
                                }
                                if tag.is_escaped() {
                                    escaped_seen += 1;
                                    assert_eq!(&data[..4], &[0; 4]);
                                    assert!(data[4..]
                                        .starts_with(b" this block starts with the jbd2 magic"));
                                }
                            }
                        }
                        encode_descriptor(seq, &d.tags, format, seed, &mut copy).unwrap();
                        assert_eq!(
                            &copy, block,
                            "{name}: descriptor at {pos} re-encodes identically"
                        );
                        pos += 1 + u32::try_from(d.tags.len()).unwrap();
                    }
                    blocktype::COMMIT => {
                        let c = parse_commit(block).unwrap();
                        assert!(
                            c.commit_sec > 1_600_000_000,
                            "{name}: commit time {}",
                            c.commit_sec
                        );
                        if sb.has_csum_v2or3() {
                            verify_commit_checksum(seed, block).unwrap();
                            assert_eq!((c.chksum_type, c.chksum_size), (0, 0));
                        } else if sb.feature_compat.contains(CompatFeatures::CHECKSUM) {
                            assert_eq!((c.chksum_type, c.chksum_size), (CHECKSUM_TYPE_CRC32, 4));
                        } else {
                            assert_eq!(c.chksum, [0; 8]);
                        }
                        let csum = sb.has_csum_v2or3().then_some(seed);
                        encode_commit(&c, csum, &mut copy).unwrap();
                        assert_eq!(
                            &copy, block,
                            "{name}: commit at {pos} re-encodes identically"
                        );
                        pos += 1;
                        seq += 1;
                    }
                    blocktype::REVOKE => {
                        let r = parse_revoke(block, format).unwrap();
                        if format.has_tail() {
                            verify_tail_checksum(seed, block).unwrap();
                        }
                        assert_eq!(r.blocks, dump.revoked[&pos], "{name}");
                        encode_revoke(&r, format, seed, &mut copy).unwrap();
                        assert_eq!(
                            &copy, block,
                            "{name}: revoke at {pos} re-encodes identically"
                        );
                        pos += 1;
                    }
                    other => panic!("{name}: block type {other} at {pos}"),
                }
            }
            assert_eq!(found, dump.found, "{name}");
            assert!(
                found.iter().any(|f| f.1 == blocktype::REVOKE) || name == "v1async-4k",
                "{name}"
            );
            if name == "csum-1k" {
                assert!(tags_checked > 40, "{tags_checked}");
            }
            // Only data=journal logs file data, such as the block that starts
            // with the magic.
            let want_escaped = usize::from(name == "v1async-4k");
            assert_eq!(escaped_seen, want_escaped, "{name}");
            // The superblock re-encodes to the same bytes.
            let mut copy = sb_raw.clone();
            copy[..SUPERBLOCK_LEN].fill(0);
            sb.encode(&mut copy).unwrap();
            assert_eq!(&copy, sb_raw, "{name}");
        }
    }

    #[test]
    fn fresh_journals_match_mke2fs_byte_for_byte() {
        let configs: [(&[&str], u64); 5] = [
            (&["-b", "1024"], 8),
            (&["-b", "1024"], 32),
            (&["-b", "1024", "-O", "fast_commit"], 32),
            (&["-b", "4096", "-O", "fast_commit,^64bit"], 64),
            (&["-b", "4096", "-J", "size=8"], 1200),
        ];
        let dir = tu::TempDir::new("jbd2-fresh");
        for (opts, mib) in configs {
            let img = dir.join("img");
            tu::mkfs(&img, mib, opts);
            let sb = tu::read_at(&img, 1024, 1024);
            let bs = tu::sb_block_size(&sb);
            let fs_blocks = (mib << 20) / u64::try_from(bs).unwrap();
            let first: u64 = tu::debugfs(&img, false, "bmap <8> 0\n")
                .lines()
                .find_map(|l| l.trim().parse().ok())
                .unwrap();
            let block0 = tu::read_at(&img, first * u64::try_from(bs).unwrap(), bs);
            let parsed = JournalSuperblock::parse(&block0).unwrap();

            let fast_commit = opts.iter().any(|o| o.contains("fast_commit"));
            let journal_blocks = if opts.contains(&"size=8") {
                8 << 20 >> bs.trailing_zeros()
            } else {
                default_journal_blocks(fs_blocks).unwrap()
            };
            let fc = if fast_commit {
                default_fc_blocks(journal_blocks)
            } else {
                0
            };
            let ours = JournalSuperblock::new_internal(
                u32::try_from(bs).unwrap(),
                journal_blocks + fc,
                tu::sb_uuid(&sb),
                fc,
            );
            assert_eq!(parsed, ours, "{opts:?} {mib} MiB");
            assert_eq!(ours.to_block().unwrap(), block0, "{opts:?} {mib} MiB");

            let dump = tu::run_ok("dumpe2fs", &["-h", img.to_str().unwrap()]);
            let field = |key: &str| {
                dump.lines()
                    .find(|l| l.starts_with(key))
                    .map(|l| l[key.len()..].trim().to_string())
                    .unwrap_or_else(|| panic!("{key} missing in {dump}"))
            };
            assert_eq!(
                field("Total journal blocks:"),
                (journal_blocks + fc).to_string()
            );
            assert_eq!(field("Journal sequence:"), "0x00000001");
            assert_eq!(field("Journal start:"), "0");
            assert_eq!(field("Journal features:"), "(none)");
        }
    }

    #[test]
    fn default_sizes_follow_mke2fs() {
        assert_eq!(default_journal_blocks(2047), None);
        assert_eq!(default_journal_blocks(2048), Some(1024));
        assert_eq!(default_journal_blocks(32_767), Some(1024));
        assert_eq!(default_journal_blocks(32_768), Some(4096));
        assert_eq!(default_journal_blocks(307_200), Some(8192));
        assert_eq!(default_journal_blocks(4096 * 1024), Some(32_768));
        assert_eq!(default_journal_blocks(u64::MAX), Some(262_144));
        assert_eq!(default_fc_blocks(4096), 64);
    }

    #[test]
    fn superblock_validation_and_checksum() {
        let mut sb = JournalSuperblock::new_internal(4096, 2048, [7; 16], 0);
        sb.feature_incompat = IncompatFeatures::CSUM_V3
            | IncompatFeatures::BIT64
            | IncompatFeatures::from_bits_retain(0x100);
        sb.checksum_type = CHECKSUM_TYPE_CRC32C;
        sb.start = 5;
        sb.sequence = 77;
        sb.errno = -5;
        let block = sb.to_block().unwrap();
        verify_superblock_checksum(&block).unwrap();
        let back = JournalSuperblock::parse(&block).unwrap();
        assert_eq!(back.unknown_incompat().bits(), 0x100);
        assert_eq!((back.errno, back.start, back.sequence), (-5, 5, 77));
        assert_eq!(back.checksum, superblock_checksum(&block).unwrap());
        assert_eq!(
            back.tag_format(),
            TagFormat {
                csum: TagCsum::V3,
                bit64: true
            }
        );

        let mut bad = block.clone();
        bad[0x200] ^= 1;
        assert!(matches!(
            verify_superblock_checksum(&bad),
            Err(FormatError::BadChecksum { .. })
        ));

        let check = |f: &dyn Fn(&mut JournalSuperblock)| {
            let mut s = sb.clone();
            f(&mut s);
            let mut b = vec![0u8; 4096];
            s.encode(&mut b).unwrap();
            JournalSuperblock::parse(&b)
        };
        assert!(check(&|_| {}).is_ok());
        assert!(check(&|s| s.blocksize = 3000).is_err());
        assert!(check(&|s| s.maxlen = 1000).is_err());
        assert!(check(&|s| s.first = 0).is_err());
        assert!(check(&|s| s.start = 2048).is_err());
        assert!(check(&|s| s.nr_users = 49).is_err());
        assert!(check(&|s| s.checksum_type = 1).is_err());
        assert!(check(&|s| s.feature_compat = CompatFeatures::CHECKSUM).is_err());
        assert!(check(&|s| {
            s.feature_incompat |= IncompatFeatures::FAST_COMMIT;
            s.num_fc_blks = 1500;
        })
        .is_err());
        let mut b = block.clone();
        b[0] = 0;
        assert!(matches!(
            JournalSuperblock::parse(&b),
            Err(FormatError::BadMagic { .. })
        ));
        let mut b = block.clone();
        b[7] = blocktype::COMMIT as u8;
        assert!(JournalSuperblock::parse(&b).is_err());

        // Fast commit shortens the log.
        let mut s = sb.clone();
        s.feature_incompat |= IncompatFeatures::FAST_COMMIT;
        assert_eq!((s.fc_blocks(), s.log_end()), (256, 2048 - 256));
        s.num_fc_blks = 64;
        assert_eq!(s.log_end(), 2048 - 64);

        // A version-1 superblock: only the v1 fields are read and written.
        let mut v1 = block.clone();
        v1[4..8].copy_from_slice(&blocktype::SUPERBLOCK_V1.to_be_bytes());
        let p = JournalSuperblock::parse(&v1).unwrap();
        assert_eq!(
            (p.feature_incompat.bits(), p.nr_users, p.uuid),
            (0, 0, [0; 16])
        );
        let mut copy = v1.clone();
        p.encode(&mut copy).unwrap();
        assert_eq!(copy, v1);
    }

    #[test]
    fn tag_formats_round_trip_in_every_layout() {
        let layouts = [
            (IncompatFeatures::empty(), 8),
            (IncompatFeatures::BIT64, 12),
            (IncompatFeatures::CSUM_V2, 10),
            (IncompatFeatures::CSUM_V2 | IncompatFeatures::BIT64, 14),
            (IncompatFeatures::CSUM_V3, 16),
            (IncompatFeatures::CSUM_V3 | IncompatFeatures::BIT64, 16),
        ];
        let seed = journal_csum_seed(&[9; 16]);
        for (features, len) in layouts {
            let format = TagFormat::from_features(features);
            assert_eq!(format.tag_len(), len);
            let high = if format.bit64 { 0x1_0000_0000 } else { 0 };
            let data = vec![0x42u8; 1024];
            let csum = tag_checksum(seed, 9, &data);
            let csum = if format.csum == TagCsum::V2 {
                csum & 0xFFFF
            } else if format.csum == TagCsum::None {
                0
            } else {
                csum
            };
            let n = tags_per_descriptor(1024, format);
            let tags: Vec<BlockTag> = (0..n)
                .map(|i| BlockTag {
                    blocknr: high + 100 + i as u64,
                    flags: if i == 0 { 0 } else { tag_flag::SAME_UUID }
                        | if i == n - 1 { tag_flag::LAST_TAG } else { 0 }
                        | if i == 3 { tag_flag::ESCAPE } else { 0 },
                    checksum: csum,
                    uuid: (i == 0).then_some([9; 16]),
                })
                .collect();
            let mut block = vec![0u8; 1024];
            encode_descriptor(9, &tags, format, seed, &mut block).unwrap();
            if format.has_tail() {
                verify_tail_checksum(seed, &block).unwrap();
            }
            let d = parse_descriptor(&block, format).unwrap();
            assert_eq!(d.tags, tags, "{features:?}");
            assert!(d
                .tags
                .iter()
                .all(|t| verify_tag_checksum(format, seed, 9, t, &data)));
            // One more tag does not fit.
            let mut more = tags.clone();
            more.push(BlockTag {
                flags: tag_flag::SAME_UUID,
                uuid: None,
                ..tags[1]
            });
            assert!(encode_descriptor(9, &more, format, seed, &mut block).is_err());

            let revoke = Revoke {
                sequence: 4,
                blocks: (0..revokes_per_block(1024, format))
                    .map(|i| high + i as u64)
                    .collect(),
            };
            encode_revoke(&revoke, format, seed, &mut block).unwrap();
            assert_eq!(parse_revoke(&block, format).unwrap(), revoke);
        }
    }

    #[test]
    fn corrupt_log_blocks_are_rejected_without_panics() {
        let format = TagFormat::from_features(IncompatFeatures::CSUM_V3);
        let mut block = vec![0u8; 1024];
        // Descriptor whose first tag lacks SAME_UUID but has no room for it.
        encode_header(
            BlockHeader {
                blocktype: blocktype::DESCRIPTOR,
                sequence: 1,
            },
            &mut block,
        )
        .unwrap();
        assert!(parse_descriptor(&block[..40], format).is_err());
        assert!(parse_descriptor(&block[..20], format).is_err(), "no tags");
        assert!(parse_commit(&block).is_err(), "wrong type");
        // Revoke counts out of range.
        encode_revoke(
            &Revoke {
                sequence: 1,
                blocks: vec![1, 2],
            },
            format,
            0,
            &mut block,
        )
        .unwrap();
        let mut b = block.clone();
        b[R_COUNT..R_COUNT + 4].copy_from_slice(&8u32.to_be_bytes());
        assert!(parse_revoke(&b, format).is_err());
        b[R_COUNT..R_COUNT + 4].copy_from_slice(&1022u32.to_be_bytes());
        assert!(parse_revoke(&b, format).is_err(), "into the tail");
        b[R_COUNT..R_COUNT + 4].copy_from_slice(&23u32.to_be_bytes());
        assert_eq!(
            parse_revoke(&b, format).unwrap().blocks,
            vec![1],
            "partial record ignored"
        );
        // Commit with a bad nanosecond field.
        let c = Commit {
            sequence: 3,
            chksum_type: 0,
            chksum_size: 0,
            chksum: [0; 8],
            commit_sec: 1,
            commit_nsec: 1_000_000_000,
        };
        encode_commit(&c, Some(5), &mut block).unwrap();
        assert!(parse_commit(&block).is_err());
        assert!(parse_header(&block[..8]).is_err());

        // Single-byte changes to real blocks never panic.
        for (name, ..) in KERNEL_JOURNALS {
            for (_, b) in journal_fixture(name).into_iter().take(6) {
                for pos in (0..80).chain(b.len() - 8..b.len()) {
                    for v in [0u8, 0x02, 0x7F, 0xFF] {
                        let mut m = b.clone();
                        m[pos] = v;
                        for f in [
                            IncompatFeatures::empty(),
                            IncompatFeatures::CSUM_V2,
                            IncompatFeatures::CSUM_V3 | IncompatFeatures::BIT64,
                        ] {
                            let format = TagFormat::from_features(f);
                            let _ = parse_descriptor(&m, format);
                            let _ = parse_revoke(&m, format);
                        }
                        let _ = parse_commit(&m);
                        let _ = JournalSuperblock::parse(&m);
                    }
                }
            }
        }
    }
}
