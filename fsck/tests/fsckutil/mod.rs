//! Helpers shared by the fsck-fext integration tests: running the binary,
//! editing image bytes, locating inodes and blocks with debugfs, and the
//! "damaged, repaired, then clean under both checkers" sequence.

#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use crate::common::{debugfs_r, dumpe2fs_h, e2fsck_fn, Cmd, Output};

/// The binary under test.
pub const FSCK: &str = env!("CARGO_BIN_EXE_fsck-fext");

/// Time one fsck-fext run may take.
pub const LIMIT: Duration = Duration::from_secs(60);

/// `fsck-fext ARGS IMAGE` with the time limit.
pub fn fsck(args: &[&str], image: &Path) -> Output {
    Cmd::new(FSCK).args(args).arg(image).timeout(LIMIT).output()
}

/// Whether the run crashed (Rust panic or killed by a signal).
pub fn crashed(out: &Output) -> bool {
    out.stderr.contains("panicked") || out.code == 101 || (out.code > 128 && !out.timed_out)
}

/// Asserts that `fsck-fext ARGS IMAGE` exits 0 printing only the summary
/// line (`IMAGE: N/M files ..., B/T blocks`) and nothing on stderr.
#[track_caller]
pub fn assert_fsck_clean(args: &[&str], image: &Path) {
    let out = fsck(args, image);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let ok = out.code == 0
        && out.stderr.is_empty()
        && lines.len() == 1
        && lines[0].contains(" files")
        && lines[0].contains(" blocks");
    assert!(
        ok,
        "{} exited {} (expected 0 and only the summary line):\nstdout:\n{}\nstderr:\n{}",
        out.cmdline, out.code, out.stdout, out.stderr
    );
}

/// The block size of an image.
pub fn block_size(image: &Path) -> u64 {
    dumpe2fs_h(image).num("Block size")
}

/// Reads `len` bytes at `offset` of the image file.
pub fn read_bytes(image: &Path, offset: u64, len: usize) -> Vec<u8> {
    let f = fs::File::open(image).expect("open image");
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset).expect("read image");
    buf
}

/// Writes `data` at `offset` of the image file.
pub fn write_bytes(image: &Path, offset: u64, data: &[u8]) {
    let f = OpenOptions::new()
        .write(true)
        .open(image)
        .expect("open image rw");
    f.write_all_at(data, offset).expect("write image");
    f.sync_all().expect("sync image");
}

/// XORs the byte at `offset` with 0xff.
pub fn flip_byte(image: &Path, offset: u64) {
    let b = read_bytes(image, offset, 1)[0];
    write_bytes(image, offset, &[b ^ 0xff]);
}

/// Byte offset of the on-disk inode of `path` (debugfs `imap`).
pub fn inode_offset(image: &Path, path: &str) -> u64 {
    let text = debugfs_r(image, &format!("imap {path}"));
    let block = text
        .split("located at block ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("debugfs imap {path}: {text}"));
    let off = text
        .split("offset 0x")
        .nth(1)
        .and_then(|r| u64::from_str_radix(r.trim(), 16).ok())
        .unwrap_or_else(|| panic!("debugfs imap {path}: {text}"));
    block * block_size(image) + off
}

/// Inode number of `path`.
pub fn inode_of(image: &Path, path: &str) -> u32 {
    let text = debugfs_r(image, &format!("stat {path}"));
    text.split("Inode: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("debugfs stat {path}: {text}"))
}

/// Data blocks of `path` (debugfs `blocks`).
pub fn blocks_of(image: &Path, path: &str) -> Vec<u64> {
    debugfs_r(image, &format!("blocks {path}"))
        .split_whitespace()
        .map(|n| {
            n.parse()
                .unwrap_or_else(|_| panic!("debugfs blocks {path}: {n}"))
        })
        .collect()
}

/// The damage must be found: `fsck-fext -fn` exits 4 and leaves the image
/// byte for byte unchanged; e2fsck agrees that it is damaged.
#[track_caller]
pub fn assert_damaged(image: &Path) -> Output {
    let (e2, e2out) = e2fsck_fn(image);
    assert!(e2 != 0, "test setup: e2fsck -fn finds no damage:\n{e2out}");
    let before = fs::read(image).expect("read image");
    let out = fsck(&["-fn"], image);
    assert!(
        out.code == 4,
        "{} exited {} (expected 4: errors left uncorrected):\n{}{}\ne2fsck -fn said:\n{e2out}",
        out.cmdline,
        out.code,
        out.stdout,
        out.stderr
    );
    assert!(
        fs::read(image).expect("read image") == before,
        "-n changed the image"
    );
    out
}

/// The damage must be repaired: `fsck-fext -fy` exits 1, after which both
/// `e2fsck -fn` and `fsck-fext -fn` find the file system clean.
#[track_caller]
pub fn assert_repaired(image: &Path) -> Output {
    let out = fsck(&["-fy"], image);
    assert!(
        out.code == 1,
        "{} exited {} (expected 1: errors corrected):\n{}{}",
        out.cmdline,
        out.code,
        out.stdout,
        out.stderr
    );
    let (e2, e2out) = e2fsck_fn(image);
    assert!(
        e2 == 0,
        "e2fsck -fn after fsck-fext -fy exited {e2}:\n{e2out}\nfsck-fext -fy said:\n{}",
        out.stdout
    );
    assert_fsck_clean(&["-fn"], image);
    out
}

/// [`assert_damaged`] then [`assert_repaired`]; returns the two outputs'
/// stdout (the -n report, the -y report).
#[track_caller]
pub fn damaged_then_repaired(image: &Path) -> (String, String) {
    let n = assert_damaged(image);
    let y = assert_repaired(image);
    (n.stdout, y.stdout)
}
