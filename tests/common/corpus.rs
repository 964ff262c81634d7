//! The corpus of damaged and unusual images from e2fsprogs' test suite,
//! kept beside the repository in `shared/corpus` (CI clones it there).
//!
//! Location: `$FEXT_CORPUS_DIR` if set, else `<workspace root>/../shared/corpus`.
//! `VERDICTS.tsv` there lists `image<TAB>e2fsck_fn_rc`: the exit code of
//! `e2fsck -fn` (1.47.0) on each image, 124 meaning it did not finish in
//! 60 s. The gzipped files are read-only: [`CorpusImage::unpack`] makes a
//! private copy.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Cmd, TempImage};

/// One corpus entry.
#[derive(Debug, Clone)]
pub struct CorpusImage {
    /// File name without `.img.gz`, e.g. `f_dup2`.
    pub name: String,
    /// Path of the `.img.gz` file.
    pub gz_path: PathBuf,
    /// `e2fsck -fn` exit code recorded in VERDICTS.tsv.
    pub e2fsck_rc: i32,
}

impl CorpusImage {
    /// Whether e2fsck found it clean (exit code 0).
    pub fn is_clean(&self) -> bool {
        self.e2fsck_rc == 0
    }

    /// Whether e2fsck did not finish on it (exit code 124).
    pub fn e2fsck_hangs(&self) -> bool {
        self.e2fsck_rc == 124
    }

    /// Unpack to a private temporary image file.
    pub fn unpack(&self) -> TempImage {
        let img = TempImage::empty();
        Cmd::new("gzip")
            .arg("-dc")
            .arg(&self.gz_path)
            .stdout_to(img.path())
            .run_ok();
        img
    }
}

/// The workspace root: the nearest ancestor of this package's manifest
/// directory whose Cargo.toml has a `[workspace]` table.
pub fn workspace_root() -> PathBuf {
    let start = Path::new(env!("CARGO_MANIFEST_DIR"));
    start
        .ancestors()
        .find(|d| {
            fs::read_to_string(d.join("Cargo.toml"))
                .is_ok_and(|t| t.lines().any(|l| l.trim() == "[workspace]"))
        })
        .unwrap_or(start)
        .to_owned()
}

/// The corpus directory (see the module notes); panics with directions if
/// it does not exist.
pub fn corpus_dir() -> PathBuf {
    let dir = match std::env::var_os("FEXT_CORPUS_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace_root().join("../shared/corpus"),
    };
    assert!(
        dir.join("VERDICTS.tsv").is_file(),
        "corpus not found at {} (no VERDICTS.tsv): clone `shared/` beside the repository or set FEXT_CORPUS_DIR",
        dir.display()
    );
    dir
}

/// All corpus images listed in VERDICTS.tsv, in file order; panics if the
/// file is malformed or lists an image that is missing.
pub fn corpus_images() -> Vec<CorpusImage> {
    let dir = corpus_dir();
    let text = fs::read_to_string(dir.join("VERDICTS.tsv")).expect("read VERDICTS.tsv");
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if n == 0 && line.starts_with("image") || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (file, rc) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("VERDICTS.tsv line {}: no tab: {line:?}", n + 1));
        let e2fsck_rc = rc
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("VERDICTS.tsv line {}: bad exit code {rc:?}", n + 1));
        let gz_path = dir.join(file);
        assert!(
            gz_path.is_file(),
            "VERDICTS.tsv lists missing {}",
            gz_path.display()
        );
        let name = file
            .strip_suffix(".img.gz")
            .or_else(|| file.strip_suffix(".gz"))
            .unwrap_or(file)
            .to_string();
        out.push(CorpusImage {
            name,
            gz_path,
            e2fsck_rc,
        });
    }
    out
}

/// The corpus image called `name` (with or without `.img.gz`); panics if absent.
pub fn corpus_image(name: &str) -> CorpusImage {
    let want = name.strip_suffix(".img.gz").unwrap_or(name);
    corpus_images()
        .into_iter()
        .find(|c| c.name == want)
        .unwrap_or_else(|| panic!("no corpus image {name:?}"))
}
