//! ext2/ext3 block maps: direct and indirect block pointers.
//!
//! A file without `EXT4_EXTENTS_FL` (and without inline data) maps logical
//! blocks through the 15 little-endian u32 pointers of `i_block` (60 bytes at
//! inode offset 0x28):
//!
//! ```text
//! i_block[0..12]  direct pointers: logical blocks 0..12
//! i_block[12]     EXT2_IND_BLOCK:  an indirect block of p pointers to data
//! i_block[13]     EXT2_DIND_BLOCK: a block of p pointers to indirect blocks
//! i_block[14]     EXT2_TIND_BLOCK: a block of p pointers to double-indirect blocks
//! ```
//!
//! where `p = block_size / 4` (256 for 1 KiB blocks, 1024 for 4 KiB). An
//! indirect block is an array of `p` u32 LE block numbers. A pointer of 0 is
//! a hole (a missing subtree for an indirect pointer). Physical blocks are 32
//! bits, so a block map cannot address blocks at or beyond 2^32.
//!
//! Logical block `l` lives at:
//! - `l < 12`: `i_block[l]`;
//! - `l - 12 < p`: `ind[l - 12]`;
//! - `l - 12 - p < p^2`: `dind[r / p][r % p]`;
//! - `l - 12 - p - p^2 < p^3`: `tind[r / p^2][(r / p) % p][r % p]`,
//!
//! capped at 2^32 logical blocks. (The kernel caps a block-mapped file
//! further by `i_blocks`; that is the caller's business.)
//!
//! Pointers read from disk are checked against the file-system size by
//! [`validate_block_pointers`]; the walker visits every indirect block at
//! most once, so a malicious map cannot make it loop. The builder
//! ([`build_block_map`]) produces the `i_block` words and indirect blocks for
//! a file whose data blocks are known up front (mkfs).

use std::collections::HashSet;

use super::bytes::{put_u32, require_len, u32_at};
use super::error::{FormatError, Result};
use super::ids::{LogicalBlock, PhysBlock};

/// `EXT2_NDIR_BLOCKS`: direct pointers in `i_block`.
pub const N_DIRECT: usize = 12;
/// `EXT2_IND_BLOCK`: slot of the single-indirect pointer.
pub const IND_SLOT: usize = 12;
/// `EXT2_DIND_BLOCK`: slot of the double-indirect pointer.
pub const DIND_SLOT: usize = 13;
/// `EXT2_TIND_BLOCK`: slot of the triple-indirect pointer.
pub const TIND_SLOT: usize = 14;
/// `EXT2_N_BLOCKS`: pointers in `i_block`.
pub const N_SLOTS: usize = 15;
/// Size of `i_block` in bytes.
pub const I_BLOCK_LEN: usize = 60;
/// Smallest and largest block sizes accepted.
pub const MIN_BLOCK_SIZE: usize = 1024;
pub const MAX_BLOCK_SIZE: usize = 65536;
/// Number of logical blocks a file can have at most (2^32).
const LOGICAL_LIMIT: u64 = 1 << 32;

fn check_block_size(block_size: usize) -> Result<()> {
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) || !block_size.is_power_of_two() {
        return Err(FormatError::unsupported(
            "block map",
            format!("block size {block_size}"),
        ));
    }
    Ok(())
}

/// Pointers per indirect block: `block_size / 4`.
pub fn ptrs_per_block(block_size: usize) -> u32 {
    u32::try_from(block_size / 4).unwrap_or(u32::MAX)
}

/// Logical blocks addressable by a block map: `12 + p + p^2 + p^3`, capped
/// at 2^32.
pub fn max_file_blocks(block_size: usize) -> u64 {
    let p = u64::from(ptrs_per_block(block_size));
    let n = 12 + p + p * p + p * p * p;
    n.min(LOGICAL_LIMIT)
}

/// First logical block served by `i_block[slot]` for slots 12, 13 and 14.
fn slot_base(p: u64, slot: usize) -> u64 {
    match slot {
        IND_SLOT => 12,
        DIND_SLOT => 12 + p,
        _ => 12 + p + p * p,
    }
}

/// Where a logical block's pointer lives: `i_block[slot]`, then one index
/// per indirect level (`levels` of them: 0 direct, 1 single, 2 double, 3
/// triple), top level first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockPath {
    pub slot: usize,
    pub levels: usize,
    pub offsets: [u32; 3],
}

impl BlockPath {
    /// The indexes into each indirect block along the path, top first.
    pub fn indexes(&self) -> &[u32] {
        &self.offsets[..self.levels]
    }

    /// Number of indirect blocks this path shares with `other` (the same
    /// slot and the same indexes above each shared block).
    fn shared_with(&self, other: &BlockPath) -> usize {
        if self.slot != other.slot || self.levels == 0 {
            return 0;
        }
        let common = self
            .indexes()
            .iter()
            .zip(other.indexes())
            .take_while(|(a, b)| a == b)
            .count();
        (1 + common).min(self.levels)
    }
}

/// The path to logical block `lblk`, or an error beyond [`max_file_blocks`].
pub fn block_path(block_size: usize, lblk: LogicalBlock) -> Result<BlockPath> {
    check_block_size(block_size)?;
    let p = u64::from(ptrs_per_block(block_size));
    let l = u64::from(lblk.0);
    let narrow = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    if l < 12 {
        return Ok(BlockPath {
            slot: usize::try_from(l).unwrap_or(0),
            levels: 0,
            offsets: [0; 3],
        });
    }
    let r = l - 12;
    if r < p {
        return Ok(BlockPath {
            slot: IND_SLOT,
            levels: 1,
            offsets: [narrow(r), 0, 0],
        });
    }
    let r = r - p;
    if r < p * p {
        return Ok(BlockPath {
            slot: DIND_SLOT,
            levels: 2,
            offsets: [narrow(r / p), narrow(r % p), 0],
        });
    }
    let r = r - p * p;
    if r < p * p * p {
        return Ok(BlockPath {
            slot: TIND_SLOT,
            levels: 3,
            offsets: [narrow(r / (p * p)), narrow((r / p) % p), narrow(r % p)],
        });
    }
    Err(FormatError::unsupported(
        "block map",
        format!("{lblk} is beyond the triple-indirect range"),
    ))
}

/// Reads the 15 pointers of `i_block`.
pub fn parse_i_block(i_block: &[u8]) -> Result<[u32; N_SLOTS]> {
    require_len(i_block, I_BLOCK_LEN, "block map i_block")?;
    let mut out = [0u32; N_SLOTS];
    for (i, v) in out.iter_mut().enumerate() {
        *v = u32_at(i_block, i * 4);
    }
    Ok(out)
}

/// Writes the 15 pointers into `i_block` (60 bytes).
pub fn encode_i_block(ptrs: &[u32; N_SLOTS], i_block: &mut [u8]) -> Result<()> {
    require_len(i_block, I_BLOCK_LEN, "block map i_block")?;
    for (i, &v) in ptrs.iter().enumerate() {
        put_u32(i_block, i * 4, v);
    }
    Ok(())
}

/// Reads an indirect block (its length is the block size) as `p` pointers.
pub fn parse_indirect_block(block: &[u8]) -> Result<Vec<u32>> {
    check_block_size(block.len())?;
    Ok(block.chunks_exact(4).map(|w| u32_at(w, 0)).collect())
}

/// Writes `ptrs` (at most `block_size / 4`) into an indirect block and
/// zeroes the rest of it.
pub fn encode_indirect_block(ptrs: &[u32], block: &mut [u8]) -> Result<()> {
    check_block_size(block.len())?;
    let used = ptrs
        .len()
        .checked_mul(4)
        .filter(|&n| n <= block.len())
        .ok_or_else(|| {
            FormatError::corrupt("indirect block", format!("{} pointers", ptrs.len()))
        })?;
    for (i, &v) in ptrs.iter().enumerate() {
        put_u32(block, i * 4, v);
    }
    block[used..].fill(0);
    Ok(())
}

/// Every pointer is 0 (a hole) or below `block_count`.
pub fn validate_block_pointers(ptrs: &[u32], block_count: u64) -> Result<()> {
    match ptrs
        .iter()
        .position(|&v| v != 0 && u64::from(v) >= block_count)
    {
        Some(i) => Err(FormatError::corrupt(
            "block map",
            format!(
                "pointer {i} to block {} outside the file system ({block_count} blocks)",
                ptrs[i]
            ),
        )),
        None => Ok(()),
    }
}

/// How many indirect blocks must be allocated when logical block `next` is
/// mapped right after `prev` (the previous mapped block of the same file, in
/// increasing order; `None` for the first). That is the number of indirect
/// blocks on `next`'s path that `prev`'s path does not already have: 0 for a
/// direct block or inside the same indirect block, up to 3 when entering the
/// triple-indirect range. Writing them just before the data block (top level
/// first) gives ext2's layout.
pub fn new_indirect_blocks(
    block_size: usize,
    prev: Option<LogicalBlock>,
    next: LogicalBlock,
) -> Result<u32> {
    let path = block_path(block_size, next)?;
    let shared = match prev {
        None => 0,
        Some(prev) if prev >= next => {
            return Err(FormatError::corrupt(
                "block map",
                format!("{next} does not follow {prev}"),
            ))
        }
        Some(prev) => block_path(block_size, prev)?.shared_with(&path),
    };
    u32::try_from(path.levels - shared).map_err(|_| FormatError::corrupt("block map", "path depth"))
}

/// Indirect blocks needed by a file whose logical blocks `0..n_blocks` are
/// all mapped (no holes).
pub fn indirect_blocks_for_len(block_size: usize, n_blocks: u64) -> Result<u64> {
    check_block_size(block_size)?;
    if n_blocks > max_file_blocks(block_size) {
        return Err(FormatError::unsupported(
            "block map",
            format!("{n_blocks} blocks exceed the block-map limit"),
        ));
    }
    let p = u64::from(ptrs_per_block(block_size));
    let mut rest = n_blocks.saturating_sub(12);
    let mut total = 0;
    if rest > 0 {
        total += 1;
        rest = rest.saturating_sub(p);
    }
    if rest > 0 {
        let here = rest.min(p * p);
        total += 1 + here.div_ceil(p);
        rest -= here;
    }
    if rest > 0 {
        total += 1 + rest.div_ceil(p * p) + rest.div_ceil(p);
    }
    Ok(total)
}

/// A block map made by [`build_block_map`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltBlockMap {
    /// The 15 `i_block` pointers.
    pub i_block: [u32; N_SLOTS],
    /// Indirect blocks with their contents, in allocation order.
    pub blocks: Vec<(PhysBlock, Vec<u8>)>,
}

impl BuiltBlockMap {
    /// `i_block` as the 60 bytes stored in the inode.
    pub fn i_block_bytes(&self) -> [u8; I_BLOCK_LEN] {
        let mut out = [0u8; I_BLOCK_LEN];
        for (i, &v) in self.i_block.iter().enumerate() {
            put_u32(&mut out, i * 4, v);
        }
        out
    }

    /// Number of indirect blocks (they count in `i_blocks`).
    pub fn meta_blocks(&self) -> u64 {
        u64::try_from(self.blocks.len()).unwrap_or(u64::MAX)
    }
}

fn to_ptr(block: PhysBlock, what: &'static str) -> Result<u32> {
    match u32::try_from(block.0) {
        Ok(v) if v != 0 => Ok(v),
        _ => Err(FormatError::corrupt(
            what,
            format!("{block} cannot be stored in a block map"),
        )),
    }
}

/// Builds the block map of a file from its data mappings, given in strictly
/// increasing logical order (holes allowed; physical blocks in 1..2^32).
///
/// `alloc(l)` is called for each indirect block when the first data block
/// `l` under it is placed, top level first; the calls for `l` come in the
/// order and number given by [`new_indirect_blocks`]`(prev, l)`, so a caller
/// can reserve indirect blocks inline while laying out data and hand them
/// back here. Physical pointers are not checked against the file-system
/// size: the caller owns them.
pub fn build_block_map<I, E, F>(
    block_size: usize,
    data: I,
    mut alloc: F,
) -> std::result::Result<BuiltBlockMap, E>
where
    I: IntoIterator<Item = (LogicalBlock, PhysBlock)>,
    F: FnMut(LogicalBlock) -> std::result::Result<PhysBlock, E>,
    E: From<FormatError>,
{
    check_block_size(block_size)?;
    let p = usize::try_from(ptrs_per_block(block_size)).unwrap_or(0);
    let mut i_block = [0u32; N_SLOTS];
    let mut nodes: Vec<(PhysBlock, Vec<u32>)> = Vec::new();
    // nodes[open[k]] is the indirect block at level k of the previous path.
    let mut open = [0usize; 3];
    let mut prev: Option<(LogicalBlock, BlockPath)> = None;

    for (lblk, phys) in data {
        let ptr = to_ptr(phys, "block map data")?;
        let path = block_path(block_size, lblk)?;
        let shared = match &prev {
            None => 0,
            Some((pl, _)) if *pl >= lblk => {
                return Err(FormatError::corrupt(
                    "block map builder",
                    format!("{lblk} does not follow {pl}"),
                )
                .into())
            }
            Some((_, pp)) => pp.shared_with(&path),
        };
        for level in shared..path.levels {
            let node = alloc(lblk)?;
            let node_ptr = to_ptr(node, "block map indirect block")?;
            if level == 0 {
                i_block[path.slot] = node_ptr;
            } else {
                let parent = &mut nodes[open[level - 1]].1;
                parent[usize::try_from(path.offsets[level - 1]).unwrap_or(0)] = node_ptr;
            }
            open[level] = nodes.len();
            nodes.push((node, vec![0u32; p]));
        }
        if path.levels == 0 {
            i_block[path.slot] = ptr;
        } else {
            let last = path.levels - 1;
            nodes[open[last]].1[usize::try_from(path.offsets[last]).unwrap_or(0)] = ptr;
        }
        prev = Some((lblk, path));
    }

    let mut blocks = Vec::with_capacity(nodes.len());
    for (phys, ptrs) in nodes {
        let mut buf = vec![0u8; block_size];
        encode_indirect_block(&ptrs, &mut buf)?;
        blocks.push((phys, buf));
    }
    Ok(BuiltBlockMap { i_block, blocks })
}

/// Everything a block map maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMapWalk {
    /// Data blocks in logical order (holes omitted).
    pub data: Vec<(LogicalBlock, PhysBlock)>,
    /// Indirect blocks in depth-first pre-order (each before what it maps).
    pub meta: Vec<PhysBlock>,
}

struct Frame {
    ptrs: Vec<u32>,
    /// Blocks covered by one entry of this node.
    span: u64,
    /// First logical block of this node.
    base: u64,
    next: usize,
}

fn read_indirect<E, F>(
    block: u32,
    block_size: usize,
    block_count: u64,
    seen: &mut HashSet<u32>,
    buf: &mut [u8],
    read_block: &mut F,
) -> std::result::Result<Vec<u32>, E>
where
    F: FnMut(PhysBlock, &mut [u8]) -> std::result::Result<(), E>,
    E: From<FormatError>,
{
    validate_block_pointers(&[block], block_count)?;
    if !seen.insert(block) {
        return Err(FormatError::corrupt(
            "block map",
            format!("indirect block {block} referenced twice"),
        )
        .into());
    }
    debug_assert_eq!(buf.len(), block_size);
    read_block(PhysBlock(u64::from(block)), buf)?;
    let ptrs = parse_indirect_block(buf)?;
    validate_block_pointers(&ptrs, block_count)?;
    Ok(ptrs)
}

fn logical(l: u64) -> Result<LogicalBlock> {
    u32::try_from(l)
        .map(LogicalBlock)
        .map_err(|_| FormatError::corrupt("block map", format!("data at logical block {l}")))
}

/// Walks a whole block map without recursion, reading indirect blocks with
/// `read_block(block, buf)` (which fills `buf`, `block_size` bytes). Every
/// pointer is checked against `block_count`; an indirect block referenced
/// twice is an error.
pub fn walk_block_map<E, F>(
    i_block: &[u32; N_SLOTS],
    block_size: usize,
    block_count: u64,
    mut read_block: F,
) -> std::result::Result<BlockMapWalk, E>
where
    F: FnMut(PhysBlock, &mut [u8]) -> std::result::Result<(), E>,
    E: From<FormatError>,
{
    check_block_size(block_size)?;
    validate_block_pointers(i_block, block_count)?;
    let p = u64::from(ptrs_per_block(block_size));
    let mut walk = BlockMapWalk {
        data: Vec::new(),
        meta: Vec::new(),
    };
    for (l, &ptr) in (0u32..).zip(&i_block[..N_DIRECT]) {
        if ptr != 0 {
            walk.data.push((LogicalBlock(l), PhysBlock(u64::from(ptr))));
        }
    }
    let mut seen = HashSet::new();
    let mut buf = vec![0u8; block_size];
    for (slot, span) in [(IND_SLOT, 1), (DIND_SLOT, p), (TIND_SLOT, p * p)] {
        let top = i_block[slot];
        if top == 0 {
            continue;
        }
        let ptrs = read_indirect(
            top,
            block_size,
            block_count,
            &mut seen,
            &mut buf,
            &mut read_block,
        )?;
        walk.meta.push(PhysBlock(u64::from(top)));
        let mut stack = vec![Frame {
            ptrs,
            span,
            base: slot_base(p, slot),
            next: 0,
        }];
        while let Some(frame) = stack.last_mut() {
            let Some(&ptr) = frame.ptrs.get(frame.next) else {
                stack.pop();
                continue;
            };
            let index = u64::try_from(frame.next).unwrap_or(u64::MAX);
            frame.next += 1;
            if ptr == 0 {
                continue;
            }
            let start = frame.base + index * frame.span;
            if frame.span == 1 {
                walk.data.push((logical(start)?, PhysBlock(u64::from(ptr))));
                continue;
            }
            let span = frame.span / p;
            let ptrs = read_indirect(
                ptr,
                block_size,
                block_count,
                &mut seen,
                &mut buf,
                &mut read_block,
            )?;
            walk.meta.push(PhysBlock(u64::from(ptr)));
            stack.push(Frame {
                ptrs,
                span,
                base: start,
                next: 0,
            });
        }
    }
    Ok(walk)
}

/// Looks up one logical block: its physical block, or `None` for a hole.
/// Reads at most three indirect blocks.
pub fn lookup_block<E, F>(
    i_block: &[u32; N_SLOTS],
    block_size: usize,
    block_count: u64,
    lblk: LogicalBlock,
    mut read_block: F,
) -> std::result::Result<Option<PhysBlock>, E>
where
    F: FnMut(PhysBlock, &mut [u8]) -> std::result::Result<(), E>,
    E: From<FormatError>,
{
    let path = block_path(block_size, lblk)?;
    let mut ptr = i_block[path.slot];
    let mut buf = vec![0u8; block_size];
    for &index in path.indexes() {
        if ptr == 0 {
            return Ok(None);
        }
        validate_block_pointers(&[ptr], block_count)?;
        read_block(PhysBlock(u64::from(ptr)), &mut buf)?;
        let off = usize::try_from(index)
            .unwrap_or(usize::MAX)
            .saturating_mul(4);
        ptr = super::bytes::get_u32(&buf, off)
            .ok_or_else(|| FormatError::corrupt("block map", "index past the block"))?;
    }
    validate_block_pointers(&[ptr], block_count)?;
    Ok((ptr != 0).then(|| PhysBlock(u64::from(ptr))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn geometry_of_1k_and_4k_blocks() {
        assert_eq!(ptrs_per_block(1024), 256);
        assert_eq!(max_file_blocks(1024), 12 + 256 + 65536 + 16_777_216);
        assert_eq!(max_file_blocks(4096), 12 + 1024 + 1_048_576 + 1_073_741_824);
        assert_eq!(max_file_blocks(65536), 1 << 32);

        let path = |l| block_path(1024, LogicalBlock(l)).unwrap();
        assert_eq!((path(11).slot, path(11).indexes()), (11, &[][..]));
        assert_eq!((path(12).slot, path(12).indexes()), (12, &[0][..]));
        assert_eq!((path(267).slot, path(267).indexes()), (12, &[255][..]));
        assert_eq!((path(268).slot, path(268).indexes()), (13, &[0, 0][..]));
        assert_eq!(
            (path(268 + 257).slot, path(268 + 257).indexes()),
            (13, &[1, 1][..])
        );
        let t = 12 + 256 + 65536;
        assert_eq!((path(t).slot, path(t).indexes()), (14, &[0, 0, 0][..]));
        assert_eq!(path(t + 65536 + 256 + 1).indexes(), &[1, 1, 1][..]);
        let last = u32::try_from(max_file_blocks(1024) - 1).unwrap();
        assert_eq!(path(last).indexes(), &[255, 255, 255][..]);
        assert!(block_path(1024, LogicalBlock(last + 1)).is_err());
        assert!(block_path(1000, LogicalBlock(0)).is_err());
        // 64 KiB: the triple range passes 2^32; the last logical block fits.
        assert_eq!(block_path(65536, LogicalBlock(u32::MAX)).unwrap().slot, 14);
    }

    #[test]
    fn indirect_blocks_round_trip_and_validate() {
        let mut blk = vec![0xffu8; 1024];
        encode_indirect_block(&[5, 0, 7], &mut blk).unwrap();
        let ptrs = parse_indirect_block(&blk).unwrap();
        assert_eq!(ptrs.len(), 256);
        assert_eq!(&ptrs[..4], &[5, 0, 7, 0]);
        assert!(ptrs[3..].iter().all(|&v| v == 0));
        assert!(validate_block_pointers(&ptrs, 8).is_ok());
        assert!(validate_block_pointers(&ptrs, 7).is_err());
        assert!(encode_indirect_block(&[1; 257], &mut blk).is_err());

        let mut ib = [0u8; 60];
        let words: [u32; 15] = core::array::from_fn(|i| i as u32 * 3);
        encode_i_block(&words, &mut ib).unwrap();
        assert_eq!(parse_i_block(&ib).unwrap(), words);
        assert!(parse_i_block(&ib[..56]).is_err());
    }

    #[test]
    fn new_indirect_block_counts() {
        let n = |prev: Option<u32>, next: u32| {
            new_indirect_blocks(1024, prev.map(LogicalBlock), LogicalBlock(next)).unwrap()
        };
        assert_eq!(n(None, 0), 0);
        assert_eq!(n(Some(11), 12), 1);
        assert_eq!(n(Some(12), 13), 0);
        assert_eq!(n(Some(267), 268), 2);
        assert_eq!(n(Some(268), 268 + 256), 1);
        assert_eq!(n(None, 268 + 256), 2);
        assert_eq!(n(Some(65803), 65804), 3);
        assert_eq!(n(Some(65804), 65804 + 256), 1);
        assert_eq!(n(Some(65804), 65804 + 65536), 2);
        assert_eq!(n(None, 65804), 3);
        assert!(new_indirect_blocks(1024, Some(LogicalBlock(5)), LogicalBlock(5)).is_err());
    }

    #[test]
    fn dense_counts_agree_with_the_builder() {
        for n in [
            0u64,
            12,
            13,
            268,
            269,
            268 + 256,
            268 + 257,
            65804,
            65805,
            70000,
            140_000,
        ] {
            let built = build_block_map::<_, FormatError, _>(
                1024,
                (0..n).map(|l| (LogicalBlock(l as u32), PhysBlock(1_000_000 + l))),
                {
                    let mut next = 10u64;
                    move |_| {
                        next += 1;
                        Ok(PhysBlock(next))
                    }
                },
            )
            .unwrap();
            assert_eq!(
                built.meta_blocks(),
                indirect_blocks_for_len(1024, n).unwrap(),
                "n={n}"
            );
        }
        assert_eq!(
            indirect_blocks_for_len(1024, 65804 + 1).unwrap(),
            1 + 1 + 256 + 1 + 1 + 1
        );
    }

    fn walk_built(built: &BuiltBlockMap, bs: usize) -> BlockMapWalk {
        let map: HashMap<_, _> = built.blocks.iter().cloned().collect();
        walk_block_map::<FormatError, _>(&built.i_block, bs, 1 << 32, |b, buf| {
            buf.copy_from_slice(&map[&b]);
            Ok(())
        })
        .unwrap()
    }

    #[test]
    fn sparse_map_round_trips_through_the_walker() {
        let bs = 1024;
        let logicals = [
            0u32, 5, 12, 100, 267, 268, 300, 20_000, 65_803, 65_804, 70_000, 16_843_019,
        ];
        let data: Vec<_> = logicals
            .iter()
            .map(|&l| (LogicalBlock(l), PhysBlock(u64::from(l) + 7)))
            .collect();
        let mut calls = Vec::new();
        let mut next = 1u64 << 31;
        let built = build_block_map::<_, FormatError, _>(bs, data.iter().copied(), |l| {
            calls.push(l.0);
            next += 1;
            Ok(PhysBlock(next))
        })
        .unwrap();
        // alloc is called as new_indirect_blocks says.
        let mut expected = Vec::new();
        let mut prev = None;
        for &(l, _) in &data {
            let k = new_indirect_blocks(bs, prev, l).unwrap();
            for _ in 0..k {
                expected.push(l.0);
            }
            prev = Some(l);
        }
        assert_eq!(calls, expected);
        let walk = walk_built(&built, bs);
        assert_eq!(walk.data, data);
        // Allocation order is the pre-order of the tree.
        let order: Vec<_> = built.blocks.iter().map(|(b, _)| *b).collect();
        assert_eq!(walk.meta, order);

        let map: HashMap<_, _> = built.blocks.iter().cloned().collect();
        for l in [
            0u32, 1, 12, 13, 20_000, 20_001, 70_000, 16_843_019, 16_843_018,
        ] {
            let got = lookup_block::<FormatError, _>(
                &built.i_block,
                bs,
                1 << 32,
                LogicalBlock(l),
                |b, buf| {
                    buf.copy_from_slice(&map[&b]);
                    Ok(())
                },
            )
            .unwrap();
            let want = data.iter().find(|(x, _)| x.0 == l).map(|(_, p)| *p);
            assert_eq!(got, want, "lblk {l}");
        }
    }

    #[test]
    fn builder_and_walker_reject_bad_input() {
        let bad_order = [
            (LogicalBlock(5), PhysBlock(9)),
            (LogicalBlock(5), PhysBlock(10)),
        ];
        assert!(
            build_block_map::<_, FormatError, _>(1024, bad_order, |_| Ok(PhysBlock(3))).is_err()
        );
        let too_big = [(LogicalBlock(0), PhysBlock(1 << 32))];
        assert!(build_block_map::<_, FormatError, _>(1024, too_big, |_| Ok(PhysBlock(3))).is_err());
        let zero_meta = [(LogicalBlock(20), PhysBlock(9))];
        assert!(
            build_block_map::<_, FormatError, _>(1024, zero_meta, |_| Ok(PhysBlock(0))).is_err()
        );

        // An indirect block that points at itself as a double-indirect child.
        let mut ib = [0u32; 15];
        ib[DIND_SLOT] = 50;
        let mut blk = vec![0u8; 1024];
        encode_indirect_block(&[50], &mut blk).unwrap();
        let r = walk_block_map::<FormatError, _>(&ib, 1024, 100, |_, buf| {
            buf.copy_from_slice(&blk);
            Ok(())
        });
        assert!(r.is_err());
        // A pointer past the end of the file system.
        ib[DIND_SLOT] = 0;
        ib[3] = 100;
        let r = walk_block_map::<FormatError, _>(&ib, 1024, 100, |_, _| Ok(()));
        assert!(r.is_err());
    }
}
