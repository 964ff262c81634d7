//! The tree comparison oracle: are two directory trees the same file system
//! content? Used as `compare_trees(source, mount)` after building an image
//! from `source` and mounting it (kernel or fext), and for any two trees.
//!
//! Compared, for every path (symlinks are never followed):
//! - the set of paths (`only-in-a` / `only-in-b`);
//! - file type (`type`); permission bits incl. setuid/setgid/sticky (`mode`);
//!   `uid`, `gid`; link count (`nlink`, also for directories);
//! - regular files: `size`, then `content` byte by byte in 1 MiB chunks,
//!   skipping ranges that are holes in both files (SEEK_DATA), so a sparse
//!   file of terabytes costs what its data costs;
//! - symlinks: `symlink` target bytes (and their size);
//! - char/block devices: `rdev`;
//! - `mtime` in seconds (nanoseconds too with [`CompareOpts::mtime_nsec`]);
//! - `xattr`: names and values under [`CompareOpts::xattr_prefixes`]
//!   (default `user.`, `trusted.`, `security.`, `system.posix_acl_`);
//! - `hardlink`: paths sharing an inode in `a` share one in `b` and vice
//!   versa (each path's group is named by its smallest member).
//!
//! Not compared: atime, ctime, directory sizes (file-system specific), inode
//! numbers themselves, inode flags. The root directory itself is compared
//! (type, mode, uid, gid) only with [`CompareOpts::root_attrs`]; its nlink
//! and mtime never (a mkfs adds `lost+found`). Paths in
//! [`CompareOpts::ignore`] are skipped with their subtrees; by default that
//! is the top-level `lost+found`.
//!
//! Walks are iterative (no recursion) and capped at [`MAX_ENTRIES`] paths
//! and [`MAX_DEPTH`] levels.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::xattr;

/// Most paths one walk visits before giving up with an `error` diff.
pub const MAX_ENTRIES: usize = 2_000_000;
/// Deepest directory level one walk descends to.
pub const MAX_DEPTH: usize = 1024;
/// Bytes compared per read.
const CHUNK: usize = 1 << 20;

/// What to compare; [`Default`] is described in the module notes.
#[derive(Debug, Clone)]
pub struct CompareOpts {
    /// Compare mtime seconds (default true).
    pub mtime: bool,
    /// Also compare mtime nanoseconds (default false).
    pub mtime_nsec: bool,
    /// Also compare the mtime of directories (default true).
    pub dir_mtime: bool,
    /// xattr name prefixes compared; others are ignored.
    pub xattr_prefixes: Vec<String>,
    /// Relative paths skipped with their subtrees (default `lost+found`).
    pub ignore: Vec<PathBuf>,
    /// Compare the root directory's type, mode, uid and gid (default true).
    pub root_attrs: bool,
    /// Compare link counts (default true).
    pub nlink: bool,
}

impl Default for CompareOpts {
    fn default() -> CompareOpts {
        CompareOpts {
            mtime: true,
            mtime_nsec: false,
            dir_mtime: true,
            xattr_prefixes: ["user.", "trusted.", "security.", "system.posix_acl_"]
                .map(String::from)
                .to_vec(),
            ignore: vec![PathBuf::from("lost+found")],
            root_attrs: true,
            nlink: true,
        }
    }
}

/// One difference between the trees.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diff {
    /// Path relative to the roots (`.` for the root itself).
    pub path: PathBuf,
    /// What differs: `only-in-a`, `only-in-b`, `type`, `mode`, `uid`, `gid`,
    /// `nlink`, `size`, `content`, `symlink`, `rdev`, `mtime`, `xattr`,
    /// `hardlink`, or `error` (something could not be read).
    pub kind: &'static str,
    /// Human-readable details (`a` value vs `b` value).
    pub detail: String,
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.path.display(), self.kind, self.detail)
    }
}

/// Compare `a` and `b` with [`CompareOpts::default`]; each difference as
/// `"path: kind: detail"`. Empty means equal.
pub fn compare_trees(a: &Path, b: &Path) -> Vec<String> {
    compare_trees_with(a, b, &CompareOpts::default())
        .iter()
        .map(Diff::to_string)
        .collect()
}

/// Panic listing the differences (at most 100) unless the trees are equal
/// under `opts`.
#[track_caller]
pub fn assert_trees_equal(a: &Path, b: &Path, opts: &CompareOpts) {
    let diffs = compare_trees_with(a, b, opts);
    if !diffs.is_empty() {
        let mut msg = format!(
            "trees differ: a = {}, b = {}; {} difference(s):\n",
            a.display(),
            b.display(),
            diffs.len()
        );
        for d in diffs.iter().take(100) {
            msg.push_str(&format!("  {d}\n"));
        }
        if diffs.len() > 100 {
            msg.push_str(&format!("  ... and {} more\n", diffs.len() - 100));
        }
        panic!("{msg}");
    }
}

/// Compare `a` and `b` under `opts`; the differences in path order.
pub fn compare_trees_with(a: &Path, b: &Path, opts: &CompareOpts) -> Vec<Diff> {
    let mut diffs = Vec::new();
    let tree_a = walk(a, opts, &mut diffs, "a");
    let tree_b = walk(b, opts, &mut diffs, "b");

    for (rel, ma) in &tree_a {
        match tree_b.get(rel) {
            None => diffs.push(diff(rel, "only-in-a", describe(ma))),
            Some(mb) => compare_entry(a, b, rel, ma, mb, opts, &mut diffs),
        }
    }
    for (rel, mb) in &tree_b {
        if !tree_a.contains_key(rel) {
            diffs.push(diff(rel, "only-in-b", describe(mb)));
        }
    }
    compare_hardlinks(&tree_a, &tree_b, &mut diffs);
    diffs.sort();
    diffs
}

fn diff(rel: &Path, kind: &'static str, detail: String) -> Diff {
    Diff {
        path: rel.to_owned(),
        kind,
        detail,
    }
}

fn type_name(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_file() {
        "regular file"
    } else if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_char_device() {
        "char device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else {
        "unknown type"
    }
}

fn describe(m: &Metadata) -> String {
    format!(
        "{} mode {:o} size {}",
        type_name(m),
        m.mode() & 0o7777,
        m.size()
    )
}

/// Every path below `root` (relative, `.` for root) with its lstat.
fn walk(
    root: &Path,
    opts: &CompareOpts,
    diffs: &mut Vec<Diff>,
    side: &str,
) -> BTreeMap<PathBuf, Metadata> {
    let mut out = BTreeMap::new();
    let root_meta = match fs::symlink_metadata(root) {
        Ok(m) => m,
        Err(e) => {
            diffs.push(diff(
                Path::new("."),
                "error",
                format!("{side}: lstat {}: {e}", root.display()),
            ));
            return out;
        }
    };
    out.insert(PathBuf::from("."), root_meta);
    let mut stack: Vec<(PathBuf, usize)> = vec![(PathBuf::new(), 0)];
    while let Some((dir_rel, depth)) = stack.pop() {
        let dir_abs = root.join(&dir_rel);
        let entries = match fs::read_dir(&dir_abs) {
            Ok(it) => it,
            Err(e) => {
                diffs.push(diff(
                    &rel_or_dot(&dir_rel),
                    "error",
                    format!("{side}: readdir: {e}"),
                ));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    diffs.push(diff(
                        &rel_or_dot(&dir_rel),
                        "error",
                        format!("{side}: readdir: {e}"),
                    ));
                    break;
                }
            };
            let rel = dir_rel.join(entry.file_name());
            if opts.ignore.contains(&rel) {
                continue;
            }
            let meta = match fs::symlink_metadata(entry.path()) {
                Ok(m) => m,
                Err(e) => {
                    diffs.push(diff(&rel, "error", format!("{side}: lstat: {e}")));
                    continue;
                }
            };
            if out.len() >= MAX_ENTRIES {
                diffs.push(diff(
                    &rel,
                    "error",
                    format!("{side}: more than {MAX_ENTRIES} entries"),
                ));
                return out;
            }
            if meta.is_dir() {
                if depth + 1 >= MAX_DEPTH {
                    diffs.push(diff(
                        &rel,
                        "error",
                        format!("{side}: deeper than {MAX_DEPTH}"),
                    ));
                } else {
                    stack.push((rel.clone(), depth + 1));
                }
            }
            out.insert(rel, meta);
        }
    }
    out
}

fn rel_or_dot(rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel.to_owned()
    }
}

fn compare_entry(
    a: &Path,
    b: &Path,
    rel: &Path,
    ma: &Metadata,
    mb: &Metadata,
    opts: &CompareOpts,
    diffs: &mut Vec<Diff>,
) {
    let is_root = rel == Path::new(".");
    if is_root && !opts.root_attrs {
        return;
    }
    if type_name(ma) != type_name(mb) {
        diffs.push(diff(
            rel,
            "type",
            format!("{} vs {}", type_name(ma), type_name(mb)),
        ));
        return;
    }
    let (pa, pb) = (a.join(rel), b.join(rel));
    let perm = |m: &Metadata| m.mode() & 0o7777;
    if perm(ma) != perm(mb) {
        diffs.push(diff(
            rel,
            "mode",
            format!("{:04o} vs {:04o}", perm(ma), perm(mb)),
        ));
    }
    if ma.uid() != mb.uid() {
        diffs.push(diff(rel, "uid", format!("{} vs {}", ma.uid(), mb.uid())));
    }
    if ma.gid() != mb.gid() {
        diffs.push(diff(rel, "gid", format!("{} vs {}", ma.gid(), mb.gid())));
    }
    compare_xattrs(&pa, &pb, rel, opts, diffs);
    if is_root {
        return;
    }
    if opts.nlink && ma.nlink() != mb.nlink() {
        diffs.push(diff(
            rel,
            "nlink",
            format!("{} vs {}", ma.nlink(), mb.nlink()),
        ));
    }
    let ft = ma.file_type();
    if opts.mtime && (opts.dir_mtime || !ft.is_dir()) {
        let nsec = |m: &Metadata| if opts.mtime_nsec { m.mtime_nsec() } else { 0 };
        if (ma.mtime(), nsec(ma)) != (mb.mtime(), nsec(mb)) {
            diffs.push(diff(
                rel,
                "mtime",
                format!(
                    "{}.{:09} vs {}.{:09}",
                    ma.mtime(),
                    ma.mtime_nsec(),
                    mb.mtime(),
                    mb.mtime_nsec()
                ),
            ));
        }
    }
    if ft.is_file() {
        if ma.size() != mb.size() {
            diffs.push(diff(rel, "size", format!("{} vs {}", ma.size(), mb.size())));
        } else if ma.size() == 0 {
            // Nothing to read (and a mode-0000 file cannot be opened without root).
        } else if let Err(e) = compare_contents(&pa, &pb, ma.size(), rel, diffs) {
            diffs.push(diff(rel, "error", format!("reading contents: {e}")));
        }
    } else if ft.is_symlink() {
        match (fs::read_link(&pa), fs::read_link(&pb)) {
            (Ok(ta), Ok(tb)) => {
                if ta != tb {
                    diffs.push(diff(
                        rel,
                        "symlink",
                        format!(
                            "{:?} ({} bytes) vs {:?} ({} bytes)",
                            ta,
                            ta.as_os_str().len(),
                            tb,
                            tb.as_os_str().len()
                        ),
                    ));
                } else if ma.size() != mb.size() {
                    diffs.push(diff(rel, "size", format!("{} vs {}", ma.size(), mb.size())));
                }
            }
            (ra, rb) => diffs.push(diff(
                rel,
                "error",
                format!("readlink: {:?} / {:?}", ra.err(), rb.err()),
            )),
        }
    } else if (ft.is_char_device() || ft.is_block_device()) && ma.rdev() != mb.rdev() {
        diffs.push(diff(
            rel,
            "rdev",
            format!("{:#x} vs {:#x}", ma.rdev(), mb.rdev()),
        ));
    }
}

/// Offset of the first data at or after `pos` (SEEK_DATA), `size` if only
/// a hole follows; `pos` itself if the file system cannot tell.
fn next_data(file: &File, pos: u64, size: u64) -> u64 {
    let Ok(off) = libc::off_t::try_from(pos) else {
        return pos;
    };
    // SAFETY: lseek(2) on a valid open descriptor; no memory is touched.
    let r = unsafe { libc::lseek(file.as_raw_fd(), off, libc::SEEK_DATA) };
    match u64::try_from(r) {
        Ok(data) => data.max(pos),
        Err(_) if io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) => size,
        Err(_) => pos,
    }
}

fn compare_contents(
    pa: &Path,
    pb: &Path,
    size: u64,
    rel: &Path,
    diffs: &mut Vec<Diff>,
) -> io::Result<()> {
    let fa = File::open(pa)?;
    let fb = File::open(pb)?;
    let mut ba = vec![0u8; CHUNK];
    let mut bb = vec![0u8; CHUNK];
    let mut pos = 0u64;
    while pos < size {
        // Ranges that are holes in both files read as zeroes in both.
        let start = next_data(&fa, pos, size).min(next_data(&fb, pos, size));
        if start >= size {
            break;
        }
        let len = usize::try_from((size - start).min(CHUNK as u64)).expect("chunk fits usize");
        fa.read_exact_at(&mut ba[..len], start)?;
        fb.read_exact_at(&mut bb[..len], start)?;
        if ba[..len] != bb[..len] {
            let i = ba[..len]
                .iter()
                .zip(&bb[..len])
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            let at = start + i as u64;
            diffs.push(diff(
                rel,
                "content",
                format!(
                    "first difference at byte {at}: {:#04x} vs {:#04x}",
                    ba[i], bb[i]
                ),
            ));
            return Ok(());
        }
        pos = start + len as u64;
    }
    Ok(())
}

fn read_xattrs(path: &Path, prefixes: &[String]) -> io::Result<BTreeMap<OsString, Vec<u8>>> {
    let mut map = BTreeMap::new();
    for name in xattr::list(path)? {
        let bytes = name.as_bytes();
        if prefixes.iter().any(|p| bytes.starts_with(p.as_bytes())) {
            let value = xattr::get(path, &name)?;
            map.insert(name, value);
        }
    }
    Ok(map)
}

fn compare_xattrs(pa: &Path, pb: &Path, rel: &Path, opts: &CompareOpts, diffs: &mut Vec<Diff>) {
    if opts.xattr_prefixes.is_empty() {
        return;
    }
    let (xa, xb) = match (
        read_xattrs(pa, &opts.xattr_prefixes),
        read_xattrs(pb, &opts.xattr_prefixes),
    ) {
        (Ok(xa), Ok(xb)) => (xa, xb),
        (ra, rb) => {
            diffs.push(diff(
                rel,
                "error",
                format!("xattrs: {:?} / {:?}", ra.err(), rb.err()),
            ));
            return;
        }
    };
    for (name, va) in &xa {
        match xb.get(name) {
            None => diffs.push(diff(
                rel,
                "xattr",
                format!("{name:?} only in a ({} bytes)", va.len()),
            )),
            Some(vb) if vb != va => diffs.push(diff(
                rel,
                "xattr",
                format!(
                    "{name:?} differs: {} bytes {} vs {} bytes {}",
                    va.len(),
                    preview(va),
                    vb.len(),
                    preview(vb)
                ),
            )),
            Some(_) => {}
        }
    }
    for (name, vb) in &xb {
        if !xa.contains_key(name) {
            diffs.push(diff(
                rel,
                "xattr",
                format!("{name:?} only in b ({} bytes)", vb.len()),
            ));
        }
    }
}

fn preview(v: &[u8]) -> String {
    let head = &v[..v.len().min(24)];
    format!(
        "{:?}{}",
        String::from_utf8_lossy(head),
        if v.len() > 24 { "..." } else { "" }
    )
}

/// For each non-directory path, the smallest path sharing its inode.
/// Only paths also present in `other` count, so a missing path (already
/// reported) does not also show up as a hard-link difference.
fn link_groups<'t>(
    tree: &'t BTreeMap<PathBuf, Metadata>,
    other: &BTreeMap<PathBuf, Metadata>,
) -> HashMap<&'t Path, &'t Path> {
    let mut first: HashMap<(u64, u64), &Path> = HashMap::new();
    let mut rep = HashMap::new();
    // BTreeMap iterates in path order, so the first seen is the smallest.
    for (rel, m) in tree {
        if m.is_dir() || !other.contains_key(rel) {
            continue;
        }
        let r = *first.entry((m.dev(), m.ino())).or_insert(rel.as_path());
        rep.insert(rel.as_path(), r);
    }
    rep
}

fn compare_hardlinks(
    tree_a: &BTreeMap<PathBuf, Metadata>,
    tree_b: &BTreeMap<PathBuf, Metadata>,
    diffs: &mut Vec<Diff>,
) {
    let ga = link_groups(tree_a, tree_b);
    let gb = link_groups(tree_b, tree_a);
    for (rel, ra) in &ga {
        if let Some(rb) = gb.get(rel) {
            if ra != rb {
                diffs.push(diff(
                    rel,
                    "hardlink",
                    format!(
                        "shares its inode with {} in a, with {} in b",
                        ra.display(),
                        rb.display()
                    ),
                ));
            }
        }
    }
}
