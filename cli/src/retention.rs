//! `retention`: a dry run of the organisation flow's retention step, offline.
//!
//! Given what `aws backup describe-recovery-point` printed, it prints the
//! `UpdateRecoveryPointLifecycle` request the step would send (text mode prints the request alone,
//! ready for `aws backup update-recovery-point-lifecycle --cli-input-json`), or `unchanged` with
//! the reason. Exit 0 changed, 1 unchanged, 2 bad input.
//!
//! `--json` prints one document; fields are only ever added:
//! `{"outcome": "changed", "request": {BackupVaultName, RecoveryPointArn, Lifecycle}}` or
//! `{"outcome": "unchanged", "reason": "already_deleted" | "being_deleted" | "continuous" |
//! "not_shorter", "message", …}` (`not_shorter` adds `current_delete_after_days` and
//! `computed_delete_after_days`).

use std::path::PathBuf;

use archiver_core::retention::{shorten_retention, NewDeleteAfterDays, RecoveryPointDescription, RetentionDecision};
use chrono::{NaiveDate, Utc};
use serde_json::json;

use crate::output::print_json;
use crate::{ExitCode, Failure};

#[derive(Debug, clap::Args)]
pub struct RetentionArgs {
    /// DescribeRecoveryPoint's answer, as `aws backup describe-recovery-point` prints it (`-` for stdin).
    #[arg(long)]
    pub recovery_point: PathBuf,
    /// The DeleteAfterDays wanted for a copied original (at least 1); its age and cold storage may
    /// require more.
    #[arg(long)]
    pub new_delete_after_days: i64,
    /// The UTC date to decide on (YYYY-MM-DD); default: today.
    #[arg(long)]
    pub today: Option<NaiveDate>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn retention(args: RetentionArgs) -> Result<ExitCode, Failure> {
    let days = NewDeleteAfterDays::new(args.new_delete_after_days).map_err(Failure::usage)?;
    let text = crate::read_input(&args.recovery_point)?;
    let point: RecoveryPointDescription = serde_json::from_slice(&text).map_err(|e| {
        Failure::usage(format!("{} is not a DescribeRecoveryPoint answer: {e}", args.recovery_point.display()))
    })?;
    let today = args.today.unwrap_or_else(|| Utc::now().date_naive());
    match shorten_retention(&point, days, today) {
        RetentionDecision::Shorten(request) => {
            if args.json {
                print_json(&json!({"outcome": "changed", "request": request}));
            } else {
                print_json(&request);
            }
            Ok(ExitCode::Success)
        }
        RetentionDecision::Unchanged(reason) => {
            if args.json {
                let mut document = serde_json::to_value(&reason).expect("reasons serialize");
                document["outcome"] = json!("unchanged");
                document["message"] = json!(reason.to_string());
                print_json(&document);
            } else {
                println!("unchanged: {reason}");
            }
            Ok(ExitCode::No)
        }
    }
}
