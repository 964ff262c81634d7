//! The FUSE adapter: implements `fuser::Filesystem` by translating each
//! request into a call of the file-system core ([`crate::fs::Fs`]) and its
//! result into a reply. No ext4 logic lives here.
//!
//! Inode numbers: FUSE calls the root 1, ext4 calls it 2; inode 1 of ext4
//! (the bad-blocks inode) is never exposed, so the two map one to one.
//!
//! Kernel features requested at init ([`negotiate`]): parallel directory
//! operations, readdirplus, large requests (1 MiB writes), cached symlinks,
//! suid/sgid clearing by the daemon ([`killpriv`]), and attribute and entry
//! timeouts (a minute by default), negative entries included: the daemon
//! is the only writer of the image, so what the kernel caches stays true;
//! attributes the daemon changes on its own (write-back's layout, a
//! cleared set-user-ID) are invalidated ([`notify`]). The writeback cache
//! when asked (SEEK_DATA/SEEK_HOLE on a file open for writing then first
//! has the kernel write back its pages, see [`notify`]). POSIX ACLs:
//! `FUSE_POSIX_ACL` (the kernel enforces and caches ACLs, and refreshes
//! attributes after an ACL change) and `FUSE_DONT_MASK` (create modes
//! arrive unmasked with the umask beside them, for default-ACL
//! inheritance); see `fs::acl`. Round trips the kernel can skip are
//! skipped: FLUSH is answered ENOSYS once (nothing to do at close), so the
//! kernel stops sending it. Requests are counted by opcode ([`stats`]).
//! A READDIRPLUS reply that has to read inodes from the image ends early
//! (a plain listing of a large cold directory then reads no inode), and
//! for a small directory asks for all their table blocks at once.
//! Replies with the attributes of a file that just lost one of its names
//! guard the kernel's link count against a race in its FUSE client
//! ([`link_count`]).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyIoctl, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};

use crate::format::dir::FileType as ExtFileType;
use crate::format::inode::Timestamp;
use crate::fs::ops_attr::{SetAttr, SetTime};
use crate::fs::{Attr, Caller, Fs, FsError};

mod killpriv;
pub mod link_count;
pub mod notify;
pub mod stats;

use notify::KernelNotify;
use stats::{Op, OpStats};

/// FUSE's root inode number.
const FUSE_ROOT: u64 = 1;
/// ext4's root inode number.
const EXT4_ROOT: u32 = 2;
/// Largest write the kernel may send.
pub const MAX_WRITE: u32 = 1 << 20;
/// Entries asked of the core at a time while filling a READDIRPLUS reply,
/// and where a directory counts as large: one with fewer entries left
/// than this is described whole, its cold inodes read all at once; in a
/// larger one the reply ends before its first cold inode. A reply holds
/// what fits the kernel's buffer, 4 KiB to 128 KiB, 25 to 800 entries
/// with attributes; glibc's `readdir` asks for 32 KiB, about 190 entries.
/// At 64, `du` after a cold `find` of the bench's 40,000-file tree looked
/// up 27,122 names; at 256, 17,902, and took 17% less time, the `find`
/// about 6% more (bench/results/NOTES-2026-11-23-session10.md).
const READDIRPLUS_CHUNK: usize = 256;

fn to_ext(ino: INodeNo) -> u32 {
    if ino.0 == FUSE_ROOT {
        EXT4_ROOT
    } else {
        u32::try_from(ino.0).unwrap_or(0)
    }
}

fn to_fuse(ino: u32) -> INodeNo {
    if ino == EXT4_ROOT {
        INodeNo(FUSE_ROOT)
    } else {
        INodeNo(u64::from(ino))
    }
}

/// File handles say only whether the open may write.
const WRITER_HANDLE: FileHandle = FileHandle(1);
const READER_HANDLE: FileHandle = FileHandle(0);

fn handle(writable: bool) -> FileHandle {
    if writable {
        WRITER_HANDLE
    } else {
        READER_HANDLE
    }
}

fn errno(e: &FsError) -> Errno {
    Errno::from_i32(e.errno)
}

fn system_time(t: Timestamp) -> SystemTime {
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.sec.unsigned_abs())
            + Duration::from_nanos(u64::from(t.nsec))
    }
}

fn timestamp(t: SystemTime) -> Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp::new(
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d = e.duration();
            let mut sec = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            let mut nsec = d.subsec_nanos();
            if nsec > 0 {
                sec -= 1;
                nsec = 1_000_000_000 - nsec;
            }
            Timestamp::new(sec, nsec)
        }
    }
}

/// A time the kernel sent (setattr). fuser 0.18 turns the kernel's
/// (seconds < 0, nanoseconds) pair into `EPOCH - (|seconds| + nanoseconds)`
/// instead of `EPOCH - |seconds| + nanoseconds` (its time.rs says "TODO");
/// this undoes that so times before 1970 arrive exactly.
fn timestamp_from_kernel(t: SystemTime) -> Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(_) => timestamp(t),
        Err(e) => {
            let d = e.duration();
            Timestamp::new(
                -i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_nanos(),
            )
        }
    }
}

fn kind(mode: u16) -> FileType {
    dirent_kind(ExtFileType::from_mode(mode))
}

fn dirent_kind(ft: ExtFileType) -> FileType {
    match ft {
        ExtFileType::Directory => FileType::Directory,
        ExtFileType::Symlink => FileType::Symlink,
        ExtFileType::CharDev => FileType::CharDevice,
        ExtFileType::BlockDev => FileType::BlockDevice,
        ExtFileType::Fifo => FileType::NamedPipe,
        ExtFileType::Socket => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: to_fuse(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: system_time(a.atime),
        mtime: system_time(a.mtime),
        ctime: system_time(a.ctime),
        crtime: system_time(a.crtime),
        kind: kind(a.mode),
        perm: a.mode & 0o7777,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

/// The attributes sent with a negative entry: only the node id (0) counts.
fn negative_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 0,
        flags: 0,
    }
}

fn caller(req: &Request) -> Caller {
    creator(req, 0)
}

/// The caller of create/mkdir/mknod, with the umask the kernel sent
/// (FUSE_DONT_MASK: the mode arrives unmasked).
fn creator(req: &Request, umask: u32) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
        umask: (umask & 0o777) as u16,
    }
}

/// How the adapter answers (from the daemon's mount options).
#[derive(Debug, Clone)]
pub struct AdapterOptions {
    /// Attribute and entry timeout.
    pub ttl: Duration,
    /// Ask the kernel for its writeback cache.
    pub writeback_cache: bool,
    /// Time every request and print the per-opcode table to stderr at
    /// unmount (it is always logged at debug level).
    pub stats: bool,
}

/// The adapter.
pub struct FuseFs {
    fs: Arc<Fs>,
    ttl: Duration,
    writeback_cache: bool,
    print_stats: bool,
    stats: OpStats,
    notify: Arc<KernelNotify>,
}

impl FuseFs {
    pub fn new(fs: Arc<Fs>, o: &AdapterOptions) -> Self {
        let notify: Arc<KernelNotify> = Arc::default();
        // Attributes write-back changed behind the kernel's cache (a
        // directory's size, st_blocks once an extent tree is laid out):
        // the kernel fetches them again instead of keeping them for the
        // attribute timeout.
        let relaid = notify.clone();
        fs.on_layout_change(Box::new(move |inos| {
            for &ino in inos {
                relaid.drop_cached_attrs(to_fuse(ino));
            }
        }));
        FuseFs {
            fs,
            ttl: o.ttl,
            writeback_cache: o.writeback_cache,
            print_stats: o.stats,
            stats: OpStats::new(o.stats),
            notify,
        }
    }

    /// Where the adapter's notifications go ([`notify`]); the daemon
    /// connects it to the session once that exists.
    pub fn kernel_notify(&self) -> Arc<KernelNotify> {
        self.notify.clone()
    }

    /// Clears set-user-ID and set-group-ID of `ino` as the VFS does before
    /// a process without CAP_FSETID modifies its data (see [`killpriv`]):
    /// `unprivileged` when the kernel said so (a write's
    /// FUSE_WRITE_KILL_SUIDGID), otherwise the process's capabilities are
    /// read (fallocate and copy_file_range carry no such flag).
    fn kill_suid_sgid(&self, req: &Request, ino: u32, unprivileged: bool) -> Result<(), FsError> {
        let a = self.fs.getattr(ino)?;
        const SUID_SGID: u16 = 0o6000;
        let regular = a.mode & crate::format::inode::S_IFMT == crate::format::inode::S_IFREG;
        if a.mode & SUID_SGID == 0 || !regular {
            return Ok(());
        }
        let creds = killpriv::ProcessCreds::of(req.pid());
        if !unprivileged && creds.cap_fsetid() {
            return Ok(());
        }
        let killed =
            killpriv::mode_after_kill(u32::from(a.mode), || creds.in_group(req.gid(), a.gid));
        if let Some(mode) = killed {
            let ch = SetAttr {
                mode: Some(mode),
                ..SetAttr::default()
            };
            self.fs.setattr(ino, &ch)?;
            // No reply carries the new mode: the kernel must fetch it.
            self.notify.drop_cached_attrs(to_fuse(ino));
        }
        Ok(())
    }

    /// The mode a setattr must also set so that truncation by a process
    /// without CAP_FSETID, and any chown of a non-directory, clear
    /// set-user-ID and set-group-ID as the VFS would (see [`killpriv`]).
    fn mode_with_privileges_killed(
        &self,
        req: &Request,
        ino: u32,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
    ) -> Result<Option<u32>, FsError> {
        let chown = uid.is_some() || gid.is_some();
        if mode.is_some() || (size.is_none() && !chown) {
            return Ok(mode);
        }
        let a = self.fs.getattr(ino)?;
        let is_dir = a.mode & crate::format::inode::S_IFMT == crate::format::inode::S_IFDIR;
        const SUID_SGID: u16 = 0o6000;
        if is_dir || a.mode & SUID_SGID == 0 {
            return Ok(None);
        }
        let creds = killpriv::ProcessCreds::of(req.pid());
        if !chown && creds.cap_fsetid() {
            return Ok(None);
        }
        Ok(killpriv::mode_after_kill(u32::from(a.mode), || {
            creds.cap_fsetid() || creds.in_group(req.gid(), a.gid)
        }))
    }

    /// The requests answered so far, by opcode.
    pub fn stats(&self) -> &OpStats {
        &self.stats
    }

    fn entry(&self, r: Result<Attr, FsError>, reply: ReplyEntry) {
        match r {
            Ok(a) => reply.entry(
                &self.ttl,
                &file_attr(&a),
                Generation(u64::from(a.generation)),
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }
}

/// The kernel features fext asks for at FUSE_INIT (also used by the
/// no-op file system of bench/floor, so both get the same protocol):
/// parallel directory operations, readdirplus (the kernel picks it or plain
/// readdir per call), 1 MiB requests, asynchronous reads, clearing of
/// set-user-ID/set-group-ID by the daemon (HANDLE_KILLPRIV_V2: saves a
/// GETXATTR before every write, see [`killpriv`]) and, when asked, the
/// writeback cache. Returns the flags the kernel granted.
pub fn negotiate(config: &mut KernelConfig, writeback_cache: bool) -> InitFlags {
    let mut wanted = InitFlags::FUSE_PARALLEL_DIROPS
        | InitFlags::FUSE_DO_READDIRPLUS
        | InitFlags::FUSE_READDIRPLUS_AUTO
        | InitFlags::FUSE_MAX_PAGES
        | InitFlags::FUSE_BIG_WRITES
        | InitFlags::FUSE_ASYNC_READ
        | InitFlags::FUSE_HANDLE_KILLPRIV_V2
        | InitFlags::FUSE_CACHE_SYMLINKS
        | InitFlags::FUSE_POSIX_ACL
        | InitFlags::FUSE_DONT_MASK;
    if writeback_cache {
        wanted |= InitFlags::FUSE_WRITEBACK_CACHE;
    }
    let mut granted = InitFlags::empty();
    for flag in wanted.iter() {
        match config.add_capabilities(flag) {
            Ok(()) => granted |= flag,
            Err(_) => log::debug!("kernel lacks FUSE capability {flag:?}"),
        }
    }
    let max_write = config.set_max_write(MAX_WRITE);
    let max_readahead = config.set_max_readahead(MAX_WRITE);
    let _ = config.set_max_background(64);
    log::debug!(
        "FUSE init: kernel ABI {:?}, kernel offers {:?}; fext asked for {granted:?}; \
         max_write {max_write:?}, max_readahead {max_readahead:?} (Ok: set, Err: the kernel's limit)",
        config.kernel_abi(),
        config.capabilities(),
    );
    granted
}

fn empty(r: Result<(), FsError>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

fn name_bytes(name: &OsStr) -> &[u8] {
    name.as_bytes()
}

impl Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        negotiate(config, self.writeback_cache && !self.fs.is_read_only());
        Ok(())
    }

    fn destroy(&mut self) {
        if let Err(e) = self.fs.unmount() {
            log::error!("final write-back failed: {e}");
        }
        let table = self.stats.table();
        log::debug!("{table}");
        if self.print_stats {
            eprint!("fext: {table}");
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let _counted = self.stats.count(Op::Releasedir);
        reply.ok();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _counted = self.stats.count(Op::Lookup);
        match self.fs.lookup(to_ext(parent), name_bytes(name)) {
            // A negative entry (node id 0) that the kernel may cache for the
            // entry timeout, like a positive one: `open(O_CREAT)` or `stat`
            // of the same missing name then costs no second LOOKUP. Safe
            // because every change of the tree goes through this mount.
            Err(e) if e.errno == libc::ENOENT => {
                reply.entry(&self.ttl, &negative_attr(), Generation(0))
            }
            r => {
                if let Ok(a) = &r {
                    link_count::guard_reply(&self.notify, a, to_fuse(a.ino));
                }
                self.entry(r, reply)
            }
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let _counted = self.stats.count(Op::Forget);
        self.fs.forget(to_ext(ino), nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _counted = self.stats.count(Op::Getattr);
        match self.fs.getattr(to_ext(ino)) {
            Ok(a) => reply.attr(&self.ttl, &file_attr(&a)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let _counted = self.stats.count(Op::Setattr);
        let conv = |t: Option<TimeOrNow>| {
            t.map(|t| match t {
                TimeOrNow::Now => SetTime::Now,
                TimeOrNow::SpecificTime(s) => SetTime::At(timestamp_from_kernel(s)),
            })
        };
        let ino = to_ext(ino);
        let mode = match self.mode_with_privileges_killed(req, ino, mode, uid, gid, size) {
            Ok(m) => m,
            Err(e) => {
                reply.error(errno(&e));
                return;
            }
        };
        let ch = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: conv(atime),
            mtime: conv(mtime),
            ctime: ctime.map(timestamp_from_kernel),
        };
        match self.fs.setattr(ino, &ch) {
            Ok(a) => reply.attr(&self.ttl, &file_attr(&a)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let _counted = self.stats.count(Op::Readlink);
        match self.fs.readlink(to_ext(ino)) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let _counted = self.stats.count(Op::Mknod);
        let r = self.fs.create(
            to_ext(parent),
            name_bytes(name),
            mode as u16,
            rdev,
            creator(req, umask),
        );
        self.entry(r, reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let _counted = self.stats.count(Op::Mkdir);
        let mode = (mode as u16 & 0o7777) | crate::format::inode::S_IFDIR;
        let r = self.fs.create(
            to_ext(parent),
            name_bytes(name),
            mode,
            0,
            creator(req, umask),
        );
        self.entry(r, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _counted = self.stats.count(Op::Unlink);
        empty(self.fs.unlink(to_ext(parent), name_bytes(name)), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _counted = self.stats.count(Op::Rmdir);
        empty(self.fs.rmdir(to_ext(parent), name_bytes(name)), reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let _counted = self.stats.count(Op::Symlink);
        let r = self.fs.symlink(
            to_ext(parent),
            name_bytes(link_name),
            target.as_os_str().as_bytes(),
            caller(req),
        );
        self.entry(r, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _counted = self.stats.count(Op::Rename);
        let r = self.fs.rename(
            to_ext(parent),
            name_bytes(name),
            to_ext(newparent),
            name_bytes(newname),
            flags.bits(),
        );
        empty(r, reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _counted = self.stats.count(Op::Link);
        self.entry(
            self.fs
                .link(to_ext(ino), to_ext(newparent), name_bytes(newname)),
            reply,
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _counted = self.stats.count(Op::Open);
        let writable = flags.0 & libc::O_ACCMODE != libc::O_RDONLY;
        match self.fs.open(to_ext(ino), writable) {
            Ok(()) => reply.opened(handle(writable), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(errno(&e)),
        }
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
        let _counted = self.stats.count(Op::Read);
        let mut reply = Some(reply);
        let r = self.fs.read_with(to_ext(ino), offset, size, |d| {
            if let Some(r) = reply.take() {
                r.data(d);
            }
        });
        if let (Err(e), Some(r)) = (r, reply.take()) {
            r.error(errno(&e));
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let _counted = self.stats.count(Op::Write);
        if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
            if let Err(e) = self.kill_suid_sgid(req, to_ext(ino), true) {
                reply.error(errno(&e));
                return;
            }
        }
        match self.fs.write(to_ext(ino), offset, data) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let _counted = self.stats.count(Op::Flush);
        // Nothing to do at close: data is the core's as soon as WRITE
        // returns, and write-back errors are reported by fsync (the kernel
        // still reports its own writeback-cache errors at close, before it
        // would send FLUSH). ENOSYS makes the kernel stop sending FLUSH,
        // one synchronous round trip less per close().
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let _counted = self.stats.count(Op::Release);
        empty(self.fs.release(to_ext(ino), fh == WRITER_HANDLE), reply);
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _counted = self.stats.count(Op::Fsync);
        empty(self.fs.fsync(to_ext(ino)), reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _counted = self.stats.count(Op::Opendir);
        match self.fs.getattr(to_ext(ino)) {
            Ok(a) if a.mode & crate::format::inode::S_IFMT == crate::format::inode::S_IFDIR => {
                // No FOPEN_CACHE_DIR: the kernel's copy of a listing
                // costs it a page-cache lookup per entry while it is made,
                // which doubled the time of a first listing (20,000
                // entries: 9.6 vs 6.9 ms) to save READDIRs only on the
                // next one.
                reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE)
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let _counted = self.stats.count(Op::Readdir);
        let filled = self.fs.readdir_with(to_ext(ino), offset, |e| {
            reply.add(
                to_fuse(e.ino),
                e.offset,
                dirent_kind(e.file_type),
                OsStr::from_bytes(e.name),
            )
        });
        match filled {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let _counted = self.stats.count(Op::Readdirplus);
        let dir = to_ext(ino);
        let mut next = offset;
        let mut sent = 0usize;
        loop {
            let entries = match self.fs.readdir(dir, next, READDIRPLUS_CHUNK) {
                Ok(entries) => entries,
                Err(e) if sent == 0 => return reply.error(errno(&e)),
                Err(_) => break,
            };
            let got = entries.len();
            // Inodes not in memory yet must be read from the image, which a
            // plain listing (ls, find) does not need: the reply ends with
            // this chunk, and the kernel goes on with plain READDIR unless
            // something looks names up in between. In a directory larger
            // than a chunk, the reply even ends before the first such
            // inode (at it, when nothing was sent yet: an empty reply is
            // the end of the directory), so a first listing of a large cold
            // directory waits for no inode table read; in a smaller one,
            // all of their blocks are asked for at once and the whole
            // directory comes with attributes.
            let names = entries.iter().filter(|e| e.offset > 2);
            let cold = self.fs.not_loaded(names.map(|e| e.ino));
            let large = got == READDIRPLUS_CHUNK;
            if !large {
                self.fs.prefetch_inodes(&cold);
            }
            // `cold` keeps the listing's order: in a large directory the
            // reply ends at the first of them, its first entry.
            let stop_at = if large { cold.first().copied() } else { None };
            for e in entries {
                let cold_here = stop_at == Some(e.ino);
                if cold_here && sent > 0 {
                    return reply.ok();
                }
                next = e.offset;
                let dots = e.name == b"." || e.name == b"..";
                let attr = if dots {
                    self.fs.getattr(e.ino)
                } else {
                    self.fs.lookup_listed(dir, e.offset, &e.name)
                };
                let Ok(a) = attr else { continue };
                link_count::guard_reply(&self.notify, &a, to_fuse(a.ino));
                let full = reply.add(
                    to_fuse(e.ino),
                    e.offset,
                    OsStr::from_bytes(&e.name),
                    &self.ttl,
                    &file_attr(&a),
                    Generation(u64::from(a.generation)),
                );
                if full {
                    if !dots {
                        // Not sent: the kernel will not count it.
                        self.fs.forget(e.ino, 1);
                    }
                    return reply.ok();
                }
                sent += 1;
                if cold_here {
                    return reply.ok();
                }
            }
            if got < READDIRPLUS_CHUNK || !cold.is_empty() {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _counted = self.stats.count(Op::Fsyncdir);
        empty(self.fs.fsync(to_ext(ino)), reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let _counted = self.stats.count(Op::Statfs);
        let s = self.fs.statfs();
        reply.statfs(
            s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.bsize,
        );
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let _counted = self.stats.count(Op::Setxattr);
        empty(
            self.fs
                .setxattr(to_ext(ino), name_bytes(name), value, flags as u32),
            reply,
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _counted = self.stats.count(Op::Getxattr);
        match self.fs.getxattr(to_ext(ino), name_bytes(name)) {
            Ok(v) => xattr_reply(&v, size, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _counted = self.stats.count(Op::Listxattr);
        match self.fs.listxattr(to_ext(ino)) {
            Ok(v) => xattr_reply(&v, size, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _counted = self.stats.count(Op::Removexattr);
        empty(self.fs.removexattr(to_ext(ino), name_bytes(name)), reply);
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let _counted = self.stats.count(Op::Access);
        empty(
            self.fs.access(to_ext(ino), mask.bits() as u32, caller(req)),
            reply,
        );
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let _counted = self.stats.count(Op::Create);
        let mode = if mode as u16 & crate::format::inode::S_IFMT == 0 {
            mode as u16 | crate::format::inode::S_IFREG
        } else {
            mode as u16
        };
        match self.fs.create(
            to_ext(parent),
            name_bytes(name),
            mode,
            0,
            creator(req, umask),
        ) {
            Ok(a) => match self.fs.open(a.ino, true) {
                Ok(()) => reply.created(
                    &self.ttl,
                    &file_attr(&a),
                    Generation(u64::from(a.generation)),
                    WRITER_HANDLE,
                    FopenFlags::FOPEN_KEEP_CACHE,
                ),
                Err(e) => reply.error(errno(&e)),
            },
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let _counted = self.stats.count(Op::Fallocate);
        if let Err(e) = self.kill_suid_sgid(req, to_ext(ino), false) {
            return reply.error(errno(&e));
        }
        empty(
            self.fs.fallocate(to_ext(ino), offset, length, mode as u32),
            reply,
        );
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let _counted = self.stats.count(Op::Lseek);
        let Ok(off) = u64::try_from(offset) else {
            reply.error(Errno::EINVAL);
            return;
        };
        if whence != libc::SEEK_DATA && whence != libc::SEEK_HOLE {
            reply.error(Errno::EINVAL);
            return;
        }
        let ext = to_ext(ino);
        let answer = move |fs: &Fs, reply: ReplyLseek| match fs.lseek(ext, off, whence as u32) {
            Ok(o) => reply.offset(o as i64),
            Err(e) => reply.error(errno(&e)),
        };
        if !self.writeback_cache || !self.fs.has_writers(ext).unwrap_or(true) {
            return answer(&self.fs, reply);
        }
        // With the writeback cache, data written through an open fd may be
        // in the kernel's page cache only: the kernel sends it first. That
        // notification waits for WRITE requests the FUSE threads must be
        // free to answer, so a helper thread waits and replies, not this
        // one. (If the thread cannot start, the dropped reply is EIO.)
        let (fs, notify) = (self.fs.clone(), self.notify.clone());
        let _ = std::thread::Builder::new()
            .name("fext-seek".into())
            .spawn(move || {
                if notify.write_back_pages(ino) {
                    answer(&fs, reply);
                } else {
                    log::error!("inode {ext}: the kernel did not write back its pages before SEEK_DATA/SEEK_HOLE");
                    reply.error(Errno::EIO);
                }
            });
    }

    /// No ioctl is implemented: ENOTTY, as ext4 answers the commands it does
    /// not know. (The kernel turned fuser's default ENOSYS into ENOTTY as
    /// well, but fuser logged a warning each time, and programs such as
    /// Python ask `isatty()` on every open; here they are just counted.)
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        let _counted = self.stats.count(Op::Ioctl);
        reply.error(Errno::ENOTTY);
    }

    fn copy_file_range(
        &self,
        req: &Request,
        ino_in: INodeNo,
        _fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        _fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let _counted = self.stats.count(Op::CopyFileRange);
        if let Err(e) = self.kill_suid_sgid(req, to_ext(ino_out), false) {
            return reply.error(errno(&e));
        }
        let len = len.min(u64::from(u32::MAX));
        match self
            .fs
            .copy_range(to_ext(ino_in), offset_in, to_ext(ino_out), offset_out, len)
        {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(&e)),
        }
    }
}

fn xattr_reply(v: &[u8], size: u32, reply: ReplyXattr) {
    if size == 0 {
        reply.size(v.len() as u32);
    } else if v.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_before_the_epoch_convert_both_ways() {
        for (sec, nsec) in [
            (-31_536_001i64, 300_000_000u32),
            (-1, 999_999_999),
            (-5, 0),
            (7, 5),
        ] {
            let t = Timestamp::new(sec, nsec);
            assert_eq!(timestamp(system_time(t)), t, "{sec}.{nsec}");
        }
    }
}
