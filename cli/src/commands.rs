//! One function per subcommand: check the input, build the client, call the worker library,
//! print, and map errors to exit codes.

use archiver_core::part_size::PartSchedule;
use archiver_core::s3_location::S3Location;
use batch_worker::archive::{self, ArchiveError, ArchiveOptions};
use batch_worker::compress::Compressor;
use batch_worker::restore::{self, RestoreError};
use batch_worker::s3;
use batch_worker::source;
use batch_worker::upload::UploadSettings;
use batch_worker::verify::{self, VerifyError};
use tokio_util::sync::CancellationToken;

use crate::{output, ArchiveArgs, ExitCode, Failure, RestoreArgs};

pub async fn archive(args: ArchiveArgs, progress: bool) -> Result<ExitCode, Failure> {
    // Everything that can be checked without side effects is checked before anything is
    // attached, mounted or uploaded.
    Compressor::new(args.compression.into(), args.level).map_err(Failure::usage)?;
    PartSchedule::for_source(0, args.part_size).map_err(Failure::usage)?;
    source::validate(&args.device).map_err(Failure::usage)?;
    let config = s3::load_config().await;
    let client = s3::client(&config);
    s3::preflight(&config, &client, &args.to.bucket).await.map_err(Failure::usage)?;

    let options = ArchiveOptions {
        mode: args.mode.into(),
        compression: args.compression.into(),
        level: args.level,
        part_size: args.part_size,
        upload: UploadSettings {
            bucket: args.to.bucket.clone(),
            storage_class: args.storage_class.as_deref().map(Into::into),
            sse_kms_key_id: args.sse_kms_key_id.clone(),
            concurrency: args.concurrency.into(),
        },
        volume_id: None,
        snapshot_id: None,
        workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    };
    let cancel = cancel_on_signal();
    let bar = progress.then(output::progress_bar);
    let result = archive::archive_device(&client, &args.device, &args.to, &options, bar.clone(), &cancel).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match result {
        Ok(report) => {
            if args.json {
                output::print_json(&report);
            } else {
                output::print_archive(&report);
            }
            Ok(ExitCode::Success)
        }
        Err(e) if e.is_interrupted() => Err(Failure { code: ExitCode::Interrupted, message: "interrupted; the upload was aborted".into() }),
        Err(e @ (ArchiveError::Source(_) | ArchiveError::PartSize(_))) => Err(Failure::usage(e)),
        Err(e) => Err(Failure::no(e)),
    }
}

pub async fn verify(location: S3Location, json: bool) -> Result<ExitCode, Failure> {
    let client = connect(&location).await?;
    let report = verify::verify_archive(&client, &location).await.map_err(verify_failure)?;
    if json {
        output::print_json(&report);
    } else {
        output::print_verify(&report);
    }
    Ok(if report.ok { ExitCode::Success } else { ExitCode::No })
}

pub async fn restore(args: RestoreArgs) -> Result<ExitCode, Failure> {
    let client = connect(&args.location).await?;
    let restored = match (&args.to, &args.to_image) {
        (Some(dir), _) => restore::restore_to_dir(&client, &args.location, dir).await,
        (None, Some(image)) => restore::restore_image(&client, &args.location, image, args.partition).await.map(|r| vec![r]),
        (None, None) => unreachable!("clap requires --to or --to-image"),
    };
    let restored = restored.map_err(|e| match e {
        RestoreError::Manifest(e) => verify_failure(e),
        e @ (RestoreError::NoRawObject { .. } | RestoreError::SeveralRawObjects { .. }) => Failure::usage(e),
        e => Failure::no(e),
    })?;
    if args.json {
        output::print_json(&restored);
    } else {
        output::print_restore(&restored);
    }
    Ok(ExitCode::Success)
}

async fn connect(location: &S3Location) -> Result<aws_sdk_s3::Client, Failure> {
    let config = s3::load_config().await;
    let client = s3::client(&config);
    s3::preflight(&config, &client, &location.bucket).await.map_err(Failure::usage)?;
    Ok(client)
}

/// A prefix without a manifest is an answer ("not an archive"), not a usage error.
fn verify_failure(e: VerifyError) -> Failure {
    Failure::no(e)
}

/// A token cancelled by SIGINT or SIGTERM (which AWS Batch sends on termination and Spot
/// interruption), so the pipeline aborts its upload and releases its devices before exiting.
fn cancel_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::warn!("signal received: aborting");
        cancel.cancel();
    });
    token
}
