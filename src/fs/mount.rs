//! Mounting and unmounting: the checks that decide whether an image may be
//! served at all (unknown features, a journal needing recovery, an error
//! state), read-only fallbacks, orphan cleanup, and the clean/not-clean
//! superblock state the kernel also keeps.

use std::path::Path;
use std::time::Duration;

use super::error::{FsError, FsResult};
use super::volume::Volume;
use super::{now, Fs};
use crate::device::Image;
use crate::format::features::{Compat, Features, Incompat, RoCompat};
use crate::format::jbd2::JournalSuperblock;
use crate::format::superblock::{STATE_ERROR, STATE_VALID};

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    pub read_only: bool,
    /// Mount even if the superblock records errors.
    pub force: bool,
    /// Write-back starts when this many bytes are dirty.
    pub dirty_background_bytes: usize,
    /// Writers wait for write-back beyond this many dirty bytes.
    pub dirty_limit_bytes: usize,
    /// Dirty data older than this is written back.
    pub dirty_expire: Duration,
    /// Every write durable before it returns (`-o sync`).
    pub sync_writes: bool,
    /// When reads update the access time.
    pub atime: AtimeMode,
}

/// The access-time policy (`-o noatime`, `relatime`, `strictatime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtimeMode {
    /// Never update atime on reads.
    Never,
    /// Update when atime is not newer than mtime/ctime, or a day old (the
    /// kernel's default).
    Relative,
    /// Update on every read.
    Always,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            read_only: false,
            force: false,
            dirty_background_bytes: 64 << 20,
            dirty_limit_bytes: 256 << 20,
            dirty_expire: Duration::from_secs(5),
            sync_writes: false,
            atime: AtimeMode::Relative,
        }
    }
}

impl Fs {
    /// Opens and checks the image at `path`. Refuses unknown INCOMPAT
    /// features (by name), falls back to read-only for unknown RO_COMPAT
    /// features, refuses a journal that needs recovery and an image marked
    /// with errors (unless `force`).
    pub fn mount(path: &Path, opts: MountOptions) -> FsResult<Fs> {
        let mut opts = opts;
        let shown = path.display();
        let probe = Image::open(path, false).map_err(|e| {
            FsError::new(
                e.raw_os_error().unwrap_or(libc::EIO),
                format!("{shown}: {e}"),
            )
        })?;
        let busy = |e: std::io::Error| {
            FsError::new(
                libc::EBUSY,
                format!("{shown} is in use by another fext daemon ({e})"),
            )
        };
        // Checked before anything else is said about the image; taken for
        // real on the image opened below.
        probe.lock(!opts.read_only).map_err(busy)?;
        let vol = Volume::load(probe, true)
            .map_err(|e| FsError::new(e.errno, format!("{shown}: {}", e.detail)))?;
        let feat = vol.feat;
        let unknown = feat.unknown_incompat();
        if !unknown.is_empty() {
            return Err(FsError::new(
                libc::EINVAL,
                format!(
                    "{shown}: unsupported INCOMPAT features: {}",
                    Features::incompat_names(unknown).join(", ")
                ),
            ));
        }
        let unknown_ro = feat.unknown_ro_compat();
        if !unknown_ro.is_empty() && !opts.read_only {
            log::warn!(
                "{shown}: unsupported RO_COMPAT features ({}): mounting read-only",
                Features::ro_compat_names(unknown_ro).join(", ")
            );
            eprintln!(
                "fext: {shown}: features {} are not supported for writing: mounting read-only",
                Features::ro_compat_names(unknown_ro).join(", ")
            );
            opts.read_only = true;
        }
        if feat.incompat.contains(Incompat::RECOVER) || journal_needs_recovery(&vol)? {
            return Err(FsError::new(
                libc::EINVAL,
                format!(
                    "{shown}: the journal needs recovery, which fext cannot do yet; run e2fsck -fy (or fsck.fext) first"
                ),
            ));
        }
        if vol.sb.f.state & STATE_ERROR != 0 && !opts.force {
            return Err(FsError::new(
                libc::EINVAL,
                format!("{shown}: the file system has errors recorded; run e2fsck, or mount with -o force"),
            ));
        }
        if vol.sb.f.state & STATE_VALID == 0 && !opts.force {
            log::warn!("{shown}: not cleanly unmounted; consider running e2fsck");
        }
        drop(vol);
        let img = Image::open(path, !opts.read_only).map_err(|e| {
            FsError::new(
                e.raw_os_error().unwrap_or(libc::EIO),
                format!("{shown}: {e}"),
            )
        })?;
        img.lock(!opts.read_only).map_err(busy)?;
        let vol = Volume::load(img, opts.read_only)?;
        let seed = (now().nsec ^ (now().sec as u32)) | 1;
        let read_only = vol.read_only;
        let fs = Fs::new(vol, opts, seed);
        if !read_only {
            let mut vol = fs.gate.write();
            let orphan_file_done = fs.op_on(&vol, false, &[], super::ops_names::cleanup_orphans)?;
            let sb = &mut vol.sb.f;
            sb.last_orphan = 0;
            if orphan_file_done {
                sb.feature_ro_compat &= !RoCompat::ORPHAN_PRESENT.bits();
            }
            let t = now();
            sb.state &= !STATE_VALID;
            sb.mnt_count = sb.mnt_count.wrapping_add(1);
            sb.mtime = t.sec.clamp(0, i64::from(u32::MAX)) as u32;
            fs.sync_locked(&mut vol)?;
        }
        Ok(fs)
    }

    /// Writes everything back, marks the file system clean and flushes.
    pub fn unmount(&self) -> FsResult<()> {
        let mut vol = self.gate.write();
        if vol.read_only {
            return Ok(());
        }
        // Nothing can refer to an unlinked inode after unmount.
        let orphans: Vec<u32> = self
            .slots()
            .iter()
            .filter(|(_, s)| s.lock().inode.links_count == 0)
            .map(|&(i, _)| i)
            .collect();
        self.op_on(&vol, false, &orphans, |st| {
            for &ino in &orphans {
                st.free_inode_fully(ino)?;
            }
            Ok(())
        })?;
        self.sync_locked(&mut vol)?;
        vol.sb.f.state |= STATE_VALID;
        let t = now();
        vol.sb.f.wtime = t.sec.clamp(0, i64::from(u32::MAX)) as u32;
        vol.sync()
    }

    /// fsync/syncfs: everything durable; reports a latched write-back error.
    pub fn sync(&self) -> FsResult<()> {
        let r = self.sync_all();
        if let Some(e) = self.take_latched_error() {
            return Err(e);
        }
        r
    }

    /// Runs background write-back if it is due (called by the write-back
    /// thread).
    pub fn background_writeback(&self) {
        let due = {
            let vol = self.gate.read();
            !vol.read_only && self.writeback_due(&vol)
        };
        if due {
            // Not flushed (see `write_back_all`).
            let mut vol = self.gate.write();
            let _ = self.write_back_all(&mut vol);
        }
    }
}

fn journal_needs_recovery(vol: &Volume) -> FsResult<bool> {
    if !vol.feat.compat.contains(Compat::HAS_JOURNAL) || vol.sb.f.journal_inum == 0 {
        return Ok(false);
    }
    let st = super::inode::load_inode(vol, vol.sb.f.journal_inum)?;
    let map = super::inode::load_map(vol, &st)?;
    let Some((first, _)) = map.lookup(0) else {
        return Err(FsError::corrupt("journal inode has no first block"));
    };
    let jsb = JournalSuperblock::parse(&vol.read_block(first)?)?;
    Ok(jsb.needs_recovery())
}
