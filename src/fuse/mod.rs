//! The FUSE adapter: implements `fuser::Filesystem` by translating each
//! request into a call of the file-system core ([`crate::fs::Fs`]) and its
//! result into a reply. No ext4 logic lives here.
//!
//! Inode numbers: FUSE calls the root 1, ext4 calls it 2; inode 1 of ext4
//! (the bad-blocks inode) is never exposed, so the two map one to one.
//!
//! Kernel features requested at init: writeback cache, parallel directory
//! operations, readdirplus, large requests (1 MiB writes), and attribute and
//! entry timeouts: the daemon is the only writer of the image, so what the
//! kernel caches stays true. POSIX ACLs: `FUSE_POSIX_ACL` (the kernel
//! enforces and caches ACLs, and refreshes attributes after an ACL
//! change) and `FUSE_DONT_MASK` (create modes arrive unmasked with the
//! umask beside them, for default-ACL inheritance); see `fs::acl`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::format::dir::FileType as ExtFileType;
use crate::format::inode::Timestamp;
use crate::fs::ops_attr::{SetAttr, SetTime};
use crate::fs::{Attr, Caller, Fs, FsError};

/// FUSE's root inode number.
const FUSE_ROOT: u64 = 1;
/// ext4's root inode number.
const EXT4_ROOT: u32 = 2;
/// Largest write the kernel may send.
pub const MAX_WRITE: u32 = 1 << 20;

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

/// The adapter.
pub struct FuseFs {
    fs: Arc<Fs>,
    ttl: Duration,
    writeback_cache: bool,
}

impl FuseFs {
    pub fn new(fs: Arc<Fs>, ttl: Duration, writeback_cache: bool) -> Self {
        FuseFs {
            fs,
            ttl,
            writeback_cache,
        }
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
        let mut wanted = InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_MAX_PAGES
            | InitFlags::FUSE_BIG_WRITES
            | InitFlags::FUSE_ASYNC_READ
            | InitFlags::FUSE_POSIX_ACL
            | InitFlags::FUSE_DONT_MASK;
        if self.writeback_cache && !self.fs.is_read_only() {
            wanted |= InitFlags::FUSE_WRITEBACK_CACHE;
        }
        for flag in wanted.iter() {
            if config.add_capabilities(flag).is_err() {
                log::debug!("kernel lacks FUSE capability {flag:?}");
            }
        }
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config.set_max_readahead(MAX_WRITE);
        let _ = config.set_max_background(64);
        Ok(())
    }

    fn destroy(&mut self) {
        if let Err(e) = self.fs.unmount() {
            log::error!("final write-back failed: {e}");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(self.fs.lookup(to_ext(parent), name_bytes(name)), reply);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(to_ext(ino), nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(to_ext(ino)) {
            Ok(a) => reply.attr(&self.ttl, &file_attr(&a)),
            Err(e) => reply.error(errno(&e)),
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
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let conv = |t: Option<TimeOrNow>| {
            t.map(|t| match t {
                TimeOrNow::Now => SetTime::Now,
                TimeOrNow::SpecificTime(s) => SetTime::At(timestamp_from_kernel(s)),
            })
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
        match self.fs.setattr(to_ext(ino), &ch) {
            Ok(a) => reply.attr(&self.ttl, &file_attr(&a)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
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
        empty(self.fs.unlink(to_ext(parent), name_bytes(name)), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
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
        self.entry(
            self.fs
                .link(to_ext(ino), to_ext(newparent), name_bytes(newname)),
            reply,
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
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
        reply.ok();
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
        empty(self.fs.fsync(to_ext(ino)), reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.getattr(to_ext(ino)) {
            Ok(a) if a.mode & crate::format::inode::S_IFMT == crate::format::inode::S_IFDIR => {
                reply.opened(
                    FileHandle(0),
                    FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR,
                )
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
        match self.fs.readdir(to_ext(ino), offset, 4096) {
            Ok(entries) => {
                for e in entries {
                    if reply.add(
                        to_fuse(e.ino),
                        e.offset,
                        dirent_kind(e.file_type),
                        OsStr::from_bytes(&e.name),
                    ) {
                        break;
                    }
                }
                reply.ok();
            }
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
        let dir = to_ext(ino);
        match self.fs.readdir(dir, offset, 4096) {
            Ok(entries) => {
                for e in entries {
                    let dots = e.name == b"." || e.name == b"..";
                    let attr = if dots {
                        self.fs.getattr(e.ino)
                    } else {
                        self.fs.lookup(dir, &e.name)
                    };
                    let Ok(a) = attr else { continue };
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
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(self.fs.fsync(to_ext(ino)), reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
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
        empty(
            self.fs
                .setxattr(to_ext(ino), name_bytes(name), value, flags as u32),
            reply,
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.fs.getxattr(to_ext(ino), name_bytes(name)) {
            Ok(v) => xattr_reply(&v, size, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.fs.listxattr(to_ext(ino)) {
            Ok(v) => xattr_reply(&v, size, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.fs.removexattr(to_ext(ino), name_bytes(name)), reply);
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
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
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
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
        let Ok(off) = u64::try_from(offset) else {
            reply.error(Errno::EINVAL);
            return;
        };
        match whence {
            libc::SEEK_DATA | libc::SEEK_HOLE => {
                match self
                    .fs
                    .lseek(to_ext(ino), off, whence as u32, self.writeback_cache)
                {
                    Ok(o) => reply.offset(o as i64),
                    Err(e) => reply.error(errno(&e)),
                }
            }
            _ => reply.error(Errno::EINVAL),
        }
    }

    fn copy_file_range(
        &self,
        _req: &Request,
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
