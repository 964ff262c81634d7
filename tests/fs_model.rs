//! A reference-model test of the file-system core: seeded random sequences
//! of operations applied both to fext (in process, no FUSE) and to a small
//! in-memory model of what POSIX promises; the two must agree after every
//! operation's result and at the end, after a remount, and the image must
//! pass `e2fsck -fn`. Failures print the seed and the operation log.

#![allow(dead_code)]
mod common;

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use common::*;
use fext::fs::{Caller, Fs, MountOptions};
use fext::mkfs::format::{make_filesystem, Silent};
use fext::mkfs::options::{parse_feature_edits, FsType, MkfsOptions};

const ROOT: u32 = 2;
const S_IFREG: u16 = 0o100000;
const S_IFDIR: u16 = 0o040000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    File {
        data: Vec<u8>,
        xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    },
    Dir,
}

/// The model: paths (relative, "/"-joined) to nodes; hard links are not
/// modelled (each file has one name) to keep the model obviously right.
struct Model {
    nodes: BTreeMap<String, Node>,
}

impl Model {
    fn dirs(&self) -> Vec<String> {
        let mut v = vec![String::new()];
        v.extend(
            self.nodes
                .iter()
                .filter(|(_, n)| **n == Node::Dir)
                .map(|(p, _)| p.clone()),
        );
        v
    }
    fn files(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| matches!(n, Node::File { .. }))
            .map(|(p, _)| p.clone())
            .collect()
    }
    fn children(&self, dir: &str) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|p| parent_of(p) == dir)
            .cloned()
            .collect()
    }
}

fn parent_of(p: &str) -> &str {
    p.rfind('/').map_or("", |i| &p[..i])
}

fn name_of(p: &str) -> &str {
    p.rfind('/').map_or(p, |i| &p[i + 1..])
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn resolve(fs: &Fs, path: &str) -> u32 {
    let mut ino = ROOT;
    for part in path.split('/').filter(|s| !s.is_empty()) {
        let a = fs
            .lookup(ino, part.as_bytes())
            .unwrap_or_else(|e| panic!("lookup {path}: {e}"));
        fs.forget(a.ino, 1);
        ino = a.ino;
    }
    ino
}

fn check_equal(fs: &Fs, model: &Model, log: &[String]) {
    // Every model node is in fext with the same content, and nothing else.
    let mut stack = vec![(String::new(), ROOT)];
    let mut seen = 0usize;
    while let Some((path, ino)) = stack.pop() {
        let entries = fs.readdir(ino, 0, usize::MAX).unwrap();
        let mut names: Vec<String> = entries
            .iter()
            .filter(|e| e.name != b"." && e.name != b"..")
            .map(|e| String::from_utf8(e.name.clone()).unwrap())
            .filter(|n| !(path.is_empty() && n == "lost+found"))
            .collect();
        names.sort();
        let mut expected: Vec<String> = model
            .children(&path)
            .iter()
            .map(|p| name_of(p).to_string())
            .collect();
        expected.sort();
        assert_eq!(
            names,
            expected,
            "directory '{path}' differs; log:\n{}",
            log.join("\n")
        );
        for e in entries.iter().filter(|e| e.name != b"." && e.name != b"..") {
            let name = String::from_utf8(e.name.clone()).unwrap();
            if path.is_empty() && name == "lost+found" {
                continue;
            }
            let p = join(&path, &name);
            seen += 1;
            match &model.nodes[&p] {
                Node::Dir => stack.push((p, e.ino)),
                Node::File { data, xattrs } => {
                    let attr = fs.getattr(e.ino).unwrap();
                    assert_eq!(
                        attr.size,
                        data.len() as u64,
                        "size of {p}; log:\n{}",
                        log.join("\n")
                    );
                    let got = fs.read(e.ino, 0, data.len() as u32 + 10).unwrap();
                    assert!(
                        got == *data,
                        "content of {p} differs; log:\n{}",
                        log.join("\n")
                    );
                    for (k, v) in xattrs {
                        assert_eq!(&fs.getxattr(e.ino, k).unwrap(), v, "xattr of {p}");
                    }
                }
            }
        }
    }
    assert_eq!(seen, model.nodes.len());
}

fn random_name(rng: &mut Rng) -> String {
    const NAMES: [&str; 8] = [
        "a",
        "bb",
        "ccc",
        "d.txt",
        "eeeeeeeeeeeeeeeeeeee",
        "f f",
        "g-1",
        "h_2",
    ];
    format!("{}{}", NAMES[rng.below(8) as usize], rng.below(40))
}

fn run_model(seed: u64, fs_type: FsType, bs: Option<u32>, ops: usize) {
    let dir = TempDir::new("model");
    let img = dir.join("img");
    let opts = MkfsOptions {
        fs_type,
        block_size: bs,
        feature_edits: parse_feature_edits(""),
        ..MkfsOptions::default()
    };
    make_filesystem(&img, Some(64 << 20), &opts, &mut Silent).unwrap();
    let mut rng = Rng(seed | 1);
    let mut model = Model {
        nodes: BTreeMap::new(),
    };
    let mut log = Vec::new();
    let c = Caller::ROOT;
    let mut fs = Fs::mount(&img, MountOptions::default()).unwrap();
    for step in 0..ops {
        let dirs = model.dirs();
        let files = model.files();
        match rng.below(13) {
            0 | 1 => {
                let d = dirs[rng.below(dirs.len() as u64) as usize].clone();
                let p = join(&d, &random_name(&mut rng));
                log.push(format!("{step}: create {p}"));
                let r = fs.create(
                    resolve(&fs, &d),
                    name_of(&p).as_bytes(),
                    S_IFREG | 0o644,
                    0,
                    c,
                );
                match model.nodes.entry(p) {
                    Entry::Occupied(_) => assert_eq!(r.unwrap_err().errno, libc::EEXIST),
                    Entry::Vacant(v) => {
                        fs.forget(r.unwrap().ino, 1);
                        v.insert(Node::File {
                            data: Vec::new(),
                            xattrs: BTreeMap::new(),
                        });
                    }
                }
            }
            2 => {
                let d = dirs[rng.below(dirs.len() as u64) as usize].clone();
                let p = join(&d, &random_name(&mut rng));
                log.push(format!("{step}: mkdir {p}"));
                let r = fs.create(
                    resolve(&fs, &d),
                    name_of(&p).as_bytes(),
                    S_IFDIR | 0o755,
                    0,
                    c,
                );
                match model.nodes.entry(p) {
                    Entry::Occupied(_) => assert_eq!(r.unwrap_err().errno, libc::EEXIST),
                    Entry::Vacant(v) => {
                        fs.forget(r.unwrap().ino, 1);
                        v.insert(Node::Dir);
                    }
                }
            }
            3 | 4 if !files.is_empty() => {
                let p = files[rng.below(files.len() as u64) as usize].clone();
                let off = if rng.below(3) == 0 {
                    rng.below(3_000_000)
                } else {
                    rng.below(70_000)
                };
                let len = rng.below(20_000) as usize + 1;
                let byte = rng.below(255) as u8 + 1;
                log.push(format!("{step}: write {p} off {off} len {len}"));
                let ino = resolve(&fs, &p);
                fs.write(ino, off, &vec![byte; len]).unwrap();
                if let Some(Node::File { data, .. }) = model.nodes.get_mut(&p) {
                    let end = off as usize + len;
                    if data.len() < end {
                        data.resize(end, 0);
                    }
                    data[off as usize..end].fill(byte);
                }
            }
            5 if !files.is_empty() => {
                let p = files[rng.below(files.len() as u64) as usize].clone();
                let size = rng.below(100_000);
                log.push(format!("{step}: truncate {p} {size}"));
                let ino = resolve(&fs, &p);
                let ch = fext::fs::ops_attr::SetAttr {
                    size: Some(size),
                    ..Default::default()
                };
                fs.setattr(ino, &ch).unwrap();
                if let Some(Node::File { data, .. }) = model.nodes.get_mut(&p) {
                    data.resize(size as usize, 0);
                }
            }
            6 if !files.is_empty() => {
                let p = files[rng.below(files.len() as u64) as usize].clone();
                log.push(format!("{step}: unlink {p}"));
                fs.unlink(resolve(&fs, parent_of(&p)), name_of(&p).as_bytes())
                    .unwrap();
                model.nodes.remove(&p);
            }
            7 if dirs.len() > 1 => {
                let d = dirs[1 + rng.below(dirs.len() as u64 - 1) as usize].clone();
                log.push(format!("{step}: rmdir {d}"));
                let r = fs.rmdir(resolve(&fs, parent_of(&d)), name_of(&d).as_bytes());
                if model.children(&d).is_empty() {
                    r.unwrap();
                    model.nodes.remove(&d);
                } else {
                    assert_eq!(r.unwrap_err().errno, libc::ENOTEMPTY);
                }
            }
            8 if !files.is_empty() => {
                // Rename a file to a random place (replacing a file there).
                let p = files[rng.below(files.len() as u64) as usize].clone();
                let d = dirs[rng.below(dirs.len() as u64) as usize].clone();
                let q = join(&d, &random_name(&mut rng));
                log.push(format!("{step}: rename {p} -> {q}"));
                let r = fs.rename(
                    resolve(&fs, parent_of(&p)),
                    name_of(&p).as_bytes(),
                    resolve(&fs, &d),
                    name_of(&q).as_bytes(),
                    0,
                );
                match model.nodes.get(&q) {
                    Some(Node::Dir) => assert_eq!(r.unwrap_err().errno, libc::EISDIR),
                    _ => {
                        r.unwrap();
                        if p != q {
                            let n = model.nodes.remove(&p).unwrap();
                            model.nodes.insert(q, n);
                        }
                    }
                }
            }
            9 if !files.is_empty() => {
                let p = files[rng.below(files.len() as u64) as usize].clone();
                let key = format!("user.k{}", rng.below(6)).into_bytes();
                let val = vec![b'v'; rng.below(300) as usize];
                log.push(format!(
                    "{step}: setxattr {p} {} {}",
                    String::from_utf8_lossy(&key),
                    val.len()
                ));
                fs.setxattr(resolve(&fs, &p), &key, &val, 0).unwrap();
                if let Some(Node::File { xattrs, .. }) = model.nodes.get_mut(&p) {
                    xattrs.insert(key, val);
                }
            }
            11 if !files.is_empty() => {
                let p = files[rng.below(files.len() as u64) as usize].clone();
                let off = rng.below(80_000);
                let len = rng.below(30_000) + 1;
                log.push(format!("{step}: punch {p} off {off} len {len}"));
                fs.fallocate(resolve(&fs, &p), off, len, 0x01 | 0x02)
                    .unwrap();
                if let Some(Node::File { data, .. }) = model.nodes.get_mut(&p) {
                    let end = ((off + len) as usize).min(data.len());
                    if (off as usize) < end {
                        data[off as usize..end].fill(0);
                    }
                }
            }
            12 if !files.is_empty() => {
                let p = files[rng.below(files.len() as u64) as usize].clone();
                let off = rng.below(200_000);
                let len = rng.below(100_000) + 1;
                let keep = rng.below(2) == 0;
                log.push(format!(
                    "{step}: fallocate {p} off {off} len {len} keep {keep}"
                ));
                let r = fs.fallocate(resolve(&fs, &p), off, len, if keep { 0x01 } else { 0 });
                if fs_type == FsType::Ext2 {
                    assert_eq!(r.unwrap_err().errno, libc::EOPNOTSUPP);
                } else {
                    r.unwrap();
                    if let Some(Node::File { data, .. }) = model.nodes.get_mut(&p) {
                        if !keep && data.len() < (off + len) as usize {
                            data.resize((off + len) as usize, 0);
                        }
                    }
                }
            }
            10 => {
                log.push(format!("{step}: sync"));
                fs.sync().unwrap();
            }
            _ => {}
        }
        if step % 200 == 199 {
            check_equal(&fs, &model, &log);
        }
    }
    check_equal(&fs, &model, &log);
    fs.unmount().unwrap();
    drop(fs);
    let (code, out) = e2fsck_fn(&img);
    assert_eq!(
        code,
        0,
        "seed {seed}: e2fsck after the run:\n{out}\nlog:\n{}",
        log.join("\n")
    );
    fs = Fs::mount(&img, MountOptions::default()).unwrap();
    check_equal(&fs, &model, &log);
    fs.unmount().unwrap();
}

#[test]
fn model_ext4_1k() {
    for seed in [1, 2, 3] {
        run_model(seed, FsType::Ext4, Some(1024), 1500);
    }
}

#[test]
fn model_ext4_4k() {
    for seed in [11, 12] {
        run_model(seed, FsType::Ext4, Some(4096), 1500);
    }
}

#[test]
fn model_ext2() {
    for seed in [21, 22] {
        run_model(seed, FsType::Ext2, Some(1024), 1500);
    }
}
