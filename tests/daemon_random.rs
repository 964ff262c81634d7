//! Randomized differential test: thousands of random operations (create,
//! write at random offsets, truncate, mmap write, rename, link, unlink,
//! symlink, mkdir, rmdir, setxattr/removexattr, fallocate, chmod, fsync,
//! reads, dropping the kernel's dentry and inode caches) applied
//! identically to a fext mount and to the kernel's ext4 on a twin image. Every operation must have the same outcome (success or
//! the same errno) on both; reads must return the same bytes. At the end
//! (and every [`CHECK_EVERY`] operations) the trees are compared, then fext
//! is remounted and compared again, then [`Pair::finish`] runs e2fsck -fn
//! and the kernel's view of fext's image.
//!
//! Reproducible from the seed: a failure names the seed, the operation
//! index and the last operations. `FEXT_RANDOM_SEED=0x...` runs one seed
//! (on every configuration), `FEXT_RANDOM_OPS=N` changes the count.

mod common;

use std::collections::VecDeque;
use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{symlink, FileExt, PermissionsExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use common::pair::{no_mtime, Pair, PairConfig};
use common::sys::{self, errno_name, errno_of};
use common::*;

/// Default number of operations per run.
const DEFAULT_OPS: usize = 3000;
/// Trees are compared every this many operations.
const CHECK_EVERY: usize = 1000;
/// How many past operations a failure report shows.
const HISTORY: usize = 40;

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.below(items.len() as u64) as usize])
        }
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

/// What the test believes exists (updated from the outcomes, which both
/// sides agree on).
#[derive(Default)]
struct Model {
    dirs: Vec<PathBuf>,
    files: Vec<PathBuf>,
    others: Vec<PathBuf>,
}

impl Model {
    fn remove_path(&mut self, p: &Path) {
        self.files.retain(|f| f != p);
        self.others.retain(|f| f != p);
    }

    /// Forget `p` and everything below it.
    fn remove_tree(&mut self, p: &Path) {
        self.dirs.retain(|d| !d.starts_with(p));
        self.files.retain(|d| !d.starts_with(p));
        self.others.retain(|d| !d.starts_with(p));
    }

    fn rename_tree(&mut self, from: &Path, to: &Path) {
        let re = |v: &mut Vec<PathBuf>| {
            for d in v.iter_mut() {
                if let Ok(rest) = d.strip_prefix(from) {
                    *d = if rest.as_os_str().is_empty() {
                        to.to_owned()
                    } else {
                        to.join(rest)
                    };
                }
            }
        };
        re(&mut self.dirs);
        re(&mut self.files);
        re(&mut self.others);
    }

    fn kind_of(&self, p: &Path) -> Option<char> {
        if self.dirs.iter().any(|d| d == p) {
            Some('d')
        } else if self.files.iter().any(|d| d == p) {
            Some('f')
        } else if self.others.iter().any(|d| d == p) {
            Some('o')
        } else {
            None
        }
    }
}

/// One operation, described completely so both sides do the same.
#[derive(Debug, Clone)]
enum Op {
    Create(PathBuf, u32, bool),
    Write(PathBuf, u64, u64),
    Truncate(PathBuf, u64),
    MmapWrite(PathBuf, u64, bool),
    Rename(PathBuf, PathBuf),
    Link(PathBuf, PathBuf),
    Unlink(PathBuf),
    Symlink(String, PathBuf),
    Mkdir(PathBuf, u32),
    Rmdir(PathBuf),
    SetXattr(PathBuf, String, u64),
    RemoveXattr(PathBuf, String),
    Fallocate(PathBuf, i32, u64, u64),
    Chmod(PathBuf, u32),
    Fsync(PathBuf),
    Read(PathBuf, u64, usize),
    /// `echo 2 > /proc/sys/vm/drop_caches`: the kernel forgets cached
    /// dentries and inodes, so fext evicts and later reloads them.
    DropCaches,
}

/// The observable outcome of an operation.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Data(Vec<u8>),
    Err(String),
}

fn outcome<T>(r: std::io::Result<T>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok,
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Outcome::Err("EOF".into()),
        Err(e) => Outcome::Err(errno_name(errno_of::<()>(&Err(e)))),
    }
}

fn content(seed: u64, len: u64) -> Vec<u8> {
    Rng::new(seed).bytes(len as usize)
}

fn apply(root: &Path, op: &Op) -> Outcome {
    let p = |rel: &Path| root.join(rel);
    match op {
        Op::Create(f, mode, excl) => {
            let mut o = OpenOptions::new();
            o.write(true).create(!excl).create_new(*excl);
            let r = std::os::unix::fs::OpenOptionsExt::mode(&mut o, *mode).open(p(f));
            outcome(r)
        }
        Op::Write(f, off, seed) => {
            let len = seed % (128 << 10);
            let r = OpenOptions::new()
                .write(true)
                .open(p(f))
                .and_then(|h| h.write_all_at(&content(*seed, len), *off));
            outcome(r)
        }
        Op::Truncate(f, len) => outcome(
            OpenOptions::new()
                .write(true)
                .open(p(f))
                .and_then(|h| h.set_len(*len)),
        ),
        Op::MmapWrite(f, seed, msync) => {
            let r = (|| {
                let h = OpenOptions::new().read(true).write(true).open(p(f))?;
                let size = h.metadata()?.len();
                if size == 0 {
                    return Ok(());
                }
                let len = size.min(1 << 20) as usize;
                let mut map = sys::Mmap::shared_rw(&h, len)?;
                let mut rng = Rng::new(*seed);
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(len as u64) as usize;
                    let n = (1 + rng.below(5000) as usize).min(len - at);
                    let bytes = rng.bytes(n);
                    map.as_mut_slice()[at..at + n].copy_from_slice(&bytes);
                }
                if *msync {
                    map.msync()?;
                }
                Ok(())
            })();
            outcome(r)
        }
        Op::Rename(a, b) => outcome(fs::rename(p(a), p(b))),
        Op::Link(a, b) => outcome(fs::hard_link(p(a), p(b))),
        Op::Unlink(f) => outcome(fs::remove_file(p(f))),
        Op::Symlink(t, f) => outcome(symlink(t, p(f))),
        Op::Mkdir(d, mode) => outcome(
            std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), *mode).create(p(d)),
        ),
        Op::Rmdir(d) => outcome(fs::remove_dir(p(d))),
        Op::SetXattr(f, name, seed) => {
            let len = seed % 100;
            outcome(xattr::set(&p(f), name, &content(*seed, len)))
        }
        Op::RemoveXattr(f, name) => outcome(xattr::remove(&p(f), name)),
        Op::Fallocate(f, mode, off, len) => outcome(
            OpenOptions::new()
                .write(true)
                .open(p(f))
                .and_then(|h| sys::fallocate(&h, *mode, *off, *len)),
        ),
        Op::Chmod(f, mode) => outcome(fs::set_permissions(p(f), fs::Permissions::from_mode(*mode))),
        Op::Fsync(f) => outcome(fs::File::open(p(f)).and_then(|h| h.sync_all())),
        Op::DropCaches => {
            // Best effort (needs root; harmless for the other tests).
            let _ = fs::write("/proc/sys/vm/drop_caches", b"2");
            Outcome::Ok
        }
        Op::Read(f, off, len) => {
            let r = fs::File::open(p(f)).and_then(|h| {
                let mut buf = vec![0u8; *len];
                let mut got = 0;
                loop {
                    let n = h.read_at(&mut buf[got..], off + got as u64)?;
                    if n == 0 || got + n == buf.len() {
                        got += n;
                        break;
                    }
                    got += n;
                }
                buf.truncate(got);
                Ok(buf)
            });
            match r {
                Ok(d) => Outcome::Data(d),
                Err(e) => outcome::<()>(Err(e)),
            }
        }
    }
}

/// A random path for a new entry: an existing directory plus a name from
/// a small pool (so names collide and errors happen).
fn new_path(rng: &mut Rng, m: &Model, prefix: &str) -> PathBuf {
    if BIG_DIRS.with(|b| b.get()) && rng.chance(80) {
        // Many long names in the root: an indexed directory that grows
        // and shrinks.
        let n = rng.below(600);
        return PathBuf::from(format!(
            "{prefix}{n}-a-long-name-so-that-directory-blocks-fill-up-quickly"
        ));
    }
    let dir = rng.pick(&m.dirs).cloned().unwrap_or_default();
    dir.join(format!("{prefix}{}", rng.below(12)))
}

thread_local! {
    /// Whether this run aims at big (indexed) directories.
    static BIG_DIRS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Any existing entry, or a path that may not exist.
fn any_path(rng: &mut Rng, m: &Model) -> PathBuf {
    match rng.below(10) {
        0..=4 => rng.pick(&m.files).cloned(),
        5..=6 => rng.pick(&m.dirs).cloned(),
        7 => rng.pick(&m.others).cloned(),
        _ => None,
    }
    .unwrap_or_else(|| new_path(rng, m, "f"))
}

fn gen_op(rng: &mut Rng, m: &Model, extents: bool) -> Op {
    let file = |rng: &mut Rng| {
        rng.pick(&m.files)
            .cloned()
            .unwrap_or_else(|| new_path(rng, m, "f"))
    };
    let dir_or_root = |rng: &mut Rng| rng.pick(&m.dirs).cloned().unwrap_or_default();
    match rng.below(100) {
        0..=9 => Op::Create(
            new_path(rng, m, "f"),
            0o600 + rng.below(0o200) as u32,
            rng.chance(30),
        ),
        10..=29 => {
            let off = if rng.chance(85) {
                rng.below(2 << 20)
            } else {
                rng.below(40 << 20)
            };
            Op::Write(file(rng), off, rng.next())
        }
        30..=35 => {
            let len = match rng.below(4) {
                0 => 0,
                1 => rng.below(8192),
                2 => rng.below(3 << 20),
                _ => rng.below(16 << 20),
            };
            Op::Truncate(file(rng), len)
        }
        36..=40 => Op::MmapWrite(file(rng), rng.next(), rng.chance(50)),
        41..=48 => {
            let from = any_path(rng, m);
            let to = if rng.chance(50) {
                any_path(rng, m)
            } else {
                let prefix = if rng.chance(50) { "f" } else { "d" };
                new_path(rng, m, prefix)
            };
            Op::Rename(from, to)
        }
        49..=52 => Op::Link(file(rng), new_path(rng, m, "f")),
        53..=58 => Op::Unlink(any_path(rng, m)),
        59..=61 => {
            let len = if rng.chance(70) {
                1 + rng.below(50)
            } else {
                60 + rng.below(900)
            };
            let t: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            Op::Symlink(t, new_path(rng, m, "s"))
        }
        62..=68 => Op::Mkdir(new_path(rng, m, "d"), 0o700 + rng.below(0o100) as u32),
        69..=73 => Op::Rmdir(
            rng.pick(&m.dirs)
                .cloned()
                .unwrap_or_else(|| new_path(rng, m, "d")),
        ),
        74..=79 => {
            let name = format!("user.x{}", rng.below(5));
            let target = if rng.chance(80) {
                file(rng)
            } else {
                dir_or_root(rng)
            };
            if rng.chance(75) {
                Op::SetXattr(target, name, rng.next())
            } else {
                Op::RemoveXattr(target, name)
            }
        }
        80..=85 => {
            let modes = [
                0,
                libc::FALLOC_FL_KEEP_SIZE,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                libc::FALLOC_FL_ZERO_RANGE,
                libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
            ];
            let mode = if extents {
                *rng.pick(&modes).unwrap()
            } else {
                // Block-mapped files: only punching works (on both).
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE
            };
            Op::Fallocate(file(rng), mode, rng.below(3 << 20), 1 + rng.below(1 << 20))
        }
        86..=88 => Op::Chmod(any_path(rng, m), 0o600 + rng.below(0o200) as u32),
        89..=90 => Op::Fsync(file(rng)),
        91 => Op::DropCaches,
        _ => Op::Read(
            file(rng),
            rng.below(3 << 20),
            1 + rng.below(300_000) as usize,
        ),
    }
}

/// Update the model after an operation that succeeded on both sides.
fn update(m: &mut Model, op: &Op) {
    match op {
        Op::Create(f, _, _) if m.kind_of(f).is_none() => m.files.push(f.clone()),
        Op::Rename(a, b) => {
            if a == b {
                return;
            }
            let kind = m.kind_of(a);
            // A file renamed onto another name of the same inode leaves
            // both names in place (POSIX): the test cannot tell from the
            // paths, so it re-reads the truth from the disk below.
            if kind == Some('d') {
                m.remove_tree(b);
            } else {
                m.remove_path(b);
            }
            m.rename_tree(a, b);
        }
        Op::Link(_, b) => m.files.push(b.clone()),
        Op::Unlink(f) => m.remove_path(f),
        Op::Symlink(_, f) => m.others.push(f.clone()),
        Op::Mkdir(d, _) => m.dirs.push(d.clone()),
        Op::Rmdir(d) => m.remove_tree(d),
        _ => {}
    }
}

/// Rebuild the model from the reference tree (after renames between two
/// names of one inode, which keep both names).
fn rescan(root: &Path) -> Model {
    let mut m = Model::default();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            if r == Path::new("lost+found") {
                continue;
            }
            let t = e.file_type().unwrap();
            if t.is_dir() {
                m.dirs.push(r.clone());
                stack.push(r);
            } else if t.is_file() {
                m.files.push(r);
            } else {
                m.others.push(r);
            }
        }
    }
    m.dirs.sort();
    m.files.sort();
    m.others.sort();
    m
}

fn panic_text(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "<non-string panic>".into())
}

fn ops_count() -> usize {
    std::env::var("FEXT_RANDOM_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_OPS)
}

fn seeds(defaults: &[u64]) -> Vec<u64> {
    match std::env::var("FEXT_RANDOM_SEED") {
        Ok(v) if !v.is_empty() => {
            let v = v.trim_start_matches("0x");
            vec![u64::from_str_radix(v, 16).expect("FEXT_RANDOM_SEED is hex")]
        }
        _ => defaults.to_vec(),
    }
}

fn run_seed(cfg: PairConfig, seed: u64) {
    run_seed_with(cfg, seed, false);
}

fn run_seed_with(cfg: PairConfig, seed: u64, big_dirs: bool) {
    BIG_DIRS.with(|b| b.set(big_dirs));
    // SAFETY: umask(2) has no preconditions.
    unsafe { libc::umask(0o022) };
    let label = format!(
        "{} {} seed {seed:#x} opts {:?}{}",
        cfg.label(),
        cfg.features,
        cfg.fext_opts,
        if big_dirs { " big dirs" } else { "" }
    );
    let extents = cfg.fs_type == "ext4";
    let Some(mut pair) = Pair::new(cfg) else {
        return;
    };
    let n = ops_count();
    let mut rng = Rng::new(seed);
    let mut model = Model::default();
    let mut history: VecDeque<String> = VecDeque::new();
    let mut tally: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    let result = catch_unwind(AssertUnwindSafe(|| {
        for i in 0..n {
            let op = gen_op(&mut rng, &model, extents);
            let r = apply(pair.ref_root(), &op);
            let f = apply(pair.fext_root(), &op);
            let shown = match &r {
                Outcome::Data(d) => format!("data ({} bytes)", d.len()),
                o => format!("{o:?}"),
            };
            history.push_back(format!("#{i}: {op:?} -> {shown}"));
            if history.len() > HISTORY {
                history.pop_front();
            }
            if r != f {
                let detail = match (&r, &f) {
                    (Outcome::Data(a), Outcome::Data(b)) => {
                        let at = a.iter().zip(b).position(|(x, y)| x != y);
                        format!(
                            "reads differ: reference {} bytes, fext {} bytes, first difference at {at:?}",
                            a.len(),
                            b.len()
                        )
                    }
                    _ => format!("reference {r:?}, fext {f:?}"),
                };
                panic!("operation #{i} {op:?}: {detail}");
            }
            let kind = format!("{op:?}");
            let kind = kind.split('(').next().unwrap_or("?").to_string();
            let t = tally.entry(kind).or_default();
            if matches!(r, Outcome::Err(_)) {
                t.1 += 1;
            } else {
                t.0 += 1;
            }
            if r == Outcome::Ok {
                update(&mut model, &op);
                if matches!(op, Op::Rename(..)) {
                    model = rescan(pair.ref_root());
                }
            }
            if (i + 1) % CHECK_EVERY == 0 {
                pair.compare_live(&no_mtime());
            }
        }
        pair.compare_live(&no_mtime());
        pair.remount_fext();
        pair.compare_live(&no_mtime());
    }));
    if let Err(e) = result {
        panic!(
            "[{label}] FAILED (rerun with FEXT_RANDOM_SEED={seed:#x}): {}\nlast operations:\n{}",
            panic_text(&e),
            history.into_iter().collect::<Vec<_>>().join("\n")
        );
    }
    let counts = (model.files.len(), model.dirs.len(), model.others.len());
    eprintln!(
        "[{label}] {n} operations (kind: ok/failed) {tally:?}; files/dirs/others at the end: {counts:?}"
    );
    pair.finish(&no_mtime());
}

fn cfg(fs_type: &'static str, bs: u32, opts: &str) -> PairConfig {
    let mut c = PairConfig::new(fs_type, bs);
    c.size = 256 << 20;
    c.fext_opts = opts.into();
    c
}

/// Write-back during the run: small thresholds make the background
/// thread and the throttle write back while operations continue.
const EAGER: &str = "dirty_background_mb=1,dirty_limit_mb=4,dirty_expire_ms=50";

#[test]
fn random_ext4_4k() {
    for (i, seed) in seeds(&[0x5eed_0001, 0x5eed_0002, 0x5eed_0003])
        .into_iter()
        .enumerate()
    {
        run_seed(cfg("ext4", 4096, if i == 1 { EAGER } else { "" }), seed);
    }
}

#[test]
fn random_ext4_1k() {
    for (i, seed) in seeds(&[0x1c0f_fee1, 0x1c0f_fee2, 0x1c0f_fee3])
        .into_iter()
        .enumerate()
    {
        run_seed(cfg("ext4", 1024, if i == 2 { EAGER } else { "" }), seed);
    }
}

#[test]
fn random_ext2_1k() {
    for (i, seed) in seeds(&[0xe272_0001, 0xe272_0002]).into_iter().enumerate() {
        run_seed(cfg("ext2", 1024, if i == 0 { EAGER } else { "" }), seed);
    }
}

#[test]
fn random_ext2_4k_no_writeback_cache() {
    for seed in seeds(&[0xe274_0001]) {
        run_seed(cfg("ext2", 4096, "no_writeback_cache"), seed);
    }
}

/// Big indexed directories: most names go to the root, from a pool of
/// 600 long names, so its htree gains and loses leaves.
#[test]
fn random_big_dirs_ext4_1k() {
    for seed in seeds(&[0xb16d_0001, 0xb16d_0002]) {
        run_seed_with(cfg("ext4", 1024, ""), seed, true);
    }
}

/// Images with other feature sets, made by the system's mke2fs.
#[test]
fn random_mke2fs_feature_variants() {
    let variants: [(&'static str, u32, &'static str); 5] = [
        ("ext4", 4096, "^flex_bg,^64bit,^metadata_csum"),
        ("ext4", 1024, "meta_bg,^resize_inode"),
        ("ext4", 4096, "^dir_index"),
        ("ext3", 1024, ""),
        ("ext4", 1024, "^extent,^64bit,^huge_file"),
    ];
    for (i, (fs_type, bs, features)) in variants.into_iter().enumerate() {
        for seed in seeds(&[0xfea7_0000 + i as u64]) {
            let mut c = cfg(fs_type, bs, "");
            c.features = features;
            c.mkfs = common::pair::Mkfs::System;
            run_seed_with(c, seed, i % 2 == 1);
        }
    }
}
