//! Helpers shared by the mkfs.fext integration tests: running the binary
//! built by this package, and measuring what an image costs on disk.

#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use crate::common::{Cmd, Output};

/// The `mkfs-fext` binary of this package (installed as `mkfs.fext`).
pub const MKFS: &str = env!("CARGO_BIN_EXE_mkfs-fext");

/// Time limit of one mkfs run (a 1 KiB-block ext2/ext3 image of 1 TiB
/// writes some 600 MB of bitmaps).
pub const MKFS_TIMEOUT: Duration = Duration::from_secs(300);

/// Run `mkfs-fext ARGS` (stdin from /dev/null, so never a terminal).
pub fn mkfs(args: &[&str]) -> Output {
    Cmd::new(MKFS).args(args).timeout(MKFS_TIMEOUT).run()
}

/// Run `mkfs-fext -q -F ARGS IMAGE SIZE`; panic with its output unless it
/// succeeds without a word on stderr.
#[track_caller]
pub fn mkfs_ok(args: &[&str], image: &Path, size: &str) -> Output {
    let out = Cmd::new(MKFS)
        .args(["-q", "-F"])
        .args(args)
        .arg(image)
        .arg(size)
        .timeout(MKFS_TIMEOUT)
        .run();
    assert!(
        out.success() && out.stderr.is_empty(),
        "mkfs.fext failed or complained:\n{out}"
    );
    out
}

/// Bytes the file really occupies on disk (st_blocks * 512).
pub fn allocated_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat image").blocks() * 512
}

/// Parse a size like `8M`, `5G`, `1T` into bytes (test inputs only).
pub fn size_bytes(size: &str) -> u64 {
    let (num, unit) = size.split_at(size.len() - 1);
    let shift = match unit {
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => panic!("size {size:?} needs a K/M/G/T suffix"),
    };
    num.parse::<u64>().expect("number") << shift
}
