"""The EBS flow end to end on the emulator: an AWS Backup event on EventBridge starts the real ASL, which runs
the real Lambdas and the real worker on a real ext4 image; then the archive is verified with the CLI and
restored, the temporary volume is gone, and the recovery point is deleted only where configured."""

import json

from conftest import (
    DELETE_VAULT, FIXTURES, KEEP_VAULT, backup_job, cli, created_volume_ids, executions, finished, new_executions,
    output_of, put_event, recovery_point_fate, sns_messages, states_entered, submitted_jobs, volumes_of,
)
from images import tree

HAPPY_PATH = ["Plan", "Route", "ChooseReadPath", "CreateVolume", "WaitForVolume", "CheckVolume", "ArchiveJob",
              "DeleteVolume", "Verify", "ShouldDeleteRecoveryPoint"]


# mkfs.ext4 makes this directory in every ext4 filesystem; it is on the disk but not in the source tree.
EXT4_LOST_AND_FOUND = "lost+found"


def run_backup_event(aws, stack, vault):
    snapshot_id, event = backup_job(aws, vault)
    before = executions(aws, stack)
    put_event(aws, event)
    [execution_arn] = new_executions(aws, stack, before)
    return finished(aws, execution_arn), snapshot_id, event


def test_backup_event_is_archived_verified_and_cleaned_up(aws, keep_stack, proxy, slack, source_tree, tmp_path):
    slack.answer_next(429, retry_after=1)  # Slack's rate limit: the notification waits and is sent once
    execution, snapshot_id, event = run_backup_event(aws, keep_stack, KEEP_VAULT)
    arn = execution["executionArn"]
    assert execution["status"] == "SUCCEEDED", execution
    assert states_entered(aws, arn) == HAPPY_PATH + ["NotifySuccess", "Archived"]
    output = output_of(execution)

    # The event became the plan, the volume was made from the snapshot, and is gone again.
    assert output["snapshot_id"] == snapshot_id
    assert output["backup_job_id"] == event["detail"]["backupJobId"]
    [volume_id] = created_volume_ids(aws, arn)
    assert output["temporary_volume"]["volume_id"] == volume_id
    [create] = proxy.actions("CreateVolume")
    assert create.params["SnapshotId"] == snapshot_id and create.params["VolumeType"] == "gp3"
    assert volumes_of(aws, arn) == [], "the temporary volume was deleted"
    assert output["deleted_volumes"]["deleted"] == [volume_id]
    assert len(submitted_jobs(aws, arn)) == 1

    # The archive is where the plan said, complete, and restores to the image's files.
    location = output["verification"]["location"]
    assert location == f"s3://{keep_stack.bucket}/{output['destination']['prefix']}"
    assert output["destination"]["prefix"].startswith(f"backups/ebs/{event['detail']['resourceArn'].rsplit('/', 1)[1]}/")
    verified = cli(aws, "verify", location)
    assert verified.returncode == 0, verified.stderr
    restored = cli(aws, "restore", location, "--to", str(tmp_path / "restored"))
    assert restored.returncode == 0, restored.stderr
    # A whole-disk filesystem restores to DIR/disk: every path with its type, mode, content and link target.
    _, source = source_tree
    restored = tree(tmp_path / "restored" / "disk")
    assert restored.pop(EXT4_LOST_AND_FOUND)["type"] == "directory"
    assert restored == source

    # Kept: not configured to delete recovery points.
    assert proxy.actions("DeleteRecoveryPoint") == []
    assert recovery_point_fate(aws, event) == "kept"
    assert "recovery_point_deletion" not in output

    # One notification per channel, after the 429.
    assert [status for status, _ in slack.requests] == [429, 200]
    [message] = slack.delivered()
    assert f"Archived {snapshot_id}" in message["text"]
    assert location in json.dumps(message)
    sns = sns_messages(aws, keep_stack)
    assert len(sns) == 1 and snapshot_id in sns[0] and location in sns[0]


def test_recovery_point_is_deleted_only_when_configured_and_verified(aws, delete_stack, proxy, slack):
    execution, snapshot_id, event = run_backup_event(aws, delete_stack, DELETE_VAULT)
    arn = execution["executionArn"]
    assert execution["status"] == "SUCCEEDED", execution
    entered = states_entered(aws, arn)
    assert entered == HAPPY_PATH + ["DeleteRecoveryPoint", "NotifySuccess", "Archived"]
    assert entered.index("DeleteRecoveryPoint") > entered.index("Verify")
    # The Lambda's call reached the emulator's AWS Backup, which deleted the recovery point and its snapshot.
    [call] = proxy.actions("DeleteRecoveryPoint")
    assert call.params == {"BackupVaultName": DELETE_VAULT, "RecoveryPointArn": event["resources"][0]}
    assert output_of(execution)["recovery_point_deletion"] == {"recovery_point_arn": event["resources"][0], "deleted": True}
    assert recovery_point_fate(aws, event) == "deleted"
    assert volumes_of(aws, arn) == []
    [message] = slack.delivered()
    assert "deleted" in json.dumps(message)


def test_manual_start_waits_and_status_shows_every_step(aws, delete_stack, proxy, slack):
    # The snapshot is a recovery point of the vault whose points this stack deletes: a manual start keeps it.
    snapshot_id, event = backup_job(aws, DELETE_VAULT)
    started = cli(aws, "start", "--snapshot", snapshot_id, "--state-machine", delete_stack.state_machine_arn, "--wait")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "✔ ArchiveJob" in started.stdout and "execution SUCCEEDED" in started.stdout, started.stdout
    arn = started.stdout.split("started ", 1)[1].split()[0]
    status = cli(aws, "status", arn, "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["status"] == "SUCCEEDED" and report["snapshot_id"] == snapshot_id
    assert [s["name"] for s in report["steps"]][:4] == ["Plan", "Route", "ChooseReadPath", "CreateVolume"]
    assert all(s["status"] == "succeeded" for s in report["steps"]), report["steps"]
    listed = cli(aws, "status", "--state-machine", delete_stack.state_machine_arn, "--json")
    assert listed.returncode == 0
    assert arn in [json.loads(line)["execution_arn"] for line in listed.stdout.splitlines()], listed.stdout
    # The manual input names no recovery point: it is never deleted, whatever the configuration.
    assert output_of(finished(aws, arn))["options"]["delete_recovery_point"] is False
    assert proxy.actions("DeleteRecoveryPoint") == [] and recovery_point_fate(aws, event) == "kept"


# What `backup-archiver plan --event FILE --json` (exit code, and fields of its document) makes of every fixture in
# core/tests/fixtures (the reference events and the ones added from the AWS docs, see its README), offline and
# without facts: triggers whose plan depends on the snapshot's description say which field they need.
NEEDS_ENGINE = (0, {"outcome": "needs_lookup", "field": "engine"})
JOB_FAILED = (1, {"outcome": "skipped", "reason": {"code": "job_not_completed", "state": "FAILED"}})
NOT_A_TRIGGER = (2, {"outcome": "rejected", "error": "InvalidEvent", "field": "event"})
PLAN_OF_FIXTURE = {
    "eventbridge-backup-job-completed-ebs.json":
        (0, {"outcome": "planned", "flow": "ebs_archive", "snapshot_id": "snap-0a1b2c3d4e5f67890"}),
    "eventbridge-backup-job-completed-rds.json": NEEDS_ENGINE,
    "eventbridge-backup-job-completed-aurora.json": NEEDS_ENGINE,
    "eventbridge-backup-job-failed.json": JOB_FAILED,
    # The copy's destination recovery point (in the archive vault) is archived, not its source.
    "eventbridge-copy-job-completed.json":
        (0, {"outcome": "planned", "flow": "ebs_archive", "snapshot_id": "snap-0726fe70935586180"}),
    "eventbridge-copy-job-failed.json": JOB_FAILED,
    "eventbridge-rds-db-snapshot-event-created.json": NEEDS_ENGINE,
    "eventbridge-rds-db-cluster-snapshot-event-created.json": NEEDS_ENGINE,
    "eventbridge-rds-db-cluster-snapshot-export-completed.json":
        (1, {"outcome": "skipped", "reason": {"code": "not_snapshot_ready", "event_id": "RDS-EVENT-0164"}}),
    "sns-backup-vault-backup-job-completed.json":
        (0, {"outcome": "planned", "flow": "ebs_archive", "snapshot_id": "snap-0a1b2c3d4e5f67890"}),
    "sns-backup-vault-backup-job-failed.json": JOB_FAILED,
    "sns-backup-vault-backup-job-expired.json":
        (1, {"outcome": "skipped", "reason": {"code": "job_not_completed", "state": "EXPIRED"}}),
    "sns-rds-event-cluster-snapshot-automated-created.json": NEEDS_ENGINE,
    "sns-rds-event-cluster-snapshot-manual-created.json": NEEDS_ENGINE,
    "sns-rds-event-db-snapshot-automated-created.json": NEEDS_ENGINE,
    # A manual input names only the snapshot: the volume or cluster it came from is learnt by describing it.
    "manual-ebs-snapshot.json": (0, {"outcome": "needs_lookup", "field": "source_resource_id"}),
    "manual-aurora-snapshot-dump.json": (0, {"outcome": "needs_lookup", "field": "source_resource_id"}),
    "rds-start-export-task-request.json": NOT_A_TRIGGER,
    "slack-incoming-webhook-payload.json": NOT_A_TRIGGER,
    "chatbot-custom-notification.json": NOT_A_TRIGGER,
    # `backup-archiver retention`'s input (cli/tests/retention.rs).
    "describe-recovery-point-ebs.json": NOT_A_TRIGGER,
}


def test_plan_dry_run_of_every_fixture_has_its_expected_outcome(aws):
    fixtures = sorted(path.name for path in FIXTURES.glob("*.json"))
    assert fixtures == sorted(PLAN_OF_FIXTURE), "every fixture, and only those, has an expected outcome"
    for name, (code, expected) in PLAN_OF_FIXTURE.items():
        done = cli(aws, "plan", "--event", str(FIXTURES / name), "--json")
        assert done.returncode == code, f"{name}: exit {done.returncode}: {done.stdout} {done.stderr}"
        document = json.loads(done.stdout)
        assert {key: document.get(key) for key in expected} == expected, f"{name}: {document}"
