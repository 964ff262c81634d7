//! Regression tests of the file-system core, driven directly, for bugs
//! the end-to-end daemon tests found (each test names its behaviour).

mod common;

use common::*;
use fext::fs::{Caller, Fs, MountOptions};

const ROOT: u32 = 2;

/// The VFS xattr form of `user::rw- user:1234:r-- group::r-- mask::r-- other::r--`.
const ACL: [u8; 44] = [
    2, 0, 0, 0, // version
    1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, // USER_OBJ rw-
    2, 0, 4, 0, 0xd2, 4, 0, 0, // USER 1234 r--
    4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, // GROUP_OBJ r--
    0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, // MASK r--
    0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, // OTHER r--
];

#[test]
fn posix_acls_round_trip() {
    let dir = TempDir::new("acl");
    let img = dir.join("img");
    make_fext_image(&img, 32 << 20, "ext4", Some(4096), "");
    {
        let fs = Fs::mount(&img, MountOptions::default()).unwrap();
        let f = fs.create(ROOT, b"file", 0o100644, 0, Caller::ROOT).unwrap();
        let d = fs.create(ROOT, b"dir", 0o040755, 0, Caller::ROOT).unwrap();
        fs.setxattr(f.ino, b"system.posix_acl_access", &ACL, 0)
            .unwrap();
        fs.setxattr(d.ino, b"system.posix_acl_default", &ACL, 0)
            .unwrap();
        assert_eq!(fs.getxattr(f.ino, b"system.posix_acl_access").unwrap(), ACL);
        assert_eq!(
            fs.getxattr(d.ino, b"system.posix_acl_default").unwrap(),
            ACL
        );
        // An empty name is still refused outside the ACL names.
        assert!(fs.setxattr(f.ino, b"user.", b"v", 0).is_err());
        fs.unmount().unwrap();
    }
    assert_e2fsck_clean(&img);
    if require_kernel_mount() {
        let m = KernelMount::new(&img, false);
        let out = Cmd::new("getfacl")
            .args(["-n", "--omit-header"])
            .arg(m.path().join("file"))
            .run_ok();
        assert!(out.stdout.contains("user:1234:r--"), "{out}");
        let out = Cmd::new("getfacl")
            .args(["-n", "--omit-header", "-d"])
            .arg(m.path().join("dir"))
            .run_ok();
        assert!(out.stdout.contains("user:1234:r--"), "{out}");
    }
}

/// A value larger than a block fails with ENOSPC, as on ext4 without
/// ea_inode (not E2BIG, which the VFS reserves for values over 64 KiB).
#[test]
fn xattr_larger_than_a_block_is_enospc() {
    let dir = TempDir::new("xattr-big");
    let img = dir.join("img");
    make_fext_image(&img, 32 << 20, "ext4", Some(1024), "");
    let fs = Fs::mount(&img, MountOptions::default()).unwrap();
    let f = fs.create(ROOT, b"file", 0o100644, 0, Caller::ROOT).unwrap();
    let err = fs
        .setxattr(f.ino, b"user.huge", &vec![1u8; 2048], 0)
        .unwrap_err();
    assert_eq!(err.errno, libc::ENOSPC);
    fs.unmount().unwrap();
    assert_e2fsck_clean(&img);
}

/// Looking up a name longer than 255 bytes is ENAMETOOLONG (as ext4 and
/// the kernel's VFS report it when a symlink leads there), not ENOENT.
#[test]
fn lookup_of_an_overlong_name_is_enametoolong() {
    let dir = TempDir::new("longname");
    let img = dir.join("img");
    make_fext_image(&img, 32 << 20, "ext4", Some(1024), "");
    let fs = Fs::mount(&img, MountOptions::default()).unwrap();
    let err = fs.lookup(ROOT, &[b'x'; 256]).unwrap_err();
    assert_eq!(err.errno, libc::ENAMETOOLONG);
    assert_eq!(
        fs.lookup(ROOT, &[b'x'; 255]).unwrap_err().errno,
        libc::ENOENT
    );
    fs.unmount().unwrap();
}
