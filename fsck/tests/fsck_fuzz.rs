//! Random damage: bytes of the metadata area of small images (superblock,
//! descriptors, bitmaps, inode tables, directory and mapping blocks) are
//! overwritten with a fixed-seed generator, and every damaged image must
//! come through fsck-fext without a crash or a time-out, `-n` must not
//! change a byte, and `-y` must never leave an image e2fsck could open
//! unopenable. Most must be repaired outright (e2fsck -fn clean after one
//! `fsck-fext -fy`).

#[path = "../../tests/common/mod.rs"]
mod common;
mod fsckutil;

use std::time::Duration;

use common::e2fs::e2fsck_fn_timeout;
use common::*;
use fsckutil::*;

/// xorshift64*: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A small source tree: nested directories, 60 small files, a 300 KB
/// file (indirect blocks / several extents), a symlink, a 200-entry
/// directory.
fn tree() -> TempDir {
    let dir = TempDir::new("fsck-fuzz-tree");
    let p = |s: &str| dir.join(s);
    std::fs::create_dir_all(p("a/b/c")).unwrap();
    std::fs::create_dir_all(p("d")).unwrap();
    for i in 0..60 {
        std::fs::write(p(&format!("a/f{i}")), format!("file {i}\n")).unwrap();
    }
    std::fs::write(p("big"), common::richtree::pattern(300_000, 7)).unwrap();
    std::os::unix::fs::symlink("a/f1", p("sym")).unwrap();
    for i in 0..200 {
        std::fs::write(p(&format!("d/name_{i}")), b"").unwrap();
    }
    dir
}

fn e2fsck_opens(rc: i32) -> bool {
    rc == 124 || rc & 8 == 0
}

/// `rounds` damaged copies of `base`, damage within the first `span` bytes
/// (past the boot block); returns (repaired, rounds).
fn fuzz(base: &std::path::Path, span: u64, rounds: usize, seed: u64) -> (usize, usize) {
    let data = std::fs::read(base).unwrap();
    let mut rng = Rng(seed);
    let mut repaired = 0;
    let mut failures = Vec::new();
    for round in 0..rounds {
        let mut d = data.clone();
        let n = [1, 2, 4, 8, 32][rng.below(5) as usize];
        for _ in 0..n {
            let off = 1024 + rng.below(span - 1024) as usize;
            d[off] = rng.below(256) as u8;
        }
        let img = TempImage::empty();
        std::fs::write(img.path(), &d).unwrap();
        let (before, _) = e2fsck_fn_timeout(img.path(), Duration::from_secs(60));
        let out = fsck(&["-fn"], img.path());
        if out.timed_out || crashed(&out) {
            failures.push(format!(
                "round {round}: -fn: exit {} {}",
                out.code, out.stderr
            ));
            continue;
        }
        if std::fs::read(img.path()).unwrap() != d {
            failures.push(format!("round {round}: -fn changed the image"));
            continue;
        }
        let out = fsck(&["-fy"], img.path());
        if out.timed_out || crashed(&out) {
            failures.push(format!(
                "round {round}: -fy: exit {} {}",
                out.code, out.stderr
            ));
            continue;
        }
        let (after, text) = e2fsck_fn_timeout(img.path(), Duration::from_secs(60));
        if e2fsck_opens(before) && !e2fsck_opens(after) {
            failures.push(format!(
                "round {round}: made worse ({before} -> {after}):\n{text}"
            ));
        }
        if after == 0 {
            repaired += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{}:\n{}",
        base.display(),
        failures.join("\n")
    );
    println!("seed {seed}: e2fsck -fn clean after fsck-fext -fy: {repaired}/{rounds}");
    (repaired, rounds)
}

#[test]
fn random_damage_ext4_1k() {
    let t = tree();
    let img = mke2fs_image(
        &["-t", "ext4", "-b", "1024", "-d", t.path().to_str().unwrap()],
        "8M",
    );
    let (ok, n) = fuzz(img.path(), 600 << 10, 150, 1);
    assert!(ok * 10 >= n * 8, "repaired {ok}/{n}");
}

#[test]
fn random_damage_ext2_1k() {
    let t = tree();
    let img = mke2fs_image(
        &["-t", "ext2", "-b", "1024", "-d", t.path().to_str().unwrap()],
        "8M",
    );
    let (ok, n) = fuzz(img.path(), 600 << 10, 150, 2);
    assert!(ok * 10 >= n * 8, "repaired {ok}/{n}");
}

#[test]
fn random_damage_ext4_4k_inline_data() {
    let t = tree();
    let img = mke2fs_image(
        &[
            "-t",
            "ext4",
            "-b",
            "4096",
            "-O",
            "inline_data",
            "-d",
            t.path().to_str().unwrap(),
        ],
        "16M",
    );
    let (ok, n) = fuzz(img.path(), 1100 << 10, 150, 3);
    assert!(ok * 10 >= n * 8, "repaired {ok}/{n}");
}

#[test]
fn random_damage_ext4_4k_bigalloc_quota_orphan_file() {
    let t = tree();
    let src = t.path().to_str().unwrap();
    let img = mke2fs_image(
        &[
            "-t",
            "ext4",
            "-b",
            "4096",
            "-O",
            "bigalloc,quota,orphan_file",
            "-C",
            "16384",
            "-d",
            src,
        ],
        "32M",
    );
    // mke2fs -d leaves the quota files stale: start from a consistent image.
    let (code, out) = e2fsck_fy(img.path());
    assert!(code <= 1, "{out}");
    let (ok, n) = fuzz(img.path(), 1100 << 10, 150, 4);
    assert!(ok * 10 >= n * 8, "repaired {ok}/{n}");
}
