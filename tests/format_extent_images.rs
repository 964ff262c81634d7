//! Extent trees against real images made by mkfs.ext4 and debugfs: parsing
//! and tail checksums of trees written by libext2fs, and trees built by
//! `build_extent_tree` checked by e2fsck.

mod common;

use std::path::Path;

use common::rawimage::*;
use common::{debugfs_r, e2fsck_fn, e2fsck_fy, TempDir};
use fext::format::csum;
use fext::format::extent::{
    build_extent_tree, extent_tree_blocks, verify_extent_block_csum, walk_extent_tree, Extent,
    ExtentNode, ExtentWalk, HEADER_LEN,
};
use fext::format::{FormatError, InodeNo, LogicalBlock, PhysBlock};

/// One line of `debugfs -R "ex FILE"`.
#[derive(Debug)]
enum ExLine {
    /// An index entry: the node block it points to.
    Index { level: u16, block: u64 },
    /// A leaf extent.
    Leaf(Extent),
}

fn debugfs_extents(img: &Path, file: &str) -> Vec<ExLine> {
    let out = debugfs_r(img, &format!("ex {file}"));
    let mut lines = Vec::new();
    for line in out.lines().skip(1) {
        let norm = line.replace('/', " ");
        let t: Vec<&str> = norm.split_whitespace().collect();
        let num = |i: usize| t[i].parse::<u64>().unwrap();
        let (level, max) = (num(0) as u16, num(1) as u16);
        if level < max {
            lines.push(ExLine::Index {
                level,
                block: num(7),
            });
        } else {
            // level max idx n lstart - lend pstart - pend len [Uninit]
            lines.push(ExLine::Leaf(Extent {
                logical: LogicalBlock(num(4) as u32),
                len: num(10) as u16,
                start: PhysBlock(num(7)),
                unwritten: t.get(11) == Some(&"Uninit"),
            }));
        }
    }
    lines
}

fn walk_image(
    img: &Path,
    file: &str,
    block_size: usize,
    seed: Option<u32>,
) -> Result<ExtentWalk, FormatError> {
    let root = i_block(img, file);
    walk_extent_tree(&root, block_size, block_count(img), seed, |b, buf| {
        buf.copy_from_slice(&read_block(img, block_size, b.0));
        Ok(())
    })
}

fn inode_seed_of(img: &Path, file: &str) -> u32 {
    let stat = debugfs_r(img, &format!("stat {file}"));
    let ino = stat_number(&stat, "Inode:") as u32;
    let generation = stat_number(&stat, "Generation:") as u32;
    csum::inode_seed(fs_csum_seed(img), InodeNo(ino), generation)
}

/// Checks our walk against debugfs' view of the same tree.
fn assert_matches_debugfs(img: &Path, file: &str, walk: &ExtentWalk) {
    let ex = debugfs_extents(img, file);
    let leaves: Vec<Extent> = ex
        .iter()
        .filter_map(|l| match l {
            ExLine::Leaf(e) => Some(*e),
            ExLine::Index { .. } => None,
        })
        .collect();
    let nodes: Vec<u64> = ex
        .iter()
        .filter_map(|l| match l {
            ExLine::Index { block, .. } => Some(*block),
            ExLine::Leaf(_) => None,
        })
        .collect();
    let max_level = ex
        .iter()
        .filter_map(|l| match l {
            ExLine::Index { level, .. } => Some(*level + 1),
            ExLine::Leaf(_) => None,
        })
        .max()
        .unwrap_or(0);
    assert_eq!(walk.extents, leaves);
    assert_eq!(
        walk.tree_blocks.iter().map(|b| b.0).collect::<Vec<_>>(),
        nodes
    );
    assert_eq!(walk.depth, max_level);
}

#[test]
fn libext2fs_depth_2_tree_parses_and_its_checksums_verify() {
    let dir = TempDir::new("ext-d2");
    let img = dir.join("img");
    let src = dir.join("src");
    let bs = 1024;
    mkfs_kind("ext4", bs, &img, "8M", &[]);
    // 400 one-block extents separated by holes: libext2fs makes a depth-2 tree.
    let blocks: Vec<(u64, u8)> = (0..400).map(|i| (i * 2, (i % 250 + 1) as u8)).collect();
    write_sparse_file(&src, bs, &blocks, 800);
    debugfs_script_strict(
        &img,
        &[
            format!("write {} f", src.display()),
            "sif f generation 0x5eed1234".into(),
        ],
    );
    // The tree blocks still hold checksums for generation 0: let e2fsck
    // rewrite them with the new generation, so the vectors come from e2fsprogs.
    let (code, out) = e2fsck_fy(&img);
    assert!(code <= 1, "e2fsck -fy exit {code}: {out}");
    assert_eq!(e2fsck_fn(&img).0, 0);

    let seed = inode_seed_of(&img, "f");
    let walk = walk_image(&img, "f", bs, Some(seed)).unwrap();
    assert_eq!(walk.depth, 2);
    assert_eq!(walk.extents.len(), 400);
    assert!(walk.tree_blocks.len() >= 6);
    assert_matches_debugfs(&img, "f", &walk);

    // The checksum depends on the generation: the seed for generation 0 fails.
    let stat = debugfs_r(&img, "stat f");
    let ino = InodeNo(stat_number(&stat, "Inode:") as u32);
    let wrong = csum::inode_seed(fs_csum_seed(&img), ino, 0);
    assert!(matches!(
        walk_image(&img, "f", bs, Some(wrong)),
        Err(FormatError::BadChecksum { .. })
    ));

    // Re-encoding each parsed node reproduces the header and entries exactly.
    for b in &walk.tree_blocks {
        let block = read_block(&img, bs, b.0);
        verify_extent_block_csum(seed, &block).unwrap();
        let node = ExtentNode::parse_block(&block).unwrap();
        let mut again = block.clone();
        node.encode_block(&mut again).unwrap();
        let used = HEADER_LEN + 12 * node.len();
        assert_eq!(&again[..used], &block[..used]);
    }
}

#[test]
fn unwritten_extents_from_fallocate_parse_on_4k() {
    let dir = TempDir::new("ext-unwritten");
    let img = dir.join("img");
    let src = dir.join("src");
    let bs = 4096;
    mkfs_kind("ext4", bs, &img, "16M", &[]);
    let blocks: Vec<(u64, u8)> = (0..50).map(|i| (i * 3, i as u8 + 1)).collect();
    write_sparse_file(&src, bs, &blocks, 150);
    // fallocate fills the holes with unwritten extents between the written ones.
    debugfs_script_strict(
        &img,
        &[
            format!("write {} g", src.display()),
            "fallocate g 0 200".into(),
        ],
    );
    assert_eq!(e2fsck_fn(&img).0, 0);
    let seed = inode_seed_of(&img, "g");
    let walk = walk_image(&img, "g", bs, Some(seed)).unwrap();
    assert_eq!(walk.depth, 1);
    assert!(walk.extents.iter().filter(|e| e.unwritten).count() >= 50);
    assert!(walk.extents.iter().filter(|e| !e.unwritten).count() >= 50);
    assert_matches_debugfs(&img, "g", &walk);
}

/// Extents over `data` (in order) with lengths cycling 1..=max_len, split
/// where the blocks are not contiguous; logical gaps of one block between.
fn extents_over(data: &[PhysBlock], max_len: usize, unwritten_every: usize) -> Vec<Extent> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut logical = 0u32;
    while i < data.len() {
        let want = out.len() % max_len + 1;
        let mut len = 1;
        while len < want && i + len < data.len() && data[i + len].0 == data[i].0 + len as u64 {
            len += 1;
        }
        out.push(Extent {
            logical: LogicalBlock(logical),
            len: len as u16,
            start: data[i],
            unwritten: unwritten_every != 0 && out.len() % unwritten_every == 3,
        });
        logical += len as u32 + 1;
        i += len;
    }
    out
}

/// Writes a plain file of `total` blocks, then replaces its mapping with a
/// tree built by `build_extent_tree` over the same blocks (some as tree
/// blocks, the rest as data), so that the bitmaps and i_blocks stay right,
/// and asks e2fsck.
fn built_tree_passes_e2fsck(bs: usize, image_size: &str, total: u64, max_len: usize) -> u16 {
    let dir = TempDir::new("ext-build");
    let img = dir.join("img");
    let src = dir.join("src");
    mkfs_kind("ext4", bs, &img, image_size, &[]);
    let blocks: Vec<(u64, u8)> = (0..total).map(|i| (i, 0x5a)).collect();
    write_sparse_file(&src, bs, &blocks, total);
    debugfs_script_strict(
        &img,
        &[
            format!("write {} f", src.display()),
            "sif f generation 0x0badcafe".into(),
        ],
    );
    // The pool: every block the file owns (data, then any tree blocks).
    let seed = inode_seed_of(&img, "f");
    let original = walk_image(&img, "f", bs, None).unwrap();
    let mut pool: Vec<PhysBlock> = Vec::new();
    for e in &original.extents {
        pool.extend((0..u64::from(e.len)).map(|k| PhysBlock(e.start.0 + k)));
    }
    pool.extend(&original.tree_blocks);
    assert_eq!(pool.len() as u64, total + original.tree_blocks.len() as u64);

    // Tree blocks come first from the pool; find the fixed point of their count.
    let mut n_tree = 0usize;
    let mut extents = Vec::new();
    for _ in 0..20 {
        extents = extents_over(&pool[n_tree..], max_len, 5);
        let need = extent_tree_blocks(extents.len(), bs).unwrap() as usize;
        if need == n_tree {
            break;
        }
        n_tree = need;
    }
    assert_eq!(
        extent_tree_blocks(extents.len(), bs).unwrap() as usize,
        n_tree
    );

    let mut next = 0;
    let built = build_extent_tree::<FormatError, _>(&extents, bs, Some(seed), || {
        next += 1;
        Ok(pool[next - 1])
    })
    .unwrap();
    assert_eq!(built.tree_blocks() as usize, n_tree);

    for (b, bytes) in &built.blocks {
        write_block(&img, bs, b.0, bytes);
    }
    let size = extents.last().unwrap().end() * bs as u64;
    let mut cmds = vec![format!("sif f size {size}")];
    for (i, word) in built.i_block.chunks_exact(4).enumerate() {
        let v = u32::from_le_bytes(word.try_into().unwrap());
        let slot = match i {
            12 => "IND".to_string(),
            13 => "DIND".to_string(),
            14 => "TIND".to_string(),
            _ => i.to_string(),
        };
        cmds.push(format!("sif f block[{slot}] {v:#x}"));
    }
    debugfs_script_strict(&img, &cmds);

    let (code, out) = e2fsck_fn(&img);
    assert_eq!(code, 0, "e2fsck -fn:\n{out}");
    let walk = walk_image(&img, "f", bs, Some(seed)).unwrap();
    assert_eq!(walk.extents, extents);
    assert_matches_debugfs(&img, "f", &walk);
    built.depth
}

#[test]
fn built_tree_in_the_inode_passes_e2fsck() {
    assert_eq!(built_tree_passes_e2fsck(1024, "4M", 6, 3), 0);
}

#[test]
fn built_depth_1_tree_passes_e2fsck_on_4k() {
    assert_eq!(built_tree_passes_e2fsck(4096, "32M", 800, 3), 1);
}

#[test]
fn built_depth_2_tree_passes_e2fsck_on_1k() {
    assert_eq!(built_tree_passes_e2fsck(1024, "16M", 2000, 3), 2);
}

#[test]
fn built_depth_3_tree_passes_e2fsck_on_1k() {
    // More than 4 * 84 * 84 = 28224 extents.
    assert_eq!(built_tree_passes_e2fsck(1024, "48M", 28700, 1), 3);
}
