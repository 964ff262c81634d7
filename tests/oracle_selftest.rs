//! Self-tests of the test oracles in `tests/common`: each oracle must accept
//! what is right AND reject what is wrong, or it proves nothing.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// What `mke2fs -d` (e2fsprogs 1.47.0) loses when copying the rich tree,
/// under the default comparison (mtime in seconds): it stores only the low
/// 32 bits of the mtime, so 2100-01-01 wraps to 1963. (It also drops all
/// nanoseconds, which only `CompareOpts::mtime_nsec` sees.)
const MKE2FS_D_LOSSES: &[(&str, &str)] = &[("times/y2100", "mtime")];

/// `(path, kind)` of each diff.
fn kinds(diffs: &[Diff]) -> BTreeSet<(String, &'static str)> {
    diffs
        .iter()
        .map(|d| (d.path.to_string_lossy().into_owned(), d.kind))
        .collect()
}

/// Every `expected` (path, kind) is reported, and nothing outside the
/// `allowed` paths (the mutated ones and their parents) is.
fn assert_reports(diffs: &[Diff], expected: &[(&str, &str)], allowed: &[&str]) {
    let got = kinds(diffs);
    let listing: Vec<String> = diffs.iter().map(Diff::to_string).collect();
    for (path, kind) in expected {
        assert!(
            got.contains(&(path.to_string(), *kind)),
            "expected a {kind:?} difference at {path:?}; got:\n{}",
            listing.join("\n")
        );
    }
    for d in diffs {
        let p = d.path.to_string_lossy();
        assert!(
            allowed.contains(&p.as_ref()) || expected.iter().any(|(e, _)| *e == p),
            "unexpected difference {d}; all:\n{}",
            listing.join("\n")
        );
    }
}

fn small_tree_opts() -> RichTreeOpts {
    RichTreeOpts {
        big_files: false,
        many_entries: 50,
        block_size: 4096,
    }
}

/// Copy a tree with everything `cp -a` preserves (modes, owners, times to
/// the nanosecond, xattrs incl. ACLs, hard links, special files).
/// Without root, `cp` cannot read the mode-0000 file: open it up for the copy.
fn copy_tree(src: &Path, dst: &Path) {
    let locked = src.join("modes/zero_0000");
    let unlock = !is_root() && locked.exists();
    if unlock {
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o400)).unwrap();
    }
    Cmd::new("cp")
        .arg("-a")
        .arg(src.join("."))
        .arg(dst)
        .run_ok();
    if unlock {
        for p in [locked, dst.join("modes/zero_0000")] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o000)).unwrap();
        }
    }
}

fn set_mtime_nsec(path: &Path, sec: i64, nsec: i64) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let t = [libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }; 2];
    // SAFETY: valid path and two valid timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            t.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0, "utimensat: {}", std::io::Error::last_os_error());
}

#[test]
fn run_captures_output_and_exit_code() {
    let out = run("sh", &["-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.code, 3);
    assert!(!out.timed_out && !out.success());
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
    // Programs in /usr/sbin are found even when PATH lacks it.
    assert!(
        have_program("e2fsck"),
        "e2fsck not found: install e2fsprogs"
    );
    let input = Cmd::new("cat").stdin_bytes("piped input").run_ok();
    assert_eq!(input.stdout, "piped input");
}

#[test]
fn run_kills_the_whole_process_group_on_timeout() {
    let start = Instant::now();
    // The background sleep keeps stdout open: only a group kill ends it.
    let out = Cmd::new("sh")
        .args(["-c", "sleep 30 & echo started; sleep 30"])
        .timeout(Duration::from_millis(500))
        .output();
    assert!(out.timed_out);
    assert_eq!(out.code, 124);
    assert_eq!(out.stdout, "started\n");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );

    let panic = std::panic::catch_unwind(|| {
        Cmd::new("sleep")
            .arg("30")
            .timeout(Duration::from_millis(200))
            .run()
    });
    assert!(panic.is_err(), "run() must panic on timeout");
}

#[test]
fn run_ok_failure_shows_the_output() {
    let err = std::panic::catch_unwind(|| run_ok("sh", &["-c", "echo the-reason >&2; exit 1"]))
        .expect_err("run_ok must panic on exit code 1");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("the-reason") && msg.contains("exit code 1"),
        "{msg}"
    );
}

#[test]
fn bg_child_is_stopped_on_drop() {
    let child = BgChild::spawn(&Cmd::new("sh").args(["-c", "echo up; exec sleep 1000"]));
    let pid = libc::pid_t::try_from(child.pid()).unwrap();
    assert!(wait_until(
        Duration::from_secs(10),
        Duration::from_millis(10),
        || child.log().contains("up")
    ));
    drop(child);
    // SAFETY: kill with signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "child {pid} still exists after drop");
}

#[test]
fn temp_dirs_and_images_are_removed_even_on_panic() {
    let path = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let dir = TempDir::new("panic");
        fs::write(dir.join("f"), b"x").unwrap();
        *path.lock().unwrap() = Some(dir.path().to_owned());
        panic!("deliberate");
    });
    assert!(result.is_err());
    let path = path.lock().unwrap().clone().unwrap();
    assert!(!path.exists(), "{} survived the panic", path.display());

    let img = TempImage::new(1 << 30);
    assert_eq!(img.len(), 1 << 30);
    let p = img.path().to_owned();
    drop(img);
    assert!(!p.exists());
}

#[test]
fn dumpe2fs_parser_reads_superblock_and_journal_fields() {
    let img = mke2fs_image(
        &[
            "-t",
            "ext4",
            "-b",
            "4096",
            "-L",
            "fextlabel",
            "-U",
            "6b33f7a0-1b1c-4d8e-9a57-0a1b2c3d4e5f",
        ],
        "64M",
    );
    let sb = dumpe2fs_h(img.path());
    assert_eq!(sb.value("Filesystem volume name"), "fextlabel");
    assert_eq!(
        sb.value("Filesystem UUID"),
        "6b33f7a0-1b1c-4d8e-9a57-0a1b2c3d4e5f"
    );
    assert_eq!(sb.num("Block size"), 4096);
    assert_eq!(sb.num("Block count"), 16384);
    assert_eq!(sb.value("Filesystem magic number"), "0xEF53");
    for f in [
        "has_journal",
        "extent",
        "metadata_csum",
        "64bit",
        "dir_index",
    ] {
        assert!(sb.has_feature(f), "{f} missing from {:?}", sb.features());
    }
    assert!(!sb.has_feature("extents"), "features must be whole words");
    assert!(
        sb.get("Total journal size").is_some(),
        "journal fields are parsed too"
    );
    assert_eq!(
        sb.list("Journal features"),
        Vec::<String>::new(),
        "(none) is an empty list"
    );
    assert_eq!(sb.get("No such key"), None);

    let img2 = mke2fs_image(&["-t", "ext2"], "8M");
    let sb2 = dumpe2fs_h(img2.path());
    assert!(!sb2.has_feature("has_journal") && !sb2.has_feature("extent"));
    assert_eq!(sb2.num("Block size"), 1024, "small images get 1 KiB blocks");
}

#[test]
fn e2fsck_oracle_accepts_clean_and_rejects_corrupt_images() {
    let img = mke2fs_image(&["-t", "ext4"], "32M");
    debugfs_w(img.path(), &["mkdir d", "symlink d/l /x"]);
    assert_e2fsck_clean(img.path());
    assert!(debugfs_r(img.path(), "ls -l /d").contains(" l"));

    debugfs_w(img.path(), &["set_inode_field / links_count 7"]);
    let (code, output) = e2fsck_fn(img.path());
    assert_eq!(code, 4, "{output}");
    assert!(output.contains("ref count is 7"), "{output}");
    let err = std::panic::catch_unwind(|| assert_e2fsck_clean(img.path())).expect_err("must panic");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("ref count is 7"),
        "the failure must show e2fsck's output: {msg}"
    );
}

/// The comparison oracle finds each kind of difference between a tree and
/// a `cp -a` copy of it, and none before the copy is touched.
#[test]
fn compare_trees_reports_every_kind_of_difference() {
    let a = TempDir::new("cmp-a");
    let b = TempDir::new("cmp-b");
    let tree = make_rich_tree_with(a.path(), &small_tree_opts());
    copy_tree(a.path(), b.path());
    let strict = CompareOpts {
        mtime_nsec: true,
        ..CompareOpts::default()
    };
    assert_trees_equal(a.path(), b.path(), &strict);
    assert!(compare_trees(a.path(), b.path()).is_empty());

    let pb = |rel: &str| b.join(rel);
    fs::set_permissions(pb("modes/exec_0755"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::File::options()
        .write(true)
        .open(pb("files/few_blocks"))
        .unwrap()
        .write_all_at(b"!", 5000)
        .unwrap();
    fs::File::options()
        .write(true)
        .open(pb("files/sparse_tail"))
        .unwrap()
        .write_all_at(b"!", 5 << 20)
        .unwrap();
    fs::write(pb("files/tiny"), b"hello, fext!\n").unwrap();
    fs::remove_file(pb("links/dangling")).unwrap();
    std::os::unix::fs::symlink("does/not/exisT", pb("links/dangling")).unwrap();
    xattr::set(&pb("xattrs/small"), "user.small", b"2").unwrap();
    xattr::remove(&pb("xattrs/many"), "user.attr_03").unwrap();
    xattr::set(&pb("xattrs/dir"), "user.extra", b"new").unwrap();
    fs::write(pb("names/new_file"), b"").unwrap();
    fs::remove_file(pb("names/-dash")).unwrap();
    fs::remove_file(pb("hardlinks/pair2")).unwrap();
    fs::copy(pb("hardlinks/pair1"), pb("hardlinks/pair2")).unwrap();
    fs::remove_file(pb("special/fifo")).unwrap();
    fs::create_dir(pb("special/fifo")).unwrap();
    set_mtime_nsec(&pb("times/nsec"), 1_000_000_000, 987_654_322);
    let mut expected = vec![
        ("modes/exec_0755", "mode"),
        ("files/few_blocks", "content"),
        ("files/sparse_tail", "content"),
        ("files/tiny", "size"),
        ("links/dangling", "symlink"),
        ("xattrs/small", "xattr"),
        ("xattrs/many", "xattr"),
        ("xattrs/dir", "xattr"),
        ("names/new_file", "only-in-b"),
        ("names/-dash", "only-in-a"),
        ("hardlinks/pair2", "hardlink"),
        ("hardlinks/pair1", "nlink"),
        ("special/fifo", "type"),
    ];
    if tree.skipped.is_empty() {
        std::os::unix::fs::lchown(pb("owned/file"), Some(4321), None).unwrap();
        std::os::unix::fs::lchown(pb("owned/dir"), None, Some(8765)).unwrap();
        fs::remove_file(pb("dev/char_1_3")).unwrap();
        Cmd::new("mknod")
            .arg(pb("dev/char_1_3"))
            .args(["c", "1", "5"])
            .run_ok();
        Cmd::new("chmod")
            .arg("0666")
            .arg(pb("dev/char_1_3"))
            .run_ok();
        xattr::set(&pb("xattrs/trusted"), "trusted.fext", b"changed").unwrap();
        expected.extend([
            ("owned/file", "uid"),
            ("owned/dir", "gid"),
            ("dev/char_1_3", "rdev"),
            ("xattrs/trusted", "xattr"),
        ]);
    } else {
        eprintln!("not root: ownership, device and trusted.* mutations not checked");
    }
    // Directories whose entries changed get a new mtime: allowed.
    let allowed = [
        "links",
        "names",
        "hardlinks",
        "special",
        "dev",
        "dev/char_1_3",
        "files/few_blocks",
        "files/sparse_tail",
        "files/tiny",
        "hardlinks/pair2",
        "special/fifo",
    ];

    let diffs = compare_trees_with(a.path(), b.path(), &strict);
    let mut with_nsec = expected.clone();
    with_nsec.push(("times/nsec", "mtime"));
    assert_reports(&diffs, &with_nsec, &allowed);

    // Seconds only (the default): the 1 ns change is not a difference.
    let diffs = compare_trees_with(a.path(), b.path(), &CompareOpts::default());
    assert_reports(&diffs, &expected, &allowed);
    assert!(!kinds(&diffs).contains(&("times/nsec".into(), "mtime")));
    assert_eq!(compare_trees(a.path(), b.path()).len(), diffs.len());
}

/// Holes in both files are skipped, so a 1 TiB sparse file compares in
/// moments, and data anywhere in it is still compared.
#[test]
fn compare_trees_skips_common_holes_but_not_data() {
    let a = TempDir::new("sparse-a");
    let b = TempDir::new("sparse-b");
    let size = 1u64 << 40;
    for dir in [&a, &b] {
        let f = fs::File::create(dir.join("huge")).unwrap();
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(b"tail", size - 4).unwrap();
        f.set_len(size).unwrap();
        set_mtime_nsec(&dir.join("huge"), 1_700_000_000, 0);
    }
    let start = Instant::now();
    assert!(compare_trees(a.path(), b.path()).is_empty());
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );

    // Data in b where a has a hole.
    fs::File::options()
        .write(true)
        .open(b.join("huge"))
        .unwrap()
        .write_all_at(b"x", 1 << 39)
        .unwrap();
    set_mtime_nsec(&b.join("huge"), 1_700_000_000, 0);
    let diffs = compare_trees(a.path(), b.path());
    assert_eq!(
        diffs,
        vec![format!(
            "huge: content: first difference at byte {}: 0x00 vs 0x78",
            1u64 << 39
        )]
    );
}

/// Image of the rich tree by the system's `mke2fs -d`: e2fsck clean, the
/// kernel shows the same tree (up to mke2fs' documented losses), and changes
/// to the source after imaging are all seen.
#[test]
fn mke2fs_d_image_of_rich_tree_matches_kernel_mount() {
    if !require_kernel_mount() {
        return;
    }
    let src = TempDir::new("rich-src");
    let tree = make_rich_tree(src.path());
    assert!(
        tree.skipped.is_empty(),
        "as root nothing is skipped: {:?}",
        tree.skipped
    );
    let img = mke2fs_image(
        &[
            "-t",
            "ext4",
            "-b",
            "4096",
            "-d",
            &src.path().to_string_lossy(),
        ],
        "256M",
    );
    assert_e2fsck_clean(img.path());
    let mnt = KernelMount::new(img.path(), false);

    let diffs = compare_trees_with(src.path(), mnt.path(), &CompareOpts::default());
    for d in &diffs {
        eprintln!("mke2fs -d loses: {d}");
    }
    assert_reports(
        &diffs,
        &[],
        &MKE2FS_D_LOSSES.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
    );
    assert!(
        kinds(&diffs)
            .iter()
            .all(|(p, k)| MKE2FS_D_LOSSES.contains(&(p.as_str(), *k))),
        "unexpected kinds: {diffs:?}"
    );

    // The oracle cannot pass vacuously: change the source, see each change.
    let ps = |rel: &str| src.join(rel);
    fs::set_permissions(ps("modes/private_0600"), fs::Permissions::from_mode(0o640)).unwrap();
    let at = (37u64 << 20) + 5;
    let big = fs::File::options()
        .read(true)
        .write(true)
        .open(ps("files/big_50m"))
        .unwrap();
    let mut byte = [0u8; 1];
    big.read_exact_at(&mut byte, at).unwrap();
    big.write_all_at(&[!byte[0]], at).unwrap();
    drop(big);
    xattr::set(
        &ps("xattrs/large"),
        "user.large",
        &richtree::pattern(3000, 4),
    )
    .unwrap();
    let diffs = compare_trees_with(src.path(), mnt.path(), &CompareOpts::default());
    assert_reports(
        &diffs,
        &[
            ("modes/private_0600", "mode"),
            ("files/big_50m", "content"),
            ("xattrs/large", "xattr"),
        ],
        &MKE2FS_D_LOSSES.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
    );
    let content = diffs.iter().find(|d| d.kind == "content").unwrap();
    assert!(content.detail.contains(&format!("byte {at}:")), "{content}");
}

/// The kernel itself copies the rich tree into an empty ext4 image
/// (`cp -a` on a read-write loop mount): after unmounting, e2fsck is clean
/// and a fresh read-only mount equals the source exactly, nanoseconds,
/// post-2038 times and all.
#[test]
fn kernel_written_copy_of_rich_tree_is_exact() {
    if !require_kernel_mount() {
        return;
    }
    let src = TempDir::new("rich-src");
    make_rich_tree(src.path());
    let img = mke2fs_image(&["-t", "ext4", "-b", "4096"], "256M");
    let rw = KernelMount::new(img.path(), true);
    copy_tree(src.path(), rw.path());
    rw.unmount().expect("unmount");
    assert_e2fsck_clean(img.path());

    let ro = KernelMount::new(img.path(), false);
    let strict = CompareOpts {
        mtime_nsec: true,
        ..CompareOpts::default()
    };
    assert_trees_equal(src.path(), ro.path(), &strict);
    let sb = dumpe2fs_h(img.path());
    assert!(sb.has_feature("metadata_csum"));
}

#[test]
fn kernel_mount_is_unmounted_and_removed_even_on_panic() {
    if !require_kernel_mount() {
        return;
    }
    let img = mke2fs_image(&["-t", "ext4"], "16M");
    let mount_point = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let m = KernelMount::new(img.path(), true);
        fs::write(m.path().join("file"), b"written through the kernel").unwrap();
        assert!(is_mountpoint(m.path()));
        *mount_point.lock().unwrap() = Some(m.path().to_owned());
        panic!("deliberate");
    });
    assert!(result.is_err());
    let mp = mount_point.lock().unwrap().clone().unwrap();
    assert!(!is_mountpoint(&mp), "{} still mounted", mp.display());
    assert!(!mp.exists(), "{} not removed", mp.display());
    assert_e2fsck_clean(img.path());
    assert!(debugfs_r(img.path(), "cat /file").contains("written through the kernel"));

    // A failed mount is an Err with mount's output, and leaves nothing behind.
    let zeroes = TempImage::new(16 << 20);
    let start = Instant::now();
    let err = KernelMount::try_new(zeroes.path(), false, "").expect_err("zeroes are not ext4");
    assert!(err.contains("mount") && err.contains("dmesg"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "no retry loop on a bad fs"
    );
}

#[test]
fn corpus_lists_verdicts_and_unpacks_private_copies() {
    let all = corpus_images();
    assert!(all.len() >= 100, "only {} corpus images", all.len());
    assert!(all.iter().any(CorpusImage::is_clean));
    assert!(all.iter().any(CorpusImage::e2fsck_hangs));
    for c in &all {
        assert!(matches!(c.e2fsck_rc, 0 | 4 | 8 | 12 | 124), "{c:?}");
    }
    // A recorded verdict is reproduced on an unpacked copy, for a clean and
    // a damaged image.
    let clean = all.iter().find(|c| c.is_clean()).unwrap();
    let damaged = all.iter().find(|c| c.e2fsck_rc == 4).unwrap();
    for c in [clean, damaged] {
        let img = c.unpack();
        assert!(img.len() > 0);
        let (code, output) = e2fsck_fn(img.path());
        assert_eq!(code, c.e2fsck_rc, "{}: {output}", c.name);
    }
    assert_eq!(
        corpus_image(&format!("{}.img.gz", clean.name)).name,
        clean.name
    );
}
