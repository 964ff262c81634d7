//! Clean file systems must check clean: images made by mkfs.fext (the
//! library) and by the system's mke2fs, ext2/ext3/ext4, empty and filled
//! from a tree with every file type (`mke2fs -d` / `mkfs.fext -d`).
//! `fsck-fext -fn` exits 0 printing only the summary line; without `-f`
//! a clean file system is not checked (`IMAGE: clean, ...`); `-fy` on a
//! clean file system changes nothing but the last-check time.

#[path = "../../tests/common/mod.rs"]
mod common;
mod fsckutil;

use std::path::Path;

use common::*;
use fext::mkfs::format::{make_filesystem, Silent};
use fext::mkfs::options::{parse_feature_edits, FsType, MkfsOptions};
use fsckutil::*;

/// A small rich tree (no 50 MiB files) in a fresh temp dir.
fn small_tree(block_size: u32) -> TempDir {
    temp_rich_tree(
        "fsck-tree",
        &RichTreeOpts {
            big_files: false,
            many_entries: 2000,
            block_size,
        },
    )
}

/// Both checkers find `image` clean; the quick check says "clean"; `-fy`
/// and `-p` exit 0.
#[track_caller]
fn check_clean(image: &Path) {
    assert_e2fsck_clean(image);
    assert_fsck_clean(&["-fn"], image);
    let quick = fsck(&["-n"], image);
    assert!(
        quick.code == 0 && quick.stdout.contains(": clean, ") && quick.stdout.lines().count() == 1,
        "fsck-fext -n on a clean file system: exit {}\n{}{}",
        quick.code,
        quick.stdout,
        quick.stderr
    );
    let copy = TempImage::copy_of(image);
    assert_fsck_clean(&["-fy"], copy.path());
    assert_fsck_clean(&["-fp"], copy.path());
    assert_e2fsck_clean(copy.path());
}

fn mkfs_fext(
    fs_type: FsType,
    block_size: Option<u32>,
    features: &str,
    src: Option<&Path>,
) -> TempImage {
    let img = TempImage::empty();
    let opts = MkfsOptions {
        fs_type,
        block_size,
        feature_edits: parse_feature_edits(features),
        source_dir: src.map(Path::to_owned),
        quiet: true,
        ..MkfsOptions::default()
    };
    make_filesystem(img.path(), Some(64 << 20), &opts, &mut Silent).expect("mkfs.fext");
    img
}

#[test]
fn mkfs_fext_empty_images_are_clean() {
    for (t, bs) in [
        (FsType::Ext2, Some(1024)),
        (FsType::Ext2, None),
        (FsType::Ext3, None),
        (FsType::Ext4, None),
        (FsType::Ext4, Some(1024)),
    ] {
        check_clean(mkfs_fext(t, bs, "", None).path());
    }
    check_clean(mkfs_fext(FsType::Ext4, None, "^metadata_csum", None).path());
}

#[test]
fn mkfs_fext_populated_images_are_clean() {
    let tree = small_tree(4096);
    for t in [FsType::Ext2, FsType::Ext3, FsType::Ext4] {
        check_clean(mkfs_fext(t, Some(4096), "", Some(tree.path())).path());
    }
    let tree1k = small_tree(1024);
    check_clean(mkfs_fext(FsType::Ext4, Some(1024), "", Some(tree1k.path())).path());
}

#[test]
fn mke2fs_empty_images_are_clean() {
    for args in [
        &["-t", "ext2", "-b", "1024"][..],
        &["-t", "ext3"],
        &["-t", "ext4"],
        &["-t", "ext4", "-b", "1024"],
        &["-t", "ext4", "-O", "bigalloc", "-C", "16384"],
        &["-t", "ext4", "-O", "meta_bg,64bit,^resize_inode"],
        &["-t", "ext4", "-O", "orphan_file"],
        &["-t", "ext4", "-O", "^metadata_csum,uninit_bg"],
        &["-t", "ext4", "-O", "^has_journal,^flex_bg"],
    ] {
        let img = mke2fs_image(args, "64M");
        check_clean(img.path());
    }
}

#[test]
fn mke2fs_populated_images_are_clean() {
    let tree = small_tree(4096);
    let src = tree.path().to_str().expect("utf-8 temp path");
    for args in [
        &["-t", "ext2", "-b", "4096"][..],
        &["-t", "ext3", "-b", "4096"],
        &["-t", "ext4", "-b", "4096"],
        &["-t", "ext4", "-b", "4096", "-O", "inline_data"],
        &["-t", "ext4", "-b", "4096", "-I", "128"],
        &[
            "-t",
            "ext4",
            "-b",
            "4096",
            "-O",
            "ea_inode,large_dir,huge_file",
        ],
        &["-t", "ext4", "-b", "4096", "-O", "orphan_file"],
        &[
            "-t", "ext4", "-b", "4096", "-O", "bigalloc", "-C", "65536", "-i", "16384",
        ],
    ] {
        let mut a = args.to_vec();
        a.extend(["-d", src]);
        let img = mke2fs_image(&a, "96M");
        check_clean(img.path());
    }
    let tree1k = small_tree(1024);
    let src1k = tree1k.path().to_str().expect("utf-8 temp path");
    for fs_type in ["ext2", "ext4"] {
        let img = mke2fs_image(&["-t", fs_type, "-b", "1024", "-d", src1k], "96M");
        check_clean(img.path());
    }
}

#[test]
fn quota_images_made_consistent_by_e2fsck_are_clean() {
    // mke2fs -d does not charge the copied files to the quota files; after
    // e2fsck -fy they agree with the usage, and fsck-fext must agree too.
    let tree = small_tree(4096);
    let src = tree.path().to_str().expect("utf-8 temp path");
    for features in [
        "quota",
        "quota,project",
        "quota,orphan_file",
        "quota,bigalloc",
    ] {
        let img = mke2fs_image(
            &[
                "-t", "ext4", "-b", "4096", "-I", "256", "-i", "16384", "-O", features, "-d", src,
            ],
            "96M",
        );
        let (code, out) = e2fsck_fy(img.path());
        assert!(code <= 1, "e2fsck -fy: {code}\n{out}");
        check_clean(img.path());
    }
}

#[test]
fn usage_errors_exit_16() {
    let out = Cmd::new(FSCK).timeout(LIMIT).output();
    assert_eq!(out.code, 16, "no device: {}", out.combined());
    let img = mke2fs_image(&["-t", "ext4"], "16M");
    let out = fsck(&["-n", "-y"], img.path());
    assert_eq!(out.code, 16, "-n with -y: {}", out.combined());
    let out = fsck(&["-fn"], Path::new("/nonexistent/image"));
    assert_eq!(out.code, 8, "missing image: {}", out.combined());
}

#[test]
fn no_terminal_and_no_mode_behaves_like_n() {
    let img = mke2fs_image(&["-t", "ext4"], "16M");
    debugfs_w(img.path(), &["sif <2> links_count 7"]);
    let before = std::fs::read(img.path()).unwrap();
    let out = fsck(&["-f"], img.path());
    assert_eq!(out.code, 4, "{}", out.combined());
    assert!(
        out.combined().contains("-n"),
        "says it runs as -n:\n{}",
        out.combined()
    );
    assert!(
        std::fs::read(img.path()).unwrap() == before,
        "changed without a terminal"
    );
}

#[test]
fn progress_bar_on_fd_0_and_verbose_statistics() {
    let tree = small_tree(4096);
    let img = mke2fs_image(
        &[
            "-t",
            "ext4",
            "-b",
            "4096",
            "-d",
            tree.path().to_str().unwrap(),
        ],
        "64M",
    );
    let out = fsck(&["-fn", "-C", "0"], img.path());
    assert_eq!(out.code, 0, "{}", out.combined());
    let out = fsck(&["-fnv"], img.path());
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        out.stdout.contains("regular files") && out.stdout.contains("directories"),
        "{}",
        out.stdout
    );
}

#[test]
fn large_sparse_image_in_every_mode() {
    // 64 GiB, sparse: more than this machine's memory, so the writable
    // (copy-on-write) mapping must not reserve swap for the whole image.
    let img = TempImage::empty();
    let opts = MkfsOptions {
        fs_type: FsType::Ext4,
        quiet: true,
        ..MkfsOptions::default()
    };
    make_filesystem(img.path(), Some(64 << 30), &opts, &mut Silent).expect("mkfs.fext");
    check_clean(img.path());
    debugfs_w(img.path(), &["sif <2> links_count 9"]);
    let out = fsck(&["-fy"], img.path());
    assert_eq!(out.code, 1, "{}", out.combined());
    assert_e2fsck_clean(img.path());
}
