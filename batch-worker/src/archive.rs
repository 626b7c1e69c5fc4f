//! The whole pipeline for one device: open -> layout -> per target: mount and tar, or read raw
//! -> compress -> multipart upload -> manifest, uploaded last ([`crate::pipeline`]). Objects of a
//! failed run are deleted, so a prefix holds either a complete archive or nothing of this run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use archiver_core::index::{IndexError, IndexWriter};
use archiver_core::manifest::{
    check_files_shortfall, index_key, object_name, ArchiveMode, ArchivedObject, EntryCounts, FilesShortfall,
    IndexObject, Manifest, ModeRequest, SourceInfo, MANIFEST_FORMAT,
};
use archiver_core::s3_location::S3Location;
use aws_sdk_s3::Client;
use bytes::Bytes;
use futures::Stream;
use indicatif::ProgressBar;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::compress::{ChunkWriter, CompressError, Compressor};
use crate::fat;
use crate::index::IndexingWriter;
use crate::layout::{self, LayoutError, Target};
use crate::mount::{self, MountError, ReadOnlyMount};
use crate::pipeline::{self, IndexUploadError, ManifestUploadError, PipelineOptions, StreamedObject};
use crate::raw::{self, RawError};
use crate::source::{LoopDevice, Source, SourceError};
use crate::tree::{self, TreeError};
use crate::upload::{ObjectSpec, UploadError};

/// Chunks queued between the tar writer and the compressors: enough to ride out a slow file.
const TAR_QUEUE_CHUNKS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Raw(#[from] RawError),
    #[error(transparent)]
    Compress(#[from] CompressError),
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error("the tar writer stopped early")]
    TreeStopped,
    #[error("{device}: {source}")]
    Shortfall {
        device: PathBuf,
        #[source]
        source: FilesShortfall,
    },
    #[error("cannot read the used bytes of the filesystem mounted at {path}: {source}")]
    Statfs {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestUploadError),
    #[error("cannot index {key}: {source}")]
    Index {
        key: String,
        #[source]
        source: IndexError,
    },
    #[error(transparent)]
    IndexUpload(#[from] IndexUploadError),
    #[error("a pipeline task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl ArchiveError {
    pub fn is_interrupted(&self) -> bool {
        matches!(self, ArchiveError::Upload(UploadError::Interrupted))
    }

    /// Whether this is the tar writer noticing that the upload stage went away.
    fn is_stopped_by_consumer(&self) -> bool {
        let io = match self {
            ArchiveError::Tree(TreeError::Append { source, .. } | TreeError::Finish(source)) => source,
            _ => return false,
        };
        io.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// How to archive.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    pub mode: ModeRequest,
    pub pipeline: PipelineOptions,
    /// Recorded in the manifest and object metadata when known.
    pub volume_id: Option<String>,
    pub snapshot_id: Option<String>,
}

/// What an archive run produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ArchiveReport {
    pub location: String,
    pub manifest_key: String,
    pub objects: Vec<ArchivedObject>,
    pub bytes_read: u64,
    pub seconds: f64,
}

/// Archives `device` (a block device or a disk image) under `dest`.
pub async fn archive_device(
    client: &Client,
    device: &Path,
    dest: &S3Location,
    options: &ArchiveOptions,
    progress: Option<ProgressBar>,
    cancel: &CancellationToken,
) -> Result<ArchiveReport, ArchiveError> {
    let started_at = chrono::Utc::now();
    let clock = Instant::now();
    let compressor = Compressor::new(options.pipeline.compression, options.pipeline.level)?;
    let device = device.to_path_buf();
    let (source, layout) = tokio::task::spawn_blocking(move || -> Result<_, ArchiveError> {
        let source = Source::open(&device)?;
        let layout = layout::read_layout(&source.device)?;
        Ok((source, layout))
    })
    .await??;
    tracing::info!(
        device = %source.given.display(),
        size = layout.size,
        targets = layout.targets.len(),
        partition_table = layout.partition_table.as_deref().unwrap_or("none"),
        "read layout"
    );
    if let Some(bar) = &progress {
        bar.set_length(layout.size);
    }

    let mut objects = Vec::new();
    let mut result = Ok(());
    for target in &layout.targets {
        match archive_target(client, &source, target, dest, options, &compressor, progress.as_ref(), cancel).await {
            Ok(object) => objects.push(object),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    // Every target is read: detach the image's loop device before the manifest is written.
    let device = source.given.display().to_string();
    let released = tokio::task::spawn_blocking(move || drop(source)).await;
    let run = result.map(|()| Manifest {
        format: MANIFEST_FORMAT,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        source: SourceInfo {
            device,
            size: layout.size,
            partition_table: layout.partition_table.clone(),
            partition_table_dump: layout.partition_table_dump.clone(),
            volume_id: options.volume_id.clone(),
            snapshot_id: options.snapshot_id.clone(),
            database: None,
        },
        objects: objects.clone(),
        started_at,
        finished_at: chrono::Utc::now(),
    });
    let manifest_key = pipeline::conclude(client, dest, &options.pipeline.upload, &objects, run).await?;
    released?;
    Ok(ArchiveReport {
        location: dest.to_string(),
        manifest_key,
        bytes_read: objects.iter().map(|o| o.bytes_in).sum(),
        objects,
        seconds: clock.elapsed().as_secs_f64(),
    })
}

/// Archives one partition or the whole disk.
#[allow(clippy::too_many_arguments)]
async fn archive_target(
    client: &Client,
    source: &Source,
    target: &Target,
    dest: &S3Location,
    options: &ArchiveOptions,
    compressor: &Arc<Compressor>,
    progress: Option<&ProgressBar>,
    cancel: &CancellationToken,
) -> Result<ArchivedObject, ArchiveError> {
    let (mode, mounted, raw_reason) = choose_mode(target, source.read_only, options.mode).await?;
    let partition_number = target.partition.as_ref().map(|p| p.number);
    let key = dest.key(&object_name(partition_number, mode, options.pipeline.compression));
    let span = tracing::info_span!(
        "target",
        device = %target.device.display(),
        partition = partition_number,
        mode = ?mode,
        fs_type = target.fs_type.as_deref().unwrap_or("none"),
        key
    );
    let _enter = span.enter();
    if let Some(reason) = &raw_reason {
        tracing::warn!(reason, "archiving raw bytes");
    }

    let mut metadata = HashMap::from([
        ("source-device".to_string(), source.given.display().to_string()),
        ("archive-mode".to_string(), format!("{mode:?}").to_lowercase()),
        ("tool-version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ]);
    let optional = [
        ("partition", partition_number.map(|n| n.to_string())),
        ("fs-type", target.fs_type.clone()),
        ("volume-id", options.volume_id.clone()),
        ("snapshot-id", options.snapshot_id.clone()),
    ];
    metadata.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v))));
    let object = ObjectSpec::new(key.clone(), metadata, options.pipeline.compression);
    let pipeline = &options.pipeline;

    let (uploaded, entries, fs_used_bytes, index) = match mounted {
        Some(mounted) => {
            let (tx, rx) = mpsc::channel::<Result<Bytes, ArchiveError>>(TAR_QUEUE_CHUNKS);
            let producer = tokio::task::spawn_blocking(move || -> Result<TarWritten, ArchiveError> {
                let result = mounted.write_tar(tx.clone());
                if result.is_err() {
                    // Tells the uploader that the stream is cut short, so that it aborts.
                    let _ = tx.blocking_send(Err(ArchiveError::TreeStopped));
                }
                drop(mounted);
                result
            });
            let chunks = tokio_stream_from(rx);
            let uploaded = pipeline::send_stream(client, pipeline, compressor, object, chunks, progress, cancel).await;
            let produced = producer.await?;
            match (produced, uploaded) {
                (Ok(written), Ok(uploaded)) => {
                    let index = match upload_index(client, pipeline, &key, written.index, &uploaded).await {
                        Ok(index) => index,
                        Err(e) => {
                            let segments = uploaded.segments.iter().map(|s| s.key.clone());
                            pipeline::delete_keys(client, &pipeline.upload.bucket, segments).await;
                            return Err(e);
                        }
                    };
                    (uploaded, Some(written.counts), written.fs_used_bytes, Some(index))
                }
                // The writer stopped because the upload failed first: report the upload's error.
                (Err(e), Err(upload_error)) if e.is_stopped_by_consumer() => return Err(upload_error),
                (Err(e), _) | (Ok(_), Err(e)) => return Err(e),
            }
        }
        None => {
            let chunks = raw::read_device::<ArchiveError>(&source.bytes, target.offset, target.size)?;
            let uploaded =
                pipeline::send_stream(client, pipeline, compressor, object, chunks, progress, cancel).await?;
            (uploaded, None, None, None)
        }
    };
    tracing::info!(bytes_in = uploaded.bytes_in, bytes_out = uploaded.size, "archived");
    Ok(ArchivedObject {
        key,
        mode,
        compression: pipeline.compression,
        partition: target.partition.clone(),
        fs_type: target.fs_type.clone(),
        raw_reason,
        size: uploaded.size,
        sha256: uploaded.sha256,
        bytes_in: uploaded.bytes_in,
        bytes_out: uploaded.size,
        content_sha256: uploaded.content_sha256,
        entries,
        dump: None,
        fs_used_bytes,
        segments: uploaded.segments,
        index,
    })
}

/// Ends the index of the tar object `key` with its member table and uploads it.
async fn upload_index(
    client: &Client,
    pipeline: &PipelineOptions,
    key: &str,
    index: IndexWriter,
    uploaded: &StreamedObject,
) -> Result<IndexObject, ArchiveError> {
    let entries = index.entries();
    let segment_sizes: Vec<u64> = uploaded.segments.iter().map(|s| s.size).collect();
    let bytes = index
        .finish(&uploaded.members, &segment_sizes)
        .map_err(|source| ArchiveError::Index { key: key.into(), source })?;
    let index_key = index_key(key, pipeline.compression);
    let object = IndexObject {
        key: index_key.clone(),
        size: bytes.len() as u64,
        sha256: format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&bytes)),
        entries,
        members: uploaded.members.len() as u64,
    };
    pipeline::put_index(client, &pipeline.upload, &index_key, bytes).await?;
    tracing::info!(key = %index_key, entries, bytes = object.size, "uploaded the index");
    Ok(object)
}

/// What a tar writer produced besides the stream.
struct TarWritten {
    counts: EntryCounts,
    /// Kernel mounts only: the filesystem's used bytes.
    fs_used_bytes: Option<u64>,
    index: IndexWriter,
}

/// Where files mode reads a target's files from.
enum FilesSource {
    /// A kernel mount, and for a partition the loop device it is mounted from. Fields drop in
    /// order: unmount, then detach.
    Mounted { mount: ReadOnlyMount, _partition: Option<LoopDevice>, device: PathBuf },
    /// A FAT filesystem the kernel cannot mount, read in user space.
    Fat { device: PathBuf, offset: u64, size: u64 },
}

impl FilesSource {
    /// Writes the target's files as a tar stream into the compression stage. For a kernel mount,
    /// also returns the filesystem's used bytes, and fails (before the stream ends, so the
    /// upload is aborted) when the archived entries miss most of them.
    fn write_tar(&self, tx: mpsc::Sender<Result<Bytes, ArchiveError>>) -> Result<TarWritten, ArchiveError> {
        let out = IndexingWriter::new(ChunkWriter::new(tx))
            .map_err(|source| ArchiveError::Index { key: "the tar stream".into(), source })?;
        let (counts, writer, used) = match self {
            FilesSource::Mounted { mount, device, .. } => {
                let root = mount.path();
                let others =
                    mount::mounts_below(root).map_err(|source| TreeError::Append { path: root.into(), source })?;
                let (counts, writer) = tree::write_tree(root, &others, out)?;
                let fs = nix::sys::statvfs::statvfs(root)
                    .map_err(|source| ArchiveError::Statfs { path: root.into(), source })?;
                let frsize = fs.fragment_size() as u64;
                let used = (fs.blocks() as u64).saturating_sub(fs.blocks_free() as u64) * frsize;
                tracing::info!(used, archived = counts.allocated_bytes, "compared with the filesystem's used bytes");
                check_files_shortfall(counts.allocated_bytes, used, fs.blocks() as u64 * frsize)
                    .map_err(|source| ArchiveError::Shortfall { device: device.clone(), source })?;
                (counts, writer, Some(used))
            }
            FilesSource::Fat { device, offset, size } => {
                let (counts, writer) = fat::write_fat_tree(device, *offset, *size, out)?;
                (counts, writer, None)
            }
        };
        let (chunks, index) = writer.into_parts();
        chunks.finish().map_err(TreeError::Finish)?;
        let index = index.map_err(|source| ArchiveError::Index { key: "the tar stream".into(), source })?;
        Ok(TarWritten { counts, fs_used_bytes: used, index })
    }
}

/// Decides files or raw for `target`, mounting it when files mode is possible.
async fn choose_mode(
    target: &Target,
    read_only: bool,
    request: ModeRequest,
) -> Result<(ArchiveMode, Option<FilesSource>, Option<String>), ArchiveError> {
    if request == ModeRequest::Raw {
        return Ok((ArchiveMode::Raw, None, None));
    }
    let Some(fs_type) = target.fs_type.clone() else {
        let reason = "no filesystem signature found";
        return match request {
            ModeRequest::Files => Err(MountError::Mount {
                device: target.device.clone(),
                fs_type: "unknown".into(),
                attempts: reason.into(),
            }
            .into()),
            _ => Ok((ArchiveMode::Raw, None, Some(reason.into()))),
        };
    };
    let target = target.clone();
    let opened = tokio::task::spawn_blocking(move || -> Result<FilesSource, ArchiveError> {
        let partition = match &target.partition {
            Some(_) => Some(LoopDevice::attach(&target.device, Some((target.offset, target.size)), read_only)?),
            None => None,
        };
        let device = partition.as_ref().map_or(target.device.as_path(), |p| p.path.as_path());
        match ReadOnlyMount::mount(device, &fs_type) {
            Ok(mount) => Ok(FilesSource::Mounted { mount, _partition: partition, device: target.device.clone() }),
            Err(MountError::UnsupportedType { .. }) if fs_type == "vfat" => {
                drop(partition);
                fat::check(&target.device, target.offset, target.size)
                    .map_err(|source| TreeError::Append { path: target.device.clone(), source })?;
                tracing::info!(
                    device = %target.device.display(),
                    "no vfat driver in this kernel: reading FAT in user space"
                );
                Ok(FilesSource::Fat { device: target.device.clone(), offset: target.offset, size: target.size })
            }
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    match opened {
        Ok(files) => Ok((ArchiveMode::Files, Some(files), None)),
        Err(e @ (ArchiveError::Mount(_) | ArchiveError::Tree(_))) if request == ModeRequest::Auto => {
            Ok((ArchiveMode::Raw, None, Some(e.to_string())))
        }
        Err(e) => Err(e),
    }
}

fn tokio_stream_from<T>(mut rx: mpsc::Receiver<T>) -> impl Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
