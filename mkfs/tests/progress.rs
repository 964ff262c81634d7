//! Progress output: on a terminal, mkfs.fext shows mke2fs-style steps with
//! live "groups done/total" counters (rewritten in place with backspaces);
//! into a pipe it shows the steps without counters; `-q` silences
//! everything but errors. The terminal is a pseudo-terminal made by
//! util-linux `script`.

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use common::{assert_e2fsck_clean, have_program, Cmd, Output, TempImage};
use support::{mkfs, MKFS};

/// 100 GiB at 4 KiB blocks: 800 block groups.
const SIZE: &str = "100G";
const GROUPS: &str = "800";

const STEPS: &[&str] = &[
    "Allocating group tables: ",
    "Creating journal (131072 blocks): ",
    "Writing inode tables: ",
    "Writing superblocks and filesystem accounting information: ",
];

/// Run `mkfs-fext ARGS` on a pseudo-terminal; its combined output.
fn on_terminal(args: &[&str]) -> Output {
    assert!(
        have_program("script"),
        "util-linux `script` is needed to give mkfs a terminal"
    );
    let mut cmdline = String::from(MKFS);
    for a in args {
        assert!(!a.contains('\''), "no quotes in test arguments");
        cmdline.push_str(&format!(" '{a}'"));
    }
    let out = Cmd::new("script")
        .args(["-q", "-e", "-c", &cmdline, "/dev/null"])
        .run();
    assert!(out.success(), "mkfs on a terminal failed:\n{out}");
    out
}

#[test]
fn terminal_shows_steps_and_group_counters() {
    let img = TempImage::empty();
    let out = on_terminal(&[img.path().to_str().unwrap(), SIZE]);
    let text = out.stdout.replace("\r\n", "\n");
    assert!(
        text.contains("Creating filesystem with 26214400 4k blocks"),
        "{text}"
    );
    for step in STEPS {
        assert!(text.contains(step), "missing step {step:?}:\n{text:?}");
    }
    let full = format!("{GROUPS}/{GROUPS}\u{8}");
    assert!(
        text.matches(&full).count() >= 3,
        "each long step should count the {GROUPS} groups:\n{text:?}"
    );
    assert!(text.trim_end().ends_with("done"), "{text:?}");
    assert_e2fsck_clean(img.path());
}

#[test]
fn pipe_shows_steps_without_counters() {
    let img = TempImage::empty();
    let out = mkfs(&[img.path().to_str().unwrap(), SIZE]);
    assert!(out.success() && out.stderr.is_empty(), "{out}");
    for step in STEPS {
        assert!(out.stdout.contains(&format!("{step}done\n")), "{out}");
    }
    assert!(
        !out.stdout.contains('\u{8}'),
        "no counters into a pipe:\n{out}"
    );
    assert!(!out.stdout.contains(&format!("/{GROUPS}")), "{out}");
}

#[test]
fn quiet_prints_nothing_on_a_terminal() {
    let img = TempImage::empty();
    let out = on_terminal(&["-q", img.path().to_str().unwrap(), SIZE]);
    assert_eq!(out.stdout, "", "-q should print nothing");
    assert_e2fsck_clean(img.path());
}

#[test]
fn quiet_prints_nothing_into_a_pipe() {
    let img = TempImage::empty();
    let out = mkfs(&["-q", img.path().to_str().unwrap(), SIZE]);
    assert!(out.success(), "{out}");
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
}

#[test]
fn quiet_still_reports_errors() {
    let img = TempImage::empty();
    let out = on_terminal_failing(&["-q", "-t", "ext5", img.path().to_str().unwrap(), SIZE]);
    assert!(
        out.stdout.contains("mkfs.fext: unknown file system type"),
        "{out}"
    );
}

/// Like [`on_terminal`] for a run expected to fail (`script -e` passes the
/// exit code on; stderr goes to the terminal too).
fn on_terminal_failing(args: &[&str]) -> Output {
    let mut cmdline = String::from(MKFS);
    for a in args {
        cmdline.push_str(&format!(" '{a}'"));
    }
    let out = Cmd::new("script")
        .args(["-q", "-e", "-c", &cmdline, "/dev/null"])
        .run();
    assert!(!out.success(), "expected a failure:\n{out}");
    out
}
