//! Restoring an archive into a new EBS snapshot, without any volume: a raw object's stream is
//! decompressed on a blocking thread, cut into 512 KiB blocks and written through the EBS direct
//! APIs ([`ebs_direct::write_snapshot`]); the snapshot is completed only once the whole stream has
//! matched the manifest's size and SHA-256. A files object is first extracted into a new
//! filesystem image ([`restore_filesystem`]), which is then written the same way. Any failure
//! deletes the snapshot.

use std::io::{self, Read};
use std::time::Instant;

use archiver_core::manifest::{ArchiveMode, ArchivedObject, Manifest};
use archiver_core::s3_location::S3Location;
use bytes::Bytes;
use indicatif::ProgressBar;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ebs_direct::{self, EbsDirectError, SnapshotSpec, BLOCK_SIZE};
use crate::restore::{decompressor, open_segments, raw_object, HashingReader, RestoreError, Segments};
use crate::restore_filesystem::{self, Filesystem, FilesystemError};
use crate::verify::fetch_manifest;

/// Blocks decompressed ahead of the writer: with the blocks in flight, the restore's memory is
/// (this + [`ebs_direct::BLOCKS_IN_FLIGHT`]) x 512 KiB, 48 MiB, whatever the archive's size.
const QUEUE_BLOCKS: usize = 32;
/// EC2 limits a snapshot description to 255 characters.
const DESCRIPTION_MAX: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotRestoreError {
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    EbsDirect(#[from] EbsDirectError),
    #[error("cannot read {key}: {source}")]
    Read {
        key: String,
        #[source]
        source: io::Error,
    },
    #[error("{key} does not match the manifest: {problem}; the snapshot was not completed")]
    Mismatch { key: String, problem: String },
    #[error(transparent)]
    Filesystem(#[from] FilesystemError),
    #[error("the archive has no files object{}", partition.map(|n| format!(" for partition {n}")).unwrap_or_default())]
    NoFilesObject { partition: Option<u32> },
    #[error("the archive has {count} files objects; choose one with --partition")]
    SeveralFilesObjects { count: usize },
    #[error("a restore task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl SnapshotRestoreError {
    pub fn is_interrupted(&self) -> bool {
        matches!(self, SnapshotRestoreError::EbsDirect(EbsDirectError::Interrupted))
    }
}

/// The snapshot a restore makes, besides its content.
#[derive(Debug, Clone, Default)]
pub struct SnapshotRestoreOptions {
    /// The partition whose raw object to restore, when the archive has several.
    pub partition: Option<u32>,
    /// Default: where the archive came from.
    pub description: Option<String>,
    pub tags: Vec<(String, String)>,
    pub kms_key_id: Option<String>,
    /// For a files archive: the filesystem to make and extract the files into.
    pub filesystem: Option<Filesystem>,
    /// With `filesystem`: its size, rounded up to whole GiB. Default: the files with headroom.
    pub size: Option<u64>,
}

/// What a restore to a snapshot made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoredSnapshot {
    pub snapshot_id: String,
    /// The raw object restored.
    pub key: String,
    /// Bytes of the restored image.
    pub bytes: u64,
    pub volume_size_gib: u64,
    /// Blocks written; all-zero blocks are left out.
    pub blocks_written: u64,
    pub seconds: f64,
}

/// Restores the archive's raw object (the one of `options.partition` when there are several)
/// into a new snapshot and returns its id.
pub async fn restore_to_snapshot(
    s3: &aws_sdk_s3::Client,
    ebs: &aws_sdk_ebs::Client,
    ec2: &aws_sdk_ec2::Client,
    location: &S3Location,
    options: &SnapshotRestoreOptions,
    progress: Option<ProgressBar>,
    cancel: &CancellationToken,
) -> Result<RestoredSnapshot, SnapshotRestoreError> {
    let clock = Instant::now();
    let manifest = fetch_manifest(s3, location).await.map_err(RestoreError::from)?;
    if let Some(fs) = options.filesystem {
        return restore_files(s3, ebs, ec2, location, &manifest, fs, options, progress, cancel, clock).await;
    }
    let object = raw_object(&manifest, options.partition)?.clone();
    // The first download fails here, before any snapshot is started.
    let compressed = open_segments(s3, &location.bucket, &object).await?;
    let mut description = options.description.clone().unwrap_or_else(|| {
        let source = manifest.source.snapshot_id.as_deref().map(|id| format!(" ({id})")).unwrap_or_default();
        format!("backup-archiver restore of s3://{}/{}{source}", location.bucket, object.key)
    });
    description.truncate(description.floor_char_boundary(DESCRIPTION_MAX));
    let spec = SnapshotSpec { description: Some(description), ..snapshot_spec(options, object.bytes_in) };
    if let Some(bar) = &progress {
        bar.set_length(object.bytes_in);
    }
    let (tx, mut rx) = mpsc::channel(QUEUE_BLOCKS);
    let reading = object.clone();
    let producer = tokio::task::spawn_blocking(move || send_blocks(compressed, &reading, &tx));
    let blocks = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let written = ebs_direct::write_snapshot(ebs, ec2, &spec, blocks, progress.as_ref(), cancel).await;
    // The reader ends on its own: at the end of the stream, or at its next block once the writer
    // has stopped.
    producer.await?;
    let written = written?;
    tracing::info!(snapshot_id = written.snapshot_id, key = object.key, blocks = written.blocks_written, "restored");
    Ok(RestoredSnapshot {
        snapshot_id: written.snapshot_id,
        key: object.key,
        bytes: object.bytes_in,
        volume_size_gib: written.volume_size_gib,
        blocks_written: written.blocks_written,
        seconds: clock.elapsed().as_secs_f64(),
    })
}

/// A files archive into a new filesystem ([`restore_filesystem`]), and that image into the
/// snapshot.
#[allow(clippy::too_many_arguments)]
async fn restore_files(
    s3: &aws_sdk_s3::Client,
    ebs: &aws_sdk_ebs::Client,
    ec2: &aws_sdk_ec2::Client,
    location: &S3Location,
    manifest: &Manifest,
    fs: Filesystem,
    options: &SnapshotRestoreOptions,
    progress: Option<ProgressBar>,
    cancel: &CancellationToken,
    clock: Instant,
) -> Result<RestoredSnapshot, SnapshotRestoreError> {
    let files: Vec<&ArchivedObject> = manifest
        .objects
        .iter()
        .filter(|o| o.mode == ArchiveMode::Files)
        .filter(|o| options.partition.is_none() || o.partition.as_ref().map(|p| p.number) == options.partition)
        .collect();
    let object = match files.as_slice() {
        [] => return Err(SnapshotRestoreError::NoFilesObject { partition: options.partition }),
        [one] => (*one).clone(),
        several => return Err(SnapshotRestoreError::SeveralFilesObjects { count: several.len() }),
    };
    let size = options.size.unwrap_or_else(|| restore_filesystem::default_size(&object));
    let size = ebs_direct::volume_size_gib(size) * (1 << 30);
    // The image is sparse: it takes the disk space of the files, not of its size.
    let dir = tempfile::Builder::new()
        .prefix("backup-archiver-fs-")
        .tempdir()
        .map_err(|source| SnapshotRestoreError::Read { key: object.key.clone(), source })?;
    let image = restore_filesystem::build_image(s3, &location.bucket, &object, fs, size, dir.path()).await?;
    let description = options.description.clone().unwrap_or_else(|| {
        format!("backup-archiver restore of s3://{}/{} as {}", location.bucket, object.key, fs.name())
    });
    let spec = SnapshotSpec { description: Some(description), ..snapshot_spec(options, size) };
    if let Some(bar) = &progress {
        bar.set_length(size);
    }
    let (tx, mut rx) = mpsc::channel(QUEUE_BLOCKS);
    let key = object.key.clone();
    let producer = tokio::task::spawn_blocking(move || {
        let result = std::fs::File::open(&image).and_then(|mut file| send_all(&mut file, &tx));
        if let Err(source) = result {
            let _ = tx.blocking_send(Err(SnapshotRestoreError::Read { key, source }));
        }
    });
    let blocks = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let written = ebs_direct::write_snapshot(ebs, ec2, &spec, blocks, progress.as_ref(), cancel).await;
    producer.await?;
    let written = written?;
    tracing::info!(snapshot_id = written.snapshot_id, key = object.key, fs = fs.name(), "restored");
    Ok(RestoredSnapshot {
        snapshot_id: written.snapshot_id,
        key: object.key,
        bytes: size,
        volume_size_gib: written.volume_size_gib,
        blocks_written: written.blocks_written,
        seconds: clock.elapsed().as_secs_f64(),
    })
}

/// The snapshot for `bytes` of content, with the operator's tags and key.
fn snapshot_spec(options: &SnapshotRestoreOptions, bytes: u64) -> SnapshotSpec {
    SnapshotSpec {
        volume_size_gib: ebs_direct::volume_size_gib(bytes),
        description: options.description.clone(),
        tags: options.tags.clone(),
        kms_key_id: options.kms_key_id.clone(),
    }
}

/// Decompresses the object and sends its 512 KiB blocks, then an error if the stream is not the
/// one the manifest describes; a read error is sent as the stream's last item too.
fn send_blocks(compressed: Segments, object: &ArchivedObject, tx: &mpsc::Sender<Result<Bytes, SnapshotRestoreError>>) {
    let read_err = |source| SnapshotRestoreError::Read { key: object.key.clone(), source };
    let result = (|| {
        let mut content = HashingReader::new(decompressor(object.compression, compressed).map_err(read_err)?);
        if !send_all(&mut content, tx).map_err(read_err)? {
            return Ok(());
        }
        let (bytes, sha256) = content.finish();
        if bytes != object.bytes_in || sha256 != object.content_sha256 {
            return Err(SnapshotRestoreError::Mismatch {
                key: object.key.clone(),
                problem: format!(
                    "{bytes} bytes with SHA-256 {sha256}, the manifest says {} bytes with {}",
                    object.bytes_in, object.content_sha256
                ),
            });
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = tx.blocking_send(Err(e));
    }
}

/// Sends `input`'s 512 KiB blocks until its end (`true`), or until the writer stops (`false`:
/// its error is the one reported).
fn send_all(input: &mut impl Read, tx: &mpsc::Sender<Result<Bytes, SnapshotRestoreError>>) -> io::Result<bool> {
    loop {
        let mut block = vec![0u8; BLOCK_SIZE];
        let n = read_full(input, &mut block)?;
        if n == 0 {
            return Ok(true);
        }
        block.truncate(n);
        if tx.blocking_send(Ok(Bytes::from(block))).is_err() {
            return Ok(false);
        }
    }
}

/// Fills `buf` unless the stream ends first; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most 7 bytes per read.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(7).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn blocks_are_filled_across_short_reads() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut input = Trickle(&data);
        let mut buf = [0u8; 64];
        assert_eq!(read_full(&mut input, &mut buf).unwrap(), 64);
        assert_eq!(&buf[..], &data[..64]);
        assert_eq!(read_full(&mut input, &mut buf).unwrap(), 36);
        assert_eq!(read_full(&mut input, &mut buf).unwrap(), 0);
    }
}
