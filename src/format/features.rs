//! Feature flags of the superblock (`s_feature_compat`, `s_feature_incompat`,
//! `s_feature_ro_compat`) with the names e2fsprogs uses for them.
//!
//! The rule ext4 applies, and fext with it: an unknown INCOMPAT bit means the
//! file system must not be touched at all; an unknown RO_COMPAT bit means it
//! may be read but not written; unknown COMPAT bits can be ignored.

use bitflags::bitflags;

bitflags! {
    /// `s_feature_compat`
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Compat: u32 {
        const DIR_PREALLOC = 0x0001;
        const IMAGIC_INODES = 0x0002;
        const HAS_JOURNAL = 0x0004;
        const EXT_ATTR = 0x0008;
        const RESIZE_INODE = 0x0010;
        const DIR_INDEX = 0x0020;
        const LAZY_BG = 0x0040;
        const EXCLUDE_INODE = 0x0080;
        const EXCLUDE_BITMAP = 0x0100;
        const SPARSE_SUPER2 = 0x0200;
        const FAST_COMMIT = 0x0400;
        const STABLE_INODES = 0x0800;
        const ORPHAN_FILE = 0x1000;
    }
}

bitflags! {
    /// `s_feature_incompat`
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Incompat: u32 {
        const COMPRESSION = 0x0001;
        const FILETYPE = 0x0002;
        const RECOVER = 0x0004;
        const JOURNAL_DEV = 0x0008;
        const META_BG = 0x0010;
        const EXTENTS = 0x0040;
        const BIT64 = 0x0080;
        const MMP = 0x0100;
        const FLEX_BG = 0x0200;
        const EA_INODE = 0x0400;
        const DIRDATA = 0x1000;
        const CSUM_SEED = 0x2000;
        const LARGEDIR = 0x4000;
        const INLINE_DATA = 0x8000;
        const ENCRYPT = 0x10000;
        const CASEFOLD = 0x20000;
    }
}

bitflags! {
    /// `s_feature_ro_compat`
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct RoCompat: u32 {
        const SPARSE_SUPER = 0x0001;
        const LARGE_FILE = 0x0002;
        const BTREE_DIR = 0x0004;
        const HUGE_FILE = 0x0008;
        const GDT_CSUM = 0x0010;
        const DIR_NLINK = 0x0020;
        const EXTRA_ISIZE = 0x0040;
        const HAS_SNAPSHOT = 0x0080;
        const QUOTA = 0x0100;
        const BIGALLOC = 0x0200;
        const METADATA_CSUM = 0x0400;
        const REPLICA = 0x0800;
        const READONLY = 0x1000;
        const PROJECT = 0x2000;
        const SHARED_BLOCKS = 0x4000;
        const VERITY = 0x8000;
        const ORPHAN_PRESENT = 0x10000;
    }
}

/// The three feature words together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    pub compat: Compat,
    pub incompat: Incompat,
    pub ro_compat: RoCompat,
}

/// Which of the three words a feature lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureWord {
    Compat,
    Incompat,
    RoCompat,
}

/// e2fsprogs' names, in the order `dumpe2fs` prints them (compat bits
/// ascending, then incompat, then ro_compat).
const NAMES: &[(FeatureWord, u32, &str)] = &[
    (FeatureWord::Compat, 0x0001, "dir_prealloc"),
    (FeatureWord::Compat, 0x0002, "imagic_inodes"),
    (FeatureWord::Compat, 0x0004, "has_journal"),
    (FeatureWord::Compat, 0x0008, "ext_attr"),
    (FeatureWord::Compat, 0x0010, "resize_inode"),
    (FeatureWord::Compat, 0x0020, "dir_index"),
    (FeatureWord::Compat, 0x0040, "lazy_bg"),
    (FeatureWord::Compat, 0x0080, "snapshot_exclude"),
    (FeatureWord::Compat, 0x0100, "exclude_bitmap"),
    (FeatureWord::Compat, 0x0200, "sparse_super2"),
    (FeatureWord::Compat, 0x0400, "fast_commit"),
    (FeatureWord::Compat, 0x0800, "stable_inodes"),
    (FeatureWord::Compat, 0x1000, "orphan_file"),
    (FeatureWord::Incompat, 0x0001, "compression"),
    (FeatureWord::Incompat, 0x0002, "filetype"),
    (FeatureWord::Incompat, 0x0004, "needs_recovery"),
    (FeatureWord::Incompat, 0x0008, "journal_dev"),
    (FeatureWord::Incompat, 0x0010, "meta_bg"),
    (FeatureWord::Incompat, 0x0040, "extent"),
    (FeatureWord::Incompat, 0x0080, "64bit"),
    (FeatureWord::Incompat, 0x0100, "mmp"),
    (FeatureWord::Incompat, 0x0200, "flex_bg"),
    (FeatureWord::Incompat, 0x0400, "ea_inode"),
    (FeatureWord::Incompat, 0x1000, "dirdata"),
    (FeatureWord::Incompat, 0x2000, "metadata_csum_seed"),
    (FeatureWord::Incompat, 0x4000, "large_dir"),
    (FeatureWord::Incompat, 0x8000, "inline_data"),
    (FeatureWord::Incompat, 0x10000, "encrypt"),
    (FeatureWord::Incompat, 0x20000, "casefold"),
    (FeatureWord::RoCompat, 0x0001, "sparse_super"),
    (FeatureWord::RoCompat, 0x0002, "large_file"),
    (FeatureWord::RoCompat, 0x0004, "btree_dir"),
    (FeatureWord::RoCompat, 0x0008, "huge_file"),
    (FeatureWord::RoCompat, 0x0010, "uninit_bg"),
    (FeatureWord::RoCompat, 0x0020, "dir_nlink"),
    (FeatureWord::RoCompat, 0x0040, "extra_isize"),
    (FeatureWord::RoCompat, 0x0080, "snapshot"),
    (FeatureWord::RoCompat, 0x0100, "quota"),
    (FeatureWord::RoCompat, 0x0200, "bigalloc"),
    (FeatureWord::RoCompat, 0x0400, "metadata_csum"),
    (FeatureWord::RoCompat, 0x0800, "replica"),
    (FeatureWord::RoCompat, 0x1000, "read-only"),
    (FeatureWord::RoCompat, 0x2000, "project"),
    (FeatureWord::RoCompat, 0x4000, "shared_blocks"),
    (FeatureWord::RoCompat, 0x8000, "verity"),
    (FeatureWord::RoCompat, 0x10000, "orphan_present"),
];

/// Other spellings e2fsprogs accepts on its command lines.
const ALIASES: &[(&str, &str)] = &[
    ("extents", "extent"),
    ("gdt_csum", "uninit_bg"),
    ("uninit_groups", "uninit_bg"),
    ("dir_nlinks", "dir_nlink"),
    ("largedir", "large_dir"),
];

/// INCOMPAT bits fext can read and write.
pub const SUPPORTED_INCOMPAT: Incompat = Incompat::FILETYPE
    .union(Incompat::RECOVER)
    .union(Incompat::META_BG)
    .union(Incompat::EXTENTS)
    .union(Incompat::BIT64)
    .union(Incompat::FLEX_BG)
    .union(Incompat::CSUM_SEED)
    .union(Incompat::LARGEDIR)
    .union(Incompat::INLINE_DATA);

/// RO_COMPAT bits fext can write safely.
pub const SUPPORTED_RO_COMPAT: RoCompat = RoCompat::SPARSE_SUPER
    .union(RoCompat::LARGE_FILE)
    .union(RoCompat::BTREE_DIR)
    .union(RoCompat::HUGE_FILE)
    .union(RoCompat::GDT_CSUM)
    .union(RoCompat::DIR_NLINK)
    .union(RoCompat::EXTRA_ISIZE)
    .union(RoCompat::METADATA_CSUM)
    .union(RoCompat::ORPHAN_PRESENT);

impl Features {
    /// Whether the named feature (e2fsprogs spelling or alias) is set.
    pub fn has(&self, name: &str) -> bool {
        match lookup(name) {
            Some((word, bit)) => self.word(word) & bit != 0,
            None => false,
        }
    }

    fn word(&self, word: FeatureWord) -> u32 {
        match word {
            FeatureWord::Compat => self.compat.bits(),
            FeatureWord::Incompat => self.incompat.bits(),
            FeatureWord::RoCompat => self.ro_compat.bits(),
        }
    }

    /// Sets or clears a feature by name; `Err` names an unknown feature.
    pub fn set_by_name(&mut self, name: &str, on: bool) -> Result<(), String> {
        let (word, bit) = lookup(name).ok_or_else(|| format!("unknown feature '{name}'"))?;
        let apply = |bits: u32| if on { bits | bit } else { bits & !bit };
        match word {
            FeatureWord::Compat => {
                self.compat = Compat::from_bits_retain(apply(self.compat.bits()))
            }
            FeatureWord::Incompat => {
                self.incompat = Incompat::from_bits_retain(apply(self.incompat.bits()))
            }
            FeatureWord::RoCompat => {
                self.ro_compat = RoCompat::from_bits_retain(apply(self.ro_compat.bits()))
            }
        }
        Ok(())
    }

    /// The names of every set feature, in `dumpe2fs` order; unknown bits are
    /// shown as `FEATURE_C12`, `FEATURE_I31`, `FEATURE_R20` like e2fsprogs.
    pub fn names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (word, prefix) in [
            (FeatureWord::Compat, 'C'),
            (FeatureWord::Incompat, 'I'),
            (FeatureWord::RoCompat, 'R'),
        ] {
            let bits = self.word(word);
            for bit_no in 0..32 {
                let bit = 1u32 << bit_no;
                if bits & bit == 0 {
                    continue;
                }
                match NAMES.iter().find(|(w, b, _)| *w == word && *b == bit) {
                    Some((_, _, name)) => out.push((*name).to_string()),
                    None => out.push(format!("FEATURE_{prefix}{bit_no}")),
                }
            }
        }
        out
    }

    /// INCOMPAT bits set here that fext does not understand.
    pub fn unknown_incompat(&self) -> Incompat {
        self.incompat.difference(SUPPORTED_INCOMPAT)
    }

    /// RO_COMPAT bits set here that fext cannot write safely.
    pub fn unknown_ro_compat(&self) -> RoCompat {
        self.ro_compat.difference(SUPPORTED_RO_COMPAT)
    }

    /// Names of a subset of the incompat bits (for messages).
    pub fn incompat_names(bits: Incompat) -> Vec<String> {
        Features {
            incompat: bits,
            ..Features::default()
        }
        .names()
    }

    /// Names of a subset of the ro_compat bits (for messages).
    pub fn ro_compat_names(bits: RoCompat) -> Vec<String> {
        Features {
            ro_compat: bits,
            ..Features::default()
        }
        .names()
    }

    /// Whether any group-descriptor checksum is in use (gdt_csum or metadata_csum).
    pub fn has_group_csum(&self) -> bool {
        self.ro_compat
            .intersects(RoCompat::GDT_CSUM | RoCompat::METADATA_CSUM)
    }

    /// Whether crc32c metadata checksums are in use.
    pub fn has_metadata_csum(&self) -> bool {
        self.ro_compat.contains(RoCompat::METADATA_CSUM)
    }
}

fn lookup(name: &str) -> Option<(FeatureWord, u32)> {
    let lower = name.to_ascii_lowercase();
    let canonical = ALIASES
        .iter()
        .find(|(alias, _)| *alias == lower)
        .map_or(lower.as_str(), |(_, real)| real);
    NAMES
        .iter()
        .find(|(_, _, n)| *n == canonical)
        .map(|(w, b, _)| (*w, *b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dumpe2fs_order() {
        let mut f = Features::default();
        for name in [
            "metadata_csum",
            "has_journal",
            "extent",
            "64bit",
            "sparse_super",
            "ext_attr",
        ] {
            f.set_by_name(name, true).unwrap();
        }
        assert_eq!(
            f.names().join(" "),
            "has_journal ext_attr extent 64bit sparse_super metadata_csum"
        );
    }

    #[test]
    fn aliases_and_clearing_work() {
        let mut f = Features::default();
        f.set_by_name("extents", true).unwrap();
        assert!(f.incompat.contains(Incompat::EXTENTS));
        f.set_by_name("extent", false).unwrap();
        assert!(f.incompat.is_empty());
        assert!(f.set_by_name("warp_drive", true).is_err());
    }

    #[test]
    fn unknown_bits_are_reported_by_number() {
        let f = Features {
            incompat: Incompat::from_bits_retain(1 << 30),
            ..Features::default()
        };
        assert_eq!(f.names(), vec!["FEATURE_I30".to_string()]);
        assert_eq!(f.unknown_incompat().bits(), 1 << 30);
    }
}
