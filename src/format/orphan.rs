//! The orphan file (compat feature ORPHAN_FILE, inode `s_orphan_file_inum`):
//! a regular file whose blocks list inodes that are unlinked but still open,
//! or being truncated, so that they can be cleaned up after a crash.
//! RO_COMPAT ORPHAN_PRESENT says entries may be present.
//!
//! # Block layout (every block of the file)
//!
//! ```text
//! 0x00           le32 entries[(block_size - 8) / 4]  inode numbers, 0 = free slot
//! block_size - 8 le32 ob_magic     0x0B10CA04
//! block_size - 4 le32 ob_checksum  metadata_csum only, else 0
//! ```
//!
//! `ob_checksum` (`ext4_orphan_file_block_csum_verify`) = crc32c seeded with
//! the orphan file inode's checksum seed (crc32c(fs seed, le32 inode
//! number, le32 i_generation), see [`csum_seed`]), over the le64 *physical*
//! block number and then the entry array (the tail is not covered).
//!
//! The kernel refuses orphan files above 8 MiB ([`MAX_ORPHAN_FILE_SIZE`])
//! and checks every block's magic (and checksum) at mount.

use super::bytes::{get_u32, put_u32, require_len, u32_at};
use super::csum::crc32c;
use super::error::{FormatError, Result};
use super::ids::InodeNo;

/// `ob_magic`.
pub const ORPHAN_BLOCK_MAGIC: u32 = 0x0B10_CA04;
/// Size of `struct ext4_orphan_block_tail`.
pub const TAIL_LEN: usize = 8;
/// The largest orphan file the kernel accepts.
pub const MAX_ORPHAN_FILE_SIZE: u64 = 8 << 20;

const WHAT: &str = "orphan file block";

/// Inode slots in one block (`ext4_inodes_per_orphan_block`).
pub fn entries_per_block(block_size: usize) -> usize {
    block_size.saturating_sub(TAIL_LEN) / 4
}

/// The orphan file inode's checksum seed (`i_csum_seed`, which the kernel
/// keeps as `of_csum_seed`): crc32c(fs seed, le32 ino, le32 generation).
pub fn csum_seed(fs_seed: u32, ino: InodeNo, generation: u32) -> u32 {
    crc32c(
        crc32c(fs_seed, &ino.0.to_le_bytes()),
        &generation.to_le_bytes(),
    )
}

fn check_block(block: &[u8]) -> Result<usize> {
    require_len(block, 1024, WHAT)?;
    if !block.len().is_power_of_two() {
        return Err(FormatError::corrupt(
            WHAT,
            format!("{} bytes is not a block size", block.len()),
        ));
    }
    let tail = block.len() - TAIL_LEN;
    let magic = u32_at(block, tail);
    if magic != ORPHAN_BLOCK_MAGIC {
        return Err(FormatError::BadMagic {
            what: WHAT,
            found: u64::from(magic),
        });
    }
    Ok(tail)
}

/// The inode numbers listed in a block, in slot order (free slots left
/// out). Checks the magic, not the checksum; the caller checks each number
/// against the inode count.
pub fn parse_block(block: &[u8]) -> Result<Vec<InodeNo>> {
    Ok(slots(block)?.into_iter().map(|(_, ino)| ino).collect())
}

/// The used slots of a block: (slot index, inode number).
pub fn slots(block: &[u8]) -> Result<Vec<(usize, InodeNo)>> {
    let tail = check_block(block)?;
    Ok(block[..tail]
        .chunks_exact(4)
        .enumerate()
        .filter_map(|(i, c)| {
            let ino = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            (ino != 0).then_some((i, InodeNo(ino)))
        })
        .collect())
}

/// The first free slot of a block, if any.
pub fn find_free_slot(block: &[u8]) -> Result<Option<usize>> {
    let tail = check_block(block)?;
    Ok(block[..tail].chunks_exact(4).position(|c| c == [0; 4]))
}

/// The slot holding `ino`, if any.
pub fn find_slot(block: &[u8], ino: InodeNo) -> Result<Option<usize>> {
    let tail = check_block(block)?;
    let want = ino.0.to_le_bytes();
    Ok(block[..tail].chunks_exact(4).position(|c| c == want))
}

/// Stores `ino` (`InodeNo(0)` to free it) in a slot. The checksum must be
/// set again afterwards.
pub fn set_slot(block: &mut [u8], slot: usize, ino: InodeNo) -> Result<()> {
    let tail = check_block(block)?;
    let at = slot
        .checked_mul(4)
        .filter(|&at| at + 4 <= tail)
        .ok_or_else(|| FormatError::corrupt(WHAT, format!("slot {slot} out of range")))?;
    put_u32(block, at, ino.0);
    Ok(())
}

/// Fills `block` as mke2fs does for every block of a new orphan file: no
/// entries, the magic, a zero checksum (call [`set_block_checksum`] on
/// metadata_csum file systems).
pub fn encode_empty_block(block: &mut [u8]) -> Result<()> {
    require_len(block, 1024, WHAT)?;
    block.fill(0);
    let tail = block.len() - TAIL_LEN;
    put_u32(block, tail, ORPHAN_BLOCK_MAGIC);
    check_block(block).map(|_| ())
}

/// `ob_checksum` for a block stored at physical block `phys_block`, with
/// `seed` from [`csum_seed`].
pub fn block_checksum(seed: u32, phys_block: u64, block: &[u8]) -> Result<u32> {
    let tail = check_block(block)?;
    Ok(crc32c(
        crc32c(seed, &phys_block.to_le_bytes()),
        &block[..tail],
    ))
}

/// Checks `ob_checksum` (metadata_csum file systems only).
pub fn verify_block_checksum(seed: u32, phys_block: u64, block: &[u8]) -> Result<()> {
    let computed = block_checksum(seed, phys_block, block)?;
    let stored = get_u32(block, block.len() - 4).unwrap_or(0);
    if stored != computed {
        return Err(FormatError::BadChecksum {
            what: WHAT,
            stored,
            computed,
        });
    }
    Ok(())
}

/// Stores `ob_checksum` (metadata_csum file systems only).
pub fn set_block_checksum(seed: u32, phys_block: u64, block: &mut [u8]) -> Result<()> {
    let csum = block_checksum(seed, phys_block, block)?;
    let at = block.len() - 4;
    put_u32(block, at, csum);
    Ok(())
}

/// mke2fs's orphan file size in blocks (`ext2fs_default_orphan_file_blocks`
/// of e2fsprogs 1.47.0: 32 below 128 Ki blocks, 1/4096 of the file system
/// below 2 Mi blocks, else 512, rounded up to whole clusters of
/// `cluster_ratio` blocks), capped at the kernel's 8 MiB limit (which
/// 1.47.0 does not apply, so it matters only for 64 KiB blocks).
pub fn default_orphan_file_blocks(fs_blocks: u64, block_size: u32, cluster_ratio: u32) -> u32 {
    let blocks: u64 = if fs_blocks < 128 * 1024 {
        32
    } else if fs_blocks < 2 * 1024 * 1024 {
        fs_blocks / 4096
    } else {
        512
    };
    let ratio = u64::from(cluster_ratio.max(1));
    let rounded = blocks.div_ceil(ratio) * ratio;
    let cap = MAX_ORPHAN_FILE_SIZE / u64::from(block_size.max(1024));
    u32::try_from(rounded.min(cap)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::bytes::u32_at;
    use crate::format::testutil::{self as tu, fixture};

    /// (logical, physical, bytes) of the committed orphan file blocks.
    fn orphan_blocks(img: &str) -> Vec<(u64, u64, Vec<u8>)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(tu::fixture_path(&format!("orphan/{img}"))).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            if let Some(rest) = name.strip_prefix("blk") {
                let (l, p) = rest.split_once('_').unwrap();
                out.push((
                    l.parse().unwrap(),
                    p.parse().unwrap(),
                    std::fs::read(&path).unwrap(),
                ));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn kernel_written_orphan_blocks_verify_with_the_inode_seed_and_physical_block() {
        for img in ["k1k", "k4k"] {
            let sb = fixture(&format!("orphan/{img}/sb.bin"));
            let inode = fixture(&format!("orphan/{img}/ino12.bin"));
            let generation = u32_at(&inode, 0x64); // i_generation
            assert_eq!(generation, 0x5eed_1234, "set by the fixture script");
            let seed = csum_seed(tu::sb_csum_seed(&sb), InodeNo(12), generation);
            let wrong_gen = csum_seed(tu::sb_csum_seed(&sb), InodeNo(12), 0);
            let blocks = orphan_blocks(img);
            assert!(blocks.len() >= 3);
            let mut listed = Vec::new();
            for (logical, phys, block) in &blocks {
                assert_eq!(block.len(), tu::sb_block_size(&sb));
                verify_block_checksum(seed, *phys, block).unwrap();
                assert!(verify_block_checksum(wrong_gen, *phys, block).is_err());
                assert!(verify_block_checksum(seed, *logical, block).is_err());
                listed.extend(parse_block(block).unwrap());
            }
            // The three open, unlinked files.
            listed.sort();
            listed.dedup();
            assert_eq!(listed.len(), 3, "{img}: {listed:?}");
            assert!(listed.iter().all(|i| i.0 > 12));
        }
    }

    #[test]
    fn new_orphan_files_match_mke2fs_byte_for_byte() {
        let configs: [(&[&str], u64, bool); 4] = [
            (&["-b", "1024", "-O", "orphan_file"], 32, true),
            (&["-b", "4096", "-O", "orphan_file"], 1024, true),
            (&["-b", "1024", "-O", "orphan_file"], 256, true),
            (
                &["-b", "1024", "-O", "orphan_file,^metadata_csum"],
                16,
                false,
            ),
        ];
        let dir = tu::TempDir::new("orphan-fresh");
        for (opts, mib, csum) in configs {
            let img = dir.join("img");
            tu::mkfs(&img, mib, opts);
            let sb = tu::read_at(&img, 1024, 1024);
            let bs = tu::sb_block_size(&sb);
            let bs64 = u64::try_from(bs).unwrap();
            let dump = tu::run_ok("dumpe2fs", &["-h", img.to_str().unwrap()]);
            let ino: u32 = dump
                .lines()
                .find_map(|l| l.strip_prefix("Orphan file inode:"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let stat = tu::debugfs(&img, false, &format!("stat <{ino}>\n"));
            let size: u64 = stat
                .split("Size: ")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let nblocks = size / bs64;
            let want =
                default_orphan_file_blocks((mib << 20) / bs64, u32::try_from(bs).unwrap(), 1);
            assert_eq!(nblocks, u64::from(want), "{opts:?} {mib} MiB");
            let inode = tu::read_at(&img, tu::inode_offset(&img, ino, bs64), 256);
            let seed = csum_seed(tu::sb_csum_seed(&sb), InodeNo(ino), u32_at(&inode, 0x64));
            let requests: String = (0..nblocks)
                .map(|l| format!("bmap <{ino}> {l}\n"))
                .collect();
            let physical: Vec<u64> = tu::debugfs(&img, false, &requests)
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            assert_eq!(physical.len() as u64, nblocks);
            for p in physical {
                let on_disk = tu::read_at(&img, p * bs64, bs);
                let mut ours = vec![0xFFu8; bs];
                encode_empty_block(&mut ours).unwrap();
                if csum {
                    set_block_checksum(seed, p, &mut ours).unwrap();
                }
                assert_eq!(ours, on_disk, "{opts:?} block {p}");
                assert!(parse_block(&on_disk).unwrap().is_empty());
            }
        }
    }

    #[test]
    fn slots_fill_and_free() {
        let mut block = vec![0u8; 1024];
        encode_empty_block(&mut block).unwrap();
        assert_eq!(entries_per_block(1024), 254);
        assert_eq!(find_free_slot(&block).unwrap(), Some(0));
        for slot in 0..254 {
            set_slot(&mut block, slot, InodeNo(100 + slot as u32)).unwrap();
        }
        assert_eq!(find_free_slot(&block).unwrap(), None);
        assert!(
            set_slot(&mut block, 254, InodeNo(1)).is_err(),
            "the tail is not a slot"
        );
        assert_eq!(find_slot(&block, InodeNo(107)).unwrap(), Some(7));
        set_slot(&mut block, 7, InodeNo(0)).unwrap();
        assert_eq!(find_free_slot(&block).unwrap(), Some(7));
        assert_eq!(parse_block(&block).unwrap().len(), 253);
        assert_eq!(slots(&block).unwrap()[7], (8, InodeNo(108)));
        set_block_checksum(0xabc, 99, &mut block).unwrap();
        verify_block_checksum(0xabc, 99, &block).unwrap();
        set_slot(&mut block, 7, InodeNo(5)).unwrap();
        assert!(matches!(
            verify_block_checksum(0xabc, 99, &block),
            Err(FormatError::BadChecksum { .. })
        ));
        // Bad magic, odd sizes.
        let mut bad = block.clone();
        bad[1016] ^= 1;
        assert!(matches!(
            parse_block(&bad),
            Err(FormatError::BadMagic { .. })
        ));
        assert!(parse_block(&block[..1000]).is_err());
        assert!(parse_block(&[0u8; 100]).is_err());
        assert!(encode_empty_block(&mut [0u8; 1500]).is_err());
    }

    #[test]
    fn default_sizes_follow_mke2fs_and_the_kernel_limit() {
        assert_eq!(default_orphan_file_blocks(32_768, 1024, 1), 32);
        assert_eq!(default_orphan_file_blocks(262_144, 1024, 1), 64);
        assert_eq!(default_orphan_file_blocks(1_000_000, 4096, 1), 244);
        assert_eq!(default_orphan_file_blocks(10_000_000, 4096, 1), 512);
        assert_eq!(default_orphan_file_blocks(10_000_000, 4096, 16), 512);
        assert_eq!(default_orphan_file_blocks(300_000, 4096, 16), 80);
        assert_eq!(default_orphan_file_blocks(10_000_000, 65536, 1), 128);
    }
}
