//! `backup-archiver alert` (issue 11, item 7): the relay's dry run prints the message for an AWS
//! Backup event (exit 0), `filtered` with the reason (exit 1), or the rejection of a malformed
//! event (exit 2); and `plan` skips a valid AWS Backup event that starts no archive instead of
//! calling it invalid. No AWS is involved.

mod common;

use std::path::PathBuf;

use common::cli::{CliEnv, CliOutput};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/fixtures").join(name);
    path.to_str().expect("a UTF-8 path").to_string()
}

fn run(args: &[&str]) -> CliOutput {
    CliEnv::without_credentials().run(args)
}

#[test]
fn a_failed_job_prints_the_slack_message() {
    let out = run(&["alert", "--event", &fixture("eventbridge-backup-job-failed.json")]);
    out.assert_code(0);
    let payload: Value = serde_json::from_slice(&out.stdout).expect("the Slack payload is JSON");
    assert_eq!(payload["text"], ":rotating_light: Backup job FAILED: EBS vol-0123456789abcdef0 in archive-vault");
    assert_eq!(payload["attachments"][0]["color"], "#D0021B");
}

#[test]
fn every_format_renders_and_json_says_the_route() {
    let event = fixture("alerts/sns-backup-vault-backup-job-expired-older-name.json");
    let text = run(&["alert", "--event", &event, "--format", "text"]);
    text.assert_code(0);
    assert!(
        text.stdout_text().starts_with("Subject: Backup job EXPIRED: EBS vol-0123456789abcdef0\n"),
        "{}",
        text.report()
    );
    let chat = run(&["alert", "--event", &event, "--format", "chatbot", "--json"]);
    chat.assert_code(0);
    let doc: Value = serde_json::from_slice(&chat.stdout).expect("JSON");
    assert_eq!(doc["outcome"], "send");
    assert_eq!(doc["route"], "failures");
    assert_eq!(doc["message"]["source"], "custom");
    assert_eq!(doc["dedup_key"], "backup-job/6A5B4C3D-2E1F-0A9B-8C7D-6E5F4A3B2C1D/EXPIRED");
}

#[test]
fn a_quiet_state_is_filtered_unless_configured() {
    let event = fixture("eventbridge-backup-job-completed-ebs.json");
    let out = run(&["alert", "--event", &event]);
    out.assert_code(1);
    assert!(out.stdout_text().starts_with("filtered: Backup job state COMPLETED"), "{}", out.report());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("alerts.json");
    std::fs::write(&config, r#"{"states": ["COMPLETED"]}"#).expect("written");
    run(&["alert", "--event", &event, "--config", config.to_str().expect("UTF-8")]).assert_code(0);
    std::fs::write(&config, r#"{"states": ["DONE"]}"#).expect("written");
    let bad = run(&["alert", "--event", &event, "--config", config.to_str().expect("UTF-8")]);
    bad.assert_code(2);
    assert!(bad.stderr_text().contains("\"DONE\""), "{}", bad.report());
}

#[test]
fn a_malformed_event_names_its_field() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let event = dir.path().join("event.json");
    std::fs::write(&event, r#"{"detail-type": "Restore Job State Change", "source": "aws.backup", "detail": {}}"#)
        .expect("written");
    let out = run(&["alert", "--event", event.to_str().expect("UTF-8"), "--json"]);
    out.assert_code(2);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!((doc["outcome"].as_str(), doc["field"].as_str()), (Some("malformed"), Some("detail.state")));
}

#[test]
fn plan_skips_backup_events_that_start_no_archive() {
    for name in [
        "alerts/eventbridge-recovery-point-state-change-completed.json",
        "alerts/eventbridge-restore-job-failed.json",
        "alerts/sns-backup-vault-recovery-point-modified.json",
    ] {
        let out = run(&["plan", "--event", &fixture(name), "--json"]);
        out.assert_code(1);
        let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(doc["outcome"], "skipped", "{name}: {}", out.report());
        let code = doc["reason"]["code"].as_str().unwrap_or_default();
        // The trigger parser reads a vault notification of any type, and skips what is not BACKUP_JOB itself.
        assert!(["not_archive_trigger", "not_backup_job"].contains(&code), "{name}: {code}");
    }
}

#[test]
fn the_readmes_slack_picture_is_the_current_output() {
    let out = run(&["alert", "--event", &fixture("eventbridge-backup-job-failed.json")]);
    out.assert_code(0);
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/slack-alert-backup-job-failed.json");
    let expected: Value = serde_json::from_slice(&std::fs::read(&docs).expect("docs/slack-alert-…")).expect("JSON");
    let actual: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(actual, expected, "regenerate docs/slack-alert-backup-job-failed.json with `backup-archiver alert`");
}
