//! `Image::prefetch_ranges` against the kernel's page cache: an image file is
//! written, dropped from the page cache, mapped, and one block of it asked
//! for ahead; mincore(2) then shows which pages the kernel has taken in.
//! The ask reads the whole aligned `PREFETCH_GRAIN` stretch around the
//! block, and nothing past it.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fext::device::{Image, PREFETCH_GRAIN};

const PAGE: usize = 4096;

/// For each page of `bytes` (page-aligned), whether it is in memory.
fn resident(bytes: &[u8]) -> Vec<bool> {
    let pages = bytes.len().div_ceil(PAGE);
    let mut vec = vec![0u8; pages];
    // SAFETY: `bytes` is a live mapping of `bytes.len()` bytes starting
    // on a page boundary, and `vec` has one byte per page of it.
    let r = unsafe {
        libc::mincore(
            bytes.as_ptr() as *mut libc::c_void,
            bytes.len(),
            vec.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0, "mincore: {}", std::io::Error::last_os_error());
    vec.iter().map(|&b| b & 1 == 1).collect()
}

/// A file in the target directory, which lives on a disk file system
/// (a tmpfs file is always in memory, and mincore could show nothing);
/// removed when dropped, also when the test fails.
struct ScratchFile(PathBuf);

impl ScratchFile {
    fn new(name: &str) -> ScratchFile {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(&dir).unwrap();
        ScratchFile(dir.join(format!("{name}-{}", std::process::id())))
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_prefetch_reads_the_whole_stretch_around_the_block_asked_for() {
    let scratch = ScratchFile::new("prefetch");
    let path = &scratch.0;
    let len = 8 * PREFETCH_GRAIN;
    {
        let mut f = File::create(path).unwrap();
        f.write_all(&vec![0x5a; len]).unwrap();
        f.sync_all().unwrap();
        // SAFETY: fadvise on a descriptor we own.
        let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(r, 0);
    }
    let img = Image::open(path, false).unwrap();
    let before = resident(img.bytes());
    assert!(
        before.iter().all(|&r| !r),
        "{} stayed in the page cache after POSIX_FADV_DONTNEED \
         ({} of {} pages): is the target directory on tmpfs?",
        path.display(),
        before.iter().filter(|&&r| r).count(),
        before.len()
    );

    // One block in the middle of the fourth stretch.
    let stretch = 3 * PREFETCH_GRAIN;
    img.prefetch_ranges([((stretch + 5 * PAGE) as u64, PAGE as u64)]);
    let first = stretch / PAGE;
    let last = (stretch + PREFETCH_GRAIN) / PAGE;
    let deadline = Instant::now() + Duration::from_secs(10);
    let now = loop {
        let now = resident(img.bytes());
        if now[first..last].iter().all(|&r| r) || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let inside = now[first..last].iter().filter(|&&r| r).count();
    assert_eq!(inside, last - first, "pages of the stretch read ahead");
    let outside: Vec<usize> = (0..now.len())
        .filter(|&p| now[p] && !(first..last).contains(&p))
        .collect();
    assert!(
        outside.is_empty(),
        "pages read outside the stretch: {outside:?}"
    );
}
