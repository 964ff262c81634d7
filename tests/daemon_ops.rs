//! End-to-end tests of the `fext` daemon, one per operation family,
//! through a real FUSE mount.
//!
//! Each family's workload runs twice: first on a kernel ext4 mount of a
//! twin image (so every expectation written here is checked against Linux
//! itself), then on the fext mount. Errno values are asserted where Linux
//! documents them; where the exact value is ext4's business (xattr space,
//! SEEK_HOLE positions, ...) the workload records it as a *note* and both
//! sides must note the same. Then [`Pair::finish`] runs the oracles:
//! same trees, clean unmount, `e2fsck -fn`, kernel view of fext's image.
//!
//! Every family runs on ext4 with 1 KiB and 4 KiB blocks and on ext2 with
//! 1 KiB blocks (block maps up to triple indirect).

mod common;

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, DirBuilderExt, FileExt, MetadataExt, PermissionsExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use common::pair::{no_mtime, Pair, PairConfig};
use common::richtree::pattern;
use common::sys::{self, errno_name, errno_of, expect_errno};
use common::*;

/// One side of a differential run, handed to a workload.
struct Side {
    root: PathBuf,
    block_size: u32,
    extents: bool,
    notes: Vec<String>,
}

impl Side {
    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Record something both sides must agree on.
    fn note(&mut self, what: impl Into<String>) {
        self.notes.push(what.into());
    }

    /// Record the outcome (value or errno name) of an operation.
    fn note_result<T: std::fmt::Debug>(&mut self, what: &str, r: &std::io::Result<T>) {
        let s = match r {
            Ok(v) => format!("{what}: ok {v:?}"),
            Err(_) => format!("{what}: {}", errno_name(errno_of(r))),
        };
        self.notes.push(s);
    }
}

fn panic_text(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "<non-string panic>".into())
}

/// Run `work` on the reference, then on fext, compare notes, then judge.
fn run_family(cfg: PairConfig, work: fn(&mut Side)) {
    // SAFETY: umask(2) has no preconditions; a fixed umask makes the modes
    // of created files deterministic.
    unsafe { libc::umask(0o022) };
    let label = cfg.label();
    let extents = cfg.fs_type == "ext4";
    let block_size = cfg.block_size.expect("families set a block size");
    let Some(pair) = Pair::new(cfg) else { return };
    let mut all_notes = Vec::new();
    for (name, root) in pair.roots() {
        let mut side = Side {
            root,
            block_size,
            extents,
            notes: Vec::new(),
        };
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| work(&mut side))) {
            panic!("[{label}] workload failed on {name}: {}", panic_text(&e));
        }
        all_notes.push(side.notes);
    }
    let (r, f) = (&all_notes[0], &all_notes[1]);
    let diffs: Vec<String> = r
        .iter()
        .zip(f.iter())
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("  reference: {a}\n  fext:      {b}"))
        .collect();
    assert!(
        diffs.is_empty() && r.len() == f.len(),
        "[{label}] fext and the kernel disagree ({} vs {} notes):\n{}",
        r.len(),
        f.len(),
        diffs.join("\n")
    );
    pair.finish(&no_mtime());
}

macro_rules! family {
    ($name:ident, $work:path) => {
        mod $name {
            use super::*;
            #[test]
            fn ext4_1k() {
                run_family(PairConfig::new("ext4", 1024), $work);
            }
            #[test]
            fn ext4_4k() {
                run_family(PairConfig::new("ext4", 4096), $work);
            }
            #[test]
            fn ext2_1k() {
                run_family(PairConfig::new("ext2", 1024), $work);
            }
        }
    };
}

fn meta(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()))
}

fn read_all(p: &Path) -> Vec<u8> {
    fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Write `data` at `off` into the file and into its in-memory model.
fn pwrite_model(f: &File, model: &mut Vec<u8>, off: u64, data: &[u8]) {
    f.write_all_at(data, off).expect("pwrite");
    let end = usize::try_from(off).unwrap() + data.len();
    if model.len() < end {
        model.resize(end, 0);
    }
    model[usize::try_from(off).unwrap()..end].copy_from_slice(data);
}

#[track_caller]
fn assert_content(p: &Path, want: &[u8], what: &str) {
    let got = read_all(p);
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: {} has {} bytes, expected {}; first difference at {at}",
            p.display(),
            got.len(),
            want.len()
        );
    }
}

// ---------------------------------------------------------------- open

fn w_open_flags(s: &mut Side) {
    use libc::{O_APPEND, O_CREAT, O_DIRECTORY, O_EXCL, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY};
    let f = s.p("f");
    let mut file = sys::open(&f, O_CREAT | O_EXCL | O_WRONLY, 0o640).expect("O_CREAT|O_EXCL");
    file.write_all(b"hello world").unwrap();
    drop(file);
    assert_eq!(meta(&f).mode() & 0o7777, 0o640);
    expect_errno(
        sys::open(&f, O_CREAT | O_EXCL | O_WRONLY, 0o600),
        libc::EEXIST,
        "O_EXCL on an existing file",
    );
    // O_CREAT without O_EXCL opens the existing file untouched.
    drop(sys::open(&f, O_CREAT | O_WRONLY, 0o600).unwrap());
    assert_content(&f, b"hello world", "O_CREAT on existing");
    assert_eq!(meta(&f).mode() & 0o7777, 0o640);

    let mut t = sys::open(&f, O_WRONLY | O_TRUNC, 0).unwrap();
    assert_eq!(t.metadata().unwrap().len(), 0, "O_TRUNC empties the file");
    t.write_all(b"abc").unwrap();
    drop(t);
    let mut a = sys::open(&f, O_WRONLY | O_APPEND, 0).unwrap();
    a.seek(SeekFrom::Start(0)).unwrap();
    a.write_all(b"XYZ").unwrap();
    let mut a2 = sys::open(&f, O_RDWR | O_APPEND, 0).unwrap();
    a2.write_all(b"123").unwrap();
    a.write_all(b"!").unwrap();
    drop((a, a2));
    assert_content(&f, b"abcXYZ123!", "O_APPEND writes at the end");

    expect_errno(
        sys::open(&s.p("missing"), O_RDONLY, 0),
        libc::ENOENT,
        "open missing",
    );
    expect_errno(
        sys::open(&s.p("f/x"), O_RDONLY, 0),
        libc::ENOTDIR,
        "open below a file",
    );
    fs::create_dir(s.p("d")).unwrap();
    expect_errno(
        sys::open(&s.p("d"), O_WRONLY, 0),
        libc::EISDIR,
        "open a dir for writing",
    );
    expect_errno(
        sys::open(&f, O_RDONLY | O_DIRECTORY, 0),
        libc::ENOTDIR,
        "O_DIRECTORY on a file",
    );
    expect_errno(
        sys::open(&s.p("nodir/x"), O_CREAT | O_WRONLY, 0o644),
        libc::ENOENT,
        "create in a missing dir",
    );
    symlink("target_of_dangling", s.p("dangling")).unwrap();
    expect_errno(
        sys::open(&s.p("dangling"), O_CREAT | O_EXCL | O_WRONLY, 0o644),
        libc::EEXIST,
        "O_EXCL on a dangling symlink",
    );
    // Without O_EXCL, creating through a dangling symlink creates its target.
    let mut via = sys::open(&s.p("dangling"), O_CREAT | O_WRONLY, 0o600).unwrap();
    via.write_all(b"via link").unwrap();
    drop(via);
    assert_content(
        &s.p("target_of_dangling"),
        b"via link",
        "create via symlink",
    );

    let long = "n".repeat(255);
    fs::write(s.p(&long), b"255").unwrap();
    assert_content(&s.p(&long), b"255", "255-byte name");
    expect_errno(
        sys::open(&s.p(&"n".repeat(256)), O_CREAT | O_WRONLY, 0o644),
        libc::ENAMETOOLONG,
        "256-byte name",
    );
    expect_errno(
        fs::metadata(s.p(&"n".repeat(256))),
        libc::ENAMETOOLONG,
        "stat of a 256-byte name",
    );
    symlink("m".repeat(300), s.p("to_long_name")).unwrap();
    expect_errno(
        fs::metadata(s.p("to_long_name")),
        libc::ENAMETOOLONG,
        "stat through a symlink to a 300-byte name",
    );
    // Mode 0 file: root may still open it.
    let z = sys::open(&s.p("zero"), O_CREAT | O_RDWR, 0).unwrap();
    z.write_all_at(b"root can", 0).unwrap();
    drop(z);
    assert_eq!(meta(&s.p("zero")).mode() & 0o7777, 0);
    assert_content(&s.p("zero"), b"root can", "mode 0 file");
    // Many small files in a sub directory.
    for i in 0..200 {
        fs::write(s.p(&format!("d/file-{i}")), format!("content {i}")).unwrap();
    }
    for i in (0..200).step_by(5) {
        assert_content(
            &s.p(&format!("d/file-{i}")),
            format!("content {i}").as_bytes(),
            "small file",
        );
    }
}
family!(open_flags, w_open_flags);

// ---------------------------------------------------------------- read/write

fn w_read_write(s: &mut Side) {
    let p = s.p("rw");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    let mut model = Vec::new();
    let bs = u64::from(s.block_size);
    let writes: [(u64, usize, u64); 7] = [
        (0, 5000, 1),
        (bs - 3, 20, 2),
        ((1 << 20) + 7, 70_000, 3),
        (8 << 20, 3 << 20, 4),
        (300, 10, 5),
        (3 * bs, 2 * bs as usize, 6),
        ((8 << 20) + 12345, 1, 7),
    ];
    for (off, len, seed) in writes {
        pwrite_model(&f, &mut model, off, &pattern(len, seed));
    }
    assert_eq!(f.metadata().unwrap().len(), model.len() as u64, "size");
    // Read back in odd-sized chunks at odd offsets.
    let mut buf = vec![0u8; 7919];
    let mut off = 0usize;
    while off < model.len() {
        let n = f.read_at(&mut buf, off as u64).unwrap();
        assert!(n > 0, "short read at {off} of {}", model.len());
        assert_eq!(&buf[..n], &model[off..off + n], "data at {off}");
        off += n;
    }
    assert_eq!(
        f.read_at(&mut buf, model.len() as u64).unwrap(),
        0,
        "read at EOF"
    );
    assert_eq!(
        f.read_at(&mut buf, 1 << 40).unwrap(),
        0,
        "read far past EOF"
    );
    f.sync_all().unwrap();
    drop(f);
    assert_content(&p, &model, "rw after fsync");

    // A sparse file: data far out, holes read as zeroes, few blocks used.
    let sp = s.p("sparse");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&sp)
        .unwrap();
    f.write_all_at(&pattern(4096, 8), 5 << 20).unwrap();
    f.write_all_at(b"Z", 1 << 30).unwrap();
    let m = f.metadata().unwrap();
    assert_eq!(m.len(), (1 << 30) + 1);
    assert!(
        m.blocks() * 512 < (1 << 20),
        "sparse file uses {} bytes",
        m.blocks() * 512
    );
    let mut hole = vec![1u8; 1 << 20];
    f.read_exact_at(&mut hole, 100 << 20).unwrap();
    assert!(hole.iter().all(|&b| b == 0), "hole reads as zeroes");
    let mut z = [0u8; 2];
    assert_eq!(f.read_at(&mut z, 1 << 30).unwrap(), 1);
    assert_eq!(z[0], b'Z');
    f.read_exact_at(&mut hole[..4096], 5 << 20).unwrap();
    assert_eq!(&hole[..4096], &pattern(4096, 8)[..]);
    drop(f);

    // Sizes around the block size.
    for (name, len) in [
        ("tiny", 1),
        ("exact", bs as usize),
        ("plus1", bs as usize + 1),
        ("twelve", 12 * bs as usize),
        ("thirteen", 13 * bs as usize),
    ] {
        let data = pattern(len, len as u64);
        fs::write(s.p(name), &data).unwrap();
        assert_content(&s.p(name), &data, name);
    }
    // Appends through std.
    let mut a = OpenOptions::new().append(true).open(s.p("tiny")).unwrap();
    a.write_all(b"appended").unwrap();
    drop(a);
    let mut want = pattern(1, 1);
    want.extend_from_slice(b"appended");
    assert_content(&s.p("tiny"), &want, "append");
    // Overwrite in the middle of an existing file through a second fd
    // while the first still reads.
    let r = File::open(&p).unwrap();
    let w = OpenOptions::new().write(true).open(&p).unwrap();
    w.write_all_at(b"MIDDLE", 4000).unwrap();
    let mut got = [0u8; 6];
    r.read_exact_at(&mut got, 4000).unwrap();
    assert_eq!(&got, b"MIDDLE", "a write is visible to another fd at once");
}
family!(read_write, w_read_write);

// ---------------------------------------------------------------- truncate

fn w_truncate(s: &mut Side) {
    let bs = u64::from(s.block_size);
    let p = s.p("t");
    let data = pattern(100_000, 11);
    fs::write(&p, &data).unwrap();
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    f.set_len(5000).unwrap();
    f.set_len(20_000).unwrap();
    let mut want = data[..5000].to_vec();
    want.resize(20_000, 0);
    assert_content(&p, &want, "truncate down then up: no stale bytes");
    f.set_len(0).unwrap();
    assert_eq!(meta(&p).len(), 0);
    f.sync_all().unwrap();
    assert_eq!(meta(&p).blocks(), 0, "empty file has no blocks");

    // Into the indirect / extent-tree territory and back.
    let big = pattern(300 * bs as usize, 12);
    f.write_all_at(&big, 0).unwrap();
    f.set_len(13 * bs + 5).unwrap();
    assert_content(
        &p,
        &big[..(13 * bs + 5) as usize],
        "shrink into the direct blocks",
    );
    f.set_len(2 << 30).unwrap();
    assert_eq!(meta(&p).len(), 2 << 30);
    let mut buf = vec![1u8; 4096];
    f.read_exact_at(&mut buf, (1 << 30) + 77).unwrap();
    assert!(buf.iter().all(|&b| b == 0), "extended part reads as zeroes");
    f.set_len(12345).unwrap();
    let mut want = big[..(13 * bs + 5) as usize].to_vec();
    want.resize(12345, 0);
    assert_content(&p, &want, "truncate to 12345");
    drop(f);

    // Partial last block: bytes beyond a truncation point are zero when
    // the file grows again.
    let q = s.p("q");
    fs::write(&q, b"0123456789").unwrap();
    let c = CString::new(q.as_os_str().as_bytes()).unwrap();
    // SAFETY: NUL-terminated path.
    assert_eq!(unsafe { libc::truncate(c.as_ptr(), 5) }, 0);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::truncate(c.as_ptr(), 10) }, 0);
    assert_content(&q, b"01234\0\0\0\0\0", "truncate(2) by path");
    fs::create_dir(s.p("dir")).unwrap();
    let cd = CString::new(s.p("dir").as_os_str().as_bytes()).unwrap();
    // SAFETY: NUL-terminated path.
    let rc = unsafe { libc::truncate(cd.as_ptr(), 0) };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EISDIR),
        "truncate a directory"
    );
    let ro = File::open(&q).unwrap();
    let r = ro.set_len(1);
    s.note_result("ftruncate on a read-only fd", &r);
    // O_TRUNC of a file with blocks frees them.
    fs::write(s.p("otrunc"), pattern(50_000, 13)).unwrap();
    drop(
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(s.p("otrunc"))
            .unwrap(),
    );
    let m = meta(&s.p("otrunc"));
    assert_eq!((m.len(), m.blocks()), (0, 0), "O_TRUNC frees the blocks");
    // Many sizes, each checked.
    let r = s.p("steps");
    let rd = pattern(70_000, 14);
    fs::write(&r, &rd).unwrap();
    let f = OpenOptions::new().write(true).open(&r).unwrap();
    let mut cur = rd.clone();
    for len in [
        69_999u64, 65_536, 4097, 4096, 4095, 1025, 1024, 1023, 1, 0, 3000,
    ] {
        f.set_len(len).unwrap();
        cur.resize(len as usize, 0);
        assert_content(&r, &cur, &format!("after set_len({len})"));
    }
}
family!(truncate, w_truncate);

// ---------------------------------------------------------------- mkdir/rmdir

fn w_mkdir_rmdir(s: &mut Side) {
    let root_links = meta(&s.root).nlink();
    fs::create_dir(s.p("d")).unwrap();
    assert_eq!(meta(&s.root).nlink(), root_links + 1, "parent nlink +1");
    assert_eq!(meta(&s.p("d")).nlink(), 2, "new dir nlink");
    expect_errno(fs::create_dir(s.p("d")), libc::EEXIST, "mkdir existing");
    fs::create_dir(s.p("d/sub")).unwrap();
    assert_eq!(meta(&s.p("d")).nlink(), 3);
    fs::write(s.p("d/file"), b"x").unwrap();
    expect_errno(fs::remove_dir(s.p("d")), libc::ENOTEMPTY, "rmdir non-empty");
    expect_errno(fs::remove_dir(s.p("d/file")), libc::ENOTDIR, "rmdir a file");
    expect_errno(fs::remove_dir(s.p("d/sub/.")), libc::EINVAL, "rmdir .");
    expect_errno(fs::remove_file(s.p("d/sub")), libc::EISDIR, "unlink a dir");
    expect_errno(
        fs::create_dir(s.p("nodir/x")),
        libc::ENOENT,
        "mkdir in a missing dir",
    );
    expect_errno(
        fs::create_dir(s.p("d/file/x")),
        libc::ENOTDIR,
        "mkdir below a file",
    );
    fs::remove_dir(s.p("d/sub")).unwrap();
    assert_eq!(meta(&s.p("d")).nlink(), 2, "rmdir: parent nlink -1");
    // Modes: mkdir honours the mode (minus umask 022) and special bits.
    fs::DirBuilder::new()
        .mode(0o1777)
        .create(s.p("sticky"))
        .unwrap();
    assert_eq!(meta(&s.p("sticky")).mode() & 0o7777, 0o1755);
    fs::set_permissions(s.p("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
    assert_eq!(meta(&s.p("sticky")).mode() & 0o7777, 0o1777);
    // setgid directory: new entries take its group, subdirectories the bit.
    fs::create_dir(s.p("sgid")).unwrap();
    std::os::unix::fs::chown(s.p("sgid"), Some(0), Some(5678)).unwrap();
    fs::set_permissions(s.p("sgid"), fs::Permissions::from_mode(0o2775)).unwrap();
    fs::write(s.p("sgid/file"), b"g").unwrap();
    fs::create_dir(s.p("sgid/sub")).unwrap();
    assert_eq!(meta(&s.p("sgid/file")).gid(), 5678, "file in setgid dir");
    let sub = meta(&s.p("sgid/sub"));
    assert_eq!(sub.gid(), 5678, "dir in setgid dir: group");
    assert_eq!(sub.mode() & 0o2000, 0o2000, "dir in setgid dir: setgid bit");
    // Deep nesting and its removal.
    let deep: PathBuf = (0..40).map(|i| format!("level{i}")).collect();
    fs::create_dir_all(s.root.join("deep").join(&deep)).unwrap();
    fs::write(s.root.join("deep").join(&deep).join("bottom"), b"b").unwrap();
    fs::remove_dir_all(s.p("deep/level0/level1/level2")).unwrap();
    // Many sub directories (the directory grows past one block and gets
    // an index on ext4), then half of them removed.
    fs::create_dir(s.p("many")).unwrap();
    for i in 0..1500 {
        fs::create_dir(s.p(&format!("many/sub-directory-number-{i:05}"))).unwrap();
    }
    assert_eq!(meta(&s.p("many")).nlink(), 1502);
    for i in (0..1500).step_by(2) {
        fs::remove_dir(s.p(&format!("many/sub-directory-number-{i:05}"))).unwrap();
    }
    assert_eq!(meta(&s.p("many")).nlink(), 752);
    assert_eq!(fs::read_dir(s.p("many")).unwrap().count(), 750);
    fs::create_dir(s.p("empty_kept")).unwrap();
}
family!(mkdir_rmdir, w_mkdir_rmdir);

// ---------------------------------------------------------------- unlink

fn w_unlink(s: &mut Side) {
    fs::create_dir(s.p("u")).unwrap();
    fs::write(s.p("u/a"), b"a").unwrap();
    fs::remove_file(s.p("u/a")).unwrap();
    expect_errno(fs::remove_file(s.p("u/a")), libc::ENOENT, "unlink twice");
    expect_errno(fs::metadata(s.p("u/a")), libc::ENOENT, "stat unlinked");
    expect_errno(fs::remove_file(s.p("u")), libc::EISDIR, "unlink a dir");

    // An open file keeps its data until the last close. (FUSE has no
    // syncfs: fsync of a directory makes fext write everything back, so
    // statfs counts exactly. FUSE sends RELEASE asynchronously after the
    // close, so the freed blocks show up shortly after it.)
    sys::fsync_dir(&s.root).unwrap();
    let before = sys::statvfs(&s.root).unwrap();
    let data = pattern(4 << 20, 21);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(s.p("u/open"))
        .unwrap();
    f.write_all(&data).unwrap();
    fs::remove_file(s.p("u/open")).unwrap();
    assert_eq!(f.metadata().unwrap().nlink(), 0, "fstat after unlink");
    let mut got = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut got).unwrap();
    assert!(got == data, "data readable through the fd after unlink");
    f.write_all_at(b"more", 1 << 20).unwrap();
    let mut four = [0u8; 4];
    f.read_exact_at(&mut four, 1 << 20).unwrap();
    assert_eq!(&four, b"more");
    f.sync_all().unwrap();
    let during = sys::statvfs(&s.root).unwrap();
    assert!(
        during.f_bfree + 4000 * 1024 / u64::from(s.block_size) <= before.f_bfree,
        "an unlinked open file still holds its blocks"
    );
    drop(f);
    let mut last = (0, 0);
    let freed = wait_until(
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(20),
        || {
            sys::fsync_dir(&s.root).unwrap();
            let after = sys::statvfs(&s.root).unwrap();
            last = (after.f_bfree, after.f_ffree);
            // At least what the open file held comes back (more when the
            // kernel forgets an earlier unlinked inode meanwhile).
            last.0 >= before.f_bfree && last.1 >= before.f_ffree
        },
    );
    assert!(
        freed,
        "the last close frees an unlinked file's blocks and inode: free (blocks, inodes) {last:?}, before {:?}",
        (before.f_bfree, before.f_ffree)
    );
    // Unlinking one of two hard links keeps the data.
    fs::write(s.p("u/h1"), b"linked").unwrap();
    fs::hard_link(s.p("u/h1"), s.p("u/h2")).unwrap();
    fs::remove_file(s.p("u/h1")).unwrap();
    assert_content(&s.p("u/h2"), b"linked", "other link");
    assert_eq!(meta(&s.p("u/h2")).nlink(), 1);
    // Unlinking a symlink removes the link, not the target.
    fs::write(s.p("u/target"), b"t").unwrap();
    symlink("target", s.p("u/link")).unwrap();
    fs::remove_file(s.p("u/link")).unwrap();
    assert_content(&s.p("u/target"), b"t", "symlink target survives");
    // Many files, all removed again.
    for i in 0..500 {
        fs::write(s.p(&format!("u/bulk{i}")), pattern(i * 13, i as u64)).unwrap();
    }
    for i in 0..500 {
        fs::remove_file(s.p(&format!("u/bulk{i}"))).unwrap();
    }
    assert_eq!(fs::read_dir(s.p("u")).unwrap().count(), 2);
}
family!(unlink, w_unlink);

// ---------------------------------------------------------------- link

fn w_link(s: &mut Side) {
    fs::write(s.p("f"), b"one inode").unwrap();
    fs::hard_link(s.p("f"), s.p("g")).unwrap();
    let (mf, mg) = (meta(&s.p("f")), meta(&s.p("g")));
    assert_eq!(mf.ino(), mg.ino());
    assert_eq!((mf.nlink(), mg.nlink()), (2, 2));
    expect_errno(
        fs::hard_link(s.p("f"), s.p("g")),
        libc::EEXIST,
        "link onto an existing name",
    );
    fs::create_dir(s.p("d")).unwrap();
    expect_errno(
        fs::hard_link(s.p("d"), s.p("dlink")),
        libc::EPERM,
        "link a directory",
    );
    expect_errno(
        fs::hard_link(s.p("missing"), s.p("x")),
        libc::ENOENT,
        "link a missing file",
    );
    fs::hard_link(s.p("f"), s.p("d/h")).unwrap();
    assert_eq!(meta(&s.p("f")).nlink(), 3);
    fs::remove_file(s.p("f")).unwrap();
    assert_eq!(meta(&s.p("g")).nlink(), 2);
    assert_content(&s.p("d/h"), b"one inode", "link in another dir");
    // Write through one name, read through the other.
    fs::write(s.p("g"), b"changed").unwrap();
    assert_content(&s.p("d/h"), b"changed", "shared inode");
    // A hard link to a symlink links the symlink itself.
    symlink("g", s.p("sl")).unwrap();
    fs::hard_link(s.p("sl"), s.p("sl2")).unwrap();
    assert_eq!(meta(&s.p("sl2")).nlink(), 2);
    assert!(meta(&s.p("sl2")).file_type().is_symlink());
    // Many links to one inode in one directory.
    fs::create_dir(s.p("many")).unwrap();
    fs::write(s.p("many/base"), b"base").unwrap();
    for i in 0..300 {
        fs::hard_link(s.p("many/base"), s.p(&format!("many/link{i}"))).unwrap();
    }
    assert_eq!(meta(&s.p("many/base")).nlink(), 301);
    for i in (0..300).step_by(3) {
        fs::remove_file(s.p(&format!("many/link{i}"))).unwrap();
    }
    assert_eq!(meta(&s.p("many/link1")).nlink(), 201);
}
family!(link, w_link);

// ---------------------------------------------------------------- symlink

fn w_symlink(s: &mut Side) {
    let bs = s.block_size as usize;
    let mut lens = vec![1, 59, 60, 61, 200, 1000, bs - 1];
    lens.sort_unstable();
    lens.dedup();
    for len in lens {
        let target: String = (0..len)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let link = s.p(&format!("len{len}"));
        symlink(&target, &link).unwrap_or_else(|e| panic!("symlink of {len} bytes: {e}"));
        assert_eq!(fs::read_link(&link).unwrap(), Path::new(&target));
        assert_eq!(meta(&link).len(), len as u64, "symlink size");
    }
    expect_errno(
        symlink("x".repeat(bs), s.p("too_long")),
        libc::ENAMETOOLONG,
        "symlink target of a block size",
    );
    expect_errno(
        symlink("t", s.p("len1")),
        libc::EEXIST,
        "symlink onto a name",
    );
    fs::create_dir(s.p("dir")).unwrap();
    fs::write(s.p("dir/file"), b"through").unwrap();
    symlink("dir", s.p("ld")).unwrap();
    assert_content(&s.p("ld/file"), b"through", "path through a symlink");
    symlink("/absolute/path/elsewhere", s.p("abs")).unwrap();
    let weird = OsStr::from_bytes(b"odd \xff\xfe bytes \n and spaces");
    symlink(weird, s.p("weird")).unwrap();
    assert_eq!(fs::read_link(s.p("weird")).unwrap().as_os_str(), weird);
    // A symlink loop.
    symlink("loop2", s.p("loop1")).unwrap();
    symlink("loop1", s.p("loop2")).unwrap();
    expect_errno(fs::read(s.p("loop1")), libc::ELOOP, "open a symlink loop");
}
family!(symlinks, w_symlink);

// ---------------------------------------------------------------- rename

fn ino(p: &Path) -> u64 {
    meta(p).ino()
}

fn w_rename(s: &mut Side) {
    // Plain.
    fs::write(s.p("a"), b"a").unwrap();
    let a_ino = ino(&s.p("a"));
    fs::rename(s.p("a"), s.p("b")).unwrap();
    expect_errno(fs::metadata(s.p("a")), libc::ENOENT, "old name gone");
    assert_eq!(ino(&s.p("b")), a_ino, "same inode under the new name");
    // Over a file (held open: the old content stays readable).
    fs::write(s.p("c"), b"new content").unwrap();
    fs::write(s.p("d"), b"old content").unwrap();
    let held = File::open(s.p("d")).unwrap();
    fs::rename(s.p("c"), s.p("d")).unwrap();
    assert_content(&s.p("d"), b"new content", "rename over a file");
    assert_eq!(meta(&s.p("d")).nlink(), 1);
    let mut old = String::new();
    (&held).read_to_string(&mut old).unwrap();
    assert_eq!(old, "old content", "replaced file still readable via fd");
    drop(held);
    // Over an empty directory.
    fs::create_dir(s.p("e1")).unwrap();
    fs::write(s.p("e1/inside"), b"i").unwrap();
    fs::create_dir(s.p("e2")).unwrap();
    let links = meta(&s.root).nlink();
    fs::rename(s.p("e1"), s.p("e2")).unwrap();
    assert_eq!(meta(&s.root).nlink(), links - 1, "one directory less");
    assert_content(&s.p("e2/inside"), b"i", "dir replaced an empty dir");
    // Type mismatches and non-empty targets.
    fs::create_dir(s.p("full")).unwrap();
    fs::write(s.p("full/x"), b"x").unwrap();
    expect_errno(
        fs::rename(s.p("b"), s.p("e2")),
        libc::EISDIR,
        "file over dir",
    );
    expect_errno(
        fs::rename(s.p("e2"), s.p("b")),
        libc::ENOTDIR,
        "dir over file",
    );
    expect_errno(
        fs::rename(s.p("e2"), s.p("full")),
        libc::ENOTEMPTY,
        "dir over a non-empty dir",
    );
    expect_errno(
        fs::rename(s.p("full"), s.p("full/x/y")),
        libc::ENOTDIR,
        "below a file",
    );
    fs::create_dir(s.p("full/sub")).unwrap();
    expect_errno(
        fs::rename(s.p("full"), s.p("full/sub/inner")),
        libc::EINVAL,
        "dir into its own subdir",
    );
    expect_errno(
        fs::rename(s.p("missing"), s.p("x")),
        libc::ENOENT,
        "missing source",
    );
    fs::rename(s.p("b"), s.p("b")).unwrap();
    // A directory across parents: nlinks and `..`.
    fs::create_dir_all(s.p("p1/x/y")).unwrap();
    fs::create_dir(s.p("p2")).unwrap();
    let (n1, n2) = (meta(&s.p("p1")).nlink(), meta(&s.p("p2")).nlink());
    fs::rename(s.p("p1/x"), s.p("p2/x")).unwrap();
    assert_eq!(meta(&s.p("p1")).nlink(), n1 - 1, "old parent nlink");
    assert_eq!(meta(&s.p("p2")).nlink(), n2 + 1, "new parent nlink");
    assert_eq!(
        ino(&s.p("p2/x/..")),
        ino(&s.p("p2")),
        "`..` follows the move"
    );
    assert_eq!(meta(&s.p("p2/x")).nlink(), 3);
    // Over an empty directory in another parent.
    fs::create_dir(s.p("p1/target")).unwrap();
    let (n1, n2) = (meta(&s.p("p1")).nlink(), meta(&s.p("p2")).nlink());
    fs::rename(s.p("p2/x"), s.p("p1/target")).unwrap();
    assert_eq!(meta(&s.p("p1")).nlink(), n1, "replaced dir: old count");
    assert_eq!(meta(&s.p("p2")).nlink(), n2 - 1);
    assert_eq!(ino(&s.p("p1/target/..")), ino(&s.p("p1")));
    assert!(meta(&s.p("p1/target/y")).is_dir());
    // Two names of one inode: renaming one onto the other does nothing.
    fs::write(s.p("h1"), b"h").unwrap();
    fs::hard_link(s.p("h1"), s.p("h2")).unwrap();
    fs::rename(s.p("h1"), s.p("h2")).unwrap();
    assert!(
        s.p("h1").exists() && s.p("h2").exists(),
        "same-inode rename is a no-op"
    );
    assert_eq!(meta(&s.p("h1")).nlink(), 2);
    // RENAME_NOREPLACE.
    fs::write(s.p("n1"), b"n1").unwrap();
    fs::write(s.p("n2"), b"n2").unwrap();
    expect_errno(
        sys::renameat2(&s.p("n1"), &s.p("n2"), libc::RENAME_NOREPLACE),
        libc::EEXIST,
        "RENAME_NOREPLACE onto an existing name",
    );
    sys::renameat2(&s.p("n1"), &s.p("n3"), libc::RENAME_NOREPLACE).unwrap();
    assert_content(&s.p("n3"), b"n1", "NOREPLACE to a free name");
    // RENAME_EXCHANGE of a file and a directory in different parents.
    fs::create_dir_all(s.p("q1")).unwrap();
    fs::create_dir_all(s.p("q2/dir/child")).unwrap();
    fs::write(s.p("q1/file"), b"file").unwrap();
    let (n1, n2) = (meta(&s.p("q1")).nlink(), meta(&s.p("q2")).nlink());
    let (fi, di) = (ino(&s.p("q1/file")), ino(&s.p("q2/dir")));
    sys::renameat2(&s.p("q1/file"), &s.p("q2/dir"), libc::RENAME_EXCHANGE).unwrap();
    assert_eq!(ino(&s.p("q1/file")), di, "exchange: dir now in q1");
    assert_eq!(ino(&s.p("q2/dir")), fi, "exchange: file now in q2");
    assert_eq!(meta(&s.p("q1")).nlink(), n1 + 1);
    assert_eq!(meta(&s.p("q2")).nlink(), n2 - 1);
    assert_eq!(ino(&s.p("q1/file/..")), ino(&s.p("q1")), "exchange: `..`");
    assert!(meta(&s.p("q1/file/child")).is_dir());
    assert_content(&s.p("q2/dir"), b"file", "exchange: file content");
    // Two files in one directory.
    sys::renameat2(&s.p("n2"), &s.p("n3"), libc::RENAME_EXCHANGE).unwrap();
    assert_content(&s.p("n2"), b"n1", "exchange files");
    assert_content(&s.p("n3"), b"n2", "exchange files");
    expect_errno(
        sys::renameat2(&s.p("n2"), &s.p("nothing"), libc::RENAME_EXCHANGE),
        libc::ENOENT,
        "RENAME_EXCHANGE with a missing target",
    );
    expect_errno(
        sys::renameat2(
            &s.p("n2"),
            &s.p("n3"),
            libc::RENAME_EXCHANGE | libc::RENAME_NOREPLACE,
        ),
        libc::EINVAL,
        "EXCHANGE|NOREPLACE",
    );
    // Renames in a big directory.
    fs::create_dir(s.p("big")).unwrap();
    for i in 0..800 {
        fs::write(s.p(&format!("big/entry-{i:04}")), i.to_string()).unwrap();
    }
    for i in 0..800 {
        fs::rename(
            s.p(&format!("big/entry-{i:04}")),
            s.p(&format!("big/renamed-entry-with-a-longer-name-{i:04}")),
        )
        .unwrap();
    }
    for i in (0..800).step_by(37) {
        assert_content(
            &s.p(&format!("big/renamed-entry-with-a-longer-name-{i:04}")),
            i.to_string().as_bytes(),
            "renamed in a big dir",
        );
    }
    assert_eq!(fs::read_dir(s.p("big")).unwrap().count(), 800);
}
family!(rename, w_rename);

// ---------------------------------------------------------------- mknod

fn w_mknod(s: &mut Side) {
    let cases: [(&str, libc::mode_t, libc::dev_t); 6] = [
        ("fifo", libc::S_IFIFO | 0o644, 0),
        ("socket", libc::S_IFSOCK | 0o755, 0),
        ("null", libc::S_IFCHR | 0o666, libc::makedev(1, 3)),
        ("loop0", libc::S_IFBLK | 0o660, libc::makedev(7, 0)),
        ("bigchar", libc::S_IFCHR | 0o600, libc::makedev(300, 70_000)),
        ("bigblock", libc::S_IFBLK | 0o600, libc::makedev(259, 1)),
    ];
    for (name, mode, dev) in cases {
        sys::mknod(&s.p(name), mode, dev).unwrap_or_else(|e| panic!("mknod {name}: {e}"));
        let m = meta(&s.p(name));
        assert_eq!(m.mode(), mode & !0o022, "{name}: mode (umask 022)");
        if dev != 0 {
            assert_eq!(m.rdev(), dev, "{name}: rdev");
        }
    }
    expect_errno(
        sys::mknod(&s.p("fifo"), libc::S_IFIFO | 0o644, 0),
        libc::EEXIST,
        "mknod onto a name",
    );
    sys::mknod(&s.p("regular"), libc::S_IFREG | 0o640, 0).unwrap();
    let m = meta(&s.p("regular"));
    assert!(m.is_file() && m.len() == 0);
    // A fifo on the mount works as a fifo.
    let fifo = s.p("fifo");
    let writer = std::thread::spawn(move || fs::write(fifo, b"through the pipe").unwrap());
    assert_content(&s.p("fifo"), b"through the pipe", "fifo");
    writer.join().unwrap();
    // Device nodes can be renamed and linked like files.
    fs::rename(s.p("null"), s.p("null2")).unwrap();
    fs::hard_link(s.p("null2"), s.p("null3")).unwrap();
    assert_eq!(meta(&s.p("null3")).rdev(), libc::makedev(1, 3));
}
family!(mknod, w_mknod);

// ---------------------------------------------------------------- attributes

fn mode_of(p: &Path) -> u32 {
    meta(p).mode() & 0o7777
}

fn w_attrs(s: &mut Side) {
    let f = s.p("f");
    fs::write(&f, b"attrs").unwrap();
    for mode in [0o4755, 0o2755, 0o1777, 0, 0o644] {
        fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
        assert_eq!(mode_of(&f), mode, "chmod {mode:o}");
    }
    std::os::unix::fs::chown(&f, Some(1234), Some(5678)).unwrap();
    let m = meta(&f);
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    std::os::unix::fs::chown(&f, None, Some(42)).unwrap();
    let m = meta(&f);
    assert_eq!((m.uid(), m.gid()), (1234, 42), "chown -1 keeps the uid");
    // chown clears setuid (and setgid with group exec) on regular files.
    fs::set_permissions(&f, fs::Permissions::from_mode(0o6755)).unwrap();
    std::os::unix::fs::chown(&f, Some(1), Some(1)).unwrap();
    assert_eq!(mode_of(&f), 0o755, "chown clears setuid/setgid");
    // ...but not on directories.
    fs::create_dir(s.p("d")).unwrap();
    fs::set_permissions(s.p("d"), fs::Permissions::from_mode(0o2775)).unwrap();
    std::os::unix::fs::chown(s.p("d"), Some(7), Some(8)).unwrap();
    assert_eq!(mode_of(&s.p("d")), 0o2775, "chown keeps a dir's setgid");
    // Symlink ownership (lchown).
    symlink("f", s.p("link")).unwrap();
    std::os::unix::fs::lchown(s.p("link"), Some(99), Some(98)).unwrap();
    let m = meta(&s.p("link"));
    assert_eq!((m.uid(), m.gid()), (99, 98));
    assert_eq!(meta(&f).uid(), 1, "lchown leaves the target");

    // Times.
    let t = s.p("times");
    fs::write(&t, b"t").unwrap();
    sys::utimensat(
        &t,
        sys::ts(1_000_000_000, 123_456_789),
        sys::ts(1_100_000_000, 987_654_321),
        false,
    )
    .unwrap();
    let m = meta(&t);
    assert_eq!((m.atime(), m.atime_nsec()), (1_000_000_000, 123_456_789));
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_100_000_000, 987_654_321));
    sys::utimensat(
        &t,
        sys::ts(0, libc::UTIME_OMIT),
        sys::ts(1_200_000_000, 5),
        false,
    )
    .unwrap();
    let m = meta(&t);
    assert_eq!(
        (m.atime(), m.atime_nsec()),
        (1_000_000_000, 123_456_789),
        "UTIME_OMIT"
    );
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_200_000_000, 5));
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    sys::utimensat(
        &t,
        sys::ts(0, libc::UTIME_OMIT),
        sys::ts(0, libc::UTIME_NOW),
        false,
    )
    .unwrap();
    let m = meta(&t);
    assert_eq!(m.atime(), 1_000_000_000, "UTIME_OMIT keeps atime");
    assert!(
        m.mtime() >= before - 1 && m.mtime() <= before + 60,
        "UTIME_NOW: mtime {} vs now {before}",
        m.mtime()
    );
    assert!(m.ctime() >= before - 1, "utimensat updates ctime");
    sys::utimensat(
        &t,
        sys::ts(0, libc::UTIME_NOW),
        sys::ts(0, libc::UTIME_OMIT),
        false,
    )
    .unwrap();
    assert!(meta(&t).atime() >= before - 1, "UTIME_NOW atime");
    // Explicit times on every file type, incl. a symlink itself; these
    // are compared to the nanosecond after the run.
    let stamps = [
        ("times", 1_234_567_890, 111),
        ("f", 2_000_000_000, 999_999_999),
        ("d", 1_500_000_000, 0),
        ("link", 1_300_000_000, 42),
    ];
    for (name, sec, nsec) in stamps {
        sys::utimensat(&s.p(name), sys::ts(sec, nsec), sys::ts(sec, nsec), true).unwrap();
        let m = meta(&s.p(name));
        assert_eq!((m.mtime(), m.mtime_nsec()), (sec, nsec), "{name} mtime");
    }
    // Times beyond 2038 and before 1970: kept as ext4 can (noted).
    for (name, sec) in [("future", 4_102_444_800i64), ("past", -31_536_000)] {
        fs::write(s.p(name), b"when").unwrap();
        let r = sys::utimensat(&s.p(name), sys::ts(sec, 7), sys::ts(sec, 7), false);
        s.note_result(&format!("utimensat {name}"), &r);
        let m = meta(&s.p(name));
        s.note(format!("{name}: mtime {}.{}", m.mtime(), m.mtime_nsec()));
    }
    // chmod updates ctime; the mode of a symlink is always 0777.
    let c0 = meta(&f).ctime();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(meta(&f).ctime() >= c0);
    assert_eq!(mode_of(&s.p("link")), 0o777);
    // A write updates mtime (after an explicit old time).
    let w = s.p("written");
    fs::write(&w, b"w").unwrap();
    sys::utimensat(&w, sys::ts(1_000, 0), sys::ts(1_000, 0), false).unwrap();
    let mut wf = OpenOptions::new().write(true).open(&w).unwrap();
    wf.write_all(b"new").unwrap();
    wf.sync_all().unwrap();
    drop(wf);
    assert!(meta(&w).mtime() >= before - 1, "write updates mtime");
    // Truncation updates mtime too.
    sys::utimensat(&w, sys::ts(1_000, 0), sys::ts(1_000, 0), false).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&w)
        .unwrap()
        .set_len(1)
        .unwrap();
    assert!(meta(&w).mtime() >= before - 1, "truncate updates mtime");
    sys::utimensat(&w, sys::ts(1_000, 0), sys::ts(1_000, 0), false).unwrap();
    // access(2).
    let cw = CString::new(w.as_os_str().as_bytes()).unwrap();
    // SAFETY: NUL-terminated path.
    assert_eq!(
        unsafe { libc::access(cw.as_ptr(), libc::R_OK | libc::W_OK) },
        0
    );
    fs::set_permissions(&w, fs::Permissions::from_mode(0o644)).unwrap();
    // SAFETY: NUL-terminated path.
    let x = unsafe { libc::access(cw.as_ptr(), libc::X_OK) };
    assert_eq!(x, -1, "root has no X_OK on a file without any x bit");
}
family!(attrs, w_attrs);

// ---------------------------------------------------------------- xattrs

fn lgetxattr_small(p: &Path, name: &str, size: usize) -> std::io::Result<usize> {
    let cp = CString::new(p.as_os_str().as_bytes()).unwrap();
    let cn = CString::new(name).unwrap();
    let mut buf = vec![0u8; size.max(1)];
    // SAFETY: NUL-terminated strings; buf is valid for `size` bytes.
    let r = unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), size) };
    usize::try_from(r).map_err(|_| std::io::Error::last_os_error())
}

fn lsetxattr_flags(p: &Path, name: &str, value: &[u8], flags: i32) -> std::io::Result<()> {
    let cp = CString::new(p.as_os_str().as_bytes()).unwrap();
    let cn = CString::new(name).unwrap();
    // SAFETY: NUL-terminated strings; value is valid for its length.
    let r = unsafe {
        libc::lsetxattr(
            cp.as_ptr(),
            cn.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `getfacl` output without the `# file:` line (paths differ).
fn getfacl(p: &Path) -> String {
    let out = Cmd::new("getfacl")
        .args(["-n", "--absolute-names"])
        .arg(p)
        .run_ok();
    out.stdout
        .lines()
        .filter(|l| !l.starts_with("# file:"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn w_xattrs(s: &mut Side) {
    let f = s.p("f");
    fs::write(&f, b"x").unwrap();
    let big = pattern((s.block_size as usize) * 3 / 4, 31);
    let values: [(&str, Vec<u8>); 6] = [
        ("user.small", b"v".to_vec()),
        ("user.empty", Vec::new()),
        ("user.medium", pattern(100, 32)),
        ("user.big", big),
        ("trusted.t", b"trusted value".to_vec()),
        ("security.s", b"security value".to_vec()),
    ];
    for (name, value) in &values {
        xattr::set(&f, name, value).unwrap_or_else(|e| panic!("set {name}: {e}"));
    }
    for (name, value) in &values {
        assert_eq!(&xattr::get(&f, name).unwrap(), value, "get {name}");
    }
    let mut names = xattr::list(&f).unwrap();
    names.sort();
    let mut want: Vec<_> = values
        .iter()
        .map(|(n, _)| OsStr::new(n).to_owned())
        .collect();
    want.sort();
    assert_eq!(names, want, "listxattr");
    expect_errno(
        lsetxattr_flags(&f, "user.small", b"w", libc::XATTR_CREATE),
        libc::EEXIST,
        "XATTR_CREATE on an existing name",
    );
    expect_errno(
        lsetxattr_flags(&f, "user.nothing", b"w", libc::XATTR_REPLACE),
        libc::ENODATA,
        "XATTR_REPLACE of a missing name",
    );
    lsetxattr_flags(&f, "user.small", b"replaced", libc::XATTR_REPLACE).unwrap();
    assert_eq!(xattr::get(&f, "user.small").unwrap(), b"replaced");
    expect_errno(xattr::get(&f, "user.nothing"), libc::ENODATA, "get missing");
    expect_errno(
        xattr::remove(&f, "user.nothing"),
        libc::ENODATA,
        "remove missing",
    );
    expect_errno(
        lgetxattr_small(&f, "user.medium", 10),
        libc::ERANGE,
        "buffer too small",
    );
    assert_eq!(
        lgetxattr_small(&f, "user.medium", 0).unwrap(),
        100,
        "size query"
    );
    xattr::remove(&f, "user.medium").unwrap();
    expect_errno(xattr::get(&f, "user.medium"), libc::ENODATA, "removed");
    expect_errno(
        xattr::set(&f, "user.".to_string() + &"n".repeat(251), b"v"),
        libc::ERANGE,
        "name over 255 bytes",
    );
    let r = xattr::set(&f, "user.huge", &vec![1u8; 2 * s.block_size as usize]);
    s.note_result("value larger than a block", &r);
    // Directories, symlinks, special files.
    fs::create_dir(s.p("d")).unwrap();
    xattr::set(&s.p("d"), "user.dir", b"on a dir").unwrap();
    symlink("f", s.p("link")).unwrap();
    xattr::set(&s.p("link"), "trusted.link", b"on a link").unwrap();
    expect_errno(
        xattr::set(&s.p("link"), "user.x", b"v"),
        libc::EPERM,
        "user.* on a symlink",
    );
    sys::mknod(&s.p("fifo"), libc::S_IFIFO | 0o644, 0).unwrap();
    expect_errno(
        xattr::set(&s.p("fifo"), "user.x", b"v"),
        libc::EPERM,
        "user.* on a fifo",
    );
    xattr::set(&s.p("fifo"), "trusted.fifo", b"ok").unwrap();
    // Fill one inode until ext4 runs out of room.
    let g = s.p("full");
    fs::write(&g, b"").unwrap();
    let mut outcome = String::from("never full");
    for i in 0..200 {
        if let Err(e) = xattr::set(&g, format!("user.fill{i:03}"), &pattern(60, i)) {
            outcome = format!("full: {}", errno_name(e.raw_os_error().unwrap_or(-1)));
            break;
        }
    }
    s.note(outcome);
    for name in xattr::list(&g).unwrap() {
        let n = name.to_string_lossy().to_string();
        let i: u64 = n.trim_start_matches("user.fill").parse().unwrap();
        assert_eq!(xattr::get(&g, &name).unwrap(), pattern(60, i), "{n}");
    }
    // Remove half, set again: space is reused.
    for i in (0..200).step_by(2) {
        let _ = xattr::remove(&g, format!("user.fill{i:03}"));
    }
    xattr::set(&g, "user.after", b"reused").unwrap();
    // Many files sharing identical xattr blocks (ext4 shares them).
    for i in 0..20 {
        let p = s.p(&format!("shared{i}"));
        fs::write(&p, b"").unwrap();
        xattr::set(&p, "user.shared", &pattern(s.block_size as usize / 2, 99)).unwrap();
    }
    xattr::remove(&s.p("shared3"), "user.shared").unwrap();
    xattr::set(&s.p("shared5"), "user.shared", b"different").unwrap();

    // POSIX ACLs through setfacl/getfacl. The ACLs' masks equal the
    // group bits of the modes, so the modes stay as they are (fext does
    // not yet sync modes and ACLs: tests/pending/acl_semantics.rs).
    let af = s.p("acl_file");
    fs::write(&af, b"acl").unwrap();
    Cmd::new("setfacl")
        .args(["-m", "u:1234:r,g:5678:r,m:r"])
        .arg(&af)
        .run_ok();
    s.note(format!("getfacl file:\n{}", getfacl(&af)));
    let ad = s.p("acl_dir");
    fs::create_dir(&ad).unwrap();
    Cmd::new("setfacl")
        .args(["-d", "-m", "u:1234:rx,g::r"])
        .arg(&ad)
        .run_ok();
    Cmd::new("setfacl")
        .args(["-m", "u:42:rx,m:rx"])
        .arg(&ad)
        .run_ok();
    s.note(format!("getfacl dir:\n{}", getfacl(&ad)));
    Cmd::new("setfacl").args(["-x", "g:5678"]).arg(&af).run_ok();
    s.note(format!("getfacl file after -x:\n{}", getfacl(&af)));
    assert_eq!(mode_of(&af), 0o644);
    assert_eq!(mode_of(&ad), 0o755);
}
family!(xattrs, w_xattrs);

// ---------------------------------------------------------------- fallocate

/// SEEK_DATA/SEEK_HOLE at interesting offsets of a file whose content is
/// `model`: every answer must be consistent with the content (a range
/// reported as hole reads as zeroes); with `note`, the answers are also
/// recorded for comparison with the kernel.
fn seek_table(s: &mut Side, f: &File, what: &str, model: &[u8], note: bool) {
    let size = model.len() as u64;
    let bs = u64::from(s.block_size);
    let zero = |from: u64, to: u64| model[from as usize..to as usize].iter().all(|&b| b == 0);
    let offsets = [
        0,
        1,
        bs,
        4096,
        65_535,
        500_000,
        1 << 20,
        (1 << 20) + 4097,
        2 << 20,
        3 << 20,
        size - 1,
        size,
    ];
    for off in offsets.into_iter().filter(|&o| o <= size) {
        let data = sys::lseek(f, off as i64, libc::SEEK_DATA);
        let hole = sys::lseek(f, off as i64, libc::SEEK_HOLE);
        if note {
            s.note_result(&format!("{what}: SEEK_DATA {off}"), &data);
            s.note_result(&format!("{what}: SEEK_HOLE {off}"), &hole);
        }
        match &data {
            Ok(pos) => assert!(
                *pos >= off && *pos < size && zero(off, *pos),
                "{what}: SEEK_DATA {off} -> {pos} skips data (size {size})"
            ),
            Err(e) => assert!(
                e.raw_os_error() == Some(libc::ENXIO) && zero(off, size),
                "{what}: SEEK_DATA {off} -> {e} but there is data after it"
            ),
        }
        match &hole {
            Ok(pos) => {
                assert!(
                    *pos >= off && *pos <= size,
                    "{what}: SEEK_HOLE {off} -> {pos}"
                );
                if *pos < size {
                    let next = sys::lseek(f, *pos as i64, libc::SEEK_DATA).unwrap_or(size);
                    assert!(
                        zero(*pos, next.max(*pos)),
                        "{what}: SEEK_HOLE {off} -> {pos}, but data follows before {next}"
                    );
                }
            }
            Err(e) => assert!(
                off == size && e.raw_os_error() == Some(libc::ENXIO),
                "{what}: SEEK_HOLE {off} -> {e}"
            ),
        }
    }
}

/// st_blocks, refreshed: FUSE caches attributes (1 s here) and neither a
/// write nor fsync refreshes st_blocks; a setattr reply does.
fn fresh_blocks(p: &Path) -> u64 {
    let mode = meta(p).mode() & 0o7777;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    meta(p).blocks()
}

fn w_fallocate(s: &mut Side) {
    let p = s.p("fa");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    let r = sys::fallocate(&f, 0, 0, 1 << 20);
    if !s.extents {
        // Block-mapped files: ext4 supports no preallocation.
        expect_errno(r, libc::EOPNOTSUPP, "fallocate on a block-mapped file");
    } else {
        r.unwrap();
        let m = f.metadata().unwrap();
        assert_eq!(m.len(), 1 << 20, "fallocate extends the size");
        assert!(m.blocks() * 512 >= 1 << 20, "blocks reserved");
        let mut buf = vec![1u8; 1 << 20];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert!(
            buf.iter().all(|&b| b == 0),
            "preallocated range reads as zeroes"
        );
        let b0 = m.blocks();
        sys::fallocate(&f, libc::FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20).unwrap();
        let m = f.metadata().unwrap();
        assert_eq!(m.len(), 1 << 20, "KEEP_SIZE keeps the size");
        assert!(m.blocks() > b0, "KEEP_SIZE reserves blocks");
        // Writing into preallocated space. (fsync first: FUSE does not
        // flush the kernel's dirty pages before asking the daemon to
        // lseek; see the report on SEEK_DATA with dirty pages.)
        f.write_all_at(&pattern(10_000, 41), 500_000).unwrap();
        f.sync_all().unwrap();
        let mut pm = vec![0u8; 1 << 20];
        pm[500_000..510_000].copy_from_slice(&pattern(10_000, 41));
        // The kernel counts unwritten extents with cached pages as data:
        // only consistency is checked here.
        seek_table(s, &f, "prealloc", &pm, false);
    }
    // A file with data, holes and more data, then punched and zeroed.
    let h = s.p("holes");
    let g = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&h)
        .unwrap();
    let mut model = Vec::new();
    pwrite_model(&g, &mut model, 0, &pattern(16_384, 42));
    pwrite_model(&g, &mut model, 1 << 20, &pattern(65_536, 43));
    g.set_len(4 << 20).unwrap();
    model.resize(4 << 20, 0);
    g.sync_all().unwrap();
    seek_table(s, &g, "data-hole-data", &model, true);
    let b_before = fresh_blocks(&h);
    let r = sys::fallocate(
        &g,
        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
        (1 << 20) + 4096,
        8192,
    );
    s.note_result("punch hole", &r);
    if r.is_ok() {
        model[(1 << 20) + 4096..(1 << 20) + 4096 + 8192].fill(0);
        assert!(
            g.metadata().unwrap().blocks() < b_before,
            "punching frees blocks"
        );
        assert_eq!(
            g.metadata().unwrap().len(),
            4 << 20,
            "punching keeps the size"
        );
    }
    expect_errno(
        sys::fallocate(&g, libc::FALLOC_FL_PUNCH_HOLE, 0, 4096),
        libc::EOPNOTSUPP,
        "PUNCH_HOLE without KEEP_SIZE",
    );
    // Punch a partial block range: only the bytes are zeroed.
    let r = sys::fallocate(
        &g,
        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
        100,
        5000,
    );
    s.note_result("punch partial blocks", &r);
    if r.is_ok() {
        model[100..5100].fill(0);
    }
    let r = sys::fallocate(&g, libc::FALLOC_FL_ZERO_RANGE, (1 << 20) + 30_000, 20_000);
    s.note_result("zero range", &r);
    if r.is_ok() {
        model[(1 << 20) + 30_000..(1 << 20) + 50_000].fill(0);
    }
    let r = sys::fallocate(&g, libc::FALLOC_FL_ZERO_RANGE, (4 << 20) - 10, 1000);
    s.note_result("zero range past EOF", &r);
    if r.is_ok() {
        model.resize((4 << 20) + 990, 0);
    }
    let r = sys::fallocate(
        &g,
        libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
        (5 << 20) - 10,
        1000,
    );
    s.note_result("zero range KEEP_SIZE past EOF", &r);
    drop(g);
    assert_content(&h, &model, "after punch/zero");
    let g = File::open(&h).unwrap();
    // Zeroed partial blocks may count as data (kernel) or hole (fext):
    // both are right, so only consistency is checked.
    seek_table(s, &g, "after punch", &model, false);
    s.note(format!("holes: size {}", g.metadata().unwrap().len()));
    expect_errno(
        sys::lseek(&g, model.len() as i64 + 10, libc::SEEK_DATA),
        libc::ENXIO,
        "SEEK_DATA past EOF",
    );
    // Punch everything of a file.
    let r = sys::fallocate(
        &OpenOptions::new().write(true).open(&h).unwrap(),
        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
        0,
        model.len() as u64,
    );
    s.note_result("punch all", &r);
}
family!(fallocate, w_fallocate);

// ---------------------------------------------------------------- copy_file_range

fn w_copy_file_range(s: &mut Side) {
    let src_data = pattern(3 << 20, 51);
    fs::write(s.p("src"), &src_data).unwrap();
    let src = File::open(s.p("src")).unwrap();
    let dst = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(s.p("dst"))
        .unwrap();
    let mut model = Vec::new();
    let copy = |src: &File, so: u64, dst: &File, d_off: u64, len: usize, model: &mut Vec<u8>| {
        let mut done = 0;
        while done < len {
            let n =
                sys::copy_file_range(src, so + done as u64, dst, d_off + done as u64, len - done)
                    .unwrap();
            if n == 0 {
                break;
            }
            done += n;
        }
        let end = d_off as usize + done;
        if model.len() < end {
            model.resize(end, 0);
        }
        model[d_off as usize..end].copy_from_slice(&src_data[so as usize..so as usize + done]);
        done
    };
    assert_eq!(
        copy(&src, 4097, &dst, 0, (1 << 20) + 3, &mut model),
        (1 << 20) + 3
    );
    assert_eq!(copy(&src, 0, &dst, 5 << 20, 10_000, &mut model), 10_000);
    assert_eq!(copy(&src, 100, &dst, 777, 333, &mut model), 333);
    drop(dst);
    assert_content(&s.p("dst"), &model, "copy_file_range");
    assert_eq!(
        sys::copy_file_range(
            &src,
            3 << 20,
            &File::options().write(true).open(s.p("dst")).unwrap(),
            0,
            100
        )
        .unwrap(),
        0,
        "copy from EOF"
    );
    // Within one file, non-overlapping.
    let same = OpenOptions::new()
        .read(true)
        .write(true)
        .open(s.p("src"))
        .unwrap();
    let mut m2 = src_data.clone();
    let n = sys::copy_file_range(&same, 0, &same, 2 << 20, 65_536).unwrap();
    m2.copy_within(0..n, 2 << 20);
    drop(same);
    assert_content(&s.p("src"), &m2, "copy within a file");
}
family!(copy_file_range, w_copy_file_range);

// ---------------------------------------------------------------- readdir

struct Dir(*mut libc::DIR);

impl Dir {
    fn open(p: &Path) -> Dir {
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: NUL-terminated path.
        let d = unsafe { libc::opendir(c.as_ptr()) };
        assert!(!d.is_null(), "opendir {}", p.display());
        Dir(d)
    }

    fn next(&mut self) -> Option<Vec<u8>> {
        // SAFETY: self.0 is an open DIR*; the entry is copied before the
        // next call.
        unsafe {
            *libc::__errno_location() = 0;
            let e = libc::readdir64(self.0);
            if e.is_null() {
                let err = *libc::__errno_location();
                assert_eq!(err, 0, "readdir failed: {}", errno_name(err));
                return None;
            }
            Some(CStr::from_ptr((*e).d_name.as_ptr()).to_bytes().to_vec())
        }
    }

    fn tell(&mut self) -> libc::c_long {
        // SAFETY: open DIR*.
        unsafe { libc::telldir(self.0) }
    }

    fn seek(&mut self, pos: libc::c_long) {
        // SAFETY: open DIR*, a position from telldir.
        unsafe { libc::seekdir(self.0, pos) }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: closing the DIR* opened in `open`.
        unsafe { libc::closedir(self.0) };
    }
}

fn w_readdir(s: &mut Side) {
    const N: usize = 10_000;
    let d = s.p("big");
    fs::create_dir(&d).unwrap();
    for i in 0..N {
        File::create(d.join(format!("pre-{i:05}"))).unwrap();
    }
    let victim = |i: usize| i % 7 == 3;
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut dir = Dir::open(&d);
    let mut count = 0usize;
    let (mut next_new, mut next_victim) = (0usize, 0usize);
    // A fixed number of churn steps (the reference sees entries in another
    // order, so the step count must not depend on what is seen).
    let mut steps = 0;
    while let Some(name) = dir.next() {
        *seen.entry(name).or_default() += 1;
        count += 1;
        if count.is_multiple_of(50) && steps < 150 {
            steps += 1;
            for _ in 0..20 {
                File::create(d.join(format!("new-{next_new:05}"))).unwrap();
                next_new += 1;
            }
            let mut removed = 0;
            while removed < 20 && next_victim < N {
                if victim(next_victim) {
                    fs::remove_file(d.join(format!("pre-{next_victim:05}"))).unwrap();
                    removed += 1;
                }
                next_victim += 1;
            }
        }
        assert!(count < 10 * N, "readdir does not end");
    }
    drop(dir);
    for i in 0..N {
        let name = format!("pre-{i:05}").into_bytes();
        let n = seen.get(&name).copied().unwrap_or(0);
        if victim(i) {
            assert!(n <= 1, "pre-{i:05} (removed meanwhile) seen {n} times");
        } else {
            assert_eq!(n, 1, "untouched pre-{i:05} seen {n} times");
        }
    }
    for (name, n) in &seen {
        assert_eq!(*n, 1, "{} seen {n} times", String::from_utf8_lossy(name));
    }
    assert_eq!(seen.get(&b"."[..]), Some(&1));
    assert_eq!(seen.get(&b".."[..]), Some(&1));
    // A fresh listing is exactly what is there now.
    let mut now: Vec<String> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    now.sort();
    let mut want: Vec<String> = (0..N)
        .filter(|&i| !(victim(i) && i < next_victim))
        .map(|i| format!("pre-{i:05}"))
        .chain((0..next_new).map(|i| format!("new-{i:05}")))
        .collect();
    want.sort();
    assert_eq!(now.len(), want.len(), "entries after the churn");
    assert!(now == want, "listing after the churn differs");
    // telldir/seekdir: positions are stable.
    let mut dir = Dir::open(&d);
    for _ in 0..5000 {
        dir.next().unwrap();
    }
    let pos = dir.tell();
    let first: Vec<_> = (0..10).map(|_| dir.next().unwrap()).collect();
    for _ in 0..100 {
        dir.next();
    }
    dir.seek(pos);
    let again: Vec<_> = (0..10).map(|_| dir.next().unwrap()).collect();
    assert_eq!(first, again, "seekdir to a telldir position");
    s.note("readdir checks done");
}
family!(readdir, w_readdir);

// ---------------------------------------------------------------- mmap

fn w_mmap(s: &mut Side) {
    let p = s.p("m");
    let len = 3 * 4096 + 100;
    let init = pattern(len, 61);
    fs::write(&p, &init).unwrap();
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let mut map = sys::Mmap::shared_rw(&f, len).unwrap();
    let mut want = init.clone();
    for (off, data) in [
        (0usize, &b"start of file"[..]),
        (4095, b"across a page"),
        (3 * 4096 + 90, b"tail end!!"),
    ] {
        map.as_mut_slice()[off..off + data.len()].copy_from_slice(data);
        want[off..off + data.len()].copy_from_slice(data);
    }
    map.msync().unwrap();
    // Another process reads it with read(2).
    let host = TempDir::new("mmap-read");
    Cmd::new("cat").arg(&p).stdout_to(host.join("out")).run_ok();
    assert!(
        fs::read(host.join("out")).unwrap() == want,
        "another process reads what was written through the mapping"
    );
    // Another process writes with write(2); the mapping sees it.
    Cmd::new("dd")
        .args(["conv=notrunc", "bs=1", "seek=5000", "status=none"])
        .arg(format!("of={}", p.display()))
        .stdin_bytes(b"from dd".to_vec())
        .run_ok();
    assert_eq!(
        &map.as_mut_slice()[5000..5007],
        b"from dd",
        "mapping sees write(2)"
    );
    want[5000..5007].copy_from_slice(b"from dd");
    // Writes through the mapping without msync reach the file at munmap/close.
    map.as_mut_slice()[8000..8010].copy_from_slice(b"no msync!!");
    want[8000..8010].copy_from_slice(b"no msync!!");
    drop(map);
    drop(f);
    assert_content(&p, &want, "after munmap");
    // Grow with ftruncate and write into the new part through a mapping.
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    f.set_len(64 * 1024).unwrap();
    want.resize(64 * 1024, 0);
    let mut map = sys::Mmap::shared_rw(&f, 64 * 1024).unwrap();
    for i in (0..64 * 1024).step_by(4096) {
        map.as_mut_slice()[i + 7] = 0xA5;
        want[i + 7] = 0xA5;
    }
    map.msync().unwrap();
    f.sync_all().unwrap();
    drop(map);
    drop(f);
    assert_content(&p, &want, "grown through a mapping");
    // A python-like pattern: map, modify, flush, read back from a fresh fd.
    let q = s.p("big_mapped");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&q)
        .unwrap();
    f.set_len(4 << 20).unwrap();
    let mut map = sys::Mmap::shared_rw(&f, 4 << 20).unwrap();
    let data = pattern(4 << 20, 62);
    map.as_mut_slice().copy_from_slice(&data);
    map.msync().unwrap();
    drop(map);
    drop(f);
    assert_content(&q, &data, "4 MiB through a mapping");
}
family!(mmap, w_mmap);

// ---------------------------------------------------------------- fsync & co

fn w_sync_calls(s: &mut Side) {
    fs::create_dir(s.p("d")).unwrap();
    let mut f = File::create(s.p("d/f")).unwrap();
    f.write_all(&pattern(100_000, 71)).unwrap();
    f.sync_data().unwrap();
    f.write_all(b"more").unwrap();
    f.sync_all().unwrap();
    sys::fsync_dir(&s.p("d")).unwrap();
    sys::syncfs(&f).unwrap();
    drop(f);
    let c = CString::new(s.p("d/f").as_os_str().as_bytes()).unwrap();
    let _ = c;
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    let mut want = pattern(100_000, 71);
    want.extend_from_slice(b"more");
    assert_content(&s.p("d/f"), &want, "after syncs");
}
family!(sync_calls, w_sync_calls);

// ---------------------------------------------------------------- permissions

/// Run `args` as uid/gid `id` (setpriv, no supplementary groups).
fn as_user(id: u32, args: &[&str]) -> Output {
    Cmd::new("setpriv")
        .arg(format!("--reuid={id}"))
        .arg(format!("--regid={id}"))
        .arg("--clear-groups")
        .args(args)
        .output()
}

fn w_permissions(s: &mut Side) {
    let root = s.root.to_string_lossy().to_string();
    let p = |rel: &str| format!("{root}/{rel}");
    fs::write(s.p("private"), b"secret").unwrap();
    fs::set_permissions(s.p("private"), fs::Permissions::from_mode(0o600)).unwrap();
    let out = as_user(1000, &["cat", &p("private")]);
    assert!(
        !out.success() && out.stderr.contains("Permission denied"),
        "{out}"
    );
    fs::write(s.p("public"), b"public").unwrap();
    let out = as_user(1000, &["cat", &p("public")]);
    assert!(out.success() && out.stdout == "public", "{out}");
    let out = as_user(1000, &["touch", &p("new_in_root")]);
    assert!(
        !out.success(),
        "creating in a 0755 root dir as a user: {out}"
    );
    // A sticky, world-writable directory.
    fs::create_dir(s.p("tmp")).unwrap();
    fs::set_permissions(s.p("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(as_user(
        1000,
        &["sh", "-c", &format!("echo mine > {}", p("tmp/u1000"))]
    )
    .success());
    let m = meta(&s.p("tmp/u1000"));
    assert_eq!((m.uid(), m.gid()), (1000, 1000), "owner of a user's file");
    let out = as_user(1001, &["rm", "-f", &p("tmp/u1000")]);
    assert!(
        !out.success(),
        "sticky dir: another user cannot delete: {out}"
    );
    let out = as_user(1001, &["mv", &p("tmp/u1000"), &p("tmp/stolen")]);
    assert!(
        !out.success(),
        "sticky dir: another user cannot rename: {out}"
    );
    assert!(
        as_user(1000, &["rm", &p("tmp/u1000")]).success(),
        "owner deletes"
    );
    // Writing as a non-owner clears setuid.
    fs::write(s.p("tmp/suid"), b"s").unwrap();
    fs::set_permissions(s.p("tmp/suid"), fs::Permissions::from_mode(0o4777)).unwrap();
    let out = as_user(1000, &["sh", "-c", &format!("echo x >> {}", p("tmp/suid"))]);
    assert!(out.success(), "{out}");
    assert_eq!(
        mode_of(&s.p("tmp/suid")) & 0o4000,
        0,
        "write by another user clears setuid"
    );
    // The daemon clears set-user-ID/set-group-ID itself (FUSE
    // HANDLE_KILLPRIV_V2), with the kernel's rules: a writer with
    // CAP_FSETID (root here) keeps them; truncation by another user clears
    // set-user-ID and group-executable set-group-ID; set-group-ID without
    // group execute survives a write by a member of the file's group only;
    // chown clears set-user-ID even to the same owner.
    fs::write(s.p("tmp/suid-root"), b"s").unwrap();
    fs::set_permissions(s.p("tmp/suid-root"), fs::Permissions::from_mode(0o6775)).unwrap();
    {
        use std::io::Write as _;
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(s.p("tmp/suid-root"))
            .unwrap();
        f.write_all(b"root").unwrap();
    }
    assert_eq!(
        mode_of(&s.p("tmp/suid-root")),
        0o6775,
        "write by root keeps setuid"
    );
    fs::write(s.p("tmp/suid-trunc"), b"data").unwrap();
    fs::set_permissions(s.p("tmp/suid-trunc"), fs::Permissions::from_mode(0o6777)).unwrap();
    let out = as_user(1000, &["truncate", "-s", "1", &p("tmp/suid-trunc")]);
    assert!(out.success(), "{out}");
    assert_eq!(
        mode_of(&s.p("tmp/suid-trunc")),
        0o777,
        "truncate by another user clears setuid and setgid"
    );
    for (name, group, after, what) in [
        (
            "tmp/sgid-member",
            1000,
            0o2766,
            "survives a write by a group member",
        ),
        (
            "tmp/sgid-outsider",
            0,
            0o766,
            "goes on a write by an outsider",
        ),
    ] {
        fs::write(s.p(name), b"data").unwrap();
        std::os::unix::fs::chown(s.p(name), Some(0), Some(group)).unwrap();
        fs::set_permissions(s.p(name), fs::Permissions::from_mode(0o2766)).unwrap();
        let out = as_user(1000, &["sh", "-c", &format!("echo x >> {}", p(name))]);
        assert!(out.success(), "{out}");
        assert_eq!(
            mode_of(&s.p(name)),
            after,
            "setgid without group execute {what}"
        );
    }
    fs::write(s.p("tmp/suid-chown"), b"c").unwrap();
    fs::set_permissions(s.p("tmp/suid-chown"), fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::chown(s.p("tmp/suid-chown"), Some(0), Some(0)).unwrap();
    assert_eq!(
        mode_of(&s.p("tmp/suid-chown")),
        0o755,
        "chown to the same owner clears setuid"
    );
    // fallocate by another user modifies the file like a write.
    fs::write(s.p("tmp/suid-falloc"), b"f").unwrap();
    fs::set_permissions(s.p("tmp/suid-falloc"), fs::Permissions::from_mode(0o6777)).unwrap();
    let out = as_user(1000, &["fallocate", "-l", "65536", &p("tmp/suid-falloc")]);
    assert!(out.success(), "{out}");
    assert_eq!(
        mode_of(&s.p("tmp/suid-falloc")),
        0o777,
        "fallocate by another user clears setuid and setgid"
    );
    // chmod/chown by a non-owner are refused.
    let out = as_user(1000, &["chmod", "777", &p("public")]);
    assert!(!out.success(), "chmod by non-owner: {out}");
    let out = as_user(1000, &["chown", "1000", &p("public")]);
    assert!(!out.success(), "chown by non-owner: {out}");
    // A user's file in a setgid directory.
    fs::create_dir(s.p("shared")).unwrap();
    std::os::unix::fs::chown(s.p("shared"), Some(0), Some(4242)).unwrap();
    fs::set_permissions(s.p("shared"), fs::Permissions::from_mode(0o2777)).unwrap();
    assert!(as_user(1000, &["mkdir", &p("shared/sub")]).success());
    let m = meta(&s.p("shared/sub"));
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o2000), (1000, 4242, 0o2000));
    // Search permission on directories.
    fs::create_dir(s.p("closed")).unwrap();
    fs::write(s.p("closed/inside"), b"i").unwrap();
    fs::set_permissions(s.p("closed"), fs::Permissions::from_mode(0o700)).unwrap();
    let out = as_user(1000, &["cat", &p("closed/inside")]);
    assert!(!out.success(), "no search permission: {out}");
    s.note("permissions done");
}

mod permissions {
    use super::*;
    #[test]
    fn ext4_4k_allow_other() {
        let mut cfg = PairConfig::new("ext4", 4096);
        cfg.fext_opts = "allow_other".into();
        run_family(cfg, w_permissions);
    }
}

// ---------------------------------------------------------------- statfs

/// statfs on the mount reports the numbers dumpe2fs reads from the image
/// after the unmount.
#[test]
fn statfs_matches_dumpe2fs() {
    if !require_root("a FUSE mount") {
        return;
    }
    for (fs_type, bs) in [("ext4", 1024), ("ext4", 4096), ("ext2", 4096)] {
        let dir = TempDir::new("statfs");
        let img = dir.join("img");
        make_fext_image(&img, 96 << 20, fs_type, Some(bs), "");
        let m = FextMount::new(&img, "");
        let st0 = sys::statvfs(m.path()).unwrap();
        for i in 0..300 {
            fs::write(m.join(format!("f{i}")), pattern(i * 1000, i as u64)).unwrap();
        }
        fs::create_dir(m.join("d")).unwrap();
        for i in (0..300).step_by(2) {
            fs::remove_file(m.join(format!("f{i}"))).unwrap();
        }
        // FUSE has no syncfs; fsync of a directory makes fext write
        // everything back (directories get their blocks then).
        sys::fsync_dir(m.path()).unwrap();
        let st = sys::statvfs(m.path()).unwrap();
        assert!(st.f_bfree < st0.f_bfree && st.f_ffree < st0.f_ffree);
        m.unmount();
        let d = dumpe2fs_h(&img);
        let label = format!("{fs_type} {bs}");
        assert_eq!(st.f_bsize, u64::from(bs), "{label}: f_bsize");
        assert_eq!(st.f_frsize, u64::from(bs), "{label}: f_frsize");
        assert_eq!(st.f_bfree, d.num("Free blocks"), "{label}: free blocks");
        assert_eq!(st.f_ffree, d.num("Free inodes"), "{label}: free inodes");
        assert_eq!(st.f_files, d.num("Inode count"), "{label}: inode count");
        let reserved = d.num("Reserved block count");
        assert_eq!(
            st.f_bavail,
            d.num("Free blocks").saturating_sub(reserved),
            "{label}: available blocks"
        );
        assert_eq!(st.f_namemax, 255);
        // The kernel reports the same free numbers for the same image.
        if require_kernel_mount() {
            let k = KernelMount::new(&img, false);
            let ks = sys::statvfs(k.path()).unwrap();
            assert_eq!(
                (ks.f_bfree, ks.f_ffree, ks.f_files),
                (st.f_bfree, st.f_ffree, st.f_files),
                "{label}: kernel statfs"
            );
        }
        assert_e2fsck_clean(&img);
    }
}

// ---------------------------------------------------------------- link limit

/// ext4 allows 65000 links to a file; the next link is EMLINK. The
/// directory holding them becomes an indexed one; e2fsck checks it all.
#[test]
fn link_limit_is_emlink() {
    if !require_root("a FUSE mount") {
        return;
    }
    let dir = TempDir::new("emlink");
    let img = dir.join("img");
    make_fext_image(&img, 256 << 20, "ext4", Some(4096), "");
    let m = FextMount::new(&img, "");
    fs::create_dir(m.join("d")).unwrap();
    fs::write(m.join("d/f"), b"many names").unwrap();
    for i in 1..65_000 {
        fs::hard_link(m.join("d/f"), m.join(format!("d/l{i}")))
            .unwrap_or_else(|e| panic!("link number {}: {e}", i + 1));
    }
    assert_eq!(meta(&m.join("d/f")).nlink(), 65_000);
    expect_errno(
        fs::hard_link(m.join("d/f"), m.join("d/one_too_many")),
        libc::EMLINK,
        "link number 65001",
    );
    for i in (1..65_000).step_by(2) {
        fs::remove_file(m.join(format!("d/l{i}"))).unwrap();
    }
    assert_eq!(meta(&m.join("d/f")).nlink(), 32_500);
    m.unmount();
    assert_e2fsck_clean(&img);
    if require_kernel_mount() {
        let k = KernelMount::new(&img, false);
        assert_eq!(meta(&k.path().join("d/f")).nlink(), 32_500);
        assert_eq!(fs::read_dir(k.path().join("d")).unwrap().count(), 32_500);
    }
}

// ---------------------------------------------------------------- mount options

/// The daemon's threads serving FUSE requests (fuser names them
/// `fuser-N`).
fn fuse_threads(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter(|t| {
            let comm = t.as_ref().unwrap().path().join("comm");
            fs::read_to_string(comm).is_ok_and(|c| c.starts_with("fuser-"))
        })
        .count()
}

/// A setting of the kernel's backing device info for the mount on `path`
/// (`/sys/class/bdi/MAJOR:MINOR/name`).
fn bdi_setting(path: &Path, name: &str) -> u64 {
    let dev = meta(path).dev();
    let knob = format!(
        "/sys/class/bdi/{}:{}/{name}",
        libc::major(dev),
        libc::minor(dev)
    );
    let text = fs::read_to_string(&knob).unwrap_or_else(|e| panic!("{knob}: {e}"));
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{knob}: {text:?}"))
}

/// What the block device holding `file` reads ahead (KiB), from sysfs:
/// None on file systems without one (tmpfs).
fn device_read_ahead_kb(file: &Path) -> Option<u64> {
    let dev = meta(file).dev();
    let dir = format!("/sys/dev/block/{}:{}", libc::major(dev), libc::minor(dev));
    let queue = if Path::new(&dir).join("partition").exists() {
        "../queue"
    } else {
        "queue"
    };
    fs::read_to_string(format!("{dir}/{queue}/read_ahead_kb"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// Mount options and start-up: the default fsname is the image path,
/// `fsname=` replaces it, `ro` refuses writes and changes no byte of the
/// image, unknown options and unusable images are refused with a message,
/// without `-f` the command returns once the mount is live, the daemon
/// runs the FUSE threads asked for (spares by default), and it raises the
/// kernel's read-ahead and dirty share for the mount as asked.
#[test]
fn mount_options_and_startup() {
    if !require_root("a FUSE mount") {
        return;
    }
    let dir = TempDir::new("options");
    let img = dir.join("img");
    make_fext_image(&img, 64 << 20, "ext4", Some(4096), "");
    let canonical = fs::canonicalize(&img).unwrap();
    // Default fsname.
    let m = FextMount::new(&img, "");
    fs::create_dir(m.join("d")).unwrap();
    fs::write(m.join("d/f"), b"content").unwrap();
    let (fstype, source) = mount_entry(m.path()).unwrap();
    assert!(fstype.starts_with("fuse"), "{fstype}");
    assert_eq!(Path::new(&source), canonical, "default fsname");
    // Spare FUSE threads by default (a lone caller's round trips stay on
    // its CPU only with 3 or more, see `default_threads`).
    assert!(
        fuse_threads(m.pid()) >= 8,
        "{} FUSE threads",
        fuse_threads(m.pid())
    );
    // The kernel's settings for the mount, raised from its 128 KiB and 1%:
    // read-ahead to what the disk under the image reads ahead, at least
    // fext's 1 MiB requests.
    let disk_kb = device_read_ahead_kb(&img);
    assert_eq!(
        bdi_setting(m.path(), "read_ahead_kb"),
        disk_kb.unwrap_or(0).max(1024),
        "the image's disk reads ahead {disk_kb:?} KiB"
    );
    assert_eq!(bdi_setting(m.path(), "max_ratio"), 10);
    m.unmount();
    // fsname= and tuning options.
    let m = FextMount::new(
        &img,
        "fsname=my-image,threads=3,dirty_background_mb=1,dirty_limit_mb=2,dirty_expire_ms=10,noatime,nodev,nosuid,read_ahead_kb=512,bdi_max_ratio=25",
    );
    assert_eq!(mount_entry(m.path()).unwrap().1, "my-image");
    assert_eq!(fuse_threads(m.pid()), 3, "threads=3");
    assert_eq!(bdi_setting(m.path(), "read_ahead_kb"), 512);
    assert_eq!(bdi_setting(m.path(), "max_ratio"), 25);
    m.unmount();
    // 0 leaves the kernel's values.
    let m = FextMount::new(&img, "read_ahead_kb=0,bdi_max_ratio=0");
    assert_eq!(bdi_setting(m.path(), "read_ahead_kb"), 128);
    assert_eq!(bdi_setting(m.path(), "max_ratio"), 1);
    m.unmount();
    // ro: writes fail with EROFS, nothing in the image changes.
    let before = fs::read(&img).unwrap();
    let m = FextMount::new(&img, "ro");
    expect_errno(fs::write(m.join("new"), b"x"), libc::EROFS, "create on ro");
    expect_errno(
        OpenOptions::new().write(true).open(m.join("d/f")),
        libc::EROFS,
        "open for writing on ro",
    );
    expect_errno(fs::remove_file(m.join("d/f")), libc::EROFS, "unlink on ro");
    expect_errno(
        xattr::set(&m.join("d/f"), "user.x", b"v"),
        libc::EROFS,
        "setxattr on ro",
    );
    assert_content(&m.join("d/f"), b"content", "read on ro");
    Cmd::new("ls").arg("-lR").arg(m.path()).run_ok();
    m.unmount();
    assert!(
        fs::read(&img).unwrap() == before,
        "a ro mount changed the image"
    );
    // Refusals: exit code and a message naming the problem.
    let out = Cmd::new(fext_bin())
        .arg(&img)
        .arg(dir.path())
        .args(["-f", "-o", "frobnicate"])
        .timeout(std::time::Duration::from_secs(30))
        .output();
    assert!(out.code != 0 && out.stderr.contains("frobnicate"), "{out}");
    let zeros = dir.join("zeros");
    File::create(&zeros).unwrap().set_len(8 << 20).unwrap();
    match FextMount::try_mount(&zeros, "") {
        Ok(_) => panic!("mounted an image of zeroes"),
        Err((code, log)) => assert!(code != 0 && log.contains("fext:"), "{code}: {log}"),
    }
    let missing_dir = dir.join("no/such/dir");
    let out = Cmd::new(fext_bin())
        .arg(&img)
        .arg(&missing_dir)
        .timeout(std::time::Duration::from_secs(30))
        .output();
    assert!(out.code != 0 && out.stderr.contains("fext:"), "{out}");
    // Daemon mode: returns once the mount is live; umount ends the daemon,
    // which then writes everything back and marks the image clean.
    let mnt = TempDir::new("daemon-mode");
    let out = Cmd::new(fext_bin())
        .arg(&img)
        .arg(mnt.path())
        .timeout(std::time::Duration::from_secs(30))
        .output();
    assert!(out.success(), "{out}");
    assert!(is_mountpoint(mnt.path()), "mounted when fext returned");
    fs::write(mnt.join("from-daemon-mode"), pattern(1 << 20, 3)).unwrap();
    Cmd::new("umount").arg(mnt.path()).run_ok();
    let clean = wait_until(
        std::time::Duration::from_secs(60),
        std::time::Duration::from_millis(50),
        || dumpe2fs_h(&img).get("Filesystem state") == Some("clean"),
    );
    assert!(clean, "the daemon did not finish after umount");
    // The daemon holds a lock on the image until it exits.
    let unlocked = wait_until(
        std::time::Duration::from_secs(60),
        std::time::Duration::from_millis(50),
        || {
            Cmd::new("flock")
                .args(["-n", img.to_str().unwrap(), "true"])
                .output()
                .success()
        },
    );
    assert!(
        unlocked,
        "the daemon still holds the image after write-back"
    );
    assert_e2fsck_clean(&img);
    let m = FextMount::new(&img, "ro");
    assert_content(
        &m.join("from-daemon-mode"),
        &pattern(1 << 20, 3),
        "daemon mode",
    );
    m.unmount();
}

// ---------------------------------------------------------------- huge directory

/// A directory of 100,000 entries on 1 KiB blocks: its index needs two
/// levels. Lookups, removal of a third, readdir, then e2fsck and the
/// kernel's view.
#[test]
fn hundred_thousand_entries() {
    if !require_root("a FUSE mount") {
        return;
    }
    const N: usize = 100_000;
    let dir = TempDir::new("huge-dir");
    let img = dir.join("img");
    Cmd::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-b", "1024", "-N", "120000"])
        .arg(&img)
        .arg("384M")
        .run_ok();
    let name = |i: usize| format!("entry-with-a-name-of-some-length-{i:06}");
    let m = FextMount::new(&img, "");
    let d = m.join("big");
    fs::create_dir(&d).unwrap();
    for i in 0..N {
        File::create(d.join(name(i))).unwrap_or_else(|e| panic!("create {}: {e}", name(i)));
    }
    for i in (0..N).step_by(997) {
        assert!(meta(&d.join(name(i))).is_file(), "lookup {}", name(i));
    }
    expect_errno(fs::metadata(d.join("absent")), libc::ENOENT, "missing name");
    for i in (0..N).step_by(3) {
        fs::remove_file(d.join(name(i))).unwrap();
    }
    let left = N - N.div_ceil(3);
    assert_eq!(fs::read_dir(&d).unwrap().count(), left);
    m.unmount();
    assert_e2fsck_clean(&img);
    let htree = debugfs_r(&img, "htree /big");
    assert!(
        htree.contains("Indirect levels: 1"),
        "a two-level index:\n{}",
        &htree[..htree.len().min(2000)]
    );
    if require_kernel_mount() {
        let k = KernelMount::new(&img, false);
        assert_eq!(fs::read_dir(k.path().join("big")).unwrap().count(), left);
        for i in (1..N).step_by(1009) {
            let p = k.path().join("big").join(name(i));
            assert_eq!(p.exists(), i % 3 != 0, "{}", name(i));
        }
    }
}
