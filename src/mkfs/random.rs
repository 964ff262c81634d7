//! Random bytes for UUIDs and hash seeds, from the kernel's getrandom(2).

/// 16 random bytes shaped as a version-4 UUID.
pub fn random_uuid() -> Result<[u8; 16], String> {
    let mut b = [0u8; 16];
    let mut filled = 0;
    while filled < b.len() {
        // SAFETY: getrandom writes at most `len` bytes into the buffer slice
        // starting at `filled`, which is in bounds.
        let n = unsafe {
            libc::getrandom(
                b[filled..].as_mut_ptr().cast::<libc::c_void>(),
                b.len() - filled,
                0,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("getrandom failed: {e}"));
        }
        filled += n as usize;
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(b)
}

/// The usual 8-4-4-4-12 text form.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let h: Vec<String> = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}
