//! The index of a tar object: every entry (path, type, size, mode, owner, mtime, link target, the
//! offset of its first header in the uncompressed stream, the SHA-256 of a file's content) and the
//! table of its gzip members or zstd frames (uncompressed offset -> segment and compressed
//! offset), so one file can be read from a multi-terabyte archive by fetching only the members
//! that hold it.
//!
//! The worker writes it while it streams and uploads it before the manifest, which names it
//! ([`crate::manifest::ArchivedObject::index`]). On S3 it is [`MAGIC`], a format byte, then one
//! zstd frame holding:
//! - entries, each `1`, kind (`0x80` set for a sparse file), path (bytes shared with the
//!   previous path, then the rest), offset (delta from the previous entry's end), span, the
//!   length of its headers, size, mode, uid, gid, mtime (zigzag), mtime nanoseconds, the major
//!   and minor of devices, the link target of links, the SHA-256 of files; then `0`;
//! - members: their count, then per member its uncompressed and compressed lengths and the number
//!   of segments it starts after the previous one (0 or 1).
//!
//! Numbers are LEB128 varints, so a typical entry costs a few bytes plus its name's new part and
//! a file's 32-byte hash, and a member three to five bytes, before zstd.

use std::io::{self, Read, Write};

use serde::Serialize;

/// The first bytes of an index object.
pub const MAGIC: &[u8; 8] = b"BAINDEX\n";
/// Bumped only on an incompatible change; a reader refuses a newer format.
pub const INDEX_FORMAT: u8 = 1;
/// Set in an entry's kind byte for a sparse file.
const SPARSE_FLAG: u8 = 0x80;
/// zstd's default level: the index is small next to the archive, so speed matters more.
const ZSTD_LEVEL: i32 = 3;

/// What an entry is, as the tar header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
    /// Another name of an earlier entry (`link_target` names it).
    HardLink,
    CharDevice,
    BlockDevice,
    Fifo,
}

impl EntryKind {
    fn code(self) -> u8 {
        match self {
            EntryKind::File => 0,
            EntryKind::Directory => 1,
            EntryKind::Symlink => 2,
            EntryKind::HardLink => 3,
            EntryKind::CharDevice => 4,
            EntryKind::BlockDevice => 5,
            EntryKind::Fifo => 6,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => EntryKind::File,
            1 => EntryKind::Directory,
            2 => EntryKind::Symlink,
            3 => EntryKind::HardLink,
            4 => EntryKind::CharDevice,
            5 => EntryKind::BlockDevice,
            6 => EntryKind::Fifo,
            _ => return None,
        })
    }

    fn has_target(self) -> bool {
        matches!(self, EntryKind::Symlink | EntryKind::HardLink)
    }

    pub fn is_device(self) -> bool {
        matches!(self, EntryKind::CharDevice | EntryKind::BlockDevice)
    }

    /// The letter `ls -l` shows.
    pub fn letter(self) -> char {
        match self {
            EntryKind::File => '-',
            EntryKind::Directory => 'd',
            EntryKind::Symlink => 'l',
            EntryKind::HardLink => 'h',
            EntryKind::CharDevice => 'c',
            EntryKind::BlockDevice => 'b',
            EntryKind::Fifo => 'p',
        }
    }
}

/// One tar entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The archive name, normalised: no leading `./`, no trailing `/`, `""` for the root. Bytes,
    /// because file names need not be UTF-8.
    pub path: Vec<u8>,
    pub kind: EntryKind,
    /// The file's size (a sparse file's apparent size); 0 for other kinds.
    pub size: u64,
    /// All 12 mode bits.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
    /// A character or block device's major and minor numbers.
    pub device: Option<(u32, u32)>,
    /// A symlink's target, or the earlier entry a hard link names (normalised like `path`).
    pub link_target: Option<Vec<u8>>,
    /// Offset in the uncompressed stream of the entry's first header (its PAX or long-name header
    /// when it has one): a reader that starts there reads the whole entry.
    pub offset: u64,
    /// Bytes from `offset` to the entry's end (headers, data, padding).
    pub span: u64,
    /// Bytes from `offset` to the entry's data: a file that is not sparse holds its content,
    /// byte for byte, from `offset + header_len`.
    pub header_len: u64,
    /// A GNU sparse file: its data regions follow one another, and only a tar reader knows where
    /// each belongs.
    pub sparse: bool,
    /// SHA-256 of a file's content (holes of a sparse file read as zeros); `None` for other kinds.
    pub sha256: Option<[u8; 32]>,
}

impl IndexEntry {
    pub fn end(&self) -> u64 {
        self.offset + self.span
    }

    pub fn sha256_hex(&self) -> Option<String> {
        self.sha256.map(|h| h.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// One gzip member or zstd frame of the object's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Where its bytes start in the uncompressed stream.
    pub offset: u64,
    pub len: u64,
    /// The segment object that holds it (0: the object's own key).
    pub segment: u32,
    /// Where it starts in that segment.
    pub compressed_offset: u64,
    pub compressed_len: u64,
}

/// A member's lengths, as the compression stage produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberSize {
    pub len: u64,
    pub compressed_len: u64,
}

/// A whole index, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarIndex {
    pub entries: Vec<IndexEntry>,
    pub members: Vec<Member>,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("not an archive index (no {:?} at its start)", String::from_utf8_lossy(MAGIC))]
    NotAnIndex,
    #[error("index format {found} is newer than this tool understands ({INDEX_FORMAT})")]
    UnsupportedFormat { found: u8 },
    #[error("the index is damaged: {0}")]
    Damaged(String),
    #[error("cannot write the index: {0}")]
    Write(#[source] io::Error),
    #[error("the index's members do not match the stored segments: {0}")]
    Segments(String),
}

/// Writes an index as entries arrive: they go through zstd at once, so the worker holds the
/// compressed index, not the entries.
pub struct IndexWriter {
    zstd: zstd::stream::write::Encoder<'static, Vec<u8>>,
    previous_path: Vec<u8>,
    previous_end: u64,
    entries: u64,
}

impl IndexWriter {
    pub fn new() -> Result<Self, IndexError> {
        let mut out = MAGIC.to_vec();
        out.push(INDEX_FORMAT);
        let zstd = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL).map_err(IndexError::Write)?;
        Ok(IndexWriter { zstd, previous_path: Vec::new(), previous_end: 0, entries: 0 })
    }

    /// Adds the next entry; entries come in stream order.
    pub fn push(&mut self, entry: &IndexEntry) -> Result<(), IndexError> {
        assert!(entry.offset >= self.previous_end, "entries are pushed in stream order");
        let mut buf = Vec::with_capacity(64 + entry.path.len());
        buf.push(1);
        buf.push(entry.kind.code() | if entry.sparse { SPARSE_FLAG } else { 0 });
        let shared = entry.path.iter().zip(&self.previous_path).take_while(|(a, b)| a == b).count();
        put_varint(&mut buf, shared as u64);
        put_bytes(&mut buf, &entry.path[shared..]);
        put_varint(&mut buf, entry.offset - self.previous_end);
        put_varint(&mut buf, entry.span);
        put_varint(&mut buf, entry.header_len);
        put_varint(&mut buf, entry.size);
        put_varint(&mut buf, entry.mode as u64);
        put_varint(&mut buf, entry.uid);
        put_varint(&mut buf, entry.gid);
        put_varint(&mut buf, zigzag(entry.mtime));
        put_varint(&mut buf, entry.mtime_nsec as u64);
        if entry.kind.is_device() {
            let (major, minor) = entry.device.unwrap_or_default();
            put_varint(&mut buf, major as u64);
            put_varint(&mut buf, minor as u64);
        }
        if entry.kind.has_target() {
            put_bytes(&mut buf, entry.link_target.as_deref().unwrap_or_default());
        }
        if entry.kind == EntryKind::File {
            buf.extend_from_slice(&entry.sha256.unwrap_or_default());
        }
        self.zstd.write_all(&buf).map_err(IndexError::Write)?;
        self.previous_path.clone_from(&entry.path);
        self.previous_end = entry.end();
        self.entries += 1;
        Ok(())
    }

    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Ends the index with the member table: `members` in stream order, `segment_sizes` the
    /// stored size of each segment, in which the members lie back to back from its start (a zstd
    /// segment ends with its seek table after them).
    pub fn finish(mut self, members: &[MemberSize], segment_sizes: &[u64]) -> Result<Vec<u8>, IndexError> {
        let mut buf = vec![0];
        put_varint(&mut buf, members.len() as u64);
        let (mut segment, mut in_segment) = (0usize, 0u64);
        for m in members {
            // A member never spans two segments: it starts the next one when this one is full.
            let mut starts = 0;
            while segment < segment_sizes.len() && in_segment + m.compressed_len > segment_sizes[segment] {
                segment += 1;
                in_segment = 0;
                starts += 1;
            }
            if segment == segment_sizes.len() {
                return Err(IndexError::Segments("the members are longer than the segments".into()));
            }
            put_varint(&mut buf, m.len);
            put_varint(&mut buf, m.compressed_len);
            put_varint(&mut buf, starts);
            in_segment += m.compressed_len;
        }
        if segment + 1 < segment_sizes.len() {
            return Err(IndexError::Segments(format!(
                "the members end in segment {segment} of {}",
                segment_sizes.len()
            )));
        }
        self.zstd.write_all(&buf).map_err(IndexError::Write)?;
        self.zstd.finish().map_err(IndexError::Write)
    }
}

impl TarIndex {
    /// Reads an index object.
    pub fn parse(bytes: &[u8]) -> Result<TarIndex, IndexError> {
        let body = bytes.strip_prefix(MAGIC.as_slice()).ok_or(IndexError::NotAnIndex)?;
        let (&format, compressed) = body.split_first().ok_or(IndexError::NotAnIndex)?;
        if format > INDEX_FORMAT {
            return Err(IndexError::UnsupportedFormat { found: format });
        }
        let mut raw = Vec::new();
        zstd::stream::read::Decoder::new(compressed)
            .and_then(|mut d| d.read_to_end(&mut raw))
            .map_err(|e| IndexError::Damaged(format!("cannot decompress it: {e}")))?;
        let mut r = Reader { data: &raw };
        let mut entries: Vec<IndexEntry> = Vec::new();
        let (mut previous_path, mut previous_end): (Vec<u8>, u64) = (Vec::new(), 0);
        while r.byte()? == 1 {
            let code = r.byte()?;
            let kind = EntryKind::from_code(code & !SPARSE_FLAG).ok_or_else(|| damaged("unknown entry kind"))?;
            let shared = r.varint()? as usize;
            if shared > previous_path.len() {
                return Err(damaged("a path shares more bytes than the previous one has"));
            }
            let mut path = previous_path[..shared].to_vec();
            path.extend_from_slice(r.bytes()?);
            let offset = previous_end.checked_add(r.varint()?).ok_or_else(|| damaged("offset overflows"))?;
            let span = r.varint()?;
            let header_len = r.varint()?;
            let mut entry = IndexEntry {
                path,
                kind,
                header_len,
                sparse: code & SPARSE_FLAG != 0,
                size: r.varint()?,
                mode: u32::try_from(r.varint()?).map_err(|_| damaged("mode out of range"))?,
                uid: r.varint()?,
                gid: r.varint()?,
                mtime: unzigzag(r.varint()?),
                mtime_nsec: u32::try_from(r.varint()?).map_err(|_| damaged("nanoseconds out of range"))?,
                device: None,
                link_target: None,
                offset,
                span,
                sha256: None,
            };
            if kind.is_device() {
                let number = |n: u64| u32::try_from(n).map_err(|_| damaged("device number out of range"));
                entry.device = Some((number(r.varint()?)?, number(r.varint()?)?));
            }
            if kind.has_target() {
                entry.link_target = Some(r.bytes()?.to_vec());
            }
            if kind == EntryKind::File {
                entry.sha256 = Some(r.take(32)?.try_into().expect("32 bytes"));
            }
            previous_end = entry.end();
            previous_path.clone_from(&entry.path);
            entries.push(entry);
        }
        let count = r.varint()?;
        let mut members = Vec::with_capacity(count.min(1 << 24) as usize);
        let (mut offset, mut segment, mut compressed_offset) = (0u64, 0u32, 0u64);
        for _ in 0..count {
            let len = r.varint()?;
            let compressed_len = r.varint()?;
            let starts = u32::try_from(r.varint()?).map_err(|_| damaged("segment out of range"))?;
            if starts > 0 {
                segment += starts;
                compressed_offset = 0;
            }
            members.push(Member { offset, len, segment, compressed_offset, compressed_len });
            offset += len;
            compressed_offset += compressed_len;
        }
        if !r.data.is_empty() {
            return Err(damaged("bytes after the member table"));
        }
        Ok(TarIndex { entries, members })
    }

    /// The entry named `path` (`./a/b`, `a/b/` and `a/b` name the same entry).
    pub fn entry(&self, path: &[u8]) -> Option<&IndexEntry> {
        let path = normalize(path);
        self.entries.iter().find(|e| e.path == path)
    }

    /// The entries directly inside the directory `dir` (`""`: the root), in archive order.
    pub fn children<'a>(&'a self, dir: &[u8]) -> impl Iterator<Item = &'a IndexEntry> + 'a {
        let dir = normalize(dir).to_vec();
        self.entries.iter().filter(move |e| !e.path.is_empty() && parent(&e.path) == dir.as_slice())
    }

    /// What `get` must read to restore `paths`: each entry, everything under a directory, and
    /// the target of every hard link (whose content lives there), in stream order, each once.
    /// Returns the first path that names no entry as the error.
    pub fn select(&self, paths: &[Vec<u8>]) -> Result<Vec<&IndexEntry>, Vec<u8>> {
        let mut wanted = vec![false; self.entries.len()];
        for path in paths {
            let path = normalize(path);
            let position = self.entries.iter().position(|e| e.path == path).ok_or_else(|| path.to_vec())?;
            wanted[position] = true;
            if self.entries[position].kind == EntryKind::Directory {
                for (i, e) in self.entries.iter().enumerate() {
                    if is_under(&e.path, path) {
                        wanted[i] = true;
                    }
                }
            }
        }
        let targets: Vec<usize> = (0..self.entries.len())
            .filter(|&i| wanted[i] && self.entries[i].kind == EntryKind::HardLink)
            .filter_map(|i| {
                let target = self.entries[i].link_target.as_deref()?;
                self.entries[..i].iter().position(|e| e.path == target)
            })
            .collect();
        for i in targets {
            wanted[i] = true;
        }
        Ok(self.entries.iter().zip(wanted).filter(|(_, w)| *w).map(|(e, _)| e).collect())
    }

    /// The members that hold the uncompressed bytes `start..end`, in order.
    pub fn members_for(&self, start: u64, end: u64) -> &[Member] {
        &self.members[self.member_range(start, end)]
    }

    /// The positions in `members` of the members that hold the uncompressed bytes `start..end`.
    pub fn member_range(&self, start: u64, end: u64) -> std::ops::Range<usize> {
        let first = self.members.partition_point(|m| m.offset + m.len <= start);
        let last = self.members.partition_point(|m| m.offset < end);
        first..last.max(first)
    }

    /// The byte ranges to fetch for `entries`: the members holding each entry, adjacent and
    /// shared members of one segment merged into one range of at most `max_members` members (a
    /// reader holds one range's bytes at a time).
    pub fn ranges_for(&self, entries: &[&IndexEntry], max_members: u32) -> Vec<FetchRange> {
        let mut ranges: Vec<FetchRange> = Vec::new();
        for e in entries {
            for m in self.members_for(e.offset, e.end()) {
                let merged = match ranges.last_mut() {
                    // Shared with the previous entry: already fetched.
                    Some(r) if r.end > m.offset => true,
                    Some(r) if r.compressed_end == m.compressed_offset && r.members < max_members => r.extend(m),
                    _ => false,
                };
                if !merged {
                    ranges.push(FetchRange::of(m));
                }
            }
        }
        ranges
    }
}

/// Consecutive whole members of one segment: one ranged GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FetchRange {
    pub segment: u32,
    /// The byte range in the segment object (end exclusive).
    pub compressed_start: u64,
    pub compressed_end: u64,
    /// The uncompressed bytes it decompresses to (end exclusive).
    pub start: u64,
    pub end: u64,
    /// How many members it holds.
    pub members: u32,
}

impl FetchRange {
    /// The range of one member.
    pub fn of(m: &Member) -> Self {
        FetchRange {
            segment: m.segment,
            compressed_start: m.compressed_offset,
            compressed_end: m.compressed_offset + m.compressed_len,
            start: m.offset,
            end: m.offset + m.len,
            members: 1,
        }
    }

    /// Adds the member that follows the range in the same segment; `false` (and nothing added)
    /// for a member of another segment.
    pub fn extend(&mut self, m: &Member) -> bool {
        if m.segment != self.segment {
            return false;
        }
        self.compressed_end = m.compressed_offset + m.compressed_len;
        self.end = m.offset + m.len;
        self.members += 1;
        true
    }
}

/// A tar name as the index keeps it: no leading `./` or `/`, no trailing `/`.
pub fn normalize(path: &[u8]) -> &[u8] {
    let mut p = path;
    loop {
        if let Some(rest) = p.strip_prefix(b"./") {
            p = rest;
        } else if let Some(rest) = p.strip_prefix(b"/") {
            p = rest;
        } else {
            break;
        }
    }
    while let Some(rest) = p.strip_suffix(b"/") {
        p = rest;
    }
    if p == b"." {
        return b"";
    }
    p
}

/// The directory that holds `path` (`""` for a top-level name).
pub fn parent(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => &path[..i],
        None => b"",
    }
}

/// The last component of `path`.
pub fn base_name(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Whether `path` lies below the directory `dir` (`""`: the root holds everything).
pub fn is_under(path: &[u8], dir: &[u8]) -> bool {
    if dir.is_empty() {
        return !path.is_empty();
    }
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

/// Shell-style matching of one name, as `find -name` does: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`,
/// and `\` to quote the next byte.
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where to resume after the last `*`: the pattern just past it and the name it has consumed.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, n));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => match_class(pattern, p, name[n]),
            Some(b'\\') if p + 1 < pattern.len() => (pattern[p + 1] == name[n]).then_some(p + 2),
            Some(&c) => (c == name[n]).then_some(p + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                n += 1;
            }
            (None, Some((after_star, consumed))) => {
                p = after_star;
                n = consumed + 1;
                star = Some((after_star, consumed + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

/// Matches `c` against the class opening at `pattern[open]`; the position after the class, or
/// `None`. An unclosed `[` is a literal.
fn match_class(pattern: &[u8], open: usize, c: u8) -> Option<usize> {
    let mut i = open + 1;
    let negate = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pattern.len() && (first || pattern[i] != b']') {
        first = false;
        if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            matched |= (pattern[i]..=pattern[i + 2]).contains(&c);
            i += 3;
        } else {
            matched |= pattern[i] == c;
            i += 1;
        }
    }
    if i >= pattern.len() {
        return (c == b'[').then_some(open + 1);
    }
    (matched != negate).then_some(i + 1)
}

fn damaged(why: &str) -> IndexError {
    IndexError::Damaged(why.to_string())
}

fn put_varint(buf: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], IndexError> {
        if n > self.data.len() {
            return Err(damaged("it ends early"));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, IndexError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, IndexError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(damaged("a number is too long"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], IndexError> {
        let n = self.varint()?;
        self.take(usize::try_from(n).map_err(|_| damaged("a length is too large"))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind, offset: u64, span: u64) -> IndexEntry {
        IndexEntry {
            path: path.as_bytes().to_vec(),
            kind,
            size: if kind == EntryKind::File { span - 512 } else { 0 },
            mode: 0o4755,
            uid: 1000,
            gid: 70_000,
            mtime: -5,
            mtime_nsec: 999_999_999,
            device: kind.is_device().then_some((240, 70_000)),
            link_target: kind.has_target().then(|| b"a/f".to_vec()),
            offset,
            span,
            header_len: 512,
            sparse: path == "a/f",
            sha256: (kind == EntryKind::File).then_some([7; 32]),
        }
    }

    fn sample() -> (Vec<IndexEntry>, Vec<MemberSize>, Vec<u64>) {
        let mut entries = vec![
            entry("", EntryKind::Directory, 0, 512),
            entry("a", EntryKind::Directory, 512, 1024),
            entry("a/f", EntryKind::File, 1536, 3 << 20),
            entry("a/h", EntryKind::HardLink, 1536 + (3 << 20), 512),
            entry("a/s", EntryKind::Symlink, 2048 + (3 << 20), 512),
        ];
        entries.push(IndexEntry {
            path: b"b/\xff\xfe".to_vec(),
            ..entry("x", EntryKind::CharDevice, (3 << 20) + 4096, 512)
        });
        let members = vec![
            MemberSize { len: 1 << 20, compressed_len: 100 },
            MemberSize { len: 1 << 20, compressed_len: 200 },
            MemberSize { len: 1 << 20, compressed_len: 300 },
            MemberSize { len: 5120, compressed_len: 40 },
        ];
        (entries, members, vec![300, 340])
    }

    fn written() -> Vec<u8> {
        let (entries, members, segments) = sample();
        let mut w = IndexWriter::new().unwrap();
        for e in &entries {
            w.push(e).unwrap();
        }
        w.finish(&members, &segments).unwrap()
    }

    #[test]
    fn round_trips_entries_and_places_members_in_their_segments() {
        let index = TarIndex::parse(&written()).unwrap();
        assert_eq!(index.entries, sample().0);
        assert_eq!(
            index.members,
            vec![
                Member { offset: 0, len: 1 << 20, segment: 0, compressed_offset: 0, compressed_len: 100 },
                Member { offset: 1 << 20, len: 1 << 20, segment: 0, compressed_offset: 100, compressed_len: 200 },
                Member { offset: 2 << 20, len: 1 << 20, segment: 1, compressed_offset: 0, compressed_len: 300 },
                Member { offset: 3 << 20, len: 5120, segment: 1, compressed_offset: 300, compressed_len: 40 },
            ]
        );
    }

    #[test]
    fn refuses_other_files_newer_formats_and_damage() {
        assert!(matches!(TarIndex::parse(b"{\"format\":1}"), Err(IndexError::NotAnIndex)));
        let mut newer = written();
        newer[MAGIC.len()] = INDEX_FORMAT + 1;
        assert!(matches!(TarIndex::parse(&newer), Err(IndexError::UnsupportedFormat { found: 2 })));
        let bytes = written();
        assert!(matches!(TarIndex::parse(&bytes[..bytes.len() - 3]), Err(IndexError::Damaged(_))));
    }

    #[test]
    fn refuses_members_that_do_not_fit_the_segments() {
        let (_, members, _) = sample();
        let w = IndexWriter::new().unwrap();
        assert!(matches!(w.finish(&members, &[250, 330]), Err(IndexError::Segments(_))));
        let w = IndexWriter::new().unwrap();
        assert!(matches!(w.finish(&members, &[300, 340, 10]), Err(IndexError::Segments(_))));
        // Bytes after a segment's members (a zstd seek table) are no member.
        let w = IndexWriter::new().unwrap();
        let index = TarIndex::parse(&w.finish(&members, &[317, 357]).unwrap()).unwrap();
        assert_eq!((index.members[2].segment, index.members[2].compressed_offset), (1, 0));
    }

    #[test]
    fn costs_a_few_bytes_per_member() {
        let members = vec![MemberSize { len: 1 << 20, compressed_len: 412_345 }; 10_000];
        let w = IndexWriter::new().unwrap();
        let bytes = w.finish(&members, &[412_345 * 10_000]).unwrap();
        assert!(bytes.len() < 10_000 * 5, "{} bytes for 10,000 members", bytes.len());
    }

    #[test]
    fn selects_directories_recursively_and_hard_link_targets() {
        let index = TarIndex::parse(&written()).unwrap();
        let paths =
            |v: Vec<&IndexEntry>| v.iter().map(|e| String::from_utf8_lossy(&e.path).into_owned()).collect::<Vec<_>>();
        assert_eq!(paths(index.select(&[b"./a/h".to_vec()]).unwrap()), ["a/f", "a/h"]);
        assert_eq!(paths(index.select(&[b"a/".to_vec()]).unwrap()), ["a", "a/f", "a/h", "a/s"]);
        assert_eq!(index.select(&[b"nope".to_vec()]).unwrap_err(), b"nope");
        assert_eq!(paths(index.children(b".").collect()), ["a"]);
        assert_eq!(paths(index.children(b"b").collect()), ["b/\u{fffd}\u{fffd}"]);
        assert_eq!(paths(index.children(b"a").collect()), ["a/f", "a/h", "a/s"]);
    }

    #[test]
    fn fetches_only_the_members_of_an_entry_and_merges_neighbours() {
        let index = TarIndex::parse(&written()).unwrap();
        let range = |segment, compressed_start, compressed_end, start, end, members| FetchRange {
            segment,
            compressed_start,
            compressed_end,
            start,
            end,
            members,
        };
        let s = index.entry(b"a/s").unwrap();
        assert_eq!(index.ranges_for(&[s], 16), vec![range(1, 300, 340, 3 << 20, (3 << 20) + 5120, 1)]);
        let f = index.entry(b"a/f").unwrap();
        assert_eq!(
            index.ranges_for(&[f], 16),
            vec![range(0, 0, 300, 0, 2 << 20, 2), range(1, 0, 340, 2 << 20, (3 << 20) + 5120, 2)]
        );
        assert_eq!(index.ranges_for(&[f], 1).len(), 4, "at most one member per range");
        // Every entry of the archive: each member once, in order.
        let all: Vec<&IndexEntry> = index.entries.iter().collect();
        let ranges = index.ranges_for(&all, 1);
        assert_eq!(ranges.len(), 4, "{ranges:?}");
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        let first = index.entry(b"").unwrap();
        assert_eq!(index.members_for(first.offset, first.end()).len(), 1);
    }

    #[test]
    fn globs_match_like_find_name() {
        for (pattern, name, matches) in [
            ("*.xlsx", "budget 2024.xlsx", true),
            ("*.xlsx", "budget.xls", false),
            ("b?dget*", "budget.xlsx", true),
            ("[a-c]*", "budget", true),
            ("[!a-c]*", "budget", false),
            ("*a*b*", "xaxxbx", true),
            ("*a*b", "xaxxbx", false),
            ("\\*", "*", true),
            ("[", "[", true),
            ("", "", true),
            ("*", "", true),
        ] {
            assert_eq!(glob_match(pattern.as_bytes(), name.as_bytes()), matches, "{pattern} ~ {name}");
        }
    }

    #[test]
    fn normalises_names() {
        assert_eq!(normalize(b"./a/b/"), b"a/b");
        assert_eq!(normalize(b"."), b"");
        assert_eq!(normalize(b"./"), b"");
        assert_eq!(normalize(b"/etc"), b"etc");
        assert!(is_under(b"a/b", b"a") && !is_under(b"ab", b"a") && is_under(b"a", b""));
        assert_eq!((parent(b"a/b/c"), base_name(b"a/b/c")), (&b"a/b"[..], &b"c"[..]));
    }
}
