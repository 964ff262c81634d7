//! The jbd2 journal superblock (big-endian, in the journal's first block).
//!
//! Layout (`journal_superblock_t`):
//! ```text
//! 0x00 h_magic 0xC03B3998  0x04 h_blocktype (3 = v1, 4 = v2)  0x08 h_sequence
//! 0x0C s_blocksize  0x10 s_maxlen  0x14 s_first
//! 0x18 s_sequence   0x1C s_start (0: nothing to replay)   0x20 s_errno
//! 0x24 s_feature_compat  0x28 s_feature_incompat  0x2C s_feature_ro_compat
//! 0x30 s_uuid[16]   0x40 s_nr_users  0x44 s_dynsuper
//! 0x48 s_max_transaction  0x4C s_max_trans_data  0x50 s_checksum_type (u8)
//! 0x54 s_num_fc_blks  0xFC s_checksum  0x100 s_users[16 * 48]
//! ```

use super::bytes::{be32_at, put_be32, require_len};
use super::error::{FormatError, Result};

/// `h_magic`
pub const JBD2_MAGIC: u32 = 0xC03B_3998;
/// `h_blocktype` of a version-2 superblock.
pub const SUPERBLOCK_V2: u32 = 4;
/// `h_blocktype` of a version-1 superblock.
pub const SUPERBLOCK_V1: u32 = 3;
/// Bytes of the structure.
pub const JOURNAL_SB_LEN: usize = 1024;

/// The fields of a journal superblock that fext reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSuperblock {
    pub blocktype: u32,
    pub block_size: u32,
    pub max_len: u32,
    pub first: u32,
    pub sequence: u32,
    pub start: u32,
    pub errno: u32,
    pub feature_compat: u32,
    pub feature_incompat: u32,
    pub feature_ro_compat: u32,
    pub uuid: [u8; 16],
    pub nr_users: u32,
}

impl JournalSuperblock {
    /// An empty internal journal of `max_len` blocks, as mke2fs makes it.
    pub fn new_internal(block_size: u32, max_len: u32, fs_uuid: [u8; 16]) -> Self {
        JournalSuperblock {
            blocktype: SUPERBLOCK_V2,
            block_size,
            max_len,
            first: 1,
            sequence: 1,
            start: 0,
            errno: 0,
            feature_compat: 0,
            feature_incompat: 0,
            feature_ro_compat: 0,
            uuid: fs_uuid,
            nr_users: 1,
        }
    }

    /// Parses and validates the first 1024 bytes of a journal.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        require_len(buf, JOURNAL_SB_LEN, "journal superblock")?;
        let magic = be32_at(buf, 0);
        if magic != JBD2_MAGIC {
            return Err(FormatError::BadMagic {
                what: "journal superblock",
                found: u64::from(magic),
            });
        }
        let blocktype = be32_at(buf, 0x04);
        if blocktype != SUPERBLOCK_V1 && blocktype != SUPERBLOCK_V2 {
            return Err(FormatError::corrupt(
                "journal superblock",
                format!("block type {blocktype}"),
            ));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&buf[0x30..0x40]);
        let sb = JournalSuperblock {
            blocktype,
            block_size: be32_at(buf, 0x0C),
            max_len: be32_at(buf, 0x10),
            first: be32_at(buf, 0x14),
            sequence: be32_at(buf, 0x18),
            start: be32_at(buf, 0x1C),
            errno: be32_at(buf, 0x20),
            feature_compat: be32_at(buf, 0x24),
            feature_incompat: be32_at(buf, 0x28),
            feature_ro_compat: be32_at(buf, 0x2C),
            uuid,
            nr_users: be32_at(buf, 0x40),
        };
        if sb.first == 0 || sb.first >= sb.max_len {
            return Err(FormatError::corrupt(
                "journal superblock",
                format!("s_first {} outside 1..{}", sb.first, sb.max_len),
            ));
        }
        Ok(sb)
    }

    /// Encodes into `buf` (at least 1024 bytes; other bytes preserved).
    pub fn encode(&self, buf: &mut [u8]) -> Result<()> {
        require_len(buf, JOURNAL_SB_LEN, "journal superblock")?;
        put_be32(buf, 0x00, JBD2_MAGIC);
        put_be32(buf, 0x04, self.blocktype);
        put_be32(buf, 0x08, 0);
        put_be32(buf, 0x0C, self.block_size);
        put_be32(buf, 0x10, self.max_len);
        put_be32(buf, 0x14, self.first);
        put_be32(buf, 0x18, self.sequence);
        put_be32(buf, 0x1C, self.start);
        put_be32(buf, 0x20, self.errno);
        put_be32(buf, 0x24, self.feature_compat);
        put_be32(buf, 0x28, self.feature_incompat);
        put_be32(buf, 0x2C, self.feature_ro_compat);
        buf[0x30..0x40].copy_from_slice(&self.uuid);
        put_be32(buf, 0x40, self.nr_users);
        Ok(())
    }

    /// Whether the log holds transactions to replay.
    pub fn needs_recovery(&self) -> bool {
        self.start != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_superblock_matches_mke2fs_bytes() {
        // First 0x44 bytes of the journal of `mkfs.ext4 8M` (1.47.0), whose
        // file system UUID was b355fc49-3b6e-4ed6-904e-fd47ec4aeaa9.
        let uuid = [
            0xb3, 0x55, 0xfc, 0x49, 0x3b, 0x6e, 0x4e, 0xd6, 0x90, 0x4e, 0xfd, 0x47, 0xec, 0x4a,
            0xea, 0xa9,
        ];
        let expected: [u8; 0x44] = [
            0xc0, 0x3b, 0x39, 0x98, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 4, 0, //
            0, 0, 4, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, //
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
            0xb3, 0x55, 0xfc, 0x49, 0x3b, 0x6e, 0x4e, 0xd6, 0x90, 0x4e, 0xfd, 0x47, 0xec, 0x4a,
            0xea, 0xa9, //
            0, 0, 0, 1,
        ];
        let mut buf = vec![0u8; 1024];
        JournalSuperblock::new_internal(1024, 1024, uuid)
            .encode(&mut buf)
            .unwrap();
        assert_eq!(&buf[..0x44], &expected[..]);
        assert!(buf[0x44..].iter().all(|&b| b == 0));
        let back = JournalSuperblock::parse(&buf).unwrap();
        assert!(!back.needs_recovery());
        assert_eq!(back.max_len, 1024);
    }
}
