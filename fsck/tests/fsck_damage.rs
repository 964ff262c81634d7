//! Hand-made damage on fresh images, one kind per test: each must be found
//! by `fsck-fext -fn` (exit 4, image untouched), repaired by `fsck-fext -fy`
//! (exit 1), and the result must be clean under both `e2fsck -fn` and
//! `fsck-fext -fn`. Damage is made with debugfs or by writing bytes.

#[path = "../../tests/common/mod.rs"]
mod common;
mod fsckutil;

use std::fs::File;
use std::os::unix::fs::FileExt;

use common::*;
use fsckutil::*;

/// Offset of `i_checksum_lo` in an inode.
const I_CHECKSUM_LO: u64 = 0x7C;
/// Offset of `bg_checksum` in a group descriptor.
const BG_CHECKSUM: u64 = 0x1E;

/// The source tree: the rich tree (small) plus `frag`, a sparse file of 24
/// separate 4 KiB pieces (an extent tree of depth 1 under ext4).
fn tree(block_size: u32) -> TempDir {
    let dir = temp_rich_tree(
        "fsck-damage-tree",
        &RichTreeOpts {
            big_files: false,
            many_entries: 300,
            block_size,
        },
    );
    let f = File::create(dir.join("frag")).expect("create frag");
    for i in 0..24u64 {
        f.write_all_at(&pattern(4096, i), i * 65536)
            .expect("write frag");
    }
    dir
}

/// A populated ext4 image (4 KiB blocks, metadata_csum).
fn ext4_image() -> TempImage {
    image(&["-t", "ext4", "-b", "4096"])
}

fn image(args: &[&str]) -> TempImage {
    let img = image_unchecked(args);
    assert_e2fsck_clean(img.path());
    img
}

/// [`image`] without the check that it is clean.
fn image_unchecked(args: &[&str]) -> TempImage {
    let bs = if args.contains(&"1024") { 1024 } else { 4096 };
    let t = tree(bs);
    let mut a = args.to_vec();
    let src = t.path().to_str().expect("utf-8 temp path").to_owned();
    a.extend(["-d", &src]);
    mke2fs_image(&a, "64M")
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    common::richtree::pattern(len, seed)
}

#[test]
fn flipped_inode_checksum() {
    let img = ext4_image();
    let off = inode_offset(img.path(), "/files/few_blocks");
    flip_byte(img.path(), off + I_CHECKSUM_LO);
    let (n, _) = damaged_then_repaired(img.path());
    assert!(n.contains("checksum"), "{n}");
}

#[test]
fn flipped_group_descriptor_checksum() {
    let img = ext4_image();
    // 4 KiB blocks: the descriptors are in block 1; group 0's first. A bad
    // descriptor checksum alone is reported but, as e2fsck -n does, not
    // counted as an error left uncorrected (exit 0); -y rewrites it.
    flip_byte(img.path(), 4096 + BG_CHECKSUM);
    let (e2, e2out) = e2fsck_fn(img.path());
    let out = fsck(&["-fn"], img.path());
    assert_eq!(
        out.code, e2,
        "e2fsck -fn said:\n{e2out}\nfsck-fext -fn said:\n{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Group descriptor 0 checksum is"),
        "{}",
        out.stdout
    );
    assert_repaired(img.path());
}

#[test]
fn damaged_group_descriptor() {
    let img = ext4_image();
    // bg_free_inodes_count_lo (0x0E) changed, checksum left stale.
    flip_byte(img.path(), 4096 + 0x0E);
    let (n, _) = damaged_then_repaired(img.path());
    assert!(n.contains("checksum"), "{n}");
}

#[test]
fn flipped_directory_block_checksum() {
    let img = ext4_image();
    let blocks = blocks_of(img.path(), "/dirs");
    let b = blocks[0];
    // The checksum is the last 4 bytes of the block (the dirent tail).
    flip_byte(img.path(), b * 4096 + 4095);
    let (n, _) = damaged_then_repaired(img.path());
    assert!(n.contains("/dirs") || n.contains("checksum"), "{n}");
}

#[test]
fn zeroed_inode_table_block() {
    let img = ext4_image();
    // The second inode table block of group 0 holds inodes 17..=32: files
    // and directories of the tree (the first one holds the root).
    let off = inode_offset(img.path(), "<17>");
    let bs = 4096;
    let start = off / bs * bs;
    write_bytes(img.path(), start, &vec![0u8; 4096]);
    damaged_then_repaired(img.path());
}

#[test]
fn cleared_block_bitmap_bits() {
    let img = ext4_image();
    let blocks = blocks_of(img.path(), "/files/few_blocks");
    debugfs_w(
        img.path(),
        &[&format!("freeb {} {}", blocks[0], blocks.len())],
    );
    let (n, _) = damaged_then_repaired(img.path());
    assert!(n.contains("Block bitmap differences"), "{n}");
}

#[test]
fn cleared_inode_bitmap_bit() {
    let img = ext4_image();
    debugfs_w(img.path(), &["freei /files/tiny"]);
    let (n, _) = damaged_then_repaired(img.path());
    assert!(n.contains("Inode bitmap differences"), "{n}");
}

#[test]
fn doubly_claimed_block_extents() {
    let img = ext4_image();
    // Point the first extent of one_block at a block of few_blocks.
    let other = blocks_of(img.path(), "/files/few_blocks")[1];
    debugfs_w(
        img.path(),
        &[&format!("sif /files/one_block block[5] {other}")],
    );
    let (n, y) = damaged_then_repaired(img.path());
    assert!(n.contains("multiply-claimed"), "{n}");
    assert!(y.contains("Clone"), "{y}");
}

#[test]
fn doubly_claimed_block_block_map() {
    let img = image(&["-t", "ext3", "-b", "4096"]);
    let other = blocks_of(img.path(), "/files/few_blocks")[2];
    debugfs_w(
        img.path(),
        &[&format!("sif /files/one_block block[0] {other}")],
    );
    let (n, _) = damaged_then_repaired(img.path());
    assert!(n.contains("multiply-claimed"), "{n}");
}

#[test]
fn block_claimed_by_file_and_metadata() {
    let img = ext4_image();
    // The first block of group 0's inode table, claimed by a file.
    let itable = inode_offset(img.path(), "<1>") / 4096;
    debugfs_w(
        img.path(),
        &[&format!("sif /files/one_block block[5] {itable}")],
    );
    damaged_then_repaired(img.path());
}

#[test]
fn entry_to_freed_inode() {
    let img = ext4_image();
    debugfs_w(
        img.path(),
        &["clri /files/few_blocks", "freei /files/few_blocks"],
    );
    let (n, _) = damaged_then_repaired(img.path());
    assert!(n.contains("few_blocks"), "{n}");
}

#[test]
fn unreachable_directory() {
    let img = ext4_image();
    // Remove the only name of dirs/a without touching link counts.
    debugfs_w(img.path(), &["unlink /dirs/a"]);
    let (n, y) = damaged_then_repaired(img.path());
    assert!(n.contains("Unconnected directory inode"), "{n}");
    assert!(y.contains("lost+found"), "{y}");
    let lf = debugfs_r(img.path(), "ls -l /lost+found");
    assert!(lf.contains('#'), "reconnected into lost+found:\n{lf}");
}

#[test]
fn unreachable_directory_without_lost_and_found() {
    let img = ext4_image();
    debugfs_w(img.path(), &["rmdir /lost+found", "unlink /dirs/a"]);
    let (_, y) = damaged_then_repaired(img.path());
    assert!(y.contains("/lost+found not found.  Create? yes"), "{y}");
}

#[test]
fn wrong_link_count() {
    let img = ext4_image();
    debugfs_w(img.path(), &["sif /files/tiny links_count 5"]);
    let (n, _) = damaged_then_repaired(img.path());
    assert!(n.contains("ref count is 5, should be 1"), "{n}");
}

#[test]
fn wrong_directory_link_count() {
    let img = ext4_image();
    debugfs_w(img.path(), &["sif /dirs links_count 9"]);
    damaged_then_repaired(img.path());
}

#[test]
fn unattached_inode() {
    let img = ext4_image();
    // A file that lost its only name: reconnected into lost+found.
    debugfs_w(img.path(), &["unlink /files/tiny"]);
    let (n, _) = damaged_then_repaired(img.path());
    assert!(n.contains("Unattached inode"), "{n}");
}

#[test]
fn truncated_extent_tree() {
    let img = ext4_image();
    let depth = debugfs_r(img.path(), "ex /frag");
    assert!(
        depth.contains("1/ 1"),
        "frag has an extent tree of depth 1:\n{depth}"
    );
    // Zero the leaf block: the index in the inode now points at garbage.
    let leaf = debugfs_r(img.path(), "stat /frag");
    let leaf_blk: u64 = leaf
        .split("(ETB0):")
        .nth(1)
        .and_then(|r| {
            r.split(|c: char| !c.is_ascii_digit())
                .find(|s| !s.is_empty())
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no extent tree block in:\n{leaf}"));
    write_bytes(img.path(), leaf_blk * 4096, &vec![0u8; 4096]);
    let (n, _) = damaged_then_repaired(img.path());
    assert!(n.contains("extent"), "{n}");
}

#[test]
fn bad_extent_in_leaf() {
    let img = ext4_image();
    // An extent past the end of the file system.
    debugfs_w(img.path(), &["sif /files/few_blocks block[5] 99999999"]);
    let (n, _) = damaged_then_repaired(img.path());
    assert!(n.contains("few_blocks") || n.contains("extent"), "{n}");
}

#[test]
fn wrong_free_counts() {
    let img = ext4_image();
    debugfs_w(
        img.path(),
        &[
            "ssv free_blocks_count 17",
            "set_bg 0 free_inodes_count 3",
            "set_bg 0 checksum calc",
        ],
    );
    // e2fsck (like fsck-fext) trusts the group counts for the superblock
    // totals; a wrong group count is what it reports.
    let (n, _) = damaged_then_repaired(img.path());
    assert!(n.contains("Free inodes count wrong for group #0"), "{n}");
}

#[test]
fn bad_dot_dot_entry() {
    let img = ext4_image();
    let wrong = inode_of(img.path(), "/files");
    // Point b's '..' (the second entry, at byte 12) at /files; the block's
    // checksum goes stale too: both get fixed.
    let blk = blocks_of(img.path(), "/dirs/a/b")[0];
    write_bytes(img.path(), blk * 4096 + 12, &wrong.to_le_bytes());
    let (n, _) = damaged_then_repaired(img.path());
    assert!(n.contains("'..'"), "{n}");
}

#[test]
fn quota_usage_out_of_date() {
    let img = image_unchecked(&[
        "-t",
        "ext4",
        "-b",
        "4096",
        "-I",
        "256",
        "-O",
        "quota,project",
    ]);
    // mke2fs -d leaves the quota files out of date: e2fsck fixes them.
    let (code, _) = e2fsck_fy(img.path());
    assert!(code <= 1);
    assert_e2fsck_clean(img.path());
    // Files change owner, group and project behind the quota files' back.
    debugfs_w(
        img.path(),
        &[
            "sif /files/few_blocks uid 4321",
            "sif /dirs gid 999",
            "sif /files/tiny projid 7",
        ],
    );
    let (n, y) = damaged_then_repaired(img.path());
    for t in 0..3 {
        assert!(
            n.contains(&format!("Update quota info for quota type {t}? no")),
            "{n}"
        );
        assert!(
            y.contains(&format!("Update quota info for quota type {t}? yes")),
            "{y}"
        );
    }
    assert!(n.contains("Missing quota entry ID 4321"), "{n}");
}

#[test]
fn invalid_utf8_names_in_casefolded_directory() {
    let img = mke2fs_image(&["-t", "ext4", "-b", "4096", "-O", "casefold"], "32M");
    debugfs_w(
        img.path(),
        &[
            "mkdir cf",
            "sif cf flags 0x40080000",
            "write /dev/null cf/aXb",
            "write /dev/null cf/aYb",
        ],
    );
    assert_e2fsck_clean(img.path());
    // Both names become "a\xffb": invalid UTF-8, and the same name; the
    // block checksum goes stale too.
    let blk = blocks_of(img.path(), "/cf")[0];
    let block = read_bytes(img.path(), blk * 4096, 4096);
    for pat in [&b"aXb"[..], b"aYb"] {
        let at = block
            .windows(3)
            .position(|w| w == pat)
            .expect("name in block");
        write_bytes(img.path(), blk * 4096 + at as u64 + 1, &[0xff]);
    }
    let (n, y) = damaged_then_repaired(img.path());
    assert!(
        n.contains("has illegal UTF-8 characters in its name"),
        "{n}"
    );
    // Fixed to "a.." twice: the second one is renamed (as e2fsck would:
    // "a.~0", same length rounded up to 4), not dropped.
    assert!(y.contains("non-unique filename"), "{y}");
    let ls = debugfs_r(img.path(), "ls /cf");
    assert!(ls.contains(" a.. ") && ls.contains(" a.~0 "), "{ls}");
}

#[test]
fn orphan_file_block_not_clean() {
    let img = mke2fs_image(&["-t", "ext4", "-b", "4096", "-O", "orphan_file"], "32M");
    // An entry left in the second block of the orphan file.
    let blk = blocks_of(img.path(), "<12>")[1];
    write_bytes(img.path(), blk * 4096 + 8, &13u32.to_le_bytes());
    let (n, _) = damaged_then_repaired(img.path());
    assert!(
        n.contains("Orphan file (inode 12) block 1 is not clean."),
        "{n}"
    );
}

#[test]
fn damage_on_ext2_block_map_image() {
    let img = image(&["-t", "ext2", "-b", "1024"]);
    debugfs_w(
        img.path(),
        &[
            "sif /files/tiny links_count 3",
            "unlink /dirs/a",
            "freeb 300 20",
        ],
    );
    damaged_then_repaired(img.path());
}

#[test]
fn preen_fixes_safe_damage_only() {
    let img = ext4_image();
    let blocks = blocks_of(img.path(), "/files/few_blocks");
    debugfs_w(
        img.path(),
        &[&format!("freeb {} {}", blocks[0], blocks.len())],
    );
    let out = fsck(&["-p"], img.path());
    // The file system is marked clean: -p without -f does not look.
    assert_eq!(out.code, 0, "{}", out.combined());
    let out = fsck(&["-fp"], img.path());
    assert_eq!(out.code, 1, "{}", out.combined());
    assert_e2fsck_clean(img.path());
    // Damage -p must not fix on its own: a doubly-claimed block.
    let other = blocks_of(img.path(), "/files/few_blocks")[1];
    debugfs_w(
        img.path(),
        &[&format!("sif /files/one_block block[5] {other}")],
    );
    let before = std::fs::read(img.path()).unwrap();
    let out = fsck(&["-fp"], img.path());
    assert_eq!(out.code, 4, "{}", out.combined());
    assert!(
        out.stdout.contains("UNEXPECTED INCONSISTENCY"),
        "{}",
        out.stdout
    );
    assert!(
        std::fs::read(img.path()).unwrap() == before,
        "-p changed the image before stopping"
    );
    assert_repaired(img.path());
}

#[test]
fn journal_needing_recovery_is_refused_in_write_modes() {
    let img = ext4_image();
    // An uncommitted-to-disk transaction: the journal needs recovery.
    debugfs_w(img.path(), &["jo", "jw -b 100 /dev/null", "jc"]);
    assert!(dumpe2fs_h(img.path()).has_feature("needs_recovery"));
    let (e2, _) = e2fsck_fn(img.path());
    let out = fsck(&["-fn"], img.path());
    assert_eq!(
        out.code,
        e2,
        "-n agrees with e2fsck -fn:\n{}",
        out.combined()
    );
    assert!(out.stdout.contains("needs recovery"), "{}", out.stdout);
    let before = std::fs::read(img.path()).unwrap();
    for mode in ["-fy", "-fp"] {
        let out = fsck(&[mode], img.path());
        assert_eq!(out.code, 4, "{}", out.combined());
        assert!(out.combined().contains("journal"), "{}", out.combined());
        assert!(
            std::fs::read(img.path()).unwrap() == before,
            "refused, yet changed the image"
        );
    }
}

/// `fsck-fext -f IMAGE` under a pseudo-terminal (util-linux `script`),
/// answers fed on its input; returns (exit code, output).
fn interactive(image: &std::path::Path, answers: &str) -> (i32, String) {
    let cmdline = format!("{FSCK} -f {}", image.display());
    let out = Cmd::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .stdin_bytes(answers.as_bytes().to_vec())
        .timeout(LIMIT)
        .output();
    (out.code, out.stdout.replace('\r', ""))
}

#[test]
fn interactive_mode_asks_on_a_terminal() {
    let img = ext4_image();
    debugfs_w(img.path(), &["sif /files/tiny links_count 5"]);
    let (code, out) = interactive(img.path(), "n\nn\nn\nn\n");
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("ref count is 5, should be 1.  Fix<y>?"),
        "{out}"
    );
    // Answered no: still damaged (only the superblock's bookkeeping, the
    // "not clean" state, is written, as e2fsck does).
    let (e2, e2out) = e2fsck_fn(img.path());
    assert!(
        e2out.contains("ref count is 5, should be 1"),
        "{e2}: {e2out}"
    );
    let (code, out) = interactive(img.path(), "y\ny\ny\ny\n");
    assert_eq!(code, 1, "{out}");
    assert_e2fsck_clean(img.path());
}
