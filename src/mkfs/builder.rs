//! The image builder: owns the plan, the allocator, the target and the
//! inodes created so far, and at the end writes the inode tables, bitmaps,
//! group descriptors and every superblock copy.
//!
//! Order of work: place group metadata → create special inodes and files
//! (data and directory blocks are written as they are allocated; inodes are
//! kept in memory) → [`Builder::finish`] writes the inode tables, then the
//! bitmaps and descriptors, and the superblocks last, so an interrupted
//! mkfs leaves no valid-looking superblock over half-written metadata.

use std::collections::{BTreeMap, HashMap};

use super::alloc::Allocator;
use super::format::Progress;
use super::layout::{place_group_metadata, GroupMeta};
use super::plan::Plan;
use super::target::Target;
use crate::format::bitmap;
use crate::format::group_desc::{
    set_group_desc_csum, GroupDesc, BG_BLOCK_UNINIT, BG_INODE_UNINIT, BG_INODE_ZEROED,
};
use crate::format::inode::{set_inode_csum, Inode, Timestamp};
use crate::format::superblock::{Superblock, SUPERBLOCK_SIZE};

/// Builder state while an image is made.
pub struct Builder {
    pub plan: Plan,
    pub alloc: Allocator,
    pub metas: Vec<GroupMeta>,
    pub target: Target,
    /// Encoded inodes by number, each `inode_size` bytes.
    inodes: BTreeMap<u32, Vec<u8>>,
    pub now: Timestamp,
    /// Blocks of fixed metadata and journal (s_overhead_clusters).
    overhead_blocks: u64,
}

impl Builder {
    /// Places the group metadata and returns a builder ready for inodes.
    /// Group placement reports its progress (groups placed) to `progress`.
    pub fn new(
        plan: Plan,
        target: Target,
        now: i64,
        progress: &mut dyn Progress,
    ) -> Result<Self, String> {
        let mut alloc = Allocator::new(&plan.geo);
        let metas = place_group_metadata(&plan.geo, plan.flex_size, &mut alloc, progress)?;
        Ok(Builder {
            plan,
            alloc,
            metas,
            target,
            inodes: BTreeMap::new(),
            now: Timestamp::new(now, 0),
            overhead_blocks: 0,
        })
    }

    pub fn block_size(&self) -> u32 {
        self.plan.geo.block_size
    }

    pub fn inode_size(&self) -> usize {
        self.plan.geo.inode_size as usize
    }

    /// The metadata checksum seed, when metadata_csum is on.
    pub fn csum_seed(&self) -> Option<u32> {
        self.plan
            .features
            .has_metadata_csum()
            .then(|| self.plan.sb.csum_seed())
    }

    /// Writes whole blocks starting at `block`.
    pub fn write_blocks(&mut self, block: u64, data: &[u8]) -> Result<(), String> {
        self.target
            .write_at(data, block * u64::from(self.block_size()))
    }

    /// Makes `count` blocks from `block` read as zero.
    pub fn zero_blocks(&mut self, block: u64, count: u64) -> Result<(), String> {
        let bs = u64::from(self.block_size());
        self.target.zero_range(block * bs, count * bs)
    }

    /// Records the fixed overhead (s_overhead_clusters): the blocks in use
    /// now plus `journal_blocks`. Call it once the group metadata is placed
    /// and before the journal is made: like mke2fs, the overhead counts the
    /// journal's data blocks but not its extent tree or indirect blocks.
    pub fn note_overhead(&mut self, journal_blocks: u64) {
        self.overhead_blocks =
            self.plan.sb.blocks_count() - self.alloc.free_blocks_total() + journal_blocks;
    }

    /// Stores an inode. `tail` is written after the extra fields (the
    /// in-inode xattr area: magic plus entries), when there is one.
    pub fn put_inode(
        &mut self,
        ino: u32,
        inode: &Inode,
        tail: Option<&[u8]>,
    ) -> Result<(), String> {
        let isize = self.inode_size();
        let mut raw = vec![0u8; isize];
        inode.encode(&mut raw, isize);
        if let Some(t) = tail {
            let start = 128 + usize::from(inode.extra_isize);
            if start + t.len() > isize {
                return Err(format!(
                    "internal error: in-inode data too large for inode {ino}"
                ));
            }
            raw[start..start + t.len()].copy_from_slice(t);
        }
        self.inodes.insert(ino, raw);
        Ok(())
    }

    /// A fresh inode with mkfs' creation time in every timestamp.
    pub fn new_inode(&self, mode: u16) -> Inode {
        let extra = if self.inode_size() > 128 { 32 } else { 0 };
        let mut i = Inode::new(mode, extra);
        i.atime = self.now;
        i.ctime = self.now;
        i.mtime = self.now;
        i.crtime = self.now;
        i
    }

    /// Writes everything that is still in memory and syncs the target,
    /// as two progress steps (inode tables; bitmaps, descriptors and
    /// superblocks), each counting block groups.
    pub fn finish(mut self, progress: &mut dyn Progress) -> Result<Superblock, String> {
        progress.step("Writing inode tables");
        self.write_inode_tables(progress)?;
        progress.done();
        progress.step("Writing superblocks and filesystem accounting information");
        let descs = self.write_bitmaps_and_descs(progress)?;
        let sb = self.finish_superblock();
        self.write_gdt_and_superblocks(&sb, &descs)?;
        self.target.sync()?;
        progress.done();
        Ok(sb)
    }

    fn group_has_csum(&self) -> bool {
        self.plan.features.has_group_csum()
    }

    fn write_inode_tables(&mut self, progress: &mut dyn Progress) -> Result<(), String> {
        let geo = self.plan.geo.clone();
        let isize = self.inode_size();
        let bs = geo.block_size as usize;
        let seed = self.csum_seed();
        let inodes_per_block = bs / isize;
        // Group the inodes by inode table block.
        let mut by_block: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        for (&ino, raw) in &mut self.inodes {
            if let Some(s) = seed {
                set_inode_csum(s, ino, raw, isize);
            }
            let (g, idx) = geo.inode_location(ino);
            let table = self.metas[g as usize].inode_table;
            let block = table + u64::from(idx) / inodes_per_block as u64;
            let off = (idx as usize % inodes_per_block) * isize;
            let buf = by_block.entry(block).or_insert_with(|| vec![0u8; bs]);
            buf[off..off + isize].copy_from_slice(raw);
        }
        for (block, buf) in &by_block {
            self.write_blocks(*block, buf)?;
        }
        // A target that is not known to read as zeros needs explicit zeros
        // wherever an inode table will be read: every used group's table
        // (the rest of it), and without group checksums every table.
        if !self.target.zeroed {
            for g in 0..geo.groups_count {
                progress.count(u64::from(g), u64::from(geo.groups_count));
                let used = self.alloc.groups[g as usize].inode_bitmap.is_some();
                if used || !self.group_has_csum() {
                    let table = self.metas[g as usize].inode_table;
                    for b in 0..u64::from(geo.inode_table_blocks) {
                        if !by_block.contains_key(&(table + b)) {
                            self.zero_blocks(table + b, 1)?;
                        }
                    }
                }
            }
        }
        progress.count(u64::from(geo.groups_count), u64::from(geo.groups_count));
        Ok(())
    }

    fn write_bitmaps_and_descs(
        &mut self,
        progress: &mut dyn Progress,
    ) -> Result<Vec<GroupDesc>, String> {
        let geo = self.plan.geo.clone();
        let seed = self.plan.sb.csum_seed();
        let csum = self.plan.features.has_metadata_csum();
        let group_csum = self.group_has_csum();
        let ipg = geo.inodes_per_group as usize;
        let bs = geo.block_size as usize;
        let last = geo.groups_count - 1;
        let cpg = (geo.blocks_per_group / 8) as usize;
        let mut initial_bitmaps: HashMap<(u32, u32), (Vec<u8>, u32)> = HashMap::new();
        let mut empty_inode_bm = vec![0u8; bs];
        bitmap::set_padding(&mut empty_inode_bm, ipg);
        let mut batch = WriteBatch::new(geo.block_size);
        let mut descs = Vec::with_capacity(geo.groups_count as usize);
        for g in 0..geo.groups_count {
            progress.count(u64::from(g), u64::from(geo.groups_count));
            let meta = self.metas[g as usize];
            let ga = self.alloc.groups[g as usize].clone();
            let mut d = GroupDesc {
                block_bitmap: meta.block_bitmap,
                inode_bitmap: meta.inode_bitmap,
                inode_table: meta.inode_table,
                free_blocks_count: ga.free_blocks,
                free_inodes_count: ga.free_inodes,
                used_dirs_count: ga.used_dirs,
                ..GroupDesc::default()
            };
            let block_uninit = group_csum && ga.block_bitmap.is_none() && g != last;
            // An untouched group's bitmap depends only on its base metadata
            // and length: build it (and its checksum) once per shape.
            let shape = (geo.base_meta_blocks(g), geo.blocks_in_group(g));
            let (block_bm, block_bm_csum): (&[u8], u32) = match &ga.block_bitmap {
                Some(bm) => (bm, bitmap::bitmap_csum(seed, bm, cpg)),
                None => {
                    let (bm, csum) = initial_bitmaps.entry(shape).or_insert_with(|| {
                        let bm = self.alloc.initial_block_bitmap(g);
                        let csum = bitmap::bitmap_csum(seed, &bm, cpg);
                        (bm, csum)
                    });
                    (bm, *csum)
                }
            };
            if block_uninit {
                d.flags |= BG_BLOCK_UNINIT;
            } else {
                batch.add(&mut self.target, meta.block_bitmap, block_bm)?;
            }
            let inode_bm: &[u8] = ga.inode_bitmap.as_deref().unwrap_or(&empty_inode_bm);
            if group_csum && ga.inode_bitmap.is_none() {
                d.flags |= BG_INODE_UNINIT;
            } else {
                batch.add(&mut self.target, meta.inode_bitmap, inode_bm)?;
            }
            if group_csum {
                d.itable_unused = geo.inodes_per_group - ga.inodes_high_water;
                if self.target.zeroed || ga.inode_bitmap.is_some() {
                    d.flags |= BG_INODE_ZEROED;
                }
            }
            if csum {
                d.block_bitmap_csum = block_bm_csum;
                d.inode_bitmap_csum = if ga.inode_bitmap.is_some() {
                    bitmap::bitmap_csum(seed, inode_bm, ipg / 8)
                } else {
                    0
                };
                if geo.desc_size < 64 {
                    d.block_bitmap_csum &= 0xffff;
                    d.inode_bitmap_csum &= 0xffff;
                }
            }
            descs.push(d);
        }
        batch.flush(&mut self.target)?;
        progress.count(u64::from(geo.groups_count), u64::from(geo.groups_count));
        Ok(descs)
    }

    fn finish_superblock(&self) -> Superblock {
        let mut sb = self.plan.sb.clone();
        sb.set_free_blocks_count(self.alloc.free_blocks_total());
        sb.f.free_inodes_count = u32::try_from(self.alloc.free_inodes_total()).unwrap_or(0);
        sb.f.overhead_clusters = u32::try_from(self.overhead_blocks).unwrap_or(0);
        sb.f.kbytes_written = self.target.written_bytes() / 1024;
        sb
    }

    fn write_gdt_and_superblocks(
        &mut self,
        sb: &Superblock,
        descs: &[GroupDesc],
    ) -> Result<(), String> {
        let geo = self.plan.geo.clone();
        let bs = geo.block_size as usize;
        let ds = geo.desc_size as usize;
        let feat = self.plan.features;
        let seed = sb.csum_seed();
        let mut gdt = vec![0u8; geo.gdt_blocks as usize * bs];
        for (g, d) in descs.iter().enumerate() {
            let slot = &mut gdt[g * ds..(g + 1) * ds];
            d.encode(slot, ds);
            set_group_desc_csum(&feat, seed, &sb.f.uuid, g as u32, slot);
        }
        // Reserved GDT blocks after the primary and the backups hold the
        // resize inode's data; they are written by the resize inode code.
        let mut backups = Vec::new();
        for g in 0..geo.groups_count {
            if geo.has_super(g) {
                backups.push(g);
            }
        }
        let old_gdt = geo.old_gdt_blocks() as usize * bs;
        for &g in backups.iter().rev() {
            let (block, byte_off) = geo.superblock_location(g);
            if old_gdt > 0 {
                self.write_blocks(block + 1, &gdt[..old_gdt])?;
            }
            let mut copy = sb.clone();
            copy.f.block_group_nr = u16::try_from(g).unwrap_or(u16::MAX);
            let mut buf = [0u8; SUPERBLOCK_SIZE];
            copy.encode(&mut buf);
            self.target
                .write_at(&buf, block * bs as u64 + byte_off as u64)?;
        }
        // meta_bg: descriptor block i lives in the first, second and last
        // group of meta group i, after any superblock copy there.
        for g in 0..geo.groups_count {
            if geo.has_meta_bg_desc(g) {
                let i = (g / geo.descs_per_block) as usize;
                let at = geo.group_first_block(g) + u64::from(geo.has_super(g));
                self.write_blocks(at, &gdt[i * bs..(i + 1) * bs])?;
            }
        }
        Ok(())
    }
}

/// Coalesces writes of consecutive blocks into one write: without flex_bg
/// a group's block and inode bitmaps are neighbours, with it the bitmaps
/// of a flex group are. ext2/ext3 with 1 KiB blocks and 1 TiB write
/// 262,144 bitmaps, so this halves the system calls or better.
struct WriteBatch {
    start: u64,
    buf: Vec<u8>,
    block_size: u64,
}

/// Largest single write of a batch.
const MAX_BATCH_BYTES: usize = 1 << 20;

impl WriteBatch {
    fn new(block_size: u32) -> Self {
        WriteBatch {
            start: 0,
            buf: Vec::new(),
            block_size: u64::from(block_size),
        }
    }

    /// Queues `data` (whole blocks) for `block`, writing out what was
    /// queued before unless `block` follows it directly.
    fn add(&mut self, target: &mut Target, block: u64, data: &[u8]) -> Result<(), String> {
        let next = self.start + self.buf.len() as u64 / self.block_size;
        if self.buf.is_empty() || block != next || self.buf.len() >= MAX_BATCH_BYTES {
            self.flush(target)?;
            self.start = block;
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn flush(&mut self, target: &mut Target) -> Result<(), String> {
        if !self.buf.is_empty() {
            target.write_at(&self.buf, self.start * self.block_size)?;
            self.buf.clear();
        }
        Ok(())
    }
}
