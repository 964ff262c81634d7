//! The root directory, and copying a source tree into the new file system
//! (`mkfs.fext -d DIR`), the way `mke2fs -d` does.
//!
//! Directories are processed breadth-first with an explicit queue. Each
//! source object becomes one inode: regular files (their holes found with
//! SEEK_DATA/SEEK_HOLE and kept as holes), directories, symlinks (targets
//! under 60 bytes inline in `i_block`, longer ones in a data block), device
//! nodes, fifos and sockets, with mode, owner, timestamps (nanoseconds
//! included) and the user., trusted., security. and POSIX ACL extended
//! attributes. Hard links within the tree share one inode; link counts are
//! the number of names inside the tree. A directory's blocks are written
//! once all its entries are known.

use std::collections::{HashMap, VecDeque};
use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::builder::Builder;
use super::filemap::{alloc_runs, map_runs, Run};
use super::plan::LOST_FOUND_INO;
use super::special::{uses_extents, write_runs};
use crate::format::csum::inode_seed;
use crate::format::dir::{build_linear_dir, set_dir_block_csum, FileType, NewEntry};
use crate::format::dx_hash::DxHashVersion;
use crate::format::features::{Compat, Incompat, RoCompat};
use crate::format::htree::{build_htree_dir, set_dx_csum, HtreeParams};
use crate::format::inode::{flags, Inode, Timestamp, S_IFDIR, S_IFMT};
use crate::format::superblock;
use crate::format::xattr::{self, Xattr};
use crate::format::{FormatError, InodeNo};

/// The root directory's inode number.
pub const ROOT_INO: u32 = 2;
/// Longest symlink target stored inside the inode.
const FAST_SYMLINK_MAX: usize = 59;
/// The kernel's limit on directory links without dir_nlink.
const EXT4_LINK_MAX: u32 = 65000;

struct Entry {
    name: Vec<u8>,
    ino: u32,
    file_type: FileType,
}

struct PendingDir {
    ino: u32,
    parent: u32,
    source: Option<PathBuf>,
    inode: Inode,
    xattrs: Vec<Xattr>,
}

/// Copies `source` (if any) into the root directory and writes the root.
pub fn populate(
    b: &mut Builder,
    source: Option<&Path>,
    root_owner: Option<(u32, u32)>,
) -> Result<(), String> {
    b.alloc.mark_inode_used(ROOT_INO, true);
    let mut root = b.new_inode(S_IFDIR | 0o755);
    let mut root_xattrs = Vec::new();
    if let Some(src) = source {
        let meta = fs::symlink_metadata(src)
            .map_err(|e| format!("cannot read source directory {}: {e}", src.display()))?;
        if !meta.is_dir() {
            return Err(format!("{} is not a directory", src.display()));
        }
        apply_metadata(&mut root, &meta);
        root.mode = S_IFDIR | (meta.mode() as u16 & 0o7777);
        root_xattrs = read_xattrs(src)?;
    }
    if let Some((uid, gid)) = root_owner {
        root.uid = uid;
        root.gid = gid;
    }
    let mut ctx = Populator {
        hardlinks: HashMap::new(),
        link_counts: HashMap::new(),
        next_ino: b.plan.sb.first_ino(),
    };
    // lost+found and, with orphan_file, inode 12 are made before this runs.
    let mut queue = VecDeque::new();
    queue.push_back(PendingDir {
        ino: ROOT_INO,
        parent: ROOT_INO,
        source: source.map(Path::to_path_buf),
        inode: root,
        xattrs: root_xattrs,
    });
    while let Some(dir) = queue.pop_front() {
        ctx.fill_dir(b, dir, &mut queue)?;
    }
    ctx.finish_hardlinks(b)
}

struct Populator {
    /// (st_dev, st_ino) of multiply-linked source files → our inode.
    hardlinks: HashMap<(u64, u64), u32>,
    /// Our multiply-linked inodes with their names counted so far.
    link_counts: HashMap<u32, (Inode, Vec<Xattr>, u16)>,
    next_ino: u32,
}

impl Populator {
    fn alloc_ino(&mut self, b: &mut Builder, is_dir: bool) -> Result<u32, String> {
        let ino = b
            .alloc
            .alloc_inode(self.next_ino, is_dir)
            .ok_or("file system full: no free inodes (use -N or -i)")?;
        self.next_ino = ino + 1;
        Ok(ino)
    }

    fn fill_dir(
        &mut self,
        b: &mut Builder,
        mut dir: PendingDir,
        queue: &mut VecDeque<PendingDir>,
    ) -> Result<(), String> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut subdirs: u32 = 0;
        if dir.ino == ROOT_INO {
            entries.push(Entry {
                name: b"lost+found".to_vec(),
                ino: LOST_FOUND_INO,
                file_type: FileType::Directory,
            });
            subdirs += 1;
        }
        if let Some(src) = dir.source.clone() {
            let mut names: Vec<_> = fs::read_dir(&src)
                .map_err(|e| format!("cannot list {}: {e}", src.display()))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("cannot list {}: {e}", src.display()))?;
            names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            for name in names {
                if dir.ino == ROOT_INO && name.as_bytes() == b"lost+found" {
                    continue;
                }
                if name.len() > 255 {
                    return Err(format!(
                        "{}: name longer than 255 bytes",
                        src.join(&name).display()
                    ));
                }
                let path = src.join(&name);
                let (ino, ft) = self.add_object(b, &path, dir.ino, queue)?;
                if ft == FileType::Directory {
                    subdirs += 1;
                }
                entries.push(Entry {
                    name: name.as_bytes().to_vec(),
                    ino,
                    file_type: ft,
                });
            }
        }
        let links = 2 + subdirs;
        dir.inode.links_count =
            if links >= EXT4_LINK_MAX && b.plan.features.ro_compat.contains(RoCompat::DIR_NLINK) {
                1
            } else {
                u16::try_from(links).map_err(|_| {
                    format!("directory with {subdirs} subdirectories needs the dir_nlink feature")
                })?
            };
        write_directory(b, &mut dir, &entries)
    }

    /// Creates the inode for one source object; returns its number and type.
    fn add_object(
        &mut self,
        b: &mut Builder,
        path: &Path,
        parent: u32,
        queue: &mut VecDeque<PendingDir>,
    ) -> Result<(u32, FileType), String> {
        let shown = path.display();
        let meta = fs::symlink_metadata(path).map_err(|e| format!("cannot stat {shown}: {e}"))?;
        let ft = meta.file_type();
        let file_type = if ft.is_dir() {
            FileType::Directory
        } else if ft.is_symlink() {
            FileType::Symlink
        } else if ft.is_file() {
            FileType::Regular
        } else if ft.is_char_device() {
            FileType::CharDev
        } else if ft.is_block_device() {
            FileType::BlockDev
        } else if ft.is_fifo() {
            FileType::Fifo
        } else if ft.is_socket() {
            FileType::Socket
        } else {
            return Err(format!("{shown}: unsupported file type"));
        };
        if !ft.is_dir() && meta.nlink() > 1 {
            if let Some(&ino) = self.hardlinks.get(&(meta.dev(), meta.ino())) {
                if let Some(entry) = self.link_counts.get_mut(&ino) {
                    entry.2 = entry
                        .2
                        .checked_add(1)
                        .ok_or_else(|| format!("{shown}: too many links"))?;
                }
                return Ok((ino, file_type));
            }
        }
        let ino = self.alloc_ino(b, ft.is_dir())?;
        let mode_type = file_type
            .mode_bits()
            .ok_or_else(|| format!("{shown}: unsupported file type"))?;
        let mut inode = b.new_inode(mode_type | (meta.mode() as u16 & 0o7777));
        apply_metadata(&mut inode, &meta);
        let xattrs = read_xattrs(path)?;
        if ft.is_dir() {
            queue.push_back(PendingDir {
                ino,
                parent,
                source: Some(path.to_path_buf()),
                inode,
                xattrs,
            });
            return Ok((ino, file_type));
        }
        if ft.is_file() {
            copy_file_data(b, ino, &mut inode, path, meta.len())
                .map_err(|e| format!("cannot copy {shown}: {e}"))?;
        } else if ft.is_symlink() {
            let target =
                fs::read_link(path).map_err(|e| format!("cannot read link {shown}: {e}"))?;
            write_symlink(b, ino, &mut inode, target.as_os_str())?;
        } else if ft.is_char_device() || ft.is_block_device() {
            let rdev = meta.rdev();
            inode.set_device_number(libc::major(rdev), libc::minor(rdev));
        }
        if meta.nlink() > 1 {
            self.hardlinks.insert((meta.dev(), meta.ino()), ino);
            self.link_counts.insert(ino, (inode, xattrs, 1));
        } else {
            inode.links_count = 1;
            store_inode(b, ino, inode, &xattrs)?;
        }
        Ok((ino, file_type))
    }

    fn finish_hardlinks(&mut self, b: &mut Builder) -> Result<(), String> {
        for (ino, (mut inode, xattrs, links)) in std::mem::take(&mut self.link_counts) {
            inode.links_count = links;
            store_inode(b, ino, inode, &xattrs)?;
        }
        Ok(())
    }
}

fn ts(sec: i64, nsec: i64) -> Timestamp {
    Timestamp::new(sec, u32::try_from(nsec).unwrap_or(0))
}

fn apply_metadata(inode: &mut Inode, meta: &fs::Metadata) {
    inode.uid = meta.uid();
    inode.gid = meta.gid();
    inode.atime = ts(meta.atime(), meta.atime_nsec());
    inode.mtime = ts(meta.mtime(), meta.mtime_nsec());
    inode.ctime = ts(meta.ctime(), meta.ctime_nsec());
}

/// Reads the source's extended attributes in the namespaces ext4 stores,
/// converting POSIX ACLs to ext4's on-disk form.
fn read_xattrs(path: &Path) -> Result<Vec<Xattr>, String> {
    let shown = path.display();
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{shown}: path contains a NUL byte"))?;
    let names = list_xattrs(&cpath).map_err(|e| format!("cannot list xattrs of {shown}: {e}"))?;
    let mut out = Vec::new();
    for name in names {
        let value = get_xattr(&cpath, &name).map_err(|e| {
            format!(
                "cannot read xattr {} of {shown}: {e}",
                String::from_utf8_lossy(&name)
            )
        })?;
        let value = if name == b"system.posix_acl_access" || name == b"system.posix_acl_default" {
            xattr::acl_xattr_to_disk(&value).map_err(|e| {
                format!(
                    "{shown}: bad ACL in {}: {e}",
                    String::from_utf8_lossy(&name)
                )
            })?
        } else {
            value
        };
        match Xattr::from_full_name(&name, value) {
            Some(x) => out.push(x),
            None => {
                return Err(format!(
                    "{shown}: extended attribute {} has a namespace ext4 cannot store",
                    String::from_utf8_lossy(&name)
                ))
            }
        }
    }
    Ok(out)
}

fn list_xattrs(path: &CString) -> std::io::Result<Vec<Vec<u8>>> {
    loop {
        // SAFETY: a size query with a null buffer and length 0.
        let need = unsafe { libc::llistxattr(path.as_ptr(), std::ptr::null_mut(), 0) };
        if need < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOTSUP) => Ok(Vec::new()),
                _ => Err(e),
            };
        }
        let mut buf = vec![0u8; need as usize];
        // SAFETY: `buf` has `buf.len()` writable bytes.
        let got = unsafe { libc::llistxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if got < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                continue;
            }
            return Err(e);
        }
        buf.truncate(got as usize);
        return Ok(buf
            .split(|&c| c == 0)
            .filter(|n| !n.is_empty())
            .map(<[u8]>::to_vec)
            .collect());
    }
}

fn get_xattr(path: &CString, name: &[u8]) -> std::io::Result<Vec<u8>> {
    let cname = CString::new(name).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    loop {
        // SAFETY: a size query with a null buffer and length 0.
        let need =
            unsafe { libc::lgetxattr(path.as_ptr(), cname.as_ptr(), std::ptr::null_mut(), 0) };
        if need < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut buf = vec![0u8; need as usize];
        // SAFETY: `buf` has `buf.len()` writable bytes.
        let got = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                cname.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if got < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                continue;
            }
            return Err(e);
        }
        buf.truncate(got as usize);
        return Ok(buf);
    }
}

/// Places xattrs (in the inode first, the rest in a block) and stores the
/// inode.
fn store_inode(
    b: &mut Builder,
    ino: u32,
    mut inode: Inode,
    xattrs: &[Xattr],
) -> Result<(), String> {
    if xattrs.is_empty() {
        return b.put_inode(ino, &inode, None);
    }
    if !b.plan.features.compat.contains(Compat::EXT_ATTR) {
        return Err(format!(
            "inode {ino} has extended attributes but the file system lacks ext_attr"
        ));
    }
    let isize = b.inode_size();
    let area_len = isize.saturating_sub(128 + usize::from(inode.extra_isize));
    let bs = b.block_size() as usize;
    let placed = xattr::place(xattrs, area_len, bs)
        .map_err(|e| format!("inode {ino}: extended attributes do not fit: {e}"))?;
    if !placed.block.is_empty() {
        let mut block = vec![0u8; bs];
        xattr::encode_block(&placed.block, 1, &mut block)?;
        let goal = b.metas[b.plan.geo.inode_location(ino).0 as usize].inode_table;
        let blk = b
            .alloc
            .alloc_block(Some(goal))
            .ok_or("file system full (xattr block)")?;
        if let Some(seed) = b.csum_seed() {
            xattr::set_block_checksum(seed, blk, &mut block)?;
        }
        b.write_blocks(blk, &block)?;
        inode.file_acl = blk;
        let extra = u64::from(b.block_size() / 512);
        let sectors = inode.blocks_512(b.block_size()) + extra;
        inode.set_blocks_512(sectors, b.block_size());
    }
    if placed.ibody.is_empty() {
        return b.put_inode(ino, &inode, None);
    }
    let mut area = vec![0u8; area_len];
    xattr::encode_ibody(&placed.ibody, &mut area)?;
    b.put_inode(ino, &inode, Some(&area))
}

/// Copies a regular file's data, leaving its holes unallocated.
fn copy_file_data(
    b: &mut Builder,
    ino: u32,
    inode: &mut Inode,
    path: &Path,
    len: u64,
) -> Result<(), String> {
    let bs = u64::from(b.block_size());
    inode.size = len;
    let file = File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let segments = data_segments(&file, len).map_err(|e| format!("cannot map its holes: {e}"))?;
    let goal = Some(
        b.plan
            .geo
            .group_first_block(b.plan.geo.inode_location(ino).0),
    );
    let mut runs: Vec<Run> = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    for (start, end) in segments {
        let first_blk = start / bs;
        let last_blk = end.div_ceil(bs);
        // Segments are block-aligned by the source file system, but merge
        // with the previous run if they share a block.
        let first_blk = match runs.last() {
            Some(r) if u64::from(r.logical) + u64::from(r.len) > first_blk => {
                u64::from(r.logical) + u64::from(r.len)
            }
            _ => first_blk,
        };
        if first_blk >= last_blk {
            continue;
        }
        let logical = u32::try_from(first_blk).map_err(|_| "file too large".to_string())?;
        let prev_end = runs.last().map(|r| r.phys + u64::from(r.len));
        let new_runs = alloc_runs(b, prev_end.or(goal), logical, last_blk - first_blk)?;
        for r in &new_runs {
            let mut off = u64::from(r.logical) * bs;
            let run_end = (off + u64::from(r.len) * bs).min(len);
            let mut phys_byte = r.phys * bs;
            while off < run_end {
                let n = ((run_end - off) as usize).min(buf.len());
                let got =
                    read_full(&file, &mut buf[..n], off).map_err(|e| format!("read error: {e}"))?;
                // Zero-fill the tail of the last block.
                let padded = got.div_ceil(bs as usize) * bs as usize;
                buf[got..padded].fill(0);
                b.target.write_at(&buf[..padded], phys_byte)?;
                off += n as u64;
                phys_byte += n as u64;
            }
        }
        runs.extend(new_runs);
    }
    map_runs(b, ino, inode, &runs, uses_extents(b))
}

fn read_full(file: &File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Byte ranges of `file` that hold data (SEEK_DATA/SEEK_HOLE); the whole
/// file when the source file system cannot tell.
fn data_segments(file: &File, len: u64) -> std::io::Result<Vec<(u64, u64)>> {
    let fd = file.as_raw_fd();
    let mut out = Vec::new();
    let mut pos: i64 = 0;
    let end = i64::try_from(len).unwrap_or(i64::MAX);
    while pos < end {
        // SAFETY: lseek on an open descriptor with scalar arguments.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENXIO) => Ok(out),
                Some(libc::EINVAL) | Some(libc::ENOTSUP) => Ok(vec![(0, len)]),
                _ => Err(e),
            };
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let hole = if hole < 0 { end } else { hole.min(end) };
        if hole > data {
            out.push((data as u64, hole as u64));
        }
        pos = hole;
    }
    Ok(out)
}

fn write_symlink(
    b: &mut Builder,
    ino: u32,
    inode: &mut Inode,
    target: &OsStr,
) -> Result<(), String> {
    let bytes = target.as_bytes();
    let bs = b.block_size() as usize;
    inode.size = bytes.len() as u64;
    if bytes.len() <= FAST_SYMLINK_MAX {
        inode.block = [0; 60];
        inode.block[..bytes.len()].copy_from_slice(bytes);
        return Ok(());
    }
    if bytes.len() >= bs {
        return Err(format!(
            "symlink target of {} bytes does not fit in a block",
            bytes.len()
        ));
    }
    let runs = alloc_runs(b, None, 0, 1)?;
    let mut data = vec![0u8; bs];
    data[..bytes.len()].copy_from_slice(bytes);
    write_runs(b, &runs, &data)?;
    map_runs(b, ino, inode, &runs, uses_extents(b))
}

/// Writes a directory's blocks and its inode. A directory that needs more
/// than one block is indexed (an htree, INDEX_FL) when dir_index is on, as
/// the kernel and `e2fsck -D` would make it; otherwise, and if the index
/// cannot hold it, it is linear.
fn write_directory(b: &mut Builder, dir: &mut PendingDir, entries: &[Entry]) -> Result<(), String> {
    let bs = b.block_size() as usize;
    let seed = b
        .csum_seed()
        .map(|s| inode_seed(s, InodeNo(dir.ino), dir.inode.generation));
    let with_types = b.plan.features.incompat.contains(Incompat::FILETYPE);
    let new_entries: Vec<NewEntry<'_>> = entries
        .iter()
        .map(|e| NewEntry {
            name: &e.name,
            inode: e.ino,
            file_type: if with_types {
                e.file_type
            } else {
                FileType::Unknown
            },
        })
        .collect();
    let mut data = build_linear_dir(dir.ino, dir.parent, &new_entries, bs, seed)?;
    let mut indexed = false;
    if data.len() > bs && b.plan.features.compat.contains(Compat::DIR_INDEX) {
        if let Some(hashed) = build_indexed(b, dir, &new_entries, seed)? {
            data = hashed;
            indexed = true;
        }
    }
    if !with_types {
        clear_dot_file_types(&mut data[..bs], seed, indexed)?;
    }
    let nblocks = (data.len() / bs) as u64;
    let goal = Some(
        b.plan
            .geo
            .group_first_block(b.plan.geo.inode_location(dir.ino).0),
    );
    let runs = alloc_runs(b, goal, 0, nblocks)?;
    write_runs(b, &runs, &data)?;
    let mut inode = dir.inode.clone();
    inode.mode = (inode.mode & !S_IFMT) | S_IFDIR;
    inode.size = data.len() as u64;
    if indexed {
        inode.flags |= flags::INDEX;
    }
    map_runs(b, dir.ino, &mut inode, &runs, uses_extents(b))?;
    store_inode(b, dir.ino, inode, &dir.xattrs)
}

/// The blocks of `dir` as an htree, or `None` when the index would need
/// more levels than the file system allows (the caller keeps it linear).
fn build_indexed(
    b: &Builder,
    dir: &PendingDir,
    entries: &[NewEntry<'_>],
    csum_seed: Option<u32>,
) -> Result<Option<Vec<u8>>, String> {
    let sb = &b.plan.sb.f;
    let unsigned = sb.flags & superblock::FLAG_UNSIGNED_HASH != 0;
    let params = HtreeParams {
        block_size: b.block_size() as usize,
        hash_version: DxHashVersion::effective(sb.def_hash_version, unsigned)?,
        hash_seed: sb.hash_seed,
        csum_seed,
        largedir: b.plan.features.incompat.contains(Incompat::LARGEDIR),
    };
    match build_htree_dir(dir.ino, dir.parent, entries, &params) {
        Ok(data) => Ok(Some(data)),
        Err(FormatError::Unsupported { .. }) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Without the filetype feature, a directory entry's byte 7 is the high
/// byte of a 16-bit name length, so `.` and `..` (at offsets 0 and 12 of a
/// directory's first block, linear or htree root) must carry file type 0.
/// The format layer's builders always mark them as directories; clear that
/// and redo the block's checksum.
pub fn clear_dot_file_types(
    block0: &mut [u8],
    csum_seed: Option<u32>,
    indexed: bool,
) -> Result<(), String> {
    const DOT_FILE_TYPE: usize = 7;
    const DOTDOT_FILE_TYPE: usize = 12 + 7;
    block0[DOT_FILE_TYPE] = 0;
    block0[DOTDOT_FILE_TYPE] = 0;
    if let Some(seed) = csum_seed {
        if indexed {
            set_dx_csum(block0, seed)?;
        } else {
            set_dir_block_csum(block0, seed)?;
        }
    }
    Ok(())
}
