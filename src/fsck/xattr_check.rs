//! Extended attribute checks of pass 1: the in-inode area (after
//! `i_extra_isize`) and the attribute block named by `i_file_acl`, after
//! e2fsck's `check_inode_extra_space`, `check_ea_in_inode` and
//! `check_ext_attr`.
//!
//! Both walk the entry table with a region map: the header, every entry,
//! every value (rounded up to 4 bytes) and the terminator must lie inside
//! the area and must not overlap ("allocation collision"). Entry hashes
//! must match the name and value (the unsigned and the legacy signed
//! variant are both accepted; a 0 hash is allowed in the inode). A bad
//! in-inode area is cleared whole (magic zeroed); a bad block is detached
//! from the inode (`i_file_acl` = 0).

use crate::format::bytes::{get_u16, get_u32, get_u8};
use crate::format::xattr::{entry_hash, entry_hash_signed, XATTR_MAGIC};

use super::ask::Ask;
use super::ino::{InodeRead, InodeWrite};
use super::problem::{Code, PCtx};

/// Entry header size.
const ENTRY_LEN: usize = 16;

/// Rounds up to 4.
fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// A set of disjoint byte ranges inside `0..max` (e2fsck's region_t).
struct Region {
    max: usize,
    used: Vec<(usize, usize)>,
}

impl Region {
    fn new(max: usize) -> Region {
        Region {
            max,
            used: Vec::new(),
        }
    }
    /// Claims `start..start+len`; false on overlap or out of range.
    fn alloc(&mut self, start: usize, len: usize) -> bool {
        let Some(end) = start.checked_add(len) else {
            return false;
        };
        if end > self.max {
            return false;
        }
        if self.used.iter().any(|&(s, e)| start < e && s < end) {
            return false;
        }
        self.used.push((start, end));
        true
    }
}

/// One raw entry.
struct RawEntry<'a> {
    name_len: usize,
    name_index: u8,
    value_offs: usize,
    value_inum: u32,
    value_size: usize,
    hash: u32,
    name: &'a [u8],
}

fn read_entry(area: &[u8], off: usize) -> Option<RawEntry<'_>> {
    let name_len = usize::from(get_u8(area, off)?);
    let name = area
        .get(off + ENTRY_LEN..off + ENTRY_LEN + name_len)
        .unwrap_or(&[]);
    Some(RawEntry {
        name_len,
        name_index: get_u8(area, off + 1)?,
        value_offs: usize::from(get_u16(area, off + 2)?),
        value_inum: get_u32(area, off + 4)?,
        value_size: usize::try_from(get_u32(area, off + 8)?).unwrap_or(usize::MAX),
        hash: get_u32(area, off + 12)?,
        name,
    })
}

fn hash_ok(stored: u32, name: &[u8], value: &[u8]) -> bool {
    stored == entry_hash(name, value) || stored == entry_hash_signed(name, value)
}

/// What an inode's in-inode attributes told us.
#[derive(Debug, Default)]
pub struct IbodyResult {
    /// EA inodes referenced by entries.
    pub ea_inode_refs: Vec<u32>,
    /// Blocks charged to the inode for values in EA inodes.
    pub quota_blocks: u64,
    /// EA inodes whose EA_INODE flag must be set.
    pub set_ea_flag: Vec<u32>,
}

/// The outcome of `check_large_ea_inode`.
pub enum LargeEa {
    /// Valid: blocks charged to the parent.
    Ok(u64),
    /// Valid once the EA_INODE flag is set on it.
    SetFlag(u64),
    Bad(Code, u64),
}

/// What the valid EA inodes of one attribute area add up to.
#[derive(Default)]
struct EaInodeRefs {
    refs: Vec<u32>,
    quota: u64,
    set_flag: Vec<u32>,
}

impl EaInodeRefs {
    /// Records the verdict on EA inode `inum`; returns the problem when it
    /// is not valid.
    fn charge(&mut self, inum: u32, verdict: LargeEa) -> Option<(Code, u64)> {
        match verdict {
            LargeEa::Ok(q) => {
                self.quota += q;
                self.refs.push(inum);
            }
            LargeEa::SetFlag(q) => {
                self.quota += q;
                self.refs.push(inum);
                self.set_flag.push(inum);
            }
            LargeEa::Bad(c, n) => return Some((c, n)),
        }
        None
    }
}

/// `check_large_ea_inode`: an entry whose value lives in inode `inum`.
#[allow(clippy::too_many_arguments)]
pub fn check_large_ea_inode(
    fs: &super::fs::Fs,
    ask: &mut dyn Ask,
    parent: u32,
    parent_gen: u32,
    name: &[u8],
    inum: u32,
    value_size: usize,
    e_hash: u32,
) -> LargeEa {
    if inum < fs.first_ino || inum > fs.inodes_count {
        return LargeEa::Bad(Code::AttrValueEaInode, u64::from(inum));
    }
    let ea = fs.read_inode(inum);
    let stored_hash = u32::from_le_bytes([ea[8], ea[9], ea[10], ea[11]]);
    let (h1, h2) = crate::format::xattr::ea_inode_entry_hash(name, stored_hash);
    let quota;
    if e_hash == h1 || e_hash == h2 {
        quota = (value_size as u64).div_ceil(fs.bs64 << fs.cluster_bits) << fs.cluster_bits;
    } else if ea.mtime() == parent && ea.generation() == parent_gen {
        quota = 0;
    } else if !ea.has_flag(super::ino::fl::EA_INODE) {
        return LargeEa::Bad(Code::AttrValueEaInode, u64::from(inum));
    } else {
        return LargeEa::Bad(Code::AttrHash, u64::from(e_hash));
    }
    if !ea.has_flag(super::ino::fl::EA_INODE) {
        let p = PCtx {
            ino: parent,
            num: u64::from(inum),
            ..PCtx::default()
        };
        if ask.fix(Code::AttrSetEaInodeFl, &p) {
            return LargeEa::SetFlag(quota);
        }
        return LargeEa::Bad(Code::AttrNoEaInodeFl, u64::from(inum));
    }
    LargeEa::Ok(quota)
}

/// `check_inode_extra_space`: checks `i_extra_isize` and the in-inode
/// attributes of `raw` (modified in place when fixed; returns whether it
/// was modified).
#[allow(clippy::too_many_arguments)]
pub fn check_inode_extra_space(
    fs: &super::fs::Fs,
    ask: &mut dyn Ask,
    ino: u32,
    raw: &mut Vec<u8>,
    inode_size: usize,
    want_extra_isize: u16,
    result: &mut IbodyResult,
) -> bool {
    if inode_size <= 128 {
        return false;
    }
    let mut dirty = false;
    let min = 4usize;
    let max = inode_size - 128;
    let extra = usize::from(raw.extra_isize(inode_size));
    if extra != 0 && (extra < min || extra > max || extra & 3 != 0) {
        let p = PCtx {
            ino,
            num: extra as u64,
            ..PCtx::default()
        };
        if !ask.fix(Code::ExtraIsize, &p) {
            return false;
        }
        let v = if extra < min || extra > max {
            usize::from(want_extra_isize).clamp(min, max) & !3
        } else {
            pad4(extra)
        };
        raw.set_extra_isize(u16::try_from(v).unwrap_or(32));
        dirty = true;
    }
    let extra = usize::from(raw.extra_isize(inode_size));
    if extra + 4 >= max {
        return dirty;
    }
    let hstart = 128 + extra;
    if get_u32(raw, hstart) == Some(XATTR_MAGIC) {
        dirty |= check_ea_in_inode(fs, ask, ino, raw, hstart, inode_size, result);
    }
    // Timestamps with the old (invalid) pre-1970 encoding: only meaningful
    // before 2242; the check is a fix e2fsck offers as NO_OK.
    dirty
}

#[allow(clippy::too_many_arguments)]
fn check_ea_in_inode(
    fs: &super::fs::Fs,
    ask: &mut dyn Ask,
    ino: u32,
    raw: &mut Vec<u8>,
    hstart: usize,
    inode_size: usize,
    result: &mut IbodyResult,
) -> bool {
    let storage = inode_size - hstart;
    let area = raw[hstart..inode_size].to_vec();
    let mut region = Region::new(storage);
    let mut problem: Option<(Code, u64)> = None;
    let mut remain = storage.saturating_sub(4);
    let mut off = 4usize;
    let mut ea_inodes = EaInodeRefs::default();
    region.alloc(0, 4);
    loop {
        if remain < ENTRY_LEN {
            break;
        }
        if get_u32(&area, off).is_none_or(|w| w == 0) {
            break;
        }
        let Some(e) = read_entry(&area, off) else {
            problem = Some((Code::InodeEaAllocCollision, 0));
            break;
        };
        if !region.alloc(off, pad4(ENTRY_LEN + e.name_len)) {
            problem = Some((Code::InodeEaAllocCollision, 0));
            break;
        }
        remain -= ENTRY_LEN;
        if pad4(e.name_len) > remain {
            problem = Some((Code::AttrNameLen, e.name_len as u64));
            break;
        }
        remain -= pad4(e.name_len);
        if e.value_inum == 0 {
            if e.value_size > remain {
                problem = Some((Code::AttrValueSize, e.value_size as u64));
                break;
            }
            if e.value_size > 0 && !region.alloc(4 + e.value_offs, pad4(e.value_size)) {
                problem = Some((Code::InodeEaAllocCollision, 0));
                break;
            }
            let vstart = 4 + e.value_offs;
            let value = area.get(vstart..vstart + pad4(e.value_size)).unwrap_or(&[]);
            if e.hash != 0 && !hash_ok(e.hash, e.name, value) {
                problem = Some((Code::AttrHash, u64::from(e.hash)));
                break;
            }
            remain -= e.value_size;
        } else {
            let verdict = check_large_ea_inode(
                fs,
                ask,
                ino,
                raw.generation(),
                e.name,
                e.value_inum,
                e.value_size,
                e.hash,
            );
            if let Some(bad) = ea_inodes.charge(e.value_inum, verdict) {
                problem = Some(bad);
                break;
            }
        }
        off += pad4(ENTRY_LEN + e.name_len);
    }
    if problem.is_none() && !region.alloc(off, 4) {
        problem = Some((Code::InodeEaAllocCollision, 0));
    }
    if let Some((code, num)) = problem {
        let p = PCtx {
            ino,
            num,
            ..PCtx::default()
        };
        if ask.fix(code, &p) {
            raw[hstart..hstart + 4].iter_mut().for_each(|b| *b = 0);
            return true;
        }
    }
    result.ea_inode_refs.extend(ea_inodes.refs);
    result.quota_blocks += ea_inodes.quota;
    result.set_ea_flag.extend(ea_inodes.set_flag);
    false
}

/// The verdict on an extended attribute block.
#[derive(Debug)]
pub enum EaBlock {
    /// Keep it: it is referenced (and counted in i_blocks).
    Keep {
        refcount: u32,
        csum_bad: bool,
        ea_inode_refs: Vec<u32>,
        /// Blocks charged to each inode using it (1 + EA inode values).
        quota_blocks: u64,
        set_ea_flag: Vec<u32>,
    },
    /// Detach it from the inode (`i_file_acl` = 0).
    Clear,
    /// Not kept, not cleared (answered no): not counted.
    Ignore,
}

/// `check_ext_attr` on a block not seen before: validates `block` (number
/// `blk`) for inode `ino`.
#[allow(clippy::too_many_arguments)]
pub fn check_ea_block(
    fs: &super::fs::Fs,
    ask: &mut dyn Ask,
    ino: u32,
    ino_gen: u32,
    blk: u64,
    block: &[u8],
    csum_ok: bool,
) -> EaBlock {
    let p = PCtx {
        ino,
        blk,
        ..PCtx::default()
    };
    let bs = block.len();
    if get_u32(block, 0) != Some(XATTR_MAGIC) && ask.fix(Code::BadEaBlock, &p) {
        return EaBlock::Clear;
    }
    if get_u32(block, 8) != Some(1) && ask.fix(Code::EaMultiBlock, &p) {
        return EaBlock::Clear;
    }
    let mut region = Region::new(bs);
    if !region.alloc(0, 32) && ask.fix(Code::EaAllocCollision, &p) {
        return EaBlock::Clear;
    }
    // The block itself is charged as one cluster.
    let mut ea_inodes = EaInodeRefs {
        quota: 1 << fs.cluster_bits,
        ..EaInodeRefs::default()
    };
    let mut off = 32usize;
    let mut steps = 0usize;
    while off + 4 <= bs && get_u32(block, off).is_some_and(|w| w != 0) && steps < bs {
        steps += 1;
        let Some(e) = read_entry(block, off) else {
            if ask.fix(Code::EaAllocCollision, &p) {
                return EaBlock::Clear;
            }
            break;
        };
        if !region.alloc(off, pad4(ENTRY_LEN + e.name_len)) {
            if ask.fix(Code::EaAllocCollision, &p) {
                return EaBlock::Clear;
            }
            break;
        }
        if e.name_index == 0 {
            if ask.fix(Code::EaBadName, &p) {
                return EaBlock::Clear;
            }
            break;
        }
        if e.value_inum == 0 {
            if e.value_offs + e.value_size > bs {
                if ask.fix(Code::EaBadValue, &p) {
                    return EaBlock::Clear;
                }
                break;
            }
            if e.value_size > 0
                && !region.alloc(e.value_offs, pad4(e.value_size))
                && ask.fix(Code::EaAllocCollision, &p)
            {
                return EaBlock::Clear;
            }
            let value = block
                .get(e.value_offs..(e.value_offs + pad4(e.value_size)).min(bs))
                .unwrap_or(&[]);
            if !hash_ok(e.hash, e.name, value) {
                let ph = PCtx {
                    num: u64::from(e.hash),
                    ..p.clone()
                };
                if ask.fix(Code::AttrHash, &ph) {
                    return EaBlock::Clear;
                }
            }
        } else {
            let verdict = check_large_ea_inode(
                fs,
                ask,
                ino,
                ino_gen,
                e.name,
                e.value_inum,
                e.value_size,
                e.hash,
            );
            if let Some((c, n)) = ea_inodes.charge(e.value_inum, verdict) {
                let pe = PCtx {
                    num: n,
                    ..p.clone()
                };
                if ask.fix(c, &pe) {
                    return EaBlock::Clear;
                }
            }
        }
        off += pad4(ENTRY_LEN + e.name_len);
    }
    if !region.alloc(off, 4) && ask.fix(Code::EaAllocCollision, &p) {
        return EaBlock::Clear;
    }
    EaBlock::Keep {
        refcount: get_u32(block, 4).unwrap_or(0),
        csum_bad: !csum_ok,
        ea_inode_refs: ea_inodes.refs,
        quota_blocks: ea_inodes.quota,
        set_ea_flag: ea_inodes.set_flag,
    }
}

/// The size of an inode's inline data: the 60 bytes of `i_block` plus the
/// value of its in-inode `system.data` attribute; `None` when the
/// attribute is missing or the area is unreadable.
pub fn inline_data_size(raw: &[u8], inode_size: usize) -> Option<usize> {
    let v = inline_data_ea(raw, inode_size)?;
    Some(60 + v.len())
}

/// The value of the in-inode `system.data` attribute.
pub fn inline_data_ea(raw: &[u8], inode_size: usize) -> Option<&[u8]> {
    if inode_size <= 128 {
        return None;
    }
    let extra = usize::from(raw.extra_isize(inode_size));
    let hstart = 128 + extra;
    if hstart + 4 > inode_size || get_u32(raw, hstart)? != XATTR_MAGIC {
        return None;
    }
    let area = raw.get(hstart..inode_size)?;
    let mut off = 4usize;
    let mut steps = 0;
    while off + ENTRY_LEN <= area.len() && get_u32(area, off)? != 0 && steps < 256 {
        steps += 1;
        let e = read_entry(area, off)?;
        if e.name_index == 7 && e.name == b"data" && e.value_inum == 0 {
            let vs = 4 + e.value_offs;
            return area.get(vs..vs + e.value_size);
        }
        off += pad4(ENTRY_LEN + e.name_len);
    }
    None
}

/// The value of attribute (`index`, `name`) of an inode: in the inode
/// body first, then in its attribute block `block` (if given). Values in
/// EA inodes are not followed (`None`).
pub fn find_ea<'a>(
    raw: &'a [u8],
    inode_size: usize,
    block: Option<&'a [u8]>,
    index: u8,
    name: &[u8],
) -> Option<&'a [u8]> {
    let scan = |area: &'a [u8], first: usize, base: usize| -> Option<&'a [u8]> {
        let mut off = first;
        let mut steps = 0;
        while off + ENTRY_LEN <= area.len() && get_u32(area, off)? != 0 && steps < 1024 {
            steps += 1;
            let e = read_entry(area, off)?;
            if e.name_index == index && e.name == name {
                if e.value_inum != 0 {
                    return None;
                }
                let vs = base + e.value_offs;
                return area.get(vs..vs.checked_add(e.value_size)?);
            }
            off += pad4(ENTRY_LEN + e.name_len);
        }
        None
    };
    if inode_size > 128 {
        let extra = usize::from(raw.extra_isize(inode_size));
        let hstart = 128 + extra;
        if let Some(area) = raw.get(hstart..inode_size) {
            if get_u32(area, 0) == Some(XATTR_MAGIC) {
                if let Some(v) = scan(area, 4, 4) {
                    return Some(v);
                }
            }
        }
    }
    let b = block?;
    if get_u32(b, 0) != Some(XATTR_MAGIC) {
        return None;
    }
    // Block entries start after the 32-byte header; value offsets count
    // from the start of the block.
    scan(b, 32, 0)
}

/// Whether an attribute block has an attribute with this index and name.
pub fn block_has_attr(block: &[u8], index: u8, name: &[u8]) -> bool {
    if get_u32(block, 0) != Some(XATTR_MAGIC) {
        return false;
    }
    let mut off = 32usize;
    let mut steps = 0;
    while off + ENTRY_LEN <= block.len()
        && get_u32(block, off).is_some_and(|w| w != 0)
        && steps < 4096
    {
        steps += 1;
        let Some(e) = read_entry(block, off) else {
            return false;
        };
        if e.name_index == index && e.name == name {
            return true;
        }
        off += pad4(ENTRY_LEN + e.name_len);
    }
    false
}

/// Overwrites the value of the in-inode `system.data` attribute with
/// `value` (same length only). Returns whether it was written.
pub fn set_inline_data_ea(raw: &mut [u8], inode_size: usize, value: &[u8]) -> bool {
    if inode_size <= 128 {
        return false;
    }
    let extra = usize::from(raw.extra_isize(inode_size));
    let hstart = 128 + extra;
    if hstart + 4 > inode_size || get_u32(raw, hstart) != Some(XATTR_MAGIC) {
        return false;
    }
    let mut off = 4usize;
    let mut steps = 0;
    let area_len = inode_size - hstart;
    while off + ENTRY_LEN <= area_len && steps < 256 {
        steps += 1;
        let Some(e) = read_entry(&raw[hstart..inode_size], off) else {
            return false;
        };
        if get_u32(raw, hstart + off) == Some(0) {
            return false;
        }
        if e.name_index == 7 && e.name == b"data" && e.value_inum == 0 {
            if e.value_size != value.len() {
                return false;
            }
            let vs = hstart + 4 + e.value_offs;
            if vs + value.len() > inode_size {
                return false;
            }
            raw[vs..vs + value.len()].copy_from_slice(value);
            return true;
        }
        off += pad4(ENTRY_LEN + e.name_len);
    }
    false
}
