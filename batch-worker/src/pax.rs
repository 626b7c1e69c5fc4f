//! PAX extended headers (POSIX.1-2001 `x` records): writing them, and reading them back by
//! their length prefix.
//!
//! The tar crate's reader splits PAX data at newline bytes, which loses any record whose value
//! contains one (a binary xattr). [`PaxTap`] watches the tar stream as the tar crate reads it
//! and keeps each `x` payload whole, so [`parse_records`] can decode it as the format says.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::rc::Rc;

const BLOCK: usize = 512;

/// One PAX record: `"<length> <key>=<value>\n"`, where the length counts its own digits.
pub fn encode_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Decodes PAX records by their length prefixes; values may hold any bytes.
pub fn parse_records(mut data: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("malformed PAX record: {why}"));
    let mut records = Vec::new();
    while !data.is_empty() {
        let space = data.iter().position(|b| *b == b' ').ok_or_else(|| bad("no length"))?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("length is not a number"))?;
        if len > data.len() || len < space + 3 || data[len - 1] != b'\n' {
            return Err(bad("length does not match the record"));
        }
        let record = &data[space + 1..len - 1];
        let equals = record.iter().position(|b| *b == b'=').ok_or_else(|| bad("no '='"))?;
        records.push((String::from_utf8_lossy(&record[..equals]).into_owned(), record[equals + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(records)
}

/// PAX time: seconds and a fraction, the fraction counted forward even for negative times.
pub fn format_time(secs: i64, nanos: i64) -> String {
    if secs < 0 && nanos > 0 {
        format!("-{}.{:09}", -(secs + 1), 1_000_000_000 - nanos)
    } else {
        format!("{secs}.{nanos:09}")
    }
}

/// Parses a PAX time into seconds and nanoseconds.
pub fn parse_time(text: &str) -> Option<(i64, i64)> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nanos: i64 = if digits.is_empty() { 0 } else { format!("{digits:0<9}").parse().ok()? };
    Some(match (negative, nanos) {
        (false, _) => (secs, nanos),
        (true, 0) => (-secs, 0),
        (true, _) => (-secs - 1, 1_000_000_000 - nanos),
    })
}

/// The `x` payloads a [`PaxTap`] has seen, oldest first; each belongs to the next entry.
pub type PaxQueue = Rc<RefCell<VecDeque<Vec<u8>>>>;

/// A reader that passes a tar stream through unchanged while following its structure (headers,
/// GNU sparse extension blocks, data padded to 512 bytes) to keep the payload of every `x`
/// header.
pub struct PaxTap<R> {
    inner: R,
    queue: PaxQueue,
    state: TapState,
    /// A `size` record of the last `x` payload, which replaces the next entry's header size.
    size_override: Option<u64>,
}

enum TapState {
    /// Collecting a 512-byte header, or, with `sparse_data`, a GNU sparse extension block
    /// followed by that much data.
    Header { buf: Vec<u8>, sparse_data: Option<u64> },
    /// Inside an entry's data: `left` bytes to the next header; an `x` payload is kept whole.
    Data { left: u64, keep: Option<(usize, Vec<u8>)> },
}

fn header_state(sparse_data: Option<u64>) -> TapState {
    TapState::Header { buf: Vec::with_capacity(BLOCK), sparse_data }
}

fn data_state(size: u64) -> TapState {
    if size == 0 {
        header_state(None)
    } else {
        TapState::Data { left: padded(size), keep: None }
    }
}

impl<R: Read> PaxTap<R> {
    pub fn new(inner: R) -> (Self, PaxQueue) {
        let queue = PaxQueue::default();
        let tap = PaxTap { inner, queue: Rc::clone(&queue), state: header_state(None), size_override: None };
        (tap, queue)
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                TapState::Header { buf, sparse_data } => {
                    let take = (BLOCK - buf.len()).min(bytes.len());
                    buf.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if buf.len() == BLOCK {
                        let block = std::mem::take(buf);
                        self.state = match *sparse_data {
                            // GNU sparse extension block: another follows while its flag is set.
                            Some(size) if block[504] != 0 => header_state(Some(size)),
                            Some(size) => data_state(size),
                            None => self.after_header(&block),
                        };
                    }
                }
                TapState::Data { left, keep } => {
                    let take = (*left).min(bytes.len() as u64) as usize;
                    if let Some((want, kept)) = keep {
                        let n = (*want - kept.len()).min(take);
                        kept.extend_from_slice(&bytes[..n]);
                    }
                    *left -= take as u64;
                    bytes = &bytes[take..];
                    let payload_done = keep.as_ref().is_some_and(|(want, kept)| kept.len() == *want);
                    if payload_done {
                        let (_, payload) = keep.take().expect("checked above");
                        self.size_override = parse_records(&payload)
                            .ok()
                            .and_then(|records| records.into_iter().find(|(k, _)| k == "size"))
                            .and_then(|(_, v)| String::from_utf8_lossy(&v).parse().ok());
                        self.queue.borrow_mut().push_back(payload);
                    }
                    if let TapState::Data { left: 0, .. } = self.state {
                        self.state = header_state(None);
                    }
                }
            }
        }
    }

    /// The state after a header block.
    fn after_header(&mut self, block: &[u8]) -> TapState {
        if block.iter().all(|b| *b == 0) {
            return header_state(None); // end-of-archive blocks
        }
        let header_size = numeric_field(&block[124..136]);
        match block[156] {
            b'x' => TapState::Data { left: padded(header_size), keep: Some((header_size as usize, Vec::new())) },
            // Other meta entries (global PAX, GNU long names) keep their own size.
            b'g' | b'L' | b'K' => data_state(header_size),
            kind => {
                let size = self.size_override.take().unwrap_or(header_size);
                if kind == b'S' && block[482] != 0 {
                    header_state(Some(size))
                } else {
                    data_state(size)
                }
            }
        }
    }
}

impl<R: Read> Read for PaxTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.feed(&buf[..n]);
        Ok(n)
    }
}

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// A tar numeric field: octal text, or big-endian base-256 when the high bit is set.
pub(crate) fn numeric_field(field: &[u8]) -> u64 {
    if field[0] & 0x80 != 0 {
        field[1..].iter().fold(0u64, |n, b| (n << 8) | *b as u64)
    } else {
        let text: String = field.iter().take_while(|b| **b != 0 && **b != b' ').map(|b| *b as char).collect();
        u64::from_str_radix(text.trim(), 8).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_length_counts_itself() {
        for value_len in [0, 1, 5, 6, 7, 90, 94, 95, 96, 100, 994, 995, 996, 10_000] {
            let mut out = Vec::new();
            encode_record(&mut out, "SCHILY.xattr.user.k", &vec![b'v'; value_len]);
            let len: usize =
                std::str::from_utf8(&out[..out.iter().position(|b| *b == b' ').unwrap()]).unwrap().parse().unwrap();
            assert_eq!(len, out.len(), "value length {value_len}");
        }
    }

    #[test]
    fn records_with_newlines_in_values_round_trip() {
        let mut data = Vec::new();
        encode_record(&mut data, "SCHILY.xattr.user.binary", b"\0\x01\n\n\0");
        encode_record(&mut data, "mtime", b"1.5");
        let records = parse_records(&data).unwrap();
        assert_eq!(
            records,
            vec![("SCHILY.xattr.user.binary".into(), b"\0\x01\n\n\0".to_vec()), ("mtime".into(), b"1.5".to_vec())]
        );
    }

    #[test]
    fn rejects_records_whose_length_lies() {
        assert!(parse_records(b"99 mtime=1\n").is_err());
        assert!(parse_records(b"mtime=1\n").is_err());
        assert!(parse_records(b"9 mtime1\n").is_err());
    }

    #[test]
    fn formats_and_parses_times_before_and_after_the_epoch() {
        for (secs, nanos) in [(1_620_284_889, 123_456_789), (5, 0), (-2, 500_000_000), (-7, 0)] {
            assert_eq!(parse_time(&format_time(secs, nanos)), Some((secs, nanos)));
        }
        assert_eq!(format_time(-2, 500_000_000), "-1.500000000");
        assert_eq!(parse_time("5.5"), Some((5, 500_000_000)));
        assert_eq!(parse_time("x"), None);
    }

    #[test]
    fn tap_keeps_each_pax_payload_whole() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut pax = Vec::new();
        encode_record(&mut pax, "SCHILY.xattr.user.b", &[0, b'\n', 1, b'\n']);
        for (name, body) in [("a", &b"hello"[..]), ("b", &[7u8; 1500][..])] {
            let mut x = tar::Header::new_ustar();
            x.set_entry_type(tar::EntryType::XHeader);
            x.set_size(pax.len() as u64);
            x.set_cksum();
            builder.append(&x, pax.as_slice()).unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_cksum();
            builder.append_data(&mut h, name, body).unwrap();
        }
        let bytes = builder.into_inner().unwrap();
        let (tap, queue) = PaxTap::new(bytes.as_slice());
        let mut archive = tar::Archive::new(tap);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            assert!(entry.pax_extensions().unwrap().is_some());
            let payload = queue.borrow_mut().pop_front().expect("a payload per entry");
            assert_eq!(parse_records(&payload).unwrap()[0].1, vec![0, b'\n', 1, b'\n']);
        }
        assert!(queue.borrow().is_empty());
    }
}
