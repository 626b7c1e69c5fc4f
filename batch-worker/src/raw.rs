//! Raw mode's source: the device's bytes as `CHUNK_SIZE` chunks, read with several reads
//! outstanding. A restored EBS volume fetches its blocks from S3 on first read, so one
//! sequential reader spends most of its time waiting; parallel positional reads keep the
//! volume's queue full.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::compress::CHUNK_SIZE;

/// Reads in flight at once: enough to hide EBS lazy-load latency, bounded so that memory is
/// this many chunks.
pub const READS_IN_FLIGHT: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read {len} bytes at offset {offset} from {path}: {source}")]
    Read {
        path: PathBuf,
        offset: u64,
        len: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("a read task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// The `size` bytes of `device` from `start`, in order. A short read is an error: a raw archive
/// is either the whole device or nothing.
pub fn read_device<E>(device: &Path, start: u64, size: u64) -> Result<impl Stream<Item = Result<Bytes, E>>, RawError>
where
    E: From<RawError> + Send + 'static,
{
    let file = File::open(device).map_err(|source| RawError::Open { path: device.into(), source })?;
    let file = Arc::new(file);
    let path: Arc<Path> = device.into();
    let offsets = (0..size).step_by(CHUNK_SIZE);
    Ok(futures::stream::iter(offsets)
        .map(move |offset| {
            let (file, path) = (Arc::clone(&file), Arc::clone(&path));
            let len = (size - offset).min(CHUNK_SIZE as u64) as usize;
            async move {
                tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; len];
                    file.read_exact_at(&mut buf, start + offset).map_err(|source| RawError::Read {
                        path: path.to_path_buf(),
                        offset: start + offset,
                        len,
                        source,
                    })?;
                    Ok(Bytes::from(buf))
                })
                .await
                .map_err(RawError::Task)?
                .map_err(E::from)
            }
        })
        .buffered(READS_IN_FLIGHT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct TestError(#[allow(dead_code)] RawError);
    impl From<RawError> for TestError {
        fn from(e: RawError) -> Self {
            TestError(e)
        }
    }

    #[tokio::test]
    async fn reads_every_byte_in_order() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..(3 * CHUNK_SIZE + 100)).map(|i| (i % 253) as u8).collect();
        std::fs::write(file.path(), &data).unwrap();
        let chunks: Vec<Bytes> =
            read_device::<TestError>(file.path(), 0, data.len() as u64).unwrap().map(|c| c.unwrap()).collect().await;
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks.concat(), data);
    }

    #[tokio::test]
    async fn reads_a_range() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..(2 * CHUNK_SIZE)).map(|i| (i % 251) as u8).collect();
        std::fs::write(file.path(), &data).unwrap();
        let start = CHUNK_SIZE as u64 / 2 + 3;
        let chunks: Vec<Bytes> = read_device::<TestError>(file.path(), start, CHUNK_SIZE as u64)
            .unwrap()
            .map(|c| c.unwrap())
            .collect()
            .await;
        assert_eq!(chunks.concat(), &data[start as usize..start as usize + CHUNK_SIZE]);
    }

    #[tokio::test]
    async fn a_short_device_is_an_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), vec![1u8; 1000]).unwrap();
        let results: Vec<_> = read_device::<TestError>(file.path(), 0, 2000).unwrap().collect().await;
        assert!(matches!(results[0], Err(TestError(RawError::Read { offset: 0, len: 2000, .. }))));
    }
}
