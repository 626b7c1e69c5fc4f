//! Finding and restoring single files: `archives` (the catalogue, from the manifests), `ls` and
//! `find` (from an archive's index alone), `get` (only the byte ranges that hold the wanted
//! entries) and `mount` (the same, on demand, as a read-only filesystem). With `--json`, `archives`, `ls` and `find` print JSON Lines, one document per archive
//! or entry; `get` prints one report. Fields are only ever added.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use archiver_core::index::{base_name, glob_match, is_under, normalize, EntryKind, IndexEntry};
use archiver_core::s3_location::S3Location;
use aws_sdk_s3::types::Tier;
use batch_worker::archive_fs::{self, ArchiveFs};
use batch_worker::catalogue::{self, CatalogueFilter};
use batch_worker::get::{self, show, GetError, GetReport, Indexed};
use batch_worker::thaw::ThawRequest;
use bytesize::ByteSize;
use chrono::{DateTime, NaiveDate, Utc};

use crate::{commands, output, ExitCode, Failure};

#[derive(Debug, clap::Args)]
pub struct ArchivesArgs {
    /// Where to look: s3://BUCKET[/PREFIX].
    pub location: S3Location,
    /// Only archives of this volume, snapshot or database id, device, or prefix part.
    #[arg(long)]
    pub source: Option<String>,
    /// Only archives started on or after this date (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_parser = parse_date)]
    pub since: Option<DateTime<Utc>>,
    /// Print JSON Lines, one document per archive.
    #[arg(long)]
    pub json: bool,
}

/// The archive and, when it has several files-mode objects, which one.
#[derive(Debug, clap::Args)]
pub struct ArchiveChoice {
    /// The archive: s3://BUCKET/PREFIX (a line of `archives`).
    pub location: S3Location,
    /// The partition whose files to read, when the archive has several.
    #[arg(long)]
    pub partition: Option<u32>,
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub archive: ArchiveChoice,
    /// The directory to list (the root by default).
    pub path: Option<OsString>,
    /// Print JSON Lines, one document per entry.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct FindArgs {
    #[command(flatten)]
    pub archive: ArchiveChoice,
    /// Entries whose name (last component) matches this shell pattern, as `find -name`.
    #[arg(long)]
    pub name: Option<OsString>,
    /// Entries modified after this date (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_parser = parse_date)]
    pub newer: Option<DateTime<Utc>>,
    /// Files larger than this size (`10MiB`, `1G`, `5000`).
    #[arg(long)]
    pub larger: Option<ByteSize>,
    /// Print JSON Lines, one document per entry.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub archive: ArchiveChoice,
    /// Entries to restore: files, links, or directories with everything under them.
    #[arg(required = true)]
    pub paths: Vec<OsString>,
    /// The directory to restore into (under the entries' archive names), or `-` to write one
    /// file's content to stdout.
    #[arg(long)]
    pub to: PathBuf,
    /// Print one JSON report instead of text (on stderr with `--to -`).
    #[arg(long)]
    pub json: bool,
    /// Objects in a Glacier class: start a restore (RestoreObject) of only those that hold the
    /// entries; run the same command again later until it restores the files.
    #[arg(long)]
    pub thaw: bool,
    /// With --thaw: the retrieval tier (bulk: cheapest, up to 48 hours for Deep Archive).
    #[arg(long, value_enum, default_value_t = TierArg::Bulk, requires = "thaw")]
    pub tier: TierArg,
    /// With --thaw: days the thawed copies stay readable.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(i32).range(1..), requires = "thaw")]
    pub days: i32,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TierArg {
    Bulk,
    Standard,
    Expedited,
}

impl GetArgs {
    fn thaw_request(&self) -> Option<ThawRequest> {
        let tier = match self.tier {
            TierArg::Bulk => Tier::Bulk,
            TierArg::Standard => Tier::Standard,
            TierArg::Expedited => Tier::Expedited,
        };
        self.thaw.then_some(ThawRequest { tier, days: self.days })
    }
}

#[derive(Debug, clap::Args)]
pub struct MountArgs {
    #[command(flatten)]
    pub archive: ArchiveChoice,
    /// An empty directory to mount the archive's files on, read-only.
    pub mountpoint: PathBuf,
}

/// An index entry as `ls` and `find` print it.
#[derive(Debug, serde::Serialize)]
struct EntryOut {
    /// The archive name; non-UTF-8 bytes as `\xNN`.
    path: String,
    kind: EntryKind,
    size: u64,
    /// The 12 mode bits, in octal.
    mode: String,
    uid: u64,
    gid: u64,
    mtime: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    /// Where its first header starts in the uncompressed stream, and the bytes it spans there.
    offset: u64,
    span: u64,
}

impl EntryOut {
    fn new(e: &IndexEntry) -> Self {
        EntryOut {
            path: show(&e.path),
            kind: e.kind,
            size: e.size,
            mode: format!("{:04o}", e.mode),
            uid: e.uid,
            gid: e.gid,
            mtime: DateTime::from_timestamp(e.mtime, e.mtime_nsec),
            link_target: e.link_target.as_deref().map(show),
            sha256: e.sha256_hex(),
            offset: e.offset,
            span: e.span,
        }
    }
}

pub async fn archives(args: ArchivesArgs) -> Result<ExitCode, Failure> {
    let client = commands::connect(&args.location).await?;
    let filter = CatalogueFilter { source: args.source, since: args.since };
    let list = catalogue::list_archives(&client, &args.location, &filter).await.map_err(Failure::no)?;
    for a in &list {
        if args.json {
            print_line(&serde_json::to_string(a).expect("serializes"));
        } else {
            let modes: Vec<String> = a.modes.iter().map(|m| format!("{m:?}").to_lowercase()).collect();
            print_line(&format!(
                "{}  {:<22} {:<24} {:<10} {:>10}  {:<12} {}{}",
                a.started_at.format("%Y-%m-%d %H:%M"),
                a.source,
                a.snapshot_id.as_deref().unwrap_or("-"),
                modes.join(","),
                ByteSize::b(a.size).to_string(),
                a.storage_classes.join(","),
                a.location,
                if a.indexed { "" } else { "  (no index)" }
            ));
        }
    }
    Ok(ExitCode::Success)
}

pub async fn ls(args: LsArgs) -> Result<ExitCode, Failure> {
    let indexed = open(&args.archive).await?;
    let dir = args.path.as_ref().map(|p| p.as_bytes().to_vec()).unwrap_or_default();
    let dir = normalize(&dir);
    match indexed.index.entry(dir) {
        Some(e) if e.kind != EntryKind::Directory => print_entry(e, args.json),
        Some(_) => indexed.index.children(dir).for_each(|e| print_entry(e, args.json)),
        None if dir.is_empty() => indexed.index.children(dir).for_each(|e| print_entry(e, args.json)),
        None => return Err(Failure::no(GetError::NotFound { path: show(dir) })),
    }
    Ok(ExitCode::Success)
}

pub async fn find(args: FindArgs) -> Result<ExitCode, Failure> {
    let indexed = open(&args.archive).await?;
    let name = args.name.as_ref().map(|n| n.as_bytes().to_vec());
    let newer = args.newer.map(|t| (t.timestamp(), t.timestamp_subsec_nanos()));
    let matches = indexed.index.entries.iter().filter(|e| {
        name.as_deref().is_none_or(|pattern| glob_match(pattern, base_name(&e.path)))
            && newer.is_none_or(|t| (e.mtime, e.mtime_nsec) > t)
            && args.larger.is_none_or(|size| e.size > size.as_u64())
            && is_under(&e.path, b"")
    });
    let mut found = false;
    for e in matches {
        found = true;
        print_entry(e, args.json);
    }
    // As grep: 1 when nothing matched, so scripts can tell.
    Ok(if found { ExitCode::Success } else { ExitCode::No })
}

pub async fn get(args: GetArgs) -> Result<ExitCode, Failure> {
    let indexed = open(&args.archive).await?;
    let client = commands::connect(&args.archive.location).await?;
    let paths: Vec<Vec<u8>> = args.paths.iter().map(|p| p.as_bytes().to_vec()).collect();
    if args.to.as_os_str() == "-" {
        let [path] = paths.as_slice() else {
            return Err(Failure::usage("--to - writes one file to stdout: give exactly one PATH"));
        };
        let report = get::get_to_writer(&client, &indexed, path, std::io::stdout(), args.thaw_request())
            .await
            .map_err(get_failure)?;
        if args.json {
            eprintln!("{}", serde_json::to_string_pretty(&report).expect("reports always serialize"));
        }
        return Ok(ExitCode::Success);
    }
    let report =
        get::get_to_dir(&client, &indexed, &paths, &args.to, args.thaw_request()).await.map_err(get_failure)?;
    if args.json {
        output::print_json(&report);
    } else {
        print_get(&report, &args.to);
    }
    Ok(ExitCode::Success)
}

pub async fn mount(args: MountArgs) -> Result<ExitCode, Failure> {
    let indexed = open(&args.archive).await?;
    let client = commands::connect(&args.archive.location).await?;
    let location = indexed.location.to_string();
    // Any file may be read: every segment must be readable now.
    indexed.ensure_readable(&client, None, None).await.map_err(get_failure)?;
    let fs = ArchiveFs::new(indexed, client, tokio::runtime::Handle::current());
    let cancel = batch_worker::signal::cancel_on_signal();
    eprintln!(
        "mounting {location} read-only at {} until it is unmounted (umount {0}) or interrupted",
        args.mountpoint.display()
    );
    archive_fs::serve(fs, &args.mountpoint, cancel.cancelled())
        .await
        .map_err(|e| Failure::no(format!("cannot serve {location} at {}: {e}", args.mountpoint.display())))?;
    Ok(ExitCode::Success)
}

fn print_get(report: &GetReport, dir: &std::path::Path) {
    for e in &report.entries {
        println!("{} {:>10}  {}", e.kind.letter(), e.size, e.path);
    }
    println!(
        "restored {} entries into {}: fetched {} in {} ranges (+ {} index) of a {} object in {:.1} s",
        report.entries.len(),
        dir.display(),
        ByteSize::b(report.bytes_fetched),
        report.ranges,
        ByteSize::b(report.index_bytes),
        ByteSize::b(report.object_bytes),
        report.seconds
    );
}

async fn open(choice: &ArchiveChoice) -> Result<Indexed, Failure> {
    let client = commands::connect(&choice.location).await?;
    get::open_index(&client, &choice.location, choice.partition).await.map_err(get_failure)
}

fn get_failure(e: GetError) -> Failure {
    match e {
        e @ (GetError::NoFilesObject { .. } | GetError::SeveralFilesObjects { .. } | GetError::NoIndex { .. }) => {
            Failure::usage(e)
        }
        e => Failure::no(e),
    }
}

fn print_entry(e: &IndexEntry, json: bool) {
    if json {
        print_line(&serde_json::to_string(&EntryOut::new(e)).expect("serializes"));
        return;
    }
    let mtime = DateTime::from_timestamp(e.mtime, 0).map(|t| t.format("%Y-%m-%d %H:%M").to_string());
    let target = match (e.kind, e.link_target.as_deref()) {
        (EntryKind::Symlink, Some(t)) => format!(" -> {}", show(t)),
        (EntryKind::HardLink, Some(t)) => format!(" link to {}", show(t)),
        _ => String::new(),
    };
    let path = if e.path.is_empty() { ".".to_string() } else { show(&e.path) };
    print_line(&format!(
        "{}{} {:>6}/{:<6} {:>12} {} {}{}",
        e.kind.letter(),
        mode_string(e.mode),
        e.uid,
        e.gid,
        e.size,
        mtime.unwrap_or_else(|| "?".into()),
        path,
        target
    ));
}

/// `rwxr-xr-x`, with setuid, setgid and sticky as `ls` shows them.
fn mode_string(mode: u32) -> String {
    let mut out = String::new();
    for (shift, special, letter) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => letter,
            (false, true) => letter.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    out
}

/// One line on stdout; a closed pipe (`| head`) ends the program quietly, as ripgrep does.
fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").is_err() {
        std::process::exit(0);
    }
}

fn parse_date(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .map_err(|_| format!("{text:?} is not a date (YYYY-MM-DD or RFC 3339)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_modes_as_ls_does() {
        assert_eq!(mode_string(0o755), "rwxr-xr-x");
        assert_eq!(mode_string(0o4755), "rwsr-xr-x");
        assert_eq!(mode_string(0o1777), "rwxrwxrwt");
        assert_eq!(mode_string(0o2644), "rw-r-Sr--");
    }

    #[test]
    fn parses_days_and_times() {
        assert_eq!(parse_date("2024-03-01").unwrap().to_rfc3339(), "2024-03-01T00:00:00+00:00");
        assert_eq!(parse_date("2024-03-01T10:00:00+02:00").unwrap().to_rfc3339(), "2024-03-01T08:00:00+00:00");
        assert!(parse_date("yesterday").is_err());
    }
}
