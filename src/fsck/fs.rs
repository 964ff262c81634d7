//! The file system as the checker sees it: the mapped image ([`Disk`]), an
//! in-memory copy of the superblock and of every group descriptor (written
//! back, with checksums, by [`Fs::commit`]), and checked access to blocks and
//! inodes.
//!
//! Opening ([`Fs::open`]) is deliberately lenient compared with the format
//! layer's parser: fsck must look at file systems whose superblock counts
//! are wrong. It refuses only what makes the image unreadable (bad magic,
//! impossible geometry), trying the backup superblocks when the primary is
//! unusable, as e2fsck does.
//!
//! Invariants: `groups.len() == geo.groups_count`; every block and inode
//! access is range-checked; writes reach the image only through [`Disk`].

use std::io;

use crate::format::csum::crc32c;
use crate::format::features::{Compat, Features, Incompat, RoCompat};
use crate::format::geometry::Geometry;
use crate::format::group_desc::{group_desc_csum, set_group_desc_csum, GroupDesc};
use crate::format::inode::inode_csum;
use crate::format::superblock::{
    superblock_csum, Superblock, SuperblockFields, CHECKSUM_OFFSET, EXT4_MAGIC, SUPERBLOCK_OFFSET,
    SUPERBLOCK_SIZE,
};

use super::disk::Disk;
use super::ino::{InodeRead, I_CSUM_HI, I_CSUM_LO, I_EXTRA_ISIZE};

/// Why a superblock copy cannot be used.
pub type SbError = String;

/// Checks that a superblock describes a geometry we can work with (the
/// checks of e2fsprogs' `ext2fs_open2` and the fatal ones of e2fsck's
/// `check_super_block`).
pub fn sb_sanity(sb: &Superblock, image_len: u64) -> Result<(), SbError> {
    let f = &sb.f;
    if f.magic != EXT4_MAGIC {
        return Err("bad magic number in superblock".into());
    }
    if f.rev_level > 1 {
        return Err(format!("revision level {} too high", f.rev_level));
    }
    if f.log_block_size > 6 {
        return Err(format!("s_log_block_size {} invalid", f.log_block_size));
    }
    let feat = sb.features();
    let bigalloc = feat.ro_compat.contains(RoCompat::BIGALLOC);
    if !bigalloc && f.log_cluster_size != f.log_block_size {
        return Err("cluster size differs from block size without bigalloc".into());
    }
    if f.log_cluster_size < f.log_block_size || f.log_cluster_size > f.log_block_size + 16 {
        return Err(format!("s_log_cluster_size {} invalid", f.log_cluster_size));
    }
    let bs = u64::from(sb.block_size());
    if f.blocks_per_group == 0
        || f.clusters_per_group == 0
        || u64::from(f.clusters_per_group) > bs * 8
    {
        return Err(format!("s_blocks_per_group {} invalid", f.blocks_per_group));
    }
    let ratio = 1u64 << (f.log_cluster_size - f.log_block_size);
    if u64::from(f.blocks_per_group) != u64::from(f.clusters_per_group) * ratio {
        return Err("s_blocks_per_group does not match s_clusters_per_group".into());
    }
    if f.inodes_per_group == 0 || u64::from(f.inodes_per_group) > bs * 8 {
        return Err(format!("s_inodes_per_group {} invalid", f.inodes_per_group));
    }
    let isz = sb.inode_size();
    if isz < 128 || !isz.is_power_of_two() || u64::from(isz) > bs {
        return Err(format!("inode size {isz} invalid"));
    }
    let want_first = u32::from(bs == 1024 && ratio == 1);
    if f.first_data_block != want_first {
        return Err(format!(
            "s_first_data_block {} should be {want_first}",
            f.first_data_block
        ));
    }
    let blocks = sb.blocks_count();
    if blocks <= u64::from(f.first_data_block) + 1 {
        return Err(format!("block count {blocks} too small"));
    }
    if feat.incompat.contains(Incompat::BIT64) {
        let ds = f.desc_size;
        if !(32..=1024).contains(&ds) || !ds.is_power_of_two() {
            return Err(format!("s_desc_size {ds} invalid"));
        }
    }
    let groups = (blocks - u64::from(f.first_data_block)).div_ceil(u64::from(f.blocks_per_group));
    if groups > u64::from(u32::MAX) || groups * u64::from(f.inodes_per_group) > u64::from(u32::MAX)
    {
        return Err("too many groups".into());
    }
    if f.rev_level >= 1 && (f.first_ino < 11 || f.first_ino >= f.inodes_count.max(12)) {
        return Err(format!("s_first_ino {} invalid", f.first_ino));
    }
    if feat.incompat.contains(Incompat::FLEX_BG) && f.log_groups_per_flex > 31 {
        return Err("s_log_groups_per_flex too large".into());
    }
    // The image must at least hold the group descriptors of the primary.
    let _ = image_len;
    Ok(())
}

/// The in-memory file system.
pub struct Fs {
    pub disk: Disk,
    pub sb: Superblock,
    /// The superblock as read (to know what changed).
    pub sb_orig: Superblock,
    pub sb_dirty: bool,
    /// The group whose superblock copy was used (0 = primary).
    pub sb_group: u32,
    /// Whether the backups must be rewritten at commit.
    pub write_backups: bool,
    pub geo: Geometry,
    pub groups: Vec<GroupDesc>,
    pub groups_orig: Vec<GroupDesc>,
    /// Whether each descriptor's checksum was right when read.
    pub gd_csum_ok: Vec<bool>,
    pub gd_dirty: bool,
    /// Block size in bytes.
    pub bs: usize,
    pub bs64: u64,
    pub inode_size: usize,
    pub ipg: u32,
    pub bpg: u32,
    pub blocks_count: u64,
    pub first_data_block: u64,
    pub inodes_count: u32,
    pub first_ino: u32,
    pub seed: u32,
    pub feat: Features,
    /// log2 of blocks per cluster.
    pub cluster_bits: u32,
    /// Blocks occupied by one group's inode table.
    pub itable_blocks: u32,
    /// The file system was created by the Hurd (osd2 layout differs).
    pub hurd: bool,
}

/// Reads the superblock copy at byte `off` without judging it.
fn read_sb_at(disk: &Disk, off: u64) -> Option<Superblock> {
    let raw = disk.get(off, SUPERBLOCK_SIZE)?;
    Some(Superblock {
        f: SuperblockFields::read_fields(raw),
    })
}

impl Fs {
    /// Opens the file system on `disk`: the primary superblock if usable,
    /// else the first usable backup. `use_group`: force the copy of this
    /// group (like `e2fsck -b`). Returns the file system and, when a backup
    /// was used, why the primary was not.
    pub fn open(
        disk: Disk,
        use_group: Option<u32>,
    ) -> Result<(Fs, Option<String>), (Disk, String)> {
        let len = disk.len();
        let mut primary_err = None;
        if use_group.is_none_or(|g| g == 0) {
            match read_sb_at(&disk, SUPERBLOCK_OFFSET) {
                None => primary_err = Some("image too small for a superblock".to_string()),
                Some(sb) => match sb_sanity(&sb, len) {
                    Ok(()) => return Ok((Fs::from_sb(disk, sb, 0), None)),
                    Err(e) => primary_err = Some(e),
                },
            }
        }
        // Try the backups: with the primary's geometry if it has a usable
        // magic and block size, then mke2fs' defaults for each block size.
        let mut candidates: Vec<(u64, u32)> = Vec::new();
        let prim = read_sb_at(&disk, SUPERBLOCK_OFFSET);
        let groups_wanted: Vec<u32> = match use_group {
            Some(g) if g > 0 => vec![g],
            _ => vec![1, 3, 5, 7, 9, 25, 27],
        };
        if let Some(p) = prim.as_ref().filter(|p| {
            p.f.magic == EXT4_MAGIC && p.f.log_block_size <= 6 && p.f.blocks_per_group > 0
        }) {
            let bs = u64::from(p.block_size());
            for &g in &groups_wanted {
                let blk = u64::from(p.f.first_data_block)
                    + u64::from(g) * u64::from(p.f.blocks_per_group);
                candidates.push((blk * bs, g));
            }
        }
        for log in 0..=6u32 {
            let bs = 1024u64 << log;
            let first = u64::from(bs == 1024);
            for &g in &groups_wanted {
                candidates.push(((first + u64::from(g) * bs * 8) * bs, g));
            }
        }
        for (off, g) in candidates {
            let Some(sb) = read_sb_at(&disk, off) else {
                continue;
            };
            if sb.f.magic != EXT4_MAGIC || sb_sanity(&sb, len).is_err() {
                continue;
            }
            let bs = u64::from(sb.block_size());
            let expect = (u64::from(sb.f.first_data_block)
                + u64::from(g) * u64::from(sb.f.blocks_per_group))
                * bs;
            if expect != off {
                continue;
            }
            let fs = Fs::from_sb(disk, sb, g);
            return Ok((
                fs,
                Some(primary_err.unwrap_or_else(|| "backup requested".into())),
            ));
        }
        Err((
            disk,
            primary_err.unwrap_or_else(|| "no usable superblock found".into()),
        ))
    }

    fn from_sb(disk: Disk, sb: Superblock, sb_group: u32) -> Fs {
        let geo = Geometry::new(&sb);
        let feat = sb.features();
        let bs = sb.block_size() as usize;
        let mut fs = Fs {
            disk,
            sb_orig: sb.clone(),
            seed: sb.csum_seed(),
            inode_size: usize::from(sb.inode_size()),
            ipg: sb.f.inodes_per_group,
            bpg: sb.f.blocks_per_group,
            blocks_count: sb.blocks_count(),
            first_data_block: u64::from(sb.f.first_data_block),
            inodes_count: sb.f.inodes_count,
            first_ino: sb.first_ino(),
            cluster_bits: sb.f.log_cluster_size.saturating_sub(sb.f.log_block_size),
            itable_blocks: geo.inode_table_blocks,
            hurd: sb.f.creator_os == 1,
            sb,
            sb_dirty: false,
            sb_group,
            write_backups: sb_group != 0,
            geo,
            groups: Vec::new(),
            groups_orig: Vec::new(),
            gd_csum_ok: Vec::new(),
            gd_dirty: false,
            bs,
            bs64: bs as u64,
            feat,
        };
        fs.read_group_descs();
        fs
    }

    /// Recomputes the cached values after the superblock changed.
    pub fn refresh(&mut self) {
        self.feat = self.sb.features();
        self.seed = self.sb.csum_seed();
        self.first_ino = self.sb.first_ino();
        self.geo = Geometry::new(&self.sb);
    }

    pub fn groups_count(&self) -> u32 {
        self.geo.groups_count
    }

    pub fn has_metadata_csum(&self) -> bool {
        self.feat.ro_compat.contains(RoCompat::METADATA_CSUM)
    }

    /// Group descriptor checksums (gdt_csum or metadata_csum).
    pub fn has_group_csum(&self) -> bool {
        self.feat.has_group_csum()
    }

    pub fn has_compat(&self, f: Compat) -> bool {
        self.feat.compat.contains(f)
    }
    pub fn has_incompat(&self, f: Incompat) -> bool {
        self.feat.incompat.contains(f)
    }
    pub fn has_ro_compat(&self, f: RoCompat) -> bool {
        self.feat.ro_compat.contains(f)
    }

    /// The block holding group `g`'s superblock copy (block 1 for group 0
    /// of a 1 KiB-block bigalloc file system, whose first data block is 0).
    pub fn group_sb_block(&self, g: u32) -> u64 {
        let b = self.geo.group_first_block(g);
        if b == 0 && self.bs == 1024 {
            1
        } else {
            b
        }
    }

    /// Where descriptor block `i` of the table we read lives.
    fn gdt_block_for_read(&self, i: u32) -> u64 {
        let meta_bg = self.has_incompat(Incompat::META_BG);
        let first_meta_bg = self.sb.f.first_meta_bg.min(self.geo.gdt_blocks);
        if self.sb_group == 0 {
            if !meta_bg || i < first_meta_bg {
                return self.group_sb_block(0) + 1 + u64::from(i);
            }
            let g = i.saturating_mul(self.geo.descs_per_block);
            return self.geo.group_first_block(g) + u64::from(self.geo.has_super(g));
        }
        let sb_block = self.geo.group_first_block(self.sb_group);
        if !meta_bg || i < first_meta_bg {
            return sb_block + 1 + u64::from(i);
        }
        let second = i.saturating_mul(self.geo.descs_per_block).saturating_add(1);
        self.geo.group_first_block(second) + u64::from(self.geo.has_super(second))
    }

    /// Where descriptor block `i` of group `g`'s copy is written (the
    /// primary for g == 0).
    pub fn gdt_block_location(&self, i: u32, g: u32) -> Option<u64> {
        let meta_bg = self.has_incompat(Incompat::META_BG);
        let first_meta_bg = self.sb.f.first_meta_bg.min(self.geo.gdt_blocks);
        if !meta_bg || i < first_meta_bg {
            if !self.geo.has_super(g) {
                return None;
            }
            return Some(self.group_sb_block(g) + 1 + u64::from(i));
        }
        // meta_bg: copies in the first, second and last group of the meta group.
        let dpb = self.geo.descs_per_block;
        let first = i.saturating_mul(dpb);
        let last = first
            .saturating_add(dpb - 1)
            .min(self.groups_count().saturating_sub(1));
        let grp = match g {
            0 => first,
            1 => first + 1,
            _ => last,
        };
        if grp >= self.groups_count() {
            return None;
        }
        Some(self.geo.group_first_block(grp) + u64::from(self.geo.has_super(grp)))
    }

    fn read_group_descs(&mut self) {
        let n = self.groups_count() as usize;
        let ds = self.geo.desc_size as usize;
        let dpb = self.geo.descs_per_block;
        self.groups = Vec::with_capacity(n);
        self.gd_csum_ok = Vec::with_capacity(n);
        for i in 0..self.geo.gdt_blocks {
            let loc = self.gdt_block_for_read(i);
            let block = self.block(loc).map(<[u8]>::to_vec);
            for j in 0..dpb {
                let g = i * dpb + j;
                if g as usize >= n {
                    break;
                }
                let raw = block
                    .as_ref()
                    .and_then(|b| b.get(j as usize * ds..(j as usize + 1) * ds));
                match raw.and_then(|r| GroupDesc::parse(r, ds).ok().map(|d| (d, r))) {
                    Some((d, r)) => {
                        let ok = match group_desc_csum(&self.feat, self.seed, &self.sb.f.uuid, g, r)
                        {
                            Some(c) => c == d.checksum,
                            None => true,
                        };
                        self.groups.push(d);
                        self.gd_csum_ok.push(ok);
                    }
                    None => {
                        self.groups.push(GroupDesc::default());
                        self.gd_csum_ok.push(false);
                    }
                }
            }
        }
        while self.groups.len() < n {
            self.groups.push(GroupDesc::default());
            self.gd_csum_ok.push(false);
        }
        self.groups_orig = self.groups.clone();
    }

    /// The checksum descriptor `g` should carry (None without checksums).
    pub fn gd_csum(&self, g: u32) -> Option<u16> {
        let ds = self.geo.desc_size as usize;
        let mut buf = vec![0u8; ds.max(32)];
        self.groups.get(g as usize)?.encode(&mut buf, ds);
        group_desc_csum(&self.feat, self.seed, &self.sb.f.uuid, g, &buf[..ds])
    }

    /// Whether the flags of descriptor `g` can be trusted: its checksum
    /// was right when read, or it was changed (and will be written with
    /// the right checksum).
    pub fn gd_trusted(&self, g: u32) -> bool {
        let i = g as usize;
        self.gd_csum_ok.get(i).copied().unwrap_or(false)
            || self.groups.get(i) != self.groups_orig.get(i)
    }

    /// Whether descriptor `g`'s stored checksum is right now.
    pub fn gd_csum_valid(&self, g: u32) -> bool {
        match (self.gd_csum(g), self.groups.get(g as usize)) {
            (Some(c), Some(d)) => c == d.checksum,
            _ => true,
        }
    }

    pub fn group_first_block(&self, g: u32) -> u64 {
        self.geo.group_first_block(g)
    }

    /// Last block of group `g` (inclusive).
    pub fn group_last_block(&self, g: u32) -> u64 {
        let start = self.group_first_block(g);
        (start + u64::from(self.bpg)).min(self.blocks_count) - 1
    }

    pub fn group_of_block(&self, b: u64) -> u32 {
        self.geo.group_of_block(b)
    }

    /// Whether `b` is a valid data block number.
    pub fn valid_block(&self, b: u64) -> bool {
        b >= self.first_data_block && b < self.blocks_count
    }

    /// Block `b`, if inside the file system and the image.
    pub fn block(&self, b: u64) -> Option<&[u8]> {
        if b >= self.blocks_count {
            return None;
        }
        self.disk.get(b.checked_mul(self.bs64)?, self.bs)
    }

    /// A writable block (marked dirty); `None` when read-only or out of range.
    pub fn block_mut(&mut self, b: u64) -> Option<&mut [u8]> {
        if b >= self.blocks_count {
            return None;
        }
        let off = b.checked_mul(self.bs64)?;
        self.disk.get_mut(off, self.bs)
    }

    /// Writes a whole block. Returns false when refused.
    pub fn write_block(&mut self, b: u64, data: &[u8]) -> bool {
        if b >= self.blocks_count || data.len() != self.bs {
            return false;
        }
        match b.checked_mul(self.bs64) {
            Some(off) => self.disk.write(off, data).is_ok(),
            None => false,
        }
    }

    /// Byte offset of inode `ino`, if its group's inode table lies inside
    /// the file system.
    pub fn inode_offset(&self, ino: u32) -> Option<u64> {
        if ino == 0 || ino > self.inodes_count {
            return None;
        }
        let g = (ino - 1) / self.ipg;
        let idx = (ino - 1) % self.ipg;
        let table = self.groups.get(g as usize)?.inode_table;
        if table < self.first_data_block
            || table.checked_add(u64::from(self.itable_blocks))? > self.blocks_count
        {
            return None;
        }
        table
            .checked_mul(self.bs64)?
            .checked_add(u64::from(idx) * self.inode_size as u64)
    }

    /// The raw bytes of inode `ino`.
    pub fn inode_raw(&self, ino: u32) -> Option<&[u8]> {
        self.disk.get(self.inode_offset(ino)?, self.inode_size)
    }

    /// A private copy of inode `ino` (all zeros when unreadable).
    pub fn read_inode(&self, ino: u32) -> Vec<u8> {
        self.inode_raw(ino)
            .map(<[u8]>::to_vec)
            .unwrap_or_else(|| vec![0; self.inode_size])
    }

    /// Whether the stored checksum of `raw` (inode `ino`) is right (always
    /// true without metadata_csum).
    pub fn inode_csum_ok(&self, ino: u32, raw: &[u8]) -> bool {
        if !self.has_metadata_csum() || raw.len() < self.inode_size {
            return true;
        }
        let c = inode_csum(self.seed, ino, raw, self.inode_size);
        let lo = u32::from(u16::from_le_bytes([raw[I_CSUM_LO], raw[I_CSUM_LO + 1]]));
        if self.has_csum_hi(raw) {
            let hi = u32::from(u16::from_le_bytes([raw[I_CSUM_HI], raw[I_CSUM_HI + 1]]));
            (lo | hi << 16) == c
        } else {
            lo == c & 0xffff
        }
    }

    fn has_csum_hi(&self, raw: &[u8]) -> bool {
        self.inode_size > 128 && raw.extra_isize(self.inode_size) >= 4
    }

    /// Sets the checksum of an inode buffer (metadata_csum only).
    pub fn set_inode_csum(&self, ino: u32, raw: &mut [u8]) {
        if !self.has_metadata_csum() || raw.len() < self.inode_size {
            return;
        }
        // An extra size that runs past the inode would make the checksum
        // cover garbage; the checker fixes i_extra_isize first.
        let extra_ok = self.inode_size <= 128
            || usize::from(raw.extra_isize(self.inode_size)) <= self.inode_size - 128;
        if !extra_ok {
            return;
        }
        let c = inode_csum(self.seed, ino, raw, self.inode_size);
        raw[I_CSUM_LO..I_CSUM_LO + 2].copy_from_slice(&((c & 0xffff) as u16).to_le_bytes());
        if self.has_csum_hi(raw) {
            raw[I_CSUM_HI..I_CSUM_HI + 2].copy_from_slice(&((c >> 16) as u16).to_le_bytes());
        }
        let _ = I_EXTRA_ISIZE;
    }

    /// Writes inode `ino` (checksum set). Returns false when refused.
    pub fn write_inode(&mut self, ino: u32, raw: &[u8]) -> bool {
        let Some(off) = self.inode_offset(ino) else {
            return false;
        };
        let mut buf = raw.to_vec();
        buf.resize(self.inode_size, 0);
        self.set_inode_csum(ino, &mut buf);
        self.disk.write(off, &buf).is_ok()
    }

    /// The per-inode checksum seed.
    pub fn inode_seed(&self, ino: u32, generation: u32) -> u32 {
        crc32c(
            crc32c(self.seed, &ino.to_le_bytes()),
            &generation.to_le_bytes(),
        )
    }

    /// Marks the superblock for writing at commit.
    pub fn mark_sb_dirty(&mut self) {
        self.sb_dirty = true;
    }

    /// Marks the group descriptors for writing at commit.
    pub fn mark_gd_dirty(&mut self) {
        self.gd_dirty = true;
    }

    /// Sets descriptor `g`'s checksum to the right value.
    pub fn fix_gd_csum(&mut self, g: u32) {
        if let Some(c) = self.gd_csum(g) {
            if let Some(d) = self.groups.get_mut(g as usize) {
                d.checksum = c;
            }
        }
        self.gd_dirty = true;
    }

    /// Writes the superblock and the descriptors (with checksums) to the
    /// in-memory image: the primary copies, and every backup when
    /// `write_backups` is set. Nothing reaches the file until
    /// [`Disk::flush`].
    pub fn commit(&mut self) -> io::Result<()> {
        if !self.disk.is_writable() {
            return Ok(());
        }
        if !(self.sb_dirty || self.gd_dirty || self.write_backups) {
            return Ok(());
        }
        let ngroups = self.groups_count();
        let ds = self.geo.desc_size as usize;
        // Descriptor blocks.
        let mut table = vec![0u8; self.geo.gdt_blocks as usize * self.bs];
        for g in 0..ngroups {
            let off = g as usize * ds;
            if let (Some(d), Some(dst)) = (
                self.groups.get_mut(g as usize),
                table.get_mut(off..off + ds),
            ) {
                d.encode(dst, ds);
                if self.feat.has_group_csum() {
                    set_group_desc_csum(&self.feat, self.seed, &self.sb.f.uuid, g, dst);
                    d.checksum = u16::from_le_bytes([dst[0x1E], dst[0x1F]]);
                }
            }
            if let Some(ok) = self.gd_csum_ok.get_mut(g as usize) {
                *ok = true;
            }
        }
        let meta_bg = self.has_incompat(Incompat::META_BG);
        let first_meta_bg = self.sb.f.first_meta_bg.min(self.geo.gdt_blocks);
        let sb_groups: Vec<u32> = if self.write_backups {
            (0..ngroups).filter(|&g| self.geo.has_super(g)).collect()
        } else {
            vec![0]
        };
        for i in 0..self.geo.gdt_blocks {
            let mut locs = Vec::new();
            if !meta_bg || i < first_meta_bg {
                for &g in &sb_groups {
                    locs.push(self.group_sb_block(g) + 1 + u64::from(i));
                }
            } else {
                let copies = if self.write_backups { 3 } else { 1 };
                for c in 0..copies {
                    if let Some(l) = self.gdt_block_location(i, c) {
                        if !locs.contains(&l) {
                            locs.push(l);
                        }
                    }
                }
            }
            let start = i as usize * self.bs;
            let chunk = table[start..start + self.bs].to_vec();
            for loc in locs {
                if !self.write_block(loc, &chunk) {
                    return Err(io::Error::other(format!(
                        "cannot write group descriptor block {loc}"
                    )));
                }
            }
        }
        let copies = sb_groups;
        // Superblocks.
        let mut buf = vec![0u8; SUPERBLOCK_SIZE];
        for &copy in &copies {
            if copy != 0 && !self.geo.has_super(copy) {
                continue;
            }
            let (blk, inner) = self.geo.superblock_location(copy);
            let off = blk * self.bs64 + inner as u64;
            if let Some(cur) = self.disk.get(off, SUPERBLOCK_SIZE) {
                buf.copy_from_slice(cur);
            }
            let mut sb = self.sb.clone();
            sb.f.block_group_nr = u16::try_from(copy).unwrap_or(0);
            sb.f.write_fields(&mut buf);
            if self.has_metadata_csum() {
                let c = superblock_csum(&buf);
                buf[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&c.to_le_bytes());
            }
            self.disk.write(off, &buf)?;
        }
        self.sb_dirty = false;
        self.gd_dirty = false;
        self.write_backups = false;
        Ok(())
    }
}
