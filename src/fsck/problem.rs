//! The problem table and the reporter that asks (or answers) every question.
//!
//! Each problem the checker can find has a [`Code`]; [`Code::info`] gives its
//! message template, its prompt and its flags, after e2fsck's problem table:
//! - `PREEN_OK`: `-p`/`-a` may fix it without a human; a problem without it
//!   stops a preen run ("UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY").
//! - `NO_OK`: answering "no" does not leave the file system marked as having
//!   errors (optimisations, and counts the kernel recomputes).
//! - `PREEN_NOMSG`: silent in preen mode. `NOT_A_FIX`: a "yes" is not a
//!   repair (exit code stays 0).
//!
//! Templates name the values of a [`PCtx`] in braces: `{ino}`, `{ino2}`,
//! `{dir}`, `{blk}`, `{blk2}`, `{blkcount}`, `{group}`, `{num}`, `{num2}`,
//! `{name}`, `{path}`, `{path2}`, `{str}`, `{bdesc}` (a block described by
//! its role: "block #7", "indirect block", ...).
//!
//! The answer to a question depends on the mode: `-n` always no, `-y` always
//! yes, `-p` yes for `PREEN_OK` problems (others halt the run), interactive
//! mode asks on the terminal. [`Reporter::valid`] becomes false when a
//! question is answered no (unless `NO_OK`): the exit code is then 4.

use std::io::{self, BufRead, Write};

/// Flags of a problem (see the module notes).
pub mod flags {
    pub const PREEN_OK: u32 = 0x1;
    pub const NO_OK: u32 = 0x2;
    pub const PREEN_NOMSG: u32 = 0x4;
    pub const NOT_A_FIX: u32 = 0x8;
    pub const FATAL: u32 = 0x10;
    /// Part of the per-inode "illegal blocks" latch.
    pub const LATCH_BLOCK: u32 = 0x20;
    /// Part of the "too big" latch.
    pub const LATCH_TOOBIG: u32 = 0x40;
    /// Part of the group-descriptor-checksum latch.
    pub const LATCH_BG_CSUM: u32 = 0x80;
    /// Part of the orphan-list-refugees latch.
    pub const LATCH_LOW_DTIME: u32 = 0x100;
    /// Part of the relocation latch.
    pub const LATCH_RELOC: u32 = 0x200;
    /// In preen mode, answer no (and stay quiet) instead of fixing.
    pub const PREEN_NO: u32 = 0x400;
}

/// The question asked after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    None,
    Fix,
    Clear,
    Relocate,
    Allocate,
    Expand,
    Connect,
    Create,
    Salvage,
    Truncate,
    ClearInode,
    Abort,
    Split,
    Continue,
    Clone,
    Delete,
    Suppress,
    Unlink,
    ClearHtree,
    Recreate,
    Optimize,
    ClearFlag,
    /// The message itself ends in the question.
    Null,
}

impl Prompt {
    fn question(self) -> &'static str {
        match self {
            Prompt::None => "",
            Prompt::Fix => "Fix",
            Prompt::Clear => "Clear",
            Prompt::Relocate => "Relocate",
            Prompt::Allocate => "Allocate",
            Prompt::Expand => "Expand",
            Prompt::Connect => "Connect to /lost+found",
            Prompt::Create => "Create",
            Prompt::Salvage => "Salvage",
            Prompt::Truncate => "Truncate",
            Prompt::ClearInode => "Clear inode",
            Prompt::Abort => "Abort",
            Prompt::Split => "Split",
            Prompt::Continue => "Continue",
            Prompt::Clone => "Clone multiply-claimed blocks",
            Prompt::Delete => "Delete file",
            Prompt::Suppress => "Suppress messages",
            Prompt::Unlink => "Unlink",
            Prompt::ClearHtree => "Clear HTree index",
            Prompt::Recreate => "Recreate",
            Prompt::Optimize => "Optimize",
            Prompt::ClearFlag => "Clear flag",
            Prompt::Null => "",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Prompt::None => "",
            Prompt::Fix => "FIXED",
            Prompt::Clear => "CLEARED",
            Prompt::Relocate => "RELOCATED",
            Prompt::Allocate => "ALLOCATED",
            Prompt::Expand => "EXPANDED",
            Prompt::Connect => "RECONNECTED",
            Prompt::Create => "CREATED",
            Prompt::Salvage => "SALVAGED",
            Prompt::Truncate => "TRUNCATED",
            Prompt::ClearInode => "INODE CLEARED",
            Prompt::Abort => "ABORTED",
            Prompt::Split => "SPLIT",
            Prompt::Continue => "CONTINUING",
            Prompt::Clone => "MULTIPLY-CLAIMED BLOCKS CLONED",
            Prompt::Delete => "FILE DELETED",
            Prompt::Suppress => "SUPPRESSED",
            Prompt::Unlink => "UNLINKED",
            Prompt::ClearHtree => "HTREE INDEX CLEARED",
            Prompt::Recreate => "WILL RECREATE",
            Prompt::Optimize => "WILL OPTIMIZE",
            Prompt::ClearFlag => "FLAG CLEARED",
            Prompt::Null => "",
        }
    }
}

/// Values a message refers to.
#[derive(Debug, Clone, Default)]
pub struct PCtx {
    pub ino: u32,
    pub ino2: u32,
    pub dir: u32,
    pub blk: u64,
    pub blk2: u64,
    /// Logical block number (negative for mapping blocks: -1 indirect,
    /// -2 double indirect, -3 triple indirect).
    pub blkcount: Option<i64>,
    pub group: u32,
    pub num: u64,
    pub num2: u64,
    pub name: String,
    pub path: String,
    pub path2: String,
    pub str: String,
}

impl PCtx {
    pub fn ino(ino: u32) -> PCtx {
        PCtx {
            ino,
            ..PCtx::default()
        }
    }
    pub fn group(group: u32) -> PCtx {
        PCtx {
            group,
            ..PCtx::default()
        }
    }
}

/// Escapes a name the way e2fsck prints it (control bytes as `^X`, bytes
/// from 0x80 as `M-x`).
pub fn escape_name(name: &[u8]) -> String {
    let mut s = String::new();
    for &b in name {
        let mut c = b;
        if c >= 0x80 {
            s.push_str("M-");
            c &= 0x7f;
        }
        if c < 32 || c == 0x7f {
            s.push('^');
            s.push(char::from(c ^ 0x40));
        } else {
            s.push(char::from(c));
        }
    }
    s
}

fn describe_block(p: &PCtx) -> String {
    match p.blkcount {
        Some(-1) => "indirect block".into(),
        Some(-2) => "double indirect block".into(),
        Some(-3) => "triple indirect block".into(),
        Some(-4) => "translator block".into(),
        Some(n) => format!("block #{n}"),
        None => "block".into(),
    }
}

/// Fills a template.
pub fn render(template: &str, p: &PCtx) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let key = &after[..close];
        let val = match key {
            "ino" => p.ino.to_string(),
            "ino2" => p.ino2.to_string(),
            "dir" => p.dir.to_string(),
            "blk" => p.blk.to_string(),
            "blk2" => p.blk2.to_string(),
            "blkcount" => p.blkcount.map_or_else(|| "-".into(), |b| b.to_string()),
            "group" => p.group.to_string(),
            "num" => p.num.to_string(),
            "num2" => p.num2.to_string(),
            "name" => p.name.clone(),
            "path" => p.path.clone(),
            "path2" => p.path2.clone(),
            "str" => p.str.clone(),
            "bdesc" => describe_block(p),
            other => format!("{{{other}}}"),
        };
        out.push_str(&val);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct ProblemInfo {
    pub template: &'static str,
    pub prompt: Prompt,
    pub flags: u32,
}

const fn pi(template: &'static str, prompt: Prompt, flags: u32) -> ProblemInfo {
    ProblemInfo {
        template,
        prompt,
        flags,
    }
}

macro_rules! problems {
    ($( $(#[$doc:meta])* $name:ident => ($tpl:expr, $prompt:ident, $flags:expr) ),* $(,)?) => {
        /// Every problem the checker reports.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code { $( $(#[$doc])* $name ),* }

        impl Code {
            /// Template, prompt and flags.
            pub fn info(self) -> ProblemInfo {
                use flags::*;
                let _ = (PREEN_OK, NO_OK);
                match self { $( Code::$name => pi($tpl, Prompt::$prompt, $flags) ),* }
            }

            /// All codes (for documentation and tests).
            pub const ALL: &'static [Code] = &[ $( Code::$name ),* ];
        }
    };
}

problems! {
    // ---- before pass 1: superblock, descriptors, journal ----
    SbCorrupt => ("The superblock could not be read or does not describe a valid ext2/ext3/ext4 file system: {str}\n", None, FATAL),
    SbBackupUsed => ("The primary superblock is unusable ({str}); using the backup in group {group}.\n", None, PREEN_OK),
    FsSizeWrong => ("The file system size (according to the superblock) is {blk} blocks\nThe physical size of the device is {blk2} blocks\nEither the superblock or the partition table is likely to be corrupt!\n", Abort, 0),
    InodeCountWrong => ("Inode count in superblock is {num}, should be {num2}.\n", Fix, 0),
    HurdClearFiletype => ("The Hurd does not support the filetype feature.\n", Clear, 0),
    FirstMetaBgTooBig => ("First_meta_bg is too big.  ({num}, max value {num2}).  ", Clear, 0),
    BbNotGroup => ("Block bitmap for group {group} is not in group.  (block {blk})\n", Relocate, LATCH_RELOC),
    IbNotGroup => ("Inode bitmap for group {group} is not in group.  (block {blk})\n", Relocate, LATCH_RELOC),
    ItableNotGroup => ("Inode table for group {group} is not in group.  (block {blk})\nWARNING: SEVERE DATA LOSS POSSIBLE.\n", Relocate, LATCH_RELOC),
    RelocateHint => ("Note: if several inode or block bitmap blocks or part\nof the inode table require relocation, you may wish to try\nrunning fsck.fext with a backup superblock first.  The problem\nmay lie only with the primary block group descriptors, and\nthe backup block group descriptors may be OK.\n\n", None, PREEN_OK),
    GdtCsumLatch => ("One or more block group descriptor checksums are invalid.  ", Fix, PREEN_OK),
    GdtCsum => ("Group descriptor {group} checksum is {str}.  ", Fix, LATCH_BG_CSUM),
    GdtUninit => ("Group descriptor {group} marked uninitialized without feature set.\n", Fix, PREEN_OK),
    GdtItableUnused => ("Group descriptor {group} has invalid unused inodes count {num}.  ", Fix, PREEN_OK),
    BbUninitLast => ("Last group block bitmap uninitialized.  ", Fix, PREEN_OK),
    SbFreeBlocksRange => ("Superblock free blocks count {num} is larger than the block count {num2}.  ", Fix, PREEN_OK),
    JournalBadInode => ("Superblock has an invalid journal (inode {ino}).\n", Clear, PREEN_OK),
    JournalUnsuppSuper => ("The journal superblock is of unknown type {num} (unsupported).\n", Abort, NO_OK),
    JournalBadSuper => ("The journal superblock is corrupt ({str}).\n", Fix, PREEN_OK),
    JournalHasJournal => ("Superblock has_journal flag is clear, but a journal is present.\n", Clear, PREEN_OK),
    JournalRecoverSet => ("Superblock needs_recovery flag is set, but no journal is present.\n", Clear, PREEN_OK),
    JournalNeedsRecovery => ("The journal needs recovery (it holds transactions not yet written to the file system).\n", None, 0),
    JournalRecoveryRefused => ("Journal replay is not implemented yet: run e2fsck (or mount the file system with the kernel) to replay the journal first.\n", None, FATAL),
    JournalUnsuppIncompat => ("The journal superblock has an unknown incompatible feature flag set.\n", Abort, 0),
    JournalErrno => ("The journal records error {num} of a previous mount.  ", Clear, PREEN_OK | NO_OK | PREEN_NOMSG),
    JournalExternal => ("The file system uses an external journal, which fsck.fext cannot check.\n", None, 0),
    OrphanClearInode => ("{str} orphaned inode {ino} (uid={num}, gid={num2}, size={blk})\n", None, PREEN_OK),
    OrphanIllegalHead => ("Illegal orphaned inode {ino} in superblock.\n", None, PREEN_OK),
    OrphanIllegalInode => ("Illegal inode {ino} in orphaned inode list.\n", None, PREEN_OK),
    OrphanFileBad => ("The orphan file (inode {ino}) is invalid: {str}.  ", Recreate, PREEN_OK),
    ResizeInodeInvalid => ("Resize inode not valid.  ", Recreate, 0),
    ClearResizeInode => ("Resize_inode not enabled, but the resize inode is non-zero.  ", Clear, 0),
    DisableResizeInode => ("Resize_inode and meta_bg features are enabled. Those features are\nnot compatible. Resize inode should be disabled.  ", Fix, 0),
    NonzeroReservedGdt => ("File system does not have resize_inode enabled, but s_reserved_gdt_blocks\nis {num}; should be zero.  ", Fix, 0),
    InvalidQuotaIno => ("Invalid {str} quota inode {ino}.  ", Fix, 0),
    BadMinExtraIsize => ("Bad required extra isize in superblock ({num}).  ", Fix, 0),
    BadWantExtraIsize => ("Bad desired extra isize in superblock ({num}).  ", Fix, 0),
    AddUuid => ("File system did not have a UUID; generating one.\n\n", None, 0),
    DirhashHint => ("Adding dirhash hint to file system.\n\n", None, 0),
    MetaAndGdtCsum => ("Superblock metadata_csum supersedes uninit_bg; both feature bits cannot be set simultaneously.", Fix, PREEN_OK | NO_OK),
    OrphanPresentNoFile => ("Superblock has orphan_present set but no orphan file.  ", Clear, PREEN_OK),

    // ---- pass 1: inodes ----
    RootNotDir => ("Root inode is not a directory.  ", Clear, 0),
    RootDtime => ("Root inode has dtime set (probably due to old mke2fs).  ", Fix, PREEN_OK),
    ReservedBadMode => ("Reserved inode {ino} ({str}) has invalid mode.  ", Clear, PREEN_OK),
    ZeroDtime => ("Deleted inode {ino} has zero dtime.  ", Fix, PREEN_OK),
    SetDtime => ("Inode {ino} is in use, but has dtime set.  ", Fix, PREEN_OK),
    ZeroLengthDir => ("Inode {ino} is a zero-length directory.  ", Clear, PREEN_OK),
    BbConflict => ("Group {group}'s block bitmap at {blk} conflicts with some other fs block.\n", Relocate, 0),
    IbConflict => ("Group {group}'s inode bitmap at {blk} conflicts with some other fs block.\n", Relocate, 0),
    ItableConflict => ("Group {group}'s inode table at {blk} conflicts with some other fs block.\n", Relocate, 0),
    BadISize => ("Inode {ino}, i_size is {num2}, should be {num}.  ", Fix, PREEN_OK),
    BadIBlocks => ("Inode {ino}, i_blocks is {num2}, should be {num}.  ", Fix, PREEN_OK),
    IllegalBlockNum => ("Illegal {bdesc} ({blk}) in inode {ino}.  ", Clear, LATCH_BLOCK),
    InodeBlockLatch => ("Inode {ino} has illegal block(s).  ", Clear, 0),
    TooManyBadBlocks => ("Too many illegal blocks in inode {ino}.\n", ClearInode, NO_OK),
    InvalidBadInode => ("The bad block inode looks invalid.  ", Clear, 0),
    BadBlockInode => ("The bad block inode lists block {blk}, which fsck.fext does not support.  ", Clear, PREEN_OK),
    SetImagic => ("Inode {ino} has imagic flag set.  ", Clear, 0),
    SetImmutable => ("Special (device/socket/fifo/symlink) file (inode {ino}) has immutable\nor append-only flag set.  ", Clear, PREEN_OK | NO_OK | PREEN_NO),
    SetNonzsize => ("Special (device/socket/fifo) inode {ino} has non-zero size.  ", Fix, PREEN_OK),
    JournalInodeNotClear => ("Journal inode is not in use, but contains data.  ", Clear, PREEN_OK),
    JournalBadMode => ("Journal is not regular file.  ", Fix, PREEN_OK),
    LowDtime => ("Inode {ino} was part of the orphaned inode list.  ", Fix, LATCH_LOW_DTIME),
    OrphanListRefugees => ("Inodes that were part of a corrupted orphan linked list found.  ", Fix, 0),
    BadEaBlock => ("Inode {ino} has a bad extended attribute block {blk}.  ", Clear, 0),
    ReadEaBlock => ("Error reading extended attribute block {blk} for inode {ino}.  ", Clear, 0),
    ExtattrRefcount => ("Extended attribute block {blk} has reference count {num2}, should be {num}.  ", Fix, 0),
    EaMultiBlock => ("Extended attribute block {blk} has h_blocks > 1.  ", Clear, 0),
    EaAllocCollision => ("Extended attribute block {blk} is corrupt (allocation collision).  ", Clear, 0),
    EaBadName => ("Extended attribute block {blk} is corrupt (invalid name).  ", Clear, 0),
    EaBadValue => ("Extended attribute block {blk} is corrupt (invalid value).  ", Clear, 0),
    InodeToobig => ("Inode {ino} is too big.  ", Truncate, 0),
    ToobigDir => ("{bdesc} ({blk}) causes directory to be too big.  ", Clear, LATCH_TOOBIG),
    ToobigReg => ("{bdesc} ({blk}) causes file to be too big.  ", Clear, LATCH_TOOBIG),
    ToobigSymlink => ("{bdesc} ({blk}) causes symlink to be too big.  ", Clear, LATCH_TOOBIG),
    HtreeSet => ("Inode {ino} has INDEX_FL flag set on file system without htree support.\n", ClearHtree, PREEN_OK),
    HtreeNodir => ("Inode {ino} has INDEX_FL flag set but is not a directory.\n", ClearHtree, PREEN_OK),
    HtreeBadroot => ("HTREE directory inode {ino} has an invalid root node.\n", ClearHtree, PREEN_OK),
    HtreeHashv => ("HTREE directory inode {ino} has an unsupported hash version ({num})\n", ClearHtree, PREEN_OK),
    HtreeIncompat => ("HTREE directory inode {ino} uses an incompatible htree root node flag.\n", ClearHtree, PREEN_OK),
    HtreeDepth => ("HTREE directory inode {ino} has a tree depth ({num}) which is too big\n", ClearHtree, PREEN_OK),
    ExtraIsize => ("Inode {ino} has a extra size ({num}) which is invalid\n", Fix, PREEN_OK),
    AttrNameLen => ("Extended attribute in inode {ino} has a namelen ({num}) which is invalid\n", Clear, PREEN_OK),
    AttrValueOffset => ("Extended attribute in inode {ino} has a value offset ({num}) which is invalid\n", Clear, PREEN_OK),
    AttrValueBlock => ("Extended attribute in inode {ino} has a value block ({num}) which is invalid (must be 0)\n", Clear, PREEN_OK),
    AttrValueSize => ("Extended attribute in inode {ino} has a value size ({num}) which is invalid\n", Clear, PREEN_OK),
    AttrHash => ("Extended attribute in inode {ino} has a hash ({num}) which is invalid\n", Clear, PREEN_OK),
    TreatAsDirectory => ("Inode {ino} is a {str} but it looks like it is really a directory.\n", Fix, 0),
    ReadExtent => ("Error while reading over extent tree in inode {ino}: {str}\n", ClearInode, 0),
    ExtentBadStartBlk => ("Inode {ino} has an invalid extent\n\t(logical block {blk2}, invalid physical block {blk}, len {num})\n", Clear, 0),
    ExtentEndsBeyond => ("Inode {ino} has an invalid extent\n\t(logical block {blk2}, physical block {blk}, invalid len {num})\n", Clear, 0),
    ExtentsSet => ("Inode {ino} has EXTENTS_FL flag set on file system without extents support.\n", Clear, 0),
    ExtentFeature => ("Inode {ino} is in extent format, but superblock is missing EXTENTS feature\n", Fix, 0),
    UnsetExtentFl => ("Inode {ino} missing EXTENT_FL, but is in extents format\n", Fix, PREEN_OK),
    FastSymlinkExtentFl => ("Fast symlink {ino} has EXTENT_FL set.  ", Clear, 0),
    OutOfOrderExtents => ("Inode {ino} has out of order extents\n\t(invalid logical block {blk2}, physical block {blk}, len {num})\n", Clear, 0),
    ExtentHeaderInvalid => ("Inode {ino} has an invalid extent node (blk {blk}, lblk {blk2})\n", Clear, 0),
    ExtentLengthZero => ("Inode {ino} has zero length extent\n\t(invalid logical block {blk2}, physical block {blk})\n", Clear, 0),
    InodeIsGarbage => ("Inode {ino} seems to contain garbage.  ", Clear, 0),
    InodeOnlyCsumInvalid => ("Inode {ino} passes checks, but checksum does not match inode.  ", Fix, PREEN_OK),
    InodeEaAllocCollision => ("Inode {ino} extended attribute is corrupt (allocation collision).  ", Clear, 0),
    ExtentOnlyCsumInvalid => ("Inode {ino} extent block passes checks, but checksum does not match extent\n\t(logical block {blk2}, physical block {blk}, len {num})\n", Fix, 0),
    EaBlockOnlyCsumInvalid => ("Inode {ino} extended attribute block {blk} passes checks, but checksum does not match block.  ", Fix, 0),
    ExtentIndexStartInvalid => ("Interior extent node level {num} of inode {ino}:\nLogical start {blk} does not match logical start {blk2} at next level.  ", Fix, 0),
    ExtentEndOutOfBounds => ("Inode {ino}, end of extent exceeds allowed value\n\t(logical block {blk2}, physical block {blk}, len {num})\n", Clear, 0),
    InlineDataFeature => ("Inode {ino} has inline data, but superblock is missing INLINE_DATA feature\n", Fix, PREEN_OK),
    InlineDataSet => ("Inode {ino} has INLINE_DATA_FL flag on file system without inline data support.\n", Clear, 0),
    CriticalMetadataCollision => ("Inode {ino} block {blk} conflicts with critical metadata, skipping block checks.\n", None, 0),
    CollapseDblock => ("Directory inode {ino} block {blk} should be at block {blk2}.  ", Fix, 0),
    UninitDblock => ("Directory inode {ino} has extent marked uninitialized at block {blk2}.  ", Fix, PREEN_OK),
    InlineDataNoAttr => ("Inode {ino} has INLINE_DATA_FL flag but extended attribute not found.  ", Truncate, 0),
    SpecialExtentsIdata => ("Special (device/socket/fifo) file (inode {ino}) has extents\nor inline-data flag set.  ", Clear, PREEN_OK | PREEN_NO | NO_OK),
    ClearInlineDataForExtent => ("Inode {ino} has extent header but inline data flag is set.\n", Fix, 0),
    ClearExtentForInlineData => ("Inode {ino} seems to have inline data but extent flag is set.\n", Fix, 0),
    ClearExtentInlineDataFlags => ("Inode {ino} seems to have block map but inline data and extent flags set.\n", Fix, 0),
    ClearExtentInlineDataInode => ("Inode {ino} has inline data and extent flags set but i_block contains junk.\n", ClearInode, 0),
    ExtentCollision => ("Inode {ino} has a duplicate extent mapping\n\t(logical block {blk2}, invalid physical block {blk}, len {num})\n", Clear, 0),
    ExtentBadMaxDepth => ("Inode {ino} extent tree could be more shallow ({blk}; could be <= {blk2})\n", Fix, NO_OK | PREEN_NO | PREEN_OK | NOT_A_FIX),
    NoBigallocBlockmapFiles => ("Inode {ino} on bigalloc file system cannot be block mapped.  ", Fix, 0),
    MissingExtentHeader => ("Inode {ino} has corrupt extent header.  ", ClearInode, 0),
    EaTimeOutOfRange => ("Timestamp(s) on inode {ino} beyond 2310-04-04 are likely pre-1970.\n", Fix, PREEN_OK | NO_OK),
    AttrValueEaInode => ("Inode {ino} has illegal extended attribute value inode {num}.\n", Clear, PREEN_OK),
    AttrNoEaInodeFl => ("Inode {ino} has invalid extended attribute. EA inode {num} missing EA_INODE flag.\n", Clear, PREEN_OK),
    AttrSetEaInodeFl => ("EA inode {num} for parent inode {ino} missing EA_INODE flag.\n ", Fix, PREEN_OK),
    CasefoldNondir => ("Inode {ino} has the casefold flag set but is not a directory.  ", ClearFlag, 0),
    CasefoldFeature => ("Directory {path} has the casefold flag, but the\ncasefold feature is not enabled.  ", ClearFlag, 0),
    EncryptNoXattr => ("Inode {ino} has encrypt flag but no encryption extended attribute.\n", ClearFlag, 0),
    EncryptBadXattr => ("Encrypted inode {ino} has corrupt encryption extended attribute.\n", ClearInode, 0),
    QuotaBadMode => ("Quota inode is not a regular file.  ", Clear, PREEN_OK),
    QuotaInodeNotClear => ("Quota inode is not in use, but contains data.  ", Clear, PREEN_OK),
    OrphanFileBadMode => ("Orphan file (inode {ino}) is not a regular file.  ", Clear, PREEN_OK),
    OrphanFileNotClear => ("Orphan file (inode {ino}) is not in use, but contains data.  ", Clear, PREEN_OK),
    DupBlocksPreenstop => ("Duplicate or bad block in use!\n", None, 0),

    // ---- pass 1B-D: blocks claimed more than once ----
    DupHeader => ("\nRunning additional passes to resolve blocks claimed by more than one inode...\nPass 1B: Rescanning for multiply-claimed blocks\n", None, PREEN_NOMSG),
    DupBlocksInInode => ("Multiply-claimed block(s) in inode {ino}:{str}\n", None, PREEN_NOMSG),
    Dup1CHeader => ("Pass 1C: Scanning directories for inodes with multiply-claimed blocks\n", None, PREEN_NOMSG),
    Dup1DHeader => ("Pass 1D: Reconciling multiply-claimed blocks\n", None, PREEN_NOMSG),
    DupNumInodes => ("(There are {num} inodes containing multiply-claimed blocks.)\n\n", None, PREEN_NOMSG),
    DupFile => ("File {path} (inode #{ino}, mod time {str}) \n  has {num} multiply-claimed block(s), shared with {num2} file(s):\n{path2}", None, 0),
    DupBlocksDealt => ("Multiply-claimed blocks already reassigned or cloned.\n\n", None, 0),
    CloneQuestion => ("", Clone, NO_OK),
    DeleteQuestion => ("", Delete, 0),
    CloneError => ("Couldn't clone file: {str}\n", None, 0),

    // ---- pass 2: directories ----
    BadInodeDot => ("Invalid inode number for '.' in directory inode {ino}.\n", Fix, 0),
    BadIno => ("Entry '{name}' in {path} ({dir}) has invalid inode #: {ino2}.\n", Clear, 0),
    UnusedInode => ("Entry '{name}' in {path} ({dir}) has deleted/unused inode {ino2}.  ", Clear, PREEN_OK),
    LinkDot => ("Entry '{name}' in {path} ({dir}) is a link to '.'  ", Clear, 0),
    LinkDir => ("Entry '{name}' in {path} ({dir}) is a link to directory {path2} ({ino2}).\n", Clear, 0),
    LinkRoot => ("Entry '{name}' in {path} ({dir}) is a link to the root inode.\n", Clear, 0),
    BadName => ("Entry '{name}' in {path} ({dir}) has illegal characters in its name.\n", Fix, 0),
    MissingDot => ("Missing '.' in directory inode {ino}.\n", Fix, 0),
    MissingDotDot => ("Missing '..' in directory inode {ino}.\n", Fix, 0),
    FirstNotDot => ("First entry '{name}' (inode={ino2}) in directory inode {ino} ({path}) should be '.'\n", Fix, 0),
    SecondNotDotDot => ("Second entry '{name}' (inode={ino2}) in directory inode {ino} should be '..'\n", Fix, 0),
    FaddrZero => ("i_faddr for inode {ino} ({path}) is {num}, should be zero.\n", Clear, 0),
    FileAclZero => ("i_file_acl for inode {ino} ({path}) is {num}, should be zero.\n", Clear, 0),
    DirSizeHighZero => ("i_size_high for inode {ino} ({path}) is {num}, should be zero.\n", Clear, 0),
    FragZero => ("i_frag for inode {ino} ({path}) is {num}, should be zero.\n", Clear, 0),
    FsizeZero => ("i_fsize for inode {ino} ({path}) is {num}, should be zero.\n", Clear, 0),
    BadMode => ("Inode {ino} ({path}) has invalid mode ({str}).\n", Clear, 0),
    DirCorrupted => ("Directory inode {ino}, {bdesc}, offset {num}: directory corrupted\n", Salvage, 0),
    FilenameLong => ("Directory inode {ino}, {bdesc}, offset {num}: filename too long\n", Truncate, 0),
    DirectoryHole => ("Directory inode {ino} has an unallocated {bdesc}.  ", Allocate, 0),
    DotNullTerm => ("'.' directory entry in directory inode {ino} is not NULL terminated\n", Fix, 0),
    DotDotNullTerm => ("'..' directory entry in directory inode {ino} is not NULL terminated\n", Fix, 0),
    BadCharDev => ("Inode {ino} ({path}) is an illegal character device.\n", Clear, 0),
    BadBlockDev => ("Inode {ino} ({path}) is an illegal block device.\n", Clear, 0),
    DupDot => ("Entry '{name}' in {path} ({dir}) is duplicate '.' entry.\n", Fix, 0),
    DupDotDot => ("Entry '{name}' in {path} ({dir}) is duplicate '..' entry.\n", Fix, 0),
    FinalReclen => ("Entry '{name}' in {path} ({dir}) has rec_len of {num2}, should be {num}.\n", Fix, 0),
    SplitDot => ("Directory entry for '.' in {path} ({ino}) is big.\n", Split, NO_OK),
    BadFifo => ("Inode {ino} ({path}) is an illegal FIFO.\n", Clear, 0),
    BadSocket => ("Inode {ino} ({path}) is an illegal socket.\n", Clear, 0),
    SetFiletype => ("Setting filetype for entry '{name}' in {path} ({dir}) to {num}.\n", None, PREEN_OK | NO_OK),
    BadFiletype => ("Entry '{name}' in {path} ({dir}) has an incorrect filetype (was {num2}, should be {num}).\n", Fix, 0),
    ClearFiletype => ("Entry '{name}' in {path} ({dir}) has filetype set.\n", Clear, PREEN_OK),
    NullName => ("Entry '{name}' in {path} ({dir}) has a zero-length name.\n", Clear, 0),
    InvalidSymlink => ("Symlink {path} (inode #{ino}) is invalid.\n", Clear, 0),
    FileAclBad => ("Extended attribute block for inode {ino} ({path}) is invalid ({num}).\n", Clear, 0),
    FeatureLargeFiles => ("File system contains large files, but lacks LARGE_FILE flag in superblock.\n", Fix, 0),
    HtreeNotref => ("Problem in HTREE directory inode {ino}: {bdesc} not referenced\n", None, 0),
    HtreeDupref => ("Problem in HTREE directory inode {ino}: {bdesc} referenced twice\n", None, 0),
    HtreeMinHash => ("Problem in HTREE directory inode {ino}: {bdesc} has bad min hash\n", None, 0),
    HtreeMaxHash => ("Problem in HTREE directory inode {ino}: {bdesc} has bad max hash\n", None, 0),
    HtreeClear => ("Invalid HTREE directory inode {ino} ({path}).  ", ClearHtree, 0),
    HtreeBadRoot => ("Problem in HTREE directory inode {ino}: root node is invalid\n", ClearHtree, PREEN_OK),
    HtreeBadLimit => ("Problem in HTREE directory inode {ino}: {bdesc} has invalid limit ({num})\n", ClearHtree, PREEN_OK),
    HtreeBadCount => ("Problem in HTREE directory inode {ino}: {bdesc} has invalid count ({num})\n", ClearHtree, PREEN_OK),
    HtreeHashOrder => ("Problem in HTREE directory inode {ino}: {bdesc} has an unordered hash table\n", ClearHtree, PREEN_OK),
    HtreeBadblk => ("Problem in HTREE directory inode {ino} ({path}): bad block number {blk}.\n", ClearHtree, 0),
    HtreeBadDepth => ("Problem in HTREE directory inode {ino}: {bdesc} has invalid depth ({num})\n", None, 0),
    DuplicateDirent => ("Duplicate entry '{name}' found.\n\tMarking {path} ({dir}) to be rebuilt.\n\n", None, 0),
    NonUniqueFile => ("Entry '{name}' in {path} ({dir}) has a non-unique filename.\nRename to {str}", Null, 0),
    DuplicateDirentClear => ("Duplicate filename entry '{name}' in {path} ({dir}) found.  ", Clear, 0),
    BlocksHiZero => ("i_blocks_hi for inode {ino} ({path}) is {num}, should be zero.\n", Clear, 0),
    InorefBgInoUninit => ("Entry '{name}' in {path} ({dir}) references inode {ino2} in group {group} where _INODE_UNINIT is set.\n", Fix, PREEN_OK),
    InorefInUnused => ("Entry '{name}' in {path} ({dir}) references inode {ino2} found in group {group}'s unused inodes area.\n", Fix, PREEN_OK),
    FileAclHiZero => ("i_file_acl_hi for inode {ino} ({path}) is {num}, should be zero.\n", Clear, PREEN_OK),
    HtreeRootCsumInvalid => ("Problem in HTREE directory inode {ino}: root node fails checksum.\n", ClearHtree, PREEN_OK),
    HtreeNodeCsumInvalid => ("Problem in HTREE directory inode {ino}: internal node fails checksum.\n", ClearHtree, PREEN_OK),
    LeafNodeMissingCsum => ("Directory inode {ino}, {bdesc}, offset {num}: directory has no checksum.\n", Fix, PREEN_OK),
    LeafNodeOnlyCsumInvalid => ("Directory inode {ino}, {bdesc}: directory passes checks but fails checksum.\n", Fix, PREEN_OK),
    BadInlineDirSize => ("Inline directory inode {ino} size ({num}) must be a multiple of 4.\n", Fix, 0),
    BadEncryptedName => ("Encrypted entry '{name}' in {path} ({dir}) is too short.\n", Clear, 0),
    EncryptedUnencrypted => ("Encrypted entry '{name}' in {path} ({dir}) references unencrypted inode {ino2}.\n", Clear, 0),
    EncryptedPolicy => ("Encrypted entry '{name}' in {path} ({dir}) references inode {ino2}, which has a different encryption policy.\n", Clear, 0),
    BadUtf8Name => ("Entry '{name}' in {path} ({dir}) has illegal UTF-8 characters in its name.\n", Fix, 0),
    HtreeUnexpectedBlock => ("Unexpected block in HTREE directory inode {ino} ({path}).\n", ClearHtree, 0),

    // ---- pass 3: connectivity ----
    NoRootInode => ("Root inode not allocated.  ", Allocate, 0),
    ExpandLfDir => ("No room in lost+found directory.  ", Expand, 0),
    UnconnectedDir => ("Unconnected directory inode {ino} (was in {path})\n", Connect, 0),
    NoLfDir => ("/lost+found not found.  ", Create, PREEN_OK),
    BadDotDot => ("'..' in {path} ({ino}) is {path2} ({ino2}), should be {str} ({dir}).\n", Fix, 0),
    NoLpf => ("Bad or non-existent /lost+found.  Cannot reconnect.\n", None, 0),
    CantExpandLpf => ("Could not expand /lost+found: {str}\n", None, 0),
    CantReconnect => ("Could not reconnect {ino}: {str}\n", None, 0),
    LpfNotDir => ("/lost+found is not a directory (ino={ino})\n", Unlink, 0),
    LpfInlineData => ("/lost+found has inline data\n", Clear, 0),
    LpfEncrypted => ("/lost+found is encrypted\n", Clear, 0),
    NoSpaceToRecover => ("Insufficient space to recover lost files!\nMove data off the file system and re-run fsck.fext.\n\n", None, 0),
    CreateRootError => ("Error creating root directory: {str}\n", None, FATAL),
    CreateLpfError => ("Error creating /lost+found directory: {str}\n", None, 0),
    RootNotDirAbort => ("Root inode is not a directory; aborting.\n", None, FATAL),
    NoRootInodeAbort => ("Cannot proceed without a root inode.\n", None, FATAL),

    // ---- pass 4: reference counts ----
    ZeroLenInode => ("Unattached zero-length inode {ino}.  ", Clear, PREEN_OK | NO_OK),
    UnattachedInode => ("Unattached inode {ino}\n", Connect, 0),
    BadRefCount => ("Inode {ino} ref count is {num2}, should be {num}.  ", Fix, PREEN_OK),
    EaInodeRefCount => ("Extended attribute inode {ino} ref count is {num2}, should be {num}. ", Fix, PREEN_OK),
    DirNlinkFeature => ("Directory exceeds max links, but no DIR_NLINK feature in superblock.\n", Fix, 0),
    DirOverflowRefCount => ("Directory inode {ino} ref count set to overflow but could be exact value {num}.  ", Fix, PREEN_OK),

    // ---- pass 5: group summaries ----
    InodeBmapPadding => ("Padding at end of inode bitmap is not set. ", Fix, PREEN_OK),
    BlockBmapPadding => ("Padding at end of block bitmap is not set. ", Fix, PREEN_OK),
    BlockBitmapDiff => ("Block bitmap differences: {str}\n", Fix, PREEN_OK | PREEN_NOMSG),
    InodeBitmapDiff => ("Inode bitmap differences: {str}\n", Fix, PREEN_OK | PREEN_NOMSG),
    FreeInodeCountGroup => ("Free inodes count wrong for group #{group} ({num2}, counted={num}).\n", Fix, PREEN_OK | PREEN_NOMSG),
    FreeDirCountGroup => ("Directories count wrong for group #{group} ({num2}, counted={num}).\n", Fix, PREEN_OK | PREEN_NOMSG),
    FreeInodeCount => ("Free inodes count wrong ({num2}, counted={num}).\n", Fix, PREEN_OK | NO_OK | PREEN_NOMSG),
    FreeBlockCountGroup => ("Free blocks count wrong for group #{group} ({num2}, counted={num}).\n", Fix, PREEN_OK | PREEN_NOMSG),
    FreeBlockCount => ("Free blocks count wrong ({num2}, counted={num}).\n", Fix, PREEN_OK | NO_OK | PREEN_NOMSG),
    BlockUninit => ("Group {group} block(s) in use but group is marked BLOCK_UNINIT\n", Fix, PREEN_OK),
    InodeUninit => ("Group {group} inode(s) in use but group is marked INODE_UNINIT\n", Fix, PREEN_OK),
    InodeBitmapCsumInvalid => ("Group {group} inode bitmap does not match checksum.\n", Fix, PREEN_OK),
    BlockBitmapCsumInvalid => ("Group {group} block bitmap does not match checksum.\n", Fix, PREEN_OK),

    // ---- after pass 5 ----
    RecreateJournal => ("Recreate journal", Null, PREEN_OK | NO_OK),
}

/// How questions are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `-n`: every answer is no; nothing is written.
    No,
    /// `-p` / `-a`: fix what is safe, stop on anything else.
    Preen,
    /// `-y`: every answer is yes.
    Yes,
    /// Ask on the terminal.
    Ask,
}

/// Latch state of a group of related questions.
#[derive(Debug, Clone, Copy, Default)]
struct Latch {
    asked: bool,
    answer: bool,
}

/// Prints problems, answers questions and keeps the verdict.
pub struct Reporter {
    mode: Mode,
    out: Box<dyn Write + Send>,
    device: String,
    /// False once a question was answered no (for a problem without NO_OK).
    pub valid: bool,
    /// True once a question was answered yes (a repair made or scheduled).
    pub fixed: bool,
    /// Set when preen mode met a problem it may not fix.
    pub halted: bool,
    /// Set when the user cancelled (interactive) or a fatal problem came up.
    pub aborted: bool,
    /// Set when a fatal problem was reported.
    pub fatal: bool,
    /// Problems seen so far (all of them, answered or not).
    pub count: u64,
    latches: [Latch; 5],
    yes_to_all: bool,
    /// Output suppressed (used for the silent verification of a repair).
    pub quiet: bool,
    /// Print the pass headers.
    pub verbose: bool,
}

impl Reporter {
    pub fn new(mode: Mode, out: Box<dyn Write + Send>, device: &str) -> Reporter {
        Reporter {
            mode,
            out,
            device: device.to_string(),
            valid: true,
            fixed: false,
            halted: false,
            aborted: false,
            fatal: false,
            count: 0,
            latches: [Latch::default(); 5],
            yes_to_all: false,
            quiet: false,
            verbose: false,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Changes how questions are answered (for the verification run).
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        self.latches = [Latch::default(); 5];
    }

    /// True when nothing may be written (`-n`).
    pub fn read_only(&self) -> bool {
        self.mode == Mode::No
    }

    /// Whether to stop the run (preen halt, cancel, fatal problem).
    pub fn should_stop(&self) -> bool {
        self.halted || self.aborted || self.fatal
    }

    /// Writes text as is (pass headers, summaries).
    pub fn say(&mut self, text: &str) {
        if self.quiet {
            return;
        }
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }

    /// Writes a pass header (only with `-v` or when asking questions).
    pub fn say_header(&mut self, text: &str) {
        if self.verbose || self.mode == Mode::Ask {
            self.say(text);
        }
    }

    /// Writes text unless in preen mode.
    pub fn say_unless_preen(&mut self, text: &str) {
        if self.mode != Mode::Preen {
            self.say(text);
        }
    }

    /// The latch group of a problem: its index and its question.
    fn latch_of(f: u32) -> Option<(usize, Code)> {
        if f & flags::LATCH_BLOCK != 0 {
            Some((0, Code::InodeBlockLatch))
        } else if f & flags::LATCH_TOOBIG != 0 {
            Some((1, Code::InodeToobig))
        } else if f & flags::LATCH_BG_CSUM != 0 {
            Some((2, Code::GdtCsumLatch))
        } else if f & flags::LATCH_LOW_DTIME != 0 {
            Some((3, Code::OrphanListRefugees))
        } else if f & flags::LATCH_RELOC != 0 {
            Some((4, Code::RelocateHint))
        } else {
            None
        }
    }

    /// Ends a latch group (the next latched problem asks again).
    pub fn end_latch(&mut self, code_in_group: Code) {
        if let Some((i, _)) = Self::latch_of(code_in_group.info().flags) {
            self.latches[i] = Latch::default();
        }
    }

    /// Reports `code` and returns whether to fix it.
    pub fn fix(&mut self, code: Code, p: &PCtx) -> bool {
        if self.should_stop() {
            return false;
        }
        let info = code.info();
        self.count += 1;
        // A latched problem first asks (once) its group's question.
        let mut latched_answer = None;
        if let Some((i, question)) = Self::latch_of(info.flags) {
            if self.latches[i].asked {
                latched_answer = Some(self.latches[i].answer);
            } else {
                let ans = self.fix(question, p);
                if self.should_stop() {
                    return false;
                }
                self.latches[i] = Latch {
                    asked: true,
                    answer: ans,
                };
                latched_answer = Some(ans);
            }
        }
        let preen = self.mode == Mode::Preen;
        let silent = self.quiet || (preen && info.flags & flags::PREEN_NOMSG != 0);
        let msg = render(info.template, p);
        if !silent {
            if preen {
                let _ = write!(self.out, "{}: ", self.device);
            }
            let _ = self.out.write_all(msg.as_bytes());
        }
        if info.flags & flags::FATAL != 0 {
            self.fatal = true;
            let _ = self.out.flush();
            return false;
        }
        if info.prompt == Prompt::None {
            let _ = self.out.flush();
            // Informational: counts as "yes" in -y/-p, "no" in -n.
            return self.mode != Mode::No;
        }
        if preen && info.flags & flags::PREEN_OK == 0 {
            self.halted = true;
            self.valid = false;
            let _ = write!(
                self.out,
                "\n\n{}: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY.\n\t(i.e., without -a or -p options)\n",
                self.device
            );
            let _ = self.out.flush();
            return false;
        }
        let answer = if let Some(a) = latched_answer {
            if !silent {
                let _ = writeln!(
                    self.out,
                    "{}.",
                    if a { info.prompt.done() } else { "IGNORED" }
                );
            }
            a
        } else {
            match self.mode {
                Mode::No => {
                    if !silent {
                        let _ = writeln!(self.out, "{}? no\n", info.prompt.question());
                    }
                    false
                }
                Mode::Yes => {
                    if !silent {
                        let _ = writeln!(self.out, "{}? yes\n", info.prompt.question());
                    }
                    true
                }
                Mode::Preen => {
                    let a = info.flags & flags::PREEN_NO == 0;
                    if !silent {
                        let _ = writeln!(
                            self.out,
                            "{}.",
                            if a { info.prompt.done() } else { "IGNORED" }
                        );
                    }
                    a
                }
                Mode::Ask => self.ask(info.prompt),
            }
        };
        let _ = self.out.flush();
        if !answer && info.flags & flags::NO_OK == 0 {
            self.valid = false;
        }
        if answer && info.flags & flags::NOT_A_FIX == 0 {
            self.fixed = true;
        }
        answer
    }

    /// Interactive question on the terminal (stdin). EOF or `^C` cancels.
    fn ask(&mut self, prompt: Prompt) -> bool {
        if self.yes_to_all {
            let _ = writeln!(self.out, "{}? yes\n", prompt.question());
            return true;
        }
        let stdin = io::stdin();
        loop {
            let _ = write!(self.out, "{}<y>? ", prompt.question());
            let _ = self.out.flush();
            let mut line = String::new();
            match stdin.lock().read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = writeln!(self.out, "\ncancelled");
                    self.aborted = true;
                    return false;
                }
                Ok(_) => {}
            }
            match line.trim() {
                "" | "y" | "Y" | "yes" => {
                    let _ = writeln!(self.out);
                    return true;
                }
                "n" | "N" | "no" => {
                    let _ = writeln!(self.out);
                    return false;
                }
                "a" | "A" => {
                    self.yes_to_all = true;
                    let _ = writeln!(self.out, "yes to all\n");
                    return true;
                }
                _ => {
                    let _ = writeln!(self.out, "Please answer y (yes), n (no) or a (yes to all).");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn templates_render_every_key() {
        let p = PCtx {
            ino: 12,
            blk: 99,
            blkcount: Some(-1),
            num: 3,
            name: escape_name(b"a\x01\xe9"),
            ..PCtx::default()
        };
        assert_eq!(
            render("{bdesc} {blk} of {ino}: {num} '{name}' {unknown}", &p),
            "indirect block 99 of 12: 3 'a^AM-i' {unknown}"
        );
        for c in Code::ALL {
            let _ = render(c.info().template, &p);
        }
    }

    #[test]
    fn answers_follow_the_mode_and_keep_the_verdict() {
        let buf = Buf::default();
        let mut r = Reporter::new(Mode::No, Box::new(buf.clone()), "img");
        assert!(!r.fix(Code::BadISize, &PCtx::ino(5)));
        assert!(!r.valid);
        let mut r = Reporter::new(Mode::No, Box::new(buf.clone()), "img");
        assert!(!r.fix(Code::FreeBlockCount, &PCtx::default()));
        assert!(r.valid, "NO_OK problems keep the verdict");
        let mut r = Reporter::new(Mode::Yes, Box::new(buf.clone()), "img");
        assert!(r.fix(Code::BadISize, &PCtx::ino(5)));
        assert!(r.valid && r.fixed);
        let mut r = Reporter::new(Mode::Preen, Box::new(buf.clone()), "img");
        assert!(r.fix(Code::BadRefCount, &PCtx::ino(5)));
        assert!(!r.fix(Code::RootNotDir, &PCtx::ino(2)));
        assert!(r.halted && !r.valid);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("Inode 5, i_size is 0, should be 0.  Fix? no"));
        assert!(text.contains("UNEXPECTED INCONSISTENCY"));
    }
}
