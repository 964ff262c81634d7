//! Gaps between fext and ext4 that the end-to-end suite found and that
//! are now closed (their reproducers, moved out of tests/pending/).

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};

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
/// cache the written bytes can still sit in the kernel's page cache (FUSE
/// does not flush before FUSE_LSEEK), so the daemon, which has not seen
/// them, answers "hole": SEEK_DATA 0 -> ENXIO for a file with data at 0.
/// `cp`, `tar --sparse` and other sparse-aware copiers then skip data.
/// (Safe answers: reply ENOSYS to FUSE_LSEEK so the kernel falls back to
/// "all data", or answer only when no writer can hold dirty pages.)
#[test]
fn seek_data_sees_unflushed_writes() {
    if !require_root("a FUSE mount") {
        return;
    }
    let (_dir, m) = mount();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.join("f"))
        .unwrap();
    f.write_all_at(b"data at zero", 0).unwrap();
    f.write_all_at(&[7u8; 65536], 1 << 20).unwrap();
    assert_eq!(sys::lseek(&f, 0, libc::SEEK_DATA).unwrap(), 0);
    assert_eq!(sys::lseek(&f, 4096, libc::SEEK_DATA).unwrap(), 1 << 20);
    drop(f);
    m.unmount();
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
