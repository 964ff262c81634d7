//! Test support: a handle on a real ext4 image made at test time with
//! e2fsprogs (`mkfs.ext4`, `debugfs`, `e2fsck`), with raw access to its
//! blocks and the superblock fields checksum tests need. Built on the free
//! helpers of `testutil`; the format layer's checksum and layout tests use
//! these images as their oracle.

use std::path::PathBuf;

use super::csum::crc32c;
use super::testutil::{self as tu, TempDir};

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
        let path = dir.join("fs.img");
        let bs = block_size.to_string();
        let mut args = vec!["-b", bs.as_str()];
        args.extend_from_slice(opts);
        tu::mkfs(&path, size_mib, &args);
        Image {
            path,
            block_size,
            _dir: dir,
        }
    }

    fn path_str(&self) -> &str {
        self.path.to_str().expect("utf-8 path")
    }

    /// Runs a debugfs script (one command a line) with `-w`; returns stdout.
    pub fn debugfs_script(&self, script: &str) -> String {
        let dir = TempDir::new("debugfs");
        let cmds = dir.join("cmds");
        std::fs::write(&cmds, script).expect("write debugfs commands");
        let cmds = cmds.to_str().expect("utf-8 path");
        tu::run_stdout("debugfs", &["-w", "-f", cmds, self.path_str()])
    }

    /// Runs one read-only debugfs request; returns stdout.
    pub fn debugfs(&self, request: &str) -> String {
        tu::run_stdout("debugfs", &["-R", request, self.path_str()])
    }

    /// Runs e2fsck with `flags`, which must end clean or fixed (0..=2).
    fn e2fsck_repair(&self, flags: &str) {
        let (code, text) = tu::run("e2fsck", &[flags, self.path_str()]);
        assert!((0..=2).contains(&code), "e2fsck {flags}: {text}");
    }

    /// `e2fsck -fyD`: rebuilds (and indexes) every directory.
    pub fn e2fsck_rehash(&self) {
        self.e2fsck_repair("-fyD");
    }

    /// `e2fsck -fy`: repairs whatever debugfs left inconsistent.
    pub fn e2fsck_fix(&self) {
        self.e2fsck_repair("-fy");
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
        let (code, text) = tu::run("e2fsck", &["-fn", self.path_str()]);
        (code == 0, text)
    }

    pub fn read_block(&self, block: u64) -> Vec<u8> {
        tu::read_at(&self.path, block * self.block_size as u64, self.block_size)
    }

    pub fn write_block(&self, block: u64, data: &[u8]) {
        assert_eq!(data.len(), self.block_size);
        tu::write_at(&self.path, block * self.block_size as u64, data);
    }

    /// The raw 1024-byte superblock.
    pub fn superblock(&self) -> Vec<u8> {
        tu::read_at(&self.path, 1024, 1024)
    }

    /// The metadata checksum seed (s_checksum_seed or crc32c(~0, uuid)).
    pub fn fs_seed(&self) -> u32 {
        tu::sb_csum_seed(&self.superblock())
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
