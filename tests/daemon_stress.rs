//! Concurrency stress: several workers (threads of this process, each
//! its own task for the kernel) create, write, rename, link, read, list
//! and delete in shared directories of one fext mount at the same time,
//! while the kernel's dentry and inode caches are dropped now and then.
//!
//! Every file's content is a function of its key (the part of its name
//! before the first `.`), so the survivors can be checked wherever they
//! ended up: by the workers while others work (only published `.done`
//! files), on the live mount afterwards, and on a kernel mount of the
//! image. Each worker also remembers which of its names exist; their
//! union must be exactly the tree. Then `e2fsck -fn` must be clean.

mod common;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use common::*;

const WORKERS: usize = 8;
const OPS_PER_WORKER: usize = 700;
const SHARED_DIRS: usize = 4;

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
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The content every file with this key must have.
fn content_of(key: &str) -> Vec<u8> {
    let h = hash(key);
    let len = match h % 4 {
        0 => h % 64,
        1 => h % 5000,
        2 => h % 100_000,
        _ => h % 400_000,
    } as usize;
    let mut rng = Rng::new(h);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

fn key_of(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

fn ignore_missing(r: std::io::Result<()>) {
    if let Err(e) = r {
        assert_eq!(e.kind(), ErrorKind::NotFound, "unexpected error: {e}");
    }
}

/// One worker; returns the relative paths of the files it leaves behind.
fn worker(root: &Path, id: usize, seed: u64, stop: &AtomicBool) -> BTreeSet<PathBuf> {
    let mut rng = Rng::new(seed ^ (id as u64).wrapping_mul(0x1234_5678_9abc));
    let mut mine: Vec<PathBuf> = Vec::new();
    let mut mydirs: Vec<PathBuf> = Vec::new();
    let mut serial = 0usize;
    let shared = |rng: &mut Rng| PathBuf::from(format!("shared{}", rng.below(SHARED_DIRS as u64)));
    for _ in 0..OPS_PER_WORKER {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match rng.below(100) {
            // Create: write in random chunk order to a .tmp, maybe fsync,
            // publish by renaming to .done.
            0..=34 => {
                serial += 1;
                let key = format!("w{id}n{serial}");
                let data = content_of(&key);
                let dir = shared(&mut rng);
                let tmp = dir.join(format!("{key}.tmp"));
                let f = File::create(root.join(&tmp)).unwrap();
                let chunk = 1 + rng.below(70_000) as usize;
                let mut starts: Vec<usize> = (0..data.len()).step_by(chunk).collect();
                for i in (1..starts.len()).rev() {
                    starts.swap(i, rng.below(i as u64 + 1) as usize);
                }
                for s in starts {
                    let e = (s + chunk).min(data.len());
                    f.write_all_at(&data[s..e], s as u64).unwrap();
                }
                if rng.below(10) == 0 {
                    f.sync_all().unwrap();
                }
                drop(f);
                if rng.below(3) == 0 {
                    xattr::set(&root.join(&tmp), "user.key", key.as_bytes()).unwrap();
                }
                let done = dir.join(format!("{key}.done"));
                fs::rename(root.join(&tmp), root.join(&done)).unwrap();
                mine.push(done);
            }
            // Rename one of mine to another shared directory.
            35..=49 if !mine.is_empty() => {
                let i = rng.below(mine.len() as u64) as usize;
                let name = mine[i].file_name().unwrap().to_string_lossy().to_string();
                serial += 1;
                let new = shared(&mut rng).join(format!("{}.r{serial}.done", key_of(&name)));
                fs::rename(root.join(&mine[i]), root.join(&new)).unwrap();
                mine[i] = new;
            }
            // Hard link one of mine.
            50..=57 if !mine.is_empty() => {
                let i = rng.below(mine.len() as u64) as usize;
                let name = mine[i].file_name().unwrap().to_string_lossy().to_string();
                serial += 1;
                let new = shared(&mut rng).join(format!("{}.l{serial}.done", key_of(&name)));
                fs::hard_link(root.join(&mine[i]), root.join(&new)).unwrap();
                mine.push(new);
            }
            // Delete one of mine.
            58..=72 if !mine.is_empty() => {
                let i = rng.below(mine.len() as u64) as usize;
                let p = mine.swap_remove(i);
                fs::remove_file(root.join(p)).unwrap();
            }
            // A private directory with a few files, then removed.
            73..=77 => {
                serial += 1;
                let d = shared(&mut rng).join(format!("w{id}dir{serial}"));
                fs::create_dir(root.join(&d)).unwrap();
                for j in 0..3 {
                    let key = format!("w{id}n{serial}x{j}");
                    fs::write(root.join(&d).join(format!("{key}.done")), content_of(&key)).unwrap();
                }
                if rng.below(2) == 0 {
                    fs::remove_dir_all(root.join(&d)).unwrap();
                } else {
                    for j in 0..3 {
                        mine.push(d.join(format!("w{id}n{serial}x{j}.done")));
                    }
                    mydirs.push(d);
                }
            }
            // Move one of my directories (with its files) to another
            // shared directory: renames of directories across parents
            // race with everybody's work in those parents.
            78..=81 if !mydirs.is_empty() => {
                let i = rng.below(mydirs.len() as u64) as usize;
                let old = mydirs[i].clone();
                let new = shared(&mut rng).join(old.file_name().unwrap());
                if new != old {
                    fs::rename(root.join(&old), root.join(&new)).unwrap();
                    for p in mine.iter_mut() {
                        if let Ok(rest) = p.strip_prefix(&old) {
                            *p = new.join(rest);
                        }
                    }
                    mydirs[i] = new;
                }
            }
            // List a shared directory and check published files of anyone.
            _ => {
                let dir = root.join(shared(&mut rng));
                let entries: Vec<_> = fs::read_dir(&dir)
                    .unwrap()
                    .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
                    .collect();
                for name in entries.iter().filter(|n| n.ends_with(".done")).take(5) {
                    match fs::read(dir.join(name)) {
                        Ok(data) => assert!(
                            data == content_of(key_of(name)),
                            "worker {id}: published file {name} has wrong content ({} bytes)",
                            data.len()
                        ),
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => panic!("worker {id}: reading {name}: {e}"),
                    }
                }
                // Stat races with renames and deletes: only ENOENT is fine.
                for name in entries.iter().take(10) {
                    ignore_missing(fs::symlink_metadata(dir.join(name)).map(|_| ()));
                }
            }
        }
    }
    mine.into_iter().collect()
}

/// Every regular file below the shared dirs (relative paths).
fn files_below(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack: Vec<PathBuf> = (0..SHARED_DIRS)
        .map(|i| PathBuf::from(format!("shared{i}")))
        .collect();
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(r);
            } else {
                out.insert(r);
            }
        }
    }
    out
}

fn verify_tree(root: &Path, expected: &BTreeSet<PathBuf>, what: &str) {
    let found = files_below(root);
    let missing: Vec<_> = expected.difference(&found).take(10).collect();
    let extra: Vec<_> = found.difference(expected).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}, unexpected {extra:?}"
    );
    for rel in &found {
        let name = rel.file_name().unwrap().to_string_lossy().to_string();
        let data = fs::read(root.join(rel)).unwrap();
        if let Ok(v) = xattr::get(&root.join(rel), "user.key") {
            assert_eq!(
                v,
                key_of(&name).as_bytes(),
                "{what}: user.key of {}",
                rel.display()
            );
        }
        assert!(
            data == content_of(key_of(&name)),
            "{what}: {} has wrong content ({} bytes, expected {})",
            rel.display(),
            data.len(),
            content_of(key_of(&name)).len()
        );
    }
}

fn stress(fs_type: &str, bs: u32, opts: &str, seed: u64) {
    if !require_root("a FUSE mount") {
        return;
    }
    let label = format!("{fs_type} {bs} seed {seed:#x} opts {opts:?}");
    let dir = TempDir::new("stress");
    let img = dir.join("img");
    make_fext_image(&img, 512 << 20, fs_type, Some(bs), "");
    let m = FextMount::new(&img, opts);
    for i in 0..SHARED_DIRS {
        fs::create_dir(m.join(format!("shared{i}"))).unwrap();
    }
    let root = Arc::new(m.path().to_owned());
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..WORKERS)
        .map(|id| {
            let root = root.clone();
            let stop = stop.clone();
            thread::Builder::new()
                .name(format!("worker{id}"))
                .spawn(move || {
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        worker(&root, id, seed, &stop)
                    }));
                    if r.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    r
                })
                .unwrap()
        })
        .collect();
    // Meanwhile the kernel drops its dentry and inode caches now and then,
    // so fext evicts inodes and reloads them while others work.
    let dropper = {
        let stop = stop.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = fs::write("/proc/sys/vm/drop_caches", b"2");
                thread::sleep(std::time::Duration::from_millis(300));
            }
        })
    };
    let mut expected = BTreeSet::new();
    let mut failures = Vec::new();
    for (id, h) in handles.into_iter().enumerate() {
        match h.join().unwrap() {
            Ok(mine) => expected.extend(mine),
            Err(e) => failures.push(format!(
                "worker {id}: {}",
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        }
    }
    stop.store(true, Ordering::Relaxed);
    dropper.join().unwrap();
    assert!(failures.is_empty(), "[{label}] {}", failures.join("\n"));
    verify_tree(m.path(), &expected, &format!("[{label}] live mount"));
    m.unmount();
    assert_e2fsck_clean(&img);
    if require_kernel_mount() {
        let k = KernelMount::new(&img, false);
        verify_tree(k.path(), &expected, &format!("[{label}] kernel mount"));
    }
    eprintln!("[{label}] {} files survived", expected.len());
}

#[test]
fn stress_ext4_4k() {
    for seed in [1, 2, 3] {
        stress("ext4", 4096, "threads=4", seed);
    }
}

#[test]
fn stress_ext4_1k_eager_writeback() {
    for seed in [11, 12] {
        stress(
            "ext4",
            1024,
            "threads=4,dirty_background_mb=1,dirty_limit_mb=2,dirty_expire_ms=20",
            seed,
        );
    }
}

#[test]
fn stress_ext2_4k() {
    for seed in [21, 22] {
        stress("ext2", 4096, "", seed);
    }
}
