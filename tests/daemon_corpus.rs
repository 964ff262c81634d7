//! The daemon against the corpus of damaged and unusual images
//! (`../shared/corpus`): every image either mounts or is refused with a
//! clear message (non-zero exit, a `fext:` line on stderr, no panic); a
//! mounted image survives `find`, `ls -lR`, `cat` of every file,
//! `readlink` of every symlink and `getfattr` of everything (each with a
//! time limit) without the daemon crashing or hanging, then unmounts
//! cleanly (exit 0). The walk only reads, so the image must not get
//! worse: `e2fsck -fn`'s exit code afterwards is at most what it was
//! before (0 clean < 4 errors < 8 operational error < 12).
//!
//! The images are split over [`SHARDS`] tests so they run in parallel.

mod common;

use std::time::Duration;

use common::*;

const SHARDS: usize = 4;
/// Time limit of each walking command.
const WALK_TIMEOUT: Duration = Duration::from_secs(90);
/// e2fsck time limit (some images make `e2fsck -n` loop forever).
const FSCK_TIMEOUT: Duration = Duration::from_secs(60);

/// What happened with one image (for the summary).
struct Outcome {
    name: String,
    summary: String,
    problems: Vec<String>,
}

fn walk(m: &mut FextMount, problems: &mut Vec<String>) -> String {
    let root = m.path().to_string_lossy().to_string();
    let steps: [(&str, Vec<String>); 5] = [
        ("find", vec!["find".into(), root.clone()]),
        ("ls -lR", vec!["ls".into(), "-lR".into(), root.clone()]),
        (
            "cat",
            vec![
                "sh".into(),
                "-c".into(),
                format!("find '{root}' -type f -exec cat {{}} + > /dev/null"),
            ],
        ),
        (
            "readlink",
            vec![
                "sh".into(),
                "-c".into(),
                format!("find '{root}' -type l -exec readlink {{}} + > /dev/null"),
            ],
        ),
        (
            "getfattr",
            vec![
                "getfattr".into(),
                "-R".into(),
                "-h".into(),
                "-d".into(),
                "-m".into(),
                "-".into(),
                root.clone(),
            ],
        ),
    ];
    let mut notes = Vec::new();
    for (what, argv) in steps {
        let out = Cmd::new(&argv[0])
            .args(&argv[1..])
            .timeout(WALK_TIMEOUT)
            .output();
        if out.timed_out {
            problems.push(format!("`{what}` hung (killed after {WALK_TIMEOUT:?})"));
        }
        let errors = out.stderr.lines().count();
        notes.push(format!("{what}: rc {} ({errors} error lines)", out.code));
        if !m.is_alive() {
            problems.push(format!("the daemon died during `{what}`:\n{}", m.log()));
            break;
        }
    }
    notes.join(", ")
}

fn check_image(img_info: &CorpusImage) -> Outcome {
    let name = img_info.name.clone();
    let mut problems = Vec::new();
    let img = img_info.unpack();
    // VERDICTS.tsv knows which images make e2fsck -n loop: skip those runs.
    let before = if img_info.e2fsck_hangs() {
        124
    } else {
        e2fs::e2fsck_fn_timeout(img.path(), FSCK_TIMEOUT).0
    };
    let summary = match FextMount::try_mount(img.path(), "") {
        Err((code, log)) => {
            let msg: Vec<&str> = log.lines().filter(|l| l.starts_with("fext:")).collect();
            if code == 0 || code >= 124 {
                problems.push(format!("refused with exit code {code}:\n{log}"));
            }
            if msg.is_empty() {
                problems.push(format!("refused without a `fext:` message:\n{log}"));
            }
            format!(
                "refused (exit {code}): {}",
                msg.first().copied().unwrap_or("?")
            )
        }
        Ok(mut m) => {
            let walked = walk(&mut m, &mut problems);
            let log = m.log();
            match m.try_unmount() {
                Ok(0) => {}
                Ok(code) => problems.push(format!("daemon exited {code} after unmount:\n{log}")),
                Err(e) => problems.push(e),
            }
            if log.contains("panicked") {
                problems.push(format!("the daemon panicked:\n{log}"));
            }
            format!("mounted; {walked}")
        }
    };
    if before != 124 {
        let after = e2fs::e2fsck_fn_timeout(img.path(), FSCK_TIMEOUT).0;
        if after > before {
            let (_, out) = e2fs::e2fsck_fn_timeout(img.path(), FSCK_TIMEOUT);
            problems.push(format!(
                "e2fsck -fn got worse: exit {before} before, {after} after:\n{out}"
            ));
        }
    }
    Outcome {
        name,
        summary: format!("e2fsck before {before}; {summary}"),
        problems,
    }
}

fn shard(n: usize) {
    if !require_root("a FUSE mount") {
        return;
    }
    let images: Vec<CorpusImage> = corpus_images()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % SHARDS == n)
        .map(|(_, c)| c)
        .collect();
    assert!(!images.is_empty());
    let outcomes: Vec<Outcome> = images.iter().map(check_image).collect();
    let mut report = String::new();
    for o in &outcomes {
        report.push_str(&format!("{}: {}\n", o.name, o.summary));
    }
    eprintln!("{report}");
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.problems.is_empty())
        .map(|o| format!("== {}: {}\n{}", o.name, o.summary, o.problems.join("\n")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} images failed:\n{}",
        failed.len(),
        outcomes.len(),
        failed.join("\n")
    );
}

#[test]
fn corpus_shard_0() {
    shard(0);
}

#[test]
fn corpus_shard_1() {
    shard(1);
}

#[test]
fn corpus_shard_2() {
    shard(2);
}

#[test]
fn corpus_shard_3() {
    shard(3);
}
