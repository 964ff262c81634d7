//! PENDING (not part of the suite; these fail today): gaps between fext
//! and ext4 found by the end-to-end tests, each a minimal reproducer. To
//! run them, copy this file to `tests/` and drop the `#[path]` attribute.

#[path = "../common/mod.rs"]
mod common;

use std::fs::{self, File, OpenOptions};
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
