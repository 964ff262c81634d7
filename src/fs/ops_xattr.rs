//! Extended attributes: get, set (with XATTR_CREATE / XATTR_REPLACE), list
//! and remove, stored the way ext4 stores them: in the inode's extra space
//! first, the rest in one xattr block (shared blocks are copied on write);
//! POSIX ACLs converted between the VFS format and ext4's on-disk format,
//! and kept in step with the mode as ext4 does: setting an access ACL sets
//! the permission bits (group bits from the mask) and an ACL that says no
//! more than the mode is not stored (`posix_acl_update_mode`); chmod
//! rewrites the owner, mask (or group) and other entries
//! (`posix_acl_chmod`).

use super::cache::BlockKind;
use super::error::{FsError, FsResult};
use super::inode::{update_i_blocks, InodeState};
use super::volume::Volume;
use super::{now, Fs, State};
use crate::format::features::Compat;
use crate::format::xattr::{
    acl_disk_to_xattr, acl_tag, acl_xattr_to_disk, encode_block, encode_disk_acl, encode_ibody,
    ibody_has_magic, index as xindex, parse_block, parse_disk_acl, parse_ibody, parse_xattr_acl,
    place, set_block_checksum, set_block_refcount, verify_block_checksum, AclEntry, Xattr,
};

/// setxattr flags.
pub const XATTR_CREATE: u32 = 1;
pub const XATTR_REPLACE: u32 = 2;

fn is_acl_name(name: &[u8]) -> bool {
    name == b"system.posix_acl_access" || name == b"system.posix_acl_default"
}

const ACL_ACCESS: &[u8] = b"system.posix_acl_access";

/// The permission bits an access ACL gives the mode, and whether the ACL
/// says no more than those bits (the kernel's `posix_acl_equiv_mode`).
fn acl_mode_bits(entries: &[AclEntry]) -> (u16, bool) {
    let (mut bits, mut equiv) = (0u16, true);
    for e in entries {
        let p = e.perm & 0o7;
        match e.tag {
            acl_tag::USER_OBJ => bits |= p << 6,
            acl_tag::GROUP_OBJ => bits |= p << 3,
            acl_tag::OTHER => bits |= p,
            acl_tag::MASK => {
                bits = (bits & !0o070) | (p << 3);
                equiv = false;
            }
            _ => equiv = false,
        }
    }
    (bits, equiv)
}

fn load_xattrs(vol: &Volume, st: &InodeState) -> FsResult<Vec<Xattr>> {
    let mut out = Vec::new();
    for e in parse_ibody(&st.tail, false)
        .map_err(|e| FsError::corrupt(format!("inode {}: {e}", st.ino)))?
    {
        out.push(
            e.to_xattr()
                .map_err(|e| FsError::corrupt(format!("inode {}: {e}", st.ino)))?,
        );
    }
    if st.inode.file_acl != 0 {
        let blk = st.inode.file_acl;
        let data = vol.read_block(blk)?;
        let data = &*data;
        if let Some(seed) = vol.csum_seed {
            verify_block_checksum(seed, blk, data).map_err(|e| {
                FsError::corrupt(format!("inode {}: xattr block {blk}: {e}", st.ino))
            })?;
        }
        let (_, entries) = parse_block(data, false)
            .map_err(|e| FsError::corrupt(format!("inode {}: xattr block {blk}: {e}", st.ino)))?;
        for e in entries {
            out.push(
                e.to_xattr()
                    .map_err(|e| FsError::corrupt(format!("inode {}: {e}", st.ino)))?,
            );
        }
    }
    Ok(out)
}

impl State<'_> {
    fn ensure_xattrs(&mut self, ino: u32) -> FsResult<&mut Vec<Xattr>> {
        let st = self.get(ino)?;
        if st.xattrs.is_none() {
            let st = self.inodes.get(&ino).expect("loaded");
            let list = load_xattrs(self.vol, st)?;
            self.inodes.get_mut(&ino).expect("loaded").xattrs = Some(list);
        }
        Ok(self
            .inodes
            .get_mut(&ino)
            .expect("loaded")
            .xattrs
            .as_mut()
            .expect("loaded"))
    }

    pub fn getxattr(&mut self, ino: u32, name: &[u8]) -> FsResult<Vec<u8>> {
        let list = self.ensure_xattrs(ino)?;
        let x = list
            .iter()
            .find(|x| x.full_name().as_deref() == Some(name))
            .ok_or_else(FsError::nodata)?;
        if is_acl_name(name) {
            return acl_disk_to_xattr(&x.value)
                .map_err(|e| FsError::corrupt(format!("inode {ino}: bad ACL: {e}")));
        }
        Ok(x.value.clone())
    }

    pub fn listxattr(&mut self, ino: u32) -> FsResult<Vec<u8>> {
        let list = self.ensure_xattrs(ino)?;
        let mut out = Vec::new();
        for x in list.iter() {
            if x.index == xindex::SYSTEM && x.name == b"data" {
                continue; // inline data's continuation, not a user-visible attribute
            }
            if let Some(n) = x.full_name() {
                out.extend_from_slice(&n);
                out.push(0);
            }
        }
        Ok(out)
    }

    pub fn setxattr(&mut self, ino: u32, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
        if self.vol.read_only {
            return Err(FsError::rofs());
        }
        if !self.vol.feat.compat.contains(Compat::EXT_ATTR) {
            return Err(FsError::opnotsupp());
        }
        if name.len() > 255 + 32 {
            return Err(FsError::range());
        }
        let stored = if is_acl_name(name) {
            acl_xattr_to_disk(value).map_err(|_| FsError::inval())?
        } else {
            value.to_vec()
        };
        // An access ACL sets the mode's permission bits; one equal to the
        // mode (or empty) is not stored, and removes any stored one.
        let mut new_bits = None;
        if name == ACL_ACCESS {
            let entries = parse_xattr_acl(value).map_err(|_| FsError::inval())?;
            let (bits, equiv) = acl_mode_bits(&entries);
            if !entries.is_empty() {
                new_bits = Some(bits);
            }
            if entries.is_empty() || equiv {
                if flags & XATTR_REPLACE != 0
                    && !self
                        .ensure_xattrs(ino)?
                        .iter()
                        .any(|x| x.index == xindex::POSIX_ACL_ACCESS)
                {
                    return Err(FsError::nodata());
                }
                self.remove_access_acl(ino)?;
                let st = self.inodes.get_mut(&ino).expect("loaded");
                if let Some(bits) = new_bits {
                    st.inode.mode = (st.inode.mode & !0o777) | bits;
                }
                st.inode.ctime = now();
                st.dirty = true;
                return Ok(());
            }
        }
        let new = Xattr::from_full_name(name, stored).ok_or_else(FsError::opnotsupp)?;
        // ext4 stores the two POSIX ACLs under their own index with an
        // empty name; any other empty name ("user.") is invalid.
        if (new.name.is_empty() && !is_acl_name(name)) || new.name.len() > 255 {
            return Err(if new.name.is_empty() {
                FsError::inval()
            } else {
                FsError::range()
            });
        }
        let bs = self.vol.block_size();
        // Like ext4 without ea_inode: a value that cannot fit in one
        // block is out of space (E2BIG is the VFS's, for > 64 KiB).
        if new.value.len() > bs {
            return Err(FsError::nospc());
        }
        let isize = self.vol.geo.inode_size as usize;
        let extra = usize::from(self.get(ino)?.inode.extra_isize);
        let area = if isize > 128 { isize - 128 - extra } else { 0 };
        let list = self.ensure_xattrs(ino)?;
        let pos = list
            .iter()
            .position(|x| x.index == new.index && x.name == new.name);
        match (pos, flags & (XATTR_CREATE | XATTR_REPLACE)) {
            (Some(_), XATTR_CREATE) => return Err(FsError::exist()),
            (None, XATTR_REPLACE) => return Err(FsError::nodata()),
            _ => {}
        }
        let mut candidate = list.clone();
        match pos {
            Some(i) => candidate[i] = new,
            None => candidate.push(new),
        }
        if place(&candidate, area, bs).is_err() {
            return Err(FsError::nospc());
        }
        *list = candidate;
        let st = self.inodes.get_mut(&ino).expect("loaded");
        st.xattrs_dirty = true;
        if let Some(bits) = new_bits {
            st.inode.mode = (st.inode.mode & !0o777) | bits;
        }
        st.inode.ctime = now();
        st.dirty = true;
        Ok(())
    }

    pub fn remove_system_data(&mut self, ino: u32) -> FsResult<()> {
        let list = self.ensure_xattrs(ino)?;
        list.retain(|x| !(x.index == xindex::SYSTEM && x.name == b"data"));
        let st = self.inodes.get_mut(&ino).expect("loaded");
        st.xattrs_dirty = true;
        Ok(())
    }

    /// Drops the stored access ACL, if any.
    fn remove_access_acl(&mut self, ino: u32) -> FsResult<()> {
        let list = self.ensure_xattrs(ino)?;
        let before = list.len();
        list.retain(|x| x.index != xindex::POSIX_ACL_ACCESS);
        if list.len() != before {
            self.inodes.get_mut(&ino).expect("loaded").xattrs_dirty = true;
        }
        Ok(())
    }

    /// After a mode change: rewrite the access ACL's owner, mask (or
    /// group) and other entries from the new permission bits, as ext4's
    /// chmod does. Nothing to do without an access ACL.
    pub fn chmod_acl(&mut self, ino: u32, mode: u16) -> FsResult<()> {
        let st = self.get(ino)?;
        if st.xattrs.is_none() && st.inode.file_acl == 0 && !ibody_has_magic(&st.tail) {
            return Ok(());
        }
        let list = self.ensure_xattrs(ino)?;
        let Some(x) = list
            .iter_mut()
            .find(|x| x.index == xindex::POSIX_ACL_ACCESS)
        else {
            return Ok(());
        };
        let mut entries = parse_disk_acl(&x.value)
            .map_err(|e| FsError::corrupt(format!("inode {ino}: bad ACL: {e}")))?;
        let has_mask = entries.iter().any(|e| e.tag == acl_tag::MASK);
        for e in entries.iter_mut() {
            match e.tag {
                acl_tag::USER_OBJ => e.perm = (mode >> 6) & 0o7,
                acl_tag::GROUP_OBJ if !has_mask => e.perm = (mode >> 3) & 0o7,
                acl_tag::MASK => e.perm = (mode >> 3) & 0o7,
                acl_tag::OTHER => e.perm = mode & 0o7,
                _ => {}
            }
        }
        x.value = encode_disk_acl(&entries)
            .map_err(|e| FsError::corrupt(format!("inode {ino}: bad ACL: {e}")))?;
        self.inodes.get_mut(&ino).expect("loaded").xattrs_dirty = true;
        Ok(())
    }

    pub fn removexattr(&mut self, ino: u32, name: &[u8]) -> FsResult<()> {
        if self.vol.read_only {
            return Err(FsError::rofs());
        }
        let list = self.ensure_xattrs(ino)?;
        let pos = list
            .iter()
            .position(|x| x.full_name().as_deref() == Some(name))
            .ok_or_else(FsError::nodata)?;
        list.remove(pos);
        let st = self.inodes.get_mut(&ino).expect("loaded");
        st.xattrs_dirty = true;
        st.inode.ctime = now();
        st.dirty = true;
        Ok(())
    }
}

/// Drops this inode's reference to its xattr block (freeing the block when
/// it was the last).
pub fn release_xattr_block(state: &mut State, ino: u32) -> FsResult<()> {
    let blk = state.get(ino)?.inode.file_acl;
    if blk == 0 {
        return Ok(());
    }
    drop_block_ref(state.vol, blk)?;
    let st = state.inodes.get_mut(&ino).expect("loaded");
    st.inode.file_acl = 0;
    st.dirty = true;
    Ok(())
}

fn drop_block_ref(vol: &Volume, blk: u64) -> FsResult<()> {
    let seed = vol.csum_seed;
    // Read, count down and store under one hold of the block: inodes
    // sharing the block may be released concurrently.
    let last = {
        let mut data = vol.write_block(blk, BlockKind::Meta)?;
        let refcount = match parse_block(&data, false) {
            Ok((h, _)) => h.refcount,
            Err(e) => {
                log::warn!("xattr block {blk} unreadable ({e}); freeing it");
                1
            }
        };
        if refcount > 1 {
            set_block_refcount(&mut data, refcount - 1)?;
            if let Some(s) = seed {
                set_block_checksum(s, blk, &mut data)?;
            }
        }
        refcount <= 1
    };
    if last {
        vol.free_blocks(blk, 1)?;
    }
    Ok(())
}

/// Stores a changed xattr list: in-inode area, then the block.
pub fn write_back_xattrs(vol: &Volume, st: &mut InodeState) -> FsResult<()> {
    if !st.xattrs_dirty {
        return Ok(());
    }
    let list = st.xattrs.clone().unwrap_or_default();
    let bs = vol.block_size();
    let isize = vol.geo.inode_size as usize;
    let area_len = if isize > 128 {
        isize - 128 - usize::from(st.inode.extra_isize)
    } else {
        0
    };
    let placed = place(&list, area_len, bs).map_err(|_| FsError::nospc())?;
    let mut area = vec![0u8; area_len];
    encode_ibody(&placed.ibody, &mut area)?;
    st.tail = area;
    let old = st.inode.file_acl;
    if placed.block.is_empty() {
        if old != 0 {
            drop_block_ref(vol, old)?;
            st.inode.file_acl = 0;
        }
    } else {
        let shared = old != 0
            && parse_block(&vol.read_block(old)?, false)
                .map(|(h, _)| h.refcount > 1)
                .unwrap_or(false);
        let blk = if old != 0 && !shared {
            old
        } else {
            if shared {
                drop_block_ref(vol, old)?;
            }
            let goal = vol.inode_table_of(st.ino);
            vol.alloc_blocks_wb(goal, 1)?.0
        };
        let seed = vol.csum_seed;
        let mut data = vol.new_block(blk, BlockKind::Meta)?;
        encode_block(&placed.block, 1, &mut data)?;
        if let Some(s) = seed {
            set_block_checksum(s, blk, &mut data)?;
        }
        st.inode.file_acl = blk;
    }
    if st.map.is_some() {
        update_i_blocks(vol, st);
    } else {
        // The mapping is not loaded (device nodes, fast symlinks, or a
        // file reloaded for its xattrs alone): i_blocks keeps the data
        // blocks it counts and changes by the xattr block only.
        let bs = vol.geo.block_size;
        let per_block = u64::from(bs / 512);
        let data = st
            .inode
            .blocks_512(bs)
            .saturating_sub(u64::from(old != 0) * per_block);
        let xattr = u64::from(st.inode.file_acl != 0) * per_block;
        st.inode.set_blocks_512(data + xattr, bs);
    }
    st.xattrs_dirty = false;
    st.dirty = true;
    Ok(())
}

impl Fs {
    pub fn getxattr(&self, ino: u32, name: &[u8]) -> FsResult<Vec<u8>> {
        self.op(&[ino], |st| st.getxattr(ino, name))
    }
    pub fn listxattr(&self, ino: u32) -> FsResult<Vec<u8>> {
        self.op(&[ino], |st| st.listxattr(ino))
    }
    pub fn setxattr(&self, ino: u32, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
        self.op(&[ino], |st| st.setxattr(ino, name, value, flags))?;
        self.sync_if_requested()
    }
    pub fn removexattr(&self, ino: u32, name: &[u8]) -> FsResult<()> {
        self.op(&[ino], |st| st.removexattr(ino, name))?;
        self.sync_if_requested()
    }
}
