//! The `fext` daemon: mounts an image through FUSE and serves it until
//! unmounted or signalled.
//!
//! Start-up: parse options, then (unless `-f`) fork; the child opens and
//! checks the image, mounts, and tells the parent through a pipe whether the
//! mount is ready, so `fext IMG DIR` returns only once the mount works (or
//! fails with the reason), like fuse2fs. SIGINT/SIGTERM/SIGHUP unmount the
//! file system; the session then ends, everything is written back, the
//! superblock is marked clean, and the daemon exits 0. A background thread
//! runs write-back when dirty data gets old or large.

mod bdi;
mod mount;
pub mod options;
pub mod umount_helper;

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use fuser::{Config, MountOption, Session, SessionUnmounter};

use crate::fs::Fs;
use crate::fuse::{AdapterOptions, FuseFs};
use options::DaemonOptions;

/// What to mount where.
pub struct Invocation {
    pub image: PathBuf,
    pub mountpoint: PathBuf,
    pub options: DaemonOptions,
    pub foreground: bool,
}

/// Runs the daemon; returns the process exit code.
pub fn run(inv: Invocation) -> i32 {
    if inv.foreground {
        return match serve(&inv, None) {
            Ok(()) => 0,
            Err(msg) => {
                eprintln!("fext: {msg}");
                1
            }
        };
    }
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors into the array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        eprintln!("fext: pipe: {}", std::io::Error::last_os_error());
        return 1;
    }
    // SAFETY: both descriptors were just created and are owned here.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no threads exist yet in this process, so fork is safe.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        eprintln!("fext: fork: {}", std::io::Error::last_os_error());
        return 1;
    }
    if pid > 0 {
        drop(wr);
        let mut msg = String::new();
        let _ = std::fs::File::from(rd).read_to_string(&mut msg);
        return match msg.strip_prefix("ok") {
            Some(_) => 0,
            None => {
                let text = msg
                    .strip_prefix("err:")
                    .unwrap_or("the daemon exited before the mount was ready");
                eprintln!("fext: {text}");
                1
            }
        };
    }
    drop(rd);
    // SAFETY: plain syscall; the child becomes a session leader.
    unsafe { libc::setsid() };
    let mut ready = Some(std::fs::File::from(wr));
    match serve(&inv, Some(&mut ready)) {
        Ok(()) => 0,
        Err(msg) => {
            if let Some(mut w) = ready.take() {
                let _ = write!(w, "err:{msg}");
            } else {
                log::error!("{msg}");
            }
            1
        }
    }
}

fn redirect_stdio_to_null() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto the standard descriptors of this process.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
            libc::dup2(null.as_raw_fd(), 2);
        }
    }
}

/// Blocks SIGINT/SIGTERM/SIGHUP in this thread (and the threads it
/// spawns) so a dedicated thread can wait for them.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local set, then pthread_sigmask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn serve(inv: &Invocation, ready: Option<&mut Option<std::fs::File>>) -> Result<(), String> {
    let set = block_signals();
    let fs = Fs::mount(&inv.image, inv.options.fs.clone()).map_err(|e| e.detail.clone())?;
    let fs = Arc::new(fs);
    let o = &inv.options;
    let fsname = o
        .fsname
        .clone()
        .unwrap_or_else(|| abs(&inv.image).display().to_string());
    let mut mount_options = o.fuse.clone();
    mount_options.push(MountOption::FSName(fsname.clone()));
    mount_options.push(MountOption::Subtype(o.subtype.clone()));
    mount_options.push(MountOption::DefaultPermissions);
    mount_options.push(if fs.is_read_only() {
        MountOption::RO
    } else {
        MountOption::RW
    });
    let mut config = Config::default();
    if o.allow_other {
        config.acl = fuser::SessionACL::All;
    }
    config.n_threads = Some(o.threads);
    config.clone_fd = o.threads > 1;
    let adapter = FuseFs::new(
        fs.clone(),
        &AdapterOptions {
            ttl: o.ttl,
            writeback_cache: o.writeback_cache,
            stats: o.stats,
        },
    );
    let notify = adapter.kernel_notify();
    let mountpoint = abs(&inv.mountpoint);
    // A failed mount leaves the image as it was (marked clean again).
    let cannot = |e: std::io::Error| {
        if let Err(u) = fs.unmount() {
            log::error!("releasing the image: {u}");
        }
        format!("cannot mount on {}: {e}", inv.mountpoint.display())
    };
    let spec = mount::MountSpec {
        source: &fsname,
        subtype: &o.subtype,
        options: &mount_options,
        allow_other: o.allow_other,
        default_permissions: true,
    };
    let (session, mut unmounter) = match mount::mount_fuse(&mountpoint, &spec).map_err(cannot)? {
        Some(fd) => {
            let acl = config.acl;
            match Session::from_fd(adapter, fd, acl, config) {
                Ok(s) => (s, Unmounter::Direct(mountpoint.clone())),
                Err(e) => {
                    let _ = mount::unmount_fuse(&mountpoint, true);
                    return Err(cannot(e));
                }
            }
        }
        None => {
            // Not permitted to mount(2): fuser goes through fusermount3.
            config.mount_options = mount_options;
            let mut s = Session::new(adapter, &inv.mountpoint, &config).map_err(cannot)?;
            let u = Unmounter::Fuser(s.unmount_callable());
            (s, u)
        }
    };
    notify.connect(session.notifier());
    let read_ahead_kb = o
        .read_ahead_kb
        .unwrap_or_else(|| bdi::default_read_ahead_kb(&inv.image));
    bdi::raise(&mountpoint, read_ahead_kb, o.bdi_max_ratio);
    let direct_mountpoint = match &unmounter {
        Unmounter::Direct(mp) => Some(mp.clone()),
        Unmounter::Fuser(_) => None,
    };
    // Lets `umount` wait for the final write-back (see umount_helper);
    // dropped, so removed, when serve returns.
    let _registration = direct_mountpoint
        .as_ref()
        .and_then(|mp| umount_helper::register(mp, &abs(&inv.image)));
    if let Some(slot) = ready {
        if let Some(mut w) = slot.take() {
            let _ = w.write_all(b"ok");
        }
        redirect_stdio_to_null();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writeback = {
        let fs = fs.clone();
        let stop = stop.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(250));
                fs.background_writeback();
            }
        })
    };
    thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: waits on the set blocked above.
        unsafe { libc::sigwait(&set, &mut sig) };
        log::info!("signal {sig}: unmounting");
        if let Err(e) = unmounter.unmount() {
            log::error!("unmount failed: {e}");
        }
    });
    let result = session.run();
    if let (Err(_), Some(mp)) = (&result, &direct_mountpoint) {
        // The session failed while still mounted: detach the mount so it
        // does not stay behind dead (fuser's guard does that for its own
        // mounts).
        let _ = mount::unmount_fuse(mp, true);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = writeback.join();
    fs.unmount()
        .map_err(|e| format!("final write-back failed: {e}"))?;
    result.map_err(|e| format!("FUSE session failed: {e}"))
}

/// Unmounts the file system (on a signal): the kernel then ends the
/// session.
enum Unmounter {
    /// Mounted by [`mount::mount_fuse`].
    Direct(PathBuf),
    /// Mounted by fuser (through fusermount3).
    Fuser(SessionUnmounter),
}

impl Unmounter {
    fn unmount(&mut self) -> std::io::Result<()> {
        match self {
            Unmounter::Direct(mp) => mount::unmount_fuse(mp, false),
            Unmounter::Fuser(u) => u.unmount(),
        }
    }
}

fn abs(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}
