//! Helpers shared by the format layer's unit tests: committed fixtures under
//! `tests/fixtures/`, a few superblock fields, temporary directories, and
//! running e2fsprogs tools on images made at test time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::bytes::u32_at;
use super::csum::fs_csum_seed;

pub fn fixture_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn fixture(rel: &str) -> Vec<u8> {
    let path = fixture_path(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
}

pub fn fixture_text(rel: &str) -> String {
    String::from_utf8_lossy(&fixture(rel)).into_owned()
}

/// The metadata checksum seed of a 1024-byte superblock.
pub fn sb_csum_seed(sb: &[u8]) -> u32 {
    const INCOMPAT_CSUM_SEED: u32 = 0x2000;
    if u32_at(sb, 0x60) & INCOMPAT_CSUM_SEED != 0 {
        u32_at(sb, 0x270) // s_checksum_seed
    } else {
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&sb[0x68..0x78]); // s_uuid
        fs_csum_seed(&uuid)
    }
}

pub fn sb_uuid(sb: &[u8]) -> [u8; 16] {
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&sb[0x68..0x78]);
    uuid
}

pub fn sb_block_size(sb: &[u8]) -> usize {
    1024 << u32_at(sb, 0x18) // s_log_block_size
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fext-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a command, returns (exit code, stdout + stderr).
pub fn run(program: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// Runs a command that must succeed; returns its stdout alone (for tools
/// such as debugfs that print a banner on stderr).
pub fn run_stdout(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program} (e2fsprogs installed?): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command that must succeed; returns its stdout + stderr.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let (code, text) = run(program, args);
    assert_eq!(code, 0, "{program} {args:?} failed:\n{text}");
    text
}

/// `mkfs.ext4 -q -F <opts> <img>` on a new sparse file of `size_mib` MiB.
pub fn mkfs(img: &Path, size_mib: u64, opts: &[&str]) {
    let f = std::fs::File::create(img).expect("create image");
    f.set_len(size_mib << 20).expect("size image");
    drop(f);
    let img_s = img.to_str().expect("utf-8 path");
    let mut args = vec!["-q", "-F"];
    args.extend_from_slice(opts);
    args.push(img_s);
    run_ok("mkfs.ext4", &args);
}

/// Runs debugfs requests (one per line) on an image, writable if `write`.
pub fn debugfs(img: &Path, write: bool, requests: &str) -> String {
    let dir = TempDir::new("debugfs");
    let cmds = dir.join("cmds");
    std::fs::write(&cmds, requests).expect("write debugfs commands");
    let mut args = Vec::new();
    if write {
        args.push("-w");
    }
    args.extend([
        "-f",
        cmds.to_str().expect("utf-8"),
        img.to_str().expect("utf-8"),
    ]);
    run_ok("debugfs", &args)
}

/// Byte offset of an inode in the image (from `debugfs imap`).
pub fn inode_offset(img: &Path, ino: u32, block_size: u64) -> u64 {
    let text = debugfs(img, false, &format!("imap <{ino}>\n"));
    let line = text
        .lines()
        .find(|l| l.contains("located at block"))
        .unwrap_or_else(|| panic!("no imap output: {text}"));
    // "\tlocated at block 1060, offset 0x0b00"
    let words: Vec<&str> = line.split_whitespace().collect();
    let block: u64 = words[3].trim_end_matches(',').parse().expect("block");
    let offset = u64::from_str_radix(words[5].trim_start_matches("0x"), 16).expect("offset");
    block * block_size + offset
}

/// Reads `len` bytes at `offset` of a file.
pub fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).expect("open");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).expect("read");
    buf
}

/// Writes `data` at `offset` of a file.
pub fn write_at(path: &Path, offset: u64, data: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.write_all(data).expect("write");
}

/// Parses lowercase hex ("0x..." or bare) into bytes.
pub fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim().trim_start_matches("0x");
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}
