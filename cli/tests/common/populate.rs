//! Fills a directory with every kind of entry and metadata that issue 2 item 5 says an archive
//! must keep: contents, empty and nested directories, symlinks (also dangling), hard links,
//! sparse files, FIFOs and device nodes, setuid/setgid/sticky bits, foreign numeric owners,
//! nanosecond mtimes, user/trusted/security xattrs, access and default ACLs, long names and
//! paths, and names that are not UTF-8.

use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::image::MIB;
use super::{pseudo_random, sh};

/// Size of the sparse file: large next to the few KiB it allocates.
pub const SPARSE_SIZE: u64 = 64 * MIB;
/// The sparse files [`populate_full`] creates, relative to the root.
pub const SPARSE_FILES: &[&str] = &["sparse.bin", "sparse_tail.bin"];

/// The mtime every entry gets, plus its index in seconds: 2021-05-06T07:08:09.123456789Z.
pub const BASE_MTIME: (i64, i64) = (1_620_284_889, 123_456_789);

/// A numeric owner that no /etc/passwd lists.
pub const FOREIGN_UID: u32 = 12345;
pub const FOREIGN_GID: u32 = 54321;

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

fn check(rc: libc::c_int, what: &str, p: &Path) {
    if rc != 0 {
        panic!("{what} {}: {}", p.display(), std::io::Error::last_os_error());
    }
}

fn write(p: &Path, bytes: &[u8]) {
    fs::write(p, bytes).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

fn mkdir(p: &Path) {
    fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
}

pub fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

pub fn lchown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap_or_else(|e| panic!("lchown {}: {e}", p.display()));
}

fn mknod(p: &Path, kind: libc::mode_t, major: u32, minor: u32) {
    let dev = libc::makedev(major, minor);
    // SAFETY: a valid NUL-terminated path; mknod reads nothing else.
    check(unsafe { libc::mknod(cpath(p).as_ptr(), kind | 0o644, dev) }, "mknod", p);
}

/// Sets the mtime (and atime) of `p` itself, not of a symlink's target.
pub fn set_mtime(p: &Path, secs: i64, nsecs: i64) {
    let ts = [libc::timespec { tv_sec: secs, tv_nsec: nsecs }, libc::timespec { tv_sec: secs, tv_nsec: nsecs }];
    // SAFETY: a valid path and a two-element timespec array, as utimensat requires.
    check(
        unsafe { libc::utimensat(libc::AT_FDCWD, cpath(p).as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) },
        "utimensat",
        p,
    );
}

fn setxattr(p: &Path, name: &str, value: &[u8]) {
    xattr::set(p, name, value).unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", p.display()));
}

/// Every entry below `root` (not `root` itself), children before their parents.
fn post_order(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(root).expect("read_dir").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for e in entries {
        if fs::symlink_metadata(&e).expect("lstat").is_dir() {
            out.extend(post_order(&e));
        }
        out.push(e);
    }
    out
}

/// Gives every entry below `root`, and `root`, its own mtime with nanoseconds. Runs last:
/// creating entries changes the parent directory's mtime.
pub fn stamp_mtimes(root: &Path) {
    let mut all = post_order(root);
    all.push(root.to_path_buf());
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, BASE_MTIME.0 + i as i64 * 3, (BASE_MTIME.1 + i as i64 * 1_000_003) % 1_000_000_000);
    }
}

/// Like [`stamp_mtimes`] in whole even seconds, the resolution of vfat's modification times.
pub fn stamp_mtimes_vfat(root: &Path) {
    let mut all = post_order(root);
    all.push(root.to_path_buf());
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, BASE_MTIME.0 + 1 + i as i64 * 2, 0);
    }
}

/// Files with varied content, empty and nested directories and long names: what any
/// filesystem, vfat included, can hold. Sets no times: see [`stamp_mtimes`] and
/// [`stamp_mtimes_vfat`].
pub fn populate_basic(root: &Path) {
    write(&root.join("hello.txt"), b"hello, world\n");
    write(&root.join("empty.txt"), b"");
    let text: Vec<u8> =
        (0..20_000).flat_map(|i| format!("line {i} of a very compressible text file\n").into_bytes()).collect();
    write(&root.join("compressible.txt"), &text);
    write(&root.join("random.bin"), &pseudo_random(1, 3 * MIB as usize + 123));
    mkdir(&root.join("empty_dir"));
    mkdir(&root.join("nested/a/b/c/d"));
    write(&root.join("nested/a/b/c/d/deep.txt"), b"deep\n");
    write(&root.join("nested/a/mid.bin"), &pseudo_random(2, 100_000));
    mkdir(&root.join("nested/empty_leaf"));
    // A 150-byte name (over tar's 100-byte name field) ...
    let long_name = format!("long_{}", "n".repeat(145));
    write(&root.join(&long_name), b"long name\n");
    // ... and a path over 255 bytes (over ustar's 155+100 split) across nested directories.
    let mut deep = root.to_path_buf();
    for i in 0..3 {
        deep.push(format!("dir{i}_{}", "d".repeat(90)));
    }
    mkdir(&deep);
    write(&deep.join(format!("file_{}", "f".repeat(80))), b"long path\n");
}

/// Every kind of entry and metadata, for ext4, xfs and btrfs.
pub fn populate_full(root: &Path) {
    populate_basic(root);

    // Symlinks: relative, to a directory, absolute, dangling.
    symlink("hello.txt", root.join("link_to_hello")).expect("symlink");
    symlink("nested/a", root.join("link_to_dir")).expect("symlink");
    symlink("/etc/hostname", root.join("absolute_link")).expect("symlink");
    symlink("does/not/exist", root.join("dangling_link")).expect("symlink");

    // Hard links: a pair, and a triple spread over two directories.
    mkdir(&root.join("hardlinks"));
    write(&root.join("hardlinks/pair_a"), b"two names\n");
    fs::hard_link(root.join("hardlinks/pair_a"), root.join("hardlinks/pair_b")).expect("link");
    write(&root.join("hardlinks/triple_a"), &pseudo_random(4, 70_000));
    fs::hard_link(root.join("hardlinks/triple_a"), root.join("hardlinks/triple_b")).expect("link");
    fs::hard_link(root.join("hardlinks/triple_a"), root.join("nested/triple_c")).expect("link");

    // Sparse files: data at the start and in the middle with a hole to the end, and a hole
    // first with data in the last block.
    {
        let f = fs::File::create(root.join("sparse.bin")).expect("create sparse");
        f.set_len(SPARSE_SIZE).expect("size sparse");
        use std::os::unix::fs::FileExt;
        f.write_all_at(&pseudo_random(5, 4096), 0).expect("write sparse");
        f.write_all_at(&pseudo_random(6, 8192), 16 * MIB).expect("write sparse");
        let f = fs::File::create(root.join("sparse_tail.bin")).expect("create sparse");
        f.set_len(SPARSE_SIZE).expect("size sparse");
        f.write_all_at(&pseudo_random(7, 4096), SPARSE_SIZE - 4096).expect("write sparse");
    }

    // Special files.
    mknod(&root.join("fifo"), libc::S_IFIFO, 0, 0);
    mknod(&root.join("char_null"), libc::S_IFCHR, 1, 3);
    mknod(&root.join("block_loop200"), libc::S_IFBLK, 7, 200);
    mknod(&root.join("char_big_minor"), libc::S_IFCHR, 240, 70_000);

    // Owners first: chown clears setuid/setgid.
    write(&root.join("owned_foreign"), b"owner 12345:54321\n");
    lchown(&root.join("owned_foreign"), FOREIGN_UID, FOREIGN_GID);
    mkdir(&root.join("dir_owned_foreign"));
    lchown(&root.join("dir_owned_foreign"), 23456, 65432);
    lchown(&root.join("dangling_link"), 34567, 45678);
    lchown(&root.join("fifo"), 1001, 1002);

    // Mode bits.
    for (name, mode) in [
        ("mode_setuid", 0o4755),
        ("mode_setgid", 0o2711),
        ("mode_all_special", 0o7777),
        ("mode_none", 0o000),
        ("mode_0640", 0o640),
    ] {
        write(&root.join(name), name.as_bytes());
        chmod(&root.join(name), mode);
    }
    write(&root.join("owned_setuid"), b"setuid with a foreign owner\n");
    lchown(&root.join("owned_setuid"), FOREIGN_UID, FOREIGN_GID);
    chmod(&root.join("owned_setuid"), 0o4750);
    mkdir(&root.join("sticky_dir"));
    chmod(&root.join("sticky_dir"), 0o1777);
    mkdir(&root.join("setgid_dir"));
    chmod(&root.join("setgid_dir"), 0o2775);
    chmod(&root.join("dir_owned_foreign"), 0o750);

    // Extended attributes in every namespace tar is asked to keep, with binary values.
    let x = root.join("xattrs.txt");
    write(&x, b"has xattrs\n");
    setxattr(&x, "user.comment", b"a comment");
    setxattr(&x, "user.binary", &[0, 1, 2, 0xff, 0xfe, b'\n', 0]);
    setxattr(&x, "user.empty", b"");
    // Large, but small enough for ext4 with 1 KiB blocks, which keeps all xattrs of an inode in one block.
    setxattr(&x, "user.big", &pseudo_random(8, 600));
    setxattr(&x, "trusted.secret", b"for root only");
    setxattr(&x, "security.test", b"label");
    setxattr(&root.join("nested"), "user.on_dir", b"dir xattr");
    setxattr(&root.join("nested"), "trusted.on_dir", b"trusted dir xattr");
    setxattr(&root.join("hardlinks/pair_a"), "user.on_hardlink", b"shared by both names");

    // POSIX ACLs: access ACLs on a file and a directory, a default ACL inherited by a child.
    let acl_file = root.join("acl_file");
    write(&acl_file, b"acl\n");
    sh("setfacl", ["-m".as_ref(), "u:12345:rwx,g:54321:r-x,u:1000:r--,m::rwx".as_ref(), acl_file.as_os_str()]);
    let acl_dir = root.join("acl_dir");
    mkdir(&acl_dir);
    sh("setfacl", ["-m".as_ref(), "u:12345:rwx,g:54321:rx".as_ref(), acl_dir.as_os_str()]);
    sh("setfacl", ["-d".as_ref(), "-m".as_ref(), "u:12345:rwx,g:54321:r-x,o::---".as_ref(), acl_dir.as_os_str()]);
    write(&acl_dir.join("inherits"), b"inherits the default ACL\n");
    mkdir(&acl_dir.join("subdir_inherits"));

    // Names that are not UTF-8, as a file and as a directory with a child.
    let latin1 = root.join(OsStr::from_bytes(b"caf\xe9"));
    write(&latin1, b"latin-1 name\n");
    let bad_dir = root.join(OsStr::from_bytes(b"dir_\xff\xfe"));
    mkdir(&bad_dir);
    write(&bad_dir.join(OsStr::from_bytes(b"\x80child")), b"child of a non-UTF-8 directory\n");
    // A name of 255 bytes, the most any of these filesystems allows.
    write(&root.join("m".repeat(255)), b"name of 255 bytes\n");
    // A name with spaces, a newline and shell metacharacters.
    write(&root.join("odd name\n with $pecial 'chars' & *"), b"odd\n");

    stamp_mtimes(root);
}

/// Fills `root` until the filesystem reports ENOSPC; returns the bytes written.
pub fn fill_until_full(root: &Path) -> u64 {
    let chunk = pseudo_random(9, MIB as usize);
    let mut total = 0u64;
    for i in 0.. {
        let p = root.join(format!("fill_{i:04}.bin"));
        let mut f = match fs::OpenOptions::new().create_new(true).write(true).mode(0o644).open(&p) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return total,
            Err(e) => panic!("create {}: {e}", p.display()),
        };
        use std::io::Write;
        for _ in 0..4 {
            match f.write(&chunk) {
                Ok(n) if n == chunk.len() => total += n as u64,
                Ok(n) => {
                    total += n as u64;
                    return total;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return total,
                Err(e) => panic!("write {}: {e}", p.display()),
            }
        }
        if let Err(e) = f.sync_all() {
            if e.raw_os_error() == Some(libc::ENOSPC) {
                return total;
            }
            panic!("sync {}: {e}", p.display());
        }
    }
    unreachable!()
}
