//! `fext-floor MOUNTPOINT [-o writeback_cache,threads=N,stats,no_default_permissions]`: a file
//! system that stores nothing — names, modes, sizes and times live in a
//! hash map, file data is dropped on write and read back as zeros — served
//! through fuser exactly as fext serves an image (same FUSE_INIT flags from
//! `fext::fuse::negotiate`, same worker threads and clone_fd, same
//! `default_permissions` and 1 s entry/attribute timeouts). Timing a
//! workload on it measures what the FUSE protocol alone costs on this
//! machine: the best any FUSE file system could do. Benchmark use only
//! (bench/roundtrips.sh); one lock over everything, no limits, no
//! persistence.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use fext::fuse::negotiate;
use fext::fuse::stats::{Op, OpStats};
use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, Session, TimeOrNow, WriteFlags,
};

const TTL: Duration = Duration::from_secs(1);
const ROOT: u64 = 1;

struct Node {
    attr: FileAttr,
    /// Directories: name -> inode.
    entries: HashMap<OsString, u64>,
    target: Vec<u8>,
    lookups: u64,
}

struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
}

struct Floor {
    state: Mutex<State>,
    writeback_cache: bool,
    print_stats: bool,
    stats: OpStats,
}

fn new_attr(ino: u64, kind: FileType, perm: u16, req: &Request) -> FileAttr {
    let now = SystemTime::now();
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: now,
        mtime: now,
        ctime: now,
        crtime: now,
        kind,
        perm,
        nlink: if kind == FileType::Directory { 2 } else { 1 },
        uid: req.uid(),
        gid: req.gid(),
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn kind_of(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

impl State {
    fn add(
        &mut self,
        parent: u64,
        name: &OsStr,
        kind: FileType,
        perm: u16,
        req: &Request,
    ) -> Result<FileAttr, Errno> {
        let Some(dir) = self.nodes.get(&parent) else {
            return Err(Errno::ENOENT);
        };
        if dir.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let attr = new_attr(ino, kind, perm, req);
        self.nodes.insert(
            ino,
            Node {
                attr,
                entries: HashMap::new(),
                target: Vec::new(),
                lookups: 1,
            },
        );
        let dir = self.nodes.get_mut(&parent).ok_or(Errno::ENOENT)?;
        dir.entries.insert(name.to_owned(), ino);
        dir.attr.mtime = SystemTime::now();
        if kind == FileType::Directory {
            dir.attr.nlink += 1;
        }
        Ok(attr)
    }

    fn remove(&mut self, parent: u64, name: &OsStr, want_dir: bool) -> Result<(), Errno> {
        let dir = self.nodes.get(&parent).ok_or(Errno::ENOENT)?;
        let ino = *dir.entries.get(name).ok_or(Errno::ENOENT)?;
        let node = self.nodes.get(&ino).ok_or(Errno::ENOENT)?;
        let is_dir = node.attr.kind == FileType::Directory;
        if want_dir && !is_dir {
            return Err(Errno::ENOTDIR);
        }
        if !want_dir && is_dir {
            return Err(Errno::EISDIR);
        }
        if is_dir && !node.entries.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        let dir = self.nodes.get_mut(&parent).ok_or(Errno::ENOENT)?;
        dir.entries.remove(name);
        if is_dir {
            dir.attr.nlink -= 1;
        }
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.attr.nlink = node.attr.nlink.saturating_sub(1);
            if node.attr.nlink == 0 || is_dir {
                node.attr.nlink = 0;
                if node.lookups == 0 {
                    self.nodes.remove(&ino);
                }
            }
        }
        Ok(())
    }
}

impl Floor {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry(&self, r: Result<FileAttr, Errno>, reply: ReplyEntry) {
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }
}

impl Filesystem for Floor {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        negotiate(config, self.writeback_cache);
        Ok(())
    }

    fn destroy(&mut self) {
        if self.print_stats {
            eprint!("fext-floor: {}", self.stats.table());
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _c = self.stats.count(Op::Lookup);
        let mut s = self.lock();
        let ino = s
            .nodes
            .get(&parent.0)
            .and_then(|d| d.entries.get(name).copied());
        let r = match ino.and_then(|i| s.nodes.get_mut(&i)) {
            Some(n) => {
                n.lookups += 1;
                Ok(n.attr)
            }
            None => Err(Errno::ENOENT),
        };
        drop(s);
        self.entry(r, reply);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let _c = self.stats.count(Op::Forget);
        let mut s = self.lock();
        if let Some(n) = s.nodes.get_mut(&ino.0) {
            n.lookups = n.lookups.saturating_sub(nlookup);
            if n.lookups == 0 && n.attr.nlink == 0 && ino.0 != ROOT {
                s.nodes.remove(&ino.0);
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _c = self.stats.count(Op::Getattr);
        let a = self.lock().nodes.get(&ino.0).map(|n| n.attr);
        match a {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let _c = self.stats.count(Op::Setattr);
        let mut s = self.lock();
        let Some(n) = s.nodes.get_mut(&ino.0) else {
            reply.error(Errno::ENOENT);
            return;
        };
        let t = |t: TimeOrNow| match t {
            TimeOrNow::Now => SystemTime::now(),
            TimeOrNow::SpecificTime(t) => t,
        };
        if let Some(m) = mode {
            n.attr.perm = (m & 0o7777) as u16;
        }
        if let Some(u) = uid {
            n.attr.uid = u;
        }
        if let Some(g) = gid {
            n.attr.gid = g;
        }
        if let Some(sz) = size {
            n.attr.size = sz;
        }
        if let Some(a) = atime {
            n.attr.atime = t(a);
        }
        if let Some(m) = mtime {
            n.attr.mtime = t(m);
        }
        n.attr.ctime = SystemTime::now();
        reply.attr(&TTL, &n.attr);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let _c = self.stats.count(Op::Readlink);
        let t = self.lock().nodes.get(&ino.0).map(|n| n.target.clone());
        match t {
            Some(t) => reply.data(&t),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let _c = self.stats.count(Op::Mknod);
        let r = self
            .lock()
            .add(parent.0, name, kind_of(mode), (mode & 0o7777) as u16, req);
        self.entry(r, reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let _c = self.stats.count(Op::Mkdir);
        let r = self.lock().add(
            parent.0,
            name,
            FileType::Directory,
            (mode & 0o7777) as u16,
            req,
        );
        self.entry(r, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _c = self.stats.count(Op::Unlink);
        match self.lock().remove(parent.0, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _c = self.stats.count(Op::Rmdir);
        match self.lock().remove(parent.0, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let _c = self.stats.count(Op::Symlink);
        let mut s = self.lock();
        let r = s.add(parent.0, link_name, FileType::Symlink, 0o777, req);
        if let Ok(a) = &r {
            if let Some(n) = s.nodes.get_mut(&a.ino.0) {
                n.target = target.as_os_str().as_bytes().to_vec();
                n.attr.size = n.target.len() as u64;
            }
        }
        let r = r.map(|a| s.nodes.get(&a.ino.0).map_or(a, |n| n.attr));
        drop(s);
        self.entry(r, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _c = self.stats.count(Op::Rename);
        let mut s = self.lock();
        let Some(ino) = s
            .nodes
            .get_mut(&parent.0)
            .and_then(|d| d.entries.remove(name))
        else {
            reply.error(Errno::ENOENT);
            return;
        };
        let old = s
            .nodes
            .get_mut(&newparent.0)
            .and_then(|d| d.entries.insert(newname.to_owned(), ino));
        if let Some(old) = old {
            if let Some(n) = s.nodes.get_mut(&old) {
                n.attr.nlink = 0;
            }
        }
        reply.ok();
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _c = self.stats.count(Op::Link);
        let mut s = self.lock();
        if let Some(d) = s.nodes.get_mut(&newparent.0) {
            d.entries.insert(newname.to_owned(), ino.0);
        }
        let r = match s.nodes.get_mut(&ino.0) {
            Some(n) => {
                n.attr.nlink += 1;
                n.lookups += 1;
                Ok(n.attr)
            }
            None => Err(Errno::ENOENT),
        };
        drop(s);
        self.entry(r, reply);
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _c = self.stats.count(Op::Open);
        reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let _c = self.stats.count(Op::Read);
        let len = self.lock().nodes.get(&ino.0).map_or(0, |n| n.attr.size);
        let n = len.saturating_sub(offset).min(u64::from(size)) as usize;
        reply.data(&vec![0u8; n]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let _c = self.stats.count(Op::Write);
        if let Some(n) = self.lock().nodes.get_mut(&ino.0) {
            let end = offset + data.len() as u64;
            if end > n.attr.size {
                n.attr.size = end;
                n.attr.blocks = end.div_ceil(512);
            }
            n.attr.mtime = SystemTime::now();
        }
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let _c = self.stats.count(Op::Flush);
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let _c = self.stats.count(Op::Release);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _c = self.stats.count(Op::Fsync);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _c = self.stats.count(Op::Opendir);
        reply.opened(
            FileHandle(0),
            FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR,
        );
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let _c = self.stats.count(Op::Readdir);
        let s = self.lock();
        let Some(d) = s.nodes.get(&ino.0) else {
            reply.error(Errno::ENOENT);
            return;
        };
        // Offsets are positions in the map's iteration order, stable while
        // the directory does not change (good enough for a benchmark).
        for (i, (name, child)) in d.entries.iter().enumerate().skip(offset as usize) {
            let kind = s
                .nodes
                .get(child)
                .map_or(FileType::RegularFile, |n| n.attr.kind);
            if reply.add(INodeNo(*child), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let _c = self.stats.count(Op::Readdirplus);
        let mut s = self.lock();
        let Some(d) = s.nodes.get(&ino.0) else {
            reply.error(Errno::ENOENT);
            return;
        };
        let children: Vec<(OsString, u64)> = d
            .entries
            .iter()
            .skip(offset as usize)
            .map(|(n, i)| (n.clone(), *i))
            .collect();
        for (i, (name, child)) in children.iter().enumerate() {
            let Some(n) = s.nodes.get_mut(child) else {
                continue;
            };
            if reply.add(
                INodeNo(*child),
                offset + i as u64 + 1,
                name,
                &TTL,
                &n.attr,
                Generation(0),
            ) {
                break;
            }
            n.lookups += 1;
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let _c = self.stats.count(Op::Releasedir);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let _c = self.stats.count(Op::Statfs);
        reply.statfs(1 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 20, 4096, 255, 4096);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        let _c = self.stats.count(Op::Getxattr);
        reply.error(Errno::ENODATA);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let _c = self.stats.count(Op::Create);
        let r = self.lock().add(
            parent.0,
            name,
            FileType::RegularFile,
            (mode & 0o7777) as u16,
            req,
        );
        match r {
            Ok(a) => reply.created(
                &TTL,
                &a,
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Err(e) => reply.error(e),
        }
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut mountpoint = None;
    let mut writeback_cache = false;
    let mut print_stats = false;
    let mut threads = 2usize;
    let mut default_permissions = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-o" {
            for o in it.next().map(String::as_str).unwrap_or("").split(',') {
                match o.split_once('=') {
                    Some(("threads", n)) => threads = n.parse().unwrap_or(2),
                    None if o == "writeback_cache" => writeback_cache = true,
                    None if o == "stats" => print_stats = true,
                    // what dropping the kernel's permission checks would
                    // save (the floor checks nothing itself)
                    None if o == "no_default_permissions" => default_permissions = false,
                    _ if o.is_empty() => {}
                    _ => {
                        eprintln!("fext-floor: unknown option {o}");
                        std::process::exit(2);
                    }
                }
            }
        } else {
            mountpoint = Some(a.clone());
        }
    }
    let Some(mountpoint) = mountpoint else {
        eprintln!(
            "usage: fext-floor MOUNTPOINT [-o writeback_cache,threads=N,stats,no_default_permissions]"
        );
        std::process::exit(2);
    };
    let mut nodes = HashMap::new();
    let root = FileAttr {
        ino: INodeNo(ROOT),
        size: 4096,
        blocks: 8,
        atime: SystemTime::now(),
        mtime: SystemTime::now(),
        ctime: SystemTime::now(),
        crtime: SystemTime::now(),
        kind: FileType::Directory,
        perm: 0o755,
        nlink: 2,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    };
    nodes.insert(
        ROOT,
        Node {
            attr: root,
            entries: HashMap::new(),
            target: Vec::new(),
            lookups: 1,
        },
    );
    let floor = Floor {
        state: Mutex::new(State {
            nodes,
            next_ino: ROOT + 1,
        }),
        writeback_cache,
        print_stats,
        stats: OpStats::new(print_stats),
    };
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("fext-floor".into()),
        MountOption::Subtype("fext-floor".into()),
        MountOption::RW,
    ];
    if default_permissions {
        config.mount_options.push(MountOption::DefaultPermissions);
    }
    config.n_threads = Some(threads);
    config.clone_fd = threads > 1;
    let session = match Session::new(floor, Path::new(&mountpoint), &config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fext-floor: cannot mount on {mountpoint}: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = session.run() {
        eprintln!("fext-floor: {e}");
        std::process::exit(1);
    }
}
