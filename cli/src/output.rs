//! What people and scripts see: logging setup, progress bars, and the text summaries.

use batch_worker::archive::ArchiveReport;
use batch_worker::restore::RestoredObject;
use batch_worker::verify::{Method, VerifyReport};
use bytesize::ByteSize;
use indicatif::{ProgressBar, ProgressStyle};

pub fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("a valid template"),
    );
    bar
}

pub fn print_json<T: serde::Serialize>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).expect("reports always serialize"));
}

pub fn print_archive(report: &ArchiveReport) {
    println!("archived {} into {} in {:.1} s", ByteSize::b(report.bytes_read), report.location, report.seconds);
    for o in &report.objects {
        println!(
            "  {:<24} {:<5} {:<8} {:>10} -> {:>10}  sha256 {}{}",
            o.key.rsplit('/').next().unwrap_or(&o.key),
            format!("{:?}", o.mode).to_lowercase(),
            o.fs_type.as_deref().unwrap_or("-"),
            ByteSize::b(o.bytes_in).to_string(),
            ByteSize::b(o.size).to_string(),
            o.sha256,
            o.raw_reason.as_deref().map(|r| format!("  (raw: {r})")).unwrap_or_default()
        );
    }
    println!(
        "manifest: s3://{}/{}",
        report.location.trim_start_matches("s3://").split('/').next().unwrap_or(""),
        report.manifest_key
    );
}

pub fn print_verify(report: &VerifyReport) {
    for o in &report.objects {
        let how = match o.method {
            Method::Checksum => "size and CRC64NVME",
            Method::Sha256 => "SHA-256 of every byte",
        };
        let segments = match o.segments.len() {
            1 => String::new(),
            n => format!(", {n} segments"),
        };
        match &o.problem {
            None => println!("ok        {} ({how}{segments})", o.key),
            Some(problem) => println!("MISMATCH  {}: {problem}", o.key),
        }
    }
    println!("{}: {}", report.location, if report.ok { "verified" } else { "NOT verified" });
}

pub fn print_restore(restored: &[RestoredObject]) {
    for r in restored {
        println!("{} -> {} ({})", r.key, r.path.display(), ByteSize::b(r.bytes));
    }
}
