//! `backup-archiver plan --event FILE` with the organisation flow's configuration (issue 10, item 6): it also says
//! which copy a Backup or Copy Job event would start and where, as `start-copy` decides it. Offline.

mod common;

use std::path::PathBuf;

use common::cli::CliEnv;
use serde_json::{json, Value};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/fixtures").join(name).display().to_string()
}

/// The backup job fixture's vault, copied to account 999988887777 with us-west-2 first.
fn config(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("org-copy.json");
    let config = json!({
        "central_account_id": "999988887777", "backup_region": "us-west-2", "alternate_region": "eu-central-1",
        "second_copy": true, "copy_role_arn": "arn:aws:iam::111122223333:role/org-copy",
        "vaults": ["archive-vault"], "jobs": "all"
    });
    std::fs::write(&path, config.to_string()).expect("a temporary file");
    path.display().to_string()
}

#[test]
fn a_backup_job_event_names_the_first_copy_and_its_destination() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (event, config) = (fixture("eventbridge-backup-job-completed-ebs.json"), config(&dir));
    let out = CliEnv::without_credentials().run(["plan", "--event", &event, "--org-copy-config", &config, "--json"]);
    let document: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert!(document["outcome"].is_string(), "the archive plan is still there: {document}");
    let org_copy = &document["org_copy"];
    assert_eq!((&org_copy["action"], &org_copy["copy"]), (&json!("copy"), &json!("first")), "{org_copy}");
    assert_eq!(
        org_copy["request"]["DestinationBackupVaultArn"],
        "arn:aws:backup:us-west-2:999988887777:backup-vault:archive-vault"
    );
    assert_eq!(org_copy["request"]["IamRoleArn"], "arn:aws:iam::111122223333:role/org-copy");
    assert_eq!(org_copy["request"]["IdempotencyToken"].as_str().map(str::len), Some(64));

    let text = CliEnv::without_credentials().run(["plan", "--event", &event, "--org-copy-config", &config]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains(
            "org copy: first copy of arn:aws:ec2:eu-west-1::snapshot/snap-0a1b2c3d4e5f67890 from vault \
                         archive-vault into arn:aws:backup:us-west-2:999988887777:backup-vault:archive-vault"
        ),
        "{stdout}"
    );
}

#[test]
fn without_the_configuration_plan_says_nothing_about_copies_and_a_bad_one_is_a_usage_error() {
    let event = fixture("eventbridge-backup-job-completed-ebs.json");
    let out = CliEnv::without_credentials().run(["plan", "--event", &event, "--json"]);
    let document: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert!(document.get("org_copy").is_none(), "{document}");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{}").expect("a temporary file");
    let out =
        CliEnv::without_credentials().run(["plan", "--event", &event, "--org-copy-config", bad.to_str().unwrap()]);
    out.assert_code(2);
    out.assert_one_line_error(&["not an organisation copy configuration", "central_account_id"]);
}
