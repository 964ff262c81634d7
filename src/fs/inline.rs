//! Inline data (feature inline_data, inode flag INLINE_DATA): small files,
//! directories and symlinks whose content lives in the inode itself, in
//! `i_block` (60 bytes) continued in the `system.data` extended attribute.
//!
//! Inline content is read in place. The first change to an inline inode
//! converts it to the ordinary block-mapped form (the kernel does the same
//! once the content outgrows the inode): the bytes move to a data block,
//! `system.data` is removed and the flag cleared.
//!
//! Directory layout inline: `i_block[0..4]` is the parent's inode number,
//! then directory records fill the rest of `i_block` and the whole
//! `system.data` value (no "." or ".." records).

use super::dirstate::DirState;
use super::error::{FsError, FsResult};
use super::State;
use crate::format::bytes::u32_at;
use crate::format::dir::{live_entries, FileType};
use crate::format::inode::flags;
use crate::format::xattr::{index, parse_ibody};

/// Name of the attribute that continues inline data.
const SYSTEM_DATA: &[u8] = b"data";

impl State<'_> {
    /// Whether `ino` keeps its content inline.
    pub fn is_inline(&mut self, ino: u32) -> FsResult<bool> {
        Ok(self.get(ino)?.inode.has_flag(flags::INLINE_DATA))
    }

    /// i_block followed by the `system.data` value.
    fn inline_bytes(&mut self, ino: u32) -> FsResult<Vec<u8>> {
        let st = self.get(ino)?;
        let mut out = st.inode.block.to_vec();
        let entries = parse_ibody(&st.tail, false)
            .map_err(|e| FsError::corrupt(format!("inode {ino}: {e}")))?;
        if let Some(e) = entries
            .iter()
            .find(|e| e.index == index::SYSTEM && e.name == SYSTEM_DATA)
        {
            out.extend_from_slice(&e.value);
        }
        Ok(out)
    }

    /// The content of an inline file or symlink.
    pub fn inline_file_data(&mut self, ino: u32) -> FsResult<Vec<u8>> {
        let size = self.get(ino)?.inode.size;
        let mut data = self.inline_bytes(ino)?;
        let size = usize::try_from(size).map_err(|_| FsError::corrupt("inline size"))?;
        if size > data.len() {
            return Err(FsError::corrupt(format!(
                "inode {ino}: inline size {size} exceeds the {} bytes stored",
                data.len()
            )));
        }
        data.truncate(size);
        Ok(data)
    }

    /// Reads an inline directory's entries.
    pub fn load_inline_dir(&mut self, ino: u32) -> FsResult<DirState> {
        let bytes = self.inline_bytes(ino)?;
        let parent = u32_at(&bytes, 0);
        let mut dir = DirState::new(parent);
        let mut regions = vec![&bytes[4..60]];
        if bytes.len() > 60 {
            regions.push(&bytes[60..]);
        }
        for region in regions {
            if region.len() < 12 {
                continue;
            }
            for e in live_entries(region, false) {
                let e = e.map_err(|e| FsError::corrupt(format!("inline directory {ino}: {e}")))?;
                dir.push_loaded_entry(e.name, e.inode, e.file_type().unwrap_or(FileType::Unknown));
            }
        }
        Ok(dir)
    }

    /// Turns an inline inode into a block-mapped one with the same content.
    pub fn convert_inline(&mut self, ino: u32) -> FsResult<()> {
        if self.vol.read_only {
            return Err(FsError::rofs());
        }
        let is_dir = self.get(ino)?.inode.is_dir();
        let dir = if is_dir {
            Some(self.load_inline_dir(ino)?)
        } else {
            None
        };
        let data = if is_dir {
            Vec::new()
        } else {
            self.inline_file_data(ino)?
        };
        // Drop system.data from the xattrs; the rest stay.
        self.remove_system_data(ino)?;
        let map = self.new_map();
        let extents = map.kind == super::filemap::MapKind::Extents;
        let st = self.get(ino)?;
        st.inode.flags &= !flags::INLINE_DATA;
        st.inode.block = [0; 60];
        if extents {
            st.inode.flags |= flags::EXTENTS;
        }
        st.map = Some(map);
        st.dirty = true;
        if let Some(mut d) = dir {
            d.dirty = true;
            st.dir = Some(d);
            self.note_changed(ino)?;
        } else {
            st.inode.size = 0;
            if !data.is_empty() {
                self.write_data(ino, 0, &data)?;
            }
        }
        Ok(())
    }
}
