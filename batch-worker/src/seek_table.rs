//! The zstd seekable format's seek table
//! (<https://github.com/facebook/zstd/blob/dev/contrib/seekable_format/zstd_seekable_compression_format.md>):
//! a skippable frame at the end of each zstd segment that lists its frames' compressed and
//! decompressed sizes, so tools other than ours can seek in an archive. `zstd -d` and every
//! decoder skip it.

/// A skippable frame's magic (the first of the 16 values zstd reserves for them).
const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
/// The seek table footer's magic.
const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// A zstd frame's magic.
const ZSTD_MAGIC: u32 = 0xFD2F_B528;

/// The decompressed size a zstd frame's header records (`Frame_Content_Size`), or `None` when
/// `frame` is not a zstd frame or its header leaves the size out.
pub fn frame_content_size(frame: &[u8]) -> Option<u64> {
    if frame.len() < 6 || u32::from_le_bytes(frame[..4].try_into().ok()?) != ZSTD_MAGIC {
        return None;
    }
    let descriptor = frame[4];
    let single_segment = descriptor & 0x20 != 0;
    let dictionary_id_len = [0, 1, 2, 4][(descriptor & 3) as usize];
    let fcs_len = match (descriptor >> 6, single_segment) {
        (0, false) => return None,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let start = 5 + usize::from(!single_segment) + dictionary_id_len;
    let field = frame.get(start..start + fcs_len)?;
    let mut value = [0u8; 8];
    value[..fcs_len].copy_from_slice(field);
    let size = u64::from_le_bytes(value);
    // A 2-byte field counts from 256.
    Some(if fcs_len == 2 { size + 256 } else { size })
}

/// The seek table of `frames` (compressed size, decompressed size), without checksums.
pub fn seek_table(frames: &[(u32, u32)]) -> Vec<u8> {
    let content_len = frames.len() * 8 + 9;
    let mut out = Vec::with_capacity(8 + content_len);
    out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
    out.extend_from_slice(&(content_len as u32).to_le_bytes());
    for (compressed, decompressed) in frames {
        out.extend_from_slice(&compressed.to_le_bytes());
        out.extend_from_slice(&decompressed.to_le_bytes());
    }
    out.extend_from_slice(&(frames.len() as u32).to_le_bytes());
    out.push(0); // descriptor: no checksums
    out.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn reads_the_content_size_zstd_writes() {
        for len in [0usize, 1, 200, 256, 300, 70_000, 1 << 20] {
            let data = vec![7u8; len];
            let frame = zstd::bulk::compress(&data, 3).unwrap();
            assert_eq!(frame_content_size(&frame), Some(len as u64), "{len} bytes");
        }
        assert_eq!(frame_content_size(b"not a frame"), None);
    }

    #[test]
    fn decoders_skip_the_table_and_it_ends_with_the_footer() {
        let frames: Vec<Vec<u8>> =
            [b"abc".as_slice(), b"defg"].iter().map(|d| zstd::bulk::compress(d, 3).unwrap()).collect();
        let sizes: Vec<(u32, u32)> = frames.iter().zip([3, 4]).map(|(f, n)| (f.len() as u32, n)).collect();
        let mut stream = frames.concat();
        let table = seek_table(&sizes);
        stream.extend_from_slice(&table);
        let mut out = Vec::new();
        zstd::stream::read::Decoder::new(stream.as_slice()).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abcdefg");
        assert_eq!(table.len(), 8 + 2 * 8 + 9);
        assert_eq!(table[table.len() - 9..table.len() - 5], 2u32.to_le_bytes());
        assert_eq!(table[table.len() - 4..], SEEKABLE_MAGIC.to_le_bytes());
    }
}
