//! The kernel's read-ahead for the mount. A FUSE mount gets the default
//! 128 KiB of read-ahead whatever the daemon offers at FUSE_INIT (the
//! kernel takes the smaller of the two), so a cold sequential read, or a
//! page fault in a mapped file, asks fext for 128 KiB at a time although
//! it takes 1 MiB requests. The read-ahead is a setting of the mount's
//! backing device info, `/sys/class/bdi/MAJOR:MINOR/read_ahead_kb`, that
//! root may change: the daemon raises it to `-o read_ahead_kb=` (1024 by
//! default). A larger value already set is kept, and without permission
//! (not root) nothing changes.

use std::path::Path;

/// The `major:minor` of the file system mounted on `mountpoint` (the last
/// such mount), from /proc/self/mountinfo. Read there rather than with
/// stat(2), which the daemon cannot answer before it serves.
fn mounted_device(mountinfo: &str, mountpoint: &Path) -> Option<String> {
    let want = escape_mount_path(mountpoint.to_str()?);
    mountinfo.lines().rev().find_map(|line| {
        let mut fields = line.split(' ');
        let device = fields.nth(2)?;
        let _root = fields.next()?;
        (fields.next()? == want).then(|| device.to_string())
    })
}

/// A path as the mount table writes it: space, tab, newline and backslash
/// as octal escapes.
fn escape_mount_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Raises the read-ahead of the mount on `mountpoint` to `kib` KiB.
pub fn raise(mountpoint: &Path, kib: u32) {
    if kib == 0 {
        return;
    }
    let Some(device) = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|info| mounted_device(&info, mountpoint))
    else {
        log::debug!(
            "read-ahead: {} not in the mount table",
            mountpoint.display()
        );
        return;
    };
    let knob = format!("/sys/class/bdi/{device}/read_ahead_kb");
    let current = std::fs::read_to_string(&knob)
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok());
    if current.is_some_and(|c| c >= kib) {
        return;
    }
    match std::fs::write(&knob, kib.to_string()) {
        Ok(()) => log::debug!("read-ahead of {device}: {current:?} -> {kib} KiB"),
        Err(e) => log::debug!("read-ahead of {device} left at {current:?} KiB: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_of_the_last_mount_on_a_path_is_found() {
        let info = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:52 / /tmp/a\\040b rw,nosuid,nodev - fuse.fext /img rw,user_id=0
41 22 0:53 / /tmp/c rw - fuse.fext /img2 rw
42 41 0:54 / /tmp/c rw - fuse.fext /img3 rw
";
        assert_eq!(
            mounted_device(info, Path::new("/tmp/a b")).as_deref(),
            Some("0:52")
        );
        assert_eq!(
            mounted_device(info, Path::new("/tmp/c")).as_deref(),
            Some("0:54")
        );
        assert_eq!(mounted_device(info, Path::new("/tmp/d")), None);
        assert_eq!(mounted_device("garbage\n\n", Path::new("/")), None);
    }
}
