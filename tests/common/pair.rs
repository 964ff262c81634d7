//! Differential runs: the same workload on a fext mount and on the Linux
//! ext4 driver, each on its own copy of one freshly made image.
//!
//! [`Pair::new`] makes the image (mkfs.fext's library or the system
//! mke2fs), copies it, loop-mounts the copy with the kernel (the
//! reference) and mounts the original with fext. A test applies its
//! workload to [`Pair::fext_root`] and [`Pair::ref_root`], then calls
//! [`Pair::finish`], which judges with every oracle:
//!
//! 1. the live fext tree equals the reference tree;
//! 2. fext unmounts and exits 0; `e2fsck -fn` finds its image clean;
//! 3. the kernel's view of fext's image equals the reference (kernel view);
//! 4. a read-only fext mount of the image equals the kernel's view of the
//!    same image, mtimes to the nanosecond included.
//!
//! Running the workload on the kernel too checks the test's own
//! expectations: an assertion that fails on the reference is a test bug.

use std::path::{Path, PathBuf};

use super::{
    assert_e2fsck_clean, assert_trees_equal, make_fext_image, require_kernel_mount, Cmd,
    CompareOpts, FextMount, KernelMount, TempDir,
};

/// Who formats the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mkfs {
    /// The library behind mkfs.fext.
    Fext,
    /// The system's mke2fs (Debian's defaults).
    System,
}

/// The image and mount of a [`Pair`].
#[derive(Debug, Clone)]
pub struct PairConfig {
    /// `"ext2"`, `"ext3"` or `"ext4"`.
    pub fs_type: &'static str,
    /// 1024 or 4096 (`None`: the size-based default).
    pub block_size: Option<u32>,
    /// Image size in bytes.
    pub size: u64,
    /// mke2fs-style feature edits, e.g. `"^metadata_csum"`.
    pub features: &'static str,
    /// `-o` options of the fext mount.
    pub fext_opts: String,
    /// Who formats.
    pub mkfs: Mkfs,
}

impl PairConfig {
    /// An image of `fs_type` with `block_size`-byte blocks, 128 MiB, made
    /// by mkfs.fext's library, default mount options.
    pub fn new(fs_type: &'static str, block_size: u32) -> PairConfig {
        PairConfig {
            fs_type,
            block_size: Some(block_size),
            size: 128 << 20,
            features: "",
            fext_opts: String::new(),
            mkfs: Mkfs::Fext,
        }
    }

    /// A short name for messages, e.g. `ext4-1k`.
    pub fn label(&self) -> String {
        format!(
            "{}-{}{}",
            self.fs_type,
            self.block_size
                .map_or("default".into(), |b| format!("{}k", b / 1024)),
            if self.mkfs == Mkfs::System {
                "-mke2fs"
            } else {
                ""
            }
        )
    }
}

/// Make an image as `cfg` says at `path`.
pub fn make_image(cfg: &PairConfig, path: &Path) {
    match cfg.mkfs {
        Mkfs::Fext => make_fext_image(path, cfg.size, cfg.fs_type, cfg.block_size, cfg.features),
        Mkfs::System => {
            let mut cmd = Cmd::new("mke2fs")
                .args(["-q", "-F", "-t", cfg.fs_type])
                .env("MKE2FS_CONFIG", "/etc/mke2fs.conf");
            if let Some(bs) = cfg.block_size {
                cmd = cmd.arg("-b").arg(bs.to_string());
            }
            if !cfg.features.is_empty() {
                cmd = cmd.arg("-O").arg(cfg.features);
            }
            cmd.arg(path).arg(format!("{}k", cfg.size / 1024)).run_ok();
        }
    }
}

/// A fext mount and a kernel reference mount of twin images.
pub struct Pair {
    pub cfg: PairConfig,
    pub fext_img: PathBuf,
    pub ref_img: PathBuf,
    fext: Option<FextMount>,
    reference: Option<KernelMount>,
    // Last: dropped after the mounts.
    _dir: TempDir,
}

impl Pair {
    /// Make the twin images and mount them; `None` (after a loud skip
    /// notice) when kernel mounts are not possible here.
    pub fn new(cfg: PairConfig) -> Option<Pair> {
        if !require_kernel_mount() {
            return None;
        }
        let dir = TempDir::new("pair");
        let fext_img = dir.join("fext.img");
        let ref_img = dir.join("ref.img");
        make_image(&cfg, &fext_img);
        Cmd::new("cp")
            .arg("--sparse=always")
            .arg(&fext_img)
            .arg(&ref_img)
            .run_ok();
        let reference = KernelMount::new(&ref_img, true);
        let fext = FextMount::new(&fext_img, &cfg.fext_opts);
        Some(Pair {
            cfg,
            fext_img,
            ref_img,
            fext: Some(fext),
            reference: Some(reference),
            _dir: dir,
        })
    }

    /// Root of the fext mount.
    pub fn fext_root(&self) -> &Path {
        self.fext.as_ref().expect("fext mounted").path()
    }

    /// Root of the kernel reference mount.
    pub fn ref_root(&self) -> &Path {
        self.reference.as_ref().expect("reference mounted").path()
    }

    /// The fext mount.
    pub fn fext_mount(&mut self) -> &mut FextMount {
        self.fext.as_mut().expect("fext mounted")
    }

    /// Both roots, reference first, with a name for messages.
    pub fn roots(&self) -> [(&'static str, PathBuf); 2] {
        [
            ("reference", self.ref_root().to_owned()),
            ("fext", self.fext_root().to_owned()),
        ]
    }

    /// Assert the live trees are equal under `opts`.
    #[track_caller]
    pub fn compare_live(&self, opts: &CompareOpts) {
        assert_trees_equal(self.fext_root(), self.ref_root(), opts);
    }

    /// Unmount fext (must exit 0) and mount the image again.
    pub fn remount_fext(&mut self) {
        self.fext.take().expect("fext mounted").unmount();
        self.fext = Some(FextMount::new(&self.fext_img, &self.cfg.fext_opts));
    }

    /// Run every oracle (see the module notes); `opts` compares fext with
    /// the reference (usually without mtimes: the two ran at different
    /// moments).
    #[track_caller]
    pub fn finish(mut self, opts: &CompareOpts) {
        self.compare_live(opts);
        self.fext.take().expect("fext mounted").unmount();
        if let Err(e) = self.reference.take().expect("reference mounted").unmount() {
            panic!("reference unmount: {e}");
        }
        assert_e2fsck_clean(&self.fext_img);
        {
            let kernel_fext = KernelMount::new(&self.fext_img, false);
            let kernel_ref = KernelMount::new(&self.ref_img, false);
            assert_trees_equal(kernel_fext.path(), kernel_ref.path(), opts);
            let fext_ro = FextMount::new(&self.fext_img, "ro");
            let exact = CompareOpts {
                mtime_nsec: true,
                ..CompareOpts::default()
            };
            assert_trees_equal(fext_ro.path(), kernel_fext.path(), &exact);
            fext_ro.unmount();
        }
        assert_e2fsck_clean(&self.fext_img);
    }
}

/// Compare options for fext against a reference that ran at another
/// moment: no mtimes.
pub fn no_mtime() -> CompareOpts {
    CompareOpts {
        mtime: false,
        ..CompareOpts::default()
    }
}
