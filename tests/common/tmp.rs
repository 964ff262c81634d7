//! Temporary directories and image files that remove themselves.
//!
//! Everything lives under `std::env::temp_dir()` (honours `TMPDIR`) with a
//! name unique per process and call. Removal happens in `Drop`, so also when
//! the test panics. Before deleting, any mount found below the directory
//! (in `/proc/self/mountinfo`) is lazily unmounted first, so a forgotten
//! mount can never make the cleanup delete the files *inside* an image.
//!
//! Set `FEXT_KEEP_TMP=1` to keep everything for a post-mortem; the paths
//! are printed on drop.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether `FEXT_KEEP_TMP` asks to keep temporary files.
fn keep_tmp() -> bool {
    std::env::var_os("FEXT_KEEP_TMP").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Create a fresh, empty directory `<tmp>/fext-<tag>-<pid>-<n>` (mode 0755).
pub(crate) fn unique_dir(tag: &str) -> PathBuf {
    let base = std::env::temp_dir();
    let pid = std::process::id();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!("fext-{tag}-{pid}-{n}"));
        match fs::create_dir(&path) {
            Ok(()) => {
                use std::os::unix::fs::PermissionsExt;
                // World-traversable, so tests that drop privileges or daemons
                // running as another user can reach inside.
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                    .expect("chmod temp dir");
                return path;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create temp dir {}: {e}", path.display()),
        }
    }
}

/// A directory removed (recursively) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new empty directory; `tag` goes into its name to help post-mortems.
    pub fn new(tag: &str) -> TempDir {
        TempDir {
            path: unique_dir(tag),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path().join(rel)`.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// Give up ownership: the directory is kept and its path returned.
    pub fn keep(self) -> PathBuf {
        let path = self.path.clone();
        std::mem::forget(self);
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if keep_tmp() {
            eprintln!("FEXT_KEEP_TMP: keeping {}", self.path.display());
            return;
        }
        remove_tree_safely(&self.path);
    }
}

/// A sparse image file of a given size inside its own [`TempDir`].
#[derive(Debug)]
pub struct TempImage {
    path: PathBuf,
    dir: TempDir,
}

impl TempImage {
    /// A new sparse file of `size_bytes` (all zeroes, no blocks allocated).
    pub fn new(size_bytes: u64) -> TempImage {
        let dir = TempDir::new("img");
        let path = dir.join("image.img");
        let file = File::create(&path).expect("create image file");
        file.set_len(size_bytes).expect("size image file");
        TempImage { path, dir }
    }

    /// A new empty (0-byte) file, for tools that size it themselves
    /// (e.g. `mkfs.ext4 IMAGE 64M`).
    pub fn empty() -> TempImage {
        TempImage::new(0)
    }

    /// A private copy of an existing image (sparse-aware via `cp`).
    pub fn copy_of(src: &Path) -> TempImage {
        let img = TempImage::empty();
        super::Cmd::new("cp")
            .arg("--sparse=always")
            .arg(src)
            .arg(&img.path)
            .run_ok();
        img
    }

    /// The image file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory holding the image, for companion files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Current length of the image file.
    pub fn len(&self) -> u64 {
        fs::metadata(&self.path).expect("stat image").len()
    }
}

/// Mount points at or below `dir`, deepest first, from /proc/self/mountinfo.
pub(crate) fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .filter(|mp| mp.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Whether `path` is a mount point (per /proc/self/mountinfo).
pub fn is_mountpoint(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|field| Path::new(&unescape_mountinfo(field)) == path)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Remove `dir` recursively, first lazily unmounting anything mounted
/// below it. Never panics (it runs in `Drop`); problems are printed.
pub(crate) fn remove_tree_safely(dir: &Path) {
    for mp in mounts_below(dir) {
        eprintln!(
            "cleanup: {} is still mounted below a temp dir; unmounting it (lazy)",
            mp.display()
        );
        let out = super::Cmd::new("umount")
            .arg("-l")
            .arg(&mp)
            .timeout(std::time::Duration::from_secs(30))
            .output();
        if !out.success() {
            eprintln!(
                "cleanup: NOT removing {}: cannot unmount {}:\n{out}",
                dir.display(),
                mp.display()
            );
            return;
        }
    }
    if let Err(e) = fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("cleanup: cannot remove {}: {e}", dir.display());
        }
    }
}
