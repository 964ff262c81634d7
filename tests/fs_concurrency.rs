//! The core's fine-grained locking, driven in-process from many threads:
//! an operation waits only for the inodes it works on, and a concurrent
//! workload over shared directories (cross-directory renames both ways
//! included) finishes without deadlock, leaves every thread's files as it
//! wrote them, and an image `e2fsck -fn` finds clean. Debug builds also
//! check the lock order on every lock taken (see src/fs/lockorder.rs).

#![allow(dead_code)]
mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;
use fext::fs::{Caller, Fs, MountOptions};
use fext::mkfs::format::{make_filesystem, Silent};
use fext::mkfs::options::{FsType, MkfsOptions};

const ROOT: u32 = 2;
const S_IFREG: u16 = 0o100000;
const S_IFDIR: u16 = 0o040000;
/// Long enough for any operation that is not waiting for a lock.
const FINISHES: Duration = Duration::from_secs(120);
/// How long an operation that must wait is watched to still be waiting.
const STILL_WAITING: Duration = Duration::from_millis(500);

fn make_image(img: &Path, size: u64, block_size: u32) {
    let opts = MkfsOptions {
        fs_type: FsType::Ext4,
        block_size: Some(block_size),
        ..MkfsOptions::default()
    };
    make_filesystem(img, Some(size), &opts, &mut Silent).expect("mkfs");
}

/// Dirty limits small enough that writers hit the throttle and
/// write-back runs while the other threads go on.
fn small_dirty_limits(limit: usize) -> MountOptions {
    MountOptions {
        dirty_limit_bytes: limit,
        dirty_background_bytes: limit / 2,
        ..MountOptions::default()
    }
}

/// Runs `f` on its own thread; its result arrives on the receiver.
fn spawn<T: Send + 'static>(
    fs: &Arc<Fs>,
    f: impl FnOnce(&Fs) -> T + Send + 'static,
) -> Receiver<T> {
    let (tx, rx) = channel();
    let fs = fs.clone();
    thread::spawn(move || {
        let r = f(&fs);
        drop(fs);
        let _ = tx.send(r);
    });
    rx
}

fn assert_waits<T>(rx: &Receiver<T>, what: &str) {
    match rx.recv_timeout(STILL_WAITING) {
        Err(RecvTimeoutError::Timeout) => {}
        _ => panic!("{what} finished although its inode is locked"),
    }
}

#[test]
fn an_operation_waits_only_for_the_inodes_it_works_on() {
    let dir = TempDir::new("locks-independence");
    let img = dir.path().join("img");
    make_image(&img, 64 << 20, 4096);
    let fs = Arc::new(Fs::mount(&img, MountOptions::default()).unwrap());
    let c = Caller::ROOT;
    let a = fs.create(ROOT, b"a", S_IFDIR | 0o755, 0, c).unwrap().ino;
    let b = fs.create(ROOT, b"b", S_IFDIR | 0o755, 0, c).unwrap().ino;
    let fa = fs.create(a, b"fa", S_IFREG | 0o644, 0, c).unwrap().ino;
    let fb = fs.create(b, b"fb", S_IFREG | 0o644, 0, c).unwrap().ino;

    // File fa locked: its directory and everything elsewhere go on.
    let hold = fs.hold_inode(fa).unwrap();
    let others = spawn(&fs, move |fs| {
        let c = Caller::ROOT;
        let n = fs.create(b, b"new", S_IFREG | 0o644, 0, c).unwrap().ino;
        fs.write(fb, 0, b"hello").unwrap();
        fs.write(n, 0, &[7u8; 10_000]).unwrap();
        assert_eq!(fs.getattr(fb).unwrap().size, 5);
        assert_eq!(fs.read(fb, 0, 100).unwrap(), b"hello");
        fs.create(a, b"beside-fa", S_IFREG | 0o644, 0, c).unwrap();
        fs.getattr(a).unwrap();
        fs.readdir(a, 0, 100).unwrap().len()
    });
    let entries = others
        .recv_timeout(FINISHES)
        .expect("operations on other inodes finished while fa was locked");
    assert_eq!(entries, 4, ". .. fa beside-fa");
    // ...while operations on fa itself wait for it.
    let write_fa = spawn(&fs, move |fs| fs.write(fa, 0, b"late").unwrap());
    let stat_fa = spawn(&fs, move |fs| fs.getattr(fa).unwrap().size);
    let lookup_fa = spawn(&fs, move |fs| fs.lookup(a, b"fa").unwrap().ino);
    assert_waits(&write_fa, "a write to fa");
    assert_waits(&stat_fa, "getattr of fa");
    assert_waits(&lookup_fa, "a lookup of fa");
    drop(hold);
    assert_eq!(write_fa.recv_timeout(FINISHES).unwrap(), 4);
    stat_fa.recv_timeout(FINISHES).unwrap();
    assert_eq!(lookup_fa.recv_timeout(FINISHES).unwrap(), fa);

    // Directory a locked: creating in a waits, creating in b does not.
    let hold = fs.hold_inode(a).unwrap();
    let in_b = spawn(&fs, move |fs| {
        fs.create(b, b"while-a-locked", S_IFREG | 0o644, 0, Caller::ROOT)
            .unwrap()
            .ino
    });
    in_b.recv_timeout(FINISHES)
        .expect("a create in b finished while a was locked");
    let in_a = spawn(&fs, move |fs| {
        fs.create(a, b"waits", S_IFREG | 0o644, 0, Caller::ROOT)
            .unwrap()
            .ino
    });
    assert_waits(&in_a, "a create in a");
    drop(hold);
    in_a.recv_timeout(FINISHES).unwrap();
    assert_eq!(fs.read(fa, 0, 10).unwrap(), b"late");

    fs.unmount().unwrap();
    drop(fs);
    assert_e2fsck_clean(&img);
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What one thread knows about its own files.
#[derive(Debug, Clone)]
struct Known {
    dir: u32,
    ino: u32,
    data: Vec<u8>,
}

const THREADS: u64 = 8;
const OPS: u64 = 1000;
const SLOT: usize = 4096;

fn content(rng: &mut Rng, len: usize) -> Vec<u8> {
    let seed = rng.next();
    (0..len)
        .map(|i| (seed.wrapping_add(i as u64 * 131) >> 3) as u8)
        .collect()
}

/// One thread's share of the stress: files named after the thread in two
/// shared directories, moved back and forth between them; directories
/// renamed across too; a slot of a shared file rewritten.
fn stress_thread(
    fs: &Fs,
    t: u64,
    dirs: [u32; 2],
    shared: u32,
    seed: u64,
) -> (HashMap<Vec<u8>, Known>, Vec<u8>) {
    let c = Caller::ROOT;
    let mut rng = Rng(seed | 1);
    let mut files: HashMap<Vec<u8>, Known> = HashMap::new();
    let mut serial = 0u64;
    let mut slot = vec![0u8; SLOT];
    for _ in 0..OPS {
        let names: Vec<Vec<u8>> = {
            let mut v: Vec<Vec<u8>> = files.keys().cloned().collect();
            v.sort();
            v
        };
        let pick = |rng: &mut Rng| names[rng.below(names.len() as u64) as usize].clone();
        match rng.below(12) {
            0..=2 => {
                serial += 1;
                let name = format!("t{t}-f{serial}").into_bytes();
                let dir = dirs[rng.below(2) as usize];
                let ino = fs.create(dir, &name, S_IFREG | 0o644, 0, c).unwrap().ino;
                let len = rng.below(20_000) as usize;
                let data = content(&mut rng, len);
                fs.write(ino, 0, &data).unwrap();
                files.insert(name, Known { dir, ino, data });
            }
            3 if !names.is_empty() => {
                let name = pick(&mut rng);
                let k = files.get_mut(&name).unwrap();
                let off = rng.below(k.data.len() as u64 + 5000) as usize;
                let len = 1 + rng.below(9000) as usize;
                let data = content(&mut rng, len);
                fs.write(k.ino, off as u64, &data).unwrap();
                if k.data.len() < off + len {
                    k.data.resize(off + len, 0);
                }
                k.data[off..off + len].copy_from_slice(&data);
            }
            4 | 5 if !names.is_empty() => {
                // Across: d0 -> d1 and d1 -> d0 from every thread.
                let name = pick(&mut rng);
                let mut k = files.remove(&name).unwrap();
                serial += 1;
                let to = if k.dir == dirs[0] { dirs[1] } else { dirs[0] };
                let new = format!("t{t}-r{serial}").into_bytes();
                fs.rename(k.dir, &name, to, &new, 0).unwrap();
                k.dir = to;
                files.insert(new, k);
            }
            6 if !names.is_empty() => {
                let name = pick(&mut rng);
                let k = files.remove(&name).unwrap();
                fs.unlink(k.dir, &name).unwrap();
                fs.forget(k.ino, 1); // the create's lookup reference
            }
            7 if !names.is_empty() => {
                let name = pick(&mut rng);
                let k = &files[&name];
                let a = fs.lookup(k.dir, &name).unwrap();
                assert_eq!(a.ino, k.ino);
                assert_eq!(a.size, k.data.len() as u64, "size of {:?}", name);
                fs.forget(k.ino, 1);
            }
            8 => {
                // A directory moved across and back, with a file in it.
                serial += 1;
                let name = format!("t{t}-d{serial}").into_bytes();
                let d = fs
                    .create(dirs[0], &name, S_IFDIR | 0o755, 0, c)
                    .unwrap()
                    .ino;
                let f = fs.create(d, b"inner", S_IFREG | 0o644, 0, c).unwrap().ino;
                fs.write(f, 0, &name).unwrap();
                fs.rename(dirs[0], &name, dirs[1], &name, 0).unwrap();
                assert_eq!(fs.lookup(d, b"..").unwrap().ino, dirs[1]);
                fs.forget(dirs[1], 1);
                fs.rename(dirs[1], &name, dirs[0], &name, 0).unwrap();
                assert_eq!(fs.read(f, 0, 100).unwrap(), name);
                fs.unlink(d, b"inner").unwrap();
                fs.forget(f, 1);
                fs.rmdir(dirs[0], &name).unwrap();
                fs.forget(d, 1);
            }
            9 => {
                let v = content(&mut rng, SLOT);
                fs.write(shared, t * SLOT as u64, &v).unwrap();
                slot = v;
            }
            10 => {
                let d = dirs[rng.below(2) as usize];
                fs.readdir(d, 0, 1 << 20).unwrap();
                fs.getattr(d).unwrap();
                // Children numbered below their directory ("shared", the
                // root as ".."), locked by other threads meanwhile: the
                // out-of-order path that restarts an operation.
                assert_eq!(fs.lookup(dirs[0], b"shared").unwrap().ino, shared);
                fs.forget(shared, 1);
                assert_eq!(fs.lookup(d, b"..").unwrap().ino, ROOT);
                fs.forget(ROOT, 1);
                fs.readdir(ROOT, 0, 1 << 20).unwrap();
            }
            11 if rng.below(8) == 0 => fs.sync().unwrap(),
            _ => {}
        }
    }
    (files, slot)
}

fn check_files(fs: &Fs, files: &HashMap<Vec<u8>, Known>) {
    for (name, k) in files {
        let a = fs.lookup(k.dir, name).unwrap();
        assert_eq!(a.ino, k.ino, "{:?}", String::from_utf8_lossy(name));
        let got = fs.read(k.ino, 0, k.data.len() as u32 + 10).unwrap();
        assert!(
            got == k.data,
            "content of {:?} differs",
            String::from_utf8_lossy(name)
        );
    }
}

#[test]
fn threads_creating_writing_renaming_and_deleting_in_shared_directories() {
    let dir = TempDir::new("locks-stress");
    let img = dir.path().join("img");
    make_image(&img, 256 << 20, 1024);
    let opts = small_dirty_limits(2 << 20);
    let fs = Arc::new(Fs::mount(&img, opts.clone()).unwrap());
    let c = Caller::ROOT;
    // Low inode numbers first, moved below the (higher-numbered) shared
    // directories later: lookups then meet children numbered below their
    // parent, the out-of-order case.
    let early: Vec<u32> = (0..64)
        .map(|i| {
            let name = format!("early{i}");
            fs.create(ROOT, name.as_bytes(), S_IFREG | 0o644, 0, c)
                .unwrap()
                .ino
        })
        .collect();
    let shared = fs
        .create(ROOT, b"shared", S_IFREG | 0o644, 0, c)
        .unwrap()
        .ino;
    let d0 = fs.create(ROOT, b"d0", S_IFDIR | 0o755, 0, c).unwrap().ino;
    let d1 = fs.create(ROOT, b"d1", S_IFDIR | 0o755, 0, c).unwrap().ino;
    for (i, &ino) in early.iter().enumerate() {
        let name = format!("early{i}");
        fs.write(ino, 0, name.as_bytes()).unwrap();
        let to = if i % 2 == 0 { d0 } else { d1 };
        fs.rename(ROOT, name.as_bytes(), to, name.as_bytes(), 0)
            .unwrap();
        if i % 4 == 3 {
            // Frees low numbers for the threads' creates to reuse.
            fs.unlink(to, name.as_bytes()).unwrap();
            fs.forget(ino, 1);
        }
    }
    fs.rename(ROOT, b"shared", d0, b"shared", 0).unwrap();
    fs.sync().unwrap();

    // `FEXT_STRESS_SEED=0x...` runs another seed (threads interleave
    // differently on every run anyway).
    let seed = std::env::var("FEXT_STRESS_SEED").map_or(0x5eed_0000, |v| {
        u64::from_str_radix(v.trim_start_matches("0x"), 16).expect("FEXT_STRESS_SEED is hex")
    });
    eprintln!("stress seed {seed:#x}");
    let (tx, rx) = channel();
    for t in 0..THREADS {
        let fs = fs.clone();
        let tx = tx.clone();
        thread::spawn(move || {
            let r = stress_thread(&fs, t, [d0, d1], shared, seed + t * 7919);
            drop(fs); // the image stays locked while any Fs lives
            let _ = tx.send((t, r));
        });
    }
    drop(tx);
    let mut results = HashMap::new();
    for _ in 0..THREADS {
        // A deadlock shows as a thread that never reports.
        let (t, r) = rx
            .recv_timeout(Duration::from_secs(600))
            .expect("a stress thread neither finished nor panicked: deadlock");
        results.insert(t, r);
    }
    assert_eq!(results.len() as u64, THREADS, "a stress thread panicked");

    let check = |fs: &Fs| {
        for (t, (files, slot)) in &results {
            check_files(fs, files);
            let got = fs.read(shared, t * SLOT as u64, SLOT as u32).unwrap();
            if slot.iter().any(|&b| b != 0) {
                assert!(got == *slot, "shared slot {t} differs");
            }
        }
        let listed = |d: u32| -> usize {
            fs.readdir(d, 0, 1 << 20)
                .unwrap()
                .iter()
                .filter(|e| e.name.starts_with(b"t"))
                .count()
        };
        let known: usize = results.values().map(|(f, _)| f.len()).sum();
        assert_eq!(listed(d0) + listed(d1), known, "entries in d0 and d1");
    };
    fs.sync().unwrap();
    check(&fs);
    fs.unmount().unwrap();
    drop(fs);
    assert_e2fsck_clean(&img);

    let fs = Fs::mount(&img, opts).unwrap();
    check(&fs);
    fs.unmount().unwrap();
    drop(fs);
    assert_e2fsck_clean(&img);
}

/// Cross-directory renames walk up `..` under the rename mutex: a
/// directory cannot be moved below itself (the kernel checks this for the
/// FUSE mount; the core checks it for every caller), while a move to a
/// sibling subtree goes through.
#[test]
fn a_directory_cannot_move_into_its_own_subtree() {
    let dir = TempDir::new("locks-subtree");
    let img = dir.path().join("img");
    make_image(&img, 32 << 20, 1024);
    let fs = Fs::mount(&img, MountOptions::default()).unwrap();
    let c = Caller::ROOT;
    let a = fs.create(ROOT, b"a", S_IFDIR | 0o755, 0, c).unwrap().ino;
    let b = fs.create(a, b"b", S_IFDIR | 0o755, 0, c).unwrap().ino;
    let deep = fs.create(b, b"c", S_IFDIR | 0o755, 0, c).unwrap().ino;
    let other = fs
        .create(ROOT, b"other", S_IFDIR | 0o755, 0, c)
        .unwrap()
        .ino;
    let einval = |r: Result<(), fext::fs::FsError>| r.map_err(|e| e.errno);
    assert_eq!(
        einval(fs.rename(ROOT, b"a", deep, b"a", 0)),
        Err(libc::EINVAL)
    );
    assert_eq!(einval(fs.rename(ROOT, b"a", b, b"a", 0)), Err(libc::EINVAL));
    assert_eq!(
        einval(fs.rename(ROOT, b"a", b, b"c", 2 /* EXCHANGE */)),
        Err(libc::EINVAL),
        "exchanging a with its grandchild"
    );
    assert_eq!(
        einval(fs.rename(a, b"b", deep, b"x", 0)),
        Err(libc::EINVAL),
        "b into its own child"
    );
    fs.rename(a, b"b", other, b"b", 0).unwrap();
    assert_eq!(fs.lookup(b, b"..").unwrap().ino, other);
    fs.rename(ROOT, b"a", deep, b"a", 0).unwrap();
    fs.unmount().unwrap();
    drop(fs);
    assert_e2fsck_clean(&img);
}

/// Writes to one file overlap in their copies of whole blocks (made after
/// the inode's lock is released, see `Fs::write`). A truncate meanwhile
/// must wait for those copies: the blocks it frees can go to another file
/// at once, and a late copy would land in that file. Threads overwrite
/// blocks of one file while another truncates it and writes it again, and
/// a third fills new files; each new file must read back as written, and
/// the image must be clean.
#[test]
fn a_truncate_waits_for_the_copies_of_overwrites_in_flight() {
    const BLOCK: usize = 4096;
    const BLOCKS: u64 = 32;
    const ROUNDS: usize = 2000;
    let dir = TempDir::new("copy-race");
    let img = dir.path().join("img");
    make_image(&img, 64 << 20, BLOCK as u32);
    let fs = Arc::new(Fs::mount(&img, small_dirty_limits(4 << 20)).unwrap());
    let c = Caller::ROOT;
    let whole = vec![0xee; BLOCK * BLOCKS as usize];
    let victim = fs
        .create(ROOT, b"victim", S_IFREG | 0o644, 0, c)
        .unwrap()
        .ino;
    fs.write(victim, 0, &whole).unwrap();

    let overwriters: Vec<_> = (0..3u64)
        .map(|t| {
            spawn(&fs, move |fs| {
                let mut rng = Rng(0xc0ff_ee00 + t);
                for _ in 0..ROUNDS * 8 {
                    let at = rng.below(BLOCKS) * BLOCK as u64;
                    fs.write(victim, at, &[0xaa; BLOCK]).unwrap();
                }
            })
        })
        .collect();
    let truncator = spawn(&fs, move |fs| {
        let empty = fext::fs::ops_attr::SetAttr {
            size: Some(0),
            ..Default::default()
        };
        for _ in 0..ROUNDS {
            fs.setattr(victim, &empty).unwrap();
            fs.write(victim, 0, &whole).unwrap();
        }
    });
    let filler = spawn(&fs, move |fs| {
        let mut made = Vec::new();
        for i in 0..ROUNDS {
            let name = format!("new{i}");
            let ino = fs
                .create(ROOT, name.as_bytes(), S_IFREG | 0o644, 0, Caller::ROOT)
                .unwrap()
                .ino;
            let fill = vec![(i % 200) as u8 + 1; BLOCK * 4];
            fs.write(ino, 0, &fill).unwrap();
            made.push((ino, fill));
        }
        made
    });
    for rx in overwriters {
        rx.recv_timeout(FINISHES).expect("an overwriter");
    }
    truncator.recv_timeout(FINISHES).expect("the truncator");
    let made = filler.recv_timeout(FINISHES).expect("the filler");
    let check = |fs: &Fs| {
        for (ino, fill) in &made {
            let got = fs.read(*ino, 0, fill.len() as u32).unwrap();
            assert!(got == *fill, "inode {ino} holds bytes it was never given");
        }
    };
    check(&fs);
    fs.sync().unwrap();
    check(&fs);
    fs.unmount().unwrap();
    drop(fs);
    assert_e2fsck_clean(&img);
}
