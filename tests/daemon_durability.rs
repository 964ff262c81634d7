//! Durability of the `fext` daemon: what fsync (or `-o sync`) promised is
//! in the image even when the daemon is killed with SIGKILL right after.
//!
//! The checks read the image with debugfs (another implementation) and
//! with a fresh fext mount. There is no journal yet, so e2fsck may find
//! problems after a kill: its verdict is printed, not asserted, except
//! where every change was fsync'd (then nothing may be missing).

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::richtree::pattern;
use common::sys;
use common::*;

/// Long enough that background write-back never runs during a test:
/// only fsync (or `-o sync`) can have put the data into the image.
const NO_BACKGROUND: &str = "dirty_expire_ms=3600000,dirty_background_mb=1024";

/// The bytes of `path` inside the image, read by debugfs.
fn debugfs_cat(image: &Path, path: &str) -> Vec<u8> {
    let dir = TempDir::new("dump");
    let out = dir.join("out");
    let o = Cmd::new("debugfs")
        .arg("-R")
        .arg(format!("dump {path} {}", out.display()))
        .arg(image)
        .run_ok();
    fs::read(&out).unwrap_or_else(|e| panic!("debugfs could not dump {path}: {e}\n{o}"))
}

fn report_e2fsck(image: &Path, when: &str) -> i32 {
    let (code, out) = e2fsck_fn(image);
    eprintln!("e2fsck -fn {when}: exit {code}\n{out}");
    code
}

fn fsync_then_kill(fs_type: &str, bs: u32) {
    if !require_root("a FUSE mount") {
        return;
    }
    let dir = TempDir::new("durable");
    let img = dir.join("img");
    make_fext_image(&img, 64 << 20, fs_type, Some(bs), "");
    let a = pattern(2 << 20, 1);
    let c = pattern(100_000, 2);
    let d = pattern(5000, 3);
    {
        let m = FextMount::new(&img, NO_BACKGROUND);
        // A: written and fsync'd.
        let mut f = File::create(m.join("A")).unwrap();
        f.write_all(&a).unwrap();
        f.sync_all().unwrap();
        // C: in a new directory, fdatasync'd (its name must be reachable).
        fs::create_dir_all(m.join("dir/sub")).unwrap();
        let f = File::create(m.join("dir/sub/C")).unwrap();
        f.write_all_at(&c, 0).unwrap();
        f.sync_data().unwrap();
        // D: written, renamed, fsync'd after the rename.
        fs::write(m.join("D.tmp"), &d).unwrap();
        fs::rename(m.join("D.tmp"), m.join("D")).unwrap();
        File::open(m.join("D")).unwrap().sync_all().unwrap();
        // B: never synced: may or may not survive.
        fs::write(m.join("B"), b"not synced").unwrap();
        let log = m.kill();
        eprintln!("daemon log before the kill:\n{log}");
    }
    assert_eq!(debugfs_cat(&img, "/A"), a, "fsync'd A (debugfs)");
    assert_eq!(
        debugfs_cat(&img, "/dir/sub/C"),
        c,
        "fdatasync'd C (debugfs)"
    );
    assert_eq!(
        debugfs_cat(&img, "/D"),
        d,
        "fsync'd D after rename (debugfs)"
    );
    report_e2fsck(&img, "after SIGKILL");
    // A fresh fext mount sees the same (the image is marked not clean;
    // fext mounts it like ext2 would be mounted).
    let m = FextMount::try_new(&img, "").unwrap_or_else(|e| panic!("remount after kill: {e}"));
    assert!(fs::read(m.join("A")).unwrap() == a, "A after remount");
    assert!(
        fs::read(m.join("dir/sub/C")).unwrap() == c,
        "C after remount"
    );
    assert!(fs::read(m.join("D")).unwrap() == d, "D after remount");
    eprintln!(
        "B (never synced) after the kill: {}",
        if m.join("B").exists() {
            "present"
        } else {
            "lost"
        }
    );
    m.unmount();
    report_e2fsck(&img, "after remount + unmount");
}

#[test]
fn fsync_survives_sigkill_ext4_4k() {
    fsync_then_kill("ext4", 4096);
}

#[test]
fn fsync_survives_sigkill_ext4_1k() {
    fsync_then_kill("ext4", 1024);
}

#[test]
fn fsync_survives_sigkill_ext2_1k() {
    fsync_then_kill("ext2", 1024);
}

/// With `-o sync` every write is durable when it returns.
#[test]
fn sync_option_survives_sigkill() {
    if !require_root("a FUSE mount") {
        return;
    }
    let dir = TempDir::new("durable-sync");
    let img = dir.join("img");
    make_fext_image(&img, 64 << 20, "ext4", Some(4096), "");
    let data = pattern(300_000, 4);
    {
        let m = FextMount::new(&img, &format!("sync,{NO_BACKGROUND}"));
        fs::create_dir(m.join("d")).unwrap();
        let mut f = File::create(m.join("d/file")).unwrap();
        f.write_all(&data).unwrap();
        drop(f);
        m.kill();
    }
    assert_eq!(
        debugfs_cat(&img, "/d/file"),
        data,
        "-o sync write (debugfs)"
    );
    report_e2fsck(&img, "after SIGKILL with -o sync");
}

/// Everything fsync'd, then killed: the image needs nothing but the
/// orphan list replayed. An unlinked file still open at the kill is on
/// the orphan list; the next mount releases it, after which e2fsck
/// finds the file system clean.
#[test]
fn orphan_of_a_killed_daemon_is_released_at_the_next_mount() {
    if !require_root("a FUSE mount") {
        return;
    }
    for (fs_type, bs, features) in [
        ("ext4", 4096, ""),
        ("ext4", 4096, "orphan_file"),
        ("ext2", 1024, ""),
    ] {
        let dir = TempDir::new("orphan");
        let img = dir.join("img");
        make_fext_image(&img, 64 << 20, fs_type, Some(bs), features);
        let before = dumpe2fs_h(&img);
        {
            let m = FextMount::new(&img, NO_BACKGROUND);
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(m.join("doomed"))
                .unwrap();
            f.write_all(&pattern(1 << 20, 5)).unwrap();
            fs::remove_file(m.join("doomed")).unwrap();
            f.sync_all().unwrap();
            sys::fsync_dir(m.path()).unwrap();
            m.kill();
            drop(f);
        }
        let code = report_e2fsck(&img, &format!("{fs_type} {bs} {features}: after SIGKILL"));
        assert!(code <= 4, "e2fsck -fn exit {code} after the kill");
        let m = FextMount::new(&img, "");
        assert!(!m.join("doomed").exists());
        m.unmount();
        assert_e2fsck_clean(&img);
        let after = dumpe2fs_h(&img);
        assert_eq!(
            after.num("Free blocks"),
            before.num("Free blocks"),
            "{fs_type} {bs} {features}: the orphan's blocks are free again"
        );
        assert_eq!(after.num("Free inodes"), before.num("Free inodes"));
    }
}

/// A tmpfs of `size_mb` MiB mounted on a fresh temp dir (unmounted, after
/// anything mounted from inside it, when the TempDir is dropped).
fn small_tmpfs(size_mb: u32) -> TempDir {
    let dir = TempDir::new("small-tmpfs");
    Cmd::new("mount")
        .args(["-t", "tmpfs", "-o"])
        .arg(format!("size={size_mb}m"))
        .arg("tmpfs")
        .arg(dir.path())
        .run_ok();
    dir
}

/// The file system holding a sparse image runs out of space during
/// write-back: fsync reports ENOSPC (never success), the daemon survives
/// (no SIGBUS), the data stays dirty in its cache, and once space is
/// freed the next fsync writes it all; the image is then clean and
/// complete.
#[test]
fn enospc_of_the_image_file_is_reported_and_recovered() {
    if !require_root("FUSE and tmpfs mounts") {
        return;
    }
    let host = small_tmpfs(64);
    let img = host.join("img");
    make_fext_image(&img, 256 << 20, "ext4", Some(4096), "");
    fs::write(host.join("filler"), vec![0u8; 50 << 20]).unwrap();
    let data = pattern(30 << 20, 9);
    {
        let mut m = FextMount::new(&img, NO_BACKGROUND);
        let mut f = File::create(m.join("big")).unwrap();
        f.write_all(&data).unwrap();
        let first = f.sync_all();
        assert!(first.is_err(), "fsync succeeded without room for the data");
        assert!(m.is_alive(), "the daemon died: {}", m.log());
        // The mount still works.
        assert!(fs::read_dir(m.path()).unwrap().count() >= 2);
        fs::remove_file(host.join("filler")).unwrap();
        let mut ok = false;
        for _ in 0..3 {
            if f.sync_all().is_ok() {
                ok = true;
                break;
            }
        }
        assert!(ok, "fsync keeps failing after space was freed: {}", m.log());
        drop(f);
        assert!(fs::read(m.join("big")).unwrap() == data);
        m.unmount();
    }
    assert_e2fsck_clean(&img);
    assert_eq!(
        debugfs_cat(&img, "/big"),
        data,
        "data after recovery (debugfs)"
    );
}

/// No room for the final write-back at all: the daemon reports it and
/// exits with an error code after the unmount, not by a signal.
#[test]
fn enospc_at_unmount_is_an_error_exit_not_a_crash() {
    if !require_root("FUSE and tmpfs mounts") {
        return;
    }
    let host = small_tmpfs(24);
    let img = host.join("img");
    make_fext_image(&img, 256 << 20, "ext4", Some(4096), "");
    let m = FextMount::new(&img, NO_BACKGROUND);
    let mut f = File::create(m.join("big")).unwrap();
    f.write_all(&pattern(40 << 20, 10)).unwrap();
    drop(f);
    let log = m.log();
    match m.try_unmount() {
        Ok(code) => assert!(
            (1..128).contains(&code),
            "exit code {code} (0 would hide the loss, >= 128 is a crash); log:\n{log}"
        ),
        Err(e) => panic!("{e}"),
    }
    report_e2fsck(&img, "after a failed final write-back");
}

/// fsync while other threads keep writing, creating and deleting: every
/// file whose fsync returned is complete in the image after SIGKILL.
#[test]
fn fsync_amid_concurrent_writers_survives_sigkill() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    if !require_root("a FUSE mount") {
        return;
    }
    let dir = TempDir::new("durable-conc");
    let img = dir.join("img");
    make_fext_image(&img, 256 << 20, "ext4", Some(4096), "");
    let m = FextMount::new(&img, &format!("threads=4,{NO_BACKGROUND}"));
    fs::create_dir(m.join("noise")).unwrap();
    fs::create_dir(m.join("kept")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let noise: Vec<_> = (0..4)
        .map(|t| {
            let root = m.path().to_owned();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let p = root.join(format!("noise/t{t}-{}", i % 20));
                    let _ = fs::write(&p, pattern(((i * 7919) % 300_000) as usize, i));
                    if i.is_multiple_of(3) {
                        let _ = fs::remove_file(&p);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let mut synced = Vec::new();
    for i in 0..20u64 {
        let name = format!("kept/f{i}");
        let data = pattern(50_000 + (i as usize) * 10_000, 100 + i);
        let mut f = File::create(m.join(&name)).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        synced.push((name, data));
    }
    // Kill while the noise is still running.
    m.kill();
    stop.store(true, Ordering::Relaxed);
    for h in noise {
        let _ = h.join();
    }
    for (name, data) in &synced {
        assert!(
            debugfs_cat(&img, &format!("/{name}")) == *data,
            "{name}: fsync'd content missing after SIGKILL"
        );
    }
    report_e2fsck(&img, "after SIGKILL amid writers");
}

/// A file deleted without a sync is still in the image until write-back,
/// blocks and all. A new file that gets those blocks must not write its
/// data into them before then (large writes go to the image directly, not
/// through the cache): after a SIGKILL, the old file may come back, but
/// with its own bytes, never another file's. Checked with debugfs, with
/// both block sizes, for a whole overwrite and for new files of several
/// sizes.
#[test]
fn blocks_freed_since_write_back_never_show_new_data_after_sigkill() {
    if !require_root("a FUSE mount") {
        return;
    }
    for bs in [1024, 4096] {
        let dir = TempDir::new("freed-reuse");
        let img = dir.join("img");
        make_fext_image(&img, 64 << 20, "ext4", Some(bs), "");
        let old = pattern(3 << 20, 21);
        {
            let m = FextMount::new(&img, NO_BACKGROUND);
            fs::write(m.join("old"), &old).unwrap();
            sys::fsync_dir(m.path()).unwrap(); // everything written back
            fs::remove_file(m.join("old")).unwrap();
            // New data, in 1 MiB writes, lands where "old" was.
            for (i, len) in [(1u64, 3 << 20), (2, 1 << 20), (3, 300_000)] {
                fs::write(m.join(format!("new{i}")), pattern(len, 100 + i)).unwrap();
            }
            let log = m.kill();
            eprintln!("daemon log before the kill:\n{log}");
        }
        let back = debugfs_cat(&img, "/old");
        assert!(
            back == old,
            "{bs}: the unsynced deletion's file shows other data"
        );
        report_e2fsck(&img, &format!("{bs}: after SIGKILL"));
    }
}
