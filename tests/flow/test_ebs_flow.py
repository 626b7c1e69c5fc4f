"""The EBS flow end to end on the emulator: an AWS Backup event on EventBridge starts the real ASL, which runs
the real Lambdas and the real worker on a real ext4 image; then the archive is verified with the CLI and
restored, the temporary volume is gone, and the recovery point is deleted only where configured."""

import json
import subprocess

from conftest import (
    DELETE_VAULT, KEEP_VAULT, backup_event, cli, created_volume_ids, executions, finished, new_executions,
    output_of, put_event, sns_messages, snapshot, states_entered, submitted_jobs, volumes_of,
)

HAPPY_PATH = ["Plan", "Route", "CreateVolume", "WaitForVolume", "CheckVolume", "ArchiveJob", "DeleteVolume",
              "Verify", "ShouldDeleteRecoveryPoint"]


def run_backup_event(aws, stack, vault):
    volume_id, snapshot_id = snapshot(aws)
    event = backup_event(snapshot_id, volume_id, vault)
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
    _, files = source_tree
    restored_files = {}
    for path in (tmp_path / "restored").rglob("*"):
        if path.is_file() and not path.is_symlink():
            import hashlib
            restored_files[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    for relative, digest in files.items():
        assert digest in restored_files.values(), f"{relative} was not restored"

    # Kept: not configured to delete recovery points.
    assert proxy.actions("DeleteRecoveryPoint") == []
    assert aws.client("ec2").describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
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
    # moto 5.2.5 has no recovery points: the fault proxy answers DeleteRecoveryPoint and is the witness.
    [call] = proxy.actions("DeleteRecoveryPoint")
    assert call.params == {"BackupVaultName": DELETE_VAULT, "RecoveryPointArn": event["resources"][0]}
    assert output_of(execution)["recovery_point_deletion"] == {"recovery_point_arn": event["resources"][0], "deleted": True}
    assert volumes_of(aws, arn) == []
    [message] = slack.delivered()
    assert "deleted" in json.dumps(message)


def test_manual_start_waits_and_status_shows_every_step(aws, keep_stack, slack):
    _, snapshot_id = snapshot(aws)
    started = cli(aws, "start", "--snapshot", snapshot_id, "--state-machine", keep_stack.state_machine_arn, "--wait")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "✔ ArchiveJob" in started.stdout and "execution SUCCEEDED" in started.stdout, started.stdout
    arn = started.stdout.split("started ", 1)[1].split()[0]
    status = cli(aws, "status", arn, "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["status"] == "SUCCEEDED" and report["snapshot_id"] == snapshot_id
    assert [s["name"] for s in report["steps"]][:3] == ["Plan", "Route", "CreateVolume"]
    assert all(s["status"] == "succeeded" for s in report["steps"]), report["steps"]
    listed = cli(aws, "status", "--state-machine", keep_stack.state_machine_arn, "--json")
    assert listed.returncode == 0
    assert any(json.loads(line)["execution_arn"] == arn for line in listed.stdout.splitlines())
    # The manual input has no recovery point: it is never deleted, whatever the configuration.
    assert output_of(finished(aws, arn))["options"]["delete_recovery_point"] is False


def test_plan_dry_run_accepts_every_reference_event(aws):
    reference = sorted(__import__("pathlib").Path("/work/shared/reference/events").glob("*.json")) or []
    fixtures = __import__("conftest").FIXTURES
    expected = {
        "eventbridge-backup-job-completed-ebs.json": 0, "eventbridge-backup-job-failed.json": 1,
        "sns-backup-vault-backup-job-completed.json": 0, "sns-backup-vault-backup-job-expired.json": 1,
        "eventbridge-rds-db-cluster-snapshot-export-completed.json": 1, "slack-incoming-webhook-payload.json": 2,
        "chatbot-custom-notification.json": 2, "rds-start-export-task-request.json": 2,
        "manual-ebs-snapshot.json": 0, "eventbridge-copy-job-completed.json": 0,
    }
    for name, code in expected.items():
        path = fixtures / name
        done = cli(aws, "plan", "--event", str(path), "--json")
        assert done.returncode == code, f"{name}: {done.returncode}: {done.stdout} {done.stderr}"
        assert json.loads(done.stdout)["outcome"] in ("planned", "skipped", "needs_lookup", "rejected")
    assert all(p.name in {f.name for f in fixtures.iterdir()} for p in reference)
