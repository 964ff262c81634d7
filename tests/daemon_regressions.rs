//! Gaps between fext and ext4 that the end-to-end suite found and that
//! are now closed (their reproducers, moved out of tests/pending/).

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use common::sys;
use common::*;

fn mount() -> (TempDir, FextMount) {
    let dir = TempDir::new("gaps");
    let img = dir.join("img");
    make_fext_image(&img, 64 << 20, "ext4", Some(4096), "");
    let m = FextMount::new(&img, "");
    (dir, m)
}

/// SEEK_DATA/SEEK_HOLE must never call data a hole. With FUSE's writeback
/// cache (`-o writeback_cache`) the written bytes can still sit in the kernel's
/// page cache (FUSE does not flush before FUSE_LSEEK), so a daemon that
/// answered from its own state alone would say "hole": SEEK_DATA 0 ->
/// ENXIO for a file with data at 0, and `cp`, `tar --sparse` and other
/// sparse-aware copiers would skip data. fext has the kernel write its
/// dirty pages first and then answers exactly, holes included; with one
/// FUSE thread too (the thread must stay free to take those writes).
#[test]
fn seek_data_sees_unflushed_writes() {
    if !require_root("a FUSE mount") {
        return;
    }
    let dir = TempDir::new("seek");
    let img = dir.join("img");
    make_fext_image(&img, 64 << 20, "ext4", Some(4096), "");
    for options in ["", "writeback_cache", "writeback_cache,threads=1"] {
        let m = FextMount::new(&img, options);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(m.join("f"))
            .unwrap();
        f.write_all_at(b"data at zero", 0).unwrap();
        f.write_all_at(&[7u8; 65536], 1 << 20).unwrap();
        assert_eq!(sys::lseek(&f, 0, libc::SEEK_DATA).unwrap(), 0, "{options}");
        let data_after_hole = sys::lseek(&f, 4096, libc::SEEK_DATA).unwrap();
        let hole = sys::lseek(&f, 0, libc::SEEK_HOLE).unwrap();
        assert_eq!((data_after_hole, hole), (1 << 20, 4096), "{options}");
        drop(f);
        m.unmount();
    }
    assert_e2fsck_clean(&img);
}

/// A directory has at least one block on ext4, so st_size >= the block
/// size; on fext a directory created since the last write-back reports
/// st_size 0 (and st_blocks 0) until write-back gives it blocks.
#[test]
fn new_directory_has_a_size() {
    if !require_root("a FUSE mount") {
        return;
    }
    let (_dir, m) = mount();
    fs::create_dir(m.join("d")).unwrap();
    fs::write(m.join("d/x"), b"x").unwrap();
    // Past the attribute cache timeout (1 s), so the daemon is asked.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let md = fs::metadata(m.join("d")).unwrap();
    assert!(md.size() >= 4096, "directory size {}", md.size());
    assert!(md.blocks() >= 8, "directory blocks {}", md.blocks());
    m.unmount();
}

/// Removing one name of a hard-linked file while other tasks list the
/// directory of its other name: the kernel's FUSE client lowers its cached
/// link count by itself after the UNLINK reply, and a READDIRPLUS reply
/// carrying the already lowered count could be applied first, so the
/// count was lowered twice, reached 0, and the next `link()` of the file
/// failed with ENOENT inside the kernel (see src/fuse/link_count.rs).
/// Without the guard that failed in 0.16-0.45% of the rounds here (14 of
/// 8,587 in one run); with it, no failure in about 200,000 rounds and one
/// in a CI run under heavy load. So this counts the failures (a `stat`
/// repairs the count) and requires fewer than 1 in 2,000 rounds: far
/// below the unguarded rate, with room for the rare residual case.
#[test]
fn hard_link_survives_removal_of_its_other_name_during_listings() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    if !require_root("a FUSE mount") {
        return;
    }
    let (dir, m) = mount();
    let (d1, d2) = (m.join("d1"), m.join("d2"));
    fs::create_dir(&d1).unwrap();
    fs::create_dir(&d2).unwrap();
    let a = d1.join("a");
    fs::write(&a, b"x").unwrap();
    let stop = AtomicBool::new(false);
    let (rounds, failures) = std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    for e in fs::read_dir(&d1).unwrap() {
                        e.unwrap();
                    }
                }
            });
        }
        let linker = s.spawn(|| {
            let (mut rounds, mut failures) = (0u32, Vec::new());
            // A link that fails with ENOENT is counted; `stat` then
            // refreshes the count (GETATTR is not guarded) and the round
            // goes on.
            let mut link = |from: &Path, to: &Path, rounds: u32| -> bool {
                for _ in 0..3 {
                    match fs::hard_link(from, to) {
                        Ok(()) => return true,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            failures.push(format!("round {rounds}: {e}"));
                            fs::metadata(from).unwrap();
                        }
                        Err(e) => panic!("round {rounds}: link: {e}"),
                    }
                }
                false
            };
            // At least 4 s and 4,000 rounds (so one residual failure is
            // within the bound), at most 30 s.
            let start = Instant::now();
            let more = |rounds: u32| {
                let t = start.elapsed();
                (t < Duration::from_secs(4) || rounds < 4000) && t < Duration::from_secs(30)
            };
            while more(rounds) {
                rounds += 1;
                assert!(link(&a, &d2.join("b"), rounds), "link a -> b keeps failing");
                fs::remove_file(d2.join("b")).unwrap();
                assert!(link(&a, &d1.join("c"), rounds), "link a -> c keeps failing");
                fs::remove_file(d1.join("c")).unwrap();
            }
            (rounds, failures)
        });
        let r = linker.join();
        stop.store(true, Ordering::Relaxed);
        r.unwrap()
    });
    assert!(rounds > 1000, "only {rounds} rounds ran");
    assert!(
        failures.len() * 2000 < rounds as usize,
        "{} of {rounds} rounds had a link fail: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(fs::metadata(&a).unwrap().nlink(), 1);
    m.unmount();
    assert_e2fsck_clean(&dir.join("img"));
}

/// A large directory read back by a fresh daemon lists every entry once,
/// with the right inode number, type and attributes. Its inodes are not in
/// memory then: the first READDIRPLUS reads their table blocks ahead and
/// ends its reply after one chunk, the kernel goes on with plain READDIR,
/// and a `stat` of each entry gets attributes either from that reply or
/// from a LOOKUP; all must agree with what was written.
#[test]
fn a_large_directory_lists_whole_and_right_after_a_remount() {
    use std::collections::BTreeMap;
    use std::os::unix::fs::{DirEntryExt, FileTypeExt};
    if !require_root("a FUSE mount") {
        return;
    }
    const N: usize = 3000;
    let dir = TempDir::new("big-listing");
    let img = dir.join("img");
    make_fext_image(&img, 64 << 20, "ext4", Some(4096), "");
    // name -> (kind, size): every 10th a directory, every 7th a symlink.
    let mut want = BTreeMap::new();
    {
        let m = FextMount::new(&img, "");
        let d = m.join("d");
        fs::create_dir(&d).unwrap();
        for i in 0..N {
            let name = format!("entry-{i:05}");
            let p = d.join(&name);
            if i % 10 == 0 {
                fs::create_dir(&p).unwrap();
                want.insert(name, ('d', 0));
            } else if i % 7 == 0 {
                std::os::unix::fs::symlink("target", &p).unwrap();
                want.insert(name, ('l', 6));
            } else {
                fs::write(&p, vec![b'x'; i % 300]).unwrap();
                want.insert(name, ('f', (i % 300) as u64));
            }
        }
        m.unmount();
    }
    assert_e2fsck_clean(&img);
    fs::write("/proc/sys/vm/drop_caches", "3").ok();
    let m = FextMount::new(&img, "");
    let mut seen = BTreeMap::new();
    for e in fs::read_dir(m.join("d")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        let t = e.file_type().unwrap();
        let kind = if t.is_dir() {
            'd'
        } else if t.is_symlink() {
            'l'
        } else {
            assert!(t.is_file() && !t.is_fifo(), "{name}: {t:?}");
            'f'
        };
        let md = fs::symlink_metadata(e.path()).unwrap();
        assert_eq!(e.ino(), md.ino(), "{name}: d_ino vs st_ino");
        let size = if kind == 'd' { 0 } else { md.size() };
        let nlink = if kind == 'd' { 2 } else { 1 };
        assert_eq!(md.nlink(), nlink, "{name}: link count");
        assert!(
            seen.insert(name.clone(), (kind, size)).is_none(),
            "{name} listed twice"
        );
    }
    assert_eq!(seen.len(), N);
    assert_eq!(seen, want);
    m.unmount();
    assert_e2fsck_clean(&img);
}
