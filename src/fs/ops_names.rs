//! Namespace operations: lookup, create (files, directories, symlinks,
//! device nodes, fifos, sockets), link, unlink, rmdir, rename (with
//! RENAME_NOREPLACE and RENAME_EXCHANGE), readdir and readlink; plus the
//! life cycle of inodes whose last name is gone (the orphan list) and their
//! final release.

use std::time::Instant;

use super::dirstate::DirState;
use super::error::{FsError, FsResult};
use super::inode::{is_fast_symlink, InodeState};
use super::lockorder::Slot;
use super::volume::Volume;
use super::{acl, now, Attr, Caller, DirEntryOut, DirEntryRef, Fs, State};
use crate::format::dir::{validate_name, FileType};
use crate::format::features::RoCompat;
use crate::format::inode::{flags, Inode, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use crate::format::xattr::{encode_disk_acl, index as xindex, parse_xattr_acl, place, Xattr};

/// The kernel's link limit for ext4.
pub const LINK_MAX: u16 = 65000;
/// Set-group-ID bit.
const S_ISGID: u16 = 0o2000;
/// Longest symlink target stored in the inode.
const FAST_SYMLINK_MAX: usize = 59;
/// Bound on walks up the directory tree.
const MAX_DIR_DEPTH: usize = 1 << 16;
/// Bound on orphan-chain walks.
const MAX_ORPHANS: usize = 1 << 20;

/// RENAME_NOREPLACE / RENAME_EXCHANGE.
pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;

fn check_name(name: &[u8]) -> FsResult<()> {
    if name.len() > 255 {
        return Err(FsError::nametoolong());
    }
    validate_name(name).map_err(|_| FsError::inval())
}

const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

impl State<'_> {
    fn writable(&self) -> FsResult<()> {
        if self.vol.read_only {
            Err(FsError::rofs())
        } else {
            Ok(())
        }
    }

    /// Looks `name` up in directory `parent`.
    pub fn lookup_ino(&mut self, parent: u32, name: &[u8]) -> FsResult<u32> {
        self.ensure_dir(parent)?;
        // Like ext4_lookup: a name no entry can have is ENAMETOOLONG,
        // not ENOENT (the VFS leaves this check to the file system).
        if name.len() > 255 {
            return Err(FsError::nametoolong());
        }
        let st = self.inodes.get_mut(&parent).expect("loaded");
        let dir = st.dir.as_mut().expect("loaded");
        match name {
            b"." => Ok(parent),
            b".." => Ok(dir.parent),
            _ => dir.lookup(name).map(|e| e.ino).ok_or_else(FsError::noent),
        }
    }

    /// Takes a lookup reference on `ino` (the kernel now knows it by a
    /// name) and returns its attributes.
    fn take_lookup_ref(&mut self, ino: u32) -> FsResult<Attr> {
        self.get(ino)?.nlookup += 1;
        Ok(self.attr_of(&self.inodes[&ino]))
    }

    fn dir_mut(&mut self, ino: u32) -> FsResult<&mut DirState> {
        self.ensure_dir(ino)?;
        if self.is_inline(ino)? {
            self.convert_inline(ino)?;
        }
        Ok(self
            .inodes
            .get_mut(&ino)
            .and_then(|s| s.dir.as_mut())
            .expect("loaded"))
    }

    fn touch_dir(&mut self, ino: u32) -> FsResult<()> {
        let t = now();
        let st = self.get(ino)?;
        st.inode.mtime = t;
        st.inode.ctime = t;
        st.dirty = true;
        Ok(())
    }

    fn add_dir_link(&mut self, ino: u32) -> FsResult<()> {
        let dir_nlink = self.vol.feat.ro_compat.contains(RoCompat::DIR_NLINK);
        let st = self.get(ino)?;
        let n = st.inode.links_count;
        if n == 1 && dir_nlink {
            return Ok(()); // already "many"
        }
        if n >= LINK_MAX - 1 {
            if dir_nlink {
                st.inode.links_count = 1;
                st.dirty = true;
                return Ok(());
            }
            return Err(FsError::mlink());
        }
        st.inode.links_count = n + 1;
        st.dirty = true;
        Ok(())
    }

    fn drop_dir_link(&mut self, ino: u32) -> FsResult<()> {
        let st = self.get(ino)?;
        if st.inode.links_count > 2 {
            st.inode.links_count -= 1;
            st.dirty = true;
        }
        Ok(())
    }

    /// Creates a new inode under `parent` named `name`.
    #[allow(clippy::too_many_arguments)]
    pub fn create_node(
        &mut self,
        parent: u32,
        name: &[u8],
        mode: u16,
        rdev: u32,
        caller: Caller,
        symlink_target: Option<&[u8]>,
    ) -> FsResult<Attr> {
        self.writable()?;
        check_name(name)?;
        self.ensure_dir(parent)?;
        if self.lookup_ino(parent, name).is_ok() {
            return Err(FsError::exist());
        }
        let is_dir = mode & S_IFMT == S_IFDIR;
        if is_dir {
            // Check the parent can take another link before allocating.
            let dir_nlink = self.vol.feat.ro_compat.contains(RoCompat::DIR_NLINK);
            let pl = self.get(parent)?.inode.links_count;
            if !dir_nlink && pl >= LINK_MAX - 1 {
                return Err(FsError::mlink());
            }
        }
        let (mode, acl_xattrs) = self.inherit_acls(parent, mode, caller.umask)?;
        let (pgroup, _) = self.vol.geo.inode_location(parent);
        let parent_inode = self.get(parent)?.inode.clone();
        let ino = self.vol.alloc_inode(
            pgroup,
            is_dir,
            is_dir && parent == super::ops_names::ROOT_INO,
        )?;
        let extra = if self.vol.geo.inode_size > 128 { 32 } else { 0 };
        let mut inode = Inode::new(mode, extra);
        let t = now();
        inode.atime = t;
        inode.mtime = t;
        inode.ctime = t;
        inode.crtime = t;
        inode.uid = caller.uid;
        inode.gid = caller.gid;
        if parent_inode.mode & S_ISGID != 0 {
            inode.gid = parent_inode.gid;
            if is_dir {
                inode.mode |= S_ISGID;
            }
        }
        inode.generation = self.next_generation();
        inode.links_count = if is_dir { 2 } else { 1 };
        if is_dir {
            // The block "." and ".." will be written to (at write-back).
            let bs = self.vol.geo.block_size;
            inode.size = u64::from(bs);
            inode.set_blocks_512(u64::from(bs / 512), bs);
        }
        let ftype = mode & S_IFMT;
        let mapped = matches!(ftype, S_IFREG | S_IFDIR | S_IFLNK);
        let mut map = None;
        if mapped {
            map = Some(self.new_map());
        }
        if matches!(
            ftype,
            crate::format::inode::S_IFCHR | crate::format::inode::S_IFBLK
        ) {
            let major = (rdev >> 8) & 0xfff;
            let minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
            inode.set_device_number(major, minor);
        }
        let mut st = InodeState {
            ino,
            inode,
            tail: Vec::new(),
            dirty: true,
            map,
            dir: is_dir.then(|| {
                let mut d = DirState::new(parent);
                d.dirty = true;
                d
            }),
            xattrs_dirty: !acl_xattrs.is_empty(),
            xattrs: (!acl_xattrs.is_empty()).then_some(acl_xattrs),
            nlookup: 0,
            open_count: 0,
            writers: 0,
            orphan: false,
            meta_estimate: 0,
            evicted: false,
            link_dropped: None,
        };
        if let Some(target) = symlink_target {
            st.inode.size = target.len() as u64;
            if target.len() <= FAST_SYMLINK_MAX {
                st.map = None;
                st.inode.block[..target.len()].copy_from_slice(target);
            }
        }
        if st
            .map
            .as_ref()
            .is_some_and(|m| m.kind == super::filemap::MapKind::Extents)
        {
            st.inode.flags |= flags::EXTENTS;
        }
        let slow_target = symlink_target
            .filter(|t| t.len() > FAST_SYMLINK_MAX)
            .map(<[u8]>::to_vec);
        self.insert_new(st);
        if let Some(target) = slow_target {
            if let Err(e) = self.write_data(ino, 0, &target) {
                self.abort_create(ino, is_dir);
                return Err(e);
            }
        }
        let ft = FileType::from_mode(mode);
        if let Err(e) = self.dir_mut(parent).and_then(|d| d.insert(name, ino, ft)) {
            self.abort_create(ino, is_dir);
            return Err(e);
        }
        if let Err(e) = self
            .note_changed(parent)
            .and_then(|_| self.note_changed(ino))
        {
            self.dir_mut(parent)?.remove(name);
            let _ = self.note_changed(parent);
            self.abort_create(ino, is_dir);
            return Err(e);
        }
        if is_dir {
            self.add_dir_link(parent)?;
        }
        self.touch_dir(parent)?;
        let st = self.inodes.get(&ino).expect("inserted");
        Ok(self.attr_of(st))
    }

    /// The mode a new inode in `parent` gets and the ACL attributes it
    /// starts with: the parent's default ACL masks the create mode (and is
    /// inherited by directories), else the umask does (see `acl`).
    fn inherit_acls(&mut self, parent: u32, mode: u16, umask: u16) -> FsResult<(u16, Vec<Xattr>)> {
        let default = match self.getxattr(parent, ACL_DEFAULT) {
            Ok(v) => Some(parse_xattr_acl(&v).map_err(|e| {
                FsError::corrupt(format!("directory {parent}: bad default ACL: {e}"))
            })?),
            Err(e) if e.errno == libc::ENODATA => None,
            Err(e) => return Err(e),
        };
        let got = acl::inherit(mode, umask, default.as_deref()).map_err(|_| {
            FsError::corrupt(format!(
                "directory {parent}: default ACL lacks required entries"
            ))
        })?;
        let mut list = Vec::new();
        for (index, entries) in [
            (xindex::POSIX_ACL_DEFAULT, &got.default),
            (xindex::POSIX_ACL_ACCESS, &got.access),
        ] {
            if let Some(entries) = entries {
                let value = encode_disk_acl(entries).map_err(|e| {
                    FsError::corrupt(format!("directory {parent}: bad default ACL: {e}"))
                })?;
                list.push(Xattr::new(index, Vec::new(), value));
            }
        }
        if !list.is_empty() {
            let isize = usize::try_from(self.vol.geo.inode_size).unwrap_or(0);
            let area = isize.saturating_sub(128 + if isize > 128 { 32 } else { 0 });
            if place(&list, area, self.vol.block_size()).is_err() {
                return Err(FsError::nospc());
            }
        }
        Ok((got.mode, list))
    }

    fn abort_create(&mut self, ino: u32, is_dir: bool) {
        if let Some(mut st) = self.remove_inode(ino) {
            self.vol.adjust_reserve(st.meta_estimate, 0);
            if let Some(map) = st.map.as_mut() {
                let end = map.end();
                for (p, n) in map.unmap(0, end.min(u64::from(u32::MAX)) as u32) {
                    let _ = self.vol.free_blocks(p, u64::from(n));
                }
            }
        }
        let _ = self.vol.free_inode(ino, is_dir);
    }

    /// Adds a hard link to `ino` as `parent/name`.
    pub fn link(&mut self, ino: u32, parent: u32, name: &[u8]) -> FsResult<Attr> {
        self.writable()?;
        check_name(name)?;
        let st = self.get(ino)?;
        if st.inode.is_dir() {
            return Err(FsError::perm());
        }
        if st.inode.links_count >= LINK_MAX {
            return Err(FsError::mlink());
        }
        let ft = FileType::from_mode(st.inode.mode);
        self.dir_mut(parent)?.insert(name, ino, ft)?;
        if let Err(e) = self.note_changed(parent) {
            self.dir_mut(parent)?.remove(name);
            let _ = self.note_changed(parent);
            return Err(e);
        }
        let st = self.get(ino)?;
        st.inode.links_count += 1;
        st.inode.ctime = now();
        st.dirty = true;
        if st.orphan && st.inode.links_count > 0 {
            st.orphan = false;
        }
        self.touch_dir(parent)?;
        let st = self.inodes.get(&ino).expect("loaded");
        Ok(self.attr_of(st))
    }

    /// Removes a non-directory name.
    pub fn unlink(&mut self, parent: u32, name: &[u8]) -> FsResult<()> {
        self.writable()?;
        let ino = self.lookup_ino(parent, name)?;
        if self.get(ino)?.inode.is_dir() {
            return Err(FsError::isdir());
        }
        self.dir_mut(parent)?.remove(name);
        self.touch_dir(parent)?;
        let _ = self.note_changed(parent);
        self.drop_link(ino)
    }

    /// One name of `ino` is gone: count it down, and release the inode when
    /// nothing refers to it any more.
    fn drop_link(&mut self, ino: u32) -> FsResult<()> {
        let st = self.get(ino)?;
        st.inode.links_count = st.inode.links_count.saturating_sub(1);
        st.inode.ctime = now();
        st.dirty = true;
        if st.inode.links_count == 0 {
            st.orphan = true;
            self.maybe_release(ino)?;
        } else {
            st.link_dropped = Some(Instant::now());
        }
        Ok(())
    }

    /// Removes an empty directory.
    pub fn rmdir(&mut self, parent: u32, name: &[u8]) -> FsResult<()> {
        self.writable()?;
        if name == b"." {
            return Err(FsError::inval());
        }
        if name == b".." {
            return Err(FsError::notempty());
        }
        let ino = self.lookup_ino(parent, name)?;
        if !self.get(ino)?.inode.is_dir() {
            return Err(FsError::notdir());
        }
        self.ensure_dir(ino)?;
        if !self.inodes[&ino].dir.as_ref().expect("loaded").is_empty() {
            return Err(FsError::notempty());
        }
        self.dir_mut(parent)?.remove(name);
        self.drop_dir_link(parent)?;
        self.touch_dir(parent)?;
        let st = self.get(ino)?;
        st.inode.links_count = 0;
        st.inode.ctime = now();
        st.dirty = true;
        st.orphan = true;
        if let Some(d) = st.dir.as_mut() {
            d.dirty = false;
        }
        self.maybe_release(ino)
    }

    /// Renames `parent/name` to `newparent/newname`.
    pub fn rename(
        &mut self,
        parent: u32,
        name: &[u8],
        newparent: u32,
        newname: &[u8],
        rflags: u32,
    ) -> FsResult<()> {
        self.writable()?;
        check_name(newname)?;
        if rflags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0
            || rflags == RENAME_NOREPLACE | RENAME_EXCHANGE
        {
            return Err(FsError::inval());
        }
        let src = self.lookup_ino(parent, name)?;
        let dst = match self.lookup_ino(newparent, newname) {
            Ok(i) => Some(i),
            Err(e) if e.errno == libc::ENOENT => None,
            Err(e) => return Err(e),
        };
        let src_dir = self.get(src)?.inode.is_dir();
        if src_dir && parent != newparent {
            self.check_not_within(src, newparent)?;
        }
        let t = now();
        if rflags & RENAME_EXCHANGE != 0 {
            let dst = dst.ok_or_else(FsError::noent)?;
            let dst_dir = self.get(dst)?.inode.is_dir();
            if dst_dir && parent != newparent {
                self.check_not_within(dst, parent)?;
            }
            let sft = FileType::from_mode(self.get(src)?.inode.mode);
            let dft = FileType::from_mode(self.get(dst)?.inode.mode);
            self.dir_mut(parent)?.replace(name, dst, dft)?;
            self.dir_mut(newparent)?.replace(newname, src, sft)?;
            if parent != newparent {
                if src_dir {
                    self.dir_mut(src)?.parent = newparent;
                    self.dir_mut(src)?.dirty = true;
                }
                if dst_dir {
                    self.dir_mut(dst)?.parent = parent;
                    self.dir_mut(dst)?.dirty = true;
                }
                if src_dir && !dst_dir {
                    self.drop_dir_link(parent)?;
                    self.add_dir_link(newparent)?;
                } else if dst_dir && !src_dir {
                    self.drop_dir_link(newparent)?;
                    self.add_dir_link(parent)?;
                }
            }
            for i in [src, dst] {
                let st = self.get(i)?;
                st.inode.ctime = t;
                st.dirty = true;
            }
            self.touch_dir(parent)?;
            self.touch_dir(newparent)?;
            return Ok(());
        }
        if let Some(d) = dst {
            if rflags & RENAME_NOREPLACE != 0 {
                return Err(FsError::exist());
            }
            if d == src {
                return Ok(()); // two names of one inode: nothing to do
            }
            let dst_dir = self.get(d)?.inode.is_dir();
            if src_dir && !dst_dir {
                return Err(FsError::notdir());
            }
            if !src_dir && dst_dir {
                return Err(FsError::isdir());
            }
            if dst_dir {
                self.ensure_dir(d)?;
                if !self.inodes[&d].dir.as_ref().expect("loaded").is_empty() {
                    return Err(FsError::notempty());
                }
            }
        }
        let sft = FileType::from_mode(self.get(src)?.inode.mode);
        if src_dir && parent != newparent {
            // The new parent gains a link before anything changes, so an
            // EMLINK leaves everything as it was.
            if dst.is_none() {
                self.add_dir_link(newparent)?;
            }
        }
        self.dir_mut(parent)?.remove(name);
        match dst {
            Some(d) => {
                self.dir_mut(newparent)?.replace(newname, src, sft)?;
                if self.get(d)?.inode.is_dir() {
                    let st = self.get(d)?;
                    st.inode.links_count = 0;
                    st.inode.ctime = t;
                    st.dirty = true;
                    st.orphan = true;
                    if let Some(dd) = st.dir.as_mut() {
                        dd.dirty = false;
                    }
                    if parent == newparent || !src_dir {
                        self.drop_dir_link(newparent)?;
                    }
                    self.maybe_release(d)?;
                } else {
                    self.drop_link(d)?;
                }
            }
            None => self.dir_mut(newparent)?.insert(newname, src, sft)?,
        }
        if src_dir && parent != newparent {
            self.dir_mut(src)?.parent = newparent;
            self.dir_mut(src)?.dirty = true;
            self.drop_dir_link(parent)?;
        }
        let st = self.get(src)?;
        st.inode.ctime = t;
        st.dirty = true;
        self.touch_dir(parent)?;
        if newparent != parent {
            self.touch_dir(newparent)?;
        }
        for d in [parent, newparent, src] {
            if let Err(e) = self.note_changed(d) {
                log::warn!("rename: write-back reservation over-committed for inode {d}: {e}");
            }
        }
        Ok(())
    }

    /// EINVAL when directory `dir` is `moved` or lies below it (a
    /// directory cannot move into its own subtree). Walks up the `..`
    /// pointers, locking each directory (they hold still: cross-directory
    /// renames, the only changes to `..`, hold the rename mutex).
    fn check_not_within(&mut self, moved: u32, dir: u32) -> FsResult<()> {
        let mut cur = dir;
        for _ in 0..MAX_DIR_DEPTH {
            if cur == moved {
                return Err(FsError::inval());
            }
            if cur == ROOT_INO {
                return Ok(());
            }
            self.ensure_dir(cur)?;
            let up = self.inodes[&cur].dir.as_ref().expect("loaded").parent;
            if up == cur || up == 0 {
                return Ok(());
            }
            cur = up;
        }
        Err(FsError::corrupt(format!(
            "directory {dir}: more than {MAX_DIR_DEPTH} levels above it"
        )))
    }

    /// Hands the entries of directory `ino` after cookie `offset` ("." is
    /// 1, ".." 2) to `visit` in cookie order, until it returns true (its
    /// reply is full).
    pub fn readdir_with(
        &mut self,
        ino: u32,
        offset: u64,
        mut visit: impl FnMut(DirEntryRef<'_>) -> bool,
    ) -> FsResult<()> {
        self.ensure_dir(ino)?;
        let dir = self.inodes[&ino].dir.as_ref().expect("loaded");
        let dots = [(ino, 1, &b"."[..]), (dir.parent, 2, &b".."[..])];
        for (dot_ino, cookie, name) in dots {
            if offset < cookie {
                let e = DirEntryRef {
                    ino: dot_ino,
                    offset: cookie,
                    file_type: FileType::Directory,
                    name,
                };
                if visit(e) {
                    return Ok(());
                }
            }
        }
        for (c, e) in dir.iter_after(offset.max(2)) {
            let e = DirEntryRef {
                ino: e.ino,
                offset: c,
                file_type: e.file_type,
                name: e.name,
            };
            if visit(e) {
                break;
            }
        }
        Ok(())
    }

    /// The target of a symlink.
    pub fn readlink(&mut self, ino: u32) -> FsResult<Vec<u8>> {
        let bs = self.vol.geo.block_size;
        let st = self.get(ino)?;
        if !st.inode.is_symlink() {
            return Err(FsError::inval());
        }
        let size = usize::try_from(st.inode.size).map_err(|_| FsError::corrupt("symlink size"))?;
        if size >= bs as usize {
            return Err(FsError::corrupt(format!(
                "symlink {ino}: size {size} too large"
            )));
        }
        if st.inode.has_flag(flags::INLINE_DATA) {
            return self.inline_file_data(ino);
        }
        if is_fast_symlink(&st.inode, bs) {
            if size > 60 {
                return Err(FsError::corrupt(format!("fast symlink {ino}: size {size}")));
            }
            return Ok(st.inode.block[..size].to_vec());
        }
        self.read_data(ino, 0, size as u32)
    }

    /// Releases an inode whose names, opens and kernel references are all
    /// gone.
    pub fn maybe_release(&mut self, ino: u32) -> FsResult<()> {
        let Some(st) = self.inodes.get(&ino) else {
            return Ok(());
        };
        // The kernel may still open an inode it has looked up (LOOKUP and
        // OPEN are separate requests), so lookup references keep it too,
        // until FORGET.
        if st.inode.links_count == 0 && st.open_count == 0 && st.nlookup == 0 {
            self.free_inode_fully(ino)?;
        }
        Ok(())
    }

    /// Frees every block of `ino` and the inode itself.
    pub fn free_inode_fully(&mut self, ino: u32) -> FsResult<()> {
        let bs = self.vol.geo.block_size;
        let st = self.get(ino)?;
        let is_dir = st.inode.is_dir();
        let has_blocks = !is_fast_symlink(&st.inode, bs)
            && matches!(st.inode.file_type(), S_IFREG | S_IFDIR | S_IFLNK)
            && !st.inode.has_flag(flags::INLINE_DATA);
        if has_blocks {
            self.ensure_map(ino)?;
            let st = self.inodes.get_mut(&ino).expect("loaded");
            let map = st.map.as_mut().expect("loaded");
            let end = map.end().min(u64::from(u32::MAX)) as u32;
            let freed = map.unmap(0, end);
            let meta = std::mem::take(&mut map.meta_blocks);
            for (p, n) in freed {
                self.vol.free_blocks(p, u64::from(n))?;
            }
            for b in meta {
                self.vol.free_blocks(b, 1)?;
            }
        }
        super::ops_xattr::release_xattr_block(self, ino)?;
        let mut st = self.remove_inode(ino).expect("loaded");
        self.vol.adjust_reserve(st.meta_estimate, 0);
        st.meta_estimate = 0;
        let t = now();
        st.inode.dtime = t.sec.clamp(1, i64::from(u32::MAX)) as u32;
        st.inode.links_count = 0;
        st.inode.size = 0;
        st.inode.blocks_raw = 0;
        st.inode.file_acl = 0;
        if st.inode.has_flag(flags::EXTENTS) {
            // An empty extent root, as the kernel leaves it.
            let mut m = super::filemap::FileMap::new(super::filemap::MapKind::Extents);
            m.dirty = true;
            st.map = Some(m);
            super::inode::write_back_map(self.vol, &mut st)?;
            st.inode.blocks_raw = 0;
        } else {
            st.inode.block = [0; 60];
        }
        st.tail.clear();
        st.dir = None;
        super::inode::store_inode(self.vol, &mut st)?;
        self.vol.free_inode(ino, is_dir)?;
        Ok(())
    }
}

/// The root directory's inode.
pub const ROOT_INO: u32 = 2;

/// Writes the orphan chain (s_last_orphan, linked through i_dtime) for the
/// inodes that have no name left but are still open (write-back, under the
/// exclusive gate; `slots`: the loaded inodes).
pub fn write_back_orphans(vol: &mut Volume, slots: &[(u32, Slot<InodeState>)]) -> FsResult<()> {
    let mut orphans: Vec<&(u32, Slot<InodeState>)> = slots
        .iter()
        .filter(|(_, s)| {
            let s = s.lock();
            s.orphan && s.inode.links_count == 0 && !s.evicted
        })
        .collect();
    orphans.sort_unstable_by_key(|(i, _)| *i);
    let mut next = 0u32;
    for (ino, slot) in orphans.iter().rev() {
        let mut st = slot.lock();
        if st.inode.dtime != next {
            st.inode.dtime = next;
            st.dirty = true;
        }
        next = *ino;
        if st.dirty {
            super::write_back_inode(vol, &mut st)?;
        }
    }
    if vol.sb.f.last_orphan != next {
        vol.sb.f.last_orphan = next;
    }
    Ok(())
}

/// Releases (links 0) or trims to its size (still linked) one orphan.
fn process_orphan(state: &mut State<'_>, ino: u32) -> FsResult<()> {
    let st = state.get(ino)?;
    if st.inode.links_count == 0 {
        log::info!("releasing orphan inode {ino}");
        state.free_inode_fully(ino)
    } else {
        let size = st.inode.size;
        st.inode.dtime = 0;
        st.dirty = true;
        if st.inode.is_reg() {
            state.truncate_blocks(ino, size)?;
        }
        Ok(())
    }
}

/// The orphan file's entries (feature orphan_file): processed and cleared.
/// True when there was an orphan file to process (ORPHAN_PRESENT can go).
fn cleanup_orphan_file(state: &mut State<'_>) -> FsResult<bool> {
    let of_ino = state.vol.sb.f.orphan_file_inum;
    if of_ino == 0
        || !state
            .vol
            .feat
            .compat
            .contains(crate::format::features::Compat::ORPHAN_FILE)
    {
        return Ok(false);
    }
    state.ensure_map(of_ino)?;
    let gen = state.get(of_ino)?.inode.generation;
    let seed = state
        .vol
        .csum_seed
        .map(|s| crate::format::csum::inode_seed(s, crate::format::InodeNo(of_ino), gen));
    let runs: Vec<(u32, super::filemap::Run)> = state.inodes[&of_ino]
        .map
        .as_ref()
        .expect("loaded")
        .runs
        .iter()
        .map(|(&l, r)| (l, *r))
        .collect();
    for (_, r) in runs {
        for i in 0..u64::from(r.len) {
            let blk = r.phys + i;
            let listed = match crate::format::orphan::parse_block(&state.vol.read_block(blk)?) {
                Ok(v) => v,
                Err(e) => {
                    log::warn!("orphan file block {blk}: {e}; leaving it to fsck");
                    continue;
                }
            };
            if listed.is_empty() {
                continue;
            }
            for ino in &listed {
                if let Err(e) = process_orphan(state, ino.0) {
                    log::warn!("orphan inode {}: {e}", ino.0);
                }
            }
            let mut data = state.vol.write_block(blk, super::cache::BlockKind::Meta)?;
            crate::format::orphan::encode_empty_block(&mut data)?;
            if let Some(s) = seed {
                crate::format::orphan::set_block_checksum(s, blk, &mut data)?;
            }
        }
    }
    Ok(true)
}

/// At mount: releases the inodes left on the orphan chain (and in the
/// orphan file) by a daemon or kernel that stopped with unlinked files
/// open or truncates unfinished. True when the orphan file was processed.
/// The caller clears `s_last_orphan` (and ORPHAN_PRESENT).
pub fn cleanup_orphans(state: &mut State<'_>) -> FsResult<bool> {
    let orphan_file_done = cleanup_orphan_file(state)?;
    let mut ino = state.vol.sb.f.last_orphan;
    let mut seen = std::collections::HashSet::new();
    while ino != 0 {
        if !seen.insert(ino) || seen.len() > MAX_ORPHANS {
            log::warn!("orphan chain loops or is too long; stopping at inode {ino}");
            break;
        }
        let st = match state.get(ino) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("orphan inode {ino} unreadable: {e}; stopping");
                break;
            }
        };
        let next = st.inode.dtime;
        process_orphan(state, ino)?;
        ino = next;
    }
    Ok(orphan_file_done)
}

impl Fs {
    /// Looks up a name and takes a lookup reference on the result.
    pub fn lookup(&self, parent: u32, name: &[u8]) -> FsResult<Attr> {
        self.op(&[parent], |st| {
            let ino = st.lookup_ino(parent, name)?;
            st.take_lookup_ref(ino)
        })
    }

    /// A lookup of the entry a listing just returned, found by its cookie
    /// (no name index needed, see [`DirState`]): ENOENT if that entry has
    /// gone or now has another name.
    pub fn lookup_listed(&self, parent: u32, cookie: u64, name: &[u8]) -> FsResult<Attr> {
        self.op(&[parent], |st| {
            st.ensure_dir(parent)?;
            let dir = st.inodes[&parent].dir.as_ref().expect("loaded");
            let ino = match dir.at_cookie(cookie) {
                Some(e) if e.name == name => e.ino,
                _ => return Err(FsError::noent()),
            };
            st.take_lookup_ref(ino)
        })
    }

    /// Drops `n` lookup references.
    pub fn forget(&self, ino: u32, n: u64) {
        let r = self.op(&[], |st| {
            if let Some(s) = st.get_loaded(ino)? {
                s.nlookup = s.nlookup.saturating_sub(n);
                if s.nlookup == 0 {
                    st.maybe_release(ino)?;
                }
            }
            Ok(())
        });
        if let Err(e) = r {
            log::error!("releasing inode {ino}: {e}");
        }
    }

    /// mknod/mkdir/create: a new inode, with a lookup reference.
    pub fn create(
        &self,
        parent: u32,
        name: &[u8],
        mode: u16,
        rdev: u32,
        caller: Caller,
    ) -> FsResult<Attr> {
        let a = self.op(&[parent], |st| {
            let a = st.create_node(parent, name, mode, rdev, caller, None)?;
            st.get(a.ino)?.nlookup += 1;
            Ok(a)
        })?;
        self.sync_if_requested()?;
        Ok(a)
    }

    pub fn symlink(
        &self,
        parent: u32,
        name: &[u8],
        target: &[u8],
        caller: Caller,
    ) -> FsResult<Attr> {
        if target.is_empty() {
            return Err(FsError::noent());
        }
        let a = self.op(&[parent], |st| {
            if target.len() >= st.vol.geo.block_size as usize {
                return Err(FsError::nametoolong());
            }
            let a = st.create_node(parent, name, S_IFLNK | 0o777, 0, caller, Some(target))?;
            st.get(a.ino)?.nlookup += 1;
            Ok(a)
        })?;
        self.sync_if_requested()?;
        Ok(a)
    }

    pub fn link(&self, ino: u32, parent: u32, name: &[u8]) -> FsResult<Attr> {
        let a = self.op(&[ino, parent], |st| {
            st.get(parent)?;
            let a = st.link(ino, parent, name)?;
            st.get(ino)?.nlookup += 1;
            Ok(a)
        })?;
        self.sync_if_requested()?;
        Ok(a)
    }

    pub fn unlink(&self, parent: u32, name: &[u8]) -> FsResult<()> {
        self.op(&[parent], |st| st.unlink(parent, name))?;
        self.sync_if_requested()
    }

    pub fn rmdir(&self, parent: u32, name: &[u8]) -> FsResult<()> {
        self.op(&[parent], |st| st.rmdir(parent, name))?;
        self.sync_if_requested()
    }

    /// rename(2); a cross-directory rename takes the rename mutex.
    pub fn rename(
        &self,
        parent: u32,
        name: &[u8],
        newparent: u32,
        newname: &[u8],
        flags: u32,
    ) -> FsResult<()> {
        {
            let vol = self.gate.read();
            self.op_on(&vol, parent != newparent, &[parent, newparent], |st| {
                st.get(parent)?;
                st.get(newparent)?;
                st.rename(parent, name, newparent, newname, flags)
            })?;
        }
        self.sync_if_requested()
    }

    /// Up to `max` entries of directory `ino` after cookie `offset`.
    pub fn readdir(&self, ino: u32, offset: u64, max: usize) -> FsResult<Vec<DirEntryOut>> {
        let mut out = Vec::new();
        self.readdir_with(ino, offset, |e| {
            out.push(DirEntryOut {
                ino: e.ino,
                offset: e.offset,
                file_type: e.file_type,
                name: e.name.to_vec(),
            });
            out.len() >= max
        })?;
        Ok(out)
    }

    /// The entries of directory `ino` after cookie `offset`, handed to
    /// `visit` (under the directory's lock: it should only copy them)
    /// until it returns true.
    pub fn readdir_with(
        &self,
        ino: u32,
        offset: u64,
        mut visit: impl FnMut(DirEntryRef<'_>) -> bool,
    ) -> FsResult<()> {
        self.op(&[ino], |st| {
            st.readdir_with(ino, offset, &mut visit)?;
            if offset == 0 {
                st.touch_atime(ino);
            }
            Ok(())
        })
    }

    pub fn readlink(&self, ino: u32) -> FsResult<Vec<u8>> {
        self.op(&[ino], |st| st.readlink(ino))
    }

    /// Those of `inos` not loaded in memory yet.
    pub fn not_loaded(&self, inos: impl IntoIterator<Item = u32>) -> Vec<u32> {
        inos.into_iter()
            .filter(|&ino| !self.shard(ino).lock().contains_key(&ino))
            .collect()
    }

    /// Starts reading the inode table blocks of `inos`, all at once (a
    /// READDIRPLUS reply describes entries in hash order, scattered over
    /// the table, and would otherwise wait for a read of each in turn).
    pub fn prefetch_inodes(&self, inos: &[u32]) {
        self.gate.read().prefetch_inodes(inos.iter().copied());
    }
}
