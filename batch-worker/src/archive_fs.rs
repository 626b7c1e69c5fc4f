//! `mount`: a read-only FUSE view of an archive's files-mode object, built from its index alone;
//! file contents are fetched on demand, member by member (a few ahead for sequential reads), and
//! kept in a bounded cache of decompressed members. Hard links share one inode; xattrs and ACLs
//! (which live in the tar stream's PAX records, not in the index) are not shown: `get` and
//! `restore` write them.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use archiver_core::index::{base_name, parent, EntryKind, FetchRange, IndexEntry};
use aws_sdk_s3::Client;
use bytes::Bytes;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, Generation, INodeNo, LockOwner, OpenFlags, ReplyAttr, ReplyData,
    ReplyDirectory, ReplyEntry, Request,
};

use crate::get::{fetch_range, GetError, Indexed};
use crate::index::sparse_regions;

/// Decompressed members kept: 64 MiB of 1 MiB members, whatever the archive's size.
pub const CACHED_MEMBERS: usize = 64;
/// Members fetched beyond what a read needs, in the same GET: `cp` and `cat` read sequentially.
const READ_AHEAD_MEMBERS: usize = 3;
/// The archive never changes under the mount: the kernel may keep attributes as long as it likes.
const TTL: Duration = Duration::from_secs(3600);

/// One inode: an entry of the index (hard links share their target's).
struct Node {
    /// The entry's position in the index; `None` for a root the archive does not list.
    entry: Option<usize>,
    nlink: u32,
    parent: u64,
}

/// The archive as a filesystem.
pub struct ArchiveFs {
    indexed: Indexed,
    client: Client,
    runtime: tokio::runtime::Handle,
    /// Inode `n` is `nodes[n - 1]`; inode 1 is the root.
    nodes: Vec<Node>,
    children: HashMap<u64, Vec<(Vec<u8>, u64)>>,
    cache: Mutex<MemberCache>,
    /// Sparse files' data regions, read from their headers on first use.
    sparse: Mutex<HashMap<u64, Vec<(u64, u64)>>>,
}

#[derive(Default)]
struct MemberCache {
    members: HashMap<usize, Bytes>,
    order: VecDeque<usize>,
}

impl MemberCache {
    fn insert(&mut self, member: usize, bytes: Bytes) {
        if self.members.insert(member, bytes).is_none() {
            self.order.push_back(member);
        }
        while self.order.len() > CACHED_MEMBERS {
            if let Some(old) = self.order.pop_front() {
                self.members.remove(&old);
            }
        }
    }
}

impl ArchiveFs {
    pub fn new(indexed: Indexed, client: Client, runtime: tokio::runtime::Handle) -> Self {
        let entries = &indexed.index.entries;
        let root = entries.iter().position(|e| e.path.is_empty());
        let mut nodes = vec![Node { entry: root, nlink: 2, parent: 1 }];
        let mut inode_of: HashMap<&[u8], u64> = HashMap::from([(&b""[..], 1)]);
        let mut children: HashMap<u64, Vec<(Vec<u8>, u64)>> = HashMap::new();
        for (i, e) in entries.iter().enumerate().filter(|(_, e)| !e.path.is_empty()) {
            let dir = inode_of.get(parent(&e.path)).copied().unwrap_or(1);
            let ino = match (e.kind, e.link_target.as_deref()) {
                (EntryKind::HardLink, Some(target)) => match inode_of.get(target) {
                    Some(&ino) => {
                        nodes[ino as usize - 1].nlink += 1;
                        ino
                    }
                    None => continue,
                },
                _ => {
                    let is_dir = e.kind == EntryKind::Directory;
                    nodes.push(Node { entry: Some(i), nlink: if is_dir { 2 } else { 1 }, parent: dir });
                    if is_dir {
                        nodes[dir as usize - 1].nlink += 1;
                    }
                    nodes.len() as u64
                }
            };
            inode_of.insert(&e.path, ino);
            children.entry(dir).or_default().push((base_name(&e.path).to_vec(), ino));
        }
        ArchiveFs { indexed, client, runtime, nodes, children, cache: Mutex::default(), sparse: Mutex::default() }
    }

    fn node(&self, ino: INodeNo) -> Option<&Node> {
        self.nodes.get((ino.0 as usize).checked_sub(1)?)
    }

    fn entry(&self, ino: INodeNo) -> Option<&IndexEntry> {
        self.node(ino)?.entry.map(|i| &self.indexed.index.entries[i])
    }

    fn attr(&self, ino: INodeNo) -> Option<FileAttr> {
        let node = self.node(ino)?;
        let Some(e) = self.entry(ino) else {
            return Some(attr_of(ino, FileType::Directory, 0, 0o755, 0, 0, UNIX_EPOCH, node.nlink, 0));
        };
        let kind = match e.kind {
            EntryKind::File | EntryKind::HardLink => FileType::RegularFile,
            EntryKind::Directory => FileType::Directory,
            EntryKind::Symlink => FileType::Symlink,
            EntryKind::CharDevice => FileType::CharDevice,
            EntryKind::BlockDevice => FileType::BlockDevice,
            EntryKind::Fifo => FileType::NamedPipe,
        };
        let size = match e.kind {
            EntryKind::Symlink => e.link_target.as_ref().map_or(0, |t| t.len() as u64),
            _ => e.size,
        };
        let mtime = if e.mtime >= 0 {
            UNIX_EPOCH + Duration::new(e.mtime as u64, e.mtime_nsec)
        } else {
            UNIX_EPOCH - Duration::from_secs(e.mtime.unsigned_abs()) + Duration::from_nanos(e.mtime_nsec as u64)
        };
        let rdev = e.device.map_or(0, |(major, minor)| nix::sys::stat::makedev(major as u64, minor as u64) as u32);
        let mut attr = attr_of(ino, kind, size, e.mode as u16, e.uid as u32, e.gid as u32, mtime, node.nlink, rdev);
        if e.sparse {
            // What the data regions occupy, so `cp --sparse=auto` sees a sparse file.
            attr.blocks = (e.span - e.header_len).div_ceil(512);
        }
        Some(attr)
    }

    /// `len` bytes of the uncompressed stream at `start`, from the cache or by ranged GETs.
    fn read_stream(&self, start: u64, len: u64) -> Result<Vec<u8>, GetError> {
        let index = &self.indexed.index;
        let wanted = index.member_range(start, start + len);
        let missing: Vec<usize> = {
            let cache = self.cache.lock().expect("cache lock");
            wanted.clone().filter(|m| !cache.members.contains_key(m)).collect()
        };
        if let (Some(&first), Some(&last)) = (missing.first(), missing.last()) {
            let last = (last + READ_AHEAD_MEMBERS).min(index.members.len() - 1);
            // One GET per segment the members lie in.
            let mut ranges: Vec<(FetchRange, usize)> = Vec::new();
            for (i, m) in index.members.iter().enumerate().take(last + 1).skip(first) {
                if !ranges.last_mut().is_some_and(|(r, _)| r.extend(m)) {
                    ranges.push((FetchRange::of(m), i));
                }
            }
            let keys = self.indexed.segment_keys();
            for (range, first_member) in ranges {
                let key = keys.get(range.segment as usize).cloned().unwrap_or_default();
                let piece = self.runtime.block_on(fetch_range(
                    self.client.clone(),
                    self.indexed.location.bucket.clone(),
                    key,
                    range,
                    self.indexed.object.compression,
                ))?;
                let mut cache = self.cache.lock().expect("cache lock");
                let mut at = 0usize;
                for m in first_member..first_member + range.members as usize {
                    let len = index.members[m].len as usize;
                    cache.insert(m, piece.bytes.slice(at..at + len));
                    at += len;
                }
            }
        }
        let cache = self.cache.lock().expect("cache lock");
        let mut out = Vec::with_capacity(len as usize);
        for m in wanted {
            let member = &index.members[m];
            let bytes = cache.members.get(&m).ok_or_else(|| GetError::RangeMismatch {
                url: self.indexed.location.url_of(&self.indexed.object.key),
                problem: format!("member {m} is not in the cache right after it was fetched"),
            })?;
            let from = start.max(member.offset) - member.offset;
            let to = (start + len).min(member.offset + member.len) - member.offset;
            out.extend_from_slice(&bytes[from as usize..to as usize]);
        }
        Ok(out)
    }

    /// Bytes `offset..offset + len` of a file's content.
    fn read_file(&self, ino: INodeNo, e: &IndexEntry, offset: u64, len: u64) -> Result<Vec<u8>, GetError> {
        let len = len.min(e.size.saturating_sub(offset));
        let data = e.offset + e.header_len;
        if !e.sparse {
            return self.read_stream(data + offset, len);
        }
        let regions = {
            let known = self.sparse.lock().expect("sparse lock").get(&ino.0).cloned();
            match known {
                Some(regions) => regions,
                None => {
                    let headers = self.read_stream(e.offset, e.header_len)?;
                    let regions = sparse_regions(&headers).map_err(|source| GetError::Index {
                        url: self.indexed.location.url_of(&self.indexed.object.key),
                        source,
                    })?;
                    self.sparse.lock().expect("sparse lock").insert(ino.0, regions.clone());
                    regions
                }
            }
        };
        let mut out = vec![0u8; len as usize];
        let mut stored = data;
        for (region, region_len) in regions {
            let from = offset.max(region);
            let to = (offset + len).min(region + region_len);
            if from < to {
                let bytes = self.read_stream(stored + (from - region), to - from)?;
                out[(from - offset) as usize..(to - offset) as usize].copy_from_slice(&bytes);
            }
            stored += region_len;
        }
        Ok(out)
    }
}

#[allow(clippy::too_many_arguments)]
fn attr_of(
    ino: INodeNo,
    kind: FileType,
    size: u64,
    perm: u16,
    uid: u32,
    gid: u32,
    mtime: SystemTime,
    nlink: u32,
    rdev: u32,
) -> FileAttr {
    FileAttr {
        ino,
        size,
        blocks: size.div_ceil(512),
        atime: mtime,
        mtime,
        ctime: mtime,
        crtime: mtime,
        kind,
        perm,
        nlink,
        uid,
        gid,
        rdev,
        blksize: 4096,
        flags: 0,
    }
}

impl Filesystem for ArchiveFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = self.children.get(&parent.0).and_then(|c| c.iter().find(|(n, _)| n.as_slice() == name.as_bytes()));
        match found.and_then(|(_, ino)| self.attr(INodeNo(*ino))) {
            Some(attr) => reply.entry(&TTL, &attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.entry(ino).and_then(|e| e.link_target.as_deref()) {
            Some(target) => reply.data(target),
            None => reply.error(Errno::EINVAL),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(e) = self.entry(ino).filter(|e| e.kind == EntryKind::File) else {
            return reply.error(Errno::EISDIR);
        };
        match self.read_file(ino, e, offset, size as u64) {
            Ok(bytes) => reply.data(&bytes),
            Err(error) => {
                tracing::error!(%error, path = %crate::get::show(&e.path), offset, size, "read failed");
                reply.error(Errno::EIO);
            }
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let Some(node) = self.node(ino) else { return reply.error(Errno::ENOENT) };
        let mut listing: Vec<(u64, FileType, &[u8])> =
            vec![(ino.0, FileType::Directory, b"."), (node.parent, FileType::Directory, b"..")];
        for (name, child) in self.children.get(&ino.0).into_iter().flatten() {
            let kind = self.attr(INodeNo(*child)).map_or(FileType::RegularFile, |a| a.kind);
            listing.push((*child, kind, name));
        }
        for (i, (child, kind, name)) in listing.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }
}

/// Mounts `fs` read-only at `mountpoint` and serves it until it is unmounted or `stop` fires
/// (then it unmounts).
pub async fn serve(
    fs: ArchiveFs,
    mountpoint: &Path,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName(format!("backup-archiver:{}", fs.indexed.location)),
        fuser::MountOption::Subtype("backup-archiver".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    config.acl = fuser::SessionACL::All;
    let session = fuser::spawn_mount(fs, mountpoint, &config)?;
    let finished = tokio::task::spawn_blocking(move || session.join());
    tokio::pin!(finished);
    tokio::select! {
        result = &mut finished => return result.map_err(std::io::Error::other)?,
        () = stop => {}
    }
    // Lazily: a process still inside the mount does not keep it (or us) alive.
    nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH).map_err(std::io::Error::from)?;
    finished.await.map_err(std::io::Error::other)?
}
