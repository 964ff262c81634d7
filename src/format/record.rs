//! Fixed-layout records: a declarative way to describe an on-disk structure
//! as a list of `field: type @ offset` lines, from which the parser and the
//! encoder are generated. The offsets sit next to the field names, as in the
//! kernel's headers, so the layout can be checked against the documentation
//! by eye.
//!
//! Field types are little-endian integers (`u8`, `u16`, `u32`, `u64`) and byte
//! arrays (`[u8; N]`). The generated `read_fields` needs a buffer at least as
//! long as the record (callers check with `require_len`); `write_fields`
//! touches only the bytes of the described fields, so reserved and unknown
//! bytes of the buffer survive a read-modify-write.

/// A value stored at a fixed offset of a little-endian record.
pub trait LeField: Sized {
    /// Bytes the field occupies.
    const LEN: usize;
    fn read_le(buf: &[u8], off: usize) -> Self;
    fn write_le(&self, buf: &mut [u8], off: usize);
}

macro_rules! le_int {
    ($t:ty) => {
        impl LeField for $t {
            const LEN: usize = std::mem::size_of::<$t>();
            fn read_le(buf: &[u8], off: usize) -> Self {
                let mut raw = [0u8; std::mem::size_of::<$t>()];
                raw.copy_from_slice(&buf[off..off + Self::LEN]);
                <$t>::from_le_bytes(raw)
            }
            fn write_le(&self, buf: &mut [u8], off: usize) {
                buf[off..off + Self::LEN].copy_from_slice(&self.to_le_bytes());
            }
        }
    };
}

le_int!(u8);
le_int!(u16);
le_int!(u32);
le_int!(u64);

impl<const N: usize> LeField for [u8; N] {
    const LEN: usize = N;
    fn read_le(buf: &[u8], off: usize) -> Self {
        let mut raw = [0u8; N];
        raw.copy_from_slice(&buf[off..off + N]);
        raw
    }
    fn write_le(&self, buf: &mut [u8], off: usize) {
        buf[off..off + N].copy_from_slice(self);
    }
}

impl<const N: usize> LeField for [u32; N] {
    const LEN: usize = 4 * N;
    fn read_le(buf: &[u8], off: usize) -> Self {
        let mut out = [0u32; N];
        for (i, v) in out.iter_mut().enumerate() {
            *v = u32::read_le(buf, off + 4 * i);
        }
        out
    }
    fn write_le(&self, buf: &mut [u8], off: usize) {
        for (i, v) in self.iter().enumerate() {
            v.write_le(buf, off + 4 * i);
        }
    }
}

/// Declares a struct of raw on-disk fields with their offsets and generates
/// `read_fields(&[u8]) -> Self`, `write_fields(&self, &mut [u8])` and the
/// constant `END` (one past the last described byte).
macro_rules! le_record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $off:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $name {
            /// One past the last byte any field occupies.
            pub const END: usize = {
                let mut end = 0;
                $( {
                    let e = $off + <$ty as $crate::format::record::LeField>::LEN;
                    if e > end { end = e; }
                } )*
                end
            };

            /// Reads every field; `buf` must hold at least `END` bytes.
            pub fn read_fields(buf: &[u8]) -> Self {
                use $crate::format::record::LeField;
                Self { $( $field: <$ty>::read_le(buf, $off), )* }
            }

            /// Writes every field into `buf` (at least `END` bytes), leaving
            /// other bytes as they are.
            pub fn write_fields(&self, buf: &mut [u8]) {
                use $crate::format::record::LeField;
                $( self.$field.write_le(buf, $off); )*
            }
        }
    };
}

pub(crate) use le_record;
