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

/// The VFS xattr form of an ACL: `(tag, perm, id)` entries.
fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

const NO_ID: u32 = u32::MAX;

/// ext4 keeps mode and access ACL in step: setting an ACL sets the
/// permission bits (group bits from the mask), an ACL equal to the mode
/// is not stored, and chmod rewrites the ACL's owner/mask/other entries.
/// (`cp -a` relies on the first two: it creates files 0600 and sets the
/// final permissions by setting an ACL.)
#[test]
fn access_acl_and_mode_stay_in_step() {
    use fext::fs::ops_attr::SetAttr;
    let dir = TempDir::new("acl-mode");
    let img = dir.join("img");
    make_fext_image(&img, 32 << 20, "ext4", Some(4096), "");
    {
        let fs = Fs::mount(&img, MountOptions::default()).unwrap();
        let f = fs.create(ROOT, b"file", 0o100644, 0, Caller::ROOT).unwrap();
        let name = b"system.posix_acl_access";
        // u::rw- u:1234:rw- g::r-- m::rw- o::r--  ->  mode 0664, stored.
        let full = acl(&[
            (0x01, 6, NO_ID),
            (0x02, 6, 1234),
            (0x04, 4, NO_ID),
            (0x10, 6, NO_ID),
            (0x20, 4, NO_ID),
        ]);
        fs.setxattr(f.ino, name, &full, 0).unwrap();
        assert_eq!(fs.getattr(f.ino).unwrap().mode & 0o7777, 0o664);
        assert_eq!(fs.getxattr(f.ino, name).unwrap(), full);
        // chmod 0600: owner rw-, mask ---, other ---; named entry kept.
        let ch = SetAttr {
            mode: Some(0o600),
            ..SetAttr::default()
        };
        fs.setattr(f.ino, &ch).unwrap();
        assert_eq!(
            fs.getxattr(f.ino, name).unwrap(),
            acl(&[
                (0x01, 6, NO_ID),
                (0x02, 6, 1234),
                (0x04, 4, NO_ID),
                (0x10, 0, NO_ID),
                (0x20, 0, NO_ID),
            ])
        );
        // An ACL equal to a mode: the mode changes, nothing is stored.
        let plain = acl(&[(0x01, 7, NO_ID), (0x04, 4, NO_ID), (0x20, 0, NO_ID)]);
        fs.setxattr(f.ino, name, &plain, 0).unwrap();
        assert_eq!(fs.getattr(f.ino).unwrap().mode & 0o7777, 0o740);
        assert_eq!(fs.getxattr(f.ino, name).unwrap_err().errno, libc::ENODATA);
        fs.unmount().unwrap();
    }
    assert_e2fsck_clean(&img);
}

/// Inheritance in the core (no mount): a directory's default ACL masks a
/// new inode's create mode instead of the caller's umask and becomes its
/// access ACL; directories also inherit the default ACL; without one the
/// umask applies. The image stays clean for e2fsck.
#[test]
fn new_inodes_inherit_the_default_acl() {
    let dir = TempDir::new("acl-inherit");
    let img = dir.join("img");
    make_fext_image(&img, 32 << 20, "ext4", Some(4096), "");
    {
        let fs = Fs::mount(&img, MountOptions::default()).unwrap();
        let caller = Caller {
            umask: 0o077,
            ..Caller::ROOT
        };
        let d = fs.create(ROOT, b"d", 0o040755, 0, caller).unwrap();
        assert_eq!(d.mode & 0o7777, 0o700, "no default ACL: the umask applies");
        // default: u::rwx u:1234:r-x g::rwx m::rwx o::---
        let default = acl(&[
            (0x01, 7, NO_ID),
            (0x02, 5, 1234),
            (0x04, 7, NO_ID),
            (0x10, 7, NO_ID),
            (0x20, 0, NO_ID),
        ]);
        let def_name = b"system.posix_acl_default";
        let acc_name = b"system.posix_acl_access";
        fs.setxattr(d.ino, def_name, &default, 0).unwrap();
        let f = fs.create(d.ino, b"f", 0o100666, 0, caller).unwrap();
        assert_eq!(f.mode & 0o7777, 0o660, "masked by the ACL, not the umask");
        assert_eq!(
            fs.getxattr(f.ino, acc_name).unwrap(),
            acl(&[
                (0x01, 6, NO_ID),
                (0x02, 5, 1234),
                (0x04, 7, NO_ID),
                (0x10, 6, NO_ID),
                (0x20, 0, NO_ID),
            ])
        );
        assert_eq!(
            fs.getxattr(f.ino, def_name).unwrap_err().errno,
            libc::ENODATA
        );
        let sub = fs.create(d.ino, b"sub", 0o040750, 0, caller).unwrap();
        assert_eq!(sub.mode & 0o7777, 0o750);
        assert_eq!(fs.getxattr(sub.ino, def_name).unwrap(), default);
        let l = fs.symlink(d.ino, b"l", b"f", caller).unwrap();
        assert_eq!(l.mode & 0o7777, 0o777, "symlinks take no ACL");
        fs.unmount().unwrap();
    }
    assert_e2fsck_clean(&img);
}

/// Setting an xattr on a file whose block map is not loaded (the inode
/// was evicted after a write-back and reloaded for the xattr alone) must
/// keep the data blocks in i_blocks. It used to count only the xattr
/// block: e2fsck then reported "i_blocks is 8, should be N" (found by the
/// randomized differential test, depending on eviction timing).
#[test]
fn xattr_on_an_evicted_file_keeps_i_blocks() {
    let dir = TempDir::new("xattr-iblocks");
    let img = dir.join("img");
    make_fext_image(&img, 32 << 20, "ext4", Some(4096), "");
    {
        let fs = Fs::mount(&img, MountOptions::default()).unwrap();
        let f = fs.create(ROOT, b"file", 0o100644, 0, Caller::ROOT).unwrap();
        fs.open(f.ino, true).unwrap();
        fs.write(f.ino, 0, &vec![5u8; 100_000]).unwrap();
        fs.release(f.ino, true).unwrap();
        fs.forget(f.ino, 1);
        fs.sync().unwrap();
        // Reloaded without its map: only the xattr changes.
        fs.setxattr(f.ino, b"user.big", &[1u8; 3000], 0).unwrap();
        fs.sync().unwrap();
        fs.forget(f.ino, 0);
        fs.setxattr(f.ino, b"user.big", &[2u8; 10], 0).unwrap();
        fs.unmount().unwrap();
    }
    assert_e2fsck_clean(&img);
}

/// The kernel sends FORGET for an unlinked inode asynchronously, so a
/// statfs can overtake it: the counts must already say "free" for an
/// unlinked inode nobody has open, and must not move when the FORGET
/// lands or at write-back; after unmount dumpe2fs agrees.
#[test]
fn statfs_does_not_move_when_the_forget_of_an_unlinked_file_lands() {
    let dir = TempDir::new("forget");
    let img = dir.join("img");
    make_fext_image(&img, 32 << 20, "ext4", Some(4096), "");
    let fs = Fs::mount(&img, MountOptions::default()).unwrap();
    let f = fs.create(ROOT, b"f", 0o100644, 0, Caller::ROOT).unwrap();
    fs.write(f.ino, 0, &vec![7u8; 3 << 20]).unwrap();
    fs.sync().unwrap();
    let before_unlink = fs.statfs();
    fs.unlink(ROOT, b"f").unwrap();
    // Still looked up by the kernel (create counted one lookup).
    let unlinked = fs.statfs();
    assert!(
        unlinked.bfree >= before_unlink.bfree + 768 && unlinked.ffree == before_unlink.ffree + 1,
        "unlinked file counted free: {before_unlink:?} -> {unlinked:?}"
    );
    fs.sync().unwrap();
    assert_eq!(fs.statfs(), unlinked, "write-back moved statfs");
    fs.forget(f.ino, 1);
    assert_eq!(fs.statfs(), unlinked, "the FORGET moved statfs");
    fs.sync().unwrap();
    assert_eq!(
        fs.statfs(),
        unlinked,
        "write-back after FORGET moved statfs"
    );
    fs.unmount().unwrap();
    drop(fs);
    let d = dumpe2fs_h(&img);
    assert_eq!(d.num("Free blocks"), unlinked.bfree);
    assert_eq!(d.num("Free inodes"), unlinked.ffree);
    assert_e2fsck_clean(&img);
}
