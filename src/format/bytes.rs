//! Little-endian and big-endian field access on byte slices.
//!
//! Structure parsers first check the buffer length once with [`require_len`]
//! and then read fields at constant offsets below that length with the
//! `*_at` readers; those index the slice and would only panic on a
//! programming error (an offset constant past the checked length), never on
//! disk data. Where an offset itself comes from disk (directory entries, xattr
//! entries), use the `get_*` readers, which return `None` when out of range.
//!
//! ext2/3/4 structures are little-endian; jbd2 structures are big-endian.

use super::error::{FormatError, Result};

/// Fails with [`FormatError::TooShort`] unless `buf` holds at least `need` bytes.
pub fn require_len(buf: &[u8], need: usize, what: &'static str) -> Result<()> {
    if buf.len() < need {
        return Err(FormatError::TooShort {
            what,
            need,
            have: buf.len(),
        });
    }
    Ok(())
}

fn array<const N: usize>(buf: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[off..off + N]);
    out
}

fn get_array<const N: usize>(buf: &[u8], off: usize) -> Option<[u8; N]> {
    let end = off.checked_add(N)?;
    let mut out = [0u8; N];
    out.copy_from_slice(buf.get(off..end)?);
    Some(out)
}

pub fn u16_at(buf: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(array(buf, off))
}
pub fn u32_at(buf: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(array(buf, off))
}
pub fn u64_at(buf: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(array(buf, off))
}
pub fn be16_at(buf: &[u8], off: usize) -> u16 {
    u16::from_be_bytes(array(buf, off))
}
pub fn be32_at(buf: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(array(buf, off))
}
pub fn be64_at(buf: &[u8], off: usize) -> u64 {
    u64::from_be_bytes(array(buf, off))
}

pub fn get_u8(buf: &[u8], off: usize) -> Option<u8> {
    buf.get(off).copied()
}
pub fn get_u16(buf: &[u8], off: usize) -> Option<u16> {
    get_array(buf, off).map(u16::from_le_bytes)
}
pub fn get_u32(buf: &[u8], off: usize) -> Option<u32> {
    get_array(buf, off).map(u32::from_le_bytes)
}
pub fn get_u64(buf: &[u8], off: usize) -> Option<u64> {
    get_array(buf, off).map(u64::from_le_bytes)
}
pub fn get_be32(buf: &[u8], off: usize) -> Option<u32> {
    get_array(buf, off).map(u32::from_be_bytes)
}

pub fn put_u16(buf: &mut [u8], off: usize, v: u16) {
    buf[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u64(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
}
pub fn put_be16(buf: &mut [u8], off: usize, v: u16) {
    buf[off..off + 2].copy_from_slice(&v.to_be_bytes());
}
pub fn put_be32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_be_bytes());
}
pub fn put_be64(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_be_bytes());
}

/// Joins a split `lo`/`hi` pair of 32-bit halves.
pub fn join_u64(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | (u64::from(hi) << 32)
}

/// Low 32 bits of a 64-bit value.
pub fn lo32(v: u64) -> u32 {
    (v & 0xffff_ffff) as u32
}

/// High 32 bits of a 64-bit value.
pub fn hi32(v: u64) -> u32 {
    (v >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_round_trip() {
        let mut b = [0u8; 16];
        put_u16(&mut b, 0, 0xbeef);
        put_u32(&mut b, 2, 0xdead_beef);
        put_be32(&mut b, 6, 0xc03b_3998);
        assert_eq!(u16_at(&b, 0), 0xbeef);
        assert_eq!(u32_at(&b, 2), 0xdead_beef);
        assert_eq!(be32_at(&b, 6), 0xc03b_3998);
        assert_eq!(&b[6..10], &[0xc0, 0x3b, 0x39, 0x98]);
        assert_eq!(get_u32(&b, 14), None);
        assert_eq!(get_u16(&b, usize::MAX), None);
        assert!(require_len(&b, 17, "x").is_err());
    }

    #[test]
    fn splits_and_joins_64_bit_values() {
        let v = 0x1234_5678_9abc_def0;
        assert_eq!(join_u64(lo32(v), hi32(v)), v);
    }
}
