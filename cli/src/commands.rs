//! One function per subcommand: check the input, build the client, call the worker library,
//! print, and map errors to exit codes.

use archiver_core::s3_location::S3Location;
use batch_worker::archive::{self, ArchiveError};
use batch_worker::restore::{self, RestoreError};
use batch_worker::s3;
use batch_worker::source;
use batch_worker::verify::{self, VerifyError};

use crate::{database, ebs_direct, output, ArchiveArgs, ExitCode, Failure, RestoreArgs};

pub async fn archive(args: ArchiveArgs, progress: bool) -> Result<ExitCode, Failure> {
    let Some(device) = &args.device else {
        return ebs_direct::archive(args, progress).await;
    };
    // Everything that can be checked without side effects is checked before anything is
    // attached, mounted or uploaded.
    let options = args.pipeline.to_options(&args.to.bucket).map_err(Failure::usage)?;
    source::validate(device).map_err(Failure::usage)?;
    let config = s3::load_config().await;
    let client = s3::client(&config);
    s3::preflight(&config, &client, &args.to.bucket).await.map_err(Failure::usage)?;
    let cancel = batch_worker::signal::cancel_on_signal();
    let bar = progress.then(output::progress_bar);
    let result = archive::archive_device(&client, device, &args.to, &options, bar.clone(), &cancel).await;
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
        Err(e) if e.is_interrupted() => {
            Err(Failure { code: ExitCode::Interrupted, message: "interrupted; the upload was aborted".into() })
        }
        Err(e @ ArchiveError::Source(_)) => Err(Failure::usage(e)),
        Err(e) => Err(Failure::no(e)),
    }
}

pub async fn verify(location: S3Location, deep: bool, json: bool) -> Result<ExitCode, Failure> {
    let client = connect(&location).await?;
    let report = verify::verify_archive(&client, &location, deep).await.map_err(verify_failure)?;
    if json {
        output::print_json(&report);
    } else {
        output::print_verify(&report);
    }
    Ok(if report.ok { ExitCode::Success } else { ExitCode::No })
}

pub async fn restore(args: RestoreArgs, progress: bool) -> Result<ExitCode, Failure> {
    if args.snapshot.to_snapshot {
        return ebs_direct::snapshot(args, progress).await;
    }
    if args.database.to_database.is_some() {
        return database::restore(args).await;
    }
    let client = connect(&args.location).await?;
    let restored = match (&args.to, &args.to_image) {
        (Some(dir), _) => restore::restore_to_dir(&client, &args.location, dir).await,
        (None, Some(image)) => {
            restore::restore_image(&client, &args.location, image, args.partition).await.map(|r| vec![r])
        }
        (None, None) => unreachable!("clap requires --to, --to-image, --to-snapshot or --to-database"),
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

pub async fn connect(location: &S3Location) -> Result<aws_sdk_s3::Client, Failure> {
    Ok(configure(&location.bucket).await?.1)
}

/// The AWS configuration (for the other services' clients) and an S3 client that reached `bucket`.
pub async fn configure(bucket: &str) -> Result<(aws_config::SdkConfig, aws_sdk_s3::Client), Failure> {
    let config = s3::load_config().await;
    let client = s3::client(&config);
    s3::preflight(&config, &client, bucket).await.map_err(Failure::usage)?;
    Ok((config, client))
}

/// A prefix without a manifest is an answer ("not an archive"), not a usage error.
fn verify_failure(e: VerifyError) -> Failure {
    Failure::no(e)
}
