//! Shared helpers of the integration tests: the oracles every test ends with.
//!
//! Use from a test file with `mod common;` and `use common::*;`.
//!
//! - [`cmd`]: run external programs with a timeout ([`run`], [`run_ok`],
//!   [`Cmd`]), long-running children killed on drop ([`BgChild`]).
//! - [`tmp`]: [`TempDir`] / [`TempImage`] removed on drop, also on panic.
//! - [`e2fs`]: [`mke2fs_image`], [`e2fsck_fn`], [`assert_e2fsck_clean`], [`dumpe2fs_h`],
//!   [`debugfs_r`], [`debugfs_w`].
//! - [`mount`]: [`KernelMount`] (loop mount, unmounted on drop) and the
//!   root/skip policy: [`require_kernel_mount`], [`require_root`].
//! - [`pair`]: [`pair::Pair`], one workload on fext and on the kernel's ext4,
//!   judged by every oracle.
//! - [`compare`]: the tree oracle [`compare_trees`].
//! - [`richtree`]: [`make_rich_tree`], a source tree with every file type.
//! - [`corpus`]: the e2fsprogs image corpus in `../shared/corpus`.
//! - [`fext_mount`]: [`FextMount`], the `fext` daemon mounted at a temp dir
//!   (unmounted and waited for on drop), [`make_fext_image`].
//! - [`xattr`]: `l*xattr` wrappers.
//! - [`rawimage`]: blocks, superblock fields and debugfs hex dumps of an
//!   image, for the format layer's tests.
//! - [`sys`]: libc wrappers (renameat2, mknod, utimensat, fallocate, ...)
//!   returning `io::Result` for errno checks.
//!
//! Everything here panics with a full message (command output included)
//! when something goes wrong: these are test helpers.
//!
//! Environment knobs: `FEXT_REQUIRE_ALL=1` (no skipping; set by `.ci/run`),
//! `FEXT_KEEP_TMP=1` (keep temp files), `FEXT_CORPUS_DIR`, `FEXT_BIN_DIR`.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code, unused_imports)]

pub mod cmd;
pub mod compare;
pub mod corpus;
pub mod e2fs;
pub mod fext_mount;
pub mod mount;
pub mod pair;
pub mod rawimage;
pub mod richtree;
pub mod sys;
pub mod tmp;
pub mod xattr;

use std::path::PathBuf;

pub use cmd::{have_program, run, run_ok, wait_until, BgChild, Cmd, Output, DEFAULT_TIMEOUT};
pub use compare::{assert_trees_equal, compare_trees, compare_trees_with, CompareOpts, Diff};
pub use corpus::{corpus_dir, corpus_image, corpus_images, workspace_root, CorpusImage};
pub use e2fs::{
    assert_e2fsck_clean, debugfs_r, debugfs_w, dumpe2fs_h, e2fsck_fn, e2fsck_fy, mke2fs_image,
    Dumpe2fs,
};
pub use fext_mount::{fext_bin, make_fext_image, mount_entry, FextMount};
pub use mount::{is_root, kernel_mount_check, require_kernel_mount, require_root, KernelMount};
pub use richtree::{make_rich_tree, make_rich_tree_with, temp_rich_tree, RichTree, RichTreeOpts};
pub use tmp::{is_mountpoint, TempDir, TempImage};

/// Path of a binary built from this workspace (e.g. `"mkfs.fext"`), for
/// tests of another package than the binary's.
///
/// Looks in `$FEXT_BIN_DIR` if set, else in the profile directory of the
/// running test executable (`target/<profile>/deps/x-HASH` ->
/// `target/<profile>/`). `cargo test --workspace` puts every binary of a
/// package that has integration tests there before running any test.
/// Panics with directions if the binary is missing. Tests inside the
/// binary's own package should prefer `env!("CARGO_BIN_EXE_<name>")`.
pub fn workspace_bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("FEXT_BIN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let exe = std::env::current_exe().expect("current_exe");
            let deps = exe.parent().expect("test exe has a directory");
            deps.parent().unwrap_or(deps).to_owned()
        }
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} not found: build it first (`cargo build --workspace`, same profile as the tests) or set FEXT_BIN_DIR",
        path.display()
    );
    path
}
