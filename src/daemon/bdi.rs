//! The kernel's settings for the mount's backing device (its "bdi",
//! `/sys/class/bdi/MAJOR:MINOR/`), which root may change and the daemon
//! raises once mounted. Without permission (not root) nothing changes, and
//! a larger value already set is kept.
//!
//! - `read_ahead_kb`: a FUSE mount gets the default 128 KiB of read-ahead
//!   whatever the daemon offers at FUSE_INIT (the kernel takes the smaller
//!   of the two), so a cold sequential read, or a page fault in a mapped
//!   file, would ask fext for 128 KiB at a time although it takes 1 MiB
//!   requests. Raised to `-o read_ahead_kb=`, by default to what the block
//!   device under the image reads ahead, and at least 1 MiB
//!   ([`default_read_ahead_kb`]): the kernel's ext4 on that device would
//!   read ahead as far. A larger read-ahead has the kernel send more 1 MiB
//!   READs at once, which fext serves in parallel.
//! - `max_ratio`: the share (percent) of the system's dirty page limit the
//!   mount's page cache may hold. The kernel gives a FUSE mount 1% and a
//!   strict limit, so a program writing through a shared mapping is
//!   throttled once about 1% is dirty, however fast fext takes the pages.
//!   Raised to `-o bdi_max_ratio=` (10 by default). The limit stays
//!   strict: write-back of the mount still starts at its own threshold,
//!   and if the daemon stops taking pages the mount still holds at most
//!   that share of dirty memory. See
//!   bench/results/NOTES-2026-11-23-session9.md for the measurements.

use std::path::Path;

use crate::fuse::MAX_WRITE;

/// The read-ahead (KiB) for a mount of `image` when `-o read_ahead_kb=`
/// does not say: what the block device holding the image (or the image, a
/// block device) reads ahead, but at least one of fext's largest requests.
/// On the bench's VM (a virtual disk reading 8 MiB ahead) that took a cold
/// sequential read of 1 GiB from 989-1,364 MiB/s at 1 MiB to 1,629-1,817,
/// and 20,000 random page faults of a mapped 256 MiB file from 0.28-0.31 s
/// to 0.22-0.24 s (bench/results/NOTES-2026-11-23-session10.md).
pub fn default_read_ahead_kb(image: &Path) -> u32 {
    device_read_ahead_kb(image)
        .unwrap_or(0)
        .max(MAX_WRITE / 1024)
}

/// `queue/read_ahead_kb` of the block device holding `image` (of `image`
/// itself if it is one): None where there is none (tmpfs, overlayfs) or
/// sysfs says nothing readable.
fn device_read_ahead_kb(image: &Path) -> Option<u32> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(image).ok()?;
    let dev = if meta.file_type().is_block_device() {
        meta.rdev()
    } else {
        meta.dev()
    };
    let dir = format!("/sys/dev/block/{}:{}", libc::major(dev), libc::minor(dev));
    // A partition has no queue of its own: its disk's is one level up.
    let queue = if Path::new(&dir).join("partition").exists() {
        "../queue"
    } else {
        "queue"
    };
    std::fs::read_to_string(format!("{dir}/{queue}/read_ahead_kb"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

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

/// Raises the settings of the mount on `mountpoint`: read-ahead to
/// `read_ahead_kb` KiB and the dirty share to `max_ratio` percent (0 for
/// either leaves it as the kernel set it).
pub fn raise(mountpoint: &Path, read_ahead_kb: u32, max_ratio: u32) {
    if read_ahead_kb == 0 && max_ratio == 0 {
        return;
    }
    let Some(device) = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|info| mounted_device(&info, mountpoint))
    else {
        log::debug!("bdi: {} not in the mount table", mountpoint.display());
        return;
    };
    raise_knob(&device, "read_ahead_kb", read_ahead_kb);
    raise_knob(&device, "max_ratio", max_ratio);
}

/// Sets `/sys/class/bdi/{device}/{name}` to `value` unless that is 0 or
/// the knob already holds as much.
fn raise_knob(device: &str, name: &str, value: u32) {
    if value == 0 {
        return;
    }
    let knob = format!("/sys/class/bdi/{device}/{name}");
    let current = std::fs::read_to_string(&knob)
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok());
    if current.is_some_and(|c| c >= value) {
        return;
    }
    match std::fs::write(&knob, value.to_string()) {
        Ok(()) => log::debug!("bdi {device}: {name} {current:?} -> {value}"),
        Err(e) => log::debug!("bdi {device}: {name} left at {current:?}: {e}"),
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
