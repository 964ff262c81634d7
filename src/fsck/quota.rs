//! Quota accounting (RO_COMPAT QUOTA), as e2fsck does it: pass 1 charges
//! every inode it checks (the root and the inodes from `s_first_ino` on,
//! except the project quota inode and EA inodes) to its user, group and
//! project id (not the orphan file either): the space of its blocks (clusters, in bytes, EA block
//! share included) and one inode. After the last run the usage is compared
//! with each quota file named in the superblock (format: see
//! `crate::format::quota`); a difference, a missing entry or an unreadable
//! file asks "Update quota info for quota type N", and the fix rewrites the
//! file with the computed usage, keeping the limits and grace times.

use std::collections::HashMap;

use crate::format::features::RoCompat;
use crate::format::quota::{build_quota_file, parse_quota_file, Dquot, DEFAULT_GRACE};

use super::check::Checker;
use super::ino::{fl, InodeRead, InodeWrite};
use super::map::mapping;
use super::problem::{Code, PCtx};

/// `i_projid`.
const I_PROJID: usize = 0x9C;
/// Largest quota file read (the tree for every possible id is far smaller).
const MAX_QUOTA_FILE: u64 = 64 << 20;

/// Usage per id: (bytes, inodes).
pub type Usage = HashMap<u32, (u64, u64)>;

impl Checker {
    /// The quota inode of type `t` (0 user, 1 group, 2 project).
    fn quota_inum(&self, t: usize) -> u32 {
        let f = &self.fs.sb.f;
        match t {
            0 => f.usr_quota_inum,
            1 => f.grp_quota_inum,
            _ => f.prj_quota_inum,
        }
    }

    /// Starts the accounting of a run: one map per quota type the
    /// superblock names.
    pub fn quota_reset(&mut self) {
        let on = self.fs.has_ro_compat(RoCompat::QUOTA);
        for t in 0..3 {
            self.quota_usage[t] = (on && self.quota_inum(t) != 0).then(HashMap::new);
        }
    }

    /// Charges inode `ino` (its raw copy after pass 1's fixes) with
    /// `clusters` clusters and `inodes` inodes.
    pub fn quota_charge(&mut self, ino: u32, raw: &[u8], clusters: u64, inodes: u64) {
        if self.quota_usage.iter().all(Option::is_none) {
            return;
        }
        let f = &self.fs.sb.f;
        if !(ino == 2 || ino >= self.fs.first_ino)
            || ino == f.prj_quota_inum
            || ino == f.orphan_file_inum
            || raw.has_flag(fl::EA_INODE)
        {
            return;
        }
        let bytes = clusters.saturating_mul(self.fs.bs64 << self.fs.cluster_bits);
        let projid = if raw.len() >= I_PROJID + 4 {
            u32::from_le_bytes([
                raw[I_PROJID],
                raw[I_PROJID + 1],
                raw[I_PROJID + 2],
                raw[I_PROJID + 3],
            ])
        } else {
            0
        };
        let ids = [raw.uid(), raw.gid(), projid];
        for (t, id) in ids.into_iter().enumerate() {
            if let Some(m) = self.quota_usage[t].as_mut() {
                let e = m.entry(id).or_insert((0, 0));
                e.0 = e.0.saturating_add(bytes);
                e.1 = e.1.saturating_add(inodes);
            }
        }
    }

    /// The contents of quota inode `ino` (up to its size), or why not.
    fn read_quota_inode(&self, ino: u32) -> Result<(Vec<u8>, Vec<u8>), String> {
        if ino < 3 || ino > self.fs.inodes_count {
            return Err(format!("illegal inode number {ino}"));
        }
        let raw = self.fs.read_inode(ino);
        if raw.links() == 0 || !raw.is_reg() {
            return Err(format!("inode {ino} is not a regular file in use"));
        }
        let size = raw.size().min(MAX_QUOTA_FILE);
        let m = mapping(&self.fs, &raw);
        let nblocks = size.div_ceil(self.fs.bs64);
        let mut data = vec![0u8; usize::try_from(size).map_err(|_| "too large")?];
        for l in 0..nblocks {
            let Some(p) = m.bmap(l) else { continue };
            let Some(b) = self.fs.block(p) else {
                return Err(format!("block {p} unreadable"));
            };
            let start = (l * self.fs.bs64) as usize;
            let end = (start + b.len()).min(data.len());
            data[start..end].copy_from_slice(&b[..end - start]);
        }
        Ok((raw, data))
    }

    /// Compares the usage with the quota files and offers to rewrite them
    /// (after the last run).
    pub fn check_quota(&mut self) {
        for t in 0..3 {
            let Some(usage) = self.quota_usage[t].take() else {
                continue;
            };
            let ino = self.quota_inum(t);
            let mut inconsistent = false;
            let mut grace = (DEFAULT_GRACE, DEFAULT_GRACE);
            let mut limits: HashMap<u32, Dquot> = HashMap::new();
            match self
                .read_quota_inode(ino)
                .and_then(|(_, data)| parse_quota_file(&data, t).map_err(|e| e.to_string()))
            {
                Err(e) => {
                    self.rep.say(&format!(
                        "[ERROR] quota file (inode {ino}) of type {t}: {e}\n"
                    ));
                    inconsistent = true;
                }
                Ok((info, dquots)) => {
                    grace = (info.bgrace, info.igrace);
                    for d in dquots {
                        let (space, inodes) = usage.get(&d.id).copied().unwrap_or((0, 0));
                        if (space, inodes) != (d.curspace, d.curinodes) {
                            self.rep.say(&format!(
                                "[QUOTA WARNING] Usage inconsistent for ID {}:actual ({space}, {inodes}) != expected ({}, {})\n",
                                d.id, d.curspace, d.curinodes
                            ));
                            inconsistent = true;
                        }
                        limits.insert(d.id, d);
                    }
                    let mut missing: Vec<u32> = usage
                        .keys()
                        .filter(|id| !limits.contains_key(id))
                        .copied()
                        .collect();
                    missing.sort_unstable();
                    for id in missing {
                        self.rep
                            .say(&format!("[QUOTA WARNING] Missing quota entry ID {id}\n"));
                        inconsistent = true;
                    }
                }
            }
            if !inconsistent {
                continue;
            }
            let p = PCtx {
                num: t as u64,
                ..PCtx::default()
            };
            if !self.fix(Code::UpdateQuotas, &p) || !self.can_write() {
                continue;
            }
            // Limits and times of the entries the file had; usage computed.
            let mut dq: Vec<Dquot> = Vec::new();
            let mut ids: Vec<u32> = usage.keys().chain(limits.keys()).copied().collect();
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                let (space, inodes) = usage.get(&id).copied().unwrap_or((0, 0));
                let mut d = limits.get(&id).copied().unwrap_or(Dquot {
                    id,
                    ..Dquot::default()
                });
                d.curspace = space;
                d.curinodes = inodes;
                if d.itime == 1 && d.curinodes == 0 && d.curspace == 0 {
                    d.itime = 0;
                }
                dq.push(d);
            }
            let file = build_quota_file(t, grace.0, grace.1, &dq);
            if let Err(e) = self.write_quota_inode(ino, &file) {
                self.rep.say(&format!(
                    "fsck.fext: {e} while writing quota file (inode {ino})\n"
                ));
                self.rep.valid = false;
            }
        }
    }

    /// Writes `file` as the contents of quota inode `ino`, reusing its
    /// blocks and mapping more when needed.
    fn write_quota_inode(&mut self, ino: u32, file: &[u8]) -> Result<(), String> {
        if ino < 3 || ino > self.fs.inodes_count {
            return Err(format!("illegal quota inode {ino}"));
        }
        let mut raw = self.fs.read_inode(ino);
        if raw.links() == 0 || !raw.is_reg() {
            return Err(format!("quota inode {ino} is not a regular file in use"));
        }
        let bs = self.fs.bs64;
        let need = (file.len() as u64).div_ceil(bs);
        let m = mapping(&self.fs, &raw);
        let mut goal = m
            .runs
            .last()
            .map_or(self.fs.first_data_block, |r| r.pblk + r.len);
        let mut added = 0u64;
        for l in 0..need {
            let blk = match m.bmap(l) {
                Some(b) => b,
                None => {
                    let b = self.new_block(goal).ok_or("no free block")?;
                    let extra = self.set_bmap(ino, &mut raw, l, b)?;
                    added += 1 + extra;
                    goal = b + 1;
                    b
                }
            };
            let start = (l * bs) as usize;
            let end = (start + bs as usize).min(file.len());
            let mut buf = vec![0u8; bs as usize];
            buf[..end - start].copy_from_slice(&file[start..end]);
            self.write_block(blk, &buf);
        }
        // Blocks past the new end keep their place inside i_size (zeroed).
        let mapped_end = m.end().max(need);
        for l in need..mapped_end {
            if let Some(b) = m.bmap(l) {
                self.write_block(b, &vec![0u8; bs as usize]);
            }
        }
        if added > 0 {
            self.add_iblocks(&mut raw, added);
        }
        let size = (file.len() as u64).max(raw.size().min(mapped_end * bs));
        raw.set_size(size);
        self.write_inode(ino, &raw);
        Ok(())
    }
}
