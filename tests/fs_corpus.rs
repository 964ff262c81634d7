//! Every corrupt image of the shared corpus, mounted by the file-system
//! core in process: either refused with a clear error or walked completely
//! (every directory listed, every file read, every symlink and xattr list
//! fetched) without a panic and within a time bound.

#![allow(dead_code)]
mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use common::*;
use fext::fs::{Fs, MountOptions};

const ROOT: u32 = 2;
const LIMIT: Duration = Duration::from_secs(20);

/// Walks the whole tree; returns how many inodes were visited and how many
/// operations failed (corruption reported as errors is fine).
fn walk(fs: &Fs, start: Instant) -> (usize, usize) {
    let mut stack = vec![ROOT];
    let mut seen = std::collections::HashSet::new();
    let (mut visited, mut errors) = (0, 0);
    while let Some(dir) = stack.pop() {
        if !seen.insert(dir) || start.elapsed() > LIMIT {
            continue;
        }
        let entries = match fs.readdir(dir, 0, 100_000) {
            Ok(e) => e,
            Err(_) => {
                errors += 1;
                continue;
            }
        };
        for e in entries {
            if e.name == b"." || e.name == b".." {
                continue;
            }
            visited += 1;
            let a = match fs.lookup(dir, &e.name) {
                Ok(a) => a,
                Err(_) => {
                    errors += 1;
                    continue;
                }
            };
            errors += usize::from(fs.listxattr(a.ino).is_err());
            match a.mode & 0o170000 {
                0o040000 => stack.push(a.ino),
                0o100000 => {
                    let mut off = 0;
                    while off < a.size.min(64 << 20) {
                        match fs.read(a.ino, off, 1 << 20) {
                            Ok(d) if !d.is_empty() => off += d.len() as u64,
                            Ok(_) => break,
                            Err(_) => {
                                errors += 1;
                                break;
                            }
                        }
                    }
                }
                0o120000 => errors += usize::from(fs.readlink(a.ino).is_err()),
                _ => {}
            }
        }
    }
    (visited, errors)
}

#[test]
fn corpus_images_mount_or_are_refused_and_never_panic() {
    let images = corpus_images();
    assert!(
        !images.is_empty(),
        "the corpus is missing: {}",
        corpus_dir().display()
    );
    let mut report = Vec::new();
    for img in &images {
        let tmp = img.unpack();
        let start = Instant::now();
        let opts = MountOptions {
            read_only: true,
            ..MountOptions::default()
        };
        let r = catch_unwind(AssertUnwindSafe(|| match Fs::mount(tmp.path(), opts) {
            Ok(fs) => {
                let (v, e) = walk(&fs, start);
                format!("mounted: {v} entries, {e} errors")
            }
            Err(e) => {
                assert!(
                    !e.detail.is_empty(),
                    "{}: refusal without a message",
                    img.name
                );
                format!("refused: {}", e.detail)
            }
        }));
        let line = match r {
            Ok(s) => s,
            Err(_) => panic!("{}: the file-system core panicked", img.name),
        };
        assert!(
            start.elapsed() < LIMIT * 2,
            "{}: took {:?}",
            img.name,
            start.elapsed()
        );
        report.push(format!("{:45} e2fsck={:3} {line}", img.name, img.e2fsck_rc));
    }
    eprintln!("{}", report.join("\n"));
}
