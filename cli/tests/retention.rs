//! `backup-archiver retention` (issue 10, item 6): the dry run of the retention step prints the
//! UpdateRecoveryPointLifecycle request or `unchanged` with the reason, and exits 0 changed,
//! 1 unchanged, 2 bad input. No AWS is involved.

mod common;

use std::path::PathBuf;

use common::cli::CliEnv;
use serde_json::{json, Value};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/fixtures/describe-recovery-point-ebs.json")
}

fn retention(args: &[&str]) -> common::cli::CliOutput {
    let fixture = fixture();
    let mut all = vec!["retention", "--recovery-point", fixture.to_str().expect("a UTF-8 path")];
    all.extend_from_slice(args);
    CliEnv::without_credentials().run(all)
}

#[test]
fn young_warm_point_gets_a_shorter_retention_and_no_cold_move() {
    let out = retention(&["--new-delete-after-days", "7", "--today", "2026-12-05"]);
    out.assert_code(0);
    // Text mode prints the request alone, ready for --cli-input-json.
    let request: Value = serde_json::from_slice(&out.stdout).expect("the request is JSON");
    assert_eq!(
        request,
        json!({
            "BackupVaultName": "workload-vault",
            "RecoveryPointArn": "arn:aws:ec2:us-east-1::snapshot/snap-0a1b2c3d4e5f67890",
            "Lifecycle": {"MoveToColdStorageAfterDays": -1, "DeleteAfterDays": 17,
                          "OptInToArchiveForSupportedResources": false}
        })
    );
}

#[test]
fn a_longer_retention_is_refused_with_the_reason() {
    let out = retention(&["--new-delete-after-days", "400", "--today", "2026-12-05", "--json"]);
    out.assert_code(1);
    let document: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(document["outcome"], "unchanged");
    assert_eq!(document["reason"], "not_shorter");
    assert_eq!(document["current_delete_after_days"], 365);
    assert_eq!(document["computed_delete_after_days"], 401);
    let text = retention(&["--new-delete-after-days", "400", "--today", "2026-12-05"]);
    text.assert_code(1);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.starts_with("unchanged: DeleteAfterDays would become 401"), "{stdout}");
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let zero = retention(&["--new-delete-after-days", "0"]);
    zero.assert_code(2);
    zero.assert_one_line_error(&["new_delete_after_days must be at least 1"]);

    let dir = common::workdir("retention");
    let not_a_point = dir.path().join("event.json");
    std::fs::write(&not_a_point, br#"{"detail-type": "Backup Job State Change"}"#).expect("write the file");
    let out = CliEnv::without_credentials().run([
        "retention".as_ref(),
        "--recovery-point".as_ref(),
        not_a_point.as_os_str(),
        "--new-delete-after-days".as_ref(),
        "7".as_ref(),
    ]);
    out.assert_code(2);
    out.assert_one_line_error(&["is not a DescribeRecoveryPoint answer", "RecoveryPointArn"]);
}
