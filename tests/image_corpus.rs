//! The corpus acceptance test of the image reader: every image of
//! e2fsprogs' damaged-image corpus (`../shared/corpus`) must open and walk
//! in bounded time without a panic, and either parse clean or return clear
//! errors. Images e2fsck finds clean must walk clean too, except the
//! listed ones (each with its reason).
//!
//! Run with `--nocapture` to see the summary table.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use fext::format::image::ImageView;

/// Time one image may take (open + walk), debug build included.
const LIMIT: Duration = Duration::from_secs(10);

/// e2fsck-clean images on which we report problems, and why.
const CLEAN_EXCEPTIONS: &[(&str, &str)] = &[
    (
        "f_ea_inode_no_feature",
        "an in-inode xattr names EA inode 13 without the ea_inode feature: the kernel's \
         check_xattrs refuses it; e2fsck 1.47.0 predates this test image (1.47.1 flags it)",
    ),
    (
        "f_ea_inode_spurious_flag_dir",
        "ea_inode is an INCOMPAT feature fext does not support: refused at open",
    ),
    (
        "f_ea_unsigned_hash",
        "ea_inode is an INCOMPAT feature fext does not support: refused at open",
    ),
    (
        "f_ea_zero_size",
        "ea_inode is an INCOMPAT feature fext does not support: refused at open",
    ),
    (
        "f_valid_ea_in_inode",
        "ea_inode is an INCOMPAT feature fext does not support: refused at open",
    ),
    (
        "f_extent_too_deep",
        "extent tree of depth 7: the kernel refuses depth > 5 (EXT4_MAX_EXTENT_DEPTH); \
         e2fsck only offers to make it shallower",
    ),
    (
        "f_uninit_enable",
        "group 0's descriptor checksum is 0, should be 0x13f6: e2fsck -n prints that \
         too but exits 0",
    ),
];

#[derive(Debug, Clone)]
enum Verdict {
    Clean { notes: Vec<String> },
    Errors { count: u64, first: Vec<String> },
    Refused(String),
}

impl Verdict {
    fn short(&self) -> String {
        match self {
            Verdict::Clean { notes } if notes.is_empty() => "clean".into(),
            Verdict::Clean { notes } => format!("clean ({})", notes.join("; ")),
            Verdict::Errors { count, first } => {
                format!(
                    "{count} errors: {}",
                    first.first().map_or("", |s| s.as_str())
                )
            }
            Verdict::Refused(why) => format!("open refused: {why}"),
        }
    }
}

fn judge(bytes: &[u8]) -> Verdict {
    match ImageView::open(bytes) {
        Err(e) => Verdict::Refused(e.to_string()),
        Ok(view) => {
            let report = view.walk();
            if report.is_clean() {
                Verdict::Clean {
                    notes: report.notes,
                }
            } else {
                Verdict::Errors {
                    count: report.error_count(),
                    first: report
                        .errors
                        .iter()
                        .take(5)
                        .map(|e| e.to_string())
                        .collect(),
                }
            }
        }
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string panic>".into())
}

#[test]
fn every_corpus_image_opens_and_walks_in_bounded_time_without_panicking() {
    let images = corpus_images();
    assert!(!images.is_empty(), "empty corpus");
    let mut failures = Vec::new();
    let mut rows = Vec::new();
    let (mut n_clean, mut n_errors, mut n_refused) = (0, 0, 0);
    let mut agree = 0;
    let mut slowest = (Duration::ZERO, String::new());
    for img in &images {
        let tmp = img.unpack();
        let bytes = std::fs::read(tmp.path()).expect("read unpacked image");
        let (tx, rx) = mpsc::channel();
        let name = img.name.clone();
        thread::spawn(move || {
            let start = Instant::now();
            let r = catch_unwind(AssertUnwindSafe(|| judge(&bytes)));
            let _ = tx.send((r.map_err(|p| panic_message(&*p)), start.elapsed()));
        });
        let verdict = match rx.recv_timeout(LIMIT) {
            Ok((Ok(v), elapsed)) => {
                if elapsed > LIMIT {
                    failures.push(format!("{name}: took {elapsed:?}"));
                }
                if elapsed > slowest.0 {
                    slowest = (elapsed, name.clone());
                }
                v
            }
            Ok((Err(msg), _)) => {
                failures.push(format!("{name}: PANIC: {msg}"));
                continue;
            }
            Err(_) => {
                failures.push(format!("{name}: did not finish within {LIMIT:?}"));
                continue;
            }
        };
        let we_clean = matches!(verdict, Verdict::Clean { .. });
        match &verdict {
            Verdict::Clean { .. } => n_clean += 1,
            Verdict::Errors { .. } => n_errors += 1,
            Verdict::Refused(_) => n_refused += 1,
        }
        if we_clean == img.is_clean() {
            agree += 1;
        }
        if img.is_clean() && !we_clean {
            let listed = CLEAN_EXCEPTIONS.iter().any(|(n, _)| *n == name);
            if !listed {
                let detail = match &verdict {
                    Verdict::Errors { first, .. } => first.join("\n    "),
                    other => other.short(),
                };
                failures.push(format!(
                    "{name}: e2fsck finds it clean, we do not:\n    {detail}"
                ));
            }
        }
        rows.push((name, img.e2fsck_rc, verdict));
    }
    println!("{:<36} {:>6}  ours", "image", "e2fsck");
    for (name, rc, v) in &rows {
        let mut s = v.short();
        if s.len() > 150 {
            s.truncate(150);
        }
        println!("{name:<36} {rc:>6}  {s}");
    }
    println!(
        "{} images: {n_clean} clean, {n_errors} with errors, {n_refused} refused; \
         clean/not-clean agreement with e2fsck on {agree}; slowest {} in {:?}",
        rows.len(),
        slowest.1,
        slowest.0
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
