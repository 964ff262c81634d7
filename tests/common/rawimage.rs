//! Raw access to images made with e2fsprogs, for the format layer's
//! integration tests: blocks by number, superblock fields, an inode's
//! `i_block` from debugfs' hex dump, `debugfs stat` numbers, and host
//! source files with holes for `mkfs -d`/debugfs `write`.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use fext::format::bytes::{join_u64, u32_at};
use fext::format::csum;

use super::cmd::Cmd;
use super::e2fs::debugfs_r;

/// `mkfs.<kind> -q -F -b <bs> [extra] img size`.
pub fn mkfs_kind(kind: &str, block_size: usize, img: &Path, size: &str, extra: &[&str]) {
    Cmd::new(format!("mkfs.{kind}"))
        .args(["-q", "-F", "-b", &block_size.to_string()])
        .args(extra)
        .arg(img)
        .arg(size)
        .run_ok();
}

/// Runs debugfs commands read-write from a script; panics if any of them
/// reported an error (debugfs exits 0 regardless and says so on stderr).
pub fn debugfs_script_strict(img: &Path, commands: &[String]) -> String {
    let out = Cmd::new("debugfs")
        .args(["-w", "-f", "-"])
        .arg(img)
        .stdin_bytes(commands.join("\n") + "\n")
        .run_ok();
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
        .collect();
    assert!(errors.is_empty(), "debugfs script failed: {}", out.stderr);
    out.stdout
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
    read_block(img, 1024, 1)
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
    let out = debugfs_r(img, &format!("inode_dump -b {file}"));
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
