//! `backup-archiver`: the operators' tool. Archives a block device or disk image to S3,
//! verifies an archive, and restores one.
//!
//! Exit codes (see [`ExitCode`] below): 0 success, 1 the operation ran and the answer is no
//! (verification mismatch, archive failed), 2 usage or configuration error, 130 interrupted.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode as ProcessExitCode;

use archiver_core::s3_location::S3Location;
use batch_worker::options::DeviceArgs;
use clap::{Parser, Subcommand};

mod alert;
mod browse;
mod commands;
mod database;
mod ebs_direct;
mod flow;
mod org_copy;
mod output;
mod retention;

/// The exit codes, one meaning each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Success = 0,
    /// The operation ran and the answer is no: a mismatch, a failed archive.
    No = 1,
    /// The command line or the configuration is wrong; nothing was done.
    Usage = 2,
    Interrupted = 130,
}

const EXIT_CODES_HELP: &str = "Exit codes: 0 success; 1 the operation ran and the answer is no (verification \
mismatch, archive failed); 2 usage or configuration error (nothing was done); 130 interrupted.";

#[derive(Debug, Parser)]
#[command(
    name = "backup-archiver",
    version,
    about = "Turns block devices and AWS Backup recovery points into verifiable archives in S3.",
    after_help = EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Never draw progress bars.
    #[arg(long, global = true)]
    no_progress: bool,
    /// Log more on stderr: -v info, -vv debug (default: warnings only). `RUST_LOG`, when set,
    /// chooses instead.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Archive a block device, disk image or EBS snapshot to S3 as tar (files) or raw objects plus a manifest.
    Archive(ArchiveArgs),
    /// Check every object of an archive against its manifest: the size and full-object CRC64NVME
    /// that S3 reports for each segment (S3 validated that checksum when the segment was stored),
    /// or with --deep every byte read and its SHA-256 compared.
    Verify {
        /// The archive: s3://BUCKET/PREFIX.
        location: S3Location,
        /// Read every byte: SHA-256 of each object, size and CRC64NVME of each segment.
        #[arg(long)]
        deep: bool,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Restore an archive: files to a directory, a raw object to an image file or a new EBS snapshot,
    /// dumps into a database server.
    Restore(RestoreArgs),
    /// Dry run of the state machines' plan step: exit 0 planned, 1 skipped, 2 rejected.
    Plan(flow::PlanArgs),
    /// Archive one EBS snapshot now: start the state machine with {"snapshot": …}.
    Start(flow::StartArgs),
    /// Run a finished archive again with the same input (refused while one of the same snapshot runs).
    Replay(flow::ReplayArgs),
    /// Recent executions, or one execution step by step.
    Status(flow::StatusArgs),
    /// Dry run of the organisation flow's retention step: exit 0 changed, 1 unchanged, 2 bad input.
    Retention(retention::RetentionArgs),
    /// The archives under s3://BUCKET[/PREFIX], newest first, read from their manifests.
    Archives(browse::ArchivesArgs),
    /// List a directory of an archive, from its index alone.
    Ls(browse::LsArgs),
    /// Search an archive's index: by name pattern, date, size (exit 1 when nothing matches).
    Find(browse::FindArgs),
    /// Restore single files, links or directories, fetching only the byte ranges that hold them.
    Get(browse::GetArgs),
    /// Mount an archive's files read-only (FUSE), fetching what is read on demand.
    Mount(browse::MountArgs),
    /// Dry run of the job-event relay: print the message for an AWS Backup event (exit 0), or
    /// `filtered` and why (exit 1), or why it is malformed (exit 2).
    Alert(alert::AlertArgs),
}

#[derive(Debug, clap::Args)]
pub struct ArchiveArgs {
    /// A block device, or a disk image file (attached read-only to a loop device).
    #[arg(long, required_unless_present = "snapshot")]
    pub device: Option<PathBuf>,
    /// Instead of --device: an EBS snapshot (snap-…), read through the EBS direct APIs without
    /// any volume; archived raw, holes as zeros.
    #[arg(long, conflicts_with = "device")]
    pub snapshot: Option<String>,
    /// Where the archive goes: s3://BUCKET/PREFIX.
    #[arg(long)]
    pub to: S3Location,
    #[command(flatten)]
    pub pipeline: DeviceArgs,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to", "to_image", "to_snapshot", "to_database"])))]
pub struct RestoreArgs {
    /// The archive: s3://BUCKET/PREFIX.
    pub location: S3Location,
    /// Extract into this directory: one subdirectory per partition, raw objects as .img files.
    #[arg(long)]
    pub to: Option<PathBuf>,
    /// Write the archive's raw object to this image file, bit for bit.
    #[arg(long)]
    pub to_image: Option<PathBuf>,
    /// With --to-image or --to-snapshot: the partition whose raw object to write.
    #[arg(long, conflicts_with_all = ["to", "to_database"])]
    pub partition: Option<u32>,
    #[command(flatten)]
    pub snapshot: ebs_direct::SnapshotArgs,
    #[command(flatten)]
    pub database: database::DatabaseArgs,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

fn main() -> ProcessExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    batch_worker::memory::bound_allocator();
    let progress = !cli.no_progress && std::io::stderr().is_terminal();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    let code = runtime.block_on(async {
        let result = match cli.command {
            Command::Archive(args) => commands::archive(args, progress).await,
            Command::Verify { location, deep, json } => commands::verify(location, deep, json).await,
            Command::Restore(args) => commands::restore(args, progress).await,
            Command::Plan(args) => flow::plan(args),
            Command::Start(args) => flow::start(args).await,
            Command::Replay(args) => flow::replay(args).await,
            Command::Status(args) => flow::status(args).await,
            Command::Retention(args) => retention::retention(args),
            Command::Archives(args) => browse::archives(args).await,
            Command::Ls(args) => browse::ls(args).await,
            Command::Find(args) => browse::find(args).await,
            Command::Get(args) => browse::get(args).await,
            Command::Mount(args) => browse::mount(args).await,
            Command::Alert(args) => alert::alert(args),
        };
        match result {
            Ok(code) => code,
            Err(failure) => {
                // One line: stderr is for people, and scripts grep it.
                eprintln!("error: {}", failure.message.replace('\n', "; "));
                failure.code
            }
        }
    });
    ProcessExitCode::from(code as u8)
}

/// The CLI's log: readable text on stderr, warnings only unless `-v` asks for more, so a script
/// or a CI log reading the command's output sees only the command's own lines. JSON lines are
/// for the worker and the Lambdas, whose logs go to CloudWatch.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour).init();
}

/// A failed command: what to tell the operator and how to exit.
pub struct Failure {
    pub code: ExitCode,
    pub message: String,
}

/// The bytes of an input file, or of stdin for `-`.
pub fn read_input(path: &Path) -> Result<Vec<u8>, Failure> {
    if path.as_os_str() == "-" {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut text).map_err(Failure::usage)?;
        Ok(text)
    } else {
        std::fs::read(path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
    }
}

impl Failure {
    pub fn usage(e: impl std::fmt::Display) -> Self {
        Failure { code: ExitCode::Usage, message: e.to_string() }
    }

    pub fn no(e: impl std::fmt::Display) -> Self {
        Failure { code: ExitCode::No, message: e.to_string() }
    }
}
