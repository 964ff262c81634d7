//! The file-system core driven directly (no FUSE): workloads on images made
//! by mkfs.fext and mkfs.ext4, each ending with `e2fsck -fn` and a kernel
//! loop mount that must show the same content.

#![allow(dead_code)]
mod common;

use std::path::Path;

use common::*;
use fext::fs::{Caller, Fs, MountOptions};
use fext::mkfs::format::{make_filesystem, Silent};
use fext::mkfs::options::{parse_feature_edits, FsType, MkfsOptions};

const ROOT: u32 = 2;
const S_IFREG: u16 = 0o100000;
const S_IFDIR: u16 = 0o040000;

fn make_image(img: &Path, size: u64, fs_type: FsType, extra: &str, block_size: Option<u32>) {
    let opts = MkfsOptions {
        fs_type,
        block_size,
        feature_edits: parse_feature_edits(extra),
        ..MkfsOptions::default()
    };
    make_filesystem(img, Some(size), &opts, &mut Silent).expect("mkfs");
}

fn workload(fs: &Fs, extents: bool) {
    let c = Caller::ROOT;
    let d = fs.create(ROOT, b"dir", S_IFDIR | 0o755, 0, c).unwrap();
    let f = fs.create(d.ino, b"file", S_IFREG | 0o644, 0, c).unwrap();
    fs.open(f.ino, true).unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    fs.write(f.ino, 0, &data).unwrap();
    fs.write(f.ino, 5_000_000, b"tail").unwrap();
    assert_eq!(fs.read(f.ino, 0, 300_000).unwrap(), data);
    fs.release(f.ino, true).unwrap();
    for i in 0..600 {
        let name = format!("entry-with-a-longish-name-{i:05}");
        fs.create(d.ino, name.as_bytes(), S_IFREG | 0o600, 0, c)
            .unwrap();
    }
    for i in (0..600).step_by(3) {
        let name = format!("entry-with-a-longish-name-{i:05}");
        fs.unlink(d.ino, name.as_bytes()).unwrap();
    }
    fs.symlink(ROOT, b"short", b"dir/file", c).unwrap();
    fs.symlink(ROOT, b"long", &[b'x'; 300], c).unwrap();
    fs.link(f.ino, ROOT, b"hardlink").unwrap();
    fs.setxattr(f.ino, b"user.small", b"value", 0).unwrap();
    fs.setxattr(f.ino, b"user.big", &[7u8; 900], 0).unwrap();
    let sub = fs.create(d.ino, b"sub", S_IFDIR | 0o700, 0, c).unwrap();
    fs.rename(d.ino, b"sub", ROOT, b"moved", 0).unwrap();
    fs.create(sub.ino, b"inner", S_IFREG | 0o644, 0, c).unwrap();
    let r = fs.fallocate(f.ino, 6_000_000, 1_000_000, 0);
    if extents {
        r.unwrap();
    } else {
        // ext4 refuses fallocate on block-mapped files.
        assert_eq!(r.unwrap_err().errno, libc::EOPNOTSUPP);
    }
    fs.sync().unwrap();
}

fn run_case(fs_type: FsType, extra: &str, bs: Option<u32>) {
    let dir = TempDir::new("fscore");
    let img = dir.join("img");
    make_image(&img, 64 << 20, fs_type, extra, bs);
    {
        let fs = Fs::mount(&img, MountOptions::default()).unwrap();
        workload(&fs, fs_type != FsType::Ext2);
        fs.unmount().unwrap();
    }
    assert_e2fsck_clean(&img);
    // Mount again and check the data survived.
    let fs = Fs::mount(&img, MountOptions::default()).unwrap();
    let d = fs.lookup(ROOT, b"dir").unwrap();
    let f = fs.lookup(d.ino, b"file").unwrap();
    let expected_size = if fs_type == FsType::Ext2 {
        5_000_004
    } else {
        7_000_000
    };
    assert_eq!(f.size, expected_size);
    assert_eq!(f.nlink, 2);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(fs.read(f.ino, 0, 300_000).unwrap(), data);
    assert_eq!(fs.read(f.ino, 5_000_000, 4).unwrap(), b"tail");
    assert_eq!(fs.getxattr(f.ino, b"user.big").unwrap(), vec![7u8; 900]);
    let long = fs.lookup(ROOT, b"long").unwrap();
    assert_eq!(fs.readlink(long.ino).unwrap(), vec![b'x'; 300]);
    let entries = fs.readdir(d.ino, 0, 10_000).unwrap();
    assert_eq!(entries.len(), 2 + 1 + 400);
    fs.unmount().unwrap();
    drop(fs);
    assert_e2fsck_clean(&img);
    if require_kernel_mount() {
        let m = KernelMount::new(&img, false);
        let content = std::fs::read(m.path().join("dir/file")).unwrap();
        assert_eq!(&content[..300_000], &data[..]);
        assert_eq!(
            std::fs::read_link(m.path().join("short")).unwrap(),
            Path::new("dir/file")
        );
        assert_eq!(
            std::fs::read_dir(m.path().join("dir")).unwrap().count(),
            401
        );
    }
}

#[test]
fn ext4_default_1k() {
    run_case(FsType::Ext4, "", None);
}

#[test]
fn ext4_4k_orphan_file_csum_seed() {
    run_case(FsType::Ext4, "orphan_file,metadata_csum_seed", Some(4096));
}

#[test]
fn ext2_block_maps() {
    run_case(FsType::Ext2, "", Some(1024));
}

#[test]
fn ext4_without_metadata_csum() {
    run_case(FsType::Ext4, "^metadata_csum", Some(4096));
}

/// Inline data made by mke2fs: read in place, converted on change.
#[test]
fn inline_data_images_read_and_convert() {
    let dir = TempDir::new("inline");
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("tiny"), b"hello inline").unwrap();
    std::fs::write(src.join("medium"), vec![b'm'; 100]).unwrap();
    std::fs::write(src.join("sub/a"), b"a").unwrap();
    std::os::unix::fs::symlink("tiny", src.join("link")).unwrap();
    let img = dir.join("img");
    run_ok(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-O",
            "inline_data",
            "-d",
            src.to_str().unwrap(),
            img.to_str().unwrap(),
            "16M",
        ],
    );
    {
        let fs = Fs::mount(&img, MountOptions::default()).unwrap();
        let tiny = fs.lookup(ROOT, b"tiny").unwrap();
        assert_eq!(fs.read(tiny.ino, 0, 100).unwrap(), b"hello inline");
        let medium = fs.lookup(ROOT, b"medium").unwrap();
        assert_eq!(fs.read(medium.ino, 0, 200).unwrap(), vec![b'm'; 100]);
        let sub = fs.lookup(ROOT, b"sub").unwrap();
        let names: Vec<Vec<u8>> = fs
            .readdir(sub.ino, 0, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(names.contains(&b"a".to_vec()), "{names:?}");
        let link = fs.lookup(ROOT, b"link").unwrap();
        assert_eq!(fs.readlink(link.ino).unwrap(), b"tiny");
        // Changes convert to block-mapped form.
        fs.write(tiny.ino, 12, b", now longer").unwrap();
        fs.create(sub.ino, b"b", S_IFREG | 0o644, 0, Caller::ROOT)
            .unwrap();
        fs.unmount().unwrap();
    }
    assert_e2fsck_clean(&img);
    let fs = Fs::mount(&img, MountOptions::default()).unwrap();
    let tiny = fs.lookup(ROOT, b"tiny").unwrap();
    assert_eq!(
        fs.read(tiny.ino, 0, 100).unwrap(),
        b"hello inline, now longer"
    );
    let sub = fs.lookup(ROOT, b"sub").unwrap();
    assert!(fs.lookup(sub.ino, b"b").is_ok());
    assert!(fs.lookup(sub.ino, b"a").is_ok());
}

/// An unlinked file still open when the daemon dies is on the orphan chain;
/// the next mount releases it and the image is clean.
#[test]
fn orphans_survive_a_crash_and_are_released_at_mount() {
    let dir = TempDir::new("orphan");
    let img = dir.join("img");
    make_image(&img, 32 << 20, FsType::Ext4, "", None);
    {
        let fs = Fs::mount(&img, MountOptions::default()).unwrap();
        let f = fs
            .create(ROOT, b"doomed", S_IFREG | 0o644, 0, Caller::ROOT)
            .unwrap();
        fs.open(f.ino, true).unwrap();
        fs.write(f.ino, 0, &vec![1u8; 100_000]).unwrap();
        fs.forget(f.ino, 1);
        fs.unlink(ROOT, b"doomed").unwrap();
        fs.sync().unwrap();
        // Simulated crash: no release, no unmount.
        drop(fs); // no unmount: what was not written back is lost, as in a crash
    }
    let d = dumpe2fs_h(&img);
    assert!(
        d.get("First orphan inode").is_some_and(|v| v.trim() != "0"),
        "the orphan chain should hold the unlinked inode:\n{}",
        d.raw
    );
    {
        let fs = Fs::mount(&img, MountOptions::default()).unwrap();
        assert_eq!(fs.lookup(ROOT, b"doomed").unwrap_err().errno, libc::ENOENT);
        fs.unmount().unwrap();
    }
    assert_e2fsck_clean(&img);
}

/// Filling the file system: writes end short or with ENOSPC, creates fail
/// with ENOSPC, nothing accepted is lost, and the image stays clean.
#[test]
fn full_file_system_gives_enospc_and_stays_clean() {
    for (fs_type, bs) in [(FsType::Ext4, Some(1024)), (FsType::Ext2, Some(4096))] {
        let dir = TempDir::new("full");
        let img = dir.join("img");
        make_image(&img, 8 << 20, fs_type, "", bs);
        {
            let fs = Fs::mount(&img, MountOptions::default()).unwrap();
            let d = fs
                .create(ROOT, b"d", S_IFDIR | 0o755, 0, Caller::ROOT)
                .unwrap();
            let chunk = vec![0xabu8; 256 * 1024];
            let mut hit_enospc = false;
            'outer: for i in 0..1000 {
                let name = format!("file-{i:04}");
                let f = match fs.create(d.ino, name.as_bytes(), S_IFREG | 0o644, 0, Caller::ROOT) {
                    Ok(f) => f,
                    Err(e) => {
                        assert_eq!(e.errno, libc::ENOSPC, "create: {e}");
                        hit_enospc = true;
                        break;
                    }
                };
                let mut off = 0u64;
                loop {
                    match fs.write(f.ino, off, &chunk) {
                        Ok(n) if n == chunk.len() => off += n as u64,
                        Ok(_short) => {
                            hit_enospc = true;
                            break 'outer;
                        }
                        Err(e) => {
                            assert_eq!(e.errno, libc::ENOSPC, "write: {e}");
                            hit_enospc = true;
                            break 'outer;
                        }
                    }
                    if off >= 1 << 20 {
                        break;
                    }
                }
            }
            assert!(hit_enospc, "an 8 MiB file system should fill up");
            // Creating many empty files until the inodes or blocks run out.
            for i in 0..5000 {
                let name = format!("empty-with-a-long-name-to-fill-blocks-{i:05}");
                if let Err(e) = fs.create(d.ino, name.as_bytes(), S_IFREG | 0o644, 0, Caller::ROOT)
                {
                    assert_eq!(e.errno, libc::ENOSPC, "create: {e}");
                    break;
                }
            }
            fs.sync().unwrap();
            fs.unmount().unwrap();
        }
        assert_e2fsck_clean(&img);
    }
}

/// fsync makes the file system consistent and durable as of that moment
/// (fext has no journal yet, so fsync writes everything back): after a
/// crash right after it, the image is clean and the fsynced data is there.
#[test]
fn fsync_of_one_file_survives_a_crash() {
    let dir = TempDir::new("fsync1");
    let img = dir.join("img");
    make_image(&img, 32 << 20, FsType::Ext4, "", None);
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
    {
        let fs = Fs::mount(&img, MountOptions::default()).unwrap();
        let d = fs
            .create(ROOT, b"d", S_IFDIR | 0o755, 0, Caller::ROOT)
            .unwrap();
        let a = fs
            .create(d.ino, b"a", S_IFREG | 0o644, 0, Caller::ROOT)
            .unwrap();
        let b = fs
            .create(ROOT, b"b", S_IFREG | 0o644, 0, Caller::ROOT)
            .unwrap();
        fs.write(a.ino, 0, &payload).unwrap();
        fs.write(b.ino, 0, &[9u8; 50_000]).unwrap();
        fs.fsync(a.ino).unwrap();
        drop(fs); // no unmount: what was not written back is lost, as in a crash
    }
    let fs = Fs::mount(&img, MountOptions::default()).unwrap();
    let d = fs.lookup(ROOT, b"d").unwrap();
    let a = fs.lookup(d.ino, b"a").unwrap();
    assert_eq!(fs.read(a.ino, 0, 300_000).unwrap(), payload);
    let b = fs.lookup(ROOT, b"b").unwrap();
    assert_eq!(fs.read(b.ino, 0, 60_000).unwrap(), vec![9u8; 50_000]);
    fs.unmount().unwrap();
    drop(fs);
    assert_e2fsck_clean(&img);
}

/// Creates in one big directory do not slow down as it grows (no per-create
/// work proportional to the directory's size). Reported, not timed: the
/// assertion is on the directory's content; the timings are printed.
#[test]
fn many_creates_in_one_directory() {
    let dir = TempDir::new("many");
    let img = dir.join("img");
    make_image(&img, 256 << 20, FsType::Ext4, "", Some(4096));
    let fs = Fs::mount(&img, MountOptions::default()).unwrap();
    let d = fs
        .create(ROOT, b"d", S_IFDIR | 0o755, 0, Caller::ROOT)
        .unwrap();
    let mut laps = Vec::new();
    let mut t = std::time::Instant::now();
    for i in 0..30_000 {
        let name = format!("file-{i:06}");
        let a = fs
            .create(d.ino, name.as_bytes(), S_IFREG | 0o644, 0, Caller::ROOT)
            .unwrap();
        fs.forget(a.ino, 1);
        if i % 10_000 == 9_999 {
            laps.push(t.elapsed());
            t = std::time::Instant::now();
        }
    }
    eprintln!("seconds per 10,000 creates: {laps:?}");
    fs.unmount().unwrap();
    drop(fs);
    assert_e2fsck_clean(&img);
    let fs = Fs::mount(&img, MountOptions::default()).unwrap();
    assert_eq!(fs.readdir(d.ino, 0, usize::MAX).unwrap().len(), 30_002);
}
