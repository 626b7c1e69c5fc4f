//! Compares two directory trees entry by entry (lstat only: symlinks are never followed) and
//! lists every difference, so that one failed assertion shows them all.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What to compare. [`Compare::exact`] is what issue 2 item 5 promises for ext4/xfs/btrfs.
#[derive(Debug, Clone, Copy)]
pub struct Compare {
    /// Permission bits (all 12) in addition to the file type.
    pub mode: bool,
    pub owner: bool,
    /// Modification times of files and directories.
    pub mtime: bool,
    /// Modification times of directories too.
    pub dir_mtime: bool,
    /// Modification times of symlinks too.
    pub symlink_mtime: bool,
    /// Allowed difference of mtimes, in nanoseconds (0: exact, seconds and nanoseconds).
    pub mtime_tolerance_ns: u64,
    /// All xattrs, including `system.posix_acl_access`/`default` (the ACLs).
    pub xattrs: bool,
    /// Paths that share an inode in one tree share one in the other, and only those.
    pub hard_links: bool,
    /// A sparse file of the first tree is sparse in the second.
    pub sparse: bool,
    /// Compare the roots' own metadata (mode, owner, mtime, xattrs), not just their contents.
    pub root_metadata: bool,
}

impl Compare {
    pub fn exact() -> Compare {
        Compare {
            mode: true,
            owner: true,
            mtime: true,
            dir_mtime: true,
            symlink_mtime: true,
            mtime_tolerance_ns: 0,
            xattrs: true,
            hard_links: true,
            sparse: true,
            root_metadata: true,
        }
    }

    /// What vfat can hold: names, types, sizes and contents; file mtimes at 2 s resolution
    /// (mtools, which builds the images, sets no directory times).
    pub fn vfat() -> Compare {
        Compare {
            mode: false,
            owner: false,
            mtime: true,
            dir_mtime: false,
            symlink_mtime: false,
            mtime_tolerance_ns: 2_000_000_000,
            xattrs: false,
            hard_links: false,
            sparse: false,
            root_metadata: false,
        }
    }
}

/// One entry of a tree, from lstat.
#[derive(Debug, Clone)]
pub struct Entry {
    pub meta: fs::Metadata,
    pub link_target: Option<Vec<u8>>,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// A relative path as bytes, `.` for the root.
pub type RelPath = Vec<u8>;

/// `statfs` magic of XFS.
const XFS_SUPER_MAGIC: i64 = 0x5846_5342;

/// xattrs through which XFS shows its own on-disk form of POSIX ACLs (to root, on recent
/// kernels): the same ACLs as `system.posix_acl_*`, which is what a copy must carry. libattr skips
/// them when copying (/etc/xattr.conf), and so do these comparisons, on XFS only: anywhere else
/// they would be real, stray attributes.
const XFS_INTERNAL_XATTRS: &[&[u8]] = &[b"trusted.SGI_ACL_FILE", b"trusted.SGI_ACL_DEFAULT"];

fn is_xfs(p: &Path) -> bool {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).expect("path without NUL");
    // SAFETY: statfs writes only into the zeroed struct we pass.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statfs {}: {}", p.display(), std::io::Error::last_os_error());
    st.f_type as i64 == XFS_SUPER_MAGIC
}

/// Every entry of `root`, keyed by path relative to it (the root itself is `.`).
pub fn scan(root: &Path) -> BTreeMap<RelPath, Entry> {
    let mut out = BTreeMap::new();
    scan_into(root, root, &mut out);
    if is_xfs(root) {
        for e in out.values_mut() {
            e.xattrs.retain(|k, _| !XFS_INTERNAL_XATTRS.contains(&k.as_slice()));
        }
    }
    out
}

fn rel(root: &Path, p: &Path) -> RelPath {
    let r = p.strip_prefix(root).expect("below root");
    if r.as_os_str().is_empty() {
        b".".to_vec()
    } else {
        r.as_os_str().as_bytes().to_vec()
    }
}

fn scan_into(root: &Path, p: &Path, out: &mut BTreeMap<RelPath, Entry>) {
    let meta = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
    let link_target = meta.file_type().is_symlink().then(|| {
        fs::read_link(p).unwrap_or_else(|e| panic!("readlink {}: {e}", p.display())).into_os_string().into_vec()
    });
    let mut xattrs = BTreeMap::new();
    for name in xattr::list(p).unwrap_or_else(|e| panic!("listxattr {}: {e}", p.display())) {
        let value = xattr::get(p, &name).unwrap_or_else(|e| panic!("getxattr {name:?} {}: {e}", p.display()));
        xattrs.insert(name.as_bytes().to_vec(), value.unwrap_or_default());
    }
    let is_dir = meta.is_dir();
    out.insert(rel(root, p), Entry { meta, link_target, xattrs });
    if is_dir {
        for e in fs::read_dir(p).unwrap_or_else(|e| panic!("read_dir {}: {e}", p.display())) {
            scan_into(root, &e.expect("dir entry").path(), out);
        }
    }
}

use std::os::unix::ffi::OsStringExt;

/// A path for messages: UTF-8 where it is, `\xNN` escapes where not.
pub fn show(p: &[u8]) -> String {
    p.utf8_chunks()
        .flat_map(|c| {
            let mut s = c.valid().escape_debug().to_string();
            for b in c.invalid() {
                s.push_str(&format!("\\x{b:02x}"));
            }
            [s]
        })
        .collect()
}

fn kind(m: &fs::Metadata) -> &'static str {
    match m.mode() & libc::S_IFMT {
        libc::S_IFREG => "file",
        libc::S_IFDIR => "directory",
        libc::S_IFLNK => "symlink",
        libc::S_IFIFO => "fifo",
        libc::S_IFCHR => "char device",
        libc::S_IFBLK => "block device",
        libc::S_IFSOCK => "socket",
        _ => "unknown",
    }
}

/// Bytes a file occupies on disk.
pub fn allocated(m: &fs::Metadata) -> u64 {
    m.blocks() * 512
}

/// A file counts as sparse when it allocates less than a quarter of its size (and is >= 1 MiB).
pub fn is_sparse(m: &fs::Metadata) -> bool {
    m.is_file() && m.size() >= 1 << 20 && allocated(m) * 4 < m.size()
}

fn same_content(a: &Path, b: &Path) -> Result<(), String> {
    let mut fa = fs::File::open(a).map_err(|e| format!("open {}: {e}", a.display()))?;
    let mut fb = fs::File::open(b).map_err(|e| format!("open {}: {e}", b.display()))?;
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(|e| format!("read {}: {e}", a.display()))?;
        let nb = read_full(&mut fb, &mut bb).map_err(|e| format!("read {}: {e}", b.display()))?;
        if ba[..na] != bb[..nb] {
            let i = ba[..na].iter().zip(&bb[..nb]).position(|(x, y)| x != y).unwrap_or(na.min(nb));
            return Err(format!("content differs at byte {}", offset + i as u64));
        }
        if na == 0 {
            return Ok(());
        }
        offset += na as u64;
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn mtime_ns(m: &fs::Metadata) -> i128 {
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

fn show_xattrs(x: &BTreeMap<Vec<u8>, Vec<u8>>) -> String {
    x.iter()
        .map(|(k, v)| {
            let v = if v.len() > 40 { format!("<{} bytes>", v.len()) } else { show(v) };
            format!("{}={}", show(k), v)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Groups of two or more paths that share an inode (non-directories only).
fn link_groups(entries: &BTreeMap<RelPath, Entry>) -> BTreeSet<Vec<RelPath>> {
    let mut by_inode: BTreeMap<(u64, u64), Vec<RelPath>> = BTreeMap::new();
    for (p, e) in entries {
        if !e.meta.is_dir() {
            by_inode.entry((e.meta.dev(), e.meta.ino())).or_default().push(p.clone());
        }
    }
    by_inode
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect()
}

/// Every difference between the tree at `expected` and the one at `actual`.
pub fn compare_trees(expected: &Path, actual: &Path, how: Compare) -> Vec<String> {
    let a = scan(expected);
    let b = scan(actual);
    let mut diffs = Vec::new();
    for p in a.keys().filter(|p| !b.contains_key(*p)) {
        diffs.push(format!("{}: missing ({} in the source)", show(p), kind(&a[p].meta)));
    }
    for p in b.keys().filter(|p| !a.contains_key(*p)) {
        diffs.push(format!("{}: unexpected {}", show(p), kind(&b[p].meta)));
    }
    for (p, ea) in &a {
        let Some(eb) = b.get(p) else { continue };
        let name = show(p);
        let (ma, mb) = (&ea.meta, &eb.meta);
        if ma.mode() & libc::S_IFMT != mb.mode() & libc::S_IFMT {
            diffs.push(format!("{name}: is a {}, expected a {}", kind(mb), kind(ma)));
            continue;
        }
        let is_root = p.as_slice() == b".";
        let meta = !is_root || how.root_metadata;
        if meta && how.mode && ma.mode() != mb.mode() {
            diffs.push(format!("{name}: mode {:o}, expected {:o}", mb.mode(), ma.mode()));
        }
        if meta && how.owner && (ma.uid(), ma.gid()) != (mb.uid(), mb.gid()) {
            diffs.push(format!("{name}: owner {}:{}, expected {}:{}", mb.uid(), mb.gid(), ma.uid(), ma.gid()));
        }
        let check_mtime =
            how.mtime && (!ma.file_type().is_symlink() || how.symlink_mtime) && (!ma.is_dir() || how.dir_mtime);
        if meta && check_mtime && (mtime_ns(ma) - mtime_ns(mb)).unsigned_abs() > how.mtime_tolerance_ns as u128 {
            diffs.push(format!(
                "{name}: mtime {}.{:09}, expected {}.{:09}",
                mb.mtime(),
                mb.mtime_nsec(),
                ma.mtime(),
                ma.mtime_nsec()
            ));
        }
        if meta && how.xattrs && ea.xattrs != eb.xattrs {
            diffs.push(format!("{name}: xattrs [{}], expected [{}]", show_xattrs(&eb.xattrs), show_xattrs(&ea.xattrs)));
        }
        if ea.link_target != eb.link_target {
            diffs.push(format!(
                "{name}: symlink to {:?}, expected {:?}",
                show(eb.link_target.as_deref().unwrap_or_default()),
                show(ea.link_target.as_deref().unwrap_or_default())
            ));
        }
        let ft = ma.file_type();
        use std::os::unix::fs::FileTypeExt;
        if (ft.is_char_device() || ft.is_block_device()) && ma.rdev() != mb.rdev() {
            diffs.push(format!("{name}: device number {:#x}, expected {:#x}", mb.rdev(), ma.rdev()));
        }
        if ma.is_file() {
            if ma.size() != mb.size() {
                diffs.push(format!("{name}: size {}, expected {}", mb.size(), ma.size()));
            } else if let Err(e) = same_content(
                &expected.join(std::ffi::OsStr::from_bytes(p)),
                &actual.join(std::ffi::OsStr::from_bytes(p)),
            ) {
                diffs.push(format!("{name}: {e}"));
            }
            if how.sparse && is_sparse(ma) && !is_sparse(mb) {
                diffs.push(format!(
                    "{name}: not sparse: {} bytes allocated for {} (the source allocates {})",
                    allocated(mb),
                    mb.size(),
                    allocated(ma)
                ));
            }
        }
    }
    if how.hard_links {
        let ga = link_groups(&a);
        let gb = link_groups(&b);
        for g in ga.difference(&gb) {
            diffs.push(format!("hard links: {} share an inode in the source but not in the copy", show_group(g)));
        }
        for g in gb.difference(&ga) {
            diffs.push(format!("hard links: {} share an inode in the copy but not in the source", show_group(g)));
        }
    }
    diffs
}

fn show_group(g: &[RelPath]) -> String {
    g.iter().map(|p| show(p)).collect::<Vec<_>>().join(" = ")
}

/// Panics listing every difference between two trees.
#[track_caller]
pub fn assert_same_tree(expected: &Path, actual: &Path, how: Compare) {
    let diffs = compare_trees(expected, actual, how);
    if !diffs.is_empty() {
        const SHOWN: usize = 200;
        let more = diffs.len().saturating_sub(SHOWN);
        panic!(
            "{} differs from {} in {} ways:\n  {}{}",
            actual.display(),
            expected.display(),
            diffs.len(),
            diffs.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("\n  "),
            if more > 0 { format!("\n  ... and {more} more") } else { String::new() }
        );
    }
}

/// The number of entries in a tree (the root included), for sanity checks.
pub fn count_entries(root: &Path) -> usize {
    scan(root).len()
}

/// `path` joined with a relative byte path.
pub fn join_bytes(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(std::ffi::OsStr::from_bytes(rel))
}
