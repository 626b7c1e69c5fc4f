//! Restoring single files through an archive's index: only the byte ranges of the gzip members
//! or zstd frames that hold the wanted entries are fetched (coalesced, several in flight), their
//! entries are extracted with all their metadata as `restore` does ([`extract_tree`]), and what
//! was written is checked against the index (type, size, SHA-256, link target) before it is
//! moved into place: a damaged or tampered index never leaves a wrong file behind.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use archiver_core::index::{normalize, EntryKind, FetchRange, IndexEntry, IndexError, TarIndex};
use archiver_core::manifest::{ArchiveMode, ArchivedObject, Compression, Manifest};
use archiver_core::s3_location::S3Location;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::Client;
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::restore::{extract_tree, set_mtime};
use crate::thaw::{self, not_readable_message, ObjectState, Readability, ThawError, ThawRequest};
use crate::verify::{fetch_manifest, VerifyError};

/// Members per ranged GET at most: 16 MiB of 1 MiB chunks, so a reader holds a bounded amount
/// whatever the size of the file, and one request still carries many members.
const RANGE_MEMBERS: u32 = 16;
/// Ranged GETs in flight: S3 serves each connection at a few tens of MB/s, so several keep a
/// large file's restore from waiting on one.
const RANGES_IN_FLIGHT: usize = 4;
/// Two zero blocks end a tar stream.
const END_OF_ARCHIVE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error(transparent)]
    Manifest(#[from] VerifyError),
    #[error("{location} has no files-mode object{}", partition.map(|n| format!(" for partition {n}")).unwrap_or_default())]
    NoFilesObject { location: String, partition: Option<u32> },
    #[error("{location} has {count} files-mode objects (partitions {numbers}); choose one with --partition")]
    SeveralFilesObjects { location: String, count: usize, numbers: String },
    #[error("{key} has no index (archived before indexes existed): use `restore`, which reads the whole object")]
    NoIndex { key: String },
    #[error("cannot read the index {url}: {message}")]
    ReadIndex { url: String, message: String },
    #[error("the index {url} does not match the manifest: {problem}")]
    IndexMismatch { url: String, problem: String },
    #[error("the index {url}: {source}")]
    Index {
        url: String,
        #[source]
        source: IndexError,
    },
    #[error("no entry {path} in the archive")]
    NotFound { path: String },
    #[error("{path} is a {kind:?}, not a file: only a file can be written to stdout")]
    NotAFile { path: String, kind: EntryKind },
    #[error("cannot read {url}: {message}")]
    Download { url: String, message: String },
    #[error("{url}: {problem}; the index does not match the archive")]
    RangeMismatch { url: String, problem: String },
    #[error("{path} read from the archive does not match the index: {problem}")]
    Check { path: String, problem: String },
    #[error("cannot write to {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("a get task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Thaw(#[from] ThawError),
    #[error("{}", not_readable_message(location, objects))]
    NotReadable { location: S3Location, objects: Vec<ObjectState> },
}

/// An archive's files-mode object and its index, read and checked against the manifest.
#[derive(Debug, Clone)]
pub struct Indexed {
    pub location: S3Location,
    pub manifest: Manifest,
    pub object: ArchivedObject,
    pub index: TarIndex,
    /// Bytes of the index object.
    pub index_size: u64,
}

impl Indexed {
    /// The segment keys of the object, in order.
    pub fn segment_keys(&self) -> Vec<String> {
        self.object.stored_segments().into_iter().map(|s| s.key).collect()
    }

    /// Checks that the segments `segments` (all, with `None`) can be read now; with `thaw`,
    /// starts a restore of those in a Glacier class first (and of no other object).
    pub async fn ensure_readable(
        &self,
        client: &Client,
        segments: Option<&[u32]>,
        thaw: Option<ThawRequest>,
    ) -> Result<(), GetError> {
        let all = self.segment_keys();
        let keys: Vec<String> = match segments {
            None => all,
            Some(wanted) => {
                let mut wanted = wanted.to_vec();
                wanted.sort_unstable();
                wanted.dedup();
                wanted.iter().filter_map(|&s| all.get(s as usize).cloned()).collect()
            }
        };
        let mut states = thaw::states(client, &self.location, &keys).await?;
        if let Some(request) = thaw {
            states = thaw::thaw(client, &self.location, states, request).await?;
        }
        if states.iter().all(|s| s.readability == Readability::Readable) {
            return Ok(());
        }
        Err(GetError::NotReadable { location: self.location.clone(), objects: states })
    }
}

/// Reads the manifest under `location`, chooses its files-mode object (the one of `partition`
/// when there are several), and reads its index, which must have the size and SHA-256 the
/// manifest records.
pub async fn open_index(client: &Client, location: &S3Location, partition: Option<u32>) -> Result<Indexed, GetError> {
    let manifest = fetch_manifest(client, location).await?;
    let files: Vec<&ArchivedObject> = manifest
        .objects
        .iter()
        .filter(|o| o.mode == ArchiveMode::Files)
        .filter(|o| partition.is_none() || o.partition.as_ref().map(|p| p.number) == partition)
        .collect();
    let object = match files.as_slice() {
        [] => return Err(GetError::NoFilesObject { location: location.to_string(), partition }),
        [one] => (*one).clone(),
        several => {
            let numbers: Vec<String> =
                several.iter().filter_map(|o| o.partition.as_ref().map(|p| p.number.to_string())).collect();
            return Err(GetError::SeveralFilesObjects {
                location: location.to_string(),
                count: several.len(),
                numbers: numbers.join(", "),
            });
        }
    };
    let reference = object.index.clone().ok_or_else(|| GetError::NoIndex { key: object.key.clone() })?;
    let url = location.url_of(&reference.key);
    let read_err = |message: String| GetError::ReadIndex { url: url.clone(), message };
    let output = client
        .get_object()
        .bucket(&location.bucket)
        .key(&reference.key)
        .send()
        .await
        .map_err(|e| read_err(DisplayErrorContext(e).to_string()))?;
    let bytes = output.body.collect().await.map_err(|e| read_err(e.to_string()))?.into_bytes();
    let sha256 = format!("{:x}", Sha256::digest(&bytes));
    if bytes.len() as u64 != reference.size || sha256 != reference.sha256 {
        return Err(GetError::IndexMismatch {
            url,
            problem: format!(
                "{} bytes with SHA-256 {sha256}, the manifest says {} bytes with {}",
                bytes.len(),
                reference.size,
                reference.sha256
            ),
        });
    }
    let index = TarIndex::parse(&bytes).map_err(|source| GetError::Index { url: url.clone(), source })?;
    let stream_len: u64 = index.members.iter().map(|m| m.len).sum();
    if stream_len != object.bytes_in {
        return Err(GetError::IndexMismatch {
            url,
            problem: format!("its members hold {stream_len} bytes, the stream has {}", object.bytes_in),
        });
    }
    Ok(Indexed { location: location.clone(), manifest, object, index, index_size: reference.size })
}

/// What `get` restored and what it cost.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GetReport {
    pub location: String,
    pub object: String,
    pub entries: Vec<GotEntry>,
    /// Ranged GETs made, and the bytes they fetched (the index not included).
    pub ranges: usize,
    pub bytes_fetched: u64,
    pub index_bytes: u64,
    /// The size of the whole stored object, for comparison.
    pub object_bytes: u64,
    pub seconds: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct GotEntry {
    /// The archive name (non-UTF-8 bytes replaced).
    pub path: String,
    pub kind: EntryKind,
    pub size: u64,
    /// Where it was written (non-UTF-8 bytes as `\xNN`); absent for stdout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_to: Option<String>,
}

/// Restores the entries `paths` (a directory with everything under it; a hard link with the entry
/// it names) into `dir`, under their archive names.
pub async fn get_to_dir(
    client: &Client,
    indexed: &Indexed,
    paths: &[Vec<u8>],
    dir: &Path,
    thaw: Option<ThawRequest>,
) -> Result<GetReport, GetError> {
    let clock = Instant::now();
    let entries: Vec<IndexEntry> = indexed
        .index
        .select(paths)
        .map_err(|path| GetError::NotFound { path: show(&path) })?
        .into_iter()
        .cloned()
        .collect();
    let refs: Vec<&IndexEntry> = entries.iter().collect();
    let ranges = indexed.index.ranges_for(&refs, RANGE_MEMBERS);
    let segments: Vec<u32> = ranges.iter().map(|r| r.segment).collect();
    indexed.ensure_readable(client, Some(&segments), thaw).await?;
    let reader = SpanReader::new(fetch_ranges(client, indexed, &ranges), &entries);
    let write_err = |source| GetError::Write { path: dir.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let staging = tempfile::Builder::new().prefix(".backup-archiver-get.").tempdir_in(dir).map_err(write_err)?;
    let dest = dir.to_path_buf();
    let checked = entries.clone();
    let root_selected = entries.iter().any(|e| e.path.is_empty());
    tokio::task::spawn_blocking(move || -> Result<(), GetError> {
        let extracted = extract_tree(reader, staging.path());
        check_extracted(staging.path(), &checked, extracted)?;
        let write_err = |source| GetError::Write { path: dest.clone(), source };
        // The archive's root directory is the destination itself, as with `restore` and GNU tar.
        let root = root_selected.then(|| DirMetadata::read(staging.path())).transpose().map_err(write_err)?;
        move_into(staging.path(), &dest).map_err(write_err)?;
        staging.close().map_err(write_err)?;
        root.map(|root| root.apply(&dest)).transpose().map_err(write_err)?;
        Ok(())
    })
    .await??;
    let got = entries
        .iter()
        .map(|e| GotEntry {
            path: show(&e.path),
            kind: e.kind,
            size: e.size,
            written_to: Some(show(dir.join(OsStr::from_bytes(&e.path)).as_os_str().as_bytes())),
        })
        .collect();
    Ok(report(indexed, got, &ranges, clock))
}

/// Writes the content of the file `path` (or of the file a hard link names) to `out`. The entry's
/// header is checked against the index before the first byte is written; its SHA-256 at the end.
pub async fn get_to_writer<W: Write + Send + 'static>(
    client: &Client,
    indexed: &Indexed,
    path: &[u8],
    out: W,
    thaw: Option<ThawRequest>,
) -> Result<GetReport, GetError> {
    let clock = Instant::now();
    let index = &indexed.index;
    let mut entry = index.entry(path).ok_or_else(|| GetError::NotFound { path: show(path) })?;
    if entry.kind == EntryKind::HardLink {
        let target = entry.link_target.as_deref().unwrap_or_default();
        entry = index.entry(target).ok_or_else(|| GetError::NotFound { path: show(target) })?;
    }
    if entry.kind != EntryKind::File {
        return Err(GetError::NotAFile { path: show(path), kind: entry.kind });
    }
    let entry = entry.clone();
    let ranges = index.ranges_for(&[&entry], RANGE_MEMBERS);
    let segments: Vec<u32> = ranges.iter().map(|r| r.segment).collect();
    indexed.ensure_readable(client, Some(&segments), thaw).await?;
    let reader = SpanReader::new(fetch_ranges(client, indexed, &ranges), std::slice::from_ref(&entry));
    let expected = entry.clone();
    tokio::task::spawn_blocking(move || copy_one_file(reader, &expected, out)).await??;
    let got = vec![GotEntry { path: show(&entry.path), kind: entry.kind, size: entry.size, written_to: None }];
    Ok(report(indexed, got, &ranges, clock))
}

fn report(indexed: &Indexed, entries: Vec<GotEntry>, ranges: &[FetchRange], clock: Instant) -> GetReport {
    GetReport {
        location: indexed.location.to_string(),
        object: indexed.object.key.clone(),
        entries,
        ranges: ranges.len(),
        bytes_fetched: ranges.iter().map(|r| r.compressed_end - r.compressed_start).sum(),
        index_bytes: indexed.index_size,
        object_bytes: indexed.object.size,
        seconds: clock.elapsed().as_secs_f64(),
    }
}

fn copy_one_file<W: Write>(reader: SpanReader, expected: &IndexEntry, mut out: W) -> Result<(), GetError> {
    let path = show(&expected.path);
    let check = |problem: String| GetError::Check { path: path.clone(), problem };
    let mut archive = tar::Archive::new(reader);
    let mut entries = archive.entries().map_err(|e| check(e.to_string()))?;
    let mut entry = loop {
        let entry = entries.next().ok_or_else(|| check("no entry where the index points".into()))?;
        let entry = entry.map_err(|e| check(format!("no valid tar header where the index points ({e})")))?;
        if !matches!(entry.header().entry_type(), tar::EntryType::XGlobalHeader) {
            break entry;
        }
    };
    let name = entry.path_bytes().into_owned();
    if normalize(&name) != expected.path.as_slice() {
        return Err(check(format!("the index points at the entry {}", show(&name))));
    }
    if entry.size() != expected.size {
        return Err(check(format!("{} bytes, the index says {}", entry.size(), expected.size)));
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut written = 0u64;
    loop {
        let n = entry.read(&mut buf).map_err(|e| check(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|source| GetError::Write { path: "stdout".into(), source })?;
        written += n as u64;
    }
    out.flush().map_err(|source| GetError::Write { path: "stdout".into(), source })?;
    let sha: [u8; 32] = hasher.finalize().into();
    if written != expected.size || Some(sha) != expected.sha256 {
        return Err(check(format!(
            "{written} bytes with another SHA-256 than the index's (already written to stdout: discard them)"
        )));
    }
    Ok(())
}

/// Fetches `ranges` of the object's segments, several at once, and hands their decompressed
/// bytes over in order, each with its offset in the uncompressed stream.
fn fetch_ranges(client: &Client, indexed: &Indexed, ranges: &[FetchRange]) -> mpsc::Receiver<io::Result<Piece>> {
    let (tx, rx) = mpsc::channel(RANGES_IN_FLIGHT);
    let (client, bucket, keys) = (client.clone(), indexed.location.bucket.clone(), indexed.segment_keys());
    let compression = indexed.object.compression;
    let ranges = ranges.to_vec();
    tokio::spawn(async move {
        let mut pieces = futures::stream::iter(ranges)
            .map(|range| {
                let key = keys.get(range.segment as usize).cloned().unwrap_or_default();
                fetch_range(client.clone(), bucket.clone(), key, range, compression)
            })
            .buffered(RANGES_IN_FLIGHT);
        while let Some(piece) = pieces.next().await {
            let failed = piece.is_err();
            let piece = piece.map_err(|e| io::Error::other(e.to_string()));
            if tx.send(piece).await.is_err() || failed {
                break;
            }
        }
    });
    rx
}

/// Decompressed bytes of one range, starting at `start` in the uncompressed stream.
pub(crate) struct Piece {
    pub(crate) start: u64,
    pub(crate) bytes: Bytes,
}

/// One ranged GET of whole members, decompressed and checked against the lengths the index gives.
pub(crate) async fn fetch_range(
    client: Client,
    bucket: String,
    key: String,
    range: FetchRange,
    compression: Compression,
) -> Result<Piece, GetError> {
    let url = format!("s3://{bucket}/{key}");
    let output = client
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .range(format!("bytes={}-{}", range.compressed_start, range.compressed_end - 1))
        .send()
        .await
        .map_err(|e| GetError::Download { url: url.clone(), message: DisplayErrorContext(e).to_string() })?;
    let compressed = output
        .body
        .collect()
        .await
        .map_err(|e| GetError::Download { url: url.clone(), message: e.to_string() })?
        .into_bytes();
    let mismatch = |problem: String| GetError::RangeMismatch { url: url.clone(), problem };
    if compressed.len() as u64 != range.compressed_end - range.compressed_start {
        return Err(mismatch(format!(
            "bytes {}-{} gave {} bytes",
            range.compressed_start,
            range.compressed_end - 1,
            compressed.len()
        )));
    }
    let bytes = tokio::task::spawn_blocking(move || decompress(compression, &compressed)).await?.map_err(|e| {
        mismatch(format!("bytes {}-{} are not whole members: {e}", range.compressed_start, range.compressed_end - 1))
    })?;
    if bytes.len() as u64 != range.end - range.start {
        return Err(mismatch(format!(
            "bytes {}-{} decompress to {} bytes, the index says {}",
            range.compressed_start,
            range.compressed_end - 1,
            bytes.len(),
            range.end - range.start
        )));
    }
    Ok(Piece { start: range.start, bytes: bytes.into() })
}

fn decompress(compression: Compression, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match compression {
        Compression::Gzip => flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out)?,
        Compression::Zstd => zstd::stream::read::Decoder::new(data)?.read_to_end(&mut out)?,
    };
    Ok(out)
}

/// The tar stream of the wanted entries alone, in archive order, then the end-of-archive blocks:
/// reads the entries' spans out of the fetched pieces, on a blocking thread.
struct SpanReader {
    pieces: mpsc::Receiver<io::Result<Piece>>,
    piece: Option<Piece>,
    /// The uncompressed byte ranges still to read, merged where they touch.
    spans: VecDeque<(u64, u64)>,
    trailer: usize,
}

impl SpanReader {
    fn new(pieces: mpsc::Receiver<io::Result<Piece>>, entries: &[IndexEntry]) -> Self {
        let mut spans: VecDeque<(u64, u64)> = VecDeque::new();
        for e in entries {
            match spans.back_mut() {
                Some((_, end)) if *end == e.offset => *end = e.end(),
                _ => spans.push_back((e.offset, e.end())),
            }
        }
        SpanReader { pieces, piece: None, spans, trailer: END_OF_ARCHIVE }
    }
}

impl Read for SpanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(&(pos, end)) = self.spans.front() else {
                let n = buf.len().min(self.trailer);
                buf[..n].fill(0);
                self.trailer -= n;
                return Ok(n);
            };
            if pos >= end {
                self.spans.pop_front();
                continue;
            }
            if let Some(piece) = &self.piece {
                let piece_end = piece.start + piece.bytes.len() as u64;
                if piece.start <= pos && pos < piece_end {
                    let from = (pos - piece.start) as usize;
                    let n = buf.len().min((end.min(piece_end) - pos) as usize);
                    buf[..n].copy_from_slice(&piece.bytes[from..from + n]);
                    self.spans.front_mut().expect("checked above").0 += n as u64;
                    return Ok(n);
                }
                if piece.start > pos {
                    return Err(io::Error::other(format!("byte {pos} of the stream was not fetched")));
                }
            }
            self.piece = match self.pieces.blocking_recv() {
                Some(piece) => Some(piece?),
                None => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the fetched ranges ended early")),
            };
        }
    }
}

/// Checks every entry extracted under `root` against the index; `extracted` is the extraction's
/// own result, whose error is reported as a mismatch: the index pointed at something else.
fn check_extracted(root: &Path, entries: &[IndexEntry], extracted: io::Result<()>) -> Result<(), GetError> {
    if let Err(e) = extracted {
        let path = entries.first().map(|e| show(&e.path)).unwrap_or_default();
        return Err(GetError::Check { path, problem: format!("extraction failed: {e}; nothing was written") });
    }
    for e in entries {
        check_entry(root, e).map_err(|problem| GetError::Check {
            path: show(&e.path),
            problem: format!("{problem}; nothing was written"),
        })?;
    }
    Ok(())
}

fn check_entry(root: &Path, e: &IndexEntry) -> Result<(), String> {
    let path = root.join(OsStr::from_bytes(&e.path));
    let meta = std::fs::symlink_metadata(&path).map_err(|err| format!("not extracted ({err})"))?;
    let ft = meta.file_type();
    let kind_ok = match e.kind {
        EntryKind::File | EntryKind::HardLink => ft.is_file(),
        EntryKind::Directory => ft.is_dir(),
        EntryKind::Symlink => ft.is_symlink(),
        EntryKind::CharDevice => ft.is_char_device(),
        EntryKind::BlockDevice => ft.is_block_device(),
        EntryKind::Fifo => ft.is_fifo(),
    };
    if !kind_ok {
        return Err(format!("extracted as {ft:?}, the index says {:?}", e.kind));
    }
    match e.kind {
        EntryKind::File => {
            if meta.len() != e.size {
                return Err(format!("{} bytes, the index says {}", meta.len(), e.size));
            }
            let mut file = std::fs::File::open(&path).map_err(|err| err.to_string())?;
            let mut hasher = Sha256::new();
            io::copy(&mut file, &mut hasher).map_err(|err| err.to_string())?;
            let sha: [u8; 32] = hasher.finalize().into();
            if Some(sha) != e.sha256 {
                return Err("its SHA-256 differs from the index's".into());
            }
        }
        EntryKind::HardLink => {
            let target = root.join(OsStr::from_bytes(e.link_target.as_deref().unwrap_or_default()));
            let same = std::fs::symlink_metadata(&target).is_ok_and(|t| t.ino() == meta.ino() && t.dev() == meta.dev());
            if !same {
                return Err("not a link to the entry the index names".into());
            }
        }
        EntryKind::Symlink => {
            let target = std::fs::read_link(&path).map_err(|err| err.to_string())?;
            if Some(target.as_os_str().as_bytes()) != e.link_target.as_deref() {
                return Err("points elsewhere than the index says".into());
            }
        }
        _ => {}
    }
    Ok(())
}

/// A directory's owner, mode, xattrs (ACLs included) and mtime, to move them to another one.
struct DirMetadata {
    meta: std::fs::Metadata,
    xattrs: Vec<(std::ffi::OsString, Vec<u8>)>,
}

impl DirMetadata {
    fn read(path: &Path) -> io::Result<Self> {
        let mut xattrs = Vec::new();
        for name in xattr::list(path)? {
            if let Some(value) = xattr::get(path, &name)? {
                xattrs.push((name, value));
            }
        }
        Ok(DirMetadata { meta: std::fs::symlink_metadata(path)?, xattrs })
    }

    /// In `extract_tree`'s order: owner, mode, xattrs (an ACL sets the mode's group bits), mtime.
    fn apply(&self, path: &Path) -> io::Result<()> {
        std::os::unix::fs::chown(path, Some(self.meta.uid()), Some(self.meta.gid()))?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(self.meta.mode() & 0o7777))?;
        for (name, value) in &self.xattrs {
            xattr::set(path, name, value)?;
        }
        set_mtime(path, (self.meta.mtime(), self.meta.mtime_nsec()))
    }
}

/// Moves what was extracted under `from` into `to`: into directories that exist, replacing files.
fn move_into(from: &Path, to: &Path) -> io::Result<()> {
    for child in std::fs::read_dir(from)? {
        let child = child?;
        let target = to.join(child.file_name());
        let existing_dir = std::fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir());
        if child.file_type()?.is_dir() && existing_dir {
            move_into(&child.path(), &target)?;
        } else if existing_dir {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is a directory; not replacing it", target.display()),
            ));
        } else {
            std::fs::rename(child.path(), &target)?;
        }
    }
    Ok(())
}

/// An archive name for people: non-UTF-8 bytes escaped as `\xNN`.
pub fn show(path: &[u8]) -> String {
    let mut out = String::new();
    for chunk in path.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_non_utf8_names_escaped() {
        assert_eq!(show(b"caf\xc3\xa9/\xff.txt"), "café/\\xff.txt");
    }

    #[test]
    fn span_reader_reads_only_the_spans_then_ends_the_archive() {
        let (tx, rx) = mpsc::channel(4);
        let data: Vec<u8> = (0..100u8).collect();
        tx.try_send(Ok(Piece { start: 0, bytes: Bytes::copy_from_slice(&data[..40]) })).unwrap();
        tx.try_send(Ok(Piece { start: 40, bytes: Bytes::copy_from_slice(&data[40..]) })).unwrap();
        drop(tx);
        let entry = |offset, span| IndexEntry {
            path: Vec::new(),
            kind: EntryKind::Directory,
            size: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_nsec: 0,
            device: None,
            link_target: None,
            offset,
            span,
            header_len: 0,
            sparse: false,
            sha256: None,
        };
        let mut reader = SpanReader::new(rx, &[entry(10, 20), entry(30, 5), entry(60, 30)]);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        let mut expected = data[10..35].to_vec();
        expected.extend_from_slice(&data[60..90]);
        expected.extend_from_slice(&[0; END_OF_ARCHIVE]);
        assert_eq!(out, expected);
    }
}
