//! Gaps of the mount daemon closed in session 3 (moved from
//! tests/pending/daemon_gaps.rs): statfs exact before write-back, the mount
//! table entry (`fuse.<subtype>`, source = fsname), and an image that
//! faults under the mapping (SIGBUS) turning into EIO instead of a dead
//! daemon.

mod common;

use std::fs::{self, File, OpenOptions};

use std::os::unix::fs::FileExt;
use std::path::Path;

use common::richtree::pattern;
use common::sys;
use common::*;

/// (free blocks, free inodes) of the mount.
fn free_counts(root: &Path) -> (u64, u64) {
    let s = sys::statvfs(root).unwrap();
    (s.f_bfree, s.f_ffree)
}

/// statfs now, then after a write-back (fsync of the root directory makes
/// fext write everything back): the numbers must not move.
#[track_caller]
fn assert_statfs_stable(root: &Path, label: &str) -> (u64, u64) {
    let before = free_counts(root);
    sys::fsync_dir(root).unwrap();
    let after = free_counts(root);
    assert_eq!(
        before, after,
        "{label}: free (blocks, inodes) before vs after write-back"
    );
    after
}

/// statfs counts every block in use at any moment, as the kernel does
/// (it allocates directory blocks, extent and indirect blocks at once):
/// the free counts never change across a write-back and equal what
/// dumpe2fs reads from the image after the unmount. Covers both block
/// sizes, extents and indirect maps (ext2), a directory growing into an
/// htree, many directories, big and sparse files, truncate and unlink.
#[test]
fn statfs_is_exact_before_write_back() {
    if !require_root("a FUSE mount") {
        return;
    }
    for (fs_type, bs) in [
        ("ext4", 1024),
        ("ext4", 4096),
        ("ext2", 1024),
        ("ext2", 4096),
    ] {
        let label = format!("{fs_type} {bs}");
        let dir = TempDir::new("statfs-exact");
        let img = dir.join("img");
        make_fext_image(&img, 128 << 20, fs_type, Some(bs), "");
        let m = FextMount::new(&img, "");
        let root = m.path();

        for i in 0..400 {
            File::create(m.join(format!("a-long-file-name-to-fill-directory-blocks-{i:05}")))
                .unwrap();
        }
        assert_statfs_stable(root, &format!("{label}: 400 files in one directory"));

        for d in 0..40 {
            let sub = m.join(format!("dir{d}"));
            fs::create_dir(&sub).unwrap();
            for i in 0..(d * 3) {
                fs::write(sub.join(format!("entry-{i:04}")), [b'x'; 100]).unwrap();
            }
        }
        assert_statfs_stable(root, &format!("{label}: many directories"));

        for i in 0..3u64 {
            fs::write(
                m.join(format!("big{i}")),
                pattern((9 << 20) + i as usize * 4321, i),
            )
            .unwrap();
        }
        let sparse = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(m.join("sparse"))
            .unwrap();
        for k in 0..20u64 {
            sparse
                .write_all_at(b"island", k * 3_000_000 + k * 17)
                .unwrap();
        }
        drop(sparse);
        assert_statfs_stable(root, &format!("{label}: big and sparse files"));

        let f = OpenOptions::new().write(true).open(m.join("big1")).unwrap();
        f.set_len(300_000).unwrap();
        drop(f);
        let f = OpenOptions::new()
            .write(true)
            .open(m.join("sparse"))
            .unwrap();
        f.set_len(20_000_000).unwrap();
        drop(f);
        fs::remove_file(m.join("big2")).unwrap();
        for i in (0..400).step_by(3) {
            fs::remove_file(m.join(format!("a-long-file-name-to-fill-directory-blocks-{i:05}")))
                .unwrap();
        }
        for d in (0..40).step_by(2) {
            fs::remove_dir_all(m.join(format!("dir{d}"))).unwrap();
        }
        let last = assert_statfs_stable(root, &format!("{label}: truncate and unlink"));

        m.unmount();
        let d = dumpe2fs_h(&img);
        assert_eq!(
            last,
            (d.num("Free blocks"), d.num("Free inodes")),
            "{label}: statfs vs dumpe2fs after the unmount"
        );
        assert_e2fsck_clean(&img);
    }
}

/// The mount table shows the type `fuse.<subtype>` (default `fuse.fext`)
/// and the fsname as source (default: the image's absolute path), as for
/// libfuse file systems; `umount` still ends the daemon (exit 0).
#[test]
fn subtype_and_fsname_show_in_the_mount_table() {
    if !require_root("a FUSE mount") {
        return;
    }
    let dir = TempDir::new("mount-table");
    let img = dir.join("img");
    make_fext_image(&img, 32 << 20, "ext4", Some(4096), "");
    let m = FextMount::new(&img, "");
    let want_source = fs::canonicalize(&img).unwrap().display().to_string();
    assert_eq!(
        mount_entry(m.path()),
        Some(("fuse.fext".to_string(), want_source))
    );
    fs::write(m.join("f"), b"still served").unwrap();
    m.unmount();

    let m = FextMount::new(&img, "subtype=extimg,fsname=my-disk");
    assert_eq!(
        mount_entry(m.path()),
        Some(("fuse.extimg".to_string(), "my-disk".to_string()))
    );
    assert_eq!(fs::read(m.join("f")).unwrap(), b"still served");
    m.unmount();
    assert_e2fsck_clean(&img);
}

/// Detaches a mount left behind by a failed test.
struct LazyUnmountGuard<'a>(&'a Path);

impl Drop for LazyUnmountGuard<'_> {
    fn drop(&mut self) {
        if is_mountpoint(self.0) {
            let _ = Cmd::new("umount").arg("-l").arg(self.0).output();
        }
    }
}

/// A fresh 4 KiB ext4 image of `size` bytes at `img`, mounted at `mp` the
/// way mount(8) runs a helper: `fext IMAGE DIR -o OPTS`, which daemonizes
/// once the mount is ready. The guard lazily unmounts whatever is left.
fn daemonized_mount<'a>(img: &Path, size: u64, mp: &'a Path, opts: &str) -> LazyUnmountGuard<'a> {
    make_fext_image(img, size, "ext4", Some(4096), "");
    fs::create_dir(mp).unwrap();
    let guard = LazyUnmountGuard(mp);
    Cmd::new(fext_bin())
        .arg(img)
        .arg(mp)
        .arg("-o")
        .arg(opts)
        .timeout(std::time::Duration::from_secs(60))
        .run_ok();
    guard
}

/// The way mount(8) runs a helper: `fext IMAGE DIR -o OPTS` daemonizes
/// once the mount is ready; `fusermount3 -u` ends that daemon, which
/// writes back and releases the image (its lock) with the file system
/// clean.
#[test]
fn daemonized_mount_shows_its_type_and_ends_on_fusermount_u() {
    if !require_root("a FUSE mount") || !have_program("fusermount3") {
        return;
    }
    let dir = TempDir::new("mount-helper");
    let (img, mp) = (dir.join("img"), dir.join("mnt"));
    let _guard = daemonized_mount(&img, 32 << 20, &mp, "rw,nosuid,nodev");
    let (fstype, _) = mount_entry(&fs::canonicalize(&mp).unwrap()).expect("mounted");
    assert_eq!(fstype, "fuse.fext");
    fs::write(mp.join("f"), b"written through the helper mount").unwrap();
    Cmd::new("fusermount3")
        .arg("-u")
        .arg(&mp)
        .timeout(std::time::Duration::from_secs(60))
        .run_ok();
    // The daemon holds an exclusive lock on the image until it exits.
    Cmd::new("flock")
        .arg("-w")
        .arg("120")
        .arg(&img)
        .arg("true")
        .timeout(std::time::Duration::from_secs(150))
        .run_ok();
    assert!(!is_mountpoint(&mp));
    assert_e2fsck_clean(&img);
    let out = Cmd::new("debugfs")
        .arg("-R")
        .arg("cat /f")
        .arg(&img)
        .run_ok();
    assert_eq!(out.stdout, "written through the helper mount");
}

/// Physical blocks of `path` in the image (debugfs `blocks`).
fn blocks_of(img: &Path, path: &str) -> Vec<u64> {
    debugfs_r(img, &format!("blocks {path}"))
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect()
}

/// The image file shrinks under the daemon: the pages of the mapping past
/// the new end raise SIGBUS when touched. A read of a file whose data lay
/// there fails with EIO; the daemon stays up, keeps serving the rest, and
/// once the image has its size back the same read is tried again and
/// succeeds (the damaged pages were mapped from the file again). Unmount
/// ends the daemon with exit code 0.
#[test]
fn image_shrinking_under_the_daemon_is_eio_not_a_crash() {
    if !require_root("a FUSE mount") {
        return;
    }
    let dir = TempDir::new("sigbus");
    let img = dir.join("img");
    let size = 64u64 << 20;
    make_fext_image(&img, size, "ext4", Some(4096), "");
    let safe_data = pattern(300_000, 1);
    let victim_data = pattern(24 << 20, 2);
    let m = FextMount::new(&img, "");
    fs::write(m.join("safe"), &safe_data).unwrap();
    fs::write(m.join("victim"), &victim_data).unwrap();
    m.unmount();
    let safe_end = *blocks_of(&img, "/safe").iter().max().unwrap();
    let victim = blocks_of(&img, "/victim");
    let victim_start = *victim.iter().min().unwrap();
    assert!(safe_end < victim_start, "safe must lie before victim");
    // Cut the image 1 MiB into the victim's data: the metadata and `safe`
    // stay inside.
    let cut = victim_start * 4096 + (1 << 20);

    // A fresh mount: the kernel holds none of the victim's pages.
    let mut m = FextMount::new(&img, "");
    let victim_file = File::open(m.join("victim")).unwrap();
    resize_image(&img, cut);

    let mut buf = vec![0u8; 1 << 20];
    let far = (8u64 << 20).min(victim_data.len() as u64 - buf.len() as u64);
    let r = victim_file.read_exact_at(&mut buf, far);
    assert_eq!(
        r.map_err(|e| e.raw_os_error()),
        Err(Some(libc::EIO)),
        "read past the new end of the image"
    );
    assert!(m.is_alive(), "the daemon died:\n{}", m.log());
    // Still serving: the other file, a new file, a listing.
    assert_eq!(fs::read(m.join("safe")).unwrap(), safe_data);
    fs::write(m.join("new"), b"written after the fault").unwrap();
    assert_eq!(fs::read_dir(m.path()).unwrap().count(), 4); // lost+found too
                                                            // The same read again while the image is still short: EIO again.
    let r = victim_file.read_exact_at(&mut buf, far);
    assert_eq!(r.map_err(|e| e.raw_os_error()), Err(Some(libc::EIO)));

    // The image gets its size back (the cut part reads as zeros): the read
    // is tried again and now succeeds.
    resize_image(&img, size);
    victim_file.read_exact_at(&mut buf, far).unwrap();
    assert!(buf.iter().all(|&b| b == 0), "the cut part reads as zeros");
    let mut head = vec![0u8; 4096];
    victim_file.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(head, victim_data[..4096]);
    drop(victim_file);
    assert!(m.is_alive());
    m.unmount();
    assert!(
        remount_reads_back_new_file(&img),
        "after the unmount the image mounts again with the file written after the fault"
    );
}

/// The same for metadata: a directory whose second block lies past the new
/// end of the image. Listing it fails with EIO (an I/O error, not
/// EUCLEAN: the zeros the fault leaves must not be taken for a corrupt
/// directory), while the rest of the image still serves.
#[test]
fn directory_block_past_a_shrunk_image_is_eio() {
    if !require_root("a FUSE mount") {
        return;
    }
    let dir = TempDir::new("sigbus-dir");
    let img = dir.join("img");
    let size = 64u64 << 20;
    make_fext_image(&img, size, "ext4", Some(4096), "");
    let m = FextMount::new(&img, "");
    fs::create_dir(m.join("d")).unwrap();
    fs::write(m.join("d/first"), b"1").unwrap();
    fs::write(m.join("victim"), pattern(24 << 20, 3)).unwrap();
    let names: Vec<String> = (0..300).map(|i| format!("{i:0>60}")).collect();
    for n in &names {
        fs::write(m.join("d").join(n), b"").unwrap();
    }
    m.unmount();
    let victim_start = *blocks_of(&img, "/victim").iter().min().unwrap();
    let dir_last = *blocks_of(&img, "/d").iter().max().unwrap();
    assert!(
        dir_last > victim_start + 256,
        "a block of d must lie after the victim's first MiB"
    );
    let cut = victim_start * 4096 + (1 << 20);

    let mut m = FextMount::new(&img, "");
    resize_image(&img, cut);
    let listing = fs::read_dir(m.join("d")).and_then(|it| it.collect::<Result<Vec<_>, _>>());
    assert_eq!(
        listing.map(|v| v.len()).map_err(|e| e.raw_os_error()),
        Err(Some(libc::EIO)),
        "listing a directory whose block lies past the end of the image"
    );
    assert!(m.is_alive(), "the daemon died:\n{}", m.log());
    // The rest still serves: the root and the victim's first MiB.
    assert_eq!(fs::read_dir(m.path()).unwrap().count(), 3); // lost+found too
    let mut head = vec![0u8; 4096];
    File::open(m.join("victim"))
        .unwrap()
        .read_exact_at(&mut head, 0)
        .unwrap();
    assert_eq!(head, pattern(4096, 3));
    // With its size back the cut blocks read as zeros, which a directory
    // block must not be: the listing now fails as corrupt, and the daemon
    // stays up.
    resize_image(&img, size);
    let again = fs::read_dir(m.join("d")).and_then(|it| it.collect::<Result<Vec<_>, _>>());
    assert_eq!(
        again.map(|v| v.len()).map_err(|e| e.raw_os_error()),
        Err(Some(libc::EUCLEAN))
    );
    assert!(m.is_alive(), "the daemon died:\n{}", m.log());
    m.unmount();
}

/// Truncates or extends the image file under a live daemon.
fn resize_image(img: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(img)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Mounts `img` again and reads back the file written after the fault.
fn remount_reads_back_new_file(img: &Path) -> bool {
    let m = FextMount::new(img, "");
    let ok = fs::read(m.join("new")).is_ok_and(|d| d == b"written after the fault");
    m.unmount();
    ok
}

/// SIGTERM makes the daemon unmount its own mount (a direct mount(2)
/// now), write everything back and exit 0, leaving a clean image.
#[test]
fn sigterm_unmounts_and_exits_zero() {
    if !require_root("a FUSE mount") {
        return;
    }
    let dir = TempDir::new("sigterm");
    let img = dir.join("img");
    make_fext_image(&img, 32 << 20, "ext4", Some(4096), "");
    let mut m = FextMount::new(&img, "");
    let mp = m.path().to_owned();
    fs::write(m.join("f"), b"written before the signal").unwrap();
    let code = m.signal_and_wait(libc::SIGTERM);
    assert_eq!(code, Some(0), "daemon log:\n{}", m.log());
    assert!(!is_mountpoint(&mp), "still mounted after SIGTERM");
    drop(m);
    assert_e2fsck_clean(&img);
    let out = Cmd::new("debugfs")
        .arg("-R")
        .arg("cat /f")
        .arg(&img)
        .run_ok();
    assert_eq!(out.stdout, "written before the signal");
}

/// `umount` of a plain FUSE mount returns before the daemon has written
/// back (the kernel does not wait for it). Installed as umount(8)'s helper
/// `umount.fuse.fext`, fext unmounts and waits until the daemon has let go
/// of the image: right after it returns, nobody holds the image and it is
/// complete and clean.
#[test]
fn umount_helper_returns_after_the_final_write_back() {
    if !require_root("a FUSE mount") {
        return;
    }
    let dir = TempDir::new("umount-helper");
    let (img, mp) = (dir.join("img"), dir.join("mnt"));
    // Nothing is written back by age or size before the unmount.
    let _guard = daemonized_mount(
        &img,
        256 << 20,
        &mp,
        "dirty_expire_ms=3600000,dirty_background_mb=1024,dirty_limit_mb=1024",
    );
    for i in 0..48 {
        fs::write(mp.join(format!("big{i}")), vec![i as u8; 2 << 20]).unwrap();
    }
    fs::create_dir(mp.join("many")).unwrap();
    for i in 0..3000 {
        fs::write(mp.join(format!("many/small-file-{i}")), i.to_string()).unwrap();
    }
    let helper = dir.join("umount.fuse.fext");
    std::os::unix::fs::symlink(fext_bin(), &helper).unwrap();
    let canonical = fs::canonicalize(&mp).unwrap();
    Cmd::new(&helper)
        .arg(&canonical)
        .args(["-n", "-t", "fuse.fext"])
        .timeout(std::time::Duration::from_secs(300))
        .run_ok();
    assert!(!is_mountpoint(&mp));
    // The daemon holds an exclusive flock on the image until it is done.
    let out = Cmd::new("flock").arg("-n").arg(&img).arg("true").output();
    assert!(
        out.success(),
        "the daemon still held the image when the umount helper returned:\n{out}"
    );
    assert_e2fsck_clean(&img);
    let out = Cmd::new("debugfs")
        .arg("-R")
        .arg("cat /many/small-file-2999")
        .arg(&img)
        .run_ok();
    assert_eq!(out.stdout, "2999");
}
