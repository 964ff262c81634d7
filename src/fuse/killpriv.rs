//! Clearing set-user-ID and set-group-ID on write and truncate, done by
//! the daemon because the adapter negotiates FUSE_HANDLE_KILLPRIV_V2.
//!
//! Without that flag the kernel does it itself, but to know whether a file
//! has file capabilities it asks the daemon for `security.capability`
//! before every write() call: one more round trip per write. With it, the
//! kernel marks the mount SB_NOSEC (the question is asked once per inode
//! until its attributes next change) and leaves the mode bits to the
//! daemon, with the VFS rules (as for ext4):
//!
//! - write: the kernel sets FUSE_WRITE_KILL_SUIDGID when the writer lacks
//!   CAP_FSETID; then set-user-ID is cleared, and set-group-ID when the
//!   file is group-executable or the writer is not in the file's group.
//! - truncate: the kernel sends FATTR_KILL_SUIDGID on the same condition,
//!   but fuser 0.18 does not pass that bit on; the adapter reads the
//!   process's capabilities itself.
//! - chown of a non-directory: set-user-ID always goes (even to the same
//!   owner), set-group-ID by the group rule unless the caller has
//!   CAP_FSETID.
//! - fallocate and copy_file_range (into the file): like a write, but the
//!   requests carry no flag, so the adapter reads the capabilities.
//!
//! The process's capabilities and supplementary groups come from
//! /proc/PID/status, read only when the file has a bit to clear.
//!
//! `security.capability` itself is still removed by the kernel (it sends
//! REMOVEXATTR when it finds one).

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_IXGRP: u32 = 0o0010;
const CAP_FSETID: u32 = 4;

/// The mode `mode` takes when a process without CAP_FSETID modifies the
/// file (or anyone chowns it), or None when nothing changes: set-user-ID
/// goes; set-group-ID goes when the file is group-executable or the
/// process is neither in the file's group nor has CAP_FSETID
/// (`in_group_or_capable`, asked only then).
pub fn mode_after_kill(mode: u32, in_group_or_capable: impl FnOnce() -> bool) -> Option<u32> {
    let mut m = mode & !S_ISUID;
    if m & S_ISGID != 0 && (m & S_IXGRP != 0 || !in_group_or_capable()) {
        m &= !S_ISGID;
    }
    (m != mode).then_some(m)
}

/// What the kernel says about a requesting process (/proc/PID/status).
/// An unknown process (it exited, or /proc is unreadable) has no
/// capabilities and no supplementary groups: clearing the bits is the safe
/// side.
#[derive(Debug, Default)]
pub struct ProcessCreds {
    cap_fsetid: bool,
    groups: Vec<u32>,
}

impl ProcessCreds {
    pub fn of(pid: u32) -> Self {
        match std::fs::read_to_string(format!("/proc/{pid}/status")) {
            Ok(status) => Self::parse(&status),
            Err(_) => Self::default(),
        }
    }

    fn parse(status: &str) -> Self {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
        };
        let cap_fsetid = field("CapEff:")
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .is_some_and(|caps| caps & (1 << CAP_FSETID) != 0);
        let groups = field("Groups:")
            .map(|g| {
                g.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        ProcessCreds { cap_fsetid, groups }
    }

    /// Whether the process has CAP_FSETID in its effective set.
    pub fn cap_fsetid(&self) -> bool {
        self.cap_fsetid
    }

    /// Whether `gid` is the process's group (`primary`, from the request)
    /// or one of its supplementary groups.
    pub fn in_group(&self, primary: u32, gid: u32) -> bool {
        primary == gid || self.groups.contains(&gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_clears_setuid_and_setgid_by_the_vfs_rules() {
        let in_group = || true;
        let outsider = || false;
        assert_eq!(mode_after_kill(0o100755, outsider), None);
        assert_eq!(mode_after_kill(0o104755, in_group), Some(0o100755));
        assert_eq!(mode_after_kill(0o102755, in_group), Some(0o100755));
        // setgid without group execute: kept for members of the group.
        assert_eq!(mode_after_kill(0o102745, in_group), None);
        assert_eq!(mode_after_kill(0o102745, outsider), Some(0o100745));
        assert_eq!(mode_after_kill(0o106745, in_group), Some(0o102745));
    }

    #[test]
    fn process_status_is_parsed() {
        let c = ProcessCreds::parse("Name:\tsh\nGroups:\t27 100 \nCapEff:\t0000000000000010\n");
        assert!(c.cap_fsetid());
        assert!(c.in_group(5, 100) && c.in_group(5, 5) && !c.in_group(5, 6));
        let c = ProcessCreds::parse("Groups:\nCapEff:\t00000000000000ef\n");
        assert!(!c.cap_fsetid());
        assert!(!ProcessCreds::of(u32::MAX).cap_fsetid());
    }
}
