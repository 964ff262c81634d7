//! Per-opcode counters of the FUSE requests the adapter served: how many of
//! each, and (when timing is on, `-o stats`) the time spent answering them.
//! Counting is one relaxed atomic add per request; the table is written to
//! the log at unmount (debug level, or stderr with `-o stats`), so a
//! workload's round trips can be counted without tracing every request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The requests the adapter answers (INIT, DESTROY and INTERRUPT are
/// handled inside fuser and not counted; BATCH_FORGET is counted as the
/// FORGETs fuser splits it into).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lookup,
    Forget,
    Getattr,
    Setattr,
    Readlink,
    Mknod,
    Mkdir,
    Unlink,
    Rmdir,
    Symlink,
    Rename,
    Link,
    Open,
    Read,
    Write,
    Flush,
    Release,
    Fsync,
    Opendir,
    Readdir,
    Readdirplus,
    Releasedir,
    Fsyncdir,
    Statfs,
    Setxattr,
    Getxattr,
    Listxattr,
    Removexattr,
    Access,
    Create,
    Fallocate,
    Lseek,
    CopyFileRange,
    Ioctl,
}

const OPS: [Op; 34] = [
    Op::Lookup,
    Op::Forget,
    Op::Getattr,
    Op::Setattr,
    Op::Readlink,
    Op::Mknod,
    Op::Mkdir,
    Op::Unlink,
    Op::Rmdir,
    Op::Symlink,
    Op::Rename,
    Op::Link,
    Op::Open,
    Op::Read,
    Op::Write,
    Op::Flush,
    Op::Release,
    Op::Fsync,
    Op::Opendir,
    Op::Readdir,
    Op::Readdirplus,
    Op::Releasedir,
    Op::Fsyncdir,
    Op::Statfs,
    Op::Setxattr,
    Op::Getxattr,
    Op::Listxattr,
    Op::Removexattr,
    Op::Access,
    Op::Create,
    Op::Fallocate,
    Op::Lseek,
    Op::CopyFileRange,
    Op::Ioctl,
];

impl Op {
    /// The kernel's name of the opcode.
    pub fn name(self) -> &'static str {
        match self {
            Op::Lookup => "LOOKUP",
            Op::Forget => "FORGET",
            Op::Getattr => "GETATTR",
            Op::Setattr => "SETATTR",
            Op::Readlink => "READLINK",
            Op::Mknod => "MKNOD",
            Op::Mkdir => "MKDIR",
            Op::Unlink => "UNLINK",
            Op::Rmdir => "RMDIR",
            Op::Symlink => "SYMLINK",
            Op::Rename => "RENAME",
            Op::Link => "LINK",
            Op::Open => "OPEN",
            Op::Read => "READ",
            Op::Write => "WRITE",
            Op::Flush => "FLUSH",
            Op::Release => "RELEASE",
            Op::Fsync => "FSYNC",
            Op::Opendir => "OPENDIR",
            Op::Readdir => "READDIR",
            Op::Readdirplus => "READDIRPLUS",
            Op::Releasedir => "RELEASEDIR",
            Op::Fsyncdir => "FSYNCDIR",
            Op::Statfs => "STATFS",
            Op::Setxattr => "SETXATTR",
            Op::Getxattr => "GETXATTR",
            Op::Listxattr => "LISTXATTR",
            Op::Removexattr => "REMOVEXATTR",
            Op::Access => "ACCESS",
            Op::Create => "CREATE",
            Op::Fallocate => "FALLOCATE",
            Op::Lseek => "LSEEK",
            Op::Ioctl => "IOCTL",
            Op::CopyFileRange => "COPY_FILE_RANGE",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The counters of one mount.
pub struct OpStats {
    timed: bool,
    counts: [AtomicU64; OPS.len()],
    nanos: [AtomicU64; OPS.len()],
}

/// Counts one request when dropped (and its duration, when timed).
pub struct Counting<'a> {
    stats: &'a OpStats,
    op: Op,
    start: Option<Instant>,
}

impl Drop for Counting<'_> {
    fn drop(&mut self) {
        let i = self.op.index();
        self.stats.counts[i].fetch_add(1, Ordering::Relaxed);
        if let Some(t) = self.start {
            let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.stats.nanos[i].fetch_add(ns, Ordering::Relaxed);
        }
    }
}

impl OpStats {
    /// `timed`: also measure how long each request takes to answer.
    pub fn new(timed: bool) -> Self {
        OpStats {
            timed,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            nanos: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Starts counting one request of `op`; it is counted when the returned
    /// guard is dropped (at the end of the handler).
    pub fn count(&self, op: Op) -> Counting<'_> {
        Counting {
            stats: self,
            op,
            start: self.timed.then(Instant::now),
        }
    }

    /// How many requests of `op` were answered.
    pub fn get(&self, op: Op) -> u64 {
        self.counts[op.index()].load(Ordering::Relaxed)
    }

    /// The table: one line per opcode seen, most frequent first, with the
    /// mean time per request when timed.
    pub fn table(&self) -> String {
        let mut rows: Vec<(Op, u64, u64)> = OPS
            .iter()
            .map(|&op| {
                let i = op.index();
                (
                    op,
                    self.counts[i].load(Ordering::Relaxed),
                    self.nanos[i].load(Ordering::Relaxed),
                )
            })
            .filter(|r| r.1 > 0)
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1));
        let total: u64 = rows.iter().map(|r| r.1).sum();
        let mut s = format!("FUSE requests by opcode (total {total}):\n");
        for (op, n, ns) in rows {
            if self.timed {
                let per = ns as f64 / n as f64 / 1000.0;
                s.push_str(&format!(
                    "  {:<16} {n:>10}  {per:>9.2} us/req in the daemon\n",
                    op.name()
                ));
            } else {
                s.push_str(&format!("  {:<16} {n:>10}\n", op.name()));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_table_is_in_enum_order_and_requests_are_counted() {
        for (i, op) in OPS.iter().enumerate() {
            assert_eq!(op.index(), i, "{op:?}");
        }
        let s = OpStats::new(true);
        drop(s.count(Op::Lookup));
        drop(s.count(Op::Lookup));
        drop(s.count(Op::Create));
        assert_eq!(s.get(Op::Lookup), 2);
        assert_eq!(s.get(Op::Create), 1);
        let t = s.table();
        assert!(t.contains("total 3"), "{t}");
        assert!(t.find("LOOKUP").unwrap() < t.find("CREATE").unwrap(), "{t}");
        assert!(!t.contains("GETATTR"), "{t}");
    }
}
