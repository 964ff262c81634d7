//! Ordinary shell tools on a fext mount, one realistic mixed workload:
//! `cp -a`, `tar` (with xattrs and ACLs) through a pipe, `rsync -aHAX`,
//! `mv`, `rm -r`, `ln`, `mkdir -p`, `touch`, `chmod -R`, `truncate`, `dd`,
//! `find`, `du`, `df`, `stat`, `git init/add/commit/gc/fsck` and a
//! `cargo new` + `cargo build --offline` of a hello world (when git and
//! cargo are installed). The same workload runs on the kernel's ext4 (a
//! twin image); tool outputs that must not depend on the file system are
//! compared, then [`Pair::finish`] judges the trees, e2fsck and the
//! kernel's view of fext's image.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::pair::{Pair, PairConfig};
use common::*;

const TOOL_TIMEOUT: Duration = Duration::from_secs(300);

fn sh(dir: &Path, script: &str) -> Output {
    Cmd::new("sh")
        .arg("-euc")
        .arg(script)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "fext")
        .env("GIT_AUTHOR_EMAIL", "fext@example.org")
        .env("GIT_COMMITTER_NAME", "fext")
        .env("GIT_COMMITTER_EMAIL", "fext@example.org")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .timeout(TOOL_TIMEOUT)
        .run_ok()
}

/// The workload; returns outputs both sides must agree on.
fn workload(root: &Path, src: &Path, cargo: bool) -> Vec<String> {
    let s = src.display();
    let mut notes = Vec::new();
    sh(root, &format!("cp -a {s} cp_a"));
    sh(
        root,
        &format!(
            "mkdir tar && tar -C {s} --xattrs --xattrs-include='*' --acls -cf - . \
             | tar -C tar --xattrs --xattrs-include='*' --acls -xpf -"
        ),
    );
    sh(root, &format!("rsync -aHAX {s}/ rsync/"));
    // Rsync again after changes: only the changed files are sent.
    sh(
        root,
        "echo changed >> rsync/files/tiny && touch -d @1 rsync/files/tiny",
    );
    let out = sh(root, &format!("rsync -aHAX --delete -i {s}/ rsync/"));
    notes.push(format!("rsync second pass:\n{}", out.stdout));
    // Shell manipulation.
    sh(
        root,
        "mkdir -p work/a/b/c && touch work/a/b/c/file && ln -s ../a work/a/b/up \
         && ln work/a/b/c/file work/hard && mv work/a/b work/moved \
         && dd if=/dev/zero of=work/zeros bs=64k count=20 status=none \
         && dd if=cp_a/files/few_blocks of=work/part bs=1000 skip=3 count=5 status=none \
         && truncate -s 3M work/part && truncate -s 100 work/zeros \
         && chmod -R go-w work && rm -r cp_a/many && mkdir cp_a/many \
         && seq 1 3000 | sed 's|^|cp_a/many/n|' | xargs touch \
         && find cp_a/many -name 'n*5' -delete",
    );
    notes.push(
        sh(
            root,
            "find . -path ./lost+found -prune -o -print | LC_ALL=C sort",
        )
        .stdout,
    );
    // du works (its numbers include directory sizes, which are the file
    // system's business); the bytes in regular files must agree.
    sh(
        root,
        "du -s cp_a tar rsync work && du -sh --apparent-size .",
    );
    notes.push(
        sh(
            root,
            "find cp_a tar rsync work -type f -printf '%s\\n' | awk '{s+=$1} END {print s}'",
        )
        .stdout,
    );
    notes.push(
        sh(
            root,
            "stat -c '%n %s %h %A %u %g' work/hard work/part work/zeros work/moved/c/file",
        )
        .stdout,
    );
    let df = sh(root, "df -P . | tail -1");
    assert!(!df.stdout.is_empty());
    if have_program("git") {
        sh(
            root,
            &format!(
                "git init -q repo && cp -a {s}/files {s}/dirs repo/ && cd repo \
                 && git config user.name fext && git config user.email fext@example.org \
                 && git add -A && git commit -qm first \
                 && echo more >> files/tiny && git rm -q -r dirs && git commit -qam second \
                 && git gc -q && git fsck --strict"
            ),
        );
        notes.push(
            sh(
                &root.join("repo"),
                "git log --format='%H %s' && git status --porcelain",
            )
            .stdout,
        );
    }
    if cargo {
        let out = sh(
            root,
            "cargo new -q --vcs none hello && cd hello \
             && CARGO_TARGET_DIR=target cargo build -q --offline && ./target/debug/hello",
        );
        notes.push(out.stdout);
    }
    notes
}

fn cargo_available() -> bool {
    have_program("cargo") && std::env::var_os("FEXT_SKIP_CARGO").is_none()
}

#[test]
fn shell_tools_workload() {
    if !have_program("rsync") {
        assert!(
            !mount::require_all(),
            "rsync is missing (.ci/run installs it)"
        );
        eprintln!("SKIPPED: rsync is not installed");
        return;
    }
    let mut cfg = PairConfig::new("ext4", 4096);
    cfg.size = 512 << 20;
    let src_dir = temp_rich_tree(
        "tools-src",
        &RichTreeOpts {
            big_files: false,
            many_entries: 500,
            block_size: 4096,
        },
    );
    let cargo = cargo_available();
    let Some(pair) = Pair::new(cfg) else { return };
    let reference = workload(pair.ref_root(), src_dir.path(), cargo);
    let fext = workload(pair.fext_root(), src_dir.path(), cargo);
    for (r, f) in reference.iter().zip(&fext) {
        assert_eq!(r, f, "tool output differs: reference (left), fext (right)");
    }
    if cargo {
        assert!(fext.last().unwrap().contains("Hello, world!"));
    }
    // Not file-system content: git's index caches inode numbers and
    // times; cargo's target dir holds fingerprints with timestamps.
    let opts = CompareOpts {
        mtime: false,
        ignore: [
            "lost+found",
            "repo/.git/index",
            "hello/target",
            ".gitconfig",
            ".cargo",
        ]
        .iter()
        .map(PathBuf::from)
        .collect(),
        ..CompareOpts::default()
    };
    pair.finish(&opts);
}
