//! Acceptance: `mkfs.fext -d DIR` over the rich tree (every file type, a
//! file with holes, a 50 MiB file, a 5,000-entry directory, hard links,
//! xattrs including POSIX ACLs, nanosecond and year-2100 timestamps) makes
//! an image that
//! 1. `e2fsck -fn` finds clean;
//! 2. the Linux kernel mounts read-write and shows exactly the source tree
//!    (`compare_trees`: types, modes, owners, link counts, sizes, contents,
//!    symlink targets, device numbers, xattrs, hard-link groups, mtimes to
//!    the nanosecond; the root's mode/owner/xattrs too; lost+found is
//!    ignored);
//! 3. after the kernel has written to it (new, grown, truncated, renamed
//!    and deleted files and directories, hundreds of entries added to and
//!    removed from the big directory, xattrs, modes, owners) and unmounted
//!    it, is still clean for `e2fsck -fn`, and shows those changes when
//!    mounted again (the same changes made to the source tree).
//!
//! Profiles: ext4 at 1 KiB and 4 KiB blocks, ext2 (block maps, indirect
//! blocks up to double-indirect for the 50 MiB file at 1 KiB), ext3, ext4
//! with orphan_file + metadata_csum_seed; and the big directory linear
//! (`-O ^dir_index`) and without file types (`-O ^filetype`).

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{symlink, FileExt, PermissionsExt};
use std::path::Path;

use common::richtree::pattern;
use common::{
    assert_e2fsck_clean, assert_trees_equal, debugfs_r, make_rich_tree_with, require_kernel_mount,
    xattr, CompareOpts, KernelMount, RichTreeOpts, TempDir, TempImage,
};
use support::mkfs_ok;

/// Image size: room for the 51 MiB of data, the changes, and metadata.
const IMAGE_SIZE: &str = "256M";

/// What must survive the copy exactly: everything compare_trees checks,
/// with mtimes to the nanosecond (fext stores the extra epoch bits and
/// nanoseconds, unlike `mke2fs -d`).
fn exact() -> CompareOpts {
    CompareOpts {
        mtime_nsec: true,
        ..CompareOpts::default()
    }
}

/// After the same changes were made to the source and to the mount at
/// slightly different times: everything but timestamps.
fn without_times() -> CompareOpts {
    CompareOpts {
        mtime: false,
        ..CompareOpts::default()
    }
}

fn roundtrip(args: &[&str], block_size: u32, expect_htree: bool) {
    if !require_kernel_mount() {
        return;
    }
    let src = TempDir::new("rich");
    let tree = make_rich_tree_with(
        src.path(),
        &RichTreeOpts {
            block_size,
            ..RichTreeOpts::default()
        },
    );
    assert!(
        tree.skipped.is_empty(),
        "running as root: {:?}",
        tree.skipped
    );

    let img = TempImage::empty();
    let bs = block_size.to_string();
    let mut all = args.to_vec();
    all.extend(["-b", &bs, "-d", src.path().to_str().expect("utf-8 path")]);
    mkfs_ok(&all, img.path(), IMAGE_SIZE);
    assert_e2fsck_clean(img.path());

    // The 5,000-entry directory: indexed when dir_index is on.
    let htree = debugfs_r(img.path(), "htree /many");
    assert_eq!(
        htree.contains("Root node dump"),
        expect_htree,
        "many/ should {}be an htree:\n{}",
        if expect_htree { "" } else { "not " },
        &htree[..htree.len().min(2000)]
    );

    let mount = KernelMount::new(img.path(), true);
    assert_trees_equal(src.path(), mount.path(), &exact());

    // The kernel writes; the source gets the same changes.
    change_tree(mount.path(), block_size);
    change_tree(src.path(), block_size);
    mount.unmount().expect("unmount");
    assert_e2fsck_clean(img.path());

    let again = KernelMount::new(img.path(), false);
    assert_trees_equal(src.path(), again.path(), &without_times());
    again.unmount().expect("unmount");
}

/// Changes made through the kernel (and to the source tree, for the
/// comparison afterwards).
fn change_tree(root: &Path, block_size: u32) {
    let p = |rel: &str| root.join(rel);
    // New files and directories.
    fs::create_dir_all(p("new/deeper/still")).unwrap();
    fs::write(p("new/hello"), b"written by the kernel\n").unwrap();
    fs::write(p("new/deeper/three_mib"), pattern(3 << 20, 77)).unwrap();
    let sparse = File::create(p("new/sparse_100m")).unwrap();
    sparse.write_all_at(b"far away", 100 << 20).unwrap();
    symlink("x".repeat(100), p("new/slow_link")).unwrap();
    for i in 0..20 {
        fs::create_dir(p(&format!("dirs/empty_dir/sub{i:02}"))).unwrap();
    }
    // The big directory: add 300 entries, remove every fifth of the old.
    for i in 0..300 {
        File::create(p(&format!("many/k{i:04}_{}", "z".repeat(i % 200)))).unwrap();
    }
    let mut old: Vec<_> = fs::read_dir(p("many"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('f'))
        .collect();
    old.sort();
    for name in old.iter().step_by(5) {
        fs::remove_file(p("many").join(name)).unwrap();
    }
    // Grow, overwrite, truncate.
    OpenOptions::new()
        .append(true)
        .open(p("files/tiny"))
        .unwrap()
        .write_all_at(b"appended\n", 12)
        .unwrap();
    let big = OpenOptions::new()
        .write(true)
        .open(p("files/big_50m"))
        .unwrap();
    big.write_all_at(&pattern(1 << 20, 88), 20 << 20).unwrap();
    File::options()
        .write(true)
        .open(p("files/sparse"))
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    // Delete and rename.
    fs::remove_file(p("hardlinks/pair2")).unwrap();
    fs::remove_file(p("links/slow200")).unwrap();
    fs::remove_dir_all(p("dirs/a/b/c/d")).unwrap();
    fs::rename(p("dirs/a/b"), p("dirs/a/b2")).unwrap();
    fs::rename(p("files/few_blocks"), p("new/moved_few_blocks")).unwrap();
    // Attributes.
    xattr::set(&p("files/tiny"), "user.added", b"by the kernel").unwrap();
    let value = pattern(usize::try_from(block_size / 2).unwrap(), 99);
    xattr::set(&p("files/one_block"), "user.half_block", &value).unwrap();
    xattr::remove(&p("xattrs/small"), "user.small").unwrap();
    fs::set_permissions(p("modes/exec_0755"), fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::lchown(p("owned/file"), Some(42), Some(43)).unwrap();
}

#[test]
fn ext4_1k_blocks() {
    roundtrip(&["-t", "ext4"], 1024, true);
}

#[test]
fn ext4_4k_blocks() {
    roundtrip(&["-t", "ext4"], 4096, true);
}

#[test]
fn ext2_block_maps_1k_blocks() {
    roundtrip(&["-t", "ext2"], 1024, true);
}

#[test]
fn ext3_4k_blocks() {
    roundtrip(&["-t", "ext3"], 4096, true);
}

#[test]
fn ext4_orphan_file_and_csum_seed() {
    roundtrip(
        &["-t", "ext4", "-O", "orphan_file,metadata_csum_seed"],
        4096,
        true,
    );
}

#[test]
fn ext4_linear_directories() {
    roundtrip(&["-t", "ext4", "-O", "^dir_index"], 1024, false);
}

#[test]
fn ext4_without_file_types() {
    roundtrip(&["-t", "ext4", "-O", "^filetype"], 4096, true);
}

#[test]
fn source_lost_found_is_replaced_by_a_fresh_one() {
    // Like mke2fs -d: the image gets its own lost+found (mode 0700,
    // pre-grown, empty), not the source's.
    let src = TempDir::new("src");
    fs::create_dir(src.join("lost+found")).unwrap();
    fs::write(src.join("lost+found/#1234"), b"a reconnected file").unwrap();
    fs::write(src.join("kept"), b"kept\n").unwrap();
    let img = TempImage::empty();
    mkfs_ok(&["-d", src.path().to_str().unwrap()], img.path(), "8M");
    assert_e2fsck_clean(img.path());
    let listing = debugfs_r(img.path(), "ls -l /lost+found");
    assert!(!listing.contains("#1234"), "{listing}");
    let stat = debugfs_r(img.path(), "stat /lost+found");
    assert!(stat.contains("Mode:  0700"), "{stat}");
    assert!(debugfs_r(img.path(), "ls /").contains("kept"));
}
