//! Block maps against real ext2 images made by mkfs.ext2 and debugfs:
//! parsing single, double and triple indirect maps, reproducing them
//! byte for byte with the builder, and a rebuilt sparse map checked by e2fsck.

mod common;

use std::collections::VecDeque;
use std::path::Path;

use common::rawimage::*;
use common::{debugfs_r, e2fsck_fn, TempDir};
use fext::format::indirect::{
    block_path, build_block_map, lookup_block, new_indirect_blocks, parse_i_block, walk_block_map,
    BlockMapWalk, N_SLOTS,
};
use fext::format::{FormatError, LogicalBlock, PhysBlock};

/// The `BLOCKS:` section of `debugfs stat`: data mappings and, in order,
/// the indirect blocks ((IND), (DIND), (TIND)).
fn debugfs_blocks(img: &Path, file: &str) -> BlockMapWalk {
    let stat = debugfs_r(img, &format!("stat {file}"));
    let section = stat
        .split("BLOCKS:")
        .nth(1)
        .expect("BLOCKS section")
        .split("TOTAL:")
        .next()
        .unwrap();
    let mut walk = BlockMapWalk {
        data: Vec::new(),
        meta: Vec::new(),
    };
    for entry in section.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (what, phys) = entry.split_once(':').unwrap();
        let what = what.trim_matches(|c| c == '(' || c == ')');
        let range = |s: &str| -> (u64, u64) {
            match s.split_once('-') {
                Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                None => (s.parse().unwrap(), s.parse().unwrap()),
            }
        };
        if matches!(what, "IND" | "DIND" | "TIND") {
            walk.meta.push(PhysBlock(phys.parse().unwrap()));
            continue;
        }
        let (l0, l1) = range(what);
        let (p0, p1) = range(phys);
        assert_eq!(l1 - l0, p1 - p0);
        for k in 0..=l1 - l0 {
            walk.data
                .push((LogicalBlock((l0 + k) as u32), PhysBlock(p0 + k)));
        }
    }
    walk
}

fn i_block_words(img: &Path, file: &str) -> [u32; N_SLOTS] {
    parse_i_block(&i_block(img, file)).unwrap()
}

fn walk_image(img: &Path, file: &str, bs: usize) -> BlockMapWalk {
    walk_block_map::<FormatError, _>(&i_block_words(img, file), bs, block_count(img), |b, buf| {
        buf.copy_from_slice(&read_block(img, bs, b.0));
        Ok(())
    })
    .unwrap()
}

/// Writes a sparse file whose data sits at `logicals` with debugfs, then
/// checks our walk, lookups and a byte-exact rebuild against the image.
fn debugfs_map_round_trips(bs: usize, image_size: &str, logicals: &[u64]) -> BlockMapWalk {
    let dir = TempDir::new("ind");
    let img = dir.join("img");
    let src = dir.join("src");
    mkfs_kind("ext2", bs, &img, image_size, &[]);
    let blocks: Vec<(u64, u8)> = logicals.iter().map(|&l| (l, (l % 251) as u8 + 1)).collect();
    write_sparse_file(&src, bs, &blocks, logicals.last().unwrap() + 1);
    debugfs_script_strict(&img, &[format!("write {} f", src.display())]);
    assert_eq!(e2fsck_fn(&img).0, 0);

    let walk = walk_image(&img, "f", bs);
    let listed = debugfs_blocks(&img, "f");
    assert_eq!(walk, listed);
    // `debugfs blocks` lists every block of the file, indirect ones included.
    let mut plain: Vec<u64> = debugfs_r(&img, "blocks f")
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    let mut ours: Vec<u64> = walk.data.iter().map(|(_, p)| p.0).collect();
    ours.extend(walk.meta.iter().map(|b| b.0));
    plain.sort_unstable();
    ours.sort_unstable();
    assert_eq!(ours, plain);
    assert_eq!(
        walk.data
            .iter()
            .map(|(l, _)| u64::from(l.0))
            .collect::<Vec<_>>(),
        logicals
    );

    // Single lookups, for mapped blocks and for the holes next to them.
    let words = i_block_words(&img, "f");
    for &(l, p) in &walk.data {
        for (probe, want) in [(l.0, Some(p)), (l.0 + 1, None)] {
            if walk.data.iter().any(|(x, _)| x.0 == probe) && want.is_none() {
                continue;
            }
            let got = lookup_block::<FormatError, _>(
                &words,
                bs,
                block_count(&img),
                LogicalBlock(probe),
                |b, buf| {
                    buf.copy_from_slice(&read_block(&img, bs, b.0));
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(got, want, "lookup {probe}");
        }
    }

    // Rebuilding from the data list, handing out the same indirect blocks in
    // allocation order, reproduces i_block and every indirect block exactly.
    let mut meta: VecDeque<PhysBlock> = walk.meta.iter().copied().collect();
    let built = build_block_map::<_, FormatError, _>(bs, walk.data.iter().copied(), |_| {
        Ok(meta.pop_front().expect("enough indirect blocks"))
    })
    .unwrap();
    assert!(meta.is_empty());
    assert_eq!(built.i_block, words);
    assert_eq!(built.meta_blocks(), walk.meta.len() as u64);
    for (b, bytes) in &built.blocks {
        assert_eq!(bytes, &read_block(&img, bs, b.0), "indirect block {}", b.0);
    }
    walk
}

#[test]
fn triple_indirect_map_on_1k_blocks() {
    let t = 12 + 256 + 65536;
    let logicals = [
        0,
        1,
        11,
        12,
        13,
        267,
        268,
        269,
        268 + 256 * 7 + 3,
        t - 1,
        t,
        t + 1,
        t + 256,
        t + 65536 + 5,
        t + 3 * 65536 + 2 * 256 + 1,
    ];
    let walk = debugfs_map_round_trips(1024, "8M", &logicals);
    // ind; dind + 3 ind; tind + 3 dind + 4 ind.
    assert_eq!(walk.meta.len(), 1 + 4 + 8);
}

#[test]
fn double_indirect_map_on_4k_blocks() {
    let logicals = [
        3,
        12,
        500,
        1035,
        1036,
        1036 + 1024 * 5 + 7,
        1036 + 1024 * 1024 - 1,
    ];
    let walk = debugfs_map_round_trips(4096, "16M", &logicals);
    // ind; dind + 3 ind.
    assert_eq!(walk.meta.len(), 1 + 4);
}

#[test]
fn rebuilt_sparse_map_passes_e2fsck() {
    let dir = TempDir::new("ind-build");
    let img = dir.join("img");
    let src = dir.join("src");
    let bs = 1024;
    mkfs_kind("ext2", bs, &img, "8M", &[]);
    let total = 1500u64;
    let blocks: Vec<(u64, u8)> = (0..total).map(|l| (l, 0xa5)).collect();
    write_sparse_file(&src, bs, &blocks, total);
    debugfs_script_strict(&img, &[format!("write {} f", src.display())]);

    // The pool: every block the file owns.
    let original = walk_image(&img, "f", bs);
    let mut pool: VecDeque<PhysBlock> = original.data.iter().map(|(_, p)| *p).collect();
    pool.extend(&original.meta);
    let pool_len = pool.len();

    // A sparse layout over the whole range, direct slots kept for the end:
    // take positions while more than 12 blocks remain, reserving the
    // indirect blocks each position needs just before its data block.
    let t = 12 + 256 + 65536;
    let positions = (0..)
        .map(|k: u32| 12 + k * 3)
        .take_while(|&l| l < 268)
        .chain((0..60).map(|k| 268 + k * 1031))
        .chain((0..).map(|k| t + k * 1283));
    let mut data = Vec::new();
    let mut reserved = VecDeque::new();
    let mut prev = None;
    for l in positions {
        if pool.len() <= 12 {
            break;
        }
        let l = LogicalBlock(l);
        for _ in 0..new_indirect_blocks(bs, prev, l).unwrap() {
            reserved.push_back(pool.pop_front().unwrap());
        }
        data.push((l, pool.pop_front().unwrap()));
        prev = Some(l);
    }
    assert!(block_path(bs, prev.unwrap()).unwrap().levels == 3);
    let mut direct: Vec<_> = (0u32..)
        .zip(pool.drain(..))
        .map(|(l, p)| (LogicalBlock(l), p))
        .collect();
    direct.append(&mut data);
    let data = direct;

    let built = build_block_map::<_, FormatError, _>(bs, data.iter().copied(), |_| {
        Ok(reserved.pop_front().expect("reserved"))
    })
    .unwrap();
    assert!(reserved.is_empty());
    assert_eq!(data.len() as u64 + built.meta_blocks(), pool_len as u64);

    for (b, bytes) in &built.blocks {
        write_block(&img, bs, b.0, bytes);
    }
    let size = (u64::from(data.last().unwrap().0 .0) + 1) * bs as u64;
    let mut cmds = vec![format!("sif f size {size}")];
    for (i, v) in built.i_block.iter().enumerate() {
        let slot = match i {
            12 => "IND".to_string(),
            13 => "DIND".to_string(),
            14 => "TIND".to_string(),
            _ => i.to_string(),
        };
        cmds.push(format!("sif f block[{slot}] {v}"));
    }
    debugfs_script_strict(&img, &cmds);

    let (code, out) = e2fsck_fn(&img);
    assert_eq!(code, 0, "e2fsck -fn:\n{out}");
    let walk = walk_image(&img, "f", bs);
    assert_eq!(walk.data, data);
    assert_eq!(walk, debugfs_blocks(&img, "f"));
}
