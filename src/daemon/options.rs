//! The `-o` mount options of the `fext` daemon, parsed into what the file
//! system core and the FUSE session each need. Options libfuse-based file
//! systems accept are accepted with the same meaning; unknown ones are an
//! error naming them.

use std::time::Duration;

use fuser::MountOption;

use crate::fs::{AtimeMode, MountOptions};

/// Everything `-o` can say.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub fs: MountOptions,
    pub fuse: Vec<MountOption>,
    pub fsname: Option<String>,
    pub subtype: String,
    pub allow_other: bool,
    /// Attribute and entry cache timeout.
    pub ttl: Duration,
    pub writeback_cache: bool,
    /// FUSE worker threads ([`default_threads`]).
    pub threads: usize,
    /// Print the FUSE requests by opcode (count, time) at unmount.
    pub stats: bool,
    /// The kernel's read-ahead for the mount, KiB (0: the kernel's own;
    /// None: `daemon::bdi::default_read_ahead_kb`).
    pub read_ahead_kb: Option<u32>,
    /// The mount's share of the system's dirty page limit, percent (0: the
    /// kernel's 1%); see `daemon::bdi`.
    pub bdi_max_ratio: u32,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            fs: MountOptions::default(),
            fuse: Vec::new(),
            fsname: None,
            subtype: "fext".into(),
            allow_other: false,
            // The kernel's cached attributes and names stay true (the
            // daemon is the image's only writer and invalidates what it
            // changes on its own), so the timeout only bounds how long a
            // mistake could last.
            ttl: Duration::from_secs(60),
            writeback_cache: false,
            threads: default_threads(),
            stats: false,
            read_ahead_kb: None,
            bdi_max_ratio: 10,
        }
    }
}

/// The most FUSE worker threads `threads=` (or the CPU count) gives.
const MAX_THREADS: usize = 64;

/// FUSE worker threads unless `threads=` says: one per CPU, and at
/// least 8. Besides serving callers on several CPUs at once, spare
/// threads shorten a lone caller's round trips. Traced with `perf sched`
/// on the benchmark machine (a VM with 2 CPUs): with 4 threads the caller
/// and the thread answering it mostly shared one CPU, because the thread
/// that had just replied took the caller's next request before the one
/// the kernel woke for it; with 2 threads both settled on the other CPU,
/// so every request and every reply woke an idle CPU. `stat` of 20,000
/// names took 0.39 s with 2 threads and 0.31-0.33 s with 3 to 16 (medians
/// of 12); creating 20,000 files in 100 directories 1.63 s with 2 and
/// 1.36 s with 4 or 8 (medians of 6).
fn default_threads() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus.clamp(8, MAX_THREADS)
}

fn number<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("invalid value '{v}' for mount option {key}"))
}

/// Parses a comma-separated option list (several `-o` are concatenated).
pub fn parse_options(list: &[String]) -> Result<DaemonOptions, String> {
    let mut o = DaemonOptions::default();
    for item in list
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
    {
        let (key, value) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (item, None),
        };
        match (key, value) {
            ("ro", None) => o.fs.read_only = true,
            ("rw", None) => o.fs.read_only = false,
            ("force", None) => o.fs.force = true,
            ("sync", None) => o.fs.sync_writes = true,
            ("async", None) => o.fs.sync_writes = false,
            ("allow_other", None) => o.allow_other = true,
            ("default_permissions", None) => {}
            ("noatime", None) => {
                o.fs.atime = AtimeMode::Never;
                o.fuse.push(MountOption::NoAtime)
            }
            ("relatime" | "atime", None) => o.fs.atime = AtimeMode::Relative,
            ("strictatime", None) => o.fs.atime = AtimeMode::Always,
            ("dev", None) => o.fuse.push(MountOption::Dev),
            ("nodev", None) => o.fuse.push(MountOption::NoDev),
            ("suid", None) => o.fuse.push(MountOption::Suid),
            ("nosuid", None) => o.fuse.push(MountOption::NoSuid),
            ("exec", None) => o.fuse.push(MountOption::Exec),
            ("noexec", None) => o.fuse.push(MountOption::NoExec),
            ("dirsync", None) => o.fuse.push(MountOption::DirSync),
            ("fsname", Some(v)) => o.fsname = Some(v.to_string()),
            ("subtype", Some(v)) => o.subtype = v.to_string(),
            ("dirty_background_mb", Some(v)) => {
                o.fs.dirty_background_bytes = number::<usize>(key, v)? << 20
            }
            ("dirty_limit_mb", Some(v)) => o.fs.dirty_limit_bytes = number::<usize>(key, v)? << 20,
            ("dirty_expire_ms", Some(v)) => {
                o.fs.dirty_expire = Duration::from_millis(number(key, v)?)
            }
            ("attr_timeout" | "entry_timeout", Some(v)) => {
                o.ttl = Duration::try_from_secs_f64(number(key, v)?)
                    .map_err(|_| format!("invalid value '{v}' for mount option {key}"))?
            }
            ("writeback_cache", None) => o.writeback_cache = true,
            ("no_writeback_cache", None) => o.writeback_cache = false,
            ("stats", None) => o.stats = true,
            ("read_ahead_kb", Some(v)) => o.read_ahead_kb = Some(number(key, v)?),
            ("bdi_max_ratio", Some(v)) => {
                o.bdi_max_ratio = number(key, v)?;
                if o.bdi_max_ratio > 100 {
                    return Err(format!(
                        "invalid value '{v}' for mount option {key}: at most 100"
                    ));
                }
            }
            ("threads", Some(v)) => o.threads = number::<usize>(key, v)?.clamp(1, MAX_THREADS),
            _ => return Err(format!("unknown mount option '{item}'")),
        }
    }
    if o.fs.dirty_background_bytes > o.fs.dirty_limit_bytes {
        o.fs.dirty_background_bytes = o.fs.dirty_limit_bytes;
    }
    if o.fs.sync_writes {
        o.writeback_cache = false;
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_unknown_ones_are_refused() {
        let o = parse_options(&[
            "ro,noatime,fsname=disk.img".into(),
            "dirty_limit_mb=64".into(),
        ])
        .unwrap();
        assert!(o.fs.read_only);
        assert_eq!(o.fsname.as_deref(), Some("disk.img"));
        assert_eq!(o.fs.dirty_limit_bytes, 64 << 20);
        assert!(parse_options(&["frobnicate".into()])
            .unwrap_err()
            .contains("frobnicate"));
        assert!(parse_options(&["dirty_limit_mb=x".into()]).is_err());
        assert_eq!(parse_options(&[]).unwrap().ttl, Duration::from_secs(60));
        let o = parse_options(&["attr_timeout=0.5".into()]).unwrap();
        assert_eq!(o.ttl, Duration::from_millis(500));
        assert_eq!(parse_options(&[]).unwrap().bdi_max_ratio, 10);
        assert_eq!(
            parse_options(&["bdi_max_ratio=0".into()])
                .unwrap()
                .bdi_max_ratio,
            0
        );
        for bad in [
            "attr_timeout=-1",
            "entry_timeout=inf",
            "attr_timeout=nan",
            "bdi_max_ratio=101",
            "bdi_max_ratio=-1",
        ] {
            assert!(parse_options(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn threads_default_to_spares_and_are_bounded() {
        // Fewer than 3 made every round trip of a lone caller wake an idle
        // CPU (see default_threads).
        assert!(parse_options(&[]).unwrap().threads >= 3);
        assert_eq!(parse_options(&["threads=1".into()]).unwrap().threads, 1);
        assert_eq!(parse_options(&["threads=500".into()]).unwrap().threads, 64);
        assert!(parse_options(&["threads=x".into()]).is_err());
    }
}
