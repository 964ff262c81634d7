//! The orphan file (feature orphan_file, inode `s_orphan_file_inum`): each
//! block is a table of little-endian u32 inode numbers (0 = free slot)
//! followed by an 8-byte tail:
//! ```text
//! 0 .. bs-8    ob_inodes[(bs - 8) / 4]
//! bs-8         ob_magic   0x0B10CA04
//! bs-4         ob_checksum
//! ```
//! With metadata_csum, ob_checksum = crc32c(inode_seed, le64 physical block
//! number ++ the inode table) where inode_seed is the orphan file inode's
//! checksum seed (see [`crate::format::csum::inode_seed`]).

use super::bytes::{put_u32, require_len, u32_at};
use super::csum::crc32c;
use super::error::{FormatError, Result};

/// `ob_magic`
pub const ORPHAN_BLOCK_MAGIC: u32 = 0x0B10_CA04;
/// Bytes of the tail.
pub const TAIL_LEN: usize = 8;

/// Inode slots in one orphan block.
pub fn inodes_per_block(block_size: usize) -> usize {
    block_size.saturating_sub(TAIL_LEN) / 4
}

/// The checksum an orphan block should carry.
pub fn orphan_block_csum(inode_seed: u32, phys_block: u64, block: &[u8]) -> u32 {
    let n = inodes_per_block(block.len()) * 4;
    crc32c(crc32c(inode_seed, &phys_block.to_le_bytes()), &block[..n])
}

/// Makes an empty orphan block: no inodes, the magic, and the checksum when
/// `inode_seed` is given (metadata_csum).
pub fn init_block(block: &mut [u8], inode_seed: Option<u32>, phys_block: u64) -> Result<()> {
    require_len(block, 1024, "orphan block")?;
    block.fill(0);
    let bs = block.len();
    put_u32(block, bs - TAIL_LEN, ORPHAN_BLOCK_MAGIC);
    if let Some(seed) = inode_seed {
        let c = orphan_block_csum(seed, phys_block, block);
        put_u32(block, bs - 4, c);
    }
    Ok(())
}

/// Parses an orphan block: the non-zero inode numbers it lists. Checks the
/// magic, and the checksum when `inode_seed` is given.
pub fn parse_block(block: &[u8], inode_seed: Option<u32>, phys_block: u64) -> Result<Vec<u32>> {
    require_len(block, 1024, "orphan block")?;
    let bs = block.len();
    let magic = u32_at(block, bs - TAIL_LEN);
    if magic != ORPHAN_BLOCK_MAGIC {
        return Err(FormatError::BadMagic {
            what: "orphan block",
            found: u64::from(magic),
        });
    }
    if let Some(seed) = inode_seed {
        let stored = u32_at(block, bs - 4);
        let computed = orphan_block_csum(seed, phys_block, block);
        if stored != computed {
            return Err(FormatError::BadChecksum {
                what: "orphan block",
                stored,
                computed,
            });
        }
    }
    Ok((0..inodes_per_block(bs))
        .map(|i| u32_at(block, 4 * i))
        .filter(|&ino| ino != 0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_block_round_trips_and_detects_damage() {
        let mut b = vec![0u8; 4096];
        init_block(&mut b, Some(0x1234), 777).unwrap();
        assert_eq!(
            parse_block(&b, Some(0x1234), 777).unwrap(),
            Vec::<u32>::new()
        );
        assert!(parse_block(&b, Some(0x1234), 778).is_err());
        put_u32(&mut b, 0, 12);
        assert!(parse_block(&b, Some(0x1234), 777).is_err());
        assert_eq!(parse_block(&b, None, 777).unwrap(), vec![12]);
    }
}
