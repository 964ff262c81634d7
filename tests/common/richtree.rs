//! A source tree with every kind of thing a file system stores, to build
//! images from and compare mounts against.
//!
//! [`make_rich_tree`] fills an existing empty directory with (paths
//! relative to it; "root" = made only when running as root, otherwise
//! listed in [`RichTree::skipped`]):
//!
//! | path | what |
//! |------|------|
//! | `files/empty` | 0 bytes |
//! | `files/tiny` | 12 bytes |
//! | `files/one_block` | exactly 4096 bytes |
//! | `files/few_blocks` | 3 blocks + 100 bytes (12388) |
//! | `files/sparse` | 4 KiB of data at 0, 1 MiB and 37 MiB, holes between; size 37 MiB + 4 KiB (`big_files`) |
//! | `files/sparse_tail` | 1 byte of data, then a hole up to 10 MiB |
//! | `files/big_50m` | exactly 50 MiB of pseudo-random bytes (`big_files`) |
//! | `dirs/a/b/c/d/e/deep.txt` | nested directories, a file at the bottom |
//! | `dirs/empty_dir` | an empty directory |
//! | `many/` | [`RichTreeOpts::many_entries`] (5000) empty files, names 7..=255 bytes |
//! | `names/` | a 255-byte name, UTF-8 (`héllo wörld ✓`), a space, a non-UTF-8 name (`bad\xff\xfename`), `.hidden`, `-dash` |
//! | `links/fast` | symlink, 13-byte target `../files/tiny` (fast: < 60 bytes) |
//! | `links/slow200` | symlink, 200-byte target (slow) |
//! | `links/slow3000` | symlink, 3000-byte target (only with `block_size` >= 4096) |
//! | `links/dangling` | symlink to `does/not/exist` |
//! | `links/to_dir`, `links/absolute` | symlink to `../dirs`, to `/etc/hostname` |
//! | `hardlinks/one`, `hardlinks/sub/two`, `dirs/a/three` | one inode, 3 names in 3 directories |
//! | `hardlinks/pair1`, `hardlinks/pair2` | one inode, 2 names in one directory |
//! | `dev/char_1_3`, `dev/block_7_0` | char device 1:3, block device 7:0 (root) |
//! | `special/fifo`, `special/socket` | a FIFO; a unix socket (bound, then closed) |
//! | `modes/setuid_4755`, `setgid_2755`, `all_7777`, `exec_0755`, `private_0600` | files with those modes |
//! | `modes/zero_0000` | empty file, mode 0000 |
//! | `modes/sticky_dir_1777`, `modes/setgid_dir_2775` | directories with those modes |
//! | `owned/file`, `owned/dir`, `owned/symlink` | owned by 1234:5678 (root) |
//! | `xattrs/small` | `user.small` = 1 byte |
//! | `xattrs/large` | `user.large` = 3000 bytes (spills to an xattr block; `block_size` * 3/4 if smaller) |
//! | `xattrs/many` | `block_size` / 128 (32) `user.attr_NN` values of 1..=48 bytes |
//! | `xattrs/dir` | directory with `user.dir` |
//! | `xattrs/trusted`, `xattrs/security` | `trusted.fext`, `security.fext` (root) |
//! | `xattrs/symlink` | symlink with `trusted.link` (root) |
//! | `acl/file`, `acl/dir` | POSIX access ACL (user 1234 r--); default ACL on the dir |
//! | `times/y2100`, `times/pre1970`, `times/nsec` | mtime 2100-01-01 + 123456789 ns; 1969-01-01; 10^9 s + 987654321 ns |
//!
//! File modes are set explicitly (umask does not matter). Directory mtimes
//! are whatever populating them left. Content is deterministic.

use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::tmp::TempDir;
use super::{is_root, xattr};

/// What [`make_rich_tree_with`] makes.
#[derive(Debug, Clone)]
pub struct RichTreeOpts {
    /// Make `files/big_50m` and `files/sparse` (default true). Turn off for
    /// small images.
    pub big_files: bool,
    /// Number of entries in `many/` (default 5000).
    pub many_entries: usize,
    /// Block size of the image the tree is meant for (default 4096). ext4
    /// keeps a symlink target in one block and all xattrs of an inode in
    /// the inode plus one block (without ea_inode), so with smaller blocks
    /// `links/slow3000` is left out and `xattrs/large` / `xattrs/many`
    /// shrink to fit.
    pub block_size: u32,
}

impl Default for RichTreeOpts {
    fn default() -> RichTreeOpts {
        RichTreeOpts {
            big_files: true,
            many_entries: 5000,
            block_size: 4096,
        }
    }
}

/// The result of [`make_rich_tree`].
#[derive(Debug, Clone)]
pub struct RichTree {
    /// The directory that was filled.
    pub root: PathBuf,
    /// Items not made because they need root (empty when root).
    pub skipped: Vec<String>,
}

/// Size of `files/big_50m`.
pub const BIG_FILE_LEN: u64 = 50 << 20;
/// Size of `files/sparse`.
pub const SPARSE_LEN: u64 = (37 << 20) + 4096;

/// Fill the existing, empty `dir` with the full rich tree (see the module
/// table). Needs about 51 MiB of disk.
pub fn make_rich_tree(dir: &Path) -> RichTree {
    make_rich_tree_with(dir, &RichTreeOpts::default())
}

/// A fresh temp dir (named after `tag`) holding the rich tree, as `opts`
/// says; removed when dropped.
pub fn temp_rich_tree(tag: &str, opts: &RichTreeOpts) -> TempDir {
    let dir = TempDir::new(tag);
    make_rich_tree_with(dir.path(), opts);
    dir
}

/// Fill the existing, empty `dir` with the rich tree, as `opts` says.
pub fn make_rich_tree_with(dir: &Path, opts: &RichTreeOpts) -> RichTree {
    let root = is_root();
    let mut skipped = Vec::new();
    let p = |rel: &str| dir.join(rel);
    for d in [
        "files",
        "dirs/a/b/c/d/e",
        "dirs/empty_dir",
        "many",
        "names",
        "links",
        "hardlinks/sub",
        "dev",
        "special",
        "modes",
        "owned",
        "xattrs",
        "acl",
        "times",
    ] {
        fs::create_dir_all(p(d)).expect("mkdir");
    }

    // Regular files.
    write_file(&p("files/empty"), b"", 0o644);
    write_file(&p("files/tiny"), b"hello, fext\n", 0o644);
    write_file(&p("files/one_block"), &pattern(4096, 1), 0o644);
    write_file(&p("files/few_blocks"), &pattern(3 * 4096 + 100, 2), 0o644);
    {
        let f = File::create(p("files/sparse_tail")).expect("create");
        f.write_all_at(b"S", 0).expect("write");
        f.set_len(10 << 20).expect("set_len");
    }
    if opts.big_files {
        let f = File::create(p("files/sparse")).expect("create");
        for (i, off) in [0u64, 1 << 20, 37 << 20].into_iter().enumerate() {
            f.write_all_at(&pattern(4096, 10 + i as u64), off)
                .expect("write");
        }
        assert_eq!(f.metadata().expect("stat").len(), SPARSE_LEN);
        let mut f = File::create(p("files/big_50m")).expect("create");
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..(BIG_FILE_LEN >> 20) {
            rng.fill(&mut chunk);
            f.write_all(&chunk).expect("write");
        }
    }

    // Directories.
    write_file(&p("dirs/a/b/c/d/e/deep.txt"), b"deep\n", 0o644);
    for i in 0..opts.many_entries {
        // 7..=255 bytes: "f" + 5 digits + "_" + 0..=248 letters.
        let pad = (i * 7) % 249;
        let letter = char::from(b'a' + u8::try_from(i % 26).expect("< 26"));
        let name = format!("f{i:05}_{}", letter.to_string().repeat(pad));
        File::create(p("many").join(name)).expect("create many/*");
    }
    write_file(&p("names").join("n".repeat(255)), b"long name\n", 0o644);
    write_file(&p("names/héllo wörld ✓"), b"utf8\n", 0o644);
    write_file(&p("names/with space"), b"space\n", 0o644);
    write_file(
        &p("names").join(OsStr::from_bytes(b"bad\xff\xfename")),
        b"bytes\n",
        0o644,
    );
    write_file(&p("names/.hidden"), b"hidden\n", 0o644);
    write_file(&p("names/-dash"), b"dash\n", 0o644);

    // Symlinks.
    symlink("../files/tiny", p("links/fast")).expect("symlink");
    symlink(long_target(200), p("links/slow200")).expect("symlink");
    if opts.block_size >= 4096 {
        symlink(long_target(3000), p("links/slow3000")).expect("symlink");
    }
    symlink("does/not/exist", p("links/dangling")).expect("symlink");
    symlink("../dirs", p("links/to_dir")).expect("symlink");
    symlink("/etc/hostname", p("links/absolute")).expect("symlink");

    // Hard links.
    write_file(&p("hardlinks/one"), b"three names, one inode\n", 0o644);
    fs::hard_link(p("hardlinks/one"), p("hardlinks/sub/two")).expect("link");
    fs::hard_link(p("hardlinks/one"), p("dirs/a/three")).expect("link");
    write_file(&p("hardlinks/pair1"), b"two names\n", 0o644);
    fs::hard_link(p("hardlinks/pair1"), p("hardlinks/pair2")).expect("link");

    // Device nodes (root), FIFO, socket.
    if root {
        mknod(
            &p("dev/char_1_3"),
            libc::S_IFCHR | 0o666,
            libc::makedev(1, 3),
        );
        mknod(
            &p("dev/block_7_0"),
            libc::S_IFBLK | 0o660,
            libc::makedev(7, 0),
        );
    } else {
        skipped.push("dev/char_1_3, dev/block_7_0 (mknod needs root)".into());
    }
    mknod(&p("special/fifo"), libc::S_IFIFO | 0o644, 0);
    drop(std::os::unix::net::UnixListener::bind(p("special/socket")).expect("bind socket"));
    chmod(&p("special/socket"), 0o755);

    // Modes (set after writing: a 0000 file cannot be written by non-root).
    for (name, mode) in [
        ("setuid_4755", 0o4755),
        ("setgid_2755", 0o2755),
        ("all_7777", 0o7777),
        ("exec_0755", 0o755),
        ("private_0600", 0o600),
    ] {
        write_file(&p("modes").join(name), b"#!/bin/sh\nexit 0\n", mode);
    }
    write_file(&p("modes/zero_0000"), b"", 0o000);
    fs::create_dir(p("modes/sticky_dir_1777")).expect("mkdir");
    chmod(&p("modes/sticky_dir_1777"), 0o1777);
    fs::create_dir(p("modes/setgid_dir_2775")).expect("mkdir");
    chmod(&p("modes/setgid_dir_2775"), 0o2775);

    // Ownership (root).
    write_file(&p("owned/file"), b"owned\n", 0o644);
    fs::create_dir(p("owned/dir")).expect("mkdir");
    symlink("file", p("owned/symlink")).expect("symlink");
    if root {
        for rel in ["owned/file", "owned/dir", "owned/symlink"] {
            std::os::unix::fs::lchown(p(rel), Some(1234), Some(5678)).expect("lchown");
        }
    } else {
        skipped.push("owned/* stay owned by the current user (chown needs root)".into());
    }

    // Extended attributes.
    write_file(&p("xattrs/small"), b"x\n", 0o644);
    set_xattr(&p("xattrs/small"), "user.small", b"1");
    write_file(&p("xattrs/large"), b"x\n", 0o644);
    let block = usize::try_from(opts.block_size).expect("u32 fits usize");
    set_xattr(
        &p("xattrs/large"),
        "user.large",
        &pattern(3000.min(block * 3 / 4), 3),
    );
    write_file(&p("xattrs/many"), b"x\n", 0o644);
    for i in 0..u64::from(opts.block_size / 128) {
        let len = usize::try_from(1 + (i * 13) % 48).expect("small");
        set_xattr(
            &p("xattrs/many"),
            &format!("user.attr_{i:02}"),
            &pattern(len, 100 + i),
        );
    }
    fs::create_dir(p("xattrs/dir")).expect("mkdir");
    set_xattr(&p("xattrs/dir"), "user.dir", b"on a directory");
    write_file(&p("xattrs/trusted"), b"x\n", 0o644);
    write_file(&p("xattrs/security"), b"x\n", 0o644);
    symlink("trusted", p("xattrs/symlink")).expect("symlink");
    if root {
        set_xattr(&p("xattrs/trusted"), "trusted.fext", b"trusted value");
        set_xattr(&p("xattrs/security"), "security.fext", b"security value");
        set_xattr(&p("xattrs/symlink"), "trusted.link", b"on a symlink");
    } else {
        skipped.push("trusted.* and security.* xattrs (need root)".into());
    }

    // POSIX ACLs, in the kernel's xattr format.
    write_file(&p("acl/file"), b"acl\n", 0o640);
    set_xattr(
        &p("acl/file"),
        "system.posix_acl_access",
        &acl_user_1234_read(),
    );
    fs::create_dir(p("acl/dir")).expect("mkdir");
    set_xattr(
        &p("acl/dir"),
        "system.posix_acl_default",
        &acl_user_1234_read(),
    );

    // Timestamps (last, after the files are complete).
    write_file(&p("times/y2100"), b"future\n", 0o644);
    set_mtime(&p("times/y2100"), 4_102_444_800, 123_456_789);
    write_file(&p("times/pre1970"), b"past\n", 0o644);
    set_mtime(&p("times/pre1970"), -31_536_000, 0);
    write_file(&p("times/nsec"), b"nsec\n", 0o644);
    set_mtime(&p("times/nsec"), 1_000_000_000, 987_654_321);

    RichTree {
        root: dir.to_owned(),
        skipped,
    }
}

/// Deterministic bytes: a simple function of position and `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v
}

/// xorshift64*: fast, deterministic, never zero bytes in long runs.
struct XorShift(u64);

impl XorShift {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let bytes = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A relative symlink target of exactly `len` bytes.
fn long_target(len: usize) -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < len {
        s.push_str(&format!("component{i:03}/"));
        i += 1;
    }
    s.truncate(len);
    s
}

fn write_file(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    chmod(path, mode);
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    xattr::set(path, name, value)
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", path.display()));
}

fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) {
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: `c` is a valid NUL-terminated path.
    let rc = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
    assert!(
        rc == 0,
        "mknod {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    // mknod applies the umask: set the permission bits exactly.
    chmod(path, mode & 0o7777);
}

fn set_mtime(path: &Path, sec: i64, nsec: i64) {
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL");
    let times = [
        libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
        libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
    ];
    // SAFETY: `c` is a valid path, `times` two valid timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert!(
        rc == 0,
        "utimensat {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// A POSIX ACL in the kernel's xattr format (version 2, then entries of
/// tag u16, perm u16, id u32): user::rw-, user:1234:r--, group::r--,
/// mask::r--, other::---.
fn acl_user_1234_read() -> Vec<u8> {
    const UNDEFINED_ID: u32 = u32::MAX;
    let entries: [(u16, u16, u32); 5] = [
        (0x01, 6, UNDEFINED_ID), // ACL_USER_OBJ rw-
        (0x02, 4, 1234),         // ACL_USER 1234 r--
        (0x04, 4, UNDEFINED_ID), // ACL_GROUP_OBJ r--
        (0x10, 4, UNDEFINED_ID), // ACL_MASK r--
        (0x20, 0, UNDEFINED_ID), // ACL_OTHER ---
    ];
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}
