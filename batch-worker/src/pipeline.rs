//! The stages every archive shares, whatever its source (a device, a database dump): one byte
//! stream -> [`compress`](crate::compress) -> [`upload`](crate::upload), metered; the manifest,
//! uploaded last; and the cleanup of a failed run, which deletes the objects the run stored, so a
//! prefix holds either a complete archive or nothing of that run.

use std::sync::{Arc, Mutex};

use archiver_core::index::MemberSize;
use archiver_core::manifest::{ArchivedObject, Compression, Manifest, Segment, MANIFEST_NAME};
use archiver_core::s3_location::S3Location;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_s3::Client;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use indicatif::ProgressBar;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::compress::{CompressError, Compressor};
use crate::upload::{self, ObjectSpec, UploadError, UploadSettings};

/// Progress is logged every this many bytes read, for runs without a terminal.
const LOG_EVERY_BYTES: u64 = 1 << 30;

/// How every object is compressed and stored.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    pub compression: Compression,
    /// `None`: the compression's default level.
    pub level: Option<u32>,
    /// Where objects go, and their part and segment sizes.
    pub upload: UploadSettings,
    /// Compression threads; the number of cores by default.
    pub workers: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("failed to upload the manifest s3://{bucket}/{key}: {message}")]
pub struct ManifestUploadError {
    pub bucket: String,
    pub key: String,
    pub message: String,
}

/// A stored object (one or more segments) and what went into it.
#[derive(Debug, Clone)]
pub struct StreamedObject {
    /// Bytes stored, all segments together.
    pub size: u64,
    /// Hex SHA-256 of the stored (compressed) bytes, all segments in order.
    pub sha256: String,
    /// The segment objects, in order, with their full-object checksums.
    pub segments: Vec<Segment>,
    /// Length of the uncompressed stream.
    pub bytes_in: u64,
    /// Hex SHA-256 of the uncompressed stream; a restore must reproduce it.
    pub content_sha256: String,
    /// Every gzip member or zstd frame, in order: what an index locates.
    pub members: Vec<MemberSize>,
}

/// Compresses `chunks` and uploads them as `object`, in segments when the stream is longer than
/// the segment size. An `Err` item (the source failed) aborts the upload and is returned; so is a
/// compression or upload error, or cancellation.
pub async fn send_stream<S, E>(
    client: &Client,
    options: &PipelineOptions,
    compressor: &Arc<Compressor>,
    object: ObjectSpec,
    chunks: S,
    progress: Option<&ProgressBar>,
    cancel: &CancellationToken,
) -> Result<StreamedObject, E>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: From<CompressError> + From<UploadError> + Send + 'static,
{
    let meter = Arc::new(Mutex::new(InputMeter::default()));
    let mut stored = Sha256::new();
    let mut members = Vec::new();
    let body = compressor.compress_stream(metered(chunks, &meter, progress), options.workers).inspect(|member| {
        if let Ok(member) = member {
            // Members leave in the order their chunks entered, so the oldest length is this one's.
            let len = meter.lock().expect("meter lock").chunk_lens.pop_front().unwrap_or_default();
            members.push(MemberSize { len, compressed_len: member.len() as u64 });
        }
    });
    let segments = upload::upload_segments(client, &options.upload, &object, body, &mut stored, cancel).await?;
    let meter = std::mem::take(&mut *meter.lock().expect("meter lock"));
    Ok(StreamedObject {
        size: segments.iter().map(|s| s.size).sum(),
        sha256: format!("{:x}", stored.finalize()),
        segments,
        bytes_in: meter.bytes,
        content_sha256: format!("{:x}", meter.hasher.finalize()),
        members,
    })
}

/// Ends a run: on success uploads `manifest` (the run's last object) and returns its key; on
/// failure, of the run or of the manifest upload, deletes the run's `objects` and returns the
/// error.
pub async fn conclude<E>(
    client: &Client,
    dest: &S3Location,
    settings: &UploadSettings,
    objects: &[ArchivedObject],
    run: Result<Manifest, E>,
) -> Result<String, E>
where
    E: From<ManifestUploadError>,
{
    let key = dest.key(MANIFEST_NAME);
    let result = match run {
        Ok(manifest) => put_manifest(client, settings, &key, &manifest).await.map_err(E::from),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        let indexes = objects.iter().filter_map(|o| o.index.as_ref().map(|i| i.key.clone()));
        let segments = objects.iter().flat_map(|o| o.stored_segments().into_iter().map(|s| s.key));
        delete_keys(client, &dest.bucket, segments.chain(indexes)).await;
        return Err(e);
    }
    Ok(key)
}

/// Deletes what a failed run stored, logging (not returning) what cannot be deleted: the run's
/// own error is the one to report.
pub async fn delete_keys(client: &Client, bucket: &str, keys: impl Iterator<Item = String>) {
    for key in keys {
        if let Err(delete) = client.delete_object().bucket(bucket).key(&key).send().await {
            tracing::error!(key, error = %DisplayErrorContext(delete), "failed to delete an object of the failed archive");
        }
    }
}

/// Bytes and SHA-256 of an object's uncompressed stream.
#[derive(Default)]
struct InputMeter {
    bytes: u64,
    hasher: Sha256,
    /// Lengths of the chunks read and not yet compressed, oldest first.
    chunk_lens: std::collections::VecDeque<u64>,
}

fn metered<S, E>(
    chunks: S,
    meter: &Arc<Mutex<InputMeter>>,
    progress: Option<&ProgressBar>,
) -> impl Stream<Item = Result<Bytes, E>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    let meter = Arc::clone(meter);
    let progress = progress.cloned();
    chunks.inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            let mut meter = meter.lock().expect("meter lock");
            let before = meter.bytes;
            meter.bytes += chunk.len() as u64;
            meter.chunk_lens.push_back(chunk.len() as u64);
            meter.hasher.update(chunk);
            if before / LOG_EVERY_BYTES != meter.bytes / LOG_EVERY_BYTES {
                tracing::info!(bytes_read = meter.bytes, "progress");
            }
            if let Some(bar) = &progress {
                bar.inc(chunk.len() as u64);
            }
        }
    })
}

async fn put_manifest(
    client: &Client,
    settings: &UploadSettings,
    key: &str,
    manifest: &Manifest,
) -> Result<(), ManifestUploadError> {
    let body = serde_json::to_vec_pretty(manifest).expect("a manifest always serializes");
    put_readable_object(client, settings, key, "application/json", body).await.map_err(|message| ManifestUploadError {
        bucket: settings.bucket.clone(),
        key: key.into(),
        message,
    })
}

#[derive(Debug, thiserror::Error)]
#[error("failed to upload the index s3://{bucket}/{key}: {message}")]
pub struct IndexUploadError {
    pub bucket: String,
    pub key: String,
    pub message: String,
}

/// Uploads an object's index (before the manifest that names it).
pub async fn put_index(
    client: &Client,
    settings: &UploadSettings,
    key: &str,
    bytes: Vec<u8>,
) -> Result<(), IndexUploadError> {
    put_readable_object(client, settings, key, "application/octet-stream", bytes)
        .await
        .map_err(|message| IndexUploadError { bucket: settings.bucket.clone(), key: key.into(), message })
}

/// A small object that must be readable at once: it stays in the default storage class whatever
/// the data objects use, so an archive can always be listed, searched and checked without a
/// Glacier restore.
async fn put_readable_object(
    client: &Client,
    settings: &UploadSettings,
    key: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(), String> {
    let mut request = client
        .put_object()
        .bucket(&settings.bucket)
        .key(key)
        .content_type(content_type)
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32C)
        .body(ByteStream::from(body));
    if let Some(kms_key) = &settings.sse_kms_key_id {
        request = request.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(kms_key);
    }
    request.send().await.map_err(|e| DisplayErrorContext(e).to_string())?;
    Ok(())
}
