//! File mappings and file contents: extent trees and block maps turned into
//! runs of blocks, inline data, [`ImageView::read_file`] and
//! [`ImageView::read_link`].
//!
//! Which mapping an inode uses:
//! - `INLINE_DATA_FL`: no blocks; the data is `i_block` (60 bytes) followed
//!   by the value of the in-inode `system.data` attribute
//!   ([`ImageView::inline_data`]);
//! - character and block devices, FIFOs, sockets and fast symlinks: no
//!   blocks (their `i_block` holds a device number or the link target);
//! - `EXTENTS_FL`: an extent tree rooted in `i_block`, tail checksums
//!   verified with metadata_csum;
//! - otherwise: a direct/indirect block map.

use super::super::error::{FormatError, Result};
use super::super::extent::walk_extent_tree;
use super::super::features::Incompat;
use super::super::indirect::{parse_i_block, walk_block_map};
use super::super::inode::{flags, Inode, I_BLOCK_LEN, S_IFDIR, S_IFLNK, S_IFREG};
use super::super::xattr::index as xattr_index;
use super::ImageView;

/// The largest read [`ImageView::read_file`] serves in one call.
pub const MAX_READ_LEN: usize = 256 << 20;
/// The longest symlink target (`PATH_MAX`, terminating NUL excluded).
pub const MAX_SYMLINK_LEN: u64 = 4095;

/// A run of `len` logical blocks from `logical` mapped to `len` physical
/// blocks from `phys`; `unwritten` runs read as zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRun {
    pub logical: u32,
    pub phys: u64,
    pub len: u32,
    pub unwritten: bool,
}

impl BlockRun {
    /// One past the last logical block.
    pub fn logical_end(&self) -> u64 {
        u64::from(self.logical) + u64::from(self.len)
    }
}

/// Everything a file's mapping covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileMap {
    /// Data runs in logical order, adjacent runs merged.
    pub runs: Vec<BlockRun>,
    /// Mapping metadata: extent tree blocks or indirect blocks.
    pub meta_blocks: Vec<u64>,
}

impl FileMap {
    /// Mapped data blocks (unwritten ones included).
    pub fn data_blocks(&self) -> u64 {
        self.runs.iter().map(|r| u64::from(r.len)).sum()
    }

    /// The run holding logical block `lblk`, if any.
    pub fn find(&self, lblk: u32) -> Option<&BlockRun> {
        let i = self.runs.partition_point(|r| r.logical <= lblk);
        let run = self.runs.get(i.checked_sub(1)?)?;
        (u64::from(lblk) < run.logical_end()).then_some(run)
    }

    fn push(&mut self, run: BlockRun) {
        if let Some(last) = self.runs.last_mut() {
            let contiguous = last.logical_end() == u64::from(run.logical)
                && last.phys.checked_add(u64::from(last.len)) == Some(run.phys)
                && last.unwritten == run.unwritten;
            if contiguous {
                if let Some(len) = last.len.checked_add(run.len) {
                    last.len = len;
                    return;
                }
            }
        }
        self.runs.push(run);
    }
}

/// What an inode's `i_block` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Inline data (`INLINE_DATA_FL`).
    Inline,
    /// Nothing mapped: devices, FIFOs, sockets, fast symlinks.
    NoBlocks,
    Extents,
    BlockMap,
}

impl ImageView<'_> {
    pub(crate) fn layout(&self, inode: &Inode) -> Result<Layout> {
        if inode.has_flag(flags::INLINE_DATA) {
            if !self.has_incompat(Incompat::INLINE_DATA) {
                return Err(FormatError::corrupt(
                    "inode",
                    "inline data flag set without the inline_data feature",
                ));
            }
            return Ok(Layout::Inline);
        }
        match inode.file_type() {
            S_IFREG | S_IFDIR => {}
            S_IFLNK if is_fast_symlink(inode) => return Ok(Layout::NoBlocks),
            S_IFLNK => {}
            _ => return Ok(Layout::NoBlocks),
        }
        if inode.has_flag(flags::EXTENTS) {
            if !self.has_incompat(Incompat::EXTENTS) {
                return Err(FormatError::corrupt(
                    "inode",
                    "extents flag set without the extent feature",
                ));
            }
            Ok(Layout::Extents)
        } else {
            Ok(Layout::BlockMap)
        }
    }

    /// The data runs of inode `ino` (empty for inline data, devices, FIFOs,
    /// sockets and fast symlinks): see [`ImageView::file_map`].
    pub fn file_blocks(&self, ino: u32, inode: &Inode) -> Result<Vec<BlockRun>> {
        Ok(self.file_map(ino, inode)?.runs)
    }

    /// The whole mapping of inode `ino`: data runs and the tree or indirect
    /// blocks. Extent tail checksums are verified with metadata_csum; every
    /// pointer is checked against the file-system size.
    pub fn file_map(&self, ino: u32, inode: &Inode) -> Result<FileMap> {
        let mut map = FileMap::default();
        let read = |b: super::super::PhysBlock, buf: &mut [u8]| -> Result<()> {
            let src = self.block(b.0)?;
            buf.copy_from_slice(src);
            Ok(())
        };
        match self.layout(inode)? {
            Layout::Inline | Layout::NoBlocks => {}
            Layout::Extents => {
                let walk = walk_extent_tree(
                    &inode.block,
                    self.block_size,
                    self.blocks_count,
                    self.csum_seed_for(ino, inode),
                    read,
                )?;
                map.meta_blocks = walk.tree_blocks.iter().map(|b| b.0).collect();
                for e in &walk.extents {
                    map.push(BlockRun {
                        logical: e.logical.0,
                        phys: e.start.0,
                        len: u32::from(e.len),
                        unwritten: e.unwritten,
                    });
                }
            }
            Layout::BlockMap => {
                let ptrs = parse_i_block(&inode.block)?;
                let walk = walk_block_map(&ptrs, self.block_size, self.blocks_count, read)?;
                map.meta_blocks = walk.meta.iter().map(|b| b.0).collect();
                for (l, p) in &walk.data {
                    map.push(BlockRun {
                        logical: l.0,
                        phys: p.0,
                        len: 1,
                        unwritten: false,
                    });
                }
            }
        }
        Ok(map)
    }

    /// The bad blocks inode's list (its block map, whatever its mode; the
    /// data blocks are the bad blocks).
    pub fn bad_blocks_map(&self) -> Result<FileMap> {
        let ino = super::super::ids::special::BAD_BLOCKS.0;
        let inode = self.inode(ino)?;
        let ptrs = parse_i_block(&inode.block)?;
        let read = |b: super::super::PhysBlock, buf: &mut [u8]| -> Result<()> {
            buf.copy_from_slice(self.block(b.0)?);
            Ok(())
        };
        let walk = walk_block_map(&ptrs, self.block_size, self.blocks_count, read)?;
        let mut map = FileMap {
            meta_blocks: walk.meta.iter().map(|b| b.0).collect(),
            ..FileMap::default()
        };
        for (l, p) in &walk.data {
            map.push(BlockRun {
                logical: l.0,
                phys: p.0,
                len: 1,
                unwritten: false,
            });
        }
        Ok(map)
    }

    /// The inline data area of an `INLINE_DATA_FL` inode: `i_block` followed
    /// by the value of its in-inode `system.data` attribute (which must
    /// exist, possibly empty). `None` for other inodes.
    pub fn inline_data(&self, ino: u32, inode: &Inode) -> Result<Option<Vec<u8>>> {
        if self.layout(inode)? != Layout::Inline {
            return Ok(None);
        }
        let mut data = inode.block.to_vec();
        let entries = self.ibody_entries(ino, inode)?;
        let sys = entries
            .iter()
            .find(|e| e.index == xattr_index::SYSTEM && e.name == b"data")
            .ok_or_else(|| {
                FormatError::corrupt("inline data", "no system.data attribute in the inode")
            })?;
        if sys.value_inum != 0 {
            return Err(FormatError::corrupt(
                "inline data",
                "system.data stored in an EA inode",
            ));
        }
        data.extend_from_slice(&sys.value);
        Ok(Some(data))
    }

    /// Up to `len` bytes of inode `ino` from byte `offset`, stopping at
    /// `i_size`. Holes and unwritten extents read as zeros. Regular files,
    /// directories and symlinks have contents; other inodes read as empty.
    /// Fails for `len` above [`MAX_READ_LEN`].
    pub fn read_file(&self, ino: u32, offset: u64, len: usize) -> Result<Vec<u8>> {
        if len > MAX_READ_LEN {
            return Err(FormatError::unsupported(
                "read",
                format!("{len} bytes in one read (limit {MAX_READ_LEN})"),
            ));
        }
        let inode = self.inode(ino)?;
        self.read_inode_data(ino, &inode, offset, len)
    }

    pub(crate) fn read_inode_data(
        &self,
        ino: u32,
        inode: &Inode,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        let end = offset
            .saturating_add(u64::try_from(len).unwrap_or(u64::MAX))
            .min(inode.size);
        let Some(n) = end.checked_sub(offset).filter(|&n| n > 0) else {
            return Ok(Vec::new());
        };
        let n = usize::try_from(n).map_err(|_| FormatError::corrupt("read", "length"))?;
        let mut out = vec![0u8; n];
        match self.layout(inode)? {
            Layout::NoBlocks => {
                if inode.is_symlink() {
                    // A fast symlink's contents are its target.
                    copy_from(&inode.block, offset, &mut out);
                } else {
                    out.clear();
                }
            }
            Layout::Inline => {
                let data = self.inline_data(ino, inode)?.unwrap_or_default();
                copy_from(&data, offset, &mut out);
            }
            Layout::Extents | Layout::BlockMap => {
                let map = self.file_map(ino, inode)?;
                self.copy_runs(&map, offset, &mut out)?;
            }
        }
        Ok(out)
    }

    /// Fills `out` (file bytes from `offset`) from the runs of `map`.
    fn copy_runs(&self, map: &FileMap, offset: u64, out: &mut [u8]) -> Result<()> {
        let bs = self.bs64();
        let end = offset.saturating_add(u64::try_from(out.len()).unwrap_or(u64::MAX));
        let first = offset / bs;
        let start_idx = map.runs.partition_point(|r| r.logical_end() <= first);
        for run in &map.runs[start_idx..] {
            let run_start = u64::from(run.logical) * bs;
            let run_end = run.logical_end() * bs;
            if run_start >= end {
                break;
            }
            if run.unwritten {
                continue;
            }
            let lo = run_start.max(offset);
            let hi = run_end.min(end);
            if lo >= hi {
                continue;
            }
            // Read the blocks of the run covering [lo, hi).
            let first_blk = lo / bs;
            let last_blk = (hi - 1) / bs;
            let phys = run.phys + (first_blk - u64::from(run.logical));
            let src = self.blocks(phys, last_blk - first_blk + 1)?;
            let skip = usize::try_from(lo - first_blk * bs)
                .map_err(|_| FormatError::corrupt("read", "offset"))?;
            let n = usize::try_from(hi - lo).map_err(|_| FormatError::corrupt("read", "length"))?;
            let dst =
                usize::try_from(lo - offset).map_err(|_| FormatError::corrupt("read", "offset"))?;
            out[dst..dst + n].copy_from_slice(&src[skip..skip + n]);
        }
        Ok(())
    }

    /// The target of symlink `ino`: fast (in `i_block`), slow (in its first
    /// block) or inline. Fails for a target that is empty, longer than
    /// [`MAX_SYMLINK_LEN`] or a block, or holds a NUL byte.
    pub fn read_link(&self, ino: u32) -> Result<Vec<u8>> {
        let inode = self.inode(ino)?;
        self.read_link_inode(ino, &inode)
    }

    pub(crate) fn read_link_inode(&self, ino: u32, inode: &Inode) -> Result<Vec<u8>> {
        const WHAT: &str = "symlink";
        if !inode.is_symlink() {
            return Err(FormatError::corrupt(
                WHAT,
                format!("inode {ino} is not a symlink"),
            ));
        }
        let size = inode.size;
        if size == 0 || size > MAX_SYMLINK_LEN || size >= self.bs64() {
            return Err(FormatError::corrupt(
                WHAT,
                format!("inode {ino}: target length {size}"),
            ));
        }
        if inode.has_flag(flags::ENCRYPT) {
            return Err(FormatError::unsupported(WHAT, "encrypted target"));
        }
        let layout = self.layout(inode)?;
        if layout == Layout::NoBlocks && inode.has_flag(flags::EXTENTS) {
            return Err(FormatError::corrupt(
                WHAT,
                format!("inode {ino}: fast symlink with the extents flag"),
            ));
        }
        let len = usize::try_from(size).map_err(|_| FormatError::corrupt(WHAT, "length"))?;
        let target = match layout {
            Layout::NoBlocks => inode.block[..len].to_vec(),
            Layout::Inline => {
                let data = self.inline_data(ino, inode)?.unwrap_or_default();
                data.get(..len)
                    .ok_or_else(|| {
                        FormatError::corrupt(WHAT, format!("inode {ino}: inline data too short"))
                    })?
                    .to_vec()
            }
            Layout::Extents | Layout::BlockMap => {
                let map = self.file_map(ino, inode)?;
                let run = map.find(0).filter(|r| !r.unwritten).ok_or_else(|| {
                    FormatError::corrupt(WHAT, format!("inode {ino}: no block holds the target"))
                })?;
                if map.data_blocks() != 1 {
                    return Err(FormatError::corrupt(
                        WHAT,
                        format!("inode {ino}: {} blocks mapped, not 1", map.data_blocks()),
                    ));
                }
                self.block(run.phys)?[..len].to_vec()
            }
        };
        if target.contains(&0) {
            return Err(FormatError::corrupt(
                WHAT,
                format!("inode {ino}: NUL byte inside the target"),
            ));
        }
        Ok(target)
    }
}

/// e2fsprogs' `ext2fs_is_fast_symlink`: a symlink whose size fits in
/// `i_block` keeps its target there.
pub(crate) fn is_fast_symlink(inode: &Inode) -> bool {
    inode.is_symlink()
        && inode.size > 0
        && inode.size < I_BLOCK_LEN as u64
        && !inode.has_flag(flags::INLINE_DATA)
}

/// Copies `src[offset..]` into `out` as far as it goes; the rest stays zero.
fn copy_from(src: &[u8], offset: u64, out: &mut [u8]) {
    let Ok(off) = usize::try_from(offset) else {
        return;
    };
    if let Some(rest) = src.get(off..) {
        let n = rest.len().min(out.len());
        out[..n].copy_from_slice(&rest[..n]);
    }
}
