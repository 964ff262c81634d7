//! What the user asked `mkfs.fext` for, and how the unspecified parts are
//! filled in the way Debian's mke2fs 1.47 does with its stock
//! `/etc/mke2fs.conf`: a base feature set, per-type features (ext3 adds a
//! journal; ext4 adds extents, flex_bg, 64bit, metadata_csum and friends) and
//! per-size profiles (floppy < 3 MiB, small < 512 MiB with 1 KiB blocks,
//! default, big >= 4 TiB, huge >= 16 TiB) that choose the block size and the
//! bytes-per-inode ratio.

use crate::format::features::{Compat, Features, Incompat, RoCompat};

/// File system flavour (`-t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsType {
    Ext2,
    Ext3,
    Ext4,
}

impl FsType {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "ext2" => Ok(FsType::Ext2),
            "ext3" => Ok(FsType::Ext3),
            "ext4" => Ok(FsType::Ext4),
            other => Err(format!(
                "unknown file system type '{other}' (expected ext2, ext3 or ext4)"
            )),
        }
    }
}

/// A `-O` edit: set or clear one named feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureEdit {
    pub name: String,
    pub on: bool,
}

/// Parses `-O feat,^feat,...`.
pub fn parse_feature_edits(s: &str) -> Vec<FeatureEdit> {
    s.split([',', ' '])
        .filter(|p| !p.is_empty())
        .map(|p| match p.strip_prefix('^') {
            Some(name) => FeatureEdit {
                name: name.to_string(),
                on: false,
            },
            None => FeatureEdit {
                name: p.to_string(),
                on: true,
            },
        })
        .collect()
}

/// Everything `mkfs.fext` can be told. `None` means "the profile decides".
#[derive(Debug, Clone)]
pub struct MkfsOptions {
    pub fs_type: FsType,
    pub block_size: Option<u32>,
    pub inode_size: Option<u16>,
    pub inode_ratio: Option<u64>,
    pub inodes_count: Option<u64>,
    pub reserved_percent: f64,
    pub label: String,
    pub uuid: Option<[u8; 16]>,
    pub feature_edits: Vec<FeatureEdit>,
    /// Journal size in MiB (`-J size=`).
    pub journal_size_mib: Option<u64>,
    pub root_uid: u32,
    pub root_gid: u32,
    /// Whether `-E root_owner` was given (with `-d` the root otherwise
    /// takes the source directory's owner).
    pub root_owner_set: bool,
    pub blocks_per_group: Option<u32>,
    pub flex_bg_size: Option<u32>,
    /// Creation time (seconds since the epoch); `None` = now.
    pub now: Option<i64>,
    pub source_dir: Option<std::path::PathBuf>,
    pub quiet: bool,
}

impl Default for MkfsOptions {
    fn default() -> Self {
        MkfsOptions {
            fs_type: FsType::Ext4,
            block_size: None,
            inode_size: None,
            inode_ratio: None,
            inodes_count: None,
            reserved_percent: 5.0,
            label: String::new(),
            uuid: None,
            feature_edits: Vec::new(),
            journal_size_mib: None,
            root_uid: 0,
            root_gid: 0,
            root_owner_set: false,
            blocks_per_group: None,
            flex_bg_size: None,
            now: None,
            source_dir: None,
            quiet: true,
        }
    }
}

/// mke2fs' size classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeType {
    Floppy,
    Small,
    Default,
    Big,
    Huge,
}

impl SizeType {
    pub fn for_bytes(bytes: u64) -> Self {
        const MIB: u64 = 1 << 20;
        const TIB: u64 = 1 << 40;
        if bytes < 3 * MIB {
            SizeType::Floppy
        } else if bytes < 512 * MIB {
            SizeType::Small
        } else if bytes < 4 * TIB {
            SizeType::Default
        } else if bytes < 16 * TIB {
            SizeType::Big
        } else {
            SizeType::Huge
        }
    }

    pub fn block_size(self) -> u32 {
        match self {
            SizeType::Floppy | SizeType::Small => 1024,
            _ => 4096,
        }
    }

    pub fn inode_ratio(self) -> u64 {
        match self {
            SizeType::Floppy => 8192,
            SizeType::Small => 4096,
            SizeType::Default => 16384,
            SizeType::Big => 32768,
            SizeType::Huge => 65536,
        }
    }
}

/// Features mkfs.fext knows how to lay out correctly.
const MKFS_SUPPORTED: Features = Features {
    compat: Compat::HAS_JOURNAL
        .union(Compat::EXT_ATTR)
        .union(Compat::RESIZE_INODE)
        .union(Compat::DIR_INDEX)
        .union(Compat::ORPHAN_FILE),
    incompat: Incompat::FILETYPE
        .union(Incompat::EXTENTS)
        .union(Incompat::BIT64)
        .union(Incompat::FLEX_BG)
        .union(Incompat::META_BG)
        .union(Incompat::CSUM_SEED)
        .union(Incompat::LARGEDIR),
    ro_compat: RoCompat::SPARSE_SUPER
        .union(RoCompat::LARGE_FILE)
        .union(RoCompat::HUGE_FILE)
        .union(RoCompat::GDT_CSUM)
        .union(RoCompat::DIR_NLINK)
        .union(RoCompat::EXTRA_ISIZE)
        .union(RoCompat::METADATA_CSUM),
};

/// The feature set for a type after `-O` edits, checked for what mkfs.fext
/// supports and for combinations that cannot work.
pub fn resolve_features(fs_type: FsType, edits: &[FeatureEdit]) -> Result<Features, String> {
    let mut f = Features::default();
    let base = [
        "sparse_super",
        "large_file",
        "filetype",
        "resize_inode",
        "dir_index",
        "ext_attr",
    ];
    let ext4 = [
        "has_journal",
        "extent",
        "huge_file",
        "flex_bg",
        "metadata_csum",
        "64bit",
        "dir_nlink",
        "extra_isize",
    ];
    let typed: &[&str] = match fs_type {
        FsType::Ext2 => &[],
        FsType::Ext3 => &["has_journal"],
        FsType::Ext4 => &ext4,
    };
    for name in base.iter().chain(typed) {
        f.set_by_name(name, true)?;
    }
    for e in edits {
        f.set_by_name(&e.name, e.on)?;
        if e.on {
            let probe = {
                let mut p = Features::default();
                p.set_by_name(&e.name, true)?;
                p
            };
            let unsupported = probe.compat.difference(MKFS_SUPPORTED.compat).bits()
                | probe.incompat.difference(MKFS_SUPPORTED.incompat).bits()
                | probe.ro_compat.difference(MKFS_SUPPORTED.ro_compat).bits();
            if unsupported != 0 {
                return Err(format!(
                    "feature '{}' is not supported by mkfs.fext",
                    e.name
                ));
            }
        }
    }
    if f.ro_compat.contains(RoCompat::METADATA_CSUM) {
        // metadata_csum supersedes uninit_bg (gdt_csum), as in mke2fs.
        f.ro_compat.remove(RoCompat::GDT_CSUM);
    }
    if f.incompat.contains(Incompat::CSUM_SEED) && !f.has_metadata_csum() {
        return Err("metadata_csum_seed needs metadata_csum".into());
    }
    if f.incompat.contains(Incompat::BIT64) && !f.incompat.contains(Incompat::EXTENTS) {
        // As mke2fs: block maps cannot address blocks past 2^32.
        return Err("64bit needs extent (add -O ^64bit to use block maps)".into());
    }
    if f.compat.contains(Compat::ORPHAN_FILE) && !f.compat.contains(Compat::HAS_JOURNAL) {
        return Err("orphan_file needs has_journal".into());
    }
    if f.compat.contains(Compat::RESIZE_INODE) && !f.ro_compat.contains(RoCompat::SPARSE_SUPER) {
        return Err("resize_inode needs sparse_super".into());
    }
    Ok(f)
}

/// Parses a size with an optional K/M/G/T suffix (powers of 1024). Without
/// a suffix the number counts `unit` bytes (mke2fs: KiB, or blocks with -b).
pub fn parse_size(s: &str, unit: u64) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some(c @ ('k' | 'K' | 'm' | 'M' | 'g' | 'G' | 't' | 'T')) => {
            let shift = match c.to_ascii_lowercase() {
                'k' => 10,
                'm' => 20,
                'g' => 30,
                _ => 40,
            };
            (&s[..s.len() - 1], 1u64 << shift)
        }
        _ => (s, unit),
    };
    let n: u64 = num.parse().map_err(|_| format!("invalid size '{s}'"))?;
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("invalid size '{s}'"))
}

/// Parses a textual UUID (with or without dashes), or the words `random`,
/// `time` (both: a fresh random UUID) and `clear` (all zeros).
pub fn parse_uuid(s: &str) -> Result<Option<[u8; 16]>, String> {
    match s {
        "random" | "time" => return Ok(None),
        "clear" | "null" => return Ok(Some([0; 16])),
        _ => {}
    }
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return Err(format!("invalid UUID '{s}'"));
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("invalid UUID '{s}'"))?;
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext4_defaults_match_debian_mke2fs() {
        let f = resolve_features(FsType::Ext4, &[]).unwrap();
        assert_eq!(
            f.names().join(" "),
            "has_journal ext_attr resize_inode dir_index filetype extent 64bit flex_bg \
             sparse_super large_file huge_file dir_nlink extra_isize metadata_csum"
        );
        let f2 = resolve_features(FsType::Ext2, &[]).unwrap();
        assert_eq!(
            f2.names().join(" "),
            "ext_attr resize_inode dir_index filetype sparse_super large_file"
        );
    }

    #[test]
    fn edits_apply_and_unsupported_features_are_refused() {
        let edits = parse_feature_edits("orphan_file,metadata_csum_seed,^resize_inode");
        let f = resolve_features(FsType::Ext4, &edits).unwrap();
        assert!(f.has("orphan_file") && f.has("metadata_csum_seed") && !f.has("resize_inode"));
        let err = resolve_features(FsType::Ext4, &parse_feature_edits("bigalloc")).unwrap_err();
        assert!(err.contains("bigalloc"), "{err}");
        assert!(resolve_features(FsType::Ext4, &parse_feature_edits("nosuch")).is_err());
        let err = resolve_features(FsType::Ext4, &parse_feature_edits("^extent")).unwrap_err();
        assert!(err.contains("64bit"), "{err}");
        assert!(resolve_features(FsType::Ext4, &parse_feature_edits("^extent,^64bit")).is_ok());
    }

    #[test]
    fn sizes_and_uuids_parse() {
        assert_eq!(parse_size("8M", 1024).unwrap(), 8 << 20);
        assert_eq!(parse_size("1T", 1024).unwrap(), 1 << 40);
        assert_eq!(parse_size("100", 4096).unwrap(), 409_600);
        assert!(parse_size("12Q", 1).is_err());
        assert!(parse_size("0", 1).is_err());
        let u = parse_uuid("1bfeb11e-3e49-46a8-8052-9f20ddefcb17")
            .unwrap()
            .unwrap();
        assert_eq!(u[0], 0x1b);
        assert_eq!(u[15], 0x17);
        assert!(parse_uuid("xyz").is_err());
    }
}
