//! The EBS direct APIs' commands, without any volume: `archive --snapshot` reads a snapshot's
//! blocks, `restore --to-snapshot` writes a raw archive into a new snapshot.

use batch_worker::archive_snapshot;
use batch_worker::restore::RestoreError;
use batch_worker::restore_filesystem::{Filesystem, FilesystemError};
use batch_worker::restore_snapshot::{self, SnapshotRestoreError, SnapshotRestoreOptions};

use crate::{commands, output, ArchiveArgs, ExitCode, Failure, RestoreArgs};

/// The flags of a restore into AWS.
#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    /// Write the archive's raw object (or --partition's) into a new EBS snapshot through the EBS
    /// direct APIs, no volume needed; prints the snapshot's id. All-zero blocks are left out. On
    /// any error the incomplete snapshot is deleted.
    #[arg(long)]
    pub to_snapshot: bool,
    /// With --to-snapshot: encrypt the snapshot with this KMS key (its ARN). Default: the
    /// account's default EBS encryption.
    #[arg(long, requires = "to_snapshot")]
    pub kms_key_id: Option<String>,
    /// With --to-snapshot: tags of the snapshot, KEY=VALUE; repeat the flag or separate with commas.
    #[arg(long, requires = "to_snapshot", value_parser = parse_tag, value_delimiter = ',')]
    pub tags: Vec<(String, String)>,
    /// With --to-snapshot: the snapshot's description. Default: the archive it came from.
    #[arg(long, requires = "to_snapshot")]
    pub description: Option<String>,
    /// With --to-snapshot, for a files archive: make a filesystem of this type, extract the files
    /// into it with all their metadata, and write it into the snapshot.
    #[arg(long, value_enum, requires = "to_snapshot")]
    pub filesystem: Option<FilesystemArg>,
    /// With --filesystem: its size (e.g. 20GiB), rounded up to whole GiB. Default: the archived
    /// files and a quarter more, plus 256 MiB.
    #[arg(long, requires = "filesystem", value_parser = batch_worker::options::parse_size)]
    pub size: Option<u64>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FilesystemArg {
    Ext4,
    Xfs,
}

fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not a tag like KEY=VALUE")),
    }
}

/// `archive --snapshot snap-… --to s3://…`.
pub async fn archive(args: ArchiveArgs, progress: bool) -> Result<ExitCode, Failure> {
    let snapshot_id = args.snapshot.as_deref().expect("clap requires --device or --snapshot");
    let mut options = args.pipeline.to_options(&args.to.bucket).map_err(Failure::usage)?;
    options.snapshot_id = Some(snapshot_id.to_string());
    let (config, client) = commands::configure(&args.to.bucket).await?;
    let ebs = aws_sdk_ebs::Client::new(&config);
    let cancel = batch_worker::signal::cancel_on_signal();
    let bar = progress.then(output::progress_bar);
    let result =
        archive_snapshot::archive_snapshot(&client, &ebs, snapshot_id, &args.to, &options, bar.clone(), &cancel).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = result.map_err(|e| match e {
        e if e.is_interrupted() => {
            Failure { code: ExitCode::Interrupted, message: "interrupted; the upload was aborted".into() }
        }
        e => Failure::no(e),
    })?;
    if args.json {
        output::print_json(&report);
    } else {
        output::print_archive(&report);
    }
    Ok(ExitCode::Success)
}

/// `restore s3://… --to-snapshot`.
pub async fn snapshot(args: RestoreArgs, progress: bool) -> Result<ExitCode, Failure> {
    let (config, client) = commands::configure(&args.location.bucket).await?;
    let ebs = aws_sdk_ebs::Client::new(&config);
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let options = SnapshotRestoreOptions {
        partition: args.partition,
        description: args.snapshot.description,
        tags: args.snapshot.tags,
        kms_key_id: args.snapshot.kms_key_id,
        filesystem: args.snapshot.filesystem.map(|fs| match fs {
            FilesystemArg::Ext4 => Filesystem::Ext4,
            FilesystemArg::Xfs => Filesystem::Xfs,
        }),
        size: args.snapshot.size,
    };
    let cancel = batch_worker::signal::cancel_on_signal();
    let bar = progress.then(output::progress_bar);
    let result =
        restore_snapshot::restore_to_snapshot(&client, &ebs, &ec2, &args.location, &options, bar.clone(), &cancel)
            .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let restored = result.map_err(|e| match e {
        e if e.is_interrupted() => {
            Failure { code: ExitCode::Interrupted, message: "interrupted; the incomplete snapshot was deleted".into() }
        }
        e @ SnapshotRestoreError::Restore(RestoreError::NoRawObject { .. }) => {
            Failure::usage(format!("{e}; a files archive needs --filesystem ext4|xfs"))
        }
        e @ (SnapshotRestoreError::Restore(RestoreError::SeveralRawObjects { .. })
        | SnapshotRestoreError::NoFilesObject { .. }
        | SnapshotRestoreError::SeveralFilesObjects { .. }
        | SnapshotRestoreError::Filesystem(FilesystemError::TooSmall { .. })) => Failure::usage(e),
        e => Failure::no(e),
    })?;
    if args.json {
        output::print_json(&restored);
    } else {
        // stdout is data: the id alone, for `$(backup-archiver restore … --to-snapshot)`.
        println!("{}", restored.snapshot_id);
        eprintln!(
            "restored {} ({} blocks written) into {} ({} GiB) in {:.1} s",
            restored.key, restored.blocks_written, restored.snapshot_id, restored.volume_size_gib, restored.seconds
        );
    }
    Ok(ExitCode::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_key_value_pairs() {
        assert_eq!(parse_tag("team=storage"), Ok(("team".into(), "storage".into())));
        assert_eq!(parse_tag("empty="), Ok(("empty".into(), String::new())));
        assert!(parse_tag("novalue").is_err());
        assert!(parse_tag("=v").is_err());
    }
}
