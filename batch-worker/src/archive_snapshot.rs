//! Archiving an EBS snapshot without a volume: its written blocks read through the EBS direct
//! APIs ([`SnapshotReader`]), holes as zeros (which the compressor stores for next to
//! nothing), in raw mode -> compress -> multipart upload -> manifest, the same archive as a
//! volume's raw one. No CreateVolume, no attachment, no AZ, no lazy loading.

use std::collections::HashMap;
use std::time::Instant;

use archiver_core::manifest::{
    object_name, ArchiveMode, ArchivedObject, Manifest, ModeRequest, SourceInfo, MANIFEST_FORMAT,
};
use archiver_core::s3_location::S3Location;
use indicatif::ProgressBar;
use tokio_util::sync::CancellationToken;

use crate::archive::{ArchiveOptions, ArchiveReport};
use crate::compress::{CompressError, Compressor};
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
    #[error("files mode needs a mounted filesystem: archive snapshot {snapshot_id} through a volume, or in raw mode")]
    FilesMode { snapshot_id: String },
}

impl SnapshotArchiveError {
    pub fn is_interrupted(&self) -> bool {
        matches!(self, SnapshotArchiveError::Upload(UploadError::Interrupted))
    }

    /// An error of the request rather than of the run.
    pub fn is_configuration(&self) -> bool {
        matches!(self, SnapshotArchiveError::FilesMode { .. })
    }
}

/// Archives snapshot `snapshot_id` under `dest` as one raw object of the whole volume.
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
        ModeRequest::Files => return Err(SnapshotArchiveError::FilesMode { snapshot_id: snapshot_id.into() }),
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
