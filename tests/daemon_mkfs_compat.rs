//! Images made by the system's (Debian's) mkfs.ext2/3/4, at 1 KiB and
//! 4 KiB blocks, plus upstream 1.47's extra defaults (orphan_file,
//! metadata_csum_seed): fext mounts each and takes a realistic workload
//! (`cp -a` of the rich tree, modifications, half of it deleted); the
//! kernel's ext4 takes the same workload on a twin image; then every
//! oracle of [`Pair::finish`] (same trees, clean exit, e2fsck -fn, the
//! kernel's view of fext's image).

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::pair::{no_mtime, Mkfs, Pair, PairConfig};
use common::richtree::pattern;
use common::*;

/// The source tree (without the 50 MiB files unless `big`).
fn source_tree(big: bool) -> TempDir {
    temp_rich_tree(
        "rich-src",
        &RichTreeOpts {
            big_files: big,
            many_entries: 2000,
            block_size: 1024,
        },
    )
}

fn workload(root: &Path, src: &Path) {
    let dst = root.join("tree");
    Cmd::new("cp")
        .arg("-a")
        .arg(src)
        .arg(&dst)
        .timeout(std::time::Duration::from_secs(300))
        .run_ok();
    // Modify: append, overwrite, truncate, chmod, rename, new xattrs.
    let mut f = OpenOptions::new()
        .append(true)
        .open(dst.join("files/few_blocks"))
        .unwrap();
    f.write_all(&pattern(70_000, 9)).unwrap();
    drop(f);
    fs::write(dst.join("files/tiny"), b"rewritten").unwrap();
    OpenOptions::new()
        .write(true)
        .open(dst.join("files/one_block"))
        .unwrap()
        .set_len(100)
        .unwrap();
    fs::set_permissions(
        dst.join("modes/exec_0755"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    fs::rename(dst.join("dirs/a"), dst.join("names/moved_a")).unwrap();
    xattr::set(&dst.join("files/tiny"), "user.added", b"after copy").unwrap();
    fs::create_dir_all(dst.join("new/deeper")).unwrap();
    for i in 0..50 {
        fs::write(
            dst.join(format!("new/deeper/file{i}")),
            pattern(i * 997, i as u64),
        )
        .unwrap();
    }
    // Delete half of the many entries, and a few whole subtrees.
    let mut names: Vec<_> = fs::read_dir(dst.join("many"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for n in names.iter().step_by(2) {
        fs::remove_file(dst.join("many").join(n)).unwrap();
    }
    fs::remove_dir_all(dst.join("hardlinks/sub")).unwrap();
    fs::remove_dir_all(dst.join("xattrs")).unwrap();
}

fn run(fs_type: &'static str, bs: u32, features: &'static str, big: bool) {
    let cfg = PairConfig {
        fs_type,
        block_size: Some(bs),
        size: if big { 512 << 20 } else { 256 << 20 },
        features,
        fext_opts: String::new(),
        mkfs: Mkfs::System,
    };
    let src_dir = source_tree(big);
    let src = src_dir.path();
    let Some(pair) = Pair::new(cfg) else { return };
    // The images really are what mke2fs makes by default.
    let d = dumpe2fs_h(&pair.fext_img);
    eprintln!("features: {:?}", d.features());
    workload(pair.ref_root(), src);
    workload(pair.fext_root(), src);
    pair.finish(&no_mtime());
}

#[test]
fn mke2fs_ext2_1k() {
    run("ext2", 1024, "", false);
}

#[test]
fn mke2fs_ext2_4k() {
    run("ext2", 4096, "", false);
}

#[test]
fn mke2fs_ext3_1k() {
    run("ext3", 1024, "", false);
}

#[test]
fn mke2fs_ext3_4k() {
    run("ext3", 4096, "", false);
}

#[test]
fn mke2fs_ext4_1k() {
    run("ext4", 1024, "", false);
}

#[test]
fn mke2fs_ext4_4k_with_big_files() {
    run("ext4", 4096, "", true);
}

#[test]
fn mke2fs_ext4_4k_upstream_defaults() {
    run("ext4", 4096, "orphan_file,metadata_csum_seed", false);
}
