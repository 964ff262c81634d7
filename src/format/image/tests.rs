//! Unit tests of the image view on hand-made and mke2fs-made images.

use super::*;

#[test]
fn refuses_buffers_without_a_file_system() {
    assert!(ImageView::open(&[]).is_err());
    assert!(ImageView::open(&[0u8; 4096]).is_err());
}
