//! Shared helpers for tests that make real images with e2fsprogs
//! (mkfs.ext2/mkfs.ext4, debugfs, e2fsck) and read them back.
#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use fext::format::bytes::{join_u64, u32_at};
use fext::format::csum;

/// A scratch directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fext-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs a program, panics unless it exits 0, returns its stdout.
pub fn run(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog} (is e2fsprogs installed?): {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `mkfs.<kind> -q -F -b <bs> [extra] img size`.
pub fn mkfs(kind: &str, block_size: usize, img: &Path, size: &str, extra: &[&str]) {
    let bs = block_size.to_string();
    let mut args = vec!["-q", "-F", "-b", &bs];
    args.extend_from_slice(extra);
    let img = img.to_str().unwrap();
    args.push(img);
    args.push(size);
    run(&format!("mkfs.{kind}"), &args);
}

/// A read-only debugfs request.
pub fn debugfs(img: &Path, request: &str) -> String {
    run("debugfs", &["-R", request, img.to_str().unwrap()])
}

/// Runs debugfs commands read-write from a script; panics if any reported an error.
pub fn debugfs_script(img: &Path, commands: &[String]) -> String {
    let script = img.with_extension("cmds");
    fs::write(&script, commands.join("\n") + "\n").unwrap();
    let out = Command::new("debugfs")
        .args(["-w", "-f", script.to_str().unwrap(), img.to_str().unwrap()])
        .output()
        .expect("run debugfs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
        .collect();
    assert!(
        out.status.success() && errors.is_empty(),
        "debugfs script failed: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `e2fsck -fn`: (exit code, output).
pub fn e2fsck_n(img: &Path) -> (i32, String) {
    let out = Command::new("e2fsck")
        .args(["-fn", img.to_str().unwrap()])
        .output()
        .expect("run e2fsck");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `e2fsck -fy`, whose exit code may be 0 or 1 (errors corrected).
pub fn e2fsck_y(img: &Path) {
    let out = Command::new("e2fsck")
        .args(["-fy", img.to_str().unwrap()])
        .output()
        .expect("run e2fsck");
    let code = out.status.code().unwrap_or(-1);
    assert!(code == 0 || code == 1, "e2fsck -fy exit {code}");
}

pub fn read_block(img: &Path, block_size: usize, block: u64) -> Vec<u8> {
    let mut f = File::open(img).unwrap();
    f.seek(SeekFrom::Start(block * block_size as u64)).unwrap();
    let mut buf = vec![0u8; block_size];
    f.read_exact(&mut buf).unwrap();
    buf
}

pub fn write_block(img: &Path, block_size: usize, block: u64, data: &[u8]) {
    assert_eq!(data.len(), block_size);
    let mut f = OpenOptions::new().write(true).open(img).unwrap();
    f.seek(SeekFrom::Start(block * block_size as u64)).unwrap();
    f.write_all(data).unwrap();
}

fn superblock(img: &Path) -> Vec<u8> {
    let mut f = File::open(img).unwrap();
    f.seek(SeekFrom::Start(1024)).unwrap();
    let mut sb = vec![0u8; 1024];
    f.read_exact(&mut sb).unwrap();
    sb
}

/// The metadata checksum seed: s_checksum_seed with metadata_csum_seed, else crc32c(~0, s_uuid).
pub fn fs_csum_seed(img: &Path) -> u32 {
    let sb = superblock(img);
    let incompat = u32_at(&sb, 0x60);
    if incompat & 0x2000 != 0 {
        u32_at(&sb, 0x270)
    } else {
        let uuid: [u8; 16] = sb[0x68..0x78].try_into().unwrap();
        csum::fs_csum_seed(&uuid)
    }
}

/// s_blocks_count (lo, plus hi with the 64bit feature).
pub fn block_count(img: &Path) -> u64 {
    let sb = superblock(img);
    let incompat = u32_at(&sb, 0x60);
    let hi = if incompat & 0x80 != 0 {
        u32_at(&sb, 0x150)
    } else {
        0
    };
    join_u64(u32_at(&sb, 0x4), hi)
}

/// The 60 bytes of `i_block` of `file`, from `debugfs -R "inode_dump -b"`.
pub fn i_block(img: &Path, file: &str) -> [u8; 60] {
    let out = debugfs(img, &format!("inode_dump -b {file}"));
    let bytes = parse_hexdump(&out, 60);
    bytes.try_into().expect("60 bytes of i_block")
}

/// Parses debugfs' hex dump: "OOOO  hhhh hhhh ...  ascii" lines with octal
/// offsets, where a "*" line stands for repeats of the line before it (up
/// to the next offset, or to `total` bytes at the end).
pub fn parse_hexdump(out: &str, total: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = Vec::new();
    let mut last: Vec<u8> = Vec::new();
    let mut repeating = false;
    let fill_to = |bytes: &mut Vec<u8>, last: &[u8], end: usize| {
        while bytes.len() < end && !last.is_empty() {
            let n = (end - bytes.len()).min(last.len());
            bytes.extend_from_slice(&last[..n]);
        }
    };
    for line in out.lines() {
        if line.trim() == "*" {
            repeating = true;
            continue;
        }
        let mut parts = line.splitn(3, "  ");
        let Some(offset) = parts.next().and_then(|o| usize::from_str_radix(o, 8).ok()) else {
            continue;
        };
        if repeating {
            fill_to(&mut bytes, &last, offset);
            repeating = false;
        }
        let mut this = Vec::new();
        for group in parts.next().unwrap_or("").split_whitespace() {
            for i in (0..group.len()).step_by(2) {
                this.push(u8::from_str_radix(&group[i..i + 2], 16).unwrap());
            }
        }
        bytes.extend_from_slice(&this);
        last = this;
    }
    if repeating {
        fill_to(&mut bytes, &last, total);
    }
    bytes
}

/// The number after `key` in debugfs `stat` output (e.g. "Inode:", "Generation:").
pub fn stat_number(stat: &str, key: &str) -> u64 {
    let rest = &stat[stat.find(key).unwrap_or_else(|| panic!("no {key}")) + key.len()..];
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

/// Writes a source file on the host: `blocks` holds (logical block, fill byte)
/// pairs; the rest are holes. The file is `len_blocks` long.
pub fn write_sparse_file(path: &Path, block_size: usize, blocks: &[(u64, u8)], len_blocks: u64) {
    let mut f = File::create(path).unwrap();
    for &(lblk, fill) in blocks {
        f.seek(SeekFrom::Start(lblk * block_size as u64)).unwrap();
        f.write_all(&vec![fill; block_size]).unwrap();
    }
    f.set_len(len_blocks * block_size as u64).unwrap();
}
