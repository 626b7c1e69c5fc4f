//! The worker's side of the archive index ([`archiver_core::index`]): [`IndexingWriter`] passes
//! the tar stream through to the compression stage unchanged while it follows the stream's
//! structure (headers, PAX and GNU long-name records, GNU sparse maps, data padded to 512 bytes)
//! and records every entry, with its offset and the SHA-256 of a file's content, so the index
//! costs no second read of the source.

use std::io::{self, Write};

use archiver_core::index::{normalize, EntryKind, IndexEntry, IndexError, IndexWriter};
use sha2::{Digest, Sha256};

use crate::pax;

const BLOCK: usize = 512;
/// Zeros hashed at a time for the holes of a sparse file.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// A `Write` that indexes the tar stream written through it.
pub struct IndexingWriter<W> {
    inner: W,
    parser: Parser,
}

impl<W: Write> IndexingWriter<W> {
    pub fn new(inner: W) -> Result<Self, IndexError> {
        Ok(IndexingWriter { inner, parser: Parser::new(IndexWriter::new()?) })
    }

    /// The inner writer, and the index of what was written (or the first error writing it).
    pub fn into_parts(self) -> (W, Result<IndexWriter, IndexError>) {
        let index = match self.parser.error {
            Some(e) => Err(e),
            None => Ok(self.parser.index),
        };
        (self.inner, index)
    }
}

impl<W: Write> Write for IndexingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.parser.feed(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What the headers before an entry said.
#[derive(Default)]
struct Pending {
    /// Where the entry's first header started.
    start: Option<u64>,
    pax: Vec<(String, Vec<u8>)>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

/// An entry whose data is being read, and the hash of a file's logical content.
struct Current {
    entry: IndexEntry,
    hasher: Option<Sha256>,
    /// A sparse file's data regions (offset, length) still to come.
    sparse: Vec<(u64, u64)>,
    /// How far the logical content has been hashed.
    logical: u64,
}

enum State {
    /// Collecting a header block; `sparse` when it is a GNU sparse extension block.
    Header { buf: Vec<u8>, sparse: bool },
    /// A meta entry's payload (`x`, `L`, `K`; `g` is skipped): `left` bytes with padding.
    Meta { kind: u8, size: usize, left: u64, data: Vec<u8> },
    /// An entry's data: `data_left` bytes of data, then padding up to `left`.
    Data { left: u64, data_left: u64 },
}

struct Parser {
    index: IndexWriter,
    error: Option<IndexError>,
    position: u64,
    state: State,
    pending: Pending,
    current: Option<Current>,
}

impl Parser {
    fn new(index: IndexWriter) -> Self {
        Parser {
            index,
            error: None,
            position: 0,
            state: header_state(false),
            pending: Pending::default(),
            current: None,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let (take, finished) = match &mut self.state {
                State::Header { buf, .. } => {
                    let take = (BLOCK - buf.len()).min(bytes.len());
                    buf.extend_from_slice(&bytes[..take]);
                    (take, buf.len() == BLOCK)
                }
                State::Meta { kind, size, left, data } => {
                    let take = (*left).min(bytes.len() as u64) as usize;
                    if *kind != b'g' {
                        let keep = (*size - data.len()).min(take);
                        data.extend_from_slice(&bytes[..keep]);
                    }
                    *left -= take as u64;
                    (take, *left == 0)
                }
                State::Data { left, data_left } => {
                    let take = (*left).min(bytes.len() as u64) as usize;
                    let data = (*data_left).min(take as u64) as usize;
                    *data_left -= data as u64;
                    *left -= take as u64;
                    let finished = *left == 0;
                    if let Some(current) = &mut self.current {
                        current.hash(&bytes[..data]);
                    }
                    (take, finished)
                }
            };
            self.position += take as u64;
            bytes = &bytes[take..];
            if finished {
                self.step();
            }
        }
    }

    /// The current state's bytes are complete: move to the next.
    fn step(&mut self) {
        match std::mem::replace(&mut self.state, header_state(false)) {
            State::Header { buf, sparse: false } => self.header(&buf, self.position - BLOCK as u64),
            State::Header { buf, sparse: true } => self.sparse_extension(&buf),
            State::Meta { kind, data, .. } => self.meta_done(kind, data),
            State::Data { .. } => self.entry_done(),
        }
    }

    /// Enters `state`, or finishes at once when it holds no bytes.
    fn enter(&mut self, state: State) {
        if let (State::Data { .. }, Some(current)) = (&state, &mut self.current) {
            current.entry.header_len = self.position - current.entry.offset;
        }
        let empty = matches!(state, State::Meta { left: 0, .. } | State::Data { left: 0, .. });
        self.state = state;
        if empty {
            self.step();
        }
    }

    fn header(&mut self, block: &[u8], at: u64) {
        if block.iter().all(|b| *b == 0) {
            // End-of-archive blocks.
            self.pending = Pending::default();
            return;
        }
        self.pending.start.get_or_insert(at);
        let typeflag = block[156];
        let header_size = numeric(&block[124..136]);
        if matches!(typeflag, b'x' | b'g' | b'L' | b'K') {
            let size = header_size as usize;
            self.enter(State::Meta { kind: typeflag, size, left: padded(header_size), data: Vec::new() });
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let data_size = pax_number(&pending.pax, "size").unwrap_or(header_size);
        let kind = match typeflag {
            b'0' | 0 | b'7' | b'S' => EntryKind::File,
            b'1' => EntryKind::HardLink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::CharDevice,
            b'4' => EntryKind::BlockDevice,
            b'5' => EntryKind::Directory,
            b'6' => EntryKind::Fifo,
            // Nothing this tool writes: its data is skipped and it is not indexed.
            _ => {
                self.current = None;
                self.enter(data_state(data_size));
                return;
            }
        };
        let path = pax_bytes(&pending.pax, "path").or(pending.long_name).unwrap_or_else(|| header_name(block));
        let link = pax_bytes(&pending.pax, "linkpath").or(pending.long_link).unwrap_or_else(|| field(&block[157..257]));
        let (mtime, mtime_nsec) = pax_bytes(&pending.pax, "mtime")
            .and_then(|t| pax::parse_time(&String::from_utf8_lossy(&t)))
            .unwrap_or((numeric(&block[136..148]) as i64, 0));
        let sparse = typeflag == b'S';
        let size = if sparse { numeric(&block[483..495]) } else { data_size };
        let entry = IndexEntry {
            path: normalize(&path).to_vec(),
            kind,
            size: if kind == EntryKind::File { size } else { 0 },
            mode: (numeric(&block[100..108]) & 0o7777) as u32,
            uid: pax_number(&pending.pax, "uid").unwrap_or_else(|| numeric(&block[108..116])),
            gid: pax_number(&pending.pax, "gid").unwrap_or_else(|| numeric(&block[116..124])),
            mtime,
            mtime_nsec: mtime_nsec as u32,
            device: kind.is_device().then(|| (numeric(&block[329..337]) as u32, numeric(&block[337..345]) as u32)),
            link_target: match kind {
                EntryKind::HardLink => Some(normalize(&link).to_vec()),
                EntryKind::Symlink => Some(link),
                _ => None,
            },
            offset: pending.start.unwrap_or(at),
            span: 0,
            header_len: 0,
            sparse,
            sha256: None,
        };
        self.current = Some(Current {
            hasher: (kind == EntryKind::File).then(Sha256::new),
            sparse: if sparse { sparse_map(&block[386..482]) } else { Vec::new() },
            entry,
            logical: 0,
        });
        if sparse && block[482] != 0 {
            self.state = header_state(true);
        } else {
            self.enter(data_state(data_size));
        }
    }

    fn sparse_extension(&mut self, block: &[u8]) {
        let Some(current) = &mut self.current else { return };
        current.sparse.extend(sparse_map(&block[..504]));
        if block[504] != 0 {
            self.state = header_state(true);
        } else {
            let data = current.sparse.iter().map(|(_, len)| len).sum();
            self.enter(data_state(data));
        }
    }

    fn meta_done(&mut self, kind: u8, data: Vec<u8>) {
        match kind {
            b'x' => self.pending.pax = pax::parse_records(&data).unwrap_or_default(),
            b'L' => self.pending.long_name = Some(field(&data)),
            b'K' => self.pending.long_link = Some(field(&data)),
            _ => {}
        }
    }

    fn entry_done(&mut self) {
        let Some(mut current) = self.current.take() else { return };
        if let Some(hasher) = &mut current.hasher {
            // A sparse file's trailing hole, up to its apparent size.
            hash_zeros(hasher, current.entry.size.saturating_sub(current.logical));
        }
        current.entry.span = self.position - current.entry.offset;
        current.entry.sha256 = current.hasher.map(|h| h.finalize().into());
        if self.error.is_none() {
            if let Err(e) = self.index.push(&current.entry) {
                self.error = Some(e);
            }
        }
    }
}

/// The data regions (logical offset, length) of the sparse file whose headers (PAX records,
/// GNU sparse header, extension blocks) are `headers`, stored one after the other after them.
pub fn sparse_regions(headers: &[u8]) -> Result<Vec<(u64, u64)>, IndexError> {
    let mut parser = Parser::new(IndexWriter::new()?);
    parser.feed(headers);
    Ok(parser.current.map(|c| c.sparse).unwrap_or_default())
}

impl Current {
    /// Hashes data bytes; for a sparse file, the zeros of the hole before each region first.
    fn hash(&mut self, mut data: &[u8]) {
        let Some(hasher) = &mut self.hasher else { return };
        if self.sparse.is_empty() {
            hasher.update(data);
            self.logical += data.len() as u64;
            return;
        }
        while !data.is_empty() {
            let Some((offset, len)) = self.sparse.first_mut() else { return };
            hash_zeros(hasher, offset.saturating_sub(self.logical));
            self.logical = self.logical.max(*offset);
            let take = (*len).min(data.len() as u64) as usize;
            hasher.update(&data[..take]);
            self.logical += take as u64;
            *offset += take as u64;
            *len -= take as u64;
            data = &data[take..];
            if *len == 0 {
                self.sparse.remove(0);
            }
        }
    }
}

fn hash_zeros(hasher: &mut Sha256, mut n: u64) {
    while n > 0 {
        let take = n.min(ZEROS.len() as u64) as usize;
        hasher.update(&ZEROS[..take]);
        n -= take as u64;
    }
}

fn header_state(sparse: bool) -> State {
    State::Header { buf: Vec::with_capacity(BLOCK), sparse }
}

fn data_state(size: u64) -> State {
    State::Data { left: padded(size), data_left: size }
}

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// GNU sparse map entries, (offset, length) pairs of 12-byte numbers; an empty one ends them.
fn sparse_map(bytes: &[u8]) -> Vec<(u64, u64)> {
    bytes.chunks_exact(24).take_while(|e| e[0] != 0).map(|e| (numeric(&e[..12]), numeric(&e[12..24]))).collect()
}

/// The name in a ustar or GNU header; ustar's prefix field joined in front.
fn header_name(block: &[u8]) -> Vec<u8> {
    let name = field(&block[..100]);
    if &block[257..263] == b"ustar\0" && block[345] != 0 {
        let mut path = field(&block[345..500]);
        path.push(b'/');
        path.extend_from_slice(&name);
        return path;
    }
    name
}

/// A NUL-terminated field.
fn field(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len())].to_vec()
}

fn numeric(field: &[u8]) -> u64 {
    pax::numeric_field(field)
}

fn pax_bytes(records: &[(String, Vec<u8>)], key: &str) -> Option<Vec<u8>> {
    records.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

fn pax_number(records: &[(String, Vec<u8>)], key: &str) -> Option<u64> {
    pax_bytes(records, key).and_then(|v| String::from_utf8_lossy(&v).parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use archiver_core::index::{MemberSize, TarIndex};

    /// Indexes `tar` written through an [`IndexingWriter`] in pieces of `step` bytes.
    fn index_of(tar: &[u8], step: usize) -> TarIndex {
        let mut w = IndexingWriter::new(Vec::new()).unwrap();
        for piece in tar.chunks(step) {
            w.write_all(piece).unwrap();
        }
        let (out, index) = w.into_parts();
        assert_eq!(out, tar, "the stream passes through unchanged");
        let members = [MemberSize { len: tar.len() as u64, compressed_len: 10 }];
        TarIndex::parse(&index.unwrap().finish(&members, &[10]).unwrap()).unwrap()
    }

    fn sha(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    #[test]
    fn indexes_every_kind_of_entry_with_offsets_that_start_its_headers() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let long = "l".repeat(150);
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/a"), vec![5u8; 3000]).unwrap();
        std::fs::hard_link(root.join("d/a"), root.join("d/b")).unwrap();
        std::os::unix::fs::symlink(&long, root.join("s")).unwrap();
        std::fs::write(root.join(&long), b"long").unwrap();
        let sparse = root.join("sparse");
        let f = std::fs::File::create(&sparse).unwrap();
        f.set_len(8 << 20).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, b"middle", 4 << 20).unwrap();
        drop(f);

        let (_, tar) = crate::tree::write_tree(root, &[], Vec::new()).unwrap();
        for step in [1, 511, 4096, tar.len()] {
            let index = index_of(&tar, step);
            let paths: Vec<&[u8]> = index.entries.iter().map(|e| e.path.as_slice()).collect();
            assert_eq!(paths, [&b""[..], b"d", b"d/a", b"d/b", long.as_bytes(), b"s", b"sparse"], "step {step}");
            let a = index.entry(b"d/a").unwrap();
            assert_eq!((a.kind, a.size, a.sha256), (EntryKind::File, 3000, Some(sha(&[5u8; 3000]))));
            let b = index.entry(b"d/b").unwrap();
            assert_eq!((b.kind, b.link_target.as_deref()), (EntryKind::HardLink, Some(&b"d/a"[..])));
            let s = index.entry(b"s").unwrap();
            assert_eq!(s.link_target.as_deref(), Some(long.as_bytes()));
            let mut content = vec![0u8; 8 << 20];
            content[4 << 20..(4 << 20) + 6].copy_from_slice(b"middle");
            let sp = index.entry(b"sparse").unwrap();
            assert_eq!((sp.size, sp.sha256, sp.sparse), (8 << 20, Some(sha(&content)), true));
            let headers = &tar[sp.offset as usize..(sp.offset + sp.header_len) as usize];
            let regions = sparse_regions(headers).unwrap();
            assert!(
                regions.iter().any(|(offset, len)| *offset <= 4 << 20 && offset + len >= (4 << 20) + 6),
                "{regions:?}"
            );
            // A file's content lies whole after its headers.
            let start = (a.offset + a.header_len) as usize;
            assert!(!a.sparse);
            assert_eq!(&tar[start..start + 3000], &[5u8; 3000][..]);
            assert_eq!(index.entry(long.as_bytes()).unwrap().sha256, Some(sha(b"long")));
            // Each entry's span is exactly what a tar reader needs to read it alone.
            for e in &index.entries {
                let mut one = tar[e.offset as usize..e.end() as usize].to_vec();
                one.extend_from_slice(&[0; 1024]);
                let mut archive = tar::Archive::new(one.as_slice());
                let mut entries = archive.entries().unwrap();
                let entry = entries.next().unwrap().unwrap();
                assert_eq!(normalize(&entry.path_bytes()), e.path.as_slice());
                assert!(entries.next().is_none());
            }
            let last = index.entries.last().unwrap();
            assert_eq!(last.end() + 1024, tar.len() as u64, "only the end-of-archive blocks follow");
        }
    }
}
