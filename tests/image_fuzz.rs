//! Robustness of the image reader on damaged images: small populated
//! images made by mke2fs at test time get random bytes of their metadata
//! blocks (superblock, descriptors, bitmaps, inode tables, directory,
//! extent, indirect, symlink and xattr blocks) overwritten, a few hundred
//! times with a seeded RNG. Opening, walking and every reader must return
//! (values or errors), never panic, and finish in bounded time.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;
use fext::format::image::ImageView;

/// Time one damaged image may take (debug build).
const LIMIT: Duration = Duration::from_secs(10);
/// Damaged images per configuration (`FEXT_FUZZ_ITERATIONS` overrides).
const ITERATIONS: u64 = 400;

fn iterations() -> u64 {
    std::env::var("FEXT_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ITERATIONS)
}

/// xorshift64: deterministic, good enough to pick bytes.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A small tree: files with holes, a directory big enough for an htree
/// index, fast and slow symlinks, xattrs in the inode and in a block.
fn make_tree(dir: &Path) {
    fs::create_dir_all(dir.join("d/e")).expect("mkdir");
    fs::write(dir.join("small"), b"hello\n").expect("write");
    fs::write(dir.join("d/e/f"), vec![7u8; 20_000]).expect("write");
    let f = fs::File::create(dir.join("sparse")).expect("create");
    f.write_all_at(&[1u8; 3000], 0).expect("write");
    f.write_all_at(&[2u8; 3000], 200_000).expect("write");
    fs::create_dir(dir.join("big")).expect("mkdir");
    for i in 0..120 {
        fs::write(dir.join(format!("big/entry-with-a-long-name-{i:04}")), b"x").expect("write");
    }
    std::os::unix::fs::symlink("small", dir.join("fast")).expect("symlink");
    std::os::unix::fs::symlink("s".repeat(200), dir.join("slow")).expect("symlink");
    xattr::set(&dir.join("small"), "user.a", b"in the inode").expect("setxattr");
    xattr::set(&dir.join("d/e/f"), "user.big", &[9u8; 700]).expect("setxattr");
}

/// Every metadata block of a clean image, found through the reader itself.
fn metadata_blocks(view: &ImageView<'_>) -> Vec<u64> {
    let mut set = BTreeSet::new();
    let geo = view.geometry().clone();
    for (g, info) in (0u32..).zip(view.groups()) {
        let start = geo.group_first_block(g);
        for b in start..start + u64::from(geo.base_meta_blocks(g)) {
            set.insert(b);
        }
        set.insert(info.desc.block_bitmap);
        set.insert(info.desc.inode_bitmap);
        for b in 0..u64::from(geo.inode_table_blocks) {
            set.insert(info.desc.inode_table + b);
        }
    }
    let sb = view.superblock();
    for ino in 1..=sb.f.inodes_count {
        let Ok(inode) = view.inode(ino) else { continue };
        if inode.links_count == 0 && ino > 11 {
            continue;
        }
        if inode.file_acl != 0 {
            set.insert(inode.file_acl);
        }
        let Ok(map) = view.file_map(ino, &inode) else {
            continue;
        };
        set.extend(map.meta_blocks.iter().copied());
        if inode.is_dir() || inode.is_symlink() {
            for r in &map.runs {
                set.extend(r.phys..r.phys + u64::from(r.len));
            }
        }
    }
    set.into_iter().collect()
}

/// Everything the reader offers, on a damaged image; results ignored.
fn exercise(bytes: &[u8]) -> u64 {
    let Ok(view) = ImageView::open(bytes) else {
        return 0;
    };
    let report = view.walk();
    let _ = view.journal_superblock();
    let _ = view.orphan_file_entries();
    let _ = view.orphan_list();
    let inodes = view.superblock().f.inodes_count.min(200);
    for ino in 1..=inodes {
        if let Ok(inode) = view.inode(ino) {
            let _ = view.file_map(ino, &inode);
            let _ = view.inline_data(ino, &inode);
        }
        let _ = view.inode_raw(ino);
        let _ = view.read_file(ino, 0, 1 << 20);
        let _ = view.read_file(ino, 1000, 5000);
        let _ = view.read_dir(ino);
        let _ = view.lookup(ino, b"entry-with-a-long-name-0042");
        let _ = view.lookup(ino, b"small");
        let _ = view.read_link(ino);
        let _ = view.xattrs(ino);
    }
    let _ = view.lookup_path(b"/big/entry-with-a-long-name-0007");
    report.error_count()
}

fn fuzz(tag: &str, mke2fs_args: &[&str], seed: u64) {
    let src = TempDir::new("fuzz-src");
    make_tree(src.path());
    let src_arg = src.path().to_str().expect("utf-8").to_string();
    let mut args = mke2fs_args.to_vec();
    args.extend_from_slice(&["-N", "256"]);
    args.extend_from_slice(&["-d", &src_arg]);
    let img = mke2fs_image(&args, "1M");
    let out = Cmd::new("e2fsck")
        .arg("-fyD")
        .arg(img.path())
        .env("E2FSCK_CONFIG", "/dev/null")
        .output();
    assert!(out.code <= 1, "e2fsck -fyD:\n{out}");
    assert_e2fsck_clean(img.path());
    let clean = fs::read(img.path()).expect("read image");
    let view = ImageView::open(&clean).expect("open clean image");
    let report = view.walk();
    assert!(report.is_clean(), "{tag}: clean image: {:?}", report.errors);
    let meta = metadata_blocks(&view);
    let bs = view.block_size();
    assert!(
        meta.len() > 10,
        "{tag}: only {} metadata blocks",
        meta.len()
    );

    let mut rng = XorShift(seed);
    let mut damaged_walks = 0;
    let iterations = iterations();
    for iter in 0..iterations {
        let mut bytes = clean.clone();
        let flips = 1 + rng.below(8);
        let mut touched = Vec::new();
        for _ in 0..flips {
            let block = meta[usize::try_from(rng.below(meta.len() as u64)).expect("index")];
            let off = block as usize * bs + rng.below(bs as u64) as usize;
            if let Some(b) = bytes.get_mut(off) {
                // Mostly random bytes, sometimes the extremes.
                *b = match rng.below(4) {
                    0 => 0,
                    1 => 0xff,
                    _ => rng.next() as u8,
                };
                touched.push(off);
            }
        }
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(|| exercise(&bytes)));
            let _ = tx.send(r);
        });
        match rx.recv_timeout(LIMIT) {
            Ok(Ok(errors)) => damaged_walks += u64::from(errors > 0),
            Ok(Err(_)) => panic!("{tag}: iteration {iter} panicked (bytes changed at {touched:?})"),
            Err(_) => panic!("{tag}: iteration {iter} did not finish in {LIMIT:?} ({touched:?})"),
        }
    }
    eprintln!("{tag}: {iterations} damaged images, {damaged_walks} walks reported errors");
    assert!(damaged_walks > 0, "{tag}: no damage was ever detected");
}

#[test]
fn damaged_ext4_metadata_csum_images_never_panic() {
    fuzz("ext4", &["-t", "ext4", "-b", "1024"], 0x1234_5678_9abc_def1);
}

#[test]
fn damaged_ext4_images_without_checksums_never_panic() {
    fuzz(
        "ext4-nocsum",
        &[
            "-t",
            "ext4",
            "-b",
            "1024",
            "-O",
            "^metadata_csum,^has_journal",
        ],
        0x0bad_cafe_f00d_d00d,
    );
}

#[test]
fn damaged_ext2_images_never_panic() {
    fuzz("ext2", &["-t", "ext2", "-b", "1024"], 0x5eed_5eed_5eed_5eed);
}

#[test]
fn damaged_inline_data_images_never_panic() {
    fuzz(
        "inline",
        &[
            "-t",
            "ext4",
            "-b",
            "1024",
            "-O",
            "inline_data,^metadata_csum",
        ],
        0x0123_4567_89ab_cdef,
    );
}
