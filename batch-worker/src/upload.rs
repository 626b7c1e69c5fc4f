//! The last stage: an S3 multipart upload fed by the compressed stream, with a bounded number of
//! parts in flight, per-part CRC32C checksums and the SDK's retries with backoff. The object is
//! completed only when the stream ended cleanly and every part was stored; on any error, or on
//! cancellation, the in-flight parts are stopped first and then the upload is aborted, so no
//! part is left behind.

use std::collections::HashMap;

use archiver_core::manifest::Compression;
use archiver_core::part_size::{PartSchedule, MAX_PARTS};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption, StorageClass,
};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Parts buffered for upload at once may hold at most this much; with 16 MiB parts the
/// `concurrency` setting is the limit, with very large parts this budget is.
const IN_FLIGHT_BUDGET: u64 = 128 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("failed to start the upload of s3://{bucket}/{key}: {message}")]
    Create { bucket: String, key: String, message: String },
    #[error("failed to upload part {part_number} of s3://{bucket}/{key}: {message}")]
    UploadPart { bucket: String, key: String, part_number: u32, message: String },
    #[error("failed to complete the upload of s3://{bucket}/{key}: {message}")]
    Complete { bucket: String, key: String, message: String },
    #[error("s3://{bucket}/{key} holds {stored} bytes after completion, {written} were written")]
    SizeMismatch { bucket: String, key: String, stored: u64, written: u64 },
    #[error("s3://{bucket}/{key} would need more than {MAX_PARTS} parts: the source grew past its size")]
    TooManyParts { bucket: String, key: String },
    #[error("an upload task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("interrupted")]
    Interrupted,
}

/// Where and how objects are written.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    pub bucket: String,
    pub storage_class: Option<StorageClass>,
    pub sse_kms_key_id: Option<String>,
    /// Parts uploaded at once.
    pub concurrency: usize,
}

/// The object to write: its key, user metadata and content type.
#[derive(Debug, Clone)]
pub struct ObjectSpec {
    pub key: String,
    pub metadata: HashMap<String, String>,
    pub content_type: &'static str,
}

impl ObjectSpec {
    /// An object of `compression`'s content type. S3 user metadata travels in HTTP headers, so
    /// every value is made printable ASCII (other characters become `?`).
    pub fn new(key: String, mut metadata: HashMap<String, String>, compression: Compression) -> Self {
        for value in metadata.values_mut() {
            *value = value.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
        }
        let content_type = match compression {
            Compression::Gzip => "application/gzip",
            Compression::Zstd => "application/zstd",
        };
        ObjectSpec { key, metadata, content_type }
    }
}

/// What a completed upload holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedObject {
    pub size: u64,
    /// Hex SHA-256 of the object's bytes.
    pub sha256: String,
}

/// Uploads `body` as `object`. `body` yields the object's bytes in order; an `Err` item (the
/// source or compressor failed) aborts the upload and is returned.
pub async fn upload_stream<S, E>(
    client: &Client,
    settings: &UploadSettings,
    object: ObjectSpec,
    schedule: PartSchedule,
    body: S,
    cancel: &CancellationToken,
) -> Result<UploadedObject, E>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: From<UploadError>,
{
    let bucket = settings.bucket.as_str();
    let ObjectSpec { key, metadata, content_type } = object;
    let key = key.as_str();
    let mut create = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .set_metadata(Some(metadata))
        .checksum_algorithm(ChecksumAlgorithm::Crc32C)
        .set_storage_class(settings.storage_class.clone());
    if let Some(kms_key) = &settings.sse_kms_key_id {
        create = create.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(kms_key);
    }
    let upload_id = create
        .send()
        .await
        .map_err(|e| UploadError::Create { bucket: bucket.into(), key: key.into(), message: DisplayErrorContext(e).to_string() })?
        .upload_id
        .unwrap_or_default();
    let upload = Upload { client: client.clone(), bucket: bucket.to_string(), key: key.to_string(), upload_id };

    let mut tasks = JoinSet::new();
    match upload.send_parts(settings.concurrency, schedule, body, cancel, &mut tasks).await {
        Ok((parts, object)) => match upload.complete(parts, object.size).await {
            Ok(()) => Ok(object),
            Err(e) => {
                upload.abort().await;
                Err(e.into())
            }
        },
        Err(e) => {
            // Stop every part in flight before aborting: a part that lands after the abort
            // would be kept (and billed) by S3.
            tasks.shutdown().await;
            upload.abort().await;
            Err(e)
        }
    }
}

struct Upload {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
}

impl Upload {
    async fn send_parts<S, E>(
        &self,
        concurrency: usize,
        schedule: PartSchedule,
        body: S,
        cancel: &CancellationToken,
        tasks: &mut JoinSet<Result<CompletedPart, UploadError>>,
    ) -> Result<(Vec<CompletedPart>, UploadedObject), E>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: From<UploadError>,
    {
        futures::pin_mut!(body);
        let mut done = Vec::new();
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut part_number = 1u32;
        let mut buf = BytesMut::with_capacity(schedule.part_size(1) as usize);
        loop {
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(UploadError::Interrupted.into()),
                Some(finished) = tasks.join_next(), if !tasks.is_empty() => {
                    done.push(finished.map_err(UploadError::from)??);
                    continue;
                }
                next = body.next() => next,
            };
            let Some(chunk) = next else { break };
            let chunk = chunk?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            buf.extend_from_slice(&chunk);
            let part_size = schedule.part_size(part_number) as usize;
            if buf.len() >= part_size {
                let rest = buf.split_off(part_size);
                let part = std::mem::replace(&mut buf, BytesMut::with_capacity(schedule.part_size(part_number + 1) as usize));
                buf.extend_from_slice(&rest);
                self.start_part(part_number, part.freeze(), tasks)?;
                part_number += 1;
                let limit = (IN_FLIGHT_BUDGET / part_size as u64).clamp(1, concurrency.max(1) as u64) as usize;
                while tasks.len() >= limit {
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => return Err(UploadError::Interrupted.into()),
                        Some(finished) = tasks.join_next() => done.push(finished.map_err(UploadError::from)??),
                    }
                }
            }
        }
        if !buf.is_empty() || part_number == 1 {
            self.start_part(part_number, buf.freeze(), tasks)?;
        }
        while !tasks.is_empty() {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(UploadError::Interrupted.into()),
                Some(finished) = tasks.join_next() => done.push(finished.map_err(UploadError::from)??),
            }
        }
        done.sort_by_key(|p| p.part_number);
        Ok((done, UploadedObject { size, sha256: format!("{:x}", hasher.finalize()) }))
    }

    fn start_part(
        &self,
        part_number: u32,
        data: Bytes,
        tasks: &mut JoinSet<Result<CompletedPart, UploadError>>,
    ) -> Result<(), UploadError> {
        if part_number > MAX_PARTS {
            return Err(UploadError::TooManyParts { bucket: self.bucket.clone(), key: self.key.clone() });
        }
        let data_len = data.len();
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(part_number as i32)
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .body(ByteStream::from(data));
        let (bucket, key) = (self.bucket.clone(), self.key.clone());
        tracing::debug!(part_number, bytes = data_len, "uploading part");
        tasks.spawn(async move {
            let output = request.send().await.map_err(|e| UploadError::UploadPart {
                bucket,
                key,
                part_number,
                message: DisplayErrorContext(e).to_string(),
            })?;
            tracing::debug!(part_number, "uploaded part");
            Ok(CompletedPart::builder()
                .part_number(part_number as i32)
                .set_e_tag(output.e_tag)
                .set_checksum_crc32_c(output.checksum_crc32_c)
                .build())
        });
        Ok(())
    }

    async fn complete(&self, parts: Vec<CompletedPart>, written: u64) -> Result<(), UploadError> {
        let err = |message: String| UploadError::Complete { bucket: self.bucket.clone(), key: self.key.clone(), message };
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| err(DisplayErrorContext(e).to_string()))?;
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await
            .map_err(|e| err(DisplayErrorContext(e).to_string()))?;
        let stored = head.content_length.unwrap_or(-1).max(0) as u64;
        if stored != written {
            let _ = self.client.delete_object().bucket(&self.bucket).key(&self.key).send().await;
            return Err(UploadError::SizeMismatch { bucket: self.bucket.clone(), key: self.key.clone(), stored, written });
        }
        Ok(())
    }

    async fn abort(&self) {
        let result = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await;
        match result {
            Ok(_) => tracing::info!(bucket = %self.bucket, key = %self.key, "aborted multipart upload"),
            Err(e) => tracing::error!(
                bucket = %self.bucket, key = %self.key, upload_id = %self.upload_id,
                error = %DisplayErrorContext(e), "failed to abort multipart upload; the bucket's AbortIncompleteMultipartUpload rule will remove it"
            ),
        }
    }
}
