//! `batch-worker`: the AWS Batch job. Attaches the restored volume to this instance, finds its
//! NVMe device, archives it, and detaches it again, on success, failure and SIGTERM alike.
//! Prints the archive report as one JSON document on stdout.
//!
//! Exit codes: 0 archived; 1 failed; 2 bad arguments or configuration; 130 interrupted.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use archiver_core::s3_location::S3Location;
use batch_worker::options::PipelineArgs;
use batch_worker::{archive, ebs, nvme, s3, signal};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "batch-worker", version, about = "Archives an EBS volume to S3 from an AWS Batch job.")]
struct Args {
    /// The restored volume to archive (vol-...).
    #[arg(long)]
    volume_id: String,
    /// Where the archive goes: s3://BUCKET/PREFIX.
    #[arg(long)]
    to: S3Location,
    /// The snapshot the volume was restored from, recorded in the manifest.
    #[arg(long)]
    snapshot_id: Option<String>,
    /// This instance; read from the instance metadata service (IMDSv2) when absent.
    #[arg(long)]
    instance_id: Option<String>,
    /// Use this device instead of finding the volume's NVMe device (local runs and tests).
    #[arg(long)]
    device: Option<PathBuf>,
    /// The sysfs tree to search for the NVMe device (the host's, in a container).
    #[arg(long, default_value = "/sys")]
    sysfs: PathBuf,
    /// The /dev to look for device nodes in (the host's /dev when it is mounted elsewhere).
    #[arg(long, default_value = "/dev")]
    dev_dir: PathBuf,
    /// Longest wait for the attachment, the device, and the detachment.
    #[arg(long, value_parser = humantime_secs, default_value = "300")]
    wait_seconds: Duration,
    #[command(flatten)]
    pipeline: PipelineArgs,
}

fn humantime_secs(text: &str) -> Result<Duration, String> {
    text.parse::<u64>().map(Duration::from_secs).map_err(|e| format!("{text:?} is not a number of seconds: {e}"))
}

/// A failure and its exit code.
struct Failure {
    code: u8,
    message: String,
}

fn failed(code: u8) -> impl Fn(&dyn std::fmt::Display) -> Failure {
    move |e| Failure { code, message: e.to_string() }
}

fn main() -> ExitCode {
    let args = Args::parse();
    batch_worker::logging::init();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            tracing::error!(error = %failure.message, "archive failed");
            eprintln!("error: {}", failure.message.replace('\n', "; "));
            ExitCode::from(failure.code)
        }
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let usage = failed(2);
    let mut options = args.pipeline.to_options(&args.to.bucket).map_err(|e| usage(&e))?;
    options.volume_id = Some(args.volume_id.clone());
    options.snapshot_id = args.snapshot_id.clone();
    let config = s3::load_config().await;
    let s3_client = s3::client(&config);
    s3::preflight(&config, &s3_client, &args.to.bucket).await.map_err(|e| usage(&e))?;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let instance_id = match args.instance_id.clone() {
        Some(id) => id,
        None => instance_id_from_imds().await.map_err(|e| usage(&e))?,
    };
    let cancel = signal::cancel_on_signal();
    let interrupted = |cancel: &tokio_util::sync::CancellationToken| if cancel.is_cancelled() { 130 } else { 1 };

    let attachment = ebs::attach(&ec2, &args.volume_id, &instance_id, args.wait_seconds, &cancel)
        .await
        .map_err(|e| failed(interrupted(&cancel))(&e))?;
    let result = archive_attached(&args, &s3_client, &options, &cancel).await;
    // Detach whatever happened: the state machine deletes the volume next.
    let detached = attachment.detach(&ec2, args.wait_seconds).await;
    let report = result.map_err(|e| failed(interrupted(&cancel))(&e))?;
    detached.map_err(|e| failed(1)(&e))?;
    println!("{}", serde_json::to_string(&report).expect("reports always serialize"));
    Ok(())
}

async fn archive_attached(
    args: &Args,
    client: &aws_sdk_s3::Client,
    options: &archive::ArchiveOptions,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<archive::ArchiveReport, Box<dyn std::error::Error + Send + Sync>> {
    // Holds a device node made for a device the container's /dev lacks, until the archive ends.
    let nodes = tempfile::Builder::new().prefix("backup-archiver-dev-").tempdir()?;
    let device = match &args.device {
        Some(device) => device.clone(),
        None => nvme::wait_for_volume_device(&args.volume_id, &args.sysfs, &args.dev_dir, nodes.path(), args.wait_seconds, cancel).await?,
    };
    Ok(archive::archive_device(client, &device, &args.to, options, None, cancel).await?)
}

async fn instance_id_from_imds() -> Result<String, String> {
    let imds = aws_config::imds::Client::builder().build();
    imds.get("/latest/meta-data/instance-id")
        .await
        .map(|id| id.as_ref().to_string())
        .map_err(|e| format!("cannot read this instance's id from IMDSv2 (pass --instance-id to run elsewhere): {e}"))
}
