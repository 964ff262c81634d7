//! Test support: real ext4 images made at test time with e2fsprogs
//! (`mkfs.ext4`, `debugfs`, `e2fsck`), and raw access to their blocks.
//! The format layer's checksum and layout tests use these as their oracle.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::csum::{crc32c, fs_csum_seed};

/// A scratch directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("fext-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (e2fsprogs installed?): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An image file made by mkfs.ext4.
pub struct Image {
    pub path: PathBuf,
    pub block_size: usize,
    _dir: TempDir,
}

impl Image {
    /// `mkfs.ext4 -b block_size [opts]` on a fresh `size_mib` image.
    pub fn mkfs(tag: &str, size_mib: u64, block_size: usize, opts: &[&str]) -> Image {
        let dir = TempDir::new(tag);
        let path = dir.path().join("fs.img");
        let f = fs::File::create(&path).unwrap();
        f.set_len(size_mib << 20).unwrap();
        drop(f);
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-b", &block_size.to_string()])
            .args(opts)
            .arg(&path));
        Image {
            path,
            block_size,
            _dir: dir,
        }
    }

    /// Runs a debugfs script (one command a line) with `-w`; returns stdout.
    pub fn debugfs_script(&self, script: &str) -> String {
        let cmds = self.path.with_extension("cmds");
        fs::write(&cmds, script).unwrap();
        run(Command::new("debugfs")
            .arg("-w")
            .arg("-f")
            .arg(&cmds)
            .arg(&self.path))
    }

    /// Runs one read-only debugfs request; returns stdout.
    pub fn debugfs(&self, request: &str) -> String {
        run(Command::new("debugfs")
            .arg("-R")
            .arg(request)
            .arg(&self.path))
    }

    /// `e2fsck -fyD`: rebuilds (and indexes) every directory.
    pub fn e2fsck_rehash(&self) {
        let out = Command::new("e2fsck")
            .arg("-fyD")
            .arg(&self.path)
            .output()
            .unwrap();
        // Exit codes 0..=2 mean clean or fixed.
        assert!(
            matches!(out.status.code(), Some(0..=2)),
            "e2fsck -fyD: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// `e2fsck -fy`: repairs whatever debugfs left inconsistent.
    pub fn e2fsck_fix(&self) {
        let out = Command::new("e2fsck")
            .arg("-fy")
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(
            matches!(out.status.code(), Some(0..=2)),
            "e2fsck -fy: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// Makes directory `path` with a non-zero i_generation, so checksum tests
    /// also cover the generation part of the per-inode seed. (debugfs leaves
    /// the directory's block checksum stale after `sif`; e2fsck fixes it.)
    pub fn mkdir_with_generation(&self, path: &str, generation: u32) {
        self.debugfs_script(&format!(
            "mkdir {path}\nsif {path} generation {generation}\n"
        ));
        self.e2fsck_fix();
        assert_eq!(self.inode_and_generation(path).1, generation);
    }

    /// `e2fsck -fn`; returns (clean?, output).
    pub fn e2fsck_check(&self) -> (bool, String) {
        let out = Command::new("e2fsck")
            .arg("-fn")
            .arg(&self.path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    pub fn read_block(&self, block: u64) -> Vec<u8> {
        let mut f = fs::File::open(&self.path).unwrap();
        f.seek(SeekFrom::Start(block * self.block_size as u64))
            .unwrap();
        let mut buf = vec![0u8; self.block_size];
        f.read_exact(&mut buf).unwrap();
        buf
    }

    pub fn write_block(&self, block: u64, data: &[u8]) {
        assert_eq!(data.len(), self.block_size);
        let mut f = fs::OpenOptions::new().write(true).open(&self.path).unwrap();
        f.seek(SeekFrom::Start(block * self.block_size as u64))
            .unwrap();
        f.write_all(data).unwrap();
    }

    /// The raw 1024-byte superblock.
    pub fn superblock(&self) -> Vec<u8> {
        let mut f = fs::File::open(&self.path).unwrap();
        f.seek(SeekFrom::Start(1024)).unwrap();
        let mut buf = vec![0u8; 1024];
        f.read_exact(&mut buf).unwrap();
        buf
    }

    /// The metadata checksum seed (s_checksum_seed or crc32c(~0, uuid)).
    pub fn fs_seed(&self) -> u32 {
        let sb = self.superblock();
        let incompat = u32::from_le_bytes(sb[0x60..0x64].try_into().unwrap());
        if incompat & 0x2000 != 0 {
            u32::from_le_bytes(sb[0x270..0x274].try_into().unwrap())
        } else {
            fs_csum_seed(&sb[0x68..0x78].try_into().unwrap())
        }
    }

    /// `s_hash_seed` as four words.
    pub fn hash_seed(&self) -> [u32; 4] {
        let sb = self.superblock();
        super::dx_hash::seed_from_bytes(&sb[0xec..0xfc].try_into().unwrap())
    }

    /// `s_def_hash_version`.
    pub fn def_hash_version(&self) -> u8 {
        self.superblock()[0xfc]
    }

    /// True when `s_flags` has EXT2_FLAGS_UNSIGNED_HASH.
    pub fn unsigned_hash(&self) -> bool {
        let sb = self.superblock();
        u32::from_le_bytes(sb[0x160..0x164].try_into().unwrap()) & 2 != 0
    }

    /// (inode number, generation) of a path, from `debugfs stat`.
    pub fn inode_and_generation(&self, path: &str) -> (u32, u32) {
        let out = self.debugfs(&format!("stat {path}"));
        let field = |key: &str| -> u32 {
            let rest =
                &out[out.find(key).unwrap_or_else(|| panic!("{key} in {out}")) + key.len()..];
            let tok: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            tok.parse().unwrap()
        };
        (field("Inode:"), field("Generation:"))
    }

    /// The per-inode checksum seed of `path`.
    pub fn inode_seed(&self, path: &str) -> u32 {
        let (ino, generation) = self.inode_and_generation(path);
        crc32c(
            crc32c(self.fs_seed(), &ino.to_le_bytes()),
            &generation.to_le_bytes(),
        )
    }

    /// The physical blocks of `path` in logical order (data blocks only).
    pub fn file_blocks(&self, path: &str) -> Vec<u64> {
        self.debugfs(&format!("blocks {path}"))
            .split_whitespace()
            .map(|t| t.parse().unwrap())
            .collect()
    }
}
