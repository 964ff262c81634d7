//! The whole of `mkfs`: open the target, plan, lay out, create the special
//! inodes, copy the source tree, write the metadata.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::builder::Builder;
use super::journal::make_journal;
use super::options::{resolve_features, MkfsOptions};
use super::orphan_file::make_orphan_file;
use super::plan::{plan, Plan};
use super::populate::populate;
use super::random::{format_uuid, random_uuid};
use super::special::{make_lost_found, make_resize_inode, write_reserved_inodes};
use super::target::Target;
use crate::format::superblock::Superblock;

/// Where mkfs reports progress (a terminal, or nothing). A step is
/// announced with [`Progress::step`], may report counters while it runs
/// (group `done` of `total`, like mke2fs' "Writing inode tables: 1234/8192")
/// and ends with [`Progress::done`].
pub trait Progress {
    /// A step begins (e.g. "Writing inode tables").
    fn step(&mut self, _what: &str) {}
    /// `done` of `total` units (block groups) of the current step are
    /// finished. Called often: implementations throttle their output.
    fn count(&mut self, _done: u64, _total: u64) {}
    /// The current step is done.
    fn done(&mut self) {}
    /// A line of information.
    fn info(&mut self, _line: &str) {}
    /// A warning the user should see even in quiet mode.
    fn warn(&mut self, _line: &str) {}
}

/// Progress that says nothing.
pub struct Silent;
impl Progress for Silent {}

/// Formats `path` (an image file or block device). `size_bytes`: the size
/// to make (and grow a file to); `None` uses the current size.
pub fn make_filesystem(
    path: &Path,
    size_bytes: Option<u64>,
    opts: &MkfsOptions,
    progress: &mut dyn Progress,
) -> Result<Superblock, String> {
    let features = resolve_features(opts.fs_type, &opts.feature_edits)?;
    if let Some(src) = &opts.source_dir {
        match std::fs::metadata(src) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("-d {}: not a directory", src.display())),
            Err(e) => return Err(format!("-d {}: {e}", src.display())),
        }
    }
    let now = match opts.now {
        Some(t) => t,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
            .unwrap_or(0),
    };
    let uuid = match opts.uuid {
        Some(u) => u,
        None => random_uuid()?,
    };
    let hash_seed = random_uuid()?;
    // Plan before touching the target, so bad options leave it untouched.
    let probe_size = match size_bytes {
        Some(s) => s,
        None => Target::current_size(path)?,
    };
    let p = plan(opts, features, probe_size, uuid, hash_seed, now)?;
    let target = Target::open(path, size_bytes)?;
    let created = target.created;
    let result = build(p, target, opts, now, progress);
    if result.is_err() && created {
        // Leave nothing behind: the file did not exist before.
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Everything after the target is open: writes the file system.
fn build(
    p: Plan,
    target: Target,
    opts: &MkfsOptions,
    now: i64,
    progress: &mut dyn Progress,
) -> Result<Superblock, String> {
    let uuid = p.sb.f.uuid;
    for w in &p.warnings {
        progress.warn(w);
    }
    progress.info(&format!(
        "Creating filesystem with {} {}k blocks and {} inodes",
        p.sb.blocks_count(),
        p.sb.block_size() / 1024,
        p.sb.f.inodes_count
    ));
    progress.info(&format!("Filesystem UUID: {}", format_uuid(&uuid)));
    let backups: Vec<String> = (1..p.geo.groups_count)
        .filter(|&g| p.geo.has_super(g))
        .map(|g| p.geo.superblock_location(g).0.to_string())
        .collect();
    if !backups.is_empty() {
        progress.info(&format!(
            "Superblock backups stored on blocks: {}",
            backups.join(", ")
        ));
    }
    progress.step("Allocating group tables");
    let mut b = Builder::new(p, target, now, progress)?;
    progress.done();
    write_reserved_inodes(&mut b)?;
    b.note_overhead(u64::from(b.plan.journal_blocks));
    if b.plan.journal_blocks > 0 {
        progress.step(&format!(
            "Creating journal ({} blocks)",
            b.plan.journal_blocks
        ));
        make_journal(&mut b)?;
        progress.done();
    }
    make_resize_inode(&mut b)?;
    make_lost_found(&mut b)?;
    if b.plan.orphan_file_blocks > 0 {
        make_orphan_file(&mut b)?;
    }
    if opts.source_dir.is_some() {
        progress.step("Copying files into the device");
    }
    let root_owner = Some((opts.root_uid, opts.root_gid))
        .filter(|_| opts.source_dir.is_none() || opts.root_owner_set);
    populate(&mut b, opts.source_dir.as_deref(), root_owner)?;
    if opts.source_dir.is_some() {
        progress.done();
    }
    b.finish(progress)
}
