//! The archive options both binaries accept (`backup-archiver archive`, `batch-worker` and
//! `batch-worker dump`), defined once so their flags cannot drift apart: [`DeviceArgs`] for a
//! device archive, [`PipelineArgs`] (compression and upload) for every archive.

use archiver_core::manifest::{Compression, ModeRequest};
use archiver_core::part_size::UploadSizes;
use clap::ValueEnum;

use crate::archive::ArchiveOptions;
use crate::compress::{CompressError, Compressor};
use crate::pipeline::PipelineOptions;
use crate::upload::UploadSettings;

/// The flags of a device archive: how each filesystem is read, and the pipeline's.
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceArgs {
    /// files: tar of each filesystem; raw: the bytes; auto: files where a filesystem mounts.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// The flags of every archive: compression and upload.
#[derive(Debug, Clone, clap::Args)]
pub struct PipelineArgs {
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    pub compression: CompressionArg,
    /// Compression level (gzip 1-9, default 6; zstd 1-19, default 3).
    #[arg(long)]
    pub level: Option<u32>,
    /// Size of every multipart part (e.g. 16MiB). Memory holds the part being filled and the
    /// parts in flight: 80 MiB with the defaults.
    #[arg(long, value_parser = parse_size, default_value = "16MiB")]
    pub part_size: u64,
    /// Largest object stored (e.g. 64GiB); a longer stream continues in the next segment object,
    /// cut between gzip members or zstd frames. Default: 64GiB, or what 10,000 parts hold.
    #[arg(long, value_parser = parse_size)]
    pub segment_size: Option<u64>,
    /// Parts uploaded at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Encrypt objects with this KMS key (SSE-KMS).
    #[arg(long)]
    pub sse_kms_key_id: Option<String>,
    /// S3 storage class of the archive objects (the manifest stays STANDARD).
    #[arg(long, value_parser = parse_storage_class)]
    pub storage_class: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Auto,
    Files,
    Raw,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompressionArg {
    Gzip,
    Zstd,
}

#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error(transparent)]
    Level(#[from] CompressError),
    #[error(transparent)]
    PartSize(#[from] archiver_core::part_size::PartSizeError),
}

impl DeviceArgs {
    /// The options for archiving a device into `bucket`, checked before anything is touched.
    pub fn to_options(&self, bucket: &str) -> Result<ArchiveOptions, OptionsError> {
        Ok(ArchiveOptions {
            mode: match self.mode {
                ModeArg::Auto => ModeRequest::Auto,
                ModeArg::Files => ModeRequest::Files,
                ModeArg::Raw => ModeRequest::Raw,
            },
            pipeline: self.pipeline.to_options(bucket)?,
            volume_id: None,
            snapshot_id: None,
        })
    }
}

impl PipelineArgs {
    /// The options for writing objects into `bucket`, checked before anything is touched.
    pub fn to_options(&self, bucket: &str) -> Result<PipelineOptions, OptionsError> {
        let compression = match self.compression {
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
        };
        Compressor::new(compression, self.level)?;
        let sizes = UploadSizes::choose(self.part_size, self.segment_size)?;
        Ok(PipelineOptions {
            compression,
            level: self.level,
            upload: UploadSettings {
                bucket: bucket.to_string(),
                storage_class: self.storage_class.as_deref().map(Into::into),
                sse_kms_key_id: self.sse_kms_key_id.clone(),
                concurrency: self.concurrency.into(),
                sizes,
            },
            workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        })
    }
}

// The flag's literal default must match core's constant.
const _: () = assert!(archiver_core::part_size::DEFAULT_PART_SIZE == 16 * 1024 * 1024);

pub fn parse_size(text: &str) -> Result<u64, String> {
    text.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{text:?} is not a size like 16MiB: {e}"))
}

fn parse_storage_class(text: &str) -> Result<String, String> {
    let known = aws_sdk_s3::types::StorageClass::values();
    if known.contains(&text) {
        Ok(text.to_string())
    } else {
        Err(format!("unknown storage class {text:?}; one of {}", known.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        args: DeviceArgs,
    }

    #[test]
    fn parses_sizes_with_binary_units() {
        let h = Harness::try_parse_from(["x", "--part-size", "5MiB"]).unwrap();
        assert_eq!(h.args.pipeline.part_size, 5 * 1024 * 1024);
        assert!(Harness::try_parse_from(["x", "--part-size", "lots"]).is_err());
    }

    #[test]
    fn rejects_unknown_storage_classes() {
        assert!(Harness::try_parse_from(["x", "--storage-class", "DEEP_ARCHIVE"]).is_ok());
        assert!(Harness::try_parse_from(["x", "--storage-class", "COLD"]).is_err());
    }

    #[test]
    fn segment_size_defaults_to_64_gib_and_is_checked_against_the_part_size() {
        let h = Harness::try_parse_from(["x"]).unwrap();
        let sizes = h.args.to_options("b").unwrap().pipeline.upload.sizes;
        assert_eq!(sizes.segment_size, archiver_core::part_size::DEFAULT_SEGMENT_SIZE);
        let h = Harness::try_parse_from(["x", "--segment-size", "64MiB", "--part-size", "8MiB"]).unwrap();
        assert_eq!(h.args.to_options("b").unwrap().pipeline.upload.sizes.segment_size, 64 * 1024 * 1024);
        let h = Harness::try_parse_from(["x", "--segment-size", "1TiB", "--part-size", "5MiB"]).unwrap();
        assert!(matches!(h.args.to_options("b"), Err(OptionsError::PartSize(_))));
    }

    #[test]
    fn checks_level_and_part_size_before_anything_runs() {
        let h = Harness::try_parse_from(["x", "--level", "12"]).unwrap();
        assert!(matches!(h.args.to_options("b"), Err(OptionsError::Level(_))));
        let h = Harness::try_parse_from(["x", "--part-size", "1MiB"]).unwrap();
        assert!(matches!(h.args.to_options("b"), Err(OptionsError::PartSize(_))));
    }
}
