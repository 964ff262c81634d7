//! Acceptance: bad input gives a one-line error on stderr starting with
//! `mkfs.fext:` and a non-zero exit, and leaves no half-made image that
//! claims to be valid: bad options and sizes are rejected before the
//! target is touched (a missing image file is not even created), and a
//! failure while writing removes a file mkfs created or leaves an existing
//! one without a superblock.

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use common::{assert_e2fsck_clean, is_root, Cmd, Output, TempDir, TempImage};
use support::{mkfs, mkfs_ok, MKFS};

/// Panic unless `out` is a failure with exactly one line on stderr that
/// starts with `mkfs.fext:` and contains every word of `mentions`.
#[track_caller]
fn assert_one_line_error(out: &Output, mentions: &[&str]) {
    assert!(!out.success(), "expected a failure:\n{out}");
    let err = out.stderr.trim_end();
    assert_eq!(
        err.lines().count(),
        1,
        "expected one line on stderr:\n{out}"
    );
    assert!(
        err.starts_with("mkfs.fext: "),
        "stderr must start with 'mkfs.fext: ':\n{out}"
    );
    for word in mentions {
        assert!(err.contains(word), "error should mention {word:?}:\n{out}");
    }
}

/// Run mkfs with `args` followed by a not-yet-existing image path and
/// `size`; expect a one-line error and no file created.
#[track_caller]
fn rejects_before_creating(args: &[&str], size: &str, mentions: &[&str]) {
    let dir = TempDir::new("bad");
    let img = dir.join("new.img");
    let img_str = img.to_str().expect("utf-8 path");
    let mut all = args.to_vec();
    all.extend([img_str, size]);
    let out = mkfs(&all);
    assert_one_line_error(&out, mentions);
    assert!(
        !img.exists(),
        "{} was created although the options were rejected",
        img.display()
    );
    assert!(out.stdout.is_empty(), "nothing on stdout expected:\n{out}");
}

/// A valid image plus a copy of its bytes, to check a failed run did not
/// touch it.
fn valid_image() -> (TempImage, Vec<u8>) {
    let img = TempImage::empty();
    mkfs_ok(&["-t", "ext4"], img.path(), "8M");
    let bytes = fs::read(img.path()).expect("read image");
    (img, bytes)
}

#[track_caller]
fn assert_untouched(img: &Path, before: &[u8]) {
    let after = fs::read(img).expect("read image");
    assert!(after == before, "a rejected run modified {}", img.display());
    assert_e2fsck_clean(img);
}

#[test]
fn unknown_fs_type() {
    rejects_before_creating(&["-t", "ext5"], "8M", &["ext5"]);
    rejects_before_creating(&["-t", "xfs"], "8M", &["xfs"]);
}

#[test]
fn bad_block_size() {
    rejects_before_creating(&["-b", "3000"], "8M", &["3000"]);
    rejects_before_creating(&["-b", "512"], "8M", &["512"]);
    rejects_before_creating(&["-b", "abc"], "8M", &["abc"]);
}

#[test]
fn bad_size() {
    rejects_before_creating(&[], "12Q", &["12Q"]);
    rejects_before_creating(&[], "0", &["'0'"]);
    rejects_before_creating(&[], "-5M", &[]);
    rejects_before_creating(&[], "99999999T", &[]);
}

#[test]
fn too_small_size() {
    rejects_before_creating(&[], "8K", &["too small"]);
    rejects_before_creating(&[], "100K", &["too small"]);
    rejects_before_creating(&["-t", "ext2"], "60K", &["too small"]);
}

#[test]
fn unknown_feature() {
    rejects_before_creating(&["-O", "nosuch_feature"], "8M", &["nosuch_feature"]);
}

#[test]
fn unsupported_feature() {
    rejects_before_creating(&["-O", "bigalloc"], "8M", &["bigalloc", "not supported"]);
    rejects_before_creating(&["-O", "inline_data"], "8M", &["inline_data"]);
}

#[test]
fn impossible_feature_combinations() {
    rejects_before_creating(&["-O", "^extent"], "8M", &["64bit"]);
    rejects_before_creating(&["-t", "ext2", "-O", "orphan_file"], "8M", &["orphan_file"]);
    rejects_before_creating(
        &["-O", "^metadata_csum,metadata_csum_seed"],
        "8M",
        &["metadata_csum"],
    );
}

#[test]
fn other_bad_options() {
    rejects_before_creating(&["-I", "100"], "8M", &["100"]);
    rejects_before_creating(&["-L", "a-label-of-17-byte"], "8M", &["label"]);
    rejects_before_creating(&["-U", "not-a-uuid"], "8M", &["not-a-uuid"]);
    rejects_before_creating(&["-E", "no_such_option"], "8M", &["no_such_option"]);
    rejects_before_creating(&["-J", "size=abc"], "8M", &["abc"]);
    rejects_before_creating(&["-m", "60"], "8M", &["60"]);
    rejects_before_creating(&["-G", "3"], "8M", &["3"]);
    rejects_before_creating(&["-z"], "8M", &["-z"]);
}

#[test]
fn missing_arguments() {
    let out = mkfs(&[]);
    assert_one_line_error(&out, &["DEVICE"]);
}

#[test]
fn target_in_a_missing_directory() {
    let dir = TempDir::new("bad");
    let img = dir.join("no/such/dir/x.img");
    let out = mkfs(&[img.to_str().unwrap(), "8M"]);
    assert_one_line_error(&out, &["No such file or directory"]);
    assert!(!dir.join("no").exists());
}

#[test]
fn existing_file_without_size_that_is_empty() {
    let img = TempImage::empty();
    let out = mkfs(&[img.path().to_str().unwrap()]);
    assert_one_line_error(&out, &["empty"]);
    assert_eq!(img.len(), 0);
}

#[test]
fn read_only_target() {
    let (img, before) = valid_image();
    fs::set_permissions(img.path(), fs::Permissions::from_mode(0o444)).expect("chmod");
    let path = img.path().to_str().unwrap();
    let out = if is_root() {
        // root may write a mode-0444 file: run mkfs as nobody.
        let o = std::process::Command::new(MKFS)
            .args(["-F", path, "8M"])
            .uid(65534)
            .gid(65534)
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run mkfs as nobody");
        Output {
            cmdline: format!("(as nobody) {MKFS} -F {path} 8M"),
            code: o.status.code().unwrap_or(-1),
            timed_out: false,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            elapsed: Default::default(),
        }
    } else {
        mkfs(&["-F", path, "8M"])
    };
    assert_one_line_error(&out, &["Permission denied"]);
    assert_untouched(img.path(), &before);
}

#[test]
fn directory_as_target() {
    let dir = TempDir::new("bad");
    let out = mkfs(&[dir.path().to_str().unwrap(), "8M"]);
    assert_one_line_error(&out, &[]);
}

#[test]
fn source_dir_missing_or_not_a_directory() {
    rejects_before_creating(
        &["-d", "/nonexistent/source"],
        "8M",
        &["/nonexistent/source"],
    );
    let dir = TempDir::new("src");
    let file = dir.join("file");
    fs::write(&file, b"x").unwrap();
    rejects_before_creating(&["-d", file.to_str().unwrap()], "8M", &["not a directory"]);
}

#[test]
fn bad_options_leave_an_existing_image_untouched() {
    let (img, before) = valid_image();
    let path = img.path().to_str().unwrap();
    for args in [
        &["-F", "-t", "ext5", path, "8M"][..],
        &["-F", "-O", "bigalloc", path, "8M"],
        &["-F", "-b", "3000", path, "8M"],
        &["-F", path, "12Q"],
        &["-F", path, "100K"],
        &["-F", "-d", "/nonexistent/source", path, "8M"],
    ] {
        let out = mkfs(args);
        assert_one_line_error(&out, &[]);
        assert_untouched(img.path(), &before);
    }
}

/// A source tree bigger than the image: the failure comes after the
/// target was opened.
fn oversized_source() -> TempDir {
    let src = TempDir::new("src");
    fs::write(src.join("big"), vec![0x5a; 12 << 20]).expect("write source file");
    src
}

#[test]
fn full_file_system_removes_the_image_it_created() {
    let src = oversized_source();
    let dir = TempDir::new("bad");
    let img = dir.join("new.img");
    let out = mkfs(&[
        "-q",
        "-d",
        src.path().to_str().unwrap(),
        img.to_str().unwrap(),
        "8M",
    ]);
    assert_one_line_error(&out, &["big", "full"]);
    assert!(!img.exists(), "the half-made image was left behind");
}

#[test]
fn full_file_system_leaves_no_valid_superblock_in_an_existing_image() {
    let src = oversized_source();
    let (img, _) = valid_image();
    let out = mkfs(&[
        "-q",
        "-F",
        "-d",
        src.path().to_str().unwrap(),
        img.path().to_str().unwrap(),
        "8M",
    ]);
    assert_one_line_error(&out, &["big", "full"]);
    let probe = Cmd::new("dumpe2fs").arg("-h").arg(img.path()).output();
    assert!(
        !probe.success(),
        "the failed image still has a superblock:\n{probe}"
    );
}
