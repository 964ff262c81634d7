//! Unit tests of the image view on images made by mkfs.ext4 and debugfs,
//! some damaged on purpose. (Whole-tree comparisons against a source tree,
//! the e2fsprogs corpus and the random-damage test are integration tests:
//! tests/image_view.rs, tests/image_corpus.rs, tests/image_fuzz.rs.)

use super::*;
use crate::format::superblock::{superblock_csum, CHECKSUM_OFFSET};
use crate::format::test_images::Image;

fn image_bytes(img: &Image) -> Vec<u8> {
    std::fs::read(&img.path).unwrap()
}

/// Rewrites the primary superblock's checksum after a change.
fn fix_sb_csum(bytes: &mut [u8]) {
    let sb = &mut bytes[1024..2048];
    let c = superblock_csum(sb);
    sb[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&c.to_le_bytes());
}

#[test]
fn refuses_buffers_without_a_file_system() {
    assert!(ImageView::open(&[]).is_err());
    assert!(matches!(
        ImageView::open(&[0u8; 4096]),
        Err(FormatError::BadMagic { .. })
    ));
}

#[test]
fn refuses_an_image_shorter_than_its_file_system() {
    let img = Image::mkfs("view-short", 4, 1024, &[]);
    let bytes = image_bytes(&img);
    let err = ImageView::open(&bytes[..3 << 20]).unwrap_err();
    assert!(
        err.to_string().contains("4096 blocks of 1024 bytes"),
        "{err}"
    );
    assert!(ImageView::open(&bytes).is_ok());
}

#[test]
fn names_unknown_incompat_features() {
    let img = Image::mkfs("view-incompat", 4, 1024, &[]);
    let mut bytes = image_bytes(&img);
    let off = 1024 + 0x60; // s_feature_incompat
    let mut v = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
    v |= (1 << 30) | Incompat::ENCRYPT.bits();
    bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
    fix_sb_csum(&mut bytes);
    let err = ImageView::open(&bytes).unwrap_err().to_string();
    assert!(
        err.contains("encrypt") && err.contains("FEATURE_I30"),
        "{err}"
    );
}

#[test]
fn opens_by_a_backup_superblock() {
    let img = Image::mkfs("view-backup", 16, 1024, &[]);
    img.debugfs_script("mkdir d\ncd d\nsymlink l /target\n");
    let mut bytes = image_bytes(&img);
    bytes[1024..2048].fill(0);
    assert!(ImageView::open(&bytes).is_err());
    let view = ImageView::open_with_superblock(&bytes, 1).unwrap();
    assert_eq!(view.superblock_group(), 1);
    assert!(view.bad_group_descs().is_empty());
    let report = view.walk();
    assert!(report.is_clean(), "{:?}", report.errors);
    assert_eq!((report.dirs, report.symlinks), (3, 1));
    let l = view.lookup_path(b"/d/l").unwrap().unwrap();
    assert_eq!(view.read_link(l).unwrap(), b"/target");
    assert!(ImageView::open_with_superblock(&bytes, 5).is_err());
}

#[test]
fn a_bad_inode_checksum_is_reported_with_inode_and_path() {
    let img = Image::mkfs("view-icsum", 4, 1024, &[]);
    img.debugfs_script("mkdir dir\ncd dir\nmknod p p\n");
    let bytes = image_bytes(&img);
    let view = ImageView::open(&bytes).unwrap();
    let ino = view.lookup_path(b"/dir/p").unwrap().unwrap();
    let raw = view.inode_raw(ino).unwrap();
    let off = raw.as_ptr() as usize - bytes.as_ptr() as usize;
    let mut bad = bytes.clone();
    bad[off + 0x10] ^= 0x40; // i_mtime
    let view = ImageView::open(&bad).unwrap();
    assert!(matches!(
        view.inode(ino),
        Err(FormatError::BadChecksum { what: "inode", .. })
    ));
    let report = view.walk();
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_eq!(report.errors[0].ino, ino);
    assert_eq!(report.errors[0].path, "/dir/p");
}

#[test]
fn a_directory_loop_is_reported_and_the_walk_ends() {
    let img = Image::mkfs("view-loop", 4, 1024, &[]);
    img.debugfs_script("mkdir a\nmkdir a/b\nln a a/b/up\n");
    let bytes = image_bytes(&img);
    let view = ImageView::open(&bytes).unwrap();
    let report = view.walk();
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.path == "/a/b/up" && e.to_string().contains("second time")),
        "{:?}",
        report.errors
    );
    assert_eq!(report.dirs, 4); // /, lost+found, a, b
}

#[test]
fn unwritten_extents_and_holes_read_as_zeros() {
    let img = Image::mkfs("view-unwritten", 4, 1024, &[]);
    let data = img.path.with_extension("data");
    std::fs::write(&data, vec![0xabu8; 2048]).unwrap();
    img.debugfs_script(&format!(
        "write {} f\nfallocate f 10 19\nsif f size 30720\n",
        data.display()
    ));
    let bytes = image_bytes(&img);
    let view = ImageView::open(&bytes).unwrap();
    let ino = view.lookup_path(b"/f").unwrap().unwrap();
    let inode = view.inode(ino).unwrap();
    let runs = view.file_blocks(ino, &inode).unwrap();
    assert!(
        runs.iter().any(|r| r.unwritten && r.logical == 10),
        "{runs:?}"
    );
    let got = view.read_file(ino, 0, 1 << 20).unwrap();
    assert_eq!(got.len(), 30720);
    assert!(got[..2048].iter().all(|&b| b == 0xab));
    assert!(got[2048..].iter().all(|&b| b == 0));
    assert!(view.walk().is_clean());
}

#[test]
fn corrupt_directory_blocks_fail_read_dir_but_not_the_walk() {
    let img = Image::mkfs("view-dirblk", 4, 1024, &["-O", "^metadata_csum"]);
    img.debugfs_script("mkdir d\nmkdir d/sub\ncd d\nmknod p p\n");
    let bytes = image_bytes(&img);
    let view = ImageView::open(&bytes).unwrap();
    let d = view.lookup_path(b"/d").unwrap().unwrap();
    let inode = view.inode(d).unwrap();
    let blk = view.file_blocks(d, &inode).unwrap()[0].phys;
    let mut bad = bytes.clone();
    let off = usize::try_from(blk).unwrap() * 1024 + 12 + 4; // rec_len of ".."
    bad[off] = 0x03;
    let view = ImageView::open(&bad).unwrap();
    assert!(view.read_dir(d).is_err());
    let report = view.walk();
    assert!(!report.is_clean());
    assert!(
        report.errors.iter().all(|e| e.ino == d),
        "{:?}",
        report.errors
    );
}
