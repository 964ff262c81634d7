//! POSIX ACL inheritance: what a new inode gets from its directory's
//! default ACL, as ext4 does it (the kernel's `posix_acl_create`, called by
//! `ext4_init_acl`). Pure functions over [`AclEntry`] lists; the create
//! path (`State::create_node`) calls [`inherit`] and stores the result.
//!
//! Who does what on a fext mount (the adapter requests `FUSE_POSIX_ACL`
//! and `FUSE_DONT_MASK` at init; the daemon always mounts with
//! `default_permissions`, which `FUSE_POSIX_ACL` would turn on anyway):
//! - the kernel enforces ACLs: `generic_permission` reads the access ACL
//!   through GETXATTR and caches it, exactly the code and capability rules
//!   (CAP_DAC_OVERRIDE, supplementary groups, the mask) it runs for ext4.
//!   Checking in the daemon instead could not match: FUSE tells the daemon
//!   the caller's uid and gid but not its supplementary groups or
//!   capabilities, and with `default_permissions` the kernel sends no
//!   ACCESS request at all;
//! - the kernel validates ACLs and checks ownership before SETXATTR, and
//!   after setting an ACL or a mode it forgets its cached ACL and (for
//!   setxattr) the cached attributes, so `stat` shows the mode an ACL set
//!   at once (without `FUSE_POSIX_ACL` it kept the old mode until the
//!   attribute timeout);
//! - the daemon keeps mode and access ACL in step (`ops_xattr`: setting an
//!   ACL sets the mode, an ACL equal to the mode is not stored, chmod
//!   rewrites the ACL) and does inheritance here. With `FUSE_DONT_MASK`
//!   the kernel sends the create mode unmasked plus the caller's umask:
//!   the umask applies only when the directory has no default ACL.
//!
//! With `allow_other` other users reach the mount and the kernel applies
//! the ACLs to them; without it only the mounting user (root) can, so ACL
//! entries never matter for access, but inheritance and mode sync do.

use crate::format::inode::{S_IFDIR, S_IFLNK, S_IFMT};
use crate::format::xattr::{acl_tag, AclEntry};

/// The permission bits of a mode (`S_IRWXUGO`).
const RWX_ALL: u16 = 0o777;

/// What a new inode gets from its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inherited {
    /// The create mode after the default ACL (or the umask) masked it;
    /// type and setuid/setgid/sticky bits untouched.
    pub mode: u16,
    /// The access ACL to store (`None`: the mode says it all).
    pub access: Option<Vec<AclEntry>>,
    /// The default ACL to store (directories inherit the parent's).
    pub default: Option<Vec<AclEntry>>,
}

/// A default ACL without the entries every ACL must have (owner, group
/// or mask, other): on disk that is corruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedAcl;

/// The mode, access ACL and default ACL of an inode created with `mode`
/// (type included) by a caller with `umask`, in a directory whose default
/// ACL is `parent_default` (`None` or empty: it has none).
pub fn inherit(
    mode: u16,
    umask: u16,
    parent_default: Option<&[AclEntry]>,
) -> Result<Inherited, MalformedAcl> {
    let plain = |mode| Inherited {
        mode,
        access: None,
        default: None,
    };
    if mode & S_IFMT == S_IFLNK {
        return Ok(plain(mode));
    }
    let Some(default) = parent_default.filter(|d| !d.is_empty()) else {
        return Ok(plain(mode & !(umask & RWX_ALL)));
    };
    let mut access = default.to_vec();
    let (masked, extended) = mask_by_acl(&mut access, mode & RWX_ALL)?;
    Ok(Inherited {
        mode: (mode & !RWX_ALL) | masked,
        access: extended.then_some(access),
        default: (mode & S_IFMT == S_IFDIR).then(|| default.to_vec()),
    })
}

/// Intersects the permission bits `mode` with `acl` both ways: each of the
/// owner, group-class (the mask, else the owning group) and other entries
/// keeps only the bits the mode grants, and the mode only the bits those
/// entries grant. Returns the new bits and whether the ACL says more than
/// a mode can (named entries or a mask), i.e. must be stored.
fn mask_by_acl(acl: &mut [AclEntry], mode: u16) -> Result<(u16, bool), MalformedAcl> {
    let mut mode = mode;
    let (mut extended, mut group_obj, mut mask) = (false, None, None);
    let (mut has_owner, mut has_other) = (false, false);
    for (i, e) in acl.iter_mut().enumerate() {
        match e.tag {
            acl_tag::USER_OBJ => {
                e.perm &= (mode >> 6) & 0o7;
                mode &= (e.perm << 6) | !0o700;
                has_owner = true;
            }
            acl_tag::OTHER => {
                e.perm &= mode & 0o7;
                mode &= e.perm | !0o007;
                has_other = true;
            }
            acl_tag::GROUP_OBJ => group_obj = Some(i),
            acl_tag::MASK => {
                mask = Some(i);
                extended = true;
            }
            acl_tag::USER | acl_tag::GROUP => extended = true,
            _ => return Err(MalformedAcl),
        }
    }
    let class = mask.or(group_obj).ok_or(MalformedAcl)?;
    if !has_owner || !has_other {
        return Err(MalformedAcl);
    }
    let e = &mut acl[class];
    e.perm &= (mode >> 3) & 0o7;
    mode &= (e.perm << 3) | !0o070;
    Ok((mode & RWX_ALL, extended))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::inode::S_IFREG;
    use crate::format::xattr::ACL_UNDEFINED_ID;

    fn e(tag: u16, perm: u16) -> AclEntry {
        AclEntry {
            tag,
            perm,
            id: ACL_UNDEFINED_ID,
        }
    }

    fn named(tag: u16, id: u32, perm: u16) -> AclEntry {
        AclEntry { tag, perm, id }
    }

    fn minimal(u: u16, g: u16, o: u16) -> Vec<AclEntry> {
        vec![
            e(acl_tag::USER_OBJ, u),
            e(acl_tag::GROUP_OBJ, g),
            e(acl_tag::OTHER, o),
        ]
    }

    #[test]
    fn without_a_default_acl_the_umask_applies() {
        let r = inherit(S_IFREG | 0o666, 0o022, None).unwrap();
        assert_eq!(r.mode, S_IFREG | 0o644);
        assert_eq!((r.access, r.default), (None, None));
        let r = inherit(S_IFDIR | 0o2777, 0o077, Some(&[])).unwrap();
        assert_eq!(r.mode, S_IFDIR | 0o2700, "setgid kept, empty ACL = none");
    }

    #[test]
    fn symlinks_ignore_umask_and_default_acl() {
        let d = minimal(0, 0, 0);
        let r = inherit(S_IFLNK | 0o777, 0o077, Some(&d)).unwrap();
        assert_eq!(r.mode, S_IFLNK | 0o777);
        assert_eq!(r.access, None);
    }

    #[test]
    fn a_minimal_default_acl_replaces_the_umask() {
        let d = minimal(7, 5, 0);
        let f = inherit(S_IFREG | 0o666, 0o077, Some(&d)).unwrap();
        assert_eq!(f.mode, S_IFREG | 0o640, "umask ignored");
        assert_eq!(f.access, None, "equivalent to the mode: not stored");
        assert_eq!(f.default, None, "files get no default ACL");
        let dir = inherit(S_IFDIR | 0o755, 0o077, Some(&d)).unwrap();
        assert_eq!(dir.mode, S_IFDIR | 0o750);
        assert_eq!(dir.access, None);
        assert_eq!(
            dir.default.as_deref(),
            Some(&d[..]),
            "directories inherit it"
        );
    }

    #[test]
    fn named_entries_are_inherited_and_the_mask_takes_the_group_bits() {
        let d = vec![
            e(acl_tag::USER_OBJ, 7),
            named(acl_tag::USER, 1234, 5),
            e(acl_tag::GROUP_OBJ, 7),
            named(acl_tag::GROUP, 99, 6),
            e(acl_tag::MASK, 7),
            e(acl_tag::OTHER, 0),
        ];
        let r = inherit(S_IFREG | 0o664, 0o022, Some(&d)).unwrap();
        assert_eq!(r.mode, S_IFREG | 0o660);
        let a = r.access.expect("named entries: stored");
        assert_eq!(a[0], e(acl_tag::USER_OBJ, 6));
        assert_eq!(a[1], named(acl_tag::USER, 1234, 5), "named entries kept");
        assert_eq!(a[2], e(acl_tag::GROUP_OBJ, 7), "group masked by the mask");
        assert_eq!(a[3], named(acl_tag::GROUP, 99, 6));
        assert_eq!(a[4], e(acl_tag::MASK, 6));
        assert_eq!(a[5], e(acl_tag::OTHER, 0));
    }

    #[test]
    fn without_a_mask_the_owning_group_entry_is_masked() {
        let d = vec![
            e(acl_tag::USER_OBJ, 6),
            named(acl_tag::USER, 7, 7),
            e(acl_tag::GROUP_OBJ, 7),
            e(acl_tag::OTHER, 5),
        ];
        let r = inherit(S_IFDIR | 0o751, 0, Some(&d)).unwrap();
        assert_eq!(r.mode, S_IFDIR | 0o651);
        let a = r.access.unwrap();
        assert_eq!(a[2], e(acl_tag::GROUP_OBJ, 5));
        assert_eq!(a[3], e(acl_tag::OTHER, 1));
    }

    #[test]
    fn malformed_default_acls_are_refused() {
        let no_group = vec![e(acl_tag::USER_OBJ, 7), e(acl_tag::OTHER, 0)];
        assert_eq!(
            inherit(S_IFREG | 0o644, 0, Some(&no_group)),
            Err(MalformedAcl)
        );
        let bad_tag = vec![e(acl_tag::USER_OBJ, 7), e(0x40, 7)];
        assert_eq!(
            inherit(S_IFREG | 0o644, 0, Some(&bad_tag)),
            Err(MalformedAcl)
        );
    }
}
