//! Archiving an EBS snapshot without a volume: its written blocks read through the EBS direct
//! APIs ([`SnapshotReader`]), holes as zeros (which the compressor stores for next to
//! nothing), in raw mode -> compress -> multipart upload -> manifest, the same archive as a
//! volume's raw one. No CreateVolume, no attachment, no AZ, no lazy loading.
//!
//! Files mode (`--mode files` only; `auto` stays raw, so the flow's unprivileged job never needs
//! a loop device) copies the written blocks into a sparse image under the temporary directory,
//! holes left as holes, and archives that image as a device ([`archive::archive_device`]: loop
//! device, read-only mounts, tar). The copy costs disk space for the written bytes only; the
//! measured numbers and the choice against a lazily fetched view are in docs/architecture.md.

use std::collections::HashMap;
use std::time::Instant;

use archiver_core::manifest::{
    object_name, ArchiveMode, ArchivedObject, Manifest, ModeRequest, SourceInfo, MANIFEST_FORMAT,
};
use archiver_core::s3_location::S3Location;
use indicatif::ProgressBar;
use tokio_util::sync::CancellationToken;

use crate::archive::{self, ArchiveError, ArchiveOptions, ArchiveReport};
use crate::compress::{is_all_zero, CompressError, Compressor};
use crate::ebs_direct::{EbsDirectError, SnapshotReader};
use crate::pipeline::{self, ManifestUploadError};
use crate::upload::{ObjectSpec, UploadError};

/// Why a direct-path archive is raw when the mode was left to choose.
const RAW_REASON: &str = "read through the EBS direct APIs, which give blocks, not files";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotArchiveError {
    #[error(transparent)]
    EbsDirect(#[from] EbsDirectError),
    #[error(transparent)]
    Compress(#[from] CompressError),
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error(transparent)]
    Manifest(#[from] ManifestUploadError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("cannot copy snapshot {snapshot_id} into the local image {path}: {source}")]
    LocalCopy {
        snapshot_id: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("interrupted while copying snapshot {snapshot_id}")]
    CopyInterrupted { snapshot_id: String },
}

impl SnapshotArchiveError {
    pub fn is_interrupted(&self) -> bool {
        match self {
            SnapshotArchiveError::Upload(UploadError::Interrupted) | SnapshotArchiveError::CopyInterrupted { .. } => {
                true
            }
            SnapshotArchiveError::Archive(e) => e.is_interrupted(),
            _ => false,
        }
    }
}

/// Archives snapshot `snapshot_id` under `dest`: one raw object of the whole volume, or in files
/// mode the tree of each filesystem of a local copy ([`archive_files`]).
pub async fn archive_snapshot(
    s3: &aws_sdk_s3::Client,
    ebs: &aws_sdk_ebs::Client,
    snapshot_id: &str,
    dest: &S3Location,
    options: &ArchiveOptions,
    progress: Option<ProgressBar>,
    cancel: &CancellationToken,
) -> Result<ArchiveReport, SnapshotArchiveError> {
    let raw_reason = match options.mode {
        ModeRequest::Files => return archive_files(s3, ebs, snapshot_id, dest, options, progress, cancel).await,
        ModeRequest::Auto => Some(RAW_REASON.to_string()),
        ModeRequest::Raw => None,
    };
    let started_at = chrono::Utc::now();
    let clock = Instant::now();
    let compressor = Compressor::new(options.pipeline.compression, options.pipeline.level)?;
    let reader = SnapshotReader::open(ebs, snapshot_id).await?;
    let size = reader.size;
    tracing::info!(snapshot_id, size, "reading the snapshot through the EBS direct APIs");
    if let Some(bar) = &progress {
        bar.set_length(size);
    }
    let key = dest.key(&object_name(None, ArchiveMode::Raw, options.pipeline.compression));
    let mut metadata = HashMap::from([
        ("source-device".to_string(), snapshot_id.to_string()),
        ("archive-mode".to_string(), "raw".to_string()),
        ("read-path".to_string(), "direct".to_string()),
        ("snapshot-id".to_string(), snapshot_id.to_string()),
        ("tool-version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ]);
    if let Some(volume_id) = &options.volume_id {
        metadata.insert("volume-id".into(), volume_id.clone());
    }
    let object = ObjectSpec::new(key.clone(), metadata, options.pipeline.compression);
    let chunks = reader.chunks::<SnapshotArchiveError>(ebs);
    let uploaded =
        pipeline::send_stream(s3, &options.pipeline, &compressor, object, chunks, progress.as_ref(), cancel).await;
    let objects: Vec<ArchivedObject> = uploaded
        .iter()
        .map(|uploaded| ArchivedObject {
            key: key.clone(),
            mode: ArchiveMode::Raw,
            compression: options.pipeline.compression,
            partition: None,
            fs_type: None,
            raw_reason: raw_reason.clone(),
            size: uploaded.size,
            sha256: uploaded.sha256.clone(),
            bytes_in: uploaded.bytes_in,
            bytes_out: uploaded.size,
            content_sha256: uploaded.content_sha256.clone(),
            entries: None,
            dump: None,
            fs_used_bytes: None,
            segments: uploaded.segments.clone(),
            index: None,
        })
        .collect();
    let run = uploaded.map(|_| Manifest {
        format: MANIFEST_FORMAT,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        source: SourceInfo {
            device: snapshot_id.to_string(),
            size,
            partition_table: None,
            partition_table_dump: None,
            volume_id: options.volume_id.clone(),
            snapshot_id: Some(snapshot_id.to_string()),
            database: None,
        },
        objects: objects.clone(),
        started_at,
        finished_at: chrono::Utc::now(),
    });
    let manifest_key = pipeline::conclude(s3, dest, &options.pipeline.upload, &objects, run).await?;
    Ok(ArchiveReport {
        location: dest.to_string(),
        manifest_key,
        bytes_read: objects.iter().map(|o| o.bytes_in).sum(),
        objects,
        seconds: clock.elapsed().as_secs_f64(),
    })
}

/// Files mode: the snapshot's written blocks copied into a sparse image in a temporary directory
/// (removed on every path when it drops), which the device pipeline then archives.
async fn archive_files(
    s3: &aws_sdk_s3::Client,
    ebs: &aws_sdk_ebs::Client,
    snapshot_id: &str,
    dest: &S3Location,
    options: &ArchiveOptions,
    progress: Option<ProgressBar>,
    cancel: &CancellationToken,
) -> Result<ArchiveReport, SnapshotArchiveError> {
    let reader = SnapshotReader::open(ebs, snapshot_id).await?;
    let work = tempfile::Builder::new().prefix("backup-archiver-snapshot-").tempdir().map_err(|source| {
        SnapshotArchiveError::LocalCopy { snapshot_id: snapshot_id.into(), path: std::env::temp_dir(), source }
    })?;
    let image = work.path().join(format!("{snapshot_id}.img"));
    tracing::info!(snapshot_id, size = reader.size, image = %image.display(), "copying the written blocks locally");
    tokio::select! {
        copied = copy_blocks(ebs, reader, &image) => copied?,
        _ = cancel.cancelled() => return Err(SnapshotArchiveError::CopyInterrupted { snapshot_id: snapshot_id.into() }),
    }
    Ok(archive::archive_device(s3, &image, dest, options, progress, cancel).await?)
}

/// Writes the snapshot's non-zero chunks at their offsets into a new file of the volume's size:
/// every hole, listed or all-zero, stays a hole of the file.
async fn copy_blocks(
    ebs: &aws_sdk_ebs::Client,
    reader: SnapshotReader,
    image: &std::path::Path,
) -> Result<(), SnapshotArchiveError> {
    use futures::StreamExt;
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};

    let snapshot_id = reader.snapshot_id.clone();
    let failed = |source| SnapshotArchiveError::LocalCopy {
        snapshot_id: snapshot_id.clone(),
        path: image.to_path_buf(),
        source,
    };
    let mut file = tokio::fs::File::create(image).await.map_err(failed)?;
    file.set_len(reader.size).await.map_err(failed)?;
    let mut chunks = std::pin::pin!(reader.chunks::<SnapshotArchiveError>(ebs));
    let mut offset = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        if !is_all_zero(&chunk) {
            file.seek(std::io::SeekFrom::Start(offset)).await.map_err(failed)?;
            file.write_all(&chunk).await.map_err(failed)?;
        }
        offset += chunk.len() as u64;
    }
    file.flush().await.map_err(failed)?;
    Ok(())
}
