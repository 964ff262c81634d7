//! Faults of the image mapping (SIGBUS) turned into an I/O error of the one
//! operation that met them, instead of a dead daemon.
//!
//! Touching a page of a file mapping raises SIGBUS when the page lies past
//! the end of the file (the image shrank under the daemon) or the device
//! fails to read it. A process-wide SIGBUS handler (installed on the first
//! [`register`]) looks up the faulting address among the registered
//! mappings:
//! - inside one: it maps an anonymous zero page over the faulting page
//!   (`MAP_FIXED`; the access then completes, reading zeros), counts the
//!   fault in a per-thread counter and queues the page for repair;
//! - outside: the previous handler runs (Rust's stack-overflow check) or
//!   the default action, so other faults still kill the process.
//!
//! Readers of the mapping go through [`probe`], which touches every page of
//! the range it is about to hand out and reports whether this thread
//! faulted meanwhile; the caller then fails its operation with EIO and
//! never uses the zeros. Queued pages are mapped from the file again
//! ([`repair_pending`], also at the start of every probe), so a later read
//! tries the file again (and faults again while it is still short or
//! failing).
//!
//! Limits: the handler only uses async-signal-safe calls (mmap, sigaction,
//! atomics, a const-initialised thread-local). A page that faults outside
//! a probe (evicted and failing between the probe and its use) is seen as
//! zeros by that one use until the next repair; a reply the kernel copies
//! from a failing page fails inside the kernel instead (EFAULT to the
//! daemon's writev), and the kernel then ends that request with EIO itself.

use std::os::fd::RawFd;
use std::sync::atomic::{
    compiler_fence, AtomicBool, AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use std::sync::{Once, OnceLock};

/// Mappings that can be registered at the same time.
const MAX_REGIONS: usize = 64;
/// Damaged pages remembered for repair (more: whole regions are remapped).
const MAX_PENDING: usize = 256;

/// How a registered file is mapped (and so how a damaged page is mapped
/// from the file again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MapKind {
    /// MAP_SHARED, PROT_READ.
    SharedReadOnly,
    /// MAP_SHARED, PROT_READ | PROT_WRITE.
    SharedReadWrite,
    /// MAP_PRIVATE, PROT_READ | PROT_WRITE: writes stay in memory.
    PrivateCopy,
}

impl MapKind {
    fn from_u8(v: u8) -> MapKind {
        match v {
            1 => MapKind::SharedReadWrite,
            2 => MapKind::PrivateCopy,
            _ => MapKind::SharedReadOnly,
        }
    }
}

/// One registered mapping; `len == 0` means the slot is free.
struct Region {
    start: AtomicUsize,
    len: AtomicUsize,
    fd: AtomicI32,
    kind: AtomicU8,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE_REGION: Region = Region {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    fd: AtomicI32::new(-1),
    kind: AtomicU8::new(0),
};
static REGIONS: [Region; MAX_REGIONS] = [FREE_REGION; MAX_REGIONS];

#[allow(clippy::declare_interior_mutable_const)]
const NO_PAGE: AtomicUsize = AtomicUsize::new(0);
static PENDING: [AtomicUsize; MAX_PENDING] = [NO_PAGE; MAX_PENDING];
static PENDING_ANY: AtomicBool = AtomicBool::new(false);
static PENDING_OVERFLOW: AtomicBool = AtomicBool::new(false);
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);

/// The SIGBUS action before ours (called for faults that are not ours).
struct Previous(libc::sigaction);
// SAFETY: a plain C struct written once before the handler is installed
// and only read afterwards.
unsafe impl Sync for Previous {}
unsafe impl Send for Previous {}
static PREVIOUS: OnceLock<Previous> = OnceLock::new();
static INSTALL: Once = Once::new();

thread_local! {
    /// Faults this thread met in registered mappings (an atomic, with
    /// compiler fences around the accesses that may fault, so the compiler
    /// does not assume the signal handler leaves it alone).
    static FAULTS: AtomicU64 = const { AtomicU64::new(0) };
}

/// A registered mapping; dropping it unregisters (before the unmap).
#[derive(Debug)]
pub struct Registration(usize);

impl Drop for Registration {
    fn drop(&mut self) {
        let r = &REGIONS[self.0];
        r.len.store(0, Ordering::Release);
        r.start.store(0, Ordering::Release);
        r.fd.store(-1, Ordering::Release);
    }
}

/// Registers the file mapping `start..start+len` of `fd` (mapped from file
/// offset 0, as `kind` says) so that faults in it become per-operation
/// errors. `None` when all slots are taken (faults there then kill the
/// process, as without this module).
pub fn register(start: *const u8, len: usize, fd: RawFd, kind: MapKind) -> Option<Registration> {
    install_handler();
    for (i, r) in REGIONS.iter().enumerate() {
        if r.fd
            .compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            r.kind.store(kind as u8, Ordering::Release);
            r.start.store(start as usize, Ordering::Release);
            r.len.store(len, Ordering::Release);
            return Some(Registration(i));
        }
    }
    log::warn!("too many image mappings: I/O faults in this one will not be caught");
    None
}

fn install_handler() {
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if let Ok(p) = usize::try_from(page) {
            if p.is_power_of_two() {
                PAGE_SIZE.store(p, Ordering::Release);
            }
        }
        // SAFETY: sigaction with a zeroed, then filled, action struct; the
        // handler only does async-signal-safe work (see the module notes).
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_sigbus as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut new.sa_mask);
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
                log::warn!("cannot read the SIGBUS action: image faults will not be caught");
                return;
            }
            let _ = PREVIOUS.set(Previous(old));
            if libc::sigaction(libc::SIGBUS, &new, std::ptr::null_mut()) != 0 {
                log::warn!("cannot install the SIGBUS handler: image faults will not be caught");
            }
        }
    });
}

/// The registered region holding `addr`, if any.
fn region_of(addr: usize) -> Option<&'static Region> {
    REGIONS.iter().find(|r| {
        let len = r.len.load(Ordering::Acquire);
        let start = r.start.load(Ordering::Acquire);
        len != 0 && addr >= start && addr - start < len
    })
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE_SIZE.load(Ordering::Relaxed);
    if region_of(addr).is_some() {
        let base = addr & !(page - 1);
        // SAFETY: replaces exactly one page inside a live mapping we
        // registered with a private zero page; nothing holds references
        // that depend on the file's page identity.
        let p = unsafe {
            libc::mmap(
                base as *mut libc::c_void,
                page,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            FAULTS.with(|f| f.fetch_add(1, Ordering::SeqCst));
            queue_for_repair(base);
            return;
        }
    }
    chain(sig, info, ctx);
}

fn queue_for_repair(page: usize) {
    let queued = PENDING.iter().any(|slot| {
        slot.compare_exchange(0, page, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    });
    if !queued {
        PENDING_OVERFLOW.store(true, Ordering::Release);
    }
    PENDING_ANY.store(true, Ordering::Release);
}

/// Hands a fault that is not ours to the previous action, or restores the
/// default so the faulting access kills the process when it repeats.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    if let Some(Previous(old)) = PREVIOUS.get() {
        let h = old.sa_sigaction;
        if h != libc::SIG_DFL && h != libc::SIG_IGN {
            if old.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed with SA_SIGINFO,
                // so it has this signature.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(h) };
                f(sig, info, ctx);
            } else {
                // SAFETY: a plain handler has this signature.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
                f(sig);
            }
            return;
        }
    }
    // SAFETY: resetting SIGBUS to its default action.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
    }
}

/// Maps `addr..addr+len` (inside `r`) from the file again.
fn remap(r: &Region, addr: usize, len: usize) {
    let start = r.start.load(Ordering::Acquire);
    let fd = r.fd.load(Ordering::Acquire);
    if fd < 0 || len == 0 {
        return;
    }
    let Ok(offset) = libc::off_t::try_from(addr - start) else {
        return;
    };
    let (prot, flags) = match MapKind::from_u8(r.kind.load(Ordering::Acquire)) {
        MapKind::SharedReadOnly => (libc::PROT_READ, libc::MAP_SHARED),
        MapKind::SharedReadWrite => (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED),
        // A page that faulted was never written (a written page is the
        // process's own copy), so the file's page is its right content.
        MapKind::PrivateCopy => (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE),
    };
    // SAFETY: replaces pages inside a registered mapping with the same
    // file's pages at the same offsets, as the original mapping had them.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            prot,
            flags | libc::MAP_FIXED,
            fd,
            offset,
        )
    };
    if p == libc::MAP_FAILED {
        log::error!(
            "cannot map image page at offset {offset} again: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Maps every page damaged by a fault from the image file again.
pub fn repair_pending() {
    if !PENDING_ANY.swap(false, Ordering::AcqRel) {
        return;
    }
    let page = PAGE_SIZE.load(Ordering::Relaxed);
    for slot in &PENDING {
        let p = slot.swap(0, Ordering::AcqRel);
        if p != 0 {
            if let Some(r) = region_of(p) {
                remap(r, p, page);
            }
        }
    }
    if PENDING_OVERFLOW.swap(false, Ordering::AcqRel) {
        for r in &REGIONS {
            let len = r.len.load(Ordering::Acquire);
            if len != 0 {
                remap(r, r.start.load(Ordering::Acquire), len);
            }
        }
    }
}

/// Faults this thread has met so far.
fn faults() -> u64 {
    FAULTS.with(|f| f.load(Ordering::SeqCst))
}

/// Touches every page of `bytes` (a range of a registered mapping) so that
/// it is readable now; `false` if any page faulted (the caller must not use
/// the bytes: they read as zeros until repaired, which this does).
pub fn probe(bytes: &[u8]) -> bool {
    if PENDING_ANY.load(Ordering::Acquire) {
        repair_pending();
    }
    if bytes.is_empty() {
        return true;
    }
    let before = faults();
    compiler_fence(Ordering::SeqCst);
    let page = PAGE_SIZE.load(Ordering::Relaxed);
    let start = bytes.as_ptr() as usize;
    let end = start + bytes.len();
    let mut p = start;
    while p < end {
        // SAFETY: `p` lies inside `bytes`.
        unsafe { std::ptr::read_volatile(p as *const u8) };
        p = (p & !(page - 1)) + page;
    }
    compiler_fence(Ordering::SeqCst);
    if faults() == before {
        return true;
    }
    repair_pending();
    false
}

#[cfg(test)]
mod tests {
    use crate::device::Image;
    use std::fs::OpenOptions;

    /// A mapped file that shrinks: reading past the new end is an error
    /// (not a dead process), reading before it still works, and once the
    /// file has its size back the same read works again.
    #[test]
    fn a_shrunk_image_is_an_error_then_readable_again() {
        let path = std::env::temp_dir().join(format!("fext-fault-{}", std::process::id()));
        let len = 1usize << 20;
        std::fs::write(&path, vec![7u8; len]).unwrap();
        let img = Image::open(&path, false).unwrap();
        assert_eq!(img.checked(len - 4096, 4096).unwrap()[0], 7);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(64 << 10).unwrap();
        assert!(img.checked(len - 4096, 4096).is_err());
        assert!(img.checked(200 << 10, 300 << 10).is_err());
        assert_eq!(img.checked(0, 4096).unwrap()[0], 7);
        f.set_len(len as u64).unwrap();
        let back = img.checked(len - 4096, 4096).unwrap();
        assert!(
            back.iter().all(|&b| b == 0),
            "the regrown part reads as zeros"
        );
        drop(img);
        let _ = std::fs::remove_file(&path);
    }
}
