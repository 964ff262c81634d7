//! The two checksums ext4 uses.
//!
//! - crc32c (Castagnoli) for metadata_csum. ext4 calls the kernel's
//!   `crc32c_le(seed, data)`, which applies neither the customary initial nor
//!   the final inversion: [`crc32c`] has exactly that meaning. The
//!   per-filesystem seed is `crc32c(!0, uuid)` or, with metadata_csum_seed,
//!   `s_checksum_seed` (see [`fs_csum_seed`]).
//! - crc16 (the "ANSI"/IBM polynomial 0x8005, bit-reflected as 0xA001, no
//!   inversions) for group descriptors on gdt_csum (uninit_bg) file systems.
//!
//! The `crc32c` crate computes the conventional CRC (inverted in and out) with
//! SSE4.2 where the CPU has it; the raw form is derived from it by inverting
//! around the call.

use super::ids::InodeNo;

/// ext4's raw crc32c: continue `seed` over `data`, no inversions.
pub fn crc32c(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

/// The per-filesystem metadata checksum seed derived from the UUID.
pub fn fs_csum_seed(uuid: &[u8; 16]) -> u32 {
    crc32c(!0, uuid)
}

/// The per-inode checksum seed: `crc32c(crc32c(fs_seed, ino_le32), generation_le32)`.
///
/// It seeds the checksums of the inode itself, of its directory blocks (leaf
/// tail and htree tail) and of its extent tree blocks.
pub fn inode_seed(fs_seed: u32, ino: InodeNo, generation: u32) -> u32 {
    crc32c(
        crc32c(fs_seed, &ino.0.to_le_bytes()),
        &generation.to_le_bytes(),
    )
}

const fn crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xa001
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC16_TABLE: [u16; 256] = crc16_table();

/// The kernel's `crc16(crc, data)`: reflected polynomial 0xA001, no inversions.
pub fn crc16(seed: u16, data: &[u8]) -> u16 {
    data.iter().fold(seed, |crc, &b| {
        (crc >> 8) ^ CRC16_TABLE[usize::from((crc ^ u16::from(b)) as u8)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value_once_inverted() {
        // The standard CRC-32C check value of "123456789" is 0xE3069283; it is
        // the raw CRC seeded with !0 and inverted at the end.
        assert_eq!(!crc32c(!0, b"123456789"), 0xe306_9283);
    }

    #[test]
    fn crc32c_continues_across_pieces() {
        let whole = crc32c(0x1234, b"hello world");
        let split = crc32c(crc32c(0x1234, b"hello "), b"world");
        assert_eq!(whole, split);
    }

    #[test]
    fn crc16_matches_the_arc_check_value() {
        // CRC-16/ARC ("123456789") = 0xBB3D: reflected 0x8005, init 0, no xorout.
        assert_eq!(crc16(0, b"123456789"), 0xbb3d);
    }
}
