//! The last stage: S3 multipart uploads fed by the compressed stream. Every part has the
//! configured size; a stream longer than the segment size continues in the next segment object,
//! cut between two gzip members or zstd frames (each item of the stream is one), so each segment
//! is a valid stream alone. Memory is bounded: the part being filled plus at most `concurrency`
//! parts in flight, whatever the source size. Each segment's full-object CRC64NVME is computed
//! while streaming and sent with CompleteMultipartUpload (checksum type FULL_OBJECT), so S3 itself
//! refuses an object whose bytes differ from what was sent; per-part CRC64NVME checksums let S3
//! refuse a damaged part at once, and the SDK retries with backoff. A segment is completed only
//! when its parts were all stored; on any error, or on cancellation, the in-flight parts are
//! stopped first and then the upload is aborted, so no part is left behind, and the segments
//! already completed are deleted.

use std::collections::HashMap;
use std::pin::Pin;

use archiver_core::manifest::{segment_key, Compression, Segment};
use archiver_core::part_size::{UploadSizes, MAX_PARTS};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
    StorageClass,
};
use aws_sdk_s3::Client;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures::stream::Peekable;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The part being filled and the parts in flight may hold at most this much when the part size
/// allows: with 16 MiB parts the `concurrency` setting (4 by default: 80 MiB with the part being
/// filled) is the limit. With parts above 64 MiB one part is still always in flight, so memory is
/// then two parts.
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
    #[error("s3://{bucket}/{key} has the CRC64NVME {stored} after completion, the bytes written have {written}")]
    ChecksumMismatch { bucket: String, key: String, stored: String, written: String },
    #[error("s3://{bucket}/{key} would need more than {MAX_PARTS} parts")]
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
    pub sizes: UploadSizes,
}

impl UploadSettings {
    /// Parts in flight at once: `concurrency`, fewer when the parts are large, never none.
    fn parts_in_flight(&self) -> usize {
        let budget = (IN_FLIGHT_BUDGET / self.sizes.part_size).saturating_sub(1) as usize;
        budget.clamp(1, self.concurrency.max(1))
    }
}

/// The object to write: its key, user metadata and content type.
#[derive(Debug, Clone)]
pub struct ObjectSpec {
    pub key: String,
    pub metadata: HashMap<String, String>,
    pub content_type: &'static str,
    /// zstd: each segment ends with the seekable format's seek table of its frames.
    pub seek_table: bool,
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
        ObjectSpec { key, metadata, content_type, seek_table: compression == Compression::Zstd }
    }
}

/// The full-object CRC64NVME of some bytes, as S3 reports it: base64 of the 8 big-endian bytes.
pub struct FullObjectChecksum(crc_fast::Digest);

impl FullObjectChecksum {
    pub fn new() -> Self {
        FullObjectChecksum(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme))
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0.finalize().to_be_bytes())
    }
}

impl Default for FullObjectChecksum {
    fn default() -> Self {
        Self::new()
    }
}

/// Uploads `body` as `object`, in as many segment objects as the segment size requires (the
/// first one under `object.key`, see [`segment_key`]). Each item of `body` is one gzip member or
/// zstd frame and is never split across segments. An `Err` item (the source or compressor
/// failed) aborts the upload, deletes the segments already stored, and is returned. `stored`
/// hashes every byte stored, seek tables included.
pub async fn upload_segments<S, E>(
    client: &Client,
    settings: &UploadSettings,
    object: &ObjectSpec,
    body: S,
    stored: &mut Sha256,
    cancel: &CancellationToken,
) -> Result<Vec<Segment>, E>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: From<UploadError>,
{
    let body = std::pin::pin!(body.peekable());
    let mut body: Pin<&mut Peekable<S>> = body;
    let mut segments: Vec<Segment> = Vec::new();
    let result = loop {
        let key = segment_key(&object.key, segments.len());
        match upload_segment(client, settings, object, &key, body.as_mut(), stored, cancel).await {
            Ok(segment) => segments.push(segment),
            Err(e) => break Err(e),
        }
        match body.as_mut().peek().await {
            None => break Ok(()),
            Some(Ok(_)) => tracing::info!(segments = segments.len(), "segment full: continuing in the next segment"),
            Some(Err(_)) => {
                let Some(Err(e)) = body.as_mut().next().await else { unreachable!("the peeked item is an error") };
                break Err(e);
            }
        }
    };
    match result {
        Ok(()) => Ok(segments),
        Err(e) => {
            for segment in &segments {
                if let Err(delete) = client.delete_object().bucket(&settings.bucket).key(&segment.key).send().await {
                    tracing::error!(
                        key = %segment.key,
                        error = %DisplayErrorContext(delete),
                        "failed to delete a segment of the failed upload"
                    );
                }
            }
            Err(e)
        }
    }
}

/// Uploads one segment: the items of `body` that fit in the segment size (at least one).
async fn upload_segment<S, E>(
    client: &Client,
    settings: &UploadSettings,
    object: &ObjectSpec,
    key: &str,
    body: Pin<&mut Peekable<S>>,
    stored: &mut Sha256,
    cancel: &CancellationToken,
) -> Result<Segment, E>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: From<UploadError>,
{
    let bucket = settings.bucket.as_str();
    let mut create = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type(object.content_type)
        .set_metadata(Some(object.metadata.clone()))
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_type(ChecksumType::FullObject)
        .set_storage_class(settings.storage_class.clone());
    if let Some(kms_key) = &settings.sse_kms_key_id {
        create = create.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(kms_key);
    }
    let upload_id = create
        .send()
        .await
        .map_err(|e| UploadError::Create {
            bucket: bucket.into(),
            key: key.into(),
            message: DisplayErrorContext(e).to_string(),
        })?
        .upload_id
        .unwrap_or_default();
    let upload = Upload { client: client.clone(), bucket: bucket.to_string(), key: key.to_string(), upload_id };

    let mut tasks = JoinSet::new();
    match upload.send_parts(settings, object.seek_table, body, stored, cancel, &mut tasks).await {
        Ok((parts, segment)) => match upload.complete(parts, &segment).await {
            Ok(()) => Ok(segment),
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
    /// Sends the parts of one segment: items of `body` while they fit in the segment size, then
    /// with `seek_table` the table of the zstd frames it holds.
    async fn send_parts<S, E>(
        &self,
        settings: &UploadSettings,
        seek_table: bool,
        mut body: Pin<&mut Peekable<S>>,
        stored: &mut Sha256,
        cancel: &CancellationToken,
        tasks: &mut JoinSet<Result<CompletedPart, UploadError>>,
    ) -> Result<(Vec<CompletedPart>, Segment), E>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: From<UploadError>,
    {
        let part_size = settings.sizes.part_size as usize;
        let in_flight = settings.parts_in_flight();
        let mut done = Vec::new();
        let mut checksum = FullObjectChecksum::new();
        let mut size = 0u64;
        let mut part_number = 1u32;
        // Allocated at its full size once, filled exactly, never grown: a part costs part_size.
        let mut buf: Option<BytesMut> = None;
        // The frames' (compressed, decompressed) sizes; `None` once a frame's header does not
        // record its size, and the segment then ends without a table.
        let mut frames: Option<Vec<(u32, u32)>> = seek_table.then(Vec::new);
        loop {
            let fits = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(UploadError::Interrupted.into()),
                Some(finished) = tasks.join_next(), if !tasks.is_empty() => {
                    done.push(finished.map_err(UploadError::from)??);
                    continue;
                }
                next = body.as_mut().peek() => match next {
                    None => false,
                    // An item larger than a whole segment still goes alone into one.
                    Some(Ok(item)) => size == 0 || size + item.len() as u64 <= settings.sizes.segment_size,
                    Some(Err(_)) => true,
                },
            };
            let item = if fits {
                let item = body.as_mut().next().await.expect("a peeked item")?;
                if let Some(list) = &mut frames {
                    let decompressed = crate::seek_table::frame_content_size(&item).and_then(|n| u32::try_from(n).ok());
                    match (u32::try_from(item.len()), decompressed) {
                        (Ok(compressed), Some(decompressed)) => list.push((compressed, decompressed)),
                        _ => frames = None,
                    }
                }
                item
            } else if let Some(list) = frames.take() {
                Bytes::from(crate::seek_table::seek_table(&list))
            } else {
                break;
            };
            stored.update(&item);
            checksum.update(&item);
            size += item.len() as u64;
            let mut rest: &[u8] = &item;
            while !rest.is_empty() {
                let filling = buf.get_or_insert_with(|| BytesMut::with_capacity(part_size));
                let take = rest.len().min(part_size - filling.len());
                filling.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if filling.len() == part_size {
                    let part = buf.take().expect("the buffer being filled").freeze();
                    self.start_part(part_number, part, tasks)?;
                    part_number += 1;
                    // The next buffer is allocated only once a slot is free: memory is the
                    // parts in flight plus the one being filled.
                    while tasks.len() >= in_flight {
                        tokio::select! {
                            biased;
                            _ = cancel.cancelled() => return Err(UploadError::Interrupted.into()),
                            Some(finished) = tasks.join_next() => done.push(finished.map_err(UploadError::from)??),
                        }
                    }
                }
            }
        }
        if let Some(last) = buf.take().filter(|b| !b.is_empty()) {
            self.start_part(part_number, last.freeze(), tasks)?;
        } else if part_number == 1 {
            // An empty stream is still an object: one empty part.
            self.start_part(part_number, Bytes::new(), tasks)?;
        }
        while !tasks.is_empty() {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(UploadError::Interrupted.into()),
                Some(finished) = tasks.join_next() => done.push(finished.map_err(UploadError::from)??),
            }
        }
        done.sort_by_key(|p| p.part_number);
        Ok((done, Segment { key: self.key.clone(), size, checksum_crc64nvme: Some(checksum.finish()) }))
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
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
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
                .set_checksum_crc64_nvme(output.checksum_crc64_nvme)
                .build())
        });
        Ok(())
    }

    /// Completes the upload with the full-object checksum, which S3 checks against the parts it
    /// holds, then reads back the size and checksum S3 keeps with the object.
    async fn complete(&self, parts: Vec<CompletedPart>, written: &Segment) -> Result<(), UploadError> {
        let err =
            |message: String| UploadError::Complete { bucket: self.bucket.clone(), key: self.key.clone(), message };
        let checksum = written.checksum_crc64nvme.clone().expect("the uploader records every checksum");
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .checksum_type(ChecksumType::FullObject)
            .checksum_crc64_nvme(&checksum)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| err(DisplayErrorContext(e).to_string()))?;
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| err(DisplayErrorContext(e).to_string()))?;
        let stored = head.content_length.unwrap_or(-1).max(0) as u64;
        let mismatch = if stored != written.size {
            Some(UploadError::SizeMismatch {
                bucket: self.bucket.clone(),
                key: self.key.clone(),
                stored,
                written: written.size,
            })
        } else {
            match head.checksum_crc64_nvme {
                Some(stored) if stored != checksum => Some(UploadError::ChecksumMismatch {
                    bucket: self.bucket.clone(),
                    key: self.key.clone(),
                    stored,
                    written: checksum,
                }),
                Some(_) => None,
                None => {
                    // S3 always reports it; an S3-compatible server may not. The manifest keeps
                    // the checksum, and `verify --deep` can still check the bytes.
                    tracing::warn!(
                        bucket = %self.bucket,
                        key = %self.key,
                        "the server reports no CRC64NVME for the completed object"
                    );
                    None
                }
            }
        };
        if let Some(mismatch) = mismatch {
            let _ = self.client.delete_object().bucket(&self.bucket).key(&self.key).send().await;
            return Err(mismatch);
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
                error = %DisplayErrorContext(e),
                "failed to abort multipart upload; the bucket's AbortIncompleteMultipartUpload rule will remove it"
            ),
        }
    }
}
