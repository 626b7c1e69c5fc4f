//! The EBS direct APIs, without any volume: a new snapshot written block by block (a restore to a
//! snapshot) and a snapshot's written blocks read in order (an archive without CreateVolume).
//! Every block is 512 KiB and travels with its SHA-256, checked on both sides; requests run
//! [`BLOCKS_IN_FLIGHT`] at once, within the per-snapshot request quota, and each is tried
//! [`BLOCK_ATTEMPTS`] times.
//! <https://docs.aws.amazon.com/ebs/latest/userguide/ebsapis-using-apis.html>

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ebs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ebs::primitives::ByteStream;
use aws_sdk_ebs::types::{ChecksumAggregationMethod, ChecksumAlgorithm, Tag};
use aws_sdk_ebs::Client;
use base64::Engine;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::compress::{is_all_zero, CHUNK_SIZE};

/// The only block size of the EBS direct APIs (PutSnapshotBlock's DataLength "Valid values: 524288").
pub const BLOCK_SIZE: usize = 512 * 1024;
/// Block requests at once: coldsnap's 64 workers keep a snapshot busy, and 64 blocks are 32 MiB.
pub const BLOCKS_IN_FLIGHT: usize = 64;
/// Tries per block. The SDK's own retries already cover throttling and 5xx answers; these cover
/// what it does not retry: a checksum refused, a body cut short or corrupted.
pub const BLOCK_ATTEMPTS: u32 = 3;
/// Wait before the next try, times the number of the try that failed.
const RETRY_DELAY: Duration = Duration::from_millis(500);
/// GetSnapshotBlock and PutSnapshotBlock: 1,000 requests per second per snapshot each.
/// <https://docs.aws.amazon.com/ebs/latest/userguide/ebsapi-performance.html>
const REQUESTS_PER_SECOND: u32 = 1000;
/// ListSnapshotBlocks' largest page.
const LIST_PAGE_SIZE: i32 = 10_000;
/// EBS cancels a snapshot that no block reaches for this long (StartSnapshot's default, stated
/// here so that it is no surprise).
const SNAPSHOT_TIMEOUT_MINUTES: i32 = 60;
/// After CompleteSnapshot, EC2 reports the snapshot `pending` until EBS has checked it.
const COMPLETION_POLL: Duration = Duration::from_secs(2);
/// Arbitrary: EBS checks a completed snapshot in seconds to minutes; past this the operator is
/// told to look, and the snapshot is deleted like any incomplete one.
const COMPLETION_WAIT: Duration = Duration::from_secs(3600);
const GIB: u64 = 1 << 30;
const BLOCKS_PER_CHUNK: u64 = (CHUNK_SIZE / BLOCK_SIZE) as u64;

#[derive(Debug, thiserror::Error)]
pub enum EbsDirectError {
    #[error("StartSnapshot of a {volume_size_gib} GiB snapshot failed: {message}")]
    StartSnapshot { volume_size_gib: u64, message: String },
    #[error("snapshot {snapshot_id} has {block_size}-byte blocks; only {BLOCK_SIZE} is supported")]
    BlockSize { snapshot_id: String, block_size: i64 },
    #[error("PutSnapshotBlock {block_index} of {snapshot_id} failed {attempts} times; last: {message}")]
    PutBlock { snapshot_id: String, block_index: u64, attempts: u32, message: String },
    #[error("CompleteSnapshot of {snapshot_id} failed: {message}")]
    CompleteSnapshot { snapshot_id: String, message: String },
    #[error("snapshot {snapshot_id} ended in state {state}: {message}")]
    SnapshotFailed { snapshot_id: String, state: String, message: String },
    #[error("snapshot {snapshot_id} was still pending {:?} after CompleteSnapshot; it is kept: check it with `aws ec2 describe-snapshots`", COMPLETION_WAIT)]
    CompletionTimeout { snapshot_id: String },
    #[error("ListSnapshotBlocks of {snapshot_id} failed: {message}")]
    ListBlocks { snapshot_id: String, message: String },
    #[error("GetSnapshotBlock {block_index} of {snapshot_id} failed {attempts} times; last: {message}")]
    GetBlock { snapshot_id: String, block_index: u64, attempts: u32, message: String },
    #[error("the source is larger than the {volume_size_gib} GiB snapshot")]
    TooLarge { volume_size_gib: u64 },
    #[error("interrupted")]
    Interrupted,
}

/// The snapshot a restore makes.
#[derive(Debug, Clone, Default)]
pub struct SnapshotSpec {
    pub volume_size_gib: u64,
    pub description: Option<String>,
    pub tags: Vec<(String, String)>,
    /// Encrypts the snapshot with this key; without it the account's default encryption applies.
    pub kms_key_id: Option<String>,
}

/// The smallest whole number of GiB holding `bytes` (an EBS volume's size unit), at least 1.
pub fn volume_size_gib(bytes: u64) -> u64 {
    bytes.div_ceil(GIB).max(1)
}

/// Spaces request starts evenly, so that a snapshot's requests stay within its quota.
struct RateLimit {
    next: Mutex<Instant>,
    interval: Duration,
}

impl RateLimit {
    fn per_second(n: u32) -> Self {
        RateLimit { next: Mutex::new(Instant::now()), interval: Duration::from_secs(1) / n }
    }

    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().expect("rate limit lock");
            let at = (*next).max(Instant::now());
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// The base64 SHA-256 the EBS direct APIs exchange, and its raw digest.
fn sha256_base64(data: &[u8]) -> (String, [u8; 32]) {
    let digest: [u8; 32] = Sha256::digest(data).into();
    (base64::engine::general_purpose::STANDARD.encode(digest), digest)
}

/// What a snapshot write produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WrittenSnapshot {
    pub snapshot_id: String,
    pub volume_size_gib: u64,
    /// Blocks written; all-zero blocks are left out (a snapshot reads them as zeros).
    pub blocks_written: u64,
}

/// Writes `blocks` (the source's consecutive 512 KiB blocks, the last one possibly short) into a
/// new snapshot, and completes it once the stream has ended cleanly. Any error (of the source, a
/// block, the completion) or cancellation deletes the incomplete snapshot.
pub async fn write_snapshot<S, E>(
    ebs: &Client,
    ec2: &aws_sdk_ec2::Client,
    spec: &SnapshotSpec,
    blocks: S,
    progress: Option<&ProgressBar>,
    cancel: &CancellationToken,
) -> Result<WrittenSnapshot, E>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: From<EbsDirectError>,
{
    let snapshot_id = start_snapshot(ebs, ec2, spec).await?;
    tracing::info!(snapshot_id, volume_size_gib = spec.volume_size_gib, "started snapshot");
    let writer = BlockWriter {
        ebs,
        snapshot_id: &snapshot_id,
        limit: RateLimit::per_second(REQUESTS_PER_SECOND),
        digests: Mutex::new(BTreeMap::new()),
    };
    let capacity = spec.volume_size_gib * GIB / BLOCK_SIZE as u64;
    let upload = async {
        blocks
            .enumerate()
            .map(|(index, block)| block.map(|b| (index as u64, b)))
            .map_ok(|(index, block)| {
                let writer = &writer;
                async move {
                    if index >= capacity {
                        return Err(E::from(EbsDirectError::TooLarge { volume_size_gib: spec.volume_size_gib }));
                    }
                    if !is_all_zero(&block) {
                        writer.put(index, block).await?;
                    }
                    if let Some(bar) = progress {
                        bar.inc(BLOCK_SIZE as u64);
                    }
                    Ok(())
                }
            })
            .try_buffer_unordered(BLOCKS_IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        let digests = std::mem::take(&mut *writer.digests.lock().expect("digests lock"));
        complete_snapshot(ebs, &snapshot_id, &digests).await?;
        Ok::<_, E>(WrittenSnapshot {
            snapshot_id: snapshot_id.clone(),
            volume_size_gib: spec.volume_size_gib,
            blocks_written: digests.len() as u64,
        })
    };
    let result = tokio::select! {
        result = async { upload.await.map_err(Failed::Other) } => match result {
            Ok(written) => wait_completed(ec2, &snapshot_id).await.map(|()| written).map_err(Failed::Direct),
            Err(e) => Err(e),
        },
        _ = cancel.cancelled() => Err(Failed::Direct(EbsDirectError::Interrupted)),
    };
    match result {
        Ok(written) => Ok(written),
        // Complete on our side, and EBS may still finish it: the operator decides.
        Err(Failed::Direct(e @ EbsDirectError::CompletionTimeout { .. })) => Err(E::from(e)),
        Err(e) => {
            delete_snapshot(ec2, &snapshot_id).await;
            Err(match e {
                Failed::Direct(e) => E::from(e),
                Failed::Other(e) => e,
            })
        }
    }
}

/// A failure of a snapshot write: this module's own, which decide whether the snapshot is kept,
/// or the source's.
enum Failed<E> {
    Direct(EbsDirectError),
    Other(E),
}

async fn start_snapshot(
    ebs: &Client,
    ec2: &aws_sdk_ec2::Client,
    spec: &SnapshotSpec,
) -> Result<String, EbsDirectError> {
    let tags = spec.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
    let started = ebs
        .start_snapshot()
        .volume_size(spec.volume_size_gib as i64)
        .set_description(spec.description.clone())
        .set_tags(Some(tags))
        .set_encrypted(spec.kms_key_id.as_ref().map(|_| true))
        .set_kms_key_arn(spec.kms_key_id.clone())
        .timeout(SNAPSHOT_TIMEOUT_MINUTES)
        .send()
        .await
        .map_err(|e| EbsDirectError::StartSnapshot {
            volume_size_gib: spec.volume_size_gib,
            message: sdk_message(e),
        })?;
    let snapshot_id = started.snapshot_id().unwrap_or_default().to_string();
    let block_size = started.block_size().map(i64::from).unwrap_or_default();
    if block_size != BLOCK_SIZE as i64 {
        // Started, but nothing will complete it.
        delete_snapshot(ec2, &snapshot_id).await;
        return Err(EbsDirectError::BlockSize { snapshot_id, block_size });
    }
    Ok(snapshot_id)
}

struct BlockWriter<'a> {
    ebs: &'a Client,
    snapshot_id: &'a str,
    limit: RateLimit,
    /// SHA-256 of every written block by index: CompleteSnapshot's LINEAR checksum hashes them in
    /// index order.
    digests: Mutex<BTreeMap<u64, [u8; 32]>>,
}

impl BlockWriter<'_> {
    async fn put(&self, index: u64, block: Bytes) -> Result<(), EbsDirectError> {
        let block = if block.len() < BLOCK_SIZE {
            let mut padded = block.to_vec();
            padded.resize(BLOCK_SIZE, 0);
            Bytes::from(padded)
        } else {
            block
        };
        let (checksum, digest) = sha256_base64(&block);
        let mut message = String::new();
        for attempt in 1..=BLOCK_ATTEMPTS {
            self.limit.wait().await;
            let sent = self
                .ebs
                .put_snapshot_block()
                .snapshot_id(self.snapshot_id)
                .block_index(index as i32)
                .block_data(ByteStream::from(block.clone()))
                .data_length(BLOCK_SIZE as i32)
                .checksum(&checksum)
                .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
                .send()
                .await;
            match sent {
                Ok(_) => {
                    self.digests.lock().expect("digests lock").insert(index, digest);
                    return Ok(());
                }
                Err(e) => {
                    message = sdk_message(e);
                    tracing::info!(
                        snapshot_id = self.snapshot_id,
                        block_index = index,
                        attempt,
                        message,
                        "block refused"
                    );
                }
            }
            if attempt < BLOCK_ATTEMPTS {
                tokio::time::sleep(RETRY_DELAY * attempt).await;
            }
        }
        Err(EbsDirectError::PutBlock {
            snapshot_id: self.snapshot_id.to_string(),
            block_index: index,
            attempts: BLOCK_ATTEMPTS,
            message,
        })
    }
}

/// Completes the snapshot with its changed-block count and LINEAR checksum; EBS checks both, and
/// a mismatch ends the snapshot in `error` ([`wait_completed`]).
async fn complete_snapshot(
    ebs: &Client,
    snapshot_id: &str,
    digests: &BTreeMap<u64, [u8; 32]>,
) -> Result<(), EbsDirectError> {
    let mut linear = Sha256::new();
    for digest in digests.values() {
        linear.update(digest);
    }
    let checksum = base64::engine::general_purpose::STANDARD.encode(linear.finalize());
    let completed = ebs
        .complete_snapshot()
        .snapshot_id(snapshot_id)
        .changed_blocks_count(digests.len() as i32)
        .checksum(checksum)
        .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
        .checksum_aggregation_method(ChecksumAggregationMethod::ChecksumAggregationLinear)
        .send()
        .await
        .map_err(|e| EbsDirectError::CompleteSnapshot { snapshot_id: snapshot_id.into(), message: sdk_message(e) })?;
    if completed.status().map(|s| s.as_str()) == Some("error") {
        return Err(EbsDirectError::SnapshotFailed {
            snapshot_id: snapshot_id.into(),
            state: "error".into(),
            message: "CompleteSnapshot refused the block count or the checksum".into(),
        });
    }
    Ok(())
}

/// Waits for EC2 to report the completed snapshot `completed`, or `error`.
async fn wait_completed(ec2: &aws_sdk_ec2::Client, snapshot_id: &str) -> Result<(), EbsDirectError> {
    let deadline = Instant::now() + COMPLETION_WAIT;
    loop {
        let described = ec2.describe_snapshots().snapshot_ids(snapshot_id).send().await;
        let snapshot = match &described {
            Ok(out) => out.snapshots().first(),
            Err(e) => {
                tracing::warn!(snapshot_id, error = %DisplayErrorContext(e), "DescribeSnapshots failed; asking again");
                None
            }
        };
        let state = snapshot.and_then(|s| s.state()).map(|s| s.as_str());
        match state {
            Some("completed") => return Ok(()),
            Some("error") | Some("recoverable") => {
                return Err(EbsDirectError::SnapshotFailed {
                    snapshot_id: snapshot_id.into(),
                    state: state.unwrap_or_default().into(),
                    message: snapshot.and_then(|s| s.state_message()).unwrap_or_default().into(),
                });
            }
            _ if Instant::now() > deadline => {
                return Err(EbsDirectError::CompletionTimeout { snapshot_id: snapshot_id.into() })
            }
            _ => tokio::time::sleep(COMPLETION_POLL).await,
        }
    }
}

/// Deletes an incomplete snapshot; a failure is logged with the id, for the operator to finish.
async fn delete_snapshot(ec2: &aws_sdk_ec2::Client, snapshot_id: &str) {
    match ec2.delete_snapshot().snapshot_id(snapshot_id).send().await {
        Ok(_) => tracing::info!(snapshot_id, "deleted the incomplete snapshot"),
        Err(e) => tracing::error!(
            snapshot_id,
            error = %DisplayErrorContext(e),
            "failed to delete the incomplete snapshot: delete it by hand"
        ),
    }
}

/// What an operator needs of a failed call: the service's error code and message when it answered,
/// the whole error chain when it did not (a connection error, a timeout).
fn sdk_message<E, R>(e: SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::ServiceError(service) => {
            let meta = service.err();
            format!("{}: {}", meta.code().unwrap_or("unknown error"), meta.message().unwrap_or("no message"))
        }
        _ => DisplayErrorContext(e).to_string(),
    }
}

/// A written block of a snapshot, as ListSnapshotBlocks names it.
#[derive(Debug, Clone)]
struct ListedBlock {
    index: u64,
    token: String,
}

/// One page of a snapshot's block list.
struct Page {
    /// The volume's size in bytes.
    volume_size: u64,
    blocks: Vec<ListedBlock>,
    next_token: Option<String>,
}

async fn list_page(ebs: &Client, snapshot_id: &str, next_token: Option<String>) -> Result<Page, EbsDirectError> {
    let page = ebs
        .list_snapshot_blocks()
        .snapshot_id(snapshot_id)
        .max_results(LIST_PAGE_SIZE)
        .set_next_token(next_token)
        .send()
        .await
        .map_err(|e| EbsDirectError::ListBlocks { snapshot_id: snapshot_id.into(), message: sdk_message(e) })?;
    let block_size = page.block_size().map(i64::from).unwrap_or_default();
    if block_size != BLOCK_SIZE as i64 {
        return Err(EbsDirectError::BlockSize { snapshot_id: snapshot_id.into(), block_size });
    }
    Ok(Page {
        volume_size: page.volume_size().unwrap_or_default().max(0) as u64 * GIB,
        blocks: page
            .blocks()
            .iter()
            .filter_map(|b| Some(ListedBlock { index: b.block_index()? as u64, token: b.block_token()?.to_string() }))
            .collect(),
        next_token: page.next_token().map(str::to_string),
    })
}

/// A snapshot read through the direct APIs: its size, and its bytes as a stream.
pub struct SnapshotReader {
    pub snapshot_id: String,
    /// The volume's size in bytes.
    pub size: u64,
    first: Page,
}

impl SnapshotReader {
    /// Lists the first page of the snapshot's blocks: a snapshot that cannot be read fails here,
    /// before anything is uploaded.
    pub async fn open(ebs: &Client, snapshot_id: &str) -> Result<SnapshotReader, EbsDirectError> {
        let first = list_page(ebs, snapshot_id, None).await?;
        Ok(SnapshotReader { snapshot_id: snapshot_id.to_string(), size: first.volume_size, first })
    }

    /// The snapshot's bytes in order as `CHUNK_SIZE` chunks: written blocks fetched
    /// [`BLOCKS_IN_FLIGHT`] at once and checked, holes as zeros. The list's later pages are read
    /// as the stream reaches them (a page token lives 60 minutes).
    pub fn chunks<E>(self, ebs: &Client) -> impl Stream<Item = Result<Bytes, E>> + '_
    where
        E: From<EbsDirectError> + 'static,
    {
        let chunk_count = self.size.div_ceil(CHUNK_SIZE as u64);
        let snapshot_id: Arc<str> = self.snapshot_id.as_str().into();
        let listed = Box::pin(listed_blocks(ebs, self.snapshot_id, self.first).peekable());
        let limit = Arc::new(RateLimit::per_second(REQUESTS_PER_SECOND));
        let zero_chunk = Bytes::from(vec![0u8; CHUNK_SIZE]);
        // One plan per chunk: its index and the listed blocks inside it.
        let plans = futures::stream::unfold((listed, 0u64), move |(mut listed, chunk)| async move {
            if chunk == chunk_count {
                return None;
            }
            let end = (chunk + 1) * BLOCKS_PER_CHUNK;
            let mut blocks = Vec::new();
            loop {
                match listed.as_mut().peek().await {
                    Some(Ok(block)) if block.index < end => {}
                    Some(Err(_)) => {
                        let error = listed.next().await.and_then(Result::err).expect("the peeked error");
                        return Some((Err(error), (listed, chunk_count)));
                    }
                    _ => break,
                }
                blocks.extend(listed.next().await.and_then(Result::ok));
            }
            Some((Ok((chunk, blocks)), (listed, chunk + 1)))
        });
        plans
            .map(move |plan| {
                let (snapshot_id, limit, zero_chunk) =
                    (Arc::clone(&snapshot_id), Arc::clone(&limit), zero_chunk.clone());
                async move {
                    let (chunk, blocks) = plan?;
                    if blocks.is_empty() {
                        return Ok(zero_chunk);
                    }
                    let fetched =
                        futures::future::try_join_all(blocks.iter().map(|b| get_block(ebs, &snapshot_id, b, &limit)))
                            .await?;
                    let mut data = vec![0u8; CHUNK_SIZE];
                    for (block, bytes) in blocks.iter().zip(fetched) {
                        let at = (block.index - chunk * BLOCKS_PER_CHUNK) as usize * BLOCK_SIZE;
                        data[at..at + BLOCK_SIZE].copy_from_slice(&bytes);
                    }
                    Ok(Bytes::from(data))
                }
            })
            .buffered(BLOCKS_IN_FLIGHT / BLOCKS_PER_CHUNK as usize)
            .map_err(E::from)
    }
}

/// Every listed block in index order: the first page's, then the later pages', fetched lazily.
fn listed_blocks(
    ebs: &Client,
    snapshot_id: String,
    first: Page,
) -> impl Stream<Item = Result<ListedBlock, EbsDirectError>> + '_ {
    let pages = futures::stream::try_unfold(
        (Some(first.blocks), first.next_token, snapshot_id),
        move |(pending, token, snapshot_id)| async move {
            if let Some(blocks) = pending {
                return Ok(Some((blocks, (None, token, snapshot_id))));
            }
            let Some(token) = token else { return Ok(None) };
            let page = list_page(ebs, &snapshot_id, Some(token)).await?;
            Ok(Some((page.blocks, (None, page.next_token, snapshot_id))))
        },
    );
    pages.map_ok(|blocks| futures::stream::iter(blocks.into_iter().map(Ok))).try_flatten()
}

async fn get_block(
    ebs: &Client,
    snapshot_id: &str,
    block: &ListedBlock,
    limit: &RateLimit,
) -> Result<Bytes, EbsDirectError> {
    let mut message = String::new();
    for attempt in 1..=BLOCK_ATTEMPTS {
        limit.wait().await;
        match fetch_block(ebs, snapshot_id, block).await {
            Ok(data) => return Ok(data),
            Err(problem) => {
                tracing::info!(snapshot_id, block_index = block.index, attempt, problem, "block read failed");
                message = problem;
            }
        }
        if attempt < BLOCK_ATTEMPTS {
            tokio::time::sleep(RETRY_DELAY * attempt).await;
        }
    }
    Err(EbsDirectError::GetBlock {
        snapshot_id: snapshot_id.into(),
        block_index: block.index,
        attempts: BLOCK_ATTEMPTS,
        message,
    })
}

/// One GetSnapshotBlock, its body read whole and checked against the checksum that came with it.
async fn fetch_block(ebs: &Client, snapshot_id: &str, block: &ListedBlock) -> Result<Bytes, String> {
    let out = ebs
        .get_snapshot_block()
        .snapshot_id(snapshot_id)
        .block_index(block.index as i32)
        .block_token(&block.token)
        .send()
        .await
        .map_err(sdk_message)?;
    let expected = out.checksum().unwrap_or_default().to_string();
    let data = out.block_data.collect().await.map_err(|e| format!("reading the block's body: {e}"))?.into_bytes();
    if data.len() != BLOCK_SIZE {
        return Err(format!("{} bytes, not {BLOCK_SIZE}", data.len()));
    }
    let (actual, _) = sha256_base64(&data);
    if actual != expected {
        return Err(format!("the block's SHA-256 is {actual}, its checksum says {expected:?}"));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_sizes_round_up_to_whole_gib() {
        assert_eq!(volume_size_gib(0), 1);
        assert_eq!(volume_size_gib(1), 1);
        assert_eq!(volume_size_gib(GIB), 1);
        assert_eq!(volume_size_gib(GIB + 1), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_spaces_requests_within_the_quota() {
        let limit = RateLimit::per_second(REQUESTS_PER_SECOND);
        let started = Instant::now();
        for _ in 0..2 * REQUESTS_PER_SECOND {
            limit.wait().await;
        }
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(1999) && elapsed < Duration::from_millis(2100), "{elapsed:?}");
    }

    #[test]
    fn block_checksums_are_base64_sha256() {
        assert_eq!(sha256_base64(b"").0, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }
}
