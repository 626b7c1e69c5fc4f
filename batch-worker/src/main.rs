//! `batch-worker`: the AWS Batch job. Without a subcommand (the EBS flow): attaches the restored
//! volume to this instance, finds its NVMe device, archives it, and detaches it again, on
//! success, failure and SIGTERM alike; or with `--snapshot`, reads the snapshot's blocks through
//! the EBS direct APIs, with no volume at all. `batch-worker dump` (the RDS native-dump flow): dumps the
//! databases of the restored instance with the engine's own tools. Both print the archive report
//! as one JSON document on stdout. `batch-worker drill` (the restore drill's job): reads an archive
//! back in full against its manifest, optionally restores it to a snapshot and deletes that, and
//! writes and prints the verdict.
//!
//! Exit codes: 0 archived (drill: passed); 1 failed; 2 bad arguments or configuration; 130 interrupted.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use archiver_core::dump_tools::SUPPORTED_ENGINES;
use archiver_core::s3_location::S3Location;
use batch_worker::dump::{self, DumpRequest};
use batch_worker::options::{DeviceArgs, PipelineArgs};
use batch_worker::password::{Password, PasswordError};
use batch_worker::{archive, archive_snapshot, drill, ebs, nvme, s3, signal};
use clap::Parser;

/// The first argument that selects the dump mode; every other invocation archives a volume.
const DUMP_COMMAND: &str = "dump";
/// The first argument that selects the restore drill.
const DRILL_COMMAND: &str = "drill";

/// The volume flags at the top level, where the EBS job definition passes them. `dump` is parsed
/// by its own parser ([`DumpCli`]) rather than as a clap subcommand beside flattened top-level
/// flags, which clap (4.5) cannot combine: the flattened volume flags came back as `None`.
#[derive(Debug, Parser)]
#[command(
    name = "batch-worker",
    version,
    about = "Archives an EBS volume to S3 from an AWS Batch job. `batch-worker dump --help`: the RDS dump mode.",
    after_help = "Exit codes: 0 archived; 1 failed; 2 bad arguments or configuration; 130 interrupted."
)]
struct VolumeCli {
    #[command(flatten)]
    volume: Args,
}

/// `batch-worker dump …`: dump every database of a server (the RDS flow's temporary instance)
/// with pg_dump or mysqldump, one compressed object per database, and the manifest last.
#[derive(Debug, Parser)]
#[command(
    name = "batch-worker dump",
    bin_name = "batch-worker dump",
    version,
    after_help = "Exit codes: 0 archived; 1 failed; 2 bad arguments or configuration; 130 interrupted."
)]
struct DumpCli {
    #[command(flatten)]
    dump: DumpArgs,
}

/// `batch-worker drill …`: a restore drill of one archive.
#[derive(Debug, Parser)]
#[command(
    name = "batch-worker drill",
    bin_name = "batch-worker drill",
    version,
    after_help = "Exit codes: 0 the archive passed; 1 it failed (the result says why) or the result could not be \
                  written; 2 bad arguments or configuration; 130 interrupted."
)]
struct DrillCli {
    #[command(flatten)]
    drill: DrillArgs,
}

#[derive(Debug, clap::Args)]
struct DrillArgs {
    /// The archive: s3://BUCKET/PREFIX (where its manifest.json is).
    #[arg(long)]
    archive: S3Location,
    /// Where the verdict (core's DrillResult, JSON) is written: s3://BUCKET/KEY.
    #[arg(long)]
    result: S3Location,
    /// Also restore each raw object into a new EBS snapshot and delete it (true or false).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    restore_to_snapshot: bool,
    /// The drill's id, on the snapshots' tags.
    #[arg(long, default_value = "manual")]
    drill_id: String,
    /// The stack's name: the snapshots' backup-archiver:managed-by tag, which the job role requires.
    #[arg(long, default_value = "backup-archiver")]
    deployment: String,
}

enum Mode {
    Volume(Args),
    Dump(DumpArgs),
    Drill(DrillArgs),
}

#[derive(Debug, clap::Args)]
struct DumpArgs {
    /// The RDS engine name, which chooses the tools (PostgreSQL's or MySQL's).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(SUPPORTED_ENGINES))]
    engine: String,
    /// The server's address (the restored instance's endpoint).
    #[arg(long)]
    host: String,
    /// The server's port (RDS: 5432 for PostgreSQL, 3306 for MySQL and MariaDB).
    #[arg(long)]
    port: u16,
    /// The user to connect as (the restored instance's master user).
    #[arg(long)]
    user: String,
    /// The SSM parameter (SecureString) that holds the password; read with decryption and
    /// passed to the tools by environment or a private option file, never by argument.
    #[arg(long)]
    password_parameter: String,
    /// Where the archive goes: s3://BUCKET/PREFIX.
    #[arg(long)]
    to: S3Location,
    /// A database to dump; repeat for several. Default: every database but the system ones.
    #[arg(long = "database", value_name = "NAME")]
    databases: Vec<String>,
    /// The DB snapshot the server was restored from, recorded in the manifest.
    #[arg(long)]
    snapshot_id: Option<String>,
    #[command(flatten)]
    pipeline: PipelineArgs,
}

#[derive(Debug, clap::Args)]
struct Args {
    /// The restored volume to archive (vol-...).
    #[arg(long, required_unless_present = "snapshot")]
    volume_id: Option<String>,
    /// Instead of a volume: the snapshot (snap-...) to read through the EBS direct APIs, with no
    /// volume, attachment or device; archived raw, holes as zeros (`--mode files`: copied into a
    /// local sparse image first, then archived as a device).
    #[arg(long, conflicts_with_all = ["volume_id", "device", "instance_id"])]
    snapshot: Option<String>,
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
    pipeline: DeviceArgs,
}

fn humantime_secs(text: &str) -> Result<Duration, String> {
    text.parse::<u64>().map(Duration::from_secs).map_err(|e| format!("{text:?} is not a number of seconds: {e}"))
}

/// A failure and its exit code.
struct Failure {
    code: u8,
    message: String,
}

/// 130 interrupted, 2 a configuration error, else 1.
fn exit_code(interrupted: bool, configuration: bool) -> u8 {
    match (interrupted, configuration) {
        (true, _) => 130,
        (false, true) => 2,
        (false, false) => 1,
    }
}

fn failed(code: u8) -> impl Fn(&dyn std::fmt::Display) -> Failure {
    move |e| Failure { code, message: e.to_string() }
}

fn main() -> ExitCode {
    let first = std::env::args_os().nth(1);
    // Parsed before logging starts, so --help and usage errors print plainly.
    let mode = if first.as_deref() == Some(DUMP_COMMAND.as_ref()) {
        Mode::Dump(DumpCli::parse_from(std::env::args_os().skip(1)).dump)
    } else if first.as_deref() == Some(DRILL_COMMAND.as_ref()) {
        Mode::Drill(DrillCli::parse_from(std::env::args_os().skip(1)).drill)
    } else {
        Mode::Volume(VolumeCli::parse().volume)
    };
    batch_worker::logging::init();
    batch_worker::memory::bound_allocator();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    let result = match mode {
        Mode::Volume(args) => runtime.block_on(run(args)),
        Mode::Dump(args) => runtime.block_on(run_dump(args)),
        Mode::Drill(args) => runtime.block_on(run_drill(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            tracing::error!(error = %failure.message, "archive failed");
            eprintln!("error: {}", failure.message.replace('\n', "; "));
            ExitCode::from(failure.code)
        }
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    // First, before any AWS call: a SIGTERM at any step must end with the volume detached.
    let cancel = signal::cancel_on_signal();
    let Some(volume_id) = args.volume_id.clone() else {
        return run_direct(args, &cancel).await;
    };
    let interrupted = |cancel: &tokio_util::sync::CancellationToken| if cancel.is_cancelled() { 130 } else { 1 };
    let usage = failed(2);
    let mut options = args.pipeline.to_options(&args.to.bucket).map_err(|e| usage(&e))?;
    options.volume_id = Some(volume_id.clone());
    options.snapshot_id = args.snapshot_id.clone();
    let config = s3::load_config().await;
    let s3_client = s3::client(&config);
    let preflight = async {
        s3::preflight(&config, &s3_client, &args.to.bucket).await.map_err(|e| usage(&e))?;
        match args.instance_id.clone() {
            Some(id) => Ok(id),
            None => instance_id_from_imds().await.map_err(|e| usage(&e)),
        }
    };
    // Nothing is attached yet: a signal here just ends the run.
    let instance_id = tokio::select! {
        _ = cancel.cancelled() => {
            return Err(Failure { code: 130, message: "interrupted before the volume was attached".into() })
        }
        id = preflight => id?,
    };
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let work = archive_attached(&args, &volume_id, &s3_client, &options, &cancel);
    let (result, detached) =
        ebs::with_attached_volume(&ec2, &volume_id, &instance_id, args.wait_seconds, &cancel, work).await;
    let report = result.map_err(|e| failed(interrupted(&cancel))(&e))?;
    detached.map_err(|e| failed(1)(&e))?;
    println!("{}", serde_json::to_string(&report).expect("reports always serialize"));
    Ok(())
}

/// `--snapshot`: the snapshot's blocks through the EBS direct APIs, nothing attached.
async fn run_direct(args: Args, cancel: &tokio_util::sync::CancellationToken) -> Result<(), Failure> {
    let snapshot_id = args.snapshot.as_deref().expect("clap requires --volume-id or --snapshot");
    let mut options = args.pipeline.to_options(&args.to.bucket).map_err(|e| failed(2)(&e))?;
    options.snapshot_id = Some(snapshot_id.to_string());
    let config = s3::load_config().await;
    let s3_client = s3::client(&config);
    s3::preflight(&config, &s3_client, &args.to.bucket).await.map_err(|e| failed(2)(&e))?;
    let ebs = aws_sdk_ebs::Client::new(&config);
    let report = archive_snapshot::archive_snapshot(&s3_client, &ebs, snapshot_id, &args.to, &options, None, cancel)
        .await
        .map_err(|e| failed(exit_code(e.is_interrupted() || cancel.is_cancelled(), false))(&e))?;
    println!("{}", serde_json::to_string(&report).expect("reports always serialize"));
    Ok(())
}

async fn run_dump(args: DumpArgs) -> Result<(), Failure> {
    let usage = failed(2);
    let options = args.pipeline.to_options(&args.to.bucket).map_err(|e| usage(&e))?;
    let config = s3::load_config().await;
    let s3_client = s3::client(&config);
    s3::preflight(&config, &s3_client, &args.to.bucket).await.map_err(|e| usage(&e))?;
    let ssm = aws_sdk_ssm::Client::new(&config);
    let password = Password::from_parameter(&ssm, &args.password_parameter).await.map_err(|e| match e {
        PasswordError::NotFound { .. } | PasswordError::Empty { .. } => usage(&e),
        _ => failed(1)(&e),
    })?;
    let cancel = signal::cancel_on_signal();
    let request = DumpRequest {
        engine: args.engine,
        host: args.host,
        port: args.port,
        user: args.user,
        password,
        databases: args.databases,
        snapshot_id: args.snapshot_id,
    };
    let report = dump::dump_server(&s3_client, &args.to, &request, &options, &cancel)
        .await
        .map_err(|e| failed(exit_code(e.is_interrupted() || cancel.is_cancelled(), e.is_configuration()))(&e))?;
    println!("{}", serde_json::to_string(&report).expect("reports always serialize"));
    Ok(())
}

async fn run_drill(args: DrillArgs) -> Result<(), Failure> {
    let cancel = signal::cancel_on_signal();
    let config = s3::load_config().await;
    let s3_client = s3::client(&config);
    s3::preflight(&config, &s3_client, &args.archive.bucket).await.map_err(|e| failed(2)(&e))?;
    let snapshots = args.restore_to_snapshot.then(|| drill::SnapshotClients {
        ebs: aws_sdk_ebs::Client::new(&config),
        ec2: aws_sdk_ec2::Client::new(&config),
    });
    let options = drill::DrillOptions { drill_id: args.drill_id, deployment: args.deployment };
    let result = drill::drill_archive(&s3_client, snapshots.as_ref(), &args.archive, &options, &cancel).await;
    drill::write_result(&s3_client, &args.result, &result).await.map_err(|e| failed(1)(&e))?;
    println!("{}", serde_json::to_string(&result).expect("drill results serialize"));
    match (result.ok, cancel.is_cancelled()) {
        (true, _) => Ok(()),
        (false, interrupted) => Err(Failure {
            code: exit_code(interrupted, false),
            message: format!("{} failed its restore drill (details in {})", args.archive, args.result),
        }),
    }
}

async fn archive_attached(
    args: &Args,
    volume_id: &str,
    client: &aws_sdk_s3::Client,
    options: &archive::ArchiveOptions,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<archive::ArchiveReport, Box<dyn std::error::Error + Send + Sync>> {
    // Holds a device node made for a device the container's /dev lacks, until the archive ends.
    let nodes = tempfile::Builder::new().prefix("backup-archiver-dev-").tempdir()?;
    let device = match &args.device {
        Some(device) => device.clone(),
        None => {
            nvme::wait_for_volume_device(volume_id, &args.sysfs, &args.dev_dir, nodes.path(), args.wait_seconds, cancel)
                .await?
        }
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
