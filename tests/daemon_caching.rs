//! What the kernel caches for a fext mount stays true: attributes and
//! names are kept for a minute (the daemon invalidates those it changes on
//! its own), and the daemon's count of open files, which decides when an
//! unlinked file is freed, matches the kernel's opens and closes.

mod common;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;

use common::richtree::pattern;
use common::*;

/// No background write-back during the test: it happens when the test
/// asks (fsync) or at unmount.
const NO_BACKGROUND: &str = "dirty_expire_ms=3600000,dirty_background_mb=1024";

/// The `-o stats` table the daemon prints at exit: opcode -> count.
fn request_counts(log: &str) -> BTreeMap<String, u64> {
    let table = log
        .split("FUSE requests by opcode")
        .nth(1)
        .unwrap_or_else(|| panic!("no request table in the daemon's output:\n{log}"));
    table
        .lines()
        .skip(1)
        .map_while(|line| {
            let mut words = line.split_whitespace();
            let op = words.next()?;
            let count = words.next()?.parse().ok()?;
            op.chars()
                .all(|c| c.is_ascii_uppercase() || c == '_')
                .then(|| (op.to_string(), count))
        })
        .collect()
}

/// Free inodes and free blocks of the file system holding `path`.
fn free_counts(path: &std::path::Path) -> (u64, u64) {
    let st = sys::statvfs(path).unwrap();
    (st.f_ffree, st.f_bfree)
}

fn debugfs_stat_field(img: &std::path::Path, path: &str, field: &str) -> u64 {
    let text = debugfs_r(img, &format!("stat {path}"));
    text.split(&format!("{field}: "))
        .nth(1)
        .and_then(|after| after.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number for {field} in debugfs stat {path}:\n{text}"))
}

/// A directory's size and block count change when write-back lays out
/// its blocks, with no request about it: `stat` must show the new ones
/// at once, not the ones the kernel cached before (for the attribute
/// timeout), and they must be what the image says.
#[test]
fn a_directory_shows_the_size_write_back_gave_it() {
    if !require_root("a FUSE mount") {
        return;
    }
    let dir = TempDir::new("dir-size");
    let img = dir.join("img");
    make_fext_image(&img, 64 << 20, "ext4", Some(4096), "");
    let m = FextMount::new(&img, NO_BACKGROUND);
    let d = m.join("d");
    fs::create_dir(&d).unwrap();
    for i in 0..400 {
        let name = format!("a-rather-long-file-name-to-fill-blocks-{i:04}");
        File::create(d.join(name)).unwrap();
    }
    let before = fs::metadata(&d).unwrap();
    sys::fsync_dir(&d).unwrap();
    let after = fs::metadata(&d).unwrap();
    // Seen again after a while, through a fresh lookup too.
    let again = fs::metadata(m.join("d/.")).unwrap();
    m.unmount();
    assert_e2fsck_clean(&img);
    let size = debugfs_stat_field(&img, "d", "Size");
    let blocks = debugfs_stat_field(&img, "d", "Blockcount");
    assert!(
        size > 4096,
        "400 long names take more than one block: {size}"
    );
    for (when, md) in [
        ("after the write-back", &after),
        ("looked up again", &again),
    ] {
        assert_eq!(
            md.size(),
            size,
            "size {when} (before it: {})",
            before.size()
        );
        assert_eq!(md.blocks(), blocks, "st_blocks {when}");
    }
}

/// Files opened and closed, created and unlinked, and one opened for
/// reading, unlinked and read again: every open the daemon counted is
/// closed again (a count left behind would keep an unlinked file until
/// unmount), no close costs a FLUSH round trip after the first, the
/// unlinked file's data stays readable until it is closed, and its blocks
/// and inode are free afterwards.
#[test]
fn every_open_is_closed_and_unlinked_files_are_freed() {
    if !require_root("a FUSE mount") {
        return;
    }
    let dir = TempDir::new("opens");
    let img = dir.join("img");
    make_fext_image(&img, 64 << 20, "ext4", Some(4096), "");
    let data = pattern(3 << 20, 11);
    {
        let m = FextMount::new(&img, "");
        fs::write(m.join("doomed"), &data).unwrap();
        for i in 0..50 {
            fs::write(m.join(format!("small-{i}")), format!("file {i}")).unwrap();
        }
        m.unmount();
    }
    let free_before = dumpe2fs_h(&img);
    let m = FextMount::new(&img, "stats");
    for round in 0..2 {
        for i in 0..50 {
            let text = fs::read_to_string(m.join(format!("small-{i}"))).unwrap();
            assert_eq!(text, format!("file {i}"), "round {round}");
        }
    }
    // Created, written, closed and unlinked: free again at once (statfs
    // counts an unlinked file nobody has open as free while the kernel's
    // FORGET is on its way).
    let (inodes, blocks_free) = free_counts(m.path());
    for i in 0..200 {
        fs::write(m.join(format!("brief-{i}")), vec![7u8; 10_000]).unwrap();
    }
    assert_eq!(free_counts(m.path()).0, inodes - 200);
    for i in 0..200 {
        fs::remove_file(m.join(format!("brief-{i}"))).unwrap();
    }
    assert_eq!(
        free_counts(m.path()),
        (inodes, blocks_free),
        "created, closed and unlinked files are free again"
    );
    let mut f = File::open(m.join("doomed")).unwrap();
    let blocks = f.metadata().unwrap().blocks() / 8;
    fs::remove_file(m.join("doomed")).unwrap();
    assert!(!m.join("doomed").exists());
    assert_eq!(
        free_counts(m.path()),
        (inodes, blocks_free),
        "an unlinked file still open holds its inode and blocks"
    );
    // The kernel's cached pages go: the reads below come from the daemon.
    fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    let mut back = Vec::new();
    f.read_to_end(&mut back).unwrap();
    assert!(back == data, "the unlinked file's data, read while open");
    drop(f);
    let log = m.unmount_with_log();
    let counts = request_counts(&log);
    let count = |op: &str| counts.get(op).copied().unwrap_or(0);
    assert!(
        count("OPEN") >= 101,
        "the table counts requests: {counts:?}"
    );
    assert_eq!(
        count("RELEASE"),
        count("OPEN") + count("CREATE"),
        "every open and create released: {counts:?}"
    );
    assert!(count("FLUSH") <= 1, "FLUSH after ENOSYS: {counts:?}");
    assert_e2fsck_clean(&img);
    let free_after = dumpe2fs_h(&img);
    assert_eq!(
        free_after.num("Free blocks"),
        free_before.num("Free blocks") + blocks,
        "the unlinked file's blocks are free after its close"
    );
    assert_eq!(
        free_after.num("Free inodes"),
        free_before.num("Free inodes") + 1
    );
}

/// A cold directory that one READDIRPLUS reply can describe comes with
/// the attributes of all its entries (the daemon reads their inodes then,
/// all at once), so a `stat` of each after the listing (`ls -l`, `du`,
/// `grep -r`) looks up none of its names. A large one is listed without
/// reading its inodes, and its names are looked up one by one.
#[test]
fn a_mid_sized_cold_directory_is_listed_with_its_attributes() {
    if !require_root("a FUSE mount") {
        return;
    }
    const MID: usize = 150;
    const LARGE: usize = 1200;
    let dir = TempDir::new("listing-attrs");
    let img = dir.join("img");
    make_fext_image(&img, 64 << 20, "ext4", Some(4096), "");
    {
        let m = FextMount::new(&img, "");
        for (sub, n) in [("mid", MID), ("large", LARGE)] {
            fs::create_dir(m.join(sub)).unwrap();
            for i in 0..n {
                fs::write(m.join(format!("{sub}/f{i:04}")), vec![b'x'; i % 97]).unwrap();
            }
        }
        m.unmount();
    }
    fs::write("/proc/sys/vm/drop_caches", "3").ok();
    let m = FextMount::new(&img, "stats");
    for (sub, n) in [("mid", MID), ("large", LARGE)] {
        // The whole listing first, then the stats, as `du` and `find` do.
        let names: Vec<String> = fs::read_dir(m.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), n, "{sub}");
        for name in names {
            let i: usize = name[1..].parse().unwrap();
            let md = fs::symlink_metadata(m.join(format!("{sub}/{name}"))).unwrap();
            assert_eq!(md.size(), (i % 97) as u64, "{sub}/{name}");
        }
    }
    let counts = request_counts(&m.unmount_with_log());
    let lookups = counts.get("LOOKUP").copied().unwrap_or(0);
    assert!(
        (LARGE as u64..LARGE as u64 + 10).contains(&lookups),
        "{lookups} LOOKUPs: the large directory's {LARGE} names and hardly \
         any other (the mid-sized one's {MID} came with the listing): {counts:?}"
    );
    assert_e2fsck_clean(&img);
}
