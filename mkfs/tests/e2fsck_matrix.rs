//! Acceptance: `e2fsck -fn` finds every image mkfs.fext makes clean, over
//! the whole matrix profile {ext2, ext3, ext4, ext4 + orphan_file +
//! metadata_csum_seed, ext4 without metadata_csum} x block size {1024,
//! 4096} x size {8 MiB, 300 MiB, 5 GiB, 1 TiB}. The big images are sparse
//! files: each test also checks that the image costs little disk space
//! (mkfs.fext never writes zeros into a hole) and that `dumpe2fs` sees the
//! profile's features, block size and block count.
//!
//! Cost: the 1 TiB ext2/ext3 images at 1 KiB blocks have 131,072 groups
//! whose bitmaps must all be written (no uninit_bg), ~600 MB each, and
//! e2fsck needs ~45 s on each; everything else takes seconds.

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::time::Duration;

use common::e2fs::e2fsck_fn_timeout;
use common::{dumpe2fs_h, TempImage};
use support::{allocated_bytes, mkfs_ok, size_bytes};

/// e2fsck's time limit here: a 1 TiB ext2 image with 1 KiB blocks takes
/// ~50 s alone, more with other tests running beside it.
const E2FSCK_LIMIT: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, Copy)]
enum Profile {
    Ext2,
    Ext3,
    Ext4,
    /// ext4 plus upstream 1.47's orphan_file and metadata_csum_seed.
    Ext4Orphan,
    /// ext4 with `-O ^metadata_csum` (group descriptors then use crc16).
    Ext4NoCsum,
}

impl Profile {
    fn args(self) -> &'static [&'static str] {
        match self {
            Profile::Ext2 => &["-t", "ext2"],
            Profile::Ext3 => &["-t", "ext3"],
            Profile::Ext4 => &["-t", "ext4"],
            Profile::Ext4Orphan => &["-t", "ext4", "-O", "orphan_file,metadata_csum_seed"],
            Profile::Ext4NoCsum => &["-t", "ext4", "-O", "^metadata_csum"],
        }
    }

    /// (feature, expected presence) pairs `dumpe2fs -h` must show.
    fn expected_features(self) -> Vec<(&'static str, bool)> {
        let ext4 = !matches!(self, Profile::Ext2 | Profile::Ext3);
        vec![
            ("has_journal", !matches!(self, Profile::Ext2)),
            ("extent", ext4),
            ("flex_bg", ext4),
            ("64bit", ext4),
            (
                "metadata_csum",
                ext4 && !matches!(self, Profile::Ext4NoCsum),
            ),
            ("orphan_file", matches!(self, Profile::Ext4Orphan)),
            ("metadata_csum_seed", matches!(self, Profile::Ext4Orphan)),
            ("sparse_super", true),
            ("dir_index", true),
            ("filetype", true),
        ]
    }
}

/// Most disk space an image of `size` bytes may take.
fn allocation_limit(size: u64) -> u64 {
    match size {
        s if s <= 8 << 20 => 2 << 20,
        s if s <= 300 << 20 => 8 << 20,
        s if s <= 5 << 30 => 64 << 20,
        // ext2/ext3 at 1 KiB blocks: ~600 MB of bitmaps (mke2fs writes the
        // same bitmaps, and 16 GiB of inode tables besides).
        _ => 1 << 30,
    }
}

fn check(profile: Profile, block_size: u32, size: &str) {
    let img = TempImage::empty();
    let bs = block_size.to_string();
    let mut args = profile.args().to_vec();
    args.extend(["-b", &bs]);
    mkfs_ok(&args, img.path(), size);

    let (code, output) = e2fsck_fn_timeout(img.path(), E2FSCK_LIMIT);
    assert!(
        code == 0,
        "e2fsck -fn exited {code} on mkfs.fext {args:?} IMG {size}:\n{output}"
    );

    let bytes = size_bytes(size);
    assert_eq!(img.len(), bytes, "image file length");
    let used = allocated_bytes(img.path());
    assert!(
        used <= allocation_limit(bytes),
        "{size} image ({args:?}) occupies {used} bytes on disk, more than {}",
        allocation_limit(bytes)
    );

    let d = dumpe2fs_h(img.path());
    assert_eq!(d.num("Block size"), u64::from(block_size), "{}", d.raw);
    assert_eq!(
        d.num("Block count"),
        bytes / u64::from(block_size),
        "{}",
        d.raw
    );
    for (feature, on) in profile.expected_features() {
        assert_eq!(
            d.has_feature(feature),
            on,
            "{profile:?}: feature {feature} should be {}: {:?}",
            if on { "on" } else { "off" },
            d.features()
        );
    }
    // Reserved GDT blocks (resize_inode), unless the descriptor table is
    // too big for them and mkfs switched to meta_bg, as mke2fs does (ext4
    // at 1 KiB blocks and 1 TiB).
    assert_ne!(
        d.has_feature("resize_inode"),
        d.has_feature("meta_bg"),
        "exactly one of resize_inode and meta_bg: {:?}",
        d.features()
    );
    eprintln!("{profile:?} {block_size} {size}: clean, {used} bytes on disk");
}

/// One test per cell of the matrix, so nextest spreads them over the cores
/// and a failure names its cell.
macro_rules! matrix {
    ($($name:ident: $profile:ident, $bs:literal, $size:literal;)*) => {
        $(
            #[test]
            fn $name() {
                check(Profile::$profile, $bs, $size);
            }
        )*
    };
}

matrix! {
    ext2_1k_8m: Ext2, 1024, "8M";
    ext2_1k_300m: Ext2, 1024, "300M";
    ext2_1k_5g: Ext2, 1024, "5G";
    ext2_1k_1t: Ext2, 1024, "1T";
    ext2_4k_8m: Ext2, 4096, "8M";
    ext2_4k_300m: Ext2, 4096, "300M";
    ext2_4k_5g: Ext2, 4096, "5G";
    ext2_4k_1t: Ext2, 4096, "1T";

    ext3_1k_8m: Ext3, 1024, "8M";
    ext3_1k_300m: Ext3, 1024, "300M";
    ext3_1k_5g: Ext3, 1024, "5G";
    ext3_1k_1t: Ext3, 1024, "1T";
    ext3_4k_8m: Ext3, 4096, "8M";
    ext3_4k_300m: Ext3, 4096, "300M";
    ext3_4k_5g: Ext3, 4096, "5G";
    ext3_4k_1t: Ext3, 4096, "1T";

    ext4_1k_8m: Ext4, 1024, "8M";
    ext4_1k_300m: Ext4, 1024, "300M";
    ext4_1k_5g: Ext4, 1024, "5G";
    ext4_1k_1t: Ext4, 1024, "1T";
    ext4_4k_8m: Ext4, 4096, "8M";
    ext4_4k_300m: Ext4, 4096, "300M";
    ext4_4k_5g: Ext4, 4096, "5G";
    ext4_4k_1t: Ext4, 4096, "1T";

    ext4_orphan_seed_1k_8m: Ext4Orphan, 1024, "8M";
    ext4_orphan_seed_1k_300m: Ext4Orphan, 1024, "300M";
    ext4_orphan_seed_1k_5g: Ext4Orphan, 1024, "5G";
    ext4_orphan_seed_1k_1t: Ext4Orphan, 1024, "1T";
    ext4_orphan_seed_4k_8m: Ext4Orphan, 4096, "8M";
    ext4_orphan_seed_4k_300m: Ext4Orphan, 4096, "300M";
    ext4_orphan_seed_4k_5g: Ext4Orphan, 4096, "5G";
    ext4_orphan_seed_4k_1t: Ext4Orphan, 4096, "1T";

    ext4_nocsum_1k_8m: Ext4NoCsum, 1024, "8M";
    ext4_nocsum_1k_300m: Ext4NoCsum, 1024, "300M";
    ext4_nocsum_1k_5g: Ext4NoCsum, 1024, "5G";
    ext4_nocsum_1k_1t: Ext4NoCsum, 1024, "1T";
    ext4_nocsum_4k_8m: Ext4NoCsum, 4096, "8M";
    ext4_nocsum_4k_300m: Ext4NoCsum, 4096, "300M";
    ext4_nocsum_4k_5g: Ext4NoCsum, 4096, "5G";
    ext4_nocsum_4k_1t: Ext4NoCsum, 4096, "1T";
}
