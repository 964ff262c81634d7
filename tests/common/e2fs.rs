//! The e2fsprogs oracles: `e2fsck -fn`, `dumpe2fs -h`, `debugfs`.
//!
//! e2fsck runs with `E2FSCK_CONFIG=/dev/null` so a host's
//! `/etc/e2fsck.conf` cannot change verdicts, and with a time limit: some
//! damaged images make `e2fsck -n` restart forever (exit code 124 then,
//! as in the corpus' VERDICTS.tsv).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::{Cmd, TempImage};

/// Time limit of one e2fsck run.
pub const E2FSCK_TIMEOUT: Duration = Duration::from_secs(120);

/// A new image made by the system's `mke2fs -q -F ARGS IMAGE SIZE` (e.g.
/// `mke2fs_image(&["-t", "ext4", "-b", "4096"], "64M")`); panics on failure.
/// The host's /etc/mke2fs.conf applies (Debian's defaults on CI).
#[track_caller]
pub fn mke2fs_image(args: &[&str], size: &str) -> TempImage {
    let img = TempImage::empty();
    Cmd::new("mke2fs")
        .args(["-q", "-F"])
        .args(args)
        .arg(img.path())
        .arg(size)
        .run_ok();
    img
}

/// `e2fsck -fn IMAGE`: (exit code, stdout + stderr). Exit codes: 0 clean,
/// 4 errors left uncorrected, 8 operational error, 12 = 8|4, 124 timed out.
pub fn e2fsck_fn(image: &Path) -> (i32, String) {
    e2fsck_fn_timeout(image, E2FSCK_TIMEOUT)
}

/// [`e2fsck_fn`] with a chosen time limit.
pub fn e2fsck_fn_timeout(image: &Path, limit: Duration) -> (i32, String) {
    let out = Cmd::new("e2fsck")
        .arg("-fn")
        .arg(image)
        .env("E2FSCK_CONFIG", "/dev/null")
        .timeout(limit)
        .output();
    (out.code, out.combined())
}

/// Panic, printing e2fsck's full output, unless `e2fsck -fn IMAGE` exits 0.
#[track_caller]
pub fn assert_e2fsck_clean(image: &Path) {
    let (code, output) = e2fsck_fn(image);
    assert!(
        code == 0,
        "e2fsck -fn {} exited {code} (expected 0, clean):\n{output}",
        image.display()
    );
}

/// `e2fsck -fy IMAGE` (repairs in place): (exit code, output). 0 or 1 mean
/// the file system is clean after it.
pub fn e2fsck_fy(image: &Path) -> (i32, String) {
    let out = Cmd::new("e2fsck")
        .arg("-fy")
        .arg(image)
        .env("E2FSCK_CONFIG", "/dev/null")
        .timeout(E2FSCK_TIMEOUT)
        .output();
    (out.code, out.combined())
}

/// The parsed output of `dumpe2fs -h`: every `Key:   value` line (the
/// superblock and, if present, the journal superblock), keyed by the text
/// before the first colon, e.g. `"Block size"` -> `"4096"`.
#[derive(Debug, Clone, Default)]
pub struct Dumpe2fs {
    /// All key/value pairs, trimmed.
    pub fields: BTreeMap<String, String>,
    /// The raw output, for messages.
    pub raw: String,
}

impl Dumpe2fs {
    /// Parse `dumpe2fs -h` output. Lines without a colon are ignored; the
    /// first occurrence of a key wins.
    pub fn parse(text: &str) -> Dumpe2fs {
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            if let Some((k, v)) = line.split_once(':') {
                let k = k.trim();
                if k.is_empty() || k.starts_with("dumpe2fs") {
                    continue;
                }
                fields
                    .entry(k.to_string())
                    .or_insert_with(|| v.trim().to_string());
            }
        }
        Dumpe2fs {
            fields,
            raw: text.to_string(),
        }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// The value of `key`; panics (printing the output) if absent.
    #[track_caller]
    pub fn value(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| panic!("dumpe2fs has no {key:?}:\n{}", self.raw))
    }

    /// The numeric value of `key` (its first word); panics if absent or
    /// not a number.
    #[track_caller]
    pub fn num(&self, key: &str) -> u64 {
        let v = self.value(key);
        let word = v.split_whitespace().next().unwrap_or("");
        word.parse()
            .unwrap_or_else(|_| panic!("dumpe2fs {key:?} = {v:?} is not a number"))
    }

    /// The whitespace-separated words of `key` (empty if absent or `(none)`).
    pub fn list(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            None | Some("(none)") => Vec::new(),
            Some(v) => v.split_whitespace().map(str::to_string).collect(),
        }
    }

    /// `"Filesystem features"` as a list, e.g. `["has_journal", "ext_attr", ...]`.
    pub fn features(&self) -> Vec<String> {
        self.list("Filesystem features")
    }

    /// Whether `"Filesystem features"` names `feature`.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features().iter().any(|f| f == feature)
    }
}

/// Run `dumpe2fs -h IMAGE` and parse it; panics if dumpe2fs fails.
#[track_caller]
pub fn dumpe2fs_h(image: &Path) -> Dumpe2fs {
    let out = Cmd::new("dumpe2fs").arg("-h").arg(image).run_ok();
    Dumpe2fs::parse(&out.stdout)
}

/// `debugfs -R REQUEST IMAGE` (read-only): its stdout; panics on failure
/// to run. debugfs reports most errors on stderr with exit code 0, so check
/// the text.
#[track_caller]
pub fn debugfs_r(image: &Path, request: &str) -> String {
    let out = Cmd::new("debugfs")
        .arg("-R")
        .arg(request)
        .arg(image)
        .run_ok();
    out.stdout
}

/// Run debugfs commands read-write (`debugfs -w -f -`), one per element;
/// returns the full output. Handy to make test images: `write`, `mkdir`,
/// `symlink`, `ea_set`, `set_inode_field`, ...
#[track_caller]
pub fn debugfs_w(image: &Path, commands: &[&str]) -> String {
    let script = commands.join("\n") + "\n";
    let out = Cmd::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg("-")
        .arg(image)
        .stdin_bytes(script)
        .run_ok();
    out.combined()
}
