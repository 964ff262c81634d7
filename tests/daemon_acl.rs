//! POSIX ACLs on a fext mount against the kernel's ext4 (the oracle): the
//! same shell workloads run on a fext mount and on a loop mount of a twin
//! image, and what `getfacl`, `stat` and a non-root user's access attempts
//! show must be the same; then [`Pair::finish`] checks the trees (ACL
//! xattrs included), `e2fsck -fn` and the kernel's view of fext's image.
//!
//! Covered: default-ACL inheritance (several umasks and create modes,
//! named entries, nested and minimal default ACLs, `mkdir -p`, `cp`,
//! `cp -a`, fifos, symlinks), the mode after `setfacl` and the ACL after
//! `chmod` seen at once (a 60 s attribute timeout would show stale
//! values), and access granted and denied through named-user,
//! named-group, mask and other entries.

mod common;

use std::path::Path;

use common::pair::{no_mtime, Pair, PairConfig};
use common::*;

/// Runs `script` with `sh -e` inside `root`, as root.
fn sh(root: &Path, script: &str) -> String {
    Cmd::new("sh")
        .args(["-ec", script])
        .current_dir(root)
        .run_ok()
        .stdout
}

/// Every path under `root` (but lost+found), sorted: readdir order differs
/// between ext4's hash order and fext.
fn paths(root: &Path) -> Vec<String> {
    let out = sh(root, "find . -path ./lost+found -prune -o -print");
    let mut v: Vec<String> = out.lines().map(str::to_owned).collect();
    v.sort();
    v
}

/// Mode, type and owner of every path, then `getfacl` of every path.
fn acl_report(root: &Path) -> String {
    let paths = paths(root);
    let modes = Cmd::new("stat")
        .args(["-c", "%a %F %u:%g %n"])
        .args(&paths)
        .current_dir(root)
        .run_ok()
        .stdout;
    let acls = Cmd::new("getfacl")
        .args(["-n", "-p"])
        .args(&paths)
        .current_dir(root)
        .run_ok()
        .stdout;
    format!("{modes}\n{acls}")
}

/// Fails with both reports when they differ.
#[track_caller]
fn assert_same(what: &str, reference: &str, fext: &str) {
    if reference != fext {
        let diff: Vec<String> = reference
            .lines()
            .zip(fext.lines())
            .filter(|(r, f)| r != f)
            .map(|(r, f)| format!("  reference: {r}\n  fext:      {f}"))
            .collect();
        panic!(
            "{what}: fext differs from ext4 (first differing lines):\n{}\n\
             --- reference ---\n{reference}\n--- fext ---\n{fext}",
            diff.join("\n")
        );
    }
}

const INHERITANCE: &str = r#"
mkdir src
for m in 700 750 640 755 604 2775; do echo "$m" > src/f$m; chmod $m src/f$m; done
mkdir src/tree src/tree/sub; chmod 750 src/tree/sub; echo t > src/tree/sub/leaf
setfacl -m u:77:r src/f640
mkdir d
setfacl -d -m u:1234:rx,g:99:rw,g::rwx,o::- d
setfacl -m u:1234:rwx d
for um in 000 002 022 027 077; do
    (
        umask $um
        echo x > d/file$um
        mkdir d/dir$um
        mknod d/fifo$um p
        ln -s file$um d/link$um
        for m in 700 750 640 755 604 2775; do cp src/f$m d/cp$m.$um; done
        mkdir -p d/p$um/q/r
    )
done
umask 022
cp -r src/tree d/tree_r
cp -a src/tree d/tree_a
cp -a src/f640 d/cpa640
cp -p src/f750 d/cpp750
mkdir d/minimal
setfacl -k d/minimal
setfacl -d -m u::rwx,g::r-x,o::--- d/minimal
echo x > d/minimal/file
mkdir d/minimal/dir
mkdir d/minimal/dir/deeper
mkdir d/nested
setfacl -d -m g:55:rwx,m::r-x d/nested
echo x > d/nested/file
mkdir d/nested/dir
echo x > d/nested/dir/file
mkdir -m 700 d/modedir
mkdir plain
(umask 077; echo x > plain/file; mkdir plain/dir)
(umask 000; echo x > plain/open; mkdir plain/opendir)
mkdir sgid
chgrp 99 sgid
chmod 2775 sgid
setfacl -d -m u:1234:rwx sgid
mkdir sgid/dir
echo x > sgid/file
"#;

#[test]
fn default_acls_are_inherited_as_ext4_does() {
    // ext2 at 1 KiB too: no extents, and a small block for the xattr block.
    for (fs_type, block_size) in [("ext4", 4096), ("ext2", 1024)] {
        let Some(pair) = Pair::new(PairConfig::new(fs_type, block_size)) else {
            return;
        };
        let mut reports = Vec::new();
        for (_, root) in pair.roots() {
            sh(&root, INHERITANCE);
            reports.push(acl_report(&root));
        }
        assert!(
            reports[0].contains("user:1234:r-x") && reports[0].contains("default:group:55:rwx"),
            "the reference shows no inherited ACL: the workload is wrong\n{}",
            reports[0]
        );
        assert_same(
            &format!("inheritance ({fs_type}, {block_size})"),
            &reports[0],
            &reports[1],
        );
        pair.finish(&no_mtime());
    }
}

const MODE_SYNC: &str = r#"
echo a > f
chmod 644 f
s0=$(stat -c %a f)
setfacl -m u:1234:rw f
s1=$(stat -c %a f)
setfacl -m m::r f
s2=$(stat -c %a f)
chmod 600 f
a3=$(getfacl -n -p --omit-header f | tr '\n' ' ')
s3=$(stat -c %a f)
setfacl -b f
s4=$(stat -c %a f)
echo e > eq
stat -c %a eq >/dev/null
setfacl -m u::rwx,g::r,o::- eq
s5=$(stat -c %a eq)
x5=$(getfattr -n system.posix_acl_access eq >/dev/null 2>&1 && echo stored || echo none)
mkdir d
stat -c %a d >/dev/null
setfacl -d -m u:1234:rwx d
s6=$(stat -c %a d)
setfacl -m g::rwx,o::rwx d
s7=$(stat -c %a d)
echo "$s0 $s1 $s2 | $a3 | $s3 $s4 | $s5 $x5 | $s6 $s7"
"#;

const ACCESS_SETUP: &str = r#"
mkdir e
chmod 755 e
for f in u_r u_rw_mask_r g_rw u_none o_r plain600; do echo data > e/$f; done
chmod 600 e/u_r e/u_rw_mask_r e/g_rw e/plain600
chmod 644 e/u_none e/o_r
setfacl -m u:1234:r e/u_r
setfacl -m u:1234:rw,m::r e/u_rw_mask_r
setfacl -m g:4321:rw e/g_rw
setfacl -m u:1234:- e/u_none
mkdir e/xonly
echo data > e/xonly/f
chmod 644 e/xonly/f
chmod 700 e/xonly
setfacl -m u:1234:x e/xonly
mkdir e/shared
chmod 700 e/shared
setfacl -m u:1234:rwx e/shared
setfacl -d -m u:1235:rw e/shared
"#;

/// (name, uid, gid, shell command run in `e`) of each access attempt.
const ATTEMPTS: &[(&str, u32, u32, &str)] = &[
    ("named user reads", 1234, 1234, "cat u_r"),
    ("named user writes", 1234, 1234, "echo x >> u_r"),
    (
        "mask limits a named user",
        1234,
        1234,
        "echo x >> u_rw_mask_r",
    ),
    ("mask still lets read", 1234, 1234, "cat u_rw_mask_r"),
    ("named group member writes", 1235, 4321, "echo x >> g_rw"),
    ("non-member writes", 1235, 1235, "echo x >> g_rw"),
    ("named entry denies over other", 1234, 1234, "cat u_none"),
    ("other reads", 1235, 1235, "cat u_none"),
    ("plain 600 file", 1234, 1234, "cat plain600"),
    ("search-only dir: open file", 1234, 1234, "cat xonly/f"),
    ("search-only dir: list", 1234, 1234, "ls xonly"),
    ("other user lists", 1235, 1235, "ls xonly"),
    (
        "named user creates",
        1234,
        1234,
        "umask 022; echo n > shared/new",
    ),
    ("inherited entry grants", 1235, 1235, "echo y >> shared/new"),
    ("inherited entry only", 1236, 1236, "cat shared/new"),
];

/// The kernel's (and so the reference's) answers, in [`ATTEMPTS`] order.
const EXPECTED: &[bool] = &[
    true, false, false, true, true, false, false, true, false, true, false, false, true, false,
    false,
];

fn attempt(root: &Path, uid: u32, gid: u32, cmd: &str) -> bool {
    Cmd::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .args(["sh", "-c", cmd])
        .current_dir(root.join("e"))
        .run()
        .success()
}

#[test]
fn acls_grant_deny_and_update_the_mode_as_ext4_does() {
    let mut cfg = PairConfig::new("ext4", 4096);
    // A long attribute timeout: a mode the kernel kept from before an ACL
    // change would show.
    cfg.fext_opts = "allow_other,attr_timeout=60".into();
    let Some(pair) = Pair::new(cfg) else { return };
    let mut modes = Vec::new();
    let mut answers = Vec::new();
    for (_, root) in pair.roots() {
        modes.push(sh(&root, MODE_SYNC));
        sh(&root, ACCESS_SETUP);
        let got: Vec<bool> = ATTEMPTS
            .iter()
            .map(|&(_, uid, gid, cmd)| attempt(&root, uid, gid, cmd))
            .collect();
        answers.push(got);
        modes.push(acl_report(&root.join("e")));
    }
    assert_same("mode and ACL after setfacl/chmod", &modes[0], &modes[2]);
    assert_same("ACLs of the access tree", &modes[1], &modes[3]);
    let show = |v: &[bool]| {
        ATTEMPTS
            .iter()
            .zip(v)
            .map(|((name, ..), ok)| format!("  {name}: {ok}\n"))
            .collect::<String>()
    };
    assert_eq!(
        answers[0],
        EXPECTED,
        "the reference disagrees with the test's table:\n{}",
        show(&answers[0])
    );
    assert_eq!(
        answers[1],
        answers[0],
        "access on fext differs from ext4; fext:\n{}",
        show(&answers[1])
    );
    pair.finish(&no_mtime());
}
