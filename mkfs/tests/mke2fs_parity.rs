//! Acceptance: a default `mkfs.fext IMG SIZE` has the same features and
//! geometry as `mkfs.ext4 IMG SIZE` (Debian's e2fsprogs 1.47 defaults),
//! and likewise for `-t ext2`, `-t ext3` and the other profiles: every
//! field `dumpe2fs -h` prints must agree, except those that are random or
//! time-dependent (UUID, hash seed, checksum seed, checksums, times,
//! lifetime writes).
//!
//! mkfs.fext's defaults are Debian's stock `/etc/mke2fs.conf`; the test
//! pins mke2fs to that configuration (`MKE2FS_CONFIG`), so a host with
//! another configuration (e.g. upstream's, which adds orphan_file) still
//! compares like with like.

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use common::{Cmd, Dumpe2fs, TempDir, TempImage};
use support::mkfs_ok;

/// Debian's stock mke2fs.conf (e2fsprogs 1.47.0), the profile mkfs.fext
/// follows.
const DEBIAN_MKE2FS_CONF: &str = "\
[defaults]
\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
\tdefault_mntopts = acl,user_xattr
\tenable_periodic_fsck = 0
\tblocksize = 4096
\tinode_size = 256
\tinode_ratio = 16384

[fs_types]
\text3 = {
\t\tfeatures = has_journal
\t}
\text4 = {
\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
\t}
\tsmall = {
\t\tblocksize = 1024
\t\tinode_ratio = 4096
\t}
\tfloppy = {
\t\tblocksize = 1024
\t\tinode_ratio = 8192
\t}
\tbig = {
\t\tinode_ratio = 32768
\t}
\thuge = {
\t\tinode_ratio = 65536
\t}
";

/// `dumpe2fs -h` fields that legitimately differ between two mkfs runs.
const INSTANCE_FIELDS: &[&str] = &[
    "Filesystem UUID",
    "Directory Hash Seed",
    "Checksum seed",
    "Checksum",
    "Journal checksum",
    "Filesystem created",
    "Last mount time",
    "Last write time",
    "Last checked",
    "Lifetime writes",
];

/// Fields that must be present (so a parse failure cannot pass silently).
const GEOMETRY_FIELDS: &[&str] = &[
    "Filesystem features",
    "Block count",
    "Inode count",
    "Block size",
    "Blocks per group",
    "Inodes per group",
    "Inode size",
    "Reserved block count",
    "Free blocks",
    "Free inodes",
    "Overhead clusters",
];

/// `mkfs.ext4 ARGS IMG SIZE` under Debian's configuration.
fn mke2fs(args: &[&str], size: &str) -> TempImage {
    let conf_dir = TempDir::new("mke2fs-conf");
    let conf = conf_dir.join("mke2fs.conf");
    std::fs::write(&conf, DEBIAN_MKE2FS_CONF).expect("write mke2fs.conf");
    let img = TempImage::empty();
    Cmd::new("mkfs.ext4")
        .args(["-q", "-F"])
        .args(args)
        .arg(img.path())
        .arg(size)
        .env("MKE2FS_CONFIG", &conf)
        .run_ok();
    img
}

fn dump(img: &TempImage) -> Dumpe2fs {
    let out = Cmd::new("dumpe2fs").arg("-h").arg(img.path()).run_ok();
    Dumpe2fs::parse(&out.stdout)
}

/// Make both images with `args` at each size and compare every field.
fn compare(args: &[&str], sizes: &[&str]) {
    let mut problems = Vec::new();
    for size in sizes {
        let ours = TempImage::empty();
        mkfs_ok(args, ours.path(), size);
        let theirs = mke2fs(args, size);
        let (a, b) = (dump(&ours), dump(&theirs));
        for key in GEOMETRY_FIELDS {
            a.value(key);
            b.value(key);
        }
        let keys: std::collections::BTreeSet<&String> =
            a.fields.keys().chain(b.fields.keys()).collect();
        for key in keys {
            if INSTANCE_FIELDS.contains(&key.as_str()) {
                continue;
            }
            let (va, vb) = (a.get(key), b.get(key));
            if va != vb {
                problems.push(format!(
                    "{args:?} {size}: {key}: mkfs.fext {va:?} vs mkfs.ext4 {vb:?}"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "mkfs.fext and mkfs.ext4 disagree:\n{}",
        problems.join("\n")
    );
}

const SIZES: &[&str] = &["8M", "300M", "5G"];

#[test]
fn default_ext4_matches_mke2fs() {
    compare(&[], SIZES);
}

#[test]
fn ext2_matches_mke2fs() {
    compare(&["-t", "ext2"], SIZES);
}

#[test]
fn ext3_matches_mke2fs() {
    compare(&["-t", "ext3"], SIZES);
}

#[test]
fn ext4_4k_blocks_match_mke2fs() {
    compare(&["-b", "4096"], &["8M", "300M"]);
}

#[test]
fn ext4_orphan_file_and_csum_seed_match_mke2fs() {
    compare(&["-O", "orphan_file,metadata_csum_seed"], SIZES);
}

#[test]
fn ext4_without_metadata_csum_matches_mke2fs() {
    compare(&["-O", "^metadata_csum"], SIZES);
}

#[test]
fn explicit_options_match_mke2fs() {
    // Options that steer the planner: inode count and ratio, inode size,
    // reserved percentage, journal size, flex group size, label.
    for args in [
        &["-N", "5000"][..],
        &["-i", "65536"],
        &["-I", "512"],
        &["-m", "1"],
        &["-J", "size=16"],
        &["-G", "4"],
        &["-L", "fext-label"],
        &["-O", "^resize_inode"],
        &["-O", "^has_journal,^flex_bg"],
    ] {
        compare(args, &["300M", "5G"]);
    }
}

#[test]
fn tiny_image_without_room_for_a_journal_matches_mke2fs() {
    // 3 MiB at 4 KiB blocks is under mke2fs' 2048-block minimum for a
    // journal: both make the file system without one and say so.
    let ours = TempImage::empty();
    let out = support::mkfs(&["-q", "-b", "4096", ours.path().to_str().unwrap(), "3M"]);
    assert!(out.success(), "{out}");
    assert!(out.stderr.contains("journal"), "a warning expected:\n{out}");
    compare(&["-b", "4096", "-O", "^has_journal"], &["3M"]);
    let d = dump(&ours);
    assert!(!d.has_feature("has_journal"), "{}", d.raw);
    common::assert_e2fsck_clean(ours.path());
}
